//! A small stack that touches every first kind, and helpers to plan and apply it on a sandbox.

use std::path::Path;

use infra::prelude::*;
use infra_core::reconcile::NoObserver;
use infra_core::render;

/// A VPC with two subnets, a security group, a launch template, an ASG, a policy, a service.
pub(crate) fn stack() -> Stack {
    let mut s = Stack::new("fixture");
    let vpc = s.add(Vpc::new("main").cidr("10.0.0.0/16"));
    let a = s.add(
        Subnet::new("a")
            .vpc(&vpc)
            .cidr("10.0.1.0/24")
            .az("us-east-1a"),
    );
    let b = s.add(
        Subnet::new("b")
            .vpc(&vpc)
            .cidr("10.0.2.0/24")
            .az("us-east-1b"),
    );
    let sg = s.add(
        SecurityGroup::new("web")
            .vpc(&vpc)
            .ingress(Rule::tcp(443).cidr("0.0.0.0/0"))
            .ingress(Rule::tcp(22).cidr("198.51.100.0/24"))
            .egress_all(),
    );
    let lt = s.add(
        LaunchTemplate::new("web")
            .image("ami-0123456789abcdef0")
            .instance_type("t3.micro")
            .security_group(&sg),
    );
    s.add(
        Asg::new("web")
            .launch_template(&lt)
            .subnets(&[&a, &b])
            .size(2, 4, 2),
    );
    s.add(
        IamPolicy::new("read").document(
            PolicyDocument::new().statement(
                Statement::allow()
                    .actions(["ec2:DescribeInstances"])
                    .resources(["*"]),
            ),
        ),
    );
    s.add(
        SwarmService::new("app")
            .image("sha256:1111")
            .replicas(2)
            .env("MODE", "prod"),
    );
    s
}

pub(crate) fn engine(dir: &Path) -> Engine {
    Engine::new()
        .with_provider(SandboxProvider::open(dir, "aws").unwrap())
        .with_provider(SandboxProvider::open(dir, "swarm").unwrap())
}

pub(crate) async fn plan(engine: &Engine, stack: &Stack) -> Planned {
    engine.plan(stack, &PlanOptions::default()).await.unwrap()
}

pub(crate) async fn apply(engine: &Engine, stack: &Stack) {
    let p = plan(engine, stack).await;
    let r = engine.apply(&p, &NoObserver).await.unwrap();
    assert!(r.is_success(), "{}", render::report_text(&r));
}
