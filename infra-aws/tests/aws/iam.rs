//! IAM kinds on moto: managed policies (documents as versions), roles with trust, inline and
//! attached policies, instance profiles, groups with the MFA-required policy, users with group
//! membership.

use infra_aws::*;
use infra_core::dsl::Stack;
use infra_core::plan::Action;
use infra_core::Value;

use crate::support::{
    action, apply, assert_noop, destroy, fields, moto, observed, plan, unique, Moto,
};

const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";

struct Shape {
    extra_action: bool,
    inline_action: &'static str,
    role_path: &'static str,
    user_path: &'static str,
    policy_description: &'static str,
    with_bob: bool,
}

fn stack(name: &str, shape: &Shape) -> Stack {
    let mut s = Stack::new(name);
    let mut actions = vec!["ec2:DescribeInstances"];
    if shape.extra_action {
        actions.push("autoscaling:DescribeAutoScalingGroups");
    }
    let node = s.add(
        IamPolicy::new("node")
            .description(shape.policy_description)
            .document(
                PolicyDocument::new().statement(
                    Statement::allow()
                        .sid("Peers")
                        .actions(actions)
                        .resources(["*"]),
                ),
            ),
    );
    let role = s.add(
        IamRole::new("node")
            .path(shape.role_path)
            .assumed_by_service("ec2.amazonaws.com")
            .inline_policy(
                "logs",
                PolicyDocument::new().statement(
                    Statement::allow()
                        .actions([shape.inline_action])
                        .resources(["*"]),
                ),
            )
            .attach(&node)
            .attach_arn(READ_ONLY)
            .tag("team", "platform"),
    );
    let profile = s.add(InstanceProfile::new("node").role(&role));
    s.add(
        LaunchTemplate::new("node")
            .image("ami-12c6146b")
            .instance_type("t3.micro")
            .instance_profile(&profile),
    );
    let mfa = s.add(IamPolicy::mfa_required("mfa"));
    let humans = s.add(IamGroup::new("humans").attach(&mfa));
    s.add(
        IamUser::new("alice")
            .path(shape.user_path)
            .group(&humans)
            .tag("team", "ops"),
    );
    if shape.with_bob {
        s.add(IamUser::new("bob").group(&humans));
    }
    s
}

async fn default_version(m: &Moto, arn: &str) -> (usize, String) {
    let out = m
        .iam
        .list_policy_versions()
        .policy_arn(arn)
        .send()
        .await
        .unwrap();
    let default = out
        .versions()
        .iter()
        .find(|v| v.is_default_version())
        .and_then(|v| v.version_id())
        .unwrap_or_default()
        .to_string();
    (out.versions().len(), default)
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_profiles_policies_groups_and_users_lifecycle() {
    let Some(m) = moto("roles_profiles_policies_groups_and_users_lifecycle").await else {
        return;
    };
    let engine = m.engine();
    let name = unique("iam");
    let mut shape = Shape {
        extra_action: false,
        inline_action: "logs:PutLogEvents",
        role_path: "/",
        user_path: "/",
        policy_description: "Swarm nodes: discover peers",
        with_bob: true,
    };
    let s = stack(&name, &shape);
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after create").await;
    let role_name = format!("{name}-node");
    let role = m.iam.get_role().role_name(&role_name).send().await.unwrap();
    assert_eq!(role.role().unwrap().path(), format!("/infra/{name}/"));
    let policy = observed(&m, &name, "aws_iam_policy.node").await;
    let profile = observed(&m, &name, "aws_iam_instance_profile.node").await;
    assert_eq!(profile.props["role"], Value::from(role_name.as_str()));
    let lt = observed(&m, &name, "aws_launch_template.node").await;
    assert_eq!(lt.props["instance_profile_arn"], profile.props["arn"]);

    // Drift: a policy detached and a membership removed by hand are repaired.
    m.iam
        .detach_role_policy()
        .role_name(&role_name)
        .policy_arn(&policy.id)
        .send()
        .await
        .unwrap();
    m.iam
        .remove_user_from_group()
        .group_name(format!("{name}-humans"))
        .user_name(format!("{name}-alice"))
        .send()
        .await
        .unwrap();
    let p = plan(&engine, &s).await;
    assert_eq!(fields(&p, "aws_iam_role.node"), ["managed_policy_arns"]);
    assert_eq!(fields(&p, "aws_iam_user.alice"), ["groups"]);
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after repairing drift").await;

    // In-place updates: a new default policy version, an inline policy, a user's path. (A
    // group's path is changed in place the same way, with UpdateGroup, which moto ignores.)
    shape.extra_action = true;
    shape.inline_action = "logs:CreateLogStream";
    shape.user_path = "/people/";
    let s = stack(&name, &shape);
    let p = plan(&engine, &s).await;
    assert!(
        p.plan.actionable().all(|c| c.action == Action::Update),
        "{:?}",
        p.plan.summary
    );
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after updates").await;
    assert_eq!(default_version(&m, &policy.id).await, (2, "v2".to_string()));
    let alice = m
        .iam
        .get_user()
        .user_name(format!("{name}-alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        alice.user().unwrap().path(),
        format!("/infra/{name}/people/")
    );

    // Replacements keep the relationships with the stack's other objects: a role whose path
    // changes (immutable in IAM) stays in its instance profile; a policy whose description
    // changes stays attached to its role.
    shape.role_path = "/svc/";
    shape.policy_description = "Swarm nodes: discover cluster peers";
    let s = stack(&name, &shape);
    let p = plan(&engine, &s).await;
    assert!(action(&p, "aws_iam_role.node").is_replace());
    assert!(action(&p, "aws_iam_policy.node").is_replace());
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after replacements").await;
    let role = m.iam.get_role().role_name(&role_name).send().await.unwrap();
    assert_eq!(role.role().unwrap().path(), format!("/infra/{name}/svc/"));
    let profile = m
        .iam
        .get_instance_profile()
        .instance_profile_name(format!("{name}-node"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        profile.instance_profile().unwrap().roles()[0].role_name(),
        role_name
    );
    let attached = m
        .iam
        .list_attached_role_policies()
        .role_name(&role_name)
        .send()
        .await
        .unwrap();
    let mut arns: Vec<&str> = attached
        .attached_policies()
        .iter()
        .filter_map(|a| a.policy_arn())
        .collect();
    arns.sort();
    let node_arn = observed(&m, &name, "aws_iam_policy.node").await.id;
    let mut want = vec![READ_ONLY, node_arn.as_str()];
    want.sort();
    assert_eq!(arns, want);

    // Deletion of a removed user.
    shape.with_bob = false;
    let s = stack(&name, &shape);
    let p = plan(&engine, &s).await;
    assert_eq!(action(&p, "aws_iam_user.bob"), Action::Delete);
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after removing a user").await;
    assert!(m
        .iam
        .get_user()
        .user_name(format!("{name}-bob"))
        .send()
        .await
        .is_err());

    destroy(&m, &engine, &s).await;
    let prefix = format!("/infra/{name}/");
    let roles = m
        .iam
        .list_roles()
        .path_prefix(&prefix)
        .send()
        .await
        .unwrap();
    assert!(roles.roles().is_empty());
    let policies = m
        .iam
        .list_policies()
        .path_prefix(&prefix)
        .send()
        .await
        .unwrap();
    assert!(policies.policies().is_empty());
    let profiles = m.iam.list_instance_profiles().send().await.unwrap();
    assert!(!profiles
        .instance_profiles()
        .iter()
        .any(|p| p.path().starts_with(&prefix)));
}
