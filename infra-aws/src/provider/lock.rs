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
//! Every call is retried here on retryable errors (throttling, 5xx, a lost response): the
//! engine doesn't retry a lock. A `CreatePolicy` whose response was lost finds the lock held by
//! its own holder id on the retry and counts as taken.
//!
//! `unlock` can only check the holder and then delete (IAM has no conditional delete): the lock
//! can change hands in between only through `force-unlock`, which is for holders that are gone.

use std::time::Duration;

use aws_sdk_iam::types::{PolicyScopeType, Tag};
use infra_core::provider::{ErrorClass, LockError, LockInfo, ProviderError};

use super::errors::{AwsResult, ProviderResult};
use super::Clients;

/// The tag on the lock policy naming the stack it locks.
pub const TAG_LOCK: &str = "infra:lock";

/// Attempts of each lock call on retryable errors.
const ATTEMPTS: u32 = 8;

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

/// Runs `f` until it succeeds, fails with a non-retryable error, or `ATTEMPTS` are used.
async fn retrying<T, F, Fut>(what: &str, mut f: F) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f().await {
            Err(e) if e.is_retryable() && attempt < ATTEMPTS => {
                let delay = backoff(attempt);
                tracing::debug!(%what, attempt, error = %e, delay_ms = delay.as_millis() as u64, "lock call failed; retrying");
                tokio::time::sleep(delay).await;
            }
            other => return other,
        }
    }
}

/// 100 ms, 200 ms, … up to 3.2 s, each with up to half of it again as jitter.
fn backoff(attempt: u32) -> Duration {
    let base = 100u64 << attempt.saturating_sub(1).min(5);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    Duration::from_millis(base + nanos % (base / 2 + 1))
}

/// The lock as found: its ARN and holder.
struct Held {
    arn: String,
    info: LockInfo,
}

/// The ARN of the stack's lock policy, if it exists.
async fn find_arn(c: &Clients, stack: &str) -> Result<Option<String>, ProviderError> {
    let name = lock_name(stack);
    let policies = retrying("ListPolicies", || async {
        c.iam_read
            .list_policies()
            .scope(PolicyScopeType::Local)
            .path_prefix(lock_path(stack))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .aws("ListPolicies")
    })
    .await?;
    Ok(policies
        .iter()
        .find(|p| p.policy_name() == Some(name.as_str()) && p.path() == Some(&lock_path(stack)))
        .and_then(|p| p.arn())
        .map(str::to_string))
}

/// The current lock, if any.
async fn held(c: &Clients, stack: &str) -> Result<Option<Held>, ProviderError> {
    let Some(arn) = find_arn(c, stack).await? else {
        return Ok(None);
    };
    let policy = retrying("GetPolicy", || async {
        c.iam_read
            .get_policy()
            .policy_arn(&arn)
            .send()
            .await
            .aws("GetPolicy")
    })
    .await
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

async fn delete(c: &Clients, arn: &str) -> Result<(), ProviderError> {
    retrying("DeletePolicy", || async {
        c.iam
            .delete_policy()
            .policy_arn(arn)
            .send()
            .await
            .aws("DeletePolicy")
            .ok_if(&["NoSuchEntity"])
    })
    .await
}

/// Takes the stack's lock for `info`, or says who holds it.
pub(super) async fn lock(c: &Clients, stack: &str, info: &LockInfo) -> Result<(), LockError> {
    let failed = |error: ProviderError| LockError::Failed {
        stack: stack.to_string(),
        error,
    };
    let description = serde_json::to_string(info).unwrap_or_default();
    let tag = Tag::builder()
        .key(TAG_LOCK)
        .value(stack)
        .build()
        .map_err(|e| failed(ProviderError::fatal("InvalidTag", e.to_string())))?;
    // A few rounds: the holder may release the lock between our refused create and our look
    // at it (and IAM's listing may lag a create by a moment).
    for round in 0..5 {
        if round > 0 {
            tokio::time::sleep(backoff(round)).await;
        }
        let created = retrying("CreatePolicy", || async {
            c.iam
                .create_policy()
                .policy_name(lock_name(stack))
                .path(lock_path(stack))
                .policy_document(DOCUMENT)
                .description(&description)
                .tags(tag.clone())
                .send()
                .await
                .aws("CreatePolicy")
        })
        .await;
        match created {
            Ok(_) => return Ok(()),
            Err(e) if e.code == "EntityAlreadyExists" => match held(c, stack).await {
                // Our own create, whose response was lost before a retry.
                Ok(Some(h)) if h.info.holder == info.holder => return Ok(()),
                Ok(Some(h)) => {
                    return Err(LockError::Held {
                        stack: stack.to_string(),
                        holder: h.info,
                    })
                }
                Ok(None) => continue,
                Err(e) => return Err(failed(e)),
            },
            Err(e) => return Err(failed(e)),
        }
    }
    Err(failed(ProviderError {
        class: ErrorClass::Retryable,
        code: "LockContended".into(),
        message: format!(
            "the lock policy {} was taken and released repeatedly while this run tried to take it",
            lock_name(stack)
        ),
        retry_after: None,
    }))
}

/// Releases the lock if `holder` holds it. Someone else's lock is left alone (an error says so:
/// ours was broken with `force-unlock` while we ran).
pub(super) async fn unlock(c: &Clients, stack: &str, holder: &str) -> Result<(), ProviderError> {
    match held(c, stack).await? {
        None => Ok(()),
        Some(h) if h.info.holder == holder => delete(c, &h.arn).await,
        Some(h) => Err(ProviderError::fatal(
            "LockNotHeld",
            format!(
                "the lock of stack `{stack}` is now held by {}, not by this run ({holder}): it was broken while this run held it; left in place",
                h.info
            ),
        )),
    }
}

/// Breaks the lock whoever holds it; returns who held it.
pub(super) async fn force_unlock(
    c: &Clients,
    stack: &str,
) -> Result<Option<LockInfo>, ProviderError> {
    match held(c, stack).await? {
        None => Ok(None),
        Some(h) => {
            delete(c, &h.arn).await?;
            Ok(Some(h.info))
        }
    }
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

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert!(backoff(1) >= Duration::from_millis(100));
        assert!(backoff(1) <= Duration::from_millis(150));
        assert!(backoff(20) <= Duration::from_millis(4800));
    }
}
