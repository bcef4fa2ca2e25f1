//! [`Props`]: an observed object's properties, shared between whoever holds them.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::value::Value;

/// The properties of an observed object ([`Observed::props`](super::Observed::props)): a
/// `BTreeMap<String, Value>` behind an `Arc`, read through `Deref` as the map itself and copied
/// only when changed while shared (`DerefMut`, [`Arc::make_mut`]). A provider that keeps what it
/// read (the sandbox's state) hands out the same maps instead of a copy of each: a fresh
/// process planning against a journal held it twice in memory, and copying it was a tenth of
/// the plan's instructions.
#[derive(Clone, Default, PartialEq)]
pub struct Props(Arc<BTreeMap<String, Value>>);

impl Props {
    /// An empty map.
    pub fn new() -> Self {
        Props::default()
    }

    /// The map itself: moved out when nothing else shares it, else copied.
    pub fn into_inner(self) -> BTreeMap<String, Value> {
        Arc::try_unwrap(self.0).unwrap_or_else(|shared| (*shared).clone())
    }
}

impl Deref for Props {
    type Target = BTreeMap<String, Value>;
    fn deref(&self) -> &BTreeMap<String, Value> {
        &self.0
    }
}

impl DerefMut for Props {
    fn deref_mut(&mut self) -> &mut BTreeMap<String, Value> {
        Arc::make_mut(&mut self.0)
    }
}

impl AsRef<BTreeMap<String, Value>> for Props {
    fn as_ref(&self) -> &BTreeMap<String, Value> {
        &self.0
    }
}

impl From<BTreeMap<String, Value>> for Props {
    fn from(map: BTreeMap<String, Value>) -> Self {
        Props(Arc::new(map))
    }
}

impl From<Props> for BTreeMap<String, Value> {
    fn from(props: Props) -> Self {
        props.into_inner()
    }
}

impl FromIterator<(String, Value)> for Props {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Props(Arc::new(iter.into_iter().collect()))
    }
}

impl<'a> IntoIterator for &'a Props {
    type Item = (&'a String, &'a Value);
    type IntoIter = std::collections::btree_map::Iter<'a, String, Value>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for Props {
    type Item = (String, Value);
    type IntoIter = std::collections::btree_map::IntoIter<String, Value>;
    fn into_iter(self) -> Self::IntoIter {
        self.into_inner().into_iter()
    }
}

impl PartialEq<BTreeMap<String, Value>> for Props {
    fn eq(&self, other: &BTreeMap<String, Value>) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<Props> for BTreeMap<String, Value> {
    fn eq(&self, other: &Props) -> bool {
        *self == *other.0
    }
}

impl fmt::Debug for Props {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Props {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Props {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(d).map(Props::from)
    }
}
