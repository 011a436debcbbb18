//! Session ids, the digests stores key records by, and the random source.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::SessionError;
use crate::codec::b64_encode;

/// Length of a session id in bytes (128 bits).
pub const ID_LEN: usize = 16;

/// A session id: 128 random bits, known only to the browser (inside the
/// signed cookie) and to the engine.
///
/// Stores never see it: they key records by its [`StoreKey`], a SHA-256
/// digest, so a dump of the store holds no cookie that would log anyone in.
/// `Debug` shows only a short prefix of the digest, so ids never reach logs.
///
/// ```
/// use session_core::SessionId;
///
/// let id = SessionId::from_bytes([1; 16]);
/// assert_eq!(id.to_string_unsafe(), "AQEBAQEBAQEBAQEBAQEBAQ");
/// assert_eq!(id.store_key().to_hex().len(), 64);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId([u8; ID_LEN]);

impl SessionId {
    /// An id from raw bytes, for tests and test vectors.
    #[must_use]
    pub fn from_bytes(bytes: [u8; ID_LEN]) -> Self {
        Self(bytes)
    }

    /// A new id from `random`.
    ///
    /// # Errors
    ///
    /// [`SessionError::Random`] when the random source fails.
    pub fn generate(random: &dyn RandomSource) -> Result<Self, SessionError> {
        let mut bytes = [0u8; ID_LEN];
        random.fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// The raw bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }

    /// The id as URL-safe base64. Named so because whoever holds this string
    /// and the key holds the session: never log it.
    #[must_use]
    pub fn to_string_unsafe(&self) -> String {
        b64_encode(&self.0)
    }

    /// The key its record is stored under.
    #[must_use]
    pub fn store_key(&self) -> StoreKey {
        let mut hasher = Sha256::new();
        hasher.update(b"session-core/store-key/v1\0");
        hasher.update(self.0);
        StoreKey(hasher.finalize().into())
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({:?})", self.store_key())
    }
}

/// The SHA-256 digest of a [`SessionId`] (after the fixed tag
/// `session-core/store-key/v1` and a zero byte, so that the digest serves
/// no other purpose): what a store keys a record by.
///
/// Its text form ([`StoreKey::to_hex`], 64 lowercase hex digits) is what
/// stores with string keys (Redis, SQL) should use. Knowing a store key does
/// not let anyone forge a cookie: the id cannot be recovered from it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoreKey([u8; 32]);

impl StoreKey {
    /// The 32 digest bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A store key from 32 digest bytes (for stores that read keys back).
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest as 64 lowercase hex digits.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the text form made by [`StoreKey::to_hex`].
    #[must_use]
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Self(out))
    }

    /// A 64-bit prefix of the digest, already uniformly distributed: use it
    /// to pick a shard without hashing again.
    #[must_use]
    pub fn prefix_u64(&self) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(first)
    }
}

impl std::hash::Hash for StoreKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // The key is already a uniform digest: 64 of its bits are a hash.
        state.write_u64(self.prefix_u64());
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreKey({}…)", &hex::encode(&self.0[..4]))
    }
}

impl fmt::Display for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Where session ids and nonces come from. The default, [`ThreadRandom`], is
/// a CSPRNG per thread seeded by the operating system; [`OsRandom`] asks the
/// operating system for every id; tests inject [`SequenceRandom`] to get
/// predictable ids and exact cookie strings.
///
/// A source of your own must be a cryptographically secure generator: its
/// bytes become session ids (whoever can guess one holds that session) and
/// the AES-GCM nonces of cookie-store sessions (a nonce used twice under
/// one key gives away what both cookies hold and lets their sessions be
/// forged).
pub trait RandomSource: Send + Sync + fmt::Debug {
    /// Fills `buf` with random bytes.
    ///
    /// # Errors
    ///
    /// [`SessionError::Random`] when no random bytes can be had.
    fn fill(&self, buf: &mut [u8]) -> Result<(), SessionError>;
}

/// The default: a cryptographically secure generator per thread, `rand`'s
/// `StdRng` (ChaCha12) seeded from the operating system's CSPRNG.
///
/// Safe across `fork(2)`: on Unix a handler registered with
/// `pthread_atfork(3)` (by the `forkguard` crate) counts the forks, and a
/// generator seeded before the last fork reseeds in the child, so parent and
/// child never share ids or AES-GCM nonces. The check is one atomic load, no
/// system call. It covers children made by libc's `fork(3)` (as `nix` and
/// `libc::fork` make them), which runs the fork handlers; a child made
/// without them (a raw `clone(2)` or `clone3(2)` system call, `_Fork`) is
/// not detected. If the handler cannot be registered, the generator checks
/// the process id on every use instead (one `getpid(2)`), and says so once
/// at warn level. It also reseeds after every mebibyte it has given out.
///
/// A 16-byte id costs 24 ns on a 2-vCPU VM, against 480 ns for
/// [`OsRandom`]'s `getrandom(2)` (`cargo bench -p session-core --bench
/// engine -- random`).
/// Seeding can fail only when the operating system has no randomness to
/// give; that is a [`SessionError::Random`], never a panic.
///
/// ```
/// use session_core::{RandomSource, ThreadRandom};
///
/// let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
/// ThreadRandom.fill(&mut a).unwrap();
/// ThreadRandom.fill(&mut b).unwrap();
/// assert_ne!(a, b);
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct ThreadRandom;

/// Bytes a [`ThreadRandom`] generator gives out before it reseeds.
const RESEED_AFTER: usize = 1 << 20;

/// One thread's generator, how it notices a fork, and how much it has given
/// out.
struct Seeded {
    rng: rand::rngs::StdRng,
    forks: ForkCheck,
    given: usize,
}

/// How a generator notices that it was copied into a forked child.
enum ForkCheck {
    /// The count of a `pthread_atfork` child handler (on Unix; elsewhere
    /// there is no fork to detect).
    Handler(forkguard::Guard),
    /// The process id, asked of the kernel on every use: the fallback when
    /// the handler could not be registered.
    Pid(forkguard::pid::Guard),
}

impl ForkCheck {
    fn new() -> Self {
        match forkguard::Guard::try_new() {
            Ok(guard) => Self::Handler(guard),
            Err(error) => {
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| {
                    tracing::warn!(
                        %error,
                        "no fork handler could be registered; ThreadRandom checks the \
                         process id on every use instead"
                    );
                });
                Self::Pid(forkguard::pid::Guard::default())
            }
        }
    }

    /// Whether the process forked since the last check (or since `new`).
    fn forked(&mut self) -> bool {
        match self {
            Self::Handler(guard) => guard.detected_fork(),
            Self::Pid(guard) => guard.detected_fork(),
        }
    }
}

thread_local! {
    static THREAD_RNG: std::cell::RefCell<Option<Seeded>> = const { std::cell::RefCell::new(None) };
}

impl RandomSource for ThreadRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), SessionError> {
        use rand::{RngCore as _, SeedableRng as _};
        THREAD_RNG.with_borrow_mut(|slot| {
            let fresh = match slot {
                Some(seeded) => seeded.forks.forked() || seeded.given >= RESEED_AFTER,
                None => true,
            };
            if fresh {
                // Dropped first: the check above has consumed the fork, so
                // if seeding fails, the next call must not go on with a
                // stream the parent shares.
                *slot = None;
                // The check (and the fork handler) before the seed: every
                // fork that could copy this seed is counted.
                let forks = ForkCheck::new();
                let rng =
                    rand::rngs::StdRng::try_from_os_rng().map_err(|e| SessionError::Random {
                        reason: e.to_string(),
                    })?;
                *slot = Some(Seeded {
                    rng,
                    forks,
                    given: 0,
                });
            }
            let seeded = slot.as_mut().expect("seeded just above");
            seeded.rng.fill_bytes(buf);
            seeded.given = seeded.given.saturating_add(buf.len());
            Ok(())
        })
    }
}

/// The operating system's CSPRNG (`getrandom(2)` on Linux), asked for every
/// id and nonce. Slower than [`ThreadRandom`].
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), SessionError> {
        getrandom::fill(buf).map_err(|e| SessionError::Random {
            reason: e.to_string(),
        })
    }
}

/// A predictable source for tests: the n-th call fills the buffer with the
/// byte `n` (starting at the given seed), so ids and cookies are known in
/// advance. Never use it in production: anyone can predict the ids.
///
/// Once `n` passes 255, the buffer's last bytes also carry the higher
/// bytes of `n` (XORed in), so that a buffer of 8 bytes or more (an id, a
/// nonce) never repeats within 2⁶⁴ calls: a cookie-store test that seals
/// more than 256 sessions under one key reuses no AES-GCM nonce.
///
/// ```
/// use session_core::{RandomSource, SequenceRandom};
///
/// let random = SequenceRandom::starting_at(5);
/// let mut a = [0u8; 2];
/// random.fill(&mut a).unwrap();
/// assert_eq!(a, [5, 5]);
/// random.fill(&mut a).unwrap();
/// assert_eq!(a, [6, 6]);
/// ```
#[derive(Debug, Default)]
pub struct SequenceRandom {
    next: AtomicU64,
}

impl SequenceRandom {
    /// A source whose first fill uses the byte `seed`.
    #[must_use]
    pub fn starting_at(seed: u8) -> Self {
        Self {
            next: AtomicU64::new(u64::from(seed)),
        }
    }
}

impl RandomSource for SequenceRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), SessionError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed).to_le_bytes();
        buf.fill(n[0]);
        for (byte, high) in buf.iter_mut().rev().zip(&n[1..]) {
            *byte ^= high;
        }
        Ok(())
    }
}

impl<T: RandomSource + ?Sized> RandomSource for Arc<T> {
    fn fill(&self, buf: &mut [u8]) -> Result<(), SessionError> {
        (**self).fill(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 256 fills are the byte sequence the test vectors use; no
    /// fill of 8 bytes or more repeats after them.
    #[test]
    fn sequence_fills_do_not_repeat() {
        let random = SequenceRandom::starting_at(0);
        let mut seen = std::collections::HashSet::new();
        for n in 0..2000u32 {
            let mut nonce = [0u8; 12];
            random.fill(&mut nonce).unwrap();
            if n < 256 {
                assert_eq!(nonce, [n as u8; 12]);
            }
            assert!(seen.insert(nonce), "fill {n} repeated {nonce:?}");
        }
        let random = SequenceRandom::starting_at(255);
        let mut id = [0u8; 16];
        random.fill(&mut id).unwrap();
        assert_eq!(id, [255; 16]);
        random.fill(&mut id).unwrap();
        assert_eq!(id, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    }

    /// What this thread's generator would give next if it were not
    /// reseeded, after `tweak` changes its bookkeeping.
    fn next_without_reseed(tweak: impl FnOnce(&mut Seeded)) -> [u8; 16] {
        use rand::RngCore as _;
        ThreadRandom.fill(&mut [0u8; 1]).unwrap();
        THREAD_RNG.with_borrow_mut(|slot| {
            let seeded = slot.as_mut().unwrap();
            tweak(seeded);
            let mut next = [0u8; 16];
            seeded.rng.clone().fill_bytes(&mut next);
            next
        })
    }

    #[test]
    fn thread_random_continues_its_stream_in_the_same_process() {
        let expected = next_without_reseed(|_| {});
        let mut got = [0u8; 16];
        ThreadRandom.fill(&mut got).unwrap();
        assert_eq!(got, expected);
    }

    #[cfg(unix)]
    #[test]
    fn thread_random_never_repeats_its_parents_bytes_in_a_forked_child() {
        use fork::Fork;
        // What this thread's generator gives next; the child starts with a
        // copy of its state.
        let parents_next = next_without_reseed(|_| {});
        match fork::fork().expect("fork") {
            Fork::Child => {
                let mut bytes = [0u8; 16];
                let code = match ThreadRandom.fill(&mut bytes) {
                    Ok(()) if bytes != parents_next => 0,
                    Ok(()) => 1,
                    Err(_) => 2,
                };
                std::process::exit(code);
            }
            Fork::Parent(child) => {
                let status = fork::waitpid(child).expect("waitpid");
                let mut mine = [0u8; 16];
                ThreadRandom.fill(&mut mine).unwrap();
                assert_eq!(mine, parents_next, "the parent's stream goes on");
                // A wait status: the exit code is in the second byte.
                match status {
                    0 => {}
                    256 => panic!("the child repeated the bytes its parent gave next"),
                    512 => panic!("the child could not fill its buffer"),
                    other => panic!("the child ended with wait status {other}"),
                }
            }
        }
    }

    #[test]
    fn thread_random_reseeds_after_a_mebibyte() {
        let worn = next_without_reseed(|seeded| seeded.given = RESEED_AFTER);
        let mut got = [0u8; 16];
        ThreadRandom.fill(&mut got).unwrap();
        assert_ne!(got, worn);
        let given = THREAD_RNG.with_borrow(|slot| slot.as_ref().unwrap().given);
        assert_eq!(given, 16);
    }

    #[test]
    fn os_ids_are_distinct_and_full_length() {
        let a = SessionId::generate(&OsRandom).unwrap();
        let b = SessionId::generate(&OsRandom).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.to_string_unsafe().len(), 22);
    }

    #[test]
    fn store_key_is_a_digest_not_the_id() {
        let id = SessionId::from_bytes([9; ID_LEN]);
        let key = id.store_key();
        assert_eq!(key, id.store_key());
        assert!(!key.to_hex().contains(&hex::encode(id.as_bytes())));
        assert_eq!(StoreKey::from_hex(&key.to_hex()), Some(key));
        assert_eq!(StoreKey::from_hex("zz"), None);
    }

    #[test]
    fn debug_never_shows_the_id() {
        let id = SessionId::from_bytes([0xAB; ID_LEN]);
        let shown = format!("{id:?}");
        assert!(!shown.contains("abab"), "{shown}");
        assert!(!shown.contains(&id.to_string_unsafe()), "{shown}");
    }
}
