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
        let idle = self.idle.map(|d| touched.saturating_add(d));
        let absolute = self.absolute.map(|d| created.saturating_add(d));
        match (idle, absolute) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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
