//! The cluster lab's command line (issue 11; the library is the `infra-lab` crate):
//!
//! ```text
//! cargo run --example lab -- up     --stack S [--agent PATH] [--image ID]… [--aws-endpoint URL] [--agent-aws-endpoint URL]
//! cargo run --example lab -- status --stack S [--json]
//! cargo run --example lab -- kill   --stack S <instance-id>
//! cargo run --example lab -- down   --stack S        (or --stale: every lab whose owner is gone)
//! ```
//!
//! `up` runs the lab in the foreground, printing what it does, until SIGINT or SIGTERM, then tears
//! it down. `down` works from any process, also after a crash: it asks a live owner to stop, then
//! removes everything named after the stack. `.ci/lab` wraps this (and can detach `up`).
//! Root only. The stack also comes from `INFRA_LAB_STACK`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use infra_lab::{Lab, LabConfig, DEFAULT_STATE_ROOT};

#[derive(Parser)]
#[command(
    name = "lab",
    about = "The cluster lab: moto's instances as Docker nodes on this machine"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct Common {
    /// The stack whose ASGs (tag infra:stack) become nodes.
    #[arg(long, env = "INFRA_LAB_STACK")]
    stack: Option<String>,
    /// Where labs keep their state.
    #[arg(long, default_value = DEFAULT_STATE_ROOT)]
    state_root: PathBuf,
}

impl Common {
    fn stack(&self) -> Result<&str, String> {
        self.stack
            .as_deref()
            .ok_or_else(|| "no stack: pass --stack or set INFRA_LAB_STACK".to_string())
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the lab in the foreground until SIGINT/SIGTERM, then tear it down.
    Up {
        #[command(flatten)]
        common: Common,
        /// The node agent (default: target/<profile>/infra-node next to this program).
        #[arg(long)]
        agent: Option<PathBuf>,
        /// An image ID to load into every node (repeatable; default: INFRA_TEST_IMAGE and
        /// INFRA_TEST_IMAGE_V2 when set).
        #[arg(long = "image")]
        images: Vec<String>,
        /// The lab's own AWS endpoint (moto).
        #[arg(
            long,
            env = "AWS_ENDPOINT_URL",
            default_value = "http://127.0.0.1:5599"
        )]
        aws_endpoint: String,
        /// The agents' AWS endpoint (default: the lab's).
        #[arg(long)]
        agent_aws_endpoint: Option<String>,
        /// Extra agent environment, KEY=VALUE (repeatable).
        #[arg(long = "agent-env")]
        agent_env: Vec<String>,
        /// ASG role tags to boot no nodes for (repeatable), e.g. bastion.
        #[arg(long = "skip-role")]
        skip_roles: Vec<String>,
        /// The supervisor's interval in milliseconds.
        #[arg(long, default_value_t = 1000)]
        poll_ms: u64,
    },
    /// Show the nodes of a running lab.
    Status {
        #[command(flatten)]
        common: Common,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
        /// Also measure each running node's memory (RSS) and disk.
        #[arg(long)]
        usage: bool,
    },
    /// Chaos: SIGKILL everything of the node playing an instance (the lab replaces it).
    Kill {
        #[command(flatten)]
        common: Common,
        /// The instance whose node dies.
        instance: String,
    },
    /// Remove everything a lab made (idempotent; works after a crash).
    Down {
        #[command(flatten)]
        common: Common,
        /// Every lab under the state root whose owner process is gone, instead of one stack.
        #[arg(long, conflicts_with = "stack")]
        stale: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("INFRA_LAB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Up {
            common,
            agent,
            images,
            aws_endpoint,
            agent_aws_endpoint,
            agent_env,
            skip_roles,
            poll_ms,
        } => up(
            common,
            agent,
            images,
            aws_endpoint,
            agent_aws_endpoint,
            agent_env,
            skip_roles,
            poll_ms,
        ),
        Cmd::Status {
            common,
            json,
            usage,
        } => status(common, json, usage),
        Cmd::Kill { common, instance } => common.stack().and_then(|s| {
            infra_lab::kill_node(s, &common.state_root, &instance)
                .map(|n| println!("killed node n{n} ({instance}); the lab replaces it"))
                .map_err(|e| e.to_string())
        }),
        Cmd::Down { common, stale } => down(common, stale),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lab: {e}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn up(
    common: Common,
    agent: Option<PathBuf>,
    mut images: Vec<String>,
    aws_endpoint: String,
    agent_aws_endpoint: Option<String>,
    agent_env: Vec<String>,
    skip_roles: Vec<String>,
    poll_ms: u64,
) -> Result<(), String> {
    let stack = common.stack()?.to_string();
    let agent = match agent {
        Some(a) => a,
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .parent()
            .and_then(|examples| examples.parent())
            .map(|profile| profile.join("infra-node"))
            .ok_or("cannot find the infra-node binary; pass --agent")?,
    };
    if images.is_empty() {
        for var in ["INFRA_TEST_IMAGE", "INFRA_TEST_IMAGE_V2"] {
            if let Ok(id) = std::env::var(var) {
                if !id.trim().is_empty() {
                    images.push(id.trim().to_string());
                }
            }
        }
    }
    let mut cfg = LabConfig::new(stack, aws_endpoint, agent);
    if let Some(e) = agent_aws_endpoint {
        cfg.agent_aws_endpoint = e;
    }
    cfg.images = images;
    cfg.state_root = common.state_root;
    cfg.poll = Duration::from_millis(poll_ms.max(100));
    cfg.skip_roles = skip_roles;
    for kv in agent_env {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--agent-env {kv:?}: expected KEY=VALUE"))?;
        cfg.agent_env.push((k.to_string(), v.to_string()));
    }
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let lab = Lab::up(cfg).await.map_err(|e| e.to_string())?;
        println!(
            "lab {} up; DOCKER_HOST={} (a live manager); Ctrl-C or `lab down` ends it",
            lab.stack(),
            lab.manager_host()
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| e.to_string())?;
        let mut shown = 0;
        // until a signal (the lab's own supervisor is bounded by its lifetime)
        loop {
            for ev in lab.events().await.iter().skip(shown) {
                println!(
                    "{:8.1}s {:<20} {:<14} {}",
                    ev.at, ev.instance, ev.what, ev.detail
                );
                shown += 1;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            }
        }
        println!("tearing the lab down");
        let report = lab.down().await.map_err(|e| e.to_string())?;
        println!("down: {report}");
        Ok(())
    })
}

fn status(common: Common, json: bool, usage: bool) -> Result<(), String> {
    let stack = common.stack()?;
    let s = infra_lab::read_status(stack, &common.state_root).map_err(|e| e.to_string())?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&s).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    println!(
        "lab {} (owner pid {}{}), up {:.0}s, DOCKER_HOST={} → {}",
        s.stack,
        s.owner_pid,
        if s.owner_alive {
            ""
        } else {
            ", DEAD: run `lab down`"
        },
        s.uptime_secs,
        s.manager_host,
        s.manager_target.as_deref().unwrap_or("(no manager yet)")
    );
    println!(
        "{:<4} {:<20} {:<14} {:<11} {:<15} {:<9} {:<6} docker",
        "n", "instance", "role", "az", "ip", "state", "agent"
    );
    for v in &s.nodes {
        println!(
            "{:<4} {:<20} {:<14} {:<11} {:<15} {:<9} {:<6} {}{}",
            format!("n{}", v.n),
            v.instance_id,
            v.role,
            v.az,
            v.ip,
            format!("{:?}", v.state).to_lowercase(),
            v.agent_exit
                .map(|c| format!("exit {c}"))
                .unwrap_or_else(|| "-".into()),
            v.docker_host,
            v.error
                .as_deref()
                .map(|e| format!("  ({e})"))
                .unwrap_or_default()
        );
        if usage && v.state != infra_lab::NodeState::Stopped {
            let u =
                infra_lab::node_usage(stack, &common.state_root, v.n).map_err(|e| e.to_string())?;
            println!(
                "     dockerd+containerd {} MiB, all of the node's processes {} MiB, disk {} MiB",
                u.daemons_rss_kib / 1024,
                u.total_rss_kib / 1024,
                u.disk_bytes / (1024 * 1024)
            );
        }
    }
    Ok(())
}

fn down(common: Common, stale: bool) -> Result<(), String> {
    if stale {
        let done = infra_lab::teardown_stale(&common.state_root);
        if done.is_empty() {
            println!("no stale lab under {}", common.state_root.display());
        }
        let mut failed = false;
        for (stack, r) in done {
            match r {
                Ok(report) => println!("{stack}: {report}"),
                Err(e) => {
                    failed = true;
                    println!("{stack}: {e}")
                }
            }
        }
        return if failed {
            Err("some stale labs were not removed".into())
        } else {
            Ok(())
        };
    }
    let stack = common.stack()?;
    let report = infra_lab::teardown(stack, &common.state_root).map_err(|e| e.to_string())?;
    println!("{stack}: {report}");
    Ok(())
}
