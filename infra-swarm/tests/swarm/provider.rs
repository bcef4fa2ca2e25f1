//! Provider-level behaviour: version negotiation, connection errors, concurrent updates.

use std::collections::BTreeMap;
use std::time::Duration;

use infra_core::provider::{OpContext, Provider, Resolved};
use infra_core::{Resource, Stack, Value};
use infra_swarm::SwarmProvider;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn negotiates_the_engines_api_version() {
    let Some(p) = provider("negotiation").await else {
        return;
    };
    let server = docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    let ours: Vec<u32> = p
        .api_version()
        .split('.')
        .map(|n| n.parse().unwrap())
        .collect();
    let theirs: Vec<u32> = server.split('.').map(|n| n.parse().unwrap()).collect();
    // The newest version both speak: the engine's, unless it is newer than bollard's.
    assert!(
        ours <= theirs,
        "client {ours:?} is newer than the engine's {theirs:?}"
    );
    assert!(ours >= vec![1, 40]);
    p.read("nobody-owns-this").await.unwrap();
}

#[tokio::test]
async fn an_unreachable_engine_is_a_clear_error() {
    let err = SwarmProvider::connect_to("unix:///nonexistent/docker.sock")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot reach the Docker engine at unix:///nonexistent/docker.sock"),
        "{err}"
    );
}

fn resolved(svc: infra_swarm::SwarmService) -> Resolved {
    let spec = svc.into_spec();
    Resolved {
        address: spec.address.clone(),
        schema: spec.schema,
        props: spec.props,
        protect: false,
    }
}

/// Four runs updating different fields of one service at once: each writes with the version it
/// just inspected, so all but one meet "update out of sequence" (or see an earlier write),
/// re-inspect, re-diff and retry; every change lands.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_updates_all_land() {
    let Some(p) = provider("concurrent_updates").await else {
        return;
    };
    let name = unique("cu");
    let _guard = Cleanup::new(&name);
    let engine = engine(&p);
    let base = || quick_service("app", &image());
    let mut s = Stack::new(&name);
    s.add(base());
    converge(&engine, &s).await;
    let current = p.read(&name).await.unwrap().resources.remove(0);

    let ctx = |t: &str| OpContext {
        stack: name.clone(),
        idempotency_token: t.into(),
        attempt: 1,
    };
    let edits = [
        (resolved(base().env("A", "1")), "env"),
        (resolved(base().label("owner", "team-b")), "labels"),
        (resolved(base().replicas(2)), "replicas"),
        (
            resolved(base().stop_grace_period(Duration::from_secs(2))),
            "stop_grace_period_ms",
        ),
    ];
    let runs = edits.iter().enumerate().map(|(i, (desired, field))| {
        let (ctx, changed, current, p) =
            (ctx(&i.to_string()), vec![field.to_string()], &current, &p);
        async move { p.update(&ctx, current, desired, &changed).await }
    });
    for r in futures::future::join_all(runs).await {
        r.unwrap();
    }
    let now = p.read(&name).await.unwrap().resources.remove(0);
    assert_eq!(
        now.props.get("env"),
        Some(&Value::Map(BTreeMap::from([(
            "A".into(),
            Value::from("1")
        )])))
    );
    assert_eq!(
        now.props.get("labels"),
        Some(&Value::Map(BTreeMap::from([(
            "owner".into(),
            Value::from("team-b")
        )])))
    );
    assert_eq!(now.props.get("replicas"), Some(&Value::Int(2)));
    assert_eq!(
        now.props.get("stop_grace_period_ms"),
        Some(&Value::Int(2000))
    );
}

/// The stack lock is a Swarm config created atomically: a second holder is refused with the
/// first one's identity, and `force_unlock` breaks it.
#[tokio::test(flavor = "multi_thread")]
async fn the_stack_lock_excludes_a_second_holder() {
    use infra_core::provider::{LockError, LockInfo};
    let Some(p) = provider("stack_lock").await else {
        return;
    };
    let name = unique("lk");
    let _guard = Cleanup::new(&name);
    let info = |h: &str| LockInfo {
        holder: h.into(),
        since_unix: 1,
        operation: "apply".into(),
    };
    p.lock(&name, &info("first")).await.unwrap();
    p.lock(&name, &info("first")).await.unwrap();
    match p.lock(&name, &info("second")).await {
        Err(LockError::Held { holder, .. }) => assert_eq!(holder.holder, "first"),
        other => panic!("expected Held, got {other:?}"),
    }
    // The protocol is infra-core's, the same on every provider: a non-holder's release leaves
    // the lock in place and says whose it is.
    let e = p.unlock(&name, "second").await.expect_err("not the holder");
    assert_eq!(e.code, infra_core::lock::LOCK_NOT_HELD);
    assert!(e.message.contains("first"), "{e}");
    assert!(
        p.lock(&name, &info("second")).await.is_err(),
        "a non-holder can't release it"
    );
    assert_eq!(
        p.force_unlock(&name)
            .await
            .unwrap()
            .map(|i| i.holder)
            .as_deref(),
        Some("first")
    );
    p.lock(&name, &info("second")).await.unwrap();
    p.unlock(&name, "second").await.unwrap();
    assert!(
        p.read(&name).await.unwrap().resources.is_empty(),
        "the lock is not a resource"
    );
}
