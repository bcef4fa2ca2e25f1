//! The apply lock's protocol (infra_core::lock) on a provider whose three primitives misbehave
//! as networks do: lost responses, transient errors, a holder releasing between our calls.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;
use infra_core::lock::{self, Created, LOCK_NOT_HELD};
use infra_core::provider::{
    LockError, LockInfo, Observed, OpContext, Provider, ProviderError, ReadResult, Resolved,
};

/// What the next primitive call does besides its job.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Glitch {
    /// Do the work, then answer with a retryable error (the response was lost).
    LoseResponse,
    /// Fail with a retryable error before doing anything.
    Transient,
    /// Someone else released the lock just before this call.
    ReleasedByOther,
}

/// A lock store in memory with scripted glitches for `lock_create` / `lock_read` calls.
#[derive(Default)]
struct Flaky {
    holder: Mutex<Option<LockInfo>>,
    create_glitches: Mutex<VecDeque<Glitch>>,
    read_glitches: Mutex<VecDeque<Glitch>>,
    calls: Mutex<Vec<&'static str>>,
}

impl Flaky {
    fn held_by(info: &LockInfo) -> Self {
        let f = Flaky::default();
        *f.holder.lock().unwrap() = Some(info.clone());
        f
    }
    fn glitch(queue: &Mutex<VecDeque<Glitch>>) -> Option<Glitch> {
        queue.lock().unwrap().pop_front()
    }
    fn lost() -> ProviderError {
        ProviderError::retryable("Connection", "connection reset")
    }
}

#[async_trait]
impl Provider for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }
    async fn read(&self, _: &str) -> Result<ReadResult, ProviderError> {
        Ok(ReadResult::default())
    }
    async fn create(&self, _: &OpContext, _: &Resolved) -> Result<Observed, ProviderError> {
        unreachable!("no resources here")
    }
    async fn update(
        &self,
        _: &OpContext,
        _: &Observed,
        _: &Resolved,
        _: &[String],
    ) -> Result<Observed, ProviderError> {
        unreachable!("no resources here")
    }
    async fn delete(&self, _: &OpContext, _: &Observed) -> Result<(), ProviderError> {
        unreachable!("no resources here")
    }
    async fn lock_create(&self, _: &str, info: &LockInfo) -> Result<Created, ProviderError> {
        self.calls.lock().unwrap().push("create");
        let glitch = Self::glitch(&self.create_glitches);
        if glitch == Some(Glitch::Transient) {
            return Err(Self::lost());
        }
        if glitch == Some(Glitch::ReleasedByOther) {
            *self.holder.lock().unwrap() = None;
        }
        let mut holder = self.holder.lock().unwrap();
        let created = if holder.is_some() {
            Created::Exists
        } else {
            *holder = Some(info.clone());
            Created::Created
        };
        match glitch {
            Some(Glitch::LoseResponse) => Err(Self::lost()),
            _ => Ok(created),
        }
    }
    async fn lock_read(&self, _: &str) -> Result<Option<LockInfo>, ProviderError> {
        self.calls.lock().unwrap().push("read");
        match Self::glitch(&self.read_glitches) {
            Some(Glitch::Transient) | Some(Glitch::LoseResponse) => return Err(Self::lost()),
            Some(Glitch::ReleasedByOther) => *self.holder.lock().unwrap() = None,
            None => {}
        }
        Ok(self.holder.lock().unwrap().clone())
    }
    async fn lock_delete(&self, _: &str) -> Result<(), ProviderError> {
        self.calls.lock().unwrap().push("delete");
        *self.holder.lock().unwrap() = None;
        Ok(())
    }
}

fn info(holder: &str) -> LockInfo {
    LockInfo {
        holder: holder.into(),
        since_unix: 1,
        operation: "apply".into(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_create_whose_response_was_lost_finds_its_own_lock_and_counts_as_taken() {
    let p = Flaky::default();
    p.create_glitches
        .lock()
        .unwrap()
        .extend([Glitch::LoseResponse]);
    p.lock("s", &info("me")).await.expect("taken");
    assert_eq!(p.holder.lock().unwrap().as_ref().unwrap().holder, "me");
    // The retried create met our own lock, and the holder read back said it is ours.
    assert_eq!(*p.calls.lock().unwrap(), ["create", "create", "read"]);
}

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_and_a_held_lock_names_its_holder() {
    let p = Flaky::held_by(&info("other"));
    p.create_glitches
        .lock()
        .unwrap()
        .extend([Glitch::Transient, Glitch::Transient]);
    p.read_glitches.lock().unwrap().extend([Glitch::Transient]);
    match p.lock("s", &info("me")).await {
        Err(LockError::Held { holder, stack }) => {
            assert_eq!((holder.holder.as_str(), stack.as_str()), ("other", "s"));
        }
        other => panic!("expected Held, got {other:?}"),
    }
    assert_eq!(
        *p.calls.lock().unwrap(),
        ["create", "create", "create", "read", "read"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_lock_released_between_create_and_read_is_taken_on_the_next_round() {
    let p = Flaky::held_by(&info("other"));
    p.read_glitches
        .lock()
        .unwrap()
        .extend([Glitch::ReleasedByOther]);
    p.lock("s", &info("me")).await.expect("taken on round 2");
    assert_eq!(*p.calls.lock().unwrap(), ["create", "read", "create"]);
}

#[tokio::test(start_paused = true)]
async fn only_the_holder_releases_and_force_unlock_says_whose_it_was() {
    let p = Flaky::held_by(&info("other"));
    let e = p.unlock("s", "me").await.expect_err("not ours");
    assert_eq!(e.code, LOCK_NOT_HELD);
    assert!(e.message.contains("other"), "{e}");
    assert!(p.holder.lock().unwrap().is_some(), "left in place");
    let broken = lock::force_unlock(&p, "s").await.unwrap();
    assert_eq!(broken.map(|i| i.holder).as_deref(), Some("other"));
    assert!(p.holder.lock().unwrap().is_none());
    assert_eq!(lock::force_unlock(&p, "s").await.unwrap(), None);
    p.unlock("s", "me")
        .await
        .expect("no lock: nothing to release");
}
