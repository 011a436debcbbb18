//! The outage check: a store whose backend is down reports it.
//!
//! Run it with [`store_outage_suite!`](crate::store_outage_suite), giving a
//! factory that returns the store with its backend already gone (a Redis
//! store connected to a server that was then stopped, say). Every operation
//! must then fail with [`StoreError::Backend`] or [`StoreError::Timeout`],
//! in bounded time.
//!
//! Run it twice for a store over a server: once with the server stopped
//! (connections refused: each call fails at once) and once with it hung
//! (connections open, nothing answered: each call must give up after its
//! timeout, or every request waits on it). For the second, freeze the
//! server (`SIGSTOP`) and return it from the factory beside the store
//! (`store_outage_suite!(name, hold: factory)`), so that it stays frozen
//! until the check ends. A store that answers a load with `Ok(None)`, or a save
//! with [`SaveOutcome::Missing`](session_core::SaveOutcome::Missing), while its backend is down tells the
//! engine the session is gone: the user is logged out, or a change is
//! dropped, and nobody is told. With an error the adapter answers 500 and
//! logs it, and the session is there when the backend is back.

use std::future::Future;
use std::time::Duration;

use session_core::{ManualClock, Record, SessionStore, StoreError};

use super::{StoreContext, nonce, now_ms};
use crate::failure::fail;
use crate::{Failure, Outcome};

/// How long each operation may take to report the outage.
pub const OPERATION_LIMIT: Duration = Duration::from_secs(15);

/// Builds the store with `factory` (whose backend must be down by the time
/// its future completes) and runs [`every_operation_reports_the_outage`]
/// on it, on a fresh runtime. This is what
/// [`store_outage_suite!`](crate::store_outage_suite) calls.
///
/// # Errors
///
/// The check's [`Failure`].
///
/// # Panics
///
/// When no runtime can be built, or when the factory panics.
pub fn run<F, Fut, S>(suite: &str, factory: F) -> Outcome
where
    F: FnOnce(StoreContext) -> Fut,
    Fut: Future<Output = S>,
    S: SessionStore + 'static,
{
    run_holding(suite, |ctx| {
        let store = factory(ctx);
        async move { (store.await, ()) }
    })
}

/// [`run`] for a factory that returns the store with a guard, kept until
/// the check ends (then dropped, after the store). This is what
/// [`store_outage_suite!`](crate::store_outage_suite)`(name, hold: factory)`
/// calls.
///
/// The guard keeps the backend in the state the factory left it in: a
/// server frozen with `SIGSTOP` (a hung backend, where every call must
/// time out) stays frozen while the check runs, and is thawed and stopped
/// when the guard drops.
///
/// # Errors
///
/// The check's [`Failure`].
///
/// # Panics
///
/// When no runtime can be built, or when the factory panics.
pub fn run_holding<F, Fut, S, G>(suite: &str, factory: F) -> Outcome
where
    F: FnOnce(StoreContext) -> Fut,
    Fut: Future<Output = (S, G)>,
    S: SessionStore + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the outage check");
    let clock = ManualClock::new(now_ms());
    let ctx = StoreContext::new(
        format!("conformance:{suite}:outage:{}:", nonce()),
        clock.clone(),
    );
    runtime.block_on(async move {
        let (store, guard) = factory(ctx).await;
        let outcome = every_operation_reports_the_outage(&store, &clock).await;
        drop(store);
        drop(guard);
        outcome
    })
}

/// Load, create, save, delete and take of a store whose backend is down
/// each fail with [`StoreError::Backend`] or [`StoreError::Timeout`] within
/// [`OPERATION_LIMIT`]: never an answer that passes for one from the
/// backend, never a wait without end.
///
/// # Errors
///
/// A [`Failure`] naming the first operation that answered otherwise.
pub async fn every_operation_reports_the_outage(
    store: &dyn SessionStore,
    clock: &ManualClock,
) -> Outcome {
    use session_core::Clock as _;
    let key = super::cases::fresh_key();
    let now = clock.now();
    let record = Record::new(now, Some(now + time::Duration::minutes(10)));
    let mut saved = record.clone();
    saved.version = 1;
    check_outage("load", store.load(&key)).await?;
    check_outage("create", store.create(&key, &record)).await?;
    check_outage("save", store.save(&key, &saved, 0)).await?;
    check_outage("delete", store.delete(&key)).await?;
    check_outage("take", store.take(&key)).await
}

async fn check_outage<T: std::fmt::Debug>(
    operation: &str,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Outcome {
    let Ok(answer) = tokio::time::timeout(OPERATION_LIMIT, call).await else {
        fail!(
            "{operation} with the backend down did not return within {OPERATION_LIMIT:?}: \
             bound every call to the backend, with a command timeout"
        );
    };
    match answer {
        Err(StoreError::Backend(_) | StoreError::Timeout { .. }) => Ok(()),
        Err(other) => fail!(
            "{operation} with the backend down failed with {}; want StoreError::Backend or \
             StoreError::Timeout",
            Failure::from(other)
        ),
        Ok(answer) => fail!(
            "{operation} with the backend down answered Ok({answer:?}): a store must report \
             the outage (the adapter then answers 500 and the session survives it), never \
             pass it off as the backend's answer (an Ok(None) load logs the user out)"
        ),
    }
}
