//! A plan turned into operations: one per create, update and delete (two per replacement),
//! each with the operations it must wait for, checked for cycles before anything runs.

use std::collections::HashMap;

use super::{OpKind, ReconcileError};
use crate::dsl::Address;
use crate::graph::Graph;
use crate::plan::{Action, ObservedState, Plan};

/// One provider call to make, with the operations it waits for (`deps`) and those that wait
/// for it (`dependents`), as indices into the list [`build_ops`] returns.
#[derive(Debug)]
pub(super) struct Op {
    pub(super) address: Address,
    pub(super) kind: OpKind,
    pub(super) change: Action,
    pub(super) provider: String,
    pub(super) deps: Vec<usize>,
    pub(super) dependents: Vec<usize>,
}

/// Turns a plan into operations with their ordering constraints.
pub(super) fn build_ops(
    plan: &Plan,
    graph: &Graph,
    observed: &ObservedState,
) -> Result<Vec<Op>, ReconcileError> {
    let mut ops: Vec<Op> = Vec::new();
    let mut new_op: HashMap<Address, usize> = HashMap::new();
    let mut del_op: HashMap<Address, usize> = HashMap::new();
    let mut action_of: HashMap<Address, Action> = HashMap::new();
    let push =
        |ops: &mut Vec<Op>, address: &Address, kind: OpKind, change: Action, provider: &str| {
            ops.push(Op {
                address: address.clone(),
                kind,
                change,
                provider: provider.to_string(),
                deps: Vec::new(),
                dependents: Vec::new(),
            });
            ops.len() - 1
        };
    for c in plan.actionable() {
        let address = &c.address;
        action_of.insert(address.clone(), c.action);
        // A kept object is re-owned under its new address first; an update waits for that.
        let moved = (c.moved_from.is_some() && !c.action.is_replace())
            .then(|| push(&mut ops, address, OpKind::Move, c.action, &c.provider));
        // An adopted object is owned first; an update waits for that.
        let moved = moved.or_else(|| {
            (c.adopted.is_some() && !c.action.is_replace())
                .then(|| push(&mut ops, address, OpKind::Adopt, c.action, &c.provider))
        });
        match c.action {
            Action::NoOp => {}
            Action::Move | Action::Adopt => {
                if let Some(m) = moved {
                    new_op.insert(address.clone(), m);
                }
            }
            Action::Create => {
                new_op.insert(
                    address.clone(),
                    push(&mut ops, address, OpKind::Create, c.action, &c.provider),
                );
            }
            Action::Update => {
                let u = push(&mut ops, address, OpKind::Update, c.action, &c.provider);
                if let Some(m) = moved {
                    ops[u].deps.push(m);
                    ops[m].dependents.push(u);
                }
                new_op.insert(address.clone(), u);
            }
            Action::Delete => {
                del_op.insert(
                    address.clone(),
                    push(&mut ops, address, OpKind::Delete, c.action, &c.provider),
                );
            }
            Action::DeleteThenCreate | Action::CreateThenDelete => {
                let d = push(&mut ops, address, OpKind::Delete, c.action, &c.provider);
                let n = push(&mut ops, address, OpKind::Create, c.action, &c.provider);
                del_op.insert(address.clone(), d);
                new_op.insert(address.clone(), n);
            }
        }
    }

    let mut edges: Vec<(usize, usize)> = Vec::new(); // (op, must run after op)
                                                     // Within one replacement.
    for (a, &n) in &new_op {
        if let Some(&d) = del_op.get(a) {
            match action_of[a] {
                Action::DeleteThenCreate => edges.push((n, d)),
                _ => edges.push((d, n)),
            }
        }
    }
    // New world: a resource's create/update after its dependencies' create/update.
    for (a, &n) in &new_op {
        for dep in graph.dependencies(a) {
            if let Some(&m) = new_op.get(dep) {
                edges.push((n, m));
            }
        }
    }
    // Old world: an object is deleted after whatever referenced it is gone or moved off it.
    for (a, b) in crate::plan::old_edges(graph, observed) {
        let Some(&db) = del_op.get(&b) else { continue };
        if let Some(&da) = del_op.get(&a) {
            edges.push((db, da));
        }
        if let Some(&na) = new_op.get(&a) {
            if matches!(
                action_of.get(&b),
                Some(Action::CreateThenDelete | Action::Delete)
            ) {
                edges.push((db, na));
            }
        }
    }
    edges.sort_unstable();
    edges.dedup();
    for (after, before) in edges {
        if after != before {
            ops[after].deps.push(before);
            ops[before].dependents.push(after);
        }
    }
    // Cycle check before touching anything.
    let mut pending: Vec<usize> = ops.iter().map(|o| o.deps.len()).collect();
    let mut queue: Vec<usize> = (0..ops.len()).filter(|&i| pending[i] == 0).collect();
    let mut seen = 0;
    while let Some(i) = queue.pop() {
        seen += 1;
        for &d in &ops[i].dependents {
            pending[d] -= 1;
            if pending[d] == 0 {
                queue.push(d);
            }
        }
    }
    if seen != ops.len() {
        let stuck: Vec<String> = (0..ops.len())
            .filter(|&i| pending[i] > 0)
            .map(|i| format!("{} ({})", ops[i].address, ops[i].kind))
            .collect();
        return Err(ReconcileError::Cycle(stuck.join(", ")));
    }
    Ok(ops)
}
