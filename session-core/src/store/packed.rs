//! The memory store's encoding of session data: JSON values in a compact
//! binary form, tag by tag, that never leaves the process.
//!
//! Decoding it is a walk over lengths and tags, with no text to parse, no
//! escapes and no number formatting: a small session such as
//! `{"user":"bob"}` decodes in a fraction of what `serde_json` spends on
//! its text, and the code is small enough to stay in cache between
//! requests. The portable format stores exchange is still JSON
//! ([`Record::to_bytes`](crate::Record::to_bytes)).
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

use std::io::{self, Write};

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

/// Writes `data`. Fails only when `out` does.
pub(crate) fn write_data<W: Write>(out: &mut W, data: &Data) -> io::Result<()> {
    write_entries(out, data)
}

fn write_entries<W: Write>(out: &mut W, map: &Map<String, Value>) -> io::Result<()> {
    write_varint(out, map.len() as u64)?;
    for (key, value) in map {
        write_bytes(out, key.as_bytes())?;
        write_value(out, value)?;
    }
    Ok(())
}

fn write_value<W: Write>(out: &mut W, value: &Value) -> io::Result<()> {
    match value {
        Value::Null => out.write_all(&[NULL]),
        Value::Bool(false) => out.write_all(&[FALSE]),
        Value::Bool(true) => out.write_all(&[TRUE]),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => {
            out.write_all(&[STR])?;
            write_bytes(out, s.as_bytes())
        }
        Value::Array(items) => {
            out.write_all(&[ARRAY])?;
            write_varint(out, items.len() as u64)?;
            items.iter().try_for_each(|item| write_value(out, item))
        }
        Value::Object(map) => {
            out.write_all(&[OBJECT])?;
            write_entries(out, map)
        }
    }
}

/// A number in the shortest form that gives it back equal: each candidate is
/// checked against the original, so a number that `serde_json`'s
/// `arbitrary_precision` keeps as text (`1e400`, `-0`) stays text.
fn write_number<W: Write>(out: &mut W, n: &Number) -> io::Result<()> {
    if let Some(u) = n.as_u64().filter(|&u| Number::from(u) == *n) {
        out.write_all(&[UINT])?;
        return write_varint(out, u);
    }
    if let Some(i) = n.as_i64().filter(|&i| i < 0 && Number::from(i) == *n) {
        out.write_all(&[INT])?;
        return write_varint(out, !i as u64);
    }
    if let Some(f) = n
        .as_f64()
        .filter(|&f| Number::from_f64(f).as_ref() == Some(n))
    {
        out.write_all(&[FLOAT])?;
        return out.write_all(&f.to_le_bytes());
    }
    out.write_all(&[TEXT])?;
    write_bytes(out, n.to_string().as_bytes())
}

fn write_bytes<W: Write>(out: &mut W, bytes: &[u8]) -> io::Result<()> {
    write_varint(out, bytes.len() as u64)?;
    out.write_all(bytes)
}

fn write_varint<W: Write>(out: &mut W, mut n: u64) -> io::Result<()> {
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
    out.write_all(&buf[..len])
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
    /// larger than the bytes left is malformed (and is never used to
    /// reserve memory).
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

    fn round_trip(data: &Data) -> Data {
        let mut bytes = Vec::new();
        write_data(&mut bytes, data).unwrap();
        read_data(&bytes).unwrap()
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
        let mut bytes = Vec::new();
        write_data(&mut bytes, &data).unwrap();
        assert_eq!(bytes, [1, 5, b'v', b'i', b'e', b'w', b's', UINT, 1]);
        assert!(bytes.len() < serde_json::to_vec(&data).unwrap().len());
    }

    #[test]
    fn varints_at_their_boundaries() {
        for n in [0, 127, 128, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
            let mut bytes = Vec::new();
            write_varint(&mut bytes, n).unwrap();
            let mut reader = Reader { rest: &bytes };
            assert_eq!(reader.varint(), Ok(n));
            assert!(reader.rest.is_empty());
        }
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
