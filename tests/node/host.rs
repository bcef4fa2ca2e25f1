//! The Docker wrapper against the host engine: a single-node swarm other tests share, so only
//! reads, and one label of a unique key, removed again.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_engine_wrapper_reads_the_host_swarm_and_restores_the_label_it_sets() {
    if let Some(why) = infra_test_support::swarm_missing() {
        infra_test_support::skip_or_fail(&infra_test_support::current_test(), &why);
        return;
    }
    let host = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
    // The handshake lowers bollard's API version to what the engine speaks (Docker 20.10 here).
    let engine = infra_node::docker::Engine::connect(
        &host,
        Duration::from_secs(10),
        infra_node::agent::call_policy(),
    )
    .await
    .expect("connect");
    let state = engine.state().await.expect("docker info");
    assert!(state.active() && state.control, "{state:?}");
    let id = state.node_id.clone().expect("node id");
    let me = engine
        .nodes()
        .await
        .expect("docker node ls")
        .into_iter()
        .find(|n| n.id == id)
        .expect("this node in the list");
    assert_eq!(me.role, infra_node::plan::Role::Manager);
    assert_eq!(me.status, infra_node::plan::NodeStatus::Ready);
    assert!(me.leader && me.reachable, "{me:?}");
    engine.running_tasks().await.expect("docker ps");
    let (worker, manager) = engine.join_tokens().await.expect("swarm inspect");
    assert!(worker.expose().starts_with("SWMTKN-1-") && manager.expose().starts_with("SWMTKN-1-"));
    assert_eq!(format!("{worker:?}"), "<redacted>");

    let key = infra_test_support::unique("infra-node-test");
    let labels = std::collections::BTreeMap::from([(key.clone(), "x".to_string())]);
    assert!(engine.set_labels(&id, &labels).await.expect("label"));
    assert!(
        !engine.set_labels(&id, &labels).await.expect("label"),
        "no update when nothing changes"
    );
    let seen = |nodes: Vec<infra_node::plan::SwarmNode>| {
        nodes
            .into_iter()
            .find(|n| n.id == id)
            .map(|n| n.labels.get(&key).cloned())
    };
    assert_eq!(
        seen(engine.nodes().await.unwrap()),
        Some(Some("x".to_string()))
    );
    let removed = engine
        .update_node(&id, |spec| {
            spec.labels.as_mut().and_then(|l| l.remove(&key)).is_some()
        })
        .await
        .expect("restore");
    assert!(removed);
    assert_eq!(seen(engine.nodes().await.unwrap()), Some(None));
}
