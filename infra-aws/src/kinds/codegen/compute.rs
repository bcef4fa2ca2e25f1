//! Code generators of the compute kinds.

use infra_core::import::{rust_str, Discovered, Generated, ImportNames};
use infra_core::Value;

use super::{env_var, map_of, strings, Chain};
use crate::kinds::compute::DEFAULT_ROOT_DEVICE;

/// `LaunchTemplate::new(..).image(..).instance_type(..)` with its groups (typed), instance
/// profile (typed when imported) and root volume; the user data is a secret placeholder.
pub(crate) fn launch_template(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut c = Chain::named(o, names, "infra::aws::LaunchTemplate", name);
    c.str_unless("image", "image_id", None)
        .str_unless("instance_type", "instance_type", None)
        .str_unless("key_name", "key_name", None);
    if c.get("user_data").is_some() {
        let var = env_var(name, "user_data");
        c.comment(format!(
            "its user data is sensitive and was not read back: set {var} to the script"
        ));
        c.call(
            "user_data",
            &format!("&std::env::var({}).unwrap_or_default()", rust_str(&var)),
        );
    }
    for group in strings(c.get("security_group_ids")) {
        if let Some(r) = c.reference(
            "security_group",
            "aws_security_group",
            "security group",
            &group,
        ) {
            c.call("security_group", &r);
        }
    }
    if let Some(arn) = c.str("instance_profile_arn") {
        match names.reference("aws_iam_instance_profile", arn) {
            Some(r) => {
                c.call("instance_profile", &r);
            }
            None => {
                let arg = rust_str(arn);
                c.call("instance_profile_arn", &arg);
            }
        }
    }
    if c.get("root_volume").is_some() {
        root_volume(&mut c);
    } else {
        c.comment(
            "it maps no root volume (its instances get the image's); infra's templates always map \
             one (20 GiB gp3, encrypted, unless set), so the plan also updates it (a new version)",
        );
    }
    if c.str("metadata_http_tokens") == Some("optional") {
        c.comment("IMDSv1 is allowed (as found); infra's default is IMDSv2 only");
        c.call("allow_imdsv1", "");
    }
    c.tags().done()
}

/// `.root_volume(..)` and `.root_device(..)` unless they are the defaults.
fn root_volume(c: &mut Chain<'_>) {
    let root = map_of(c.get("root_volume"));
    let size = root.get("size_gb").and_then(|v| v.as_i64()).unwrap_or(20);
    let encrypted = root
        .get("encrypted")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let kind = root.get("type").and_then(|v| v.as_str()).unwrap_or("gp3");
    if kind != "gp3" {
        c.comment(format!(
            "its root volume is `{kind}`: infra declares gp3 root volumes (an apply would make \
             a new version with gp3)"
        ));
    }
    if size != 20 || !encrypted || kind != "gp3" {
        c.call("root_volume", &format!("{size}, {encrypted}"));
    }
    match root.get("device_name").and_then(|v| v.as_str()) {
        Some(d) if d != DEFAULT_ROOT_DEVICE => {
            let arg = rust_str(d);
            c.call("root_device", &arg);
        }
        _ => {}
    }
}

/// `Asg::new(..).launch_template(&lt).subnets(&[..]).size(..)`.
pub(crate) fn asg(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut c = Chain::named(o, names, "infra::aws::Asg", name);
    c.reference_to(
        "launch_template",
        "aws_launch_template",
        "launch template",
        "launch_template_id",
    );
    match c.get("launch_template_version") {
        Some(Value::String(v)) => {
            c.comment(format!(
                "it follows the template's version `{v}`; infra's groups follow its latest version"
            ));
        }
        Some(Value::Int(_)) | None => {}
        Some(_) => {}
    }
    let mut subnets = Vec::new();
    for s in strings(c.get("subnet_ids")) {
        if let Some(r) = c.reference("subnets", "aws_subnet", "subnet", &s) {
            subnets.push(r);
        }
    }
    if !subnets.is_empty() {
        c.call("subnets", &format!("&[{}]", subnets.join(", ")));
    }
    let int = |f: &str| c.get(f).and_then(Value::as_i64);
    if let (Some(min), Some(max), Some(desired)) =
        (int("min_size"), int("max_size"), int("desired_capacity"))
    {
        c.call("size", &format!("{min}, {max}, {desired}"));
    }
    let kind = c.str("health_check_type").unwrap_or("EC2");
    let grace = c
        .get("health_check_grace_period")
        .and_then(Value::as_i64)
        .unwrap_or(300);
    if kind != "EC2" || grace != 300 {
        let args = format!("{}, {grace}", rust_str(kind));
        c.call("health_check", &args);
    }
    for arn in strings(c.get("target_group_arns")) {
        match names.reference("aws_lb_target_group", &arn) {
            Some(r) => c.call("target_group", &r),
            None => c.call("target_group_arn", &rust_str(&arn)),
        };
    }
    c.tags().done()
}

/// `ScalingPolicy::target_tracking(..).asg(&asg).cpu_target(..)`.
pub(crate) fn scaling_policy(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut c = Chain::new(
        o,
        names,
        "infra::aws::ScalingPolicy",
        "target_tracking",
        &rust_str(name),
    );
    c.reference_to(
        "asg",
        "aws_autoscaling_group",
        "auto scaling group",
        "autoscaling_group_name",
    );
    let value = c.get("target_value").and_then(Value::as_f64).unwrap_or(0.0);
    let value = format!("{value:?}");
    match c.str("metric") {
        Some("ASGAverageCPUUtilization") => {
            c.call("cpu_target", &value);
        }
        Some("ASGAverageNetworkIn") => {
            c.call(
                "target",
                &format!("infra::aws::ScalingPolicyMetric::AverageNetworkIn, {value}"),
            );
        }
        Some("ASGAverageNetworkOut") => {
            c.call(
                "target",
                &format!("infra::aws::ScalingPolicyMetric::AverageNetworkOut, {value}"),
            );
        }
        other => {
            c.comment(format!(
                "its metric `{}` has no typed setter: infra tracks CPU and network in/out",
                other.unwrap_or("?")
            ));
        }
    }
    if c.get("disable_scale_in").and_then(Value::as_bool) == Some(true) {
        c.call("disable_scale_in", "");
    }
    c.done()
}

/// `LifecycleHook::on_launch(..)` / `on_terminate(..)` with its group, timeout and result.
pub(crate) fn lifecycle_hook(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let launching = o.props.get("lifecycle_transition").and_then(Value::as_str)
        == Some("autoscaling:EC2_INSTANCE_LAUNCHING");
    let (constructor, default_result) = if launching {
        ("on_launch", "ABANDON")
    } else {
        ("on_terminate", "CONTINUE")
    };
    let mut c = Chain::new(
        o,
        names,
        "infra::aws::LifecycleHook",
        constructor,
        &rust_str(name),
    );
    c.reference_to(
        "asg",
        "aws_autoscaling_group",
        "auto scaling group",
        "autoscaling_group_name",
    );
    if let Some(t) = c.get("heartbeat_timeout").and_then(Value::as_i64) {
        if t != 3600 {
            c.call("heartbeat", &format!("std::time::Duration::from_secs({t})"));
        }
    }
    match c.str("default_result") {
        Some(r) if r != default_result => {
            let variant = if r == "ABANDON" {
                "Abandon"
            } else {
                "Continue"
            };
            c.call(
                "default_result",
                &format!("infra::aws::LifecycleDefault::{variant}"),
            );
        }
        _ => {}
    }
    c.str_unless("metadata", "notification_metadata", None);
    c.done()
}
