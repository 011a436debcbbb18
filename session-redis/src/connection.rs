//! The two kinds of connection the store runs its commands on, and the
//! per-command timeout around them.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike as _, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Value};
use tokio::time::Instant;

/// A standalone server behind a reconnecting [`ConnectionManager`], or a
/// Redis Cluster. Both multiplex every command of the process over one
/// connection per server, and both are cheap to clone.
#[derive(Clone)]
pub(crate) enum Connection {
    Single(Single),
    Cluster(ClusterConnection),
}

/// A standalone server's [`ConnectionManager`], replaced by a new one when
/// it cannot recover by itself.
///
/// The manager connects again after an I/O error, but a connection attempt
/// that fails otherwise (the server answered the handshake with
/// `WRONGPASS`, `NOAUTH` or `LOADING`) is kept and answered to every later
/// command, even once the server is fine again; and a server demoted to a
/// replica keeps answering `READONLY` on the connection the manager holds.
/// After either, the next command goes through a new manager made from the
/// same client and settings, which connects when it is first used.
#[derive(Clone)]
pub(crate) struct Single {
    /// The manager in use and its generation (how many were replaced).
    current: Arc<RwLock<(u64, ConnectionManager)>>,
    /// What a new manager is made from; `None` for one the application
    /// made itself ([`RedisStoreBuilder::from_connection_manager`](crate::RedisStoreBuilder::from_connection_manager)),
    /// which is kept as it is.
    remake: Option<Arc<(redis::Client, ConnectionManagerConfig)>>,
}

impl Single {
    pub(crate) fn new(
        manager: ConnectionManager,
        remake: Option<(redis::Client, ConnectionManagerConfig)>,
    ) -> Self {
        Self {
            current: Arc::new(RwLock::new((0, manager))),
            remake: remake.map(Arc::new),
        }
    }

    fn current(&self) -> (u64, ConnectionManager) {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts a new manager in place of the one of `generation`, unless
    /// another command did so already, and returns the manager now in
    /// place with its generation; `None` when none could be made (or the
    /// application made the manager).
    #[cold]
    fn replace(
        &self,
        generation: u64,
        error: &redis::RedisError,
    ) -> Option<(u64, ConnectionManager)> {
        let remake = self.remake.as_ref()?;
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.0 != generation {
            return Some(current.clone());
        }
        match ConnectionManager::new_lazy_with_config(remake.0.clone(), remake.1.clone()) {
            Ok(manager) => {
                tracing::debug!(%error, "Redis connection replaced");
                *current = (generation.wrapping_add(1), manager);
                Some(current.clone())
            }
            Err(make_error) => {
                tracing::warn!(%error, %make_error, "Redis connection could not be replaced");
                None
            }
        }
    }

    async fn send(&self, cmd: &Cmd) -> redis::RedisResult<Value> {
        let (mut generation, mut manager) = self.current();
        let mut replied = manager.req_packed_command(cmd).await;
        // An error here that is not an I/O error or a timeout is a failed
        // connection attempt the manager keeps (a reply's own error comes
        // back as a value), or a reply the client could not read. The
        // command goes once more, through a new manager: one kept from a
        // connection attempt made while nothing was asked (the manager
        // connects again by itself when its connection drops) never reached
        // Redis, and the first request after the server accepts again must
        // not fail for it. Every command the store sends may arrive twice
        // (see `RedisStore::send`).
        if let Err(error) = &replied {
            if !error.is_io_error() && !error.is_timeout() {
                if let Some((fresh, mut again)) = self.replace(generation, error) {
                    generation = fresh;
                    replied = again.req_packed_command(cmd).await;
                }
            }
        }
        let result = replied.and_then(Value::extract_error);
        // Redis 6.2 reports a script's `READONLY` inside a generic error.
        if let Err(error) = &result {
            if error.code() == Some("READONLY")
                || error.detail().is_some_and(|d| d.contains("READONLY"))
            {
                self.replace(generation, error);
            }
        }
        result
    }
}

impl Connection {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Single(_) => "standalone",
            Self::Cluster(_) => "cluster",
        }
    }

    /// Sends `cmd` and reads its reply, an error reply being an `Err`.
    pub(crate) async fn send(&self, cmd: &Cmd) -> redis::RedisResult<Value> {
        match self {
            Self::Single(single) => single.send(cmd).await,
            Self::Cluster(conn) => conn
                .clone()
                .req_packed_command(cmd)
                .await
                .and_then(Value::extract_error),
        }
    }

    /// Sends `cmd` and waits for its reply until `deadline`.
    ///
    /// Running out of time is `Err(None)`; a connection error or an error
    /// reply is the `redis` crate's error.
    pub(crate) async fn run(
        &self,
        cmd: &Cmd,
        deadline: Instant,
    ) -> Result<Value, Option<redis::RedisError>> {
        match tokio::time::timeout_at(deadline, self.send(cmd)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) if error.is_timeout() => Err(None),
            Ok(Err(error)) => Err(Some(error)),
            Err(_elapsed) => Err(None),
        }
    }
}

/// A duration in whole milliseconds, for error messages.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
