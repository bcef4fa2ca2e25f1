//! The compiled import round trip on moto: objects made by hand with the SDK (not through
//! `infra`) → the deploy program's `import` → the module compiled into a fixture crate → the
//! declaration it builds → a plan of only adoptions → `adopt` → an empty plan → `destroy`.
//!
//! The fixture is built without the live providers (as the sandbox round trip's, and so from
//! the same cached dependencies: with them it would recompile the AWS SDK, 67 crates in 9 min
//! here). It prints the declaration its module builds as JSON; this test turns that back into a
//! `Stack` through the kinds' schemas and plans, adopts and destroys in-process on moto.

mod hand;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use infra::core::dsl::{KindSchema, ResourceSpec};
use infra::core::engine::Engine;
use infra::core::plan::{Action, PlanOptions};
use infra::core::reconcile::NoObserver;
use infra::core::Stack;
use infra_test_support::{example_binary, show, skip_or_fail, unique};

use crate::roundtrip::{build, run, write_crate, Step, Variant};
use hand::{make_by_hand, Aws, Hand, ADOPTABLE};

/// The fixture: the imported module, and a program printing the declaration it builds. Each
/// test has its own (`roundtrip-declaration-<name>`): the fixtures share the target directory,
/// and one executable for two tests running at once would be overwritten by the other's.
struct Declaration {
    name: String,
    env: Vec<(String, String)>,
}

impl Declaration {
    fn new(name: &str) -> Self {
        Declaration {
            name: format!("declaration-{name}"),
            env: Vec::new(),
        }
    }
}

impl Variant for Declaration {
    fn name(&self) -> &str {
        &self.name
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
        self.env.clone()
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

/// The deploy program's `import`, written to the fixture's module; returns the module's text.
fn import(only: &str, stack: &str, filters: &[&str], module: &Path) -> String {
    let o = Command::new(example_binary("production"))
        .args([
            "--target", "live", "--only", only, "--stack", stack, "import",
        ])
        .args(filters)
        .arg("--out")
        .arg(module)
        .env_remove("INFRA_TARGET")
        .env_remove("INFRA_ENV")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let text = std::fs::read_to_string(module).unwrap();
    let fmt = Command::new("rustfmt")
        .args(["--check", "--edition", "2021"])
        .arg(module)
        .output();
    if let Ok(fmt) = fmt {
        assert!(fmt.status.success(), "not rustfmt-clean:\n{text}");
    }
    text
}

fn adoptions_in(module: &str) -> usize {
    module
        .lines()
        .filter(|l| l.trim_start().starts_with("stack.adopt("))
        .count()
}

/// The module compiled in the fixture; the stack its declaration builds.
fn declared(fixture: &Declaration, dir: &Path, stack: &str) -> Stack {
    let module = dir.join("src/imported.rs");
    let exe = build(fixture, dir);
    let out = run(fixture, &exe, Step::Plan, &module);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    stack_from(stack, &json)
}

/// The wider AWS round trip (issue 14): a network with a NAT gateway and a routed, associated
/// route table, two groups with a cross-group rule, a role with a customer-managed policy, a
/// launch template and an auto scaling group, all made by hand.
///
/// A customer-managed policy can't be adopted (infra owns policies by the path
/// `/infra/<stack>/` and the name `<stack>-<name>`, and IAM can't move one): imported with the
/// rest, its adoption makes the plan fail before anything is touched, naming the policy and
/// why. Imported without it (`--tag team=platform`: IAM lists policies without tags), the role
/// refers to it by ARN (`.attach_arn(…)`), the plan only adopts, and destroy removes the 11
/// adopted objects and leaves the policy, which no stack owns.
#[tokio::test(flavor = "multi_thread")]
async fn round_trip_on_moto() {
    let started = Instant::now();
    let endpoint = match infra_test_support::moto() {
        Ok(url) => url,
        Err(why) => return skip_or_fail("roundtrip_live::round_trip_on_moto", &why),
    };
    let aws = Aws::on(&endpoint).await;
    let prefix = unique("rt");
    let h = make_by_hand(&aws, &prefix).await;
    let dir = tempfile::tempdir().unwrap();
    let fixture = Declaration::new("aws");
    let crate_dir = dir.path().join("fixture");
    write_crate(&fixture, &crate_dir);
    let module = crate_dir.join("src/imported.rs");
    let provider = infra::aws::AwsProvider::from_env().await.unwrap();
    let engine = Engine::new().with_provider(provider);

    // Everything, the policy included: the plan refuses its adoption, naming it and why.
    let all = ["--vpc", &h.vpc, "--name-prefix", &prefix];
    let text = import("aws", &prefix, &all, &module);
    assert_eq!(adoptions_in(&text), ADOPTABLE + 1, "{text}");
    assert!(
        text.contains("// it can't be adopted: IAM lists managed policies"),
        "{text}"
    );
    assert!(text.contains(".attach(&iam_policy_"), "{text}");
    let stack = declared(&fixture, &crate_dir, &prefix);
    let e = engine
        .plan(&stack, &PlanOptions::default())
        .await
        .expect_err("a policy's adoption is refused")
        .to_string();
    assert!(
        e.contains(&format!(
            "aws_iam_policy.{prefix}-read adopts {}",
            h.policy_arn
        )) && e.contains("can't adopt a aws_iam_policy")
            && e.contains("/infra/<stack>/"),
        "{e}"
    );
    assert_eq!(e.matches("can't adopt").count(), 1, "only the policy: {e}");

    // Without the policy: the role refers to it by ARN, and every object is adopted.
    let tagged = [&all[..], &["--tag", "team=platform"]].concat();
    let text = import("aws", &prefix, &tagged, &module);
    assert_eq!(adoptions_in(&text), ADOPTABLE, "{text}");
    // Every AWS kind's import is built: none is listed as a whole kind left out.
    assert!(!text.contains("objects (all)"), "{text}");
    let attach_arn = format!(".attach_arn({:?})", h.policy_arn);
    for typed in [
        ".vpc(&",
        "infra::aws::Rule::tcp(5432).group(&",
        ".default_route_to_internet(&",
        ".associate(&subnet_",
        ".eip(&eip_",
        ".launch_template(&launch_template_",
        ".subnets(&[&subnet_",
        ".security_group(&security_group_",
        &attach_arn,
    ] {
        assert!(text.contains(typed), "{typed} in:\n{text}");
    }
    let stack = declared(&fixture, &crate_dir, &prefix);
    let planned = engine.plan(&stack, &PlanOptions::default()).await.unwrap();
    let actions: Vec<(String, Action)> = planned
        .plan
        .actionable()
        .map(|c| (c.address.to_string(), c.action))
        .collect();
    assert!(
        actions.len() == ADOPTABLE && actions.iter().all(|(_, a)| *a == Action::Adopt),
        "only {ADOPTABLE} adoptions: {actions:?}\n{}",
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
    let tags = aws
        .ec2
        .describe_vpcs()
        .vpc_ids(&h.vpc)
        .send()
        .await
        .unwrap()
        .vpcs()[0]
        .tags()
        .to_vec();
    assert!(tags.iter().any(|t| t.key() == Some("team")), "{tags:?}");

    // Destroy removes what was adopted, and leaves the policy no stack owns.
    let destroy = PlanOptions {
        destroy: true,
        ..PlanOptions::default()
    };
    let planned = engine.plan(&stack, &destroy).await.unwrap();
    assert_eq!(
        planned.plan.summary.destroy,
        ADOPTABLE,
        "{}",
        infra::core::render::plan_text(&planned.plan)
    );
    let report = engine.apply(&planned, &NoObserver).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    gone(&aws, &h).await;
    aws.iam
        .get_policy()
        .policy_arn(&h.policy_arn)
        .send()
        .await
        .expect("the policy no stack owns is left");
    aws.iam
        .delete_policy()
        .policy_arn(&h.policy_arn)
        .send()
        .await
        .expect("DeletePolicy");
    eprintln!("round_trip_on_moto: {:?}", started.elapsed());
}

/// Asserts that the adopted objects are gone.
async fn gone(aws: &Aws, h: &Hand) {
    let vpcs = aws.ec2.describe_vpcs().vpc_ids(&h.vpc).send().await;
    assert_eq!(
        vpcs.map(|o| o.vpcs().len()).unwrap_or(0),
        0,
        "the VPC is gone"
    );
    let nat = aws
        .ec2
        .describe_nat_gateways()
        .nat_gateway_ids(&h.nat)
        .send()
        .await
        .unwrap();
    let state = nat.nat_gateways().first().and_then(|n| n.state().cloned());
    assert!(
        matches!(
            state,
            None | Some(aws_sdk_ec2::types::NatGatewayState::Deleted)
                | Some(aws_sdk_ec2::types::NatGatewayState::Deleting)
        ),
        "the NAT gateway is gone: {state:?}"
    );
    let eips = aws
        .ec2
        .describe_addresses()
        .allocation_ids(&h.eip)
        .send()
        .await;
    assert_eq!(
        eips.map(|o| o.addresses().len()).unwrap_or(0),
        0,
        "the EIP is gone"
    );
    let tables = aws
        .ec2
        .describe_route_tables()
        .route_table_ids(&h.table)
        .send()
        .await;
    assert_eq!(tables.map(|o| o.route_tables().len()).unwrap_or(0), 0);
    let groups = aws
        .asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&h.group)
        .send()
        .await
        .unwrap();
    assert!(groups.auto_scaling_groups().is_empty(), "the ASG is gone");
    let templates = aws
        .ec2
        .describe_launch_templates()
        .launch_template_ids(&h.template)
        .send()
        .await;
    assert_eq!(
        templates.map(|o| o.launch_templates().len()).unwrap_or(0),
        0,
        "the launch template is gone"
    );
    let role = aws.iam.get_role().role_name(&h.role).send().await;
    assert!(role.is_err(), "the role is gone");
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
            vec!["secret".to_string(), "rm".into(), format!("{p}-token")],
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
    let started = Instant::now();
    // By hand, with the Docker CLI: a network, a config, a secret and a service using them.
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
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cr3t-by-hand").unwrap();
    docker(&[
        "secret",
        "create",
        "--label",
        "team=platform",
        &format!("{prefix}-token"),
        token.to_str().unwrap(),
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
        "--secret",
        &format!("source={prefix}-token,target=token"),
        &image,
        "sleep",
        "100000",
    ]);

    let crate_dir = dir.path().join("fixture");
    let mut fixture = Declaration::new("swarm");
    write_crate(&fixture, &crate_dir);
    let module = crate_dir.join("src/imported.rs");
    let text = import("swarm", &prefix, &["--name-prefix", &prefix], &module);
    assert_eq!(adoptions_in(&text), 4, "{text}");
    assert!(
        text.contains(".network(&") && text.contains(".config(&") && text.contains(".secret(&"),
        "{text}"
    );
    // The secret's value is never read back: the module reads it from the environment.
    assert!(!text.contains("s3cr3t"), "{text}");
    let var = text
        .split("from_env(\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("a from_env placeholder in:\n{text}"))
        .to_string();
    assert!(var.starts_with("INFRA_SECRET_"), "{var}");
    fixture.env.push((var, "s3cr3t-by-hand".into()));
    let stack = declared(&fixture, &crate_dir, &prefix);
    let provider = infra::swarm::SwarmProvider::connect().await.unwrap();
    let engine = Engine::new().with_provider(provider);
    let planned = engine.plan(&stack, &PlanOptions::default()).await.unwrap();
    let text = infra::core::render::plan_text(&planned.plan);
    let actions: Vec<Action> = planned.plan.actionable().map(|c| c.action).collect();
    assert_eq!(actions, vec![Action::Adopt; 4], "{text}");
    assert!(!text.contains("s3cr3t"), "{text}");
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
    assert_eq!(planned.plan.summary.destroy, 4);
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
    for what in ["secret", "config", "network"] {
        let name = match what {
            "secret" => format!("{prefix}-token"),
            "config" => format!("{prefix}-conf"),
            _ => format!("{prefix}-net"),
        };
        let left = docker(&[what, "ls", "-q", "--filter", &format!("name={name}")]);
        assert_eq!(left, "", "the {what} is gone");
    }
    eprintln!("round_trip_on_the_engine: {:?}", started.elapsed());
}
