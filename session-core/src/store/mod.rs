//! The store trait, and the in-memory store.
//!
//! # Writing a store
//!
//! A store keeps [`Record`]s under [`StoreKey`]s and implements four
//! operations, plus a fifth with a default. Their rules are what the
//! conformance suite checks:
//!
//! - `load`: the record, or `None` when there is none or it has expired.
//! - `create`: writes a new record; never overwrites (a live record under
//!   the key is [`StoreError::Exists`]; an expired or deleted one is gone).
//! - `save`: compare-and-set. It writes only when the stored version equals
//!   `expected_version`; otherwise it answers [`SaveOutcome::Conflict`] with
//!   the stored record (the engine merges and retries), or
//!   [`SaveOutcome::Missing`] when the record is gone: a save never
//!   resurrects a deleted or expired session.
//! - `delete`: removes the record; deleting a missing record is not an error.
//! - `take`: removes the record and returns it as it was (`None` when there
//!   was none or it had expired), in one atomic step (a map's `remove`
//!   under its lock; for Redis, session-redis's take script, since a
//!   `GETDEL` sent twice answers `None` the second time). The engine calls it when a session
//!   changes id at log-in, to carry over what another request saved
//!   meanwhile. The trait's default loads, then deletes: a save that lands
//!   between the two is lost (the conformance suite's
//!   `take_racing_saves_loses_nothing` catches it when a save lands there).
//!   Override it.
//!
//! Each operation is one atomic step of the backend: two servers creating,
//! saving or taking one key at the same moment must see exactly one
//! winner (the suite's `concurrent_*` cases).
//!
//! Give a store a limit on a record's size, as the built-in ones have
//! ([`DEFAULT_MAX_RECORD_SIZE`], 1 MiB, measured on what the store
//! writes): a `create` or `save` over it answers [`StoreError::TooLarge`]
//! and writes nothing. The engine skips a touch that meets it (a session
//! stored under a higher limit stays readable), logs a log-in's carry-over
//! that meets it (the log-in stands) and fails any other write. A limit
//! must take the suite's `large_record_round_trips` record, about 130 KB,
//! and refuse 32 MiB (`oversized_writes_are_too_large_and_write_nothing`).
//!
//! Every record carries [`Record::expires_at`], a [`Timestamp`](crate::Timestamp)
//! in Unix milliseconds: let the backend free the record at that time where
//! it can (a database index the store sweeps; a Redis `PXAT` of
//! [`unix_ms`](crate::Timestamp::unix_ms) − 1, since Redis keeps a key
//! through its `PXAT` millisecond and a record is dead from its deadline
//! on). A `save` sets the deadline to
//! the new record's, earlier or later than the stored one, or none. A
//! store must be `Send + Sync` and is used as `Arc<dyn SessionStore>`.
//!
//! A complete store, a map behind one lock (fine for a test, not for
//! production: use [`MemoryStore`], which shards its lock and frees expired
//! records):
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//! use session_core::{async_trait, Record, SaveOutcome, SessionStore, StoreError, StoreKey};
//!
//! #[derive(Debug, Default)]
//! struct MapStore {
//!     records: Mutex<HashMap<StoreKey, Vec<u8>>>,
//! }
//!
//! #[async_trait]
//! impl SessionStore for MapStore {
//!     async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
//!         let records = self.records.lock().unwrap();
//!         let Some(bytes) = records.get(key) else { return Ok(None) };
//!         let record = Record::from_bytes(bytes)?;
//!         // A real store lets its backend expire records; this one hides them.
//!         Ok((!record.is_expired(time::OffsetDateTime::now_utc())).then_some(record))
//!     }
//!
//!     async fn create(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
//!         let mut records = self.records.lock().unwrap();
//!         if let Some(stored) = records.get(key) {
//!             // An expired record counts as gone: it may be replaced.
//!             if !Record::from_bytes(stored)?.is_expired(time::OffsetDateTime::now_utc()) {
//!                 return Err(StoreError::Exists);
//!             }
//!         }
//!         records.insert(*key, within_limit(record)?);
//!         Ok(())
//!     }
//!
//!     async fn save(
//!         &self,
//!         key: &StoreKey,
//!         record: &Record,
//!         expected_version: u64,
//!     ) -> Result<SaveOutcome, StoreError> {
//!         let mut records = self.records.lock().unwrap();
//!         let Some(stored) = records.get(key) else {
//!             return Ok(SaveOutcome::Missing);
//!         };
//!         let stored = Record::from_bytes(stored)?;
//!         // Never bring an expired session back.
//!         if stored.is_expired(time::OffsetDateTime::now_utc()) {
//!             records.remove(key);
//!             return Ok(SaveOutcome::Missing);
//!         }
//!         if stored.version != expected_version {
//!             return Ok(SaveOutcome::Conflict(stored));
//!         }
//!         records.insert(*key, within_limit(record)?);
//!         Ok(SaveOutcome::Saved)
//!     }
//!
//!     async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
//!         self.records.lock().unwrap().remove(key);
//!         Ok(())
//!     }
//!
//!     // Removed and returned under one lock: no save lands in between.
//!     async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
//!         let Some(bytes) = self.records.lock().unwrap().remove(key) else { return Ok(None) };
//!         let record = Record::from_bytes(&bytes)?;
//!         Ok((!record.is_expired(time::OffsetDateTime::now_utc())).then_some(record))
//!     }
//! }
//!
//! /// The bytes to store for `record`, refused over 1 MiB.
//! fn within_limit(record: &Record) -> Result<Vec<u8>, StoreError> {
//!     let (bytes, limit) = (record.to_bytes(), session_core::DEFAULT_MAX_RECORD_SIZE);
//!     if bytes.len() > limit {
//!         return Err(StoreError::TooLarge { size: bytes.len(), limit });
//!     }
//!     Ok(bytes)
//! }
//!
//! let store: std::sync::Arc<dyn SessionStore> = std::sync::Arc::new(MapStore::default());
//! ```
//!
//! (This map never frees expired records, so its memory only grows.)
//!
//! A store whose operations never wait (an in-process map, like this one)
//! may also implement [`ImmediateStore`], the same operations as plain
//! functions, and return it from [`SessionStore::immediate`]: the engine
//! then skips the machinery async stores need. The [`MemoryStore`] does.

use std::fmt;

use crate::{Record, StoreError, StoreKey};

mod memory;
pub(crate) mod packed;
mod table;

pub(crate) use memory::MemoryAt;
pub use memory::{DEFAULT_MAX_RECORD_SIZE, MemoryStore};

/// What a compare-and-set [`SessionStore::save`] found.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum SaveOutcome {
    /// The record was written.
    Saved,
    /// Another writer saved first: this is the record as stored now. The
    /// engine merges its changes into it and saves again.
    Conflict(Record),
    /// There is no record under the key (deleted or expired). The save did
    /// not write anything.
    Missing,
}

/// Where server-side sessions live. See the [module docs](self) for the
/// rules and a complete example.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug {
    /// The record under `key`, or `None` when there is none or it has
    /// expired.
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError>;

    /// Stores a new record. Never overwrites a live record: when one exists
    /// under `key`, returns [`StoreError::Exists`]. A record that has expired
    /// but is not freed yet counts as gone and may be replaced, and so does
    /// a key whose record was deleted.
    ///
    /// One leeway: a key whose record was [`take`](Self::take)n may answer
    /// `Exists` for a while after (a store may leave a mark there, so that
    /// a copy of the take sent again agrees with the first, as
    /// session-redis does for a minute). The engine never creates a key it
    /// took: a new id is 128 random bits.
    async fn create(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError>;

    /// Replaces the record under `key` with `record` only when the stored
    /// version is `expected_version` (`record.version` is the new version).
    async fn save(
        &self,
        key: &StoreKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError>;

    /// Removes the record under `key`, if any.
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError>;

    /// Removes the record under `key` and returns it, or `None` when there
    /// was none or it had expired.
    ///
    /// The engine calls it when a session changes id
    /// ([`Session::regenerate`](crate::Session::regenerate)), after storing
    /// the new record: when another request of the old id saved after this
    /// one loaded, its changes carry over to the new id. `None` means the
    /// old session ended while the request ran (a log-out, its deadline,
    /// another log-in that took it first): the engine then deletes the new
    /// record again and sends no cookie, so answer `None` only when the
    /// record is surely gone, and an error when the take's outcome is not
    /// known. The default calls
    /// [`load`](Self::load), then [`delete`](Self::delete), so a save
    /// landing between the two is lost (the conformance suite's
    /// `take_racing_saves_loses_nothing` catches it when a save lands
    /// there). Override it with one
    /// atomic step of the backend (a map's `remove` under its lock; a
    /// backend that may run a command twice, as Redis clients re-send after
    /// a dropped connection, needs a take whose copies agree, such as
    /// session-redis's take script).
    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let record = self.load(key).await?;
        self.delete(key).await?;
        Ok(record)
    }

    /// The same store as an [`ImmediateStore`], if every operation completes
    /// at once without I/O (the [`MemoryStore`]); `None`, the default, for
    /// stores that wait on a network or a disk.
    ///
    /// The engine then calls the synchronous operations and skips the
    /// machinery that async stores need (boxed futures, and the per-session
    /// save lanes that group concurrent saves while a round trip is in
    /// flight). A store that returns `Some` must follow the same rules in
    /// both faces: the conformance suite's store cases alternate between
    /// them, so a record created through one is loaded, saved and deleted
    /// through the other.
    fn immediate(&self) -> Option<&dyn ImmediateStore> {
        None
    }
}

/// The synchronous face of a store whose operations complete at once, with
/// no I/O: the [`MemoryStore`], or a store over another in-process map.
/// Same operations and rules as [`SessionStore`]; return it from
/// [`SessionStore::immediate`].
///
/// ```
/// use session_core::{ImmediateStore, MemoryStore, Record, SessionId, SessionStore, ThreadRandom};
///
/// let store = MemoryStore::new();
/// let key = SessionId::generate(&ThreadRandom).unwrap().store_key();
/// let now = time::OffsetDateTime::now_utc();
/// let record = Record::new(now, Some(now + time::Duration::hours(1)));
///
/// let immediate = store.immediate().expect("the memory store answers at once");
/// immediate.create_now(&key, &record).unwrap();
/// assert_eq!(immediate.load_now(&key).unwrap(), Some(record));
/// ```
pub trait ImmediateStore: Send + Sync {
    /// As [`SessionStore::load`].
    ///
    /// # Errors
    ///
    /// As [`SessionStore::load`].
    fn load_now(&self, key: &StoreKey) -> Result<Option<Record>, StoreError>;

    /// As [`SessionStore::create`].
    ///
    /// # Errors
    ///
    /// As [`SessionStore::create`].
    fn create_now(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError>;

    /// As [`SessionStore::save`].
    ///
    /// # Errors
    ///
    /// As [`SessionStore::save`].
    fn save_now(
        &self,
        key: &StoreKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError>;

    /// As [`SessionStore::delete`].
    ///
    /// # Errors
    ///
    /// As [`SessionStore::delete`].
    fn delete_now(&self, key: &StoreKey) -> Result<(), StoreError>;

    /// As [`SessionStore::take`], whose default this one shares: load, then
    /// delete, which is not atomic. Override it as you override that one.
    ///
    /// # Errors
    ///
    /// As [`SessionStore::take`].
    fn take_now(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let record = self.load_now(key)?;
        self.delete_now(key)?;
        Ok(record)
    }
}
