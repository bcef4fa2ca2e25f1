//! The deploy program's arguments, and the ranges its numeric flags accept.
//!
//! Every numeric flag is checked by a bounded value parser while clap parses, so a bad value
//! is one line naming the flag (or its environment variable) and the allowed range, before
//! anything is built or contacted: never clap's exit status 2 (which `--detailed-exitcode`
//! reserves for pending changes), never a panic further down (`Instant + Duration` overflows
//! on huge seconds, tokio's semaphore refuses more than 2^61 permits).

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::{Parser, Subcommand, ValueEnum};

use super::Error;

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

/// What `schema` describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SchemaOf {
    /// `plan --json`'s output.
    Plan,
    /// The file `plan --out` writes.
    SavedPlan,
    /// One line of the audit file (`--audit-file`).
    Audit,
}

/// Plan output formats (`plan --format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum PlanFormat {
    /// The terraform-like text plan.
    Text,
    /// The plan as JSON (what `--json` gives); its schema is `schema`'s output.
    Json,
    /// GitHub-flavoured Markdown for a pull-request comment, within GitHub's comment size.
    Markdown,
}

/// Log output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The providers this program registers, in deployment order: the Swarm API exists only once
/// the AWS phase has made the managers.
pub(crate) const PROVIDERS: [&str; 2] = ["aws", "swarm"];

/// `--concurrency`: at least one call must be in flight or nothing ever runs; far above what
/// AWS's request throttling or a Docker manager serve usefully, 1000 is generous.
const CONCURRENCY: Bounded = Bounded::new(1, 1000, "a whole number");
/// `--lock-timeout` and `--swarm-wait`: 0 means "don't wait"; no CI job should block longer
/// than a day, and a day keeps deadlines far from `Instant` overflow.
const WAIT_SECONDS: Bounded = Bounded::new(0, 86_400, "a whole number of seconds");
/// `--interval`: 0 would re-plan in a busy loop against the providers' APIs; more than a day
/// between runs is a schedule (cron), not watching.
const INTERVAL_SECONDS: Bounded = Bounded::new(1, 86_400, "a whole number of seconds");
/// `watch --give-up-after`: 0 never gives up; past 10,000 failed runs in a row nobody is
/// watching the watcher.
const GIVE_UP_AFTER: Bounded = Bounded::new(0, 10_000, "a whole number of runs");

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
    #[arg(long, global = true, value_delimiter = ',', value_parser = PROVIDERS)]
    pub only: Vec<String>,
    /// Machine-readable output on stdout (for `plan`, the same as `--format json`).
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
    /// Provider calls in flight at once during apply (1 to 1000).
    #[arg(
        long,
        global = true,
        env = "INFRA_CONCURRENCY",
        default_value_t = 10,
        allow_negative_numbers = true,
        value_parser = CONCURRENCY.map(|n| n as usize)
    )]
    pub concurrency: usize,
    /// Seconds to wait for another run's lock on the stack before failing (0 to 86400; 0: fail
    /// at once).
    #[arg(
        long,
        global = true,
        env = "INFRA_LOCK_TIMEOUT",
        default_value_t = 0,
        allow_negative_numbers = true,
        value_parser = WAIT_SECONDS
    )]
    pub lock_timeout: u64,
    /// Append the audit trail to this file, one JSON line per event: every change (who, the
    /// plan's digest, the field diff with secrets as digests, the result and the duration),
    /// applies with suppressed policy findings, broken locks, refused saved plans. Its JSON
    /// Schema: `schema --of audit`.
    #[arg(
        long = "audit-file",
        visible_alias = "audit-log",
        global = true,
        env = "INFRA_AUDIT_LOG",
        default_value = ".infra/audit.jsonl"
    )]
    pub audit_file: PathBuf,
    /// With `--target live`, how long `apply` waits for the Docker endpoint (the Swarm managers
    /// the AWS phase just created) before giving up, in seconds (0 to 86400).
    #[arg(
        long,
        global = true,
        env = "INFRA_SWARM_WAIT",
        default_value_t = 600,
        allow_negative_numbers = true,
        value_parser = WAIT_SECONDS
    )]
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
        /// Output format (default: text, or json with `--json`). `markdown` is for a
        /// pull-request comment: `plan --format markdown > plan.md`.
        #[arg(long, value_enum)]
        format: Option<PlanFormat>,
        /// Also save the plan to this file, with what it was computed from, for `apply FILE`
        /// (which applies exactly it, or refuses naming what changed). Not written when the
        /// plan has errors.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Let the plan delete or replace this protected resource (repeatable; for a plan
        /// saved with `--out`, as `apply --allow-destroy` does).
        #[arg(long)]
        allow_destroy: Vec<String>,
        /// With `--destroy`: let the plan delete every protected resource.
        #[arg(long, requires = "destroy")]
        allow_destroy_all: bool,
        /// Show only the drift: the objects changed outside infra since their last apply, and
        /// which fields. Exits 2 when there is drift, 0 when there is none (a scheduled drift
        /// check in CI); the code's own pending changes are not shown and don't count.
        #[arg(long, conflicts_with_all = ["destroy", "out"])]
        drift_only: bool,
    },
    /// Plan, confirm, apply; or, given a FILE saved by `plan --out`, apply exactly that plan
    /// without a prompt (it was reviewed), refusing when anything it was made from changed.
    Apply {
        /// Don't ask for confirmation (a saved plan is never asked about).
        #[arg(long)]
        auto_approve: bool,
        /// Allow deleting or replacing this protected resource (repeatable).
        #[arg(long, conflicts_with = "plan_file")]
        allow_destroy: Vec<String>,
        /// A plan saved by `plan --out FILE`.
        #[arg(value_name = "FILE")]
        plan_file: Option<PathBuf>,
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
    /// Print a JSON Schema: of `plan --json` (default), of a saved plan file, or of a line of
    /// the audit file.
    Schema {
        /// Whose schema.
        #[arg(long = "of", value_enum, default_value = "plan")]
        of: SchemaOf,
        /// The schema of the file `plan --out` writes (the same as `--of saved-plan`).
        #[arg(long)]
        saved_plan: bool,
    },
    /// Re-plan and converge at an interval, repairing drift (self-healing).
    Watch {
        /// Seconds between runs (1 to 86400).
        #[arg(
            long,
            default_value_t = 30,
            allow_negative_numbers = true,
            value_parser = INTERVAL_SECONDS
        )]
        interval: u64,
        /// Stop after this many runs (default: never). Exits 1 if the last run failed.
        #[arg(long)]
        iterations: Option<u64>,
        /// Give up (exit 1) after this many runs failed in a row; 0: never. Failed runs are
        /// retried after a growing wait (the interval doubled per failure, up to 5 minutes).
        #[arg(
            long,
            default_value_t = 5,
            allow_negative_numbers = true,
            value_parser = GIVE_UP_AFTER
        )]
        give_up_after: u64,
        /// Controller mode: the Swarm service of the stack this program runs in. A run applies
        /// nothing unless the service's `infra-declaration` label holds this declaration's
        /// digest: an older controller never reverts a newer deploy (see `infra::controller`).
        #[arg(long, value_name = "SERVICE")]
        controller: Option<String>,
    },
    /// Break the stack's apply lock, whoever holds it (after a killed run).
    ForceUnlock,
    /// Write Rust declaring the objects that belong to no stack (made by hand, or by another
    /// tool), each with its `stack.adopt`: to stdout, or `--out FILE`. Narrow it with
    /// `--only`, `--vpc`, `--name-prefix`, `--tag`.
    Import {
        /// Only this VPC and what lives in it (aws).
        #[arg(long, value_name = "ID")]
        vpc: Option<String>,
        /// Only objects whose name starts with this.
        #[arg(long, value_name = "PREFIX")]
        name_prefix: Option<String>,
        /// Only objects with this tag (AWS) or label (Swarm); repeat to require several.
        #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
        /// Write the module to this file (default: stdout).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Apply a plan that only adopts: the stack's ownership written on the objects its
    /// `stack.adopt` lines name, nothing else. Refused, listing them, when the plan holds any
    /// other change (then review it and use `apply`).
    Adopt {
        /// Don't ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
    },
}

/// `--tag KEY=VALUE`.
fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

impl Args {
    /// Parses `argv` (program name first). `--help` and `--version` print and exit 0, as clap
    /// does; every other problem is an [`Error`] (exit 1): a bad numeric value as
    /// [`Error::BadNumber`], naming the environment variable when that is where it came from.
    pub fn try_from_argv<I, T>(argv: I) -> Result<Args, Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
        match Args::try_parse_from(&argv) {
            Ok(args) => match args.command {
                Some(Command::Plan {
                    format: Some(format @ (PlanFormat::Text | PlanFormat::Markdown)),
                    ..
                }) if args.json => {
                    let name = format.to_possible_value().map(|v| v.get_name().to_string());
                    Err(Error::Usage(clap::Error::raw(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!(
                            "`--json` asks for `--format json`, not `--format {}`\n",
                            name.unwrap_or_default()
                        ),
                    )))
                }
                _ => Ok(args),
            },
            Err(e) if !e.use_stderr() => e.exit(),
            Err(e) => {
                let bad = std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<OutOfRange>())
                    .cloned();
                match bad {
                    Some(mut bad) => {
                        bad.from_env = !mentions(&argv, &bad.flag) && bad.env.is_some();
                        Err(Error::BadNumber(bad))
                    }
                    None => Err(Error::Usage(e)),
                }
            }
        }
    }

    /// The format `plan` prints in: `plan --format`, else JSON with `--json`, else text. Other
    /// commands print plans as text, or JSON with `--json`.
    pub fn plan_format(&self) -> PlanFormat {
        match &self.command {
            Some(Command::Plan {
                format: Some(format),
                ..
            }) => *format,
            _ if self.json => PlanFormat::Json,
            _ => PlanFormat::Text,
        }
    }

    /// Whether stdout is JSON: `--json`, or `plan --format json` (an invalid stack is then
    /// reported as a JSON document too).
    pub fn json_output(&self) -> bool {
        self.json || self.plan_format() == PlanFormat::Json
    }

    /// The numeric checks of parsing, for arguments built in code (a struct literal, a field
    /// set after parsing): the engine must never see a value parsing would have refused.
    pub(crate) fn check_numbers(&self) -> Result<(), OutOfRange> {
        CONCURRENCY.check("concurrency", None, &self.concurrency.to_string())?;
        WAIT_SECONDS.check("lock-timeout", None, &self.lock_timeout.to_string())?;
        WAIT_SECONDS.check("swarm-wait", None, &self.swarm_wait.to_string())?;
        if let Some(Command::Watch {
            interval,
            give_up_after,
            ..
        }) = &self.command
        {
            INTERVAL_SECONDS.check("interval", None, &interval.to_string())?;
            GIVE_UP_AFTER.check("give-up-after", None, &give_up_after.to_string())?;
        }
        Ok(())
    }
}

/// Whether the command line itself gives `--flag` (rather than its environment variable).
fn mentions(argv: &[OsString], flag: &str) -> bool {
    let long = format!("--{flag}");
    argv.iter().skip(1).any(|a| {
        let a = a.to_string_lossy();
        a == long || a.starts_with(&format!("{long}="))
    })
}

/// A numeric flag's range, checked while clap parses (it knows the flag and its environment
/// variable from the argument it parses for).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounded {
    min: u64,
    max: u64,
    what: &'static str,
}

impl Bounded {
    const fn new(min: u64, max: u64, what: &'static str) -> Self {
        Bounded { min, max, what }
    }

    fn check(&self, flag: &str, env: Option<&str>, value: &str) -> Result<u64, OutOfRange> {
        match value.trim().parse::<u64>() {
            Ok(n) if (self.min..=self.max).contains(&n) => Ok(n),
            _ => Err(OutOfRange {
                flag: flag.to_string(),
                env: env.map(str::to_string),
                from_env: false,
                what: self.what,
                min: self.min,
                max: self.max,
                value: shown(value),
            }),
        }
    }
}

/// The offending value as shown in the message: escaped, and cut short when long.
fn shown(value: &str) -> String {
    const MAX: usize = 40;
    let escaped: String = value.escape_debug().collect();
    match escaped.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &escaped[..at]),
        None => escaped,
    }
}

impl TypedValueParser for Bounded {
    type Value = u64;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<u64, clap::Error> {
        let flag = arg
            .and_then(clap::Arg::get_long)
            .unwrap_or("value")
            .to_string();
        let env = arg
            .and_then(clap::Arg::get_env)
            .map(|e| e.to_string_lossy().into_owned());
        let bounds = *self;
        // clap's own closure parser turns the error into a value-validation error whose
        // source is the `OutOfRange`, which `Args::try_from_argv` takes back out.
        let check = move |s: &str| bounds.check(&flag, env.as_deref(), s);
        check.parse_ref(cmd, arg, value)
    }
}

/// A numeric flag whose value is not a whole number in its range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} must be {what} from {min} to {max}, got `{value}`",
    self.name()
)]
pub struct OutOfRange {
    flag: String,
    env: Option<String>,
    from_env: bool,
    what: &'static str,
    min: u64,
    max: u64,
    value: String,
}

impl OutOfRange {
    fn name(&self) -> String {
        match (&self.env, self.from_env) {
            (Some(env), true) => format!("{env} (--{})", self.flag),
            _ => format!("--{}", self.flag),
        }
    }
}
