//! The Redis value of a record: a fixed-width version header, then the
//! record's portable encoding.
//!
//! ```text
//! 0000000000000003:{"v":1,"c":1767225600000,…,"n":3,"d":{"views":4}}
//! ```
//!
//! The header is the record's version `n` as 16 lowercase hex digits and a
//! `:`, so the save script compares versions by comparing the value's first
//! [`HEADER_LEN`] bytes with the expected header, without decoding JSON.
//!
//! A value written by a save also carries that save's own random token, as
//! a first JSON field `"w"` that [`Record::from_bytes`] ignores (so
//! versions of this crate before it read these values, and this one reads
//! theirs). [`encode`] writes the token alone; the save script appends the
//! tokens of the stored value's newest saves, up to
//! [`SAVE_TOKENS_KEPT`](crate::SAVE_TOKENS_KEPT) in all:
//!
//! ```text
//! 0000000000000004:{"w":"9f86d081884c7d65","v":1,…,"n":4,"d":{"views":5}}
//! 0000000000000005:{"w":"0c1d2e3f40516273,9f86d081884c7d65","v":1,…,"n":5,…}
//! ```
//!
//! No two saves write the same token, so the script can tell a copy of one
//! save that reached Redis twice (a command re-sent after its connection
//! dropped) from a second writer that computed the same record.
//!
//! A record taken at a log-in is replaced, for a minute (or twice the
//! command timeout, if longer), by a mark: `~`,
//! the take's token, then the value taken (see
//! [`TAKE_SCRIPT`](crate::TAKE_SCRIPT)). A mark is no record; a value
//! that starts with `~` but is no mark (`~`, 16 lowercase hex digits, then
//! a version header) is corrupt, like any other value not written here.

use session_core::{Record, StoreError};

/// The header's length: 16 hex digits and a `:`.
pub(crate) const HEADER_LEN: usize = 17;

/// The header of a record of `version`: what a stored value starts with,
/// and what the save script is given as the version it expects.
pub(crate) fn header(version: u64) -> String {
    format!("{version:016x}:")
}

/// The length of a save's `"w"` field as [`encode`] writes it (one token):
/// `"w":"` and 16 hex digits and `",`.
pub(crate) const TOKEN_FIELD_LEN: usize = 23;

/// The value stored for `record`: its header, then
/// [`Record::to_bytes`]; with a save's `token`, that as the JSON object's
/// first field, `"w"`.
pub(crate) fn encode(record: &Record, token: Option<u64>) -> Vec<u8> {
    let json = record.to_bytes();
    let field = token.map(|token| format!("\"w\":\"{token:016x}\","));
    let field = field.as_deref().unwrap_or_default();
    // `to_bytes` writes an object: `{`, then at least the format version.
    let (open, rest) = json.split_at(1);
    debug_assert_eq!(open, b"{");
    let mut value = Vec::with_capacity(HEADER_LEN + json.len() + field.len());
    value.extend_from_slice(header(record.version).as_bytes());
    value.extend_from_slice(open);
    value.extend_from_slice(field.as_bytes());
    value.extend_from_slice(rest);
    value
}

/// The record stored in `value`.
///
/// A value without a valid header, or whose header disagrees with the
/// record's `n`, is [`StoreError::Corrupt`] (`prefix` names where it was
/// found); the JSON after the header is read by [`Record::from_bytes`].
pub(crate) fn decode(value: &[u8], prefix: &str) -> Result<Record, StoreError> {
    let Some((version, json)) = split(value) else {
        return Err(StoreError::Corrupt {
            reason: format!(
                "a Redis value under the prefix {prefix:?} does not start with a version \
                 header (16 lowercase hex digits and ':'); it was not written by this \
                 version of session-redis, or another application uses this prefix"
            ),
        });
    };
    let record = Record::from_bytes(json)?;
    if record.version != version {
        return Err(StoreError::Corrupt {
            reason: format!(
                "a Redis value under the prefix {prefix:?} has the version header {version} \
                 but holds a record of version {}",
                record.version
            ),
        });
    }
    Ok(record)
}

/// Whether `value` is a taken record's mark (see
/// [`TAKE_SCRIPT`](crate::TAKE_SCRIPT)): `~`, the take's token (16
/// lowercase hex digits), then a value with a valid header. The scripts
/// test the same with a Lua pattern.
pub(crate) fn is_mark(value: &[u8]) -> bool {
    value
        .strip_prefix(b"~")
        .and_then(|rest| rest.split_at_checked(16))
        .is_some_and(|(token, rest)| token.iter().all(is_lower_hex) && split(rest).is_some())
}

fn is_lower_hex(b: &u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'f')
}

/// The version in `value`'s header and the bytes after it, when the header
/// is valid: exactly 16 lowercase hex digits, then `:`.
fn split(value: &[u8]) -> Option<(u64, &[u8])> {
    let (head, json) = value.split_at_checked(HEADER_LEN)?;
    let (digits, colon) = head.split_at(HEADER_LEN - 1);
    if colon != b":" || !digits.iter().all(is_lower_hex) {
        return None;
    }
    let version = u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()?;
    Some((version, json))
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_saves_token_field_is_token_field_len_long() {
        let record = Record::new(time::OffsetDateTime::now_utc(), None);
        assert_eq!(
            encode(&record, Some(u64::MAX)).len() - encode(&record, None).len(),
            TOKEN_FIELD_LEN
        );
    }
    use super::*;
    use time::OffsetDateTime;

    fn record(version: u64) -> Record {
        let mut record = Record::new(OffsetDateTime::UNIX_EPOCH, None);
        record.version = version;
        record
    }

    #[test]
    fn a_mark_is_a_tilde_a_token_and_a_value_with_a_header() {
        let value = encode(&record(3), Some(7));
        let mark = [b"~0123456789abcdef".as_slice(), &value].concat();
        assert!(is_mark(&mark));
        assert!(!is_mark(&value), "a record is no mark");
        for foreign in [
            b"~".as_slice(),
            b"~junk",
            b"~0123456789abcdef",
            b"~0123456789ABCDEF0000000000000003:{}",
            b"~0123456789abcde0000000000000003:{}",
            b"~0123456789abcdefnot a header",
        ] {
            assert!(!is_mark(foreign), "{:?}", String::from_utf8_lossy(foreign));
        }
    }

    #[test]
    fn header_is_sixteen_lowercase_hex_digits_and_a_colon() {
        assert_eq!(header(0), "0000000000000000:");
        assert_eq!(header(3), "0000000000000003:");
        assert_eq!(header(0xabc), "0000000000000abc:");
        assert_eq!(header(u64::MAX), "ffffffffffffffff:");
        assert_eq!(header(u64::MAX).len(), HEADER_LEN);
    }

    #[test]
    fn value_is_header_then_record_bytes_and_round_trips() {
        for version in [0, 1, 255, 1 << 53, (1 << 53) + 1, u64::MAX] {
            let record = record(version);
            let value = encode(&record, None);
            assert_eq!(&value[..HEADER_LEN], header(version).as_bytes());
            assert_eq!(&value[HEADER_LEN..], &record.to_bytes()[..]);
            assert_eq!(decode(&value, "p:").unwrap(), record);
        }
    }

    #[test]
    fn a_token_is_a_first_field_that_decoding_ignores() {
        let record = record(4);
        let value = encode(&record, Some(0x9f86_d081_884c_7d65));
        let text = std::str::from_utf8(&value).unwrap();
        assert!(
            text.starts_with("0000000000000004:{\"w\":\"9f86d081884c7d65\",\"v\":1,"),
            "{text}"
        );
        assert_eq!(decode(&value, "p:").unwrap(), record);
        assert_ne!(value, encode(&record, Some(1)), "a token per save");
    }

    #[test]
    fn values_without_a_valid_header_are_corrupt() {
        let json = record(3).to_bytes();
        let with = |head: &str| [head.as_bytes(), &json].concat();
        for value in [
            json.clone(),
            with("0000000000000003"),
            with("000000000000003:"),
            with("0000000000000003;"),
            with("000000000000000A:"),
            with("+000000000000003:"),
            with("000000000000000g:"),
            b"".to_vec(),
            b"0000000000000003".to_vec(),
        ] {
            let err = decode(&value, "p:").unwrap_err();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        }
    }

    #[test]
    fn a_header_that_disagrees_with_the_record_is_corrupt() {
        let value = [header(4).as_bytes(), &record(3).to_bytes()].concat();
        let err = decode(&value, "p:").unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn a_valid_header_before_bad_json_is_an_encoding_error() {
        let err = decode(b"0000000000000003:not json", "p:").unwrap_err();
        assert!(matches!(err, StoreError::Encoding(_)), "{err}");
        assert!(decode(b"0000000000000003:", "p:").is_err());
    }
}
