//! The cluster on the lab: three nodes from two ASGs form a swarm (stand-in agent), a service runs
//! on every node and its tasks reach each other over the overlay, an encrypted overlay's fate,
//! chaos and replacement, a drain through the lifecycle hook, a mute IMDS, `down`.

use std::path::Path;
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use infra_lab::{ImdsFault, Lab, LabConfig, NodeState};
use infra_test_support::{say, unique};

use crate::fixture::{docker, Fixture};
use crate::{eventually, leftovers, preconditions, ready_nodes, running, standin, LOCK};

/// Whether this kernel can hold an ESP security association (what an encrypted overlay needs),
/// probed in a node's namespace.
fn esp_supported(netns: &str) -> bool {
    let key = format!("0x{}", "ab".repeat(20));
    let ok = StdCommand::new("ip")
        .args([
            "-n",
            netns,
            "xfrm",
            "state",
            "add",
            "src",
            "10.255.0.1",
            "dst",
            "10.255.0.2",
            "proto",
            "esp",
            "spi",
            "0x4c4142",
            "mode",
            "transport",
            "aead",
            "rfc4106(gcm(aes))",
            &key,
            "128",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        let _ = StdCommand::new("ip")
            .args([
                "-n",
                netns,
                "xfrm",
                "state",
                "delete",
                "src",
                "10.255.0.1",
                "dst",
                "10.255.0.2",
                "proto",
                "esp",
                "spi",
                "0x4c4142",
            ])
            .output();
    }
    ok
}

/// Creates a service of `replicas` tasks on network `net`, at most one per node, each serving
/// its own hostname over HTTP on port 80; waits until they all run on distinct nodes.
async fn web_service(host: &str, name: &str, net: &str, replicas: u32) -> Vec<String> {
    let image = infra_test_support::test_image().unwrap();
    docker(
        host,
        &[
            "service",
            "create",
            "--detach",
            "--name",
            name,
            "--network",
            net,
            "--replicas",
            &replicas.to_string(),
            "--replicas-max-per-node",
            "1",
            "--endpoint-mode",
            "dnsrr",
            &image,
            "sh",
            "-c",
            "hostname > /www/index.html; exec httpd -f -p 80 -h /www",
        ],
    )
    .await
    .unwrap();
    eventually(
        &format!("{replicas} tasks of {name} running"),
        Duration::from_secs(120),
        || async {
            let ps = docker(
                host,
                &[
                    "service",
                    "ps",
                    name,
                    "--filter",
                    "desired-state=running",
                    "--format",
                    "{{.Node}} {{.CurrentState}}",
                ],
            )
            .await
            .ok()?;
            let nodes: Vec<String> = ps
                .lines()
                .filter(|l| l.contains("Running"))
                .map(|l| l.split(' ').next().unwrap_or_default().to_string())
                .collect();
            (nodes.len() == replicas as usize).then_some(nodes)
        },
    )
    .await
}

/// From a task of `service` on `node_host`, fetches every task address of the service over the
/// overlay; returns (address, answer or error).
async fn fetch_all(node_host: &str, service: &str) -> Vec<(String, Result<String, String>)> {
    let ctr = docker(
        node_host,
        &[
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.swarm.service.name={service}"),
        ],
    )
    .await
    .unwrap();
    let ctr = ctr.lines().next().expect("a task on this node").to_string();
    let lookup = docker(
        node_host,
        &["exec", &ctr, "nslookup", &format!("tasks.{service}")],
    )
    .await
    .unwrap();
    let addrs: Vec<String> = lookup
        .lines()
        .skip_while(|l| !l.starts_with("Name:"))
        .filter_map(|l| l.strip_prefix("Address:"))
        .map(|a| a.trim().split(' ').next().unwrap_or_default().to_string())
        .collect();
    let mut out = Vec::new();
    for a in addrs {
        let r = docker(
            node_host,
            &[
                "exec",
                &ctr,
                "timeout",
                "5",
                "wget",
                "-q",
                "-O",
                "-",
                &format!("http://{a}/"),
            ],
        )
        .await;
        out.push((a, r.map(|s| s.trim().to_string())));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_form_a_swarm_heal_drain_and_leave_nothing() {
    let test = "nodes_form_a_swarm_heal_drain_and_leave_nothing";
    let Some(moto) = preconditions(test) else {
        return;
    };
    let _one = LOCK.lock().await;
    let stack = unique("lab");
    let mut fx = Fixture::new(&moto, &stack).await;
    let managers = fx.asg("managers", "swarm-manager", 1, None).await;
    let workers = fx.asg("workers", "swarm-worker", 2, Some(60)).await;

    let mut cfg = LabConfig::new(&stack, &moto, standin());
    cfg.images = vec![infra_test_support::test_image().unwrap()];
    cfg.agent_env = vec![("STANDIN_DRAIN_DELAY".into(), "3".into())];
    let t0 = Instant::now();
    let lab = Lab::up(cfg).await.expect("lab up");
    let up_returned = t0.elapsed();
    assert!(
        up_returned < Duration::from_secs(5),
        "up returns at once: {up_returned:?}"
    );

    // three nodes boot from moto's instances, with moto's private IPs
    let nodes = lab
        .wait_for(|n| running(n).len() == 3, Duration::from_secs(120))
        .await
        .expect("3 nodes running");
    let all_running = t0.elapsed();
    let boot_times: Vec<f64> = nodes
        .iter()
        .map(|v| v.boot_time.unwrap().as_secs_f64())
        .collect();
    let ips = fx.private_ips().await;
    for v in &nodes {
        assert_eq!(
            ips.get(&v.instance_id),
            Some(&v.ip),
            "node {} has its instance's private IP",
            v.n
        );
        assert!(v.netns.starts_with(&format!("infralab-{stack}-")));
    }
    // AZs: balanced over each ASG's zones by the lab (moto puts all in us-east-1a)
    let worker_azs: std::collections::BTreeSet<&str> = nodes
        .iter()
        .filter(|v| v.asg == workers)
        .map(|v| v.az.as_str())
        .collect();
    assert_eq!(worker_azs.len(), 2, "two workers in two zones: {nodes:?}");
    let manager = nodes.iter().find(|v| v.asg == managers).unwrap().clone();
    assert_eq!(manager.role, "swarm-manager");

    // the IMDS, as the agent's SDK client reads it (IMDSv2), and 401 without a token
    let imds = aws_config::imds::Client::builder()
        .endpoint(&manager.imds_endpoint)
        .unwrap()
        .build();
    let get = |p: &'static str| {
        let imds = imds.clone();
        async move { imds.get(p).await.map(|s| s.as_ref().to_string()) }
    };
    assert_eq!(
        get("/latest/meta-data/instance-id").await.unwrap(),
        manager.instance_id
    );
    assert_eq!(
        get("/latest/meta-data/local-ipv4").await.unwrap(),
        manager.ip
    );
    assert_eq!(
        get("/latest/meta-data/placement/availability-zone")
            .await
            .unwrap(),
        manager.az
    );
    assert_eq!(
        get("/latest/meta-data/placement/region").await.unwrap(),
        "us-east-1"
    );
    assert_eq!(
        get("/latest/meta-data/autoscaling/target-lifecycle-state")
            .await
            .unwrap(),
        "InService"
    );
    let status = StdCommand::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "3"])
        .arg(format!(
            "{}/latest/meta-data/instance-id",
            manager.imds_endpoint
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout), "401");

    // the swarm forms (stand-in agent) and manager.sock reaches it
    let host = lab.manager_host();
    let formed = eventually("3 nodes Ready", Duration::from_secs(120), || async {
        let r = ready_nodes(&host).await;
        (r.len() == 3).then_some(r)
    })
    .await;
    let swarm_formed = t0.elapsed();
    let bollard = bollard::Docker::connect_with_unix(
        host.trim_start_matches("unix://"),
        30,
        bollard::API_DEFAULT_VERSION,
    )
    .unwrap()
    .negotiate_version()
    .await
    .expect("bollard through manager.sock");
    let listed = bollard.list_nodes(None).await.expect("bollard node list");
    assert_eq!(listed.len(), 3, "{formed:?}");
    let me = listed
        .iter()
        .find(|n| n.manager_status.is_some())
        .expect("a manager");
    let labels = me
        .spec
        .as_ref()
        .and_then(|s| s.labels.clone())
        .unwrap_or_default();
    assert_eq!(
        labels.get("az").map(String::as_str),
        Some(manager.az.as_str())
    );

    // a service's tasks on all three nodes reach each other over the overlay
    docker(
        &host,
        &[
            "network",
            "create",
            "-d",
            "overlay",
            "--attachable",
            "labnet",
        ],
    )
    .await
    .unwrap();
    let placed = web_service(&host, "web", "labnet", 3).await;
    let distinct: std::collections::BTreeSet<&String> = placed.iter().collect();
    assert_eq!(distinct.len(), 3, "one task per node: {placed:?}");
    let answers = fetch_all(&manager.docker_host, "web").await;
    assert_eq!(answers.len(), 3, "{answers:?}");
    for (addr, r) in &answers {
        assert!(
            r.is_ok(),
            "task {addr} answers over the overlay: {answers:?}"
        );
    }
    let overlay_ok = t0.elapsed();

    // an encrypted overlay (IPsec ESP) between nodes: works where the kernel has ESP
    let esp = esp_supported(&manager.netns);
    docker(
        &host,
        &[
            "network",
            "create",
            "-d",
            "overlay",
            "--attachable",
            "--opt",
            "encrypted",
            "labenc",
        ],
    )
    .await
    .unwrap();
    // one task per node, so that the manager (where the addresses are fetched from) has one
    web_service(&host, "webenc", "labenc", 3).await;
    let enc = fetch_all(&manager.docker_host, "webenc").await;
    let enc_ok = enc.iter().filter(|(_, r)| r.is_ok()).count();
    say(&format!(
        "lab: encrypted overlay: kernel ESP support {esp}; {enc_ok} of {} task addresses answered from the manager's task: {enc:?}",
        enc.len()
    ));
    if esp {
        assert_eq!(enc_ok, enc.len(), "encrypted overlay with ESP: {enc:?}");
    } else {
        assert!(
            enc_ok < enc.len(),
            "without ESP the remote task cannot answer: {enc:?}"
        );
    }
    docker(&host, &["service", "rm", "webenc"]).await.unwrap();

    // memory and disk per node
    for v in running(&lab.nodes().await) {
        let u = lab.usage(&v.instance_id).await.unwrap();
        say(&format!(
            "lab: node n{} ({}): dockerd+containerd RSS {} MiB, all processes {} MiB, disk {} MiB",
            v.n,
            v.role,
            u.daemons_rss_kib / 1024,
            u.total_rss_kib / 1024,
            u.disk_bytes / (1024 * 1024)
        ));
        assert!(u.daemons_rss_kib > 10_000, "{u:?}");
    }

    // chaos: kill a worker → terminated without decrement, replaced, the replacement joins
    let victim = nodes.iter().find(|v| v.asg == workers).unwrap().clone();
    let t_kill = Instant::now();
    lab.kill(&victim.instance_id).await.unwrap();
    assert!(
        !Path::new(victim.docker_host.trim_start_matches("unix://")).exists()
            || docker(&victim.docker_host, &["info"]).await.is_err(),
        "the killed node's daemon is gone"
    );
    let healed = lab
        .wait_for(
            |n| {
                n.iter()
                    .any(|v| v.instance_id == victim.instance_id && v.state == NodeState::Stopped)
                    && n.iter()
                        .filter(|v| v.asg == workers && v.state == NodeState::Running)
                        .count()
                        == 2
            },
            Duration::from_secs(120),
        )
        .await
        .expect("the killed worker is replaced");
    let replacement = healed
        .iter()
        .find(|v| v.asg == workers && v.state == NodeState::Running && v.n > 3)
        .expect("a new worker node")
        .clone();
    let dead = healed
        .iter()
        .find(|v| v.instance_id == victim.instance_id)
        .unwrap();
    assert!(dead.killed, "{dead:?}");
    assert_eq!(fx.instance_state(&victim.instance_id).await, "terminated");
    assert_eq!(fx.desired(&workers).await, 2, "no decrement");
    let replaced_in = t_kill.elapsed();
    let hostname = format!("ip-{}", replacement.ip.replace('.', "-"));
    eventually(
        "the replacement is Ready in the swarm",
        Duration::from_secs(90),
        || async { ready_nodes(&host).await.contains(&hostname).then_some(()) },
    )
    .await;
    let rejoined_in = t_kill.elapsed();

    // scale-in with a lifecycle hook: Terminated in IMDS, the agent drains and exits, then stop
    fx.set_desired(&workers, 1).await;
    let t_scale = Instant::now();
    let draining = lab
        .wait_for(
            |n| {
                n.iter()
                    .any(|v| v.asg == workers && v.state == NodeState::Draining)
            },
            Duration::from_secs(30),
        )
        .await
        .expect("a worker drains");
    let leaving = draining
        .iter()
        .find(|v| v.state == NodeState::Draining)
        .unwrap()
        .clone();
    let imds = aws_config::imds::Client::builder()
        .endpoint(&leaving.imds_endpoint)
        .unwrap()
        .build();
    assert_eq!(
        imds.get("/latest/meta-data/autoscaling/target-lifecycle-state")
            .await
            .unwrap()
            .as_ref(),
        "Terminated"
    );
    let gone = lab
        .wait_for(
            |n| {
                n.iter()
                    .any(|v| v.n == leaving.n && v.state == NodeState::Stopped)
            },
            Duration::from_secs(70),
        )
        .await
        .expect("the drained worker stops");
    let drained = gone.iter().find(|v| v.n == leaving.n).unwrap();
    assert_eq!(drained.agent_exit, Some(0), "{drained:?}");
    assert_eq!(drained.error, None);
    let drained_in = t_scale.elapsed();
    let log = std::fs::read_to_string(drained.dir.join("agent.log")).unwrap();
    assert!(
        log.contains("\"draining\"") && log.contains("\"left\""),
        "{log}"
    );
    let events = lab.events().await;
    let at = |what: &str| {
        events
            .iter()
            .find(|e| e.instance == leaving.instance_id && e.what == what)
            .map(|e| e.at)
            .unwrap_or_else(|| panic!("no {what} event for {}: {events:?}", leaving.instance_id))
    };
    // measured on the lab's events: moto may terminate before UpdateAutoScalingGroup answers
    assert!(
        at("agent-exited") - at("terminating") >= 3.0,
        "the lab waited for the agent's drain (STANDIN_DRAIN_DELAY=3): {events:?}"
    );
    assert!(at("agent-exited") <= at("stopped"));
    assert!(
        at("agent-exited") <= at("dockerd-exited"),
        "the daemon ran until the agent left"
    );

    // bad input: an IMDS that never answers, for the next booted node; its agent exits non-zero
    lab.set_imds_fault(None, ImdsFault::NeverAnswer).await;
    fx.set_desired(&workers, 2).await;
    let mute = lab
        .wait_for(
            |n| {
                n.iter()
                    .any(|v| v.n > leaving.n && v.asg == workers && v.agent_exit.is_some())
            },
            Duration::from_secs(90),
        )
        .await
        .expect("the agent of the node with a mute IMDS gives up");
    let mute = mute
        .iter()
        .find(|v| v.n > leaving.n && v.asg == workers && v.agent_exit.is_some())
        .unwrap();
    assert_eq!(mute.agent_exit, Some(2), "{mute:?}");
    assert_eq!(
        mute.state,
        NodeState::Running,
        "the instance runs on; only its agent failed"
    );

    // the logs outlive the lab when saved
    let logs = tempfile::tempdir().unwrap();
    lab.save_logs(logs.path()).await.unwrap();
    let events = std::fs::read_to_string(logs.path().join("events.jsonl")).unwrap();
    assert!(
        events.contains("\"replace\"") && events.contains("\"terminating\""),
        "{events}"
    );
    let agent_log = std::fs::read_to_string(logs.path().join(format!("n{}-agent.log", manager.n)));
    assert!(agent_log.unwrap().contains("\"init\""));

    // down leaves nothing; a second down is a no-op
    let state_root = lab.state_dir().parent().unwrap().to_path_buf();
    let report = lab.down().await.expect("down");
    assert!(report.processes > 0 && report.state_dir, "{report}");
    assert!(report.firewall_rules == 1, "{report}");
    let left = leftovers(&stack, &state_root);
    assert!(left.is_empty(), "after down: {left:#?}");
    let again = infra_lab::teardown(&stack, &state_root).unwrap();
    assert!(again.is_empty(), "second down: {again}");
    fx.cleanup().await;

    say(&format!(
        "lab timings: up returned {:.2}s; 3 nodes running {:.1}s (boot per node {:?} s); swarm of 3 Ready {:.1}s; overlay across nodes {:.1}s; kill → replacement running {:.1}s, Ready in the swarm {:.1}s; scale-in drain → stopped {:.1}s",
        up_returned.as_secs_f64(),
        all_running.as_secs_f64(),
        boot_times.iter().map(|t| (t * 10.0).round() / 10.0).collect::<Vec<_>>(),
        swarm_formed.as_secs_f64(),
        overlay_ok.as_secs_f64(),
        replaced_in.as_secs_f64(),
        rejoined_in.as_secs_f64(),
        drained_in.as_secs_f64(),
    ));
}
