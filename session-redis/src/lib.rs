//! A [`SessionStore`](session_core::SessionStore) on Redis and Redis
//! Cluster, for apps that run on more than one server.
//!
//! Every web server behind the load balancer points its session engine at
//! the same Redis; a session started on one is read and written on any
//! other. When one Redis is not enough, the same store runs on a Redis
//! Cluster.
//!
//! - **One round trip per operation.** Loading a session is one `GET`,
//!   creating one a `SET … NX`, saving one a server-side script that
//!   compares versions and writes in one step, deleting one a `DEL`, taking
//!   one (the old record at a log-in) another script. So with `session-axum`, a
//!   read-only request costs one round trip, a request that changes the
//!   session two, a new session one, a log-in three.
//! - **Nothing lost, nothing resurrected.** Saves are compare-and-set on the
//!   record's version: concurrent requests of one session are merged by the
//!   engine, and a save never brings back a session that was logged out or
//!   expired meanwhile.
//! - **Redis frees abandoned sessions.** Every record carries a Redis
//!   expiry (`PXAT`) at the session's deadline (its last live millisecond).
//! - **Bounded waits.** Connecting and every command have timeouts; a Redis
//!   that is down or hung fails requests quickly with a
//!   [`StoreError`](session_core::StoreError) the adapter answers with a
//!   500, and the store reconnects by itself when Redis is back. The
//!   timeout is per command, not per request: a request sends a few (its
//!   load, its save, a second command when a create meets an existing key
//!   or the script cache was flushed, one save per conflict retry), and a
//!   save may first wait for the one ahead of it in its session's lane
//!   (see `session_core`'s "Concurrency"), so against a hung Redis a
//!   request fails within a few command timeouts.
//!
//! # Set-up
//!
//! ```toml
//! [dependencies]
//! session-redis = { path = "session-redis" }   # from this repository
//! session-axum = { path = "session-axum" }
//! ```
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use session_axum::{Key, KeyRing, SessionConfig};
//! use session_redis::RedisStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::builder("redis://127.0.0.1:6379")
//!     .key_prefix("myapp:session:")             // default "session:"
//!     .connect_timeout(Duration::from_secs(2))  // the default
//!     .command_timeout(Duration::from_secs(1))  // the default
//!     .connect()
//!     .await?;
//! let key = Key::parse(&std::env::var("SESSION_SECRET")?)?;
//! let config = SessionConfig::new(KeyRing::new(key)).with_store(Arc::new(store));
//! // session_axum::SessionLayer::new(config)?, and so on: see the adapter.
//! # let _ = config;
//! # Ok(()) }
//! ```
//!
//! Every server must use the same key ring (`SESSION_SECRET`) and the same
//! prefix. [`RedisStore::connect`] fails at start-up when Redis cannot be
//! reached, so a misconfigured server stops instead of serving 500s.
//!
//! The URL is the `redis` crate's: `redis://[[user]:password@]host[:port][/db]`,
//! with `?protocol=resp2` to turn off RESP3 (used by default, see
//! [`RedisStoreBuilder::connect`]). For special credentials or a retry
//! policy of your own, build a
//! [`ConnectionManager`](redis::aio::ConnectionManager) or
//! [`ClusterConnection`](redis::cluster_async::ClusterConnection) with the
//! re-exported [`redis`] crate (enabling the features you need on your own
//! `redis` dependency of the same version) and pass it to
//! [`RedisStoreBuilder::from_connection_manager`] or
//! [`RedisStoreBuilder::from_cluster_connection`].
//!
//! # TLS
//!
//! Managed Redis services often accept only TLS connections. Turn on the
//! `tls` feature and give `rediss://` URLs:
//!
//! ```toml
//! session-redis = { path = "session-redis", features = ["tls"] }
//! ```
//!
//! ```text
//! rediss://:password@my-redis.example.com:6380
//! ```
//!
//! - The server's certificate is checked against the system's root
//!   certificates (read by `rustls-native-certs` at every connection) and
//!   the URL's host name, unless `RedisStoreBuilder::tls_root_certificates`
//!   gives the authorities to trust instead (a private CA). A certificate
//!   that does not check out fails [`connect`](RedisStoreBuilder::connect)
//!   with [`ConnectError::Unreachable`] and the reason ("invalid peer
//!   certificate: UnknownIssuer", say). The `redis` crate reads the system's
//!   certificates even when you give your own, and an unreadable system
//!   store (a bad `SSL_CERT_FILE`) fails the connection either way.
//! - `RedisStoreBuilder::tls_client_certificate` presents a client
//!   certificate to a Redis that asks for one (`tls-auth-clients yes`).
//!   Certificates that hold no certificate, or a key that does not go with
//!   its certificate, fail at start-up with
//!   [`ConnectError::TlsCertificates`].
//! - The checks are never turned off: a URL ending in `#insecure` is
//!   refused with [`ConnectError::Config`].
//! - It runs on rustls. An application that wants another crypto provider
//!   installs it as the process default (`CryptoProvider::install_default`)
//!   before connecting; otherwise the store installs ring's, and a later
//!   `install_default` of the application's returns an error.
//! - Without the feature, a `rediss://` URL fails at start-up with
//!   [`ConnectError::Config`] saying so (unless your own dependency on the
//!   `redis` crate turns on one of its TLS features, which the store then
//!   uses as it is).
//! - A cluster's nodes are all `rediss://` or all `redis://`; with TLS, the
//!   nodes must announce names or addresses their certificates hold: Redis'
//!   `tls-cluster yes`, and for host names `cluster-announce-hostname` with
//!   `cluster-preferred-endpoint-type hostname`.
//!
//! The store needs Redis 6.2 or newer (or a compatible server such as
//! Valkey), for `PXAT`, and the commands `GET`, `SET`, `DEL`,
//! `EVALSHA`, `EVAL` and `SCRIPT LOAD`, and on a Redis Cluster
//! `CLUSTER SLOTS` too, for the cluster client's slot map, and `PING`
//! for [`RedisStore::ping`] (mind them in ACLs). This
//! crate's own tests need Redis 7 (they read expiries with
//! `PEXPIRETIME`).
//!
//! # Key layout and value format
//!
//! One session is one Redis string:
//!
//! ```text
//! key:    <prefix><64 lowercase hex digits>      session:9f86d081884c7d65…
//! value:  <"n" as 16 lowercase hex digits>:<record JSON>
//!         0000000000000003:{"v":1,"c":1767225600000,"s":1767225900000,"e":1767229500000,"n":3,"d":{"views":4}}
//! expiry: PXAT <"e" - 1>                         (no expiry when "e" is absent)
//! ```
//!
//! - The hex digits are the session's [`StoreKey`](session_core::StoreKey):
//!   a SHA-256 digest of the id in the cookie (after a fixed tag: compute
//!   it with [`SessionId::store_key`](session_core::SessionId::store_key)), never the id itself, so a
//!   dump of Redis holds no cookie that would log anyone in.
//! - The value starts with a fixed-width version header: the record's
//!   version `n` (which compare-and-set saves count up) as 16 lowercase hex
//!   digits, then `:`. The save script compares these 17 bytes and never
//!   decodes the JSON. A value without a valid header is
//!   [`StoreError::Corrupt`](session_core::StoreError::Corrupt) and is
//!   never overwritten by a save; so is one whose header disagrees with the
//!   record's `n` when read.
//! - After the header comes session-core's portable record encoding,
//!   [`Record::to_bytes`](session_core::Record::to_bytes): a JSON object
//!   with the format version `v` (1), the creation time `c`, the last
//!   activity `s` and the deadline `e` in Unix milliseconds (`e` absent when
//!   the session never expires), the version `n`, the session's own
//!   lifetime `l` (absent unless the application set one), and the data
//!   `d`. It is
//!   readable with `redis-cli GET`, and with any JSON tool once the header
//!   is cut off (`redis-cli --raw GET key | cut -c18-`); a migration
//!   rewrites values in this layout, header included, and keeps `n`. A
//!   value that starts with `~` is a taken record's mark (below): skip it
//!   when counting sessions, and leave it alone when migrating.
//! - A value written by a save has one more JSON field, first: `"w"`, the
//!   tokens of the last [`SAVE_TOKENS_KEPT`] saves of the session, newest
//!   first, each 16 lowercase hex digits drawn at random for that save
//!   (`0000000000000006:{"w":"5be0a1c3d2f49e87,0c1d2e3f40516273,…","v":1,…}`).
//!   [`Record::from_bytes`](session_core::Record::from_bytes) ignores it.
//!   With it the save script tells a copy of one save that reached Redis
//!   twice (it answers "saved" and writes nothing, even when other saves
//!   came in between) from a second writer that computed the same record
//!   (a conflict).
//! - The Redis expiry is an absolute time (`PXAT`), the millisecond before
//!   the deadline `e` (Redis keeps a key through its `PXAT` millisecond),
//!   so Redis drops a session exactly when the engine would stop accepting
//!   it.
//!   It is absolute: keep the clocks of your web servers and of Redis in
//!   sync (NTP). A value Redis still holds past `e` on the web server's
//!   clock (a Redis clock running behind, or a value written without an
//!   expiry) is no session to `load` and `take`; `create` and the save
//!   script go by what Redis holds (a `create` over such a value answers
//!   `Exists`, which random 128-bit ids never meet).
//! - A value is at most [`RedisStoreBuilder::max_record_size`] bytes long
//!   (1 MiB unless set), its `"w"` field left out (which adds up to 74
//!   bytes): a larger create or save fails with
//!   [`StoreError::TooLarge`](session_core::StoreError::TooLarge) before
//!   anything is sent.
//!
//! Listing sessions: `redis-cli --scan --pattern 'session:*'`, or, when
//! another application's prefix also starts with `session:` (such as
//! `session:admin:`), exactly the prefix and 64 more characters:
//! `--pattern "session:$(printf '?%.0s' $(seq 64))"`. Logging everyone out:
//! delete the keys that pattern lists (or replace the key ring's key without
//! keeping the old one as a previous key, which makes every cookie
//! unreadable; a rotation that keeps it, as session-core's "Key rotation"
//! describes, logs nobody out). The save script is [`SAVE_SCRIPT`], the take
//! script [`TAKE_SCRIPT`].
//!
//! A record taken at a log-in leaves a mark under its key for a minute
//! (twice the command timeout, if that is longer):
//! `~`, 16 hex digits (the take's token), then the value taken. It is no
//! record to the store (a load finds none, a save finds it missing, a
//! create of that key answers `Exists` until it expires, which with random
//! ids never happens); it lets a copy of the take that reaches Redis twice
//! hand the record back again (see [`TAKE_SCRIPT`]).
//!
//! # Round trips
//!
//! | operation | command |
//! | --- | --- |
//! | load | `GET key` |
//! | create | `SET key value NX PXAT deadline` (a `nil` answer is followed by a `GET`: [`StoreError::Exists`](session_core::StoreError::Exists) unless the stored value is this create's own, sent twice; when the `GET` finds the key gone, the `SET NX` once more) |
//! | save | `EVALSHA` [`SAVE_SCRIPT`] (version header check, then `SET key value PXAT deadline`, in Redis) |
//! | delete | `DEL key` |
//! | take (a log-in's new id: the old record, removed) | `EVALSHA` [`TAKE_SCRIPT`] (`GET key`, then `SET key mark PX ms`, a minute or twice the command timeout, in Redis) |
//!
//! The scripts are loaded when the store connects (on every primary of a
//! cluster). If Redis has forgotten one (a restart, a failover), the save
//! or take that finds out sends the script itself (`EVAL`), which loads it
//! again: one extra round trip, once.
//!
//! # Many concurrent requests of one session
//!
//! Saves are compare-and-set: when requests of one session overlap, every
//! save but the first meets a version conflict, gets the current record
//! back in the same round trip, and the engine replays its changes onto it
//! and saves again. Nothing is lost, but each conflict is one more round
//! trip, and with many overlapping writers of one session they add up
//! (the worst case, `n` writers that all loaded the same version, costs
//! about `n²/2` saves). Ordinary traffic (a user's few parallel requests)
//! barely notices; a load test that replays one cookie on 32 connections
//! at once does.
//!
//! # When Redis is down, hung or restarted
//!
//! - **At start-up**, [`RedisStoreBuilder::connect`] fails with a
//!   [`ConnectError`] naming the server (never the password), after at most
//!   the connect timeout.
//! - **Down while serving.** Each operation fails at once with
//!   [`StoreError::Backend`](session_core::StoreError::Backend) holding a
//!   [`CommandError`] with the cause ("Redis GET failed: Connection refused
//!   …"); the adapter answers 500 and logs it. (A read whose only store
//!   work is its touch, moving the idle deadline once a touch interval,
//!   is answered all the same, without the session cookie: see
//!   [`Executed::TouchSkipped`](session_core::Executed::TouchSkipped).
//!   So is a read while a failover leaves a read-only replica in
//!   charge.) Routes that do not touch the
//!   session keep working. Every failed operation triggers one new
//!   connection attempt, so the first request after Redis is back
//!   succeeds: there is nothing to restart. On a standalone server that
//!   includes a connection attempt the server refused (its handshake answered `NOAUTH` or
//!   `WRONGPASS` during a password change, or `LOADING`), which the
//!   `redis` crate's connection manager would otherwise keep answering
//!   with; a manager you made yourself
//!   ([`RedisStoreBuilder::from_connection_manager`]) keeps its own rules.
//! - **Hung** (Redis stopped answering, a network partition): every
//!   operation fails with [`StoreError::Timeout`](session_core::StoreError::Timeout)
//!   after the command timeout, instead of holding the request. A command
//!   that timed out may still run later, when Redis wakes up: a timeout
//!   says nothing about whether a write took effect. A server that
//!   vanished without closing the connection is detected by the kernel on
//!   Linux (`TCP_USER_TIMEOUT`, 10 s) and the connection is made anew;
//!   elsewhere only the command timeout bounds each request.
//! - **Restarted**: the connection is made anew in the background (RESP3
//!   tells the client at once). A `GET`, `DEL`, `SET NX`, save or take
//!   that meets the old connection is sent once more on the new one (on a
//!   Redis Cluster, the `redis` crate's cluster client re-sends it too, up
//!   to twice). A save is applied once however many copies arrive: a copy
//!   finds its own token among the stored value's last
//!   [`SAVE_TOKENS_KEPT`] and answers "saved" without writing. Only a copy
//!   that arrives after more than three other saves of the same session
//!   meets a conflict, and its changes are then applied once more; and a
//!   copy that arrives after the session was deleted, expired or moved to
//!   a new id finds no record and answers "missing": that request sends
//!   no cookie and logs its changes as dropped, although its first copy
//!   saved them before the session ended. A take (a log-in's old id,
//!   taken once the new record is written) is applied once too: its copy
//!   finds the mark its first copy left, with its own token, and hands
//!   back the record taken. (A take that finds nothing means the session
//!   ended while the log-in ran, and the engine then drops the log-in's
//!   new id rather than undo a log-out.) When a take fails, the engine
//!   deletes the old id, and once that succeeds the log-in stands; only
//!   what another request saved under the old id in the meantime is not
//!   carried over (logged at warn level). If the delete fails too, the
//!   request fails with a 500.
//! - **Failed over** behind one name (a replica promoted, the name moved
//!   to it): the store stays connected to the server it reached, as long
//!   as that connection lives. Managed services close their clients'
//!   connections at a failover, and the store then connects anew, to the
//!   name's new server. A demoted server that keeps its connections
//!   answers a write with a `READONLY` error (a 500 with the cause logged,
//!   never a lost session), and the store then connects anew for its next
//!   command, to whatever server the name now leads to. For failover
//!   without a proxy, use a Redis Cluster.
//! - Sessions live as long as Redis keeps them: a Redis without
//!   persistence (or a failover that lost recent writes) logs users out.
//!   Replication is asynchronous, so a failover can also lose a recent
//!   `DEL` or take: a session logged out just before it, or the old id
//!   of a log-in, can then resolve again on the promoted replica (until
//!   its deadline). Where that matters, keep a record of revoked
//!   sessions of your own too.
//!
//! # Redis Cluster
//!
//! ```no_run
//! # async fn run() -> Result<(), session_redis::ConnectError> {
//! let store = session_redis::RedisStore::cluster_builder([
//!     "redis://10.0.0.1:6379",
//!     "redis://10.0.0.2:6379",
//! ])
//! .connect()
//! .await?;
//! # Ok(()) }
//! ```
//!
//! Give one or more nodes; the rest of the cluster is discovered from them,
//! and the client follows the slot map through resharding and failovers
//! (`MOVED`/`ASK` redirections). Every command touches one key, so keys
//! need no hash tags, and sessions spread over all primaries by their
//! digest; the prefix must not contain a hash tag (`{…}`), which would put
//! them all on one node, and the builder refuses one.
//!
//! # Features
//!
//! - `tls` (off by default): `rediss://` URLs, through `redis`'s
//!   `tokio-rustls-comp` and `rustls` with ring (see [TLS](#tls)).
//!
//! It depends on `redis` (with `tokio-comp`, `connection-manager`,
//! `cluster-async` and `script`), `tokio` for timeouts, `session-core`,
//! `thiserror` and `tracing`. It needs a Tokio runtime.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub use redis;
pub use session_core as core;

mod builder;
mod connection;
mod error;
mod script;
mod store;
mod value;

pub use builder::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEY_PREFIX, RedisStoreBuilder,
};
pub use error::{CommandError, ConnectError};
pub use script::{SAVE_SCRIPT, SAVE_TOKENS_KEPT, TAKE_SCRIPT};
pub use store::RedisStore;
