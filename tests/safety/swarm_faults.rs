//! Swarm faults: a small stack (an overlay network, a secret, two services) applied and
//! destroyed through the fault proxy in front of the Docker socket (`docker_proxy`), at 10-20 %
//! faults (500s, 503s, resets before forwarding, responses lost after the engine acted, latency
//! spikes) over several seeded iterations. Each faulty run converges or stops with a clear report;
//! the next run without faults converges and re-plans empty; no object exists twice (each
//! `infra.id` once), nothing of the stack's names is unlabelled, and a hand-made service named
//! like the stack's survives untouched.
//!
//! Needs the local engine in swarm mode and the test image (`eval "$(.ci/test-env)"`).

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use infra::core::engine::Engine;
use infra::core::provider::{ErrorClass, OpContext, Provider, Resolved};
use infra::core::reconcile::{ApplyReport, NoObserver};
use infra::core::render;
use infra::core::Resource;
use infra::prelude::*;
use infra::swarm::{SwarmNetwork, SwarmProvider, SwarmSecret};

use crate::docker_proxy::{DockerProxy, Faults};
use crate::support::{say, skip_or_fail, swarm_missing, test_image, unique};

fn docker(args: &[&str]) -> String {
    let o = Command::new("docker").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn docker_quiet(args: &[&str]) -> String {
    Command::new("docker")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Removes everything of a stack (labelled or named like it) when a test ends, pass or fail.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let stack = &self.0;
        let label = format!("label=infra.stack={stack}");
        let name = format!("name={stack}_");
        let mut services = lines(&docker_quiet(&["service", "ls", "-q", "--filter", &label]));
        services.extend(lines(&docker_quiet(&[
            "service", "ls", "-q", "--filter", &name,
        ])));
        if !services.is_empty() {
            let mut args = vec!["service", "rm"];
            args.extend(services.iter().map(String::as_str));
            docker_quiet(&args);
        }
        for kind in ["secret", "config"] {
            for filter in [&label, &name] {
                for id in lines(&docker_quiet(&[kind, "ls", "-q", "--filter", filter])) {
                    docker_quiet(&[kind, "rm", &id]);
                }
            }
        }
        docker_quiet(&["config", "rm", &format!("infra-lock_{stack}")]);
        for _ in 0..50 {
            let ids = lines(&docker_quiet(&["network", "ls", "-q", "--filter", &label]));
            if ids.is_empty() {
                break;
            }
            for id in ids {
                docker_quiet(&["network", "rm", &id]);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn quick_service(name: &str, image: &str) -> SwarmService {
    SwarmService::new(name)
        .image(image)
        .args(["sleep", "100000"])
        .init(true)
        .stop_grace_period(Duration::from_secs(1))
        .update_policy(UpdatePolicy::new().monitor(Duration::from_millis(300)))
        .restart_policy(
            RestartCondition::Any,
            Duration::from_millis(500),
            0,
            Duration::ZERO,
        )
}

fn small_stack(name: &str, image: &str) -> Stack {
    let mut s = Stack::new(name);
    let net = s.add(SwarmNetwork::new("net"));
    let token = s.add(SwarmSecret::new("token").value(format!("token-of-{name}").into_bytes()));
    s.add(
        quick_service("api", image)
            .replicas(2)
            .network(&net)
            .secret(&token, "token"),
    );
    s.add(quick_service("worker", image).replicas(1).network(&net));
    s
}

/// What one run did.
enum Outcome {
    Converged,
    /// Stopped, with the report or error the user sees.
    Stopped(String),
}

async fn run(engine: &Engine, stack: &Stack, destroy: bool) -> Outcome {
    let opts = PlanOptions {
        destroy,
        ..PlanOptions::default()
    };
    let planned = match engine.plan(stack, &opts).await {
        Ok(p) => p,
        Err(e) => return Outcome::Stopped(format!("Error: {e}")),
    };
    match engine.apply(&planned, &NoObserver).await {
        Ok(r) if r.is_success() => Outcome::Converged,
        Ok(r) => Outcome::Stopped(report(&r)),
        Err(e) => Outcome::Stopped(format!("Error: {e}")),
    }
}

fn report(r: &ApplyReport) -> String {
    render::report_text(r)
}

/// A stopped run's message must say what failed: which resource and why, or which step
/// (reading the stack, taking its lock) against which provider.
fn assert_clear(text: &str) {
    let failed: Vec<&str> = text.lines().filter(|l| l.starts_with("Error: ")).collect();
    assert!(
        !failed.is_empty(),
        "a stopped run says what failed:\n{text}"
    );
    for l in failed {
        assert!(
            l.contains("swarm_") || l.contains("provider `swarm`") || l.contains("stack \""),
            "the failure names the resource or the step: `{l}` in\n{text}"
        );
        assert!(
            l.contains("fault injected by the test proxy")
                || l.contains("Connection")
                || l.contains("connection")
                || l.contains("Http5"),
            "the failure carries the cause: `{l}` in\n{text}"
        );
    }
}

/// `(kind, name, infra.id)` of a labelled object.
type Owned = (String, String, String);

/// The stack's objects on the engine, as `kind name infra.id` lines (labelled ones), and every
/// object whose name starts with the stack's prefix, as `(kind, name)`.
fn inventory(stack: &str) -> (Vec<Owned>, Vec<(String, String)>) {
    let label = format!("label=infra.stack={stack}");
    let mut owned = Vec::new();
    let mut named = Vec::new();
    for (kind, format) in [
        (
            "service",
            "{{.Spec.Name}} {{index .Spec.Labels \"infra.id\"}}",
        ),
        ("network", "{{.Name}} {{index .Labels \"infra.id\"}}"),
        (
            "secret",
            "{{.Spec.Name}} {{index .Spec.Labels \"infra.id\"}}",
        ),
    ] {
        let ids = lines(&docker(&[kind, "ls", "-q", "--filter", &label]));
        if !ids.is_empty() {
            let mut args = vec![kind, "inspect", "--format", format];
            args.extend(ids.iter().map(String::as_str));
            for l in lines(&docker(&args)) {
                let (name, id) = l.split_once(' ').unwrap_or((&l, ""));
                owned.push((kind.to_string(), name.to_string(), id.to_string()));
            }
        }
        let names = docker(&[
            kind,
            "ls",
            "--filter",
            &format!("name={stack}_"),
            "--format",
            "{{.Name}}",
        ]);
        named.extend(lines(&names).into_iter().map(|n| (kind.to_string(), n)));
    }
    (owned, named)
}

/// No duplicate, no unlabelled object of ours; returns the owned objects' ids.
fn assert_no_duplicates_and_nothing_unlabelled(stack: &str, handmade: &str) -> Vec<String> {
    let (owned, named) = inventory(stack);
    let mut by_id: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (_, name, id) in &owned {
        by_id.entry(id).or_default().push(name);
    }
    for (id, names) in &by_id {
        assert_eq!(
            names.len(),
            1,
            "{id} exists {} times: {names:?}",
            names.len()
        );
    }
    for (kind, name) in &named {
        assert!(
            name == handmade || owned.iter().any(|(k, n, _)| k == kind && n == name),
            "{kind} {name} carries the stack's name but not its labels"
        );
    }
    by_id.keys().map(|k| k.to_string()).collect()
}

fn inspect_handmade(name: &str) -> String {
    docker(&[
        "service",
        "inspect",
        "--format",
        "{{.ID}} {{.Version.Index}} {{.UpdatedAt}} {{json .Spec}}",
        name,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_swarm_stack_converges_through_a_faulty_transport() {
    let test = "swarm_faults::a_swarm_stack_converges_through_a_faulty_transport";
    if let Some(why) = swarm_missing() {
        skip_or_fail(test, &why);
        return;
    }
    let image = test_image().unwrap();
    let proxy = DockerProxy::start().await;
    let provider = Arc::new(
        SwarmProvider::connect_to(&proxy.host())
            .await
            .expect("connect through the proxy")
            .with_converge_timeout(Duration::from_secs(60)),
    );
    let engine = Engine::new().with_provider_arc(provider.clone());
    let expected = [
        "swarm_network.net",
        "swarm_secret.token",
        "swarm_service.api",
        "swarm_service.worker",
    ];

    let seeds: [(u64, f64); 6] = [
        (11, 0.10),
        (12, 0.15),
        (13, 0.20),
        (14, 0.10),
        (15, 0.15),
        (16, 0.20),
    ];
    let mut totals = crate::docker_proxy::Stats::default();
    let (mut converged, mut stopped) = (0, 0);
    let mut stops: Vec<String> = Vec::new();
    for (seed, rate) in seeds {
        let name = unique("sf");
        let _cleanup = Cleanup(name.clone());
        let handmade = format!("{name}_handmade");
        docker(&[
            "service",
            "create",
            "--detach",
            "--quiet",
            "--name",
            &handmade,
            "--init",
            "--stop-grace-period",
            "1s",
            "--label",
            "made-by=hand",
            &image,
            "sleep",
            "100000",
        ]);
        let handmade_before = inspect_handmade(&handmade);
        let stack = small_stack(&name, &image);

        for (phase, destroy) in [("apply", false), ("destroy", true)] {
            proxy.set_faults(Some(Faults::chaos(seed * 100 + u64::from(destroy), rate)));
            let before = proxy.stats();
            let outcome = run(&engine, &stack, destroy).await;
            proxy.set_faults(None);
            let under = proxy.stats().since(&before);
            accumulate(&mut totals, &under);
            match &outcome {
                Outcome::Converged => converged += 1,
                Outcome::Stopped(text) => {
                    stopped += 1;
                    assert_clear(text);
                    stops.push(format!(
                        "seed {seed} {phase}: {}",
                        text.lines()
                            .find(|l| l.starts_with("Error: "))
                            .unwrap_or("")
                            .trim()
                    ));
                }
            }
            // Faults off: the next run converges, and a re-plan is empty.
            if let Outcome::Stopped(text) = run(&engine, &stack, destroy).await {
                panic!("seed {seed}, {phase}: the run after the faulty one did not converge:\n{text}\n(faulty run: {})",
                    match &outcome { Outcome::Converged => "converged".to_string(), Outcome::Stopped(t) => t.clone() });
            }
            let again = engine
                .plan(
                    &stack,
                    &PlanOptions {
                        destroy,
                        ..PlanOptions::default()
                    },
                )
                .await
                .expect("re-plan");
            assert!(
                again.plan.is_empty(),
                "seed {seed}, {phase}: re-plan not empty:\n{}",
                render::plan_text(&again.plan)
            );
            let ids = assert_no_duplicates_and_nothing_unlabelled(&name, &handmade);
            if destroy {
                assert!(ids.is_empty(), "seed {seed}: left after destroy: {ids:?}");
            } else {
                assert_eq!(ids, expected, "seed {seed}: the stack's objects");
            }
            assert_eq!(
                inspect_handmade(&handmade),
                handmade_before,
                "seed {seed}, {phase}: the hand-made service was touched"
            );
        }
        docker(&["service", "rm", &handmade]);
    }
    say(&format!(
        "swarm faults: {} iterations (apply + destroy each) at 10-20 %: {} requests under faults, {} faults injected ({} HTTP 500, {} HTTP 503, {} resets before forwarding, {} responses lost after the engine acted), {} latency spikes; faulty runs: {converged} converged, {stopped} stopped with a clear report, every next run converged and re-planned empty; 0 duplicates, 0 unlabelled objects, the hand-made service untouched\n  faults by request: {:?}\n  stops:\n    {}",
        seeds.len(),
        totals.requests,
        totals.faults(),
        totals.server_errors,
        totals.unavailable,
        totals.resets_before,
        totals.lost_responses,
        totals.spikes,
        totals.faults_by_kind,
        stops.join("\n    ")
    ));
    assert!(totals.faults() > 0, "faults were injected");
    assert!(
        totals.lost_responses > 0,
        "some responses were lost after the engine acted"
    );
}

fn accumulate(total: &mut crate::docker_proxy::Stats, s: &crate::docker_proxy::Stats) {
    total.requests += s.requests;
    total.forwarded += s.forwarded;
    total.server_errors += s.server_errors;
    total.unavailable += s.unavailable;
    total.resets_before += s.resets_before;
    total.lost_responses += s.lost_responses;
    total.spikes += s.spikes;
    for (k, n) in &s.faults_by_kind {
        *total.faults_by_kind.entry(k.clone()).or_default() += n;
    }
}

/// The proxy's faults look to the provider like the real thing, with the intended effect on the
/// engine: a 500 is final, a 503 and a reset are retryable and changed nothing, a lost response
/// is retryable although the engine did create the object, which the retry then adopts.
#[tokio::test]
async fn the_proxy_faults_look_real_to_the_provider() {
    let test = "swarm_faults::the_proxy_faults_look_real_to_the_provider";
    if let Some(why) = swarm_missing() {
        skip_or_fail(test, &why);
        return;
    }
    let proxy = DockerProxy::start().await;
    let provider = SwarmProvider::connect_to(&proxy.host())
        .await
        .expect("connect through the proxy");
    let stack = unique("sfp");
    let _cleanup = Cleanup(stack.clone());
    let owned_secrets = || {
        lines(&docker(&[
            "secret",
            "ls",
            "-q",
            "--filter",
            &format!("label=infra.stack={stack}"),
        ]))
    };
    let only = |f: &str| {
        let mut x = Faults::chaos(1, 0.0);
        x.spike_rate = 0.0;
        match f {
            "500" => x.server_error = 1.0,
            "503" => x.unavailable = 1.0,
            "reset" => x.reset_before = 1.0,
            _ => x.lost_response = 1.0,
        }
        x
    };
    let cases = [
        ("500", ErrorClass::Fatal, "Http500", false),
        ("503", ErrorClass::Retryable, "Http503", false),
        ("reset", ErrorClass::Retryable, "Connection", false),
        ("lost", ErrorClass::Retryable, "Connection", true),
    ];
    for (fault, class, code, created) in cases {
        let spec = SwarmSecret::new(&format!("s{fault}"))
            .value(format!("value-{fault}").into_bytes())
            .into_spec();
        let desired = Resolved {
            address: spec.address.clone(),
            schema: spec.schema,
            props: spec.props.clone(),
            protect: false,
        };
        let ctx = |attempt| OpContext {
            stack: stack.clone(),
            idempotency_token: "t".into(),
            attempt,
        };
        proxy.set_faults(Some(only(fault)));
        let err = provider
            .create(&ctx(1), &desired)
            .await
            .expect_err("the create fails");
        proxy.set_faults(None);
        assert_eq!(
            (err.class, err.code.as_str()),
            (class, code),
            "{fault}: {err}"
        );
        let after = owned_secrets();
        assert_eq!(
            after.len(),
            usize::from(created),
            "{fault}: objects on the engine: {after:?}"
        );
        if created {
            let adopted = provider
                .create(&ctx(2), &desired)
                .await
                .expect("the retry adopts the object the lost response created");
            assert_eq!(vec![adopted.id], owned_secrets(), "one secret, adopted");
            docker(&["secret", "rm", &owned_secrets()[0]]);
        }
    }
    let stats = proxy.stats();
    assert_eq!(
        (
            stats.server_errors,
            stats.unavailable,
            stats.resets_before,
            stats.lost_responses
        ),
        (1, 1, 1, 1)
    );
}
