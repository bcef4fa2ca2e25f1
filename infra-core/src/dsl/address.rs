//! Resource addresses: `kind.name`.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use serde::{Deserialize, Serialize};

/// The logical address of a resource: its kind and its name, written `kind.name`
/// (`aws_vpc.main`). Unique within a stack; stored on every managed object as its ownership id.
///
/// Its parts are shared (`Arc<str>`): an address is cloned into every map and change that
/// names it, and a clone copies two pointers instead of allocating two strings. Kinds are
/// interned: the addresses of one kind share one string, so comparing two of them (what every
/// map keyed by address does, most often between addresses of one kind) compares the names only.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address {
    kind: Arc<str>,
    name: Arc<str>,
}

impl Address {
    /// An address from its parts.
    pub fn new(kind: impl Into<String>, name: impl Into<String>) -> Self {
        Address::of(&kind.into(), &name.into())
    }
    /// [`Address::new`] from borrowed parts, without first making owned strings of them.
    pub(crate) fn of(kind: &str, name: &str) -> Self {
        Address {
            kind: intern(kind),
            name: Arc::from(name),
        }
    }
    /// The address of the same kind named `name` (sharing the kind's string).
    pub(crate) fn renamed(&self, name: &str) -> Self {
        Address {
            kind: self.kind.clone(),
            name: Arc::from(name),
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

/// The shared string of `kind`. The kinds interned are few (a stack's kinds); past
/// [`MAX_KINDS`] (addresses parsed from arbitrary text), a kind gets its own string.
fn intern(kind: &str) -> Arc<str> {
    static KINDS: LazyLock<RwLock<HashSet<Arc<str>, foldhash::fast::FixedState>>> =
        LazyLock::new(Default::default);
    if let Some(k) = KINDS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(kind)
    {
        return k.clone();
    }
    let mut kinds = KINDS.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(k) = kinds.get(kind) {
        return k.clone();
    }
    let k: Arc<str> = Arc::from(kind);
    if kinds.len() < MAX_KINDS {
        kinds.insert(k.clone());
    }
    k
}

/// How many kinds [`intern`] keeps.
const MAX_KINDS: usize = 4096;

/// Two kinds' order: equal at once when they are one interned string.
fn cmp_kinds(a: &Arc<str>, b: &Arc<str>) -> Ordering {
    if Arc::ptr_eq(a, b) {
        Ordering::Equal
    } else {
        a.cmp(b)
    }
}

impl PartialEq for Address {
    fn eq(&self, other: &Self) -> bool {
        cmp_kinds(&self.kind, &other.kind) == Ordering::Equal && self.name == other.name
    }
}

impl Eq for Address {}

impl Ord for Address {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_kinds(&self.kind, &other.kind).then_with(|| self.name.cmp(&other.name))
    }
}

impl PartialOrd for Address {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash for Address {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As the derived `Hash` of the two fields did (equal addresses: equal strings).
        self.kind.hash(state);
        self.name.hash(state);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_or_not_addresses_compare_as_their_parts() {
        let a = Address::new("t_net", "a");
        let b = Address::new(String::from("t_net"), "b");
        assert!(Arc::ptr_eq(&a.kind, &b.kind), "one kind, one string");
        // A kind that was not interned (as past MAX_KINDS) compares by its text.
        let c = Address {
            kind: Arc::from("t_net"),
            name: Arc::from("a"),
        };
        assert_eq!(a, c);
        assert_eq!(a.cmp(&c), Ordering::Equal);
        let mut all = [
            Address::new("t_sub", "a"),
            b.clone(),
            Address::new("t_net", "c"),
            c.clone(),
            Address::new("t_ne", "z"),
        ];
        all.sort();
        let text: Vec<(String, String)> = all
            .iter()
            .map(|x| (x.kind().to_string(), x.name().to_string()))
            .collect();
        let mut by_parts = text.clone();
        by_parts.sort();
        assert_eq!(text, by_parts);
        assert_eq!(all[0].kind(), "t_ne");
        let hash = |x: &Address| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            x.hash(&mut h);
            h.finish()
        };
        assert_eq!(hash(&a), hash(&c));
    }
}
