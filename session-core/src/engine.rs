//! The engine: `read`, `load`, `open`, `finish`, `commit`.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use cookie::Cookie;
use time::OffsetDateTime;

use crate::codec;
use crate::config::{SessionConfig, Storage};
use crate::cookies::Cookies;
use crate::id::SessionId;
use crate::plan::{Changes, CookieOp, Executed, Plan, StoreOp};
use crate::session::{Ops, Origin, State};
use crate::store::{ImmediateStore, MemoryAt, MemoryStore, SessionStore};
use crate::verified::{Verified, VerifiedCache};
use crate::{
    CodecError, ConfigError, Data, KeyMatch, Lifetime, Record, RequestSlot, Session, SessionError,
    StoreError, StoreKey, Timestamp,
};

/// At most this many cookies named like the session cookie that verify are
/// kept per request, and the rest are not looked at (each kept one may cost
/// a store lookup).
pub const MAX_SESSION_COOKIES: usize = 4;

/// After this many cookies named like the session cookie that do not
/// verify, the request's others are not looked at (each costs an HMAC).
/// Junk counts here, not against [`MAX_SESSION_COOKIES`], so that a few
/// planted values do not hide the real cookie that follows them.
pub(crate) const MAX_REJECTED_COOKIES: usize = 16;

/// The largest `Set-Cookie` header the engine sends. Browsers keep at least
/// 4096 bytes per cookie. In cookie-store mode a change that would not fit
/// is an error ([`SessionError::CookieTooLarge`]) rather than a cookie the
/// browser would silently drop; a read whose refreshed cookie would not fit
/// sends none (logged at warn level). [`Cookies`](crate::Cookies) refuses
/// larger cookies too.
pub const MAX_COOKIE_LEN: usize = 4096;

/// The session engine. Cheap to clone; one per application.
///
/// It does no I/O of its own. Time comes from the config's
/// [`Clock`](crate::Clock): [`Engine::now`] and [`Engine::timestamp`] read
/// it, and the deciding steps take `now` as an argument. An adapter drives
/// it through five steps per request:
///
/// | step | call | input | output |
/// | --- | --- | --- | --- |
/// | 1 | [`read`](Self::read) | the request's `Cookie` header values | [`Incoming`]: the verified session cookie(s) |
/// | 2 | [`load`](Self::load) (async) | `Incoming` | [`Loaded`]: the record, fetched from the store |
/// | 3 | [`open`](Self::open) | `Loaded`, `now` | the [`Session`] handle for the handler |
/// | 4 | [`finish`](Self::finish) | the `Session`, `now` | a [`Plan`] |
/// | 5 | [`commit`](Self::commit) (async) | the `Plan` | the `Set-Cookie` value to append, if any |
///
/// Steps 1–3 may be skipped entirely when the handler never asks for the
/// session (lazy loading); then there is nothing to finish either.
///
/// ```
/// use session_core::{Engine, Key, KeyRing, SessionConfig};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let engine = Engine::new(SessionConfig::new(KeyRing::new(Key::generate()))).unwrap();
///
/// // A first request, without cookies.
/// let now = engine.timestamp();
/// let incoming = engine.read(std::iter::empty::<&[u8]>());
/// let session = engine.open(engine.load(incoming).await.unwrap(), now);
/// session.insert("user", "alice").unwrap();
/// let plan = engine.finish(&session, now).unwrap();
/// let set_cookie = engine.commit(plan).await.unwrap().expect("a new session sets a cookie");
///
/// // The browser sends the cookie back.
/// let cookie = set_cookie.split(';').next().unwrap();
/// let incoming = engine.read([cookie.as_bytes()]);
/// let session = engine.open(engine.load(incoming).await.unwrap(), engine.timestamp());
/// assert_eq!(session.get::<String>("user").unwrap().as_deref(), Some("alice"));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: SessionConfig,
    store: Option<Arc<dyn SessionStore>>,
    /// The same store when it is the built-in memory store, which shares
    /// the engine's clock and so can be told the time (see
    /// [`Engine::load_now_at`]).
    memory: Option<Arc<MemoryStore>>,
    /// The session cookie's attributes as the `cookie` crate formats them
    /// (`; HttpOnly; SameSite=Lax; Path=/`…), built once; `Max-Age`, which
    /// the crate writes after all of these, is appended per response.
    attributes: String,
    /// `; Max-Age=N` for the idle timeout's whole seconds `N`, formatted
    /// once, and used whenever a cookie's `Max-Age` comes out equal to it
    /// (a new session or a touch, unless the absolute timeout is nearer).
    idle_max_age: Option<(i64, String)>,
    /// The touch interval in milliseconds, rounded up (a session is due
    /// when at least this many whole milliseconds have passed), or `None`
    /// when there is no idle timeout to keep rolling.
    touch_after_ms: Option<i128>,
    /// How far ahead of the clock a session's `last_seen` may be before it
    /// is touched at once: the idle timeout less the touch interval (see
    /// [`touch_due`]).
    touch_ahead_ms: i128,
    /// The longest touch interval of a session with an idle timeout of its
    /// own ([`Lifetime`]): the configured one, or with no configured idle
    /// timeout, the one set with `with_touch_interval`, if any.
    own_touch_cap_ms: Option<i128>,
    /// HMAC states for the session cookie's name, one per key.
    id_signer: codec::NamedSigner,
    /// Seals and opens the session cookie in cookie-store mode.
    sealer: codec::private::NamedCipher,
    /// Serializes saves of one session within this process.
    saves: crate::lanes::SaveLanes,
    /// Ids given up at this engine's log-ins, for a few seconds.
    moved: crate::moved::MovedIds,
    /// Id cookie values that verified (none in cookie-store mode).
    verified: Option<VerifiedCache>,
    /// The session cookie, for the jars (which leave it alone).
    session_cookie: Arc<crate::cookies::SessionCookie>,
}

/// What a request carried: the session cookies that verified, in header
/// order. Made by [`Engine::read`].
#[derive(Debug, Default)]
#[must_use]
pub struct Incoming {
    // Nearly every request carries one session cookie: it is kept inline,
    // the rare others in `more`.
    first: Option<Candidate>,
    more: Vec<Candidate>,
}

#[derive(Debug)]
enum Candidate {
    Id {
        id: SessionId,
        key: StoreKey,
        matched: KeyMatch,
    },
    Inline {
        record: Box<Record>,
        matched: KeyMatch,
    },
}

impl Incoming {
    /// Whether no session cookie verified.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    #[inline]
    fn push(&mut self, candidate: Candidate) {
        if self.first.is_none() {
            self.first = Some(candidate);
        } else {
            self.more.push(candidate);
        }
    }
}

/// The request's session as found in the store. Made by [`Engine::load`].
#[derive(Debug, Default)]
#[must_use]
pub struct Loaded {
    found: Option<Found>,
    /// No session was found, and a cookie named an id this engine gave
    /// up at a log-in seconds ago (see
    /// [`crate::moved::MovedIds`]).
    moved: bool,
}

#[derive(Debug)]
struct Found {
    id: Option<SessionId>,
    key: Option<StoreKey>,
    record: Record,
    matched: KeyMatch,
}

/// What [`Engine::load_now`] could do at once.
#[derive(Debug)]
#[must_use]
pub enum LoadNow {
    /// Loaded (or nothing to load): pass it to [`Engine::open`].
    Done(Loaded),
    /// The store failed, as [`Engine::load`] would have: answer 500 and log
    /// the error.
    Failed(StoreError),
    /// The store must be waited for: pass the request's cookies back to
    /// [`Engine::load`].
    Wait(Incoming),
}

/// A store that answers at once, as [`Engine::immediate`] finds it.
enum Immediate<'a> {
    At(MemoryAt<'a>),
    Store(&'a dyn ImmediateStore),
}

impl Immediate<'_> {
    fn store(&self) -> &dyn ImmediateStore {
        match self {
            Self::At(memory) => memory,
            Self::Store(store) => *store,
        }
    }
}

/// What [`Engine::commit_now`] could do at once. Its `Debug` output leaves
/// the cookie's value out, as [`CookieOp`]'s does.
#[must_use]
// The plan stays inline: boxing it would allocate on every request that
// waits on its store, the path `commit_now` keeps cheap, and a
// `CommitNow` lives only until the adapter matches it.
#[allow(clippy::large_enum_variant)]
pub enum CommitNow {
    /// Committed: the `Set-Cookie` header value to send, if any.
    Done(Option<String>),
    /// The store failed, as [`Engine::commit`] would have: answer 500, log
    /// the error, send no session cookie.
    Failed(SessionError),
    /// The store must be waited for: pass the plan to [`Engine::commit`].
    Wait(Plan),
}

impl std::fmt::Debug for CommitNow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Done(header) => f
                .debug_tuple("Done")
                .field(&header.as_deref().map(crate::plan::Redacted))
                .finish(),
            Self::Failed(error) => f.debug_tuple("Failed").field(error).finish(),
            Self::Wait(plan) => f.debug_tuple("Wait").field(plan).finish(),
        }
    }
}

impl Engine {
    /// Checks `config` and builds the engine.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Cookie`] for an unusable setting: the cookie's name,
    /// path or domain (or the three together too long for a cookie browsers
    /// keep, [`MAX_COOKIE_LEN`]), `SameSite=None` or `Partitioned` without
    /// `Secure`, a
    /// timeout under one second, a touch interval that is negative or not
    /// shorter than the idle timeout, a verified-cookie cache larger than
    /// [`MAX_VERIFIED_CACHE`](crate::MAX_VERIFIED_CACHE).
    /// [`ConfigError::Storage`] for
    /// [`with_max_sessions`](SessionConfig::with_max_sessions) or
    /// [`with_max_record_size`](SessionConfig::with_max_record_size) with a
    /// storage other than the built-in memory store.
    pub fn new(config: SessionConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let memory = matches!(config.storage, Storage::Memory).then(|| {
            let mut store = MemoryStore::with_clock(config.clock.clone());
            if let Some(max) = config.max_sessions {
                store = store.with_max_sessions(max);
            }
            if let Some(bytes) = config.max_record_size {
                store = store.with_max_record_size(bytes);
            }
            Arc::new(store)
        });
        let store = match &config.storage {
            Storage::Memory => memory.clone().map(|memory| memory as _),
            Storage::Store(store) => Some(store.clone()),
            Storage::Cookie => None,
        };
        let template = base_cookie(&config, String::new()).to_string();
        let attributes = template[config.name.len() + 1..].to_owned();
        // Browsers drop a longer cookie: a name, path or domain this long
        // would make sessions that never stick (or, in cookie-store mode,
        // every write a 500). Room for the value (a sealed small session in
        // cookie-store mode) and for `Max-Age` and `Expires`.
        let value_room = match config.storage {
            Storage::Cookie => 160,
            _ => codec::signed_len(crate::ID_LEN),
        };
        let longest = template.len() + value_room + 80;
        if longest > MAX_COOKIE_LEN {
            return Err(ConfigError::Cookie {
                reason: format!(
                    "the session cookie would be about {longest} bytes with its name, path and \
                     domain, over the {MAX_COOKIE_LEN} browsers keep: shorten them"
                ),
            });
        }
        let idle_max_age = config.expiry.idle().map(|idle| {
            let secs = i64::try_from(idle.whole_milliseconds() / 1000).unwrap_or(i64::MAX);
            (secs, format!("{MAX_AGE}{secs}"))
        });
        Ok(Self {
            inner: Arc::new(Inner {
                touch_after_ms: config
                    .expiry
                    .idle()
                    .map(|_| ceil_ms(config.touch_interval())),
                touch_ahead_ms: config.expiry.idle().map_or(0, |idle| {
                    ceil_ms(idle).saturating_sub(ceil_ms(config.touch_interval()))
                }),
                own_touch_cap_ms: config
                    .expiry
                    .idle()
                    .map(|_| config.touch_interval())
                    .or(config.touch_interval)
                    .map(ceil_ms),
                id_signer: codec::NamedSigner::new(&config.keys, &config.name),
                sealer: codec::private::NamedCipher::new(&config.name),
                saves: crate::lanes::SaveLanes::new(),
                moved: crate::moved::MovedIds::default(),
                verified: store
                    .as_ref()
                    .and_then(|_| VerifiedCache::new(config.verified_cache)),
                session_cookie: Arc::new(crate::cookies::SessionCookie {
                    name: config.name.clone(),
                    path: config.path.clone(),
                    domain: config.domain.clone(),
                    reissue: config.reissue.clone(),
                    clock: config.clock.clone(),
                }),
                config,
                store,
                memory,
                attributes,
                idle_max_age,
            }),
        })
    }

    /// Whether `other` is this engine or a clone of it: the two share one
    /// configuration, store and caches. An adapter uses it to notice that
    /// it is installed twice around one request (say on a nested router
    /// and on the app around it), where the outer one serves the request.
    ///
    /// ```
    /// use session_core::{Engine, Key, KeyRing, SessionConfig};
    ///
    /// let config = SessionConfig::new(KeyRing::new(Key::generate()));
    /// let engine = Engine::new(config.clone()).unwrap();
    /// assert!(engine.is_same(&engine.clone()));
    /// // Built again from the same configuration: its own memory store.
    /// assert!(!engine.is_same(&Engine::new(config).unwrap()));
    /// ```
    #[must_use]
    pub fn is_same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// The server-side store, or `None` in cookie-store mode.
    #[must_use]
    pub fn store(&self) -> Option<&Arc<dyn SessionStore>> {
        self.inner.store.as_ref()
    }

    /// The configured clock's current time.
    #[must_use]
    pub fn now(&self) -> OffsetDateTime {
        self.inner.config.clock.now()
    }

    /// The configured clock's current time to the millisecond: what
    /// adapters pass as `now` to [`open`](Self::open) and
    /// [`finish`](Self::finish) (which take an `OffsetDateTime` too). With
    /// the system clock it is read with no calendar conversion.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use session_core::{Engine, Key, KeyRing, ManualClock, SessionConfig, Timestamp};
    /// use time::macros::datetime;
    ///
    /// let start = datetime!(2026-01-01 0:00:00.25 UTC);
    /// let config = SessionConfig::new(KeyRing::new(Key::generate()))
    ///     .with_clock(Arc::new(ManualClock::new(start)));
    /// let engine = Engine::new(config).unwrap();
    /// let now = engine.timestamp();
    /// assert_eq!(now, Timestamp::from(start));
    /// assert_eq!(now.unix_ms(), 1_767_225_600_250);
    ///
    /// // A first request at `now`: a new session gets a cookie.
    /// let session = engine.open(Default::default(), now);
    /// session.insert("views", &1).unwrap();
    /// let plan = engine.finish_owned(session, now).unwrap();
    /// assert!(plan.cookie.into_header().is_some());
    /// ```
    #[must_use]
    pub fn timestamp(&self) -> Timestamp {
        Timestamp::from_unix_ms(self.inner.config.clock.now_unix_ms())
    }

    /// Step 1: parses the request's `Cookie` header values and verifies the
    /// session cookie(s) against the key ring.
    ///
    /// Never fails. A cookie that is tampered with, truncated, oversized,
    /// not UTF-8, signed for another name or otherwise garbage is left out,
    /// and the reason logged at debug level. When several cookies carry the
    /// session cookie's name, all that verify are kept in order (at most
    /// [`MAX_SESSION_COOKIES`]; and after 16 that do not, the rest are not
    /// looked at) and the first that loads and has not ended wins (the
    /// first that loads, when all have ended); in cookie-store mode, of
    /// those that open and have not ended, the one sealed last (the latest
    /// last use, then the highest version), since each write goes into the
    /// cookie at the configured `Path` and `Domain`. Either way an old
    /// cookie left at another `Path` or `Domain` does not hide the live
    /// one.
    ///
    /// An id cookie's value that verified before is not verified again: the
    /// engine remembers recent ones (see
    /// [`SessionConfig::with_verified_cache`]), which spares a session's
    /// later requests an HMAC and a SHA-256.
    pub fn read<I, H>(&self, cookie_headers: I) -> Incoming
    where
        I: IntoIterator<Item = H>,
        H: AsRef<[u8]>,
    {
        let name = self.inner.config.name.as_bytes();
        let mut incoming = Incoming::default();
        let (mut kept, mut rejected) = (0, 0);
        for header in cookie_headers {
            let read = crate::cookies::each_value_named(header.as_ref(), name, |value| {
                if kept == MAX_SESSION_COOKIES || rejected == MAX_REJECTED_COOKIES {
                    trace::too_many_cookies(kept, rejected);
                    return ControlFlow::Break(());
                }
                match self.verify(value) {
                    Ok(candidate) => {
                        kept += 1;
                        incoming.push(candidate);
                    }
                    Err(reason) => {
                        rejected += 1;
                        trace::rejected(&reason);
                    }
                }
                ControlFlow::Continue(())
            });
            if read.is_break() {
                break;
            }
        }
        incoming
    }

    fn verify(&self, value: &[u8]) -> Result<Candidate, CodecError> {
        let config = &self.inner.config;
        if self.inner.store.is_some() {
            let cache = self.inner.verified.as_ref();
            let id_value = codec::IdValue::new(value);
            let hit = match (cache, &id_value) {
                (Some(cache), Some(id_value)) => cache.get(id_value),
                _ => None,
            };
            if let Some(Verified { id, key, matched }) = hit {
                return Ok(Candidate::Id { id, key, matched });
            }
            let (payload, matched) = self
                .inner
                .id_signer
                .verify_array::<{ crate::ID_LEN }>(value)?;
            let id = SessionId::from_bytes(payload);
            let verified = Verified {
                key: id.store_key(),
                id,
                matched,
            };
            if let (Some(cache), Some(id_value)) = (cache, id_value) {
                cache.insert(&id_value, &verified);
            }
            let Verified { id, key, matched } = verified;
            Ok(Candidate::Id { id, key, matched })
        } else {
            // Bytes that are not base64 (or not UTF-8) fail the decoding.
            // A small session opens on the stack.
            let (mut stack, mut heap) = ([0u8; 512], Vec::new());
            let (plaintext, matched) =
                self.inner
                    .sealer
                    .open_into(&config.keys, value, &mut stack, &mut heap)?;
            let record = codec::inline::read(plaintext)
                .map_err(|_| CodecError::Payload("not a session record"))?;
            Ok(Candidate::Inline {
                record: Box::new(record),
                matched,
            })
        }
    }

    /// Step 2: loads the record of the first session cookie whose id the
    /// store knows, or of several such cookies, the first whose session
    /// has not ended (see [`read`](Self::read)). In cookie-store mode the
    /// session came inside the cookie, and nothing is loaded.
    ///
    /// # Errors
    ///
    /// The store's error. The adapter must answer 500 and log it: treating a
    /// failing store as "no session" would hand the user a fresh, empty
    /// session and lose their data.
    pub async fn load(&self, incoming: Incoming) -> Result<Loaded, StoreError> {
        let incoming = match self.load_now(incoming) {
            LoadNow::Done(loaded) => return Ok(loaded),
            LoadNow::Failed(error) => return Err(error),
            LoadNow::Wait(incoming) => incoming,
        };
        let Some(store) = &self.inner.store else {
            return Ok(Loaded::default());
        };
        // Of several cookies, an ended session does not hide a live one
        // behind it (see `load_several_now`).
        let now = (!incoming.more.is_empty()).then(|| self.timestamp());
        let (mut ended, mut moved) = (None, false);
        for candidate in incoming.first.into_iter().chain(incoming.more) {
            let record = match &candidate {
                Candidate::Id { key, .. } => {
                    let record = store.load(key).await?;
                    if record.is_none() {
                        moved |= self.was_moved(key, now);
                    }
                    record
                }
                Candidate::Inline { .. } => None,
            };
            if let Some(loaded) = Self::found(candidate, record) {
                match now {
                    Some(now) if self.has_ended(&loaded, now) => {
                        ended.get_or_insert(loaded);
                    }
                    _ => return Ok(loaded),
                }
            }
        }
        // An ended session beside a moved id: its removal must not clear
        // the log-in's cookie either.
        let found = ended.and_then(|ended: Loaded| ended.found);
        Ok(Loaded { found, moved })
    }

    /// Step 2 without waiting, when it can be done at once: in cookie-store
    /// mode, when no session cookie verified, and with a store that answers
    /// at once ([`SessionStore::immediate`], such as the [`MemoryStore`]).
    /// Otherwise the cookies come back as [`LoadNow::Wait`], for
    /// [`load`](Self::load).
    ///
    /// Adapters call this first to keep the common case free of a boxed
    /// future; [`load`](Self::load) itself starts with it, so the outcome is
    /// the same either way.
    ///
    /// ```
    /// use session_core::{Engine, Key, KeyRing, LoadNow, SessionConfig};
    ///
    /// let engine = Engine::new(SessionConfig::new(KeyRing::new(Key::generate()))).unwrap();
    /// let incoming = engine.read([&b"id=garbage"[..]]);
    /// // The default store is the memory store: nothing to wait for.
    /// let LoadNow::Done(loaded) = engine.load_now(incoming) else {
    ///     panic!("the memory store answers at once");
    /// };
    /// assert!(engine.open(loaded, engine.timestamp()).is_new());
    /// ```
    pub fn load_now(&self, incoming: Incoming) -> LoadNow {
        self.load_now_with(incoming, None)
    }

    /// [`load_now`](Self::load_now) at `now`, the time the adapter passes
    /// to [`open`](Self::open): the built-in memory store (which shares the
    /// engine's clock) then judges expiry at `now` instead of reading the
    /// clock again, a saving of a clock read per request (about 14 ns with
    /// [`SystemClock`](crate::SystemClock) on Linux, about 40 ns for a
    /// full-precision clock on a 2-vCPU VM). The outcome is otherwise that
    /// of `load_now`.
    ///
    /// ```
    /// use session_core::{Engine, Key, KeyRing, LoadNow, SessionConfig};
    ///
    /// let engine = Engine::new(SessionConfig::new(KeyRing::new(Key::generate()))).unwrap();
    /// let now = engine.timestamp();
    /// let incoming = engine.read([&b"id=garbage"[..]]);
    /// let LoadNow::Done(loaded) = engine.load_now_at(incoming, now) else {
    ///     panic!("the memory store answers at once");
    /// };
    /// assert!(engine.open(loaded, now).is_new());
    /// ```
    pub fn load_now_at(&self, incoming: Incoming, now: impl Into<Timestamp>) -> LoadNow {
        self.load_now_with(incoming, Some(now.into()))
    }

    fn load_now_with(&self, incoming: Incoming, now: Option<Timestamp>) -> LoadNow {
        let immediate = match &self.inner.store {
            Some(_) if !incoming.is_empty() => match self.immediate(now) {
                Some(immediate) => Some(immediate),
                None => return LoadNow::Wait(incoming),
            },
            _ => None,
        };
        let store = immediate.as_ref().map(Immediate::store);
        let Incoming { first, more } = incoming;
        // The first cookie, then (rarely) the others: no chained iterator
        // to set up and drop on every request.
        let Some(first) = first else {
            return LoadNow::Done(Loaded::default());
        };
        if !more.is_empty() {
            return self.load_several_now(first, more, store, now);
        }
        if let Some(done) = self.load_candidate(first, store, now) {
            return done;
        }
        LoadNow::Done(Loaded::default())
    }

    /// Several session cookies in one request (the cookie moved to another
    /// `Path` or `Domain` and the browser keeps the old one too, or a
    /// sibling subdomain planted one): the first whose session is there and
    /// has not ended under the current configuration, else the first whose
    /// session is there. An ended one found first would otherwise hide a
    /// live one behind it, and its removal (made with the configured
    /// attributes) would clear the live one.
    ///
    /// In cookie-store mode, of several live sessions the one sealed last
    /// (the latest `last_seen`, then the highest version): each write goes
    /// into the cookie at the configured `Path` and `Domain`, and the old
    /// one, read first, would hide every write behind it until it ends. (In
    /// store mode a write goes into the record the cookie read names.)
    /// Reads the clock when the adapter gave no `now`; rare, so out of line.
    #[cold]
    #[inline(never)]
    fn load_several_now(
        &self,
        first: Candidate,
        more: Vec<Candidate>,
        store: Option<&dyn ImmediateStore>,
        now: Option<Timestamp>,
    ) -> LoadNow {
        let now = now.unwrap_or_else(|| self.timestamp());
        let cookie_mode = self.inner.store.is_none();
        let sealed = |loaded: &Loaded| {
            loaded
                .found
                .as_ref()
                .map(|found| (found.record.last_seen, found.record.version))
        };
        let (mut ended, mut newest, mut moved) = (None, None::<Loaded>, false);
        for candidate in std::iter::once(first).chain(more) {
            match self.load_candidate(candidate, store, Some(now)) {
                None => {}
                // An unknown id that was given up at a log-in: the others
                // may still name a live session.
                Some(LoadNow::Done(loaded)) if loaded.found.is_none() => moved |= loaded.moved,
                Some(LoadNow::Done(loaded)) if self.has_ended(&loaded, now) => {
                    ended.get_or_insert(loaded);
                }
                Some(LoadNow::Done(loaded))
                    if cookie_mode
                        && newest.as_ref().is_none_or(|n| sealed(&loaded) > sealed(n)) =>
                {
                    newest = Some(loaded);
                }
                // An older one.
                Some(LoadNow::Done(_)) if cookie_mode => {}
                Some(done) => return done,
            }
        }
        let mut loaded = newest.or(ended).unwrap_or_default();
        // Consulted only when no session continues: an ended one, whose
        // removal must not clear the log-in's cookie either.
        loaded.moved |= moved;
        LoadNow::Done(loaded)
    }

    /// Whether the session `loaded` found has ended at `now`, under the
    /// current configuration (as [`open`](Self::open) judges it).
    fn has_ended(&self, loaded: &Loaded, now: Timestamp) -> bool {
        loaded
            .found
            .as_ref()
            .is_some_and(|found| self.ended(&found.record, now))
    }

    /// Whether `record`'s session has ended at `now`: past the deadline it
    /// was stored with, or past the one the current configuration gives it.
    fn ended(&self, record: &Record, now: Timestamp) -> bool {
        let deadline = record.lifetime.deadline(
            &self.inner.config.expiry,
            record.created_at,
            record.last_seen,
        );
        record.is_expired(now) || crate::expiry::passed(deadline, now)
    }

    /// Looks `candidate` up: `Some` with the answer when it is the session
    /// (or the store failed, or there is nothing to look ids up in), `None`
    /// to try the next cookie.
    #[inline]
    fn load_candidate(
        &self,
        candidate: Candidate,
        store: Option<&dyn ImmediateStore>,
        now: Option<Timestamp>,
    ) -> Option<LoadNow> {
        let record = match (&candidate, store) {
            (Candidate::Inline { .. }, _) => None,
            (Candidate::Id { key, .. }, Some(store)) => match store.load_now(key) {
                Ok(Some(record)) => Some(record),
                Ok(None) if self.was_moved(key, now) => {
                    trace::unknown_id();
                    return Some(LoadNow::Done(Loaded {
                        found: None,
                        moved: true,
                    }));
                }
                Ok(None) => None,
                Err(error) => return Some(LoadNow::Failed(error)),
            },
            // An id cookie in cookie-store mode: nothing to look it up in.
            (Candidate::Id { .. }, None) => return Some(LoadNow::Done(Loaded::default())),
        };
        Self::found(candidate, record).map(LoadNow::Done)
    }

    /// The session of `candidate`, given the record its id loaded (unused
    /// for a cookie-store session, which carries its record).
    #[inline]
    fn found(candidate: Candidate, record: Option<Record>) -> Option<Loaded> {
        let found = match candidate {
            Candidate::Inline { record, matched } => Found {
                id: None,
                key: None,
                record: *record,
                matched,
            },
            Candidate::Id { id, key, matched } => {
                let Some(record) = record else {
                    trace::unknown_id();
                    return None;
                };
                Found {
                    id: Some(id),
                    key: Some(key),
                    record,
                    matched,
                }
            }
        };
        Some(Loaded {
            found: Some(found),
            moved: false,
        })
    }

    /// A log-in gives up the id whose store key is `old`: requests that
    /// still carry it for a few seconds start no session (see
    /// [`crate::moved::MovedIds`]). Remembered from now, before the old
    /// record goes (a request that finds it gone must find it here), for
    /// as long whatever the log-in's handler took; harmless if the log-in
    /// then fails, as the old record is still found.
    #[cold]
    #[inline(never)]
    fn moved(&self, old: StoreKey) {
        self.inner.moved.remember(old, self.timestamp());
    }

    /// Whether `key`, which the store does not know, is an id this engine
    /// gave up at a log-in seconds ago. Reads the clock when
    /// the adapter gave no `now`: the case is rare.
    fn was_moved(&self, key: &StoreKey, now: Option<Timestamp>) -> bool {
        let now = now.unwrap_or_else(|| self.timestamp());
        self.inner.moved.contains(key, now)
    }

    /// Step 3: applies the idle and absolute timeouts at `now` and hands out
    /// the session.
    ///
    /// An id the store did not know is never adopted: the session starts
    /// empty and gets a fresh id if anything is stored. Stores normally hide
    /// expired records themselves (so an expired cookie reads like an
    /// unknown id, and the browser's `Max-Age` has run out at the same
    /// moment anyway); when the store still returns a record that is past
    /// its deadline under the current configuration (a shortened timeout,
    /// a cookie-store session), the session starts empty, and committing
    /// the plan deletes the record and clears the cookie.
    pub fn open(&self, loaded: Loaded, now: impl Into<Timestamp>) -> Session {
        let mut state = State::default();
        self.fill_opened(&mut state, loaded, now.into());
        Session::from_state(state)
    }

    /// [`open`](Self::open), into a [`RequestSlot`]: the first call opens
    /// the session there; later calls (another extraction in the same
    /// request, or one that lost a race to open it) leave the slot as it
    /// is, drop their `loaded`, and get the same session. Either way the
    /// handle shares the slot's allocation: opening allocates nothing.
    ///
    /// ```
    /// use session_core::{Engine, Key, KeyRing, RequestSlot, SessionConfig};
    ///
    /// let engine = Engine::new(SessionConfig::new(KeyRing::new(Key::generate()))).unwrap();
    /// let slot = RequestSlot::new();
    /// let first = engine.open_in(&slot, Default::default(), engine.timestamp());
    /// first.insert("user", "alice").unwrap();
    /// let second = engine.open_in(&slot, Default::default(), engine.timestamp());
    /// assert_eq!(second.get::<String>("user").unwrap().as_deref(), Some("alice"));
    /// ```
    pub fn open_in(
        &self,
        slot: &RequestSlot,
        loaded: Loaded,
        now: impl Into<Timestamp>,
    ) -> Session {
        let mut state = slot.shared.lock();
        if state.opened_at.is_none() {
            if state.finished {
                // Opened again after the request was finished (a misuse):
                // afresh, never on what the plan left behind; and still
                // finished, so that a change through it is logged as not
                // saved (`finish_opened` plans a slot once).
                *state = State {
                    finished: true,
                    late_change_logged: state.late_change_logged,
                    ..State::default()
                };
            }
            self.fill_opened(&mut state, loaded, now.into());
            slot.shared.opened.store(true, Ordering::Release);
        }
        drop(state);
        Session::from_shared(slot.shared.clone())
    }

    /// Opens the session into `state`, a fresh (default) state: only the
    /// fields that differ are written, in place.
    fn fill_opened(&self, state: &mut State, loaded: Loaded, now: Timestamp) {
        state.opened_at = Some(now);
        state.moved = loaded.moved;
        let Some(found) = loaded.found else {
            return;
        };
        let record = found.record;
        if self.ended(&record, now) {
            trace::expired();
            state.expired = Some(found.key);
            return;
        }
        state.origin = Some(Origin {
            id: found.id,
            key: found.key,
            created_at: record.created_at,
            last_seen: record.last_seen,
            expires_at: record.expires_at,
            version: record.version,
            matched: found.matched,
            lifetime: record.lifetime,
        });
        state.data = record.data;
    }

    /// Step 4: decides what to store and which cookie to send, from what the
    /// handler did to `session`.
    ///
    /// The rules, each unit-tested:
    /// - nothing carried and nothing stored: no store operation, no cookie;
    /// - new data on a new (or ended) session: a fresh id, create;
    /// - changed data: compare-and-set save; once the touch interval has
    ///   passed since the last touch, the idle timeout rolls and the cookie
    ///   is re-sent with a fresh `Max-Age`; before that the record keeps its
    ///   last-use time and no cookie is sent (the browser's still carries
    ///   that deadline) unless it was made under a previous key (in
    ///   cookie-store mode the data is in the cookie: every write re-sends
    ///   it);
    /// - unchanged: nothing, unless the touch interval has passed since the
    ///   last touch (then a touch save and a fresh `Max-Age`), or the cookie
    ///   was made under a previous key (then it is re-issued);
    /// - a lifetime set ([`Session::set_lifetime`]): a save that counts as
    ///   a touch (the last use is now, the deadline follows the new
    ///   limits) and the cookie with a `Max-Age` to match, or none for a
    ///   browser-session cookie; every deadline, touch interval and
    ///   `Max-Age` above is the session's own lifetime's;
    /// - `regenerate` (and `renew_id`): the data under a new id, created
    ///   before the old record is deleted; at a log-in (`regenerate`) the
    ///   absolute lifetime starts again;
    /// - new data on a request that carried an id this engine gave up at a
    ///   log-in less than ten seconds ago (a request sent before the
    ///   browser had the new cookie: another tab, a poll): nothing stored
    ///   and no cookie, which would replace the log-in's (logged at warn
    ///   level), unless the request logs in itself (`regenerate`: a retry
    ///   whose browser never got the first log-in's response). This
    ///   engine's log-ins only: on several servers, a request that reaches
    ///   another one starts a session as for any unknown id;
    /// - `destroy` or expiry: delete the record, clear the cookie.
    ///
    /// # Errors
    ///
    /// [`SessionError::Random`] when no id (or, in cookie-store mode, no
    /// nonce) can be generated,
    /// [`SessionError::TooDeep`] when the data this request changed nests
    /// deeper than [`MAX_DATA_DEPTH`](crate::MAX_DATA_DEPTH), and in
    /// cookie-store mode [`SessionError::CookieTooLarge`].
    pub fn finish(
        &self,
        session: &Session,
        now: impl Into<Timestamp>,
    ) -> Result<Plan, SessionError> {
        self.plan(&mut session.lock(), now.into(), Transfer::Clone)
    }

    /// [`finish`](Self::finish) for a session the adapter owns: when `session`
    /// is the last handle on it (the handler's clones are gone), its data
    /// and changes move into the plan instead of being copied. Otherwise, and
    /// in every outcome, it is exactly `finish`.
    ///
    /// ```
    /// use session_core::{Engine, Key, KeyRing, SessionConfig, StoreOp};
    ///
    /// let engine = Engine::new(SessionConfig::new(KeyRing::new(Key::generate()))).unwrap();
    /// let now = engine.timestamp();
    /// let session = engine.open(Default::default(), now);
    /// session.insert("views", &1).unwrap();
    /// let plan = engine.finish_owned(session, now).unwrap();
    /// assert!(matches!(plan.store, StoreOp::Create { .. }));
    /// ```
    ///
    /// # Errors
    ///
    /// As [`finish`](Self::finish).
    pub fn finish_owned(
        &self,
        mut session: Session,
        now: impl Into<Timestamp>,
    ) -> Result<Plan, SessionError> {
        let now = now.into();
        match session.state_mut() {
            Some(state) => self.plan(state, now, Transfer::Move),
            None => self.finish(&session, now),
        }
    }

    /// [`finish_owned`](Self::finish_owned) for the session of a
    /// [`RequestSlot`], at the time it was opened (one clock read per
    /// request): the plan and that time, for
    /// [`commit_now_at`](Self::commit_now_at). `None` when there is
    /// nothing to do: no extraction opened the session, or the plan would
    /// neither store nor send anything ([`Plan::is_noop`]: an unchanged
    /// session within its touch interval, say), which spares the adapter
    /// the commit.
    ///
    /// A call that finds the session opened finishes the slot: a second
    /// call gives `None`, even when the slot was opened again in between (a
    /// misuse; the session it gives starts afresh, and changes through it
    /// are logged, not saved). A call on a slot no extraction opened
    /// finishes nothing: an opening after it is planned by the next call. When the handler
    /// still holds a clone of the session (a task it spawned, say), the plan
    /// is made from a copy of the data, as [`finish`](Self::finish) does;
    /// that clone may still read, but what it changes is saved by nobody,
    /// and the first such change is logged at warn level.
    ///
    /// ```
    /// use session_core::{Engine, Key, KeyRing, RequestSlot, SessionConfig, StoreOp};
    ///
    /// let engine = Engine::new(SessionConfig::new(KeyRing::new(Key::generate()))).unwrap();
    /// let mut slot = RequestSlot::new();
    /// assert!(engine.finish_slot(&mut slot).is_none(), "not opened: nothing to do");
    ///
    /// let now = engine.timestamp();
    /// engine.open_in(&slot, Default::default(), now).insert("views", &1).unwrap();
    /// let (plan, at) = engine.finish_slot(&mut slot).unwrap().unwrap();
    /// assert!(matches!(plan.store, StoreOp::Create { .. }));
    /// assert_eq!(at, now);
    /// assert!(engine.finish_slot(&mut slot).is_none(), "finished");
    /// ```
    ///
    /// # Errors
    ///
    /// As [`finish`](Self::finish).
    pub fn finish_slot(
        &self,
        slot: &mut RequestSlot,
    ) -> Option<Result<(Plan, Timestamp), SessionError>> {
        match Arc::get_mut(&mut slot.shared) {
            // The handler's handles are gone: the data moves into the plan.
            Some(shared) => {
                *shared.opened.get_mut() = false;
                self.finish_opened(shared.state_mut(), Transfer::Move)
            }
            None => {
                let mut state = slot.shared.lock();
                slot.shared.opened.store(false, Ordering::Release);
                self.finish_opened(&mut state, Transfer::Clone)
            }
        }
    }

    fn finish_opened(
        &self,
        state: &mut State,
        transfer: Transfer,
    ) -> Option<Result<(Plan, Timestamp), SessionError>> {
        let now = state.opened_at.take()?;
        if std::mem::replace(&mut state.finished, true) {
            // Opened again after it was finished (see `open_in`): the
            // request's plan was made once, and a second one, from the
            // cookie the request brought, would undo it (a log-in's new
            // cookie followed by the old id's, say). Its changes were
            // logged as not saved.
            return None;
        }
        match self.plan(state, now, transfer) {
            Ok(plan) if plan.is_noop() => None,
            planned => Some(planned.map(|plan| (plan, now))),
        }
    }

    /// The rules of [`finish`](Self::finish), on the session's state;
    /// `transfer` says whether its data and changes may be moved out.
    fn plan(
        &self,
        state: &mut State,
        now: Timestamp,
        transfer: Transfer,
    ) -> Result<Plan, SessionError> {
        let config = &self.inner.config;
        let State {
            origin,
            expired,
            data: values,
            ops,
            regenerate,
            destroyed,
            moved,
            opened_at: _,
            finished: _,
            late_change_logged: _,
        } = state;
        // Data this request changed is written below (or put in a cookie):
        // it must load again. (Unchanged data was loaded, so it does.)
        crate::session::check_changed(ops, values)?;
        let continuing = origin.as_ref().filter(|_| !*destroyed);
        // A lifetime this request set (few requests change anything).
        let set = if ops.is_empty() {
            None
        } else {
            crate::session::set_lifetime(ops)
        };

        if let Some(origin) = continuing {
            let lifetime = set.unwrap_or(origin.lifetime);
            let deadline = || lifetime.deadline(&config.expiry, origin.created_at, now);
            if let Some(new_id) = *regenerate {
                return self.regenerate(origin, values, ops, lifetime, now, new_id, transfer);
            }
            // A lifetime set in this request counts from now, and its
            // cookie must say so.
            let touch_due = set.is_some()
                || if lifetime.has_own_idle() {
                    // Out of line, so that the common case reads the
                    // configured interval where it is.
                    self.own_touch_due(lifetime, origin.last_seen, now)
                } else {
                    touch_due(
                        self.inner.touch_after_ms,
                        self.inner.touch_ahead_ms,
                        origin.last_seen,
                        now,
                    )
                };
            if !ops.is_empty() || touch_due {
                let Some((id, key)) = origin.id.as_ref().zip(origin.key) else {
                    // Cookie-store mode: the data lives in the cookie.
                    let record = Record {
                        data: transfer.take(values),
                        created_at: origin.created_at,
                        last_seen: now,
                        expires_at: deadline(),
                        version: origin.version.wrapping_add(1),
                        lifetime,
                    };
                    return match self.inline_plan(&record, now) {
                        // A touch alone (a read) of a session whose cookie is
                        // at the size limit: the new times and version would
                        // not fit. The browser keeps the cookie it has, good
                        // until the deadline in it, rather than the read
                        // failing; only a change that cannot fit is an error.
                        // A cookie under a previous key still moves to the
                        // current one, untouched.
                        Err(SessionError::CookieTooLarge { size, limit }) if ops.is_empty() => {
                            trace::touch_too_large(size, limit);
                            if origin.matched.is_previous() {
                                let mut loaded = as_loaded(origin, lifetime, record.data);
                                loaded.expires_at = self.deadline_in_force(origin, lifetime);
                                return self.inline_reissue(&loaded, now);
                            }
                            Ok(noop())
                        }
                        plan => plan,
                    };
                };
                // A write within the touch interval leaves the idle timeout
                // where the last touch put it, as a read does: the record
                // keeps its times and the browser's cookie is still right,
                // so none is sent (unless it must move to the current key).
                // The guarantee of the touch interval holds for writes too.
                let (last_seen, deadline, cookie) = if touch_due {
                    let deadline = deadline();
                    // Signed again (once per touch interval): the same id
                    // under the current key gives the value the browser has.
                    let cookie = self.id_cookie(id, deadline, &lifetime, now);
                    (now, deadline, CookieOp::Set(cookie))
                } else {
                    let deadline =
                        lifetime.deadline(&config.expiry, origin.created_at, origin.last_seen);
                    let cookie = if origin.matched.is_previous() {
                        CookieOp::Set(self.id_cookie(id, deadline, &lifetime, now))
                    } else {
                        CookieOp::None
                    };
                    (origin.last_seen, deadline, cookie)
                };
                let record = Record {
                    data: transfer.take(values),
                    created_at: origin.created_at,
                    last_seen,
                    expires_at: deadline,
                    version: origin.version.wrapping_add(1),
                    lifetime,
                };
                return Ok(Plan {
                    cookie,
                    store: StoreOp::Save {
                        key,
                        expected_version: origin.version,
                        changes: Changes(transfer.take(ops)),
                        record,
                    },
                });
            }
            if origin.matched.is_previous() {
                return self.reissue(origin, values, lifetime, now, transfer);
            }
            return Ok(noop());
        }

        // No session continues. One may end (destroyed or expired), and new
        // data starts a new one.
        let (ended, old_key) = match (&*origin, *expired) {
            (Some(origin), _) if *destroyed => (true, origin.key),
            (_, Some(key)) => (true, key),
            _ => (false, None),
        };
        if !values.is_empty() {
            // A log-in on such a request (its browser never got the last
            // one's cookie: a retry) goes through.
            if *moved && *regenerate != Some(crate::session::NewId::LogIn) {
                return Ok(trace::moved_write());
            }
            let lifetime = set.unwrap_or_default();
            let mut record = Record::new(now, lifetime.deadline(&config.expiry, now, now));
            record.data = transfer.take(values);
            record.lifetime = lifetime;
            return self.new_session(record, old_key, now);
        }
        if ended {
            return Ok(Plan {
                store: old_key.map_or(StoreOp::None, |key| StoreOp::Delete { key }),
                // Beside an id given up at a log-in seconds ago, the
                // removal (at the configured `Path`) would clear the
                // log-in's cookie.
                cookie: if *moved {
                    CookieOp::None
                } else {
                    CookieOp::Clear(self.removal_cookie())
                },
            });
        }
        Ok(noop())
    }

    /// Whether a session with an idle timeout of its own, last used at
    /// `last_seen`, is due a touch at `now`.
    #[cold]
    #[inline(never)]
    fn own_touch_due(&self, lifetime: Lifetime, last_seen: Timestamp, now: Timestamp) -> bool {
        let after = lifetime.own_touch_after_ms(self.inner.own_touch_cap_ms);
        let idle = lifetime.idle_timeout().flatten().map_or(0, ceil_ms);
        let ahead = after.map_or(0, |after| idle.saturating_sub(after));
        touch_due(after, ahead, last_seen, now)
    }

    /// [`plan`](Self::plan) for an unchanged session found under a previous
    /// key: its cookie is sent again under the current one. Out of line,
    /// as are the other rare outcomes, so that the common ones (a read, a
    /// write) run through few cache lines of code.
    #[cold]
    #[inline(never)]
    fn reissue(
        &self,
        origin: &Origin,
        values: &mut crate::Data,
        lifetime: Lifetime,
        now: Timestamp,
        transfer: Transfer,
    ) -> Result<Plan, SessionError> {
        let deadline = self.deadline_in_force(origin, lifetime);
        let cookie = match &origin.id {
            Some(id) => self.id_cookie(id, deadline, &lifetime, now),
            None => {
                let mut loaded = as_loaded(origin, lifetime, transfer.take(values));
                loaded.expires_at = deadline;
                return self.inline_reissue(&loaded, now);
            }
        };
        Ok(Plan {
            store: StoreOp::None,
            cookie: CookieOp::Set(cookie),
        })
    }

    /// The deadline of the session `origin` loaded, living `lifetime`: the
    /// stored one, or the configuration's if that is earlier (`ended` ends
    /// the session at the earlier of the two), so that a cookie sent again
    /// without a touch says so in its `Max-Age`.
    fn deadline_in_force(&self, origin: &Origin, lifetime: Lifetime) -> Option<Timestamp> {
        let configured = lifetime.deadline(
            &self.inner.config.expiry,
            origin.created_at,
            origin.last_seen,
        );
        match (origin.expires_at, configured) {
            (Some(stored), Some(configured)) => Some(stored.min(configured)),
            (stored, configured) => stored.or(configured),
        }
    }

    /// Cookie-store mode: `record`, unchanged, sealed again under the
    /// current key. When that no longer fits (the cookie's attributes grew
    /// since it was issued), nothing is sent and the browser keeps the
    /// cookie it has, readable while its key is in the ring: a read is
    /// never an error (logged: at warn level at most once a minute).
    #[cold]
    #[inline(never)]
    fn inline_reissue(&self, record: &Record, now: Timestamp) -> Result<Plan, SessionError> {
        match self.inline_plan(record, now) {
            Err(SessionError::CookieTooLarge { size, limit }) => {
                trace::reissue_too_large(size, limit);
                Ok(noop())
            }
            plan => plan,
        }
    }

    /// A plan that puts `record` in the cookie (cookie-store mode).
    #[cold]
    #[inline(never)]
    fn inline_plan(&self, record: &Record, now: Timestamp) -> Result<Plan, SessionError> {
        Ok(Plan {
            cookie: CookieOp::Set(self.inline_cookie(record, now)?),
            store: StoreOp::None,
        })
    }

    /// [`plan`](Self::plan) for a regenerated session: its data under a new
    /// id, created now at a log-in (its absolute lifetime starts again),
    /// replacing the old record and carrying over what another request
    /// saves there meanwhile (see [`StoreOp::Replace`]). Out of line: rare.
    #[cold]
    #[inline(never)]
    #[allow(
        clippy::too_many_arguments,
        reason = "the parts of one plan, passed down"
    )]
    fn regenerate(
        &self,
        origin: &Origin,
        values: &mut Data,
        ops: &mut Ops,
        lifetime: Lifetime,
        now: Timestamp,
        new_id: crate::session::NewId,
        transfer: Transfer,
    ) -> Result<Plan, SessionError> {
        // At a log-in the new id is a new session as far as its deadlines
        // go: the absolute lifetime caps one log-in, not the visit before
        // it. A renewal keeps the times.
        let created_at = match new_id {
            crate::session::NewId::LogIn => now,
            crate::session::NewId::Renewal => origin.created_at,
        };
        let record = Record {
            data: transfer.take(values),
            created_at,
            last_seen: now,
            expires_at: lifetime.deadline(&self.inner.config.expiry, created_at, now),
            version: 0,
            lifetime,
        };
        let mut plan = self.new_session(record, origin.key, now)?;
        if let StoreOp::Replace { carry, .. } = &mut plan.store {
            *carry = Some(Box::new((origin.version, Changes(transfer.take(ops)))));
        }
        Ok(plan)
    }

    fn new_session(
        &self,
        record: Record,
        old: Option<StoreKey>,
        now: Timestamp,
    ) -> Result<Plan, SessionError> {
        if self.inner.store.is_none() {
            return Ok(Plan {
                cookie: CookieOp::Set(self.inline_cookie(&record, now)?),
                store: StoreOp::None,
            });
        }
        let id = SessionId::generate(self.inner.config.random.as_ref())?;
        let key = id.store_key();
        let cookie = CookieOp::Set(self.id_cookie(&id, record.expires_at, &record.lifetime, now));
        let store = match old {
            Some(old) => StoreOp::Replace {
                old,
                key,
                record,
                carry: None,
            },
            None => StoreOp::Create { key, record },
        };
        Ok(Plan { store, cookie })
    }

    /// Step 5 without waiting, when it can be done at once: in cookie-store
    /// mode, for a plan with no store operation, and with a store that
    /// answers at once ([`SessionStore::immediate`], such as the
    /// [`MemoryStore`]). Otherwise the plan comes back as
    /// [`CommitNow::Wait`], for [`commit`](Self::commit).
    ///
    /// Adapters call this first to spare the common case a boxed future;
    /// [`commit`](Self::commit) itself starts with it, so the outcome is the
    /// same either way.
    ///
    /// ```
    /// use session_core::{CommitNow, Engine, Key, KeyRing, Session, SessionConfig};
    ///
    /// let engine = Engine::new(SessionConfig::new(KeyRing::new(Key::generate()))).unwrap();
    /// let session = engine.open(Default::default(), engine.timestamp());
    /// session.insert("views", &1).unwrap();
    /// let plan = engine.finish(&session, engine.timestamp()).unwrap();
    /// // The default store is the memory store: nothing to wait for.
    /// let CommitNow::Done(Some(set_cookie)) = engine.commit_now(plan) else {
    ///     panic!("the memory store answers at once");
    /// };
    /// assert!(set_cookie.starts_with("id="));
    /// ```
    pub fn commit_now(&self, plan: Plan) -> CommitNow {
        self.commit_now_with(plan, None)
    }

    /// [`commit_now`](Self::commit_now) at `now`, the time the plan was
    /// made for (what the adapter passed to [`finish`](Self::finish)): the
    /// built-in memory store then uses it instead of reading the clock
    /// again, as in [`load_now_at`](Self::load_now_at). The outcome is
    /// otherwise that of `commit_now`.
    ///
    /// ```
    /// use session_core::{CommitNow, Engine, Key, KeyRing, SessionConfig};
    ///
    /// let engine = Engine::new(SessionConfig::new(KeyRing::new(Key::generate()))).unwrap();
    /// let now = engine.timestamp();
    /// let session = engine.open(Default::default(), now);
    /// session.insert("views", &1).unwrap();
    /// let plan = engine.finish_owned(session, now).unwrap();
    /// let CommitNow::Done(Some(set_cookie)) = engine.commit_now_at(plan, now) else {
    ///     panic!("the memory store answers at once");
    /// };
    /// assert!(set_cookie.starts_with("id="));
    /// ```
    pub fn commit_now_at(&self, plan: Plan, now: impl Into<Timestamp>) -> CommitNow {
        self.commit_now_with(plan, Some(now.into()))
    }

    fn commit_now_with(&self, mut plan: Plan, now: Option<Timestamp>) -> CommitNow {
        // Most requests (every read within the touch interval): nothing to
        // store, no cookie.
        if plan.is_noop() {
            return CommitNow::Done(None);
        }
        let executed = match (&self.inner.store, self.immediate(now)) {
            (None, _) => Executed::Done,
            (Some(_), Some(immediate)) => {
                let retries = self.inner.config.max_conflict_retries;
                if let Some(old) = plan.given_up_at_log_in() {
                    self.moved(old);
                }
                match plan.execute_now(immediate.store(), retries) {
                    Ok(executed) => executed,
                    Err(error) => return CommitNow::Failed(error),
                }
            }
            (Some(_), None) if matches!(plan.store, StoreOp::None) => Executed::Done,
            (Some(_), None) => return CommitNow::Wait(plan),
        };
        CommitNow::Done(match executed {
            Executed::SessionGone | Executed::CookieWithheld | Executed::TouchSkipped => None,
            _ => plan.cookie.into_header(),
        })
    }

    /// The store to run an operation on at once: the engine's own memory
    /// store at `now` when both are there (it then reads no clock), else the
    /// configured store if it answers at once. `None` when there is no store
    /// or it must be waited for.
    fn immediate(&self, now: Option<Timestamp>) -> Option<Immediate<'_>> {
        match (self.inner.memory.as_deref(), now) {
            (Some(store), Some(now)) => Some(Immediate::At(MemoryAt {
                store,
                now_ms: now.unix_ms(),
            })),
            _ => self.inner.store.as_ref()?.immediate().map(Immediate::Store),
        }
    }

    /// Step 5: runs the plan's store operation against the configured store
    /// (see [`Plan::execute`]) and returns the `Set-Cookie` header value to
    /// append to the response, if any.
    ///
    /// # Errors
    ///
    /// The errors of [`Plan::execute`]; and, when this request's save was
    /// grouped with those of other requests of the same session,
    /// [`SessionError::Grouped`]: the grouped save failed with the error it
    /// holds, which is [`SessionError::SaveInterrupted`] when the request
    /// that ran it was dropped (or panicked) before it finished. The
    /// adapter must then answer 500 and
    /// log the error, and must not send any session cookie.
    pub async fn commit(&self, plan: Plan) -> Result<Option<String>, SessionError> {
        let mut plan = match self.commit_now(plan) {
            CommitNow::Done(header) => return Ok(header),
            CommitNow::Failed(error) => return Err(error),
            CommitNow::Wait(plan) => plan,
        };
        if let Some(store) = &self.inner.store {
            if let Some(old) = plan.given_up_at_log_in() {
                self.moved(old);
            }
            let executed = plan
                .execute_with(
                    store.as_ref(),
                    self.inner.config.max_conflict_retries,
                    Some(&self.inner.saves),
                )
                .await?;
            if matches!(
                executed,
                Executed::SessionGone | Executed::CookieWithheld | Executed::TouchSkipped
            ) {
                return Ok(None);
            }
        }
        Ok(plan.cookie.into_header())
    }

    /// A jar for the application's own cookies, read from the request's
    /// `Cookie` header values, signing and encrypting with this engine's key
    /// ring.
    pub fn cookies<I, H>(&self, cookie_headers: I) -> Cookies
    where
        I: IntoIterator<Item = H>,
        H: AsRef<[u8]>,
    {
        Cookies::from_headers(
            cookie_headers,
            self.inner.config.keys.clone(),
            self.inner.config.secure,
            self.inner.session_cookie.clone(),
        )
    }

    /// [`cookies`](Self::cookies), into a [`RequestSlot`]: the first call
    /// makes the jar there from `cookie_headers`; later calls get the same
    /// jar (and do not read their headers).
    ///
    /// ```
    /// use session_core::{Engine, Key, KeyRing, RequestSlot, SessionConfig};
    ///
    /// let engine = Engine::new(SessionConfig::new(KeyRing::new(Key::generate()))).unwrap();
    /// let slot = RequestSlot::new();
    /// let jar = engine.cookies_in(&slot, [&b"theme=dark"[..]]);
    /// assert_eq!(jar.get("theme").as_deref(), Some("dark"));
    /// let again = engine.cookies_in(&slot, [&b""[..]]);
    /// assert_eq!(again.get("theme").as_deref(), Some("dark"));
    /// assert!(slot.cookies().is_some());
    /// ```
    pub fn cookies_in<I, H>(&self, slot: &RequestSlot, cookie_headers: I) -> Cookies
    where
        I: IntoIterator<Item = H>,
        H: AsRef<[u8]>,
    {
        slot.shared
            .jar
            .get_or_init(|| self.cookies(cookie_headers))
            .clone()
    }

    /// The `Set-Cookie` value of the session cookie: `write_value` appends
    /// the value, `value_len` bytes of it; `Max-Age` shows `deadline`
    /// unless `lifetime` makes it a browser-session cookie.
    fn cookie_header(
        &self,
        value_len: usize,
        write_value: impl FnOnce(&mut String),
        deadline: Option<Timestamp>,
        lifetime: &Lifetime,
        now: Timestamp,
    ) -> String {
        let inner = &self.inner;
        let name = &inner.config.name;
        let mut formatted = itoa::Buffer::new();
        // `; Max-Age=` and its number, or nothing.
        let max_age: [&str; 2] = match deadline {
            Some(deadline) if lifetime.is_persistent(inner.config.persistent) => {
                let secs = crate::expiry::max_age(deadline, now);
                match &inner.idle_max_age {
                    Some((idle, suffix)) if *idle == secs => [suffix, ""],
                    _ => [MAX_AGE, formatted.format(secs)],
                }
            }
            _ => ["", ""],
        };
        // Exactly the length needed: the header value takes the buffer over
        // as it is, with no copy and no extra allocation.
        let mut out = String::with_capacity(
            name.len()
                + 1
                + value_len
                + inner.attributes.len()
                + max_age[0].len()
                + max_age[1].len(),
        );
        out.push_str(name);
        out.push('=');
        write_value(&mut out);
        out.push_str(&inner.attributes);
        out.push_str(max_age[0]);
        out.push_str(max_age[1]);
        out
    }

    fn id_cookie(
        &self,
        id: &SessionId,
        deadline: Option<Timestamp>,
        lifetime: &Lifetime,
        now: Timestamp,
    ) -> String {
        self.cookie_header(
            codec::signed_len(crate::ID_LEN),
            |out| self.inner.id_signer.sign_into(id.as_bytes(), out),
            deadline,
            lifetime,
            now,
        )
    }

    fn inline_cookie(&self, record: &Record, now: Timestamp) -> Result<String, SessionError> {
        use codec::private::{NONCE_LEN, TAG_LEN};
        let config = &self.inner.config;
        let mut buf = [0u8; NONCE_LEN + codec::inline::INLINE + TAG_LEN];
        config.random.fill(&mut buf[..NONCE_LEN])?;
        // `TooDeep` is not reached: changed data deeper than
        // `MAX_DATA_DEPTH` is refused before a plan, and loaded data was
        // read back.
        let (len, mut heap) =
            codec::inline::write(record, &mut buf, NONCE_LEN, TAG_LEN).map_err(|_| {
                SessionError::TooDeep {
                    limit: crate::MAX_DATA_DEPTH,
                }
            })?;
        let raw = match &mut heap {
            Some(heap) => heap.as_mut_slice(),
            None => &mut buf[..codec::private::sealed_len(len)],
        };
        self.inner.sealer.seal_in_place(config.keys.current(), raw);
        let header = self.cookie_header(
            codec::private::value_len(len),
            |out| codec::private::push_value(raw, out),
            record.expires_at,
            &record.lifetime,
            now,
        );
        if header.len() > MAX_COOKIE_LEN {
            return Err(SessionError::CookieTooLarge {
                size: header.len(),
                limit: MAX_COOKIE_LEN,
            });
        }
        Ok(header)
    }

    /// The `Set-Cookie` value that removes the session cookie: same Path,
    /// Domain, Secure and SameSite, empty value, `Max-Age=0` and an
    /// `Expires` in 1970. The plan of an ended session sends it; an adapter
    /// may also send it itself, say to drop a cookie it refused.
    ///
    /// ```
    /// use session_core::{Engine, Key, KeyRing, SessionConfig};
    ///
    /// let engine = Engine::new(SessionConfig::new(KeyRing::new(Key::generate()))).unwrap();
    /// let removal = engine.removal_cookie();
    /// assert!(removal.starts_with("id=;"), "{removal}");
    /// assert!(removal.contains("Max-Age=0"), "{removal}");
    /// assert!(removal.contains("Path=/"), "{removal}");
    /// ```
    #[must_use]
    pub fn removal_cookie(&self) -> String {
        let mut cookie = base_cookie(&self.inner.config, String::new());
        cookie.set_max_age(time::Duration::ZERO);
        cookie.set_expires(OffsetDateTime::UNIX_EPOCH);
        cookie.to_string()
    }
}

/// The debug events of the request path, out of line: the code that
/// formats them is never fetched on the path that does not log.
mod trace {
    use std::sync::atomic::AtomicU64;

    #[cold]
    #[inline(never)]
    pub(super) fn too_many_cookies(kept: usize, rejected: usize) {
        tracing::debug!(
            kept,
            rejected,
            "too many session cookies in one request; ignoring the rest"
        );
    }

    #[cold]
    #[inline(never)]
    pub(super) fn rejected(reason: &crate::CodecError) {
        tracing::debug!(%reason, "session cookie rejected");
    }

    #[cold]
    #[inline(never)]
    pub(super) fn unknown_id() {
        tracing::debug!("session id unknown to the store; not adopted");
    }

    /// A request that carried an id given up at a log-in a few seconds
    /// before stored data: a session started there would send a cookie
    /// that replaces the log-in's (when its response reaches the browser
    /// last), logging the user out. Nothing is stored and no cookie sent.
    #[cold]
    #[inline(never)]
    pub(super) fn moved_write() -> super::Plan {
        // At warn level at most once a minute: a polling tab meets it on
        // every request for a few seconds.
        static LAST_WARNED_SECS: AtomicU64 = AtomicU64::new(0);
        let message = "a request with a session id given up at a log-in seconds ago (sent \
                       before the browser had the new cookie) stored data: not stored, and no \
                       cookie sent, so that the log-in's cookie stands";
        if crate::plan::warn_due(&LAST_WARNED_SECS) {
            tracing::warn!("{message}");
        } else {
            tracing::debug!("{message}");
        }
        super::noop()
    }

    #[cold]
    #[inline(never)]
    pub(super) fn expired() {
        tracing::debug!("session expired");
    }

    #[cold]
    #[inline(never)]
    /// Met on every read of such a session (its deadline never moves):
    /// at warn level at most once a minute, at debug level in between.
    pub(super) fn touch_too_large(size: usize, limit: usize) {
        static LAST_WARNED_SECS: AtomicU64 = AtomicU64::new(0);
        let message = "cookie-store session at the size limit: its idle timeout is not \
                       extended (the refreshed cookie would not fit)";
        if crate::plan::warn_due(&LAST_WARNED_SECS) {
            tracing::warn!(size, limit, "{message}");
        } else {
            tracing::debug!(size, limit, "{message}");
        }
    }

    /// As [`touch_too_large`].
    pub(super) fn reissue_too_large(size: usize, limit: usize) {
        static LAST_WARNED_SECS: AtomicU64 = AtomicU64::new(0);
        let message = "cookie-store session under a previous key not re-issued under the \
                       current one: the cookie would not fit; it stays readable only while its \
                       key is in the ring";
        if crate::plan::warn_due(&LAST_WARNED_SECS) {
            tracing::warn!(size, limit, "{message}");
        } else {
            tracing::debug!(size, limit, "{message}");
        }
    }
}

/// What precedes the `Max-Age` of the session cookie, in the `cookie`
/// crate's order and spelling (it comes after every other attribute).
const MAX_AGE: &str = "; Max-Age=";

/// Whether [`Engine::finish`] copies the session's data into the plan or
/// may move it (the session is owned and no other handle is alive).
#[derive(Clone, Copy)]
enum Transfer {
    Clone,
    Move,
}

impl Transfer {
    fn take<T: Clone + Default>(self, value: &mut T) -> T {
        match self {
            Self::Clone => value.clone(),
            Self::Move => std::mem::take(value),
        }
    }
}

/// Whether a session last used at `last_seen` is due a touch at `now`,
/// touched every `after_ms` milliseconds (`None`: never).
///
/// A `last_seen` more than `ahead_ms` after `now` is due too: the clock
/// stepped back (or the server that touched it last runs that far ahead),
/// and the browser counts the cookie's `Max-Age` in real time from the last
/// touch. Waiting for this clock to pass `last_seen` by the interval would
/// let the cookie run out while the user is active once `last_seen` is
/// ahead by more than the idle timeout less the interval (`ahead_ms`).
/// Less than that, the touch comes in time; and servers whose clocks
/// differ by less do not touch in turn on every request.
#[inline]
fn touch_due(after_ms: Option<i128>, ahead_ms: i128, last_seen: Timestamp, now: Timestamp) -> bool {
    after_ms.is_some_and(|after| {
        let since = i128::from(now.unix_ms().saturating_sub(last_seen.unix_ms()));
        since >= after || since < -ahead_ms
    })
}

/// The record as it was loaded (its times and version), holding `data`
/// and living `lifetime`.
fn as_loaded(origin: &Origin, lifetime: Lifetime, data: Data) -> Record {
    Record {
        data,
        created_at: origin.created_at,
        last_seen: origin.last_seen,
        expires_at: origin.expires_at,
        version: origin.version,
        lifetime,
    }
}

fn noop() -> Plan {
    Plan {
        store: StoreOp::None,
        cookie: CookieOp::None,
    }
}

/// `d` in milliseconds, rounded up: a whole number of milliseconds `n` is
/// at least `d` exactly when `n >= ceil_ms(d)`.
pub(crate) fn ceil_ms(d: time::Duration) -> i128 {
    let nanos = d.whole_nanoseconds();
    let floor = nanos.div_euclid(1_000_000);
    if nanos.rem_euclid(1_000_000) == 0 {
        floor
    } else {
        floor + 1
    }
}

/// The session cookie with every attribute but `Max-Age`.
fn base_cookie(config: &SessionConfig, value: String) -> Cookie<'static> {
    let mut cookie = Cookie::new(config.name.clone(), value);
    cookie.set_path(config.path.clone());
    if let Some(domain) = &config.domain {
        cookie.set_domain(domain.clone());
    }
    cookie.set_http_only(config.http_only.then_some(true));
    cookie.set_secure(config.secure.then_some(true));
    cookie.set_same_site(config.same_site.to_cookie());
    cookie.set_partitioned(config.partitioned.then_some(true));
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Key, KeyRing};

    /// The touch check compares whole milliseconds with the interval
    /// rounded up: the same answer as comparing the durations themselves.
    #[test]
    fn ceil_ms_answers_as_the_durations_do() {
        use time::Duration;
        assert_eq!(ceil_ms(Duration::ZERO), 0);
        assert_eq!(ceil_ms(Duration::milliseconds(2)), 2);
        assert_eq!(ceil_ms(Duration::microseconds(1_500)), 2);
        assert_eq!(ceil_ms(Duration::microseconds(-1_500)), -1);
        assert_eq!(ceil_ms(Duration::seconds(60)), 60_000);
        for after_us in [-2_001, -2_000, -1, 0, 1, 999, 1_000, 1_001, 59_999_999] {
            let after = Duration::microseconds(after_us);
            for ms in -3..62_000i64 {
                assert_eq!(
                    i128::from(ms) >= ceil_ms(after),
                    Duration::milliseconds(ms) >= after,
                    "{ms} ms against {after}"
                );
            }
        }
    }

    /// The id of the first session cookie `header` carries.
    fn read_id(engine: &Engine, header: &str) -> Option<SessionId> {
        match engine.read([header.as_bytes()]).first {
            Some(Candidate::Id { id, .. }) => Some(id),
            _ => None,
        }
    }

    /// A name, path and domain too long together for a cookie browsers
    /// keep are refused at start, in both storage modes; just under the
    /// limit, the cookies the engine sends fit.
    #[test]
    fn a_session_cookie_too_long_for_browsers_is_refused_at_start() {
        let keys = KeyRing::new(Key::generate());
        // A domain is 253 bytes at most (a host name): the path makes it
        // long.
        let long = |n: usize| format!("/{}", "a".repeat(n));
        for storage in [Storage::Memory, Storage::Cookie] {
            let config = SessionConfig::new(keys.clone())
                .with_storage(storage.clone())
                .with_domain(Some("example.com".into()))
                .with_path(long(4000));
            let err = Engine::new(config).unwrap_err().to_string();
            assert!(err.contains("browsers keep"), "{err}");
        }
        let config = SessionConfig::new(keys)
            .with_domain(Some("example.com".into()))
            .with_path(long(3700));
        let engine = Engine::new(config).unwrap();
        let id = SessionId::from_bytes([7; crate::ID_LEN]);
        let lifetime = Lifetime::default()
            .with_idle_timeout(Some(time::Duration::seconds(i64::from(u32::MAX))))
            .with_persistent(true);
        let far = Timestamp::from_unix_ms(i64::from(u32::MAX) * 1000);
        let set_cookie = engine.id_cookie(&id, Some(far), &lifetime, Timestamp::UNIX_EPOCH);
        assert!(set_cookie.len() <= MAX_COOKIE_LEN, "{}", set_cookie.len());
    }

    #[test]
    fn a_remembered_value_is_answered_from_the_cache() {
        let config = SessionConfig::new(KeyRing::new(Key::generate()));
        let engine = Engine::new(config.clone()).unwrap();
        let id = SessionId::from_bytes([7; crate::ID_LEN]);
        let set_cookie = engine.id_cookie(&id, None, &Lifetime::default(), Timestamp::UNIX_EPOCH);
        let header = set_cookie.split(';').next().unwrap().to_owned();
        let value = header.strip_prefix("id=").unwrap().as_bytes();
        assert_eq!(read_id(&engine, &header), Some(id.clone()));

        // Plant another answer for the same value: the next read returns
        // it, so it came from the cache, not from verifying again.
        let planted = SessionId::from_bytes([9; crate::ID_LEN]);
        let cache = engine.inner.verified.as_ref().expect("on by default");
        cache.insert(
            &codec::IdValue::new(value).unwrap(),
            &Verified {
                key: planted.store_key(),
                id: planted.clone(),
                matched: KeyMatch::Current,
            },
        );
        assert_eq!(read_id(&engine, &header), Some(planted));

        // Without the cache, every read verifies.
        let uncached = Engine::new(config.with_verified_cache(0)).unwrap();
        assert!(uncached.inner.verified.is_none());
        assert_eq!(read_id(&uncached, &header), Some(id.clone()));
        assert_eq!(read_id(&uncached, &header), Some(id));
    }

    #[test]
    fn cookie_store_mode_has_no_cache() {
        let config =
            SessionConfig::new(KeyRing::new(Key::generate())).with_storage(Storage::Cookie);
        assert!(Engine::new(config).unwrap().inner.verified.is_none());
    }
}
