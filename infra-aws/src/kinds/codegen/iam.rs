//! Code generators of the IAM kinds. Policy documents are written as JSON
//! (`.document_json(r#"…"#)`), normalised by the builder the same way a read normalises them,
//! except a trust policy that only lets one service assume the role
//! (`.assumed_by_service("ec2.amazonaws.com")`).

use infra_core::import::{rust_str, Discovered, Generated, ImportNames};
use infra_core::Value;

use super::{json, map_of, raw_str, strings, Chain};
use crate::kinds::iam::PolicyDocument;

/// The service a trust policy lets assume the role, when that is all it says.
fn only_service(doc: &Value) -> Option<String> {
    let statement = doc.as_map()?.get("Statement")?.as_list()?;
    let [s] = statement else { return None };
    let service = s
        .as_map()?
        .get("Principal")?
        .as_map()?
        .get("Service")?
        .as_list()?;
    let [service] = service else { return None };
    let service = service.as_str()?;
    let typed = PolicyDocument::assume_role_by_service(service).to_value();
    infra_core::plan::values_equal(Some(doc), Some(&typed)).then(|| service.to_string())
}

/// `.attach(&policy)` for imported policies, `.attach_arn("…")` for the others (AWS-managed
/// policies, which import leaves out).
fn attachments(c: &mut Chain<'_>, names: &ImportNames) {
    for arn in strings(c.get("managed_policy_arns")) {
        match names.reference("aws_iam_policy", &arn) {
            Some(r) => c.call("attach", &r),
            None => c.call("attach_arn", &rust_str(&arn)),
        };
    }
}

/// `.inline_policy_json("name", r#"…"#)` for each inline policy.
fn inline_policies(c: &mut Chain<'_>) {
    for (name, doc) in map_of(c.get("inline_policies")) {
        let args = format!("{}, {}", rust_str(name), raw_str(&json(doc)));
        c.call("inline_policy_json", &args);
    }
}

/// `IamPolicy::new(..).description(..).document_json(..)`.
pub(crate) fn iam_policy(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut c = Chain::named(o, names, "infra::aws::IamPolicy", name);
    match c.str("description") {
        Some("Managed by infra") => {}
        Some(d) => {
            let arg = rust_str(d);
            c.call("description", &arg);
        }
        None => {
            c.comment(
                "it has no description; infra's policies always have one (\"Managed by infra\" \
                 unless set)",
            );
        }
    }
    c.str_unless("path", "path", Some("/"));
    if let Some(doc) = c.get("document") {
        let arg = raw_str(&json(doc));
        c.call("document_json", &arg);
    }
    c.done()
}

/// `IamRole::new(..)` with its trust policy, inline policies and attached policies (typed when
/// imported).
pub(crate) fn iam_role(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut c = Chain::named(o, names, "infra::aws::IamRole", name);
    c.str_unless("path", "path", Some("/"));
    if let Some(doc) = c.get("assume_role_policy") {
        match only_service(doc) {
            Some(service) => c.call("assumed_by_service", &rust_str(&service)),
            None => c.call("assume_role_policy_json", &raw_str(&json(doc))),
        };
    }
    inline_policies(&mut c);
    attachments(&mut c, names);
    c.tags().done()
}

/// `InstanceProfile::new(..).role(&role)`.
pub(crate) fn instance_profile(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut c = Chain::named(o, names, "infra::aws::InstanceProfile", name);
    c.reference_to("role", "aws_iam_role", "role", "role")
        .str_unless("path", "path", Some("/"));
    c.done()
}

/// `IamGroup::new(..)` with its policies.
pub(crate) fn iam_group(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut c = Chain::named(o, names, "infra::aws::IamGroup", name);
    c.str_unless("path", "path", Some("/"));
    inline_policies(&mut c);
    attachments(&mut c, names);
    c.done()
}

/// `IamUser::new(..).group(&group)`.
pub(crate) fn iam_user(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut c = Chain::named(o, names, "infra::aws::IamUser", name);
    c.str_unless("path", "path", Some("/"));
    for g in strings(c.get("groups")) {
        if let Some(r) = c.reference("group", "aws_iam_group", "group", &g) {
            c.call("group", &r);
        }
    }
    c.tags().done()
}
