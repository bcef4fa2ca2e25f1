//! Saved plans against the real endpoints: moto (AWS) and the local engine in swarm mode. A plan
//! saved and applied once records the real target (the account and region from STS, moto's
//! endpoint; the swarm's id), a second apply is refused, and a hand-made change made through the
//! API after the plan (a tag added to the VPC; a service scaled) is refused naming the object and
//! the field, with nothing touched.

use std::collections::BTreeMap;
use std::process::Command;

use aws_sdk_ec2::config::{BehaviorVersion, Region};
use infra::core::engine::{Engine, Error};
use infra::core::plan::saved::{Refusal, SavedPlan};
use infra::core::plan::PlanOptions;
use infra::core::reconcile::NoObserver;
use infra::prelude::*;
use infra_test_support::{skip_or_fail, unique};

async fn save(e: &Engine, s: &Stack) -> String {
    let (_, phase) = e.plan_to_save(s, &PlanOptions::default()).await.unwrap();
    SavedPlan::new(s, BTreeMap::new(), vec![phase]).to_json()
}

/// `apply FILE`: every phase verified, then applied; the number of operations.
async fn apply_saved(e: &Engine, s: &Stack, file: &str) -> Result<usize, Error> {
    let saved = SavedPlan::from_json(file)?;
    let mut n = 0;
    for p in e.verify_saved(s, &saved, &BTreeMap::new()).await? {
        let r = e.apply(&p, &NoObserver).await?;
        assert!(r.is_success(), "{}", infra::core::render::report_text(&r));
        n += r.outcomes.len();
    }
    Ok(n)
}

fn refusal(r: Result<usize, Error>) -> Refusal {
    match r {
        Err(Error::SavedPlan(r)) => r,
        other => panic!("not a refusal: {other:?}"),
    }
}

async fn destroy(e: &Engine, s: &Stack) {
    let p = e
        .plan(
            s,
            &PlanOptions {
                destroy: true,
                ..PlanOptions::default()
            },
        )
        .await
        .unwrap();
    let r = e.apply(&p, &NoObserver).await.unwrap();
    assert!(r.is_success());
}

#[tokio::test]
async fn on_moto_a_saved_plan_applies_once_and_refuses_a_hand_made_tag() {
    const TEST: &str =
        "saved_plan_live::on_moto_a_saved_plan_applies_once_and_refuses_a_hand_made_tag";
    let url = match infra_test_support::moto() {
        Ok(url) => url,
        Err(why) => return skip_or_fail(TEST, &why),
    };
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&url)
        .region(Region::new("us-east-1"))
        .test_credentials()
        .load()
        .await;
    let aws = infra::aws::AwsProvider::from_sdk_config(&config).unwrap();
    let e = Engine::new().with_provider(aws);
    let name = unique("saved");
    let stack = |env: &str| {
        let mut s = Stack::new(&name);
        let vpc = s.add(Vpc::new("main").cidr("10.42.0.0/16").tag("env", env));
        s.add(
            Subnet::new("a")
                .vpc(&vpc)
                .cidr("10.42.1.0/24")
                .az("us-east-1a"),
        );
        s
    };
    let s = stack("review");
    let file = save(&e, &s).await;
    let saved = SavedPlan::from_json(&file).unwrap();
    assert_eq!(
        saved.phases[0].targets["aws"].as_deref(),
        Some(format!("aws account 123456789012, region us-east-1, endpoint {url}").as_str()),
        "the target from STS and the configuration"
    );
    assert_eq!(apply_saved(&e, &s, &file).await.unwrap(), 2);
    let again = refusal(apply_saved(&e, &s, &file).await);
    assert!(
        matches!(again, Refusal::Objects { applied: true, .. }),
        "{again}"
    );

    // A change reviewed in a pull request, then a tag added to the VPC by hand before merge.
    let edited = stack("merged");
    let file = save(&e, &edited).await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let vpc_id = e
        .plan(&edited, &PlanOptions::default())
        .await
        .unwrap()
        .plan
        .change("aws_vpc.main")
        .and_then(|c| c.id.clone())
        .unwrap();
    ec2.create_tags()
        .resources(&vpc_id)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("owner")
                .value("someone")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let r = refusal(apply_saved(&e, &edited, &file).await);
    assert_eq!(
        r.to_string(),
        format!("aws_vpc.main ({vpc_id}) changed since the plan read it: its field `tags` is not what the plan read")
    );
    let tags = ec2
        .describe_vpcs()
        .vpc_ids(&vpc_id)
        .send()
        .await
        .unwrap()
        .vpcs()[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some("env"))
        .and_then(|t| t.value().map(str::to_string));
    assert_eq!(tags.as_deref(), Some("review"), "nothing touched");
    destroy(&e, &edited).await;
}

#[tokio::test]
async fn on_the_engine_a_saved_plan_applies_once_and_refuses_a_hand_made_scale() {
    const TEST: &str =
        "saved_plan_live::on_the_engine_a_saved_plan_applies_once_and_refuses_a_hand_made_scale";
    if let Some(why) = infra_test_support::swarm_missing() {
        return skip_or_fail(TEST, &why);
    }
    let Some(image) = infra_test_support::test_image() else {
        return skip_or_fail(
            TEST,
            "no test image (INFRA_TEST_IMAGE; run .ci/setup-swarm)",
        );
    };
    let swarm = infra::swarm::SwarmProvider::connect().await.unwrap();
    let e = Engine::new().with_provider(swarm);
    let name = unique("savedplan");
    let stack = |note: &str| {
        let mut s = Stack::new(&name);
        s.add(
            SwarmService::new("web")
                .image(&image)
                .replicas(1)
                .env("NOTE", note),
        );
        s
    };
    let s = stack("review");
    let file = save(&e, &s).await;
    let swarm_id = String::from_utf8(
        Command::new("docker")
            .args(["info", "--format", "{{.Swarm.Cluster.ID}}"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let saved = SavedPlan::from_json(&file).unwrap();
    assert_eq!(
        saved.phases[0].targets["swarm"].as_deref(),
        Some(format!("swarm {}", swarm_id.trim()).as_str())
    );
    let _cleanup = RemoveService(format!("{name}_web"));
    let result = async {
        assert_eq!(apply_saved(&e, &s, &file).await.unwrap(), 1);
        let again = refusal(apply_saved(&e, &s, &file).await);
        assert!(
            matches!(again, Refusal::Objects { applied: true, .. }),
            "{again}"
        );

        let edited = stack("merged");
        let file = save(&e, &edited).await;
        let service = format!("{name}_web");
        let scaled = Command::new("docker")
            .args(["service", "scale", "--detach", &format!("{service}=2")])
            .output()
            .unwrap();
        assert!(scaled.status.success(), "{scaled:?}");
        let r = refusal(apply_saved(&e, &edited, &file).await);
        let text = r.to_string();
        assert!(
            text.starts_with("swarm_service.web (")
                && text.contains(
                    "changed since the plan read it: its field `replicas` is not what the plan read"
                ),
            "{text}"
        );
        let env = Command::new("docker")
            .args([
                "service",
                "inspect",
                "--format",
                "{{json .Spec.TaskTemplate.ContainerSpec.Env}}",
                &service,
            ])
            .output()
            .unwrap();
        let env = String::from_utf8_lossy(&env.stdout).to_string();
        assert!(env.contains("NOTE=review"), "nothing touched: {env}");
    }
    .await;
    destroy(&e, &stack("merged")).await;
    result
}

/// Removes the test's service whatever happens (the engine is shared).
struct RemoveService(String);

impl Drop for RemoveService {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["service", "rm", &self.0])
            .output();
    }
}
