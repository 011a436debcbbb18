//! A jar for the application's own cookies: plain, signed and private.

use std::fmt;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cookie::Cookie;
use time::OffsetDateTime;

use crate::codec;
use crate::config::check_cookie;
use crate::{CookieError, KeyRing, MAX_COOKIE_LEN};

/// The application's cookies for one request (not the session cookie,
/// which the engine handles).
///
/// Built by [`Engine::cookies`](crate::Engine::cookies) from the request's
/// `Cookie` headers. Reads see the request's cookies with this response's
/// changes applied on top; [`Cookies::delta`] gives exactly the
/// `Set-Cookie` values for what changed, and [`Cookies::take_delta`] gives
/// them to the adapter once, closing the jar to further changes. Cheap to
/// clone (clones share the jar), `Send + Sync`.
///
/// - **plain** cookies are readable and writable by the client;
/// - **signed** cookies are readable by the client, but a changed value is
///   rejected (HMAC-SHA256 over the name and the value);
/// - **private** cookies are encrypted (AES-256-GCM, the name as associated
///   data): the client can neither read nor change them.
///
/// The signature and the encryption cover the name and the value only.
/// `Max-Age`, `Expires` and a removal are the browser's to honour: a client
/// that kept a copy of an old signed or private value can send it again,
/// and it verifies for as long as its key is in the ring. When that
/// matters (a role, a trial), put a deadline inside the value and check it
/// on reading, or keep the state in the session, which expires on the
/// server.
///
/// The session cookie's name belongs to the engine: the jar neither
/// verifies it, nor sets or removes it (see [`Cookies::add`]). It reads
/// at most [`MAX_JAR_COOKIES`] cookies of a request.
///
/// A signed or private cookie that verifies only under a previous key is
/// re-issued under the current key in this response, with `Path=/`,
/// `HttpOnly`, `SameSite=Lax` (and `Secure` if the session cookie has it
/// or the name has a `__Secure-` or `__Host-` prefix) and no `Max-Age`:
/// its original attributes are not sent by browsers.
/// [`SessionConfig::with_cookie_reissue`](crate::SessionConfig::with_cookie_reissue)
/// sets other attributes, or turns the re-issue off, name by name. A
/// request that carries several values under the name that verify, all
/// under previous keys, gets no re-issue: of two old values, one may have
/// been planted beside the real one (from a sibling subdomain, or over
/// plain HTTP), and a re-issue would make it outlive the real one.
/// A re-issued cookie lives at `Path=/` with no `Domain` (unless the hook
/// says otherwise) beside the original, which the browser keeps until it
/// expires: to remove such a cookie after a rotation, remove it at
/// `Path=/` as well as where it was first set.
///
/// Signed and private values are bound to their name, not to a user: a
/// visitor can hand their own valid value to someone else's browser
/// (setting a cookie for a parent domain from a subdomain they control).
/// Of several values under one name, [`get_signed`](Self::get_signed) and
/// [`get_private`](Self::get_private) take the first made under the
/// current key, else the first made under a previous one; keep what must
/// belong to the user in the session.
///
/// ```
/// use session_core::{cookie::Cookie, Engine, Key, KeyRing, SessionConfig};
///
/// let engine = Engine::new(SessionConfig::new(KeyRing::new(Key::generate()))).unwrap();
/// let jar = engine.cookies(["theme=dark; lang=en"]);
/// assert_eq!(jar.get("theme").as_deref(), Some("dark"));
///
/// assert!(jar.add_signed(Cookie::build(("pref", "compact")).path("/").http_only(true).build()));
/// assert_eq!(jar.get_signed("pref").as_deref(), Some("compact"));
/// assert!(jar.remove(Cookie::build("theme").path("/").build()));
/// assert_eq!(jar.get("theme"), None);
/// assert_eq!(jar.delta().len(), 2);
/// ```
#[derive(Clone)]
pub struct Cookies {
    inner: Arc<Mutex<Jar>>,
    keys: KeyRing,
    secure: bool,
    /// The session cookie, which the jar leaves to the engine.
    session: Arc<SessionCookie>,
}

/// What the jar knows of the engine's session cookie: enough to leave it
/// alone.
#[derive(Debug)]
pub(crate) struct SessionCookie {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    /// The engine's [`SessionConfig::with_cookie_reissue`](crate::SessionConfig::with_cookie_reissue),
    /// kept here, beside the rest the jar takes from the engine, so that a
    /// request's jar holds one reference to all of it.
    pub(crate) reissue: Option<crate::config::CookieReissue>,
    /// The engine's clock: an `Expires` the re-issue hook sets is checked
    /// against it.
    pub(crate) clock: std::sync::Arc<dyn crate::Clock>,
}

impl SessionCookie {
    /// Whether a removal with `cookie`'s `Path` and `Domain` names another
    /// cookie than the engine's (browsers tell cookies of one name apart
    /// by those): one planted with a `Domain`, or left at an old `Path`.
    fn other_than(&self, cookie: &Cookie<'_>) -> bool {
        cookie.path().is_some_and(|path| path != self.path)
            || cookie
                .domain()
                .is_some_and(|d| self.domain.as_deref().map(bare_domain) != Some(bare_domain(d)))
    }
}

impl Jar {
    /// `Err` when the response's cookies were taken
    /// ([`Cookies::take_delta`]), so that a change of `name` must be
    /// refused.
    fn open_for(&self, name: &str) -> Result<(), CookieError> {
        if self.sent {
            Err(CookieError::Sent {
                name: name.to_owned(),
            })
        } else {
            Ok(())
        }
    }
}

#[derive(Default)]
struct Jar {
    /// The request's cookies, name and raw value, in order.
    incoming: Vec<(String, String)>,
    /// This response's cookies by name; `None` value means removed.
    changes: Vec<Change>,
    /// Whether the adapter took the changes for the response
    /// ([`Cookies::take_delta`]): later ones cannot be sent.
    sent: bool,
    /// Whether a change refused after `sent` was logged.
    late_change_logged: bool,
}

struct Change {
    name: String,
    /// The cookie's `Path`, as set (the jar's methods give `Path=/` when
    /// none was given; a re-issue hook may take it away).
    path: Option<String>,
    /// The cookie's `Domain`, without a leading dot and in lower case (as
    /// browsers compare it).
    domain: Option<String>,
    /// The raw value the cookie now has, `None` when removed.
    value: Option<String>,
    header: String,
    /// The jar's own re-issue of a value under a previous key, which any
    /// change the application makes to the name replaces.
    reissue: bool,
}

impl Change {
    /// [`Change::new`]: a change the application made.
    const APP: bool = false;
    /// [`Change::new`]: the jar's own re-issue under the current key.
    const REISSUE: bool = true;

    fn new(cookie: &Cookie<'_>, header: String, value: Option<String>, reissue: bool) -> Self {
        Self {
            name: cookie.name().to_owned(),
            path: cookie.path().map(str::to_owned),
            domain: cookie.domain().map(bare_domain),
            value,
            header,
            reissue,
        }
    }

    /// Whether `self` and `other` are changes of one cookie: browsers tell
    /// cookies of one name apart by their `Path` and `Domain`.
    fn same_cookie(&self, other: &Self) -> bool {
        self.name == other.name && self.path == other.path && self.domain == other.domain
    }
}

/// A `Domain` as browsers compare it: without a leading dot, in lower case.
fn bare_domain(domain: &str) -> String {
    domain.trim_start_matches('.').to_ascii_lowercase()
}

impl fmt::Debug for Cookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let jar = self.lock();
        f.debug_struct("Cookies")
            .field(
                "incoming",
                &jar.incoming.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field(
                "changed",
                &jar.changes.iter().map(|c| &c.name).collect::<Vec<_>>(),
            )
            .field("sent", &jar.sent)
            .finish()
    }
}

/// The most cookies a [`Cookies`] jar reads from one request; later ones
/// are left out (logged at debug level). Browsers send at most about 180
/// cookies to one site; the limit keeps a request of thousands of tiny
/// junk cookies from costing memory many times its size.
pub const MAX_JAR_COOKIES: usize = 300;

impl Cookies {
    pub(crate) fn from_headers<I, H>(
        headers: I,
        keys: KeyRing,
        secure: bool,
        session: Arc<SessionCookie>,
    ) -> Self
    where
        I: IntoIterator<Item = H>,
        H: AsRef<[u8]>,
    {
        let mut incoming = Vec::new();
        for header in headers {
            let full = each_pair(header.as_ref(), |name, value| {
                if incoming.len() == MAX_JAR_COOKIES {
                    return ControlFlow::Break(());
                }
                incoming.push((text(name), text(value)));
                ControlFlow::Continue(())
            });
            if full.is_break() {
                tracing::debug!(
                    limit = MAX_JAR_COOKIES,
                    "more cookies in one request than the jar reads; the rest are left out"
                );
                break;
            }
        }
        Self {
            inner: Arc::new(Mutex::new(Jar {
                incoming,
                ..Jar::default()
            })),
            keys,
            secure,
            session,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Jar> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The raw value of the cookie `name`: the value this response's latest
    /// change of that name gave it (`None` for a removal), else the
    /// request's first cookie of that name.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<String> {
        let jar = self.lock();
        if let Some(change) = jar.changes.iter().rev().find(|c| c.name == name) {
            return change.value.clone();
        }
        jar.incoming
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    /// All raw values the request carried under `name` (browsers may send
    /// several with different paths).
    #[must_use]
    pub fn get_all(&self, name: &str) -> Vec<String> {
        let jar = self.lock();
        jar.incoming
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The verified text of the signed cookie `name`, or `None` when absent,
    /// tampered with, signed for another name, or not UTF-8 (and for the
    /// session cookie's name, whose value is the engine's). Of several
    /// values under `name`, the first that verifies under the current key
    /// wins, else the first that verifies under a previous one; only the
    /// first 16 values are looked at, whether they verify or not (each
    /// costs a MAC per key; the session cookie's limit counts only the
    /// values that fail).
    #[must_use]
    pub fn get_signed(&self, name: &str) -> Option<String> {
        self.get_verified(name, false)
    }

    /// The decrypted text of the private cookie `name`, or `None` when
    /// absent, tampered with, made for another name, or not UTF-8 (and for
    /// the session cookie's name). Of several values under `name`, the
    /// first that opens under the current key wins, else the first that
    /// opens under a previous one; only the first 16 are looked at.
    ///
    /// ```
    /// use session_core::{cookie::Cookie, Engine, Key, KeyRing, SessionConfig};
    ///
    /// let engine = Engine::new(SessionConfig::new(KeyRing::new(Key::generate()))).unwrap();
    /// // One response sets it...
    /// let jar = engine.cookies(std::iter::empty::<&str>());
    /// assert!(jar.add_private(Cookie::build(("plan", "trial")).path("/").build()));
    /// let set_cookie = jar.delta().remove(0);
    /// let pair = set_cookie.split(';').next().unwrap();
    /// assert!(!pair.contains("trial"), "the value is encrypted: {pair}");
    ///
    /// // ...and the next request reads it back.
    /// let next = engine.cookies([pair]);
    /// assert_eq!(next.get_private("plan").as_deref(), Some("trial"));
    /// // Under another name the same value is nothing.
    /// let moved = engine.cookies([pair.replacen("plan=", "role=", 1).as_str()]);
    /// assert_eq!(moved.get_private("role"), None);
    /// ```
    #[must_use]
    pub fn get_private(&self, name: &str) -> Option<String> {
        self.get_verified(name, true)
    }

    fn get_verified(&self, name: &str, private: bool) -> Option<String> {
        if name == self.session.name {
            // Its value is signed (or sealed) like the jar's, but re-issuing
            // it from here would overwrite the engine's cookie.
            tracing::debug!(name, "the jar does not read the session cookie");
            return None;
        }
        let decode = if private { codec::open } else { codec::verify };
        // Each value costs a MAC or a decryption per key: a request of
        // thousands of junk values under one name would cost milliseconds.
        // So only the first `MAX_REJECTED_COOKIES` values are looked at,
        // good or bad (the session cookie's limit counts only the bad ones).
        let values: Vec<String> = {
            let jar = self.lock();
            if let Some(change) = jar.changes.iter().rev().find(|c| c.name == name) {
                vec![change.value.clone()?]
            } else {
                jar.incoming
                    .iter()
                    .filter(|(n, _)| n == name)
                    .take(crate::engine::MAX_REJECTED_COOKIES)
                    .map(|(_, v)| v.clone())
                    .collect()
            }
        };
        // The first value under a previous key, taken only when no value
        // verifies under the current one, and how many verified.
        let (mut previous, mut verified) = (None, 0);
        for value in values {
            match decode(&self.keys, name, &value) {
                Ok((bytes, matched)) => {
                    let Ok(text) = String::from_utf8(bytes) else {
                        tracing::debug!(name, "cookie payload is not UTF-8");
                        continue;
                    };
                    if !matched.is_previous() {
                        return Some(text);
                    }
                    verified += 1;
                    previous.get_or_insert(text);
                }
                Err(reason) => tracing::debug!(name, %reason, "cookie rejected"),
            }
        }
        let text = previous?;
        if verified > 1 {
            tracing::debug!(
                name,
                "cookie under a previous key not re-issued: the request carries several valid \
                 values under its name"
            );
        } else {
            self.reissue(name, &text, private);
        }
        Some(text)
    }

    /// Sets `name` again under the current key, unless this response has
    /// already changed it (a `remove` or an `add` made meanwhile by another
    /// holder of the jar stands).
    fn reissue(&self, name: &str, text: &str, private: bool) {
        let mut cookie = Cookie::new(name.to_owned(), text.to_owned());
        cookie.set_path("/");
        cookie.set_http_only(true);
        cookie.set_same_site(cookie::SameSite::Lax);
        cookie.set_secure((self.secure || crate::config::needs_secure(name)).then_some(true));
        if self.lock().sent {
            // Refused anyway (`record`): spare the hook and the sealing.
            return;
        }
        if let Some(hook) = &self.session.reissue {
            if !(hook.0)(&mut cookie) {
                tracing::debug!(
                    name,
                    "cookie under a previous key not re-issued, as configured"
                );
                return;
            }
            // The hook sets attributes; the name and the value stay.
            cookie.set_name(name.to_owned());
            cookie.set_value(text.to_owned());
            if cookie
                .max_age()
                .is_some_and(|age| age <= time::Duration::ZERO)
                || cookie
                    .expires_datetime()
                    .is_some_and(|at| at <= self.session.clock.now())
            {
                tracing::error!(
                    name,
                    "cookie not re-issued: the re-issue hook gave it no time to live (a removal)"
                );
                return;
            }
        }
        let reissued = self.settable(&cookie, false).and_then(|()| {
            let value = self.encode(&cookie, private)?;
            cookie.set_value(value.clone());
            let header = fits(&cookie)?;
            self.record(Change::new(&cookie, header, Some(value), Change::REISSUE))
        });
        match reissued {
            // Refused once the response's cookies were sent, without a
            // word: the re-issue is the jar's own, and waits for the next
            // response.
            Ok(()) | Err(CookieError::Sent { .. }) => {}
            Err(error) => tracing::error!(%error, "cookie under a previous key not re-issued"),
        }
    }

    /// Whether the jar may set `cookie`, or remove it when `removal`: it
    /// follows the rules of every cookie this crate sets (see
    /// [`check_cookie`]), and it is not the engine's session cookie (a
    /// removal may name a cookie of that name with another `Path` or
    /// `Domain`).
    fn settable(&self, cookie: &Cookie<'_>, removal: bool) -> Result<(), CookieError> {
        let name = cookie.name();
        let why = if name == self.session.name && !(removal && self.session.other_than(cookie)) {
            "the session cookie belongs to the engine (use the session's destroy to clear it)"
                .to_owned()
        } else if cookie.same_site() == Some(cookie::SameSite::None) && !writes_secure(cookie) {
            "SameSite=None needs Secure (browsers drop it otherwise)".to_owned()
        } else if !removal && !expires_writable(cookie) {
            "its Expires has no UTC form, which an HTTP date needs (year -9999 at a positive offset)"
                .to_owned()
        } else {
            match check_cookie(name, cookie.path(), cookie.domain(), writes_secure(cookie)) {
                Ok(()) => return Ok(()),
                Err(problem) => problem.reason,
            }
        };
        Err(CookieError::Rules {
            name: name.to_owned(),
            reason: why,
        })
    }

    /// `cookie`'s value signed (or sealed) under the current key for its
    /// name; an error when the OS random source fails a seal.
    fn encode(&self, cookie: &Cookie<'_>, private: bool) -> Result<String, CookieError> {
        let (name, value) = (cookie.name(), cookie.value().as_bytes());
        if !private {
            return Ok(codec::sign(self.keys.current(), name, value));
        }
        codec::seal(self.keys.current(), name, value).map_err(|error| CookieError::Random {
            name: name.to_owned(),
            reason: error.to_string(),
        })
    }

    /// A change refused with `error`, for the methods that answer `false`:
    /// logged at warn level when a client can cause it (a value from the
    /// request that is not a cookie value, or too long) and when the jar
    /// was kept past the response (the first time only), at error level
    /// otherwise (a cookie that breaks the rules, a random source that
    /// failed).
    #[cold]
    fn refused(&self, error: &CookieError) {
        match error {
            CookieError::Value { .. } | CookieError::TooLarge { .. } => {
                tracing::warn!(%error, "cookie not set");
            }
            CookieError::Sent { .. } => {
                let mut jar = self.lock();
                if !std::mem::replace(&mut jar.late_change_logged, true) {
                    drop(jar);
                    tracing::warn!(
                        %error,
                        "cookie not set (a jar kept past the response, such as one moved into \
                         a spawned task)"
                    );
                }
            }
            _ => tracing::error!(%error, "cookie not set"),
        }
    }

    /// `cookie` with `Path=/` when it has no `Path` (as Express and Rocket
    /// set cookies): a cookie without one is scoped by the browser to the
    /// directory of the request that set it, which is seldom meant.
    fn at_root(mut cookie: Cookie<'static>) -> Cookie<'static> {
        if cookie.path().is_none() {
            cookie.set_path("/");
        }
        cookie
    }

    /// Sets a plain cookie and returns `true`. Its value must be a valid
    /// cookie value (printable ASCII without spaces, `"`, `,`, `;` or `\`);
    /// encode anything else yourself, or use [`Cookies::add_signed`], which
    /// encodes. A cookie without a `Path` is set at `Path=/` (as Express's
    /// `res.cookie` and Rocket's jar do); give one for another.
    ///
    /// The cookie is not set and the call returns `false` when
    /// [`try_add`](Self::try_add) would answer an error: the reason is
    /// logged, at warn level when a client can cause it (a value from the
    /// request that is no cookie value, or too long) and when the jar was
    /// kept past the response (the first time), at error level otherwise.
    /// Use `try_add` to learn the reason instead (and answer the client
    /// with it).
    ///
    /// ```
    /// use session_core::{cookie::Cookie, Engine, Key, KeyRing, SessionConfig};
    ///
    /// let engine = Engine::new(SessionConfig::new(KeyRing::new(Key::generate()))).unwrap();
    /// let jar = engine.cookies([""]);
    /// assert!(jar.add(Cookie::new("theme", "dark")));
    /// assert!(!jar.add(Cookie::new("theme", "dark blue")));
    /// assert!(!jar.add(Cookie::new("id", "mine"))); // the session cookie's name
    /// assert_eq!(jar.delta(), ["theme=dark; Path=/"]);
    /// ```
    pub fn add(&self, cookie: Cookie<'static>) -> bool {
        self.try_add(cookie)
            .map_err(|error| self.refused(&error))
            .is_ok()
    }

    /// [`add`](Self::add), answering why a cookie was not set, with
    /// nothing logged. The cookie is not set when:
    ///
    /// - its value is not valid ([`CookieError::Value`]; this rule is the
    ///   plain cookie's alone);
    /// - ([`CookieError::Rules`]) its name is not a token, or is the
    ///   session cookie's; its `Path` does not start with `/` (browsers
    ///   ignore such a path), its `Path` or `Domain` holds a `;` or a
    ///   control character, or its `Domain` cannot be a host name (a port,
    ///   a path, a scheme or an empty label in it, say: browsers would
    ///   drop the cookie); its `Expires` has no form in UTC, which an HTTP
    ///   date needs (a time early in year −9999 at a positive offset; the
    ///   `cookie` crate itself brings times after 9999 back to 9999's last
    ///   second); it has `SameSite=None` without `Secure` (browsers drop
    ///   it; unset, `Secure` is written for it); a `__Secure-` or `__Host-`
    ///   name breaks its prefix's rules (`Secure`; for `__Host-` also
    ///   `Path=/` and no `Domain`), which browsers would drop;
    /// - its `Set-Cookie` value would be longer than [`MAX_COOKIE_LEN`]
    ///   ([`CookieError::TooLarge`]; browsers drop it too);
    /// - the response's cookies were already sent ([`CookieError::Sent`]:
    ///   [`Cookies::take_delta`] ran, and the jar was kept past the
    ///   response, in a spawned task, say).
    ///
    /// The same rules hold for every `try_add_*` method, and all but the
    /// `Expires` and length rules for [`Cookies::try_remove`] (a removal
    /// writes its own `Expires`), which may however name the session
    /// cookie's name with another `Path` or `Domain` than the engine's (a
    /// stray cookie of that name).
    ///
    /// # Errors
    ///
    /// The [`CookieError`] saying why, as above.
    ///
    /// ```
    /// use session_core::{cookie::Cookie, CookieError, Engine, Key, KeyRing, SessionConfig};
    ///
    /// let engine = Engine::new(SessionConfig::new(KeyRing::new(Key::generate()))).unwrap();
    /// let jar = engine.cookies([""]);
    /// let refused = jar.try_add(Cookie::new("theme", "dark blue")).unwrap_err();
    /// assert!(matches!(refused, CookieError::Value { .. }), "{refused}");
    /// let long = "x".repeat(5000);
    /// let refused = jar.try_add(Cookie::new("theme", long)).unwrap_err();
    /// assert!(matches!(refused, CookieError::TooLarge { .. }), "{refused}");
    /// assert_eq!(jar.try_add(Cookie::new("theme", "dark")), Ok(()));
    /// ```
    #[allow(
        clippy::needless_pass_by_value,
        reason = "the jar takes cookies by value, like every add_* method"
    )]
    pub fn try_add(&self, cookie: Cookie<'static>) -> Result<(), CookieError> {
        // Refused for being late first, as by every method.
        self.lock().open_for(cookie.name())?;
        if !cookie.value().bytes().all(is_cookie_octet) {
            return Err(CookieError::Value {
                name: cookie.name().to_owned(),
            });
        }
        let cookie = Self::at_root(cookie);
        self.settable(&cookie, false)?;
        let header = fits(&cookie)?;
        let value = cookie.value().to_owned();
        self.record(Change::new(&cookie, header, Some(value), Change::APP))
    }

    /// Sets a signed cookie and returns `true`: the value is stored
    /// readable, with a signature binding it to the cookie's name. Any text
    /// can be the value (it is encoded). `false` when the cookie cannot be
    /// set (see [`Cookies::add`], and [`Cookies::try_add_signed`] for the
    /// reason).
    pub fn add_signed(&self, cookie: Cookie<'static>) -> bool {
        self.try_add_signed(cookie)
            .map_err(|error| self.refused(&error))
            .is_ok()
    }

    /// [`add_signed`](Self::add_signed), answering why a cookie was not
    /// set (see [`Cookies::try_add`]), with nothing logged.
    ///
    /// # Errors
    ///
    /// As [`Cookies::try_add`], but for [`CookieError::Value`]: any text
    /// can be a signed cookie's value.
    pub fn try_add_signed(&self, cookie: Cookie<'static>) -> Result<(), CookieError> {
        self.add_encoded(cookie, false)
    }

    /// Sets a private (encrypted) cookie and returns `true`. `false` when
    /// the cookie cannot be set (see [`Cookies::add`], and
    /// [`Cookies::try_add_private`] for the reason), or when the OS random
    /// source fails (logged at error level).
    ///
    /// Each call is one AES-256-GCM encryption with a random 96-bit nonce;
    /// see the crate docs' "Key rotation" for how many one key should make.
    pub fn add_private(&self, cookie: Cookie<'static>) -> bool {
        self.try_add_private(cookie)
            .map_err(|error| self.refused(&error))
            .is_ok()
    }

    /// [`add_private`](Self::add_private), answering why a cookie was not
    /// set (see [`Cookies::try_add`]), with nothing logged.
    ///
    /// # Errors
    ///
    /// As [`Cookies::try_add_signed`], and [`CookieError::Random`] when the
    /// OS random source fails.
    pub fn try_add_private(&self, cookie: Cookie<'static>) -> Result<(), CookieError> {
        self.add_encoded(cookie, true)
    }

    fn add_encoded(&self, cookie: Cookie<'static>, private: bool) -> Result<(), CookieError> {
        let mut cookie = Self::at_root(cookie);
        // Before the encryption, which would spend a nonce for nothing.
        self.lock().open_for(cookie.name())?;
        self.settable(&cookie, false)?;
        let value = self.encode(&cookie, private)?;
        cookie.set_value(value.clone());
        let header = fits(&cookie)?;
        self.record(Change::new(&cookie, header, Some(value), Change::APP))
    }

    /// Removes a cookie from the browser and returns `true`. Give the same
    /// `Path` and `Domain` it was set with, or the browser keeps it (a
    /// cookie given without a `Path` is removed at `Path=/`, where
    /// [`add`](Self::add) sets one). `false` when the cookie cannot be
    /// removed by the jar (see [`Cookies::add`], and
    /// [`Cookies::try_remove`] for the reason).
    ///
    /// Each `Path` and `Domain` is a cookie of its own: removals of one name
    /// at two paths are both sent, and so are a removal at an old `Path`
    /// and a new value at `Path=/`.
    ///
    /// ```
    /// use session_core::{cookie::Cookie, Engine, Key, KeyRing, SessionConfig};
    ///
    /// let engine = Engine::new(SessionConfig::new(KeyRing::new(Key::generate()))).unwrap();
    /// let jar = engine.cookies(["cart=a; cart=b"]);
    /// assert!(jar.remove(Cookie::build("cart").path("/shop").build()));
    /// assert!(jar.add(Cookie::new("cart", "c")));
    /// assert_eq!(jar.get("cart").as_deref(), Some("c"));
    /// assert_eq!(jar.delta().len(), 2);
    /// ```
    pub fn remove(&self, cookie: Cookie<'static>) -> bool {
        self.try_remove(cookie)
            .map_err(|error| self.refused(&error))
            .is_ok()
    }

    /// [`remove`](Self::remove), answering why a cookie cannot be removed
    /// (see [`Cookies::try_add`]), with nothing logged.
    ///
    /// # Errors
    ///
    /// [`CookieError::Rules`] and [`CookieError::Sent`], as for
    /// [`Cookies::try_add`].
    pub fn try_remove(&self, cookie: Cookie<'static>) -> Result<(), CookieError> {
        self.lock().open_for(cookie.name())?;
        let mut removal = Self::at_root(cookie);
        self.settable(&removal, true)?;
        removal.set_value("");
        removal.set_max_age(time::Duration::ZERO);
        removal.set_expires(OffsetDateTime::UNIX_EPOCH);
        let header = removal.to_string();
        self.record(Change::new(&removal, header, None, Change::APP))
    }

    /// Records `change` as one of this response's changes. The
    /// application's change replaces an earlier one of the same cookie
    /// (name, `Path` and `Domain`) and the jar's own re-issue of the name;
    /// a re-issue is dropped when the response already changes the name.
    /// [`CookieError::Sent`] when the response's cookies were already
    /// taken ([`Cookies::take_delta`]): the change is refused.
    fn record(&self, change: Change) -> Result<(), CookieError> {
        let mut jar = self.lock();
        jar.open_for(&change.name)?;
        if change.reissue {
            if jar.changes.iter().any(|c| c.name == change.name) {
                return Ok(());
            }
        } else {
            jar.changes
                .retain(|c| !(c.same_cookie(&change) || c.reissue && c.name == change.name));
        }
        jar.changes.push(change);
        Ok(())
    }

    /// The `Set-Cookie` header values for every cookie this response set or
    /// removed, in the order of the changes: one per cookie, which browsers
    /// tell apart by name, `Path` and `Domain` (of two changes of one
    /// cookie, the last wins). Two changes of one name with different
    /// `Path`s or `Domain`s are two cookies, and both are sent: a removal at
    /// an old `Path` and a new value at `Path=/`, say.
    #[must_use]
    pub fn delta(&self) -> Vec<String> {
        self.lock()
            .changes
            .iter()
            .map(|c| c.header.clone())
            .collect()
    }

    /// [`delta`](Self::delta) for the adapter to append to the response,
    /// once: the jar is then sent, and a later `add`, `add_signed`,
    /// `add_private` or `remove` (through a clone kept past the response,
    /// in a spawned task, say) returns `false` and logs a warning (the
    /// first one), instead of being dropped without a word. A second
    /// `take_delta` gets nothing, so that two holders of one jar (two
    /// layers around one request) cannot send its cookies twice.
    ///
    /// ```
    /// use session_core::{cookie::Cookie, Engine, Key, KeyRing, SessionConfig};
    ///
    /// let engine = Engine::new(SessionConfig::new(KeyRing::new(Key::generate()))).unwrap();
    /// let jar = engine.cookies([""]);
    /// assert!(jar.add(Cookie::new("theme", "dark")));
    /// assert_eq!(jar.take_delta(), ["theme=dark; Path=/"]);
    /// assert!(!jar.add(Cookie::new("theme", "light")), "too late");
    /// assert_eq!(jar.delta(), ["theme=dark; Path=/"]);
    /// assert!(jar.take_delta().is_empty(), "taken already");
    /// ```
    #[must_use]
    pub fn take_delta(&self) -> Vec<String> {
        let mut jar = self.lock();
        if std::mem::replace(&mut jar.sent, true) {
            return Vec::new();
        }
        jar.changes.iter().map(|c| c.header.clone()).collect()
    }
}

/// Calls `f` with the name and value of each cookie in one `Cookie`
/// header, in order, until `f` breaks (and then breaks too).
///
/// Splits at `;` and trims whitespace around names and values like the
/// `cookie` crate's `split_parse` (without percent-decoding), and allocates
/// nothing. Pieces without `=` or with an empty name are skipped; bytes
/// that are not UTF-8 elsewhere in the header do not hide a cookie.
///
/// One deliberate difference: only ASCII whitespace is trimmed (the
/// `cookie` crate also trims `\x0B` and Unicode spaces such as U+00A0).
/// Browsers strip only spaces and tabs, and apply the `__Host-` and
/// `__Secure-` prefix rules to the name as sent: a cookie planted as
/// `\u{A0}__Host-x` (which no browser takes for a prefixed name) must not
/// be read as `__Host-x`.
///
/// A plain loop with a callback, not an iterator: the engine reads the
/// session cookie on every request, and the iterator's state machine was
/// several times the code.
#[inline]
pub(crate) fn each_pair<'h>(
    header: &'h [u8],
    mut f: impl FnMut(&'h [u8], &'h [u8]) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let mut rest = header;
    loop {
        // `memchr` rather than a byte loop: a session cookie's value is
        // about 70 bytes, scanned on every request.
        let (piece, next) = match memchr::memchr(b';', rest) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        // The `=` ends the name, a few bytes in: a plain loop finds it
        // sooner than `memchr`'s set-up.
        if let Some(eq) = piece.iter().position(|&b| b == b'=') {
            let name = piece[..eq].trim_ascii();
            if !name.is_empty() {
                f(name, piece[eq + 1..].trim_ascii())?;
            }
        }
        match next {
            Some(next) => rest = next,
            None => return ControlFlow::Continue(()),
        }
    }
}

/// Calls `f` with the value of each cookie named `name` in one `Cookie`
/// header, in order, until `f` breaks (and then breaks too): [`each_pair`]
/// for one name, which runs on every request that carries cookies. A
/// session cookie padded with Unicode spaces is not found (browsers never
/// send such padding, and our values never verify with it).
#[inline]
pub(crate) fn each_value_named<'h>(
    header: &'h [u8],
    name: &[u8],
    mut f: impl FnMut(&'h [u8]) -> ControlFlow<()>,
) -> ControlFlow<()> {
    each_pair(header, |found, value| {
        if found == name {
            f(value)
        } else {
            ControlFlow::Continue(())
        }
    })
}

/// A name or value the jar keeps: its bytes as text, any that are not
/// UTF-8 replaced by U+FFFD (as the jar read them before: a value with such
/// bytes never verifies, and a plain one reads as it always did).
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The values [`each_value_named`] finds, collected.
#[cfg(test)]
pub(crate) fn values_named<'h>(header: &'h [u8], name: &[u8]) -> Vec<&'h [u8]> {
    let mut found = Vec::new();
    let _ = each_value_named(header, name, |value| {
        found.push(value);
        ControlFlow::Continue(())
    });
    found
}

/// Whether `cookie`'s `Set-Cookie` value carries `Secure`: the `cookie`
/// crate writes it when `secure` is set, for a partitioned cookie, and
/// when `secure` is unset and `SameSite=None`.
fn writes_secure(cookie: &Cookie<'_>) -> bool {
    cookie.secure() == Some(true)
        || cookie.partitioned() == Some(true)
        || cookie.secure().is_none() && cookie.same_site() == Some(cookie::SameSite::None)
}

/// RFC 6265 `cookie-octet`.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// Whether `cookie`'s `Expires`, if any, can be written: an HTTP date is
/// in UTC, and a time at the start of `time`'s range at a positive offset
/// (year −9999, January 1st, early) has no UTC form; the `cookie` crate
/// would panic writing it. (It clamps times past 9999 itself.)
fn expires_writable(cookie: &Cookie<'_>) -> bool {
    cookie.expires_datetime().is_none_or(|at| {
        (time::PrimitiveDateTime::MIN.assume_utc()..=time::PrimitiveDateTime::MAX.assume_utc())
            .contains(&at)
    })
}

/// `cookie`'s `Set-Cookie` value, when it is at most [`MAX_COOKIE_LEN`]
/// bytes (what browsers keep, and the most the jar reads back).
fn fits(cookie: &Cookie<'_>) -> Result<String, CookieError> {
    let header = cookie.to_string();
    if header.len() <= MAX_COOKIE_LEN {
        return Ok(header);
    }
    Err(CookieError::TooLarge {
        name: cookie.name().to_owned(),
        size: header.len(),
        limit: MAX_COOKIE_LEN,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Key;

    /// The engine's side of a jar: the session cookie `id` at `/`, and
    /// `reissue` as [`SessionConfig::with_cookie_reissue`](crate::SessionConfig::with_cookie_reissue).
    fn session_cookie_with(reissue: Option<crate::config::CookieReissue>) -> Arc<SessionCookie> {
        Arc::new(SessionCookie {
            name: "id".to_owned(),
            path: "/".to_owned(),
            domain: None,
            reissue,
            clock: Arc::new(crate::ManualClock::new(TEST_NOW)),
        })
    }

    /// What the jars of these tests take for now.
    const TEST_NOW: time::OffsetDateTime = time::macros::datetime!(2026-01-01 00:00 UTC);

    fn session_cookie() -> Arc<SessionCookie> {
        session_cookie_with(None)
    }

    fn jar(headers: &[&str], keys: &KeyRing) -> Cookies {
        Cookies::from_headers(
            headers.iter().copied(),
            keys.clone(),
            false,
            session_cookie(),
        )
    }

    fn named<'h>(header: &'h str, name: &'h str) -> Vec<&'h str> {
        values_named(header.as_bytes(), name.as_bytes())
            .into_iter()
            .map(|v| std::str::from_utf8(v).unwrap())
            .collect()
    }

    #[test]
    fn values_named_finds_every_cookie_of_the_name_in_order() {
        assert_eq!(named("id=a; theme=dark; id=b", "id"), ["a", "b"]);
        assert_eq!(named("  id =  a  ;theme=dark", "id"), ["a"]);
        assert_eq!(named("id=", "id"), [""]);
        assert_eq!(named("id=a=b", "id"), ["a=b"]);
        assert_eq!(named("xid=a; idx=b; d=id", "id"), Vec::<&str>::new());
        assert_eq!(named("id; =a; ;;", "id"), Vec::<&str>::new());
        assert_eq!(named("id=a", ""), Vec::<&str>::new());
    }

    proptest::proptest! {
        #[test]
        fn values_named_agrees_with_the_cookie_crate_on_any_ascii_header(
            // Few distinct pieces, so that `id=` and its near misses are common.
            header in "(id|i|d|x|=|;| |\t|\"|a|~){0,30}",
        ) {
            let ours = named(&header, "id");
            let theirs: Vec<&str> = Cookie::split_parse(header.as_str())
                .flatten()
                .filter(|c| c.name() == "id")
                .filter_map(|c| c.value_raw())
                .collect();
            proptest::prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn the_jar_reads_at_most_its_limit_of_cookies() {
        let keys = KeyRing::new(Key::generate());
        let many: Vec<String> = (0..MAX_JAR_COOKIES + 5)
            .map(|i| format!("c{i}=v"))
            .collect();
        // Split over two headers, as HTTP/2 clients send them.
        let (first, second) = many.split_at(MAX_JAR_COOKIES - 2);
        let jar = jar(&[&first.join("; "), &second.join("; ")], &keys);
        let last_read = format!("c{}", MAX_JAR_COOKIES - 1);
        assert_eq!(jar.get(&last_read).as_deref(), Some("v"));
        assert_eq!(jar.get(&format!("c{MAX_JAR_COOKIES}")), None);
    }

    #[test]
    fn only_the_first_sixteen_values_of_a_name_are_verified() {
        let keys = KeyRing::new(Key::generate());
        let good = codec::sign(keys.current(), "p", b"ok");
        let sealed = codec::seal(keys.current(), "q", b"ok").unwrap();
        let header = |junk: usize| {
            let mut pairs = vec!["p=s1.AAAA.AAAA; q=p1.AAAA".to_owned(); junk];
            pairs.push(format!("p={good}; q={sealed}"));
            pairs.join("; ")
        };
        let within = jar(&[&header(15)], &keys);
        assert_eq!(within.get_signed("p").as_deref(), Some("ok"));
        assert_eq!(within.get_private("q").as_deref(), Some("ok"));
        let beyond = jar(&[&header(16)], &keys);
        assert_eq!(beyond.get_signed("p"), None);
        assert_eq!(beyond.get_private("q"), None);
    }

    #[test]
    fn values_named_is_not_thrown_off_by_bytes_that_are_not_utf8() {
        let header = b"junk=\xff\xfe; id=s1.abc";
        let found: Vec<&[u8]> = values_named(header, b"id");
        assert_eq!(found, [b"s1.abc".as_slice()]);
    }

    #[test]
    fn values_named_agrees_with_the_cookie_crate() {
        for header in [
            "id=a; b=c",
            "a=1;id=2;id=3",
            " id = x y ; z",
            "id=\"quoted\"; q=1",
            "=id; id==; id=;",
            "id\t=\tv\t",
        ] {
            let ours = named(header, "id");
            let theirs: Vec<&str> = Cookie::split_parse(header)
                .flatten()
                .filter(|c| c.name() == "id")
                .filter_map(|c| c.value_raw())
                .collect();
            assert_eq!(ours, theirs, "{header:?}");
        }
    }

    #[test]
    fn tampered_signed_value_reads_as_none() {
        let keys = KeyRing::new(Key::generate());
        let value = codec::sign(keys.current(), "pref", b"dark");
        let tampered = value.replacen("ZGFyaw", "bGlnaHQ", 1);
        assert_eq!(
            jar(&[&format!("pref={tampered}")], &keys).get_signed("pref"),
            None
        );
        assert_eq!(
            jar(&[&format!("pref={value}")], &keys)
                .get_signed("pref")
                .as_deref(),
            Some("dark")
        );
    }

    #[test]
    fn signed_value_moved_to_another_name_reads_as_none() {
        let keys = KeyRing::new(Key::generate());
        let value = codec::sign(keys.current(), "pref", b"dark");
        assert_eq!(
            jar(&[&format!("other={value}")], &keys).get_signed("other"),
            None
        );
    }

    #[test]
    fn old_key_value_is_reissued_under_the_current_key() {
        let old = Key::generate();
        let keys = KeyRing::new(Key::generate()).with_previous(old.clone());
        let value = codec::sign(&old, "pref", b"dark");
        let jar = jar(&[&format!("pref={value}")], &keys);
        assert_eq!(jar.get_signed("pref").as_deref(), Some("dark"));
        let delta = jar.delta();
        assert_eq!(delta.len(), 1);
        let new_value = delta[0]
            .split(';')
            .next()
            .unwrap()
            .strip_prefix("pref=")
            .unwrap();
        let current_only = KeyRing::new(keys.current().clone());
        assert_eq!(
            codec::verify(&current_only, "pref", new_value).unwrap().0,
            b"dark"
        );
        assert!(delta[0].contains("Path=/"), "{}", delta[0]);
    }

    /// A jar over `keys` whose re-issues go through `hook`.
    fn jar_with_hook(
        headers: &[&str],
        keys: &KeyRing,
        hook: impl Fn(&mut Cookie<'static>) -> bool + Send + Sync + 'static,
    ) -> Cookies {
        Cookies::from_headers(
            headers.iter().copied(),
            keys.clone(),
            false,
            session_cookie_with(Some(crate::config::CookieReissue(Arc::new(hook)))),
        )
    }

    /// The value a `Set-Cookie` header gives the cookie `name`.
    fn cookie_value<'h>(set_cookie: &'h str, name: &str) -> &'h str {
        set_cookie
            .split(';')
            .next()
            .and_then(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("{set_cookie:?} sets no {name}"))
    }

    /// A name with a `__Secure-` or `__Host-` prefix is re-issued with
    /// `Secure` even when the session cookie has none: browsers drop it
    /// otherwise, and once the old key leaves the ring the value is gone.
    #[test]
    fn a_prefixed_name_is_reissued_secure() {
        let old = Key::generate();
        let keys = KeyRing::new(Key::generate()).with_previous(old.clone());
        for name in ["__Secure-pref", "__Host-pref", "__secure-pref"] {
            let value = codec::sign(&old, name, b"dark");
            let jar = jar(&[&format!("{name}={value}")], &keys);
            assert_eq!(jar.get_signed(name).as_deref(), Some("dark"));
            let delta = jar.delta();
            assert_eq!(delta.len(), 1, "{name}");
            assert!(delta[0].contains("; Secure"), "{}", delta[0]);
        }
    }

    /// The configured hook sets the re-issue's attributes, never its name
    /// or value, or stops it; a cookie it makes invalid is not sent.
    #[test]
    fn the_reissue_hook_sets_attributes_or_stops_it() {
        let old = Key::generate();
        let keys = KeyRing::new(Key::generate()).with_previous(old.clone());
        let current_only = KeyRing::new(keys.current().clone());
        let header = |name: &str| format!("{name}={}", codec::sign(&old, name, b"dark"));

        let jar = jar_with_hook(&[&header("pref")], &keys, |cookie| {
            cookie.set_max_age(time::Duration::days(30));
            cookie.set_secure(true);
            cookie.set_name("renamed");
            cookie.set_value("changed");
            true
        });
        assert_eq!(jar.get_signed("pref").as_deref(), Some("dark"));
        let delta = jar.delta();
        assert_eq!(delta.len(), 1);
        assert!(delta[0].contains("Max-Age=2592000"), "{}", delta[0]);
        assert!(delta[0].contains("; Secure"), "{}", delta[0]);
        let value = cookie_value(&delta[0], "pref");
        assert_eq!(
            codec::verify(&current_only, "pref", value).unwrap().0,
            b"dark"
        );

        let jar = jar_with_hook(&[&header("pref")], &keys, |cookie| {
            cookie.set_expires(TEST_NOW + time::Duration::days(1));
            true
        });
        assert_eq!(jar.get_signed("pref").as_deref(), Some("dark"));
        let delta = jar.delta();
        assert!(
            delta[0].contains("Expires=Fri, 02 Jan 2026 00:00:00 GMT"),
            "{}",
            delta[0]
        );

        let jar = jar_with_hook(&[&header("pref")], &keys, |_| false);
        assert_eq!(jar.get_signed("pref").as_deref(), Some("dark"));
        assert!(jar.delta().is_empty(), "{:?}", jar.delta());

        let bad_hooks: [fn(&mut Cookie<'static>); 5] = [
            |cookie| cookie.set_path("app"),
            |cookie| cookie.set_max_age(time::Duration::ZERO),
            |cookie| cookie.set_expires(time::OffsetDateTime::UNIX_EPOCH),
            |cookie| cookie.set_expires(TEST_NOW),
            |cookie| {
                cookie.set_max_age(time::Duration::days(1));
                cookie.set_expires(TEST_NOW - time::Duration::days(1));
            },
        ];
        for bad in bad_hooks {
            let jar = jar_with_hook(&[&header("pref")], &keys, move |cookie| {
                bad(cookie);
                true
            });
            assert_eq!(jar.get_signed("pref").as_deref(), Some("dark"));
            assert!(jar.delta().is_empty(), "{:?}", jar.delta());
        }

        // A private cookie: sealed under the current key with the hook's
        // attributes, its name and value as read.
        let sealed = codec::seal(&old, "plan", b"trial").unwrap();
        let jar = jar_with_hook(&[&format!("plan={sealed}")], &keys, |cookie| {
            cookie.set_same_site(cookie::SameSite::Strict);
            cookie.set_value("changed");
            true
        });
        assert_eq!(jar.get_private("plan").as_deref(), Some("trial"));
        let delta = jar.delta();
        assert_eq!(delta.len(), 1);
        assert!(delta[0].contains("SameSite=Strict"), "{}", delta[0]);
        let value = cookie_value(&delta[0], "plan");
        assert_eq!(
            codec::open(&current_only, "plan", value).unwrap().0,
            b"trial"
        );
    }

    /// Of several values under one name, one under the current key wins
    /// over one under a previous key, wherever it stands; and a value under
    /// a previous key is not re-issued when another under a previous key
    /// verified beside it (a planted value must not be made to outlive the
    /// real one).
    #[test]
    fn several_values_prefer_the_current_key_and_old_ones_are_not_reissued() {
        let old = Key::generate();
        let keys = KeyRing::new(Key::generate()).with_previous(old.clone());
        let planted = codec::sign(&old, "pref", b"planted");
        let real = codec::sign(keys.current(), "pref", b"real");
        let read = jar(&[&format!("pref={planted}; pref={real}")], &keys);
        assert_eq!(read.get_signed("pref").as_deref(), Some("real"));
        assert!(read.delta().is_empty(), "{:?}", read.delta());

        // Two old values that verify: which is the real one is unknown.
        let old_real = codec::sign(&old, "pref", b"old-real");
        let read = jar(
            &[&format!("pref={planted}"), &format!("pref={old_real}")],
            &keys,
        );
        assert_eq!(read.get_signed("pref").as_deref(), Some("planted"));
        assert!(read.delta().is_empty(), "{:?}", read.delta());

        // A stale copy that does not verify does not stop the re-issue.
        let read = jar(&["pref=garbage", &format!("pref={old_real}")], &keys);
        assert_eq!(read.get_signed("pref").as_deref(), Some("old-real"));
        assert_eq!(read.delta().len(), 1, "{:?}", read.delta());

        let sealed_old = codec::seal(&old, "plan", b"old").unwrap();
        let sealed = codec::seal(keys.current(), "plan", b"current").unwrap();
        let read = jar(&[&format!("plan={sealed_old}; plan={sealed}")], &keys);
        assert_eq!(read.get_private("plan").as_deref(), Some("current"));
        assert!(read.delta().is_empty(), "{:?}", read.delta());
    }

    /// A `Path` must start with `/`: browsers ignore any other and use the
    /// request's own path, which could remove the session cookie.
    #[test]
    fn a_path_that_is_not_absolute_is_refused() {
        let keys = KeyRing::new(Key::generate());
        let jar = jar(&["id=x; a=1"], &keys);
        assert!(!jar.add(Cookie::build(("a", "2")).path("x").build()));
        assert!(!jar.remove(Cookie::build("id").path("").build()));
        assert!(!jar.remove(Cookie::build("a").path("app").build()));
        assert!(jar.delta().is_empty(), "{:?}", jar.delta());
        assert!(jar.add(Cookie::build(("a", "2")).path("/x").build()));
    }

    /// Once the adapter took the response's cookies, every change is
    /// refused (`false`) and the response's cookies stay as they were sent;
    /// a read of a cookie under a previous key re-issues nothing more.
    #[test]
    fn changes_after_the_delta_was_taken_are_refused() {
        let old = Key::generate();
        let keys = KeyRing::new(Key::generate()).with_previous(old.clone());
        let value = codec::sign(&old, "pref", b"dark");
        let jar = jar(&[&format!("pref={value}"), "theme=dark"], &keys);
        assert!(jar.add(Cookie::new("a", "1")));
        let sent = jar.take_delta();
        assert_eq!(sent, ["a=1; Path=/"]);

        assert!(!jar.add(Cookie::new("b", "2")));
        assert!(!jar.add(Cookie::new("a", "3")));
        assert!(!jar.add_signed(Cookie::new("c", "4")));
        assert!(!jar.add_private(Cookie::new("d", "5")));
        assert!(!jar.remove(Cookie::build("theme").path("/").build()));
        assert_eq!(jar.get_signed("pref").as_deref(), Some("dark"));
        assert_eq!(jar.get("a").as_deref(), Some("1"));
        assert_eq!(jar.get("theme").as_deref(), Some("dark"));
        assert_eq!(jar.delta(), sent);
        assert!(jar.take_delta().is_empty(), "taken once");
    }

    #[test]
    fn removal_keeps_the_path() {
        let keys = KeyRing::new(Key::generate());
        let jar = jar(&["theme=dark"], &keys);
        jar.remove(Cookie::build("theme").path("/app").build());
        let delta = jar.delta();
        assert!(delta[0].starts_with("theme=;"), "{}", delta[0]);
        assert!(delta[0].contains("Path=/app"), "{}", delta[0]);
        assert!(delta[0].contains("Max-Age=0"), "{}", delta[0]);
    }

    #[test]
    fn invalid_plain_cookies_are_refused_not_sent() {
        let keys = KeyRing::new(Key::generate());
        let jar = jar(&[], &keys);
        assert!(!jar.add(Cookie::new("theme", "dark mode")));
        assert!(!jar.add(Cookie::new("theme", "a;b")));
        assert!(!jar.add(Cookie::new("the me", "dark")));
        assert!(!jar.add(Cookie::new("theme", "line\nbreak")));
        assert!(jar.delta().is_empty());
        assert!(jar.add(Cookie::new("theme", "dark")));
        assert_eq!(jar.delta(), ["theme=dark; Path=/"]);
    }

    #[test]
    fn names_and_attributes_that_would_inject_are_refused_by_every_method() {
        let keys = KeyRing::new(Key::generate());
        let jar = jar(&[], &keys);
        let injected_name = || Cookie::new("x=1; Domain=example.com; y", "v");
        assert!(!jar.add_signed(injected_name()));
        assert!(!jar.add_private(injected_name()));
        assert!(!jar.remove(injected_name()));
        let path = || {
            Cookie::build(("pref", "v"))
                .path("/; Domain=example.com")
                .build()
        };
        let domain = || {
            Cookie::build(("pref", "v"))
                .domain("example.com; Secure")
                .build()
        };
        let control = || Cookie::build(("pref", "v")).path("/a\tb").build();
        for cookie in [path(), domain(), control()] {
            assert!(!jar.add(cookie.clone()));
            assert!(!jar.add_signed(cookie.clone()));
            assert!(!jar.add_private(cookie.clone()));
            assert!(!jar.remove(cookie));
        }
        assert!(jar.delta().is_empty(), "{:?}", jar.delta());
        assert!(jar.add_signed(Cookie::build(("pref", "v; w")).path("/a b").build()));
        assert_eq!(jar.delta().len(), 1);
    }

    #[test]
    fn a_cookie_too_large_for_browsers_is_refused_and_one_that_fits_reads_back() {
        let keys = KeyRing::new(Key::generate());
        let jar = jar(&[], &keys);
        let big = "x".repeat(3100);
        assert!(!jar.add(Cookie::new("plain", "x".repeat(4100))));
        assert!(!jar.add_signed(Cookie::new("pref", big.clone())));
        assert!(!jar.add_private(Cookie::new("secret", big)));
        assert!(jar.delta().is_empty(), "{:?}", jar.delta());

        let fits = "x".repeat(2000);
        assert!(jar.add_signed(Cookie::new("pref", fits.clone())));
        assert!(jar.add_private(Cookie::new("secret", fits.clone())));
        let pairs: Vec<String> = jar
            .delta()
            .iter()
            .map(|header| header.split(';').next().unwrap().to_owned())
            .collect();
        let back = Cookies::from_headers([pairs.join("; ")], keys, false, session_cookie());
        assert_eq!(back.get_signed("pref"), Some(fits.clone()));
        assert_eq!(back.get_private("secret"), Some(fits));
    }

    /// A value under a previous key that verifies, but whose re-issue with
    /// the jar's attributes would pass 4096 bytes, is read and not
    /// re-issued (browsers would drop it).
    #[test]
    fn a_reissue_too_large_for_browsers_is_not_sent() {
        let old = Key::generate();
        let keys = KeyRing::new(Key::generate()).with_previous(old.clone());
        let (text, value) = (2900..3100)
            .map(|n| {
                let text = "x".repeat(n);
                let value = codec::sign(&old, "pref", text.as_bytes());
                (text, value)
            })
            .find(|(_, value)| value.len() <= MAX_COOKIE_LEN && value.len() > MAX_COOKIE_LEN - 20)
            .expect("a value that verifies and leaves no room for attributes");
        let jar = jar(&[&format!("pref={value}")], &keys);
        assert_eq!(jar.get_signed("pref"), Some(text));
        assert!(jar.delta().is_empty(), "{:?}", jar.delta());
    }

    #[test]
    fn the_session_cookie_is_left_to_the_engine() {
        let keys = KeyRing::new(Key::generate());
        // A value the jar's own signing would accept for that name.
        let signed = codec::sign(keys.current(), "id", b"x");
        let jar = jar(&[&format!("id={signed}")], &keys);
        assert_eq!(jar.get_signed("id"), None);
        assert_eq!(jar.get_private("id"), None);
        assert_eq!(jar.get("id"), Some(signed), "its raw value stays readable");
        assert!(!jar.add(Cookie::new("id", "v")));
        assert!(!jar.add_signed(Cookie::new("id", "v")));
        assert!(!jar.add_private(Cookie::new("id", "v")));
        assert!(!jar.remove(Cookie::new("id", "")));
        assert!(!jar.remove(Cookie::build("id").path("/").build()));
        assert!(jar.delta().is_empty(), "{:?}", jar.delta());
        // Another cookie of that name (planted with a Domain, or left at an
        // old Path) can be removed.
        assert!(jar.remove(Cookie::build("id").domain("example.com").build()));
        assert!(jar.remove(Cookie::build("id").path("/old").build()));
        let delta = jar.delta();
        assert_eq!(delta.len(), 2, "both stray cookies are removed: {delta:?}");
        assert!(delta[0].contains("Domain=example.com"), "{delta:?}");
        assert!(delta[1].contains("Path=/old"), "{delta:?}");
    }

    #[test]
    fn changes_of_one_name_at_other_paths_or_domains_are_all_sent() {
        let keys = KeyRing::new(Key::generate());
        let jar = jar(&["cart=a"], &keys);
        assert!(jar.remove(Cookie::build("cart").path("/shop").build()));
        assert!(jar.add_signed(Cookie::build(("cart", "b")).path("/").build()));
        assert_eq!(jar.get_signed("cart").as_deref(), Some("b"), "the latest");
        // The same cookie again: the last change wins, in place.
        assert!(jar.add_signed(Cookie::build(("cart", "c")).path("/").build()));
        // A Domain with a leading dot or in capitals is the same domain.
        assert!(jar.remove(Cookie::build("cart").domain(".Example.com").build()));
        assert!(jar.remove(Cookie::build("cart").domain("example.com").build()));
        let delta = jar.delta();
        assert_eq!(delta.len(), 3, "{delta:?}");
        assert!(delta[0].starts_with("cart=;") && delta[0].contains("Path=/shop"));
        let value = delta[1].split(';').next().unwrap().strip_prefix("cart=");
        assert_eq!(
            codec::verify(&keys, "cart", value.unwrap()).unwrap().0,
            b"c"
        );
        assert!(delta[2].starts_with("cart=;") && delta[2].contains("Domain=example.com"));
        assert_eq!(jar.get("cart"), None, "the latest change is a removal");
    }

    #[test]
    fn an_applications_change_at_another_path_replaces_the_jars_reissue() {
        let old = Key::generate();
        let keys = KeyRing::new(Key::generate()).with_previous(old.clone());
        let value = codec::sign(&old, "pref", b"dark");
        let jar = jar(&[&format!("pref={value}")], &keys);
        assert_eq!(jar.get_signed("pref").as_deref(), Some("dark"));
        assert_eq!(jar.delta().len(), 1, "re-issued at Path=/");
        assert!(jar.add_signed(Cookie::build(("pref", "light")).path("/settings").build()));
        let delta = jar.delta();
        assert_eq!(
            delta.len(),
            1,
            "the old value is not re-issued beside it: {delta:?}"
        );
        assert!(delta[0].contains("Path=/settings"), "{delta:?}");
    }

    #[test]
    fn names_padded_with_unicode_spaces_are_not_the_names_they_pad() {
        let keys = KeyRing::new(Key::generate());
        let signed = codec::sign(keys.current(), "__Host-pref", b"v");
        // A browser takes "\u{A0}__Host-pref" for an unprefixed name, set
        // from anywhere; it must not read as the prefixed one.
        for pad in ["\u{A0}", "\u{2003}", "\u{0B}"] {
            let header = format!("{pad}__Host-pref={signed}; {pad}theme{pad}=dark");
            let jar = jar(&[&header], &keys);
            assert_eq!(jar.get_signed("__Host-pref"), None, "{pad:?}");
            assert_eq!(jar.get("__Host-pref"), None, "{pad:?}");
            assert_eq!(jar.get("theme"), None, "{pad:?}");
        }
        // Spaces and tabs, which browsers send, are trimmed.
        let jar = jar(
            &[&format!(" \t__Host-pref = {signed} ;\ttheme=dark\t")],
            &keys,
        );
        assert_eq!(jar.get_signed("__Host-pref").as_deref(), Some("v"));
        assert_eq!(jar.get("theme").as_deref(), Some("dark"));
    }

    #[test]
    fn same_site_none_needs_secure_as_written() {
        let keys = KeyRing::new(Key::generate());
        let jar = jar(&[], &keys);
        let none = || {
            Cookie::build(("w", "1"))
                .path("/")
                .same_site(cookie::SameSite::None)
        };
        assert!(
            !jar.add(none().secure(false).build()),
            "no Secure is written"
        );
        assert!(!jar.add_signed(none().secure(false).build()));
        assert!(!jar.remove(none().secure(false).build()));
        assert!(jar.delta().is_empty(), "{:?}", jar.delta());
        // Unset, the cookie crate writes Secure for it: a `__Secure-` name
        // is then fine too.
        assert!(jar.add(none().build()));
        let prefixed = Cookie::build(("__Secure-w", "1"))
            .path("/")
            .same_site(cookie::SameSite::None);
        assert!(jar.add_signed(prefixed.build()));
        let delta = jar.delta();
        assert_eq!(delta.len(), 2, "{delta:?}");
        assert!(delta.iter().all(|h| h.contains("; Secure")), "{delta:?}");
    }

    /// An `Expires` at the start of `time`'s range, at a positive offset,
    /// has no UTC form: the `cookie` crate would panic writing it, so the
    /// jar refuses the cookie. The latest date is written. (The re-issue
    /// hook cannot set such a time: it is past, and a re-issue given a
    /// past `Expires` is refused as a removal before this check.)
    #[test]
    fn an_expires_without_a_utc_form_is_refused() {
        let edge =
            time::PrimitiveDateTime::MIN.assume_offset(time::UtcOffset::from_hms(5, 0, 0).unwrap());
        let keys = KeyRing::new(Key::generate());
        let jar = jar(&[], &keys);
        let at =
            |at: time::OffsetDateTime| Cookie::build(("pref", "v")).path("/").expires(at).build();
        assert!(!jar.add(at(edge)));
        assert!(!jar.add_signed(at(edge)));
        assert!(!jar.add_private(at(edge)));
        assert!(jar.delta().is_empty(), "{:?}", jar.delta());
        let far = time::PrimitiveDateTime::MAX.assume_utc();
        assert!(jar.add(at(far)));
        let delta = jar.delta();
        assert!(
            delta[0].contains("Expires=Fri, 31 Dec 9999 23:59:59 GMT"),
            "{delta:?}"
        );
        // A removal writes its own Expires: the one given does not matter.
        assert!(jar.remove(at(edge)));
        let delta = jar.delta();
        assert_eq!(delta.len(), 1, "the removal replaced the add: {delta:?}");
        assert!(delta[0].contains("Expires=Thu, 01 Jan 1970"), "{delta:?}");
    }

    /// A `Domain` that cannot name a host (a port, a path) is refused in
    /// the jar as in the configuration.
    #[test]
    fn a_domain_that_cannot_name_a_host_is_refused_in_the_jar() {
        let keys = KeyRing::new(Key::generate());
        let jar = jar(&[], &keys);
        for domain in ["example.com:8080", "example.com/x", "a..b"] {
            assert!(
                !jar.add(Cookie::build(("pref", "v")).domain(domain).build()),
                "{domain}"
            );
        }
        assert!(jar.delta().is_empty(), "{:?}", jar.delta());
        assert!(jar.add(Cookie::build(("pref", "v")).domain(".example.com").build()));
        assert_eq!(jar.delta().len(), 1);
    }

    #[test]
    fn prefixed_names_follow_their_prefix_rules_in_the_jar_too() {
        let keys = KeyRing::new(Key::generate());
        let jar = jar(&[], &keys);
        assert!(!jar.add_signed(Cookie::build(("__Host-x", "v")).path("/").build()));
        let host = || Cookie::build(("__Host-x", "v")).secure(true);
        assert!(!jar.add_signed(host().path("/app").build()), "no Path=/");
        assert!(!jar.add_signed(host().path("/").domain("example.com").build()));
        assert!(!jar.add(Cookie::build(("__Secure-y", "v")).build()));
        assert!(!jar.add(Cookie::build(("pref", "v")).domain("exa mple.com").build()));
        assert!(jar.delta().is_empty(), "{:?}", jar.delta());
        assert!(jar.add_signed(host().path("/").build()));
        assert!(jar.add(Cookie::build(("__Secure-y", "v")).secure(true).build()));
        assert_eq!(jar.delta().len(), 2);
    }

    /// Another holder of the jar removed the cookie between this read's
    /// look at the values and its re-issue: the removal stands.
    #[test]
    fn a_reissue_does_not_undo_a_change_made_meanwhile() {
        let keys = KeyRing::new(Key::generate());
        let jar = jar(&[], &keys);
        assert!(jar.remove(Cookie::build("remember").path("/").build()));
        jar.reissue("remember", "alice", false);
        jar.reissue("remember", "alice", true);
        let delta = jar.delta();
        assert_eq!(delta.len(), 1);
        assert!(delta[0].starts_with("remember=;"), "{}", delta[0]);
        // With no change of its own name, a re-issue is recorded.
        jar.reissue("pref", "dark", false);
        assert_eq!(jar.delta().len(), 2);
    }

    #[test]
    fn unchanged_jar_emits_nothing() {
        let keys = KeyRing::new(Key::generate());
        let signed = codec::sign(keys.current(), "b", b"2");
        let sealed = codec::seal(keys.current(), "c", b"3").unwrap();
        let jar = jar(&[&format!("a=1; b={signed}; c={sealed}; d=4")], &keys);
        assert_eq!(jar.get("a").as_deref(), Some("1"));
        assert_eq!(jar.get_signed("b").as_deref(), Some("2"));
        assert_eq!(jar.get_private("c").as_deref(), Some("3"));
        assert_eq!(jar.get_signed("d"), None, "not signed");
        assert!(jar.delta().is_empty(), "{:?}", jar.delta());
    }

    #[test]
    fn private_cookie_round_trips_and_hides_its_value() {
        let keys = KeyRing::new(Key::generate());
        let first = jar(&[], &keys);
        first.add_private(Cookie::new("secret", "42"));
        let header = first.delta().remove(0);
        assert!(!header.contains("42;"), "{header}");
        let pair = header.split(';').next().unwrap().to_owned();
        assert_eq!(
            jar(&[&pair], &keys).get_private("secret").as_deref(),
            Some("42")
        );
    }
}
