//! The typed DSL: a [`Stack`] collects resources, [`Stack::add`] returns a typed [`Ref<T>`], and
//! builders take typed references, so a reference of the wrong kind does not compile.
//!
//! ```
//! use infra_core::dsl::{KindSchema, Ref, Resource, ResourceSpec, Stack};
//!
//! // A kind is a typed builder over a `ResourceSpec` plus a static schema.
//! struct Network(ResourceSpec);
//! static NETWORK: KindSchema = KindSchema::new("demo_network", "demo");
//! impl Resource for Network {
//!     const SCHEMA: &'static KindSchema = &NETWORK;
//!     fn spec(&self) -> &ResourceSpec { &self.0 }
//!     fn spec_mut(&mut self) -> &mut ResourceSpec { &mut self.0 }
//!     fn into_spec(self) -> ResourceSpec { self.0 }
//! }
//! struct Host(ResourceSpec);
//! static HOST: KindSchema = KindSchema::new("demo_host", "demo");
//! impl Resource for Host {
//!     const SCHEMA: &'static KindSchema = &HOST;
//!     fn spec(&self) -> &ResourceSpec { &self.0 }
//!     fn spec_mut(&mut self) -> &mut ResourceSpec { &mut self.0 }
//!     fn into_spec(self) -> ResourceSpec { self.0 }
//! }
//! impl Host {
//!     fn new(name: &str) -> Self { Host(ResourceSpec::new(&HOST, name)) }
//!     // Only a reference to a Network is accepted here.
//!     fn network(mut self, net: &Ref<Network>) -> Self {
//!         self.0.set("network_id", net.id());
//!         self
//!     }
//! }
//!
//! let mut stack = Stack::new("demo");
//! let net = stack.add(Network(ResourceSpec::new(&NETWORK, "main")));
//! let host = stack.add(Host::new("web").network(&net));
//! assert_eq!(host.address().to_string(), "demo_host.web");
//! ```
//!
//! Passing a reference of another kind is a compile error (`Subnet::vpc` takes a `&Ref<Vpc>`, not
//! a `&Ref<Subnet>`); see the `compile_fail` example on [`Ref`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::validate::{Problem, ValidationContext};
use crate::value::{Reference, Value};

/// The logical address of a resource: its kind and its name, written `kind.name`
/// (`aws_vpc.main`). Unique within a stack; stored on every managed object as its ownership id.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address {
    kind: String,
    name: String,
}

impl Address {
    /// An address from its parts.
    pub fn new(kind: impl Into<String>, name: impl Into<String>) -> Self {
        Address {
            kind: kind.into(),
            name: name.into(),
        }
    }
    /// The kind, e.g. `aws_vpc`.
    pub fn kind(&self) -> &str {
        &self.kind
    }
    /// The logical name, e.g. `main`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind, self.name)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl FromStr for Address {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('.') {
            Some((k, n)) if !k.is_empty() => Ok(Address::new(k, n)),
            _ => Err(format!("`{s}` is not an address of the form kind.name")),
        }
    }
}

impl TryFrom<String> for Address {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Address> for String {
    fn from(a: Address) -> String {
        a.to_string()
    }
}

/// What a kind declares about itself: which provider serves it, which fields can't change in
/// place, which are computed by the provider, which are secret, and how to validate it.
///
/// Built in a `static` with the `const` methods:
/// ```
/// # use infra_core::dsl::KindSchema;
/// static VPC: KindSchema = KindSchema::new("aws_vpc", "aws")
///     .force_new(&["cidr_block"])
///     .computed(&["id", "arn"]);
/// ```
#[derive(Debug)]
pub struct KindSchema {
    /// The kind's name, the first half of every address of this kind.
    pub kind: &'static str,
    /// The provider that serves this kind (`aws`, `swarm`, …).
    pub provider: &'static str,
    /// Fields whose change forces a replacement.
    pub force_new: &'static [&'static str],
    /// Outputs the provider computes (every kind also has `id`).
    pub computed: &'static [&'static str],
    /// Computed outputs that change whenever the resource is updated (e.g. a version number);
    /// references to them are unknown in a plan that updates the resource.
    pub changes_on_update: &'static [&'static str],
    /// Fields whose values are secret: digested in plans, never printed.
    pub sensitive: &'static [&'static str],
    /// List fields compared as sets (order doesn't matter: rules, subnet ids, …).
    pub unordered: &'static [&'static str],
    /// Per-kind validation; may look at other resources through the context.
    pub validate: fn(&ResourceSpec, &ValidationContext<'_>) -> Vec<Problem>,
    /// `true` for read-only data sources (looked up, never created or deleted).
    pub data_source: bool,
}

fn no_validation(_: &ResourceSpec, _: &ValidationContext<'_>) -> Vec<Problem> {
    Vec::new()
}

impl KindSchema {
    /// A kind with no force-new, computed (besides `id`) or sensitive fields and no validation.
    pub const fn new(kind: &'static str, provider: &'static str) -> Self {
        KindSchema {
            kind,
            provider,
            force_new: &[],
            computed: &[],
            changes_on_update: &[],
            sensitive: &[],
            unordered: &[],
            validate: no_validation,
            data_source: false,
        }
    }
    /// Declares the fields whose change forces a replacement.
    pub const fn force_new(mut self, fields: &'static [&'static str]) -> Self {
        self.force_new = fields;
        self
    }
    /// Declares the provider-computed outputs.
    pub const fn computed(mut self, fields: &'static [&'static str]) -> Self {
        self.computed = fields;
        self
    }
    /// Declares the outputs that change on every update.
    pub const fn changes_on_update(mut self, fields: &'static [&'static str]) -> Self {
        self.changes_on_update = fields;
        self
    }
    /// Declares the secret fields.
    pub const fn sensitive(mut self, fields: &'static [&'static str]) -> Self {
        self.sensitive = fields;
        self
    }
    /// Declares the list fields compared as sets.
    pub const fn unordered(mut self, fields: &'static [&'static str]) -> Self {
        self.unordered = fields;
        self
    }
    /// Sets the validation function.
    pub const fn validate(
        mut self,
        f: fn(&ResourceSpec, &ValidationContext<'_>) -> Vec<Problem>,
    ) -> Self {
        self.validate = f;
        self
    }
    /// Marks the kind as a read-only data source.
    pub const fn data_source(mut self) -> Self {
        self.data_source = true;
        self
    }

    /// True when `field` forces replacement.
    pub fn is_force_new(&self, field: &str) -> bool {
        self.force_new.contains(&field)
    }
    /// True when the list `field` is compared as a set.
    pub fn is_unordered(&self, field: &str) -> bool {
        self.unordered.contains(&field)
    }
    /// True when `field` is secret.
    pub fn is_sensitive(&self, field: &str) -> bool {
        self.sensitive.contains(&field)
    }
    /// True when `output` is `id` or a declared computed output.
    pub fn has_output(&self, output: &str) -> bool {
        output == "id" || self.computed.contains(&output)
    }
}

/// Per-resource options, the same for every kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceOptions {
    /// Never delete or replace this resource unless the plan is made with an explicit override.
    pub protect: bool,
    /// Replace by creating the new object before deleting the old one.
    pub create_before_destroy: bool,
    /// Fields whose drift is ignored: they are set on create and never diffed afterwards.
    pub ignore_changes: BTreeSet<String>,
    /// Ordering that no reference expresses: this resource is created after these.
    pub depends_on: BTreeSet<Address>,
    /// Policy rules suppressed on this resource, with the mandatory reason.
    pub suppress: BTreeMap<String, String>,
    /// Facts for policy rules that are not part of the object (`public_ports`, `role`): never
    /// sent to a provider, never diffed.
    pub annotations: BTreeMap<String, Value>,
}

/// A declared resource, uniform inside the graph: kind, address, properties, options.
#[derive(Clone, Debug)]
pub struct ResourceSpec {
    /// Where this resource lives in the stack.
    pub address: Address,
    /// Its kind's schema.
    pub schema: &'static KindSchema,
    /// Its declared properties (computed outputs excluded).
    pub props: BTreeMap<String, Value>,
    /// Its options.
    pub options: ResourceOptions,
}

impl ResourceSpec {
    /// An empty resource of a kind.
    pub fn new(schema: &'static KindSchema, name: impl Into<String>) -> Self {
        ResourceSpec {
            address: Address::new(schema.kind, name),
            schema,
            props: BTreeMap::new(),
            options: ResourceOptions::default(),
        }
    }

    /// Sets a property (a `Null` value removes it).
    pub fn set(&mut self, field: &str, value: impl Into<Value>) -> &mut Self {
        let value = value.into();
        if value.is_null() {
            self.props.remove(field);
        } else {
            self.props.insert(field.to_string(), value);
        }
        self
    }

    /// Appends to a list property, creating it when absent.
    pub fn push(&mut self, field: &str, value: impl Into<Value>) -> &mut Self {
        let entry = self
            .props
            .entry(field.to_string())
            .or_insert_with(|| Value::List(Vec::new()));
        if let Value::List(l) = entry {
            l.push(value.into());
        } else {
            *entry = Value::List(vec![value.into()]);
        }
        self
    }

    /// Inserts `key = value` into a map property, creating it when absent.
    pub fn insert(
        &mut self,
        field: &str,
        key: impl Into<String>,
        value: impl Into<Value>,
    ) -> &mut Self {
        let entry = self
            .props
            .entry(field.to_string())
            .or_insert_with(|| Value::Map(BTreeMap::new()));
        if let Value::Map(m) = entry {
            m.insert(key.into(), value.into());
        } else {
            *entry = Value::Map(BTreeMap::from([(key.into(), value.into())]));
        }
        self
    }

    /// A property.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.props.get(field)
    }

    /// A string property.
    pub fn get_str(&self, field: &str) -> Option<&str> {
        self.get(field).and_then(Value::as_str)
    }

    /// Every resource this one depends on: the targets of its references and its `depends_on`.
    pub fn dependencies(&self) -> BTreeSet<Address> {
        let mut deps = self.options.depends_on.clone();
        for v in self.props.values() {
            v.visit_refs(&mut |r| {
                deps.insert(r.address.clone());
            });
        }
        deps
    }
}

/// A typed builder of a resource kind. Kind crates implement the four required methods; the
/// provided ones are the options every resource has.
pub trait Resource: Sized {
    /// The kind's schema.
    const SCHEMA: &'static KindSchema;
    /// The uniform spec being built.
    fn spec(&self) -> &ResourceSpec;
    /// The uniform spec being built, mutably.
    fn spec_mut(&mut self) -> &mut ResourceSpec;
    /// The finished spec.
    fn into_spec(self) -> ResourceSpec;

    /// Never delete or replace this resource without an explicit override.
    fn protect(mut self) -> Self {
        self.spec_mut().options.protect = true;
        self
    }
    /// Replace by creating the new object before deleting the old one.
    fn create_before_destroy(mut self) -> Self {
        self.spec_mut().options.create_before_destroy = true;
        self
    }
    /// Ignore drift in these fields after creation.
    fn ignore_changes(mut self, fields: &[&str]) -> Self {
        self.spec_mut()
            .options
            .ignore_changes
            .extend(fields.iter().map(|f| f.to_string()));
        self
    }
    /// Suppresses a policy rule's findings on this resource. The reason is mandatory and is
    /// shown in every plan.
    fn suppress(mut self, rule: &str, reason: &str) -> Self {
        self.spec_mut()
            .options
            .suppress
            .insert(rule.to_string(), reason.to_string());
        self
    }
    /// Records a fact for policy rules (not sent to the provider, not diffed), e.g. which ports
    /// of a security group are meant to be public.
    fn annotate(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.spec_mut()
            .options
            .annotations
            .insert(key.to_string(), value.into());
        self
    }
    /// Create this resource after `other`, for an ordering that no reference expresses.
    fn depends_on<U>(mut self, other: &Ref<U>) -> Self {
        self.spec_mut()
            .options
            .depends_on
            .insert(other.address().clone());
        self
    }
}

/// A typed handle to a resource in a stack. Builders take `&Ref<Kind>`, so passing a resource of
/// the wrong kind fails to compile:
///
/// ```compile_fail,E0308
/// use infra_core::dsl::{KindSchema, Ref, Resource, ResourceSpec, Stack};
/// struct Vpc(ResourceSpec);
/// struct Subnet(ResourceSpec);
/// static VPC: KindSchema = KindSchema::new("aws_vpc", "aws");
/// static SUBNET: KindSchema = KindSchema::new("aws_subnet", "aws");
/// impl Resource for Vpc {
///     const SCHEMA: &'static KindSchema = &VPC;
///     fn spec(&self) -> &ResourceSpec { &self.0 }
///     fn spec_mut(&mut self) -> &mut ResourceSpec { &mut self.0 }
///     fn into_spec(self) -> ResourceSpec { self.0 }
/// }
/// impl Resource for Subnet {
///     const SCHEMA: &'static KindSchema = &SUBNET;
///     fn spec(&self) -> &ResourceSpec { &self.0 }
///     fn spec_mut(&mut self) -> &mut ResourceSpec { &mut self.0 }
///     fn into_spec(self) -> ResourceSpec { self.0 }
/// }
/// impl Subnet {
///     fn vpc(mut self, vpc: &Ref<Vpc>) -> Self { self.0.set("vpc_id", vpc.id()); self }
/// }
/// let mut stack = Stack::new("demo");
/// let a = stack.add(Subnet(ResourceSpec::new(&SUBNET, "a")));
/// // error[E0308]: mismatched types: expected `&Ref<Vpc>`, found `&Ref<Subnet>`
/// let b = Subnet(ResourceSpec::new(&SUBNET, "b")).vpc(&a);
/// ```
pub struct Ref<T> {
    address: Address,
    _kind: PhantomData<fn() -> T>,
}

impl<T> Clone for Ref<T> {
    fn clone(&self) -> Self {
        Ref {
            address: self.address.clone(),
            _kind: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Ref<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ref({})", self.address)
    }
}

impl<T> Ref<T> {
    /// The referenced resource's address.
    pub fn address(&self) -> &Address {
        &self.address
    }
    /// The provider's id of the resource, known after it is created.
    pub fn id(&self) -> Output<String> {
        self.output("id")
    }
    /// Any computed output by name. Kind crates wrap this in typed accessors (`role.arn()`);
    /// an output the kind doesn't declare is reported by validation.
    pub fn output<V>(&self, name: &str) -> Output<V> {
        Output {
            reference: Reference {
                address: self.address.clone(),
                attribute: name.to_string(),
            },
            _type: PhantomData,
        }
    }
}

impl<T: Resource> Ref<T> {
    /// A reference by name to a resource of kind `T`, for when the handle isn't at hand (a
    /// resource declared in another module, or later). Validation reports it if no such resource
    /// is in the stack.
    pub fn named(name: impl Into<String>) -> Self {
        Ref {
            address: Address::new(T::SCHEMA.kind, name),
            _kind: PhantomData,
        }
    }
}

/// A value known only after apply: an output of another resource. Converts into [`Value::Ref`];
/// plans show it as `(known after apply)` until the resource exists.
pub struct Output<V> {
    reference: Reference,
    _type: PhantomData<fn() -> V>,
}

impl<V> Clone for Output<V> {
    fn clone(&self) -> Self {
        Output {
            reference: self.reference.clone(),
            _type: PhantomData,
        }
    }
}

impl<V> fmt::Debug for Output<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Output({})", self.reference)
    }
}

impl<V> Output<V> {
    /// The reference behind the output.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }
}

impl<V> From<Output<V>> for Value {
    fn from(o: Output<V>) -> Value {
        Value::Ref(o.reference)
    }
}

impl<V> From<&Output<V>> for Value {
    fn from(o: &Output<V>) -> Value {
        Value::Ref(o.reference.clone())
    }
}

/// A builder argument that is either a plain value or the output of another resource.
#[derive(Clone, Debug)]
pub struct Input<V> {
    value: Value,
    _type: PhantomData<fn() -> V>,
}

impl<V> From<Input<V>> for Value {
    fn from(i: Input<V>) -> Value {
        i.value
    }
}

impl<V> From<Output<V>> for Input<V> {
    fn from(o: Output<V>) -> Self {
        Input {
            value: o.into(),
            _type: PhantomData,
        }
    }
}
impl<V> From<&Output<V>> for Input<V> {
    fn from(o: &Output<V>) -> Self {
        Input {
            value: o.into(),
            _type: PhantomData,
        }
    }
}
impl From<&str> for Input<String> {
    fn from(s: &str) -> Self {
        Input {
            value: s.into(),
            _type: PhantomData,
        }
    }
}
impl From<String> for Input<String> {
    fn from(s: String) -> Self {
        Input {
            value: s.into(),
            _type: PhantomData,
        }
    }
}
impl From<i64> for Input<i64> {
    fn from(i: i64) -> Self {
        Input {
            value: i.into(),
            _type: PhantomData,
        }
    }
}

/// The set of declared resources: what the infrastructure should be.
#[derive(Clone, Debug)]
pub struct Stack {
    name: String,
    resources: Vec<ResourceSpec>,
    dangling: Vec<(Address, Address)>,
}

impl Stack {
    /// An empty stack. The name is stored on every managed object (`infra:stack`), so two stacks
    /// in one account never touch each other's resources.
    pub fn new(name: impl Into<String>) -> Self {
        Stack {
            name: name.into(),
            resources: Vec::new(),
            dangling: Vec::new(),
        }
    }

    /// The stack's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames the stack (a second copy of an environment, say): its objects are owned under
    /// the new name, and nothing of the old name's is touched.
    pub fn rename(&mut self, name: impl Into<String>) {
        self.name = name.into();
    }

    /// Adds a resource and returns its typed handle.
    pub fn add<T: Resource>(&mut self, resource: T) -> Ref<T> {
        let spec = resource.into_spec();
        let address = spec.address.clone();
        self.resources.push(spec);
        Ref {
            address,
            _kind: PhantomData,
        }
    }

    /// Declares, after the fact, that `dependent` must be created after `dependency`. Prefer
    /// [`Resource::depends_on`]; this exists for orderings decided once both are declared.
    pub fn add_dependency<A, B>(&mut self, dependent: &Ref<A>, dependency: &Ref<B>) {
        match self
            .resources
            .iter_mut()
            .find(|r| &r.address == dependent.address())
        {
            Some(r) => {
                r.options.depends_on.insert(dependency.address().clone());
            }
            None => self
                .dangling
                .push((dependent.address().clone(), dependency.address().clone())),
        }
    }

    /// The declared resources, in declaration order.
    pub fn resources(&self) -> &[ResourceSpec] {
        &self.resources
    }

    /// Dependencies declared with [`Stack::add_dependency`] for a resource that isn't in the
    /// stack; validation reports them.
    pub fn dangling_dependencies(&self) -> &[(Address, Address)] {
        &self.dangling
    }

    /// The number of declared resources.
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    /// True when nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// Removes a resource by address (for tests and tooling that derive variants of a stack).
    pub fn remove(&mut self, address: &Address) -> Option<ResourceSpec> {
        let i = self.resources.iter().position(|r| &r.address == address)?;
        Some(self.resources.remove(i))
    }

    /// Mutable access to a declared resource's spec (for tests and tooling that derive variants).
    pub fn get_mut(&mut self, address: &Address) -> Option<&mut ResourceSpec> {
        self.resources.iter_mut().find(|r| &r.address == address)
    }

    /// Adds an already-built spec (for generated stacks and tooling).
    pub fn add_spec(&mut self, spec: ResourceSpec) -> Address {
        let address = spec.address.clone();
        self.resources.push(spec);
        address
    }
}

/// Declares a kind's builder type: a newtype over [`ResourceSpec`] implementing [`Resource`]
/// with the given schema.
///
/// ```
/// use infra_core::dsl::{KindSchema, ResourceSpec};
/// static DISK: KindSchema = KindSchema::new("demo_disk", "demo").force_new(&["size_gb"]);
/// infra_core::kind! {
///     /// A disk.
///     pub struct Disk => DISK
/// }
/// impl Disk {
///     pub fn new(name: &str) -> Self { Disk(ResourceSpec::new(&DISK, name)) }
/// }
/// ```
#[macro_export]
macro_rules! kind {
    ($(#[$meta:meta])* $vis:vis struct $name:ident => $schema:expr) => {
        $(#[$meta])*
        #[derive(Clone, Debug)]
        $vis struct $name($crate::dsl::ResourceSpec);

        impl $crate::dsl::Resource for $name {
            const SCHEMA: &'static $crate::dsl::KindSchema = &$schema;
            fn spec(&self) -> &$crate::dsl::ResourceSpec {
                &self.0
            }
            fn spec_mut(&mut self) -> &mut $crate::dsl::ResourceSpec {
                &mut self.0
            }
            fn into_spec(self) -> $crate::dsl::ResourceSpec {
                self.0
            }
        }
    };
}
