//! Secret and config rotation without downtime: a new value is a new object under a new name,
//! the service is rolled onto it, then the old object is deleted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use infra_core::plan::Action;
use infra_core::render::plan_text;
use infra_core::Stack;
use infra_swarm::{EndpointMode, SwarmConfig, SwarmNetwork, SwarmSecret, UpdateOrder};

use crate::common::*;

fn stack(name: &str, token: &str, conf: &str) -> Stack {
    let mut s = Stack::new(name);
    let net = s.add(SwarmNetwork::new("back").attachable(true));
    let secret = s.add(SwarmSecret::new("token").value(token.as_bytes().to_vec()));
    let config = s.add(SwarmConfig::new("conf").data(conf));
    s.add(
        quick_service("app", &image())
            .replicas(2)
            .update_policy(quick_policy().order(UpdateOrder::StartFirst))
            .network(&net)
            .endpoint_mode(EndpointMode::Dnsrr)
            .secret(&secret, "token")
            .config(&config, "/etc/app.conf")
            .args([
                "sh",
                "-c",
                "cat /run/secrets/token /etc/app.conf; echo; exec sleep 100000",
            ]),
    );
    s
}

/// What a running task printed at start.
fn task_output(task: &str) -> String {
    let container = docker(&[
        "inspect",
        task,
        "--format",
        "{{.Status.ContainerStatus.ContainerID}}",
    ]);
    docker(&["logs", &container])
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_and_config_rotate_without_downtime() {
    let Some(p) = provider("rotation").await else {
        return;
    };
    let name = unique("rot");
    let _guard = Cleanup::new(&name);
    let engine = engine(&p);
    let svc = format!("{name}_app");

    let s = stack(&name, "first-token", "level=1");
    converge(&engine, &s).await;
    assert_no_changes(&engine, &s, "after create").await;
    let old_secret = docker(&[
        "secret",
        "ls",
        "--filter",
        &format!("label=infra.stack={name}"),
        "--format",
        "{{.Name}}",
    ]);
    assert!(
        old_secret.starts_with(&format!("{name}_token_")),
        "{old_secret}"
    );
    for t in running(&svc) {
        assert!(task_output(&t.id).contains("first-token"));
    }

    // Rotate both: the plan replaces them create-before-destroy and updates the service.
    let s = stack(&name, "second-token", "level=2");
    let planned = plan(&engine, &s).await;
    let text = plan_text(&planned.plan);
    assert!(
        !text.contains("second-token") && !text.contains("first-token"),
        "no secret in the plan:\n{text}"
    );
    assert_eq!(
        planned.plan.change("swarm_secret.token").unwrap().action,
        Action::CreateThenDelete,
        "{text}"
    );
    assert_eq!(
        planned.plan.change("swarm_config.conf").unwrap().action,
        Action::CreateThenDelete,
        "{text}"
    );
    assert_eq!(
        planned.plan.change("swarm_service.app").unwrap().action,
        Action::Update,
        "{text}"
    );
    assert_eq!(
        planned.plan.change("swarm_network.back").unwrap().action,
        Action::NoOp,
        "{text}"
    );

    // Sample the running tasks all through the apply.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, svc) = (stop.clone(), svc.clone());
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                samples.push(running(&svc).len());
            }
            samples
        })
    };
    let report = apply_planned(&engine, &planned).await;
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().unwrap();
    assert!(
        report.is_success(),
        "{}",
        infra_core::render::report_text(&report)
    );
    assert!(samples.len() >= 3, "too few samples: {samples:?}");
    assert!(
        samples.iter().all(|n| *n >= 1),
        "a moment without any running task during the rotation: {samples:?}"
    );

    // The service runs on the new objects; the old ones are gone.
    let running_now = running(&svc);
    assert_eq!(running_now.len(), 2);
    for t in &running_now {
        let out = task_output(&t.id);
        assert!(
            out.contains("second-token") && out.contains("level=2"),
            "{out}"
        );
    }
    let filter = format!("label=infra.stack={name}");
    let secrets = lines(&docker(&[
        "secret",
        "ls",
        "--filter",
        &filter,
        "--format",
        "{{.Name}}",
    ]));
    assert_eq!(secrets.len(), 1, "{secrets:?}");
    assert_ne!(secrets[0], old_secret, "a new name");
    let configs = lines(&docker(&[
        "config",
        "ls",
        "--filter",
        &filter,
        "--format",
        "{{.Name}}",
    ]));
    assert_eq!(configs.len(), 1, "{configs:?}");
    assert_no_changes(&engine, &s, "after rotation").await;

    let d = destroy_plan(&engine, &s).await;
    assert!(apply_planned(&engine, &d).await.is_success());
    assert!(
        owned_objects(&name).is_empty(),
        "left: {:?}",
        owned_objects(&name)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_rotation_is_finished_by_the_next_apply() {
    let Some(p) = provider("interrupted_rotation").await else {
        return;
    };
    let name = unique("irot");
    let _guard = Cleanup::new(&name);
    let engine = engine(&p);

    let mut s = Stack::new(&name);
    s.add(SwarmSecret::new("token").value(b"one".to_vec()));
    converge(&engine, &s).await;
    // Simulate a run that created the new secret and died before deleting the old one: two
    // objects claim `swarm_secret.token`.
    let mut s2 = Stack::new(&name);
    s2.add(SwarmSecret::new("token").value(b"two".to_vec()));
    let planned = plan(&engine, &s2).await;
    let ops = planned.plan.change("swarm_secret.token").unwrap().clone();
    assert_eq!(ops.action, Action::CreateThenDelete);
    let other = unique("irot-other");
    let _g2 = Cleanup::new(&other);
    {
        // Create the new object through the provider, as the first half of the replacement.
        use infra_core::provider::{OpContext, Provider, Resolved};
        use infra_core::Resource;
        let spec = SwarmSecret::new("token").value(b"two".to_vec()).into_spec();
        let desired = Resolved {
            address: spec.address.clone(),
            schema: spec.schema,
            props: spec.props.clone(),
            protect: false,
        };
        let ctx = OpContext {
            stack: name.clone(),
            idempotency_token: "t".into(),
            attempt: 1,
        };
        p.create(&ctx, &desired).await.unwrap();
    }
    // The read reports the newest as the resource and the old one for deletion.
    let planned = plan(&engine, &s2).await;
    let text = plan_text(&planned.plan);
    assert_eq!(
        planned.plan.change("swarm_secret.token").unwrap().action,
        Action::NoOp,
        "{text}"
    );
    let deposed: Vec<_> = planned
        .plan
        .actionable()
        .filter(|c| c.address.kind() == "swarm_secret" && c.address.name().starts_with("token~"))
        .collect();
    assert_eq!(deposed.len(), 1, "{text}");
    assert_eq!(deposed[0].action, Action::Delete, "{text}");
    converge(&engine, &s2).await;
    assert_no_changes(&engine, &s2, "after finishing the rotation").await;
    let filter = format!("label=infra.stack={name}");
    assert_eq!(
        lines(&docker(&["secret", "ls", "-q", "--filter", &filter])).len(),
        1
    );
}
