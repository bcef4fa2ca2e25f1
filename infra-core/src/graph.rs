//! The resource graph: a DAG of declared resources and their dependencies (references and
//! `depends_on`). It knows no resource types: it validates (delegating per-kind checks to the
//! kinds' schemas), orders deterministically and exports. Building a graph is where validation
//! happens, so a [`Graph`] is always valid.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::sync::Arc;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::dsl::{Address, Adoption, Move, ResourceSpec, Stack};
use crate::hash::HashMap;
use crate::validate::{check_name, Problem, ValidationContext, ValidationErrors};

/// A validated, ordered resource graph.
#[derive(Clone, Debug)]
pub struct Graph {
    stack: String,
    /// The stack's specs, shared with it (not copied).
    nodes: Vec<Arc<ResourceSpec>>,
    index: HashMap<Address, usize>,
    /// Each node's dependencies (node indexes), sorted by their address.
    deps: Vec<Vec<usize>>,
    order: Vec<usize>,
    moves: Vec<Move>,
    adoptions: Vec<Adoption>,
}

impl Graph {
    /// Validates a stack and builds its graph. On failure, every problem is reported at once.
    pub fn build(stack: &Stack) -> Result<Graph, ValidationErrors> {
        let mut problems = Vec::new();
        check_stack_name(stack.name(), &mut problems);

        let specs = stack.resources();
        let mut index: HashMap<Address, usize> =
            HashMap::with_capacity_and_hasher(specs.len(), Default::default());
        let mut counts: HashMap<&Address, usize> =
            HashMap::with_capacity_and_hasher(specs.len(), Default::default());
        for (i, r) in specs.iter().enumerate() {
            index.entry(r.address.clone()).or_insert(i);
            *counts.entry(&r.address).or_default() += 1;
        }

        for (i, r) in specs.iter().enumerate() {
            if let Err(e) = check_name(r.address.name()) {
                problems.push(Problem::new(&r.address, "name", e));
            }
            let n = counts[&r.address];
            if n > 1 && index[&r.address] == i {
                problems.push(Problem::new(
                    &r.address,
                    "name",
                    format!(
                        "`{}` is declared {n} times; names must be unique within a kind",
                        r.address.name()
                    ),
                ));
            }
            check_references(r, specs, &index, &mut problems);
        }
        for (dependent, dependency) in stack.dangling_dependencies() {
            problems.push(Problem::new(
                dependent,
                "depends_on",
                format!("add_dependency on {dependency}: {dependent} is not in the stack"),
            ));
        }

        // Edges over the first declaration of each address, to existing targets only (missing
        // targets were reported above).
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); specs.len()];
        for (i, r) in specs.iter().enumerate() {
            if index[&r.address] != i {
                continue;
            }
            let mut d: Vec<usize> = r
                .dependencies()
                .iter()
                .filter_map(|a| index.get(a).copied())
                .collect();
            d.sort_unstable();
            d.dedup();
            deps[i] = d;
        }
        check_cycles(specs, &deps, &mut problems);
        let moves = resolve_moves(stack.moves(), &index, &mut problems);
        let adoptions = check_adoptions(stack.adoptions(), specs, &index, &mut problems);

        let ctx = ValidationContext::new(stack);
        for r in specs {
            problems.extend((r.schema.validate)(r, &ctx));
            problems.extend(crate::policy::check_suppressions(r));
        }

        if !problems.is_empty() {
            problems.sort();
            problems.dedup();
            return Err(ValidationErrors {
                stack: stack.name().to_string(),
                problems,
            });
        }

        // Each node's dependencies by address (what `dependencies` returns), by the ranks the
        // order was computed with: no string is compared again.
        let (order, rank_of) = topological_order(specs, &deps);
        for d in &mut deps {
            d.sort_unstable_by_key(|&j| rank_of[j]);
        }
        Ok(Graph {
            stack: stack.name().to_string(),
            nodes: specs.to_vec(), // clones of the `Arc`s
            index,
            deps,
            order,
            moves,
            adoptions,
        })
    }

    /// The declared moves with chains resolved: each old address and the declared resource it
    /// ends at, sorted by old address.
    pub fn moves(&self) -> &[Move] {
        &self.moves
    }

    /// The declared adoptions ([`Stack::adopt`]), checked: each address declared once, each id
    /// adopted once per provider, sorted by address.
    pub fn adoptions(&self) -> &[Adoption] {
        &self.adoptions
    }

    /// The stack's name.
    pub fn stack(&self) -> &str {
        &self.stack
    }

    /// Resources in a deterministic topological order: every resource after its dependencies,
    /// ties broken by address.
    pub fn in_order(&self) -> impl Iterator<Item = &ResourceSpec> + '_ {
        self.order.iter().map(move |&i| &*self.nodes[i])
    }

    /// [`Graph::in_order`] in waves: each resource is in the wave after the last of its
    /// dependencies' (a resource with none in the first), so that the resources of one wave
    /// depend on none of the same wave; each wave lists its resources by their position in
    /// [`Graph::in_order`], ascending.
    pub(crate) fn waves(&self) -> Vec<Vec<usize>> {
        let mut wave_of = vec![0usize; self.nodes.len()];
        let mut waves: Vec<Vec<usize>> = Vec::new();
        for (position, &i) in self.order.iter().enumerate() {
            let wave = self.deps[i]
                .iter()
                .map(|&d| wave_of[d] + 1)
                .max()
                .unwrap_or(0);
            wave_of[i] = wave;
            if waves.len() <= wave {
                waves.resize_with(wave + 1, Vec::new);
            }
            waves[wave].push(position);
        }
        waves
    }

    /// The number of resources.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the graph is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The resource at an address.
    pub fn get(&self, address: &Address) -> Option<&ResourceSpec> {
        self.index.get(address).map(|&i| &*self.nodes[i])
    }

    /// The direct dependencies of a resource, sorted by address.
    pub fn dependencies(&self, address: &Address) -> Vec<&Address> {
        match self.index.get(address) {
            Some(&i) => self.dependencies_of(i),
            None => Vec::new(),
        }
    }

    /// [`Graph::dependencies`] of the node at index `i` (already sorted by address).
    pub(crate) fn dependencies_of(&self, i: usize) -> Vec<&Address> {
        self.deps[i]
            .iter()
            .map(|&d| &self.nodes[d].address)
            .collect()
    }

    /// The node index of an address (what [`Graph::node_order`] and
    /// [`Graph::dependencies_of`] speak of).
    pub(crate) fn index_of(&self, address: &Address) -> Option<usize> {
        self.index.get(address).copied()
    }

    /// The node indexes in [`Graph::in_order`]'s order: `node_order()[p]` is the node at
    /// position `p`.
    pub(crate) fn node_order(&self) -> &[usize] {
        &self.order
    }

    /// The resource at node index `i`.
    pub(crate) fn node(&self, i: usize) -> &ResourceSpec {
        &self.nodes[i]
    }

    /// Every edge `(dependent, dependency)`, in topological order of the dependent.
    pub fn edges(&self) -> Vec<(&Address, &Address)> {
        let mut out = Vec::new();
        for &i in &self.order {
            for d in self.dependencies_of(i) {
                out.push((&self.nodes[i].address, d));
            }
        }
        out
    }
}

fn check_stack_name(name: &str, problems: &mut Vec<Problem>) {
    let bad = name.is_empty()
        || name.len() > 48
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if bad {
        problems.push(Problem {
            address: "stack".into(),
            field: "name".into(),
            message: format!(
                "`{name}` is not a valid stack name: use 1-48 lowercase letters, digits and `-`"
            ),
        });
    }
}

fn check_references(
    r: &ResourceSpec,
    specs: &[Arc<ResourceSpec>],
    index: &HashMap<Address, usize>,
    problems: &mut Vec<Problem>,
) {
    for (field, value) in &r.props {
        let mut seen = BTreeSet::new();
        value.visit_refs(&mut |reference| {
            if !seen.insert(reference) {
                return;
            }
            match index.get(&reference.address) {
                None => problems.push(Problem::new(
                    &r.address,
                    field,
                    format!(
                        "references {}, which is not in the stack",
                        reference.address
                    ),
                )),
                Some(&t) if !specs[t].schema.has_output(&reference.attribute) => {
                    problems.push(Problem::new(
                        &r.address,
                        field,
                        format!(
                            "references output `{}` of {}, which has no such output",
                            reference.attribute, reference.address
                        ),
                    ))
                }
                Some(&t) if t == index[&r.address] => problems.push(Problem::new(
                    &r.address,
                    field,
                    "references the resource itself".to_string(),
                )),
                Some(_) => {}
            }
        });
    }
    for d in &r.options.depends_on {
        if !index.contains_key(d) {
            problems.push(Problem::new(
                &r.address,
                "depends_on",
                format!("depends on {d}, which is not in the stack"),
            ));
        }
    }
}

fn check_cycles(specs: &[Arc<ResourceSpec>], deps: &[Vec<usize>], problems: &mut Vec<Problem>) {
    let mut g: DiGraph<usize, ()> = DiGraph::with_capacity(specs.len(), specs.len());
    for i in 0..specs.len() {
        g.add_node(i);
    }
    for (i, d) in deps.iter().enumerate() {
        for &j in d {
            g.add_edge(NodeIndex::new(i), NodeIndex::new(j), ());
        }
    }
    for scc in tarjan_scc(&g) {
        let members: Vec<usize> = scc.iter().map(|n| n.index()).collect();
        let self_loop = members.len() == 1 && deps[members[0]].contains(&members[0]);
        if members.len() < 2 && !self_loop {
            continue;
        }
        // Report once, on the smallest address, with the cycle spelled out from it.
        let start = *members
            .iter()
            .min_by_key(|&&i| &specs[i].address)
            .unwrap_or(&members[0]);
        let path = cycle_path(start, &members, deps);
        let text: Vec<String> = path.iter().map(|&i| specs[i].address.to_string()).collect();
        let via_depends_on = path.windows(2).any(|w| {
            specs[w[0]]
                .options
                .depends_on
                .contains(&specs[w[1]].address)
        });
        let field = if via_depends_on {
            "depends_on"
        } else {
            "references"
        };
        problems.push(Problem::new(
            &specs[start].address,
            field,
            format!("dependency cycle: {}", text.join(" -> ")),
        ));
    }
}

/// The shortest path from `start` back to itself inside one strongly connected component.
fn cycle_path(start: usize, members: &[usize], deps: &[Vec<usize>]) -> Vec<usize> {
    let inside: BTreeSet<usize> = members.iter().copied().collect();
    let mut prev: HashMap<usize, usize> = HashMap::default();
    let mut queue = VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for &m in &deps[n] {
            if !inside.contains(&m) {
                continue;
            }
            if m == start {
                let mut path = vec![start];
                let mut cur = n;
                while cur != start {
                    path.push(cur);
                    cur = prev[&cur];
                }
                path.push(start);
                let len = path.len();
                path[1..len - 1].reverse();
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = prev.entry(m) {
                e.insert(n);
                queue.push_back(m);
            }
        }
    }
    vec![start, start]
}

/// Kahn's algorithm with a min-heap on address rank: deterministic whatever the declaration
/// order. Returns the order and each node's rank.
fn topological_order(specs: &[Arc<ResourceSpec>], deps: &[Vec<usize>]) -> (Vec<usize>, Vec<usize>) {
    let mut rank: Vec<usize> = (0..specs.len()).collect();
    // Unstable: the addresses of the nodes ranked are distinct (duplicates fail validation).
    rank.sort_unstable_by(|&a, &b| specs[a].address.cmp(&specs[b].address));
    let mut rank_of = vec![0; specs.len()];
    for (r, &i) in rank.iter().enumerate() {
        rank_of[i] = r;
    }
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); specs.len()];
    let mut pending = vec![0usize; specs.len()];
    for (i, d) in deps.iter().enumerate() {
        pending[i] = d.len();
        for &j in d {
            dependents[j].push(i);
        }
    }
    let mut heap: BinaryHeap<Reverse<usize>> = (0..specs.len())
        .filter(|&i| pending[i] == 0)
        .map(|i| Reverse(rank_of[i]))
        .collect();
    let mut order = Vec::with_capacity(specs.len());
    while let Some(Reverse(r)) = heap.pop() {
        let i = rank[r];
        order.push(i);
        for &k in &dependents[i] {
            pending[k] -= 1;
            if pending[k] == 0 {
                heap.push(Reverse(rank_of[k]));
            }
        }
    }
    (order, rank_of)
}

/// Checks the declared moves and resolves their chains: every old address with the declared
/// address it ends at. A move is refused when its old address is still declared, when it
/// changes the kind, when one old address moves to two places, when two moves go to one
/// address, when moves go round in a circle, and when its chain ends at no declared resource.
fn resolve_moves(
    moves: &[Move],
    index: &HashMap<Address, usize>,
    problems: &mut Vec<Problem>,
) -> Vec<Move> {
    let mut next: BTreeMap<&Address, &Address> = BTreeMap::new();
    let mut into: HashMap<&Address, &Address> = HashMap::default();
    let mut bad: BTreeSet<&Address> = BTreeSet::new();
    for m in moves {
        let (from, to) = (&m.from, &m.to);
        let mut refuse = |message: String| {
            problems.push(Problem::new(from, "moved", message));
            bad.insert(from);
        };
        if from == to {
            refuse(format!("{from} is moved to itself"));
            continue;
        }
        if from.kind() != to.kind() {
            refuse(format!(
                "{from} is moved to {to}: a move keeps the object, so it can't change the kind \
                 (`{}` to `{}`)",
                from.kind(),
                to.kind()
            ));
        }
        if index.contains_key(from) {
            refuse(format!(
                "{from} is moved to {to} but is still declared: remove its declaration (the \
                 resource now lives at {to}), or remove the move"
            ));
        }
        match next.insert(from, to) {
            Some(other) if other != to => refuse(format!(
                "{from} is moved twice, to {other} and to {to}: an object can only go to one place"
            )),
            _ => {}
        }
        match into.insert(to, from) {
            Some(other) if other != from => refuse(format!(
                "{other} and {from} are both moved to {to}: only one object can be re-owned \
                 there"
            )),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (&from, &first) in &next {
        if bad.contains(from) {
            continue;
        }
        // Follow the chain to its end.
        let mut seen: BTreeSet<&Address> = BTreeSet::from([from]);
        let mut end = first;
        while let Some(&n) = next.get(end) {
            if !seen.insert(end) {
                break;
            }
            end = n;
        }
        if seen.contains(end) {
            problems.push(Problem::new(
                from,
                "moved",
                format!(
                    "the moves starting at {from} go round in a circle ({}): a chain of moves \
                     must end at a declared resource",
                    seen.iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        } else if !index.contains_key(end) {
            problems.push(Problem::new(
                from,
                "moved",
                if end == first {
                    format!("{from} is moved to {end}, which is not declared")
                } else {
                    format!("{from} is moved to {first}, and on to {end}, which is not declared")
                },
            ));
        } else {
            out.push(Move {
                from: from.clone(),
                to: end.clone(),
            });
        }
    }
    out
}

/// Checks the declared adoptions: each one's address is a declared resource (not a data
/// source), an address is adopted once (the same id declared twice counts once), and an id is
/// adopted at one address per provider. Every problem names the address and the id.
fn check_adoptions(
    adoptions: &[Adoption],
    specs: &[Arc<ResourceSpec>],
    index: &HashMap<Address, usize>,
    problems: &mut Vec<Problem>,
) -> Vec<Adoption> {
    let mut by_address: BTreeMap<&Address, &str> = BTreeMap::new();
    let mut by_id: BTreeMap<(&str, &str), &Address> = BTreeMap::new();
    let mut bad: BTreeSet<&Address> = BTreeSet::new();
    for a in adoptions {
        let (address, id) = (&a.address, a.id.as_str());
        let mut refuse = |message: String| {
            problems.push(Problem::new(address, "adopt", message));
            bad.insert(address);
        };
        if id.trim().is_empty() {
            refuse(format!(
                "{address} adopts an empty id: give the object's provider id"
            ));
            continue;
        }
        let Some(&i) = index.get(address) else {
            refuse(format!(
                "{address} adopts {id}, but {address} is not declared: declare the resource \
                 the object becomes (what `import` writes), or remove the adoption"
            ));
            continue;
        };
        let spec = &specs[i];
        if spec.schema.data_source {
            refuse(format!(
                "{address} adopts {id}, but {address} is a data source: it is looked up, never \
                 owned"
            ));
            continue;
        }
        match by_address.insert(address, id) {
            Some(other) if other != id => refuse(format!(
                "{address} adopts two objects, {other} and {id}: an address owns one object"
            )),
            _ => {}
        }
        match by_id.insert((spec.schema.provider, id), address) {
            Some(other) if other != address => refuse(format!(
                "{id} is adopted twice, as {other} and as {address}: an object belongs to one \
                 resource"
            )),
            _ => {}
        }
    }
    // Only used when there are no problems (the graph is built then).
    by_address
        .into_iter()
        .filter(|(a, _)| !bad.contains(a))
        .map(|(a, id)| Adoption {
            address: a.clone(),
            id: id.to_string(),
        })
        .collect()
}
