//! Acceptance (issue 11, section 4, item 5): the node agents' AWS calls go through the fault
//! proxy (`infra_test_support::proxy`: throttling, 500/503, connections reset before the request,
//! responses lost after moto acted) for a whole lab run. Three managers and a worker boot at the
//! same moment from moto's instances; the cluster still forms exactly once: one `swarm-init`
//! across all agents' logs, every node in the same swarm, every node Ready with its labels.
//!
//! The lab itself (moto's instances → nodes, IMDS) talks to moto directly: only the agents'
//! calls (SSM, Auto Scaling, EC2) are faulted. A lost `PutParameter` on the init claim is the
//! interesting case: the agent's retry finds the parameter existing and must recognise its own
//! claim (the claim holds the instance ID) instead of waiting for a swarm nobody initialises.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use infra_lab::{Lab, LabConfig, NodeState};
use infra_test_support::proxy::{FaultConfig, FaultProxy};
use infra_test_support::{say, unique};

use crate::fixture::{docker, Fixture};
use crate::{eventually, leftovers, preconditions, running, LOCK};

/// The share of the agents' AWS calls that fail (spread evenly over the four fault kinds).
const FAULT_RATE: f64 = 0.15;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_forms_exactly_once_while_the_agents_aws_calls_fail() {
    let test = "faults::the_cluster_forms_exactly_once_while_the_agents_aws_calls_fail";
    let Some(moto) = preconditions(test) else {
        return;
    };
    let _one_lab = LOCK.lock().await;
    let stack = unique("faults");
    let mut fx = Fixture::new(&moto, &stack).await;
    fx.asg("managers", "swarm-manager", 3, Some(60)).await;
    fx.asg("workers", "swarm-worker", 1, Some(60)).await;
    let seed = std::env::var("INFRA_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(11);
    let proxy = FaultProxy::start(&moto, FaultConfig::chaos(seed, FAULT_RATE))
        .await
        .expect("the fault proxy starts");

    let mut cfg = LabConfig::new(&stack, &moto, env!("CARGO_BIN_EXE_infra-node"));
    cfg.agent_aws_endpoint = proxy.url();
    cfg.images = infra_test_support::test_image().into_iter().collect();
    cfg.agent_env = vec![("INFRA_NODE_JOIN_TIMEOUT".into(), "180".into())];
    let t0 = Instant::now();
    let lab = Lab::up(cfg).await.expect("the lab comes up");
    let host = lab.manager_host();

    // every node Ready, 3 of them managers, each labelled with its AZ
    let formed = eventually(
        "3 managers and 1 worker Ready and labelled",
        Duration::from_secs(240),
        || async {
            let out = docker(
                &host,
                &[
                    "node",
                    "ls",
                    "--format",
                    "{{.ID}} {{.Status}} {{.ManagerStatus}}",
                ],
            )
            .await
            .ok()?;
            let ready: Vec<&str> = out.lines().filter(|l| l.contains(" Ready")).collect();
            let managers = ready
                .iter()
                .filter(|l| l.ends_with("Leader") || l.ends_with("Reachable"))
                .count();
            if ready.len() != 4 || managers != 3 {
                return None;
            }
            let mut azs = BTreeSet::new();
            for l in &ready {
                let id = l.split(' ').next()?;
                let az = docker(
                    &host,
                    &[
                        "node",
                        "inspect",
                        id,
                        "--format",
                        "{{index .Spec.Labels \"az\"}}",
                    ],
                )
                .await
                .ok()?;
                let az = az.trim().to_string();
                if az.is_empty() {
                    return None;
                }
                azs.insert(az);
            }
            Some(azs)
        },
    )
    .await;
    say(&format!(
        "{test}: 3 managers + 1 worker Ready and labelled through a {}% faulty AWS (seed {seed}) in {:.1} s; AZs {formed:?}",
        FAULT_RATE * 100.0,
        t0.elapsed().as_secs_f64()
    ));
    assert_eq!(formed.len(), 3, "the managers span 3 AZs: {formed:?}");

    // one swarm: every running node reports the same cluster ID
    let nodes = lab.nodes().await;
    let live = running(&nodes);
    assert_eq!(live.len(), 4, "{nodes:#?}");
    let mut clusters = BTreeSet::new();
    for n in &live {
        let id = docker(
            &n.docker_host,
            &["info", "--format", "{{.Swarm.Cluster.ID}}"],
        )
        .await
        .unwrap_or_default();
        // workers don't see the cluster object: their node ID is in the manager's list instead
        if !id.trim().is_empty() {
            clusters.insert(id.trim().to_string());
        }
    }
    assert_eq!(clusters.len(), 1, "exactly one swarm: {clusters:?}");

    // exactly one agent initialised it
    let mut inits = Vec::new();
    for n in &nodes {
        let log = std::fs::read_to_string(n.dir.join("agent.log")).unwrap_or_default();
        for l in log.lines() {
            if l.contains("\"step\":\"swarm-init\"") && l.contains("\"level\":\"info\"") {
                inits.push(format!("{}: {l}", n.instance_id));
            }
        }
    }
    assert_eq!(
        inits.len(),
        1,
        "one swarm-init across the agents: {inits:#?}"
    );

    // the faults really happened, on the calls the agents make
    let stats = proxy.stats();
    let faulted: Vec<(&String, u64)> = stats
        .per_action
        .iter()
        .filter(|(_, c)| c.faults() > 0)
        .map(|(a, c)| (a, c.faults()))
        .collect();
    say(&format!(
        "{test}: the agents made {} AWS calls, {} faulted (throttled {}, 5xx {}, reset {}, lost {}): {faulted:?}",
        stats.total.requests,
        stats.total.faults(),
        stats.total.throttled,
        stats.total.server_errors,
        stats.total.resets_before,
        stats.total.lost_responses
    ));
    assert!(stats.total.faults() > 0, "{stats:#?}");
    assert!(
        stats.action("PutParameter").requests > 0 && stats.action("GetParameter").requests > 0,
        "the agents' SSM calls went through the proxy: {stats:#?}"
    );
    assert_eq!(
        stats.total.upstream_errors, 0,
        "moto itself answered: {stats:#?}"
    );

    // no agent failed
    for n in &nodes {
        assert!(
            n.agent_exit.is_none() && n.state == NodeState::Running,
            "{}: the agent keeps running: {n:#?}",
            n.instance_id
        );
    }

    // cleanup: the lab, the groups, the agents' parameters
    let state_root = lab.state_dir().parent().unwrap().to_path_buf();
    lab.down().await.expect("lab down");
    fx.cleanup().await;
    let aws = crate::ha::clouds(&moto).await;
    crate::ha::delete_parameters(&aws.ssm, &stack).await;
    let left = leftovers(&stack, &state_root);
    assert!(left.is_empty(), "the lab left: {left:#?}");
}
