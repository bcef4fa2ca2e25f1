//! `aws_lambda_permission`: a statement of a function's resource policy.
//!
//! Statements can't be tagged: a statement is the stack's when it is on one of the stack's
//! functions (the listing the function kind makes, shared through [`Listings`]) and its `Sid`
//! is `<stack>-<name>`. A read makes one `GetPolicy` per function of the stack (Lambda has no
//! batched policy read). `AddPermission` refuses a statement id that is taken
//! (`ResourceConflictException`): the provider then finds the statement and converges it (a
//! create whose response was lost). Statements can't be changed: every field forces a
//! replacement, so there is no update beyond what a look-up converges (nothing).

use async_trait::async_trait;
use futures::stream::{StreamExt, TryStreamExt};
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{ErrorClass, Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;

use super::lambda_function::{list_functions, Listed};
use super::{AwsKind, Listings};
use crate::kinds::serverless::LAMBDA_PERMISSION;
use crate::provider::common::{observed_from, opt_str, req_str, Cx, Props};
use crate::provider::errors::{AwsResult, ProviderResult};
use crate::provider::import::{cannot_adopt, discovered, observed_at, Discovery, Unowned};

/// The `aws_lambda_permission` handler.
pub(super) struct LambdaPermission;

impl KindHandler for LambdaPermission {
    fn schema(&self) -> &'static KindSchema {
        &LAMBDA_PERMISSION
    }
}

/// At most this many `GetPolicy` calls at once.
const CONCURRENT_POLICY_READS: usize = 8;

/// A string or the first string of a list (policy fields may be either).
fn first_str(v: &serde_json::Value) -> Option<&str> {
    match v {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Array(a) => a.first().and_then(|x| x.as_str()),
        _ => None,
    }
}

/// The principal as declared: a service name, an account id (AWS stores
/// `arn:aws:iam::<account>:root`), an ARN or `*`.
fn principal(v: &serde_json::Value) -> Option<String> {
    let p = match v {
        serde_json::Value::String(s) => s.as_str(),
        serde_json::Value::Object(o) => o
            .get("Service")
            .or_else(|| o.get("AWS"))
            .and_then(first_str)?,
        _ => return None,
    };
    let account = p
        .strip_prefix("arn:aws:iam::")
        .and_then(|r| r.strip_suffix(":root"))
        .filter(|a| a.len() == 12 && a.chars().all(|c| c.is_ascii_digit()));
    Some(account.unwrap_or(p).to_string())
}

/// The stack's statements on one function.
fn observe_policy(stack: &str, function: &str, policy: &str) -> Vec<Observed> {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(policy) else {
        return Vec::new();
    };
    let prefix = format!("{stack}-");
    let statements = doc
        .get("Statement")
        .and_then(|s| s.as_array())
        .cloned()
        .unwrap_or_default();
    statements
        .iter()
        .filter_map(|st| {
            let sid = st.get("Sid")?.as_str()?;
            let logical = sid.strip_prefix(&prefix)?;
            let condition = st.get("Condition");
            let cond = |op: &str, key: &str| {
                condition
                    .and_then(|c| c.get(op))
                    .and_then(|c| c.get(key))
                    .and_then(first_str)
                    .map(str::to_string)
            };
            let mut props = Props::default();
            props
                .set("function_name", function)
                .set("action", st.get("Action").and_then(first_str))
                .set("principal", st.get("Principal").and_then(principal))
                .set("source_arn", cond("ArnLike", "AWS:SourceArn"))
                .set("source_account", cond("StringEquals", "AWS:SourceAccount"));
            Some(Observed {
                address: Address::new(LAMBDA_PERMISSION.kind, logical),
                id: format!("{function}/{sid}"),
                props: props.0.into(),
                protect: false,
                declared: None,
            })
        })
        .collect()
}

/// Every statement of a function's policy, for import: its id, its properties in the builder's
/// shape and what the builder can't declare of it.
fn all_statements(function: &str, policy: &str) -> Vec<(String, Props, Vec<String>)> {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(policy) else {
        return Vec::new();
    };
    let statements = doc
        .get("Statement")
        .and_then(|s| s.as_array())
        .cloned()
        .unwrap_or_default();
    statements
        .iter()
        .filter_map(|st| {
            let sid = st.get("Sid")?.as_str()?.to_string();
            let condition = st.get("Condition");
            let cond = |op: &str, key: &str| {
                condition
                    .and_then(|c| c.get(op))
                    .and_then(|c| c.get(key))
                    .and_then(first_str)
                    .map(str::to_string)
            };
            let mut notes = Vec::new();
            if let Some(c) = condition.and_then(|c| c.as_object()) {
                for (op, keys) in c {
                    for key in keys.as_object().into_iter().flat_map(|k| k.keys()) {
                        let known = (op == "ArnLike" && key == "AWS:SourceArn")
                            || (op == "StringEquals" && key == "AWS:SourceAccount");
                        if !known {
                            notes.push(format!(
                                "its condition `{op}` on `{key}` has no setter: infra declares a \
                                 source ARN and a source account only"
                            ));
                        }
                    }
                }
            }
            if st.get("Effect").and_then(|e| e.as_str()) == Some("Deny") {
                notes.push("it denies: infra's permissions allow".into());
            }
            let mut props = Props::default();
            props
                .set("function_name", function)
                .set("action", st.get("Action").and_then(first_str))
                .set("principal", st.get("Principal").and_then(principal))
                .set("source_arn", cond("ArnLike", "AWS:SourceArn"))
                .set("source_account", cond("StringEquals", "AWS:SourceAccount"));
            Some((sid, props, notes))
        })
        .collect()
}

/// A function's policy document (`None`: the function or its policy is gone).
async fn policy_of(cx: &Cx<'_>, function: &str) -> Result<Option<String>, ProviderError> {
    Ok(cx
        .c
        .lambda_read
        .get_policy()
        .function_name(function)
        .send()
        .await
        .aws("GetPolicy")
        .or_not_found()?
        .and_then(|p| p.policy().map(str::to_string)))
}

/// The stack's statements on the stack's functions.
async fn read_statements(
    cx: &Cx<'_>,
    functions: &[Listed],
) -> Result<Vec<Observed>, ProviderError> {
    let names: Vec<String> = functions
        .iter()
        .filter_map(|f| f.config.function_name().map(str::to_string))
        .collect();
    let found: Vec<Vec<Observed>> = futures::stream::iter(names)
        .map(|name| async move {
            let policy =
                cx.c.lambda_read
                    .get_policy()
                    .function_name(&name)
                    .send()
                    .await
                    .aws("GetPolicy")
                    .or_not_found()?;
            Ok::<_, ProviderError>(
                policy
                    .and_then(|p| p.policy().map(|p| observe_policy(cx.stack, &name, p)))
                    .unwrap_or_default(),
            )
        })
        .buffered(CONCURRENT_POLICY_READS)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

/// `<function>/<sid>` split.
fn parts(id: &str) -> Result<(&str, &str), ProviderError> {
    id.split_once('/').ok_or_else(|| {
        ProviderError::fatal(
            "InvalidId",
            format!("`{id}` is not `<function>/<statement id>`"),
        )
    })
}

#[async_trait]
impl AwsKind for LambdaPermission {
    /// The statements on the functions this pass handed over (one GetPolicy each, 8 at once:
    /// Lambda has no batched policy read); a statement is named `<function>-<sid>`, which the
    /// name and tag filters apply to (a statement has no tags: a tag filter leaves them all
    /// out). The `vpc` filter already narrowed the functions.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        let functions = pass.functions.clone();
        let policies: Vec<(String, Option<String>)> = futures::stream::iter(functions)
            .map(|f| async move {
                let policy = policy_of(cx, &f).await?;
                Ok::<_, ProviderError>((f, policy))
            })
            .buffered(CONCURRENT_POLICY_READS)
            .try_collect()
            .await?;
        let none = std::collections::BTreeMap::new();
        for (function, policy) in policies {
            let Some(policy) = policy else { continue };
            for (sid, props, notes) in all_statements(&function, &policy) {
                let name = format!("{function}-{sid}");
                if !pass.matches(&name, &none) {
                    continue;
                }
                let mut found = discovered(
                    &LAMBDA_PERMISSION,
                    &format!("{function}/{sid}"),
                    Some(&name),
                    props,
                );
                found.notes = notes;
                pass.object(found);
            }
        }
        Ok(())
    }

    /// The statement `<function>/<sid>` of its function's policy.
    async fn read_unowned(
        &self,
        cx: &Cx<'_>,
        id: &str,
        address: &Address,
    ) -> Result<Option<Observed>, ProviderError> {
        let (function, sid) = parts(id)?;
        let Some(policy) = policy_of(cx, function).await? else {
            return Ok(None);
        };
        Ok(all_statements(function, &policy)
            .into_iter()
            .find(|(s, _, _)| s == sid)
            .map(|(_, props, _)| observed_at(address, id, props, &Unowned::default())))
    }

    /// Refused: a statement can't be tagged, and the stack's statements are told by their id
    /// `<stack>-<name>`, which AWS can't change.
    async fn adopt(
        &self,
        _: &Cx<'_>,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        Err(cannot_adopt(
            LAMBDA_PERMISSION.kind,
            &current.id,
            to,
            "a permission (a statement of the function's resource policy) can't be tagged, and \
             the stack knows its statements by their id `<stack>-<name>`, which AWS can't \
             change: apply the declaration (it adds the stack's statement), then remove this \
             one with `aws lambda remove-permission`",
        ))
    }

    async fn read(&self, cx: &Cx<'_>, listings: &Listings) -> Result<Vec<Observed>, ProviderError> {
        read_statements(cx, listings.lambda_functions(cx).await?).await
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        let functions = list_functions(cx).await?;
        Ok(read_statements(cx, &functions)
            .await?
            .into_iter()
            .find(|o| &o.address == a))
    }

    async fn create(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let function = req_str(d, "function_name")?;
        let sid = cx.physical_name(&d.address);
        cx.c.lambda
            .add_permission()
            .function_name(&function)
            .statement_id(&sid)
            .action(req_str(d, "action")?)
            .principal(req_str(d, "principal")?)
            .set_source_arn(opt_str(d, "source_arn"))
            .set_source_account(opt_str(d, "source_account"))
            .send()
            .await
            .aws("AddPermission")?;
        Ok(observed_from(d, format!("{function}/{sid}"), &[]))
    }

    async fn update(
        &self,
        _: &Cx<'_>,
        _: &OpContext,
        current: &Observed,
        d: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError> {
        // Every field forces a replacement; a look-up's convergence reaches here only when
        // nothing but ignored fields differ.
        if !changed.is_empty() {
            return Err(ProviderError::fatal(
                "Immutable",
                format!(
                    "{}: a Lambda permission can't change in place ({})",
                    d.address,
                    changed.join(", ")
                ),
            ));
        }
        Ok(Observed {
            props: d.props.clone().into(),
            ..current.clone()
        })
    }

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
        let (function, sid) = parts(&current.id)?;
        match cx
            .c
            .lambda
            .remove_permission()
            .function_name(function)
            .statement_id(sid)
            .send()
            .await
            .aws("RemovePermission")
        {
            Ok(_) => Ok(()),
            // The function (and its policy) is gone already: so is the statement.
            Err(e) if e.class == ErrorClass::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn already_exists_codes(&self) -> &'static [&'static str] {
        &["ResourceConflictException"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use infra_core::Value;

    #[test]
    fn statements_of_the_stack_are_read_back_in_the_builder_shape() {
        let policy = r#"{"Version":"2012-10-17","Id":"default","Statement":[
            {"Sid":"s-api","Effect":"Allow","Principal":{"Service":"apigateway.amazonaws.com"},
             "Action":"lambda:InvokeFunction","Resource":"arn:aws:lambda:us-east-1:123456789012:function:s-f",
             "Condition":{"ArnLike":{"AWS:SourceArn":"arn:aws:execute-api:us-east-1:123456789012:abc/*"}}},
            {"Sid":"s-acct","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},
             "Action":"lambda:InvokeFunction","Resource":"x"},
            {"Sid":"by-hand","Effect":"Allow","Principal":"*","Action":"lambda:InvokeFunction","Resource":"x"}
        ]}"#;
        let got = observe_policy("s", "s-f", policy);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].address.to_string(), "aws_lambda_permission.api");
        assert_eq!(got[0].id, "s-f/s-api");
        assert_eq!(
            got[0].props["principal"],
            Value::from("apigateway.amazonaws.com")
        );
        assert_eq!(
            got[0].props["source_arn"],
            Value::from("arn:aws:execute-api:us-east-1:123456789012:abc/*")
        );
        assert_eq!(got[1].props["principal"], Value::from("123456789012"));
        assert!(!got[1].props.contains_key("source_arn"));
    }
}
