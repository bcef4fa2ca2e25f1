//! The stack and the typed handles to its resources.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::value::Reference;

use super::{Address, Id, Output, Resource, ResourceSpec};

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
    /// The provider's id of the resource, known after it is created: an `Output<Id<T>>`, which a
    /// builder that wants the id of another kind refuses at compile time.
    pub fn id(&self) -> Output<Id<T>> {
        self.output("id")
    }
    /// Any computed output by name, typed by what it holds. Kind crates wrap this in typed
    /// accessors (`role.arn()` is an `Output<Arn<IamRole>>`); an output the kind doesn't declare
    /// is reported by validation.
    pub fn output<V>(&self, name: &str) -> Output<V> {
        Output::from_reference(Reference {
            address: self.address.clone(),
            attribute: name.to_string(),
        })
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

/// The set of declared resources: what the infrastructure should be.
#[derive(Clone, Debug)]
pub struct Stack {
    name: String,
    /// Shared with the graphs built from the stack ([`Graph::build`](crate::graph::Graph::build)
    /// keeps these, not copies); changed copy-on-write.
    resources: Vec<Arc<ResourceSpec>>,
    dangling: Vec<(Address, Address)>,
    moves: Vec<Move>,
    adoptions: Vec<Adoption>,
}

/// A declared adoption: the existing object `id`, which belongs to no stack, is the declared
/// resource at `address` (as terraform's `import` block). See [`Stack::adopt`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Adoption {
    /// The declared resource.
    pub address: Address,
    /// The provider's id of the object to adopt.
    pub id: String,
}

/// A declared move: the object owned at `from` now belongs to the resource at `to` (a renamed
/// resource), as terraform's `moved` block. See [`Stack::moved`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Move {
    /// The old address.
    pub from: Address,
    /// The new address.
    pub to: Address,
}

impl Stack {
    /// An empty stack. The name is stored on every managed object (`infra:stack`), so two stacks
    /// in one account never touch each other's resources.
    pub fn new(name: impl Into<String>) -> Self {
        Stack {
            name: name.into(),
            resources: Vec::new(),
            dangling: Vec::new(),
            moves: Vec::new(),
            adoptions: Vec::new(),
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
        self.resources.push(Arc::new(spec));
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
                Arc::make_mut(r)
                    .options
                    .depends_on
                    .insert(dependency.address().clone());
            }
            None => self
                .dangling
                .push((dependent.address().clone(), dependency.address().clone())),
        }
    }

    /// Declares that the resource `to` was called `from` before (a rename in code): the object
    /// owned at the old address is re-owned under the new one instead of being destroyed and
    /// created anew, as terraform's `moved` block. Both are of the kind `T`, so a move across
    /// kinds does not compile:
    ///
    /// ```ignore
    /// let subnet = stack.add(Subnet::new("public-a").vpc(&vpc) /* … */);   // was "a"
    /// stack.moved(Ref::<Subnet>::named("a"), &subnet);
    /// ```
    ///
    /// Moves chain (`a` → `b`, `b` → `c`: whichever of `a` and `b` has an object ends at `c`).
    /// Keep the declaration until every environment has been applied; once the old address
    /// owns nothing it does nothing. Validation refuses a move whose old address is still
    /// declared, whose new address is neither declared nor moved on, and, after the read, one
    /// whose new address already has an object. Where the kind's objects are named after their
    /// address ([`KindSchema::move_replaces`](super::KindSchema::move_replaces)), the plan
    /// replaces the object and says why.
    pub fn moved<T: Resource>(&mut self, from: Ref<T>, to: &Ref<T>) {
        self.move_address(from.address, to.address().clone());
    }

    /// [`Stack::moved`] by address, for tooling and generated stacks; a move between two kinds
    /// is a validation problem.
    pub fn move_address(&mut self, from: Address, to: Address) {
        self.moves.push(Move { from, to });
    }

    /// The declared moves, in declaration order.
    pub fn moves(&self) -> &[Move] {
        &self.moves
    }

    /// Declares that the existing object `id`, created outside `infra` and owned by no stack, is
    /// the resource `resource` (what `import` writes for every object it found): the plan shows
    /// its adoption (the stack's ownership tags written, nothing else changed, or the fields
    /// that differ), and the apply adopts it instead of creating a new object. Once the object
    /// is owned, the declaration does nothing and may be removed.
    pub fn adopt<T: Resource>(&mut self, resource: &Ref<T>, id: impl Into<String>) {
        self.adoptions.push(Adoption {
            address: resource.address().clone(),
            id: id.into(),
        });
    }

    /// [`Stack::adopt`] by address, for tooling and generated stacks.
    pub fn adopt_address(&mut self, address: Address, id: impl Into<String>) {
        self.adoptions.push(Adoption {
            address,
            id: id.into(),
        });
    }

    /// The declared adoptions, in declaration order.
    pub fn adoptions(&self) -> &[Adoption] {
        &self.adoptions
    }

    /// The declared resources, in declaration order.
    pub fn resources(&self) -> &[Arc<ResourceSpec>] {
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
        Some(Arc::unwrap_or_clone(self.resources.remove(i)))
    }

    /// Mutable access to a declared resource's spec (for tests and tooling that derive variants).
    pub fn get_mut(&mut self, address: &Address) -> Option<&mut ResourceSpec> {
        self.resources
            .iter_mut()
            .find(|r| &r.address == address)
            .map(Arc::make_mut)
    }

    /// Adds an already-built spec (for generated stacks and tooling).
    pub fn add_spec(&mut self, spec: ResourceSpec) -> Address {
        let address = spec.address.clone();
        self.resources.push(Arc::new(spec));
        address
    }
}
