//! IAM kinds: managed policies with a typed document builder, roles (assume-role policy, inline
//! and attached policies), instance profiles, groups and users with group membership, and the
//! MFA-required policy.
//!
//! A stack's IAM entities live under the IAM path `/infra/<stack>/` (plus an optional declared
//! sub-path) and are named `<stack>-<name>`. IAM groups can't be tagged, and IAM's batched
//! listing returns no tags for policies and instance profiles: the path is what marks them as
//! owned, and is what a read lists.
//!
//! One module per kind, and one for policy documents (the typed builder and its checks).

mod document;
mod group;
mod instance_profile;
mod policy;
mod role;
mod user;

pub use document::{
    check_document, mfa_required_document, normalise_document, Effect, PolicyDocument, Principal,
    Statement,
};
pub use group::IamGroup;
pub use instance_profile::{InstanceProfile, InstanceProfileOutputs};
pub use policy::{IamPolicy, IamPolicyOutputs};
pub use role::{IamRole, IamRoleOutputs};
pub use user::IamUser;

pub(crate) use group::IAM_GROUP;
pub(crate) use instance_profile::INSTANCE_PROFILE;
pub(crate) use policy::IAM_POLICY;
pub(crate) use role::IAM_ROLE;
pub(crate) use user::IAM_USER;

use infra_core::dsl::ResourceSpec;
use infra_core::validate::{Checker, ValidationContext};
use infra_core::Value;

use super::iam_name_char;

/// Checks the declared IAM sub-path (`/`, `/team/`).
fn check_path(c: &mut Checker<'_>, spec: &ResourceSpec, ctx: &ValidationContext<'_>) {
    let Some(p) = spec.get_str("path") else {
        c.problem("path", "is required");
        return;
    };
    if !p.starts_with('/') || !p.ends_with('/') {
        c.problem("path", format!("`{p}` must start and end with `/`"));
    }
    if p.contains("//") || p.chars().any(|ch| !ch.is_ascii_graphic()) {
        c.problem("path", format!("`{p}` is not a valid IAM path"));
    }
    let full = super::iam_path(ctx.stack().name(), p);
    if full.len() > 512 {
        c.problem(
            "path",
            format!("the IAM path `{full}` is longer than 512 characters"),
        );
    }
}

/// Checks a map of inline policies (name → document).
fn check_inline(c: &mut Checker<'_>, spec: &ResourceSpec) {
    let Some(m) = spec.get("inline_policies").and_then(Value::as_map) else {
        return;
    };
    for (name, doc) in m {
        if name.is_empty() || name.len() > 128 || !name.chars().all(iam_name_char) {
            c.problem(
                "inline_policies",
                format!(
                    "`{name}` is not a valid policy name (1-128 of letters, digits and _+=,.@-)"
                ),
            );
        }
        check_document(c, &format!("inline_policies.{name}"), doc);
    }
}

/// Checks a list of managed policy ARNs.
fn check_policy_arns(c: &mut Checker<'_>, spec: &ResourceSpec) {
    let arns = spec
        .get("managed_policy_arns")
        .and_then(Value::as_list)
        .unwrap_or(&[]);
    if arns.len() > 20 {
        c.problem(
            "managed_policy_arns",
            format!("{} policies attached; AWS allows at most 20", arns.len()),
        );
    }
    for a in arns.iter().filter_map(Value::as_str) {
        if !a.starts_with("arn:") || !a.contains(":policy/") {
            c.problem(
                "managed_policy_arns",
                format!("`{a}` is not a managed policy ARN (arn:aws:iam::…:policy/…)"),
            );
        }
    }
    let mut seen: Vec<String> = arns.iter().map(|v| v.to_json().to_string()).collect();
    let n = seen.len();
    seen.sort();
    seen.dedup();
    if seen.len() != n {
        c.problem("managed_policy_arns", "a policy is attached twice");
    }
}
