//! Session cookie values that verified lately, so that a session's later
//! requests skip the work of verifying the same value again.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::{Mutex, PoisonError};

use crate::codec::IdValue;
use crate::id::{PrefixHasher, SessionId};
use crate::{KeyMatch, StoreKey};

/// What verifying an id cookie's value gave.
#[derive(Clone)]
pub(crate) struct Verified {
    pub(crate) id: SessionId,
    pub(crate) key: StoreKey,
    pub(crate) matched: KeyMatch,
}

/// The cache of [`Verified`] values, bounded and sharded.
///
/// Only values that verified under the engine's key ring are inserted, and
/// the ring never changes for an engine, so a hit is exactly what verifying
/// again would give: the id, its store key, and which key signed it. It is
/// a cache of signatures, not of sessions: whether the session still exists
/// is the store's answer, asked on every request.
///
/// A lookup costs a lock and a constant-time comparison of the 69-byte
/// value; a verification costs base64 decoding, an HMAC-SHA256 and the
/// SHA-256 of the store key. The hash is 48 bits of the value's MAC, so
/// entries spread evenly; someone holding many real session cookies could
/// replay only those that share a bucket, which at worst lengthens the
/// probes of one shard (at most `capacity / 16` entries).
///
/// Each of the 16 shards holds at most `capacity / 16` values (rounded up)
/// and is emptied when it is full: memory stays bounded (the table keeps its
/// allocation), and a site with more active sessions than the capacity
/// verifies more often.
pub(crate) struct VerifiedCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

type Shard = HashMap<IdValue, Verified, BuildHasherDefault<PrefixHasher>>;

const SHARDS: usize = 16;

impl VerifiedCache {
    /// A cache of up to `capacity` values (rounded up to a multiple of the
    /// shard count), or `None` for 0: no cache.
    pub(crate) fn new(capacity: usize) -> Option<Self> {
        (capacity > 0).then(|| Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
        })
    }

    fn shard(&self, value: &IdValue) -> std::sync::MutexGuard<'_, Shard> {
        let index = value.tag_bits() % SHARDS;
        // Every operation on a shard is one map call; a panic inside one
        // leaves nothing half-done.
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get(&self, value: &IdValue) -> Option<Verified> {
        self.shard(value).get(value).cloned()
    }

    pub(crate) fn insert(&self, value: IdValue, verified: Verified) {
        let mut shard = self.shard(&value);
        if shard.len() >= self.per_shard {
            shard.clear();
        }
        shard.insert(value, verified);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

impl std::fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("capacity", &(self.per_shard * SHARDS))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 69-byte value: `fill` everywhere, `c` at `at`.
    fn value(fill: u8, at: usize, c: u8) -> IdValue {
        let mut bytes = [fill; 69];
        bytes[at] = c;
        IdValue::new(&bytes).unwrap()
    }

    fn verified(n: u8) -> Verified {
        let id = SessionId::from_bytes([n; crate::ID_LEN]);
        Verified {
            key: id.store_key(),
            id,
            matched: KeyMatch::Previous(usize::from(n)),
        }
    }

    #[test]
    fn a_value_reads_back_what_was_inserted_and_nothing_else() {
        let cache = VerifiedCache::new(100).unwrap();
        let a = value(b'a', 0, b'a');
        cache.insert(a, verified(1));
        let hit = cache.get(&a).expect("inserted");
        assert_eq!(hit.id, verified(1).id);
        assert_eq!(hit.key, verified(1).key);
        assert_eq!(hit.matched, KeyMatch::Previous(1));
        // Same hash and shard characters, one byte different elsewhere.
        for at in [0, 3, 25, 68] {
            assert!(cache.get(&value(b'a', at, b'b')).is_none(), "{at}");
        }
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let cache = VerifiedCache::new(64).unwrap();
        assert_eq!(cache.per_shard, 4);
        for n in 0..=255u8 {
            for c in [b'A', b'z'] {
                // Different hash bytes (26..34) and shard character (35).
                let mut bytes = [c; 69];
                let alphabet = crate::codec::B64_ALPHABET;
                bytes[26] = alphabet[usize::from(n) % 64];
                bytes[27] = alphabet[usize::from(n) / 64];
                bytes[35] = alphabet[usize::from(n) % 64];
                cache.insert(IdValue::new(&bytes).unwrap(), verified(n));
                assert!(cache.len() <= 64);
            }
        }
        assert!(cache.len() > 16, "entries spread over the shards");
    }

    #[test]
    fn capacity_zero_is_no_cache() {
        assert!(VerifiedCache::new(0).is_none());
        assert_eq!(VerifiedCache::new(1).unwrap().per_shard, 1);
    }
}
