//! The production stack of the talk (shared/seed): a VPC over three availability zones, a
//! bastion as the single point of access, Swarm managers and workers in auto scaling groups,
//! least-privilege IAM, and the Swarm services on top.
//!
//! `cargo run --example production` plans it against the local sandbox;
//! `-- apply --auto-approve` converges it; `--env staging|production` picks the parameters;
//! `--help` lists the rest.

use std::process::ExitCode;
use std::time::Duration;

use infra::cli::Context;
use infra::prelude::*;

/// Everything that differs between environments: one struct, so local, staging and production
/// are the same code with different values.
struct Config {
    stack: String,
    vpc_cidr: &'static str,
    azs: [&'static str; 3],
    admin_cidr: &'static str,
    ami: &'static str,
    instance_type: &'static str,
    managers: u32,
    workers: (u32, u32, u32),
    app_image: String,
    app_replicas: u32,
}

fn config(env: &str) -> Config {
    let local_image =
        std::env::var("INFRA_LOCAL_IMAGE").unwrap_or_else(|_| "infra-test:busybox".into());
    match env {
        "production" => Config {
            stack: "prod".into(),
            vpc_cidr: "10.0.0.0/16",
            azs: ["us-east-1a", "us-east-1b", "us-east-1c"],
            admin_cidr: "203.0.113.0/24",
            ami: "ami-0a1b2c3d4e5f60718",
            instance_type: "m5.large",
            managers: 3,
            workers: (3, 12, 3),
            app_image: "registry.example.com/app:1.0.0".into(),
            app_replicas: 6,
        },
        "staging" => Config {
            stack: "staging".into(),
            vpc_cidr: "10.1.0.0/16",
            azs: ["us-east-1a", "us-east-1b", "us-east-1c"],
            admin_cidr: "203.0.113.0/24",
            ami: "ami-0a1b2c3d4e5f60718",
            instance_type: "t3.medium",
            managers: 3,
            workers: (2, 6, 2),
            app_image: "registry.example.com/app:1.0.0".into(),
            app_replicas: 3,
        },
        _ => Config {
            stack: "local".into(),
            vpc_cidr: "10.9.0.0/16",
            azs: ["us-east-1a", "us-east-1b", "us-east-1c"],
            admin_cidr: "198.51.100.7/32",
            ami: "ami-0a1b2c3d4e5f60718",
            instance_type: "t3.micro",
            managers: 3,
            workers: (1, 3, 1),
            app_image: local_image,
            app_replicas: 2,
        },
    }
}

fn stack(ctx: &Context) -> Stack {
    let c = config(&ctx.env);
    let mut s = Stack::new(c.stack.clone());

    // Network: public and private subnets in each of three AZs.
    let vpc = s.add(
        Vpc::new("main")
            .cidr(c.vpc_cidr)
            .tag("env", &ctx.env)
            .protect(),
    );
    let base: Vec<u8> = c
        .vpc_cidr
        .split('.')
        .take(2)
        .map(|o| o.parse().unwrap_or(0))
        .collect();
    let mut public = Vec::new();
    let mut private = Vec::new();
    for (i, az) in c.azs.iter().enumerate() {
        let zone = &az[az.len() - 1..];
        public.push(
            s.add(
                Subnet::new(&format!("public-{zone}"))
                    .vpc(&vpc)
                    .az(az)
                    .cidr(&format!("{}.{}.{}.0/24", base[0], base[1], i))
                    .public(true),
            ),
        );
        private.push(
            s.add(
                Subnet::new(&format!("private-{zone}"))
                    .vpc(&vpc)
                    .az(az)
                    .cidr(&format!("{}.{}.{}.0/24", base[0], base[1], 10 + i)),
            ),
        );
    }

    // Security: the bastion is the single point of access; Swarm ports only inside the cluster.
    let bastion_sg = s.add(
        SecurityGroup::new("bastion")
            .vpc(&vpc)
            .description("Bastion: SSH from the admin network only")
            .bastion()
            .ingress(Rule::tcp(22).cidr(c.admin_cidr).describe("SSH from admins"))
            .egress_all(),
    );
    let cluster_sg = s.add(
        SecurityGroup::new("cluster")
            .vpc(&vpc)
            .description("Swarm nodes: cluster traffic between members, SSH from the bastion")
            .ingress(Rule::tcp(2377).from_self().describe("Swarm management"))
            .ingress(Rule::tcp(7946).from_self().describe("Swarm gossip"))
            .ingress(Rule::udp(7946).from_self().describe("Swarm gossip"))
            .ingress(
                Rule::udp(4789)
                    .from_self()
                    .describe("overlay network (VXLAN)"),
            )
            .ingress(
                Rule::tcp(22)
                    .group(&bastion_sg)
                    .describe("SSH from the bastion"),
            )
            .egress_all(),
    );

    // IAM: least privilege for the nodes (discover peers, read their own ASG).
    s.add(
        IamPolicy::new("node")
            .description("Swarm nodes: discover cluster peers")
            .document(
                PolicyDocument::new().statement(
                    Statement::allow()
                        .sid("DiscoverPeers")
                        .actions([
                            "ec2:DescribeInstances",
                            "autoscaling:DescribeAutoScalingGroups",
                        ])
                        .resources(["*"]),
                ),
            ),
    );

    // Compute: launch templates (IMDSv2 and encrypted EBS by default) and auto scaling groups.
    let bastion_lt = s.add(
        LaunchTemplate::new("bastion")
            .image(c.ami)
            .instance_type("t3.nano")
            .security_group(&bastion_sg),
    );
    let manager_lt = s.add(
        LaunchTemplate::new("manager")
            .image(c.ami)
            .instance_type(c.instance_type)
            .security_group(&cluster_sg),
    );
    let worker_lt = s.add(
        LaunchTemplate::new("worker")
            .image(c.ami)
            .instance_type(c.instance_type)
            .security_group(&cluster_sg),
    );
    let public_refs: Vec<&Ref<Subnet>> = public.iter().collect();
    let private_refs: Vec<&Ref<Subnet>> = private.iter().collect();
    s.add(
        Asg::new("bastion")
            .launch_template(&bastion_lt)
            .subnets(&public_refs)
            .size(1, 1, 1)
            .tag("role", "bastion"),
    );
    s.add(
        Asg::new("managers")
            .launch_template(&manager_lt)
            .subnets(&private_refs)
            .size(c.managers, c.managers, c.managers)
            .swarm_managers(),
    );
    s.add(
        Asg::new("workers")
            .launch_template(&worker_lt)
            .subnets(&private_refs)
            .size(c.workers.0, c.workers.1, c.workers.2)
            .tag("role", "swarm-worker"),
    );

    // Swarm services: the app rolls start-first and rolls back on failure; tasks restart on
    // failure and spread across AZs.
    let rolling = UpdatePolicy::new()
        .parallelism(1)
        .delay(Duration::from_secs(5))
        .order(UpdateOrder::StartFirst)
        .failure_action(FailureAction::Rollback);
    s.add(
        SwarmService::new("app")
            .image(c.app_image.as_str())
            .args(["httpd", "-f", "-p", "8080"])
            .replicas(c.app_replicas)
            .spread("node.labels.az")
            .update_policy(rolling.clone())
            .restart_policy(
                RestartCondition::OnFailure,
                Duration::from_secs(5),
                3,
                Duration::from_secs(60),
            )
            .env("APP_ENV", ctx.env.as_str()),
    );
    s.add(
        SwarmService::new("log-shipper")
            .image(c.app_image.as_str())
            .args(["sleep", "1000000"])
            .global()
            .update_policy(UpdatePolicy::new().failure_action(FailureAction::Rollback)),
    );
    s
}

fn main() -> ExitCode {
    infra::cli::run(stack)
}
