//! The node agent of infra's Swarm clusters (issue 11; the interface is CONTRACT-11.md):
//! `infra-node run`, started on every cluster instance by the launch template's user data.
//!
//! On each instance it
//! 1. reads its identity from instance metadata (IMDSv2: instance ID, AZ, region, private IP);
//! 2. finds its Auto Scaling group, whose tags give the stack (`infra:stack`) and the role
//!    (`role` = `swarm-manager` / `swarm-worker`; anything else: nothing to do, exit 0);
//! 3. skips to 6 if the engine already is in a swarm (restart, reboot);
//! 4. as a manager, runs the **init race**: `PutParameter /infra/<stack>/swarm/init` without
//!    overwrite; the one call that creates it runs `swarm init` and writes both join tokens as
//!    SecureString; the others wait for the tokens and join. A stale claim (holder not running,
//!    no tokens after a grace period) is cleared by exactly one agent (the one that creates
//!    `init-reset/<holder>`) and the race is run again;
//! 5. joins through the private addresses of the stack's in-service managers (Auto Scaling and
//!    EC2 APIs), trying each, until the join timeout;
//! 6. writes its record `nodes/<instance-id>` (JSON, [`plan::NodeRecord`]); a manager labels
//!    its own node `az`, `instance`, `role`;
//! 7. loops: when IMDS says `autoscaling/target-lifecycle-state` = `Terminated` it drains,
//!    demotes itself (a manager, unless the last), leaves, deletes its record and completes the
//!    lifecycle action; the raft leader also labels and drains nodes from their records and
//!    removes nodes that are down and whose instance is gone ([`plan::leader_actions`]).
//!
//! Every AWS and Docker call is retried with the project's backoff ([`infra_core::retry`]) and
//! every wait is bounded. Logs: one JSON line per step on stdout ([`log`]). Exit codes:
//! [`error::FailureKind::exit_code`]. Join tokens are [`error::Secret`]s: never logged.
//!
//! Settings (flag / environment, defaults):
//! `--imds-endpoint` / `INFRA_NODE_IMDS_ENDPOINT` (`http://169.254.169.254`),
//! `--join-timeout` / `INFRA_NODE_JOIN_TIMEOUT` (600 s), `--poll` / `INFRA_NODE_POLL` (5 s),
//! `--drain-timeout` / `INFRA_NODE_DRAIN_TIMEOUT` (240 s), `--docker-host` / `DOCKER_HOST`
//! (the local socket), `--log-level` / `INFRA_NODE_LOG` (`info`); AWS from the standard
//! environment, the region from `AWS_REGION` or else IMDS.

pub mod agent;
pub mod aws;
pub mod docker;
pub mod error;
pub mod imds;
pub mod log;
pub mod plan;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use agent::{run, Outcome, Settings};
pub use error::{Failure, FailureKind};

/// `infra-node`: the command line.
#[derive(Debug, Parser)]
#[command(
    name = "infra-node",
    version,
    about = "The node agent of infra's Swarm clusters: initialises the swarm once, joins, labels, drains on termination, removes dead nodes."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Join this instance to its stack's swarm and serve until the instance terminates.
    Run(RunArgs),
}

/// `infra-node run`'s settings.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The instance metadata service (IMDSv2).
    #[arg(
        long,
        env = "INFRA_NODE_IMDS_ENDPOINT",
        default_value = "http://169.254.169.254"
    )]
    pub imds_endpoint: String,
    /// Seconds joining may take in all (identity gets a quarter of it).
    #[arg(long, env = "INFRA_NODE_JOIN_TIMEOUT", default_value = "600", value_parser = parse_secs)]
    pub join_timeout: Duration,
    /// Seconds between checks.
    #[arg(long, env = "INFRA_NODE_POLL", default_value = "5", value_parser = parse_secs)]
    pub poll: Duration,
    /// Seconds the node waits for its tasks to move away when it terminates (at most 3/4 of
    /// the lifecycle hook's heartbeat timeout).
    #[arg(long, env = "INFRA_NODE_DRAIN_TIMEOUT", default_value = "240", value_parser = parse_secs)]
    pub drain_timeout: Duration,
    /// The Docker engine.
    #[arg(
        long,
        env = "DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
    pub docker_host: String,
    /// Log level of the agent's own lines (error, warn, info, debug, trace); other crates log
    /// at warn.
    #[arg(long, env = "INFRA_NODE_LOG", default_value = "info", value_parser = log::parse_level)]
    pub log_level: tracing::Level,
}

/// Seconds, whole or decimal, more than 0.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs.is_finite() && secs < 1e9) {
        return Err(format!("{s:?}: must be more than 0 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl From<&RunArgs> for Settings {
    fn from(a: &RunArgs) -> Self {
        Settings {
            imds_endpoint: a.imds_endpoint.trim_end_matches('/').to_string(),
            join_timeout: a.join_timeout,
            poll: a.poll,
            drain_timeout: a.drain_timeout,
            docker_host: if a.docker_host.trim().is_empty() {
                Settings::default().docker_host
            } else {
                a.docker_host.clone()
            },
        }
    }
}

/// The program: parses the command line, runs the agent, and turns its end into an exit code:
/// 0 when it left the swarm on termination, was not a swarm node, or was stopped by SIGTERM /
/// SIGINT; a [`FailureKind`]'s code otherwise, after one `error` line saying why.
pub fn run_cli() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            return if usage {
                ExitCode::from(FailureKind::Usage.exit_code())
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let Command::Run(args) = &cli.command;
    log::init(args.log_level);
    let settings = Settings::from(args);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(
                step = "start",
                exit_code = 1,
                "cannot start the async runtime: {e}"
            );
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            r = run(settings) => Some(r),
            _ = stop_signal() => None,
        }
    });
    let code = match result {
        None => {
            tracing::info!(step = "exit", "stopped by a signal");
            0
        }
        Some(Ok(_)) => 0,
        Some(Err(f)) => {
            let code = f.exit_code();
            tracing::error!(step = f.step, exit_code = code, "{}", f.message);
            code
        }
    };
    // Don't wait for blocked SDK or Docker calls still in flight.
    runtime.shutdown_timeout(Duration::from_millis(200));
    ExitCode::from(code)
}

/// SIGTERM or SIGINT.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_may_be_decimal_but_must_be_positive() {
        assert_eq!(parse_secs("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_secs("0.5").unwrap(), Duration::from_millis(500));
        for bad in ["0", "-1", "soon", "NaN", "inf"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_command_line_takes_the_contracts_settings() {
        let cli = Cli::try_parse_from([
            "infra-node",
            "run",
            "--imds-endpoint",
            "http://127.0.0.1:41234/",
            "--join-timeout",
            "60",
            "--poll",
            "1",
        ])
        .unwrap();
        let Command::Run(args) = &cli.command;
        let s = Settings::from(args);
        assert_eq!(s.imds_endpoint, "http://127.0.0.1:41234");
        assert_eq!(s.join_timeout, Duration::from_secs(60));
        assert_eq!(s.poll, Duration::from_secs(1));
        assert!(Cli::try_parse_from(["infra-node", "run", "--poll", "0"]).is_err());
        assert!(Cli::try_parse_from(["infra-node"]).is_err());
    }
}
