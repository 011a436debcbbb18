//! The `Session` and `Cookies` extractors.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::COOKIE;
use axum::http::request::Parts;
use session_core::{LoadNow, SessionError, StoreError};

use crate::error::{MissingLayer, SessionRejection};
use crate::layer::{Shared, SlotHandle};

fn slot(parts: &Parts) -> Option<&SlotHandle> {
    parts.extensions.get::<SlotHandle>()
}

/// The current session, as an axum extractor.
///
/// The first extraction in a request reads the `Cookie` headers, loads the
/// record from the store and applies expiry; later extractions in the same
/// request (in a middleware and in the handler, say) get the same handle.
/// It dereferences to [`session_core::Session`], whose methods are the whole
/// API: [`get`](session_core::Session::get),
/// [`insert`](session_core::Session::insert),
/// [`update`](session_core::Session::update),
/// [`take`](session_core::Session::take),
/// [`remove`](session_core::Session::remove),
/// [`regenerate`](session_core::Session::regenerate),
/// [`destroy`](session_core::Session::destroy)...
///
/// Changes are saved by the [`SessionLayer`](crate::SessionLayer) after the
/// handler returns; there is nothing to call. What the layer saves is the
/// session as it stands when the response is ready: a clone moved into a
/// task that outlives the request (`tokio::spawn`) may still read, but its
/// later changes belong to no request and are not saved (the first one is
/// logged at warn level, so that the loss is not silent).
///
/// Rejects with a [`SessionRejection`]: a 500 when the layer is missing, or
/// the layer's error response when the store fails to load the session.
///
/// ```
/// use axum::Json;
/// use session_axum::Session;
///
/// async fn cart(session: Session) -> Json<Vec<String>> {
///     Json(session.get("cart").ok().flatten().unwrap_or_default())
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Session(session_core::Session);

impl Session {
    /// The core session handle.
    #[must_use]
    pub fn into_inner(self) -> session_core::Session {
        self.0
    }
}

impl Deref for Session {
    type Target = session_core::Session;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl AsRef<session_core::Session> for Session {
    fn as_ref(&self) -> &session_core::Session {
        &self.0
    }
}

impl From<Session> for session_core::Session {
    fn from(session: Session) -> Self {
        session.0
    }
}

/// A handler's session from a core one: for unit tests of a handler,
/// called with [`session_core::Session::detached`] and no router.
///
/// ```
/// use session_axum::Session;
///
/// async fn views(session: Session) -> String {
///     let n = session.update("views", |n: Option<u64>| n.unwrap_or(0) + 1);
///     format!("Views: {}", n.unwrap_or_default())
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let session = session_axum::core::Session::detached();
/// assert_eq!(views(session.clone().into()).await, "Views: 1");
/// assert_eq!(views(session.into()).await, "Views: 2");
/// # });
/// ```
impl From<session_core::Session> for Session {
    fn from(session: session_core::Session) -> Self {
        Self(session)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Everything that needs no waiting happens in a plain function, so
        // this future holds nothing but the boxed load of a store that
        // waits: it stays small for axum to move and box with the handler.
        let load = match extract_now(parts) {
            Extracted::Done(result) => return result,
            Extracted::Wait(load) => load,
        };
        load.await
    }
}

type Extraction = Result<Session, SessionRejection>;

enum Extracted {
    Done(Extraction),
    Wait(Pin<Box<dyn Future<Output = Extraction> + Send>>),
}

/// The extraction, when it can be done at once: the session was opened
/// already, there is no layer, or the store answered at once (the memory
/// store, cookie-store mode, no session cookie).
fn extract_now(parts: &Parts) -> Extracted {
    let Some(handle) = slot(parts) else {
        return Extracted::Done(Err(SessionRejection::missing_layer()));
    };
    if let Some(session) = handle.slot.session() {
        return Extracted::Done(Ok(Session(session)));
    }
    let engine = &handle.shared.engine;
    let now = engine.timestamp();
    let incoming = engine.read(parts.headers.get_all(COOKIE));
    match engine.load_now_at(incoming, now) {
        // Should another extraction have opened the session meanwhile, its
        // handle is the one: `open_in` keeps the first.
        LoadNow::Done(loaded) => {
            Extracted::Done(Ok(Session(engine.open_in(&handle.slot, loaded, now))))
        }
        LoadNow::Failed(error) => Extracted::Done(Err(rejected(&handle.shared, error))),
        LoadNow::Wait(incoming) => {
            let handle = handle.clone();
            Extracted::Wait(Box::pin(async move {
                let engine = &handle.shared.engine;
                match engine.load(incoming).await {
                    // The time the store answered, not when it was asked.
                    Ok(loaded) => Ok(Session(engine.open_in(
                        &handle.slot,
                        loaded,
                        engine.timestamp(),
                    ))),
                    Err(error) => Err(rejected(&handle.shared, error)),
                }
            }))
        }
    }
}

fn rejected(shared: &Arc<Shared>, error: StoreError) -> SessionRejection {
    SessionRejection::load(SessionError::from(error), shared.clone())
}

/// The application's own cookies (plain, signed and private), as an axum
/// extractor.
///
/// It dereferences to [`session_core::Cookies`]: read with
/// [`get`](session_core::Cookies::get),
/// [`get_signed`](session_core::Cookies::get_signed) and
/// [`get_private`](session_core::Cookies::get_private); write with
/// [`add`](session_core::Cookies::add),
/// [`add_signed`](session_core::Cookies::add_signed),
/// [`add_private`](session_core::Cookies::add_private) and
/// [`remove`](session_core::Cookies::remove) (each answers `false` and logs
/// when a cookie cannot be set; the `try_` forms, such as
/// [`try_add`](session_core::Cookies::try_add), answer a
/// [`CookieError`](session_core::CookieError) saying why). A cookie given
/// no `Path` is set at `Path=/`. Signing and encryption use the
/// session's key ring, and a value under a previous key is re-issued under
/// the current one (its attributes:
/// [`SessionConfig::with_cookie_reissue`](session_core::SessionConfig::with_cookie_reissue)).
/// The [`SessionLayer`](crate::SessionLayer) appends one
/// `Set-Cookie` header per changed cookie after the handler returns (with
/// `Cache-Control: private`), and `Vary: Cookie` whenever the jar was
/// extracted, changed or not; a jar kept past that point (moved into a
/// spawned task) refuses further changes (`false`, logged at warn level).
///
/// Every extraction in a request shares one jar. Rejects with
/// [`MissingLayer`] when the layer is not installed.
///
/// ```
/// use session_axum::{Cookie, Cookies};
///
/// async fn set_pref(cookies: Cookies) -> &'static str {
///     cookies.add_signed(Cookie::build(("pref", "compact")).path("/").http_only(true).build());
///     "Signed cookie set"
/// }
///
/// async fn get_pref(cookies: Cookies) -> String {
///     format!("Signed value: {}", cookies.get_signed("pref").as_deref().unwrap_or("none"))
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Cookies(session_core::Cookies);

impl Cookies {
    /// The core jar.
    #[must_use]
    pub fn into_inner(self) -> session_core::Cookies {
        self.0
    }
}

impl Deref for Cookies {
    type Target = session_core::Cookies;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl AsRef<session_core::Cookies> for Cookies {
    fn as_ref(&self) -> &session_core::Cookies {
        &self.0
    }
}

impl From<Cookies> for session_core::Cookies {
    fn from(cookies: Cookies) -> Self {
        cookies.0
    }
}

/// A handler's jar from a core one: for unit tests of a handler, with a
/// jar made by [`Engine::cookies`](session_core::Engine::cookies) from the
/// request's `Cookie` headers.
///
/// ```
/// use session_axum::{Cookie, Cookies, SessionLayer};
///
/// async fn set_theme(cookies: Cookies) -> &'static str {
///     cookies.add(Cookie::new("theme", "dark"));
///     "Theme cookie set"
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let layer = SessionLayer::new(session_axum::SessionConfig::new(session_axum::KeyRing::new(
///     session_axum::Key::generate(),
/// )))
/// .unwrap();
/// let jar = layer.engine().cookies(["theme=light"]);
/// set_theme(jar.clone().into()).await;
/// assert_eq!(jar.delta(), ["theme=dark; Path=/"]);
/// # });
/// ```
impl From<session_core::Cookies> for Cookies {
    fn from(cookies: session_core::Cookies) -> Self {
        Self(cookies)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Cookies {
    type Rejection = MissingLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(handle) = slot(parts) else {
            return Err(MissingLayer::logged());
        };
        let engine = &handle.shared.engine;
        Ok(Self(
            engine.cookies_in(&handle.slot, parts.headers.get_all(COOKIE)),
        ))
    }
}
