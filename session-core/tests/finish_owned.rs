//! `Engine::finish_owned` makes the same plan as `Engine::finish`, moving
//! the session's data when it may and copying it when another handle on
//! the session is alive.

mod support;

use std::sync::Arc;

use session_core::{Engine, KeyRing, SequenceRandom, Session, SessionConfig};
use support::{Browser, Harness, commit_into, fixed_key, open_with, twins, whole_session};

/// Runs one request on each twin, `finish` on the first and `finish_owned`
/// on the second, and returns both plans (committed, so the browsers move
/// on together).
async fn both(
    (a, b): &(Harness, Harness),
    (ba, bb): (&mut Browser, &mut Browser),
    handler: impl Fn(&Session),
) -> (String, String) {
    let plan_a = {
        let session = a.open(ba).await;
        handler(&session);
        a.engine.finish(&session, a.engine.now()).unwrap()
    };
    let plan_b = {
        let session = b.open(bb).await;
        handler(&session);
        b.engine.finish_owned(session, b.engine.now()).unwrap()
    };
    let shown = (format!("{plan_a:?}"), format!("{plan_b:?}"));
    commit_into(&a.engine, plan_a, ba).await;
    commit_into(&b.engine, plan_b, bb).await;
    shown
}

#[tokio::test]
async fn finish_owned_plans_exactly_as_finish_through_a_whole_session() {
    let twins = twins();
    let (mut ba, mut bb) = (Browser::new(), Browser::new());
    for (step, handler) in whole_session() {
        let (a, b) = both(&twins, (&mut ba, &mut bb), handler).await;
        assert_eq!(a, b, "{step}");
    }
    // A touch after the touch interval, with nothing changed.
    twins.0.advance_secs(120);
    twins.1.advance_secs(120);
    let (a, b) = both(&twins, (&mut ba, &mut bb), |_| {}).await;
    assert!(a.contains("Save"), "{a}");
    assert_eq!(a, b, "touch");
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
    let (a, b) = (engine(3), engine(3));
    let now = a.now();
    let session = open_with(&a, &Browser::new()).await;
    session.insert("theme", "dark").unwrap();
    let plan_a = a.finish(&session, now).unwrap();
    let session = open_with(&b, &Browser::new()).await;
    session.insert("theme", "dark").unwrap();
    let plan_b = b.finish_owned(session, now).unwrap();
    assert_eq!(format!("{plan_a:?}"), format!("{plan_b:?}"));
}
