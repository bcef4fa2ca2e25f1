//! Secrets never leave the process in the clear: a stack with a Swarm secret, an SSM
//! SecureString parameter and a launch template's user data (sensitive: it often carries join
//! tokens) is planned, applied, rotated
//! (new values), re-planned and destroyed through the deploy program, on the sandbox and live
//! (moto + the local swarm), with `INFRA_LOG=trace` in both `--log-format text` and `json` (so the
//! AWS SDK's, hyper's and bollard's own debug and trace logging is on), plus failing applies
//! (objects of the same name made by hand). The SSM parameter's value travels in a JSON body
//! (`PutParameter`), the others in form bodies. Everything the runs print (plan text, plan JSON,
//! reports, logs, error messages), the audit log, the sandbox's state files and every snapshot
//! under `tests/**/snapshots/` is searched for every secret value: plain, base64 (user data and
//! secret data are base64 on the wire, at any offset inside a larger text), and base64
//! percent-encoded (the AWS query protocol's form bodies). Zero hits.
//!
//! The deploy program here is this test binary itself: started with `INFRA_SAFETY_CHILD` set,
//! the test function runs `infra::cli::run_with` on the secret stack and exits with its code, so
//! its logging is set up exactly as a user's deploy program's is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use clap::Parser;
use infra::aws::SsmParameter;
use infra::cli::{Args, Context, Target};
use infra::core::Value;
use infra::prelude::*;
use infra::swarm::SwarmSecret;

use crate::support::{
    clean_env, files_under, moto, say, show, skip_or_fail, snapshot_files, swarm_missing,
    test_image, unique,
};

#[allow(dead_code)]
#[path = "../../examples/production/stack.rs"]
mod example;

const TEST: &str = "secrets::no_secret_value_appears_in_any_output";

/// The stack of the child deploy program, from its environment.
fn child_stack(_: &Context) -> Stack {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let mut s = Stack::new(var("INFRA_SAFETY_STACK"));
    s.add(
        LaunchTemplate::new("node")
            .image("ami-12c6146b")
            .instance_type("t3.micro")
            .user_data(&var("INFRA_SAFETY_USER_DATA")),
    );
    s.add(
        SsmParameter::secure_string(
            "join-token",
            &format!("/infra/{}/swarm/token", var("INFRA_SAFETY_STACK")),
        )
        .from_env("INFRA_SAFETY_SSM"),
    );
    let token = s.add(SwarmSecret::new("token").from_env("INFRA_SAFETY_SECRET"));
    s.add(
        SwarmService::new("app")
            .image(var("INFRA_SAFETY_IMAGE"))
            .replicas(1)
            .command(["sleep", "3600"])
            .init(true)
            .stop_grace_period(Duration::from_secs(1))
            .update_policy(UpdatePolicy::new().monitor(Duration::from_millis(500)))
            .secret(&token, "token"),
    );
    s
}

/// Acts as the deploy program when started as one (see the module docs).
fn child_mode() {
    let Ok(args) = std::env::var("INFRA_SAFETY_CHILD") else {
        return;
    };
    let mut argv = vec!["deploy".to_string()];
    argv.extend(args.split('\x1f').map(str::to_string));
    let code = infra::cli::run_with(Args::parse_from(argv), child_stack);
    let n = (0..=255u8)
        .find(|n| std::process::ExitCode::from(*n) == code)
        .unwrap_or(1);
    std::process::exit(i32::from(n));
}

/// The values of one version of the stack.
#[derive(Clone)]
struct Version {
    secret: String,
    ssm: String,
    user_data: String,
    user_data_token: String,
}

fn version(tag: &str) -> Version {
    let nonce = unique("n");
    let token = format!("ud-join-token-{nonce}-{tag}-7f3a9c");
    Version {
        secret: format!("swarm-secret-{nonce}-{tag}-b41e07d2"),
        ssm: format!("ssm-securestring-{nonce}-{tag}-5c2e9b17"),
        user_data: format!(
            "#!/bin/sh\n# join the swarm\nexport JOIN_TOKEN={token}\n/usr/local/bin/swarm-join worker\n"
        ),
        user_data_token: token,
    }
}

/// One run of the child deploy program, its output kept for the search.
struct Runs {
    dir: PathBuf,
    image: String,
    outputs: Vec<(String, Output)>,
}

impl Runs {
    fn deploy(
        &mut self,
        label: &str,
        stack: &str,
        v: &Version,
        format: &str,
        args: &[&str],
    ) -> &Output {
        let mut all: Vec<&str> = vec!["--log-format", format, "--stack", stack];
        all.extend_from_slice(args);
        let mut c = Command::new(std::env::current_exe().unwrap());
        clean_env(&mut c, &self.dir)
            .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
            .env("INFRA_SAFETY_CHILD", all.join("\x1f"))
            .env("INFRA_SAFETY_STACK", stack)
            .env("INFRA_SAFETY_IMAGE", &self.image)
            .env("INFRA_SAFETY_SECRET", &v.secret)
            .env("INFRA_SAFETY_SSM", &v.ssm)
            .env("INFRA_SAFETY_USER_DATA", &v.user_data)
            .env("INFRA_LOG", "trace")
            .env("INFRA_SWARM_CONVERGE_TIMEOUT", "90");
        let out = c.output().unwrap();
        self.outputs.push((format!("{label} [{format} logs]"), out));
        &self.outputs.last().unwrap().1
    }
}

fn expect(o: &Output, code: i32, what: &str) {
    assert_eq!(o.status.code(), Some(code), "{what}:\n{}", show(o));
}

/// Plan, apply, re-plan, rotate, re-plan, destroy, with `format` logs.
fn lifecycle(
    rt: &tokio::runtime::Runtime,
    runs: &mut Runs,
    target: &str,
    format: &str,
    v1: &Version,
    v2: &Version,
) {
    let stack = unique("sec");
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut a: Vec<&'static str> = vec![
            "--target",
            if target == "live" { "live" } else { "sandbox" },
        ];
        a.extend_from_slice(extra);
        a
    };
    let o = runs.deploy("plan", &stack, v1, format, &with(&["plan"]));
    expect(o, 0, "plan");
    let o = runs.deploy(
        "plan --json",
        &stack,
        v1,
        format,
        &with(&["plan", "--json"]),
    );
    expect(o, 0, "plan --json");
    let o = runs.deploy(
        "apply",
        &stack,
        v1,
        format,
        &with(&["apply", "--auto-approve"]),
    );
    expect(o, 0, "apply");
    let o = runs.deploy(
        "re-plan",
        &stack,
        v1,
        format,
        &with(&["plan", "--detailed-exitcode"]),
    );
    expect(o, 0, "a re-plan after apply is empty");
    if target == "live" {
        assert_values_arrived(rt, &stack, v1);
    }
    let o = runs.deploy(
        "rotate",
        &stack,
        v2,
        format,
        &with(&["apply", "--auto-approve"]),
    );
    expect(o, 0, "apply of new secret values");
    let o = runs.deploy(
        "re-plan --json",
        &stack,
        v2,
        format,
        &with(&["plan", "--json", "--detailed-exitcode"]),
    );
    expect(o, 0, "a re-plan after the rotation is empty");
    if target == "live" {
        assert_values_arrived(rt, &stack, v2);
    }
    let o = runs.deploy(
        "destroy",
        &stack,
        v2,
        format,
        &with(&["destroy", "--auto-approve"]),
    );
    expect(o, 0, "destroy");
}

/// Control: the values did reach the systems (so their absence from the outputs means something).
fn assert_values_arrived(rt: &tokio::runtime::Runtime, stack: &str, v: &Version) {
    let ud = rt.block_on(live_user_data(&format!("{stack}-node")));
    assert_eq!(
        ud.as_deref(),
        Some(v.user_data.as_str()),
        "user data in moto"
    );
    let container = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.name={stack}_app"),
    ]);
    let container = container.lines().next().unwrap_or_default().to_string();
    let mounted = docker(&["exec", &container, "cat", "/run/secrets/token"]);
    assert_eq!(mounted, v.secret, "the secret mounted in the task");
    let parameter = rt.block_on(live_parameter(&format!("/infra/{stack}/swarm/token")));
    assert_eq!(
        parameter.as_deref(),
        Some(v.ssm.as_str()),
        "the SecureString in moto"
    );
}

fn ssm() -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(std::env::var("AWS_ENDPOINT_URL").unwrap_or_default())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "static"))
            .build(),
    )
}

/// A parameter's value in moto, decrypted.
async fn live_parameter(name: &str) -> Option<String> {
    let out = ssm()
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .ok()?;
    out.parameter()?.value().map(str::to_string)
}

fn ec2() -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(std::env::var("AWS_ENDPOINT_URL").unwrap_or_default())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "static"))
            .build(),
    )
}

/// The latest version's user data of a launch template in moto, decoded.
async fn live_user_data(name: &str) -> Option<String> {
    let out = ec2()
        .describe_launch_template_versions()
        .launch_template_name(name)
        .versions("$Latest")
        .send()
        .await
        .ok()?;
    let data = out
        .launch_template_versions()
        .first()?
        .launch_template_data()?;
    let decoded = base64_decode(data.user_data()?)?;
    String::from_utf8(decoded).ok()
}

fn docker(args: &[&str]) -> String {
    let o = Command::new("docker").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Failing applies: a launch template and a Swarm secret of the stack's names, made by hand
/// (not owned), so the creates carrying the secrets are refused.
fn failing_applies(rt: &tokio::runtime::Runtime, runs: &mut Runs, format: &str, v: &Version) {
    let stack = unique("secfail");
    let lt_name = format!("{stack}-node");
    rt.block_on(
        ec2()
            .create_launch_template()
            .launch_template_name(&lt_name)
            .launch_template_data(
                aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                    .image_id("ami-12c6146b")
                    .build(),
            )
            .send(),
    )
    .expect("CreateLaunchTemplate by hand");
    // A parameter of the stack's name, made by hand (untagged): the create carrying the
    // SecureString is refused with ParameterAlreadyExists and the parameter is left alone.
    let parameter = format!("/infra/{stack}/swarm/token");
    rt.block_on(
        ssm()
            .put_parameter()
            .name(&parameter)
            .value("someone else's")
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send(),
    )
    .expect("PutParameter by hand");
    let digest = infra::core::value::digest_of(v.secret.as_bytes());
    let hex = digest.trim_start_matches("sha256:");
    let secret_name = format!("{stack}_token_{}", &hex[..12]);
    let mut child = Command::new("docker")
        .args(["secret", "create", &secret_name, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"someone else's").unwrap();
    assert!(child.wait().unwrap().success(), "docker secret create");

    let o = runs.deploy(
        "failing apply (aws)",
        &stack,
        v,
        format,
        &[
            "--target",
            "live",
            "--only",
            "aws",
            "apply",
            "--auto-approve",
        ],
    );
    expect(o, 1, "the launch template's create is refused");
    let err = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("aws_ssm_parameter.join-token")
            && err.contains("ParameterAlreadyExists")
            && err.contains("not owned by stack"),
        "the parameter's create is refused, naming it:\n{}",
        show(o)
    );
    assert_eq!(
        rt.block_on(live_parameter(&parameter)).as_deref(),
        Some("someone else's"),
        "the hand-made parameter is not overwritten"
    );
    let o = runs.deploy(
        "failing apply (swarm)",
        &stack,
        v,
        format,
        &[
            "--target",
            "live",
            "--only",
            "swarm",
            "apply",
            "--auto-approve",
        ],
    );
    expect(o, 1, "the secret's create is refused");
    let err = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("swarm_secret.token") && err.contains("is not this stack's"),
        "the failure names the resource:\n{}",
        show(o)
    );

    // Clean up: the hand-made objects, then whatever the stack made.
    let _ = rt.block_on(
        ec2()
            .delete_launch_template()
            .launch_template_name(&lt_name)
            .send(),
    );
    docker(&["secret", "rm", &secret_name]);
    let _ = rt.block_on(ssm().delete_parameter().name(&parameter).send());
    let o = runs.deploy(
        "destroy after failures",
        &stack,
        v,
        format,
        &["--target", "live", "destroy", "--auto-approve"],
    );
    expect(o, 0, "destroy after the failing applies");
}

// ---------------------------------------------------------------------------------------------
// Searching

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = B64.iter().position(|x| *x == c)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    Some(out)
}

/// What to search for a secret `value`: the value, its base64 encoding, the base64 characters
/// that encode it wherever it starts inside a larger text (three alignments), and those
/// percent-encoded as in a form body.
fn needles(value: &str) -> Vec<String> {
    let mut out = vec![value.to_string(), base64(value.as_bytes())];
    for offset in 0..3usize {
        let mut bytes = vec![0u8; offset];
        bytes.extend_from_slice(value.as_bytes());
        let encoded = base64(&bytes);
        // Characters whose 6 bits all come from the value.
        let start = (8 * offset).div_ceil(6);
        let end = (8 * (offset + value.len())) / 6;
        out.push(encoded[start..end].to_string());
    }
    let encoded: Vec<String> = out[1..]
        .iter()
        .map(|b| {
            b.replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D")
        })
        .collect();
    out.extend(encoded);
    out.sort();
    out.dedup();
    out
}

/// Every (source, needle) hit, with some context.
fn hits(sources: &BTreeMap<String, String>, secrets: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for secret in secrets {
        for needle in needles(secret) {
            for (source, text) in sources {
                if let Some(at) = text.find(&needle) {
                    let from = text[..at]
                        .char_indices()
                        .rev()
                        .nth(120)
                        .map_or(0, |(i, _)| i);
                    found.push(format!(
                        "{source}: `{needle}` (a form of `{secret}`) in …{}…",
                        &text[from..(at + needle.len()).min(text.len())]
                    ));
                }
            }
        }
    }
    found
}

/// The production example's sensitive values (its Swarm secret and its user data scripts), as a
/// user's stack would have them.
fn production_secrets() -> Vec<String> {
    let mut out = Vec::new();
    for env in ["local"] {
        let stack = example::stack(&Context {
            env: env.into(),
            target: Target::Sandbox,
            stack_name: None,
        });
        for r in stack.resources() {
            for (field, v) in &r.props {
                match v {
                    Value::Sensitive(s) => {
                        if let Some(plain) = s.expose() {
                            out.push(String::from_utf8_lossy(plain).to_string());
                        }
                    }
                    Value::String(s) if r.schema.is_sensitive(field) => out.push(s.clone()),
                    _ => {}
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn the_search_finds_every_encoding() {
    let secret = "swarm-secret-0123-one-b41e07d2";
    let body = format!(
        "Action=CreateLaunchTemplate&LaunchTemplateData.UserData={}",
        base64(format!("#!/bin/sh\nX={secret}\n").as_bytes())
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    );
    for (label, text) in [
        ("plain", format!("value: {secret}!")),
        (
            "json",
            format!("{{\"Data\":\"{}\"}}", base64(secret.as_bytes())),
        ),
        (
            "embedded, offset 1",
            base64(format!("a{secret}").as_bytes()),
        ),
        (
            "embedded, offset 2",
            base64(format!("ab{secret}").as_bytes()),
        ),
        (
            "embedded, offset 3",
            base64(format!("abc{secret}").as_bytes()),
        ),
        ("form body", body),
    ] {
        let sources = BTreeMap::from([(label.to_string(), text)]);
        assert!(
            !hits(&sources, &[secret.to_string()]).is_empty(),
            "{label}: the search misses it"
        );
    }
    assert_eq!(
        base64_decode(&base64(b"any carnal pleas")).unwrap(),
        b"any carnal pleas"
    );
    assert!(
        production_secrets().len() >= 4,
        "{:?}",
        production_secrets()
    );
}

#[test]
fn no_secret_value_appears_in_any_output() {
    child_mode();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Runs {
        dir: dir.path().to_path_buf(),
        image: test_image().unwrap_or_else(|| "sha256:1111".into()),
        outputs: Vec::new(),
    };
    let (v1, v2) = (version("one"), version("two"));

    for format in ["text", "json"] {
        lifecycle(&rt, &mut runs, "sandbox", format, &v1, &v2);
    }
    let live = match (moto(), swarm_missing()) {
        (Ok(_), None) => true,
        (Err(why), _) | (_, Some(why)) => {
            skip_or_fail(&format!("{TEST} (live part)"), &why);
            false
        }
    };
    if live {
        for format in ["text", "json"] {
            lifecycle(&rt, &mut runs, "live", format, &v1, &v2);
            failing_applies(&rt, &mut runs, format, &v1);
        }
    }

    // Control: the logs are really at every level, the libraries' included.
    let all_err: String = runs
        .outputs
        .iter()
        .map(|(_, o)| String::from_utf8_lossy(&o.stderr).to_string())
        .collect();
    for needle in [
        "TRACE",
        "DEBUG",
        "INFO",
        "\"level\":\"TRACE\"",
        "infra::audit",
    ] {
        assert!(all_err.contains(needle), "the logs contain `{needle}`");
    }
    if live {
        assert!(
            all_err.contains("aws_smithy_runtime"),
            "the AWS SDK's own logs are in"
        );
        assert!(
            all_err.contains("PutParameter"),
            "the SDK's logs of the SSM calls carrying the SecureString are in"
        );
    }

    // Everything to search.
    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    for (i, (label, o)) in runs.outputs.iter().enumerate() {
        sources.insert(
            format!("run {i} {label}: stdout"),
            String::from_utf8_lossy(&o.stdout).to_string(),
        );
        sources.insert(
            format!("run {i} {label}: stderr"),
            String::from_utf8_lossy(&o.stderr).to_string(),
        );
    }
    for (path, bytes) in files_under(dir.path()) {
        sources.insert(
            format!("file {}", path.display()),
            String::from_utf8_lossy(&bytes).to_string(),
        );
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let snapshots = snapshot_files(workspace);
    for path in &snapshots {
        sources.insert(
            format!("snapshot {}", path.display()),
            std::fs::read_to_string(path).unwrap_or_default(),
        );
    }
    assert!(
        sources.keys().any(|k| k.contains("audit.jsonl")),
        "the audit log was written: {:?}",
        sources
            .keys()
            .filter(|k| k.starts_with("file"))
            .collect::<Vec<_>>()
    );
    assert!(!snapshots.is_empty(), "snapshots found under tests/");

    let mut secrets = vec![
        v1.secret.clone(),
        v2.secret.clone(),
        v1.ssm.clone(),
        v2.ssm.clone(),
        v1.user_data.clone(),
        v2.user_data.clone(),
        v1.user_data_token.clone(),
        v2.user_data_token.clone(),
    ];
    secrets.extend(production_secrets());
    let found = hits(&sources, &secrets);
    let bytes: usize = sources.values().map(String::len).sum();
    assert!(
        found.is_empty(),
        "{} secret hit(s):\n{}",
        found.len(),
        found.join("\n")
    );
    let forms: usize = secrets.iter().map(|s| needles(s).len()).sum();
    say(&format!(
        "secrets: {} deploy-program runs ({}), {} sources ({} snapshot files, {:.1} MB in all) searched for {} secret values in {forms} forms (plain, base64 at 3 alignments, percent-encoded): 0 hits",
        runs.outputs.len(),
        if live { "sandbox and live" } else { "sandbox only" },
        sources.len(),
        snapshots.len(),
        bytes as f64 / 1e6,
        secrets.len(),
    ));
}
