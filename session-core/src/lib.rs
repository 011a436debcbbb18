//! The session engine: everything about cookies and sessions that does not
//! depend on a web framework, an async runtime or a clock.
//!
//! Placeholder crate docs; the full manual is written below.

pub use async_trait::async_trait;
pub use cookie;

mod clock;
pub mod codec;
mod config;
mod cookies;
mod engine;
pub mod env;
mod error;
mod expiry;
mod id;
mod key;
mod plan;
mod record;
mod session;
pub mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{SameSite, SessionConfig, Storage};
pub use cookies::Cookies;
pub use engine::{Engine, Incoming, Loaded, MAX_COOKIE_LEN, MAX_SESSION_COOKIES};
pub use error::{BoxError, CodecError, ConfigError, SessionError, StoreError};
pub use expiry::Expiry;
pub use id::{ID_LEN, OsRandom, RandomSource, SequenceRandom, SessionId, StoreKey};
pub use key::{KEY_LEN, Key, KeyMatch, KeyRing};
pub use plan::{Changes, CookieOp, Executed, Plan, StoreOp};
pub use record::{Data, Record};
pub use session::Session;
pub use store::{MemoryStore, SaveOutcome, SessionStore};
