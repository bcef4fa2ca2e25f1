//! The deploy program as a user runs it: exit codes, prompts, JSON against its schema.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use clap::Parser;
use infra::cli::{execute, Args, Exit};
use infra::prelude::*;

fn example_binary() -> PathBuf {
    infra_test_support::example_binary("production")
}

pub(crate) fn run(dir: &Path, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(example_binary())
        .args(args)
        .env("INFRA_SANDBOX_DIR", dir.join("sandbox"))
        .env("INFRA_AUDIT_LOG", dir.join("audit.jsonl"))
        .env_remove("INFRA_TARGET")
        .env_remove("INFRA_ENV")
        .env("INFRA_TEST_IMAGE", "sha256:aaaa")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn plan_apply_replan_with_detailed_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let p = run(dir.path(), &["plan", "--detailed-exitcode"], "");
    assert_eq!(
        p.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&p.stderr)
    );
    assert!(
        stdout(&p).contains(" to add, 0 to change, 0 to destroy."),
        "{}",
        stdout(&p)
    );

    let plain = run(dir.path(), &["plan"], "");
    assert_eq!(
        plain.status.code(),
        Some(0),
        "plain plan exits 0 even with changes"
    );

    let cancelled = run(dir.path(), &["apply"], "no\n");
    assert_eq!(cancelled.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&cancelled.stderr)
        .contains("Apply cancelled; nothing was changed."));
    assert_eq!(
        run(dir.path(), &["plan", "--detailed-exitcode"], "")
            .status
            .code(),
        Some(2),
        "cancel changed nothing"
    );

    let a = run(dir.path(), &["apply"], "yes\n");
    assert_eq!(
        a.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&a.stderr)
    );
    assert!(
        stdout(&a).contains("Apply complete! Resources: "),
        "{}",
        stdout(&a)
    );

    let again = run(dir.path(), &["plan", "--detailed-exitcode"], "");
    assert_eq!(again.status.code(), Some(0));
    assert!(
        stdout(&again).starts_with("No changes. Stack \"local\" matches its declaration"),
        "{}",
        stdout(&again)
    );

    // One audit event per change, JSON lines.
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!events.is_empty());
    assert!(events
        .iter()
        .all(|e| e["status"] == "succeeded" && e["stack"] == "local"));

    // Editing a field (the test image, from the environment) shows exactly that update: the
    // four services and the controller (its stand-in runs on the test image, and its record of
    // the declaration changes with it).
    let edited = run_with_image(dir.path(), "sha256:bbbb");
    assert_eq!(edited.status.code(), Some(2));
    let text = stdout(&edited);
    assert!(
        text.contains("~ image = \"sha256:aaaa\" -> \"sha256:bbbb\""),
        "{text}"
    );
    assert!(
        text.contains("Plan: 0 to add, 5 to change, 0 to destroy."),
        "{text}"
    );
}

fn run_with_image(dir: &Path, image: &str) -> Output {
    Command::new(example_binary())
        .args(["plan", "--detailed-exitcode"])
        .env("INFRA_SANDBOX_DIR", dir.join("sandbox"))
        .env("INFRA_TEST_IMAGE", image)
        .env_remove("INFRA_TARGET")
        .env_remove("INFRA_ENV")
        .output()
        .unwrap()
}

#[test]
fn json_plan_validates_against_the_printed_schema() {
    let dir = tempfile::tempdir().unwrap();
    let schema: serde_json::Value =
        serde_json::from_slice(&run(dir.path(), &["schema"], "").stdout).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let fresh: serde_json::Value =
        serde_json::from_slice(&run(dir.path(), &["plan", "--json"], "").stdout).unwrap();
    assert!(
        validator.is_valid(&fresh),
        "{:?}",
        validator
            .iter_errors(&fresh)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(fresh["format_version"], 1);
    assert_eq!(
        run(dir.path(), &["apply", "--auto-approve"], "")
            .status
            .code(),
        Some(0)
    );
    let noop: serde_json::Value =
        serde_json::from_slice(&run(dir.path(), &["plan", "--json"], "").stdout).unwrap();
    assert!(validator.is_valid(&noop));
    assert_eq!(noop["summary"]["unchanged"], fresh["summary"]["add"]);
    // A plan that isn't a plan fails the schema (the schema constrains something).
    let broken = serde_json::json!({ "format_version": "one", "stack": 3 });
    assert!(!validator.is_valid(&broken));
}

#[test]
fn graph_command_prints_dot_and_mermaid() {
    let dir = tempfile::tempdir().unwrap();
    let dot = stdout(&run(dir.path(), &["graph"], ""));
    assert!(dot.starts_with("digraph \"local\" {"), "{dot}");
    assert!(
        dot.contains("\"aws_subnet.public-a\" -> \"aws_vpc.main\";"),
        "{dot}"
    );
    let mermaid = stdout(&run(dir.path(), &["graph", "--format", "mermaid"], ""));
    assert!(mermaid.starts_with("flowchart RL"), "{mermaid}");
}

pub(crate) fn args(dir: &Path, extra: &[&str]) -> Args {
    let sandbox = dir.join("sandbox").display().to_string();
    let audit = dir.join("audit.jsonl").display().to_string();
    let mut v = vec![
        "production",
        "--sandbox-dir",
        sandbox.as_str(),
        "--audit-file",
        audit.as_str(),
        "--target",
        "sandbox",
    ];
    v.extend_from_slice(extra);
    Args::parse_from(v)
}

#[tokio::test]
async fn an_invalid_stack_reports_everything_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Stack::new("broken");
    let vpc = s.add(Vpc::new("main").cidr("10.0.0.0/8"));
    s.add(
        Subnet::new("a")
            .vpc(&vpc)
            .cidr("10.1.0.0/24")
            .az("us-east-1a"),
    );
    s.add(Subnet::new("b").vpc(&vpc).cidr("10.1.0.0/25"));
    for cmd in [vec!["plan"], vec!["apply", "--auto-approve"]] {
        let err = execute(&args(dir.path(), &cmd), &s)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "stack \"broken\" is invalid: 3 problems found (nothing was read or changed):"
            ),
            "{err}"
        );
        assert!(
            err.contains("aws_subnet.b: field `availability_zone`: is required"),
            "{err}"
        );
        assert!(
            err.contains("`10.0.0.0/8`: AWS allows prefixes from /16 to /28, got /8"),
            "{err}"
        );
        assert!(err.contains("aws_subnet.b: field `cidr_block`: `10.1.0.0/25` overlaps aws_subnet.a (10.1.0.0/24) in the same VPC"), "{err}");
    }
    assert!(
        !dir.path().join("sandbox").exists(),
        "the sandbox was never opened"
    );
}

/// The deploy program's outcome for a command: its exit status, or its error message.
async fn status(args: &Args, stack: &Stack) -> Result<Exit, String> {
    execute(args, stack).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn removing_a_resource_plans_its_deletion_and_protection_blocks_apply() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Stack::new("rm");
    let vpc = s.add(Vpc::new("main").cidr("10.0.0.0/16").protect());
    s.add(
        Subnet::new("a")
            .vpc(&vpc)
            .cidr("10.0.1.0/24")
            .az("us-east-1a"),
    );
    s.add(
        Subnet::new("b")
            .vpc(&vpc)
            .cidr("10.0.2.0/24")
            .az("us-east-1b"),
    );
    s.add(
        Subnet::new("c")
            .vpc(&vpc)
            .cidr("10.0.3.0/24")
            .az("us-east-1c"),
    );
    assert_eq!(
        status(&args(dir.path(), &["apply", "--auto-approve"]), &s).await,
        Ok(Exit::Success)
    );
    let mut smaller = s.clone();
    smaller.remove(&"aws_subnet.c".parse().unwrap());
    assert_eq!(
        status(
            &args(dir.path(), &["plan", "--detailed-exitcode"]),
            &smaller
        )
        .await,
        Ok(Exit::ChangesPending)
    );
    assert_eq!(
        status(&args(dir.path(), &["apply", "--auto-approve"]), &smaller).await,
        Ok(Exit::Success)
    );
    assert_eq!(
        status(
            &args(dir.path(), &["plan", "--detailed-exitcode"]),
            &smaller
        )
        .await,
        Ok(Exit::Success)
    );
    // Destroying the protected VPC is refused without --allow-destroy, and nothing is touched.
    let err = status(&args(dir.path(), &["destroy", "--auto-approve"]), &smaller)
        .await
        .unwrap_err();
    assert!(err.contains("the plan has errors"), "{err}");
    assert_eq!(
        status(
            &args(dir.path(), &["plan", "--detailed-exitcode"]),
            &smaller
        )
        .await,
        Ok(Exit::Success)
    );
    assert_eq!(
        status(
            &args(
                dir.path(),
                &[
                    "destroy",
                    "--auto-approve",
                    "--allow-destroy",
                    "aws_vpc.main"
                ]
            ),
            &smaller
        )
        .await,
        Ok(Exit::Success)
    );
    assert_eq!(
        status(
            &args(dir.path(), &["plan", "--detailed-exitcode"]),
            &smaller
        )
        .await,
        Ok(Exit::ChangesPending),
        "everything is gone: a create is pending"
    );
}

/// A protected resource blocks a destroy: the engine's error says how to lift it in the
/// stack's terms (no flags), the deploy program adds the flag that allows it, and that flag works.
#[test]
fn a_protected_resource_blocks_destroy_and_the_program_names_the_flag_that_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let a = run(dir.path(), &["apply", "--auto-approve"], "");
    assert_eq!(
        a.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&a.stderr)
    );

    let d = run(dir.path(), &["destroy", "--auto-approve"], "");
    assert_eq!(d.status.code(), Some(1));
    let text = stdout(&d);
    assert!(
        text.contains(
            "\nError: aws_vpc.main is protected and would be destroyed; remove `.protect()` from \
             its declaration, or allow destroying it if this is intended\n"
        ),
        "{text}"
    );
    assert!(
        text.ends_with(
            "\nIf this is intended, run `destroy` with `--allow-destroy aws_vpc.main`.\n"
        ),
        "{text}"
    );

    // The plan's own errors (JSON) are the engine's: no flags.
    let j = run(dir.path(), &["plan", "--destroy", "--json"], "");
    let plan: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    let errors: Vec<&str> = plan["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(!errors[0].contains("--"), "{errors:?}");

    let ok = run(
        dir.path(),
        &[
            "destroy",
            "--auto-approve",
            "--allow-destroy",
            "aws_vpc.main",
        ],
        "",
    );
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

/// A held lock: apply exits 1 naming the holder and the exact command line that breaks it
/// (the engine's own message names no flags); that command works, and the apply then runs.
#[tokio::test]
async fn a_held_lock_names_the_force_unlock_command_that_breaks_it() {
    use infra_core::provider::{LockInfo, Provider};
    let dir = tempfile::tempdir().unwrap();
    let holder = LockInfo::for_this_process("apply");
    infra::sandbox(dir.path().join("sandbox"), "aws")
        .unwrap()
        .lock("local", &holder)
        .await
        .unwrap();
    let o = run(dir.path(), &["apply", "--auto-approve"], "");
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("Error: "))
        .unwrap_or_else(|| panic!("an error line in:\n{err}"));
    let unlock = format!(
        "{} --sandbox-dir {} force-unlock",
        example_binary().display(),
        dir.path().join("sandbox").display()
    );
    assert_eq!(
        line,
        format!(
            "Error: stack \"local\" is locked by {holder}. If that run is gone (killed, crashed), \
             break the lock with `{unlock}`"
        )
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap_or_default(),
        "",
        "nothing was applied"
    );

    // The command as printed (temporary paths need no quoting).
    let words: Vec<&str> = unlock.split(' ').collect();
    let broke = Command::new(words[0])
        .args(&words[1..])
        .env("INFRA_AUDIT_LOG", dir.path().join("audit.jsonl"))
        .env_remove("INFRA_SANDBOX_DIR")
        .env_remove("INFRA_TARGET")
        .env_remove("INFRA_ENV")
        .env("INFRA_TEST_IMAGE", "sha256:aaaa")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&broke.stderr);
    assert_eq!(broke.status.code(), Some(0), "{said}");
    assert!(
        said.contains(&format!(
            "Broke the lock of stack \"local\" in provider `aws`, held by {holder}"
        )),
        "{said}"
    );
    // The broken lock is in the audit trail: whose it was, and who broke it.
    let audit = crate::audit::audit_lines(&dir.path().join("audit.jsonl"));
    let unlocks: Vec<&serde_json::Value> = audit
        .iter()
        .filter(|l| l["event"] == "force_unlock")
        .collect();
    assert_eq!(unlocks.len(), 1, "{audit:#?}");
    assert_eq!(unlocks[0]["holder"], holder.holder.as_str());
    assert_eq!(unlocks[0]["operation"], "apply");
    assert_eq!(unlocks[0]["provider"], "aws");
    assert_eq!(unlocks[0]["stack"], "local");
    assert!(
        unlocks[0]["actor"]["os_user"].is_string(),
        "{:#}",
        unlocks[0]
    );
    let again = run(dir.path(), &["apply", "--auto-approve"], "");
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn watch_converges_then_finds_nothing_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let w = run(
        dir.path(),
        &["watch", "--iterations", "2", "--interval", "1"],
        "",
    );
    let err = String::from_utf8_lossy(&w.stderr).to_string();
    assert_eq!(w.status.code(), Some(0), "{err}");
    let runs: Vec<&str> = err.lines().filter(|l| l.starts_with("watch #")).collect();
    assert_eq!(runs.len(), 2, "{err}");
    assert!(runs[0].starts_with("watch #1: Apply complete!"), "{err}");
    assert_eq!(runs[1], "watch #2: no changes", "{err}");
}

#[test]
fn watch_gives_up_after_consecutive_failures_with_exit_1_and_a_final_line() {
    let dir = tempfile::tempdir().unwrap();
    // port 9 (discard) on loopback: nothing listens, every read fails at once
    let out = Command::new(example_binary())
        .args([
            "--target",
            "live",
            "--only",
            "aws",
            "watch",
            "--give-up-after",
            "2",
            "--interval",
            "1",
        ])
        .env("INFRA_SANDBOX_DIR", dir.path().join("sandbox"))
        .env("INFRA_AUDIT_LOG", dir.path().join("audit.jsonl"))
        .env_remove("INFRA_TARGET")
        .env_remove("INFRA_ENV")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("watch #1: cannot reach http://127.0.0.1:9")),
        "{err}"
    );
    assert!(
        lines.contains(&"watch #1: 1 failed run(s) in a row; next run in 2 s"),
        "the wait doubles after a failure: {err}"
    );
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("Error: watch gave up: 2 runs failed in a row")),
        "{err}"
    );
    assert!(!err.contains("watch #3"), "{err}");
}

#[test]
fn plan_format_markdown_is_a_pull_request_comment_and_format_json_is_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = |args: &[&str]| {
        let o = run(dir.path(), args, "");
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        stdout(&o)
    };
    let md = out(&["plan", "--format", "markdown"]);
    assert!(md.starts_with("## Plan for stack `local`\n"), "{md}");
    assert!(
        md.contains("| **Total** |") && md.contains("<details>"),
        "{md}"
    );
    assert!(md.len() <= infra::core::render::GITHUB_COMMENT_LIMIT);
    // `--json` stays, as `--format json`; text stays the default.
    let json = out(&["plan", "--format", "json"]);
    assert_eq!(json, out(&["plan", "--json"]));
    serde_json::from_str::<serde_json::Value>(&json).unwrap();
    assert_eq!(out(&["plan", "--format", "text"]), out(&["plan"]));
    // `apply` prints the text plan whatever `plan` would.
    let applied = out(&["apply", "--auto-approve"]);
    assert!(
        applied.contains(" to add, 0 to change, 0 to destroy."),
        "{applied}"
    );
    assert!(applied.contains("Apply complete!"), "{applied}");
    let none = out(&["plan", "--format", "markdown"]);
    assert!(
        none.contains("**No changes.** Stack `local` matches its declaration"),
        "{none}"
    );
    assert!(!none.contains("<details>"), "{none}");
}

#[test]
fn json_and_another_plan_format_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &["plan", "--json", "--format", "markdown"], "");
    assert_eq!(o.status.code(), Some(1), "a usage error, never 2");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("`--json` asks for `--format json`, not `--format markdown`"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
    let ok = |argv: &[&str]| {
        Args::try_from_argv(argv.iter().copied())
            .unwrap()
            .plan_format()
    };
    use infra::cli::PlanFormat;
    assert_eq!(
        ok(&["p", "plan", "--json", "--format", "json"]),
        PlanFormat::Json
    );
    assert_eq!(ok(&["p", "--json", "plan"]), PlanFormat::Json);
    assert_eq!(ok(&["p", "plan"]), PlanFormat::Text);
    assert_eq!(ok(&["p", "--json", "apply"]), PlanFormat::Json);
    assert_eq!(ok(&["p", "apply"]), PlanFormat::Text);
}
