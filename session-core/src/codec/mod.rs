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

mod private;
mod signed;

pub use private::{NONCE_LEN, open, seal, seal_with_nonce};
pub(crate) use signed::{IdValue, NamedSigner, signed_len};
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

pub(crate) fn b64_decode(text: &str) -> Result<Vec<u8>, crate::CodecError> {
    B64.decode(text).map_err(|_| crate::CodecError::Base64)
}
