//! Ids given up at a log-in, remembered for a minute in this process, so
//! that a request still carrying one (sent before the browser had the
//! log-in's cookie: another tab, a poll) does not start a session whose
//! cookie would replace the log-in's.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use crate::{StoreKey, Timestamp};

/// How long an id given up at a log-in is remembered: long enough for the
/// requests the browser sent before the log-in's response to arrive.
pub(crate) const MOVED_FOR_MS: i64 = 60_000;

/// Past this many entries, expired ones are dropped on the next insert.
const PRUNE_ABOVE: usize = 1024;

/// The store keys of ids given up at a log-in in this process, with the
/// time (Unix milliseconds) until which each is remembered.
#[derive(Debug, Default)]
pub(crate) struct MovedIds {
    until: Mutex<BTreeMap<StoreKey, i64>>,
}

impl MovedIds {
    /// Remembers `key`, given up at `now`.
    #[cold]
    #[inline(never)]
    pub(crate) fn remember(&self, key: StoreKey, now: Timestamp) {
        let now_ms = now.unix_ms();
        let mut until = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        if until.len() >= PRUNE_ABOVE {
            until.retain(|_, until| *until > now_ms);
        }
        until.insert(key, now_ms.saturating_add(MOVED_FOR_MS));
    }

    /// Whether `key` was given up at a log-in within the last minute before
    /// `now`.
    #[cold]
    #[inline(never)]
    pub(crate) fn contains(&self, key: &StoreKey, now: Timestamp) -> bool {
        let until = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        until.get(key).is_some_and(|until| *until > now.unix_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_remembered_for_a_minute_and_old_ones_are_pruned() {
        let moved = MovedIds::default();
        let at = |ms| Timestamp::from_unix_ms(ms);
        let key = |n: u8| StoreKey::from_bytes([n; 32]);
        moved.remember(key(1), at(0));
        assert!(moved.contains(&key(1), at(MOVED_FOR_MS - 1)));
        assert!(!moved.contains(&key(1), at(MOVED_FOR_MS)));
        assert!(!moved.contains(&key(2), at(0)));
        for n in 0..PRUNE_ABOVE {
            let bytes = u16::try_from(n).unwrap().to_le_bytes();
            let mut k = [3; 32];
            k[..2].copy_from_slice(&bytes);
            moved.remember(StoreKey::from_bytes(k), at(0));
        }
        moved.remember(key(4), at(MOVED_FOR_MS));
        let kept = moved.until.lock().unwrap().len();
        assert_eq!(kept, 1, "the expired ones were dropped");
        assert!(moved.contains(&key(4), at(MOVED_FOR_MS)));
    }
}
