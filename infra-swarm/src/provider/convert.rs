//! What every kind's conversion shares: the ownership labels and small value helpers.
//!
//! Each kind converts between its properties and Docker's objects in its own module (specs are
//! written as JSON in the Docker Engine API's own field names and handed to bollard's typed
//! models; reads go the other way and normalise Swarm's fill-ins so that a no-op plan is empty).

use std::collections::{BTreeMap, HashMap};

use infra_core::dsl::Address;
use infra_core::provider::ProviderError;
use infra_core::Value;
use serde_json::{Map, Value as Json};

/// Label: the owning stack.
pub(crate) const LABEL_STACK: &str = "infra.stack";
/// Label: the logical address.
pub(crate) const LABEL_ID: &str = "infra.id";
/// Label: `true` when the object is protected.
pub(crate) const LABEL_PROTECT: &str = "infra.protect";
/// Label: the drift record of the object's last apply ([`infra_core::plan::drift`]): digests
/// of what was declared, never values.
pub(crate) const LABEL_DECLARED: &str = "infra.declared";

/// The drift record among an object's labels, if it has one.
pub(crate) fn declared_label(labels: Option<&HashMap<String, String>>) -> Option<String> {
    labels?.get(LABEL_DECLARED).cloned()
}

/// Adds the drift record of what is declared (`schema`, `props`) to an object's labels.
pub(crate) fn with_record(
    labels: &mut Map<String, Json>,
    schema: &infra_core::dsl::KindSchema,
    props: &BTreeMap<String, Value>,
) {
    labels.insert(
        LABEL_DECLARED.into(),
        infra_core::plan::drift::record(schema, props).into(),
    );
}

/// The ownership labels plus the user's labels.
pub(crate) fn owned_labels(
    stack: &str,
    address: &Address,
    protect: bool,
    user: Option<&Value>,
) -> Map<String, Json> {
    let mut labels = Map::new();
    for (k, v) in user.and_then(Value::as_map).into_iter().flatten() {
        labels.insert(k.clone(), Json::String(text(v)));
    }
    labels.insert(LABEL_STACK.into(), stack.into());
    labels.insert(LABEL_ID.into(), address.to_string().into());
    labels.insert(LABEL_PROTECT.into(), protect.to_string().into());
    labels
}

/// The user's labels (ownership labels removed), as a property value.
pub(crate) fn user_labels(labels: Option<&HashMap<String, String>>) -> Option<Value> {
    let m: BTreeMap<String, Value> = labels?
        .iter()
        .filter(|(k, _)| !k.starts_with("infra."))
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    (!m.is_empty()).then_some(Value::Map(m))
}

/// The owner of an object: its address, protect flag and drift record, if it carries the
/// stack's labels.
pub(crate) fn owner(
    labels: Option<&HashMap<String, String>>,
    stack: &str,
) -> Option<(Address, bool, Option<String>)> {
    let labels = labels?;
    if labels.get(LABEL_STACK).map(String::as_str) != Some(stack) {
        return None;
    }
    let address: Address = labels.get(LABEL_ID)?.parse().ok()?;
    let protect = labels.get(LABEL_PROTECT).map(String::as_str) == Some("true");
    Some((address, protect, labels.get(LABEL_DECLARED).cloned()))
}

/// The list filter that selects the stack's objects: one label-filtered list call per object
/// type, never one call per resource.
pub(crate) fn label_filter(stack: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{LABEL_STACK}={stack}")])])
}

/// Labels as Docker wants them (a string map).
pub(crate) fn label_map(m: Map<String, Json>) -> HashMap<String, String> {
    m.into_iter()
        .map(|(k, v)| {
            (
                k,
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect()
}

/// A value as label or spec text: strings as they are, anything else in its JSON form.
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A declaration that can't be written as a Docker spec.
pub(crate) fn bad(address: &Address, e: impl std::fmt::Display) -> ProviderError {
    ProviderError::fatal(
        "InvalidSpec",
        format!("{address}: cannot express the declaration as a Docker spec: {e}"),
    )
}

/// The Swarm name of a service or network: `<stack>_<name>`.
pub(crate) fn stack_name(stack: &str, address: &Address) -> String {
    format!("{stack}_{}", address.name())
}
