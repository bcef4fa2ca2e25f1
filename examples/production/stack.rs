//! The stack itself, shared by the deploy program (`main.rs`) and the tests (`tests/`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use infra::aws::{
    nat_gateway_with_eip, physical_name, Ami, EventRule, EventRuleOutputs, HttpApi, HttpApiOutputs,
    IamGroup, IamRole, IamRoleOutputs, IamUser, InstanceProfile, InternetGateway, LambdaCode,
    LambdaFunction, LambdaFunctionOutputs, LambdaPermission, LifecycleDefault, LifecycleHook,
    Listener, LoadBalancer, LoadBalancerOutputs, RouteAuth, RouteTable, ScalingPolicy, TargetGroup,
    TargetProtocol,
};
use infra::cli::Context;
use infra::prelude::*;
use infra::swarm::{EndpointMode, Mount, NodeLabels, SwarmConfig, SwarmNetwork, SwarmSecret};

#[path = "controller.rs"]
mod controller;

/// Where a secret's value comes from.
enum SecretSource {
    /// A fixed value, for the local environment only.
    Local(&'static str),
    /// An environment variable of the deploy program (validation says so when it's missing).
    Env(&'static str),
}

/// The port the app listens on, published on the swarm nodes and the target of the load
/// balancer's target group.
const APP_PORT: u16 = 8080;

/// Where the HTTPS listener's certificate ARN comes from.
enum CertificateSource {
    /// A fixed ARN: the local environments (moto) use an IAM server certificate's, which moto
    /// accepts without the certificate existing (an ACM ARN must exist in moto's ACM).
    Fixed(&'static str),
    /// An environment variable of the deploy program holding an ACM certificate's ARN
    /// (validation says so when it's missing).
    Env(&'static str),
}

/// How the app's port is published on the swarm nodes, for the load balancer's target group.
enum AppPublish {
    /// Not at all: the local environment runs on one shared engine (a fixed host port would
    /// collide between stacks), and nothing outside moto could reach it anyway.
    None,
    /// On the nodes that run a task (no ingress network or IPVS needed): the cluster lab.
    Host,
    /// Through Swarm's routing mesh: every node answers on the port, so every worker the
    /// target group registers is a healthy target wherever the tasks run (AWS).
    Ingress,
}

/// Everything that differs between environments.
struct Config {
    stack: String,
    vpc_cidr: &'static str,
    azs: [&'static str; 3],
    admin_cidr: &'static str,
    ami_pattern: &'static str,
    instance_type: &'static str,
    managers: u32,
    workers: (u32, u32, u32),
    worker_cpu_target: f64,
    humans: &'static [&'static str],
    app_image: String,
    app_replicas: u32,
    es_image: String,
    kibana_image: String,
    shipper_image: String,
    /// Commands for the stand-in images of `local` (the real images have their own).
    local_commands: bool,
    es_password: SecretSource,
    /// Overlay encryption (IPsec) needs kernel support the local machine may lack.
    encrypted_networks: bool,
    /// How long a rolling update watches each new task.
    monitor: Duration,
    /// Label the local node `az=a` (in AWS, the node agent labels its own node).
    label_local_node: bool,
    /// How the others reach Elasticsearch by its name (`http://elasticsearch:9200`, the app's
    /// `ES_URL` and Kibana's config; every service answers to its declared name on its
    /// networks). On AWS the name is a virtual IP that IPVS balances over the tasks (Swarm's
    /// default); the local engine has no IPVS, so a VIP resolves there but never answers, and
    /// the name resolves straight to the task's address instead (`dnsrr`).
    es_endpoint: EndpointMode,
    /// The `az` label of the node Elasticsearch runs on, with `node.role == manager`: the
    /// manager in that AZ (one manager per AZ). Its data lives in a named volume on that node,
    /// so it must come back to the same node after a restart or an update. The node agent sets
    /// both labels on every node it joins (AWS, the lab); locally, `local-node` sets `az`.
    es_az: &'static str,
    /// How long a terminating swarm node may take to drain (the lifecycle hooks' heartbeat).
    drain_timeout: Duration,
    /// The HTTPS listener's certificate.
    certificate: CertificateSource,
    /// How the app's port reaches the load balancer.
    app_publish: AppPublish,
    /// How Elasticsearch's port 9200 is published on the node it runs on, for the internal
    /// network load balancer the functions (outside the swarm) reach it through.
    es_publish: AppPublish,
}

/// The zip of one of the project's Lambda functions (crate `infra-functions`), built for the
/// `provided.al2023` runtime by [`infra::artifacts::lambda_zip`] the first time this process asks
/// for it: cargo decides what is up to date (a few seconds when nothing changed; the first build
/// of a fresh checkout takes about two minutes). A build that fails is reported on stderr, and
/// the missing zip is then a validation problem of the function, naming the command to run.
pub(crate) fn function_zip(name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<BTreeMap<String, PathBuf>> =
        std::sync::Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let path = match infra::artifacts::lambda_zip(name) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("infra: the Lambda function {name} could not be built: {e}");
            infra::artifacts::lambda_zip_path(name)
        }
    };
    built.insert(name.to_string(), path.clone());
    path
}

pub(crate) fn local_image() -> String {
    std::env::var("INFRA_TEST_IMAGE")
        .ok()
        .or_else(|| std::fs::read_to_string("/tmp/infra-test-image-id").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "infra-test:busybox".into())
}

fn config(env: &str) -> Config {
    match env {
        "production" | "staging" => {
            let prod = env == "production";
            Config {
                stack: if prod { "prod" } else { "staging" }.into(),
                vpc_cidr: if prod { "10.0.0.0/16" } else { "10.1.0.0/16" },
                azs: ["us-east-1a", "us-east-1b", "us-east-1c"],
                admin_cidr: "203.0.113.0/24",
                ami_pattern: "infra-swarm-node-*",
                instance_type: if prod { "m5.large" } else { "t3.medium" },
                managers: 3,
                workers: if prod { (3, 12, 3) } else { (2, 6, 2) },
                worker_cpu_target: 60.0,
                humans: &["alice", "bob", "carol"],
                app_image: "registry.example.com/app:1.4.2".into(),
                app_replicas: if prod { 6 } else { 3 },
                es_image: "docker.elastic.co/elasticsearch/elasticsearch:8.15.0".into(),
                kibana_image: "docker.elastic.co/kibana/kibana:8.15.0".into(),
                shipper_image: "docker.elastic.co/beats/filebeat:8.15.0".into(),
                local_commands: false,
                es_password: SecretSource::Env("ES_PASSWORD"),
                encrypted_networks: true,
                monitor: Duration::from_secs(30),
                label_local_node: false,
                es_endpoint: EndpointMode::Vip,
                es_az: "us-east-1a",
                drain_timeout: Duration::from_secs(300),
                certificate: CertificateSource::Env("CERTIFICATE_ARN"),
                app_publish: AppPublish::Ingress,
                es_publish: AppPublish::Host,
            }
        }
        // `lab`: the local sizes on the cluster lab (moto's instances as Docker nodes on this
        // machine, `.ci/lab`): the node agents form the swarm and label the nodes, three app
        // replicas spread over three AZs, two workers to scale.
        _ => {
            let lab = env == "lab";
            let image = local_image();
            Config {
                stack: if lab { "lab" } else { "local" }.into(),
                vpc_cidr: "10.9.0.0/16",
                azs: ["us-east-1a", "us-east-1b", "us-east-1c"],
                admin_cidr: "198.51.100.7/32",
                ami_pattern: "infra-swarm-node-*",
                instance_type: "t3.micro",
                managers: 3,
                workers: if lab { (2, 4, 2) } else { (1, 3, 1) },
                worker_cpu_target: 60.0,
                humans: &["alice"],
                app_image: image.clone(),
                app_replicas: if lab { 3 } else { 2 },
                es_image: image.clone(),
                kibana_image: image.clone(),
                shipper_image: image,
                local_commands: true,
                es_password: SecretSource::Local("local-only-es-password"),
                encrypted_networks: false,
                monitor: Duration::from_secs(1),
                label_local_node: !lab,
                es_endpoint: EndpointMode::Dnsrr,
                es_az: if lab { "us-east-1a" } else { "a" },
                drain_timeout: Duration::from_secs(60),
                certificate: CertificateSource::Fixed(
                    "arn:aws:iam::123456789012:server-certificate/infra-local",
                ),
                app_publish: if lab {
                    AppPublish::Host
                } else {
                    AppPublish::None
                },
                es_publish: if lab {
                    AppPublish::Host
                } else {
                    AppPublish::None
                },
            }
        }
    }
}

/// The network: public and private subnets in each AZ, a NAT gateway per AZ.
struct Network {
    vpc: Ref<Vpc>,
    public: Vec<Ref<Subnet>>,
    private: Vec<Ref<Subnet>>,
}

fn network(s: &mut Stack, c: &Config, env: &str) -> Network {
    let vpc = s.add(Vpc::new("main").cidr(c.vpc_cidr).tag("env", env).protect());
    let igw = s.add(InternetGateway::new("main").vpc(&vpc));
    let octets: Vec<&str> = c.vpc_cidr.split('.').take(2).collect();
    let block = |third: usize| format!("{}.{}.{third}.0/24", octets[0], octets[1]);

    let mut public_rt = RouteTable::new("public")
        .vpc(&vpc)
        .default_route_to_internet(&igw);
    let (mut public, mut private) = (Vec::new(), Vec::new());
    for (i, az) in c.azs.iter().enumerate() {
        let zone = &az[az.len() - 1..];
        let pub_subnet = s.add(
            Subnet::new(&format!("public-{zone}"))
                .vpc(&vpc)
                .az(az)
                .cidr(&block(i))
                .public(true),
        );
        let priv_subnet = s.add(
            Subnet::new(&format!("private-{zone}"))
                .vpc(&vpc)
                .az(az)
                .cidr(&block(10 + i)),
        );
        // One NAT gateway per AZ: losing an AZ doesn't cut the others off the internet.
        let nat = nat_gateway_with_eip(s, &format!("nat-{zone}"), &pub_subnet);
        s.add(
            RouteTable::new(&format!("private-{zone}"))
                .vpc(&vpc)
                .default_route_to_nat(&nat)
                .associate(&priv_subnet),
        );
        public_rt = public_rt.associate(&pub_subnet);
        public.push(pub_subnet);
        private.push(priv_subnet);
    }
    s.add(public_rt);
    Network {
        vpc,
        public,
        private,
    }
}

fn aws(s: &mut Stack, c: &Config, env: &str) {
    let net = network(s, c, env);

    // Security groups: the bastion is the only door; Swarm ports only between members.
    let bastion_sg = s.add(
        SecurityGroup::new("bastion")
            .vpc(&net.vpc)
            .description("Bastion: SSH from the admin network only")
            .bastion()
            .ingress(Rule::tcp(22).cidr(c.admin_cidr).describe("SSH from admins"))
            .egress_all(),
    );
    // The Lambda functions run in the private subnets: out to Elasticsearch and AWS's APIs.
    let functions_sg = s.add(
        SecurityGroup::new("functions")
            .vpc(&net.vpc)
            .description("Lambda functions: no ingress; out to Elasticsearch and AWS APIs")
            .egress_all(),
    );
    // Elasticsearch's door for what runs outside the swarm (the functions): an internal network
    // load balancer in the private subnets. Its group takes 9200 from the functions only and
    // reaches 9200 on the managers; the managers take 9200 from this group only (the forwarded
    // connections and the health checks alike).
    let es_lb_sg = s.add(
        SecurityGroup::new("es-lb")
            .vpc(&net.vpc)
            .description("Elasticsearch's internal load balancer: 9200 from the functions only")
            .ingress(
                Rule::tcp(9200)
                    .group(&functions_sg)
                    .describe("Elasticsearch from the Lambda functions"),
            )
            .egress(
                Rule::tcp(9200)
                    .cidr(c.vpc_cidr)
                    .describe("Elasticsearch on the managers"),
            ),
    );
    let cluster_sg = s.add(
        SecurityGroup::new("cluster")
            .vpc(&net.vpc)
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
                Rule::esp()
                    .from_self()
                    .describe("encrypted overlay networks (IPsec ESP)"),
            )
            .ingress(
                Rule::tcp(22)
                    .group(&bastion_sg)
                    .describe("SSH from the bastion"),
            )
            .ingress(
                Rule::tcp(9200)
                    .group(&es_lb_sg)
                    .describe("Elasticsearch, from its internal load balancer"),
            )
            .egress_all(),
    );
    // The single public entry point: an internet-facing load balancer in the public subnets.
    // Its group takes HTTP (redirected) and HTTPS from anywhere and reaches only the app's port
    // inside the VPC; the workers take the app's port from that group only.
    let lb_sg = s.add(
        SecurityGroup::new("lb")
            .vpc(&net.vpc)
            .description(
                "Load balancer: HTTP and HTTPS from the internet, the app port inside the VPC",
            )
            .public_port(80)
            .public_port(443)
            .ingress(
                Rule::tcp(80)
                    .cidr("0.0.0.0/0")
                    .describe("HTTP, redirected to HTTPS"),
            )
            .ingress(Rule::tcp(443).cidr("0.0.0.0/0").describe("public HTTPS"))
            .egress(
                Rule::tcp(APP_PORT)
                    .cidr(c.vpc_cidr)
                    .describe("the app on the swarm nodes"),
            ),
    );
    let web_sg = s.add(
        SecurityGroup::new("web")
            .vpc(&net.vpc)
            .description("Workers: the app port from the load balancer only")
            .ingress(
                Rule::tcp(APP_PORT)
                    .group(&lb_sg)
                    .describe("the app, from the load balancer"),
            )
            .egress_all(),
    );

    // IAM: what the node agent may do, and MFA for every human. Least privilege: the cluster's
    // parameters (the `init` race, the join tokens, the node records) under its own path only;
    // read-only discovery; completing the lifecycle actions of the stack's two swarm groups only.
    let group_arn = |name: &str| {
        format!(
            "arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/{}",
            physical_name(&c.stack, name)
        )
    };
    let node_policy = s.add(
        IamPolicy::new("node")
            .description("Swarm node agent: cluster parameters, peer discovery, lifecycle hooks")
            .document(
                PolicyDocument::new()
                    .statement(
                        Statement::allow()
                            .sid("ClusterParameters")
                            .actions([
                                "ssm:GetParameter",
                                "ssm:GetParametersByPath",
                                "ssm:PutParameter",
                                "ssm:DeleteParameter",
                            ])
                            .resources([format!("arn:aws:ssm:*:*:parameter/infra/{}/*", c.stack)]),
                    )
                    .statement(
                        Statement::allow()
                            .sid("DiscoverPeers")
                            .actions([
                                "ec2:DescribeInstances",
                                "autoscaling:DescribeAutoScalingGroups",
                                "autoscaling:DescribeAutoScalingInstances",
                                "autoscaling:DescribeLifecycleHooks",
                            ])
                            .resources(["*"]),
                    )
                    .statement(
                        Statement::allow()
                            .sid("CompleteLifecycleActions")
                            .actions([
                                "autoscaling:CompleteLifecycleAction",
                                "autoscaling:RecordLifecycleActionHeartbeat",
                            ])
                            .resources([group_arn("managers"), group_arn("workers")]),
                    ),
            ),
    );
    let node_role = s.add(
        IamRole::new("node")
            .assumed_by_service("ec2.amazonaws.com")
            .attach(&node_policy),
    );
    let profile = s.add(InstanceProfile::new("node").role(&node_role));
    let mfa = s.add(IamPolicy::mfa_required("mfa-required"));
    let humans = s.add(IamGroup::new("humans").attach(&mfa));
    for name in c.humans {
        s.add(IamUser::new(name).group(&humans));
    }

    // Compute: launch templates on the newest Packer-built image.
    let ami = s.add(Ami::lookup("swarm-node").name_pattern(c.ami_pattern));
    let template = |name: &str, kind: &str, groups: &[&Ref<SecurityGroup>]| {
        // Swarm nodes start the node agent (baked into the image): it learns its role from its
        // group's `role` tag, initialises or joins the swarm, labels its node, and drains it
        // when the instance terminates. The bastion is no swarm node.
        let user_data = if kind == "bastion" {
            "#!/bin/sh\n# the bastion: SSH access only, not a swarm node\n".to_string()
        } else {
            format!("#!/bin/sh\n# a swarm {kind}: the node agent joins the swarm and drains the node on termination\nexec /usr/local/bin/infra-node run\n")
        };
        let mut lt = LaunchTemplate::new(name)
            .image(ami.id())
            .instance_type(if kind == "bastion" {
                "t3.nano"
            } else {
                c.instance_type
            })
            .instance_profile(&profile)
            .user_data(&user_data)
            .tag("role", kind);
        for g in groups {
            lt = lt.security_group(g);
        }
        lt
    };
    let bastion_lt = s.add(template("bastion", "bastion", &[&bastion_sg]));
    let manager_lt = s.add(template("manager", "manager", &[&cluster_sg]));
    let worker_lt = s.add(template("worker", "worker", &[&cluster_sg, &web_sg]));
    let public: Vec<&Ref<Subnet>> = net.public.iter().collect();
    let private: Vec<&Ref<Subnet>> = net.private.iter().collect();
    s.add(
        Asg::new("bastion")
            .launch_template(&bastion_lt)
            .subnets(&public)
            .size(1, 1, 1)
            .tag("role", "bastion"),
    );
    // Elasticsearch runs on one manager (pinned by its AZ label) and publishes 9200 on that
    // node; the target group holds every manager, and its TCP health check finds the one that
    // answers. The managers' group keeps EC2 health checks: with ELB ones, the two managers
    // without Elasticsearch would fail the check and be replaced over and over.
    let es_lb = s.add(
        LoadBalancer::network("es")
            .internal()
            .subnets(&private)
            .security_group(&es_lb_sg),
    );
    let es_tg = s.add(TargetGroup::new("es", TargetProtocol::Tcp, 9200).vpc(&net.vpc));
    s.add(Listener::tcp("es", &es_lb, 9200).forward(&es_tg));
    let managers = s.add(
        Asg::new("managers")
            .launch_template(&manager_lt)
            .target_group(&es_tg)
            .subnets(&private)
            .size(c.managers, c.managers, c.managers)
            .health_check("EC2", 300)
            .swarm_managers(),
    );
    let lb = s.add(
        LoadBalancer::application("web")
            .subnets(&public)
            .security_group(&lb_sg),
    );
    // The app's health endpoint; the workers' health stays EC2's: through the routing mesh
    // every node answers for the service, so a failing check says the app is down, not the
    // node, and replacing nodes would not help.
    let app_tg = s.add(
        TargetGroup::new("app", TargetProtocol::Http, APP_PORT)
            .vpc(&net.vpc)
            .health_check_path("/health")
            .matcher("200-399"),
    );
    s.add(Listener::http_redirect("http", &lb));
    s.add(
        match c.certificate {
            CertificateSource::Fixed(arn) => Listener::https("https", &lb, arn),
            CertificateSource::Env(var) => Listener::https_from_env("https", &lb, var),
        }
        .forward(&app_tg),
    );
    let workers = s.add(
        Asg::new("workers")
            .launch_template(&worker_lt)
            .subnets(&private)
            .target_group(&app_tg)
            .size(c.workers.0, c.workers.1, c.workers.2)
            .tag("role", "swarm-worker")
            // The scaling policy moves the desired capacity; plans must not undo it.
            .ignore_changes(&["desired_capacity"]),
    );
    s.add(
        ScalingPolicy::target_tracking("workers-cpu")
            .asg(&workers)
            .cpu_target(c.worker_cpu_target),
    );
    // A terminating swarm node waits in Terminating:Wait while its agent drains it (and
    // demotes it, if a manager), then completes the action; the timeout bounds the wait.
    for (hook, group) in [("managers-drain", &managers), ("workers-drain", &workers)] {
        s.add(
            LifecycleHook::on_terminate(hook)
                .asg(group)
                .heartbeat(c.drain_timeout)
                .default_result(LifecycleDefault::Continue),
        );
    }

    let es_host = es_lb.dns_name();
    serverless(
        s,
        c,
        &private,
        &functions_sg,
        &es_host,
        &[&managers, &workers],
    );
}

/// The serverless part: an HTTPS endpoint (an HTTP API) whose `POST /events` route hands
/// analytics events to `analytics-ingest`, and `node-events`, called by an EventBridge rule on
/// the swarm groups' instance launches and terminations; both index into the central
/// Elasticsearch from the private subnets, through its internal load balancer (`es_host`, its
/// DNS name; the functions add the port, 9200) with the `elastic` user's password.
fn serverless(
    s: &mut Stack,
    c: &Config,
    private: &[&Ref<Subnet>],
    functions_sg: &Ref<SecurityGroup>,
    es_host: &Output<String>,
    groups: &[&Ref<Asg>],
) {
    // Least privilege: their own log groups, and the VPC's network interfaces (AWS's managed
    // policy for that; ENI actions can't be scoped to resources).
    let logs = format!("arn:aws:logs:*:*:log-group:/aws/lambda/{}-*", c.stack);
    let role = s.add(
        IamRole::new("functions")
            .assumed_by_service("lambda.amazonaws.com")
            .inline_policy(
                "logs",
                PolicyDocument::new().statement(
                    Statement::allow()
                        .sid("OwnLogs")
                        .actions([
                            "logs:CreateLogGroup",
                            "logs:CreateLogStream",
                            "logs:PutLogEvents",
                        ])
                        .resources([logs.clone(), format!("{logs}:*")]),
                ),
            )
            .attach_arn("arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"),
    );
    // Each function's index variable is its own (`ANALYTICS_INDEX`, `NODE_EVENTS_INDEX`).
    let function = |name: &str, index: (&str, &str)| {
        let f = LambdaFunction::new(name)
            .code(LambdaCode::zip_file(function_zip(name)))
            .role(role.arn())
            .memory_mb(256)
            .timeout(Duration::from_secs(10))
            .vpc(private, &[functions_sg])
            .env("ES_HOST", es_host)
            .env(index.0, index.1);
        match c.es_password {
            SecretSource::Local(v) => f.secret_env("ES_PASSWORD", v),
            SecretSource::Env(var) => f.secret_env_from_env("ES_PASSWORD", var),
        }
    };
    let ingest = s.add(function(
        "analytics-ingest",
        ("ANALYTICS_INDEX", "analytics"),
    ));
    let node_events = s.add(function(
        "node-events",
        ("NODE_EVENTS_INDEX", "node-events"),
    ));

    // Callers sign their requests (SigV4) and need execute-api:Invoke on the route.
    let api = s.add(
        HttpApi::new("ingest")
            .description("Analytics events in, to Elasticsearch")
            .route("POST /events", &ingest, RouteAuth::AwsIam),
    );
    s.add(
        LambdaPermission::new("analytics-ingest-from-api")
            .function(ingest.name())
            .principal("apigateway.amazonaws.com")
            .source_arn(api.source_arn()),
    );
    let rule = s.add(
        EventRule::new("node-events")
            .description("Swarm nodes joining and leaving")
            .asg_instance_events(groups)
            .target("node-events", &node_events),
    );
    s.add(
        LambdaPermission::new("node-events-from-rule")
            .function(node_events.name())
            .principal("events.amazonaws.com")
            .source_arn(rule.arn()),
    );
}

/// Filebeat's configuration (the log shipper's, a `SwarmConfig` mounted at
/// `/usr/share/filebeat/filebeat.yml`): every container's JSON log file on the node (the
/// engine's `/var/lib/docker/containers`, mounted read-only at the same path) into
/// Elasticsearch, reached by its service name. The password is the `es-password` secret, read
/// into `ES_PASSWORD` by the shipper's command (Swarm has no environment-from-secret).
const FILEBEAT_YML: &str = r#"# infra: the log shipper on every node (a global service)
filebeat.inputs:
  - type: filestream
    id: docker-containers
    paths:
      - /var/lib/docker/containers/*/*-json.log
    parsers:
      - container: ~
processors:
  - add_host_metadata: ~
output.elasticsearch:
  hosts: ["http://elasticsearch:9200"]
  username: "elastic"
  password: "${ES_PASSWORD}"
"#;

/// Kibana's configuration (replacing the image's `kibana.yml`, so it also says where to listen).
const KIBANA_YML: &str = r#"server.name: kibana
server.host: "0.0.0.0"
elasticsearch.hosts: ["http://elasticsearch:9200"]
"#;

fn swarm(s: &mut Stack, c: &Config) {
    let local_node = c
        .label_local_node
        .then(|| s.add(NodeLabels::new("local-node").node("self").label("az", "a")));
    let app_net = s.add(SwarmNetwork::new("app").encrypted(c.encrypted_networks));
    let logs_net = s.add(
        SwarmNetwork::new("logging")
            .encrypted(c.encrypted_networks)
            .attachable(true),
    );
    let es_password = s.add(match c.es_password {
        SecretSource::Local(v) => SwarmSecret::new("es-password").value(v),
        SecretSource::Env(var) => SwarmSecret::new("es-password").from_env(var),
    });
    let kibana_conf = s.add(SwarmConfig::new("kibana").data(KIBANA_YML));
    let shipper_conf = s.add(SwarmConfig::new("log-shipper").data(FILEBEAT_YML));

    let rolling = UpdatePolicy::new()
        .parallelism(1)
        .delay(Duration::from_secs(1))
        .monitor(c.monitor)
        .order(UpdateOrder::StartFirst)
        .failure_action(FailureAction::Rollback);
    let on_failure = |svc: SwarmService| {
        svc.restart_policy(
            RestartCondition::OnFailure,
            Duration::from_secs(5),
            5,
            Duration::from_secs(120),
        )
    };
    let cmd = |svc: SwarmService, args: &[&str]| {
        if c.local_commands {
            svc.args(args.iter().copied())
                .init(true)
                .stop_grace_period(Duration::from_secs(2))
        } else {
            svc
        }
    };

    let publish = |svc: SwarmService| match c.app_publish {
        AppPublish::None => svc,
        AppPublish::Host => svc.publish(APP_PORT, APP_PORT),
        AppPublish::Ingress => svc.publish_ingress(APP_PORT, APP_PORT),
    };
    s.add(cmd(
        on_failure(publish(
            SwarmService::new("app")
                .image(c.app_image.as_str())
                .replicas(c.app_replicas)
                .spread("node.labels.az")
                .update_policy(rolling.clone())
                // A failing rollback pauses (Swarm allows only pause or continue there).
                .rollback_policy(rolling.clone().failure_action(FailureAction::Pause))
                .network(&app_net)
                .secret(&es_password, "es_password")
                .env("ES_PASSWORD_FILE", "/run/secrets/es_password")
                .env("ES_URL", "http://elasticsearch:9200"),
        )),
        &["httpd", "-f", "-p", &APP_PORT.to_string()],
    ));
    // Elasticsearch keeps its data in the named volume `<stack>_es-data` on the node it runs on
    // and is pinned to that node (the manager in `es_az`), so a restart or an update finds its
    // data again. Updates stop the old task first: two Elasticsearch processes can't share one
    // data directory. One node is no HA: see README "Elasticsearch: one node, or three".
    let mut es = on_failure(
        SwarmService::new("elasticsearch")
            .image(c.es_image.as_str())
            .replicas(1)
            .update_policy(rolling.clone().order(UpdateOrder::StopFirst))
            .constraint("node.role == manager")
            .constraint(&format!("node.labels.az == {}", c.es_az))
            .mount(Mount::volume("es-data", "/usr/share/elasticsearch/data"))
            .network(&app_net)
            .network(&logs_net)
            .endpoint_mode(c.es_endpoint)
            .secret(&es_password, "es_password")
            .env("discovery.type", "single-node")
            .env("ELASTIC_PASSWORD_FILE", "/run/secrets/es_password")
            .env("xpack.security.http.ssl.enabled", "false")
            .env("ES_JAVA_OPTS", "-Xms2g -Xmx2g")
            .limits(2.0, 4096),
    );
    // Published on its own node (AWS, the lab) for the internal load balancer the functions
    // use; services on the swarm's networks reach it by name.
    es = match c.es_publish {
        AppPublish::None => es,
        AppPublish::Host => es.publish(9200, 9200),
        AppPublish::Ingress => es.publish_ingress(9200, 9200),
    };
    if let Some(labels) = &local_node {
        // The constraint's `az` label is this stack's own locally.
        es = es.depends_on(labels);
    }
    s.add(cmd(es, &["httpd", "-f", "-p", "9200"]));
    s.add(cmd(
        on_failure(
            SwarmService::new("kibana")
                .image(c.kibana_image.as_str())
                .replicas(1)
                .update_policy(rolling.clone())
                .network(&logs_net)
                .config(&kibana_conf, "/usr/share/kibana/config/kibana.yml"),
        ),
        &["httpd", "-f", "-p", "5601"],
    ));
    // The log shipper: one task per node, reading the engine's container logs (read-only, as
    // root: the directory is root's) and shipping them to `elasticsearch` by name.
    let shipper = on_failure(
        SwarmService::new("log-shipper")
            .image(c.shipper_image.as_str())
            .global()
            .update_policy(rolling)
            .network(&logs_net)
            .user("root")
            .mount(
                Mount::bind("/var/lib/docker/containers", "/var/lib/docker/containers").read_only(),
            )
            // Filebeat's registry (how far it has read each file) survives a restart on the
            // node, so nothing is shipped twice: one volume per node.
            .mount(Mount::volume(
                "log-shipper-data",
                "/usr/share/filebeat/data",
            ))
            .config(&shipper_conf, "/usr/share/filebeat/filebeat.yml")
            .secret(&es_password, "es_password"),
    );
    s.add(if c.local_commands {
        cmd(shipper, &["sleep", "1000000"])
    } else {
        shipper.command([
            "/bin/sh",
            "-c",
            "ES_PASSWORD=\"$(cat /run/secrets/es_password)\" exec filebeat -e -environment container",
        ])
    });
}

/// The whole stack for `ctx.env`.
pub(crate) fn stack(ctx: &Context) -> Stack {
    controller::inputs_from_files();
    let mut c = config(&ctx.env);
    if let Some(name) = &ctx.stack_name {
        // names derived from the stack's (the node policy's ARNs) follow `--stack`
        c.stack = name.clone();
    }
    let mut s = Stack::new(&c.stack);
    aws(&mut s, &c, &ctx.env);
    swarm(&mut s, &c);
    // last: it records the digest of everything declared
    let local = c.local_commands.then_some(c.app_image.as_str());
    controller::declare(
        &mut s,
        &controller::Controller {
            env: &ctx.env,
            local_image: local,
            interval: if local.is_some() { 5 } else { 30 },
        },
    );
    s
}
