//! [`RedisStore`]: the [`SessionStore`] operations as Redis commands.

use std::fmt;
use std::time::Duration;

use redis::{Cmd, ErrorKind, ServerErrorKind, Value};
use session_core::{
    Clock as _, RandomSource as _, Record, SaveOutcome, SessionStore, StoreError, StoreKey,
    SystemClock, ThreadRandom, Timestamp, async_trait,
};
use tokio::time::Instant;

use crate::builder::RedisStoreBuilder;
use crate::connection::{Connection, millis};
use crate::error::{CommandError, ConnectError};
use crate::script::{SAVE, SAVE_SCRIPT, TAKE, TAKE_SCRIPT, TAKEN_MARK_MS};
use crate::value;

/// A [`SessionStore`] on Redis or Redis Cluster: one command per operation,
/// compare-and-set saves in a server-side script, and a Redis expiry on
/// every record. See the [crate docs](crate) for set-up, the key layout and
/// what happens when Redis is down.
///
/// | operation | command |
/// | --- | --- |
/// | `load` | `GET prefix+key` |
/// | `create` | `SET prefix+key value NX PXAT deadline` |
/// | `save` | `EVALSHA` of [`SAVE_SCRIPT`] (compare version header, `SET … PXAT`) |
/// | `delete` | `DEL prefix+key` |
/// | `take` | `EVALSHA` of [`TAKE_SCRIPT`](crate::TAKE_SCRIPT) (`GET`, then `SET` of a mark that expires) |
///
/// Cheap to clone: clones share the connection.
///
/// ```no_run
/// use std::sync::Arc;
/// use session_core::{Key, KeyRing, SessionConfig};
/// use session_redis::RedisStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// let config = SessionConfig::new(KeyRing::new(Key::generate())).with_store(Arc::new(store));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    prefix: Box<str>,
    command_timeout: Duration,
    max_record_size: usize,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("kind", &self.connection.kind())
            .field("prefix", &self.prefix)
            .field("command_timeout", &self.command_timeout)
            .field("max_record_size", &self.max_record_size)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    pub(crate) fn new(
        connection: Connection,
        prefix: String,
        command_timeout: Duration,
        max_record_size: usize,
    ) -> Self {
        Self {
            connection,
            prefix: prefix.into_boxed_str(),
            command_timeout,
            max_record_size,
        }
    }

    /// [`StoreError::TooLarge`] for a record whose value (header and JSON,
    /// save tokens left out: `size`) is longer than the store's limit
    /// ([`RedisStoreBuilder::max_record_size`]), before anything is sent.
    fn check_size(&self, size: usize) -> Result<(), StoreError> {
        if size > self.max_record_size {
            return Err(StoreError::TooLarge {
                size,
                limit: self.max_record_size,
            });
        }
        Ok(())
    }

    /// A builder for a store on the standalone Redis at `url`
    /// (`redis://[[user]:password@]host[:port][/db]`).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::url(url.into())
    }

    /// A builder for a store on a Redis Cluster, given the URLs of one or
    /// more of its nodes; the rest are discovered from them.
    pub fn cluster_builder<I, S>(urls: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisStoreBuilder::cluster(urls.into_iter().map(Into::into).collect())
    }

    /// Connects to the standalone Redis at `url` with the default prefix and
    /// timeouts: short for `RedisStore::builder(url).connect().await`.
    ///
    /// # Errors
    ///
    /// See [`RedisStoreBuilder::connect`].
    pub async fn connect(url: impl Into<String>) -> Result<Self, ConnectError> {
        Self::builder(url).connect().await
    }

    /// The Redis key a session's record lives under: the prefix followed by
    /// the 64 hex digits of [`StoreKey::to_hex`].
    ///
    /// ```
    /// use session_core::SessionId;
    /// # fn show(store: &session_redis::RedisStore) {
    /// let key = SessionId::from_bytes([1; 16]).store_key();
    /// assert_eq!(store.redis_key(&key), format!("session:{}", key.to_hex()));
    /// # }
    /// ```
    #[must_use]
    pub fn redis_key(&self, key: &StoreKey) -> String {
        let mut out = String::with_capacity(self.prefix.len() + 64);
        out.push_str(&self.prefix);
        out.push_str(&key.to_hex());
        out
    }

    /// The key prefix.
    #[must_use]
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// How long one operation waits for Redis.
    #[must_use]
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// Whether the store talks to a Redis Cluster.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        matches!(self.connection, Connection::Cluster(_))
    }

    /// Whether Redis answers, within the command timeout: a `PING` (on a
    /// cluster, to every primary), for a readiness probe. It reconnects
    /// first if the connection was lost, as any operation does. (An ACL
    /// for the store's user must allow `PING` for this one.)
    ///
    /// ```no_run
    /// # async fn ready(store: &session_redis::RedisStore) -> &'static str {
    /// match store.ping().await {
    ///     Ok(()) => "ready",
    ///     Err(_) => "Redis is not answering",
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As any operation's: [`StoreError::Backend`] with the cause (a
    /// [`CommandError`]), or [`StoreError::Timeout`].
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self.command("PING", &redis::cmd("PING")).await? {
            Value::SimpleString(pong) if pong == "PONG" => Ok(()),
            other => Err(unexpected("PING", &other)),
        }
    }

    /// The record a `GET` of `key`, or the take script, answers, unless it
    /// has expired. Redis drops a record at its deadline by itself
    /// (`PXAT`); a value it still holds past the deadline on this server's
    /// clock (one written without an expiry, or a Redis clock running
    /// behind) is none all the same, as the trait requires. A taken
    /// record's mark (see [`TAKE_SCRIPT`]) is none too; any other value
    /// that does not start with a version header is corrupt.
    fn found(&self, name: &'static str, reply: Value) -> Result<Option<Record>, StoreError> {
        let record = match reply {
            Value::Nil => return Ok(None),
            Value::BulkString(bytes) if value::is_mark(&bytes) => return Ok(None),
            Value::BulkString(bytes) => value::decode(&bytes, &self.prefix)?,
            other => return Err(unexpected(name, &other)),
        };
        if record.is_expired(Timestamp::from_unix_ms(SystemClock.now_unix_ms())) {
            tracing::debug!(
                expires_at = ?record.expires_at,
                "Redis still holds a record past its deadline; it counts as none"
            );
            return Ok(None);
        }
        Ok(Some(record))
    }

    /// Runs `script` (`source`, cached in Redis as `script`'s hash) on
    /// `redis_key` with `args`, within the command timeout: `EVALSHA`, and
    /// `EVAL` when the script cache is empty (Redis restarted, or a
    /// failover to a replica that never saw the script), which also caches
    /// it again. Sending either twice must do no harm.
    async fn script(
        &self,
        script: &redis::Script,
        source: &str,
        redis_key: &str,
        args: &[&[u8]],
    ) -> Result<Value, StoreError> {
        let call = |name: &str, first: &[u8]| {
            let mut cmd = redis::cmd(name);
            cmd.arg(first).arg(1).arg(redis_key);
            for arg in args {
                cmd.arg(*arg);
            }
            cmd
        };
        let deadline_at = Instant::now() + self.command_timeout;
        let evalsha = call("EVALSHA", script.get_hash().as_bytes());
        match self.send(&evalsha, deadline_at).await {
            Err(Some(error)) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                tracing::debug!("script not cached in Redis; sending it with EVAL");
                let eval = call("EVAL", source.as_bytes());
                self.send(&eval, deadline_at)
                    .await
                    .map_err(|error| self.store_error("EVAL", error))
            }
            other => other.map_err(|error| self.store_error("EVALSHA", error)),
        }
    }

    /// Runs one command within the command timeout.
    async fn command(&self, name: &'static str, cmd: &Cmd) -> Result<Value, StoreError> {
        let deadline = Instant::now() + self.command_timeout;
        self.send(cmd, deadline)
            .await
            .map_err(|error| self.store_error(name, error))
    }

    /// Sends `cmd` until `deadline`, and once more (on the connection made
    /// anew) when the first try met a connection lost or refused (the
    /// `redis` crate's dropped-connection, refusal and unrecoverable
    /// errors; a standalone connection also sends a command once more
    /// itself after a connection attempt the server refused, see
    /// `Single::send`). Every command the
    /// store sends may arrive twice: `GET` and `DEL` are idempotent; a
    /// `SET NX` whose first copy went through answers `nil` the second
    /// time, and `create` then finds its own value stored and succeeds; the
    /// save script recognises a save it already applied by its token (see
    /// [`SAVE_SCRIPT`]) and answers "saved" without writing again; the take
    /// script hands the record it took back to a copy of itself (see
    /// [`TAKE_SCRIPT`]).
    async fn send(&self, cmd: &Cmd, deadline: Instant) -> Result<Value, Option<redis::RedisError>> {
        match self.connection.run(cmd, deadline).await {
            Err(Some(error))
                if error.is_connection_dropped()
                    || error.is_connection_refusal()
                    || error.is_unrecoverable_error() =>
            {
                tracing::debug!(%error, "Redis connection lost; sending the command once more");
                self.connection.run(cmd, deadline).await
            }
            result => result,
        }
    }

    fn store_error(&self, name: &'static str, error: Option<redis::RedisError>) -> StoreError {
        match error {
            None => StoreError::Timeout {
                millis: millis(self.command_timeout),
            },
            // Redis 7 reports a script's wrong-type error under its own
            // code; 6.2 inside a generic script error.
            Some(error)
                if error.code() == Some("WRONGTYPE")
                    || error.detail().is_some_and(|d| d.contains("WRONGTYPE")) =>
            {
                StoreError::Corrupt {
                    reason: format!(
                        "a key under the prefix {:?} holds a Redis value that is not a string \
                     ({error}); is another application using this prefix?",
                        self.prefix
                    ),
                }
            }
            Some(error) => StoreError::backend(CommandError::redis(name, error)),
        }
    }
}

/// A random token for one save's value (see `value`).
fn save_token() -> Result<u64, StoreError> {
    let mut bytes = [0u8; 8];
    ThreadRandom
        .fill(&mut bytes)
        .map_err(|error| StoreError::backend(error.to_string()))?;
    Ok(u64::from_le_bytes(bytes))
}

/// The `PXAT` time of the record (a positive Unix millisecond), or `None`
/// when it never expires: the millisecond before its deadline, since Redis
/// keeps a key through its `PXAT` millisecond while the deadline is the
/// first millisecond the record is dead.
fn deadline_ms(record: &Record) -> Option<i64> {
    record
        .expires_at
        .map(|at| at.unix_ms().saturating_sub(1).max(1))
}

fn unexpected(name: &'static str, reply: &Value) -> StoreError {
    StoreError::backend(CommandError::reply(name, reply))
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.redis_key(key));
        let reply = self.command("GET", &cmd).await?;
        self.found("GET", reply)
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        let redis_key = self.redis_key(key);
        let value = value::encode(record, None);
        self.check_size(value.len())?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(&redis_key).arg(&value).arg("NX");
        if let Some(ms) = deadline_ms(record) {
            cmd.arg("PXAT").arg(ms);
        }
        // A key that vanishes between a refused `SET NX` and the `GET`
        // (it expired, or was deleted) is free again: set it once more.
        for _ in 0..2 {
            match self.command("SET NX", &cmd).await? {
                Value::Okay => return Ok(()),
                Value::Nil => {}
                other => return Err(unexpected("SET NX", &other)),
            }
            // Either the id is taken (with 128 random bits, never in
            // practice) or this is a second copy of this very create, sent
            // again after a lost connection: the stored value tells which.
            let mut get = redis::cmd("GET");
            get.arg(&redis_key);
            match self.command("GET", &get).await? {
                Value::BulkString(stored) if stored == value => return Ok(()),
                Value::BulkString(_) => return Err(StoreError::Exists),
                Value::Nil => {}
                other => return Err(unexpected("GET", &other)),
            }
        }
        Err(StoreError::Exists)
    }

    async fn save(
        &self,
        key: &StoreKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError> {
        let redis_key = self.redis_key(key);
        let bytes = value::encode(record, Some(save_token()?));
        // Measured as a create measures it: a record that was created can
        // be touched.
        self.check_size(bytes.len() - value::TOKEN_FIELD_LEN)?;
        let expected = value::header(expected_version);
        let deadline = deadline_ms(record)
            .map(|ms| ms.to_string())
            .unwrap_or_default();
        let args: [&[u8]; 3] = [&bytes, expected.as_bytes(), deadline.as_bytes()];
        let reply = self.script(&SAVE, SAVE_SCRIPT, &redis_key, &args).await?;
        match reply {
            Value::Int(1) => Ok(SaveOutcome::Saved),
            Value::Int(0) => Ok(SaveOutcome::Missing),
            Value::BulkString(current) => {
                // A value without a valid version header is corrupt.
                let current = value::decode(&current, &self.prefix)?;
                if current.version == expected_version {
                    // The script turned down the very header it was given:
                    // never report a conflict the engine would retry forever.
                    return Err(StoreError::Corrupt {
                        reason: format!(
                            "the save script refused a stored value whose version header \
                             is the expected {expected:?}"
                        ),
                    });
                }
                Ok(SaveOutcome::Conflict(current))
            }
            other => Err(unexpected("EVALSHA", &other)),
        }
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.redis_key(key));
        match self.command("DEL", &cmd).await? {
            Value::Int(_) => Ok(()),
            other => Err(unexpected("DEL", &other)),
        }
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let token = format!("{:016x}", save_token()?);
        let mark_ms = TAKEN_MARK_MS
            .max(millis(self.command_timeout).saturating_mul(2))
            .to_string();
        let args: [&[u8]; 2] = [token.as_bytes(), mark_ms.as_bytes()];
        let reply = self
            .script(&TAKE, TAKE_SCRIPT, &self.redis_key(key), &args)
            .await?;
        self.found("EVALSHA", reply)
    }
}
