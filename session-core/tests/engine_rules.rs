//! One test per rule of `Engine::finish` and `Engine::read`.

mod support;

use std::sync::Arc;

use serde_json::json;
use session_core::{
    Clock as _, CookieOp, Key, KeyRing, SameSite, SessionId, SessionStore, StoreOp, codec,
};
use support::{Browser, Call, Harness, attribute};
use time::Duration;

#[tokio::test]
async fn request_without_session_data_writes_nothing_and_sets_no_cookie() {
    let h = Harness::new();
    let mut browser = Browser::new();
    let (value, set_cookie) = h
        .request(&mut browser, |s| s.get::<String>("user").unwrap())
        .await;
    assert_eq!(value, None);
    assert_eq!(set_cookie, None);
    assert_eq!(h.store.writes(), 0);

    // Inserting and removing again leaves nothing to create either.
    let (_, set_cookie) = h
        .request(&mut browser, |s| {
            s.insert("a", &1).unwrap();
            s.remove("a");
        })
        .await;
    assert_eq!(set_cookie, None);
    assert_eq!(h.store.writes(), 0);
}

#[tokio::test]
async fn new_data_creates_a_session_with_the_documented_cookie() {
    let h = Harness::new();
    let mut browser = Browser::new();
    let (_, set_cookie) = h
        .request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    let set_cookie = set_cookie.expect("a new session sets its cookie");
    assert!(set_cookie.starts_with("id=s1."), "{set_cookie}");
    assert_eq!(attribute(&set_cookie, "Path"), Some("/"));
    assert_eq!(attribute(&set_cookie, "HttpOnly"), Some(""));
    assert_eq!(attribute(&set_cookie, "SameSite"), Some("Lax"));
    assert_eq!(attribute(&set_cookie, "Max-Age"), Some("3600"));
    assert_eq!(attribute(&set_cookie, "Secure"), None);
    assert!(matches!(h.store.take_calls()[..], [Call::Create(_)]));

    let (user, set_cookie) = h
        .request(&mut browser, |s| s.get::<String>("user").unwrap())
        .await;
    assert_eq!(user.as_deref(), Some("alice"));
    assert_eq!(set_cookie, None, "an unchanged session re-sends nothing");
}

#[tokio::test]
async fn unknown_id_is_never_adopted() {
    let h = Harness::new();
    let mut browser = Browser::new();
    // A correctly signed cookie for an id the store has never seen.
    let planted = SessionId::from_bytes([42; 16]);
    let value = codec::sign(h.engine.config().keys().current(), "id", planted.as_bytes());
    browser.set("id", &value);

    let (was_new, set_cookie) = h.request(&mut browser, |s| s.is_new()).await;
    assert!(was_new);
    assert_eq!(
        set_cookie, None,
        "an unknown id gets no Set-Cookie by itself"
    );

    let (_, set_cookie) = h
        .request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    assert!(set_cookie.is_some());
    assert_ne!(
        browser.get("id"),
        Some(value.as_str()),
        "a fresh id was issued"
    );
    assert_eq!(
        h.store.inner.load(&planted.store_key()).await.unwrap(),
        None,
        "nothing was stored under the planted id"
    );
}

#[tokio::test]
async fn regenerate_saves_new_record_before_deleting_old() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("cart", &["apple"]).unwrap())
        .await;
    let old_cookie = browser.get("id").unwrap().to_owned();
    h.store.take_calls();

    let (_, set_cookie) = h
        .request(&mut browser, |s| {
            s.insert("user", "alice").unwrap();
            s.regenerate();
        })
        .await;
    assert!(set_cookie.is_some());
    let calls = h.store.take_calls();
    // The new record first, then the old one taken (removed, and read to
    // carry over what another request saved meanwhile).
    match &calls[..] {
        [Call::Load(old), Call::Create(new), Call::Take(taken)] => {
            assert_eq!(old, taken);
            assert_ne!(old, new);
        }
        other => panic!("unexpected store calls {other:?}"),
    }
    assert_ne!(browser.get("id"), Some(old_cookie.as_str()));

    // Data is kept under the new id; the old id resolves to nothing.
    let (cart, _) = h
        .request(&mut browser, |s| s.get::<Vec<String>>("cart").unwrap())
        .await;
    assert_eq!(cart, Some(vec!["apple".to_owned()]));
    let mut thief = Browser::new();
    thief.set("id", &old_cookie);
    let (is_new, _) = h.request(&mut thief, |s| s.is_new()).await;
    assert!(is_new);
}

#[tokio::test]
async fn destroy_deletes_record_and_sends_removal_with_the_same_attributes() {
    let h = Harness::with(|c| {
        c.with_path("/app")
            .with_domain(Some("example.com".into()))
            .with_secure(true)
            .with_same_site(SameSite::Strict)
    });
    let mut browser = Browser::new();
    let (_, set) = h
        .request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    let set = set.unwrap();
    h.store.take_calls();

    let (_, removal) = h.request(&mut browser, |s| s.destroy()).await;
    let removal = removal.expect("destroy clears the cookie");
    assert!(removal.starts_with("id=;"), "{removal}");
    assert_eq!(attribute(&removal, "Max-Age"), Some("0"));
    for attr in ["Path", "Domain", "Secure", "SameSite", "HttpOnly"] {
        assert_eq!(
            attribute(&removal, attr),
            attribute(&set, attr),
            "{attr} differs: {removal} vs {set}"
        );
    }
    assert!(matches!(
        h.store.take_calls()[..],
        [Call::Load(_), Call::Delete(_)]
    ));
    assert!(h.store.inner.is_empty());
    assert_eq!(browser.get("id"), None);
}

#[tokio::test]
async fn data_stored_after_destroy_starts_a_new_session() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    let old = browser.get("id").unwrap().to_owned();
    h.request(&mut browser, |s| {
        s.destroy();
        s.insert("flash", "Logged out").unwrap();
    })
    .await;
    assert_ne!(browser.get("id"), Some(old.as_str()));
    let (data, _) = h
        .request(&mut browser, |s| {
            (s.get_value("user"), s.get_value("flash"))
        })
        .await;
    assert_eq!(data, (None, Some(json!("Logged out"))));
    assert_eq!(h.store.inner.len(), 1, "the old record is gone");
}

#[tokio::test]
async fn idle_expired_session_starts_fresh_and_its_record_is_deleted() {
    let h = Harness::with(|c| c.with_idle_timeout(Some(Duration::minutes(10))));
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    h.advance_secs(9 * 60);
    let (user, _) = h.request(&mut browser, |s| s.get_value("user")).await;
    assert_eq!(
        user,
        Some(json!("alice")),
        "still alive after 9 idle minutes"
    );

    h.advance_secs(10 * 60);
    let (state, _) = h
        .request(&mut browser, |s| (s.is_new(), s.get_value("user")))
        .await;
    assert_eq!(state, (true, None));
    assert!(h.store.inner.is_empty(), "the expired record is gone");
}

#[tokio::test]
async fn session_past_the_configured_timeout_is_deleted_and_its_cookie_cleared() {
    // The store still holds the record (it was written under a 10-minute
    // idle timeout), but the engine now enforces 5 minutes.
    let h = Harness::with(|c| c.with_idle_timeout(Some(Duration::minutes(10))));
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    let stricter = h.sibling(|c| c.with_idle_timeout(Some(Duration::minutes(5))));
    h.advance_secs(6 * 60);
    h.store.take_calls();
    let (state, set_cookie) = support::request_with(&stricter, &mut browser, |s| {
        (s.is_new(), s.get_value("user"))
    })
    .await
    .unwrap();
    assert_eq!(state, (true, None));
    let set_cookie = set_cookie.expect("the dead cookie is cleared");
    assert_eq!(attribute(&set_cookie, "Max-Age"), Some("0"));
    assert!(matches!(
        h.store.take_calls()[..],
        [Call::Load(_), Call::Delete(_)]
    ));
    assert!(h.store.inner.is_empty());
}

#[tokio::test]
async fn reads_keep_the_idle_timeout_rolling() {
    let h = Harness::with(|c| c.with_idle_timeout(Some(Duration::minutes(10))));
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    // Read-only requests every 6 minutes for an hour: never idle for 10.
    for _ in 0..10 {
        h.advance_secs(6 * 60);
        let (user, _) = h.request(&mut browser, |s| s.get_value("user")).await;
        assert_eq!(user, Some(json!("alice")));
    }
}

#[tokio::test]
async fn absolute_lifetime_ends_an_active_session() {
    let h = Harness::with(|c| {
        c.with_idle_timeout(Some(Duration::minutes(10)))
            .with_absolute_timeout(Some(Duration::minutes(30)))
    });
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    for _ in 0..5 {
        h.advance_secs(5 * 60);
        let (user, set) = h
            .request(&mut browser, |s| {
                s.update("n", |n: Option<u32>| n.unwrap_or(0) + 1).unwrap();
                s.get_value("user")
            })
            .await;
        assert_eq!(user, Some(json!("alice")));
        // Max-Age tracks the earlier deadline: idle (10 min) until the
        // absolute end is nearer.
        let max_age: i64 = attribute(set.as_deref().unwrap(), "Max-Age")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(max_age, 600.min(30 * 60 - h.clock_elapsed_secs()));
    }
    h.advance_secs(5 * 60); // 30 minutes after creation
    let (user, _) = h.request(&mut browser, |s| s.get_value("user")).await;
    assert_eq!(user, None);
}

trait Elapsed {
    fn clock_elapsed_secs(&self) -> i64;
}

impl Elapsed for Harness {
    fn clock_elapsed_secs(&self) -> i64 {
        use session_core::Clock;
        (self.clock.now() - support::START).whole_seconds()
    }
}

#[tokio::test]
async fn unchanged_session_is_saved_only_when_the_touch_interval_has_passed() {
    let h = Harness::with(|c| c.with_touch_interval(Duration::seconds(60)));
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    h.store.take_calls();

    h.advance_secs(59);
    let plan = h.plan(&browser, |_| {}).await;
    assert!(plan.is_noop(), "{plan:?}");

    h.advance_secs(1);
    let plan = h.plan(&browser, |_| {}).await;
    match (&plan.store, &plan.cookie) {
        (StoreOp::Save { changes, .. }, CookieOp::Set(cookie)) => {
            assert!(changes.is_empty());
            assert_eq!(attribute(cookie, "Max-Age"), Some("3600"));
            // Signed again, the same id under the same key: the value the
            // browser already has, with a fresh Max-Age.
            let value = cookie.split(';').next().unwrap();
            assert_eq!(
                Some(value),
                browser.get("id").map(|v| format!("id={v}")).as_deref()
            );
        }
        other => panic!("expected a touch, got {other:?}"),
    }
}

#[tokio::test]
async fn a_write_within_the_touch_interval_saves_but_keeps_the_idle_deadline_and_sends_no_cookie() {
    let h = Harness::with(|c| c.with_touch_interval(Duration::seconds(60)));
    let mut browser = Browser::new();
    let (_, first) = h
        .request(&mut browser, |s| s.insert("n", &1).unwrap())
        .await;
    assert_eq!(attribute(&first.unwrap(), "Max-Age"), Some("3600"));

    h.advance_secs(30);
    let plan = h.plan(&browser, |s| s.insert("n", &2).unwrap()).await;
    match (&plan.store, &plan.cookie) {
        (StoreOp::Save { record, .. }, CookieOp::None) => {
            let start = session_core::Timestamp::from(support::START);
            assert_eq!(record.last_seen, start, "the idle timer did not move");
            assert_eq!(record.expires_at, Some(start + Duration::hours(1)));
        }
        other => panic!("expected a save without a cookie, got {other:?}"),
    }
    let (_, set_cookie) = h
        .request(&mut browser, |s| s.insert("n", &2).unwrap())
        .await;
    assert_eq!(
        set_cookie, None,
        "the cookie sent at creation is still right"
    );
    let (n, _) = h
        .request(&mut browser, |s| s.get::<u32>("n").unwrap())
        .await;
    assert_eq!(n, Some(2), "the write was saved");

    // Past the touch interval a write rolls the idle timeout and re-sends
    // the cookie with a full Max-Age.
    h.advance_secs(30);
    let (_, set_cookie) = h
        .request(&mut browser, |s| s.insert("n", &3).unwrap())
        .await;
    assert_eq!(attribute(&set_cookie.unwrap(), "Max-Age"), Some("3600"));
}

#[tokio::test]
async fn a_session_written_more_often_than_the_touch_interval_lives_on_in_server_and_browser() {
    let h = Harness::with(|c| {
        c.with_idle_timeout(Some(Duration::minutes(10)))
            .with_touch_interval(Duration::seconds(60))
    });
    let mut browser = Browser::new();
    let mut cookie_expires = 0;
    // A write every 25 s for 40 minutes: four idle timeouts.
    for n in 1..=96u32 {
        let (views, set_cookie) = h
            .request(&mut browser, |s| {
                s.update("views", |v: Option<u32>| v.unwrap_or(0) + 1)
                    .unwrap()
            })
            .await;
        assert_eq!(views, n, "the session survived request {n}");
        let now = h.clock_elapsed_secs();
        if let Some(set_cookie) = set_cookie {
            let max_age: i64 = attribute(&set_cookie, "Max-Age").unwrap().parse().unwrap();
            cookie_expires = now + max_age;
        }
        // The browser's cookie lives at least an idle timeout minus the
        // touch interval past every request.
        assert!(
            cookie_expires - now >= 600 - 60,
            "request {n}: {cookie_expires} at {now}"
        );
        h.advance_secs(25);
    }
}

#[tokio::test]
async fn a_write_within_the_touch_interval_still_moves_an_old_key_cookie_to_the_current_key() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("n", &1).unwrap())
        .await;
    let old_value = browser.get("id").unwrap().to_owned();
    let new_key = Key::generate();
    let rotated = h.sibling(|c| {
        c.with_keys(KeyRing::new(new_key.clone()).with_previous(support::fixed_key()))
    });
    let (_, set_cookie) = support::request_with(&rotated, &mut browser, |s| {
        s.insert("n", &2).unwrap();
    })
    .await
    .unwrap();
    let set_cookie = set_cookie.expect("re-issued under the current key");
    assert_eq!(attribute(&set_cookie, "Max-Age"), Some("3600"));
    let new_value = browser.get("id").unwrap();
    assert_ne!(new_value, old_value);
    assert!(codec::verify(&KeyRing::new(new_key), "id", new_value).is_ok());
    let (n, _) = support::request_with(&rotated, &mut browser, |s| s.get::<u32>("n").unwrap())
        .await
        .unwrap();
    assert_eq!(n, Some(2));
}

/// A clock that steps back by more than the idle timeout less the touch
/// interval (or a server whose clock runs that far behind the one that
/// touched the session last) touches the session at once: the browser
/// counts the cookie's `Max-Age` from the last touch in real time, and
/// waiting for this clock to pass the stored `last_seen` would let the
/// cookie run out while the user is active.
#[tokio::test]
async fn a_clock_that_steps_back_touches_the_session_at_once() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    h.advance_secs(-2 * 3600);
    let plan = h.plan(&browser, |_| {}).await;
    match (&plan.store, &plan.cookie) {
        (StoreOp::Save { record, .. }, CookieOp::Set(cookie)) => {
            assert_eq!(attribute(cookie, "Max-Age"), Some("3600"), "{cookie}");
            assert_eq!(record.last_seen, h.clock.now().into());
        }
        other => panic!("expected a touch, got {other:?}"),
    }
    // Once touched at this clock's time, the interval counts again.
    h.request(&mut browser, |_| {}).await;
    h.advance_secs(30);
    assert!(h.plan(&browser, |_| {}).await.is_noop());
    // Ahead by less than the idle timeout less the interval (servers whose
    // clocks differ a little): the touch waits, and still comes before the
    // cookie runs out (59 min back, then the interval, inside the hour).
    h.advance_secs(-59 * 60);
    assert!(h.plan(&browser, |_| {}).await.is_noop());
    h.advance_secs(59 * 60 + 60);
    assert!(!h.plan(&browser, |_| {}).await.is_noop(), "due again");
}

/// A cookie re-issued under the current key carries the deadline in
/// force: the earlier of the stored one and the configuration's, as the
/// engine ends the session at the earlier of the two.
#[tokio::test]
async fn a_cookie_reissued_under_the_current_key_carries_the_deadline_in_force() {
    let h = Harness::with(|c| {
        c.with_idle_timeout(None)
            .with_absolute_timeout(Some(Duration::days(30)))
    });
    let mut browser = Browser::new();
    let (_, set_cookie) = h
        .request(&mut browser, |s| s.insert("n", &1).unwrap())
        .await;
    assert_eq!(attribute(&set_cookie.unwrap(), "Max-Age"), Some("2592000"));
    h.advance_secs(3600);
    let rotated = h.sibling(|c| {
        c.with_keys(KeyRing::new(Key::generate()).with_previous(support::fixed_key()))
            .with_idle_timeout(None)
            .with_absolute_timeout(Some(Duration::days(1)))
    });
    let (n, set_cookie) =
        support::request_with(&rotated, &mut browser, |s| s.get::<u32>("n").unwrap())
            .await
            .unwrap();
    assert_eq!(n, Some(1));
    let set_cookie = set_cookie.expect("re-issued under the current key");
    assert_eq!(
        attribute(&set_cookie, "Max-Age"),
        Some("82800"),
        "a day from its creation, an hour ago: {set_cookie}"
    );
}

#[tokio::test]
async fn garbage_cookies_mean_no_session_and_never_panic() {
    let h = Harness::new();
    let mut good = Browser::new();
    h.request(&mut good, |s| s.insert("user", "alice").unwrap())
        .await;
    let value = good.get("id").unwrap().to_owned();
    let mut flipped = value.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let signed_for_pref = codec::sign(h.engine.config().keys().current(), "pref", &[7; 16]);
    let cases: Vec<Vec<u8>> = vec![
        format!("id={}", String::from_utf8(flipped).unwrap()).into_bytes(),
        format!("id={}", &value[..value.len() - 5]).into_bytes(),
        format!("id={}", "A".repeat(10_000)).into_bytes(),
        format!("id=s1.{}.{}", "A".repeat(3000), "B".repeat(3000)).into_bytes(),
        b"id=\xff\xfe\x00garbage".to_vec(),
        b"id=".to_vec(),
        b"id".to_vec(),
        b";;;==;id==;".to_vec(),
        format!("id={signed_for_pref}").into_bytes(),
        format!("id=\"{value}x\"").into_bytes(),
    ];
    for raw in cases {
        let mut browser = Browser::new();
        browser.raw_headers.push(raw.clone());
        let (state, set_cookie) = h
            .request(&mut browser, |s| (s.is_new(), s.get_value("user")))
            .await;
        assert_eq!(state, (true, None), "{}", String::from_utf8_lossy(&raw));
        assert_eq!(set_cookie, None);
    }
}

#[tokio::test]
async fn a_bad_byte_elsewhere_in_the_header_does_not_hide_the_session() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    let value = browser.cookies.remove("id").unwrap();
    let mut raw = b"junk=\xff\xfe; ".to_vec();
    raw.extend_from_slice(format!("id={value}").as_bytes());
    browser.raw_headers.push(raw);
    let (user, _) = h.request(&mut browser, |s| s.get_value("user")).await;
    assert_eq!(user, Some(json!("alice")));
}

/// Values planted under the session cookie's name (from a sibling
/// subdomain, say) are skipped: fifteen of them do not hide the real cookie
/// after them; after sixteen the rest of the request's are not checked.
#[tokio::test]
async fn junk_session_cookies_hide_the_real_one_only_from_sixteen_on() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    let value = browser.cookies.remove("id").unwrap();
    for (junk, expected) in [
        (5, Some(json!("alice"))),
        (15, Some(json!("alice"))),
        (16, None),
    ] {
        let mut planted = Browser::new();
        let mut raw: String = (0..junk).map(|i| format!("id=s1.junk{i}; ")).collect();
        raw.push_str(&format!("id={value}"));
        planted.raw_headers.push(raw.into_bytes());
        let (user, _) = h.request(&mut planted, |s| s.get_value("user")).await;
        assert_eq!(user, expected, "{junk} junk values first");
    }
}

#[tokio::test]
async fn first_duplicate_cookie_that_verifies_and_loads_wins() {
    let h = Harness::new();
    let mut alice = Browser::new();
    h.request(&mut alice, |s| s.insert("user", "alice").unwrap())
        .await;
    let mut bob = Browser::new();
    h.request(&mut bob, |s| s.insert("user", "bob").unwrap())
        .await;
    let unknown = codec::sign(
        h.engine.config().keys().current(),
        "id",
        SessionId::from_bytes([3; 16]).as_bytes(),
    );

    let header = format!(
        "id=tampered; id={unknown}; id={}; id={}",
        bob.get("id").unwrap(),
        alice.get("id").unwrap()
    );
    let mut browser = Browser::new();
    browser.raw_headers.push(header.into_bytes());
    let (user, _) = h.request(&mut browser, |s| s.get_value("user")).await;
    assert_eq!(user, Some(json!("bob")));
}

#[tokio::test]
async fn cookie_under_a_previous_key_is_accepted_and_reissued() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    let old_value = browser.get("id").unwrap().to_owned();

    let new_key = Key::generate();
    let rotated = h.sibling(|c| {
        c.with_keys(KeyRing::new(new_key.clone()).with_previous(support::fixed_key()))
    });
    let (user, set_cookie) = support::request_with(&rotated, &mut browser, |s| s.get_value("user"))
        .await
        .unwrap();
    assert_eq!(user, Some(json!("alice")));
    let set_cookie = set_cookie.expect("a read-only request re-issues the cookie");
    let new_value = browser.get("id").unwrap().to_owned();
    assert_ne!(new_value, old_value);
    assert!(codec::verify(&KeyRing::new(new_key.clone()), "id", &new_value).is_ok());
    assert!(set_cookie.contains("Max-Age="));

    // Once re-issued, later requests re-send nothing.
    let (_, again) = support::request_with(&rotated, &mut browser, |s| s.get_value("user"))
        .await
        .unwrap();
    assert_eq!(again, None);

    // With the old key dropped, an old cookie is nothing.
    let dropped = h.sibling(|c| c.with_keys(KeyRing::new(new_key)));
    let mut stale = Browser::new();
    stale.set("id", &old_value);
    let (user, _) = support::request_with(&dropped, &mut stale, |s| s.get_value("user"))
        .await
        .unwrap();
    assert_eq!(user, None);
}

/// The engine remembers values that verified (`with_verified_cache`): a
/// cookie seen again must be judged exactly as the first time, and a forged
/// one never finds its way in.
#[tokio::test]
async fn a_cookie_seen_again_is_judged_as_the_first_time() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    let value = browser.get("id").unwrap().to_owned();
    // One character changed in the id, then in the tag.
    let forged: Vec<String> = [8, value.len() - 10]
        .into_iter()
        .map(|at| {
            let mut bytes = value.clone().into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            String::from_utf8(bytes).unwrap()
        })
        .collect();

    let new_key = Key::generate();
    for cache in [8_192, 1, 0] {
        let rotated = h.sibling(|c| {
            c.with_keys(KeyRing::new(new_key.clone()).with_previous(support::fixed_key()))
                .with_verified_cache(cache)
        });
        for round in 0..3 {
            let mut old = Browser::new();
            old.set("id", &value);
            let (user, set_cookie) =
                support::request_with(&rotated, &mut old, |s| s.get_value("user"))
                    .await
                    .unwrap();
            assert_eq!(user, Some(json!("alice")), "cache {cache}, round {round}");
            assert!(
                set_cookie.is_some(),
                "re-issued under the current key every time (cache {cache}, round {round})"
            );
            for forged in &forged {
                let mut attacker = Browser::new();
                attacker.set("id", forged);
                let (user, set_cookie) =
                    support::request_with(&rotated, &mut attacker, |s| s.get_value("user"))
                        .await
                        .unwrap();
                assert_eq!(user, None, "{forged} (cache {cache}, round {round})");
                assert_eq!(set_cookie, None);
            }
        }
    }
}

#[tokio::test]
async fn browser_session_cookie_has_no_max_age() {
    let h = Harness::with(|c| c.with_persistent_cookie(false));
    let mut browser = Browser::new();
    let (_, set) = h
        .request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    let set = set.unwrap();
    assert_eq!(attribute(&set, "Max-Age"), None, "{set}");
    assert_eq!(attribute(&set, "Expires"), None, "{set}");
}

#[tokio::test]
async fn store_never_sees_the_raw_session_id() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    let value = browser.get("id").unwrap();
    let (payload, _) = codec::verify(h.engine.config().keys(), "id", value).unwrap();
    let id = SessionId::from_bytes(payload.try_into().unwrap());
    let calls = h.store.take_calls();
    let Call::Create(key) = calls[0] else {
        panic!("{calls:?}")
    };
    assert_eq!(key, id.store_key());
    assert_ne!(&key.as_bytes()[..16], id.as_bytes());
}

#[tokio::test]
async fn failing_random_source_is_an_error_not_a_panic() {
    #[derive(Debug)]
    struct Broken;
    impl session_core::RandomSource for Broken {
        fn fill(&self, _: &mut [u8]) -> Result<(), session_core::SessionError> {
            Err(session_core::SessionError::Random {
                reason: "no entropy".into(),
            })
        }
    }
    let h = Harness::with(|c| c.with_random(Arc::new(Broken)));
    let session = h.open(&Browser::new()).await;
    session.insert("a", &1).unwrap();
    let err = h.engine.finish(&session, h.engine.now()).unwrap_err();
    assert!(err.to_string().contains("no entropy"), "{err}");
}

/// Of several session cookies, one whose session ended under the current
/// configuration (the idle timeout was shortened, and the browser kept the
/// old cookie at another `Path`) does not hide a live one behind it, with
/// a store that waits (the harness') and with the memory store.
#[tokio::test]
async fn an_ended_session_beside_a_live_one_does_not_hide_it() {
    let day = Harness::with(|c| c.with_idle_timeout(Some(Duration::days(1))));
    let hour = day.sibling(|c| c.with_idle_timeout(Some(Duration::hours(1))));
    let mut old = Browser::new();
    day.request(&mut old, |s| s.insert("user", "old").unwrap())
        .await;
    day.advance_secs(2 * 3600);
    let mut live = Browser::new();
    let (_, set) = support::request_with(&hour, &mut live, |s| {
        s.insert("user", "alice").unwrap();
    })
    .await
    .unwrap();
    assert!(set.is_some());
    let (ended, current) = (old.cookies["id"].clone(), live.cookies["id"].clone());
    support::the_live_cookie_wins(&hour, &ended, &current).await;

    // The memory store (immediate), on one manual clock.
    let clock = session_core::ManualClock::new(support::START);
    let store = Arc::new(session_core::MemoryStore::with_clock(Arc::new(
        clock.clone(),
    )));
    let engine = |idle: i64| {
        session_core::Engine::new(
            session_core::SessionConfig::new(KeyRing::new(support::fixed_key()))
                .with_clock(Arc::new(clock.clone()))
                .with_store(store.clone())
                .with_idle_timeout(Some(Duration::hours(idle))),
        )
        .unwrap()
    };
    let (day, hour) = (engine(24), engine(1));
    let mut old = Browser::new();
    support::request_with(&day, &mut old, |s| s.insert("user", "old").unwrap())
        .await
        .unwrap();
    clock.advance(Duration::hours(2));
    let mut live = Browser::new();
    support::request_with(&hour, &mut live, |s| s.insert("user", "alice").unwrap())
        .await
        .unwrap();
    support::the_live_cookie_wins(&hour, &old.cookies["id"], &live.cookies["id"]).await;
}
