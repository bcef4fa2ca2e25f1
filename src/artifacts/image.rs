//! The controller's image: the deploy program (the `production` example), linked statically like
//! the Lambda functions, in an image `FROM scratch` built through the Docker API.
//!
//! The image holds `/production` (its entrypoint), the functions' zips under `/lambda` (the
//! stack's declaration includes their digests, so the controller must see the same zips as the
//! deploy that started it; `INFRA_LAMBDA_DIR` points there), and the build machine's CA
//! bundle under `/etc/ssl/certs` when it has one (HTTPS to AWS's endpoints). Nothing is pulled:
//! `FROM scratch` needs no base image. The build context is a tar made here with fixed
//! timestamps and owners, so the same program gives the same layers, and the engine's build
//! cache gives the same image ID.

use std::path::{Path, PathBuf};
use std::process::Command;

use futures::StreamExt as _;

use super::{
    cargo_static, lambda_zip, workspace_dir, ArtifactError, FUNCTIONS, LAMBDA_RUSTFLAGS,
    LAMBDA_TARGET,
};

/// The example that is the deploy program.
pub const CONTROLLER_EXAMPLE: &str = "production";
/// The cargo profile of the controller's build (`[profile.controller]`: unoptimised, stripped;
/// it compiles in a fraction of a release build's time and spends its life waiting on APIs).
pub const CONTROLLER_PROFILE: &str = "controller";
/// The tag the image gets besides its ID (push it to a registry under a versioned name for AWS).
pub const CONTROLLER_TAG: &str = "infra-controller:latest";
/// The CA bundle copied into the image, when the build machine has it.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The cargo command [`build_controller_executable`] runs, as text (for messages and docs).
pub fn controller_build_command() -> String {
    format!(
        "RUSTFLAGS='{LAMBDA_RUSTFLAGS}' cargo build --example {CONTROLLER_EXAMPLE} --profile {CONTROLLER_PROFILE} --target {LAMBDA_TARGET} --target-dir target/controller-build"
    )
}

/// Builds the deploy program as a static executable (see [`controller_build_command`]) and
/// returns its path under `target/controller-build`. cargo decides what is up to date; the first
/// build compiles the whole dependency tree for the static target (several minutes).
pub fn build_controller_executable() -> Result<PathBuf, ArtifactError> {
    let target_dir = workspace_dir().join("target/controller-build");
    let status = cargo_static(
        &["--example", CONTROLLER_EXAMPLE],
        CONTROLLER_PROFILE,
        &target_dir,
        true,
    )?;
    if !status.success() {
        return Err(ArtifactError::ControllerBuild {
            status,
            command: controller_build_command(),
        });
    }
    Ok(target_dir
        .join(LAMBDA_TARGET)
        .join(CONTROLLER_PROFILE)
        .join("examples")
        .join(CONTROLLER_EXAMPLE))
}

/// The deploy program an image is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControllerProgram {
    /// Built here, statically linked ([`build_controller_executable`]): what is shipped.
    Static,
    /// An executable already built (say `target/debug/examples/production`): packed with the
    /// shared libraries it links and its loader, as `ldd` names them, at the same paths. No
    /// second build of the dependency tree (the static one is a build of its own); for
    /// development and tests on the machine that built it, never for other machines' kernels
    /// and libraries.
    Prebuilt(PathBuf),
}

/// Builds the controller's image on the Docker engine of `DOCKER_HOST` (or the local socket)
/// and returns its ID (`sha256:…`), also tagged [`CONTROLLER_TAG`]: the static deploy program
/// ([`build_controller_executable`]), the functions' zips ([`lambda_zip`]) and the CA bundle,
/// `FROM scratch`. The builds run on a blocking thread; cargo's progress goes to stderr.
pub async fn controller_image() -> Result<String, ArtifactError> {
    controller_image_of(ControllerProgram::Static).await
}

/// [`controller_image`] made of `program`.
pub async fn controller_image_of(program: ControllerProgram) -> Result<String, ArtifactError> {
    let files = tokio::task::spawn_blocking(move || context_files(&program))
        .await
        .map_err(|e| ArtifactError::Docker(format!("the build thread failed: {e}")))??;
    let tar = tar(&files);
    let docker = bollard::Docker::connect_with_defaults()
        .map_err(|e| ArtifactError::Docker(e.to_string()))?
        .negotiate_version()
        .await
        .map_err(|e| ArtifactError::Docker(e.to_string()))?;
    let options = bollard::query_parameters::BuildImageOptionsBuilder::new()
        .dockerfile("Dockerfile")
        .t(CONTROLLER_TAG)
        .rm(true)
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(tar.into())));
    let (mut id, mut said) = (None, String::new());
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| ArtifactError::Docker(e.to_string()))?;
        if let Some(detail) = info.error_detail {
            return Err(ArtifactError::Docker(format!(
                "the engine refused the build: {}",
                detail.message.unwrap_or_default()
            )));
        }
        if let Some(text) = info.stream {
            said.push_str(&text);
        }
        if let Some(found) = info.aux.and_then(|aux| aux.id) {
            id = Some(found);
        }
    }
    id.ok_or_else(|| {
        ArtifactError::Docker(format!(
            "the engine reported no image ID; its output: {}",
            said.trim()
        ))
    })
}

/// The build context: `(path in the tar, mode, bytes)`.
type Files = Vec<(String, u32, Vec<u8>)>;

fn context_files(program: &ControllerProgram) -> Result<Files, ArtifactError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| ArtifactError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    let (exe, libraries) = match program {
        ControllerProgram::Static => (build_controller_executable()?, Vec::new()),
        ControllerProgram::Prebuilt(exe) => (exe.clone(), shared_libraries(exe)?),
    };
    let mut files: Files = vec![("production".into(), 0o755, read(&exe)?)];
    for lib in &libraries {
        let name = format!("root{}", lib.display());
        files.push((name, 0o755, read(lib)?));
    }
    for bin in FUNCTIONS {
        let zip = lambda_zip(bin)?;
        files.push((format!("lambda/{bin}/bootstrap.zip"), 0o644, read(&zip)?));
    }
    let ca = Path::new(CA_BUNDLE);
    let with_ca = ca.exists();
    if with_ca {
        files.push(("certs/ca-certificates.crt".into(), 0o644, read(ca)?));
    }
    let dockerfile = dockerfile(with_ca, !libraries.is_empty());
    files.push(("Dockerfile".into(), 0o644, dockerfile.into_bytes()));
    Ok(files)
}

/// The shared libraries and the loader that `exe` links, as `ldd` resolves them on this machine
/// (absolute paths; none for a static executable).
fn shared_libraries(exe: &Path) -> Result<Vec<PathBuf>, ArtifactError> {
    let output = Command::new("ldd")
        .arg(exe)
        .output()
        .map_err(|source| ArtifactError::Io {
            path: PathBuf::from("ldd"),
            source,
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        // a static executable: "not a dynamic executable" (and exit 1)
        let said = format!("{text}{}", String::from_utf8_lossy(&output.stderr));
        return if said.contains("not a dynamic executable") {
            Ok(Vec::new())
        } else {
            Err(ArtifactError::Docker(format!(
                "`ldd {}` failed: {}",
                exe.display(),
                said.trim()
            )))
        };
    }
    parse_ldd(&text).map_err(|missing| {
        ArtifactError::Docker(format!(
            "{} links {missing}, which `ldd` can't find on this machine",
            exe.display()
        ))
    })
}

/// The absolute paths in `ldd`'s output: `libc.so.6 => /lib/…/libc.so.6 (0x…)` and
/// `/lib64/ld-linux-x86-64.so.2 (0x…)`; `linux-vdso.so.1 (0x…)` is the kernel's. A library
/// `ldd` can't find is the error (its name).
fn parse_ldd(text: &str) -> Result<Vec<PathBuf>, String> {
    let mut paths = Vec::new();
    for line in text.lines().map(str::trim) {
        let path = match line.split_once("=>") {
            Some((name, resolved)) if resolved.trim() == "not found" => {
                return Err(name.trim().to_string())
            }
            Some((_, resolved)) => resolved.trim(),
            None => line,
        };
        let path = path.split(" (").next().unwrap_or("").trim();
        if path.starts_with('/') {
            paths.push(PathBuf::from(path));
        }
    }
    paths.sort();
    paths.dedup();
    Ok(paths)
}

fn dockerfile(with_ca: bool, with_libraries: bool) -> String {
    let mut d = String::from("FROM scratch\nCOPY production /production\nCOPY lambda/ /lambda/\n");
    if with_libraries {
        d.push_str("COPY root/ /\n");
    }
    if with_ca {
        d.push_str("COPY certs/ /etc/ssl/certs/\n");
    }
    d.push_str(
        "ENV INFRA_LAMBDA_DIR=/lambda\nLABEL infra.controller.program=production\nENTRYPOINT [\"/production\"]\nCMD [\"watch\"]\n",
    );
    d
}

/// A POSIX ustar archive of `files` (regular files only; parent directories are implied),
/// owned by root, timestamp 0.
fn tar(files: &Files) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, mode, data) in files {
        let mut h = [0u8; 512];
        let field = |h: &mut [u8; 512], at: usize, len: usize, value: &[u8]| {
            h[at..at + value.len().min(len)].copy_from_slice(&value[..value.len().min(len)]);
        };
        let octal = |n: u64, len: usize| format!("{n:0width$o}\0", width = len - 1).into_bytes();
        field(&mut h, 0, 100, name.as_bytes());
        field(&mut h, 100, 8, &octal(u64::from(*mode), 8));
        field(&mut h, 108, 8, &octal(0, 8));
        field(&mut h, 116, 8, &octal(0, 8));
        field(&mut h, 124, 12, &octal(data.len() as u64, 12));
        field(&mut h, 136, 12, &octal(0, 12));
        h[148..156].copy_from_slice(b"        ");
        h[156] = b'0';
        field(&mut h, 257, 6, b"ustar\0");
        field(&mut h, 263, 2, b"00");
        let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
        field(&mut h, 148, 8, format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_tar_is_a_valid_ustar_archive() {
        let files: Files = vec![
            ("production".into(), 0o755, b"\x7fELF".to_vec()),
            ("lambda/f/bootstrap.zip".into(), 0o644, vec![7u8; 600]),
        ];
        let t = tar(&files);
        assert_eq!(t.len() % 512, 0);
        assert_eq!(&t[0..10], b"production");
        assert_eq!(&t[257..263], b"ustar\0");
        assert_eq!(&t[100..108], b"0000755\0");
        assert_eq!(&t[124..136], b"00000000004\0");
        // the checksum counts its own field as spaces
        let mut header = t[0..512].to_vec();
        header[148..156].copy_from_slice(b"        ");
        let sum: u64 = header.iter().map(|b| u64::from(*b)).sum();
        assert_eq!(&t[148..156], format!("{sum:06o}\0 ").as_bytes());
        // the second entry starts on the next block after the first one's 4 bytes
        assert_eq!(&t[1024..1046], b"lambda/f/bootstrap.zip");
        // two header blocks, 512 + 1024 data bytes, and the two zero blocks at the end
        assert_eq!(t.len(), 512 + 512 + 512 + 1024 + 1024);
        assert_eq!(tar(&files), t, "the same files give the same bytes");
        assert!(dockerfile(true, false).contains("COPY certs/ /etc/ssl/certs/"));
        assert!(!dockerfile(false, false).contains("certs"));
        assert!(!dockerfile(false, false).contains("root/"));
        assert!(dockerfile(false, true).contains("COPY root/ /"));
    }

    #[test]
    fn ldd_output_gives_the_libraries_and_the_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f1)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f3)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert!(parse_ldd("\tstatically linked\n").unwrap().is_empty());
        let missing = format!("{text}\tlibm.so.6 => not found\n");
        assert_eq!(parse_ldd(&missing).unwrap_err(), "libm.so.6");
    }
}
