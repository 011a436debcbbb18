//! Cookie value codecs: signed (HMAC-SHA256) and private (AES-256-GCM).
//!
//! Both bind the cookie's name into the cryptography, so a value made for one
//! cookie is rejected under any other name, and both carry a format version
//! as their first characters (`s1.` signed, `p1.` private) so that a later
//! format can be told apart. Binary parts are URL-safe base64 without
//! padding, which needs no quoting in a `Cookie` header.
//!
//! Verification tries the ring's current key first, then the previous keys,
//! and reports which one matched ([`KeyMatch`](crate::KeyMatch)), so that
//! a value under an old key can be re-issued under the current one.

pub(crate) mod inline;
pub(crate) mod private;
mod signed;

pub use private::{NONCE_LEN, open, seal, seal_with_nonce};
pub(crate) use signed::{ID_VALUE_WORDS, IdValue, NamedSigner, signed_len};
pub use signed::{sign, verify};

/// The longest cookie value a codec accepts; anything longer is rejected
/// before any decoding work. Browsers store at most about 4096 bytes per
/// cookie, name and attributes included.
pub const MAX_VALUE_LEN: usize = 4096;

use base64::Engine as _;

pub(crate) const B64: base64::engine::GeneralPurpose =
    base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Inputs up to this size are encoded through a stack buffer.
const SMALL_B64_INPUT: usize = 48;

/// Appends the base64 of `bytes` to `out`.
///
/// Ids and MACs (16 and 32 bytes) are encoded here, by a loop a few cache
/// lines long: `Engine::encode_string` streams through a zeroed 1 KiB
/// buffer, and its general encoder is twenty cache lines of code, both more
/// than encoding 32 bytes costs. Longer inputs go to the `base64` crate.
pub(crate) fn push_b64(bytes: &[u8], out: &mut String) {
    if bytes.len() > SMALL_B64_INPUT {
        B64.encode_string(bytes, out);
        return;
    }
    let sextet = |v: u32| B64_ALPHABET[(v & 63) as usize];
    let mut buf = [0u8; b64_len(SMALL_B64_INPUT)];
    let triples = bytes.chunks_exact(3);
    let rest = triples.remainder();
    let mut len = 4 * (bytes.len() / 3);
    for (t, o) in triples.zip(buf.chunks_exact_mut(4)) {
        let v = u32::from(t[0]) << 16 | u32::from(t[1]) << 8 | u32::from(t[2]);
        o.copy_from_slice(&[sextet(v >> 18), sextet(v >> 12), sextet(v >> 6), sextet(v)]);
    }
    match (rest, buf.get_mut(len..)) {
        (&[a], Some([o0, o1, ..])) => {
            let v = u32::from(a) << 16;
            (*o0, *o1) = (sextet(v >> 18), sextet(v >> 12));
            len += 2;
        }
        (&[a, b], Some([o0, o1, o2, ..])) => {
            let v = u32::from(a) << 16 | u32::from(b) << 8;
            (*o0, *o1, *o2) = (sextet(v >> 18), sextet(v >> 12), sextet(v >> 6));
            len += 3;
        }
        _ => {}
    }
    // Always ASCII: the alphabet is.
    out.push_str(std::str::from_utf8(&buf[..len]).unwrap_or_default());
}

/// The URL-safe base64 alphabet, in value order.
pub(crate) const B64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The length of the unpadded base64 of `n` bytes.
pub(crate) const fn b64_len(n: usize) -> usize {
    (4 * n).div_ceil(3)
}

/// Each byte's value in the URL-safe alphabet, or `INVALID`.
const B64_VALUES: [u8; 256] = {
    let mut values = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        values[B64_ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    values
};
const INVALID: u8 = 0xff;

/// Decodes exactly `N` bytes from URL-safe base64 without padding, as
/// [`B64`] does, or `None` where [`B64`] would fail or decode another
/// length: a wrong length, a character outside the alphabet, or a last
/// character with bits set beyond the data (so each value has one
/// encoding).
///
/// The hot path of every request with a session (the id and its tag).
/// `base64`'s general decoder is built for long inputs; on these 22 and 43
/// characters it spent about 16 instructions per character, this about 5.
/// The property test below checks it against [`B64`].
pub(crate) fn b64_decode_array<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != b64_len(N) {
        return None;
    }
    let mut out = [0u8; N];
    // Values below 64 are letters; `INVALID` anywhere sets the high bits.
    let mut seen = 0u8;
    let value = |c: u8, seen: &mut u8| {
        let v = B64_VALUES[usize::from(c)];
        *seen |= v;
        u32::from(v)
    };
    let (groups, tail) = text.split_at(N / 3 * 4);
    let (whole, rest) = out.split_at_mut(N / 3 * 3);
    for (quad, triple) in groups.chunks_exact(4).zip(whole.chunks_exact_mut(3)) {
        let n = value(quad[0], &mut seen) << 18
            | value(quad[1], &mut seen) << 12
            | value(quad[2], &mut seen) << 6
            | value(quad[3], &mut seen);
        triple.copy_from_slice(&n.to_be_bytes()[1..]);
    }
    // One byte left is two characters (4 spare bits), two bytes three (2).
    let spare_bits_clear = match (tail, rest) {
        ([], []) => true,
        ([a, b], [x]) => {
            let n = value(*a, &mut seen) << 6 | value(*b, &mut seen);
            *x = (n >> 4) as u8;
            n & 0xf == 0
        }
        ([a, b, c], [x, y]) => {
            let n = value(*a, &mut seen) << 12 | value(*b, &mut seen) << 6 | value(*c, &mut seen);
            [*x, *y] = [(n >> 10) as u8, (n >> 2) as u8];
            n & 0x3 == 0
        }
        // Not reached: the length check leaves N % 3 + 1 characters for
        // N % 3 bytes.
        _ => false,
    };
    (seen < 64 && spare_bits_clear).then_some(out)
}

pub(crate) fn b64_decode(text: &str) -> Result<Vec<u8>, crate::CodecError> {
    B64.decode(text).map_err(|_| crate::CodecError::Base64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `base64` itself makes of `text` as `N` bytes.
    fn reference<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        match B64.decode_slice(text, &mut out) {
            Ok(n) if n == N => Some(out),
            _ => None,
        }
    }

    /// Mostly the alphabet, sometimes a character outside it.
    fn text(len: impl Into<proptest::collection::SizeRange>) -> impl Strategy<Value = Vec<u8>> {
        let alphabet = B64_ALPHABET;
        let letter = prop_oneof![
            20 => proptest::sample::select(alphabet.to_vec()),
            1 => any::<u8>(),
        ];
        proptest::collection::vec(letter, len)
    }

    fn agrees<const N: usize>(text: &[u8]) -> Result<(), TestCaseError> {
        prop_assert_eq!(b64_decode_array::<N>(text), reference::<N>(text));
        Ok(())
    }

    proptest! {
        #[test]
        fn fixed_size_decoding_agrees_with_base64(
            (short, id, tag) in (text(3), text(22), text(43)),
            other in text(0..50),
        ) {
            agrees::<2>(&short)?;
            agrees::<16>(&id)?;
            agrees::<32>(&tag)?;
            // Any other length is refused, as `base64` refuses it for N.
            agrees::<16>(&other)?;
            agrees::<32>(&other)?;
            agrees::<3>(&other)?;
        }

        #[test]
        fn appending_base64_agrees_with_base64(
            bytes in proptest::collection::vec(any::<u8>(), 0..120),
            prefix in "[a-z.]{0,4}",
        ) {
            // Both sides of the stack-buffer limit, and after other text.
            let mut out = prefix.clone();
            push_b64(&bytes, &mut out);
            prop_assert_eq!(out, format!("{prefix}{}", B64.encode(&bytes)));
        }

        #[test]
        fn fixed_size_decoding_round_trips(id in any::<[u8; 16]>(), tag in any::<[u8; 32]>(), three in any::<[u8; 3]>()) {
            prop_assert_eq!(b64_decode_array::<16>(B64.encode(id).as_bytes()), Some(id));
            prop_assert_eq!(b64_decode_array::<32>(B64.encode(tag).as_bytes()), Some(tag));
            prop_assert_eq!(b64_decode_array::<3>(B64.encode(three).as_bytes()), Some(three));
        }
    }

    #[test]
    fn spare_bits_and_foreign_characters_are_refused() {
        // "AA" is one zero byte; "AB" sets a bit past it.
        assert_eq!(b64_decode_array::<1>(b"AA"), Some([0]));
        assert_eq!(b64_decode_array::<1>(b"AB"), None);
        assert_eq!(b64_decode_array::<2>(b"AAA"), Some([0, 0]));
        assert_eq!(b64_decode_array::<2>(b"AAB"), None);
        // Standard base64's '+' and '/', padding, and a non-ASCII byte.
        for bad in [b"AA+A", b"AA/A", b"AA==", b"AA\xffA"] {
            assert_eq!(b64_decode_array::<3>(bad), None, "{bad:?}");
        }
        assert_eq!(b64_decode_array::<3>(b"-_-_"), Some([0xfb, 0xff, 0xbf]));
        assert_eq!(b64_decode_array::<0>(b""), Some([]));
    }
}
