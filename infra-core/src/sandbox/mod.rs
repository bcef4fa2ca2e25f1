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
//!
//! **Latency** (for benchmarks and tests of timing): [`SandboxProvider::with_latency`] makes every
//! call wait a fixed time before it takes effect, as a remote API's round trip would, with no
//! limit on how many wait at once (the calls take effect one at a time, as always). Under
//! tokio's paused clock (`#[tokio::test(start_paused = true)]`) the waits cost no real time.
//!
//! **Faults** (the `faults` feature, for tests): `SandboxProvider::inject` makes the next
//! matching calls fail, before or after they take effect.

#[cfg(feature = "faults")]
mod faults;
mod import;
mod journal;

#[cfg(feature = "faults")]
pub use faults::{Fault, FaultOp};

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dsl::{Address, KindSchema};
use crate::import::{Found, ImportFilter};
use crate::lock::Created;
use crate::plan::drift;
use crate::provider::{
    LockInfo, Observed, OpContext, Props, Provider, ProviderError, ReadResult, Resolved,
};
use crate::value::Value;
use journal::{Entry, Journal, State};

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
    /// Properties and computed outputs (shared with the objects a read returns).
    pub props: Props,
    /// The `infra:protect` tag.
    #[serde(default)]
    pub protect: bool,
    /// The idempotency token of the create that made it.
    #[serde(default)]
    pub token: Option<String>,
    /// The drift record its last create or update wrote ([`crate::plan::drift`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared: Option<String>,
}

/// The sandbox provider. See the [module docs](self).
pub struct SandboxProvider {
    name: String,
    journal: Journal,
    #[cfg(feature = "faults")]
    faults: faults::Faults,
    calls: AtomicU64,
    kinds: Option<Vec<&'static KindSchema>>,
    /// Kinds of the objects stored with [`SandboxProvider::insert_unowned`], for discovery.
    known: Mutex<Vec<&'static KindSchema>>,
    latency: Duration,
}

impl SandboxProvider {
    /// A sandbox for provider `name`, stored under `dir` (created if missing).
    pub fn open(dir: impl AsRef<Path>, name: impl Into<String>) -> std::io::Result<Self> {
        let name = name.into();
        fs::create_dir_all(dir.as_ref())?;
        let path = dir.as_ref().join(format!("{name}.jsonl"));
        let provider = SandboxProvider {
            name,
            journal: Journal::new(path),
            #[cfg(feature = "faults")]
            faults: faults::Faults::default(),
            calls: AtomicU64::new(0),
            kinds: None,
            known: Mutex::new(Vec::new()),
            latency: Duration::ZERO,
        };
        // The lock file is opened (and made) here, so that a directory the sandbox cannot
        // write is an error now; the journal itself is read on another thread meanwhile.
        journal::lock_file(provider.journal.path())?;
        provider.journal.catch_up_in_background();
        Ok(provider)
    }

    /// Serves only these kinds (those of the real provider it stands in for), so a stack that
    /// declares a kind the real provider lacks fails validation on the sandbox too. Without it
    /// the sandbox serves every kind whose schema names its provider.
    pub fn serving(mut self, kinds: Vec<&'static KindSchema>) -> Self {
        self.kinds = Some(kinds);
        self
    }

    /// Every call (reads, data-source lookups, creates, updates, deletes and the apply lock's
    /// calls) first waits `latency`, as a call to a remote API waits for its round trip; then it
    /// takes effect. Any number of calls wait at once (the sandbox has no concurrency limit of
    /// its own), so an apply at concurrency `c` of `n` independent resources takes about
    /// ⌈n / c⌉ × `latency` plus the engine's own overhead: what `bench/run overhead` measures.
    /// Useful in tests of progress reporting, timeouts or cancellation, with tokio's paused
    /// clock to keep them fast. Default: none.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use infra_core::sandbox::SandboxProvider;
    /// let dir = tempfile::tempdir().unwrap();
    /// let sandbox = SandboxProvider::open(dir.path(), "aws")
    ///     .unwrap()
    ///     .with_latency(Duration::from_millis(50));
    /// # let _ = sandbox;
    /// ```
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        self.journal.path()
    }

    /// Injects a fault (the `faults` feature).
    #[cfg(feature = "faults")]
    pub fn inject(&self, fault: Fault) {
        self.faults.inject(fault);
    }

    /// Every stored object, owned or not (for tests and inspection).
    pub fn objects(&self) -> std::io::Result<Vec<SandboxObject>> {
        self.journal
            .with_state(|s| Ok((Vec::new(), s.sorted(|_| true).cloned().collect())))
    }

    /// Stores an object no stack owns, as if made by hand beside the stack. Returns its id.
    pub fn insert_foreign(
        &self,
        kind: &str,
        name: &str,
        props: BTreeMap<String, Value>,
    ) -> std::io::Result<String> {
        self.journal.with_state(|s| {
            let id = next_id(s, kind, &format!("foreign/{kind}/{name}"));
            let object = SandboxObject {
                id: id.clone(),
                kind: kind.into(),
                stack: None,
                name: name.into(),
                props: props.into(),
                protect: false,
                token: None,
                declared: None,
            };
            s.put(object.clone());
            Ok((vec![Entry::Put { object }], id))
        })
    }

    /// Changes a stored object's property behind the stack's back (drift, for tests).
    pub fn tamper(&self, id: &str, field: &str, value: Value) -> std::io::Result<bool> {
        self.journal.with_state(|s| {
            let Some(o) = s.objects.get_mut(id) else {
                return Ok((Vec::new(), false));
            };
            o.props.insert(field.to_string(), value);
            Ok((vec![Entry::Put { object: o.clone() }], true))
        })
    }

    /// The round trip of one call ([`SandboxProvider::with_latency`]).
    async fn round_trip(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }

    fn err(e: std::io::Error) -> ProviderError {
        ProviderError::retryable("SandboxIo", e.to_string())
    }

    fn observed(o: &SandboxObject) -> Observed {
        Self::observed_at(o, Address::of(&o.kind, &o.name))
    }

    /// `o` as observed, at `address` (its own, made by the caller).
    fn observed_at(o: &SandboxObject, address: Address) -> Observed {
        Observed {
            address,
            id: o.id.clone(),
            props: o.props.clone(),
            protect: o.protect,
            declared: o.declared.clone(),
        }
    }
}

/// `objects` as observed, in the engine's order: by address, then by id (the engine then finds
/// them sorted). Many are sorted and copied in runs on several threads, then merged.
fn observed_in_order(objects: &[&SandboxObject]) -> Vec<Observed> {
    fn key(o: &SandboxObject) -> (&str, &str, &str) {
        (&o.kind, &o.name, &o.id)
    }
    let threads = crate::parallel::threads();
    let runs: Vec<&[&SandboxObject]> = objects
        .chunks(objects.len().div_ceil(threads).max(PARALLEL_READ))
        .collect();
    let runs = crate::parallel::map_ordered(&runs, threads, 2, |run| {
        let mut run = run.to_vec();
        run.sort_unstable_by(|a, b| key(a).cmp(&key(b)));
        let mut out: Vec<Observed> = Vec::with_capacity(run.len());
        for o in run {
            // Objects of one kind are consecutive: their addresses share the kind's string.
            let address = match out.last() {
                Some(last) if last.address.kind() == o.kind => last.address.renamed(&o.name),
                _ => Address::of(&o.kind, &o.name),
            };
            out.push(SandboxProvider::observed_at(o, address));
        }
        out
    });
    runs.into_iter()
        .reduce(|a, b| {
            let mut merged = Vec::with_capacity(a.len() + b.len());
            let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
            while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
                let first = (&x.address, &x.id) <= (&y.address, &y.id);
                merged.extend(if first { a.next() } else { b.next() });
            }
            merged.extend(a.chain(b));
            merged
        })
        .unwrap_or_default()
}

/// The number of objects from which a read sorts and copies them on several threads.
const PARALLEL_READ: usize = 4096;

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
) -> Props {
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
    props.into()
}

#[async_trait]
impl Provider for SandboxProvider {
    fn name(&self) -> &str {
        &self.name
    }

    /// The journal file, as an absolute path: another sandbox directory is another target. The
    /// directory is resolved (it exists from `open` on), not the file, which a sandbox with
    /// nothing written yet doesn't have.
    async fn target(&self) -> Result<Option<String>, ProviderError> {
        let file = self.journal.path();
        let path = match (file.parent(), file.file_name()) {
            (Some(dir), Some(name)) => {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                fs::canonicalize(dir)
                    .map(|d| d.join(name))
                    .map_err(Self::err)?
            }
            _ => file.to_path_buf(),
        };
        Ok(Some(format!(
            "sandbox `{}` at {}",
            self.name,
            path.display()
        )))
    }

    async fn read(&self, stack: &str) -> Result<ReadResult, ProviderError> {
        self.round_trip().await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "faults")]
        if let Some(e) = self.faults.before(FaultOp::Read, None)? {
            return Err(e);
        }
        self.journal
            .with_state(|s| {
                let mine: Vec<&SandboxObject> = s
                    .objects
                    .values()
                    .filter(|o| o.stack.as_deref() == Some(stack))
                    .collect();
                let resources = observed_in_order(&mine);
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
        self.round_trip().await;
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
            declared: None,
        })
    }

    async fn create(&self, ctx: &OpContext, desired: &Resolved) -> Result<Observed, ProviderError> {
        self.round_trip().await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "faults")]
        let lost = self
            .faults
            .before(FaultOp::Create, Some(&desired.address))?;
        let observed = self
            .journal
            .with_state(|s| {
                // An earlier attempt with the same token already made it: return that one.
                if let Some(o) = s.by_token(&ctx.idempotency_token) {
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
                    declared: Some(drift::record(desired.schema, &desired.props)),
                };
                s.put(object.clone());
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
        #[cfg(feature = "faults")]
        if let Some(e) = lost {
            return Err(e);
        }
        Ok(observed)
    }

    async fn update(
        &self,
        ctx: &OpContext,
        current: &Observed,
        desired: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError> {
        self.round_trip().await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "faults")]
        let lost = self
            .faults
            .before(FaultOp::Update, Some(&desired.address))?;
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
            .journal
            .with_state(|s| {
                let Some(prev) = s
                    .objects
                    .get(&current.id)
                    .filter(|o| o.stack.as_deref() == Some(ctx.stack.as_str()))
                else {
                    return Ok((Vec::new(), None));
                };
                let prev = prev.clone();
                let object = SandboxObject {
                    props: compute_outputs(desired, &prev.id, &ctx.stack, Some(&prev)),
                    protect: desired.protect,
                    declared: Some(drift::record(desired.schema, &desired.props)),
                    ..prev
                };
                s.put(object.clone());
                let obs = Self::observed(&object);
                Ok((vec![Entry::Put { object }], Some(obs)))
            })
            .map_err(Self::err)?
            .ok_or_else(|| {
                ProviderError::not_found("NotFound", format!("{} not found", current.id))
            })?;
        #[cfg(feature = "faults")]
        if let Some(e) = lost {
            return Err(e);
        }
        Ok(observed)
    }

    async fn delete(&self, ctx: &OpContext, current: &Observed) -> Result<(), ProviderError> {
        self.round_trip().await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "faults")]
        let lost = self
            .faults
            .before(FaultOp::Delete, Some(&current.address))?;
        let found = self
            .journal
            .with_state(|s| match s.objects.get(&current.id) {
                Some(o) if o.stack.as_deref() == Some(ctx.stack.as_str()) => {
                    s.remove(&current.id);
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
        #[cfg(feature = "faults")]
        if let Some(e) = lost {
            return Err(e);
        }
        if found {
            Ok(())
        } else {
            Err(ProviderError::not_found(
                "NotFound",
                format!("{} not found", current.id),
            ))
        }
    }

    /// Rewrites the object's ownership (its address) in place; everything else is kept.
    async fn move_to(
        &self,
        ctx: &OpContext,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.journal
            .with_state(|s| {
                let Some(prev) = s
                    .objects
                    .get(&current.id)
                    .filter(|o| o.stack.as_deref() == Some(ctx.stack.as_str()))
                    .filter(|o| o.kind == to.kind())
                else {
                    return Ok((Vec::new(), None));
                };
                let object = SandboxObject {
                    name: to.name().to_string(),
                    ..prev.clone()
                };
                s.objects.insert(object.id.clone(), object.clone());
                let obs = Self::observed(&object);
                Ok((vec![Entry::Put { object }], Some(obs)))
            })
            .map_err(Self::err)?
            .ok_or_else(|| {
                ProviderError::not_found("NotFound", format!("{} not found", current.id))
            })
    }

    /// The objects that belong to no stack, in dependency order (an object after those whose
    /// ids its fields hold). Names (`name_prefix`) and `tags` / `labels` maps (`tags`) narrow
    /// them; the VPC filter only a sandbox standing in for `aws` understands (the VPC and the
    /// objects whose fields hold its id). A kind the sandbox has no schema for is
    /// inexpressible.
    async fn discover(
        &self,
        filter: &ImportFilter,
        sink: &mut (dyn FnMut(Found) + Send),
    ) -> Result<(), ProviderError> {
        self.round_trip().await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.discover_objects(filter, sink)
    }

    /// The object `id` of `kind` if it belongs to no stack; one another stack owns is an
    /// error naming that stack.
    async fn read_unowned(
        &self,
        kind: &'static KindSchema,
        id: &str,
        address: &Address,
    ) -> Result<Option<Observed>, ProviderError> {
        self.round_trip().await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.read_unowned_object(kind, id, address)
    }

    /// Writes the stack's ownership and address on the object, nothing else.
    async fn adopt(
        &self,
        ctx: &OpContext,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        self.round_trip().await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.adopt_object(ctx, current, to)
    }

    async fn lock_create(&self, stack: &str, info: &LockInfo) -> Result<Created, ProviderError> {
        self.round_trip().await;
        self.journal
            .with_state(|s| {
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
        self.round_trip().await;
        self.journal
            .with_state(|s| Ok((Vec::new(), s.locks.get(stack).cloned())))
            .map_err(Self::err)
    }

    async fn lock_delete(&self, stack: &str) -> Result<(), ProviderError> {
        self.round_trip().await;
        self.journal
            .with_state(|s| match s.locks.remove(stack) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Read on several threads or one, objects come out by address then id, duplicates of
    /// an address included, each with its own identity and shared properties.
    #[test]
    fn objects_are_observed_in_address_then_id_order() {
        let objects: Vec<SandboxObject> = (0..3 * PARALLEL_READ)
            .map(|i| {
                // A scattered order of kinds, names and ids; every 100th name twice.
                let n = (i * 7919) % (3 * PARALLEL_READ);
                SandboxObject {
                    id: format!("x-{:08}", (i * 104_729) % 1_000_003),
                    kind: ["t_b", "t_a", "t_c"][(n / 100) % 3].to_string(),
                    stack: Some("s".into()),
                    name: format!("n{}", if n % 100 == 1 { n - 1 } else { n }),
                    props: Props::default(),
                    protect: false,
                    token: None,
                    declared: None,
                }
            })
            .collect();
        let refs: Vec<&SandboxObject> = objects.iter().collect();
        let seen: Vec<(Address, String)> = observed_in_order(&refs)
            .into_iter()
            .map(|o| (o.address, o.id))
            .collect();
        let mut expected: Vec<(Address, String)> = objects
            .iter()
            .map(|o| (Address::new(o.kind.as_str(), o.name.as_str()), o.id.clone()))
            .collect();
        expected.sort();
        assert_eq!(seen.len(), 3 * PARALLEL_READ);
        assert!(
            seen.windows(2).any(|w| w[0].0 == w[1].0),
            "a duplicate address"
        );
        assert_eq!(seen, expected);
        let few = observed_in_order(&refs[..10]);
        assert!(few
            .windows(2)
            .all(|w| (&w[0].address, &w[0].id) < (&w[1].address, &w[1].id)));
    }
}
