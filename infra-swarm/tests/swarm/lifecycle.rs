//! The service lifecycle: create → converge → no-op re-plan → rolling update → replica change
//! → removal → destroy, with a hand-made service beside the stack that must survive it all.

use std::time::Duration;

use infra_core::plan::Action;
use infra_core::Stack;
use infra_swarm::SwarmService;

use crate::common::*;

/// A web tier with most settings a service can have (so the no-op plans below prove that
/// Swarm's read-back normalises to the declaration), and an HTTP server published in host mode.
fn stack(name: &str, image: &str, replicas: u32, mode: &str, port: u16) -> Stack {
    let mut s = Stack::new(name);
    s.add(
        quick_service("web", image)
            .replicas(replicas)
            .env("MODE", mode)
            .label("team", "core")
            .healthcheck("true", Duration::from_secs(1), Duration::from_secs(1), 3)
            .limits(0.5, 64)
            .reservations(0.01, 4)
            .constraint("node.role == manager")
            .spread("node.labels.az")
            .max_replicas_per_node(5),
    );
    s.add(
        quick_service("worker", image)
            .args(["httpd", "-f", "-p", "8080", "-h", "/www"])
            .publish(port, 8080),
    );
    s
}

/// `GET /version` from the host-published port: which image serves.
fn served_version(port: u16) -> String {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut c| {
            c.set_read_timeout(Some(Duration::from_secs(2)))?;
            c.write_all(b"GET /version HTTP/1.0\r\n\r\n")?;
            let mut body = String::new();
            c.read_to_string(&mut body)?;
            Ok(body)
        });
        match attempt {
            Ok(body) if body.contains("200") => {
                return body
                    .rsplit("\r\n\r\n")
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            }
            _ if std::time::Instant::now() > deadline => {
                panic!("nothing serves on port {port}: {attempt:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn service_lifecycle_converges_and_leaves_bystanders_alone() {
    let Some(p) = provider("service_lifecycle").await else {
        return;
    };
    let name = unique("lc");
    let mut guard = Cleanup::new(&name);
    let engine = engine(&p);
    let (v1, v2) = (image(), image_v2());
    let port = 20_000 + (std::process::id() % 5_000) as u16 * 2;

    // A service made by hand beside the stack, with a name in the stack's namespace.
    let bystander = format!("{name}_handmade");
    guard.service(&bystander);
    docker(&[
        "service", "create", "-d", "--init", "--name", &bystander, &v1, "sleep", "100000",
    ]);

    // Create: converged when apply returns.
    let mut s = stack(&name, &v1, 2, "one", port);
    let first = plan(&engine, &s).await;
    assert_eq!(first.plan.summary.add, 2, "{:?}", first.plan.summary);
    converge(&engine, &s).await;
    let web = format!("{name}_web");
    assert_eq!(
        running(&web).len(),
        2,
        "both replicas running when apply returns"
    );
    assert_no_changes(&engine, &s, "after create").await;
    assert_eq!(served_version(port), "v1");

    // Update image and env: a rolling update, observed in the tasks.
    let before: Vec<String> = running(&web).into_iter().map(|t| t.id).collect();
    s = stack(&name, &v2, 2, "two", port);
    let p2 = plan(&engine, &s).await;
    let c = p2.plan.change("swarm_service.web").unwrap();
    assert_eq!(c.action, Action::Update);
    converge(&engine, &s).await;
    let now = running(&web);
    assert_eq!(now.len(), 2);
    assert!(
        now.iter().all(|t| t.image == v2 || v2.contains(&t.image)),
        "{now:?}"
    );
    assert!(
        now.iter().all(|t| !before.contains(&t.id)),
        "tasks were replaced: {now:?}"
    );
    let history = tasks(&web);
    assert!(
        history.iter().filter(|t| t.desired == "Shutdown").count() >= 2,
        "the old tasks were shut down by the rolling update: {history:?}"
    );
    assert_no_changes(&engine, &s, "after update").await;
    assert_eq!(
        served_version(port),
        "v2",
        "the published server was rolled to the new image"
    );

    // Replica change: in place, and the running tasks are kept.
    let kept: Vec<String> = running(&web).into_iter().map(|t| t.id).collect();
    s = stack(&name, &v2, 3, "two", port);
    converge(&engine, &s).await;
    let now = running(&web);
    assert_eq!(now.len(), 3);
    assert!(
        kept.iter().all(|id| now.iter().any(|t| &t.id == id)),
        "scaling restarted tasks: {now:?}"
    );
    assert_no_changes(&engine, &s, "after scaling").await;

    // Removal of a declared service.
    s.remove(&"swarm_service.worker".parse().unwrap());
    let p3 = plan(&engine, &s).await;
    assert_eq!(
        p3.plan.change("swarm_service.worker").unwrap().action,
        Action::Delete
    );
    assert_eq!(p3.plan.actionable().count(), 1);
    converge(&engine, &s).await;
    assert!(
        docker(&["service", "ls", "--format", "{{.Name}}"])
            .lines()
            .all(|l| l != format!("{name}_worker")),
        "worker removed"
    );
    assert_no_changes(&engine, &s, "after removal").await;

    // Destroy: nothing owned left; the hand-made service untouched throughout.
    let d = destroy_plan(&engine, &s).await;
    let r = apply_planned(&engine, &d).await;
    assert!(r.is_success(), "{}", infra_core::render::report_text(&r));
    assert!(
        owned_objects(&name).is_empty(),
        "left: {:?}",
        owned_objects(&name)
    );
    assert_eq!(
        running(&bystander).len(),
        1,
        "the hand-made service survived"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declared_service_never_adopts_a_hand_made_one_with_its_name() {
    let Some(p) = provider("name_conflict").await else {
        return;
    };
    let name = unique("nc");
    let mut guard = Cleanup::new(&name);
    let engine = engine(&p);
    let taken = format!("{name}_web");
    guard.service(&taken);
    docker(&[
        "service",
        "create",
        "-d",
        "--init",
        "--name",
        &taken,
        &image(),
        "sleep",
        "100000",
    ]);
    let mut s = Stack::new(&name);
    s.add(SwarmService::new("web").image(image()).init(true));
    let planned = plan(&engine, &s).await;
    let report = apply_planned(&engine, &planned).await;
    assert!(!report.is_success());
    let text = infra_core::render::report_text(&report);
    assert!(text.contains("not this stack's"), "{text}");
    let labels = docker(&[
        "service",
        "inspect",
        &taken,
        "--format",
        "{{json .Spec.Labels}}",
    ]);
    assert!(
        !labels.contains("infra."),
        "the hand-made service was not labelled: {labels}"
    );
}
