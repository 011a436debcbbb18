//! The plaintext of a cookie-store session cookie: the whole record, which
//! [`NamedCipher`](super::private::NamedCipher) seals under the session
//! cookie's name.
//!
//! ```text
//! plaintext = FORMAT flags created last-seen version [expires] [lifetime] data
//! FORMAT    = 0x02
//! flags     = bit 0: the record has a deadline; bit 1: a lifetime of its own
//! created, last-seen, expires = Unix milliseconds, i64 little-endian
//! version   = LEB128 varint
//! lifetime  = its 64 bits, little-endian
//! data      = the memory store's binary form of the data (`store::packed`)
//! ```
//!
//! It is a stored format: a browser keeps the cookie up to the session's
//! absolute lifetime, so a later format takes another first byte and this
//! one stays readable. The first format was the record's JSON
//! ([`Record::to_bytes`], which starts with `{`); cookies sealed with it
//! are still read. The binary form is shorter (for `{"views":1}`, a
//! value of 89 characters where the JSON made 151) and takes a fraction of
//! the work to read and write (see `benches/README.md`), and
//! data nested too deep to read back is refused when it is written, as the
//! memory store refuses it.
//!
//! A new format is read by a release before any release writes it, so that
//! instances of the old and the new release can serve one site side by
//! side. (This format is the exception: it came before the crates' first
//! release.)
//!
//! Only bytes that decrypted under a key of the ring are decoded here, so
//! they come from this crate; they are still read with every length
//! checked and never panic (see the property test below).

use crate::lifetime::Lifetime;
use crate::store::packed::{self, Malformed, Unwritten, Writer};
use crate::{Record, Timestamp};

/// The first byte of the binary format.
const FORMAT: u8 = 2;
/// The first byte of the JSON format ([`Record::to_bytes`]).
const JSON: u8 = b'{';
const HAS_DEADLINE: u8 = 1;
const HAS_LIFETIME: u8 = 2;

/// Plaintexts up to this size are written on the stack.
pub(crate) const INLINE: usize = 384;

/// Writes the plaintext of `record` into `buf` at `at..`, leaving `spare`
/// bytes after it, and returns its length. When it does not fit, it goes
/// into a new buffer of exactly the size needed, returned too: `at`
/// leading bytes copied from `buf`, the plaintext, `spare` zeroed bytes.
///
/// # Errors
///
/// [`Unwritten::TooDeep`] when the data nests deeper than
/// [`packed::MAX_DEPTH`] (the engine refuses such data before it plans a
/// save, so this is a last guard).
pub(crate) fn write(
    record: &Record,
    buf: &mut [u8],
    at: usize,
    spare: usize,
) -> Result<(usize, Option<Vec<u8>>), Unwritten> {
    debug_assert!(at <= buf.len(), "the leading bytes are in the buffer");
    let fits = buf.len().saturating_sub(at + spare);
    let mut out = Writer::new(&mut buf[at..at + fits]);
    write_to(&mut out, record);
    match out.finish() {
        Ok(len) => return Ok((len, None)),
        Err(Unwritten::TooDeep) => return Err(Unwritten::TooDeep),
        Err(Unwritten::Full) => {}
    }
    let mut count = Writer::counting();
    write_to(&mut count, record);
    let len = count.finish()?;
    let mut heap = vec![0; at + len + spare];
    heap[..at].copy_from_slice(&buf[..at]);
    let mut out = Writer::new(&mut heap[at..at + len]);
    write_to(&mut out, record);
    out.finish()?;
    Ok((len, Some(heap)))
}

fn write_to(out: &mut Writer<'_>, record: &Record) {
    let mut flags = 0;
    if record.expires_at.is_some() {
        flags |= HAS_DEADLINE;
    }
    if !record.lifetime.is_default() {
        flags |= HAS_LIFETIME;
    }
    out.put(&[FORMAT, flags]);
    out.put(&record.created_at.unix_ms().to_le_bytes());
    out.put(&record.last_seen.unix_ms().to_le_bytes());
    packed::write_varint(out, record.version);
    if let Some(expires_at) = record.expires_at {
        out.put(&expires_at.unix_ms().to_le_bytes());
    }
    if flags & HAS_LIFETIME != 0 {
        out.put(&record.lifetime.to_bits().to_le_bytes());
    }
    packed::write_data(out, &record.data);
}

/// Reads a plaintext in either format.
pub(crate) fn read(bytes: &[u8]) -> Result<Record, Malformed> {
    match bytes.first() {
        Some(&FORMAT) => read_binary(&bytes[1..]),
        Some(&JSON) => Record::from_bytes(bytes).map_err(|_| Malformed("not a JSON record")),
        _ => Err(Malformed("unknown format")),
    }
}

fn read_binary(mut rest: &[u8]) -> Result<Record, Malformed> {
    let (&flags, tail) = rest.split_first().ok_or(Malformed("truncated"))?;
    rest = tail;
    if flags & !(HAS_DEADLINE | HAS_LIFETIME) != 0 {
        return Err(Malformed("unknown flags"));
    }
    let created_at = time(&mut rest)?;
    let last_seen = time(&mut rest)?;
    let version = packed::read_varint(&mut rest)?;
    let expires_at = if flags & HAS_DEADLINE != 0 {
        Some(time(&mut rest)?)
    } else {
        None
    };
    let lifetime = if flags & HAS_LIFETIME != 0 {
        Lifetime::from_bits(u64::from_le_bytes(word(&mut rest)?))
            .ok_or(Malformed("malformed lifetime"))?
    } else {
        Lifetime::default()
    };
    Ok(Record {
        data: packed::read_data(rest)?,
        created_at,
        last_seen,
        expires_at,
        version,
        lifetime,
    })
}

fn word(rest: &mut &[u8]) -> Result<[u8; 8], Malformed> {
    let (&word, tail) = rest
        .split_first_chunk::<8>()
        .ok_or(Malformed("truncated"))?;
    *rest = tail;
    Ok(word)
}

fn time(rest: &mut &[u8]) -> Result<Timestamp, Malformed> {
    word(rest).map(|word| Timestamp::from_unix_ms(i64::from_le_bytes(word)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Data;
    use proptest::prelude::*;
    use time::Duration;

    fn bytes_of(record: &Record) -> Vec<u8> {
        let mut buf = [0u8; INLINE];
        let (len, heap) = write(record, &mut buf, 0, 0).unwrap();
        assert!(heap.is_none());
        buf[..len].to_vec()
    }

    fn sample() -> Record {
        let t = Timestamp::from_unix_ms(1_767_225_600_000);
        let mut record = Record::new(t, Some(Timestamp::from_unix_ms(1_767_229_200_000)));
        record.last_seen = Timestamp::from_unix_ms(1_767_225_700_000);
        record.version = 300;
        record.data.insert("views", 1.into());
        record
    }

    #[test]
    fn the_format_does_not_drift() {
        // A stored format: cookies written with it are read for as long as
        // they live. This test fails on any change to it.
        let bytes = bytes_of(&sample());
        assert_eq!(
            hex::encode(&bytes),
            // Format, flags; created, last seen (i64 LE); version 300
            // (varint); expires (i64 LE); one entry, "views", UINT 1.
            "0201\
             00a8da769b010000\
             a02edc769b010000\
             ac02\
             809611779b010000\
             010576696577730301"
        );
        assert_eq!(read(&bytes).unwrap(), sample());
    }

    #[test]
    fn every_part_of_the_format_is_pinned() {
        // A lifetime of its own, no deadline, and every tag of the data's
        // form but TEXT (only with `serde_json/arbitrary_precision`): bytes
        // computed by hand (Python's `struct`), not by this crate.
        let t = Timestamp::from_unix_ms(1_767_225_600_000);
        let mut record = Record::new(t, None);
        record.lifetime = Lifetime::default()
            .with_idle_timeout(Some(Duration::days(30)))
            .with_absolute_timeout(None)
            .with_persistent(true);
        let data = serde_json::json!({
            "a": null, "b": false, "c": true, "d": 7, "e": -3, "f": 1.5,
            "g": "hi", "h": [1], "i": {"j": 2},
        });
        for (key, value) in data.as_object().unwrap() {
            record.data.insert(key, value.clone());
        }
        let bytes = bytes_of(&record);
        assert_eq!(
            hex::encode(&bytes),
            // Format, flags (a lifetime, no deadline); created, last seen;
            // version 0; the lifetime's bits (idle 2,592,000 + 2, absolute
            // "none" 1 << 31, persistent 2 << 62); nine entries.
            "0202\
             00a8da769b010000\
             00a8da769b010000\
             00\
             028d278000000080\
             09016100016201016302016403070165040201660500000000000\
             0f83f01670702686901680801030101690901016a0302"
        );
        assert_eq!(read(&bytes).unwrap(), record);
    }

    #[test]
    fn a_deadline_comes_before_the_lifetime_and_neither_is_written_when_absent() {
        // Both (a "remember me" log-in's usual record): the deadline, then
        // the lifetime. Bytes computed by hand (Python's `struct`).
        let mut both = sample();
        both.lifetime = Lifetime::default()
            .with_idle_timeout(Some(Duration::minutes(15)))
            .with_persistent(false);
        let bytes = bytes_of(&both);
        assert_eq!(
            hex::encode(&bytes),
            // Format, flags 3; created, last seen; version 300; expires;
            // the lifetime's bits (idle 900 + 2, absolute from the
            // configuration 0, a browser-session cookie 1 << 62); data.
            "0203\
             00a8da769b010000\
             a02edc769b010000\
             ac02\
             809611779b010000\
             8603000000000040\
             010576696577730301"
        );
        assert_eq!(read(&bytes).unwrap(), both);

        let mut neither = sample();
        neither.expires_at = None;
        let bytes = bytes_of(&neither);
        assert_eq!(
            hex::encode(&bytes),
            "0200\
             00a8da769b010000\
             a02edc769b010000\
             ac02\
             010576696577730301"
        );
        assert_eq!(read(&bytes).unwrap(), neither);
    }

    #[test]
    fn plaintexts_on_either_side_of_the_stack_buffer_read_back_equal() {
        use crate::codec::private::{NONCE_LEN, TAG_LEN};
        // The engine's buffer: the nonce, the plaintext, the tag.
        let mut on_stack = 0;
        for n in 300..400 {
            let mut record = sample();
            record.data.insert("text", "x".repeat(n).into());
            let mut buf = [0u8; NONCE_LEN + INLINE + TAG_LEN];
            let (len, heap) = write(&record, &mut buf, NONCE_LEN, TAG_LEN).unwrap();
            let bytes = match &heap {
                Some(heap) => {
                    assert!(len > INLINE, "{len} bytes went to the heap");
                    assert_eq!(heap.len(), NONCE_LEN + len + TAG_LEN);
                    &heap[NONCE_LEN..NONCE_LEN + len]
                }
                None => {
                    assert!(len <= INLINE, "{len} bytes stayed on the stack");
                    on_stack = on_stack.max(len);
                    &buf[NONCE_LEN..NONCE_LEN + len]
                }
            };
            assert_eq!(read(bytes).unwrap(), record, "{n} characters");
        }
        assert_eq!(
            on_stack, INLINE,
            "a plaintext that fills the buffer exactly"
        );
    }

    #[test]
    fn a_record_with_a_lifetime_and_no_deadline_reads_back_equal() {
        let mut record = sample();
        record.expires_at = None;
        record.lifetime = Lifetime::default()
            .with_idle_timeout(None)
            .with_absolute_timeout(Some(Duration::days(30)))
            .with_persistent(true);
        let bytes = bytes_of(&record);
        assert_eq!(bytes[1], HAS_LIFETIME);
        assert_eq!(read(&bytes).unwrap(), record);
    }

    #[test]
    fn cookies_of_the_json_format_are_still_read() {
        let record = sample();
        assert_eq!(read(&record.to_bytes()).unwrap(), record);
    }

    #[test]
    fn a_small_session_is_less_than_half_its_json() {
        let record = sample();
        let binary = bytes_of(&record).len();
        let json = record.to_bytes().len();
        assert!(binary * 2 < json, "{binary} bytes against JSON's {json}");
    }

    #[test]
    fn a_record_too_big_for_the_buffer_goes_to_the_heap_whole() {
        let mut record = sample();
        record.data.insert("text", "x".repeat(2 * INLINE).into());
        let mut buf = [7u8; INLINE];
        let (len, heap) = write(&record, &mut buf, 3, 5).unwrap();
        let bytes = heap.expect("too large for the buffer");
        assert_eq!(bytes.len(), 3 + len + 5);
        assert_eq!(&bytes[..3], &[7, 7, 7], "the leading bytes are kept");
        assert_eq!(&bytes[3 + len..], &[0; 5]);
        assert_eq!(read(&bytes[3..3 + len]).unwrap(), record);
        let (len, heap) = write(&sample(), &mut buf, 3, 5).unwrap();
        assert!(heap.is_none());
        assert_eq!(read(&buf[3..3 + len]).unwrap(), sample());
    }

    #[test]
    fn data_too_deep_to_read_back_is_not_written() {
        let mut value = serde_json::Value::Null;
        for _ in 0..packed::MAX_DEPTH {
            value = serde_json::json!([value]);
        }
        let mut record = sample();
        record.data = Data::new();
        record.data.insert("deep", value);
        let mut buf = [0u8; INLINE];
        assert_eq!(
            write(&record, &mut buf, 0, 0).unwrap_err(),
            Unwritten::TooDeep
        );
    }

    #[test]
    fn malformed_plaintexts_say_so() {
        let bytes = bytes_of(&sample());
        assert_eq!(read(&[]), Err(Malformed("unknown format")));
        assert_eq!(read(b"[1]"), Err(Malformed("unknown format")));
        assert_eq!(read(b"{\"v\":1}"), Err(Malformed("not a JSON record")));
        let mut flags = bytes.clone();
        flags[1] = 4;
        assert_eq!(read(&flags), Err(Malformed("unknown flags")));
        // A lifetime whose persistence bits are 3, which no lifetime has.
        let mut lifetime = bytes_of(&sample());
        lifetime[1] |= HAS_LIFETIME;
        let at = 2 + 8 + 8 + 2 + 8;
        lifetime.splice(at..at, (3u64 << 62).to_le_bytes());
        assert_eq!(read(&lifetime), Err(Malformed("malformed lifetime")));
        lifetime[at + 7] = 0x40;
        assert!(read(&lifetime).is_ok(), "the same bytes with a lifetime");
        for cut in 1..bytes.len() {
            assert!(
                read(&bytes[..cut]).is_err(),
                "read {cut} of {} bytes",
                bytes.len()
            );
        }
        let mut longer = bytes;
        longer.push(0);
        assert!(read(&longer).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_read_or_fail_without_panicking(tail in proptest::collection::vec(any::<u8>(), 0..80)) {
            let mut bytes = vec![FORMAT];
            bytes.extend_from_slice(&tail);
            let _ = read(&bytes);
        }

        #[test]
        fn any_times_read_back_equal(
            created in any::<i64>(),
            seen in any::<i64>(),
            expires in proptest::option::of(any::<i64>()),
            version in any::<u64>(),
        ) {
            let mut record = sample();
            record.created_at = Timestamp::from_unix_ms(created);
            record.last_seen = Timestamp::from_unix_ms(seen);
            record.expires_at = expires.map(Timestamp::from_unix_ms);
            record.version = version;
            prop_assert_eq!(read(&bytes_of(&record)).unwrap(), record);
        }
    }
}
