//! The uniform resource spec, the typed builder trait over it, and the `kind!` macro that
//! declares a builder.

use std::collections::{BTreeMap, BTreeSet};

use crate::value::Value;

use super::{Address, KindSchema, Ref};

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
