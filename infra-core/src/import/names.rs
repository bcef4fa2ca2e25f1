//! Names for imported objects: address names that pass validation and Rust variables that are
//! valid identifiers, both unique and stable for the same input.

use std::collections::{HashMap, HashSet};

/// Rust's keywords (strict and reserved, 2021 edition): never a variable name.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "if", "impl", "in",
    "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "union", "unsafe", "unsized", "use", "virtual", "where", "while", "yield", "gen",
];

/// The longest address name written (the validation limit is 64; room is left for a suffix).
const MAX_NAME: usize = 56;

/// The names given so far: address names per kind, variables (with the kind each was given to).
#[derive(Debug, Default)]
pub(super) struct Namer {
    addresses: HashSet<(String, String)>,
    vars: HashMap<String, String>,
}

/// `aws_security_group` → `security_group`: the kind without its provider's prefix.
pub(super) fn kind_short(kind: &str) -> &str {
    kind.split_once('_').map_or(kind, |(_, rest)| rest)
}

/// `name` as an address name: letters, digits, `-` and `_`; other characters become `-`,
/// repeated `-` collapse; empty becomes `fallback`.
pub(super) fn address_name(name: &str, fallback: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            c
        } else {
            '-'
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.len() > MAX_NAME {
        out.truncate(MAX_NAME);
        while out.ends_with('-') {
            out.pop();
        }
    }
    if out.is_empty() {
        fallback.to_string()
    } else {
        out
    }
}

/// `words` in snake case: ASCII letters lowercased, digits kept, everything else one `_`.
fn snake(words: &str) -> String {
    let mut out = String::with_capacity(words.len());
    let mut prev_lower = false;
    for c in words.chars() {
        if c.is_ascii_alphanumeric() {
            // `publicSubnet` → `public_subnet`
            if c.is_ascii_uppercase() && prev_lower && !out.ends_with('_') {
                out.push('_');
            }
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            out.push(c.to_ascii_lowercase());
        } else {
            prev_lower = false;
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// A Rust identifier for an object of `kind` called `name`: `<kind>_<name>` in snake case,
/// never a keyword, never starting with a digit.
pub(super) fn variable(kind: &str, name: &str) -> String {
    let kind = snake(kind_short(kind));
    let name = snake(name);
    let mut var = match (kind.is_empty(), name.is_empty()) {
        (true, true) => "object".to_string(),
        (true, false) => name,
        (false, true) => kind,
        (false, false) => format!("{kind}_{name}"),
    };
    if var.starts_with(|c: char| c.is_ascii_digit()) {
        var.insert_str(0, "r_");
    }
    if KEYWORDS.contains(&var.as_str()) {
        var.push('_');
    }
    var
}

impl Namer {
    /// A unique address name for an object of `kind` called `name` (a `-2`, `-3`, … suffix
    /// when taken by the same kind), and a variable unique across kinds: `_2`, `_3`, … when the
    /// same kind took it; when another kind did (`aws_config` and `swarm_config` both write
    /// `config_<name>`), the provider's prefix first (`config_web_swarm`), so that a variable
    /// doesn't change with the order in which kinds are discovered.
    pub(super) fn name(&mut self, kind: &str, name: &str) -> (String, String) {
        let base = address_name(name, kind_short(kind));
        let mut address = base.clone();
        let mut n = 1;
        while !self.addresses.insert((kind.to_string(), address.clone())) {
            n += 1;
            address = format!("{base}-{n}");
        }
        let mut base = variable(kind, &address);
        if self.vars.get(&base).is_some_and(|k| k != kind) {
            let provider = snake(kind.split_once('_').map_or(kind, |(p, _)| p));
            base = format!("{base}_{provider}");
        }
        let mut var = base.clone();
        let mut n = 1;
        while self.vars.contains_key(&var) {
            n += 1;
            var = format!("{base}_{n}");
        }
        self.vars.insert(var.clone(), kind.to_string());
        (address, var)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_unique_and_stable() {
        assert_eq!(address_name("web/app: prod", "x"), "web-app-prod");
        assert_eq!(address_name("...", "vpc"), "vpc");
        assert_eq!(
            variable("aws_security_group", "Web-App"),
            "security_group_web_app"
        );
        assert_eq!(
            variable("aws_subnet", "publicSubnetA"),
            "subnet_public_subnet_a"
        );
        assert_eq!(variable("x_type", ""), "type_");
        assert_eq!(variable("x_1st", ""), "r_1st");
        let mut a = Namer::default();
        let mut b = Namer::default();
        for namer in [&mut a, &mut b] {
            assert_eq!(
                namer.name("aws_vpc", "main"),
                ("main".into(), "vpc_main".into())
            );
            assert_eq!(
                namer.name("aws_vpc", "main"),
                ("main-2".into(), "vpc_main_2".into())
            );
            // Another kind may reuse the address name.
            assert_eq!(
                namer.name("aws_subnet", "main"),
                ("main".into(), "subnet_main".into())
            );
        }
        let long = "a".repeat(100);
        let (address, _) = a.name("aws_vpc", &long);
        assert!(crate::validate::check_name(&address).is_ok());
    }
}
