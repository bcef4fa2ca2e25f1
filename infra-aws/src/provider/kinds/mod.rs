//! One handler per AWS kind, and the one list of them ([`registry`]).
//!
//! Each kind is a unit type implementing [`AwsKind`] in its own module: how its objects are
//! listed (the stack's objects of the kind in one paginated call), found again after a lost
//! response, created, updated and deleted, and the facts the provider needs around a create.
//! The provider only looks handlers up by kind name. Adding a kind is its builder and schema in
//! `crate::kinds` (listed in [`crate::kinds::schemas`]), a handler module here and one line in
//! [`registry`]; a unit test checks that the two lists agree.
//!
//! Kinds whose objects come out of one listing (IAM's `GetAccountAuthorizationDetails`, the
//! auto scaling groups a scaling policy's or lifecycle hook's ownership depends on) share it
//! through [`Listings`], made once per read, so a read still costs one call per object type —
//! except where AWS has no batched listing: lifecycle hooks (one call per group of the stack),
//! the tags of SSM parameters (one call per parameter of the stack), the tags and policies of
//! Lambda functions (per function of the stack; the functions listing is shared with the
//! permissions), the routes, integrations and stages of HTTP APIs (per API of the stack) and
//! the tags and targets of EventBridge rules (per rule of the stack). ELBv2 listings have no
//! tag filter: the load balancers and target groups are listed whole and their tags read 20
//! ARNs a call; listeners are listed per load balancer of the stack, and an application load
//! balancer's attributes are one call each.

mod ami;
mod autoscaling_group;
mod eip;
mod event_rule;
mod http_api;
mod iam_group;
mod iam_policy;
mod iam_role;
mod iam_user;
mod instance_profile;
mod internet_gateway;
mod lambda_function;
mod lambda_permission;
mod launch_template;
mod lifecycle_hook;
mod listener;
mod load_balancer;
mod nat_gateway;
mod route_table;
mod scaling_policy;
mod security_group;
mod ssm_parameter;
mod subnet;
mod target_group;
mod vpc;

use async_trait::async_trait;
use aws_sdk_autoscaling::types::AutoScalingGroup;
use infra_core::dsl::Address;
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::{KindHandler, Registry};
use tokio::sync::OnceCell;

use super::common::Cx;
use super::iam_common::{account_details, DetailsPage};
use super::import::{cannot_adopt, Discovery};

/// What the provider does with the objects of one AWS kind.
#[async_trait]
pub(crate) trait AwsKind: KindHandler + Send + Sync {
    /// Every object of this kind the stack owns: one paginated listing filtered by the stack's
    /// tag (or IAM path), never one call per object; objects that aren't the stack's, or are of
    /// another kind, are left out even when the endpoint ignores the filter.
    async fn read(&self, cx: &Cx<'_>, listings: &Listings) -> Result<Vec<Observed>, ProviderError>;

    /// The stack's object at `address`, looked up fresh by its ownership tags (or name): what a
    /// retried create or update starts from after a lost response.
    async fn find(&self, cx: &Cx<'_>, address: &Address)
        -> Result<Option<Observed>, ProviderError>;

    /// Creates the object, with its ownership tags in the same call.
    async fn create(
        &self,
        cx: &Cx<'_>,
        op: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError>;

    /// Changes the object in place; `changed` lists the fields that differ.
    async fn update(
        &self,
        cx: &Cx<'_>,
        op: &OpContext,
        current: &Observed,
        d: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError>;

    /// Deletes the object, waiting where AWS requires it before dependencies can go.
    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError>;

    /// Re-owns the object under `to` in place (a declared move; only for kinds whose schema is
    /// `movable`): its ownership tags rewritten, nothing else.
    async fn move_to(
        &self,
        cx: &Cx<'_>,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        let _ = cx;
        Err(ProviderError::fatal(
            "Unsupported",
            format!(
                "{}: the aws provider can't re-own a {} under {to}",
                current.address,
                self.schema().kind
            ),
        ))
    }

    /// Whether every create looks the object up first: for kinds whose create carries no
    /// idempotency token and whose "already exists" can't be relied on to find a lost
    /// create's object. (Otherwise only a retried attempt looks up first.)
    fn lookup_before_create(&self) -> bool {
        false
    }

    /// Error codes of a create that mean the object's name is taken: the provider then looks
    /// the object up and converges it when it is the stack's (a create whose response was
    /// lost), and fails naming the stack otherwise.
    fn already_exists_codes(&self) -> &'static [&'static str] {
        &[]
    }

    /// Hands every object of this kind that belongs to no stack, narrowed by the pass's
    /// filter, to the pass's sink as its page arrives (the default: none, for kinds import
    /// doesn't cover).
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        let _ = (cx, pass);
        Ok(())
    }

    /// The object `id`, whoever owns it, as observed at `address` (`None`: there is none).
    async fn read_unowned(
        &self,
        cx: &Cx<'_>,
        id: &str,
        address: &Address,
    ) -> Result<Option<Observed>, ProviderError> {
        let _ = (cx, id, address);
        Ok(None)
    }

    /// Why objects of this kind can't be adopted (its `adopt` refuses them), if they can't:
    /// what a plan says about a declared adoption of one, before reading anything.
    fn adoption_refusal(&self) -> Option<&'static str> {
        None
    }

    /// Writes the stack's ownership on an unowned object and changes nothing else.
    async fn adopt(
        &self,
        cx: &Cx<'_>,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        let _ = cx;
        Err(cannot_adopt(
            self.schema().kind,
            &current.id,
            to,
            "the aws provider can't adopt objects of this kind",
        ))
    }

    /// Looks up a data source. Only data-source kinds answer.
    async fn lookup(&self, cx: &Cx<'_>, spec: &Resolved) -> Result<Observed, ProviderError> {
        let _ = cx;
        Err(ProviderError::fatal(
            "Unsupported",
            format!(
                "{}: `{}` is not a data source",
                spec.address,
                self.schema().kind
            ),
        ))
    }
}

/// Listings several kinds share, made at most once per read (the first kind that needs one
/// makes the call, the others wait for it).
#[derive(Debug, Default)]
pub(crate) struct Listings {
    iam_details: OnceCell<Vec<DetailsPage>>,
    asg_groups: OnceCell<Vec<AutoScalingGroup>>,
    load_balancers: OnceCell<Vec<load_balancer::OwnedLb>>,
    lambda_functions: OnceCell<Vec<lambda_function::Listed>>,
}

impl Listings {
    /// The account's IAM authorization details (roles, users, groups, managed policies).
    pub(crate) async fn iam_details(&self, cx: &Cx<'_>) -> Result<&[DetailsPage], ProviderError> {
        self.iam_details
            .get_or_try_init(|| account_details(cx))
            .await
            .map(Vec::as_slice)
    }

    /// The auto scaling groups tagged with the stack (scaling policies and lifecycle hooks
    /// belong to them).
    pub(crate) async fn asg_groups(
        &self,
        cx: &Cx<'_>,
    ) -> Result<&[AutoScalingGroup], ProviderError> {
        self.asg_groups
            .get_or_try_init(|| autoscaling_group::describe_groups(cx, None))
            .await
            .map(Vec::as_slice)
    }

    /// The stack's load balancers (their listeners belong to them).
    pub(crate) async fn load_balancers(
        &self,
        cx: &Cx<'_>,
    ) -> Result<&[load_balancer::OwnedLb], ProviderError> {
        self.load_balancers
            .get_or_try_init(|| load_balancer::stack_load_balancers(cx))
            .await
            .map(Vec::as_slice)
    }
}

impl Listings {
    /// The stack's Lambda functions with their tags (permissions belong to them).
    pub(crate) async fn lambda_functions(
        &self,
        cx: &Cx<'_>,
    ) -> Result<&[lambda_function::Listed], ProviderError> {
        self.lambda_functions
            .get_or_try_init(|| lambda_function::list_functions(cx))
            .await
            .map(Vec::as_slice)
    }
}

/// Every AWS kind's handler. The set of kinds is [`crate::kinds::schemas`]'s.
pub(crate) fn registry() -> Registry<dyn AwsKind> {
    Registry::new(
        crate::PROVIDER,
        vec![
            Box::new(vpc::Vpc),
            Box::new(subnet::Subnet),
            Box::new(internet_gateway::InternetGateway),
            Box::new(eip::ElasticIp),
            Box::new(nat_gateway::NatGateway),
            Box::new(route_table::RouteTable),
            Box::new(security_group::SecurityGroup),
            Box::new(launch_template::LaunchTemplate),
            Box::new(autoscaling_group::Asg),
            Box::new(scaling_policy::AsgPolicy),
            Box::new(lifecycle_hook::Hook),
            Box::new(ami::Ami),
            Box::new(load_balancer::LoadBalancer),
            Box::new(target_group::TargetGroup),
            Box::new(listener::Listener),
            Box::new(iam_policy::IamPolicy),
            Box::new(iam_role::IamRole),
            Box::new(instance_profile::InstanceProfile),
            Box::new(iam_group::IamGroup),
            Box::new(iam_user::IamUser),
            Box::new(ssm_parameter::SsmParameter),
            Box::new(lambda_function::LambdaFunction),
            Box::new(lambda_permission::LambdaPermission),
            Box::new(http_api::HttpApi),
            Box::new(event_rule::EventRule),
        ],
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    #[test]
    fn the_registry_serves_every_aws_kind_once() {
        let served: Vec<&str> = super::registry().kinds().iter().map(|s| s.kind).collect();
        let declared: BTreeSet<&str> = crate::kinds::schemas().iter().map(|s| s.kind).collect();
        assert_eq!(served.len(), declared.len());
        assert_eq!(served.into_iter().collect::<BTreeSet<_>>(), declared);
    }
}
