//! The sandbox provider: persistence, ownership, locking, and the conformance suite.

use std::collections::BTreeMap;
use std::sync::Arc;

use infra_core::conformance::{self, Case};
use infra_core::engine::{Engine, Error};
use infra_core::plan::PlanOptions;
use infra_core::provider::{LockInfo, Provider};
use infra_core::reconcile::NoObserver;
use infra_core::sandbox::SandboxProvider;

use crate::kinds::{small, Host, Network};
use crate::plan::{converge, plan};

#[tokio::test]
async fn passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(SandboxProvider::open(dir.path(), "test").unwrap());
    let case = Case {
        build: Box::new(small),
        update: Box::new(|s| {
            s.get_mut(&"test_host.web".parse().unwrap())
                .unwrap()
                .set("size", 7);
        }),
        replace: Some(Box::new(|s| {
            s.get_mut(&"test_network.main".parse().unwrap())
                .unwrap()
                .set("cidr", "10.7.0.0/16");
        })),
    };
    let out = conformance::run(provider, &case, "conf").await;
    assert_eq!(out.resources, 3);
    assert!(out.applies >= 6, "{out:?}");
}

#[tokio::test]
async fn state_survives_reopening_and_is_shared_between_instances() {
    let dir = tempfile::tempdir().unwrap();
    let s = small("persist");
    {
        let e = Engine::new().with_provider(SandboxProvider::open(dir.path(), "test").unwrap());
        converge(&e, &s).await;
    }
    let e = Engine::new().with_provider(SandboxProvider::open(dir.path(), "test").unwrap());
    assert!(plan(&e, &s).await.plan.is_empty());
    // Two instances on one directory see each other's writes (as two processes would).
    let other = SandboxProvider::open(dir.path(), "test").unwrap();
    let mut s2 = s.clone();
    s2.remove(&"test_host.web".parse().unwrap());
    let e2 = Engine::new().with_provider(other);
    converge(&e2, &s2).await;
    assert_eq!(plan(&e, &s).await.plan.summary.add, 1);
}

#[tokio::test]
async fn objects_not_owned_by_the_stack_are_never_read_or_touched() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Arc::new(SandboxProvider::open(dir.path(), "test").unwrap());
    let foreign = sandbox
        .insert_foreign(
            "test_network",
            "main",
            BTreeMap::from([("cidr".to_string(), "10.0.0.0/16".into())]),
        )
        .unwrap();
    let e = Engine::new().with_provider_arc(sandbox.clone());
    let s = small("own");
    converge(&e, &s).await;
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
    assert_eq!(p.plan.summary.destroy, 3);
    assert!(e.apply(&p, &NoObserver).await.unwrap().is_success());
    let left = sandbox.objects().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, foreign);
}

#[tokio::test]
async fn a_held_lock_names_its_holder_and_can_be_broken() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Arc::new(SandboxProvider::open(dir.path(), "test").unwrap());
    let holder = LockInfo {
        holder: "ci-runner:pid42:deadbeef".into(),
        since_unix: 1,
        operation: "apply".into(),
    };
    sandbox.lock("lk", &holder).await.unwrap();
    let e = Engine::new().with_provider_arc(sandbox.clone());
    let mut s = infra_core::Stack::new("lk");
    let n = s.add(Network::new("n", "10.0.0.0/16"));
    s.add(Host::new("h").network(&n));
    let p = plan(&e, &s).await;
    let err = e.apply(&p, &NoObserver).await.unwrap_err();
    match &err {
        Error::Locked { stack, holder } => {
            assert_eq!(
                (stack.as_str(), holder.holder.as_str()),
                ("lk", "ci-runner:pid42:deadbeef")
            )
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(
            "stack \"lk\" is locked by ci-runner:pid42:deadbeef (apply, since unix time 1)"
        ),
        "{msg}"
    );
    // How to break it is the program's to say (the deploy program names its command line).
    assert!(!msg.contains("force-unlock"), "{msg}");
    assert!(sandbox.objects().unwrap().is_empty(), "nothing was touched");

    let broken = e.force_unlock("lk", &Default::default()).await.unwrap();
    assert_eq!(broken["test"].holder, "ci-runner:pid42:deadbeef");
    converge(&e, &s).await;
}

#[tokio::test]
async fn a_plan_made_stale_by_another_run_is_refused_unless_that_run_did_its_work() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Arc::new(SandboxProvider::open(dir.path(), "test").unwrap());
    let e = Engine::new().with_provider_arc(sandbox.clone());
    let s = small("stale");
    let p1 = plan(&e, &s).await;
    converge(&e, &s).await;
    // The other run did what p1 was to do: nothing is left, nothing is done.
    let report = e.apply(&p1, &NoObserver).await.unwrap();
    assert!(report.outcomes.is_empty(), "{report:?}");
    // The objects changed and don't match the declaration: p1 is refused.
    let web = sandbox
        .objects()
        .unwrap()
        .into_iter()
        .find(|o| o.name == "web")
        .unwrap();
    sandbox.tamper(&web.id, "size", 99.into()).unwrap();
    let err = e.apply(&p1, &NoObserver).await.unwrap_err();
    assert!(matches!(err, Error::StalePlan(_)), "{err}");
}

#[tokio::test]
async fn a_torn_last_journal_line_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let s = small("torn");
    {
        let e = Engine::new().with_provider(SandboxProvider::open(dir.path(), "test").unwrap());
        converge(&e, &s).await;
    }
    let path = dir.path().join("test.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"op\":\"put\",\"object\":{\"id\":\"half");
    std::fs::write(&path, text).unwrap();
    let e = Engine::new().with_provider(SandboxProvider::open(dir.path(), "test").unwrap());
    assert!(plan(&e, &s).await.plan.is_empty());
}

#[tokio::test]
async fn a_lock_left_by_a_dead_process_is_called_stale() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Arc::new(SandboxProvider::open(dir.path(), "test").unwrap());
    // A pid that can't be running: above the kernel's pid_max.
    let mut dead = LockInfo::for_this_process("apply");
    let host = dead.holder.split(':').next().unwrap().to_string();
    dead.holder = format!("{host}:pid4194999:0badf00d");
    sandbox.lock("stale", &dead).await.unwrap();
    let e = Engine::new().with_provider_arc(sandbox.clone());
    let mut s = infra_core::Stack::new("stale");
    s.add(Network::new("n", "10.0.0.0/16"));
    let err = e
        .apply(&plan(&e, &s).await, &NoObserver)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("that process is no longer running on this host, so the lock is stale"),
        "{err}"
    );
    // Our own pid is alive: not stale.
    assert_eq!(LockInfo::for_this_process("apply").is_stale(), Some(false));
}

/// `with_latency`: a call waits its round trip before it takes effect, and any number of calls
/// wait at once (tokio's paused clock: the instants are exact and cost no real time).
#[tokio::test(start_paused = true)]
async fn latency_delays_each_call_before_it_takes_effect_and_calls_wait_together() {
    let dir = tempfile::tempdir().unwrap();
    let latency = std::time::Duration::from_millis(50);
    let sandbox = Arc::new(
        SandboxProvider::open(dir.path(), "test")
            .unwrap()
            .with_latency(latency),
    );
    let e = Engine::new().with_provider_arc(sandbox.clone());
    let mut s = infra_core::Stack::new("slow");
    for i in 0..20 {
        s.add(Network::new(&format!("n{i}"), &format!("10.{i}.0.0/16")));
    }
    let t = tokio::time::Instant::now();
    let p = plan(&e, &s).await;
    assert_eq!(t.elapsed(), latency, "a plan is one read");

    // One create, watched half-way: nothing stored before its round trip is over.
    let spec = p.graph().get(&"test_network.n0".parse().unwrap()).unwrap();
    let desired = infra_core::provider::Resolved {
        address: spec.address.clone(),
        schema: spec.schema,
        props: spec.props.clone(),
        protect: false,
    };
    let ctx = infra_core::provider::OpContext {
        stack: "slow".into(),
        idempotency_token: "t-1".into(),
        attempt: 1,
    };
    let t = tokio::time::Instant::now();
    let create = tokio::spawn({
        let sandbox = sandbox.clone();
        async move { sandbox.create(&ctx, &desired).await }
    });
    tokio::time::sleep(latency / 2).await;
    assert!(
        sandbox.objects().unwrap().is_empty(),
        "stored before its latency"
    );
    create.await.unwrap().unwrap();
    assert_eq!(t.elapsed(), latency);
    assert_eq!(sandbox.objects().unwrap().len(), 1);

    // Twenty calls at once take one latency, not twenty.
    let t = tokio::time::Instant::now();
    let reads = futures::future::join_all((0..20).map(|_| sandbox.read("slow"))).await;
    assert!(reads.iter().all(Result::is_ok));
    assert_eq!(t.elapsed(), latency);
}

/// A create retried with its idempotency token returns the object the first attempt made, in
/// this instance and in another one reading the same journal; once that object is deleted, the
/// token makes a new one.
#[tokio::test]
async fn a_retried_create_returns_the_first_object_until_it_is_deleted() {
    use infra_core::provider::{OpContext, Resolved};
    let dir = tempfile::tempdir().unwrap();
    let a = SandboxProvider::open(dir.path(), "test").unwrap();
    let mut s = infra_core::Stack::new("tok");
    s.add(Network::new("n", "10.0.0.0/16"));
    s.add(Network::new("m", "10.1.0.0/16"));
    let e = Engine::new().with_provider(SandboxProvider::open(dir.path(), "test").unwrap());
    let p = plan(&e, &s).await;
    let desired = |name: &str| {
        let spec = p
            .graph()
            .get(&format!("test_network.{name}").parse().unwrap())
            .unwrap();
        Resolved {
            address: spec.address.clone(),
            schema: spec.schema,
            props: spec.props.clone(),
            protect: false,
        }
    };
    let ctx = |token: &str| OpContext {
        stack: "tok".into(),
        idempotency_token: token.into(),
        attempt: 1,
    };
    let first = a.create(&ctx("t-n"), &desired("n")).await.unwrap();
    let other = a.create(&ctx("t-m"), &desired("m")).await.unwrap();
    assert_ne!(first.id, other.id);
    assert_eq!(
        a.create(&ctx("t-n"), &desired("n")).await.unwrap().id,
        first.id
    );
    let b = SandboxProvider::open(dir.path(), "test").unwrap();
    assert_eq!(
        b.create(&ctx("t-n"), &desired("n")).await.unwrap().id,
        first.id
    );
    assert_eq!(
        b.create(&ctx("t-m"), &desired("m")).await.unwrap().id,
        other.id
    );
    assert_eq!(a.objects().unwrap().len(), 2);
    // An update keeps the object's token.
    let updated = b
        .update(&ctx("u"), &first, &desired("n"), &[])
        .await
        .unwrap();
    assert_eq!(
        a.create(&ctx("t-n"), &desired("n")).await.unwrap().id,
        updated.id
    );
    b.delete(&ctx("d"), &first).await.unwrap();
    let again = a.create(&ctx("t-n"), &desired("n")).await.unwrap();
    assert_ne!(again.id, first.id);
    assert_eq!(
        b.create(&ctx("t-n"), &desired("n")).await.unwrap().id,
        again.id
    );
    assert_eq!(a.objects().unwrap().len(), 2);
}
