//! A filesystem mounted into a service's tasks: a named volume, a bind mount of a host path, or
//! a tmpfs.
//!
//! A mount is stored as a map in the service's `mounts` list (a set: its order means nothing)
//! with only what was declared: `type`, `source` (volumes and binds), `target`, `read_only`
//! (only when true), and the type's options (`labels`, `driver`, `driver_options` for volumes;
//! `size_bytes`, `mode` for tmpfs). Swarm returns exactly those fields when nothing else is
//! sent, so the provider's read compares equal to the declaration.

use std::collections::BTreeMap;

use infra_core::Value;

/// A filesystem mounted into every task of a service ([`SwarmService::mount`]).
///
/// * [`Mount::volume`]: a named volume, `<stack>_<name>` on each node that runs a task (as
///   `docker stack deploy` names them). Its data stays on that node: pin the service to the node
///   with a placement constraint (`node.labels.…`) if it must find its data after a reschedule.
///   The volume outlives the service: removing the service (or destroying the stack) keeps the
///   data, and `docker volume rm` removes it.
/// * [`Mount::bind`]: a path of the node's own filesystem (it must exist on every node the task
///   may land on, or the task fails to start).
/// * [`Mount::tmpfs`]: memory-backed scratch space, gone when the task stops.
///
/// Mounts are part of the task template: changing one replaces the service's tasks (a rolling
/// update, in place: the service keeps its ID).
///
/// [`SwarmService::mount`]: crate::SwarmService::mount
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct Mount(BTreeMap<String, Value>);

impl Mount {
    fn new(kind: &str, source: Option<&str>, target: &str) -> Self {
        let mut m = BTreeMap::new();
        m.insert("type".to_string(), Value::from(kind));
        if let Some(s) = source {
            m.insert("source".to_string(), Value::from(s));
        }
        m.insert("target".to_string(), Value::from(target));
        Mount(m)
    }
    /// The named volume `name` (`<stack>_<name>` on the node) at `target` (an absolute path),
    /// read-write. Swarm creates it with the `local` driver, or the driver given with
    /// [`Mount::volume_driver`], on the first task that mounts it on a node.
    pub fn volume(name: &str, target: &str) -> Self {
        Mount::new("volume", Some(name), target)
    }
    /// The node's path `source` (absolute) at `target` (absolute), read-write unless
    /// [`Mount::read_only`].
    pub fn bind(source: &str, target: &str) -> Self {
        Mount::new("bind", Some(source), target)
    }
    /// A tmpfs at `target` (absolute): unlimited size (half the node's memory) and mode 1777
    /// unless [`Mount::size_mb`] and [`Mount::mode`] say otherwise.
    pub fn tmpfs(target: &str) -> Self {
        Mount::new("tmpfs", None, target)
    }
    /// Mount read-only: a write inside the task fails (volumes and bind mounts; a read-only
    /// tmpfs is a validation problem).
    pub fn read_only(mut self) -> Self {
        self.0.insert("read_only".into(), Value::Bool(true));
        self
    }
    /// A label on the volume Swarm creates (volumes only; keys starting with `infra.` are
    /// reserved). Like the driver and its options, it applies when the volume is created on a
    /// node: an existing volume keeps what it was created with.
    pub fn volume_label(mut self, key: &str, value: &str) -> Self {
        self.insert_in("labels", key, value);
        self
    }
    /// The volume driver (`local` by default; volumes only).
    pub fn volume_driver(mut self, driver: &str) -> Self {
        self.0.insert("driver".into(), Value::from(driver));
        self
    }
    /// A volume driver option (`type` = `nfs`, `o` = `addr=…`, `device` = `:/export` for the
    /// `local` driver's NFS volumes; volumes only, with [`Mount::volume_driver`]).
    pub fn volume_driver_option(mut self, key: &str, value: &str) -> Self {
        self.insert_in("driver_options", key, value);
        self
    }
    /// The tmpfs's size limit in MiB (tmpfs only).
    pub fn size_mb(mut self, mb: u64) -> Self {
        let bytes = i64::try_from(mb.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX);
        self.0.insert("size_bytes".into(), Value::Int(bytes));
        self
    }
    /// The tmpfs's permission bits, such as `0o1770` (tmpfs only).
    pub fn mode(mut self, mode: u32) -> Self {
        self.0.insert("mode".into(), Value::from(mode));
        self
    }
    fn insert_in(&mut self, key: &str, k: &str, v: &str) {
        let mut m = match self.0.remove(key) {
            Some(Value::Map(m)) => m,
            _ => BTreeMap::new(),
        };
        m.insert(k.to_string(), Value::from(v));
        self.0.insert(key.to_string(), Value::Map(m));
    }
    pub(crate) fn into_value(self) -> Value {
        Value::Map(self.0)
    }
}
