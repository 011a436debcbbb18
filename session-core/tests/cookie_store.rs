//! Cookie-store mode: the whole session in one encrypted cookie.

mod support;

use serde_json::json;
use session_core::{SessionError, Storage, codec};
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
/// touch that would make it one byte too long (its version number gains a
/// digit) is skipped, not an error on a read-only request.
#[tokio::test]
async fn a_touch_that_would_pass_the_size_limit_is_skipped_not_an_error() {
    let h = harness();
    // The longest value whose cookie still fits.
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

    // Touches bump the version 0 → 12: at 10 the cookie would grow.
    let mut skipped = 0;
    for _ in 0..12 {
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

    let mut tampered = value.into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let mut other = Browser::new();
    other.set("id", std::str::from_utf8(&tampered).unwrap());
    let (state, set) = h
        .request(&mut other, |s| (s.is_new(), s.get_value("user")))
        .await;
    assert_eq!(state, (true, None));
    assert_eq!(set, None);
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
