//! A format-neutral tree of parsed values (TOML or JSON), with duplicate keys rejected.
//!
//! Chain files are first parsed into [`RawValue`] so that TOML and JSON share one validator,
//! and so that checks serde's derived structs cannot make (duplicate JSON keys, nesting depth,
//! NaN) happen in one place.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// One parsed value.
#[derive(Clone, Debug, PartialEq)]
pub enum RawValue {
    /// `true` / `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A real number (may be NaN or infinite in TOML; validators reject those).
    Float(f64),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<RawValue>),
    /// A table / object, keys sorted.
    Table(BTreeMap<String, RawValue>),
}

impl RawValue {
    /// Name of the value's type for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            RawValue::Bool(_) => "a boolean",
            RawValue::Int(_) => "a whole number",
            RawValue::Float(_) => "a number",
            RawValue::String(_) => "a string",
            RawValue::Array(_) => "an array",
            RawValue::Table(_) => "a table",
        }
    }

    /// Nesting depth: scalars are 0, a table of scalars is 1.
    pub fn depth(&self) -> usize {
        match self {
            RawValue::Array(items) => 1 + items.iter().map(Self::depth).max().unwrap_or(0),
            RawValue::Table(map) => 1 + map.values().map(Self::depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// Convert a parsed TOML value. (Parsing TOML into `toml::Table` first, rather than
    /// deserialising straight into this type, keeps floats bit-exact through a round trip.)
    pub fn from_toml(value: toml::Value) -> Result<RawValue, String> {
        Ok(match value {
            toml::Value::Boolean(b) => RawValue::Bool(b),
            toml::Value::Integer(i) => RawValue::Int(i),
            toml::Value::Float(f) => RawValue::Float(f),
            toml::Value::String(s) => RawValue::String(s),
            toml::Value::Datetime(d) => return Err(format!("dates are not allowed ({d})")),
            toml::Value::Array(a) => RawValue::Array(
                a.into_iter()
                    .map(Self::from_toml)
                    .collect::<Result<_, _>>()?,
            ),
            toml::Value::Table(t) => RawValue::Table(
                t.into_iter()
                    .map(|(k, v)| Self::from_toml(v).map(|v| (k, v)))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    /// Convert into a `toml::Value` for writing.
    pub fn to_toml(&self) -> toml::Value {
        match self {
            RawValue::Bool(b) => toml::Value::Boolean(*b),
            RawValue::Int(i) => toml::Value::Integer(*i),
            RawValue::Float(f) => toml::Value::Float(*f),
            RawValue::String(s) => toml::Value::String(s.clone()),
            RawValue::Array(a) => toml::Value::Array(a.iter().map(Self::to_toml).collect()),
            RawValue::Table(t) => {
                toml::Value::Table(t.iter().map(|(k, v)| (k.clone(), v.to_toml())).collect())
            }
        }
    }

    /// Convert into a `serde_json::Value` for writing.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            RawValue::Bool(b) => serde_json::Value::Bool(*b),
            RawValue::Int(i) => serde_json::Value::from(*i),
            RawValue::Float(f) => serde_json::Value::from(*f),
            RawValue::String(s) => serde_json::Value::String(s.clone()),
            RawValue::Array(a) => serde_json::Value::Array(a.iter().map(Self::to_json).collect()),
            RawValue::Table(t) => {
                serde_json::Value::Object(t.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a chain-file value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<RawValue, E> {
        Ok(RawValue::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<RawValue, E> {
        Ok(RawValue::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawValue, E> {
        i64::try_from(v)
            .map(RawValue::Int)
            .map_err(|_| E::custom(format!("number {v} is too large")))
    }

    fn visit_f64<E>(self, v: f64) -> Result<RawValue, E> {
        Ok(RawValue::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<RawValue, E> {
        Ok(RawValue::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<RawValue, E> {
        Ok(RawValue::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<RawValue, E> {
        Err(E::custom("null is not allowed"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(RawValue::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawValue, A::Error> {
        let mut table = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let value: RawValue = map.next_value()?;
            if table.insert(key.clone(), value).is_some() {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
        }
        Ok(RawValue::Table(table))
    }
}
