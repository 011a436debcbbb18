//! Idle timeout and absolute lifetime, enforced together.

use time::{Duration, OffsetDateTime};

/// How long a session lives. Both limits are enforced server-side from the
/// record's own timestamps (or, in cookie-store mode, from the timestamps
/// inside the encrypted cookie), never from the cookie's `Max-Age`.
///
/// - `idle`: a session not used for this long is gone. Every request that
///   carries the session counts as use, with the granularity of the touch
///   interval (see [`SessionConfig::with_touch_interval`](crate::SessionConfig::with_touch_interval)).
/// - `absolute`: a session is gone this long after it was created, however
///   active it is.
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
/// assert_eq!(expiry.deadline(created, touched), Some(datetime!(2026-01-02 0:00 UTC)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    idle: Option<Duration>,
    absolute: Option<Duration>,
}

impl Default for Expiry {
    /// One hour idle, one day absolute: the demo contract's defaults.
    fn default() -> Self {
        Self {
            idle: Some(Duration::hours(1)),
            absolute: Some(Duration::days(1)),
        }
    }
}

impl Expiry {
    /// Both limits; `None` means no such limit.
    #[must_use]
    pub fn new(idle: Option<Duration>, absolute: Option<Duration>) -> Self {
        Self { idle, absolute }
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
    #[must_use]
    pub fn deadline(
        &self,
        created: OffsetDateTime,
        touched: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        // One calendar addition, to whichever limit comes first.
        match (self.idle, self.absolute) {
            (Some(idle), Some(absolute)) => {
                // Both measured from `created`; a sum too large for a
                // `Duration` is as far out as the idle timeout's sign says.
                let idle_first = match (touched - created).checked_add(idle) {
                    Some(idle_end) => idle_end < absolute,
                    None => idle.is_negative(),
                };
                Some(if idle_first {
                    touched.saturating_add(idle)
                } else {
                    created.saturating_add(absolute)
                })
            }
            (None, Some(absolute)) => Some(created.saturating_add(absolute)),
            (Some(idle), None) => Some(touched.saturating_add(idle)),
            (None, None) => None,
        }
    }

    /// Whether a session created at `created` and last used at `touched`
    /// has ended at `now`: the same as `now` being at or past
    /// [`deadline`](Self::deadline), computed without calendar arithmetic.
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
        created: OffsetDateTime,
        touched: OffsetDateTime,
        now: OffsetDateTime,
    ) -> bool {
        self.idle.is_some_and(|idle| now - touched >= idle)
            || self
                .absolute
                .is_some_and(|absolute| now - created >= absolute)
    }
}

/// Whether `deadline` has passed at `now`.
pub(crate) fn passed(deadline: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    deadline.is_some_and(|d| now >= d)
}

/// Whole seconds from `now` until `deadline`, rounded down, at least 0.
pub(crate) fn max_age(deadline: OffsetDateTime, now: OffsetDateTime) -> Duration {
    let secs = (deadline - now).whole_seconds().max(0);
    Duration::seconds(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn idle_deadline_moves_with_use_until_absolute_caps_it() {
        let e = Expiry::new(Some(Duration::minutes(10)), Some(Duration::minutes(25)));
        let c = datetime!(2026-01-01 0:00 UTC);
        assert_eq!(e.deadline(c, c), Some(datetime!(2026-01-01 0:10 UTC)));
        assert_eq!(
            e.deadline(c, datetime!(2026-01-01 0:09 UTC)),
            Some(datetime!(2026-01-01 0:19 UTC))
        );
        assert_eq!(
            e.deadline(c, datetime!(2026-01-01 0:20 UTC)),
            Some(datetime!(2026-01-01 0:25 UTC))
        );
    }

    proptest::proptest! {
        #[test]
        fn has_ended_agrees_with_the_deadline(
            idle in proptest::option::of(1i64..100_000),
            absolute in proptest::option::of(1i64..100_000),
            touched in 0i64..100_000,
            now in 0i64..300_000,
        ) {
            let e = Expiry::new(idle.map(Duration::seconds), absolute.map(Duration::seconds));
            let c = datetime!(2026-01-01 0:00 UTC);
            let touched = c + Duration::seconds(touched);
            let now = c + Duration::seconds(now);
            proptest::prop_assert_eq!(
                e.has_ended(c, touched, now),
                passed(e.deadline(c, touched), now)
            );
            // The deadline is the earlier of the two limits.
            let naive = match (idle, absolute) {
                (Some(i), Some(a)) => Some((touched + Duration::seconds(i)).min(c + Duration::seconds(a))),
                (Some(i), None) => Some(touched + Duration::seconds(i)),
                (None, Some(a)) => Some(c + Duration::seconds(a)),
                (None, None) => None,
            };
            proptest::prop_assert_eq!(e.deadline(c, touched), naive);
        }
    }

    #[test]
    fn an_idle_timeout_too_long_to_add_leaves_the_absolute_limit() {
        let e = Expiry::new(Some(Duration::MAX), Some(Duration::hours(1)));
        let c = datetime!(2026-01-01 0:00 UTC);
        assert_eq!(e.deadline(c, c), Some(datetime!(2026-01-01 1:00 UTC)));
        assert!(e.has_ended(c, c, datetime!(2026-01-01 1:00 UTC)));
        // And the other way round (not a configuration the engine accepts,
        // but `Expiry` is public): the idle limit, far in the past, wins.
        let e = Expiry::new(Some(Duration::MIN), Some(Duration::hours(1)));
        let before = c - Duration::seconds(1);
        assert_eq!(
            e.deadline(c, before),
            Some(before.saturating_add(Duration::MIN))
        );
        assert!(e.has_ended(c, before, c));
    }

    #[test]
    fn no_limits_means_no_deadline() {
        let c = datetime!(2026-01-01 0:00 UTC);
        assert_eq!(Expiry::new(None, None).deadline(c, c), None);
        assert!(!passed(None, c));
    }

    #[test]
    fn max_age_never_negative() {
        let now = datetime!(2026-01-01 1:00 UTC);
        assert_eq!(max_age(datetime!(2026-01-01 0:00 UTC), now), Duration::ZERO);
        assert_eq!(
            max_age(datetime!(2026-01-01 1:00:59.9 UTC), now),
            Duration::seconds(59)
        );
    }
}
