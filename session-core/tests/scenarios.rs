//! Stories over the engine, as a user lives them: a fake browser, a manual
//! clock, the memory store.

mod support;

use serde_json::json;
use session_core::{Key, KeyRing};
use support::{Browser, Harness};
use time::Duration;

#[tokio::test]
async fn shop_then_log_in_then_log_out() {
    let h = Harness::new();
    let mut browser = Browser::new();

    // An anonymous visitor fills a cart.
    h.request(&mut browser, |s| {
        s.update("cart", |c: Option<Vec<String>>| {
            let mut c = c.unwrap_or_default();
            c.push("apple".into());
            c
        })
        .unwrap();
    })
    .await;
    let anonymous_id = browser.get("id").unwrap().to_owned();

    // Logging in changes the id and keeps the cart.
    h.request(&mut browser, |s| {
        s.regenerate();
        s.insert("user", &json!({"username": "alice"})).unwrap();
    })
    .await;
    assert_ne!(browser.get("id").unwrap(), anonymous_id);
    let (data, _) = h
        .request(&mut browser, |s| (s.get_value("user"), s.get_value("cart")))
        .await;
    assert_eq!(
        data,
        (Some(json!({"username": "alice"})), Some(json!(["apple"])))
    );

    // An attacker who planted or saw the anonymous id gets nothing.
    let mut attacker = Browser::new();
    attacker.set("id", &anonymous_id);
    let (user, _) = h.request(&mut attacker, |s| s.get_value("user")).await;
    assert_eq!(user, None);

    // Logging out ends it all.
    h.request(&mut browser, |s| s.destroy()).await;
    assert_eq!(browser.get("id"), None);
    assert!(h.store.inner.is_empty());
}

#[tokio::test]
async fn flash_message_is_shown_once() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("flash", "Saved!").unwrap())
        .await;
    let (first, _) = h
        .request(&mut browser, |s| s.take::<String>("flash").unwrap())
        .await;
    let (second, _) = h
        .request(&mut browser, |s| s.take::<String>("flash").unwrap())
        .await;
    assert_eq!(first.as_deref(), Some("Saved!"));
    assert_eq!(second, None);
}

#[tokio::test]
async fn walk_away_and_come_back_after_the_idle_timeout() {
    let h = Harness::with(|c| c.with_idle_timeout(Some(Duration::minutes(30))));
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    h.advance_secs(29 * 60);
    let (user, _) = h.request(&mut browser, |s| s.get_value("user")).await;
    assert_eq!(user, Some(json!("alice")));
    h.advance_secs(31 * 60);
    let (user, _) = h.request(&mut browser, |s| s.get_value("user")).await;
    assert_eq!(user, None);
}

#[tokio::test]
async fn rotate_the_key_while_users_are_logged_in() {
    let h = Harness::new();
    let mut browsers: Vec<Browser> = (0..3).map(|_| Browser::new()).collect();
    for (i, b) in browsers.iter_mut().enumerate() {
        h.request(b, |s| s.insert("user", &format!("user{i}")).unwrap())
            .await;
    }
    // Deploy with a new key; the old one stays accepted.
    let new_key = Key::generate();
    let rotated = h.sibling(|c| {
        c.with_keys(KeyRing::new(new_key.clone()).with_previous(support::fixed_key()))
    });
    for (i, b) in browsers.iter_mut().enumerate() {
        let (user, set) = support::request_with(&rotated, b, |s| s.get_value("user"))
            .await
            .unwrap();
        assert_eq!(user, Some(json!(format!("user{i}"))));
        assert!(set.is_some(), "re-issued under the new key");
    }
    // Later deploy drops the old key: everyone is still logged in.
    let final_engine = h.sibling(|c| c.with_keys(KeyRing::new(new_key)));
    for (i, b) in browsers.iter_mut().enumerate() {
        let (user, _) = support::request_with(&final_engine, b, |s| s.get_value("user"))
            .await
            .unwrap();
        assert_eq!(user, Some(json!(format!("user{i}"))));
    }
}

#[tokio::test]
async fn tampering_with_the_cookie_logs_nobody_in() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    let value = browser.get("id").unwrap().to_owned();
    // One character changed anywhere: the version, a separator, the id, the
    // signature (its last character too, whose spare bits must be zero).
    for i in 0..value.len() {
        let mut bytes = value.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let mut mallory = Browser::new();
        mallory.set("id", std::str::from_utf8(&bytes).unwrap());
        let (state, set) = h
            .request(&mut mallory, |s| (s.is_new(), s.get_value("user")))
            .await;
        assert_eq!(state, (true, None), "character {i} changed");
        assert_eq!(set, None, "character {i} changed");
    }
    // The real cookie still works (and was in the verified cache all along).
    let (user, _) = h.request(&mut browser, |s| s.get_value("user")).await;
    assert_eq!(user, Some(json!("alice")));
}

/// A request sent before the browser had the log-in's cookie (from
/// another tab, a poll) still carries the old id. Served after the log-in
/// was committed, it finds no session; when it stores data, nothing is
/// stored and no cookie is sent, so that the log-in's cookie stands
/// whichever response reaches the browser last. A log-in on such a
/// request (a retry: its browser never got the first log-in's response)
/// goes through, and ten seconds later any such request starts a session
/// as usual. With a store that must be waited for and with the memory
/// store (at once), in one process.
#[tokio::test]
async fn a_request_with_the_id_from_before_a_log_in_does_not_replace_its_cookie() {
    let h = Harness::new();
    let memory = session_core::Engine::new(
        session_core::SessionConfig::new(KeyRing::new(support::fixed_key()))
            .with_clock(std::sync::Arc::new(h.clock.clone())),
    )
    .unwrap();
    for (engine, case) in [(&h.engine, "waited-for store"), (&memory, "memory store")] {
        let mut browser = Browser::new();
        support::request_with(engine, &mut browser, |s| {
            s.insert("cart", &["apple"]).unwrap();
        })
        .await
        .unwrap();
        let mut stale = browser.clone();
        support::request_with(engine, &mut browser, |s| {
            s.regenerate();
            s.insert("user", "alice").unwrap();
        })
        .await
        .unwrap();
        let logged_in = browser.get("id").unwrap().to_owned();

        let (new, set) = support::request_with(engine, &mut stale, |s| {
            let new = s.is_new();
            s.update("views", |n: Option<u64>| n.unwrap_or(0) + 1)
                .unwrap();
            new
        })
        .await
        .unwrap();
        assert!(new, "{case}: the old id names no session");
        assert_eq!(set, None, "{case}: no cookie to replace the log-in's");
        // A renewal of the id is no log-in: its data is dropped all the same.
        let (_, set) = support::request_with(engine, &mut stale.clone(), |s| {
            s.renew_id();
            s.insert("views", &1).unwrap();
        })
        .await
        .unwrap();
        assert_eq!(set, None, "{case}: a renewal on the old id sets no cookie");
        let (user, _) = support::request_with(engine, &mut browser, |s| s.get_value("user"))
            .await
            .unwrap();
        assert_eq!(user, Some(json!("alice")), "{case}");
        assert_eq!(browser.get("id"), Some(logged_in.as_str()), "{case}");

        let mut retry = stale.clone();
        let (_, set) = support::request_with(engine, &mut retry, |s| {
            s.regenerate();
            s.insert("user", "alice").unwrap();
        })
        .await
        .unwrap();
        assert!(set.is_some(), "{case}: a log-in retried with the old id");
        let (user, _) = support::request_with(engine, &mut retry, |s| s.get_value("user"))
            .await
            .unwrap();
        assert_eq!(user, Some(json!("alice")), "{case}");

        h.advance_secs(11);
        let (_, set) = support::request_with(engine, &mut stale, |s| {
            s.insert("views", &1).unwrap();
        })
        .await
        .unwrap();
        assert!(set.is_some(), "{case}: seconds later, a session as usual");
    }
    // In the waited-for store, nothing stored for the stale request: the
    // log-in's session, the retried log-in's, and the one started seconds
    // later.
    assert_eq!(h.store.inner.len(), 3);
}

/// The id from before a log-in beside a session cookie that has ended
/// (kept at another `Path`): the ended one's removal, made at the
/// configured `Path`, would clear the log-in's cookie as surely as a new
/// session's cookie would replace it, so neither is sent, in either order.
#[tokio::test]
async fn an_ended_session_beside_the_id_from_before_a_log_in_clears_nothing() {
    let day = Harness::with(|c| c.with_idle_timeout(Some(time::Duration::days(1))));
    let hour = day.sibling(|c| c.with_idle_timeout(Some(time::Duration::hours(1))));
    let mut old = Browser::new();
    day.request(&mut old, |s| s.insert("user", "old").unwrap())
        .await;
    day.advance_secs(2 * 3600);
    let mut browser = Browser::new();
    support::request_with(&hour, &mut browser, |s| {
        s.insert("cart", &["apple"]).unwrap()
    })
    .await
    .unwrap();
    let before = browser.get("id").unwrap().to_owned();
    support::request_with(&hour, &mut browser, |s| {
        s.regenerate();
        s.insert("user", "alice").unwrap();
    })
    .await
    .unwrap();
    let ended = old.get("id").unwrap().to_owned();
    for header in [
        format!("id={ended}; id={before}"),
        format!("id={before}; id={ended}"),
    ] {
        let mut stale = Browser::new();
        stale.raw_headers.push(header.clone().into_bytes());
        let (user, set) = support::request_with(&hour, &mut stale.clone(), |s| s.get_value("user"))
            .await
            .unwrap();
        assert_eq!(user, None, "{header}: no session");
        assert_eq!(set, None, "{header}: a read clears nothing");
        let (_, set) = support::request_with(&hour, &mut stale, |s| {
            s.insert("views", &1).unwrap();
        })
        .await
        .unwrap();
        assert_eq!(set, None, "{header}: a write sets nothing");
    }
}
