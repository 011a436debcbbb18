//! Cookie-store mode: the whole session in one encrypted cookie.

mod support;

use serde_json::json;
use session_core::{Key, KeyRing, Lifetime, SessionError, Storage, codec};
use support::{Browser, Harness, attribute, request_with};
use time::Duration;

fn harness() -> Harness {
    Harness::with(|c| c.with_storage(Storage::Cookie))
}

#[tokio::test]
async fn session_round_trips_in_the_cookie_without_server_state() {
    let h = harness();
    let mut browser = Browser::new();
    let (_, set) = h
        .request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    let set = set.unwrap();
    assert!(set.starts_with("id=p1."), "{set}");
    assert!(!set.contains("alice"), "the data is encrypted: {set}");
    assert_eq!(attribute(&set, "Max-Age"), Some("3600"));
    assert!(h.engine.store().is_none());
    assert_eq!(h.store.writes(), 0);

    let (user, again) = h.request(&mut browser, |s| s.get_value("user")).await;
    assert_eq!(user, Some(json!("alice")));
    assert_eq!(again, None, "an unchanged session re-sends nothing");
}

#[tokio::test]
async fn oversized_session_is_a_defined_error() {
    let h = harness();
    let session = h.open(&Browser::new()).await;
    session.insert("blob", &"x".repeat(5000)).unwrap();
    let err = h.engine.finish(&session, h.engine.now()).unwrap_err();
    match err {
        SessionError::CookieTooLarge { size, limit } => {
            assert!(size > limit);
            assert_eq!(limit, 4096);
        }
        other => panic!("expected CookieTooLarge, got {other}"),
    }
}

/// A session whose cookie is at the size limit keeps being readable: a
/// touch that would make it one byte too long (its version number, a
/// varint, gains a byte at 128) is skipped, not an error on a read-only
/// request.
#[tokio::test]
async fn a_touch_that_would_pass_the_size_limit_is_skipped_not_an_error() {
    let h = harness();
    let mut browser = full_cookie(&h).await;
    let (fits, _) = request_with(&h.engine, &mut browser, |s| {
        s.get::<String>("blob").unwrap().map(|b| b.len())
    })
    .await
    .unwrap();
    let fits = fits.unwrap();

    // Touches bump the version 0 → 130: at 128 the cookie would grow.
    let mut skipped = 0;
    for _ in 0..130 {
        h.advance_secs(61);
        let (len, set) = request_with(&h.engine, &mut browser, |s| {
            s.get::<String>("blob").unwrap().map(|b| b.len())
        })
        .await
        .expect("a read-only request of a full cookie is no error");
        assert_eq!(len, Some(fits));
        skipped += usize::from(set.is_none());
    }
    assert!(skipped >= 1, "some touch must have been too large to send");
}

/// A browser holding the cookie of a new session of `h`'s engine whose
/// data is as large as a cookie can hold.
async fn full_cookie(h: &Harness) -> Browser {
    let (mut fits, mut too_long) = (1_000, 5_000);
    while too_long - fits > 1 {
        let len = (fits + too_long) / 2;
        let session = h.open(&Browser::new()).await;
        session.insert("blob", &"x".repeat(len)).unwrap();
        match h.engine.finish(&session, h.engine.now()) {
            Ok(_) => fits = len,
            Err(SessionError::CookieTooLarge { .. }) => too_long = len,
            Err(other) => panic!("{other}"),
        }
    }
    let mut browser = Browser::new();
    h.request(&mut browser, |s| {
        s.insert("blob", &"x".repeat(fits)).unwrap()
    })
    .await;
    browser
}

/// [`full_cookie`] after its touches stopped fitting: its next touch would
/// be too large to send.
async fn cookie_whose_touch_no_longer_fits(h: &Harness) -> Browser {
    let mut browser = full_cookie(h).await;
    // Touch until one is skipped (the version gains a byte at 128).
    for _ in 0..130 {
        h.advance_secs(61);
        let (_, set) = request_with(&h.engine, &mut browser, |s| s.get_value("blob"))
            .await
            .unwrap();
        if set.is_none() {
            return browser;
        }
    }
    panic!("no touch was too large to send");
}

/// Key rotation still moves a full cookie to the current key: its touch
/// does not fit, so the cookie is re-issued as it is (untouched) under the
/// current key, and then read under that key with no error.
#[tokio::test]
async fn a_full_cookie_under_a_previous_key_is_reissued_untouched() {
    let h = harness();
    let mut browser = cookie_whose_touch_no_longer_fits(&h).await;
    let old_value = browser.get("id").unwrap().to_owned();
    let new_key = Key::generate();
    let rotated = h.sibling(|c| {
        c.with_storage(Storage::Cookie)
            .with_keys(KeyRing::new(new_key.clone()).with_previous(support::fixed_key()))
    });
    h.advance_secs(61);
    let (blob, set) = request_with(&rotated, &mut browser, |s| {
        s.get::<String>("blob").unwrap().map(|b| b.len())
    })
    .await
    .expect("a read of a full cookie under a previous key is no error");
    assert!(blob.is_some());
    let set = set.expect("re-issued under the current key");
    let new_value = browser.get("id").unwrap();
    assert_ne!(new_value, old_value);
    assert_eq!(
        new_value.len(),
        old_value.len(),
        "the same record, sealed again"
    );
    assert!(
        codec::open(&KeyRing::new(new_key.clone()), "id", new_value).is_ok(),
        "{set}"
    );
    // Under the current key now: its touch is skipped as before, no error.
    h.advance_secs(61);
    let (again, set) = request_with(&rotated, &mut browser, |s| {
        s.get::<String>("blob").unwrap().map(|b| b.len())
    })
    .await
    .expect("a read under the current key is no error");
    assert_eq!(again, blob);
    assert_eq!(set, None);
}

/// When even the untouched cookie no longer fits under the current key
/// (here a `Domain` was added to the cookie's attributes), a read under
/// the previous key is still no error, before its touch is due and after:
/// nothing is sent, and the session stays readable.
#[tokio::test]
async fn a_reissue_that_no_longer_fits_is_skipped_not_an_error() {
    let h = harness();
    let mut browser = full_cookie(&h).await;
    let old_value = browser.get("id").unwrap().to_owned();
    let rotated = h.sibling(|c| {
        c.with_storage(Storage::Cookie)
            .with_keys(KeyRing::new(Key::generate()).with_previous(support::fixed_key()))
            .with_domain(Some("sessions.example.com".into()))
    });
    for _ in 0..2 {
        let (blob, set) = request_with(&rotated, &mut browser, |s| {
            s.get::<String>("blob").unwrap().map(|b| b.len())
        })
        .await
        .expect("a read whose re-issue would not fit is no error");
        assert!(blob.is_some());
        assert_eq!(set, None);
        assert_eq!(browser.get("id"), Some(old_value.as_str()));
        h.advance_secs(61);
    }
}

#[tokio::test]
async fn expiry_is_enforced_from_inside_the_cookie() {
    let h = Harness::with(|c| {
        c.with_storage(Storage::Cookie)
            .with_idle_timeout(Some(Duration::minutes(10)))
    });
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    h.advance_secs(11 * 60);
    // The browser would have dropped it; a replayed copy is still refused.
    let (user, set) = h.request(&mut browser, |s| s.get_value("user")).await;
    assert_eq!(user, None);
    assert_eq!(attribute(set.as_deref().unwrap(), "Max-Age"), Some("0"));
}

/// A browser that keeps an ended session's cookie at an old `Path` or
/// `Domain` (a browser-session cookie outlives the session) sends it beside
/// the live one, in either order: the live one is the session, and nothing
/// clears it. When both have ended, the request starts afresh.
#[tokio::test]
async fn an_ended_cookie_beside_a_live_one_does_not_hide_it() {
    let h = Harness::with(|c| {
        c.with_storage(Storage::Cookie)
            .with_idle_timeout(Some(Duration::minutes(10)))
            .with_persistent_cookie(false)
    });
    let mut old = Browser::new();
    h.request(&mut old, |s| s.insert("user", "old").unwrap())
        .await;
    h.advance_secs(11 * 60);
    let mut live = Browser::new();
    h.request(&mut live, |s| s.insert("user", "alice").unwrap())
        .await;
    let (ended, current) = (old.cookies["id"].clone(), live.cookies["id"].clone());

    support::the_live_cookie_wins(&h.engine, &ended, &current).await;

    h.advance_secs(11 * 60);
    let mut both = Browser::new();
    both.raw_headers
        .push(format!("id={ended}; id={current}").into_bytes());
    let (user, set) = h.request(&mut both, |s| s.get_value("user")).await;
    assert_eq!(user, None);
    assert_eq!(attribute(set.as_deref().unwrap(), "Max-Age"), Some("0"));
}

/// Two live sealed cookies (the cookie moved to another `Path`, and the
/// browser sends the old one first): the one sealed last is the session,
/// so that the writes, which go into the new cookie, are read back.
#[tokio::test]
async fn of_two_live_cookies_the_one_sealed_last_is_the_session() {
    let h = harness();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("cart", &["apple"]).unwrap())
        .await;
    let old = browser.get("id").unwrap().to_owned();
    h.advance_secs(5);
    h.request(&mut browser, |s| {
        s.update("cart", |c: Option<Vec<String>>| {
            let mut c = c.unwrap_or_default();
            c.push("pear".into());
            c
        })
        .unwrap();
    })
    .await;
    let new = browser.get("id").unwrap().to_owned();
    assert_ne!(old, new);
    for header in [format!("id={old}; id={new}"), format!("id={new}; id={old}")] {
        let mut both = Browser::new();
        both.raw_headers.push(header.clone().into_bytes());
        let (cart, _) = h.request(&mut both, |s| s.get::<Vec<String>>("cart")).await;
        assert_eq!(
            cart.unwrap(),
            Some(vec!["apple".to_owned(), "pear".to_owned()]),
            "{header}"
        );
    }
    // A write through the pair is read back through it.
    let mut both = Browser::new();
    both.raw_headers
        .push(format!("id={old}; id={new}").into_bytes());
    h.request(&mut both, |s| s.insert("n", &1).unwrap()).await;
    let newest = both.get("id").unwrap().to_owned();
    let mut three = Browser::new();
    three
        .raw_headers
        .push(format!("id={old}; id={newest}").into_bytes());
    let (n, _) = h.request(&mut three, |s| s.get::<u32>("n")).await;
    assert_eq!(n.unwrap(), Some(1));
}

#[tokio::test]
async fn destroy_clears_the_cookie_but_a_kept_copy_stays_readable() {
    let h = harness();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    let copy = browser.clone();
    let (_, set) = h.request(&mut browser, |s| s.destroy()).await;
    assert_eq!(attribute(set.as_deref().unwrap(), "Max-Age"), Some("0"));
    assert_eq!(browser.get("id"), None);

    // Documented limitation: nothing server-side can revoke the old cookie.
    let mut replay = copy;
    let (user, _) = h.request(&mut replay, |s| s.get_value("user")).await;
    assert_eq!(user, Some(json!("alice")));
}

#[tokio::test]
async fn cookie_moved_to_another_name_or_tampered_is_nothing() {
    let h = harness();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    let value = browser.get("id").unwrap().to_owned();
    assert!(codec::open(h.engine.config().keys(), "pref", &value).is_err());

    // One character changed anywhere: the version, the nonce, the
    // ciphertext, the tag.
    for i in 0..value.len() {
        let mut tampered = value.clone().into_bytes();
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        let mut other = Browser::new();
        other.set("id", std::str::from_utf8(&tampered).unwrap());
        let (state, set) = h
            .request(&mut other, |s| (s.is_new(), s.get_value("user")))
            .await;
        assert_eq!(state, (true, None), "character {i} changed");
        assert_eq!(set, None, "character {i} changed");
    }
}

#[tokio::test]
async fn regenerate_in_cookie_mode_issues_a_new_cookie_with_the_data() {
    let h = harness();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("cart", &["apple"]).unwrap())
        .await;
    let before = browser.get("id").unwrap().to_owned();
    let (_, set) = h.request(&mut browser, |s| s.regenerate()).await;
    assert!(set.is_some());
    assert_ne!(browser.get("id").unwrap(), before);
    let (cart, _) = h.request(&mut browser, |s| s.get_value("cart")).await;
    assert_eq!(cart, Some(json!(["apple"])));
}

/// Cookies sealed before the binary plaintext format (the record's JSON,
/// `Record::to_bytes`) still open: a browser keeps its cookie across a
/// deploy. The next write seals the binary format.
#[tokio::test]
async fn a_cookie_of_the_json_format_still_opens() {
    let h = harness();
    let now = h.engine.now();
    let mut record = session_core::Record::new(now, Some(now + Duration::hours(1)));
    record.data.insert("user", json!("alice"));
    let value = codec::seal(&support::fixed_key(), "id", &record.to_bytes()).unwrap();
    let mut browser = Browser::new();
    browser.set("id", &value);

    let (user, set) = h
        .request(&mut browser, |s| {
            let user = s.get_value("user");
            s.insert("views", &1).unwrap();
            user
        })
        .await;
    assert_eq!(user, Some(json!("alice")));
    let set = set.expect("the write seals the session again");
    let new_value = browser.get("id").unwrap();
    assert!(set.starts_with("id=p1."), "{set}");
    assert!(
        new_value.len() < value.len(),
        "the binary format is shorter: {new_value} against {value}"
    );
    let (both, _) = h
        .request(&mut browser, |s| {
            (s.get_value("user"), s.get_value("views"))
        })
        .await;
    assert_eq!(both, (Some(json!("alice")), Some(json!(1))));
}

/// A JSON-format cookie under a previous key, with a lifetime of its own
/// (the record format's `l`), is read whole and moves to the current key
/// in the binary format on a read.
#[tokio::test]
async fn a_json_cookie_under_a_previous_key_keeps_its_lifetime_and_moves_key() {
    let h = harness();
    let now = h.engine.now();
    let lifetime = Lifetime::default()
        .with_idle_timeout(Some(Duration::days(30)))
        .with_persistent(true);
    let mut record = session_core::Record::new(now, Some(now + Duration::days(1)));
    record.lifetime = lifetime;
    record.data.insert("user", json!("alice"));
    let json = record.to_bytes();
    assert!(
        String::from_utf8_lossy(&json).contains(r#""l":"#),
        "{json:?}"
    );
    let value = codec::seal(&support::fixed_key(), "id", &json).unwrap();
    let rotated = h.sibling(|c| {
        c.with_storage(Storage::Cookie)
            .with_keys(KeyRing::new(Key::generate()).with_previous(support::fixed_key()))
    });
    let mut browser = Browser::new();
    browser.set("id", &value);

    /// The user and the lifetime a request of `browser` reads.
    async fn user_and_lifetime(
        engine: &session_core::Engine,
        browser: &mut Browser,
    ) -> ((Option<serde_json::Value>, Lifetime), Option<String>) {
        request_with(engine, browser, |s| (s.get_value("user"), s.lifetime()))
            .await
            .unwrap()
    }
    let (read, set) = user_and_lifetime(&rotated, &mut browser).await;
    assert_eq!(read, (Some(json!("alice")), lifetime));
    set.expect("re-issued under the current key");
    let new_value = browser.get("id").unwrap().to_owned();
    assert!(
        new_value.len() < value.len(),
        "the binary format is shorter"
    );
    // The old ring no longer opens it: it is under the new key now.
    let (gone, _) = h.request(&mut browser, |s| s.get_value("user")).await;
    assert_eq!(gone, None);
    let mut browser = Browser::new();
    browser.set("id", &new_value);
    let (read, _) = user_and_lifetime(&rotated, &mut browser).await;
    assert_eq!(read, (Some(json!("alice")), lifetime));
}
