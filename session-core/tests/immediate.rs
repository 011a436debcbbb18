//! Stores that answer at once (`SessionStore::immediate`): the engine
//! commits without a future, with the same outcomes as `commit`.

mod support;

use std::sync::Arc;

use session_core::{
    CommitNow, Engine, ImmediateStore, KeyRing, ManualClock, MemoryStore, Record, SaveOutcome,
    Session, SessionConfig, SessionError, SessionStore, StoreError, StoreKey, StoreOp,
};
use support::{Browser, Faces, Harness, START, fixed_key, open_with};

fn push(item: &'static str) -> impl Fn(Option<Vec<String>>) -> Vec<String> + Send + Sync {
    move |list| {
        let mut list = list.unwrap_or_default();
        list.push(item.to_owned());
        list
    }
}

/// An engine on `store` and a manual clock.
fn engine_on(store: Arc<dyn SessionStore>, clock: ManualClock) -> Engine {
    Engine::new(
        SessionConfig::new(KeyRing::new(fixed_key()))
            .with_clock(Arc::new(clock))
            .with_store(store),
    )
    .unwrap()
}

/// An engine on a memory store (immediate), both on one manual clock.
fn memory_engine() -> (Engine, Arc<MemoryStore>) {
    let clock = ManualClock::new(START);
    let store = Arc::new(MemoryStore::with_clock(Arc::new(clock.clone())));
    (engine_on(store.clone(), clock), store)
}

fn done(outcome: CommitNow) -> Option<String> {
    match outcome {
        CommitNow::Done(set_cookie) => set_cookie,
        other => panic!("expected Done, got {other:?}"),
    }
}

fn finish(engine: &Engine, session: &Session) -> session_core::Plan {
    engine.finish(session, engine.now()).unwrap()
}

#[tokio::test]
async fn the_memory_store_commits_at_once_and_merges_concurrent_changes() {
    let (engine, _) = memory_engine();
    let mut browser = Browser::new();
    let first = open_with(&engine, &browser).await;
    first.update("cart", push("apple")).unwrap();
    let set_cookie = done(engine.commit_now(finish(&engine, &first))).expect("a new session");
    browser.absorb(&set_cookie);

    // Two requests load the same version; both push; both commit at once.
    let a = open_with(&engine, &browser).await;
    let b = open_with(&engine, &browser).await;
    a.update("cart", push("pear")).unwrap();
    b.update("cart", push("plum")).unwrap();
    let plan_a = finish(&engine, &a);
    let plan_b = finish(&engine, &b);
    // Within the touch interval: saved, and no cookie to re-send.
    assert_eq!(done(engine.commit_now(plan_a)), None);
    // The second meets the first's version in the store and replays its push.
    assert_eq!(done(engine.commit_now(plan_b)), None);

    let cart: Vec<String> = open_with(&engine, &browser)
        .await
        .get("cart")
        .unwrap()
        .unwrap();
    assert_eq!(cart, ["apple", "pear", "plum"]);
}

/// A session with `["apple"]` in its cart on a memory engine, and two
/// requests of it opened at once: a log-in, and another writer.
async fn login_beside_a_writer() -> (Engine, Arc<MemoryStore>, Browser, Session, Session) {
    let (engine, store) = memory_engine();
    let mut browser = Browser::new();
    let first = open_with(&engine, &browser).await;
    first.update("cart", push("apple")).unwrap();
    browser.absorb(&done(engine.commit_now(finish(&engine, &first))).unwrap());
    let login = open_with(&engine, &browser).await;
    let writer = open_with(&engine, &browser).await;
    (engine, store, browser, login, writer)
}

/// As with a store that waits (`concurrency.rs`): a log-in keeps what a
/// request of the old id saved while it ran.
#[tokio::test]
async fn a_login_carries_over_a_write_that_landed_while_it_ran() {
    let (engine, store, mut browser, login, writer) = login_beside_a_writer().await;
    writer.update("cart", push("pear")).unwrap();
    assert_eq!(done(engine.commit_now(finish(&engine, &writer))), None);

    login.insert("user", "alice").unwrap();
    login.regenerate();
    browser.absorb(&done(engine.commit_now(finish(&engine, &login))).unwrap());
    let session = open_with(&engine, &browser).await;
    assert_eq!(
        session.get::<String>("user").unwrap().as_deref(),
        Some("alice")
    );
    let cart: Vec<String> = session.get("cart").unwrap().unwrap();
    assert_eq!(cart, ["apple", "pear"]);
    assert_eq!(store.len(), 1, "the old record is gone");
}

/// When what another request saved cannot take the log-in's changes (its
/// `update` meets a value of another type), the log-in still stands, with
/// its own view of the session: a warning, not a 500 that would lose both.
#[tokio::test]
async fn a_login_whose_carry_over_fails_still_logs_in() {
    let (engine, store, mut browser, login, writer) = login_beside_a_writer().await;
    writer.insert("cart", "not a list").unwrap();
    assert_eq!(done(engine.commit_now(finish(&engine, &writer))), None);

    login.update("cart", push("pear")).unwrap();
    login.regenerate();
    let set_cookie = done(engine.commit_now(finish(&engine, &login)));
    browser.absorb(&set_cookie.expect("the log-in's new cookie"));
    let cart: Vec<String> = open_with(&engine, &browser)
        .await
        .get("cart")
        .unwrap()
        .unwrap();
    assert_eq!(cart, ["apple", "pear"]);
    assert_eq!(store.len(), 1, "the old record is gone");
}

/// As with a store that waits (`concurrency.rs`): a log-in committed after
/// a log-out of the same session brings nothing back, and the second of
/// two log-ins of one id leaves no second session.
#[tokio::test]
async fn a_login_after_the_session_ended_brings_nothing_back() {
    let (engine, store, _, login, logout) = login_beside_a_writer().await;
    logout.destroy();
    let removal = done(engine.commit_now(finish(&engine, &logout))).unwrap();
    assert!(removal.contains("Max-Age=0"), "{removal}");
    login.insert("user", "alice").unwrap();
    login.regenerate();
    assert_eq!(done(engine.commit_now(finish(&engine, &login))), None);
    assert!(store.is_empty(), "the new record was deleted again");

    let (engine, store, _, first, second) = login_beside_a_writer().await;
    for login in [&first, &second] {
        login.regenerate();
    }
    assert!(done(engine.commit_now(finish(&engine, &first))).is_some());
    assert_eq!(done(engine.commit_now(finish(&engine, &second))), None);
    assert_eq!(store.len(), 1, "one live session");
}

#[tokio::test]
async fn a_store_that_waits_gets_its_plan_back_for_commit() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("n", &1).unwrap())
        .await;
    let session = h.open(&browser).await;
    session.insert("n", &2).unwrap();
    let plan = h.engine.finish(&session, h.engine.now()).unwrap();
    let CommitNow::Wait(plan) = h.engine.commit_now(plan) else {
        panic!("the recording store is not immediate: the plan must come back");
    };
    assert!(matches!(plan.store, StoreOp::Save { .. }), "untouched");
    assert_eq!(h.engine.commit(plan).await.unwrap(), None, "no touch due");
    let (n, _) = h
        .request(&mut browser, |s| s.get::<u32>("n").unwrap())
        .await;
    assert_eq!(n, Some(2));
}

#[tokio::test]
async fn a_plan_without_store_work_is_done_at_once_even_with_a_store_that_waits() {
    let h = Harness::new();
    let session = h.open(&Browser::new()).await;
    let plan = h.engine.finish(&session, h.engine.now()).unwrap();
    assert_eq!(done(h.engine.commit_now(plan)), None);
    assert!(h.store.take_calls().is_empty());
}

#[tokio::test]
async fn a_save_after_a_concurrent_destroy_sends_no_cookie_and_resurrects_nothing() {
    let (engine, store) = memory_engine();
    let mut browser = Browser::new();
    let first = open_with(&engine, &browser).await;
    first.insert("user", "alice").unwrap();
    browser.absorb(&done(engine.commit_now(finish(&engine, &first))).unwrap());

    let writer = open_with(&engine, &browser).await;
    let logout = open_with(&engine, &browser).await;
    logout.destroy();
    let removal = done(engine.commit_now(finish(&engine, &logout))).unwrap();
    assert!(removal.contains("Max-Age=0"), "{removal}");

    writer.insert("cart", &["apple"]).unwrap();
    // The logout's removal stands; the writer sends nothing after it.
    assert_eq!(done(engine.commit_now(finish(&engine, &writer))), None);
    assert!(store.is_empty(), "nothing was resurrected");
}

/// A store that answers at once and fails every write.
#[derive(Debug, Default)]
struct BrokenImmediate {
    inner: MemoryStore,
}

fn broken() -> StoreError {
    StoreError::Backend("disk on fire".into())
}

impl ImmediateStore for BrokenImmediate {
    fn load_now(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.inner.immediate().unwrap().load_now(key)
    }
    fn create_now(&self, _: &StoreKey, _: &Record) -> Result<(), StoreError> {
        Err(broken())
    }
    fn save_now(&self, _: &StoreKey, _: &Record, _: u64) -> Result<SaveOutcome, StoreError> {
        Err(broken())
    }
    fn delete_now(&self, _: &StoreKey) -> Result<(), StoreError> {
        Err(broken())
    }
}

#[tokio::test]
async fn a_failing_immediate_store_is_an_error_and_commit_agrees() {
    let engine = engine_on(
        Arc::new(Faces {
            store: BrokenImmediate::default(),
            immediate: true,
        }),
        ManualClock::new(START),
    );
    let session = open_with(&engine, &Browser::new()).await;
    session.insert("n", &1).unwrap();
    let CommitNow::Failed(error) = engine.commit_now(finish(&engine, &session)) else {
        panic!("a failed create must be reported");
    };
    assert!(
        matches!(error, SessionError::Store(StoreError::Backend(_))),
        "{error}"
    );

    let session = open_with(&engine, &Browser::new()).await;
    session.insert("n", &1).unwrap();
    let error = engine.commit(finish(&engine, &session)).await.unwrap_err();
    assert!(error.to_string().contains("disk on fire"), "{error}");
}

/// `load_now_at` and `commit_now_at` give the engine's own memory store the
/// adapter's time instead of letting it read the clock: the store judges
/// expiry at that time.
#[test]
fn the_engines_memory_store_judges_expiry_at_the_time_it_is_given() {
    use session_core::{LoadNow, Timestamp};
    use time::Duration;

    let clock = ManualClock::new(START);
    let engine = Engine::new(
        SessionConfig::new(KeyRing::new(fixed_key()))
            .with_clock(Arc::new(clock.clone()))
            .with_idle_timeout(Some(Duration::minutes(30))),
    )
    .unwrap();
    let start = Timestamp::from(START);
    let session = engine.open(Default::default(), start);
    session.insert("user", "alice").unwrap();
    let plan = engine.finish_owned(session, start).unwrap();
    let set_cookie = done(engine.commit_now_at(plan, start)).expect("a new session");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let user = |loaded| {
        engine
            .open(loaded, start + Duration::minutes(1))
            .get::<String>("user")
            .unwrap()
    };

    // The clock has moved past the idle timeout: read now, the record is
    // gone; at a time the caller gives from before that, it is there.
    clock.advance(Duration::minutes(31));
    let at = |now: Timestamp| match engine.load_now_at(engine.read([cookie.as_bytes()]), now) {
        LoadNow::Done(loaded) => loaded,
        other => panic!("the memory store answers at once, not {other:?}"),
    };
    assert_eq!(
        user(at(start + Duration::minutes(1))).as_deref(),
        Some("alice")
    );
    let LoadNow::Done(loaded) = engine.load_now(engine.read([cookie.as_bytes()])) else {
        panic!("the memory store answers at once");
    };
    assert_eq!(user(loaded), None);
}
