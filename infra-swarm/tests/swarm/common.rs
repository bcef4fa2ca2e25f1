//! Shared test plumbing: connecting (or skipping loudly), the test images, unique stack names,
//! the docker CLI for out-of-band changes, and a guard that removes whatever a test's stack left.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use infra_core::engine::{Engine, Planned};
use infra_core::plan::PlanOptions;
use infra_core::reconcile::{ApplyReport, NoObserver};
use infra_core::Stack;
use infra_swarm::{FailureAction, RestartCondition, SwarmProvider, SwarmService, UpdatePolicy};

/// Connects to the local engine, or returns `None` after a `SKIPPED` line
/// (`infra_test_support::skip_or_fail`; a failure when the run requires the endpoints).
pub(crate) async fn provider(test: &str) -> Option<Arc<SwarmProvider>> {
    match SwarmProvider::connect().await {
        Ok(p) => Some(Arc::new(p.with_converge_timeout(Duration::from_secs(90)))),
        Err(e) => {
            infra_test_support::skip_or_fail(test, &format!("no usable Docker swarm ({e})"));
            None
        }
    }
}

/// The busybox test image (by ID: nothing is pulled).
pub(crate) fn image() -> String {
    infra_test_support::test_image()
        .expect("no test image: set INFRA_TEST_IMAGE or run .ci/setup-swarm")
}

/// The second test image (same content, `/www/version` says v2).
pub(crate) fn image_v2() -> String {
    infra_test_support::test_image_v2()
        .expect("no test image: set INFRA_TEST_IMAGE_V2 or run .ci/setup-swarm")
}

pub(crate) use infra_test_support::unique;

/// Runs the docker CLI; panics with its stderr on failure.
pub(crate) fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs the docker CLI and ignores failures (cleanup).
fn docker_quiet(args: &[&str]) -> String {
    Command::new("docker")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Lines of output, empty ones dropped.
pub(crate) fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Everything on the engine labelled as the stack's: `(kind, name)` pairs.
pub(crate) fn owned_objects(stack: &str) -> Vec<(String, String)> {
    let filter = format!("label=infra.stack={stack}");
    let mut out = Vec::new();
    for kind in ["service", "network", "secret", "config"] {
        let names = docker(&[kind, "ls", "--filter", &filter, "--format", "{{.Name}}"]);
        out.extend(lines(&names).into_iter().map(|n| (kind.to_string(), n)));
    }
    out
}

/// Removes whatever the stack left on the engine when the test ends, pass or fail, and objects
/// created by hand under the stack's prefix.
pub(crate) struct Cleanup {
    stack: String,
    extra_services: Vec<String>,
    volumes: Vec<String>,
}

impl Cleanup {
    pub(crate) fn new(stack: &str) -> Self {
        Cleanup {
            stack: stack.to_string(),
            extra_services: Vec::new(),
            volumes: Vec::new(),
        }
    }
    /// Also remove this volume at the end (named volumes outlive their services).
    pub(crate) fn volume(&mut self, name: &str) {
        self.volumes.push(name.to_string());
    }
    /// Also remove this hand-made service at the end.
    pub(crate) fn service(&mut self, name: &str) {
        self.extra_services.push(name.to_string());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label=infra.stack={}", self.stack);
        let mut services = lines(&docker_quiet(&["service", "ls", "-q", "--filter", &filter]));
        services.extend(self.extra_services.iter().cloned());
        if !services.is_empty() {
            let mut args = vec!["service", "rm"];
            args.extend(services.iter().map(String::as_str));
            docker_quiet(&args);
        }
        for kind in ["secret", "config"] {
            let ids = lines(&docker_quiet(&[kind, "ls", "-q", "--filter", &filter]));
            for id in ids {
                docker_quiet(&[kind, "rm", &id]);
            }
        }
        docker_quiet(&["config", "rm", &format!("infra-lock_{}", self.stack)]);
        // Volumes and networks go once the removed services' tasks have stopped.
        let mut volumes = self.volumes.clone();
        for _ in 0..100 {
            volumes.retain(|v| {
                let gone = Command::new("docker")
                    .args(["volume", "rm", v])
                    .output()
                    .map(|o| {
                        o.status.success()
                            || String::from_utf8_lossy(&o.stderr)
                                .to_lowercase()
                                .contains("no such volume")
                    })
                    .unwrap_or(false);
                !gone
            });
            if volumes.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        for _ in 0..100 {
            let ids = lines(&docker_quiet(&["network", "ls", "-q", "--filter", &filter]));
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

/// Update and rollback policies fast enough for tests: 300 ms monitor, no delay.
pub(crate) fn quick_policy() -> UpdatePolicy {
    UpdatePolicy::new()
        .monitor(Duration::from_millis(300))
        .failure_action(FailureAction::Rollback)
}

/// A service that starts and stops in about a second: `init` (busybox ignores SIGTERM as PID
/// 1), a 1 s grace period, quick update/rollback policies and a short restart delay.
pub(crate) fn quick_service(name: &str, image: &str) -> SwarmService {
    SwarmService::new(name)
        .image(image)
        .args(["sleep", "100000"])
        .init(true)
        .stop_grace_period(Duration::from_secs(1))
        .update_policy(quick_policy())
        .rollback_policy(UpdatePolicy::new().monitor(Duration::from_millis(300)))
        .restart_policy(
            RestartCondition::Any,
            Duration::from_millis(500),
            0,
            Duration::ZERO,
        )
}

pub(crate) fn engine(p: &Arc<SwarmProvider>) -> Engine {
    Engine::new().with_provider_arc(p.clone())
}

pub(crate) async fn plan(engine: &Engine, stack: &Stack) -> Planned {
    engine
        .plan(stack, &PlanOptions::default())
        .await
        .unwrap_or_else(|e| panic!("plan: {e}"))
}

pub(crate) async fn destroy_plan(engine: &Engine, stack: &Stack) -> Planned {
    engine
        .plan(
            stack,
            &PlanOptions {
                destroy: true,
                ..PlanOptions::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("plan: {e}"))
}

pub(crate) async fn apply_planned(engine: &Engine, planned: &Planned) -> ApplyReport {
    engine
        .apply(planned, &NoObserver)
        .await
        .unwrap_or_else(|e| panic!("apply: {e}"))
}

/// Plans and applies, asserting success.
pub(crate) async fn converge(engine: &Engine, stack: &Stack) -> ApplyReport {
    let planned = plan(engine, stack).await;
    let report = apply_planned(engine, &planned).await;
    assert!(
        report.is_success(),
        "apply failed:\n{}\nplan was:\n{}",
        infra_core::render::report_text(&report),
        infra_core::render::plan_text(&planned.plan)
    );
    report
}

/// Asserts that a fresh plan changes nothing.
pub(crate) async fn assert_no_changes(engine: &Engine, stack: &Stack, step: &str) {
    let p = plan(engine, stack).await;
    assert!(
        p.plan.is_empty(),
        "{step}: expected no changes, got:\n{}",
        infra_core::render::plan_text(&p.plan)
    );
}

/// One task of a service as `docker service ps` shows it.
#[derive(Debug, Clone)]
pub(crate) struct TaskRow {
    pub(crate) id: String,
    pub(crate) image: String,
    pub(crate) desired: String,
    pub(crate) current: String,
}

/// Every task of a service (history included).
pub(crate) fn tasks(service: &str) -> Vec<TaskRow> {
    let out = docker(&[
        "service",
        "ps",
        "--no-trunc",
        service,
        "--format",
        "{{.ID}}|{{.Image}}|{{.DesiredState}}|{{.CurrentState}}",
    ]);
    lines(&out)
        .into_iter()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            TaskRow {
                id: f[0].to_string(),
                image: f[1].to_string(),
                desired: f[2].to_string(),
                current: f[3].to_string(),
            }
        })
        .collect()
}

/// The tasks currently running.
pub(crate) fn running(service: &str) -> Vec<TaskRow> {
    tasks(service)
        .into_iter()
        .filter(|t| t.desired == "Running" && t.current.starts_with("Running"))
        .collect()
}

/// Waits (up to 20 s) until `n` tasks of the service are running; returns them.
pub(crate) fn wait_running(service: &str, n: usize) -> Vec<TaskRow> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = running(service);
        if now.len() == n || std::time::Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
