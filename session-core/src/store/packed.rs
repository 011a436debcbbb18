//! The memory store's encoding of session data: JSON values in a compact
//! binary form, tag by tag. It is also the data inside a cookie-store
//! session cookie (`codec::inline`), so it is a stored format too: change
//! it only with a new format byte there.
//!
//! Decoding it is a walk over lengths and tags, with no text to parse, no
//! escapes and no number formatting, in a few small functions: loading
//! `{"user":"bob"}` from the memory store takes 563 instructions,
//! allocations included, where parsing its JSON took 771 (callgrind, the
//! adapter bench's `/get`). The portable format stores exchange is still
//! JSON ([`Record::to_bytes`](crate::Record::to_bytes)).
//!
//! ```text
//! data   = count entry*            (the top-level object)
//! entry  = len key-bytes value
//! value  = NULL | FALSE | TRUE
//!        | UINT varint             (an integer from 0 to u64::MAX)
//!        | INT varint              (a negative integer, as !n)
//!        | FLOAT f64-le            (8 bytes)
//!        | TEXT len bytes          (a number only its text represents,
//!                                   with serde_json's arbitrary_precision)
//!        | STR len bytes
//!        | ARRAY count value*
//!        | OBJECT count entry*
//! ```
//!
//! Counts and lengths are LEB128 varints.

use serde_json::{Map, Number, Value};

use crate::Data;
use crate::data::{DataKey, Entries};

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const UINT: u8 = 3;
const INT: u8 = 4;
const FLOAT: u8 = 5;
const TEXT: u8 = 6;
const STR: u8 = 7;
const ARRAY: u8 = 8;
const OBJECT: u8 = 9;

/// How deep arrays and objects may nest, the top-level map included: the
/// limit `serde_json` puts on parsing, so data this module refuses to write
/// is data JSON could not have read back either. Refused when saving (a
/// clear error), never found unreadable later.
pub(crate) const MAX_DEPTH: usize = 128;

/// Why [`write_data`] stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unwritten {
    /// The buffer is too small.
    Full,
    /// The data nests deeper than [`MAX_DEPTH`].
    TooDeep,
}

/// Writes into a buffer, or only counts (to size one).
pub(crate) struct Writer<'a> {
    /// Where the bytes go; `None` counts them only.
    rest: Option<&'a mut [u8]>,
    len: usize,
    failed: Option<Unwritten>,
}

impl<'a> Writer<'a> {
    /// A writer into `buf`.
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self {
            rest: Some(buf),
            len: 0,
            failed: None,
        }
    }

    /// A writer that only counts what it is given.
    pub(crate) fn counting() -> Self {
        Self {
            rest: None,
            len: 0,
            failed: None,
        }
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if let Some(rest) = self.rest.take() {
            if bytes.len() > rest.len() {
                self.failed = Some(Unwritten::Full);
                return;
            }
            let (head, tail) = rest.split_at_mut(bytes.len());
            head.copy_from_slice(bytes);
            self.rest = Some(tail);
        }
        self.len += bytes.len();
    }

    fn fail(&mut self, why: Unwritten) {
        self.failed.get_or_insert(why);
    }

    /// How many bytes were written (or counted), or why not all were.
    pub(crate) fn finish(self) -> Result<usize, Unwritten> {
        match self.failed {
            None => Ok(self.len),
            Some(why) => Err(why),
        }
    }
}

/// Writes `data`.
pub(crate) fn write_data(out: &mut Writer<'_>, data: &Data) {
    write_entries(out, data.iter(), 1);
}

/// The entries of a map at nesting `depth` (the top-level map is 1).
fn write_entries<'v, K: AsRef<str> + 'v>(
    out: &mut Writer<'_>,
    entries: impl ExactSizeIterator<Item = (K, &'v Value)>,
    depth: usize,
) {
    write_varint(out, entries.len() as u64);
    for (key, value) in entries {
        write_bytes(out, key.as_ref().as_bytes());
        write_value(out, value, depth);
    }
}

/// A value inside a map or an array at nesting `depth`.
fn write_value(out: &mut Writer<'_>, value: &Value, depth: usize) {
    match value {
        Value::Null => out.put(&[NULL]),
        Value::Bool(false) => out.put(&[FALSE]),
        Value::Bool(true) => out.put(&[TRUE]),
        Value::Number(n) => match packed_number(n) {
            PackedNumber::Uint(u) => {
                out.put(&[UINT]);
                write_varint(out, u);
            }
            PackedNumber::Int(bits) => {
                out.put(&[INT]);
                write_varint(out, bits);
            }
            PackedNumber::Float(f) => {
                out.put(&[FLOAT]);
                out.put(&f.to_le_bytes());
            }
            PackedNumber::Text(text) => {
                out.put(&[TEXT]);
                write_bytes(out, text.as_bytes());
            }
        },
        Value::String(s) => {
            out.put(&[STR]);
            write_bytes(out, s.as_bytes());
        }
        Value::Array(_) | Value::Object(_) if depth >= MAX_DEPTH => out.fail(Unwritten::TooDeep),
        Value::Array(items) => {
            out.put(&[ARRAY]);
            write_varint(out, items.len() as u64);
            for item in items {
                write_value(out, item, depth + 1);
            }
        }
        Value::Object(map) => {
            out.put(&[OBJECT]);
            write_entries(out, map.iter(), depth + 1);
        }
    }
}

enum PackedNumber {
    Uint(u64),
    /// A negative integer `n`, as the bits of `!n`.
    Int(u64),
    Float(f64),
    Text(String),
}

/// A number in the shortest form that gives it back equal: each candidate is
/// checked against the original, so a number that `serde_json`'s
/// `arbitrary_precision` keeps as text (`1e400`, `-0`) stays text.
fn packed_number(n: &Number) -> PackedNumber {
    if let Some(u) = n.as_u64().filter(|&u| Number::from(u) == *n) {
        return PackedNumber::Uint(u);
    }
    if let Some(i) = n.as_i64().filter(|&i| i < 0 && Number::from(i) == *n) {
        return PackedNumber::Int(!i as u64);
    }
    if let Some(f) = n
        .as_f64()
        .filter(|&f| Number::from_f64(f).as_ref() == Some(n))
    {
        return PackedNumber::Float(f);
    }
    PackedNumber::Text(n.to_string())
}

fn write_bytes(out: &mut Writer<'_>, bytes: &[u8]) {
    write_varint(out, bytes.len() as u64);
    out.put(bytes);
}

pub(crate) fn write_varint(out: &mut Writer<'_>, mut n: u64) {
    if n < 0x80 {
        // Nearly every count and length: one byte, stored directly.
        out.put(&[n as u8]);
        return;
    }
    let mut buf = [0u8; 10];
    let mut len = 0;
    loop {
        // The low seven bits, with the high bit set when more follow.
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            buf[len] = low;
            len += 1;
            break;
        }
        buf[len] = low | 0x80;
        len += 1;
    }
    out.put(&buf[..len]);
}

/// Why bytes are not data this module wrote (which, for bytes the memory
/// store wrote itself, would be a bug).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) &'static str);

/// Reads what [`write_data`] wrote: all of `bytes`, nothing left over.
pub(crate) fn read_data(bytes: &[u8]) -> Result<Data, Malformed> {
    let mut reader = Reader { rest: bytes };
    let mut entries = Entries::new();
    reader.entries(1, |key, value| entries.push((DataKey::new(key), value)))?;
    let data = Data::from_entries(entries);
    if reader.rest.is_empty() {
        Ok(data)
    } else {
        Err(Malformed("bytes after the data"))
    }
}

/// Reads a varint that [`write_varint`] wrote at the start of `rest`,
/// and moves `rest` past it.
pub(crate) fn read_varint(rest: &mut &[u8]) -> Result<u64, Malformed> {
    let mut reader = Reader { rest };
    let n = reader.varint()?;
    *rest = reader.rest;
    Ok(n)
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, Malformed> {
        let (&first, rest) = self.rest.split_first().ok_or(Malformed("truncated"))?;
        self.rest = rest;
        Ok(first)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], Malformed> {
        if len > self.rest.len() {
            return Err(Malformed("truncated"));
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(Malformed("varint overflows 64 bits"));
            }
            n |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(Malformed("varint longer than 10 bytes"))
    }

    /// A count of items still to read, each at least one byte long: a count
    /// larger than the bytes left is malformed.
    fn count(&mut self) -> Result<usize, Malformed> {
        let n = self.varint()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.rest.len())
            .ok_or(Malformed("count larger than the bytes left"))
    }

    fn str(&mut self) -> Result<&'a str, Malformed> {
        let len = self.count()?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| Malformed("string is not UTF-8"))
    }

    fn string(&mut self) -> Result<String, Malformed> {
        self.str().map(str::to_owned)
    }

    /// A map's entries at nesting `depth`, as [`write_entries`] wrote them,
    /// each given to `put`.
    fn entries(&mut self, depth: usize, mut put: impl FnMut(&str, Value)) -> Result<(), Malformed> {
        for _ in 0..self.count()? {
            let key = self.str()?;
            put(key, self.value(depth)?);
        }
        Ok(())
    }

    /// A value at nesting `depth`, as [`write_value`] wrote it.
    fn value(&mut self, depth: usize) -> Result<Value, Malformed> {
        Ok(match self.byte()? {
            NULL => Value::Null,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            UINT => Value::Number(self.varint()?.into()),
            INT => {
                let bits = self.varint()?;
                let n = i64::try_from(bits).map_err(|_| Malformed("negative integer too large"))?;
                Value::Number((!n).into())
            }
            FLOAT => {
                let (&bytes, rest) = self
                    .rest
                    .split_first_chunk::<8>()
                    .ok_or(Malformed("truncated"))?;
                self.rest = rest;
                let n = Number::from_f64(f64::from_le_bytes(bytes))
                    .ok_or(Malformed("float is not finite"))?;
                Value::Number(n)
            }
            TEXT => {
                let text = self.string()?;
                Value::Number(text.parse().map_err(|_| Malformed("number text"))?)
            }
            STR => Value::String(self.string()?),
            ARRAY | OBJECT if depth >= MAX_DEPTH => return Err(Malformed("nested too deep")),
            ARRAY => {
                let count = self.count()?;
                // Grown as items arrive: a count is bounded by the bytes
                // left, not by what a corrupt blob could make it reserve.
                let mut items = Vec::with_capacity(count.min(16));
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            OBJECT => {
                let mut map = Map::new();
                self.entries(depth + 1, |key, value| {
                    map.insert(key.to_owned(), value);
                })?;
                Value::Object(map)
            }
            _ => return Err(Malformed("unknown tag")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// `data` written into a buffer sized by a counting pass.
    fn bytes_of(data: &Data) -> Result<Vec<u8>, Unwritten> {
        let mut count = Writer::counting();
        write_data(&mut count, data);
        let mut bytes = vec![0; count.finish()?];
        let mut out = Writer::new(&mut bytes);
        write_data(&mut out, data);
        assert_eq!(out.finish(), Ok(bytes.len()), "counted and written differ");
        Ok(bytes)
    }

    fn round_trip(data: &Data) -> Data {
        read_data(&bytes_of(data).unwrap()).unwrap()
    }

    fn object(value: Value) -> Data {
        match value {
            Value::Object(map) => map.into(),
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn every_kind_of_value_reads_back_equal() {
        let data = object(json!({
            "null": null, "no": false, "yes": true,
            "zero": 0, "small": 1, "max": u64::MAX, "min": i64::MIN, "minus one": -1,
            "float": 1.5, "tiny": 5e-324, "huge": 1.7976931348623157e308, "negative float": -0.25,
            "empty": "", "text": "héllo \"quoted\" \\ \n \u{0} 🎉",
            "list": [1, "two", [3.0, {"four": null}]],
            "nested": {"a": {"b": {"c": []}}, "empty": {}},
        }));
        assert_eq!(round_trip(&data), data);
    }

    #[test]
    fn negative_zero_keeps_its_sign() {
        // `Value`'s equality takes -0.0 for 0.0: compare the bits.
        let back = round_trip(&object(json!({"z": -0.0})));
        let z = back["z"].as_f64().unwrap();
        assert_eq!(z.to_bits(), (-0.0f64).to_bits());
    }

    #[test]
    fn a_small_session_is_smaller_than_its_json() {
        let data = object(json!({"views": 1}));
        let bytes = bytes_of(&data).unwrap();
        assert_eq!(bytes, [1, 5, b'v', b'i', b'e', b'w', b's', UINT, 1]);
        assert!(bytes.len() < serde_json::to_vec(&data).unwrap().len());
    }

    #[test]
    fn varints_at_their_boundaries() {
        for (n, len) in [
            (0, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (u64::from(u32::MAX), 5),
            (u64::MAX, 10),
        ] {
            let mut bytes = vec![0; len];
            let mut out = Writer::new(&mut bytes);
            write_varint(&mut out, n);
            assert_eq!(out.finish(), Ok(len), "{n} takes {len} bytes");
            let mut reader = Reader { rest: &bytes };
            assert_eq!(reader.varint(), Ok(n));
            assert!(reader.rest.is_empty());
        }
    }

    #[test]
    fn a_writer_reports_a_buffer_too_small_and_counts_like_it_writes() {
        let data = object(json!({"views": 1}));
        let len = bytes_of(&data).unwrap().len();
        let mut bytes = vec![0; len - 1];
        let mut out = Writer::new(&mut bytes);
        write_data(&mut out, &data);
        assert_eq!(out.finish(), Err(Unwritten::Full));
        let mut bytes = vec![0; len + 1];
        let mut out = Writer::new(&mut bytes);
        write_data(&mut out, &data);
        assert_eq!(out.finish(), Ok(len));
    }

    /// `{"d": [[[...]]]}` with arrays nested until the whole is `depth`
    /// deep, the top-level map included.
    fn nested(depth: usize) -> Data {
        let mut value = json!(1);
        for _ in 1..depth {
            value = Value::Array(vec![value]);
        }
        object(json!({ "d": value }))
    }

    #[test]
    fn data_as_deep_as_json_reads_is_written_and_deeper_is_refused() {
        let deepest = nested(MAX_DEPTH);
        assert_eq!(round_trip(&deepest), deepest);
        assert_eq!(bytes_of(&nested(MAX_DEPTH + 1)), Err(Unwritten::TooDeep));
        // And a blob nested deeper than a writer ever writes is refused
        // on reading, without recursing further.
        let mut blob = vec![1, 1, b'd'];
        blob.extend(std::iter::repeat_n([ARRAY, 1], 10_000).flatten());
        blob.push(NULL);
        assert_eq!(read_data(&blob), Err(Malformed("nested too deep")));
    }

    #[test]
    fn malformed_bytes_are_errors_naming_what_is_wrong() {
        let cases: [(&[u8], &str); 12] = [
            (&[], "truncated"),
            (&[1], "count larger than the bytes left"),
            (&[1, 1, b'k'], "truncated"),
            (&[1, 1, b'k', 42], "unknown tag"),
            (
                &[1, 1, b'k', STR, 5, b'a'],
                "count larger than the bytes left",
            ),
            (&[1, 1, b'k', FLOAT, 0, 0, 0, 0], "truncated"),
            (
                &[1, 1, b'k', FLOAT, 0, 0, 0, 0, 0, 0, 0xf0, 0x7f],
                "float is not finite",
            ),
            (&[1, 1, 0xff, NULL], "string is not UTF-8"),
            (
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
                "varint overflows 64 bits",
            ),
            (
                &[
                    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x81, 0x00,
                ],
                "varint longer than 10 bytes",
            ),
            (
                &[
                    1, 1, b'k', INT, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                "negative integer too large",
            ),
            (&[0, 0], "bytes after the data"),
        ];
        for (bytes, why) in cases {
            assert_eq!(read_data(bytes), Err(Malformed(why)), "{bytes:?}");
        }
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(".{0,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_data_reads_back_equal(
            entries in prop::collection::btree_map(".{0,12}", arb_value(), 0..8)
        ) {
            let data: Data = entries.into_iter().collect();
            prop_assert_eq!(round_trip(&data), data);
        }

        #[test]
        fn any_bytes_decode_to_data_that_round_trips_or_fail(
            bytes in prop::collection::vec(any::<u8>(), 0..64)
        ) {
            if let Ok(data) = read_data(&bytes) {
                prop_assert_eq!(round_trip(&data), data);
            }
        }
    }
}
