//! The round-trip fixture's own kinds (copied into the fixture crate as `src/disks.rs`): a disk
//! and a mount of it, with the code generation `import` writes them with, served by a sandbox
//! named `demo`. They prove the round trip where no AWS or Swarm kind generates code yet.

use infra::core::dsl::{KindSchema, Ref, ResourceSpec};
use infra::core::import::{rust_str, Discovered, Generated, ImportNames};
use infra::core::{kind, Value};

/// A disk of a size.
pub static DISK: KindSchema = KindSchema::new("demo_disk", "demo")
    .computed(&["id"])
    .codegen(disk_code);

kind! {
    /// A disk.
    pub struct Disk => DISK
}

impl Disk {
    /// A disk called `name`.
    pub fn new(name: &str) -> Self {
        Disk(ResourceSpec::new(&DISK, name))
    }
    /// Its size.
    pub fn size_gb(mut self, n: i64) -> Self {
        self.0.set("size_gb", n);
        self
    }
}

fn disk_code(o: &Discovered, name: &str, _: &ImportNames) -> Generated {
    let mut expr = format!("Disk::new({})", rust_str(name));
    if let Some(Value::Int(n)) = o.props.get("size_gb") {
        expr.push_str(&format!(".size_gb({n})"));
    }
    Generated {
        type_path: "crate::disks::Disk",
        expr,
        comments: Vec::new(),
    }
}

/// A mount of a disk at a path.
pub static MOUNT: KindSchema = KindSchema::new("demo_mount", "demo")
    .computed(&["id"])
    .codegen(mount_code);

kind! {
    /// A mount.
    pub struct Mount => MOUNT
}

impl Mount {
    /// A mount called `name`.
    pub fn new(name: &str) -> Self {
        Mount(ResourceSpec::new(&MOUNT, name))
    }
    /// The disk it mounts.
    pub fn disk(mut self, disk: &Ref<Disk>) -> Self {
        self.0.set("disk_id", disk.id());
        self
    }
    /// Where.
    pub fn path(mut self, path: &str) -> Self {
        self.0.set("path", path);
        self
    }
}

fn mount_code(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut expr = format!("Mount::new({})", rust_str(name));
    let mut comments = Vec::new();
    if let Some(id) = o.props.get("disk_id").and_then(Value::as_str) {
        match names.reference(DISK.kind, id) {
            Some(r) => expr.push_str(&format!(".disk({r})")),
            None => comments.push(format!("its disk {id} was not imported")),
        }
    }
    if let Some(Value::String(p)) = o.props.get("path") {
        expr.push_str(&format!(".path({})", rust_str(p)));
    }
    Generated {
        type_path: "crate::disks::Mount",
        expr,
        comments,
    }
}
