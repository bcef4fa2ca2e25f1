//! `plan --drift-only`: a scheduled drift check. It lists only the objects changed outside
//! infra since their last apply (not the code's own pending changes), and exits 2 when there
//! is drift, 0 when there is none.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use infra::core::sandbox::SandboxProvider;
use infra::core::Value;
use infra_test_support::{example_binary, show};

/// The deploy program on the sandbox under `dir`, its services on `image`.
fn run(dir: &Path, image: &str, args: &[&str]) -> Output {
    Command::new(example_binary("production"))
        .args(args)
        .current_dir(dir)
        .env("INFRA_SANDBOX_DIR", dir.join("sandbox"))
        .env_remove("INFRA_AUDIT_LOG")
        .env_remove("INFRA_TARGET")
        .env_remove("INFRA_ENV")
        .env_remove("INFRA_STACK")
        .env("INFRA_TEST_IMAGE", image)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn drift_only_lists_hand_made_changes_not_the_codes_and_exits_2_only_on_drift() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = run(d, "sha256:aaaa", &["apply", "--auto-approve"]);
    assert_eq!(a.status.code(), Some(0), "{}", show(&a));

    // Nothing changed: no drift, exit 0.
    let o = run(d, "sha256:aaaa", &["plan", "--drift-only"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(stdout(&o).starts_with("No drift."), "{}", show(&o));

    // A pending change in code (a new image) is not drift either.
    let o = run(d, "sha256:bbbb", &["plan", "--drift-only"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(!stdout(&o).contains("image"), "{}", show(&o));

    // Someone changes the VPC's DNS setting by hand.
    let aws = SandboxProvider::open(d.join("sandbox"), "aws").unwrap();
    let vpc = aws
        .objects()
        .unwrap()
        .into_iter()
        .find(|o| o.kind == "aws_vpc")
        .unwrap();
    let was = vpc.props["enable_dns_hostnames"].clone();
    let now = Value::Bool(was.as_bool() != Some(true));
    aws.tamper(&vpc.id, "enable_dns_hostnames", now.clone())
        .unwrap();

    let o = run(d, "sha256:bbbb", &["plan", "--drift-only"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let text = stdout(&o);
    assert!(
        text.starts_with("Drift: 1 object changed outside infra")
            && text.contains(&format!("# aws_vpc.main ({})", vpc.id))
            && text.contains(&format!(
                "enable_dns_hostnames is {now}, declared and last applied {was}"
            ))
            && !text.contains("image"),
        "{text}"
    );
    let o = run(d, "sha256:bbbb", &["plan", "--drift-only", "--json"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(json["drifted"], 1, "{json:#}");
    assert_eq!(json["drift"][0]["address"], "aws_vpc.main");
    assert_eq!(
        json["drift"][0]["fields"][0]["name"],
        "enable_dns_hostnames"
    );
    let o = run(
        d,
        "sha256:bbbb",
        &["plan", "--drift-only", "--format", "markdown"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(stdout(&o).contains("### Drift"), "{}", show(&o));

    // The full plan shows both, the drift in its own section, the code's change among the
    // actions; the drift field is marked there too.
    let o = run(d, "sha256:bbbb", &["plan"]);
    let text = stdout(&o);
    let (drift, actions) = text.split_once("infra will perform").unwrap();
    assert!(
        drift.contains("aws_vpc.main") && !drift.contains("image"),
        "{text}"
    );
    assert!(
        actions.contains("# drift: changed outside infra") && actions.contains("image"),
        "{text}"
    );

    // The apply puts it back: no drift any more.
    let a = run(d, "sha256:bbbb", &["apply", "--auto-approve"]);
    assert_eq!(a.status.code(), Some(0), "{}", show(&a));
    let o = run(d, "sha256:bbbb", &["plan", "--drift-only"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
}

#[test]
fn drift_only_conflicts_with_saving_or_destroying() {
    let dir = tempfile::tempdir().unwrap();
    for extra in [["--out", "p.json"].as_slice(), ["--destroy"].as_slice()] {
        let mut args = vec!["plan", "--drift-only"];
        args.extend_from_slice(extra);
        let o = run(dir.path(), "sha256:aaaa", &args);
        // A usage error is an error (1), never the "drift found" status (2).
        assert_eq!(o.status.code(), Some(1), "{}", show(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("cannot be used with"),
            "{}",
            show(&o)
        );
    }
}
