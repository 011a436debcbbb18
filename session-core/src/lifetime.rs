//! One session's own expiry, in place of the configuration's ("remember
//! me").

use std::fmt;

use time::Duration;

use crate::{Expiry, Timestamp};

/// One session's idle timeout, absolute lifetime and cookie persistence,
/// each either its own or the configuration's: what a log-in form's
/// "remember me" box chooses.
///
/// The default follows the configuration in all three. Set one on a
/// session with [`Session::set_lifetime`](crate::Session::set_lifetime):
/// it is saved with the session's record, so it holds on every later
/// request of that session (and survives a change of id) until another
/// `set_lifetime`; a session that keeps the default follows the
/// configuration as it is at each request.
///
/// | setting | what it changes | the configuration's |
/// | --- | --- | --- |
/// | [`with_idle_timeout`](Self::with_idle_timeout) | the idle timeout | [`SessionConfig::with_idle_timeout`](crate::SessionConfig::with_idle_timeout) |
/// | [`with_absolute_timeout`](Self::with_absolute_timeout) | the absolute lifetime | [`SessionConfig::with_absolute_timeout`](crate::SessionConfig::with_absolute_timeout) |
/// | [`with_persistent`](Self::with_persistent) | `Max-Age` on the cookie, or a browser-session cookie | [`SessionConfig::with_persistent_cookie`](crate::SessionConfig::with_persistent_cookie) |
///
/// Limits count in whole seconds, the unit of `Max-Age` (rounded down), up
/// to about 68 years (longer ones are cut to that). A limit of zero or less
/// (or under a second, which rounds down to zero) ends the session at once:
/// a persistent cookie is sent with `Max-Age=0`, and the next request
/// finds no session (with a store, the record is gone, so its cookie reads
/// as an unknown id, which is no session either; a browser-session cookie
/// stays in the browser, naming nothing, until the browser closes). A session with no limit at
/// all has no deadline for `Max-Age` to show, so its cookie is a
/// browser-session cookie whatever the persistence says; give a "remember
/// me" a long limit rather than none.
///
/// ```
/// use session_core::Lifetime;
/// use time::Duration;
///
/// // "Remember me": thirty days idle, no absolute limit, a cookie that
/// // outlives the browser.
/// let remembered = Lifetime::default()
///     .with_idle_timeout(Some(Duration::days(30)))
///     .with_absolute_timeout(None)
///     .with_persistent(true);
/// assert_eq!(remembered.idle_timeout(), Some(Some(Duration::days(30))));
/// assert_eq!(remembered.absolute_timeout(), Some(None));
///
/// // Not remembered: the configured timeouts, and a cookie the browser
/// // drops when it closes.
/// let until_closed = Lifetime::default().with_persistent(false);
/// assert_eq!(until_closed.idle_timeout(), None, "the configuration's");
/// assert_eq!(until_closed.persistent(), Some(false));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Lifetime(u64);

/// How a [`Lifetime`] packs into one word, so that it adds 8 bytes to a
/// record: the idle limit in bits 0–30, the absolute one in bits 31–61,
/// each [`CONFIG`], [`NEVER`] or a number of seconds plus [`SECONDS`]; the
/// persistence in bits 62–63 (0 the configuration's, 1 off, 2 on). The
/// default, 0, follows the configuration in all three.
const LIMIT_BITS: u32 = 31;
const LIMIT_MASK: u64 = (1 << LIMIT_BITS) - 1;
const ABSOLUTE_SHIFT: u32 = LIMIT_BITS;
const PERSISTENT_SHIFT: u32 = 2 * LIMIT_BITS;
/// A limit that follows the configuration.
const CONFIG: u64 = 0;
/// No limit.
const NEVER: u64 = 1;
/// What a limit of zero seconds is stored as.
const SECONDS: u64 = 2;
/// The longest limit, in seconds: about 68 years.
const MAX_SECONDS: u64 = LIMIT_MASK - SECONDS;

/// A limit's packed form.
fn pack(limit: Option<Duration>) -> u64 {
    pack_secs(limit.map(|d| u64::try_from(d.whole_seconds().max(0)).unwrap_or(u64::MAX)))
}

/// A limit in whole seconds (`None`: no limit), packed; cut to the longest.
fn pack_secs(secs: Option<u64>) -> u64 {
    secs.map_or(NEVER, |secs| secs.min(MAX_SECONDS) + SECONDS)
}

/// A packed limit: `None` for the configuration's, else the session's own.
fn unpack(packed: u64) -> Option<Option<u64>> {
    match packed {
        CONFIG => None,
        NEVER => Some(None),
        secs => Some(Some(secs - SECONDS)),
    }
}

/// A packed limit in force, in milliseconds, `configured` being the
/// configuration's.
fn limit_ms(packed: u64, configured: Option<i128>) -> Option<i128> {
    unpack(packed).map_or(configured, |own| own.map(|secs| i128::from(secs) * 1000))
}

impl fmt::Debug for Lifetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lifetime")
            .field("idle_timeout", &self.idle_timeout())
            .field("absolute_timeout", &self.absolute_timeout())
            .field("persistent", &self.persistent())
            .finish()
    }
}

impl Lifetime {
    /// This session's idle timeout (`None`: no limit), in place of the
    /// configuration's.
    #[must_use]
    pub fn with_idle_timeout(self, idle: Option<Duration>) -> Self {
        Self(self.0 & !LIMIT_MASK | pack(idle))
    }

    /// This session's absolute lifetime, counted from its creation or its
    /// last [`regenerate`](crate::Session::regenerate) (`None`: no limit),
    /// in place of the configuration's.
    #[must_use]
    pub fn with_absolute_timeout(self, absolute: Option<Duration>) -> Self {
        Self(self.0 & !(LIMIT_MASK << ABSOLUTE_SHIFT) | pack(absolute) << ABSOLUTE_SHIFT)
    }

    /// Whether this session's cookie carries `Max-Age` (`false`: a
    /// browser-session cookie, dropped when the browser closes), in place
    /// of the configuration's. The record's own deadlines hold either way.
    #[must_use]
    pub fn with_persistent(self, persistent: bool) -> Self {
        let bits = if persistent { 2 } else { 1 };
        Self(self.0 & !(3 << PERSISTENT_SHIFT) | bits << PERSISTENT_SHIFT)
    }

    /// This session's own idle timeout: `None` when it follows the
    /// configuration, `Some(None)` for no limit.
    #[must_use]
    pub fn idle_timeout(&self) -> Option<Option<Duration>> {
        Self::duration(self.idle())
    }

    /// This session's own absolute lifetime: `None` when it follows the
    /// configuration, `Some(None)` for no limit.
    #[must_use]
    pub fn absolute_timeout(&self) -> Option<Option<Duration>> {
        Self::duration(self.absolute())
    }

    /// This session's own cookie persistence: `None` when it follows the
    /// configuration.
    #[must_use]
    pub fn persistent(&self) -> Option<bool> {
        match self.0 >> PERSISTENT_SHIFT {
            1 => Some(false),
            2 => Some(true),
            _ => None,
        }
    }

    /// Whether all three follow the configuration (the default).
    #[must_use]
    pub fn is_default(&self) -> bool {
        self.0 == 0
    }

    fn idle(&self) -> u64 {
        self.0 & LIMIT_MASK
    }

    fn absolute(&self) -> u64 {
        self.0 >> ABSOLUTE_SHIFT & LIMIT_MASK
    }

    fn duration(packed: u64) -> Option<Option<Duration>> {
        unpack(packed)
            .map(|own| own.map(|secs| Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))))
    }

    /// When a session with this lifetime, created at `created` and last
    /// used at `touched`, ends, under the configuration's `expiry`.
    #[inline]
    pub(crate) fn deadline(
        &self,
        expiry: &Expiry,
        created: Timestamp,
        touched: Timestamp,
    ) -> Option<Timestamp> {
        if self.0 & !(3 << PERSISTENT_SHIFT) == 0 {
            // The configuration's limits (the common case).
            expiry.deadline(created, touched)
        } else {
            self.own_deadline(expiry, created, touched)
        }
    }

    #[cold]
    #[inline(never)]
    fn own_deadline(
        &self,
        expiry: &Expiry,
        created: Timestamp,
        touched: Timestamp,
    ) -> Option<Timestamp> {
        crate::expiry::deadline_ms(
            limit_ms(self.idle(), expiry.idle_ms()),
            limit_ms(self.absolute(), expiry.absolute_ms()),
            created,
            touched,
        )
    }

    /// Whether the cookie carries `Max-Age`, the configuration's being
    /// `configured`.
    #[inline]
    pub(crate) fn is_persistent(&self, configured: bool) -> bool {
        self.persistent().unwrap_or(configured)
    }

    /// The touch interval in milliseconds (`None`: never touched) the
    /// engine uses, `configured` being the configuration's: see
    /// [`own_touch_after_ms`](Self::own_touch_after_ms).
    #[cfg(test)]
    fn touch_after_ms(&self, configured: Option<i128>, cap: Option<i128>) -> Option<i128> {
        if self.has_own_idle() {
            self.own_touch_after_ms(cap)
        } else {
            configured
        }
    }

    /// Whether the idle timeout is the session's own: then so is its touch
    /// interval ([`own_touch_after_ms`](Self::own_touch_after_ms)).
    #[inline]
    pub(crate) fn has_own_idle(&self) -> bool {
        self.idle() != CONFIG
    }

    /// The touch interval in milliseconds (`None`: never touched) of a
    /// session with an idle timeout of its own: the default rule's for
    /// that timeout (1/60 of it, at most a minute) or `cap` if shorter, so
    /// that a session given a shorter idle timeout than the configured one
    /// is still touched in time; with no idle limit, never (a touch would
    /// move no deadline).
    pub(crate) fn own_touch_after_ms(&self, cap: Option<i128>) -> Option<i128> {
        let secs = unpack(self.idle())??;
        let own = (i128::from(secs) * 1000 / 60).min(60_000);
        Some(cap.map_or(own, |cap| cap.min(own)))
    }

    /// The record format's fields (see [`Record::to_bytes`](crate::Record::to_bytes)).
    pub(crate) fn to_wire(self) -> Option<Wire> {
        (!self.is_default()).then(|| Wire {
            i: unpack(self.idle()),
            a: unpack(self.absolute()),
            p: self.persistent(),
        })
    }

    /// Reads [`to_wire`](Self::to_wire)'s fields; limits too long are cut
    /// to the longest.
    pub(crate) fn from_wire(wire: Option<Wire>) -> Self {
        let Some(wire) = wire else {
            return Self::default();
        };
        let mut lifetime = Self(
            wire.i.map_or(CONFIG, pack_secs) | wire.a.map_or(CONFIG, pack_secs) << ABSOLUTE_SHIFT,
        );
        if let Some(persistent) = wire.p {
            lifetime = lifetime.with_persistent(persistent);
        }
        lifetime
    }

    /// The packed form, for the memory store and inside cookie-store
    /// cookies (`codec::inline`): a stored format, pinned by
    /// `every_part_of_the_format_is_pinned` there.
    pub(crate) fn to_bits(self) -> u64 {
        self.0
    }

    /// Reads [`to_bits`](Self::to_bits); `None` when `bits` are not such a
    /// form.
    pub(crate) fn from_bits(bits: u64) -> Option<Self> {
        (bits >> PERSISTENT_SHIFT != 3).then_some(Self(bits))
    }
}

/// A lifetime in the record format: `{"i":secs,"a":secs,"p":bool}`, each
/// field absent when it follows the configuration, a limit `null` when
/// there is none.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Wire {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    i: Option<Option<u64>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    a: Option<Option<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<bool>,
}

/// A field that is present reads as `Some`, even when it is `null` (which
/// serde would otherwise read as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn ts(t: time::OffsetDateTime) -> Timestamp {
        t.into()
    }

    #[test]
    fn the_default_follows_the_configuration() {
        let expiry = Expiry::new(Some(Duration::hours(1)), Some(Duration::days(1)));
        let c = ts(datetime!(2026-01-01 0:00 UTC));
        let lifetime = Lifetime::default();
        assert!(lifetime.is_default());
        assert_eq!(
            (
                lifetime.idle_timeout(),
                lifetime.absolute_timeout(),
                lifetime.persistent()
            ),
            (None, None, None)
        );
        assert_eq!(lifetime.deadline(&expiry, c, c), expiry.deadline(c, c));
        assert!(lifetime.is_persistent(true) && !lifetime.is_persistent(false));
        assert_eq!(lifetime.touch_after_ms(Some(60_000), Some(1)), Some(60_000));
        assert!(lifetime.to_wire().is_none());
        // Persistence alone keeps the configured limits.
        let closed = lifetime.with_persistent(false);
        assert_eq!(closed.deadline(&expiry, c, c), expiry.deadline(c, c));
        assert!(!closed.is_persistent(true));
    }

    #[test]
    fn own_limits_replace_the_configured_ones_one_by_one() {
        let expiry = Expiry::new(Some(Duration::hours(1)), Some(Duration::days(1)));
        let c = ts(datetime!(2026-01-01 0:00 UTC));
        let touched = ts(datetime!(2026-01-01 12:00 UTC));
        // Longer idle, the configured absolute limit still caps it.
        let idle = Lifetime::default().with_idle_timeout(Some(Duration::days(30)));
        assert_eq!(
            idle.deadline(&expiry, c, touched),
            Some(ts(datetime!(2026-01-02 0:00 UTC)))
        );
        // No absolute limit either: thirty days from the last use.
        let both = idle.with_absolute_timeout(None).with_persistent(true);
        assert_eq!(
            both.deadline(&expiry, c, touched),
            Some(ts(datetime!(2026-01-31 12:00 UTC)))
        );
        assert_eq!(both.idle_timeout(), Some(Some(Duration::days(30))));
        assert_eq!(both.absolute_timeout(), Some(None));
        assert_eq!(both.persistent(), Some(true));
        // Setting one field again changes only that one.
        let shorter = both.with_idle_timeout(Some(Duration::minutes(5)));
        assert_eq!(shorter.absolute_timeout(), Some(None));
        assert_eq!(shorter.persistent(), Some(true));
        assert_eq!(
            shorter.deadline(&expiry, c, touched),
            Some(ts(datetime!(2026-01-01 12:05 UTC)))
        );
        // No limit at all.
        let never = both.with_idle_timeout(None);
        assert_eq!(never.deadline(&expiry, c, touched), None);
        // A limit of zero (or less) ends the session at once.
        let zero = Lifetime::default().with_idle_timeout(Some(Duration::seconds(-5)));
        assert_eq!(zero.idle_timeout(), Some(Some(Duration::ZERO)));
        assert_eq!(zero.deadline(&expiry, c, touched), Some(touched));
    }

    #[test]
    fn limits_count_in_whole_seconds_up_to_about_68_years() {
        let lifetime = Lifetime::default()
            .with_idle_timeout(Some(Duration::milliseconds(2_999)))
            .with_absolute_timeout(Some(Duration::MAX));
        assert_eq!(lifetime.idle_timeout(), Some(Some(Duration::seconds(2))));
        let longest = Duration::seconds(i64::try_from(MAX_SECONDS).unwrap());
        assert_eq!(lifetime.absolute_timeout(), Some(Some(longest)));
        assert!(longest > Duration::days(68 * 365) && longest < Duration::days(69 * 365));
        // The two limits do not spill into each other or the persistence.
        assert_eq!(lifetime.persistent(), None);
        let lifetime = lifetime.with_persistent(false).with_absolute_timeout(None);
        assert_eq!(lifetime.idle_timeout(), Some(Some(Duration::seconds(2))));
        assert_eq!(lifetime.persistent(), Some(false));
    }

    #[test]
    fn an_own_idle_timeout_has_its_own_touch_interval_within_the_cap() {
        // The configuration's idle timeout: its interval, whatever the cap.
        let config = Lifetime::default().with_persistent(false);
        assert_eq!(config.touch_after_ms(Some(60_000), Some(1)), Some(60_000));
        assert_eq!(config.touch_after_ms(None, Some(1)), None);
        // 1/60 of its own, at most a minute, at most the cap.
        let short = Lifetime::default().with_idle_timeout(Some(Duration::minutes(2)));
        assert_eq!(
            short.touch_after_ms(Some(60_000), Some(60_000)),
            Some(2_000)
        );
        let long = Lifetime::default().with_idle_timeout(Some(Duration::days(30)));
        assert_eq!(long.touch_after_ms(Some(1), Some(5_000)), Some(5_000));
        assert_eq!(long.touch_after_ms(None, Some(300_000)), Some(60_000));
        assert_eq!(long.touch_after_ms(None, None), Some(60_000));
        // No idle limit of its own: a touch would move nothing.
        let never = Lifetime::default().with_idle_timeout(None);
        assert_eq!(never.touch_after_ms(Some(60_000), Some(60_000)), None);
    }

    #[test]
    fn both_forms_round_trip_and_garbage_is_refused() {
        let all = [
            Lifetime::default(),
            Lifetime::default().with_persistent(false),
            Lifetime::default()
                .with_idle_timeout(Some(Duration::days(30)))
                .with_absolute_timeout(None)
                .with_persistent(true),
            Lifetime::default().with_absolute_timeout(Some(Duration::MAX)),
            Lifetime::default().with_idle_timeout(Some(Duration::ZERO)),
        ];
        for lifetime in all {
            let json = serde_json::to_string(&lifetime.to_wire()).unwrap();
            let back: Option<Wire> = serde_json::from_str(&json).unwrap();
            assert_eq!(Lifetime::from_wire(back), lifetime, "{json}");
            assert_eq!(Lifetime::from_bits(lifetime.to_bits()), Some(lifetime));
        }
        assert_eq!(Lifetime::from_bits(u64::MAX), None);
        // A limit written longer than the longest is cut to it.
        let wire: Wire = serde_json::from_str(r#"{"i":18446744073709551615}"#).unwrap();
        let longest = Duration::seconds(i64::try_from(MAX_SECONDS).unwrap());
        assert_eq!(
            Lifetime::from_wire(Some(wire)).idle_timeout(),
            Some(Some(longest))
        );
    }

    #[test]
    fn a_null_limit_is_no_limit_and_an_absent_one_the_configurations() {
        let wire: Wire = serde_json::from_str(r#"{"i":null}"#).unwrap();
        let lifetime = Lifetime::from_wire(Some(wire));
        assert_eq!(lifetime.idle_timeout(), Some(None));
        assert_eq!(lifetime.absolute_timeout(), None);
        assert_eq!(lifetime.persistent(), None);
    }
}
