//! The decisions' unit tests.

use super::*;

fn node(id: &str, role: Role, status: NodeStatus, labels: &[(&str, &str)]) -> SwarmNode {
    SwarmNode {
        id: id.into(),
        role,
        availability: Availability::Active,
        status,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        reachable: role == Role::Manager && status == NodeStatus::Ready,
        leader: false,
        described: true,
    }
}

fn record(node_id: &str, instance: &str, az: &str, role: Role) -> NodeRecord {
    NodeRecord {
        node_id: node_id.into(),
        instance: instance.into(),
        az: az.into(),
        role,
        ip: "10.9.10.5".into(),
        state: RecordState::Ready,
    }
}

fn states(list: &[(&str, InstanceState)]) -> BTreeMap<String, InstanceState> {
    list.iter().map(|(i, s)| (i.to_string(), *s)).collect()
}

#[test]
fn a_record_gives_its_node_the_az_instance_and_role_labels_keeping_others() {
    let nodes = [node(
        "n2",
        Role::Worker,
        NodeStatus::Ready,
        &[("tier", "web"), ("az", "us-east-1a")],
    )];
    let records = [record("n2", "i-2", "us-east-1b", Role::Worker)];
    let actions = leader_actions(
        "n1",
        &nodes,
        &records,
        &states(&[("i-2", InstanceState::Running)]),
    );
    assert_eq!(
        actions,
        vec![Action::UpdateNode {
            node_id: "n2".into(),
            labels: BTreeMap::from([
                ("az".into(), "us-east-1b".into()),
                ("instance".into(), "i-2".into()),
                ("role".into(), "worker".into()),
            ]),
            drain: false,
            why: "labels az, instance, role".into(),
        }]
    );
}

#[test]
fn labelled_nodes_need_nothing_and_a_draining_record_drains_its_node_once() {
    let labels = [
        ("az", "us-east-1c"),
        ("instance", "i-3"),
        ("role", "worker"),
    ];
    let mut nodes = vec![node("n3", Role::Worker, NodeStatus::Ready, &labels)];
    let mut records = vec![record("n3", "i-3", "us-east-1c", Role::Worker)];
    let running = states(&[("i-3", InstanceState::Running)]);
    assert_eq!(leader_actions("n1", &nodes, &records, &running), vec![]);

    records[0].state = RecordState::Draining;
    let actions = leader_actions("n1", &nodes, &records, &running);
    assert!(
        matches!(&actions[..], [Action::UpdateNode { drain: true, why, .. }] if why == "drain"),
        "{actions:?}"
    );
    nodes[0].availability = Availability::Drain;
    assert_eq!(leader_actions("n1", &nodes, &records, &running), vec![]);
}

#[test]
fn leaving_nodes_drain_one_at_a_time() {
    let mut nodes = vec![
        node("n3", Role::Worker, NodeStatus::Ready, &[]),
        node("n4", Role::Worker, NodeStatus::Ready, &[]),
    ];
    let mut records = vec![
        record("n3", "i-3", "us-east-1a", Role::Worker),
        record("n4", "i-4", "us-east-1b", Role::Worker),
    ];
    for r in &mut records {
        r.state = RecordState::Draining;
    }
    let running = states(&[
        ("i-3", InstanceState::Running),
        ("i-4", InstanceState::Running),
    ]);
    let drains = |actions: Vec<Action>| -> Vec<String> {
        actions
            .into_iter()
            .filter_map(|a| match a {
                Action::UpdateNode {
                    node_id,
                    drain: true,
                    ..
                } => Some(node_id),
                _ => None,
            })
            .collect()
    };
    // two leave at once: only the first is drained
    assert_eq!(
        drains(leader_actions("n1", &nodes, &records, &running)),
        ["n3"]
    );
    // while n3 drains (drained, still Ready), n4 waits
    nodes[0].availability = Availability::Drain;
    assert!(drains(leader_actions("n1", &nodes, &records, &running)).is_empty());
    // n3 has left (Down) but its tasks are still being replaced: n4 waits
    nodes[0].status = NodeStatus::Down;
    assert!(drains(leader_actions_when("n1", &nodes, &records, &running, false)).is_empty());
    // every service runs its replicas again: n4's turn
    assert_eq!(
        drains(leader_actions("n1", &nodes, &records, &running)),
        ["n4"]
    );
}

#[test]
fn a_down_manager_whose_instance_is_gone_is_demoted_removed_and_forgotten() {
    let nodes = [
        node(
            "n1",
            Role::Manager,
            NodeStatus::Ready,
            &[("instance", "i-1")],
        ),
        node(
            "n2",
            Role::Manager,
            NodeStatus::Down,
            &[("instance", "i-2")],
        ),
    ];
    let records = [
        record("n1", "i-1", "us-east-1a", Role::Manager),
        record("n2", "i-2", "us-east-1b", Role::Manager),
    ];
    let actions = leader_actions(
        "n1",
        &nodes,
        &records,
        &states(&[
            ("i-1", InstanceState::Running),
            ("i-2", InstanceState::Terminated),
        ]),
    );
    // n1 still needs its az and role labels; n2 goes.
    assert!(matches!(&actions[0], Action::UpdateNode { node_id, .. } if node_id == "n1"));
    assert_eq!(
        actions[1..],
        [
            Action::Demote {
                node_id: "n2".into(),
                instance: "i-2".into()
            },
            Action::Remove {
                node_id: "n2".into(),
                instance: "i-2".into()
            },
            Action::DeleteRecord {
                instance: "i-2".into()
            },
        ]
    );
}

#[test]
fn a_dead_worker_is_removed_without_demotion_even_when_only_its_record_names_the_instance() {
    let nodes = [node("n4", Role::Worker, NodeStatus::Down, &[])];
    let records = [record("n4", "i-4", "us-east-1a", Role::Worker)];
    // An instance DescribeInstances does not know is gone too.
    let actions = leader_actions("n1", &nodes, &records, &BTreeMap::new());
    assert_eq!(
        actions,
        vec![
            Action::Remove {
                node_id: "n4".into(),
                instance: "i-4".into()
            },
            Action::DeleteRecord {
                instance: "i-4".into()
            },
        ]
    );
}

#[test]
fn down_nodes_whose_instance_runs_or_is_unknown_are_left_alone() {
    let nodes = [
        // Rebooting, or drained and waiting in its lifecycle hook.
        node("n5", Role::Worker, NodeStatus::Down, &[("instance", "i-5")]),
        // Stopped: not terminated, the ASG's health check decides.
        node(
            "n6",
            Role::Manager,
            NodeStatus::Down,
            &[("instance", "i-6")],
        ),
        // No label and no record: no way to tell which instance it was.
        node("n7", Role::Worker, NodeStatus::Down, &[]),
        // Ready although its instance is terminated (heartbeat not yet missed): wait.
        node(
            "n8",
            Role::Worker,
            NodeStatus::Ready,
            &[("instance", "i-8")],
        ),
    ];
    let actions = leader_actions(
        "n1",
        &nodes,
        &[],
        &states(&[
            ("i-5", InstanceState::Running),
            ("i-6", InstanceState::Stopped),
            ("i-8", InstanceState::Terminated),
        ]),
    );
    assert_eq!(actions, vec![]);
}

#[test]
fn a_down_node_that_never_described_itself_and_names_no_instance_is_removed() {
    let ghost = |id: &str, role: Role, status: NodeStatus| SwarmNode {
        described: false,
        ..node(id, role, status, &[])
    };
    let nodes = [
        // what a cancelled join leaves: Down, no hostname, no label, no record
        ghost("g1", Role::Worker, NodeStatus::Down),
        ghost("g2", Role::Manager, NodeStatus::Down),
        // still joining: Ready (or not yet Down) nodes are never touched
        ghost("g3", Role::Worker, NodeStatus::Ready),
        ghost("g4", Role::Worker, NodeStatus::Other),
        // undescribed but its record names a running instance: not a ghost
        ghost("g5", Role::Worker, NodeStatus::Down),
        // the leader itself, whatever it looks like
        ghost("g6", Role::Manager, NodeStatus::Down),
    ];
    let records = [record("g5", "i-5", "us-east-1a", Role::Worker)];
    let actions = leader_actions(
        "g6",
        &nodes,
        &records,
        &states(&[("i-5", InstanceState::Running)]),
    );
    assert_eq!(
        actions,
        vec![
            Action::Remove {
                node_id: "g1".into(),
                instance: GHOST.into(),
            },
            Action::Demote {
                node_id: "g2".into(),
                instance: GHOST.into(),
            },
            Action::Remove {
                node_id: "g2".into(),
                instance: GHOST.into(),
            },
            // g5 is its record's node, labelled as any other
            Action::UpdateNode {
                node_id: "g5".into(),
                labels: [
                    ("az", "us-east-1a"),
                    ("instance", "i-5"),
                    ("role", "worker")
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
                drain: false,
                why: "labels az, instance, role".into(),
            },
        ]
    );
}

#[test]
fn the_leader_never_removes_itself() {
    let nodes = [node(
        "n1",
        Role::Manager,
        NodeStatus::Down,
        &[("instance", "i-1")],
    )];
    assert_eq!(leader_actions("n1", &nodes, &[], &BTreeMap::new()), vec![]);
}

#[test]
fn records_of_gone_instances_without_a_node_are_deleted_once() {
    let records = [
        record("gone", "i-9", "us-east-1a", Role::Worker),
        record("also-gone", "i-9", "us-east-1a", Role::Worker),
        record("joining", "i-10", "us-east-1a", Role::Worker),
    ];
    let actions = leader_actions(
        "n1",
        &[],
        &records,
        &states(&[
            ("i-9", InstanceState::Terminated),
            ("i-10", InstanceState::Running),
        ]),
    );
    assert_eq!(
        actions,
        vec![Action::DeleteRecord {
            instance: "i-9".into()
        }]
    );
}

#[test]
fn the_order_of_the_input_does_not_change_the_actions() {
    let mut nodes = vec![
        node("b", Role::Worker, NodeStatus::Down, &[("instance", "i-b")]),
        node("a", Role::Worker, NodeStatus::Ready, &[]),
        node("c", Role::Manager, NodeStatus::Down, &[("instance", "i-c")]),
    ];
    let records = [
        record("a", "i-a", "us-east-1a", Role::Worker),
        record("b", "i-b", "us-east-1b", Role::Worker),
    ];
    let st = states(&[("i-a", InstanceState::Running)]);
    let first = leader_actions("x", &nodes, &records, &st);
    nodes.reverse();
    assert_eq!(leader_actions("x", &nodes, &records, &st), first);
    assert_eq!(first.len(), 1 + 2 + 2, "{first:?}");
}

#[test]
fn only_down_nodes_and_nodeless_records_need_their_instance_looked_up() {
    let nodes = [
        node(
            "n1",
            Role::Manager,
            NodeStatus::Down,
            &[("instance", "i-1")],
        ),
        node(
            "n2",
            Role::Worker,
            NodeStatus::Ready,
            &[("instance", "i-2")],
        ),
        node("n3", Role::Worker, NodeStatus::Down, &[]),
    ];
    let records = [
        record("n3", "i-3", "us-east-1a", Role::Worker),
        record("n4", "i-4", "us-east-1a", Role::Worker),
        record("n2", "i-2", "us-east-1a", Role::Worker),
    ];
    assert_eq!(instances_to_check("n1", &nodes, &records), ["i-3", "i-4"]);
    assert!(instances_to_check("n1", &nodes[1..2], &records[2..]).is_empty());
}

#[test]
fn the_last_manager_is_the_one_without_a_reachable_peer_manager() {
    let mut nodes = vec![
        node("m1", Role::Manager, NodeStatus::Ready, &[]),
        node("w1", Role::Worker, NodeStatus::Ready, &[]),
        node("m2", Role::Manager, NodeStatus::Down, &[]),
    ];
    assert!(is_last_manager("m1", &nodes));
    nodes[2].status = NodeStatus::Ready;
    nodes[2].reachable = true;
    assert!(!is_last_manager("m1", &nodes));
    assert!(!is_last_manager("m2", &nodes));
}

#[test]
fn the_init_race_is_won_by_creating_init_or_by_already_holding_it() {
    assert_eq!(init_race("i-1", InitPut::Created), InitRace::Won);
    assert_eq!(
        init_race("i-1", InitPut::Exists(Some("i-1".into()))),
        InitRace::Won
    );
    assert_eq!(
        init_race("i-1", InitPut::Exists(Some("i-2".into()))),
        InitRace::Lost {
            holder: "i-2".into()
        }
    );
    assert_eq!(init_race("i-1", InitPut::Exists(None)), InitRace::Again);
}

#[test]
fn a_claim_is_stale_only_when_its_holder_is_not_running_and_no_tokens_came_in_time() {
    let grace = Duration::from_secs(30);
    let early = Duration::from_secs(5);
    let late = Duration::from_secs(31);
    for holder in [InstanceState::Terminated, InstanceState::Running] {
        assert_eq!(judge_claim(holder, true, late, grace), WaitVerdict::Join);
    }
    assert_eq!(
        judge_claim(InstanceState::Running, false, late, grace),
        WaitVerdict::Wait
    );
    assert_eq!(
        judge_claim(InstanceState::Pending, false, late, grace),
        WaitVerdict::Wait
    );
    assert_eq!(
        judge_claim(InstanceState::Terminated, false, early, grace),
        WaitVerdict::Wait
    );
    for holder in [
        InstanceState::Terminated,
        InstanceState::NotFound,
        InstanceState::Stopped,
        InstanceState::ShuttingDown,
    ] {
        assert_eq!(
            judge_claim(holder, false, late, grace),
            WaitVerdict::Stale,
            "{holder:?}"
        );
    }
}

#[test]
fn join_errors_are_told_apart() {
    for m in [
        "rpc error: code = InvalidArgument desc = A valid join token is necessary to join this cluster",
        "invalid join token",
        "remote CA does not match fingerprint. Expected: 1234",
    ] {
        assert_eq!(classify_join_error(m), JoinFailure::BadToken, "{m}");
    }
    assert_eq!(
        classify_join_error("Timeout was reached before node joined. The attempt to join the swarm will continue in the background. Use the \"docker info\" command to see the current swarm status of your node."),
        JoinFailure::StillJoining
    );
    assert_eq!(
        classify_join_error("This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one."),
        JoinFailure::AlreadyJoined
    );
    assert_eq!(
        classify_join_error("rpc error: code = Unavailable desc = connection error: dial tcp 10.9.10.5:2377: connect: connection refused"),
        JoinFailure::Transient
    );
}

#[test]
fn roles_come_from_the_asg_role_tag_and_records_round_trip_as_the_contract_says() {
    assert_eq!(
        Role::from_asg_tag(Some("swarm-manager")),
        Some(Role::Manager)
    );
    assert_eq!(Role::from_asg_tag(Some("swarm-worker")), Some(Role::Worker));
    assert_eq!(Role::from_asg_tag(Some("bastion")), None);
    assert_eq!(Role::from_asg_tag(None), None);
    let r = record("n1", "i-1", "us-east-1b", Role::Manager);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"node_id": "n1", "instance": "i-1", "az": "us-east-1b",
            "role": "manager", "ip": "10.9.10.5", "state": "ready"})
    );
    assert_eq!(serde_json::from_value::<NodeRecord>(json).unwrap(), r);
}

#[test]
fn the_initialiser_is_tried_first_then_managers_in_the_swarm_then_the_others() {
    let peers = vec![
        ("i-a".to_string(), "10.0.0.1:2377".to_string()),
        ("i-b".to_string(), "10.0.0.2:2377".to_string()),
        ("i-c".to_string(), "10.0.0.3:2377".to_string()),
        ("i-d".to_string(), "10.0.0.4:2377".to_string()),
    ];
    let recorded = BTreeSet::from(["i-d".to_string(), "i-b".to_string()]);
    assert_eq!(
        order_peers(peers.clone(), Some("i-c"), &recorded),
        [
            "10.0.0.3:2377",
            "10.0.0.2:2377",
            "10.0.0.4:2377",
            "10.0.0.1:2377"
        ]
    );
    assert_eq!(
        order_peers(peers, None, &BTreeSet::new()),
        [
            "10.0.0.1:2377",
            "10.0.0.2:2377",
            "10.0.0.3:2377",
            "10.0.0.4:2377"
        ]
    );
}

mod rebalance {
    use super::super::*;

    fn node(id: &str, az: &str, status: NodeStatus) -> SwarmNode {
        SwarmNode {
            id: id.into(),
            role: Role::Worker,
            availability: Availability::Active,
            status,
            labels: [("az".to_string(), az.to_string())].into_iter().collect(),
            reachable: false,
            leader: false,
            described: true,
        }
    }

    fn app(tasks: &[&str]) -> SpreadService {
        SpreadService {
            id: "svc".into(),
            name: "app".into(),
            label: "az".into(),
            replicas: 3,
            updating: false,
            task_nodes: tasks.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn three_azs() -> Vec<SwarmNode> {
        vec![
            node("a", "us-east-1a", NodeStatus::Ready),
            node("b", "us-east-1b", NodeStatus::Ready),
            node("c", "us-east-1c", NodeStatus::Ready),
        ]
    }

    #[test]
    fn every_replica_in_one_az_is_rebalanced() {
        assert_eq!(unbalanced(&[app(&["a", "a", "a"])], &three_azs()), ["svc"]);
        // two in one AZ, none in another: 2 - 0 > 1
        assert_eq!(unbalanced(&[app(&["a", "a", "b"])], &three_azs()), ["svc"]);
    }

    #[test]
    fn a_spread_service_is_left_alone() {
        assert!(unbalanced(&[app(&["a", "b", "c"])], &three_azs()).is_empty());
    }

    #[test]
    fn nothing_moves_while_swarm_is_busy_or_without_a_second_az() {
        let mut updating = app(&["a", "a", "a"]);
        updating.updating = true;
        assert!(unbalanced(&[updating], &three_azs()).is_empty());
        // fewer running than declared: Swarm is still placing
        assert!(unbalanced(&[app(&["a", "a"])], &three_azs()).is_empty());
        // the other AZs' nodes are down: nowhere to spread to
        let nodes = vec![
            node("a", "us-east-1a", NodeStatus::Ready),
            node("b", "us-east-1b", NodeStatus::Down),
        ];
        assert!(unbalanced(&[app(&["a", "a", "a"])], &nodes).is_empty());
    }
}
