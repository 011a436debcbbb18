//! Configuration: one builder for the session cookie, expiry, keys, storage,
//! clock and randomness.

use std::fmt;
use std::sync::Arc;

use time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::id::{RandomSource, ThreadRandom};
use crate::store::SessionStore;
use crate::{ConfigError, Expiry, KeyRing};

/// The `SameSite` attribute of a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SameSite {
    /// Sent only on same-site requests.
    Strict,
    /// Sent on same-site requests and top-level cross-site navigations (the
    /// default).
    #[default]
    Lax,
    /// Sent on every request; browsers require `Secure` with it.
    None,
}

impl SameSite {
    pub(crate) fn to_cookie(self) -> cookie::SameSite {
        match self {
            Self::Strict => cookie::SameSite::Strict,
            Self::Lax => cookie::SameSite::Lax,
            Self::None => cookie::SameSite::None,
        }
    }
}

/// Where session data lives.
#[derive(Clone, Default)]
pub enum Storage {
    /// A [`MemoryStore`](crate::MemoryStore) made by the engine on the
    /// config's clock (the default).
    #[default]
    Memory,
    /// A server-side store; the cookie holds only the signed session id.
    Store(Arc<dyn SessionStore>),
    /// Cookie-store mode: the whole session is encrypted (AES-256-GCM) into
    /// the cookie and nothing is kept on the server.
    ///
    /// What this mode cannot do:
    /// - revoke: a copy of an old cookie stays valid until its own deadlines
    ///   pass, even after `destroy` or logout, because nothing server-side
    ///   remembers that it was replaced;
    /// - merge concurrent requests: two requests that change the session at
    ///   the same time each send a whole new cookie, and the browser keeps
    ///   whichever arrives last;
    /// - hold much: the cookie carries the session's times and its data in
    ///   a compact binary form (a `{"views":1}` session makes a value of 89
    ///   characters, and about 3 KB of data fit), and a change that would take
    ///   the cookie past 4096 bytes is an error ([`SessionError::CookieTooLarge`](crate::SessionError::CookieTooLarge)).
    ///   A read is not: when the refreshed cookie of a session at the limit
    ///   would not fit, it is not sent, and the idle timeout stops moving
    ///   (logged at warn level). A cookie under a previous key is then
    ///   re-issued under the current one as it is, untouched; and if even
    ///   that does not fit (its attributes grew since), it is not sent and
    ///   stays readable only while its key is in the ring.
    ///
    /// ```
    /// use session_core::{Engine, Key, KeyRing, SessionConfig, Storage};
    ///
    /// let config = SessionConfig::new(KeyRing::new(Key::generate())).with_storage(Storage::Cookie);
    /// let engine = Engine::new(config).unwrap();
    /// assert!(engine.store().is_none(), "no server-side store");
    /// ```
    Cookie,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("Memory"),
            Self::Store(store) => f.debug_tuple("Store").field(store).finish(),
            Self::Cookie => f.write_str("Cookie"),
        }
    }
}

/// Everything the engine needs to know. Build it with `with_*` methods and
/// hand it to [`Engine::new`](crate::Engine::new), which checks it.
///
/// | setting | default |
/// | --- | --- |
/// | cookie name | `id` |
/// | `Path` | `/` |
/// | `Domain` | none (host-only cookie) |
/// | `Secure` | off |
/// | `HttpOnly` | on |
/// | `SameSite` | `Lax` |
/// | `Partitioned` | off |
/// | persistent cookie (`Max-Age`) | on; off makes a browser-session cookie |
/// | idle timeout | 1 hour |
/// | absolute lifetime | 1 day |
/// | touch interval | 1/60 of the idle timeout, at most 60 s |
/// | storage | [`Storage::Memory`] |
/// | memory store: live sessions, largest record | no limit, 1 MiB ([`DEFAULT_MAX_RECORD_SIZE`](crate::DEFAULT_MAX_RECORD_SIZE)) |
/// | clock | [`SystemClock`] |
/// | randomness | [`ThreadRandom`](crate::ThreadRandom) |
/// | conflict retries | 64 |
///
/// ```
/// use session_core::{Engine, Key, KeyRing, SameSite, SessionConfig};
/// use time::Duration;
///
/// let config = SessionConfig::new(KeyRing::new(Key::generate()))
///     .with_cookie_name("sid")
///     .with_secure(true)
///     .with_same_site(SameSite::Strict)
///     .with_idle_timeout(Some(Duration::minutes(30)))
///     .with_absolute_timeout(Some(Duration::hours(8)));
/// let engine = Engine::new(config).unwrap();
/// assert_eq!(engine.config().cookie_name(), "sid");
/// ```
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) same_site: SameSite,
    pub(crate) partitioned: bool,
    pub(crate) persistent: bool,
    pub(crate) expiry: Expiry,
    pub(crate) touch_interval: Option<Duration>,
    pub(crate) keys: KeyRing,
    pub(crate) storage: Storage,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) random: Arc<dyn RandomSource>,
    pub(crate) max_conflict_retries: u32,
    pub(crate) verified_cache: usize,
    pub(crate) max_sessions: Option<usize>,
    pub(crate) max_record_size: Option<usize>,
    pub(crate) reissue: Option<CookieReissue>,
}

/// The hook of [`SessionConfig::with_cookie_reissue`].
#[derive(Clone)]
pub(crate) struct CookieReissue(
    pub(crate) Arc<dyn Fn(&mut cookie::Cookie<'static>) -> bool + Send + Sync>,
);

impl fmt::Debug for CookieReissue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CookieReissue(..)")
    }
}

/// The default of [`SessionConfig::with_verified_cache`].
const DEFAULT_VERIFIED_CACHE: usize = 8_192;
/// The most [`SessionConfig::with_verified_cache`] takes: 2^22 entries, a
/// table of about 570 MB.
pub const MAX_VERIFIED_CACHE: usize = 1 << 22;

impl SessionConfig {
    /// The defaults above, with `keys` signing and encrypting.
    #[must_use]
    pub fn new(keys: KeyRing) -> Self {
        Self {
            name: "id".to_owned(),
            path: "/".to_owned(),
            domain: None,
            secure: false,
            http_only: true,
            same_site: SameSite::Lax,
            partitioned: false,
            persistent: true,
            expiry: Expiry::default(),
            touch_interval: None,
            keys,
            storage: Storage::Memory,
            clock: Arc::new(SystemClock),
            random: Arc::new(ThreadRandom),
            max_conflict_retries: 64,
            verified_cache: DEFAULT_VERIFIED_CACHE,
            max_sessions: None,
            max_record_size: None,
            reissue: None,
        }
    }

    /// The session cookie's name (default `id`).
    ///
    /// In production over HTTPS, prefer `__Host-id`: browsers then accept
    /// the cookie only from this exact host, with `Secure`, `Path=/` and no
    /// `Domain`, so a page on another subdomain cannot plant a session
    /// cookie of its own beside yours (the engine takes the first session
    /// cookie that verifies, loads and has not ended, in cookie-store mode
    /// the live one sealed last, see [`Engine::read`](crate::Engine::read)).
    /// The engine checks a `__Host-` or `__Secure-` name against those
    /// rules: breaking them is a [`ConfigError::Cookie`], not a cookie
    /// browsers silently drop.
    ///
    /// ```
    /// use session_core::{Engine, Key, KeyRing, SessionConfig};
    ///
    /// let config = SessionConfig::new(KeyRing::new(Key::generate()))
    ///     .with_cookie_name("__Host-id")
    ///     .with_secure(true);
    /// assert!(Engine::new(config.clone()).is_ok());
    /// assert!(Engine::new(config.with_secure(false)).is_err());
    /// ```
    #[must_use]
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The session cookie's `Path`.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The session cookie's `Domain` (`None`: only the host that set it).
    #[must_use]
    pub fn with_domain(mut self, domain: Option<String>) -> Self {
        self.domain = domain;
        self
    }

    /// The `Secure` attribute: the browser sends the cookie only over HTTPS.
    /// Turn it on in production.
    #[must_use]
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// The `HttpOnly` attribute: scripts cannot read the cookie.
    #[must_use]
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// The `SameSite` attribute. [`SameSite::None`] requires `Secure`.
    #[must_use]
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// The `Partitioned` attribute (CHIPS): where the app runs in another
    /// site's frame (an embedded widget, a third-party context), the
    /// browser keeps the cookie apart for each top-level site, and sends
    /// it there only, rather than refuse it as a third-party cookie.
    /// Needs `Secure` (a [`ConfigError`] otherwise), and usually
    /// [`SameSite::None`] to be sent in a frame at all; browsers that do
    /// not know the attribute ignore it. Its removal carries it too, as
    /// a partitioned cookie is removed only that way.
    #[must_use]
    pub fn with_partitioned(mut self, partitioned: bool) -> Self {
        self.partitioned = partitioned;
        self
    }

    /// `false` sends the cookie without `Max-Age`, so the browser drops it
    /// when it closes; the server-side timeouts apply either way.
    #[must_use]
    pub fn with_persistent_cookie(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    /// The idle timeout (`None`: none; default one hour). At least one
    /// second: a shorter one is a [`ConfigError`] when the engine is built.
    #[must_use]
    pub fn with_idle_timeout(mut self, idle: Option<Duration>) -> Self {
        self.expiry = Expiry::new(idle, self.expiry.absolute());
        self
    }

    /// The absolute lifetime (`None`: none; default one day), counted from
    /// the session's creation or its last
    /// [`regenerate`](crate::Session::regenerate) (a log-in). At least one
    /// second, as for the idle timeout.
    #[must_use]
    pub fn with_absolute_timeout(mut self, absolute: Option<Duration>) -> Self {
        self.expiry = Expiry::new(self.expiry.idle(), absolute);
        self
    }

    /// How often the idle timeout is rolled forward (a "touch"): the
    /// record's last-use time moves and the cookie is re-sent with a fresh
    /// `Max-Age`.
    ///
    /// A request that changes nothing writes nothing unless this long has
    /// passed since the last touch. A request that changes data is always
    /// saved, but within the interval it leaves the last-use time where it
    /// was, and sends no cookie (the browser's cookie already carries that
    /// deadline). So a session is guaranteed to live at least
    /// `idle - touch_interval` after its last request, and at most `idle`,
    /// whether its requests read or write. Default: 1/60 of the idle
    /// timeout, at most 60 seconds, so at most one touch (one unchanged
    /// write, one cookie) per interval and active session. With an idle
    /// timeout, a zero interval rolls the timeout, and re-sends the cookie,
    /// on every request that has a session; the interval must be shorter
    /// than the idle timeout ([`Engine::new`](crate::Engine::new) rejects it
    /// otherwise). In cookie-store mode the data lives in the cookie, so
    /// every write re-sends it and rolls the timeout.
    #[must_use]
    pub fn with_touch_interval(mut self, interval: Duration) -> Self {
        self.touch_interval = Some(interval);
        self
    }

    /// The key ring that signs and encrypts.
    #[must_use]
    pub fn with_keys(mut self, keys: KeyRing) -> Self {
        self.keys = keys;
        self
    }

    /// Where sessions live.
    #[must_use]
    pub fn with_storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    /// At most about `max` live sessions in the built-in memory store
    /// ([`Storage::Memory`], the default): past it, a request that starts a
    /// session fails with a store error (a 500 from the adapters) while the
    /// sessions that exist keep working. See
    /// [`MemoryStore::with_max_sessions`](crate::MemoryStore::with_max_sessions)
    /// for how the limit is kept and when refusals begin. No limit by
    /// default. With another storage, [`Engine::new`](crate::Engine::new)
    /// refuses the setting: give your own store its limit.
    ///
    /// ```
    /// use session_core::{Engine, Key, KeyRing, SessionConfig};
    ///
    /// let config = SessionConfig::new(KeyRing::new(Key::generate())).with_max_sessions(1_000_000);
    /// assert!(Engine::new(config.clone()).is_ok());
    /// // Not with another storage: that store keeps its own limit.
    /// let cookies = config.with_storage(session_core::Storage::Cookie);
    /// assert!(Engine::new(cookies).is_err());
    /// ```
    #[must_use]
    pub fn with_max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = Some(max);
        self
    }

    /// The largest record the built-in memory store ([`Storage::Memory`],
    /// the default) keeps, in bytes: a request whose session would grow
    /// past it fails with a store error (a 500 from the adapters) and the
    /// session keeps what it had. See
    /// [`MemoryStore::with_max_record_size`](crate::MemoryStore::with_max_record_size)
    /// for how records are measured. [`DEFAULT_MAX_RECORD_SIZE`](crate::DEFAULT_MAX_RECORD_SIZE)
    /// (1 MiB) unless set. With another storage,
    /// [`Engine::new`](crate::Engine::new) refuses the setting: give your
    /// own store its limit (cookie-store mode has its own, the cookie's
    /// 4096 bytes).
    ///
    /// ```
    /// use session_core::{Engine, Key, KeyRing, SessionConfig};
    ///
    /// let config = SessionConfig::new(KeyRing::new(Key::generate())).with_max_record_size(64 * 1024);
    /// assert!(Engine::new(config.clone()).is_ok());
    /// // Not with another storage: that store keeps its own limit.
    /// let cookies = config.with_storage(session_core::Storage::Cookie);
    /// assert!(Engine::new(cookies).is_err());
    /// ```
    #[must_use]
    pub fn with_max_record_size(mut self, bytes: usize) -> Self {
        self.max_record_size = Some(bytes);
        self
    }

    /// Shorthand for `with_storage(Storage::Store(store))`.
    #[must_use]
    pub fn with_store(self, store: Arc<dyn SessionStore>) -> Self {
        self.with_storage(Storage::Store(store))
    }

    /// The clock adapters read `now` from (a [`ManualClock`](crate::ManualClock)
    /// in tests). The built-in memory store ([`Storage::Memory`]) runs on
    /// it too; a [`MemoryStore`](crate::MemoryStore) you build yourself and
    /// give [`with_store`](Self::with_store) keeps its own: build it with
    /// [`MemoryStore::with_clock`](crate::MemoryStore::with_clock) and the
    /// same clock, or it judges expiry by the system's time (with a manual
    /// clock set in the past, every record it holds reads as expired).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Where session ids and cookie-store sessions' nonces come from (the
    /// jar's private cookies always take theirs from the operating system):
    /// the default
    /// [`ThreadRandom`](crate::ThreadRandom), [`OsRandom`](crate::OsRandom)
    /// (a system call for each), a
    /// [`SequenceRandom`](crate::SequenceRandom) for test vectors. A source
    /// of your own must be cryptographically secure (see
    /// [`RandomSource`](crate::RandomSource)).
    #[must_use]
    pub fn with_random(mut self, random: Arc<dyn RandomSource>) -> Self {
        self.random = random;
        self
    }

    /// How many times a save is retried after version conflicts with
    /// concurrent requests of the same session before giving up with
    /// [`SessionError::TooManyConflicts`](crate::SessionError::TooManyConflicts).
    #[must_use]
    pub fn with_max_conflict_retries(mut self, retries: u32) -> Self {
        self.max_conflict_retries = retries;
        self
    }

    /// How many session cookie values the engine remembers as verified
    /// (default 8,192, rounded up to a power of two; 0 turns the cache
    /// off).
    ///
    /// A session's first request verifies its cookie (base64, HMAC-SHA256,
    /// and the SHA-256 of the store key): about 0.2 µs. Its later requests
    /// find the value among those that verified and skip that work. Only
    /// values that verified under this configuration's keys are remembered,
    /// compared whole and in constant time, so a hit is exactly what
    /// verifying again would give; the store is still asked whether the
    /// session exists.
    ///
    /// Each value has one place in the table, picked by a hash of its MAC,
    /// and a newer value that lands there replaces it: the older one is
    /// verified again on its next request, and put back. Raise the capacity
    /// when many more sessions than it are active at once. The table takes
    /// 136 bytes per entry (about 1.1 MB for the default), allocated whole
    /// when the first session cookie verifies; at most
    /// [`MAX_VERIFIED_CACHE`] entries (`Engine::new` refuses more with a
    /// [`ConfigError::Cookie`](crate::ConfigError::Cookie)). Looking a
    /// value up takes no lock. Cookie-store sessions are never cached
    /// (their cookie changes with their data).
    ///
    /// ```
    /// use session_core::{Key, KeyRing, SessionConfig};
    ///
    /// let config = SessionConfig::new(KeyRing::new(Key::generate()))
    ///     .with_verified_cache(100_000);
    /// assert_eq!(config.verified_cache(), 100_000);
    /// ```
    #[must_use]
    pub fn with_verified_cache(mut self, entries: usize) -> Self {
        self.verified_cache = entries;
        self
    }

    /// How the [`Cookies`](crate::Cookies) jar sets a signed or private
    /// cookie again when it verified only under a previous key of the ring
    /// (it is re-issued under the current key in the response that read
    /// it). Browsers do not send a cookie's attributes, so the jar starts
    /// from `Path=/`, `HttpOnly`, `SameSite=Lax`, `Secure` when the session
    /// cookie has it or the name has a `__Secure-` or `__Host-` prefix, and
    /// no `Max-Age` (a browser-session cookie). `reissue` gets that cookie
    /// and may change its attributes (a `Max-Age` for a "remember me"
    /// cookie, `Secure`, `SameSite=Strict`, another `Path` or `Domain`), or
    /// answer `false` to send nothing; the name and the value it is given
    /// are kept whatever it does. The cookie then follows the rules of
    /// every cookie the jar sets ([`Cookies::add`](crate::Cookies::add)),
    /// and a removal is refused: a `Max-Age` of zero or less, or an
    /// `Expires` not after the configured clock's now. The hook
    /// runs inside [`Cookies::get_signed`](crate::Cookies::get_signed) and
    /// [`Cookies::get_private`](crate::Cookies::get_private), on the
    /// request's task: it should only set attributes (a panic in it is the
    /// handler's panic).
    ///
    /// ```
    /// use session_core::cookie::{Cookie, SameSite};
    /// use session_core::{Engine, Key, KeyRing, SessionConfig};
    ///
    /// let (old, new) = (Key::generate(), Key::generate());
    /// let before = Engine::new(SessionConfig::new(KeyRing::new(old.clone()))).unwrap();
    /// let jar = before.cookies(std::iter::empty::<&str>());
    /// jar.add_signed(Cookie::build(("remember", "alice")).path("/").build());
    /// let pair = jar.delta().remove(0).split(';').next().unwrap().to_owned();
    ///
    /// // After a rotation, "remember" is re-issued for 30 days, Strict;
    /// // "pref" is not re-issued at all.
    /// let config = SessionConfig::new(KeyRing::new(new).with_previous(old))
    ///     .with_cookie_reissue(|cookie: &mut Cookie<'static>| match cookie.name() {
    ///         "remember" => {
    ///             cookie.set_max_age(time::Duration::days(30));
    ///             cookie.set_same_site(SameSite::Strict);
    ///             true
    ///         }
    ///         _ => false,
    ///     });
    /// let after = Engine::new(config).unwrap();
    /// let jar = after.cookies([pair.as_str()]);
    /// assert_eq!(jar.get_signed("remember").as_deref(), Some("alice"));
    /// let reissued = jar.delta().remove(0);
    /// assert!(reissued.contains("Max-Age=2592000"), "{reissued}");
    /// assert!(reissued.contains("SameSite=Strict"), "{reissued}");
    /// ```
    #[must_use]
    pub fn with_cookie_reissue(
        mut self,
        reissue: impl Fn(&mut cookie::Cookie<'static>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.reissue = Some(CookieReissue(Arc::new(reissue)));
        self
    }

    /// How many verified session cookie values the engine remembers (see
    /// [`with_verified_cache`](Self::with_verified_cache)).
    #[must_use]
    pub fn verified_cache(&self) -> usize {
        self.verified_cache
    }

    /// The session cookie's name.
    #[must_use]
    pub fn cookie_name(&self) -> &str {
        &self.name
    }

    /// Whether cookies are sent with `Secure`.
    #[must_use]
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// The timeouts.
    #[must_use]
    pub fn expiry(&self) -> Expiry {
        self.expiry
    }

    /// The key ring.
    #[must_use]
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The storage.
    #[must_use]
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The clock.
    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The touch interval in force (the configured one, or the default).
    #[must_use]
    pub fn touch_interval(&self) -> Duration {
        self.touch_interval
            .unwrap_or_else(|| match self.expiry.idle() {
                Some(idle) => (idle / 60_i32).min(Duration::minutes(1)),
                None => Duration::minutes(1),
            })
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |reason: String| Err(ConfigError::Cookie { reason });
        if !self.path.starts_with('/') {
            return bad(format!("path {:?} must start with '/'", self.path));
        }
        // Browsers drop a prefixed cookie that breaks its prefix's rules,
        // which would look like sessions that never stick: say so at
        // start-up instead.
        if let Err(problem) = check_cookie(
            &self.name,
            Some(&self.path),
            self.domain.as_deref(),
            self.secure,
        ) {
            let hint = if problem.needs_secure {
                ": call with_secure(true)"
            } else {
                ""
            };
            return bad(format!("{}{hint}", problem.reason));
        }
        if self.same_site == SameSite::None && !self.secure {
            return bad("SameSite=None requires Secure: call with_secure(true)".to_owned());
        }
        if self.partitioned && !self.secure {
            return bad("Partitioned requires Secure: call with_secure(true)".to_owned());
        }
        for (what, d) in [
            ("idle", self.expiry.idle()),
            ("absolute", self.expiry.absolute()),
        ] {
            // A cookie's `Max-Age` counts whole seconds: a shorter timeout
            // would send cookies that browsers drop at once.
            if d.is_some_and(|d| d < Duration::SECOND) {
                return bad(format!(
                    "the {what} timeout must be at least one second, or None for no limit"
                ));
            }
        }
        if self.verified_cache > MAX_VERIFIED_CACHE {
            return bad(format!(
                "the verified-cookie cache holds at most {MAX_VERIFIED_CACHE} entries, not {}",
                self.verified_cache
            ));
        }
        if self.touch_interval.is_some_and(Duration::is_negative) {
            return bad("the touch interval must not be negative".to_owned());
        }
        if let (Some(interval), Some(idle)) = (self.touch_interval, self.expiry.idle()) {
            // Otherwise no live session would ever be due a touch, and an
            // active session would end `idle` after its creation. Compared
            // as the engine counts them: the interval rounded up to a
            // millisecond, the timeout down.
            if crate::engine::ceil_ms(interval) >= idle.whole_milliseconds() {
                return bad(format!(
                    "the touch interval ({interval}) must be shorter than the idle timeout ({idle})"
                ));
            }
        }
        if self.max_sessions.is_some() && !matches!(self.storage, Storage::Memory) {
            return Err(ConfigError::Storage {
                reason: "with_max_sessions limits the built-in memory store (Storage::Memory); \
                         with another store, give that store its limit \
                         (MemoryStore::with_max_sessions, or the backend's own)"
                    .to_owned(),
            });
        }
        if self.max_record_size.is_some() && !matches!(self.storage, Storage::Memory) {
            return Err(ConfigError::Storage {
                reason: "with_max_record_size limits the built-in memory store \
                         (Storage::Memory); with another store, give that store its limit \
                         (MemoryStore::with_max_record_size, or the backend's own)"
                    .to_owned(),
            });
        }
        Ok(())
    }
}

/// Why a cookie with this name and these attributes would break its
/// `Set-Cookie` header or be dropped by browsers.
pub(crate) struct CookieProblem {
    pub(crate) reason: String,
    /// The problem is a missing `Secure` (a `__Secure-` or `__Host-` name).
    pub(crate) needs_secure: bool,
}

/// The rules every cookie this crate sets follows, the session cookie's
/// (checked once, by [`SessionConfig`]'s validation) and the jar's (on
/// every add): a name that is a token; a `Path` and a `Domain` without `;`
/// or control characters, which the `cookie` crate would write out as they
/// are, adding attributes; a `Domain` that could be a host name; and the
/// name prefixes' rules (RFC 6265bis, "Cookie Name Prefixes"): `__Secure-`
/// and `__Host-` need `Secure`, and `__Host-` also `Path=/` and no
/// `Domain`.
pub(crate) fn check_cookie(
    name: &str,
    path: Option<&str>,
    domain: Option<&str>,
    secure: bool,
) -> Result<(), CookieProblem> {
    let problem = |reason: String| {
        Err(CookieProblem {
            reason,
            needs_secure: false,
        })
    };
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return problem(format!(
            "cookie name {name:?} must be a non-empty token (letters, digits and !#$%&'*+-.^_`|~)"
        ));
    }
    if let Some(path) =
        path.filter(|path| !path.starts_with('/') || !path.bytes().all(is_attr_byte))
    {
        return problem(format!(
            "path {path:?} must start with '/' and hold no ';' or control characters (browsers \
             ignore any other)"
        ));
    }
    if let Some(domain) = domain.filter(|d| !is_host_name(d)) {
        return problem(format!(
            "domain {domain:?} is not a valid host name (letters, digits, '-' and '_' in \
             dot-separated labels, such as \"example.com\"; no port, path or scheme)"
        ));
    }
    if needs_secure(name) && !secure {
        return Err(CookieProblem {
            reason: format!("cookie name {name:?} needs Secure (browsers drop it otherwise)"),
            needs_secure: true,
        });
    }
    if has_prefix(name, "__Host-") && (path != Some("/") || domain.is_some()) {
        return problem(format!(
            "cookie name {name:?} needs Path=/ and no Domain (browsers drop it otherwise)"
        ));
    }
    Ok(())
}

/// Whether the cookie name `name` starts with `prefix`, in any case (as
/// browsers compare name prefixes).
fn has_prefix(name: &str, prefix: &str) -> bool {
    name.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Whether a cookie named `name` must be `Secure`: a `__Secure-` or
/// `__Host-` name.
pub(crate) fn needs_secure(name: &str) -> bool {
    has_prefix(name, "__Secure-") || has_prefix(name, "__Host-")
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether a `Domain` attribute's value could name a host: one leading dot
/// at most (dropped when the cookie is written, as RFC 6265 has browsers
/// do), then ASCII labels of letters, digits, `-` and `_`, each 1 to 63
/// bytes, separated by single dots, 253 bytes at most. Browsers drop a
/// cookie whose `Domain` does not domain-match the page's host, and
/// nothing with a port, a path, a scheme, a space or an empty label can,
/// so such a value would set a cookie no browser keeps: a session that
/// never sticks. (An internationalized name is given in its ASCII form,
/// `xn--…`. A trailing dot and a bracketed IPv6 address are refused too:
/// they match only a host of exactly that form, for which leaving the
/// `Domain` out does the same.)
fn is_host_name(domain: &str) -> bool {
    let name = domain.strip_prefix('.').unwrap_or(domain);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn is_attr_byte(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b';'
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, Key};

    fn config() -> SessionConfig {
        SessionConfig::new(KeyRing::new(Key::generate()))
    }

    #[test]
    fn bad_cookie_names_are_rejected_with_the_rule() {
        for name in ["", "a b", "a;b", "é", "a=b"] {
            let err = Engine::new(config().with_cookie_name(name)).unwrap_err();
            assert!(
                err.to_string().contains("non-empty token"),
                "{name:?}: {err}"
            );
        }
    }

    /// The table is allocated whole, so a capacity past the maximum is a
    /// clear error at start-up, not a failed allocation on a request.
    #[test]
    fn verified_cache_capacity_has_a_maximum() {
        let err = Engine::new(config().with_verified_cache(MAX_VERIFIED_CACHE + 1)).unwrap_err();
        assert!(err.to_string().contains("at most 4194304 entries"), "{err}");
        assert!(Engine::new(config().with_verified_cache(usize::MAX)).is_err());
        assert!(Engine::new(config().with_verified_cache(MAX_VERIFIED_CACHE)).is_ok());
        assert!(Engine::new(config().with_verified_cache(0)).is_ok());
    }

    #[test]
    fn prefixed_names_follow_their_prefix_rules() {
        for name in ["__Secure-id", "__Host-id", "__host-id"] {
            let err = Engine::new(config().with_cookie_name(name)).unwrap_err();
            assert!(err.to_string().contains("needs Secure"), "{name}: {err}");
            assert!(Engine::new(config().with_cookie_name(name).with_secure(true)).is_ok());
        }
        let host = config().with_cookie_name("__Host-id").with_secure(true);
        let err = Engine::new(host.clone().with_path("/app")).unwrap_err();
        assert!(err.to_string().contains("Path=/ and no Domain"), "{err}");
        let domain = Some("example.com".to_owned());
        assert!(Engine::new(host.with_domain(domain.clone())).is_err());
        let secure = config().with_cookie_name("__Secure-id").with_secure(true);
        assert!(Engine::new(secure.with_path("/app").with_domain(domain)).is_ok());
        // Only a prefix counts.
        assert!(Engine::new(config().with_cookie_name("my__Host-id")).is_ok());
    }

    #[test]
    fn same_site_none_needs_secure() {
        let err = Engine::new(config().with_same_site(SameSite::None)).unwrap_err();
        assert!(err.to_string().contains("with_secure(true)"), "{err}");
        assert!(Engine::new(config().with_same_site(SameSite::None).with_secure(true)).is_ok());
    }

    /// `Partitioned` needs `Secure`; set, the session cookie and its
    /// removal carry it (a partitioned cookie is removed only so).
    #[test]
    fn a_partitioned_cookie_needs_secure_and_is_removed_partitioned() {
        let err = Engine::new(config().with_partitioned(true)).unwrap_err();
        assert!(
            err.to_string().contains("Partitioned requires Secure"),
            "{err}"
        );
        let engine = Engine::new(
            config()
                .with_partitioned(true)
                .with_secure(true)
                .with_same_site(SameSite::None),
        )
        .unwrap();
        let now = engine.timestamp();
        let session = engine.open(crate::Loaded::default(), now);
        session.insert("n", &1).unwrap();
        let plan = engine.finish(&session, now).unwrap();
        let crate::CookieOp::Set(set) = &plan.cookie else {
            panic!("a new session sets its cookie");
        };
        for header in [set.as_str(), engine.removal_cookie().as_str()] {
            let attributes: Vec<&str> = header.split("; ").skip(1).collect();
            assert!(attributes.contains(&"Partitioned"), "{header}");
            assert!(attributes.contains(&"Secure"), "{header}");
        }
        let plain = Engine::new(config().with_secure(true)).unwrap();
        assert!(!plain.removal_cookie().contains("Partitioned"));
    }

    #[test]
    fn timeouts_under_a_second_are_rejected() {
        for short in [
            Duration::ZERO,
            Duration::microseconds(500),
            Duration::milliseconds(999),
            -Duration::SECOND,
        ] {
            let err = Engine::new(config().with_idle_timeout(Some(short))).unwrap_err();
            assert!(
                err.to_string()
                    .contains("idle timeout must be at least one second"),
                "{short}: {err}"
            );
            let err = Engine::new(config().with_absolute_timeout(Some(short))).unwrap_err();
            assert!(
                err.to_string()
                    .contains("absolute timeout must be at least one second"),
                "{short}: {err}"
            );
        }
        assert!(Engine::new(config().with_idle_timeout(Some(Duration::SECOND))).is_ok());
    }

    /// A domain is written without its leading dot: one that is nothing
    /// else would be an empty `Domain=`, which browsers ignore. Nor can a
    /// port, a path, a scheme, a space, a quote, an empty label or an IPv6
    /// address domain-match a page's host: browsers would drop every
    /// session cookie.
    #[test]
    fn a_domain_that_cannot_name_a_host_is_rejected() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!("{}com", "abcdefghi.".repeat(26));
        for domain in [
            ".",
            "..",
            "",
            "example.com:8080",
            "example.com/app",
            "https://example.com",
            "a=b.com",
            "\"example.com\"",
            "a,b.com",
            "exa mple.com",
            "..example.com",
            "example..com",
            "example.com.",
            "[::1]",
            "ex\u{e4}mple.com",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            let err = Engine::new(config().with_domain(Some(domain.into()))).unwrap_err();
            assert!(
                err.to_string().contains("not a valid host name"),
                "{domain:?}: {err}"
            );
        }
        for domain in [
            ".example.com",
            "example.com",
            "app-1.example.co.uk",
            "my_host.internal",
            "127.0.0.1",
            "xn--bcher-kva.example",
            "localhost",
        ] {
            assert!(
                Engine::new(config().with_domain(Some(domain.into()))).is_ok(),
                "{domain:?}"
            );
        }
    }

    #[test]
    fn path_must_be_absolute() {
        assert!(Engine::new(config().with_path("app")).is_err());
        assert!(Engine::new(config().with_path("/app;x")).is_err());
        assert!(Engine::new(config().with_path("/app")).is_ok());
    }

    #[test]
    fn default_touch_interval_follows_idle_timeout() {
        assert_eq!(config().touch_interval(), Duration::minutes(1));
        let short = config().with_idle_timeout(Some(Duration::seconds(120)));
        assert_eq!(short.touch_interval(), Duration::seconds(2));
        let set = config().with_touch_interval(Duration::seconds(5));
        assert_eq!(set.touch_interval(), Duration::seconds(5));
    }

    #[test]
    fn a_touch_interval_must_be_shorter_than_the_idle_timeout() {
        let idle = config().with_idle_timeout(Some(Duration::seconds(30)));
        let error = Engine::new(idle.clone().with_touch_interval(Duration::seconds(30)))
            .unwrap_err()
            .to_string();
        assert!(error.contains("touch interval"), "{error}");
        assert!(Engine::new(idle.with_touch_interval(Duration::seconds(29))).is_ok());
        // As the engine counts them: the interval rounded up to a
        // millisecond reaches the timeout.
        let idle = config().with_idle_timeout(Some(Duration::microseconds(1_000_500)));
        assert!(
            Engine::new(
                idle.clone()
                    .with_touch_interval(Duration::microseconds(1_000_100))
            )
            .is_err()
        );
        assert!(Engine::new(idle.with_touch_interval(Duration::milliseconds(999))).is_ok());
        // Without an idle timeout there is nothing to roll: any interval.
        let no_idle = config().with_idle_timeout(None);
        assert!(Engine::new(no_idle.with_touch_interval(Duration::hours(5))).is_ok());
    }
}
