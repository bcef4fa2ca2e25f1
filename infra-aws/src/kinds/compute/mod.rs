//! Compute kinds: launch template, auto scaling group, target-tracking scaling policy, lifecycle
//! hook, and the AMI lookup (a data source).
//!
//! One module per kind; this module re-exports them.

mod ami;
mod asg;
mod launch_template;
mod lifecycle_hook;
mod scaling_policy;

#[cfg(feature = "live")]
pub(crate) use ami::newest;
pub(crate) use ami::AMI;
pub use ami::{Ami, AmiOutputs};
pub use asg::Asg;
pub(crate) use asg::ASG;
pub(crate) use launch_template::LAUNCH_TEMPLATE;
pub use launch_template::{LaunchTemplate, LaunchTemplateOutputs, DEFAULT_ROOT_DEVICE};
pub(crate) use lifecycle_hook::LIFECYCLE_HOOK;
pub use lifecycle_hook::{LifecycleDefault, LifecycleHook, LifecycleTransition};
pub(crate) use scaling_policy::SCALING_POLICY;
pub use scaling_policy::{ScalingPolicy, ScalingPolicyMetric};

#[cfg(test)]
mod tests {
    use infra_core::value::Reference;
    use infra_core::{Resource, Stack, Value};

    use super::*;
    use crate::kinds::{IamPolicy, IamPolicyOutputs, IamRole, InstanceProfileOutputs, Vpc};
    use crate::kinds::{InstanceProfile, Subnet};
    use infra_core::dsl::Ref;

    fn reference<T>(r: &Ref<T>, attribute: &str) -> Value {
        Value::from(Reference {
            address: r.address().clone(),
            attribute: attribute.to_string(),
        })
    }

    #[test]
    fn typed_ids_and_arns_are_stored_as_the_same_values_as_before() {
        let mut s = Stack::new("demo");
        let ami = s.add(Ami::lookup("node").name_pattern("node-*"));
        let profile = s.add(InstanceProfile::new("node"));
        let from_lookup = LaunchTemplate::new("a")
            .image(ami.id())
            .instance_profile_arn(profile.arn());
        assert_eq!(
            from_lookup.spec().get("image_id"),
            Some(&reference(&ami, "id"))
        );
        assert_eq!(
            from_lookup.spec().get("instance_profile_arn"),
            Some(&reference(&profile, "arn"))
        );
        let with_profile = LaunchTemplate::new("a").instance_profile(&profile);
        assert_eq!(
            with_profile.spec().get("instance_profile_arn"),
            Some(&reference(&profile, "arn"))
        );
        let image_from = LaunchTemplate::new("a").image_from(&ami);
        assert_eq!(
            image_from.spec().get("image_id"),
            Some(&reference(&ami, "id"))
        );
        let arn = String::from("arn:aws:iam::123456789012:instance-profile/node");
        let literal = LaunchTemplate::new("b")
            .image("ami-0123456789abcdef0")
            .instance_profile_arn(&arn);
        assert_eq!(
            literal.spec().get("image_id"),
            Some(&Value::from("ami-0123456789abcdef0"))
        );
        assert_eq!(
            literal.spec().get("instance_profile_arn"),
            Some(&Value::from(arn))
        );
    }

    #[test]
    fn policy_arns_by_literal_or_output_and_ids_of_other_kinds_are_unchanged() {
        let mut s = Stack::new("demo");
        let policy = s.add(IamPolicy::new("read"));
        let role = IamRole::new("node")
            .attach(&policy)
            .attach_arn(policy.arn())
            .attach_arn("arn:aws:iam::aws:policy/ReadOnlyAccess");
        assert_eq!(
            role.spec().get("managed_policy_arns"),
            Some(&Value::List(vec![
                reference(&policy, "id"),
                reference(&policy, "arn"),
                Value::from("arn:aws:iam::aws:policy/ReadOnlyAccess"),
            ]))
        );
        let vpc = s.add(Vpc::new("main"));
        let subnet = s.add(Subnet::new("a").vpc(&vpc));
        let asg = Asg::new("web").subnets(&[&subnet]);
        assert_eq!(
            asg.spec().get("subnet_ids"),
            Some(&Value::List(vec![reference(&subnet, "id")]))
        );
        assert_eq!(s.resources()[2].get("vpc_id"), Some(&reference(&vpc, "id")));
    }
}
