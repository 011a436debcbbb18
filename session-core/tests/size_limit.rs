//! A store's record size limit, as the engine meets it: a request that
//! would make the session too large fails and changes nothing; a request
//! that only reads an oversized session (stored before the limit was
//! lowered) is never an error, its touch skipped with a warning; a request
//! that makes it smaller goes through. Through both faces of a store: the
//! immediate one and the async one (serialized in the engine's lanes).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use session_core::{
    ImmediateStore, KeyRing, MemoryStore, Record, SaveOutcome, SessionConfig, SessionError,
    StoreError, StoreKey,
};
use support::{Browser, CapturedLogs, Faces, START, fixed_key, request_with};
use time::Duration;

/// A memory store with no limit of its own, behind a limit that the test
/// can lower while records are stored (as an operator lowers a store's
/// setting between two deployments). Sizes are those of `Record::to_bytes`.
#[derive(Debug)]
struct Limited {
    inner: MemoryStore,
    limit: AtomicUsize,
    /// The key of the last record created.
    created: Mutex<Option<StoreKey>>,
}

impl Limited {
    fn check(&self, record: &Record) -> Result<(), StoreError> {
        let (size, limit) = (record.to_bytes().len(), self.limit.load(Ordering::SeqCst));
        if size > limit {
            return Err(StoreError::TooLarge { size, limit });
        }
        Ok(())
    }
}

impl ImmediateStore for Limited {
    fn load_now(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.inner.load_now(key)
    }
    fn create_now(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.check(record)?;
        *self.created.lock().unwrap() = Some(*key);
        self.inner.create_now(key, record)
    }
    fn save_now(
        &self,
        key: &StoreKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError> {
        self.check(record)?;
        self.inner.save_now(key, record, expected_version)
    }
    fn delete_now(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.inner.delete_now(key)
    }
    fn take_now(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.inner.take_now(key)
    }
}

async fn an_oversized_session(immediate: bool) {
    let clock = session_core::ManualClock::new(START);
    let store = Arc::new(Faces {
        store: Limited {
            inner: MemoryStore::with_clock(Arc::new(clock.clone())),
            limit: AtomicUsize::new(usize::MAX),
            created: Mutex::new(None),
        },
        immediate,
    });
    let engine = session_core::Engine::new(
        SessionConfig::new(KeyRing::new(fixed_key()))
            .with_clock(Arc::new(clock.clone()))
            .with_store(store.clone()),
    )
    .unwrap();
    let mut browser = Browser::new();
    request_with(&engine, &mut browser, |s| {
        s.insert("note", &"x".repeat(2000)).unwrap();
    })
    .await
    .unwrap();
    let key = store
        .store
        .created
        .lock()
        .unwrap()
        .expect("a record was created");
    let stored = || store.store.inner.load_now(&key).unwrap().unwrap();
    let before = stored();

    // The limit goes down below the stored record.
    store.store.limit.store(1000, Ordering::SeqCst);
    // At debug level too: the warning is given at most once a minute in
    // the process, and at debug level in between.
    let logs = CapturedLogs::start_at(tracing::Level::DEBUG);

    // Reading it, once a touch is due: no error, no write, a warning; the
    // cookie is still sent (it may be moving the session to the current
    // key).
    clock.advance(Duration::minutes(5));
    let (len, set_cookie) = request_with(&engine, &mut browser, |s| {
        s.get::<String>("note").unwrap().map(|n| n.len())
    })
    .await
    .expect("a read of an oversized session is never an error");
    assert_eq!(len, Some(2000));
    assert!(set_cookie.is_some());
    assert_eq!(stored(), before, "the touch was skipped");
    let text = logs.text();
    assert!(text.contains("its touch is skipped"), "{text}");

    // Making it larger fails, and changes nothing.
    let err = request_with(&engine, &mut browser, |s| {
        s.insert("more", &"y".repeat(10)).unwrap();
    })
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::Store(StoreError::TooLarge { limit: 1000, .. })
        ),
        "{err}"
    );
    assert_eq!(stored(), before);

    // Making it smaller goes through.
    request_with(&engine, &mut browser, |s| {
        s.remove("note");
        s.insert("more", &"y".repeat(10)).unwrap();
    })
    .await
    .unwrap();
    let now = stored();
    assert_eq!(now.data.get("note"), None);
    assert!(now.last_seen > before.last_seen);
}

#[tokio::test]
async fn an_oversized_session_through_the_immediate_face() {
    an_oversized_session(true).await;
}

#[tokio::test]
async fn an_oversized_session_through_the_async_face() {
    an_oversized_session(false).await;
}
