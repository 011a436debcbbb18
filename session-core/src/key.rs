//! Master keys, the subkeys derived from them, and the key ring used for rotation.

use std::fmt;
use std::sync::Arc;

use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine as _;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::ConfigError;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Length in bytes of a master [`Key`].
pub const KEY_LEN: usize = 64;

const SIGNING_INFO: &[u8] = b"session-core v1 signing";
const ENCRYPTION_INFO: &[u8] = b"session-core v1 encryption";

/// A 64-byte master key.
///
/// Two independent 32-byte subkeys are derived from it with HKDF-SHA256: one
/// for HMAC-SHA256 signatures, one for AES-256-GCM encryption. The keyed
/// HMAC and AES states are built once, here, and reused for every cookie.
///
/// `Debug` prints no key material and `==` compares in constant time.
///
/// # Examples
///
/// ```
/// use session_core::Key;
///
/// let key = Key::generate();
/// let same = Key::from_bytes(key.master()).unwrap();
/// assert_eq!(key, same);
///
/// // Too short: the error says what is needed.
/// let err = Key::from_bytes(&[7u8; 10]).unwrap_err();
/// assert_eq!(err.to_string(), "invalid key: expected 64 bytes, got 10");
/// ```
#[derive(Clone)]
pub struct Key {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    master: [u8; KEY_LEN],
    signing: HmacSha256,
    encryption: Aes256Gcm,
}

impl Key {
    /// Builds a key from exactly 64 raw bytes.
    ///
    /// # Errors
    ///
    /// [`ConfigError::KeyLength`] when `bytes` is not 64 bytes long, and
    /// [`ConfigError::WeakKey`] when it is obviously not random (fewer than
    /// 16 distinct byte values, such as every byte equal).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ConfigError> {
        let master: [u8; KEY_LEN] = bytes.try_into().map_err(|_| ConfigError::KeyLength {
            expected: KEY_LEN,
            got: bytes.len(),
        })?;
        let mut seen = [false; 256];
        for b in master {
            seen[usize::from(b)] = true;
        }
        let distinct = seen.iter().filter(|s| **s).count();
        if distinct < 16 {
            return Err(ConfigError::WeakKey { distinct });
        }
        Ok(Self::derive(master))
    }

    /// Parses a key written as 128 hexadecimal digits.
    ///
    /// # Errors
    ///
    /// [`ConfigError::KeyEncoding`] when the text is not hex, and the errors
    /// of [`Key::from_bytes`] for the decoded bytes.
    ///
    /// ```
    /// # use session_core::Key;
    /// let hex: String = (0..64).map(|b| format!("{b:02x}")).collect();
    /// assert_eq!(Key::from_hex(&hex).unwrap().master()[63], 63);
    /// assert!(Key::from_hex("abc").is_err());
    /// ```
    pub fn from_hex(text: &str) -> Result<Self, ConfigError> {
        let bytes = hex::decode(&*compact(text.trim())).map_err(|e| ConfigError::KeyEncoding {
            reason: format!("not valid hex ({e})"),
        })?;
        Self::from_bytes(&bytes)
    }

    /// Parses a key written in base64: standard or URL-safe alphabet, with or
    /// without padding, wrapped over lines or not (`openssl rand -base64 64`
    /// and `base64` wrap their output; whitespace anywhere is left out).
    ///
    /// # Errors
    ///
    /// [`ConfigError::KeyEncoding`] when the text is not base64, and the
    /// errors of [`Key::from_bytes`] for the decoded bytes.
    pub fn from_base64(text: &str) -> Result<Self, ConfigError> {
        let bytes =
            decode_any_base64(&compact(text.trim())).ok_or_else(|| ConfigError::KeyEncoding {
                reason: "not valid base64".to_owned(),
            })?;
        Self::from_bytes(&bytes)
    }

    /// Parses a key given as text: 128 hex digits, or base64 (any alphabet,
    /// padded or not). This is the format of `SESSION_SECRET`. Whitespace
    /// anywhere in the text is left out, so that base64 wrapped over lines
    /// (`SESSION_SECRET=$(openssl rand -base64 64)`) reads as written.
    ///
    /// # Errors
    ///
    /// [`ConfigError::KeyEncoding`] when the text is neither (128
    /// characters, a hex key's length, with one that is not a hex digit, or
    /// hex after `0x`, are reported as hex mistakes), and the errors of
    /// [`Key::from_bytes`] for the decoded bytes.
    ///
    /// ```
    /// # use session_core::Key;
    /// let key = Key::generate();
    /// let hex = key.to_hex();
    /// assert_eq!(Key::parse(&hex).unwrap(), key);
    /// let err = Key::parse("abcd").unwrap_err();
    /// assert_eq!(err.to_string(), "invalid key: expected 64 bytes, got 2");
    /// ```
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let text = &*compact(text.trim());
        let is_hex = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit());
        if let Some(digits) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            if is_hex(digits) {
                return Err(ConfigError::KeyEncoding {
                    reason: "hex is written without a 0x prefix".to_owned(),
                });
            }
        }
        if text.len() == 2 * KEY_LEN {
            // A hex key's length: a character that is not a hex digit is a
            // typo in hex, not base64 of the wrong length.
            if let Some((at, c)) = text.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
                return Err(ConfigError::KeyEncoding {
                    reason: format!(
                        "not valid hex ({c:?} at position {} is not a hex digit)",
                        at + 1
                    ),
                });
            }
        }
        if is_hex(text) {
            // Text made only of hex digits is read as hex: a 64-byte key in
            // base64 is never all hex digits in practice, and a user who
            // wrote hex meant hex.
            if text.len() % 2 == 1 {
                return Err(ConfigError::KeyEncoding {
                    reason: format!("odd number of hex digits ({})", text.len()),
                });
            }
            return Self::from_hex(text);
        }
        match decode_any_base64(text) {
            Some(bytes) => Self::from_bytes(&bytes),
            None => Err(ConfigError::KeyEncoding {
                reason: "neither hex nor base64".to_owned(),
            }),
        }
    }

    /// Generates a fresh random key from the operating system's CSPRNG.
    ///
    /// # Panics
    ///
    /// Only if the operating system cannot provide random bytes at all, which
    /// leaves no safe way to continue. Use [`Key::try_generate`] to handle it.
    #[must_use]
    pub fn generate() -> Self {
        Self::try_generate().expect("the OS random number generator failed")
    }

    /// Generates a fresh random key, reporting a failing OS random source.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Random`] when the OS CSPRNG fails.
    pub fn try_generate() -> Result<Self, ConfigError> {
        let mut master = [0u8; KEY_LEN];
        getrandom::fill(&mut master).map_err(|e| ConfigError::Random {
            reason: e.to_string(),
        })?;
        Ok(Self::derive(master))
    }

    /// The 64 master bytes, for storing the key somewhere safe.
    #[must_use]
    pub fn master(&self) -> &[u8] {
        &self.inner.master
    }

    /// The master key as 128 lowercase hex digits.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.inner.master)
    }

    pub(crate) fn signer(&self) -> &HmacSha256 {
        &self.inner.signing
    }

    pub(crate) fn cipher(&self) -> &Aes256Gcm {
        &self.inner.encryption
    }

    fn derive(master: [u8; KEY_LEN]) -> Self {
        let hk = Hkdf::<Sha256>::new(None, &master);
        let mut signing = [0u8; 32];
        let mut encryption = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 8160-byte output limit.
        hk.expand(SIGNING_INFO, &mut signing)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        hk.expand(ENCRYPTION_INFO, &mut encryption)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let signing =
            <HmacSha256 as Mac>::new_from_slice(&signing).expect("HMAC accepts any key length");
        let encryption = Aes256Gcm::new(&encryption.into());
        Self {
            inner: Arc::new(KeyInner {
                master,
                signing,
                encryption,
            }),
        }
    }
}

/// `text` without its ASCII whitespace, wherever it is.
fn compact(text: &str) -> std::borrow::Cow<'_, str> {
    if text.bytes().any(|b| b.is_ascii_whitespace()) {
        text.chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

fn decode_any_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.inner.master.ct_eq(&other.inner.master).into()
    }
}

impl Eq for Key {}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Which key of a [`KeyRing`] verified a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMatch {
    /// The current key: nothing to do.
    Current,
    /// A previous key, by its position in [`KeyRing::previous`]. The value
    /// should be re-issued under the current key.
    Previous(usize),
}

impl KeyMatch {
    /// Whether the value was made with an old key and should be re-issued.
    #[must_use]
    pub fn is_previous(self) -> bool {
        matches!(self, Self::Previous(_))
    }
}

/// The current key, which signs and encrypts, and any number of previous
/// keys, which are still accepted when verifying and decrypting.
///
/// Rotating a key: make the new key current and move the old one into
/// `previous`. Cookies made under the old key are accepted and re-issued
/// under the new one on their next request; once every live session has
/// passed by (or has expired), drop the old key.
///
/// ```
/// use session_core::{Key, KeyRing};
///
/// let old = Key::generate();
/// let new = Key::generate();
/// let ring = KeyRing::new(new).with_previous(old);
/// assert_eq!(ring.previous().len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct KeyRing {
    keys: Arc<[Key]>,
}

impl KeyRing {
    /// A ring holding only `current`.
    #[must_use]
    pub fn new(current: Key) -> Self {
        Self {
            keys: Arc::from(vec![current]),
        }
    }

    /// Adds an older key that is still accepted; the first one added is tried
    /// first.
    #[must_use]
    pub fn with_previous(self, key: Key) -> Self {
        let mut keys = self.keys.to_vec();
        keys.push(key);
        Self {
            keys: Arc::from(keys),
        }
    }

    /// The key that signs and encrypts.
    #[must_use]
    pub fn current(&self) -> &Key {
        &self.keys[0]
    }

    /// The older keys still accepted, in the order they are tried.
    #[must_use]
    pub fn previous(&self) -> &[Key] {
        &self.keys[1..]
    }

    /// Every key with what it would report as a match, current first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (KeyMatch, &Key)> {
        self.keys.iter().enumerate().map(|(i, k)| {
            let which = if i == 0 {
                KeyMatch::Current
            } else {
                KeyMatch::Previous(i - 1)
            };
            (which, k)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..64u8).collect()
    }

    #[test]
    fn short_key_says_expected_length() {
        let err = Key::from_bytes(&[1, 2, 3]).unwrap_err();
        assert_eq!(err.to_string(), "invalid key: expected 64 bytes, got 3");
        let err = Key::from_bytes(&[]).unwrap_err();
        assert_eq!(err.to_string(), "invalid key: expected 64 bytes, got 0");
    }

    #[test]
    fn uniform_key_is_rejected_as_weak() {
        let err = Key::from_bytes(&[0xAA; 64]).unwrap_err();
        assert!(matches!(err, ConfigError::WeakKey { distinct: 1 }), "{err}");
        assert!(err.to_string().contains("Key::generate"), "{err}");
    }

    #[test]
    fn hex_and_base64_forms_decode_to_the_same_key() {
        let raw = sample();
        let key = Key::from_bytes(&raw).unwrap();
        assert_eq!(Key::parse(&hex::encode(&raw)).unwrap(), key);
        assert_eq!(Key::parse(&hex::encode_upper(&raw)).unwrap(), key);
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        assert_eq!(Key::parse(&STANDARD.encode(&raw)).unwrap(), key);
        assert_eq!(Key::parse(&URL_SAFE_NO_PAD.encode(&raw)).unwrap(), key);
    }

    /// `openssl rand -base64 64` wraps at 64 characters, `base64` at 76:
    /// `$(...)` keeps the line breaks inside.
    #[test]
    fn wrapped_base64_and_spaced_hex_read_as_written() {
        let raw = sample();
        let key = Key::from_bytes(&raw).unwrap();
        use base64::engine::general_purpose::STANDARD;
        let b64 = STANDARD.encode(&raw);
        for width in [64, 76] {
            let wrapped = format!("{}\n{}\n", &b64[..width], &b64[width..]);
            assert_eq!(Key::parse(&wrapped).unwrap(), key, "{width}");
            assert_eq!(Key::from_base64(&wrapped).unwrap(), key, "{width}");
        }
        let hex = hex::encode(&raw);
        let spaced = format!("{} {}\r\n", &hex[..64], &hex[64..]);
        assert_eq!(Key::parse(&spaced).unwrap(), key);
        assert_eq!(Key::from_hex(&spaced).unwrap(), key);
        // Unicode spaces at the ends (pasted from a page) are trimmed too.
        let padded = format!("\u{A0}{hex}\u{0B}\u{2003}");
        assert_eq!(Key::parse(&padded).unwrap(), key);
    }

    /// Mistakes in hex are reported as such, not as base64 of the wrong
    /// length.
    #[test]
    fn hex_mistakes_are_named() {
        let mut typo = hex::encode(sample());
        typo.replace_range(10..11, "g");
        let err = Key::parse(&typo).unwrap_err().to_string();
        assert!(
            err.contains("not valid hex") && err.contains("'g' at position 11"),
            "{err}"
        );
        let err = Key::parse(&format!("0x{}", hex::encode(sample())))
            .unwrap_err()
            .to_string();
        assert!(err.contains("without a 0x prefix"), "{err}");
        // Base64 that happens to start with "0x" is still base64.
        let mut raw = sample();
        raw[0] = 0xd3;
        raw[1] = 0x1c;
        use base64::engine::general_purpose::STANDARD;
        let b64 = STANDARD.encode(&raw);
        assert!(b64.starts_with("0x"), "{b64}");
        assert_eq!(Key::parse(&b64).unwrap(), Key::from_bytes(&raw).unwrap());
    }

    #[test]
    fn odd_hex_is_a_clear_error() {
        let err = Key::parse("abc").unwrap_err();
        assert!(
            err.to_string().contains("odd number of hex digits"),
            "{err}"
        );
    }

    #[test]
    fn debug_prints_no_key_material() {
        let key = Key::from_bytes(&sample()).unwrap();
        let shown = format!("{key:?} {:?}", KeyRing::new(key.clone()));
        assert!(!shown.contains("0, 1, 2"), "{shown}");
        assert!(!shown.contains(&key.to_hex()[..8]), "{shown}");
    }

    #[test]
    fn different_keys_are_unequal_and_generated_keys_differ() {
        assert_ne!(Key::generate(), Key::generate());
        let mut raw = sample();
        let a = Key::from_bytes(&raw).unwrap();
        raw[63] ^= 1;
        assert_ne!(a, Key::from_bytes(&raw).unwrap());
    }

    #[test]
    fn ring_reports_which_key_matched() {
        let ring = KeyRing::new(Key::generate())
            .with_previous(Key::generate())
            .with_previous(Key::generate());
        let which: Vec<KeyMatch> = ring.iter().map(|(m, _)| m).collect();
        assert_eq!(
            which,
            [
                KeyMatch::Current,
                KeyMatch::Previous(0),
                KeyMatch::Previous(1)
            ]
        );
    }
}
