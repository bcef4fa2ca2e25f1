//! Test helpers shared by the workspace's test binaries (a dev-dependency only; not published).
//!
//! * Endpoints: [`moto`], [`moto_url`], [`swarm_missing`], the locally built [`test_image`]s.
//! * Skipping: a test whose endpoint is missing calls [`skip_or_fail`], which prints one
//!   `SKIPPED <test>: <reason>` line where `cargo test` shows it, or panics when the run requires
//!   the endpoints (`INFRA_REQUIRE_ENDPOINTS=1`, which `.ci/test` sets). One rule for every test
//!   binary; the `CI` variable plays no part.
//! * [`proxy`]: the fault-injecting HTTP proxy in front of moto; [`register_node_image`]: the
//!   "Packer build" the production stack's AMI lookup needs on moto.
//! * Small things every binary needs: [`unique`] names, [`example_binary`], [`show`].

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod node_image;
pub mod proxy;

pub use node_image::register_node_image;

/// The variable that turns a missing endpoint from a skip into a failure.
pub const REQUIRE_VAR: &str = "INFRA_REQUIRE_ENDPOINTS";

/// How to get the endpoints, for skip and failure messages.
pub const SETUP_HINT: &str = "run `eval \"$(.ci/test-env)\"` first";

/// Whether this run requires the endpoints: `INFRA_REQUIRE_ENDPOINTS` is `1`, `true` or `yes`.
/// Unset, empty, `0`, `false` or `no` allow skips; any other value panics (a typo must not turn
/// a required run into skips).
pub fn endpoints_required() -> bool {
    match std::env::var(REQUIRE_VAR) {
        Err(std::env::VarError::NotPresent) => false,
        Err(e) => panic!("{REQUIRE_VAR}: {e}"),
        Ok(v) => required(&v)
            .unwrap_or_else(|| panic!("{REQUIRE_VAR}={v:?}: expected 1 (endpoints required) or 0")),
    }
}

fn required(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Some(true),
        "" | "0" | "false" | "no" => Some(false),
        _ => None,
    }
}

/// Writes a line to the process's real stderr. The test harness captures `print!` and
/// `eprint!` (shown only for failing tests); a direct write is shown in plain `cargo test`
/// output, which is what skips, counts and timings need.
pub fn say(text: &str) {
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("{text}\n").as_bytes());
}

/// A missing endpoint: prints `SKIPPED <test>: <why> …` (see [`say`]) and returns, or panics
/// when the run requires the endpoints ([`endpoints_required`]). The caller returns after it.
pub fn skip_or_fail(test: &str, why: &str) {
    if endpoints_required() {
        panic!("{test}: {why} ({REQUIRE_VAR}=1: a missing endpoint is a failure; {SETUP_HINT})");
    }
    say(&format!(
        "SKIPPED {test}: {why} ({SETUP_HINT}; {REQUIRE_VAR}=1 makes this a failure)"
    ));
}

/// The moto endpoint the AWS tests talk to: `AWS_ENDPOINT_URL` (what `.ci/setup-moto` exports),
/// else `.ci/setup-moto`'s default port.
pub fn moto_url() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:5599".to_string())
}

/// `Ok` when something accepts TCP connections at `url`'s host and port (within 2 s), else why not.
pub fn reachable(url: &str) -> Result<(), String> {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let host_port = rest.split('/').next().unwrap_or(rest);
    let host_port = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:80")
    };
    let addr = host_port
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))?;
    TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map(drop)
        .map_err(|e| format!("moto is not answering on {host_port}: {e}"))
}

/// The shared moto of the test environment: `AWS_ENDPOINT_URL`, which must be set (tests that
/// run the deploy program pass their environment on, and without it the program would go to
/// real AWS) and answer. `Err` says why not.
pub fn moto() -> Result<String, String> {
    let url = std::env::var("AWS_ENDPOINT_URL")
        .map_err(|_| "AWS_ENDPOINT_URL is not set (no moto)".to_string())?;
    reachable(&url)?;
    Ok(url)
}

/// Why the local Docker engine can't serve the Swarm tests (not reachable, not in swarm mode,
/// no test image), if it can't.
pub fn swarm_missing() -> Option<String> {
    let state = Command::new("docker")
        .args(["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .output();
    match state {
        Ok(o) if String::from_utf8_lossy(&o.stdout).trim() == "active" => {}
        _ => return Some("Docker is not reachable or not in swarm mode".into()),
    }
    if test_image().is_none() {
        return Some("INFRA_TEST_IMAGE is not set (the locally built test image)".into());
    }
    None
}

fn image_from(var: &str, file: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| std::fs::read_to_string(file).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The busybox test image built by `.ci/setup-swarm`, by ID (nothing is pulled):
/// `INFRA_TEST_IMAGE`, else the ID file the script writes.
pub fn test_image() -> Option<String> {
    image_from("INFRA_TEST_IMAGE", "/tmp/infra-test-image-id")
}

/// The second test image (same content, `/www/version` says v2).
pub fn test_image_v2() -> Option<String> {
    image_from("INFRA_TEST_IMAGE_V2", "/tmp/infra-test-image-id-v2")
}

/// A name unique to this process and call, `<prefix>-<7 hex digits>` (tests run in parallel
/// against one moto and one swarm, and earlier runs may have left objects behind).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(7))
        .unwrap_or(0);
    let mix = nanos
        ^ std::process::id().rotate_left(13)
        ^ N.fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(2_654_435_761);
    format!("{prefix}-{:07x}", mix & 0x0fff_ffff)
}

/// An example program of the workspace, `target/<profile>/examples/<name>` (cargo test builds
/// the examples; built here if it is missing, e.g. under a test filter).
pub fn example_binary(name: &str) -> PathBuf {
    // target/debug/deps/<test binary> → target/debug/examples/<name>
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lies in target/<profile>/deps")
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", name])
            .status()
            .expect("cargo");
        assert!(status.success(), "cargo build --example {name} failed");
    }
    bin
}

/// Exit code, stdout and stderr of a finished command, for assertion messages.
pub fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The running test's name, from its thread (libtest names each test's thread after the test;
/// `#[tokio::test]` bodies run on that thread), for skip messages of helpers that aren't told.
pub fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unnamed test thread>")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_takes_yes_and_no_words_and_refuses_anything_else() {
        for v in ["1", "true", "YES", " yes "] {
            assert_eq!(required(v), Some(true), "{v:?}");
        }
        for v in ["", "0", "false", "No"] {
            assert_eq!(required(v), Some(false), "{v:?}");
        }
        for v in ["2", "ci", "y"] {
            assert_eq!(required(v), None, "{v:?}");
        }
    }

    #[test]
    fn an_endpoint_nobody_listens_on_is_unreachable() {
        // A port that was just free: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let err = reachable(&format!("http://127.0.0.1:{port}")).unwrap_err();
        assert!(err.contains(&port.to_string()), "{err}");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        assert_eq!(reachable(&url), Ok(()));
    }
}
