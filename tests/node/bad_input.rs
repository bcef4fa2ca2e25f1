//! The binary's bad-input paths: each ends with its exit code and one clear line, and the
//! node stays out of any swarm.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn an_imds_that_never_answers_stops_the_agent_with_exit_2_and_one_line() {
    // No moto needed: identity is the first step. Join timeout 8 s: identity gets 2 s.
    let engine = Engine::start("unused", JoinMode::Ok).await;
    for (what, endpoint) in [
        ("accepts but never answers", fakes::silent().await),
        ("refuses connections", fakes::closed()),
    ] {
        let run = finish(
            agent(&endpoint, &engine.host, &[("INFRA_NODE_JOIN_TIMEOUT", "8")]),
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(run.code, Some(2), "{what}\n{}", run.show());
        let line = run.the_error();
        assert_eq!(line["step"], "identity", "{}", run.show());
        let msg = line["msg"].as_str().unwrap();
        assert!(
            msg.contains(&endpoint) && msg.contains("gave no identity"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
        assert!(
            run.elapsed < Duration::from_secs(12),
            "bounded: {what}\n{}",
            run.show()
        );
        assert_eq!(run.stderr, "", "nothing on stderr");
    }
    assert!(
        engine.calls("").is_empty(),
        "the engine is never touched: {:?}",
        engine.calls("")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_the_node_may_not_read_stops_the_agent_with_exit_4() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    let stack = stack("denied");
    let (_, workers) = cloud.group(&stack, "swarm-worker", 1, false).await;
    let me = &workers[0];
    let imds = Imds::start(&me.id, &me.az, &me.ip).await;
    let engine = Engine::start("w1", JoinMode::Ok).await;
    let (ssm, seen) = fakes::deny_ssm().await;
    let run = finish(
        agent(&imds.url, &engine.host, &[("AWS_ENDPOINT_URL_SSM", &ssm)]),
        STEP,
    )
    .await;
    cloud.clean(&stack).await;
    assert_eq!(run.code, Some(4), "{}", run.show());
    let line = run.the_error();
    assert_eq!(line["step"], "token");
    let msg = line["msg"].as_str().unwrap();
    let param = format!("/infra/{stack}/swarm/worker-token");
    assert!(
        msg.contains(&param) && msg.contains("access denied"),
        "{msg}"
    );
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|c| *c == format!("AmazonSSM.GetParameter {param}")),
        "{:?}",
        seen.lock().unwrap()
    );
    assert!(
        run.elapsed < Duration::from_secs(60),
        "at once, not after the join timeout\n{}",
        run.show()
    );
    let s = engine.state.lock().unwrap();
    assert_eq!(s.state, "inactive", "the node stays out of any swarm");
    assert!(
        !s.calls.iter().any(|c| c.contains("/swarm/")),
        "no init, no join: {:?}",
        s.calls
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_stops_the_agent_with_exit_5_and_the_node_out_of_the_swarm() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    let stack = stack("wrongtoken");
    let (_, managers) = cloud.group(&stack, "swarm-manager", 1, false).await;
    let (_, workers) = cloud.group(&stack, "swarm-worker", 1, false).await;
    let wrong = "SWMTKN-1-wrongwrongwrongwrongwrong";
    cloud
        .put(&format!("/infra/{stack}/swarm/worker-token"), wrong, true)
        .await;
    let me = &workers[0];
    let imds = Imds::start(&me.id, &me.az, &me.ip).await;
    let engine = Engine::start("w1", JoinMode::BadToken).await;
    let run = finish(agent(&imds.url, &engine.host, &[]), STEP).await;
    cloud.clean(&stack).await;
    assert_eq!(run.code, Some(5), "{}", run.show());
    let line = run.the_error();
    assert_eq!(line["step"], "join");
    let msg = line["msg"].as_str().unwrap();
    assert!(
        msg.contains("refused the join token") && msg.contains("worker-token"),
        "{msg}"
    );
    assert!(
        !run.stdout.contains("wrongwrong") && !run.stderr.contains("wrongwrong"),
        "the token is never printed\n{}",
        run.show()
    );
    let joins = engine.bodies("join");
    assert_eq!(
        joins.len(),
        1,
        "one manager, tried once: a bad token is final"
    );
    assert_eq!(
        joins[0]["RemoteAddrs"],
        serde_json::json!([format!("{}:2377", managers[0].ip)])
    );
    assert_eq!(joins[0]["JoinToken"], wrong);
    assert_eq!(joins[0]["AdvertiseAddr"], me.ip.as_str());
    assert_eq!(joins[0]["ListenAddr"], "0.0.0.0:2377");
    let s = engine.state.lock().unwrap();
    assert_eq!(s.state, "inactive");
    assert!(!s.calls.iter().any(|c| c.contains("/swarm/init")));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_manager_or_no_token_within_the_join_timeout_stops_the_agent_with_exit_6() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    // A worker whose stack has a token but no manager group; and one without a token.
    let with_token = stack("nomanager");
    let without = stack("notoken");
    let (_, w1) = cloud.group(&with_token, "swarm-worker", 1, false).await;
    let (_, w2) = cloud.group(&without, "swarm-worker", 1, false).await;
    cloud
        .put(
            &format!("/infra/{with_token}/swarm/worker-token"),
            "SWMTKN-1-x",
            true,
        )
        .await;
    let imds1 = Imds::start(&w1[0].id, &w1[0].az, &w1[0].ip).await;
    let imds2 = Imds::start(&w2[0].id, &w2[0].az, &w2[0].ip).await;
    let e1 = Engine::start("w1", JoinMode::Ok).await;
    let e2 = Engine::start("w2", JoinMode::Ok).await;
    let timeout = [("INFRA_NODE_JOIN_TIMEOUT", "6")];
    let (r1, r2) = tokio::join!(
        finish(agent(&imds1.url, &e1.host, &timeout), STEP),
        finish(agent(&imds2.url, &e2.host, &timeout), STEP),
    );
    cloud.clean(&with_token).await;
    cloud.clean(&without).await;
    for (run, step, words) in [
        (
            &r1,
            "join",
            "no manager let this node join within the join timeout (6 s)",
        ),
        (&r2, "token", "no join token appeared"),
    ] {
        assert_eq!(run.code, Some(6), "{}", run.show());
        let line = run.the_error();
        assert_eq!(line["step"], step, "{}", run.show());
        assert!(
            line["msg"].as_str().unwrap().contains(words),
            "{}",
            run.show()
        );
        assert!(
            run.elapsed >= Duration::from_secs(5) && run.elapsed < Duration::from_secs(30),
            "bounded by the join timeout\n{}",
            run.show()
        );
    }
    for e in [&e1, &e2] {
        assert!(e.calls("POST /swarm").is_empty(), "{:?}", e.calls(""));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_of_a_group_that_is_not_a_swarm_group_exits_0_doing_nothing() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    let stack = stack("bastion");
    let (_, bastions) = cloud.group(&stack, "bastion", 1, false).await;
    let me = &bastions[0];
    let imds = Imds::start(&me.id, &me.az, &me.ip).await;
    let engine = Engine::start("b1", JoinMode::Ok).await;
    let run = finish(agent(&imds.url, &engine.host, &[]), STEP).await;
    cloud.clean(&stack).await;
    assert_eq!(run.code, Some(0), "{}", run.show());
    assert!(run.at("error").is_empty());
    assert!(
        run.lines
            .iter()
            .any(|l| l["step"] == "role" && l["msg"].as_str().unwrap().contains("not a swarm node")),
        "{}",
        run.show()
    );
    assert!(engine.calls("").is_empty(), "{:?}", engine.calls(""));
    assert!(cloud.names(&format!("/infra/{stack}/")).await.is_empty());
}
