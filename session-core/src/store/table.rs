//! The memory store's hash table: open addressing over cache-line buckets.
//!
//! A store with more sessions than the caches hold pays for every table
//! access in cache misses. A SwissTable (`hashbrown`) keeps its control
//! bytes apart from its slots, so a new session costs two misses (the
//! control group, then the slot) and a lookup of a cold session three (with
//! the record's blob). Here a bucket is one 64-byte cache line holding the
//! slots themselves: finding a key, or a free slot for it, reads that line
//! and sometimes the lines right after it (1.6 on average for a key that
//! is not there, over a doubling cycle), and writing the new slot then
//! hits. Adjacent lines share a page, so only the first read pays for the
//! address translation.
//!
//! - **Probing:** linear, bucket by bucket, from the bucket the hash picks
//!   (its low bits: the memory store's keys are digests, so any bits are as
//!   good as any others). A key can only be found at or before the first
//!   bucket with a free slot. The table trusts its hashes to be uniform: a
//!   store key is the SHA-256 digest of an id the server made, and the
//!   engine looks a cookie's id up only once its signature checks, so no
//!   client can choose keys that share their low bits (such keys would
//!   make long runs here, as they would in any table hashed by them).
//! - **Removal** shifts later entries back (no tombstones), so that rule
//!   keeps holding and lookups never walk past dead slots.
//! - **Load:** at most five eighths of the slots are used (a key that is
//!   not there then reads 2.4 buckets on average at the limit, 1.2 at half
//!   of it; at three quarters it would be 4.5); the table doubles beyond
//!   that. [`Table::retain`] removes in place, and rebuilds the table at
//!   half its size or less when that still leaves room, so a store whose
//!   sessions expired gives its memory back.

/// Slots per bucket: two 32-byte entries fill a cache line.
const SLOTS: usize = 2;
/// Buckets of the first allocation.
const MIN_BUCKETS: usize = 4;
/// The load limit: at most `LOAD_NUM / LOAD_DEN` of the slots are used.
const LOAD_NUM: usize = 5;
const LOAD_DEN: usize = 8;

/// What the table needs of its values: their hash.
pub(super) trait Hashed {
    fn hash(&self) -> u64;
}

/// One cache line of slots (for values of up to 32 bytes).
#[repr(align(64))]
pub(super) struct Bucket<T> {
    slots: [Option<T>; SLOTS],
}

impl<T> Bucket<T> {
    fn empty() -> Self {
        Self {
            slots: std::array::from_fn(|_| None),
        }
    }

    fn is_full(&self) -> bool {
        self.slots.iter().all(Option::is_some)
    }
}

/// Where a value is: its bucket and its slot in that bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Pos {
    bucket: usize,
    slot: usize,
}

/// What [`Table::find_or_vacant`] found.
pub(super) enum Probe {
    /// The key is at this position.
    Found(Pos),
    /// The key is not in the table; this free slot is where it goes.
    Vacant(Pos),
}

pub(super) struct Table<T> {
    buckets: Vec<Bucket<T>>,
    len: usize,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            buckets: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Hashed> Table<T> {
    /// How many values the table holds.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    /// The bucket `hash` starts at. Only called on an allocated table.
    fn home(&self, hash: u64) -> usize {
        // Truncation is the point: the low bits pick the bucket.
        #[allow(clippy::cast_possible_truncation)]
        let low = hash as usize;
        low & self.mask()
    }

    /// The value at `pos`, which [`find`](Self::find) or
    /// [`find_or_vacant`](Self::find_or_vacant) returned (with no change to
    /// the table since).
    pub(super) fn get(&self, pos: Pos) -> &T {
        self.buckets[pos.bucket].slots[pos.slot]
            .as_ref()
            .expect("a position the table returned holds a value")
    }

    /// The value at `pos`, to change in place (its hash must stay the same).
    pub(super) fn get_mut(&mut self, pos: Pos) -> &mut T {
        self.buckets[pos.bucket].slots[pos.slot]
            .as_mut()
            .expect("a position the table returned holds a value")
    }

    /// The position of the value with `hash` for which `eq` holds.
    pub(super) fn find(&self, hash: u64, eq: impl Fn(&T) -> bool) -> Option<Pos> {
        if self.buckets.is_empty() {
            return None;
        }
        match self.probe(hash, eq) {
            Probe::Found(pos) => Some(pos),
            Probe::Vacant(_) => None,
        }
    }

    /// The position of the value with `hash` for which `eq` holds, or the
    /// free slot where a value with that hash goes. Makes room for one more
    /// value first, so a [`Probe::Vacant`] can always be filled with
    /// [`put`](Self::put).
    pub(super) fn find_or_vacant(&mut self, hash: u64, eq: impl Fn(&T) -> bool) -> Probe {
        self.reserve_one();
        self.probe(hash, eq)
    }

    /// Walks the buckets from `hash`'s home to the value for which `eq`
    /// holds, or to the first free slot: nothing was ever pushed past a
    /// bucket with one. Only called on an allocated table.
    fn probe(&self, hash: u64, eq: impl Fn(&T) -> bool) -> Probe {
        let mut bucket = self.home(hash);
        loop {
            let mut vacant = None;
            for (slot, value) in self.buckets[bucket].slots.iter().enumerate() {
                match value {
                    Some(value) if value.hash() == hash && eq(value) => {
                        return Probe::Found(Pos { bucket, slot });
                    }
                    Some(_) => {}
                    None => vacant = vacant.or(Some(slot)),
                }
            }
            if let Some(slot) = vacant {
                return Probe::Vacant(Pos { bucket, slot });
            }
            bucket = (bucket + 1) & self.mask();
        }
    }

    /// Fills the free slot [`find_or_vacant`](Self::find_or_vacant) just
    /// returned.
    pub(super) fn put(&mut self, pos: Pos, value: T) {
        let slot = &mut self.buckets[pos.bucket].slots[pos.slot];
        debug_assert!(slot.is_none(), "put into a slot in use");
        *slot = Some(value);
        self.len += 1;
    }

    /// Takes the value at `pos` out, and moves later values back so that
    /// every value stays reachable from its home bucket.
    pub(super) fn remove(&mut self, pos: Pos) -> T {
        let was_full = self.buckets[pos.bucket].is_full();
        let value = self.buckets[pos.bucket].slots[pos.slot]
            .take()
            .expect("a position the table returned holds a value");
        self.len -= 1;
        if !was_full {
            // No probe ever went past this bucket.
            return value;
        }
        let mask = self.mask();
        let mut hole = pos;
        let mut bucket = pos.bucket;
        loop {
            bucket = (bucket + 1) & mask;
            let full = self.buckets[bucket].is_full();
            // A value here may fill the hole if its probe passed the hole's
            // bucket: it is at least as far from its home as from the hole.
            let behind = bucket.wrapping_sub(hole.bucket) & mask;
            let movable = self.buckets[bucket].slots.iter().position(|value| {
                value
                    .as_ref()
                    .is_some_and(|v| bucket.wrapping_sub(self.home(v.hash())) & mask >= behind)
            });
            if let Some(slot) = movable {
                let moved = self.buckets[bucket].slots[slot].take();
                self.buckets[hole.bucket].slots[hole.slot] = moved;
                hole = Pos { bucket, slot };
            }
            // Values beyond a bucket that had a free slot never probed
            // through it (nor through the hole).
            if !full {
                return value;
            }
        }
    }

    /// Keeps the values for which `keep` holds and returns how many it
    /// dropped. Removes in place; then, if what is left and half as much
    /// again fits in half the buckets or fewer, rebuilds the table at that
    /// size, so its memory shrinks too. It never grows.
    pub(super) fn retain(&mut self, keep: impl Fn(&T) -> bool) -> usize {
        let before = self.len;
        for bucket in 0..self.buckets.len() {
            let mut slot = 0;
            while slot < SLOTS {
                let drop = self.buckets[bucket].slots[slot]
                    .as_ref()
                    .is_some_and(|value| !keep(value));
                if drop {
                    // A later value may move into this slot: look again.
                    // (Values only move back, towards the hole, so none is
                    // skipped; one that wraps around from the first buckets
                    // is looked at twice.)
                    self.remove(Pos { bucket, slot });
                } else {
                    slot += 1;
                }
            }
        }
        // Shrunk whether or not this dropped anything: records deleted or
        // taken since (which never shrink the table themselves) leave it
        // larger than its values need.
        self.shrink();
        before - self.len
    }

    /// Rebuilds the table smaller when its values fit in half of it with
    /// room to spare; frees it when it is empty.
    fn shrink(&mut self) {
        if self.len == 0 {
            self.buckets = Vec::new();
            return;
        }
        let buckets = buckets_for(self.len + self.len / 2);
        if buckets <= self.buckets.len() / 2 {
            self.rebuild(buckets);
        }
    }

    /// Makes sure one more value fits under the load limit.
    fn reserve_one(&mut self) {
        let slots = self.buckets.len() * SLOTS;
        if (self.len + 1) * LOAD_DEN <= slots * LOAD_NUM {
            return;
        }
        self.rebuild((self.buckets.len() * 2).max(MIN_BUCKETS));
    }

    /// Moves every value into a new table of `buckets` buckets.
    fn rebuild(&mut self, buckets: usize) {
        let old = std::mem::take(&mut self.buckets);
        self.len = 0;
        self.allocate(buckets);
        for value in old.into_iter().flat_map(|b| b.slots).flatten() {
            self.push(value);
        }
    }

    fn allocate(&mut self, buckets: usize) {
        debug_assert!(buckets.is_power_of_two());
        self.buckets = (0..buckets).map(|_| Bucket::empty()).collect();
    }

    /// Adds a value known not to be in the table, with room for it.
    fn push(&mut self, value: T) {
        let mut bucket = self.home(value.hash());
        loop {
            if let Some(slot) = self.buckets[bucket].slots.iter_mut().find(|s| s.is_none()) {
                *slot = Some(value);
                self.len += 1;
                return;
            }
            bucket = (bucket + 1) & self.mask();
        }
    }
}

/// The number of buckets (a power of two) whose slots hold `values` values
/// within the load limit.
fn buckets_for(values: usize) -> usize {
    (values * LOAD_DEN)
        .div_ceil(LOAD_NUM * SLOTS)
        .next_power_of_two()
        .max(MIN_BUCKETS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A value whose hash the test picks: few distinct hashes make long
    /// runs of full buckets, wrapping around the table's end.
    #[derive(Debug, Clone, PartialEq)]
    struct V {
        key: u32,
        hash: u64,
    }

    impl Hashed for V {
        fn hash(&self) -> u64 {
            self.hash
        }
    }

    /// A small deterministic generator (xorshift64*), so a failure repeats.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Every value is reachable: all buckets from its home up to its own
    /// are full, and the count is right.
    fn check_invariant(table: &Table<V>) {
        let mut count = 0;
        for (at, bucket) in table.buckets.iter().enumerate() {
            for value in bucket.slots.iter().flatten() {
                count += 1;
                let mut b = table.home(value.hash);
                while b != at {
                    assert!(
                        table.buckets[b].is_full(),
                        "{value:?} at bucket {at} is past bucket {b}, which has a free slot"
                    );
                    b = (b + 1) & table.mask();
                }
            }
        }
        assert_eq!(count, table.len());
        if !table.buckets.is_empty() {
            assert!(table.len() * LOAD_DEN <= table.buckets.len() * SLOTS * LOAD_NUM);
        }
    }

    fn lookup(table: &Table<V>, key: u32, hash: u64) -> Option<V> {
        table
            .find(hash, |v| v.key == key)
            .map(|pos| table.get(pos).clone())
    }

    /// Random inserts, removals and sweeps against a `HashMap`, with hashes
    /// drawn from a few values (hard collisions) or many, over small and
    /// larger sets of keys.
    #[test]
    fn agrees_with_a_hash_map_under_random_operations() {
        let runs = [
            (1, 3, 300),
            (2, 17, 300),
            (3, 1 << 40, 300),
            (4, 64, 300),
            (5, 1, 300),
            (6, 1 << 40, 5_000),
            (7, 1_000, 5_000),
        ];
        for (seed, distinct_hashes, keys) in runs {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
            let mut table = Table::<V>::default();
            let mut model: HashMap<u32, u64> = HashMap::new();
            let hash_of =
                |key: u32| u64::from(key).wrapping_mul(0xD6E8_FEB8_6659_FD93) % distinct_hashes;
            for step in 0..20_000 {
                let key = u32::try_from(rng.below(keys)).unwrap();
                let hash = hash_of(key);
                match rng.below(10) {
                    0..=4 => match table.find_or_vacant(hash, |v| v.key == key) {
                        Probe::Found(pos) => {
                            assert!(model.contains_key(&key), "step {step}: {key} found");
                            assert_eq!(table.get(pos).key, key);
                        }
                        Probe::Vacant(pos) => {
                            assert!(!model.contains_key(&key), "step {step}: {key} missed");
                            table.put(pos, V { key, hash });
                            model.insert(key, hash);
                        }
                    },
                    5..=7 => {
                        let found = table.find(hash, |v| v.key == key);
                        assert_eq!(found.is_some(), model.contains_key(&key), "step {step}");
                        if let Some(pos) = found {
                            assert_eq!(table.remove(pos), V { key, hash });
                            model.remove(&key);
                        }
                    }
                    8 => {
                        let cut = u32::try_from(rng.below(300)).unwrap();
                        let expected = model.keys().filter(|&&k| k % 7 == cut % 7).count();
                        let buckets = table.buckets.len();
                        assert_eq!(table.retain(|v| v.key % 7 != cut % 7), expected);
                        assert!(table.buckets.len() <= buckets, "step {step}: retain grew");
                        model.retain(|&k, _| k % 7 != cut % 7);
                    }
                    _ => {
                        assert_eq!(
                            lookup(&table, key, hash).map(|v| v.key),
                            model.contains_key(&key).then_some(key)
                        );
                    }
                }
                check_invariant(&table);
            }
            for (&key, &hash) in &model {
                assert_eq!(lookup(&table, key, hash), Some(V { key, hash }));
            }
        }
    }

    #[test]
    fn removal_shifts_a_run_back_across_the_table_end() {
        let mut table = Table::<V>::default();
        // Four buckets; every value's home is the last one, so the run
        // wraps around to the first buckets.
        let last = 3;
        for key in 0..5 {
            match table.find_or_vacant(last, |v| v.key == key) {
                Probe::Vacant(pos) => table.put(pos, V { key, hash: last }),
                Probe::Found(_) => panic!("{key} found before it was added"),
            }
        }
        assert_eq!(table.buckets.len(), MIN_BUCKETS);
        let first = table.find(last, |v| v.key == 0).unwrap();
        assert_eq!(first.bucket, 3);
        table.remove(first);
        check_invariant(&table);
        for key in 1..5 {
            assert_eq!(lookup(&table, key, last).map(|v| v.key), Some(key));
        }
        assert_eq!(lookup(&table, 0, last), None);
        assert!(
            table.buckets[3].is_full(),
            "the run moved back into its home"
        );
    }

    /// A well spread hash of `key`.
    fn spread(key: u32) -> u64 {
        u64::from(key).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// A table holding the keys `0..n`, hashed by [`spread`].
    fn filled(n: u32) -> Table<V> {
        let mut table = Table::<V>::default();
        for key in 0..n {
            let hash = spread(key);
            let Probe::Vacant(pos) = table.find_or_vacant(hash, |v| v.key == key) else {
                panic!("{key} found before it was added");
            };
            table.put(pos, V { key, hash });
        }
        table
    }

    #[test]
    fn retain_gives_memory_back_and_grows_again() {
        let mut table = filled(10_000);
        let grown = table.buckets.len();
        assert!(grown * SLOTS * LOAD_NUM >= 10_000 * LOAD_DEN);
        // Dropping a few leaves the size alone.
        assert_eq!(table.retain(|v| v.key >= 10), 10);
        assert_eq!(table.buckets.len(), grown);
        check_invariant(&table);
        assert_eq!(table.retain(|v| v.key < 110), 9_890);
        assert_eq!(table.len(), 100);
        assert!(
            table.buckets.len() <= 128,
            "{} buckets",
            table.buckets.len()
        );
        check_invariant(&table);
        assert_eq!(table.retain(|_| true), 0);
        assert_eq!(table.retain(|_| false), 100);
        assert!(table.buckets.is_empty());
        assert_eq!(table.find(1, |_| true), None);
    }

    /// Removals never shrink the table; the next `retain` (a sweep) does,
    /// even when it drops nothing itself.
    #[test]
    fn a_retain_that_drops_nothing_still_gives_back_what_removals_left() {
        let mut table = filled(10_000);
        let grown = table.buckets.len();
        for key in 100..10_000u32 {
            let pos = table.find(spread(key), |v| v.key == key).expect("added");
            table.remove(pos);
        }
        assert_eq!(table.buckets.len(), grown, "removals keep the size");
        assert_eq!(table.retain(|_| true), 0);
        assert_eq!(table.len(), 100);
        assert!(
            table.buckets.len() <= 128,
            "{} buckets",
            table.buckets.len()
        );
        check_invariant(&table);
        for key in 0..100u32 {
            assert_eq!(lookup(&table, key, spread(key)).map(|v| v.key), Some(key));
        }
    }
}
