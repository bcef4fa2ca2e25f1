//! What an apply reports: each operation's outcome, the counts, the audit events.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::audit::Actor;
use crate::plan::{Action, FieldChange};

/// One provider call kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OpKind {
    /// A create.
    Create,
    /// An in-place update.
    Update,
    /// A delete.
    Delete,
    /// A move: the object re-owned under its new address
    /// ([`Provider::move_to`](crate::provider::Provider::move_to)).
    Move,
    /// An adoption: the stack's ownership written on an object that belonged to no stack
    /// ([`Provider::adopt`](crate::provider::Provider::adopt)).
    Adopt,
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpKind::Create => "create",
            OpKind::Update => "update",
            OpKind::Delete => "delete",
            OpKind::Move => "move",
            OpKind::Adopt => "adopt",
        })
    }
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum OpStatus {
    /// Done.
    Succeeded,
    /// An update found nothing to change once references were resolved.
    NothingToDo,
    /// Failed; the error names the API code and message.
    Failed {
        /// What went wrong.
        error: String,
    },
    /// Not attempted because something it depends on failed.
    Skipped {
        /// Why.
        because: String,
    },
}

/// The outcome of one operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OpOutcome {
    /// The resource.
    pub address: String,
    /// The call.
    pub op: OpKind,
    /// The planned change it belongs to.
    pub change: Action,
    /// How it ended.
    #[serde(flatten)]
    pub status: OpStatus,
    /// Attempts made (0 when skipped).
    pub attempts: u32,
    /// The object's id after the operation (or the deleted object's id).
    pub id: Option<String>,
    /// Wall time, milliseconds.
    pub duration_ms: u64,
}

/// Counts for the summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Objects created.
    pub added: usize,
    /// Objects updated.
    pub changed: usize,
    /// Objects deleted.
    pub destroyed: usize,
    /// Objects re-owned under a new address.
    pub moved: usize,
    /// Objects adopted (the stack's ownership written on them).
    pub adopted: usize,
    /// Operations failed.
    pub failed: usize,
    /// Operations skipped.
    pub skipped: usize,
}

/// What an apply did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApplyReport {
    /// The stack.
    pub stack: String,
    /// Every operation's outcome, in plan order.
    pub outcomes: Vec<OpOutcome>,
    /// API calls made during the apply, per provider (those that count them).
    pub api_calls: BTreeMap<String, u64>,
    /// Wall time, milliseconds.
    pub duration_ms: u64,
}

impl ApplyReport {
    /// True when nothing failed or was skipped.
    pub fn is_success(&self) -> bool {
        self.outcomes
            .iter()
            .all(|o| matches!(o.status, OpStatus::Succeeded | OpStatus::NothingToDo))
    }
    /// Counts by result.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for o in &self.outcomes {
            match (&o.status, o.op) {
                (OpStatus::Succeeded, OpKind::Create) => c.added += 1,
                (OpStatus::Succeeded, OpKind::Update) => c.changed += 1,
                (OpStatus::Succeeded, OpKind::Delete) => c.destroyed += 1,
                (OpStatus::Succeeded, OpKind::Move) => c.moved += 1,
                (OpStatus::Succeeded, OpKind::Adopt) => c.adopted += 1,
                (OpStatus::Failed { .. }, _) => c.failed += 1,
                (OpStatus::Skipped { .. }, _) => c.skipped += 1,
                _ => {}
            }
        }
        c
    }
}

/// One JSON audit event per operation, emitted on the `infra::audit` tracing target and handed
/// to the [`ApplyObserver`](super::ApplyObserver); in the audit file it is an
/// [`AuditEntry::Change`](crate::audit::AuditEntry::Change) line (`"event": "change"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEvent {
    /// Milliseconds since the Unix epoch.
    pub ts_unix_ms: u64,
    /// The stack.
    pub stack: String,
    /// Who applied.
    pub actor: Actor,
    /// The digest of the plan the operation came from ([`plan_digest`](crate::audit::plan_digest)).
    pub plan_digest: String,
    /// The resource's kind.
    pub kind: String,
    /// The provider serving it.
    pub provider: String,
    /// The planned field diff (secret values as digests, never in clear).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    /// The operation.
    #[serde(flatten)]
    pub outcome: OpOutcome,
}

impl AuditEvent {
    /// Emits the event (as `json`, formatted only if recorded) on the `infra::audit` target.
    pub(crate) fn trace(&self, json: &dyn fmt::Display) {
        let outcome = &self.outcome;
        match &outcome.status {
            OpStatus::Failed { error } => {
                tracing::error!(target: "infra::audit", address = %outcome.address, op = %outcome.op, %error, audit = %json, "change failed")
            }
            OpStatus::Skipped { because } => {
                tracing::warn!(target: "infra::audit", address = %outcome.address, op = %outcome.op, %because, audit = %json, "change skipped")
            }
            _ => {
                tracing::info!(target: "infra::audit", address = %outcome.address, op = %outcome.op, audit = %json, "change done")
            }
        }
    }
}
