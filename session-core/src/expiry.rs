//! Idle timeout and absolute lifetime, enforced together.

use std::fmt;

use time::Duration;

use crate::Timestamp;

/// How long a session lives. Both limits are enforced server-side from the
/// record's own timestamps (or, in cookie-store mode, from the timestamps
/// inside the encrypted cookie), never from the cookie's `Max-Age`.
///
/// - `idle`: a session not used for this long is gone. Every request that
///   carries the session counts as use, with the granularity of the touch
///   interval (see [`SessionConfig::with_touch_interval`](crate::SessionConfig::with_touch_interval)).
/// - `absolute`: a session is gone this long after it was created (or
///   last given a new id by [`Session::regenerate`](crate::Session::regenerate):
///   a log-in), however active it is.
///
/// The session cookie's `Max-Age` tracks the earlier of the two deadlines.
///
/// ```
/// use session_core::Expiry;
/// use time::{Duration, macros::datetime};
///
/// let expiry = Expiry::new(Some(Duration::hours(1)), Some(Duration::hours(24)));
/// let created = datetime!(2026-01-01 0:00 UTC);
/// // Active until the end: the absolute lifetime wins.
/// let touched = datetime!(2026-01-01 23:30 UTC);
/// assert_eq!(
///     expiry.deadline(created, touched),
///     Some(datetime!(2026-01-02 0:00 UTC).into())
/// );
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    idle: Option<Duration>,
    absolute: Option<Duration>,
    /// The limits in whole milliseconds, the unit of the arithmetic,
    /// converted once: every request computes a deadline.
    idle_ms: Option<i128>,
    absolute_ms: Option<i128>,
}

impl fmt::Debug for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expiry")
            .field("idle", &self.idle)
            .field("absolute", &self.absolute)
            .finish()
    }
}

impl Default for Expiry {
    /// One hour idle, one day absolute: the demo contract's defaults.
    fn default() -> Self {
        Self::new(Some(Duration::hours(1)), Some(Duration::days(1)))
    }
}

impl Expiry {
    /// Both limits; `None` means no such limit.
    #[must_use]
    pub fn new(idle: Option<Duration>, absolute: Option<Duration>) -> Self {
        Self {
            idle,
            absolute,
            idle_ms: idle.map(|d| d.whole_milliseconds()),
            absolute_ms: absolute.map(|d| d.whole_milliseconds()),
        }
    }

    /// The idle timeout.
    #[must_use]
    pub fn idle(&self) -> Option<Duration> {
        self.idle
    }

    /// The absolute lifetime.
    #[must_use]
    pub fn absolute(&self) -> Option<Duration> {
        self.absolute
    }

    /// When a session created at `created` and last used at `touched` ends,
    /// or `None` when neither limit is set.
    ///
    /// Each time is a [`Timestamp`] or an
    /// [`OffsetDateTime`](time::OffsetDateTime) (rounded down to the
    /// millisecond); the result is a `Timestamp`. The limits count in whole
    /// milliseconds, and the arithmetic is on integers and saturates (see
    /// [`Timestamp`]).
    #[must_use]
    #[inline]
    pub fn deadline(
        &self,
        created: impl Into<Timestamp>,
        touched: impl Into<Timestamp>,
    ) -> Option<Timestamp> {
        deadline_ms(
            self.idle_ms,
            self.absolute_ms,
            created.into(),
            touched.into(),
        )
    }

    /// The idle timeout in whole milliseconds.
    #[inline]
    pub(crate) fn idle_ms(&self) -> Option<i128> {
        self.idle_ms
    }

    /// The absolute lifetime in whole milliseconds.
    #[inline]
    pub(crate) fn absolute_ms(&self) -> Option<i128> {
        self.absolute_ms
    }

    /// Whether a session created at `created` and last used at `touched`
    /// has ended at `now`: whether `now` is at or past
    /// [`deadline`](Self::deadline). Each time is a [`Timestamp`] or an
    /// [`OffsetDateTime`](time::OffsetDateTime), as for `deadline`.
    ///
    /// ```
    /// use session_core::Expiry;
    /// use time::{Duration, macros::datetime};
    ///
    /// let expiry = Expiry::new(Some(Duration::hours(1)), Some(Duration::hours(24)));
    /// let created = datetime!(2026-01-01 0:00 UTC);
    /// let touched = datetime!(2026-01-01 10:00 UTC);
    /// assert!(!expiry.has_ended(created, touched, datetime!(2026-01-01 10:59 UTC)));
    /// assert!(expiry.has_ended(created, touched, datetime!(2026-01-01 11:00 UTC)));
    /// ```
    #[must_use]
    pub fn has_ended(
        &self,
        created: impl Into<Timestamp>,
        touched: impl Into<Timestamp>,
        now: impl Into<Timestamp>,
    ) -> bool {
        passed(self.deadline(created, touched), now.into())
    }
}

/// [`Expiry::deadline`] for limits in whole milliseconds.
#[inline]
pub(crate) fn deadline_ms(
    idle: Option<i128>,
    absolute: Option<i128>,
    created: Timestamp,
    touched: Timestamp,
) -> Option<Timestamp> {
    match (idle, absolute) {
        // Idle from `touched`, absolute from `created`: whichever comes
        // first.
        (Some(idle), Some(absolute)) => Some(std::cmp::min(
            touched.saturating_add_ms(idle),
            created.saturating_add_ms(absolute),
        )),
        (None, Some(absolute)) => Some(created.saturating_add_ms(absolute)),
        (Some(idle), None) => Some(touched.saturating_add_ms(idle)),
        (None, None) => None,
    }
}

/// Whether `deadline` has passed at `now`.
pub(crate) fn passed(deadline: Option<Timestamp>, now: Timestamp) -> bool {
    deadline.is_some_and(|d| now >= d)
}

/// Whole seconds from `now` until `deadline`, rounded down, at least 0: the
/// cookie ends up to a second before the stored deadline, never after it
/// (in the session's last second, `Max-Age=0`).
pub(crate) fn max_age(deadline: Timestamp, now: Timestamp) -> i64 {
    deadline.unix_ms().saturating_sub(now.unix_ms()).max(0) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;
    use time::macros::datetime;

    fn ts(t: OffsetDateTime) -> Timestamp {
        t.into()
    }

    #[test]
    fn idle_deadline_moves_with_use_until_absolute_caps_it() {
        let e = Expiry::new(Some(Duration::minutes(10)), Some(Duration::minutes(25)));
        let c = datetime!(2026-01-01 0:00 UTC);
        assert_eq!(e.deadline(c, c), Some(ts(datetime!(2026-01-01 0:10 UTC))));
        assert_eq!(
            e.deadline(c, datetime!(2026-01-01 0:09 UTC)),
            Some(ts(datetime!(2026-01-01 0:19 UTC)))
        );
        assert_eq!(
            e.deadline(c, datetime!(2026-01-01 0:20 UTC)),
            Some(ts(datetime!(2026-01-01 0:25 UTC)))
        );
    }

    proptest::proptest! {
        #[test]
        fn has_ended_agrees_with_the_calendar(
            idle in proptest::option::of(1i64..100_000_000),
            absolute in proptest::option::of(1i64..100_000_000),
            touched in 0i64..100_000_000,
            now in 0i64..300_000_000_000,
        ) {
            // Records hold whole milliseconds; `now` comes with nanoseconds,
            // and the limits are any whole number of milliseconds.
            let e = Expiry::new(idle.map(Duration::milliseconds), absolute.map(Duration::milliseconds));
            let c = datetime!(2026-01-01 0:00:00.123 UTC);
            let touched = c + Duration::milliseconds(touched);
            let now = c + Duration::nanoseconds(now);
            // The deadline is the earlier of the two limits, and the session
            // has ended once `now` reaches it, as calendar arithmetic on
            // `OffsetDateTime` has it.
            let naive = match (idle, absolute) {
                (Some(i), Some(a)) => Some((touched + Duration::milliseconds(i)).min(c + Duration::milliseconds(a))),
                (Some(i), None) => Some(touched + Duration::milliseconds(i)),
                (None, Some(a)) => Some(c + Duration::milliseconds(a)),
                (None, None) => None,
            };
            proptest::prop_assert_eq!(e.deadline(c, touched), naive.map(ts));
            let ended = idle.is_some_and(|i| now - touched >= Duration::milliseconds(i))
                || absolute.is_some_and(|a| now - c >= Duration::milliseconds(a));
            proptest::prop_assert_eq!(e.has_ended(c, touched, now), ended);
            // Mixed arguments.
            proptest::prop_assert_eq!(e.has_ended(ts(c), touched, ts(now)), ended);
        }
    }

    #[test]
    fn limits_too_long_to_add_saturate() {
        let e = Expiry::new(Some(Duration::MAX), Some(Duration::hours(1)));
        let c = datetime!(2026-01-01 0:00 UTC);
        assert_eq!(e.deadline(c, c), Some(ts(datetime!(2026-01-01 1:00 UTC))));
        assert!(e.has_ended(c, c, datetime!(2026-01-01 1:00 UTC)));
        // And the other way round (not a configuration the engine accepts,
        // but `Expiry` is public): the idle limit, far in the past, wins.
        let e = Expiry::new(Some(Duration::MIN), Some(Duration::hours(1)));
        let before = c - Duration::seconds(1);
        assert_eq!(
            e.deadline(c, before),
            Some(Timestamp::from_unix_ms(i64::MIN))
        );
        assert!(e.has_ended(c, before, c));
        let e = Expiry::new(None, Some(Duration::MAX));
        assert_eq!(e.deadline(c, c), Some(Timestamp::from_unix_ms(i64::MAX)));
        assert!(!e.has_ended(c, c, datetime!(9999-12-31 23:59 UTC)));
    }

    #[test]
    fn no_limits_means_no_deadline() {
        let c = datetime!(2026-01-01 0:00 UTC);
        assert_eq!(Expiry::new(None, None).deadline(c, c), None);
        assert!(!passed(None, ts(c)));
    }

    #[test]
    fn max_age_never_negative() {
        let now = ts(datetime!(2026-01-01 1:00 UTC));
        assert_eq!(max_age(ts(datetime!(2026-01-01 0:00 UTC)), now), 0);
        assert_eq!(max_age(ts(datetime!(2026-01-01 1:00:59.9 UTC)), now), 59);
    }
}
