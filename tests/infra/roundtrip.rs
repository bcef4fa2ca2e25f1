//! The import round trip: objects made outside `infra` → the program's `import` → the module
//! it writes, compiled into a small fixture crate → its plan shows only adoptions → `adopt` →
//! the plan after it is empty → `destroy` removes them.
//!
//! The harness ([`round_trip`]) is generic over a [`Variant`]: where the objects live, how
//! they are made by hand, the fixture program and its dependencies, and how to count what is
//! left. [`Sandbox`] proves it on the sandbox with the fixture's own kinds
//! (`roundtrip/disks.rs`), since no AWS or Swarm kind generates code on its own yet; a moto or
//! Docker-engine variant is one more `impl Variant` whose program is
//! `infra::cli::run(|_| { let mut s = Stack::new(…); imported::declare(&mut s); s })` and whose
//! commands are the deploy program's (`--target live --only aws import --out …`,
//! `plan --json`, `adopt --auto-approve`, `destroy --auto-approve`).
//!
//! The fixture crate is built with `CARGO_TARGET_DIR` set to this workspace's `target/` and a
//! copy of its `Cargo.lock`, so the dependencies already built are reused.

#[allow(dead_code, unreachable_pub)]
#[path = "roundtrip/disks.rs"]
mod disks;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use infra::core::sandbox::SandboxProvider;
use infra::core::Value;

/// A step of the round trip, as the fixture program is asked to do it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Write the module to the file given.
    Import,
    /// The plan as JSON on stdout.
    Plan,
    /// Apply a plan that only adopts.
    Adopt,
    /// Destroy what the stack owns.
    Destroy,
}

/// Where a round trip runs.
pub(crate) trait Variant {
    /// A short name: the fixture package is `roundtrip-<name>`.
    fn name(&self) -> &str;
    /// The fixture's `[dependencies]` lines; `infra` is the path of the facade.
    fn dependencies(&self, infra: &Path) -> String;
    /// The fixture's source files besides `src/imported.rs` (`src/main.rs` at least).
    fn files(&self) -> Vec<(&'static str, String)>;
    /// The fixture program's environment.
    fn env(&self) -> Vec<(String, String)>;
    /// The program's arguments for a step (`module`: the file `import` writes).
    fn args(&self, step: Step, module: &Path) -> Vec<String>;
    /// Makes the objects by hand (not through `infra`); returns how many `import` must declare.
    fn make_objects(&self) -> usize;
    /// How many of the objects made by hand are left.
    fn objects_left(&self) -> usize;
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// cargo with only the variables it and rustup need (as `infra::artifacts` runs it): a
/// different caller's environment must not rebuild the dependencies.
fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.env_clear();
    for var in [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
    ] {
        if let Some(value) = std::env::var_os(var) {
            command.env(var, value);
        }
    }
    // The workspace's linker (.cargo/config.toml, which a crate outside the workspace does not
    // see), or the dependencies built with it would be rebuilt for the fixture.
    command.env(
        "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER",
        std::env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER")
            .unwrap_or_else(|| workspace().join("dev/linker").into_os_string()),
    );
    command
}

/// Writes the fixture crate under `dir`, with an empty `declare` to start from.
pub(crate) fn write_crate(variant: &dyn Variant, dir: &Path) {
    let package = format!("roundtrip-{}", variant.name());
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{package}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             [workspace]\n\n[dependencies]\n{}\n",
            variant.dependencies(&workspace())
        ),
    )
    .unwrap();
    std::fs::copy(workspace().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    for (path, text) in variant.files() {
        std::fs::write(dir.join(path), text).unwrap();
    }
    std::fs::write(
        dir.join("src/imported.rs"),
        "use infra::core::Stack;\n\npub fn declare(_stack: &mut Stack) {}\n",
    )
    .unwrap();
}

/// Builds the fixture; returns its executable.
pub(crate) fn build(variant: &dyn Variant, dir: &Path) -> PathBuf {
    let out = cargo()
        .current_dir(dir)
        .args(["build", "--quiet", "--offline"])
        .env("CARGO_TARGET_DIR", target_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "building the fixture crate failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target_dir()
        .join("debug")
        .join(format!("roundtrip-{}", variant.name()))
}

pub(crate) fn run(variant: &dyn Variant, exe: &Path, step: Step, module: &Path) -> Output {
    let out = Command::new(exe)
        .args(variant.args(step, module))
        .envs(variant.env())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{step:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn plan_json(variant: &dyn Variant, exe: &Path, module: &Path) -> serde_json::Value {
    let out = run(variant, exe, Step::Plan, module);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the plan is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The actions of the plan's changes that do something.
fn actions(plan: &serde_json::Value) -> Vec<(String, String)> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] != "no-op")
        .map(|c| {
            (
                c["address"].as_str().unwrap_or_default().to_string(),
                c["action"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// What a round trip saw, for the caller's assertions and report.
#[derive(Debug)]
pub(crate) struct Trip {
    /// The module `import` wrote.
    pub(crate) module: String,
    /// Objects made by hand.
    pub(crate) made: usize,
}

/// Runs the round trip of `variant` in `dir`, asserting each step. See the [module docs](self).
pub(crate) fn round_trip(variant: &dyn Variant, dir: &Path) -> Trip {
    write_crate(variant, dir);
    let exe = build(variant, dir);
    let made = variant.make_objects();
    assert!(made > 0, "the variant made no objects");
    let module_path = dir.join("src/imported.rs");
    run(variant, &exe, Step::Import, &module_path);
    let module = std::fs::read_to_string(&module_path).unwrap();
    assert_eq!(
        module.matches("stack.adopt(").count(),
        made,
        "one adoption per object made by hand:\n{module}"
    );
    let fmt = Command::new("rustfmt")
        .args(["--check", "--edition", "2021"])
        .arg(&module_path)
        .output();
    if let Ok(fmt) = fmt {
        assert!(
            fmt.status.success(),
            "the module is not rustfmt-clean:\n{}",
            String::from_utf8_lossy(&fmt.stdout)
        );
    }
    // The module compiles into the program.
    let exe = build(variant, dir);
    let plan = plan_json(variant, &exe, &module_path);
    let acts = actions(&plan);
    assert_eq!(acts.len(), made, "{plan:#}");
    assert!(
        acts.iter().all(|(_, a)| a == "adopt"),
        "the plan must only adopt: {acts:?}"
    );
    assert_eq!(plan["summary"]["adopted"], made);
    assert_eq!(plan["summary"]["add"], 0);
    run(variant, &exe, Step::Adopt, &module_path);
    let after = plan_json(variant, &exe, &module_path);
    assert!(
        actions(&after).is_empty(),
        "the plan after adopt: {after:#}"
    );
    assert_eq!(variant.objects_left(), made, "adopt kept every object");
    run(variant, &exe, Step::Destroy, &module_path);
    assert_eq!(variant.objects_left(), 0, "destroy removed them");
    Trip { module, made }
}

/// The round trip on the sandbox, with the fixture's own kinds.
struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    fn provider(&self) -> SandboxProvider {
        SandboxProvider::open(&self.dir, "demo").unwrap()
    }
}

impl Variant for Sandbox {
    fn name(&self) -> &str {
        "sandbox"
    }
    fn dependencies(&self, infra: &Path) -> String {
        format!(
            "infra = {{ path = {:?}, default-features = false }}\ntokio = {{ version = \"1\", features = [\"rt-multi-thread\"] }}",
            infra.display().to_string()
        )
    }
    fn files(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "src/main.rs",
                include_str!("roundtrip/sandbox_main.rs").into(),
            ),
            ("src/disks.rs", include_str!("roundtrip/disks.rs").into()),
        ]
    }
    fn env(&self) -> Vec<(String, String)> {
        vec![("FIXTURE_SANDBOX".into(), self.dir.display().to_string())]
    }
    fn args(&self, step: Step, module: &Path) -> Vec<String> {
        match step {
            Step::Import => vec!["import".into(), module.display().to_string()],
            Step::Plan => vec!["plan".into()],
            Step::Adopt => vec!["adopt".into()],
            Step::Destroy => vec!["destroy".into()],
        }
    }
    fn make_objects(&self) -> usize {
        let sandbox = self.provider();
        let props = |pairs: &[(&str, Value)]| -> BTreeMap<String, Value> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        };
        let data = sandbox
            .insert_foreign(
                disks::DISK.kind,
                "data volume",
                props(&[("size_gb", Value::Int(20))]),
            )
            .unwrap();
        sandbox
            .insert_foreign(disks::DISK.kind, "scratch", props(&[]))
            .unwrap();
        sandbox
            .insert_foreign(
                disks::MOUNT.kind,
                "data",
                props(&[
                    ("disk_id", Value::from(data.as_str())),
                    ("path", Value::from("/srv/data")),
                ]),
            )
            .unwrap();
        3
    }
    fn objects_left(&self) -> usize {
        self.provider().objects().unwrap().len()
    }
}

#[test]
fn round_trip_on_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let variant = Sandbox {
        dir: dir.path().join("sandbox"),
    };
    let trip = round_trip(&variant, &dir.path().join("fixture"));
    // References are typed: the mount refers to its disk's variable.
    assert!(
        trip.module.contains(".disk(&disk_data_volume)"),
        "{}",
        trip.module
    );
    assert_eq!(trip.made, 3);
}
