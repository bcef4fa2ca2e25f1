//! The production stack of the talk (shared/seed): highly available, highly secure, no human
//! interaction.
//!
//! * Network: a VPC over three availability zones, a public and a private subnet in each, an
//!   internet gateway, a NAT gateway (with its Elastic IP) per AZ, and route tables.
//! * Access: a bastion (an auto scaling group of one over the public subnets) is the single point
//!   of access, SSH only from the admin CIDR; Swarm ports open only between cluster members.
//! * Compute: Swarm managers (3, one per AZ) and workers (scaling on CPU) in auto scaling groups,
//!   from launch templates on the newest Packer-built AMI (found by name), IMDSv2 required,
//!   encrypted EBS; a least-privilege node role and instance profile.
//! * People: an MFA-required policy on the human users' group.
//! * Swarm: the app (replicated, start-first rolling updates, rollback on failure, restart on
//!   failure, spread across AZs), Elasticsearch and Kibana (the central store for logs and
//!   metrics), a global log shipper, on encrypted overlay networks, with secrets.
//!
//! One [`Config`] holds everything that differs between environments, so `local`, `staging` and
//! `production` are the same code with other values. `--env local` (the default) sizes
//! everything down and runs every service on the locally built test image, so the whole stack
//! converges on one machine (moto + the local swarm). `--env lab` is the same for the cluster
//! lab (`.ci/lab`: moto's instances as Docker nodes whose agents form the swarm; see the README).
//!
//! ```text
//! cargo run --example production                                  # plan on the sandbox
//! cargo run --example production -- apply --auto-approve          # converge the sandbox
//! cargo run --example production -- --target live apply --auto-approve   # AWS, then Swarm
//! cargo run --example production -- --env production plan        # the production values
//! ```

mod stack;

fn main() -> std::process::ExitCode {
    infra::cli::run(stack::stack)
}
