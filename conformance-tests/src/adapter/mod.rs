//! The adapter suite: the demo contract and the engine's rules, checked over
//! real HTTP against a server an adapter starts.
//!
//! An adapter implements [`Harness`] (serve the demo app with a given
//! [`SessionConfig`]) and runs the suite with
//! [`adapter_suite!`](crate::adapter_suite). Each case is a function of
//! [`cases`] taking a [`Suite`]; it starts as many servers as it needs
//! (with its own clock, keys and store), drives them with a
//! [`client::Browser`](crate::client::Browser), and stops them when it ends.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use session_core::{
    BoxError, Key, KeyRing, ManualClock, MemoryStore, SessionConfig, SessionStore, Storage,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::client::Browser;
use crate::store::StoreContext;
use crate::{Failure, Outcome};

pub mod cases;
mod running;
mod store;

pub use running::{Running, STOP_TIMEOUT, Shutdown};
pub(crate) use store::Op;
use store::SuiteStore;

/// What an adapter implements to run the adapter suite.
///
/// `serve` starts the adapter's demo app (every route of the project's demo
/// contract) on `127.0.0.1`, on its own thread and its own runtime, with
/// exactly the given configuration: the suite sets the keys, the timeouts,
/// the storage (the store under test, wrapped by the suite, or cookie-store
/// mode) and a [`ManualClock`], and moves that clock to test expiry. The
/// returned [`Running`] gives the address and stops the server when
/// dropped.
///
/// See the crate docs, "Writing an adapter", for a complete harness.
pub trait Harness {
    /// Serves the demo contract with `config`.
    ///
    /// # Errors
    ///
    /// Whatever prevents serving (an invalid config, a port that cannot be
    /// bound); the case then fails with it.
    fn serve(config: SessionConfig) -> Result<Running, BoxError>;

    /// Whether the framework drops a request header whose value is not
    /// UTF-8 before the app sees it (Rocket 0.5 does, and logs it), so that
    /// a `Cookie` header holding such a byte anywhere reaches the adapter
    /// not at all. The suite then expects that request to have no session
    /// (a fresh one), where it otherwise expects the session cookie beside
    /// the bad byte to be read. Leave it `false` when the adapter sees the
    /// header's raw bytes, as axum and actix-web give them.
    const DROPS_NON_UTF8_HEADERS: bool = false;
}

/// Where the sessions of the servers under test live, which decides the
/// cases that apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageMode {
    /// A server-side store: the suite's own [`MemoryStore`] on its manual
    /// clock ([`Suite::new`]), or the stores a factory makes
    /// ([`Suite::with_store`]). The suite wraps it to see which keys the
    /// servers use, checks records through its `load` (is the record gone?)
    /// and can make it fail.
    Server,
    /// Cookie-store mode ([`Storage::Cookie`]): the whole session in an
    /// encrypted cookie. Cases that need server state are ignored.
    Cookie,
}

/// Makes the store under test for one world of a case.
type StoreFactory =
    Box<dyn Fn(StoreContext) -> Pin<Box<dyn Future<Output = Arc<dyn SessionStore>>>> + Send + Sync>;

/// `factory`, with its store behind `Arc<dyn SessionStore>`.
fn boxed<F, Fut, S>(factory: F) -> StoreFactory
where
    F: Fn(StoreContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = S> + 'static,
    S: SessionStore + 'static,
{
    Box::new(move |ctx| {
        let store = factory(ctx);
        Box::pin(async move { Arc::new(store.await) as Arc<dyn SessionStore> })
    })
}

/// What an adapter case runs against: the harness, where sessions live,
/// and the runtime the stores under test are made and checked on.
///
/// One `Suite` serves one case. When it is dropped, it deletes every record
/// the case's servers touched (through the store's own `delete`), so that a
/// case leaves nothing behind in a shared backend. Make and drop it on a
/// plain thread, not inside an async runtime.
pub struct Suite {
    serve: fn(SessionConfig) -> Result<Running, BoxError>,
    /// [`Harness::DROPS_NON_UTF8_HEADERS`].
    drops_non_utf8_headers: bool,
    storage: StorageMode,
    /// `None` in cookie-store mode.
    factory: Option<StoreFactory>,
    /// Goes into every key prefix: `conformance:<name>:<random>:<world>:`.
    name: String,
    nonce: String,
    worlds: AtomicU32,
    stores: Mutex<Vec<Arc<SuiteStore>>>,
    runtime: tokio::runtime::Runtime,
}

impl fmt::Debug for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Suite")
            .field("storage", &self.storage)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Suite {
    /// The suite for the harness `H` with sessions in `storage`; in server
    /// mode on the suite's own [`MemoryStore`], whose expiry follows the
    /// suite's clock.
    ///
    /// # Panics
    ///
    /// When no tokio runtime can be built.
    #[must_use]
    pub fn new<H: Harness>(storage: StorageMode) -> Self {
        let factory = match storage {
            StorageMode::Server => Some(boxed(|ctx: StoreContext| async move {
                MemoryStore::with_clock(ctx.clock())
            })),
            StorageMode::Cookie => None,
        };
        Self::build::<H>(storage, factory, "adapter")
    }

    /// The suite for the harness `H` on the stores `factory` makes: one per
    /// world (most cases have one world; the key rotation cases share one
    /// store between servers, and `unknown_id_is_never_adopted` uses two
    /// worlds, each with its own store).
    ///
    /// `factory` is given a [`StoreContext`] with a key prefix unique to
    /// the world (`conformance:<name>:<random>:<world>:`), which a store over
    /// a shared backend puts before its keys, and the world's
    /// [`ManualClock`], which starts at 2030-01-01 00:00 UTC. The store may
    /// decide expiry on that clock or leave it to its backend's wall clock:
    /// the cases never rely on the store hiding expired records, since the
    /// engine refuses them itself.
    ///
    /// The factory runs on the suite's multi-threaded runtime, which lives
    /// as long as the `Suite`, so a store may spawn background tasks there
    /// (a connection's driver); the servers use the store from their own
    /// runtimes.
    ///
    /// # Panics
    ///
    /// When no tokio runtime can be built; later, when the factory panics.
    #[must_use]
    pub fn with_store<H, F, Fut, S>(name: &str, factory: F) -> Self
    where
        H: Harness,
        F: Fn(StoreContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = S> + 'static,
        S: SessionStore + 'static,
    {
        Self::build::<H>(StorageMode::Server, Some(boxed(factory)), name)
    }

    fn build<H: Harness>(storage: StorageMode, factory: Option<StoreFactory>, name: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("conformance-suite")
            .enable_all()
            .build()
            .expect("a tokio runtime for the adapter suite's stores");
        Self {
            serve: H::serve,
            drops_non_utf8_headers: H::DROPS_NON_UTF8_HEADERS,
            storage,
            factory,
            name: name.to_owned(),
            nonce: crate::store::nonce(),
            worlds: AtomicU32::new(0),
            stores: Mutex::default(),
            runtime,
        }
    }

    /// Where sessions live in this run.
    #[must_use]
    pub fn storage(&self) -> StorageMode {
        self.storage
    }

    /// The harness's [`Harness::DROPS_NON_UTF8_HEADERS`].
    pub(crate) fn drops_non_utf8_headers(&self) -> bool {
        self.drops_non_utf8_headers
    }

    /// A fresh clock and, in server mode, a fresh store from the factory.
    pub(crate) fn world(&self) -> World {
        let clock = ManualClock::new(START);
        let store = self.factory.as_ref().map(|factory| {
            let world = self.worlds.fetch_add(1, Ordering::Relaxed);
            let ctx = StoreContext::new(
                format!("conformance:{}:{}:{world}:", self.name, self.nonce),
                clock.clone(),
            );
            let inner = self.runtime.block_on(factory(ctx));
            let store = Arc::new(SuiteStore::new(
                inner,
                clock.clone(),
                self.runtime.handle().clone(),
            ));
            self.stores
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(store.clone());
            store
        });
        World { clock, store }
    }

    /// Serves the demo in `world` with `keys`, the suite's defaults (idle
    /// 1 h, absolute 1 day) and then `tweak`.
    pub(crate) fn serve(
        &self,
        world: &World,
        keys: KeyRing,
        tweak: impl FnOnce(SessionConfig) -> SessionConfig,
    ) -> Result<Site, Failure> {
        let storage = match &world.store {
            Some(store) => Storage::Store(store.clone()),
            None => Storage::Cookie,
        };
        let config = SessionConfig::new(keys)
            .with_idle_timeout(Some(Duration::hours(1)))
            .with_absolute_timeout(Some(Duration::days(1)))
            .with_clock(Arc::new(world.clock.clone()))
            .with_storage(storage);
        let running = (self.serve)(tweak(config))
            .map_err(|e| Failure::new(format!("the harness could not serve the demo: {e}")))?;
        Ok(Site {
            running,
            clock: world.clock.clone(),
            store: world.store.clone(),
        })
    }

    /// One server in a fresh world with a fresh key and the defaults.
    pub(crate) fn start(&self) -> Result<Site, Failure> {
        self.start_with(|config| config)
    }

    /// One server in a fresh world with a fresh key, the defaults, then
    /// `tweak`.
    pub(crate) fn start_with(
        &self,
        tweak: impl FnOnce(SessionConfig) -> SessionConfig,
    ) -> Result<Site, Failure> {
        self.serve(&self.world(), KeyRing::new(Key::generate()), tweak)
    }
}

impl Drop for Suite {
    fn drop(&mut self) {
        let stores =
            std::mem::take(&mut *self.stores.lock().unwrap_or_else(PoisonError::into_inner));
        for store in stores {
            // A store that cannot delete (or panics, maybe while the case
            // is already unwinding) fails no case: its records expire on
            // their own, in 2030 at the latest.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| store.clean_up()));
        }
    }
}

/// Runs one case of [`cases`] against the harness `H`, with the suite's own
/// memory store (`StorageMode::Server`) or in cookie-store mode. This is
/// what the tests generated by [`adapter_suite!`](crate::adapter_suite)
/// with `storage: server` or `storage: cookie` call; call it yourself to
/// run a single case.
///
/// # Errors
///
/// The case's [`Failure`].
///
/// # Panics
///
/// When no tokio runtime can be built, or when called from within one (a
/// `#[tokio::test]`): call it from a plain `#[test]`.
pub fn run<H: Harness>(storage: StorageMode, case: fn(&Suite) -> Outcome) -> Outcome {
    case(&Suite::new::<H>(storage))
}

/// Runs one case of [`cases`] against the harness `H` on the stores
/// `factory` makes (see [`Suite::with_store`]), then deletes the records
/// the case left. This is what the tests generated by
/// [`adapter_suite!`](crate::adapter_suite) with `storage: store(factory)`
/// call; `suite` and `case_name` go into the key prefixes.
///
/// ```no_run
/// # struct MyHarness;
/// # impl conformance_tests::adapter::Harness for MyHarness {
/// #     fn serve(_: session_core::SessionConfig)
/// #         -> Result<conformance_tests::adapter::Running, session_core::BoxError> { todo!() }
/// # }
/// use conformance_tests::adapter::{self, cases};
/// use session_core::MemoryStore;
///
/// let outcome = adapter::run_with_store::<MyHarness, _, _, _>(
///     "mine",
///     "views_count_per_session",
///     |_ctx| async move { MemoryStore::new() },
///     cases::views_count_per_session,
/// );
/// assert!(outcome.is_ok(), "{outcome:?}");
/// ```
///
/// # Errors
///
/// The case's [`Failure`].
///
/// # Panics
///
/// When no tokio runtime can be built, when called from within one (a
/// `#[tokio::test]`: call it from a plain `#[test]`), or when the factory
/// panics.
pub fn run_with_store<H, F, Fut, S>(
    suite: &str,
    case_name: &str,
    factory: F,
    case: fn(&Suite) -> Outcome,
) -> Outcome
where
    H: Harness,
    F: Fn(StoreContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = S> + 'static,
    S: SessionStore + 'static,
{
    case(&Suite::with_store::<H, F, Fut, S>(
        &format!("{suite}:{case_name}"),
        factory,
    ))
}

/// Where the suite's clocks start: a fixed, far-future instant, so that
/// cookie `Max-Age`s are exact, and so that a backend expiring records on
/// the wall clock keeps every record of the suite alive.
const START: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);

/// A clock and a store that several servers of one case share.
pub(crate) struct World {
    pub(crate) clock: ManualClock,
    pub(crate) store: Option<Arc<SuiteStore>>,
}

/// One server under test, and what it was given.
pub(crate) struct Site {
    running: Running,
    pub(crate) clock: ManualClock,
    pub(crate) store: Option<Arc<SuiteStore>>,
}

impl Site {
    /// A browser with an empty jar.
    pub(crate) fn browser(&self) -> Browser {
        Browser::new(self.running.addr())
    }

    /// The store under test, as the suite wraps it (server mode only).
    pub(crate) fn store(&self) -> Result<&SuiteStore, Failure> {
        self.store
            .as_deref()
            .ok_or_else(|| Failure::new("this case needs a server-side store"))
    }
}
