//! Benchmarks against moto for issue 6, driven by `bench/run` (which starts a private moto and
//! passes its pid in `BENCH_MOTO_PID`, so that moto's own CPU time can be told apart from
//! ours). Every figure is printed as one JSON object per line on stdout.
//!
//! ```text
//! bench_aws refresh N [--runs R] [--reset]
//!     applies a generated stack of N resources of AWS kinds once, then times R no-op plans:
//!     wall time, the read's API calls by operation, moto's CPU time and ours.
//! bench_aws apply N --concurrency C [--latency-ms L] [--runs R] [--reset] [--kind policy|sg]
//!     N independent resources (IAM policies, or security groups in one VPC made beforehand)
//!     through the fault proxy of test-support/src/proxy.rs adding L ms (default 50) to every
//!     call, applied with `ApplyOptions.concurrency` = C; R runs, each on a fresh stack.
//! bench_aws lifecycle N [--runs R] [--reset] [--concurrency C]
//!     the refresh benchmark's stack of N resources created from nothing, then destroyed (plan +
//!     apply each): wall time, API calls by operation, moto's CPU time and ours, per phase.
//! ```
//!
//! `--reset` clears moto (`POST /moto-api/reset`) before each stack: only for a private moto.
//! The endpoint is `AWS_ENDPOINT_URL`, credentials are always moto's test ones.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use infra::aws::{
    Asg, AwsProvider, IamPolicy, IamRole, InstanceProfile, InternetGateway, LaunchTemplate,
    PolicyDocument, RouteTable, Rule, ScalingPolicy, SecurityGroup, Statement, Subnet, Vpc,
};
use infra::core::dsl::{Ref, Resource, Stack};
use infra::core::engine::Engine;
use infra::core::plan::PlanOptions;
use infra::core::provider::ProviderError;
use infra::core::reconcile::{ApplyObserver, ApplyOptions, OpKind};
use infra::core::render;
use serde_json::json;

use infra_test_support::proxy::{FaultConfig, FaultProxy};

#[path = "bench_aws_parts/lifecycle.rs"]
mod lifecycle;

type Error = Box<dyn std::error::Error>;

fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:5599".into())
}

/// An SDK configuration for moto (or the proxy in front of it), never a real account.
async fn sdk_config(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .test_credentials()
        .load()
        .await
}

async fn provider(url: &str) -> Result<Arc<AwsProvider>, Error> {
    Ok(Arc::new(
        AwsProvider::from_sdk_config(&sdk_config(url).await)?
            .with_wait_timeout(Duration::from_secs(120))
            .with_max_poll_interval(Duration::from_millis(200)),
    ))
}

/// `POST /moto-api/reset` on moto itself (not through the proxy).
async fn reset_moto() -> Result<(), Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = endpoint();
    let host = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .ok_or("AWS_ENDPOINT_URL has no host")?
        .to_string();
    let mut s = tokio::net::TcpStream::connect(&host).await?;
    s.write_all(
        format!("POST /moto-api/reset HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let head = String::from_utf8_lossy(&out[..out.len().min(40)]).to_string();
    if !head.contains(" 200") {
        return Err(format!("moto reset answered: {head}").into());
    }
    Ok(())
}

/// user+system CPU time of a process, from /proc (clock ticks of 10 ms).
fn cpu_ms(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 1000.0 / 100.0)
}

/// CPU meters: moto's (when `BENCH_MOTO_PID` is set) and this process's.
struct Cpu {
    moto: Option<f64>,
    me: Option<f64>,
}

impl Cpu {
    fn now() -> Cpu {
        Cpu {
            moto: std::env::var("BENCH_MOTO_PID")
                .ok()
                .and_then(|p| cpu_ms(&p)),
            me: cpu_ms("self"),
        }
    }
    fn since(&self) -> (Option<f64>, Option<f64>) {
        let now = Cpu::now();
        (
            now.moto.zip(self.moto).map(|(b, a)| b - a),
            now.me.zip(self.me).map(|(b, a)| b - a),
        )
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{:05x}", (nanos ^ std::process::id()) & 0xfffff)
}

/// Moto 5.2.5 answers `DescribeLaunchTemplates` and `DescribeLaunchTemplateVersions` with at
/// most `MaxResults` (default 15) templates and no `NextToken`, so a read that doesn't set
/// `MaxResults` sees only 15 of them (real AWS pages with a token). infra-aws now asks for 200
/// a page (tests/aws/paging.rs checks every listing's page size); the generated stacks keep to
/// 15 launch templates (and so 15 auto scaling groups, each costing a `DescribeLifecycleHooks`
/// per read) so that their figures stay comparable with the first measurements.
const MOTO_LAUNCH_TEMPLATE_PAGE: usize = 15;

/// A generated stack of `n` resources of AWS kinds, shaped like real deployments: a network
/// base per VPC (VPC, internet gateway, public route table, three public and three private
/// subnets, a route table per private subnet: 12 resources), one VPC per 250 resources, and
/// the rest as services: a security group, an IAM policy, a role with it attached and an
/// instance profile, and for the first 15 services (see [`MOTO_LAUNCH_TEMPLATE_PAGE`]) also a
/// launch template, an auto scaling group of size 0 over the private subnets and a CPU
/// target-tracking policy. Truncated at `n`: a reference only ever points to an earlier
/// resource.
fn generated(name: &str, n: usize) -> Stack {
    let mut s = Stack::new(name);
    let vpcs = n.div_ceil(250).max(1);
    let mut bases = Vec::new();
    let mut left = n;
    for v in 0..vpcs {
        if left == 0 {
            break;
        }
        let mut take = || -> bool {
            if left == 0 {
                false
            } else {
                left -= 1;
                true
            }
        };
        if !take() {
            break;
        }
        let vpc = s.add(Vpc::new(&format!("v{v}")).cidr(&format!("10.{v}.0.0/16")));
        let mut igw = None;
        if take() {
            igw = Some(s.add(InternetGateway::new(&format!("v{v}")).vpc(&vpc)));
        }
        let mut private: Vec<Ref<Subnet>> = Vec::new();
        let mut public: Vec<Ref<Subnet>> = Vec::new();
        for (i, zone) in ["a", "b", "c"].iter().enumerate() {
            if take() {
                public.push(
                    s.add(
                        Subnet::new(&format!("v{v}-public-{zone}"))
                            .vpc(&vpc)
                            .az(&format!("us-east-1{zone}"))
                            .cidr(&format!("10.{v}.{i}.0/24"))
                            .public(true),
                    ),
                );
            }
            if take() {
                let q = s.add(
                    Subnet::new(&format!("v{v}-private-{zone}"))
                        .vpc(&vpc)
                        .az(&format!("us-east-1{zone}"))
                        .cidr(&format!("10.{v}.{}.0/24", 10 + i)),
                );
                if take() {
                    s.add(
                        RouteTable::new(&format!("v{v}-private-{zone}"))
                            .vpc(&vpc)
                            .associate(&q),
                    );
                }
                private.push(q);
            }
        }
        if let Some(igw) = &igw {
            if take() {
                let mut rt = RouteTable::new(&format!("v{v}-public"))
                    .vpc(&vpc)
                    .default_route_to_internet(igw);
                for p in &public {
                    rt = rt.associate(p);
                }
                s.add(rt);
            }
        }
        bases.push((vpc, private));
    }
    let mut k = 0;
    while s.len() < n {
        let (vpc, private) = &bases[k % bases.len()];
        let room = n - s.len();
        let sg = s.add(
            SecurityGroup::new(&format!("svc{k}"))
                .vpc(vpc)
                .description("service instances")
                .ingress(Rule::tcp(8080).cidr("10.0.0.0/8").describe("app port"))
                .egress_all(),
        );
        if room < 2 {
            break;
        }
        let policy = s.add(
            IamPolicy::new(&format!("svc{k}")).document(
                PolicyDocument::new().statement(
                    Statement::allow()
                        .actions(["s3:GetObject"])
                        .resources([format!("arn:aws:s3:::bucket-{k}/*")]),
                ),
            ),
        );
        if room < 3 {
            break;
        }
        let role = s.add(
            IamRole::new(&format!("svc{k}"))
                .assumed_by_service("ec2.amazonaws.com")
                .attach(&policy),
        );
        if room < 4 {
            break;
        }
        let profile = s.add(InstanceProfile::new(&format!("svc{k}")).role(&role));
        if room < 5 {
            break;
        }
        if k >= MOTO_LAUNCH_TEMPLATE_PAGE {
            k += 1;
            continue;
        }
        let lt = s.add(
            LaunchTemplate::new(&format!("svc{k}"))
                .image("ami-0123456789abcdef0")
                .instance_type("t3.micro")
                .security_group(&sg)
                .instance_profile(&profile),
        );
        if room < 6 || private.len() < 2 {
            k += 1;
            continue;
        }
        let subnets: Vec<&Ref<Subnet>> = private.iter().collect();
        let asg = s.add(
            Asg::new(&format!("svc{k}"))
                .launch_template(&lt)
                .subnets(&subnets)
                .size(0, 2, 0)
                .ignore_changes(&["desired_capacity"]),
        );
        if room < 7 {
            break;
        }
        s.add(
            ScalingPolicy::target_tracking(&format!("svc{k}"))
                .asg(&asg)
                .cpu_target(60.0),
        );
        k += 1;
    }
    s
}

fn kinds(stack: &Stack) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in stack.resources() {
        *out.entry(r.schema.kind.to_string()).or_default() += 1;
    }
    out
}

async fn refresh(n: usize, runs: usize, reset: bool) -> Result<(), Error> {
    if reset {
        reset_moto().await?;
    }
    let url = endpoint();
    let p = provider(&url).await?;
    let engine = Engine::new()
        .with_provider_arc(p.clone())
        .with_rules(infra::default_rules());
    let stack = generated(&unique(&format!("rf{n}")), n);
    assert_eq!(
        stack.len(),
        n,
        "the generator made {} resources",
        stack.len()
    );

    let t = Instant::now();
    let planned = engine.plan(&stack, &PlanOptions::default()).await?;
    let report = engine
        .apply(&planned, &infra::core::reconcile::NoObserver)
        .await?;
    let create_ms = t.elapsed().as_secs_f64() * 1e3;
    if !report.is_success() {
        return Err(render::report_text(&report).into());
    }
    // The first plan after the apply: checks it converged, and warms the connections.
    let first = Instant::now();
    let check = engine.plan(&stack, &PlanOptions::default()).await?;
    let first_ms = first.elapsed().as_secs_f64() * 1e3;
    if !check.plan.is_empty() {
        return Err(format!(
            "not a no-op after apply:\n{}",
            render::plan_text(&check.plan)
        )
        .into());
    }

    let (mut walls, mut motos, mut mine) = (Vec::new(), Vec::new(), Vec::new());
    let mut calls = 0;
    let mut by_op = BTreeMap::new();
    let mut objects = 0;
    // CPU time over all the runs at once as well: /proc counts in ticks of 10 ms, so one
    // run's figure is ±10 ms, the mean over the runs ±10 ms / runs.
    let all_runs = Cpu::now();
    for _ in 0..runs {
        let cpu = Cpu::now();
        let t = Instant::now();
        let planned = engine.plan(&stack, &PlanOptions::default()).await?;
        walls.push(t.elapsed().as_secs_f64() * 1e3);
        let (m, me) = cpu.since();
        motos.extend(m);
        mine.extend(me);
        if !planned.plan.is_empty() {
            return Err(render::plan_text(&planned.plan).into());
        }
        calls = planned.plan.reads.iter().map(|r| r.api_calls).sum::<u64>();
        objects = planned
            .plan
            .reads
            .iter()
            .map(|r| r.resources)
            .sum::<usize>();
        by_op = p.last_read_calls();
    }
    let (moto_total, mine_total) = all_runs.since();
    println!(
        "{}",
        json!({
            "bench": "refresh",
            "resources": stack.len(),
            "kinds": kinds(&stack),
            "objects_read": objects,
            "create_ms": create_ms,
            "create_api_calls": report.api_calls.get("aws"),
            "first_plan_ms": first_ms,
            "runs": runs,
            "plan_ms": median(walls.clone()),
            "plan_ms_all": walls,
            "moto_cpu_ms": median(motos),
            "client_cpu_ms": median(mine),
            "moto_cpu_ms_total": moto_total,
            "client_cpu_ms_total": mine_total,
            "read_calls": calls,
            "read_calls_by_operation": by_op,
        })
    );
    Ok(())
}

/// Counts the reconciler's retries.
#[derive(Default)]
struct Retries(AtomicU64);
impl ApplyObserver for Retries {
    fn retrying(&self, _: &str, _: OpKind, _: u32, _: &ProviderError, _: Duration) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn independent(name: &str, n: usize, kind: &str) -> (Option<Stack>, Stack) {
    let mut s = Stack::new(name);
    match kind {
        "sg" => {
            // The VPC is applied first, on its own; the groups are then independent.
            let mut base = Stack::new(name);
            let vpc = base.add(Vpc::new("main").cidr("10.50.0.0/16"));
            s.add(Vpc::new("main").cidr("10.50.0.0/16"));
            for i in 0..n {
                s.add(
                    SecurityGroup::new(&format!("g{i}"))
                        .vpc(&vpc)
                        .description("concurrency benchmark")
                        .egress_all(),
                );
            }
            (Some(base), s)
        }
        _ => {
            for i in 0..n {
                s.add(
                    IamPolicy::new(&format!("p{i}")).document(
                        PolicyDocument::new().statement(
                            Statement::allow()
                                .actions(["s3:GetObject"])
                                .resources([format!("arn:aws:s3:::bench-{i}/*")]),
                        ),
                    ),
                );
            }
            (None, s)
        }
    }
}

async fn apply(
    n: usize,
    concurrency: usize,
    latency: Duration,
    runs: usize,
    reset: bool,
    kind: &str,
) -> Result<(), Error> {
    let proxy = FaultProxy::start(&endpoint(), FaultConfig::with_latency(latency)).await?;
    let p = provider(&proxy.url()).await?;
    let engine = Engine::new()
        .with_provider_arc(p.clone())
        .with_options(ApplyOptions {
            concurrency,
            ..ApplyOptions::default()
        });
    let (mut walls, mut reconciles, mut motos, mut mine) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut retries, mut multi_attempts, mut requests, mut throttled, mut upstream_errors) =
        (0, 0, 0, 0, 0);
    let mut calls = 0;
    for _ in 0..runs {
        if reset {
            reset_moto().await?;
        }
        let name = unique(&format!("ac{concurrency}"));
        let (base, stack) = independent(&name, n, kind);
        if let Some(base) = base {
            let planned = engine.plan(&base, &PlanOptions::default()).await?;
            let r = engine
                .apply(&planned, &infra::core::reconcile::NoObserver)
                .await?;
            if !r.is_success() {
                return Err(render::report_text(&r).into());
            }
        }
        let planned = engine.plan(&stack, &PlanOptions::default()).await?;
        assert_eq!(planned.plan.summary.add, n);
        let observer = Retries::default();
        let before = proxy.stats();
        let cpu = Cpu::now();
        let t = Instant::now();
        let report = engine.apply(&planned, &observer).await?;
        walls.push(t.elapsed().as_secs_f64() * 1e3);
        let (m, me) = cpu.since();
        motos.extend(m);
        mine.extend(me);
        if !report.is_success() {
            return Err(render::report_text(&report).into());
        }
        reconciles.push(report.duration_ms as f64);
        let after = proxy.stats();
        retries += observer.0.load(Ordering::Relaxed);
        multi_attempts += report.outcomes.iter().filter(|o| o.attempts > 1).count();
        requests += after.total.requests - before.total.requests;
        throttled += after.total.throttled - before.total.throttled;
        upstream_errors += after.total.upstream_errors - before.total.upstream_errors;
        calls = report.api_calls.get("aws").copied().unwrap_or(0);
        let check = engine.plan(&stack, &PlanOptions::default()).await?;
        assert!(check.plan.is_empty(), "{}", render::plan_text(&check.plan));
    }
    println!(
        "{}",
        json!({
            "bench": "apply",
            "kind": kind,
            "resources": n,
            "concurrency": concurrency,
            "latency_ms": latency.as_millis() as u64,
            "runs": runs,
            "apply_ms": median(walls.clone()),
            "apply_ms_all": walls,
            "reconcile_ms": median(reconciles),
            "moto_cpu_ms": median(motos),
            "client_cpu_ms": median(mine),
            "reconcile_api_calls": calls,
            "proxy_requests_per_run": requests / runs.max(1) as u64,
            "retries": retries,
            "ops_with_retries": multi_attempts,
            "throttled": throttled,
            "upstream_errors": upstream_errors,
        })
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let number = |name: &str, default: usize| {
        value(name)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(default)
    };
    let n: usize = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .ok_or("usage: bench_aws refresh|apply|lifecycle N [options] (see the source)")?;
    let runs = number("--runs", 5).max(1);
    match args.first().map(String::as_str) {
        Some("refresh") => refresh(n, runs, flag("--reset")).await,
        Some("apply") => {
            apply(
                n,
                number("--concurrency", 10).max(1),
                Duration::from_millis(number("--latency-ms", 50) as u64),
                runs,
                flag("--reset"),
                value("--kind").as_deref().unwrap_or("policy"),
            )
            .await
        }
        Some("lifecycle") => {
            lifecycle::lifecycle(
                n,
                runs,
                flag("--reset"),
                value("--concurrency").and_then(|v| v.parse().ok()),
            )
            .await
        }
        _ => Err("usage: bench_aws refresh|apply|lifecycle N [options] (see the source)".into()),
    }
}
