//! Two small kinds for the core's tests: a network (CIDR is force-new) and hosts on it.

use infra_core::dsl::{KindSchema, Ref, ResourceSpec, Stack};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, Value};

pub(crate) static NETWORK: KindSchema = KindSchema::new("test_network", "test")
    .force_new(&["cidr"])
    .computed(&["id", "arn"])
    .move_replaces("a network is named after its address, and networks can't be renamed")
    .validate(validate_network);

kind! {
    /// A network.
    pub(crate) struct Network => NETWORK
}

impl Network {
    pub(crate) fn new(name: &str, cidr: &str) -> Self {
        let mut s = ResourceSpec::new(&NETWORK, name);
        s.set("cidr", cidr);
        Network(s)
    }
}

fn validate_network(spec: &ResourceSpec, _: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    if let Some(cidr) = c.required_str("cidr") {
        c.cidr("cidr", cidr);
    }
    c.finish()
}

pub(crate) static HOST: KindSchema = KindSchema::new("test_host", "test")
    .force_new(&["network_id"])
    .computed(&["id", "version"])
    .changes_on_update(&["version"])
    .sensitive(&["password"])
    .unordered(&["ports"])
    .disruptive(&["ports"], "restarts the host")
    .movable()
    .validate(validate_host);

kind! {
    /// A host on a network.
    pub(crate) struct Host => HOST
}

impl Host {
    pub(crate) fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&HOST, name);
        s.set("size", 1);
        Host(s)
    }
    pub(crate) fn network(mut self, n: &Ref<Network>) -> Self {
        self.0.set("network_id", n.id());
        self
    }
    pub(crate) fn size(mut self, n: i64) -> Self {
        self.0.set("size", n);
        self
    }
    pub(crate) fn password(mut self, p: &str) -> Self {
        self.0.set("password", p);
        self
    }
    pub(crate) fn ports(mut self, ports: &[i64]) -> Self {
        self.0.set(
            "ports",
            Value::List(ports.iter().map(|p| Value::Int(*p)).collect()),
        );
        self
    }
    pub(crate) fn peer(mut self, other: &Ref<Host>) -> Self {
        self.0.set("peer_version", other.output::<i64>("version"));
        self
    }
}

fn validate_host(spec: &ResourceSpec, _: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    c.required_ref("network_id", "network");
    c.int_in("size", 1, 64);
    c.finish()
}

/// A network and two hosts on it.
pub(crate) fn small(stack: &str) -> Stack {
    let mut s = Stack::new(stack);
    let net = s.add(Network::new("main", "10.0.0.0/16"));
    s.add(Host::new("web").network(&net).size(2));
    s.add(
        Host::new("db")
            .network(&net)
            .size(4)
            .password("hunter2-secret"),
    );
    s
}
