//! Saved plans on the sandbox: saved, applied exactly once, refused (naming the object and the
//! field) when the declaration, an object or the target moved, and bad files refused before
//! anything is read or changed.

use std::collections::BTreeMap;
use std::path::Path;

use infra_core::dsl::Stack;
use infra_core::engine::{Engine, Error};
use infra_core::plan::saved::{Refusal, SavedPlan, SAVED_PLAN_VERSION};
use infra_core::plan::PlanOptions;
use infra_core::provider::Provider as _;
use infra_core::reconcile::{ApplyReport, NoObserver};
use infra_core::sandbox::SandboxProvider;
use infra_core::Value;

use crate::kinds::small;
use crate::plan::converge;

fn engine(dir: &Path) -> Engine {
    Engine::new().with_provider(SandboxProvider::open(dir, "test").unwrap())
}

/// `plan --out`: the saved plan's file content.
async fn save(e: &Engine, s: &Stack) -> String {
    let (_, phase) = e.plan_to_save(s, &PlanOptions::default()).await.unwrap();
    SavedPlan::new(s, BTreeMap::new(), vec![phase]).to_json()
}

/// `apply FILE`: read, verify every phase, apply them in order.
async fn apply_saved(e: &Engine, s: &Stack, text: &str) -> Result<Vec<ApplyReport>, Error> {
    let saved = SavedPlan::from_json(text)?;
    let planned = e.verify_saved(s, &saved, &BTreeMap::new()).await?;
    let mut reports = Vec::new();
    for p in planned {
        let r = e.apply(&p, &NoObserver).await?;
        assert!(r.is_success());
        reports.push(r);
    }
    Ok(reports)
}

fn refusal(r: Result<Vec<ApplyReport>, Error>) -> Refusal {
    match r {
        Err(Error::SavedPlan(refusal)) => refusal,
        Err(e) => panic!("not a refusal: {e}"),
        Ok(_) => panic!("applied"),
    }
}

/// The sandbox's objects, to show that a refusal touched nothing.
fn objects(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = SandboxProvider::open(dir, "test")
        .unwrap()
        .objects()
        .unwrap()
        .iter()
        .map(|o| format!("{} {} {:?}", o.id, o.name, o.props))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_saved_plan_applies_once_and_its_second_apply_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let s = small("saved");
    let file = save(&e, &s).await;
    assert!(
        !file.contains("hunter2-secret"),
        "the plan file holds no secret in clear"
    );
    let saved = SavedPlan::from_json(&file).unwrap();
    assert_eq!(saved.phases[0].plan.summary.add, 3);
    assert_eq!(saved.to_json(), file, "reading and writing is lossless");

    let reports = apply_saved(&e, &s, &file).await.unwrap();
    assert_eq!(reports[0].outcomes.len(), 3, "exactly the saved operations");
    assert!(e
        .plan(&s, &PlanOptions::default())
        .await
        .unwrap()
        .plan
        .is_empty());

    let before = objects(dir.path());
    let again = refusal(apply_saved(&e, &s, &file).await);
    let text = again.to_string();
    assert!(
        matches!(
            again,
            Refusal::Objects {
                applied: true,
                more: 2,
                ..
            }
        ),
        "{again:?}"
    );
    assert!(
        text.contains("exists now and did not when the plan read")
            && text.contains("has been applied"),
        "{text}"
    );
    assert_eq!(objects(dir.path()), before, "nothing touched");
}

#[tokio::test]
async fn a_hand_made_change_to_one_object_refuses_naming_the_object_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProvider::open(dir.path(), "test").unwrap();
    let e = engine(dir.path());
    let s = small("handmade");
    converge(&e, &s).await;
    let mut edited = s.clone();
    edited
        .get_mut(&"test_host.web".parse().unwrap())
        .unwrap()
        .set("size", 3);
    let file = save(&e, &edited).await;

    // Someone changes the database host by hand between review and merge.
    let db = sandbox
        .objects()
        .unwrap()
        .into_iter()
        .find(|o| o.name == "db")
        .unwrap();
    sandbox.tamper(&db.id, "size", Value::Int(9)).unwrap();
    let before = objects(dir.path());
    let r = refusal(apply_saved(&e, &edited, &file).await);
    let text = r.to_string();
    assert!(
        text.starts_with(&format!(
            "test_host.db ({}) changed since the plan read it: its field `size` is not what the plan read",
            db.id
        )),
        "{text}"
    );
    assert!(
        matches!(
            r,
            Refusal::Objects {
                more: 0,
                applied: false,
                ..
            }
        ),
        "{r:?}"
    );
    assert_eq!(objects(dir.path()), before, "nothing touched");

    // Put back as it was, the saved plan applies: exactly its one update.
    sandbox.tamper(&db.id, "size", Value::Int(4)).unwrap();
    let reports = apply_saved(&e, &edited, &file).await.unwrap();
    assert_eq!(reports[0].outcomes.len(), 1);
}

#[tokio::test]
async fn a_changed_declaration_or_target_refuses_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let s = small("moved");
    let file = save(&e, &s).await;

    let mut edited = s.clone();
    edited
        .get_mut(&"test_host.db".parse().unwrap())
        .unwrap()
        .set("password", "another-secret");
    let r = refusal(apply_saved(&e, &edited, &file).await);
    assert_eq!(
        r.to_string(),
        "the declaration differs from the one it was made from: test_host.db: field `password` is declared differently"
    );
    assert!(!r.to_string().contains("another-secret"));

    let mut grown = s.clone();
    grown.add(crate::kinds::Network::new("extra", "10.9.0.0/16"));
    let r = refusal(apply_saved(&e, &grown, &file).await);
    assert!(
        r.to_string()
            .ends_with("test_network.extra is declared now and was not"),
        "{r}"
    );

    // The sandbox's target is its directory, resolved: the same whether or not its journal was
    // written yet, and however the directory is named (here, relative to the working directory).
    let fresh = tempfile::tempdir_in(".").unwrap();
    let relative = Path::new(".").join(fresh.path().file_name().unwrap());
    let sandbox = SandboxProvider::open(&relative, "test").unwrap();
    let unwritten = sandbox.target().await.unwrap();
    converge(&engine(&relative), &s).await;
    assert_eq!(sandbox.target().await.unwrap(), unwritten);
    assert_eq!(
        unwritten,
        Some(format!(
            "sandbox `test` at {}",
            fresh
                .path()
                .canonicalize()
                .unwrap()
                .join("test.jsonl")
                .display()
        ))
    );

    let elsewhere = tempfile::tempdir().unwrap();
    let other = engine(elsewhere.path());
    let r = refusal(apply_saved(&other, &s, &file).await);
    assert!(
        matches!(r, Refusal::Target { ref provider, .. } if provider == "test"),
        "{r:?}"
    );
    assert!(
        r.to_string().contains(
            &elsewhere
                .path()
                .canonicalize()
                .unwrap()
                .display()
                .to_string()
        ),
        "{r}"
    );
    assert!(objects(elsewhere.path()).is_empty() && objects(dir.path()).is_empty());
}

#[tokio::test]
async fn bad_plan_files_are_refused_with_a_clear_error_and_nothing_touched() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let s = small("bad");
    let file = save(&e, &s).await;
    let plan_json =
        infra_core::render::plan_json(&e.plan(&s, &PlanOptions::default()).await.unwrap().plan);
    let mut doc: serde_json::Value = serde_json::from_str(&file).unwrap();
    let foreign = {
        let mut d = doc.clone();
        d["format_version"] = (SAVED_PLAN_VERSION + 1).into();
        d["tool_version"] = "9.9.9".into();
        d.to_string()
    };
    let other_stack = {
        let other = small("other");
        save(&engine(dir.path()), &other).await
    };
    // An edit that keeps the JSON valid: one action turned into another.
    doc["phases"][0]["plan"]["changes"][0]["action"] = "delete".into();
    let edited = serde_json::to_string_pretty(&doc).unwrap();

    let version = format!(
        "format version {} (written by infra 9.9.9)",
        SAVED_PLAN_VERSION + 1
    );
    let table: Vec<(&str, String, &str)> = vec![
        (
            "truncated",
            file[..file.len() / 2].to_string(),
            "it was cut short (truncated)",
        ),
        (
            "empty",
            String::new(),
            "it was cut short (truncated), or is empty",
        ),
        ("edited", edited, "the file was edited or damaged"),
        ("foreign version", foreign, &version),
        (
            "a plan, not a saved plan",
            plan_json,
            "`plan --out FILE` saves one to apply",
        ),
        (
            "other stack",
            other_stack,
            "it is a plan of stack \"other\", and this is stack \"bad\"",
        ),
        (
            "not JSON",
            "plan.json\n".into(),
            "the file is not valid JSON",
        ),
    ];
    for (case, content, expected) in table {
        let r = refusal(apply_saved(&e, &s, &content).await);
        assert!(r.to_string().contains(expected), "{case}: {r}");
        assert!(objects(dir.path()).is_empty(), "{case}: nothing touched");
    }
}
