//! What every service module shares: the call context, ownership tags, typed access to resolved
//! properties and the observed-properties builder.

use std::collections::BTreeMap;
use std::sync::Mutex;

use infra_core::dsl::{Address, ResourceSpec};
use infra_core::provider::{Observed, ProviderError, Resolved};
use infra_core::retry::PollPolicy;
use infra_core::value::Sensitive;
use infra_core::Value;

use super::Clients;

/// The tag naming the owning stack.
pub const TAG_STACK: &str = "infra:stack";
/// The tag holding the logical address (`aws_vpc.main`).
pub const TAG_ID: &str = "infra:id";
/// The tag marking a protected object.
pub const TAG_PROTECT: &str = "infra:protect";
/// The tag holding the drift record of the object's last apply
/// ([`infra_core::plan::drift`]): digests of what was declared, never values.
pub const TAG_DECLARED: &str = "infra:declared";
/// The human-readable name tag, `<stack>-<name>`.
pub const TAG_NAME: &str = "Name";

/// A relationship between two of the stack's objects that a delete had to cut (AWS refuses to
/// delete an attached policy, a role in an instance profile, a group with members). When the
/// object comes back under the same name in the same apply (a replacement), its create restores
/// them: the other side's own update would see nothing to do, since the identifier it holds
/// (a name, an ARN) did not change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Severed {
    /// A managed policy was attached to a role, user or group (`kind`, name).
    Attachment(&'static str, String),
    /// A role was in an instance profile.
    ProfileRole(String),
    /// A user was a member of a group.
    Member(String),
}

/// Severed relationships by object (`policy:<arn>`, `role:<name>`, `group:<name>`).
pub(crate) type SeveredMap = Mutex<BTreeMap<String, Vec<Severed>>>;

/// The context of one provider call.
pub(crate) struct Cx<'a> {
    /// The SDK clients.
    pub(crate) c: &'a Clients,
    /// The stack whose objects are read or changed.
    pub(crate) stack: &'a str,
    /// How long and how often to poll where AWS requires waiting (NAT gateways, ASG
    /// deletion).
    pub(crate) waits: &'a PollPolicy,
    /// Relationships cut by deletes of this provider, to restore on re-creation.
    pub(crate) severed: &'a SeveredMap,
}

impl Cx<'_> {
    /// Records relationships of `key` cut by a delete.
    pub(crate) fn sever(&self, key: String, items: Vec<Severed>) {
        if items.is_empty() {
            return;
        }
        self.severed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .extend(items);
    }

    /// Takes the relationships of `key` to restore.
    pub(crate) fn restore(&self, key: &str) -> Vec<Severed> {
        self.severed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key)
            .unwrap_or_default()
    }

    /// `<stack>-<name>`: the AWS name of a named object and its `Name` tag.
    pub(crate) fn physical_name(&self, address: &Address) -> String {
        crate::kinds::physical_name(self.stack, address.name())
    }
}

/// What the tags of an object say about its ownership.
#[derive(Clone, Debug)]
pub(crate) struct Ownership {
    /// The logical address from `infra:id`.
    pub(crate) address: Address,
    /// `infra:protect=true`.
    pub(crate) protect: bool,
    /// The drift record (`infra:declared`), if the object has one.
    pub(crate) declared: Option<String>,
    /// The user's tags (without `infra:*`, `aws:*` and `Name`).
    pub(crate) user: BTreeMap<String, String>,
}

/// Ownership of an object with these tags by `stack`, as a `kind`: `None` when the object is not
/// the stack's (another stack's, or created by hand) or is of another kind.
pub(crate) fn ownership<'t>(
    stack: &str,
    kind: &str,
    tags: impl IntoIterator<Item = (&'t str, &'t str)>,
) -> Option<Ownership> {
    let mut owner = None;
    let mut id = None;
    let mut protect = false;
    let mut declared = None;
    let mut user = BTreeMap::new();
    for (k, v) in tags {
        match k {
            TAG_STACK => owner = Some(v),
            TAG_ID => id = Some(v),
            TAG_PROTECT => protect = v == "true",
            TAG_DECLARED => declared = Some(v.to_string()),
            TAG_NAME => {}
            k if k.starts_with("aws:") || k.starts_with("infra:") => {}
            k => {
                user.insert(k.to_string(), v.to_string());
            }
        }
    }
    if owner != Some(stack) {
        return None;
    }
    let address: Address = id?.parse().ok()?;
    (address.kind() == kind).then_some(Ownership {
        address,
        protect,
        declared,
        user,
    })
}

/// The user tags declared on a resource.
pub(crate) fn user_tags(d: &Resolved) -> BTreeMap<String, String> {
    d.get("tags")
        .and_then(Value::as_map)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Every tag a new object gets: ownership, `Name`, protection and the user's tags.
pub(crate) fn all_tags(stack: &str, d: &Resolved) -> Vec<(String, String)> {
    let mut tags = vec![
        (TAG_STACK.to_string(), stack.to_string()),
        (TAG_ID.to_string(), d.address.to_string()),
        (
            TAG_NAME.to_string(),
            crate::kinds::physical_name(stack, d.address.name()),
        ),
    ];
    if d.protect {
        tags.push((TAG_PROTECT.to_string(), "true".to_string()));
    }
    tags.push((TAG_DECLARED.to_string(), record(d)));
    tags.extend(user_tags(d));
    tags
}

/// The drift record of what is declared for `d`, written on the object by creates and updates.
pub(crate) fn record(d: &Resolved) -> String {
    infra_core::plan::drift::record(d.schema, &d.props)
}

/// A tag change: what to set and what to remove.
#[derive(Debug, Default)]
pub(crate) struct TagDiff {
    /// Tags to create or overwrite.
    pub(crate) set: Vec<(String, String)>,
    /// Tag keys to remove.
    pub(crate) remove: Vec<String>,
}

/// The tag changes that take an object from `current` to `desired` (user tags and protection).
pub(crate) fn tag_diff(current: &Observed, d: &Resolved) -> TagDiff {
    let have: BTreeMap<String, String> = current
        .props
        .get("tags")
        .and_then(Value::as_map)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let want = user_tags(d);
    let mut diff = TagDiff::default();
    for (k, v) in &want {
        if have.get(k) != Some(v) {
            diff.set.push((k.clone(), v.clone()));
        }
    }
    for k in have.keys() {
        if !want.contains_key(k) {
            diff.remove.push(k.clone());
        }
    }
    if d.protect && !current.protect {
        diff.set.push((TAG_PROTECT.to_string(), "true".to_string()));
    }
    if !d.protect && current.protect {
        diff.remove.push(TAG_PROTECT.to_string());
    }
    let record = record(d);
    if current.declared.as_deref() != Some(record.as_str()) {
        diff.set.push((TAG_DECLARED.to_string(), record));
    }
    diff
}

/// The fields of `desired` that differ from `current`, by the same rules as the plan.
pub(crate) fn changed_fields(d: &Resolved, current: &Observed) -> Vec<String> {
    let spec = ResourceSpec {
        address: d.address.clone(),
        schema: d.schema,
        props: d.props.clone(),
        options: Default::default(),
    };
    infra_core::plan::changed_fields(&spec, &d.props, current)
}

/// A create whose response carried no object (retryable: the retry finds the object, if any, by
/// its tags).
pub(crate) fn empty(op: &str) -> ProviderError {
    ProviderError::retryable(
        "EmptyResponse",
        format!("{op}: the response carried no object"),
    )
}

fn missing(d: &Resolved, field: &str) -> ProviderError {
    ProviderError::fatal(
        "MissingField",
        format!("{}: field `{field}` is required", d.address),
    )
}

/// A required string property.
pub(crate) fn req_str(d: &Resolved, field: &str) -> Result<String, ProviderError> {
    opt_str(d, field).ok_or_else(|| missing(d, field))
}

/// An optional string property.
pub(crate) fn opt_str(d: &Resolved, field: &str) -> Option<String> {
    d.get_str(field).map(str::to_string)
}

/// An optional boolean property.
pub(crate) fn opt_bool(d: &Resolved, field: &str) -> Option<bool> {
    d.get(field).and_then(Value::as_bool)
}

/// An optional integer property.
pub(crate) fn opt_i64(d: &Resolved, field: &str) -> Option<i64> {
    d.get(field).and_then(Value::as_i64)
}

/// A required integer property.
pub(crate) fn req_i64(d: &Resolved, field: &str) -> Result<i64, ProviderError> {
    opt_i64(d, field).ok_or_else(|| missing(d, field))
}

/// A required number property.
pub(crate) fn req_f64(d: &Resolved, field: &str) -> Result<f64, ProviderError> {
    d.get(field)
        .and_then(Value::as_f64)
        .ok_or_else(|| missing(d, field))
}

/// A list of strings (missing: empty).
pub(crate) fn str_list(d: &Resolved, field: &str) -> Vec<String> {
    strings(d.get(field))
}

/// The strings of a list value.
pub(crate) fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_list)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The plain bytes of a (possibly secret) property, for the API call only.
pub(crate) fn secret_bytes(d: &Resolved, field: &str) -> Option<Vec<u8>> {
    match d.get(field)? {
        Value::Sensitive(s) => s.expose().map(<[u8]>::to_vec),
        Value::String(s) => Some(s.clone().into_bytes()),
        _ => None,
    }
}

/// A secret read back from AWS, in the form the plan compares (its digest).
pub(crate) fn sensitive(bytes: Vec<u8>) -> Value {
    Value::Sensitive(Sensitive::new(bytes))
}

/// Builds the properties of an [`Observed`].
#[derive(Debug, Default)]
pub(crate) struct Props(pub(crate) BTreeMap<String, Value>);

impl Props {
    /// Sets a field (`Null` leaves it out).
    pub(crate) fn set(&mut self, field: &str, v: impl Into<Value>) -> &mut Self {
        let v = v.into();
        if !v.is_null() {
            self.0.insert(field.to_string(), v);
        }
        self
    }
    /// Sets the user tags (left out when empty, as a builder without tags emits none).
    pub(crate) fn tags(&mut self, user: &BTreeMap<String, String>) -> &mut Self {
        if !user.is_empty() {
            self.0.insert(
                "tags".to_string(),
                Value::Map(
                    user.iter()
                        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                        .collect(),
                ),
            );
        }
        self
    }
    /// A string list.
    pub(crate) fn strs(
        &mut self,
        field: &str,
        items: impl IntoIterator<Item = String>,
    ) -> &mut Self {
        let mut l: Vec<String> = items.into_iter().collect();
        l.sort();
        self.0.insert(
            field.to_string(),
            Value::List(l.into_iter().map(Value::from).collect()),
        );
        self
    }
    /// The finished observation.
    pub(crate) fn observed(self, owned: Ownership, id: impl Into<String>) -> Observed {
        Observed {
            address: owned.address,
            id: id.into(),
            props: self.0.into(),
            protect: owned.protect,
            declared: owned.declared,
        }
    }
}

/// The observation of a just-created or just-updated object: the desired properties (what was
/// sent) with the computed outputs the API returned. Dependents in the same apply only use its
/// outputs; the next plan reads the real state.
pub(crate) fn observed_from(
    d: &Resolved,
    id: impl Into<String>,
    outputs: &[(&str, Value)],
) -> Observed {
    let mut props = d.props.clone();
    for (k, v) in outputs {
        props.insert((*k).to_string(), v.clone());
    }
    Observed {
        address: d.address.clone(),
        id: id.into(),
        props: props.into(),
        protect: d.protect,
        declared: Some(record(d)),
    }
}

/// The observation after an in-place update: the declared properties with the outputs known
/// so far (an update changes no output but a launch template's version, set by its caller).
pub(crate) fn updated_from(current: &Observed, d: &Resolved) -> Observed {
    let mut props = d.props.clone();
    for (k, v) in &current.props {
        if d.schema.has_output(k) {
            props.insert(k.clone(), v.clone());
        }
    }
    Observed {
        address: current.address.clone(),
        id: current.id.clone(),
        props: props.into(),
        protect: d.protect,
        declared: Some(record(d)),
    }
}

/// Percent-decodes an RFC 3986 URL-encoded string (IAM returns policy documents URL-encoded;
/// moto returns them plain, which [`document_value`] passes through unchanged).
pub(crate) fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a policy document as IAM returns it (URL-encoded JSON) into the normalised form.
pub(crate) fn document_value(raw: &str) -> Value {
    let text = if raw.trim_start().starts_with('{') {
        raw.to_string()
    } else {
        url_decode(raw)
    };
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => crate::kinds::normalise_document(&v),
        Err(_) => Value::from(text),
    }
}

/// The JSON text of a document value, for IAM calls.
pub(crate) fn document_json(v: &Value) -> String {
    v.to_json().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_decoding() {
        assert_eq!(url_decode("%7B%22a%22%3A1%7D"), "{\"a\":1}");
        assert_eq!(url_decode("a+b%20c%2"), "a+b c%2");
        assert_eq!(url_decode("100%"), "100%");
    }

    #[test]
    fn ownership_needs_the_stack_and_a_matching_kind() {
        let tags = [
            ("infra:stack", "s"),
            ("infra:id", "aws_vpc.main"),
            ("Name", "s-main"),
            ("env", "dev"),
            ("aws:cloudformation:x", "y"),
        ];
        let o = ownership("s", "aws_vpc", tags).expect("owned");
        assert_eq!(o.address.to_string(), "aws_vpc.main");
        assert_eq!(o.user.len(), 1);
        assert!(ownership("t", "aws_vpc", tags).is_none());
        assert!(ownership("s", "aws_subnet", tags).is_none());
        assert!(ownership("s", "aws_vpc", [("Name", "x")]).is_none());
    }
}
