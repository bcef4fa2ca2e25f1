//! The infra side of the peer comparison (issue 6): the stack of `bench/peer/stack.yml`, which
//! Ansible's amazon.aws converges in `bench/peer/ansible.sh`, as a deploy program. `bench/run
//! peer` times it on the same private moto, a process per run as for `ansible-playbook`:
//!
//! ```text
//! bench_peer --target live --only aws --stack NAME apply --auto-approve   # create, then no-op
//! bench_peer --target live --only aws --stack NAME destroy --auto-approve
//! ```
//!
//! The same objects as the playbook: a VPC (10.20.0.0/16), three subnets (10.20.{0,16,32}.0/20
//! in us-east-1a/b/c), an internet gateway, one route table with the default route to it
//! associated with the three subnets, the bastion group (22/tcp from 198.51.100.0/24) and the
//! cluster group (2377/tcp, 7946/tcp+udp, 4789/udp from itself, 22/tcp from the bastion group;
//! AWS's default allow-all egress kept on both), a launch template (the same AMI id, t3.micro,
//! the cluster group, IMDSv2 required, an encrypted 8 GiB gp3 root volume on /dev/xvda, and — as
//! in the playbook — no instance profile), an auto scaling group (min 1, max 3, desired 2, over
//! the three subnets, EC2 health checks), and an IAM role that EC2 may assume, with the inline
//! policy `describe-instances` (`ec2:DescribeInstances` on `*`), in an instance profile.

use infra::aws::{InstanceProfile, InternetGateway, RouteTable};
use infra::prelude::*;

fn stack() -> Stack {
    let mut s = Stack::new("peer");
    let vpc = s.add(Vpc::new("main").cidr("10.20.0.0/16"));
    let subnets: Vec<Ref<Subnet>> = [("a", 0), ("b", 16), ("c", 32)]
        .iter()
        .map(|(zone, third)| {
            s.add(
                Subnet::new(&format!("us-east-1{zone}"))
                    .vpc(&vpc)
                    .az(&format!("us-east-1{zone}"))
                    .cidr(&format!("10.20.{third}.0/20")),
            )
        })
        .collect();
    let igw = s.add(InternetGateway::new("main").vpc(&vpc));
    let mut rt = RouteTable::new("public")
        .vpc(&vpc)
        .default_route_to_internet(&igw);
    for subnet in &subnets {
        rt = rt.associate(subnet);
    }
    s.add(rt);
    let bastion = s.add(
        SecurityGroup::new("bastion")
            .vpc(&vpc)
            .description("bastion: ssh from the admin CIDR")
            .ingress(Rule::tcp(22).cidr("198.51.100.0/24"))
            .egress_all()
            .bastion(),
    );
    let cluster = s.add(
        SecurityGroup::new("cluster")
            .vpc(&vpc)
            .description("cluster: swarm ports between nodes, ssh from the bastion")
            .ingress(Rule::tcp(2377).from_self())
            .ingress(Rule::tcp(7946).from_self())
            .ingress(Rule::udp(7946).from_self())
            .ingress(Rule::udp(4789).from_self())
            .ingress(Rule::tcp(22).group(&bastion))
            .egress_all(),
    );
    let lt = s.add(
        LaunchTemplate::new("node")
            .image("ami-0123456789abcdef0")
            .instance_type("t3.micro")
            .security_group(&cluster)
            .root_volume(8, true),
    );
    let refs: Vec<&Ref<Subnet>> = subnets.iter().collect();
    s.add(
        Asg::new("nodes")
            .launch_template(&lt)
            .subnets(&refs)
            .size(1, 3, 2)
            .health_check("EC2", 300),
    );
    let role = s.add(
        infra::aws::IamRole::new("node")
            .assumed_by_service("ec2.amazonaws.com")
            .inline_policy(
                "describe-instances",
                PolicyDocument::new().statement(
                    Statement::allow()
                        .actions(["ec2:DescribeInstances"])
                        .resources(["*"]),
                ),
            ),
    );
    s.add(InstanceProfile::new("node").role(&role));
    s
}

fn main() -> std::process::ExitCode {
    infra::cli::run(|_| stack())
}
