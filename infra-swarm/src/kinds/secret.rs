//! `swarm_secret` and `swarm_config`: immutable Swarm objects, rotated by name.
//!
//! Swarm can't change a secret's or a config's content (only its labels), and a service refers
//! to them by id. So a new content is a new object, and the model makes the plan and the
//! reconciler rotate without downtime:
//!
//! * the content field (`value`, `data`) forces replacement;
//! * the Swarm name is derived from the logical name and the content's digest,
//!   `<stack>_<name>_<12 hex digits>`, so the new object can exist beside the old one (Swarm
//!   names are unique);
//! * both kinds are `create_before_destroy` by default, so a replacement plans as `+/-`: create
//!   the new object, update the services that mount it (a rolling update, which the provider
//!   waits for), then delete the old object, which nothing uses any more.
//!
//! A secret's value is a [`Value::Sensitive`]: plans, logs and JSON show only its digest, and the
//! provider stores that digest as the `infra.digest` label so a read can compare it without the
//! value (Swarm never returns secret data). Config data is not secret and is compared as text.

use std::path::Path;

use infra_core::dsl::{KindSchema, ResourceSpec};
use infra_core::kind;
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::value::Sensitive;
use infra_core::Value;

/// Swarm's limit on a secret's size.
pub(crate) const MAX_SECRET_BYTES: usize = 500 * 1024;
/// Swarm's limit on a config's size.
pub(crate) const MAX_CONFIG_BYTES: usize = 1000 * 1024;
/// Hex digits of the content digest in the Swarm name.
pub(crate) const NAME_DIGEST_LEN: usize = 12;

pub(crate) static SECRET: KindSchema = KindSchema::new("swarm_secret", "swarm")
    .move_replaces(
        "its Swarm name is `<stack>_<name>_<digest>`, from its address, and Swarm can't rename a secret",
    )
    .force_new(&["value"])
    .computed(&["id", "name"])
    .sensitive(&["value"])
    .validate(validate_secret)
    .codegen(super::codegen::secret);

pub(crate) static CONFIG: KindSchema = KindSchema::new("swarm_config", "swarm")
    .move_replaces(
        "its Swarm name is `<stack>_<name>_<digest>`, from its address, and Swarm can't rename a config",
    )
    .force_new(&["data"])
    .computed(&["id", "name"])
    .validate(validate_config)
    .codegen(super::codegen::config);

kind! {
    /// A Swarm secret, mounted into services with [`SwarmService::secret`](crate::SwarmService::secret).
    /// The value comes from bytes, a file or an environment variable and is never printed.
    pub struct SwarmSecret => SECRET
}

kind! {
    /// A Swarm config (non-secret file content), mounted with
    /// [`SwarmService::config`](crate::SwarmService::config).
    pub struct SwarmConfig => CONFIG
}

/// Where a problem with the source of a value is recorded until validation reports it. The
/// builders can't fail (they chain), so an unreadable file or a missing variable is kept here.
const SOURCE_ERROR: &str = "source_error";

impl SwarmSecret {
    /// A secret with no value yet (validation requires one). Replaced create-before-destroy.
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&SECRET, name);
        s.options.create_before_destroy = true;
        SwarmSecret(s)
    }
    /// The value, as bytes.
    pub fn value(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.0.props.remove(SOURCE_ERROR);
        self.0
            .set("value", Value::Sensitive(Sensitive::new(bytes.into())));
        self
    }
    /// The value, read now from a file. An unreadable file is reported by validation (its path
    /// and the error, never any content).
    pub fn from_file(self, path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        match std::fs::read(path) {
            Ok(bytes) => self.value(bytes),
            Err(e) => self.source_error(format!("cannot read `{}`: {e}", path.display())),
        }
    }
    /// The value, read now from an environment variable. A missing variable is reported by
    /// validation.
    pub fn from_env(self, var: &str) -> Self {
        match std::env::var_os(var) {
            Some(v) => self.value(v.into_encoded_bytes()),
            None => self.source_error(format!("the environment variable `{var}` is not set")),
        }
    }
    /// A label (labels can change in place).
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0.insert("labels", key, value);
        self
    }
    fn source_error(mut self, message: String) -> Self {
        self.0.props.remove("value");
        self.0.set(SOURCE_ERROR, message);
        self
    }
}

impl SwarmConfig {
    /// A config with no data yet (validation requires some). Replaced create-before-destroy.
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&CONFIG, name);
        s.options.create_before_destroy = true;
        SwarmConfig(s)
    }
    /// The content.
    pub fn data(mut self, text: impl Into<String>) -> Self {
        self.0.props.remove(SOURCE_ERROR);
        self.0.set("data", text.into());
        self
    }
    /// The content, read now from a UTF-8 file; a problem reading it is reported by validation.
    pub fn from_file(mut self, path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        match std::fs::read(path).map(String::from_utf8) {
            Ok(Ok(text)) => self.data(text),
            Ok(Err(_)) => {
                self.0.props.remove("data");
                self.0.set(
                    SOURCE_ERROR,
                    format!(
                        "`{}` is not UTF-8 text; put binary content in a secret",
                        path.display()
                    ),
                );
                self
            }
            Err(e) => {
                self.0.props.remove("data");
                self.0.set(
                    SOURCE_ERROR,
                    format!("cannot read `{}`: {e}", path.display()),
                );
                self
            }
        }
    }
    /// A label (labels can change in place).
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0.insert("labels", key, value);
        self
    }
}

/// The Swarm name of a secret or config: `<stack>_<name>_<first hex digits of the digest>`.
/// The provider's (`live`), and unit-tested with the kinds.
#[cfg(any(feature = "live", test))]
pub(crate) fn swarm_name(stack: &str, name: &str, digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let short: String = hex.chars().take(NAME_DIGEST_LEN).collect();
    format!("{stack}_{name}_{short}")
}

fn check_common(
    c: &mut Checker<'_>,
    spec: &ResourceSpec,
    ctx: &ValidationContext<'_>,
    field: &str,
    len: Option<usize>,
    max: usize,
) {
    if let Some(e) = spec.get_str(SOURCE_ERROR) {
        c.problem(field, e.to_string());
    } else if let Some(n) = len {
        if n == 0 {
            c.problem(field, "is empty; Swarm needs at least one byte");
        } else if n > max {
            c.problem(
                field,
                format!("is {n} bytes; Swarm allows at most {max} bytes"),
            );
        }
    } else if spec.get(field).is_none() {
        c.problem(field, "is required");
    }
    let name_len = ctx.stack().name().len() + spec.address.name().len() + 2 + NAME_DIGEST_LEN;
    if name_len > 64 {
        c.problem(
            "name",
            format!(
                "the Swarm name `<stack>_<name>_<digest>` would be {name_len} characters; Swarm allows 64"
            ),
        );
    }
    if let Some(labels) = spec.get("labels").and_then(Value::as_map) {
        for k in labels.keys().filter(|k| k.starts_with("infra.")) {
            c.problem(
                "labels",
                format!("`{k}`: labels starting with `infra.` are reserved for ownership"),
            );
        }
    }
}

fn validate_secret(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    let len = match spec.get("value") {
        Some(Value::Sensitive(s)) => s.expose().map(<[u8]>::len),
        Some(Value::String(s)) => Some(s.len()),
        _ => None,
    };
    check_common(&mut c, spec, ctx, "value", len, MAX_SECRET_BYTES);
    c.finish()
}

fn validate_config(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    let len = spec.get_str("data").map(str::len);
    check_common(&mut c, spec, ctx, "data", len, MAX_CONFIG_BYTES);
    c.finish()
}
