//! Declared moves on the real engine. Swarm can't rename a service (the engine answers
//! "renaming services is not supported"), and a service's Swarm name derives from its address
//! (`<stack>_<name>`), so a renamed service can't keep its object: the plan says why and
//! replaces it create-before-destroy, so the new service's tasks run before the old ones stop.

use std::sync::Mutex;

use infra_core::dsl::Ref;
use infra_core::plan::Action;
use infra_core::reconcile::{ApplyObserver, AuditEvent};
use infra_core::render::{plan_text, report_text};
use infra_core::Stack;
use infra_swarm::SwarmService;

use crate::common::*;

fn stack(name: &str, service: &str) -> Stack {
    let mut s = Stack::new(name);
    s.add(quick_service(service, &image()));
    s
}

/// The order in which operations finished: `<op> <address>`.
#[derive(Default)]
struct Order(Mutex<Vec<String>>);

impl ApplyObserver for Order {
    fn op_finished(&self, event: &AuditEvent) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {}", event.outcome.op, event.outcome.address));
    }
}

fn running_tasks(service: &str) -> usize {
    lines(&docker(&[
        "service",
        "ps",
        service,
        "--filter",
        "desired-state=running",
        "--format",
        "{{.CurrentState}}",
    ]))
    .iter()
    .filter(|l| l.starts_with("Running"))
    .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renamed_service_is_replaced_before_the_old_one_goes_and_the_plan_says_why() {
    let Some(p) = provider("a_renamed_service_is_replaced_before_the_old_one_goes").await else {
        return;
    };
    let name = infra_test_support::unique("mv");
    let _guard = Cleanup::new(&name);
    let e = engine(&p);
    let before = stack(&name, "web");
    let r = e
        .apply(&plan(&e, &before).await, &infra_core::reconcile::NoObserver)
        .await
        .unwrap();
    assert!(r.is_success(), "{}", report_text(&r));
    let old = format!("{name}_web");
    assert_eq!(running_tasks(&old), 1);

    let mut renamed = stack(&name, "frontend");
    renamed.moved(Ref::<SwarmService>::named("web"), &Ref::named("frontend"));
    let planned = plan(&e, &renamed).await;
    let text = plan_text(&planned.plan);
    let c = planned.plan.change("swarm_service.frontend").unwrap();
    assert_eq!(c.action, Action::CreateThenDelete, "{text}");
    assert_eq!(
        c.moved_from.as_ref().map(ToString::to_string).as_deref(),
        Some("swarm_service.web")
    );
    assert!(
        c.reason.contains(
            "moved from swarm_service.web, but its Swarm name is `<stack>_<name>`, from its \
             address, and Swarm can't rename a service"
        ),
        "{text}"
    );
    assert!(
        text.contains("  # swarm_service.frontend must be replaced (moved from swarm_service.web)"),
        "{text}"
    );
    assert!(planned.plan.change("swarm_service.web").is_none(), "{text}");

    let order = Order::default();
    let r = e.apply(&planned, &order).await.unwrap();
    assert!(r.is_success(), "{}", report_text(&r));
    // The new service converged (its task running) before the old one was removed.
    assert_eq!(
        *order.0.lock().unwrap(),
        [
            "create swarm_service.frontend".to_string(),
            "delete swarm_service.frontend".to_string()
        ]
    );
    assert_eq!(running_tasks(&format!("{name}_frontend")), 1);
    assert!(
        lines(&docker(&["service", "ls", "--format", "{{.Name}}"]))
            .iter()
            .all(|s| s != &old),
        "{old} is still there"
    );
    // The move, kept in the code, does nothing any more.
    let again = plan(&e, &renamed).await;
    assert!(again.plan.is_empty(), "{}", plan_text(&again.plan));
}
