//! What the kinds share for import: telling owned from unowned objects by their tags, the
//! discovery pass (a filter, the ids handed over so far, the sink), the observation of an
//! unowned object under a declared address, and adoption by EC2 tags.
//!
//! Discovery is one pass in dependency order (see [`DISCOVERY_ORDER`]): each kind pages through
//! its listing with the largest page size its API allows and hands every unowned object to the
//! sink as its page arrives, so nothing is collected first. Only the ids handed over are kept,
//! to narrow kinds that don't live in a VPC (a launch template, an auto scaling group) by the
//! `vpc` filter through what they refer to.

use std::collections::{BTreeMap, HashSet};

use aws_sdk_ec2::types::Tag;
use infra_core::dsl::{Address, KindSchema};
use infra_core::import::{Discovered, Found, ImportFilter};
use infra_core::provider::{Observed, ProviderError};

use super::common::{Cx, Props, TAG_ID, TAG_NAME, TAG_PROTECT, TAG_STACK};
use super::errors::AwsResult;

/// The kinds in the order discovery hands them over: what an object refers to comes before it
/// (IAM before launch templates, whose instance profile is a reference; target groups before
/// the load balancers' listeners and the auto scaling groups that refer to them).
pub(crate) const DISCOVERY_ORDER: &[&str] = &[
    "aws_vpc",
    "aws_subnet",
    "aws_internet_gateway",
    "aws_eip",
    "aws_nat_gateway",
    "aws_route_table",
    "aws_security_group",
    "aws_lb_target_group",
    "aws_lb",
    "aws_lb_listener",
    "aws_iam_policy",
    "aws_iam_role",
    "aws_iam_instance_profile",
    "aws_iam_group",
    "aws_iam_user",
    "aws_launch_template",
    "aws_autoscaling_group",
    "aws_autoscaling_policy",
    "aws_autoscaling_lifecycle_hook",
    "aws_ssm_parameter",
    "aws_lambda_function",
    "aws_cloudwatch_event_rule",
    "aws_apigatewayv2_api",
    "aws_lambda_permission",
];

/// An object's tags, parsed for import.
#[derive(Clone, Debug, Default)]
pub(crate) struct Unowned {
    /// Its `Name` tag.
    pub(crate) name: Option<String>,
    /// The user's tags (without `infra:*`, `aws:*` and `Name`), as a read reports them.
    pub(crate) user: BTreeMap<String, String>,
    /// Every tag, for the filter.
    pub(crate) all: BTreeMap<String, String>,
    /// The owning stack (`infra:stack`), if any.
    pub(crate) owner: Option<String>,
}

impl Unowned {
    /// The tags of an object, whoever owns it.
    pub(crate) fn parse<'t>(tags: impl IntoIterator<Item = (&'t str, &'t str)>) -> Unowned {
        let mut u = Unowned::default();
        for (k, v) in tags {
            u.all.insert(k.to_string(), v.to_string());
            match k {
                TAG_STACK => u.owner = Some(v.to_string()),
                TAG_NAME => u.name = Some(v.to_string()),
                k if k.starts_with("aws:") || k.starts_with("infra:") => {}
                k => {
                    u.user.insert(k.to_string(), v.to_string());
                }
            }
        }
        u
    }

    /// The tags of an object, unless a stack owns it.
    pub(crate) fn of<'t>(tags: impl IntoIterator<Item = (&'t str, &'t str)>) -> Option<Unowned> {
        let u = Unowned::parse(tags);
        u.owner.is_none().then_some(u)
    }

    /// The tags of an EC2 object, unless a stack owns it.
    pub(crate) fn ec2(tags: &[Tag]) -> Option<Unowned> {
        Unowned::of(super::ec2_common::pairs(tags))
    }

    /// The tags of an EC2 object, whoever owns it.
    pub(crate) fn ec2_any(tags: &[Tag]) -> Unowned {
        Unowned::parse(super::ec2_common::pairs(tags))
    }
}

/// One discovery pass: the filter, the ids handed over so far, and the sink.
pub(crate) struct Discovery<'s> {
    /// What to import.
    pub(crate) filter: &'s ImportFilter,
    seen: HashSet<String>,
    /// The auto scaling groups handed over (their hooks are read per group).
    pub(crate) groups: Vec<String>,
    /// The load balancers handed over, `(arn, name)` (their listeners are listed per load
    /// balancer).
    pub(crate) load_balancers: Vec<(String, String)>,
    /// The Lambda functions handed over, by name (their permissions are read per function).
    pub(crate) functions: Vec<String>,
    sink: &'s mut (dyn FnMut(Found) + Send),
    /// Objects handed over.
    pub(crate) count: usize,
}

impl<'s> Discovery<'s> {
    /// A pass handing objects to `sink`.
    pub(crate) fn new(filter: &'s ImportFilter, sink: &'s mut (dyn FnMut(Found) + Send)) -> Self {
        Discovery {
            filter,
            seen: HashSet::new(),
            groups: Vec::new(),
            load_balancers: Vec::new(),
            functions: Vec::new(),
            sink,
            count: 0,
        }
    }

    /// True when an object named `name` with these tags passes the name and tag filters.
    pub(crate) fn matches(&self, name: &str, tags: &BTreeMap<String, String>) -> bool {
        self.filter.name_matches(name)
            && self
                .filter
                .tags_match(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// True when the `vpc` filter is unset or is `vpc`.
    pub(crate) fn in_vpc(&self, vpc: Option<&str>) -> bool {
        self.filter
            .vpc
            .as_deref()
            .is_none_or(|want| vpc == Some(want))
    }

    /// True when the `vpc` filter is unset or one of `ids` was handed over (an object outside
    /// any VPC kept for what it refers to).
    pub(crate) fn refers_to_seen<'a>(&self, mut ids: impl Iterator<Item = &'a str>) -> bool {
        self.filter.vpc.is_none() || ids.any(|id| self.seen.contains(id))
    }

    /// True when the object `id` was handed over.
    pub(crate) fn seen(&self, id: &str) -> bool {
        self.seen.contains(id)
    }

    /// Hands an object over.
    pub(crate) fn object(&mut self, d: Discovered) {
        self.seen.insert(d.id.clone());
        for a in &d.aliases {
            self.seen.insert(a.clone());
        }
        self.count += 1;
        (self.sink)(Found::Object(d));
    }

    /// Hands over an object `infra` can't declare.
    pub(crate) fn inexpressible(&mut self, what: &str, id: &str, reason: impl Into<String>) {
        self.count += 1;
        (self.sink)(Found::Inexpressible {
            what: what.to_string(),
            id: id.to_string(),
            reason: reason.into(),
        });
    }
}

/// A discovered object of `schema` with id `id`, its name (the `Name` tag, else the id) and
/// its properties as a read gives them.
pub(crate) fn discovered(
    schema: &'static KindSchema,
    id: &str,
    name: Option<&str>,
    props: Props,
) -> Discovered {
    Discovered {
        schema,
        id: id.to_string(),
        name: name.filter(|n| !n.is_empty()).unwrap_or(id).to_string(),
        props: props.0,
        aliases: Vec::new(),
        notes: Vec::new(),
    }
}

/// An unowned object as it would be observed at `address`.
pub(crate) fn observed_at(address: &Address, id: &str, props: Props, tags: &Unowned) -> Observed {
    Observed {
        address: address.clone(),
        id: id.to_string(),
        props: props.0.into(),
        protect: tags.all.get(TAG_PROTECT).map(String::as_str) == Some("true"),
        declared: None,
    }
}

/// The error of one kind's discovery: one line naming the kind and the call.
pub(crate) fn discovery_error(kind: &str, e: ProviderError) -> ProviderError {
    let message = e.message.replace('\n', " ");
    ProviderError {
        message: format!("import of {kind}: {message}"),
        ..e
    }
}

/// The error of an adoption that the object's kind can't do, naming it and why.
pub(crate) fn cannot_adopt(kind: &str, id: &str, to: &Address, why: &str) -> ProviderError {
    ProviderError::fatal(
        "Unsupported",
        format!("{to}: can't adopt the {kind} `{id}`: {why}"),
    )
}

/// The ownership tags adoption writes: `infra:stack` and `infra:id`. The `Name` tag is left
/// as it is (EC2 ownership is read from `infra:id`; nothing finds an object by `Name`).
pub(crate) fn ownership_tags(cx: &Cx<'_>, to: &Address) -> [(String, String); 2] {
    [
        (TAG_STACK.to_string(), cx.stack.to_string()),
        (TAG_ID.to_string(), to.to_string()),
    ]
}

/// Adopts an EC2 object: one CreateTags call with the ownership tags, nothing else.
pub(crate) async fn adopt_ec2(
    cx: &Cx<'_>,
    current: &Observed,
    to: &Address,
) -> Result<Observed, ProviderError> {
    let tags = ownership_tags(cx, to)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    cx.c.ec2
        .create_tags()
        .resources(&current.id)
        .set_tags(Some(tags))
        .send()
        .await
        .aws("CreateTags")?;
    Ok(Observed {
        address: to.clone(),
        ..current.clone()
    })
}
