//! The deploy program: `cargo run --example production -- <command>`.
//!
//! A thin layer over [`infra_core::engine`]: parse arguments, build the stack, register the
//! providers of the chosen target, plan, print, confirm, apply, report. Plans go to stdout;
//! logs, progress and prompts to stderr.
//!
//! ```text
//! production [OPTIONS] [COMMAND]
//!   plan (default)   show what would change (--format text|json|markdown)
//!   apply            plan, confirm (or --auto-approve), apply; `apply FILE`: a plan saved by
//!                    `plan --out FILE`, exactly, without a prompt (or refused, naming what moved)
//!   destroy          plan the deletion of everything the stack owns, confirm, apply
//!   graph            the resource graph as DOT or Mermaid
//!   schema           the JSON Schema of `plan --json`
//!   watch            re-plan and converge every --interval (self-healing)
//!   force-unlock     break the stack's apply lock (after a killed run)
//! ```
//!
//! Exit statuses ([`exit_code`]): 0 success (with `--detailed-exitcode`: no changes), 1 any
//! error, bad arguments included, 2 changes pending (only with `--detailed-exitcode`).
//!
//! The parts: [`args`] (flags and their ranges), `commands` (what each command does),
//! [`progress`] (what an apply shows while it runs), [`error`] (failures and exit statuses).

pub mod args;
mod commands;
pub mod error;
pub mod progress;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use infra_core::policy::PolicyRule;
use infra_core::Stack;

pub use args::{Args, Command, GraphFormat, LogFormat, OutOfRange, PlanFormat, SchemaOf, Target};
pub use commands::{engine_for, execute, execute_with_rules};
pub use error::{exit_code, Error, Exit};

/// What the stack-building closure gets: the environment name and the target.
#[derive(Clone, Debug)]
pub struct Context {
    /// `--env`: local, staging, production, …
    pub env: String,
    /// `--target`.
    pub target: Target,
    /// `--stack`: the name the stack runs under when given (the built stack is renamed to it).
    /// Use it for names derived from the stack's name, such as IAM resource ARNs.
    pub stack_name: Option<String>,
}

/// Runs the deploy program with `std::env::args()`: `fn main() -> ExitCode { infra::cli::run(stack) }`.
pub fn run(build: impl FnOnce(&Context) -> Stack) -> ExitCode {
    run_with_rules(build, Vec::new())
}

/// Runs the deploy program with your own policy rules added to the built-in ones.
pub fn run_with_rules(
    build: impl FnOnce(&Context) -> Stack,
    rules: Vec<Arc<dyn PolicyRule>>,
) -> ExitCode {
    let mut all = crate::default_rules();
    all.extend(rules);
    match Args::try_from_argv(std::env::args_os()) {
        Ok(args) => run_inner(args, build, &all),
        // Nothing is built or contacted for bad arguments.
        Err(e) => report(&e, false),
    }
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
        Err(e) => return report(&Error::Runtime(e), args.json_output()),
    };
    let ctx = Context {
        env: args.env.clone(),
        target: args.target,
        stack_name: args.stack_name.clone(),
    };
    let mut stack = build(&ctx);
    if let Some(name) = &args.stack_name {
        stack.rename(name.clone());
    }
    EXITING.store(true, Ordering::Relaxed);
    let code = match runtime.block_on(execute_with_rules(&args, &stack, rules)) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => report(&e, args.json_output()),
    };
    release(stack);
    code
}

/// Set by the `run*` functions, the deploy program's entry points, before they execute the
/// command: the process ends when they return (a test that calls `run_with` goes on, and keeps
/// what was not freed until it ends).
static EXITING: AtomicBool = AtomicBool::new(false);

/// Frees `value`, unless this process is the deploy program, about to exit: then its memory
/// goes back with the process's, without the walk over every map and string a drop makes (at
/// 10,000 resources an eighth of a plan's instructions; `--rss` in infra-core's plan bench
/// does the same). Only one-shot paths call it (`plan`), never a loop such as `watch`.
fn release<T>(value: T) {
    if EXITING.load(Ordering::Relaxed) {
        std::mem::forget(value);
    } else {
        drop(value);
    }
}

/// Tells the user about a failure (unless the run already showed it): one `Error: ` paragraph
/// on stderr, and with `--json` a JSON document on stdout. Returns the exit status.
fn report(e: &Error, json: bool) -> ExitCode {
    if let Error::Usage(clap) = e {
        // clap's own rendering: the problem, a tip, the usage.
        let _ = clap.print();
    } else if !e.already_shown() {
        let message = e.to_string();
        if json {
            println!("{}", serde_json::json!({ "error": message }));
        }
        eprintln!("Error: {message}");
    }
    ExitCode::from(e.exit_code())
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
