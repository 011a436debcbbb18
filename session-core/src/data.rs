//! Session data: a small map from string keys to JSON values.

use std::cmp::Ordering;
use std::fmt;
use std::ops::Index;

use compact_str::CompactString;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use smallvec::SmallVec;

/// A key of session data: kept inline up to 24 bytes, the size of a
/// `String` (nearly every session key is that short), so that a key costs
/// no allocation of its own.
pub(crate) type Key = CompactString;

/// The longest key kept inline.
#[cfg(test)]
pub(crate) const KEY_INLINE: usize = 24;

/// Session data: string keys to JSON values ([`serde_json::Value`]), kept
/// in key order.
///
/// It is what [`Record::data`](crate::Record::data) holds, and what a store
/// keeps; handlers use [`Session`](crate::Session) instead. It reads like a
/// `serde_json::Map`, serializes as a JSON object, and converts to and from
/// one. It is built for the few keys a session holds: the entries sit in one
/// sorted array (a lookup is a binary search), the first entry and keys of up
/// to 24 bytes need no allocation of their own, so a session like
/// `{"views": 3}` is read, changed and written without touching the heap.
///
/// ```
/// use session_core::Data;
/// use serde_json::json;
///
/// let mut data = Data::new();
/// data.insert("views", json!(1));
/// data.insert("user", json!("alice"));
/// assert_eq!(data.get("views"), Some(&json!(1)));
/// assert_eq!(data["user"], "alice");
/// // A missing key reads as null, as with `serde_json::Value`.
/// assert_eq!(data["cart"], json!(null));
/// // Keys come out in order, whatever the order they went in.
/// assert_eq!(data.keys().collect::<Vec<_>>(), ["user", "views"]);
/// assert_eq!(serde_json::to_string(&data).unwrap(), r#"{"user":"alice","views":1}"#);
/// ```
#[derive(Clone, Default, PartialEq)]
pub struct Data {
    /// Sorted by key, each key once.
    entries: SmallVec<[(Key, Value); 1]>,
}

impl Data {
    /// An empty map (allocates nothing).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys it holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Where `key` is (`Ok`), or where it would go (`Err`).
    pub(crate) fn find(&self, key: &str) -> Result<usize, usize> {
        // The last key first: with one key (most sessions) it is the only
        // comparison, and a decoder appending keys in order needs no other.
        let Some(((last, _), before)) = self.entries.split_last() else {
            return Err(0);
        };
        match last.as_str().cmp(key) {
            Ordering::Less => Err(self.entries.len()),
            Ordering::Equal => Ok(before.len()),
            Ordering::Greater => before.binary_search_by(|(k, _)| k.as_str().cmp(key)),
        }
    }

    /// The value at a position [`find`](Self::find) gave.
    pub(crate) fn at(&self, found: Result<usize, usize>) -> Option<&Value> {
        found.ok().map(|i| &self.entries[i].1)
    }

    /// Stores `value` under `key` at the position [`find`](Self::find) gave
    /// for it, the data unchanged since.
    pub(crate) fn put(&mut self, found: Result<usize, usize>, key: &str, value: Value) {
        match found {
            Ok(i) => self.entries[i].1 = value,
            Err(i) => self.entries.insert(i, (Key::new(key), value)),
        }
    }

    /// The value under `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Value> {
        let i = self.find(key).ok()?;
        Some(&self.entries[i].1)
    }

    /// The value under `key`, to change in place.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        let i = self.find(key).ok()?;
        Some(&mut self.entries[i].1)
    }

    /// Whether `key` holds a value.
    #[must_use]
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Stores `value` under `key`, returning the value it replaced.
    ///
    /// ```
    /// # use session_core::Data;
    /// # use serde_json::json;
    /// let mut data = Data::new();
    /// assert_eq!(data.insert("n", json!(1)), None);
    /// assert_eq!(data.insert("n", json!(2)), Some(json!(1)));
    /// ```
    pub fn insert(&mut self, key: &str, value: Value) -> Option<Value> {
        match self.find(key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (Key::new(key), value));
                None
            }
        }
    }

    /// [`insert`](Self::insert) with an owned key, whose buffer a long key
    /// keeps.
    fn insert_owned(&mut self, key: String, value: Value) {
        match self.find(&key) {
            Ok(i) => self.entries[i].1 = value,
            Err(i) => self.entries.insert(i, (Key::from(key), value)),
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.find(key).ok()?;
        Some(self.entries.remove(i).1)
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The keys and their values, in key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.entries.iter())
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// The values, in the order of their keys.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Value> + ExactSizeIterator {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The values, to change in place.
    pub fn values_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = &mut Value> + ExactSizeIterator {
        self.entries.iter_mut().map(|(_, v)| v)
    }
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The value under a key, or `null` when there is none (as indexing a
/// [`serde_json::Value`] does): indexing never panics.
impl Index<&str> for Data {
    type Output = Value;

    fn index(&self, key: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.get(key).unwrap_or(&NULL)
    }
}

/// An iterator over the entries of [`Data`], in key order.
#[derive(Debug, Clone)]
pub struct Iter<'a>(std::slice::Iter<'a, (Key, Value)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k.as_str(), v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(k, v)| (k.as_str(), v))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Data {
    type Item = (&'a str, &'a Value);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// An iterator that takes the entries out of [`Data`], in key order.
pub struct IntoIter(smallvec::IntoIter<[(Key, Value); 1]>);

impl fmt::Debug for IntoIter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.as_slice().iter().map(|(k, v)| (k.as_str(), v)))
            .finish()
    }
}

impl Iterator for IntoIter {
    type Item = (String, Value);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (owned(k), v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for IntoIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(k, v)| (owned(k), v))
    }
}

impl ExactSizeIterator for IntoIter {}

fn owned(key: Key) -> String {
    key.into_string()
}

impl IntoIterator for Data {
    type Item = (String, Value);
    type IntoIter = IntoIter;

    fn into_iter(self) -> IntoIter {
        IntoIter(self.entries.into_iter())
    }
}

/// Later entries win over earlier ones with the same key.
impl<K: AsRef<str>> Extend<(K, Value)> for Data {
    fn extend<I: IntoIterator<Item = (K, Value)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k.as_ref(), v);
        }
    }
}

/// Later entries win over earlier ones with the same key.
///
/// ```
/// # use session_core::Data;
/// # use serde_json::json;
/// let data: Data = [("b", json!(2)), ("a", json!(1)), ("b", json!(3))].into_iter().collect();
/// assert_eq!(serde_json::to_value(&data).unwrap(), json!({"a": 1, "b": 3}));
/// ```
impl<K: AsRef<str>> FromIterator<(K, Value)> for Data {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        let mut data = Self::new();
        data.extend(iter);
        data
    }
}

impl From<Map<String, Value>> for Data {
    fn from(map: Map<String, Value>) -> Self {
        let mut data = Self::new();
        for (k, v) in map {
            data.insert_owned(k, v);
        }
        data
    }
}

impl From<Data> for Map<String, Value> {
    fn from(data: Data) -> Self {
        data.into_iter().collect()
    }
}

/// A JSON object.
impl From<Data> for Value {
    fn from(data: Data) -> Self {
        Self::Object(data.into())
    }
}

/// As a JSON object, keys in order.
impl Serialize for Data {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

/// From a JSON object (or any map with string keys); of keys given twice,
/// the last wins, as with `serde_json::Map`.
impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DataVisitor;

        impl<'de> Visitor<'de> for DataVisitor {
            type Value = Data;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of session data")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Data, A::Error> {
                let mut data = Data::new();
                while let Some((k, v)) = access.next_entry::<String, Value>()? {
                    data.insert_owned(k, v);
                }
                Ok(data)
            }
        }

        deserializer.deserialize_map(DataVisitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_inline_up_to_24_bytes_and_any_length_reads_back() {
        for len in [0, 1, 23, 24, 25, 200] {
            let text = "é".repeat(len / 2) + &"k".repeat(len % 2);
            let key = Key::new(&text);
            assert_eq!(key.as_str(), text);
            assert_eq!(!key.is_heap_allocated(), text.len() <= KEY_INLINE);
            assert_eq!(Key::from(text.clone()), key);
            assert_eq!(owned(key), text);
        }
        assert_eq!(size_of::<Key>(), 24);
    }

    #[test]
    fn one_short_entry_is_kept_without_allocating() {
        let mut data = Data::new();
        data.insert("views", json!(1));
        assert!(!data.entries.spilled());
        data.insert("user", json!("bob"));
        assert!(data.entries.spilled());
    }

    #[test]
    fn serializes_as_a_sorted_object_and_reads_back() {
        let data: Data = [("z", json!(1)), ("a", json!([1, {"b": null}]))]
            .into_iter()
            .collect();
        let text = serde_json::to_string(&data).unwrap();
        assert_eq!(text, r#"{"a":[1,{"b":null}],"z":1}"#);
        assert_eq!(serde_json::from_str::<Data>(&text).unwrap(), data);
        // Duplicated keys: the last wins, as in `serde_json::Map`.
        let dup: Data = serde_json::from_str(r#"{"k":1,"a":2,"k":3}"#).unwrap();
        assert_eq!(serde_json::to_value(&dup).unwrap(), json!({"a": 2, "k": 3}));
        // Not a map: an error, not a panic.
        let err = serde_json::from_str::<Data>("[1]").unwrap_err();
        assert!(err.to_string().contains("a map of session data"), "{err}");
    }

    #[test]
    fn converts_to_and_from_a_json_map() {
        let map = json!({"long key that is not inline": 1, "k": "v"});
        let Value::Object(map) = map else {
            unreachable!()
        };
        let data = Data::from(map.clone());
        assert_eq!(data.len(), 2);
        assert_eq!(Map::from(data.clone()), map);
        assert_eq!(Value::from(data), Value::Object(map));
    }

    #[test]
    fn debug_shows_a_map() {
        let data: Data = [("a", json!(1))].into_iter().collect();
        assert_eq!(format!("{data:?}"), r#"{"a": Number(1)}"#);
    }

    #[derive(Debug, Clone)]
    enum Step {
        Insert(String, i64),
        Remove(String),
        GetMut(String),
        Clear,
    }

    fn step() -> impl Strategy<Value = Step> {
        // Few distinct keys, so that steps meet; some longer than inline.
        let key = prop_oneof!["[a-e]", "[a-c]{24,25}"];
        prop_oneof![
            6 => (key.clone(), any::<i64>()).prop_map(|(k, v)| Step::Insert(k, v)),
            3 => key.clone().prop_map(Step::Remove),
            2 => key.prop_map(Step::GetMut),
            1 => Just(Step::Clear),
        ]
    }

    proptest! {
        /// Every operation answers as a `BTreeMap` does, and the entries
        /// stay sorted with each key once.
        #[test]
        fn behaves_like_a_btree_map(steps in prop::collection::vec(step(), 0..60)) {
            let mut data = Data::new();
            let mut model = BTreeMap::<String, Value>::new();
            for step in steps {
                match step {
                    Step::Insert(k, v) => {
                        prop_assert_eq!(data.insert(&k, json!(v)), model.insert(k, json!(v)));
                    }
                    Step::Remove(k) => prop_assert_eq!(data.remove(&k), model.remove(&k)),
                    Step::GetMut(k) => {
                        if let Some(v) = data.get_mut(&k) {
                            *v = json!("changed");
                        }
                        if let Some(v) = model.get_mut(&k) {
                            *v = json!("changed");
                        }
                    }
                    Step::Clear => {
                        data.clear();
                        model.clear();
                    }
                }
                prop_assert_eq!(data.len(), model.len());
                let ours: Vec<(&str, &Value)> = data.iter().collect();
                let theirs: Vec<(&str, &Value)> =
                    model.iter().map(|(k, v)| (k.as_str(), v)).collect();
                prop_assert_eq!(ours, theirs);
                for k in ["a", "b", "z", "aaaaaaaaaaaaaaaaaaaaaaaaa"] {
                    prop_assert_eq!(data.get(k), model.get(k));
                    prop_assert_eq!(data.contains_key(k), model.contains_key(k));
                }
            }
            let back: Vec<(String, Value)> = data.clone().into_iter().collect();
            prop_assert_eq!(back, model.into_iter().collect::<Vec<_>>());
        }
    }
}
