//! Time as an input: the engine never reads a clock, adapters ask a [`Clock`].

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use time::{Duration, OffsetDateTime};

/// Where adapters get `now` from. The engine itself never reads a clock: it
/// takes `now` as an argument, so expiry can be tested without sleeping.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> OffsetDateTime;

    /// The current time in milliseconds since the Unix epoch. Override it
    /// when the clock can answer faster than through [`Clock::now`].
    fn now_unix_ms(&self) -> i64 {
        unix_ms(self.now())
    }
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        // `OffsetDateTime::now_utc()` adds the duration since the epoch with
        // calendar arithmetic; building the date from whole seconds and
        // setting the nanoseconds is the same instant, for less work on
        // every request.
        let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) else {
            return OffsetDateTime::now_utc();
        };
        i64::try_from(since.as_secs())
            .ok()
            .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
            .and_then(|t| t.replace_nanosecond(since.subsec_nanos()).ok())
            .unwrap_or_else(OffsetDateTime::now_utc)
    }

    fn now_unix_ms(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
        }
    }
}

/// A clock that moves only when told to, for tests. Clones share the time.
///
/// ```
/// use session_core::{Clock, ManualClock};
/// use time::{Duration, macros::datetime};
///
/// let clock = ManualClock::new(datetime!(2026-01-01 0:00 UTC));
/// let handle = clock.clone();
/// handle.advance(Duration::minutes(30));
/// assert_eq!(clock.now(), datetime!(2026-01-01 0:30 UTC));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<Mutex<OffsetDateTime>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    #[must_use]
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

impl<T: Clock + ?Sized> Clock for Arc<T> {
    fn now(&self) -> OffsetDateTime {
        (**self).now()
    }

    fn now_unix_ms(&self) -> i64 {
        (**self).now_unix_ms()
    }
}

/// Truncates to whole milliseconds, the precision records are stored with.
pub(crate) fn trunc_ms(t: OffsetDateTime) -> OffsetDateTime {
    let sub_ms = t.nanosecond() % 1_000_000;
    // Setting the field stays within the same second: no calendar work.
    t.replace_nanosecond(t.nanosecond() - sub_ms).unwrap_or(t)
}

/// Milliseconds since the Unix epoch (floor).
pub(crate) fn unix_ms(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
        .saturating_mul(1000)
        .saturating_add(i64::from(t.millisecond()))
}

/// The time `ms` milliseconds after the Unix epoch, clamped to what `time`
/// can represent.
pub(crate) fn from_unix_ms(ms: i64) -> OffsetDateTime {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    match OffsetDateTime::from_unix_timestamp(secs) {
        // `millis` is in 0..1000, so this never fails; setting the field is
        // cheaper than adding a duration with calendar arithmetic.
        Ok(t) => t
            .replace_millisecond(u16::try_from(millis).unwrap_or(0))
            .unwrap_or(t),
        Err(_) if ms < 0 => OffsetDateTime::UNIX_EPOCH,
        Err(_) => time::PrimitiveDateTime::MAX.assume_utc(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn system_clock_agrees_with_the_time_crate() {
        let before = OffsetDateTime::now_utc();
        let ours = SystemClock.now();
        let ms = SystemClock.now_unix_ms();
        let after = OffsetDateTime::now_utc();
        assert!(before <= ours && ours <= after, "{before} {ours} {after}");
        assert!(unix_ms(ours) <= ms && ms <= unix_ms(after));
        assert_eq!(ours.offset(), time::UtcOffset::UTC);
    }

    #[test]
    fn millisecond_conversions_round_trip_and_floor() {
        let t = datetime!(2026-05-06 7:08:09.123_456_789 UTC);
        assert_eq!(trunc_ms(t), datetime!(2026-05-06 7:08:09.123 UTC));
        assert_eq!(from_unix_ms(unix_ms(t)), trunc_ms(t));
        let before_epoch = datetime!(1969-12-31 23:59:59.5 UTC);
        assert_eq!(unix_ms(before_epoch), -500);
        assert_eq!(from_unix_ms(-500), before_epoch);
        assert_eq!(
            from_unix_ms(i64::MAX),
            time::PrimitiveDateTime::MAX.assume_utc()
        );
    }
}
