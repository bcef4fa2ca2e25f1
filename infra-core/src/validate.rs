//! Validation problems and the helpers kinds use to declare their checks.
//!
//! Validation runs before anything is read or touched. Every problem names the resource address
//! and the field, and all problems are reported at once ([`ValidationErrors`]).

use std::fmt;
use std::net::IpAddr;
use std::sync::Mutex;

use ipnet::IpNet;
use serde::Serialize;

use crate::dsl::{Address, ResourceSpec, Stack};
use crate::hash::HashMap;
use crate::value::Value;

/// One validation problem: which resource, which field, what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
pub struct Problem {
    /// The resource address (`aws_subnet.public-a`), or `stack` for stack-wide problems.
    pub address: String,
    /// The field at fault (`cidr_block`, `name`, `depends_on`, …).
    pub field: String,
    /// What is wrong, and when possible how to fix it.
    pub message: String,
}

impl Problem {
    /// A problem on `address`'s `field`.
    pub fn new(address: &Address, field: &str, message: impl Into<String>) -> Self {
        Problem {
            address: address.to_string(),
            field: field.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: field `{}`: {}",
            self.address, self.field, self.message
        )
    }
}

/// Every problem found in a stack, sorted by address then field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ValidationErrors {
    /// The stack's name.
    pub stack: String,
    /// The problems.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "stack \"{}\" is invalid: {n} problem{} found (nothing was read or changed):",
            self.stack,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// What a kind's validation function can see: the whole stack, by address and by kind.
pub struct ValidationContext<'a> {
    stack: &'a Stack,
    by_address: HashMap<&'a Address, &'a ResourceSpec>,
    by_kind: HashMap<&'a str, Vec<&'a ResourceSpec>>,
    /// Indexes built on first use by [`ValidationContext::earlier_same`] and
    /// [`ValidationContext::earlier_containing`]: per (kind, field, by list element), the
    /// resources of the kind by the JSON text of the field's value (or of each element).
    indexes: Mutex<HashMap<(String, String, bool), FieldIndex<'a>>>,
}

type FieldIndex<'a> = HashMap<String, Vec<&'a ResourceSpec>>;

impl<'a> ValidationContext<'a> {
    /// Indexes a stack (first declaration wins for duplicated addresses).
    pub fn new(stack: &'a Stack) -> Self {
        let mut by_address = HashMap::with_capacity_and_hasher(stack.len(), Default::default());
        let mut by_kind: HashMap<&str, Vec<&ResourceSpec>> = HashMap::default();
        for r in stack.resources() {
            let r: &ResourceSpec = r;
            by_address.entry(&r.address).or_insert(r);
            by_kind.entry(r.schema.kind).or_default().push(r);
        }
        ValidationContext {
            stack,
            by_address,
            by_kind,
            indexes: Mutex::new(HashMap::default()),
        }
    }

    /// The stack being validated.
    pub fn stack(&self) -> &'a Stack {
        self.stack
    }

    /// The resource at an address.
    pub fn get(&self, address: &Address) -> Option<&'a ResourceSpec> {
        self.by_address.get(address).copied()
    }

    /// The resource a property references (`vpc_id` → the VPC).
    pub fn referenced(&self, spec: &ResourceSpec, field: &str) -> Option<&'a ResourceSpec> {
        spec.get(field)
            .and_then(Value::as_ref)
            .and_then(|r| self.get(&r.address))
    }

    /// Every resource of a kind, in declaration order.
    pub fn of_kind(&self, kind: &str) -> &[&'a ResourceSpec] {
        self.by_kind.get(kind).map_or(&[], Vec::as_slice)
    }

    /// The resources of `kind` declared before `spec` whose `field` holds the same value as
    /// `spec`'s (both absent counts as the same), in declaration order: what a check comparing
    /// each resource with every earlier one of its kind looks at, found through an index built
    /// once per kind and field (linear over the stack, where scanning [`Self::of_kind`] for
    /// every resource is quadratic). When `spec` is not in the stack, every such resource.
    pub fn earlier_same(
        &self,
        kind: &str,
        field: &str,
        spec: &ResourceSpec,
    ) -> Vec<&'a ResourceSpec> {
        let mine = spec.get(field);
        self.earlier(kind, field, false, &key(mine), spec, |other| {
            other.get(field) == mine
        })
    }

    /// The resources of `kind` declared before `spec` whose list `field` contains `element`, in
    /// declaration order, through an index by list element built once per kind and field (see
    /// [`Self::earlier_same`]).
    pub fn earlier_containing(
        &self,
        kind: &str,
        field: &str,
        element: &Value,
        spec: &ResourceSpec,
    ) -> Vec<&'a ResourceSpec> {
        self.earlier(kind, field, true, &key(Some(element)), spec, |other| {
            other
                .get(field)
                .and_then(Value::as_list)
                .is_some_and(|l| l.contains(element))
        })
    }

    fn earlier(
        &self,
        kind: &str,
        field: &str,
        elements: bool,
        bucket: &str,
        spec: &ResourceSpec,
        matches: impl Fn(&ResourceSpec) -> bool,
    ) -> Vec<&'a ResourceSpec> {
        let mut indexes = self.indexes.lock().unwrap_or_else(|e| e.into_inner());
        let index = indexes
            .entry((kind.to_string(), field.to_string(), elements))
            .or_insert_with(|| {
                let mut index: FieldIndex<'a> = HashMap::default();
                for &r in self.of_kind(kind) {
                    match r.get(field) {
                        Some(Value::List(l)) if elements => {
                            for e in l {
                                let list = index.entry(key(Some(e))).or_default();
                                if !list.last().is_some_and(|x| std::ptr::eq(*x, r)) {
                                    list.push(r);
                                }
                            }
                        }
                        _ if elements => {}
                        v => index.entry(key(v)).or_default().push(r),
                    }
                }
                index
            });
        let mut out = Vec::new();
        for &other in index.get(bucket).map_or(&[][..], Vec::as_slice) {
            if std::ptr::eq(other, spec) {
                break;
            }
            // The bucket is by JSON text; equality is the values' own.
            if matches(other) {
                out.push(other);
            }
        }
        out
    }
}

/// An index key: the JSON text of a value, or nothing for an absent one.
fn key(v: Option<&Value>) -> String {
    v.map_or_else(String::new, |v| format!("={}", v.to_json()))
}

/// Accumulates the problems of one resource; the helpers record a problem and return `None`
/// when a field is missing or malformed, so a kind's check reads top to bottom.
pub struct Checker<'a> {
    spec: &'a ResourceSpec,
    /// The problems found so far.
    pub problems: Vec<Problem>,
}

impl<'a> Checker<'a> {
    /// Starts checking a resource.
    pub fn new(spec: &'a ResourceSpec) -> Self {
        Checker {
            spec,
            problems: Vec::new(),
        }
    }

    /// Records a problem on `field`.
    pub fn problem(&mut self, field: &str, message: impl Into<String>) {
        self.problems
            .push(Problem::new(&self.spec.address, field, message));
    }

    /// A required field that is present (a reference counts).
    pub fn required(&mut self, field: &str) -> Option<&'a Value> {
        match self.spec.get(field) {
            Some(v) => Some(v),
            None => {
                self.problem(field, "is required");
                None
            }
        }
    }

    /// A required non-empty string; `None` (with a problem) when missing, empty or not a
    /// string, and `None` (without one) when it is a reference resolved only at apply time.
    pub fn required_str(&mut self, field: &str) -> Option<&'a str> {
        match self.required(field)? {
            Value::String(s) if s.trim().is_empty() => {
                self.problem(field, "must not be empty");
                None
            }
            Value::String(s) => Some(s),
            Value::Ref(_) => None,
            other => {
                self.problem(field, format!("must be a string, got {other}"));
                None
            }
        }
    }

    /// A required reference to another resource.
    pub fn required_ref(&mut self, field: &str, what: &str) -> bool {
        match self.spec.get(field) {
            Some(Value::Ref(_)) | Some(Value::String(_)) => true,
            _ => {
                self.problem(field, format!("is required: set it with `.{what}(&…)`"));
                false
            }
        }
    }

    /// An optional integer in `[min, max]`.
    pub fn int_in(&mut self, field: &str, min: i64, max: i64) -> Option<i64> {
        match self.spec.get(field)? {
            Value::Int(i) if (min..=max).contains(i) => Some(*i),
            Value::Int(i) => {
                self.problem(field, format!("{i} is out of range [{min}, {max}]"));
                None
            }
            Value::Ref(_) => None,
            other => {
                self.problem(field, format!("must be an integer, got {other}"));
                None
            }
        }
    }

    /// A CIDR block (IPv4 or IPv6) with no host bits set.
    pub fn cidr(&mut self, field: &str, value: &str) -> Option<IpNet> {
        match check_cidr(value) {
            Ok(net) => Some(net),
            Err(e) => {
                self.problem(field, e);
                None
            }
        }
    }

    /// A port range `from..=to` within 0..=65535 with `from <= to` (`-1` stands for "all" when
    /// `allow_all` is set, as in AWS rules with protocol `-1`).
    pub fn port_range(&mut self, field: &str, from: i64, to: i64) -> bool {
        let mut ok = true;
        for (which, p) in [("from", from), ("to", to)] {
            if !(0..=65535).contains(&p) {
                self.problem(field, format!("{which} port {p} is outside 0-65535"));
                ok = false;
            }
        }
        if ok && from > to {
            self.problem(
                field,
                format!("port range {from}-{to} is reversed (from > to)"),
            );
            ok = false;
        }
        ok
    }

    /// Finishes and returns the problems.
    pub fn finish(self) -> Vec<Problem> {
        self.problems
    }
}

/// Parses a CIDR block, rejecting host bits: `10.0.0.1/16` is an error suggesting `10.0.0.0/16`.
pub fn check_cidr(value: &str) -> Result<IpNet, String> {
    let net: IpNet = value
        .parse()
        .map_err(|_| format!("`{value}` is not a valid CIDR block (expected e.g. 10.0.0.0/16)"))?;
    if net.trunc() != net {
        return Err(format!(
            "`{value}` has host bits set; did you mean `{}`?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// True when two networks share any address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// True when `inner` lies entirely within `outer`.
pub fn within(inner: &IpNet, outer: &IpNet) -> bool {
    outer.contains(inner)
}

/// True for an address or network that is "anywhere" (`0.0.0.0/0`, `::/0`).
pub fn is_anywhere(net: &IpNet) -> bool {
    net.prefix_len() == 0 && matches!(net.network(), IpAddr::V4(_) | IpAddr::V6(_))
}

/// The characters allowed in a logical name.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 64 {
        return Err(format!(
            "`{name}` is {} characters long; the limit is 64",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "`{name}` contains `{c}`; use letters, digits, `-` and `_`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_checks() {
        assert!(check_cidr("10.0.0.0/16").is_ok());
        assert!(check_cidr("10.0.0.1/16")
            .unwrap_err()
            .contains("10.0.0.0/16"));
        assert!(check_cidr("10.0.0.0/33").is_err());
        assert!(check_cidr("banana").is_err());
        let a = check_cidr("10.0.0.0/16").unwrap();
        let b = check_cidr("10.0.1.0/24").unwrap();
        let c = check_cidr("10.1.0.0/24").unwrap();
        assert!(overlaps(&a, &b) && overlaps(&b, &a) && !overlaps(&a, &c));
        assert!(within(&b, &a) && !within(&c, &a));
        assert!(is_anywhere(&check_cidr("0.0.0.0/0").unwrap()));
        assert!(is_anywhere(&check_cidr("::/0").unwrap()));
    }

    #[test]
    fn names() {
        assert!(check_name("public-a").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
    }
}
