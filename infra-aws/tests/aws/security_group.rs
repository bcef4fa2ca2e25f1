//! Security groups: rules are changed one by one. Changing one rule must leave the others (and
//! their rule ids) alone — the failure mode of terraform-provider-aws#12670 is revoking all of a
//! group's rules to re-authorize them.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, IpPermission, IpRange};
use infra_aws::*;
use infra_core::dsl::Stack;
use infra_core::plan::Action;

use crate::support::{
    action, apply, assert_noop, destroy, fields, id_of, moto, plan, unique, Moto,
};

struct Shape {
    https_port: u16,
    https_note: &'static str,
    bastion_description: &'static str,
}

fn stack(name: &str, shape: &Shape) -> Stack {
    let mut s = Stack::new(name);
    let vpc = s.add(Vpc::new("main").cidr("10.50.0.0/16"));
    let bastion = s.add(
        SecurityGroup::new("bastion")
            .vpc(&vpc)
            .description(shape.bastion_description)
            .ingress(Rule::tcp(22).cidr("198.51.100.0/24").describe("admins")),
    );
    s.add(
        SecurityGroup::new("cluster")
            .vpc(&vpc)
            .ingress(
                Rule::tcp(22)
                    .group(&bastion)
                    .describe("SSH from the bastion"),
            )
            .ingress(
                Rule::tcp(shape.https_port)
                    .cidr("0.0.0.0/0")
                    .describe(shape.https_note),
            )
            .ingress(Rule::udp(4789).from_self().describe("vxlan"))
            .ingress(Rule::tcp(2377).from_self())
            .egress_all(),
    );
    s
}

/// Rule id → a readable summary, for the group.
async fn rule_ids(m: &Moto, group: &str) -> BTreeMap<String, String> {
    let out = m
        .ec2
        .describe_security_group_rules()
        .filters(Filter::builder().name("group-id").values(group).build())
        .send()
        .await
        .unwrap();
    out.security_group_rules()
        .iter()
        .map(|r| {
            (
                r.security_group_rule_id().unwrap_or_default().to_string(),
                format!(
                    "{} {} {:?}-{:?} {} {}",
                    if r.is_egress() == Some(true) {
                        "egress"
                    } else {
                        "ingress"
                    },
                    r.ip_protocol().unwrap_or(""),
                    r.from_port(),
                    r.to_port(),
                    r.cidr_ipv4().unwrap_or(""),
                    r.referenced_group_info()
                        .and_then(|g| g.group_id())
                        .unwrap_or("")
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn changing_one_rule_leaves_the_others_untouched() {
    let Some(m) = moto("changing_one_rule_leaves_the_others_untouched").await else {
        return;
    };
    let engine = m.engine();
    let name = unique("secgrp");
    let mut shape = Shape {
        https_port: 443,
        https_note: "public app",
        bastion_description: "Bastion",
    };
    let s = stack(&name, &shape);
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after create").await;
    let cluster = id_of(&m, &name, "aws_security_group.cluster").await;
    let before = rule_ids(&m, &cluster).await;
    assert_eq!(
        before.len(),
        5,
        "4 ingress rules and the declared egress: {before:#?}"
    );

    // One rule's port changes: one revoke, one authorize, nothing else.
    shape.https_port = 8443;
    let s = stack(&name, &shape);
    let p = plan(&engine, &s).await;
    assert_eq!(p.plan.actionable().count(), 1);
    assert_eq!(fields(&p, "aws_security_group.cluster"), ["ingress"]);
    let calls_before = m.provider.calls_by_operation();
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after changing one rule").await;
    let after = rule_ids(&m, &cluster).await;
    let kept: Vec<&String> = before.keys().filter(|k| after.contains_key(*k)).collect();
    assert_eq!(
        kept.len(),
        4,
        "the 4 unchanged rules keep their ids:\nbefore {before:#?}\nafter {after:#?}"
    );
    let new: Vec<&String> = after.values().filter(|v| v.contains("8443")).collect();
    assert_eq!(new.len(), 1, "{after:#?}");
    assert!(!after
        .values()
        .any(|v| v.contains("443") && !v.contains("8443")));
    let calls = m.provider.calls_by_operation();
    let delta =
        |op: &str| calls.get(op).copied().unwrap_or(0) - calls_before.get(op).copied().unwrap_or(0);
    assert_eq!(
        delta("ec2.RevokeSecurityGroupIngress"),
        1,
        "exactly one rule revoked"
    );
    assert_eq!(
        delta("ec2.AuthorizeSecurityGroupIngress"),
        1,
        "exactly one rule authorized"
    );

    // A description change is made in place: same rule id. (On a CIDR rule: moto ignores
    // description updates of group-to-group rules, which AWS applies.)
    shape.https_note = "the public app port";
    let s = stack(&name, &shape);
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after a description change").await;
    assert_eq!(
        rule_ids(&m, &cluster).await.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );

    // Drift: a rule added by hand is revoked, alone.
    m.ec2
        .authorize_security_group_ingress()
        .group_id(&cluster)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(3306)
                .to_port(3306)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let p = plan(&engine, &s).await;
    assert_eq!(action(&p, "aws_security_group.cluster"), Action::Update);
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after repairing drift").await;
    assert_eq!(
        rule_ids(&m, &cluster).await.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );

    // Replacement of a referenced group (its description is immutable): the referencing rule
    // follows the new group, the referencing group stays.
    let bastion_before = id_of(&m, &name, "aws_security_group.bastion").await;
    shape.bastion_description = "Bastion: SSH from admins";
    let s = stack(&name, &shape);
    let p = plan(&engine, &s).await;
    assert!(action(&p, "aws_security_group.bastion").is_replace());
    assert_eq!(action(&p, "aws_security_group.cluster"), Action::Update);
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after replacing the bastion group").await;
    let bastion_after = id_of(&m, &name, "aws_security_group.bastion").await;
    assert_ne!(bastion_after, bastion_before);
    assert_eq!(
        id_of(&m, &name, "aws_security_group.cluster").await,
        cluster
    );
    let rules = rule_ids(&m, &cluster).await;
    assert!(
        rules.values().any(|r| r.contains(&bastion_after)),
        "{rules:#?}"
    );
    assert!(
        !rules.values().any(|r| r.contains(&bastion_before)),
        "{rules:#?}"
    );

    destroy(&m, &engine, &s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_without_declared_egress_has_none() {
    let Some(m) = moto("a_group_without_declared_egress_has_none").await else {
        return;
    };
    let engine = m.engine();
    let name = unique("sge");
    let mut s = Stack::new(&name);
    let vpc = s.add(Vpc::new("main").cidr("10.51.0.0/16"));
    s.add(SecurityGroup::new("closed").vpc(&vpc));
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after create").await;
    let id = id_of(&m, &name, "aws_security_group.closed").await;
    assert!(
        rule_ids(&m, &id).await.is_empty(),
        "AWS's default allow-all egress must be gone"
    );
    destroy(&m, &engine, &s).await;
}

fn ipsec_stack(name: &str, esp: bool, gre: bool) -> Stack {
    let mut s = Stack::new(name);
    let vpc = s.add(Vpc::new("main").cidr("10.52.0.0/16"));
    let mut g = SecurityGroup::new("cluster")
        .vpc(&vpc)
        .ingress(Rule::udp(4789).from_self().describe("VXLAN"));
    if esp {
        g = g
            .ingress(Rule::esp().from_self().describe("ESP"))
            .egress(Rule::esp().cidr("10.52.0.0/16"));
    }
    if gre {
        g = g.ingress(Rule::protocol(47).cidr("10.0.0.0/8"));
    }
    s.add(g);
    s
}

/// Rules of any IP protocol (ESP = 50, GRE = 47): authorized as AWS takes them, read back to
/// the declared form (a re-plan is empty), added and removed alone.
#[tokio::test(flavor = "multi_thread")]
async fn rules_of_any_ip_protocol_converge_and_read_back_as_declared() {
    let Some(m) = moto("rules_of_any_ip_protocol_converge_and_read_back_as_declared").await else {
        return;
    };
    let engine = m.engine();
    let name = unique("sgesp");
    let s = ipsec_stack(&name, true, false);
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after create").await;
    let id = id_of(&m, &name, "aws_security_group.cluster").await;
    let rules = rule_ids(&m, &id).await;
    assert_eq!(rules.len(), 3, "{rules:#?}");
    assert!(
        rules
            .values()
            .any(|r| r.starts_with("ingress 50 ") && r.ends_with(&id)),
        "ESP from the group itself: {rules:#?}"
    );
    assert!(
        rules
            .values()
            .any(|r| r.starts_with("egress 50 ") && r.contains("10.52.0.0/16")),
        "{rules:#?}"
    );

    // Another protocol: one authorize, the other rules keep their ids.
    let s = ipsec_stack(&name, true, true);
    let p = plan(&engine, &s).await;
    assert_eq!(fields(&p, "aws_security_group.cluster"), ["ingress"]);
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after adding GRE").await;
    let after = rule_ids(&m, &id).await;
    assert!(rules.keys().all(|k| after.contains_key(k)), "{after:#?}");
    assert!(after.values().any(|r| r.starts_with("ingress 47 ")));

    // Removing ESP revokes both ESP rules, and only them.
    let s = ipsec_stack(&name, false, true);
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after removing ESP").await;
    let last = rule_ids(&m, &id).await;
    assert_eq!(last.len(), 2, "{last:#?}");
    assert!(!last.values().any(|r| r.contains(" 50 ")), "{last:#?}");
    destroy(&m, &engine, &s).await;
}
