//! Planning at scale on the sandbox: graph build + validation, read, plan, text render, for
//! generated stacks with a realistic fan-out (networks → subnets → groups → hosts referencing
//! both). Prints a table of medians; `cargo bench -p infra-core --bench plan -- 100 1000 10000`.
//!
//! Two plans per size: from scratch (everything created) and a no-op re-plan after the sandbox
//! holds every object (every reference resolved against observed state).

use std::time::{Duration, Instant};

use infra_core::dsl::{KindSchema, Ref, ResourceSpec, Stack};
use infra_core::engine::Engine;
use infra_core::graph::Graph;
use infra_core::plan::PlanOptions;
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

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100, 1_000, 10_000]
    } else {
        sizes
    };
    let runs = 5;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("| resources | validate+graph | plan from scratch (total) | no-op re-plan (total) | text bytes | peak RSS MB |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let stack = generate(n);
        let dir = tempfile::tempdir().unwrap();
        let sandbox = std::sync::Arc::new(SandboxProvider::open(dir.path(), "bench").unwrap());
        let engine = Engine::new().with_provider_arc(sandbox.clone());

        let graph_times: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                let g = Graph::build(&stack).unwrap();
                std::hint::black_box(&g);
                t.elapsed()
            })
            .collect();
        let mut text_len = 0;
        let scratch: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                let p = rt
                    .block_on(engine.plan(&stack, &PlanOptions::default()))
                    .unwrap();
                text_len = render::plan_text(&p.plan).len();
                t.elapsed()
            })
            .collect();

        // Fill the sandbox directly (one create per resource, in order), then time no-op plans.
        let graph = Graph::build(&stack).unwrap();
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
        let noop: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                let p = rt
                    .block_on(engine.plan(&stack, &PlanOptions::default()))
                    .unwrap();
                assert!(p.plan.is_empty(), "{}", render::plan_text(&p.plan));
                std::hint::black_box(render::plan_text(&p.plan));
                t.elapsed()
            })
            .collect();
        println!(
            "| {} | {:.1} ms | {:.1} ms | {:.1} ms | {} | {:.0} |",
            stack.len(),
            median(graph_times).as_secs_f64() * 1e3,
            median(scratch).as_secs_f64() * 1e3,
            median(noop).as_secs_f64() * 1e3,
            text_len,
            peak_rss_mb()
        );
    }
}
