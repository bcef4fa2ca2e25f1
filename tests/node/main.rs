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

mod bad_input;
mod cloud;
mod fakes;
mod host;
mod lives;
mod race;

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

/// The agent with the test's settings: its IMDS and engine, a 0.2 s poll, a 60 s join timeout
/// unless `env` says otherwise. `DOCKER_HOST` is always the fake engine.
fn agent(imds: &str, engine: &str, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_infra-node"));
    c.arg("run")
        .env("INFRA_NODE_IMDS_ENDPOINT", imds)
        .env("DOCKER_HOST", engine)
        .env("INFRA_NODE_POLL", "0.2")
        .env("INFRA_NODE_JOIN_TIMEOUT", "60")
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

/// What the agents wrote so far, for a timeout's message.
fn logs(agents: &[&Running]) -> String {
    agents
        .iter()
        .enumerate()
        .map(|(i, a)| format!("--- agent {i} stdout\n{}", a.stdout()))
        .collect()
}

/// Polls `check` every 100 ms until it holds or `limit` passes (then panics with `what` and
/// the agents' logs).
async fn until<F: FnMut() -> bool>(what: &str, limit: Duration, agents: &[&Running], mut check: F) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < limit,
            "timed out waiting for {what}\n{}",
            logs(agents)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Same as [`until`] for an async check.
async fn until_async<F, Fut>(what: &str, limit: Duration, agents: &[&Running], mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < limit,
            "timed out waiting for {what}\n{}",
            logs(agents)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long a test waits for an agent's step: generous, since moto is shared and the machine
/// busy (a first call can take seconds under load).
const STEP: Duration = Duration::from_secs(120);

fn stack(prefix: &str) -> String {
    infra_test_support::unique(&format!("node-{prefix}"))
}
