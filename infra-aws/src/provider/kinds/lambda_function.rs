//! `aws_lambda_function`: a Lambda function with its code from a zip.
//!
//! * **Read.** `ListFunctions` (paginated, 50 a page) lists the account's functions with their
//!   configuration but without tags; Lambda has no tag filter and no batched tag read of its
//!   own (the Resource Groups Tagging API's `GetResources` has one, a crate this provider does
//!   not use), so the functions named `<stack>-…` get a `ListTags` each (bounded concurrency)
//!   and only those whose tags say they are the stack's are kept. Other stacks' and hand-made
//!   functions cost nothing past the listing. The code is observed by its digest
//!   (`CodeSha256`); secret environment values are digested at once and their plain text
//!   dropped (which keys are secret is the `infra:secret-env` tag, names only).
//! * **Create** is `CreateFunction` with every tag in the same call; a name that is taken
//!   answers `ResourceConflictException` and the provider then finds the function by its tags
//!   (a create whose response was lost) or refuses it (someone else's). Then it waits for the
//!   function to be `Active`.
//! * **Update**: a new digest or architecture is `UpdateFunctionCode` (with the zip read again
//!   and checked against the planned digest), other fields are `UpdateFunctionConfiguration`;
//!   each waits for `LastUpdateStatus` to leave `InProgress` first and after (Lambda refuses an
//!   update while another is in progress). Tags: `TagResource` / `UntagResource`.
//! * **Delete** is `DeleteFunction` (its resource policy goes with it).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture, Environment, FunctionCode, FunctionConfiguration, LastUpdateStatus, PackageType,
    Runtime, State, VpcConfig,
};
use futures::stream::{StreamExt, TryStreamExt};
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::retry::{poll, Probe};
use infra_core::value::{digest_of, Sensitive};
use infra_core::Value;

use super::{AwsKind, Listings};
use crate::kinds::serverless::{code_sha256, LAMBDA_FUNCTION};
use crate::provider::common::{
    all_tags, observed_from, opt_str, ownership, req_i64, req_str, str_list, tag_diff,
    updated_from, Cx, Ownership, Props,
};
use crate::provider::errors::{AwsResult, ProviderResult};
use crate::provider::import::{
    cannot_adopt, discovered, observed_at, ownership_tags, Discovery, Unowned,
};

/// The `aws_lambda_function` handler.
pub(super) struct LambdaFunction;

impl KindHandler for LambdaFunction {
    fn schema(&self) -> &'static KindSchema {
        &LAMBDA_FUNCTION
    }
}

/// The tag listing a function's secret environment keys (comma-separated, sorted): how a read
/// knows which values to digest. Names only, never a value.
pub(crate) const TAG_SECRET_ENV: &str = "infra:secret-env";
/// ListFunctions' largest page.
const FUNCTION_PAGE: i32 = 50;
/// At most this many `ListTags` calls at once.
const CONCURRENT_TAG_READS: usize = 8;
/// Configuration fields (`UpdateFunctionConfiguration`).
const CONFIG_FIELDS: &[&str] = &[
    "runtime",
    "handler",
    "role",
    "memory_size",
    "timeout",
    "description",
    "environment",
    "secret_environment",
    "subnet_ids",
    "security_group_ids",
];

/// A function of the stack as listed: its configuration and its tags.
#[derive(Clone, Debug)]
pub(crate) struct Listed {
    pub(crate) config: FunctionConfiguration,
    pub(crate) tags: HashMap<String, String>,
    pub(crate) owned: Ownership,
}

/// The stack's functions: `ListFunctions`, then `ListTags` for those named `<stack>-…`.
pub(crate) async fn list_functions(cx: &Cx<'_>) -> Result<Vec<Listed>, ProviderError> {
    let pages: Vec<_> =
        cx.c.lambda_read
            .list_functions()
            .max_items(FUNCTION_PAGE)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .aws("ListFunctions")?;
    let prefix = format!("{}-", cx.stack);
    let candidates: Vec<FunctionConfiguration> = pages
        .iter()
        .flat_map(|p| p.functions().iter())
        .filter(|f| f.function_name().is_some_and(|n| n.starts_with(&prefix)))
        .cloned()
        .collect();
    let tagged: Vec<Option<Listed>> = futures::stream::iter(candidates)
        .map(|config| async move {
            let Some(arn) = config.function_arn() else {
                return Ok(None);
            };
            let tags =
                cx.c.lambda_read
                    .list_tags()
                    .resource(arn)
                    .send()
                    .await
                    .aws("ListTags")
                    .or_not_found()?
                    .and_then(|o| o.tags().cloned())
                    .unwrap_or_default();
            let owned = ownership(
                cx.stack,
                LAMBDA_FUNCTION.kind,
                tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
            Ok::<_, ProviderError>(owned.map(|owned| Listed {
                config,
                tags,
                owned,
            }))
        })
        .buffered(CONCURRENT_TAG_READS)
        .try_collect()
        .await?;
    Ok(tagged.into_iter().flatten().collect())
}

/// The observation of a function, in the builder's shape.
fn observe(l: &Listed) -> Option<Observed> {
    let name = l.config.function_name()?;
    let secret_keys: Vec<&str> = l
        .tags
        .get(TAG_SECRET_ENV)
        .map(|k| k.split(',').filter(|k| !k.is_empty()).collect())
        .unwrap_or_default();
    Some(function_props(&l.config, &secret_keys, &l.owned.user).observed(l.owned.clone(), name))
}

/// A function's properties in the builder's shape; the values of `secret_keys` by digest only.
fn function_props(
    f: &FunctionConfiguration,
    secret_keys: &[&str],
    user: &BTreeMap<String, String>,
) -> Props {
    let mut plain = BTreeMap::new();
    let mut secret = BTreeMap::new();
    if let Some(vars) = f.environment().and_then(|e| e.variables()) {
        for (k, v) in vars {
            if secret_keys.contains(&k.as_str()) {
                secret.insert(
                    k.clone(),
                    Value::Sensitive(Sensitive::from_digest(digest_of(v.as_bytes()))),
                );
            } else {
                plain.insert(k.clone(), Value::from(v.as_str()));
            }
        }
    }
    let mut props = Props::default();
    props
        .set("runtime", f.runtime().map(|r| r.as_str()))
        .set("handler", f.handler())
        .set("role", f.role())
        .set("memory_size", f.memory_size().map(i64::from))
        .set("timeout", f.timeout().map(i64::from))
        .set(
            "architecture",
            f.architectures().first().map_or("x86_64", |a| a.as_str()),
        )
        .set("description", f.description().filter(|d| !d.is_empty()))
        .set("code_sha256", f.code_sha256())
        .set("arn", f.function_arn())
        .tags(user);
    if !plain.is_empty() {
        props.set("environment", Value::Map(plain));
    }
    if !secret.is_empty() {
        props.set("secret_environment", Value::Map(secret));
    }
    if let Some(vpc) = f.vpc_config() {
        if !vpc.subnet_ids().is_empty() {
            props.strs("subnet_ids", vpc.subnet_ids().iter().cloned());
            props.strs(
                "security_group_ids",
                vpc.security_group_ids().iter().cloned(),
            );
        }
    }
    props
}

/// The environment to send: plain and secret values together (the secrets' plain text known
/// only to this process), and the secret keys.
fn environment(d: &Resolved) -> Result<(HashMap<String, String>, Vec<String>), ProviderError> {
    let mut vars = HashMap::new();
    if let Some(m) = d.get("environment").and_then(Value::as_map) {
        for (k, v) in m {
            let v = v.as_str().ok_or_else(|| {
                ProviderError::fatal(
                    "InvalidValue",
                    format!("{}: environment `{k}` is not a string", d.address),
                )
            })?;
            vars.insert(k.clone(), v.to_string());
        }
    }
    let mut keys = Vec::new();
    if let Some(m) = d.get("secret_environment").and_then(Value::as_map) {
        for (k, v) in m {
            let plain = match v {
                Value::Sensitive(s) => s.expose(),
                _ => None,
            }
            .ok_or_else(|| {
                ProviderError::fatal(
                    "SecretUnknown",
                    format!(
                        "{}: only the digest of secret_environment `{k}` is known to this process; declare the value",
                        d.address
                    ),
                )
            })?;
            let text = String::from_utf8(plain.to_vec()).map_err(|_| {
                ProviderError::fatal(
                    "InvalidValue",
                    format!("{}: secret_environment `{k}` is not UTF-8 text", d.address),
                )
            })?;
            vars.insert(k.clone(), text);
            keys.push(k.clone());
        }
    }
    keys.sort();
    Ok((vars, keys))
}

/// An error with every secret value replaced (AWS's messages carry no request parameters,
/// but a validation message echoing one must not leak it either).
fn redacted(mut e: ProviderError, d: &Resolved) -> ProviderError {
    if let Some(m) = d.get("secret_environment").and_then(Value::as_map) {
        for v in m.values() {
            if let Value::Sensitive(s) = v {
                if let Some(plain) = s.expose().and_then(|p| std::str::from_utf8(p).ok()) {
                    if !plain.is_empty() {
                        e.message = e.message.replace(plain, "(sensitive)");
                    }
                }
            }
        }
    }
    e
}

/// The zip's bytes, checked against the digest the plan was made with (a zip rebuilt between
/// the plan and the apply would deploy code nobody reviewed).
fn zip_bytes(d: &Resolved) -> Result<Vec<u8>, ProviderError> {
    let path = req_str(d, "code_path")?;
    let want = req_str(d, "code_sha256")?;
    let bytes = std::fs::read(&path).map_err(|e| {
        ProviderError::fatal(
            "CodeUnreadable",
            format!(
                "{}: cannot read `{path}`: {e} (build the functions with `{}`)",
                d.address,
                crate::kinds::BUILD_FUNCTIONS
            ),
        )
    })?;
    let got = code_sha256(&bytes);
    if got != want {
        return Err(ProviderError::fatal(
            "CodeChanged",
            format!(
                "{}: `{path}` changed since the plan (digest {got}, planned {want}): plan again",
                d.address
            ),
        ));
    }
    Ok(bytes)
}

fn architecture(d: &Resolved) -> Architecture {
    Architecture::from(opt_str(d, "architecture").as_deref().unwrap_or("x86_64"))
}

fn vpc_config(d: &Resolved) -> VpcConfig {
    // An empty configuration takes a function out of its VPC.
    VpcConfig::builder()
        .set_subnet_ids(Some(str_list(d, "subnet_ids")))
        .set_security_group_ids(Some(str_list(d, "security_group_ids")))
        .build()
}

fn to_i32(d: &Resolved, field: &str) -> Result<i32, ProviderError> {
    i32::try_from(req_i64(d, field)?).map_err(|_| {
        ProviderError::fatal(
            "InvalidValue",
            format!("{}: `{field}` is out of range", d.address),
        )
    })
}

/// Waits until the function accepts another change: created (`State` not `Pending`) and no
/// update in progress. A failed create or update is an error with Lambda's reason.
async fn wait_ready(cx: &Cx<'_>, name: &str) -> Result<(), ProviderError> {
    let what = format!("Lambda function {name} to be ready");
    poll(&what, cx.waits, || async {
        let f =
            cx.c.lambda_read
                .get_function_configuration()
                .function_name(name)
                .send()
                .await
                .aws("GetFunctionConfiguration")?;
        if f.state() == Some(&State::Failed) {
            return Err(ProviderError::fatal(
                "FunctionFailed",
                format!(
                    "Lambda function {name} failed: {}",
                    f.state_reason().unwrap_or("no reason given")
                ),
            ));
        }
        if f.last_update_status() == Some(&LastUpdateStatus::Failed) {
            return Err(ProviderError::fatal(
                "FunctionUpdateFailed",
                format!(
                    "the last update of Lambda function {name} failed: {}",
                    f.last_update_status_reason().unwrap_or("no reason given")
                ),
            ));
        }
        match (f.state(), f.last_update_status()) {
            (Some(State::Pending), _) => Ok(Probe::Waiting("Pending".into())),
            (_, Some(LastUpdateStatus::InProgress)) => {
                Ok(Probe::Waiting("update InProgress".into()))
            }
            _ => Ok(Probe::Done(())),
        }
    })
    .await
}

/// Whether an environment variable's name says it holds a secret: import never writes its
/// value into the module (it is digested like a declared secret's).
fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "KEY",
        "CREDENTIAL",
        "PRIVATE",
        "AUTH",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// The secret keys of a function for import: those its `infra:secret-env` tag names and those
/// whose name says they are secrets.
fn import_secret_keys<'a>(f: &'a FunctionConfiguration, tags: &'a Unowned) -> Vec<&'a str> {
    let mut keys: Vec<&str> = tags
        .all
        .get(TAG_SECRET_ENV)
        .map(|k| k.split(',').filter(|k| !k.is_empty()).collect())
        .unwrap_or_default();
    if let Some(vars) = f.environment().and_then(|e| e.variables()) {
        keys.extend(vars.keys().map(String::as_str).filter(|k| looks_secret(k)));
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// What the builder can't declare of a function (for import), each with the reason.
fn import_notes(f: &FunctionConfiguration) -> Vec<String> {
    let mut notes = vec![format!(
        "its code can't be read back into the module: build the function's zip (CodeSha256 \
         `{}`) and point `.code(…)` at it; a zip with other content is uploaded as new code",
        f.code_sha256().unwrap_or("?")
    )];
    if !f.layers().is_empty() {
        notes.push(format!(
            "it uses {} layer(s): infra declares functions without layers (an update keeps them)",
            f.layers().len()
        ));
    }
    if f.dead_letter_config()
        .is_some_and(|d| d.target_arn().is_some())
    {
        notes.push("it has a dead-letter queue: infra doesn't declare one".into());
    }
    if !f.file_system_configs().is_empty() {
        notes.push("it mounts EFS file systems: infra doesn't declare them".into());
    }
    if f.ephemeral_storage().is_some_and(|e| e.size() != 512) {
        notes.push("its ephemeral storage isn't 512 MB: infra doesn't declare it".into());
    }
    notes
}

#[async_trait]
impl AwsKind for LambdaFunction {
    /// Pages of 50 from ListFunctions (Lambda's largest), a ListTags per function (8 at once;
    /// Lambda has no batched tag read). The name filter applies to the function's name, the
    /// `vpc` filter to its VPC configuration (a function outside any VPC is left out when it is
    /// set). Container-image functions are listed as inexpressible. Environment variables the
    /// `infra:secret-env` tag names, or whose names say they are secrets (`…PASSWORD…`,
    /// `…TOKEN…`, `…KEY…`), are kept by digest only and written as `secret_env_from_env`.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        let mut pages =
            cx.c.lambda_read
                .list_functions()
                .max_items(FUNCTION_PAGE)
                .into_paginator()
                .send();
        while let Some(page) = pages.next().await {
            let page = page.aws("ListFunctions")?;
            let listed: Vec<FunctionConfiguration> = page
                .functions()
                .iter()
                .filter(|f| {
                    f.function_name()
                        .is_some_and(|n| pass.filter.name_matches(n))
                        && pass.in_vpc(
                            f.vpc_config()
                                .and_then(|v| v.vpc_id())
                                .filter(|v| !v.is_empty()),
                        )
                })
                .cloned()
                .collect();
            let tagged: Vec<(FunctionConfiguration, Option<HashMap<String, String>>)> =
                futures::stream::iter(listed)
                    .map(|config| async move {
                        let arn = config.function_arn().unwrap_or_default().to_string();
                        let tags =
                            cx.c.lambda_read
                                .list_tags()
                                .resource(arn)
                                .send()
                                .await
                                .aws("ListTags")
                                .or_not_found()?
                                .map(|o| o.tags().cloned().unwrap_or_default());
                        Ok::<_, ProviderError>((config, tags))
                    })
                    .buffered(CONCURRENT_TAG_READS)
                    .try_collect()
                    .await?;
            for (f, tags) in tagged {
                let Some(tags) =
                    tags.and_then(|t| Unowned::of(t.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
                else {
                    continue;
                };
                let name = f.function_name().unwrap_or_default();
                if !pass.matches(name, &tags.all) {
                    continue;
                }
                if f.package_type() == Some(&PackageType::Image) {
                    pass.inexpressible(
                        "Lambda function",
                        name,
                        "its code is a container image: infra declares functions whose code is a zip",
                    );
                    continue;
                }
                let keys = import_secret_keys(&f, &tags);
                let props = function_props(&f, &keys, &tags.user);
                let mut found = discovered(
                    &LAMBDA_FUNCTION,
                    name,
                    tags.name.as_deref().or(Some(name)),
                    props,
                );
                found.aliases.extend(f.function_arn().map(str::to_string));
                found.notes = import_notes(&f);
                pass.functions.push(name.to_string());
                pass.object(found);
            }
        }
        Ok(())
    }

    /// GetFunction: its configuration and tags.
    async fn read_unowned(
        &self,
        cx: &Cx<'_>,
        id: &str,
        address: &Address,
    ) -> Result<Option<Observed>, ProviderError> {
        let Some(out) =
            cx.c.lambda_read
                .get_function()
                .function_name(id)
                .send()
                .await
                .aws("GetFunction")
                .or_not_found()?
        else {
            return Ok(None);
        };
        let Some(f) = out.configuration() else {
            return Ok(None);
        };
        let raw = out.tags().cloned().unwrap_or_default();
        let tags = Unowned::parse(raw.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let keys = import_secret_keys(f, &tags);
        let props = function_props(f, &keys, &tags.user);
        Ok(Some(observed_at(address, id, props, &tags)))
    }

    /// TagResource: `infra:stack`, `infra:id` and, when import kept environment values as
    /// secrets, `infra:secret-env` naming their keys (what the stack's read digests). Refused
    /// for a function whose name isn't `<stack>-…`: the stack's read lists its functions by
    /// that prefix (Lambda has no tag filter), so it would never find the function again.
    async fn adopt(
        &self,
        cx: &Cx<'_>,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        if !current.id.starts_with(&format!("{}-", cx.stack)) {
            return Err(cannot_adopt(
                LAMBDA_FUNCTION.kind,
                &current.id,
                to,
                &format!(
                    "the stack's read finds its functions by the name prefix `{}-` (Lambda has \
                     no tag filter) and a function can't be renamed: declare a new function \
                     instead, or adopt it into a stack named after its prefix",
                    cx.stack
                ),
            ));
        }
        let arn = current
            .props
            .get("arn")
            .and_then(Value::as_str)
            .unwrap_or(&current.id)
            .to_string();
        let mut tags: HashMap<String, String> = ownership_tags(cx, to).into_iter().collect();
        if let Some(m) = current
            .props
            .get("secret_environment")
            .and_then(Value::as_map)
        {
            let keys: Vec<&str> = m.keys().map(String::as_str).collect();
            tags.insert(TAG_SECRET_ENV.to_string(), keys.join(","));
        }
        cx.c.lambda
            .tag_resource()
            .resource(arn)
            .set_tags(Some(tags))
            .send()
            .await
            .aws("TagResource")?;
        Ok(Observed {
            address: to.clone(),
            ..current.clone()
        })
    }

    async fn read(&self, cx: &Cx<'_>, listings: &Listings) -> Result<Vec<Observed>, ProviderError> {
        Ok(listings
            .lambda_functions(cx)
            .await?
            .iter()
            .filter_map(observe)
            .collect())
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        // One function, by its name: GetFunction returns its tags too.
        let name = cx.physical_name(a);
        let Some(out) =
            cx.c.lambda_read
                .get_function()
                .function_name(&name)
                .send()
                .await
                .aws("GetFunction")
                .or_not_found()?
        else {
            return Ok(None);
        };
        let tags = out.tags().cloned().unwrap_or_default();
        let Some(owned) = ownership(
            cx.stack,
            LAMBDA_FUNCTION.kind,
            tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .filter(|o| &o.address == a) else {
            return Ok(None);
        };
        let Some(config) = out.configuration().cloned() else {
            return Ok(None);
        };
        Ok(observe(&Listed {
            config,
            tags,
            owned,
        }))
    }

    async fn create(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let name = cx.physical_name(&d.address);
        let zip = zip_bytes(d)?;
        let (vars, secret_keys) = environment(d)?;
        let mut tags: HashMap<String, String> = all_tags(cx.stack, d).into_iter().collect();
        if !secret_keys.is_empty() {
            tags.insert(TAG_SECRET_ENV.to_string(), secret_keys.join(","));
        }
        let out =
            cx.c.lambda
                .create_function()
                .function_name(&name)
                .runtime(Runtime::from(req_str(d, "runtime")?.as_str()))
                .handler(req_str(d, "handler")?)
                .role(req_str(d, "role")?)
                .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
                .memory_size(to_i32(d, "memory_size")?)
                .timeout(to_i32(d, "timeout")?)
                .architectures(architecture(d))
                .set_description(opt_str(d, "description"))
                .environment(Environment::builder().set_variables(Some(vars)).build())
                .vpc_config(vpc_config(d))
                .set_tags(Some(tags))
                .publish(false)
                .send()
                .await
                .aws("CreateFunction")
                .map_err(|e| redacted(e, d))?;
        wait_ready(cx, &name).await?;
        Ok(observed_from(
            d,
            name,
            &[("arn", Value::from(out.function_arn()))],
        ))
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        current: &Observed,
        d: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError> {
        let name = current.id.clone();
        let has = |f: &str| changed.iter().any(|c| c == f);
        if has("code_sha256") || has("architecture") {
            let zip = zip_bytes(d)?;
            wait_ready(cx, &name).await?;
            cx.c.lambda
                .update_function_code()
                .function_name(&name)
                .zip_file(Blob::new(zip))
                .architectures(architecture(d))
                .send()
                .await
                .aws("UpdateFunctionCode")?;
        }
        if CONFIG_FIELDS.iter().any(|f| has(f)) {
            let (vars, _) = environment(d)?;
            wait_ready(cx, &name).await?;
            cx.c.lambda
                .update_function_configuration()
                .function_name(&name)
                .runtime(Runtime::from(req_str(d, "runtime")?.as_str()))
                .handler(req_str(d, "handler")?)
                .role(req_str(d, "role")?)
                .memory_size(to_i32(d, "memory_size")?)
                .timeout(to_i32(d, "timeout")?)
                // An update keeps nothing it isn't given: send the description, even empty.
                .description(opt_str(d, "description").unwrap_or_default())
                .environment(Environment::builder().set_variables(Some(vars)).build())
                .vpc_config(vpc_config(d))
                .send()
                .await
                .aws("UpdateFunctionConfiguration")
                .map_err(|e| redacted(e, d))?;
        }
        let arn = current
            .props
            .get("arn")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                ProviderError::fatal("MissingArn", format!("{}: no ARN observed", d.address))
            })?;
        let mut diff = tag_diff(current, d);
        let (_, secret_keys) = environment(d)?;
        let had: Vec<String> = current
            .props
            .get("secret_environment")
            .and_then(Value::as_map)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        if secret_keys != had {
            if secret_keys.is_empty() {
                diff.remove.push(TAG_SECRET_ENV.to_string());
            } else {
                diff.set
                    .push((TAG_SECRET_ENV.to_string(), secret_keys.join(",")));
            }
        }
        if !diff.set.is_empty() {
            cx.c.lambda
                .tag_resource()
                .resource(&arn)
                .set_tags(Some(diff.set.into_iter().collect()))
                .send()
                .await
                .aws("TagResource")?;
        }
        if !diff.remove.is_empty() {
            cx.c.lambda
                .untag_resource()
                .resource(&arn)
                .set_tag_keys(Some(diff.remove))
                .send()
                .await
                .aws("UntagResource")?;
        }
        wait_ready(cx, &name).await?;
        Ok(updated_from(current, d))
    }

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
        cx.c.lambda
            .delete_function()
            .function_name(&current.id)
            .send()
            .await
            .aws("DeleteFunction")?;
        Ok(())
    }

    fn already_exists_codes(&self) -> &'static [&'static str] {
        &["ResourceConflictException"]
    }
}
