//! [`Lab`]: the handle tests hold.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{
    aws, names, supervisor, sys, teardown, ImdsFault, Inner, LabConfig, LabError, LabEvent,
    LabState, NodeUsage, NodeView, TeardownReport,
};

/// Memory and disk of node `n` of a stack's lab, measured now (from any process, e.g. `lab
/// status --usage`): the RSS of the processes in the node's cgroup, and the disk blocks under its
/// directory.
pub fn node_usage(stack: &str, state_root: &Path, n: u32) -> Result<NodeUsage, LabError> {
    let names = names::Names::new(stack, state_root)?;
    Ok(usage_of(&names, n))
}

fn usage_of(names: &names::Names, n: u32) -> NodeUsage {
    let mut u = NodeUsage::default();
    if let Ok(cg2) = sys::cgroup2_root() {
        for pid in sys::cgroup_pids(&cg2.join(names.node_cgroup(n))) {
            let rss = sys::rss_kib(pid).unwrap_or(0);
            u.total_rss_kib += rss;
            if matches!(
                sys::comm(pid).as_deref(),
                Some("dockerd") | Some("containerd")
            ) {
                u.daemons_rss_kib += rss;
            }
        }
    }
    u.disk_bytes = sys::disk_usage(&names.node_dir(n));
    u
}

// ---------------------------------------------------------------------------------------------
// the lab

/// A running lab (see the crate's documentation). Drop it without [`Lab::down`] and it tears down
/// anyway (synchronously, best effort).
pub struct Lab {
    inner: Arc<Inner>,
    _active: Active,
    stop_tx: watch::Sender<bool>,
    supervisor: Option<JoinHandle<()>>,
    forwarder: Option<JoinHandle<()>>,
    done: bool,
}

/// The stacks this process runs labs of: a second `up` of one stack in one process is refused
/// (the ownership record only tells processes apart).
static ACTIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Active(String);

impl Active {
    fn claim(stack: &str) -> Result<Active, LabError> {
        let mut a = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
        if a.iter().any(|s| s == stack) {
            return Err(LabError::Busy {
                stack: stack.to_string(),
                pid: std::process::id() as i32,
            });
        }
        a.push(stack.to_string());
        Ok(Active(stack.to_string()))
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|s| *s != self.0);
    }
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("stack", &self.inner.cfg.stack)
            .finish_non_exhaustive()
    }
}

impl Lab {
    /// Makes the stack's bridge and firewall rule, starts the `manager.sock` forwarder and the
    /// supervisor, and returns at once (nodes boot in the background: [`Lab::wait_for`]). A
    /// leftover of a crashed lab of the same stack is torn down first; a live one is
    /// [`LabError::Busy`].
    pub async fn up(cfg: LabConfig) -> Result<Lab, LabError> {
        if !sys::is_root() {
            return Err(LabError::NotRoot);
        }
        let names = names::Names::new(&cfg.stack, &cfg.state_root)?;
        if !cfg.agent_binary.exists() {
            return Err(LabError::Config(format!(
                "agent binary {} does not exist",
                cfg.agent_binary.display()
            )));
        }
        if cfg.poll.is_zero() {
            return Err(LabError::Config("poll must be above zero".into()));
        }
        let cgroup2 = sys::cgroup2_root()?;
        let active = Active::claim(&cfg.stack)?;
        let setup_names = names.clone();
        tokio::task::spawn_blocking(move || teardown::prepare(&setup_names))
            .await
            .map_err(|e| LabError::Host(format!("setup task: {e}")))??;
        let aws = aws::Aws::new(&cfg.aws_endpoint, &cfg.region);
        let inner = Arc::new(Inner {
            names,
            aws,
            state: Mutex::new(LabState {
                nodes: BTreeMap::new(),
                next_n: 1,
                default_fault: ImdsFault::None,
                faults: HashMap::new(),
                events: Vec::new(),
            }),
            stop: AtomicBool::new(false),
            started: Instant::now(),
            cgroup2,
            images_tar: tokio::sync::OnceCell::new(),
            manager_target: Mutex::new(None),
            cfg,
        });
        inner.event("", "up", format!("bridge {}", inner.names.bridge()));
        let (stop_tx, stop_rx) = watch::channel(false);
        let forwarder = match supervisor::start_forwarder(inner.clone(), stop_rx.clone()).await {
            Ok(f) => f,
            Err(e) => {
                let (stack, root) = (inner.cfg.stack.clone(), inner.cfg.state_root.clone());
                let _ =
                    tokio::task::spawn_blocking(move || teardown::teardown(&stack, &root)).await;
                return Err(e);
            }
        };
        let supervisor = tokio::spawn(supervisor::run(inner.clone(), stop_rx));
        Ok(Lab {
            inner,
            _active: active,
            stop_tx,
            supervisor: Some(supervisor),
            forwarder: Some(forwarder),
            done: false,
        })
    }

    /// The stack.
    pub fn stack(&self) -> &str {
        &self.inner.cfg.stack
    }

    /// `<state_root>/<stack>`
    pub fn state_dir(&self) -> &Path {
        &self.inner.names.dir
    }

    /// `unix://<state_root>/<stack>/manager.sock`: a live manager node's Docker API.
    pub fn manager_host(&self) -> String {
        format!("unix://{}", self.inner.names.manager_sock().display())
    }

    /// Every node the lab booted, stopped ones included, by number.
    pub async fn nodes(&self) -> Vec<NodeView> {
        self.inner.views()
    }

    /// The newest node playing `instance_id`.
    pub async fn node(&self, instance_id: &str) -> Option<NodeView> {
        self.inner
            .views()
            .into_iter()
            .rev()
            .find(|v| v.instance_id == instance_id)
    }

    /// What the lab did so far.
    pub async fn events(&self) -> Vec<LabEvent> {
        self.inner.lock().events.clone()
    }

    /// Chaos: SIGKILLs everything of the node playing `instance_id` (daemons, shims, containers,
    /// agent) and returns once they are gone. The supervisor then does what EC2 health checks do
    /// (terminate without decrement; moto replaces the instance; the lab boots the replacement).
    pub async fn kill(&self, instance_id: &str) -> Result<(), LabError> {
        let n = {
            let mut st = self.inner.lock();
            let rec = st
                .nodes
                .values_mut()
                .rev()
                .find(|r| r.view.instance_id == instance_id && r.view.is_live())
                .ok_or_else(|| LabError::UnknownInstance(instance_id.to_string()))?;
            rec.view.killed = true;
            rec.view.n
        };
        self.inner
            .event(instance_id, "killed", format!("node n{n}"));
        let rel = self.inner.names.node_cgroup(n);
        tokio::task::spawn_blocking(move || sys::cgroup_kill(&rel, Duration::from_secs(10)))
            .await
            .map_err(|e| LabError::Host(format!("kill task: {e}")))?;
        Ok(())
    }

    /// Makes the IMDS of `instance_id` play `fault` (stored for an instance not booted yet, and
    /// applied when it boots); `None` sets the fault of every node booted from now on.
    pub async fn set_imds_fault(&self, instance_id: Option<&str>, fault: ImdsFault) {
        let mut st = self.inner.lock();
        match instance_id {
            None => st.default_fault = fault,
            Some(id) => {
                st.faults.insert(id.to_string(), fault);
                for rec in st.nodes.values().filter(|r| r.view.instance_id == id) {
                    if let Some(imds) = &rec.imds {
                        imds.set_fault(fault);
                    }
                }
            }
        }
    }

    /// Polls [`Lab::nodes`] (every 250 ms) until `what` holds; the nodes then, or
    /// [`LabError::Timeout`] with the last view.
    pub async fn wait_for(
        &self,
        what: impl Fn(&[NodeView]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<NodeView>, LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            let nodes = self.inner.views();
            if what(&nodes) {
                return Ok(nodes);
            }
            if Instant::now() >= deadline {
                let summary: Vec<String> = nodes
                    .iter()
                    .map(|v| {
                        format!(
                            "n{} {} {:?}{}",
                            v.n,
                            v.instance_id,
                            v.state,
                            v.error
                                .as_deref()
                                .map(|e| format!(" ({e})"))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                return Err(LabError::Timeout(
                    timeout,
                    format!("nodes: [{}]", summary.join(", ")),
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Memory and disk of the node playing `instance_id`, measured now ([`node_usage`]).
    pub async fn usage(&self, instance_id: &str) -> Option<NodeUsage> {
        let view = self.node(instance_id).await?;
        let names = self.inner.names.clone();
        tokio::task::spawn_blocking(move || usage_of(&names, view.n))
            .await
            .ok()
    }

    /// Copies the lab's logs to `dest` (made if missing): `events.jsonl` (what the lab did) and
    /// per node `n<n>-agent.log`, `n<n>-dockerd.log` (its last 256 KiB) and `n<n>-node.json`.
    /// `down` deletes them with the state directory; a lab dropped while its thread panics (a
    /// failing test) saves them to `$TMPDIR/infra-lab-<stack>-logs` first.
    pub async fn save_logs(&self, dest: &Path) -> Result<(), LabError> {
        let names = self.inner.names.clone();
        let dest = dest.to_path_buf();
        tokio::task::spawn_blocking(move || save_logs(&names, &dest))
            .await
            .map_err(|e| LabError::Host(format!("log task: {e}")))?
    }

    /// Stops the supervisor and removes everything the lab made ([`teardown`]; call this, not
    /// [`teardown`], for a lab this process runs).
    pub async fn down(mut self) -> Result<TeardownReport, LabError> {
        self.inner.stop.store(true, Ordering::SeqCst);
        let _ = self.stop_tx.send(true);
        if let Some(mut s) = self.supervisor.take() {
            // the supervisor shuts its boots and drains down when told; bounded
            if tokio::time::timeout(Duration::from_secs(30), &mut s)
                .await
                .is_err()
            {
                tracing::warn!("lab supervisor did not stop within 30 s: aborted");
                s.abort();
            }
        }
        if let Some(f) = self.forwarder.take() {
            f.abort();
        }
        self.stop_imds();
        self.done = true;
        let stack = self.inner.cfg.stack.clone();
        let root = self.inner.cfg.state_root.clone();
        tokio::task::spawn_blocking(move || teardown::teardown(&stack, &root))
            .await
            .map_err(|e| LabError::Host(format!("teardown task: {e}")))?
    }

    fn stop_imds(&self) {
        for rec in self.inner.lock().nodes.values() {
            if let Some(imds) = &rec.imds {
                imds.stop();
            }
        }
    }
}

fn save_logs(names: &names::Names, dest: &Path) -> Result<(), LabError> {
    std::fs::create_dir_all(dest).map_err(LabError::io(format!("create {}", dest.display())))?;
    let copy = |from: &Path, to: &str, tail: Option<u64>| {
        let Ok(bytes) = std::fs::read(from) else {
            return;
        };
        let skip = tail.map_or(0, |t| bytes.len().saturating_sub(t as usize));
        let _ = std::fs::write(dest.join(to), &bytes[skip..]);
    };
    copy(&names.dir.join("events.jsonl"), "events.jsonl", None);
    for n in names.node_numbers() {
        let dir = names.node_dir(n);
        copy(&dir.join("agent.log"), &format!("n{n}-agent.log"), None);
        copy(
            &dir.join("dockerd.log"),
            &format!("n{n}-dockerd.log"),
            Some(256 * 1024),
        );
        copy(&dir.join("node.json"), &format!("n{n}-node.json"), None);
    }
    Ok(())
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if std::thread::panicking() {
            let dest =
                std::env::temp_dir().join(format!("infra-lab-{}-logs", self.inner.cfg.stack));
            if save_logs(&self.inner.names, &dest).is_ok() {
                eprintln!("infra-lab: the lab's logs are in {}", dest.display());
            }
        }
        self.inner.stop.store(true, Ordering::SeqCst);
        let _ = self.stop_tx.send(true);
        if let Some(s) = self.supervisor.take() {
            s.abort();
        }
        if let Some(f) = self.forwarder.take() {
            f.abort();
        }
        self.stop_imds();
        if let Err(e) = teardown::teardown(&self.inner.cfg.stack, &self.inner.cfg.state_root) {
            tracing::warn!(error = %e, "lab teardown on drop");
        }
    }
}
