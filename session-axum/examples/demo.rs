//! The demo app of the project's demo contract, served by axum.
//!
//! ```text
//! cargo run -p session-axum --example demo
//! ```
//!
//! It serves every route of the demo contract
//! (`conformance-tests/CONTRACT.md`): session counters, login with id
//! regeneration, a cart, flash messages, plain and signed cookies, on
//! `127.0.0.1:$PORT`, configured by the contract's environment
//! variables through [`EnvSettings`]:
//!
//! ```text
//! PORT=3000 SESSION_SECRET=$(openssl rand -hex 64) SESSION_STORE=memory \
//!     cargo run -p session-axum --example demo
//! curl -i -c jar -b jar http://127.0.0.1:3000/views
//! ```
//!
//! With `SESSION_STORE=redis`, sessions live in the Redis at `REDIS_URL`
//! (default `redis://127.0.0.1:6379`), through `session-redis`: several
//! copies of the demo on different ports share their sessions, and sessions
//! survive a restart of the demo (with the same `SESSION_SECRET`). If Redis
//! cannot be reached at start-up the demo stops with one line naming
//! `REDIS_URL`; if it goes away later, session routes answer 500 (the cause
//! is logged) until it is back, and the cookie routes keep working.
//!
//! ```text
//! SESSION_STORE=redis REDIS_URL=redis://127.0.0.1:6379 SESSION_SECRET=$(openssl rand -hex 64) \
//!     cargo run -p session-axum --example demo
//! ```
//!
//! The router is built by [`app`], which the tests of this crate also call
//! (with a manual clock, rotated keys or a cookie store) and serve over real
//! HTTP.

use std::borrow::Cow;
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Request;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, ServiceExt};
use serde::Serialize;
use serde_json::{Value, json};
use session_axum::Layer as _;
use session_axum::core::cookie::time::Duration;
use session_axum::core::env::{EnvSettings, StoreKind};
use session_axum::{
    ConfigError, Cookie, Cookies, Session, SessionConfig, SessionError, SessionLayer,
    SessionRejection, SessionService,
};
use session_redis::RedisStore;

/// The demo's router, every route of the contract, inside a
/// [`SessionLayer`] made from `config`. Serve it with
/// `ServiceExt::<Request>::into_make_service`.
///
/// The layer wraps the whole router once, rather than through
/// `Router::layer`, which wraps each route on its own and costs a boxed
/// route per request (session-axum's crate docs, "Around the whole
/// router"). Either way every route sees the session.
///
/// # Errors
///
/// The layer's [`ConfigError`] for an unusable configuration.
pub(crate) fn app(config: SessionConfig) -> Result<SessionService<Router>, ConfigError> {
    // Only `/signed/set` needs to know whether cookies are `Secure`: the
    // other routes carry no state, so that axum's per-request clone of a
    // route copies nothing (a route with state is cloned into a new box
    // on every request).
    let signed = Router::new()
        .route("/signed/set", get(set_signed))
        .with_state(SecureCookies(config.secure()));
    let routes = Router::new()
        .route("/views", get(views))
        .route("/set", post(set_user))
        .route("/get", get(get_user))
        .route("/destroy", get(destroy))
        .route("/auth/login", post(login))
        .route("/auth/profile", get(profile))
        .route("/auth/logout", get(logout))
        .route("/cart", get(cart).post(add_to_cart))
        .route("/flash", get(take_flash).post(set_flash))
        .route("/set-theme", get(set_theme))
        .route("/get-theme", get(get_theme))
        .route("/clear-theme", get(clear_theme))
        .route("/signed/get", get(get_signed))
        .merge(signed)
        .fallback(not_found)
        // What `axum::serve` does for a bare router: the handlers are boxed
        // into routes once here, not on every request.
        .with_state(());
    Ok(SessionLayer::new(config)?.layer(routes))
}

/// Builds the runtime and serves. `DEMO_RUNTIME` (not part of the contract;
/// for benchmarks) picks tokio's scheduler: `multi_thread` (the default,
/// sized by `TOKIO_WORKER_THREADS`) or `current_thread`, the shape the
/// benchmark's baseline and peer servers use.
fn main() -> ExitCode {
    let mut builder = match std::env::var("DEMO_RUNTIME").as_deref() {
        Err(_) | Ok("multi_thread") => tokio::runtime::Builder::new_multi_thread(),
        Ok("current_thread") => tokio::runtime::Builder::new_current_thread(),
        Ok(other) => {
            eprintln!("DEMO_RUNTIME: expected multi_thread or current_thread, got {other:?}");
            return ExitCode::FAILURE;
        }
    };
    match builder.enable_all().build() {
        Ok(runtime) => runtime.block_on(serve()),
        Err(error) => {
            eprintln!("cannot start the tokio runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> ExitCode {
    let settings = match EnvSettings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let config = match settings.store {
        // Sessions in Redis: an unreachable Redis stops the demo here, with
        // one line naming the variable to fix.
        StoreKind::Redis => match RedisStore::connect(settings.redis_url.as_str()).await {
            Ok(store) => settings.session_config().with_store(Arc::new(store)),
            Err(error) => {
                eprintln!("REDIS_URL: {error}");
                return ExitCode::FAILURE;
            }
        },
        StoreKind::Memory | StoreKind::Cookie => settings.session_config(),
    };
    // Store failures are logged at error level: show them on stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .init();

    let app = match app(config) {
        Ok(app) => app,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let port = settings.port;
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("PORT: cannot listen on 127.0.0.1:{port}: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Once nothing can stop the start any more, so that a failed start
    // prints exactly one line.
    if let Some(warning) = settings.warning() {
        eprintln!("{warning}");
    }
    println!("listening on http://127.0.0.1:{port}");
    if let Err(error) = axum::serve(listener, ServiceExt::<Request>::into_make_service(app)).await {
        eprintln!("server error: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

// --- session routes ---------------------------------------------------------

async fn views(session: Session) -> Result<String, DemoError> {
    let views = session.update("views", |n: Option<u64>| n.unwrap_or(0).saturating_add(1))?;
    Ok(format!("Views: {views}"))
}

async fn set_user(
    session: Result<Session, SessionRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<&'static str, DemoError> {
    let [user] = json_fields(&headers, &body, ["user"])?;
    let session = session?;
    session.insert("user", &user)?;
    Ok("Session set")
}

/// The body of `GET /get`: `{"user":"..."}`.
#[derive(Serialize)]
struct UserReply {
    user: Cow<'static, str>,
}

async fn get_user(session: Session) -> Json<UserReply> {
    let user = session.get::<String>("user").ok().flatten();
    Json(UserReply {
        user: user.map_or(Cow::Borrowed("No user set"), Cow::Owned),
    })
}

async fn destroy(session: Session) -> &'static str {
    session.destroy();
    "Session destroyed"
}

async fn login(
    session: Result<Session, SessionRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, DemoError> {
    let [username, password] = json_fields(&headers, &body, ["username", "password"])?;
    // Refused before the session is used: wrong credentials are a 401
    // even while the store is down (the extractor has tried to load it by
    // now, and a store failure was logged, but it is not answered here).
    if username != "alice" || password != "password123" {
        return Ok(error(StatusCode::UNAUTHORIZED, "Invalid credentials"));
    }
    let session = session?;
    // A fresh id for the logged-in session (no fixation); the data stays.
    session.regenerate();
    session.insert("auth", &json!({ "username": username }))?;
    Ok(Json(json!({ "message": "Logged in" })).into_response())
}

async fn profile(session: Session) -> Response {
    match session.get_value("auth") {
        Some(user) => Json(json!({ "user": user })).into_response(),
        None => error(StatusCode::UNAUTHORIZED, "Not authenticated"),
    }
}

async fn logout(session: Session) -> Json<Value> {
    session.destroy();
    Json(json!({ "message": "Logged out" }))
}

async fn add_to_cart(
    session: Result<Session, SessionRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Vec<String>>, DemoError> {
    let [item] = json_fields(&headers, &body, ["item"])?;
    let session = session?;
    // `update` replays the push onto a concurrent request's cart instead of
    // overwriting it, so parallel pushes lose nothing.
    let cart = session.update("cart", move |cart: Option<Vec<String>>| {
        let mut cart = cart.unwrap_or_default();
        cart.push(item.clone());
        cart
    })?;
    Ok(Json(cart))
}

async fn cart(session: Session) -> Json<Vec<String>> {
    Json(session.get("cart").ok().flatten().unwrap_or_default())
}

async fn set_flash(
    session: Result<Session, SessionRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<&'static str, DemoError> {
    let [message] = json_fields(&headers, &body, ["message"])?;
    let session = session?;
    session.insert("flash", &message)?;
    Ok("Flash set")
}

async fn take_flash(session: Session) -> Json<Value> {
    let flash = session.take::<String>("flash").ok().flatten();
    Json(json!({ "flash": flash }))
}

// --- plain and signed cookie routes -----------------------------------------

async fn set_theme(cookies: Cookies) -> &'static str {
    cookies.add(
        Cookie::build(("theme", "dark"))
            .max_age(Duration::seconds(900))
            .http_only(true)
            .path("/")
            .build(),
    );
    "Theme cookie set"
}

/// An empty `theme` cookie is no theme.
async fn get_theme(cookies: Cookies) -> String {
    let theme = cookies.get("theme").filter(|theme| !theme.is_empty());
    format!("Current theme: {}", theme.as_deref().unwrap_or("default"))
}

async fn clear_theme(cookies: Cookies) -> &'static str {
    cookies.remove(Cookie::build("theme").path("/").build());
    "Theme cookie cleared"
}

/// Whether the app's cookies carry `Secure`: as the session cookie does
/// (`SESSION_COOKIE_SECURE`).
#[derive(Clone, Copy)]
struct SecureCookies(bool);

/// `pref` gets the attributes the jar gives a cookie it re-issues under the
/// current key, so that a rotation does not change them: `Path=/`,
/// `HttpOnly`, `SameSite=Lax`, and `Secure` as the session cookie has it.
///
/// A value too long for a cookie (its `Set-Cookie` would pass 4096 bytes,
/// which browsers drop) is not set: 400, rather than a "set" that the next
/// `/signed/get` would contradict. (The contract does not name that case.)
async fn set_signed(
    State(SecureCookies(secure)): State<SecureCookies>,
    cookies: Cookies,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> (StatusCode, &'static str) {
    let value = query
        .ok()
        .and_then(|Query(mut query)| query.remove("value"))
        .unwrap_or_default();
    let set = cookies.try_add_signed(
        Cookie::build(("pref", value))
            .path("/")
            .http_only(true)
            .same_site(session_axum::core::cookie::SameSite::Lax)
            .secure(secure)
            .build(),
    );
    match set {
        Ok(()) => (StatusCode::OK, "Signed cookie set"),
        // The client's value: answered, not logged.
        Err(session_axum::CookieError::TooLarge { .. }) => {
            (StatusCode::BAD_REQUEST, "Signed cookie not set")
        }
        Err(error) => {
            tracing::error!(%error, "the signed cookie could not be set");
            (StatusCode::INTERNAL_SERVER_ERROR, "Signed cookie not set")
        }
    }
}

async fn get_signed(cookies: Cookies) -> String {
    let value = cookies.get_signed("pref");
    format!("Signed value: {}", value.as_deref().unwrap_or("none"))
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "Not found")
}

// --- helpers ----------------------------------------------------------------

/// The string fields `names` of a JSON object body, or the contract's 400.
///
/// The body is parsed here rather than by axum's `Json` so that every bad
/// body (malformed, trailing garbage, not an object, a field missing or not
/// a string, a content type that is not JSON or none at all) gets the same
/// answer. A JSON content type is required, as `express.json()` requires
/// it: the types a page of another origin may send without asking first
/// (`text/plain`, a form, or none) are refused, which keeps these routes
/// out of reach of a cross-site form or a `no-cors` fetch.
fn json_fields<const N: usize>(
    headers: &HeaderMap,
    body: &[u8],
    names: [&str; N],
) -> Result<[String; N], DemoError> {
    if !headers.get(CONTENT_TYPE).is_some_and(is_json) {
        return Err(DemoError::MalformedBody);
    }
    let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(body) else {
        return Err(DemoError::MalformedBody);
    };
    let mut fields = names.map(|_| String::new());
    for (field, name) in fields.iter_mut().zip(names) {
        match object.remove(name) {
            Some(Value::String(value)) => *field = value,
            _ => return Err(DemoError::MalformedBody),
        }
    }
    Ok(fields)
}

/// `application/json` or `application/<something>+json`, any parameters.
fn is_json(content_type: &HeaderValue) -> bool {
    let Ok(text) = content_type.to_str() else {
        return false;
    };
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// What a route can fail with.
///
/// The routes with a body take `Result<Session, SessionRejection>` and
/// check the body first: a bad body is the contract's 400 even when the
/// store is down (the session's load failed), and only a good one meets
/// the store's error response.
enum DemoError {
    /// The contract's 400 for a bad body.
    MalformedBody,
    /// The session could not be loaded: the layer's error response (500).
    Load(SessionRejection),
    /// A session value of an unexpected type: cannot happen through these
    /// routes, but answers 500 rather than panicking.
    Session(SessionError),
}

impl From<SessionRejection> for DemoError {
    fn from(rejection: SessionRejection) -> Self {
        Self::Load(rejection)
    }
}

impl From<SessionError> for DemoError {
    fn from(error: SessionError) -> Self {
        Self::Session(error)
    }
}

impl IntoResponse for DemoError {
    fn into_response(self) -> Response {
        match self {
            Self::MalformedBody => error(StatusCode::BAD_REQUEST, "Malformed JSON body"),
            Self::Load(rejection) => rejection.into_response(),
            Self::Session(error) => {
                tracing::error!(%error, "session operation failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
            }
        }
    }
}
