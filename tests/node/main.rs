//! The node agent (`infra-node`, issue 11) against moto, with loopback fakes for what moto does
//! not play: the instance metadata service and a Docker engine that is not in a swarm (the host
//! engine is a swarm manager other tests use, so no test here ever points the agent at it).
//!
//! * The init race through the library ([`infra_node::agent::claim_init`]): many agents at once,
//!   many times, exactly one winner; a stale claim cleared by exactly one agent.
//! * The real binary (`CARGO_BIN_EXE_infra-node`) through its bad-input paths (IMDS never
//!   answering, a token it may not read, a wrong token, no manager within the join timeout), a
//!   non-swarm instance, three managers started together, a manager's whole life (init, tokens,
//!   record, labels, leader duties, drain and leave on `Terminated`), a worker's, and a restart.
//!
//! Where the Docker side is a fake (`fakes::Engine`), the tests prove what the agent asks the
//! engine to do, not what a real swarm makes of it: that is the cluster lab's part (`infra-lab`).
//!
//! moto is shared: every stack name is unique, and each test deletes what it made.

mod cloud;
mod fakes;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::{Child, Command};

use cloud::Cloud;
use fakes::{Engine, Imds, JoinMode};
use infra_node::aws::{sdk_config, Aws, Params};
use infra_node::plan::InitRace;

// ---------------------------------------------------------------------------------------------
// Running the binary

/// A finished agent: exit code, its stdout lines parsed, raw output, time taken.
struct Run {
    code: Option<i32>,
    lines: Vec<Value>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    fn show(&self) -> String {
        format!(
            "exit {:?} after {:.1} s\n--- stdout\n{}--- stderr\n{}",
            self.code,
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }

    /// The lines at `level`.
    fn at(&self, level: &str) -> Vec<&Value> {
        self.lines.iter().filter(|l| l["level"] == level).collect()
    }

    /// The steps logged, in order.
    fn steps(&self) -> Vec<String> {
        self.lines
            .iter()
            .map(|l| l["step"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The only `error` line (the contract's "one clear line").
    fn the_error(&self) -> &Value {
        let errors = self.at("error");
        assert_eq!(errors.len(), 1, "exactly one error line\n{}", self.show());
        errors[0]
    }
}

/// The agent with the test's settings: its IMDS and engine, a 0.2 s poll, a 20 s join timeout
/// unless `env` says otherwise. `DOCKER_HOST` is always the fake engine.
fn agent(imds: &str, engine: &str, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_infra-node"));
    c.arg("run")
        .env("INFRA_NODE_IMDS_ENDPOINT", imds)
        .env("DOCKER_HOST", engine)
        .env("INFRA_NODE_POLL", "0.2")
        .env("INFRA_NODE_JOIN_TIMEOUT", "20")
        .env("INFRA_NODE_DRAIN_TIMEOUT", "5")
        .env_remove("INFRA_NODE_LOG")
        .env_remove("AWS_ENDPOINT_URL_SSM")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .kill_on_drop(true);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Parses every stdout line, checking each is one JSON object starting with ts, level, step,
/// msg (strings).
fn parse(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| {
            assert!(
                line.starts_with("{\"ts\":\""),
                "a log line that is not the agent's JSON: {line}"
            );
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            for key in ["ts", "level", "step", "msg"] {
                assert!(v[key].is_string(), "{key} missing in {line}");
            }
            v
        })
        .collect()
}

/// Runs the agent to its end (at most `limit`).
async fn finish(mut cmd: Command, limit: Duration) -> Run {
    let started = Instant::now();
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn infra-node");
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("infra-node did not end within {limit:?}"))
        .expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    Run {
        code: out.status.code(),
        lines: parse(&stdout),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        elapsed: started.elapsed(),
    }
}

/// A running agent whose stdout goes to a file (read at the end).
struct Running {
    child: Child,
    out: tempfile::NamedTempFile,
    err: tempfile::NamedTempFile,
    started: Instant,
}

fn start(mut cmd: Command) -> Running {
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let err = tempfile::NamedTempFile::new().expect("temp file");
    let child = cmd
        .stdout(Stdio::from(out.reopen().expect("reopen")))
        .stderr(Stdio::from(err.reopen().expect("reopen")))
        .spawn()
        .expect("spawn infra-node");
    Running {
        child,
        out,
        err,
        started: Instant::now(),
    }
}

impl Running {
    fn stdout(&self) -> String {
        std::fs::read_to_string(self.out.path()).unwrap_or_default()
    }

    /// Sends SIGTERM.
    fn terminate(&self) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits (at most `limit`) for the agent to end.
    async fn wait(mut self, limit: Duration) -> Run {
        let status = match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(s) => s.expect("wait"),
            Err(_) => {
                let _ = self.child.kill().await;
                panic!(
                    "infra-node did not end within {limit:?}\n--- stdout\n{}",
                    self.stdout()
                );
            }
        };
        let stdout = self.stdout();
        Run {
            code: status.code(),
            lines: parse(&stdout),
            stderr: std::fs::read_to_string(self.err.path()).unwrap_or_default(),
            stdout,
            elapsed: self.started.elapsed(),
        }
    }
}

/// Polls `check` every 100 ms until it holds or `limit` passes (then panics with `what`).
async fn until<F: FnMut() -> bool>(what: &str, limit: Duration, mut check: F) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Same as [`until`] for an async check.
async fn until_async<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn stack(prefix: &str) -> String {
    infra_test_support::unique(&format!("node-{prefix}"))
}

// ---------------------------------------------------------------------------------------------
// The init race (library)

/// Awaits every spawned task (they run concurrently from the moment they were spawned).
async fn all<T>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let tasks: Vec<_> = tasks.collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

async fn library_aws() -> Aws {
    Aws::new(
        &sdk_config("us-east-1").await,
        infra_node::agent::call_policy(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_init_race_has_exactly_one_winner_among_concurrent_managers() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    let aws = library_aws().await;
    const ROUNDS: usize = 12;
    const AGENTS: usize = 5;
    for round in 0..ROUNDS {
        let stack = stack("race");
        let params = Params::new(&stack);
        let runs = (0..AGENTS).map(|n| {
            let (aws, params) = (aws.clone(), params.clone());
            let me = format!("i-{round:04}{n:013}");
            tokio::spawn(async move {
                let r = infra_node::agent::claim_init(&aws, &params, &me).await;
                (me, r.expect("claim_init"))
            })
        });
        let outcomes: Vec<(String, InitRace)> = all(runs).await;
        let winners: Vec<&String> = outcomes
            .iter()
            .filter(|(_, o)| *o == InitRace::Won)
            .map(|(me, _)| me)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        let winner = winners[0].clone();
        for (me, o) in &outcomes {
            if *me != winner {
                assert_eq!(
                    *o,
                    InitRace::Lost {
                        holder: winner.clone()
                    },
                    "round {round}"
                );
            }
        }
        assert_eq!(
            cloud.param(&params.init()).await.map(|(v, _)| v),
            Some(winner.clone())
        );
        // A restart of the winner still wins (it initialises if it had not yet).
        assert_eq!(
            infra_node::agent::claim_init(&aws, &params, &winner)
                .await
                .unwrap(),
            InitRace::Won
        );
        cloud.clean(&stack).await;
    }
    infra_test_support::say(&format!(
        "init race: {ROUNDS} rounds of {AGENTS} concurrent agents, one winner each"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_claim_is_cleared_by_one_agent_and_the_rerun_race_has_one_winner() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    let aws = library_aws().await;
    for round in 0..5 {
        let stack = stack("stale");
        let params = Params::new(&stack);
        let dead = format!("i-dead{round:013}");
        assert_eq!(
            infra_node::agent::claim_init(&aws, &params, &dead)
                .await
                .unwrap(),
            InitRace::Won
        );
        let agents: Vec<String> = (0..4).map(|n| format!("i-live{round:04}{n:09}")).collect();
        let clears = agents.iter().map(|me| {
            let (aws, params, dead, me) = (aws.clone(), params.clone(), dead.clone(), me.clone());
            tokio::spawn(async move {
                infra_node::agent::clear_stale_claim(&aws, &params, &dead, &me)
                    .await
                    .expect("clear")
            })
        });
        let cleared: Vec<bool> = all(clears).await;
        assert_eq!(
            cleared.iter().filter(|c| **c).count(),
            1,
            "round {round}: {cleared:?}"
        );
        let races = agents.iter().map(|me| {
            let (aws, params, me) = (aws.clone(), params.clone(), me.clone());
            tokio::spawn(async move {
                infra_node::agent::claim_init(&aws, &params, &me)
                    .await
                    .expect("race")
            })
        });
        let outcomes: Vec<InitRace> = all(races).await;
        assert_eq!(
            outcomes.iter().filter(|o| **o == InitRace::Won).count(),
            1,
            "round {round}: {outcomes:?}"
        );
        // A late agent that still believes the old holder is stale cannot clear the new claim.
        let holder = cloud.param(&params.init()).await.unwrap().0;
        assert_ne!(holder, dead);
        assert!(
            !infra_node::agent::clear_stale_claim(&aws, &params, &dead, "i-late")
                .await
                .unwrap()
        );
        assert_eq!(cloud.param(&params.init()).await.unwrap().0, holder);
        cloud.clean(&stack).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_whose_first_answer_was_lost_still_clears_the_stale_claim() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    let aws = library_aws().await;
    let stack = stack("lostreset");
    let params = Params::new(&stack);
    let (dead, me) = ("i-0000000000000dead", "i-00000000000000me1");
    infra_node::agent::claim_init(&aws, &params, dead)
        .await
        .unwrap();
    // The marker was created by this agent, but the answer never arrived: the retry finds it.
    cloud.put(&params.init_reset(dead), me, false).await;
    assert!(
        !infra_node::agent::clear_stale_claim(&aws, &params, dead, "i-someone-else")
            .await
            .unwrap(),
        "another agent may not clear it"
    );
    assert!(
        infra_node::agent::clear_stale_claim(&aws, &params, dead, me)
            .await
            .unwrap()
    );
    assert_eq!(cloud.param(&params.init()).await, None);
    assert_eq!(
        infra_node::agent::claim_init(&aws, &params, me)
            .await
            .unwrap(),
        InitRace::Won
    );
    cloud.clean(&stack).await;
}

// ---------------------------------------------------------------------------------------------
// Bad input: the binary

#[tokio::test(flavor = "multi_thread")]
async fn an_imds_that_never_answers_stops_the_agent_with_exit_2_and_one_line() {
    // No moto needed: identity is the first step. Join timeout 8 s: identity gets 2 s.
    let engine = Engine::start("unused", JoinMode::Ok).await;
    for (what, endpoint) in [
        ("accepts but never answers", fakes::silent().await),
        ("refuses connections", fakes::closed()),
    ] {
        let run = finish(
            agent(&endpoint, &engine.host, &[("INFRA_NODE_JOIN_TIMEOUT", "8")]),
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(run.code, Some(2), "{what}\n{}", run.show());
        let line = run.the_error();
        assert_eq!(line["step"], "identity", "{}", run.show());
        let msg = line["msg"].as_str().unwrap();
        assert!(
            msg.contains(&endpoint) && msg.contains("gave no identity"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
        assert!(
            run.elapsed < Duration::from_secs(12),
            "bounded: {what}\n{}",
            run.show()
        );
        assert_eq!(run.stderr, "", "nothing on stderr");
    }
    assert!(
        engine.calls("").is_empty(),
        "the engine is never touched: {:?}",
        engine.calls("")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_the_node_may_not_read_stops_the_agent_with_exit_4() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    let stack = stack("denied");
    let (_, workers) = cloud.group(&stack, "swarm-worker", 1, false).await;
    let me = &workers[0];
    let imds = Imds::start(&me.id, &me.az, &me.ip).await;
    let engine = Engine::start("w1", JoinMode::Ok).await;
    let (ssm, seen) = fakes::deny_ssm().await;
    let run = finish(
        agent(&imds.url, &engine.host, &[("AWS_ENDPOINT_URL_SSM", &ssm)]),
        Duration::from_secs(60),
    )
    .await;
    cloud.clean(&stack).await;
    assert_eq!(run.code, Some(4), "{}", run.show());
    let line = run.the_error();
    assert_eq!(line["step"], "token");
    let msg = line["msg"].as_str().unwrap();
    let param = format!("/infra/{stack}/swarm/worker-token");
    assert!(
        msg.contains(&param) && msg.contains("access denied"),
        "{msg}"
    );
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|c| *c == format!("AmazonSSM.GetParameter {param}")),
        "{:?}",
        seen.lock().unwrap()
    );
    assert!(run.elapsed < Duration::from_secs(30), "{}", run.show());
    let s = engine.state.lock().unwrap();
    assert_eq!(s.state, "inactive", "the node stays out of any swarm");
    assert!(
        !s.calls.iter().any(|c| c.contains("/swarm/")),
        "no init, no join: {:?}",
        s.calls
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_stops_the_agent_with_exit_5_and_the_node_out_of_the_swarm() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    let stack = stack("wrongtoken");
    let (_, managers) = cloud.group(&stack, "swarm-manager", 1, false).await;
    let (_, workers) = cloud.group(&stack, "swarm-worker", 1, false).await;
    let wrong = "SWMTKN-1-wrongwrongwrongwrongwrong";
    cloud
        .put(&format!("/infra/{stack}/swarm/worker-token"), wrong, true)
        .await;
    let me = &workers[0];
    let imds = Imds::start(&me.id, &me.az, &me.ip).await;
    let engine = Engine::start("w1", JoinMode::BadToken).await;
    let run = finish(agent(&imds.url, &engine.host, &[]), Duration::from_secs(60)).await;
    cloud.clean(&stack).await;
    assert_eq!(run.code, Some(5), "{}", run.show());
    let line = run.the_error();
    assert_eq!(line["step"], "join");
    let msg = line["msg"].as_str().unwrap();
    assert!(
        msg.contains("refused the join token") && msg.contains("worker-token"),
        "{msg}"
    );
    assert!(
        !run.stdout.contains("wrongwrong") && !run.stderr.contains("wrongwrong"),
        "the token is never printed\n{}",
        run.show()
    );
    let joins = engine.bodies("join");
    assert_eq!(
        joins.len(),
        1,
        "one manager, tried once: a bad token is final"
    );
    assert_eq!(
        joins[0]["RemoteAddrs"],
        serde_json::json!([format!("{}:2377", managers[0].ip)])
    );
    assert_eq!(joins[0]["JoinToken"], wrong);
    assert_eq!(joins[0]["AdvertiseAddr"], me.ip.as_str());
    assert_eq!(joins[0]["ListenAddr"], "0.0.0.0:2377");
    let s = engine.state.lock().unwrap();
    assert_eq!(s.state, "inactive");
    assert!(!s.calls.iter().any(|c| c.contains("/swarm/init")));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_manager_or_no_token_within_the_join_timeout_stops_the_agent_with_exit_6() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    // A worker whose stack has a token but no manager group; and one without a token.
    let with_token = stack("nomanager");
    let without = stack("notoken");
    let (_, w1) = cloud.group(&with_token, "swarm-worker", 1, false).await;
    let (_, w2) = cloud.group(&without, "swarm-worker", 1, false).await;
    cloud
        .put(
            &format!("/infra/{with_token}/swarm/worker-token"),
            "SWMTKN-1-x",
            true,
        )
        .await;
    let imds1 = Imds::start(&w1[0].id, &w1[0].az, &w1[0].ip).await;
    let imds2 = Imds::start(&w2[0].id, &w2[0].az, &w2[0].ip).await;
    let e1 = Engine::start("w1", JoinMode::Ok).await;
    let e2 = Engine::start("w2", JoinMode::Ok).await;
    let timeout = [("INFRA_NODE_JOIN_TIMEOUT", "6")];
    let (r1, r2) = tokio::join!(
        finish(
            agent(&imds1.url, &e1.host, &timeout),
            Duration::from_secs(60)
        ),
        finish(
            agent(&imds2.url, &e2.host, &timeout),
            Duration::from_secs(60)
        ),
    );
    cloud.clean(&with_token).await;
    cloud.clean(&without).await;
    for (run, step, words) in [
        (
            &r1,
            "join",
            "no manager let this node join within the join timeout (6 s)",
        ),
        (&r2, "token", "no join token appeared"),
    ] {
        assert_eq!(run.code, Some(6), "{}", run.show());
        let line = run.the_error();
        assert_eq!(line["step"], step, "{}", run.show());
        assert!(
            line["msg"].as_str().unwrap().contains(words),
            "{}",
            run.show()
        );
        assert!(
            run.elapsed >= Duration::from_secs(5) && run.elapsed < Duration::from_secs(20),
            "bounded by the join timeout\n{}",
            run.show()
        );
    }
    for e in [&e1, &e2] {
        assert!(e.calls("POST /swarm").is_empty(), "{:?}", e.calls(""));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_of_a_group_that_is_not_a_swarm_group_exits_0_doing_nothing() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    let stack = stack("bastion");
    let (_, bastions) = cloud.group(&stack, "bastion", 1, false).await;
    let me = &bastions[0];
    let imds = Imds::start(&me.id, &me.az, &me.ip).await;
    let engine = Engine::start("b1", JoinMode::Ok).await;
    let run = finish(agent(&imds.url, &engine.host, &[]), Duration::from_secs(60)).await;
    cloud.clean(&stack).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert!(run.at("error").is_empty());
    assert!(
        run.lines
            .iter()
            .any(|l| l["step"] == "role" && l["msg"].as_str().unwrap().contains("not a swarm node")),
        "{}",
        run.show()
    );
    assert!(engine.calls("").is_empty(), "{:?}", engine.calls(""));
    assert!(cloud.names(&format!("/infra/{stack}/")).await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Whole lives (fake engines)

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_managers_started_together_initialise_the_swarm_once() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    for round in 0..3 {
        let stack = stack("trio");
        let (_, managers) = cloud.group(&stack, "swarm-manager", 3, false).await;
        let mut nodes = Vec::new();
        for (n, m) in managers.iter().enumerate() {
            let imds = Imds::start(&m.id, &m.az, &m.ip).await;
            let engine = Engine::start(&format!("m{n}"), JoinMode::Ok).await;
            nodes.push((m.clone(), imds, engine));
        }
        let agents: Vec<Running> = nodes
            .iter()
            .map(|(_, imds, engine)| start(agent(&imds.url, &engine.host, &[])))
            .collect();
        let params = Params::new(&stack);
        until_async("three node records", Duration::from_secs(60), || async {
            cloud.names(&params.nodes()).await.len() == 3
        })
        .await;
        // Managers label themselves right after writing their record.
        until("three labelled managers", Duration::from_secs(30), || {
            nodes
                .iter()
                .all(|(_, _, e)| e.state.lock().unwrap().labels.contains_key("role"))
        })
        .await;
        for a in &agents {
            a.terminate();
        }
        let mut runs = Vec::new();
        for a in agents {
            runs.push(a.wait(Duration::from_secs(20)).await);
        }
        let inits: Vec<usize> = (0..3)
            .filter(|i| !nodes[*i].2.calls("POST /swarm/init").is_empty())
            .collect();
        assert_eq!(inits.len(), 1, "round {round}: one swarm init");
        let winner = inits[0];
        let (wm, _, we) = &nodes[winner];
        assert_eq!(
            cloud.param(&params.init()).await.map(|p| p.0),
            Some(wm.id.clone())
        );
        let manager_token = we.state.lock().unwrap().tokens.1.clone();
        assert_eq!(
            cloud.param(&params.manager_token()).await,
            Some((manager_token.clone(), "SecureString".to_string()))
        );
        let init = &we.bodies("init")[0];
        assert_eq!(init["AdvertiseAddr"], wm.ip.as_str());
        assert_eq!(init["ListenAddr"], "0.0.0.0:2377");
        for (i, (m, _, e)) in nodes.iter().enumerate() {
            let run = &runs[i];
            assert_eq!(run.code, Some(0), "stopped by SIGTERM\n{}", run.show());
            assert!(
                run.steps().last().is_some_and(|s| s == "exit"),
                "{}",
                run.show()
            );
            assert!(
                !run.stdout.contains("-secret"),
                "a token in the log\n{}",
                run.show()
            );
            assert_eq!(e.state.lock().unwrap().state, "active");
            if i == winner {
                assert!(e.bodies("join").is_empty());
                continue;
            }
            let joins = e.bodies("join");
            assert_eq!(joins.len(), 1, "{}", run.show());
            assert_eq!(joins[0]["JoinToken"], manager_token.as_str());
            let remote = joins[0]["RemoteAddrs"][0].as_str().unwrap().to_string();
            assert!(
                remote.ends_with(":2377") && remote != format!("{}:2377", m.ip),
                "a peer manager, never itself: {remote}"
            );
            // Managers label themselves at once.
            let labels = e.state.lock().unwrap().labels.clone();
            assert_eq!(labels.get("role").map(String::as_str), Some("manager"));
            assert_eq!(labels.get("instance"), Some(&m.id));
        }
        cloud.clean(&stack).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manager_initialises_serves_as_leader_and_leaves_on_termination() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    let stack = stack("life");
    let (group, managers) = cloud.group(&stack, "swarm-manager", 1, true).await;
    let me = managers[0].clone();
    let params = Params::new(&stack);
    let imds = Imds::start(&me.id, &me.az, &me.ip).await;
    let engine = Engine::start("m0", JoinMode::Ok).await;
    // What the leader must clean up: a dead manager (labelled, no record), a dead worker (only
    // its record names its instance), and a live worker with a draining record and no labels.
    let (dead1, dead2, live) = (
        "i-00000000000dead01",
        "i-00000000000dead02",
        "i-0000000000001ive0",
    );
    engine.state.lock().unwrap().others = vec![
        serde_json::json!({"ID": "dead-mgr", "Version": {"Index": 3},
            "Spec": {"Labels": {"instance": dead1}, "Role": "manager", "Availability": "active"},
            "Status": {"State": "down"},
            "ManagerStatus": {"Leader": false, "Reachability": "unreachable"}}),
        serde_json::json!({"ID": "dead-wkr", "Version": {"Index": 3},
            "Spec": {"Labels": {}, "Role": "worker", "Availability": "active"},
            "Status": {"State": "down"}}),
        serde_json::json!({"ID": "live-wkr", "Version": {"Index": 3},
            "Spec": {"Labels": {"tier": "web"}, "Role": "worker", "Availability": "active"},
            "Status": {"State": "ready"}}),
    ];
    let record = |node: &str, instance: &str, state: &str| {
        serde_json::json!({"node_id": node, "instance": instance, "az": "us-east-1c",
            "role": "worker", "ip": "10.77.10.99", "state": state})
        .to_string()
    };
    cloud
        .put(
            &params.node(dead2),
            &record("dead-wkr", dead2, "ready"),
            false,
        )
        .await;
    cloud
        .put(
            &params.node(live),
            &record("live-wkr", live, "draining"),
            false,
        )
        .await;

    let running = start(agent(&imds.url, &engine.host, &[]));
    until("the leader's clean-up", Duration::from_secs(60), || {
        let s = engine.state.lock().unwrap();
        s.others.len() == 1 && s.others[0]["Spec"]["Availability"] == "drain"
    })
    .await;
    until_async(
        "the dead worker's record deleted",
        Duration::from_secs(30),
        || async { cloud.param(&params.node(dead2)).await.is_none() },
    )
    .await;
    // Serving: its own record, tokens, labels.
    let own = cloud.param(&params.node(&me.id)).await.expect("own record");
    let own: Value = serde_json::from_str(&own.0).unwrap();
    assert_eq!(
        own,
        serde_json::json!({"node_id": "m0", "instance": me.id, "az": me.az, "role": "manager",
            "ip": me.ip, "state": "ready"})
    );
    let (worker_token, manager_token) = engine.state.lock().unwrap().tokens.clone();
    assert_eq!(
        cloud.param(&params.worker_token()).await,
        Some((worker_token, "SecureString".into()))
    );
    assert_eq!(
        cloud.param(&params.manager_token()).await,
        Some((manager_token, "SecureString".into()))
    );
    {
        let s = engine.state.lock().unwrap();
        let want: std::collections::BTreeMap<String, String> = [
            ("az", me.az.as_str()),
            ("instance", me.id.as_str()),
            ("role", "manager"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(s.labels, want);
        // The live worker: the record's labels added to its own, and drained.
        let spec = &s.others[0]["Spec"];
        assert_eq!(
            spec["Labels"],
            serde_json::json!({"az": "us-east-1c", "instance": live, "role": "worker", "tier": "web"})
        );
        assert_eq!(spec["Role"], "worker");
    }
    // The dead manager was demoted before it was removed.
    let demote = engine.bodies("update dead-mgr");
    assert_eq!(demote.len(), 1);
    assert_eq!(demote[0]["Role"], "worker");
    let calls = engine.calls("");
    let demoted = calls
        .iter()
        .position(|c| c.starts_with("POST /nodes/dead-mgr/update"))
        .unwrap();
    let removed = calls
        .iter()
        .position(|c| c.starts_with("DELETE /nodes/dead-mgr"))
        .unwrap();
    assert!(demoted < removed);
    assert!(calls
        .iter()
        .any(|c| c.starts_with("DELETE /nodes/dead-wkr")));

    // Termination.
    imds.set_lifecycle("Terminated");
    assert_eq!(
        *imds.unauthorised.lock().unwrap(),
        0,
        "every metadata request carried an IMDSv2 session token"
    );
    let run = running.wait(Duration::from_secs(60)).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    let steps: BTreeSet<String> = run.steps().into_iter().collect();
    for step in [
        "start",
        "identity",
        "group",
        "swarm",
        "init-race",
        "swarm-init",
        "record",
        "labels",
        "serve",
        "leader",
        "lifecycle",
        "drain",
        "demote",
        "leave",
        "complete-lifecycle",
        "exit",
    ] {
        assert!(steps.contains(step), "no {step} line\n{}", run.show());
    }
    assert!(
        !run.stdout.contains("-secret") && !run.stderr.contains("-secret"),
        "a token in the log\n{}",
        run.show()
    );
    {
        let s = engine.state.lock().unwrap();
        assert_eq!(s.state, "inactive", "left the swarm");
        assert_eq!(s.availability, "drain", "drained itself first");
        assert!(
            s.calls.iter().any(|c| c == "POST /swarm/leave?force=true"),
            "the last manager leaves with force: {:?}",
            s.calls
        );
    }
    assert!(
        cloud.param(&params.node(&me.id)).await.is_none(),
        "its record is deleted"
    );
    // moto answers CompleteLifecycleAction with HTTP 500: a warning after bounded retries.
    let complete = run
        .lines
        .iter()
        .find(|l| l["step"] == "complete-lifecycle")
        .unwrap();
    assert_eq!(complete["hook"], format!("{group}-drain"), "{}", run.show());
    cloud.clean(&stack).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manager_clears_a_stale_init_claim_and_initialises_the_swarm() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    let stack = stack("staleclaim");
    let (_, managers) = cloud.group(&stack, "swarm-manager", 1, false).await;
    let params = Params::new(&stack);
    // An initialiser that died before writing the tokens (EC2 does not know it any more).
    let dead = "i-0000000000000dead";
    cloud.put(&params.init(), dead, false).await;
    let me = &managers[0];
    let imds = Imds::start(&me.id, &me.az, &me.ip).await;
    let engine = Engine::start("m0", JoinMode::Ok).await;
    // Join timeout 20 s: the grace period is 5 s.
    let running = start(agent(&imds.url, &engine.host, &[]));
    until_async("this manager's record", Duration::from_secs(60), || async {
        cloud.param(&params.node(&me.id)).await.is_some()
    })
    .await;
    running.terminate();
    let run = running.wait(Duration::from_secs(20)).await;
    let init = cloud.param(&params.init()).await.map(|p| p.0);
    let marker = cloud.param(&params.init_reset(dead)).await.map(|p| p.0);
    cloud.clean(&stack).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert_eq!(init.as_deref(), Some(me.id.as_str()), "{}", run.show());
    assert_eq!(marker.as_deref(), Some(me.id.as_str()));
    assert_eq!(engine.calls("POST /swarm/init").len(), 1);
    assert!(engine.bodies("join").is_empty());
    let stale = run
        .lines
        .iter()
        .find(|l| l["msg"].as_str().unwrap().contains("stale"))
        .unwrap_or_else(|| panic!("no stale-claim line\n{}", run.show()));
    assert_eq!(stale["holder"], dead);
    assert_eq!(stale["cleared"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_joins_with_the_worker_token_and_leaves_on_termination() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    let stack = stack("worker");
    let (_, managers) = cloud.group(&stack, "swarm-manager", 2, false).await;
    let (_, workers) = cloud.group(&stack, "swarm-worker", 1, true).await;
    let params = Params::new(&stack);
    let token = "SWMTKN-1-the-worker-secret";
    cloud.put(&params.worker_token(), token, true).await;
    let me = &workers[0];
    let imds = Imds::start(&me.id, &me.az, &me.ip).await;
    // The first manager tried does not answer: the agent goes on to the next one.
    let engine = Engine::start("w0", JoinMode::UnreachableFirst).await;
    let running = start(agent(&imds.url, &engine.host, &[]));
    until_async("the worker's record", Duration::from_secs(60), || async {
        cloud.param(&params.node(&me.id)).await.is_some()
    })
    .await;
    let record: Value =
        serde_json::from_str(&cloud.param(&params.node(&me.id)).await.unwrap().0).unwrap();
    assert_eq!(record["role"], "worker");
    assert_eq!(record["node_id"], "w0");
    assert_eq!(record["state"], "ready");
    imds.set_lifecycle("Terminated");
    let run = running.wait(Duration::from_secs(60)).await;
    cloud.clean(&stack).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert!(!run.stdout.contains("-secret"), "{}", run.show());
    let joins = engine.bodies("join");
    assert_eq!(joins.len(), 2, "{}", run.show());
    let tried: BTreeSet<String> = joins
        .iter()
        .map(|j| {
            assert_eq!(j["JoinToken"], token);
            j["RemoteAddrs"][0].as_str().unwrap().to_string()
        })
        .collect();
    let peers: BTreeSet<String> = managers.iter().map(|m| format!("{}:2377", m.ip)).collect();
    assert_eq!(tried, peers, "both managers, one after the other");
    assert!(
        run.lines
            .iter()
            .any(|l| l["level"] == "warn" && l["step"] == "join"),
        "the failed attempt is logged\n{}",
        run.show()
    );
    let s = engine.state.lock().unwrap();
    assert_eq!(s.state, "inactive");
    assert!(
        s.calls.iter().any(|c| c == "POST /swarm/leave?force=false"),
        "a worker leaves without force: {:?}",
        s.calls
    );
    assert!(
        !s.calls.iter().any(|c| c.starts_with("POST /nodes")),
        "a worker never updates nodes: {:?}",
        s.calls
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_already_in_a_swarm_skips_init_and_join() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    let stack = stack("restart");
    let (_, workers) = cloud.group(&stack, "swarm-worker", 1, false).await;
    let params = Params::new(&stack);
    let me = &workers[0];
    let imds = Imds::start(&me.id, &me.az, &me.ip).await;
    let engine = Engine::start("w9", JoinMode::BadToken).await;
    engine.state.lock().unwrap().state = "active".into();
    let running = start(agent(&imds.url, &engine.host, &[]));
    until_async("the record", Duration::from_secs(60), || async {
        cloud.param(&params.node(&me.id)).await.is_some()
    })
    .await;
    running.terminate();
    let run = running.wait(Duration::from_secs(20)).await;
    cloud.clean(&stack).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert!(
        run.lines
            .iter()
            .any(|l| l["step"] == "swarm"
                && l["msg"].as_str().unwrap().contains("already in a swarm")),
        "{}",
        run.show()
    );
    assert!(
        engine.calls("POST /swarm").is_empty(),
        "{:?}",
        engine.calls("")
    );
}

// ---------------------------------------------------------------------------------------------
// The Docker wrapper against the host engine (a single-node swarm other tests share: read-only,
// except one label of a unique key, removed again)

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
