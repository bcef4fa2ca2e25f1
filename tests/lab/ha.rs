//! Acceptance (issue 11, section 4): the whole production stack (`--env lab`: 3 managers over 3
//! AZs, 2 workers, the app with 3 replicas spread over AZs, Elasticsearch, Kibana, the log
//! shipper) deployed by the deploy program on moto and a lab whose nodes run the real node agent
//! (`infra-node`), then the talk's HA claims checked by killing nodes:
//!
//! 1. `apply` converges both phases; 3 managers Ready with `az` labels of 3 AZs, the workers
//!    Ready; the app's replicas run in several AZs; the app reaches `elasticsearch` by name over
//!    TCP; a re-plan is empty.
//! 2. Manager loss: the raft leader's node is killed; the swarm keeps answering, the app keeps its
//!    replicas, the replacement joins as a manager with its AZ label, the dead node is removed;
//!    a re-plan is empty.
//! 3. AZ loss: every node of one AZ is killed; the app keeps its declared replicas; the cluster
//!    heals to 3 managers in 3 AZs and 2 workers.
//! 4. Scale out and in: the workers' desired capacity goes 2 → 4 (new workers join and get the
//!    global log shipper's tasks) → 2 (the leaving workers drain through the lifecycle hook: their
//!    agents exit 0 after leaving, and the app never runs fewer than declared − 1 replicas).
//! 5. Bad input: a new node whose IMDS never answers (exit 2), and one given a wrong join token
//!    (exit 5), each end with one clear line, stay out of the swarm and form no second swarm.
//!    (An agent denied the token parameter by IAM is tested in tests/node: moto does not enforce
//!    IAM.)
//!
//! Timings are printed (`say`) for the notes: apply → all Ready, heal after a manager loss, heal
//! after an AZ loss. This engine has no IPVS: the app reaches Elasticsearch in `dnsrr` mode.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use infra_lab::{ImdsFault, Lab, LabConfig, NodeState, NodeView};
use infra_test_support::{say, show, unique};

use crate::fixture::docker;
use crate::view::{deploy, view, wait_until, View};
use crate::{leftovers, preconditions, LOCK};

const MANAGERS: usize = 3;
const WORKERS: usize = 2;
const APP_REPLICAS: usize = 3;

pub(crate) struct Clouds {
    ec2: aws_sdk_ec2::Client,
    asg: aws_sdk_autoscaling::Client,
    pub(crate) ssm: aws_sdk_ssm::Client,
}

pub(crate) async fn clouds(moto: &str) -> Clouds {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto)
        .region(aws_config::Region::new("us-east-1"))
        .test_credentials()
        .load()
        .await;
    Clouds {
        ec2: aws_sdk_ec2::Client::new(&sdk),
        asg: aws_sdk_autoscaling::Client::new(&sdk),
        ssm: aws_sdk_ssm::Client::new(&sdk),
    }
}

fn live_of_role<'a>(nodes: &'a [NodeView], role: &str) -> Vec<&'a NodeView> {
    nodes
        .iter()
        .filter(|n| n.role == role && n.state == NodeState::Running)
        .collect()
}

/// The instance behind the raft leader (from its `instance` label).
async fn leader_instance(host: &str) -> Option<String> {
    let out = docker(
        host,
        &[
            "node",
            "ls",
            "--filter",
            "role=manager",
            "--format",
            "{{.ID}} {{.ManagerStatus}}",
        ],
    )
    .await
    .ok()?;
    let id = out
        .lines()
        .find(|l| l.ends_with("Leader"))?
        .split(' ')
        .next()?
        .to_string();
    let label = docker(
        host,
        &[
            "node",
            "inspect",
            &id,
            "--format",
            "{{index .Spec.Labels \"instance\"}}",
        ],
    )
    .await
    .ok()?;
    Some(label.trim().to_string())
}

/// From inside an app task's container: `nslookup elasticsearch`, then an HTTP request over TCP
/// (busybox `nc`) to the address it gave. Returns the first line of the answer.
async fn app_reaches_elasticsearch(lab: &Lab, stack: &str) -> Result<String, String> {
    let script =
        "ip=$(nslookup elasticsearch 2>/dev/null | awk '/^Address/ {a=$NF} END {print a}'); \
                  [ -n \"$ip\" ] || { echo unresolved; exit 1; }; \
                  printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 \"$ip\" 9200 | head -1";
    let mut last = String::from("no app container found");
    for node in lab.nodes().await.iter().filter(|n| n.is_live()) {
        let filter = format!("label=com.docker.swarm.service.name={stack}_app");
        let Ok(ids) = docker(&node.docker_host, &["ps", "-q", "--filter", &filter]).await else {
            continue;
        };
        let Some(id) = ids.lines().next() else {
            continue;
        };
        match docker(&node.docker_host, &["exec", id, "sh", "-c", script]).await {
            Ok(out) if out.starts_with("HTTP/1.") => return Ok(out.trim().to_string()),
            Ok(out) => last = format!("on {}: {out}", node.instance_id),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// What the internal load balancer of the functions sees: from another node's namespace (a
/// client elsewhere in the VPC), a TCP connection to each live manager's private address on 9200,
/// where Elasticsearch publishes in host mode on its own node. Returns, per manager's AZ, the
/// first line of the answer (`None`: refused or silent), which is what the target group's TCP
/// health check tells apart.
async fn es_on_managers_addresses(lab: &Lab) -> Vec<(String, Option<String>)> {
    let nodes = lab.nodes().await;
    let managers = live_of_role(&nodes, "swarm-manager");
    let Some(client) = nodes
        .iter()
        .find(|n| n.is_live() && n.role == "swarm-worker")
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for m in managers {
        let script = format!(
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox timeout 5 busybox nc -w 3 {} 9200 | head -1",
            m.ip
        );
        let answer = tokio::process::Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", client.netns))
            .args(["busybox", "sh", "-c", &script])
            .output()
            .await
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|l| l.starts_with("HTTP/1."));
        out.push((m.az.clone(), answer));
    }
    out.sort();
    out
}

/// Samples the app's running replicas every second while `busy`, keeping the minimum seen.
fn watch_replicas(host: String, stack: String) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let min = Arc::new(AtomicUsize::new(usize::MAX));
    let m = min.clone();
    let handle = tokio::spawn(async move {
        // bounded: at most 15 minutes of samples
        for _ in 0..900 {
            if let Ok(v) = view(&host, &stack).await {
                m.fetch_min(v.replicas("app"), Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    (min, handle)
}

fn healthy(v: &View, workers: usize) -> bool {
    v.healthy(MANAGERS, workers) && v.replicas("app") == APP_REPLICAS
}

fn replan_is_empty(dir: &std::path::Path, stack: &str, host: &str) {
    let plan = deploy(dir, stack, host, &["plan", "--detailed-exitcode"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "a re-plan shows no changes:\n{}",
        show(&plan)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_production_stack_forms_a_self_healing_cluster_on_the_lab() {
    let test = "ha::the_production_stack_forms_a_self_healing_cluster_on_the_lab";
    let Some(moto) = preconditions(test) else {
        return;
    };
    let _one_lab = LOCK.lock().await;
    let aws = clouds(&moto).await;
    infra_test_support::register_node_image(&aws.ec2).await;
    let stack = unique("ha");
    let dir = tempfile::tempdir().unwrap();

    let mut cfg = LabConfig::new(&stack, &moto, env!("CARGO_BIN_EXE_infra-node"));
    cfg.images = infra_test_support::test_image().into_iter().collect();
    cfg.skip_roles = vec!["bastion".into()];
    // identity gets a quarter of it: a silent IMDS ends the agent in 45 s
    cfg.agent_env = vec![("INFRA_NODE_JOIN_TIMEOUT".into(), "180".into())];
    let lab = Lab::up(cfg).await.expect("the lab comes up");
    let host = lab.manager_host();

    // 1. apply: both phases, then every node Ready and labelled
    let t0 = Instant::now();
    let apply = deploy(
        dir.path(),
        &stack,
        &host,
        &["apply", "--auto-approve", "--swarm-wait", "400"],
    );
    assert_eq!(apply.status.code(), Some(0), "{}", show(&apply));
    let (_, formed) = wait_until(
        &host,
        &stack,
        Duration::from_secs(300),
        "cluster Ready, the app over 3 AZs",
        // tasks placed while the cluster was still forming are placed again by the leader's
        // agent (its rebalancing)
        |v| healthy(v, WORKERS) && v.service_azs("app").len() == 3,
    )
    .await
    .unwrap();
    let ready_after = t0.elapsed();
    say(&format!(
        "{test}: apply → {MANAGERS} managers + {WORKERS} workers Ready and labelled, app {APP_REPLICAS}/{APP_REPLICAS} over 3 AZs: {:.1} s",
        ready_after.as_secs_f64()
    ));
    let azs: BTreeSet<String> = ["us-east-1a", "us-east-1b", "us-east-1c"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(formed.manager_azs(), azs, "one manager per AZ: {formed:#?}");
    let reached = app_reaches_elasticsearch(&lab, &stack).await;
    assert!(
        reached.is_ok(),
        "the app reaches elasticsearch by name: {reached:?}"
    );
    // The functions' path (through the internal load balancer): Elasticsearch answers on its
    // manager's address, in us-east-1a, and on no other manager's, so the target group's health
    // check finds it. Swarm publishes host-mode ports once the task runs: retried (bounded).
    let mut seen = Vec::new();
    for _ in 0..20 {
        seen = es_on_managers_addresses(&lab).await;
        let answering: Vec<&str> = seen
            .iter()
            .filter(|(_, a)| a.is_some())
            .map(|(az, _)| az.as_str())
            .collect();
        if answering == ["us-east-1a"] && seen.len() == MANAGERS {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    say(&format!(
        "{test}: 9200 on the managers' addresses: {seen:?}"
    ));
    let answering: Vec<&str> = seen
        .iter()
        .filter(|(_, a)| a.is_some())
        .map(|(az, _)| az.as_str())
        .collect();
    assert_eq!(
        (answering, seen.len()),
        (vec!["us-east-1a"], MANAGERS),
        "Elasticsearch answers on its own manager's address only: {seen:?}"
    );
    replan_is_empty(dir.path(), &stack, &host);

    // 2. manager loss: kill the raft leader's node
    let leader = leader_instance(&host)
        .await
        .expect("a leader with its instance label");
    let t1 = Instant::now();
    let (min_replicas, watcher) = watch_replicas(host.clone(), stack.clone());
    lab.kill(&leader).await.unwrap();
    // the swarm keeps answering (2 of 3 managers) while the replacement boots
    let answered = wait_until(
        &host,
        &stack,
        Duration::from_secs(60),
        "the swarm answers",
        |v| v.ready_managers().len() >= 2,
    )
    .await;
    assert!(answered.is_ok(), "{answered:?}");
    let (_, healed) = wait_until(
        &host,
        &stack,
        Duration::from_secs(300),
        "healed after a manager loss",
        |v| {
            healthy(v, WORKERS)
                && v.nodes
                    .iter()
                    .all(|n| n.instance.as_deref() != Some(&leader))
        },
    )
    .await
    .unwrap();
    let manager_heal = t1.elapsed();
    say(&format!(
        "{test}: manager loss (the leader) → 3 managers Ready again, dead node removed: {:.1} s",
        manager_heal.as_secs_f64()
    ));
    assert_eq!(healed.manager_azs(), azs, "{healed:#?}");
    replan_is_empty(dir.path(), &stack, &host);

    // 3. AZ loss: kill every node of the AZ of a worker (a manager and a worker at least)
    let nodes = lab.nodes().await;
    let zone = live_of_role(&nodes, "swarm-worker")[0].az.clone();
    let victims: Vec<String> = nodes
        .iter()
        .filter(|n| n.az == zone && n.state == NodeState::Running)
        .map(|n| n.instance_id.clone())
        .collect();
    assert!(victims.len() >= 2, "{zone}: {victims:?}");
    let t2 = Instant::now();
    for v in &victims {
        lab.kill(v).await.unwrap();
    }
    let (_, after_loss) = wait_until(
        &host,
        &stack,
        Duration::from_secs(300),
        "healed after an AZ loss",
        |v| {
            healthy(v, WORKERS)
                && v.nodes
                    .iter()
                    .all(|n| !victims.iter().any(|x| n.instance.as_deref() == Some(x)))
        },
    )
    .await
    .unwrap();
    let az_heal = t2.elapsed();
    say(&format!(
        "{test}: AZ loss ({zone}: {} nodes) → healed: {:.1} s; the app's AZs after: {:?}",
        victims.len(),
        az_heal.as_secs_f64(),
        after_loss.running.get("app")
    ));
    assert_eq!(after_loss.manager_azs(), azs, "{after_loss:#?}");
    watcher.abort();
    let lowest = min_replicas.load(Ordering::SeqCst);
    say(&format!(
        "{test}: lowest running app replicas during the losses: {lowest}"
    ));

    // 4. scale out and in (what the scaling policy does: the desired capacity)
    let workers_asg = live_of_role(&lab.nodes().await, "swarm-worker")[0]
        .asg
        .clone();
    let set_desired = |n: i32| {
        aws.asg
            .set_desired_capacity()
            .auto_scaling_group_name(&workers_asg)
            .desired_capacity(n)
            .send()
    };
    set_desired(4).await.expect("SetDesiredCapacity 4");
    let (_, out) = wait_until(&host, &stack, Duration::from_secs(300), "scaled out", |v| {
        healthy(v, 4) && v.replicas("log-shipper") == MANAGERS + 4
    })
    .await
    .unwrap();
    say(&format!(
        "{test}: scaled out to 4 workers; log shipper tasks {}",
        out.replicas("log-shipper")
    ));
    let before_in: BTreeSet<String> = live_of_role(&lab.nodes().await, "swarm-worker")
        .iter()
        .map(|n| n.instance_id.clone())
        .collect();
    let (min_replicas, watcher) = watch_replicas(host.clone(), stack.clone());
    set_desired(2).await.expect("SetDesiredCapacity 2");
    wait_until(&host, &stack, Duration::from_secs(300), "scaled in", |v| {
        healthy(v, WORKERS)
    })
    .await
    .unwrap();
    watcher.abort();
    // the leavers' agents finish after leaving the swarm (CompleteLifecycleAction, which moto
    // answers with 500, is retried a few times); the lab stops a node once its agent exits
    let nodes = lab
        .wait_for(
            |nodes| {
                nodes
                    .iter()
                    .filter(|n| before_in.contains(&n.instance_id) && n.state == NodeState::Stopped)
                    .count()
                    >= 2
            },
            Duration::from_secs(180),
        )
        .await;
    let nodes = match nodes {
        Ok(nodes) => nodes,
        Err(_) => lab.nodes().await,
    };
    let left: Vec<&NodeView> = nodes
        .iter()
        .filter(|n| before_in.contains(&n.instance_id) && n.state == NodeState::Stopped)
        .collect();
    assert_eq!(left.len(), 2, "two workers left: {nodes:#?}");
    for n in &left {
        assert_eq!(
            n.agent_exit,
            Some(0),
            "{}: the agent drained, left and exited 0 (lifecycle hook): {n:#?}",
            n.instance_id
        );
        assert!(!n.killed);
    }
    let lowest = min_replicas.load(Ordering::SeqCst);
    assert!(
        lowest != usize::MAX && lowest + 1 >= APP_REPLICAS,
        "the app never drops below declared − 1 while workers leave: lowest {lowest}"
    );

    // 5. bad input: a node whose IMDS never answers; a node given a wrong join token
    let seen: BTreeSet<String> = lab
        .nodes()
        .await
        .iter()
        .map(|n| n.instance_id.clone())
        .collect();
    lab.set_imds_fault(None, ImdsFault::NeverAnswer).await;
    set_desired(3).await.expect("SetDesiredCapacity 3");
    let silent = lab
        .wait_for(
            |nodes| {
                nodes.iter().any(|n| {
                    n.role == "swarm-worker"
                        && !seen.contains(&n.instance_id)
                        && n.agent_exit.is_some()
                })
            },
            Duration::from_secs(400),
        )
        .await;
    lab.set_imds_fault(None, ImdsFault::None).await;
    assert!(
        silent.is_ok(),
        "the agent gave up on a silent IMDS: {silent:?}"
    );
    // (the rest of this scenario, and the cleanup, below)
    let nodes = lab.nodes().await;
    let bad = nodes
        .iter()
        .find(|n| {
            n.role == "swarm-worker" && !seen.contains(&n.instance_id) && n.agent_exit.is_some()
        })
        .unwrap()
        .clone();
    assert_refused(&bad, 2, "IMDS failure", &[]).await;

    // a wrong worker token (the cluster's format, another secret): the next worker exits 5
    let param = format!("/infra/{stack}/swarm/worker-token");
    let good = aws
        .ssm
        .get_parameter()
        .name(&param)
        .with_decryption(true)
        .send()
        .await
        .expect("the worker token")
        .parameter()
        .and_then(|p| p.value())
        .unwrap()
        .to_string();
    let mut parts: Vec<String> = good.split('-').map(str::to_string).collect();
    let last = parts.len() - 1;
    parts[last] = "0123456789abcdefghijklmnop".into();
    let wrong = parts.join("-");
    aws.ssm
        .put_parameter()
        .name(&param)
        .value(&wrong)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .expect("PutParameter");
    let seen: BTreeSet<String> = lab
        .nodes()
        .await
        .iter()
        .map(|n| n.instance_id.clone())
        .collect();
    set_desired(4).await.expect("SetDesiredCapacity 4");
    let refused = lab
        .wait_for(
            |nodes| {
                nodes.iter().any(|n| {
                    n.role == "swarm-worker"
                        && !seen.contains(&n.instance_id)
                        && n.agent_exit.is_some()
                })
            },
            Duration::from_secs(400),
        )
        .await;
    aws.ssm
        .put_parameter()
        .name(&param)
        .value(&good)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .expect("PutParameter");
    assert!(
        refused.is_ok(),
        "the agent gave up on a wrong token: {refused:?}"
    );
    let nodes = lab.nodes().await;
    let bad = nodes
        .iter()
        .find(|n| {
            n.role == "swarm-worker" && !seen.contains(&n.instance_id) && n.agent_exit.is_some()
        })
        .unwrap();
    assert_refused(bad, 5, "a wrong token", &[&wrong, &good]).await;
    let clusters = view(&host, &stack).await.expect("the swarm answers");
    assert!(
        clusters
            .nodes
            .iter()
            .all(|n| n.instance.as_deref() != Some(&bad.instance_id)),
        "the refused node is not in the swarm"
    );

    // memory and disk of a manager and a worker
    for role in ["swarm-manager", "swarm-worker"] {
        let nodes = lab.nodes().await;
        let n = live_of_role(&nodes, role)[0];
        if let Some(u) = lab.usage(&n.instance_id).await {
            say(&format!(
                "{test}: {role} node: daemons RSS {} MiB, all processes {} MiB, disk {} MiB",
                u.daemons_rss_kib / 1024,
                u.total_rss_kib / 1024,
                u.disk_bytes / (1024 * 1024)
            ));
        }
    }

    // cleanup: the deploy program destroys both phases, the lab goes, the agents' parameters go
    let destroy = deploy(
        dir.path(),
        &stack,
        &host,
        &[
            "destroy",
            "--auto-approve",
            "--allow-destroy",
            "aws_vpc.main",
        ],
    );
    assert_eq!(destroy.status.code(), Some(0), "{}", show(&destroy));
    let state_root = lab.state_dir().parent().unwrap().to_path_buf();
    lab.down().await.expect("lab down");
    delete_parameters(&aws.ssm, &stack).await;
    let left = leftovers(&stack, &state_root);
    assert!(left.is_empty(), "the lab left: {left:#?}");
    say(&format!(
        "{test}: figures: ready {:.1} s, manager heal {:.1} s, AZ heal {:.1} s",
        ready_after.as_secs_f64(),
        manager_heal.as_secs_f64(),
        az_heal.as_secs_f64()
    ));
}

/// A node whose agent gave up: exit `code`, exactly one error line in its log (with none of
/// `secrets`), and its engine in no swarm.
async fn assert_refused(bad: &NodeView, code: i32, why: &str, secrets: &[&str]) {
    assert_eq!(bad.agent_exit, Some(code), "{why} exits {code}: {bad:#?}");
    let log = std::fs::read_to_string(bad.dir.join("agent.log")).unwrap_or_default();
    let errors = log
        .lines()
        .filter(|l| l.contains("\"level\":\"error\""))
        .count();
    assert_eq!(errors, 1, "{why}: one clear line: {log}");
    assert!(
        secrets.iter().all(|secret| !log.contains(secret)),
        "{why}: no token in the log"
    );
    let state = docker(
        &bad.docker_host,
        &["info", "--format", "{{.Swarm.LocalNodeState}}"],
    )
    .await
    .unwrap_or_default();
    assert_eq!(
        state.trim(),
        "inactive",
        "{why}: the node stays out of any swarm"
    );
}

/// Deletes what the agents wrote under `/infra/<stack>/` (not resources of the stack).
pub(crate) async fn delete_parameters(ssm: &aws_sdk_ssm::Client, stack: &str) {
    let mut names = Vec::new();
    let mut token = None;
    for _ in 0..50 {
        let page = ssm
            .get_parameters_by_path()
            .path(format!("/infra/{stack}/"))
            .recursive(true)
            .set_next_token(token.clone())
            .send()
            .await
            .expect("GetParametersByPath");
        names.extend(
            page.parameters()
                .iter()
                .filter_map(|p| p.name().map(str::to_string)),
        );
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    for chunk in names.chunks(10) {
        let _ = ssm
            .delete_parameters()
            .set_names(Some(chunk.to_vec()))
            .send()
            .await;
    }
}
