//! Drift told apart from change: where each difference in a plan comes from.
//!
//! Every create and update writes on its object a *record* of what was declared for it (the
//! `infra:declared` tag on AWS, the `infra.declared` label on Swarm, a field in the sandbox):
//! one short digest per declared field, of its name and of its value. The next plan reads the
//! record back ([`Observed::declared`]) and, for each field that differs, asks whether the
//! declaration of that field is still what was applied:
//!
//! - yes: the code did not change it, so the object was changed from outside (by hand, by
//!   another tool): [`Origin::Drift`];
//! - no: the code changed it since the last apply: [`Origin::Code`];
//! - no record (an object applied by an older version, or adopted and not changed since):
//!   [`Origin::Unknown`].
//!
//! A record holds digests only (never a value; a secret field's digest is of its digest), and
//! fits AWS's 256-character tag values: 4 bytes a field (2 of the name's SHA-256, 2 of the
//! value's), base64, for up to [`MAX_FIELDS`] fields. A collision makes a code change look
//! like drift with a probability of 1 in 65,536 per changed field, which a plan reader sees
//! in the field's before and after anyway.

use std::collections::BTreeMap;

use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dsl::KindSchema;
use crate::provider::Observed;
use crate::value::Value;

/// The version prefix of a record.
const PREFIX: &str = "d1:";

/// The most fields a record holds (`3 + 4 · ⌈4n / 3⌉ ≤ 256`); the fields after it, in name
/// order, have no record and their differences are of unknown origin.
pub const MAX_FIELDS: usize = 47;

/// Where a field's difference comes from.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Origin {
    /// The declaration changed since the object's last apply: your change.
    Code,
    /// The declaration is what was last applied, but the object differs: changed from outside.
    Drift,
    /// The object carries no record (applied by an older version, or adopted): can't tell.
    Unknown,
}

impl Origin {
    /// The word a plan shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Code => "code",
            Origin::Drift => "drift",
            Origin::Unknown => "unknown",
        }
    }
}

/// The record of `props` (a resource's declared properties, references resolved) for an
/// object of `schema`: what a create or update writes on the object.
pub fn record(schema: &KindSchema, props: &BTreeMap<String, Value>) -> String {
    let mut bytes = Vec::with_capacity(4 * props.len().min(MAX_FIELDS));
    for (field, value) in props
        .iter()
        .filter(|(_, v)| !v.is_empty_like())
        .take(MAX_FIELDS)
    {
        bytes.extend_from_slice(&name_digest(field));
        bytes.extend_from_slice(&value_digest(schema, field, value));
    }
    let mut out = String::from(PREFIX);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(&bytes, &mut out);
    out
}

/// A parsed record: (name digest, value digest) pairs.
struct Parsed(Vec<([u8; 2], [u8; 2])>);

impl Parsed {
    fn parse(record: &str) -> Option<Parsed> {
        let body = record.strip_prefix(PREFIX)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .ok()?;
        if bytes.len() % 4 != 0 {
            return None;
        }
        Some(Parsed(
            bytes
                .chunks_exact(4)
                .map(|c| ([c[0], c[1]], [c[2], c[3]]))
                .collect(),
        ))
    }
    fn has_field(&self, name: [u8; 2]) -> bool {
        self.0.iter().any(|(n, _)| *n == name)
    }
    fn has(&self, name: [u8; 2], value: [u8; 2]) -> bool {
        self.0.contains(&(name, value))
    }
}

/// The origin of the difference in `field` between the declaration (`desired`, the value as
/// far as known before the apply; `None` when not declared) and `observed`.
pub fn origin(
    schema: &KindSchema,
    field: &str,
    desired: Option<&Value>,
    observed: &Observed,
) -> Origin {
    let Some(parsed) = observed.declared.as_deref().and_then(Parsed::parse) else {
        return Origin::Unknown;
    };
    let name = name_digest(field);
    match desired.filter(|v| !v.is_empty_like()) {
        // A value known only after the apply follows a dependency's own change.
        Some(v) if v.has_refs() => Origin::Code,
        Some(v) => {
            if parsed.has(name, value_digest(schema, field, v)) {
                Origin::Drift
            } else if parsed.0.len() >= MAX_FIELDS && !parsed.has_field(name) {
                Origin::Unknown
            } else {
                Origin::Code
            }
        }
        // Not declared now: declared at the last apply means the code removed it; otherwise
        // the value was set from outside.
        None => {
            if parsed.has_field(name) {
                Origin::Code
            } else if parsed.0.len() >= MAX_FIELDS {
                Origin::Unknown
            } else {
                Origin::Drift
            }
        }
    }
}

fn name_digest(field: &str) -> [u8; 2] {
    let d = Sha256::digest(format!("f\0{field}").as_bytes());
    [d[0], d[1]]
}

fn value_digest(schema: &KindSchema, field: &str, value: &Value) -> [u8; 2] {
    let canonical = canonical(value, schema.is_unordered(field));
    let d = Sha256::digest(format!("v\0{field}\0{canonical}").as_bytes());
    [d[0], d[1]]
}

/// The value's JSON text in the form diffing treats as equal: integral floats as integers, and
/// set-like lists in a fixed order. Secrets are their digests (`Value::to_json`).
fn canonical(value: &Value, unordered: bool) -> String {
    fn norm(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Number(n) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                    serde_json::Value::from(f as i64)
                }
                _ => serde_json::Value::Number(n),
            },
            serde_json::Value::Array(a) => {
                serde_json::Value::Array(a.into_iter().map(norm).collect())
            }
            serde_json::Value::Object(o) => serde_json::Value::Object(
                o.into_iter()
                    .filter(|(_, v)| !matches!(v, serde_json::Value::Null))
                    .map(|(k, v)| (k, norm(v)))
                    .collect(),
            ),
            other => other,
        }
    }
    let json = norm(value.to_json());
    match json {
        serde_json::Value::Array(items) if unordered => {
            let mut texts: Vec<String> = items.iter().map(|i| i.to_string()).collect();
            texts.sort();
            format!("[{}]", texts.join(","))
        }
        other => other.to_string(),
    }
}
