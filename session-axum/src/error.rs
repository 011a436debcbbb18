//! The response sent when the session store fails, and the rejections of
//! the extractors.

use std::fmt;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use session_core::SessionError;

use crate::layer::Shared;

/// The user's hook that turns a session failure into a response.
pub(crate) type ErrorHook = Arc<dyn Fn(&SessionError) -> Response + Send + Sync>;

/// The default error response: `500 Internal Server Error` with a short
/// plain-text body that says nothing about the cause (which is logged).
pub(crate) fn default_error_response(_: &SessionError) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
}

const MISSING_LAYER: &str = "SessionLayer is not installed: add `.layer(SessionLayer::new(config)?)` \
     to the Router that serves this route";

/// Rejection of the [`Cookies`](crate::Cookies) extractor (and one case of
/// [`SessionRejection`]): the request did not pass through a
/// [`SessionLayer`](crate::SessionLayer).
///
/// Its response is `500 Internal Server Error` with a plain-text body that
/// says "SessionLayer is not installed" and how to install it. It is a
/// programming error, so it is also logged at error level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MissingLayer;

impl MissingLayer {
    pub(crate) fn logged() -> Self {
        tracing::error!("{MISSING_LAYER}");
        Self
    }
}

impl fmt::Display for MissingLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MISSING_LAYER)
    }
}

impl std::error::Error for MissingLayer {}

impl IntoResponse for MissingLayer {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, MISSING_LAYER).into_response()
    }
}

/// Rejection of the [`Session`](crate::Session) extractor.
///
/// Either the [`SessionLayer`](crate::SessionLayer) is missing (see
/// [`MissingLayer`]), or the store failed to load the session. A store
/// failure has already been logged at error level when the rejection is
/// made; its response is the layer's error response (see
/// [`SessionLayer::with_error_response`](crate::SessionLayer::with_error_response)).
///
/// Take `Result<Session, SessionRejection>` in a handler to deal with these
/// cases yourself:
///
/// ```
/// use axum::http::StatusCode;
/// use axum::response::IntoResponse;
/// use session_axum::{Session, SessionRejection};
///
/// // A page that still renders, without the visitor's name, when the
/// // store is down.
/// async fn greeting(session: Result<Session, SessionRejection>) -> impl IntoResponse {
///     match session {
///         Ok(session) => {
///             let name: Option<String> = session.get("name").ok().flatten();
///             (StatusCode::OK, format!("Hello, {}", name.as_deref().unwrap_or("stranger")))
///         }
///         Err(rejection) if rejection.is_missing_layer() => {
///             (StatusCode::INTERNAL_SERVER_ERROR, "SessionLayer is not installed".to_owned())
///         }
///         // Already logged at error level.
///         Err(_) => (StatusCode::OK, "Hello, stranger".to_owned()),
///     }
/// }
/// # let _ = axum::Router::<()>::new().route("/", axum::routing::get(greeting));
/// ```
pub struct SessionRejection {
    kind: Kind,
}

enum Kind {
    MissingLayer,
    Load {
        error: SessionError,
        shared: Arc<Shared>,
    },
}

impl SessionRejection {
    pub(crate) fn missing_layer() -> Self {
        MissingLayer::logged();
        Self {
            kind: Kind::MissingLayer,
        }
    }

    pub(crate) fn load(error: SessionError, shared: Arc<Shared>) -> Self {
        tracing::error!(error = %error, "session could not be loaded from the store");
        Self {
            kind: Kind::Load { error, shared },
        }
    }

    /// Whether the request did not pass through a
    /// [`SessionLayer`](crate::SessionLayer).
    #[must_use]
    pub fn is_missing_layer(&self) -> bool {
        matches!(self.kind, Kind::MissingLayer)
    }

    /// The store's error, when loading the session failed.
    #[must_use]
    pub fn error(&self) -> Option<&SessionError> {
        match &self.kind {
            Kind::MissingLayer => None,
            Kind::Load { error, .. } => Some(error),
        }
    }
}

impl fmt::Debug for SessionRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::MissingLayer => f.write_str("SessionRejection::MissingLayer"),
            Kind::Load { error, .. } => f
                .debug_struct("SessionRejection::Load")
                .field("error", error)
                .finish_non_exhaustive(),
        }
    }
}

impl fmt::Display for SessionRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::MissingLayer => f.write_str(MISSING_LAYER),
            Kind::Load { error, .. } => write!(f, "session could not be loaded: {error}"),
        }
    }
}

impl std::error::Error for SessionRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::MissingLayer => None,
            Kind::Load { error, .. } => Some(error),
        }
    }
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        match self.kind {
            Kind::MissingLayer => MissingLayer.into_response(),
            Kind::Load { error, shared } => crate::layer::error_response(&shared, error),
        }
    }
}

/// A session operation that failed in a handler, as a response: return
/// `Result<_, HandlerError>` and use `?` on the session's
/// [`insert`](session_core::Session::insert),
/// [`get`](session_core::Session::get),
/// [`update`](session_core::Session::update) and
/// [`take`](session_core::Session::take).
///
/// Its response is logged at error level and answered as a store's
/// failure is: with the layer's error response
/// ([`SessionLayer::with_error_response`](crate::SessionLayer::with_error_response);
/// a `500 Internal Server Error` by default), carrying a
/// [`SessionFailure`] in its extensions. What the handler changed in the
/// session before it failed is saved, as for any response.
///
/// ```
/// use session_axum::{HandlerError, Session};
///
/// async fn greet(session: Session) -> Result<String, HandlerError> {
///     let name: Option<String> = session.get("name")?;
///     session.insert("greeted", &true)?;
///     Ok(format!("Hello, {}", name.as_deref().unwrap_or("stranger")))
/// }
/// # let _ = axum::Router::<()>::new().route("/", axum::routing::get(greet));
/// ```
#[derive(Debug)]
pub struct HandlerError(SessionError);

impl HandlerError {
    /// The session's error.
    #[must_use]
    pub fn error(&self) -> &SessionError {
        &self.0
    }

    /// The session's error, owned.
    #[must_use]
    pub fn into_inner(self) -> SessionError {
        self.0
    }
}

impl From<SessionError> for HandlerError {
    fn from(error: SessionError) -> Self {
        Self(error)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a session operation failed in a handler: {}", self.0)
    }
}

impl std::error::Error for HandlerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl IntoResponse for HandlerError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "a session operation failed in a handler");
        let mut response = default_error_response(&self.0);
        response.extensions_mut().insert(SessionFailure {
            error: Arc::new(self.0),
            answered: false,
        });
        response
    }
}

/// The session failure an error response answers, in its extensions:
/// every response the layer makes for a session it could not load or save
/// (a store that failed, data too large or too deep, no random bytes for
/// an id) and for a handler's [`HandlerError`]. Middleware outside the
/// layer, which sees the request, can shape the error page by it (JSON
/// for `/api`, a `Retry-After`), where the layer's error hook sees only
/// the error.
///
/// ```
/// use axum::{Router, middleware, response::Response, routing::get};
/// use session_axum::{Key, KeyRing, SessionConfig, SessionFailure, SessionLayer};
///
/// async fn retry_later(mut response: Response) -> Response {
///     if response.extensions().get::<SessionFailure>().is_some() {
///         response
///             .headers_mut()
///             .insert("retry-after", axum::http::HeaderValue::from_static("5"));
///     }
///     response
/// }
///
/// let layer = SessionLayer::new(SessionConfig::new(KeyRing::new(Key::generate()))).unwrap();
/// let app: Router = Router::new()
///     .route("/", get(|| async { "home" }))
///     .layer(layer)
///     .layer(middleware::map_response(retry_later));
/// ```
#[derive(Clone, Debug)]
pub struct SessionFailure {
    error: Arc<SessionError>,
    /// Whether a layer's error hook made the response (a handler's
    /// [`HandlerError`] is not, until the layer sees it).
    answered: bool,
}

impl SessionFailure {
    pub(crate) fn answered(error: Arc<SessionError>) -> Self {
        Self {
            error,
            answered: true,
        }
    }

    pub(crate) fn is_answered(&self) -> bool {
        self.answered
    }

    pub(crate) fn shared_error(&self) -> Arc<SessionError> {
        self.error.clone()
    }

    /// The error the response answers (already logged).
    #[must_use]
    pub fn error(&self) -> &SessionError {
        &self.error
    }
}
