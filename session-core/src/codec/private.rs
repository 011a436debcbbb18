//! Private values: encrypted and authenticated, unreadable by the client.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInPlace, Nonce};

use base64::Engine as _;

use super::{B64, MAX_VALUE_LEN, b64_len, push_b64};
use crate::CodecError;
use crate::key::{Key, KeyMatch, KeyRing};

const PREFIX: &str = "p1.";
/// Length of the AES-GCM tag at the end of every private value.
pub(crate) const TAG_LEN: usize = 16;
const AAD_DOMAIN: &[u8] = b"session-core/private/v1\0";

/// Length of the random AES-GCM nonce at the start of every private value.
pub const NONCE_LEN: usize = 12;

/// Encrypts `plaintext` for the cookie `name` with AES-256-GCM under `key`,
/// with a fresh random 96-bit nonce from the OS.
///
/// The result is `p1.<nonce ‖ ciphertext ‖ tag>` in URL-safe base64 without
/// padding. The cookie name is the associated data, so the value does not
/// open under any other name.
///
/// The engine seals cookie-store sessions the same way, under the session
/// cookie's name: a value sealed here under that name is a session cookie
/// to such an engine when its bytes read as a session record. Never seal
/// data you did not build yourself under the session cookie's name (the
/// [`Cookies`](crate::Cookies) jar refuses that name).
///
/// # Errors
///
/// [`SessionError::Random`](crate::SessionError::Random) when the OS random
/// source fails.
///
/// ```
/// use session_core::{codec, Key, KeyRing};
///
/// let ring = KeyRing::new(Key::generate());
/// let value = codec::seal(ring.current(), "cart", b"3 apples").unwrap();
/// assert!(!value.contains("apples"));
/// assert_eq!(codec::open(&ring, "cart", &value).unwrap().0, b"3 apples");
/// assert!(codec::open(&ring, "other", &value).is_err());
/// ```
pub fn seal(key: &Key, name: &str, plaintext: &[u8]) -> Result<String, crate::SessionError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| crate::SessionError::Random {
        reason: e.to_string(),
    })?;
    Ok(seal_with_nonce(key, name, plaintext, nonce))
}

/// [`seal`] with a caller-chosen nonce, for test vectors.
///
/// Never reuse a nonce with the same key in production: AES-GCM loses both
/// confidentiality and integrity when a nonce repeats.
#[must_use]
pub fn seal_with_nonce(key: &Key, name: &str, plaintext: &[u8], nonce: [u8; NONCE_LEN]) -> String {
    let mut raw = Vec::with_capacity(sealed_len(plaintext.len()));
    raw.extend_from_slice(&nonce);
    raw.extend_from_slice(plaintext);
    raw.resize(sealed_len(plaintext.len()), 0);
    NamedCipher::new(name).seal_in_place(key, &mut raw);
    let mut out = String::with_capacity(value_len(plaintext.len()));
    push_value(&raw, &mut out);
    out
}

/// Decrypts a value made by [`seal`] for the cookie `name`, trying the
/// ring's current key first and then the previous ones.
///
/// # Errors
///
/// A [`CodecError`] saying why the value was rejected: too long, malformed,
/// unknown version, bad base64, or no key decrypts it.
pub fn open(ring: &KeyRing, name: &str, value: &str) -> Result<(Vec<u8>, KeyMatch), CodecError> {
    let mut heap = Vec::new();
    let (plaintext, matched) =
        NamedCipher::new(name).open_into(ring, value.as_bytes(), &mut [], &mut heap)?;
    Ok((plaintext.to_vec(), matched))
}

/// The length of the sealed bytes (nonce, ciphertext, tag) of `plaintext_len`
/// bytes.
pub(crate) const fn sealed_len(plaintext_len: usize) -> usize {
    NONCE_LEN + plaintext_len + TAG_LEN
}

/// The length of the value that seals `plaintext_len` bytes.
pub(crate) const fn value_len(plaintext_len: usize) -> usize {
    PREFIX.len() + b64_len(sealed_len(plaintext_len))
}

/// Appends the value of sealed bytes (nonce, ciphertext, tag) to `out`:
/// exactly [`value_len`] of the plaintext's length.
pub(crate) fn push_value(raw: &[u8], out: &mut String) {
    out.push_str(PREFIX);
    push_b64(raw, out);
}

/// Private values under one cookie name, its associated data built once
/// (the session cookie's in cookie-store mode: every request opens one and
/// every write seals one).
pub(crate) struct NamedCipher {
    aad: Box<[u8]>,
}

impl std::fmt::Debug for NamedCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedCipher").finish_non_exhaustive()
    }
}

impl NamedCipher {
    pub(crate) fn new(name: &str) -> Self {
        let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + name.len());
        aad.extend_from_slice(AAD_DOMAIN);
        aad.extend_from_slice(name.as_bytes());
        Self { aad: aad.into() }
    }

    /// Seals in place with `key`: `raw` is the nonce, the plaintext and
    /// [`TAG_LEN`] bytes for the tag ([`sealed_len`] of the plaintext's
    /// length).
    pub(crate) fn seal_in_place(&self, key: &Key, raw: &mut [u8]) {
        debug_assert!(raw.len() >= sealed_len(0), "room for the nonce and the tag");
        let (nonce, rest) = raw.split_at_mut(NONCE_LEN);
        let (plaintext, tag_out) = rest.split_at_mut(rest.len() - TAG_LEN);
        let cipher: &Aes256Gcm = key.cipher();
        let tag = cipher
            .encrypt_in_place_detached(Nonce::<Aes256Gcm>::from_slice(nonce), &self.aad, plaintext)
            .expect("AES-GCM encrypts any cookie-sized plaintext");
        tag_out.copy_from_slice(&tag);
    }

    /// Opens `value` and returns its plaintext: decoded into `stack` when
    /// it fits there, into `heap` otherwise, and decrypted in place.
    pub(crate) fn open_into<'b>(
        &self,
        ring: &KeyRing,
        value: &[u8],
        stack: &'b mut [u8],
        heap: &'b mut Vec<u8>,
    ) -> Result<(&'b [u8], KeyMatch), CodecError> {
        let encoded = strip(value)?;
        // Enough for any base64 of this length; the decoding says how much
        // it made.
        let room = encoded.len() / 4 * 3 + 3;
        let buf = match stack.get_mut(..room) {
            Some(buf) => buf,
            None => {
                heap.clear();
                heap.resize(room, 0);
                heap.as_mut_slice()
            }
        };
        let len = B64
            .decode_slice(encoded, &mut *buf)
            .map_err(|_| CodecError::Base64)?;
        if len < sealed_len(0) {
            return Err(CodecError::Malformed);
        }
        let raw = &mut buf[..len];
        let (nonce, body) = raw.split_at_mut(NONCE_LEN);
        let (ciphertext, tag) = body.split_at_mut(body.len() - TAG_LEN);
        let nonce = Nonce::<Aes256Gcm>::from_slice(nonce);
        for (which, key) in ring.iter() {
            let cipher: &Aes256Gcm = key.cipher();
            // In place, key after key: `aes-gcm` checks the tag before it
            // decrypts, so a key that fails leaves the ciphertext as it was
            // (from 0.10.3, the version the workspace requires, which tests
            // it). Should that change, a value under a previous key would
            // fail to open (never open wrongly), and
            // `old_key_still_opens_and_says_so` fails.
            if cipher
                .decrypt_in_place_detached(nonce, &self.aad, ciphertext, (&*tag).into())
                .is_ok()
            {
                return Ok((ciphertext, which));
            }
        }
        Err(CodecError::Decrypt)
    }
}

/// The base64 part of a private value, after its length and version are
/// checked.
fn strip(value: &[u8]) -> Result<&[u8], CodecError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(CodecError::TooLong {
            len: value.len(),
            limit: MAX_VALUE_LEN,
        });
    }
    value.strip_prefix(PREFIX.as_bytes()).ok_or_else(|| {
        if value.first() == Some(&b'p') && value.get(2) == Some(&b'.') {
            CodecError::UnknownVersion
        } else {
            CodecError::Malformed
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new(Key::from_bytes(&(0..64u8).collect::<Vec<_>>()).unwrap())
    }

    #[test]
    fn fixed_vector_does_not_drift() {
        // Key bytes 0..64, nonce 07×12, cookie "id": checked against Python's
        // `cryptography` AESGCM with the same HKDF derivation.
        let value = seal_with_nonce(ring().current(), "id", b"{}", [7; NONCE_LEN]);
        assert_eq!(value, "p1.BwcHBwcHBwcHBwcHFsIN8KB1CANdPxdkKI-SZaCU");
        assert_eq!(open(&ring(), "id", &value).unwrap().0, b"{}");
    }

    #[test]
    fn fresh_nonce_every_time() {
        let ring = ring();
        let a = seal(ring.current(), "id", b"same").unwrap();
        let b = seal(ring.current(), "id", b"same").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn tampering_anywhere_fails() {
        let ring = ring();
        let value = seal(ring.current(), "id", b"secret data").unwrap();
        for i in PREFIX.len()..value.len() {
            let mut bytes = value.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            if tampered != value {
                assert!(open(&ring, "id", &tampered).is_err(), "accepted {tampered}");
            }
        }
    }

    #[test]
    fn old_key_still_opens_and_says_so() {
        let old = Key::generate();
        let value = seal(&old, "id", b"x").unwrap();
        let ring = KeyRing::new(Key::generate()).with_previous(old);
        // Opened in place after the current key failed on the same bytes.
        assert_eq!(
            open(&ring, "id", &value).unwrap(),
            (b"x".to_vec(), KeyMatch::Previous(0))
        );
        let without = KeyRing::new(ring.current().clone());
        assert_eq!(open(&without, "id", &value), Err(CodecError::Decrypt));
    }

    #[test]
    fn values_on_either_side_of_the_stack_buffer_open_under_a_previous_key() {
        // The engine opens into 512 bytes on the stack, and into the heap
        // what does not fit: both after the current key failed in place.
        let old = Key::generate();
        let ring = KeyRing::new(Key::generate()).with_previous(old.clone());
        let cipher = NamedCipher::new("id");
        let (mut on_stack, mut on_heap) = (false, false);
        for len in 440..520 {
            let plaintext: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let value = seal(&old, "id", &plaintext).unwrap();
            let (mut stack, mut heap) = ([0u8; 512], Vec::new());
            let (opened, matched) = cipher
                .open_into(&ring, value.as_bytes(), &mut stack, &mut heap)
                .unwrap();
            assert_eq!((opened, matched), (&plaintext[..], KeyMatch::Previous(0)));
            if heap.is_empty() {
                on_stack = true;
            } else {
                on_heap = true;
            }
        }
        assert!(on_stack && on_heap, "both paths were taken");
    }

    #[test]
    fn short_blob_is_malformed_not_a_panic() {
        assert_eq!(open(&ring(), "id", "p1.AAAA"), Err(CodecError::Malformed));
        assert_eq!(open(&ring(), "id", "p1."), Err(CodecError::Malformed));
    }
}
