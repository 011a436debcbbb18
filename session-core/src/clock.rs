//! Time as an input: the engine never reads a clock, adapters ask a [`Clock`].

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use time::{Duration, OffsetDateTime};

/// Where adapters get `now` from. The engine itself never reads a clock: it
/// takes `now` as an argument, so expiry can be tested without sleeping.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> OffsetDateTime;

    /// The current time in milliseconds since the Unix epoch, rounded down
    /// (as [`Timestamp::from`](crate::Timestamp) rounds). Override it when
    /// the clock can answer faster than through [`Clock::now`].
    fn now_unix_ms(&self) -> i64 {
        crate::Timestamp::from(self.now()).unix_ms()
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
            // Before the epoch: rounded down too, as `Timestamp::from` does.
            Err(before) => {
                let before = before.duration();
                let ms = i64::try_from(before.as_millis()).unwrap_or(i64::MAX);
                if before.subsec_nanos() % 1_000_000 == 0 {
                    -ms
                } else {
                    -ms - 1
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_agrees_with_the_time_crate() {
        let before = OffsetDateTime::now_utc();
        let ours = SystemClock.now();
        let ms = SystemClock.now_unix_ms();
        let after = OffsetDateTime::now_utc();
        assert!(before <= ours && ours <= after, "{before} {ours} {after}");
        let unix_ms = |t: OffsetDateTime| crate::Timestamp::from(t).unix_ms();
        assert!(unix_ms(ours) <= ms && ms <= unix_ms(after));
        assert_eq!(ours.offset(), time::UtcOffset::UTC);
    }
}
