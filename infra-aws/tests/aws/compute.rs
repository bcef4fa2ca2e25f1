//! Compute kinds on moto: launch templates (a change is a new version with the full data, and
//! the auto scaling group follows it), auto scaling groups, target-tracking policies, lifecycle
//! hooks and the AMI lookup.

use aws_sdk_ec2::types::{InstanceType, LaunchTemplateHttpTokensState};
use infra_aws::*;
use infra_core::dsl::{Resource, Stack};
use infra_core::plan::Action;
use infra_core::render::plan_text;
use infra_core::Value;

use crate::support::{
    action, apply, assert_noop, destroy, fields, id_of, moto, observed, plan, unique, Moto,
};

struct Shape {
    instance_type: &'static str,
    user_data: &'static str,
    cpu_target: Option<f64>,
}

fn stack(name: &str, shape: &Shape) -> Stack {
    let mut s = Stack::new(name);
    let vpc = s.add(Vpc::new("main").cidr("10.60.0.0/16"));
    let a = s.add(
        Subnet::new("a")
            .vpc(&vpc)
            .cidr("10.60.1.0/24")
            .az("us-east-1a"),
    );
    let b = s.add(
        Subnet::new("b")
            .vpc(&vpc)
            .cidr("10.60.2.0/24")
            .az("us-east-1b"),
    );
    let sg = s.add(SecurityGroup::new("nodes").vpc(&vpc).egress_all());
    let lt = s.add(
        LaunchTemplate::new("node")
            .image("ami-12c6146b")
            .instance_type(shape.instance_type)
            .user_data(shape.user_data)
            .security_group(&sg)
            .tag("team", "platform"),
    );
    let asg = s.add(
        Asg::new("nodes")
            .launch_template(&lt)
            .subnets(&[&a, &b])
            .size(1, 3, 1)
            .health_check("EC2", 120)
            .tag("role", "node")
            .ignore_changes(&["desired_capacity"]),
    );
    if let Some(t) = shape.cpu_target {
        s.add(
            ScalingPolicy::target_tracking("cpu")
                .asg(&asg)
                .cpu_target(t),
        );
    }
    s
}

async fn latest_data(m: &Moto, lt: &str) -> (i64, aws_sdk_ec2::types::ResponseLaunchTemplateData) {
    let out = m
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(lt)
        .versions("$Latest")
        .send()
        .await
        .unwrap();
    let v = &out.launch_template_versions()[0];
    (
        v.version_number().unwrap(),
        v.launch_template_data().unwrap().clone(),
    )
}

async fn asg_version(m: &Moto, name: &str) -> String {
    let out = m
        .asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .unwrap();
    out.auto_scaling_groups()[0]
        .launch_template()
        .and_then(|l| l.version())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn launch_template_change_makes_a_new_version_and_the_asg_follows() {
    let Some(m) = moto("launch_template_change_makes_a_new_version_and_the_asg_follows").await
    else {
        return;
    };
    let engine = m.engine();
    let name = unique("lt");
    let mut shape = Shape {
        instance_type: "t3.micro",
        user_data: "#!/bin/sh\necho v1\n",
        cpu_target: Some(50.0),
    };
    let s = stack(&name, &shape);
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after create").await;
    let lt = id_of(&m, &name, "aws_launch_template.node").await;
    let group = format!("{name}-nodes");
    assert_eq!(id_of(&m, &name, "aws_autoscaling_group.nodes").await, group);

    // Secure by default, in the data AWS holds.
    let (v, data) = latest_data(&m, &lt).await;
    assert_eq!(v, 1);
    assert_eq!(
        data.metadata_options().and_then(|o| o.http_tokens()),
        Some(&LaunchTemplateHttpTokensState::Required)
    );
    let ebs = data.block_device_mappings()[0].ebs().unwrap();
    assert_eq!(ebs.encrypted(), Some(true));
    assert_eq!(asg_version(&m, &group).await, "1");

    // Drift on the group is repaired.
    m.asg
        .update_auto_scaling_group()
        .auto_scaling_group_name(&group)
        .max_size(5)
        .send()
        .await
        .unwrap();
    let p = plan(&engine, &s).await;
    assert_eq!(fields(&p, "aws_autoscaling_group.nodes"), ["max_size"]);
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after repairing drift").await;

    // A template change: a new version with the full data, and the group follows it.
    shape.instance_type = "t3.small";
    let s = stack(&name, &shape);
    let p = plan(&engine, &s).await;
    assert_eq!(action(&p, "aws_launch_template.node"), Action::Update);
    assert_eq!(action(&p, "aws_autoscaling_group.nodes"), Action::Update);
    assert_eq!(
        fields(&p, "aws_autoscaling_group.nodes"),
        ["launch_template_version"]
    );
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after the template change").await;
    let (v, data) = latest_data(&m, &lt).await;
    assert_eq!(v, 2);
    assert_eq!(data.instance_type(), Some(&InstanceType::T3Small));
    assert_eq!(
        data.image_id(),
        Some("ami-12c6146b"),
        "the new version carries the full data"
    );
    assert_eq!(data.security_group_ids().len(), 1);
    assert_eq!(
        data.metadata_options().and_then(|o| o.http_tokens()),
        Some(&LaunchTemplateHttpTokensState::Required)
    );
    assert_eq!(asg_version(&m, &group).await, "2");
    assert_eq!(
        observed(&m, &name, "aws_launch_template.node").await.props["latest_version"],
        Value::Int(2)
    );

    // User data is secret: the plan shows digests only, and the change is applied.
    shape.user_data = "#!/bin/sh\necho s3cr3t-join-token\n";
    let s = stack(&name, &shape);
    let p = plan(&engine, &s).await;
    let text = plan_text(&p.plan);
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(text.contains("sensitive"), "{text}");
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after the user data change").await;
    let (v, data) = latest_data(&m, &lt).await;
    assert_eq!(v, 3);
    let ud = aws_smithy_types::base64::decode(data.user_data().unwrap()).unwrap();
    assert!(String::from_utf8(ud).unwrap().contains("s3cr3t-join-token"));
    assert_eq!(asg_version(&m, &group).await, "3");

    // The scaling policy: in-place update, then removal.
    shape.cpu_target = Some(70.0);
    let s = stack(&name, &shape);
    let p = plan(&engine, &s).await;
    assert_eq!(action(&p, "aws_autoscaling_policy.cpu"), Action::Update);
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after the policy update").await;
    let policy = observed(&m, &name, "aws_autoscaling_policy.cpu").await;
    assert_eq!(policy.props["target_value"].as_f64(), Some(70.0));
    assert!(
        policy.id.starts_with("arn:aws:autoscaling:"),
        "{}",
        policy.id
    );
    shape.cpu_target = None;
    let s = stack(&name, &shape);
    let p = plan(&engine, &s).await;
    assert_eq!(action(&p, "aws_autoscaling_policy.cpu"), Action::Delete);
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after removing the policy").await;

    destroy(&m, &engine, &s).await;
    let left = m
        .asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&group)
        .send()
        .await
        .unwrap();
    assert!(left.auto_scaling_groups().is_empty());
}

async fn make_image(m: &Moto, name: &str) -> String {
    let run = m
        .ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let instance = run.instances()[0].instance_id().unwrap().to_string();
    let image = m
        .ec2
        .create_image()
        .instance_id(&instance)
        .name(name)
        .send()
        .await
        .unwrap();
    m.ec2
        .terminate_instances()
        .instance_ids(instance)
        .send()
        .await
        .unwrap();
    image.image_id().unwrap().to_string()
}

fn ami_stack(name: &str, pattern: &str) -> Stack {
    let mut s = Stack::new(name);
    let ami = s.add(Ami::lookup("node").name_pattern(pattern));
    s.add(
        LaunchTemplate::new("node")
            .image_from(&ami)
            .instance_type("t3.micro"),
    );
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn ami_lookup_picks_the_newest_matching_image() {
    let Some(m) = moto("ami_lookup_picks_the_newest_matching_image").await else {
        return;
    };
    let engine = m.engine();
    let name = unique("ami");
    make_image(&m, &format!("{name}-node-001")).await;
    let second = make_image(&m, &format!("{name}-node-002")).await;
    let s = ami_stack(&name, &format!("{name}-node-*"));
    let p = plan(&engine, &s).await;
    let lt = p.plan.change("aws_launch_template.node").unwrap();
    let image = lt.fields.iter().find(|f| f.name == "image_id").unwrap();
    assert_eq!(
        image.after,
        Some(Value::from(second.as_str())),
        "{}",
        plan_text(&p.plan)
    );
    assert!(
        p.plan.change("aws_ami.node").is_none(),
        "a data source is never in the plan's changes"
    );
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after create").await;
    let o = observed(&m, &name, "aws_launch_template.node").await;
    assert_eq!(o.props["image_id"], Value::from(second.as_str()));
    let root = o.props["root_volume"].as_map().unwrap();
    assert!(root["device_name"].as_str().unwrap().starts_with("/dev/"));

    // A newer build: the template follows with a new version.
    let third = make_image(&m, &format!("{name}-node-003")).await;
    let p = plan(&engine, &s).await;
    assert_eq!(action(&p, "aws_launch_template.node"), Action::Update);
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after the new image").await;
    let o = observed(&m, &name, "aws_launch_template.node").await;
    assert_eq!(o.props["image_id"], Value::from(third.as_str()));
    assert_eq!(o.props["latest_version"], Value::Int(2));

    // No match: the plan fails naming the data source, before anything changes.
    let bad = ami_stack(&name, &format!("{name}-nothing-*"));
    let err = engine
        .plan(&bad, &Default::default())
        .await
        .expect_err("a lookup without a match fails");
    let msg = err.to_string();
    assert!(
        msg.contains("aws_ami.node") && msg.contains("NoMatchingImage"),
        "{msg}"
    );

    destroy(&m, &engine, &s).await;
    // The data source's images are never touched.
    let images = m
        .ec2
        .describe_images()
        .owners("self")
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("name")
                .values(format!("{name}-node-*"))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(images.images().len(), 3);
}

fn hook_stack(name: &str, heartbeat: u64, default: LifecycleDefault, launch_hook: bool) -> Stack {
    let mut s = Stack::new(name);
    let vpc = s.add(Vpc::new("main").cidr("10.61.0.0/16"));
    let a = s.add(
        Subnet::new("a")
            .vpc(&vpc)
            .cidr("10.61.1.0/24")
            .az("us-east-1a"),
    );
    let b = s.add(
        Subnet::new("b")
            .vpc(&vpc)
            .cidr("10.61.2.0/24")
            .az("us-east-1b"),
    );
    let lt = s.add(
        LaunchTemplate::new("node")
            .image("ami-12c6146b")
            .instance_type("t3.micro"),
    );
    let asg = s.add(
        Asg::new("nodes")
            .launch_template(&lt)
            .subnets(&[&a, &b])
            .size(0, 2, 0),
    );
    s.add(
        LifecycleHook::on_terminate("nodes-drain")
            .asg(&asg)
            .heartbeat(std::time::Duration::from_secs(heartbeat))
            .default_result(default),
    );
    if launch_hook {
        s.add(
            LifecycleHook::on_launch("nodes-warm")
                .asg(&asg)
                .heartbeat(std::time::Duration::from_secs(120)),
        );
    }
    s
}

async fn hooks(m: &Moto, group: &str) -> Vec<aws_sdk_autoscaling::types::LifecycleHook> {
    let mut h = m
        .asg
        .describe_lifecycle_hooks()
        .auto_scaling_group_name(group)
        .send()
        .await
        .unwrap()
        .lifecycle_hooks()
        .to_vec();
    h.sort_by(|a, b| a.lifecycle_hook_name().cmp(&b.lifecycle_hook_name()));
    h
}

/// Lifecycle hooks: created on the stack's group, read back as declared, changed in place,
/// repaired after a change by hand, deleted. (Notification metadata is not exercised here:
/// moto 5.2.5 drops it, so it never reads back.)
#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_hooks_are_created_updated_and_deleted() {
    let Some(m) = moto("lifecycle_hooks_are_created_updated_and_deleted").await else {
        return;
    };
    let engine = m.engine();
    let name = unique("hook");
    let group = format!("{name}-nodes");
    let s = hook_stack(&name, 300, LifecycleDefault::Continue, true);
    let p = plan(&engine, &s).await;
    assert_eq!(
        action(&p, "aws_autoscaling_lifecycle_hook.nodes-drain"),
        Action::Create
    );
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after create").await;
    let h = hooks(&m, &group).await;
    assert_eq!(h.len(), 2, "{h:#?}");
    let drain = &h[0];
    assert_eq!(
        drain.lifecycle_hook_name(),
        Some(format!("{name}-nodes-drain").as_str())
    );
    assert_eq!(
        drain.lifecycle_transition(),
        Some("autoscaling:EC2_INSTANCE_TERMINATING")
    );
    assert_eq!(drain.heartbeat_timeout(), Some(300));
    assert_eq!(drain.default_result(), Some("CONTINUE"));
    let warm = &h[1];
    assert_eq!(
        warm.lifecycle_transition(),
        Some("autoscaling:EC2_INSTANCE_LAUNCHING")
    );
    assert_eq!(warm.default_result(), Some("ABANDON"));
    assert_eq!(
        id_of(&m, &name, "aws_autoscaling_lifecycle_hook.nodes-drain").await,
        format!("{name}-nodes-drain")
    );

    // In place: heartbeat and default result.
    let s = hook_stack(&name, 60, LifecycleDefault::Abandon, true);
    let p = plan(&engine, &s).await;
    assert_eq!(
        action(&p, "aws_autoscaling_lifecycle_hook.nodes-drain"),
        Action::Update
    );
    assert_eq!(
        fields(&p, "aws_autoscaling_lifecycle_hook.nodes-drain"),
        ["default_result", "heartbeat_timeout"]
    );
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after the update").await;
    let h = hooks(&m, &group).await;
    assert_eq!(h[0].heartbeat_timeout(), Some(60));
    assert_eq!(h[0].default_result(), Some("ABANDON"));

    // A change by hand is drift, and is repaired.
    m.asg
        .put_lifecycle_hook()
        .auto_scaling_group_name(&group)
        .lifecycle_hook_name(format!("{name}-nodes-drain"))
        .lifecycle_transition("autoscaling:EC2_INSTANCE_TERMINATING")
        .heartbeat_timeout(999)
        .default_result("ABANDON")
        .send()
        .await
        .unwrap();
    let p = plan(&engine, &s).await;
    assert_eq!(
        fields(&p, "aws_autoscaling_lifecycle_hook.nodes-drain"),
        ["heartbeat_timeout"]
    );
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after repairing drift").await;
    assert_eq!(hooks(&m, &group).await[0].heartbeat_timeout(), Some(60));

    // A retried create (after a lost response) converges the hook; no second hook.
    let o = observed(&m, &name, "aws_autoscaling_lifecycle_hook.nodes-drain").await;
    let spec = LifecycleHook::on_terminate("nodes-drain")
        .heartbeat(std::time::Duration::from_secs(90))
        .default_result(LifecycleDefault::Abandon)
        .into_spec();
    let mut props = spec.props.clone();
    props.insert(
        "autoscaling_group_name".into(),
        o.props["autoscaling_group_name"].clone(),
    );
    let resolved = infra_core::provider::Resolved {
        address: spec.address.clone(),
        schema: spec.schema,
        props,
        protect: false,
    };
    let ctx = infra_core::provider::OpContext {
        stack: name.clone(),
        idempotency_token: format!("infra-test-{name}"),
        attempt: 2,
    };
    let again = infra_core::provider::Provider::create(m.provider.as_ref(), &ctx, &resolved)
        .await
        .unwrap();
    assert_eq!(again.id, o.id);
    let h = hooks(&m, &group).await;
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].heartbeat_timeout(), Some(90));
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after the retried create").await;

    // A hook no longer declared is deleted; the other stays.
    let s = hook_stack(&name, 60, LifecycleDefault::Abandon, false);
    let p = plan(&engine, &s).await;
    assert_eq!(
        action(&p, "aws_autoscaling_lifecycle_hook.nodes-warm"),
        Action::Delete
    );
    assert_eq!(p.plan.actionable().count(), 1, "{}", plan_text(&p.plan));
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after removing a hook").await;
    let h = hooks(&m, &group).await;
    assert_eq!(h.len(), 1);
    assert_eq!(
        h[0].lifecycle_hook_name(),
        Some(format!("{name}-nodes-drain").as_str())
    );

    destroy(&m, &engine, &s).await;
}
