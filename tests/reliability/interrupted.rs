//! Interrupted applies: the deploy program (`examples/production`, `--target live`) is killed
//! with SIGKILL at seeded random points of an apply — after N changes appear in its audit log,
//! or after a random delay (which may fall in the plan) — and then:
//!
//! 1. right after the kill, no `infra:id` is held twice, no untagged object appeared and the
//!    objects made by hand are untouched (a lock may be left: the run was killed);
//! 2. if the lock was left, the next apply (with `--lock-timeout 600`) fails at once, naming the
//!    dead holder (host and pid of the killed process) with the stale-lock message and the
//!    `force-unlock` command, and changes nothing;
//! 3. `force-unlock` breaks it and says whose lock it was (and that it was stale);
//! 4. the re-run converges, a plan shows no changes, exactly the declared objects exist, once each,
//!    and nothing untagged or foreign changed;
//! 5. `destroy` removes everything the stack owns.
//!
//! The AWS phase (`--only aws`) runs against a private moto behind the fault proxy with 30 ms of
//! latency per call (no faults), so that an apply lasts long enough to be killed halfway; the
//! Swarm phase (`--only swarm`) on the local engine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use infra::core::graph::Graph;
use infra::core::provider::LockInfo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::env::{
    deploy, private_moto, production, register_node_image, say, show, skip_or_fail, stack_name,
    swarm_missing,
};
use crate::inventory::{compare_declared, leftovers, violations, Direct, Foreign, Inventory};
use crate::proxy::{FaultConfig, FaultProxy};

/// When to kill.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// Once the audit log has this many lines (changes done).
    AuditLines(usize),
    /// After this long (may fall before the apply starts).
    Delay(Duration),
}

/// How a killed run went.
#[derive(Debug)]
struct Killed {
    pid: u32,
    /// The program ended by itself before the kill point.
    finished_first: bool,
    /// Audit lines at the kill.
    lines: usize,
}

fn audit_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Runs `cmd` with its output in `dir/<name>.out|err` and kills it with SIGKILL at `at`.
fn run_and_kill(mut cmd: Command, dir: &Path, name: &str, at: KillAt) -> Killed {
    let audit = dir.join("audit.jsonl");
    let mut child: Child = cmd
        .stdout(std::fs::File::create(dir.join(format!("{name}.out"))).unwrap())
        .stderr(std::fs::File::create(dir.join(format!("{name}.err"))).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn the deploy program");
    let pid = child.id();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let _ = status;
            return Killed {
                pid,
                finished_first: true,
                lines: audit_lines(&audit),
            };
        }
        let due = match at {
            KillAt::AuditLines(n) => audit_lines(&audit) >= n,
            KillAt::Delay(d) => started.elapsed() >= d,
        };
        if due {
            child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
            child.wait().unwrap();
            return Killed {
                pid,
                finished_first: false,
                lines: audit_lines(&audit),
            };
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the deploy program ran for 5 minutes without reaching the kill point {at:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn output(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// This host's part of a holder id.
fn host() -> String {
    LockInfo::for_this_process("x")
        .holder
        .split(':')
        .next()
        .unwrap()
        .to_string()
}

/// Checks what follows a kill: the stale lock (if left) refuses the next apply and names the
/// killed process; `force-unlock` breaks it; the re-run converges; a plan is empty. `phase` is
/// `aws` or `swarm`; `lock_left` says whether the killed run left its lock. Returns problems.
fn recover(
    dir: &Path,
    cmd: &dyn Fn(&str) -> Command,
    phase: &str,
    stack: &str,
    killed: &Killed,
    lock_left: bool,
) -> (Vec<String>, Next) {
    let mut problems = Vec::new();
    let holder = format!("{}:pid{}:", host(), killed.pid);
    // With a long lock timeout: a holder known to be dead is not waited for.
    let next_started = Instant::now();
    let next = output({
        let mut c = cmd("next");
        c.args(["--lock-timeout", "600", "apply", "--auto-approve"]);
        c
    });
    let next_took = next_started.elapsed();
    let next_err = stderr(&next);
    let nothing_to_do = next.status.code() == Some(0)
        && String::from_utf8_lossy(&next.stdout).contains("No changes.");
    // With the lock left, the next apply is refused, unless the killed run had sent every
    // change before it died (Swarm creates return at once; the provider then waits for the
    // tasks): with nothing to do, apply doesn't take the lock and says "No changes.".
    if lock_left && !nothing_to_do {
        let stale =
            "that process is no longer running on this host, so the lock is stale".to_string();
        let locked = format!("stack \"{stack}\" is locked by {holder}");
        if next.status.code() != Some(1)
            || !next_err.contains(&locked)
            || !next_err.contains(&stale)
            || !next_err.contains("force-unlock")
        {
            problems.push(format!(
                "the apply after the kill did not refuse the stale lock naming `{holder}`:\n{}",
                show(&next)
            ));
        }
        if audit_lines(&dir.join("next.jsonl")) != 0 {
            problems.push("the refused apply changed something".into());
        }
        if next_took > Duration::from_secs(60) {
            problems.push(format!(
                "the apply waited {next_took:?} for a lock whose holder is known to be dead"
            ));
        }
    } else if next.status.code() != Some(0) {
        problems.push(format!(
            "no lock was left, yet the next apply failed:\n{}",
            show(&next)
        ));
    }

    let unlock = output({
        let mut c = cmd("unlock");
        c.arg("force-unlock");
        c
    });
    let unlock_err = stderr(&unlock);
    let broke =
        format!("Broke the lock of stack \"{stack}\" in provider `{phase}`, held by {holder}");
    let expected_ok = if lock_left {
        unlock_err.contains(&broke) && unlock_err.contains("so the lock is stale")
    } else {
        unlock_err.contains("was not locked")
    };
    if unlock.status.code() != Some(0) || !expected_ok {
        problems.push(format!(
            "force-unlock (lock left: {lock_left}) did not say what it broke:\n{}",
            show(&unlock)
        ));
    }

    let rerun = output({
        let mut c = cmd("rerun");
        c.args(["apply", "--auto-approve"]);
        c
    });
    if rerun.status.code() != Some(0) {
        problems.push(format!("the re-run did not converge:\n{}", show(&rerun)));
    }
    let plan = output({
        let mut c = cmd("plan");
        c.args(["plan", "--detailed-exitcode"]);
        c
    });
    if plan.status.code() != Some(0)
        || !String::from_utf8_lossy(&plan.stdout).contains("No changes.")
    {
        problems.push(format!(
            "the plan after the re-run is not empty:\n{}",
            show(&plan)
        ));
    }
    let how = match (lock_left, nothing_to_do) {
        (true, false) => Next::RefusedStaleLock,
        (true, true) => Next::NothingToDo,
        (false, _) => Next::NoLock,
    };
    (problems, how)
}

/// What the apply after a kill did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// Refused: the stale lock, named.
    RefusedStaleLock,
    /// The lock was left, but the killed run had sent every change: "No changes.", exit 0.
    NothingToDo,
    /// No lock was left (killed before taking it): it converged.
    NoLock,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_aws_apply_leaves_a_stale_lock_that_force_unlock_breaks_and_the_rerun_converges() {
    let test = "interrupted::a_killed_aws_apply";
    let Some(moto) = private_moto(test) else {
        return;
    };
    let started = Instant::now();
    register_node_image(&moto.url).await;
    let direct = Direct::new(&moto.url).await;
    let foreign = Foreign::create(&direct, "killed").await;
    let proxy = FaultProxy::start(
        &moto.url,
        FaultConfig::with_latency(Duration::from_millis(30)),
    )
    .await
    .expect("proxy");
    let endpoint = proxy.url();

    let mut problems = Vec::new();
    let mut summary = Vec::new();
    let (mut kills, mut locks_left, mut finished_first) = (0, 0, 0);
    let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
    for seed in 1..=10u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let at = if seed % 3 == 0 {
            KillAt::Delay(Duration::from_millis(rng.random_range(50..1500)))
        } else {
            KillAt::AuditLines(rng.random_range(1..=30))
        };
        let stack = stack_name("rk", seed);
        let declared: BTreeSet<String> = Graph::build(&production(&stack))
            .unwrap()
            .in_order()
            .filter(|r| r.schema.provider == "aws" && !r.schema.data_source)
            .map(|r| r.address.to_string())
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let before = Inventory::take(&direct).await;
        let cmd = |log: &str| {
            let mut c = deploy(dir.path(), &endpoint, &stack);
            c.args(["--only", "aws"])
                .env("INFRA_AUDIT_LOG", dir.path().join(format!("{log}.jsonl")));
            c
        };
        // The killed run's audit log is `audit.jsonl` (what run_and_kill watches).
        let mut apply = deploy(dir.path(), &endpoint, &stack);
        apply.args(["--only", "aws", "apply", "--auto-approve"]);
        let killed = tokio::task::block_in_place(|| run_and_kill(apply, dir.path(), "killed", at));
        let label = format!(
            "seed {seed} (stack {stack}, kill at {at:?}, pid {})",
            killed.pid
        );
        if killed.finished_first {
            finished_first += 1;
        } else {
            kills += 1;
        }
        let after_kill = Inventory::take(&direct).await;
        let lock_left = after_kill
            .owned(&stack)
            .contains_key(&format!("aws_iam_policy:{stack}.infra-lock"));
        if lock_left {
            locks_left += 1;
        }
        for v in violations(&stack, &before, &after_kill, &foreign) {
            if !(lock_left && v.starts_with("the apply lock was left behind")) {
                problems.push(format!("{label}, right after the kill: {v}"));
            }
        }
        if !killed.finished_first && matches!(at, KillAt::AuditLines(_)) && !lock_left {
            problems.push(format!(
                "{label}: killed after {} changes, mid-apply, yet no lock was left",
                killed.lines
            ));
        }
        let (p, next) = tokio::task::block_in_place(|| {
            recover(dir.path(), &cmd, "aws", &stack, &killed, lock_left)
        });
        problems.extend(p.into_iter().map(|p| format!("{label}: {p}")));
        *outcomes.entry(format!("{next:?}")).or_insert(0) += 1;
        let converged = Inventory::take(&direct).await;
        let mut found = violations(&stack, &before, &converged, &foreign);
        found.extend(leftovers(&stack, &converged));
        for v in found {
            problems.push(format!("{label}, after the re-run: {v}"));
        }
        let (missing, extra) = compare_declared(&stack, &declared, &converged);
        if !missing.is_empty() || !extra.is_empty() {
            problems.push(format!(
                "{label}: after the re-run, missing {missing:?}, not declared {extra:?}"
            ));
        }
        let destroy = tokio::task::block_in_place(|| {
            output({
                let mut c = cmd("destroy");
                c.args([
                    "destroy",
                    "--auto-approve",
                    "--allow-destroy",
                    "aws_vpc.main",
                ]);
                c
            })
        });
        if destroy.status.code() != Some(0) {
            problems.push(format!("{label}: destroy failed:\n{}", show(&destroy)));
        }
        let gone = Inventory::take(&direct).await;
        if !gone.owned(&stack).is_empty() {
            problems.push(format!("{label}: destroy left {:?}", gone.owned(&stack)));
        }
        for v in violations(&stack, &before, &gone, &foreign) {
            problems.push(format!("{label}, after destroy: {v}"));
        }
        summary.push(format!(
            "seed {seed}: {at:?} → {}, {} changes done, lock {}",
            if killed.finished_first {
                "finished before the kill point"
            } else {
                "killed"
            },
            killed.lines,
            if lock_left {
                "left (stale)"
            } else {
                "not taken yet"
            }
        ));
        if !problems.is_empty() {
            break;
        }
    }
    say(&format!(
        "interrupted (aws): {kills} kills, {locks_left} left a stale lock (broken by force-unlock, which named the dead holder), {finished_first} runs finished before their kill point; the apply after the kill: {outcomes:?}; every re-run converged; {:.0} s\n  {}",
        started.elapsed().as_secs_f64(),
        summary.join("\n  ")
    ));
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    assert!(kills >= 7, "most runs were killed mid-way: {summary:?}");
    assert!(
        outcomes.get("RefusedStaleLock").copied().unwrap_or(0) >= 5,
        "most kills left a stale lock that the next apply refused: {outcomes:?}"
    );
}

/// A Swarm object of the local engine.
#[derive(Clone, Debug)]
pub(crate) struct SwarmObj {
    kind: &'static str,
    id: String,
    name: String,
    labels: BTreeMap<String, String>,
}

/// Every service, network, secret and config of the local engine (objects removed while they
/// are listed are left out).
pub(crate) fn swarm_objects() -> Vec<SwarmObj> {
    let mut out = Vec::new();
    for kind in ["service", "network", "secret", "config"] {
        let ls = Command::new("docker")
            .args([kind, "ls", "-q"])
            .output()
            .unwrap();
        let ids: Vec<String> = String::from_utf8_lossy(&ls.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if ids.is_empty() {
            continue;
        }
        let inspect = Command::new("docker")
            .arg(kind)
            .arg("inspect")
            .args(&ids)
            .output()
            .unwrap();
        let all: Vec<serde_json::Value> =
            serde_json::from_slice(&inspect.stdout).unwrap_or_default();
        for o in all {
            let spec = if kind == "network" { &o } else { &o["Spec"] };
            out.push(SwarmObj {
                kind,
                id: o["ID"].as_str().or(o["Id"].as_str()).unwrap_or("?").into(),
                name: spec["Name"].as_str().unwrap_or("").into(),
                labels: serde_json::from_value(spec["Labels"].clone()).unwrap_or_default(),
            });
        }
    }
    out
}

/// Duplicated or missing `infra.id` labels among `stack`'s objects, and objects named like the
/// stack's (`<stack>_…`, how the provider names them) that appeared since `before` without the
/// stack's labels.
pub(crate) fn swarm_violations(stack: &str, before: &[SwarmObj], now: &[SwarmObj]) -> Vec<String> {
    let mut out = Vec::new();
    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for o in now {
        if o.labels.get("infra.stack").map(String::as_str) == Some(stack) {
            let address = o
                .labels
                .get("infra.id")
                .cloned()
                .unwrap_or_else(|| format!("{}:{} (no infra.id)", o.kind, o.id));
            ids.entry(address).or_default().push(o.id.clone());
        }
    }
    for (address, list) in ids {
        if list.len() > 1 || address.contains("(no infra.id)") {
            out.push(format!("duplicate or unaddressed: {address} {list:?}"));
        }
    }
    let old: BTreeSet<&String> = before.iter().map(|o| &o.id).collect();
    for o in now {
        if !old.contains(&o.id)
            && o.name.starts_with(&format!("{stack}_"))
            && o.labels.get("infra.stack").map(String::as_str) != Some(stack)
        {
            out.push(format!(
                "unlabelled {} {} ({}) appeared",
                o.kind, o.name, o.id
            ));
        }
    }
    out
}

/// Removes the stack's named volumes (`<stack>_*`), retrying while the removed services'
/// containers still hold them (up to 20 s); what could not be removed.
fn remove_volumes(stack: &str) -> Vec<String> {
    let prefix = format!("{stack}_");
    let mut left = Vec::new();
    for _ in 0..100 {
        let ls = Command::new("docker")
            .args(["volume", "ls", "-q"])
            .output()
            .unwrap();
        left = String::from_utf8_lossy(&ls.stdout)
            .split_whitespace()
            .filter(|v| v.starts_with(&prefix))
            .map(str::to_string)
            .collect();
        if left.is_empty() {
            return Vec::new();
        }
        for v in &left {
            let _ = Command::new("docker").args(["volume", "rm", v]).output();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    left.into_iter()
        .map(|v| format!("the volume {v} could not be removed"))
        .collect()
}

#[test]
fn a_killed_swarm_apply_leaves_a_stale_lock_that_force_unlock_breaks_and_the_rerun_converges() {
    let test = "interrupted::a_killed_swarm_apply";
    if let Some(why) = swarm_missing() {
        skip_or_fail(test, &why);
        return;
    }
    let started = Instant::now();
    let mut problems = Vec::new();
    let mut summary = Vec::new();
    let (mut kills, mut locks_left) = (0, 0);
    let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
    for seed in 1..=3u64 {
        let mut rng = StdRng::seed_from_u64(100 + seed);
        let at = KillAt::AuditLines(rng.random_range(1..=3));
        let stack = stack_name("rks", seed);
        let dir = tempfile::tempdir().unwrap();
        let before = swarm_objects();
        // No AWS endpoint is contacted with `--only swarm`.
        let cmd = |log: &str| {
            let mut c = deploy(dir.path(), "http://127.0.0.1:9", &stack);
            c.args(["--only", "swarm"])
                .env("INFRA_AUDIT_LOG", dir.path().join(format!("{log}.jsonl")));
            c
        };
        let mut apply = deploy(dir.path(), "http://127.0.0.1:9", &stack);
        apply.args(["--only", "swarm", "apply", "--auto-approve"]);
        let killed = run_and_kill(apply, dir.path(), "killed", at);
        let label = format!(
            "swarm seed {seed} (stack {stack}, kill at {at:?}, pid {})",
            killed.pid
        );
        if !killed.finished_first {
            kills += 1;
        }
        let lock_left = Command::new("docker")
            .args(["config", "inspect", &format!("infra-lock_{stack}")])
            .output()
            .unwrap()
            .status
            .success();
        if lock_left {
            locks_left += 1;
        }
        for v in swarm_violations(&stack, &before, &swarm_objects()) {
            problems.push(format!("{label}, right after the kill: {v}"));
        }
        let (p, next) = recover(dir.path(), &cmd, "swarm", &stack, &killed, lock_left);
        problems.extend(p.into_iter().map(|p| format!("{label}: {p}")));
        *outcomes.entry(format!("{next:?}")).or_insert(0) += 1;
        let converged = swarm_objects();
        for v in swarm_violations(&stack, &before, &converged) {
            problems.push(format!("{label}, after the re-run: {v}"));
        }
        let owned = converged
            .iter()
            .filter(|o| o.labels.get("infra.stack") == Some(&stack))
            .count();
        if owned != 10 {
            problems.push(format!(
                "{label}: after the re-run the engine holds {owned} objects of the stack, not the 10 declared (5 services with the controller, 2 networks, a secret, 2 configs)"
            ));
        }
        let destroy = output({
            let mut c = cmd("destroy");
            c.args(["destroy", "--auto-approve"]);
            c
        });
        if destroy.status.code() != Some(0) {
            problems.push(format!("{label}: destroy failed:\n{}", show(&destroy)));
        }
        let left: Vec<_> = swarm_objects()
            .into_iter()
            .filter(|o| o.labels.get("infra.stack").map(String::as_str) == Some(stack.as_str()))
            .collect();
        if !left.is_empty() {
            problems.push(format!("{label}: destroy left {left:?}"));
        }
        // The services' named volumes outlive a destroy by design (data is never deleted by a
        // plan): remove them once the tasks' containers are gone.
        for v in remove_volumes(&stack) {
            problems.push(format!("{label}: {v}"));
        }
        summary.push(format!(
            "seed {seed}: {at:?} → {}, {} changes done, lock {}",
            if killed.finished_first {
                "finished before the kill point"
            } else {
                "killed"
            },
            killed.lines,
            if lock_left {
                "left (stale)"
            } else {
                "not left"
            }
        ));
        if !problems.is_empty() {
            break;
        }
    }
    say(&format!(
        "interrupted (swarm): {kills} kills, {locks_left} left a stale lock (broken by force-unlock, which named the dead holder); the apply after the kill: {outcomes:?}; every re-run converged; {:.0} s\n  {}",
        started.elapsed().as_secs_f64(),
        summary.join("\n  ")
    ));
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    assert!(kills >= 1 && locks_left >= 1, "{summary:?}");
}
