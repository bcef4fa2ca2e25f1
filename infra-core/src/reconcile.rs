//! The reconciler: walks a plan's operations in dependency order (deletions in reverse), runs
//! independent ones concurrently under a semaphore, retries what providers classify as retryable
//! with bounded exponential backoff and full jitter, skips the dependents of a failed operation
//! while independent branches carry on, resolves outputs into dependents as they become known, and
//! reports. Every operation is idempotent with respect to a re-run: a re-plan after any failure
//! sees what was done (ownership tags) and converges the rest.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::stream::{FuturesUnordered, StreamExt};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::dsl::Address;
use crate::graph::Graph;
use crate::plan::{changed_fields, protect_secrets, Action, ObservedState, Plan};
use crate::provider::{ErrorClass, Observed, OpContext, Provider, ProviderError, Resolved};
use crate::retry::{self, WaitStatus};

pub use crate::retry::RetryPolicy;

/// Options for applying.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// How many provider calls may be in flight at once.
    pub concurrency: usize,
    /// Retries of retryable errors.
    pub retry: RetryPolicy,
    /// How often an operation still running is reported to the observer
    /// ([`ApplyObserver::op_waiting`]), with what it waits for. Default: 10 s.
    pub heartbeat: Duration,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            concurrency: 10,
            retry: RetryPolicy::default(),
            heartbeat: Duration::from_secs(10),
        }
    }
}

/// One provider call kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// A create.
    Create,
    /// An in-place update.
    Update,
    /// A delete.
    Delete,
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpKind::Create => "create",
            OpKind::Update => "update",
            OpKind::Delete => "delete",
        })
    }
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum OpStatus {
    /// Done.
    Succeeded,
    /// An update found nothing to change once references were resolved.
    NothingToDo,
    /// Failed; the error names the API code and message.
    Failed {
        /// What went wrong.
        error: String,
    },
    /// Not attempted because something it depends on failed.
    Skipped {
        /// Why.
        because: String,
    },
}

/// The outcome of one operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OpOutcome {
    /// The resource.
    pub address: String,
    /// The call.
    pub op: OpKind,
    /// The planned change it belongs to.
    pub change: Action,
    /// How it ended.
    #[serde(flatten)]
    pub status: OpStatus,
    /// Attempts made (0 when skipped).
    pub attempts: u32,
    /// The object's id after the operation (or the deleted object's id).
    pub id: Option<String>,
    /// Wall time, milliseconds.
    pub duration_ms: u64,
}

/// Counts for the summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Objects created.
    pub added: usize,
    /// Objects updated.
    pub changed: usize,
    /// Objects deleted.
    pub destroyed: usize,
    /// Operations failed.
    pub failed: usize,
    /// Operations skipped.
    pub skipped: usize,
}

/// What an apply did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApplyReport {
    /// The stack.
    pub stack: String,
    /// Every operation's outcome, in plan order.
    pub outcomes: Vec<OpOutcome>,
    /// API calls made during the apply, per provider (those that count them).
    pub api_calls: BTreeMap<String, u64>,
    /// Wall time, milliseconds.
    pub duration_ms: u64,
}

impl ApplyReport {
    /// True when nothing failed or was skipped.
    pub fn is_success(&self) -> bool {
        self.outcomes
            .iter()
            .all(|o| matches!(o.status, OpStatus::Succeeded | OpStatus::NothingToDo))
    }
    /// Counts by result.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for o in &self.outcomes {
            match (&o.status, o.op) {
                (OpStatus::Succeeded, OpKind::Create) => c.added += 1,
                (OpStatus::Succeeded, OpKind::Update) => c.changed += 1,
                (OpStatus::Succeeded, OpKind::Delete) => c.destroyed += 1,
                (OpStatus::Failed { .. }, _) => c.failed += 1,
                (OpStatus::Skipped { .. }, _) => c.skipped += 1,
                _ => {}
            }
        }
        c
    }
}

/// One JSON audit event per operation, emitted on the `infra::audit` tracing target and handed
/// to the [`ApplyObserver`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEvent {
    /// Milliseconds since the Unix epoch.
    pub ts_unix_ms: u64,
    /// The stack.
    pub stack: String,
    /// The operation.
    #[serde(flatten)]
    pub outcome: OpOutcome,
}

/// Hooks for progress display and audit logging. All methods default to nothing.
pub trait ApplyObserver: Send + Sync {
    /// Called once with the number of operations.
    fn started(&self, total: usize) {
        let _ = total;
    }
    /// An operation begins: its first provider call got one of the concurrency slots (one
    /// still queued behind the limit has not begun; heartbeats say it waits for a slot).
    fn op_started(&self, address: &str, op: OpKind) {
        let _ = (address, op);
    }
    /// A retryable error; the operation will be tried again after `delay`.
    fn retrying(
        &self,
        address: &str,
        op: OpKind,
        attempt: u32,
        error: &ProviderError,
        delay: Duration,
    ) {
        let _ = (address, op, attempt, error, delay);
    }
    /// An operation is still running, every [`ApplyOptions::heartbeat`]: how long it has run and
    /// what it waits for, when the provider said (a NAT gateway becoming available, a service's
    /// tasks converging; see [`crate::retry::waiting_for`]).
    fn op_waiting(&self, address: &str, op: OpKind, elapsed: Duration, waiting_for: Option<&str>) {
        let _ = (address, op, elapsed, waiting_for);
    }
    /// An operation ended (also called for skipped ones).
    fn op_finished(&self, event: &AuditEvent) {
        let _ = event;
    }
}

/// An observer that does nothing.
pub struct NoObserver;
impl ApplyObserver for NoObserver {}

/// Why an apply could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The plan has blocking errors (e.g. a protected resource would be destroyed).
    #[error("the plan cannot be applied:\n  - {}", .0.join("\n  - "))]
    Blocked(Vec<String>),
    /// A change names a provider that isn't registered.
    #[error("no provider `{provider}` is registered (needed by {address})")]
    MissingProvider {
        /// The provider.
        provider: String,
        /// Who needs it.
        address: String,
    },
    /// The operations can't be ordered (should not happen; a bug report is welcome).
    #[error("the operations of this plan form a cycle through {0}")]
    Cycle(String),
}

/// Providers by name.
pub type Providers = HashMap<String, Arc<dyn Provider>>;

#[derive(Debug)]
struct Op {
    address: Address,
    kind: OpKind,
    change: Action,
    provider: String,
    deps: Vec<usize>,
    dependents: Vec<usize>,
}

/// Applies `plan`, computed from `graph` and `observed`. See the [module docs](self).
pub async fn apply(
    plan: &Plan,
    graph: &Graph,
    observed: &ObservedState,
    providers: &Providers,
    opts: &ApplyOptions,
    observer: &dyn ApplyObserver,
) -> Result<ApplyReport, ReconcileError> {
    let blockers = plan.blockers();
    if !blockers.is_empty() {
        return Err(ReconcileError::Blocked(blockers));
    }
    let started = Instant::now();
    let ops = build_ops(plan, graph, observed)?;
    for op in &ops {
        if !providers.contains_key(&op.provider) {
            return Err(ReconcileError::MissingProvider {
                provider: op.provider.clone(),
                address: op.address.to_string(),
            });
        }
    }
    let calls_before: BTreeMap<String, u64> = providers
        .iter()
        .filter_map(|(n, p)| p.api_calls().map(|c| (n.clone(), c)))
        .collect();

    let run_id: String = {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("{nanos:x}{:08x}", rand::rng().random::<u32>())
    };
    let outputs: Mutex<HashMap<Address, Observed>> = Mutex::new(
        observed
            .resources
            .iter()
            .map(|(a, o)| (a.clone(), o.clone()))
            .collect(),
    );
    let semaphore = Semaphore::new(opts.concurrency.max(1));
    let env = Env {
        stack: plan.stack.clone(),
        graph,
        observed,
        providers,
        opts,
        observer,
        outputs,
        semaphore,
        run_id,
        replaced: plan
            .actionable()
            .filter(|c| c.action.is_replace())
            .map(|c| c.address.clone())
            .collect(),
    };

    observer.started(ops.len());
    let mut outcomes: Vec<Option<OpOutcome>> = vec![None; ops.len()];
    let mut pending: Vec<usize> = ops.iter().map(|o| o.deps.len()).collect();
    let mut ready: VecDeque<usize> = (0..ops.len()).filter(|&i| pending[i] == 0).collect();
    let mut running = FuturesUnordered::new();

    let mut in_flight: BTreeMap<usize, (tokio::time::Instant, WaitStatus)> = BTreeMap::new();
    let mut heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + opts.heartbeat,
        opts.heartbeat.max(Duration::from_millis(10)),
    );
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        while let Some(i) = ready.pop_front() {
            let status = WaitStatus::new();
            in_flight.insert(i, (tokio::time::Instant::now(), status.clone()));
            running.push(status.scope(run_op(&env, &ops[i], i)));
        }
        if running.is_empty() {
            break;
        }
        let next = tokio::select! {
            next = running.next() => next,
            _ = heartbeat.tick() => {
                for (&i, (since, status)) in &in_flight {
                    let waiting = status.get();
                    let address = ops[i].address.to_string();
                    tracing::info!(address = %address, op = %ops[i].kind, elapsed_s = since.elapsed().as_secs(), waiting_for = waiting.as_deref().unwrap_or(""), "still running");
                    observer.op_waiting(&address, ops[i].kind, since.elapsed(), waiting.as_deref());
                }
                continue;
            }
        };
        let Some((i, outcome)) = next else {
            break;
        };
        in_flight.remove(&i);
        let failed = matches!(outcome.status, OpStatus::Failed { .. });
        env.finish(&outcome);
        outcomes[i] = Some(outcome);
        if failed {
            skip_dependents(&env, &ops, i, &mut outcomes);
        } else {
            for &d in &ops[i].dependents {
                pending[d] -= 1;
                if pending[d] == 0 && outcomes[d].is_none() {
                    ready.push_back(d);
                }
            }
        }
    }

    let api_calls = providers
        .iter()
        .filter_map(|(n, p)| {
            p.api_calls()
                .map(|c| (n.clone(), c - calls_before.get(n).copied().unwrap_or(0)))
        })
        .collect();
    Ok(ApplyReport {
        stack: plan.stack.clone(),
        outcomes: outcomes.into_iter().flatten().collect(),
        api_calls,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

struct Env<'a> {
    stack: String,
    graph: &'a Graph,
    observed: &'a ObservedState,
    providers: &'a Providers,
    opts: &'a ApplyOptions,
    observer: &'a dyn ApplyObserver,
    outputs: Mutex<HashMap<Address, Observed>>,
    semaphore: Semaphore,
    run_id: String,
    /// Resources this apply replaces: a dependent's fields that refer to one are sent to the
    /// provider even when the new object's id equals the old one (a name-based id), because
    /// the relationship (a role in a profile, a policy attachment) went with the old object.
    replaced: HashSet<Address>,
}

impl Env<'_> {
    fn finish(&self, outcome: &OpOutcome) {
        let event = AuditEvent {
            ts_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            stack: self.stack.clone(),
            outcome: outcome.clone(),
        };
        let json = serde_json::to_string(&event).unwrap_or_default();
        match &outcome.status {
            OpStatus::Failed { error } => {
                tracing::error!(target: "infra::audit", address = %outcome.address, op = %outcome.op, %error, audit = %json, "change failed")
            }
            OpStatus::Skipped { because } => {
                tracing::warn!(target: "infra::audit", address = %outcome.address, op = %outcome.op, %because, audit = %json, "change skipped")
            }
            _ => {
                tracing::info!(target: "infra::audit", address = %outcome.address, op = %outcome.op, audit = %json, "change done")
            }
        }
        self.observer.op_finished(&event);
    }

    fn token(&self, address: &Address, op: OpKind) -> String {
        let digest = Sha256::digest(format!("{}/{}/{}/{}", self.run_id, self.stack, address, op));
        format!("infra-{}", hex::encode(&digest[..16]))
    }

    async fn call<T, F, Fut>(
        &self,
        address: &Address,
        op: OpKind,
        mut f: F,
    ) -> (Result<T, ProviderError>, u32)
    where
        F: FnMut(OpContext) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let token = self.token(address, op);
        retry::run(
            &self.opts.retry,
            |attempt| {
                let ctx = OpContext {
                    stack: self.stack.clone(),
                    idempotency_token: token.clone(),
                    attempt,
                };
                let call = f(ctx);
                async move {
                    if self.semaphore.available_permits() == 0 {
                        retry::waiting_for(format!(
                            "a free slot ({} at a time)",
                            self.opts.concurrency.max(1)
                        ));
                    }
                    let _permit = self.semaphore.acquire().await;
                    retry::done_waiting();
                    if attempt == 1 {
                        self.begin(address, op);
                    }
                    call.await
                }
            },
            ProviderError::is_retryable,
            |attempt, e, delay| {
                tracing::warn!(address = %address, %op, attempt, error = %e, delay_ms = delay.as_millis() as u64, "retryable error; backing off");
                self.observer
                    .retrying(&address.to_string(), op, attempt, e, delay);
            },
        )
        .await
    }

    /// An operation begins: when its first provider call gets a slot (an operation queued
    /// behind the concurrency limit has not started), or when it finishes without any call.
    fn begin(&self, address: &Address, op: OpKind) {
        self.observer.op_started(&address.to_string(), op);
        tracing::info!(address = %address, op = %op, "starting");
    }

    fn resolve(&self, address: &Address) -> Result<Resolved, String> {
        let spec = self
            .graph
            .get(address)
            .ok_or_else(|| format!("{address} is not declared"))?;
        let outputs = self.outputs.lock().unwrap_or_else(|e| e.into_inner());
        let mut missing = Vec::new();
        let props = spec
            .props
            .iter()
            .map(|(k, v)| {
                let r =
                    v.resolve(&|r| outputs.get(&r.address).and_then(|o| o.output(&r.attribute)));
                r.visit_refs(&mut |m| missing.push(m.to_string()));
                (k.clone(), r)
            })
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "unresolved reference{}: {}",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", ")
            ));
        }
        let protect = spec.options.protect;
        Ok(Resolved {
            address: address.clone(),
            schema: spec.schema,
            props: protect_secrets(spec, props),
            protect,
        })
    }
}

async fn run_op(env: &Env<'_>, op: &Op, index: usize) -> (usize, OpOutcome) {
    let started = Instant::now();
    let provider = &env.providers[&op.provider];
    let (status, attempts, id) = match op.kind {
        OpKind::Create | OpKind::Update => match env.resolve(&op.address) {
            Err(e) => (
                OpStatus::Failed {
                    error: format!("UnresolvedReference: {e}"),
                },
                0,
                None,
            ),
            Ok(desired) if op.kind == OpKind::Create => {
                let (r, n) = env
                    .call(&op.address, op.kind, |ctx| {
                        let desired = &desired;
                        async move { provider.create(&ctx, desired).await }
                    })
                    .await;
                record(env, &op.address, r, n)
            }
            Ok(desired) => {
                let current = env.observed.resources.get(&op.address).cloned();
                let spec = env.graph.get(&op.address);
                match (current, spec) {
                    (Some(current), Some(spec)) => {
                        let mut changed = changed_fields(spec, &desired.props, &current);
                        for (field, value) in &spec.props {
                            let mut refers = false;
                            value.visit_refs(&mut |r| refers |= env.replaced.contains(&r.address));
                            if refers && !changed.contains(field) {
                                changed.push(field.clone());
                            }
                        }
                        changed.sort();
                        if changed.is_empty() {
                            (OpStatus::NothingToDo, 0, Some(current.id.clone()))
                        } else if let Err(e) = force_new_guard(&desired, &changed) {
                            (
                                OpStatus::Failed {
                                    error: e.to_string(),
                                },
                                0,
                                Some(current.id.clone()),
                            )
                        } else {
                            let (r, n) = env.call(&op.address, op.kind, |ctx| {
                                let (current, desired, changed) = (&current, &desired, &changed);
                                async move { provider.update(&ctx, current, desired, changed).await }
                            }).await;
                            record(env, &op.address, r, n)
                        }
                    }
                    _ => (
                        OpStatus::Failed {
                            error: "NotFound: the object to update was not read".into(),
                        },
                        0,
                        None,
                    ),
                }
            }
        },
        OpKind::Delete => match env.observed.resources.get(&op.address) {
            None => (OpStatus::NothingToDo, 0, None),
            Some(current) => {
                let (r, n) = env
                    .call(&op.address, op.kind, |ctx| async move {
                        provider.delete(&ctx, current).await
                    })
                    .await;
                match r {
                    Ok(()) => (OpStatus::Succeeded, n, Some(current.id.clone())),
                    Err(e) if e.class == ErrorClass::NotFound => {
                        (OpStatus::Succeeded, n, Some(current.id.clone()))
                    }
                    Err(e) => (
                        OpStatus::Failed {
                            error: e.to_string(),
                        },
                        n,
                        Some(current.id.clone()),
                    ),
                }
            }
        },
    };
    if attempts == 0 {
        // No provider call was made (nothing to do, or it failed before any): it begins and
        // ends now.
        env.begin(&op.address, op.kind);
    }
    let outcome = OpOutcome {
        address: op.address.to_string(),
        op: op.kind,
        change: op.change,
        status,
        attempts,
        id,
        duration_ms: started.elapsed().as_millis() as u64,
    };
    (index, outcome)
}

/// Refuses an in-place update of a field that forces replacement: the plan replaces such an
/// object, so an update that would change one was planned from a stale read or by hand, and a
/// provider must never be asked for it (AWS and Swarm would reject it half-way, or worse,
/// accept part of it).
pub fn force_new_guard(desired: &Resolved, changed: &[String]) -> Result<(), ProviderError> {
    match changed.iter().find(|f| desired.schema.is_force_new(f)) {
        Some(f) => Err(ProviderError::fatal(
            "ForceNew",
            format!(
                "{}: `{f}` can't change in place; plan again to replace it",
                desired.address
            ),
        )),
        None => Ok(()),
    }
}

fn record(
    env: &Env<'_>,
    address: &Address,
    r: Result<Observed, ProviderError>,
    attempts: u32,
) -> (OpStatus, u32, Option<String>) {
    match r {
        Ok(obs) => {
            let id = obs.id.clone();
            env.outputs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(address.clone(), obs);
            (OpStatus::Succeeded, attempts, Some(id))
        }
        Err(e) => (
            OpStatus::Failed {
                error: e.to_string(),
            },
            attempts,
            None,
        ),
    }
}

fn skip_dependents(env: &Env<'_>, ops: &[Op], failed: usize, outcomes: &mut [Option<OpOutcome>]) {
    let cause = format!("{} ({}) failed", ops[failed].address, ops[failed].kind);
    let mut stack = ops[failed].dependents.clone();
    while let Some(i) = stack.pop() {
        if outcomes[i].is_some() {
            continue;
        }
        let outcome = OpOutcome {
            address: ops[i].address.to_string(),
            op: ops[i].kind,
            change: ops[i].change,
            status: OpStatus::Skipped {
                because: format!("depends on {cause}"),
            },
            attempts: 0,
            id: None,
            duration_ms: 0,
        };
        env.finish(&outcome);
        outcomes[i] = Some(outcome);
        stack.extend(ops[i].dependents.iter().copied());
    }
}

/// Turns a plan into operations with their ordering constraints.
fn build_ops(
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
        match c.action {
            Action::NoOp => {}
            Action::Create => {
                new_op.insert(
                    address.clone(),
                    push(&mut ops, address, OpKind::Create, c.action, &c.provider),
                );
            }
            Action::Update => {
                new_op.insert(
                    address.clone(),
                    push(&mut ops, address, OpKind::Update, c.action, &c.provider),
                );
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
