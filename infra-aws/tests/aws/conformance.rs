//! The core's provider conformance suite, run against the AWS provider on moto.

use infra_aws::*;
use infra_core::conformance::{run, Case};
use infra_core::dsl::Stack;

use crate::support::{moto, unique};

fn build(name: &str) -> Stack {
    let mut s = Stack::new(name);
    let vpc = s.add(
        Vpc::new("main")
            .cidr("10.20.0.0/16")
            .tag("suite", "conformance"),
    );
    s.add(
        Subnet::new("a")
            .vpc(&vpc)
            .cidr("10.20.1.0/24")
            .az("us-east-1a"),
    );
    s.add(
        SecurityGroup::new("web")
            .vpc(&vpc)
            .ingress(Rule::tcp(443).cidr("0.0.0.0/0"))
            .egress_all(),
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
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_provider_passes_the_conformance_suite() {
    let Some(m) = moto("conformance").await else {
        return;
    };
    let case = Case {
        build: Box::new(build),
        update: Box::new(|s: &mut Stack| {
            let a: infra_core::Address = "aws_security_group.web".parse().unwrap();
            let spec = s.get_mut(&a).unwrap();
            let mut rules = spec.get("ingress").unwrap().as_list().unwrap().to_vec();
            rules.push(infra_core::map! { "protocol" => "tcp", "from_port" => 80, "to_port" => 80, "cidr" => "0.0.0.0/0" });
            spec.set("ingress", infra_core::Value::List(rules));
            let v: infra_core::Address = "aws_vpc.main".parse().unwrap();
            s.get_mut(&v).unwrap().insert("tags", "suite", "updated");
        }),
        replace: Some(Box::new(|s: &mut Stack| {
            let a: infra_core::Address = "aws_subnet.a".parse().unwrap();
            s.get_mut(&a).unwrap().set("cidr_block", "10.20.2.0/24");
        })),
    };
    let out = run(m.provider.clone(), &case, &unique("conf")).await;
    assert!(out.applies >= 5, "{out:?}");
}
