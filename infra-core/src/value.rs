//! Property values: the uniform representation of every resource's fields inside the graph.
//!
//! Builders are typed; once a resource is in a [`Stack`](crate::dsl::Stack) its fields are a
//! `BTreeMap<String, Value>`. Maps are ordered so that everything derived from them (plans, JSON,
//! snapshots) is deterministic. Two variants carry meaning beyond JSON:
//!
//! * [`Value::Ref`]: the output of another resource (its id, an ARN…). Planning replaces it with the
//!   real value when the referenced resource exists and won't change; otherwise it stays and renders
//!   as `(known after apply)`.
//! * [`Value::Sensitive`]: a secret. Only a short SHA-256 digest is ever serialised, displayed or
//!   compared; the plain text is kept in memory for the provider call and is never written anywhere.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::dsl::Address;

/// A property value. See the [module docs](self).
#[derive(Clone, PartialEq)]
pub enum Value {
    /// Absent / JSON `null`. A missing field and `Null` compare equal in diffs.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating point number.
    Float(f64),
    /// A string.
    String(String),
    /// An ordered list.
    List(Vec<Value>),
    /// A map with ordered keys.
    Map(BTreeMap<String, Value>),
    /// An output of another resource, known only once that resource exists. Boxed: a
    /// reference is three strings, and inline it would make every value (and every slot of
    /// every property map) twice as big.
    Ref(Box<Reference>),
    /// A secret; see [`Sensitive`].
    Sensitive(Sensitive),
}

/// A reference to an output (`id`, `arn`, …) of another resource.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    /// The referenced resource.
    pub address: Address,
    /// The output's name, one of the kind's computed fields (every kind has `id`).
    pub attribute: String,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.address, self.attribute)
    }
}

/// A secret value. It is compared, displayed and serialised only as `sha256:<16 hex digits>`;
/// the plain text (when this process knows it) is reachable only through [`Sensitive::expose`].
#[derive(Clone)]
pub struct Sensitive {
    /// A boxed `str`, not a `String`: with it a value is 32 bytes, not 40.
    digest: Box<str>,
    plain: Option<Arc<Vec<u8>>>,
}

impl Sensitive {
    /// Wraps secret bytes.
    pub fn new(plain: impl Into<Vec<u8>>) -> Self {
        let plain = plain.into();
        Sensitive {
            digest: digest_of(&plain).into_boxed_str(),
            plain: Some(Arc::new(plain)),
        }
    }

    /// A secret known only by its digest (what a provider reads back, or a state file stores).
    pub fn from_digest(digest: impl Into<String>) -> Self {
        Sensitive {
            digest: digest.into().into_boxed_str(),
            plain: None,
        }
    }

    /// The digest, `sha256:` followed by the first 16 hex digits of the SHA-256 of the value.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The plain bytes, when this process holds them. Providers call this and nothing else does.
    pub fn expose(&self) -> Option<&[u8]> {
        self.plain.as_deref().map(Vec::as_slice)
    }
}

impl PartialEq for Sensitive {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sensitive({})", self.digest)
    }
}

/// The digest used for sensitive values: `sha256:` and 16 hex digits.
pub fn digest_of(bytes: &[u8]) -> String {
    let full = Sha256::digest(bytes);
    format!("sha256:{}", hex::encode(&full[..8]))
}

impl Value {
    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The string, if this is a [`Value::String`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is a [`Value::Int`].
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number as `f64`, if this is an [`Value::Int`] or a [`Value::Float`].
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The boolean, if this is a [`Value::Bool`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The list, if this is a [`Value::List`].
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The map, if this is a [`Value::Map`].
    pub fn as_map(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The reference, if this is a [`Value::Ref`].
    pub fn as_ref(&self) -> Option<&Reference> {
        match self {
            Value::Ref(r) => Some(r),
            _ => None,
        }
    }

    /// Calls `f` on every reference inside this value (depth first, in order).
    pub fn visit_refs<'a>(&'a self, f: &mut impl FnMut(&'a Reference)) {
        match self {
            Value::Ref(r) => f(r),
            Value::List(l) => l.iter().for_each(|v| v.visit_refs(f)),
            Value::Map(m) => m.values().for_each(|v| v.visit_refs(f)),
            _ => {}
        }
    }

    /// True when this value contains a [`Value::Ref`] anywhere.
    pub fn has_refs(&self) -> bool {
        let mut found = false;
        self.visit_refs(&mut |_| found = true);
        found
    }

    /// Replaces references using `lookup`; references it can't resolve stay in place.
    pub fn resolve(&self, lookup: &impl Fn(&Reference) -> Option<Value>) -> Value {
        match self {
            Value::Ref(r) => lookup(r).unwrap_or_else(|| self.clone()),
            Value::List(l) => Value::List(l.iter().map(|v| v.resolve(lookup)).collect()),
            Value::Map(m) => Value::Map(
                m.iter()
                    .map(|(k, v)| (k.clone(), v.resolve(lookup)))
                    .collect(),
            ),
            _ => self.clone(),
        }
    }

    /// Turns this value into a [`Value::Sensitive`] (recursively digesting the JSON text of
    /// composite values); used on fields a kind declares sensitive.
    pub fn into_sensitive(self) -> Value {
        match self {
            Value::Null | Value::Sensitive(_) | Value::Ref(_) => self,
            Value::String(s) => Value::Sensitive(Sensitive::new(s.into_bytes())),
            other => {
                let text = serde_json::to_string(&other).unwrap_or_default();
                Value::Sensitive(Sensitive::new(text.into_bytes()))
            }
        }
    }

    /// Converts a plain JSON value (no `$`-markers interpreted).
    pub fn from_json(json: serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(a) => {
                Value::List(a.into_iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(o) => Value::Map(
                o.into_iter()
                    .map(|(k, v)| (k, Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The plain JSON form. References and secrets become their `$`-marker objects.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Values a diff treats as "not set": `null`, `[]` and `{}`.
    pub fn is_empty_like(&self) -> bool {
        match self {
            Value::Null => true,
            Value::List(l) => l.is_empty(),
            Value::Map(m) => m.is_empty(),
            _ => false,
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One-line, HCL-like rendering: strings quoted, references as `(known after apply)`, secrets as
/// `(sensitive …)`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{}", serde_json::Value::from(*x)),
            Value::String(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
            Value::List(l) => {
                f.write_str("[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(m) => {
                f.write_str("{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k} = {v}")?;
                }
                f.write_str("}")
            }
            Value::Ref(_) => f.write_str("(known after apply)"),
            Value::Sensitive(s) => write!(f, "(sensitive, {})", s.digest),
        }
    }
}

const REF_MARKER: &str = "$known_after_apply";
const SENSITIVE_MARKER: &str = "$sensitive";

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(x) => s.serialize_f64(*x),
            Value::String(v) => s.serialize_str(v),
            Value::List(l) => {
                let mut seq = s.serialize_seq(Some(l.len()))?;
                for v in l {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Map(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Value::Ref(r) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(REF_MARKER, &r.to_string())?;
                map.end()
            }
            Value::Sensitive(x) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(SENSITIVE_MARKER, &*x.digest)?;
                map.end()
            }
        }
    }
}

/// Reads a value straight from the input (no intermediate `serde_json::Value`): what opening a
/// sandbox journal or a saved plan spends most of its time on. Same result as reading the
/// input's JSON document and interpreting its markers (`from_marked_json`, which the tests
/// compare it with).
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> serde::de::Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        // As `serde_json::Number::as_i64`, then `as_f64`.
        Ok(i64::try_from(u).map_or(Value::Float(u as f64), Value::Int))
    }
    fn visit_f64<E>(self, x: f64) -> Result<Value, E> {
        Ok(Value::Float(x))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element::<Value>()? {
            out.push(v);
        }
        Ok(Value::List(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            out.insert(k, v);
        }
        // A single-key object may be a marker; the marker's own value was read as a `Value`
        // too, which for the string a marker holds is the same thing.
        if out.len() == 1 {
            if let Some(v) = out.get(SENSITIVE_MARKER) {
                return match v {
                    Value::String(d) => Ok(Value::Sensitive(Sensitive::from_digest(d.as_str()))),
                    _ => Err(A::Error::custom("`$sensitive` must be a string")),
                };
            }
            if let Some(v) = out.get(REF_MARKER) {
                let text = v
                    .as_str()
                    .ok_or_else(|| A::Error::custom("`$known_after_apply` must be a string"))?;
                return parse_reference(text).map_err(A::Error::custom);
            }
        }
        Ok(Value::Map(out))
    }
}

fn parse_reference(text: &str) -> Result<Value, String> {
    let (addr, attr) = text.rsplit_once('.').ok_or("reference without attribute")?;
    let address: Address = addr.parse()?;
    Ok(Value::Ref(Box::new(Reference {
        address,
        attribute: attr.to_string(),
    })))
}

impl Value {
    /// The value of a JSON document with `$`-markers interpreted (what [`Deserialize`] gives).
    #[cfg(test)]
    fn from_marked_json(json: serde_json::Value) -> Result<Value, String> {
        match json {
            serde_json::Value::Object(o) if o.len() == 1 && o.contains_key(SENSITIVE_MARKER) => {
                match &o[SENSITIVE_MARKER] {
                    serde_json::Value::String(d) => Ok(Value::Sensitive(Sensitive::from_digest(d))),
                    _ => Err("`$sensitive` must be a string".into()),
                }
            }
            serde_json::Value::Object(o) if o.len() == 1 && o.contains_key(REF_MARKER) => {
                let text = o[REF_MARKER]
                    .as_str()
                    .ok_or("`$known_after_apply` must be a string")?;
                parse_reference(text)
            }
            serde_json::Value::Object(o) => Ok(Value::Map(
                o.into_iter()
                    .map(|(k, v)| Ok((k, Value::from_marked_json(v)?)))
                    .collect::<Result<_, String>>()?,
            )),
            serde_json::Value::Array(a) => Ok(Value::List(
                a.into_iter()
                    .map(Value::from_marked_json)
                    .collect::<Result<_, String>>()?,
            )),
            other => Ok(Value::from_json(other)),
        }
    }
}

impl JsonSchema for Value {
    fn schema_name() -> Cow<'static, str> {
        "Value".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "description": "A property value: any JSON value. Two single-key objects are markers: \
                {\"$known_after_apply\": \"<address>.<output>\"} for a value known only after apply, and \
                {\"$sensitive\": \"sha256:<16 hex>\"} for a redacted secret."
        })
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::String(v.clone())
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
macro_rules! int_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Int(v as i64)
            }
        }
    )*};
}
int_from!(i32, i64, u8, u16, u32);
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Self {
        Value::List(v.into_iter().map(Into::into).collect())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}
impl<V: Into<Value>> From<BTreeMap<String, V>> for Value {
    fn from(m: BTreeMap<String, V>) -> Self {
        Value::Map(m.into_iter().map(|(k, v)| (k, v.into())).collect())
    }
}
impl From<Reference> for Value {
    fn from(r: Reference) -> Self {
        Value::Ref(Box::new(r))
    }
}
impl From<Sensitive> for Value {
    fn from(s: Sensitive) -> Self {
        Value::Sensitive(s)
    }
}

/// Builds a [`Value::Map`] from `key => value` pairs: `map! { "port" => 22, "cidr" => "0.0.0.0/0" }`.
#[macro_export]
macro_rules! map {
    ($($k:expr => $v:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut m = ::std::collections::BTreeMap::<String, $crate::value::Value>::new();
        $( m.insert(($k).to_string(), $crate::value::Value::from($v)); )*
        $crate::value::Value::Map(m)
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_four_words() {
        assert_eq!(std::mem::size_of::<Value>(), 32);
    }

    #[test]
    fn sensitive_never_serialises_plain_text() {
        let v = Value::String("hunter2".into()).into_sensitive();
        let json = serde_json::to_string(&v).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert!(!format!("{v}").contains("hunter2"));
        assert!(!format!("{v:?}").contains("hunter2"));
        assert!(json.starts_with("{\"$sensitive\":\"sha256:"), "{json}");
    }

    #[test]
    fn markers_round_trip() {
        let r = Value::from(Reference {
            address: "aws_vpc.main".parse().unwrap(),
            attribute: "id".into(),
        });
        let s = Value::String("x".into()).into_sensitive();
        let v = map! { "a" => r.clone(), "b" => s.clone(), "c" => vec![1, 2] };
        let back: Value = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn direct_deserialize_matches_the_json_document() {
        let docs = [
            r#"null"#,
            r#"[true, 1, -2, 18446744073709551615, 1.5, 2.0, "s", [], {}]"#,
            r#"{"$sensitive": "sha256:0123456789abcdef"}"#,
            r#"{"$known_after_apply": "aws_vpc.main.id"}"#,
            r#"{"$known_after_apply": "k.a.b.arn", "x": 1}"#,
            r#"{"$sensitive": "sha256:0123", "other": {"$sensitive": "sha256:4567"}}"#,
            r#"{"b": {"c": [{"$known_after_apply": "k.n.id"}]}, "a": 1, "a": 2}"#,
            r#"{"$sensitive": 1}"#,
            r#"{"$sensitive": {"$sensitive": "x"}}"#,
            r#"{"$known_after_apply": "noattr"}"#,
            r#"{"$known_after_apply": ".x.id"}"#,
            r#"{"$known_after_apply": ["k.a.id"]}"#,
        ];
        for doc in docs {
            let direct = serde_json::from_str::<Value>(doc).map_err(|e| e.to_string());
            let json: serde_json::Value = serde_json::from_str(doc).unwrap();
            let marked = Value::from_marked_json(json);
            assert_eq!(
                direct.is_ok(),
                marked.is_ok(),
                "{doc}: {direct:?} vs {marked:?}"
            );
            if let (Ok(a), Ok(b)) = (direct, marked) {
                assert_eq!(a, b, "{doc}");
                assert_eq!(
                    serde_json::to_string(&a).unwrap(),
                    serde_json::to_string(&b).unwrap()
                );
            }
        }
    }

    #[test]
    fn resolve_replaces_only_known_refs() {
        let a = Reference {
            address: "k.a".parse().unwrap(),
            attribute: "id".into(),
        };
        let b = Reference {
            address: "k.b".parse().unwrap(),
            attribute: "id".into(),
        };
        let v = Value::List(vec![Value::from(a.clone()), Value::from(b.clone())]);
        let out = v.resolve(&|r| (r == &a).then(|| Value::from("id-a")));
        assert_eq!(out, Value::List(vec![Value::from("id-a"), Value::from(b)]));
    }
}
