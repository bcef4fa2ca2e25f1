//! `aws_lambda_function`: a Lambda function whose code is a zip file built by the project.
//!
//! The code is declared by its file ([`LambdaCode::zip_file`]); the builder reads it once and
//! keeps its digest as AWS computes it (`code_sha256`, the base64 SHA-256 of the zip), which is
//! what plans show and compare: a rebuilt zip with new content is an in-place update
//! (`UpdateFunctionCode`), never a replacement, and never are the bytes in a plan. The path
//! (`code_path`) is carried to the provider for the upload only and never diffed (a moved file
//! with the same content is no change).
//!
//! Environment variables are plain (`environment`, shown in plans) or secret
//! (`secret_environment`: each value a [`Value::Sensitive`], shown and compared by digest only).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use infra_core::dsl::{Arn, Id, Input, KindSchema, Output, Ref, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::value::Sensitive;
use infra_core::{kind, Value};
use sha2::{Digest, Sha256};

use crate::kinds::{check_physical_name, check_tags, IamRole, SecurityGroup, Subnet};

/// The command that builds the project's functions (the zips [`LambdaCode::zip_file`] reads),
/// named by the problem a missing zip reports.
pub const BUILD_FUNCTIONS: &str = "cargo run --example build-functions";

/// The largest zip `CreateFunction` / `UpdateFunctionCode` take inline (`ZipFile`), in bytes.
/// Larger code goes through S3, which this kind does not do.
pub const MAX_ZIP_BYTES: u64 = 50 * 1024 * 1024;
/// The most memory AWS gives a function, in MB (the least is 128).
const MEMORY_RANGE: (i64, i64) = (128, 10_240);
/// AWS's bounds on a function's timeout, in seconds.
const TIMEOUT_RANGE: (i64, i64) = (1, 900);
/// AWS's limit on the environment (keys and values together), in bytes.
const MAX_ENVIRONMENT_BYTES: usize = 4096;
/// Where a problem with the code's source is kept until validation reports it (the builders
/// chain and can't fail).
const CODE_ERROR: &str = "code_error";
/// Where a problem with a secret's source is kept until validation reports it.
const SECRET_ERROR: &str = "secret_environment_error";

/// Environment variables Lambda sets itself and refuses in a function's configuration.
const RESERVED_ENV: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

pub(crate) static LAMBDA_FUNCTION: KindSchema = KindSchema::new("aws_lambda_function", "aws")
    .move_replaces(
        "its AWS name is `<stack>-<name>`, from its address, and AWS can't rename a function",
    )
    .computed(&["id", "arn"])
    .unordered(&["subnet_ids", "security_group_ids"])
    .validate(validate_function)
    .codegen(crate::kinds::codegen::lambda_function);

/// The instruction set a function runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LambdaArchitecture {
    /// x86-64 (AWS's default).
    X86_64,
    /// 64-bit ARM (Graviton).
    Arm64,
}

impl LambdaArchitecture {
    /// The name AWS uses (`x86_64`, `arm64`).
    pub fn api_name(self) -> &'static str {
        match self {
            LambdaArchitecture::X86_64 => "x86_64",
            LambdaArchitecture::Arm64 => "arm64",
        }
    }
}

/// A function's code: a zip file holding the handler (for the `provided.al2023` runtime of a
/// Rust function, an executable named `bootstrap`).
#[derive(Clone, Debug)]
pub struct LambdaCode {
    path: PathBuf,
    digest: Result<String, String>,
}

impl LambdaCode {
    /// The zip at `path`, read now to compute its digest (AWS's `CodeSha256`: the base64 of the
    /// SHA-256 of the file). A missing or unreadable file is reported by validation, with the
    /// command that builds the project's functions; a file over 50 MB too (inline uploads stop
    /// there).
    pub fn zip_file(path: impl AsRef<Path>) -> LambdaCode {
        let path = path.as_ref().to_path_buf();
        let digest = match std::fs::read(&path) {
            Ok(bytes) if bytes.len() as u64 > MAX_ZIP_BYTES => Err(format!(
                "`{}` is {} bytes; a zip uploaded directly holds at most {MAX_ZIP_BYTES}",
                path.display(),
                bytes.len()
            )),
            Ok(bytes) if !bytes.starts_with(b"PK") => {
                Err(format!("`{}` is not a zip file", path.display()))
            }
            Ok(bytes) => Ok(code_sha256(&bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
                "the zip `{}` does not exist: build the functions with `{BUILD_FUNCTIONS}`",
                path.display()
            )),
            Err(e) => Err(format!("cannot read `{}`: {e}", path.display())),
        };
        LambdaCode { path, digest }
    }

    /// The digest AWS reports for this code (`CodeSha256`), when the file could be read.
    pub fn sha256(&self) -> Option<&str> {
        self.digest.as_deref().ok()
    }
}

/// AWS's digest of a function's code: the base64 (standard, padded) of its SHA-256.
pub fn code_sha256(zip: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(zip))
}

kind! {
    /// A Lambda function named `<stack>-<name>` (its id is the name), tagged with the stack,
    /// its code a zip built by the project:
    ///
    /// ```no_run
    /// # use infra_aws::*;
    /// # let mut s = infra_core::Stack::new("prod");
    /// let role = s.add(IamRole::new("ingest").assumed_by_service("lambda.amazonaws.com"));
    /// s.add(
    ///     LambdaFunction::new("analytics-ingest")
    ///         .code(LambdaCode::zip_file("target/lambda/analytics-ingest/bootstrap.zip"))
    ///         .role(role.arn())
    ///         .memory_mb(256)
    ///         .env("ES_URL", "http://elasticsearch.internal:9200")
    ///         .secret_env("ES_PASSWORD", "hunter2"),
    /// );
    /// ```
    ///
    /// The runtime defaults to `provided.al2023` with handler `bootstrap` (a Rust function),
    /// 128 MB, 3 s and x86-64, as AWS's own defaults. A new zip (another digest) or
    /// architecture is `UpdateFunctionCode`; the other fields are `UpdateFunctionConfiguration`;
    /// nothing but the name forces a replacement. In a VPC (`.vpc(subnets, groups)`) the role
    /// needs the ENI permissions (`AWSLambdaVPCAccessExecutionRole`), and a deleted function's
    /// network interfaces take AWS minutes to release, which delays deleting its subnets and
    /// security groups (their deletes retry `DependencyViolation`).
    pub struct LambdaFunction => LAMBDA_FUNCTION
}

impl LambdaFunction {
    /// A function named `<stack>-<name>`, with AWS's defaults for a Rust function.
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&LAMBDA_FUNCTION, name);
        s.set("runtime", "provided.al2023")
            .set("handler", "bootstrap")
            .set("memory_size", 128)
            .set("timeout", 3)
            .set("architecture", LambdaArchitecture::X86_64.api_name());
        s.options.ignore_changes.insert("code_path".to_string());
        LambdaFunction(s)
    }
    /// The code.
    pub fn code(mut self, code: LambdaCode) -> Self {
        self.0.set("code_path", code.path.display().to_string());
        match code.digest {
            Ok(d) => {
                self.0.props.remove(CODE_ERROR);
                self.0.set("code_sha256", d);
            }
            Err(e) => {
                self.0.props.remove("code_sha256");
                self.0.set(CODE_ERROR, e);
            }
        }
        self
    }
    /// The runtime (`provided.al2023`, `python3.12`, …).
    pub fn runtime(mut self, runtime: &str) -> Self {
        self.0.set("runtime", runtime);
        self
    }
    /// The handler (for `provided.*` runtimes, informational: the `bootstrap` executable runs).
    pub fn handler(mut self, handler: &str) -> Self {
        self.0.set("handler", handler);
        self
    }
    /// The execution role: a role of the stack (`role.arn()`) or an ARN.
    pub fn role(mut self, role: impl Into<Input<Arn<IamRole>>>) -> Self {
        self.0.set("role", role.into());
        self
    }
    /// Memory in MB (128–10,240); CPU grows with it.
    pub fn memory_mb(mut self, mb: u32) -> Self {
        self.0.set("memory_size", i64::from(mb));
        self
    }
    /// How long an invocation may run (1 s – 15 min, whole seconds).
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.0.set(
            "timeout",
            i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        );
        self
    }
    /// The instruction set (the zip's binary must be built for it).
    pub fn architecture(mut self, arch: LambdaArchitecture) -> Self {
        self.0.set("architecture", arch.api_name());
        self
    }
    /// The description.
    pub fn description(mut self, text: &str) -> Self {
        self.0.set("description", text);
        self
    }
    /// A plain environment variable (shown in plans); an output of another resource works too
    /// (`bus.arn().untyped()`).
    pub fn env(mut self, key: &str, value: impl Into<Input<String>>) -> Self {
        self.0.insert("environment", key, Value::from(value.into()));
        self
    }
    /// A secret environment variable: plans, logs and errors show only its digest, and the
    /// provider compares the digest of what AWS holds with it (a value changed by hand is
    /// drift, shown redacted). Lambda keeps environment values encrypted at rest with the
    /// account's `aws/lambda` key; anyone allowed `lambda:GetFunction` can read them.
    pub fn secret_env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.0.insert(
            "secret_environment",
            key,
            Value::Sensitive(Sensitive::new(value.into().into_bytes())),
        );
        self
    }
    /// A secret environment variable whose value is read now from an environment variable
    /// of the deploy program; a missing one is reported by validation (its name, never a
    /// value).
    pub fn secret_env_from_env(mut self, key: &str, var: &str) -> Self {
        match std::env::var(var) {
            Ok(v) => self.secret_env(key, v),
            Err(_) => {
                self.0.insert(
                    SECRET_ERROR,
                    key,
                    format!("the environment variable `{var}` is not set (or not UTF-8)"),
                );
                self
            }
        }
    }
    /// Runs the function in a VPC: its network interfaces go in `subnets` (private ones, with
    /// a NAT gateway for the internet) with `groups`.
    pub fn vpc(mut self, subnets: &[&Ref<Subnet>], groups: &[&Ref<SecurityGroup>]) -> Self {
        self.0.set(
            "subnet_ids",
            Value::List(subnets.iter().map(|s| s.id().into()).collect()),
        );
        self.0.set(
            "security_group_ids",
            Value::List(groups.iter().map(|g| g.id().into()).collect()),
        );
        self
    }
    /// A user tag.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.insert("tags", key, value);
        self
    }
}

/// Typed outputs of a function.
pub trait LambdaFunctionOutputs {
    /// The function's ARN (for integrations, rule targets, permissions and IAM policies).
    fn arn(&self) -> Output<Arn<LambdaFunction>>;
    /// The function's name (its id).
    fn name(&self) -> Output<Id<LambdaFunction>>;
}

impl LambdaFunctionOutputs for Ref<LambdaFunction> {
    fn arn(&self) -> Output<Arn<LambdaFunction>> {
        self.output("arn")
    }
    fn name(&self) -> Output<Id<LambdaFunction>> {
        self.id()
    }
}

/// Characters AWS allows in function names (`[a-zA-Z0-9-_]`).
fn function_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn check_env_key(c: &mut Checker<'_>, field: &str, key: &str) {
    let mut chars = key.chars();
    let ok = chars.next().is_some_and(|ch| ch.is_ascii_alphabetic())
        && chars.all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
    if !ok {
        c.problem(
            field,
            format!(
                "`{key}` is not a valid variable name (a letter, then letters, digits and `_`)"
            ),
        );
    }
    if RESERVED_ENV.contains(&key) {
        c.problem(
            field,
            format!("`{key}` is set by Lambda itself and can't be declared"),
        );
    }
}

fn validate_function(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    check_physical_name(&mut c, spec, ctx, "function", 64, function_name_char);
    check_tags(&mut c, spec);
    if let Some(e) = spec.get_str(CODE_ERROR) {
        c.problem("code", e.to_string());
    } else if spec.get("code_sha256").is_none() {
        c.problem(
            "code",
            format!(
                "is required: `.code(LambdaCode::zip_file(path))` (build the functions with `{BUILD_FUNCTIONS}`)"
            ),
        );
    }
    match spec.get("role") {
        Some(Value::Ref(_)) => {}
        Some(Value::String(s)) if s.starts_with("arn:") && s.contains(":role/") => {}
        Some(Value::String(s)) => c.problem("role", format!("`{s}` is not an IAM role ARN")),
        _ => c.problem("role", "is required: `.role(role.arn())`"),
    }
    c.required_str("runtime");
    c.required_str("handler");
    c.int_in("memory_size", MEMORY_RANGE.0, MEMORY_RANGE.1);
    c.int_in("timeout", TIMEOUT_RANGE.0, TIMEOUT_RANGE.1);
    match spec.get_str("architecture") {
        Some("x86_64" | "arm64") => {}
        other => c.problem(
            "architecture",
            format!("{other:?} is not `x86_64` or `arm64`"),
        ),
    }
    if let Some(d) = spec.get_str("description") {
        if d.chars().count() > 256 {
            c.problem("description", "is longer than 256 characters");
        }
    }
    let empty = BTreeMap::new();
    let plain = spec
        .get("environment")
        .and_then(Value::as_map)
        .unwrap_or(&empty);
    let secret = spec
        .get("secret_environment")
        .and_then(Value::as_map)
        .unwrap_or(&empty);
    let mut bytes = 0;
    for (k, v) in plain {
        check_env_key(&mut c, "environment", k);
        match v {
            Value::String(s) => bytes += k.len() + s.len(),
            Value::Ref(_) => bytes += k.len(),
            other => c.problem(
                "environment",
                format!("the value of `{k}` must be a string, got {other}"),
            ),
        }
        if secret.contains_key(k) {
            c.problem(
                "secret_environment",
                format!("`{k}` is declared both plain (`.env`) and secret (`.secret_env`)"),
            );
        }
    }
    for (k, v) in secret {
        check_env_key(&mut c, "secret_environment", k);
        match v {
            Value::Sensitive(s) => bytes += k.len() + s.expose().map_or(0, <[u8]>::len),
            other => c.problem(
                "secret_environment",
                format!(
                    "the value of `{k}` must be a secret (`.secret_env`), got a {}",
                    match other {
                        Value::String(_) => "plain string",
                        _ => "non-string",
                    }
                ),
            ),
        }
    }
    if let Some(errors) = spec.get(SECRET_ERROR).and_then(Value::as_map) {
        for (k, e) in errors {
            c.problem(
                "secret_environment",
                format!("`{k}`: {}", e.as_str().unwrap_or_default()),
            );
        }
    }
    if bytes > MAX_ENVIRONMENT_BYTES {
        c.problem(
            "environment",
            format!(
                "the variables take {bytes} bytes; Lambda allows {MAX_ENVIRONMENT_BYTES} in all"
            ),
        );
    }
    let count = |f: &str| {
        spec.get(f)
            .and_then(Value::as_list)
            .map_or(0, <[Value]>::len)
    };
    match (count("subnet_ids"), count("security_group_ids")) {
        (0, 0) => {}
        (0, _) => c.problem(
            "subnet_ids",
            "security groups without subnets: `.vpc(subnets, groups)` needs both",
        ),
        (_, 0) => c.problem(
            "security_group_ids",
            "subnets without security groups: `.vpc(subnets, groups)` needs both",
        ),
        (s, g) => {
            if s > 16 {
                c.problem("subnet_ids", format!("{s} subnets; Lambda allows 16"));
            }
            if g > 5 {
                c.problem(
                    "security_group_ids",
                    format!("{g} security groups; Lambda allows 5"),
                );
            }
        }
    }
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_aws_code_sha256() {
        // base64(sha256("")) as AWS would report it for empty code.
        assert_eq!(
            code_sha256(b""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn a_missing_zip_says_how_to_build_it() {
        let code = LambdaCode::zip_file("/nonexistent/infra/bootstrap.zip");
        assert!(code.sha256().is_none());
        let err = code.digest.unwrap_err();
        assert!(err.contains(BUILD_FUNCTIONS), "{err}");
        assert!(err.contains("/nonexistent/infra/bootstrap.zip"), "{err}");
    }
}
