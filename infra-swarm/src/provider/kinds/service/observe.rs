//! A service as its builder would declare it, read back from Docker's `Service`: the
//! normalisation that makes a no-op plan empty. It emits exactly the shape the builder emits,
//! drops Swarm's fill-ins (`Isolation: default`, `Runtime: container`, `ForceUpdate: 0`, empty
//! `Resources`/`Placement` objects, endpoint mode `vip`, `Init: false`, a mount's
//! `ReadOnly: false` and empty options), takes the stack's prefix off volume names and converts
//! nanoseconds back to the builder's milliseconds.

use std::collections::BTreeMap;

use bollard::models::Service;
use infra_core::provider::Observed;
use infra_core::Value;
use serde_json::Value as Json;

use super::spec::{LABEL_HEALTHCHECK, LABEL_TEMPLATE, NS_PER_MS};
use infra_core::dsl::Address;

use crate::provider::convert::{owner, stack_name, user_labels};

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
        // Swarm (and the CLI) leave Monitor out when it is 0, which means its default, 5 s.
        "monitor_ms" => match ns_ms(j.get("Monitor")) { 0 => 5000, ms => ms },
        "max_failure_ratio" => ratio,
        "order" => j.get("Order").and_then(Json::as_str).unwrap_or("stop-first"),
    }
}

/// The aliases every network attachment has, in the first attachment's order. The provider
/// gives each attachment the same list; an attachment missing one (a service created before
/// aliases were declared, or edited by hand) drops it here, so the plan shows the alias as
/// missing and the update gives it to every attachment again.
fn common_aliases(attachments: &[Json]) -> Option<Value> {
    let of = |n: &Json| -> Vec<String> {
        n.get("Aliases")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .map(str::to_string)
            .collect()
    };
    let (first, rest) = attachments.split_first()?;
    let rest: Vec<Vec<String>> = rest.iter().map(of).collect();
    let common: Vec<Value> = of(first)
        .into_iter()
        .filter(|a| rest.iter().all(|r| r.contains(a)))
        .map(Value::from)
        .collect();
    Some(Value::List(common))
}

/// A mount as [`Mount`](crate::Mount) declares it: the stack's volume prefix taken off the
/// source, `ReadOnly: false` and empty option objects dropped, and the options Swarm may fill in
/// but the builder never declares (bind propagation, `NoCopy` false, consistency) left out.
fn read_mount(stack: Option<&str>, j: &Json) -> Value {
    let mut m = BTreeMap::new();
    let kind = j.get("Type").and_then(Json::as_str).unwrap_or_default();
    m.insert("type".to_string(), Value::from(kind));
    m.insert(
        "target".to_string(),
        Value::from(j.get("Target").and_then(Json::as_str).unwrap_or_default()),
    );
    if let Some(source) = j
        .get("Source")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
    {
        let source = match (kind, stack) {
            ("volume", Some(stack)) => source.strip_prefix(&format!("{stack}_")).unwrap_or(source),
            _ => source,
        };
        m.insert("source".to_string(), Value::from(source));
    }
    if j.get("ReadOnly").and_then(Json::as_bool) == Some(true) {
        m.insert("read_only".to_string(), Value::Bool(true));
    }
    let strings = |v: Option<&Json>| -> Option<Value> {
        let map: BTreeMap<String, Value> = v?
            .as_object()?
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str().unwrap_or_default())))
            .collect();
        (!map.is_empty()).then_some(Value::Map(map))
    };
    if let Some(vo) = j.get("VolumeOptions") {
        if let Some(labels) = strings(vo.get("Labels")) {
            m.insert("labels".to_string(), labels);
        }
        if let Some(driver) = at(vo, &["DriverConfig", "Name"])
            .and_then(Json::as_str)
            .filter(|d| !d.is_empty())
        {
            m.insert("driver".to_string(), Value::from(driver));
        }
        if let Some(opts) = strings(at(vo, &["DriverConfig", "Options"])) {
            m.insert("driver_options".to_string(), opts);
        }
    }
    if let Some(t) = j.get("TmpfsOptions") {
        if let Some(size) = t.get("SizeBytes").and_then(Json::as_i64).filter(|n| *n > 0) {
            m.insert("size_bytes".to_string(), Value::Int(size));
        }
        if let Some(mode) = t.get("Mode").and_then(Json::as_i64).filter(|n| *n > 0) {
            m.insert("mode".to_string(), Value::Int(mode));
        }
    }
    Value::Map(m)
}

/// A service as the kind's builder would declare it, or `None` when it isn't the stack's.
pub(crate) fn observe_service(svc: &Service, stack: &str) -> Option<Observed> {
    let spec = svc.spec.as_ref()?;
    let (address, protect, _) = owner(spec.labels.as_ref(), stack)?;
    observe_service_as(svc, address, protect, Some(stack))
}

/// A service as the kind's builder would declare it at `address`, whoever owns it: the owned
/// read's conversion, shared with import. `stack` is the owning stack when known: its
/// `<stack>_` prefix is taken off volume names, and the Swarm name is a `swarm_name` only when
/// it isn't `<stack>_<name>`; without a stack (an object of no stack) the name always is.
pub(crate) fn observe_service_as(
    svc: &Service,
    address: Address,
    protect: bool,
    stack: Option<&str>,
) -> Option<Observed> {
    let spec = svc.spec.as_ref()?;
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
    if let Some(name) = spec.name.as_deref() {
        if stack.is_none_or(|s| name != stack_name(s, &address)) {
            p.insert("swarm_name".into(), Value::from(name));
        }
    }
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
    // No restart policy in the spec (a service made with the Docker CLI without restart
    // flags) is Swarm's default, which is what the builder declares by default.
    let rp = at(&j, &["TaskTemplate", "RestartPolicy"]);
    put(
        &mut p,
        "restart_policy",
        Some(infra_core::map! {
            "condition" => rp.and_then(|r| r.get("Condition")).and_then(Json::as_str).unwrap_or("any"),
            "delay_ms" => match rp {
                Some(r) => ns_ms(r.get("Delay")),
                None => 5000,
            },
            "max_attempts" => rp.and_then(|r| r.get("MaxAttempts")).and_then(Json::as_i64).unwrap_or(0),
            "window_ms" => ns_ms(rp.and_then(|r| r.get("Window"))),
        }),
    );
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
    let attachments = nets.and_then(Json::as_array).map_or(&[][..], Vec::as_slice);
    put(
        &mut p,
        "networks",
        Some(Value::List(
            attachments
                .iter()
                .filter_map(|n| n.get("Target").and_then(Json::as_str))
                .map(Value::from)
                .collect(),
        )),
    );
    put(&mut p, "aliases", common_aliases(attachments));
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
    put(
        &mut p,
        "user",
        cs.get("User")
            .and_then(Json::as_str)
            .filter(|u| !u.is_empty())
            .map(Value::from),
    );
    put(
        &mut p,
        "mounts",
        cs.get("Mounts")
            .and_then(Json::as_array)
            .map(|l| Value::List(l.iter().map(|m| read_mount(stack, m)).collect())),
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
        props: p.into(),
        protect,
        declared: crate::provider::convert::declared_label(spec.labels.as_ref()),
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
