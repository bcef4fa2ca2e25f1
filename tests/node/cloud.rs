//! What the tests build in moto: an Auto Scaling group tagged as the production stack tags its
//! swarm groups (`infra:stack`, `role`), its instances, a terminating lifecycle hook; and
//! clean-up of a stack's groups and parameters. moto is shared: every stack name is unique and
//! nothing is reset.

use aws_config::BehaviorVersion;
use aws_sdk_autoscaling::types::{LaunchTemplateSpecification, Tag};
use aws_sdk_ec2::types::RequestLaunchTemplateData;

/// The SDK clients against moto.
pub(crate) struct Cloud {
    pub ec2: aws_sdk_ec2::Client,
    pub(crate) asg: aws_sdk_autoscaling::Client,
    pub(crate) ssm: aws_sdk_ssm::Client,
    /// What [`Cloud::group`] made, for [`Cloud::clean`].
    made: std::sync::Mutex<Vec<Made>>,
}

enum Made {
    Group(String),
    Template(String),
    Subnet(String),
    Vpc(String),
}

/// An instance of a group, as the agent's IMDS must describe it.
#[derive(Clone, Debug)]
pub(crate) struct Instance {
    pub(crate) id: String,
    pub(crate) ip: String,
    pub(crate) az: String,
}

impl Cloud {
    /// Clients for moto (`AWS_ENDPOINT_URL`), or `None` after a SKIPPED line (a failure when
    /// the run requires the endpoints).
    pub(crate) async fn connect() -> Option<Cloud> {
        if let Err(why) = infra_test_support::moto() {
            infra_test_support::skip_or_fail(&infra_test_support::current_test(), &why);
            return None;
        }
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .load()
            .await;
        Some(Cloud {
            ec2: aws_sdk_ec2::Client::new(&config),
            asg: aws_sdk_autoscaling::Client::new(&config),
            ssm: aws_sdk_ssm::Client::new(&config),
            made: Default::default(),
        })
    }

    /// A group `<stack>-<role_tag>` of `size` instances tagged `infra:stack=<stack>`,
    /// `role=<role_tag>`, in a subnet of its own; with `hook`, a terminating lifecycle hook
    /// `<stack>-<role_tag>-drain` (heartbeat 60 s, as in the lab). Returns the group's name and
    /// its instances.
    pub(crate) async fn group(
        &self,
        stack: &str,
        role_tag: &str,
        size: i32,
        hook: bool,
    ) -> (String, Vec<Instance>) {
        let name = format!("{stack}-{role_tag}");
        let vpc = self
            .ec2
            .create_vpc()
            .cidr_block("10.77.0.0/16")
            .send()
            .await
            .expect("CreateVpc");
        let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
        self.made.lock().unwrap().push(Made::Vpc(vpc.clone()));
        let subnet = self
            .ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!(
                "10.77.{}.0/24",
                10 + self.made.lock().unwrap().len()
            ))
            .availability_zone("us-east-1b")
            .send()
            .await
            .expect("CreateSubnet");
        let subnet = subnet.subnet().unwrap().subnet_id().unwrap().to_string();
        self.made.lock().unwrap().push(Made::Subnet(subnet.clone()));
        let lt = self
            .ec2
            .create_launch_template()
            .launch_template_name(&name)
            .launch_template_data(
                RequestLaunchTemplateData::builder()
                    .image_id("ami-12c6146b")
                    .build(),
            )
            .send()
            .await
            .expect("CreateLaunchTemplate");
        let lt = lt
            .launch_template()
            .unwrap()
            .launch_template_id()
            .unwrap()
            .to_string();
        self.made.lock().unwrap().push(Made::Template(lt.clone()));
        let tag = |k: &str, v: &str| {
            Tag::builder()
                .resource_id(&name)
                .resource_type("auto-scaling-group")
                .key(k)
                .value(v)
                .propagate_at_launch(true)
                .build()
        };
        self.asg
            .create_auto_scaling_group()
            .auto_scaling_group_name(&name)
            .launch_template(
                LaunchTemplateSpecification::builder()
                    .launch_template_id(&lt)
                    .version("1")
                    .build(),
            )
            .min_size(0)
            .max_size(size.max(1))
            .desired_capacity(size)
            .vpc_zone_identifier(&subnet)
            .tags(tag("infra:stack", stack))
            .tags(tag("role", role_tag))
            .send()
            .await
            .expect("CreateAutoScalingGroup");
        self.made.lock().unwrap().push(Made::Group(name.clone()));
        if hook {
            self.asg
                .put_lifecycle_hook()
                .auto_scaling_group_name(&name)
                .lifecycle_hook_name(format!("{name}-drain"))
                .lifecycle_transition("autoscaling:EC2_INSTANCE_TERMINATING")
                .heartbeat_timeout(60)
                .default_result("CONTINUE")
                .send()
                .await
                .expect("PutLifecycleHook");
        }
        let groups = self
            .asg
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&name)
            .send()
            .await
            .expect("DescribeAutoScalingGroups");
        let ids: Vec<String> = groups.auto_scaling_groups()[0]
            .instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();
        assert_eq!(
            ids.len(),
            size as usize,
            "moto launched the group's instances"
        );
        let mut instances = Vec::new();
        if !ids.is_empty() {
            let found = self
                .ec2
                .describe_instances()
                .set_instance_ids(Some(ids.clone()))
                .send()
                .await
                .expect("DescribeInstances");
            for i in found.reservations().iter().flat_map(|r| r.instances()) {
                instances.push(Instance {
                    id: i.instance_id().unwrap().to_string(),
                    ip: i.private_ip_address().unwrap().to_string(),
                    az: i
                        .placement()
                        .and_then(|p| p.availability_zone())
                        .unwrap_or("us-east-1b")
                        .to_string(),
                });
            }
        }
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        (name, instances)
    }

    /// A parameter's value and type, `None` when absent.
    pub(crate) async fn param(&self, name: &str) -> Option<(String, String)> {
        let out = self
            .ssm
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .ok()?;
        let p = out.parameter()?;
        Some((p.value()?.to_string(), p.r#type()?.as_str().to_string()))
    }

    /// Writes a parameter (overwriting), SecureString when `secure`.
    pub(crate) async fn put(&self, name: &str, value: &str, secure: bool) {
        self.ssm
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(if secure {
                aws_sdk_ssm::types::ParameterType::SecureString
            } else {
                aws_sdk_ssm::types::ParameterType::String
            })
            .overwrite(true)
            .send()
            .await
            .expect("PutParameter");
    }

    /// Names of the parameters under `path`.
    pub(crate) async fn names(&self, path: &str) -> Vec<String> {
        let pages = self
            .ssm
            .get_parameters_by_path()
            .path(path)
            .recursive(true)
            .into_paginator()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .expect("GetParametersByPath");
        let mut names: Vec<String> = pages
            .iter()
            .flat_map(|p| p.parameters())
            .filter_map(|p| p.name().map(str::to_string))
            .collect();
        names.sort();
        names
    }

    /// Deletes the stack's parameters and what [`Cloud::group`] made (best effort).
    pub(crate) async fn clean(&self, stack: &str) {
        for name in self.names(&format!("/infra/{stack}/")).await {
            let _ = self.ssm.delete_parameter().name(name).send().await;
        }
        let made: Vec<Made> = std::mem::take(&mut *self.made.lock().unwrap());
        for m in made.iter().rev() {
            let _ = match m {
                Made::Group(g) => self
                    .asg
                    .delete_auto_scaling_group()
                    .auto_scaling_group_name(g)
                    .force_delete(true)
                    .send()
                    .await
                    .map(drop)
                    .map_err(drop),
                Made::Template(t) => self
                    .ec2
                    .delete_launch_template()
                    .launch_template_id(t)
                    .send()
                    .await
                    .map(drop)
                    .map_err(drop),
                Made::Subnet(s) => self
                    .ec2
                    .delete_subnet()
                    .subnet_id(s)
                    .send()
                    .await
                    .map(drop)
                    .map_err(drop),
                Made::Vpc(v) => self
                    .ec2
                    .delete_vpc()
                    .vpc_id(v)
                    .send()
                    .await
                    .map(drop)
                    .map_err(drop),
            };
        }
    }
}
