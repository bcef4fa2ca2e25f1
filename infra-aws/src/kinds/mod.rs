//! The AWS kinds: typed builders with their validation and declared force-new, computed and
//! sensitive fields.

pub mod compute;
pub mod iam;
pub mod network;

pub use compute::{Asg, LaunchTemplate, LaunchTemplateOutputs};
pub use iam::{Effect, IamPolicy, PolicyDocument, Statement};
pub use network::{Rule, SecurityGroup, Subnet, Vpc};

/// Every AWS kind's schema (for tooling that lists kinds).
pub fn schemas() -> Vec<&'static infra_core::dsl::KindSchema> {
    vec![
        &network::VPC,
        &network::SUBNET,
        &network::SECURITY_GROUP,
        &compute::LAUNCH_TEMPLATE,
        &compute::ASG,
        &iam::IAM_POLICY,
    ]
}
