//! `import` (the objects that belong to no stack, written as Rust) and `adopt` (an apply that
//! only adopts).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use infra_core::engine::{Engine, Error as EngineError};
use infra_core::import::{ImportFilter, ModuleWriter};
use infra_core::plan::PlanOptions;
use infra_core::policy::PolicyRule;
use infra_core::Stack;

use super::{apply_planned, confirm, engine_for, make_plan, print_plan};
use crate::cli::{Args, Error, Exit};

/// `import`: discovery in every in-scope provider, streamed into a module on stdout or in
/// `out` (a file left half-written by a failure is removed), and one summary line on stderr.
pub(super) async fn import_command(
    args: &Args,
    filter: &ImportFilter,
    out: Option<&Path>,
    rules: &[Arc<dyn PolicyRule>],
) -> Result<Exit, Error> {
    let engine = engine_for(args, rules).await?;
    let only: BTreeSet<String> = args.only.iter().cloned().collect();
    let targets = engine
        .targets(&only)
        .await
        .map_err(|e| import_error(args, e))?;
    let mut source: Vec<String> = targets
        .iter()
        .map(|(p, t)| t.clone().unwrap_or_else(|| format!("provider `{p}`")))
        .collect();
    source.extend(filter_words(filter));
    let source = source.join(", ");
    let result = match out {
        Some(path) => {
            let file = File::create(path)
                .map_err(|e| Error::Import(format!("cannot create {}: {e}", path.display())))?;
            let written = write_module(&engine, &only, filter, BufWriter::new(file), &source).await;
            if written.is_err() {
                let _ = std::fs::remove_file(path);
            }
            written
        }
        None => {
            let stdout = BufWriter::new(std::io::stdout());
            write_module(&engine, &only, filter, stdout, &source).await
        }
    };
    let counts = result.map_err(|e| match e {
        ImportFailed::Engine(e) => import_error(args, e),
        ImportFailed::Write(e) => Error::Import(format!("writing the module failed: {e}")),
    })?;
    eprintln!(
        "Imported {} object{} ({} listed as comments){}.",
        counts.objects,
        if counts.objects == 1 { "" } else { "s" },
        counts.comments,
        out.map(|p| format!(" into {}", p.display()))
            .unwrap_or_default()
    );
    Ok(Exit::Success)
}

enum ImportFailed {
    Engine(EngineError),
    Write(std::io::Error),
}

async fn write_module<W: Write + Send>(
    engine: &Engine,
    only: &BTreeSet<String>,
    filter: &ImportFilter,
    out: W,
    source: &str,
) -> Result<infra_core::import::ImportCounts, ImportFailed> {
    let mut writer = ModuleWriter::new(out, source).map_err(ImportFailed::Write)?;
    engine
        .import(only, filter, &mut writer)
        .await
        .map_err(ImportFailed::Engine)?;
    writer
        .finish()
        .map(|(_, counts)| counts)
        .map_err(ImportFailed::Write)
}

/// The filters, in words, for the module's header.
fn filter_words(filter: &ImportFilter) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(vpc) = &filter.vpc {
        out.push(format!("VPC {vpc}"));
    }
    if let Some(prefix) = &filter.name_prefix {
        out.push(format!("names starting with `{prefix}`"));
    }
    for (k, v) in &filter.tags {
        out.push(format!("tag `{k}={v}`"));
    }
    out
}

/// One line for a failed import: the environment advice for an endpoint that can't be used,
/// else the engine's error.
fn import_error(args: &Args, e: EngineError) -> Error {
    if let EngineError::Discover { provider, error } | EngineError::Read { provider, error } = &e {
        if let Some(advice) = crate::live::environment_advice(provider, error) {
            return Error::Environment(advice);
        }
    }
    if let EngineError::UnknownProvider { provider, .. } = e {
        return Error::Scope {
            provider,
            known: super::PROVIDERS.join(", "),
        };
    }
    let _ = args;
    Error::Import(e.to_string().lines().next().unwrap_or_default().to_string())
}

/// `adopt`: plans, shows the plan, and applies it only when it holds nothing but adoptions
/// (after confirmation, or `--auto-approve`).
pub(super) async fn adopt_command(
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
    let others = Engine::not_adoptions(&planned);
    if !others.is_empty() {
        return Err(Error::NotOnlyAdoptions(others));
    }
    if planned.plan.is_empty() {
        if args.json {
            print!("{}", infra_core::render::plan_json(&planned.plan));
        }
        return Ok(Exit::Success);
    }
    if !auto_approve && !confirm(stack.name(), false)? {
        eprintln!("Adopt cancelled; nothing was changed.");
        return Err(Error::Cancelled);
    }
    apply_planned(args, stack, &engine, &planned).await
}
