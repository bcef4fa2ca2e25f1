//! The sandbox: an in-process provider persisted to a file, generic over kinds.
//!
//! It behaves like a cloud account for one provider name (`aws`, `swarm`, …): it assigns ids,
//! computes outputs, tags objects with their stack and address, refuses in-place changes to
//! force-new fields, honours idempotency tokens (a retried create returns the first object), and
//! keeps objects it doesn't own out of every read. It is the quick-start target of the deploy
//! program and what users' unit tests run against; it passes the same conformance suite as the
//! real providers.
//!
//! **Where the state lives:** `<dir>/<provider>.jsonl`, an append-only journal of JSON lines
//! (one per object written or deleted) that is compacted when it grows. The deploy program uses
//! `.infra/sandbox/` under the working directory (git-ignored), or `--sandbox-dir` /
//! `INFRA_SANDBOX_DIR`. Several processes may share a directory: every operation takes an
//! exclusive file lock and first reads what others appended. Secrets are stored as digests only.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dsl::{Address, KindSchema};
use crate::lock::Created;
use crate::provider::{
    ErrorClass, LockInfo, Observed, OpContext, Provider, ProviderError, ReadResult, Resolved,
};
use crate::value::Value;

/// One stored object.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SandboxObject {
    /// The provider id.
    pub id: String,
    /// The kind.
    pub kind: String,
    /// The owning stack (`None`: not owned by any stack, e.g. created by hand).
    pub stack: Option<String>,
    /// The logical name (the `infra:id` tag).
    pub name: String,
    /// Properties and computed outputs.
    pub props: BTreeMap<String, Value>,
    /// The `infra:protect` tag.
    #[serde(default)]
    pub protect: bool,
    /// The idempotency token of the create that made it.
    #[serde(default)]
    pub token: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Entry {
    Put { object: SandboxObject },
    Delete { id: String },
    Lock { stack: String, info: LockInfo },
    Unlock { stack: String },
    Counter { key: String, value: u64 },
}

/// Where a fault applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOp {
    /// Reads.
    Read,
    /// Creates.
    Create,
    /// Updates.
    Update,
    /// Deletes.
    Delete,
}

/// An injected fault: the next `times` matching calls fail with `error`. With `after_effect`,
/// the call takes effect first and then reports the error (a lost response).
#[derive(Clone, Debug)]
pub struct Fault {
    /// Which calls.
    pub op: FaultOp,
    /// Only calls on this address (`None`: any).
    pub address: Option<Address>,
    /// The error returned.
    pub error: ProviderError,
    /// How many calls fail.
    pub times: u32,
    /// Take effect, then fail (the response was lost).
    pub after_effect: bool,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, SandboxObject>,
    locks: BTreeMap<String, LockInfo>,
    counters: BTreeMap<String, u64>,
    offset: u64,
    lines: u64,
    #[cfg(unix)]
    inode: u64,
}

/// The sandbox provider. See the [module docs](self).
pub struct SandboxProvider {
    name: String,
    path: PathBuf,
    state: Mutex<State>,
    faults: Mutex<Vec<Fault>>,
    calls: AtomicU64,
    kinds: Option<Vec<&'static KindSchema>>,
}

impl SandboxProvider {
    /// A sandbox for provider `name`, stored under `dir` (created if missing).
    pub fn open(dir: impl AsRef<Path>, name: impl Into<String>) -> std::io::Result<Self> {
        let name = name.into();
        fs::create_dir_all(dir.as_ref())?;
        let path = dir.as_ref().join(format!("{name}.jsonl"));
        let provider = SandboxProvider {
            name,
            path,
            state: Mutex::new(State::default()),
            faults: Mutex::new(Vec::new()),
            calls: AtomicU64::new(0),
            kinds: None,
        };
        provider.with_state(|_| Ok((Vec::new(), ())))?;
        Ok(provider)
    }

    /// Serves only these kinds (those of the real provider it stands in for), so a stack that
    /// declares a kind the real provider lacks fails validation on the sandbox too. Without it
    /// the sandbox serves every kind whose schema names its provider.
    pub fn serving(mut self, kinds: Vec<&'static KindSchema>) -> Self {
        self.kinds = Some(kinds);
        self
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Injects a fault.
    pub fn inject(&self, fault: Fault) {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(fault);
    }

    /// Every stored object, owned or not (for tests and inspection).
    pub fn objects(&self) -> std::io::Result<Vec<SandboxObject>> {
        self.with_state(|s| Ok((Vec::new(), s.objects.values().cloned().collect())))
    }

    /// Stores an object no stack owns, as if made by hand beside the stack. Returns its id.
    pub fn insert_foreign(
        &self,
        kind: &str,
        name: &str,
        props: BTreeMap<String, Value>,
    ) -> std::io::Result<String> {
        self.with_state(|s| {
            let id = next_id(s, kind, &format!("foreign/{kind}/{name}"));
            let object = SandboxObject {
                id: id.clone(),
                kind: kind.into(),
                stack: None,
                name: name.into(),
                props,
                protect: false,
                token: None,
            };
            s.objects.insert(id.clone(), object.clone());
            Ok((vec![Entry::Put { object }], id))
        })
    }

    /// Changes a stored object's property behind the stack's back (drift, for tests).
    pub fn tamper(&self, id: &str, field: &str, value: Value) -> std::io::Result<bool> {
        self.with_state(|s| {
            let Some(o) = s.objects.get_mut(id) else {
                return Ok((Vec::new(), false));
            };
            o.props.insert(field.to_string(), value);
            Ok((vec![Entry::Put { object: o.clone() }], true))
        })
    }

    fn fault(&self, op: FaultOp, address: Option<&Address>) -> Option<Fault> {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let i = faults.iter().position(|f| {
            f.op == op && f.times > 0 && (f.address.is_none() || f.address.as_ref() == address)
        })?;
        faults[i].times -= 1;
        let f = faults[i].clone();
        if faults[i].times == 0 {
            faults.remove(i);
        }
        Some(f)
    }

    /// Runs `f` on the up-to-date state under the file lock, then journals the entries it returns.
    fn with_state<T>(
        &self,
        f: impl FnOnce(&mut State) -> std::io::Result<(Vec<Entry>, T)>,
    ) -> std::io::Result<T> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.path.with_extension("lock"))?;
        lock.lock()?;
        let result = (|| {
            catch_up(&self.path, &mut state)?;
            let (entries, out) = f(&mut state)?;
            if !entries.is_empty() {
                append(&self.path, &mut state, &entries)?;
            }
            if state.lines > 1000 && state.lines > 4 * (state.objects.len() as u64 + 1) {
                compact(&self.path, &mut state)?;
            }
            Ok(out)
        })();
        let _ = lock.unlock();
        result
    }

    fn err(e: std::io::Error) -> ProviderError {
        ProviderError::retryable("SandboxIo", e.to_string())
    }

    fn observed(o: &SandboxObject) -> Observed {
        Observed {
            address: Address::new(o.kind.clone(), o.name.clone()),
            id: o.id.clone(),
            props: o.props.clone(),
            protect: o.protect,
        }
    }
}

fn catch_up(path: &Path, state: &mut State) -> std::io::Result<()> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            *state = State::default();
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    #[cfg(unix)]
    let replaced = {
        use std::os::unix::fs::MetadataExt;
        let ino = meta.ino();
        let replaced = ino != state.inode;
        state.inode = ino;
        replaced
    };
    #[cfg(not(unix))]
    let replaced = false;
    if replaced || meta.len() < state.offset {
        let inode = state.inode_value();
        *state = State::default();
        state.set_inode(inode);
    }
    let mut reader = BufReader::new(file);
    reader.seek(SeekFrom::Start(state.offset))?;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            break; // end, or a torn last line from a killed writer: ignored
        }
        state.offset += n as u64;
        state.lines += 1;
        match serde_json::from_str::<Entry>(&line) {
            Ok(entry) => apply_entry(state, entry),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "sandbox: skipping a malformed journal line")
            }
        }
    }
    Ok(())
}

impl State {
    fn inode_value(&self) -> u64 {
        #[cfg(unix)]
        {
            self.inode
        }
        #[cfg(not(unix))]
        {
            0
        }
    }
    fn set_inode(&mut self, inode: u64) {
        #[cfg(unix)]
        {
            self.inode = inode;
        }
        let _ = inode;
    }
}

fn apply_entry(state: &mut State, entry: Entry) {
    match entry {
        Entry::Put { object } => {
            state.objects.insert(object.id.clone(), object);
        }
        Entry::Delete { id } => {
            state.objects.remove(&id);
        }
        Entry::Lock { stack, info } => {
            state.locks.insert(stack, info);
        }
        Entry::Unlock { stack } => {
            state.locks.remove(&stack);
        }
        Entry::Counter { key, value } => {
            state.counters.insert(key, value);
        }
    }
}

fn append(path: &Path, state: &mut State, entries: &[Entry]) -> std::io::Result<()> {
    let mut buf = Vec::new();
    for e in entries {
        serde_json::to_writer(&mut buf, e)?;
        buf.push(b'\n');
    }
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(&buf)?;
    // Re-read what we wrote (and anything before it) so offsets stay exact.
    catch_up(path, state)
}

fn compact(path: &Path, state: &mut State) -> std::io::Result<()> {
    let tmp = path.with_extension("jsonl.tmp");
    let mut buf = Vec::new();
    for (key, value) in &state.counters {
        serde_json::to_writer(
            &mut buf,
            &Entry::Counter {
                key: key.clone(),
                value: *value,
            },
        )?;
        buf.push(b'\n');
    }
    for object in state.objects.values() {
        serde_json::to_writer(
            &mut buf,
            &Entry::Put {
                object: object.clone(),
            },
        )?;
        buf.push(b'\n');
    }
    for (stack, info) in &state.locks {
        serde_json::to_writer(
            &mut buf,
            &Entry::Lock {
                stack: stack.clone(),
                info: info.clone(),
            },
        )?;
        buf.push(b'\n');
    }
    fs::write(&tmp, &buf)?;
    fs::rename(&tmp, path)?;
    *state = State::default();
    catch_up(path, state)
}

/// A deterministic id: the kind's short name and a hash of the object's identity and generation,
/// so ids don't depend on the order concurrent creates happen in.
fn next_id(state: &mut State, kind: &str, identity: &str) -> String {
    let n = state.counters.get(identity).copied().unwrap_or(0) + 1;
    state.counters.insert(identity.to_string(), n);
    // `aws_vpc` → `vpc`, `aws_security_group` → `sg`, `swarm_service` → `service`.
    let words: Vec<&str> = kind.split('_').skip(1).collect();
    let short = match words.as_slice() {
        [] => kind.to_string(),
        [one] => one.to_string(),
        many => many.iter().filter_map(|w| w.chars().next()).collect(),
    };
    let digest = Sha256::digest(format!("{identity}#{n}"));
    format!("{short}-{}", hex::encode(&digest[..8]))
}

fn compute_outputs(
    desired: &Resolved,
    id: &str,
    stack: &str,
    previous: Option<&SandboxObject>,
) -> BTreeMap<String, Value> {
    let mut props: BTreeMap<String, Value> = desired.props.clone();
    for &c in desired.schema.computed {
        if c == "id" {
            continue;
        }
        let value = if desired.schema.changes_on_update.contains(&c) {
            match previous
                .and_then(|p| p.props.get(c))
                .and_then(Value::as_i64)
            {
                Some(n) => Value::Int(n + 1),
                None => Value::Int(1),
            }
        } else if let Some(v) = previous.and_then(|p| p.props.get(c)) {
            v.clone()
        } else if c == "arn" {
            Value::String(format!(
                "arn:sandbox:{}:::{stack}/{}",
                desired.schema.kind,
                desired.address.name()
            ))
        } else {
            Value::String(format!("{id}/{c}"))
        };
        props.insert(c.to_string(), value);
    }
    props
}

#[async_trait]
impl Provider for SandboxProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn read(&self, stack: &str) -> Result<ReadResult, ProviderError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(f) = self.fault(FaultOp::Read, None) {
            return Err(f.error);
        }
        self.with_state(|s| {
            let resources = s
                .objects
                .values()
                .filter(|o| o.stack.as_deref() == Some(stack))
                .map(Self::observed)
                .collect();
            Ok((
                Vec::new(),
                ReadResult {
                    resources,
                    api_calls: 1,
                },
            ))
        })
        .map_err(Self::err)
    }

    /// Data sources resolve to a deterministic object made from the declaration (the sandbox
    /// has no images to search): an id derived from the stack and address, and every computed
    /// output filled in as for a create.
    async fn lookup(&self, stack: &str, spec: &Resolved) -> Result<Observed, ProviderError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let digest = Sha256::digest(format!("lookup/{stack}/{}", spec.address));
        let words: Vec<&str> = spec.schema.kind.split('_').skip(1).collect();
        let id = format!(
            "{}-{}",
            words.last().copied().unwrap_or("data"),
            hex::encode(&digest[..8])
        );
        Ok(Observed {
            address: spec.address.clone(),
            id: id.clone(),
            props: compute_outputs(spec, &id, stack, None),
            protect: false,
        })
    }

    async fn create(&self, ctx: &OpContext, desired: &Resolved) -> Result<Observed, ProviderError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let fault = self.fault(FaultOp::Create, Some(&desired.address));
        if let Some(f) = fault.as_ref().filter(|f| !f.after_effect) {
            return Err(f.error.clone());
        }
        let observed = self
            .with_state(|s| {
                // An earlier attempt with the same token already made it: return that one.
                if let Some(o) = s
                    .objects
                    .values()
                    .find(|o| o.token.as_deref() == Some(ctx.idempotency_token.as_str()))
                {
                    return Ok((Vec::new(), Self::observed(o)));
                }
                let identity = format!("{}/{}", ctx.stack, desired.address);
                let id = next_id(s, desired.schema.kind, &identity);
                let n = s.counters[&identity];
                let object = SandboxObject {
                    id: id.clone(),
                    kind: desired.schema.kind.to_string(),
                    stack: Some(ctx.stack.clone()),
                    name: desired.address.name().to_string(),
                    props: compute_outputs(desired, &id, &ctx.stack, None),
                    protect: desired.protect,
                    token: Some(ctx.idempotency_token.clone()),
                };
                s.objects.insert(id, object.clone());
                let obs = Self::observed(&object);
                Ok((
                    vec![
                        Entry::Counter {
                            key: identity,
                            value: n,
                        },
                        Entry::Put { object },
                    ],
                    obs,
                ))
            })
            .map_err(Self::err)?;
        match fault {
            Some(f) => Err(f.error),
            None => Ok(observed),
        }
    }

    async fn update(
        &self,
        ctx: &OpContext,
        current: &Observed,
        desired: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let fault = self.fault(FaultOp::Update, Some(&desired.address));
        if let Some(f) = fault.as_ref().filter(|f| !f.after_effect) {
            return Err(f.error.clone());
        }
        if let Some(field) = changed.iter().find(|f| desired.schema.is_force_new(f)) {
            return Err(ProviderError::fatal(
                "InvalidParameterCombination",
                format!(
                    "{}: field `{field}` cannot be changed in place",
                    desired.address
                ),
            ));
        }
        let observed = self
            .with_state(|s| {
                let Some(prev) = s
                    .objects
                    .get(&current.id)
                    .filter(|o| o.stack.as_deref() == Some(ctx.stack.as_str()))
                else {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("{} not found", current.id),
                    ));
                };
                let prev = prev.clone();
                let object = SandboxObject {
                    props: compute_outputs(desired, &prev.id, &ctx.stack, Some(&prev)),
                    protect: desired.protect,
                    ..prev
                };
                s.objects.insert(object.id.clone(), object.clone());
                let obs = Self::observed(&object);
                Ok((vec![Entry::Put { object }], obs))
            })
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => ProviderError::not_found("NotFound", e.to_string()),
                _ => Self::err(e),
            })?;
        match fault {
            Some(f) => Err(f.error),
            None => Ok(observed),
        }
    }

    async fn delete(&self, ctx: &OpContext, current: &Observed) -> Result<(), ProviderError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let fault = self.fault(FaultOp::Delete, Some(&current.address));
        if let Some(f) = fault.as_ref().filter(|f| !f.after_effect) {
            return Err(f.error.clone());
        }
        let found = self
            .with_state(|s| match s.objects.get(&current.id) {
                Some(o) if o.stack.as_deref() == Some(ctx.stack.as_str()) => {
                    s.objects.remove(&current.id);
                    Ok((
                        vec![Entry::Delete {
                            id: current.id.clone(),
                        }],
                        true,
                    ))
                }
                _ => Ok((Vec::new(), false)),
            })
            .map_err(Self::err)?;
        if let Some(f) = fault {
            return Err(f.error);
        }
        if found {
            Ok(())
        } else {
            Err(ProviderError {
                class: ErrorClass::NotFound,
                code: "NotFound".into(),
                message: format!("{} not found", current.id),
                retry_after: None,
            })
        }
    }

    async fn lock_create(&self, stack: &str, info: &LockInfo) -> Result<Created, ProviderError> {
        self.with_state(|s| {
            if s.locks.contains_key(stack) {
                return Ok((Vec::new(), Created::Exists));
            }
            s.locks.insert(stack.to_string(), info.clone());
            Ok((
                vec![Entry::Lock {
                    stack: stack.to_string(),
                    info: info.clone(),
                }],
                Created::Created,
            ))
        })
        .map_err(Self::err)
    }

    async fn lock_read(&self, stack: &str) -> Result<Option<LockInfo>, ProviderError> {
        self.with_state(|s| Ok((Vec::new(), s.locks.get(stack).cloned())))
            .map_err(Self::err)
    }

    async fn lock_delete(&self, stack: &str) -> Result<(), ProviderError> {
        self.with_state(|s| match s.locks.remove(stack) {
            Some(_) => Ok((
                vec![Entry::Unlock {
                    stack: stack.to_string(),
                }],
                (),
            )),
            None => Ok((Vec::new(), ())),
        })
        .map_err(Self::err)
    }

    fn kinds(&self) -> Option<Vec<&'static KindSchema>> {
        self.kinds.clone()
    }

    fn api_calls(&self) -> Option<u64> {
        Some(self.calls.load(Ordering::Relaxed))
    }
}
