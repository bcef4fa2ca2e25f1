//! Built-in policy rules for the Swarm kinds, checked on every plan (see `infra_core::policy`).
//!
//! | id | severity | checks | corresponds to |
//! |---|---|---|---|
//! | HA010 | warning | a replicated service with more than one replica spreads over a node label or caps replicas per node | none (cf. Kubernetes topology spread constraints) |
//! | HA011 | warning | a service's rolling update does not `continue` on failure | none (`docker service update --update-failure-action`) |
//! | SEC010 | error | no secret-looking environment variable holds a plain value: use a Swarm secret | CKV_K8S_35 (secrets as files, not env) |

use std::sync::Arc;

use infra_core::dsl::{Resource, ResourceSpec};
use infra_core::graph::Graph;
use infra_core::policy::{PolicyRule, Severity, Violation};
use infra_core::Value;

use crate::SwarmService;

/// Every built-in Swarm rule.
pub fn rules() -> Vec<Arc<dyn PolicyRule>> {
    vec![
        Arc::new(ReplicasSpread),
        Arc::new(UpdateNotContinue),
        Arc::new(NoSecretsInEnv),
    ]
}

fn services(graph: &Graph) -> impl Iterator<Item = &ResourceSpec> + '_ {
    graph
        .in_order()
        .filter(|r| r.schema.kind == SwarmService::SCHEMA.kind)
}

struct ReplicasSpread;
impl PolicyRule for ReplicasSpread {
    fn id(&self) -> &str {
        "HA010"
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn summary(&self) -> &str {
        "replicated services with more than one replica spread over nodes"
    }
    fn check(&self, graph: &Graph) -> Vec<Violation> {
        services(graph)
            .filter(|s| s.get_str("mode") == Some("replicated") && s.get("replicas").and_then(Value::as_i64).unwrap_or(1) > 1)
            .filter(|s| {
                let p = s.get("placement").and_then(Value::as_map);
                let spread = p.and_then(|p| p.get("spread")).and_then(Value::as_list).is_some_and(|l| !l.is_empty());
                let capped = p.and_then(|p| p.get("max_replicas_per_node")).and_then(Value::as_i64).is_some_and(|n| n > 0);
                !spread && !capped
            })
            .map(|s| {
                Violation::new(
                    s,
                    "its replicas may all land on one node (or in one AZ)",
                    "spread them: `.spread(\"node.labels.az\")`, or cap them with `.max_replicas_per_node(n)`",
                )
            })
            .collect()
    }
}

struct UpdateNotContinue;
impl PolicyRule for UpdateNotContinue {
    fn id(&self) -> &str {
        "HA011"
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn summary(&self) -> &str {
        "a failing rolling update pauses or rolls back rather than continuing"
    }
    fn check(&self, graph: &Graph) -> Vec<Violation> {
        services(graph)
            .filter(|s| {
                s.get("update_config")
                    .and_then(Value::as_map)
                    .and_then(|u| u.get("failure_action"))
                    .and_then(Value::as_str)
                    == Some("continue")
            })
            .map(|s| {
                Violation::new(
                    s,
                    "a failing update carries on and replaces healthy tasks with failing ones",
                    "use `FailureAction::Rollback` (or `Pause`)",
                )
            })
            .collect()
    }
}

const SECRET_WORDS: [&str; 8] = [
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
    "CREDENTIAL",
];

struct NoSecretsInEnv;
impl PolicyRule for NoSecretsInEnv {
    fn id(&self) -> &str {
        "SEC010"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &str {
        "secrets are Swarm secrets, never plain environment variables"
    }
    fn references(&self) -> &[&str] {
        &["CKV_K8S_35"]
    }
    fn check(&self, graph: &Graph) -> Vec<Violation> {
        let mut out = Vec::new();
        for s in services(graph) {
            for (key, value) in s.get("env").and_then(Value::as_map).into_iter().flatten() {
                let upper = key.to_ascii_uppercase();
                // A `*_FILE` variable points at a mounted secret: that's the right pattern.
                if upper.ends_with("_FILE") || !SECRET_WORDS.iter().any(|w| upper.contains(w)) {
                    continue;
                }
                if matches!(value, Value::String(v) if !v.is_empty()) {
                    out.push(Violation::new(
                        s,
                        format!("environment variable `{key}` holds a plain value (it would show in plans, `docker inspect` and logs)"),
                        format!("store it in a `SwarmSecret`, mount it with `.secret(&secret, \"{}\")` and read the file (e.g. `{key}_FILE`)", key.to_ascii_lowercase()),
                    ));
                }
            }
        }
        out
    }
}
