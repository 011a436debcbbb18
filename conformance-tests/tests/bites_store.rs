//! The store suite bites: a store with one deliberate bug fails the cases
//! that target that bug, while the same store without it passes the whole
//! suite.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use conformance_tests::store::{self, Backend, Capabilities, ExpiryClock, Subject, cases};
use conformance_tests::{Outcome, store_suite};
use session_core::{
    Clock, ImmediateStore, Record, SaveOutcome, SessionStore, StoreError, StoreKey, Timestamp,
    async_trait,
};

/// The one thing a [`MapStore`] gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bug {
    None,
    /// `create` replaces an existing record.
    OverwritesOnCreate,
    /// `save` of a missing (deleted or expired) record writes it.
    ResurrectsOnSave,
    /// `save` writes whatever version is stored.
    IgnoresVersions,
    /// `load` returns records past their deadline.
    ReturnsExpired,
    /// Times are kept in whole seconds.
    TruncatesTimesToSeconds,
    /// Values longer than 64 KB are cut.
    CutsLargeValues,
    /// The session's own lifetime is dropped (a store with a format of
    /// its own that predates it).
    DropsTheLifetime,
    /// The store has an immediate face (`SessionStore::immediate`), and
    /// only that face's `create_now` replaces an existing record.
    ImmediateFaceOverwritesOnCreate,
    /// The store has an immediate face, and only the async face's `create`
    /// replaces an existing record.
    AsyncFaceOverwritesOnCreate,
    /// `take` returns the record but leaves it stored.
    TakeKeepsTheRecord,
    /// `save` keeps the deadline the record was created with, as a store
    /// that sets its backend's expiry only on create would.
    KeepsTheFirstDeadline,
    /// `create` looks for the key, then writes, in two steps.
    CreatesInTwoSteps,
    /// `save` compares the version, then writes, in two steps.
    SavesInTwoSteps,
    /// `take` loads, then deletes, in two steps (the trait's default).
    TakesInTwoSteps,
    /// `save` only ever extends the deadline (a backend expiry set with
    /// `PEXPIRE … GT`): a later one, or none, wins over an earlier one.
    OnlyExtendsTheDeadline,
    /// Records of any size are written.
    HasNoSizeLimit,
    /// A record over the limit is refused with `StoreError::Backend`, not
    /// `StoreError::TooLarge`.
    RefusesLargeRecordsAsABackendError,
    /// A `save` over the limit writes the record, then answers
    /// `StoreError::TooLarge`.
    WritesBeforeRefusingLargeRecords,
    /// `create` refuses a key that holds a record, live or expired.
    CreateRefusesExpiredRecords,
    /// `save` takes a record for live at its deadline (`now > expires_at`
    /// for dead, where `load` has it right).
    SavesAtTheDeadline,
    /// `delete` leaves a tombstone, which a later `create` takes for a
    /// record.
    DeletesWithATombstone,
    /// `create` gives a record without a deadline a backend expiry of a day
    /// (a save sets the expiry right).
    ExpiresRecordsCreatedWithoutADeadline,
}

/// The map store's limit on a record's size, as `Record::to_bytes` encodes
/// it: the built-in stores' default.
const LIMIT: usize = session_core::DEFAULT_MAX_RECORD_SIZE;

/// `Err(TooLarge)` when `record` is over [`LIMIT`], as a correct store
/// answers.
fn within_limit(record: &Record) -> Result<(), StoreError> {
    let size = record.to_bytes().len();
    if size > LIMIT {
        return Err(StoreError::TooLarge { size, limit: LIMIT });
    }
    Ok(())
}

/// How long a store with a two-step bug waits between its steps: wide
/// enough that the suite's simultaneous calls land in between.
const BETWEEN_STEPS: std::time::Duration = std::time::Duration::from_millis(2);

/// A map store on a clock, with at most one bug.
#[derive(Debug)]
struct MapStore {
    records: Mutex<HashMap<StoreKey, Record>>,
    /// [`Bug::DeletesWithATombstone`]'s tombstones.
    tombstones: Mutex<std::collections::HashSet<StoreKey>>,
    /// [`Bug::ExpiresRecordsCreatedWithoutADeadline`]'s backend expiries.
    backend_expiry: Mutex<HashMap<StoreKey, Timestamp>>,
    clock: Arc<dyn Clock>,
    bug: Bug,
    /// Whether it hands out its immediate face.
    immediate: bool,
}

impl MapStore {
    fn new(clock: Arc<dyn Clock>, bug: Bug) -> Self {
        Self {
            records: Mutex::default(),
            tombstones: Mutex::default(),
            backend_expiry: Mutex::default(),
            clock,
            bug,
            immediate: matches!(
                bug,
                Bug::ImmediateFaceOverwritesOnCreate | Bug::AsyncFaceOverwritesOnCreate
            ),
        }
    }

    fn with_immediate_face(mut self) -> Self {
        self.immediate = true;
        self
    }

    fn live(&self, record: Option<&Record>) -> Option<Record> {
        let record = record?.clone();
        (self.bug == Bug::ReturnsExpired || !record.is_expired(self.clock.now())).then_some(record)
    }

    /// `Err` when `record` is over the limit (the store's own bugs aside).
    fn check_size(&self, record: &Record) -> Result<(), StoreError> {
        match (self.bug, within_limit(record)) {
            (Bug::HasNoSizeLimit, _) => Ok(()),
            (Bug::RefusesLargeRecordsAsABackendError, Err(StoreError::TooLarge { size, .. })) => {
                Err(StoreError::backend(format!(
                    "value of {size} bytes refused"
                )))
            }
            (_, checked) => checked,
        }
    }

    fn stored(&self, record: &Record) -> Record {
        let mut record = record.clone();
        match self.bug {
            Bug::TruncatesTimesToSeconds => {
                // All three: the case's `last_seen` may fall on a whole
                // second, its `created_at` then does not.
                let truncate = |t: Timestamp| {
                    let ms = t.unix_ms();
                    Timestamp::from_unix_ms(ms - ms.rem_euclid(1000))
                };
                record.created_at = truncate(record.created_at);
                record.last_seen = truncate(record.last_seen);
                record.expires_at = record.expires_at.map(truncate);
            }
            Bug::CutsLargeValues => {
                for value in record.data.values_mut() {
                    if let serde_json::Value::String(s) = value {
                        s.truncate(64 * 1024);
                    }
                }
            }
            Bug::DropsTheLifetime => record.lifetime = session_core::Lifetime::default(),
            _ => {}
        }
        record
    }
}

// The operations, shared by both faces (the async one, and the immediate
// one a store with `immediate: true` hands out).
impl ImmediateStore for MapStore {
    fn load_now(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let now = Timestamp::from(self.clock.now());
        if self
            .backend_expiry
            .lock()
            .unwrap()
            .get(key)
            .is_some_and(|&at| now >= at)
        {
            return Ok(None);
        }
        Ok(self.live(self.records.lock().unwrap().get(key)))
    }

    fn create_now(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.create_checked(
            key,
            record,
            self.bug == Bug::ImmediateFaceOverwritesOnCreate,
        )
    }

    fn save_now(
        &self,
        key: &StoreKey,
        record: &Record,
        expected: u64,
    ) -> Result<SaveOutcome, StoreError> {
        if self.bug == Bug::WritesBeforeRefusingLargeRecords {
            if let Some(stored) = self.records.lock().unwrap().get_mut(key) {
                *stored = record.clone();
            }
        }
        self.check_size(record)?;
        let mut records = self.records.lock().unwrap();
        if self.bug == Bug::SavesInTwoSteps {
            let stored = self.live(records.get(key));
            drop(records);
            std::thread::sleep(BETWEEN_STEPS);
            records = self.records.lock().unwrap();
            let Some(stored) = stored else {
                return Ok(SaveOutcome::Missing);
            };
            if stored.version != expected {
                return Ok(SaveOutcome::Conflict(stored));
            }
            records.insert(*key, self.stored(record));
            return Ok(SaveOutcome::Saved);
        }
        let mut new = self.stored(record);
        self.backend_expiry.lock().unwrap().remove(key);
        let stored = if self.bug == Bug::SavesAtTheDeadline {
            let now = Timestamp::from(self.clock.now());
            records
                .get(key)
                .filter(|r| r.expires_at.is_none_or(|at| now <= at))
                .cloned()
        } else {
            self.live(records.get(key))
        };
        match stored {
            None if self.bug != Bug::ResurrectsOnSave => return Ok(SaveOutcome::Missing),
            Some(stored) if stored.version != expected && self.bug != Bug::IgnoresVersions => {
                return Ok(SaveOutcome::Conflict(stored));
            }
            Some(stored) if self.bug == Bug::KeepsTheFirstDeadline => {
                new.expires_at = stored.expires_at;
            }
            Some(stored) if self.bug == Bug::OnlyExtendsTheDeadline => {
                new.expires_at = match (stored.expires_at, new.expires_at) {
                    (Some(old), Some(new)) => Some(old.max(new)),
                    _ => None,
                };
            }
            _ => {}
        }
        records.insert(*key, new);
        Ok(SaveOutcome::Saved)
    }

    fn delete_now(&self, key: &StoreKey) -> Result<(), StoreError> {
        if self.records.lock().unwrap().remove(key).is_some()
            && self.bug == Bug::DeletesWithATombstone
        {
            self.tombstones.lock().unwrap().insert(*key);
        }
        Ok(())
    }

    fn take_now(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        match self.bug {
            Bug::TakeKeepsTheRecord => self.load_now(key),
            Bug::TakesInTwoSteps => {
                let record = self.load_now(key)?;
                std::thread::sleep(BETWEEN_STEPS);
                self.delete_now(key)?;
                Ok(record)
            }
            // One step, under the lock.
            _ => {
                let mut records = self.records.lock().unwrap();
                let record = self.live(records.get(key));
                records.remove(key);
                Ok(record)
            }
        }
    }
}

impl MapStore {
    fn create_checked(
        &self,
        key: &StoreKey,
        record: &Record,
        overwrite: bool,
    ) -> Result<(), StoreError> {
        self.check_size(record)?;
        let mut records = self.records.lock().unwrap();
        let exists = match self.bug {
            Bug::CreateRefusesExpiredRecords => records.contains_key(key),
            Bug::DeletesWithATombstone => {
                self.live(records.get(key)).is_some()
                    || self.tombstones.lock().unwrap().contains(key)
            }
            _ => self.live(records.get(key)).is_some(),
        };
        if self.bug == Bug::ExpiresRecordsCreatedWithoutADeadline && record.expires_at.is_none() {
            let day = Timestamp::from(self.clock.now() + time::Duration::days(1));
            self.backend_expiry.lock().unwrap().insert(*key, day);
        }
        if self.bug == Bug::CreatesInTwoSteps {
            drop(records);
            std::thread::sleep(BETWEEN_STEPS);
            records = self.records.lock().unwrap();
        }
        if !overwrite && self.bug != Bug::OverwritesOnCreate && exists {
            return Err(StoreError::Exists);
        }
        records.insert(*key, self.stored(record));
        Ok(())
    }
}

#[async_trait]
impl SessionStore for MapStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.load_now(key)
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.create_checked(key, record, self.bug == Bug::AsyncFaceOverwritesOnCreate)
    }

    async fn save(
        &self,
        key: &StoreKey,
        record: &Record,
        expected: u64,
    ) -> Result<SaveOutcome, StoreError> {
        self.save_now(key, record, expected)
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.delete_now(key)
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.take_now(key)
    }

    fn immediate(&self) -> Option<&dyn ImmediateStore> {
        self.immediate.then_some(self as &dyn ImmediateStore)
    }
}

// The control: without its bug, the map store passes every case, with and
// without an immediate face.
store_suite!(correct_map_store, expiry: manual_clock, |ctx| async move {
    MapStore::new(ctx.clock(), Bug::None)
});
store_suite!(
    correct_map_store_with_immediate_face,
    expiry: manual_clock,
    |ctx| async move { MapStore::new(ctx.clock(), Bug::None).with_immediate_face() }
);

// And on the wall clock, as a store over a backend that expires records by
// itself (a Redis `PXAT`) runs the suite.
store_suite!(
    correct_map_store_on_the_wall_clock,
    expiry: wall_clock,
    |_ctx| async move { MapStore::new(Arc::new(session_core::SystemClock), Bug::None) }
);

/// Asserts that the store with `bug` fails `case`.
fn fails<C, F>(bug: Bug, name: &str, case: C)
where
    C: Fn(Subject) -> F,
    F: Future<Output = Outcome>,
{
    fails_with(
        &format!("{bug:?}"),
        move |ctx| async move { MapStore::new(ctx.clock(), bug) },
        name,
        case,
    );
}

/// Asserts that the store `factory` makes, which has the bug `bug`, fails
/// `case`.
fn fails_with<M, MF, S, C, F>(bug: &str, factory: M, name: &str, case: C)
where
    M: Fn(store::StoreContext) -> MF + Send + Sync + 'static,
    MF: Future<Output = S> + 'static,
    S: SessionStore + 'static,
    C: Fn(Subject) -> F,
    F: Future<Output = Outcome>,
{
    fails_as(bug, ExpiryClock::Manual, factory, name, case);
}

/// [`fails_with`], the store said to have `capabilities`.
fn fails_as<M, MF, S, C, F>(
    bug: &str,
    capabilities: impl Into<Capabilities>,
    factory: M,
    name: &str,
    case: C,
) where
    M: Fn(store::StoreContext) -> MF + Send + Sync + 'static,
    MF: Future<Output = S> + 'static,
    S: SessionStore + 'static,
    C: Fn(Subject) -> F,
    F: Future<Output = Outcome>,
{
    match store::run("bites", name, capabilities, factory, case) {
        Err(failure) => eprintln!("{bug} fails {name}, as it must:\n{failure}\n"),
        Ok(()) => panic!("a store that {bug} passed {name}"),
    }
}

#[test]
fn store_that_overwrites_on_create_fails() {
    fails(
        Bug::OverwritesOnCreate,
        "create_never_overwrites",
        cases::create_never_overwrites,
    );
}

#[test]
fn store_whose_immediate_face_overwrites_on_create_fails() {
    // The suite alternates between the faces: the second `create` of the
    // case goes to the immediate one.
    fails(
        Bug::ImmediateFaceOverwritesOnCreate,
        "create_never_overwrites",
        cases::create_never_overwrites,
    );
}

#[test]
fn store_whose_async_face_overwrites_on_create_fails() {
    // Starting on the async face, the refused `create` of the case goes to
    // the immediate one; the case's second run starts on the immediate
    // face, and sends it to the async one.
    fails(
        Bug::AsyncFaceOverwritesOnCreate,
        "create_never_overwrites",
        cases::create_never_overwrites,
    );
}

#[test]
fn store_that_keeps_the_first_deadline_fails() {
    fails(
        Bug::KeepsTheFirstDeadline,
        "save_moves_the_deadline",
        cases::save_moves_the_deadline,
    );
}

#[test]
fn store_whose_take_keeps_the_record_fails() {
    fails(
        Bug::TakeKeepsTheRecord,
        "take_removes_the_record_and_returns_it",
        cases::take_removes_the_record_and_returns_it,
    );
    // A regeneration leaves the old id alive.
    fails(
        Bug::TakeKeepsTheRecord,
        "store_sees_only_digests_of_session_ids",
        cases::store_sees_only_digests_of_session_ids,
    );
}

#[test]
fn store_that_resurrects_on_save_fails() {
    let bug = Bug::ResurrectsOnSave;
    fails(
        bug,
        "save_of_a_missing_record",
        cases::save_of_a_missing_record_is_missing_and_writes_nothing,
    );
    fails(
        bug,
        "delete_then_save",
        cases::delete_then_save_of_the_old_version_does_not_resurrect,
    );
    fails(
        bug,
        "expired_record",
        cases::expired_record_is_never_returned_as_live,
    );
}

#[test]
fn store_that_ignores_versions_fails() {
    let bug = Bug::IgnoresVersions;
    fails(
        bug,
        "stale_version",
        cases::save_with_a_stale_version_is_a_conflict_not_an_overwrite,
    );
    fails(
        bug,
        "fifty_writers",
        cases::fifty_concurrent_writers_each_keep_their_own_key,
    );
    fails(
        bug,
        "twenty_updates",
        cases::twenty_concurrent_updates_of_one_list_lose_nothing,
    );
}

#[test]
fn store_that_returns_expired_records_fails() {
    let bug = Bug::ReturnsExpired;
    fails(
        bug,
        "expired_record",
        cases::expired_record_is_never_returned_as_live,
    );
    fails(
        bug,
        "exact_deadline",
        cases::record_is_live_until_its_exact_deadline,
    );
}

/// The cases' wall-clock branches bite too: a store on the system clock
/// with `bug` fails `case` run as `expiry: wall_clock`.
fn fails_on_the_wall_clock<C, F>(bug: Bug, name: &str, case: C)
where
    C: Fn(Subject) -> F,
    F: Future<Output = Outcome>,
{
    fails_as(
        &format!("{bug:?} on the wall clock"),
        ExpiryClock::Wall,
        move |_ctx| async move { MapStore::new(Arc::new(session_core::SystemClock), bug) },
        name,
        case,
    );
}

#[test]
fn store_that_misjudges_deadlines_on_the_wall_clock_fails() {
    fails_on_the_wall_clock(
        Bug::ReturnsExpired,
        "expired_record",
        cases::expired_record_is_never_returned_as_live,
    );
    fails_on_the_wall_clock(
        Bug::KeepsTheFirstDeadline,
        "save_moves",
        cases::save_moves_the_deadline,
    );
    fails_on_the_wall_clock(
        Bug::OnlyExtendsTheDeadline,
        "deadline_earlier",
        cases::save_can_bring_the_deadline_earlier,
    );
}

#[test]
fn store_that_misjudges_expired_or_deleted_keys_fails() {
    fails(
        Bug::CreateRefusesExpiredRecords,
        "create_over_expired",
        cases::create_over_an_expired_record_succeeds,
    );
    fails(
        Bug::SavesAtTheDeadline,
        "exact_deadline",
        cases::record_is_live_until_its_exact_deadline,
    );
    fails(
        Bug::DeletesWithATombstone,
        "create_after_delete",
        cases::create_after_a_delete_takes_the_key,
    );
    fails(
        Bug::ExpiresRecordsCreatedWithoutADeadline,
        "without_a_deadline",
        cases::record_without_a_deadline_round_trips,
    );
}

#[test]
fn store_that_loses_precision_or_data_fails() {
    fails(
        Bug::TruncatesTimesToSeconds,
        "round_trip",
        cases::create_then_load_round_trips_every_json_type,
    );
    fails(
        Bug::CutsLargeValues,
        "large_record",
        cases::large_record_round_trips,
    );
    fails(
        Bug::DropsTheLifetime,
        "lifetime",
        cases::session_lifetime_round_trips,
    );
}

#[test]
fn store_that_only_extends_deadlines_fails() {
    fails(
        Bug::OnlyExtendsTheDeadline,
        "deadline_earlier",
        cases::save_can_bring_the_deadline_earlier,
    );
}

#[test]
fn store_without_a_proper_size_limit_fails() {
    for bug in [
        Bug::HasNoSizeLimit,
        Bug::RefusesLargeRecordsAsABackendError,
        Bug::WritesBeforeRefusingLargeRecords,
    ] {
        fails(
            bug,
            "oversized",
            cases::oversized_writes_are_too_large_and_write_nothing,
        );
    }
}

#[test]
fn store_whose_writes_take_two_steps_fails() {
    fails(
        Bug::CreatesInTwoSteps,
        "concurrent_creates",
        cases::concurrent_creates_of_one_key_have_one_winner,
    );
    fails(
        Bug::SavesInTwoSteps,
        "concurrent_saves",
        cases::concurrent_saves_of_one_version_have_one_winner,
    );
    fails(
        Bug::TakesInTwoSteps,
        "take_racing_saves",
        cases::take_racing_saves_loses_nothing,
    );
    fails(
        Bug::TakesInTwoSteps,
        "concurrent_takes",
        cases::concurrent_takes_hand_out_the_record_once,
    );
}

/// One backend that every [`SharedStore`] of the process talks to, as
/// server processes share a Redis: records under (prefix, key).
static BACKEND: std::sync::LazyLock<Mutex<HashMap<(String, StoreKey), Record>>> =
    std::sync::LazyLock::new(Mutex::default);

/// The one thing a [`SharedStore`] gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SharedBug {
    None,
    /// Every instance writes under the same keys, whatever its prefix.
    IgnoresPrefix,
    /// Loads are served from a cache of this instance, filled by its own
    /// loads and writes.
    CachesLoads,
    /// Each instance writes under a prefix of its own, so that no other
    /// instance ever sees its records.
    KeepsRecordsToItself,
}

/// A store over [`BACKEND`], with at most one bug.
#[derive(Debug)]
struct SharedStore {
    prefix: String,
    clock: Arc<dyn Clock>,
    bug: SharedBug,
    cache: Mutex<HashMap<StoreKey, Record>>,
}

impl SharedStore {
    fn new(ctx: &store::StoreContext, bug: SharedBug) -> Self {
        Self {
            prefix: match bug {
                SharedBug::IgnoresPrefix => String::new(),
                SharedBug::KeepsRecordsToItself => {
                    static INSTANCES: std::sync::atomic::AtomicU64 =
                        std::sync::atomic::AtomicU64::new(0);
                    let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
                    format!("{}{n}:", ctx.prefix())
                }
                _ => ctx.prefix().to_owned(),
            },
            clock: ctx.clock(),
            bug,
            cache: Mutex::default(),
        }
    }

    fn at(&self, key: &StoreKey) -> (String, StoreKey) {
        (self.prefix.clone(), *key)
    }

    fn live(&self, record: Option<Record>) -> Option<Record> {
        record.filter(|r| !r.is_expired(self.clock.now()))
    }

    /// Writes `record` under `key`, and into the cache when it has one.
    fn write(
        &self,
        backend: &mut HashMap<(String, StoreKey), Record>,
        key: &StoreKey,
        record: &Record,
    ) {
        backend.insert(self.at(key), record.clone());
        if self.bug == SharedBug::CachesLoads {
            self.cache.lock().unwrap().insert(*key, record.clone());
        }
    }
}

#[async_trait]
impl SessionStore for SharedStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        if self.bug == SharedBug::CachesLoads {
            if let Some(cached) = self.cache.lock().unwrap().get(key) {
                return Ok(self.live(Some(cached.clone())));
            }
        }
        let record = self.live(BACKEND.lock().unwrap().get(&self.at(key)).cloned());
        if let (SharedBug::CachesLoads, Some(record)) = (self.bug, &record) {
            self.cache.lock().unwrap().insert(*key, record.clone());
        }
        Ok(record)
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        within_limit(record)?;
        let mut backend = BACKEND.lock().unwrap();
        if self.live(backend.get(&self.at(key)).cloned()).is_some() {
            return Err(StoreError::Exists);
        }
        self.write(&mut backend, key, record);
        Ok(())
    }

    async fn save(
        &self,
        key: &StoreKey,
        record: &Record,
        expected: u64,
    ) -> Result<SaveOutcome, StoreError> {
        within_limit(record)?;
        let mut backend = BACKEND.lock().unwrap();
        match self.live(backend.get(&self.at(key)).cloned()) {
            None => return Ok(SaveOutcome::Missing),
            Some(stored) if stored.version != expected => {
                return Ok(SaveOutcome::Conflict(stored));
            }
            Some(_) => {}
        }
        self.write(&mut backend, key, record);
        Ok(SaveOutcome::Saved)
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        BACKEND.lock().unwrap().remove(&self.at(key));
        self.cache.lock().unwrap().remove(key);
        Ok(())
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        Ok(self.live(BACKEND.lock().unwrap().remove(&self.at(key))))
    }
}

// The control: without a bug, the shared store passes every case.
store_suite!(correct_shared_store, expiry: manual_clock, backend: shared, |ctx| async move {
    SharedStore::new(&ctx, SharedBug::None)
});

#[test]
fn shared_store_that_ignores_its_prefix_or_caches_loads_fails() {
    for bug in [SharedBug::IgnoresPrefix, SharedBug::CachesLoads] {
        fails_with(
            &format!("{bug:?}"),
            move |ctx| async move { SharedStore::new(&ctx, bug) },
            "instances",
            cases::instances_share_records_only_under_one_prefix,
        );
    }
}

#[test]
fn shared_store_whose_instances_keep_records_to_themselves_fails_when_said_shared() {
    let bug = SharedBug::KeepsRecordsToItself;
    let factory = move |ctx| async move { SharedStore::new(&ctx, bug) };
    fails_as(
        &format!("{bug:?}"),
        Capabilities::from(ExpiryClock::Manual).with_backend(Backend::Shared),
        factory,
        "instances",
        cases::instances_share_records_only_under_one_prefix,
    );
    // Not said to be shared, it passes for an in-process store.
    let outcome = store::run(
        "bites",
        "instances",
        ExpiryClock::Manual,
        factory,
        cases::instances_share_records_only_under_one_prefix,
    );
    assert!(outcome.is_ok(), "{outcome:?}");
}

/// A store whose backend is gone, and what it makes of that.
#[derive(Debug)]
enum Down {
    /// Every operation fails, as it must.
    Reports,
    /// Every operation answers as if the backend had said "nothing here".
    Swallows,
    /// Every operation waits for ever (no timeout on a hung backend).
    Hangs,
    /// Reports the outage while the flag is up, then swallows it: passes
    /// only if the check holds the factory's guard (which lowers the flag
    /// when dropped) until it ends.
    ReportsWhileHeld(Arc<AtomicBool>),
}

/// Lowers its flag when dropped.
struct Lowers(Arc<AtomicBool>);

impl Drop for Lowers {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Down {
    async fn answer<T>(&self, nothing: T) -> Result<T, StoreError> {
        let reports = match self {
            Self::Reports => true,
            Self::Swallows => false,
            Self::Hangs => std::future::pending().await,
            Self::ReportsWhileHeld(up) => up.load(Ordering::SeqCst),
        };
        if reports {
            Err(StoreError::backend(std::io::Error::other(
                "connection refused",
            )))
        } else {
            Ok(nothing)
        }
    }
}

#[async_trait]
impl SessionStore for Down {
    async fn load(&self, _: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.answer(None).await
    }

    async fn create(&self, _: &StoreKey, _: &Record) -> Result<(), StoreError> {
        self.answer(()).await
    }

    async fn save(&self, _: &StoreKey, _: &Record, _: u64) -> Result<SaveOutcome, StoreError> {
        self.answer(SaveOutcome::Missing).await
    }

    async fn delete(&self, _: &StoreKey) -> Result<(), StoreError> {
        self.answer(()).await
    }

    async fn take(&self, _: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.answer(None).await
    }
}

// The control: a store that reports its outage passes the outage check.
conformance_tests::store_outage_suite!(down_and_saying_so, |_ctx| async move { Down::Reports });

// With `hold:`, the guard lives until the check ends: this store reports
// the outage only while its guard is alive.
conformance_tests::store_outage_suite!(down_while_the_guard_is_held, hold: |_ctx| async move {
    let up = Arc::new(AtomicBool::new(true));
    (Down::ReportsWhileHeld(Arc::clone(&up)), Lowers(up))
});

#[test]
fn the_outage_check_drops_the_guard_once_it_ends() {
    let up = Arc::new(AtomicBool::new(true));
    let store_flag = Arc::clone(&up);
    let guard_flag = Arc::clone(&up);
    let outcome = store::outage::run_holding("bites", move |_ctx| async move {
        (Down::ReportsWhileHeld(store_flag), Lowers(guard_flag))
    });
    assert!(outcome.is_ok(), "{outcome:?}");
    assert!(
        !up.load(Ordering::SeqCst),
        "the guard outlived the outage check"
    );
}

#[test]
fn store_that_swallows_its_outage_fails() {
    let outcome = store::outage::run("bites", |_ctx| async move { Down::Swallows });
    match outcome {
        Err(failure) => {
            eprintln!("a store that swallows its outage fails, as it must:\n{failure}\n")
        }
        Ok(()) => panic!("a store that swallows its outage passed the outage check"),
    }
}

/// A store that never answers fails the check, at its first operation. On
/// a paused clock the check's 15 s limit passes at once.
#[test]
fn store_that_waits_on_a_hung_backend_for_ever_fails() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let clock = session_core::ManualClock::new(time::OffsetDateTime::now_utc());
    let outcome = runtime.block_on(store::outage::every_operation_reports_the_outage(
        &Down::Hangs,
        &clock,
    ));
    let failure = outcome.expect_err("a store that never answers passed the outage check");
    let message = failure.to_string();
    assert!(
        message.contains("load with the backend down did not return within 15s"),
        "{message}"
    );
}
