//! The lab's life around the cluster: the CLI (`status`, `kill`, `down` after a crash), a drain
//! bounded by the hook, refused configurations, a dropped lab.

use std::path::PathBuf;
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use infra_lab::{ImdsFault, Lab, LabConfig, NodeState};
use infra_test_support::unique;

use crate::fixture::Fixture;
use crate::{eventually, leftovers, preconditions, running, standin, LOCK};

/// A crashed lab (its process SIGKILLed) leaves everything running; `lab down` from another
/// process removes it all by name, and a second `lab down` finds nothing. Also the CLI's
/// `status` and `kill` (the supervisor in the `up` process replaces the killed node).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_kill_and_down_after_a_crash() {
    let test = "cli_kill_and_down_after_a_crash";
    let Some(moto) = preconditions(test) else {
        return;
    };
    let _one = LOCK.lock().await;
    let stack = unique("labcli");
    let mut fx = Fixture::new(&moto, &stack).await;
    fx.asg("managers", "swarm-manager", 1, None).await;
    let state_root = PathBuf::from(infra_lab::DEFAULT_STATE_ROOT);
    let lab_bin = infra_test_support::example_binary("lab");
    let mut up = tokio::process::Command::new(&lab_bin)
        .args(["up", "--stack", &stack, "--agent"])
        .arg(standin())
        .args(["--image", &infra_test_support::test_image().unwrap()])
        .args(["--aws-endpoint", &moto])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let cli = |args: &[&str]| {
        let o = StdCommand::new(&lab_bin).args(args).output().unwrap();
        (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    };
    let first = eventually(
        "the CLI's lab runs a node",
        Duration::from_secs(90),
        || async {
            let s = infra_lab::read_status(&stack, &state_root).ok()?;
            s.nodes
                .iter()
                .find(|v| v.state == NodeState::Running)
                .map(|v| v.instance_id.clone())
        },
    )
    .await;
    let (ok, out) = cli(&["status", "--stack", &stack]);
    assert!(
        ok && out.contains(&first) && out.contains("running"),
        "{out}"
    );

    // `lab kill` from another process: the lab replaces the node
    let (ok, out) = cli(&["kill", "--stack", &stack, &first]);
    assert!(ok, "{out}");
    eventually(
        "a replacement node runs",
        Duration::from_secs(90),
        || async {
            let s = infra_lab::read_status(&stack, &state_root).ok()?;
            s.nodes
                .iter()
                .any(|v| v.state == NodeState::Running && v.instance_id != first)
                .then_some(())
        },
    )
    .await;
    assert_eq!(fx.instance_state(&first).await, "terminated");

    // crash: SIGKILL the lab's process; its nodes run on
    up.start_kill().unwrap();
    let _ = up.wait().await;
    let left = leftovers(&stack, &state_root);
    assert!(
        left.iter().any(|l| l.starts_with("netns")) && left.iter().any(|l| l.contains("dockerd")),
        "a crashed lab leaves its nodes: {left:#?}"
    );
    let (ok, out) = cli(&["status", "--stack", &stack]);
    assert!(ok && out.contains("DEAD"), "{out}");

    let (ok, out) = cli(&["down", "--stack", &stack]);
    assert!(ok, "{out}");
    let left = leftovers(&stack, &state_root);
    assert!(left.is_empty(), "after down: {left:#?}\n{out}");
    let (ok, out) = cli(&["down", "--stack", &stack]);
    assert!(ok && out.contains("nothing to remove"), "{out}");
    fx.cleanup().await;
}

/// A drain is bounded by the lifecycle hook's heartbeat timeout: an agent that never leaves is
/// stopped with the node after it, and says so. Also an IMDS fault set on a live node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_is_bounded_by_the_hook_heartbeat() {
    let test = "a_drain_is_bounded_by_the_hook_heartbeat";
    let Some(moto) = preconditions(test) else {
        return;
    };
    let _one = LOCK.lock().await;
    let stack = unique("labhook");
    let mut fx = Fixture::new(&moto, &stack).await;
    let workers = fx.asg("workers", "swarm-worker", 1, Some(3)).await;
    let mut cfg = LabConfig::new(&stack, &moto, standin());
    cfg.agent_env = vec![
        ("STANDIN_SKIP_SWARM".into(), "1".into()),
        ("STANDIN_IGNORE_TERMINATION".into(), "1".into()),
    ];
    let lab = Lab::up(cfg).await.unwrap();
    let nodes = lab
        .wait_for(|n| running(n).len() == 1, Duration::from_secs(60))
        .await
        .unwrap();
    let node = nodes[0].clone();

    // a fault on a live node's IMDS, then back (once the agent has read its identity: a fault
    // before that would make it give up, and the drain below would have no agent to wait for)
    eventually("the agent is ready", Duration::from_secs(30), || async {
        std::fs::read_to_string(node.dir.join("agent.log"))
            .ok()?
            .contains("\"ready\"")
            .then_some(())
    })
    .await;
    let curl_token = |ep: String| {
        let o = StdCommand::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-m",
                "3",
                "-X",
                "PUT",
            ])
            .args(["-H", "X-aws-ec2-metadata-token-ttl-seconds: 60"])
            .arg(format!("{ep}/latest/api/token"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    lab.set_imds_fault(Some(&node.instance_id), ImdsFault::Status(503))
        .await;
    assert_eq!(curl_token(node.imds_endpoint.clone()), "503");
    lab.set_imds_fault(Some(&node.instance_id), ImdsFault::None)
        .await;
    assert_eq!(curl_token(node.imds_endpoint.clone()), "200");

    fx.set_desired(&workers, 0).await;
    let t = Instant::now();
    let stopped = lab
        .wait_for(
            |n| {
                n.iter()
                    .any(|v| v.n == node.n && v.state == NodeState::Stopped)
            },
            Duration::from_secs(30),
        )
        .await
        .expect("the node stops after the heartbeat timeout");
    assert!(t.elapsed() < Duration::from_secs(20), "bounded by the hook");
    let v = stopped.iter().find(|v| v.n == node.n).unwrap();
    // moto may terminate the instance a while before UpdateAutoScalingGroup answers: measure
    // the wait from the lab's own events
    let events = lab.events().await;
    let at = |what: &str| {
        events
            .iter()
            .find(|e| e.instance == node.instance_id && e.what == what)
            .map(|e| e.at)
            .unwrap_or_else(|| panic!("no {what} event: {events:?}"))
    };
    let waited = at("stopped") - at("terminating");
    assert!(
        (3.0..10.0).contains(&waited),
        "waited for the hook's 3 s: {waited}: {events:?}"
    );
    let err = v.error.clone().unwrap_or_default();
    assert!(err.contains("heartbeat timeout"), "{v:?}");
    let log = std::fs::read_to_string(v.dir.join("agent.log")).unwrap();
    assert!(
        log.contains("\"ignoring\""),
        "the agent saw Terminated: {log}"
    );
    let root = lab.state_dir().parent().unwrap().to_path_buf();
    lab.down().await.unwrap();
    assert!(leftovers(&stack, &root).is_empty());
    fx.cleanup().await;
}

/// `up` refuses what it cannot run: a missing agent, a bad stack name, a second lab of a stack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_refuses_bad_configurations() {
    let test = "up_refuses_bad_configurations";
    let Some(moto) = preconditions(test) else {
        return;
    };
    let _one = LOCK.lock().await;
    let e = Lab::up(LabConfig::new("lab-bad", &moto, "/nonexistent/agent"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    let e = Lab::up(LabConfig::new("bad name", &moto, standin()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("stack name"), "{e}");

    let stack = unique("labtwice");
    let lab = Lab::up(LabConfig::new(&stack, &moto, standin()))
        .await
        .unwrap();
    // a second lab of a stack is refused (this process or another)
    let e = Lab::up(LabConfig::new(&stack, &moto, standin()))
        .await
        .unwrap_err();
    assert!(matches!(e, infra_lab::LabError::Busy { .. }), "{e}");
    let root = lab.state_dir().parent().unwrap().to_path_buf();
    lab.down().await.unwrap();
    assert!(leftovers(&stack, &root).is_empty());

    // a lab dropped without `down` (a failing test's) tears down anyway
    let lab = Lab::up(LabConfig::new(&stack, &moto, standin()))
        .await
        .unwrap();
    assert!(
        !leftovers(&stack, &root).is_empty(),
        "the lab made its bridge"
    );
    drop(lab);
    let left = leftovers(&stack, &root);
    assert!(left.is_empty(), "after drop: {left:#?}");
}
