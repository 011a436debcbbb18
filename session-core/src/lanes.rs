//! Saves of one session within one process: serialized, and grouped.
//!
//! Used for stores that wait (a network round trip); a store that answers at
//! once ([`ImmediateStore`](crate::ImmediateStore)) saves directly, and
//! concurrent saves meet as compare-and-set conflicts and merge.
//!
//! Without this, `n` simultaneous requests of one session all load the same
//! version, and the store sees about `n²/2` conflicting saves. Here every
//! save goes through a lane (chosen by the session's key) whose async mutex
//! (runtime-agnostic) is held for the whole compare-and-set loop, and:
//!
//! - a save starts from the last record this process saved for the session
//!   when that is newer than what the request loaded, so it does not meet
//!   its predecessor as a conflict in the store (a lane keeps that record
//!   until its next save, and keeps its data only when small, about
//!   [`KEPT_DATA_BUDGET`] bytes at most: a larger session's later save
//!   meets the conflict in the store and merges there, as a save from
//!   another process would);
//! - requests that queue while a save is in flight are **grouped**: the
//!   next one to get the lane replays the changes of every waiting request
//!   of the same session onto one record and saves once, then hands each
//!   of them the outcome. So a burst of requests of one session costs about
//!   two saves, not one round trip each. A grouped save succeeds or fails
//!   as a whole: an `update` closure that fails on the group's data fails
//!   every request of the group. A group whose record the store finds too
//!   large (`StoreError::TooLarge`) is saved again one request at a time,
//!   each on top of those saved before it, so that only a request whose
//!   changes take the record over the limit at its turn fails.
//!
//! Saves of other sessions that share a lane wait for each other too, which
//! is why there are many lanes.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::plan::{Changes, Executed, save, settle};
use crate::session::{append, merge_times, replay};
use crate::store::SessionStore;
use crate::{Record, SessionError, StoreError, StoreKey};

const LANES: usize = 256;

/// The most a lane keeps of the data of the last record it saved, in
/// bytes, roughly (string bytes, plus 32 for each value and key): 256
/// lanes keep 16 MiB or so at most, until their next saves. The record
/// size limit caps encoded bytes, and a decoded value takes more room than
/// its encoding (up to about 32 times as much, for an array of `null`s),
/// so without this bound a few large sessions saved once would hold
/// gigabytes after their requests ended.
pub(crate) const KEPT_DATA_BUDGET: usize = 64 * 1024;

/// The last record saved in a lane.
struct Saved {
    key: StoreKey,
    /// As saved, but for its data when `whole` is false: then emptied.
    record: Record,
    /// Whether `record.data` is the data saved (within
    /// [`KEPT_DATA_BUDGET`]), so that a later save may start from it.
    whole: bool,
}

impl Saved {
    fn new(key: StoreKey, mut record: Record) -> Self {
        let whole = within_budget(&record.data);
        if !whole {
            record.data = crate::Data::new();
        }
        Self { key, record, whole }
    }
}

type LastSaved = Option<Saved>;

/// Whether `data` takes about [`KEPT_DATA_BUDGET`] bytes or less; stops
/// walking once past it.
fn within_budget(data: &crate::Data) -> bool {
    fn spend(budget: &mut usize, cost: usize) -> bool {
        budget
            .checked_sub(cost)
            .map(|left| *budget = left)
            .is_some()
    }
    fn value(v: &serde_json::Value, budget: &mut usize) -> bool {
        use serde_json::Value;
        let own = match v {
            Value::String(s) => s.len(),
            _ => 0,
        };
        spend(budget, 32 + own)
            && match v {
                Value::Array(items) => items.iter().all(|item| value(item, budget)),
                Value::Object(map) => map
                    .iter()
                    .all(|(k, item)| spend(budget, 32 + k.len()) && value(item, budget)),
                _ => true,
            }
    }
    let mut budget = KEPT_DATA_BUDGET;
    data.iter()
        .all(|(k, v)| spend(&mut budget, 32 + k.len()) && value(v, &mut budget))
}

/// What one request asks to save.
#[derive(Clone)]
pub(crate) struct Job {
    pub(crate) record: Record,
    pub(crate) expected_version: u64,
    pub(crate) changes: Changes,
}

/// A request waiting for its save: its job until a leader takes it, then
/// the outcome the leader hands back.
struct Pending {
    key: StoreKey,
    state: Mutex<PendingState>,
}

enum PendingState {
    Queued(Job),
    Taken,
    Finished(Result<Executed, Arc<SessionError>>),
    /// Saved on its own after its group's record was too large: its own
    /// outcome, not the group's.
    FinishedAlone(Result<Executed, SessionError>),
}

struct Lane {
    gate: async_lock::Mutex<LastSaved>,
    queue: Mutex<Vec<Arc<Pending>>>,
}

pub(crate) struct SaveLanes {
    lanes: Box<[Lane]>,
}

impl fmt::Debug for SaveLanes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaveLanes")
            .field("lanes", &self.lanes.len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section below is a push, a drain or a swap: nothing
    // can be left half-done by a panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes a waiting request's entry out of its lane's queue when dropped (a
/// leader that took it already took it out).
struct Unqueue<'a> {
    queue: &'a Mutex<Vec<Arc<Pending>>>,
    me: &'a Arc<Pending>,
}

impl Drop for Unqueue<'_> {
    fn drop(&mut self) {
        lock(self.queue).retain(|p| !Arc::ptr_eq(p, self.me));
    }
}

/// Marks the taken jobs of a group as interrupted if the leader's future is
/// dropped mid-save (a client that went away): whether the store applied
/// the save is then unknown, so the other requests must not save again.
struct GroupGuard {
    others: Vec<Arc<Pending>>,
    finished: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if !self.finished {
            let error = Arc::new(SessionError::SaveInterrupted);
            for pending in &self.others {
                *lock(&pending.state) = PendingState::Finished(Err(error.clone()));
            }
        }
    }
}

impl SaveLanes {
    pub(crate) fn new() -> Self {
        let lanes = (0..LANES)
            .map(|_| Lane {
                gate: async_lock::Mutex::new(None),
                queue: Mutex::new(Vec::new()),
            })
            .collect();
        Self { lanes }
    }

    fn lane(&self, key: &StoreKey) -> &Lane {
        // Byte 30: independent of the bytes the memory store shards and
        // hashes by.
        &self.lanes[usize::from(key.as_bytes()[30]) % LANES]
    }

    /// Forgets the last record saved for `key` (it was deleted).
    pub(crate) async fn forget(&self, key: &StoreKey) {
        let mut last = self.lane(key).gate.lock().await;
        if last.as_ref().is_some_and(|saved| saved.key == *key) {
            *last = None;
        }
    }

    /// Saves `job` for `key`, grouped with the saves of the same session
    /// that are waiting in this process.
    pub(crate) async fn save(
        &self,
        store: &dyn SessionStore,
        job: Job,
        key: StoreKey,
        max_conflict_retries: u32,
    ) -> Result<Executed, SessionError> {
        let lane = self.lane(&key);
        // Nobody is saving or waiting in this lane (the common case): save
        // at once, with no queue entry. A request that queues meanwhile is
        // grouped by the next leader and starts from the record saved here.
        // (With requests queued, the lock is left to them: one of them leads
        // and takes the others.)
        if lock(&lane.queue).is_empty() {
            if let Some(mut last) = lane.gate.try_lock() {
                let own = job.record.lifetime;
                let executed =
                    save_group(store, key, job, &[], &mut last, max_conflict_retries).await;
                return executed.map(|executed| settled(executed, own, &last));
            }
        }
        // Boxed: the queued path is rare, and keeping it out of line keeps
        // the common path's future small.
        Box::pin(save_queued(lane, store, job, key, max_conflict_retries)).await
    }
}

async fn save_queued(
    lane: &Lane,
    store: &dyn SessionStore,
    job: Job,
    key: StoreKey,
    max_conflict_retries: u32,
) -> Result<Executed, SessionError> {
    let me = Arc::new(Pending {
        key,
        state: Mutex::new(PendingState::Queued(job)),
    });
    lock(&lane.queue).push(me.clone());
    // Dropped while still waiting (a client that went away): the entry must
    // not stay queued, or this lane's queue would never be empty again and
    // every save in it would take this path for the life of the process.
    let unqueue = Unqueue {
        queue: &lane.queue,
        me: &me,
    };
    let mut last = lane.gate.lock().await;
    drop(unqueue);

    // A leader before us may already have saved our changes.
    let mine = match std::mem::replace(&mut *lock(&me.state), PendingState::Taken) {
        PendingState::Finished(outcome) => return outcome.map_err(SessionError::Grouped),
        PendingState::FinishedAlone(outcome) => return outcome,
        PendingState::Queued(job) => job,
        PendingState::Taken => unreachable!("only the request itself takes its job"),
    };
    // We lead: take every waiting save of this session, in queue order
    // (`retain` keeps the queue's allocation for the next request).
    let mut others = Vec::new();
    lock(&lane.queue).retain(|p| {
        if Arc::ptr_eq(p, &me) {
            false
        } else if p.key == key {
            others.push(p.clone());
            false
        } else {
            true
        }
    });
    let mut jobs = Vec::new();
    let mut guard = GroupGuard {
        others: Vec::new(),
        finished: false,
    };
    for pending in others {
        let taken = std::mem::replace(&mut *lock(&pending.state), PendingState::Taken);
        if let PendingState::Queued(job) = taken {
            jobs.push(job);
            guard.others.push(pending);
        }
    }
    if !jobs.is_empty() {
        tracing::debug!(requests = jobs.len() + 1, "grouping saves of one session");
    }

    // Kept to save each request in turn if the group's record turns out
    // too large for the store: then only a request whose changes take the
    // record over the limit at its turn fails, not every request of the
    // group.
    let mine_again = (!jobs.is_empty()).then(|| mine.clone());
    let own = mine.record.lifetime;
    let outcome = save_group(store, key, mine, &jobs, &mut last, max_conflict_retries).await;
    if let (Err(SessionError::Store(StoreError::TooLarge { .. })), Some(mine)) =
        (&outcome, mine_again)
    {
        tracing::debug!("a grouped save is too large for the store; saving each request alone");
        let mine = save_group(store, key, mine, &[], &mut last, max_conflict_retries).await;
        // `jobs` and `guard.others` are in the same order.
        let mut saved = Vec::new();
        for job in jobs {
            let lifetime = job.record.lifetime;
            let alone = save_group(store, key, job, &[], &mut last, max_conflict_retries).await;
            // Answered: no longer the guard's to mark as interrupted if this
            // future is dropped before the rest are saved. A save is
            // answered again below, once the last of them is stored.
            let pending = guard.others.remove(0);
            let answer = alone.map(|executed| {
                saved.push((pending.clone(), executed, lifetime));
                settled(executed, lifetime, &last)
            });
            *lock(&pending.state) = PendingState::FinishedAlone(answer);
        }
        // Against the record as the last of them left it (a later request
        // may have set another lifetime): the requests are still waiting
        // for the lane's lock, which this one holds, so none has read its
        // answer yet.
        for (pending, executed, lifetime) in saved {
            *lock(&pending.state) =
                PendingState::FinishedAlone(Ok(settled(executed, lifetime, &last)));
        }
        guard.finished = true;
        // Against the record as the last of them left it, as a group's
        // outcome is (a later request may have set another lifetime).
        return mine.map(|executed| settled(executed, own, &last));
    }
    guard.finished = true;
    if guard.others.is_empty() {
        return outcome.map(|executed| settled(executed, own, &last));
    }
    // Each request's cookie was made for the lifetime it loaded.
    let shared = outcome.map_err(Arc::new);
    for (pending, job) in guard.others.iter().zip(&jobs) {
        let outcome = shared
            .clone()
            .map(|executed| settled(executed, job.record.lifetime, &last));
        *lock(&pending.state) = PendingState::Finished(outcome);
    }
    shared
        .map(|executed| settled(executed, own, &last))
        .map_err(SessionError::Grouped)
}

/// [`settle`] against the record `last` holds, the one now stored.
fn settled(executed: Executed, own: crate::Lifetime, last: &LastSaved) -> Executed {
    settle(
        executed,
        own,
        last.as_ref().map(|saved| saved.record.lifetime),
    )
}

async fn save_group(
    store: &dyn SessionStore,
    key: StoreKey,
    first: Job,
    jobs: &[Job],
    last: &mut LastSaved,
    max_conflict_retries: u32,
) -> Result<Executed, SessionError> {
    let mut record = first.record;
    let mut expected_version = first.expected_version;
    let mut ops = first.changes.0;
    let mut newest_times = None;
    if let Some(Saved {
        key: last_key,
        record: newest,
        whole: true,
    }) = last.as_ref()
    {
        if *last_key == key && newest.version > expected_version {
            // Another request of this session, in this process, saved a
            // newer version: start from it instead of meeting it as a
            // conflict in the store.
            let times = merge_times(record.times(), &ops, newest.times());
            let mut data = newest.data.clone();
            replay(&ops, &mut data)?;
            record.data = data;
            record.created_at = newest.created_at;
            record.set_times(times);
            expected_version = newest.version;
            record.version = newest.version.wrapping_add(1);
            newest_times = Some(newest.times());
        }
    }
    // The later touch wins (a write within the touch interval keeps the
    // last-use time it loaded), unless a lifetime was set: see
    // `merge_times`.
    for job in jobs {
        replay(&job.changes.0, &mut record.data)?;
        let times = merge_times(job.record.times(), &job.changes.0, record.times());
        record.set_times(times);
        append(&mut ops, &job.changes.0);
    }
    if ops.is_empty() && newest_times == Some(record.times()) {
        // Only touches, and a newer save already moved the deadline as
        // far.
        return Ok(Executed::Done);
    }
    let changes = Changes(ops);
    // Only touches: a save that moves the idle deadline and nothing else.
    let touch = changes.is_empty();
    let (executed, written) = save(
        store,
        key,
        record,
        expected_version,
        &changes,
        max_conflict_retries,
        touch,
    )
    .await?;
    *last = written.map(|record| Saved::new(key, record));
    Ok(executed)
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::{MemoryStore, Timestamp};

    fn job() -> Job {
        Job {
            record: Record::new(Timestamp::from_unix_ms(0), None),
            expected_version: 0,
            changes: Changes::default(),
        }
    }

    /// Runs `future`, which must not wait (the memory store answers at
    /// once, and the lane is free).
    fn now<F: std::future::Future>(future: F) -> F::Output {
        let mut cx = Context::from_waker(Waker::noop());
        match pin!(future).poll(&mut cx) {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("the save waited"),
        }
    }

    /// A job that inserts `value` under `name` into the record `base`
    /// (version `base.version`).
    fn insert(base: &Record, name: &str, value: serde_json::Value) -> Job {
        let mut record = base.clone();
        record.data.insert(name, value.clone());
        record.version = base.version + 1;
        Job {
            record,
            expected_version: base.version,
            changes: Changes(
                [crate::session::Op::Insert(name.into(), value)]
                    .into_iter()
                    .collect(),
            ),
        }
    }

    /// A lane keeps a small session's last record whole, so that a save
    /// of an older version starts from it; of a large one it keeps the
    /// times and lifetime but not the data, and a save of an older version
    /// then merges through the store's conflict instead. Either way nothing
    /// is lost.
    #[test]
    fn a_lane_keeps_the_data_of_small_sessions_only() {
        let big = serde_json::Value::Array(vec![serde_json::json!(0); 4096]);
        for (value, kept) in [(serde_json::json!("small"), true), (big, false)] {
            let lanes = SaveLanes::new();
            let store = MemoryStore::new();
            let key = StoreKey::from_bytes([9; 32]);
            let base = Record::new(Timestamp::from_unix_ms(1_000), None);
            now(store.create(&key, &base)).unwrap();

            let first = insert(&base, "a", value.clone());
            assert!(matches!(
                now(lanes.save(&store, first, key, 3)),
                Ok(Executed::Done)
            ));
            {
                let last = lanes.lane(&key).gate.try_lock().expect("a free lane");
                let saved = last.as_ref().expect("the lane keeps the record");
                assert_eq!(saved.whole, kept);
                assert_eq!(saved.record.version, 1);
                assert_eq!(saved.record.data.len(), usize::from(kept));
            }

            // Loaded before the first save: version 0.
            let second = insert(&base, "b", serde_json::json!(2));
            assert!(matches!(
                now(lanes.save(&store, second, key, 3)),
                Ok(Executed::Done)
            ));
            let stored = now(store.load(&key)).unwrap().expect("stored");
            assert_eq!(stored.data.get("a"), Some(&value), "kept: {kept}");
            assert_eq!(stored.data.get("b"), Some(&serde_json::json!(2)));
            assert_eq!(stored.version, 2);
        }
    }

    #[test]
    fn the_budget_counts_nested_values_and_stops_past_it() {
        let mut data = crate::Data::new();
        data.insert("s", serde_json::json!("x".repeat(KEPT_DATA_BUDGET / 2)));
        assert!(within_budget(&data));
        data.insert(
            "t",
            serde_json::json!({ "u": ["x".repeat(KEPT_DATA_BUDGET / 2)] }),
        );
        assert!(!within_budget(&data), "two halves and their keys are over");
        let mut nested = crate::Data::new();
        let zeros = vec![0; 1024];
        nested.insert("n", serde_json::json!([[zeros, zeros], { "k": zeros }]));
        assert!(!within_budget(&nested), "3,072 numbers at 32 bytes each");
    }

    /// A save that waits for its lane and is then dropped (its client went
    /// away) leaves no entry behind, so the lane's next save takes the
    /// direct path again.
    #[test]
    fn a_dropped_waiting_save_leaves_its_lane() {
        let lanes = SaveLanes::new();
        let store = MemoryStore::new();
        let key = StoreKey::from_bytes([7; 32]);
        let lane = lanes.lane(&key);
        let held = lane.gate.try_lock().expect("a free lane");

        let mut cx = Context::from_waker(Waker::noop());
        {
            let mut save = pin!(lanes.save(&store, job(), key, 3));
            assert!(save.as_mut().poll(&mut cx).is_pending());
            assert_eq!(lock(&lane.queue).len(), 1, "the save waits in the queue");
        }
        assert!(
            lock(&lane.queue).is_empty(),
            "the dropped save left its entry"
        );

        drop(held);
        let mut save = pin!(lanes.save(&store, job(), key, 3));
        assert!(matches!(save.as_mut().poll(&mut cx), Poll::Ready(_)));
    }
}
