use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use session_core::{async_trait, Clock, Record, SaveOutcome, SessionStore, StoreError, StoreKey};

/// Records in a map, encoded with `Record::to_bytes`.
#[derive(Debug)]
pub struct MapStore {
    records: Mutex<HashMap<StoreKey, Vec<u8>>>,
    clock: Arc<dyn Clock>,
}

impl MapStore {
    /// An empty store whose notion of "expired" follows `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { records: Mutex::default(), clock }
    }

    /// The record in `bytes`, unless it has expired.
    fn live(&self, bytes: Option<&Vec<u8>>) -> Result<Option<Record>, StoreError> {
        let Some(bytes) = bytes else { return Ok(None) };
        let record = Record::from_bytes(bytes)?;
        Ok((!record.is_expired(self.clock.now())).then_some(record))
    }
}

/// What the store writes for `record`, refused over the built-in stores'
/// limit (1 MiB).
fn encode(record: &Record) -> Result<Vec<u8>, StoreError> {
    let (bytes, limit) = (record.to_bytes(), session_core::DEFAULT_MAX_RECORD_SIZE);
    if bytes.len() > limit {
        return Err(StoreError::TooLarge { size: bytes.len(), limit });
    }
    Ok(bytes)
}

#[async_trait]
impl SessionStore for MapStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let records = self.records.lock().unwrap();
        self.live(records.get(key))
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        let bytes = encode(record)?;
        let mut records = self.records.lock().unwrap();
        if self.live(records.get(key))?.is_some() {
            return Err(StoreError::Exists);
        }
        records.insert(*key, bytes);
        Ok(())
    }

    async fn save(
        &self,
        key: &StoreKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError> {
        let bytes = encode(record)?;
        let mut records = self.records.lock().unwrap();
        // Deleted or expired: never bring it back.
        let Some(stored) = self.live(records.get(key))? else {
            return Ok(SaveOutcome::Missing);
        };
        if stored.version != expected_version {
            return Ok(SaveOutcome::Conflict(stored));
        }
        records.insert(*key, bytes);
        Ok(SaveOutcome::Saved)
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.records.lock().unwrap().remove(key);
        Ok(())
    }

    // In one step, under the lock: a save never lands in between.
    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let removed = self.records.lock().unwrap().remove(key);
        self.live(removed.as_ref())
    }
}

conformance_tests::store_suite!(map_store, expiry: manual_clock, |ctx| async move {
    MapStore::new(ctx.clock())
});
