//! Built-in policy rules for the AWS kinds: high availability and security, checked on every
//! plan (see `infra_core::policy`). Each rule names the checkov / cdk-nag rule it corresponds to,
//! or says there is none.
//!
//! | id | severity | checks | corresponds to |
//! |---|---|---|---|
//! | HA001 | error | an auto scaling group spans ≥ 2 availability zones | none (AWS Well-Architected REL10-BP01) |
//! | HA002 | error | each subnet tier (public/private, per VPC) spans ≥ 2 AZs | none (REL10-BP01) |
//! | HA003 | error | Swarm managers: odd count ≥ 3, over ≥ 3 AZs | none (Raft quorum; Docker's admin guide) |
//! | SEC001 | error | no ingress from 0.0.0.0/0 or ::/0 except declared public ports; never SSH/RDP | CKV_AWS_24, CKV_AWS_25, CKV_AWS_260, CKV_AWS_277, AwsSolutions-EC23 |
//! | SEC002 | error | SSH from a CIDR only on the bastion (single point of access) | none (CIS AWS 5.2 in spirit) |
//! | SEC003 | error | no IAM `Allow` of action `*`, nor resource `*` with write actions | CKV_AWS_62, CKV_AWS_63, CKV_AWS_355, AwsSolutions-IAM5 |
//! | SEC004 | error | launch templates require IMDSv2 | CKV_AWS_79 |
//! | SEC005 | error | launch templates encrypt their EBS volumes | CKV_AWS_8 |
//! | SEC006 | error | every IAM user is in a group under the MFA-required policy | CIS AWS 1.10; AWS Config `iam-user-mfa-enabled` |
//! | SEC007 | error | an HTTP listener redirects to HTTPS | CKV_AWS_2, CKV2_AWS_20, cdk-nag `ALBHttpToHttpsRedirection` (HIPAA, NIST 800-53, PCI packs), AWS Config `alb-http-to-https-redirection-check` |
//! | SEC008 | error | application load balancers drop HTTP headers that are not valid | CKV_AWS_131, cdk-nag `ALBHttpDropInvalidHeaderEnabled`, AWS Config `alb-http-drop-invalid-header-enabled` |
//! | SEC009 | error | HTTPS and TLS listeners use a TLS 1.2+ policy | CKV_AWS_103 |
//! | SEC020 | error | a Lambda permission names its principal (no `*`), and a service principal is limited by a source ARN or account | CKV_AWS_301, CKV_AWS_364; AWS Config `lambda-function-public-access-prohibited` |
//! | SEC021 | error | every HTTP API route requires authorization (no public `NONE` route) | CKV_AWS_309, AwsSolutions-APIG4 |
//! | SEC022 | error | no secret-looking plain environment variable on a Lambda function | CKV_AWS_45 |
//!
//! Not checked: Lambda environment variables encrypted with a customer managed KMS key
//! (CKV_AWS_173): there is no KMS key kind yet, and secret values are kept out of plans
//! whatever the key.
//!
//! Facts the rules need that are not part of the AWS objects are annotations on the builders:
//! [`SecurityGroup::public_port`], [`SecurityGroup::bastion`], [`Asg::swarm_managers`].

use std::collections::BTreeSet;
use std::sync::Arc;

use infra_core::dsl::{Resource, ResourceSpec};
use infra_core::graph::Graph;
use infra_core::policy::{PolicyRule, Severity, Violation};
use infra_core::validate::check_cidr;
use infra_core::Value;

use crate::kinds::{Asg, SecurityGroup};

/// Every built-in AWS rule.
pub fn rules() -> Vec<Arc<dyn PolicyRule>> {
    vec![
        Arc::new(AsgSpansAzs),
        Arc::new(SubnetTiersSpanAzs),
        Arc::new(SwarmManagerQuorum),
        Arc::new(NoWorldIngress),
        Arc::new(SshOnlyOnBastion),
        Arc::new(NoWildcardIam),
        Arc::new(ImdsV2Required),
        Arc::new(EbsEncrypted),
        Arc::new(UsersUnderMfa),
        Arc::new(HttpRedirectsToHttps),
        Arc::new(AlbDropsInvalidHeaders),
        Arc::new(ModernTlsPolicy),
        Arc::new(LambdaPermissionScoped),
        Arc::new(RoutesAuthorized),
        Arc::new(NoPlainSecretsInFunctions),
    ]
}

impl SecurityGroup {
    /// Declares `port` (TCP) as meant to be reachable from anywhere (a public app port), so
    /// rule SEC001 allows a 0.0.0.0/0 ingress on it. SSH and RDP can't be declared public.
    pub fn public_port(self, port: u16) -> Self {
        let mut ports: Vec<Value> = self
            .spec()
            .options
            .annotations
            .get("public_ports")
            .and_then(Value::as_list)
            .map(<[Value]>::to_vec)
            .unwrap_or_default();
        ports.push(Value::Int(port.into()));
        self.annotate("public_ports", Value::List(ports))
    }
    /// Marks this group as the bastion's: the single point of access, the only group that may
    /// allow SSH from a CIDR (rule SEC002).
    pub fn bastion(self) -> Self {
        self.annotate("role", "bastion")
    }
}

impl Asg {
    /// Marks this group as the Swarm managers' (rule HA003: odd count ≥ 3 over ≥ 3 AZs) and tags
    /// its instances `role=swarm-manager`.
    pub fn swarm_managers(self) -> Self {
        self.tag("role", "swarm-manager")
            .annotate("role", "swarm-manager")
    }
}

fn of_kind<'a>(graph: &'a Graph, kind: &'a str) -> impl Iterator<Item = &'a ResourceSpec> + 'a {
    graph.in_order().filter(move |r| r.schema.kind == kind)
}

fn annotation<'a>(spec: &'a ResourceSpec, key: &str) -> Option<&'a Value> {
    spec.options.annotations.get(key)
}

/// The availability zones of an ASG's subnets, when they are declared in the stack.
fn asg_azs(graph: &Graph, asg: &ResourceSpec) -> Option<BTreeSet<String>> {
    let subnets = asg.get("subnet_ids")?.as_list()?;
    let mut azs = BTreeSet::new();
    for s in subnets {
        let subnet = graph.get(&s.as_ref()?.address)?;
        azs.insert(subnet.get_str("availability_zone")?.to_string());
    }
    Some(azs)
}

struct AsgSpansAzs;
impl PolicyRule for AsgSpansAzs {
    fn id(&self) -> &str {
        "HA001"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &str {
        "an auto scaling group spans at least two availability zones"
    }
    fn check(&self, graph: &Graph) -> Vec<Violation> {
        of_kind(graph, "aws_autoscaling_group")
            .filter_map(|asg| {
                let azs = asg_azs(graph, asg)?;
                (azs.len() < 2).then(|| {
                    Violation::new(
                        asg,
                        format!(
                            "its subnets are all in {}: one AZ outage takes every instance",
                            join(&azs)
                        ),
                        "give it a subnet in each of at least two availability zones",
                    )
                })
            })
            .collect()
    }
}

struct SubnetTiersSpanAzs;
impl PolicyRule for SubnetTiersSpanAzs {
    fn id(&self) -> &str {
        "HA002"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &str {
        "each subnet tier (public, private) of a VPC spans at least two availability zones"
    }
    fn check(&self, graph: &Graph) -> Vec<Violation> {
        // (vpc, public?) -> (first subnet, AZs)
        let mut tiers: std::collections::BTreeMap<
            (String, bool),
            (&ResourceSpec, BTreeSet<String>),
        > = Default::default();
        for s in of_kind(graph, "aws_subnet") {
            let vpc = s
                .get("vpc_id")
                .map(|v| v.to_json().to_string())
                .unwrap_or_default();
            let public = s
                .get("map_public_ip_on_launch")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let entry = tiers
                .entry((vpc, public))
                .or_insert_with(|| (s, BTreeSet::new()));
            if let Some(az) = s.get_str("availability_zone") {
                entry.1.insert(az.to_string());
            }
        }
        tiers
            .into_iter()
            .filter(|(_, (_, azs))| azs.len() == 1)
            .map(|((_, public), (first, azs))| {
                let tier = if public { "public" } else { "private" };
                Violation::new(
                    first,
                    format!("every {tier} subnet of this VPC is in {}", join(&azs)),
                    format!("add a {tier} subnet in a second (and third) availability zone"),
                )
            })
            .collect()
    }
}

struct SwarmManagerQuorum;
impl PolicyRule for SwarmManagerQuorum {
    fn id(&self) -> &str {
        "HA003"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &str {
        "Swarm managers: an odd number, at least 3, across at least 3 availability zones"
    }
    fn check(&self, graph: &Graph) -> Vec<Violation> {
        let mut out = Vec::new();
        for asg in of_kind(graph, "aws_autoscaling_group") {
            if annotation(asg, "role").and_then(Value::as_str) != Some("swarm-manager") {
                continue;
            }
            let sizes: Vec<i64> = ["min_size", "max_size", "desired_capacity"]
                .iter()
                .filter_map(|f| asg.get(f)?.as_i64())
                .collect();
            if sizes.iter().any(|&n| n < 3 || n % 2 == 0) {
                out.push(Violation::new(
                    asg,
                    format!("manager counts (min, max, desired) are {sizes:?}: Raft needs an odd number of at least 3 to keep a quorum"),
                    "use 3 or 5 managers for min, max and desired",
                ));
            }
            if let Some(azs) = asg_azs(graph, asg) {
                if azs.len() < 3 {
                    out.push(Violation::new(
                        asg,
                        format!("managers span {} availability zone{} ({}): losing one can lose the quorum", azs.len(), if azs.len() == 1 { "" } else { "s" }, join(&azs)),
                        "spread the managers over subnets in three availability zones",
                    ));
                }
            }
        }
        out
    }
}

/// `(protocol, from, to, cidr)` for each CIDR-sourced ingress rule of a group.
fn cidr_ingress(sg: &ResourceSpec) -> Vec<(String, i64, i64, String)> {
    sg.get("ingress")
        .and_then(Value::as_list)
        .unwrap_or(&[])
        .iter()
        .filter_map(|r| {
            let m = r.as_map()?;
            let cidr = m.get("cidr")?.as_str()?.to_string();
            let proto = m
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("-1")
                .to_string();
            let (from, to) = if proto == "-1" {
                (0, 65535)
            } else {
                (
                    m.get("from_port").and_then(Value::as_i64).unwrap_or(0),
                    m.get("to_port").and_then(Value::as_i64).unwrap_or(65535),
                )
            };
            Some((proto, from, to, cidr))
        })
        .collect()
}

fn covers(from: i64, to: i64, port: i64) -> bool {
    from <= port && port <= to
}

struct NoWorldIngress;
impl PolicyRule for NoWorldIngress {
    fn id(&self) -> &str {
        "SEC001"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &str {
        "no ingress from 0.0.0.0/0 or ::/0 except on declared public ports; never SSH or RDP"
    }
    fn references(&self) -> &[&str] {
        &[
            "CKV_AWS_24",
            "CKV_AWS_25",
            "CKV_AWS_260",
            "CKV_AWS_277",
            "AwsSolutions-EC23",
        ]
    }
    fn check(&self, graph: &Graph) -> Vec<Violation> {
        let mut out = Vec::new();
        for sg in of_kind(graph, "aws_security_group") {
            let public: BTreeSet<i64> = annotation(sg, "public_ports")
                .and_then(Value::as_list)
                .unwrap_or(&[])
                .iter()
                .filter_map(Value::as_i64)
                .collect();
            for (proto, from, to, cidr) in cidr_ingress(sg) {
                if !check_cidr(&cidr).is_ok_and(|n| n.prefix_len() == 0) {
                    continue;
                }
                let admin = [22, 3389]
                    .into_iter()
                    .find(|p| proto != "udp" && covers(from, to, *p));
                let declared = from == to && proto == "tcp" && public.contains(&from);
                let ports = if proto == "-1" {
                    "every port".to_string()
                } else if crate::kinds::network::portless(&proto) {
                    format!("IP protocol {proto}")
                } else if from == to {
                    format!("{proto} port {from}")
                } else {
                    format!("{proto} ports {from}-{to}")
                };
                if let Some(p) = admin {
                    out.push(Violation::new(
                        sg,
                        format!("allows {ports} from {cidr}, which includes {} (port {p})", if p == 22 { "SSH" } else { "RDP" }),
                        "allow SSH only on the bastion's group and only from the admin CIDR; reach everything else through the bastion",
                    ));
                } else if !declared {
                    out.push(Violation::new(
                        sg,
                        format!("allows {ports} from {cidr}"),
                        "restrict the source CIDR, or declare the port public with `.public_port(port)` if it is meant to face the internet",
                    ));
                }
            }
        }
        out
    }
}

struct SshOnlyOnBastion;
impl PolicyRule for SshOnlyOnBastion {
    fn id(&self) -> &str {
        "SEC002"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &str {
        "SSH from a CIDR is allowed only on the bastion's group (single point of access)"
    }
    fn check(&self, graph: &Graph) -> Vec<Violation> {
        of_kind(graph, "aws_security_group")
            .filter(|sg| annotation(sg, "role").and_then(Value::as_str) != Some("bastion"))
            .flat_map(|sg| {
                cidr_ingress(sg)
                    .into_iter()
                    .filter(|(proto, from, to, _)| proto != "udp" && covers(*from, *to, 22))
                    .map(move |(_, _, _, cidr)| {
                        Violation::new(
                            sg,
                            format!("allows SSH from {cidr}, but this is not the bastion's group"),
                            "allow SSH from the bastion's group (`Rule::tcp(22).group(&bastion)`), or mark the bastion's group with `.bastion()`",
                        )
                    })
            })
            .collect()
    }
}

/// Every policy document a resource carries: `(field, document)`.
fn documents(spec: &ResourceSpec) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    if let Some(d) = spec.get("document") {
        out.push(("document".to_string(), d));
    }
    if let Some(m) = spec.get("inline_policies").and_then(Value::as_map) {
        out.extend(
            m.iter()
                .map(|(name, d)| (format!("inline_policies.{name}"), d)),
        );
    }
    out
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::List(l)) => l.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Read-only actions by the usual AWS verb prefixes.
fn is_read_only(action: &str) -> bool {
    let verb = action.split_once(':').map_or(action, |(_, v)| v);
    [
        "Describe", "List", "Get", "Head", "View", "Search", "Lookup",
    ]
    .iter()
    .any(|p| verb.starts_with(p))
        && !verb.contains('*')
        || ["Describe*", "List*", "Get*"].contains(&verb)
}

struct NoWildcardIam;
impl PolicyRule for NoWildcardIam {
    fn id(&self) -> &str {
        "SEC003"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &str {
        "no IAM statement allows action `*`, nor resource `*` with write actions"
    }
    fn references(&self) -> &[&str] {
        &[
            "CKV_AWS_62",
            "CKV_AWS_63",
            "CKV_AWS_355",
            "AwsSolutions-IAM5",
        ]
    }
    fn check(&self, graph: &Graph) -> Vec<Violation> {
        let mut out = Vec::new();
        for spec in graph.in_order().filter(|r| r.schema.provider == "aws") {
            for (field, doc) in documents(spec) {
                let statements = doc
                    .as_map()
                    .and_then(|m| m.get("Statement"))
                    .and_then(Value::as_list)
                    .unwrap_or(&[]);
                for (i, st) in statements.iter().enumerate() {
                    let Some(st) = st.as_map() else { continue };
                    if st.get("Effect").and_then(Value::as_str) != Some("Allow") {
                        continue;
                    }
                    let actions = strings(st.get("Action"));
                    let resources = strings(st.get("Resource"));
                    let at = format!("{field}.Statement[{i}]");
                    if actions.iter().any(|a| *a == "*" || *a == "*:*") {
                        out.push(Violation::new(
                            spec,
                            format!("{at} allows every action (`*`)"),
                            "list the actions this principal needs",
                        ));
                    } else if resources.contains(&"*") {
                        let writes: Vec<&&str> =
                            actions.iter().filter(|a| !is_read_only(a)).collect();
                        if !writes.is_empty() {
                            let list: Vec<String> =
                                writes.iter().map(|a| format!("`{a}`")).collect();
                            out.push(Violation::new(
                                spec,
                                format!(
                                    "{at} allows write action{} {} on every resource (`*`)",
                                    if writes.len() == 1 { "" } else { "s" },
                                    list.join(", ")
                                ),
                                "scope the Resource to the ARNs these actions need",
                            ));
                        }
                    }
                }
            }
        }
        out
    }
}

struct ImdsV2Required;
impl PolicyRule for ImdsV2Required {
    fn id(&self) -> &str {
        "SEC004"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &str {
        "launch templates require IMDSv2 (session tokens)"
    }
    fn references(&self) -> &[&str] {
        &["CKV_AWS_79"]
    }
    fn check(&self, graph: &Graph) -> Vec<Violation> {
        of_kind(graph, "aws_launch_template")
            .filter(|lt| lt.get_str("metadata_http_tokens") != Some("required"))
            .map(|lt| {
                Violation::new(
                    lt,
                    "allows IMDSv1: instance credentials can be stolen through SSRF",
                    "remove `.allow_imdsv1()` (IMDSv2 is required by default)",
                )
            })
            .collect()
    }
}

struct EbsEncrypted;
impl PolicyRule for EbsEncrypted {
    fn id(&self) -> &str {
        "SEC005"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &str {
        "launch templates encrypt their EBS volumes"
    }
    fn references(&self) -> &[&str] {
        &["CKV_AWS_8"]
    }
    fn check(&self, graph: &Graph) -> Vec<Violation> {
        of_kind(graph, "aws_launch_template")
            .filter(|lt| {
                lt.get("root_volume")
                    .and_then(Value::as_map)
                    .and_then(|m| m.get("encrypted"))
                    .and_then(Value::as_bool)
                    == Some(false)
            })
            .map(|lt| {
                Violation::new(
                    lt,
                    "its root volume is not encrypted",
                    "encrypt the root volume (the default): `.root_volume(size, true)`",
                )
            })
            .collect()
    }
}

/// True for a document that denies (nearly) everything unless MFA is present.
fn requires_mfa(doc: &Value) -> bool {
    let statements = doc
        .as_map()
        .and_then(|m| m.get("Statement"))
        .and_then(Value::as_list)
        .unwrap_or(&[]);
    statements.iter().filter_map(Value::as_map).any(|st| {
        st.get("Effect").and_then(Value::as_str) == Some("Deny")
            && st
                .get("Condition")
                .and_then(Value::as_map)
                .is_some_and(|c| {
                    c.values()
                        .filter_map(Value::as_map)
                        .any(|kv| kv.contains_key("aws:MultiFactorAuthPresent"))
                })
    })
}

struct UsersUnderMfa;
impl PolicyRule for UsersUnderMfa {
    fn id(&self) -> &str {
        "SEC006"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &str {
        "every IAM user is in a group under the MFA-required policy"
    }
    fn references(&self) -> &[&str] {
        &["CIS AWS 1.10", "AWS Config iam-user-mfa-enabled"]
    }
    fn check(&self, graph: &Graph) -> Vec<Violation> {
        let group_has_mfa = |group: &ResourceSpec| {
            let attached = group
                .get("managed_policy_arns")
                .and_then(Value::as_list)
                .unwrap_or(&[])
                .iter()
                .any(|p| {
                    p.as_ref()
                        .and_then(|r| graph.get(&r.address))
                        .and_then(|pol| pol.get("document"))
                        .is_some_and(requires_mfa)
                });
            let inline = group
                .get("inline_policies")
                .and_then(Value::as_map)
                .is_some_and(|m| m.values().any(requires_mfa));
            attached || inline
        };
        of_kind(graph, "aws_iam_user")
            .filter(|user| {
                !user.get("groups").and_then(Value::as_list).unwrap_or(&[]).iter().any(|g| {
                    g.as_ref().and_then(|r| graph.get(&r.address)).is_some_and(&group_has_mfa)
                })
            })
            .map(|user| {
                Violation::new(
                    user,
                    "is not in any group under an MFA-required policy",
                    "add the user to the human users' group, which attaches `IamPolicy::mfa_required(..)`",
                )
            })
            .collect()
    }
}

/// True for a listener whose default action redirects to HTTPS.
fn redirects_to_https(listener: &ResourceSpec) -> bool {
    listener
        .get("default_action")
        .and_then(Value::as_map)
        .is_some_and(|a| {
            a.get("type").and_then(Value::as_str) == Some("redirect")
                && a.get("protocol").and_then(Value::as_str) == Some("HTTPS")
        })
}

struct HttpRedirectsToHttps;
impl PolicyRule for HttpRedirectsToHttps {
    fn id(&self) -> &str {
        "SEC007"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &str {
        "a load balancer's HTTP listeners redirect to HTTPS (no plain-text traffic reaches the app)"
    }
    fn references(&self) -> &[&str] {
        &[
            "CKV_AWS_2",
            "CKV2_AWS_20",
            "cdk-nag ALBHttpToHttpsRedirection",
            "AWS Config alb-http-to-https-redirection-check",
        ]
    }
    fn check(&self, graph: &Graph) -> Vec<Violation> {
        of_kind(graph, "aws_lb_listener")
            .filter(|l| l.get_str("protocol") == Some("HTTP") && !redirects_to_https(l))
            .map(|l| {
                Violation::new(
                    l,
                    "is an HTTP listener that does not redirect to HTTPS: requests and responses cross the internet in plain text",
                    "redirect it (`Listener::http_redirect(name, &lb)`) and serve the app on an HTTPS listener",
                )
            })
            .collect()
    }
}

struct AlbDropsInvalidHeaders;
impl PolicyRule for AlbDropsInvalidHeaders {
    fn id(&self) -> &str {
        "SEC008"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &str {
        "application load balancers drop HTTP headers that are not valid"
    }
    fn references(&self) -> &[&str] {
        &[
            "CKV_AWS_131",
            "cdk-nag ALBHttpDropInvalidHeaderEnabled",
            "AWS Config alb-http-drop-invalid-header-enabled",
        ]
    }
    fn check(&self, graph: &Graph) -> Vec<Violation> {
        of_kind(graph, "aws_lb")
            .filter(|lb| {
                lb.get_str("type") == Some("application")
                    && lb
                        .get("drop_invalid_header_fields")
                        .and_then(Value::as_bool)
                        != Some(true)
            })
            .map(|lb| {
                Violation::new(
                    lb,
                    "forwards HTTP headers that are not valid to the targets (request smuggling, header injection)",
                    "keep the default `.drop_invalid_header_fields(true)`",
                )
            })
            .collect()
    }
}

/// TLS policies that accept nothing older than TLS 1.2.
fn tls12_or_newer(policy: &str) -> bool {
    ["TLS-1-2", "TLS13-1-2", "TLS13-1-3", "FS-1-2"]
        .iter()
        .any(|p| policy.contains(p))
}

struct ModernTlsPolicy;
impl PolicyRule for ModernTlsPolicy {
    fn id(&self) -> &str {
        "SEC009"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &str {
        "HTTPS and TLS listeners accept TLS 1.2 or newer only"
    }
    fn references(&self) -> &[&str] {
        &["CKV_AWS_103"]
    }
    fn check(&self, graph: &Graph) -> Vec<Violation> {
        of_kind(graph, "aws_lb_listener")
            .filter_map(|l| {
                let policy = l.get_str("ssl_policy")?;
                (!tls12_or_newer(policy)).then(|| {
                    Violation::new(
                        l,
                        format!("its TLS policy `{policy}` accepts TLS versions older than 1.2"),
                        format!(
                            "use `{}` (the default) or another TLS 1.2+ policy",
                            crate::kinds::DEFAULT_SSL_POLICY
                        ),
                    )
                })
            })
            .collect()
    }
}

struct LambdaPermissionScoped;
impl PolicyRule for LambdaPermissionScoped {
    fn id(&self) -> &str {
        "SEC020"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &str {
        "a Lambda permission names its principal, and a service principal is limited by a source ARN or account"
    }
    fn references(&self) -> &[&str] {
        &[
            "CKV_AWS_301",
            "CKV_AWS_364",
            "AWS Config lambda-function-public-access-prohibited",
        ]
    }
    fn check(&self, graph: &Graph) -> Vec<Violation> {
        of_kind(graph, "aws_lambda_permission")
            .filter_map(|p| {
                let principal = p.get_str("principal").unwrap_or_default();
                let scoped = p.get("source_arn").is_some() || p.get("source_account").is_some();
                if principal == "*" {
                    Some(Violation::new(
                        p,
                        "lets every principal (`*`) invoke the function: anyone on the internet with AWS credentials",
                        "name the service or account that calls it, and its source ARN",
                    ))
                } else if principal.ends_with(".amazonaws.com") && !scoped {
                    Some(Violation::new(
                        p,
                        format!("lets `{principal}` invoke the function on behalf of any resource of any account (no source ARN or account): the confused deputy"),
                        "limit it with `.source_arn(rule.arn())` / `.source_arn(api.source_arn())` (or `.source_account(..)`)",
                    ))
                } else {
                    None
                }
            })
            .collect()
    }
}

struct RoutesAuthorized;
impl PolicyRule for RoutesAuthorized {
    fn id(&self) -> &str {
        "SEC021"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &str {
        "every HTTP API route requires authorization"
    }
    fn references(&self) -> &[&str] {
        &["CKV_AWS_309", "AwsSolutions-APIG4"]
    }
    fn check(&self, graph: &Graph) -> Vec<Violation> {
        let mut out = Vec::new();
        for api in of_kind(graph, "aws_apigatewayv2_api") {
            for r in api
                .get("routes")
                .and_then(Value::as_list)
                .unwrap_or(&[])
                .iter()
                .filter_map(Value::as_map)
            {
                let auth = r
                    .get("authorization_type")
                    .and_then(Value::as_str)
                    .unwrap_or("NONE");
                let key = r.get("route_key").and_then(Value::as_str).unwrap_or("?");
                if auth == "NONE" && !key.starts_with("OPTIONS ") {
                    out.push(Violation::new(
                        api,
                        format!("route `{key}` is public: anyone on the internet can invoke its function"),
                        "require `RouteAuth::AwsIam` on the route, or suppress SEC021 on the API with the reason it must be public",
                    ));
                }
            }
        }
        out
    }
}

/// Words in a variable's name that say its value is a secret.
const SECRET_WORDS: [&str; 8] = [
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
    "CREDENTIAL",
];

struct NoPlainSecretsInFunctions;
impl PolicyRule for NoPlainSecretsInFunctions {
    fn id(&self) -> &str {
        "SEC022"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &str {
        "no secret-looking plain environment variable on a Lambda function"
    }
    fn references(&self) -> &[&str] {
        &["CKV_AWS_45"]
    }
    fn check(&self, graph: &Graph) -> Vec<Violation> {
        let mut out = Vec::new();
        for f in of_kind(graph, "aws_lambda_function") {
            let Some(env) = f.get("environment").and_then(Value::as_map) else {
                continue;
            };
            for (key, value) in env {
                let upper = key.to_ascii_uppercase();
                if !SECRET_WORDS.iter().any(|w| upper.contains(w)) {
                    continue;
                }
                if matches!(value, Value::String(v) if !v.is_empty()) {
                    out.push(Violation::new(
                        f,
                        format!("environment variable `{key}` holds a plain value (it would show in plans and logs)"),
                        format!("declare it with `.secret_env(\"{key}\", value)`: plans show only its digest"),
                    ));
                }
            }
        }
        out
    }
}

fn join(azs: &BTreeSet<String>) -> String {
    azs.iter().cloned().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_actions() {
        assert!(is_read_only("ec2:DescribeInstances"));
        assert!(is_read_only("autoscaling:Describe*"));
        assert!(!is_read_only("ec2:*"));
        assert!(!is_read_only("ec2:TerminateInstances"));
        assert!(!is_read_only("s3:GetObject*Acl*Put"));
    }

    #[test]
    fn tls_policies() {
        for ok in [
            crate::kinds::DEFAULT_SSL_POLICY,
            "ELBSecurityPolicy-TLS-1-2-2017-01",
            "ELBSecurityPolicy-TLS-1-2-Ext-2018-06",
            "ELBSecurityPolicy-FS-1-2-Res-2020-10",
            "ELBSecurityPolicy-TLS13-1-3-2021-06",
        ] {
            assert!(tls12_or_newer(ok), "{ok}");
        }
        for old in [
            "ELBSecurityPolicy-2016-08",
            "ELBSecurityPolicy-TLS-1-1-2017-01",
            "ELBSecurityPolicy-TLS13-1-0-2021-06",
            "ELBSecurityPolicy-FS-2018-06",
        ] {
            assert!(!tls12_or_newer(old), "{old}");
        }
    }
}
