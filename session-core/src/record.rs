//! What a store keeps for one session.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Data, Lifetime, StoreError, Timestamp};

/// How deeply session data may nest, its own map counted as the first level
/// (`{"a": [[1]]}` nests 3 deep).
///
/// [`Record::to_bytes`] wraps the data in one more object and `serde_json`
/// reads at most 127 nested arrays and objects, so deeper data could be
/// written but never loaded again. The engine therefore refuses to save it:
/// [`Engine::finish`](crate::Engine::finish) (and a save that replays this
/// request's changes onto another request's data) fails with
/// [`SessionError::TooDeep`](crate::SessionError::TooDeep), and the session
/// keeps what it had.
///
/// ```
/// use session_core::{Engine, KeyRing, Key, SessionConfig, SessionError, MAX_DATA_DEPTH};
/// use serde_json::Value;
///
/// let engine = Engine::new(SessionConfig::new(KeyRing::new(Key::generate()))).unwrap();
/// let now = engine.timestamp();
/// let session = engine.open(Default::default(), now);
/// // The data's map, then MAX_DATA_DEPTH arrays: one level too many.
/// let mut value = Value::Null;
/// for _ in 0..MAX_DATA_DEPTH {
///     value = Value::Array(vec![value]);
/// }
/// session.insert_value("deep", value);
/// assert!(matches!(
///     engine.finish(&session, now),
///     Err(SessionError::TooDeep { limit: MAX_DATA_DEPTH })
/// ));
/// ```
pub const MAX_DATA_DEPTH: usize = 126;

/// [`SessionError::TooDeep`](crate::SessionError::TooDeep) when `data`
/// nests deeper than [`MAX_DATA_DEPTH`]. Stops descending at the limit, so
/// any value is checked in bounded stack.
pub(crate) fn check_depth(data: &Data) -> Result<(), crate::SessionError> {
    if data.values().all(fits) {
        Ok(())
    } else {
        Err(too_deep())
    }
}

/// [`check_depth`] for some of the data's values (the others known to fit).
pub(crate) fn check_values<'a>(
    mut values: impl Iterator<Item = &'a Value>,
) -> Result<(), crate::SessionError> {
    if values.all(fits) {
        Ok(())
    } else {
        Err(too_deep())
    }
}

/// Whether a value of the data's map nests within the limit.
fn fits(value: &Value) -> bool {
    fn within(value: &Value, room: usize) -> bool {
        match value {
            Value::Array(items) => room > 0 && items.iter().all(|v| within(v, room - 1)),
            Value::Object(map) => room > 0 && map.values().all(|v| within(v, room - 1)),
            _ => true,
        }
    }
    within(value, MAX_DATA_DEPTH - 1)
}

fn too_deep() -> crate::SessionError {
    crate::SessionError::TooDeep {
        limit: MAX_DATA_DEPTH,
    }
}

/// One session as a store keeps it. Stores treat it as opaque apart from
/// [`Record::version`] (for compare-and-set) and [`Record::expires_at`] (to
/// let the backend free the record once it is dead).
///
/// Times are [`Timestamp`]s: whole milliseconds since the Unix epoch, the
/// precision of [`Record::to_bytes`] (a store that sets a deadline in
/// milliseconds takes [`Timestamp::unix_ms`]; Redis' `PXAT` that minus one,
/// since Redis keeps a key through its `PXAT` millisecond).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The session's data.
    pub data: Data,
    /// When the session was created; the absolute lifetime counts from here.
    pub created_at: Timestamp,
    /// When the session's idle deadline was last moved; the idle timeout
    /// counts from here. A touch moves it, and so does a write, except one
    /// made within the touch interval of the last move (the record keeps
    /// its times then, as a read would): this is not the time of the last
    /// write.
    pub last_seen: Timestamp,
    /// The session's current deadline: the earlier of the idle and the
    /// absolute one, as of `last_seen` (`None`: never). Every touch moves
    /// it; a store frees the record at this time.
    pub expires_at: Option<Timestamp>,
    /// Incremented by every save; `save` succeeds only when the stored
    /// version equals the version the writer loaded.
    pub version: u64,
    /// The session's own idle timeout, absolute lifetime and cookie
    /// persistence, where the application set them
    /// ([`Session::set_lifetime`](crate::Session::set_lifetime)); the
    /// default follows the configuration. A store keeps it as it keeps the
    /// data: [`Record::to_bytes`] includes it.
    pub lifetime: Lifetime,
}

#[derive(Serialize, Deserialize)]
struct Wire<D> {
    /// Format version.
    v: u8,
    /// created_at, Unix milliseconds.
    c: i64,
    /// last_seen, Unix milliseconds.
    s: i64,
    /// expires_at, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<i64>,
    /// version.
    n: u64,
    /// The session's own lifetime, absent when it follows the configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    l: Option<crate::lifetime::Wire>,
    /// data.
    d: D,
}

impl Record {
    /// Its lifetime, last use and deadline, for a merge.
    pub(crate) fn times(&self) -> crate::session::Times {
        (self.lifetime, self.last_seen, self.expires_at)
    }

    pub(crate) fn set_times(&mut self, (lifetime, last_seen, expires_at): crate::session::Times) {
        self.lifetime = lifetime;
        self.last_seen = last_seen;
        self.expires_at = expires_at;
    }

    /// Whether the record is dead at `now` (a [`Timestamp`] or an
    /// [`OffsetDateTime`](time::OffsetDateTime)).
    #[must_use]
    pub fn is_expired(&self, now: impl Into<Timestamp>) -> bool {
        crate::expiry::passed(self.expires_at, now.into())
    }

    /// Encodes the record in the portable format stores may use: one JSON
    /// object, `{"v":1,"c":created_ms,"s":last_seen_ms,"e":expires_ms,"n":version,"l":{lifetime},"d":{data}}`,
    /// times in Unix milliseconds, `e` absent when the session never
    /// expires. `l` is absent when the session follows the configuration's
    /// lifetime; otherwise `{"i":idle_secs,"a":absolute_secs,"p":persistent}`,
    /// limits in whole seconds, each field absent when it follows the
    /// configuration and a limit `null` when there is none.
    ///
    /// A reader from before `l` (this crate before per-session lifetimes,
    /// during a rolling deploy or after a rollback) ignores it: it judges
    /// the session by the configured limits, so a remembered session past
    /// them ends there (its record deleted, its cookie cleared), and one it
    /// saves follows the configuration from then on. Deploy every instance
    /// before the application calls
    /// [`Session::set_lifetime`](crate::Session::set_lifetime).
    ///
    /// ```
    /// use session_core::Record;
    /// use time::macros::datetime;
    ///
    /// let t = datetime!(2026-01-01 0:00 UTC);
    /// let mut record = Record::new(t, Some(t + time::Duration::hours(1)));
    /// record.data.insert("views", 1.into());
    /// let bytes = record.to_bytes();
    /// assert_eq!(
    ///     String::from_utf8(bytes.clone()).unwrap(),
    ///     r#"{"v":1,"c":1767225600000,"s":1767225600000,"e":1767229200000,"n":0,"d":{"views":1}}"#
    /// );
    /// assert_eq!(Record::from_bytes(&bytes).unwrap(), record);
    /// ```
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let wire = Wire {
            v: 1,
            c: self.created_at.unix_ms(),
            s: self.last_seen.unix_ms(),
            e: self.expires_at.map(Timestamp::unix_ms),
            n: self.version,
            l: self.lifetime.to_wire(),
            d: &self.data,
        };
        serde_json::to_vec(&wire).expect("JSON maps with string keys always serialize")
    }

    /// Decodes [`Record::to_bytes`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Encoding`] when the bytes are not such a record, and
    /// [`StoreError::Corrupt`] for an unknown format version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let wire: Wire<Data> = serde_json::from_slice(bytes).map_err(StoreError::Encoding)?;
        if wire.v != 1 {
            return Err(StoreError::Corrupt {
                reason: format!("unknown record format version {}", wire.v),
            });
        }
        Ok(Self {
            data: wire.d,
            created_at: Timestamp::from_unix_ms(wire.c),
            last_seen: Timestamp::from_unix_ms(wire.s),
            expires_at: wire.e.map(Timestamp::from_unix_ms),
            version: wire.n,
            lifetime: Lifetime::from_wire(wire.l),
        })
    }

    /// An empty record created (and last seen) at `now`, version 0.
    ///
    /// `now` and `expires_at` are of the same type, [`Timestamp`] or
    /// [`OffsetDateTime`](time::OffsetDateTime) (rounded down to the
    /// millisecond), so that `Record::new(now, None)` needs no annotation;
    /// convert one with `.into()` to mix them.
    #[must_use]
    pub fn new<T: Into<Timestamp>>(now: T, expires_at: Option<T>) -> Self {
        let now = now.into();
        Self {
            data: Data::new(),
            created_at: now,
            last_seen: now,
            expires_at: expires_at.map(Into::into),
            version: 0,
            lifetime: Lifetime::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn unknown_format_version_is_corrupt() {
        let err = Record::from_bytes(br#"{"v":9,"c":0,"s":0,"n":0,"d":{}}"#).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn garbage_is_an_encoding_error_not_a_panic() {
        assert!(matches!(
            Record::from_bytes(b"\xff\x00"),
            Err(StoreError::Encoding(_))
        ));
    }

    /// Every float comes back with the same bits: `serde_json`'s
    /// `float_roundtrip` parsing (without it, some come back one unit in
    /// the last place off, as `0.09144338512092887` did).
    #[test]
    fn floats_round_trip_exactly() {
        let t = datetime!(2026-03-04 5:06:07.089 UTC);
        let mut record = Record::new(t, None);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut floats = vec![
            0.091_443_385_120_928_87,
            f64::MIN_POSITIVE,
            f64::MAX,
            -0.0,
            5e-324,
        ];
        for _ in 0..2_000 {
            // A xorshift walk over bit patterns, finite ones kept.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if f.is_finite() {
                floats.push(f);
            }
        }
        record.data.insert("f", serde_json::json!(floats));
        let back = Record::from_bytes(&record.to_bytes()).unwrap();
        let Some(serde_json::Value::Array(read)) = back.data.get("f") else {
            panic!("{back:?}");
        };
        for (read, written) in read.iter().zip(&floats) {
            let read = read.as_f64().unwrap();
            assert_eq!(
                read.to_bits(),
                written.to_bits(),
                "{written:e} read as {read:e}"
            );
        }
        assert_eq!(read.len(), floats.len());
    }

    #[test]
    fn never_expiring_record_round_trips() {
        let t = datetime!(2026-03-04 5:06:07.089 UTC);
        let record = Record::new(t, None);
        let back = Record::from_bytes(&record.to_bytes()).unwrap();
        assert_eq!(back, record);
        assert!(!back.is_expired(t + time::Duration::days(10_000)));
    }
}
