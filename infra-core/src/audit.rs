//! The audit trail: one JSON entry per event that changed, or refused to change, the stack.
//!
//! Every entry says *who* (the OS user, host and process, and the identity each provider acted
//! as: for AWS the caller's ARN), *when*, and for which stack. The kinds of entry:
//!
//! * [`AuditEntry::Change`]: one per provider operation of an apply (create, update, delete),
//!   with the digest of the plan it came from, the field diff (secret values as digests, never
//!   in clear), the result and the duration;
//! * [`AuditEntry::PolicySuppressed`]: an apply went ahead with a suppressed policy finding;
//! * [`AuditEntry::ForceUnlock`]: a stack's apply lock was broken, and whose it was;
//! * [`AuditEntry::PlanRefused`]: a saved plan was refused, and why.
//!
//! [`schema`] is the JSON Schema of one line of the audit file (`--audit-file`).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::plan::Plan;
use crate::reconcile::AuditEvent;

/// Who acted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Actor {
    /// The operating-system user running the program (`$USER`, else `$LOGNAME`, else the uid).
    pub os_user: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The identity each provider acted as, by provider name, where the provider can tell (AWS:
    /// the ARN `sts:GetCallerIdentity` returns, a user or an assumed role).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub callers: BTreeMap<String, String>,
}

impl Actor {
    /// This process, with no provider identity yet.
    pub fn this_process() -> Actor {
        let os_user = ["USER", "LOGNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
            .or_else(uid)
            .unwrap_or_else(|| "unknown-user".into());
        Actor {
            os_user,
            host: crate::provider::this_host(),
            pid: std::process::id(),
            callers: BTreeMap::new(),
        }
    }
}

/// This process, with the identity each of `providers` acts as ([`Provider::caller`](crate::provider::Provider::caller)).
pub async fn actor_for(providers: &crate::reconcile::Providers) -> Actor {
    let mut actor = Actor::this_process();
    for (name, provider) in providers {
        if let Some(caller) = provider.caller().await {
            actor.callers.insert(name.clone(), caller);
        }
    }
    actor
}

/// The audit entries of an apply of `plan` going ahead with suppressed policy findings.
pub fn suppressions(plan: &Plan, actor: &Actor) -> Vec<AuditEntry> {
    let digest = plan_digest(plan);
    plan.policy
        .findings
        .iter()
        .filter_map(|f| {
            let reason = f.suppressed.as_ref()?;
            Some(AuditEntry::PolicySuppressed {
                ts_unix_ms: now_unix_ms(),
                stack: plan.stack.clone(),
                actor: actor.clone(),
                plan_digest: digest.clone(),
                rule: f.rule.clone(),
                address: f.address.clone(),
                severity: match f.severity {
                    crate::policy::Severity::Error => "error",
                    _ => "warning",
                }
                .into(),
                message: f.message.clone(),
                reason: reason.clone(),
            })
        })
        .collect()
}

/// `uid <n>` from /proc (Linux), when no user variable is set (a container, cron).
fn uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    let uid = line.split_whitespace().nth(1)?;
    Some(format!("uid {uid}"))
}

/// The digest of a plan as `plan --json` prints it (`sha256:<hex>`): the same plan, the same
/// digest; `plan --json | sha256sum` gives the hex part.
pub fn plan_digest(plan: &Plan) -> String {
    digest_bytes(crate::render::plan_json(plan).as_bytes())
}

/// `sha256:<hex>` of `bytes` (`sha256sum` gives the hex part).
pub fn digest_bytes(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One line of the audit file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditEntry {
    /// A provider operation of an apply ended (also a failed or skipped one).
    Change(AuditEvent),
    /// An apply went ahead although a policy finding on a resource was suppressed.
    PolicySuppressed {
        /// Milliseconds since the Unix epoch.
        ts_unix_ms: u64,
        /// The stack.
        stack: String,
        /// Who applied.
        actor: Actor,
        /// The plan applied.
        plan_digest: String,
        /// The policy rule.
        rule: String,
        /// The resource the finding is on.
        address: String,
        /// `error` or `warning`.
        severity: String,
        /// The finding.
        message: String,
        /// The reason given with the suppression.
        reason: String,
    },
    /// A stack's apply lock was broken (`force-unlock`).
    ForceUnlock {
        /// Milliseconds since the Unix epoch.
        ts_unix_ms: u64,
        /// The stack.
        stack: String,
        /// Who broke it.
        actor: Actor,
        /// The provider whose lock it was.
        provider: String,
        /// Who held it (`host:pid<N>:<random>`).
        holder: String,
        /// What the holder was doing.
        operation: String,
        /// When the holder took it, seconds since the Unix epoch.
        since_unix: u64,
    },
    /// A saved plan was refused: nothing was changed.
    PlanRefused {
        /// Milliseconds since the Unix epoch.
        ts_unix_ms: u64,
        /// The stack.
        stack: String,
        /// Who tried to apply it.
        actor: Actor,
        /// The plan file.
        file: String,
        /// The digest of the refused file's bytes ([`digest_bytes`]), when it could be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan_digest: Option<String>,
        /// Why (the refusal's message).
        reason: String,
    },
}

impl AuditEntry {
    /// The entry as one JSON line (no newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Emits the entry on the `infra::audit` tracing target (warn for refusals, failures and
    /// broken locks, info otherwise). The JSON is made only if a subscriber records the event.
    pub fn trace(&self) {
        let json = AsJson(self);
        match self {
            AuditEntry::Change(e) => e.trace(&json),
            AuditEntry::PolicySuppressed { address, rule, .. } => {
                tracing::info!(target: "infra::audit", %address, %rule, audit = %json, "applied with a suppressed policy finding")
            }
            AuditEntry::ForceUnlock {
                provider, holder, ..
            } => {
                tracing::warn!(target: "infra::audit", %provider, %holder, audit = %json, "apply lock broken")
            }
            AuditEntry::PlanRefused { file, .. } => {
                tracing::warn!(target: "infra::audit", %file, audit = %json, "saved plan refused")
            }
        }
    }
}

/// A value shown as its JSON, serialized when (and only if) it is formatted: tracing formats
/// a field only for a subscriber that records the event.
pub(crate) struct AsJson<'a, T>(pub(crate) &'a T);

impl<T: Serialize> std::fmt::Display for AsJson<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&serde_json::to_string(self.0).unwrap_or_default())
    }
}

/// The JSON Schema of one audit-file line ([`AuditEntry`]).
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(AuditEntry)).unwrap_or_default()
}
