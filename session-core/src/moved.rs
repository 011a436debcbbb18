//! Ids given up at a log-in, remembered for a few seconds by the engine,
//! so that a request still carrying one (sent before the browser had the
//! log-in's cookie: another tab, a poll) does not start a session whose
//! cookie would replace the log-in's.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use crate::{StoreKey, Timestamp};

/// How long an id given up at a log-in is remembered: long enough for the
/// requests the browser sent before the log-in's response to arrive, and
/// short, since a browser that never got that response (a connection
/// lost) writes with the old id in vain meanwhile (a new log-in excepted).
pub(crate) const MOVED_FOR_MS: i64 = 10_000;

/// The least number of entries at which expired ones are dropped.
const PRUNE_ABOVE: usize = 1024;

/// The store keys of ids given up at a log-in, with the time (Unix
/// milliseconds) until which each is remembered.
#[derive(Debug, Default)]
pub(crate) struct MovedIds {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    until: BTreeMap<StoreKey, i64>,
    /// The number of entries at which expired ones are next dropped: twice
    /// what was left after the last time (at least [`PRUNE_ABOVE`]), so
    /// that many log-ins a second do not walk the whole map on each.
    prune_at: usize,
}

impl MovedIds {
    /// Remembers `key`, given up at `now`.
    #[cold]
    #[inline(never)]
    pub(crate) fn remember(&self, key: StoreKey, now: Timestamp) {
        let now_ms = now.unix_ms();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.until.len() >= inner.prune_at.max(PRUNE_ABOVE) {
            inner.until.retain(|_, until| *until > now_ms);
            inner.prune_at = inner.until.len().saturating_mul(2);
        }
        inner.until.insert(key, now_ms.saturating_add(MOVED_FOR_MS));
    }

    /// Whether `key` was given up at a log-in less than [`MOVED_FOR_MS`]
    /// before `now`.
    #[cold]
    #[inline(never)]
    pub(crate) fn contains(&self, key: &StoreKey, now: Timestamp) -> bool {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .until
            .get(key)
            .is_some_and(|until| *until > now.unix_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: usize) -> StoreKey {
        let mut k = [0; 32];
        k[..8].copy_from_slice(&(n as u64).to_le_bytes());
        StoreKey::from_bytes(k)
    }

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_unix_ms(ms)
    }

    #[test]
    fn an_id_is_remembered_for_a_while() {
        let moved = MovedIds::default();
        moved.remember(key(1), at(0));
        assert!(moved.contains(&key(1), at(MOVED_FOR_MS - 1)));
        assert!(!moved.contains(&key(1), at(MOVED_FOR_MS)));
        assert!(!moved.contains(&key(2), at(0)));
    }

    /// Expired entries are dropped once the map reaches its pruning size,
    /// which then waits for twice what was left, rather than walk the map
    /// on every insert while many entries are live.
    #[test]
    fn expired_ones_are_pruned_once_the_map_doubled() {
        let moved = MovedIds::default();
        for n in 0..=PRUNE_ABOVE {
            moved.remember(key(n), at(0));
        }
        {
            let inner = moved.inner.lock().unwrap();
            assert_eq!(inner.until.len(), PRUNE_ABOVE + 1, "all live at the prune");
            assert_eq!(inner.prune_at, 2 * PRUNE_ABOVE);
        }
        for n in PRUNE_ABOVE + 1..=2 * PRUNE_ABOVE {
            moved.remember(key(n), at(MOVED_FOR_MS));
        }
        let inner = moved.inner.lock().unwrap();
        assert_eq!(
            inner.until.len(),
            PRUNE_ABOVE,
            "the expired ones were dropped"
        );
        assert!(!inner.until.contains_key(&key(0)));
        assert!(inner.until.contains_key(&key(2 * PRUNE_ABOVE)));
    }
}
