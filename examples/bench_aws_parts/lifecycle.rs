//! `bench_aws lifecycle N [--runs R] [--reset] [--concurrency C]`: the generated stack of `N`
//! resources (the refresh benchmark's shape) created from nothing on moto, then destroyed, each
//! as the deploy program does it: a plan (the read, the diff), then the apply. Per phase: wall
//! time, API calls (the read's and the apply's, by operation), moto's CPU time and ours.
//!
//! Moto serves one request at a time and is CPU-bound (`.ci/moto_serve.py`), so its CPU time
//! during a phase is the time the phase spent with moto working on one of its requests: the
//! *moto share* is that time over the phase's wall time. infra's own CPU over the wall time is
//! the *infra share*; the rest is neither process on a CPU: the latency of the waits the
//! provider makes (ASG deletion, NAT gateways) and the loopback round trips. Each run starts
//! on a reset moto warmed by one untimed read.

use std::collections::BTreeMap;
use std::time::Instant;

use infra::core::engine::Engine;
use infra::core::plan::PlanOptions;
use infra::core::reconcile::{ApplyOptions, NoObserver};
use infra::core::render;
use serde_json::{json, Value};

use super::{endpoint, generated, kinds, median, provider, reset_moto, unique, Cpu, Error};

/// Calls by operation made between two snapshots of `calls_by_operation`.
fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(op, n)| {
            let d = n - before.get(op).copied().unwrap_or(0);
            (d > 0).then(|| (op.clone(), d))
        })
        .collect()
}

/// One phase (`create` or `destroy`) of one run: plan + apply, measured.
struct Phase {
    plan_ms: f64,
    apply_ms: f64,
    wall_ms: f64,
    moto_cpu_ms: Option<f64>,
    client_cpu_ms: Option<f64>,
    calls: BTreeMap<String, u64>,
    changes: usize,
}

async fn phase(
    engine: &Engine,
    p: &infra::aws::AwsProvider,
    stack: &infra::core::dsl::Stack,
    destroy: bool,
) -> Result<Phase, Error> {
    let opts = PlanOptions {
        destroy,
        ..PlanOptions::default()
    };
    let calls_before = p.calls_by_operation();
    let cpu = Cpu::now();
    let t = Instant::now();
    let planned = engine.plan(stack, &opts).await?;
    let plan_ms = t.elapsed().as_secs_f64() * 1e3;
    let changes = planned.plan.summary.add + planned.plan.summary.destroy;
    let a = Instant::now();
    let report = engine.apply(&planned, &NoObserver).await?;
    let apply_ms = a.elapsed().as_secs_f64() * 1e3;
    let wall_ms = t.elapsed().as_secs_f64() * 1e3;
    let (moto_cpu_ms, client_cpu_ms) = cpu.since();
    if !report.is_success() {
        return Err(render::report_text(&report).into());
    }
    Ok(Phase {
        plan_ms,
        apply_ms,
        wall_ms,
        moto_cpu_ms,
        client_cpu_ms,
        calls: delta(&p.calls_by_operation(), &calls_before),
        changes,
    })
}

fn summary(runs: &[Phase]) -> Value {
    let med = |f: &dyn Fn(&Phase) -> Option<f64>| median(runs.iter().filter_map(f).collect());
    let wall = med(&|r| Some(r.wall_ms));
    let moto = med(&|r| r.moto_cpu_ms);
    let me = med(&|r| r.client_cpu_ms);
    // the calls of the median-wall run (they hardly vary: retries only)
    let mid = runs
        .iter()
        .min_by(|a, b| {
            (a.wall_ms - wall)
                .abs()
                .total_cmp(&(b.wall_ms - wall).abs())
        })
        .expect("at least one run");
    json!({
        "wall_ms": wall,
        "wall_ms_all": runs.iter().map(|r| r.wall_ms).collect::<Vec<_>>(),
        "plan_ms": med(&|r| Some(r.plan_ms)),
        "apply_ms": med(&|r| Some(r.apply_ms)),
        "moto_cpu_ms": moto,
        "client_cpu_ms": me,
        "moto_share": moto / wall,
        "client_share": me / wall,
        "changes": mid.changes,
        "api_calls": mid.calls.values().sum::<u64>(),
        "api_calls_by_operation": mid.calls,
    })
}

pub(crate) async fn lifecycle(
    n: usize,
    runs: usize,
    reset: bool,
    concurrency: Option<usize>,
) -> Result<(), Error> {
    let url = endpoint();
    let (mut creates, mut destroys) = (Vec::new(), Vec::new());
    let mut kinds_of = BTreeMap::new();
    let options = ApplyOptions::default();
    let concurrency = concurrency.unwrap_or(options.concurrency);
    for _ in 0..runs {
        if reset {
            reset_moto().await?;
        }
        let p = provider(&url).await?;
        let engine = Engine::new()
            .with_provider_arc(p.clone())
            .with_rules(infra::default_rules())
            .with_options(ApplyOptions {
                concurrency,
                ..ApplyOptions::default()
            });
        let stack = generated(&unique(&format!("lc{n}")), n);
        kinds_of = kinds(&stack);
        // Untimed: after a reset moto builds each service's backend on its first request (EC2's
        // loads its catalogues of images and instance types: ~1.5 s of moto CPU), a cost of the
        // test endpoint, not of the deploy. The same read, once, makes them.
        engine.plan(&stack, &PlanOptions::default()).await?;
        creates.push(phase(&engine, &p, &stack, false).await?);
        let check = engine.plan(&stack, &PlanOptions::default()).await?;
        if !check.plan.is_empty() {
            return Err(format!(
                "not a no-op after the create:\n{}",
                render::plan_text(&check.plan)
            )
            .into());
        }
        destroys.push(phase(&engine, &p, &stack, true).await?);
        let left = engine.plan(&stack, &PlanOptions::default()).await?;
        if left.plan.summary.add != n {
            return Err(format!(
                "after the destroy a plan adds {} of {n}",
                left.plan.summary.add
            )
            .into());
        }
    }
    println!(
        "{}",
        json!({
            "bench": "lifecycle",
            "resources": n,
            "kinds": kinds_of,
            "concurrency": concurrency,
            "runs": runs,
            "create": summary(&creates),
            "destroy": summary(&destroys),
        })
    );
    Ok(())
}
