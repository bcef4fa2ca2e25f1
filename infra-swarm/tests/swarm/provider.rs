//! Provider-level behaviour: version negotiation, connection errors, concurrent updates.

use std::collections::BTreeMap;

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

/// Two runs updating different fields of one service at once: whichever writes second meets
/// "update out of sequence" (or sees the first's write), re-inspects and keeps both changes.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_updates_both_land() {
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
    let env = resolved(base().env("A", "1"));
    let labels = resolved(base().label("owner", "team-b"));
    let (c1, c2) = (ctx("one"), ctx("two"));
    let (envs, labelled) = (vec!["env".to_string()], vec!["labels".to_string()]);
    let (r1, r2) = tokio::join!(
        p.update(&c1, &current, &env, &envs),
        p.update(&c2, &current, &labels, &labelled),
    );
    r1.unwrap();
    r2.unwrap();
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
    p.unlock(&name, "second").await.unwrap();
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
