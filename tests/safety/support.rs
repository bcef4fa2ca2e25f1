//! What the safety tests share: `infra_test_support`'s helpers (skips, endpoints, unique names),
//! the deploy program run with a clean environment, endpoints that count every connection
//! (tripwires) or answer like a Docker engine, and output checks.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub(crate) use infra_test_support::{
    moto, say, show, skip_or_fail, swarm_missing, test_image, unique,
};

/// The deploy program, `target/debug/examples/production` (cargo test builds examples).
pub(crate) fn example_binary() -> PathBuf {
    infra_test_support::example_binary("production")
}

/// Clears the variables of the caller's shell that steer the deploy program or the SDKs, so a
/// test sets exactly what it means (`RUST_BACKTRACE=1` stays: a panic must show as one).
pub(crate) fn clean_env<'a>(c: &'a mut Command, dir: &Path) -> &'a mut Command {
    for var in [
        "INFRA_TARGET",
        "INFRA_ENV",
        "INFRA_STACK",
        "INFRA_LOG",
        "INFRA_LOG_FORMAT",
        "INFRA_LOCK_TIMEOUT",
        "INFRA_CONCURRENCY",
        "INFRA_SWARM_WAIT",
        "RUST_LOG",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "ES_PASSWORD",
        "CERTIFICATE_ARN",
    ] {
        c.env_remove(var);
    }
    c.current_dir(dir)
        .env("HOME", dir)
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("no-aws-credentials"),
        )
        .env("INFRA_AUDIT_LOG", dir.join("audit.jsonl"))
        .env("INFRA_SANDBOX_DIR", dir.join("sandbox"))
        .env("RUST_BACKTRACE", "1")
}

/// The checks every failure of the deploy program must pass: exit 1, no panic, no backtrace,
/// and exactly one `Error: ` paragraph (one line) on stderr, which is returned.
pub(crate) fn one_error_paragraph(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}", show(o));
    for bad in ["panicked", "stack backtrace", "RUST_BACKTRACE"] {
        assert!(!err.contains(bad), "`{bad}` on stderr:\n{}", show(o));
    }
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("Error: ")).collect();
    assert_eq!(errors.len(), 1, "one error paragraph:\n{}", show(o));
    let at = err.find("Error: ").unwrap_or(0);
    let rest: Vec<&str> = err[at..].lines().collect();
    assert_eq!(
        rest.len(),
        1,
        "the error is the last thing printed, on one line:\n{}",
        show(o)
    );
    errors[0].to_string()
}

/// A TCP endpoint that accepts connections, counts them and closes them at once: pointed at by
/// `AWS_ENDPOINT_URL`, `DOCKER_HOST` or the instance metadata endpoint, it proves that nothing
/// was contacted (and a contact fails fast).
pub(crate) struct Tripwire {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Tripwire {
    pub(crate) fn start() -> Tripwire {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Tripwire { port, hits }
    }
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    pub(crate) fn tcp(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A TCP endpoint that accepts connections and never answers (a hung server).
pub(crate) struct Silent {
    port: u16,
}

impl Silent {
    pub(crate) fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        Silent { port }
    }
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    pub(crate) fn tcp(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

/// What a [`FakeEngine`] says about its node.
#[derive(Clone, Copy, Debug)]
pub(crate) enum FakeNode {
    /// `docker swarm init` never ran.
    NotInSwarm,
    /// A swarm worker (no services API).
    Worker,
    /// A manager: connecting succeeds; every later request is answered 404 (and counted).
    Manager,
    /// An engine too old for the provider (API 1.30).
    Old,
}

/// A minimal Docker Engine API on TCP: `/version` and `/info` as a node of the given kind, every
/// request logged. The provider's handshake runs against it for real (bollard's version
/// negotiation, the swarm-mode check), and with [`FakeNode::Manager`] it is a tripwire for any
/// request after the handshake.
pub(crate) struct FakeEngine {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeEngine {
    pub(crate) fn start(node: FakeNode) -> FakeEngine {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || serve_fake(stream, node, &log));
            }
        });
        FakeEngine { port, requests }
    }
    pub(crate) fn host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
    /// Request lines (`GET /v1.41/info`) so far.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve_fake(stream: TcpStream, node: FakeNode, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let request = line.trim().to_string();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        let _ = reader.read_exact(&mut body);
        log.lock().unwrap().push(request.clone());
        let path = request.split_whitespace().nth(1).unwrap_or("/");
        let path = path.split('?').next().unwrap_or(path);
        let api = if matches!(node, FakeNode::Old) {
            "1.30"
        } else {
            "1.41"
        };
        let (status, json) = if path.ends_with("/version") {
            (
                "200 OK",
                format!(
                    r#"{{"Version":"20.10.24","ApiVersion":"{api}","MinAPIVersion":"1.12","Os":"linux","Arch":"amd64"}}"#
                ),
            )
        } else if path.ends_with("/info") {
            let (state, control) = match node {
                FakeNode::NotInSwarm | FakeNode::Old => ("inactive", false),
                FakeNode::Worker => ("active", false),
                FakeNode::Manager => ("active", true),
            };
            (
                "200 OK",
                format!(
                    r#"{{"ID":"fake","Name":"fake-engine","Swarm":{{"NodeID":"fakenode","LocalNodeState":"{state}","ControlAvailable":{control}}}}}"#
                ),
            )
        } else if path.ends_with("/_ping") {
            ("200 OK", "\"OK\"".to_string())
        } else {
            (
                "404 Not Found",
                r#"{"message":"fake engine: not served"}"#.to_string(),
            )
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nApi-Version: {api}\r\nContent-Length: {}\r\n\r\n{json}",
            json.len()
        );
        if out.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// Every file under `root` whose path has a `snapshots` directory below a `tests` directory
/// (`tests/**/snapshots/**`, `infra-*/tests/**/snapshots/**`), skipping `target`.
pub(crate) fn snapshot_files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, in_tests: bool, in_snapshots: bool, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if p.is_dir() {
                if name == "target" || name.starts_with('.') {
                    continue;
                }
                let t = in_tests || name == "tests";
                walk(&p, t, in_snapshots || (t && name == "snapshots"), out);
            } else if in_snapshots {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, false, false, &mut out);
    out.sort();
    out
}

/// Every file under a directory (recursively), with its content.
pub(crate) fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.insert(p, bytes);
            }
        }
    }
    out
}
