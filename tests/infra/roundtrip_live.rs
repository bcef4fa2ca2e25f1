//! The compiled import round trip on moto: objects made by hand with the SDK (not through
//! `infra`) → the deploy program's `import` → the module compiled into a fixture crate → the
//! declaration it builds → a plan of only adoptions → `adopt` → an empty plan → `destroy`.
//!
//! The fixture is built without the live providers (as the sandbox round trip's, and so from
//! the same cached dependencies: with them it would recompile the AWS SDK, 67 crates in 9 min
//! here). It prints the declaration its module builds as JSON; this test turns that back into a
//! `Stack` through the kinds' schemas and plans, adopts and destroys in-process on moto.

use std::path::Path;
use std::process::Command;

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::types::{IpPermission, ResourceType, Tag, TagSpecification, UserIdGroupPair};
use infra::core::dsl::{KindSchema, ResourceSpec};
use infra::core::engine::Engine;
use infra::core::plan::{Action, PlanOptions};
use infra::core::reconcile::NoObserver;
use infra::core::Stack;
use infra_test_support::{example_binary, show, skip_or_fail, unique};

use crate::roundtrip::{build, run, write_crate, Step, Variant};

/// The fixture: the imported module, and a program printing the declaration it builds.
struct Declaration;

impl Variant for Declaration {
    fn name(&self) -> &str {
        "declaration"
    }
    fn dependencies(&self, infra: &Path) -> String {
        format!(
            "infra = {{ path = {:?}, default-features = false }}\nserde_json = \"1\"",
            infra.display().to_string()
        )
    }
    fn files(&self) -> Vec<(&'static str, String)> {
        vec![(
            "src/main.rs",
            r#"mod imported;

fn main() {
    let mut stack = infra::core::Stack::new("roundtrip");
    imported::declare(&mut stack);
    let resources: Vec<serde_json::Value> = stack
        .resources()
        .iter()
        .map(|r| {
            serde_json::json!({
                "kind": r.schema.kind,
                "name": r.address.name(),
                "props": r.props,
                "ignore_changes": r.options.ignore_changes,
            })
        })
        .collect();
    let adoptions: Vec<serde_json::Value> = stack
        .adoptions()
        .iter()
        .map(|a| serde_json::json!({ "address": a.address.to_string(), "id": a.id }))
        .collect();
    println!("{}", serde_json::json!({ "resources": resources, "adoptions": adoptions }));
}
"#
            .into(),
        )]
    }
    fn env(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    fn args(&self, _: Step, _: &Path) -> Vec<String> {
        Vec::new()
    }
    fn make_objects(&self) -> usize {
        0
    }
    fn objects_left(&self) -> usize {
        0
    }
}

/// The stack the fixture printed, rebuilt through the kinds' schemas.
fn stack_from(name: &str, json: &serde_json::Value) -> Stack {
    let schemas: Vec<&'static KindSchema> = infra::aws::kinds::schemas()
        .into_iter()
        .chain(infra::swarm::kinds::schemas())
        .collect();
    let mut stack = Stack::new(name);
    for r in json["resources"].as_array().unwrap() {
        let kind = r["kind"].as_str().unwrap();
        let schema = schemas
            .iter()
            .find(|s| s.kind == kind)
            .unwrap_or_else(|| panic!("no kind {kind}"));
        let mut spec = ResourceSpec::new(schema, r["name"].as_str().unwrap());
        spec.props = serde_json::from_value(r["props"].clone()).unwrap();
        spec.options.ignore_changes = serde_json::from_value(r["ignore_changes"].clone()).unwrap();
        stack.add_spec(spec);
    }
    for a in json["adoptions"].as_array().unwrap() {
        stack.adopt_address(
            a["address"].as_str().unwrap().parse().unwrap(),
            a["id"].as_str().unwrap(),
        );
    }
    stack
}

fn name_tag(kind: ResourceType, name: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .tags(Tag::builder().key("Name").value(name).build())
        .tags(Tag::builder().key("team").value("platform").build())
        .build()
}

/// A VPC, a subnet, an attached internet gateway and two security groups, one allowing the
/// other: made with the SDK, as a console user or a script would. Returns the VPC's id.
async fn make_by_hand(ec2: &aws_sdk_ec2::Client, prefix: &str) -> String {
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.77.0.0/16")
        .tag_specifications(name_tag(ResourceType::Vpc, &format!("{prefix}-vpc")))
        .send()
        .await
        .unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    ec2.create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.77.1.0/24")
        .availability_zone("us-east-1a")
        .tag_specifications(name_tag(ResourceType::Subnet, &format!("{prefix}-a")))
        .send()
        .await
        .unwrap();
    let igw = ec2
        .create_internet_gateway()
        .tag_specifications(name_tag(
            ResourceType::InternetGateway,
            &format!("{prefix}-igw"),
        ))
        .send()
        .await
        .unwrap();
    let igw = igw
        .internet_gateway()
        .unwrap()
        .internet_gateway_id()
        .unwrap();
    ec2.attach_internet_gateway()
        .internet_gateway_id(igw)
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap();
    let mut groups = Vec::new();
    for g in ["web", "db"] {
        let out = ec2
            .create_security_group()
            .group_name(format!("{prefix}-{g}"))
            .description(format!("{g} by hand"))
            .vpc_id(&vpc)
            .tag_specifications(name_tag(
                ResourceType::SecurityGroup,
                &format!("{prefix}-{g}"),
            ))
            .send()
            .await
            .unwrap();
        groups.push(out.group_id().unwrap().to_string());
    }
    ec2.authorize_security_group_ingress()
        .group_id(&groups[1])
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(5432)
                .to_port(5432)
                .user_id_group_pairs(UserIdGroupPair::builder().group_id(&groups[0]).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    vpc
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_on_moto() {
    let endpoint = match infra_test_support::moto() {
        Ok(url) => url,
        Err(why) => return skip_or_fail("roundtrip_live::round_trip_on_moto", &why),
    };
    let config = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .build();
    let ec2 = aws_sdk_ec2::Client::from_conf(config);
    let prefix = unique("rt");
    let vpc = make_by_hand(&ec2, &prefix).await;

    // The deploy program's import, narrowed to the VPC and the objects' names.
    let dir = tempfile::tempdir().unwrap();
    let fixture = dir.path().join("fixture");
    write_crate(&Declaration, &fixture);
    let module = fixture.join("src/imported.rs");
    let o = Command::new(example_binary("production"))
        .args([
            "--target", "live", "--only", "aws", "--stack", &prefix, "import",
        ])
        .args(["--vpc", &vpc, "--name-prefix", &prefix, "--out"])
        .arg(&module)
        .env_remove("INFRA_TARGET")
        .env_remove("INFRA_ENV")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let text = std::fs::read_to_string(&module).unwrap();
    let adoptions = text
        .lines()
        .filter(|l| l.trim_start().starts_with("stack.adopt("))
        .count();
    assert_eq!(adoptions, 5, "{text}");
    // Every AWS kind's import is built: none is listed as a whole kind left out.
    assert!(!text.contains("objects (all)"), "{text}");
    for typed in [".vpc(&", "infra::aws::Rule::tcp(5432).group(&"] {
        assert!(text.contains(typed), "{typed} in:\n{text}");
    }
    let fmt = Command::new("rustfmt")
        .args(["--check", "--edition", "2021"])
        .arg(&module)
        .output();
    if let Ok(fmt) = fmt {
        assert!(fmt.status.success(), "not rustfmt-clean:\n{text}");
    }

    // The module compiles, and the declaration it builds plans as adoptions only.
    let exe = build(&Declaration, &fixture);
    let out = run(&Declaration, &exe, Step::Plan, &module);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stack = stack_from(&prefix, &json);
    let provider = infra::aws::AwsProvider::from_env().await.unwrap();
    let engine = Engine::new().with_provider(provider);
    let planned = engine.plan(&stack, &PlanOptions::default()).await.unwrap();
    let actions: Vec<(String, Action)> = planned
        .plan
        .actionable()
        .map(|c| (c.address.to_string(), c.action))
        .collect();
    assert_eq!(actions.len(), 5, "{actions:?}");
    assert!(
        actions.iter().all(|(_, a)| *a == Action::Adopt),
        "only adoptions: {actions:?}\n{}",
        infra::core::render::plan_text(&planned.plan)
    );
    let report = engine.adopt(&planned, &NoObserver).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    let after = engine.plan(&stack, &PlanOptions::default()).await.unwrap();
    assert!(
        after.plan.is_empty(),
        "{}",
        infra::core::render::plan_text(&after.plan)
    );
    // The objects kept their `Name` and other tags.
    let tags = ec2
        .describe_vpcs()
        .vpc_ids(&vpc)
        .send()
        .await
        .unwrap()
        .vpcs()[0]
        .tags()
        .to_vec();
    assert!(tags.iter().any(|t| t.key() == Some("team")), "{tags:?}");

    // Destroy removes what was adopted.
    let destroy = PlanOptions {
        destroy: true,
        ..PlanOptions::default()
    };
    let planned = engine.plan(&stack, &destroy).await.unwrap();
    assert_eq!(planned.plan.summary.destroy, 5);
    let report = engine.apply(&planned, &NoObserver).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    let left = ec2
        .describe_vpcs()
        .vpc_ids(&vpc)
        .send()
        .await
        .map(|o| o.vpcs().len())
        .unwrap_or(0);
    assert_eq!(left, 0, "the VPC is gone");
}

fn docker(args: &[&str]) -> String {
    let o = Command::new("docker").args(args).output().unwrap();
    assert!(o.status.success(), "docker {args:?}: {}", show(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Removes what the engine round trip made by hand, whatever step failed.
struct SwarmCleanup(String);

impl Drop for SwarmCleanup {
    fn drop(&mut self) {
        let p = &self.0;
        for args in [
            vec!["service".to_string(), "rm".into(), format!("{p}-app")],
            vec!["config".to_string(), "rm".into(), format!("{p}-conf")],
            vec!["network".to_string(), "rm".into(), format!("{p}-net")],
        ] {
            let _ = Command::new("docker").args(&args).output();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_on_the_engine() {
    if let Some(why) = infra_test_support::swarm_missing() {
        return skip_or_fail("roundtrip_live::round_trip_on_the_engine", &why);
    }
    let Some(image) = infra_test_support::test_image() else {
        return skip_or_fail(
            "roundtrip_live::round_trip_on_the_engine",
            "INFRA_TEST_IMAGE is not set",
        );
    };
    let prefix = unique("rtsw");
    let _cleanup = SwarmCleanup(prefix.clone());
    let dir = tempfile::tempdir().unwrap();
    // By hand, with the Docker CLI: a network, a config and a service using both.
    docker(&[
        "network",
        "create",
        "--driver",
        "overlay",
        "--attachable",
        "--label",
        "team=platform",
        &format!("{prefix}-net"),
    ]);
    let conf = dir.path().join("conf");
    std::fs::write(&conf, "listen = 8080\n").unwrap();
    docker(&[
        "config",
        "create",
        &format!("{prefix}-conf"),
        conf.to_str().unwrap(),
    ]);
    docker(&[
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        &format!("{prefix}-app"),
        "--label",
        "team=platform",
        "--network",
        &format!("{prefix}-net"),
        "--config",
        &format!("source={prefix}-conf,target=/etc/app.conf"),
        &image,
        "sleep",
        "100000",
    ]);

    let fixture = dir.path().join("fixture");
    write_crate(&Declaration, &fixture);
    let module = fixture.join("src/imported.rs");
    let o = Command::new(example_binary("production"))
        .args([
            "--target", "live", "--only", "swarm", "--stack", &prefix, "import",
        ])
        .args(["--name-prefix", &prefix, "--out"])
        .arg(&module)
        .env_remove("INFRA_TARGET")
        .env_remove("INFRA_ENV")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let text = std::fs::read_to_string(&module).unwrap();
    let adoptions = text
        .lines()
        .filter(|l| l.trim_start().starts_with("stack.adopt("))
        .count();
    assert_eq!(adoptions, 3, "{text}");
    assert!(
        text.contains(".network(&") && text.contains(".config(&"),
        "{text}"
    );

    let exe = build(&Declaration, &fixture);
    let out = run(&Declaration, &exe, Step::Plan, &module);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stack = stack_from(&prefix, &json);
    let provider = infra::swarm::SwarmProvider::connect().await.unwrap();
    let engine = Engine::new().with_provider(provider);
    let planned = engine.plan(&stack, &PlanOptions::default()).await.unwrap();
    let text = infra::core::render::plan_text(&planned.plan);
    let actions: Vec<Action> = planned.plan.actionable().map(|c| c.action).collect();
    assert_eq!(actions, vec![Action::Adopt; 3], "{text}");
    let task = docker(&["service", "ps", "-q", &format!("{prefix}-app")]);
    let report = engine.adopt(&planned, &NoObserver).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    let after = engine.plan(&stack, &PlanOptions::default()).await.unwrap();
    assert!(
        after.plan.is_empty(),
        "{}",
        infra::core::render::plan_text(&after.plan)
    );
    // Adopting changed labels only: the service's task is the one it had.
    assert_eq!(
        docker(&["service", "ps", "-q", &format!("{prefix}-app")]),
        task
    );

    let destroy = PlanOptions {
        destroy: true,
        ..PlanOptions::default()
    };
    let planned = engine.plan(&stack, &destroy).await.unwrap();
    assert_eq!(planned.plan.summary.destroy, 3);
    let report = engine.apply(&planned, &NoObserver).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(
        docker(&[
            "service",
            "ls",
            "-q",
            "--filter",
            &format!("name={prefix}-app")
        ]),
        ""
    );
}
