//! The store suite's cases, one async function each.
//!
//! Every case takes the [`Subject`](super::Subject) built for it and returns
//! an [`Outcome`](crate::Outcome). They are listed, with what each needs, in
//! [`STORE_CASES`](crate::STORE_CASES).

use session_core::{OsRandom, Record, SessionId, StoreKey};
use time::{Duration, OffsetDateTime};

mod concurrency;
mod expiry;
mod privacy;
mod races;
mod records;

pub use concurrency::*;
pub use expiry::*;
pub use privacy::*;
pub use races::*;
pub use records::*;

/// A key no other case uses: the digest of a fresh random id.
pub(crate) fn fresh_key() -> StoreKey {
    SessionId::generate(&OsRandom)
        .expect("the OS random number generator works")
        .store_key()
}

/// An empty record created at `now` that expires ten minutes later.
fn record_at(now: OffsetDateTime) -> Record {
    Record::new(now, Some(now + Duration::minutes(10)))
}

/// `record` with `data` (a JSON object) and `version`.
fn with_data(mut record: Record, data: serde_json::Value, version: u64) -> Record {
    let serde_json::Value::Object(map) = data else {
        panic!("session data is a JSON object");
    };
    record.data = map.into();
    record.version = version;
    record
}

/// Waits for every task of `tasks` and returns their values, or the first
/// failure (a task that panicked is one).
async fn join_all<T: 'static>(
    mut tasks: tokio::task::JoinSet<Result<T, crate::Failure>>,
) -> Result<Vec<T>, crate::Failure> {
    let mut values = Vec::new();
    let mut first_failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(value)) => values.push(value),
            Ok(Err(failure)) => {
                first_failure.get_or_insert(failure);
            }
            Err(e) => {
                first_failure.get_or_insert(crate::Failure::new(format!("a task panicked: {e}")));
            }
        }
    }
    first_failure.map_or(Ok(values), Err)
}
