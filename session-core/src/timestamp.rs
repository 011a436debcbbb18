//! Record times as whole milliseconds since the Unix epoch.

use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};

use time::{Duration, OffsetDateTime};

/// A point in time as whole milliseconds since the Unix epoch: how a
/// [`Record`](crate::Record) keeps its times, and what stores see.
///
/// Arithmetic and comparison on it are integer operations, with none of the
/// calendar work of an [`OffsetDateTime`]:
///
/// - converting from an `OffsetDateTime` rounds down to the millisecond
///   (also before the epoch: 1969-12-31 23:59:59.9995 UTC is −1 ms);
/// - adding or subtracting a [`Duration`] uses its whole milliseconds (a
///   sub-millisecond part is dropped, rounding toward zero) and saturates at
///   [`Timestamp::MIN`] and [`Timestamp::MAX`] instead of overflowing;
/// - the range is that of an `i64` of milliseconds (about ±292 million
///   years), wider than an `OffsetDateTime`'s: converting back clamps.
///
/// ```
/// use session_core::Timestamp;
/// use time::{Duration, macros::datetime};
///
/// let t = Timestamp::from(datetime!(2026-01-01 0:00:00.0015 UTC));
/// assert_eq!(t.unix_ms(), 1_767_225_600_001);
/// assert_eq!((t + Duration::hours(1)).unix_ms(), 1_767_229_200_001);
/// assert_eq!(t.to_offset_date_time(), datetime!(2026-01-01 0:00:00.001 UTC));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch, 1970-01-01 00:00 UTC.
    pub const UNIX_EPOCH: Self = Self(0);

    /// The earliest timestamp; arithmetic saturates here.
    pub const MIN: Self = Self(i64::MIN);

    /// The latest timestamp; arithmetic saturates here.
    pub const MAX: Self = Self(i64::MAX);

    /// The time `ms` milliseconds after the Unix epoch (before it, when
    /// negative).
    #[must_use]
    pub const fn from_unix_ms(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the Unix epoch.
    #[must_use]
    pub const fn unix_ms(self) -> i64 {
        self.0
    }

    /// The same instant as an [`OffsetDateTime`] in UTC, clamped to the
    /// range `time` can represent.
    #[must_use]
    pub fn to_offset_date_time(self) -> OffsetDateTime {
        let secs = self.0.div_euclid(1000);
        let millis = self.0.rem_euclid(1000);
        match OffsetDateTime::from_unix_timestamp(secs) {
            // `millis` is in 0..1000, so this never fails; setting the field
            // is cheaper than adding a duration with calendar arithmetic.
            Ok(t) => t
                .replace_millisecond(u16::try_from(millis).unwrap_or(0))
                .unwrap_or(t),
            Err(_) if self.0 < 0 => time::PrimitiveDateTime::MIN.assume_utc(),
            Err(_) => time::PrimitiveDateTime::MAX.assume_utc(),
        }
    }

    /// `self + by`, saturating at the ends of the range.
    #[must_use]
    pub fn saturating_add(self, by: Duration) -> Self {
        self.saturating_add_ms(by.whole_milliseconds())
    }

    /// [`saturating_add`](Self::saturating_add) of a duration already in
    /// whole milliseconds.
    pub(crate) fn saturating_add_ms(self, ms: i128) -> Self {
        Self(clamp(i128::from(self.0) + ms))
    }

    /// `self - by`, saturating at the ends of the range.
    #[must_use]
    pub fn saturating_sub(self, by: Duration) -> Self {
        Self(clamp(i128::from(self.0) - by.whole_milliseconds()))
    }

    /// The time from `earlier` to `self` (negative when `earlier` is later;
    /// saturating). The same as `self - earlier`.
    #[must_use]
    pub fn since(self, earlier: Self) -> Duration {
        Duration::milliseconds(self.0.saturating_sub(earlier.0))
    }
}

fn clamp(ms: i128) -> i64 {
    i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
}

impl From<OffsetDateTime> for Timestamp {
    /// Rounds down to the millisecond.
    fn from(t: OffsetDateTime) -> Self {
        Self(
            t.unix_timestamp()
                .saturating_mul(1000)
                .saturating_add(i64::from(t.millisecond())),
        )
    }
}

impl From<Timestamp> for OffsetDateTime {
    fn from(t: Timestamp) -> Self {
        t.to_offset_date_time()
    }
}

impl Add<Duration> for Timestamp {
    type Output = Self;

    /// Saturating: see [`Timestamp::saturating_add`].
    fn add(self, by: Duration) -> Self {
        self.saturating_add(by)
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Self;

    /// Saturating: see [`Timestamp::saturating_sub`].
    fn sub(self, by: Duration) -> Self {
        self.saturating_sub(by)
    }
}

impl Sub for Timestamp {
    type Output = Duration;

    /// The time from `earlier` to `self`: see [`Timestamp::since`].
    fn sub(self, earlier: Self) -> Duration {
        self.since(earlier)
    }
}

impl AddAssign<Duration> for Timestamp {
    fn add_assign(&mut self, by: Duration) {
        *self = self.saturating_add(by);
    }
}

impl SubAssign<Duration> for Timestamp {
    fn sub_assign(&mut self, by: Duration) {
        *self = self.saturating_sub(by);
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({} = {})", self.0, self.to_offset_date_time())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn converts_both_ways_to_the_millisecond() {
        let t = datetime!(2026-03-04 5:06:07.089 UTC);
        assert_eq!(Timestamp::from(t).to_offset_date_time(), t);
        let before_epoch = datetime!(1969-12-31 23:59:59.999 UTC);
        assert_eq!(Timestamp::from(before_epoch).unix_ms(), -1);
        assert_eq!(
            Timestamp::from_unix_ms(-1).to_offset_date_time(),
            before_epoch
        );
        // An offset names the same instant.
        assert_eq!(
            Timestamp::from(datetime!(2026-03-04 7:06:07.089 +2:00)),
            Timestamp::from(t)
        );
    }

    #[test]
    fn sub_millisecond_digits_round_down() {
        let t = datetime!(2026-03-04 5:06:07.0899 UTC);
        assert_eq!(
            Timestamp::from(t).to_offset_date_time(),
            datetime!(2026-03-04 5:06:07.089 UTC)
        );
        // Down, not toward zero, before the epoch.
        assert_eq!(
            Timestamp::from(datetime!(1969-12-31 23:59:59.9995 UTC)).unix_ms(),
            -1
        );
    }

    #[test]
    fn durations_count_in_whole_milliseconds() {
        let t = Timestamp::from_unix_ms(10_000);
        assert_eq!(
            t + Duration::microseconds(1_999),
            Timestamp::from_unix_ms(10_001)
        );
        assert_eq!(
            t - Duration::microseconds(1_999),
            Timestamp::from_unix_ms(9_999)
        );
        assert_eq!(
            t + Duration::microseconds(-1_999),
            Timestamp::from_unix_ms(9_999)
        );
        let mut u = t;
        u += Duration::seconds(2);
        u -= Duration::milliseconds(500);
        assert_eq!(u - t, Duration::milliseconds(1_500));
    }

    #[test]
    fn arithmetic_saturates_and_conversion_clamps() {
        let max = Timestamp::from_unix_ms(i64::MAX);
        assert_eq!(max + Duration::days(1), max);
        assert_eq!(Timestamp::MIN - Duration::days(1), Timestamp::MIN);
        assert_eq!(Timestamp::MIN + Duration::MIN, Timestamp::MIN);
        assert_eq!(
            Timestamp::MAX.since(Timestamp::MIN),
            Duration::milliseconds(i64::MAX)
        );
        assert_eq!(
            max.to_offset_date_time(),
            time::PrimitiveDateTime::MAX.assume_utc()
        );
        assert_eq!(
            Timestamp::from_unix_ms(i64::MIN).to_offset_date_time(),
            time::PrimitiveDateTime::MIN.assume_utc()
        );
        assert_eq!(
            Timestamp::from_unix_ms(5_000).since(Timestamp::from_unix_ms(7_500)),
            Duration::milliseconds(-2_500)
        );
    }
}
