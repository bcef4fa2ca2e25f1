//! Saved plans in the deploy program: what `plan --out FILE` records beside the plan
//! (`run_context`, `write_saved`), and `apply FILE` (`apply_saved_command`).

use super::*;

/// What a run was given besides the declaration that decides what it plans against: recorded
/// in a saved plan, and an apply of it must be given the same.
fn run_context(args: &Args) -> BTreeMap<String, String> {
    let mut context = BTreeMap::from([
        (
            "--target".to_string(),
            match args.target {
                Target::Sandbox => "sandbox",
                Target::Live => "live",
            }
            .to_string(),
        ),
        ("--env".to_string(), args.env.clone()),
    ]);
    if !args.only.is_empty() {
        context.insert("--only".into(), args.only.join(","));
    }
    context
}

/// Writes a saved plan (a whole file or nothing: written beside it, then renamed).
pub(super) fn write_saved(
    args: &Args,
    stack: &Stack,
    out: &Path,
    phases: Vec<SavedPhase>,
) -> Result<(), Error> {
    let saved = SavedPlan::new(stack, run_context(args), phases);
    let failed = |source| Error::PlanFile {
        action: "write",
        path: out.to_path_buf(),
        source,
    };
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, saved.to_json()).map_err(failed)?;
    std::fs::rename(&tmp, out).map_err(failed)?;
    let missing: Vec<&str> = PROVIDERS
        .iter()
        .copied()
        .filter(|p| args.only.is_empty() || args.only.iter().any(|o| o == p))
        .filter(|p| !saved.providers().iter().any(|s| s == p))
        .collect();
    let note = if missing.is_empty() {
        String::new()
    } else {
        format!(
            " It holds no {} phase (not planned yet): save that one once the earlier phases are applied.",
            missing.join(", ")
        )
    };
    eprintln!(
        "\nSaved the plan to {}. `apply {}` applies exactly this plan, without a prompt, and refuses if the declaration, the stack's objects or the target change first.{note}",
        out.display(),
        shell_word(&out.display().to_string())
    );
    Ok(())
}

/// `apply FILE`: checks the saved plan against the declaration, the targets and every object it
/// read (all phases before any is applied), then applies each phase's plan, which is the saved
/// one operation for operation. No prompt: the saved plan was the thing reviewed.
pub(super) async fn apply_saved_command(
    args: &Args,
    stack: &Stack,
    file: &Path,
    rules: &[Arc<dyn PolicyRule>],
) -> Result<Exit, Error> {
    let result = apply_saved(args, stack, file, rules).await;
    if let Err(e @ Error::SavedPlanRefused { .. }) = &result {
        // A refusal is part of the audit trail: who tried to apply which file, and why not.
        let entry = AuditEntry::PlanRefused {
            ts_unix_ms: infra_core::audit::now_unix_ms(),
            stack: stack.name().to_string(),
            actor: infra_core::audit::Actor::this_process(),
            file: file.display().to_string(),
            plan_digest: std::fs::read(file)
                .ok()
                .map(|bytes| infra_core::audit::digest_bytes(&bytes)),
            reason: e.to_string(),
        };
        entry.trace();
        // The refusal is what the user must see; an audit file that can't be opened is said
        // after it, not instead of it.
        match AuditFile::open(&args.audit_file) {
            Ok(audit) => audit.write(&entry),
            Err(e) => eprintln!("warning: {e}; the refusal is not in the audit file"),
        }
    }
    result
}

async fn apply_saved(
    args: &Args,
    stack: &Stack,
    file: &Path,
    rules: &[Arc<dyn PolicyRule>],
) -> Result<Exit, Error> {
    let refused = |refusal| Error::SavedPlanRefused {
        path: file.to_path_buf(),
        refusal,
    };
    let text = std::fs::read_to_string(file).map_err(|source| Error::PlanFile {
        action: "read",
        path: file.to_path_buf(),
        source,
    })?;
    let saved = SavedPlan::from_json(&text).map_err(refused)?;
    // What can be checked without contacting anything first: the stack, the tool, the flags,
    // the declaration.
    let context = run_context(args);
    saved.check_declaration(stack, &context).map_err(refused)?;
    validate(args, stack).await?;
    let mut scoped = args.clone();
    scoped.only = saved.providers();
    scoped.only.dedup();
    let engine = engine_for(&scoped, rules).await?;
    let planned = match engine.verify_saved(stack, &saved, &context).await {
        Ok(planned) => planned,
        Err(EngineError::SavedPlan(refusal)) => return Err(refused(refusal)),
        Err(e) => return Err(from_engine(e, &scoped, stack, Error::Plan)),
    };
    let count = planned.len();
    for (i, planned) in planned.iter().enumerate() {
        if count > 1 {
            eprintln!(
                "== Phase {}/{count}: {} ==",
                i + 1,
                planned.plan.providers.join(", ")
            );
        }
        if !args.json {
            print!("{}", render::plan_text(&planned.plan));
        }
        if planned.plan.is_empty() {
            if args.json {
                print!("{}", render::plan_json(&planned.plan));
            }
            continue;
        }
        if let Err(e) = apply_planned(args, stack, &engine, planned).await {
            if e.already_shown() && i + 1 < count {
                eprintln!("The phase did not complete; the later phases were not run.");
            }
            return Err(e);
        }
    }
    Ok(Exit::Success)
}
