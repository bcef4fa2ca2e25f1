//! Replacements and the existing objects' own references: create-before-destroy inherited by
//! dependencies, and the edges between existing objects (which also order deletions when
//! applying).

use super::{Action, Change, ObservedState};
use crate::dsl::Address;
use crate::graph::Graph;
use crate::hash::HashMap;
use crate::value::Value;

/// Create-before-destroy is inherited by the dependencies of a resource replaced that way (its
/// new object must exist before the old dependencies go), as in terraform: the dependencies it
/// is declared with and those its existing object still refers to (a host moving to another
/// network keeps the old network busy until the old host is gone), and transitively. An
/// inheriting change's reason says where it came from.
pub(super) fn propagate_create_before_destroy(
    graph: &Graph,
    observed: &ObservedState,
    changes: &mut [Change],
) {
    let mut work: Vec<usize> = (0..changes.len())
        .filter(|&i| changes[i].action == Action::CreateThenDelete)
        .collect();
    if work.is_empty() {
        // The old world's edges cost a pass over every observed property: only when needed.
        return;
    }
    let position: HashMap<Address, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.address.clone(), i))
        .collect();
    let mut old_deps: HashMap<Address, Vec<Address>> = HashMap::default();
    for (a, b) in old_edges(graph, observed) {
        old_deps.entry(a).or_default().push(b);
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
