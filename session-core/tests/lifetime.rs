//! A session's own lifetime ("remember me"): `Session::set_lifetime`.

mod support;

use serde_json::json;
use session_core::{Lifetime, Storage, StoreOp, Timestamp};
use support::{
    Browser, Harness, SETUPS, START, attribute, engines_for, open_with, remembered, request_with,
};
use time::Duration;

const DAY: i64 = 24 * 3600;

fn user(s: &session_core::Session) -> Option<String> {
    s.get::<String>("user").unwrap()
}

/// Logged in with "remember me": the session outlives both configured
/// timeouts (one hour idle, one day absolute), its cookie says thirty days,
/// and it ends thirty days after its last use.
#[tokio::test]
async fn a_remembered_session_outlives_the_configured_timeouts_and_ends_on_its_own() {
    let h = Harness::new();
    let mut browser = Browser::new();
    let (_, set) = h
        .request(&mut browser, |s| {
            s.insert("user", "alice").unwrap();
            s.set_lifetime(remembered());
        })
        .await;
    let set = set.expect("a new session sets its cookie");
    assert_eq!(attribute(&set, "Max-Age"), Some("2592000"), "{set}");

    // Two days idle: past both configured limits.
    h.advance_secs(2 * DAY);
    let (found, set) = h.request(&mut browser, user).await;
    assert_eq!(found.as_deref(), Some("alice"));
    let set = set.expect("the touch re-sends the cookie");
    assert_eq!(attribute(&set, "Max-Age"), Some("2592000"), "{set}");
    let (lifetime, _) = h.request(&mut browser, |s| s.lifetime()).await;
    assert_eq!(lifetime, remembered(), "the lifetime is stored with it");

    // Thirty days without a request: gone.
    h.advance_secs(30 * DAY);
    let (found, _) = h.request(&mut browser, user).await;
    assert_eq!(found, None);
}

/// Not remembered: a browser-session cookie (no `Max-Age`), while the
/// server still ends the session at the configured idle timeout.
#[tokio::test]
async fn a_browser_session_cookie_has_no_max_age_and_the_record_still_expires() {
    let h = Harness::new();
    let mut browser = Browser::new();
    let (_, set) = h
        .request(&mut browser, |s| {
            s.insert("user", "alice").unwrap();
            s.set_lifetime(Lifetime::default().with_persistent(false));
        })
        .await;
    let set = set.unwrap();
    assert_eq!(attribute(&set, "Max-Age"), None, "{set}");
    assert_eq!(attribute(&set, "Expires"), None, "{set}");

    // Touches keep it a browser-session cookie.
    h.advance_secs(120);
    let (_, set) = h.request(&mut browser, user).await;
    let set = set.expect("a touch");
    assert_eq!(attribute(&set, "Max-Age"), None, "{set}");

    h.advance_secs(3600);
    let (found, _) = h.request(&mut browser, user).await;
    assert_eq!(found, None, "the configured idle timeout still holds");
}

/// Setting a lifetime within the touch interval saves it and sends the
/// cookie at once, counted from now; setting the default puts the session
/// back on the configuration.
#[tokio::test]
async fn a_lifetime_set_on_a_later_request_is_saved_and_sent_at_once() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    h.advance_secs(10);
    h.store.take_calls();
    let plan = h.plan(&browser, |s| s.set_lifetime(remembered())).await;
    let StoreOp::Save { record, .. } = &plan.store else {
        panic!("a save: {plan:?}");
    };
    let now = Timestamp::from(START + Duration::seconds(10));
    assert_eq!(record.lifetime, remembered());
    assert_eq!(record.last_seen, now, "the lifetime counts from now");
    assert_eq!(record.expires_at, Some(now + Duration::days(30)));
    let set = plan.cookie.header().expect("the cookie is sent at once");
    assert_eq!(attribute(set, "Max-Age"), Some("2592000"), "{set}");
    h.engine.commit(plan).await.unwrap();

    h.advance_secs(10);
    let (_, set) = h
        .request(&mut browser, |s| s.set_lifetime(Lifetime::default()))
        .await;
    assert_eq!(attribute(&set.unwrap(), "Max-Age"), Some("3600"));
    h.advance_secs(2 * 3600);
    let (found, _) = h.request(&mut browser, user).await;
    assert_eq!(found, None, "back on the configured idle timeout");
}

/// Set among other changes, and set twice: the last one set holds, and the
/// data changes around it all land.
#[tokio::test]
async fn the_last_lifetime_set_among_other_changes_holds() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| {
        s.insert("a", &1).unwrap();
        s.set_lifetime(Lifetime::default().with_persistent(false));
        s.insert("b", &2).unwrap();
        s.set_lifetime(remembered());
        s.clear();
        s.insert("c", &3).unwrap();
        assert_eq!(s.lifetime(), remembered());
    })
    .await;
    let (seen, _) = h.request(&mut browser, |s| (s.lifetime(), s.keys())).await;
    assert_eq!(seen, (remembered(), vec!["c".to_owned()]));
}

/// A `clear` with no data, after only a lifetime was set, records no
/// change (no `Clear` that a merge would replay onto another request's
/// data); after a data change, it does.
#[test]
fn clear_after_only_a_lifetime_records_nothing() {
    let s = session_core::Session::detached();
    s.set_lifetime(remembered());
    s.clear();
    let shown = format!("{s:?}");
    assert!(
        shown.contains("Lifetime(") && !shown.contains("Clear"),
        "{shown}"
    );
    s.remove("a");
    s.insert("b", &1).unwrap();
    s.clear();
    let shown = format!("{s:?}");
    assert!(shown.contains("Clear"), "{shown}");
}

/// A lifetime alone does not start a session: a new session is stored
/// once it holds data, as always.
#[tokio::test]
async fn a_lifetime_alone_does_not_start_a_session() {
    let h = Harness::new();
    let mut browser = Browser::new();
    let (_, set) = h
        .request(&mut browser, |s| s.set_lifetime(remembered()))
        .await;
    assert_eq!(set, None);
    assert_eq!(h.store.writes(), 0);
}

/// A log-in's new id keeps the lifetime; a log-out forgets it, so the next
/// session follows the configuration.
#[tokio::test]
async fn regenerate_keeps_the_lifetime_and_destroy_forgets_it() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| {
        s.insert("cart", &["apple"]).unwrap();
        s.set_lifetime(remembered());
    })
    .await;
    let before = browser.get("id").unwrap().to_owned();
    let (_, set) = h
        .request(&mut browser, |s| {
            s.regenerate();
            s.insert("user", "alice").unwrap();
        })
        .await;
    assert_ne!(browser.get("id"), Some(before.as_str()), "a new id");
    assert_eq!(attribute(&set.unwrap(), "Max-Age"), Some("2592000"));
    h.advance_secs(2 * DAY);
    let (found, _) = h.request(&mut browser, user).await;
    assert_eq!(found.as_deref(), Some("alice"));

    let (_, set) = h
        .request(&mut browser, |s| {
            s.destroy();
            s.insert("n", &1).unwrap();
        })
        .await;
    assert_eq!(attribute(&set.unwrap(), "Max-Age"), Some("3600"));
    let (lifetime, _) = h.request(&mut browser, |s| s.lifetime()).await;
    assert!(lifetime.is_default(), "{lifetime:?}");
}

/// A session given an idle timeout shorter than the configured touch
/// interval is touched often enough to live while it is used: with the
/// configured interval (a minute), a request every 40 s would let a 60 s
/// idle timeout run out.
#[tokio::test]
async fn a_short_own_idle_timeout_is_touched_in_time() {
    let h = Harness::new();
    assert_eq!(h.engine.config().touch_interval(), Duration::minutes(1));
    let lifetime = Lifetime::default().with_idle_timeout(Some(Duration::seconds(60)));
    let gone = lives_while_used(&h, lifetime, 40, 10, 60).await;
    assert_eq!(gone, None, "60 s without a request");
}

/// Logs alice in with `lifetime`, then makes `times` requests `every`
/// seconds apart, each of which must find her, then one `then` seconds
/// later: what that one finds.
async fn lives_while_used(
    h: &Harness,
    lifetime: Lifetime,
    every: i64,
    times: usize,
    then: i64,
) -> Option<String> {
    let mut browser = Browser::new();
    h.request(&mut browser, |s| {
        s.insert("user", "alice").unwrap();
        s.set_lifetime(lifetime);
    })
    .await;
    for _ in 0..times {
        h.advance_secs(every);
        let (found, _) = h.request(&mut browser, user).await;
        assert_eq!(found.as_deref(), Some("alice"));
    }
    h.advance_secs(then);
    h.request(&mut browser, user).await.0
}

/// A shorter limit, set on a session the configuration would keep longer,
/// ends it by that limit.
#[tokio::test]
async fn an_own_absolute_limit_ends_an_active_session() {
    let h = Harness::new();
    let lifetime = Lifetime::default().with_absolute_timeout(Some(Duration::minutes(10)));
    let gone = lives_while_used(&h, lifetime, 120, 4, 120).await;
    assert_eq!(gone, None, "ten minutes after creation, however active");
}

/// In cookie-store mode the lifetime travels in the encrypted cookie.
#[tokio::test]
async fn the_lifetime_travels_in_a_cookie_store_session() {
    let h = Harness::with(|c| c.with_storage(Storage::Cookie));
    let mut browser = Browser::new();
    let (_, set) = h
        .request(&mut browser, |s| {
            s.insert("user", "alice").unwrap();
            s.set_lifetime(remembered().with_persistent(false));
        })
        .await;
    assert_eq!(attribute(&set.unwrap(), "Max-Age"), None);
    h.advance_secs(2 * DAY);
    let (found, set) = h.request(&mut browser, user).await;
    assert_eq!(found.as_deref(), Some("alice"));
    assert_eq!(attribute(&set.expect("a touch"), "Max-Age"), None);
}

/// A request sets the lifetime while another request of the same session
/// touches it later: whichever saves first, the stored record keeps the
/// lifetime and the deadline counted under it (never the toucher's, which
/// was counted under the lifetime it had loaded), and the toucher's
/// cookie is not sent once it would contradict the stored lifetime. Within
/// one process (the second save starts from the record the process saved
/// first), across two (a conflict in the store), and on a store that
/// answers at once. Saves grouped in one process: in `concurrency.rs`.
#[tokio::test]
async fn a_lifetime_set_beside_a_later_touch_keeps_its_deadline() {
    for setup in SETUPS {
        for touch_first in [false, true] {
            let h = Harness::new();
            let (setter_engine, toucher_engine, store) = engines_for(setup, &h, |c| c);
            let case = format!("{setup}, touch first: {touch_first}");
            let mut browser = Browser::new();
            request_with(&setter_engine, &mut browser, |s| s.insert("n", &1).unwrap())
                .await
                .unwrap();
            h.advance_secs(59);
            let setter = open_with(&setter_engine, &browser).await;
            setter.set_lifetime(remembered());
            let set = setter_engine.finish(&setter, setter_engine.now()).unwrap();
            h.advance_secs(2);
            let toucher = open_with(&toucher_engine, &browser).await;
            toucher.insert("m", &2).unwrap();
            let touch = toucher_engine
                .finish(&toucher, toucher_engine.now())
                .unwrap();
            let StoreOp::Save { key, .. } = &touch.store else {
                panic!("{case}: a save");
            };
            let key = *key;
            let (touched, set) = if touch_first {
                let touched = toucher_engine.commit(touch).await.unwrap();
                (touched, setter_engine.commit(set).await.unwrap())
            } else {
                let set = setter_engine.commit(set).await.unwrap();
                (toucher_engine.commit(touch).await.unwrap(), set)
            };
            let set = set.expect("the setter's cookie");
            assert_eq!(attribute(&set, "Max-Age"), Some("2592000"), "{case}");
            // The toucher's cookie says an hour: sent only when it saved
            // before the lifetime was set (the setter's response then
            // follows it); after, it would contradict the stored lifetime.
            match touched {
                Some(touched) => {
                    assert!(touch_first, "{case}: {touched}");
                    assert_eq!(attribute(&touched, "Max-Age"), Some("3600"), "{case}");
                }
                None => assert!(!touch_first, "{case}: the toucher's cookie was sent"),
            }
            let stored = store.load(&key).await.unwrap().expect("the session");
            assert_eq!(stored.data.get("m"), Some(&json!(2)), "{case}");
            assert_eq!(stored.lifetime, remembered(), "{case}");
            let set_at = Timestamp::from(START + Duration::seconds(59));
            assert_eq!(stored.last_seen, set_at, "{case}");
            assert_eq!(
                stored.expires_at,
                Some(set_at + Duration::days(30)),
                "{case}"
            );
        }
    }
}

/// A log-in late in a long visit starts the absolute lifetime again: it
/// caps one log-in, so the new id's cookie and deadline count from the
/// log-in, not from the anonymous visit before it.
#[tokio::test]
async fn regenerate_starts_the_absolute_lifetime_again() {
    let h = Harness::with(|c| c.with_absolute_timeout(Some(Duration::hours(2))));
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("cart", &["apple"]).unwrap())
        .await;
    h.advance_secs(50 * 60);
    h.request(&mut browser, |s| s.get_value("cart")).await;
    h.advance_secs(50 * 60);
    let login = h.engine.timestamp();
    let (_, set) = h
        .request(&mut browser, |s| {
            s.regenerate();
            s.insert("user", "alice").unwrap();
        })
        .await;
    // Twenty minutes were left of the anonymous visit's two hours.
    assert_eq!(attribute(&set.unwrap(), "Max-Age"), Some("3600"));

    // Past two hours from the first visit, used every 50 minutes.
    for _ in 0..2 {
        h.advance_secs(50 * 60);
        let ((found, created), _) = h.request(&mut browser, |s| (user(s), s.created_at())).await;
        assert_eq!(found.as_deref(), Some("alice"));
        assert_eq!(created, Some(login));
    }
    // Two hours and a minute after the log-in.
    h.advance_secs(21 * 60);
    let (found, _) = h.request(&mut browser, user).await;
    assert_eq!(found, None);
}

/// `renew_id` changes the id and keeps the times: the absolute lifetime
/// still counts from the session's creation, and the old id is dead.
#[tokio::test]
async fn renew_id_keeps_the_absolute_lifetime_running() {
    let h = Harness::with(|c| c.with_absolute_timeout(Some(Duration::hours(2))));
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    let created = h.engine.timestamp();
    let first = browser.get("id").unwrap().to_owned();
    h.advance_secs(50 * 60);
    let (_, set) = h.request(&mut browser, |s| s.renew_id()).await;
    // Seventy minutes are left of the two hours: the idle hour is nearer.
    assert_eq!(attribute(&set.unwrap(), "Max-Age"), Some("3600"));
    assert_ne!(browser.get("id"), Some(first.as_str()), "a new id");
    let mut old = Browser::new();
    old.set("id", &first);
    let (found, _) = h.request(&mut old, user).await;
    assert_eq!(found, None, "the old id is dead");

    h.advance_secs(50 * 60);
    let ((found, at), set) = h.request(&mut browser, |s| (user(s), s.created_at())).await;
    assert_eq!(found.as_deref(), Some("alice"));
    assert_eq!(at, Some(created), "the times are kept");
    // Touched at 100 minutes: 20 minutes are left.
    assert_eq!(attribute(&set.unwrap(), "Max-Age"), Some("1200"));
    h.advance_secs(21 * 60);
    let (found, _) = h.request(&mut browser, user).await;
    assert_eq!(found, None, "ended two hours after its creation");
}

/// After a new id is asked for, the key and times of the old one are not
/// reported: the old key is deleted, and the new one is known from the
/// next request.
#[tokio::test]
async fn a_new_id_hides_the_old_key_and_times_until_the_next_request() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    let times = |s: &session_core::Session| (s.store_key(), s.created_at(), s.expires_at());
    for new_id in [
        session_core::Session::regenerate as fn(&session_core::Session),
        session_core::Session::renew_id,
    ] {
        let ((before, after), _) = h
            .request(&mut browser, |s| {
                let before = times(s);
                new_id(s);
                (before, times(s))
            })
            .await;
        assert!(before.0.is_some() && before.1.is_some() && before.2.is_some());
        assert_eq!(after, (None, None, None));
        let (next, _) = h.request(&mut browser, times).await;
        assert!(next.0.is_some() && next.0 != before.0, "the new key");
    }
}

/// What a handler can read of the session it was given: its store key
/// (with which another request can end it), when it began and when it
/// ends; nothing for a new session or after `destroy`.
#[tokio::test]
async fn a_session_reports_its_store_key_and_times() {
    let h = Harness::with(|c| c.with_absolute_timeout(Some(Duration::minutes(65))));
    let mut browser = Browser::new();
    let (new, _) = h
        .request(&mut browser, |s| {
            let seen = (s.store_key(), s.created_at(), s.expires_at());
            s.insert("user", "alice").unwrap();
            seen
        })
        .await;
    assert_eq!(new, (None, None, None));
    let created = h.engine.timestamp();

    let times = |s: &session_core::Session| (s.store_key(), s.created_at(), s.expires_at());
    h.advance_secs(600);
    let ((key, at, until), _) = h.request(&mut browser, times).await;
    let key = key.expect("a stored session has a key");
    assert_eq!(at, Some(created));
    // Idle an hour from the last touch, the creation.
    assert_eq!(until, Some(created + Duration::hours(1)));
    // The request above was a touch: the idle deadline moved to 70
    // minutes, and the absolute one (65) is now the earlier.
    let ((again, at, until), _) = h.request(&mut browser, times).await;
    assert_eq!((again, at), (Some(key), Some(created)));
    assert_eq!(until, Some(created + Duration::minutes(65)));

    // The key is the store's: deleting it ends the session ("sign out
    // that device" from another request).
    let store = h.engine.store().expect("a server-side store");
    assert!(store.load(&key).await.unwrap().is_some());
    store.delete(&key).await.unwrap();
    let (found, _) = h.request(&mut browser, user).await;
    assert_eq!(found, None);

    // Destroyed in this request: nothing is reported any more.
    h.request(&mut browser, |s| s.insert("user", "bob").unwrap())
        .await;
    let ((before, after), _) = h
        .request(&mut browser, |s| {
            let before = times(s);
            s.destroy();
            (before, times(s))
        })
        .await;
    assert!(before.0.is_some() && before.1.is_some() && before.2.is_some());
    assert_eq!(after, (None, None, None));
}

/// In cookie-store mode there is no store key, but the times are read
/// from the cookie.
#[tokio::test]
async fn a_cookie_store_session_reports_its_times_and_no_key() {
    let h = Harness::with(|c| c.with_storage(Storage::Cookie));
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    let created = h.engine.timestamp();
    h.advance_secs(30);
    let (seen, _) = h
        .request(&mut browser, |s| {
            (s.store_key(), s.created_at(), s.expires_at())
        })
        .await;
    assert_eq!(
        seen,
        (None, Some(created), Some(created + Duration::hours(1)))
    );
}
