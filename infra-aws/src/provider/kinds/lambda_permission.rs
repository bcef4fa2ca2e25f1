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
                props: props.0,
                protect: false,
                declared: None,
            })
        })
        .collect()
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
            props: d.props.clone(),
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
