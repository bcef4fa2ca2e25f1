//! The deploy program's `import` and `adopt` on the sandbox: the module written to a file
//! with one summary line, an unknown filter as one clear error, an adopt-only apply, and its
//! refusal of a plan that does more; on a moto of its own that enforces IAM, a kind the
//! credentials can't read as one line and no module.

use infra::cli::{execute, Exit};
use infra::prelude::*;

use crate::cli::args;

/// A VPC made by hand in the sandbox `aws` under `dir` (declared as `Vpc::new("legacy")` with
/// this CIDR would match it); its id.
fn vpc_by_hand(dir: &std::path::Path, cidr: &str) -> String {
    let spec = Vpc::new("legacy").cidr(cidr).into_spec();
    infra::sandbox(dir.join("sandbox"), "aws")
        .unwrap()
        .insert_foreign("aws_vpc", "legacy", spec.props)
        .unwrap()
}

#[tokio::test]
async fn import_writes_the_module_and_every_object_is_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let id = vpc_by_hand(dir.path(), "10.7.0.0/16");
    let out = dir.path().join("imported.rs");
    let out_arg = out.display().to_string();
    let stack = Stack::new("imp");
    let exit = execute(&args(dir.path(), &["import", "--out", &out_arg]), &stack)
        .await
        .unwrap();
    assert_eq!(exit, Exit::Success);
    let module = std::fs::read_to_string(&out).unwrap();
    assert!(
        module.contains("pub fn declare(stack: &mut Stack)"),
        "{module}"
    );
    // Declared once the AWS kinds generate code; listed as a comment until then: never dropped.
    assert!(module.contains(&id), "{module}");
    // Narrowed away by a name prefix.
    let exit = execute(
        &args(
            dir.path(),
            &["import", "--name-prefix", "web-", "--out", &out_arg],
        ),
        &stack,
    )
    .await
    .unwrap();
    assert_eq!(exit, Exit::Success);
    assert!(!std::fs::read_to_string(&out).unwrap().contains(&id));
}

#[tokio::test]
async fn an_unknown_filter_is_one_clear_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("imported.rs");
    let out_arg = out.display().to_string();
    let err = execute(
        &args(
            dir.path(),
            &[
                "--only", "swarm", "import", "--vpc", "vpc-1", "--out", &out_arg,
            ],
        ),
        &Stack::new("imp"),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(
            "import: discovering the objects that belong to no stack in provider `swarm` failed"
        ) && err.contains("--vpc")
            && !err.contains('\n'),
        "{err}"
    );
    assert!(!out.exists(), "a failed import leaves no half-written file");
}

#[tokio::test]
async fn adopt_applies_only_adoptions_and_refuses_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    let id = vpc_by_hand(dir.path(), "10.7.0.0/16");
    let mut stack = Stack::new("imp");
    let vpc = stack.add(Vpc::new("legacy").cidr("10.7.0.0/16"));
    stack.adopt(&vpc, &id);

    // With anything else in the plan, `adopt` refuses and names it; nothing changes.
    let mut more = stack.clone();
    more.add(Vpc::new("new").cidr("10.8.0.0/16"));
    let err = execute(&args(dir.path(), &["adopt", "--auto-approve"]), &more)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("adopt: the plan does more than adopt, so nothing was changed. Not adoptions: aws_vpc.new (create)."),
        "{err}"
    );
    let json = |stack: &Stack| {
        let stack = stack.clone();
        let dir = dir.path().to_path_buf();
        async move {
            let engine = infra::cli::engine_for(&args(&dir, &["plan"]), &[])
                .await
                .unwrap();
            engine
                .plan(&stack, &PlanOptions::default())
                .await
                .unwrap()
                .plan
        }
    };
    let before = json(&stack).await;
    assert_eq!(
        before.change("aws_vpc.legacy").unwrap().action,
        Action::Adopt
    );

    let exit = execute(&args(dir.path(), &["adopt", "--auto-approve"]), &stack)
        .await
        .unwrap();
    assert_eq!(exit, Exit::Success);
    let after = json(&stack).await;
    assert!(
        after.is_empty(),
        "{}",
        infra::core::render::plan_text(&after)
    );
    assert_eq!(after.changes[0].id.as_deref(), Some(id.as_str()));
    // Once owned, `adopt` has nothing to do.
    let exit = execute(&args(dir.path(), &["adopt", "--auto-approve"]), &stack)
        .await
        .unwrap();
    assert_eq!(exit, Exit::Success);
}

#[test]
fn the_plan_schema_knows_adoptions() {
    let schema = infra::core::render::plan_schema().to_string();
    assert!(schema.contains("\"adopt\""), "{schema}");
    assert!(schema.contains("\"adopted\""), "{schema}");
}

#[test]
fn progress_says_adopted() {
    use infra::cli::progress::finished_line;
    use infra::core::reconcile::{AuditEvent, OpKind, OpOutcome, OpStatus};
    let event = AuditEvent {
        ts_unix_ms: 0,
        stack: "imp".into(),
        actor: Default::default(),
        plan_digest: String::new(),
        kind: "aws_vpc".into(),
        provider: "aws".into(),
        fields: Vec::new(),
        outcome: OpOutcome {
            address: "aws_vpc.legacy".into(),
            op: OpKind::Adopt,
            change: Action::Adopt,
            status: OpStatus::Succeeded,
            attempts: 1,
            id: Some("vpc-1".into()),
            duration_ms: 0,
        },
    };
    assert_eq!(
        finished_line(&event),
        "  ✓ aws_vpc.legacy: adopted (vpc-1) [0.0s]"
    );
}

/// A moto server of the test's own, killed when dropped (also when the test panics).
struct OwnMoto {
    child: std::process::Child,
    url: String,
}

impl Drop for OwnMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `.ci/moto_serve.py` (moto_server, one request at a time) from the venv
/// `.ci/setup-moto` makes, on a free port, with `env`; `Err` when there is no venv.
fn own_moto(env: &[(&str, &str)]) -> Result<OwnMoto, String> {
    let venv = std::env::var_os("INFRA_VENV")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache/infra/venv"))
        })
        .ok_or("no HOME")?;
    let python = venv.join("bin/python");
    if !python.exists() {
        return Err(format!(
            "no moto venv at {} (.ci/setup-moto makes it)",
            venv.display()
        ));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let serve = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/moto_serve.py");
    let child = std::process::Command::new(python)
        .arg(serve)
        .args(["127.0.0.1", &port.to_string()])
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("starting moto: {e}"))?;
    let moto = OwnMoto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    // Up when it accepts connections (a request would count as one of its unauthenticated ones).
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "moto did not come up on port {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(moto)
}

/// Credentials that may call everything but IAM (an explicit deny): the import fails with
/// one line naming the IAM kind and AccessDenied, exits 1, and writes no module. An import is
/// all or nothing (as `terraform plan` fails whole when one read is denied): a module without
/// the kinds that could not be read would look complete and silently leave them out, so the
/// EC2 objects read before the failure are not written either.
#[tokio::test(flavor = "multi_thread")]
async fn a_kind_the_credentials_cannot_read_is_one_line_and_no_module() {
    // moto authenticates and authorizes every request after the first 3 (the 3 below).
    let moto = match own_moto(&[("INITIAL_NO_AUTH_ACTION_COUNT", "3")]) {
        Ok(m) => m,
        Err(why) => {
            return infra_test_support::skip_or_fail(
                "import::a_kind_the_credentials_cannot_read_is_one_line_and_no_module",
                &why,
            )
        }
    };
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&moto.url)
        .region(aws_config::Region::new("us-east-1"))
        .test_credentials()
        .load()
        .await;
    let iam = aws_sdk_iam::Client::new(&config);
    iam.create_user()
        .user_name("reader")
        .send()
        .await
        .expect("CreateUser");
    // Everything but IAM (an explicit deny), so that IAM is the one kind it can't read
    // whatever the order of discovery.
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"iam:*","Resource":"*"}]}"#;
    iam.put_user_policy()
        .user_name("reader")
        .policy_name("all-but-iam")
        .policy_document(policy)
        .send()
        .await
        .expect("PutUserPolicy");
    let key = iam
        .create_access_key()
        .user_name("reader")
        .send()
        .await
        .expect("CreateAccessKey");
    let key = key.access_key().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("imported.rs");
    let run = |out: Option<&std::path::Path>| {
        let mut c = std::process::Command::new(infra_test_support::example_binary("production"));
        c.args([
            "--target", "live", "--only", "aws", "--stack", "denied", "import",
        ]);
        if let Some(out) = out {
            c.arg("--out").arg(out);
        }
        c.env("AWS_ENDPOINT_URL", &moto.url)
            .env("AWS_ACCESS_KEY_ID", key.access_key_id())
            .env("AWS_SECRET_ACCESS_KEY", key.secret_access_key())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env_remove("INFRA_TARGET")
            .env_remove("INFRA_ENV")
            .output()
            .unwrap()
    };
    let o = run(Some(&out));
    let shown = infra_test_support::show(&o);
    assert_eq!(o.status.code(), Some(1), "{shown}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    // (The production program builds its Lambda artifacts first: cargo's status lines,
    // right-aligned so indented, such as `    Finished` or `    Blocking waiting for file lock`.)
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(char::is_whitespace))
        .collect();
    assert_eq!(lines.len(), 1, "one line: {shown}");
    assert!(
        lines[0].contains("aws_iam_policy")
            && lines[0].contains("AccessDenied")
            && lines[0].contains("GetAccountAuthorizationDetails"),
        "{shown}"
    );
    assert!(!out.exists(), "no module: {shown}");
    // To stdout: what was streamed before the failure is not a module (no end, no summary).
    let o = run(None);
    assert_eq!(o.status.code(), Some(1), "{}", infra_test_support::show(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(!stdout.contains(" declared, "), "{stdout}");
    drop(moto);
}
