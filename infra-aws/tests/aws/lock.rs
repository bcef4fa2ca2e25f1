//! The AWS apply lock (an IAM policy `<stack>.infra-lock` under the stack's IAM path): a held
//! lock names its holder, a dead holder is called stale, `force_unlock` breaks it and says who
//! held it, `unlock` only releases its own holder's lock, two stacks don't block each other, a
//! lost `CreatePolicy` response doesn't lock a run out of its own lock, the lock never shows in a
//! read or a plan, and an apply releases it.

use infra_aws::provider::lock_name;
use infra_aws::*;
use infra_core::dsl::Stack;
use infra_core::engine::Error as EngineError;
use infra_core::provider::{LockError, LockInfo, Provider};
use infra_core::reconcile::NoObserver;

use crate::support::{apply, destroy, moto, plan, unique, Moto};

/// The lock policies of `stack` as IAM lists them (straight from moto, not through the
/// provider).
async fn lock_policies(m: &Moto, stack: &str) -> Vec<String> {
    m.iam
        .list_policies()
        .scope(aws_sdk_iam::types::PolicyScopeType::Local)
        .path_prefix(format!("/infra/{stack}/"))
        .send()
        .await
        .expect("ListPolicies")
        .policies()
        .iter()
        .filter_map(|p| p.policy_name())
        .filter(|n| n.ends_with(".infra-lock"))
        .map(str::to_string)
        .collect()
}

/// A holder id of this host whose process is gone: a child that has exited.
fn dead_holder(operation: &str) -> LockInfo {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait");
    let mine = LockInfo::for_this_process(operation);
    let host = mine.holder.split(':').next().unwrap().to_string();
    LockInfo {
        holder: format!("{host}:pid{pid}:0badf00d"),
        ..mine
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_lock_names_its_holder_and_only_the_holder_releases_it() {
    let Some(m) = moto("a_held_lock_names_its_holder_and_only_the_holder_releases_it").await else {
        return;
    };
    let p = m.provider.as_ref();
    let stack = unique("lock");
    let first = LockInfo::for_this_process("apply");
    let second = LockInfo::for_this_process("destroy");
    assert_ne!(first.holder, second.holder);

    p.lock(&stack, &first).await.expect("a free lock is taken");
    assert_eq!(lock_policies(&m, &stack).await, vec![lock_name(&stack)]);
    // The same holder again (a retry after a lost CreatePolicy response) still holds it.
    p.lock(&stack, &first)
        .await
        .expect("the holder's own retry succeeds");

    match p.lock(&stack, &second).await {
        Err(LockError::Held { stack: s, holder }) => {
            assert_eq!(s, stack);
            assert_eq!(holder, first, "the lock carries the holder's LockInfo");
            assert_eq!(
                holder.is_stale(),
                Some(false),
                "this process still runs: not stale"
            );
            let msg = LockError::Held {
                stack: s,
                holder: holder.clone(),
            }
            .to_string();
            assert!(msg.contains(&first.holder), "{msg}");
            assert!(msg.contains("still running"), "{msg}");
        }
        other => panic!("expected Held, got {other:?}"),
    }

    // Someone else's unlock leaves it in place, and says so.
    let err = p
        .unlock(&stack, &second.holder)
        .await
        .expect_err("not the holder");
    assert_eq!(err.code, "LockNotHeld");
    assert!(err.message.contains(&first.holder), "{err}");
    assert_eq!(lock_policies(&m, &stack).await.len(), 1);

    p.unlock(&stack, &first.holder)
        .await
        .expect("the holder releases it");
    assert!(lock_policies(&m, &stack).await.is_empty());
    p.unlock(&stack, &first.holder)
        .await
        .expect("releasing a free lock is a no-op");
    p.lock(&stack, &second).await.expect("free again");
    p.unlock(&stack, &second.holder).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_holder_is_called_stale_and_force_unlock_breaks_it() {
    let Some(m) = moto("a_dead_holder_is_called_stale_and_force_unlock_breaks_it").await else {
        return;
    };
    let p = m.provider.as_ref();
    let stack = unique("stale");
    let dead = dead_holder("apply");
    p.lock(&stack, &dead).await.unwrap();

    // An apply through the engine is refused with the holder and the staleness (how to break
    // the lock is the calling program's to say).
    let mut s = Stack::new(&stack);
    s.add(Vpc::new("main").cidr("10.71.0.0/16"));
    let engine = m.engine();
    let planned = plan(&engine, &s).await;
    let err = engine
        .apply(&planned, &NoObserver)
        .await
        .expect_err("locked");
    assert!(matches!(err, EngineError::Locked { .. }), "{err:?}");
    let msg = err.to_string();
    for needle in [
        &dead.holder as &str,
        "no longer running on this host, so the lock is stale",
    ] {
        assert!(msg.contains(needle), "`{needle}` in: {msg}");
    }
    assert!(
        p.read(&stack).await.unwrap().resources.is_empty(),
        "nothing was created"
    );

    let broken = p.force_unlock(&stack).await.unwrap();
    assert_eq!(
        broken,
        Some(dead.clone()),
        "force_unlock returns the holder"
    );
    assert_eq!(broken.unwrap().is_stale(), Some(true));
    assert!(lock_policies(&m, &stack).await.is_empty());
    assert_eq!(
        p.force_unlock(&stack).await.unwrap(),
        None,
        "nothing left to break"
    );

    // Through the engine: it reports what it broke, per provider.
    p.lock(&stack, &dead).await.unwrap();
    let broken = engine
        .force_unlock(&stack, &Default::default())
        .await
        .unwrap();
    assert_eq!(broken.get("aws"), Some(&dead));

    // And the apply goes through now.
    let (_, report) = apply(&engine, &s).await;
    assert_eq!(report.counts().added, 1);
    assert!(
        lock_policies(&m, &stack).await.is_empty(),
        "apply released its lock"
    );
    destroy(&m, &engine, &s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_stacks_do_not_block_each_other_and_the_lock_is_never_read_or_planned() {
    let Some(m) = moto("two_stacks_do_not_block_each_other").await else {
        return;
    };
    let p = m.provider.as_ref();
    // A stack named like the lock's prefix, and one whose name starts with the other's.
    let a = unique("infra");
    let b = format!("{a}-b");
    let ia = LockInfo::for_this_process("apply");
    let ib = LockInfo::for_this_process("apply");
    p.lock(&a, &ia).await.expect("a");
    p.lock(&b, &ib).await.expect("b, while a is held");

    for name in [&a, &b] {
        let mut s = Stack::new(name);
        s.add(
            IamPolicy::new("lock").document(
                PolicyDocument::new().statement(
                    Statement::allow()
                        .actions(["ec2:DescribeVpcs"])
                        .resources(["*"]),
                ),
            ),
        );
        let read = p.read(name).await.unwrap();
        assert!(
            read.resources.is_empty(),
            "the lock is not one of the stack's objects: {:?}",
            read.resources
        );
        let planned = plan(&m.engine(), &s).await;
        assert_eq!(
            planned.plan.summary.add, 1,
            "only the declared policy is planned"
        );
        assert_eq!(planned.plan.changes.len(), 1);
        let destroy_plan = m
            .engine()
            .plan(
                &s,
                &infra_core::plan::PlanOptions {
                    destroy: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(
            destroy_plan.plan.is_empty(),
            "a destroy never deletes the lock"
        );
    }
    p.unlock(&a, &ia.holder).await.unwrap();
    assert!(lock_policies(&m, &a).await.is_empty());
    assert_eq!(
        lock_policies(&m, &b).await,
        vec![lock_name(&b)],
        "b's lock is untouched by a's release"
    );
    p.unlock(&b, &ib.holder).await.unwrap();
}
