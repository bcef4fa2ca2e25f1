//! Performing one operation: its references resolved from the outputs known so far, the
//! provider called under the concurrency limit with retries and an idempotency token, its
//! outputs recorded for its dependents, its audit event emitted.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::ops::Op;
use super::{ApplyObserver, ApplyOptions, AuditEvent, OpKind, OpOutcome, OpStatus, Providers};
use crate::audit::{Actor, AuditEntry};
use crate::dsl::Address;
use crate::graph::Graph;
use crate::plan::{changed_fields, protect_secrets, Change, ObservedState, Plan};
use crate::provider::{ErrorClass, Observed, OpContext, ProviderError, Resolved};
use crate::retry;

pub(super) struct Env<'a> {
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
    /// Who applies, for the audit events.
    actor: Actor,
    /// The plan's digest, for the audit events.
    plan_digest: String,
    /// The planned changes by address (kind, provider and field diff of the audit events).
    changes: HashMap<String, &'a Change>,
}

impl<'a> Env<'a> {
    pub(super) fn new(
        plan: &'a Plan,
        graph: &'a Graph,
        observed: &'a ObservedState,
        providers: &'a Providers,
        opts: &'a ApplyOptions,
        observer: &'a dyn ApplyObserver,
        actor: Actor,
    ) -> Self {
        // Idempotency tokens are unique to this apply: a later apply creates anew.
        let run_id = {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            format!("{nanos:x}{:08x}", rand::rng().random::<u32>())
        };
        Env {
            stack: plan.stack.clone(),
            graph,
            observed,
            providers,
            opts,
            observer,
            outputs: Mutex::new(
                observed
                    .resources
                    .iter()
                    .map(|(a, o)| (a.clone(), o.clone()))
                    .collect(),
            ),
            semaphore: Semaphore::new(opts.concurrency.max(1)),
            run_id,
            replaced: plan
                .actionable()
                .filter(|c| c.action.is_replace())
                .map(|c| c.address.clone())
                .collect(),
            actor,
            plan_digest: crate::audit::plan_digest(plan),
            changes: plan
                .changes
                .iter()
                .map(|c| (c.address.to_string(), c))
                .collect(),
        }
    }

    /// An operation ended: its audit event goes to the log and the observer.
    pub(super) fn finish(&self, outcome: &OpOutcome) {
        let change = self.changes.get(&outcome.address);
        let event = AuditEvent {
            ts_unix_ms: crate::audit::now_unix_ms(),
            stack: self.stack.clone(),
            actor: self.actor.clone(),
            plan_digest: self.plan_digest.clone(),
            kind: change.map(|c| c.kind.clone()).unwrap_or_default(),
            provider: change.map(|c| c.provider.clone()).unwrap_or_default(),
            fields: change.map(|c| c.fields.clone()).unwrap_or_default(),
            outcome: outcome.clone(),
        };
        let entry = AuditEntry::Change(event);
        entry.trace();
        if let AuditEntry::Change(event) = &entry {
            self.observer.op_finished(event);
        }
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

pub(super) async fn run_op(env: &Env<'_>, op: &Op, index: usize) -> (usize, OpOutcome) {
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
                // After a move, the object is the new address's; after an adoption, it is the
                // adopted object, as the adoption returned it.
                let adopted = env
                    .changes
                    .get(&op.address.to_string())
                    .is_some_and(|c| c.adopted.is_some());
                let current = if adopted {
                    env.outputs
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(&op.address)
                        .cloned()
                } else {
                    None
                };
                let current = current.or_else(|| {
                    env.observed.resources.get(&op.address).map(|o| Observed {
                        address: op.address.clone(),
                        ..o.clone()
                    })
                });
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
        OpKind::Move => match env.observed.resources.get(&op.address) {
            None => (
                OpStatus::Failed {
                    error: "NotFound: the object to move was not read".into(),
                },
                0,
                None,
            ),
            Some(current) => {
                let (r, n) = env
                    .call(&op.address, op.kind, |ctx| async move {
                        provider.move_to(&ctx, current, &op.address).await
                    })
                    .await;
                record(env, &op.address, r, n)
            }
        },
        OpKind::Adopt => match env.observed.resources.get(&op.address) {
            None => (
                OpStatus::Failed {
                    error: "NotFound: the object to adopt was not read".into(),
                },
                0,
                None,
            ),
            Some(current) => {
                let (r, n) = env
                    .call(&op.address, op.kind, |ctx| async move {
                        provider.adopt(&ctx, current, &op.address).await
                    })
                    .await;
                record(env, &op.address, r, n)
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

pub(super) fn skip_dependents(
    env: &Env<'_>,
    ops: &[Op],
    failed: usize,
    outcomes: &mut [Option<OpOutcome>],
) {
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
