//! Expiry: a record past its deadline is gone.

use serde_json::json;
use session_core::{Clock as _, Record, SaveOutcome};
use time::{Duration, OffsetDateTime};

use super::{fresh_key, record_at, with_data};
use crate::Outcome;
use crate::failure::{check, check_eq, fail};
use crate::store::{ExpiryClock, Subject};

/// How far ahead a record expires in the wall-clock variant.
const WALL_TTL: Duration = Duration::milliseconds(200);
/// How far the store's clock may be from the suite's: past a deadline by
/// this much, a record must be gone. (A backend that only sweeps expired
/// records from time to time must filter them out when it reads or saves.)
const WALL_SKEW: Duration = Duration::milliseconds(100);

/// Sleeps until the wall clock is past `at`.
async fn sleep_until(at: OffsetDateTime) {
    let left = at - OffsetDateTime::now_utc();
    if left.is_positive() {
        tokio::time::sleep(left.unsigned_abs()).await;
    }
}

/// A record past its [`Record::expires_at`] is never loaded, and a late
/// save of it is [`SaveOutcome::Missing`] rather than bringing it back.
///
/// With `expiry: manual_clock` the suite moves the clock past the deadline.
/// With `expiry: wall_clock` it makes a record that expires 200 ms ahead of
/// the wall clock, waits until 100 ms past the deadline (the most the
/// store's clock may be off), and then expects the saves to find nothing
/// and a load to find nothing.
///
/// How the backend frees the memory of expired records (a sweep, a Redis
/// `PXAT`) is the store's own business, checked by its own tests: the suite
/// checks what callers see.
pub async fn expired_record_is_never_returned_as_live(subject: Subject) -> Outcome {
    let key = fresh_key();
    let record = match subject.expiry {
        ExpiryClock::Manual => {
            let record = with_data(record_at(subject.clock.now()), json!({"n": 1}), 0);
            subject.store.create(&key, &record).await?;
            subject
                .clock
                .advance(Duration::minutes(10) + Duration::seconds(1));
            let loaded = subject.store.load(&key).await?;
            check_eq!(loaded, None, "load one second after the deadline");
            record
        }
        ExpiryClock::Wall => {
            let now = wall_now_ms();
            let deadline = now + WALL_TTL;
            let record = with_data(Record::new(now, Some(deadline)), json!({"n": 1}), 0);
            subject.store.create(&key, &record).await?;
            let loaded = subject.store.load(&key).await?;
            // Only a load that finished before the deadline had to see it.
            if OffsetDateTime::now_utc() < deadline {
                check_eq!(loaded, Some(record.clone()), "load before the deadline");
            }
            sleep_until(deadline + WALL_SKEW).await;
            record
        }
    };
    let mut late = record.clone();
    late.version = record.version + 1;
    late.data.insert("late", json!(true));
    // Another version than the one stored: still nothing there, not a
    // conflict with a record that has expired.
    let outcome = subject.store.save(&key, &late, record.version + 7).await?;
    check_eq!(
        outcome,
        SaveOutcome::Missing,
        "save of an expired record, expecting another version"
    );
    let outcome = subject.store.save(&key, &late, record.version).await?;
    check_eq!(outcome, SaveOutcome::Missing, "save of an expired record");
    check_eq!(
        subject.store.load(&key).await?,
        None,
        "the expired record after the late saves"
    );
    Ok(())
}

/// The record is live until the millisecond before its deadline and gone
/// at the deadline itself (`expires_at` is the first instant it is dead):
/// a load then finds nothing, and a save, sent before any load, is
/// [`SaveOutcome::Missing`] and brings nothing back.
pub async fn record_is_live_until_its_exact_deadline(subject: Subject) -> Outcome {
    let key = fresh_key();
    let record = with_data(record_at(subject.clock.now()), json!({"n": 1}), 0);
    subject.store.create(&key, &record).await?;
    subject
        .clock
        .advance(Duration::minutes(10) - Duration::milliseconds(1));
    check_eq!(
        subject.store.load(&key).await?,
        Some(record.clone()),
        "load 1 ms before the deadline"
    );
    subject.clock.advance(Duration::milliseconds(1));
    // First a save, so that a store which drops an expired record when it
    // loads it cannot hide a save that judges the deadline otherwise.
    let mut late = record.clone();
    late.version = record.version + 1;
    late.expires_at = Some((subject.clock.now() + Duration::minutes(10)).into());
    let outcome = subject.store.save(&key, &late, record.version).await?;
    check_eq!(outcome, SaveOutcome::Missing, "save at the deadline");
    check_eq!(
        subject.store.load(&key).await?,
        None,
        "load at the deadline"
    );
    Ok(())
}

/// A save moves the record's deadline to the new record's
/// [`Record::expires_at`] (activity extends the idle timeout), and a save
/// without one makes the record last until it is deleted. A store that set
/// its expiry only on `create` would end active sessions at their first
/// deadline.
///
/// With `expiry: manual_clock` the suite moves the clock; with
/// `expiry: wall_clock` it saves a record made to expire 200 ms ahead with
/// a deadline an hour away, waits 400 ms and expects it still there.
pub async fn save_moves_the_deadline(subject: Subject) -> Outcome {
    let key = fresh_key();
    match subject.expiry {
        ExpiryClock::Manual => {
            let now = subject.clock.now();
            let record = with_data(record_at(now), json!({"n": 1}), 0);
            subject.store.create(&key, &record).await?;
            let mut later = with_data(record_at(now), json!({"n": 2}), 1);
            later.expires_at = Some((now + Duration::minutes(20)).into());
            let outcome = subject.store.save(&key, &later, 0).await?;
            check_eq!(outcome, SaveOutcome::Saved, "save with a later deadline");
            subject.clock.advance(Duration::minutes(15));
            check_eq!(
                subject.store.load(&key).await?,
                Some(later.clone()),
                "load past the first deadline, before the saved one"
            );
            let mut forever = later.clone();
            forever.expires_at = None;
            forever.version = 2;
            let outcome = subject.store.save(&key, &forever, 1).await?;
            check_eq!(outcome, SaveOutcome::Saved, "save without a deadline");
            subject.clock.advance(Duration::days(400));
            check_eq!(
                subject.store.load(&key).await?,
                Some(forever),
                "a record saved without a deadline, 400 days later"
            );
        }
        ExpiryClock::Wall => {
            let (key, later) =
                saved_before_the_deadline(&subject, Some(Duration::hours(1))).await?;
            let (forever_key, forever) = saved_before_the_deadline(&subject, None).await?;
            tokio::time::sleep(2 * WALL_TTL.unsigned_abs()).await;
            let loaded = subject.store.load(&forever_key).await?;
            // Do not leave a record without a deadline behind.
            subject.store.delete(&forever_key).await?;
            check_eq!(
                subject.store.load(&key).await?,
                Some(later),
                "load past the first deadline, before the saved one"
            );
            check_eq!(
                loaded,
                Some(forever),
                "load past the first deadline of a record saved without one"
            );
        }
    }
    Ok(())
}

/// A save can also bring the deadline *earlier*, or give one to a record
/// that had none: the new record's [`Record::expires_at`] is the deadline,
/// whatever the stored one was. A session's own lifetime, set after it was
/// created, can shorten it; a store that only ever extends its backend's
/// expiry (`PEXPIRE … GT`, a `max` of both) keeps such a session alive.
///
/// With `expiry: manual_clock` the suite moves the clock past the new
/// deadlines; with `expiry: wall_clock` it saves, with a deadline 200 ms
/// ahead, records made to live an hour and for ever, and expects both gone
/// 100 ms past that deadline.
pub async fn save_can_bring_the_deadline_earlier(subject: Subject) -> Outcome {
    let mut keys = Vec::new();
    let outcome = deadline_brought_earlier(&subject, &mut keys).await;
    // A store that kept the later deadline, or none, keeps these records:
    // never leave them behind in a shared backend.
    for key in &keys {
        let deleted = subject.store.delete(key).await;
        if outcome.is_ok() {
            deleted?;
        }
    }
    outcome
}

/// The steps of [`save_can_bring_the_deadline_earlier`], pushing each key
/// it creates onto `keys`.
async fn deadline_brought_earlier(
    subject: &Subject,
    keys: &mut Vec<session_core::StoreKey>,
) -> Outcome {
    let hour = Duration::hours(1);
    let (ttl, now) = match subject.expiry {
        ExpiryClock::Manual => (Duration::minutes(2), subject.clock.now()),
        ExpiryClock::Wall => (WALL_TTL, wall_now_ms()),
    };
    let mut shortened = Vec::new();
    for (what, first_deadline) in [
        ("a record made to live an hour", Some(now + hour)),
        ("a record made without a deadline", None),
    ] {
        let key = fresh_key();
        let record = with_data(Record::new(now, first_deadline), json!({"n": 1}), 0);
        subject.store.create(&key, &record).await?;
        keys.push(key);
        let mut saved = with_data(Record::new(now, Some(now + ttl)), json!({"n": 2}), 1);
        saved.last_seen = record.last_seen;
        let outcome = subject.store.save(&key, &saved, 0).await?;
        check_eq!(
            outcome,
            SaveOutcome::Saved,
            "{what}: save with a deadline {} ms ahead",
            ttl.whole_milliseconds()
        );
        shortened.push((what, key));
    }
    match subject.expiry {
        ExpiryClock::Manual => {
            subject.clock.advance(ttl - Duration::milliseconds(1));
            for (what, key) in &shortened {
                check!(
                    subject.store.load(key).await?.is_some(),
                    "{what}: gone 1 ms before the deadline it was saved with"
                );
            }
            subject.clock.advance(Duration::milliseconds(1));
            for (what, key) in &shortened {
                check_eq!(
                    subject.store.load(key).await?,
                    None,
                    "{what}, saved with an earlier deadline: load at that deadline"
                );
            }
        }
        ExpiryClock::Wall => {
            sleep_until(now + ttl + WALL_SKEW).await;
            for (what, key) in &shortened {
                check_eq!(
                    subject.store.load(key).await?,
                    None,
                    "{what}, saved with an earlier deadline: load {} ms past that deadline",
                    WALL_SKEW.whole_milliseconds()
                );
            }
        }
    }
    Ok(())
}

/// Creates a record under a fresh key that expires [`WALL_TTL`] ahead of
/// the wall clock, then saves it with a deadline `then` later than its
/// creation (`None`: none at all), both before the first deadline. On a
/// machine too slow for that, tries again with a fresh key, five times.
async fn saved_before_the_deadline(
    subject: &Subject,
    then: Option<Duration>,
) -> Result<(session_core::StoreKey, Record), crate::Failure> {
    for _ in 0..5 {
        let key = fresh_key();
        let now = wall_now_ms();
        let record = with_data(Record::new(now, Some(now + WALL_TTL)), json!({"n": 1}), 0);
        subject.store.create(&key, &record).await?;
        let mut saved = with_data(Record::new(now, then.map(|d| now + d)), json!({"n": 2}), 1);
        saved.last_seen = record.last_seen;
        let outcome = subject.store.save(&key, &saved, 0).await?;
        if OffsetDateTime::now_utc() < now + WALL_TTL {
            check_eq!(outcome, SaveOutcome::Saved, "save with deadline {then:?}");
            return Ok((key, saved));
        }
        subject.store.delete(&key).await?;
    }
    fail!(
        "five times, a create and a save took longer than {} ms together: too slow to check \
         that a save moves the deadline",
        WALL_TTL.whole_milliseconds()
    );
}

/// A record past its deadline counts as gone for `create` too: a new
/// record may take its key (the rule of `SessionStore::create`).
pub async fn create_over_an_expired_record_succeeds(subject: Subject) -> Outcome {
    let key = fresh_key();
    let now = subject.clock.now();
    subject
        .store
        .create(&key, &with_data(record_at(now), json!({"n": 1}), 0))
        .await?;
    subject.clock.advance(Duration::minutes(10));
    let fresh = with_data(record_at(subject.clock.now()), json!({"n": 2}), 0);
    if let Err(err) = subject.store.create(&key, &fresh).await {
        fail!("create over a record expired ten minutes ago: {err}");
    }
    check_eq!(
        subject.store.load(&key).await?,
        Some(fresh),
        "the record created over an expired one"
    );
    Ok(())
}

/// The wall clock, truncated to whole milliseconds.
fn wall_now_ms() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now - Duration::nanoseconds(i64::from(now.nanosecond() % 1_000_000))
}
