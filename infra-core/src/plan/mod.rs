//! Planning: the desired graph against what the providers read, giving ordered changes.
//!
//! Pure and deterministic: the same graph and observations give a byte-identical plan. A change
//! documents what `before` and `after` mean for its action: `before` is the observed value
//! (absent on create), `after` the declared value (absent on delete), with values known only
//! after apply as [`Value::Ref`] and secrets as [`Value::Sensitive`] digests.

//!
//! [`compute`] runs in named steps: each declared resource is diffed against its object in
//! dependency order (`diff`), create-before-destroy is propagated to the dependencies of such
//! replacements (`replace`), owned objects no longer declared become deletions, protected
//! resources that would go become errors (`protect`), and the changes are counted.

mod adopt;
mod diff;
pub mod drift;
mod moves;
mod protect;
mod replace;
pub mod saved;

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::dsl::{Address, ResourceSpec};
use crate::graph::Graph;
use crate::policy::{PolicyReport, Severity};
use crate::provider::Observed;
use crate::value::Value;

pub use diff::{changed_fields, protect_secrets, values_equal};
pub use moves::apply_moves;
pub(crate) use replace::old_edges;

/// The version of the plan's JSON format.
pub const FORMAT_VERSION: u32 = 1;

/// What happens to one resource.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
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
    /// Declared under a new address ([`Stack::moved`](crate::dsl::Stack::moved)): the object
    /// is re-owned there (its ownership tag rewritten), nothing else changes. A move with
    /// changed fields is an [`Action::Update`] with [`Change::moved_from`] set.
    Move,
    /// An object that belongs to no stack, declared with
    /// [`Stack::adopt`](crate::dsl::Stack::adopt) and as it is: the stack's ownership is written
    /// on it, nothing else changes. An adoption with changed fields is an [`Action::Update`]
    /// with [`Change::adopted`] set.
    Adopt,
}

impl Action {
    /// True for the two replacement actions.
    pub fn is_replace(self) -> bool {
        matches!(self, Action::DeleteThenCreate | Action::CreateThenDelete)
    }
    /// The terraform-style symbol: `+`, `~`, `-/+`, `+/-`, `-`, `>` for a move, or a blank for
    /// no-op.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::DeleteThenCreate => "-/+",
            Action::CreateThenDelete => "+/-",
            Action::Delete => "-",
            Action::Move => ">",
            Action::Adopt => "<",
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
    /// On an in-place update: what changing this field does beyond the field itself (a Swarm
    /// service's task-template fields: "restarts the service's tasks"). See
    /// [`KindSchema::disruptive`](crate::dsl::KindSchema::disruptive).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub effect: Option<String>,
    /// On an update or replacement of an existing object: whether the difference comes from
    /// the code (changed since the object's last apply) or from outside (drift), by the record
    /// the last apply wrote on the object ([`drift`]). Absent on create and delete.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub origin: Option<drift::Origin>,
}

/// One resource's change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Change {
    /// The resource's address.
    #[schemars(with = "String")]
    pub address: Address,
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
    #[schemars(with = "Vec<String>")]
    pub depends_on: Vec<Address>,
    /// True when the resource is protected.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub protected: bool,
    /// The address the object was owned at before a declared move: it is re-owned here
    /// ([`Action::Move`], or an update), or, for kinds a move can't keep, replaced.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(with = "Option<String>")]
    pub moved_from: Option<Address>,
    /// The id of the object that belongs to no stack and is adopted here
    /// ([`Stack::adopt`](crate::dsl::Stack::adopt)): its ownership is written
    /// ([`Action::Adopt`]), and its fields updated when they differ ([`Action::Update`]).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub adopted: Option<String>,
}

impl Change {
    /// True when a field of this change differs because the object was changed from outside.
    pub fn has_drift(&self) -> bool {
        self.fields
            .iter()
            .any(|f| f.origin == Some(drift::Origin::Drift))
    }
    /// The fields changed from outside.
    pub fn drift_fields(&self) -> impl Iterator<Item = &FieldChange> {
        self.fields
            .iter()
            .filter(|f| f.origin == Some(drift::Origin::Drift))
    }
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
    /// Objects re-owned under a new address by a declared move (kept, possibly also updated).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub moved: usize,
    /// Objects changed from outside since their last apply (at least one field of
    /// [`drift::Origin::Drift`]); the plan puts them back.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub drifted: usize,
    /// Objects that belonged to no stack and are adopted (kept, possibly also updated).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub adopted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
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
    /// Advice that doesn't block applying: a deletion and a creation of the same kind with
    /// identical inputs, and the move that would keep the object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
    /// What the reads cost, per provider.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<ReadStats>,
    /// The policy findings; unsuppressed errors block apply.
    #[serde(default)]
    pub policy: PolicyReport,
    /// The objects changed from outside since their last apply, and which fields: the drift
    /// the changes above put back, as its own section ([`drift`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<Drifted>,
}

/// An object changed from outside since its last apply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Drifted {
    /// The resource's address.
    #[schemars(with = "String")]
    pub address: Address,
    /// Its kind.
    pub kind: String,
    /// The provider serving it.
    pub provider: String,
    /// The provider's id of the object.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    /// The fields that differ from what was last applied although the declaration of them did
    /// not change (their values are in the change's `fields`).
    pub fields: Vec<String>,
}

impl Plan {
    /// True when applying would change nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.iter().all(|c| c.action == Action::NoOp)
    }
    /// The change for an address, written `kind.name`.
    pub fn change(&self, address: &str) -> Option<&Change> {
        let (kind, name) = address.split_once('.')?;
        self.changes
            .iter()
            .find(|c| c.address.kind() == kind && c.address.name() == name)
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
    /// The changes with fields changed from outside (drift), in plan order.
    pub fn drifted(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.has_drift())
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
    /// Objects re-keyed by a declared move ([`apply_moves`]): the new address and the old.
    pub moved: BTreeMap<Address, Address>,
    /// Objects that belong to no stack, read for a declared adoption
    /// ([`Stack::adopt`](crate::dsl::Stack::adopt)) and observed at its address: the address
    /// and the object's id.
    pub adopted: BTreeMap<Address, String>,
}

/// Computes the plan. See the [module docs](self).
pub fn compute(
    graph: &Graph,
    observed: &ObservedState,
    providers: &[String],
    opts: &PlanOptions,
) -> Plan {
    let in_scope = |provider: &str| providers.iter().any(|p| p == provider);
    let mut changes = declared_changes(graph, observed, &in_scope, opts.destroy);
    replace::propagate_create_before_destroy(graph, observed, &mut changes);
    if opts.destroy {
        changes.reverse();
    }
    changes.extend(orphan_deletions(graph, observed, &in_scope, opts.destroy));
    let mut errors = protect::protection_errors(graph, &changes, opts);
    errors.extend(adopt::adoption_errors(&changes));
    errors.sort();
    errors.dedup();
    let hints = if opts.destroy {
        Vec::new()
    } else {
        moves::hints(graph, &changes)
    };
    let summary = summarize(&changes);
    let drift = changes
        .iter()
        .filter(|c| c.has_drift())
        .map(|c| Drifted {
            address: c.address.clone(),
            kind: c.kind.clone(),
            provider: c.provider.clone(),
            id: c.id.clone(),
            fields: c.drift_fields().map(|f| f.name.clone()).collect(),
        })
        .collect();
    Plan {
        format_version: FORMAT_VERSION,
        stack: graph.stack().to_string(),
        destroy: opts.destroy,
        providers: providers.to_vec(),
        changes,
        summary,
        errors,
        hints,
        reads: observed.reads.clone(),
        policy: PolicyReport::default(),
        drift,
    }
}

/// The reason of every deletion in a destroy plan.
const DESTROYING: &str = "the stack is being destroyed";

/// The changes of the declared, in-scope resources (data sources aside), in topological order.
/// When destroying, the deletion of each one that has an object; otherwise each one's diff, its
/// references resolved with what the changes before it leave known.
///
/// A resource's diff reads only the actions of the resources it references, which are its
/// dependencies, so the diffs of one [wave](Graph::waves) are independent: a large wave is
/// split between threads (the result is the same, in the same order, as one thread's).
fn declared_changes(
    graph: &Graph,
    observed: &ObservedState,
    in_scope: &(dyn Fn(&str) -> bool + Sync),
    destroy: bool,
) -> Vec<Change> {
    let threads = crate::parallel::threads();
    declared_changes_on(graph, observed, in_scope, destroy, threads, PARALLEL_WAVE)
}

/// [`declared_changes`] on up to `threads` threads, for waves of `parallel` resources or more.
fn declared_changes_on(
    graph: &Graph,
    observed: &ObservedState,
    in_scope: &(dyn Fn(&str) -> bool + Sync),
    destroy: bool,
    threads: usize,
    parallel: usize,
) -> Vec<Change> {
    let specs: Vec<&ResourceSpec> = graph.in_order().collect();
    let wanted = |spec: &ResourceSpec| !spec.schema.data_source && in_scope(spec.schema.provider);
    if destroy {
        return specs
            .iter()
            .filter(|spec| wanted(spec))
            .filter_map(|spec| {
                let obs = observed.resources.get(&spec.address)?;
                let protected = spec.options.protect || obs.protect;
                let mut change = diff::delete_change(
                    spec.schema.kind,
                    spec.schema.provider,
                    obs,
                    protected,
                    DESTROYING,
                );
                // An object a declared move re-keyed is destroyed under the resource's address.
                change.address = spec.address.clone();
                Some(change)
            })
            .collect();
    }
    let mut known = diff::Known::new(graph, &observed.resources);
    let order = graph.node_order();
    let mut changes: Vec<Option<Change>> = (0..specs.len()).map(|_| None).collect();
    for wave in graph.waves() {
        let positions: Vec<usize> = wave.into_iter().filter(|&p| wanted(specs[p])).collect();
        let diffs = crate::parallel::map_ordered(&positions, threads, parallel, |&p| {
            declared_diff(order[p], graph, observed, &known)
        });
        for (p, change) in positions.into_iter().zip(diffs) {
            known.actions[order[p]] = Some(change.action);
            changes[p] = Some(change);
        }
    }
    // Sized once: a collect through `flatten` knows no length and grew the vector (of large
    // changes) step by step.
    let mut all = Vec::with_capacity(changes.iter().filter(|c| c.is_some()).count());
    all.extend(changes.into_iter().flatten());
    all
}

/// The number of resources in a wave from which [`declared_changes`] splits it between
/// threads: below it, starting them costs more than they save.
const PARALLEL_WAVE: usize = 2048;

/// The change of the declared resource at node index `i` (see [`declared_changes`]).
fn declared_diff(i: usize, graph: &Graph, observed: &ObservedState, known: &diff::Known) -> Change {
    let spec = graph.node(i);
    let current = known.observed[i];
    let protected = spec.options.protect || current.is_some_and(|o| o.protect);
    let desired = diff::desired_props(spec, known);
    let depends_on = graph.dependencies_of(i).into_iter().cloned().collect();
    let mut change = diff::declared_change(spec, &desired, current, depends_on, protected);
    moves::mark_moved(&mut change, observed, graph);
    adopt::mark_adopted(&mut change, observed);
    change
}

/// Deletions of the in-scope objects the stack owns that are not declared, by address.
fn orphan_deletions(
    graph: &Graph,
    observed: &ObservedState,
    in_scope: &(dyn Fn(&str) -> bool + Sync),
    destroy: bool,
) -> Vec<Change> {
    let reason = if destroy {
        DESTROYING
    } else {
        "no longer declared in the stack"
    };
    let mut removed: Vec<Change> = observed
        .resources
        .iter()
        .filter(|(a, _)| graph.get(a).is_none())
        .filter_map(|(a, obs)| {
            let provider = observed.provider_of.get(a).filter(|p| in_scope(p))?;
            Some(diff::delete_change(
                a.kind(),
                provider,
                obs,
                obs.protect,
                reason,
            ))
        })
        .collect();
    // By the address as written (`kind.name`), the order plans have always had.
    removed.sort_by_cached_key(|c| c.address.to_string());
    removed
}

/// Counts in terraform's terms.
fn summarize(changes: &[Change]) -> Summary {
    let mut summary = Summary::default();
    for c in changes {
        match c.action {
            Action::NoOp => summary.unchanged += 1,
            Action::Create => summary.add += 1,
            Action::Update => summary.change += 1,
            Action::Delete => summary.destroy += 1,
            Action::Move | Action::Adopt => {}
            Action::DeleteThenCreate | Action::CreateThenDelete => {
                summary.add += 1;
                summary.destroy += 1;
            }
        }
        if c.moved_from.is_some() && !c.action.is_replace() {
            summary.moved += 1;
        }
        if c.has_drift() {
            summary.drifted += 1;
        }
        if c.adopted.is_some() {
            summary.adopted += 1;
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsl::{KindSchema, Stack};
    use crate::value::Reference;

    static NET: KindSchema = KindSchema::new("t_net", "t").computed(&["id"]);
    static SUB: KindSchema = KindSchema::new("t_sub", "t")
        .force_new(&["net_id", "cidr"])
        .computed(&["id"]);
    static HOST: KindSchema = KindSchema::new("t_host", "t")
        .force_new(&["sub_id"])
        .computed(&["id"]);

    fn reference(address: &Address) -> Value {
        Value::from(Reference {
            address: address.clone(),
            attribute: "id".into(),
        })
    }

    /// Diffs computed wave by wave on several threads are those of one thread, in the same
    /// order: creates, no-ops, updates and replacements, with references to replaced objects
    /// left unknown.
    #[test]
    fn diffs_on_several_threads_are_those_of_one() {
        let mut stack = Stack::new("t");
        let mut observed = ObservedState::default();
        let mut observe = |address: &Address, props: BTreeMap<String, Value>| {
            let o = Observed {
                address: address.clone(),
                id: format!("id-{address}"),
                props: props.into(),
                protect: false,
                declared: None,
            };
            observed.provider_of.insert(address.clone(), "t".into());
            observed.resources.insert(address.clone(), o);
        };
        for n in 0..6 {
            let mut net = ResourceSpec::new(&NET, format!("n{n}"));
            net.set("cidr", format!("10.{n}.0.0/16"));
            let net = stack.add_spec(net);
            observe(
                &net,
                BTreeMap::from([("cidr".into(), format!("10.{n}.0.0/16").into())]),
            );
            for b in 0..8 {
                let mut sub = ResourceSpec::new(&SUB, format!("s{n}-{b}"));
                sub.set("net_id", reference(&net))
                    .set("cidr", format!("10.{n}.{b}.0/24"));
                let sub = stack.add_spec(sub);
                // every third subnet's cidr changed (a replacement), one in five missing
                let cidr = if b % 3 == 0 {
                    format!("10.{n}.{b}.128/25")
                } else {
                    format!("10.{n}.{b}.0/24")
                };
                if b % 5 != 4 {
                    observe(
                        &sub,
                        BTreeMap::from([
                            ("net_id".into(), format!("id-{net}").into()),
                            ("cidr".into(), cidr.into()),
                        ]),
                    );
                }
                for h in 0..5 {
                    let mut host = ResourceSpec::new(&HOST, format!("h{n}-{b}-{h}"));
                    host.set("sub_id", reference(&sub))
                        .set("size", if h == 0 { "large" } else { "small" });
                    let host = stack.add_spec(host);
                    observe(
                        &host,
                        BTreeMap::from([
                            ("sub_id".into(), format!("id-{sub}").into()),
                            ("size".into(), "small".into()),
                        ]),
                    );
                }
            }
        }
        let graph = Graph::build(&stack).unwrap();
        assert_eq!(graph.waves().len(), 3);
        let in_scope = |_: &str| true;
        let one = declared_changes_on(&graph, &observed, &in_scope, false, 1, usize::MAX);
        let several = declared_changes_on(&graph, &observed, &in_scope, false, 3, 1);
        assert_eq!(one.len(), graph.len());
        let json = |c: &[Change]| serde_json::to_string(c).unwrap();
        assert_eq!(json(&several), json(&one));
        let count = |a: Action| one.iter().filter(|c| c.action == a).count();
        assert_eq!(count(Action::Create), 6, "the missing subnets");
        // per network: 3 subnets replaced (cidr), and the 5 hosts on each of them and on the
        // missing one, whose `sub_id` is unknown; the large host on each of the 4 others updated
        assert_eq!(count(Action::DeleteThenCreate), 6 * (3 + 4 * 5));
        assert_eq!(count(Action::Update), 6 * 4);
        assert_eq!(count(Action::NoOp), graph.len() - 6 - 6 * 23 - 6 * 4);
    }
}
