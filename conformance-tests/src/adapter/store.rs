//! The store the suite hands the servers under test in server mode: it wraps
//! the store under test, remembers every key the server touched, and can
//! be made to fail.

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use session_core::{
    Clock, ImmediateStore, ManualClock, Record, SaveOutcome, SessionStore, StoreError, StoreKey,
    async_trait,
};
use tokio::runtime::Handle;

use crate::Failure;

/// How long the suite waits for a store to delete what a case left.
const CLEAN_UP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the suite waits for the store to answer its own checks (is a
/// record still there?).
const LOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Forwards to the store under test, and lets a case look at what it holds
/// without any knowledge of the backend: the only way in is the store's own
/// async [`load`](SessionStore::load) of the keys the server used, run on
/// the suite's runtime.
///
/// A record counts as live when `load` returns it and its deadline has not
/// passed on the suite's clock: a store may hide expired records itself (a
/// [`MemoryStore`](session_core::MemoryStore) on the suite's clock) or leave
/// that to its backend's wall clock (a Redis `PXAT`, far ahead of the
/// suite's clock, which runs in 2030), and the cases read the same either
/// way.
#[derive(Debug)]
pub(crate) struct SuiteStore {
    inner: Arc<dyn SessionStore>,
    /// Every key passed to any operation, once each.
    keys: Mutex<Vec<StoreKey>>,
    /// The operations that fail: a bit per [`Op`].
    failing: AtomicU8,
    clock: ManualClock,
    runtime: Handle,
}

impl SuiteStore {
    pub(crate) fn new(inner: Arc<dyn SessionStore>, clock: ManualClock, runtime: Handle) -> Self {
        Self {
            inner,
            keys: Mutex::default(),
            failing: AtomicU8::new(0),
            clock,
            runtime,
        }
    }

    /// How many live records the store holds under the keys the servers
    /// used.
    pub(crate) fn live_records(&self) -> Result<usize, Failure> {
        let keys = self.keys();
        self.look(async {
            let mut live = 0;
            for key in &keys {
                if self.live(key).await? {
                    live += 1;
                }
            }
            Ok(live)
        })
    }

    /// Whether the store holds a live record under `key`.
    pub(crate) fn contains(&self, key: &StoreKey) -> Result<bool, Failure> {
        self.look(self.live(key))
    }

    /// Runs one of the suite's own looks at the store, within
    /// [`LOOK_TIMEOUT`]: a store that never answers fails the case.
    fn look<T>(&self, look: impl Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
        self.runtime.block_on(async {
            tokio::time::timeout(LOOK_TIMEOUT, look)
                .await
                .unwrap_or_else(|_| {
                    Err(Failure::new(format!(
                        "the store did not answer the suite's load within {LOOK_TIMEOUT:?}"
                    )))
                })
        })
    }

    /// Makes every operation of the servers fail (`true`) or work again
    /// (`false`). The suite's own looks are not affected.
    pub(crate) fn fail(&self, failing: bool) {
        self.failing
            .store(if failing { u8::MAX } else { 0 }, Ordering::SeqCst);
    }

    /// Makes exactly the operations in `ops` fail, through either face;
    /// the others work.
    pub(crate) fn fail_only(&self, ops: &[Op]) {
        let bits = ops.iter().fold(0, |bits, op| bits | op.bit());
        self.failing.store(bits, Ordering::SeqCst);
    }

    /// Deletes every record the servers touched, so that a case leaves
    /// nothing behind in a shared backend (whose wall clock would keep the
    /// suite's records until 2030). Best effort, within [`CLEAN_UP_TIMEOUT`]:
    /// the first error is returned after every key was tried.
    pub(crate) fn clean_up(&self) -> Result<(), StoreError> {
        let keys = self.keys();
        self.runtime.block_on(async {
            let deletes = async {
                let mut result = Ok(());
                for key in &keys {
                    if let Err(error) = self.inner.delete(key).await {
                        result = result.and(Err(error));
                    }
                }
                result
            };
            tokio::time::timeout(CLEAN_UP_TIMEOUT, deletes)
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::Timeout {
                        millis: CLEAN_UP_TIMEOUT.as_millis().try_into().unwrap_or(u64::MAX),
                    })
                })
        })
    }

    async fn live(&self, key: &StoreKey) -> Result<bool, Failure> {
        let record = self.inner.load(key).await.map_err(|e| {
            Failure::new(format!(
                "the suite could not load a record to check it: {}",
                Failure::from(e)
            ))
        })?;
        Ok(record.is_some_and(|r| !r.is_expired(self.clock.now())))
    }

    fn keys(&self) -> Vec<StoreKey> {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The store under test's immediate face (present whenever ours is
    /// handed out).
    fn inner_now(&self) -> Result<&dyn ImmediateStore, StoreError> {
        self.inner.immediate().ok_or_else(|| {
            StoreError::backend(std::io::Error::other(
                "the store under test stopped answering at once",
            ))
        })
    }

    /// Remembers `key`, then fails if the case asked for it.
    fn enter(&self, key: &StoreKey, op: Op) -> Result<(), StoreError> {
        {
            let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            if !keys.contains(key) {
                keys.push(*key);
            }
        }
        if self.failing.load(Ordering::SeqCst) & op.bit() != 0 {
            return Err(StoreError::backend(std::io::Error::other(format!(
                "the conformance suite made the store's {op:?} fail"
            ))));
        }
        Ok(())
    }
}

/// A store operation, as [`SuiteStore::fail_only`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Load,
    Create,
    Save,
    Delete,
    Take,
}

impl Op {
    fn bit(self) -> u8 {
        1 << self as u8
    }
}

#[async_trait]
impl SessionStore for SuiteStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.enter(key, Op::Load)?;
        self.inner.load(key).await
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.enter(key, Op::Create)?;
        self.inner.create(key, record).await
    }

    async fn save(
        &self,
        key: &StoreKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError> {
        self.enter(key, Op::Save)?;
        self.inner.save(key, record, expected_version).await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.enter(key, Op::Delete)?;
        self.inner.delete(key).await
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.enter(key, Op::Take)?;
        self.inner.take(key).await
    }

    /// Immediate when the store under test is, so that an adapter runs the
    /// same path in the suite as in production (the engine commits at once
    /// for such stores).
    fn immediate(&self) -> Option<&dyn ImmediateStore> {
        self.inner.immediate().map(|_| self as &dyn ImmediateStore)
    }
}

/// The immediate face, forwarding like the async one. Only handed out when
/// the store under test has one.
impl ImmediateStore for SuiteStore {
    fn load_now(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.enter(key, Op::Load)?;
        self.inner_now()?.load_now(key)
    }

    fn create_now(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.enter(key, Op::Create)?;
        self.inner_now()?.create_now(key, record)
    }

    fn save_now(
        &self,
        key: &StoreKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError> {
        self.enter(key, Op::Save)?;
        self.inner_now()?.save_now(key, record, expected_version)
    }

    fn delete_now(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.enter(key, Op::Delete)?;
        self.inner_now()?.delete_now(key)
    }

    fn take_now(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.enter(key, Op::Take)?;
        self.inner_now()?.take_now(key)
    }
}
