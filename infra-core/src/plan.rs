//! Planning: the desired graph against what the providers read, giving ordered changes.
//!
//! Pure and deterministic: the same graph and observations give a byte-identical plan. A change
//! documents what `before` and `after` mean for its action: `before` is the observed value
//! (absent on create), `after` the declared value (absent on delete), with values known only
//! after apply as [`Value::Ref`] and secrets as [`Value::Sensitive`] digests.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::dsl::{Address, ResourceSpec};
use crate::graph::Graph;
use crate::policy::{PolicyReport, Severity};
use crate::provider::Observed;
use crate::value::{Reference, Value};

/// The version of the plan's JSON format.
pub const FORMAT_VERSION: u32 = 1;

/// What happens to one resource.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Already as declared.
    NoOp,
    /// Not found among the stack's objects: created.
    Create,
    /// Changed in place.
    Update,
    /// Replaced: the old object is deleted, then the new one created.
    DeleteThenCreate,
    /// Replaced: the new object is created, dependents switched to it, then the old one deleted.
    CreateThenDelete,
    /// Owned by the stack but no longer declared: deleted.
    Delete,
}

impl Action {
    /// True for the two replacement actions.
    pub fn is_replace(self) -> bool {
        matches!(self, Action::DeleteThenCreate | Action::CreateThenDelete)
    }
    /// The terraform-style symbol: `+`, `~`, `-/+`, `+/-`, `-`, or a blank for no-op.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::DeleteThenCreate => "-/+",
            Action::CreateThenDelete => "+/-",
            Action::Delete => "-",
        }
    }
}

/// One field's before and after.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FieldChange {
    /// The field's name.
    pub name: String,
    /// The observed value (absent on create).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub before: Option<Value>,
    /// The declared value (absent on delete); `{"$known_after_apply": …}` when not yet known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub after: Option<Value>,
    /// True when this field's change forces a replacement.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forces_replacement: bool,
    /// True when the field is secret (its values are digests).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
    /// True for a provider-computed output (shown on create as known after apply).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub computed: bool,
}

/// One resource's change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Change {
    /// The resource's address.
    pub address: String,
    /// Its kind.
    pub kind: String,
    /// The provider serving it.
    pub provider: String,
    /// What happens.
    pub action: Action,
    /// The provider's id of the existing object, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    /// Why, in words.
    pub reason: String,
    /// The fields that differ (all fields on create and delete).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    /// The fields that force replacement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replace_because: Vec<String>,
    /// How many declared fields are unchanged (not listed).
    #[serde(default)]
    pub unchanged_fields: usize,
    /// Resources this one depends on in the declared graph.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// True when the resource is protected.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub protected: bool,
}

/// Counts in terraform's terms: a replacement is one add and one destroy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// Objects created (including the new half of replacements).
    pub add: usize,
    /// Objects updated in place.
    pub change: usize,
    /// Objects deleted (including the old half of replacements).
    pub destroy: usize,
    /// Resources already as declared.
    pub unchanged: usize,
}

/// What one provider's read cost.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReadStats {
    /// The provider.
    pub provider: String,
    /// Objects it returned as owned by the stack.
    pub resources: usize,
    /// API calls the read made.
    pub api_calls: u64,
}

/// A plan: ordered changes, a summary, and anything that blocks applying it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The stack.
    pub stack: String,
    /// True for a destroy plan.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub destroy: bool,
    /// The providers in scope (all registered ones unless `--only` narrowed it).
    pub providers: Vec<String>,
    /// Every declared or owned resource, in dependency order (creates and updates first in
    /// topological order, then deletions of undeclared objects by address).
    pub changes: Vec<Change>,
    /// Counts.
    pub summary: Summary,
    /// Reasons the plan cannot be applied (e.g. a protected resource would be destroyed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// What the reads cost, per provider.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<ReadStats>,
    /// The policy findings; unsuppressed errors block apply.
    #[serde(default)]
    pub policy: PolicyReport,
}

impl Plan {
    /// True when applying would change nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.iter().all(|c| c.action == Action::NoOp)
    }
    /// The change for an address.
    pub fn change(&self, address: &str) -> Option<&Change> {
        self.changes.iter().find(|c| c.address == address)
    }
    /// Everything that stops this plan from being applied: its errors, and one line per
    /// unsuppressed policy error.
    pub fn blockers(&self) -> Vec<String> {
        let mut out = self.errors.clone();
        out.extend(
            self.policy
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Error && f.suppressed.is_none())
                .map(|f| format!("policy {} on {}: {}", f.rule, f.address, f.message)),
        );
        out
    }
    /// Changes that do something.
    pub fn actionable(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.action != Action::NoOp)
    }
}

/// Options for planning.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// Plan the deletion of everything the stack owns.
    pub destroy: bool,
    /// Only these providers (empty: all registered).
    pub only: BTreeSet<String>,
    /// Protected resources that may be deleted or replaced anyway (`--allow-destroy ADDR`).
    pub allow_destroy: BTreeSet<String>,
    /// Allow deleting or replacing every protected resource.
    pub allow_destroy_all: bool,
}

/// What the providers read, keyed by address, plus which provider returned each.
#[derive(Clone, Debug, Default)]
pub struct ObservedState {
    /// Owned objects (and looked-up data sources) by address.
    pub resources: BTreeMap<Address, Observed>,
    /// The provider that returned each object.
    pub provider_of: BTreeMap<Address, String>,
    /// Read statistics.
    pub reads: Vec<ReadStats>,
}

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
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().all(|k| values_equal(x.get(k), y.get(k)))
        }
        _ => a == b,
    }
}

/// The fields that differ between a declared resource (resolved) and its observed object,
/// ignoring computed outputs and `ignore_changes`.
pub fn changed_fields(
    spec: &ResourceSpec,
    desired: &BTreeMap<String, Value>,
    observed: &Observed,
) -> Vec<String> {
    let mut names: BTreeSet<&String> = desired.keys().collect();
    names.extend(observed.props.keys().filter(|k| !spec.schema.has_output(k)));
    names
        .into_iter()
        .filter(|n| !spec.options.ignore_changes.contains(*n))
        .filter(|n| {
            let d = desired.get(*n);
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
        .cloned()
        .collect()
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
            let v = if spec.schema.is_sensitive(&k) {
                v.into_sensitive()
            } else {
                v
            };
            (k, v)
        })
        .collect()
}

/// Computes the plan. See the [module docs](self).
pub fn compute(
    graph: &Graph,
    observed: &ObservedState,
    providers: &[String],
    opts: &PlanOptions,
) -> Plan {
    let in_scope = |provider: &str| providers.iter().any(|p| p == provider);
    let mut actions: HashMap<&Address, Action> = HashMap::with_capacity(graph.len());
    let mut changes: Vec<Change> = Vec::with_capacity(graph.len());
    let mut errors = Vec::new();

    for spec in graph.in_order() {
        if spec.schema.data_source || !in_scope(spec.schema.provider) {
            continue;
        }
        let current = observed.resources.get(&spec.address);
        let deps: Vec<String> = graph
            .dependencies(&spec.address)
            .iter()
            .map(|a| a.to_string())
            .collect();
        let protected = spec.options.protect || current.is_some_and(|o| o.protect);

        if opts.destroy {
            if let Some(obs) = current {
                changes.push(delete_change(
                    spec.schema.kind,
                    spec.schema.provider,
                    obs,
                    protected,
                    "the stack is being destroyed",
                ));
                actions.insert(&spec.address, Action::Delete);
            }
            continue;
        }

        let lookup = |r: &Reference| -> Option<Value> {
            let target = graph.get(&r.address)?;
            let known = match actions.get(&r.address) {
                Some(Action::Create | Action::DeleteThenCreate | Action::CreateThenDelete) => false,
                Some(Action::Update) => !target
                    .schema
                    .changes_on_update
                    .contains(&r.attribute.as_str()),
                _ => true,
            };
            if !known {
                return None;
            }
            observed
                .resources
                .get(&r.address)
                .and_then(|o| o.output(&r.attribute))
        };
        let desired: BTreeMap<String, Value> = spec
            .props
            .iter()
            .map(|(k, v)| (k.clone(), v.resolve(&lookup)))
            .collect();
        let desired = protect_secrets(spec, desired);

        let mut change = Change {
            address: spec.address.to_string(),
            kind: spec.schema.kind.to_string(),
            provider: spec.schema.provider.to_string(),
            action: Action::NoOp,
            id: current.map(|o| o.id.clone()),
            reason: String::new(),
            fields: Vec::new(),
            replace_because: Vec::new(),
            unchanged_fields: 0,
            depends_on: deps,
            protected,
        };

        match current {
            None => {
                change.action = Action::Create;
                change.reason = "not found among the stack's objects".into();
                change.fields = desired
                    .iter()
                    .map(|(k, v)| FieldChange {
                        name: k.clone(),
                        before: None,
                        after: Some(v.clone()),
                        forces_replacement: false,
                        sensitive: spec.schema.is_sensitive(k),
                        computed: false,
                    })
                    .collect();
                change.fields.extend(computed_fields(spec));
            }
            Some(obs) => {
                let changed = changed_fields(spec, &desired, obs);
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
                        after: desired.get(k).cloned(),
                        forces_replacement: spec.schema.is_force_new(k),
                        sensitive: spec.schema.is_sensitive(k),
                        computed: false,
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
                    if protected && !allowed(opts, &change.address) {
                        errors.push(protect_error(
                            &change.address,
                            "replaced",
                            spec.options.protect,
                        ));
                    }
                } else if !changed.is_empty() {
                    change.action = Action::Update;
                    change.reason = format!("{} changed", quote_list(&changed));
                } else {
                    change.reason = "matches the declaration".into();
                }
            }
        }
        actions.insert(&spec.address, change.action);
        changes.push(change);
    }

    // create_before_destroy is inherited by the dependencies of a resource replaced that way
    // (its new object must exist before the old dependencies go), as in terraform: the
    // dependencies it is declared with and those its existing object still refers to (a host
    // moving to another network keeps the old network busy until the old host is gone), and
    // transitively.
    let position: HashMap<String, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.address.clone(), i))
        .collect();
    let mut work: Vec<usize> = (0..changes.len())
        .filter(|&i| changes[i].action == Action::CreateThenDelete)
        .collect();
    // The old world's edges cost a pass over every observed property: only when needed.
    let mut old_deps: HashMap<String, Vec<String>> = HashMap::new();
    if !work.is_empty() {
        for (a, b) in old_edges(graph, observed) {
            old_deps
                .entry(a.to_string())
                .or_default()
                .push(b.to_string());
        }
    }
    while let Some(i) = work.pop() {
        let address = changes[i].address.clone();
        let deps = changes[i]
            .depends_on
            .iter()
            .chain(old_deps.get(&address).into_iter().flatten())
            .cloned()
            .collect::<Vec<_>>();
        for dep in deps {
            if let Some(&j) = position.get(&dep) {
                if changes[j].action == Action::DeleteThenCreate {
                    changes[j].action = Action::CreateThenDelete;
                    changes[j].reason.push_str(&format!(
                        " (create before destroy, inherited from {address})"
                    ));
                    work.push(j);
                }
            }
        }
    }

    if opts.destroy {
        changes.reverse();
    }

    // Owned but not declared (or everything, when destroying): deletions.
    let mut removed: Vec<Change> = observed
        .resources
        .iter()
        .filter(|(a, _)| graph.get(a).is_none())
        .filter(|(a, _)| observed.provider_of.get(*a).is_some_and(|p| in_scope(p)))
        .map(|(a, obs)| {
            let provider = observed.provider_of.get(a).cloned().unwrap_or_default();
            let reason = if opts.destroy {
                "the stack is being destroyed"
            } else {
                "no longer declared in the stack"
            };
            let mut c = delete_change(a.kind(), &provider, obs, obs.protect, reason);
            c.provider = provider;
            c
        })
        .collect();
    removed.sort_by(|a, b| a.address.cmp(&b.address));
    changes.extend(removed);

    for c in &changes {
        if c.action == Action::Delete && c.protected && !allowed(opts, &c.address) {
            let declared = c
                .address
                .parse::<Address>()
                .ok()
                .and_then(|a| graph.get(&a))
                .is_some_and(|s| s.options.protect);
            errors.push(protect_error(&c.address, "destroyed", declared));
        }
    }
    errors.sort();
    errors.dedup();

    let mut summary = Summary::default();
    for c in &changes {
        match c.action {
            Action::NoOp => summary.unchanged += 1,
            Action::Create => summary.add += 1,
            Action::Update => summary.change += 1,
            Action::Delete => summary.destroy += 1,
            Action::DeleteThenCreate | Action::CreateThenDelete => {
                summary.add += 1;
                summary.destroy += 1;
            }
        }
    }

    Plan {
        format_version: FORMAT_VERSION,
        stack: graph.stack().to_string(),
        destroy: opts.destroy,
        providers: providers.to_vec(),
        changes,
        summary,
        errors,
        reads: observed.reads.clone(),
        policy: PolicyReport::default(),
    }
}

fn allowed(opts: &PlanOptions, address: &str) -> bool {
    opts.allow_destroy_all || opts.allow_destroy.contains(address)
}

/// `declared`: the declaration says `.protect()`; otherwise the protection comes from the
/// object's `infra:protect` mark, left by an apply while it was declared protected.
fn protect_error(address: &str, verb: &str, declared: bool) -> String {
    if declared {
        format!(
            "{address} is protected and would be {verb}; remove `.protect()` from its declaration, \
             or re-run with `--allow-destroy {address}` if this is intended"
        )
    } else {
        format!(
            "{address} is protected and would be {verb}: its object is marked `infra:protect` \
             (it was applied while declared with `.protect()`, and the mark stays until the \
             object goes); re-run with `--allow-destroy {address}` if this is intended"
        )
    }
}

fn computed_fields(spec: &ResourceSpec) -> Vec<FieldChange> {
    std::iter::once("id")
        .chain(spec.schema.computed.iter().copied().filter(|c| *c != "id"))
        .map(|c| FieldChange {
            name: c.to_string(),
            before: None,
            after: Some(Value::Ref(Reference {
                address: spec.address.clone(),
                attribute: c.to_string(),
            })),
            forces_replacement: false,
            sensitive: false,
            computed: true,
        })
        .collect()
}

fn delete_change(
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
    }];
    fields.extend(obs.props.iter().map(|(k, v)| FieldChange {
        name: k.clone(),
        before: Some(v.clone()),
        after: None,
        forces_replacement: false,
        sensitive: matches!(v, Value::Sensitive(_)),
        computed: false,
    }));
    Change {
        address: obs.address.to_string(),
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
    }
}

fn quote_list(fields: &[String]) -> String {
    let quoted: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
    quoted.join(", ")
}

/// `(a, b)`: the existing object `a` refers to the existing object `b`, either as declared or
/// because one of `a`'s observed properties holds `b`'s id. Sorted, without duplicates.
pub(crate) fn old_edges(graph: &Graph, observed: &ObservedState) -> Vec<(Address, Address)> {
    let by_id: HashMap<&str, &Address> = observed
        .resources
        .values()
        .map(|o| (o.id.as_str(), &o.address))
        .collect();
    let mut out = Vec::new();
    for (a, obs) in &observed.resources {
        for dep in graph.dependencies(a) {
            if observed.resources.contains_key(dep) {
                out.push((a.clone(), dep.clone()));
            }
        }
        for v in obs.props.values() {
            visit_strings(v, &mut |s| {
                if let Some(&b) = by_id.get(s) {
                    if b != a {
                        out.push((a.clone(), b.clone()));
                    }
                }
            });
        }
    }
    out.sort();
    out.dedup();
    out
}

fn visit_strings<'a>(v: &'a Value, f: &mut impl FnMut(&'a str)) {
    match v {
        Value::String(s) => f(s),
        Value::List(l) => l.iter().for_each(|x| visit_strings(x, f)),
        Value::Map(m) => m.values().for_each(|x| visit_strings(x, f)),
        _ => {}
    }
}
