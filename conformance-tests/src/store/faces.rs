//! Both faces of an immediate store under one test.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use session_core::{
    ImmediateStore, Record, SaveOutcome, SessionStore, StoreError, StoreKey, async_trait,
};

/// Which face of a store with two takes a case's first operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    Async,
    Immediate,
}

impl std::fmt::Display for Start {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Async => "async",
            Self::Immediate => "immediate",
        })
    }
}

/// Wraps a store that has an [`ImmediateStore`] face and sends every other
/// operation to it, the rest to the async face, so that one run of a case
/// holds both to the same rules (a record created through one is loaded,
/// saved and deleted through the other).
#[derive(Debug)]
pub(crate) struct BothFaces {
    inner: Arc<dyn SessionStore>,
    turn: AtomicUsize,
}

impl BothFaces {
    /// `inner` wrapped when it has an immediate face, its first operation
    /// going to the `start` face; as it is otherwise.
    pub(crate) fn wrap(inner: Arc<dyn SessionStore>, start: Start) -> Arc<dyn SessionStore> {
        if inner.immediate().is_some() {
            Arc::new(Self {
                inner,
                turn: AtomicUsize::new(usize::from(start == Start::Immediate)),
            })
        } else {
            inner
        }
    }

    /// The immediate face on odd turns.
    fn now(&self) -> Option<&dyn ImmediateStore> {
        if self.turn.fetch_add(1, Ordering::Relaxed) % 2 == 1 {
            self.inner.immediate()
        } else {
            None
        }
    }
}

#[async_trait]
impl SessionStore for BothFaces {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        match self.now() {
            Some(now) => now.load_now(key),
            None => self.inner.load(key).await,
        }
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        match self.now() {
            Some(now) => now.create_now(key, record),
            None => self.inner.create(key, record).await,
        }
    }

    async fn save(
        &self,
        key: &StoreKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError> {
        match self.now() {
            Some(now) => now.save_now(key, record, expected_version),
            None => self.inner.save(key, record, expected_version).await,
        }
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        match self.now() {
            Some(now) => now.delete_now(key),
            None => self.inner.delete(key).await,
        }
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        match self.now() {
            Some(now) => now.take_now(key),
            None => self.inner.take(key).await,
        }
    }
}
