//! The reconciler's loop (`Engine::watch`, what the deploy program's `watch` runs) repairs AWS
//! drift as it repairs Swarm drift: a security-group rule added by hand is revoked and a route
//! deleted by hand is put back by the next run, and the run after finds nothing to do.

use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_ec2::types::{IpPermission, IpRange};
use infra_aws::*;
use infra_core::dsl::Stack;
use infra_core::plan::PlanOptions;
use infra_core::watch::{RunReport, RunResult, WatchEnd, WatchObserver, WatchOptions};

use crate::support::{apply, assert_noop, destroy, id_of, moto, unique};

/// What each run did, as a word.
#[derive(Default)]
struct Runs(Mutex<Vec<String>>);

impl WatchObserver for Runs {
    fn run_ended(&self, r: RunReport) {
        let what = match r.result {
            RunResult::NoChanges => "no changes".to_string(),
            RunResult::Applied(report) => {
                let mut changed: Vec<String> = report
                    .outcomes
                    .iter()
                    .map(|o| o.address.to_string())
                    .collect();
                changed.sort();
                format!("applied {}", changed.join(","))
            }
            other => format!("failed: {other:?}"),
        };
        self.0.lock().unwrap().push(what);
    }
}

fn stack(name: &str) -> Stack {
    let mut s = Stack::new(name);
    let vpc = s.add(Vpc::new("main").cidr("10.61.0.0/16"));
    let public = s.add(
        Subnet::new("public-a")
            .vpc(&vpc)
            .cidr("10.61.1.0/24")
            .az("us-east-1a")
            .public(true),
    );
    let igw = s.add(InternetGateway::new("main").vpc(&vpc));
    s.add(
        RouteTable::new("public")
            .vpc(&vpc)
            .default_route_to_internet(&igw)
            .associate(&public),
    );
    s.add(
        SecurityGroup::new("web")
            .vpc(&vpc)
            .description("web")
            .ingress(Rule::tcp(443).cidr("0.0.0.0/0").describe("https")),
    );
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_revokes_a_rule_added_by_hand_and_puts_back_a_deleted_route() {
    let Some(m) = moto("watch_revokes_a_rule_added_by_hand_and_puts_back_a_deleted_route").await
    else {
        return;
    };
    let engine = m.engine();
    let name = unique("watch");
    let s = stack(&name);
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after create").await;

    let sg = id_of(&m, &name, "aws_security_group.web").await;
    let rt = id_of(&m, &name, "aws_route_table.public").await;
    m.ec2
        .authorize_security_group_ingress()
        .group_id(&sg)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    m.ec2
        .delete_route()
        .route_table_id(&rt)
        .destination_cidr_block("0.0.0.0/0")
        .send()
        .await
        .unwrap();

    let runs = Runs::default();
    let end = engine
        .watch(
            &s,
            &PlanOptions::default(),
            &WatchOptions {
                jitter: 0.0,
                runs: Some(2),
                ..WatchOptions::every(Duration::from_millis(100))
            },
            &runs,
            std::future::pending(),
        )
        .await;
    let runs = runs.0.into_inner().unwrap();
    assert_eq!(
        end,
        WatchEnd::Done {
            runs: 2,
            last_failed: false
        },
        "{runs:?}"
    );
    assert_eq!(
        runs,
        vec![
            "applied aws_route_table.public,aws_security_group.web".to_string(),
            "no changes".to_string()
        ]
    );

    // What AWS holds now, read directly: port 22 gone, 443 kept; the default route back.
    let group = m
        .ec2
        .describe_security_groups()
        .group_ids(&sg)
        .send()
        .await
        .unwrap();
    let ports: Vec<i32> = group.security_groups()[0]
        .ip_permissions()
        .iter()
        .filter_map(|p| p.from_port())
        .collect();
    assert_eq!(ports, vec![443]);
    let table = m
        .ec2
        .describe_route_tables()
        .route_table_ids(&rt)
        .send()
        .await
        .unwrap();
    assert!(
        table.route_tables()[0]
            .routes()
            .iter()
            .any(|r| r.destination_cidr_block() == Some("0.0.0.0/0")
                && r.gateway_id().is_some_and(|g| g.starts_with("igw-"))),
        "{table:?}"
    );
    destroy(&m, &engine, &s).await;
}
