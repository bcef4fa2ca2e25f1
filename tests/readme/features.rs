//! The README tells a crate that only tests its stacks to depend on
//! `infra = { …, default-features = false, features = ["testing"] }`, so that it builds neither the
//! AWS SDK nor bollard. These tests keep that promise: they ask `cargo tree` (it resolves, it
//! builds nothing) for the normal dependencies of that combination.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The crates that only the live providers need: none may be in a test-only user's build.
const LIVE_ONLY: &[&str] = &["aws-sdk-", "aws-config", "aws-smithy-", "bollard"];

/// The crates only the deploy program (`live`) needs.
const DEPLOY_ONLY: &[&str] = &[
    "clap",
    "indicatif",
    "tracing-subscriber",
    "zip",
    "infra-node",
];

/// The names of the packages in the normal dependency tree of `package` with `args`.
fn tree(package: &str, args: &[&str]) -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(env!("CARGO"))
        .current_dir(root)
        .args([
            "tree",
            "--locked",
            "--offline",
            "-p",
            package,
            "-e",
            "normal",
        ])
        .args(["--prefix", "none", "--format", "{p}"])
        .args(args)
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo tree -p {package} {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn live_only(packages: &BTreeSet<String>) -> Vec<&String> {
    packages
        .iter()
        .filter(|p| LIVE_ONLY.iter().any(|l| p.starts_with(l)))
        .collect()
}

#[test]
fn a_test_only_user_builds_no_aws_sdk_and_no_bollard() {
    let packages = tree("infra", &["--no-default-features", "--features", "testing"]);
    // The kinds are there (a sandbox plan needs them), and the testing helpers' insta.
    for needed in ["infra-core", "infra-aws", "infra-swarm", "insta"] {
        assert!(packages.contains(needed), "{needed} missing: {packages:?}");
    }
    assert_eq!(live_only(&packages), Vec::<&String>::new());
    // Nor the deploy program's crates (its command line, progress bars, logs, artifacts).
    for deploy_only in DEPLOY_ONLY {
        assert!(
            !packages.contains(*deploy_only),
            "{deploy_only}: {packages:?}"
        );
    }
    for crate_ in ["infra-aws", "infra-swarm"] {
        let packages = tree(crate_, &["--no-default-features"]);
        assert_eq!(live_only(&packages), Vec::<&String>::new(), "{crate_}");
    }
}

#[test]
fn the_deploy_program_keeps_the_live_providers() {
    // The other side of the split, and proof that the names above are the ones cargo prints.
    let packages = tree("infra", &[]);
    let live = [
        "aws-sdk-ec2",
        "aws-sdk-eventbridge",
        "aws-config",
        "bollard",
    ];
    for needed in live.iter().chain(DEPLOY_ONLY) {
        assert!(packages.contains(*needed), "{needed} missing: {packages:?}");
    }
}

#[test]
fn the_readme_tells_test_only_users_to_turn_live_off() {
    let readme = include_str!("../../README.md");
    assert!(readme.contains(
        r#"infra = { path = "../infra", default-features = false, features = ["testing"] }"#
    ));
}
