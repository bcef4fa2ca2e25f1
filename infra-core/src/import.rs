//! Import: objects that belong to no stack, read back as typed Rust, and their adoption.
//!
//! The contract between the engine and the providers (issue 14):
//!
//! - [`Provider::discover`](crate::provider::Provider::discover) reads the objects of the
//!   provider's kinds that carry no stack's ownership, narrowed by an [`ImportFilter`], and hands
//!   each one to a sink as soon as it is read ([`Found`]), in dependency order (a VPC before its
//!   subnets, a network before the services on it), so that output streams and memory stays
//!   flat however many objects there are.
//! - Each kind that can be imported has a [`Codegen`] function in its schema
//!   ([`KindSchema::codegen`](crate::dsl::KindSchema::codegen)): it writes the builder chain for
//!   one [`Discovered`] object, with references to objects imported before it by their Rust
//!   variable names ([`ImportNames`]).
//! - [`Provider::read_unowned`](crate::provider::Provider::read_unowned) reads one object by its
//!   provider id, whoever owns it, as it would be observed under a declared address, and
//!   [`Provider::adopt`](crate::provider::Provider::adopt) writes the stack's ownership on it
//!   and changes nothing else.
//! - [`ModuleWriter`] writes what discovery finds as a Rust module, as it comes;
//!   [`Engine::import`](crate::engine::Engine::import) drives it over the providers, and
//!   [`Engine::adopt`](crate::engine::Engine::adopt) applies a plan that only adopts.

mod format;
mod names;
mod writer;

pub use format::Formatting;
pub use writer::{ImportCounts, ModuleWriter};

use std::collections::{BTreeMap, HashMap};

use crate::dsl::KindSchema;
use crate::value::Value;

/// What to import: every filter given must match. A provider answers a filter it does not
/// understand with a clear error naming it (`--vpc` means nothing to Swarm).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportFilter {
    /// Only this VPC and what lives in it (AWS). Objects outside any VPC (IAM) are narrowed by
    /// the other filters only.
    pub vpc: Option<String>,
    /// Only objects whose name (AWS `Name` tag or resource name, Swarm object name) starts
    /// with this prefix.
    pub name_prefix: Option<String>,
    /// Only objects carrying all these tags (AWS) or labels (Swarm), `key` → `value`.
    pub tags: BTreeMap<String, String>,
}

impl ImportFilter {
    /// No narrowing: every object of the provider's kinds that belongs to no stack.
    pub fn all() -> Self {
        ImportFilter::default()
    }
    /// True when `name` passes the name filter.
    pub fn name_matches(&self, name: &str) -> bool {
        self.name_prefix
            .as_deref()
            .is_none_or(|prefix| name.starts_with(prefix))
    }
    /// True when `tags` (an object's tags or labels) carry every filtered tag.
    pub fn tags_match<'t>(&self, tags: impl IntoIterator<Item = (&'t str, &'t str)>) -> bool {
        if self.tags.is_empty() {
            return true;
        }
        let have: HashMap<&str, &str> = tags.into_iter().collect();
        self.tags
            .iter()
            .all(|(k, v)| have.get(k.as_str()) == Some(&v.as_str()))
    }
}

/// One object found by [`Provider::discover`](crate::provider::Provider::discover).
#[derive(Clone, Debug)]
pub struct Discovered {
    /// Its kind.
    pub schema: &'static KindSchema,
    /// The provider's id (`vpc-0abc…`, a Swarm service id): what `adopt` is told, and what
    /// other objects' references hold.
    pub id: String,
    /// A name to derive its address and Rust variable from (the `Name` tag, the IAM or Swarm
    /// name, else the id), before any sanitising.
    pub name: String,
    /// Its properties in the same normalised form a read gives
    /// ([`Observed::props`](crate::provider::Observed::props)): a reference field holds the
    /// other object's id.
    pub props: BTreeMap<String, Value>,
    /// Other ids a reference to this object may use (an IAM role's ARN besides its name, a
    /// Swarm network's name besides its id).
    pub aliases: Vec<String>,
    /// Parts of the object `infra` can't express, each with the reason: written in the
    /// generated module as comments, never dropped silently.
    pub notes: Vec<String>,
}

/// What discovery hands to its sink.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Found {
    /// An object `infra` can declare.
    Object(Discovered),
    /// An object `infra` can't declare (a kind it has no builder for, a default VPC's
    /// main route table, …): listed in the generated module as a comment with the reason.
    Inexpressible {
        /// What it is, in the API's words (`EC2 VPC endpoint`, `Swarm volume`).
        what: String,
        /// The provider's id.
        id: String,
        /// Why `infra` can't declare it.
        reason: String,
    },
}

/// The Rust names of the objects imported so far, by kind and provider id (and alias): what a
/// kind's [`Codegen`] uses to write a typed reference (`.vpc(&vpc_main)`).
///
/// Ids are only unique within a kind (an IAM role and an IAM group may both be `web`), so a
/// reference names the kind it expects: the role's instance profile gets the role, the user in
/// group `web` gets the group. Variables are unique across kinds ([`ModuleWriter`] gives them).
#[derive(Clone, Debug, Default)]
pub struct ImportNames {
    /// kind → id → variable.
    by_kind: HashMap<String, HashMap<String, String>>,
}

impl ImportNames {
    /// No names yet.
    pub fn new() -> Self {
        ImportNames::default()
    }
    /// Records that the object `id` of `kind` is the variable `var`.
    pub fn insert(&mut self, kind: &str, id: impl Into<String>, var: impl Into<String>) {
        self.by_kind
            .entry(kind.to_string())
            .or_default()
            .insert(id.into(), var.into());
    }
    /// The variable of the object `id` of `kind`, if it was imported.
    pub fn var(&self, kind: &str, id: &str) -> Option<&str> {
        self.by_kind.get(kind)?.get(id).map(String::as_str)
    }
    /// `&var` for a reference to the object `id` of `kind`, if it was imported.
    pub fn reference(&self, kind: &str, id: &str) -> Option<String> {
        self.var(kind, id).map(|v| format!("&{v}"))
    }
}

/// A kind's generated declaration of one object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Generated {
    /// The builder's type as a user's crate names it (`infra::aws::Subnet`), for the module's
    /// `use` lines.
    pub type_path: &'static str,
    /// The builder chain, without `stack.add(…)` around it:
    /// `Subnet::new("public-a").vpc(&vpc_main).cidr("10.0.1.0/24")`. Default values are left
    /// out. It need not be formatted: the module is formatted as a whole.
    pub expr: String,
    /// Comment lines written above it (a field `infra` can't express, with the reason; a
    /// secret left to a `from_env` placeholder).
    pub comments: Vec<String>,
}

/// A kind's code generator: the builder chain declaring `object` under the resource name
/// `name` (already a valid address name), with references through `names`. A reference to an
/// object that was not imported can't be typed: say so in [`Generated::comments`] and leave
/// the setter out.
pub type Codegen = fn(object: &Discovered, name: &str, names: &ImportNames) -> Generated;

/// A Rust string literal for `s` (quoted and escaped).
pub fn rust_str(s: &str) -> String {
    format!("{s:?}")
}
