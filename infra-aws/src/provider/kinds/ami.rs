//! `aws_ami`: a data source. The newest available image matching a name pattern among the
//! owners' images, looked up on every plan; never created, changed or deleted.

use async_trait::async_trait;
use aws_sdk_ec2::types::Filter;
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::Value;

use super::{AwsKind, Listings};
use crate::kinds::compute::AMI;
use crate::provider::common::{req_str, str_list, Cx};
use crate::provider::errors::AwsResult;

/// The `aws_ami` handler.
pub(super) struct Ami;

impl KindHandler for Ami {
    fn schema(&self) -> &'static KindSchema {
        &AMI
    }
}

/// What a data source answers to a change: the reconciler never plans one.
fn not_managed(what: &str) -> ProviderError {
    ProviderError::fatal(
        "Unsupported",
        format!(
            "`{}` is a data source: it is looked up, never {what}",
            AMI.kind
        ),
    )
}

#[async_trait]
impl AwsKind for Ami {
    /// A data source owns nothing: there is nothing to list.
    async fn read(&self, _: &Cx<'_>, _: &Listings) -> Result<Vec<Observed>, ProviderError> {
        Ok(Vec::new())
    }

    async fn find(&self, _: &Cx<'_>, _: &Address) -> Result<Option<Observed>, ProviderError> {
        Ok(None)
    }

    async fn create(
        &self,
        _: &Cx<'_>,
        _: &OpContext,
        _: &Resolved,
    ) -> Result<Observed, ProviderError> {
        Err(not_managed("created"))
    }

    async fn update(
        &self,
        _: &Cx<'_>,
        _: &OpContext,
        _: &Observed,
        _: &Resolved,
        _: &[String],
    ) -> Result<Observed, ProviderError> {
        Err(not_managed("updated"))
    }

    async fn delete(&self, _: &Cx<'_>, _: &Observed) -> Result<(), ProviderError> {
        Err(not_managed("deleted"))
    }

    /// The newest available image matching the pattern, among the owners' images.
    async fn lookup(&self, cx: &Cx<'_>, spec: &Resolved) -> Result<Observed, ProviderError> {
        let pattern = req_str(spec, "name_pattern")?;
        let mut filters = vec![
            Filter::builder().name("name").values(&pattern).build(),
            Filter::builder().name("state").values("available").build(),
        ];
        if let Some(arch) = spec.get_str("architecture") {
            filters.push(Filter::builder().name("architecture").values(arch).build());
        }
        let images =
            cx.c.ec2_read
                .describe_images()
                .set_owners(Some(str_list(spec, "owners")))
                .set_filters(Some(filters))
                .into_paginator()
                .page_size(1000)
                .items()
                .send()
                .try_collect()
                .await
                .aws("DescribeImages")?;
        let newest = crate::kinds::compute::newest(&images, |i| {
            (
                i.creation_date().unwrap_or(""),
                i.name().unwrap_or(""),
                i.image_id().unwrap_or(""),
            )
        })
        .ok_or_else(|| {
            ProviderError::fatal(
                "NoMatchingImage",
                format!(
                    "{}: no available image named `{pattern}` owned by {}",
                    spec.address,
                    str_list(spec, "owners").join(", ")
                ),
            )
        })?;
        let mut props = spec.props.clone();
        for (k, v) in [
            ("name", newest.name()),
            ("creation_date", newest.creation_date()),
            ("root_device_name", newest.root_device_name()),
        ] {
            if let Some(v) = v {
                props.insert(k.to_string(), Value::from(v));
            }
        }
        Ok(Observed {
            address: spec.address.clone(),
            id: newest.image_id().unwrap_or_default().to_string(),
            props: props.into(),
            protect: false,
            declared: None,
        })
    }
}
