//! Planning at scale on the sandbox: graph build + validation, read, plan, text render, for
//! generated stacks with a realistic fan-out (networks → subnets → groups → hosts referencing
//! both). Two plans per size: from scratch (everything created) and a no-op re-plan after the
//! sandbox holds every object (every reference resolved against observed state).
//!
//! ```text
//! cargo bench -p infra-core --bench plan -- 100 1000 10000      # a table of medians
//! cargo bench -p infra-core --bench plan -- --json --runs 5 10000
//! ```
//!
//! `--json` measures one size per process (so the peak RSS is that size's) and prints one JSON
//! object with the median of every phase; `bench/run plan` runs it per size and writes
//! BENCHMARKS.md. Phases (milliseconds, median of `--runs`):
//!
//! * `generate`: building the `Stack` through the DSL (the user's code; not part of the target);
//! * `graph`: `Graph::build`: validation (references, names, cycles, per-kind checks) + the DAG
//!   + the deterministic topological order;
//! * `plan_scratch`: `Engine::plan` against an empty sandbox (graph, read, diff, policy);
//!   `render_scratch`: `render::plan_text` of that plan (every field of every resource);
//! * `open`: `SandboxProvider::open` of the filled journal (what a fresh CLI process does: it
//!   starts reading the journal on other threads and returns, so that a plan validates the
//!   stack meanwhile); `read`: the sandbox read, which first waits for that reading when it
//!   is not done (here, measured right after `open`, it always waits: `open` + `read` is the
//!   whole cost of the journal); `compute`: `plan::compute` alone;
//!   `plan_noop`: `Engine::plan` of the unchanged stack; `render_noop`: its text;
//! * `total_scratch` = plan_scratch + render_scratch; `total_noop` = open + plan_noop +
//!   render_noop: the issue's "graph build + validation + plan + text render".
//!
//! `--rss scratch|noop N [--dir DIR]` makes one plan + render in this fresh process and prints
//! its time and peak RSS; `--limit N --dir DIR` is the floor a no-op plan is compared with: in a
//! fresh process, read the same journal file and parse every line into a `serde_json::Value`,
//! nothing else (and, for reference, the same bytes only scanned: `serde::de::IgnoredAny`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use infra_core::dsl::{KindSchema, Ref, ResourceSpec, Stack};
use infra_core::engine::Engine;
use infra_core::graph::Graph;
use infra_core::plan::{self, ObservedState, PlanOptions};
use infra_core::provider::{OpContext, Provider, Resolved};
use infra_core::render;
use infra_core::sandbox::SandboxProvider;
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, map, Value};

static NET: KindSchema = KindSchema::new("bench_network", "bench")
    .force_new(&["cidr"])
    .computed(&["id", "arn"])
    .validate(check_net);
static SUBNET: KindSchema = KindSchema::new("bench_subnet", "bench")
    .force_new(&["network_id", "cidr"])
    .computed(&["id"]);
static GROUP: KindSchema = KindSchema::new("bench_group", "bench")
    .computed(&["id"])
    .unordered(&["rules"]);
static HOST: KindSchema = KindSchema::new("bench_host", "bench")
    .force_new(&["subnet_id"])
    .computed(&["id"])
    .unordered(&["group_ids"]);

kind! { /// n
struct Net => NET }
kind! { /// s
struct Sub => SUBNET }
kind! { /// g
struct Group => GROUP }
kind! { /// h
struct Host => HOST }

fn check_net(spec: &ResourceSpec, _: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    if let Some(cidr) = c.required_str("cidr") {
        c.cidr("cidr", cidr);
    }
    c.finish()
}

/// About `n` resources: per network, 8 subnets, 4 groups (each with 5 rules, one referencing a
/// sibling group) and 37 hosts (each on a subnet, in 2 groups, with tags).
fn generate(n: usize) -> Stack {
    let mut s = Stack::new("bench");
    let per_net = 1 + 8 + 4 + 37;
    for i in 0..n.div_ceil(per_net) {
        let mut spec = ResourceSpec::new(&NET, format!("net-{i}"));
        spec.set("cidr", format!("10.{}.{}.0/24", i / 256 % 256, i % 256));
        let net: Ref<Net> = s.add(Net(spec));
        let subs: Vec<Ref<Sub>> = (0..8)
            .map(|j| {
                let mut sp = ResourceSpec::new(&SUBNET, format!("sub-{i}-{j}"));
                sp.set("network_id", net.id())
                    .set("cidr", format!("10.{i}.{j}.0/28"))
                    .set("az", format!("zone-{}", j % 3));
                s.add(Sub(sp))
            })
            .collect();
        let mut groups: Vec<Ref<Group>> = Vec::new();
        for g in 0..4 {
            let mut sp = ResourceSpec::new(&GROUP, format!("grp-{i}-{g}"));
            sp.set("network_id", net.id());
            for r in 0..5 {
                let mut rule =
                    map! { "protocol" => "tcp", "port" => 1000 + r, "cidr" => "10.0.0.0/8" };
                if r == 0 {
                    if let (Some(prev), Value::Map(m)) = (groups.last(), &mut rule) {
                        m.remove("cidr");
                        m.insert("group_id".into(), prev.id().into());
                    }
                }
                sp.push("rules", rule);
            }
            groups.push(s.add(Group(sp)));
        }
        for h in 0..37 {
            let mut sp = ResourceSpec::new(&HOST, format!("host-{i}-{h}"));
            sp.set("subnet_id", subs[h % 8].id())
                .set("image", "img-0123456789")
                .set("size", "medium")
                .set(
                    "group_ids",
                    vec![
                        Value::from(groups[h % 4].id()),
                        Value::from(groups[(h + 1) % 4].id()),
                    ],
                );
            sp.insert("tags", "role", "web")
                .insert("tags", "index", h.to_string());
            s.add(Host(sp));
        }
    }
    s
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Medians of every phase for one size.
struct Figures {
    resources: usize,
    edges: usize,
    generate: Duration,
    graph: Duration,
    plan_scratch: Duration,
    render_scratch: Duration,
    total_scratch: Duration,
    open: Duration,
    read: Duration,
    compute: Duration,
    plan_noop: Duration,
    render_noop: Duration,
    total_noop: Duration,
    text_scratch_bytes: usize,
    text_noop_bytes: usize,
    journal_bytes: u64,
    runs: usize,
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t = Instant::now();
    let out = f();
    (t.elapsed(), out)
}

/// Creates every resource of `stack` in the sandbox journal under `dir`, in order (one create
/// per resource, as an apply would), so that a plan of the same stack is a no-op.
fn fill(stack: &Stack, dir: &std::path::Path, rt: &tokio::runtime::Runtime) {
    let sandbox = SandboxProvider::open(dir, "bench").unwrap();
    let graph = Graph::build(stack).unwrap();
    rt.block_on(async {
        let mut ids = std::collections::HashMap::new();
        for spec in graph.in_order() {
            let props = spec
                .props
                .iter()
                .map(|(k, v)| (k.clone(), v.resolve(&|r| ids.get(&r.address).cloned())))
                .collect();
            let resolved = Resolved {
                address: spec.address.clone(),
                schema: spec.schema,
                props,
                protect: false,
            };
            let ctx = OpContext {
                stack: "bench".into(),
                idempotency_token: spec.address.to_string(),
                attempt: 1,
            };
            let o = sandbox.create(&ctx, &resolved).await.unwrap();
            ids.insert(spec.address.clone(), Value::String(o.id));
        }
    });
}

/// The peak RSS of one plan + text render in this (fresh) process, as the deploy program makes
/// it: `scratch` against an empty sandbox, `noop` against the journal `fill` left in `dir`.
fn rss_only(kind: &str, n: usize, dir: Option<&str>, rt: &tokio::runtime::Runtime) -> String {
    let stack = generate(n);
    let tmp = tempfile::tempdir().unwrap();
    let dir = match (kind, dir) {
        ("noop", Some(d)) => std::path::PathBuf::from(d),
        ("scratch", _) => tmp.path().to_path_buf(),
        _ => panic!("--rss noop needs --dir DIR (filled by --json --dir DIR)"),
    };
    let (d, text) = time(|| {
        let engine = Engine::new().with_provider(SandboxProvider::open(&dir, "bench").unwrap());
        let p = rt
            .block_on(engine.plan(&stack, &PlanOptions::default()))
            .unwrap();
        assert_eq!(p.plan.is_empty(), kind == "noop");
        let text = render::plan_text(&p.plan);
        // As the deploy program's `plan` does (`infra::cli`, `release`): a process about to
        // exit leaves the engine and the plan's inputs to the system instead of freeing them.
        std::mem::forget((engine, p));
        text
    });
    let resources = stack.len();
    std::mem::forget(stack); // as the deploy program, after its command
    format!(
        "{{\"kind\":\"{kind}\",\"resources\":{},\"plan_and_render_ms\":{:.3},\"text_bytes\":{},\"peak_rss_mb\":{:.1}}}",
        resources,
        ms(d),
        text.len(),
        peak_rss_mb()
    )
}

/// The limit: the journal `fill` left in `dir` read and parsed, each line into a JSON tree, in
/// this fresh process; and the same bytes only scanned (parsed without building anything).
fn limit(n: usize, dir: &str) -> String {
    let path = std::path::Path::new(dir).join("bench.jsonl");
    let (d, lines) = time(|| {
        let bytes = std::fs::read(&path).unwrap();
        let mut lines = 0usize;
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            std::hint::black_box(v);
            lines += 1;
        }
        lines
    });
    let rss = peak_rss_mb();
    let (scan, _) = time(|| {
        let bytes = std::fs::read(&path).unwrap();
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let v: serde::de::IgnoredAny = serde_json::from_slice(line).unwrap();
            std::hint::black_box(v);
        }
    });
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    format!(
        "{{\"kind\":\"limit\",\"requested\":{n},\"lines\":{lines},\"journal_bytes\":{bytes},\"read_parse_ms\":{:.3},\"read_scan_ms\":{:.3},\"peak_rss_mb\":{rss:.1}}}",
        ms(d),
        ms(scan)
    )
}

fn measure(n: usize, runs: usize, keep: Option<&str>, rt: &tokio::runtime::Runtime) -> Figures {
    let mut generate_t = Vec::new();
    for _ in 0..runs.min(3) {
        let (d, s) = time(|| generate(n));
        generate_t.push(d);
        std::hint::black_box(s);
    }
    let stack = generate(n);
    let tmp = tempfile::tempdir().unwrap();
    let dir = match keep {
        Some(d) => {
            let d = std::path::PathBuf::from(d);
            let _ = std::fs::remove_file(d.join("bench.jsonl"));
            d
        }
        None => tmp.path().to_path_buf(),
    };
    let sandbox = std::sync::Arc::new(SandboxProvider::open(&dir, "bench").unwrap());
    let engine = Engine::new().with_provider_arc(sandbox.clone());
    let edges = Graph::build(&stack).unwrap().edges().len();

    let graph_t: Vec<Duration> = (0..runs)
        .map(|_| time(|| std::hint::black_box(Graph::build(&stack).unwrap())).0)
        .collect();

    let (mut plan_s, mut render_s, mut total_s) = (Vec::new(), Vec::new(), Vec::new());
    let mut text_scratch_bytes = 0;
    for _ in 0..runs {
        let (dp, p) = time(|| {
            rt.block_on(engine.plan(&stack, &PlanOptions::default()))
                .unwrap()
        });
        let (dr, text) = time(|| render::plan_text(&p.plan));
        text_scratch_bytes = text.len();
        assert_eq!(p.plan.summary.add, stack.len());
        plan_s.push(dp);
        render_s.push(dr);
        total_s.push(dp + dr);
    }

    // Fill the sandbox, then time no-op plans.
    drop(engine);
    drop(sandbox);
    fill(&stack, &dir, rt);
    let graph = Graph::build(&stack).unwrap();
    let journal_bytes = std::fs::metadata(dir.join("bench.jsonl"))
        .map(|m| m.len())
        .unwrap_or(0);

    let (mut open_t, mut read_t, mut compute_t) = (Vec::new(), Vec::new(), Vec::new());
    let (mut plan_n, mut render_n, mut total_n) = (Vec::new(), Vec::new(), Vec::new());
    let mut text_noop_bytes = 0;
    let scope = vec!["bench".to_string()];
    for _ in 0..runs {
        // A fresh provider each run: parsing the journal is what a new CLI process pays.
        let (d_open, sandbox) = time(|| SandboxProvider::open(&dir, "bench").unwrap());
        let (d_read, read) = time(|| rt.block_on(sandbox.read("bench")).unwrap());
        let mut observed = ObservedState::default();
        for o in read.resources {
            observed
                .provider_of
                .insert(o.address.clone(), "bench".into());
            observed.resources.insert(o.address.clone(), o);
        }
        let (d_compute, p) =
            time(|| plan::compute(&graph, &observed, &scope, &PlanOptions::default()));
        assert!(p.is_empty());
        std::hint::black_box(p);
        let engine = Engine::new().with_provider(sandbox);
        let (d_plan, p) = time(|| {
            rt.block_on(engine.plan(&stack, &PlanOptions::default()))
                .unwrap()
        });
        assert!(p.plan.is_empty(), "{}", render::plan_text(&p.plan));
        let (d_render, text) = time(|| render::plan_text(&p.plan));
        text_noop_bytes = text.len();
        open_t.push(d_open);
        read_t.push(d_read);
        compute_t.push(d_compute);
        plan_n.push(d_plan);
        render_n.push(d_render);
        total_n.push(d_open + d_plan + d_render);
    }

    Figures {
        resources: stack.len(),
        edges,
        generate: median(generate_t),
        graph: median(graph_t),
        plan_scratch: median(plan_s),
        render_scratch: median(render_s),
        total_scratch: median(total_s),
        open: median(open_t),
        read: median(read_t),
        compute: median(compute_t),
        plan_noop: median(plan_n),
        render_noop: median(render_n),
        total_noop: median(total_n),
        text_scratch_bytes,
        text_noop_bytes,
        journal_bytes,
        runs,
    }
}

fn main() {
    let mut json = false;
    let mut runs = 5;
    let mut sizes: Vec<usize> = Vec::new();
    let mut dir: Option<String> = None;
    let mut rss: Option<String> = None;
    let mut limit_mode = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--json" => json = true,
            "--runs" => runs = args.next().and_then(|r| r.parse().ok()).unwrap_or(runs),
            "--dir" => dir = args.next(),
            "--rss" => rss = args.next(),
            "--limit" => limit_mode = true,
            // cargo bench passes --bench to harness=false targets
            _ => sizes.extend(a.parse::<usize>().ok()),
        }
    }
    if sizes.is_empty() {
        sizes = vec![100, 1_000, 10_000];
    }
    let runs = runs.max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if limit_mode {
        let dir = dir.expect("--limit needs --dir DIR (filled by --json --dir DIR)");
        println!("{}", limit(sizes[0], &dir));
        return;
    }
    if let Some(kind) = rss {
        println!("{}", rss_only(&kind, sizes[0], dir.as_deref(), &rt));
        return;
    }
    if json {
        // One size per process.
        let distinct: BTreeSet<usize> = sizes.iter().copied().collect();
        assert_eq!(distinct.len(), 1, "--json measures exactly one size");
        let f = measure(sizes[0], runs, dir.as_deref(), &rt);
        println!(
            "{{\"requested\":{},\"resources\":{},\"edges\":{},\"runs\":{},\"generate_ms\":{:.3},\"graph_ms\":{:.3},\"plan_scratch_ms\":{:.3},\"render_scratch_ms\":{:.3},\"total_scratch_ms\":{:.3},\"open_ms\":{:.3},\"read_ms\":{:.3},\"compute_ms\":{:.3},\"plan_noop_ms\":{:.3},\"render_noop_ms\":{:.3},\"total_noop_ms\":{:.3},\"text_scratch_bytes\":{},\"text_noop_bytes\":{},\"journal_bytes\":{},\"bench_process_peak_rss_mb\":{:.1}}}",
            sizes[0],
            f.resources,
            f.edges,
            f.runs,
            ms(f.generate),
            ms(f.graph),
            ms(f.plan_scratch),
            ms(f.render_scratch),
            ms(f.total_scratch),
            ms(f.open),
            ms(f.read),
            ms(f.compute),
            ms(f.plan_noop),
            ms(f.render_noop),
            ms(f.total_noop),
            f.text_scratch_bytes,
            f.text_noop_bytes,
            f.journal_bytes,
            peak_rss_mb()
        );
        return;
    }
    println!("| resources | validate+graph | plan from scratch (total) | no-op re-plan (total) | text bytes | peak RSS MB (cumulative) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let f = measure(n, runs, None, &rt);
        println!(
            "| {} | {:.1} ms | {:.1} ms | {:.1} ms | {} | {:.0} |",
            f.resources,
            ms(f.graph),
            ms(f.total_scratch),
            ms(f.total_noop),
            f.text_scratch_bytes,
            peak_rss_mb()
        );
    }
}
