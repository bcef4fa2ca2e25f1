//! Benchmark: converge 20 services with infra, for comparison with `docker stack deploy` of the
//! same services (`bench/stack-deploy.sh` writes the compose file and times that side).
//!
//! ```text
//! eval "$(.ci/setup-swarm)"
//! cargo run --release -p infra-swarm --example twenty_services -- [apply|destroy] [STACK]
//! ```
//!
//! `apply` plans and applies, printing the wall time: the provider returns from each create once
//! the service's task is running (the convergence wait). `destroy` removes the stack and waits
//! for the tasks to be gone.

use std::time::{Duration, Instant};

use infra_core::engine::Engine;
use infra_core::plan::PlanOptions;
use infra_core::reconcile::NoObserver;
use infra_core::Stack;
use infra_swarm::{SwarmNetwork, SwarmProvider, SwarmService};

/// Twenty services on one overlay network, as `docker stack deploy` makes them (it attaches
/// every service to a `<stack>_default` overlay network).
fn stack(name: &str, image: &str) -> Stack {
    let mut s = Stack::new(name);
    let net = s.add(SwarmNetwork::new("default"));
    for i in 0..20 {
        s.add(
            SwarmService::new(&format!("svc{i:02}"))
                .image(image)
                .args(["sleep", "100000"])
                .init(true)
                .stop_grace_period(Duration::from_secs(1))
                .network(&net),
        );
    }
    s
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let command = args.get(1).map(String::as_str).unwrap_or("apply");
    let name = args.get(2).map(String::as_str).unwrap_or("bench20");
    let image = std::env::var("INFRA_TEST_IMAGE")
        .or_else(|_| std::fs::read_to_string("/tmp/infra-test-image-id"))?
        .trim()
        .to_string();
    let engine = Engine::new().with_provider(SwarmProvider::connect().await?);
    let opts = PlanOptions {
        destroy: command == "destroy",
        ..PlanOptions::default()
    };
    let started = Instant::now();
    let planned = engine.plan(&stack(name, &image), &opts).await?;
    let planned_after = started.elapsed();
    let report = engine.apply(&planned, &NoObserver).await?;
    let total = started.elapsed();
    let c = report.counts();
    println!(
        "{command} {name}: {} added, {} destroyed, {} failed; plan {:.2}s, total {:.2}s, swarm API calls {}",
        c.added,
        c.destroyed,
        c.failed,
        planned_after.as_secs_f64(),
        total.as_secs_f64(),
        report.api_calls.get("swarm").copied().unwrap_or(0)
    );
    if !report.is_success() {
        return Err(infra_core::render::report_text(&report).into());
    }
    Ok(())
}
