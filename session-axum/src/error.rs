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
            Kind::Load { error, shared } => crate::layer::error_response(&shared, &error),
        }
    }
}
