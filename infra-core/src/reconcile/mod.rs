//! The reconciler: walks a plan's operations in dependency order (deletions in reverse), runs
//! independent ones concurrently under a semaphore, retries what providers classify as retryable
//! with bounded exponential backoff and full jitter, skips the dependents of a failed operation
//! while independent branches carry on, resolves outputs into dependents as they become known, and
//! reports. Every operation is idempotent with respect to a re-run: a re-plan after any failure
//! sees what was done (ownership tags) and converges the rest.
//!
//! The parts: `ops` turns the plan into ordered operations, `run` performs one operation
//! (resolving its references, retrying, recording outputs and audit events), `report` and
//! `observer` are what an apply tells its caller.

mod observer;
mod ops;
mod report;
mod run;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};

use crate::graph::Graph;
use crate::plan::{ObservedState, Plan};
use crate::provider::Provider;
use crate::retry::WaitStatus;

pub use crate::retry::RetryPolicy;
pub use observer::{ApplyObserver, NoObserver};
pub use report::{ApplyReport, AuditEvent, Counts, OpKind, OpOutcome, OpStatus};
pub use run::force_new_guard;

use ops::build_ops;
use run::{run_op, skip_dependents, Env};

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

/// Why an apply could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    // Who applies: this process, and the identity each provider acts as (before the call
    // counts are taken: asking is not part of the apply's work).
    let actor = crate::audit::actor_for(providers).await;
    let calls_before: BTreeMap<String, u64> = providers
        .iter()
        .filter_map(|(n, p)| p.api_calls().map(|c| (n.clone(), c)))
        .collect();

    let env = Env::new(plan, graph, observed, providers, opts, observer, actor);

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
        // An operation that ends at the instant a heartbeat is due is reported as ended, not
        // as still running: finished operations are taken first.
        let next = tokio::select! {
            biased;
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
