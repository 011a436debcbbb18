//! The session engine: everything about cookies and sessions that does not
//! depend on a web framework, an async runtime or a clock.
//!
//! `session-core` decides; adapters (`session-axum`, and the planned
//! `session-actix` and `session-rocket`) carry. It parses `Cookie` headers, verifies and signs
//! session ids, encrypts cookie-store sessions, applies idle and absolute
//! expiry, tracks what a handler changed, and hands back a [`Plan`]: which
//! store operation to run and which `Set-Cookie` to send. It performs no
//! I/O of its own except through the [`SessionStore`] it is given and
//! spawns nothing. Time comes from the [`Clock`] in its config (the
//! deciding steps, `open` and `finish`, take `now` as an argument), so
//! every rule is unit-tested without a server and expiry is tested without
//! sleeping, on a [`ManualClock`].
//!
//! ```text
//!            ┌──────────────── session-core (no I/O) ─────────────────┐
//! Cookie ──▶ │ read ─▶ Incoming ─▶ load* ─▶ Loaded ─▶ open(now) ─▶ Session ──▶ handler
//!            │                                                        │           │
//! Set-Cookie◀│ commit* ◀─ Plan ◀─ finish(now) ◀────────── Session ◀───┼───────────┘
//!            └────────────────────────────────────────────────────────┘
//!             * async: awaits the SessionStore, nothing else
//! ```
//!
//! # For application developers
//!
//! Use an adapter; this crate's types ([`Session`], [`Cookies`],
//! [`SessionConfig`], [`Key`]) are what its extractors hand you.
//!
//! ```
//! use session_core::{Engine, Key, KeyRing, SameSite, SessionConfig};
//! use time::Duration;
//!
//! // Keep the key secret and stable: 64 random bytes, e.g. from
//! // `openssl rand -hex 64`, parsed with Key::parse.
//! let config = SessionConfig::new(KeyRing::new(Key::generate()))
//!     .with_secure(true)
//!     .with_same_site(SameSite::Lax)
//!     .with_idle_timeout(Some(Duration::minutes(30)))
//!     .with_absolute_timeout(Some(Duration::hours(12)));
//! // The engine checks the configuration once, at start.
//! let engine = Engine::new(config).expect("a valid configuration");
//! assert_eq!(engine.config().expiry().idle(), Some(Duration::minutes(30)));
//! ```
//!
//! Those limits hold for every session unless one is given its own with
//! [`Session::set_lifetime`] (a [`Lifetime`]: "remember me" at log-in).
//!
//! # For adapter authors: the calling order
//!
//! Per request, with `engine: Engine` built once from a [`SessionConfig`]:
//!
//! 1. `let incoming = engine.read(cookie_header_values);` — never fails.
//! 2. `let loaded = engine.load(incoming).await?;` — a [`StoreError`] here
//!    is a 500, logged; never "no session". [`Engine::load_now`] first spares
//!    the common case (memory store, cookie-store mode, no session cookie)
//!    the future: [`LoadNow::Done`], [`LoadNow::Failed`] (as an error of
//!    `load`), or the cookies back for `load`.
//! 3. `let session = engine.open(loaded, engine.timestamp());` — give the
//!    handler clones of `session`.
//! 4. After the handler: `let plan = engine.finish(&session, now)?;`, with
//!    the `now` of step 3 (one clock read per request). A session changed
//!    after this is not saved; an adapter that keeps a [`RequestSlot`]
//!    instead (below) gets such changes logged.
//! 5. `if let Some(set_cookie) = engine.commit(plan).await? { append it }`
//!    — on error answer 500, log it, and send no `Set-Cookie` at all.
//!    Add `Vary: Cookie` to the response (it used the session), and
//!    `Cache-Control: private` when it sets a cookie (see the rules
//!    below). Adapters
//!    that want to spare the common case a boxed future call
//!    [`Engine::commit_now`] first: with the memory store, in cookie-store
//!    mode or for a plan with no store work it is done at once
//!    ([`CommitNow::Done`], or [`CommitNow::Failed`] as an error of
//!    `commit`); otherwise the plan comes back for `commit`.
//! 6. For the app's own cookies, `engine.cookies(cookie_header_values)`
//!    gives a [`Cookies`] jar; append every value of `jar.take_delta()`.
//!
//! A middleware that hands the session to extractors keeps a
//! [`RequestSlot`] per request instead of a session: the first extraction
//! opens the session into it ([`Engine::open_in`], steps 1–3), later ones
//! get the same handle ([`RequestSlot::session`]), the jar is made once by
//! [`Engine::cookies_in`], and after the handler [`Engine::finish_slot`]
//! gives the plan of step 4 and its `now` (nothing when there is nothing
//! to do: no extractor opened the session, or it needs no store operation
//! and no cookie). The slot and its session share one allocation.
//!
//! An adapter **must**: add `Cookie` to the `Vary` header of every response
//! whose request opened the session or the jar
//! ([`RequestSlot::uses_cookies`], [`vary_names_cookie`]), and
//! `Cache-Control: private` to every response that sets a cookie
//! ([`cache_control_is_private`]), so that no shared cache hands either to
//! another visitor; take `now` from
//! [`Engine::timestamp`] (or
//! [`Engine::now`]; both read the configured clock, so tests can use a
//! [`ManualClock`]); pass every `Cookie` header value, raw bytes and all;
//! run steps 1–3 lazily, only when the handler asks for the session; turn
//! every error of steps 2, 4 and 5 into a 500 with the cause logged (the
//! response of a failed step 4 or 5 replaces the handler's and carries no
//! `Set-Cookie` at all: the jar's cookies were made for the response that
//! failed, and the conformance suite checks it);
//! let a commit that has started run to its end even when the framework
//! drops the response future (a client that went away): spawn the rest on
//! the runtime, as session-axum does, since with a store that waits the
//! requests of one session grouped behind it fail with
//! [`SessionError::SaveInterrupted`] otherwise.
//! An adapter **must not**: decide anything itself (when to save, expire,
//! clear or re-issue is [`Engine::finish`]'s job); send the plan's cookie
//! before its store operation succeeded; swallow a store error. If an
//! adapter needs something this API does not give, that is a bug here.
//!
//! # For store authors
//!
//! A store keeps [`Record`]s under [`StoreKey`]s: implement
//! [`SessionStore`] (the [`store`] module shows a complete one, and its
//! rules) and prove it with the store suite of the `conformance-tests`
//! crate. A record's data is a [`Data`]: string keys to JSON values, kept
//! sorted, serialized as a JSON object and convertible to and from a
//! `serde_json::Map`; [`Record::to_bytes`] and [`Record::from_bytes`] are a
//! portable encoding of the whole record.
//!
//! # Security model
//!
//! - **Keys.** A 64-byte master [`Key`]; HKDF-SHA256 derives a signing key and
//!   an encryption key from it. A [`KeyRing`] signs and encrypts with its
//!   current key and accepts the previous ones.
//! - **Session cookie, server-side stores.** Its value is the 128-bit random
//!   [`SessionId`] signed with HMAC-SHA256 over a format version, the cookie
//!   name and the id ([`codec::sign`]); verification is constant-time. A
//!   value signed for another cookie name never verifies.
//! - **Stores see digests.** Records are keyed by [`StoreKey`], a SHA-256
//!   digest of the id: a dump of the store holds no usable cookie.
//! - **Cookie-store mode.** The whole record (its times and its data, in a
//!   compact binary form) is encrypted with AES-256-GCM, a random 96-bit
//!   nonce, and the cookie name as associated data ([`codec::seal`]'s
//!   format). It cannot be revoked: after `destroy` or logout a
//!   copy of the old cookie stays valid until its own deadlines pass. See
//!   [`Storage::Cookie`].
//! - **Expiry** is enforced from the record's timestamps (inside the
//!   encrypted cookie in cookie-store mode), never from the cookie's
//!   `Max-Age`.
//! - **Fixation.** Ids the store does not know are never adopted, and
//!   [`Session::regenerate`] moves the data to a fresh id at log-in.
//! - **Bad cookies** (tampered, truncated, oversized, not UTF-8, garbage)
//!   are "no session", never an error page; the reason is a [`CodecError`]
//!   logged with `tracing` at debug level. Of several session cookies (a
//!   browser may hold more than one, for other paths or domains), the first
//!   that verifies, loads and has not ended wins (else the first that
//!   verifies and loads), in cookie-store mode the live one sealed last;
//!   at most [`MAX_SESSION_COOKIES`] that
//!   verify are kept, and after 16 that do not the rest are not looked at.
//!   A `__Host-` cookie name keeps other subdomains from adding any
//!   ([`SessionConfig::with_cookie_name`]).
//! - **Bounded growth.** The built-in memory store frees expired records,
//!   can cap the live ones ([`SessionConfig::with_max_sessions`]), and, like
//!   the Redis store, keeps no record over 1 MiB
//!   ([`SessionConfig::with_max_record_size`]): a client that keeps adding
//!   to its session gets a 500 once it reaches the limit, and the session
//!   keeps what it had.
//!
//! # Key rotation
//!
//! 1. Generate a new key; deploy with `KeyRing::new(new).with_previous(old)`
//!    (in the demos: `SESSION_SECRET=new SESSION_PREVIOUS_SECRETS=old`).
//! 2. Every cookie under the old key is accepted and re-issued under the new
//!    one on its next request, even a read-only one. (Except a cookie
//!    that, re-issued, would pass [`MAX_COOKIE_LEN`]: a cookie-store
//!    session whose cookie's attributes grew since it was issued (logged
//!    at warn level), or an app's signed or private cookie near the limit
//!    (logged at error level). It stays readable while its key is in the
//!    ring.)
//! 3. Once no session issued under the old key can still be alive, drop
//!    the old key: after the absolute lifetime, or the idle timeout where
//!    there is no absolute one, and after the longest lifetime the app
//!    gives any session itself ([`Session::set_lifetime`], a thirty-day
//!    "remember me" say). Cookies still under it then read as
//!    "no session".
//!
//! On several servers, step 1 is two deploys. While a deploy rolls out,
//! servers with the new ring re-issue cookies under the new key, and
//! servers still on the old ring cannot read them: their users would
//! read as logged out there, and a write would start a new session over
//! theirs. So first deploy the new key as a previous one,
//! `KeyRing::new(old).with_previous(new)` (`SESSION_SECRET=old
//! SESSION_PREVIOUS_SECRETS=new`): every server then reads cookies under
//! either key, and still signs with the old one. Once every server runs
//! that, deploy `KeyRing::new(new).with_previous(old)` as in step 1. (While
//! the second deploy rolls out, a cookie may be re-issued back and forth
//! between the two keys; each server reads both.)
//!
//! A key that leaked is not rotated this way: keeping it as a previous key
//! would re-issue, under the new key, every cookie forged with it (in
//! cookie-store mode a whole forged session, with any data and lifetime
//! it likes). Replace it outright (`KeyRing::new(new)` alone): every
//! session ends, which is what a leak calls for.
//!
//! One key, one engine: the session cookie and the app's cookies of one
//! engine are told apart by their names (the jar refuses the session
//! cookie's name), but an engine knows nothing of another's. Two engines
//! (two apps on one site, two layers in one app) that share a key must
//! not let one's jar write a cookie under the other's session cookie name:
//! in cookie-store mode, a private cookie sealed under that name with
//! content a client chose would open as a session. Give each its own key.
//!
//! How often: in cookie-store mode every write and every touch of a session
//! seals the cookie again, and so does every [`Cookies::add_private`]. Each
//! seal is one AES-256-GCM encryption under the current key with a random
//! 96-bit nonce, and one key should make at most 2³² of them (NIST SP
//! 800-38D's bound for random nonces, which keeps the odds of a repeated
//! nonce, which would expose that key's authentication, below 2⁻³²). A
//! site that seals a thousand cookies a second reaches that in about seven
//! weeks: rotate the key well within the bound (monthly at that rate). The
//! signed id cookie of the memory and Redis stores has no such limit.
//!
//! # Concurrency
//!
//! Records carry a version; [`SessionStore::save`] is compare-and-set. When
//! two requests of one session change it at once, the later save meets a
//! conflict and the engine replays its changes (per key; [`Session::update`]
//! closures are re-run on the fresh value) onto the stored record, a
//! bounded number of times. So concurrent requests lose nothing with a
//! server-side store; cookie-store mode cannot merge (the browser keeps the
//! last cookie it receives). With a store that waits (Redis), the saves of
//! one session within a process also queue behind each other, and those
//! that queue while one is in flight are saved together in one
//! compare-and-set; with the memory store a save takes well under a
//! microsecond and happens at once ([`ImmediateStore`]).
//!
//! # Features
//!
//! This crate has no optional features: everything above is always built.
//! Its dependencies are the RustCrypto crates (`hmac`, `sha2`, `hkdf`,
//! `aes-gcm`, `subtle`), `cookie`, `base64`, `hex`, `getrandom`, `rand`
//! (its ChaCha12 `StdRng`, per thread in [`ThreadRandom`]), `serde`,
//! `serde_json`, `smallvec` and `compact_str` (small collections and keys
//! kept inline), `itoa` and `memchr` (number formatting and byte search),
//! `time`, `thiserror`, `tracing`, `async-trait`, `async-lock` (a
//! runtime-agnostic mutex), `forkguard` (a per-thread random generator is
//! reseeded in a forked child) and, on Linux and Android, `nix` (the
//! kernel's coarse real-time clock for [`SystemClock`]): no async
//! runtime, no web framework, no HTTP types.

/// Re-exported so that stores implement [`SessionStore`] without adding the
/// dependency themselves.
pub use async_trait::async_trait;
/// The `cookie` crate, whose [`Cookie`](cookie::Cookie) type [`Cookies`] takes.
pub use cookie;
/// The `time` crate, whose `OffsetDateTime` and `Duration` the API takes.
pub use time;

mod caching;
mod clock;
pub mod codec;
mod config;
mod cookies;
pub mod data;
mod engine;
pub mod env;
mod error;
mod expiry;
mod finite;
mod id;
mod key;
mod lanes;
mod lifetime;
mod moved;
mod plan;
mod record;
mod session;
mod slot;
pub mod store;
mod timestamp;
mod verified;

pub use caching::{cache_control_is_private, vary_names_cookie};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{MAX_VERIFIED_CACHE, SameSite, SessionConfig, Storage};
pub use cookies::{Cookies, MAX_JAR_COOKIES};
pub use data::Data;
pub use engine::{
    CommitNow, Engine, Incoming, LoadNow, Loaded, MAX_COOKIE_LEN, MAX_SESSION_COOKIES,
};
pub use error::{BoxError, CodecError, ConfigError, CookieError, SessionError, StoreError};
pub use expiry::Expiry;
pub use id::{ID_LEN, OsRandom, RandomSource, SequenceRandom, SessionId, StoreKey, ThreadRandom};
pub use key::{KEY_LEN, Key, KeyMatch, KeyRing};
pub use lifetime::Lifetime;
pub use plan::{Changes, CookieOp, Executed, Plan, StoreOp};
pub use record::{MAX_DATA_DEPTH, Record};
pub use session::Session;
pub use slot::RequestSlot;
pub use store::{DEFAULT_MAX_RECORD_SIZE, ImmediateStore, MemoryStore, SaveOutcome, SessionStore};
pub use timestamp::Timestamp;
