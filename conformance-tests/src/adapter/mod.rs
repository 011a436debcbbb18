//! The adapter suite: the demo contract and the engine's rules, checked over
//! real HTTP against a server an adapter starts.
//!
//! An adapter implements [`Harness`] (serve the demo app with a given
//! [`SessionConfig`]) and runs the suite with
//! [`adapter_suite!`](crate::adapter_suite). Each case is a function of
//! [`cases`] taking a [`Suite`]; it starts as many servers as it needs
//! (with its own clock, keys and store), drives them with a
//! [`client::Browser`](crate::client::Browser), and stops them when it ends.

use std::future::Future as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use session_core::{
    BoxError, Key, KeyRing, ManualClock, MemoryStore, Record, SaveOutcome, SessionConfig,
    SessionStore, Storage, StoreError, StoreKey, async_trait,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::client::Browser;
use crate::{Failure, Outcome};

pub mod cases;
mod running;

pub use running::{Running, Shutdown};

/// What an adapter implements to run the adapter suite.
///
/// `serve` starts the adapter's demo app (every route of the project's demo
/// contract) on `127.0.0.1`, on its own thread and its own runtime, with
/// exactly the given configuration: the suite sets the keys, the timeouts,
/// the storage (its own store, or cookie-store mode) and a
/// [`ManualClock`], and moves that clock to test expiry. The returned
/// [`Running`] gives the address and stops the server when dropped.
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
}

/// Where the sessions of the servers under test live, which decides the
/// cases that apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageMode {
    /// A server-side store: the suite's own [`MemoryStore`] on its manual
    /// clock, which the cases inspect (is the record gone?) and can make
    /// fail.
    Server,
    /// Cookie-store mode ([`Storage::Cookie`]): the whole session in an
    /// encrypted cookie. Cases that need server state are ignored.
    Cookie,
}

/// What an adapter case runs against: the harness, and the storage mode.
#[derive(Debug, Clone, Copy)]
pub struct Suite {
    serve: fn(SessionConfig) -> Result<Running, BoxError>,
    storage: StorageMode,
}

impl Suite {
    /// The suite for the harness `H` with sessions in `storage`.
    #[must_use]
    pub fn new<H: Harness>(storage: StorageMode) -> Self {
        Self {
            serve: H::serve,
            storage,
        }
    }

    /// Where sessions live in this run.
    #[must_use]
    pub fn storage(&self) -> StorageMode {
        self.storage
    }

    /// A fresh clock and, in server mode, a fresh store.
    pub(crate) fn world(&self) -> World {
        let clock = ManualClock::new(START);
        let store = match self.storage {
            StorageMode::Server => Some(Arc::new(SuiteStore {
                inner: MemoryStore::with_clock(Arc::new(clock.clone())),
                failing: AtomicBool::new(false),
            })),
            StorageMode::Cookie => None,
        };
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

/// Runs one case of [`cases`] against the harness `H`. This is what the
/// tests generated by [`adapter_suite!`](crate::adapter_suite) call; call it
/// yourself to run a single case.
///
/// # Errors
///
/// The case's [`Failure`].
pub fn run<H: Harness>(storage: StorageMode, case: fn(&Suite) -> Outcome) -> Outcome {
    case(&Suite::new::<H>(storage))
}

/// Where the suite's clocks start: a fixed, far-future instant, so that
/// cookie `Max-Age`s are exact.
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

    /// The suite's store (server mode only).
    pub(crate) fn store(&self) -> Result<&SuiteStore, Failure> {
        self.store
            .as_deref()
            .ok_or_else(|| Failure::new("this case needs a server-side store"))
    }
}

/// The store the suite gives servers in server mode: a [`MemoryStore`] the
/// cases can inspect and make fail.
#[derive(Debug)]
pub(crate) struct SuiteStore {
    inner: MemoryStore,
    failing: AtomicBool,
}

impl SuiteStore {
    /// How many records are held.
    pub(crate) fn len(&self) -> usize {
        self.inner.purge_expired();
        self.inner.len()
    }

    /// Whether a live record is held under `key`.
    pub(crate) fn contains(&self, key: &StoreKey) -> bool {
        // The memory store's futures never wait: one poll completes them.
        let mut load = std::pin::pin!(self.inner.load(key));
        matches!(
            load.as_mut().poll(&mut Context::from_waker(Waker::noop())),
            Poll::Ready(Ok(Some(_)))
        )
    }

    /// Makes every operation fail (`true`) or work again (`false`).
    pub(crate) fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::backend(std::io::Error::other(
                "the conformance suite made the store fail",
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl SessionStore for SuiteStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.check()?;
        self.inner.load(key).await
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.check()?;
        self.inner.create(key, record).await
    }

    async fn save(
        &self,
        key: &StoreKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError> {
        self.check()?;
        self.inner.save(key, record, expected_version).await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.check()?;
        self.inner.delete(key).await
    }
}
