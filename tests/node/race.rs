//! The init race through the library: many agents at once, many times, one winner; stale
//! claims cleared by exactly one agent.

use super::*;

/// Awaits every spawned task (they run concurrently from the moment they were spawned).
async fn all<T>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let tasks: Vec<_> = tasks.collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

async fn library_aws() -> Aws {
    Aws::new(
        &sdk_config("us-east-1").await,
        infra_node::agent::call_policy(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_init_race_has_exactly_one_winner_among_concurrent_managers() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    let aws = library_aws().await;
    const ROUNDS: usize = 12;
    const AGENTS: usize = 5;
    for round in 0..ROUNDS {
        let stack = stack("race");
        let params = Params::new(&stack);
        let runs = (0..AGENTS).map(|n| {
            let (aws, params) = (aws.clone(), params.clone());
            let me = format!("i-{round:04}{n:013}");
            tokio::spawn(async move {
                let r = infra_node::agent::claim_init(&aws, &params, &me).await;
                (me, r.expect("claim_init"))
            })
        });
        let outcomes: Vec<(String, InitRace)> = all(runs).await;
        let winners: Vec<&String> = outcomes
            .iter()
            .filter(|(_, o)| *o == InitRace::Won)
            .map(|(me, _)| me)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        let winner = winners[0].clone();
        for (me, o) in &outcomes {
            if *me != winner {
                assert_eq!(
                    *o,
                    InitRace::Lost {
                        holder: winner.clone()
                    },
                    "round {round}"
                );
            }
        }
        assert_eq!(
            cloud.param(&params.init()).await.map(|(v, _)| v),
            Some(winner.clone())
        );
        // A restart of the winner still wins (it initialises if it had not yet).
        assert_eq!(
            infra_node::agent::claim_init(&aws, &params, &winner)
                .await
                .unwrap(),
            InitRace::Won
        );
        cloud.clean(&stack).await;
    }
    infra_test_support::say(&format!(
        "init race: {ROUNDS} rounds of {AGENTS} concurrent agents, one winner each"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_claim_is_cleared_by_one_agent_and_the_rerun_race_has_one_winner() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    let aws = library_aws().await;
    for round in 0..5 {
        let stack = stack("stale");
        let params = Params::new(&stack);
        let dead = format!("i-dead{round:013}");
        assert_eq!(
            infra_node::agent::claim_init(&aws, &params, &dead)
                .await
                .unwrap(),
            InitRace::Won
        );
        let agents: Vec<String> = (0..4).map(|n| format!("i-live{round:04}{n:09}")).collect();
        let clears = agents.iter().map(|me| {
            let (aws, params, dead, me) = (aws.clone(), params.clone(), dead.clone(), me.clone());
            tokio::spawn(async move {
                infra_node::agent::clear_stale_claim(&aws, &params, &dead, &me)
                    .await
                    .expect("clear")
            })
        });
        let cleared: Vec<bool> = all(clears).await;
        assert_eq!(
            cleared.iter().filter(|c| **c).count(),
            1,
            "round {round}: {cleared:?}"
        );
        let races = agents.iter().map(|me| {
            let (aws, params, me) = (aws.clone(), params.clone(), me.clone());
            tokio::spawn(async move {
                infra_node::agent::claim_init(&aws, &params, &me)
                    .await
                    .expect("race")
            })
        });
        let outcomes: Vec<InitRace> = all(races).await;
        assert_eq!(
            outcomes.iter().filter(|o| **o == InitRace::Won).count(),
            1,
            "round {round}: {outcomes:?}"
        );
        // A late agent that still believes the old holder is stale cannot clear the new claim.
        let holder = cloud.param(&params.init()).await.unwrap().0;
        assert_ne!(holder, dead);
        assert!(
            !infra_node::agent::clear_stale_claim(&aws, &params, &dead, "i-late")
                .await
                .unwrap()
        );
        assert_eq!(cloud.param(&params.init()).await.unwrap().0, holder);
        cloud.clean(&stack).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_whose_first_answer_was_lost_still_clears_the_stale_claim() {
    let Some(cloud) = Cloud::connect().await else {
        return;
    };
    let aws = library_aws().await;
    let stack = stack("lostreset");
    let params = Params::new(&stack);
    let (dead, me) = ("i-0000000000000dead", "i-00000000000000me1");
    infra_node::agent::claim_init(&aws, &params, dead)
        .await
        .unwrap();
    // The marker was created by this agent, but the answer never arrived: the retry finds it.
    cloud.put(&params.init_reset(dead), me, false).await;
    assert!(
        !infra_node::agent::clear_stale_claim(&aws, &params, dead, "i-someone-else")
            .await
            .unwrap(),
        "another agent may not clear it"
    );
    assert!(
        infra_node::agent::clear_stale_claim(&aws, &params, dead, me)
            .await
            .unwrap()
    );
    assert_eq!(cloud.param(&params.init()).await, None);
    assert_eq!(
        infra_node::agent::claim_init(&aws, &params, me)
            .await
            .unwrap(),
        InitRace::Won
    );
    cloud.clean(&stack).await;
}
