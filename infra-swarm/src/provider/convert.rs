//! Between the kinds' properties and Docker's objects, both ways.
//!
//! Specs are written as JSON in the Docker Engine API's own field names (so this file reads like
//! the API reference) and handed to bollard's typed models with `serde_json::from_value`; reads go
//! the other way. The read side is the normalisation that makes a no-op plan empty: it emits
//! exactly the shape the builders emit, drops Swarm's fill-ins (`Isolation: default`,
//! `Runtime: container`, `ForceUpdate: 0`, empty `Resources`/`Placement` objects, endpoint mode
//! `vip`, `Init: false`) and converts nanoseconds back to the builders' milliseconds.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{Config, Network, Secret, Service, ServiceSpec};
use infra_core::dsl::Address;
use infra_core::provider::{Observed, ProviderError};
use infra_core::value::{digest_of, Sensitive};
use infra_core::Value;
use serde_json::{json, Map, Value as Json};

/// Label: the owning stack.
pub(crate) const LABEL_STACK: &str = "infra.stack";
/// Label: the logical address.
pub(crate) const LABEL_ID: &str = "infra.id";
/// Label: `true` when the object is protected.
pub(crate) const LABEL_PROTECT: &str = "infra.protect";
/// Label on secrets and configs: the content digest (Swarm never returns secret data).
pub(crate) const LABEL_DIGEST: &str = "infra.digest";
/// Service label: the healthcheck as declared. The engine returns the healthcheck under the key
/// `Healthcheck` while bollard's model (following the API's swagger file) reads `HealthCheck`,
/// so a read through bollard never sees it; this label carries it instead. The engine accepts
/// either spelling on write (Go's JSON decoding ignores case), so what is sent takes effect.
pub(crate) const LABEL_HEALTHCHECK: &str = "infra.healthcheck";
/// Container label on a service's tasks: the digest of the task template (and endpoint spec)
/// they were created from, so the convergence wait can tell new tasks from old ones.
pub(crate) const LABEL_TEMPLATE: &str = "infra.template";

const NS_PER_MS: i64 = 1_000_000;

/// The ownership labels plus the user's labels.
pub(crate) fn owned_labels(
    stack: &str,
    address: &Address,
    protect: bool,
    user: Option<&Value>,
) -> Map<String, Json> {
    let mut labels = Map::new();
    for (k, v) in user.and_then(Value::as_map).into_iter().flatten() {
        labels.insert(k.clone(), Json::String(text(v)));
    }
    labels.insert(LABEL_STACK.into(), stack.into());
    labels.insert(LABEL_ID.into(), address.to_string().into());
    labels.insert(LABEL_PROTECT.into(), protect.to_string().into());
    labels
}

/// The user's labels (ownership labels removed), as a property value.
fn user_labels(labels: Option<&HashMap<String, String>>) -> Option<Value> {
    let m: BTreeMap<String, Value> = labels?
        .iter()
        .filter(|(k, _)| !k.starts_with("infra."))
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    (!m.is_empty()).then_some(Value::Map(m))
}

/// The owner of an object: its address and protect flag, if it carries the stack's labels.
pub(crate) fn owner(
    labels: Option<&HashMap<String, String>>,
    stack: &str,
) -> Option<(Address, bool)> {
    let labels = labels?;
    if labels.get(LABEL_STACK).map(String::as_str) != Some(stack) {
        return None;
    }
    let address: Address = labels.get(LABEL_ID)?.parse().ok()?;
    let protect = labels.get(LABEL_PROTECT).map(String::as_str) == Some("true");
    Some((address, protect))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

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

fn bad(address: &Address, e: impl std::fmt::Display) -> ProviderError {
    ProviderError::fatal(
        "InvalidSpec",
        format!("{address}: cannot express the declaration as a Docker spec: {e}"),
    )
}

/// A service's Swarm name.
pub(crate) fn service_name(stack: &str, address: &Address) -> String {
    format!("{stack}_{}", address.name())
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
        let list: Vec<Json> = nets.into_iter().map(|n| json!({ "Target": n })).collect();
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
    if let Some(h) = get("healthcheck") {
        labels.insert(
            LABEL_HEALTHCHECK.into(),
            serde_json::to_string(h)
                .map_err(|e| bad(address, e))?
                .into(),
        );
    }
    let mut spec = json!({
        "Name": service_name(stack, address),
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

fn at<'a>(j: &'a Json, path: &[&str]) -> Option<&'a Json> {
    path.iter().try_fold(j, |j, k| j.get(k))
}

fn ns_ms(j: Option<&Json>) -> i64 {
    j.and_then(Json::as_i64).unwrap_or(0) / NS_PER_MS
}

fn str_list(j: Option<&Json>) -> Option<Value> {
    let l: Vec<Value> = j?
        .as_array()?
        .iter()
        .filter_map(Json::as_str)
        .map(Value::from)
        .collect();
    (!l.is_empty()).then_some(Value::List(l))
}

fn read_policy(j: Option<&Json>) -> Value {
    let j = j.cloned().unwrap_or(Json::Null);
    // MaxFailureRatio is a float32 in Swarm: 0.1 comes back as 0.10000000149…; round it to the
    // precision a declaration can sensibly have.
    let ratio = j
        .get("MaxFailureRatio")
        .and_then(Json::as_f64)
        .unwrap_or(0.0);
    let ratio = (ratio * 1e6).round() / 1e6;
    infra_core::map! {
        "parallelism" => j.get("Parallelism").and_then(Json::as_i64).unwrap_or(1),
        "delay_ms" => ns_ms(j.get("Delay")),
        "failure_action" => j.get("FailureAction").and_then(Json::as_str).unwrap_or("pause"),
        "monitor_ms" => ns_ms(j.get("Monitor")),
        "max_failure_ratio" => ratio,
        "order" => j.get("Order").and_then(Json::as_str).unwrap_or("stop-first"),
    }
}

/// A service as the kind's builder would declare it, or `None` when it isn't the stack's.
pub(crate) fn observe_service(svc: &Service, stack: &str) -> Option<Observed> {
    let spec = svc.spec.as_ref()?;
    let (address, protect) = owner(spec.labels.as_ref(), stack)?;
    let j = serde_json::to_value(spec).ok()?;
    let cs = at(&j, &["TaskTemplate", "ContainerSpec"])
        .cloned()
        .unwrap_or(Json::Null);
    let mut p: BTreeMap<String, Value> = BTreeMap::new();
    let put = |p: &mut BTreeMap<String, Value>, k: &str, v: Option<Value>| {
        if let Some(v) = v.filter(|v| !v.is_empty_like()) {
            p.insert(k.to_string(), v);
        }
    };
    put(
        &mut p,
        "image",
        cs.get("Image").and_then(Json::as_str).map(Value::from),
    );
    put(&mut p, "command", str_list(cs.get("Command")));
    put(&mut p, "args", str_list(cs.get("Args")));
    put(
        &mut p,
        "env",
        cs.get("Env").and_then(Json::as_array).map(|l| {
            Value::Map(
                l.iter()
                    .filter_map(Json::as_str)
                    .map(|e| match e.split_once('=') {
                        Some((k, v)) => (k.to_string(), Value::from(v)),
                        None => (e.to_string(), Value::from("")),
                    })
                    .collect(),
            )
        }),
    );
    put(&mut p, "labels", user_labels(spec.labels.as_ref()));
    match at(&j, &["Mode"]) {
        Some(m) if m.get("Global").is_some() => put(&mut p, "mode", Some("global".into())),
        Some(m) => {
            put(&mut p, "mode", Some("replicated".into()));
            let n = at(m, &["Replicated", "Replicas"])
                .and_then(Json::as_i64)
                .unwrap_or(1);
            p.insert("replicas".into(), Value::Int(n));
        }
        None => {}
    }
    put(
        &mut p,
        "update_config",
        Some(read_policy(j.get("UpdateConfig"))),
    );
    put(
        &mut p,
        "rollback_config",
        Some(read_policy(j.get("RollbackConfig"))),
    );
    if let Some(rp) = at(&j, &["TaskTemplate", "RestartPolicy"]) {
        put(
            &mut p,
            "restart_policy",
            Some(infra_core::map! {
                "condition" => rp.get("Condition").and_then(Json::as_str).unwrap_or("any"),
                "delay_ms" => ns_ms(rp.get("Delay")),
                "max_attempts" => rp.get("MaxAttempts").and_then(Json::as_i64).unwrap_or(0),
                "window_ms" => ns_ms(rp.get("Window")),
            }),
        );
    }
    if let Some(pl) = at(&j, &["TaskTemplate", "Placement"]) {
        let mut m = BTreeMap::new();
        if let Some(c) = str_list(pl.get("Constraints")) {
            m.insert("constraints".to_string(), c);
        }
        let spread: Vec<Value> = pl
            .get("Preferences")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| at(p, &["Spread", "SpreadDescriptor"]).and_then(Json::as_str))
            .map(Value::from)
            .collect();
        if !spread.is_empty() {
            m.insert("spread".to_string(), Value::List(spread));
        }
        if let Some(n) = pl
            .get("MaxReplicas")
            .and_then(Json::as_i64)
            .filter(|n| *n > 0)
        {
            m.insert("max_replicas_per_node".to_string(), Value::Int(n));
        }
        put(&mut p, "placement", Some(Value::Map(m)));
    }
    if let Some(r) = at(&j, &["TaskTemplate", "Resources"]) {
        let mut m = BTreeMap::new();
        for (side, cpus, mem) in [
            ("Limits", "limit_cpus", "limit_memory_mb"),
            ("Reservations", "reserve_cpus", "reserve_memory_mb"),
        ] {
            if let Some(n) = at(r, &[side, "NanoCPUs"])
                .and_then(Json::as_i64)
                .filter(|n| *n > 0)
            {
                m.insert(cpus.to_string(), Value::Float(n as f64 / 1e9));
            }
            if let Some(b) = at(r, &[side, "MemoryBytes"])
                .and_then(Json::as_i64)
                .filter(|n| *n > 0)
            {
                m.insert(mem.to_string(), Value::Int(b / (1024 * 1024)));
            }
        }
        put(&mut p, "resources", Some(Value::Map(m)));
    }
    if let Some(h) = cs.get("HealthCheck") {
        let mut m = BTreeMap::from([
            (
                "test".to_string(),
                str_list(h.get("Test")).unwrap_or(Value::List(vec![])),
            ),
            (
                "interval_ms".to_string(),
                Value::Int(ns_ms(h.get("Interval"))),
            ),
            (
                "timeout_ms".to_string(),
                Value::Int(ns_ms(h.get("Timeout"))),
            ),
            (
                "retries".to_string(),
                Value::Int(h.get("Retries").and_then(Json::as_i64).unwrap_or(0)),
            ),
        ]);
        let sp = ns_ms(h.get("StartPeriod"));
        if sp > 0 {
            m.insert("start_period_ms".into(), Value::Int(sp));
        }
        put(&mut p, "healthcheck", Some(Value::Map(m)));
    } else if let Some(h) = spec
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_HEALTHCHECK))
        .and_then(|h| serde_json::from_str::<Value>(h).ok())
    {
        put(&mut p, "healthcheck", Some(h));
    }
    let nets = at(&j, &["TaskTemplate", "Networks"]).or_else(|| j.get("Networks"));
    put(
        &mut p,
        "networks",
        nets.and_then(Json::as_array).map(|l| {
            Value::List(
                l.iter()
                    .filter_map(|n| n.get("Target").and_then(Json::as_str))
                    .map(Value::from)
                    .collect(),
            )
        }),
    );
    for (field, key, id_key, name_key, id, name) in [
        (
            "secrets",
            "Secrets",
            "SecretID",
            "SecretName",
            "secret_id",
            "secret_name",
        ),
        (
            "configs",
            "Configs",
            "ConfigID",
            "ConfigName",
            "config_id",
            "config_name",
        ),
    ] {
        put(
            &mut p,
            field,
            cs.get(key).and_then(Json::as_array).map(|l| {
                Value::List(
                    l.iter()
                        .map(|r| {
                            let f = r.get("File").cloned().unwrap_or(Json::Null);
                            let s = |j: Option<&Json>| {
                                j.and_then(Json::as_str).unwrap_or("").to_string()
                            };
                            infra_core::map! {
                                id => s(r.get(id_key)),
                                name => s(r.get(name_key)),
                                "target" => s(f.get("Name")),
                                "uid" => s(f.get("UID")),
                                "gid" => s(f.get("GID")),
                                "mode" => f.get("Mode").and_then(Json::as_i64).unwrap_or(0),
                            }
                        })
                        .collect(),
                )
            }),
        );
    }
    let ep = j.get("EndpointSpec");
    put(
        &mut p,
        "endpoint_mode",
        ep.and_then(|e| e.get("Mode"))
            .and_then(Json::as_str)
            .filter(|m| *m != "vip" && !m.is_empty())
            .map(Value::from),
    );
    put(
        &mut p,
        "ports",
        ep.and_then(|e| e.get("Ports")).and_then(Json::as_array).map(|l| {
            Value::List(
                l.iter()
                    .map(|port| {
                        infra_core::map! {
                            "published" => port.get("PublishedPort").and_then(Json::as_i64).unwrap_or(0),
                            "target" => port.get("TargetPort").and_then(Json::as_i64).unwrap_or(0),
                            "protocol" => port.get("Protocol").and_then(Json::as_str).unwrap_or("tcp"),
                            "mode" => port.get("PublishMode").and_then(Json::as_str).unwrap_or("ingress"),
                        }
                    })
                    .collect(),
            )
        }),
    );
    if let Some(ns) = cs.get("StopGracePeriod").and_then(Json::as_i64) {
        p.insert("stop_grace_period_ms".into(), Value::Int(ns / NS_PER_MS));
    }
    if cs.get("Init").and_then(Json::as_bool) == Some(true) {
        p.insert("init".into(), Value::Bool(true));
    }
    Some(Observed {
        address,
        id: svc.id.clone()?,
        props: p,
        protect,
    })
}

/// The template digest a task was created from.
pub(crate) fn task_template(spec: Option<&bollard::models::TaskSpec>) -> Option<&str> {
    spec?
        .container_spec
        .as_ref()?
        .labels
        .as_ref()?
        .get(LABEL_TEMPLATE)
        .map(String::as_str)
}

/// A network's creation request.
pub(crate) fn network_request(
    stack: &str,
    address: &Address,
    props: &BTreeMap<String, Value>,
    protect: bool,
) -> Result<bollard::models::NetworkCreateRequest, ProviderError> {
    let flag = |k: &str| props.get(k).and_then(Value::as_bool) == Some(true);
    let mut req = json!({
        "Name": service_name(stack, address),
        "Driver": props.get("driver").map(text).unwrap_or_else(|| "overlay".into()),
        "Scope": "swarm",
        "Attachable": flag("attachable"),
        "Internal": flag("internal"),
        "Labels": owned_labels(stack, address, protect, props.get("labels")),
    });
    if flag("encrypted") {
        req["Options"] = json!({ "encrypted": "" });
    }
    serde_json::from_value(req).map_err(|e| bad(address, e))
}

/// A network as the builder would declare it.
pub(crate) fn observe_network(n: &Network, stack: &str) -> Option<Observed> {
    let (address, protect) = owner(n.labels.as_ref(), stack)?;
    let mut p = BTreeMap::new();
    p.insert(
        "driver".to_string(),
        Value::from(n.driver.clone().unwrap_or_default()),
    );
    if n.attachable == Some(true) {
        p.insert("attachable".into(), Value::Bool(true));
    }
    if n.internal == Some(true) {
        p.insert("internal".into(), Value::Bool(true));
    }
    if n.options
        .as_ref()
        .is_some_and(|o| o.contains_key("encrypted"))
    {
        p.insert("encrypted".into(), Value::Bool(true));
    }
    if let Some(l) = user_labels(n.labels.as_ref()) {
        p.insert("labels".into(), l);
    }
    p.insert(
        "name".into(),
        Value::from(n.name.clone().unwrap_or_default()),
    );
    Some(Observed {
        address,
        id: n.id.clone()?,
        props: p,
        protect,
    })
}

/// A secret as the builder would declare it: the value by its digest.
pub(crate) fn observe_secret(s: &Secret, stack: &str) -> Option<Observed> {
    let spec = s.spec.as_ref()?;
    let (address, protect) = owner(spec.labels.as_ref(), stack)?;
    let labels = spec.labels.as_ref()?;
    let mut p = BTreeMap::new();
    if let Some(d) = labels.get(LABEL_DIGEST) {
        p.insert(
            "value".to_string(),
            Value::Sensitive(Sensitive::from_digest(d.clone())),
        );
    }
    if let Some(l) = user_labels(Some(labels)) {
        p.insert("labels".into(), l);
    }
    p.insert(
        "name".into(),
        Value::from(spec.name.clone().unwrap_or_default()),
    );
    Some(Observed {
        address,
        id: s.id.clone()?,
        props: p,
        protect,
    })
}

/// A config as the builder would declare it: its data as text.
pub(crate) fn observe_config(c: &Config, stack: &str) -> Option<Observed> {
    use base64::Engine as _;
    let spec = c.spec.as_ref()?;
    let (address, protect) = owner(spec.labels.as_ref(), stack)?;
    let mut p = BTreeMap::new();
    if let Some(data) = spec.data.as_deref() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap_or_default();
        p.insert(
            "data".to_string(),
            Value::from(String::from_utf8_lossy(&bytes).into_owned()),
        );
    }
    if let Some(l) = user_labels(spec.labels.as_ref()) {
        p.insert("labels".into(), l);
    }
    p.insert(
        "name".into(),
        Value::from(spec.name.clone().unwrap_or_default()),
    );
    Some(Observed {
        address,
        id: c.id.clone()?,
        props: p,
        protect,
    })
}

/// Labels as Docker wants them (a string map).
pub(crate) fn label_map(m: Map<String, Json>) -> HashMap<String, String> {
    m.into_iter()
        .map(|(k, v)| {
            (
                k,
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use infra_core::dsl::Resource;
    use infra_core::plan::values_equal;

    use super::*;
    use crate::{
        EndpointMode, FailureAction, RestartCondition, SwarmService, UpdateOrder, UpdatePolicy,
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
