//! The stack's apply lock on AWS: an IAM managed policy named `<stack>.infra-lock` under the
//! stack's IAM path (`/infra/<stack>/`), whose description holds the holder's
//! [`LockInfo`] as JSON and which is tagged `infra:lock=<stack>`.
//!
//! Why an IAM policy:
//! * **Atomic.** `CreatePolicy` either creates the policy or fails with `EntityAlreadyExists`:
//!   policy names are unique in the account, so two runs racing for the lock can't both win,
//!   and the holder is written in the same call (the description can't change afterwards).
//! * **Account-wide, like the stack.** A stack's IAM entities are account-wide (IAM is global),
//!   so two applies of one stack must exclude each other whatever region they work in; an
//!   EC2 object (a security group, a launch template) would only lock one region, and a
//!   security group needs a VPC to live in.
//! * **Free and visible.** IAM policies cost nothing, show in the console next to the stack's
//!   other IAM entities, and can be deleted by hand with the usual IAM permissions.
//! * **Invisible to plans.** The name contains a `.`, which no stack or logical name may
//!   contain, so it never parses as one of the stack's `<stack>-<name>` policies (the IAM read
//!   owns policies by path *and* that name shape), and it can't collide with any stack's
//!   object name. Its document denies one action on a role that doesn't exist, so attaching
//!   it by mistake grants and takes away nothing.
//!
//! This module gives the three primitives (create, read the holder, delete); the protocol on top
//! of them (retries, lost-response recovery, release only by the holder, force-unlock) is
//! infra-core's [`infra_core::lock`]. A `CreatePolicy` whose response was lost finds the lock
//! held by its own holder id and counts as taken.
//!
//! A release can only check the holder and then delete (IAM has no conditional delete): the lock
//! can change hands in between only through force-unlock, which is for holders that are gone.

use aws_sdk_iam::types::{PolicyScopeType, Tag};
use infra_core::lock::Created;
use infra_core::provider::{LockInfo, ProviderError};

use super::errors::{AwsResult, ProviderResult};
use super::Clients;

/// The tag on the lock policy naming the stack it locks.
pub const TAG_LOCK: &str = "infra:lock";

/// The lock policy's document: a deny of one action on a role that doesn't exist.
const DOCUMENT: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"InfraApplyLockGrantsNothing","Effect":"Deny","Action":"iam:PassRole","Resource":"arn:aws:iam::*:role/infra-lock-grants-nothing"}]}"#;

/// The lock policy's name: `<stack>.infra-lock`.
pub fn lock_name(stack: &str) -> String {
    format!("{stack}.infra-lock")
}

/// The lock policy's path: the stack's IAM path.
fn lock_path(stack: &str) -> String {
    crate::kinds::iam_path(stack, "/")
}

/// The lock as found: its ARN and holder.
struct Held {
    arn: String,
    info: LockInfo,
}

/// The ARN of the stack's lock policy, if it exists.
async fn find_arn(c: &Clients, stack: &str) -> Result<Option<String>, ProviderError> {
    let name = lock_name(stack);
    let policies = c
        .iam_read
        .list_policies()
        .scope(PolicyScopeType::Local)
        .path_prefix(lock_path(stack))
        .into_paginator()
        .page_size(1000)
        .items()
        .send()
        .try_collect()
        .await
        .aws("ListPolicies")?;
    Ok(policies
        .iter()
        .find(|p| p.policy_name() == Some(name.as_str()) && p.path() == Some(&lock_path(stack)))
        .and_then(|p| p.arn())
        .map(str::to_string))
}

/// The current lock, if any.
/// The lock policies' ARNs this provider has seen, by stack. A managed policy's ARN is its
/// account, path and name (`arn:aws:iam::<account>:policy/infra/<stack>/<stack>.infra-lock`),
/// so it stays right when the lock is released and taken again, by any run: a lock found
/// once (or created here) is read with one `GetPolicy`, without the `ListPolicies` that finds
/// it. Saves one call, and one round trip, of every release.
pub(super) type KnownArns = std::sync::Mutex<std::collections::BTreeMap<String, String>>;

fn known(arns: &KnownArns, stack: &str) -> Option<String> {
    arns.lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(stack)
        .cloned()
}

fn remember(arns: &KnownArns, stack: &str, arn: &str) {
    arns.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(stack.to_string(), arn.to_string());
}

async fn held(c: &Clients, arns: &KnownArns, stack: &str) -> Result<Option<Held>, ProviderError> {
    let arn = match known(arns, stack) {
        Some(arn) => arn,
        None => {
            let Some(arn) = find_arn(c, stack).await? else {
                return Ok(None);
            };
            remember(arns, stack, &arn);
            arn
        }
    };
    let policy = c
        .iam_read
        .get_policy()
        .policy_arn(&arn)
        .send()
        .await
        .aws("GetPolicy")
        .or_not_found()?;
    let Some(policy) = policy.and_then(|o| o.policy) else {
        // Released between the listing and the look.
        return Ok(None);
    };
    let description = policy.description().unwrap_or("");
    let info = serde_json::from_str(description).unwrap_or_else(|_| LockInfo {
        holder: format!("unknown (unreadable lock description {description:?})"),
        since_unix: policy
            .create_date()
            .map(|d| d.secs().max(0) as u64)
            .unwrap_or(0),
        operation: "unknown".into(),
    });
    Ok(Some(Held { arn, info }))
}

/// Creates the lock policy holding `info` (atomic: policy names are unique in the account).
pub(super) async fn create(
    c: &Clients,
    arns: &KnownArns,
    stack: &str,
    info: &LockInfo,
) -> Result<Created, ProviderError> {
    let description = serde_json::to_string(info).unwrap_or_default();
    let tag = Tag::builder()
        .key(TAG_LOCK)
        .value(stack)
        .build()
        .map_err(|e| ProviderError::fatal("InvalidTag", e.to_string()))?;
    match c
        .iam
        .create_policy()
        .policy_name(lock_name(stack))
        .path(lock_path(stack))
        .policy_document(DOCUMENT)
        .description(&description)
        .tags(tag)
        .send()
        .await
        .aws("CreatePolicy")
    {
        Ok(out) => {
            if let Some(arn) = out.policy().and_then(|p| p.arn()) {
                remember(arns, stack, arn);
            }
            Ok(Created::Created)
        }
        Err(e) if e.code == "EntityAlreadyExists" => Ok(Created::Exists),
        Err(e) => Err(e),
    }
}

/// Who holds the lock.
pub(super) async fn read(
    c: &Clients,
    arns: &KnownArns,
    stack: &str,
) -> Result<Option<LockInfo>, ProviderError> {
    Ok(held(c, arns, stack).await?.map(|h| h.info))
}

/// Deletes the lock policy; a lock that is gone counts as deleted.
pub(super) async fn delete(
    c: &Clients,
    arns: &KnownArns,
    stack: &str,
) -> Result<(), ProviderError> {
    let Some(h) = held(c, arns, stack).await? else {
        return Ok(());
    };
    c.iam
        .delete_policy()
        .policy_arn(&h.arn)
        .send()
        .await
        .aws("DeletePolicy")
        .ok_if(&["NoSuchEntity"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_name_is_no_stack_object_name() {
        // Stack and logical names are `[a-z0-9-]` / `[A-Za-z0-9_-]`: no `.`.
        assert_eq!(lock_name("prod"), "prod.infra-lock");
        assert!(!lock_name("infra").starts_with("infra-"));
        assert_eq!(lock_path("prod"), "/infra/prod/");
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        assert_eq!(doc["Statement"][0]["Effect"], "Deny");
    }
}
