//! Expiry: a record past its deadline is gone.

use std::time::Instant;

use serde_json::json;
use session_core::{Clock as _, Record, SaveOutcome};
use time::{Duration, OffsetDateTime};

use super::{fresh_key, record_at, with_data};
use crate::Outcome;
use crate::failure::{check, check_eq, fail};
use crate::store::{ExpiryClock, Subject};

/// How far ahead a record expires in the wall-clock variant.
const WALL_TTL: Duration = Duration::milliseconds(200);
/// How long, past the deadline (and the 200 ms), the store may take to drop
/// the record.
const WALL_GRACE: std::time::Duration = std::time::Duration::from_secs(3);
/// Time between two polls of a wall-clock store.
const POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// A record past its [`Record::expires_at`] is never loaded, and a late
/// save of it is [`SaveOutcome::Missing`] rather than bringing it back.
///
/// With `expiry: manual_clock` the suite moves the clock past the deadline.
/// With `expiry: wall_clock` it makes a record that expires 200 ms ahead of
/// the wall clock and polls until it vanishes, failing after 3 s more.
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
            let give_up = Instant::now() + WALL_TTL.unsigned_abs() + WALL_GRACE;
            loop {
                let loaded = subject.store.load(&key).await?;
                let now = OffsetDateTime::now_utc();
                if let Some(live) = loaded {
                    if Instant::now() > give_up {
                        fail!(
                            "the record is still loaded {} ms after its deadline: {live:?}",
                            (now - deadline).whole_milliseconds()
                        );
                    }
                } else {
                    check!(
                        now >= deadline,
                        "the record vanished {} ms before its deadline",
                        (deadline - now).whole_milliseconds()
                    );
                    break;
                }
                tokio::time::sleep(POLL).await;
            }
            record
        }
    };
    let mut late = record.clone();
    late.version = record.version + 1;
    late.data.insert("late", json!(true));
    let outcome = subject.store.save(&key, &late, record.version).await?;
    check_eq!(outcome, SaveOutcome::Missing, "save of an expired record");
    check_eq!(
        subject.store.load(&key).await?,
        None,
        "the expired record after a late save"
    );
    Ok(())
}

/// The record is live until the millisecond before its deadline and gone
/// at the deadline itself (`expires_at` is the first instant it is dead).
pub async fn record_is_live_until_its_exact_deadline(subject: Subject) -> Outcome {
    let key = fresh_key();
    let record = with_data(record_at(subject.clock.now()), json!({"n": 1}), 0);
    subject.store.create(&key, &record).await?;
    subject
        .clock
        .advance(Duration::minutes(10) - Duration::milliseconds(1));
    check_eq!(
        subject.store.load(&key).await?,
        Some(record),
        "load 1 ms before the deadline"
    );
    subject.clock.advance(Duration::milliseconds(1));
    check_eq!(
        subject.store.load(&key).await?,
        None,
        "load at the deadline"
    );
    Ok(())
}

/// The wall clock, truncated to whole milliseconds.
fn wall_now_ms() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now - Duration::nanoseconds(i64::from(now.nanosecond() % 1_000_000))
}
