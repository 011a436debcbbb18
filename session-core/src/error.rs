//! Errors, one enum per concern.
//!
//! A bad cookie is not among them: it is read as "no session", with a
//! [`CodecError`] reason logged at debug level.

use std::error::Error as StdError;

/// A boxed error from a store's backend (a Redis client, a database driver).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A configuration value is wrong. Raised while building keys and
/// configuration, before any request is served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The key does not have the required length.
    #[error("invalid key: expected {expected} bytes, got {got}")]
    KeyLength {
        /// Required length in bytes.
        expected: usize,
        /// Length that was given.
        got: usize,
    },
    /// The key has the right length but is obviously not random.
    #[error(
        "invalid key: only {distinct} distinct byte values, which is not a random key; \
         generate one with Key::generate() or `openssl rand -hex 64`"
    )]
    WeakKey {
        /// How many distinct byte values the key holds.
        distinct: usize,
    },
    /// The key text is neither hex nor base64.
    #[error("invalid key: {reason}; expected 128 hex digits or base64 of 64 bytes")]
    KeyEncoding {
        /// What was wrong with the text.
        reason: String,
    },
    /// The operating system's random number generator failed.
    #[error("the OS random number generator failed: {reason}")]
    Random {
        /// The OS error.
        reason: String,
    },
    /// A cookie attribute cannot be used.
    #[error("invalid cookie setting: {reason}")]
    Cookie {
        /// What is wrong and what to use instead.
        reason: String,
    },
    /// A storage setting cannot work with the storage chosen.
    #[error("invalid storage setting: {reason}")]
    Storage {
        /// What is wrong and what to use instead.
        reason: String,
    },
    /// An environment variable has a bad value. The message is one line that
    /// starts with the variable's name.
    #[error("{var}: {reason}")]
    Env {
        /// The variable's name, e.g. `SESSION_IDLE_SECS`.
        var: &'static str,
        /// What was wrong and what is expected.
        reason: String,
    },
}

/// Why a cookie value was rejected. Never shown to the client: a rejected
/// cookie is treated as absent, and this reason is logged at debug level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The value does not have the shape of its kind: `s1.<payload>.<tag>`
    /// for a signed value, `p1.<sealed>` for a private one.
    #[error("malformed cookie value")]
    Malformed,
    /// The value carries a format version this library does not know.
    #[error("unknown cookie format version")]
    UnknownVersion,
    /// A part is not URL-safe base64.
    #[error("cookie value is not valid base64")]
    Base64,
    /// No key of the ring produced a matching signature.
    #[error("cookie signature does not verify under any key")]
    BadSignature,
    /// No key of the ring could decrypt the value (tampered, moved under
    /// another name, or made with an unknown key).
    #[error("cookie does not decrypt under any key")]
    Decrypt,
    /// The value is longer than any value this library produces.
    #[error("cookie value too long ({len} bytes, limit {limit})")]
    TooLong {
        /// Length of the value.
        len: usize,
        /// Largest length accepted.
        limit: usize,
    },
    /// The payload is not what the cookie should hold: a session id of the
    /// wrong length (checked before the signature, so a truncated or padded
    /// id cookie costs no HMAC), or, once opened, a cookie-store session
    /// that does not decode. (Signed and private values are bytes here:
    /// the [`Cookies`](crate::Cookies) jar treats one that is not UTF-8 as
    /// absent.)
    #[error("cookie payload is invalid: {0}")]
    Payload(&'static str),
}

/// A session store failed. Adapters answer the request with a 500 and log
/// this error; the session is never silently dropped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `create` found a record under the same key. Session ids are 128-bit
    /// random values, so this means a broken id generator or a broken store.
    #[error("a session record already exists under this id (id collision)")]
    Exists,
    /// The backend could not be reached or failed the command.
    #[error("session store backend failed: {0}")]
    Backend(#[source] BoxError),
    /// The backend did not answer in time.
    #[error("session store timed out after {millis} ms")]
    Timeout {
        /// How long the store waited.
        millis: u64,
    },
    /// A record could not be encoded or decoded.
    #[error("session record could not be encoded or decoded: {0}")]
    Encoding(#[source] serde_json::Error),
    /// The stored record is not in a format this store can read.
    #[error("stored session record is corrupt: {reason}")]
    Corrupt {
        /// What was wrong with it.
        reason: String,
    },
    /// A create or save was refused: the record, as this store encodes it,
    /// is larger than the store's limit (see
    /// [`MemoryStore::with_max_record_size`](crate::MemoryStore::with_max_record_size)).
    /// Nothing was written; the stored record, if any, is as it was.
    #[error(
        "session record of {size} bytes is over the store's limit of {limit} bytes; keep less \
         data in the session, or raise the limit"
    )]
    TooLarge {
        /// The record's size as the store encodes it, in bytes.
        size: usize,
        /// The store's limit, in bytes.
        limit: usize,
    },
}

impl StoreError {
    /// Wraps any backend error.
    pub fn backend(err: impl Into<BoxError>) -> Self {
        Self::Backend(err.into())
    }
}

/// An operation on a session failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A value could not be serialized for `insert`/`update`.
    #[error("session value for key {key:?} could not be serialized: {source}")]
    Serialize {
        /// The session key.
        key: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The stored value has another type than the one asked for.
    #[error("session value for key {key:?} is not of the requested type: {source}")]
    Deserialize {
        /// The session key.
        key: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// Cookie-store mode: the encrypted session does not fit in one cookie.
    #[error(
        "session too large for cookie-store mode: the Set-Cookie header would be {size} bytes, \
         the limit is {limit}; keep less data in the session or use a server-side store"
    )]
    CookieTooLarge {
        /// Size of the header that would have been sent.
        size: usize,
        /// The limit (4096 bytes).
        limit: usize,
    },
    /// Concurrent writers kept changing the record; the save gave up.
    #[error(
        "session save gave up after {attempts} version conflicts with concurrent requests; \
         raise SessionConfig::with_max_conflict_retries if this session is written that hotly"
    )]
    TooManyConflicts {
        /// How many saves were tried.
        attempts: u32,
    },
    /// The operating system's random number generator failed while making a
    /// session id or nonce.
    #[error("the OS random number generator failed: {reason}")]
    Random {
        /// The OS error.
        reason: String,
    },
    /// The session's data nests deeper than [`MAX_DATA_DEPTH`](crate::MAX_DATA_DEPTH)
    /// arrays and objects: it could be written but never loaded again, so
    /// it is not saved.
    #[error(
        "session data nests more than {limit} arrays and objects deep (the data's map \
         included), too deep to be loaded again; it is not saved"
    )]
    TooDeep {
        /// [`MAX_DATA_DEPTH`](crate::MAX_DATA_DEPTH).
        limit: usize,
    },
    /// The session store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// This request's changes were saved together with those of other
    /// requests of the same session (see
    /// [`Engine::commit`](crate::Engine::commit)), and that save failed
    /// with this error.
    #[error("grouped session save failed: {0}")]
    Grouped(#[source] std::sync::Arc<Self>),
    /// The request that was saving this request's changes, together with its
    /// own, went away (its client disconnected, or it panicked) before the
    /// store answered: whether the changes were stored is unknown, so they
    /// are not saved again. Met inside [`SessionError::Grouped`].
    #[error(
        "the grouped save of this session's changes was interrupted; whether they were stored \
         is unknown"
    )]
    SaveInterrupted,
}

/// Why the jar did not set or remove a cookie: the answer of
/// [`Cookies::try_add`](crate::Cookies::try_add) and its kin (the `add`
/// methods answer `false` and log it).
///
/// ```
/// use session_core::{cookie::Cookie, CookieError, Engine, Key, KeyRing, SessionConfig};
///
/// let engine = Engine::new(SessionConfig::new(KeyRing::new(Key::generate()))).unwrap();
/// let jar = engine.cookies([""]);
/// let error = jar.try_add(Cookie::new("id", "mine")).unwrap_err();
/// assert!(matches!(error, CookieError::Rules { .. }));
/// assert_eq!(error.name(), "id");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CookieError {
    /// A plain cookie's value holds bytes a cookie value cannot: anything
    /// but printable ASCII without spaces, `"`, `,`, `;` and `\`.
    #[error(
        "cookie {name:?} not set: its value must be printable ASCII without spaces, '\"', ',', \
         ';' or '\\' (a signed or private cookie takes any text)"
    )]
    Value {
        /// The cookie's name.
        name: String,
    },
    /// The cookie breaks a rule that browsers apply (they would drop it),
    /// or names the session cookie, which belongs to the engine.
    #[error("cookie {name:?} not set: {reason}")]
    Rules {
        /// The cookie's name.
        name: String,
        /// The rule, in words.
        reason: String,
    },
    /// Its `Set-Cookie` value would be longer than
    /// [`MAX_COOKIE_LEN`](crate::MAX_COOKIE_LEN): browsers drop it.
    #[error(
        "cookie {name:?} not set: its Set-Cookie would be {size} bytes, over the {limit} browsers keep"
    )]
    TooLarge {
        /// The cookie's name.
        name: String,
        /// The `Set-Cookie` value's length, in bytes.
        size: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The response's cookies were already sent: the jar was kept past the
    /// response (in a spawned task, say).
    #[error("cookie {name:?} not set: the response's cookies were already sent")]
    Sent {
        /// The cookie's name.
        name: String,
    },
    /// The operating system's random source failed while sealing a private
    /// cookie.
    #[error("private cookie {name:?} not set: {reason}")]
    Random {
        /// The cookie's name.
        name: String,
        /// What the random source said.
        reason: String,
    },
}

impl CookieError {
    /// The name of the cookie that was not set.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::Value { name }
            | Self::Rules { name, .. }
            | Self::TooLarge { name, .. }
            | Self::Sent { name }
            | Self::Random { name, .. } => name,
        }
    }
}
