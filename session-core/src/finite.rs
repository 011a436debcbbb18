//! Session values as JSON, refusing floats that have none.
//!
//! `serde_json` writes a NaN or an infinite float as `null`, without an
//! error: stored that way, the value reads back as `null`, and a typed read
//! of it (`get::<f64>`, an `update` of an `f64`) fails in every later
//! request. [`to_json`] refuses such a value instead.

use serde::Serialize;
use serde::ser::{self, Error as _};
use serde_json::Value;

/// `value` as JSON, or an error when it holds a NaN or an infinite float
/// (anywhere, map keys included).
///
/// The value is serialized once; only when the JSON holds a `null` (which
/// a non-finite float becomes) is it serialized again, into nothing, to
/// tell the two apart. So a `Serialize` impl must give the same output
/// twice, as derived ones do.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Value, serde_json::Error> {
    let json = serde_json::to_value(value)?;
    if has_null(&json) {
        value.serialize(FiniteCheck)?;
    }
    Ok(json)
}

fn has_null(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.iter().any(has_null),
        Value::Object(map) => map.values().any(has_null),
        _ => false,
    }
}

fn check(x: f64) -> Result<(), serde_json::Error> {
    if x.is_finite() {
        Ok(())
    } else {
        Err(serde_json::Error::custom(format!(
            "{x} has no JSON form (it would be stored as null)"
        )))
    }
}

/// A serializer that writes nothing and fails on a non-finite float.
struct FiniteCheck;

/// The serializer's methods that take a value of no interest.
macro_rules! accept {
    ($($method:ident($($ty:ty),*);)*) => {
        $(fn $method(self, $(_: $ty),*) -> Result<(), serde_json::Error> { Ok(()) })*
    };
}

impl ser::Serializer for FiniteCheck {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    accept! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_i128(i128);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_u128(u128);
        serialize_char(char);
        serialize_str(&str);
        serialize_bytes(&[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_f32(self, v: f32) -> Result<(), serde_json::Error> {
        check(f64::from(v))
    }

    fn serialize_f64(self, v: f64) -> Result<(), serde_json::Error> {
        check(v)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), serde_json::Error> {
        value.serialize(self)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        value.serialize(self)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self, serde_json::Error> {
        Ok(self)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self, serde_json::Error> {
        Ok(self)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, serde_json::Error> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, serde_json::Error> {
        Ok(self)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self, serde_json::Error> {
        Ok(self)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, serde_json::Error> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, serde_json::Error> {
        Ok(self)
    }
}

/// The compound forms: each element, key and field goes through the check.
macro_rules! compound {
    ($($trait:ident :: $method:ident($($name:ty),*);)*) => {
        $(impl ser::$trait for FiniteCheck {
            type Ok = ();
            type Error = serde_json::Error;

            fn $method<T: Serialize + ?Sized>(
                &mut self,
                $(_: $name,)*
                value: &T,
            ) -> Result<(), serde_json::Error> {
                value.serialize(FiniteCheck)
            }

            fn end(self) -> Result<(), serde_json::Error> {
                Ok(())
            }
        })*
    };
}

compound! {
    SerializeSeq::serialize_element();
    SerializeTuple::serialize_element();
    SerializeTupleStruct::serialize_field();
    SerializeTupleVariant::serialize_field();
    SerializeStruct::serialize_field(&'static str);
    SerializeStructVariant::serialize_field(&'static str);
}

impl ser::SerializeMap for FiniteCheck {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), serde_json::Error> {
        key.serialize(Self)
    }

    fn serialize_value<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        value.serialize(Self)
    }

    fn end(self) -> Result<(), serde_json::Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    #[derive(Serialize)]
    struct Stats {
        name: &'static str,
        mean: Option<f64>,
        samples: Vec<(u8, f32)>,
    }

    #[test]
    fn finite_values_are_their_json() {
        let stats = Stats {
            name: "a",
            mean: None,
            samples: vec![(1, 0.5), (2, -1.0e30)],
        };
        assert_eq!(
            to_json(&stats).unwrap(),
            json!({"name": "a", "mean": null, "samples": [[1, 0.5], [2, -1.0e30_f32]]})
        );
        assert_eq!(to_json(&()).unwrap(), Value::Null);
        assert_eq!(to_json(&f64::MAX).unwrap(), json!(f64::MAX));
    }

    #[test]
    fn a_non_finite_float_anywhere_is_refused() {
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(to_json(&x).is_err(), "{x}");
            assert!(to_json(&Some(x)).is_err(), "{x}");
            assert!(to_json(&vec![1.0, x]).is_err(), "{x}");
            let stats = Stats {
                name: "a",
                mean: Some(x),
                samples: vec![],
            };
            let error = to_json(&stats).unwrap_err().to_string();
            assert!(error.contains("no JSON form"), "{error}");
            let map: BTreeMap<&str, (u8, f64)> = [("k", (1, x))].into();
            assert!(to_json(&map).is_err(), "{x}");
        }
        assert!(to_json(&vec![(1u8, f32::NAN)]).is_err());
    }
}
