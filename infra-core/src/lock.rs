//! The apply lock's protocol, one for every provider.
//!
//! Two applies of one stack must not interleave. Each provider keeps a lock object per stack
//! that it can create *atomically* (an IAM policy name on AWS, a config name in Swarm's raft
//! store, an entry in the sandbox's journal) and offers three primitives on [`Provider`]:
//! [`lock_create`](Provider::lock_create) (create it holding a [`LockInfo`], or say it
//! exists), [`lock_read`](Provider::lock_read) (who holds it) and
//! [`lock_delete`](Provider::lock_delete). The protocol on top of them lives here:
//!
//! * **take** = create, or read the holder: a lock held by this run's own holder id counts as
//!   taken. That is also how a lost response is recovered: a create that succeeded but whose
//!   answer never came back (or a retried create) finds the lock held by its own id. A lock that
//!   vanishes between a refused create and the read (its holder released it) is tried again, a
//!   bounded number of rounds.
//! * **release** only by the holder: someone else's lock (ours was broken with force-unlock
//!   while we ran) is left in place and reported as [`LOCK_NOT_HELD`].
//! * **force-unlock** breaks the lock whoever holds it and says who did.
//! * **stale holders**: [`LockInfo::is_stale`] tells a holder that was a process on this host
//!   and is gone (a killed run); the engine doesn't wait for such a holder, and its error
//!   ([`crate::engine::Error::Locked`]) carries the holder so that a program can say how to
//!   break the lock (the deploy program names its `force-unlock` command line).
//!
//! Every primitive call is retried on retryable errors ([`RetryPolicy::calls`]): the lock is
//! small and its calls are checked (the holder is read back), and giving up on a release leaves
//! the stack locked until someone breaks it.

use crate::provider::{LockError, LockInfo, Provider, ProviderError};
use crate::retry::{self, RetryPolicy};

/// The error code of a release by a run that doesn't hold the lock.
pub const LOCK_NOT_HELD: &str = "LockNotHeld";
/// The error code when the lock kept changing hands while this run tried to take it.
pub const LOCK_CONTENDED: &str = "LockContended";

/// Rounds of create-then-read before giving up on a lock that keeps being taken and released.
const ROUNDS: u32 = 5;

/// What [`Provider::lock_create`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Created {
    /// The lock object was created, holding the given holder.
    Created,
    /// A lock object exists already (whoever holds it).
    Exists,
}

/// Takes `stack`'s lock in `provider` for `info`, or says who holds it. See the [module
/// docs](self).
pub async fn take<P>(provider: &P, stack: &str, info: &LockInfo) -> Result<(), LockError>
where
    P: Provider + ?Sized,
{
    let failed = |error: ProviderError| LockError::Failed {
        stack: stack.to_string(),
        error,
    };
    let policy = RetryPolicy::calls();
    let mut last: Option<ProviderError> = None;
    for round in 1..=ROUNDS {
        match retry::retry(&policy, "creating the stack lock", || {
            provider.lock_create(stack, info)
        })
        .await
        {
            Ok(Created::Created) => return Ok(()),
            Ok(Created::Exists) => {}
            // Still failing after retries: the create may or may not have happened (a lost
            // response), so the holder decides.
            Err(e) if e.is_retryable() => last = Some(e),
            Err(e) => return Err(failed(e)),
        }
        match retry::retry(&policy, "reading the stack lock", || {
            provider.lock_read(stack)
        })
        .await
        .map_err(failed)?
        {
            Some(holder) if holder.holder == info.holder => return Ok(()),
            Some(holder) => {
                return Err(LockError::Held {
                    stack: stack.to_string(),
                    holder,
                })
            }
            // Released between our create and our look: try again.
            None => tokio::time::sleep(policy.delay(round)).await,
        }
    }
    Err(failed(last.unwrap_or_else(|| {
        ProviderError::retryable(
            LOCK_CONTENDED,
            format!("the lock of stack `{stack}` was taken and released repeatedly while this run tried to take it"),
        )
    })))
}

/// Releases `stack`'s lock if `holder` holds it. Someone else's lock is left alone, and the
/// error ([`LOCK_NOT_HELD`]) says whose it is.
pub async fn release<P>(provider: &P, stack: &str, holder: &str) -> Result<(), ProviderError>
where
    P: Provider + ?Sized,
{
    let policy = RetryPolicy::calls();
    match retry::retry(&policy, "reading the stack lock", || {
        provider.lock_read(stack)
    })
    .await?
    {
        None => Ok(()),
        Some(h) if h.holder == holder => {
            retry::retry(&policy, "releasing the stack lock", || {
                provider.lock_delete(stack)
            })
            .await
        }
        Some(h) => Err(ProviderError::fatal(
            LOCK_NOT_HELD,
            format!(
                "the lock of stack `{stack}` is now held by {h}, not by this run ({holder}): it was broken while this run held it; left in place"
            ),
        )),
    }
}

/// Breaks `stack`'s lock whoever holds it; returns who held it.
pub async fn force_unlock<P>(provider: &P, stack: &str) -> Result<Option<LockInfo>, ProviderError>
where
    P: Provider + ?Sized,
{
    let policy = RetryPolicy::calls();
    let holder = retry::retry(&policy, "reading the stack lock", || {
        provider.lock_read(stack)
    })
    .await?;
    if holder.is_some() {
        retry::retry(&policy, "breaking the stack lock", || {
            provider.lock_delete(stack)
        })
        .await?;
    }
    Ok(holder)
}
