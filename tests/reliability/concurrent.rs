//! Concurrent applies, on the sandbox (a file lock shared by processes), AWS (moto; the lock is an
//! IAM policy) and Swarm (the local engine; the lock is a Swarm config).
//!
//! In-process, each run has a provider instance of its own (as two processes would), wrapped so
//! that every write it makes is recorded with its start and end:
//! * two applies of **one stack** planned at the same moment: exactly one makes changes; the other
//!   either waits for the lock (`with_lock_timeout`) and then finds nothing left to do, or, without
//!   a timeout, fails with a message naming the holder — it never writes anything;
//! * two applies of **two stacks** at the same moment: neither blocks the other (their writes
//!   overlap in time), each converges, each stack reads back only its own objects, and destroying
//!   one leaves the other exactly as it was.
//!
//! Across processes, the deploy program itself: two `apply` of one stack started together, with
//! and without `--lock-timeout`, on AWS (moto behind 30 ms of proxy latency, so the applies
//! overlap) and on the sandbox.
//!
//! The AWS tests use moto servers of their own: the shared one serves one request at a time and
//! other tests' load would make these slow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use infra::aws::{IamRole, InternetGateway};
use infra::core::engine::{Engine, Error as EngineError};
use infra::core::plan::PlanOptions;
use infra::core::provider::{
    LockError, LockInfo, Observed, OpContext, Provider, ProviderError, ReadResult, Resolved,
};
use infra::core::reconcile::{ApplyReport, NoObserver};
use infra::core::render::report_text;
use infra::prelude::*;
use infra::swarm::{SwarmNetwork, SwarmSecret};

use crate::env::{
    aws_provider, deploy, example_binary, private_moto, say, show, skip_or_fail, stack_name,
    swarm_missing,
};
use crate::inventory::{Direct, Inventory};
use crate::proxy::{FaultConfig, FaultProxy};

/// One write a run made.
#[derive(Clone, Debug)]
struct Write {
    run: String,
    stack: String,
    address: String,
    start: Instant,
    end: Instant,
}

type Log = Arc<Mutex<Vec<Write>>>;

/// A provider that records its writes (and takes at least `slow` for each), delegating
/// everything to `inner`.
struct Recording {
    inner: Arc<dyn Provider>,
    run: String,
    log: Log,
    slow: Duration,
}

impl Recording {
    async fn write<T>(
        &self,
        ctx: &OpContext,
        address: &str,
        f: impl std::future::Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        let start = Instant::now();
        tokio::time::sleep(self.slow).await;
        let r = f.await;
        self.log.lock().unwrap().push(Write {
            run: self.run.clone(),
            stack: ctx.stack.clone(),
            address: address.to_string(),
            start,
            end: Instant::now(),
        });
        r
    }
}

#[async_trait]
impl Provider for Recording {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn read(&self, stack: &str) -> Result<ReadResult, ProviderError> {
        self.inner.read(stack).await
    }
    async fn lookup(&self, stack: &str, spec: &Resolved) -> Result<Observed, ProviderError> {
        self.inner.lookup(stack, spec).await
    }
    async fn create(&self, ctx: &OpContext, d: &Resolved) -> Result<Observed, ProviderError> {
        self.write(ctx, &d.address.to_string(), self.inner.create(ctx, d))
            .await
    }
    async fn update(
        &self,
        ctx: &OpContext,
        current: &Observed,
        d: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError> {
        self.write(
            ctx,
            &d.address.to_string(),
            self.inner.update(ctx, current, d, changed),
        )
        .await
    }
    async fn delete(&self, ctx: &OpContext, current: &Observed) -> Result<(), ProviderError> {
        self.write(
            ctx,
            &current.address.to_string(),
            self.inner.delete(ctx, current),
        )
        .await
    }
    async fn lock(&self, stack: &str, info: &LockInfo) -> Result<(), LockError> {
        self.inner.lock(stack, info).await
    }
    async fn unlock(&self, stack: &str, holder: &str) -> Result<(), ProviderError> {
        self.inner.unlock(stack, holder).await
    }
    async fn force_unlock(&self, stack: &str) -> Result<Option<LockInfo>, ProviderError> {
        self.inner.force_unlock(stack).await
    }
}

/// Where the concurrent runs go.
#[derive(Clone)]
enum Target {
    Sandbox(std::path::PathBuf),
    Aws(String),
    Swarm,
}

impl Target {
    async fn provider(&self) -> Arc<dyn Provider> {
        match self {
            Target::Sandbox(dir) => Arc::new(SandboxProvider::open(dir, "aws").unwrap()),
            Target::Aws(url) => Arc::new(aws_provider(url).await),
            Target::Swarm => Arc::new(infra::swarm::SwarmProvider::connect().await.unwrap()),
        }
    }

    /// An engine for run `run` whose writes go to `log`.
    async fn engine(&self, run: &str, log: &Log, lock_timeout: Duration) -> Engine {
        let slow = match self {
            // Swarm creates already wait for the tasks to run.
            Target::Swarm => Duration::ZERO,
            _ => Duration::from_millis(100),
        };
        Engine::new()
            .with_provider(Recording {
                inner: self.provider().await,
                run: run.into(),
                log: log.clone(),
                slow,
            })
            .with_options(crate::env::apply_options(8))
            .with_lock_timeout(lock_timeout)
    }

    /// A small stack named `name` for this target.
    fn stack(&self, name: &str) -> Stack {
        let mut s = Stack::new(name);
        match self {
            Target::Swarm => {
                let net = s.add(SwarmNetwork::new("net"));
                let token = s.add(SwarmSecret::new("token").value("concurrent-test-token"));
                s.add(
                    SwarmService::new("web")
                        .image(crate::example::local_image().as_str())
                        .args(["sleep", "100000"])
                        .init(true)
                        .stop_grace_period(Duration::from_secs(1))
                        .replicas(1)
                        .network(&net)
                        .secret(&token, "token"),
                );
            }
            _ => {
                let vpc = s.add(Vpc::new("main").cidr("10.77.0.0/16"));
                s.add(InternetGateway::new("main").vpc(&vpc));
                for (i, az) in ["us-east-1a", "us-east-1b"].iter().enumerate() {
                    s.add(
                        Subnet::new(&format!("s{i}"))
                            .vpc(&vpc)
                            .az(az)
                            .cidr(&format!("10.77.{i}.0/24")),
                    );
                }
                s.add(
                    SecurityGroup::new("web")
                        .vpc(&vpc)
                        .ingress(Rule::tcp(443).cidr("10.0.0.0/8")),
                );
                s.add(IamRole::new("node").assumed_by_service("ec2.amazonaws.com"));
            }
        }
        s
    }

    /// Problems with what `stack` holds on this target: duplicates (checked on the target
    /// directly where possible) or anything but the declared set.
    async fn check(&self, stack: &Stack) -> Vec<String> {
        let mut out = Vec::new();
        let declared: BTreeSet<String> = stack
            .resources()
            .iter()
            .map(|r| r.address.to_string())
            .collect();
        let read = self.provider().await.read(stack.name()).await;
        match read {
            Ok(r) => {
                let mut seen = BTreeMap::<String, usize>::new();
                for o in &r.resources {
                    *seen.entry(o.address.to_string()).or_default() += 1;
                }
                if seen.values().any(|&n| n > 1)
                    || seen.keys().cloned().collect::<BTreeSet<_>>() != declared
                {
                    out.push(format!(
                        "{}: read back {seen:?}, declared {declared:?}",
                        stack.name()
                    ));
                }
            }
            Err(e) => out.push(format!("{}: the read failed: {e}", stack.name())),
        }
        match self {
            Target::Sandbox(dir) => {
                let mut n = BTreeMap::<(String, String), usize>::new();
                for o in SandboxProvider::open(dir, "aws")
                    .unwrap()
                    .objects()
                    .unwrap()
                {
                    if o.stack.as_deref() == Some(stack.name()) {
                        *n.entry((o.kind, o.name)).or_default() += 1;
                    }
                }
                if n.values().any(|&c| c > 1) {
                    out.push(format!(
                        "{}: duplicates in the sandbox: {n:?}",
                        stack.name()
                    ));
                }
            }
            Target::Aws(url) => {
                let inv = Inventory::take(&Direct::new(url).await).await;
                for (address, ids) in inv.owned(stack.name()) {
                    if ids.len() > 1 || !declared.contains(&address) {
                        out.push(format!("{}: in moto, {address} is {ids:?}", stack.name()));
                    }
                }
            }
            Target::Swarm => {
                for v in crate::interrupted::swarm_violations(
                    stack.name(),
                    &[],
                    &crate::interrupted::swarm_objects(),
                )
                .into_iter()
                .filter(|v| v.starts_with("duplicate"))
                {
                    out.push(format!("{}: {v}", stack.name()));
                }
            }
        }
        out
    }

    async fn destroy(&self, stack: &Stack) {
        let engine = self
            .engine("destroy", &Log::default(), Duration::ZERO)
            .await;
        let planned = engine
            .plan(
                stack,
                &PlanOptions {
                    destroy: true,
                    allow_destroy_all: true,
                    ..PlanOptions::default()
                },
            )
            .await
            .unwrap();
        let report = engine.apply(&planned, &NoObserver).await.unwrap();
        assert!(report.is_success(), "destroy:\n{}", report_text(&report));
    }
}

/// Two applies of one stack, planned at the same moment, applied at the same moment (the second
/// 20 ms later). Returns a line for the summary; panics on a violation.
async fn one_stack_twice(target: &Target, name: &str, wait: bool) -> String {
    let stack = target.stack(name);
    let log = Log::default();
    let timeout = if wait {
        Duration::from_secs(120)
    } else {
        Duration::ZERO
    };
    let a = target.engine("A", &log, timeout).await;
    let b = target.engine("B", &log, timeout).await;
    let pa = a.plan(&stack, &PlanOptions::default()).await.unwrap();
    let pb = b.plan(&stack, &PlanOptions::default()).await.unwrap();
    assert!(pa.plan.summary.add > 0 && pb.plan.summary.add > 0);
    let timed = |e: Engine, p: Planned, delay: u64| async move {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let r = e.apply(&p, &NoObserver).await;
        (r, Instant::now())
    };
    let ((ra, ea), (rb, eb)) = tokio::join!(timed(a, pa, 0), timed(b, pb, 20));
    let writes = log.lock().unwrap().clone();
    let runs: BTreeSet<&str> = writes.iter().map(|w| w.run.as_str()).collect();
    assert_eq!(
        runs.len(),
        1,
        "exactly one of the two runs wrote anything: {writes:?}"
    );
    let (winner, loser, loser_end) = if runs.contains("A") {
        (ra, rb, eb)
    } else {
        (rb, ra, ea)
    };
    let report: ApplyReport = winner.expect("the winner applies");
    assert!(report.is_success(), "{}", report_text(&report));
    let last_write = writes.iter().map(|w| w.end).max().unwrap();
    let outcome = match loser {
        Ok(r) => {
            assert!(
                wait,
                "without a lock timeout the second run can't get the lock"
            );
            assert!(
                r.outcomes.is_empty(),
                "the second run found nothing left to do: {}",
                report_text(&r)
            );
            assert!(
                loser_end >= last_write,
                "the second run ended after the first one's last write"
            );
            "the second waited, then had nothing left to do"
        }
        Err(e @ EngineError::Locked { .. }) => {
            assert!(!wait, "with a lock timeout the second run waits: {e}");
            let msg = e.to_string();
            for needle in [
                format!("stack \"{name}\" is locked by "),
                format!(":pid{}:", std::process::id()),
                "that process is still running on this host".into(),
            ] {
                assert!(msg.contains(&needle), "`{needle}` in: {msg}");
            }
            "the second failed at once, naming the holder"
        }
        Err(e) => panic!("the second run failed otherwise: {e}"),
    };
    let problems = target.check(&stack).await;
    assert!(problems.is_empty(), "{problems:?}");
    let replan = target
        .engine("check", &Log::default(), Duration::ZERO)
        .await
        .plan(&stack, &PlanOptions::default())
        .await
        .unwrap();
    assert!(replan.plan.is_empty());
    target.destroy(&stack).await;
    let objects: BTreeSet<&str> = writes.iter().map(|w| w.address.as_str()).collect();
    format!(
        "one stack twice ({}): {} writes to {} objects, all by one run; {outcome}",
        if wait {
            "lock timeout 120 s"
        } else {
            "no lock timeout"
        },
        writes.len(),
        objects.len()
    )
}

/// Two applies of two stacks at the same moment: both converge, their writes overlap in time,
/// neither touches the other's objects.
async fn two_stacks_at_once(target: &Target, one: &str, two: &str) -> String {
    let s1 = target.stack(one);
    let s2 = target.stack(two);
    let log = Log::default();
    let a = target.engine("A", &log, Duration::ZERO).await;
    let b = target.engine("B", &log, Duration::ZERO).await;
    let pa = a.plan(&s1, &PlanOptions::default()).await.unwrap();
    let pb = b.plan(&s2, &PlanOptions::default()).await.unwrap();
    let (ra, rb) = tokio::join!(a.apply(&pa, &NoObserver), b.apply(&pb, &NoObserver));
    for (r, n) in [(ra, one), (rb, two)] {
        let r = r.unwrap_or_else(|e| panic!("{n} was blocked or failed: {e}"));
        assert!(r.is_success(), "{n}:\n{}", report_text(&r));
    }
    let writes = log.lock().unwrap().clone();
    let span = |run: &str| {
        let w: Vec<&Write> = writes.iter().filter(|w| w.run == run).collect();
        assert!(!w.is_empty(), "{run} wrote");
        for x in &w {
            assert_eq!(
                x.stack,
                if run == "A" { one } else { two },
                "{run} wrote only its own stack's objects: {x:?}"
            );
        }
        (
            w.iter().map(|x| x.start).min().unwrap(),
            w.iter().map(|x| x.end).max().unwrap(),
        )
    };
    let (sa, ea) = span("A");
    let (sb, eb) = span("B");
    assert!(
        sa.max(sb) < ea.min(eb),
        "the two stacks' applies ran at the same time (neither waited for the other)"
    );
    for s in [&s1, &s2] {
        let problems = target.check(s).await;
        assert!(problems.is_empty(), "{problems:?}");
    }
    // Destroying one leaves the other exactly as it was.
    let p = target.provider().await;
    let before = p.read(two).await.unwrap().resources;
    target.destroy(&s1).await;
    let after = p.read(two).await.unwrap().resources;
    assert_eq!(before, after, "{two} untouched by {one}'s destroy");
    assert!(p.read(one).await.unwrap().resources.is_empty());
    target.destroy(&s2).await;
    format!(
        "two stacks at once: both converged, {} + {} writes overlapping in time, each stack's objects its own",
        writes.iter().filter(|w| w.run == "A").count(),
        writes.iter().filter(|w| w.run == "B").count()
    )
}

async fn all_three(target: &Target, prefix: &str) -> Vec<String> {
    vec![
        one_stack_twice(target, &stack_name(prefix, "w"), true).await,
        one_stack_twice(target, &stack_name(prefix, "n"), false).await,
        two_stacks_at_once(
            target,
            &stack_name(prefix, "one"),
            &stack_name(prefix, "two"),
        )
        .await,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_applies_of_one_stack_never_interleave_and_two_stacks_do_not_block() {
    let dir = tempfile::tempdir().unwrap();
    let lines = all_three(&Target::Sandbox(dir.path().to_path_buf()), "rcs").await;
    say(&format!("concurrent (sandbox):\n  {}", lines.join("\n  ")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_applies_of_one_stack_never_interleave_and_two_stacks_do_not_block() {
    let Some(moto) = private_moto("concurrent::aws") else {
        return;
    };
    let lines = all_three(&Target::Aws(moto.url.clone()), "rca").await;
    say(&format!(
        "concurrent (aws, moto):\n  {}",
        lines.join("\n  ")
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_applies_of_one_stack_never_interleave_and_two_stacks_do_not_block() {
    if let Some(why) = swarm_missing() {
        return skip_or_fail("concurrent::swarm", &why);
    }
    let lines = all_three(&Target::Swarm, "rcw").await;
    say(&format!("concurrent (swarm):\n  {}", lines.join("\n  ")));
}

/// Starts two deploy programs at once; returns their outputs and pids, in start order.
fn two_processes(mut a: Command, mut b: Command) -> [(Output, u32); 2] {
    let ca = a
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let cb = b
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let (pa, pb) = (ca.id(), cb.id());
    [
        (ca.wait_with_output().unwrap(), pa),
        (cb.wait_with_output().unwrap(), pb),
    ]
}

fn lines_of(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// The deploy program twice at once on one stack: exactly one applies; the other says "No
/// changes." (it planned after the first finished), got the lock once the first released it
/// (waiting for it, or just after) and found nothing left to do, or — without a timeout — failed
/// naming the first one's process. Returns which of these happened.
fn cli_pair(make: &dyn Fn(&str) -> Command, dir: &Path, timeout: u64) -> &'static str {
    let cmd = |n: &str| {
        let mut c = make(n);
        c.args([
            "--lock-timeout",
            &timeout.to_string(),
            "apply",
            "--auto-approve",
        ]);
        c
    };
    let [(oa, pa), (ob, pb)] = two_processes(cmd("a"), cmd("b"));
    let (la, lb) = (
        lines_of(&dir.join("a.jsonl")),
        lines_of(&dir.join("b.jsonl")),
    );
    assert!(
        (la > 0) != (lb > 0),
        "exactly one process made changes (audit lines {la} and {lb}):\n{}\n{}",
        show(&oa),
        show(&ob)
    );
    let (winner, loser, winner_pid) = if la > 0 {
        (&oa, &ob, pa)
    } else {
        (&ob, &oa, pb)
    };
    assert_eq!(winner.status.code(), Some(0), "{}", show(winner));
    let out = String::from_utf8_lossy(&loser.stdout);
    let err = String::from_utf8_lossy(&loser.stderr);
    if loser.status.code() == Some(0) && out.contains("No changes.") {
        "the second planned after the first had finished: No changes."
    } else if loser.status.code() == Some(0) && err.contains("nothing left to do") {
        // With a timeout it waited; without one it took the lock just after the first released
        // it. Either way its plan was stale and the first had done its work.
        "the second took the lock once the first released it, then had nothing left to do"
    } else {
        assert_eq!(loser.status.code(), Some(1), "{}", show(loser));
        assert_eq!(
            timeout,
            0,
            "with a timeout the second waits:\n{}",
            show(loser)
        );
        let holder = format!(":pid{winner_pid}:");
        assert!(
            err.contains("is locked by") && err.contains(&holder) && err.contains("still running"),
            "the refusal names the first process ({holder}):\n{}",
            show(loser)
        );
        "the second failed at once, naming the first one's process"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deploy_programs_on_one_aws_stack_never_interleave() {
    let Some(moto) = private_moto("concurrent::two_deploy_programs_aws") else {
        return;
    };
    let url = moto.url.clone();
    crate::env::register_node_image(&url).await;
    // Latency makes an apply last seconds: both programs plan before either finishes.
    let proxy = FaultProxy::start(&url, FaultConfig::with_latency(Duration::from_millis(30)))
        .await
        .unwrap();
    let endpoint = proxy.url();
    let _ = example_binary();
    let mut lines = Vec::new();
    for (i, timeout) in [(0, 0u64), (1, 120)] {
        let stack = stack_name("rcp", i);
        let dir = tempfile::tempdir().unwrap();
        let make = |n: &str| {
            let mut c = deploy(dir.path(), &endpoint, &stack);
            c.args(["--only", "aws"])
                .env("INFRA_AUDIT_LOG", dir.path().join(format!("{n}.jsonl")));
            c
        };
        let outcome = tokio::task::block_in_place(|| cli_pair(&make, dir.path(), timeout));
        // With 30 ms per call an apply lasts seconds: the second program plans while the first
        // applies, so it meets the lock.
        assert_eq!(
            outcome,
            if timeout == 0 {
                "the second failed at once, naming the first one's process"
            } else {
                "the second took the lock once the first released it, then had nothing left to do"
            }
        );
        lines.push(format!("--lock-timeout {timeout}: {outcome}"));
        let plan = tokio::task::block_in_place(|| {
            let mut c = make("plan");
            c.args(["plan", "--detailed-exitcode"]);
            c.output().unwrap()
        });
        assert_eq!(plan.status.code(), Some(0), "{}", show(&plan));
        let inv = Inventory::take(&Direct::new(&url).await).await;
        for (address, ids) in inv.owned(&stack) {
            assert_eq!(ids.len(), 1, "{address}: {ids:?}");
        }
        let destroy = tokio::task::block_in_place(|| {
            let mut c = make("destroy");
            c.args([
                "destroy",
                "--auto-approve",
                "--allow-destroy",
                "aws_vpc.main",
            ]);
            c.output().unwrap()
        });
        assert_eq!(destroy.status.code(), Some(0), "{}", show(&destroy));
    }
    say(&format!(
        "concurrent (two deploy programs, aws on moto):\n  {}",
        lines.join("\n  ")
    ));
}

#[test]
fn two_deploy_programs_on_one_sandbox_stack_never_interleave() {
    let mut lines = Vec::new();
    for (i, timeout) in [(0, 0u64), (1, 0), (2, 30), (3, 30)] {
        let dir = tempfile::tempdir().unwrap();
        let make = |n: &str| {
            let mut c = Command::new(example_binary());
            c.env("INFRA_SANDBOX_DIR", dir.path().join("sandbox"))
                .env("INFRA_AUDIT_LOG", dir.path().join(format!("{n}.jsonl")))
                .env("INFRA_LOG", "warn")
                .env_remove("INFRA_TARGET")
                .env_remove("INFRA_ENV")
                .env_remove("INFRA_STACK")
                .env_remove("INFRA_LOCK_TIMEOUT");
            c
        };
        let outcome = cli_pair(&make, dir.path(), timeout);
        lines.push(format!("round {i}, --lock-timeout {timeout}: {outcome}"));
        let mut plan = make("plan");
        plan.args(["plan", "--detailed-exitcode"]);
        let plan = plan.output().unwrap();
        assert_eq!(plan.status.code(), Some(0), "{}", show(&plan));
    }
    say(&format!(
        "concurrent (two deploy programs, sandbox):\n  {}",
        lines.join("\n  ")
    ));
}
