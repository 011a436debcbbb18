//! No lost updates: concurrent requests of one session merge instead of
//! overwriting each other.

mod support;

use serde_json::json;
use std::sync::Arc;

use session_core::{
    Engine, MemoryStore, Session, SessionConfig, SessionError, SessionStore, StoreOp,
};
use support::{Browser, CapturedLogs, Harness, open_with, request_with};

fn push(item: String) -> impl Fn(Option<Vec<String>>) -> Vec<String> + Send + Sync + 'static {
    move |list| {
        let mut list = list.unwrap_or_default();
        list.push(item.clone());
        list
    }
}

#[tokio::test]
async fn two_requests_changing_different_keys_both_survive() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("base", &0).unwrap())
        .await;

    // Both requests load version 1 before either saves.
    let a = h.open(&browser).await;
    let b = h.open(&browser).await;
    a.insert("from_a", "A").unwrap();
    b.insert("from_b", "B").unwrap();
    let plan_a = h.engine.finish(&a, h.engine.now()).unwrap();
    let plan_b = h.engine.finish(&b, h.engine.now()).unwrap();
    h.engine.commit(plan_a).await.unwrap();
    h.engine.commit(plan_b).await.unwrap();

    let (data, _) = h
        .request(&mut browser, |s| {
            (
                s.get_value("base"),
                s.get_value("from_a"),
                s.get_value("from_b"),
            )
        })
        .await;
    assert_eq!(data, (Some(json!(0)), Some(json!("A")), Some(json!("B"))));
}

#[tokio::test]
async fn twenty_interleaved_updates_of_one_list_lose_nothing() {
    let h = Harness::new();
    // A second engine on the same store: another server process.
    let other = h.sibling(|c| c);
    let mut browser = Browser::new();
    h.request(&mut browser, |s| {
        s.insert("cart", &Vec::<String>::new()).unwrap()
    })
    .await;

    // Worst case: all twenty load the same version before any saves, and
    // the saves alternate between the two processes, so every save but the
    // first meets a conflict in the store and replays its update.
    let mut sessions = Vec::new();
    for i in 0..20 {
        let s = h.open(&browser).await;
        s.update("cart", push(format!("item-{i}"))).unwrap();
        sessions.push(s);
    }
    for (i, s) in sessions.iter().enumerate() {
        let engine = if i % 2 == 0 { &h.engine } else { &other };
        let plan = engine.finish(s, engine.now()).unwrap();
        engine.commit(plan).await.unwrap();
    }
    let (cart, _) = h
        .request(&mut browser, |s| s.get::<Vec<String>>("cart").unwrap())
        .await;
    assert_eq!(sorted(cart.unwrap()), twenty_items());
}

/// `item-0` to `item-19`, sorted: what twenty pushes leave in a cart.
fn twenty_items() -> Vec<String> {
    sorted((0..20).map(|i| format!("item-{i}")).collect())
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

#[tokio::test]
async fn simultaneous_requests_in_one_process_save_once_each() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("n", &0).unwrap())
        .await;
    let sessions: Vec<_> = futures_like_join(&h, &browser, 20).await;
    h.store.take_calls();
    for (i, s) in sessions.iter().enumerate() {
        s.update("n", |n: Option<u64>| n.unwrap_or(0) + 1).unwrap();
        s.insert(&format!("key-{i}"), &i).unwrap();
    }
    for s in &sessions {
        let plan = h.engine.finish(s, h.engine.now()).unwrap();
        h.engine.commit(plan).await.unwrap();
    }
    let saves = h
        .store
        .take_calls()
        .into_iter()
        .filter(|c| matches!(c, support::Call::Save(_)))
        .count();
    assert_eq!(
        saves, 20,
        "each request saved once, on the previous one's record"
    );
    let (n, _) = h
        .request(&mut browser, |s| (s.get::<u64>("n").unwrap(), s.len()))
        .await;
    assert_eq!(n, (Some(20), 21));
}

/// Opens `n` sessions from the browser's cookie before any of them saves.
async fn futures_like_join(h: &Harness, browser: &Browser, n: usize) -> Vec<session_core::Session> {
    let mut sessions = Vec::new();
    for _ in 0..n {
        sessions.push(h.open(browser).await);
    }
    sessions
}

#[test]
fn twenty_parallel_appends_through_the_memory_store_lose_nothing() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    runtime.block_on(async {
        let h = std::sync::Arc::new(Harness::new());
        let mut browser = Browser::new();
        h.request(&mut browser, |s| {
            s.insert("cart", &Vec::<String>::new()).unwrap()
        })
        .await;
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let h = h.clone();
                let mut browser = browser.clone();
                tokio::spawn(async move {
                    request_with(&h.engine, &mut browser, |s| {
                        s.update("cart", push(format!("item-{i}"))).unwrap();
                    })
                    .await
                    .unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let (cart, _) = h
            .request(&mut browser, |s| s.get::<Vec<String>>("cart").unwrap())
            .await;
        assert_eq!(sorted(cart.unwrap()), twenty_items());
    });
}

#[tokio::test]
async fn a_touch_out_of_retries_gives_way_instead_of_failing_the_read() {
    let touch_60s = |c: SessionConfig| {
        c.with_max_conflict_retries(0)
            .with_touch_interval(time::Duration::seconds(60))
    };
    let h = Harness::with(touch_60s);
    let other = h.sibling(touch_60s);
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("n", &0).unwrap())
        .await;
    h.advance_secs(59);
    let writer = open_with(&h.engine, &browser).await;
    writer.insert("n", &1).unwrap();
    let write = h.engine.finish(&writer, h.engine.now()).unwrap();
    h.advance_secs(2);
    let reader = open_with(&other, &browser).await;
    let touch = other.finish(&reader, other.now()).unwrap();
    assert!(
        matches!(touch.store, StoreOp::Save { .. }),
        "a touch is due"
    );
    h.engine.commit(write).await.unwrap();
    // The touch meets the write (which kept the older last-use time) and has
    // no retry left: the read still succeeds.
    other
        .commit(touch)
        .await
        .expect("a read never fails on a conflict");
    let (n, _) = h
        .request(&mut browser, |s| s.get::<u32>("n").unwrap())
        .await;
    assert_eq!(n, Some(1));
}

#[tokio::test]
async fn conflicts_beyond_the_retry_limit_are_a_clear_error() {
    let h = Harness::with(|c| c.with_max_conflict_retries(0));
    let other = h.sibling(|c| c.with_max_conflict_retries(0));
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("n", &0).unwrap())
        .await;
    let a = open_with(&h.engine, &browser).await;
    let b = open_with(&other, &browser).await;
    a.insert("n", &1).unwrap();
    b.insert("n", &2).unwrap();
    let plan_a = h.engine.finish(&a, h.engine.now()).unwrap();
    let plan_b = other.finish(&b, other.now()).unwrap();
    h.engine.commit(plan_a).await.unwrap();
    let err = other.commit(plan_b).await.unwrap_err();
    assert!(
        matches!(err, SessionError::TooManyConflicts { attempts: 1 }),
        "{err}"
    );
    assert!(
        err.to_string().contains("with_max_conflict_retries"),
        "{err}"
    );
}

/// A session opened by a request that is still running when a logout of
/// the same session (opened alongside it) commits.
async fn a_writer_behind_a_logout(h: &Harness) -> session_core::Session {
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("user", "alice").unwrap())
        .await;
    let writer = h.open(&browser).await;
    let logout = h.open(&browser).await;
    logout.destroy();
    let plan = h.engine.finish(&logout, h.engine.now()).unwrap();
    h.engine.commit(plan).await.unwrap();
    writer
}

#[tokio::test]
async fn a_save_after_a_concurrent_destroy_does_not_resurrect_the_session() {
    let h = Harness::new();
    let writer = a_writer_behind_a_logout(&h).await;

    writer.insert("cart", &["apple"]).unwrap();
    let plan = h.engine.finish(&writer, h.engine.now()).unwrap();
    assert!(matches!(plan.store, StoreOp::Save { .. }));
    let set_cookie = h.engine.commit(plan).await.unwrap();
    assert_eq!(set_cookie, None, "the logout's removal stands");
    assert!(h.store.inner.is_empty(), "nothing was resurrected");
}

/// The writes a vanished session drops are logged at warn level, where
/// operators look.
#[tokio::test]
async fn writes_dropped_with_a_vanished_session_are_logged_as_a_warning() {
    let logs = CapturedLogs::start();
    let h = Harness::new();
    let writer = a_writer_behind_a_logout(&h).await;
    assert!(logs.text().is_empty());

    writer.insert("cart", &["apple"]).unwrap();
    let plan = h.engine.finish(&writer, h.engine.now()).unwrap();
    assert_eq!(h.engine.commit(plan).await.unwrap(), None);
    let text = logs.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("changes are dropped"), "{text}");
}

/// A request of the old id that finishes after a log-in gave the session a
/// new id sends no cookie: a removal (or the old id) arriving after the
/// log-in's `Set-Cookie` would log the user out.
#[tokio::test]
async fn a_write_that_finishes_after_a_login_leaves_the_new_cookie_alone() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("cart", &["apple"]).unwrap())
        .await;
    let old_cookie = browser.get("id").unwrap().to_owned();
    let writer = h.open(&browser).await;

    h.request(&mut browser, |s| {
        s.insert("user", "alice").unwrap();
        s.regenerate();
    })
    .await;
    assert_ne!(
        browser.get("id").unwrap(),
        old_cookie,
        "the log-in's new id"
    );

    writer.insert("theme", "dark").unwrap();
    let plan = h.engine.finish(&writer, h.engine.now()).unwrap();
    assert_eq!(h.engine.commit(plan).await.unwrap(), None);
    let (user, _) = h.request(&mut browser, |s| s.get_value("user")).await;
    assert_eq!(user, Some(json!("alice")), "still logged in");
}

#[tokio::test]
async fn a_replayed_update_on_a_value_of_another_type_fails_cleanly() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| {
        s.insert("cart", &Vec::<String>::new()).unwrap()
    })
    .await;
    let a = h.open(&browser).await;
    let b = h.open(&browser).await;
    a.insert("cart", "not a list any more").unwrap();
    b.update("cart", push("apple".into())).unwrap();
    let plan_a = h.engine.finish(&a, h.engine.now()).unwrap();
    let plan_b = h.engine.finish(&b, h.engine.now()).unwrap();
    h.engine.commit(plan_a).await.unwrap();
    let err = h.engine.commit(plan_b).await.unwrap_err();
    assert!(matches!(err, SessionError::Deserialize { .. }), "{err}");
}

/// A memory store whose saves take a moment (they yield to the runtime
/// once, like a store across a network, or until `hang` is lifted), and
/// that counts them. With `hold_takes`, a `take` signals `take_entered`
/// and waits for a permit of `take_go`. With `take_fails`, a `take` fails
/// (a timeout), after removing the record when `take_removes_first` (a
/// reply lost after the store ran it); with `delete_fails`, so does a
/// `delete`.
#[derive(Debug)]
struct SlowSaves {
    inner: session_core::MemoryStore,
    saves: std::sync::atomic::AtomicUsize,
    hang: std::sync::atomic::AtomicBool,
    hold_takes: bool,
    take_fails: bool,
    take_removes_first: bool,
    delete_fails: bool,
    take_finds_nothing: bool,
    take_entered: tokio::sync::Notify,
    take_go: tokio::sync::Semaphore,
}

impl SlowSaves {
    fn new(inner: session_core::MemoryStore) -> Self {
        Self {
            inner,
            saves: std::sync::atomic::AtomicUsize::new(0),
            hang: std::sync::atomic::AtomicBool::new(false),
            hold_takes: false,
            take_fails: false,
            take_removes_first: false,
            delete_fails: false,
            take_finds_nothing: false,
            take_entered: tokio::sync::Notify::new(),
            take_go: tokio::sync::Semaphore::new(0),
        }
    }
}

#[session_core::async_trait]
impl session_core::SessionStore for SlowSaves {
    async fn load(
        &self,
        key: &session_core::StoreKey,
    ) -> Result<Option<session_core::Record>, session_core::StoreError> {
        self.inner.load(key).await
    }
    async fn create(
        &self,
        key: &session_core::StoreKey,
        record: &session_core::Record,
    ) -> Result<(), session_core::StoreError> {
        self.inner.create(key, record).await
    }
    async fn save(
        &self,
        key: &session_core::StoreKey,
        record: &session_core::Record,
        expected_version: u64,
    ) -> Result<session_core::SaveOutcome, session_core::StoreError> {
        self.saves
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::task::yield_now().await;
        while self.hang.load(std::sync::atomic::Ordering::Relaxed) {
            tokio::task::yield_now().await;
        }
        self.inner.save(key, record, expected_version).await
    }
    async fn delete(&self, key: &session_core::StoreKey) -> Result<(), session_core::StoreError> {
        if self.delete_fails {
            return Err(timed_out());
        }
        self.inner.delete(key).await
    }
    async fn take(
        &self,
        key: &session_core::StoreKey,
    ) -> Result<Option<session_core::Record>, session_core::StoreError> {
        if self.hold_takes {
            self.take_entered.notify_one();
            let _permit = self.take_go.acquire().await.unwrap();
        }
        if self.take_fails {
            if self.take_removes_first {
                self.inner.delete(key).await?;
            }
            return Err(timed_out());
        }
        if self.take_finds_nothing {
            return Ok(None);
        }
        self.inner.take(key).await
    }
}

fn timed_out() -> session_core::StoreError {
    session_core::StoreError::Timeout { millis: 100 }
}

/// A harness whose store is a [`SlowSaves`] over a memory store on the
/// harness' manual clock (like every store of these tests), made by
/// `memory` from the plain one.
fn slow_harness(
    memory: impl FnOnce(session_core::MemoryStore) -> session_core::MemoryStore,
) -> (Harness, std::sync::Arc<SlowSaves>) {
    let mut slot = None;
    let h = Harness::with(|c| {
        let store = std::sync::Arc::new(SlowSaves::new(memory(
            session_core::MemoryStore::with_clock(c.clock().clone()),
        )));
        slot = Some(store.clone());
        c.with_store(store)
    });
    (h, slot.expect("the harness built its store"))
}

#[tokio::test]
async fn a_burst_of_requests_of_one_session_is_saved_in_a_few_grouped_saves() {
    let (h, store) = slow_harness(|store| store);
    let mut browser = Browser::new();
    h.request(&mut browser, |s| {
        s.insert("cart", &Vec::<String>::new()).unwrap()
    })
    .await;
    let engine = h.engine.clone();
    let local = tokio::task::LocalSet::new();
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let engine = engine.clone();
            let mut browser = browser.clone();
            local.spawn_local(async move {
                request_with(&engine, &mut browser, |s| {
                    s.update("cart", push(format!("item-{i}"))).unwrap();
                })
                .await
                .unwrap();
            })
        })
        .collect();
    local
        .run_until(async {
            for handle in handles {
                handle.await.unwrap();
            }
        })
        .await;
    let saves = store.saves.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        saves <= 3,
        "20 overlapping requests were saved in {saves} saves"
    );
    let (cart, _) = h
        .request(&mut browser, |s| s.get::<Vec<String>>("cart").unwrap())
        .await;
    assert_eq!(
        sorted(cart.unwrap()),
        twenty_items(),
        "every request's item is kept, once"
    );
}

/// Three requests of `browser`'s session on `h`, whose store hangs: A and
/// B write, C runs `third`. A takes the lane and hangs in the store, B and
/// C queue; A's client goes away, so B leads the group {B, C} and hangs
/// too; then B's client goes away mid-save. C's outcome.
async fn third_in_an_interrupted_group<R: 'static>(
    h: &Harness,
    browser: &Browser,
    third: impl FnOnce(&Session) -> R + 'static,
) -> Result<(R, Option<String>), SessionError> {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let write = |i: usize| {
                let engine = h.engine.clone();
                let mut browser = browser.clone();
                tokio::task::spawn_local(async move {
                    request_with(&engine, &mut browser, |s| {
                        s.insert(&format!("k{i}"), &i).unwrap();
                    })
                    .await
                })
            };
            let a = write(0);
            tokio::task::yield_now().await;
            let b = write(1);
            let c = {
                let engine = h.engine.clone();
                let mut browser = browser.clone();
                tokio::task::spawn_local(
                    async move { request_with(&engine, &mut browser, third).await },
                )
            };
            for _ in 0..5 {
                tokio::task::yield_now().await;
            }
            a.abort();
            for _ in 0..5 {
                tokio::task::yield_now().await;
            }
            b.abort();
            c.await.unwrap()
        })
        .await
}

#[tokio::test]
async fn requests_grouped_into_an_interrupted_save_get_an_error_not_a_second_save() {
    let (h, store) = slow_harness(|store| store);
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("n", &0).unwrap())
        .await;
    store.hang.store(true, std::sync::atomic::Ordering::Relaxed);
    // C must not save again blindly.
    let c = third_in_an_interrupted_group(&h, &browser, |s| {
        s.insert("k2", &2).unwrap();
    })
    .await;
    match c {
        Err(SessionError::Grouped(e)) => {
            assert!(matches!(*e, SessionError::SaveInterrupted), "{e}");
        }
        other => panic!("expected the interrupted group's error, got {other:?}"),
    }
}

/// A touch (a read once the touch interval has passed) grouped with
/// writes whose save is interrupted is skipped, not failed: it had nothing
/// to lose, so its request is answered, with no session cookie.
#[tokio::test]
async fn a_touch_grouped_into_an_interrupted_save_is_skipped() {
    let (h, store) = slow_harness(|store| store);
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("n", &0).unwrap())
        .await;
    h.advance_secs(120);
    store.hang.store(true, std::sync::atomic::Ordering::Relaxed);
    let (value, set_cookie) = third_in_an_interrupted_group(&h, &browser, |s| s.get_value("n"))
        .await
        .expect("a touch that failed with its group is skipped");
    assert_eq!(value, Some(serde_json::json!(0)));
    assert_eq!(set_cookie, None, "no cookie for a touch not stored");
}

/// A group of saves whose record is too large for the store is saved again
/// one request at a time: the request whose changes are too large fails,
/// the others of its group are saved.
#[tokio::test]
async fn a_grouped_save_too_large_for_the_store_fails_only_the_request_that_made_it_so() {
    let (h, store) = slow_harness(|store| store.with_max_record_size(1500));
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("n", &0).unwrap())
        .await;
    store.hang.store(true, std::sync::atomic::Ordering::Relaxed);

    let local = tokio::task::LocalSet::new();
    let (big, small) = local
        .run_until(async {
            let spawn = |key: &'static str, len: usize| {
                let engine = h.engine.clone();
                let mut browser = browser.clone();
                tokio::task::spawn_local(async move {
                    request_with(&engine, &mut browser, |s| {
                        s.insert(key, &"x".repeat(len)).unwrap();
                    })
                    .await
                })
            };
            // A takes the lane and hangs in the store; B (too large) and C
            // queue, and B leads them once A is done.
            let a = spawn("a", 10);
            tokio::task::yield_now().await;
            let b = spawn("big", 2000);
            let c = spawn("small", 10);
            for _ in 0..5 {
                tokio::task::yield_now().await;
            }
            store
                .hang
                .store(false, std::sync::atomic::Ordering::Relaxed);
            a.await.unwrap().unwrap();
            (b.await.unwrap(), c.await.unwrap())
        })
        .await;
    match big {
        Err(SessionError::Store(session_core::StoreError::TooLarge { limit: 1500, .. })) => {}
        other => panic!("expected the big request's own TooLarge, got {other:?}"),
    }
    small.expect("the small request of the group is saved");
    // A, the group of B and C (too large), then B and C alone: the two were
    // grouped, and saved again one at a time.
    assert_eq!(store.saves.load(std::sync::atomic::Ordering::Relaxed), 4);
    let (mut keys, _) = h.request(&mut browser, |s| s.keys()).await;
    keys.sort();
    assert_eq!(keys, ["a", "n", "small"]);
}

/// A request's handler, for [`spawn_request`].
type Handler = Box<dyn FnOnce(&session_core::Session)>;

/// A whole request of `browser`'s session on a local task; what
/// `request_with` returns.
fn spawn_request(
    h: &Harness,
    browser: &Browser,
    handler: Handler,
) -> tokio::task::JoinHandle<Result<((), Option<String>), SessionError>> {
    let engine = h.engine.clone();
    let mut browser = browser.clone();
    tokio::task::spawn_local(async move { request_with(&engine, &mut browser, handler).await })
}

/// Request A of `browser`'s session, which takes the save lane and hangs
/// in `store` (its `hang` set); then `queued`, in order, which wait in the
/// lane behind it; then lets A's save go on, so that the first of
/// `queued` leads the others in one group (the lane's lock wakes its
/// waiters in order). Run on a `LocalSet`. A's task, and the others'.
async fn queued_behind_a(
    h: &Harness,
    browser: &Browser,
    store: &SlowSaves,
    queued: Vec<Handler>,
) -> (
    tokio::task::JoinHandle<Result<((), Option<String>), SessionError>>,
    Vec<tokio::task::JoinHandle<Result<((), Option<String>), SessionError>>>,
) {
    store.hang.store(true, std::sync::atomic::Ordering::Relaxed);
    let a = spawn_request(h, browser, Box::new(|s| s.insert("a", &1).unwrap()));
    tokio::task::yield_now().await;
    let queued = queued
        .into_iter()
        .map(|handler| spawn_request(h, browser, handler))
        .collect();
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    store
        .hang
        .store(false, std::sync::atomic::Ordering::Relaxed);
    (a, queued)
}

/// Asserts that `too_large` failed as too large for the store, and that
/// `setter`, which set a remembered lifetime, was saved alone and sends
/// its cookie for that lifetime.
fn too_large_and_remembered(
    too_large: &Result<((), Option<String>), SessionError>,
    setter: Result<((), Option<String>), SessionError>,
) {
    assert!(
        matches!(
            too_large,
            Err(SessionError::Store(
                session_core::StoreError::TooLarge { .. }
            ))
        ),
        "{too_large:?}"
    );
    let (_, set) = setter.expect("the request setting the lifetime is saved alone");
    let set = set.expect("its cookie, for the lifetime it set");
    assert_eq!(
        support::attribute(&set, "Max-Age"),
        Some("2592000"),
        "{set}"
    );
}

/// A group too large for the store, saved again one request at a time: a
/// request whose cookie was made for the lifetime a later request of the
/// group replaced sends none, the leader included (its cookie was made
/// before the others were saved).
#[tokio::test]
async fn a_grouped_save_too_large_settles_the_leaders_cookie_after_the_others() {
    let (h, store) = slow_harness(|store| store.with_max_record_size(1500));
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("n", &0).unwrap())
        .await;
    // A touch is due: every request's plan carries a cookie.
    h.advance_secs(120);

    let local = tokio::task::LocalSet::new();
    let (b, c, d) = local
        .run_until(async {
            // B leads C (sets a lifetime) and D (too large) once A is done.
            let (a, queued) = queued_behind_a(
                &h,
                &browser,
                &store,
                vec![
                    Box::new(|s| s.insert("b", &2).unwrap()),
                    Box::new(|s| s.set_lifetime(support::remembered())),
                    Box::new(|s| s.insert("big", &"x".repeat(2000)).unwrap()),
                ],
            )
            .await;
            a.await.unwrap().unwrap();
            let [b, c, d] = <[_; 3]>::try_from(queued).unwrap();
            (b.await.unwrap(), c.await.unwrap(), d.await.unwrap())
        })
        .await;
    too_large_and_remembered(&d, c);
    let (_, leader) = b.expect("B is saved alone");
    assert_eq!(
        leader, None,
        "B's cookie was made for the lifetime C replaced"
    );
    // A, the group of three, then B, C and D alone.
    assert_eq!(store.saves.load(std::sync::atomic::Ordering::Relaxed), 5);
}

/// The same for a request of the group saved alone before the one that
/// set another lifetime: its cookie, made for the lifetime it loaded, is
/// withheld too (settled once the last of them is saved, as the
/// leader's is).
#[tokio::test]
async fn a_grouped_save_too_large_settles_every_cookie_after_the_last_save() {
    let (h, store) = slow_harness(|store| store.with_max_record_size(1500));
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("n", &0).unwrap())
        .await;
    h.advance_secs(120);

    let local = tokio::task::LocalSet::new();
    let (c, d, e) = local
        .run_until(async {
            // B leads C (a write), D (sets a lifetime) and E (too large).
            let (a, queued) = queued_behind_a(
                &h,
                &browser,
                &store,
                vec![
                    Box::new(|s| s.insert("b", &2).unwrap()),
                    Box::new(|s| s.insert("c", &3).unwrap()),
                    Box::new(|s| s.set_lifetime(support::remembered())),
                    Box::new(|s| s.insert("big", &"x".repeat(2000)).unwrap()),
                ],
            )
            .await;
            a.await.unwrap().unwrap();
            let [b, c, d, e] = <[_; 4]>::try_from(queued).unwrap();
            b.await.unwrap().expect("B is saved alone");
            (c.await.unwrap(), d.await.unwrap(), e.await.unwrap())
        })
        .await;
    too_large_and_remembered(&e, d);
    let (_, c_cookie) = c.expect("C is saved alone");
    assert_eq!(
        c_cookie, None,
        "C's cookie was made for the lifetime D replaced after C was saved"
    );
}

/// Saves of one session grouped in one process, one of which sets the
/// session's lifetime, meet another process's write in the store: the
/// merge keeps the lifetime, with the deadline counted under it, and the
/// request that set it sends its cookie. (The group's changes are one
/// list; the lifetime must stay where the merge looks for it.)
#[tokio::test]
async fn a_grouped_save_that_meets_a_conflict_keeps_the_lifetime_set_in_it() {
    use std::sync::atomic::Ordering::Relaxed;
    let (h, store) = slow_harness(|store| store);
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("n", &0).unwrap())
        .await;
    let StoreOp::Save { key, .. } = h.plan(&browser, |s| s.insert("x", &1).unwrap()).await.store
    else {
        panic!("a save");
    };
    let local = tokio::task::LocalSet::new();
    let (a, b, c) = local
        .run_until(async {
            // B leads C once A is done, C's lifetime second in the group's
            // changes.
            let (a, queued) = queued_behind_a(
                &h,
                &browser,
                &store,
                vec![
                    Box::new(|s| s.insert("b", &2).unwrap()),
                    Box::new(|s| s.set_lifetime(support::remembered())),
                ],
            )
            .await;
            let [b, c] = <[_; 2]>::try_from(queued).unwrap();
            // A saves; the group's save enters the store, which yields
            // once before it writes (`SlowSaves`): another process writes
            // first.
            for _ in 0..1000 {
                if store.saves.load(Relaxed) >= 2 {
                    break;
                }
                tokio::task::yield_now().await;
            }
            assert_eq!(store.saves.load(Relaxed), 2, "the group's save began");
            let mut other = store.inner.load(&key).await.unwrap().expect("the session");
            let version = other.version;
            other.data.insert("d", 4.into());
            other.version += 1;
            let saved = store.inner.save(&key, &other, version).await.unwrap();
            assert_eq!(saved, session_core::SaveOutcome::Saved);
            (a.await.unwrap(), b.await.unwrap(), c.await.unwrap())
        })
        .await;
    a.unwrap();
    b.unwrap();
    let (_, set) = c.expect("the request that set the lifetime");
    assert_eq!(
        store.saves.load(Relaxed),
        3,
        "A, then the group twice: it met the other process's write"
    );
    let set = set.expect("its cookie is sent");
    assert_eq!(
        support::attribute(&set, "Max-Age"),
        Some("2592000"),
        "{set}"
    );
    let stored = store.inner.load(&key).await.unwrap().expect("the session");
    let mut keys: Vec<_> = stored.data.keys().collect();
    keys.sort_unstable();
    assert_eq!(keys, ["a", "b", "d", "n"]);
    // A's save, the other process's, then the group's (each request
    // alone would have made a fourth version).
    assert_eq!(stored.version, 3, "B and C were saved as a group");
    assert_eq!(stored.lifetime, support::remembered());
    assert_eq!(
        stored.expires_at,
        Some(stored.last_seen + time::Duration::days(30))
    );
}

/// A write within the touch interval keeps the last-use time it loaded; a
/// touch of the same session at the same time moves it. Whichever saves
/// first, the stored record ends with the write's data and the touch's time:
/// within one process (the second save starts from the record the save
/// lanes kept from the first), across two processes (a conflict in the
/// store), and on a store that answers at once.
#[tokio::test]
async fn a_concurrent_touch_and_write_keep_both_the_data_and_the_later_touch() {
    for setup in support::SETUPS {
        for touch_first in [false, true] {
            let h = Harness::with(|c| c.with_touch_interval(time::Duration::seconds(60)));
            let (writer_engine, toucher_engine, store) = support::engines_for(setup, &h, |c| {
                c.with_touch_interval(time::Duration::seconds(60))
            });
            let case = format!("{setup}, touch first: {touch_first}");
            let mut browser = Browser::new();
            request_with(&writer_engine, &mut browser, |s| s.insert("n", &1).unwrap())
                .await
                .unwrap();
            h.advance_secs(59);
            let writer = open_with(&writer_engine, &browser).await;
            writer.insert("n", &2).unwrap();
            let write = writer_engine.finish(&writer, writer_engine.now()).unwrap();
            h.advance_secs(2);
            let toucher = open_with(&toucher_engine, &browser).await;
            let touch = toucher_engine
                .finish(&toucher, toucher_engine.now())
                .unwrap();
            let StoreOp::Save { key, .. } = &touch.store else {
                panic!("{case}: a touch is due");
            };
            let key = *key;
            if touch_first {
                toucher_engine.commit(touch).await.unwrap();
                writer_engine.commit(write).await.unwrap();
            } else {
                writer_engine.commit(write).await.unwrap();
                toucher_engine.commit(touch).await.unwrap();
            }
            let stored = store.load(&key).await.unwrap().expect("the session");
            assert_eq!(stored.data.get("n"), Some(&json!(2)), "{case}");
            let touched =
                session_core::Timestamp::from(support::START + time::Duration::seconds(61));
            assert_eq!(stored.last_seen, touched, "{case}");
            assert_eq!(
                stored.expires_at,
                Some(touched + time::Duration::hours(1)),
                "{case}"
            );
        }
    }
}

/// A log-in that gives the session a new id keeps what another request of
/// the old id saved while the log-in ran: its own changes are replayed onto
/// the newer record.
#[tokio::test]
async fn a_login_carries_over_a_write_that_landed_while_it_ran() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("cart", &["apple"]).unwrap())
        .await;
    let login = h.open(&browser).await;

    let mut other_tab = browser.clone();
    h.request(&mut other_tab, |s| {
        s.update("cart", |cart: Option<Vec<String>>| {
            let mut cart = cart.unwrap_or_default();
            cart.push("pear".to_owned());
            cart
        })
        .unwrap();
    })
    .await;

    login.insert("user", "alice").unwrap();
    login.regenerate();
    let plan = h.engine.finish(&login, h.engine.now()).unwrap();
    browser.absorb(&h.engine.commit(plan).await.unwrap().unwrap());

    let (data, _) = h
        .request(&mut browser, |s| (s.get_value("user"), s.get_value("cart")))
        .await;
    assert_eq!(data, (Some(json!("alice")), Some(json!(["apple", "pear"]))));
    assert_eq!(h.store.inner.len(), 1, "the old record is gone");
}

/// A log-in that commits after a log-out of the same session (another tab)
/// finds the old record gone: it deletes its new record again and sends no
/// cookie, as a save would, rather than bring back the session the log-out
/// ended under an id nobody logged out of.
#[tokio::test]
async fn a_login_after_a_concurrent_logout_does_not_bring_the_session_back() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("cart", &["apple"]).unwrap())
        .await;
    let login = h.open(&browser).await;
    let mut other_tab = browser.clone();
    h.request(&mut other_tab, |s| s.destroy()).await;
    assert!(h.store.inner.is_empty());

    login.insert("user", "alice").unwrap();
    login.regenerate();
    let plan = h.engine.finish(&login, h.engine.now()).unwrap();
    assert!(matches!(plan.store, StoreOp::Replace { .. }));
    assert_eq!(
        h.engine.commit(plan).await.unwrap(),
        None,
        "no cookie names the new id"
    );
    assert!(h.store.inner.is_empty(), "the new record was deleted again");
}

/// Two log-ins of one id (a double submit): the first takes the old record
/// and stands; the second finds it gone and leaves no second live id.
#[tokio::test]
async fn the_second_of_two_logins_of_one_id_leaves_no_second_session() {
    let h = Harness::new();
    let mut browser = Browser::new();
    h.request(&mut browser, |s| s.insert("cart", &["apple"]).unwrap())
        .await;
    let first = h.open(&browser).await;
    let second = h.open(&browser).await;
    for login in [&first, &second] {
        login.insert("user", "alice").unwrap();
        login.regenerate();
    }
    let plan = h.engine.finish(&first, h.engine.now()).unwrap();
    let set_cookie = h
        .engine
        .commit(plan)
        .await
        .unwrap()
        .expect("the first log-in's cookie");
    let plan = h.engine.finish(&second, h.engine.now()).unwrap();
    assert_eq!(h.engine.commit(plan).await.unwrap(), None);
    assert_eq!(h.store.inner.len(), 1, "one live session");

    browser.absorb(&set_cookie);
    let (data, _) = h
        .request(&mut browser, |s| (s.get_value("user"), s.get_value("cart")))
        .await;
    assert_eq!(data, (Some(json!("alice")), Some(json!(["apple"]))));
}

/// A log-in whose new record cannot be deleted after it found the old
/// session gone still sends no cookie (nothing names the orphan, which
/// ends at its deadline) and says so at warn level.
#[tokio::test]
async fn a_login_after_a_logout_whose_new_record_cannot_be_deleted_is_logged() {
    let logs = CapturedLogs::start();
    // The take finds nothing, as after a log-out in another tab.
    let store = Arc::new(SlowSaves {
        delete_fails: true,
        take_finds_nothing: true,
        ..SlowSaves::new(MemoryStore::new())
    });
    let engine = engine_sharing(store.clone());
    let mut browser = Browser::new();
    request_with(&engine, &mut browser, |s| {
        s.insert("user", "guest").unwrap()
    })
    .await
    .unwrap();
    let login = open_with(&engine, &browser).await;

    login.regenerate();
    let plan = engine.finish(&login, engine.now()).unwrap();
    assert_eq!(engine.commit(plan).await.unwrap(), None);
    assert_eq!(
        store.inner.len(),
        2,
        "the old record, which the take missed, and the orphan"
    );
    let text = logs.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("could not be deleted"), "{text}");
}

/// A save of the old id that arrives while a log-in is changing the id, in
/// the same process, is not held back by the log-in: it lands before the
/// take and is carried over to the new id.
#[tokio::test]
async fn a_save_during_a_login_lands_and_is_carried_over() {
    let store = Arc::new(SlowSaves {
        hold_takes: true,
        ..SlowSaves::new(MemoryStore::new())
    });
    let engine = engine_sharing(store.clone());
    let mut browser = Browser::new();
    request_with(&engine, &mut browser, |s| {
        s.update("cart", push("apple".to_owned())).unwrap();
    })
    .await
    .unwrap();
    let login = open_with(&engine, &browser).await;
    let writer = open_with(&engine, &browser).await;

    login.insert("user", "alice").unwrap();
    login.regenerate();
    let plan = engine.finish(&login, engine.now()).unwrap();
    let committing = tokio::spawn({
        let engine = engine.clone();
        async move { engine.commit(plan).await }
    });
    store.take_entered.notified().await;

    writer.update("cart", push("pear".to_owned())).unwrap();
    let plan = engine.finish(&writer, engine.now()).unwrap();
    let saved = tokio::time::timeout(std::time::Duration::from_secs(5), engine.commit(plan))
        .await
        .expect("the writer's save does not wait for the log-in");
    assert_eq!(saved.unwrap(), None);

    store.take_go.add_permits(1);
    browser.absorb(&committing.await.unwrap().unwrap().unwrap());
    let (data, _) = request_with(&engine, &mut browser, |s| {
        (s.get_value("user"), s.get_value("cart"))
    })
    .await
    .unwrap();
    assert_eq!(data, (Some(json!("alice")), Some(json!(["apple", "pear"]))));
}

fn engine_on(store: SlowSaves) -> Engine {
    engine_sharing(Arc::new(store))
}

/// An engine on `store`, which the test keeps a handle on.
fn engine_sharing(store: Arc<SlowSaves>) -> Engine {
    Engine::new(
        SessionConfig::new(session_core::KeyRing::new(support::fixed_key())).with_store(store),
    )
    .unwrap()
}

/// A log-in whose take of the old record fails, whether or not the take
/// ran, deletes the old id instead and stands: its new record may hold the
/// only copy of the session, and a 500 would leave no cookie naming it.
#[tokio::test]
async fn a_login_whose_take_fails_deletes_the_old_id_and_stands() {
    for removes_first in [false, true] {
        let engine = engine_on(SlowSaves {
            take_fails: true,
            take_removes_first: removes_first,
            ..SlowSaves::new(MemoryStore::new())
        });
        let mut browser = Browser::new();
        request_with(&engine, &mut browser, |s| {
            s.update("cart", push("apple".to_owned())).unwrap();
        })
        .await
        .unwrap();
        let mut before_login = browser.clone();

        let (_, set_cookie) = request_with(&engine, &mut browser, |s| {
            s.insert("user", "alice").unwrap();
            s.regenerate();
        })
        .await
        .unwrap_or_else(|e| panic!("removes_first {removes_first}: the log-in failed: {e}"));
        assert!(set_cookie.is_some(), "the new cookie is sent");
        let (data, _) = request_with(&engine, &mut browser, |s| {
            (s.get_value("user"), s.get_value("cart"))
        })
        .await
        .unwrap();
        assert_eq!(data, (Some(json!("alice")), Some(json!(["apple"]))));
        let (old_is_new, _) = request_with(&engine, &mut before_login, |s| s.is_new())
            .await
            .unwrap();
        assert!(old_is_new, "the old id no longer resolves");
    }
}

#[tokio::test]
async fn a_login_whose_take_and_delete_both_fail_is_an_error() {
    let engine = engine_on(SlowSaves {
        take_fails: true,
        delete_fails: true,
        ..SlowSaves::new(MemoryStore::new())
    });
    let mut browser = Browser::new();
    request_with(&engine, &mut browser, |s| {
        s.insert("user", "guest").unwrap()
    })
    .await
    .unwrap();
    let failed = request_with(&engine, &mut browser, |s| {
        s.insert("user", "alice").unwrap();
        s.regenerate();
    })
    .await;
    assert!(matches!(failed, Err(SessionError::Store(_))), "{failed:?}");
}

/// A `take` consumes the value it read and no other: when another request
/// stored a newer flash message and saved first, the taker's save keeps
/// it, and the next `take` reads it. A `remove` still removes whatever is
/// there. In each setup of two requests of one session.
#[tokio::test]
async fn a_take_keeps_a_newer_value_another_request_stored() {
    for setup in support::SETUPS {
        for (remove, kept) in [(false, Some("Settings saved")), (true, None)] {
            let h = Harness::new();
            let (taker_engine, other_engine, _) = support::engines_for(setup, &h, |c| c);
            let case = format!("{setup}, remove instead: {remove}");
            let mut browser = Browser::new();
            request_with(&taker_engine, &mut browser, |s| {
                s.insert("flash", "Draft saved").unwrap();
            })
            .await
            .unwrap();
            let taker = open_with(&taker_engine, &browser).await;
            let other = open_with(&other_engine, &browser).await;
            other.insert("flash", "Settings saved").unwrap();
            let read = if remove {
                taker
                    .remove("flash")
                    .and_then(|v| v.as_str().map(str::to_owned))
            } else {
                taker.take::<String>("flash").unwrap()
            };
            assert_eq!(read.as_deref(), Some("Draft saved"), "{case}");
            let plan = other_engine.finish(&other, other_engine.now()).unwrap();
            other_engine.commit(plan).await.unwrap();
            let plan = taker_engine.finish(&taker, taker_engine.now()).unwrap();
            taker_engine.commit(plan).await.unwrap();

            let (next, _) = request_with(&taker_engine, &mut browser, |s| {
                s.take::<String>("flash").unwrap()
            })
            .await
            .unwrap();
            assert_eq!(next.as_deref(), kept, "{case}");
        }
    }
}
