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
    /// Such a response must carry `Vary: Cookie` (see [`vary_names_cookie`](crate::vary_names_cookie)):
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

impl fmt::Debug for RequestSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestSlot")
            .field("opened_at", &self.opened_at())
            .field("cookies", &self.cookies())
            .finish()
    }
}
