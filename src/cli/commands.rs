//! What each command does: build the engine for the target, validate, plan, print, confirm,
//! apply, report; live runs go in phases (AWS, then Swarm). Failures become [`Error`]s with the
//! command-line hints the engine leaves out.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use infra_core::audit::AuditEntry;
use infra_core::engine::{Engine, Error as EngineError, Planned};
use infra_core::graph::Graph;
use infra_core::plan::saved::{saved_plan_schema, SavedPhase, SavedPlan};
use infra_core::plan::{Action, Plan, PlanOptions};
use infra_core::policy::PolicyRule;
use infra_core::provider::Provider;
use infra_core::reconcile::{ApplyObserver, ApplyOptions, NoObserver, OpStatus};
use infra_core::render::{self, MarkdownOptions};
use infra_core::validate::ValidationErrors;
use infra_core::watch::{RunReport, RunResult, WatchEnd, WatchObserver, WatchOptions};
use infra_core::Stack;

use super::args::PROVIDERS;
use super::progress::{AuditFile, CliObserver, ProgressMode};
use super::{Args, Command, Error, Exit, GraphFormat, PlanFormat, SchemaOf, Target};

mod import;
mod saved;
use import::{adopt_command, import_command};
use saved::{apply_saved_command, write_saved};

/// How often an operation still running is reported (a heartbeat line when stderr is not a
/// terminal): often enough that a CI log shows a NAT gateway or a Swarm service is still
/// coming, rarely enough not to drown the log.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Builds the engine for a target: the sandbox serves `aws` and `swarm` kinds from files; live
/// connects to the real endpoints of the providers in scope.
pub async fn engine_for(args: &Args, rules: &[Arc<dyn PolicyRule>]) -> Result<Engine, Error> {
    args.check_numbers()?;
    let mut engine = Engine::new()
        .with_options(ApplyOptions {
            concurrency: args.concurrency,
            heartbeat: HEARTBEAT,
            ..ApplyOptions::default()
        })
        .with_lock_timeout(Duration::from_secs(args.lock_timeout))
        .with_rules(rules.iter().cloned());
    let wanted = |p: &str| args.only.is_empty() || args.only.iter().any(|o| o == p);
    for name in PROVIDERS {
        if !wanted(name) {
            continue;
        }
        let provider: Arc<dyn Provider> = match args.target {
            Target::Sandbox => {
                Arc::new(crate::sandbox(&args.sandbox_dir, name).map_err(|source| {
                    Error::Sandbox {
                        dir: args.sandbox_dir.clone(),
                        source,
                    }
                })?)
            }
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

/// Runs one command on a built stack. Plans and reports go to stdout.
pub async fn execute(args: &Args, stack: &Stack) -> Result<Exit, Error> {
    execute_with_rules(args, stack, &crate::default_rules()).await
}

/// [`execute`] with a given set of policy rules (the built-in ones plus your own, say).
pub async fn execute_with_rules(
    args: &Args,
    stack: &Stack,
    rules: &[Arc<dyn PolicyRule>],
) -> Result<Exit, Error> {
    // Arguments built in code get the checks parsing makes, before anything is contacted.
    args.check_numbers()?;
    if let Some(Command::Apply {
        plan_file: Some(file),
        ..
    }) = &args.command
    {
        return apply_saved_command(args, stack, file, rules).await;
    }
    if args.target == Target::Live && args.only.is_empty() {
        if let Some(exit) = phases(args, stack, rules).await? {
            return Ok(exit);
        }
    }
    execute_one(args, stack, rules).await
}

/// Runs plan/apply/destroy on a live target as phases, one provider after the other (the Swarm
/// API exists only once the AWS phase has made the managers; destroying goes Swarm first).
/// `None` for commands that don't go in phases.
async fn phases(
    args: &Args,
    stack: &Stack,
    rules: &[Arc<dyn PolicyRule>],
) -> Result<Option<Exit>, Error> {
    let (order, applying): (Vec<&str>, bool) = match &args.command {
        None | Some(Command::Plan { destroy: false, .. }) => (PROVIDERS.to_vec(), false),
        Some(Command::Plan { destroy: true, .. }) => {
            (PROVIDERS.iter().rev().copied().collect(), false)
        }
        Some(Command::Apply { .. } | Command::Adopt { .. }) => (PROVIDERS.to_vec(), true),
        Some(Command::Destroy { .. }) => (PROVIDERS.iter().rev().copied().collect(), true),
        _ => return Ok(None),
    };
    // Validate the whole stack once, before any endpoint is contacted.
    validate(args, stack).await?;
    let out = match &args.command {
        Some(Command::Plan { out: Some(out), .. }) => Some(out),
        _ => None,
    };
    let mut saved_phases = Vec::new();
    let mut worst = Exit::Success;
    let mut plan_errors = None;
    for (i, phase) in order.iter().enumerate() {
        eprintln!("== Phase {}/{}: {phase} ==", i + 1, order.len());
        let mut phase_args = args.clone();
        phase_args.only = vec![phase.to_string()];
        phase_args.wait_for_endpoints = applying;
        if !applying && *phase == "swarm" {
            // A plan doesn't wait: before the managers exist there is no Swarm API to ask.
            if let Err(e) = crate::live::provider(phase, Duration::ZERO).await {
                eprintln!("The {phase} phase can't be planned yet ({e}); `apply` runs it once the previous phase has made its endpoint.");
                if args.detailed_exitcode {
                    worst = worst.max(Exit::ChangesPending);
                }
                continue;
            }
        }
        let result = match out {
            Some(_) => plan_phase(&phase_args, stack, rules, true)
                .await
                .map(|(exit, phase)| {
                    saved_phases.extend(phase);
                    exit
                }),
            None => execute_one(&phase_args, stack, rules).await,
        };
        match result {
            Ok(exit) => worst = worst.max(exit),
            Err(e) if applying => {
                if e.already_shown() && i + 1 < order.len() {
                    eprintln!("The {phase} phase did not complete; the later phases were not run.");
                }
                return Err(e);
            }
            // A plan with errors (shown) doesn't stop the plans of the later phases.
            Err(e @ Error::PlanHasErrors { .. }) => plan_errors = Some(e),
            Err(e) => return Err(e),
        }
    }
    match plan_errors {
        Some(e) => {
            if let Some(out) = out {
                eprintln!("The plan has errors: {} was not written.", out.display());
            }
            Err(e)
        }
        None => {
            if let Some(out) = out {
                write_saved(args, stack, out, saved_phases)?;
            }
            Ok(Some(worst))
        }
    }
}

async fn execute_one(
    args: &Args,
    stack: &Stack,
    rules: &[Arc<dyn PolicyRule>],
) -> Result<Exit, Error> {
    match &args.command {
        None | Some(Command::Plan { .. }) => plan_command(args, stack, rules).await,
        Some(Command::Apply {
            auto_approve,
            allow_destroy,
            ..
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
            let graph = infra_core::graph::Graph::build(stack)
                .map_err(|errors| Error::InvalidStack { errors, hint: None })?;
            print!(
                "{}",
                match format {
                    GraphFormat::Dot => render::graph_dot(&graph),
                    GraphFormat::Mermaid => render::graph_mermaid(&graph),
                }
            );
            Ok(Exit::Success)
        }
        Some(Command::Schema { of, saved_plan }) => {
            let schema = match (of, saved_plan) {
                (_, true) | (SchemaOf::SavedPlan, _) => saved_plan_schema(),
                (SchemaOf::Plan, false) => render::plan_schema(),
                (SchemaOf::Audit, false) => infra_core::audit::schema(),
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            Ok(Exit::Success)
        }
        Some(Command::Watch {
            interval,
            iterations,
            give_up_after,
            controller,
        }) => {
            if controller.is_some()
                && !args.only.is_empty()
                && !args.only.iter().any(|o| o == "swarm")
            {
                return Err(Error::Environment(format!(
                    "watch --controller: the controller's declaration record is a Swarm service label, and --only {} leaves the swarm provider out; nothing was read or changed",
                    args.only.join(",")
                )));
            }
            let options = WatchOptions {
                runs: *iterations,
                give_up_after: u32::try_from(*give_up_after).ok().filter(|n| *n > 0),
                marker: controller.as_deref().map(crate::controller::marker),
                ..WatchOptions::every(Duration::from_secs(*interval))
            };
            watch_command(args, stack, &options, rules).await
        }
        Some(Command::ForceUnlock) => force_unlock_command(args, stack, rules).await,
        Some(Command::Import {
            vpc,
            name_prefix,
            tags,
            out,
        }) => {
            let mut filter = infra_core::import::ImportFilter::all();
            filter.vpc = vpc.clone();
            filter.name_prefix = name_prefix.clone();
            filter.tags = tags.iter().cloned().collect();
            import_command(args, &filter, out.as_deref(), rules).await
        }
        Some(Command::Adopt { auto_approve }) => {
            let opts = plan_options(args, false, &[], false);
            adopt_command(args, stack, opts, *auto_approve, rules).await
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

/// The deploy program's error for an engine error, with what to do on this command line: the
/// environment advice for an endpoint that can't be used, the `force-unlock` command for a
/// held lock, `--only` for a provider out of reach. `otherwise` classifies the rest (a plan or
/// an apply failure).
fn from_engine(
    e: EngineError,
    args: &Args,
    stack: &Stack,
    otherwise: fn(EngineError) -> Error,
) -> Error {
    if let EngineError::Read { provider, error } = &e {
        if let Some(advice) = crate::live::environment_advice(provider, error) {
            return Error::Environment(advice);
        }
    }
    match e {
        EngineError::Validation(errors) => invalid(args, stack, errors),
        EngineError::UnknownProvider { provider, .. } => Error::Scope {
            provider,
            known: PROVIDERS.join(", "),
        },
        EngineError::Locked { stack, holder } => Error::Locked {
            stack,
            holder,
            unlock: unlock_command(args),
        },
        e @ EngineError::LockFailed { .. } => Error::LockFailed(e),
        other => otherwise(other),
    }
}

/// The command line that breaks this run's lock: this program with the flags that decide
/// which stack and which providers (the ones that differ from their defaults).
fn unlock_command(args: &Args) -> String {
    let program = std::env::args_os()
        .next()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "production".into());
    let mut words: Vec<String> = vec![program];
    if args.target == Target::Live {
        words.extend(["--target".into(), "live".into()]);
    } else if args.sandbox_dir.as_os_str() != ".infra/sandbox" {
        words.extend([
            "--sandbox-dir".into(),
            args.sandbox_dir.display().to_string(),
        ]);
    }
    if args.env != "local" {
        words.extend(["--env".into(), args.env.clone()]);
    }
    if let Some(name) = &args.stack_name {
        words.extend(["--stack".into(), name.clone()]);
    }
    if !args.only.is_empty() {
        words.extend(["--only".into(), args.only.join(",")]);
    }
    words.push("force-unlock".into());
    words
        .iter()
        .map(|w| shell_word(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `w` as one shell word: as it is when it needs no quoting, else single-quoted.
fn shell_word(w: &str) -> Cow<'_, str> {
    let plain = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+".contains(c));
    if plain {
        Cow::Borrowed(w)
    } else {
        Cow::Owned(format!("'{}'", w.replace('\'', r"'\''")))
    }
}

/// An invalid stack: with `--json`, the problems as a JSON document on stdout; a hint when some
/// resources belong to providers this program doesn't have (`--only` leaves them out).
fn invalid(args: &Args, stack: &Stack, errors: ValidationErrors) -> Error {
    if args.json_output() {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "error": "validation", "problems": errors.problems })
            )
            .unwrap_or_default()
        );
    }
    let foreign: BTreeSet<&str> = errors
        .problems
        .iter()
        .filter(|p| p.field == "kind")
        .filter_map(|p| {
            stack
                .resources()
                .iter()
                .find(|r| r.address.to_string() == p.address)
        })
        .map(|r| r.schema.provider)
        .filter(|p| !PROVIDERS.contains(p))
        .collect();
    let hint = (!foreign.is_empty()).then(|| {
        format!(
            "This program has the providers {}; `--only {}` leaves the resources of {} out of the run.",
            PROVIDERS.join(" and "),
            PROVIDERS.join(","),
            foreign.into_iter().collect::<Vec<_>>().join(", ")
        )
    });
    Error::InvalidStack { errors, hint }
}

/// Validates the stack before anything is contacted: the graph's checks and, on a live target,
/// the AWS provider's preflight against its configuration (a subnet in `us-east-1a` with the
/// region `eu-west-1`), which makes no API call. Every problem is reported at once.
async fn validate(args: &Args, stack: &Stack) -> Result<Graph, Error> {
    let (graph, mut problems) = match Graph::build(stack) {
        Ok(graph) => (Some(graph), Vec::new()),
        Err(e) => (None, e.problems),
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
    if let (Some(graph), true) = (graph, problems.is_empty()) {
        return Ok(graph);
    }
    problems.sort();
    problems.dedup();
    let errors = ValidationErrors {
        stack: stack.name().to_string(),
        problems,
    };
    Err(invalid(args, stack, errors))
}

async fn make_plan(
    args: &Args,
    stack: &Stack,
    opts: &PlanOptions,
    rules: &[Arc<dyn PolicyRule>],
) -> Result<(Engine, Planned), Error> {
    // An existing sandbox is opened first: its journals are then read on other threads while
    // the stack is validated (opening an existing sandbox makes at most its lock files).
    let early = match args.target {
        Target::Sandbox if args.sandbox_dir.is_dir() => Some(engine_for(args, rules).await?),
        _ => None,
    };
    // Validate first: a broken stack is reported before any endpoint is contacted.
    let graph = validate(args, stack).await?;
    let engine = match early {
        Some(engine) => engine,
        None => engine_for(args, rules).await?,
    };
    let planned = engine
        .plan_built(stack, Ok(graph), opts)
        .await
        .map_err(|e| from_engine(e, args, stack, Error::Plan))?;
    Ok((engine, planned))
}

async fn plan_command(
    args: &Args,
    stack: &Stack,
    rules: &[Arc<dyn PolicyRule>],
) -> Result<Exit, Error> {
    let out = match &args.command {
        Some(Command::Plan { out, .. }) => out.as_deref(),
        _ => None,
    };
    match plan_phase(args, stack, rules, out.is_some()).await {
        Ok((exit, phase)) => {
            if let Some(out) = out {
                write_saved(args, stack, out, phase.into_iter().collect())?;
            }
            Ok(exit)
        }
        Err(e) => {
            if let (Some(out), Error::PlanHasErrors { .. }) = (out, &e) {
                eprintln!("The plan has errors: {} was not written.", out.display());
            }
            Err(e)
        }
    }
}

/// `plan`'s options from its flags.
fn plan_command_options(args: &Args) -> PlanOptions {
    match &args.command {
        Some(Command::Plan {
            destroy,
            allow_destroy,
            allow_destroy_all,
            ..
        }) => plan_options(args, *destroy, allow_destroy, *allow_destroy_all),
        _ => plan_options(args, false, &[], false),
    }
}

/// Plans (one phase) and prints the plan; with `save`, also records what a saved plan needs.
async fn plan_phase(
    args: &Args,
    stack: &Stack,
    rules: &[Arc<dyn PolicyRule>],
    save: bool,
) -> Result<(Exit, Option<SavedPhase>), Error> {
    let opts = plan_command_options(args);
    let (engine, planned, phase) = if save {
        validate(args, stack).await?;
        let engine = engine_for(args, rules).await?;
        let (planned, phase) = engine
            .plan_to_save(stack, &opts)
            .await
            .map_err(|e| from_engine(e, args, stack, Error::Plan))?;
        (engine, planned, Some(phase))
    } else {
        let (engine, planned) = make_plan(args, stack, &opts, rules).await?;
        (engine, planned, None)
    };
    let out = show_plan(args, &planned, &opts).map(|exit| (exit, phase));
    // The plan's inputs (the engine's providers with what they read, the graph, the observed
    // state) are not freed one by one when this process is the deploy program, about to exit.
    super::release((engine, planned));
    out
}

/// Prints a plan made by `plan_phase`; the exit status it calls for.
fn show_plan(args: &Args, planned: &Planned, opts: &PlanOptions) -> Result<Exit, Error> {
    if matches!(
        args.command,
        Some(Command::Plan {
            drift_only: true,
            ..
        })
    ) {
        // A drift check reports drift whatever else the plan holds (errors included: the
        // drift is there all the same).
        print!(
            "{}",
            match args.plan_format() {
                PlanFormat::Json => render::plan_drift_json(&planned.plan),
                PlanFormat::Markdown => render::plan_drift_markdown(&planned.plan),
                _ => render::plan_drift_text(&planned.plan),
            }
        );
        let exit = if planned.plan.drift.is_empty() {
            Exit::Success
        } else {
            Exit::ChangesPending
        };
        return Ok(exit);
    }
    print_plan(args, planned, opts);
    if !planned.plan.blockers().is_empty() {
        return Err(Error::PlanHasErrors { shown: true });
    }
    let exit = if args.detailed_exitcode && !planned.plan.is_empty() {
        Exit::ChangesPending
    } else {
        Exit::Success
    };
    Ok(exit)
}

fn print_plan(args: &Args, planned: &Planned, opts: &PlanOptions) {
    let hint = protection_hint(&planned.plan, opts);
    match args.plan_format() {
        PlanFormat::Json => print!("{}", render::plan_json(&planned.plan)),
        PlanFormat::Markdown => {
            // The hint comes after the document: together they stay within GitHub's limit.
            let hint = hint.map(|h| format!("\n{h}\n")).unwrap_or_default();
            let options = MarkdownOptions::default()
                .limit(render::GITHUB_COMMENT_LIMIT.saturating_sub(hint.len()));
            print!("{}{hint}", render::plan_markdown(&planned.plan, &options));
        }
        _ => {
            print!("{}", render::plan_text(&planned.plan));
            if let Some(hint) = hint {
                println!("\n{hint}");
            }
        }
    }
}

/// The flags that let this program destroy or replace the protected resources that block
/// `plan` (the engine's errors name none): `--allow-destroy ADDR` on `apply` or `destroy`.
fn protection_hint(plan: &Plan, opts: &PlanOptions) -> Option<String> {
    let blocked: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.protected && (c.action == Action::Delete || c.action.is_replace()))
        .map(|c| c.address.to_string())
        .filter(|a| !opts.allow_destroy_all && !opts.allow_destroy.contains(a))
        .collect();
    if blocked.is_empty() {
        return None;
    }
    let flags: Vec<String> = blocked
        .iter()
        .map(|a| format!("--allow-destroy {}", shell_word(a)))
        .collect();
    let command = if plan.destroy { "destroy" } else { "apply" };
    Some(format!(
        "If this is intended, run `{command}` with `{}`.",
        flags.join(" ")
    ))
}

async fn apply_command(
    args: &Args,
    stack: &Stack,
    opts: PlanOptions,
    auto_approve: bool,
    rules: &[Arc<dyn PolicyRule>],
) -> Result<Exit, Error> {
    let (engine, planned) = make_plan(args, stack, &opts, rules).await?;
    if !args.json {
        print_plan(args, &planned, &opts);
    }
    if !planned.plan.blockers().is_empty() {
        return Err(Error::PlanHasErrors { shown: false });
    }
    if planned.plan.is_empty() {
        if args.json {
            print!("{}", render::plan_json(&planned.plan));
        }
        return Ok(Exit::Success);
    }
    if !auto_approve && !confirm(stack.name(), opts.destroy)? {
        eprintln!("Apply cancelled; nothing was changed.");
        return Err(Error::Cancelled);
    }
    apply_planned(args, stack, &engine, &planned).await
}

/// Applies a plan (confirmed, or saved), with progress and audit events, and prints the report.
async fn apply_planned(
    args: &Args,
    stack: &Stack,
    engine: &Engine,
    planned: &Planned,
) -> Result<Exit, Error> {
    let observer = CliObserver::new(&args.audit_file, ProgressMode::for_stderr().on_stderr())?;
    let applied = engine.apply(planned, &observer).await;
    observer.done();
    let report = applied.map_err(|e| from_engine(e, args, stack, Error::Apply))?;
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
        if !report.api_calls.is_empty() {
            let calls = report
                .api_calls
                .iter()
                .map(|(p, n)| format!("{p}: {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            eprintln!(
                "API calls during apply: {calls}; took {:.1}s.",
                report.duration_ms as f64 / 1000.0
            );
        }
    }
    if report.is_success() {
        return Ok(Exit::Success);
    }
    let count = |f: fn(&OpStatus) -> bool| report.outcomes.iter().filter(|o| f(&o.status)).count();
    Err(Error::OperationsFailed {
        failed: count(|s| matches!(s, OpStatus::Failed { .. })),
        skipped: count(|s| matches!(s, OpStatus::Skipped { .. })),
    })
}

fn confirm(stack: &str, destroy: bool) -> Result<bool, Error> {
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
        .map_err(Error::Confirmation)?;
    Ok(line.trim() == "yes")
}

async fn watch_command(
    args: &Args,
    stack: &Stack,
    options: &WatchOptions,
    rules: &[Arc<dyn PolicyRule>],
) -> Result<Exit, Error> {
    // A broken declaration or an unreachable provider at start is an error at once; once
    // watching, every run's failure is reported and the loop carries on (backing off).
    validate(args, stack).await?;
    let engine = engine_for(args, rules).await?;
    let opts = plan_options(args, false, &[], false);
    let observer = WatchLines {
        args,
        stack,
        opts: &opts,
        apply: Mutex::new(None),
    };
    match engine
        .watch(stack, &opts, options, &observer, stop_signal())
        .await
    {
        WatchEnd::GaveUp {
            consecutive_failures,
            ..
        } => Err(Error::WatchGaveUp {
            failures: consecutive_failures,
        }),
        WatchEnd::Done {
            runs,
            last_failed: true,
        } => Err(Error::WatchLastRunFailed { runs }),
        _ => Ok(Exit::Success),
    }
}

/// Completes on SIGTERM (what Swarm and `docker stop` send): the watch loop then ends after the
/// run under way, so a stopped controller never leaves the lock behind. The handler is installed
/// at once (a signal during the first run is not lost). Ctrl-C (SIGINT) still stops at once.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        #[cfg(unix)]
        if let Ok(mut term) = term {
            term.recv().await;
            eprintln!("watch: stopping (SIGTERM; no run under way)");
            return;
        }
        std::future::pending::<()>().await
    }
}

/// `watch`'s lines on stderr (the plan of a run with changes on stdout), one or more per run.
struct WatchLines<'a> {
    args: &'a Args,
    stack: &'a Stack,
    opts: &'a PlanOptions,
    /// The progress of the run being applied, finished when the run ends.
    apply: Mutex<Option<Arc<CliObserver>>>,
}

impl WatchObserver for WatchLines<'_> {
    fn planned(&self, _run: u64, planned: &Planned) {
        print_plan(self.args, planned, self.opts);
    }

    fn apply_observer(&self, run: u64) -> Box<dyn ApplyObserver + '_> {
        match CliObserver::new(
            &self.args.audit_file,
            ProgressMode::for_stderr().on_stderr(),
        ) {
            Ok(observer) => {
                let observer = Arc::new(observer);
                *self.apply.lock().unwrap_or_else(|e| e.into_inner()) = Some(observer.clone());
                Box::new(observer)
            }
            Err(e) => {
                eprintln!("watch #{run}: {e}; applying without an audit log");
                Box::new(NoObserver)
            }
        }
    }

    fn run_ended(&self, r: RunReport) {
        if let Some(observer) = self.apply.lock().unwrap_or_else(|e| e.into_inner()).take() {
            observer.done();
        }
        let n = r.run;
        match r.result {
            RunResult::NoChanges => {
                tracing::info!(run = n, "watch: no drift");
                eprintln!("watch #{n}: no changes");
            }
            RunResult::Applied(report) => eprint!("watch #{n}: {}", render::report_text(&report)),
            RunResult::PlanHasErrors(_) => {
                eprintln!("watch #{n}: the plan has errors; not applying")
            }
            RunResult::NotOwnDeclaration(why) => {
                tracing::warn!(run = n, found = ?why.found, declared = ?why.declared, "watch: not this controller's declaration");
                eprintln!("watch #{n}: {why}")
            }
            RunResult::PlanFailed(e) => eprintln!(
                "watch #{n}: {}",
                from_engine(e, self.args, self.stack, Error::Plan)
            ),
            RunResult::ApplyFailed(e) => eprintln!(
                "watch #{n}: apply failed: {}",
                from_engine(e, self.args, self.stack, Error::Apply)
            ),
            _ => {}
        }
        if r.consecutive_failures > 0 {
            if let Some(wait) = r.next_in {
                eprintln!(
                    "watch #{n}: {} failed run(s) in a row; next run in {:.0} s",
                    r.consecutive_failures,
                    wait.as_secs_f64()
                );
            }
        }
    }
}

async fn force_unlock_command(
    args: &Args,
    stack: &Stack,
    rules: &[Arc<dyn PolicyRule>],
) -> Result<Exit, Error> {
    let engine = engine_for(args, rules).await?;
    let only: BTreeSet<String> = args.only.iter().cloned().collect();
    let broken = engine
        .force_unlock(stack.name(), &only)
        .await
        .map_err(|e| from_engine(e, args, stack, Error::ForceUnlock))?;
    if broken.is_empty() {
        eprintln!("Stack \"{}\" was not locked.", stack.name());
    }
    // The lock is broken by now: an audit file that can't be opened is said, and the broken
    // locks are still reported.
    let audit = if broken.is_empty() {
        None
    } else {
        AuditFile::open(&args.audit_file)
            .map_err(|e| eprintln!("warning: {e}; the broken lock is not in the audit file"))
            .ok()
    };
    let actor = engine
        .actor(&only)
        .await
        .map_err(|e| from_engine(e, args, stack, Error::ForceUnlock))?;
    for (provider, info) in broken {
        eprintln!(
            "Broke the lock of stack \"{}\" in provider `{provider}`, held by {info}.",
            stack.name()
        );
        let entry = AuditEntry::ForceUnlock {
            ts_unix_ms: infra_core::audit::now_unix_ms(),
            stack: stack.name().to_string(),
            actor: actor.clone(),
            provider,
            holder: info.holder,
            operation: info.operation,
            since_unix: info.since_unix,
        };
        entry.trace();
        if let Some(audit) = &audit {
            audit.write(&entry);
        }
    }
    Ok(Exit::Success)
}
