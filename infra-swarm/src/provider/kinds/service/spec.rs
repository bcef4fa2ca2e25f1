//! A service's properties as a Docker `ServiceSpec`, written as JSON in the Engine API's own
//! field names (so this file reads like the API reference) and handed to bollard's typed model.

use std::collections::BTreeMap;

use bollard::models::ServiceSpec;
use infra_core::dsl::Address;
use infra_core::provider::ProviderError;
use infra_core::value::digest_of;
use infra_core::Value;
use serde_json::{json, Map, Value as Json};

use crate::provider::convert::{bad, owned_labels, stack_name, text, with_record};

/// Service label: the healthcheck as declared. The engine returns the healthcheck under the key
/// `Healthcheck` while bollard's model (following the API's swagger file) reads `HealthCheck`,
/// so a read through bollard never sees it; this label carries it instead. The engine accepts
/// either spelling on write (Go's JSON decoding ignores case), so what is sent takes effect.
pub(crate) const LABEL_HEALTHCHECK: &str = "infra.healthcheck";
/// Container label on a service's tasks: the digest of the task template (and endpoint spec)
/// they were created from, so the convergence wait can tell new tasks from old ones.
pub(crate) const LABEL_TEMPLATE: &str = "infra.template";

pub(super) const NS_PER_MS: i64 = 1_000_000;

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v.and_then(Value::as_list)
        .map(|l| l.iter().map(text).collect())
}

fn int(m: &BTreeMap<String, Value>, key: &str) -> Option<i64> {
    m.get(key).and_then(|v| v.as_f64()).map(|f| f as i64)
}

fn ms(m: &BTreeMap<String, Value>, key: &str) -> i64 {
    int(m, key).unwrap_or(0) * NS_PER_MS
}

fn policy(v: Option<&Value>) -> Json {
    let Some(m) = v.and_then(Value::as_map) else {
        return Json::Null;
    };
    json!({
        "Parallelism": int(m, "parallelism").unwrap_or(1),
        "Delay": ms(m, "delay_ms"),
        "FailureAction": m.get("failure_action").map(text).unwrap_or_else(|| "pause".into()),
        "Monitor": ms(m, "monitor_ms"),
        "MaxFailureRatio": m.get("max_failure_ratio").and_then(Value::as_f64).unwrap_or(0.0),
        "Order": m.get("order").map(text).unwrap_or_else(|| "stop-first".into()),
    })
}

/// The Swarm name of a stack's named volume: `<stack>_<name>`, as `docker stack deploy` names
/// them, so that two stacks on one engine never share data by accident.
pub(crate) fn volume_name(stack: &str, name: &str) -> String {
    format!("{stack}_{name}")
}

/// One mount as the Engine API's `Mount`, with only what was declared: Swarm then returns the
/// same fields (no `ReadOnly: false`, no empty option objects), and the read compares equal.
fn mount(stack: &str, m: &BTreeMap<String, Value>) -> Json {
    let kind = m.get("type").map(text).unwrap_or_default();
    let mut out = Map::new();
    out.insert("Type".into(), kind.clone().into());
    out.insert(
        "Target".into(),
        m.get("target").map(text).unwrap_or_default().into(),
    );
    if let Some(source) = m.get("source").map(text) {
        let source = if kind == "volume" {
            volume_name(stack, &source)
        } else {
            source
        };
        out.insert("Source".into(), source.into());
    }
    if m.get("read_only").and_then(Value::as_bool) == Some(true) {
        out.insert("ReadOnly".into(), true.into());
    }
    let strings = |v: Option<&Value>| -> Option<Json> {
        let m = v?.as_map()?;
        Some(Json::Object(
            m.iter().map(|(k, v)| (k.clone(), text(v).into())).collect(),
        ))
    };
    let mut volume = Map::new();
    if let Some(labels) = strings(m.get("labels")) {
        volume.insert("Labels".into(), labels);
    }
    if let Some(driver) = m.get("driver").map(text) {
        let mut dc = json!({ "Name": driver });
        if let Some(opts) = strings(m.get("driver_options")) {
            dc["Options"] = opts;
        }
        volume.insert("DriverConfig".into(), dc);
    }
    if !volume.is_empty() {
        out.insert("VolumeOptions".into(), Json::Object(volume));
    }
    let mut tmpfs = Map::new();
    if let Some(size) = int(m, "size_bytes") {
        tmpfs.insert("SizeBytes".into(), size.into());
    }
    if let Some(mode) = int(m, "mode") {
        tmpfs.insert("Mode".into(), mode.into());
    }
    if !tmpfs.is_empty() {
        out.insert("TmpfsOptions".into(), Json::Object(tmpfs));
    }
    Json::Object(out)
}

/// A service's Swarm name: its declared `swarm_name` (an adopted service keeps its own), else
/// `<stack>_<name>`.
pub(crate) fn service_name(
    stack: &str,
    address: &Address,
    props: &BTreeMap<String, Value>,
) -> String {
    match props.get("swarm_name") {
        Some(n) => text(n),
        None => stack_name(stack, address),
    }
}

/// The Docker spec for a service's properties, and the digest of its task template.
pub(crate) fn service_spec(
    stack: &str,
    address: &Address,
    props: &BTreeMap<String, Value>,
    protect: bool,
) -> Result<(ServiceSpec, String), ProviderError> {
    let get = |k: &str| props.get(k);
    let mut cs = Map::new();
    cs.insert(
        "Image".into(),
        get("image")
            .map(text)
            .ok_or_else(|| bad(address, "no image"))?
            .into(),
    );
    if let Some(c) = strings(get("command")) {
        cs.insert("Command".into(), json!(c));
    }
    if let Some(a) = strings(get("args")) {
        cs.insert("Args".into(), json!(a));
    }
    if let Some(env) = get("env").and_then(Value::as_map) {
        let list: Vec<String> = env
            .iter()
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect();
        cs.insert("Env".into(), json!(list));
    }
    if let Some(u) = get("user") {
        cs.insert("User".into(), text(u).into());
    }
    if let Some(list) = get("mounts").and_then(Value::as_list) {
        let mounts: Vec<Json> = list
            .iter()
            .filter_map(Value::as_map)
            .map(|m| mount(stack, m))
            .collect();
        cs.insert("Mounts".into(), Json::Array(mounts));
    }
    if let Some(ms) = get("stop_grace_period_ms").and_then(Value::as_i64) {
        cs.insert("StopGracePeriod".into(), json!(ms * NS_PER_MS));
    }
    if get("init").and_then(Value::as_bool) == Some(true) {
        cs.insert("Init".into(), json!(true));
    }
    if let Some(h) = get("healthcheck").and_then(Value::as_map) {
        let mut hc = json!({
            "Test": strings(h.get("test")).unwrap_or_default(),
            "Interval": ms(h, "interval_ms"),
            "Timeout": ms(h, "timeout_ms"),
            "Retries": int(h, "retries").unwrap_or(0),
        });
        if let Some(sp) = int(h, "start_period_ms").filter(|v| *v > 0) {
            hc["StartPeriod"] = json!(sp * NS_PER_MS);
        }
        cs.insert("HealthCheck".into(), hc);
    }
    for (field, key, id, name) in [
        ("secrets", "Secrets", "secret_id", "secret_name"),
        ("configs", "Configs", "config_id", "config_name"),
    ] {
        let Some(list) = get(field).and_then(Value::as_list) else {
            continue;
        };
        let (id_key, name_key) = if field == "secrets" {
            ("SecretID", "SecretName")
        } else {
            ("ConfigID", "ConfigName")
        };
        let refs: Vec<Json> = list
            .iter()
            .filter_map(Value::as_map)
            .map(|m| {
                json!({
                    id_key: m.get(id).map(text).unwrap_or_default(),
                    name_key: m.get(name).map(text).unwrap_or_default(),
                    "File": {
                        "Name": m.get("target").map(text).unwrap_or_default(),
                        "UID": m.get("uid").map(text).unwrap_or_else(|| "0".into()),
                        "GID": m.get("gid").map(text).unwrap_or_else(|| "0".into()),
                        "Mode": int(m, "mode").unwrap_or(0o444),
                    }
                })
            })
            .collect();
        cs.insert(key.into(), Json::Array(refs));
    }

    let mut task = Map::new();
    if let Some(rp) = get("restart_policy").and_then(Value::as_map) {
        task.insert(
            "RestartPolicy".into(),
            json!({
                "Condition": rp.get("condition").map(text).unwrap_or_else(|| "any".into()),
                "Delay": ms(rp, "delay_ms"),
                "MaxAttempts": int(rp, "max_attempts").unwrap_or(0),
                "Window": ms(rp, "window_ms"),
            }),
        );
    }
    if let Some(p) = get("placement").and_then(Value::as_map) {
        let mut placement = Map::new();
        if let Some(c) = strings(p.get("constraints")) {
            placement.insert("Constraints".into(), json!(c));
        }
        if let Some(s) = strings(p.get("spread")) {
            let prefs: Vec<Json> = s
                .into_iter()
                .map(|d| json!({ "Spread": { "SpreadDescriptor": d } }))
                .collect();
            placement.insert("Preferences".into(), Json::Array(prefs));
        }
        if let Some(n) = int(p, "max_replicas_per_node") {
            placement.insert("MaxReplicas".into(), json!(n));
        }
        task.insert("Placement".into(), Json::Object(placement));
    }
    if let Some(r) = get("resources").and_then(Value::as_map) {
        let side = |cpus: &str, mem: &str| {
            let mut m = Map::new();
            if let Some(c) = r.get(cpus).and_then(Value::as_f64) {
                m.insert("NanoCPUs".into(), json!((c * 1e9).round() as i64));
            }
            if let Some(mb) = int(r, mem) {
                m.insert("MemoryBytes".into(), json!(mb * 1024 * 1024));
            }
            Json::Object(m)
        };
        task.insert(
            "Resources".into(),
            json!({
                "Limits": side("limit_cpus", "limit_memory_mb"),
                "Reservations": side("reserve_cpus", "reserve_memory_mb"),
            }),
        );
    }
    if let Some(nets) = strings(get("networks")) {
        // Every attachment gets every alias (the declared name first): the service answers to
        // its short name on each of its networks, as with `docker stack deploy`.
        let aliases = strings(get("aliases")).unwrap_or_default();
        let list: Vec<Json> = nets
            .into_iter()
            .map(|n| {
                if aliases.is_empty() {
                    json!({ "Target": n })
                } else {
                    json!({ "Target": n, "Aliases": aliases })
                }
            })
            .collect();
        task.insert("Networks".into(), Json::Array(list));
    }

    let mut endpoint = Map::new();
    endpoint.insert(
        "Mode".into(),
        get("endpoint_mode")
            .map(text)
            .unwrap_or_else(|| "vip".into())
            .into(),
    );
    if let Some(ports) = get("ports").and_then(Value::as_list) {
        let list: Vec<Json> = ports
            .iter()
            .filter_map(Value::as_map)
            .map(|m| {
                json!({
                    "Protocol": m.get("protocol").map(text).unwrap_or_else(|| "tcp".into()),
                    "TargetPort": int(m, "target").unwrap_or(0),
                    "PublishedPort": int(m, "published").unwrap_or(0),
                    "PublishMode": m.get("mode").map(text).unwrap_or_else(|| "host".into()),
                })
            })
            .collect();
        endpoint.insert("Ports".into(), Json::Array(list));
    }

    // The template digest covers what makes Swarm replace tasks: the task template and the
    // endpoint spec. Canonical JSON (sorted keys) so that equal specs give equal digests.
    task.insert("ContainerSpec".into(), Json::Object(cs.clone()));
    let canonical = serde_json::to_string(&Value::from_json(json!({
        "TaskTemplate": task,
        "EndpointSpec": endpoint,
    })))
    .map_err(|e| bad(address, e))?;
    let template = digest_of(canonical.as_bytes());
    cs.insert("Labels".into(), json!({ LABEL_TEMPLATE: template }));
    task.insert("ContainerSpec".into(), Json::Object(cs));

    let mode = match get("mode").map(text).as_deref() {
        Some("global") => json!({ "Global": {} }),
        _ => {
            json!({ "Replicated": { "Replicas": get("replicas").and_then(Value::as_i64).unwrap_or(1) } })
        }
    };
    let mut labels = owned_labels(stack, address, protect, get("labels"));
    with_record(&mut labels, &crate::kinds::SERVICE, props);
    if let Some(h) = get("healthcheck") {
        labels.insert(
            LABEL_HEALTHCHECK.into(),
            serde_json::to_string(h)
                .map_err(|e| bad(address, e))?
                .into(),
        );
    }
    let mut spec = json!({
        "Name": service_name(stack, address, props),
        "Labels": labels,
        "TaskTemplate": task,
        "Mode": mode,
        "EndpointSpec": endpoint,
    });
    for (field, key) in [
        ("update_config", "UpdateConfig"),
        ("rollback_config", "RollbackConfig"),
    ] {
        let p = policy(get(field));
        if !p.is_null() {
            spec[key] = p;
        }
    }
    let spec: ServiceSpec = serde_json::from_value(spec).map_err(|e| bad(address, e))?;
    Ok((spec, template))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use infra_core::dsl::Resource;
    use infra_core::plan::values_equal;

    use bollard::models::Service;

    use super::super::observe::observe_service;
    use super::*;
    use crate::{
        EndpointMode, FailureAction, Mount, RestartCondition, SwarmService, UpdateOrder,
        UpdatePolicy,
    };

    /// What the builder declares comes back unchanged from the spec the provider sends: the
    /// offline half of "a no-op plan is truly empty" (the live tests cover Swarm's fill-ins).
    #[test]
    fn a_declared_service_reads_back_as_declared() {
        let spec = SwarmService::new("app")
            .image("sha256:abc")
            .command(["/bin/sh"])
            .args(["-c", "sleep 1"])
            .env("A", "1")
            .label("team", "core")
            .replicas(3)
            .update_policy(
                UpdatePolicy::new()
                    .parallelism(2)
                    .delay(Duration::from_millis(1500))
                    .order(UpdateOrder::StartFirst)
                    .failure_action(FailureAction::Rollback)
                    .max_failure_ratio(0.1),
            )
            .restart_policy(
                RestartCondition::OnFailure,
                Duration::from_secs(2),
                3,
                Duration::from_secs(60),
            )
            .constraint("node.role == worker")
            .spread("node.labels.az")
            .max_replicas_per_node(2)
            .limits(0.5, 256)
            .reservations(0.1, 64)
            .healthcheck(
                "true",
                Duration::from_secs(1),
                Duration::from_millis(500),
                3,
            )
            .publish(8080, 80)
            .endpoint_mode(EndpointMode::Dnsrr)
            .stop_grace_period(Duration::from_secs(2))
            .init(true)
            .user("1000:1000")
            .mount(Mount::volume("data", "/data"))
            .mount(
                Mount::volume("nfs", "/shared")
                    .read_only()
                    .volume_label("team", "core")
                    .volume_driver("local")
                    .volume_driver_option("type", "nfs")
                    .volume_driver_option("o", "addr=10.0.0.1"),
            )
            .mount(Mount::bind("/var/lib/docker/containers", "/logs").read_only())
            .mount(Mount::bind("/srv", "/srv"))
            .mount(Mount::tmpfs("/scratch").size_mb(64).mode(0o1770))
            .mount(Mount::tmpfs("/tmp"))
            .into_spec();
        let address = spec.address.clone();
        let (docker_spec, template) = service_spec("st", &address, &spec.props, false).unwrap();
        assert!(template.starts_with("sha256:"));
        // Swarm stores MaxFailureRatio as a float32.
        let mut docker_spec = docker_spec;
        if let Some(u) = docker_spec.update_config.as_mut() {
            u.max_failure_ratio = u.max_failure_ratio.map(|r| r as f32 as f64);
        }
        // The engine answers with `Healthcheck`, which bollard's model doesn't read: the read
        // must find the healthcheck in the provider's label instead.
        if let Some(cs) = docker_spec
            .task_template
            .as_mut()
            .and_then(|t| t.container_spec.as_mut())
        {
            cs.health_check = None;
        }
        let svc = Service {
            id: Some("svc1".into()),
            spec: Some(docker_spec),
            ..Default::default()
        };
        let observed = observe_service(&svc, "st").unwrap();
        assert_eq!(observed.address, address);
        let keys: std::collections::BTreeSet<&String> =
            spec.props.keys().chain(observed.props.keys()).collect();
        for k in keys {
            assert!(
                values_equal(spec.props.get(k), observed.props.get(k)),
                "{k}: declared {:?}, read {:?}",
                spec.props.get(k),
                observed.props.get(k)
            );
        }
        assert!(
            observe_service(&svc, "other-stack").is_none(),
            "another stack's service is not ours"
        );
    }

    fn read_back(spec: ServiceSpec) -> Option<infra_core::provider::Observed> {
        observe_service(
            &Service {
                id: Some("svc1".into()),
                spec: Some(spec),
                ..Default::default()
            },
            "st",
        )
    }

    /// Every attachment carries the declared name and the extra aliases; the read gives them
    /// back, and an attachment without them (a service deployed before aliases) reads as
    /// missing them, so the plan updates it.
    #[test]
    fn every_network_attachment_gets_the_aliases_and_they_read_back() {
        let mut spec = SwarmService::new("search")
            .image("x")
            .alias("es")
            .into_spec();
        spec.set("networks", Value::List(vec!["net1".into(), "net2".into()]));
        let (docker_spec, template) =
            service_spec("st", &spec.address, &spec.props, false).unwrap();
        let nets = docker_spec
            .task_template
            .as_ref()
            .and_then(|t| t.networks.clone())
            .unwrap();
        assert_eq!(nets.len(), 2);
        for n in &nets {
            assert_eq!(
                n.aliases.as_deref(),
                Some(&["search".to_string(), "es".to_string()][..])
            );
        }
        let observed = read_back(docker_spec.clone()).unwrap();
        assert!(values_equal(
            spec.props.get("aliases"),
            observed.props.get("aliases")
        ));

        // One attachment lost `es`; the other never had aliases.
        let mut partial = docker_spec.clone();
        let nets = partial
            .task_template
            .as_mut()
            .and_then(|t| t.networks.as_mut())
            .unwrap();
        nets[0].aliases = Some(vec!["search".into()]);
        assert_eq!(
            read_back(partial).unwrap().props.get("aliases"),
            Some(&Value::List(vec!["search".into()]))
        );
        let mut none = docker_spec;
        for n in none
            .task_template
            .as_mut()
            .and_then(|t| t.networks.as_mut())
            .unwrap()
        {
            n.aliases = None;
        }
        assert_eq!(read_back(none).unwrap().props.get("aliases"), None);

        // The aliases are part of the task template: adding one rolls the tasks.
        let mut more = spec.clone();
        more.push("aliases", "search-2");
        let (_, t2) = service_spec("st", &more.address, &more.props, false).unwrap();
        assert_ne!(template, t2);
    }

    /// A named volume is the stack's (`<stack>_<name>` in Docker, as `docker stack deploy` names
    /// it); what Docker sends and the read takes back are exactly what was declared.
    #[test]
    fn mounts_are_sent_as_declared_and_volumes_carry_the_stack_prefix() {
        let spec = SwarmService::new("es")
            .image("x")
            .mount(Mount::volume("es-data", "/usr/share/elasticsearch/data"))
            .mount(Mount::bind("/var/lib/docker/containers", "/logs").read_only())
            .mount(Mount::tmpfs("/tmp").size_mb(1))
            .into_spec();
        let (docker_spec, _) = service_spec("st", &spec.address, &spec.props, false).unwrap();
        let json = serde_json::to_value(&docker_spec).unwrap();
        assert_eq!(
            json["TaskTemplate"]["ContainerSpec"]["Mounts"],
            json!([
                { "Type": "volume", "Source": "st_es-data", "Target": "/usr/share/elasticsearch/data" },
                { "Type": "bind", "Source": "/var/lib/docker/containers", "Target": "/logs", "ReadOnly": true },
                { "Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": { "SizeBytes": 1048576 } },
            ])
        );
        // Another stack's volume (or one renamed by hand) reads back under its full name: a
        // change, not a match.
        let mut other = docker_spec.clone();
        other
            .task_template
            .as_mut()
            .and_then(|t| t.container_spec.as_mut())
            .and_then(|c| c.mounts.as_mut())
            .unwrap()[0]
            .source = Some("elsewhere_es-data".into());
        let read = read_back(other).unwrap();
        let first = &read.props["mounts"].as_list().unwrap()[0];
        assert_eq!(
            first.as_map().unwrap()["source"],
            Value::from("elsewhere_es-data")
        );
        // Swarm's fill-ins a declaration never makes read back as nothing: `ReadOnly: false`,
        // empty option objects, bind propagation.
        let mut filled = docker_spec.clone();
        let mounts = filled
            .task_template
            .as_mut()
            .and_then(|t| t.container_spec.as_mut())
            .and_then(|c| c.mounts.as_mut())
            .unwrap();
        mounts[0].read_only = Some(false);
        mounts[0].volume_options = Some(Default::default());
        mounts[1].bind_options = Some(bollard::models::MountBindOptions {
            propagation: Some(bollard::models::MountBindOptionsPropagationEnum::RPRIVATE),
            ..Default::default()
        });
        let read = read_back(filled).unwrap();
        assert!(values_equal(
            spec.props.get("mounts"),
            read.props.get("mounts")
        ));
        // A mount is part of the task template: changing one rolls the tasks.
        let ro = SwarmService::new("es")
            .image("x")
            .mount(Mount::volume("es-data", "/usr/share/elasticsearch/data").read_only())
            .mount(Mount::bind("/var/lib/docker/containers", "/logs").read_only())
            .mount(Mount::tmpfs("/tmp").size_mb(1))
            .into_spec();
        let t = |s: &infra_core::dsl::ResourceSpec| {
            service_spec("st", &s.address, &s.props, false).unwrap().1
        };
        assert_ne!(t(&spec), t(&ro));
    }

    #[test]
    fn the_template_digest_ignores_replicas_and_labels() {
        let a = SwarmService::new("app").image("x").replicas(1).into_spec();
        let b = SwarmService::new("app")
            .image("x")
            .replicas(5)
            .label("k", "v")
            .into_spec();
        let c = SwarmService::new("app").image("y").replicas(1).into_spec();
        let t = |s: &infra_core::dsl::ResourceSpec| {
            service_spec("st", &s.address, &s.props, false).unwrap().1
        };
        assert_eq!(t(&a), t(&b), "scaling or relabelling restarts no task");
        assert_ne!(t(&a), t(&c));
    }
}
