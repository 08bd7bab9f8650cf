//! Typed, extensible per-frame metadata: what a model found, a scoreboard's value, a tag.

use std::collections::HashMap;
use std::fmt;

/// A labelled box, in pixels of the frame it is attached to (`x`, `y` the top-left corner).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct BBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    /// Confidence in 0..=1.
    pub score: f32,
    /// Class index in the model's label list, -1 when none.
    pub class_id: i32,
    pub label: String,
}

/// One metadata value.
#[derive(Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Boxes(Vec<BBox>),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Boxes(_) => "boxes",
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            Value::Boxes(b) => write!(f, "<{} boxes>", b.len()),
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}
impl From<Vec<BBox>> for Value {
    fn from(v: Vec<BBox>) -> Self {
        Value::Boxes(v)
    }
}

/// Ordered key/value metadata. Keys are unique; inserting an existing key replaces its value.
/// Kept as a small vector: frames carry a handful of entries, and order is preserved on the wire.
///
/// [`Metadata::insert`] scans for the key, which is right for a handful of entries; building
/// from many entries at once (a decoder, [`FromIterator`]) goes through
/// [`Metadata::from_entries`], which is linear in the total key length.
#[derive(Clone, PartialEq, Default)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
}

impl Metadata {
    /// Most entries one frame or stream description may carry on the wire. Readers refuse a
    /// message that declares more (a hostile one declaring 65,535 used to cost seconds of CPU);
    /// writers refuse to send more.
    pub const MAX_ENTRIES: usize = 1024;

    pub fn new() -> Self {
        Self::default()
    }

    /// Build from entries in order, a later duplicate key replacing the earlier value in the
    /// earlier position (as repeated [`Metadata::insert`]s would), in linear time.
    pub fn from_entries(entries: Vec<(String, Value)>) -> Self {
        if entries.len() <= 8 {
            let mut m = Metadata::new();
            for (k, v) in entries {
                m.insert(k, v);
            }
            return m;
        }
        let mut out: Vec<(String, Value)> = Vec::with_capacity(entries.len());
        let mut index: HashMap<String, usize> = HashMap::with_capacity(entries.len());
        for (k, v) in entries {
            match index.get(&k) {
                Some(&i) => out[i].1 = v,
                None => {
                    index.insert(k.clone(), out.len());
                    out.push((k, v));
                }
            }
        }
        Metadata { entries: out }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(i).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Metadata {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        Metadata::from_entries(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_replaces_and_keeps_order() {
        let mut m = Metadata::new();
        m.insert("a", 1i64);
        m.insert("b", "x");
        m.insert("a", 2.5);
        assert_eq!(m.len(), 2);
        assert_eq!(m.get("a"), Some(&Value::Float(2.5)));
        assert_eq!(m.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(m.remove("a"), Some(Value::Float(2.5)));
        assert!(m.get("a").is_none());
    }

    #[test]
    fn from_entries_keeps_first_position_and_last_value() {
        let mut entries: Vec<(String, Value)> =
            (0..20).map(|i| (format!("k{i}"), Value::Int(i))).collect();
        entries.push(("k3".into(), Value::Str("late".into())));
        entries.push(("k0".into(), Value::Bool(true)));
        let m = Metadata::from_entries(entries);
        assert_eq!(m.len(), 20);
        assert_eq!(m.iter().next().map(|(k, _)| k), Some("k0"));
        assert_eq!(m.get("k0"), Some(&Value::Bool(true)));
        assert_eq!(m.get("k3"), Some(&Value::Str("late".into())));
        let small: Metadata = [("a", 1i64), ("a", 2i64)].into_iter().collect();
        assert_eq!((small.len(), small.get("a")), (1, Some(&Value::Int(2))));
    }
}
