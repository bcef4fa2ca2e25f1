//! `swarm_service` validation: mode, policies, placement, resources, healthcheck, ports and
//! mounts, every problem at once.

use infra_core::dsl::ResourceSpec;
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::Value;

fn check_policy(c: &mut Checker<'_>, spec: &ResourceSpec, field: &str) {
    let Some(p) = spec.get(field).and_then(Value::as_map) else {
        return;
    };
    match p.get("failure_action").and_then(Value::as_str) {
        Some("pause" | "continue") => {}
        Some("rollback") if field == "update_config" => {}
        Some("rollback") => c.problem(
            field,
            "a rollback can't itself be rolled back: its failure_action must be pause or continue",
        ),
        other => c.problem(
            field,
            format!("failure_action must be pause, continue or rollback, got {other:?}"),
        ),
    }
    if let Some(r) = p.get("max_failure_ratio").and_then(Value::as_f64) {
        if !(0.0..=1.0).contains(&r) {
            c.problem(field, format!("max_failure_ratio {r} is outside [0, 1]"));
        }
    }
}

/// Swarm's rule for service names (they are also DNS names on the stack's networks).
fn check_service_name(name: &str) -> Option<String> {
    if name.len() > 63 {
        return Some(format!(
            "the service name `{name}` is {} characters; Swarm allows 63",
            name.len()
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Some(format!(
            "the service name `{name}` must start with a letter or a digit"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Some(format!(
            "the service name `{name}` contains `{c}`; Swarm allows letters, digits, `-`, `_` and `.`"
        ));
    }
    None
}

/// A network alias given with `.alias()`: one DNS label.
fn check_alias(alias: &str) -> Option<String> {
    if alias.is_empty() || alias.len() > 63 {
        return Some(format!(
            "the alias `{alias}` is {} characters; a DNS label has 1 to 63",
            alias.len()
        ));
    }
    if let Some(c) = alias
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Some(format!(
            "the alias `{alias}` contains `{c}`; a DNS label has letters, digits and `-` only"
        ));
    }
    if alias.starts_with('-') || alias.ends_with('-') {
        return Some(format!(
            "the alias `{alias}` starts or ends with `-`, which a DNS label can't"
        ));
    }
    None
}

fn aliases(spec: &ResourceSpec) -> Vec<&str> {
    spec.get("aliases")
        .and_then(Value::as_list)
        .unwrap_or(&[])
        .iter()
        .map(|a| a.as_str().unwrap_or_default())
        .collect()
}

/// The network aliases: DNS labels (the declared name aside, which is checked as the service
/// name), each once, only with a network, and no name another service of the stack answers to
/// on a shared network (Swarm's DNS would answer with both services' addresses).
fn check_aliases(c: &mut Checker<'_>, spec: &ResourceSpec, ctx: &ValidationContext<'_>) {
    let mine = aliases(spec);
    if mine.is_empty() {
        return;
    }
    let networks = spec.get("networks").and_then(Value::as_list).unwrap_or(&[]);
    if networks.is_empty() {
        c.problem(
            "aliases",
            "network aliases need a network: attach the service with `.network(&net)`",
        );
    }
    let name = spec.address.name();
    for (i, alias) in mine.iter().enumerate() {
        let at = format!("aliases[{i}]");
        if *alias != name {
            if let Some(problem) = check_alias(alias) {
                c.problem(&at, problem);
                continue;
            }
        }
        if mine[..i].contains(alias) {
            c.problem(&at, format!("`{alias}` is listed twice"));
            continue;
        }
        for other in ctx.of_kind(spec.schema.kind) {
            if other.address == spec.address {
                continue;
            }
            let shared = other
                .get("networks")
                .and_then(Value::as_list)
                .unwrap_or(&[])
                .iter()
                .any(|n| networks.contains(n));
            if shared && aliases(other).contains(alias) {
                c.problem(
                    &at,
                    format!(
                        "`{alias}` is also a name of {} on a network they share; Swarm's DNS would answer with both services' tasks",
                        other.address
                    ),
                );
            }
        }
    }
}

/// A volume name Docker accepts: a letter or digit, then letters, digits, `_`, `.` or `-`.
fn check_volume_name(name: &str) -> Option<String> {
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Some(format!(
            "the volume name `{name}` must start with a letter or a digit"
        ));
    }
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        .map(|c| {
            format!(
                "the volume name `{name}` contains `{c}`; Docker allows letters, digits, `_`, `.` and `-`"
            )
        })
}

/// A path without its trailing `/` (but `/` itself stays `/`), so `/data/` and `/data` are one
/// target.
fn normal_path(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() && p.starts_with('/') {
        "/".into()
    } else {
        t.into()
    }
}

/// Where a secret or config reference puts its file inside the task.
fn file_target(field: &str, target: &str) -> String {
    if target.starts_with('/') {
        normal_path(target)
    } else if field == "secrets" {
        format!("/run/secrets/{target}")
    } else {
        format!("/{target}")
    }
}

/// The mounts: a known type, absolute targets mounted once (secrets and configs count), the
/// source each type needs, and only the options of their own type.
fn check_mounts(c: &mut Checker<'_>, spec: &ResourceSpec) {
    let mounts = spec.get("mounts").and_then(Value::as_list).unwrap_or(&[]);
    let mut taken: Vec<(String, String)> = Vec::new();
    for (field, key) in [("secrets", "target"), ("configs", "target")] {
        for (i, r) in spec
            .get(field)
            .and_then(Value::as_list)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            if let Some(t) = r
                .as_map()
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .filter(|t| !t.trim().is_empty())
            {
                taken.push((file_target(field, t), format!("{field}[{i}]")));
            }
        }
    }
    for (i, m) in mounts.iter().enumerate() {
        let at = format!("mounts[{i}]");
        let Some(m) = m.as_map() else {
            c.problem(&at, "is not a mount");
            continue;
        };
        let s = |k: &str| m.get(k).and_then(Value::as_str);
        let kind = s("type").unwrap_or_default();
        let target = s("target").unwrap_or_default();
        if !matches!(kind, "volume" | "bind" | "tmpfs") {
            c.problem(
                &at,
                format!("the mount type `{kind}` is not volume, bind or tmpfs"),
            );
        }
        if !target.starts_with('/') {
            c.problem(
                &at,
                format!("the target `{target}` is not an absolute path"),
            );
        } else if normal_path(target) == "/" {
            c.problem(
                &at,
                "the target `/` would hide the image's whole filesystem",
            );
        } else {
            let t = normal_path(target);
            match taken.iter().find(|(p, _)| *p == t) {
                Some((_, other)) => c.problem(
                    &at,
                    format!("the target `{target}` is also the target of {other}"),
                ),
                None => taken.push((t, at.clone())),
            }
        }
        match (kind, s("source")) {
            ("volume", Some(name)) => {
                if let Some(problem) = check_volume_name(name) {
                    c.problem(&at, problem);
                }
            }
            ("volume", None) => c.problem(&at, "a volume mount needs the volume's name"),
            ("bind", Some(src)) if src.starts_with('/') => {}
            ("bind", src) => c.problem(
                &at,
                format!(
                    "the bind source `{}` is not an absolute path on the node",
                    src.unwrap_or_default()
                ),
            ),
            ("tmpfs", Some(src)) => c.problem(&at, format!("a tmpfs has no source, got `{src}`")),
            _ => {}
        }
        let read_only = m.get("read_only").and_then(Value::as_bool) == Some(true);
        if kind == "tmpfs" && read_only {
            c.problem(
                &at,
                "a read-only tmpfs is always empty: drop read_only, or mount a volume or a bind read-only",
            );
        }
        if kind != "volume" {
            for opt in ["labels", "driver", "driver_options"] {
                if m.contains_key(opt) {
                    c.problem(
                        &at,
                        format!("`{opt}` applies to volume mounts only, not to a {kind} mount"),
                    );
                }
            }
        }
        if kind != "tmpfs" {
            for opt in ["size_bytes", "mode"] {
                if m.contains_key(opt) {
                    c.problem(
                        &at,
                        format!("`{opt}` applies to tmpfs mounts only, not to a {kind} mount"),
                    );
                }
            }
        }
        if kind == "volume" {
            if m.contains_key("driver_options") && !m.contains_key("driver") {
                c.problem(
                    &at,
                    "driver options need the driver they are for (`.volume_driver(\"local\")`)",
                );
            }
            if s("driver").is_some_and(|d| d.trim().is_empty()) {
                c.problem(&at, "the volume driver is empty");
            }
            for k in m
                .get("labels")
                .and_then(Value::as_map)
                .into_iter()
                .flat_map(|l| l.keys())
                .filter(|k| k.starts_with("infra."))
            {
                c.problem(
                    &at,
                    format!("volume label `{k}`: labels starting with `infra.` are reserved for ownership"),
                );
            }
        }
        if kind == "tmpfs" {
            if let Some(size) = m.get("size_bytes").and_then(Value::as_i64) {
                if size <= 0 {
                    c.problem(
                        &at,
                        format!("the tmpfs size must be positive, got {size} bytes"),
                    );
                }
            }
            if let Some(mode) = m.get("mode").and_then(Value::as_i64) {
                if !(0..=0o7777).contains(&mode) {
                    c.problem(
                        &at,
                        format!("the tmpfs mode {mode:o} (octal) is not a permission mode (at most 7777)"),
                    );
                }
            }
        }
    }
}

pub(super) fn validate_service(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    c.required_str("image");
    match spec.get_str("swarm_name") {
        Some(name) => {
            if let Some(problem) = check_service_name(name) {
                c.problem("swarm_name", problem);
            }
        }
        None => {
            let full = format!("{}_{}", ctx.stack().name(), spec.address.name());
            if let Some(problem) = check_service_name(&full) {
                c.problem("name", problem);
            }
        }
    }
    let mode = spec.get_str("mode");
    match mode {
        Some("replicated") => {
            c.int_in("replicas", 0, 10_000);
        }
        Some("global") => {
            if spec.get("replicas").is_some() {
                c.problem(
                    "replicas",
                    "a global service runs one task per node; replicas can't be set",
                );
            }
        }
        other => c.problem(
            "mode",
            format!("must be replicated or global, got {other:?}"),
        ),
    }
    check_policy(&mut c, spec, "update_config");
    check_policy(&mut c, spec, "rollback_config");
    if let Some(rp) = spec.get("restart_policy").and_then(Value::as_map) {
        match rp.get("condition").and_then(Value::as_str) {
            Some("any" | "on-failure" | "none") => {}
            other => c.problem(
                "restart_policy",
                format!("condition must be any, on-failure or none, got {other:?}"),
            ),
        }
    }
    if let Some(labels) = spec.get("labels").and_then(Value::as_map) {
        for k in labels.keys().filter(|k| k.starts_with("infra.")) {
            c.problem(
                "labels",
                format!("`{k}`: labels starting with `infra.` are reserved for ownership"),
            );
        }
    }
    if let Some(env) = spec.get("env").and_then(Value::as_map) {
        for k in env.keys().filter(|k| k.is_empty() || k.contains('=')) {
            c.problem(
                "env",
                format!("`{k}` is not a valid variable name (empty or containing `=`)"),
            );
        }
    }
    if let Some(p) = spec.get("placement").and_then(Value::as_map) {
        for (i, con) in p
            .get("constraints")
            .and_then(Value::as_list)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let text = con.as_str().unwrap_or_default();
            if !(text.contains("==") || text.contains("!=")) {
                c.problem(
                    &format!("placement.constraints[{i}]"),
                    format!("`{text}` is not a constraint: expected `<attribute> == <value>` or `<attribute> != <value>`"),
                );
            }
        }
        for (i, s) in p
            .get("spread")
            .and_then(Value::as_list)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let text = s.as_str().unwrap_or_default();
            if !(text.starts_with("node.labels.") || text.starts_with("engine.labels.")) {
                c.problem(
                    &format!("placement.spread[{i}]"),
                    format!(
                        "`{text}` can't be spread over: use a node label such as `node.labels.az`"
                    ),
                );
            }
        }
        if p.contains_key("max_replicas_per_node") && mode == Some("global") {
            c.problem(
                "placement",
                "max_replicas_per_node applies to replicated services only",
            );
        }
    }
    if let Some(r) = spec.get("resources").and_then(Value::as_map) {
        for key in [
            "limit_cpus",
            "reserve_cpus",
            "limit_memory_mb",
            "reserve_memory_mb",
        ] {
            if let Some(v) = r.get(key).and_then(Value::as_f64) {
                if v <= 0.0 {
                    c.problem("resources", format!("{key} must be positive, got {v}"));
                }
            }
        }
        for (limit, reserve) in [
            ("limit_cpus", "reserve_cpus"),
            ("limit_memory_mb", "reserve_memory_mb"),
        ] {
            if let (Some(l), Some(r)) = (
                r.get(limit).and_then(Value::as_f64),
                r.get(reserve).and_then(Value::as_f64),
            ) {
                if r > l {
                    c.problem(
                        "resources",
                        format!(
                            "{reserve} {r} is more than {limit} {l}: the task could never start"
                        ),
                    );
                }
            }
        }
    }
    if let Some(h) = spec.get("healthcheck").and_then(Value::as_map) {
        let shell = h
            .get("test")
            .and_then(Value::as_list)
            .and_then(|t| t.get(1))
            .and_then(Value::as_str);
        if shell.is_none_or(|s| s.trim().is_empty()) {
            c.problem("healthcheck", "the healthcheck command is empty");
        }
        if h.get("interval_ms").and_then(Value::as_i64) == Some(0) {
            c.problem("healthcheck", "interval must be positive (at least 1 ms)");
        }
    }
    if let Some(ms) = spec.get("stop_grace_period_ms").and_then(Value::as_i64) {
        if ms < 0 {
            c.problem("stop_grace_period_ms", "must not be negative");
        }
    }
    check_aliases(&mut c, spec, ctx);
    let endpoint_mode = spec.get_str("endpoint_mode");
    if !matches!(endpoint_mode, None | Some("vip" | "dnsrr")) {
        c.problem(
            "endpoint_mode",
            format!("must be vip or dnsrr, got {endpoint_mode:?}"),
        );
    }
    let mut published = Vec::new();
    for (i, p) in spec
        .get("ports")
        .and_then(Value::as_list)
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let at = format!("ports[{i}]");
        let m = p.as_map();
        for key in ["published", "target"] {
            match m.and_then(|m| m.get(key)).and_then(Value::as_i64) {
                Some(n) if (1..=65535).contains(&n) => {}
                other => c.problem(&at, format!("{key} port {other:?} is outside 1-65535")),
            }
        }
        let protocol = m.and_then(|m| m.get("protocol")).and_then(Value::as_str);
        let mode = m.and_then(|m| m.get("mode")).and_then(Value::as_str);
        if mode == Some("ingress") && endpoint_mode == Some("dnsrr") {
            c.problem(
                &at,
                "an ingress-published port needs endpoint mode vip; publish it in host mode with dnsrr",
            );
        }
        let key = (
            m.and_then(|m| m.get("published")).and_then(Value::as_i64),
            protocol,
        );
        if published.contains(&key) {
            c.problem(
                &at,
                format!(
                    "port {}/{} is published twice",
                    key.0.unwrap_or_default(),
                    protocol.unwrap_or("tcp")
                ),
            );
        }
        published.push(key);
    }
    for (field, id_key) in [("secrets", "secret_id"), ("configs", "config_id")] {
        let mut targets = Vec::new();
        for (i, r) in spec
            .get(field)
            .and_then(Value::as_list)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let m = r.as_map();
            let target = m
                .and_then(|m| m.get("target"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if target.trim().is_empty() {
                c.problem(&format!("{field}[{i}]"), "the target path is empty");
            } else if targets.contains(&target) {
                c.problem(
                    &format!("{field}[{i}]"),
                    format!("`{target}` is mounted twice"),
                );
            }
            targets.push(target);
            if m.and_then(|m| m.get(id_key)).is_none() {
                c.problem(&format!("{field}[{i}]"), format!("`{id_key}` is missing"));
            }
        }
    }
    if spec.get_str("user").is_some_and(|u| u.trim().is_empty()) {
        c.problem(
            "user",
            "is empty: name a user or a UID, or leave the image's",
        );
    }
    check_mounts(&mut c, spec);
    c.finish()
}
