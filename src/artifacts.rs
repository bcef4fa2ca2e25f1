//! The artifacts a stack deploys that the project builds itself: the Lambda functions' code zips
//! and the controller's image ([`controller_image`]: the deploy program as a Swarm service).
//!
//! [`lambda_zip`] builds one of the workspace's functions (crate `infra-functions`) for the
//! `provided.al2023` runtime and packs it as Lambda wants it: a zip holding one executable named
//! `bootstrap`. `cargo run --example build-functions` builds them all.
//!
//! Amazon Linux 2023 has glibc 2.34, older than the glibc of the machines that build, and a
//! binary linked against a newer glibc fails at cold start (`GLIBC_2.3x not found`). No musl
//! target is installed here, so the functions are linked statically against glibc
//! (`-C target-feature=+crt-static`, target `x86_64-unknown-linux-gnu`): the executable needs no
//! shared library and no glibc symbol version at all. A static glibc cannot load its NSS modules,
//! so the functions resolve host names with a pure-Rust resolver (hickory) and never call
//! `getaddrinfo`.
//!
//! The build has its own target directory (`target/lambda-build`), so its `RUSTFLAGS` never
//! invalidate the workspace's normal build; cargo decides what is up to date, so a second call
//! only re-packs the zip, and only when the executable changed.
//!
//! Where the workspace is not at hand (the controller's image), `INFRA_LAMBDA_DIR` names a
//! directory holding the zips already built (`<dir>/<function>/bootstrap.zip`): [`lambda_zip`]
//! then builds nothing and returns the zip found there.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

mod image;

pub use image::{
    build_controller_executable, controller_build_command, controller_image, controller_image_of,
    ControllerProgram, CONTROLLER_EXAMPLE, CONTROLLER_PROFILE, CONTROLLER_TAG,
};

/// The functions of the workspace (binaries of the `infra-functions` crate).
pub const FUNCTIONS: [&str; 2] = ["analytics-ingest", "node-events"];
/// The Rust target the functions are built for (Lambda's `x86_64` architecture).
pub const LAMBDA_TARGET: &str = "x86_64-unknown-linux-gnu";
/// The cargo profile of the build (`[profile.lambda]` in the workspace's Cargo.toml: release,
/// stripped).
pub const LAMBDA_PROFILE: &str = "lambda";
/// The flags that make the executable static.
pub const LAMBDA_RUSTFLAGS: &str = "-C target-feature=+crt-static";
/// The Lambda runtime the artifacts are for.
pub const LAMBDA_RUNTIME: &str = "provided.al2023";
const CRATE: &str = "infra-functions";

/// Why an artifact could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// Not one of [`FUNCTIONS`].
    #[error("{0:?} is not a function of this workspace (the functions: {list})", list = FUNCTIONS.join(", "))]
    UnknownFunction(String),
    /// cargo could not be started.
    #[error("could not run {cargo}: {source}")]
    Cargo {
        /// The cargo command.
        cargo: String,
        /// Why.
        source: std::io::Error,
    },
    /// The build failed; cargo's messages went to stderr.
    #[error("building {bin} for {LAMBDA_RUNTIME} failed ({status}): `{command}` (its messages are above)")]
    Build {
        /// The function.
        bin: String,
        /// cargo's exit status.
        status: std::process::ExitStatus,
        /// The command, to run it by hand.
        command: String,
    },
    /// The deploy program's static build failed; cargo's messages went to stderr.
    #[error("building the deploy program for the controller's image failed ({status}): `{command}` (its messages are above)")]
    ControllerBuild {
        /// cargo's exit status.
        status: std::process::ExitStatus,
        /// The command, to run it by hand.
        command: String,
    },
    /// The Docker engine could not be reached, or refused to build the image.
    #[error("building the controller's image: {0}")]
    Docker(String),
    /// Reading the executable or writing the zip failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError + '_ {
    move |source| ArtifactError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The workspace the functions are built from: where this crate was compiled from.
pub fn workspace_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The variable naming a directory of prebuilt zips (see the [module docs](self)).
pub const LAMBDA_DIR_VAR: &str = "INFRA_LAMBDA_DIR";

fn prebuilt_dir() -> Option<PathBuf> {
    std::env::var_os(LAMBDA_DIR_VAR)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// Where [`lambda_zip`] puts a function's zip: `target/lambda/<bin>/bootstrap.zip` (or
/// `$INFRA_LAMBDA_DIR/<bin>/bootstrap.zip`, prebuilt).
pub fn lambda_zip_path(bin: &str) -> PathBuf {
    prebuilt_dir()
        .unwrap_or_else(|| workspace_dir().join("target/lambda"))
        .join(bin)
        .join("bootstrap.zip")
}

/// Builds function `bin` (one of [`FUNCTIONS`]) for [`LAMBDA_RUNTIME`] and packs it into
/// `target/lambda/<bin>/bootstrap.zip`: one entry, `bootstrap`, mode 0755, with a fixed
/// timestamp, so the same executable always gives the same zip (and the same code digest).
/// Returns the zip's path. cargo's progress goes to stderr.
pub fn lambda_zip(bin: &str) -> Result<PathBuf, ArtifactError> {
    if !FUNCTIONS.contains(&bin) {
        return Err(ArtifactError::UnknownFunction(bin.to_string()));
    }
    if prebuilt_dir().is_some() {
        // prebuilt (the controller's image): nothing to build; a missing zip is reported by the
        // stack's validation, naming the path
        return Ok(lambda_zip_path(bin));
    }
    let exe = build_lambda_executable(bin)?;
    let zip = lambda_zip_path(bin);
    if !zip_is_current(&exe, &zip) {
        write_bootstrap_zip(&exe, &zip)?;
    }
    Ok(zip)
}

/// Whether `zip` was written after `exe` last changed: it then holds exactly what
/// [`write_bootstrap_zip`] would write again (the zip is a function of the executable alone),
/// and re-packing is skipped. Packing deflates the whole executable, and in a debug build of
/// the deploy program that took most of a plan's run (about 0.7 s of CPU per function).
fn zip_is_current(exe: &Path, zip: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(exe), modified(zip)) {
        (Some(exe), Some(zip)) => zip > exe,
        _ => false,
    }
}

/// The cargo command [`lambda_zip`] runs for `bin`, as text (for messages and docs).
pub fn build_command(bin: &str) -> String {
    format!(
        "RUSTFLAGS='{LAMBDA_RUSTFLAGS}' cargo build -p {CRATE} --bin {bin} --profile {LAMBDA_PROFILE} --target {LAMBDA_TARGET} --target-dir target/lambda-build"
    )
}

/// Builds function `bin` (a static executable) and returns its path under
/// `target/lambda-build`.
pub fn build_lambda_executable(bin: &str) -> Result<PathBuf, ArtifactError> {
    if !FUNCTIONS.contains(&bin) {
        return Err(ArtifactError::UnknownFunction(bin.to_string()));
    }
    let target_dir = workspace_dir().join("target/lambda-build");
    let status = cargo_static(
        &["-p", CRATE, "--bin", bin],
        LAMBDA_PROFILE,
        &target_dir,
        false,
    )?;
    if !status.success() {
        return Err(ArtifactError::Build {
            bin: bin.to_string(),
            status,
            command: build_command(bin),
        });
    }
    Ok(target_dir
        .join(LAMBDA_TARGET)
        .join(LAMBDA_PROFILE)
        .join(bin))
}

/// Runs `cargo build <what> --profile <profile> --target LAMBDA_TARGET --target-dir
/// <target_dir>` in the workspace with [`LAMBDA_RUSTFLAGS`]: a static executable. cargo's
/// progress goes to stderr.
///
/// `clean_env`: only the variables cargo and rustup need are passed on. Some build scripts of
/// the deploy program's dependencies rerun when a variable they watch differs, and the programs
/// that call this (a shell, `cargo run`, `cargo test`) each set others: without it, every
/// change of caller would rebuild the whole dependency tree.
fn cargo_static(
    what: &[&str],
    profile: &str,
    target_dir: &Path,
    clean_env: bool,
) -> Result<ExitStatus, ArtifactError> {
    // cargo sets $CARGO for the programs it runs (examples, tests)
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(&cargo);
    if clean_env {
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
    }
    command
        .current_dir(workspace_dir())
        .arg("build")
        .args(what)
        .args(["--profile", profile, "--target", LAMBDA_TARGET])
        .arg("--target-dir")
        .arg(target_dir)
        // with --target, RUSTFLAGS apply to the target's code only, not to build scripts and
        // proc-macros (which run here)
        .env("RUSTFLAGS", LAMBDA_RUSTFLAGS)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|source| ArtifactError::Cargo { cargo, source })
}

/// Packs executable `exe` as Lambda's `bootstrap` into the zip at `zip` (written whole, then
/// renamed into place): one entry, mode 0755, timestamp 1980-01-01 00:00, deflated. The same
/// executable gives the same bytes.
pub fn write_bootstrap_zip(exe: &Path, zip: &Path) -> Result<(), ArtifactError> {
    let code = std::fs::read(exe).map_err(io(exe))?;
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut writer = zip::ZipWriter::new(&mut buffer);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(0o755)
            .large_file(false);
        let as_io = |e: zip::result::ZipError| io(zip)(std::io::Error::other(e));
        writer.start_file("bootstrap", options).map_err(as_io)?;
        writer.write_all(&code).map_err(io(zip))?;
        writer.finish().map_err(as_io)?;
    }
    let dir = zip.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    // unique per writer, so two builds at once never mix their bytes
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let partial = zip.with_extension(format!("zip.{}-{n}.partial", std::process::id()));
    std::fs::write(&partial, buffer.get_ref()).map_err(io(&partial))?;
    std::fs::rename(&partial, zip).map_err(io(zip))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_functions_are_refused_before_building() {
        let err = lambda_zip("nope").unwrap_err().to_string();
        assert_eq!(
            err,
            "\"nope\" is not a function of this workspace (the functions: analytics-ingest, node-events)"
        );
    }

    #[test]
    fn the_zip_is_deterministic_and_executable() {
        let dir = std::env::temp_dir().join(format!("infra-artifacts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("exe");
        std::fs::write(&exe, b"\x7fELF not really").unwrap();
        let (a, b) = (dir.join("a/bootstrap.zip"), dir.join("b/bootstrap.zip"));
        write_bootstrap_zip(&exe, &a).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        write_bootstrap_zip(&exe, &b).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());

        let mut archive = zip::ZipArchive::new(std::fs::File::open(&a).unwrap()).unwrap();
        assert_eq!(archive.len(), 1);
        let entry = archive.by_index(0).unwrap();
        assert_eq!(entry.name(), "bootstrap");
        assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o755));
        assert_eq!(entry.last_modified(), Some(zip::DateTime::default()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_zip_is_current_only_when_written_after_its_executable() {
        let dir = std::env::temp_dir().join(format!("infra-zip-current-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (exe, zip) = (dir.join("exe"), dir.join("bootstrap.zip"));
        std::fs::write(&exe, b"\x7fELF not really").unwrap();
        assert!(!zip_is_current(&exe, &zip), "no zip yet");
        write_bootstrap_zip(&exe, &zip).unwrap();
        assert!(zip_is_current(&exe, &zip));
        // the executable rebuilt after the zip was written
        let later = std::fs::metadata(&zip).unwrap().modified().unwrap()
            + std::time::Duration::from_secs(1);
        std::fs::File::options()
            .write(true)
            .open(&exe)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(!zip_is_current(&exe, &zip));
        assert!(!zip_is_current(&dir.join("missing"), &zip), "no executable");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
