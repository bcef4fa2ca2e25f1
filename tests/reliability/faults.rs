//! Fault injection: the production stack's AWS part (`--only aws`) applied through the fault proxy
//! (`test-support/src/proxy.rs`) in front of a private moto, with 10–20 % of the AWS calls failing
//! (throttling, 500/503, connection resets before the request, responses lost after moto served
//! it) and some latency spikes, for as many seeded iterations as fit in the time budget.
//!
//! Faults are the proxy's chaos mix (the four kinds equally likely) plus 3 % latency spikes of
//! 300 ms, except every fourth iteration, where every fault is a lost response of a write (the
//! change happened, the client never heard): the hardest case for idempotency.
//!
//! Per iteration (a new stack name each time):
//! 1. with faults on, plan and apply (every other iteration with 2 attempts per operation
//!    instead of 8, so that runs also stop halfway): either it converges, or it stops with a clear report
//!    (every failure names the resource and the AWS or transport error that was injected;
//!    anything else is a bug, and the test says which);
//! 2. the invariants hold, checked on moto directly: no `infra:id` held twice, no new untagged
//!    object, the objects made by hand before the runs untouched, the lock released;
//! 3. with faults off, a new run (a new provider, as a new process would be) converges, a
//!    re-plan is empty, and exactly the declared objects exist, once each;
//! 4. with faults off, destroy: nothing of the stack is left, the invariants still hold.
//!
//! Budget: `INFRA_FAULT_SECS` seconds of iterations (default 180); at least 3 iterations run.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use infra::core::engine::{Engine, Error as EngineError};
use infra::core::graph::Graph;
use infra::core::plan::PlanOptions;
use infra::core::reconcile::{ApplyReport, NoObserver, OpStatus};
use infra::core::render::{plan_text, report_text};
use infra::core::Stack;

use crate::env::{aws_engine, private_moto, production, register_node_image, say, stack_name};
use crate::inventory::{compare_declared, leftovers, violations, Direct, Foreign, Inventory};
use crate::proxy::{Counts, FaultConfig, FaultProxy};

/// Error codes the proxy injects, as the provider reports them (`<code>: <operation>: …`).
const INJECTED: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    // REST-JSON (Lambda, API Gateway v2) throttling.
    "TooManyRequestsException",
    "InternalError",
    "ServiceUnavailable",
    "DispatchFailure",
    "HTTP500",
    "HTTP502",
    "HTTP503",
    "Timeout",
];

fn injected(error: &str) -> bool {
    INJECTED.iter().any(|c| error.contains(c))
}

/// How a run ended.
enum Run {
    Converged,
    /// The plan (a read or the AMI lookup), or the apply's re-read under the lock, failed:
    /// nothing was changed.
    PlanFailed(String),
    /// The lock could not be taken (the lock calls failed).
    LockFailed(String),
    /// The apply ran and some operations failed (their dependents skipped).
    ApplyFailed(ApplyReport),
    /// Anything else: a bug.
    Other(String),
}

async fn run(engine: &Engine, stack: &Stack, opts: &PlanOptions) -> Run {
    let planned = match engine.plan(stack, opts).await {
        Ok(p) => p,
        Err(e) => return Run::PlanFailed(e.to_string()),
    };
    if !planned.plan.blockers().is_empty() {
        return Run::Other(format!(
            "the plan is blocked: {:?}",
            planned.plan.blockers()
        ));
    }
    match engine.apply(&planned, &NoObserver).await {
        Ok(r) if r.is_success() => Run::Converged,
        Ok(r) => Run::ApplyFailed(r),
        Err(e @ (EngineError::Locked { .. } | EngineError::LockFailed { .. })) => {
            Run::LockFailed(e.to_string())
        }
        // The apply re-reads the stack under its lock before changing anything: a read failure
        // there stops the run like one at the plan (nothing was changed).
        Err(e @ EngineError::Read { .. }) => Run::PlanFailed(e.to_string()),
        Err(e) => Run::Other(format!("{e}\nplan:\n{}", plan_text(&planned.plan))),
    }
}

/// Why a stopped run's report is not "clear", if it isn't: every failure must name its
/// resource and an injected error, every skip the failure it depends on.
fn unclear(report: &ApplyReport) -> Vec<String> {
    let mut out = Vec::new();
    for o in &report.outcomes {
        match &o.status {
            OpStatus::Failed { error } if !injected(error) => out.push(format!(
                "{} ({}) failed with an error the proxy did not inject: {error}",
                o.address, o.op
            )),
            OpStatus::Skipped { because } if !because.contains("depends on") => {
                out.push(format!("{} skipped without a cause: {because}", o.address))
            }
            _ => {}
        }
    }
    out
}

fn sub(a: &Counts, b: &Counts) -> Counts {
    Counts {
        requests: a.requests - b.requests,
        forwarded: a.forwarded - b.forwarded,
        delivered: a.delivered - b.delivered,
        throttled: a.throttled - b.throttled,
        server_errors: a.server_errors - b.server_errors,
        resets_before: a.resets_before - b.resets_before,
        lost_responses: a.lost_responses - b.lost_responses,
        spikes: a.spikes - b.spikes,
        upstream_errors: a.upstream_errors - b.upstream_errors,
    }
}

fn add(a: &mut Counts, b: &Counts) {
    a.requests += b.requests;
    a.forwarded += b.forwarded;
    a.delivered += b.delivered;
    a.throttled += b.throttled;
    a.server_errors += b.server_errors;
    a.resets_before += b.resets_before;
    a.lost_responses += b.lost_responses;
    a.spikes += b.spikes;
    a.upstream_errors += b.upstream_errors;
}

/// True for an action that changes something (a lost response there is the dangerous case).
fn is_write(action: &str) -> bool {
    !["Describe", "List", "Get"]
        .iter()
        .any(|p| action.starts_with(p))
}

#[derive(Default)]
struct Tally {
    iterations: u32,
    converged_under_faults: u32,
    plan_failed: u32,
    lock_failed: u32,
    apply_failed: u32,
    failed_ops: usize,
    faults: Counts,
    lost_writes: u64,
    lost_creates: u64,
    lost_writes_iterations: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_part_converges_under_injected_faults_without_duplicates_orphans_or_foreign_changes(
) {
    let test = "faults::the_aws_part_converges_under_injected_faults";
    let Some(moto) = private_moto(test) else {
        return;
    };
    let budget = Duration::from_secs(
        std::env::var("INFRA_FAULT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(180),
    );
    let started = Instant::now();
    register_node_image(&moto.url).await;
    let direct = Direct::new(&moto.url).await;
    let foreign = Foreign::create(&direct, "faults").await;
    let proxy = FaultProxy::start(&moto.url, FaultConfig::transparent())
        .await
        .expect("proxy");
    let only_aws = PlanOptions {
        only: BTreeSet::from(["aws".to_string()]),
        ..PlanOptions::default()
    };
    let destroy = PlanOptions {
        destroy: true,
        allow_destroy_all: true,
        ..only_aws.clone()
    };

    let mut t = Tally::default();
    let mut problems: Vec<String> = Vec::new();
    let mut i = 0u64;
    let mut writes_seen: BTreeSet<String> = BTreeSet::new();
    while i < 3 || started.elapsed() < budget {
        let seed = 7000 + i;
        let rate = [0.10, 0.15, 0.20][(i % 3) as usize];
        let name = stack_name("rf", i);
        let stack = production(&name);
        let declared: BTreeSet<String> = Graph::build(&stack)
            .expect("the production stack is valid")
            .in_order()
            .filter(|r| r.schema.provider == "aws" && !r.schema.data_source)
            .map(|r| r.address.to_string())
            .collect();
        let label = format!(
            "iteration {i} (stack {name}, seed {seed}, {:.0} % faults)",
            rate * 100.0
        );
        let before = Inventory::take(&direct).await;

        // 1. Faults on.
        let mut chaos = FaultConfig::chaos(seed, rate);
        chaos.spike_rate = 0.03;
        chaos.spike = Duration::from_millis(300);
        // Every fourth iteration, all the faults are lost responses of writes (the create or
        // change happened, the client never heard): the hardest case for idempotency.
        if i % 4 == 3 && !writes_seen.is_empty() {
            chaos = FaultConfig {
                seed,
                lost_response_rate: rate,
                only_actions: Some(writes_seen.iter().cloned().collect()),
                ..FaultConfig::transparent()
            };
            t.lost_writes_iterations += 1;
        }
        let stats0 = proxy.stats();
        proxy.set_config(chaos);
        // Every other iteration gives up early (2 attempts per operation instead of 8), so that
        // runs also stop halfway and the converging run starts from a partial apply.
        let attempts = if i % 2 == 1 { 2 } else { 8 };
        let engine = aws_engine(&proxy.url(), attempts).await;
        let outcome =
            tokio::time::timeout(Duration::from_secs(180), run(&engine, &stack, &only_aws))
                .await
                .unwrap_or_else(|_| Run::Other("the run hung for 180 s".into()));
        proxy.set_config(FaultConfig::transparent());
        let stats1 = proxy.stats();
        add(&mut t.faults, &sub(&stats1.total, &stats0.total));
        for (action, c) in &stats1.per_action {
            let lost = c.lost_responses - stats0.action(action).lost_responses;
            if is_write(action) {
                writes_seen.insert(action.clone());
                t.lost_writes += lost;
                if action.starts_with("Create")
                    || action.starts_with("Allocate")
                    || action.starts_with("Put")
                {
                    t.lost_creates += lost;
                }
            }
        }
        match &outcome {
            Run::Converged => t.converged_under_faults += 1,
            Run::PlanFailed(e) => {
                t.plan_failed += 1;
                if !injected(e) || !e.contains("provider `aws`") && !e.contains("data source") {
                    problems.push(format!("{label}: unclear plan failure: {e}"));
                }
            }
            Run::LockFailed(e) => {
                t.lock_failed += 1;
                if !injected(e) || !e.contains("taking the stack's lock in provider `aws`") {
                    problems.push(format!("{label}: unclear lock failure: {e}"));
                }
            }
            Run::ApplyFailed(r) => {
                t.apply_failed += 1;
                t.failed_ops += r.counts().failed;
                let text = report_text(r);
                for u in unclear(r) {
                    problems.push(format!("{label}: {u}\n{text}"));
                }
                if !text.contains("Re-run to converge the rest") {
                    problems.push(format!(
                        "{label}: the report doesn't say what to do:\n{text}"
                    ));
                }
            }
            Run::Other(e) => problems.push(format!("{label}: the run stopped unexpectedly: {e}")),
        }
        let after_faults = Inventory::take(&direct).await;
        let mut found = violations(&name, &before, &after_faults, &foreign);
        if matches!(outcome, Run::Converged) {
            found.extend(leftovers(&name, &after_faults));
        }
        for v in found {
            problems.push(format!("{label}, after the faulty run: {v}"));
        }

        // 2. Faults off: a new run converges and re-plans empty.
        let engine = aws_engine(&proxy.url(), 8).await;
        match run(&engine, &stack, &only_aws).await {
            Run::Converged => {}
            Run::ApplyFailed(r) => problems.push(format!(
                "{label}: the run without faults did not converge:\n{}",
                report_text(&r)
            )),
            Run::PlanFailed(e) | Run::LockFailed(e) | Run::Other(e) => problems.push(format!(
                "{label}: the run without faults did not converge: {e}"
            )),
        }
        match engine.plan(&stack, &only_aws).await {
            Ok(p) if p.plan.is_empty() => {}
            Ok(p) => problems.push(format!(
                "{label}: the re-plan after converging is not empty:\n{}",
                plan_text(&p.plan)
            )),
            Err(e) => problems.push(format!("{label}: the re-plan failed: {e}")),
        }
        let converged = Inventory::take(&direct).await;
        let mut found = violations(&name, &before, &converged, &foreign);
        found.extend(leftovers(&name, &converged));
        for v in found {
            problems.push(format!("{label}, after converging: {v}"));
        }
        let (missing, extra) = compare_declared(&name, &declared, &converged);
        if !missing.is_empty() || !extra.is_empty() {
            problems.push(format!(
                "{label}: after converging, missing {missing:?}, not declared {extra:?}"
            ));
        }

        // 3. Faults off: destroy.
        match run(&engine, &stack, &destroy).await {
            Run::Converged => {}
            Run::ApplyFailed(r) => {
                problems.push(format!("{label}: destroy failed:\n{}", report_text(&r)))
            }
            Run::PlanFailed(e) | Run::LockFailed(e) | Run::Other(e) => {
                problems.push(format!("{label}: destroy failed: {e}"))
            }
        }
        let gone = Inventory::take(&direct).await;
        let left = gone.owned(&name);
        if !left.is_empty() {
            problems.push(format!("{label}: destroy left {left:?}"));
        }
        for v in violations(&name, &before, &gone, &foreign) {
            problems.push(format!("{label}, after destroy: {v}"));
        }
        t.iterations += 1;
        i += 1;
        if !problems.is_empty() {
            break;
        }
    }

    let f = &t.faults;
    say(&format!(
        "faults: {} iterations ({} of them losing only write responses) in {:.0} s (budget {} s); under faults {} converged, {} stopped at the plan, {} at the lock, {} with failed operations ({} failed ops), each converged on the re-run without faults; \
         {} AWS requests through the proxy under faults, {} faults injected: {} throttled, {} 500/503, {} resets before forwarding, {} responses lost after moto served them ({} of writes, {} of creates), plus {} latency spikes",
        t.iterations,
        t.lost_writes_iterations,
        started.elapsed().as_secs_f64(),
        budget.as_secs(),
        t.converged_under_faults,
        t.plan_failed,
        t.lock_failed,
        t.apply_failed,
        t.failed_ops,
        f.requests,
        f.faults(),
        f.throttled,
        f.server_errors,
        f.resets_before,
        f.lost_responses,
        t.lost_writes,
        t.lost_creates,
        f.spikes,
    ));
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    assert!(t.iterations >= 3);
    assert!(
        f.throttled > 0 && f.server_errors > 0 && f.resets_before > 0 && f.lost_responses > 0,
        "every kind of fault was injected: {f:?}"
    );
    assert!(t.lost_creates > 0, "some creates lost their response");
    assert!(
        t.apply_failed + t.plan_failed + t.lock_failed > 0,
        "some runs stopped halfway (the early-giving-up iterations)"
    );
    assert_eq!(f.upstream_errors, 0, "moto itself never failed");
    let final_inventory = Inventory::take(&direct).await;
    assert!(foreign.changes(&final_inventory).is_empty());
}
