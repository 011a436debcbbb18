//! The conformance suites of `session-core`: two for session stores, two
//! for web-framework adapters (their app over HTTP, and their demo program's
//! start-up). Prove a new store or adapter correct with one line each, and
//! nothing but these docs.
//!
//! - [`store_suite!`] checks a [`SessionStore`](session_core::SessionStore):
//!   load, create, compare-and-set save, delete, take, expiry, that it only
//!   ever sees digests of session ids, large records, concurrent writers of
//!   one session through the core's conflict handling, races of create,
//!   save and take on one key, and what other instances of the store see.
//! - [`store_outage_suite!`] checks that a store whose backend is down
//!   says so: every operation fails with a backend error or a timeout, in
//!   bounded time, rather than answering "no session". Run it for a
//!   stopped backend and for a hung one (its `hold:` form keeps a frozen
//!   server frozen until the check ends).
//! - [`adapter_suite!`] checks an adapter over real HTTP on 127.0.0.1: every
//!   route of the project's demo contract, cookie attributes, the cache
//!   headers (`Vary: Cookie` on responses that used the session or an app
//!   cookie, `Cache-Control: private` on responses that set a cookie),
//!   tampered and garbage cookies, unknown ids, id regeneration, destroy
//!   and logout, idle and absolute expiry on a manual clock, key rotation,
//!   bad bodies, concurrent requests and store failures.
//! - [`startup_suite!`] runs the adapter's demo program as a child process
//!   and checks its start-up: every bad environment value stops it with one
//!   line on stderr naming the variable, the random-key warning, the exact
//!   `listening on http://127.0.0.1:PORT` line, and each store serving
//!   sessions.
//!
//! Each macro expands to a module with one `#[test]` per case, named for the
//! behaviour (`memory_store::create_never_overwrites`), so a failure names
//! what broke and every other case still runs. A case an implementation
//! cannot support, by a capability passed to the macro, is generated with
//! `#[ignore = "why"]`: it shows as ignored, never as a pass. The cases are
//! listed in [`STORE_CASES`] and [`ADAPTER_CASES`]; the macros are generated
//! from the same lists, and this crate's tests check that every case
//! function is listed.
//!
//! # Setup
//!
//! The suites run as your crate's tests: add this crate as a
//! dev-dependency beside `session-core` at the same version (the suites
//! take `session-core`'s types, and two versions of it are two different
//! sets of types; it is re-exported here as [`core`], so
//! `conformance_tests::core` always names the one the suites speak, as
//! the adapters' `session_axum::core` does):
//!
//! ```toml
//! [dev-dependencies]
//! conformance-tests = { path = "conformance-tests" }   # from this repository
//! session-core = { path = "session-core" }
//! # only for a store factory or an adapter harness that needs them:
//! tokio = { version = "1", features = ["rt-multi-thread", "net"] }
//! ```
//!
//! The generated tests are plain `#[test]` functions. Each case builds a
//! Tokio runtime of its own, so call [`store::run`] and [`adapter::run`]
//! yourself only from a plain `#[test]` (or `fn main`), never from inside
//! a runtime (`#[tokio::test]`): Tokio refuses to block on a runtime from
//! within another, and the call panics.
//!
//! # Writing a store
//!
//! A store keeps [`Record`](session_core::Record)s under
//! [`StoreKey`](session_core::StoreKey)s (digests of session ids) and
//! implements four async operations, and a fifth, `take`, in one atomic
//! step (the trait's default is not); the rules are in
//! [`session_core::store`]. Here is a complete store, a map behind a lock
//! that decides expiry with the clock it is given, and the line that runs
//! the whole suite against it. Put it in a test file (`tests/store.rs`) of
//! your crate, with `conformance-tests` as a dev-dependency:
//!
#![doc = concat!("```\n", include_str!("doc/map_store.rs"), "# fn main() {}\n```\n")]
//!
//! `cargo test` then lists `map_store::create_never_overwrites`,
//! `map_store::fifty_concurrent_writers_each_keep_their_own_key`, and every
//! other case of [`STORE_CASES`].
//!
//! The factory is called once per run of a case (a store with an immediate
//! face runs each case twice, below), and again for each more instance a
//! case asks for ([`Subject::another_instance`](store::Subject::another_instance)), with a
//! [`StoreContext`](store::StoreContext); it is async, so it can connect
//! to a server. A store over a shared backend puts the context's
//! [`prefix`](store::StoreContext::prefix) before its keys, so that cases
//! running in parallel never meet; a store whose backend expires records by
//! itself on the wall clock (a Redis `PXAT`) says `expiry: wall_clock`, and
//! one whose instances share that backend says `backend: shared`, so that
//! an instance that cannot see another's records fails rather than passing
//! for an in-process store:
//!
//! ```ignore
//! store_suite!(redis_store, expiry: wall_clock, backend: shared, |ctx| async move {
//!     RedisStore::builder(redis_url()).key_prefix(ctx.prefix()).connect().await.unwrap()
//! });
//! ```
//!
//! A store that also hands out an immediate face
//! ([`SessionStore::immediate`](session_core::SessionStore::immediate), for
//! stores with no I/O) is held to the rules through both faces: the suite
//! sends every other operation of a case to the immediate one, so a record
//! created through one face is loaded, saved and deleted through the other,
//! and runs each case twice on a fresh store, starting once on each face,
//! so that every step of a case meets both.
//!
//! The same factory runs the adapter suite on your store, under any
//! adapter's harness (see "Writing an adapter"), which proves that the
//! store keeps sessions right end to end. There it is called once for each
//! store a case needs, each time with a new prefix, so it must be `Fn`:
//!
//! ```ignore
//! adapter_suite!(axum_on_redis, AxumHarness, storage: store(|ctx| async move {
//!     RedisStore::builder(redis_url()).key_prefix(ctx.prefix()).connect().await.unwrap()
//! }));
//! ```
//!
//! # Writing an adapter
//!
//! An adapter ships a demo app serving every route of the project's demo
//! contract ([`contract`]), built from a [`SessionConfig`](session_core::SessionConfig).
//! Its harness implements [`adapter::Harness`]: serve that app with the
//! config the suite gives, on 127.0.0.1, on a thread and runtime of its own.
//! [`Running::spawn`](adapter::Running::spawn) does the binding, the thread
//! and the shutdown. Two lines then run the suite with a server-side store
//! and in cookie-store mode:
//!
//! ```no_run
//! use conformance_tests::adapter::{Harness, Running};
//! use session_core::{BoxError, SessionConfig};
//!
//! /// The adapter's demo app (here a stub; yours serves every route of
//! /// the demo contract, as `session-axum/examples/demo.rs` does).
//! mod demo {
//!     use axum::{Router, routing::get};
//!     use session_axum::{ConfigError, Session, SessionConfig, SessionLayer};
//!
//!     pub fn app(config: SessionConfig) -> Result<Router, ConfigError> {
//!         let views = |session: Session| async move {
//!             let n = session.update("views", |n: Option<u64>| n.unwrap_or(0).saturating_add(1));
//!             format!("Views: {}", n.unwrap_or_default())
//!         };
//!         Ok(Router::new().route("/views", get(views)).layer(SessionLayer::new(config)?))
//!     }
//! }
//!
//! /// Serves the demo for the conformance suite.
//! struct AxumHarness;
//!
//! impl Harness for AxumHarness {
//!     fn serve(config: SessionConfig) -> Result<Running, BoxError> {
//!         let app = demo::app(config)?;
//!         Ok(Running::spawn(move |listener, shutdown| {
//!             let runtime = tokio::runtime::Builder::new_multi_thread()
//!                 .worker_threads(2)
//!                 .enable_all()
//!                 .build()
//!                 .expect("a tokio runtime");
//!             runtime.block_on(async move {
//!                 listener.set_nonblocking(true).expect("a non-blocking listener");
//!                 let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
//!                 axum::serve(listener, app)
//!                     .with_graceful_shutdown(shutdown)
//!                     .await
//!                     .expect("the server runs");
//!             });
//!         })?)
//!     }
//! }
//!
//! conformance_tests::adapter_suite!(memory_store, AxumHarness, storage: server);
//! conformance_tests::adapter_suite!(cookie_store, AxumHarness, storage: cookie);
//! # fn main() {}
//! ```
//!
//! The harness must pass the config through unchanged: the suite sets the
//! keys, the timeouts, a [`ManualClock`](session_core::ManualClock) it moves
//! to test expiry (it starts at 2030-01-01), and the storage. With
//! `storage: server` that is the suite's own memory store; with
//! `storage: store(factory)` the stores your factory makes, each with a key
//! prefix of its own, as at the end of "Writing a store": a third line runs
//! the suite on a real backend. Either way the suite wraps the store: it
//! learns the keys the servers use, checks records through the store's own
//! `load` (is the record gone after logout?), makes it fail (is that a
//! 500?), and deletes what each case made when it ends. The cases never
//! rely on the store hiding records the manual clock has expired: a store
//! whose backend expires records on the wall clock (a Redis `PXAT`, which
//! keeps the suite's 2030 records alive) passes every case. With
//! `storage: cookie`, cookie-store mode, the cases that need server state
//! are ignored with the reason. The suite's [`Browser`](client::Browser)
//! speaks plain HTTP/1.1, one connection per request.
//!
//! Where the contract's text is silent, or reads otherwise, the suite
//! holds the demo to what the engine does, so that every adapter's demo
//! behaves alike:
//!
//! - a JSON route answers 400 `{"error":"Malformed JSON body"}` to a good
//!   body sent without a JSON `Content-Type` (`application/json` or
//!   `application/*+json`): as `text/plain`, a form, or with none, the
//!   types a page of another origin may send without a preflight
//!   (`malformed_json_gets_400_and_leaves_the_session_unchanged`);
//! - a login starts the absolute lifetime again: it counts from the
//!   session's creation or its last login, the session under its new id
//!   being created then (the contract says "from creation")
//!   (`login_starts_the_absolute_lifetime_again`);
//! - a request that still carries the id from before a login, served
//!   seconds after it, stores nothing and sends no session cookie, which
//!   would replace the login's; a login retried with it goes through
//!   (`a_request_with_the_id_from_before_login_sets_no_cookie`);
//! - a read whose touch the store fails is answered (200, no session
//!   cookie), and the next read touches again
//!   (`a_read_whose_touch_fails_is_answered_and_touched_later`);
//! - responses that used the session or an app cookie carry `Vary: Cookie`,
//!   and responses that set a cookie `Cache-Control: private`;
//! - the order of a `Set-Cookie`'s attributes is free (the `cookie`
//!   crate's order is fine): the cases compare them as a set.
//!
//! One thing a framework may do that no adapter can undo: drop a request
//! header whose value is not UTF-8 before the app sees it (Rocket 0.5
//! does). A session cookie in such a `Cookie` header is then lost; the
//! harness says so with
//! [`Harness::DROPS_NON_UTF8_HEADERS`](adapter::Harness::DROPS_NON_UTF8_HEADERS),
//! and the case that sends one expects no session there.
//!
//! The demo is also a program (`cargo run --example demo`). One more line,
//! in a test file of the adapter's crate, checks what it does with its
//! environment (see [`startup`]):
//!
//! ```ignore
//! conformance_tests::startup_suite!(demo_startup, example: "demo");
//! ```
//!
//! # Running one case
//!
//! Every case is a public function ([`store::cases`], [`adapter::cases`]);
//! [`store::run`], [`adapter::run`] and [`adapter::run_with_store`] run
//! one, returning its [`Outcome`]. This crate's own tests use them to prove that the suites
//! bite: deliberately broken stores and adapters fail the cases that target
//! them.
//!
//! # Features
//!
//! This crate has no cargo features. It depends on `session-core`, `tokio`
//! (each case makes and checks its stores on a runtime of its own),
//! `serde_json`, `time` and `base64` (to look for session data in a
//! cookie);
//! the HTTP client is its own, over `std::net`.

mod failure;
mod macros;
mod registry;

pub mod adapter;
pub mod client;
pub mod contract;
pub mod startup;
pub mod store;

pub use failure::{Failure, Outcome};
pub use registry::{ADAPTER_CASES, Case, Needs, STORE_CASES};
/// The `session-core` the suites are written against: name its types
/// through this path when your crate might see another version.
pub use session_core as core;
