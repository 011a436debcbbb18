//! Signed values: readable by the client, but any change is detected.

use base64::Engine as _;
use hmac::Mac;
use subtle::ConstantTimeEq;

use super::{B64, MAX_VALUE_LEN, b64_decode, b64_decode_array, b64_len, push_b64};
use crate::CodecError;
use crate::key::{HmacSha256, Key, KeyMatch, KeyRing};

const PREFIX: &str = "s1.";
const TAG_LEN: usize = 32;
const DOMAIN: &[u8] = b"session-core/signed/v1\0";

/// The keyed HMAC state with the format's domain and the cookie name
/// absorbed: everything but the payload.
fn prefixed(key: &Key, name: &str) -> HmacSha256 {
    let mut mac = key.signer().clone();
    mac.update(DOMAIN);
    // The name is length-prefixed so that no (name, payload) pair can be
    // confused with another.
    mac.update(&(name.len() as u64).to_be_bytes());
    mac.update(name.as_bytes());
    mac
}

fn tag(key: &Key, name: &str, payload: &[u8]) -> HmacSha256 {
    let mut mac = prefixed(key, name);
    mac.update(payload);
    mac
}

/// Signs and verifies values of one cookie name with precomputed HMAC
/// states (one per key of the ring), for the session cookie's hot path.
#[derive(Clone)]
pub(crate) struct NamedSigner {
    states: Vec<(KeyMatch, HmacSha256)>,
}

impl std::fmt::Debug for NamedSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedSigner")
            .field("keys", &self.states.len())
            .finish()
    }
}

impl NamedSigner {
    pub(crate) fn new(ring: &KeyRing, name: &str) -> Self {
        Self {
            states: ring.iter().map(|(m, k)| (m, prefixed(k, name))).collect(),
        }
    }

    /// [`sign`] with the ring's current key.
    #[cfg(test)]
    pub(crate) fn sign(&self, payload: &[u8]) -> String {
        let mut out = String::with_capacity(signed_len(payload.len()));
        self.sign_into(payload, &mut out);
        out
    }

    /// Signs `payload` (as [`sign`]), appending to `out` (exactly
    /// [`signed_len`]`(payload.len())` bytes).
    pub(crate) fn sign_into(&self, payload: &[u8], out: &mut String) {
        let mut mac = self.states[0].1.clone();
        mac.update(payload);
        encode_into(payload, &mac.finalize().into_bytes(), out);
    }

    /// [`verify`] for a payload of exactly `N` bytes, without allocating.
    ///
    /// The value's layout is fixed by `N` (`s1.`, the payload's base64,
    /// `.`, the tag's base64), so it is split at known offsets. Bytes that
    /// are not base64 (or not UTF-8) fail the decoding.
    pub(crate) fn verify_array<const N: usize>(
        &self,
        value: &[u8],
    ) -> Result<([u8; N], KeyMatch), CodecError> {
        let payload_end = PREFIX.len() + b64_len(N);
        if value.len() != payload_end + 1 + b64_len(TAG_LEN) {
            return Err(if value.len() > MAX_VALUE_LEN {
                CodecError::TooLong {
                    len: value.len(),
                    limit: MAX_VALUE_LEN,
                }
            } else {
                CodecError::Payload("payload of the wrong length")
            });
        }
        if !value.starts_with(PREFIX.as_bytes()) {
            return Err(if value.starts_with(b"s") && value.get(2) == Some(&b'.') {
                CodecError::UnknownVersion
            } else {
                CodecError::Malformed
            });
        }
        if value[payload_end] != b'.' {
            return Err(CodecError::Malformed);
        }
        let payload =
            b64_decode_array::<N>(&value[PREFIX.len()..payload_end]).ok_or(CodecError::Base64)?;
        let tag =
            b64_decode_array::<TAG_LEN>(&value[payload_end + 1..]).ok_or(CodecError::Base64)?;
        for (which, state) in &self.states {
            let mut mac = state.clone();
            mac.update(&payload);
            if tags_equal(&mac.finalize().into_bytes().into(), &tag) {
                return Ok((payload, *which));
            }
        }
        Err(CodecError::BadSignature)
    }
}

/// Compares two tags in constant time, a word at a time.
fn tags_equal(a: &[u8; TAG_LEN], b: &[u8; TAG_LEN]) -> bool {
    fn words(tag: &[u8; TAG_LEN]) -> [u64; TAG_LEN / 8] {
        std::array::from_fn(|i| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&tag[i * 8..i * 8 + 8]);
            u64::from_le_bytes(word)
        })
    }
    words(a).ct_eq(&words(b)).into()
}

/// The length of a signed session id: `s1.`, the id, `.`, the tag.
const ID_VALUE_LEN: usize = signed_len(crate::ID_LEN);
/// Where the tag starts in an id cookie's value.
const TAG_START: usize = ID_VALUE_LEN - b64_len(TAG_LEN);
/// The 64-bit words an id cookie's value fills (see [`IdValue::words`]).
pub(crate) const ID_VALUE_WORDS: usize = ID_VALUE_LEN.div_ceil(8);

/// A session id cookie's value of the right length, inline: the key of the
/// verified-cookie cache. Its `Debug` does not show it (it is a bearer
/// credential).
#[derive(Clone, Copy)]
pub(crate) struct IdValue([u8; ID_VALUE_LEN]);

impl IdValue {
    /// The value, when it has the length [`NamedSigner::sign_into`] gives an id.
    pub(crate) fn new(value: &[u8]) -> Option<Self> {
        value.try_into().ok().map(Self)
    }

    /// The value as little-endian words, the last one padded with zeros.
    pub(crate) fn words(&self) -> [u64; ID_VALUE_WORDS] {
        let mut words = [0u64; ID_VALUE_WORDS];
        let mut chunks = self.0.chunks_exact(8);
        for (word, chunk) in words.iter_mut().zip(&mut chunks) {
            *word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            words[ID_VALUE_WORDS - 1] = u64::from_le_bytes(last);
        }
        words
    }

    /// A hash of the tag's first eight characters: part of a MAC, so
    /// uniformly random for every value that verified (where the
    /// verified-cookie cache keeps it). Each character carries six random
    /// bits in eight; the multiplication spreads them over the high half,
    /// which is folded onto the low one.
    pub(crate) fn mac_hash(&self) -> u64 {
        let head: [u8; 8] = self.0[TAG_START..TAG_START + 8]
            .try_into()
            .expect("eight bytes");
        let h = u64::from_le_bytes(head).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^ (h >> 32)
    }
}

impl std::fmt::Debug for IdValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdValue(..)")
    }
}

/// The length of the signed value of an `n`-byte payload.
pub(crate) const fn signed_len(n: usize) -> usize {
    PREFIX.len() + b64_len(n) + 1 + b64_len(TAG_LEN)
}

fn encode(payload: &[u8], tag: &[u8]) -> String {
    let mut out = String::with_capacity(signed_len(payload.len()));
    encode_into(payload, tag, &mut out);
    out
}

fn encode_into(payload: &[u8], tag: &[u8], out: &mut String) {
    out.push_str(PREFIX);
    push_b64(payload, out);
    out.push('.');
    push_b64(tag, out);
}

/// Signs `payload` for the cookie `name` with `key`.
///
/// The result is `s1.<payload>.<tag>`, both parts URL-safe base64 without
/// padding; the tag is HMAC-SHA256 over the format version, the cookie name
/// and the payload.
///
/// ```
/// use session_core::{codec, Key, KeyMatch, KeyRing};
///
/// let ring = KeyRing::new(Key::generate());
/// let value = codec::sign(ring.current(), "pref", b"dark");
/// assert_eq!(codec::verify(&ring, "pref", &value), Ok((b"dark".to_vec(), KeyMatch::Current)));
/// // The same value under another cookie name does not verify.
/// assert!(codec::verify(&ring, "id", &value).is_err());
/// ```
#[must_use]
pub fn sign(key: &Key, name: &str, payload: &[u8]) -> String {
    encode(payload, &tag(key, name, payload).finalize().into_bytes())
}

/// Verifies a value made by [`sign`] for the cookie `name`, trying the
/// ring's current key first and then the previous ones. Tags are compared
/// in constant time.
///
/// # Errors
///
/// A [`CodecError`] saying why the value was rejected: too long, malformed,
/// unknown version, bad base64 or a signature no key produced.
pub fn verify(ring: &KeyRing, name: &str, value: &str) -> Result<(Vec<u8>, KeyMatch), CodecError> {
    let (payload, tag) = split(value)?;
    let payload = b64_decode(payload)?;
    let matched = check(ring, name, &payload, &tag)?;
    Ok((payload, matched))
}

fn split(value: &str) -> Result<(&str, [u8; TAG_LEN]), CodecError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(CodecError::TooLong {
            len: value.len(),
            limit: MAX_VALUE_LEN,
        });
    }
    let rest = value.strip_prefix(PREFIX).ok_or_else(|| {
        if value.starts_with('s') && value.as_bytes().get(2) == Some(&b'.') {
            CodecError::UnknownVersion
        } else {
            CodecError::Malformed
        }
    })?;
    let (payload, tag_text) = rest.rsplit_once('.').ok_or(CodecError::Malformed)?;
    let mut tag_bytes = [0u8; TAG_LEN];
    match B64.decode_slice(tag_text, &mut tag_bytes) {
        Ok(TAG_LEN) => Ok((payload, tag_bytes)),
        _ => Err(CodecError::Base64),
    }
}

fn check(
    ring: &KeyRing,
    name: &str,
    payload: &[u8],
    tag_bytes: &[u8; TAG_LEN],
) -> Result<KeyMatch, CodecError> {
    for (which, key) in ring.iter() {
        if tag(key, name, payload).verify_slice(tag_bytes).is_ok() {
            return Ok(which);
        }
    }
    Err(CodecError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new(Key::from_bytes(&(0..64u8).collect::<Vec<_>>()).unwrap())
    }

    #[test]
    fn a_signed_id_fits_the_inline_value() {
        let signer = NamedSigner::new(&ring(), "id");
        let value = signer.sign(&[7u8; crate::ID_LEN]);
        assert_eq!(value.len(), ID_VALUE_LEN);
        for n in [0, 1, 2, 3, 4, 31, 32, 100] {
            assert_eq!(signer.sign(&vec![1; n]).len(), signed_len(n));
        }
        let inline = IdValue::new(value.as_bytes()).unwrap();
        assert_eq!(inline.0, value.as_bytes());
        assert_eq!(format!("{inline:?}"), "IdValue(..)");
        assert!(IdValue::new(&value.as_bytes()[1..]).is_none());
    }

    #[test]
    fn fixed_vector_does_not_drift() {
        // Key bytes 0..64, cookie "pref", payload "dark": the exact value is
        // part of the format; a change here breaks every cookie in the wild.
        // Checked against an independent Python implementation (hmac and
        // hashlib, HKDF written out) when the format was fixed.
        let value = sign(ring().current(), "pref", b"dark");
        assert_eq!(
            value,
            "s1.ZGFyaw.vESUQKHnpsPb1Fcopt3W6Itz3mqTQbrnCuyjXrmNNWU"
        );
    }

    #[test]
    fn every_single_character_change_is_rejected() {
        let ring = ring();
        let value = sign(ring.current(), "id", b"0123456789abcdef");
        for i in 0..value.len() {
            let mut bytes = value.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            if tampered != value {
                assert!(
                    verify(&ring, "id", &tampered).is_err(),
                    "accepted {tampered}"
                );
            }
        }
    }

    #[test]
    fn truncated_and_empty_values_are_rejected() {
        let ring = ring();
        let value = sign(ring.current(), "id", b"abc");
        for end in 0..value.len() {
            assert!(verify(&ring, "id", &value[..end]).is_err());
        }
    }

    #[test]
    fn other_version_is_reported_as_unknown() {
        assert_eq!(
            verify(&ring(), "id", "s2.AA.BB"),
            Err(CodecError::UnknownVersion)
        );
    }

    #[test]
    fn previous_key_is_reported() {
        let old = Key::generate();
        let value = sign(&old, "id", b"x");
        let ring = KeyRing::new(Key::generate()).with_previous(old);
        assert_eq!(
            verify(&ring, "id", &value).unwrap().1,
            KeyMatch::Previous(0)
        );
    }

    #[test]
    fn oversized_value_is_rejected_before_decoding() {
        let long = format!("s1.{}.x", "A".repeat(5000));
        assert!(matches!(
            verify(&ring(), "id", &long),
            Err(CodecError::TooLong { .. })
        ));
    }
}
