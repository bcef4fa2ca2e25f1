//! Whole lives of the binary with fake engines: three managers at once, a manager's and a
//! worker's life, a stale claim, a restart.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_managers_started_together_initialise_the_swarm_once() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    for round in 0..3 {
        let stack = stack("trio");
        let (_, managers) = cloud.group(&stack, "swarm-manager", 3, false).await;
        let mut nodes = Vec::new();
        for (n, m) in managers.iter().enumerate() {
            let imds = Imds::start(&m.id, &m.az, &m.ip).await;
            let engine = Engine::start(&format!("m{n}"), JoinMode::Ok).await;
            nodes.push((m.clone(), imds, engine));
        }
        let agents: Vec<Running> = nodes
            .iter()
            .map(|(_, imds, engine)| start(agent(&imds.url, &engine.host, &[])))
            .collect();
        let params = Params::new(&stack);
        let all: Vec<&Running> = agents.iter().collect();
        until_async("three node records", STEP, &all, || async {
            cloud.names(&params.nodes()).await.len() == 3
        })
        .await;
        // Managers label themselves right after writing their record.
        until("three labelled managers", STEP, &all, || {
            nodes
                .iter()
                .all(|(_, _, e)| e.state.lock().unwrap().labels.contains_key("role"))
        })
        .await;
        for a in &agents {
            a.terminate();
        }
        let mut runs = Vec::new();
        for a in agents {
            runs.push(a.wait(Duration::from_secs(20)).await);
        }
        let inits: Vec<usize> = (0..3)
            .filter(|i| !nodes[*i].2.calls("POST /swarm/init").is_empty())
            .collect();
        assert_eq!(inits.len(), 1, "round {round}: one swarm init");
        let winner = inits[0];
        let (wm, _, we) = &nodes[winner];
        assert_eq!(
            cloud.param(&params.init()).await.map(|p| p.0),
            Some(wm.id.clone())
        );
        let manager_token = we.state.lock().unwrap().tokens.1.clone();
        assert_eq!(
            cloud.param(&params.manager_token()).await,
            Some((manager_token.clone(), "SecureString".to_string()))
        );
        let init = &we.bodies("init")[0];
        assert_eq!(init["AdvertiseAddr"], wm.ip.as_str());
        assert_eq!(init["ListenAddr"], "0.0.0.0:2377");
        for (i, (m, _, e)) in nodes.iter().enumerate() {
            let run = &runs[i];
            assert_eq!(run.code, Some(0), "stopped by SIGTERM\n{}", run.show());
            assert!(
                run.steps().last().is_some_and(|s| s == "exit"),
                "{}",
                run.show()
            );
            assert!(
                !run.stdout.contains("-secret"),
                "a token in the log\n{}",
                run.show()
            );
            assert_eq!(e.state.lock().unwrap().state, "active");
            if i == winner {
                assert!(e.bodies("join").is_empty());
                continue;
            }
            let joins = e.bodies("join");
            assert_eq!(joins.len(), 1, "{}", run.show());
            assert_eq!(joins[0]["JoinToken"], manager_token.as_str());
            let remote = joins[0]["RemoteAddrs"][0].as_str().unwrap().to_string();
            assert_ne!(remote, format!("{}:2377", m.ip), "never itself");
            assert_eq!(
                remote,
                format!("{}:2377", wm.ip),
                "the initialiser is tried first"
            );
            // Managers label themselves at once.
            let labels = e.state.lock().unwrap().labels.clone();
            assert_eq!(labels.get("role").map(String::as_str), Some("manager"));
            assert_eq!(labels.get("instance"), Some(&m.id));
        }
        cloud.clean(&stack).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manager_initialises_serves_as_leader_and_leaves_on_termination() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    let stack = stack("life");
    let (group, managers) = cloud.group(&stack, "swarm-manager", 1, true).await;
    let me = managers[0].clone();
    let params = Params::new(&stack);
    let imds = Imds::start(&me.id, &me.az, &me.ip).await;
    let engine = Engine::start("m0", JoinMode::Ok).await;
    // What the leader must clean up: a dead manager (labelled, no record), a dead worker (only
    // its record names its instance), and a live worker with a draining record and no labels.
    let (dead1, dead2, live) = (
        "i-00000000000dead01",
        "i-00000000000dead02",
        "i-0000000000001ive0",
    );
    engine.state.lock().unwrap().others = vec![
        serde_json::json!({"ID": "dead-mgr", "Version": {"Index": 3},
            "Spec": {"Labels": {"instance": dead1}, "Role": "manager", "Availability": "active"},
            "Status": {"State": "down"},
            "ManagerStatus": {"Leader": false, "Reachability": "unreachable"}}),
        serde_json::json!({"ID": "dead-wkr", "Version": {"Index": 3},
            "Spec": {"Labels": {}, "Role": "worker", "Availability": "active"},
            "Status": {"State": "down"}}),
        serde_json::json!({"ID": "live-wkr", "Version": {"Index": 3},
            "Spec": {"Labels": {"tier": "web"}, "Role": "worker", "Availability": "active"},
            "Status": {"State": "ready"}}),
    ];
    let record = |node: &str, instance: &str, state: &str| {
        serde_json::json!({"node_id": node, "instance": instance, "az": "us-east-1c",
            "role": "worker", "ip": "10.77.10.99", "state": state})
        .to_string()
    };
    cloud
        .put(
            &params.node(dead2),
            &record("dead-wkr", dead2, "ready"),
            false,
        )
        .await;
    cloud
        .put(
            &params.node(live),
            &record("live-wkr", live, "draining"),
            false,
        )
        .await;

    let running = start(agent(&imds.url, &engine.host, &[]));
    until("the leader's clean-up", STEP, &[&running], || {
        let s = engine.state.lock().unwrap();
        s.others.len() == 1 && s.others[0]["Spec"]["Availability"] == "drain"
    })
    .await;
    until_async(
        "the dead worker's record deleted",
        STEP,
        &[&running],
        || async { cloud.param(&params.node(dead2)).await.is_none() },
    )
    .await;
    // Serving: its own record, tokens, labels.
    let own = cloud.param(&params.node(&me.id)).await.expect("own record");
    let own: Value = serde_json::from_str(&own.0).unwrap();
    assert_eq!(
        own,
        serde_json::json!({"node_id": "m0", "instance": me.id, "az": me.az, "role": "manager",
            "ip": me.ip, "state": "ready"})
    );
    let (worker_token, manager_token) = engine.state.lock().unwrap().tokens.clone();
    assert_eq!(
        cloud.param(&params.worker_token()).await,
        Some((worker_token, "SecureString".into()))
    );
    assert_eq!(
        cloud.param(&params.manager_token()).await,
        Some((manager_token, "SecureString".into()))
    );
    {
        let s = engine.state.lock().unwrap();
        let want: std::collections::BTreeMap<String, String> = [
            ("az", me.az.as_str()),
            ("instance", me.id.as_str()),
            ("role", "manager"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(s.labels, want);
        // The live worker: the record's labels added to its own, and drained.
        let spec = &s.others[0]["Spec"];
        assert_eq!(
            spec["Labels"],
            serde_json::json!({"az": "us-east-1c", "instance": live, "role": "worker", "tier": "web"})
        );
        assert_eq!(spec["Role"], "worker");
    }
    // The dead manager was demoted before it was removed.
    let demote = engine.bodies("update dead-mgr");
    assert_eq!(demote.len(), 1);
    assert_eq!(demote[0]["Role"], "worker");
    let calls = engine.calls("");
    let demoted = calls
        .iter()
        .position(|c| c.starts_with("POST /nodes/dead-mgr/update"))
        .unwrap();
    let removed = calls
        .iter()
        .position(|c| c.starts_with("DELETE /nodes/dead-mgr"))
        .unwrap();
    assert!(demoted < removed);
    assert!(calls
        .iter()
        .any(|c| c.starts_with("DELETE /nodes/dead-wkr")));

    // Termination.
    imds.set_lifecycle("Terminated");
    assert_eq!(
        *imds.unauthorised.lock().unwrap(),
        0,
        "every metadata request carried an IMDSv2 session token"
    );
    let run = running.wait(STEP).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    let steps: BTreeSet<String> = run.steps().into_iter().collect();
    for step in [
        "start",
        "identity",
        "group",
        "swarm",
        "init-race",
        "swarm-init",
        "record",
        "labels",
        "serve",
        "leader",
        "lifecycle",
        "drain",
        "demote",
        "leave",
        "complete-lifecycle",
        "exit",
    ] {
        assert!(steps.contains(step), "no {step} line\n{}", run.show());
    }
    assert!(
        !run.stdout.contains("-secret") && !run.stderr.contains("-secret"),
        "a token in the log\n{}",
        run.show()
    );
    {
        let s = engine.state.lock().unwrap();
        assert_eq!(s.state, "inactive", "left the swarm");
        assert_eq!(s.availability, "drain", "drained itself first");
        assert!(
            s.calls.iter().any(|c| c == "POST /swarm/leave?force=true"),
            "the last manager leaves with force: {:?}",
            s.calls
        );
    }
    assert!(
        cloud.param(&params.node(&me.id)).await.is_none(),
        "its record is deleted"
    );
    // moto answers CompleteLifecycleAction with HTTP 500: a warning after bounded retries.
    let complete = run
        .lines
        .iter()
        .find(|l| l["step"] == "complete-lifecycle")
        .unwrap();
    assert_eq!(complete["hook"], format!("{group}-drain"), "{}", run.show());
    cloud.clean(&stack).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manager_clears_a_stale_init_claim_and_initialises_the_swarm() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    let stack = stack("staleclaim");
    let (_, managers) = cloud.group(&stack, "swarm-manager", 1, false).await;
    let params = Params::new(&stack);
    // An initialiser that died before writing the tokens (EC2 does not know it any more).
    let dead = "i-0000000000000dead";
    cloud.put(&params.init(), dead, false).await;
    let me = &managers[0];
    let imds = Imds::start(&me.id, &me.az, &me.ip).await;
    let engine = Engine::start("m0", JoinMode::Ok).await;
    // Join timeout 20 s: the grace period is 5 s.
    let running = start(agent(
        &imds.url,
        &engine.host,
        &[("INFRA_NODE_JOIN_TIMEOUT", "20")],
    ));
    until_async("this manager's record", STEP, &[&running], || async {
        cloud.param(&params.node(&me.id)).await.is_some()
    })
    .await;
    running.terminate();
    let run = running.wait(Duration::from_secs(20)).await;
    let init = cloud.param(&params.init()).await.map(|p| p.0);
    let marker = cloud.param(&params.init_reset(dead)).await.map(|p| p.0);
    cloud.clean(&stack).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert_eq!(init.as_deref(), Some(me.id.as_str()), "{}", run.show());
    assert_eq!(marker.as_deref(), Some(me.id.as_str()));
    assert_eq!(engine.calls("POST /swarm/init").len(), 1);
    assert!(engine.bodies("join").is_empty());
    let stale = run
        .lines
        .iter()
        .find(|l| l["msg"].as_str().unwrap().contains("stale"))
        .unwrap_or_else(|| panic!("no stale-claim line\n{}", run.show()));
    assert_eq!(stale["holder"], dead);
    assert_eq!(stale["cleared"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_joins_with_the_worker_token_and_leaves_on_termination() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    let stack = stack("worker");
    let (_, managers) = cloud.group(&stack, "swarm-manager", 2, false).await;
    let (_, workers) = cloud.group(&stack, "swarm-worker", 1, true).await;
    let params = Params::new(&stack);
    let token = "SWMTKN-1-the-worker-secret";
    cloud.put(&params.worker_token(), token, true).await;
    let me = &workers[0];
    let imds = Imds::start(&me.id, &me.az, &me.ip).await;
    // The first manager tried does not answer: the agent goes on to the next one.
    let engine = Engine::start("w0", JoinMode::UnreachableFirst).await;
    let running = start(agent(&imds.url, &engine.host, &[]));
    until_async("the worker's record", STEP, &[&running], || async {
        cloud.param(&params.node(&me.id)).await.is_some()
    })
    .await;
    let record: Value =
        serde_json::from_str(&cloud.param(&params.node(&me.id)).await.unwrap().0).unwrap();
    assert_eq!(record["role"], "worker");
    assert_eq!(record["node_id"], "w0");
    assert_eq!(record["state"], "ready");
    imds.set_lifecycle("Terminated");
    let run = running.wait(STEP).await;
    cloud.clean(&stack).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert!(!run.stdout.contains("-secret"), "{}", run.show());
    let joins = engine.bodies("join");
    assert_eq!(joins.len(), 2, "{}", run.show());
    let tried: BTreeSet<String> = joins
        .iter()
        .map(|j| {
            assert_eq!(j["JoinToken"], token);
            j["RemoteAddrs"][0].as_str().unwrap().to_string()
        })
        .collect();
    let peers: BTreeSet<String> = managers.iter().map(|m| format!("{}:2377", m.ip)).collect();
    assert_eq!(tried, peers, "both managers, one after the other");
    assert!(
        run.lines
            .iter()
            .any(|l| l["level"] == "warn" && l["step"] == "join"),
        "the failed attempt is logged\n{}",
        run.show()
    );
    let s = engine.state.lock().unwrap();
    assert_eq!(s.state, "inactive");
    assert!(
        s.calls.iter().any(|c| c == "POST /swarm/leave?force=false"),
        "a worker leaves without force: {:?}",
        s.calls
    );
    assert!(
        !s.calls.iter().any(|c| c.starts_with("POST /nodes")),
        "a worker never updates nodes: {:?}",
        s.calls
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_already_in_a_swarm_skips_init_and_join() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    let stack = stack("restart");
    let (_, workers) = cloud.group(&stack, "swarm-worker", 1, false).await;
    let params = Params::new(&stack);
    let me = &workers[0];
    let imds = Imds::start(&me.id, &me.az, &me.ip).await;
    let engine = Engine::start("w9", JoinMode::BadToken).await;
    engine.state.lock().unwrap().state = "active".into();
    let running = start(agent(&imds.url, &engine.host, &[]));
    until_async("the record", STEP, &[&running], || async {
        cloud.param(&params.node(&me.id)).await.is_some()
    })
    .await;
    running.terminate();
    let run = running.wait(Duration::from_secs(20)).await;
    cloud.clean(&stack).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert!(
        run.lines
            .iter()
            .any(|l| l["step"] == "swarm"
                && l["msg"].as_str().unwrap().contains("already in a swarm")),
        "{}",
        run.show()
    );
    assert!(
        engine.calls("POST /swarm").is_empty(),
        "{:?}",
        engine.calls("")
    );
}
