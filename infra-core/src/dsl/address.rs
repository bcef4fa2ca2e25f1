//! Resource addresses: `kind.name`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The logical address of a resource: its kind and its name, written `kind.name`
/// (`aws_vpc.main`). Unique within a stack; stored on every managed object as its ownership id.
///
/// Its parts are shared (`Arc<str>`): an address is cloned into every map and change that
/// names it, and a clone copies two pointers instead of allocating two strings.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address {
    kind: Arc<str>,
    name: Arc<str>,
}

impl Address {
    /// An address from its parts.
    pub fn new(kind: impl Into<String>, name: impl Into<String>) -> Self {
        Address {
            kind: Arc::from(kind.into()),
            name: Arc::from(name.into()),
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
