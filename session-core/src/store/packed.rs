//! The memory store's encoding of session data: JSON values in a compact
//! binary form, tag by tag, that never leaves the process.
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

/// The length of `data` once written.
pub(crate) fn data_len(data: &Data) -> usize {
    entries_len(data)
}

fn entries_len(map: &Map<String, Value>) -> usize {
    map.iter()
        .fold(varint_len(map.len() as u64), |len, (key, value)| {
            len + bytes_len(key.len()) + value_len(value)
        })
}

fn value_len(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 1,
        Value::Number(n) => {
            1 + match packed_number(n) {
                PackedNumber::Uint(u) => varint_len(u),
                PackedNumber::Int(bits) => varint_len(bits),
                PackedNumber::Float(_) => 8,
                PackedNumber::Text(text) => bytes_len(text.len()),
            }
        }
        Value::String(s) => 1 + bytes_len(s.len()),
        Value::Array(items) => items
            .iter()
            .fold(1 + varint_len(items.len() as u64), |len, item| {
                len + value_len(item)
            }),
        Value::Object(map) => 1 + entries_len(map),
    }
}

fn bytes_len(len: usize) -> usize {
    varint_len(len as u64) + len
}

fn varint_len(n: u64) -> usize {
    // One byte per started group of seven bits; 0 takes one byte too.
    (64 - (n | 1).leading_zeros() as usize).div_ceil(7)
}

/// Writes into a buffer, and tells whether it was large enough.
pub(crate) struct Writer<'a> {
    rest: &'a mut [u8],
    len: usize,
    overflowed: bool,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self {
            rest: buf,
            len: 0,
            overflowed: false,
        }
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) {
        let rest = std::mem::take(&mut self.rest);
        if bytes.len() > rest.len() {
            self.overflowed = true;
            self.rest = rest;
            return;
        }
        let (head, tail) = rest.split_at_mut(bytes.len());
        head.copy_from_slice(bytes);
        self.rest = tail;
        self.len += bytes.len();
    }

    /// How many bytes were written, or `None` when the buffer was too small.
    pub(crate) fn written(&self) -> Option<usize> {
        (!self.overflowed).then_some(self.len)
    }
}

/// Writes `data`: [`data_len`] bytes, if they fit.
pub(crate) fn write_data(out: &mut Writer<'_>, data: &Data) {
    write_entries(out, data);
}

fn write_entries(out: &mut Writer<'_>, map: &Map<String, Value>) {
    write_varint(out, map.len() as u64);
    for (key, value) in map {
        write_bytes(out, key.as_bytes());
        write_value(out, value);
    }
}

fn write_value(out: &mut Writer<'_>, value: &Value) {
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
        Value::Array(items) => {
            out.put(&[ARRAY]);
            write_varint(out, items.len() as u64);
            for item in items {
                write_value(out, item);
            }
        }
        Value::Object(map) => {
            out.put(&[OBJECT]);
            write_entries(out, map);
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

fn write_varint(out: &mut Writer<'_>, mut n: u64) {
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
    let data = reader.entries()?;
    if reader.rest.is_empty() {
        Ok(data)
    } else {
        Err(Malformed("bytes after the data"))
    }
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
    /// larger than the bytes left is malformed, so no more is ever reserved
    /// than the bytes could hold.
    fn count(&mut self) -> Result<usize, Malformed> {
        let n = self.varint()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.rest.len())
            .ok_or(Malformed("count larger than the bytes left"))
    }

    fn string(&mut self) -> Result<String, Malformed> {
        let len = self.count()?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| Malformed("string is not UTF-8"))
    }

    fn entries(&mut self) -> Result<Map<String, Value>, Malformed> {
        let count = self.count()?;
        let mut map = Map::new();
        for _ in 0..count {
            let key = self.string()?;
            let value = self.value()?;
            map.insert(key, value);
        }
        Ok(map)
    }

    fn value(&mut self) -> Result<Value, Malformed> {
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
                let bytes = self.take(8)?.try_into().expect("took 8 bytes");
                let n = Number::from_f64(f64::from_le_bytes(bytes))
                    .ok_or(Malformed("float is not finite"))?;
                Value::Number(n)
            }
            TEXT => {
                let text = self.string()?;
                Value::Number(text.parse().map_err(|_| Malformed("number text"))?)
            }
            STR => Value::String(self.string()?),
            ARRAY => {
                let count = self.count()?;
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(self.value()?);
                }
                Value::Array(items)
            }
            OBJECT => Value::Object(self.entries()?),
            _ => return Err(Malformed("unknown tag")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn bytes_of(data: &Data) -> Vec<u8> {
        let mut bytes = vec![0; data_len(data)];
        let mut out = Writer::new(&mut bytes);
        write_data(&mut out, data);
        assert_eq!(
            out.written(),
            Some(bytes.len()),
            "data_len and write_data disagree"
        );
        bytes
    }

    fn round_trip(data: &Data) -> Data {
        read_data(&bytes_of(data)).unwrap()
    }

    fn object(value: Value) -> Data {
        match value {
            Value::Object(map) => map,
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
    fn a_small_session_is_smaller_than_its_json() {
        let data = object(json!({"views": 1}));
        let bytes = bytes_of(&data);
        assert_eq!(bytes, [1, 5, b'v', b'i', b'e', b'w', b's', UINT, 1]);
        assert!(bytes.len() < serde_json::to_vec(&data).unwrap().len());
    }

    #[test]
    fn varints_at_their_boundaries() {
        for n in [0, 127, 128, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
            let mut bytes = vec![0; varint_len(n)];
            let mut out = Writer::new(&mut bytes);
            write_varint(&mut out, n);
            assert_eq!(out.written(), Some(bytes.len()), "varint_len({n}) is wrong");
            let mut reader = Reader { rest: &bytes };
            assert_eq!(reader.varint(), Ok(n));
            assert!(reader.rest.is_empty());
        }
    }

    #[test]
    fn a_writer_reports_a_buffer_too_small() {
        let data = object(json!({"views": 1}));
        let mut bytes = vec![0; data_len(&data) - 1];
        let mut out = Writer::new(&mut bytes);
        write_data(&mut out, &data);
        assert_eq!(out.written(), None);
        let mut bytes = vec![0; data_len(&data) + 1];
        let mut out = Writer::new(&mut bytes);
        write_data(&mut out, &data);
        assert_eq!(out.written(), Some(data_len(&data)));
    }

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        let cases: [&[u8]; 10] = [
            &[],
            &[1],
            &[1, 1, b'k'],
            &[1, 1, b'k', 42],
            &[1, 1, b'k', STR, 5, b'a'],
            &[1, 1, b'k', FLOAT, 0, 0, 0, 0, 0, 0, 0xf0, 0x7f],
            &[1, 1, 0xff, NULL],
            &[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            &[
                1, 1, b'k', INT, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            &[0, 0],
        ];
        for bytes in cases {
            assert!(read_data(bytes).is_err(), "{bytes:?} was accepted");
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
