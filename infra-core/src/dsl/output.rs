//! Outputs and inputs, typed by what they hold.
//!
//! An [`Output`] is a value known only after apply: `vpc.id()` is an `Output<Id<Vpc>>`, the id
//! of a VPC; an instance profile's `arn()` is an `Output<Arn<InstanceProfile>>`. A builder that
//! wants an id, an ARN or a name of one kind takes `impl Into<Input<Id<Kind>>>` (or
//! [`Arn`], [`Name`]), which accepts exactly:
//!
//! * a literal (`"ami-0123456789abcdef0"`, an AWS managed policy's ARN): a resource declared
//!   elsewhere;
//! * an output of that kind: `ami.id()` from an AMI lookup (a data source), `profile.arn()`.
//!
//! An output of another kind is a compile error (E0277), not a plan that fails halfway through
//! an apply: `LaunchTemplate::image(vpc.id())` doesn't compile. The markers exist only in the
//! types; inside the graph every output is the same [`Value::Ref`] as before.
//!
//! ```
//! use infra_core::dsl::{Id, Input, KindSchema, ResourceSpec, Stack};
//! use infra_core::Value;
//!
//! static IMAGE: KindSchema = KindSchema::new("demo_image", "demo").data_source();
//! infra_core::kind! { struct Image => IMAGE }
//! static HOST: KindSchema = KindSchema::new("demo_host", "demo");
//! infra_core::kind! { struct Host => HOST }
//! impl Host {
//!     // A literal image id, or the id of an `Image`: nothing else.
//!     fn image(mut self, id: impl Into<Input<Id<Image>>>) -> Self {
//!         self.0.set("image_id", id.into());
//!         self
//!     }
//! }
//!
//! let mut stack = Stack::new("demo");
//! let image = stack.add(Image(ResourceSpec::new(&IMAGE, "base")));
//! let a = Host(ResourceSpec::new(&HOST, "a")).image(image.id());
//! let b = Host(ResourceSpec::new(&HOST, "b")).image("img-0123");
//! assert_eq!(a.0.get("image_id"), Some(&Value::from(image.id())));
//! assert_eq!(b.0.get("image_id"), Some(&Value::from("img-0123")));
//! ```
//!
//! The id of another kind does not compile:
//!
//! ```compile_fail,E0277
//! use infra_core::dsl::{Id, Input, KindSchema, ResourceSpec, Stack};
//!
//! static IMAGE: KindSchema = KindSchema::new("demo_image", "demo").data_source();
//! infra_core::kind! { struct Image => IMAGE }
//! static NETWORK: KindSchema = KindSchema::new("demo_network", "demo");
//! infra_core::kind! { struct Network => NETWORK }
//! static HOST: KindSchema = KindSchema::new("demo_host", "demo");
//! infra_core::kind! { struct Host => HOST }
//! impl Host {
//!     fn image(mut self, id: impl Into<Input<Id<Image>>>) -> Self {
//!         self.0.set("image_id", id.into());
//!         self
//!     }
//! }
//!
//! let mut stack = Stack::new("demo");
//! let net = stack.add(Network(ResourceSpec::new(&NETWORK, "main")));
//! // error[E0277]: the trait bound `Input<Id<Image>>: From<Output<Id<Network>>>` is not satisfied
//! Host(ResourceSpec::new(&HOST, "a")).image(net.id());
//! ```

use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;

use crate::value::{Reference, Value};

/// What an output or input holds: the provider's id of a resource of kind `T` (`vpc-…`,
/// `subnet-…`; for some kinds a name or an ARN, as the kind documents). A marker: it exists only
/// in types and has no values.
pub struct Id<T> {
    _kind: PhantomData<fn() -> T>,
    _never: Infallible,
}

/// What an output or input holds: the ARN of a resource of kind `T`. A marker, like [`Id`].
pub struct Arn<T> {
    _kind: PhantomData<fn() -> T>,
    _never: Infallible,
}

/// What an output or input holds: the name of a resource of kind `T` as its provider knows it
/// (an AMI's name, a Swarm secret's name). A marker, like [`Id`].
pub struct Name<T> {
    _kind: PhantomData<fn() -> T>,
    _never: Infallible,
}

/// A value known only after apply: an output of another resource, typed by what it holds
/// (`Output<Id<Vpc>>`, `Output<Arn<InstanceProfile>>`, `Output<i64>`). Converts into
/// [`Value::Ref`]; plans show it as `(known after apply)` until the resource exists.
pub struct Output<V> {
    reference: Reference,
    _type: PhantomData<fn() -> V>,
}

impl<V> Output<V> {
    /// The output behind a reference. Kind crates get typed outputs from
    /// [`Ref::output`](super::Ref::output) instead.
    pub(crate) fn from_reference(reference: Reference) -> Self {
        Output {
            reference,
            _type: PhantomData,
        }
    }
    /// The reference behind the output.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }
}

impl<V> Clone for Output<V> {
    fn clone(&self) -> Self {
        Output::from_reference(self.reference.clone())
    }
}

impl<V> fmt::Debug for Output<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Output({})", self.reference)
    }
}

impl<V> From<Output<V>> for Value {
    fn from(o: Output<V>) -> Value {
        Value::Ref(Box::new(o.reference))
    }
}

impl<V> From<&Output<V>> for Value {
    fn from(o: &Output<V>) -> Value {
        Value::Ref(Box::new(o.reference.clone()))
    }
}

/// A builder argument: a plain value, or an output of another resource that holds a `V`.
pub struct Input<V> {
    value: Value,
    _type: PhantomData<fn() -> V>,
}

impl<V> Input<V> {
    fn new(value: Value) -> Self {
        Input {
            value,
            _type: PhantomData,
        }
    }
}

impl<V> Clone for Input<V> {
    fn clone(&self) -> Self {
        Input::new(self.value.clone())
    }
}

impl<V> fmt::Debug for Input<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Input").field(&self.value).finish()
    }
}

impl<V> From<Input<V>> for Value {
    fn from(i: Input<V>) -> Value {
        i.value
    }
}

impl<V> From<Output<V>> for Input<V> {
    fn from(o: Output<V>) -> Self {
        Input::new(o.into())
    }
}

impl<V> From<&Output<V>> for Input<V> {
    fn from(o: &Output<V>) -> Self {
        Input::new(o.into())
    }
}

impl From<i64> for Input<i64> {
    fn from(i: i64) -> Self {
        Input::new(i.into())
    }
}

impl From<&str> for Input<String> {
    fn from(s: &str) -> Self {
        Input::new(s.into())
    }
}

impl From<String> for Input<String> {
    fn from(s: String) -> Self {
        Input::new(s.into())
    }
}

impl From<&String> for Input<String> {
    fn from(s: &String) -> Self {
        Input::new(s.into())
    }
}

/// Ids, ARNs and names: a literal string is accepted for any kind (it names something declared
/// elsewhere), and the output can be used where any string is wanted.
macro_rules! text_marker {
    ($($marker:ident),*) => {$(
        impl<T> From<&str> for Input<$marker<T>> {
            fn from(s: &str) -> Self {
                Input::new(s.into())
            }
        }
        impl<T> From<String> for Input<$marker<T>> {
            fn from(s: String) -> Self {
                Input::new(s.into())
            }
        }
        impl<T> From<&String> for Input<$marker<T>> {
            fn from(s: &String) -> Self {
                Input::new(s.into())
            }
        }
        impl<T> Output<$marker<T>> {
            /// The same output as a plain string, for a free-form field that takes any text
            /// (an environment variable, a tag).
            pub fn untyped(&self) -> Output<String> {
                Output::from_reference(self.reference.clone())
            }
        }
    )*};
}

text_marker!(Id, Arn, Name);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::dsl::{Address, KindSchema, Ref, ResourceSpec, Stack};

    static NET: KindSchema = KindSchema::new("demo_network", "demo").computed(&["arn", "name"]);
    crate::kind! { struct Net => NET }

    fn net() -> Ref<Net> {
        Stack::new("demo").add(Net(ResourceSpec::new(&NET, "main")))
    }

    fn reference(attribute: &str) -> Value {
        Value::from(Reference {
            address: Address::new("demo_network", "main"),
            attribute: attribute.to_string(),
        })
    }

    #[test]
    fn typed_outputs_are_the_same_references_as_untyped_ones() {
        let n = net();
        assert_eq!(Value::from(n.id()), reference("id"));
        assert_eq!(Value::from(&n.id()), reference("id"));
        assert_eq!(Value::from(n.id()), Value::from(n.output::<String>("id")));
        assert_eq!(Value::from(n.id().untyped()), reference("id"));
        assert_eq!(Value::from(n.output::<Arn<Net>>("arn")), reference("arn"));
        assert_eq!(
            Value::from(n.output::<Name<Net>>("name")),
            reference("name")
        );
        assert_eq!(n.id().reference().to_string(), "demo_network.main.id");
    }

    #[test]
    fn typed_inputs_hold_the_same_values_as_untyped_ones() {
        let n = net();
        let from_output: Input<Id<Net>> = n.id().into();
        let from_ref: Input<Id<Net>> = (&n.id()).into();
        let literal: Input<Id<Net>> = "net-0123".into();
        let owned: Input<Arn<Net>> = String::from("arn:demo:net/main").into();
        assert_eq!(Value::from(from_output), reference("id"));
        assert_eq!(Value::from(from_ref), reference("id"));
        assert_eq!(Value::from(literal), Value::from("net-0123"));
        assert_eq!(Value::from(owned), Value::from("arn:demo:net/main"));
        let untyped: Input<String> = n.id().untyped().into();
        assert_eq!(Value::from(untyped), reference("id"));
    }

    #[test]
    fn typed_values_resolve_exactly_as_before() {
        let n = net();
        let mut spec = ResourceSpec::new(&NET, "other");
        spec.set("typed", n.id())
            .set("untyped", n.output::<String>("id"))
            .set("arn", Input::<Arn<Net>>::from(n.output::<Arn<Net>>("arn")));
        let known = BTreeMap::from([
            ("id".to_string(), Value::from("net-0123")),
            ("arn".to_string(), Value::from("arn:demo:net/main")),
        ]);
        let lookup = |r: &Reference| {
            (r.address == *n.address())
                .then(|| known.get(&r.attribute).cloned())
                .flatten()
        };
        let resolved: BTreeMap<_, _> = spec
            .props
            .iter()
            .map(|(k, v)| (k.as_str(), v.resolve(&lookup)))
            .collect();
        assert_eq!(resolved["typed"], Value::from("net-0123"));
        assert_eq!(resolved["typed"], resolved["untyped"]);
        assert_eq!(resolved["arn"], Value::from("arn:demo:net/main"));
        assert_eq!(
            spec.dependencies().into_iter().collect::<Vec<_>>(),
            vec![n.address().clone()]
        );
    }
}
