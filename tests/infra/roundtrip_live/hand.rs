//! What the moto round trip makes by hand, with the SDK, as a console user or a script would.

use aws_sdk_autoscaling::types::LaunchTemplateSpecification;
use aws_sdk_ec2::types::{
    DomainType, InstanceType, IpPermission, RequestLaunchTemplateData, ResourceType, Tag,
    TagSpecification, UserIdGroupPair,
};

/// The SDK clients on moto.
pub(super) struct Aws {
    pub(super) ec2: aws_sdk_ec2::Client,
    pub(super) iam: aws_sdk_iam::Client,
    pub(super) asg: aws_sdk_autoscaling::Client,
}

impl Aws {
    pub(super) async fn on(endpoint: &str) -> Aws {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .test_credentials()
            .load()
            .await;
        Aws {
            ec2: aws_sdk_ec2::Client::new(&config),
            iam: aws_sdk_iam::Client::new(&config),
            asg: aws_sdk_autoscaling::Client::new(&config),
        }
    }
}

/// The ids of what [`make_by_hand`] made.
#[derive(Debug, Default)]
pub(super) struct Hand {
    pub(super) vpc: String,
    pub(super) subnet: String,
    pub(super) eip: String,
    pub(super) nat: String,
    pub(super) table: String,
    pub(super) policy_arn: String,
    pub(super) role: String,
    pub(super) template: String,
    pub(super) group: String,
}

/// The objects made by hand that `import` declares and `adopt` adopts (the policy is not one).
pub(super) const ADOPTABLE: usize = 11;

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ec2:Describe*"],"Resource":"*"}]}"#;

fn name_tag(kind: ResourceType, name: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .tags(Tag::builder().key("Name").value(name).build())
        .tags(Tag::builder().key("team").value("platform").build())
        .build()
}

/// A VPC with a public subnet, an attached internet gateway, an Elastic IP and a NAT gateway in the
/// subnet, a route table routing to the internet gateway and associated to the subnet, two
/// security groups (one allowing the other); a customer-managed IAM policy (untagged: IAM
/// lists policies without tags) attached to a tagged IAM role; a launch template using the
/// web group and an auto scaling group of it in the subnet (empty: no instances to wait for).
/// Everything but the policy is tagged `team=platform`.
pub(super) async fn make_by_hand(aws: &Aws, prefix: &str) -> Hand {
    let n = |s: &str| format!("{prefix}-{s}");
    let ec2 = &aws.ec2;
    let mut h = Hand::default();
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.77.0.0/16")
        .tag_specifications(name_tag(ResourceType::Vpc, &n("vpc")))
        .send()
        .await
        .expect("CreateVpc");
    h.vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&h.vpc)
        .cidr_block("10.77.1.0/24")
        .availability_zone("us-east-1a")
        .tag_specifications(name_tag(ResourceType::Subnet, &n("a")))
        .send()
        .await
        .expect("CreateSubnet");
    h.subnet = subnet.subnet().unwrap().subnet_id().unwrap().to_string();
    // A public subnet, as the console's VPC wizard makes one (the NAT gateway lives in it).
    ec2.modify_subnet_attribute()
        .subnet_id(&h.subnet)
        .map_public_ip_on_launch(
            aws_sdk_ec2::types::AttributeBooleanValue::builder()
                .value(true)
                .build(),
        )
        .send()
        .await
        .expect("ModifySubnetAttribute");
    let igw = ec2
        .create_internet_gateway()
        .tag_specifications(name_tag(ResourceType::InternetGateway, &n("igw")))
        .send()
        .await
        .expect("CreateInternetGateway");
    let igw = igw
        .internet_gateway()
        .unwrap()
        .internet_gateway_id()
        .unwrap()
        .to_string();
    ec2.attach_internet_gateway()
        .internet_gateway_id(&igw)
        .vpc_id(&h.vpc)
        .send()
        .await
        .expect("AttachInternetGateway");
    let eip = ec2
        .allocate_address()
        .domain(DomainType::Vpc)
        .tag_specifications(name_tag(ResourceType::ElasticIp, &n("eip")))
        .send()
        .await
        .expect("AllocateAddress");
    h.eip = eip.allocation_id().unwrap().to_string();
    let nat = ec2
        .create_nat_gateway()
        .subnet_id(&h.subnet)
        .allocation_id(&h.eip)
        .tag_specifications(name_tag(ResourceType::Natgateway, &n("nat")))
        .send()
        .await
        .expect("CreateNatGateway");
    h.nat = nat
        .nat_gateway()
        .unwrap()
        .nat_gateway_id()
        .unwrap()
        .to_string();
    let table = ec2
        .create_route_table()
        .vpc_id(&h.vpc)
        .tag_specifications(name_tag(ResourceType::RouteTable, &n("public")))
        .send()
        .await
        .expect("CreateRouteTable");
    h.table = table
        .route_table()
        .unwrap()
        .route_table_id()
        .unwrap()
        .to_string();
    ec2.create_route()
        .route_table_id(&h.table)
        .destination_cidr_block("0.0.0.0/0")
        .gateway_id(&igw)
        .send()
        .await
        .expect("CreateRoute");
    ec2.associate_route_table()
        .route_table_id(&h.table)
        .subnet_id(&h.subnet)
        .send()
        .await
        .expect("AssociateRouteTable");
    let mut groups = Vec::new();
    for g in ["web", "db"] {
        let out = ec2
            .create_security_group()
            .group_name(n(g))
            .description(format!("{g} by hand"))
            .vpc_id(&h.vpc)
            .tag_specifications(name_tag(ResourceType::SecurityGroup, &n(g)))
            .send()
            .await
            .expect("CreateSecurityGroup");
        groups.push(out.group_id().unwrap().to_string());
    }
    ec2.authorize_security_group_ingress()
        .group_id(&groups[1])
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(5432)
                .to_port(5432)
                .user_id_group_pairs(UserIdGroupPair::builder().group_id(&groups[0]).build())
                .build(),
        )
        .send()
        .await
        .expect("AuthorizeSecurityGroupIngress");

    // IAM: a customer-managed policy attached to a role.
    let policy = aws
        .iam
        .create_policy()
        .policy_name(n("read"))
        .policy_document(READ)
        .description("read EC2")
        .send()
        .await
        .expect("CreatePolicy");
    h.policy_arn = policy.policy().unwrap().arn().unwrap().to_string();
    h.role = n("node");
    aws.iam
        .create_role()
        .role_name(&h.role)
        .assume_role_policy_document(TRUST)
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("team")
                .value("platform")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("CreateRole");
    aws.iam
        .attach_role_policy()
        .role_name(&h.role)
        .policy_arn(&h.policy_arn)
        .send()
        .await
        .expect("AttachRolePolicy");

    // A launch template using the web group, and an auto scaling group of it in the subnet.
    let lt = ec2
        .create_launch_template()
        .launch_template_name(n("node"))
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id("ami-12c6146b")
                .instance_type(InstanceType::T3Micro)
                .security_group_ids(&groups[0])
                // The root volume infra's templates map unless told otherwise.
                .block_device_mappings(
                    aws_sdk_ec2::types::LaunchTemplateBlockDeviceMappingRequest::builder()
                        .device_name("/dev/xvda")
                        .ebs(
                            aws_sdk_ec2::types::LaunchTemplateEbsBlockDeviceRequest::builder()
                                .volume_size(20)
                                .volume_type(aws_sdk_ec2::types::VolumeType::Gp3)
                                .encrypted(true)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .tag_specifications(name_tag(ResourceType::LaunchTemplate, &n("node")))
        .send()
        .await
        .expect("CreateLaunchTemplate");
    h.template = lt
        .launch_template()
        .unwrap()
        .launch_template_id()
        .unwrap()
        .to_string();
    h.group = n("nodes");
    aws.asg
        .create_auto_scaling_group()
        .auto_scaling_group_name(&h.group)
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_id(&h.template)
                // A version number: infra's groups follow the template's latest version by
                // number (`$Latest` or `$Default` would be an update on adoption).
                .version("1")
                .build(),
        )
        .min_size(0)
        .max_size(2)
        .desired_capacity(0)
        .vpc_zone_identifier(&h.subnet)
        .tags(
            aws_sdk_autoscaling::types::Tag::builder()
                .key("team")
                .value("platform")
                .propagate_at_launch(true)
                .build(),
        )
        .send()
        .await
        .expect("CreateAutoScalingGroup");
    h
}
