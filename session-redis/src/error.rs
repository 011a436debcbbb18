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
         the store needs GET, SET, DEL, EVALSHA, EVAL and SCRIPT LOAD (and CLUSTER SLOTS on a \
         cluster)"
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
/// assert!(is_connection_problem(&StoreError::Timeout { millis: 1000 }));
/// assert!(!is_connection_problem(&StoreError::Exists));
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

    /// An unexpected reply, shown by its first [`SHOWN_REPLY`] bytes (then
    /// `…`). The formatting stops there: a server that answers with a
    /// huge array costs no more than a small one.
    pub(crate) fn reply(command: &'static str, reply: &redis::Value) -> Self {
        use std::fmt::Write as _;
        let mut shown = Shown(String::new());
        if write!(shown, "{reply:?}").is_err() {
            shown.0.push('…');
        }
        Self {
            command,
            cause: Cause::Reply(shown.0),
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

/// How much of an unexpected reply an error shows, in bytes.
const SHOWN_REPLY: usize = 120;

/// Text that takes the first [`SHOWN_REPLY`] bytes written to it (cut at a
/// character boundary) and then fails the write, which stops the
/// formatting.
struct Shown(String);

impl std::fmt::Write for Shown {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let room = SHOWN_REPLY - self.0.len();
        if text.len() <= room {
            self.0.push_str(text);
            return Ok(());
        }
        let mut end = room;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.0.push_str(&text[..end]);
        Err(std::fmt::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(reply: &redis::Value) -> String {
        match CommandError::reply("GET", reply).cause {
            Cause::Reply(text) => text,
            Cause::Redis(error) => panic!("not a reply: {error}"),
        }
    }

    #[test]
    fn a_short_reply_is_shown_whole() {
        assert_eq!(shown(&redis::Value::Int(7)), "int(7)");
        let error = CommandError::reply("DEL", &redis::Value::Okay);
        assert_eq!(error.to_string(), "Redis DEL failed: unexpected reply ok");
    }

    /// A huge reply is shown by its first bytes, cut at a character
    /// boundary, and marked as cut.
    #[test]
    fn a_long_reply_is_cut() {
        let huge = redis::Value::Array(vec![redis::Value::Int(123_456); 100_000]);
        let text = shown(&huge);
        let full = format!("{huge:?}");
        let kept = text.strip_suffix('…').expect("marked as cut");
        assert_eq!(kept.len(), SHOWN_REPLY);
        assert!(full.starts_with(kept));

        let wide = redis::Value::SimpleString("é".repeat(200));
        let text = shown(&wide);
        let kept = text.strip_suffix('…').expect("marked as cut");
        assert!(kept.len() <= SHOWN_REPLY && kept.len() >= SHOWN_REPLY - 1);
        assert!(format!("{wide:?}").starts_with(kept));
    }
}
