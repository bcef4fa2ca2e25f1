//! Outputs (values known only after apply) and builder inputs.

use std::fmt;
use std::marker::PhantomData;

use crate::value::{Reference, Value};

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
    /// The output behind a reference.
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
