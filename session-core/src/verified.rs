//! Session cookie values that verified lately, so that a session's later
//! requests skip the work of verifying the same value again.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use subtle::ConstantTimeEq as _;

use crate::codec::{ID_VALUE_WORDS, IdValue};
use crate::id::SessionId;
use crate::{KeyMatch, StoreKey};

/// What verifying an id cookie's value gave.
#[derive(Clone)]
pub(crate) struct Verified {
    pub(crate) id: SessionId,
    pub(crate) key: StoreKey,
    pub(crate) matched: KeyMatch,
}

/// Words of an entry after its value's: the id, the store key and the key
/// that matched.
const ID_WORDS: usize = crate::ID_LEN / 8;
const KEY_WORDS: usize = 4;
// Whole words, so that no byte of either is left out.
const _: () = assert!(crate::ID_LEN % 8 == 0 && KEY_WORDS * 8 == size_of::<StoreKey>());
const WORDS: usize = ID_VALUE_WORDS + ID_WORDS + KEY_WORDS + 1;

impl Verified {
    fn to_words(&self, value: &IdValue) -> [u64; WORDS] {
        let mut words = [0u64; WORDS];
        let (value_words, rest) = words.split_at_mut(ID_VALUE_WORDS);
        value_words.copy_from_slice(&value.words());
        let (id_words, rest) = rest.split_at_mut(ID_WORDS);
        let (key_words, matched) = rest.split_at_mut(KEY_WORDS);
        put_bytes(id_words, self.id.as_bytes());
        put_bytes(key_words, self.key.as_bytes());
        matched[0] = match self.matched {
            KeyMatch::Current => 0,
            KeyMatch::Previous(i) => (i as u64).saturating_add(1),
        };
        words
    }

    fn from_words(words: &[u64; WORDS]) -> Self {
        let rest = &words[ID_VALUE_WORDS..];
        let (id_words, rest) = rest.split_at(ID_WORDS);
        let (key_words, matched) = rest.split_at(KEY_WORDS);
        Self {
            id: SessionId::from_bytes(get_bytes(id_words)),
            key: StoreKey::from_bytes(get_bytes(key_words)),
            matched: match matched[0] {
                0 => KeyMatch::Current,
                // Written from a `usize`, so it fits.
                #[allow(clippy::cast_possible_truncation)]
                n => KeyMatch::Previous((n - 1) as usize),
            },
        }
    }
}

fn put_bytes(words: &mut [u64], bytes: &[u8]) {
    for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        *word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
    }
}

fn get_bytes<const N: usize>(words: &[u64]) -> [u8; N] {
    let mut bytes = [0u8; N];
    for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    bytes
}

/// One entry of the table: a sequence number, and the words of a value and
/// of what verifying it gave.
///
/// The sequence number is even while the entry is stable and odd while a
/// writer fills it, and each write adds two. A reader reads it, the words,
/// then it again, and keeps what it read only if the number was even and
/// did not change: a read that overlapped a write is a miss, never a mix
/// of two entries. Readers take no lock and write nothing, so a hit costs
/// no locked instruction (each of those waits for every store before it to
/// reach the cache, which under load means cache misses).
#[derive(Default)]
struct Entry {
    seq: AtomicU64,
    words: [AtomicU64; WORDS],
}

/// A direct-mapped table of recently verified session cookie values: a
/// value has one place, picked by a hash of its MAC (uniformly random for
/// every value that verified), and a newer value there replaces it.
///
/// An entry is exactly what verifying its value gave, and always will be:
/// an engine's keys never change (a new key ring makes a new engine, with
/// a new cache), so a value's id, store key and matching key are fixed.
pub(crate) struct VerifiedCache {
    /// Allocated when the first value verifies.
    entries: OnceLock<Box<[Entry]>>,
    /// The number of entries (a power of two) minus one.
    mask: usize,
}

impl VerifiedCache {
    /// A cache of `capacity` entries rounded up to a power of two; `None`
    /// for 0 (no cache).
    pub(crate) fn new(capacity: usize) -> Option<Self> {
        (capacity > 0).then(|| Self {
            entries: OnceLock::new(),
            mask: capacity
                .checked_next_power_of_two()
                .unwrap_or(1 << (usize::BITS - 1))
                - 1,
        })
    }

    fn entry<'a>(entries: &'a [Entry], mask: usize, value: &IdValue) -> &'a Entry {
        // Truncation is the point: the low bits pick the entry.
        #[allow(clippy::cast_possible_truncation)]
        let index = value.mac_hash() as usize & mask;
        &entries[index]
    }

    /// What verifying `value` gave, if it verified lately. The value is
    /// compared whole, in constant time.
    pub(crate) fn get(&self, value: &IdValue) -> Option<Verified> {
        let entry = Self::entry(self.entries.get()?, self.mask, value);
        let seq = entry.seq.load(Ordering::Acquire);
        let mut words = [0u64; WORDS];
        for (word, stored) in words.iter_mut().zip(&entry.words) {
            *word = stored.load(Ordering::Relaxed);
        }
        // Orders the loads above before the check below: if any of them
        // saw a write that began after `seq` was read, the check sees that
        // write's odd number (or a later one).
        fence(Ordering::Acquire);
        // 0: never written (its zero words are no value that verified);
        // odd: being written.
        if seq == 0 || seq % 2 == 1 || entry.seq.load(Ordering::Relaxed) != seq {
            return None;
        }
        // All the value's words, without a branch, then one constant-time
        // test: a miss must not tell how much of a value matched.
        let diff = value
            .words()
            .iter()
            .zip(&words)
            .fold(0u64, |diff, (a, b)| diff | (a ^ b));
        if !bool::from(diff.ct_eq(&0)) {
            return None;
        }
        Some(Verified::from_words(&words))
    }

    /// Remembers that `value` verified as `verified`, in place of whatever
    /// its entry held. Skipped when another thread is writing that entry.
    pub(crate) fn insert(&self, value: &IdValue, verified: &Verified) {
        let entries = self.entries.get_or_init(|| {
            std::iter::repeat_with(Entry::default)
                .take(self.mask + 1)
                .collect()
        });
        let entry = Self::entry(entries, self.mask, value);
        let seq = entry.seq.load(Ordering::Relaxed);
        if seq % 2 == 1
            || entry
                .seq
                .compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // The odd number is visible before any of the words below: a
        // reader that sees one of them sees a changed number.
        fence(Ordering::Release);
        for (stored, word) in entry.words.iter().zip(verified.to_words(value)) {
            stored.store(word, Ordering::Relaxed);
        }
        entry.seq.store(seq + 2, Ordering::Release);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.get().map_or(0, |entries| {
            entries
                .iter()
                .filter(|e| e.seq.load(Ordering::Relaxed) != 0)
                .count()
        })
    }
}

impl std::fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("capacity", &(self.mask + 1))
            .field("allocated", &self.entries.get().is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn assert_is(hit: Option<Verified>, n: u8) {
        let hit = hit.expect("a hit");
        let expected = verified(n);
        assert_eq!(hit.id, expected.id);
        assert_eq!(hit.key, expected.key);
        assert_eq!(hit.matched, expected.matched);
    }

    #[test]
    fn a_value_reads_back_what_was_inserted_and_nothing_else() {
        let cache = VerifiedCache::new(100).unwrap();
        let a = value(b'a', 0, b'a');
        assert!(cache.get(&a).is_none());
        cache.insert(&a, &verified(1));
        assert_is(cache.get(&a), 1);
        // The same MAC characters (the same entry), one byte different
        // elsewhere, the last one included.
        for at in [0, 3, 25, 34, 68] {
            assert!(cache.get(&value(b'a', at, b'b')).is_none(), "{at}");
        }
    }

    /// An entry nobody wrote holds zeros: a value of zero bytes (which
    /// lands on it) must not read as verified.
    #[test]
    fn an_entry_never_written_is_a_miss() {
        let cache = VerifiedCache::new(64).unwrap();
        let zeros = IdValue::new(&[0; 69]).unwrap();
        assert_eq!(zeros.words(), [0; ID_VALUE_WORDS]);
        // The table exists once something verified, elsewhere.
        let a = value(b'a', 0, b'a');
        assert_ne!(
            a.mac_hash() as usize & cache.mask,
            zeros.mac_hash() as usize & cache.mask
        );
        cache.insert(&a, &verified(1));
        assert!(cache.get(&zeros).is_none());
        assert_is(cache.get(&a), 1);
    }

    #[test]
    fn the_key_that_matched_and_the_current_key_read_back() {
        let cache = VerifiedCache::new(1).unwrap();
        let a = value(b'a', 0, b'a');
        let mut current = verified(3);
        current.matched = KeyMatch::Current;
        cache.insert(&a, &current);
        assert_eq!(cache.get(&a).unwrap().matched, KeyMatch::Current);
        cache.insert(&a, &verified(0));
        assert_eq!(cache.get(&a).unwrap().matched, KeyMatch::Previous(0));
    }

    #[test]
    fn a_newer_value_replaces_the_one_in_its_entry() {
        let cache = VerifiedCache::new(64).unwrap();
        let (a, b) = (value(b'a', 0, b'a'), value(b'a', 0, b'b'));
        assert_eq!(a.mac_hash(), b.mac_hash());
        cache.insert(&a, &verified(1));
        cache.insert(&b, &verified(2));
        assert!(cache.get(&a).is_none());
        assert_is(cache.get(&b), 2);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn values_spread_over_the_entries_and_stay_within_the_capacity() {
        let cache = VerifiedCache::new(64).unwrap();
        let alphabet = crate::codec::B64_ALPHABET;
        let values: Vec<IdValue> = (0..64)
            .map(|n| {
                // Different MAC characters (26..34).
                let mut bytes = [b'A'; 69];
                bytes[26] = alphabet[n];
                bytes[33] = alphabet[63 - n];
                IdValue::new(&bytes).unwrap()
            })
            .collect();
        for (n, v) in (0u8..).zip(&values) {
            cache.insert(v, &verified(n));
        }
        assert!(cache.len() <= 64);
        assert!(cache.len() > 16, "{} entries in use", cache.len());
        // Whatever is still there reads back as inserted.
        for (n, v) in (0u8..).zip(&values) {
            if let Some(hit) = cache.get(v) {
                assert_is(Some(hit), n);
            }
        }
    }

    #[test]
    fn capacity_rounds_up_to_a_power_of_two_and_zero_is_no_cache() {
        assert!(VerifiedCache::new(0).is_none());
        assert_eq!(VerifiedCache::new(1).unwrap().mask, 0);
        assert_eq!(VerifiedCache::new(5).unwrap().mask, 7);
        assert_eq!(VerifiedCache::new(8_192).unwrap().mask, 8_191);
        assert_eq!(
            VerifiedCache::new(usize::MAX).unwrap().mask,
            usize::MAX >> 1
        );
        // Nothing is allocated until a value verifies.
        let cache = VerifiedCache::new(8_192).unwrap();
        assert!(cache.entries.get().is_none());
        assert!(cache.get(&value(b'a', 0, b'a')).is_none());
        assert!(cache.entries.get().is_none());
    }

    /// Threads write and read one shared entry at once: a read that
    /// overlaps a write must miss, never return a mix of two entries or
    /// another value's answer.
    #[test]
    fn concurrent_writes_to_one_entry_never_read_torn() {
        let cache = VerifiedCache::new(1).unwrap();
        let hits = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for n in 0..4u8 {
                let (cache, hits) = (&cache, &hits);
                scope.spawn(move || {
                    let mine = value(b'a' + n, 0, b'x');
                    let answer = verified(n * 50);
                    for _ in 0..100_000 {
                        cache.insert(&mine, &answer);
                        if let Some(hit) = cache.get(&mine) {
                            assert_eq!(hit.id, answer.id);
                            assert_eq!(hit.key, answer.key);
                            assert_eq!(hit.matched, answer.matched);
                            hits.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert!(hits.load(Ordering::Relaxed) > 0);
    }
}
