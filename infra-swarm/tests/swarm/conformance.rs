//! The core's provider conformance suite, run against the Swarm provider.

use infra_core::conformance::{run, Case};
use infra_core::Stack;
use infra_swarm::{EndpointMode, Mount, SwarmNetwork, SwarmSecret};

use crate::common::*;

fn build(name: &str) -> Stack {
    let mut s = Stack::new(name);
    let net = s.add(SwarmNetwork::new("net"));
    let secret = s.add(SwarmSecret::new("key").value(b"k1".to_vec()));
    s.add(
        quick_service("svc", &image())
            .network(&net)
            .endpoint_mode(EndpointMode::Dnsrr)
            .secret(&secret, "key")
            .mount(Mount::volume("data", "/data"))
            .mount(Mount::tmpfs("/scratch").size_mb(1))
            .env("LEVEL", "1"),
    );
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn swarm_provider_passes_the_conformance_suite() {
    let Some(p) = provider("conformance").await else {
        return;
    };
    let prefix = unique("cf");
    let mut a = Cleanup::new(&format!("{prefix}-a"));
    let mut b = Cleanup::new(&format!("{prefix}-b"));
    a.volume(&format!("{prefix}-a_data"));
    b.volume(&format!("{prefix}-b_data"));
    let case = Case {
        build: Box::new(build),
        update: Box::new(|s: &mut Stack| {
            let svc = s.get_mut(&"swarm_service.svc".parse().unwrap()).unwrap();
            svc.insert("env", "LEVEL", "2");
        }),
        replace: Some(Box::new(|s: &mut Stack| {
            s.remove(&"swarm_secret.key".parse().unwrap());
            s.add(SwarmSecret::new("key").value(b"k2".to_vec()));
        })),
    };
    let out = run(p, &case, &prefix).await;
    assert_eq!(out.resources, 3);
    assert!(owned_objects(&format!("{prefix}-a")).is_empty());
    assert!(owned_objects(&format!("{prefix}-b")).is_empty());
}
