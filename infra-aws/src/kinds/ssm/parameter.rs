//! `aws_ssm_parameter`: a Systems Manager Parameter Store parameter.
//!
//! A parameter has a type fixed at construction: [`SsmParameter::string`],
//! [`SsmParameter::string_list`] or [`SsmParameter::secure_string`]. A plain value is the field
//! `value` (shown in plans); a `SecureString`'s value is the field `secure_value`, a
//! [`Value::Sensitive`]: plans, logs, JSON and errors show only its digest (`sha256:…`), and the
//! provider compares the digest of what it reads back (decrypted, never kept) with the declared
//! one, so a changed secret, also one changed by hand, is a planned update shown redacted.

use std::path::Path;

use infra_core::dsl::{Arn, KindSchema, Output, Ref, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::value::Sensitive;
use infra_core::{kind, Value};

use crate::kinds::check_tags;

/// The type of a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SsmParameterType {
    /// Plain text.
    String,
    /// Comma-separated plain text items.
    StringList,
    /// Text encrypted with KMS (the account's `alias/aws/ssm` key): a secret.
    SecureString,
}

impl SsmParameterType {
    /// The name AWS uses.
    pub fn api_name(self) -> &'static str {
        match self {
            SsmParameterType::String => "String",
            SsmParameterType::StringList => "StringList",
            SsmParameterType::SecureString => "SecureString",
        }
    }
}

/// The largest value of a standard-tier parameter, in bytes.
pub(crate) const MAX_VALUE_BYTES: usize = 4096;
/// The longest parameter name AWS allows (the fully qualified name), in characters.
const MAX_NAME: usize = 1011;
/// The deepest hierarchy AWS allows (levels of `/`).
const MAX_DEPTH: usize = 15;
/// Where a problem with the source of a value is kept until validation reports it (the
/// builders chain and can't fail).
const SOURCE_ERROR: &str = "source_error";

pub(crate) static SSM_PARAMETER: KindSchema = KindSchema::new("aws_ssm_parameter", "aws")
    .force_new(&["name", "type"])
    .computed(&["id", "arn"])
    .sensitive(&["secure_value"])
    .validate(validate_parameter)
    .codegen(crate::kinds::codegen::ssm_parameter);

kind! {
    /// A Systems Manager Parameter Store parameter (standard tier), tagged with the stack like
    /// every AWS object. Its id is its name (`/infra/prod/db-password`); changing the name or the
    /// type replaces it.
    ///
    /// ```
    /// # use infra_aws::SsmParameter;
    /// # let mut s = infra_core::Stack::new("prod");
    /// s.add(SsmParameter::string("region", "/infra/prod/region").value("us-east-1"));
    /// s.add(SsmParameter::string_list("zones", "/infra/prod/zones").values(["a", "b", "c"]));
    /// s.add(SsmParameter::secure_string("db-password", "/infra/prod/db-password").from_env("DB_PASSWORD"));
    /// ```
    ///
    /// A `SecureString`'s value is never printed: plans show `(sensitive, sha256:…)`, and a new
    /// value is an update shown the same way. Create is `PutParameter` without overwrite (a
    /// parameter of that name that isn't the stack's is refused, never overwritten).
    pub struct SsmParameter => SSM_PARAMETER
}

impl SsmParameter {
    fn typed(name: &str, parameter_name: &str, t: SsmParameterType) -> Self {
        let mut s = ResourceSpec::new(&SSM_PARAMETER, name);
        s.set("name", parameter_name).set("type", t.api_name());
        SsmParameter(s)
    }
    /// A plain `String` parameter at `parameter_name` (a path starting with `/`).
    pub fn string(name: &str, parameter_name: &str) -> Self {
        SsmParameter::typed(name, parameter_name, SsmParameterType::String)
    }
    /// A `StringList` parameter (items without commas) at `parameter_name`.
    pub fn string_list(name: &str, parameter_name: &str) -> Self {
        SsmParameter::typed(name, parameter_name, SsmParameterType::StringList)
    }
    /// A `SecureString` parameter (a secret) at `parameter_name`.
    pub fn secure_string(name: &str, parameter_name: &str) -> Self {
        SsmParameter::typed(name, parameter_name, SsmParameterType::SecureString)
    }

    fn is_secure(&self) -> bool {
        self.0.get_str("type") == Some(SsmParameterType::SecureString.api_name())
    }

    /// The value. A `SecureString`'s is kept as a secret (digested everywhere but in the API
    /// call); a `StringList`'s is split at commas (as AWS stores it).
    pub fn value(mut self, text: impl Into<String>) -> Self {
        let text = text.into();
        self.0.props.remove(SOURCE_ERROR);
        if self.is_secure() {
            self.0.props.remove("value");
            self.0
                .set("secure_value", Value::Sensitive(Sensitive::new(text)));
        } else if self.0.get_str("type") == Some(SsmParameterType::StringList.api_name()) {
            self.0.set(
                "value",
                Value::List(text.split(',').map(Value::from).collect()),
            );
        } else {
            self.0.set("value", text);
        }
        self
    }
    /// The items of a `StringList`.
    pub fn values<S: Into<String>>(mut self, items: impl IntoIterator<Item = S>) -> Self {
        self.0.props.remove(SOURCE_ERROR);
        self.0.set(
            "value",
            Value::List(items.into_iter().map(|i| Value::from(i.into())).collect()),
        );
        self
    }
    /// The value, read now from an environment variable (UTF-8). A missing variable is
    /// reported by validation (its name, never a value).
    pub fn from_env(self, var: &str) -> Self {
        match std::env::var(var) {
            Ok(v) => self.value(v),
            Err(std::env::VarError::NotPresent) => {
                self.source_error(format!("the environment variable `{var}` is not set"))
            }
            Err(std::env::VarError::NotUnicode(_)) => self.source_error(format!(
                "the environment variable `{var}` is not UTF-8 text (parameter values are text)"
            )),
        }
    }
    /// The value, read now from a UTF-8 file. A problem reading it is reported by validation
    /// (the path and the error, never any content).
    pub fn from_file(self, path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        match std::fs::read(path).map(String::from_utf8) {
            Ok(Ok(text)) => self.value(text),
            Ok(Err(_)) => self.source_error(format!(
                "`{}` is not UTF-8 text (parameter values are text)",
                path.display()
            )),
            Err(e) => self.source_error(format!("cannot read `{}`: {e}", path.display())),
        }
    }
    /// The description.
    pub fn description(mut self, text: &str) -> Self {
        self.0.set("description", text);
        self
    }
    /// A user tag.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.insert("tags", key, value);
        self
    }
    fn source_error(mut self, message: String) -> Self {
        self.0.props.remove("value");
        self.0.props.remove("secure_value");
        self.0.set(SOURCE_ERROR, message);
        self
    }
}

/// Typed outputs of a parameter.
pub trait SsmParameterOutputs {
    /// The parameter's ARN, for IAM policies.
    fn arn(&self) -> Output<Arn<SsmParameter>>;
}

impl SsmParameterOutputs for Ref<SsmParameter> {
    fn arn(&self) -> Output<Arn<SsmParameter>> {
        self.output("arn")
    }
}

/// Checks a parameter name: a path of `/`-separated levels of `[a-zA-Z0-9_.-]`.
fn check_name(c: &mut Checker<'_>, name: &str) {
    if !name.starts_with('/') {
        c.problem(
            "name",
            format!("`{name}` must start with `/` (a path such as `/infra/<stack>/<name>`)"),
        );
        return;
    }
    if name.chars().count() > MAX_NAME {
        c.problem(
            "name",
            format!(
                "is {} characters long; AWS allows {MAX_NAME}",
                name.chars().count()
            ),
        );
    }
    if let Some(bad) = name
        .chars()
        .find(|ch| !(ch.is_ascii_alphanumeric() || "_.-/".contains(*ch)))
    {
        c.problem(
            "name",
            format!("`{name}` contains `{bad}`; use letters, digits, `_`, `.`, `-` and `/`"),
        );
    }
    let levels: Vec<&str> = name[1..].split('/').collect();
    if levels.iter().any(|l| l.is_empty()) {
        c.problem(
            "name",
            format!("`{name}` has an empty level (`//` or a trailing `/`)"),
        );
    }
    if levels.len() > MAX_DEPTH {
        c.problem(
            "name",
            format!(
                "`{name}` has {} levels; AWS allows {MAX_DEPTH}",
                levels.len()
            ),
        );
    }
    let first = levels[0].to_ascii_lowercase();
    if first.starts_with("aws") || first.starts_with("ssm") {
        c.problem(
            "name",
            format!("`{name}`: names beginning with `aws` or `ssm` are reserved by AWS"),
        );
    }
}

fn validate_parameter(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    check_tags(&mut c, spec);
    if let Some(name) = c.required_str("name") {
        check_name(&mut c, name);
        // The second declaration of a name is the mistake (the first is reported by nothing).
        let earlier = ctx
            .of_kind(SSM_PARAMETER.kind)
            .iter()
            .take_while(|o| o.address != spec.address)
            .find(|o| o.get_str("name") == Some(name));
        if let Some(first) = earlier {
            c.problem(
                "name",
                format!("`{name}` is also the name of {}", first.address),
            );
        }
    }
    let field = match spec.get_str("type") {
        Some("String") => "value",
        Some("StringList") => "value",
        Some("SecureString") => "secure_value",
        Some(other) => {
            c.problem(
                "type",
                format!("`{other}` is not String, StringList or SecureString"),
            );
            return c.finish();
        }
        None => {
            c.problem("type", "is required");
            return c.finish();
        }
    };
    if let Some(message) = spec.get_str(SOURCE_ERROR) {
        c.problem(field, message.to_string());
        return c.finish();
    }
    let secure = field == "secure_value";
    // Never a secret's value in plain text, nor a plain value on a secret parameter.
    if secure && spec.get("value").is_some() {
        c.problem(
            "value",
            "a SecureString's value goes in `secure_value` (set it with `.value(…)`)",
        );
    }
    if !secure && spec.get("secure_value").is_some() {
        c.problem(
            "secure_value",
            "only a SecureString parameter has a secure value",
        );
    }
    let bytes = match (spec.get_str("type"), spec.get(field)) {
        (_, None) => {
            c.problem(
                field,
                "is required: set it with `.value(…)` (or `.from_env`, `.from_file`)",
            );
            None
        }
        (Some("SecureString"), Some(Value::Sensitive(s))) => s.expose().map(<[u8]>::len),
        (Some("SecureString"), Some(Value::String(s))) => Some(s.len()),
        (Some("String"), Some(Value::String(s))) => Some(s.len()),
        (Some("StringList"), Some(Value::List(items))) if items.is_empty() => {
            c.problem(field, "a StringList needs at least one item");
            None
        }
        (Some("StringList"), Some(Value::List(items))) => {
            let mut total = items.len().saturating_sub(1);
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some("") => c.problem(field, format!("item {i} is empty")),
                    Some(s) if s.contains(',') => c.problem(
                        field,
                        format!("item {i} contains `,`, which separates StringList items"),
                    ),
                    Some(s) => total += s.len(),
                    None => c.problem(field, format!("item {i} is not a string")),
                }
            }
            Some(total)
        }
        (Some("StringList"), Some(_)) => {
            c.problem(field, "a StringList's value is a list of strings");
            None
        }
        (_, Some(Value::Ref(_))) => None,
        (_, Some(_)) => {
            c.problem(field, "must be a string");
            None
        }
    };
    match bytes {
        Some(0) => c.problem(field, "must not be empty"),
        Some(n) if n > MAX_VALUE_BYTES => c.problem(
            field,
            format!("is {n} bytes long; a standard parameter holds {MAX_VALUE_BYTES}"),
        ),
        _ => {}
    }
    if let Some(d) = spec.get_str("description") {
        if d.chars().count() > 1024 {
            c.problem("description", "is longer than 1,024 characters");
        }
    }
    c.finish()
}
