//! `plan --format markdown` (a plan for a pull-request comment): snapshots of a plan with every
//! action and policy findings, and of a plan with no changes; secrets as the text plan shows
//! them; values that would break the layout escaped; truncation of a plan of thousands of
//! resources within the limit, in whole sections.

use std::sync::OnceLock;

use infra::prelude::*;
use infra::swarm::SwarmSecret;
use infra_core::plan::Plan;
use infra_core::render::{self, MarkdownOptions, GITHUB_COMMENT_LIMIT};
use proptest::prelude::*;

use crate::fixture::{apply, engine, plan, stack};

/// A value that tries everything a value could do to a Markdown comment: close a fence or a
/// `<details>`, open HTML, split a table row, start emphasis, a heading, a mention.
const HOSTILE: &str = "```` </details> <img src=x> | *a* _b_ [l](u) # @team ~~";
const SECRET: &str = "pr-secret-value-never-shown";

/// The fixture stack with default rules' findings, a service whose environment holds
/// [`HOSTILE`] and a Swarm secret holding [`SECRET`].
fn pr_stack() -> Stack {
    let mut s = stack();
    s.add(
        SwarmService::new("web")
            .image("sha256:2222")
            .replicas(1)
            .env("NOTE", HOSTILE),
    );
    s.add(SwarmSecret::new("token").value(SECRET));
    s
}

/// The default rules block applying the fixture (it has findings): apply without rules, plan
/// with them, on the same sandbox.
fn ruled(dir: &std::path::Path) -> Engine {
    infra::testing::engine(dir)
}

fn edit(s: &mut Stack, address: &str, field: &str, value: impl Into<infra::core::Value>) {
    s.get_mut(&address.parse().unwrap())
        .unwrap_or_else(|| panic!("{address}"))
        .set(field, value);
}

/// Checks what every rendering must keep, whatever it cut: within `limit`; every line of it
/// a whole line of the full document (never cut mid-line) or of the note; every `<details>`
/// closed and every fence closed, outside fences; the note exactly when something was cut.
fn assert_layout(md: &str, full: &str, limit: usize) {
    assert!(md.len() <= limit, "{} bytes > {limit}", md.len());
    let (mut fence, mut depth) = (None::<usize>, 0usize);
    for line in md.lines() {
        let ticks = line.len() - line.trim_start_matches('`').len();
        match fence {
            Some(open) if ticks >= open && line.trim_end_matches('`').is_empty() => fence = None,
            Some(_) => {}
            None if ticks >= 3 => fence = Some(ticks),
            None if line.starts_with("<details>") => depth += 1,
            None if line == "</details>" => {
                depth = depth
                    .checked_sub(1)
                    .expect("a </details> closes an open one")
            }
            None => {}
        }
    }
    assert_eq!(fence, None, "a fence is left open");
    assert_eq!(depth, 0, "a <details> is left open");
    let truncated = md.contains("**Truncated**");
    assert_eq!(truncated, full.len() > limit, "the note iff cut");
    if truncated {
        let full_lines: std::collections::HashSet<&str> = full.lines().collect();
        let (kept, note) = md.split_at(md.rfind("\n---\n").unwrap());
        for line in kept.lines() {
            assert!(
                full_lines.contains(line),
                "not a line of the plan: {line:?}"
            );
        }
        assert!(note.contains("left out"), "{note}");
        assert!(note.contains("`plan --format json`"), "{note}");
    } else {
        assert_eq!(md, full);
    }
}

#[tokio::test]
async fn markdown_of_an_update_a_replacement_a_deletion_and_policy_findings() {
    let dir = tempfile::tempdir().unwrap();
    let e = ruled(dir.path());
    let mut s = pr_stack();
    apply(&engine(dir.path()), &s).await;
    edit(&mut s, "aws_autoscaling_group.web", "max_size", 6);
    edit(&mut s, "aws_subnet.b", "cidr_block", "10.0.3.0/24");
    s.remove(&"aws_iam_policy.read".parse().unwrap());
    let note = format!("{HOSTILE} (2)");
    edit(
        &mut s,
        "swarm_service.web",
        "env",
        infra::core::map! { "NOTE" => note.as_str() },
    );
    let p = plan(&e, &s).await.plan;
    assert_eq!(
        (p.summary.add, p.summary.change, p.summary.destroy),
        (1, 2, 2)
    );
    assert!(!p.policy.findings.is_empty(), "the fixture has findings");
    let md = render::plan_markdown(&p, &MarkdownOptions::default());
    assert_layout(&md, &md, GITHUB_COMMENT_LIMIT);
    // Replacements and deletions come first, with their reasons.
    let attention = md.find("### Replacements and deletions").unwrap();
    let replace = md
        .find("- **replace** (destroy, then create) `aws_subnet.b`: `cidr_block` forces replacement.\n")
        .unwrap();
    let delete = md.find("- **delete** `aws_iam_policy.read`").unwrap();
    assert!(attention < replace && replace < delete && delete < md.find("### Policy").unwrap());
    assert!(
        md.contains("| **Total** | | **0** | **2** | **1** | **1** |"),
        "{md}"
    );
    // Deterministic: planned again, the same bytes.
    let again = plan(&e, &s).await.plan;
    assert_eq!(
        render::plan_markdown(&again, &MarkdownOptions::default()),
        md
    );
    insta::assert_snapshot!("pull_request.md", md);
}

#[tokio::test]
async fn markdown_of_a_plan_with_no_changes() {
    let dir = tempfile::tempdir().unwrap();
    let e = ruled(dir.path());
    apply(&engine(dir.path()), &stack()).await;
    let p = plan(&e, &stack()).await.plan;
    assert!(p.is_empty());
    let md = render::plan_markdown(&p, &MarkdownOptions::default());
    assert!(md.contains("**No changes.** Stack `fixture` matches its declaration"));
    assert!(!md.contains("<details>") && !md.contains("| Provider |"));
    insta::assert_snapshot!("no_changes.md", md);
}

#[tokio::test]
async fn secrets_stay_digests_and_hostile_values_stay_inside_their_fence() {
    let dir = tempfile::tempdir().unwrap();
    let e = ruled(dir.path());
    let mut s = pr_stack();
    apply(&engine(dir.path()), &s).await;
    // A new secret value, and a change to the service with the hostile value.
    s.remove(&"swarm_secret.token".parse().unwrap());
    s.add(SwarmSecret::new("token").value(format!("{SECRET}-2")));
    edit(&mut s, "swarm_service.web", "replicas", 2);
    let created = plan(&ruled(&dir.path().join("new")), &s).await.plan;
    let changed = plan(&e, &s).await.plan;
    for p in [&created, &changed] {
        let md = render::plan_markdown(p, &MarkdownOptions::default());
        let text = render::plan_text(p);
        assert!(!md.contains(SECRET) && !text.contains(SECRET));
        // The secret's line is the text plan's, digest and all.
        let digest = text
            .lines()
            .find(|l| l.contains("(sensitive, sha256:"))
            .expect("the text plan shows the digest");
        let shown = digest.trim_start().trim_start_matches(['+', '-', '~', ' ']);
        assert!(md.contains(shown), "{shown} not in\n{md}");
        assert_layout(&md, &md, GITHUB_COMMENT_LIMIT);
    }
    let md = render::plan_markdown(&created, &MarkdownOptions::default());
    // The hostile value is inside a fence longer than its backtick run.
    assert!(md.contains("`````diff\n"), "{md}");
    assert!(!md.contains("\n</details> <img"), "{md}");
}

/// A plan of thousands of resources on the sandbox: 1,500 services applied, then 300 of
/// them changed (a hostile value each), 200 removed, 1,500 new and a subnet replaced (which
/// updates the group in it): 2,002 changes.
fn big_plan() -> &'static (Plan, String) {
    static BIG: OnceLock<(Plan, String)> = OnceLock::new();
    BIG.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let service = |i: usize, note: &str| {
            SwarmService::new(&format!("svc-{i:04}"))
                .image("sha256:3333")
                .replicas(1)
                .env("NOTE", note)
        };
        let mut before = stack();
        for i in 0..1500 {
            before.add(service(i, "plain"));
        }
        let mut after = stack();
        edit(&mut after, "aws_subnet.b", "cidr_block", "10.0.3.0/24");
        for i in 200..3000 {
            let note = if i < 500 {
                format!("{HOSTILE} {i}")
            } else {
                "plain".into()
            };
            after.add(service(i, &note));
        }
        let plan = std::thread::scope(|t| {
            t.spawn(|| {
                let rt = tokio::runtime::Runtime::new().unwrap();
                rt.block_on(async {
                    apply(&engine(dir.path()), &before).await;
                    plan(&ruled(dir.path()), &after).await.plan
                })
            })
            .join()
            .unwrap()
        });
        let full = render::plan_markdown(&plan, &MarkdownOptions::default().limit(usize::MAX));
        (plan, full)
    })
}

#[test]
fn a_big_plan_is_cut_to_whole_sections_within_githubs_limit() {
    let (plan, full) = big_plan();
    assert_eq!(plan.actionable().count(), 2002);
    assert!(full.len() > 10 * GITHUB_COMMENT_LIMIT, "{}", full.len());
    let md = render::plan_markdown(plan, &MarkdownOptions::default());
    assert_layout(&md, full, GITHUB_COMMENT_LIMIT);
    // The summary counts everything, cut or not; the replacement and the first deletions are
    // kept ahead of the diffs.
    assert!(md.contains("| **Total** | | **1500** | **301** | **1** | **200** |"));
    assert!(md.contains("`aws_subnet.b`: `cidr_block` forces replacement"));
    let note = &md[md.rfind("**Truncated**").unwrap()..];
    assert!(
        note.contains("including the diffs of ") && note.contains(" of 2002 changed resources"),
        "{note}"
    );
}

#[test]
fn a_limit_below_the_summary_keeps_the_summary_and_the_note() {
    let (plan, full) = big_plan();
    let md = render::plan_markdown(plan, &MarkdownOptions::default().limit(10));
    assert!(md.starts_with("## Plan for stack `fixture`"));
    assert!(md.contains("| **Total** |") && md.contains("### Policy"));
    assert!(!md.contains("<details>"));
    assert!(
        md.contains("the diffs of 2002 of 2002 changed resources"),
        "{md}"
    );
    assert!(md.len() < 4_000, "{}", md.len());
    assert!(full.len() > md.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_limit_gives_a_whole_document_within_it(limit in 4_000usize..200_000) {
        let (plan, full) = big_plan();
        let md = render::plan_markdown(plan, &MarkdownOptions::default().limit(limit));
        assert_layout(&md, full, limit);
    }
}

#[tokio::test]
async fn a_plan_that_cannot_be_applied_says_why_ahead_of_the_diffs() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Stack::new("guarded");
    s.add(Vpc::new("main").cidr("10.0.0.0/16").protect());
    s.add(Vpc::new("spare").cidr("10.1.0.0/16"));
    apply(&engine(dir.path()), &s).await;
    let mut gone = Stack::new("guarded");
    gone.add(Vpc::new("spare").cidr("10.1.0.0/16"));
    let p = plan(&engine(dir.path()), &gone).await.plan;
    assert!(!p.errors.is_empty());
    let md = render::plan_markdown(&p, &MarkdownOptions::default());
    let errors = md
        .find("### Errors\n\nThese block apply:\n\n- ")
        .expect(&md);
    assert!(md[errors..].contains("`.protect()`"), "{md}");
    assert!(errors < md.find("### Replacements and deletions").unwrap());
    assert!(md.contains("- **delete** `aws_vpc.main` (protected): no longer declared"));
    assert!(md.contains("<code>-</code> aws_vpc.main will be destroyed</summary>"));
}
