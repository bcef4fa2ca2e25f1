//! The reconciler as a loop (`Engine::watch`): drift repaired run after run, failures counted and
//! backed off, giving up after too many in a row, a recovery resetting the count, cancellation.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use infra_core::declaration::{self, Marker};
use infra_core::dsl::{Address, Resource as _, Stack};
use infra_core::engine::Engine;
use infra_core::plan::PlanOptions;
use infra_core::provider::ProviderError;
use infra_core::reconcile::{ApplyOptions, RetryPolicy};
use infra_core::sandbox::{Fault, FaultOp, SandboxProvider};
use infra_core::watch::{RunReport, RunResult, WatchEnd, WatchObserver, WatchOptions};
use infra_core::Value;

/// A run as seen: number, what it did, failures in a row, the wait after it.
type SeenRun = (u64, &'static str, u32, Option<Duration>);

/// Remembers what each run did.
#[derive(Default)]
struct Seen(Mutex<Vec<SeenRun>>);

impl WatchObserver for Seen {
    fn run_ended(&self, r: RunReport) {
        let what = match &r.result {
            RunResult::NoChanges => "no changes",
            RunResult::Applied(report) if report.is_success() => "applied",
            RunResult::Applied(_) => "apply failed",
            RunResult::PlanHasErrors(_) => "plan has errors",
            RunResult::PlanFailed(_) | RunResult::ApplyFailed(_) => "failed",
            RunResult::NotOwnDeclaration(_) => "not its declaration",
            _ => "other",
        };
        self.0
            .lock()
            .unwrap()
            .push((r.run, what, r.consecutive_failures, r.next_in));
    }
}

impl Seen {
    fn runs(&self) -> Vec<(&'static str, u32)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, what, failures, _)| (*what, *failures))
            .collect()
    }
}

fn engine(sandbox: &Arc<SandboxProvider>) -> Engine {
    Engine::new()
        .with_provider_arc(sandbox.clone())
        .with_options(ApplyOptions {
            retry: RetryPolicy {
                max_attempts: 2,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(2),
            },
            ..ApplyOptions::default()
        })
}

fn quick(runs: Option<u64>, give_up_after: Option<u32>) -> WatchOptions {
    WatchOptions {
        interval: Duration::from_millis(5),
        jitter: 0.0,
        max_backoff: Duration::from_millis(40),
        runs,
        give_up_after,
        marker: None,
    }
}

fn read_fails(times: u32) -> Fault {
    Fault {
        op: FaultOp::Read,
        address: None,
        error: ProviderError::fatal("AccessDenied", "not allowed"),
        times,
        after_effect: false,
    }
}

#[tokio::test]
async fn each_run_repairs_what_drifted_since_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Arc::new(SandboxProvider::open(dir.path(), "test").unwrap());
    let e = engine(&sandbox);
    let stack = crate::kinds::small("watch");
    let seen = Seen::default();
    let end = e
        .watch(
            &stack,
            &PlanOptions::default(),
            &quick(Some(2), Some(3)),
            &seen,
            std::future::pending(),
        )
        .await;
    assert_eq!(
        end,
        WatchEnd::Done {
            runs: 2,
            last_failed: false
        }
    );
    assert_eq!(seen.runs(), vec![("applied", 0), ("no changes", 0)]);

    // someone resizes the web host by hand: the next watch puts it back
    resize_web_by_hand(&sandbox, 7);
    let seen = Seen::default();
    e.watch(
        &stack,
        &PlanOptions::default(),
        &quick(Some(2), Some(3)),
        &seen,
        std::future::pending(),
    )
    .await;
    assert_eq!(seen.runs(), vec![("applied", 0), ("no changes", 0)]);
    assert_eq!(size_of_web(&sandbox), Some(Value::Int(2)));
}

#[tokio::test]
async fn it_gives_up_after_consecutive_failures_backing_off_between_them() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Arc::new(SandboxProvider::open(dir.path(), "test").unwrap());
    sandbox.inject(read_fails(100));
    let e = engine(&sandbox);
    let seen = Seen::default();
    let end = e
        .watch(
            &crate::kinds::small("watch-fail"),
            &PlanOptions::default(),
            &quick(None, Some(4)),
            &seen,
            std::future::pending(),
        )
        .await;
    assert_eq!(
        end,
        WatchEnd::GaveUp {
            runs: 4,
            consecutive_failures: 4
        }
    );
    let runs = seen.0.lock().unwrap().clone();
    let waits: Vec<Option<u64>> = runs
        .iter()
        .map(|r| r.3.map(|d| d.as_millis() as u64))
        .collect();
    assert_eq!(
        waits,
        vec![Some(10), Some(20), Some(40), None],
        "5 ms doubled per failure, capped at 40 ms; none after giving up"
    );
    assert!(runs.iter().all(|r| r.1 == "failed"), "{runs:?}");
}

#[tokio::test]
async fn a_successful_run_resets_the_failure_count() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Arc::new(SandboxProvider::open(dir.path(), "test").unwrap());
    sandbox.inject(read_fails(2));
    let e = engine(&sandbox);
    let seen = Seen::default();
    let end = e
        .watch(
            &crate::kinds::small("watch-recover"),
            &PlanOptions::default(),
            &quick(Some(4), Some(3)),
            &seen,
            std::future::pending(),
        )
        .await;
    assert_eq!(
        end,
        WatchEnd::Done {
            runs: 4,
            last_failed: false
        }
    );
    assert_eq!(
        seen.runs(),
        vec![
            ("failed", 1),
            ("failed", 2),
            ("applied", 0),
            ("no changes", 0)
        ]
    );
}

#[tokio::test]
async fn bounded_runs_report_whether_the_last_one_failed() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Arc::new(SandboxProvider::open(dir.path(), "test").unwrap());
    sandbox.inject(read_fails(100));
    let end = engine(&sandbox)
        .watch(
            &crate::kinds::small("watch-last"),
            &PlanOptions::default(),
            &quick(Some(2), None),
            &Seen::default(),
            std::future::pending(),
        )
        .await;
    assert_eq!(
        end,
        WatchEnd::Done {
            runs: 2,
            last_failed: true
        }
    );
}

#[tokio::test]
async fn cancellation_ends_the_wait_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Arc::new(SandboxProvider::open(dir.path(), "test").unwrap());
    let t0 = Instant::now();
    let end = engine(&sandbox)
        .watch(
            &crate::kinds::small("watch-cancel"),
            &PlanOptions::default(),
            &WatchOptions::every(Duration::from_secs(3600)),
            &Seen::default(),
            tokio::time::sleep(Duration::from_millis(50)),
        )
        .await;
    assert_eq!(end, WatchEnd::Cancelled { runs: 1 });
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "not the hour's wait: {:?}",
        t0.elapsed()
    );
}

/// A stack whose `web` host has `size`, and a `controller` host that records the declaration's
/// digest in its `labels.declaration` (as the production stack's controller service does).
fn declared(size: i64) -> Stack {
    use crate::kinds::{Host, Network};
    let mut s = Stack::new("controlled");
    let net = s.add(Network::new("main", "10.0.0.0/16"));
    s.add(Host::new("web").network(&net).size(size));
    let controller = |digest: &str| {
        let mut h = Host::new("controller").network(&net);
        h.spec_mut().insert("labels", "declaration", digest);
        h
    };
    let mut probe = s.clone();
    probe.add(controller(""));
    let digest = declaration::digest(&probe);
    s.add(controller(&digest));
    s
}

/// Someone changes the web host's size by hand (drift).
fn resize_web_by_hand(sandbox: &SandboxProvider, size: i64) {
    let web = sandbox
        .objects()
        .unwrap()
        .into_iter()
        .find(|o| o.name == "web")
        .unwrap();
    assert!(sandbox.tamper(&web.id, "size", Value::Int(size)).unwrap());
}

fn size_of_web(sandbox: &SandboxProvider) -> Option<Value> {
    let web = sandbox
        .objects()
        .unwrap()
        .into_iter()
        .find(|o| o.name == "web")?;
    web.props.get("size").cloned()
}

#[tokio::test]
async fn a_controller_never_reverts_a_newer_declaration() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Arc::new(SandboxProvider::open(dir.path(), "test").unwrap());
    let e = engine(&sandbox);
    let (d1, d2) = (declared(2), declared(3));
    let marker = Marker::new(
        Address::new("test_host", "controller"),
        &["labels", "declaration"],
    );
    let controller = |runs| WatchOptions {
        marker: Some(marker.clone()),
        ..quick(Some(runs), Some(3))
    };

    // D1 deployed; its controller converges it and repairs drift.
    let planned = e.plan(&d1, &PlanOptions::default()).await.unwrap();
    e.apply(&planned, &infra_core::reconcile::NoObserver)
        .await
        .unwrap();
    resize_web_by_hand(&sandbox, 9);
    let seen = Seen::default();
    e.watch(
        &d1,
        &PlanOptions::default(),
        &controller(2),
        &seen,
        std::future::pending(),
    )
    .await;
    assert_eq!(seen.runs(), vec![("applied", 0), ("no changes", 0)]);
    assert_eq!(size_of_web(&sandbox), Some(Value::Int(2)));

    // CI applies D2: the D1 controller, still running, applies nothing run after run, and
    // these runs are no failures (it never gives up over them).
    let planned = e.plan(&d2, &PlanOptions::default()).await.unwrap();
    e.apply(&planned, &infra_core::reconcile::NoObserver)
        .await
        .unwrap();
    let seen = Seen::default();
    let end = e
        .watch(
            &d1,
            &PlanOptions::default(),
            &controller(4),
            &seen,
            std::future::pending(),
        )
        .await;
    assert_eq!(seen.runs(), vec![("not its declaration", 0); 4]);
    assert_eq!(
        end,
        WatchEnd::Done {
            runs: 4,
            last_failed: false
        }
    );
    assert_eq!(size_of_web(&sandbox), Some(Value::Int(3)), "D2 stands");

    // The D2 controller converges D2.
    resize_web_by_hand(&sandbox, 9);
    let seen = Seen::default();
    e.watch(
        &d2,
        &PlanOptions::default(),
        &controller(1),
        &seen,
        std::future::pending(),
    )
    .await;
    assert_eq!(seen.runs(), vec![("applied", 0)]);
    assert_eq!(size_of_web(&sandbox), Some(Value::Int(3)));

    // The marker gone (the stack destroyed, or its controller removed): nothing is recreated.
    let destroy = PlanOptions {
        destroy: true,
        ..PlanOptions::default()
    };
    let planned = e.plan(&d2, &destroy).await.unwrap();
    e.apply(&planned, &infra_core::reconcile::NoObserver)
        .await
        .unwrap();
    let seen = Seen::default();
    e.watch(
        &d2,
        &PlanOptions::default(),
        &controller(1),
        &seen,
        std::future::pending(),
    )
    .await;
    assert_eq!(seen.runs(), vec![("not its declaration", 0)]);
    assert!(sandbox.objects().unwrap().is_empty());

    // What a skipped run says.
    let planned = e.plan(&d1, &PlanOptions::default()).await.unwrap();
    let why = marker.check(&planned).unwrap_err().to_string();
    assert!(
        why.starts_with("no declaration is recorded on test_host.controller.labels.declaration"),
        "{why}"
    );
}

#[test]
fn the_digest_recorded_differs_between_declarations() {
    let digest_of = |s: &Stack| {
        s.resources()
            .iter()
            .find(|r| r.address.name() == "controller")
            .and_then(|r| {
                r.props
                    .get("labels")?
                    .as_map()?
                    .get("declaration")?
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap()
    };
    assert_eq!(digest_of(&declared(2)), digest_of(&declared(2)));
    assert_ne!(digest_of(&declared(2)), digest_of(&declared(3)));
}
