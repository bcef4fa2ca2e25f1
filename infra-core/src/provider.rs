//! The provider contract: what the reconciler needs from AWS, Swarm or the sandbox.
//!
//! A provider owns a set of kinds (those whose [`KindSchema::provider`] is its
//! [`name`](Provider::name)). It reads everything it owns for a stack in one batched pass, and
//! creates, updates and deletes single resources. Ownership is by tag/label (`infra:stack`,
//! `infra:id`): a read returns only the stack's objects, and nothing else is ever touched.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::dsl::{Address, KindSchema, Stack};
use crate::import::{Found, ImportFilter};
pub use crate::lock::Created;
use crate::validate::Problem;
use crate::value::Value;

mod props;
pub use props::Props;

/// A resource as a provider sees it: its address (from the ownership tag), the provider's id,
/// its properties normalised to the form the kind's builder emits, plus computed outputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// The logical address, read back from the `infra:id` tag.
    pub address: Address,
    /// The provider's id (`vpc-0abc…`, a Swarm service id, …).
    pub id: String,
    /// Declared fields (normalised) and computed outputs, shared ([`Props`]).
    pub props: Props,
    /// Whether the object is tagged as protected (`infra:protect`); protects it even after its
    /// declaration is removed from the code.
    #[serde(default)]
    pub protect: bool,
    /// The drift record written on the object by its last apply (the `infra:declared` tag or
    /// `infra.declared` label): what was declared for it then, field by field, as short
    /// digests ([`crate::plan::drift`]). `None` for an object applied before records existed,
    /// or adopted and not changed since: its differences are shown as of unknown origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared: Option<String>,
}

impl Observed {
    /// The value of an output: `id` or a computed property.
    pub fn output(&self, name: &str) -> Option<Value> {
        if name == "id" {
            Some(Value::String(self.id.clone()))
        } else {
            self.props.get(name).cloned()
        }
    }
}

/// A resource ready for a provider call: every reference resolved to a concrete value and secret
/// fields as [`Value::Sensitive`] carrying their plain text.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The logical address (to tag the object with).
    pub address: Address,
    /// The kind.
    pub schema: &'static KindSchema,
    /// The properties.
    pub props: BTreeMap<String, Value>,
    /// Whether to tag the object as protected.
    pub protect: bool,
}

impl Resolved {
    /// A property.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.props.get(field)
    }
    /// A string property.
    pub fn get_str(&self, field: &str) -> Option<&str> {
        self.get(field).and_then(Value::as_str)
    }
}

/// Per-call context.
#[derive(Clone, Debug)]
pub struct OpContext {
    /// The stack whose ownership tags go on created objects.
    pub stack: String,
    /// Stable across the retries of one operation in one apply: use it as the API's idempotency
    /// token (EC2 `ClientToken`) so a retried create after a lost response makes no duplicate.
    pub idempotency_token: String,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// What a batched read returns.
#[derive(Clone, Debug, Default)]
pub struct ReadResult {
    /// Every object the stack owns in this provider.
    pub resources: Vec<Observed>,
    /// API calls the read made (0 when not counted).
    pub api_calls: u64,
}

/// How the reconciler should treat an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorClass {
    /// Throttling, 5xx, eventual consistency: retry with backoff.
    Retryable,
    /// The object doesn't exist (a delete treats this as done).
    NotFound,
    /// Anything else: the change fails with this error.
    Fatal,
}

/// An error from a provider call, with the API's code and message.
#[derive(Clone, Debug, thiserror::Error, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProviderError {
    /// How to treat it.
    pub class: ErrorClass,
    /// The API's error code (`InvalidVpcID.NotFound`, `RequestLimitExceeded`, HTTP status, …).
    pub code: String,
    /// The API's message (never containing secret values).
    pub message: String,
    /// A wait the API asked for (`Retry-After`), if any.
    #[serde(skip)]
    pub retry_after: Option<Duration>,
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ProviderError {
    /// A fatal error.
    pub fn fatal(code: impl Into<String>, message: impl Into<String>) -> Self {
        ProviderError {
            class: ErrorClass::Fatal,
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }
    /// A retryable error.
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        ProviderError {
            class: ErrorClass::Retryable,
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }
    /// A not-found error.
    pub fn not_found(code: impl Into<String>, message: impl Into<String>) -> Self {
        ProviderError {
            class: ErrorClass::NotFound,
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }
    /// True when the reconciler should retry.
    pub fn is_retryable(&self) -> bool {
        self.class == ErrorClass::Retryable
    }
}

/// Who holds a stack's apply lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// A unique id of the holder (`host:pid<N>:<random>`).
    pub holder: String,
    /// When it was taken, seconds since the Unix epoch.
    pub since_unix: u64,
    /// What is being done (`apply`, `destroy`, `watch`).
    pub operation: String,
}

impl LockInfo {
    /// A lock held by this process now.
    pub fn for_this_process(operation: &str) -> LockInfo {
        let since_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        LockInfo {
            holder: format!(
                "{}:pid{}:{:08x}",
                this_host(),
                std::process::id(),
                rand::random::<u32>()
            ),
            since_unix,
            operation: operation.to_string(),
        }
    }

    /// `Some(true)` when the holder was a process on this host that is no longer running (a
    /// killed run: the lock is stale), `Some(false)` when it still runs, `None` when it can't be
    /// told (another host, or not Linux).
    pub fn is_stale(&self) -> Option<bool> {
        let mut parts = self.holder.split(':');
        let (host, pid) = (
            parts.next()?,
            parts.next()?.strip_prefix("pid")?.parse::<u32>().ok()?,
        );
        if host != this_host() || !Path::new("/proc/self").exists() {
            return None;
        }
        Some(!Path::new(&format!("/proc/{pid}")).exists())
    }
}

pub(crate) fn this_host() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

impl fmt::Display for LockInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, since unix time {})",
            self.holder, self.operation, self.since_unix
        )?;
        match self.is_stale() {
            Some(true) => write!(
                f,
                "; that process is no longer running on this host, so the lock is stale"
            ),
            Some(false) => write!(f, "; that process is still running on this host"),
            None => Ok(()),
        }
    }
}

/// A provider: reads and changes the objects of its kinds. Implementations must be safe to call
/// concurrently (the reconciler runs independent changes in parallel).
#[async_trait]
pub trait Provider: Send + Sync {
    /// The provider's name; kinds name the provider that serves them ([`KindSchema::provider`]).
    fn name(&self) -> &str;

    /// The kinds this provider serves. The engine checks every declared kind against it before
    /// anything is read, so a kind no configured provider serves is a validation problem, not
    /// an error half-way through an apply. `None` (the default): every kind whose schema names
    /// this provider, for generic providers such as the sandbox.
    fn kinds(&self) -> Option<Vec<&'static KindSchema>> {
        None
    }

    /// Checks the stack against this provider's own configuration, such as the AWS provider's
    /// region, without any API call. It runs with validation, before anything is read, so its
    /// problems are reported together with the stack's others and nothing is contacted.
    fn preflight(&self, stack: &Stack) -> Vec<Problem> {
        let _ = stack;
        Vec::new()
    }

    /// Which account, region, cluster or file this provider works on, in words (`aws account
    /// 123456789012, region us-east-1`): a [saved plan](crate::plan::saved) records it and is
    /// refused when applied anywhere else. It names no secret. `None` (the default): the provider
    /// can't tell, and saved plans can't check it.
    async fn target(&self) -> Result<Option<String>, ProviderError> {
        Ok(None)
    }

    /// Reads every object the stack owns, in as few calls as the API allows (one paginated,
    /// tag-filtered list per object type, never one call per resource).
    async fn read(&self, stack: &str) -> Result<ReadResult, ProviderError>;

    /// Looks up a data source (a read-only kind such as an AMI by name pattern).
    async fn lookup(&self, stack: &str, spec: &Resolved) -> Result<Observed, ProviderError> {
        let _ = stack;
        Err(ProviderError::fatal(
            "Unsupported",
            format!(
                "provider `{}` has no data source {}",
                self.name(),
                spec.schema.kind
            ),
        ))
    }

    /// Creates an object, tagged as owned by the stack in the same call.
    async fn create(&self, ctx: &OpContext, desired: &Resolved) -> Result<Observed, ProviderError>;

    /// Updates an object in place; `changed` lists the fields that differ.
    async fn update(
        &self,
        ctx: &OpContext,
        current: &Observed,
        desired: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError>;

    /// Deletes an object (and waits for it to be gone where the API requires it).
    async fn delete(&self, ctx: &OpContext, current: &Observed) -> Result<(), ProviderError>;

    /// Re-owns an object under a new address in place (a declared move): rewrites its
    /// ownership tag/label (`infra:id`, and whatever else derives from the address without
    /// naming the object) so that a read finds it at `to`, changing nothing else. `current` is
    /// the object as read, at its old address; the result is the object at `to`. Called only
    /// for kinds whose schema is [`movable`](KindSchema::movable); the default refuses.
    async fn move_to(
        &self,
        ctx: &OpContext,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        let _ = ctx;
        Err(ProviderError::fatal(
            "Unsupported",
            format!(
                "provider `{}` can't re-own {} under {to}",
                self.name(),
                current.address
            ),
        ))
    }

    /// Reads the objects of this provider's kinds that belong to no stack (no `infra:stack`
    /// tag or `infra.stack` label), narrowed by `filter`, and hands each to `sink` as soon as
    /// it is read, in dependency order (a VPC before its subnets): what `import` writes as
    /// Rust ([`crate::import`]). Objects it can't declare are handed over as
    /// [`Found::Inexpressible`], never left out. A filter
    /// the provider doesn't understand is an error naming it. The default finds nothing.
    async fn discover(
        &self,
        filter: &ImportFilter,
        sink: &mut (dyn FnMut(Found) + Send),
    ) -> Result<(), ProviderError> {
        let _ = (filter, sink);
        Ok(())
    }

    /// Reads the object `id` of `kind`, whoever owns it, as it would be observed under
    /// `address` (a declared adoption, [`Stack::adopt`]): `None` when there is no such object.
    /// The default finds none.
    async fn read_unowned(
        &self,
        kind: &'static KindSchema,
        id: &str,
        address: &Address,
    ) -> Result<Option<Observed>, ProviderError> {
        let _ = (kind, id, address);
        Ok(None)
    }

    /// Why this provider can't adopt objects of `kind`, if it can't (its
    /// [`adopt`](Provider::adopt) would refuse them: they are owned by path and name, say).
    /// A plan refuses a declared adoption of such an object before anything is read or
    /// changed, naming the reason, with the plan's other problems. The default: `None`.
    fn adoption_refusal(&self, kind: &'static KindSchema) -> Option<String> {
        let _ = kind;
        None
    }

    /// Adopts an object that belongs to no stack: writes the stack's ownership on it
    /// (`infra:stack` = `ctx.stack`, `infra:id` = `to`) and changes nothing else. `current` is
    /// the object as [`read_unowned`](Provider::read_unowned) gave it; the result is the object
    /// as owned. The default refuses.
    async fn adopt(
        &self,
        ctx: &OpContext,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        let _ = ctx;
        Err(ProviderError::fatal(
            "Unsupported",
            format!(
                "provider `{}` can't adopt {} ({}) as {to}",
                self.name(),
                current.id,
                current.address.kind()
            ),
        ))
    }

    /// Creates the stack's lock object holding `info`, atomically: [`Created::Exists`] when
    /// one exists already, whoever holds it. One of the three lock primitives the protocol in
    /// [`crate::lock`] runs on; the default (no lock object) always creates, for providers that
    /// need no lock.
    async fn lock_create(&self, stack: &str, info: &LockInfo) -> Result<Created, ProviderError> {
        let _ = (stack, info);
        Ok(Created::Created)
    }

    /// Who holds the stack's lock, if anyone (a lock primitive; see [`crate::lock`]).
    async fn lock_read(&self, stack: &str) -> Result<Option<LockInfo>, ProviderError> {
        let _ = stack;
        Ok(None)
    }

    /// Deletes the stack's lock object; one that is gone already counts as deleted (a lock
    /// primitive; see [`crate::lock`]).
    async fn lock_delete(&self, stack: &str) -> Result<(), ProviderError> {
        let _ = stack;
        Ok(())
    }

    /// Takes the stack's apply lock, or says who holds it: the protocol of [`crate::lock`] on
    /// this provider's primitives. Providers implement the primitives, not this; wrappers may
    /// forward it.
    async fn lock(&self, stack: &str, info: &LockInfo) -> Result<(), LockError> {
        crate::lock::take(self, stack, info).await
    }

    /// Releases the lock taken by `holder` ([`crate::lock::release`]).
    async fn unlock(&self, stack: &str, holder: &str) -> Result<(), ProviderError> {
        crate::lock::release(self, stack, holder).await
    }

    /// Breaks a lock whoever holds it (the explicit command for a stale lock); returns who held
    /// it ([`crate::lock::force_unlock`]).
    async fn force_unlock(&self, stack: &str) -> Result<Option<LockInfo>, ProviderError> {
        crate::lock::force_unlock(self, stack).await
    }

    /// API calls made so far by this provider instance, when it counts them.
    fn api_calls(&self) -> Option<u64> {
        None
    }

    /// The identity this provider acts as, for the audit trail (AWS: the caller's ARN), when it
    /// can tell; asked once per apply (a provider may cache it). A failure to find out is
    /// said in the answer (`unknown (…)`), never an error: it must not stop an apply.
    async fn caller(&self) -> Option<String> {
        None
    }
}

/// Why a lock was not taken.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Someone else holds it.
    #[error("stack \"{stack}\" is locked by {holder}")]
    Held {
        /// The stack.
        stack: String,
        /// Who holds it.
        holder: LockInfo,
    },
    /// The lock couldn't be read or written.
    #[error("lock for stack \"{stack}\": {error}")]
    Failed {
        /// The stack.
        stack: String,
        /// The provider's error.
        error: ProviderError,
    },
}
