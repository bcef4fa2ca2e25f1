//! The audit trail (`--audit-file`): who applied which plan, the field diff with secrets as
//! digests, the result and the duration of every change; applies with suppressed policy
//! findings; every line valid against `schema --of audit`.

use std::path::Path;

use infra::cli::{execute, Exit};
use infra::prelude::*;
use infra::swarm::SwarmSecret;
use sha2::{Digest, Sha256};

use crate::cli::{args, run};

/// The audit file's lines, parsed.
pub(crate) fn audit_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect()
}

fn audit_validator(dir: &Path) -> jsonschema::Validator {
    let o = run(dir, &["schema", "--of", "audit"], "");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let schema: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn assert_valid(validator: &jsonschema::Validator, line: &serde_json::Value) {
    let errors: Vec<String> = validator.iter_errors(line).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?} in {line:#}");
}

/// The deploy program's apply on the sandbox: one `change` line per operation, naming who
/// (the OS user and host the program ran as), the digest of the plan `plan --json` printed,
/// the kind, provider and field diff, the result and the duration; valid against the schema.
#[test]
fn every_change_says_who_applied_which_plan_what_changed_and_how_it_ended() {
    let dir = tempfile::tempdir().unwrap();
    let validator = audit_validator(dir.path());
    let plan = run(dir.path(), &["plan", "--json"], "");
    assert_eq!(plan.status.code(), Some(0), "{plan:?}");
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&plan.stdout)));

    let applied = std::process::Command::new(infra_test_support::example_binary("production"))
        .args(["apply", "--auto-approve"])
        .env("INFRA_SANDBOX_DIR", dir.path().join("sandbox"))
        .env("INFRA_AUDIT_LOG", dir.path().join("audit.jsonl"))
        .env_remove("INFRA_TARGET")
        .env_remove("INFRA_ENV")
        .env("INFRA_TEST_IMAGE", "sha256:aaaa")
        .env("USER", "auditor")
        .env("HOSTNAME", "audit-host")
        .output()
        .unwrap();
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let added: usize = serde_json::from_slice::<serde_json::Value>(&plan.stdout).unwrap()["summary"]
        ["add"]
        .as_u64()
        .unwrap() as usize;

    let lines = audit_lines(&dir.path().join("audit.jsonl"));
    let changes: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["event"] == "change").collect();
    assert_eq!(
        changes.len(),
        added,
        "one change line per create: {lines:#?}"
    );
    for line in &lines {
        assert_valid(&validator, line);
    }
    for c in &changes {
        assert_eq!(c["actor"]["os_user"], "auditor", "{c:#}");
        assert_eq!(c["actor"]["host"], "audit-host", "{c:#}");
        assert!(c["actor"]["pid"].as_u64().unwrap() > 0, "{c:#}");
        assert_eq!(c["plan_digest"], digest.as_str(), "the plan printed: {c:#}");
        assert_eq!(c["op"], "create", "{c:#}");
        assert_eq!(c["status"], "succeeded", "{c:#}");
        assert!(c["duration_ms"].is_u64(), "{c:#}");
        assert!(c["id"].is_string(), "{c:#}");
        assert!(
            ["aws", "swarm"].contains(&c["provider"].as_str().unwrap()),
            "{c:#}"
        );
        assert!(
            c["kind"].as_str().unwrap().starts_with("aws_")
                || c["kind"].as_str().unwrap().starts_with("swarm_"),
            "{c:#}"
        );
        let fields = c["fields"].as_array().unwrap();
        assert!(!fields.is_empty(), "a create lists its fields: {c:#}");
    }
    // The VPC's line carries its declared CIDR, as the plan showed it.
    let vpc = changes
        .iter()
        .find(|c| c["address"] == "aws_vpc.main")
        .expect("the VPC's change");
    let cidr = vpc["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "cidr_block")
        .unwrap_or_else(|| panic!("cidr_block in {vpc:#}"));
    assert!(cidr["after"].is_string(), "{cidr:#}");
    assert!(
        cidr.get("before").is_none(),
        "nothing before a create: {cidr:#}"
    );

    // Lines that are not one of the kinds fail the schema (it constrains something).
    let mut wrong = (*changes[0]).clone();
    wrong["event"] = "renamed".into();
    assert!(!validator.is_valid(&wrong));
    let mut no_actor = (*changes[0]).clone();
    no_actor.as_object_mut().unwrap().remove("actor");
    assert!(!validator.is_valid(&no_actor));
}

const SECRET: &str = "audit-secret-value-7f3c9a";

fn stack_with_a_suppression() -> Stack {
    let mut s = Stack::new("audited");
    let vpc = s.add(Vpc::new("main").cidr("10.0.0.0/16"));
    s.add(
        SecurityGroup::new("ssh")
            .vpc(&vpc)
            .ingress(Rule::tcp(22).cidr("0.0.0.0/0"))
            .suppress("SEC001", "the lab's jump host, closed by the audit test")
            .suppress("SEC002", "the lab's jump host, closed by the audit test"),
    );
    let token = s.add(SwarmSecret::new("token").value(SECRET.as_bytes().to_vec()));
    s.add(
        SwarmService::new("app")
            .image("sha256:1111")
            .secret(&token, "token"),
    );
    s
}

/// An apply that goes ahead with suppressed policy findings says so, once per finding and
/// apply, with the reason; a secret's value is a digest in the diff, never in clear.
#[tokio::test]
async fn suppressed_findings_are_audited_and_secrets_are_digests() {
    let dir = tempfile::tempdir().unwrap();
    let s = stack_with_a_suppression();
    let planned = infra::testing::plan(&s);
    let suppressed: Vec<&infra_core::policy::Finding> = planned
        .plan()
        .policy
        .findings
        .iter()
        .filter(|f| f.suppressed.is_some())
        .collect();
    assert!(
        !suppressed.is_empty(),
        "the stack has suppressed findings: {:#?}",
        planned.plan().policy
    );
    let exit = execute(&args(dir.path(), &["apply", "--auto-approve"]), &s)
        .await
        .map_err(|e| e.to_string());
    assert_eq!(exit, Ok(Exit::Success));

    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(!text.contains(SECRET), "the secret in clear:\n{text}");
    let lines = audit_lines(&dir.path().join("audit.jsonl"));
    let entries: Vec<(&str, &str)> = lines
        .iter()
        .filter(|l| l["event"] == "policy_suppressed")
        .map(|l| (l["rule"].as_str().unwrap(), l["address"].as_str().unwrap()))
        .collect();
    let expected: Vec<(&str, &str)> = suppressed
        .iter()
        .map(|f| (f.rule.as_str(), f.address.as_str()))
        .collect();
    assert_eq!(entries, expected, "{lines:#?}");
    for l in lines.iter().filter(|l| l["event"] == "policy_suppressed") {
        assert_eq!(
            l["reason"], "the lab's jump host, closed by the audit test",
            "{l:#}"
        );
        assert_eq!(l["stack"], "audited");
        assert!(l["plan_digest"].as_str().unwrap().starts_with("sha256:"));
    }
    let secret = lines
        .iter()
        .find(|l| l["event"] == "change" && l["kind"] == "swarm_secret")
        .unwrap_or_else(|| panic!("the secret's change in {lines:#?}"));
    let data = secret["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["sensitive"] == true)
        .unwrap_or_else(|| panic!("a sensitive field in {secret:#}"));
    assert!(
        data["after"].to_string().contains("sha256"),
        "a digest, not the value: {data:#}"
    );

    // A second apply with nothing to do audits nothing.
    let before = lines.len();
    let again = execute(&args(dir.path(), &["apply", "--auto-approve"]), &s)
        .await
        .map_err(|e| e.to_string());
    assert_eq!(again, Ok(Exit::Success));
    assert_eq!(audit_lines(&dir.path().join("audit.jsonl")).len(), before);
}
