//! The per-request slot an adapter shares between its middleware and its
//! extractors.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::session::Shared;
use crate::{Cookies, Session, Timestamp};

/// One request's session and cookie jar, each made on first use: what an
/// adapter's middleware puts into the request for its extractors, and
/// finishes after the handler.
///
/// - The first extraction of the session opens it into the slot with
///   [`Engine::open_in`](crate::Engine::open_in); later ones (in another
///   middleware, in the handler) get the same handle from
///   [`session`](Self::session).
/// - The first extraction of the cookie jar makes it with
///   [`Engine::cookies_in`](crate::Engine::cookies_in); later ones get the
///   same jar.
/// - After the handler, [`Engine::finish_slot`](crate::Engine::finish_slot)
///   gives the plan (nothing when there is nothing to do: no extractor
///   opened the session, or it needs no store operation and no cookie), and
///   [`cookies`](Self::cookies) the jar whose
///   [`take_delta`](Cookies::take_delta) to send (taken once: later
///   changes are refused).
///
/// The slot and its session share one allocation, so a request that uses
/// its session allocates once for both, and a request that uses neither
/// costs that one allocation and nothing else: no cookie parsed, no store
/// touched.
///
/// Cloning is cheap; clones share the slot (`Send + Sync`).
///
/// ```
/// use session_core::{CommitNow, Engine, Key, KeyRing, LoadNow, RequestSlot, SessionConfig};
///
/// let engine = Engine::new(SessionConfig::new(KeyRing::new(Key::generate()))).unwrap();
/// // The middleware, before the handler: one slot per request.
/// let mut slot = RequestSlot::new();
///
/// // An extractor: read, load and open, once.
/// let now = engine.timestamp();
/// let incoming = engine.read([&b"theme=dark"[..]]);
/// let LoadNow::Done(loaded) = engine.load_now_at(incoming, now) else {
///     panic!("the memory store answers at once");
/// };
/// let session = engine.open_in(&slot, loaded, now);
/// session.insert("views", &1).unwrap();
/// // A second extraction gets the same session.
/// assert_eq!(slot.session().unwrap().get::<u64>("views").unwrap(), Some(1));
///
/// // The middleware, after the handler (its handles are gone).
/// drop(session);
/// let (plan, now) = engine.finish_slot(&mut slot).expect("opened").unwrap();
/// let CommitNow::Done(Some(set_cookie)) = engine.commit_now_at(plan, now) else {
///     panic!("a new session is stored at once and gets a cookie");
/// };
/// assert!(set_cookie.starts_with("id="));
/// assert!(slot.cookies().is_none(), "no extractor asked for the jar");
/// ```
#[derive(Clone, Default)]
pub struct RequestSlot {
    pub(crate) shared: Arc<Shared>,
}

impl RequestSlot {
    /// An empty slot: no session opened, no jar made.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The session, if an extraction opened it (and the slot was not
    /// finished since).
    #[must_use]
    pub fn session(&self) -> Option<Session> {
        self.shared
            .opened
            .load(Ordering::Acquire)
            .then(|| Session::from_shared(self.shared.clone()))
    }

    /// When the session was opened (the `now` passed to
    /// [`Engine::open_in`](crate::Engine::open_in)), if it was and has not
    /// been finished since.
    #[must_use]
    pub fn opened_at(&self) -> Option<Timestamp> {
        self.shared.lock().opened_at
    }

    /// The request's cookie jar, if an extraction made it.
    #[must_use]
    pub fn cookies(&self) -> Option<&Cookies> {
        self.shared.jar.get()
    }

    /// Whether the response depends on the request's cookies: an
    /// extraction opened the session or made the jar. Ask before
    /// [`Engine::finish_slot`](crate::Engine::finish_slot), which closes
    /// the session.
    ///
    /// Such a response must carry `Vary: Cookie` (see [`vary_names_cookie`]):
    /// without it a shared cache (a CDN, a reverse proxy) may serve one
    /// user's page, and the `Set-Cookie` that came with it, to the next
    /// visitor of that URL. A request that used neither varies on nothing
    /// of ours: its response stays cacheable.
    ///
    /// ```
    /// use session_core::{Engine, Key, KeyRing, RequestSlot, SessionConfig};
    ///
    /// let engine = Engine::new(SessionConfig::new(KeyRing::new(Key::generate()))).unwrap();
    /// let slot = RequestSlot::new();
    /// assert!(!slot.uses_cookies(), "a route that never asked");
    /// let _jar = engine.cookies_in(&slot, [&b"theme=dark"[..]]);
    /// assert!(slot.uses_cookies());
    /// ```
    #[must_use]
    pub fn uses_cookies(&self) -> bool {
        self.shared.opened.load(Ordering::Acquire) || self.shared.jar.get().is_some()
    }
}

/// Whether the `Vary` header values `values` already make a response vary
/// on `Cookie`: one of them lists `Cookie` (in any case) or `*`. When they
/// do not, an adapter adds a `Vary: Cookie` header of its own to a
/// response that [uses cookies](RequestSlot::uses_cookies) (a second `Vary`
/// header is the same as a comma-separated one).
///
/// ```
/// use session_core::vary_names_cookie;
///
/// assert!(!vary_names_cookie([]));
/// assert!(!vary_names_cookie([&b"Accept-Encoding"[..]]));
/// assert!(vary_names_cookie([&b"accept-encoding, cookie"[..]]));
/// assert!(vary_names_cookie([&b"Origin"[..], &b"*"[..]]));
/// assert!(!vary_names_cookie([&b"Cookies"[..]]));
/// ```
pub fn vary_names_cookie<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> bool {
    values.into_iter().any(|value| {
        value.split(|&b| b == b',').any(|name| {
            let name = name.trim_ascii();
            name == b"*" || name.eq_ignore_ascii_case(b"cookie")
        })
    })
}

impl fmt::Debug for RequestSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestSlot")
            .field("opened_at", &self.opened_at())
            .field("cookies", &self.cookies())
            .finish()
    }
}

/// Whether the `Cache-Control` header values `values` already keep a
/// response out of shared caches: one of them holds a bare `private` or
/// `no-store` directive (in any case). A qualified `private="…"` does not
/// count: it keeps only the fields it names out of a shared cache, which
/// may store the rest (RFC 9111, 5.2.2.7); nor does a directive name
/// inside another directive's quoted argument.
///
/// A response that sets a cookie carries a credential (a session id, a
/// sealed session, a signed value): a shared cache that stored it would
/// hand that cookie to every later visitor of the URL, `Vary: Cookie` or
/// not (a first visit carries no cookie, and neither does the next
/// visitor's). So an adapter adds `Cache-Control: private` to a response
/// that sets any cookie, unless this says it is kept out already. A
/// `public` or `s-maxage` the app gave stays, and loses to `private`
/// (RFC 9111: a shared cache must not store a response marked private);
/// the browser's own cache may still keep it. (A CDN that obeys a
/// `CDN-Cache-Control` or `Surrogate-Control` header the app sets reads
/// that one instead: an app that sets one on a response with a cookie
/// must make it private there too.)
///
/// ```
/// use session_core::cache_control_is_private;
///
/// assert!(!cache_control_is_private([]));
/// assert!(!cache_control_is_private([&b"public, max-age=60"[..]]));
/// assert!(cache_control_is_private([&b"max-age=0,\tPrivate"[..]]));
/// assert!(cache_control_is_private([&b"public"[..], &b"no-store"[..]]));
/// // Only the named field is private: the rest may be stored.
/// assert!(!cache_control_is_private([&b"private=\"set-cookie\""[..]]));
/// // A name inside a quoted argument is no directive.
/// assert!(!cache_control_is_private([&b"ext=\"a, private\", max-age=9"[..]]));
/// assert!(!cache_control_is_private([&b"privately"[..]]));
/// ```
pub fn cache_control_is_private<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> bool {
    values.into_iter().any(|value| {
        directives(value).any(|directive| {
            let directive = directive.trim_ascii();
            directive.eq_ignore_ascii_case(b"private")
                || directive.eq_ignore_ascii_case(b"no-store")
        })
    })
}

/// The comma-separated elements of a header value, commas inside quoted
/// strings (with their `\` escapes) left alone.
fn directives(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let text = rest?;
        let (mut quoted, mut escaped) = (false, false);
        for (i, &b) in text.iter().enumerate() {
            match b {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                b',' if !quoted => {
                    rest = Some(&text[i + 1..]);
                    return Some(&text[..i]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(text)
    })
}
