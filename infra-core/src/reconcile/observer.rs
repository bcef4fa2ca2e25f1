//! The hooks an apply calls as it goes: progress display and audit logging.

use std::time::Duration;

use super::{AuditEvent, OpKind};
use crate::audit::AuditEntry;
use crate::provider::ProviderError;

/// Hooks for progress display and audit logging. All methods default to nothing.
pub trait ApplyObserver: Send + Sync {
    /// Called once with the number of operations.
    fn started(&self, total: usize) {
        let _ = total;
    }
    /// An operation begins: its first provider call got one of the concurrency slots (one
    /// still queued behind the limit has not begun; heartbeats say it waits for a slot).
    fn op_started(&self, address: &str, op: OpKind) {
        let _ = (address, op);
    }
    /// A retryable error; the operation will be tried again after `delay`.
    fn retrying(
        &self,
        address: &str,
        op: OpKind,
        attempt: u32,
        error: &ProviderError,
        delay: Duration,
    ) {
        let _ = (address, op, attempt, error, delay);
    }
    /// An operation is still running, every
    /// [`ApplyOptions::heartbeat`](super::ApplyOptions::heartbeat): how long it has run and what
    /// it waits for, when the provider said (a NAT gateway becoming available, a service's tasks
    /// converging; see [`crate::retry::waiting_for`]).
    fn op_waiting(&self, address: &str, op: OpKind, elapsed: Duration, waiting_for: Option<&str>) {
        let _ = (address, op, elapsed, waiting_for);
    }
    /// An operation ended (also called for skipped ones).
    fn op_finished(&self, event: &AuditEvent) {
        let _ = event;
    }
    /// An audit entry that is not an operation's ([`AuditEntry::Change`] goes to
    /// [`op_finished`](Self::op_finished)): an apply going ahead with a suppressed policy
    /// finding, say.
    fn audit(&self, entry: &AuditEntry) {
        let _ = entry;
    }
}

/// A shared observer observes as the one it points to.
impl<T: ApplyObserver + ?Sized> ApplyObserver for std::sync::Arc<T> {
    fn started(&self, total: usize) {
        (**self).started(total);
    }
    fn op_started(&self, address: &str, op: OpKind) {
        (**self).op_started(address, op);
    }
    fn retrying(
        &self,
        address: &str,
        op: OpKind,
        attempt: u32,
        error: &ProviderError,
        delay: Duration,
    ) {
        (**self).retrying(address, op, attempt, error, delay);
    }
    fn op_waiting(&self, address: &str, op: OpKind, elapsed: Duration, waiting_for: Option<&str>) {
        (**self).op_waiting(address, op, elapsed, waiting_for);
    }
    fn op_finished(&self, event: &AuditEvent) {
        (**self).op_finished(event);
    }
    fn audit(&self, entry: &AuditEntry) {
        (**self).audit(entry);
    }
}

/// An observer that does nothing.
pub struct NoObserver;
impl ApplyObserver for NoObserver {}
