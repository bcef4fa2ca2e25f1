//! The engine's own scheduling overhead (issue 15, item 2): `Engine::apply` against a sandbox
//! whose every call waits a fixed latency ([`SandboxProvider::with_latency`], no limit on
//! concurrent calls), so that the ideal apply is known exactly and anything above it is the
//! engine's (or the sandbox's own bookkeeping, measured apart).
//!
//! ```text
//! cargo bench -p infra-core --bench overhead -- independent:1000 chains:100x10 chains:32x10
//! cargo bench -p infra-core --bench overhead -- --json --runs 3 --latency-ms 50 --concurrency 32 independent:1000
//! ```
//!
//! Scenarios: `independent:N` (N resources, no references: every create is ready at once) and
//! `chains:KxD` (K chains of D resources, each referencing the previous one's id: D creates
//! one after the other per chain). The ideal reconciler time is
//! `max(⌈n / concurrency⌉, D) × latency`: the slots kept busy, or the critical path when it is
//! longer. Each run is a fresh sandbox: plan from scratch, then the timed `Engine::apply`.
//!
//! Figures per run (the JSON line holds the medians and every run's values):
//! * `reconcile_ms`: from the reconciler's start (the observer's `started`) to its last
//!   operation's end: what the ideal is compared with;
//! * `apply_ms`: the whole `Engine::apply`: the lock, the stale-plan re-read, the reconciler, the
//!   unlock (`serial_calls` provider calls outside the reconciler, each paying the latency);
//! * `call_ms`: the median create as the engine sees it (the latency + the sandbox's journal
//!   write + the timer's rounding), and `provider_bound_ms` = the ideal with that call time in
//!   place of the bare latency: what a perfect scheduler would achieve with this provider;
//! * `cpu_ms`: the process's CPU time (user + system) during the apply, engine and sandbox.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use infra_core::dsl::{KindSchema, Ref, ResourceSpec, Stack};
use infra_core::engine::Engine;
use infra_core::lock::Created;
use infra_core::plan::PlanOptions;
use infra_core::provider::{
    LockInfo, Observed, OpContext, Provider, ProviderError, ReadResult, Resolved,
};
use infra_core::reconcile::{ApplyObserver, ApplyOptions, AuditEvent, OpKind};
use infra_core::sandbox::SandboxProvider;

static ITEM: KindSchema = KindSchema::new("bench_item", "bench")
    .force_new(&["after"])
    .computed(&["id", "arn"]);

infra_core::kind! { /// an item
struct Item => ITEM }

#[derive(Clone, Copy, Debug)]
enum Scenario {
    Independent(usize),
    Chains { chains: usize, depth: usize },
}

impl Scenario {
    fn parse(s: &str) -> Option<Scenario> {
        let (kind, arg) = s.split_once(':')?;
        match kind {
            "independent" => Some(Scenario::Independent(arg.parse().ok()?)),
            "chains" => {
                let (k, d) = arg.split_once('x')?;
                Some(Scenario::Chains {
                    chains: k.parse().ok()?,
                    depth: d.parse().ok()?,
                })
            }
            _ => None,
        }
    }
    fn name(&self) -> String {
        match self {
            Scenario::Independent(n) => format!("independent:{n}"),
            Scenario::Chains { chains, depth } => format!("chains:{chains}x{depth}"),
        }
    }
    fn resources(&self) -> usize {
        match *self {
            Scenario::Independent(n) => n,
            Scenario::Chains { chains, depth } => chains * depth,
        }
    }
    fn depth(&self) -> usize {
        match *self {
            Scenario::Independent(_) => 1,
            Scenario::Chains { depth, .. } => depth,
        }
    }
    fn stack(&self) -> Stack {
        let mut s = Stack::new("overhead");
        let item = |name: String| {
            let mut spec = ResourceSpec::new(&ITEM, name);
            spec.set("size", "medium").set("image", "img-0123456789");
            spec.insert("tags", "team", "bench");
            spec
        };
        match *self {
            Scenario::Independent(n) => {
                for i in 0..n {
                    s.add(Item(item(format!("item-{i:05}"))));
                }
            }
            Scenario::Chains { chains, depth } => {
                for c in 0..chains {
                    let mut prev: Option<Ref<Item>> = None;
                    for d in 0..depth {
                        let mut spec = item(format!("chain-{c:04}-{d:02}"));
                        if let Some(p) = &prev {
                            spec.set("after", p.id());
                        }
                        prev = Some(s.add(Item(spec)));
                    }
                }
            }
        }
        s
    }
}

/// What answers the engine's calls: the sandbox with its latency, or a bare stand-in that only
/// waits the latency and stores nothing (no journal): the engine alone. One of each per run:
/// their sizes don't matter.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Sandbox(SandboxProvider),
    Bare {
        latency: Duration,
        lock: Mutex<Option<LockInfo>>,
    },
}

/// Delegates to the backend, timing every create and counting every call.
struct Timed {
    inner: Backend,
    creates: Mutex<Vec<Duration>>,
    calls: AtomicU64,
}

impl Timed {
    fn count(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
    async fn bare<T>(&self, latency: Duration, out: T) -> Result<T, ProviderError> {
        tokio::time::sleep(latency).await;
        Ok(out)
    }
}

#[async_trait]
impl Provider for Timed {
    fn name(&self) -> &str {
        "bench"
    }
    async fn read(&self, stack: &str) -> Result<ReadResult, ProviderError> {
        self.count();
        match &self.inner {
            Backend::Sandbox(p) => p.read(stack).await,
            Backend::Bare { latency, .. } => {
                let r = ReadResult {
                    resources: Vec::new(),
                    api_calls: 1,
                };
                self.bare(*latency, r).await
            }
        }
    }
    async fn create(&self, ctx: &OpContext, d: &Resolved) -> Result<Observed, ProviderError> {
        self.count();
        let t = Instant::now();
        let r = match &self.inner {
            Backend::Sandbox(p) => p.create(ctx, d).await,
            Backend::Bare { latency, .. } => {
                let id = format!("item-{}", d.address.name());
                let mut props = d.props.clone();
                props.insert("arn".into(), format!("arn:bench:{id}").into());
                let o = Observed {
                    address: d.address.clone(),
                    id,
                    props: props.into(),
                    protect: d.protect,
                    declared: None,
                };
                self.bare(*latency, o).await
            }
        };
        self.creates.lock().unwrap().push(t.elapsed());
        r
    }
    async fn update(
        &self,
        ctx: &OpContext,
        c: &Observed,
        d: &Resolved,
        ch: &[String],
    ) -> Result<Observed, ProviderError> {
        self.count();
        match &self.inner {
            Backend::Sandbox(p) => p.update(ctx, c, d, ch).await,
            Backend::Bare { .. } => unreachable!("the bench only creates"),
        }
    }
    async fn delete(&self, ctx: &OpContext, c: &Observed) -> Result<(), ProviderError> {
        self.count();
        match &self.inner {
            Backend::Sandbox(p) => p.delete(ctx, c).await,
            Backend::Bare { .. } => unreachable!("the bench only creates"),
        }
    }
    async fn lock_create(&self, stack: &str, info: &LockInfo) -> Result<Created, ProviderError> {
        self.count();
        match &self.inner {
            Backend::Sandbox(p) => p.lock_create(stack, info).await,
            Backend::Bare { latency, lock } => {
                let created = {
                    let mut l = lock.lock().unwrap();
                    if l.is_some() {
                        Created::Exists
                    } else {
                        *l = Some(info.clone());
                        Created::Created
                    }
                };
                self.bare(*latency, created).await
            }
        }
    }
    async fn lock_read(&self, stack: &str) -> Result<Option<LockInfo>, ProviderError> {
        self.count();
        match &self.inner {
            Backend::Sandbox(p) => p.lock_read(stack).await,
            Backend::Bare { latency, lock } => {
                let held = lock.lock().unwrap().clone();
                self.bare(*latency, held).await
            }
        }
    }
    async fn lock_delete(&self, stack: &str) -> Result<(), ProviderError> {
        self.count();
        match &self.inner {
            Backend::Sandbox(p) => p.lock_delete(stack).await,
            Backend::Bare { latency, lock } => {
                lock.lock().unwrap().take();
                self.bare(*latency, ()).await
            }
        }
    }
}

/// When the reconciler started and when its last operation ended.
#[derive(Default)]
struct Span(Mutex<(Option<Instant>, Option<Instant>, usize)>);

impl ApplyObserver for Span {
    fn started(&self, _total: usize) {
        self.0.lock().unwrap().0 = Some(Instant::now());
    }
    fn op_finished(&self, _event: &AuditEvent) {
        let mut s = self.0.lock().unwrap();
        s.1 = Some(Instant::now());
        s.2 += 1;
    }
    fn op_started(&self, _address: &str, _op: OpKind) {}
}

/// The process's CPU time (user + system), from /proc (clock ticks of 10 ms).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // the fields after the command name (which is in parentheses)
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

struct Run {
    reconcile: Duration,
    apply: Duration,
    call: Duration,
    cpu: Duration,
    serial_calls: u64,
    ops: usize,
}

fn one_run(
    scenario: Scenario,
    bare: bool,
    latency: Duration,
    concurrency: usize,
    rt: &tokio::runtime::Runtime,
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let timed = Arc::new(Timed {
        inner: if bare {
            Backend::Bare {
                latency,
                lock: Mutex::new(None),
            }
        } else {
            Backend::Sandbox(
                SandboxProvider::open(dir.path(), "bench")
                    .unwrap()
                    .with_latency(latency),
            )
        },
        creates: Mutex::new(Vec::new()),
        calls: AtomicU64::new(0),
    });
    let engine = Engine::new()
        .with_provider_arc(timed.clone())
        .with_options(ApplyOptions {
            concurrency,
            ..ApplyOptions::default()
        });
    let stack = scenario.stack();
    rt.block_on(async {
        let planned = engine
            .plan(&stack, &PlanOptions::default())
            .await
            .expect("plan");
        assert_eq!(planned.plan.summary.add, scenario.resources());
        let span = Span::default();
        let calls_before = timed.calls.load(Ordering::Relaxed);
        let cpu_before = cpu_time();
        let t = Instant::now();
        let report = engine.apply(&planned, &span).await.expect("apply");
        let apply = t.elapsed();
        let cpu = cpu_time() - cpu_before;
        assert!(report.is_success(), "the apply failed");
        let (start, end, ops) = *span.0.lock().unwrap();
        let mut creates = timed.creates.lock().unwrap().clone();
        creates.sort();
        Run {
            reconcile: end.unwrap() - start.unwrap(),
            apply,
            call: creates[creates.len() / 2],
            cpu,
            serial_calls: timed.calls.load(Ordering::Relaxed) - calls_before - ops as u64,
            ops,
        }
    })
}

fn median<T: Copy + PartialOrd>(v: &[T]) -> T {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The 1, 5 and 15-minute load averages.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let mut json = false;
    let mut runs = 3;
    let mut latency_ms = 50u64;
    let mut concurrency = 32usize;
    let mut scenarios = Vec::new();
    let mut providers = vec!["sandbox".to_string(), "bare".to_string()];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--json" => json = true,
            "--runs" => runs = args.next().and_then(|r| r.parse().ok()).unwrap_or(runs),
            "--latency-ms" => latency_ms = args.next().and_then(|r| r.parse().ok()).unwrap_or(50),
            "--concurrency" => concurrency = args.next().and_then(|r| r.parse().ok()).unwrap_or(32),
            "--provider" => {
                providers = args
                    .next()
                    .map(|p| p.split(',').map(str::to_string).collect())
                    .unwrap_or(providers)
            }
            // cargo bench passes --bench to harness=false targets
            _ => scenarios.extend(Scenario::parse(&a)),
        }
    }
    if scenarios.is_empty() {
        scenarios = vec![
            Scenario::Independent(1000),
            Scenario::Chains {
                chains: 100,
                depth: 10,
            },
            Scenario::Chains {
                chains: 32,
                depth: 10,
            },
        ];
    }
    let runs = runs.max(1);
    let latency = Duration::from_millis(latency_ms);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if !json {
        println!("| provider | scenario | resources | ideal | reconciler | ratio | call | provider bound | whole apply | CPU |");
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    }
    for (provider, scenario) in providers
        .iter()
        .flat_map(|p| scenarios.iter().map(move |s| (p, *s)))
    {
        let bare = match provider.as_str() {
            "bare" => true,
            "sandbox" => false,
            other => panic!("--provider: sandbox or bare, not {other}"),
        };
        let n = scenario.resources();
        let rounds = n.div_ceil(concurrency.max(1)).max(scenario.depth());
        let ideal = latency * rounds as u32;
        let load_before = load();
        let all: Vec<Run> = (0..runs)
            .map(|_| one_run(scenario, bare, latency, concurrency, &rt))
            .collect();
        let reconcile: Vec<f64> = all.iter().map(|r| ms(r.reconcile)).collect();
        let apply: Vec<f64> = all.iter().map(|r| ms(r.apply)).collect();
        let call: Vec<f64> = all.iter().map(|r| ms(r.call)).collect();
        let cpu: Vec<f64> = all.iter().map(|r| ms(r.cpu)).collect();
        let (rec, app, cl, cp) = (
            median(&reconcile),
            median(&apply),
            median(&call),
            median(&cpu),
        );
        let provider_bound = cl * rounds as f64;
        let serial_calls = all[0].serial_calls;
        if json {
            let mut m = BTreeMap::new();
            let list = |v: &[f64]| {
                format!(
                    "[{}]",
                    v.iter()
                        .map(|x| format!("{x:.1}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            m.insert("provider", format!("\"{provider}\""));
            let profile = if cfg!(debug_assertions) {
                "dev"
            } else {
                "release"
            };
            m.insert("profile", format!("\"{profile}\""));
            m.insert("load_before", format!("\"{load_before}\""));
            m.insert("load_after", format!("\"{}\"", load()));
            m.insert("scenario", format!("\"{}\"", scenario.name()));
            m.insert("resources", n.to_string());
            m.insert("depth", scenario.depth().to_string());
            m.insert("ops", all[0].ops.to_string());
            m.insert("concurrency", concurrency.to_string());
            m.insert("latency_ms", latency_ms.to_string());
            m.insert("runs", runs.to_string());
            m.insert("rounds", rounds.to_string());
            m.insert("ideal_ms", format!("{:.1}", ms(ideal)));
            m.insert("reconcile_ms", format!("{rec:.1}"));
            m.insert("apply_ms", format!("{app:.1}"));
            m.insert("call_ms", format!("{cl:.2}"));
            m.insert("provider_bound_ms", format!("{provider_bound:.1}"));
            m.insert("cpu_ms", format!("{cp:.0}"));
            m.insert("serial_calls", serial_calls.to_string());
            m.insert("reconcile_runs_ms", list(&reconcile));
            m.insert("apply_runs_ms", list(&apply));
            m.insert("call_runs_ms", list(&call));
            m.insert("cpu_runs_ms", list(&cpu));
            let body: Vec<String> = m.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
            println!("{{{}}}", body.join(", "));
        } else {
            println!(
                "| {provider} | {} | {n} | {:.0} ms | {rec:.0} ms | {:.3} | {cl:.2} ms | {provider_bound:.0} ms | {app:.0} ms ({serial_calls} calls outside) | {cp:.0} ms |",
                scenario.name(),
                ms(ideal),
                rec / ms(ideal),
            );
        }
    }
}
