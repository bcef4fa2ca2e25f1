//! `aws_security_group`, with its rules diffed rule by rule.
//!
//! A rule is one protocol and port range with one source (a CIDR block, another group, or the
//! group itself), as the builder emits it. An update authorizes the rules that are new, revokes
//! the rules that are gone and changes descriptions in place; a rule that didn't change is never
//! revoked (the failure mode of terraform-provider-aws#12670, where changing one rule of a group
//! revoked and re-authorized all of them, briefly cutting traffic).

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, Ipv6Range, ResourceType, UserIdGroupPair};
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::Value;

use super::{AwsKind, Listings};
use crate::kinds::network::{canonical_protocol, portless, SECURITY_GROUP};
use crate::provider::common::{observed_from, req_str, updated_from, Cx, Props};
use crate::provider::ec2_common::{owned, owned_filters, sync_tags, tag_spec};
use crate::provider::errors::{AwsResult, ProviderResult};
use crate::provider::import::{adopt_ec2, discovered, observed_at, Discovery, Unowned};

/// The `aws_security_group` handler.
pub(super) struct SecurityGroup;

impl KindHandler for SecurityGroup {
    fn schema(&self) -> &'static KindSchema {
        &SECURITY_GROUP
    }
}

/// Inbound or outbound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    fn field(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

type Rule = BTreeMap<String, Value>;

/// The rules of AWS permissions, one per source, in the builder's shape.
fn rules_of(perms: &[IpPermission], own_id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for p in perms {
        // The builder's canonical form: names for tcp/udp/icmp, numbers for the rest, and 0-0
        // for protocols without ports (AWS omits their ports; some endpoints return -1 or what
        // was sent).
        let protocol = canonical_protocol(p.ip_protocol().unwrap_or("-1"));
        let protocol = protocol.as_str();
        let (from, to) = if portless(protocol) {
            (0, 0)
        } else {
            (p.from_port().unwrap_or(0), p.to_port().unwrap_or(0))
        };
        let base = |source: &str, v: Value, description: Option<&str>| {
            let mut m = Rule::new();
            m.insert("protocol".into(), Value::from(protocol));
            m.insert("from_port".into(), Value::from(from));
            m.insert("to_port".into(), Value::from(to));
            m.insert(source.into(), v);
            if let Some(d) = description.filter(|d| !d.is_empty()) {
                m.insert("description".into(), Value::from(d));
            }
            Value::Map(m)
        };
        for r in p.ip_ranges() {
            if let Some(c) = r.cidr_ip() {
                out.push(base("cidr", Value::from(c), r.description()));
            }
        }
        for r in p.ipv6_ranges() {
            if let Some(c) = r.cidr_ipv6() {
                out.push(base("cidr", Value::from(c), r.description()));
            }
        }
        for g in p.user_id_group_pairs() {
            match g.group_id() {
                Some(id) if id == own_id => {
                    out.push(base("self", Value::Bool(true), g.description()))
                }
                Some(id) => out.push(base("group_id", Value::from(id), g.description())),
                None => {}
            }
        }
        // Prefix lists are not declarable: they show as a rule the declaration lacks, so the
        // plan reports them and an apply revokes them.
        for pl in p.prefix_list_ids() {
            if let Some(id) = pl.prefix_list_id() {
                out.push(base("prefix_list_id", Value::from(id), pl.description()));
            }
        }
    }
    out.sort_by_key(|v| v.to_json().to_string());
    out
}

/// One rule as an AWS permission.
fn permission(rule: &Rule, own_id: &str) -> IpPermission {
    let protocol = rule.get("protocol").and_then(Value::as_str).unwrap_or("-1");
    let mut p = IpPermission::builder().ip_protocol(protocol);
    if protocol == "-1" {
        // Every protocol: no ports.
    } else if portless(protocol) {
        // A protocol without ports (ESP, GRE, …): AWS allows every port whatever is sent, and
        // some endpoints (moto) refuse a rule without ports, so send "all" (-1).
        p = p.from_port(-1).to_port(-1);
    } else {
        p = p
            .from_port(rule.get("from_port").and_then(Value::as_i64).unwrap_or(0) as i32)
            .to_port(rule.get("to_port").and_then(Value::as_i64).unwrap_or(0) as i32);
    }
    let description = rule
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(cidr) = rule.get("cidr").and_then(Value::as_str) {
        if cidr.contains(':') {
            p = p.ipv6_ranges(
                Ipv6Range::builder()
                    .cidr_ipv6(cidr)
                    .set_description(description)
                    .build(),
            );
        } else {
            p = p.ip_ranges(
                IpRange::builder()
                    .cidr_ip(cidr)
                    .set_description(description)
                    .build(),
            );
        }
    } else if let Some(group) = rule.get("group_id").and_then(Value::as_str) {
        p = p.user_id_group_pairs(
            UserIdGroupPair::builder()
                .group_id(group)
                .set_description(description)
                .build(),
        );
    } else if rule.get("self") == Some(&Value::Bool(true)) {
        p = p.user_id_group_pairs(
            UserIdGroupPair::builder()
                .group_id(own_id)
                .set_description(description)
                .build(),
        );
    } else if let Some(pl) = rule.get("prefix_list_id").and_then(Value::as_str) {
        p = p.prefix_list_ids(
            aws_sdk_ec2::types::PrefixListId::builder()
                .prefix_list_id(pl)
                .set_description(description)
                .build(),
        );
    }
    p.build()
}

/// A rule's identity in AWS: everything but its description.
fn identity(rule: &Rule) -> String {
    let mut k = rule.clone();
    k.remove("description");
    Value::Map(k).to_json().to_string()
}

fn rules(v: Option<&Value>) -> BTreeMap<String, Rule> {
    v.and_then(Value::as_list)
        .unwrap_or(&[])
        .iter()
        .filter_map(Value::as_map)
        .map(|m| (identity(m), m.clone()))
        .collect()
}

async fn authorize(
    cx: &Cx<'_>,
    id: &str,
    dir: Direction,
    rule: &Rule,
) -> Result<(), ProviderError> {
    let p = permission(rule, id);
    // A retried attempt may find the rule there already.
    match dir {
        Direction::Ingress => {
            cx.c.ec2
                .authorize_security_group_ingress()
                .group_id(id)
                .ip_permissions(p)
                .send()
                .await
                .aws("AuthorizeSecurityGroupIngress")
                .ok_if(&["InvalidPermission.Duplicate"])
        }
        Direction::Egress => {
            cx.c.ec2
                .authorize_security_group_egress()
                .group_id(id)
                .ip_permissions(p)
                .send()
                .await
                .aws("AuthorizeSecurityGroupEgress")
                .ok_if(&["InvalidPermission.Duplicate"])
        }
    }
}

/// Revokes a rule; one that is gone already (also because the group it referred to was
/// deleted, which revoked it) is fine.
async fn revoke(cx: &Cx<'_>, id: &str, dir: Direction, rule: &Rule) -> Result<(), ProviderError> {
    let p = permission(rule, id);
    const GONE: &[&str] = &["InvalidPermission.NotFound", "InvalidGroup.NotFound"];
    match dir {
        Direction::Ingress => {
            cx.c.ec2
                .revoke_security_group_ingress()
                .group_id(id)
                .ip_permissions(p)
                .send()
                .await
                .aws("RevokeSecurityGroupIngress")
                .ok_if(GONE)
        }
        Direction::Egress => {
            cx.c.ec2
                .revoke_security_group_egress()
                .group_id(id)
                .ip_permissions(p)
                .send()
                .await
                .aws("RevokeSecurityGroupEgress")
                .ok_if(GONE)
        }
    }
}

async fn describe(cx: &Cx<'_>, id: &str, dir: Direction, rule: &Rule) -> Result<(), ProviderError> {
    let p = permission(rule, id);
    match dir {
        Direction::Ingress => {
            cx.c.ec2
                .update_security_group_rule_descriptions_ingress()
                .group_id(id)
                .ip_permissions(p)
                .send()
                .await
                .aws("UpdateSecurityGroupRuleDescriptionsIngress")?;
        }
        Direction::Egress => {
            cx.c.ec2
                .update_security_group_rule_descriptions_egress()
                .group_id(id)
                .ip_permissions(p)
                .send()
                .await
                .aws("UpdateSecurityGroupRuleDescriptionsEgress")?;
        }
    }
    Ok(())
}

/// Takes one direction's rules from `have` to `want`, rule by rule. New rules are authorized
/// before old ones are revoked, so a replaced rule never leaves a gap.
async fn converge_rules(
    cx: &Cx<'_>,
    id: &str,
    dir: Direction,
    have: &BTreeMap<String, Rule>,
    want: &BTreeMap<String, Rule>,
) -> Result<(), ProviderError> {
    for (k, rule) in want {
        match have.get(k) {
            None => authorize(cx, id, dir, rule).await?,
            Some(old) if old.get("description") != rule.get("description") => {
                describe(cx, id, dir, rule).await?
            }
            Some(_) => {}
        }
    }
    let gone: BTreeSet<&String> = have.keys().filter(|k| !want.contains_key(*k)).collect();
    for k in gone {
        revoke(cx, id, dir, &have[k]).await?;
    }
    Ok(())
}

async fn read_groups(
    cx: &Cx<'_>,
    address: Option<&Address>,
) -> Result<Vec<Observed>, ProviderError> {
    let groups =
        cx.c.ec2_read
            .describe_security_groups()
            .set_filters(Some(owned_filters(cx, address)))
            .into_paginator()
            .page_size(1000)
            .items()
            .send()
            .try_collect()
            .await
            .aws("DescribeSecurityGroups")?;
    Ok(groups
        .iter()
        .filter_map(|g| {
            let o = owned(cx, SECURITY_GROUP.kind, g.tags(), address)?;
            let id = g.group_id().unwrap_or_default();
            Some(group_props(cx, g, &o.user).observed(o, id))
        })
        .collect())
}

/// A group's properties as a read gives them (owned read, discovery and adoption share it).
fn group_props(
    cx: &Cx<'_>,
    g: &aws_sdk_ec2::types::SecurityGroup,
    user: &BTreeMap<String, String>,
) -> Props {
    let id = g.group_id().unwrap_or_default();
    let arn = g.security_group_arn().map(str::to_string).or_else(|| {
        g.owner_id()
            .map(|owner| format!("arn:aws:ec2:{}:{owner}:security-group/{id}", cx.c.region))
    });
    let mut p = Props::default();
    p.set("vpc_id", g.vpc_id())
        .set("description", g.description())
        .set("ingress", Value::List(rules_of(g.ip_permissions(), id)))
        .set(
            "egress",
            Value::List(rules_of(g.ip_permissions_egress(), id)),
        )
        .set("arn", arn)
        .tags(user);
    p
}

#[async_trait]
impl AwsKind for SecurityGroup {
    /// Pages of up to 1000 groups (`vpc` filter: the `vpc-id` filter); named by their `Name`
    /// tag, else their group name. A VPC's `default` group is listed as inexpressible (AWS
    /// makes it with the VPC and it can't be deleted); rules to prefix lists are noted.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        let mut req = cx.c.ec2_read.describe_security_groups().max_results(1000);
        if let Some(vpc) = &pass.filter.vpc {
            req = req.filters(Filter::builder().name("vpc-id").values(vpc).build());
        }
        let mut pages = req.into_paginator().send();
        while let Some(page) = pages.next().await {
            for g in page.aws("DescribeSecurityGroups")?.security_groups() {
                let Some(tags) = Unowned::ec2(g.tags()) else {
                    continue;
                };
                let id = g.group_id().unwrap_or_default();
                let name = tags.name.as_deref().or(g.group_name()).unwrap_or(id);
                if !pass.matches(name, &tags.all) {
                    continue;
                }
                if g.group_name() == Some("default") {
                    pass.inexpressible(
                        "EC2 default security group",
                        id,
                        "a VPC's default group, which AWS makes with the VPC and never deletes",
                    );
                    continue;
                }
                let props = group_props(cx, g, &tags.user);
                let mut found = discovered(&SECURITY_GROUP, id, Some(name), props);
                for (field, perms) in [
                    ("ingress", g.ip_permissions()),
                    ("egress", g.ip_permissions_egress()),
                ] {
                    for p in perms {
                        for pl in p.prefix_list_ids() {
                            found.notes.push(format!(
                                "an {field} rule from the prefix list {}: infra declares rules \
                                 from CIDR blocks and groups only",
                                pl.prefix_list_id().unwrap_or("?")
                            ));
                        }
                    }
                }
                if g.group_name().is_some_and(|n| n != name) {
                    found.notes.push(format!(
                        "its AWS name is `{}`; a group declared by infra is named \
                         `<stack>-<name>` (only a re-creation would rename it)",
                        g.group_name().unwrap_or_default()
                    ));
                }
                pass.object(found);
            }
        }
        Ok(())
    }

    async fn read_unowned(
        &self,
        cx: &Cx<'_>,
        id: &str,
        address: &Address,
    ) -> Result<Option<Observed>, ProviderError> {
        let out =
            cx.c.ec2_read
                .describe_security_groups()
                .group_ids(id)
                .send()
                .await
                .aws("DescribeSecurityGroups")
                .or_not_found()?;
        Ok(out
            .as_ref()
            .and_then(|o| o.security_groups().first())
            .map(|g| {
                let tags = Unowned::ec2_any(g.tags());
                observed_at(address, id, group_props(cx, g, &tags.user), &tags)
            }))
    }

    async fn adopt(
        &self,
        cx: &Cx<'_>,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        adopt_ec2(cx, current, to).await
    }
    async fn read(&self, cx: &Cx<'_>, _: &Listings) -> Result<Vec<Observed>, ProviderError> {
        read_groups(cx, None).await
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        Ok(read_groups(cx, Some(a)).await?.pop())
    }

    async fn create(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let out =
            cx.c.ec2
                .create_security_group()
                .group_name(cx.physical_name(&d.address))
                .description(req_str(d, "description")?)
                .vpc_id(req_str(d, "vpc_id")?)
                .tag_specifications(tag_spec(cx, ResourceType::SecurityGroup, d))
                .send()
                .await
                .aws("CreateSecurityGroup")?;
        let id = out
            .group_id()
            .ok_or_else(|| {
                ProviderError::retryable("EmptyResponse", "CreateSecurityGroup: no group id")
            })?
            .to_string();
        // AWS gives a new group an allow-all egress rule; the declaration is what counts.
        let mut default_egress = Rule::new();
        default_egress.insert("protocol".into(), Value::from("-1"));
        default_egress.insert("from_port".into(), Value::Int(0));
        default_egress.insert("to_port".into(), Value::Int(0));
        default_egress.insert("cidr".into(), Value::from("0.0.0.0/0"));
        let have_egress = BTreeMap::from([(identity(&default_egress), default_egress)]);
        converge_rules(
            cx,
            &id,
            Direction::Ingress,
            &BTreeMap::new(),
            &rules(d.get("ingress")),
        )
        .await?;
        converge_rules(
            cx,
            &id,
            Direction::Egress,
            &have_egress,
            &rules(d.get("egress")),
        )
        .await?;
        let arn = out.security_group_arn().map(str::to_string);
        Ok(observed_from(d, id, &[("arn", Value::from(arn))]))
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        current: &Observed,
        d: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError> {
        for dir in [Direction::Ingress, Direction::Egress] {
            if changed.iter().any(|c| c == dir.field()) {
                converge_rules(
                    cx,
                    &current.id,
                    dir,
                    &rules(current.props.get(dir.field())),
                    &rules(d.get(dir.field())),
                )
                .await?;
            }
        }
        sync_tags(cx, &current.id, current, d).await?;
        Ok(updated_from(current, d))
    }

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
        // AWS refuses to delete a group that other groups' rules refer to. The rules of the stack's
        // own groups that refer to it are revoked first: when the group is being replaced, those
        // groups' own updates authorize the rule for the new group (their plan holds a reference
        // to it); when it is simply removed, they no longer declare the rule. Rules of groups
        // outside the stack are not the stack's to change: the deletion fails then, as on AWS.
        // (Moto deletes a referenced group and leaves the rule dangling; revoking first keeps the
        // same outcome there.)
        revoke_references(cx, &current.id).await?;
        delete_group(cx, &current.id).await
    }
}

async fn delete_group(cx: &Cx<'_>, id: &str) -> Result<(), ProviderError> {
    // Network interfaces of terminating instances keep the group in use for a while.
    cx.c.ec2
        .delete_security_group()
        .group_id(id)
        .send()
        .await
        .aws_retrying("DeleteSecurityGroup", &["DependencyViolation"])?;
    Ok(())
}

/// Revokes the rules of the stack's other groups that refer to group `id`.
async fn revoke_references(cx: &Cx<'_>, id: &str) -> Result<(), ProviderError> {
    // AWS filters on references, ingress and egress apart.
    // Filtered on the reference only (cheap everywhere); ownership is checked on the result.
    let referring = |filter: &'static str| {
        cx.c.ec2_read
            .describe_security_groups()
            .filters(Filter::builder().name(filter).values(id).build())
            .into_paginator()
            .page_size(1000)
            .items()
            .send()
            .try_collect()
    };
    let (ingress, egress) = tokio::try_join!(
        referring("ip-permission.group-id"),
        referring("egress.ip-permission.group-id")
    )
    .aws("DescribeSecurityGroups")?;
    for g in ingress.iter().chain(&egress) {
        let Some(other) = g.group_id().filter(|other| *other != id) else {
            continue;
        };
        if owned(cx, SECURITY_GROUP.kind, g.tags(), None).is_none() {
            continue;
        }
        for (dir, perms) in [
            (Direction::Ingress, g.ip_permissions()),
            (Direction::Egress, g.ip_permissions_egress()),
        ] {
            for r in rules_of(perms, other) {
                let Some(rule) = r.as_map() else { continue };
                if rule.get("group_id").and_then(Value::as_str) == Some(id) {
                    tracing::info!(group = %other, referenced = %id, "revoking a rule that refers to a group being deleted");
                    revoke(cx, other, dir, rule).await?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_expand_to_one_rule_per_source() {
        let p = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(22)
            .to_port(22)
            .ip_ranges(
                IpRange::builder()
                    .cidr_ip("10.0.0.0/8")
                    .description("a")
                    .build(),
            )
            .ip_ranges(IpRange::builder().cidr_ip("192.168.0.0/16").build())
            .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-self").build())
            .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-other").build())
            .build();
        let all = IpPermission::builder()
            .ip_protocol("-1")
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build();
        let rules = rules_of(&[p, all], "sg-self");
        assert_eq!(rules.len(), 5);
        let text: Vec<String> = rules.iter().map(|r| r.to_json().to_string()).collect();
        assert!(text.iter().any(|t| t.contains("\"self\":true")), "{text:?}");
        assert!(text.iter().any(|t| t.contains("sg-other")));
        assert!(text
            .iter()
            .any(|t| t == r#"{"cidr":"0.0.0.0/0","from_port":0,"protocol":"-1","to_port":0}"#));
        // Round trip through the permission form.
        for r in &rules {
            let back = rules_of(&[permission(r.as_map().unwrap(), "sg-self")], "sg-self");
            assert_eq!(&back[0], r);
        }
    }

    #[test]
    fn any_ip_protocol_reads_back_as_the_builder_declares_it() {
        // ESP as AWS returns it (no ports) and as moto returns it (the -1 ports sent).
        for (from, to) in [(None, None), (Some(-1), Some(-1)), (Some(0), Some(0))] {
            let p = IpPermission::builder()
                .ip_protocol("50")
                .set_from_port(from)
                .set_to_port(to)
                .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-self").build())
                .build();
            let rules = rules_of(&[p], "sg-self");
            let declared = crate::kinds::Rule::esp().from_self();
            let declared = declared_value(declared);
            assert_eq!(rules, vec![declared], "ports {from:?}-{to:?}");
        }
        // Numbers of named protocols read back by name.
        let p = IpPermission::builder()
            .ip_protocol("6")
            .from_port(80)
            .to_port(80)
            .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/8").build())
            .build();
        assert_eq!(
            rules_of(&[p], "sg-self"),
            vec![declared_value(
                crate::kinds::Rule::tcp(80).cidr("10.0.0.0/8")
            )]
        );
        // What is sent for ESP: ports -1 (all), which AWS ignores and moto requires.
        let esp = declared_value(crate::kinds::Rule::esp().cidr("10.0.0.0/8"));
        let sent = permission(esp.as_map().unwrap(), "sg-self");
        assert_eq!(sent.ip_protocol(), Some("50"));
        assert_eq!((sent.from_port(), sent.to_port()), (Some(-1), Some(-1)));
        let all = declared_value(crate::kinds::Rule::all().cidr("10.0.0.0/8"));
        let sent = permission(all.as_map().unwrap(), "sg-self");
        assert_eq!((sent.from_port(), sent.to_port()), (None, None));
    }

    /// A rule as the builder stores it in the group.
    fn declared_value(rule: crate::kinds::Rule) -> Value {
        use infra_core::Resource;
        let sg = crate::kinds::SecurityGroup::new("g").ingress(rule);
        sg.spec().get("ingress").unwrap().as_list().unwrap()[0].clone()
    }

    #[test]
    fn identity_ignores_the_description() {
        let mut a = Rule::new();
        a.insert("protocol".into(), Value::from("tcp"));
        a.insert("cidr".into(), Value::from("10.0.0.0/8"));
        let mut b = a.clone();
        b.insert("description".into(), Value::from("x"));
        assert_eq!(identity(&a), identity(&b));
    }
}
