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
///
/// On Linux (and Android) it reads `CLOCK_REALTIME_COARSE`: the time of the
/// kernel's last timer tick, which advances in steps of 1–10 ms (4 ms on a
/// kernel built with `HZ=250`) and costs about 14 ns to read, against
/// about 40 ns for [`SystemTime::now`](std::time::SystemTime::now) on a
/// virtual machine. Sessions count
/// idle and absolute lifetimes in seconds and minutes and store whole
/// milliseconds, so the tick's granularity changes no decision that
/// matters. Elsewhere it reads [`SystemTime::now`](std::time::SystemTime::now).
///
/// ```
/// use std::time::{SystemTime, UNIX_EPOCH};
/// use session_core::{Clock, SystemClock};
///
/// let std_ms = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
/// let before = std_ms();
/// let now = SystemClock.now_unix_ms();
/// let after = std_ms();
/// // A timer tick (10 ms at worst) behind the full-precision clock, at most.
/// assert!(before - 50 <= now && now <= after);
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        // Built from whole seconds and then the nanoseconds: the same
        // instant as adding the duration since the epoch with calendar
        // arithmetic, for less work.
        let (secs, nanos) = since_epoch();
        // A system clock beyond what `time` holds (±9999 years) reads as
        // its nearest edge.
        OffsetDateTime::from_unix_timestamp(secs)
            .ok()
            .and_then(|t| t.replace_nanosecond(nanos).ok())
            .unwrap_or_else(|| {
                let edge = if secs < 0 {
                    time::PrimitiveDateTime::MIN
                } else {
                    time::PrimitiveDateTime::MAX
                };
                edge.assume_utc()
            })
    }

    fn now_unix_ms(&self) -> i64 {
        let (secs, nanos) = since_epoch();
        // Rounded down, before the epoch too: `nanos` counts forward from
        // `secs`, as `Timestamp::from` rounds.
        secs.saturating_mul(1000)
            .saturating_add(i64::from(nanos / 1_000_000))
    }
}

/// Whole seconds since the Unix epoch (negative before it) and the
/// nanoseconds after them (always below 10⁹).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn since_epoch() -> (i64, u32) {
    use nix::time::{ClockId, clock_gettime};
    match clock_gettime(ClockId::CLOCK_REALTIME_COARSE) {
        Ok(now) => {
            // `time_t` and `c_long` are 32 bits wide on 32-bit targets.
            #[allow(clippy::useless_conversion)]
            let (secs, nanos) = (i64::from(now.tv_sec()), i64::from(now.tv_nsec()));
            // The kernel keeps `tv_nsec` within 0..10⁹.
            (
                secs,
                u32::try_from(nanos.clamp(0, 999_999_999)).unwrap_or(0),
            )
        }
        // Refused (a seccomp filter, say): the full-precision clock.
        Err(_) => std_since_epoch(),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn since_epoch() -> (i64, u32) {
    std_since_epoch()
}

/// [`since_epoch`] from [`SystemTime`](std::time::SystemTime).
fn std_since_epoch() -> (i64, u32) {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(since) => (
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            since.subsec_nanos(),
        ),
        Err(before) => {
            let before = before.duration();
            let secs = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            match before.subsec_nanos() {
                0 => (-secs, 0),
                nanos => (-secs - 1, 1_000_000_000 - nanos),
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

    /// Moves the clock forward (or back, with a negative duration), no
    /// further than the first or last instant `time` can hold.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now = now.checked_add(by).unwrap_or_else(|| {
            let edge = if by.is_negative() {
                time::PrimitiveDateTime::MIN
            } else {
                time::PrimitiveDateTime::MAX
            };
            edge.assume_utc()
        });
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

    /// A manual clock moved past what `time` holds stops at its edge
    /// instead of panicking.
    #[test]
    fn a_manual_clock_stops_at_the_edges_of_time() {
        let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), time::PrimitiveDateTime::MAX.assume_utc());
        clock.advance(Duration::MIN);
        assert_eq!(clock.now(), time::PrimitiveDateTime::MIN.assume_utc());
        clock.advance(Duration::days(1));
        assert_eq!(
            clock.now(),
            time::PrimitiveDateTime::MIN.assume_utc() + Duration::days(1)
        );
    }

    #[test]
    fn system_clock_is_at_most_a_tick_behind_the_full_precision_clock() {
        let unix_ms = |t: OffsetDateTime| crate::Timestamp::from(t).unix_ms();
        let before = unix_ms(OffsetDateTime::now_utc());
        let ours = SystemClock.now();
        let ms = SystemClock.now_unix_ms();
        let after = unix_ms(OffsetDateTime::now_utc());
        // A timer tick (10 ms at worst) behind, at most; 50 ms of margin.
        for reading in [unix_ms(ours), ms] {
            assert!(
                before - 50 <= reading && reading <= after,
                "{before} {reading} {after}"
            );
        }
        assert!(unix_ms(ours) <= ms, "the clock went back");
        assert_eq!(ours.offset(), time::UtcOffset::UTC);
    }
}
