//! Validation and ordering.

use infra_core::dsl::{Ref, Resource, Stack};
use infra_core::graph::Graph;
use infra_core::render;

use crate::kinds::{Host, Network};

#[test]
fn every_problem_is_reported_at_once_with_address_and_field() {
    let mut s = Stack::new("bad");
    let net = s.add(Network::new("main", "10.0.0.1/16"));
    s.add(Network::new("main", "10.1.0.0/16")); // duplicate
    s.add(Host::new("no-net").size(0)); // missing network, size out of range
    s.add(Host::new("dangling").network(&Ref::<Network>::named("missing")));
    s.add(Host::new("bad name!").network(&net));
    let err = Graph::build(&s).unwrap_err();
    let text = err.to_string();
    let expect = [
        "test_network.main: field `cidr`: `10.0.0.1/16` has host bits set; did you mean `10.0.0.0/16`?",
        "test_network.main: field `name`: `main` is declared 2 times",
        "test_host.no-net: field `network_id`: is required",
        "test_host.no-net: field `size`: 0 is out of range [1, 64]",
        "test_host.dangling: field `network_id`: references test_network.missing, which is not in the stack",
        "test_host.bad name!: field `name`: `bad name!` contains ` `",
    ];
    for e in expect {
        assert!(text.contains(e), "missing `{e}` in:\n{text}");
    }
    assert_eq!(err.problems.len(), 6, "{text}");
    assert!(
        text.starts_with(
            "stack \"bad\" is invalid: 6 problems found (nothing was read or changed):"
        ),
        "{text}"
    );
}

#[test]
fn cycles_through_depends_on_are_spelled_out() {
    let mut s = Stack::new("cyc");
    let a = s.add(Network::new("a", "10.0.0.0/16"));
    let b = s.add(Network::new("b", "10.1.0.0/16").depends_on(&a));
    let c = s.add(Network::new("c", "10.2.0.0/16").depends_on(&b));
    s.add_dependency(&a, &c);
    let err = Graph::build(&s).unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    assert_eq!(
        err.problems[0].to_string(),
        "test_network.a: field `depends_on`: dependency cycle: test_network.a -> test_network.c -> test_network.b -> test_network.a"
    );
}

#[test]
fn unknown_outputs_and_self_references_are_problems() {
    let mut s = Stack::new("outs");
    let net = s.add(Network::new("n", "10.0.0.0/16"));
    let mut h = Host::new("h").network(&net);
    h.spec_mut().set("x", net.output::<String>("nope"));
    s.add(h);
    let err = Graph::build(&s).unwrap_err();
    assert!(err.to_string().contains("test_host.h: field `x`: references output `nope` of test_network.n, which has no such output"), "{err}");
}

#[test]
fn topological_order_is_deterministic_whatever_the_declaration_order() {
    let build = |reverse: bool| {
        let mut s = Stack::new("order");
        let net = s.add(Network::new("net", "10.0.0.0/16"));
        let mut names: Vec<&str> = vec!["c", "a", "b", "d"];
        if reverse {
            names.reverse();
        }
        for n in names {
            s.add(Host::new(n).network(&net));
        }
        s.add(Network::new("alpha", "10.1.0.0/16"));
        let g = Graph::build(&s).unwrap();
        g.in_order()
            .map(|r| r.address.to_string())
            .collect::<Vec<_>>()
    };
    let a = build(false);
    assert_eq!(a, build(true));
    assert_eq!(
        a,
        [
            "test_network.alpha",
            "test_network.net",
            "test_host.a",
            "test_host.b",
            "test_host.c",
            "test_host.d"
        ]
    );
}

#[test]
fn dot_and_mermaid_exports_show_edges() {
    let g = Graph::build(&crate::kinds::small("exp")).unwrap();
    let dot = render::graph_dot(&g);
    assert!(
        dot.contains("\"test_host.web\" -> \"test_network.main\";"),
        "{dot}"
    );
    assert!(dot.contains("subgraph \"cluster_test\""), "{dot}");
    let mermaid = render::graph_mermaid(&g);
    assert!(mermaid.starts_with("flowchart RL\n"), "{mermaid}");
    assert_eq!(mermaid.matches("-->").count(), 2, "{mermaid}");
}
