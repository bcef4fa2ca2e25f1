//! One resource's change: its declared properties resolved against what is known before the
//! apply, compared field by field with its observed object.

use std::borrow::{Borrow, Cow};
use std::collections::BTreeMap;

use super::{drift, Action, Change, FieldChange};
use crate::dsl::{Address, ResourceSpec};
use crate::graph::Graph;
use crate::provider::Observed;
use crate::value::{Reference, Value};

/// True when two values are equal for diffing: numbers by value, and `null`, `[]`, `{}` and a
/// missing field all alike.
pub fn values_equal(a: Option<&Value>, b: Option<&Value>) -> bool {
    let a = a.filter(|v| !v.is_empty_like());
    let b = b.filter(|v| !v.is_empty_like());
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => value_eq(x, y),
        _ => false,
    }
}

fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            a.as_f64() == b.as_f64()
        }
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| value_eq(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            union(x.keys().map(String::as_str), y.keys().map(String::as_str))
                .all(|k| values_equal(x.get(k), y.get(k)))
        }
        _ => a == b,
    }
}

/// The fields that differ between a declared resource (resolved) and its observed object,
/// ignoring computed outputs and `ignore_changes`. `desired` is a map of owned values or of
/// borrowed ones (what planning passes: only values with references are resolved into new ones).
pub fn changed_fields<K: Borrow<str> + Ord, V: Borrow<Value>>(
    spec: &ResourceSpec,
    desired: &BTreeMap<K, V>,
    observed: &Observed,
) -> Vec<String> {
    let names = union(
        desired.keys().map(|k| k.borrow()),
        observed
            .props
            .keys()
            .filter(|k| !spec.schema.has_output(k))
            .map(String::as_str),
    );
    names
        .filter(|n| !spec.options.ignore_changes.contains(*n))
        .filter(|n| {
            let d = desired.get(*n).map(|v| v.borrow());
            let o = observed.props.get(*n);
            if matches!(d, Some(v) if v.has_refs()) {
                return true;
            }
            // Set-like fields are compared in a canonical order, but only when they differ as
            // they are (the common case, a no-op, needs no sorting).
            !values_equal(d, o)
                && (!spec.schema.is_unordered(n)
                    || !values_equal(sorted(d).as_ref(), sorted(o).as_ref()))
        })
        .map(str::to_string)
        .collect()
}

/// The union of two ascending sequences of distinct keys, ascending, each key once: what
/// collecting both into a `BTreeSet` gives, without building one (planning compares every
/// declared resource's fields and maps this way).
fn union<'a>(
    a: impl Iterator<Item = &'a str>,
    b: impl Iterator<Item = &'a str>,
) -> impl Iterator<Item = &'a str> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) => match x.cmp(y) {
            std::cmp::Ordering::Less => a.next(),
            std::cmp::Ordering::Greater => b.next(),
            std::cmp::Ordering::Equal => {
                b.next();
                a.next()
            }
        },
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}

/// A list with its elements in a canonical order (by their JSON text), for set-like fields.
fn sorted(v: Option<&Value>) -> Option<Value> {
    match v? {
        Value::List(l) => {
            let mut keyed: Vec<(String, &Value)> =
                l.iter().map(|x| (x.to_json().to_string(), x)).collect();
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            Some(Value::List(
                keyed.into_iter().map(|(_, x)| x.clone()).collect(),
            ))
        }
        other => Some(other.clone()),
    }
}

/// Declared properties with secret fields digested (plain text kept in memory for providers).
pub fn protect_secrets(
    spec: &ResourceSpec,
    props: BTreeMap<String, Value>,
) -> BTreeMap<String, Value> {
    props
        .into_iter()
        .map(|(k, v)| {
            let v = protect_secret(spec, &k, Cow::Owned(v)).into_owned();
            (k, v)
        })
        .collect()
}

/// Field `key`'s value as a plan may hold it: digested when the field is sensitive, else as
/// given (borrowed values stay borrowed).
fn protect_secret<'a>(spec: &ResourceSpec, key: &str, v: Cow<'a, Value>) -> Cow<'a, Value> {
    if spec.schema.is_sensitive(key) {
        Cow::Owned(v.into_owned().into_sensitive())
    } else {
        v
    }
}

/// What planning knows of the declared resources while it diffs them, by node index in the
/// [`Graph`]: each one's observed object (looked up once, not per reference to it), and the
/// action planned for it once its wave is diffed.
pub(super) struct Known<'a> {
    graph: &'a Graph,
    /// The object observed at each node's address.
    pub(super) observed: Vec<Option<&'a Observed>>,
    /// The action planned for each node (`None` until it is diffed).
    pub(super) actions: Vec<Option<Action>>,
}

impl<'a> Known<'a> {
    /// Nothing planned yet; the objects of `observed` placed at their addresses' nodes.
    pub(super) fn new(graph: &'a Graph, observed: &'a BTreeMap<Address, Observed>) -> Self {
        let mut at = vec![None; graph.len()];
        for (address, o) in observed {
            if let Some(i) = graph.index_of(address) {
                at[i] = Some(o);
            }
        }
        Known {
            graph,
            observed: at,
            actions: vec![None; graph.len()],
        }
    }

    /// The value of reference `r` when it is known before the apply: its target keeps its
    /// object (by the action planned for it) and the output doesn't change on update.
    fn value_of(&self, r: &Reference) -> Option<Value> {
        let i = self.graph.index_of(&r.address)?;
        let known = match self.actions[i] {
            Some(Action::Create | Action::DeleteThenCreate | Action::CreateThenDelete) => false,
            Some(Action::Update) => !self
                .graph
                .node(i)
                .schema
                .changes_on_update
                .contains(&r.attribute.as_str()),
            _ => true,
        };
        if !known {
            return None;
        }
        self.observed[i].and_then(|o| o.output(&r.attribute))
    }
}

/// A resource's declared properties as far as they are known before the apply, secrets
/// digested. A reference is known when its target keeps its object (`known.actions`, the
/// changes planned so far, says what happens to it) and the output doesn't change on update;
/// otherwise it stays a [`Value::Ref`], shown as known after apply. Values that hold no
/// reference and are not secret are borrowed from the spec, not copied.
pub(super) fn desired_props<'a>(
    spec: &'a ResourceSpec,
    known: &Known<'_>,
) -> BTreeMap<&'a str, Cow<'a, Value>> {
    let lookup = |r: &Reference| known.value_of(r);
    spec.props
        .iter()
        .map(|(k, v)| {
            let v = if v.has_refs() {
                Cow::Owned(v.resolve(&lookup))
            } else {
                Cow::Borrowed(v)
            };
            (k.as_str(), protect_secret(spec, k, v))
        })
        .collect()
}

/// The change of a declared resource: created when it has no object, else replaced when a
/// changed field forces it, updated when fields changed, or left alone.
pub(super) fn declared_change(
    spec: &ResourceSpec,
    desired: &BTreeMap<&str, Cow<'_, Value>>,
    current: Option<&Observed>,
    depends_on: Vec<Address>,
    protected: bool,
) -> Change {
    let mut change = Change {
        address: spec.address.clone(),
        kind: spec.schema.kind.to_string(),
        provider: spec.schema.provider.to_string(),
        action: Action::NoOp,
        id: current.map(|o| o.id.clone()),
        reason: String::new(),
        fields: Vec::new(),
        replace_because: Vec::new(),
        unchanged_fields: 0,
        depends_on,
        protected,
        moved_from: None,
        adopted: None,
    };
    match current {
        None => {
            change.action = Action::Create;
            change.reason = "not found among the stack's objects".into();
            change.fields = desired
                .iter()
                .map(|(k, v)| FieldChange {
                    name: k.to_string(),
                    before: None,
                    after: Some(v.clone().into_owned()),
                    forces_replacement: false,
                    sensitive: spec.schema.is_sensitive(k),
                    computed: false,
                    effect: None,
                    origin: None,
                })
                .collect();
            change.fields.extend(computed_fields(spec));
        }
        Some(obs) => {
            let changed = changed_fields(spec, desired, obs);
            let forced: Vec<String> = changed
                .iter()
                .filter(|f| spec.schema.is_force_new(f))
                .cloned()
                .collect();
            change.unchanged_fields = desired.len().saturating_sub(changed.len());
            change.fields = changed
                .iter()
                .map(|k| FieldChange {
                    name: k.clone(),
                    before: obs.props.get(k).cloned(),
                    after: desired.get(k.as_str()).map(|v| v.clone().into_owned()),
                    forces_replacement: spec.schema.is_force_new(k),
                    sensitive: spec.schema.is_sensitive(k),
                    computed: false,
                    effect: None,
                    origin: Some(drift::origin(
                        spec.schema,
                        k,
                        desired.get(k.as_str()).map(|v| &**v),
                        obs,
                    )),
                })
                .collect();
            if !forced.is_empty() {
                change.action = if spec.options.create_before_destroy {
                    Action::CreateThenDelete
                } else {
                    Action::DeleteThenCreate
                };
                change.reason = format!("{} forces replacement", quote_list(&forced));
                change
                    .fields
                    .extend(computed_fields(spec).into_iter().map(|mut f| {
                        f.before = obs.output(&f.name);
                        f
                    }));
                change.replace_because = forced;
            } else if !changed.is_empty() {
                change.action = Action::Update;
                change.reason = format!("{} changed", quote_list(&changed));
                let mut effects: Vec<&str> = Vec::new();
                for f in &mut change.fields {
                    if let Some(effect) = spec.schema.disruption(&f.name) {
                        f.effect = Some(effect.to_string());
                        if !effects.contains(&effect) {
                            effects.push(effect);
                        }
                    }
                }
                if !effects.is_empty() {
                    change
                        .reason
                        .push_str(&format!(" ({})", effects.join("; ")));
                }
            } else {
                change.reason = "matches the declaration".into();
            }
        }
    }
    change
}

/// The computed outputs, `id` first, as known after apply.
pub(super) fn computed_fields(spec: &ResourceSpec) -> Vec<FieldChange> {
    std::iter::once("id")
        .chain(spec.schema.computed.iter().copied().filter(|c| *c != "id"))
        .map(|c| FieldChange {
            name: c.to_string(),
            before: None,
            after: Some(Value::from(Reference {
                address: spec.address.clone(),
                attribute: c.to_string(),
            })),
            forces_replacement: false,
            sensitive: false,
            computed: true,
            effect: None,
            origin: None,
        })
        .collect()
}

/// The deletion of an existing object: every observed field goes.
pub(super) fn delete_change(
    kind: &str,
    provider: &str,
    obs: &Observed,
    protected: bool,
    reason: &str,
) -> Change {
    let mut fields = vec![FieldChange {
        name: "id".into(),
        before: Some(Value::String(obs.id.clone())),
        after: None,
        forces_replacement: false,
        sensitive: false,
        computed: true,
        effect: None,
        origin: None,
    }];
    fields.extend(obs.props.iter().map(|(k, v)| FieldChange {
        name: k.clone(),
        before: Some(v.clone()),
        after: None,
        forces_replacement: false,
        sensitive: matches!(v, Value::Sensitive(_)),
        computed: false,
        effect: None,
        origin: None,
    }));
    Change {
        address: obs.address.clone(),
        kind: kind.to_string(),
        provider: provider.to_string(),
        action: Action::Delete,
        id: Some(obs.id.clone()),
        reason: reason.to_string(),
        fields,
        replace_because: Vec::new(),
        unchanged_fields: 0,
        depends_on: Vec::new(),
        protected,
        moved_from: None,
        adopted: None,
    }
}

fn quote_list(fields: &[String]) -> String {
    let quoted: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
    quoted.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `union` is the sorted set of both sides' keys, whichever side runs out first.
    #[test]
    fn union_of_sorted_keys_is_the_sorted_set_of_both() {
        let cases: [(&[&str], &[&str]); 6] = [
            (&[], &[]),
            (&["a"], &[]),
            (&[], &["b"]),
            (&["a", "c", "e"], &["b", "c", "d", "f", "g"]),
            (&["x", "y"], &["a", "b"]),
            (&["a", "b"], &["a", "b"]),
        ];
        for (a, b) in cases {
            let want: std::collections::BTreeSet<&str> = a.iter().chain(b).copied().collect();
            let got: Vec<&str> = union(a.iter().copied(), b.iter().copied()).collect();
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "{a:?} {b:?}");
        }
    }

    /// Maps compare key by key over both sides' keys: a missing key is an empty value.
    #[test]
    fn maps_compare_over_the_union_of_their_keys() {
        let map = |kv: &[(&str, Value)]| {
            Value::Map(kv.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
        };
        let a = map(&[("a", Value::Int(1)), ("b", Value::Null)]);
        let b = map(&[("a", Value::Float(1.0)), ("c", Value::List(Vec::new()))]);
        assert!(values_equal(Some(&a), Some(&b)));
        let c = map(&[("a", Value::Int(1)), ("z", Value::Int(2))]);
        assert!(!values_equal(Some(&a), Some(&c)));
        assert!(!values_equal(Some(&c), Some(&a)));
    }
}
