//! The AWS kinds: typed builders with their validation and declared force-new, computed and
//! sensitive fields.
//!
//! Every kind emits exactly the properties the provider reads back (normalised to the same
//! shapes), so that a re-plan after an apply is empty.

pub(crate) mod codegen;
pub mod compute;
pub mod elb;
pub mod iam;
pub mod network;
pub mod serverless;
pub mod ssm;

pub use compute::{
    Ami, AmiOutputs, Asg, LaunchTemplate, LaunchTemplateOutputs, LifecycleDefault, LifecycleHook,
    LifecycleTransition, ScalingPolicy, ScalingPolicyMetric,
};
pub use elb::{
    AcmCertificate, Listener, LoadBalancer, LoadBalancerOutputs, TargetGroup, TargetGroupOutputs,
    TargetProtocol, DEFAULT_SSL_POLICY,
};
pub use iam::{
    mfa_required_document, normalise_document, Effect, IamGroup, IamPolicy, IamPolicyOutputs,
    IamRole, IamRoleOutputs, IamUser, InstanceProfile, InstanceProfileOutputs, PolicyDocument,
    Principal, Statement,
};
pub use network::{
    nat_gateway_with_eip, ElasticIp, InternetGateway, NatGateway, RouteTable, Rule, SecurityGroup,
    Subnet, Vpc,
};
pub use serverless::{
    code_sha256, EventRule, EventRuleOutputs, HttpApi, HttpApiOutputs, LambdaArchitecture,
    LambdaCode, LambdaFunction, LambdaFunctionOutputs, LambdaPermission, RouteAuth,
    ASG_INSTANCE_EVENTS, BUILD_FUNCTIONS,
};
pub use ssm::{SsmParameter, SsmParameterOutputs, SsmParameterType};

use infra_core::dsl::ResourceSpec;
use infra_core::validate::{Checker, ValidationContext};

/// Every AWS kind's schema (for tooling that lists kinds).
pub fn schemas() -> Vec<&'static infra_core::dsl::KindSchema> {
    vec![
        &network::VPC,
        &network::SUBNET,
        &network::INTERNET_GATEWAY,
        &network::ELASTIC_IP,
        &network::NAT_GATEWAY,
        &network::ROUTE_TABLE,
        &network::SECURITY_GROUP,
        &compute::LAUNCH_TEMPLATE,
        &compute::ASG,
        &compute::SCALING_POLICY,
        &compute::LIFECYCLE_HOOK,
        &compute::AMI,
        &elb::LOAD_BALANCER,
        &elb::TARGET_GROUP,
        &elb::LISTENER,
        &iam::IAM_POLICY,
        &iam::IAM_ROLE,
        &iam::INSTANCE_PROFILE,
        &iam::IAM_GROUP,
        &iam::IAM_USER,
        &ssm::SSM_PARAMETER,
        &serverless::LAMBDA_FUNCTION,
        &serverless::LAMBDA_PERMISSION,
        &serverless::HTTP_API,
        &serverless::EVENT_RULE,
    ]
}

/// The name an object gets in AWS (its `Name` tag, and the name of named objects such as
/// auto scaling groups, launch templates and IAM entities): `<stack>-<name>`. Two stacks in one
/// account therefore never collide on names.
pub fn physical_name(stack: &str, name: &str) -> String {
    format!("{stack}-{name}")
}

/// The IAM path under which a stack's IAM entities live: `/infra/<stack>/` followed by the
/// declared sub-path. IAM groups cannot be tagged and IAM's batched listing returns no tags for
/// policies and instance profiles, so the path is what marks IAM entities as owned by a stack.
pub fn iam_path(stack: &str, sub_path: &str) -> String {
    format!("/infra/{stack}{sub_path}")
}

/// Checks the physical name `<stack>-<name>` against an AWS length limit and character set, so
/// a too-long name is a validation problem and not an API error halfway through an apply.
pub(crate) fn check_physical_name(
    c: &mut Checker<'_>,
    spec: &ResourceSpec,
    ctx: &ValidationContext<'_>,
    what: &str,
    max: usize,
    allowed: fn(char) -> bool,
) {
    let full = physical_name(ctx.stack().name(), spec.address.name());
    if full.len() > max {
        c.problem(
            "name",
            format!(
                "the {what} name `{full}` (`<stack>-<name>`) is {} characters long; AWS allows {max}: \
                 shorten the resource name or the stack name",
                full.len()
            ),
        );
    }
    if let Some(bad) = full.chars().find(|ch| !allowed(*ch)) {
        c.problem(
            "name",
            format!("the {what} name `{full}` contains `{bad}`, which AWS does not allow"),
        );
    }
}

/// Characters IAM allows in entity names (`[\w+=,.@-]`).
pub(crate) fn iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// Characters EC2 allows in launch template names (`[a-zA-Z0-9().\-/_]`).
pub(crate) fn launch_template_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "().-/_".contains(c)
}

/// Any printable ASCII character (auto scaling group and security group names).
pub(crate) fn printable_char(c: char) -> bool {
    c.is_ascii_graphic() || c == ' '
}

/// Validates a `tags` map: AWS allows 50 tags per object (we use 4 ourselves), keys up to 128
/// and values up to 256 characters, and reserves the `aws:` prefix; `infra:` and `Name` are ours.
pub(crate) fn check_tags(c: &mut Checker<'_>, spec: &ResourceSpec) {
    let Some(tags) = spec.get("tags").and_then(infra_core::Value::as_map) else {
        return;
    };
    if tags.len() > 46 {
        c.problem(
            "tags",
            format!(
                "{} tags; AWS allows 50 per object and infra uses 4",
                tags.len()
            ),
        );
    }
    for (k, v) in tags {
        if k.is_empty() || k.len() > 128 {
            c.problem("tags", format!("tag key `{k}` must be 1-128 characters"));
        }
        if k.starts_with("aws:") || k.starts_with("infra:") || k == "Name" {
            c.problem(
                "tags",
                format!("tag key `{k}` is reserved (`aws:`, `infra:` and `Name` are set for you)"),
            );
        }
        match v {
            infra_core::Value::String(s) if s.len() > 256 => c.problem(
                "tags",
                format!("the value of tag `{k}` is longer than 256 characters"),
            ),
            infra_core::Value::String(_) | infra_core::Value::Ref(_) => {}
            _ => c.problem("tags", format!("the value of tag `{k}` must be a string")),
        }
    }
}
