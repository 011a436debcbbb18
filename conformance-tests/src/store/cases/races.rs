//! Operations of one key at the same moment, straight on the store: each
//! must be one atomic step of the backend, or two requests of one session
//! (on two servers) can overwrite, resurrect or lose each other's data.
//!
//! Every case releases its calls together with a barrier and repeats a few
//! rounds. A store that is atomic passes every round, whatever the order;
//! a store that checks and then writes in two steps fails when a round
//! lands another call between them, which the rounds make likely but,
//! for a narrow window, cannot promise.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use session_core::{Clock as _, Record, SaveOutcome, SessionStore, StoreError};
use tokio::sync::{Barrier, Notify};
use tokio::task::JoinSet;

use super::{fresh_key, join_all, record_at, with_data};
use crate::failure::{check, check_eq, fail};
use crate::store::Subject;
use crate::{Failure, Outcome};

/// How many calls each round releases at once.
const CALLS: usize = 16;
/// How many rounds each case runs.
const ROUNDS: usize = 10;

/// Runs `call(i)` for `i` in `0..n` at the same moment (each on its own
/// task, released by one barrier) and returns their results in order of
/// `i`.
async fn at_once<T, F, Fut>(n: usize, call: F) -> Result<Vec<T>, Failure>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let (barrier, call) = (barrier.clone(), call(i));
        tasks.spawn(async move {
            barrier.wait().await;
            Ok((i, call.await))
        });
    }
    let mut results = join_all(tasks).await?;
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, result)| result).collect())
}

/// The record writer `i` of a round writes: its own data, at `version`.
fn writers_record(subject: &Subject, i: usize, version: u64) -> Record {
    with_data(
        record_at(subject.clock.now()),
        json!({ "writer": i }),
        version,
    )
}

/// 16 creates of one key at the same moment: exactly one succeeds, every
/// other is [`StoreError::Exists`], and the record stored is the winner's.
/// A `create` that looks for the key and then writes in two steps lets
/// several "succeed", each overwriting the last: a new session replaced by
/// another's.
pub async fn concurrent_creates_of_one_key_have_one_winner(subject: Subject) -> Outcome {
    for round in 0..ROUNDS {
        let key = fresh_key();
        let results = at_once(CALLS, |i| {
            let (store, record) = (subject.store.clone(), writers_record(&subject, i, 0));
            async move { store.create(&key, &record).await }
        })
        .await?;
        let mut winners = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(()) => winners.push(i),
                Err(StoreError::Exists) => {}
                Err(error) => fail!("round {round}: create {i} failed: {}", Failure::from(error)),
            }
        }
        let [winner] = winners[..] else {
            fail!("round {round}: creates that succeeded: {winners:?}; want exactly one");
        };
        check_eq!(
            subject.store.load(&key).await?,
            Some(writers_record(&subject, winner, 0)),
            "round {round}: the record after the creates (create {winner} succeeded)"
        );
        subject.store.delete(&key).await?;
    }
    Ok(())
}

/// 16 saves of one record, each expecting the version it holds, at the
/// same moment: exactly one is [`SaveOutcome::Saved`], every other a
/// [`SaveOutcome::Conflict`] carrying the winner's record, which is what
/// the store then holds. A `save` that compares and then writes in two
/// steps lets several writers each think they saved, and all but the last
/// lose their change without the engine ever merging it.
pub async fn concurrent_saves_of_one_version_have_one_winner(subject: Subject) -> Outcome {
    for round in 0..ROUNDS {
        let key = fresh_key();
        subject
            .store
            .create(&key, &record_at(subject.clock.now()))
            .await?;
        let results = at_once(CALLS, |i| {
            let (store, record) = (subject.store.clone(), writers_record(&subject, i, 1));
            async move { store.save(&key, &record, 0).await }
        })
        .await?;
        let mut winners = Vec::new();
        let mut conflicts = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            match result.map_err(Failure::from)? {
                SaveOutcome::Saved => winners.push(i),
                SaveOutcome::Conflict(stored) => conflicts.push((i, stored)),
                SaveOutcome::Missing => fail!("round {round}: save {i} found no record"),
            }
        }
        let [winner] = winners[..] else {
            fail!("round {round}: saves that succeeded: {winners:?}; want exactly one");
        };
        let saved = writers_record(&subject, winner, 1);
        for (i, stored) in conflicts {
            check_eq!(
                stored,
                saved,
                "round {round}: the record save {i}'s conflict carried (save {winner} won)"
            );
        }
        check_eq!(
            subject.store.load(&key).await?,
            Some(saved),
            "round {round}: the record after the saves"
        );
        subject.store.delete(&key).await?;
    }
    Ok(())
}

/// A `take` while writers keep saving one record: the take hands back the
/// last record saved before it, and no save that begins after the take
/// has returned is [`SaveOutcome::Saved`]. Each writer saves on top of
/// whatever it last saw (a [`SaveOutcome::Conflict`] tells it the
/// version) until the record is gone. A take that loads and then deletes
/// in two steps (the trait's default) drops what a save wrote in between:
/// at log-in the engine takes the old record to carry over what other
/// requests saved, so such a store loses their changes. (Whether a round
/// lands a save in that window depends on the store's speed: the case can
/// catch a two-step take, not promise to.)
pub async fn take_racing_saves_loses_nothing(subject: Subject) -> Outcome {
    const WRITERS: usize = 4;
    for round in 0..ROUNDS {
        let key = fresh_key();
        let before = record_at(subject.clock.now());
        subject.store.create(&key, &before).await?;
        let taken = Arc::new(AtomicBool::new(false));
        let first_save = Arc::new(Notify::new());
        let mut writers = JoinSet::new();
        for i in 0..WRITERS {
            let store = subject.store.clone();
            let (taken, first_save) = (taken.clone(), first_save.clone());
            let now = subject.clock.now();
            writers.spawn(async move {
                let outcome: Result<Vec<Record>, Failure> = async {
                    let mut saved = Vec::new();
                    let mut version: u64 = 0;
                    loop {
                        let after_the_take = taken.load(Ordering::SeqCst);
                        let record = with_data(
                            record_at(now),
                            json!({ "writer": i }),
                            version.wrapping_add(1),
                        );
                        match store.save(&key, &record, version).await? {
                            SaveOutcome::Saved if after_the_take => fail!(
                                "round {round}: writer {i}'s save of version {} began after \
                                 the take had returned, and was Saved",
                                version.wrapping_add(1)
                            ),
                            SaveOutcome::Saved => {
                                saved.push(record);
                                version = version.wrapping_add(1);
                                first_save.notify_one();
                            }
                            SaveOutcome::Conflict(stored) if stored.version == version => fail!(
                                "round {round}: a save expecting version {version} conflicted \
                                 with a stored record of that version"
                            ),
                            SaveOutcome::Conflict(stored) => version = stored.version,
                            SaveOutcome::Missing => return Ok(saved),
                        }
                    }
                }
                .await;
                // A writer that ends before any save succeeded (its save
                // failed) lets the take go on, so that the case reports its
                // error rather than a timeout.
                first_save.notify_one();
                outcome
            });
        }
        // Take once the writers are under way.
        first_save.notified().await;
        let took = subject.store.take(&key).await;
        taken.store(true, Ordering::SeqCst);
        let took = took?;
        let saved = join_all(writers).await?;
        let want = saved
            .into_iter()
            .flatten()
            .max_by_key(|record| record.version)
            .unwrap_or(before);
        check_eq!(
            took,
            Some(want.clone()),
            "round {round}: what the take handed back (the last record saved was version {})",
            want.version
        );
        check_eq!(
            subject.store.load(&key).await?,
            None,
            "round {round}: load after the take"
        );
    }
    Ok(())
}

/// 16 takes of one record at the same moment: exactly one hands it back,
/// every other finds nothing. Two requests logging in on one session
/// would otherwise both carry its data into sessions of their own.
pub async fn concurrent_takes_hand_out_the_record_once(subject: Subject) -> Outcome {
    for round in 0..ROUNDS {
        let key = fresh_key();
        let record = with_data(
            record_at(subject.clock.now()),
            json!({ "user": "alice" }),
            0,
        );
        subject.store.create(&key, &record).await?;
        let results = at_once(CALLS, |_| {
            let store: Arc<dyn SessionStore> = subject.store.clone();
            async move { store.take(&key).await }
        })
        .await?;
        let mut takers = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            if let Some(taken) = result.map_err(Failure::from)? {
                check_eq!(taken, record, "round {round}: what take {i} handed back");
                takers.push(i);
            }
        }
        check!(
            takers.len() == 1,
            "round {round}: takes that handed the record back: {takers:?}; want exactly one"
        );
        check_eq!(
            subject.store.load(&key).await?,
            None,
            "round {round}: load after the takes"
        );
    }
    Ok(())
}
