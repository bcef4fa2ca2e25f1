//! Transitional: the kinds not yet in a module of their own, served by their service modules
//! (security groups, compute, auto scaling).

use async_trait::async_trait;
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;

use super::{AwsKind, Listings};
use crate::kinds::compute::{AMI, ASG, LAUNCH_TEMPLATE, SCALING_POLICY};
use crate::kinds::network::SECURITY_GROUP;
use crate::provider::common::Cx;
use crate::provider::{autoscaling, ec2_compute, ec2_security_group};

struct Legacy(&'static KindSchema);

pub(super) fn handlers() -> Vec<Box<dyn AwsKind>> {
    [
        &SECURITY_GROUP,
        &LAUNCH_TEMPLATE,
        &ASG,
        &SCALING_POLICY,
        &AMI,
    ]
    .into_iter()
    .map(|s| Box::new(Legacy(s)) as Box<dyn AwsKind>)
    .collect()
}

impl KindHandler for Legacy {
    fn schema(&self) -> &'static KindSchema {
        self.0
    }
}

fn unsupported(kind: &str) -> ProviderError {
    ProviderError::fatal(
        "Unsupported",
        format!("the aws provider has no kind `{kind}`"),
    )
}

#[async_trait]
impl AwsKind for Legacy {
    async fn read(&self, cx: &Cx<'_>, _: &Listings) -> Result<Vec<Observed>, ProviderError> {
        // One handler per service module reads all of the module's kinds.
        let k = self.0.kind;
        if k == SECURITY_GROUP.kind {
            ec2_security_group::read(cx).await
        } else if k == LAUNCH_TEMPLATE.kind {
            ec2_compute::read(cx).await
        } else if k == ASG.kind {
            autoscaling::read(cx).await
        } else {
            Ok(Vec::new())
        }
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        let k = self.0.kind;
        if k == SECURITY_GROUP.kind {
            ec2_security_group::find(cx, a).await
        } else if k == LAUNCH_TEMPLATE.kind {
            ec2_compute::find_launch_template(cx, a).await
        } else if k == ASG.kind {
            autoscaling::find_group(cx, a).await
        } else if k == SCALING_POLICY.kind {
            autoscaling::find_policy(cx, a).await
        } else {
            Err(unsupported(k))
        }
    }

    async fn create(
        &self,
        cx: &Cx<'_>,
        op: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let k = self.0.kind;
        if k == SECURITY_GROUP.kind {
            ec2_security_group::create(cx, d).await
        } else if k == LAUNCH_TEMPLATE.kind {
            ec2_compute::create_launch_template(cx, op, d).await
        } else if k == ASG.kind {
            autoscaling::create_group(cx, d).await
        } else if k == SCALING_POLICY.kind {
            autoscaling::put_policy(cx, d).await
        } else {
            Err(unsupported(k))
        }
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        op: &OpContext,
        current: &Observed,
        d: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError> {
        let k = self.0.kind;
        if k == SECURITY_GROUP.kind {
            ec2_security_group::update(cx, current, d, changed).await
        } else if k == LAUNCH_TEMPLATE.kind {
            ec2_compute::update_launch_template(cx, op, current, d, changed).await
        } else if k == ASG.kind {
            autoscaling::update_group(cx, current, d, changed).await
        } else if k == SCALING_POLICY.kind {
            autoscaling::put_policy(cx, d).await
        } else {
            Err(unsupported(k))
        }
    }

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
        let k = self.0.kind;
        if k == SECURITY_GROUP.kind {
            ec2_security_group::delete(cx, current).await
        } else if k == LAUNCH_TEMPLATE.kind {
            ec2_compute::delete_launch_template(cx, current).await
        } else if k == ASG.kind {
            autoscaling::delete_group(cx, current).await
        } else if k == SCALING_POLICY.kind {
            autoscaling::delete_policy(cx, current).await
        } else {
            Err(unsupported(k))
        }
    }

    fn lookup_before_create(&self) -> bool {
        self.0.kind == ASG.kind
    }

    async fn lookup(&self, cx: &Cx<'_>, spec: &Resolved) -> Result<Observed, ProviderError> {
        if self.0.kind == AMI.kind {
            ec2_compute::lookup_ami(cx, spec).await
        } else {
            Err(unsupported(spec.schema.kind))
        }
    }
}
