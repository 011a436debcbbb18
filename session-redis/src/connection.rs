//! The two kinds of connection the store runs its commands on, and the
//! per-command timeout around them.

use std::time::Duration;

use redis::aio::{ConnectionLike as _, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Value};
use tokio::time::Instant;

/// A standalone server behind a reconnecting [`ConnectionManager`], or a
/// Redis Cluster. Both multiplex every command of the process over one
/// connection per server, and both are cheap to clone.
#[derive(Clone)]
pub(crate) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
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
            Self::Single(conn) => conn.clone().req_packed_command(cmd).await,
            Self::Cluster(conn) => conn.clone().req_packed_command(cmd).await,
        }
        .and_then(Value::extract_error)
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
