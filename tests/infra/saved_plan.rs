//! Saved plans through the deploy program, on the sandbox: `plan --out FILE`, then `apply FILE`
//! applies exactly it (no prompt) and refuses, in one `Error:` paragraph naming what differs and
//! touching nothing, when it was applied already, an object was changed by hand, the
//! declaration or the flags differ, or the file is bad.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use infra::core::sandbox::SandboxProvider;
use infra::core::Value;
use infra_test_support::{example_binary, show};

/// The deploy program on the sandbox under `dir`, with the test image `image`.
fn run_image(dir: &Path, image: &str, args: &[&str]) -> Output {
    Command::new(example_binary("production"))
        .args(args)
        .current_dir(dir)
        .env("INFRA_SANDBOX_DIR", dir.join("sandbox"))
        .env("INFRA_AUDIT_LOG", dir.join("audit.jsonl"))
        .env_remove("INFRA_TARGET")
        .env_remove("INFRA_ENV")
        .env_remove("INFRA_STACK")
        .env("INFRA_TEST_IMAGE", image)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn run(dir: &Path, args: &[&str]) -> Output {
    run_image(dir, "sha256:aaaa", args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// The sandbox's journals, byte for byte: a refused apply leaves them as they were.
fn sandbox_state(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir.join("sandbox"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// `apply FILE` refused: exit 1, one `Error:` paragraph containing `expected`, nothing touched.
fn assert_refused(dir: &Path, o: &Output, before: &[(PathBuf, Vec<u8>)], expected: &str) {
    assert_eq!(o.status.code(), Some(1), "{}", show(o));
    let err = stderr(o);
    let line = err
        .lines()
        .find(|l| l.starts_with("Error: "))
        .unwrap_or_else(|| panic!("no Error: line\n{}", show(o)));
    assert!(
        line.starts_with("Error: refusing to apply the saved plan ")
            && line.contains(expected)
            && line.ends_with("review it, and apply that file"),
        "{line}"
    );
    assert_eq!(err.matches("Error:").count(), 1, "one paragraph: {err}");
    assert_eq!(sandbox_state(dir), before, "nothing touched: {line}");
}

#[test]
fn a_saved_plan_is_applied_exactly_once_without_a_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = run(d, &["plan", "--out", "plan.json", "--format", "markdown"]);
    assert_eq!(p.status.code(), Some(0), "{}", show(&p));
    assert!(stdout(&p).contains("| "), "the Markdown plan on stdout");
    assert!(
        stderr(&p)
            .contains("Saved the plan to plan.json. `apply plan.json` applies exactly this plan"),
        "{}",
        show(&p)
    );
    let file = std::fs::read_to_string(d.join("plan.json")).unwrap();
    for secret in ["local-only-es-password", "bG9jYWwtb25seS1lcy1wYXNzd29yZA"] {
        assert!(!file.contains(secret), "the plan file holds no secret");
    }

    // The file follows its printed schema.
    let schema: serde_json::Value =
        serde_json::from_slice(&run(d, &["schema", "--saved-plan"]).stdout).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert!(
        validator.is_valid(&doc),
        "{:?}",
        validator
            .iter_errors(&doc)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    assert!(!validator.is_valid(&serde_json::json!({ "format": "infra-saved-plan" })));
    let add = doc["phases"][0]["plan"]["summary"]["add"].as_u64().unwrap();
    assert!(add > 10, "{add}");

    // No prompt (stdin is closed), exactly the saved operations.
    let a = run(d, &["apply", "plan.json"]);
    assert_eq!(a.status.code(), Some(0), "{}", show(&a));
    assert!(
        stdout(&a).contains(&format!(
            "Apply complete! Resources: {add} added, 0 changed, 0 destroyed."
        )),
        "{}",
        show(&a)
    );
    let replan = run(d, &["plan", "--detailed-exitcode"]);
    assert_eq!(replan.status.code(), Some(0), "{}", show(&replan));

    // The second time: refused, saying it was applied.
    let before = sandbox_state(d);
    let again = run(d, &["apply", "plan.json"]);
    assert_refused(d, &again, &before, "has been applied");
    assert!(stderr(&again).contains("exists now and did not when the plan read"));

    // The refusal is in the audit trail, after the changes the first apply made with the
    // plan's digest: which file (by its digest), why, and who tried.
    let audit = crate::audit::audit_lines(&d.join("audit.jsonl"));
    let refused: Vec<&serde_json::Value> = audit
        .iter()
        .filter(|l| l["event"] == "plan_refused")
        .collect();
    assert_eq!(refused.len(), 1, "{audit:#?}");
    let r = refused[0];
    assert_eq!(r["file"], "plan.json", "{r:#}");
    assert!(
        r["reason"].as_str().unwrap().contains("has been applied"),
        "{r:#}"
    );
    let file = std::fs::read(d.join("plan.json")).unwrap();
    assert_eq!(
        r["plan_digest"],
        format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&file))
        )
        .as_str(),
        "{r:#}"
    );
    assert!(r["actor"]["host"].is_string(), "{r:#}");
    assert_eq!(
        audit.iter().filter(|l| l["event"] == "change").count() as u64,
        add,
        "one change line per create of the first apply: {audit:#?}"
    );
}

#[test]
fn a_hand_made_change_to_one_object_after_the_plan_refuses_naming_the_object_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(run(d, &["apply", "--auto-approve"]).status.code(), Some(0));
    // The pull request: a new image for the services.
    let p = run_image(d, "sha256:bbbb", &["plan", "--out", "plan.json"]);
    assert_eq!(p.status.code(), Some(0), "{}", show(&p));
    assert!(stdout(&p).contains("0 to add, 5 to change, 0 to destroy."));

    // Before the merge, someone adds a tag to the VPC by hand.
    let aws = SandboxProvider::open(d.join("sandbox"), "aws").unwrap();
    let vpc = aws
        .objects()
        .unwrap()
        .into_iter()
        .find(|o| o.kind == "aws_vpc")
        .unwrap();
    let mut tags = vpc.props["tags"].clone();
    if let Value::Map(m) = &mut tags {
        m.insert("owner".into(), Value::from("someone"));
    }
    aws.tamper(&vpc.id, "tags", tags).unwrap();
    let before = sandbox_state(d);
    let o = run_image(d, "sha256:bbbb", &["apply", "plan.json"]);
    assert_refused(
        d,
        &o,
        &before,
        &format!(
            "aws_vpc.main ({}) changed since the plan read it: its field `tags` is not what the plan read",
            vpc.id
        ),
    );
}

#[test]
fn bad_or_foreign_plan_files_are_refused_with_a_clear_error_and_nothing_touched() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = run(d, &["plan", "--out", "plan.json"]);
    assert_eq!(p.status.code(), Some(0), "{}", show(&p));
    let file = std::fs::read_to_string(d.join("plan.json")).unwrap();
    let write = |name: &str, content: &str| {
        std::fs::write(d.join(name), content).unwrap();
        name.to_string()
    };
    let mut edited: serde_json::Value = serde_json::from_str(&file).unwrap();
    edited["phases"][0]["plan"]["changes"][0]["action"] = "delete".into();
    let mut foreign: serde_json::Value = serde_json::from_str(&file).unwrap();
    foreign["format_version"] = 2.into();
    foreign["tool_version"] = "0.9.0".into();
    let other = run(d, &["--stack", "other", "plan", "--out", "other.json"]);
    assert_eq!(other.status.code(), Some(0), "{}", show(&other));
    let json_plan = stdout(&run(d, &["plan", "--json"]));

    let cases: Vec<(&str, Vec<String>, &str)> =
        vec![
        (
            "truncated",
            vec!["apply".into(), write("truncated.json", &file[..file.len() / 3])],
            "it was cut short (truncated)",
        ),
        (
            "edited",
            vec!["apply".into(), write("edited.json", &edited.to_string())],
            "the file was edited or damaged after `plan --out` wrote it",
        ),
        (
            "foreign version",
            vec!["apply".into(), write("foreign.json", &foreign.to_string())],
            "format version 2 (written by infra 0.9.0); this program (infra 0.1.0) reads version 1",
        ),
        (
            "other stack",
            vec!["apply".into(), "other.json".into()],
            "it is a plan of stack \"other\", and this is stack \"local\"",
        ),
        (
            "a plan --json document",
            vec!["apply".into(), write("plan-json.json", &json_plan)],
            "`plan --json` prints a plan to read; `plan --out FILE` saves one to apply",
        ),
        (
            "another environment",
            vec!["--env".into(), "staging".into(), "apply".into(), "plan.json".into()],
            "it was made with --env `local`, and this run has --env `staging`",
        ),
    ];
    for (case, args, expected) in cases {
        let before = sandbox_state(d);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run(d, &args);
        assert!(o.status.code() == Some(1), "{case}: {}", show(&o));
        assert_refused(d, &o, &before, expected);
    }
    // The declaration moved (another test image): named by resource and field.
    let before = sandbox_state(d);
    let o = run_image(d, "sha256:cccc", &["apply", "plan.json"]);
    assert_refused(
        d,
        &o,
        &before,
        "the declaration differs from the one it was made from: swarm_service.",
    );
    assert!(
        stderr(&o).contains("is declared differently"),
        "{}",
        show(&o)
    );
    // A missing file is one line too, and `--allow-destroy` can't change a saved plan.
    let missing = run(d, &["apply", "nowhere.json"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("cannot read the plan file nowhere.json"));
    let conflict = run(
        d,
        &["apply", "plan.json", "--allow-destroy", "aws_vpc.main"],
    );
    assert_eq!(conflict.status.code(), Some(1), "{}", show(&conflict));
    // Untouched, the file still applies.
    let a = run(d, &["apply", "plan.json"]);
    assert_eq!(a.status.code(), Some(0), "{}", show(&a));
}
