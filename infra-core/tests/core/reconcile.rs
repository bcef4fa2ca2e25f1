//! Applying: ordering, concurrency, retries, failures, lost responses, convergence after faults.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use infra_core::dsl::{Address, Resource, Stack};
use infra_core::engine::Engine;
use infra_core::plan::PlanOptions;
use infra_core::provider::{Observed, OpContext, Provider, ProviderError, ReadResult, Resolved};
use infra_core::reconcile::{ApplyOptions, NoObserver, OpStatus, RetryPolicy};
use infra_core::render;
use infra_core::sandbox::{Fault, FaultOp, SandboxProvider};

use crate::kinds::{Host, Network};
use crate::plan::{converge, plan};

/// Delegates to the sandbox, recording the order of calls and the peak number in flight.
struct Recording {
    inner: SandboxProvider,
    log: Mutex<Vec<String>>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    delay: Duration,
}

impl Recording {
    fn new(dir: &std::path::Path, delay: Duration) -> Arc<Self> {
        Arc::new(Recording {
            inner: SandboxProvider::open(dir, "test").unwrap(),
            log: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            delay,
        })
    }
    async fn around<T>(&self, what: String, f: impl std::future::Future<Output = T>) -> T {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let r = f.await;
        self.log.lock().unwrap().push(what);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        r
    }
    fn position(&self, entry: &str) -> usize {
        let log = self.log.lock().unwrap();
        log.iter()
            .rposition(|e| e == entry)
            .unwrap_or_else(|| panic!("{entry} not in {log:?}"))
    }
}

#[async_trait]
impl Provider for Recording {
    fn name(&self) -> &str {
        "test"
    }
    async fn read(&self, stack: &str) -> Result<ReadResult, ProviderError> {
        self.inner.read(stack).await
    }
    async fn create(&self, ctx: &OpContext, d: &Resolved) -> Result<Observed, ProviderError> {
        self.around(format!("create {}", d.address), self.inner.create(ctx, d))
            .await
    }
    async fn update(
        &self,
        ctx: &OpContext,
        c: &Observed,
        d: &Resolved,
        ch: &[String],
    ) -> Result<Observed, ProviderError> {
        self.around(
            format!("update {}", d.address),
            self.inner.update(ctx, c, d, ch),
        )
        .await
    }
    async fn delete(&self, ctx: &OpContext, c: &Observed) -> Result<(), ProviderError> {
        self.around(format!("delete {}", c.address), self.inner.delete(ctx, c))
            .await
    }
}

fn fast_retries() -> ApplyOptions {
    ApplyOptions {
        concurrency: 10,
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        },
        ..ApplyOptions::default()
    }
}

fn addr(s: &str) -> Address {
    s.parse().unwrap()
}

#[tokio::test]
async fn concurrency_is_bounded_and_used() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recording::new(dir.path(), Duration::from_millis(20));
    let e = Engine::new()
        .with_provider_arc(rec.clone())
        .with_options(ApplyOptions {
            concurrency: 4,
            ..fast_retries()
        });
    let mut s = Stack::new("conc");
    for i in 0..40 {
        s.add(Network::new(&format!("n{i}"), &format!("10.{i}.0.0/16")));
    }
    converge(&e, &s).await;
    let peak = rec.peak.load(Ordering::SeqCst);
    assert!(peak > 1 && peak <= 4, "peak in flight {peak}");
}

/// The scheduler leaves no slot idle while an operation is ready, and starts a dependent as
/// soon as what it waits for is done: on a sandbox where every call takes 50 ms (tokio's paused
/// clock, so the instants are exact), an apply takes exactly its ideal time: the lock, the
/// re-read and the unlock (4 calls), plus ⌈n / concurrency⌉ rounds of independent creates, or
/// the longest chain when it is longer. `bench/run overhead` measures the same on a real clock.
#[tokio::test(start_paused = true)]
async fn an_apply_takes_its_ideal_time_when_every_call_takes_the_same() {
    let latency = Duration::from_millis(50);
    let apply_time = |s: Stack, concurrency: usize| async move {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = SandboxProvider::open(dir.path(), "test")
            .unwrap()
            .with_latency(latency);
        let e = Engine::new()
            .with_provider(sandbox)
            .with_options(ApplyOptions {
                concurrency,
                ..ApplyOptions::default()
            });
        let p = plan(&e, &s).await;
        let t = tokio::time::Instant::now();
        let r = e.apply(&p, &NoObserver).await.unwrap();
        assert!(r.is_success(), "{}", render::report_text(&r));
        t.elapsed()
    };
    // 70 independent networks at 32: ⌈70 / 32⌉ = 3 rounds.
    let mut s = Stack::new("wide");
    for i in 0..70 {
        s.add(Network::new(&format!("n{i}"), &format!("10.{i}.0.0/16")));
    }
    assert_eq!(apply_time(s, 32).await, latency * (4 + 3));
    // 6 chains of depth 6 (a network, then hosts each waiting for the previous one) at 32:
    // 36 creates would fit in 2 rounds, the chains need 6.
    let mut s = Stack::new("deep");
    for c in 0..6 {
        let net = s.add(Network::new(&format!("n{c}"), &format!("10.{c}.0.0/16")));
        let mut prev = s.add(Host::new(&format!("h{c}-0")).network(&net));
        for d in 1..5 {
            prev = s.add(Host::new(&format!("h{c}-{d}")).network(&net).peer(&prev));
        }
    }
    assert_eq!(apply_time(s, 32).await, latency * (4 + 6));
    // The same chains at 4: 36 creates need at least 9 rounds; the chains never starve the
    // slots (each completed create makes the next of its chain ready).
    let mut s = Stack::new("deep4");
    for c in 0..6 {
        let net = s.add(Network::new(&format!("n{c}"), &format!("10.{c}.0.0/16")));
        let mut prev = s.add(Host::new(&format!("h{c}-0")).network(&net));
        for d in 1..5 {
            prev = s.add(Host::new(&format!("h{c}-{d}")).network(&net).peer(&prev));
        }
    }
    assert_eq!(apply_time(s, 4).await, latency * (4 + 9));
}

#[tokio::test]
async fn creates_follow_dependencies_and_deletes_go_in_reverse() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recording::new(dir.path(), Duration::from_millis(1));
    let e = Engine::new().with_provider_arc(rec.clone());
    let mut s = Stack::new("ord");
    let net = s.add(Network::new("n", "10.0.0.0/16"));
    s.add(Host::new("h").network(&net));
    converge(&e, &s).await;
    assert!(rec.position("create test_network.n") < rec.position("create test_host.h"));

    // Replace the network (delete first): the host goes first, comes back last.
    s.get_mut(&addr("test_network.n"))
        .unwrap()
        .set("cidr", "10.1.0.0/16");
    converge(&e, &s).await;
    assert!(rec.position("delete test_host.h") < rec.position("delete test_network.n"));
    assert!(rec.position("delete test_network.n") < rec.position("create test_network.n"));

    let p = e
        .plan(
            &s,
            &PlanOptions {
                destroy: true,
                ..PlanOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(p.plan.summary.destroy, 2);
    assert!(e.apply(&p, &NoObserver).await.unwrap().is_success());
    let log = rec.log.lock().unwrap().clone();
    let last_two: Vec<&String> = log.iter().rev().take(2).collect();
    assert_eq!(last_two, ["delete test_network.n", "delete test_host.h"]);
}

/// Found by the property test (tests/core/fuzz.rs): `h1` (create before destroy) moves off `n3`
/// while `n3` is replaced and `h3`, which depends on `h1`, stays on `n3`. Old `h1` must outlive
/// the new `h3`, which needs the new `n3`, so old `n3` must outlive the new `n3`: the
/// replacement of `n3` inherits create-before-destroy from `h1` through the old object's
/// reference, or the operations form a cycle (delete h1 -> delete n3 -> create n3 -> create h3
/// -> delete h1) and nothing can be applied.
#[tokio::test]
async fn create_before_destroy_is_inherited_through_what_the_old_object_refers_to() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recording::new(dir.path(), Duration::from_millis(1));
    let e = Engine::new().with_provider_arc(rec.clone());
    let stack = |n3_cidr: &str, h1_on_n3: bool| {
        let mut s = Stack::new("cbd");
        let n0 = s.add(Network::new("n0", "10.0.0.0/16"));
        let n3 = s.add(Network::new("n3", n3_cidr));
        let h1 = s.add(
            Host::new("h1")
                .network(if h1_on_n3 { &n3 } else { &n0 })
                .create_before_destroy(),
        );
        let h3 = s.add(Host::new("h3").network(&n3));
        s.add_dependency(&h3, &h1);
        s
    };
    converge(&e, &stack("10.3.0.0/16", true)).await;
    let next = stack("10.4.0.0/16", false);
    let p = plan(&e, &next).await;
    let n3 = p.plan.change("test_network.n3").unwrap();
    assert_eq!(
        n3.action,
        infra_core::plan::Action::CreateThenDelete,
        "{}",
        n3.reason
    );
    assert!(
        n3.reason.contains("inherited from test_host.h1"),
        "{}",
        n3.reason
    );
    let r = e.apply(&p, &NoObserver).await.unwrap();
    assert!(r.is_success(), "{}", render::report_text(&r));
    assert!(rec.position("delete test_host.h1") < rec.position("delete test_network.n3"));
    assert!(rec.position("create test_host.h3") < rec.position("delete test_host.h1"));
    assert!(plan(&e, &next).await.plan.is_empty());
}

#[tokio::test]
async fn retryable_errors_are_retried_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Arc::new(SandboxProvider::open(dir.path(), "test").unwrap());
    sandbox.inject(Fault {
        op: FaultOp::Create,
        address: None,
        error: ProviderError::retryable("Throttling", "Rate exceeded"),
        times: 2,
        after_effect: false,
    });
    let e = Engine::new()
        .with_provider_arc(sandbox.clone())
        .with_options(fast_retries());
    let s = crate::kinds::small("retry");
    let p = plan(&e, &s).await;
    let r = e.apply(&p, &NoObserver).await.unwrap();
    assert!(r.is_success(), "{}", render::report_text(&r));
    assert_eq!(
        r.outcomes.iter().map(|o| o.attempts).sum::<u32>(),
        5,
        "3 creates, 2 of them throttled once each"
    );
}

#[tokio::test]
async fn a_failure_skips_dependents_keeps_independent_branches_and_a_rerun_converges() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Arc::new(SandboxProvider::open(dir.path(), "test").unwrap());
    sandbox.inject(Fault {
        op: FaultOp::Create,
        address: Some(addr("test_network.a")),
        error: ProviderError::fatal("InvalidParameterValue", "bad cidr"),
        times: 1,
        after_effect: false,
    });
    let e = Engine::new()
        .with_provider_arc(sandbox.clone())
        .with_options(fast_retries());
    let mut s = Stack::new("fail");
    let a = s.add(Network::new("a", "10.0.0.0/16"));
    let b = s.add(Network::new("b", "10.1.0.0/16"));
    s.add(Host::new("on-a").network(&a));
    s.add(Host::new("on-b").network(&b));
    let p = plan(&e, &s).await;
    let r = e.apply(&p, &NoObserver).await.unwrap();
    assert!(!r.is_success());
    let status = |a: &str| {
        r.outcomes
            .iter()
            .find(|o| o.address == a)
            .unwrap()
            .status
            .clone()
    };
    assert_eq!(
        status("test_network.a"),
        OpStatus::Failed {
            error: "InvalidParameterValue: bad cidr".into()
        }
    );
    assert_eq!(
        status("test_host.on-a"),
        OpStatus::Skipped {
            because: "depends on test_network.a (create) failed".into()
        }
    );
    assert_eq!(status("test_network.b"), OpStatus::Succeeded);
    assert_eq!(status("test_host.on-b"), OpStatus::Succeeded);
    let text = render::report_text(&r);
    assert!(
        text.contains("Apply failed: 2 added, 0 changed, 0 destroyed; 1 failed, 1 skipped."),
        "{text}"
    );

    let p = plan(&e, &s).await;
    assert_eq!(
        p.plan.summary.add, 2,
        "only what failed or was skipped remains"
    );
    converge(&e, &s).await;
    assert!(plan(&e, &s).await.plan.is_empty());
}

#[tokio::test]
async fn a_lost_create_response_makes_no_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Arc::new(SandboxProvider::open(dir.path(), "test").unwrap());
    // The create happens, then the client hears a 503: the retry carries the same token.
    sandbox.inject(Fault {
        op: FaultOp::Create,
        address: Some(addr("test_network.main")),
        error: ProviderError::retryable("ServiceUnavailable", "503"),
        times: 1,
        after_effect: true,
    });
    let e = Engine::new()
        .with_provider_arc(sandbox.clone())
        .with_options(fast_retries());
    let s = crate::kinds::small("lost");
    converge(&e, &s).await;
    let objects = sandbox.objects().unwrap();
    assert_eq!(objects.len(), 3, "{objects:#?}");
    assert!(plan(&e, &s).await.plan.is_empty());
}

#[tokio::test]
async fn a_lost_response_that_exhausts_retries_still_converges_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Arc::new(SandboxProvider::open(dir.path(), "test").unwrap());
    sandbox.inject(Fault {
        op: FaultOp::Create,
        address: Some(addr("test_network.main")),
        error: ProviderError::fatal("InternalError", "connection reset"),
        times: 1,
        after_effect: true,
    });
    let e = Engine::new()
        .with_provider_arc(sandbox.clone())
        .with_options(fast_retries());
    let s = crate::kinds::small("lost2");
    let p = plan(&e, &s).await;
    assert!(!e.apply(&p, &NoObserver).await.unwrap().is_success());
    // The next run reads the object by its ownership tag: it is not created twice.
    let p = plan(&e, &s).await;
    assert_eq!(
        p.plan.change("test_network.main").unwrap().action,
        infra_core::plan::Action::NoOp
    );
    converge(&e, &s).await;
    assert_eq!(sandbox.objects().unwrap().len(), 3);
}

#[tokio::test]
async fn drift_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Arc::new(SandboxProvider::open(dir.path(), "test").unwrap());
    let e = Engine::new().with_provider_arc(sandbox.clone());
    let s = crate::kinds::small("drift");
    converge(&e, &s).await;
    let web = sandbox
        .objects()
        .unwrap()
        .into_iter()
        .find(|o| o.name == "web")
        .unwrap();
    assert!(sandbox.tamper(&web.id, "size", 99.into()).unwrap());
    let p = plan(&e, &s).await;
    let c = p.plan.change("test_host.web").unwrap();
    assert_eq!(c.action, infra_core::plan::Action::Update);
    assert!(render::plan_text(&p.plan).contains("~ size = 99 -> 2"));
    converge(&e, &s).await;
    assert!(plan(&e, &s).await.plan.is_empty());
}

/// A provider whose ids are the objects' names (as IAM's are): a replacement gets the same id.
#[derive(Default)]
struct NamedIds {
    objects: Mutex<std::collections::BTreeMap<Address, Observed>>,
    updates: Mutex<Vec<(String, Vec<String>)>>,
}

#[async_trait]
impl Provider for NamedIds {
    fn name(&self) -> &str {
        "test"
    }
    async fn read(&self, _stack: &str) -> Result<ReadResult, ProviderError> {
        Ok(ReadResult {
            resources: self.objects.lock().unwrap().values().cloned().collect(),
            api_calls: 1,
        })
    }
    async fn create(&self, _ctx: &OpContext, d: &Resolved) -> Result<Observed, ProviderError> {
        let mut props = d.props.clone();
        props.insert("version".into(), 1.into());
        let o = Observed {
            address: d.address.clone(),
            id: d.address.name().to_string(),
            props: props.into(),
            protect: false,
            declared: None,
        };
        self.objects
            .lock()
            .unwrap()
            .insert(d.address.clone(), o.clone());
        Ok(o)
    }
    async fn update(
        &self,
        _ctx: &OpContext,
        c: &Observed,
        d: &Resolved,
        ch: &[String],
    ) -> Result<Observed, ProviderError> {
        self.updates
            .lock()
            .unwrap()
            .push((d.address.to_string(), ch.to_vec()));
        let mut o = c.clone();
        o.props.extend(d.props.clone());
        self.objects
            .lock()
            .unwrap()
            .insert(d.address.clone(), o.clone());
        Ok(o)
    }
    async fn delete(&self, _ctx: &OpContext, c: &Observed) -> Result<(), ProviderError> {
        self.objects.lock().unwrap().remove(&c.address);
        Ok(())
    }
}

#[tokio::test]
async fn dependents_of_a_replacement_are_updated_even_when_the_new_id_is_the_old_one() {
    let provider = Arc::new(NamedIds::default());
    let e = Engine::new().with_provider_arc(provider.clone());
    let mut s = Stack::new("named");
    let n1 = s.add(Network::new("n1", "10.0.0.0/16"));
    let n2 = s.add(Network::new("n2", "10.1.0.0/16"));
    let a = s.add(Host::new("a").network(&n1));
    let mut b = Host::new("b").network(&n1);
    infra_core::dsl::Resource::spec_mut(&mut b).set("attached_to", a.id());
    s.add(b);
    converge(&e, &s).await;
    provider.updates.lock().unwrap().clear();

    // Move `a` to the other network: it is replaced under the same name, so the same id. `b`'s
    // `attached_to` resolves to an unchanged value, yet the relationship went with the old
    // object: the update must still reach the provider.
    s.get_mut(&addr("test_host.a"))
        .unwrap()
        .set("network_id", n2.id());
    let p = plan(&e, &s).await;
    assert!(p.plan.change("test_host.a").unwrap().action.is_replace());
    assert_eq!(
        p.plan.change("test_host.b").unwrap().action,
        infra_core::plan::Action::Update
    );
    let r = e.apply(&p, &NoObserver).await.unwrap();
    assert!(r.is_success(), "{}", render::report_text(&r));
    let updates = provider.updates.lock().unwrap().clone();
    assert!(
        updates
            .iter()
            .any(|(a, ch)| a == "test_host.b" && ch == &vec!["attached_to".to_string()]),
        "the host was not told: {updates:?}"
    );
}

/// A provider whose creates wait (as a NAT gateway's does) through the core's poll, publishing
/// what they wait for.
struct Waiting {
    inner: SandboxProvider,
    wait: Duration,
}

#[async_trait]
impl Provider for Waiting {
    fn name(&self) -> &str {
        "test"
    }
    async fn read(&self, stack: &str) -> Result<ReadResult, ProviderError> {
        self.inner.read(stack).await
    }
    async fn create(&self, ctx: &OpContext, d: &Resolved) -> Result<Observed, ProviderError> {
        let until = tokio::time::Instant::now() + self.wait;
        let policy = infra_core::retry::PollPolicy::new(
            Duration::from_secs(600),
            Duration::from_secs(1),
            Duration::from_secs(2),
        );
        infra_core::retry::poll(
            &format!("{} to become available", d.address),
            &policy,
            || async move {
                Ok(if tokio::time::Instant::now() >= until {
                    infra_core::retry::Probe::Done(())
                } else {
                    infra_core::retry::Probe::Waiting("pending".into())
                })
            },
        )
        .await?;
        self.inner.create(ctx, d).await
    }
    async fn update(
        &self,
        ctx: &OpContext,
        c: &Observed,
        d: &Resolved,
        ch: &[String],
    ) -> Result<Observed, ProviderError> {
        self.inner.update(ctx, c, d, ch).await
    }
    async fn delete(&self, ctx: &OpContext, c: &Observed) -> Result<(), ProviderError> {
        self.inner.delete(ctx, c).await
    }
}

/// Heartbeats the observer gets: (address, elapsed seconds, what it waits for).
#[derive(Default)]
struct Heartbeats(Mutex<Vec<(String, u64, Option<String>)>>);

impl infra_core::reconcile::ApplyObserver for Heartbeats {
    fn op_waiting(
        &self,
        address: &str,
        _: infra_core::reconcile::OpKind,
        elapsed: Duration,
        waiting_for: Option<&str>,
    ) {
        self.0.lock().unwrap().push((
            address.to_string(),
            elapsed.as_secs(),
            waiting_for.map(str::to_string),
        ));
    }
}

/// An operation that waits for minutes is reported every heartbeat with what it waits for, so
/// a CI log shows progress where a terminal shows a bar.
#[tokio::test(start_paused = true)]
async fn a_long_operation_is_reported_every_heartbeat_with_what_it_waits_for() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(Waiting {
        inner: SandboxProvider::open(dir.path(), "test").unwrap(),
        wait: Duration::from_secs(35),
    });
    let e = Engine::new()
        .with_provider_arc(provider)
        .with_options(ApplyOptions {
            heartbeat: Duration::from_secs(10),
            ..ApplyOptions::default()
        });
    let mut s = Stack::new("hb");
    s.add(Network::new("main", "10.0.0.0/16"));
    let p = plan(&e, &s).await;
    let observer = Heartbeats::default();
    let report = e.apply(&p, &observer).await.unwrap();
    assert!(report.is_success(), "{}", render::report_text(&report));
    let beats = observer.0.lock().unwrap().clone();
    assert_eq!(beats.len(), 3, "at 10, 20 and 30 s: {beats:?}");
    for (i, (address, elapsed, waiting)) in beats.iter().enumerate() {
        assert_eq!(address, "test_network.main");
        assert!((*elapsed).abs_diff(10 * (i as u64 + 1)) <= 1, "{beats:?}");
        assert_eq!(
            waiting.as_deref(),
            Some("test_network.main to become available: pending")
        );
    }
}

/// A planned update must never change a field that forces replacement: the reconciler refuses
/// it before any provider call (both providers used to repeat this check).
#[test]
fn the_reconciler_refuses_an_in_place_change_of_a_force_new_field() {
    let spec = Network::new("main", "10.1.0.0/16").into_spec();
    let desired = Resolved {
        address: spec.address.clone(),
        schema: spec.schema,
        props: spec
            .props
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        protect: false,
    };
    let e = infra_core::reconcile::force_new_guard(&desired, &["cidr".into()]).unwrap_err();
    assert_eq!(e.code, "ForceNew");
    assert!(e.message.starts_with("test_network.main: `cidr`"), "{e}");
    infra_core::reconcile::force_new_guard(&desired, &["size".into()]).unwrap();
}

/// Start, heartbeat and end events in the order the observer got them.
#[derive(Default)]
struct Events(Mutex<Vec<String>>);

impl infra_core::reconcile::ApplyObserver for Events {
    fn op_started(&self, address: &str, _: infra_core::reconcile::OpKind) {
        self.0.lock().unwrap().push(format!("start {address}"));
    }
    fn op_waiting(
        &self,
        address: &str,
        _: infra_core::reconcile::OpKind,
        _: Duration,
        waiting_for: Option<&str>,
    ) {
        self.0
            .lock()
            .unwrap()
            .push(format!("wait {address}: {}", waiting_for.unwrap_or("-")));
    }
    fn op_finished(&self, event: &infra_core::reconcile::AuditEvent) {
        self.0
            .lock()
            .unwrap()
            .push(format!("end {}", event.outcome.address));
    }
}

/// An operation queued behind the concurrency limit has not begun: it starts when it gets a
/// slot, and until then its heartbeat says it waits for one.
#[tokio::test(start_paused = true)]
async fn a_queued_operation_begins_when_it_gets_a_slot_and_says_it_waits_for_one() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(Waiting {
        inner: SandboxProvider::open(dir.path(), "test").unwrap(),
        wait: Duration::from_secs(15),
    });
    let e = Engine::new()
        .with_provider_arc(provider)
        .with_options(ApplyOptions {
            concurrency: 1,
            heartbeat: Duration::from_secs(10),
            ..ApplyOptions::default()
        });
    let mut s = Stack::new("slots");
    s.add(Network::new("a", "10.0.0.0/16"));
    s.add(Network::new("b", "10.1.0.0/16"));
    let p = plan(&e, &s).await;
    let observer = Events::default();
    assert!(e.apply(&p, &observer).await.unwrap().is_success());
    let events = observer.0.lock().unwrap().clone();
    assert_eq!(
        events,
        [
            "start test_network.a",
            "wait test_network.a: test_network.a to become available: pending",
            "wait test_network.b: a free slot (1 at a time)",
            "end test_network.a",
            "start test_network.b",
            "wait test_network.b: test_network.b to become available: pending",
            "end test_network.b",
        ]
    );
}
