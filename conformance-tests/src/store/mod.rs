//! The store suite: what a [`SessionStore`] must do, checked case by case.
//!
//! Run it with [`store_suite!`](crate::store_suite). Each case is an async
//! function of [`cases`] taking a [`Subject`]: the store built by your
//! factory for that case alone, and the suite's clock.

use std::future::Future;
use std::sync::Arc;

use session_core::{ManualClock, OsRandom, RandomSource, SessionStore};
use time::OffsetDateTime;

use crate::Outcome;

pub mod cases;
mod faces;
pub mod outage;
mod recording;

/// Which clock decides, in the store under test, that a record has expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryClock {
    /// The clock the factory is given ([`StoreContext::clock`]): the suite
    /// moves it to expire records instantly.
    Manual,
    /// The wall clock: the backend frees records itself at their
    /// [`Record::expires_at`](session_core::Record::expires_at). The suite
    /// makes records that expire 200 ms ahead and waits, at most 3 s, for
    /// them to vanish.
    Wall,
}

/// Whether instances of the store share their records: what the suite
/// cannot tell a store over a shared backend that writes where its other
/// instances never look from an in-process store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Backend {
    /// Not said (`store_suite!` without `backend:`). A store whose second
    /// instance with the same key prefix does not see what the first
    /// created is taken for an in-process one, whose instances each keep
    /// their own records.
    #[default]
    Unspecified,
    /// A backend the instances share (a Redis, a database): `backend:
    /// shared`. An instance made with the same key prefix must see what
    /// another wrote (`instances_share_records_only_under_one_prefix`).
    Shared,
}

/// What the suite is told about the store under test: the capabilities
/// it cannot guess. An [`ExpiryClock`] converts into one with
/// [`Backend::Unspecified`].
///
/// ```
/// use conformance_tests::store::{Backend, Capabilities, ExpiryClock};
///
/// let redis = Capabilities::from(ExpiryClock::Wall).with_backend(Backend::Shared);
/// assert_eq!(redis.expiry, ExpiryClock::Wall);
/// assert_eq!(Capabilities::from(ExpiryClock::Manual).backend, Backend::Unspecified);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Which clock decides that a record has expired.
    pub expiry: ExpiryClock,
    /// Whether instances share their records.
    pub backend: Backend,
}

impl Capabilities {
    /// These capabilities with `backend`.
    #[must_use]
    pub fn with_backend(self, backend: Backend) -> Self {
        Self { backend, ..self }
    }
}

impl From<ExpiryClock> for Capabilities {
    fn from(expiry: ExpiryClock) -> Self {
        Self {
            expiry,
            backend: Backend::Unspecified,
        }
    }
}

/// What the factory of [`store_suite!`](crate::store_suite) is given for
/// one case, and the factory of
/// [`adapter_suite!`](crate::adapter_suite)`(…, storage: store(factory))`
/// for each store a case needs.
#[derive(Debug, Clone)]
pub struct StoreContext {
    prefix: String,
    clock: ManualClock,
}

impl StoreContext {
    pub(crate) fn new(prefix: String, clock: ManualClock) -> Self {
        Self { prefix, clock }
    }

    /// A key prefix unique to this store, case and run (shared only with
    /// the instances a case asks for with
    /// [`Subject::another_instance`]`(true)`): in the store suite
    /// `conformance:<suite>:<case>:<random>:`, in the adapter suite
    /// `conformance:<suite>:<case>:<random>:<world>:`. A store over a
    /// shared backend (a Redis server, a database) puts it before every
    /// key, so that cases running in parallel, or two runs at once, never
    /// see each other's records. It holds no `{` or `}` (no Redis Cluster
    /// hash tag).
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The suite's clock, for a store whose expiry follows a
    /// [`Clock`](session_core::Clock): `MemoryStore::with_clock(ctx.clock())`.
    /// In the store suite it starts at the wall clock's current time, whole
    /// milliseconds; in the adapter suite at 2030-01-01 00:00 UTC, so that
    /// records the servers make stay alive on the wall clock.
    #[must_use]
    pub fn clock(&self) -> Arc<dyn session_core::Clock> {
        Arc::new(self.clock.clone())
    }

    /// The same clock as a [`ManualClock`] handle.
    #[must_use]
    pub fn manual_clock(&self) -> &ManualClock {
        &self.clock
    }
}

/// What a store case runs against.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The store made by the factory for this case.
    pub store: Arc<dyn SessionStore>,
    /// The suite's clock (the one [`StoreContext::clock`] handed out).
    pub clock: ManualClock,
    /// Which clock the store's expiry follows.
    pub expiry: ExpiryClock,
    /// Whether the store's instances share their records.
    pub backend: Backend,
    /// Makes more instances of the store, as more server processes would.
    more: Instances,
}

impl Subject {
    /// Another instance of the store from the factory, as another server
    /// process would make it: with the same context as [`store`](Self::store)
    /// (the same key prefix and clock), or, when `same_prefix` is false,
    /// with a key prefix of its own (`conformance:<suite>:<case>:<random>:`
    /// with a new random part). A store over a shared backend shows the
    /// first what the case's store holds, and the second nothing; an
    /// in-process store shows neither anything.
    ///
    /// # Panics
    ///
    /// When the factory does (it cannot connect, say).
    pub async fn another_instance(&self, same_prefix: bool) -> Arc<dyn SessionStore> {
        let mut ctx = self.more.ctx.clone();
        if !same_prefix {
            // The case's prefix with its random part replaced: a prefix
            // beside it, not under it.
            let stem = ctx
                .prefix
                .trim_end_matches(':')
                .rsplit_once(':')
                .map_or("conformance:", |(stem, _)| stem);
            ctx.prefix = format!("{stem}:{}:", nonce());
        }
        (self.more.make)(ctx).await
    }
}

/// A factory of more instances of the store under test, and the context
/// the first was made with.
#[derive(Clone)]
struct Instances {
    make: Arc<dyn Fn(StoreContext) -> LocalStore + Send + Sync>,
    ctx: StoreContext,
}

/// A store instance on its way.
type LocalStore = std::pin::Pin<Box<dyn Future<Output = Arc<dyn SessionStore>>>>;

impl std::fmt::Debug for Instances {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instances")
            .field("ctx", &self.ctx)
            .finish_non_exhaustive()
    }
}

/// Builds the store for one case with `factory` and runs `case` against it,
/// on a fresh multi-threaded runtime. When the store has an immediate face
/// ([`SessionStore::immediate`]), the case's operations alternate between
/// that face and the async one, and the case runs twice, on a fresh store
/// each time: first starting on the async face, then on the immediate
/// one, so that every step of a case meets each face. This is what the
/// tests generated by [`store_suite!`](crate::store_suite) call; call it
/// yourself to run one case of [`cases`] (for instance to check that a
/// broken store fails it). `capabilities` is an [`ExpiryClock`], or
/// [`Capabilities`] to say more.
///
/// ```
/// use conformance_tests::store::{self, ExpiryClock};
/// use session_core::MemoryStore;
///
/// let outcome = store::run(
///     "doc",
///     "create_never_overwrites",
///     ExpiryClock::Manual,
///     |ctx| async move { MemoryStore::with_clock(ctx.clock()) },
///     store::cases::create_never_overwrites,
/// );
/// assert!(outcome.is_ok(), "{outcome:?}");
/// ```
///
/// # Errors
///
/// The case's [`Failure`](crate::Failure) (saying which face it started
/// on, for a store with two), or one saying that the case did not finish
/// within a minute (a store future that never completes; a store that
/// blocks its thread cannot be interrupted).
///
/// # Panics
///
/// When no runtime can be built, when called from within one (a
/// `#[tokio::test]`: call it from a plain `#[test]`), or when the factory
/// or the store panics.
pub fn run<F, Fut, S, C, CFut>(
    suite: &str,
    case: &str,
    capabilities: impl Into<Capabilities>,
    factory: F,
    run_case: C,
) -> Outcome
where
    F: Fn(StoreContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = S> + 'static,
    S: SessionStore + 'static,
    C: Fn(Subject) -> CFut,
    CFut: Future<Output = Outcome>,
{
    run_within(
        CASE_TIMEOUT,
        suite,
        case,
        capabilities.into(),
        factory,
        run_case,
    )
}

/// [`run`], failing the case when one run of it takes longer than `limit`.
fn run_within<F, Fut, S, C, CFut>(
    limit: std::time::Duration,
    suite: &str,
    case: &str,
    capabilities: Capabilities,
    factory: F,
    run_case: C,
) -> Outcome
where
    F: Fn(StoreContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = S> + 'static,
    S: SessionStore + 'static,
    C: Fn(Subject) -> CFut,
    CFut: Future<Output = Outcome>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime for the store case");
    let make: Arc<dyn Fn(StoreContext) -> LocalStore + Send + Sync> = Arc::new(move |ctx| {
        let future = factory(ctx);
        Box::pin(async move { Arc::new(future.await) as Arc<dyn SessionStore> })
    });
    for start in [faces::Start::Async, faces::Start::Immediate] {
        let clock = ManualClock::new(now_ms());
        let ctx = StoreContext::new(
            format!("conformance:{suite}:{case}:{}:", nonce()),
            clock.clone(),
        );
        let (run_case, make) = (&run_case, make.clone());
        let body = async move {
            let store = make(ctx.clone()).await;
            let two_faces = store.immediate().is_some();
            // A store with an immediate face (`SessionStore::immediate`) is
            // held to the rules through both faces, alternating.
            let outcome = run_case(Subject {
                store: faces::BothFaces::wrap(store, start),
                clock,
                expiry: capabilities.expiry,
                backend: capabilities.backend,
                more: Instances { make, ctx },
            })
            .await;
            (two_faces, outcome)
        };
        let (two_faces, outcome) = runtime.block_on(async move {
            tokio::time::timeout(limit, body).await.unwrap_or_else(|_| {
                (
                    false,
                    Err(crate::Failure::new(format!(
                        "{case}: not finished after {limit:?} (the run starting on the \
                         {start} face, if the store has two): a store operation never \
                         returned (bound every call to the backend, with a command timeout)"
                    ))),
                )
            })
        });
        match outcome {
            Err(failure) if two_faces => {
                return Err(crate::Failure::new(format!(
                    "{failure}\n(the case's first operation went to the store's {start} face)"
                )));
            }
            Err(failure) => return Err(failure),
            Ok(()) if !two_faces => return Ok(()),
            Ok(()) => {}
        }
    }
    Ok(())
}

/// How long one store case may take: the slowest, with a wall-clock store,
/// waits about 3 s for a record to expire.
const CASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The wall clock's time, truncated to whole milliseconds.
fn now_ms() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now - time::Duration::nanoseconds(i64::from(now.nanosecond() % 1_000_000))
}

/// Twelve random hex digits, for key prefixes.
pub(crate) fn nonce() -> String {
    let mut bytes = [0u8; 6];
    if OsRandom.fill(&mut bytes).is_err() {
        // Uniqueness across processes then rests on the process id.
        bytes[..4].copy_from_slice(&std::process::id().to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use session_core::{Record, SaveOutcome, StoreError, StoreKey, async_trait};

    use super::*;

    /// A store whose every call waits forever.
    #[derive(Debug)]
    struct Hanging;

    #[async_trait]
    impl SessionStore for Hanging {
        async fn load(&self, _: &StoreKey) -> Result<Option<Record>, StoreError> {
            std::future::pending().await
        }
        async fn create(&self, _: &StoreKey, _: &Record) -> Result<(), StoreError> {
            std::future::pending().await
        }
        async fn save(&self, _: &StoreKey, _: &Record, _: u64) -> Result<SaveOutcome, StoreError> {
            std::future::pending().await
        }
        async fn delete(&self, _: &StoreKey) -> Result<(), StoreError> {
            std::future::pending().await
        }
    }

    #[test]
    fn a_store_that_never_answers_fails_the_case_instead_of_hanging_it() {
        let outcome = run_within(
            std::time::Duration::from_millis(50),
            "hanging",
            "load_of_a_missing_key_is_none",
            ExpiryClock::Manual.into(),
            |_| async { Hanging },
            cases::load_of_a_missing_key_is_none,
        );
        let failure = outcome.unwrap_err();
        assert!(failure.message().contains("never returned"), "{failure}");
    }
}
