//! Declared moves ([`Stack::moved`](crate::dsl::Stack::moved)) against what the providers
//! read: each object owned at an old address is re-keyed under the resource it now belongs
//! to, and the plan then diffs it like any other; a move that would give an address two
//! objects is refused. Also the hint for renames without a move: a deletion and a creation of
//! the same kind with identical inputs.

use crate::dsl::{Address, MoveSupport};
use crate::graph::Graph;
use crate::validate::Problem;

use super::{diff, Action, Change, ObservedState};

/// Re-keys every object owned at the old address of a declared move under its new address
/// (the object keeps its own [`Observed::address`](crate::provider::Observed::address) until
/// the apply re-owns it), and records the move in [`ObservedState::moved`]. A move whose new
/// address already has an object, or two old addresses with objects moving to one new
/// address, is a problem: nothing is re-keyed then, and the plan must not be made.
pub fn apply_moves(graph: &Graph, observed: &mut ObservedState) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut taken: Vec<(&Address, &Address)> = Vec::new(); // (to, from) of objects that move
    for m in graph.moves() {
        let Some(obs) = observed.resources.get(&m.from) else {
            continue;
        };
        if let Some(there) = observed.resources.get(&m.to) {
            problems.push(Problem::new(
                &m.from,
                "moved",
                format!(
                    "{} is moved to {}, but both have an object ({} and {}): a move re-owns an \
                     object only at an address that has none. Remove the move to destroy {}'s \
                     object, or delete one of the two",
                    m.from, m.to, obs.id, there.id, m.from
                ),
            ));
            continue;
        }
        if let Some((_, other)) = taken.iter().find(|(to, _)| *to == &m.to) {
            problems.push(Problem::new(
                &m.from,
                "moved",
                format!(
                    "{other} and {} both have an object and both are moved to {}: only one \
                     can be re-owned there. Delete one of them",
                    m.from, m.to
                ),
            ));
            continue;
        }
        taken.push((&m.to, &m.from));
    }
    if !problems.is_empty() {
        return problems;
    }
    let moving: Vec<(Address, Address)> = taken
        .into_iter()
        .map(|(to, from)| (to.clone(), from.clone()))
        .collect();
    for (to, from) in moving {
        if let Some(obs) = observed.resources.remove(&from) {
            observed.resources.insert(to.clone(), obs);
        }
        if let Some(p) = observed.provider_of.remove(&from) {
            observed.provider_of.insert(to.clone(), p);
        }
        observed.moved.insert(to, from);
    }
    Vec::new()
}

/// Marks a declared resource's change as a move when its object came from another address: a
/// move alone (the object is re-owned, nothing else changes), a move and an update, or, where
/// the kind can't re-own an object in place, a replacement saying why (create before destroy:
/// the new object's name differs from the old one's, so both can exist for a while).
pub(super) fn mark_moved(change: &mut Change, observed: &ObservedState, graph: &Graph) {
    let Some(from) = observed.moved.get(&change.address) else {
        return;
    };
    let Some(spec) = graph.get(&change.address) else {
        return;
    };
    change.moved_from = Some(from.clone());
    match spec.schema.moves {
        MoveSupport::InPlace => match change.action {
            Action::NoOp => {
                change.action = Action::Move;
                change.reason = format!("moved from {from}: re-owned under its new address");
            }
            _ => change.reason = format!("moved from {from}; {}", change.reason),
        },
        MoveSupport::Replaces(why) => {
            let because = format!(
                "moved from {from}, but {why}: a new object replaces it (created before the \
                 old one is destroyed)"
            );
            if change.action.is_replace() {
                change.reason = format!("{}; {because}", change.reason);
            } else {
                change.action = Action::CreateThenDelete;
                change.reason = because;
                if let Some(obs) = observed.resources.get(&change.address) {
                    change
                        .fields
                        .extend(diff::computed_fields(spec).into_iter().map(|mut f| {
                            f.before = obs.output(&f.name);
                            f
                        }));
                }
            }
        }
    }
}

/// One line per deletion and creation of the same kind with identical inputs (a resource
/// renamed in code without a declared move), saying which move keeps the object. Only kinds
/// whose objects a move keeps; each deletion pairs with at most one creation, by address.
pub(super) fn hints(graph: &Graph, changes: &[Change]) -> Vec<String> {
    let deletes: Vec<&Change> = changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .collect();
    if deletes.is_empty() {
        return Vec::new();
    }
    let mut used = vec![false; deletes.len()];
    let mut out = Vec::new();
    let mut creates: Vec<&Change> = changes
        .iter()
        .filter(|c| c.action == Action::Create)
        .collect();
    creates.sort_by_cached_key(|c| c.address.to_string());
    for c in creates {
        let Some(spec) = graph.get(&c.address) else {
            continue;
        };
        if spec.schema.moves != MoveSupport::InPlace {
            continue;
        }
        let inputs: Vec<_> = c.fields.iter().filter(|f| !f.computed).collect();
        if inputs
            .iter()
            .any(|f| f.after.as_ref().is_some_and(|v| v.has_refs()))
        {
            continue;
        }
        let found = deletes.iter().enumerate().find(|(i, d)| {
            !used[*i]
                && d.kind == c.kind
                && d.provider == c.provider
                && d.fields
                    .iter()
                    .filter(|f| !f.computed && !spec.schema.has_output(&f.name))
                    .all(|f| {
                        let after = inputs.iter().find(|x| x.name == f.name);
                        diff::values_equal(f.before.as_ref(), after.and_then(|x| x.after.as_ref()))
                    })
                && inputs.iter().all(|x| {
                    let before = d.fields.iter().find(|f| f.name == x.name);
                    diff::values_equal(before.and_then(|f| f.before.as_ref()), x.after.as_ref())
                })
        });
        if let Some((i, d)) = found {
            used[i] = true;
            out.push(format!(
                "{} is destroyed and {} created with identical inputs: if it was renamed, \
                 declare the move to keep its object ({}): stack.moved(Ref::named(\"{}\"), \
                 &<the handle of {}>)",
                d.address,
                c.address,
                d.id.as_deref().unwrap_or("-"),
                d.address.name(),
                c.address,
            ));
        }
    }
    out
}
