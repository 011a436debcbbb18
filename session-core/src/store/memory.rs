//! The in-memory store: sharded, compact, and it frees expired records.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::table::{Bucket, Hashed, Probe, Table};
use super::{ImmediateStore, SaveOutcome, SessionStore, packed};
use crate::clock::{Clock, SystemClock};
use crate::{Lifetime, Record, StoreError, StoreKey, Timestamp};

const SHARDS: usize = 256;

/// The largest record a store keeps unless told otherwise, in bytes (as
/// the store encodes it): 1 MiB. A session is the user's, but what goes
/// into it often comes from requests (a cart, a history), and without a
/// limit a client that keeps adding grows its record without end, each
/// save copying all of it. See [`MemoryStore::with_max_record_size`].
///
/// The limit counts encoded bytes; a request that opens the session holds
/// it decoded, which takes more room: a 32-byte `serde_json::Value` for
/// each value, where the memory store's encoding takes one byte for a
/// `null`, `true` or `false` and two for a small number in an array (and
/// JSON, as Redis keeps it, two or more), so a 1 MiB record may cost up
/// to about 32 MiB of memory for each request that reads it at a time. Size the limit
/// (and what the app lets clients put into a session) with that in mind.
pub const DEFAULT_MAX_RECORD_SIZE: usize = 1 << 20;
/// How often (at most) a shard is swept for expired records, in ms.
const SWEEP_EVERY_MS: i64 = 30_000;

/// The embedded default store: every session in this process's memory.
///
/// - **No global lock.** Records are spread over 256 shards by their key, each
///   behind its own mutex that is held only for a map operation, never across
///   an `.await`. Growing one shard rehashes 1/256 of the records, so there
///   is no process-wide pause as the store grows to millions of sessions.
/// - **Bounded.** Expired records are never returned, and each shard drops its
///   expired records at most every 30 seconds, on a write, so abandoned
///   sessions are freed. [`MemoryStore::with_max_sessions`] caps the live
///   ones too, so that a flood of new sessions is refused instead of taking
///   the process (and every session in it) down; and no record grows past
///   [`MemoryStore::with_max_record_size`] (1 MiB unless told otherwise).
/// - **Compact.** A record is kept encoded (its data in a binary form of
///   JSON values, quick to decode and never seen outside the process): about
///   150–200 bytes for a small session such as `{"views":1}`.
///
/// Sessions live as long as the process: use a shared store such as
/// `session-redis` to survive restarts or to run more than one server.
///
/// The engine's requests are judged at the time the request read its
/// session, the same time its new deadline is counted from: a request that
/// found its session live saves it even when the deadline passes while the
/// handler runs (the session was in use before it), as long as nothing
/// freed the expired record meanwhile: another request of the session, or
/// any write to the same shard that sweeps it, judged at its own later
/// time, may have, and the late save then finds the record "missing" (a
/// log-in, no session to carry over). A store shared between servers
/// judges at its own clock, and may answer such a late save with
/// "missing" too.
///
/// With millions of sessions, nearly every access to the store misses the
/// processor's caches and its address translation buffers. On Linux with
/// glibc 2.35 or later, starting the server with
/// `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` lets the allocator back the
/// store with transparent huge pages (when
/// `/sys/kernel/mm/transparent_hugepage/enabled` says `madvise` or
/// `always`). In this crate's `memory_store` bench (2 million sessions, one
/// thread) it took the 99th percentile of a create from 3.8 to 0.8 µs and
/// the median of a random load from 0.84–1.05 to 0.69–0.73 µs, for a
/// slowest single create of about 4 ms instead of 1–2 ms.
///
/// Its clock decides what has expired: [`SystemClock`] unless given one with
/// [`MemoryStore::with_clock`] (tests pass a [`ManualClock`](crate::ManualClock)).
///
/// ```
/// use std::sync::Arc;
/// use session_core::{MemoryStore, SessionStore};
///
/// let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
/// ```
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    clock: Arc<dyn Clock>,
    /// The most live records one shard holds ([`MemoryStore::with_max_sessions`]).
    max_per_shard: usize,
    /// The limit as given, for `Debug`.
    max_sessions: Option<usize>,
    /// The largest blob kept ([`MemoryStore::with_max_record_size`]).
    max_record_size: usize,
}

/// Says nothing of the records: their keys are secrets as good as the ids
/// (a store key is all it takes to read or overwrite a record here).
impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.shards.len())
            .field("clock", &self.clock)
            .field("max_sessions", &self.max_sessions)
            .field("max_record_size", &self.max_record_size)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Shard {
    map: Table<Entry>,
    next_sweep_ms: i64,
    /// While the shard is at its limit: no later than the earliest
    /// deadline among its records (the earliest when they were last
    /// counted, lowered by every create and save since: a session's own
    /// lifetime can move a deadline earlier), before which no record can
    /// have expired, so a create is refused without looking at them again.
    full_until_ms: i64,
}

/// One record in as little memory as it takes. In the table's slot, 32
/// bytes: the key's first 64 bits (the table's hash, and the first test of
/// equality), the deadline (the sweep reads only that) and the blob. In the
/// blob, one exact-size allocation: the key's other 24 bytes; created, last
/// seen and version as little-endian 64-bit numbers; a flags byte (whether
/// the record has a deadline at all, whether it has a lifetime of its
/// own); the lifetime's 8 bytes when it has; then the data (`packed`'s
/// binary form).
///
/// The slot is small because, once a store holds more sessions than the
/// caches do, every table access is a cache miss: two 32-byte slots share
/// one cache line, and a new session reads that line (and on average 0.6
/// lines right after it) and writes it while it is cached (see `table`).
/// Looking a key up reads the blob only when the 64-bit prefixes match,
/// which for a key that is not there happens with odds of 2⁻⁶⁴ per slot.
struct Entry {
    /// The key's first eight bytes, as [`StoreKey::prefix_u64`] reads them.
    head: u64,
    /// `i64::MAX` when the record never expires (or when its deadline is
    /// that far out: the header's flag tells the two apart).
    expires_ms: i64,
    blob: Box<[u8]>,
}

// The layout the figures above are for: two slots to a cache line.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(size_of::<Entry>() == 32 && size_of::<Bucket<Entry>>() == 64);

/// The part of the key kept in the blob (its bytes 8..32), at its start.
const KEY_REST: usize = 24;
/// Offset of the flags byte, and the header's length.
const FLAGS: usize = KEY_REST + 24;
const HEADER: usize = FLAGS + 1;
/// Flag: the record has a deadline.
const HAS_DEADLINE: u8 = 1;
/// Flag: the record has a lifetime of its own, in the
/// [`LIFETIME_LEN`] bytes after the header (little-endian).
const HAS_LIFETIME: u8 = 2;
const LIFETIME_LEN: usize = 8;

fn expires_ms(record: &Record) -> i64 {
    record.expires_at.map_or(i64::MAX, Timestamp::unix_ms)
}

/// Records up to this size (header included) are encoded on the stack.
const INLINE: usize = 256;

/// Encodes the blob of `record` under `key` into `buf` when it fits (no
/// heap allocation), into a new buffer of exactly its size otherwise.
///
/// # Errors
///
/// [`StoreError::Encoding`] when the data nests deeper than
/// [`packed::MAX_DEPTH`] arrays and objects, [`StoreError::TooLarge`] when
/// the blob is longer than `limit` (found before a buffer is allocated).
fn encode<'b>(
    key: &StoreKey,
    record: &Record,
    buf: &'b mut [u8; INLINE],
    limit: usize,
) -> Result<Cow<'b, [u8]>, StoreError> {
    let mut out = packed::Writer::new(buf);
    write_blob(&mut out, key, record);
    match out.finish() {
        Ok(len) if len <= limit => return Ok(Cow::Borrowed(&buf[..len])),
        Ok(len) => return Err(StoreError::TooLarge { size: len, limit }),
        Err(packed::Unwritten::TooDeep) => return Err(too_deep()),
        Err(packed::Unwritten::Full) => {}
    }
    let mut count = packed::Writer::counting();
    write_blob(&mut count, key, record);
    let size = count.finish().map_err(|_| too_deep())?;
    if size > limit {
        return Err(StoreError::TooLarge { size, limit });
    }
    let mut blob = vec![0; size];
    let mut out = packed::Writer::new(&mut blob);
    write_blob(&mut out, key, record);
    match out.finish() {
        Ok(len) if len == blob.len() => Ok(Cow::Owned(blob)),
        // The count and the write walk the same data the same way.
        _ => Err(StoreError::Encoding(serde::ser::Error::custom(
            "memory store: a record's size was miscounted (a bug)",
        ))),
    }
}

fn too_deep() -> StoreError {
    StoreError::Encoding(serde::ser::Error::custom(format!(
        "session data nests more than {} arrays and objects deep",
        packed::MAX_DEPTH
    )))
}

/// The rest of the key; created, last seen and version as little-endian
/// 64-bit numbers; the flags; the lifetime when it is the session's own;
/// then the data (`packed`). Forced inline: each of `encode`'s three calls
/// is specialized to its writer (the stack buffer's is every save's).
#[inline(always)]
fn write_blob(out: &mut packed::Writer<'_>, key: &StoreKey, record: &Record) {
    out.put(&key.as_bytes()[8..]);
    out.put(&record.created_at.unix_ms().to_le_bytes());
    out.put(&record.last_seen.unix_ms().to_le_bytes());
    out.put(&record.version.to_le_bytes());
    let flags = u8::from(record.expires_at.is_some()) * HAS_DEADLINE;
    if record.lifetime.is_default() {
        out.put(&[flags]);
    } else {
        write_lifetime(out, flags, record.lifetime);
    }
    packed::write_data(out, &record.data);
}

/// The flags and the lifetime of a record with a lifetime of its own: out
/// of line, so that the common blob is written in line.
#[cold]
#[inline(never)]
fn write_lifetime(out: &mut packed::Writer<'_>, flags: u8, lifetime: Lifetime) {
    out.put(&[flags | HAS_LIFETIME]);
    out.put(&lifetime.to_bits().to_le_bytes());
}

/// The blob in an allocation of exactly its size: a copy of the stack
/// buffer, or the exact-size heap buffer itself (shrinking a larger buffer
/// in place would strand its unused tail in the allocator, one per record).
fn boxed(blob: Cow<'_, [u8]>) -> Box<[u8]> {
    match blob {
        Cow::Borrowed(bytes) => Box::from(bytes),
        Cow::Owned(vec) => vec.into_boxed_slice(),
    }
}

impl Entry {
    /// A new entry: one allocation of exactly the blob's size.
    fn new(key: &StoreKey, record: &Record, blob: Cow<'_, [u8]>) -> Self {
        Self {
            head: key.prefix_u64(),
            expires_ms: expires_ms(record),
            blob: boxed(blob),
        }
    }

    /// Overwrites the entry, reusing its allocation when the size is the
    /// same (a counter that keeps its number of digits, say).
    fn overwrite(&mut self, record: &Record, blob: Cow<'_, [u8]>) {
        if self.blob.len() == blob.len() {
            self.blob.copy_from_slice(&blob);
        } else {
            self.blob = boxed(blob);
        }
        self.expires_ms = expires_ms(record);
    }
}

/// The key's first 64 bits are its hash: store keys are digests.
impl Hashed for Entry {
    fn hash(&self) -> u64 {
        self.head
    }
}

/// The rest of the test of equality with `key`, once the table found the
/// prefix in the slot: the key's other bytes, in the blob.
fn is(key: &StoreKey) -> impl Fn(&Entry) -> bool + '_ {
    move |entry| entry.blob[..KEY_REST] == key.as_bytes()[8..]
}

impl Entry {
    fn field(&self, i: usize) -> [u8; 8] {
        let at = KEY_REST + i * 8;
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&self.blob[at..at + 8]);
        bytes
    }

    fn version(&self) -> u64 {
        u64::from_le_bytes(self.field(2))
    }

    /// Forced inline into every load: the common record (no lifetime of
    /// its own) reads in line. The header is read whole before the data,
    /// one length check for all of it.
    #[inline(always)]
    fn decode(&self) -> Result<Record, StoreError> {
        let header = self
            .blob
            .first_chunk::<HEADER>()
            .ok_or(packed::Malformed("truncated header"))
            .map_err(malformed)?;
        let word = |i: usize| {
            let at = KEY_REST + i * 8;
            <[u8; 8]>::try_from(&header[at..at + 8]).unwrap_or_default()
        };
        let created_at = Timestamp::from_unix_ms(i64::from_le_bytes(word(0)));
        let last_seen = Timestamp::from_unix_ms(i64::from_le_bytes(word(1)));
        let version = u64::from_le_bytes(word(2));
        let flags = header[FLAGS];
        let (lifetime, start) = if flags & HAS_LIFETIME == 0 {
            (Lifetime::default(), HEADER)
        } else {
            self.own_lifetime()?
        };
        let data = packed::read_data(&self.blob[start..]).map_err(malformed)?;
        Ok(Record {
            data,
            created_at,
            last_seen,
            expires_at: (flags & HAS_DEADLINE != 0)
                .then_some(Timestamp::from_unix_ms(self.expires_ms)),
            version,
            lifetime,
        })
    }

    /// The lifetime of a record that has one of its own, and where its
    /// data starts.
    #[cold]
    #[inline(never)]
    fn own_lifetime(&self) -> Result<(Lifetime, usize), StoreError> {
        let bytes = self
            .blob
            .get(HEADER..HEADER + LIFETIME_LEN)
            .and_then(|bytes| <[u8; LIFETIME_LEN]>::try_from(bytes).ok())
            .ok_or(packed::Malformed("truncated lifetime"))
            .map_err(malformed)?;
        let lifetime = Lifetime::from_bits(u64::from_le_bytes(bytes))
            .ok_or(packed::Malformed("malformed lifetime"))
            .map_err(malformed)?;
        Ok((lifetime, HEADER + LIFETIME_LEN))
    }

    fn live_at(&self, now_ms: i64) -> bool {
        now_ms < self.expires_ms
    }
}

/// A blob the memory store cannot read (a bug: it reads only what it wrote).
#[cold]
fn malformed(packed::Malformed(why): packed::Malformed) -> StoreError {
    StoreError::Encoding(serde::de::Error::custom(format!(
        "memory store record: {why}"
    )))
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store on the system clock.
    #[must_use]
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty store whose notion of "expired" follows `clock`.
    #[must_use]
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        Self {
            shards,
            clock,
            max_per_shard: usize::MAX,
            max_sessions: None,
            max_record_size: DEFAULT_MAX_RECORD_SIZE,
        }
    }

    /// Holds at most about `max` live sessions: a create that would go past
    /// the limit first frees the expired records of its shard, and if that
    /// is not enough fails with [`StoreError::Backend`] ("memory store
    /// full"), which the adapters answer with a 500 and log. Sessions that
    /// exist keep working: loads, saves and deletes are never refused. By
    /// default there is no limit, and a flood of requests that each start
    /// a session grows the store until the process runs out of memory,
    /// losing every session with it.
    ///
    /// The limit is kept per shard, without a global count: each of the
    /// 256 shards holds at most `max / 256` sessions, rounded up, so the
    /// store holds at most `max` rounded up to a multiple of 256. Refusals
    /// begin before the store holds `max`, when the one shard a new id
    /// falls in is full: with ids spread at random, at about 95 % of a
    /// limit of a million, 85 % of 100,000, and from a third or less of
    /// limits under a few thousand. A log-in that moves a session to a new
    /// id creates the new record first, so it can be refused too. Count
    /// about 150–200 bytes per small session.
    ///
    /// A full shard counts its records again only once the earliest
    /// deadline among them has passed: until then a create is refused at
    /// once, under the shard's lock for no longer than an ordinary create.
    ///
    /// The engine's own memory store (the default storage) takes its limit
    /// from [`SessionConfig::with_max_sessions`](crate::SessionConfig::with_max_sessions).
    /// A store of your own, given as the engine's store:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use session_core::{Engine, Key, KeyRing, MemoryStore, SessionConfig};
    ///
    /// let store = MemoryStore::new().with_max_sessions(1_000_000);
    /// let config = SessionConfig::new(KeyRing::new(Key::generate())).with_store(Arc::new(store));
    /// let engine = Engine::new(config).unwrap();
    /// # let _ = engine;
    /// ```
    #[must_use]
    pub fn with_max_sessions(mut self, max: usize) -> Self {
        self.max_per_shard = max.div_ceil(SHARDS);
        self.max_sessions = Some(max);
        self
    }

    /// Keeps no record larger than `bytes` as this store encodes it (a
    /// 49-byte header, 57 with a session's own lifetime, then the data in
    /// a binary form of JSON about as long
    /// as the data's JSON): a create or save of a larger one fails with
    /// [`StoreError::TooLarge`], which the adapters answer with a 500 and
    /// log, and the stored record stays as it was. The session goes on
    /// working with its old data; requests that do not make it larger
    /// succeed. A new session or a log-in (which writes the session under a
    /// new id) whose record would be too large fails the same way, and the
    /// old session, if any, stays. [`DEFAULT_MAX_RECORD_SIZE`] (1 MiB)
    /// unless set; `usize::MAX` lifts the limit.
    ///
    /// A record stored under a higher limit (another store's, before a
    /// deployment lowered it) can be read and deleted: the engine skips
    /// the touch of such a session with a warning instead of failing the
    /// request, so it ends at its old idle deadline unless a request makes
    /// it small enough to save.
    ///
    /// The check is one comparison for records of up to 256 bytes (encoded
    /// on the stack), and for larger ones it reads the count the store
    /// makes anyway before allocating, so a refused record is never copied.
    ///
    /// The engine's own memory store takes its limit from
    /// [`SessionConfig::with_max_record_size`](crate::SessionConfig::with_max_record_size).
    ///
    /// ```
    /// use session_core::{ImmediateStore, MemoryStore, Record, StoreError, StoreKey};
    /// use serde_json::json;
    ///
    /// let store = MemoryStore::new().with_max_record_size(1024);
    /// let key = StoreKey::from_bytes([7; 32]);
    /// let mut record = Record::new(time::OffsetDateTime::now_utc(), None);
    /// record.data.insert("note", json!("x".repeat(2000)));
    /// assert!(matches!(
    ///     store.create_now(&key, &record),
    ///     Err(StoreError::TooLarge { limit: 1024, .. })
    /// ));
    /// assert_eq!(store.load_now(&key).unwrap(), None, "nothing was written");
    /// ```
    #[must_use]
    pub fn with_max_record_size(mut self, bytes: usize) -> Self {
        self.max_record_size = bytes;
        self
    }

    /// How many records are held, expired ones not yet freed included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    /// Whether no record is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Frees every expired record now, and returns how many were freed.
    /// (The store also does this by itself, shard by shard, as it is written.)
    pub fn purge_expired(&self) -> usize {
        let now_ms = self.clock.now_unix_ms();
        self.shards
            .iter()
            .map(|s| {
                let mut shard = lock(s);
                shard.map.retain(|e| e.live_at(now_ms))
            })
            .sum()
    }

    fn shard(&self, key: &StoreKey) -> MutexGuard<'_, Shard> {
        // The last byte picks the shard; the table hashes with the first
        // eight, so the two never correlate.
        let index = usize::from(key.as_bytes()[31]) % SHARDS;
        lock(&self.shards[index])
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_unix_ms()
    }
}

/// How far before the last sweep a write's time must lie for the clock to
/// count as stepped back: well past the age of a request's time (a write is
/// judged at the time its request read the session, so one that ran long
/// writes at a time before sweeps that others made meanwhile).
const STEPPED_BACK_MS: i64 = 10 * SWEEP_EVERY_MS;

/// Whether a write at `now_ms` sweeps its shard, whose next sweep is due
/// at `next_ms`: every [`SWEEP_EVERY_MS`], and at once after the wall
/// clock stepped back by more than [`STEPPED_BACK_MS`] (NTP, an
/// administrator), when the next sweep would otherwise wait for the clock
/// to catch up and expired records would pile up meanwhile.
#[inline]
fn sweep_due(next_ms: i64, now_ms: i64) -> bool {
    now_ms >= next_ms || next_ms.saturating_sub(now_ms) > SWEEP_EVERY_MS + STEPPED_BACK_MS
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // Nothing under a shard lock panics but an allocation failure, which
    // aborts the process: a poisoned lock is not one a half-done update
    // left behind. (A panic inside `Table::rebuild`, between taking the
    // old buckets and filling the new ones, would lose the shard's records;
    // only a capacity overflow could cause it, far beyond memory.)
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shard {
    fn remove(&mut self, key: &StoreKey) {
        if let Some(pos) = self.map.find(key.prefix_u64(), is(key)) {
            self.map.remove(pos);
        }
    }

    fn sweep_if_due(&mut self, now_ms: i64) {
        if sweep_due(self.next_sweep_ms, now_ms) {
            self.map.retain(|e| e.live_at(now_ms));
            self.next_sweep_ms = now_ms.saturating_add(SWEEP_EVERY_MS);
        }
    }
}

// The operations themselves; the async trait answers with them at once.
impl ImmediateStore for MemoryStore {
    fn load_now(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.load_at(key, self.now_ms())
    }

    fn create_now(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.create_at(key, record, || self.now_ms())
    }

    fn save_now(
        &self,
        key: &StoreKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError> {
        self.save_at(key, record, expected_version, || self.now_ms())
    }

    fn delete_now(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.shard(key).remove(key);
        Ok(())
    }

    fn take_now(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.take_at(key, self.now_ms())
    }
}

/// The engine's own memory store (which shares the engine's clock) at a
/// time the engine has already read, so that the store does not read the
/// clock again: a request with a session would otherwise read it two or
/// three times (about 14 ns each with the coarse system clock, 40 ns with
/// a full-precision one on a 2-vCPU VM).
pub(crate) struct MemoryAt<'a> {
    pub(crate) store: &'a MemoryStore,
    pub(crate) now_ms: i64,
}

impl ImmediateStore for MemoryAt<'_> {
    fn load_now(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.store.load_at(key, self.now_ms)
    }

    fn create_now(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.store.create_at(key, record, || self.now_ms)
    }

    fn save_now(
        &self,
        key: &StoreKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError> {
        self.store
            .save_at(key, record, expected_version, || self.now_ms)
    }

    fn delete_now(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.store.delete_now(key)
    }

    fn take_now(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.store.take_at(key, self.now_ms)
    }
}

/// The operations, at `now_ms` (read after encoding, outside the lock, for
/// writes).
impl MemoryStore {
    fn load_at(&self, key: &StoreKey, now_ms: i64) -> Result<Option<Record>, StoreError> {
        let mut shard = self.shard(key);
        let Some(pos) = shard.map.find(key.prefix_u64(), is(key)) else {
            return Ok(None);
        };
        if shard.map.get(pos).live_at(now_ms) {
            return shard.map.get(pos).decode().map(Some);
        }
        shard.map.remove(pos);
        Ok(None)
    }

    fn create_at(
        &self,
        key: &StoreKey,
        record: &Record,
        now_ms: impl FnOnce() -> i64,
    ) -> Result<(), StoreError> {
        let mut buf = [0u8; INLINE];
        let entry = Entry::new(
            key,
            record,
            encode(key, record, &mut buf, self.max_record_size)?,
        );
        let now_ms = now_ms();
        let mut shard = self.shard(key);
        shard.sweep_if_due(now_ms);
        shard.full_until_ms = shard.full_until_ms.min(entry.expires_ms);
        if shard.map.len() >= self.max_per_shard {
            return self.create_in_full(&mut shard, key, entry, now_ms);
        }
        // One probe of the table: with many sessions its bucket is a cache
        // miss, paid once (the write that follows hits).
        match shard.map.find_or_vacant(entry.head, is(key)) {
            Probe::Found(existing) if shard.map.get(existing).live_at(now_ms) => {
                Err(StoreError::Exists)
            }
            Probe::Found(expired) => {
                *shard.map.get_mut(expired) = entry;
                Ok(())
            }
            Probe::Vacant(slot) => {
                shard.map.put(slot, entry);
                Ok(())
            }
        }
    }

    /// A create that finds its shard at the limit: an existing record under
    /// the key is answered as usual; otherwise the shard's expired records
    /// are freed, if any can have expired, and the create goes ahead if
    /// that made room. Never grows the table while the shard is full.
    #[cold]
    fn create_in_full(
        &self,
        shard: &mut Shard,
        key: &StoreKey,
        entry: Entry,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if let Some(pos) = shard.map.find(entry.head, is(key)) {
            if shard.map.get(pos).live_at(now_ms) {
                return Err(StoreError::Exists);
            }
            *shard.map.get_mut(pos) = entry;
            return Ok(());
        }
        if now_ms >= shard.full_until_ms {
            let earliest = std::cell::Cell::new(i64::MAX);
            shard.map.retain(|e| {
                let live = e.live_at(now_ms);
                if live {
                    earliest.set(earliest.get().min(e.expires_ms));
                }
                live
            });
            shard.next_sweep_ms = now_ms.saturating_add(SWEEP_EVERY_MS);
            shard.full_until_ms = earliest.get().min(entry.expires_ms);
        }
        if shard.map.len() >= self.max_per_shard {
            return Err(StoreError::backend(format!(
                "memory store full: the shard this session falls in holds {} live sessions, \
                 the most MemoryStore::with_max_sessions({}) allows",
                shard.map.len(),
                self.max_sessions.unwrap_or(usize::MAX)
            )));
        }
        match shard.map.find_or_vacant(entry.head, is(key)) {
            // Looked for above, under the same lock.
            Probe::Found(_) => Err(StoreError::Exists),
            Probe::Vacant(slot) => {
                shard.map.put(slot, entry);
                Ok(())
            }
        }
    }

    /// Removes and returns the record under `key`, under one lock.
    fn take_at(&self, key: &StoreKey, now_ms: i64) -> Result<Option<Record>, StoreError> {
        let mut shard = self.shard(key);
        let Some(pos) = shard.map.find(key.prefix_u64(), is(key)) else {
            return Ok(None);
        };
        let entry = shard.map.remove(pos);
        drop(shard);
        if entry.live_at(now_ms) {
            entry.decode().map(Some)
        } else {
            Ok(None)
        }
    }

    fn save_at(
        &self,
        key: &StoreKey,
        record: &Record,
        expected_version: u64,
        now_ms: impl FnOnce() -> i64,
    ) -> Result<SaveOutcome, StoreError> {
        let mut buf = [0u8; INLINE];
        let blob = encode(key, record, &mut buf, self.max_record_size)?;
        let now_ms = now_ms();
        let mut shard = self.shard(key);
        shard.sweep_if_due(now_ms);
        let Some(pos) = shard.map.find(key.prefix_u64(), is(key)) else {
            return Ok(SaveOutcome::Missing);
        };
        let stored = shard.map.get(pos);
        if !stored.live_at(now_ms) {
            shard.map.remove(pos);
            return Ok(SaveOutcome::Missing);
        }
        if stored.version() != expected_version {
            return stored.decode().map(SaveOutcome::Conflict);
        }
        shard.map.get_mut(pos).overwrite(record, blob);
        shard.full_until_ms = shard.full_until_ms.min(expires_ms(record));
        Ok(SaveOutcome::Saved)
    }
}

#[async_trait::async_trait]
impl SessionStore for MemoryStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.load_now(key)
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<(), StoreError> {
        self.create_now(key, record)
    }

    async fn save(
        &self,
        key: &StoreKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError> {
        self.save_now(key, record, expected_version)
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.delete_now(key)
    }

    async fn take(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.take_now(key)
    }

    fn immediate(&self) -> Option<&dyn ImmediateStore> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ManualClock, SessionId};
    use time::macros::datetime;
    use time::{Duration, OffsetDateTime};

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn key(n: u8) -> StoreKey {
        SessionId::from_bytes([n; 16]).store_key()
    }

    /// Key `n` of the shard `shard` (the key's last byte picks it).
    fn key_in_shard(shard: u8, n: u8) -> StoreKey {
        let mut bytes = [n; 32];
        bytes[31] = shard;
        StoreKey::from_bytes(bytes)
    }

    #[test]
    fn a_full_store_refuses_new_sessions_and_keeps_serving_the_others() {
        let clock = ManualClock::new(datetime!(2026-01-01 0:00 UTC));
        // Two per shard.
        let store = MemoryStore::with_clock(Arc::new(clock.clone())).with_max_sessions(2 * 256);
        assert!(format!("{store:?}").contains("max_sessions: Some(512)"));
        let not_rounded = MemoryStore::new().with_max_sessions(1000);
        assert!(format!("{not_rounded:?}").contains("max_sessions: Some(1000)"));
        let now = clock.now();
        let short = Record::new(now, Some(now + Duration::minutes(1)));
        let long = Record::new(now, Some(now + Duration::hours(1)));
        store.create_now(&key_in_shard(7, 1), &short).unwrap();
        store.create_now(&key_in_shard(7, 2), &long).unwrap();

        let err = store.create_now(&key_in_shard(7, 3), &long).unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err}");
        assert!(err.to_string().contains("memory store full"), "{err}");
        assert!(err.to_string().contains("with_max_sessions(512)"), "{err}");
        // Another shard has room; an existing id is still "exists".
        store.create_now(&key_in_shard(8, 3), &long).unwrap();
        assert!(matches!(
            store.create_now(&key_in_shard(7, 2), &long),
            Err(StoreError::Exists)
        ));
        // The sessions there keep working (this save, 45 s in, also sweeps
        // the shard: its next sweep is due 75 s in).
        clock.advance(Duration::seconds(45));
        let mut next = long.clone();
        next.version = 1;
        next.data.insert("views", 2.into());
        assert_eq!(
            store.save_now(&key_in_shard(7, 2), &next, 0).unwrap(),
            SaveOutcome::Saved
        );
        assert_eq!(store.load_now(&key_in_shard(7, 2)).unwrap(), Some(next));
        assert!(store.load_now(&key_in_shard(7, 1)).unwrap().is_some());

        // 65 s in, the first record has expired and no sweep is due: the
        // create that needs its place frees it.
        clock.advance(Duration::seconds(20));
        store.create_now(&key_in_shard(7, 3), &long).unwrap();
        assert!(store.create_now(&key_in_shard(7, 4), &long).is_err());
        // So does a delete.
        store.delete_now(&key_in_shard(7, 2)).unwrap();
        store.create_now(&key_in_shard(7, 4), &long).unwrap();
        assert_eq!(store.len(), 3);
    }

    /// A session's own lifetime can move a deadline earlier (a shorter
    /// limit, or back to the configuration's) or make a new record end
    /// sooner than the others: a full shard counts it, so that a create
    /// once that record expired is not refused until the deadline the
    /// shard last counted.
    #[test]
    fn a_full_shard_sees_a_deadline_a_save_moved_earlier() {
        let clock = ManualClock::new(datetime!(2026-01-01 0:00 UTC));
        // Two per shard.
        let store = MemoryStore::with_clock(Arc::new(clock.clone())).with_max_sessions(2 * 256);
        let now = clock.now();
        let long = Record::new(now, Some(now + Duration::hours(1)));
        store.create_now(&key_in_shard(5, 1), &long).unwrap();
        store.create_now(&key_in_shard(5, 2), &long).unwrap();
        // Counted: nothing can expire for an hour.
        assert!(store.create_now(&key_in_shard(5, 3), &long).is_err());

        let mut shorter = long.clone();
        shorter.version = 1;
        shorter.lifetime = Lifetime::default().with_idle_timeout(Some(Duration::seconds(10)));
        shorter.expires_at = Some((now + Duration::seconds(10)).into());
        let saved = store.save_now(&key_in_shard(5, 1), &shorter, 0).unwrap();
        assert_eq!(saved, SaveOutcome::Saved);
        clock.advance(Duration::seconds(11));
        store.create_now(&key_in_shard(5, 3), &long).unwrap();
        assert_eq!(store.load_now(&key_in_shard(5, 1)).unwrap(), None);

        // The same for a create: a place freed, then taken by a record
        // that ends sooner than any the shard last counted.
        store.delete_now(&key_in_shard(5, 2)).unwrap();
        let now = clock.now();
        let short = Record::new(now, Some(now + Duration::seconds(10)));
        store.create_now(&key_in_shard(5, 4), &short).unwrap();
        assert!(
            store.create_now(&key_in_shard(5, 5), &long).is_err(),
            "full"
        );
        clock.advance(Duration::seconds(11));
        store.create_now(&key_in_shard(5, 5), &long).unwrap();
    }

    /// A record with a lifetime of its own keeps it, on the stack and the
    /// heap paths.
    #[test]
    fn a_records_own_lifetime_round_trips() {
        let store = MemoryStore::new();
        let now = OffsetDateTime::now_utc();
        let mut record = Record::new(now, Some(now + Duration::days(30)));
        record.lifetime = Lifetime::default()
            .with_idle_timeout(Some(Duration::days(30)))
            .with_persistent(false);
        record.data.insert("user", "alice".into());
        store.create_now(&key_in_shard(3, 1), &record).unwrap();
        assert_eq!(
            store.load_now(&key_in_shard(3, 1)).unwrap(),
            Some(record.clone())
        );
        record.data.insert("big", "x".repeat(4 * INLINE).into());
        record.version = 1;
        let saved = store.save_now(&key_in_shard(3, 1), &record, 0).unwrap();
        assert_eq!(saved, SaveOutcome::Saved);
        assert_eq!(store.take_now(&key_in_shard(3, 1)).unwrap(), Some(record));
    }

    #[test]
    fn a_full_shard_takes_a_create_over_an_expired_record_of_the_same_id() {
        let clock = ManualClock::new(datetime!(2026-01-01 0:00 UTC));
        let store = MemoryStore::with_clock(Arc::new(clock.clone())).with_max_sessions(256);
        let now = clock.now();
        let short = Record::new(now, Some(now + Duration::seconds(10)));
        store.create_now(&key_in_shard(9, 1), &short).unwrap();
        assert!(store.create_now(&key_in_shard(9, 2), &short).is_err());
        // The same id again, once its record expired: written in its place
        // (no sweep is due yet, and the shard is still full).
        clock.advance(Duration::seconds(11));
        let later = Record::new(clock.now(), Some(clock.now() + Duration::hours(1)));
        store.create_now(&key_in_shard(9, 1), &later).unwrap();
        assert_eq!(store.load_now(&key_in_shard(9, 1)).unwrap(), Some(later));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn the_engines_own_memory_store_takes_the_configs_limit() {
        use crate::{ConfigError, Engine, Key, KeyRing, SessionConfig, Storage};
        let config = || SessionConfig::new(KeyRing::new(Key::generate())).with_max_sessions(0);
        let engine = Engine::new(config()).unwrap();
        let now = OffsetDateTime::now_utc();
        let record = Record::new(now, Some(now + Duration::hours(1)));
        let err = block_on(engine.store().unwrap().create(&key(1), &record)).unwrap_err();
        assert!(err.to_string().contains("memory store full"), "{err}");

        for storage in [
            Storage::Cookie,
            Storage::Store(Arc::new(MemoryStore::new())),
        ] {
            let err = Engine::new(config().with_storage(storage)).unwrap_err();
            assert!(matches!(err, ConfigError::Storage { .. }), "{err}");
        }
    }

    #[test]
    fn a_limit_of_zero_refuses_every_new_session() {
        let store = MemoryStore::new().with_max_sessions(0);
        let now = OffsetDateTime::now_utc();
        let record = Record::new(now, Some(now + Duration::hours(1)));
        assert!(matches!(
            store.create_now(&key(1), &record),
            Err(StoreError::Backend(_))
        ));
        assert!(store.is_empty());
        assert!(format!("{:?}", MemoryStore::new()).contains("max_sessions: None"));
    }

    /// A record of `size` bytes as this store encodes it (the data one
    /// string of the right length).
    fn record_of_size(size: usize, now: OffsetDateTime) -> Record {
        let mut record = Record::new(now, Some(now + Duration::hours(1)));
        record.data.insert("s", "".into());
        let empty = {
            let mut buf = [0u8; INLINE];
            encode(&key(1), &record, &mut buf, usize::MAX)
                .unwrap()
                .len()
        };
        // A string of up to 127 bytes takes one byte of length here, so
        // the filler is a little shorter than the gap for larger sizes.
        let mut filler = size - empty;
        loop {
            record.data.insert("s", "x".repeat(filler).into());
            let mut buf = [0u8; INLINE];
            let len = encode(&key(1), &record, &mut buf, usize::MAX)
                .unwrap()
                .len();
            if len == size {
                return record;
            }
            assert!(len > size, "{len} < {size}");
            filler -= len - size;
        }
    }

    /// Records up to the limit are kept, on the stack and on the heap; one
    /// byte more is `TooLarge` for a create and for a save, and the stored
    /// record stays as it was. Loads and deletes are never refused.
    #[test]
    fn records_over_the_size_limit_are_refused_and_change_nothing() {
        let clock = ManualClock::new(datetime!(2026-01-01 0:00 UTC));
        let now = clock.now();
        for limit in [200, 1000] {
            let store =
                MemoryStore::with_clock(Arc::new(clock.clone())).with_max_record_size(limit);
            assert!(format!("{store:?}").contains(&format!("max_record_size: {limit}")));
            let fits = record_of_size(limit, now);
            store.create_now(&key(1), &fits).unwrap();
            assert_eq!(store.load_now(&key(1)).unwrap().as_ref(), Some(&fits));

            let over = record_of_size(limit + 1, now);
            let err = store.create_now(&key(2), &over).unwrap_err();
            assert!(
                matches!(err, StoreError::TooLarge { size, limit: l } if size == limit + 1 && l == limit),
                "{err}"
            );
            assert!(err.to_string().contains("over the store's limit"), "{err}");
            assert_eq!(store.load_now(&key(2)).unwrap(), None);

            let mut grown = over.clone();
            grown.version = 1;
            let err = store.save_now(&key(1), &grown, 0).unwrap_err();
            assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
            assert_eq!(store.load_now(&key(1)).unwrap().as_ref(), Some(&fits));

            // Smaller again: saved.
            let mut smaller = record_of_size(limit - 50, now);
            smaller.version = 1;
            assert_eq!(
                store.save_now(&key(1), &smaller, 0).unwrap(),
                SaveOutcome::Saved
            );
            store.delete_now(&key(1)).unwrap();
            assert!(store.is_empty());
        }
    }

    /// The default is 1 MiB; `usize::MAX` lifts it; the engine's own store
    /// takes the config's, which another storage refuses.
    #[test]
    fn the_record_size_limit_defaults_to_one_mebibyte_and_follows_the_config() {
        use crate::{ConfigError, Engine, Key, KeyRing, SessionConfig, Storage};
        let now = OffsetDateTime::now_utc();
        let big = record_of_size(DEFAULT_MAX_RECORD_SIZE + 1, now);
        let err = MemoryStore::new().create_now(&key(1), &big).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::TooLarge {
                    limit: DEFAULT_MAX_RECORD_SIZE,
                    ..
                }
            ),
            "{err}"
        );
        MemoryStore::new()
            .with_max_record_size(usize::MAX)
            .create_now(&key(1), &big)
            .unwrap();
        let at_limit = record_of_size(DEFAULT_MAX_RECORD_SIZE, now);
        MemoryStore::new().create_now(&key(1), &at_limit).unwrap();

        let config = || SessionConfig::new(KeyRing::new(Key::generate())).with_max_record_size(300);
        let engine = Engine::new(config()).unwrap();
        let store = engine.store().unwrap();
        block_on(store.create(&key(1), &record_of_size(300, now))).unwrap();
        let err = block_on(store.create(&key(2), &record_of_size(301, now))).unwrap_err();
        assert!(
            matches!(err, StoreError::TooLarge { limit: 300, .. }),
            "{err}"
        );
        for storage in [
            Storage::Cookie,
            Storage::Store(Arc::new(MemoryStore::new())),
        ] {
            let err = Engine::new(config().with_storage(storage)).unwrap_err();
            assert!(matches!(err, ConfigError::Storage { .. }), "{err}");
            assert!(err.to_string().contains("with_max_record_size"), "{err}");
        }
    }

    #[test]
    fn saves_of_every_size_read_back_exactly() {
        let clock = ManualClock::new(datetime!(2026-01-01 0:00 UTC));
        let store = MemoryStore::with_clock(Arc::new(clock.clone()));
        let now = clock.now();
        let mut record = Record::new(now, Some(now + Duration::hours(1)));
        record.data.insert("views", 1.into());
        store.create_now(&key(1), &record).unwrap();
        // The same size (written over in place), a longer and a shorter
        // blob, and records too big for the stack buffer.
        let values = [
            serde_json::json!(2),
            serde_json::json!(10),
            serde_json::json!("x".repeat(INLINE)),
            serde_json::json!("y".repeat(3 * INLINE)),
            serde_json::json!(3),
        ];
        for value in values {
            let mut next = record.clone();
            next.data.insert("views", value);
            next.version = record.version + 1;
            let outcome = store.save_now(&key(1), &next, record.version).unwrap();
            assert_eq!(outcome, SaveOutcome::Saved);
            assert_eq!(store.load_now(&key(1)).unwrap(), Some(next.clone()));
            record = next;
        }
        let mut big = Record::new(now, None);
        big.data.insert("blob", "z".repeat(2 * INLINE).into());
        store.create_now(&key(2), &big).unwrap();
        assert_eq!(store.load_now(&key(2)).unwrap(), Some(big));
    }

    #[test]
    fn keys_that_share_their_first_eight_bytes_stay_apart() {
        // The slot keeps only the first eight bytes of a key: the rest,
        // in the blob, must tell these apart (they also share the shard).
        let keys: Vec<StoreKey> = (0..4u8)
            .map(|n| {
                let mut bytes = [7u8; 32];
                bytes[8 + usize::from(n) * 5] = n;
                StoreKey::from_bytes(bytes)
            })
            .collect();
        let store = MemoryStore::new();
        let now = Timestamp::from(OffsetDateTime::now_utc());
        let record = |n: u8| {
            let mut record = Record::new(now, None);
            record.data.insert("n", n.into());
            record
        };
        for (n, key) in (0..).zip(&keys) {
            store.create_now(key, &record(n)).unwrap();
        }
        assert_eq!(store.len(), 4);
        for (n, key) in (0..).zip(&keys) {
            assert_eq!(store.load_now(key).unwrap(), Some(record(n)));
            assert!(matches!(
                store.create_now(key, &record(9)),
                Err(StoreError::Exists)
            ));
        }
        let mut next = record(10);
        next.version = 1;
        let outcome = store.save_now(&keys[1], &next, 0).unwrap();
        assert_eq!(outcome, SaveOutcome::Saved);
        store.delete_now(&keys[2]).unwrap();
        assert_eq!(store.load_now(&keys[0]).unwrap(), Some(record(0)));
        assert_eq!(store.load_now(&keys[1]).unwrap(), Some(next));
        assert_eq!(store.load_now(&keys[2]).unwrap(), None);
        assert_eq!(store.load_now(&keys[3]).unwrap(), Some(record(3)));
        // A key that shares the prefix but was never stored.
        let mut other = [7u8; 32];
        other[30] = 99;
        assert_eq!(store.load_now(&StoreKey::from_bytes(other)).unwrap(), None);
        assert_eq!(
            store
                .save_now(&StoreKey::from_bytes(other), &record(1), 0)
                .unwrap(),
            SaveOutcome::Missing
        );
    }

    #[test]
    fn data_nested_too_deep_is_refused_when_saved_and_the_old_record_stays() {
        let store = MemoryStore::new();
        let now = Timestamp::from(OffsetDateTime::now_utc());
        let record = Record::new(now, None);
        store.create_now(&key(1), &record).unwrap();
        let mut deep = serde_json::json!(1);
        for _ in 0..packed::MAX_DEPTH {
            deep = serde_json::Value::Array(vec![deep]);
        }
        let mut next = record.clone();
        next.data.insert("deep", deep);
        next.version = 1;
        for error in [
            store.save_now(&key(1), &next, 0).unwrap_err(),
            store.create_now(&key(2), &next).unwrap_err(),
        ] {
            assert!(matches!(error, StoreError::Encoding(_)), "{error}");
            assert!(error.to_string().contains("nests more than 128"), "{error}");
        }
        assert_eq!(store.load_now(&key(1)).unwrap(), Some(record));
        assert_eq!(store.load_now(&key(2)).unwrap(), None);
    }

    #[test]
    fn expired_records_are_not_loaded_and_are_swept() {
        block_on(async {
            let clock = ManualClock::new(datetime!(2026-01-01 0:00 UTC));
            let store = MemoryStore::with_clock(Arc::new(clock.clone()));
            let now = clock.now();
            for n in 0..100 {
                let record = Record::new(now, Some(now + Duration::minutes(5)));
                store.create(&key(n), &record).await.unwrap();
            }
            assert_eq!(store.len(), 100);
            clock.advance(Duration::minutes(5));
            assert_eq!(store.load(&key(1)).await.unwrap(), None);
            assert_eq!(store.purge_expired(), 99);
            assert!(store.is_empty());
        });
    }

    #[test]
    fn writes_sweep_their_shard_so_abandoned_sessions_are_freed() {
        block_on(async {
            let clock = ManualClock::new(datetime!(2026-01-01 0:00 UTC));
            let store = MemoryStore::with_clock(Arc::new(clock.clone()));
            let now = clock.now();
            // 2000 abandoned sessions spread over every shard.
            for n in 0..2000u32 {
                let id = SessionId::from_bytes({
                    let mut b = [0u8; 16];
                    b[..4].copy_from_slice(&n.to_le_bytes());
                    b
                });
                let record = Record::new(now, Some(now + Duration::minutes(1)));
                store.create(&id.store_key(), &record).await.unwrap();
            }
            clock.advance(Duration::minutes(2));
            // New traffic alone frees them: no explicit purge.
            for n in 0..2048u32 {
                let mut b = [0xEE; 16];
                b[..4].copy_from_slice(&n.to_le_bytes());
                let id = SessionId::from_bytes(b);
                let t = clock.now();
                store
                    .create(
                        &id.store_key(),
                        &Record::new(t, Some(t + Duration::hours(1))),
                    )
                    .await
                    .unwrap();
            }
            // Each shard is hit ~8 times, so all but a handful of the 2000
            // abandoned records are gone.
            assert!(store.len() <= 2048 + 20, "still holding {}", store.len());
        });
    }

    /// A wall clock stepped back (NTP, an administrator) does not stop the
    /// sweeps until it catches up: the records that expire after the step
    /// are freed by the next writes as usual.
    #[test]
    fn a_clock_stepped_back_does_not_stop_the_sweeps() {
        block_on(async {
            let start = datetime!(2026-01-01 0:00 UTC);
            // The clock runs a day ahead while every shard is written.
            let clock = ManualClock::new(start + Duration::days(1));
            let store = MemoryStore::with_clock(Arc::new(clock.clone()));
            let create_all = |tag: u8, lifetime: Duration| {
                let (store, clock) = (&store, &clock);
                async move {
                    for n in 0..2048u32 {
                        let mut b = [tag; 16];
                        b[..4].copy_from_slice(&n.to_le_bytes());
                        let t = clock.now();
                        let record = Record::new(t, Some(t + lifetime));
                        store
                            .create(&SessionId::from_bytes(b).store_key(), &record)
                            .await
                            .unwrap();
                    }
                }
            };
            create_all(0xAA, Duration::days(30)).await;
            clock.set(start);
            create_all(0xBB, Duration::minutes(1)).await;
            assert_eq!(store.len(), 4096);
            clock.advance(Duration::minutes(2));
            create_all(0xCC, Duration::hours(1)).await;
            // The abandoned ones (0xBB) are gone but for a handful of
            // shards no later write reached.
            assert!(store.len() <= 4096 + 20, "still holding {}", store.len());
        });
    }

    /// A write judged at its request's older time (a long handler) does
    /// not sweep again; one after a real step back of the clock does.
    #[test]
    fn a_sweep_is_due_on_time_or_after_a_step_back() {
        let next = 1_000_000;
        assert!(!sweep_due(next, next - 1));
        assert!(sweep_due(next, next));
        // Ten seconds before the last sweep (which set `next`), and five
        // minutes before it: requests that ran long.
        assert!(!sweep_due(next, next - SWEEP_EVERY_MS - 10_000));
        assert!(!sweep_due(next, next - SWEEP_EVERY_MS - STEPPED_BACK_MS));
        // Further back than any request runs: the clock stepped.
        assert!(sweep_due(next, next - SWEEP_EVERY_MS - STEPPED_BACK_MS - 1));
        assert!(sweep_due(next, i64::MIN));
    }

    #[test]
    fn create_over_an_expired_record_is_allowed() {
        block_on(async {
            let clock = ManualClock::new(datetime!(2026-01-01 0:00 UTC));
            let store = MemoryStore::with_clock(Arc::new(clock.clone()));
            let now = clock.now();
            let record = Record::new(now, Some(now + Duration::seconds(1)));
            store.create(&key(1), &record).await.unwrap();
            assert!(matches!(
                store.create(&key(1), &record).await,
                Err(StoreError::Exists)
            ));
            clock.advance(Duration::seconds(1));
            let fresh = Record::new(clock.now(), None);
            store.create(&key(1), &fresh).await.unwrap();
            assert_eq!(store.load(&key(1)).await.unwrap(), Some(fresh));
        });
    }

    #[test]
    fn a_deadline_at_the_end_of_time_is_not_mistaken_for_none() {
        block_on(async {
            let store = MemoryStore::new();
            let now = Timestamp::from(OffsetDateTime::now_utc());
            // What `Expiry::deadline` saturates to for a limit of
            // `Duration::MAX`.
            let last = Record::new(now, Some(Timestamp::MAX));
            let never = Record::new(now, None);
            store.create(&key(1), &last).await.unwrap();
            store.create(&key(2), &never).await.unwrap();
            assert_eq!(store.load(&key(1)).await.unwrap(), Some(last));
            assert_eq!(store.load(&key(2)).await.unwrap(), Some(never));
        });
    }
}
