//! The moto side of the lab tests: a VPC with three subnets (us-east-1a/b/c), a launch template,
//! ASGs tagged `infra:stack=<stack>` and `role`, lifecycle hooks; and the Docker CLI.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_autoscaling::types::{LaunchTemplateSpecification, Tag as AsgTag};
use aws_sdk_ec2::types::{Filter, InstanceType, RequestLaunchTemplateData};

pub(crate) struct Fixture {
    ec2: aws_sdk_ec2::Client,
    asg: aws_sdk_autoscaling::Client,
    stack: String,
    vpc: String,
    subnets: Vec<String>,
    template: String,
    groups: Vec<String>,
}

impl Fixture {
    pub(crate) async fn new(moto: &str, stack: &str) -> Fixture {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(moto)
            .region(aws_config::Region::new("us-east-1"))
            .test_credentials()
            .load()
            .await;
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let asg = aws_sdk_autoscaling::Client::new(&sdk);
        let vpc = ec2
            .create_vpc()
            .cidr_block("10.9.0.0/16")
            .send()
            .await
            .expect("CreateVpc")
            .vpc()
            .and_then(|v| v.vpc_id())
            .unwrap()
            .to_string();
        let mut subnets = Vec::new();
        for (i, zone) in ["a", "b", "c"].iter().enumerate() {
            let s = ec2
                .create_subnet()
                .vpc_id(&vpc)
                .cidr_block(format!("10.9.{}.0/24", 10 + i))
                .availability_zone(format!("us-east-1{zone}"))
                .send()
                .await
                .expect("CreateSubnet");
            subnets.push(s.subnet().and_then(|s| s.subnet_id()).unwrap().to_string());
        }
        let template = format!("{stack}-node");
        ec2.create_launch_template()
            .launch_template_name(&template)
            .launch_template_data(
                RequestLaunchTemplateData::builder()
                    .image_id("ami-12c6146b")
                    .instance_type(InstanceType::T3Micro)
                    .build(),
            )
            .send()
            .await
            .expect("CreateLaunchTemplate");
        Fixture {
            ec2,
            asg,
            stack: stack.to_string(),
            vpc,
            subnets,
            template,
            groups: Vec::new(),
        }
    }

    /// An ASG `<stack>-<suffix>` over the three subnets, tagged with the stack and `role`, with a
    /// terminating lifecycle hook `<suffix>-drain` when `hook_heartbeat` is given.
    pub(crate) async fn asg(
        &mut self,
        suffix: &str,
        role: &str,
        desired: i32,
        hook_heartbeat: Option<i32>,
    ) -> String {
        let name = format!("{}-{suffix}", self.stack);
        let tag = |k: &str, v: &str| {
            AsgTag::builder()
                .key(k)
                .value(v)
                .propagate_at_launch(true)
                .resource_id(&name)
                .resource_type("auto-scaling-group")
                .build()
        };
        self.asg
            .create_auto_scaling_group()
            .auto_scaling_group_name(&name)
            .launch_template(
                LaunchTemplateSpecification::builder()
                    .launch_template_name(&self.template)
                    .version("$Latest")
                    .build(),
            )
            .min_size(0)
            .max_size(5)
            .desired_capacity(desired)
            .vpc_zone_identifier(self.subnets.join(","))
            .tags(tag("infra:stack", &self.stack))
            .tags(tag("role", role))
            .send()
            .await
            .expect("CreateAutoScalingGroup");
        if let Some(heartbeat) = hook_heartbeat {
            self.asg
                .put_lifecycle_hook()
                .auto_scaling_group_name(&name)
                .lifecycle_hook_name(format!("{suffix}-drain"))
                .lifecycle_transition("autoscaling:EC2_INSTANCE_TERMINATING")
                .heartbeat_timeout(heartbeat)
                .default_result("CONTINUE")
                .send()
                .await
                .expect("PutLifecycleHook");
        }
        self.groups.push(name.clone());
        name
    }

    pub(crate) async fn set_desired(&self, asg: &str, desired: i32) {
        self.asg
            .update_auto_scaling_group()
            .auto_scaling_group_name(asg)
            .desired_capacity(desired)
            .send()
            .await
            .expect("UpdateAutoScalingGroup");
    }

    pub(crate) async fn desired(&self, asg: &str) -> i32 {
        self.asg
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(asg)
            .send()
            .await
            .expect("DescribeAutoScalingGroups")
            .auto_scaling_groups()
            .first()
            .and_then(|g| g.desired_capacity())
            .unwrap_or(-1)
    }

    /// Instance id → private IP of the stack's instances.
    pub(crate) async fn private_ips(&self) -> HashMap<String, String> {
        let r = self
            .ec2
            .describe_instances()
            .filters(
                Filter::builder()
                    .name("tag:infra:stack")
                    .values(&self.stack)
                    .build(),
            )
            .send()
            .await
            .expect("DescribeInstances");
        r.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| {
                Some((
                    i.instance_id()?.to_string(),
                    i.private_ip_address()?.to_string(),
                ))
            })
            .collect()
    }

    pub(crate) async fn instance_state(&self, id: &str) -> String {
        self.ec2
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .expect("DescribeInstances")
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find_map(|i| {
                i.state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_string())
            })
            .unwrap_or_default()
    }

    /// Deletes the ASGs (their instances), the template, the subnets and the VPC; best effort.
    pub(crate) async fn cleanup(self) {
        for g in &self.groups {
            let _ = self
                .asg
                .delete_auto_scaling_group()
                .auto_scaling_group_name(g)
                .force_delete(true)
                .send()
                .await;
        }
        let _ = self
            .ec2
            .delete_launch_template()
            .launch_template_name(&self.template)
            .send()
            .await;
        for s in &self.subnets {
            let _ = self.ec2.delete_subnet().subnet_id(s).send().await;
        }
        let _ = self.ec2.delete_vpc().vpc_id(&self.vpc).send().await;
    }
}

/// `docker -H <host> <args…>` (bounded: 90 s): stdout, or the exit status and stderr.
pub(crate) async fn docker(host: &str, args: &[&str]) -> Result<String, String> {
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("docker")
            .arg("-H")
            .arg(host)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| format!("docker {}: no exit within 90 s", args.join(" ")))?
    .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(format!(
            "docker {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
