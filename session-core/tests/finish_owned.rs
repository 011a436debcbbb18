//! `Engine::finish_owned` makes the same plan as `Engine::finish`, moving
//! the session's data when it may and copying it when another handle on
//! the session is alive.

mod support;

use std::sync::Arc;

use session_core::{Engine, KeyRing, SequenceRandom, Session, SessionConfig};
use support::{Browser, Harness, fixed_key, open_with, request_with, same_plans_as_finish};

#[tokio::test]
async fn finish_owned_plans_exactly_as_finish_through_a_whole_session() {
    same_plans_as_finish(
        async |h: &Harness, browser: &Browser, handler: &dyn Fn(&Session)| {
            let session = h.open(browser).await;
            handler(&session);
            h.engine.finish_owned(session, h.engine.now()).unwrap()
        },
    )
    .await;
}

#[tokio::test]
async fn another_live_handle_keeps_its_data() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("cart", &["apple"]).unwrap())
        .await;

    let session = h.open(&browser).await;
    session.insert("cart", &["apple", "pear"]).unwrap();
    let kept = session.clone();
    let plan = h.engine.finish_owned(session, h.engine.now()).unwrap();
    assert!(format!("{plan:?}").contains("pear"), "{plan:?}");
    assert_eq!(
        kept.get::<Vec<String>>("cart").unwrap().unwrap(),
        ["apple", "pear"]
    );
    assert!(
        kept.is_modified(),
        "the live handle still shows its changes"
    );
}

#[tokio::test]
async fn an_owned_session_opened_from_a_cookie_store_cookie_plans_the_same() {
    let engine = |seed| {
        Engine::new(
            SessionConfig::new(KeyRing::new(fixed_key()))
                .with_storage(session_core::Storage::Cookie)
                .with_random(Arc::new(SequenceRandom::starting_at(seed))),
        )
        .unwrap()
    };
    // The cookie: a session sealed by a third engine.
    let mut browser = Browser::new();
    let (_, set_cookie) = request_with(&engine(1), &mut browser, |s| {
        s.insert("theme", "dark").unwrap();
    })
    .await
    .unwrap();
    assert!(set_cookie.is_some(), "a cookie-store session was sent");

    // Two engines alike (the same sequence of nonces) open it and change it.
    let (a, b) = (engine(3), engine(3));
    let now = a.now();
    let session = open_with(&a, &browser).await;
    assert!(!session.is_new(), "opened from the cookie");
    session.insert("lang", "fr").unwrap();
    let plan_a = a.finish(&session, now).unwrap();
    let session = open_with(&b, &browser).await;
    assert_eq!(
        session.get::<String>("theme").unwrap().as_deref(),
        Some("dark")
    );
    session.insert("lang", "fr").unwrap();
    let plan_b = b.finish_owned(session, now).unwrap();
    assert!(!plan_a.is_noop(), "{plan_a:?}");
    // The sealed session is the cookie's value, which `Debug` leaves out.
    assert_eq!(plan_a.cookie, plan_b.cookie);
    assert_eq!(format!("{plan_a:?}"), format!("{plan_b:?}"));
}
