//! Self-healing: the deploy program's `watch` puts back a service scaled or removed by hand.

use std::process::ExitCode;

use clap::Parser;
use infra::cli::{run_with, Args};
use infra_core::Stack;

use crate::common::*;

fn stack(name: &str) -> Stack {
    let mut s = Stack::new(name);
    s.add(quick_service("app", &image()).replicas(2));
    s
}

/// One `watch` run of the deploy program against the live swarm, as `production watch` would.
fn watch(name: &str, iterations: u32) -> ExitCode {
    let audit = std::env::temp_dir().join(format!("{name}-audit.jsonl"));
    let args = Args::parse_from([
        "production",
        "--target",
        "live",
        "--only",
        "swarm",
        "--audit-log",
        audit.to_str().unwrap(),
        "watch",
        "--interval",
        "1",
        "--iterations",
        &iterations.to_string(),
    ]);
    let name = name.to_string();
    let code = run_with(args, move |_| stack(&name));
    std::fs::remove_file(audit).ok();
    code
}

#[test]
fn watch_puts_back_a_service_scaled_or_removed_by_hand() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(p) = rt.block_on(provider("watch_self_healing")) else {
        return;
    };
    let name = unique("w");
    let _guard = Cleanup::new(&name);
    let engine = engine(&p);
    let svc = format!("{name}_app");
    rt.block_on(converge(&engine, &stack(&name)));
    assert_eq!(running(&svc).len(), 2);

    // Scaled down by hand: the next watch run scales it back.
    docker(&["service", "update", "-d", "--replicas", "0", &svc]);
    assert_eq!(wait_running(&svc, 0).len(), 0);
    assert_eq!(watch(&name, 1), ExitCode::SUCCESS);
    assert_eq!(running(&svc).len(), 2, "watch restored the replicas");

    // Removed by hand: the next watch run recreates it.
    docker(&["service", "rm", &svc]);
    assert_eq!(watch(&name, 1), ExitCode::SUCCESS);
    assert_eq!(running(&svc).len(), 2, "watch recreated the service");

    // Nothing to repair: a quiet loop.
    assert_eq!(watch(&name, 2), ExitCode::SUCCESS);
    rt.block_on(assert_no_changes(&engine, &stack(&name), "after watch"));
}
