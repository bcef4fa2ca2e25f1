//! Import and adoption on the real engine: objects made by hand with the Docker CLI are
//! discovered in the owned read's own form (filters narrow them, Docker's own objects are never
//! among them), written as builder chains, read unowned and adopted (labels only: the service's
//! tasks keep running untouched, the network gets an adoption record), after which the owned
//! read finds them at their addresses, a plan of the equivalent declaration is empty, and a
//! destroy removes them (the adoption record with the network).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use infra_core::dsl::{Address, Resource};
use infra_core::import::{Discovered, Found, ImportFilter, ImportNames};
use infra_core::provider::{OpContext, Provider};
use infra_core::{Stack, Value};
use infra_swarm::{RestartCondition, SwarmConfig, SwarmNetwork, SwarmSecret, SwarmService};

use crate::common::*;

/// Removes the hand-made objects (and adoption records) whatever happens to the test.
struct HandMade {
    prefix: String,
    records: Vec<String>,
}

impl Drop for HandMade {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            Command::new("docker").args(args).output().ok();
        };
        let p = &self.prefix;
        quiet(&["service", "rm", &format!("{p}-web")]);
        for _ in 0..50 {
            let left = Command::new("docker")
                .args(["ps", "-aq", "--filter", &format!("name={p}-web")])
                .output()
                .map(|o| !o.stdout.is_empty())
                .unwrap_or(false);
            if !left {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        quiet(&["secret", "rm", &format!("{p}-token")]);
        quiet(&["config", "rm", &format!("{p}-conf")]);
        for r in &self.records {
            quiet(&["config", "rm", r]);
        }
        for _ in 0..50 {
            let out = Command::new("docker")
                .args(["network", "rm", &format!("{p}-net"), &format!("{p}-other")])
                .output();
            if out.map(|o| o.status.success()).unwrap_or(true) {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

async fn discover(p: &infra_swarm::SwarmProvider, filter: &ImportFilter) -> Vec<Found> {
    let mut found = Vec::new();
    p.discover(filter, &mut |f| found.push(f))
        .await
        .unwrap_or_else(|e| panic!("discover: {e}"));
    found
}

fn objects(found: &[Found]) -> Vec<&Discovered> {
    found
        .iter()
        .filter_map(|f| match f {
            Found::Object(d) => Some(d),
            _ => None,
        })
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> Value {
    Value::Map(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn hand_made_objects_are_discovered_written_as_rust_and_adopted_without_restarting_tasks() {
    let Some(p) = provider("import_adopt").await else {
        return;
    };
    let img = image();
    let prefix = unique("imp");
    let stack_name = prefix.clone();
    let _owned = Cleanup::new(&stack_name);
    let mut hand = HandMade {
        prefix: prefix.clone(),
        records: Vec::new(),
    };
    let (net_name, other_name) = (format!("{prefix}-net"), format!("{prefix}-other"));
    let (conf_name, token_name, web_name) = (
        format!("{prefix}-conf"),
        format!("{prefix}-token"),
        format!("{prefix}-web"),
    );

    // By hand, with the Docker CLI.
    let net_id = docker(&[
        "network",
        "create",
        "--driver",
        "overlay",
        "--attachable",
        "--label",
        "team=core",
        &net_name,
    ]);
    docker(&[
        "network",
        "create",
        "--driver",
        "overlay",
        "--label",
        "team=ops",
        &other_name,
    ]);
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir).unwrap();
    let (conf_file, token_file) = (dir.join("conf"), dir.join("token"));
    std::fs::write(&conf_file, "listen = 8080\n").unwrap();
    std::fs::write(&token_file, "hunter2-never-printed").unwrap();
    let conf_id = docker(&[
        "config",
        "create",
        "--label",
        "team=core",
        &conf_name,
        conf_file.to_str().unwrap(),
    ]);
    let token_id = docker(&[
        "secret",
        "create",
        &token_name,
        token_file.to_str().unwrap(),
    ]);
    std::fs::remove_dir_all(&dir).ok();
    let web_id = docker(&[
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        &web_name,
        "--label",
        "team=core",
        "--replicas",
        "2",
        "--network",
        &format!("name={net_name},alias=web-alias"),
        "--config",
        &format!("source={conf_name},target=/etc/app.conf"),
        "--secret",
        &format!("source={token_name},target=token"),
        "--constraint",
        "node.role==manager",
        "--env",
        "MODE=prod",
        "--restart-condition",
        "on-failure",
        "--restart-delay",
        "2s",
        "--restart-max-attempts",
        "3",
        "--stop-grace-period",
        "1s",
        "--init",
        &img,
        "sleep",
        "100000",
    ]);
    let before = wait_running(&web_name, 2);
    assert_eq!(before.len(), 2, "the hand-made service runs 2 tasks");

    // Discovery, narrowed to this test's prefix: dependency order, the owned read's props.
    let mut filter = ImportFilter::all();
    filter.name_prefix = Some(prefix.clone());
    let found = discover(&p, &filter).await;
    let objs = objects(&found);
    let order: Vec<(&str, &str)> = objs
        .iter()
        .map(|d| (d.schema.kind, d.name.as_str()))
        .collect();
    assert_eq!(
        order,
        vec![
            ("swarm_network", net_name.as_str()),
            ("swarm_network", other_name.as_str()),
            ("swarm_secret", token_name.as_str()),
            ("swarm_config", conf_name.as_str()),
            ("swarm_service", web_name.as_str()),
        ],
        "{found:#?}"
    );
    let by_name = |n: &str| *objs.iter().find(|d| d.name == n).unwrap();
    let net = by_name(&net_name);
    assert_eq!(net.id, net_id);
    assert_eq!(net.props.get("attachable"), Some(&Value::Bool(true)));
    assert_eq!(net.props.get("labels"), Some(&map(&[("team", "core")])));
    assert_eq!(net.props.get("driver"), Some(&Value::from("overlay")));
    let conf = by_name(&conf_name);
    assert_eq!(conf.id, conf_id);
    assert_eq!(
        conf.props.get("data"),
        Some(&Value::from("listen = 8080\n"))
    );
    let token = by_name(&token_name);
    assert_eq!(token.id, token_id);
    assert_eq!(
        token.props.get("value"),
        None,
        "a secret's value is never read"
    );
    let web = by_name(&web_name);
    assert_eq!(web.id, web_id);
    let wp = &web.props;
    assert_eq!(wp.get("swarm_name"), Some(&Value::from(web_name.as_str())));
    assert_eq!(wp.get("image"), Some(&Value::from(img.as_str())));
    assert_eq!(wp.get("replicas"), Some(&Value::Int(2)));
    assert_eq!(wp.get("env"), Some(&map(&[("MODE", "prod")])));
    assert_eq!(wp.get("labels"), Some(&map(&[("team", "core")])));
    assert_eq!(
        wp.get("networks"),
        Some(&Value::List(vec![Value::from(net_id.as_str())]))
    );
    assert_eq!(
        wp.get("aliases"),
        Some(&Value::List(vec![Value::from("web-alias")]))
    );
    let secret_ref = &wp["secrets"].as_list().unwrap()[0];
    assert_eq!(
        secret_ref.as_map().unwrap()["secret_id"],
        Value::from(token_id.as_str())
    );
    assert_eq!(
        wp["placement"].as_map().unwrap()["constraints"],
        Value::List(vec![Value::from("node.role==manager")])
    );
    assert_eq!(
        wp["restart_policy"].as_map().unwrap()["condition"],
        Value::from("on-failure")
    );

    // Filters narrow; Docker's own objects are never found; a VPC filter is one clear error.
    let mut ops = ImportFilter::all();
    ops.name_prefix = Some(prefix.clone());
    ops.tags = BTreeMap::from([("team".to_string(), "ops".to_string())]);
    let narrowed: Vec<String> = objects(&discover(&p, &ops).await)
        .iter()
        .map(|d| d.name.clone())
        .collect();
    assert_eq!(narrowed, vec![other_name.clone()]);
    let everything = discover(&p, &ImportFilter::all()).await;
    for own in ["ingress", "bridge", "host", "none", "docker_gwbridge"] {
        assert!(
            !objects(&everything).iter().any(|d| d.name == own),
            "Docker's own network `{own}` was discovered"
        );
    }
    assert!(objects(&everything).iter().any(|d| d.name == web_name));
    let mut vpc = ImportFilter::all();
    vpc.vpc = Some("vpc-1".into());
    let mut sink = |_: Found| {};
    let e = p.discover(&vpc, &mut sink).await.unwrap_err();
    assert!(e.message.contains("VPC filter"), "{e}");
    assert!(!e.message.contains('\n'), "{e}");

    // Rust: typed references through the names imported before.
    let mut names = ImportNames::new();
    let mut code = BTreeMap::new();
    for (d, var) in [(net, "net"), (token, "token"), (conf, "conf"), (web, "web")] {
        let gen = (d.schema.codegen.expect("codegen"))(d, var, &names);
        names.insert(d.schema.kind, d.id.clone(), var);
        code.insert(var, gen);
    }
    assert_eq!(code["net"].type_path, "infra::swarm::SwarmNetwork");
    assert_eq!(
        code["net"].expr,
        r#"SwarmNetwork::new("net").attachable(true).label("team", "core")"#
    );
    assert_eq!(code["web"].type_path, "infra::swarm::SwarmService");
    assert_eq!(
        code["web"].expr,
        format!(
            "SwarmService::new(\"web\").swarm_name(\"{web_name}\").image(\"{img}\").args([\"sleep\", \"100000\"])\
             .env(\"MODE\", \"prod\").label(\"team\", \"core\").replicas(2)\
             .restart_policy(infra::swarm::RestartCondition::OnFailure, std::time::Duration::from_secs(2), 3, std::time::Duration::ZERO)\
             .constraint(\"node.role==manager\").network(&net).alias(\"web-alias\").secret(&token, \"token\")\
             .config(&conf, \"/etc/app.conf\").stop_grace_period(std::time::Duration::from_secs(1)).init(true)"
        )
    );
    assert!(
        code["web"].comments.is_empty(),
        "{:?}",
        code["web"].comments
    );
    assert_eq!(
        code["token"].expr,
        r#"SwarmSecret::new("token").from_env("INFRA_SECRET_TOKEN").ignore_changes(&["value"])"#
    );
    assert!(
        !format!("{code:?}").contains("hunter2"),
        "the secret's value appears nowhere"
    );

    // Read unowned, adopt: labels only.
    let ctx = OpContext {
        stack: stack_name.clone(),
        idempotency_token: "t".into(),
        attempt: 1,
    };
    let mut adopted = Vec::new();
    for (d, name) in [(net, "net"), (token, "token"), (conf, "conf"), (web, "web")] {
        let address = Address::new(d.schema.kind, name);
        let current = p
            .read_unowned(d.schema, &d.id, &address)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{address}: not read"));
        assert_eq!(current.id, d.id);
        let owned = p
            .adopt(&ctx, &current, &address)
            .await
            .unwrap_or_else(|e| panic!("adopt {address}: {e}"));
        assert_eq!(owned.address, address);
        adopted.push(address);
    }
    hand.records.push(format!("infra-adopted_{net_id}"));
    let after = running(&web_name);
    let ids = |t: &[TaskRow]| {
        let mut v: Vec<String> = t.iter().map(|t| t.id.clone()).collect();
        v.sort();
        v
    };
    assert_eq!(ids(&after), ids(&before), "adoption replaced no task");
    assert_eq!(tasks(&web_name).len(), 2, "and started none");
    // A second adoption of the network by another stack is refused.
    let other_ctx = OpContext {
        stack: format!("{stack_name}-x"),
        ..ctx.clone()
    };
    let current = p
        .read_unowned(net.schema, &net_id, &adopted[0])
        .await
        .unwrap()
        .unwrap();
    let e = p
        .adopt(&other_ctx, &current, &adopted[0])
        .await
        .unwrap_err();
    assert!(e.message.contains("already adopted"), "{e}");

    // The owned read finds them at their addresses; none of them is discovered any more.
    let read = p.read(&stack_name).await.unwrap();
    let mut at: Vec<String> = read
        .resources
        .iter()
        .map(|o| o.address.to_string())
        .collect();
    at.sort();
    assert_eq!(
        at,
        vec![
            "swarm_config.conf",
            "swarm_network.net",
            "swarm_secret.token",
            "swarm_service.web"
        ]
    );
    assert_eq!(
        objects(&discover(&p, &filter).await)
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>(),
        vec![other_name.as_str()]
    );

    // The declaration the generated code makes plans no change against the adopted objects.
    let mut s = Stack::new(&stack_name);
    let n = s.add(
        SwarmNetwork::new("net")
            .attachable(true)
            .label("team", "core"),
    );
    let t = s.add(
        SwarmSecret::new("token")
            .value(b"placeholder".to_vec())
            .ignore_changes(&["value"]),
    );
    let c = s.add(
        SwarmConfig::new("conf")
            .data("listen = 8080\n")
            .label("team", "core"),
    );
    s.add(
        SwarmService::new("web")
            .swarm_name(&web_name)
            .image(img.as_str())
            .args(["sleep", "100000"])
            .env("MODE", "prod")
            .label("team", "core")
            .replicas(2)
            .restart_policy(
                RestartCondition::OnFailure,
                Duration::from_secs(2),
                3,
                Duration::ZERO,
            )
            .constraint("node.role==manager")
            .network(&n)
            .alias("web-alias")
            .secret(&t, "token")
            .config(&c, "/etc/app.conf")
            .stop_grace_period(Duration::from_secs(1))
            .init(true),
    );
    let engine = engine(&p);
    assert_no_changes(&engine, &s, "after adoption").await;

    // Destroy removes them all, the network's adoption record with it.
    let planned = destroy_plan(&engine, &s).await;
    let report = apply_planned(&engine, &planned).await;
    assert!(
        report.is_success(),
        "{}",
        infra_core::render::report_text(&report)
    );
    assert!(p.read(&stack_name).await.unwrap().resources.is_empty());
    let left = docker(&[
        "config",
        "ls",
        "--filter",
        &format!("name=infra-adopted_{net_id}"),
        "-q",
    ]);
    assert!(left.is_empty(), "the adoption record is gone");
    let nets = docker(&[
        "network",
        "ls",
        "--filter",
        &format!("name={net_name}"),
        "-q",
    ]);
    assert!(nets.is_empty(), "the adopted network is gone");
}
