//! What moto holds, read straight from it with plain SDK clients (never through the provider
//! under test): every object of the types the AWS provider creates, with its tags, and the
//! invariants the reliability tests check on it.
//!
//! * **No duplicate**: each `infra:id` of a stack appears once among its live objects (EC2 and
//!   Auto Scaling by their `infra:stack`/`infra:id` tags; IAM, whose listings carry no tags for
//!   most entities, by the stack's path `/infra/<stack>/` and the name `<stack>-<name>`; scaling
//!   policies and lifecycle hooks by name within the stack's groups; SSM parameters and ELBv2
//!   load balancers, target groups and listeners by tags).
//! * **No untagged object made by us**: the objects without an `infra:stack` tag (IAM: outside
//!   `/infra/`) after a run are the ones that were there before. AWS's own companions of a VPC
//!   (its main route table and `default` security group) are not counted: AWS makes them, not us.
//! * **Foreign objects untouched**: objects made by hand before the runs (untagged, or tagged as
//!   another stack's) read back exactly as they were.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

/// Plain SDK clients straight to moto.
pub(crate) struct Direct {
    pub(crate) ec2: aws_sdk_ec2::Client,
    pub(crate) asg: aws_sdk_autoscaling::Client,
    pub(crate) iam: aws_sdk_iam::Client,
    pub(crate) ssm: aws_sdk_ssm::Client,
    pub(crate) elb: aws_sdk_elasticloadbalancingv2::Client,
    pub(crate) lambda: aws_sdk_lambda::Client,
    pub(crate) apigw: aws_sdk_apigatewayv2::Client,
    pub(crate) events: aws_sdk_eventbridge::Client,
}

impl Direct {
    pub(crate) async fn new(endpoint: &str) -> Direct {
        let config = crate::env::sdk_config(endpoint).await;
        Direct {
            ec2: aws_sdk_ec2::Client::new(&config),
            asg: aws_sdk_autoscaling::Client::new(&config),
            iam: aws_sdk_iam::Client::new(&config),
            ssm: aws_sdk_ssm::Client::new(&config),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(&config),
            lambda: aws_sdk_lambda::Client::new(&config),
            apigw: aws_sdk_apigatewayv2::Client::new(&config),
            events: aws_sdk_eventbridge::Client::new(&config),
        }
    }
}

/// One object: its type (the provider's kind name), id, tags and the fields a foreign-object
/// check compares.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Obj {
    pub(crate) kind: &'static str,
    pub(crate) id: String,
    pub(crate) tags: BTreeMap<String, String>,
    /// IAM path, or empty.
    pub(crate) path: String,
    /// IAM / Auto Scaling name, or the `Name` tag.
    pub(crate) name: String,
    /// Whatever identifies the object's configuration (CIDR, rules, versions, sizes …).
    pub(crate) detail: String,
    /// Made by AWS along with a VPC (main route table, `default` security group).
    pub(crate) companion: bool,
}

impl Obj {
    fn key(&self) -> (&'static str, String) {
        (self.kind, self.id.clone())
    }
}

fn ec2_tags(tags: &[aws_sdk_ec2::types::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

/// Everything moto holds of the provider's types.
#[derive(Clone, Debug, Default)]
pub(crate) struct Inventory {
    pub(crate) objs: Vec<Obj>,
}

impl Inventory {
    pub(crate) async fn take(d: &Direct) -> Inventory {
        let mut objs = Vec::new();
        let obj = |kind, id: Option<&str>, tags: BTreeMap<String, String>, detail: String| Obj {
            kind,
            id: id.unwrap_or("?").to_string(),
            name: tags.get("Name").cloned().unwrap_or_default(),
            tags,
            path: String::new(),
            detail,
            companion: false,
        };
        for v in d
            .ec2
            .describe_vpcs()
            .send()
            .await
            .expect("DescribeVpcs")
            .vpcs()
        {
            objs.push(obj(
                "aws_vpc",
                v.vpc_id(),
                ec2_tags(v.tags()),
                format!("{:?}", v.cidr_block()),
            ));
        }
        for s in d
            .ec2
            .describe_subnets()
            .send()
            .await
            .expect("DescribeSubnets")
            .subnets()
        {
            objs.push(obj(
                "aws_subnet",
                s.subnet_id(),
                ec2_tags(s.tags()),
                format!(
                    "{:?} {:?} {:?} public={:?}",
                    s.vpc_id(),
                    s.cidr_block(),
                    s.availability_zone(),
                    s.map_public_ip_on_launch()
                ),
            ));
        }
        for g in d
            .ec2
            .describe_security_groups()
            .send()
            .await
            .expect("DescribeSecurityGroups")
            .security_groups()
        {
            let mut o = obj(
                "aws_security_group",
                g.group_id(),
                ec2_tags(g.tags()),
                format!(
                    "{:?} {:?} in={:?} out={:?}",
                    g.group_name(),
                    g.vpc_id(),
                    g.ip_permissions(),
                    g.ip_permissions_egress()
                ),
            );
            o.companion = g.group_name() == Some("default");
            objs.push(o);
        }
        for g in d
            .ec2
            .describe_internet_gateways()
            .send()
            .await
            .expect("DescribeInternetGateways")
            .internet_gateways()
        {
            objs.push(obj(
                "aws_internet_gateway",
                g.internet_gateway_id(),
                ec2_tags(g.tags()),
                format!(
                    "{:?}",
                    g.attachments()
                        .iter()
                        .map(|a| a.vpc_id())
                        .collect::<Vec<_>>()
                ),
            ));
        }
        for t in d
            .ec2
            .describe_route_tables()
            .send()
            .await
            .expect("DescribeRouteTables")
            .route_tables()
        {
            let mut o = obj(
                "aws_route_table",
                t.route_table_id(),
                ec2_tags(t.tags()),
                format!(
                    "{:?} routes={:?}",
                    t.vpc_id(),
                    t.routes()
                        .iter()
                        .map(|r| (
                            r.destination_cidr_block(),
                            r.gateway_id(),
                            r.nat_gateway_id()
                        ))
                        .collect::<Vec<_>>()
                ),
            );
            o.companion = t.associations().iter().any(|a| a.main() == Some(true));
            objs.push(o);
        }
        for n in d
            .ec2
            .describe_nat_gateways()
            .send()
            .await
            .expect("DescribeNatGateways")
            .nat_gateways()
        {
            let state = n
                .state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            if state == "deleted" || state == "deleting" || state == "failed" {
                continue;
            }
            objs.push(obj(
                "aws_nat_gateway",
                n.nat_gateway_id(),
                ec2_tags(n.tags()),
                format!("{:?} {state}", n.subnet_id()),
            ));
        }
        for a in d
            .ec2
            .describe_addresses()
            .send()
            .await
            .expect("DescribeAddresses")
            .addresses()
        {
            objs.push(obj(
                "aws_eip",
                a.allocation_id(),
                ec2_tags(a.tags()),
                format!("{:?}", a.public_ip()),
            ));
        }
        for t in d
            .ec2
            .describe_launch_templates()
            .send()
            .await
            .expect("DescribeLaunchTemplates")
            .launch_templates()
        {
            let mut o = obj(
                "aws_launch_template",
                t.launch_template_id(),
                ec2_tags(t.tags()),
                format!(
                    "{:?} latest={:?} default={:?}",
                    t.launch_template_name(),
                    t.latest_version_number(),
                    t.default_version_number()
                ),
            );
            o.name = t.launch_template_name().unwrap_or("").to_string();
            objs.push(o);
        }
        let groups = d
            .asg
            .describe_auto_scaling_groups()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .expect("DescribeAutoScalingGroups");
        for g in &groups {
            let tags = g
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
                .collect();
            let mut o = obj(
                "aws_autoscaling_group",
                g.auto_scaling_group_arn().or(g.auto_scaling_group_name()),
                tags,
                format!(
                    "{} {}/{}/{:?} {:?}",
                    g.auto_scaling_group_name().unwrap_or(""),
                    g.min_size().unwrap_or(-1),
                    g.max_size().unwrap_or(-1),
                    g.desired_capacity(),
                    g.vpc_zone_identifier()
                ),
            );
            o.name = g.auto_scaling_group_name().unwrap_or("").to_string();
            objs.push(o);
        }
        for p in d
            .asg
            .describe_policies()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .expect("DescribePolicies")
        {
            let mut o = obj(
                "aws_autoscaling_policy",
                p.policy_arn().or(p.policy_name()),
                BTreeMap::new(),
                format!("{:?} {:?}", p.auto_scaling_group_name(), p.policy_type()),
            );
            o.name = p.policy_name().unwrap_or("").to_string();
            // Scaling policies can't be tagged: they belong to their group.
            o.path = p.auto_scaling_group_name().unwrap_or("").to_string();
            objs.push(o);
        }
        // Lifecycle hooks are listed per group (AWS has no other listing); like scaling
        // policies they can't be tagged and belong to their group.
        for g in &groups {
            let Some(group) = g.auto_scaling_group_name() else {
                continue;
            };
            let hooks = d
                .asg
                .describe_lifecycle_hooks()
                .auto_scaling_group_name(group)
                .send()
                .await
                .expect("DescribeLifecycleHooks");
            for h in hooks.lifecycle_hooks() {
                let name = h.lifecycle_hook_name().unwrap_or("");
                let mut o = obj(
                    "aws_autoscaling_lifecycle_hook",
                    Some(&format!("{group}/{name}")),
                    BTreeMap::new(),
                    format!(
                        "{:?} {:?} {:?}",
                        h.lifecycle_transition(),
                        h.heartbeat_timeout(),
                        h.default_result()
                    ),
                );
                o.name = name.to_string();
                o.path = group.to_string();
                objs.push(o);
            }
        }
        let pages: Vec<_> = d
            .ssm
            .describe_parameters()
            .into_paginator()
            .send()
            .try_collect()
            .await
            .expect("DescribeParameters");
        for p in pages.iter().flat_map(|p| p.parameters()) {
            let Some(name) = p.name() else { continue };
            let tags = d
                .ssm
                .list_tags_for_resource()
                .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
                .resource_id(name)
                .send()
                .await
                .expect("ListTagsForResource")
                .tag_list()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect();
            let mut o = obj(
                "aws_ssm_parameter",
                Some(name),
                tags,
                format!("{:?} version {}", p.r#type(), p.version()),
            );
            o.name = name.to_string();
            objs.push(o);
        }
        objs.extend(iam_objects(d).await);
        objs.extend(elb_objects(d).await);
        objs.extend(serverless_objects(d).await);
        Inventory { objs }
    }

    /// The objects of `stack`, by the address they stand for (`aws_vpc.main`), with the ids
    /// found for each.
    pub(crate) fn owned(&self, stack: &str) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let iam_prefix = format!("/infra/{stack}/");
        let name_prefix = format!("{stack}-");
        let groups: BTreeSet<&str> = self
            .objs
            .iter()
            .filter(|o| {
                o.kind == "aws_autoscaling_group"
                    && o.tags.get("infra:stack").map(String::as_str) == Some(stack)
            })
            .map(|o| o.name.as_str())
            .collect();
        let functions: BTreeSet<&str> = self
            .objs
            .iter()
            .filter(|o| {
                o.kind == "aws_lambda_function"
                    && o.tags.get("infra:stack").map(String::as_str) == Some(stack)
            })
            .map(|o| o.id.as_str())
            .collect();
        for o in &self.objs {
            let address = if o.kind.starts_with("aws_iam_") {
                if !o.path.starts_with(&iam_prefix) {
                    continue;
                }
                match o.name.strip_prefix(&name_prefix) {
                    Some(n) => format!("{}.{n}", o.kind),
                    // Under the stack's path but not named like its objects: the lock, or
                    // something made there by hand.
                    None => format!("{}:{}", o.kind, o.name),
                }
            } else if o.kind == "aws_apigatewayv2_integration" {
                // Part of its API (checked for orphans by `violations`).
                continue;
            } else if o.kind == "aws_autoscaling_policy"
                || o.kind == "aws_autoscaling_lifecycle_hook"
                || o.kind == "aws_lambda_permission"
            {
                let parent_owned = if o.kind == "aws_lambda_permission" {
                    functions.contains(o.path.as_str())
                } else {
                    groups.contains(o.path.as_str())
                };
                if !parent_owned {
                    continue;
                }
                match o.name.strip_prefix(&name_prefix) {
                    Some(n) => format!("{}.{n}", o.kind),
                    None => format!("{}:{}", o.kind, o.name),
                }
            } else {
                if o.tags.get("infra:stack").map(String::as_str) != Some(stack) {
                    continue;
                }
                match o.tags.get("infra:id") {
                    Some(id) => id.clone(),
                    None => format!("{}:{} (no infra:id)", o.kind, o.id),
                }
            };
            out.entry(address).or_default().push(o.id.clone());
        }
        out
    }

    /// Objects that carry no ownership (no `infra:stack` tag; IAM: outside `/infra/`), AWS's
    /// VPC companions excepted.
    pub(crate) fn untagged(&self) -> BTreeSet<(&'static str, String)> {
        self.objs
            .iter()
            .filter(|o| !o.companion)
            .filter(|o| {
                if o.kind.starts_with("aws_iam_") {
                    !o.path.starts_with("/infra/")
                } else if o.kind == "aws_autoscaling_policy"
                    || o.kind == "aws_autoscaling_lifecycle_hook"
                    || o.kind == "aws_lambda_permission"
                    || o.kind == "aws_apigatewayv2_integration"
                {
                    // Judged with their group, function or API.
                    false
                } else {
                    !o.tags.contains_key("infra:stack")
                }
            })
            .map(Obj::key)
            .collect()
    }

    /// The object `(kind, id)`, if present.
    pub(crate) fn get(&self, kind: &str, id: &str) -> Option<&Obj> {
        self.objs.iter().find(|o| o.kind == kind && o.id == id)
    }
}

/// The tags of ELBv2 objects by ARN (20 ARNs a call, AWS's limit).
async fn elb_tags(d: &Direct, arns: &[String]) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for batch in arns.chunks(20) {
        let described = d
            .elb
            .describe_tags()
            .set_resource_arns(Some(batch.to_vec()))
            .send()
            .await
            .expect("DescribeTags");
        for t in described.tag_descriptions() {
            let tags = t
                .tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or("").to_string(),
                        t.value().unwrap_or("").to_string(),
                    )
                })
                .collect();
            out.insert(t.resource_arn().unwrap_or("").to_string(), tags);
        }
    }
    out
}

/// Load balancers, their listeners and target groups.
async fn elb_objects(d: &Direct) -> Vec<Obj> {
    let mut found: Vec<(&'static str, String, String, String)> = Vec::new();
    let lbs: Vec<_> = d
        .elb
        .describe_load_balancers()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .expect("DescribeLoadBalancers");
    for lb in &lbs {
        let arn = lb.load_balancer_arn().unwrap_or("?").to_string();
        let listeners: Vec<_> = d
            .elb
            .describe_listeners()
            .load_balancer_arn(&arn)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .expect("DescribeListeners");
        for l in listeners {
            found.push((
                "aws_lb_listener",
                l.listener_arn().unwrap_or("?").to_string(),
                String::new(),
                format!(
                    "{:?} {:?} {:?}",
                    l.protocol(),
                    l.port(),
                    l.default_actions()
                ),
            ));
        }
        found.push((
            "aws_lb",
            arn,
            lb.load_balancer_name().unwrap_or("").to_string(),
            format!(
                "{:?} {:?} {:?}",
                lb.r#type(),
                lb.scheme(),
                lb.security_groups()
            ),
        ));
    }
    let groups: Vec<_> = d
        .elb
        .describe_target_groups()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .expect("DescribeTargetGroups");
    for g in &groups {
        found.push((
            "aws_lb_target_group",
            g.target_group_arn().unwrap_or("?").to_string(),
            g.target_group_name().unwrap_or("").to_string(),
            format!(
                "{:?} {:?} {:?} {:?}",
                g.protocol(),
                g.port(),
                g.vpc_id(),
                g.health_check_path()
            ),
        ));
    }
    let arns: Vec<String> = found.iter().map(|(_, arn, _, _)| arn.clone()).collect();
    let tags = elb_tags(d, &arns).await;
    found
        .into_iter()
        .map(|(kind, id, name, detail)| {
            let tags = tags.get(&id).cloned().unwrap_or_default();
            Obj {
                kind,
                name: if name.is_empty() {
                    tags.get("Name").cloned().unwrap_or_default()
                } else {
                    name
                },
                id,
                tags,
                path: String::new(),
                detail,
                companion: false,
            }
        })
        .collect()
}

/// Lambda functions and their policy statements, HTTP APIs and their integrations (routed or
/// orphaned), EventBridge rules.
async fn serverless_objects(d: &Direct) -> Vec<Obj> {
    let mut out = Vec::new();
    let obj = |kind, id: String, tags: BTreeMap<String, String>, detail: String| Obj {
        kind,
        id,
        name: tags.get("Name").cloned().unwrap_or_default(),
        tags,
        path: String::new(),
        detail,
        companion: false,
    };
    let pages: Vec<_> = d
        .lambda
        .list_functions()
        .into_paginator()
        .send()
        .try_collect()
        .await
        .expect("ListFunctions");
    for f in pages.iter().flat_map(|p| p.functions()) {
        let (Some(name), Some(arn)) = (f.function_name(), f.function_arn()) else {
            continue;
        };
        let tags = d
            .lambda
            .list_tags()
            .resource(arn)
            .send()
            .await
            .expect("ListTags")
            .tags()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        out.push(obj(
            "aws_lambda_function",
            name.to_string(),
            tags,
            format!("{:?} {:?}", f.code_sha256(), f.memory_size()),
        ));
        let Ok(policy) = d.lambda.get_policy().function_name(name).send().await else {
            continue;
        };
        let doc: serde_json::Value =
            serde_json::from_str(policy.policy().unwrap_or("{}")).unwrap_or_default();
        for st in doc["Statement"].as_array().cloned().unwrap_or_default() {
            let sid = st["Sid"].as_str().unwrap_or("").to_string();
            let mut o = obj(
                "aws_lambda_permission",
                format!("{name}/{sid}"),
                BTreeMap::new(),
                st.to_string(),
            );
            o.name = sid;
            o.path = name.to_string();
            out.push(o);
        }
    }
    let apis = d.apigw.get_apis().send().await.expect("GetApis");
    for a in apis.items() {
        let Some(id) = a.api_id() else { continue };
        let tags: BTreeMap<String, String> = a
            .tags()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let mut o = obj("aws_apigatewayv2_api", id.to_string(), tags, String::new());
        o.name = a.name().unwrap_or("").to_string();
        out.push(o);
        let routes = d
            .apigw
            .get_routes()
            .api_id(id)
            .send()
            .await
            .expect("GetRoutes");
        let targeted: BTreeSet<String> = routes
            .items()
            .iter()
            .filter_map(|r| {
                r.target()?
                    .strip_prefix("integrations/")
                    .map(str::to_string)
            })
            .collect();
        let integrations = d
            .apigw
            .get_integrations()
            .api_id(id)
            .send()
            .await
            .expect("GetIntegrations");
        for i in integrations.items() {
            let iid = i.integration_id().unwrap_or("?").to_string();
            let routed = if targeted.contains(&iid) {
                "routed"
            } else {
                "orphan"
            };
            let mut o = obj(
                "aws_apigatewayv2_integration",
                iid,
                BTreeMap::new(),
                routed.to_string(),
            );
            o.path = id.to_string();
            out.push(o);
        }
    }
    let rules = d.events.list_rules().send().await.expect("ListRules");
    for r in rules.rules() {
        let (Some(name), Some(arn)) = (r.name(), r.arn()) else {
            continue;
        };
        let tags = d
            .events
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .expect("ListTagsForResource")
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        out.push(obj(
            "aws_cloudwatch_event_rule",
            name.to_string(),
            tags,
            format!("{:?}", r.event_pattern()),
        ));
    }
    out
}

async fn iam_objects(d: &Direct) -> Vec<Obj> {
    let mut out = Vec::new();
    let mut push = |kind, id: &str, path: &str, name: &str, detail: String| {
        out.push(Obj {
            kind,
            id: id.to_string(),
            tags: BTreeMap::new(),
            path: path.to_string(),
            name: name.to_string(),
            detail,
            companion: false,
        })
    };
    let roles = d
        .iam
        .list_roles()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .expect("ListRoles");
    for r in &roles {
        push(
            "aws_iam_role",
            r.arn(),
            r.path(),
            r.role_name(),
            format!("{:?}", r.assume_role_policy_document()),
        );
    }
    let users = d
        .iam
        .list_users()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .expect("ListUsers");
    for u in &users {
        push(
            "aws_iam_user",
            u.arn(),
            u.path(),
            u.user_name(),
            String::new(),
        );
    }
    let groups = d
        .iam
        .list_groups()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .expect("ListGroups");
    for g in &groups {
        push(
            "aws_iam_group",
            g.arn(),
            g.path(),
            g.group_name(),
            String::new(),
        );
    }
    let policies = d
        .iam
        .list_policies()
        .scope(aws_sdk_iam::types::PolicyScopeType::Local)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .expect("ListPolicies");
    for p in &policies {
        push(
            "aws_iam_policy",
            p.arn().unwrap_or("?"),
            p.path().unwrap_or(""),
            p.policy_name().unwrap_or(""),
            format!(
                "default={:?} attachments={:?}",
                p.default_version_id(),
                p.attachment_count()
            ),
        );
    }
    let profiles = d
        .iam
        .list_instance_profiles()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .expect("ListInstanceProfiles");
    for p in &profiles {
        push(
            "aws_iam_instance_profile",
            p.arn(),
            p.path(),
            p.instance_profile_name(),
            format!(
                "{:?}",
                p.roles().iter().map(|r| r.role_name()).collect::<Vec<_>>()
            ),
        );
    }
    out
}

/// Checks the invariants of `stack` after a run: no address held by two objects, nothing owned
/// without an address, no new untagged object since `before`, foreign objects as they were.
/// Returns the violations (empty when all hold).
pub(crate) fn violations(
    stack: &str,
    before: &Inventory,
    now: &Inventory,
    foreign: &Foreign,
) -> Vec<String> {
    let mut out = Vec::new();
    for (address, ids) in now.owned(stack) {
        if ids.len() > 1 {
            out.push(format!("duplicate: {address} is held by {ids:?}"));
        }
        if address.contains(" (no infra:id)") {
            out.push(format!("owned without an address: {address}"));
        }
        if address.starts_with("aws_iam_policy:") && address.ends_with(".infra-lock") {
            out.push(format!("the apply lock was left behind: {address}"));
        }
    }
    let new_untagged: Vec<_> = now
        .untagged()
        .difference(&before.untagged())
        .cloned()
        .collect();
    if !new_untagged.is_empty() {
        out.push(format!("untagged objects appeared: {new_untagged:?}"));
    }
    out.extend(foreign.changes(now));
    out
}

/// What a run that stopped halfway may leave inside an owned object and the next run must clean
/// up: an integration of one of `stack`'s HTTP APIs that no route targets (its `CreateRoute`
/// never happened, or its `CreateIntegration` response was lost). Integrations can't be tagged;
/// they belong to their API (and go with it), and the next apply reuses or deletes them. So this
/// must hold after a run that converged, after a re-run and after a destroy, not after a run
/// that gave up. Returns the leftovers (empty when there are none).
pub(crate) fn leftovers(stack: &str, now: &Inventory) -> Vec<String> {
    let mut out = Vec::new();
    let apis: BTreeSet<&str> = now
        .objs
        .iter()
        .filter(|o| {
            o.kind == "aws_apigatewayv2_api"
                && o.tags.get("infra:stack").map(String::as_str) == Some(stack)
        })
        .map(|o| o.id.as_str())
        .collect();
    for o in &now.objs {
        if o.kind == "aws_apigatewayv2_integration"
            && o.detail == "orphan"
            && apis.contains(o.path.as_str())
        {
            out.push(format!(
                "an integration no route targets: {} of API {}",
                o.id, o.path
            ));
        }
    }
    out
}

/// The declared AWS objects missing from moto, or present more than once, after a converging
/// run: `(missing, extra)`.
pub(crate) fn compare_declared(
    stack: &str,
    declared: &BTreeSet<String>,
    now: &Inventory,
) -> (Vec<String>, Vec<String>) {
    let owned = now.owned(stack);
    let missing = declared
        .iter()
        .filter(|a| !owned.contains_key(*a))
        .cloned()
        .collect();
    let extra = owned
        .keys()
        .filter(|a| !declared.contains(*a))
        .cloned()
        .collect();
    (missing, extra)
}

/// Objects made by hand before the runs, as they were then.
pub(crate) struct Foreign {
    pub(crate) objs: Vec<Obj>,
}

impl Foreign {
    /// What changed or disappeared among them.
    pub(crate) fn changes(&self, now: &Inventory) -> Vec<String> {
        self.objs
            .iter()
            .filter_map(|o| match now.get(o.kind, &o.id) {
                None => Some(format!("foreign {} {} was deleted", o.kind, o.id)),
                Some(n) if n != o => Some(format!(
                    "foreign {} {} changed:\n  before {o:?}\n  after  {n:?}",
                    o.kind, o.id
                )),
                Some(_) => None,
            })
            .collect()
    }

    /// Makes them: an untagged VPC with a subnet and a security group (with a rule), a VPC
    /// tagged as another stack's `aws_vpc.main`, an untagged Elastic IP and launch template, an
    /// untagged auto scaling group, an IAM role and policy outside `/infra/`, and an IAM policy
    /// under another stack's path.
    pub(crate) async fn create(d: &Direct, tag: &str) -> Foreign {
        let vpc = d
            .ec2
            .create_vpc()
            .cidr_block("10.201.0.0/16")
            .send()
            .await
            .expect("CreateVpc")
            .vpc
            .and_then(|v| v.vpc_id)
            .unwrap();
        let subnet = d
            .ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block("10.201.1.0/24")
            .availability_zone("us-east-1a")
            .send()
            .await
            .expect("CreateSubnet")
            .subnet
            .and_then(|s| s.subnet_id)
            .unwrap();
        let sg = d
            .ec2
            .create_security_group()
            .group_name(format!("foreign-{tag}"))
            .description("made by hand")
            .vpc_id(&vpc)
            .send()
            .await
            .expect("CreateSecurityGroup")
            .group_id
            .unwrap();
        d.ec2
            .authorize_security_group_ingress()
            .group_id(&sg)
            .ip_protocol("tcp")
            .from_port(443)
            .to_port(443)
            .cidr_ip("10.0.0.0/8")
            .send()
            .await
            .expect("AuthorizeSecurityGroupIngress");
        let other_stack = format!("foreign-{tag}");
        d.ec2
            .create_vpc()
            .cidr_block("10.202.0.0/16")
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Vpc)
                    .tags(
                        Tag::builder()
                            .key("infra:stack")
                            .value(&other_stack)
                            .build(),
                    )
                    .tags(Tag::builder().key("infra:id").value("aws_vpc.main").build())
                    .build(),
            )
            .send()
            .await
            .expect("CreateVpc (another stack's)");
        d.ec2
            .allocate_address()
            .send()
            .await
            .expect("AllocateAddress");
        d.ec2
            .create_launch_template()
            .launch_template_name(format!("foreign-{tag}"))
            .launch_template_data(
                aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                    .image_id("ami-12c6146b")
                    .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                    .build(),
            )
            .send()
            .await
            .expect("CreateLaunchTemplate");
        d.asg
            .create_auto_scaling_group()
            .auto_scaling_group_name(format!("foreign-{tag}"))
            .launch_template(
                aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                    .launch_template_name(format!("foreign-{tag}"))
                    .build(),
            )
            .min_size(0)
            .max_size(0)
            .vpc_zone_identifier(&subnet)
            .send()
            .await
            .expect("CreateAutoScalingGroup");
        d.iam
            .create_role()
            .role_name(format!("foreign-{tag}"))
            .assume_role_policy_document(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
            )
            .send()
            .await
            .expect("CreateRole");
        let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:DescribeVpcs","Resource":"*"}]}"#;
        d.iam
            .create_policy()
            .policy_name(format!("foreign-{tag}"))
            .policy_document(doc)
            .send()
            .await
            .expect("CreatePolicy");
        d.iam
            .create_policy()
            .policy_name(format!("{other_stack}-node"))
            .path(format!("/infra/{other_stack}/"))
            .policy_document(doc)
            .send()
            .await
            .expect("CreatePolicy (another stack's)");

        let now = Inventory::take(d).await;
        let objs: Vec<Obj> = now
            .objs
            .iter()
            .filter(|o| {
                o.id == vpc
                    || o.id == subnet
                    || o.id == sg
                    || o.tags.get("infra:stack") == Some(&other_stack)
                    || o.name.starts_with("foreign-")
                    || o.path.contains(&other_stack)
                    || (o.kind == "aws_eip" && o.tags.is_empty())
            })
            .cloned()
            .collect();
        let kinds: BTreeSet<&str> = objs.iter().map(|o| o.kind).collect();
        for kind in [
            "aws_vpc",
            "aws_subnet",
            "aws_security_group",
            "aws_eip",
            "aws_launch_template",
            "aws_autoscaling_group",
            "aws_iam_role",
            "aws_iam_policy",
        ] {
            assert!(
                kinds.contains(kind),
                "the foreign {kind} is in the inventory: {objs:?}"
            );
        }
        Foreign { objs }
    }
}

/// The checks themselves catch what they are meant to: a duplicate address, an object owned
/// without an address, a new untagged object, a changed and a deleted foreign object, a lock
/// left behind, and (apart from those) an HTTP API's integration no route targets.
#[tokio::test(flavor = "multi_thread")]
async fn the_invariant_checks_catch_duplicates_orphans_foreign_changes_and_a_left_lock() {
    let Some(moto) = crate::env::private_moto("inventory::the_invariant_checks_catch") else {
        return;
    };
    let d = Direct::new(&moto.url).await;
    let foreign = Foreign::create(&d, "selftest").await;
    let before = Inventory::take(&d).await;
    let stack = "selftest";
    assert!(violations(stack, &before, &before, &foreign).is_empty());

    let tagged = |pairs: &[(&str, &str)]| {
        let mut b = TagSpecification::builder().resource_type(ResourceType::Vpc);
        for (k, v) in pairs {
            b = b.tags(Tag::builder().key(*k).value(*v).build());
        }
        b.build()
    };
    let mut vpcs = Vec::new();
    for _ in 0..2 {
        let out = d
            .ec2
            .create_vpc()
            .cidr_block("10.210.0.0/16")
            .tag_specifications(tagged(&[
                ("infra:stack", stack),
                ("infra:id", "aws_vpc.main"),
            ]))
            .send()
            .await
            .unwrap();
        vpcs.push(out.vpc.and_then(|v| v.vpc_id).unwrap());
    }
    d.ec2
        .create_vpc()
        .cidr_block("10.211.0.0/16")
        .tag_specifications(tagged(&[("infra:stack", stack)]))
        .send()
        .await
        .unwrap();
    let orphan = d
        .ec2
        .create_subnet()
        .vpc_id(&vpcs[0])
        .cidr_block("10.210.1.0/24")
        .send()
        .await
        .unwrap()
        .subnet
        .and_then(|s| s.subnet_id)
        .unwrap();
    let sg = foreign
        .objs
        .iter()
        .find(|o| o.kind == "aws_security_group")
        .unwrap()
        .id
        .clone();
    d.ec2
        .revoke_security_group_ingress()
        .group_id(&sg)
        .ip_protocol("tcp")
        .from_port(443)
        .to_port(443)
        .cidr_ip("10.0.0.0/8")
        .send()
        .await
        .unwrap();
    let role = foreign
        .objs
        .iter()
        .find(|o| o.kind == "aws_iam_role")
        .unwrap()
        .name
        .clone();
    d.iam.delete_role().role_name(&role).send().await.unwrap();
    d.iam
        .create_policy()
        .policy_name(format!("{stack}.infra-lock"))
        .path(format!("/infra/{stack}/"))
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"iam:PassRole","Resource":"*"}]}"#,
        )
        .send()
        .await
        .unwrap();

    let now = Inventory::take(&d).await;
    let found = violations(stack, &before, &now, &foreign).join("\n");
    for needle in [
        "duplicate: aws_vpc.main is held by",
        "owned without an address: aws_vpc:",
        &format!("untagged objects appeared: [(\"aws_subnet\", \"{orphan}\")]"),
        &format!("foreign aws_security_group {sg} changed"),
        &format!("foreign aws_iam_role arn:aws:iam::123456789012:role/{role} was deleted"),
        "the apply lock was left behind: aws_iam_policy:selftest.infra-lock",
    ] {
        assert!(found.contains(needle), "`{needle}` in:\n{found}");
    }
    assert!(leftovers(stack, &now).is_empty());
    // An integration of the stack's API that no route targets is a leftover (not a violation
    // of a run that gave up halfway); one of a foreign API is not the stack's.
    let mut leftover = Vec::new();
    for (owner, tags) in [
        (
            "mine",
            std::collections::HashMap::from([("infra:stack".to_string(), stack.to_string())]),
        ),
        ("foreign", std::collections::HashMap::new()),
    ] {
        let api = d
            .apigw
            .create_api()
            .name(format!("{stack}-{owner}"))
            .protocol_type(aws_sdk_apigatewayv2::types::ProtocolType::Http)
            .set_tags(Some(tags))
            .send()
            .await
            .unwrap();
        let api_id = api.api_id().unwrap().to_string();
        let integration = d
            .apigw
            .create_integration()
            .api_id(&api_id)
            .integration_type(aws_sdk_apigatewayv2::types::IntegrationType::AwsProxy)
            .integration_uri("arn:aws:lambda:us-east-1:123456789012:function:f")
            .payload_format_version("2.0")
            .send()
            .await
            .unwrap();
        leftover.push((
            owner,
            api_id,
            integration.integration_id().unwrap().to_string(),
        ));
    }
    let with_api = Inventory::take(&d).await;
    let (_, api, integration) = &leftover[0];
    assert_eq!(
        leftovers(stack, &with_api),
        vec![format!(
            "an integration no route targets: {integration} of API {api}"
        )]
    );
    assert!(
        !violations(stack, &before, &with_api, &foreign)
            .iter()
            .any(|v| v.contains("integration")),
        "a leftover integration is not an invariant violation"
    );
    for (_, api, _) in &leftover {
        d.apigw.delete_api().api_id(api).send().await.unwrap();
    }
    let declared = BTreeSet::from(["aws_vpc.main".to_string(), "aws_subnet.a".to_string()]);
    let (missing, extra) = compare_declared(stack, &declared, &now);
    assert_eq!(missing, vec!["aws_subnet.a".to_string()]);
    assert_eq!(extra.len(), 2, "{extra:?}");
}
