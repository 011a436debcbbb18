//! Private values: encrypted and authenticated, unreadable by the client.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInPlace, Nonce};

use super::{MAX_VALUE_LEN, b64_decode, push_b64};
use crate::CodecError;
use crate::key::{Key, KeyMatch, KeyRing};

const PREFIX: &str = "p1.";
const TAG_LEN: usize = 16;
const AAD_DOMAIN: &[u8] = b"session-core/private/v1\0";

/// Length of the random AES-GCM nonce at the start of every private value.
pub const NONCE_LEN: usize = 12;

fn aad(name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + name.len());
    aad.extend_from_slice(AAD_DOMAIN);
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// Encrypts `plaintext` for the cookie `name` with AES-256-GCM under `key`,
/// with a fresh random 96-bit nonce from the OS.
///
/// The result is `p1.<nonce ‖ ciphertext ‖ tag>` in URL-safe base64 without
/// padding. The cookie name is the associated data, so the value does not
/// open under any other name.
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
    let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    buf.extend_from_slice(&nonce);
    buf.extend_from_slice(plaintext);
    let cipher: &Aes256Gcm = key.cipher();
    let tag = cipher
        .encrypt_in_place_detached(
            Nonce::<Aes256Gcm>::from_slice(&nonce),
            &aad(name),
            &mut buf[NONCE_LEN..],
        )
        .expect("AES-GCM encrypts any cookie-sized plaintext");
    buf.extend_from_slice(&tag);
    let mut out = String::with_capacity(PREFIX.len() + buf.len() * 4 / 3 + 4);
    out.push_str(PREFIX);
    push_b64(&buf, &mut out);
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
    if value.len() > MAX_VALUE_LEN {
        return Err(CodecError::TooLong {
            len: value.len(),
            limit: MAX_VALUE_LEN,
        });
    }
    let rest = value.strip_prefix(PREFIX).ok_or_else(|| {
        if value.starts_with('p') && value.as_bytes().get(2) == Some(&b'.') {
            CodecError::UnknownVersion
        } else {
            CodecError::Malformed
        }
    })?;
    let raw = b64_decode(rest)?;
    if raw.len() < NONCE_LEN + TAG_LEN {
        return Err(CodecError::Malformed);
    }
    let (nonce, body) = raw.split_at(NONCE_LEN);
    let (ciphertext, tag) = body.split_at(body.len() - TAG_LEN);
    let aad = aad(name);
    for (which, key) in ring.iter() {
        let mut plain = ciphertext.to_vec();
        let cipher: &Aes256Gcm = key.cipher();
        if cipher
            .decrypt_in_place_detached(
                Nonce::<Aes256Gcm>::from_slice(nonce),
                &aad,
                &mut plain,
                tag.into(),
            )
            .is_ok()
        {
            return Ok((plain, which));
        }
    }
    Err(CodecError::Decrypt)
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
        assert_eq!(open(&ring, "id", &value).unwrap().1, KeyMatch::Previous(0));
        let without = KeyRing::new(ring.current().clone());
        assert_eq!(open(&without, "id", &value), Err(CodecError::Decrypt));
    }

    #[test]
    fn short_blob_is_malformed_not_a_panic() {
        assert_eq!(open(&ring(), "id", "p1.AAAA"), Err(CodecError::Malformed));
        assert_eq!(open(&ring(), "id", "p1."), Err(CodecError::Malformed));
    }
}
