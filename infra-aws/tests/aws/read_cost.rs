//! What a no-op plan costs: one listing per object type (plus pages), never one call per
//! resource — the exceptions being what AWS only exposes per object: the VPC's two DNS
//! attributes (two calls per VPC), lifecycle hooks (one `DescribeLifecycleHooks` per auto scaling
//! group of the stack) and the tags and values of SSM parameters (one `ListTagsForResource` per
//! parameter of the stack, one `GetParameters` per ten), for ELBv2, which has no tag filter:
//! `DescribeTags` for the listed load balancers and target groups of the account, 20 ARNs a
//! call, one `DescribeListeners` per load balancer of the stack (plus `DescribeTags` for their
//! listeners) and one `DescribeLoadBalancerAttributes` per application load balancer of the
//! stack, and per object of the serverless kinds (see `serverless.rs`: a function's tags and
//! policy, an API's routes, integrations and stages, a rule's tags and targets).
//! Measured for a production-like stack and for a generated 1,000-resource stack; the figures
//! are printed (run with `--nocapture`), only the call counts are asserted.

use std::collections::BTreeMap;
use std::time::Instant;

use infra_aws::*;
use infra_core::dsl::{Resource, Stack};

use crate::support::{apply, assert_noop, destroy, moto, plan, unique, Moto};

/// The listing operations of a read; each may appear once per page.
const LISTINGS: &[&str] = &[
    "ec2.DescribeVpcs",
    "ec2.DescribeSubnets",
    "ec2.DescribeInternetGateways",
    "ec2.DescribeAddresses",
    "ec2.DescribeNatGateways",
    "ec2.DescribeRouteTables",
    "ec2.DescribeSecurityGroups",
    "ec2.DescribeLaunchTemplates",
    "ec2.DescribeLaunchTemplateVersions",
    "autoscaling.DescribeAutoScalingGroups",
    "autoscaling.DescribePolicies",
    "iam.GetAccountAuthorizationDetails",
    "iam.ListInstanceProfiles",
    "ssm.DescribeParameters",
    "elasticloadbalancingv2.DescribeLoadBalancers",
    "elasticloadbalancingv2.DescribeTargetGroups",
    "lambda.ListFunctions",
    "apigatewayv2.GetApis",
    "eventbridge.ListRules",
];

/// ELBv2's tag read: 20 ARNs a call, over what the listings return for the whole account
/// (other tests' load balancers included), so its count is bounded, not fixed.
const ELB_TAGS: &str = "elasticloadbalancingv2.DescribeTags";

/// The AWS part of the production stack (examples/production.rs), in full: three AZs with
/// public and private subnets, an internet gateway, a NAT gateway per AZ, route tables, the
/// bastion and cluster groups, IAM for the nodes and the humans, three launch templates from an
/// AMI lookup, three auto scaling groups and a CPU target-tracking policy, and the public entry
/// point: an application load balancer with two listeners and the workers' target group.
pub(crate) fn production_like(name: &str) -> Stack {
    let mut s = Stack::new(name);
    let vpc = s.add(Vpc::new("main").cidr("10.0.0.0/16").tag("env", "test"));
    let igw = s.add(InternetGateway::new("main").vpc(&vpc));
    let mut public_rt = RouteTable::new("public")
        .vpc(&vpc)
        .default_route_to_internet(&igw);
    let (mut public, mut private) = (Vec::new(), Vec::new());
    for (i, zone) in ["a", "b", "c"].iter().enumerate() {
        let az = format!("us-east-1{zone}");
        let p = s.add(
            Subnet::new(&format!("public-{zone}"))
                .vpc(&vpc)
                .az(&az)
                .cidr(&format!("10.0.{i}.0/24"))
                .public(true),
        );
        let q = s.add(
            Subnet::new(&format!("private-{zone}"))
                .vpc(&vpc)
                .az(&az)
                .cidr(&format!("10.0.{}.0/24", 10 + i)),
        );
        let nat = nat_gateway_with_eip(&mut s, &format!("nat-{zone}"), &p);
        s.add(
            RouteTable::new(&format!("private-{zone}"))
                .vpc(&vpc)
                .default_route_to_nat(&nat)
                .associate(&q),
        );
        public_rt = public_rt.associate(&p);
        public.push(p);
        private.push(q);
    }
    s.add(public_rt);
    let bastion_sg = s.add(
        SecurityGroup::new("bastion")
            .vpc(&vpc)
            .description("Bastion: SSH from the admin network only")
            .ingress(
                Rule::tcp(22)
                    .cidr("198.51.100.7/32")
                    .describe("SSH from admins"),
            )
            .egress_all(),
    );
    let cluster_sg = s.add(
        SecurityGroup::new("cluster")
            .vpc(&vpc)
            .ingress(Rule::tcp(2377).from_self().describe("Swarm management"))
            .ingress(Rule::tcp(7946).from_self().describe("Swarm gossip"))
            .ingress(Rule::udp(7946).from_self().describe("Swarm gossip"))
            .ingress(
                Rule::udp(4789)
                    .from_self()
                    .describe("overlay network (VXLAN)"),
            )
            .ingress(
                Rule::esp()
                    .from_self()
                    .describe("encrypted overlay (IPsec ESP)"),
            )
            .ingress(
                Rule::tcp(22)
                    .group(&bastion_sg)
                    .describe("SSH from the bastion"),
            )
            .egress_all(),
    );
    let node_policy = s.add(
        IamPolicy::new("node").document(
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
    let role = s.add(
        IamRole::new("node")
            .assumed_by_service("ec2.amazonaws.com")
            .attach(&node_policy),
    );
    let profile = s.add(InstanceProfile::new("node").role(&role));
    let mfa = s.add(IamPolicy::mfa_required("mfa-required"));
    let humans = s.add(IamGroup::new("humans").attach(&mfa));
    s.add(IamUser::new("alice").group(&humans));
    let ami = s.add(
        Ami::lookup("node")
            .owners(["amazon"])
            .name_pattern("amzn-ami-hvm-*-x86_64-gp2"),
    );
    let lt = |s: &mut Stack, n: &str, t: &str, sg: &infra_core::Ref<SecurityGroup>| {
        s.add(
            LaunchTemplate::new(n)
                .image_from(&ami)
                .instance_type(t)
                .security_group(sg)
                .instance_profile(&profile),
        )
    };
    let bastion_lt = lt(&mut s, "bastion", "t3.nano", &bastion_sg);
    let manager_lt = lt(&mut s, "manager", "t3.micro", &cluster_sg);
    let worker_lt = lt(&mut s, "worker", "t3.micro", &cluster_sg);
    let pubs: Vec<&infra_core::Ref<Subnet>> = public.iter().collect();
    let privs: Vec<&infra_core::Ref<Subnet>> = private.iter().collect();
    s.add(
        Asg::new("bastion")
            .launch_template(&bastion_lt)
            .subnets(&pubs)
            .size(1, 1, 1)
            .tag("role", "bastion"),
    );
    let managers = s.add(
        Asg::new("managers")
            .launch_template(&manager_lt)
            .subnets(&privs)
            .size(3, 3, 3)
            .tag("role", "swarm-manager"),
    );
    let lb_sg = s.add(
        SecurityGroup::new("lb")
            .vpc(&vpc)
            .ingress(Rule::tcp(443).cidr("0.0.0.0/0"))
            .egress(Rule::tcp(8080).cidr("10.0.0.0/16")),
    );
    let lb = s.add(
        LoadBalancer::application("web")
            .subnets(&pubs)
            .security_group(&lb_sg),
    );
    let app = s.add(
        TargetGroup::new("app", TargetProtocol::Http, 8080)
            .vpc(&vpc)
            .health_check_path("/health"),
    );
    s.add(Listener::http_redirect("http", &lb));
    s.add(
        Listener::https(
            "https",
            &lb,
            "arn:aws:iam::123456789012:server-certificate/read-cost",
        )
        .forward(&app),
    );
    let workers = s.add(
        Asg::new("workers")
            .launch_template(&worker_lt)
            .subnets(&privs)
            .target_group(&app)
            .size(1, 3, 1)
            .tag("role", "swarm-worker")
            .ignore_changes(&["desired_capacity"]),
    );
    s.add(
        ScalingPolicy::target_tracking("workers-cpu")
            .asg(&workers)
            .cpu_target(60.0),
    );
    for (name, group) in [("managers-drain", &managers), ("workers-drain", &workers)] {
        s.add(
            LifecycleHook::on_terminate(name)
                .asg(group)
                .heartbeat(std::time::Duration::from_secs(300)),
        );
    }
    s
}

/// A generated stack of `n` resources: one VPC, 250 subnets, 100 security groups with a rule,
/// then IAM policies and IAM groups in turn. (Few security groups: moto's tag-filtered
/// DescribeSecurityGroups costs about 8 ms per group in the account, which AWS does not.)
fn generated(name: &str, n: usize) -> Stack {
    let mut s = Stack::new(name);
    let vpc = s.add(Vpc::new("main").cidr("10.100.0.0/16"));
    for k in 1..n {
        if k <= 250 {
            s.add(
                Subnet::new(&format!("s{k}"))
                    .vpc(&vpc)
                    .cidr(&format!("10.100.{}.0/24", k - 1))
                    .az(["us-east-1a", "us-east-1b", "us-east-1c"][k % 3]),
            );
        } else if k <= 350 {
            s.add(
                SecurityGroup::new(&format!("g{k}"))
                    .vpc(&vpc)
                    .ingress(Rule::tcp(1024 + k as u16).cidr("10.0.0.0/8")),
            );
        } else if k % 2 == 0 {
            s.add(
                IamPolicy::new(&format!("p{k}")).document(
                    PolicyDocument::new().statement(
                        Statement::allow()
                            .actions(["s3:GetObject"])
                            .resources([format!("arn:aws:s3:::bucket-{k}/*")]),
                    ),
                ),
            );
        } else {
            s.add(IamGroup::new(&format!("u{k}")));
        }
    }
    s
}

struct Figures {
    resources: usize,
    read_calls: u64,
    plan_calls: u64,
    by_operation: BTreeMap<String, u64>,
    millis: u128,
}

/// Plans the (already applied) stack once more, checking it is empty, and measures it.
async fn measure(m: &Moto, stack: &Stack) -> Figures {
    let engine = m.engine();
    let calls_before = m.provider.calls_by_operation().values().sum::<u64>();
    let started = Instant::now();
    let p = plan(&engine, stack).await;
    let millis = started.elapsed().as_millis();
    assert!(
        p.plan.is_empty(),
        "{}",
        infra_core::render::plan_text(&p.plan)
    );
    let plan_calls = m.provider.calls_by_operation().values().sum::<u64>() - calls_before;
    Figures {
        resources: stack.len(),
        read_calls: p.plan.reads.iter().map(|r| r.api_calls).sum(),
        plan_calls,
        by_operation: m.provider.last_read_calls(),
        millis,
    }
}

/// The calls of ELBv2's tag reads in `f`.
fn elb_tags(f: &Figures) -> u64 {
    f.by_operation.get(ELB_TAGS).copied().unwrap_or(0)
}

/// The assertion: only listings (each once per page; moto returns one page), the two DNS
/// attribute reads per VPC, the hooks of each auto scaling group, the listeners and attributes
/// of each (application) load balancer, and ELBv2's tag reads.
fn assert_batched(f: &Figures, vpcs: u64, groups: u64, lbs: u64) {
    for (op, n) in &f.by_operation {
        if op == "ec2.DescribeVpcAttribute" {
            assert_eq!(*n, 2 * vpcs, "two DNS attributes per VPC");
        } else if op == "autoscaling.DescribeLifecycleHooks" {
            assert_eq!(*n, groups, "the hooks of each group");
        } else if op == "elasticloadbalancingv2.DescribeListeners"
            || op == "elasticloadbalancingv2.DescribeLoadBalancerAttributes"
        {
            assert_eq!(*n, lbs, "{op}: one per load balancer of the stack");
        } else if op == ELB_TAGS {
            // Load balancers and target groups of the account, 20 a call, and the stack's
            // listeners: never one call per object.
            assert!(
                *n <= 2 + 2 * lbs + 20,
                "{n} tag reads: {:#?}",
                f.by_operation
            );
            if lbs > 0 {
                assert!(*n >= 3, "the LB, target group and listener tags: {n}");
            }
        } else {
            assert!(
                LISTINGS.contains(&op.as_str()),
                "{op} is not a listing: {:#?}",
                f.by_operation
            );
            assert_eq!(*n, 1, "{op} called {n} times: {:#?}", f.by_operation);
        }
    }
    let listings = f
        .by_operation
        .iter()
        .filter(|(op, _)| LISTINGS.contains(&op.as_str()))
        .count() as u64;
    assert_eq!(
        f.read_calls,
        listings + 2 * vpcs + groups + 2 * lbs + elb_tags(f),
        "{:#?}",
        f.by_operation
    );
}

fn report(label: &str, f: &Figures) {
    println!(
        "\n[read cost] {label}: {} resources; no-op plan: {} read calls ({} with data source lookups), {} ms against moto\n  {:?}",
        f.resources, f.read_calls, f.plan_calls, f.millis, f.by_operation
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_no_op_plan_lists_each_type_once_for_the_production_stack() {
    let Some(m) = moto("a_no_op_plan_lists_each_type_once_for_the_production_stack").await else {
        return;
    };
    let engine = m.engine();
    let name = unique("prod");
    let s = production_like(&name);
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after create").await;
    let f = measure(&m, &s).await;
    report("production stack (AWS part)", &f);
    assert_batched(&f, 1, 3, 1);
    assert_eq!(
        f.read_calls,
        LISTINGS.len() as u64 + 2 + 3 + 2 + elb_tags(&f),
        "every listing once, plus the VPC's attributes, the hooks of the three groups, the \
         load balancer's listeners and attributes, and ELBv2's tag reads"
    );
    assert_eq!(
        f.plan_calls,
        f.read_calls + 1,
        "plus one DescribeImages for the AMI lookup"
    );
    destroy(&m, &engine, &s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_no_op_plan_of_1000_resources_costs_the_same_calls() {
    let Some(m) = moto("a_no_op_plan_of_1000_resources_costs_the_same_calls").await else {
        return;
    };
    let engine = m.engine();
    let name = unique("big");
    let s = generated(&name, 1000);
    assert_eq!(s.len(), 1000);
    let started = Instant::now();
    apply(&engine, &s).await;
    let create_ms = started.elapsed().as_millis();
    let f = measure(&m, &s).await;
    report("generated stack", &f);
    println!("  (creating it took {create_ms} ms)");
    assert_batched(&f, 1, 0, 0);
    // Types without objects in this stack are listed too (a removed declaration must be found).
    assert!(f.read_calls <= LISTINGS.len() as u64 + 2 + elb_tags(&f));
    let started = Instant::now();
    destroy(&m, &engine, &s).await;
    println!(
        "  (destroying it took {} ms)",
        started.elapsed().as_millis()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ssm_parameters_cost_a_tag_read_each_and_a_value_read_per_ten() {
    let Some(m) = moto("ssm_parameters_cost_a_tag_read_each_and_a_value_read_per_ten").await else {
        return;
    };
    let engine = m.engine();
    let name = unique("ssmcost");
    let mut s = Stack::new(&name);
    for i in 0..12 {
        let p = format!("/infra/{name}/p{i}");
        s.add(if i % 2 == 0 {
            SsmParameter::string(&format!("p{i}"), &p).value(format!("v{i}"))
        } else {
            SsmParameter::secure_string(&format!("p{i}"), &p).value(format!("secret-{i}"))
        });
    }
    apply(&engine, &s).await;
    let f = measure(&m, &s).await;
    report("12 SSM parameters", &f);
    let n = |op: &str| f.by_operation.get(op).copied().unwrap_or(0);
    // Pages of 50 are asked for; moto answers 10 a page whatever is asked, so its 12
    // parameters take two pages (and the empty re-plan shows the second page was read).
    assert_eq!(n("ssm.DescribeParameters"), 2, "{:#?}", f.by_operation);
    assert_eq!(n("ssm.ListTagsForResource"), 12, "{:#?}", f.by_operation);
    assert_eq!(n("ssm.GetParameters"), 2, "{:#?}", f.by_operation);
    destroy(&m, &engine, &s).await;
}
