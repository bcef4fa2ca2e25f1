//! The deploy program's `import` and `adopt` on the sandbox: the module written to a file
//! with one summary line, an unknown filter as one clear error, an adopt-only apply, and its
//! refusal of a plan that does more.

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
