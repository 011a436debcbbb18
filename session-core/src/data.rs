//! Session data: a small map from string keys to JSON values.

use std::cmp::Ordering;
use std::fmt;
use std::iter::FusedIterator;
use std::ops::Index;

use compact_str::CompactString;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use smallvec::SmallVec;

/// A key of session data: kept inline up to the size of a `String` (24
/// bytes on 64-bit targets; nearly every session key is that short), so
/// that a key costs no allocation of its own.
pub(crate) type DataKey = CompactString;

/// The longest key kept inline.
#[cfg(test)]
pub(crate) const DATA_KEY_INLINE: usize = size_of::<String>();

/// Session data: string keys to JSON values ([`serde_json::Value`]), kept
/// in key order.
///
/// It is what [`Record::data`](crate::Record::data) holds, and what a store
/// keeps; handlers use [`Session`](crate::Session) instead. It reads like a
/// `serde_json::Map`, serializes as a JSON object, and converts to and from
/// one. It is built for the few keys a session holds: the entries sit in one
/// sorted array (a lookup is a binary search); the first entry, and keys of
/// up to 24 bytes (on 64-bit targets), need no allocation of their own, so
/// a session like `{"views": 3}` is read, changed and written without
/// touching the heap.
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
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Data {
    /// Sorted by key, each key once.
    entries: Entries,
}

/// The entries of [`Data`]: the first one inline.
pub(crate) type Entries = SmallVec<[(DataKey, Value); 1]>;

impl Data {
    /// An empty map (allocates nothing).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Data from entries in any order; of keys given twice, the last wins.
    /// Entries already in order (as this crate writes them, and as a
    /// `serde_json::Map` gives them) are only checked; others are sorted,
    /// so that no input costs more than O(n log n).
    pub(crate) fn from_entries(mut entries: Entries) -> Self {
        if !entries.windows(2).all(|pair| pair[0].0 < pair[1].0) {
            // Reversed, a stable sort puts the last of equal keys first,
            // and `dedup_by` keeps the first of each run.
            entries.reverse();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries.dedup_by(|later, first| later.0 == first.0);
        }
        Self { entries }
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
        debug_assert_eq!(self.find(key), found, "the data changed since `find`");
        match found {
            Ok(i) => self.entries[i].1 = value,
            Err(i) => self.entries.insert(i, (DataKey::new(key), value)),
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
                self.entries.insert(i, (DataKey::new(key), value));
                None
            }
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

    /// The keys and their values, the values to change in place.
    pub fn iter_mut(&mut self) -> IterMut<'_> {
        IterMut(self.entries.iter_mut())
    }

    /// Keeps only the entries for which `keep` returns `true` (it may also
    /// change their values).
    ///
    /// ```
    /// # use session_core::Data;
    /// # use serde_json::json;
    /// let mut data: Data = [("a", json!(1)), ("b", json!(null))].into_iter().collect();
    /// data.retain(|_, value| !value.is_null());
    /// assert_eq!(data.keys().collect::<Vec<_>>(), ["a"]);
    /// ```
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut Value) -> bool) {
        self.entries.retain(|(key, value)| keep(key, value));
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
pub struct Iter<'a>(std::slice::Iter<'a, (DataKey, Value)>);

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

impl FusedIterator for Iter<'_> {}

/// An iterator over the entries of [`Data`], in key order, the values
/// mutable.
#[derive(Debug)]
pub struct IterMut<'a>(std::slice::IterMut<'a, (DataKey, Value)>);

impl<'a> Iterator for IterMut<'a> {
    type Item = (&'a str, &'a mut Value);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k.as_str(), v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for IterMut<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(k, v)| (k.as_str(), v))
    }
}

impl ExactSizeIterator for IterMut<'_> {}

impl FusedIterator for IterMut<'_> {}

impl<'a> IntoIterator for &'a mut Data {
    type Item = (&'a str, &'a mut Value);
    type IntoIter = IterMut<'a>;

    fn into_iter(self) -> IterMut<'a> {
        self.iter_mut()
    }
}

/// An iterator that takes the entries out of [`Data`], in key order.
pub struct IntoIter(smallvec::IntoIter<[(DataKey, Value); 1]>);

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
        self.0.next().map(|(k, v)| (k.into_string(), v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for IntoIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(k, v)| (k.into_string(), v))
    }
}

impl ExactSizeIterator for IntoIter {}

impl FusedIterator for IntoIter {}

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
        let mut entries = std::mem::take(&mut self.entries);
        entries.extend(iter.into_iter().map(|(k, v)| (DataKey::new(k.as_ref()), v)));
        *self = Self::from_entries(entries);
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
        Self::from_entries(
            map.into_iter()
                .map(|(k, v)| (DataKey::from(k), v))
                .collect(),
        )
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
                // Keys up to 24 bytes are read inline: no allocation each.
                let mut entries = Entries::new();
                while let Some(entry) = access.next_entry::<DataKey, Value>()? {
                    entries.push(entry);
                }
                Ok(Data::from_entries(entries))
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
            let key = DataKey::new(&text);
            assert_eq!(key.as_str(), text);
            assert_eq!(!key.is_heap_allocated(), text.len() <= DATA_KEY_INLINE);
            assert_eq!(DataKey::from(text.clone()), key);
            assert_eq!(key.into_string(), text);
        }
        assert_eq!(size_of::<DataKey>(), size_of::<String>());
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
    fn iter_mut_and_retain_change_values_in_place() {
        let mut data: Data = [("a", json!(1)), ("b", json!(2)), ("c", json!(3))]
            .into_iter()
            .collect();
        for (key, value) in &mut data {
            if key != "b" {
                *value = json!(value.as_i64().unwrap() * 10);
            }
        }
        data.retain(|key, value| key != "a" && value != &json!(0));
        assert_eq!(
            serde_json::to_value(&data).unwrap(),
            json!({"b": 2, "c": 30})
        );
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
        /// Built from entries in any order, with keys repeated, it holds
        /// what a `BTreeMap` fed the same entries holds (the last of a key
        /// winning), by every way of building it.
        #[test]
        fn built_from_any_order_like_a_btree_map(
            entries in prop::collection::vec(("[a-e]|[a-c]{24,25}", any::<i64>()), 0..40),
            first in prop::collection::vec(("[a-e]", any::<i64>()), 0..4),
        ) {
            let entries: Vec<(String, Value)> =
                entries.into_iter().map(|(k, v)| (k, json!(v))).collect();
            let first: Vec<(String, Value)> =
                first.into_iter().map(|(k, v)| (k, json!(v))).collect();
            let model: BTreeMap<String, Value> =
                first.iter().chain(&entries).cloned().collect();
            let expected: Vec<(&str, &Value)> =
                model.iter().map(|(k, v)| (k.as_str(), v)).collect();

            let mut extended: Data = first.iter().cloned().collect();
            extended.extend(entries.iter().cloned());
            prop_assert_eq!(extended.iter().collect::<Vec<_>>(), expected.clone());

            let all: Vec<(String, Value)> = first.iter().chain(&entries).cloned().collect();
            let collected: Data = all.iter().cloned().collect();
            prop_assert_eq!(&collected, &extended);

            // A JSON object with the keys in the given order, repeats kept.
            let mut text = String::from("{");
            for (n, (k, v)) in all.iter().enumerate() {
                if n > 0 {
                    text.push(',');
                }
                text.push_str(&format!("{}:{v}", json!(k)));
            }
            text.push('}');
            let parsed: Data = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(&parsed, &extended);

            let map: Map<String, Value> = model.clone().into_iter().collect();
            prop_assert_eq!(&Data::from(map), &extended);
        }

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
