//! This crate's errors: one for setting the store up, one for a failed
//! command (carried inside [`StoreError::Backend`](session_core::StoreError)).

/// The store could not be set up. Returned by
/// [`RedisStoreBuilder::connect`](crate::RedisStoreBuilder::connect), before
/// any request is served.
///
/// Messages name the server by host and port only, never by the full URL,
/// so a password in the URL does not end up in logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not a Redis URL.
    #[error(
        "invalid Redis URL: {source}; expected redis://[[user]:password@]host[:port][/db] \
         (rediss:// for TLS, with session-redis's `tls` feature)"
    )]
    InvalidUrl {
        /// What the `redis` crate found wrong.
        #[source]
        source: redis::RedisError,
    },
    /// Redis refused the connection or the handshake failed (wrong
    /// password, not a cluster node, ...).
    #[error("cannot connect to Redis at {target}: {source}{}", hint(source))]
    Unreachable {
        /// The server (`host:port`), or the cluster's seed nodes.
        target: String,
        /// The cause.
        #[source]
        source: redis::RedisError,
    },
    /// Redis did not answer within the connect timeout.
    #[error(
        "Redis at {target} did not answer within {millis} ms; \
         is it reachable (host, port, firewall)?"
    )]
    Timeout {
        /// The server (`host:port`), or the cluster's seed nodes.
        target: String,
        /// The connect timeout.
        millis: u64,
    },
    /// Redis would not load the save or take script (for example, an ACL
    /// that forbids `SCRIPT` or `EVALSHA` for this user).
    #[error(
        "Redis at {target} refused to load the session store's scripts: {source}; \
         the store needs GET, SET, DEL, EVALSHA, EVAL and SCRIPT LOAD"
    )]
    ScriptLoad {
        /// The server (`host:port`), or the cluster's seed nodes.
        target: String,
        /// Redis's answer.
        #[source]
        source: redis::RedisError,
    },
    /// The certificates given to the builder's `tls_root_certificates` or
    /// `tls_client_certificate` (with the `tls` feature) are not usable
    /// PEM.
    #[error("the TLS certificates given cannot be used: {reason}")]
    TlsCertificates {
        /// Which one, and what is wrong with it.
        reason: String,
    },
    /// A builder setting cannot work.
    #[error("invalid session-redis setting: {reason}")]
    Config {
        /// What is wrong and what to do instead.
        reason: String,
    },
}

fn hint(error: &redis::RedisError) -> &'static str {
    if error.is_connection_refusal() {
        "; is Redis running there?"
    } else if error.kind() == redis::ErrorKind::AuthenticationFailed {
        "; check the user name and password in the URL"
    } else {
        ""
    }
}

/// A Redis command failed: the connection is down, Redis answered with an
/// error, or the answer had an unexpected shape.
///
/// The store returns it inside
/// [`StoreError::Backend`](session_core::StoreError::Backend); downcast the
/// boxed source to this type to inspect the `redis` crate's error:
///
/// ```
/// use session_core::StoreError;
/// use session_redis::CommandError;
///
/// fn is_connection_problem(error: &StoreError) -> bool {
///     match error {
///         StoreError::Backend(source) => source
///             .downcast_ref::<CommandError>()
///             .and_then(CommandError::redis_error)
///             .is_some_and(|e| e.is_io_error() || e.is_connection_dropped()),
///         StoreError::Timeout { .. } => true,
///         _ => false,
///     }
/// }
/// # let _ = is_connection_problem;
/// ```
#[derive(Debug, thiserror::Error)]
#[error("Redis {command} failed: {cause}")]
pub struct CommandError {
    command: &'static str,
    #[source]
    cause: Cause,
}

#[derive(Debug, thiserror::Error)]
enum Cause {
    #[error(transparent)]
    Redis(redis::RedisError),
    #[error("unexpected reply {0}")]
    Reply(String),
}

impl CommandError {
    pub(crate) fn redis(command: &'static str, error: redis::RedisError) -> Self {
        Self {
            command,
            cause: Cause::Redis(error),
        }
    }

    pub(crate) fn reply(command: &'static str, reply: &redis::Value) -> Self {
        let mut shown = format!("{reply:?}");
        if shown.len() > 120 {
            let mut end = 120;
            while !shown.is_char_boundary(end) {
                end -= 1;
            }
            shown.truncate(end);
            shown.push('…');
        }
        Self {
            command,
            cause: Cause::Reply(shown),
        }
    }

    /// The command that failed, as sent: `GET`, `SET NX`, `EVALSHA` (the
    /// save or take script), `EVAL` or `DEL`.
    #[must_use]
    pub fn command(&self) -> &'static str {
        self.command
    }

    /// The `redis` crate's error, unless Redis answered with a reply of an
    /// unexpected shape.
    #[must_use]
    pub fn redis_error(&self) -> Option<&redis::RedisError> {
        match &self.cause {
            Cause::Redis(error) => Some(error),
            Cause::Reply(_) => None,
        }
    }
}
