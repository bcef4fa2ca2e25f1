//! The deploy program: `cargo run --example production -- <command>`.
//!
//! A thin layer over [`infra_core::engine`]: parse arguments, build the stack, register the
//! providers of the chosen target, plan, print, confirm, apply, report. Plans go to stdout;
//! logs, progress and prompts to stderr.
//!
//! ```text
//! production [OPTIONS] [COMMAND]
//!   plan (default)   show what would change
//!   apply            plan, confirm (or --auto-approve), apply
//!   destroy          plan the deletion of everything the stack owns, confirm, apply
//!   graph            the resource graph as DOT or Mermaid
//!   schema           the JSON Schema of `plan --json`
//!   watch            re-plan and converge every --interval (self-healing)
//!   force-unlock     break the stack's apply lock (after a killed run)
//! ```

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use infra_core::engine::{Engine, Error as EngineError, Planned};
use infra_core::plan::PlanOptions;
use infra_core::policy::PolicyRule;
use infra_core::provider::{Provider, ProviderError};
use infra_core::reconcile::{ApplyObserver, ApplyOptions, AuditEvent, OpKind, OpStatus};
use infra_core::render;
use infra_core::Stack;

/// Where the stack is deployed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// The in-process sandbox, persisted under `--sandbox-dir` (the default).
    Sandbox,
    /// Real endpoints: AWS through aws-config's default chain (honours `AWS_ENDPOINT_URL`),
    /// Docker from `DOCKER_HOST` or the local socket.
    Live,
}

/// Graph output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Graphviz DOT.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

/// Log output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The deploy program's arguments.
#[derive(Clone, Debug, Parser)]
#[command(
    version,
    about = "Plan and converge the stack's AWS and Docker Swarm infrastructure."
)]
pub struct Args {
    /// What to do (default: plan).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Where to deploy.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "INFRA_TARGET",
        default_value = "sandbox"
    )]
    pub target: Target,
    /// The environment whose parameters the stack is built with (local, staging, production).
    #[arg(long, global = true, env = "INFRA_ENV", default_value = "local")]
    pub env: String,
    /// Deploy under another stack name than the program's (a second copy of an environment);
    /// objects are owned, and named, by stack.
    #[arg(long = "stack", global = true, env = "INFRA_STACK")]
    pub stack_name: Option<String>,
    /// Only these providers (aws, swarm); repeat or comma-separate. Real deployments go in
    /// phases: the Swarm API exists only once the managers do.
    #[arg(long, global = true, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Exit 0 when there are no changes, 2 when changes are pending, 1 on error (for CI).
    #[arg(long, global = true)]
    pub detailed_exitcode: bool,
    /// Where the sandbox keeps its state.
    #[arg(
        long,
        global = true,
        env = "INFRA_SANDBOX_DIR",
        default_value = ".infra/sandbox"
    )]
    pub sandbox_dir: PathBuf,
    /// Provider calls in flight at once during apply.
    #[arg(long, global = true, env = "INFRA_CONCURRENCY", default_value_t = 10)]
    pub concurrency: usize,
    /// Seconds to wait for another run's lock on the stack before failing.
    #[arg(long, global = true, env = "INFRA_LOCK_TIMEOUT", default_value_t = 0)]
    pub lock_timeout: u64,
    /// Append one JSON audit event per change to this file.
    #[arg(
        long,
        global = true,
        env = "INFRA_AUDIT_LOG",
        default_value = ".infra/audit.jsonl"
    )]
    pub audit_log: PathBuf,
    /// With `--target live`, how long `apply` waits for the Docker endpoint (the Swarm managers
    /// the AWS phase just created) before giving up, in seconds.
    #[arg(long, global = true, env = "INFRA_SWARM_WAIT", default_value_t = 600)]
    pub swarm_wait: u64,
    /// Set for the phases of a live apply: wait for endpoints (see `--swarm-wait`).
    #[arg(skip)]
    pub wait_for_endpoints: bool,
    /// Log format on stderr (level from `INFRA_LOG` or `RUST_LOG`, default `warn`).
    #[arg(
        long,
        global = true,
        env = "INFRA_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

/// Subcommands.
#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Show what would change (the default).
    Plan {
        /// Plan the destruction of everything the stack owns.
        #[arg(long)]
        destroy: bool,
    },
    /// Plan, confirm, apply.
    Apply {
        /// Don't ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
        /// Allow deleting or replacing this protected resource (repeatable).
        #[arg(long)]
        allow_destroy: Vec<String>,
    },
    /// Delete everything the stack owns.
    Destroy {
        /// Don't ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
        /// Allow deleting this protected resource (repeatable).
        #[arg(long)]
        allow_destroy: Vec<String>,
        /// Allow deleting every protected resource.
        #[arg(long)]
        allow_destroy_all: bool,
    },
    /// Print the resource graph.
    Graph {
        /// Output format.
        #[arg(long, value_enum, default_value = "dot")]
        format: GraphFormat,
    },
    /// Print the JSON Schema of `plan --json`.
    Schema,
    /// Re-plan and converge at an interval, repairing drift (self-healing).
    Watch {
        /// Seconds between runs.
        #[arg(long, default_value_t = 30)]
        interval: u64,
        /// Stop after this many runs (default: never).
        #[arg(long)]
        iterations: Option<u64>,
    },
    /// Break the stack's apply lock, whoever holds it (after a killed run).
    ForceUnlock,
}

/// What the stack-building closure gets: the environment name and the target.
#[derive(Clone, Debug)]
pub struct Context {
    /// `--env`: local, staging, production, …
    pub env: String,
    /// `--target`.
    pub target: Target,
}

/// Runs the deploy program with `std::env::args()`: `fn main() -> ExitCode { infra::cli::run(stack) }`.
pub fn run(build: impl FnOnce(&Context) -> Stack) -> ExitCode {
    run_with(Args::parse(), build)
}

/// Runs the deploy program with your own policy rules added to the built-in ones.
pub fn run_with_rules(
    build: impl FnOnce(&Context) -> Stack,
    rules: Vec<Arc<dyn PolicyRule>>,
) -> ExitCode {
    let mut all = crate::default_rules();
    all.extend(rules);
    run_inner(Args::parse(), build, &all)
}

/// Runs the deploy program with parsed arguments.
pub fn run_with(args: Args, build: impl FnOnce(&Context) -> Stack) -> ExitCode {
    run_inner(args, build, &crate::default_rules())
}

fn run_inner(
    args: Args,
    build: impl FnOnce(&Context) -> Stack,
    rules: &[Arc<dyn PolicyRule>],
) -> ExitCode {
    init_logging(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: could not start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let ctx = Context {
        env: args.env.clone(),
        target: args.target,
    };
    let mut stack = build(&ctx);
    if let Some(name) = &args.stack_name {
        stack.rename(name.clone());
    }
    match runtime.block_on(execute_with_rules(&args, &stack, rules)) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            if args.json {
                println!("{}", serde_json::json!({ "error": message }));
            }
            eprintln!("Error: {message}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::filter::FilterExt;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{fmt, EnvFilter, Layer};
    let wanted = EnvFilter::try_from_env("INFRA_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("warn"));
    let filter = wanted.and(never_log_bodies());
    let layer = fmt::layer().with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => tracing_subscriber::registry()
            .with(layer.with_filter(filter))
            .try_init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(layer.json().with_filter(filter))
            .try_init(),
    };
}

/// A cap on the libraries that log request and response bodies, whatever `INFRA_LOG` asks for:
/// bodies carry secrets (a Swarm secret's data and a launch template's user data, base64).
/// bollard logs every JSON payload it sends at debug (a secret's `Data` included) and every body
/// at trace; the AWS SDK's orchestrator logs whole requests and responses at trace. Their other
/// debug output stays available.
fn never_log_bodies() -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("bollard", LevelFilter::INFO)
        .with_target("aws_smithy_runtime", LevelFilter::DEBUG)
}

/// Builds the engine for a target: the sandbox serves `aws` and `swarm` kinds from files; live
/// connects to the real endpoints of the providers in scope.
pub async fn engine_for(args: &Args, rules: &[Arc<dyn PolicyRule>]) -> Result<Engine, String> {
    let mut engine = Engine::new()
        .with_options(ApplyOptions {
            concurrency: args.concurrency.max(1),
            ..ApplyOptions::default()
        })
        .with_lock_timeout(Duration::from_secs(args.lock_timeout))
        .with_rules(rules.iter().cloned());
    let wanted = |p: &str| args.only.is_empty() || args.only.iter().any(|o| o == p);
    for name in ["aws", "swarm"] {
        if !wanted(name) {
            continue;
        }
        let provider: Arc<dyn Provider> = match args.target {
            Target::Sandbox => Arc::new(crate::sandbox(&args.sandbox_dir, name).map_err(|e| {
                format!(
                    "cannot open the sandbox at {}: {e}",
                    args.sandbox_dir.display()
                )
            })?),
            Target::Live => {
                let wait = if args.wait_for_endpoints {
                    Duration::from_secs(args.swarm_wait)
                } else {
                    Duration::ZERO
                };
                crate::live::provider(name, wait).await?
            }
        };
        engine = engine.with_provider_arc(provider);
    }
    Ok(engine)
}

/// Runs one command on a built stack: `Ok(exit code)` or `Err(message)` (exit code 1). Plans
/// and reports go to stdout.
pub async fn execute(args: &Args, stack: &Stack) -> Result<u8, String> {
    execute_with_rules(args, stack, &crate::default_rules()).await
}

/// [`execute`] with a given set of policy rules (the built-in ones plus your own, say).
pub async fn execute_with_rules(
    args: &Args,
    stack: &Stack,
    rules: &[Arc<dyn PolicyRule>],
) -> Result<u8, String> {
    if args.target == Target::Live && args.only.is_empty() {
        if let Some(code) = phases(args, stack, rules).await? {
            return Ok(code);
        }
    }
    execute_one(args, stack, rules).await
}

/// The providers in deployment order: the Swarm API exists only once the AWS phase has made the
/// managers, so a live run goes AWS first (and Swarm first when destroying).
const PHASES: [&str; 2] = ["aws", "swarm"];

/// Runs plan/apply/destroy on a live target as phases, one provider after the other. `None` for
/// commands that don't go in phases.
async fn phases(
    args: &Args,
    stack: &Stack,
    rules: &[Arc<dyn PolicyRule>],
) -> Result<Option<u8>, String> {
    let (order, applying): (Vec<&str>, bool) = match &args.command {
        None | Some(Command::Plan { destroy: false }) => (PHASES.to_vec(), false),
        Some(Command::Plan { destroy: true }) => (PHASES.iter().rev().copied().collect(), false),
        Some(Command::Apply { .. }) => (PHASES.to_vec(), true),
        Some(Command::Destroy { .. }) => (PHASES.iter().rev().copied().collect(), true),
        _ => return Ok(None),
    };
    // Validate the whole stack once, before any endpoint is contacted.
    validate(args, stack).await?;
    let mut worst = 0u8;
    for (i, phase) in order.iter().enumerate() {
        eprintln!("== Phase {}/{}: {phase} ==", i + 1, order.len());
        let mut phase_args = args.clone();
        phase_args.only = vec![phase.to_string()];
        phase_args.wait_for_endpoints = applying;
        if !applying && *phase == "swarm" {
            // A plan doesn't wait: before the managers exist there is no Swarm API to ask.
            if let Err(e) = crate::live::provider(phase, Duration::ZERO).await {
                eprintln!("The {phase} phase can't be planned yet ({e}); `apply` runs it once the previous phase has made its endpoint.");
                worst = worst.max(if args.detailed_exitcode { 2 } else { 0 });
                continue;
            }
        }
        let code = execute_one(&phase_args, stack, rules).await?;
        if applying && code != 0 {
            if i + 1 < order.len() {
                eprintln!("The {phase} phase did not complete; the later phases were not run.");
            }
            return Ok(Some(code));
        }
        worst = worst.max(code);
    }
    Ok(Some(worst))
}

async fn execute_one(
    args: &Args,
    stack: &Stack,
    rules: &[Arc<dyn PolicyRule>],
) -> Result<u8, String> {
    match &args.command {
        None => plan_command(args, stack, false, rules).await,
        Some(Command::Plan { destroy }) => plan_command(args, stack, *destroy, rules).await,
        Some(Command::Apply {
            auto_approve,
            allow_destroy,
        }) => {
            let opts = plan_options(args, false, allow_destroy, false);
            apply_command(args, stack, opts, *auto_approve, rules).await
        }
        Some(Command::Destroy {
            auto_approve,
            allow_destroy,
            allow_destroy_all,
        }) => {
            let opts = plan_options(args, true, allow_destroy, *allow_destroy_all);
            apply_command(args, stack, opts, *auto_approve, rules).await
        }
        Some(Command::Graph { format }) => {
            let graph = infra_core::graph::Graph::build(stack).map_err(|e| e.to_string())?;
            print!(
                "{}",
                match format {
                    GraphFormat::Dot => render::graph_dot(&graph),
                    GraphFormat::Mermaid => render::graph_mermaid(&graph),
                }
            );
            Ok(0)
        }
        Some(Command::Schema) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&render::plan_schema()).unwrap_or_default()
            );
            Ok(0)
        }
        Some(Command::Watch {
            interval,
            iterations,
        }) => watch_command(args, stack, *interval, *iterations, rules).await,
        Some(Command::ForceUnlock) => {
            let engine = engine_for(args, rules).await?;
            let only: BTreeSet<String> = args.only.iter().cloned().collect();
            let broken = engine
                .force_unlock(stack.name(), &only)
                .await
                .map_err(|e| e.to_string())?;
            if broken.is_empty() {
                eprintln!("Stack \"{}\" was not locked.", stack.name());
            }
            for (provider, info) in broken {
                eprintln!(
                    "Broke the lock of stack \"{}\" in provider `{provider}`, held by {info}.",
                    stack.name()
                );
            }
            Ok(0)
        }
    }
}

fn plan_options(args: &Args, destroy: bool, allow: &[String], allow_all: bool) -> PlanOptions {
    PlanOptions {
        destroy,
        only: args.only.iter().cloned().collect(),
        allow_destroy: allow.iter().cloned().collect(),
        allow_destroy_all: allow_all,
    }
}

fn engine_error(e: EngineError) -> String {
    if let EngineError::Read { provider, error } = &e {
        if let Some(advice) = crate::live::environment_advice(provider, error) {
            return advice;
        }
    }
    e.to_string().trim_end().to_string()
}

/// Validates the stack before anything is contacted: the graph's checks and, on a live target,
/// the AWS provider's preflight against its configuration (a subnet in `us-east-1a` with the
/// region `eu-west-1`), which makes no API call. Every problem is reported at once; with `--json`
/// they are also printed as a JSON document.
async fn validate(args: &Args, stack: &Stack) -> Result<(), String> {
    let mut problems = match infra_core::graph::Graph::build(stack) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems,
    };
    let aws_in_scope = args.only.is_empty() || args.only.iter().any(|o| o == "aws");
    if args.target == Target::Live && aws_in_scope {
        // Building the AWS provider only reads configuration (environment, profile files):
        // credentials are resolved at the first request. A configuration error is reported by
        // the run itself once the stack is valid.
        if let Ok(aws) = crate::live::provider("aws", Duration::ZERO).await {
            problems.extend(aws.preflight(stack));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    problems.sort();
    problems.dedup();
    let e = infra_core::validate::ValidationErrors {
        stack: stack.name().to_string(),
        problems,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "error": "validation", "problems": e.problems })
            )
            .unwrap_or_default()
        );
    }
    Err(e.to_string().trim_end().to_string())
}

async fn make_plan(
    args: &Args,
    stack: &Stack,
    opts: &PlanOptions,
    rules: &[Arc<dyn PolicyRule>],
) -> Result<(Engine, Planned), String> {
    // Validate first: a broken stack is reported before any endpoint is contacted.
    validate(args, stack).await?;
    let engine = engine_for(args, rules).await?;
    let planned = engine.plan(stack, opts).await.map_err(engine_error)?;
    Ok((engine, planned))
}

async fn plan_command(
    args: &Args,
    stack: &Stack,
    destroy: bool,
    rules: &[Arc<dyn PolicyRule>],
) -> Result<u8, String> {
    let opts = plan_options(args, destroy, &[], false);
    let (_, planned) = make_plan(args, stack, &opts, rules).await?;
    print_plan(args, &planned);
    if !planned.plan.blockers().is_empty() {
        return Ok(1);
    }
    Ok(if args.detailed_exitcode && !planned.plan.is_empty() {
        2
    } else {
        0
    })
}

fn print_plan(args: &Args, planned: &Planned) {
    if args.json {
        print!("{}", render::plan_json(&planned.plan));
    } else {
        print!("{}", render::plan_text(&planned.plan));
    }
}

async fn apply_command(
    args: &Args,
    stack: &Stack,
    opts: PlanOptions,
    auto_approve: bool,
    rules: &[Arc<dyn PolicyRule>],
) -> Result<u8, String> {
    let (engine, planned) = make_plan(args, stack, &opts, rules).await?;
    if !args.json {
        print_plan(args, &planned);
    }
    if !planned.plan.blockers().is_empty() {
        return Err("the plan has errors (see above); nothing was changed".into());
    }
    if planned.plan.is_empty() {
        if args.json {
            print!("{}", render::plan_json(&planned.plan));
        }
        return Ok(0);
    }
    if !auto_approve && !confirm(stack.name(), opts.destroy)? {
        eprintln!("Apply cancelled; nothing was changed.");
        return Ok(1);
    }
    let observer = CliObserver::new(&args.audit_log)?;
    let report = engine
        .apply(&planned, &observer)
        .await
        .map_err(engine_error)?;
    observer.done();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "plan": planned.plan, "report": report })
            )
            .unwrap_or_default()
        );
    } else {
        print!("\n{}", render::report_text(&report));
        if let Some(calls) = (!report.api_calls.is_empty()).then(|| {
            report
                .api_calls
                .iter()
                .map(|(p, n)| format!("{p}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }) {
            eprintln!(
                "API calls during apply: {calls}; took {:.1}s.",
                report.duration_ms as f64 / 1000.0
            );
        }
    }
    Ok(if report.is_success() { 0 } else { 1 })
}

fn confirm(stack: &str, destroy: bool) -> Result<bool, String> {
    let what = if destroy {
        "destroy every object the stack owns"
    } else {
        "perform these actions"
    };
    eprint!("\nDo you want to {what} on stack \"{stack}\"?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("could not read the confirmation: {e}"))?;
    Ok(line.trim() == "yes")
}

async fn watch_command(
    args: &Args,
    stack: &Stack,
    interval: u64,
    iterations: Option<u64>,
    rules: &[Arc<dyn PolicyRule>],
) -> Result<u8, String> {
    let opts = plan_options(args, false, &[], false);
    let mut n = 0u64;
    loop {
        n += 1;
        match make_plan(args, stack, &opts, rules).await {
            Ok((engine, planned)) if planned.plan.is_empty() => {
                tracing::info!(run = n, "watch: no drift");
                eprintln!("watch #{n}: no changes");
                drop(engine);
            }
            Ok((engine, planned)) => {
                print_plan(args, &planned);
                if planned.plan.blockers().is_empty() {
                    let observer = CliObserver::new(&args.audit_log)?;
                    match engine.apply(&planned, &observer).await {
                        Ok(report) => {
                            observer.done();
                            eprint!("watch #{n}: {}", render::report_text(&report));
                        }
                        Err(e) => eprintln!("watch #{n}: apply failed: {}", engine_error(e)),
                    }
                } else {
                    eprintln!("watch #{n}: the plan has errors; not applying");
                }
            }
            Err(e) => eprintln!("watch #{n}: {e}"),
        }
        if iterations.is_some_and(|max| n >= max) {
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_secs(interval)).await;
    }
}

/// Progress on a terminal (quiet otherwise) and the audit log.
struct CliObserver {
    bar: ProgressBar,
    audit: Mutex<Option<std::fs::File>>,
}

impl CliObserver {
    fn new(audit_path: &std::path::Path) -> Result<Self, String> {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        if let Some(dir) = audit_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let audit = OpenOptions::new()
            .create(true)
            .append(true)
            .open(audit_path)
            .map_err(|e| format!("cannot open the audit log {}: {e}", audit_path.display()))?;
        Ok(CliObserver {
            bar,
            audit: Mutex::new(Some(audit)),
        })
    }
    fn done(&self) {
        self.bar.finish_and_clear();
    }
}

impl ApplyObserver for CliObserver {
    fn started(&self, total: usize) {
        self.bar.set_length(total as u64);
        self.bar.enable_steady_tick(Duration::from_millis(120));
    }
    fn op_started(&self, address: &str, op: OpKind) {
        self.bar.set_message(format!("{op} {address}"));
    }
    fn retrying(
        &self,
        address: &str,
        op: OpKind,
        attempt: u32,
        error: &ProviderError,
        delay: Duration,
    ) {
        self.bar.println(format!(
            "  ↻ {address}: {op} attempt {attempt} failed ({error}); retrying in {:.1}s",
            delay.as_secs_f64()
        ));
    }
    fn op_finished(&self, event: &AuditEvent) {
        let o = &event.outcome;
        let line = match &o.status {
            OpStatus::Succeeded => format!(
                "  ✓ {}: {}d{} [{:.1}s]",
                o.address,
                o.op,
                o.id.as_deref()
                    .map(|i| format!(" ({i})"))
                    .unwrap_or_default(),
                o.duration_ms as f64 / 1000.0
            ),
            OpStatus::NothingToDo => format!("  ✓ {}: nothing to {}", o.address, o.op),
            OpStatus::Failed { error } => format!("  ✗ {}: {} failed: {error}", o.address, o.op),
            OpStatus::Skipped { because } => format!("  ↷ {}: skipped ({because})", o.address),
        };
        self.bar.println(line);
        self.bar.inc(1);
        if let Some(f) = self
            .audit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            let _ = writeln!(f, "{}", serde_json::to_string(event).unwrap_or_default());
        }
    }
}
