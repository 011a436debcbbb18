//! A store wrapper that records every key and record it is handed.

use std::sync::{Arc, Mutex, PoisonError};

use session_core::{Record, SaveOutcome, SessionStore, StoreError, StoreKey, async_trait};

/// What a [`Recording`] store saw.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// Every key passed to any operation, in order.
    pub(crate) keys: Vec<StoreKey>,
    /// Every record passed to `create` or `save`, encoded.
    pub(crate) records: Vec<Vec<u8>>,
}

/// Forwards to the store under test and remembers its arguments.
#[derive(Debug)]
pub(crate) struct Recording {
    inner: Arc<dyn SessionStore>,
    seen: Mutex<Seen>,
}

impl Recording {
    pub(crate) fn new(inner: Arc<dyn SessionStore>) -> Self {
        Self {
            inner,
            seen: Mutex::default(),
        }
    }

    pub(crate) fn take(&self) -> Seen {
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn note(&self, key: &StoreKey, record: Option<&Record>) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.keys.push(*key);
        if let Some(record) = record {
            seen.records.push(record.to_bytes());
        }
    }
}

#[async_trait]
impl SessionStore for Recording {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.note(key, None);
        self.inner.load(key).await
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.note(key, Some(record));
        self.inner.create(key, record).await
    }

    async fn save(
        &self,
        key: &StoreKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError> {
        self.note(key, Some(record));
        self.inner.save(key, record, expected_version).await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.note(key, None);
        self.inner.delete(key).await
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.note(key, None);
        self.inner.take(key).await
    }
}
