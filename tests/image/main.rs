//! The node image's Packer template (`image/node.pkr.hcl`), parsed with `hcl-rs` (Packer itself
//! can't be installed here), against the production stack (examples/production):
//!
//! * the image's name matches the stack's `Ami` lookup pattern (in every env) and the lookup's
//!   owner is the building account (`self`);
//! * the agent is installed at the path the swarm nodes' user data runs, and its systemd unit
//!   runs that same path with `run`;
//! * every file a provisioner uploads or runs exists in the repository (the agent binary is the
//!   root package's `infra-node` build output), the upload destinations are what the install
//!   script installs from, and the script is valid `sh`;
//! * `.ci/moto-node-image`, the stand-in build for moto, says what it stands in for and
//!   registers the same name.
//!
//! What this can't prove: that Packer accepts the template (no `packer validate` here) and that
//! the image boots; both need Packer and an AWS account.

#[allow(dead_code)]
#[path = "../../examples/production/stack.rs"]
mod example;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hcl::{Block, Body, Expression};
use infra::cli::{Context, Target};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn template() -> Body {
    let text = std::fs::read_to_string(root().join("image/node.pkr.hcl")).unwrap();
    hcl::parse(&text).expect("image/node.pkr.hcl is valid HCL")
}

fn blocks<'a>(body: &'a Body, ident: &str) -> Vec<&'a Block> {
    body.blocks().filter(|b| b.identifier() == ident).collect()
}

fn block<'a>(body: &'a Body, ident: &str, labels: &[&str]) -> &'a Block {
    let found: Vec<&Block> = blocks(body, ident)
        .into_iter()
        .filter(|b| {
            b.labels()
                .iter()
                .map(|l| l.as_str())
                .eq(labels.iter().copied())
        })
        .collect();
    assert_eq!(found.len(), 1, "one {ident} {labels:?} block");
    found[0]
}

fn attr<'a>(body: &'a Body, key: &str) -> &'a Expression {
    body.attributes()
        .find(|a| a.key() == key)
        .map(|a| a.expr())
        .unwrap_or_else(|| panic!("no attribute {key}"))
}

/// A string attribute's text; `${...}` interpolations are kept as written.
fn text(expr: &Expression) -> String {
    match expr {
        Expression::String(s) => s.clone(),
        Expression::TemplateExpr(t) => t.to_string().trim_matches('"').to_string(),
        other => panic!("not a string: {other:?}"),
    }
}

/// An expression as written (`local.image_name`).
fn written(expr: &Expression) -> String {
    hcl::format::to_string(expr).unwrap()
}

fn locals(body: &Body) -> BTreeMap<String, Expression> {
    blocks(body, "locals")
        .iter()
        .flat_map(|b| {
            b.body()
                .attributes()
                .map(|a| (a.key().to_string(), a.expr().clone()))
        })
        .collect()
}

/// Replaces `${local.x}` and `${path.root}` in `s` (the only interpolations the paths use).
fn resolve(s: &str, locals: &BTreeMap<String, Expression>) -> String {
    let mut out = s.replace("${path.root}", "image");
    for (k, v) in locals {
        if let Expression::String(value) = v {
            out = out.replace(&format!("${{local.{k}}}"), value);
        }
    }
    assert!(!out.contains("${"), "unresolved interpolation in {s:?}");
    out
}

/// Glob matching with `*` (EC2's name filter, as the stack's lookup uses it).
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

fn production(env: &str) -> infra::prelude::Stack {
    example::stack(&Context {
        env: env.into(),
        target: Target::Sandbox,
        stack_name: None,
    })
}

#[test]
fn the_glob_matcher_is_strict() {
    assert!(glob(
        "infra-swarm-node-*",
        "infra-swarm-node-20260101120000"
    ));
    assert!(!glob("infra-swarm-node-*", "infra-swarm-nodes-20260101"));
    assert!(!glob("infra-swarm-node-*", "debian-12-amd64-20260101"));
    assert!(glob("a*b*c", "a-x-b-y-c") && !glob("a*b*c", "a-x-c-y-b"));
}

#[test]
fn the_image_name_matches_the_stacks_ami_lookup() {
    let body = template();
    let locals = locals(&body);
    let source = block(&body, "source", &["amazon-ebs", "swarm_node"]);
    assert_eq!(written(attr(source.body(), "ami_name")), "local.image_name");
    let name = text(&locals["image_name"]);
    let prefix = name.split("${").next().unwrap();
    assert_eq!(prefix, "infra-swarm-node-", "{name}");
    assert!(
        name.contains("formatdate(\"YYYYMMDDhhmmss\", timestamp())"),
        "a new name per build: {name}"
    );
    let example_name = format!("{prefix}20260101120000");

    for env in ["local", "production"] {
        let stack = production(env);
        let amis: Vec<_> = stack
            .resources()
            .iter()
            .filter(|r| r.address.kind() == "aws_ami")
            .collect();
        assert_eq!(amis.len(), 1, "{env}: one AMI lookup");
        let pattern = amis[0].get_str("name_pattern").unwrap();
        assert!(
            glob(pattern, &example_name),
            "{env}: {example_name} does not match {pattern}"
        );
        assert!(
            !glob(pattern, "debian-12-amd64-20260101-1234"),
            "{env}: the base image would match"
        );
        let owners = amis[0].get("owners").and_then(|o| match o {
            infra::core::Value::List(l) => {
                Some(l.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>())
            }
            _ => None,
        });
        assert_eq!(
            owners,
            Some(vec!["self"]),
            "{env}: the image is the account's own"
        );
    }
}

#[test]
fn the_agent_is_installed_where_the_user_data_runs_it() {
    let body = template();
    let locals = locals(&body);
    let agent_path = text(&locals["agent_path"]);

    // the swarm nodes' user data: `exec <path> run`
    for env in ["local", "production"] {
        let stack = production(env);
        let mut nodes = 0;
        for lt in stack
            .resources()
            .iter()
            .filter(|r| r.address.kind() == "aws_launch_template")
        {
            let user_data = lt.get_str("user_data").expect("user data");
            let runs: Vec<&str> = user_data
                .lines()
                .filter_map(|l| l.trim().strip_prefix("exec "))
                .filter_map(|cmd| cmd.strip_suffix(" run"))
                .collect();
            if lt.address.to_string().contains("bastion") {
                assert!(
                    runs.is_empty(),
                    "{env}: the bastion runs no agent: {user_data}"
                );
            } else {
                assert_eq!(
                    runs,
                    vec![agent_path.as_str()],
                    "{env} {}: {user_data}",
                    lt.address
                );
                nodes += 1;
            }
        }
        assert_eq!(
            nodes, 2,
            "{env}: the managers' and the workers' launch templates"
        );
    }

    // the unit runs the same command, after Docker
    let unit_name = text(&locals["unit_name"]);
    let unit_path = text(&locals["unit_path"]);
    assert_eq!(
        Path::new(&unit_path).file_name().unwrap().to_str(),
        Some(unit_name.as_str())
    );
    let unit = std::fs::read_to_string(root().join("image/files").join(&unit_name)).unwrap();
    let exec_start: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .collect();
    assert_eq!(exec_start, vec![format!("{agent_path} run")]);
    assert!(unit
        .lines()
        .any(|l| l.starts_with("After=") && l.contains("docker.service")));
    assert!(unit.contains("WantedBy=multi-user.target"));
}

#[test]
fn the_provisioners_use_files_of_the_repository() {
    let body = template();
    let locals = locals(&body);
    let build = block(&body, "build", &[]);
    let variables: BTreeMap<String, String> = blocks(&body, "variable")
        .iter()
        .map(|v| {
            (
                v.labels()[0].as_str().to_string(),
                text(attr(v.body(), "default")),
            )
        })
        .collect();

    let mut uploads = BTreeMap::new();
    for p in blocks(build.body(), "provisioner")
        .iter()
        .filter(|p| p.labels()[0].as_str() == "file")
    {
        let source = attr(p.body(), "source");
        let source = match written(source).as_str() {
            "var.node_agent_binary" => {
                // a build output, not a file in the repository: the root package's infra-node
                let default = &variables["node_agent_binary"];
                assert_eq!(default, "target/release/infra-node");
                assert!(root().join("src/bin/infra-node.rs").is_file());
                default.clone()
            }
            _ => {
                let path = resolve(&text(source), &locals);
                assert!(
                    root().join(&path).is_file(),
                    "{path} is not in the repository"
                );
                path
            }
        };
        uploads.insert(text(attr(p.body(), "destination")), source);
    }
    assert_eq!(uploads.len(), 2, "{uploads:?}");

    let shells: Vec<_> = blocks(build.body(), "provisioner")
        .into_iter()
        .filter(|p| p.labels()[0].as_str() == "shell")
        .collect();
    assert_eq!(shells.len(), 1);
    let script = resolve(&text(attr(shells[0].body(), "script")), &locals);
    let script_path = root().join(&script);
    assert!(script_path.is_file(), "{script} is not in the repository");
    let env: BTreeMap<String, String> = match attr(shells[0].body(), "environment_vars") {
        Expression::Array(items) => items
            .iter()
            .map(|i| {
                let kv = resolve(&text(i), &locals);
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect(),
        other => panic!("environment_vars: {other:?}"),
    };
    assert_eq!(env["AGENT_PATH"], text(&locals["agent_path"]));
    assert_eq!(env["UNIT_PATH"], text(&locals["unit_path"]));
    // the script installs from where the file provisioners uploaded to
    assert_eq!(uploads[&env["AGENT_SOURCE"]], "target/release/infra-node");
    assert!(uploads[&env["UNIT_SOURCE"]].ends_with(&format!("files/{}", env["UNIT_NAME"])));

    let sh = std::fs::read_to_string(&script_path).unwrap();
    for line in [
        r#"install -o root -g root -m 0755 "$AGENT_SOURCE" "$AGENT_PATH""#,
        r#"install -o root -g root -m 0644 "$UNIT_SOURCE" "$UNIT_PATH""#,
        r#"systemctl enable "$UNIT_NAME""#,
        "systemctl enable docker.service",
    ] {
        assert!(
            sh.lines().any(|l| l.trim() == line),
            "{script} lacks `{line}`"
        );
    }
    assert!(
        sh.contains("apt-get install") && sh.contains("docker.io"),
        "{script} installs Docker"
    );
    let syntax = std::process::Command::new("sh")
        .arg("-n")
        .arg(&script_path)
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
}

/// Elasticsearch's bootstrap check refuses to start with `vm.max_map_count` below 262144 (the
/// kernel's default is 65530): the image sets it for every boot, on every node (the service is
/// pinned to a manager by a label, which any node could carry).
#[test]
fn the_image_raises_the_map_count_elasticsearch_needs() {
    let sh = std::fs::read_to_string(root().join("image/scripts/install-node.sh")).unwrap();
    let line = sh
        .lines()
        .map(str::trim)
        .find(|l| !l.starts_with('#') && l.contains("vm.max_map_count"))
        .expect("install-node.sh sets vm.max_map_count");
    let (setting, file) = line
        .strip_prefix("echo ")
        .and_then(|l| l.split_once(" > "))
        .unwrap_or_else(|| panic!("`{line}`: expected `echo \"vm.max_map_count = N\" > FILE`"));
    assert!(
        file.starts_with("/etc/sysctl.d/") && file.ends_with(".conf"),
        "`{file}`: sysctl.d reads only *.conf files there, at every boot"
    );
    let value: u64 = setting
        .trim_matches('"')
        .split_once('=')
        .and_then(|(k, v)| (k.trim() == "vm.max_map_count").then(|| v.trim().parse().ok())?)
        .unwrap_or_else(|| panic!("`{setting}` is not `vm.max_map_count = N`"));
    assert!(value >= 262_144, "vm.max_map_count = {value} < 262144");
}

#[test]
fn the_moto_stand_in_says_what_it_stands_in_for() {
    let script = std::fs::read_to_string(root().join(".ci/moto-node-image")).unwrap();
    let comments: String = script
        .lines()
        .filter(|l| l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(comments.contains("image/node.pkr.hcl"), "{comments}");
    assert!(
        comments.contains("stand-in") || comments.contains("stands in"),
        "{comments}"
    );
    let name = text(&locals(&template())["image_name"]);
    let prefix = name.split("${").next().unwrap();
    assert!(
        script.contains(&format!("name = \"{prefix}\"")),
        "it registers {prefix}<date>"
    );
}
