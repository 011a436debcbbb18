//! Sessions and signed or private cookies for [axum] 0.8, as a tower
//! [`SessionLayer`] and two extractors, [`Session`] and [`Cookies`].
//!
//! This crate is a thin adapter over [`session_core`] (re-exported as
//! [`core`]), which makes every decision: the cookie format, signing and
//! encryption, key rotation, expiry, when to save, touch, re-issue or clear.
//! The adapter only moves headers in and out and awaits the store.
//!
//! # A complete app
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use session_axum::{Cookie, Cookies, Key, KeyRing, Session, SessionConfig, SessionLayer};
//!
//! /// `Views: N`, counting this session's requests.
//! async fn views(session: Session) -> String {
//!     // `update` is a read-modify-write that concurrent requests cannot lose.
//!     match session.update("views", |n: Option<u64>| n.unwrap_or(0).saturating_add(1)) {
//!         Ok(n) => format!("Views: {n}"),
//!         Err(_) => "Views: ?".to_owned(),
//!     }
//! }
//!
//! /// Logging in: a new session id, so an id planted before cannot be used.
//! async fn login(session: Session) -> &'static str {
//!     session.regenerate();
//!     session.insert("user", "alice").expect("a string is always JSON");
//!     "Logged in"
//! }
//!
//! async fn logout(session: Session) -> &'static str {
//!     session.destroy();
//!     "Logged out"
//! }
//!
//! /// An application cookie, signed with the same keys as the session.
//! async fn remember(cookies: Cookies) -> &'static str {
//!     cookies.add_signed(Cookie::build(("pref", "compact")).path("/").http_only(true).build());
//!     "Remembered"
//! }
//!
//! /// A route that never extracts the session costs no store access.
//! async fn health() -> &'static str {
//!     "ok"
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // 64 bytes as 128 hex digits, e.g. from `openssl rand -hex 64`.
//!     let key = Key::parse(&std::env::var("SESSION_SECRET")?)?;
//!     let config = SessionConfig::new(KeyRing::new(key)).with_secure(true);
//!     let app = Router::new()
//!         .route("/views", get(views))
//!         .route("/login", get(login))
//!         .route("/logout", get(logout))
//!         .route("/remember", get(remember))
//!         .route("/health", get(health))
//!         .layer(SessionLayer::new(config)?);
//!
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! `session-axum/examples/demo.rs` is a larger app: every route of the
//! project's demo contract, configured from environment variables.
//!
//! # One request
//!
//! ```text
//! SessionLayer ── puts a RequestSlot into the request's extensions
//!   └─ handler ── first `Session` extraction: Engine::read + load (store) + open_in
//!   ◀─ response
//! SessionLayer ── if the session was extracted: Engine::finish_slot + commit (store),
//!                 append its Set-Cookie; if `Cookies` was extracted: append the jar's delta;
//!                 if either was: `Vary: Cookie`; if a cookie is set: `Cache-Control: private`
//! ```
//!
//! - **Lazy.** A handler that extracts neither [`Session`] nor [`Cookies`]
//!   costs no cookie parsing, no store access, no `Set-Cookie` and no
//!   `Vary`.
//! - **Safe behind a shared cache.** A response that used the session or
//!   the jar varies on `Cookie`, and one that sets a cookie is marked
//!   `Cache-Control: private` (added to what the handler set, unless that
//!   says a bare `private` or `no-store` already): a CDN or a reverse
//!   proxy never hands one visitor's page or cookie to another. A
//!   `Session` extracted in a middleware around every route makes every
//!   response vary on `Cookie`.
//! - **Nothing to save by hand.** The layer saves after the handler, only
//!   what changed; a read-only request writes nothing (except the
//!   rate-limited touch that keeps the idle timeout rolling, and the
//!   re-issue of a cookie made under a previous key).
//! - **Store failures are 500s, never lost sessions.** A load failure
//!   rejects the extractor; a save failure replaces the handler's response
//!   (a failed touch excepted, which loses nothing: the response goes out
//!   without the session cookie).
//!   Both are logged with `tracing::error!`; choose the response with
//!   [`SessionLayer::with_error_response`]. A handler returns
//!   `Result<_, `[`HandlerError`]`>` to use `?` on the session's
//!   operations, answered with the same response; each such response
//!   carries a [`SessionFailure`] for middleware outside the layer.
//! - **A client that goes away does not cut a save short.** With a store
//!   that must be waited for (Redis), a save still in flight when the
//!   client disconnects (and its response future is dropped) goes on as a
//!   task of its own on the Tokio runtime. (The memory and cookie stores
//!   finish before the response is returned.)
//! - **Anywhere in the router.** The extractors find the layer through the
//!   request's extensions, so routes work under
//!   [`Router::nest`](axum::Router::nest) and
//!   [`Router::merge`](axum::Router::merge), with state, and beside other
//!   layers. An extractor used on a route the layer does not wrap answers
//!   500 with a body that says "SessionLayer is not installed".
//!
//! # Around the whole router
//!
//! [`Router::layer`](axum::Router::layer) wraps every route on its own, and
//! axum then boxes and clones the wrapped route on each request (about 700
//! instructions, some 8 % of a request with a session, counted with
//! `benches/cold-cache.sh`). Wrapping the router once instead skips that,
//! and the demo does so; serve the wrapped router with
//! `into_make_service`:
//!
//! ```no_run
//! use axum::extract::Request;
//! use axum::{Router, ServiceExt, routing::get};
//! // tower's `Layer` trait, re-exported here (or `tower::Layer`).
//! use session_axum::Layer as _;
//! use session_axum::{Key, KeyRing, SessionConfig, SessionLayer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let routes = Router::new()
//!     .route("/health", get(|| async { "ok" }))
//!     // What `axum::serve` does for a bare router, so that the handlers are
//!     // made into routes once rather than on each request.
//!     .with_state(());
//! let layer = SessionLayer::new(SessionConfig::new(KeyRing::new(Key::generate())))?;
//! let app = layer.layer(routes);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, ServiceExt::<Request>::into_make_service(app)).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Configuration
//!
//! Everything is in [`SessionConfig`]: the cookie's name and attributes, the
//! idle and absolute timeouts, the key ring, the storage (in memory, a store
//! such as Redis, or the whole session in an encrypted cookie) and the clock.
//! In tests, give it a [`ManualClock`](core::ManualClock) to move time
//! without sleeping (the example's `datetime!` needs the `time` crate with
//! its `macros` feature among your dev-dependencies):
//!
//! ```
//! use std::sync::Arc;
//! use session_axum::{Key, KeyRing, SessionConfig, SessionLayer};
//! use session_axum::core::ManualClock;
//! use time::{Duration, macros::datetime};
//!
//! let clock = ManualClock::new(datetime!(2030-01-01 0:00 UTC));
//! let layer = SessionLayer::new(
//!     SessionConfig::new(KeyRing::new(Key::generate()))
//!         .with_idle_timeout(Some(Duration::minutes(30)))
//!         .with_clock(Arc::new(clock.clone())),
//! )
//! .unwrap();
//! clock.advance(Duration::minutes(31)); // every session is now idle too long
//! ```
//!
//! One session can have limits of its own, chosen in a handler: a log-in's
//! "remember me" (the session keeps them until they are set again):
//!
//! ```
//! use session_axum::{Lifetime, Session};
//! use time::Duration;
//!
//! async fn login_remembered(session: Session) -> &'static str {
//!     session.regenerate();
//!     session.insert("user", "alice").expect("a string is always JSON");
//!     session.set_lifetime(
//!         Lifetime::default()
//!             .with_idle_timeout(Some(Duration::days(30)))
//!             .with_absolute_timeout(None)
//!             .with_persistent(true),
//!     );
//!     "Logged in for thirty days"
//! }
//! ```
//!
//! # Features
//!
//! This crate has no cargo features. It depends on `axum` with its default
//! features off (your app turns on the ones it serves with: `http1`,
//! `tokio`, ...) and on `tokio`, whose runtime finishes the saves of
//! clients that went away.

/// The engine crate, for what the few re-exports below leave out: a
/// [`ManualClock`](core::ManualClock) for tests, [`Record`](core::Record)
/// and [`StoreKey`](core::StoreKey) for writing a store, the plan types.
pub use session_core as core;
pub use session_core::cookie::Cookie;
pub use session_core::{
    ConfigError, CookieError, Engine, Key, KeyRing, Lifetime, MemoryStore, SameSite, SessionConfig,
    SessionError, SessionStore, Storage, StoreError,
};
/// tower's `Layer` trait, which [`SessionLayer`] implements: in scope, it
/// wraps a whole router at once ([`SessionLayer::layer`](Layer::layer); see
/// "Around the whole router").
pub use tower_layer::Layer;

mod error;
mod extract;
mod layer;

/// The README's Rust examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

pub use error::{HandlerError, MissingLayer, SessionFailure, SessionRejection};
pub use extract::{Cookies, Session};
pub use layer::{ResponseFuture, SessionLayer, SessionService};
