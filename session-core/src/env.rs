//! Settings from environment variables, shared by the demo apps of every
//! adapter so that they accept and reject exactly the same values.
//!
//! It is the demo contract's loader, not a production one: it reads the
//! demo's `PORT`, has no setting for the cookie's name, `Domain` or
//! `SameSite`, and without `SESSION_SECRET` it makes a random key (with a
//! warning, [`EnvSettings::warning`]), which no two servers share and no
//! restart keeps. An app reads its own settings and builds its
//! [`SessionConfig`] itself; its key with [`Key::parse`], which refuses a
//! malformed or obviously non-random key with a message that never shows
//! the key.

use time::Duration;

use crate::{ConfigError, Key, KeyRing, SessionConfig, Storage};

/// Which storage `SESSION_STORE` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// `memory`: the in-process [`MemoryStore`](crate::MemoryStore).
    Memory,
    /// `cookie`: cookie-store mode, the session encrypted in the cookie.
    Cookie,
    /// `redis`: a Redis store at `REDIS_URL` (built by the app, which owns
    /// the Redis client).
    Redis,
}

/// The settings of the demo contract, read from the environment:
///
/// | variable | meaning | default |
/// | --- | --- | --- |
/// | `PORT` | TCP port on 127.0.0.1, 1 to 65535 | `3000` |
/// | `SESSION_SECRET` | 64-byte key, 128 hex digits or base64 (see [`Key::parse`]; a key that is obviously not random, with fewer than 16 distinct byte values, is refused) | a random key (see [`EnvSettings::warning`]) |
/// | `SESSION_PREVIOUS_SECRETS` | comma-separated older keys, still accepted | none |
/// | `SESSION_STORE` | `memory`, `cookie` or `redis` | `memory` |
/// | `REDIS_URL` | used with `redis` | `redis://127.0.0.1:6379` |
/// | `SESSION_IDLE_SECS` | idle timeout, positive whole seconds | `3600` |
/// | `SESSION_ABSOLUTE_SECS` | absolute lifetime, positive whole seconds | `86400` |
/// | `SESSION_COOKIE_SECURE` | exactly `true` or `false` | `false` |
///
/// A bad value is a [`ConfigError::Env`] whose message is one line starting
/// with the variable's name.
///
/// ```
/// use session_core::env::EnvSettings;
///
/// let vars = [("SESSION_IDLE_SECS", "abc")];
/// let err = EnvSettings::from_lookup(|name| {
///     vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
/// })
/// .unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "SESSION_IDLE_SECS: expected a positive whole number of seconds, got \"abc\""
/// );
/// ```
///
/// Its `Debug` output leaves out the keys (as [`KeyRing`]'s does) and the
/// user and password of `REDIS_URL`.
#[derive(Clone)]
pub struct EnvSettings {
    /// `PORT`.
    pub port: u16,
    /// `SESSION_SECRET` first, then `SESSION_PREVIOUS_SECRETS`.
    pub keys: KeyRing,
    /// Whether `SESSION_SECRET` was missing and a random key was made.
    pub generated_key: bool,
    /// `SESSION_STORE`.
    pub store: StoreKind,
    /// `REDIS_URL`.
    pub redis_url: String,
    /// `SESSION_IDLE_SECS`.
    pub idle: Duration,
    /// `SESSION_ABSOLUTE_SECS`.
    pub absolute: Duration,
    /// `SESSION_COOKIE_SECURE`.
    pub secure: bool,
}

impl std::fmt::Debug for EnvSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvSettings")
            .field("port", &self.port)
            .field("keys", &self.keys)
            .field("generated_key", &self.generated_key)
            .field("store", &self.store)
            .field("redis_url", &without_credentials(&self.redis_url))
            .field("idle", &self.idle)
            .field("absolute", &self.absolute)
            .field("secure", &self.secure)
            .finish()
    }
}

/// `url` with what may hold a user or a password replaced by `…`: the part
/// before the last `@` (of what precedes a query; a password with an
/// unencoded `/` included), and the whole query (Unix-socket URLs take
/// `?user=…&pass=…`).
fn without_credentials(url: &str) -> std::borrow::Cow<'_, str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.into();
    };
    let (place, query) = match rest.split_once('?') {
        Some((place, _)) => (place, "?…"),
        None => (rest, ""),
    };
    match place.rfind('@') {
        Some(at) => format!("{scheme}://…{}{query}", &place[at..]).into(),
        None if query.is_empty() => url.into(),
        None => format!("{scheme}://{place}{query}").into(),
    }
}

impl EnvSettings {
    /// Reads the process environment.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Env`] naming the first bad variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Reads the variables through `lookup` (for tests).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Env`] naming the first bad variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let port = match lookup("PORT") {
            None => 3000,
            // Digits only: `parse` would also take a leading `+`.
            Some(text) => match text.parse::<u16>() {
                Ok(port) if port > 0 && text.bytes().all(|b| b.is_ascii_digit()) => port,
                _ => {
                    return Err(env_err(
                        "PORT",
                        format!("expected a port number from 1 to 65535, got {text:?}"),
                    ));
                }
            },
        };
        let (current, generated_key) = match lookup("SESSION_SECRET") {
            None => (
                Key::try_generate().map_err(|e| env_err("SESSION_SECRET", e.to_string()))?,
                true,
            ),
            Some(text) => (
                Key::parse(&text).map_err(|e| env_err("SESSION_SECRET", e.to_string()))?,
                false,
            ),
        };
        let mut keys = KeyRing::new(current);
        if let Some(list) = lookup("SESSION_PREVIOUS_SECRETS") {
            for (i, text) in list.split(',').map(str::trim).enumerate() {
                if text.is_empty() && list.trim().is_empty() {
                    break;
                }
                if text.is_empty() {
                    return Err(env_err(
                        "SESSION_PREVIOUS_SECRETS",
                        format!("key {} is empty (a stray comma?)", i + 1),
                    ));
                }
                let key = Key::parse(text).map_err(|e| {
                    env_err("SESSION_PREVIOUS_SECRETS", format!("key {}: {e}", i + 1))
                })?;
                keys = keys.with_previous(key);
            }
        }
        let store = match lookup("SESSION_STORE").as_deref() {
            None | Some("memory") => StoreKind::Memory,
            Some("cookie") => StoreKind::Cookie,
            Some("redis") => StoreKind::Redis,
            Some(other) => {
                return Err(env_err(
                    "SESSION_STORE",
                    format!("expected memory, cookie or redis, got {other:?}"),
                ));
            }
        };
        let redis_url = lookup("REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
        let idle = seconds(&lookup, "SESSION_IDLE_SECS", 3600)?;
        let absolute = seconds(&lookup, "SESSION_ABSOLUTE_SECS", 86_400)?;
        let secure = match lookup("SESSION_COOKIE_SECURE").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(env_err(
                    "SESSION_COOKIE_SECURE",
                    format!("expected true or false, got {other:?}"),
                ));
            }
        };
        Ok(Self {
            port,
            keys,
            generated_key,
            store,
            redis_url,
            idle,
            absolute,
            secure,
        })
    }

    /// The warning to print on stderr at start-up, if any: a random key
    /// means sessions do not survive a restart.
    #[must_use]
    pub fn warning(&self) -> Option<&'static str> {
        self.generated_key.then_some(
            "warning: SESSION_SECRET is not set; using a random key, so sessions will not survive a restart",
        )
    }

    /// A session configuration with these keys, timeouts and `Secure`
    /// setting. The storage is [`Storage::Memory`] or [`Storage::Cookie`];
    /// for [`StoreKind::Redis`] the app adds its store with
    /// [`SessionConfig::with_store`].
    #[must_use]
    pub fn session_config(&self) -> SessionConfig {
        let storage = match self.store {
            StoreKind::Cookie => Storage::Cookie,
            StoreKind::Memory | StoreKind::Redis => Storage::Memory,
        };
        SessionConfig::new(self.keys.clone())
            .with_idle_timeout(Some(self.idle))
            .with_absolute_timeout(Some(self.absolute))
            .with_secure(self.secure)
            .with_storage(storage)
    }
}

fn env_err(var: &'static str, reason: String) -> ConfigError {
    ConfigError::Env { var, reason }
}

fn seconds(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: i64,
) -> Result<Duration, ConfigError> {
    match lookup(var) {
        None => Ok(Duration::seconds(default)),
        Some(text) => match text.parse::<u32>() {
            Ok(n) if n > 0 && text.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Duration::seconds(i64::from(n)))
            }
            Err(_) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => Err(env_err(
                var,
                format!("expected at most {} seconds, got {text:?}", u32::MAX),
            )),
            _ => Err(env_err(
                var,
                format!("expected a positive whole number of seconds, got {text:?}"),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<EnvSettings, ConfigError> {
        EnvSettings::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    fn message(vars: &[(&str, &str)]) -> String {
        read(vars).unwrap_err().to_string()
    }

    /// `Debug` shows where Redis is, never its password or the keys.
    #[test]
    fn debug_leaves_credentials_out() {
        let secret: String = (0..64u8)
            .map(|b| format!("{:02x}", b.wrapping_mul(37)))
            .collect();
        let s = read(&[
            ("SESSION_SECRET", &secret),
            ("REDIS_URL", "redis://app:hunter2@cache.internal:6380/2"),
        ])
        .unwrap();
        let shown = format!("{s:?}");
        assert!(shown.contains("redis://…@cache.internal:6380/2"), "{shown}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("app:"),
            "{shown}"
        );
        assert!(!shown.contains(&secret[..16]), "{shown}");
        for (url, expected) in [
            ("redis://:pw@h", "redis://…@h"),
            ("rediss://h:6379/0", "rediss://h:6379/0"),
            ("redis://u:p/w@h:6379/1", "redis://…@h:6379/1"),
            (
                "redis+unix:///run/redis.sock?pass=pw",
                "redis+unix:///run/redis.sock?…",
            ),
            ("unix:///s.sock?user=u&pass=p@x", "unix:///s.sock?…"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(without_credentials(url), expected, "{url}");
        }
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = read(&[]).unwrap();
        assert_eq!(s.port, 3000);
        assert!(s.generated_key);
        assert!(
            s.warning()
                .unwrap()
                .contains("sessions will not survive a restart")
        );
        assert_eq!(s.store, StoreKind::Memory);
        assert_eq!(s.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(s.idle, Duration::hours(1));
        assert_eq!(s.absolute, Duration::days(1));
        assert!(!s.secure);
    }

    #[test]
    fn every_bad_value_names_its_variable_in_one_line() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "PORT",
                "0",
                "PORT: expected a port number from 1 to 65535, got \"0\"",
            ),
            (
                "PORT",
                "70000",
                "PORT: expected a port number from 1 to 65535, got \"70000\"",
            ),
            (
                "SESSION_SECRET",
                "abc",
                "SESSION_SECRET: invalid key: odd number of hex digits (3); expected 128 hex digits or base64 of 64 bytes",
            ),
            (
                "SESSION_SECRET",
                "00112233445566778899",
                "SESSION_SECRET: invalid key: expected 64 bytes, got 10",
            ),
            (
                "SESSION_STORE",
                "disk",
                "SESSION_STORE: expected memory, cookie or redis, got \"disk\"",
            ),
            (
                "SESSION_IDLE_SECS",
                "abc",
                "SESSION_IDLE_SECS: expected a positive whole number of seconds, got \"abc\"",
            ),
            (
                "SESSION_IDLE_SECS",
                "0",
                "SESSION_IDLE_SECS: expected a positive whole number of seconds, got \"0\"",
            ),
            (
                "SESSION_ABSOLUTE_SECS",
                "-5",
                "SESSION_ABSOLUTE_SECS: expected a positive whole number of seconds, got \"-5\"",
            ),
            (
                "SESSION_ABSOLUTE_SECS",
                "+5",
                "SESSION_ABSOLUTE_SECS: expected a positive whole number of seconds, got \"+5\"",
            ),
            (
                "SESSION_ABSOLUTE_SECS",
                "5000000000",
                "SESSION_ABSOLUTE_SECS: expected at most 4294967295 seconds, got \"5000000000\"",
            ),
            (
                "PORT",
                "+3000",
                "PORT: expected a port number from 1 to 65535, got \"+3000\"",
            ),
            (
                "SESSION_COOKIE_SECURE",
                "maybe",
                "SESSION_COOKIE_SECURE: expected true or false, got \"maybe\"",
            ),
            (
                "SESSION_COOKIE_SECURE",
                "TRUE",
                "SESSION_COOKIE_SECURE: expected true or false, got \"TRUE\"",
            ),
        ];
        for (var, value, expected) in cases {
            let got = message(&[(var, value)]);
            assert_eq!(&got, expected);
            assert!(!got.contains('\n'));
        }
    }

    #[test]
    fn previous_secrets_are_parsed_in_order() {
        let a = Key::generate();
        let b = Key::generate();
        let list = format!("{}, {}", a.to_hex(), b.to_hex());
        let s = read(&[
            ("SESSION_SECRET", &Key::generate().to_hex()),
            ("SESSION_PREVIOUS_SECRETS", &list),
        ])
        .unwrap();
        assert_eq!(s.keys.previous(), &[a.clone(), b.clone()]);
        assert!(!s.generated_key);
        let err = message(&[("SESSION_PREVIOUS_SECRETS", "zz")]);
        assert!(
            err.starts_with("SESSION_PREVIOUS_SECRETS: key 1: invalid key"),
            "{err}"
        );
        // A stray comma is named as one, not as a key of 0 bytes.
        for (list, n) in [
            (format!("{},", a.to_hex()), 2),
            (format!("{},,{}", a.to_hex(), b.to_hex()), 2),
            (format!(" ,{}", a.to_hex()), 1),
        ] {
            let err = message(&[("SESSION_PREVIOUS_SECRETS", &list)]);
            assert_eq!(
                err,
                format!("SESSION_PREVIOUS_SECRETS: key {n} is empty (a stray comma?)")
            );
        }
    }

    #[test]
    fn base64_secret_is_accepted() {
        use base64::Engine as _;
        let raw: Vec<u8> = (100..164).collect();
        let text = base64::engine::general_purpose::STANDARD.encode(&raw);
        let s = read(&[("SESSION_SECRET", &text)]).unwrap();
        assert_eq!(s.keys.current().master(), &raw[..]);
    }
}
