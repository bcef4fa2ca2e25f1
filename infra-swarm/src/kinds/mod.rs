//! Swarm kinds: typed builders with validation, one module per object type.
//!
//! Every kind declares what the planner must know: which fields force a replacement (a service's
//! mode; a network's settings; a secret's or config's content), which are computed (`id`, the
//! Swarm `name` of networks, secrets and configs), which are secret (a secret's `value`) and
//! which lists are sets (a service's networks, aliases, secrets, configs, ports and mounts) and which
//! updates disrupt (a service's task-template fields: its tasks are replaced).

pub mod codegen;
mod network;
mod node;
mod secret;
mod service;

pub use network::SwarmNetwork;
pub use node::NodeLabels;
pub use secret::{SwarmConfig, SwarmSecret};
pub use service::{
    EndpointMode, FailureAction, Mount, RestartCondition, SwarmService, UpdateOrder, UpdatePolicy,
};

#[cfg(feature = "live")]
pub(crate) use network::NETWORK;
#[cfg(feature = "live")]
pub(crate) use node::{marker_key, MARKER_PREFIX};
#[cfg(feature = "live")]
pub(crate) use service::SERVICE;

/// Every Swarm kind's schema (what the `SwarmProvider` serves: a unit test of the provider
/// checks that its handlers are exactly these).
pub fn schemas() -> Vec<&'static infra_core::dsl::KindSchema> {
    vec![
        &service::SERVICE,
        &network::NETWORK,
        &secret::SECRET,
        &secret::CONFIG,
        &node::NODE_LABELS,
    ]
}
#[cfg(any(feature = "live", test))]
pub(crate) use secret::swarm_name;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use infra_core::graph::Graph;
    use infra_core::render::plan_text;
    use infra_core::Stack;

    use super::*;

    fn problems(stack: &Stack) -> Vec<String> {
        match Graph::build(stack) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn every_problem_is_reported_at_once_with_address_and_field() {
        let mut s = Stack::new("demo");
        let net = s.add(SwarmNetwork::new("net"));
        let secret = s.add(SwarmSecret::new("missing").from_file("/nonexistent/secret.txt"));
        s.add(SwarmSecret::new("unset").from_env("INFRA_TEST_SURELY_UNSET_VARIABLE"));
        s.add(
            SwarmService::new("web")
                .image("sha256:1")
                .network(&net)
                .secret(&secret, "")
                .label("infra.id", "mine")
                .publish_ingress(80, 80)
                .endpoint_mode(EndpointMode::Dnsrr)
                .limits(0.5, 64)
                .reservations(1.0, 32)
                .constraint("node.role worker"),
        );
        s.add(
            SwarmService::new("noimage")
                .global()
                .max_replicas_per_node(1)
                .rollback_policy(UpdatePolicy::new().failure_action(FailureAction::Rollback)),
        );
        let p = problems(&s);
        let expect = [
            "swarm_secret.missing: field `value`: cannot read `/nonexistent/secret.txt`",
            "swarm_secret.unset: field `value`: the environment variable `INFRA_TEST_SURELY_UNSET_VARIABLE` is not set",
            "swarm_service.web: field `secrets[0]`: the target path is empty",
            "swarm_service.web: field `labels`: `infra.id`: labels starting with `infra.` are reserved",
            "swarm_service.web: field `ports[0]`: an ingress-published port needs endpoint mode vip",
            "swarm_service.web: field `resources`: reserve_cpus 1 is more than limit_cpus 0.5",
            "swarm_service.web: field `placement.constraints[0]`: `node.role worker` is not a constraint",
            "swarm_service.noimage: field `image`: is required",
            "swarm_service.noimage: field `placement`: max_replicas_per_node applies to replicated services only",
            "swarm_service.noimage: field `rollback_config`: a rollback can't itself be rolled back",
        ];
        for e in expect {
            assert!(
                p.iter().any(|x| x.starts_with(e)),
                "missing `{e}` in:\n{}",
                p.join("\n")
            );
        }
        assert_eq!(p.len(), expect.len(), "{}", p.join("\n"));
    }

    #[test]
    fn a_secret_file_problem_never_shows_its_content() {
        let dir = std::env::temp_dir().join(format!("infra-swarm-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A directory can't be read as a file: the error names the path only.
        let mut s = Stack::new("demo");
        s.add(SwarmSecret::new("dir").from_file(&dir));
        let p = problems(&s).join("\n");
        assert!(
            p.contains("swarm_secret.dir: field `value`: cannot read"),
            "{p}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_secret_from_a_file_shows_only_its_digest_in_a_plan() {
        let path =
            std::env::temp_dir().join(format!("infra-swarm-secret-{}.txt", std::process::id()));
        std::fs::write(&path, "correct horse battery staple").unwrap();
        let mut s = Stack::new("demo");
        let token = s.add(SwarmSecret::new("token").from_file(&path));
        s.add(
            SwarmService::new("app")
                .image("sha256:1")
                .secret(&token, "token"),
        );
        std::fs::remove_file(&path).ok();
        assert!(problems(&s).is_empty(), "{:?}", problems(&s));
        let dir = std::env::temp_dir().join(format!("infra-swarm-sbx-{}", std::process::id()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let planned = rt
            .block_on(async {
                let engine = infra_core::engine::Engine::new().with_provider(
                    infra_core::sandbox::SandboxProvider::open(&dir, "swarm").unwrap(),
                );
                engine.plan(&s, &Default::default()).await
            })
            .unwrap();
        std::fs::remove_dir_all(&dir).ok();
        let text = plan_text(&planned.plan);
        let json = infra_core::render::plan_json(&planned.plan);
        assert!(
            !text.contains("battery") && !json.contains("battery"),
            "{text}"
        );
        assert!(text.contains("sensitive"), "{text}");
    }

    #[test]
    fn secrets_and_configs_rotate_create_before_destroy() {
        let mut s = Stack::new("demo");
        s.add(SwarmSecret::new("a").value(b"x".to_vec()));
        s.add(SwarmConfig::new("b").data("y"));
        assert!(s
            .resources()
            .iter()
            .all(|r| r.options.create_before_destroy));
        assert_eq!(
            swarm_name("demo", "a", "sha256:0123456789abcdef"),
            "demo_a_0123456789ab"
        );
    }

    #[test]
    fn node_labels_of_one_node_may_not_overlap() {
        let mut s = Stack::new("demo");
        s.add(NodeLabels::new("a").node("self").label("az", "a"));
        s.add(NodeLabels::new("b").node("self").label("az", "b"));
        s.add(NodeLabels::new("c").node("other").label("az", "c"));
        let p = problems(&s);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("swarm_node_labels.b: field `labels`: `az` on node `self` is also managed by swarm_node_labels.a"), "{p:?}");
    }

    #[test]
    fn a_service_on_a_network_answers_to_its_declared_name() {
        use infra_core::{Resource, Value};
        let mut s = Stack::new("demo");
        let net = s.add(SwarmNetwork::new("net"));
        let aliases = |svc: SwarmService| svc.into_spec().get("aliases").cloned();
        let names = |l: &[&str]| Value::List(l.iter().map(|a| Value::from(*a)).collect());
        assert_eq!(
            aliases(SwarmService::new("es").image("i")),
            None,
            "no network, no alias"
        );
        assert_eq!(
            aliases(SwarmService::new("es").image("i").network(&net)),
            Some(names(&["es"]))
        );
        // Extra aliases come after the declared name, once each, whatever the call order.
        assert_eq!(
            aliases(
                SwarmService::new("elasticsearch")
                    .alias("es")
                    .network(&net)
                    .alias("search")
                    .alias("es")
                    .alias("elasticsearch")
            ),
            Some(names(&["elasticsearch", "es", "search"]))
        );
    }

    #[test]
    fn aliases_are_dns_labels_on_a_network_and_not_shared() {
        let mut s = Stack::new("demo");
        let net = s.add(SwarmNetwork::new("net"));
        let other = s.add(SwarmNetwork::new("other"));
        s.add(
            SwarmService::new("search")
                .image("i")
                .network(&net)
                .alias("es")
                .alias("under_score")
                .alias("-dash")
                .alias(&"x".repeat(64))
                .alias("db"),
        );
        s.add(SwarmService::new("db").image("i").network(&net));
        // The same alias on networks that are not shared is fine.
        s.add(
            SwarmService::new("logs")
                .image("i")
                .network(&other)
                .alias("es"),
        );
        s.add(SwarmService::new("lonely").image("i").alias("solo"));
        let p = problems(&s);
        let expect = [
            "swarm_service.search: field `aliases[2]`: the alias `under_score` contains `_`; a DNS label has letters, digits and `-` only",
            "swarm_service.search: field `aliases[3]`: the alias `-dash` starts or ends with `-`",
            "swarm_service.search: field `aliases[4]`: the alias `xxxx",
            "swarm_service.search: field `aliases[5]`: `db` is also a name of swarm_service.db on a network they share",
            "swarm_service.db: field `aliases[0]`: `db` is also a name of swarm_service.search on a network they share",
            "swarm_service.lonely: field `aliases`: network aliases need a network",
        ];
        for e in expect {
            assert!(
                p.iter().any(|x| x.starts_with(e)),
                "missing `{e}` in:\n{}",
                p.join("\n")
            );
        }
        assert_eq!(p.len(), expect.len(), "{}", p.join("\n"));
    }

    #[test]
    fn every_mount_problem_is_reported_at_once_with_address_and_field() {
        let mut s = Stack::new("demo");
        let conf = s.add(SwarmConfig::new("conf").data("x"));
        let token = s.add(SwarmSecret::new("token").value(b"x".to_vec()));
        s.add(
            SwarmService::new("shipper")
                .image("i")
                .user(" ")
                .config(&conf, "/etc/shipper.yml")
                .secret(&token, "token")
                .mount(Mount::bind("var/lib/docker/containers", "/logs").read_only())
                .mount(Mount::volume("data", "relative/target"))
                .mount(Mount::volume("-bad", "/v"))
                .mount(Mount::volume("my volume", "/w"))
                .mount(
                    Mount::tmpfs("/scratch")
                        .read_only()
                        .size_mb(0)
                        .mode(0o17777),
                )
                .mount(Mount::tmpfs("/scratch/"))
                .mount(Mount::bind("/etc", "/etc/shipper.yml"))
                .mount(Mount::bind("/run", "/run/secrets/token"))
                .mount(Mount::bind("/", "/"))
                .mount(
                    Mount::bind("/srv", "/srv")
                        .size_mb(1)
                        .volume_label("k", "v"),
                )
                .mount(
                    Mount::volume("opts", "/opts")
                        .volume_driver_option("type", "nfs")
                        .volume_label("infra.id", "x")
                        .mode(0o700),
                ),
        );
        // Fine: the same volume in two services, read-only volumes and binds, a sized tmpfs.
        s.add(
            SwarmService::new("ok")
                .image("i")
                .mount(Mount::volume("data", "/data").read_only())
                .mount(Mount::volume("data2", "/data2").volume_driver("local"))
                .mount(Mount::bind("/var/lib/docker/containers", "/logs").read_only())
                .mount(Mount::tmpfs("/tmp").size_mb(16).mode(0o1777)),
        );
        let p = problems(&s);
        let expect = [
            "swarm_service.shipper: field `user`: is empty",
            "swarm_service.shipper: field `mounts[0]`: the bind source `var/lib/docker/containers` is not an absolute path",
            "swarm_service.shipper: field `mounts[1]`: the target `relative/target` is not an absolute path",
            "swarm_service.shipper: field `mounts[2]`: the volume name `-bad` must start with a letter or a digit",
            "swarm_service.shipper: field `mounts[3]`: the volume name `my volume` contains ` `",
            "swarm_service.shipper: field `mounts[4]`: a read-only tmpfs is always empty",
            "swarm_service.shipper: field `mounts[4]`: the tmpfs size must be positive, got 0 bytes",
            "swarm_service.shipper: field `mounts[4]`: the tmpfs mode 17777 (octal) is not a permission mode",
            "swarm_service.shipper: field `mounts[5]`: the target `/scratch/` is also the target of mounts[4]",
            "swarm_service.shipper: field `mounts[6]`: the target `/etc/shipper.yml` is also the target of configs[0]",
            "swarm_service.shipper: field `mounts[7]`: the target `/run/secrets/token` is also the target of secrets[0]",
            "swarm_service.shipper: field `mounts[8]`: the target `/` would hide",
            "swarm_service.shipper: field `mounts[9]`: `labels` applies to volume mounts only, not to a bind mount",
            "swarm_service.shipper: field `mounts[9]`: `size_bytes` applies to tmpfs mounts only, not to a bind mount",
            "swarm_service.shipper: field `mounts[10]`: `mode` applies to tmpfs mounts only, not to a volume mount",
            "swarm_service.shipper: field `mounts[10]`: driver options need the driver they are for",
            "swarm_service.shipper: field `mounts[10]`: volume label `infra.id`: labels starting with `infra.` are reserved",
        ];
        for e in expect {
            assert!(
                p.iter().any(|x| x.starts_with(e)),
                "missing `{e}` in:\n{}",
                p.join("\n")
            );
        }
        assert_eq!(p.len(), expect.len(), "{}", p.join("\n"));
    }

    #[test]
    fn mounts_are_a_set_and_disrupt_the_tasks() {
        use infra_core::Resource;
        let schema = SwarmService::SCHEMA;
        assert!(schema.is_unordered("mounts"));
        let a = SwarmService::new("a")
            .image("i")
            .mount(Mount::tmpfs("/t"))
            .mount(Mount::volume("v", "/v"))
            .into_spec();
        assert_eq!(
            a.get("mounts").and_then(|m| m.as_list()).map(<[_]>::len),
            Some(2)
        );
        for field in ["mounts", "user"] {
            assert!(
                schema.disruption(field).is_some(),
                "{field} is a task-template field"
            );
        }
    }

    #[test]
    fn defaults_are_left_out_so_reads_compare_equal() {
        use infra_core::Resource;
        let spec = SwarmService::new("a")
            .image("i")
            .init(false)
            .endpoint_mode(EndpointMode::Vip)
            .healthcheck("true", Duration::from_secs(1), Duration::from_secs(1), 1)
            .healthcheck_start_period(Duration::ZERO)
            .into_spec();
        for k in ["init", "endpoint_mode"] {
            assert!(spec.get(k).is_none(), "{k}");
        }
    }
}
