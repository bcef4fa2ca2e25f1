//! Mounts on the real engine (issue 12, section 2): a named volume, a read-only bind mount and a
//! tmpfs converge, show in `docker service inspect` and in the task's container, behave as
//! declared inside the task (a write to the read-only bind fails), re-plan empty, show a mount
//! removed by hand as drift, and change in place; the log pipeline's shape (a global shipper
//! with its configuration as a `SwarmConfig` and the engine's container logs mounted read-only,
//! an Elasticsearch stand-in on a named volume, both on one network) works as the production
//! stack declares it.
//!
//! What is and isn't exercised: no Elasticsearch, Kibana or Filebeat image exists on this machine
//! and none can be pulled, so the services run the busybox test image. What is checked is what
//! Swarm does for them: the mounts, the configuration's content at its path inside the task,
//! the engine's log files readable (and not writable) there, and `elasticsearch` resolving by
//! name to the stand-in's task (dnsrr: this engine has no IPVS, so a virtual IP would resolve
//! but never answer; `tasks.elasticsearch` resolves to the same address) and answering over TCP.
//! Whether Filebeat parses that configuration and Elasticsearch indexes what it ships is not
//! tested here.

use std::time::{Duration, Instant};

use infra_core::plan::Action;
use infra_core::render::plan_text;
use infra_core::Stack;
use infra_swarm::{EndpointMode, Mount, SwarmConfig, SwarmNetwork};
use serde_json::Value as Json;

use crate::common::*;

/// The container of the service's one running task.
fn container_of(service: &str) -> String {
    let task = wait_running(service, 1);
    assert_eq!(task.len(), 1, "{service}: {task:?}");
    docker(&[
        "inspect",
        &task[0].id,
        "--format",
        "{{.Status.ContainerStatus.ContainerID}}",
    ])
}

/// `sh -c script` inside a container: (exit success, stdout + stderr).
fn exec(container: &str, script: &str) -> (bool, String) {
    let out = std::process::Command::new("docker")
        .args(["exec", container, "sh", "-c", script])
        .output()
        .expect("docker CLI");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text.trim().to_string())
}

/// A directory of this machine (the engine's node) for the bind mount, removed at the end.
struct HostDir(std::path::PathBuf);

impl HostDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("infra-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        HostDir(dir)
    }
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn mounts_stack(name: &str, host_dir: &str, bind_read_only: bool, tmpfs_mb: u64) -> Stack {
    let mut s = Stack::new(name);
    let bind = Mount::bind(host_dir, "/host");
    s.add(
        quick_service("app", &image())
            .mount(Mount::volume("data", "/data"))
            .mount(if bind_read_only {
                bind.read_only()
            } else {
                bind
            })
            .mount(Mount::tmpfs("/scratch").size_mb(tmpfs_mb).mode(0o1770)),
    );
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn each_mount_type_converges_behaves_as_declared_and_changes_in_place() {
    let Some(p) = provider("mounts_each_type").await else {
        return;
    };
    let name = unique("mnt");
    let mut guard = Cleanup::new(&name);
    let volume = format!("{name}_data");
    guard.volume(&volume);
    let host = HostDir::new(&name);
    std::fs::write(host.path().join("hello"), "from the node\n").unwrap();
    let host_dir = host.path().display().to_string();
    let engine = engine(&p);
    let service = format!("{name}_app");

    let s = mounts_stack(&name, &host_dir, true, 1);
    converge(&engine, &s).await;
    assert_no_changes(&engine, &s, "after create").await;

    // What Swarm stores: the volume under the stack's prefix, the bind read-only, the tmpfs's
    // size and mode; nothing else (no `ReadOnly: false`, no empty options).
    let spec: Json = serde_json::from_str(&docker(&[
        "service",
        "inspect",
        &service,
        "--format",
        "{{json .Spec.TaskTemplate.ContainerSpec.Mounts}}",
    ]))
    .unwrap();
    let by_target = |j: &Json, t: &str| -> Json {
        j.as_array()
            .unwrap()
            .iter()
            .find(|m| m["Target"] == t || m["Destination"] == t)
            .cloned()
            .unwrap_or_else(|| panic!("no mount at {t} in {j}"))
    };
    assert_eq!(
        by_target(&spec, "/data"),
        serde_json::json!({ "Type": "volume", "Source": volume, "Target": "/data" })
    );
    assert_eq!(
        by_target(&spec, "/host"),
        serde_json::json!({ "Type": "bind", "Source": host_dir, "Target": "/host", "ReadOnly": true })
    );
    assert_eq!(
        by_target(&spec, "/scratch"),
        serde_json::json!({ "Type": "tmpfs", "Target": "/scratch",
            "TmpfsOptions": { "SizeBytes": 1024 * 1024, "Mode": 0o1770 } })
    );

    // What the task's container got.
    let container = container_of(&service);
    let mounts: Json = serde_json::from_str(&docker(&[
        "inspect",
        &container,
        "--format",
        "{{json .Mounts}}",
    ]))
    .unwrap();
    let data = by_target(&mounts, "/data");
    assert_eq!(data["Name"], volume.as_str(), "{mounts}");
    assert_eq!(data["RW"], true, "{mounts}");
    let bind = by_target(&mounts, "/host");
    assert_eq!(bind["Source"], host_dir.as_str(), "{mounts}");
    assert_eq!(bind["RW"], false, "{mounts}");

    // Inside the task: the bind shows the node's file and refuses writes; the volume takes
    // them; the tmpfs is a tmpfs of the declared size and mode.
    assert_eq!(exec(&container, "cat /host/hello").1, "from the node");
    let (ok, out) = exec(&container, "echo x > /host/written");
    assert!(!ok, "a write to the read-only bind succeeded: {out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(!host.path().join("written").exists());
    let (ok, out) = exec(&container, "echo kept > /data/f && cat /data/f");
    assert!(ok && out == "kept", "{out}");
    let (_, out) = exec(&container, "grep ' /scratch ' /proc/mounts");
    assert!(
        out.starts_with("tmpfs /scratch tmpfs rw")
            && out.contains("size=1024k")
            && out.contains("mode=1770"),
        "{out}"
    );
    let service_id = docker(&["service", "inspect", &service, "--format", "{{.ID}}"]);

    // Drift: a mount removed by hand shows as a change of `mounts`, and the apply puts it back.
    docker(&[
        "service",
        "update",
        "--detach",
        "--mount-rm",
        "/scratch",
        &service,
    ]);
    let drifted = plan(&engine, &s).await;
    let text = plan_text(&drifted.plan);
    let change = drifted.plan.change("swarm_service.app").unwrap();
    assert_eq!(change.action, Action::Update, "{text}");
    assert!(change.fields.iter().any(|f| f.name == "mounts"), "{text}");
    // The code did not change since the apply: the label the apply wrote tells it is drift.
    assert!(
        change
            .fields
            .iter()
            .all(|f| f.origin == Some(infra_core::plan::drift::Origin::Drift)),
        "{text}"
    );
    assert_eq!(drifted.plan.drift.len(), 1, "{text}");
    assert!(
        text.contains("Drift: 1 object changed outside infra"),
        "{text}"
    );
    let report = apply_planned(&engine, &drifted).await;
    assert!(report.is_success(), "{text}");
    assert_no_changes(&engine, &s, "after the drift was undone").await;
    let container = container_of(&service);
    let (_, out) = exec(&container, "grep ' /scratch ' /proc/mounts");
    assert!(out.contains("size=1024k"), "{out}");

    // Change two mounts: the bind becomes writable, the tmpfs grows. An in-place update of the
    // task template (the tasks are replaced), not a replacement of the service.
    let changed = mounts_stack(&name, &host_dir, false, 2);
    let planned = plan(&engine, &changed).await;
    let text = plan_text(&planned.plan);
    let change = planned.plan.change("swarm_service.app").unwrap();
    assert_eq!(change.action, Action::Update, "{text}");
    let field = change.fields.iter().find(|f| f.name == "mounts").unwrap();
    assert!(
        field
            .effect
            .as_deref()
            .is_some_and(|e| e.starts_with("task-template change")),
        "{text}"
    );
    assert_eq!(planned.plan.changes.len(), 1, "{text}");
    assert_eq!(
        field.origin,
        Some(infra_core::plan::drift::Origin::Code),
        "{text}"
    );
    assert!(planned.plan.drift.is_empty(), "{text}");
    let report = apply_planned(&engine, &planned).await;
    assert!(report.is_success(), "{text}");
    assert_eq!(
        docker(&["service", "inspect", &service, "--format", "{{.ID}}"]),
        service_id,
        "updated in place"
    );
    assert_no_changes(&engine, &changed, "after the mount change").await;
    let new_container = container_of(&service);
    assert_ne!(new_container, container, "the task was replaced");
    let (ok, out) = exec(&new_container, "echo x > /host/written");
    assert!(ok, "the bind is writable now: {out}");
    assert!(host.path().join("written").exists());
    let (_, out) = exec(&new_container, "grep ' /scratch ' /proc/mounts");
    assert!(out.contains("size=2048k"), "{out}");
    // The volume kept its data through the task's replacement (same node, same volume).
    assert_eq!(exec(&new_container, "cat /data/f").1, "kept");

    // Destroy removes the service; the volume (data) outlives it.
    let planned = destroy_plan(&engine, &changed).await;
    let report = apply_planned(&engine, &planned).await;
    assert!(report.is_success());
    assert!(
        owned_objects(&name).is_empty(),
        "{:?}",
        owned_objects(&name)
    );
    assert_eq!(
        docker(&["volume", "inspect", &volume, "--format", "{{.Name}}"]),
        volume
    );
    // (the guard removes it)
}

/// The production stack's Filebeat configuration, shape for shape (the test can't include
/// the example's file).
const SHIPPER_YML: &str = "filebeat.inputs:\n  - type: filestream\n    id: docker-containers\n    paths:\n      - /var/lib/docker/containers/*/*-json.log\n    parsers:\n      - container: ~\noutput.elasticsearch:\n  hosts: [\"http://elasticsearch:9200\"]\n";

fn pipeline_stack(name: &str) -> Stack {
    let mut s = Stack::new(name);
    let net = s.add(SwarmNetwork::new("logging"));
    let conf = s.add(SwarmConfig::new("shipper").data(SHIPPER_YML));
    // The Elasticsearch stand-in: answers one line per TCP connection on 9200, keeps its "data"
    // in a named volume, placed on a manager (this engine's only node).
    s.add(
        quick_service("elasticsearch", &image())
            .args([
                "nc",
                "-ll",
                "-p",
                "9200",
                "-e",
                "echo",
                "pong-elasticsearch",
            ])
            .network(&net)
            .endpoint_mode(EndpointMode::Dnsrr)
            .constraint("node.role == manager")
            .mount(Mount::volume("es-data", "/usr/share/elasticsearch/data")),
    );
    // The shipper stand-in: global, as root, the engine's container logs read-only, its
    // configuration where Filebeat reads it. It prints a line so its own log file has content.
    s.add(
        quick_service("shipper", &image())
            .global()
            .user("root")
            .args(["sh", "-c", "echo shipper-started; exec sleep 100000"])
            .network(&net)
            .mount(
                Mount::bind("/var/lib/docker/containers", "/var/lib/docker/containers").read_only(),
            )
            .config(&conf, "/usr/share/filebeat/filebeat.yml"),
    );
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_shipper_sees_its_config_and_the_engine_logs_and_reaches_elasticsearch_by_name() {
    let Some(p) = provider("mounts_log_pipeline").await else {
        return;
    };
    let name = unique("logs");
    let mut guard = Cleanup::new(&name);
    guard.volume(&format!("{name}_es-data"));
    let engine = engine(&p);
    let s = pipeline_stack(&name);
    converge(&engine, &s).await;
    assert_no_changes(&engine, &s, "after create").await;

    let shipper = container_of(&format!("{name}_shipper"));
    // The configuration's content is exactly what the task reads at its mount path.
    let (ok, seen) = exec(&shipper, "cat /usr/share/filebeat/filebeat.yml");
    assert!(ok, "{seen}");
    assert_eq!(format!("{seen}\n"), SHIPPER_YML);
    // The engine's container logs: the shipper finds its own log file among them, reads the
    // line it printed, and can't write there.
    let own_log = format!("/var/lib/docker/containers/{shipper}/{shipper}-json.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    let line = loop {
        let (_, out) = exec(&shipper, &format!("cat {own_log}"));
        if out.contains("shipper-started") || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(line.contains("shipper-started"), "{line}");
    let (ok, out) = exec(
        &shipper,
        "touch /var/lib/docker/containers/infra-test-write",
    );
    assert!(!ok && out.contains("Read-only file system"), "{out}");

    // Name resolution on the shared network: `elasticsearch` (dnsrr) and
    // `tasks.elasticsearch` resolve to the stand-in's task, which answers over TCP there.
    let es = wait_running(&format!("{name}_elasticsearch"), 1);
    assert_eq!(es.len(), 1);
    let es_ip = docker(&[
        "inspect",
        &es[0].id,
        "--format",
        "{{range .NetworksAttachments}}{{range .Addresses}}{{.}}{{end}}{{end}}",
    ]);
    let es_ip = es_ip.split('/').next().unwrap_or_default().to_string();
    for lookup in ["elasticsearch", "tasks.elasticsearch"] {
        let script = format!(
            "ip=$(nslookup {lookup} 2>/dev/null | sed -n 's/^Address: *\\([0-9.]*\\)$/\\1/p' | tail -1); \
             echo \"$ip $(echo ping | nc -w 2 \"$ip\" 9200)\""
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let answer = loop {
            let (_, out) = exec(&shipper, &script);
            if out.ends_with("pong-elasticsearch") || Instant::now() > deadline {
                break out;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        assert_eq!(
            answer,
            format!("{es_ip} pong-elasticsearch"),
            "{lookup} from the shipper"
        );
    }
}
