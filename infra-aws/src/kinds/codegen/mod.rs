//! Import's code generators, one per kind ([`infra_core::import::Codegen`]): the builder chain
//! that declares a discovered object, with typed references to the objects imported before it
//! and the builder's defaults left out.
//!
//! Each generator reads the object's properties in the form the kind's read gives (the same
//! form its builder emits), so a chain written here plans as no change but ownership. A
//! reference to an object that was not imported can't be typed: the setter is left out and a
//! comment says what to add. Secrets are never read back: a `from_env` placeholder stands in
//! with a comment.

mod compute;
mod elb;
mod iam;
mod network;
mod serverless;
mod ssm;

use std::collections::BTreeMap;

use infra_core::import::{rust_str, Discovered, Generated, ImportNames};
use infra_core::Value;

pub(crate) use compute::{asg, launch_template, lifecycle_hook, scaling_policy};
pub(crate) use elb::{listener, load_balancer, target_group};
pub(crate) use iam::{iam_group, iam_policy, iam_role, iam_user, instance_profile};
pub(crate) use network::{
    elastic_ip, internet_gateway, nat_gateway, route_table, security_group, subnet, vpc,
};
pub(crate) use serverless::{event_rule, http_api, lambda_function, lambda_permission};
pub(crate) use ssm::ssm_parameter;

/// A builder chain being written.
pub(crate) struct Chain<'a> {
    object: &'a Discovered,
    names: &'a ImportNames,
    type_path: &'static str,
    expr: String,
    comments: Vec<String>,
}

impl<'a> Chain<'a> {
    /// `Type::constructor(args)` for `object`, named by `type_path`'s last segment.
    pub(crate) fn new(
        object: &'a Discovered,
        names: &'a ImportNames,
        type_path: &'static str,
        constructor: &str,
        args: &str,
    ) -> Self {
        let ty = type_path.rsplit("::").next().unwrap_or(type_path);
        // The object's notes are not copied: the module's writer puts them above the chain
        // (copied, every note was written twice).
        Chain {
            object,
            names,
            type_path,
            expr: format!("{ty}::{constructor}({args})"),
            comments: Vec::new(),
        }
    }

    /// `Type::new("name")`.
    pub(crate) fn named(
        object: &'a Discovered,
        names: &'a ImportNames,
        type_path: &'static str,
        name: &str,
    ) -> Self {
        Chain::new(object, names, type_path, "new", &rust_str(name))
    }

    /// A property of the object.
    pub(crate) fn get(&self, field: &str) -> Option<&'a Value> {
        self.object.props.get(field)
    }

    /// A string property.
    pub(crate) fn str(&self, field: &str) -> Option<&'a str> {
        self.get(field).and_then(Value::as_str)
    }

    /// Appends `.method(args)`.
    pub(crate) fn call(&mut self, method: &str, args: &str) -> &mut Self {
        self.expr.push_str(&format!(".{method}({args})"));
        self
    }

    /// Appends `.method("value")` when the property `field` is a string other than `default`.
    pub(crate) fn str_unless(
        &mut self,
        method: &str,
        field: &str,
        default: Option<&str>,
    ) -> &mut Self {
        if let Some(v) = self.str(field) {
            if Some(v) != default {
                let arg = rust_str(v);
                self.call(method, &arg);
            }
        }
        self
    }

    /// A comment line above the chain.
    pub(crate) fn comment(&mut self, line: impl Into<String>) -> &mut Self {
        self.comments.push(line.into());
        self
    }

    /// `&var` for the object `id` of `kind`, or `None` with a comment saying the setter
    /// `method` was left out because the `what` `id` was not imported.
    pub(crate) fn reference(
        &mut self,
        method: &str,
        kind: &str,
        what: &str,
        id: &str,
    ) -> Option<String> {
        match self.names.reference(kind, id) {
            Some(r) => Some(r),
            None => {
                self.comment(format!(
                    "`.{method}(…)` left out: the {what} `{id}` was not imported (import it too, \
                     or declare it, and add the reference)"
                ));
                None
            }
        }
    }

    /// Appends `.method(&var)` for the object of `kind` `field` refers to, or a comment.
    pub(crate) fn reference_to(
        &mut self,
        method: &str,
        kind: &str,
        what: &str,
        field: &str,
    ) -> &mut Self {
        if let Some(id) = self.str(field) {
            if let Some(r) = self.reference(method, kind, what, id) {
                self.call(method, &r);
            }
        }
        self
    }

    /// `.tag(k, v)` for each user tag.
    pub(crate) fn tags(&mut self) -> &mut Self {
        if let Some(tags) = self.get("tags").and_then(Value::as_map) {
            for (k, v) in tags {
                if let Some(v) = v.as_str() {
                    let args = format!("{}, {}", rust_str(k), rust_str(v));
                    self.call("tag", &args);
                }
            }
        }
        self
    }

    /// The finished declaration.
    pub(crate) fn done(&mut self) -> Generated {
        Generated {
            type_path: self.type_path,
            expr: std::mem::take(&mut self.expr),
            comments: std::mem::take(&mut self.comments),
        }
    }
}

/// The strings of a list property.
pub(crate) fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_list)
        .unwrap_or(&[])
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// A raw string literal holding `text` (`r#"…"#`, with as many `#` as it needs).
pub(crate) fn raw_str(text: &str) -> String {
    let mut hashes = 1;
    while text.contains(&format!("\"{}", "#".repeat(hashes))) {
        hashes += 1;
    }
    let h = "#".repeat(hashes);
    format!("r{h}\"{text}\"{h}")
}

/// The compact JSON of a value (a policy document).
pub(crate) fn json(v: &Value) -> String {
    v.to_json().to_string()
}

/// An environment variable name for a secret of the object named `name`: `WEB_USER_DATA`.
pub(crate) fn env_var(name: &str, field: &str) -> String {
    let mut s: String = format!("{name}_{field}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// A map property as `(key, value)` pairs.
pub(crate) fn map_of(v: Option<&Value>) -> BTreeMap<&str, &Value> {
    v.and_then(Value::as_map)
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_strings_outlast_their_content() {
        assert_eq!(raw_str("{\"a\":1}"), "r#\"{\"a\":1}\"#");
        assert_eq!(raw_str("x\"#y"), "r##\"x\"#y\"##");
    }

    #[test]
    fn env_vars_are_upper_snake_case() {
        assert_eq!(env_var("web-node", "user_data"), "WEB_NODE_USER_DATA");
        assert_eq!(env_var("1a", "x"), "_1A_X");
    }
}
