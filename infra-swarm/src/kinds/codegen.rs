//! Import's code generators ([`infra_core::import::Codegen`]) for the Swarm kinds: the builder
//! chain that declares one discovered object, default values left out, references to objects
//! imported before it typed through [`ImportNames`]. Types other than the builder are written
//! with their full path (`infra::swarm::UpdatePolicy`, `std::time::Duration`), so a generated
//! module needs only the builders' `use` lines.

use std::collections::BTreeMap;
#[cfg(test)]
use std::time::Duration;

use infra_core::import::{rust_str, Discovered, Generated, ImportNames};
use infra_core::Value;

/// The environment variable a generated secret's value placeholder reads:
/// `INFRA_SECRET_<NAME>`, the name upper-cased with anything but letters and digits as `_`.
pub fn secret_env_var(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("INFRA_SECRET_{upper}")
}

/// A builder chain being written.
struct Chain {
    expr: String,
    comments: Vec<String>,
}

impl Chain {
    fn new(ty: &str, name: &str) -> Self {
        Chain {
            expr: format!("{ty}::new({})", rust_str(name)),
            comments: Vec::new(),
        }
    }
    fn call(&mut self, method: &str, args: &str) {
        self.expr.push_str(&format!(".{method}({args})"));
    }
    fn done(self, type_path: &'static str) -> Generated {
        Generated {
            type_path,
            expr: self.expr,
            comments: self.comments,
        }
    }
}

fn map(props: &BTreeMap<String, Value>, key: &str) -> BTreeMap<String, Value> {
    props
        .get(key)
        .and_then(Value::as_map)
        .cloned()
        .unwrap_or_default()
}

fn list<'a>(props: &'a BTreeMap<String, Value>, key: &str) -> &'a [Value] {
    props.get(key).and_then(Value::as_list).unwrap_or(&[])
}

fn int(m: &BTreeMap<String, Value>, key: &str) -> i64 {
    m.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn string(m: &BTreeMap<String, Value>, key: &str) -> String {
    m.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A `Duration` expression for milliseconds.
fn duration(ms: i64) -> String {
    if ms % 1000 == 0 {
        match ms {
            0 => "std::time::Duration::ZERO".to_string(),
            _ => format!("std::time::Duration::from_secs({})", ms / 1000),
        }
    } else {
        format!("std::time::Duration::from_millis({ms})")
    }
}

/// A float literal (`0.5`, `1.0`).
fn float(v: &Value) -> String {
    format!("{:?}", v.as_f64().unwrap_or(0.0))
}

/// `.label(k, v)` for each user label.
fn labels(c: &mut Chain, props: &BTreeMap<String, Value>) {
    for (k, v) in map(props, "labels") {
        c.call(
            "label",
            &format!(
                "{}, {}",
                rust_str(&k),
                rust_str(v.as_str().unwrap_or_default())
            ),
        );
    }
}

/// `swarm_network`.
pub(crate) fn network(object: &Discovered, name: &str, _names: &ImportNames) -> Generated {
    let mut c = Chain::new("SwarmNetwork", name);
    for flag in ["attachable", "encrypted", "internal"] {
        if object.props.get(flag).and_then(Value::as_bool) == Some(true) {
            c.call(flag, "true");
        }
    }
    labels(&mut c, &object.props);
    c.done("infra::swarm::SwarmNetwork")
}

/// `swarm_config`: its data as text.
pub(crate) fn config(object: &Discovered, name: &str, _names: &ImportNames) -> Generated {
    let mut c = Chain::new("SwarmConfig", name);
    c.call(
        "data",
        &rust_str(
            object
                .props
                .get("data")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        ),
    );
    labels(&mut c, &object.props);
    c.done("infra::swarm::SwarmConfig")
}

/// `swarm_secret`: Swarm never returns a secret's value, so the value is a placeholder read
/// from an environment variable, and its changes are ignored until the declaration says it.
pub(crate) fn secret(object: &Discovered, name: &str, _names: &ImportNames) -> Generated {
    let var = secret_env_var(name);
    let mut c = Chain::new("SwarmSecret", name);
    c.comments.push(format!(
        "Swarm never returns a secret's value: set `{var}` to the value of `{}` when planning.",
        object.name
    ));
    c.comments.push(
        "`ignore_changes` keeps the adopted secret, whose value can't be compared; remove it to \
         rotate the secret to the declared value (a new secret, then the services switch to it)."
            .into(),
    );
    c.call("from_env", &rust_str(&var));
    labels(&mut c, &object.props);
    c.call("ignore_changes", "&[\"value\"]");
    c.done("infra::swarm::SwarmSecret")
}

/// An update or rollback policy's builder, or `None` for Swarm's defaults.
fn policy(m: &BTreeMap<String, Value>) -> Option<String> {
    let mut e = String::from("infra::swarm::UpdatePolicy::new()");
    let start = e.len();
    if int(m, "parallelism") != 1 {
        e.push_str(&format!(".parallelism({})", int(m, "parallelism")));
    }
    if int(m, "delay_ms") != 0 {
        e.push_str(&format!(".delay({})", duration(int(m, "delay_ms"))));
    }
    match string(m, "failure_action").as_str() {
        "continue" => e.push_str(".failure_action(infra::swarm::FailureAction::Continue)"),
        "rollback" => e.push_str(".failure_action(infra::swarm::FailureAction::Rollback)"),
        _ => {}
    }
    if int(m, "monitor_ms") != 5000 {
        e.push_str(&format!(".monitor({})", duration(int(m, "monitor_ms"))));
    }
    let ratio = m
        .get("max_failure_ratio")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    if ratio != 0.0 {
        e.push_str(&format!(".max_failure_ratio({ratio:?})"));
    }
    if string(m, "order") == "start-first" {
        e.push_str(".order(infra::swarm::UpdateOrder::StartFirst)");
    }
    (e.len() > start).then_some(e)
}

/// A mount's builder.
fn mount(m: &BTreeMap<String, Value>, comments: &mut Vec<String>) -> String {
    let target = rust_str(&string(m, "target"));
    let source = rust_str(&string(m, "source"));
    let mut e = match string(m, "type").as_str() {
        "volume" => format!("infra::swarm::Mount::volume({source}, {target})"),
        "bind" => format!("infra::swarm::Mount::bind({source}, {target})"),
        _ => format!("infra::swarm::Mount::tmpfs({target})"),
    };
    if m.get("read_only").and_then(Value::as_bool) == Some(true) {
        e.push_str(".read_only()");
    }
    for (k, v) in map(m, "labels") {
        e.push_str(&format!(
            ".volume_label({}, {})",
            rust_str(&k),
            rust_str(v.as_str().unwrap_or_default())
        ));
    }
    if let Some(d) = m.get("driver").and_then(Value::as_str) {
        e.push_str(&format!(".volume_driver({})", rust_str(d)));
    }
    for (k, v) in map(m, "driver_options") {
        e.push_str(&format!(
            ".volume_driver_option({}, {})",
            rust_str(&k),
            rust_str(v.as_str().unwrap_or_default())
        ));
    }
    if let Some(bytes) = m.get("size_bytes").and_then(Value::as_i64) {
        let mib = 1024 * 1024;
        if bytes % mib != 0 {
            comments.push(format!(
                "the tmpfs at {target} is {bytes} bytes; the builder sizes in MiB (rounded up here)"
            ));
        }
        e.push_str(&format!(".size_mb({})", (bytes + mib - 1) / mib));
    }
    if let Some(mode) = m.get("mode").and_then(Value::as_i64) {
        e.push_str(&format!(".mode(0o{mode:o})"));
    }
    e
}

/// `swarm_service`: the image as the service runs it (an id or a name), its Swarm name kept
/// with `.swarm_name(..)`, typed references to the networks, secrets and configs imported.
pub(crate) fn service(object: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let p = &object.props;
    let mut c = Chain::new("SwarmService", name);
    if let Some(n) = p.get("swarm_name").and_then(Value::as_str) {
        c.call("swarm_name", &rust_str(n));
    }
    if let Some(image) = p.get("image").and_then(Value::as_str) {
        c.call("image", &rust_str(image));
    }
    for (field, method) in [("command", "command"), ("args", "args")] {
        let items: Vec<String> = list(p, field)
            .iter()
            .map(|v| rust_str(v.as_str().unwrap_or_default()))
            .collect();
        if !items.is_empty() {
            c.call(method, &format!("[{}]", items.join(", ")));
        }
    }
    for (k, v) in map(p, "env") {
        c.call(
            "env",
            &format!(
                "{}, {}",
                rust_str(&k),
                rust_str(v.as_str().unwrap_or_default())
            ),
        );
    }
    if let Some(u) = p.get("user").and_then(Value::as_str) {
        c.call("user", &rust_str(u));
    }
    labels(&mut c, p);
    match p.get("mode").and_then(Value::as_str) {
        Some("global") => c.call("global", ""),
        _ => {
            let n = p.get("replicas").and_then(Value::as_i64).unwrap_or(1);
            if n != 1 {
                c.call("replicas", &n.to_string());
            }
        }
    }
    for (field, method) in [
        ("update_config", "update_policy"),
        ("rollback_config", "rollback_policy"),
    ] {
        if let Some(e) = policy(&map(p, field)) {
            c.call(method, &e);
        }
    }
    let rp = map(p, "restart_policy");
    if !rp.is_empty() {
        let condition = string(&rp, "condition");
        let (delay, attempts, window) = (
            int(&rp, "delay_ms"),
            int(&rp, "max_attempts"),
            int(&rp, "window_ms"),
        );
        if condition != "any" || delay != 5000 || attempts != 0 || window != 0 {
            let cond = match condition.as_str() {
                "on-failure" => "OnFailure",
                "none" => "None",
                _ => "Any",
            };
            c.call(
                "restart_policy",
                &format!(
                    "infra::swarm::RestartCondition::{cond}, {}, {attempts}, {}",
                    duration(delay),
                    duration(window)
                ),
            );
        }
    }
    let placement = map(p, "placement");
    for v in list(&placement, "constraints") {
        c.call("constraint", &rust_str(v.as_str().unwrap_or_default()));
    }
    for v in list(&placement, "spread") {
        c.call("spread", &rust_str(v.as_str().unwrap_or_default()));
    }
    if let Some(n) = placement
        .get("max_replicas_per_node")
        .and_then(Value::as_i64)
    {
        c.call("max_replicas_per_node", &n.to_string());
    }
    let r = map(p, "resources");
    for (method, cpus, mem) in [
        ("limits", "limit_cpus", "limit_memory_mb"),
        ("reservations", "reserve_cpus", "reserve_memory_mb"),
    ] {
        match (r.get(cpus), r.get(mem)) {
            (Some(cv), Some(mv)) => {
                c.call(method, &format!("{}, {}", float(cv), mv.as_i64().unwrap_or(0)))
            }
            (None, None) => {}
            _ => c.comments.push(format!(
                "its {method} set only one of CPU and memory; `.{method}(cpus, memory_mb)` sets both, so they are left out"
            )),
        }
    }
    for id in list(p, "networks").iter().filter_map(Value::as_str) {
        match names.reference("swarm_network", id) {
            Some(r) => c.call("network", &r),
            None => c.comments.push(format!(
                "it is attached to network {id}, which was not imported: attach it with `.network(..)`"
            )),
        }
    }
    for a in list(p, "aliases").iter().filter_map(Value::as_str) {
        if Some(a) != p.get("swarm_name").and_then(Value::as_str) {
            c.call("alias", &rust_str(a));
        }
    }
    for (field, id_key, method, kind) in [
        ("secrets", "secret_id", "secret", "swarm_secret"),
        ("configs", "config_id", "config", "swarm_config"),
    ] {
        for m in list(p, field).iter().filter_map(Value::as_map) {
            let id = string(m, id_key);
            let target = string(m, "target");
            match names.reference(kind, &id) {
                Some(r) => c.call(method, &format!("{r}, {}", rust_str(&target))),
                None => c.comments.push(format!(
                    "it mounts {method} {id} at `{target}`, which was not imported: add it with `.{method}(..)`"
                )),
            }
        }
    }
    if p.get("endpoint_mode").and_then(Value::as_str) == Some("dnsrr") {
        c.call("endpoint_mode", "infra::swarm::EndpointMode::Dnsrr");
    }
    for m in list(p, "ports").iter().filter_map(Value::as_map) {
        let (published, target) = (int(m, "published"), int(m, "target"));
        let method = match (string(m, "protocol").as_str(), string(m, "mode").as_str()) {
            ("tcp", "host") => "publish",
            ("udp", "host") => "publish_udp",
            ("tcp", _) => "publish_ingress",
            (proto, mode) => {
                c.comments.push(format!(
                    "its port {published}->{target} ({proto}, {mode} mode) can't be declared"
                ));
                continue;
            }
        };
        c.call(method, &format!("{published}, {target}"));
    }
    if let Some(ms) = p.get("stop_grace_period_ms").and_then(Value::as_i64) {
        c.call("stop_grace_period", &duration(ms));
    }
    if p.get("init").and_then(Value::as_bool) == Some(true) {
        c.call("init", "true");
    }
    let mut mount_comments = Vec::new();
    for m in list(p, "mounts").iter().filter_map(Value::as_map) {
        let e = mount(m, &mut mount_comments);
        c.call("mount", &e);
    }
    c.comments.extend(mount_comments);
    c.done("infra::swarm::SwarmService")
}

#[cfg(test)]
mod tests {
    use infra_core::dsl::Resource;
    use infra_core::import::Discovered;
    use infra_core::map;

    use super::*;
    use crate::{SwarmService, UpdatePolicy};

    fn object(
        schema: &'static infra_core::dsl::KindSchema,
        name: &str,
        props: Value,
    ) -> Discovered {
        Discovered {
            schema,
            id: format!("id-{name}"),
            name: name.to_string(),
            props: props.as_map().cloned().unwrap_or_default(),
            aliases: Vec::new(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn a_service_is_written_with_only_what_differs_from_the_defaults() {
        // What the owned read gives for a service made with the builder's defaults plus a few
        // settings (the builder's own props are that shape).
        let spec = SwarmService::new("x")
            .image("nginx:1.27")
            .global()
            .update_policy(
                UpdatePolicy::new()
                    .parallelism(2)
                    .delay(Duration::from_millis(1500))
                    .order(crate::UpdateOrder::StartFirst),
            )
            .publish(8080, 80)
            .publish_udp(53, 53)
            .mount(crate::Mount::volume("data", "/data").read_only())
            .mount(crate::Mount::tmpfs("/tmp").size_mb(16).mode(0o1777))
            .limits(0.5, 256)
            .into_spec();
        let mut props = Value::Map(spec.props);
        if let Value::Map(m) = &mut props {
            m.insert("swarm_name".into(), Value::from("edge"));
            m.insert(
                "networks".into(),
                Value::List(vec!["n1".into(), "n2".into()]),
            );
            m.insert(
                "secrets".into(),
                Value::List(vec![map! { "secret_id" => "s1", "secret_name" => "tls", "target" => "tls.pem", "uid" => "0", "gid" => "0", "mode" => 0o444 }]),
            );
        }
        let mut names = ImportNames::new();
        names.insert("swarm_network", "n1", "front");
        let g = service(
            &object(crate::SwarmService::SCHEMA, "edge", props),
            "edge",
            &names,
        );
        assert_eq!(g.type_path, "infra::swarm::SwarmService");
        assert_eq!(
            g.expr,
            "SwarmService::new(\"edge\").swarm_name(\"edge\").image(\"nginx:1.27\").global()\
             .update_policy(infra::swarm::UpdatePolicy::new().parallelism(2).delay(std::time::Duration::from_millis(1500)).order(infra::swarm::UpdateOrder::StartFirst))\
             .limits(0.5, 256).network(&front).publish(8080, 80).publish_udp(53, 53)\
             .mount(infra::swarm::Mount::volume(\"data\", \"/data\").read_only())\
             .mount(infra::swarm::Mount::tmpfs(\"/tmp\").size_mb(16).mode(0o1777))"
        );
        assert_eq!(
            g.comments,
            vec![
                "it is attached to network n2, which was not imported: attach it with `.network(..)`".to_string(),
                "it mounts secret s1 at `tls.pem`, which was not imported: add it with `.secret(..)`".to_string(),
            ]
        );
    }

    #[test]
    fn a_secret_is_a_placeholder_and_a_config_its_text() {
        let names = ImportNames::new();
        let s = secret(
            &object(
                crate::SwarmSecret::SCHEMA,
                "db-pass",
                map! { "name" => "db-pass", "labels" => map! { "a" => "b" } },
            ),
            "db_pass",
            &names,
        );
        assert_eq!(
            s.expr,
            r#"SwarmSecret::new("db_pass").from_env("INFRA_SECRET_DB_PASS").label("a", "b").ignore_changes(&["value"])"#
        );
        assert!(
            s.comments[0].contains("INFRA_SECRET_DB_PASS"),
            "{:?}",
            s.comments
        );
        let c = config(
            &object(
                crate::SwarmConfig::SCHEMA,
                "c",
                map! { "data" => "a \"quoted\"\nline", "name" => "c" },
            ),
            "c",
            &names,
        );
        assert_eq!(
            c.expr,
            r#"SwarmConfig::new("c").data("a \"quoted\"\nline")"#
        );
        assert_eq!(c.type_path, "infra::swarm::SwarmConfig");
    }

    #[test]
    fn a_service_with_its_own_swarm_name_gets_no_default_alias() {
        let mut stack = infra_core::Stack::new("st");
        let net = stack.add(crate::SwarmNetwork::new("n"));
        let aliases = |s: SwarmService| s.into_spec().get("aliases").cloned();
        assert_eq!(
            aliases(SwarmService::new("web").network(&net).swarm_name("web")),
            None
        );
        assert_eq!(
            aliases(SwarmService::new("web").swarm_name("web").network(&net)),
            None
        );
        assert_eq!(
            aliases(
                SwarmService::new("web")
                    .swarm_name("w")
                    .network(&net)
                    .alias("x")
            ),
            Some(Value::List(vec!["x".into()]))
        );
    }
}
