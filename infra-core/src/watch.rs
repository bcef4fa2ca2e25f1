//! The reconciler as a loop: plan, apply when the plan has changes, wait, and again — what the
//! deploy program's `watch` runs, and what a controller living on the cluster runs.
//!
//! Each run is judged: a run that finds nothing to do or applies every change succeeds; a run
//! whose read, plan or apply fails, or whose plan has errors (it is not applied), fails. After a
//! failure the wait grows (the interval doubled per consecutive failure, capped), so a broken
//! endpoint is not hammered; after [`WatchOptions::give_up_after`] consecutive failures the loop
//! ends with [`WatchEnd::GaveUp`], so that a supervisor (a shell, Swarm's restart policy) sees the
//! failure instead of a loop that looks alive and repairs nothing. Waits are jittered so that
//! many watchers started together don't call the providers in step.
//!
//! A controller (a watch loop deployed with the stack it converges) sets
//! [`WatchOptions::marker`]: a run whose objects were deployed from another declaration applies
//! nothing ([`RunResult::NotOwnDeclaration`]), so an old controller never reverts a newer deploy
//! (see [`crate::declaration`]).

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use crate::declaration::{Marker, NotOwnDeclaration};
use crate::dsl::Stack;
use crate::engine::{Engine, Error, Planned};
use crate::plan::PlanOptions;
use crate::reconcile::{ApplyObserver, ApplyReport, NoObserver};

/// How the loop runs.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchOptions {
    /// The wait between two runs that succeeded.
    pub interval: Duration,
    /// Each wait is drawn uniformly from `wait × (1 ± jitter)`; `0.0..=0.5`.
    pub jitter: f64,
    /// The longest wait after failures (the interval doubles per consecutive failure up to it;
    /// never less than the interval).
    pub max_backoff: Duration,
    /// Stop after this many runs (`None`: until cancelled or given up).
    pub runs: Option<u64>,
    /// End with [`WatchEnd::GaveUp`] after this many consecutive failed runs (`None`: never).
    pub give_up_after: Option<u32>,
    /// Converge only while this marker holds this declaration's digest (a controller; see
    /// [`crate::declaration`]). `None`: converge whatever the objects were deployed from.
    pub marker: Option<Marker>,
}

impl Default for WatchOptions {
    /// Every 30 s, ±10 %, backing off up to 5 min, giving up after 5 failed runs in a row.
    fn default() -> Self {
        WatchOptions {
            interval: Duration::from_secs(30),
            jitter: 0.1,
            max_backoff: Duration::from_secs(300),
            runs: None,
            give_up_after: Some(5),
            marker: None,
        }
    }
}

impl WatchOptions {
    /// Every `interval`, with the defaults otherwise.
    pub fn every(interval: Duration) -> Self {
        WatchOptions {
            interval,
            max_backoff: WatchOptions::default().max_backoff.max(interval),
            ..WatchOptions::default()
        }
    }

    /// The wait before the next run after `failures` consecutive failed runs (0 after a success),
    /// before jitter: the interval, doubled per failure, capped at `max_backoff`.
    pub fn base_wait(&self, failures: u32) -> Duration {
        let cap = self.max_backoff.max(self.interval);
        self.interval
            .saturating_mul(1u32 << failures.min(20))
            .min(cap)
    }

    /// [`WatchOptions::base_wait`] with the jitter applied.
    pub fn wait(&self, failures: u32) -> Duration {
        let base = self.base_wait(failures);
        let jitter = self.jitter.clamp(0.0, 0.5);
        if jitter == 0.0 || base.is_zero() {
            return base;
        }
        base.mul_f64(rand::rng().random_range((1.0 - jitter)..=(1.0 + jitter)))
    }
}

/// What one run did.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunResult {
    /// The plan was empty: nothing drifted, nothing to do.
    NoChanges,
    /// The plan had changes and they were applied (see the report for each operation).
    Applied(ApplyReport),
    /// The plan has errors (e.g. a protected resource would be deleted): not applied.
    PlanHasErrors(usize),
    /// The stack's objects were deployed from another declaration than this loop's (its
    /// [`WatchOptions::marker`] holds another digest, or is gone): nothing was applied. Not a
    /// failure: it is what an old controller sees while a newer deploy replaces it.
    NotOwnDeclaration(NotOwnDeclaration),
    /// Reading or planning failed: nothing was changed.
    PlanFailed(Error),
    /// The apply could not start or finish (the lock, a stale plan).
    ApplyFailed(Error),
}

impl RunResult {
    /// Whether the run counts as a failure.
    pub fn is_failure(&self) -> bool {
        match self {
            RunResult::NoChanges | RunResult::NotOwnDeclaration(_) => false,
            RunResult::Applied(report) => !report.is_success(),
            RunResult::PlanHasErrors(_) | RunResult::PlanFailed(_) | RunResult::ApplyFailed(_) => {
                true
            }
        }
    }
}

/// One run, as the loop reports it.
#[derive(Debug)]
pub struct RunReport {
    /// The run's number, from 1.
    pub run: u64,
    /// What it did.
    pub result: RunResult,
    /// Failed runs in a row, this one included (0 when it succeeded).
    pub consecutive_failures: u32,
    /// The wait before the next run (`None` when the loop ends after this run).
    pub next_in: Option<Duration>,
}

/// How the loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchEnd {
    /// The requested number of runs was made; `last_failed` says whether the last one failed.
    Done {
        /// Runs made.
        runs: u64,
        /// Whether the last run failed.
        last_failed: bool,
    },
    /// The cancellation future completed (between runs, or during a wait).
    Cancelled {
        /// Runs made.
        runs: u64,
    },
    /// [`WatchOptions::give_up_after`] runs failed in a row.
    GaveUp {
        /// Runs made.
        runs: u64,
        /// Failed runs in a row.
        consecutive_failures: u32,
    },
}

/// What the loop tells its user.
pub trait WatchObserver: Send + Sync {
    /// A plan with changes (or errors) is about to be applied (or refused).
    fn planned(&self, run: u64, planned: &Planned) {
        let _ = (run, planned);
    }
    /// The observer of run `run`'s apply.
    fn apply_observer(&self, run: u64) -> Box<dyn ApplyObserver + '_> {
        let _ = run;
        Box::new(NoObserver)
    }
    /// A run ended.
    fn run_ended(&self, report: RunReport) {
        let _ = report;
    }
}

/// A [`WatchObserver`] that does nothing.
pub struct Quiet;
impl WatchObserver for Quiet {}

impl Engine {
    /// Plans `stack` and applies the changes, run after run, as [`WatchOptions`] say, until the
    /// runs are made, `cancel` completes, or too many runs fail in a row (see the module docs).
    /// Cancellation is checked between runs and during waits; a run under way is finished
    /// first, so the stack's lock is never abandoned mid-apply.
    pub async fn watch(
        &self,
        stack: &Stack,
        plan_options: &PlanOptions,
        options: &WatchOptions,
        observer: &dyn WatchObserver,
        cancel: impl Future<Output = ()>,
    ) -> WatchEnd {
        let mut cancel = std::pin::pin!(cancel);
        let mut failures = 0u32;
        let mut run = 0u64;
        loop {
            run += 1;
            let result = self
                .run_once(stack, plan_options, options.marker.as_ref(), run, observer)
                .await;
            failures = if result.is_failure() { failures + 1 } else { 0 };
            let gave_up = options.give_up_after.is_some_and(|n| failures >= n.max(1));
            let done = options.runs.is_some_and(|n| run >= n);
            let next_in = (!gave_up && !done).then(|| options.wait(failures));
            let last_failed = result.is_failure();
            observer.run_ended(RunReport {
                run,
                result,
                consecutive_failures: failures,
                next_in,
            });
            if gave_up {
                return WatchEnd::GaveUp {
                    runs: run,
                    consecutive_failures: failures,
                };
            }
            let Some(wait) = next_in else {
                return WatchEnd::Done {
                    runs: run,
                    last_failed,
                };
            };
            tokio::select! {
                biased;
                _ = &mut cancel => return WatchEnd::Cancelled { runs: run },
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn run_once(
        &self,
        stack: &Stack,
        plan_options: &PlanOptions,
        marker: Option<&Marker>,
        run: u64,
        observer: &dyn WatchObserver,
    ) -> RunResult {
        let planned = match self.plan(stack, plan_options).await {
            Ok(planned) => planned,
            Err(e) => return RunResult::PlanFailed(e),
        };
        // Checked on what this run read; `apply` re-reads under the lock and refuses a plan
        // whose objects changed since, so a deploy landing in between is not reverted either.
        if let Some(Err(other)) = marker.map(|m| m.check(&planned)) {
            return RunResult::NotOwnDeclaration(other);
        }
        if planned.plan.is_empty() {
            return RunResult::NoChanges;
        }
        observer.planned(run, &planned);
        let blockers = planned.plan.blockers().len();
        if blockers > 0 {
            return RunResult::PlanHasErrors(blockers);
        }
        let apply_observer = observer.apply_observer(run);
        match self.apply(&planned, apply_observer.as_ref()).await {
            Ok(report) => RunResult::Applied(report),
            Err(e) => RunResult::ApplyFailed(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_per_failure_up_to_the_cap_and_reset_after_a_success() {
        let o = WatchOptions {
            interval: Duration::from_secs(10),
            jitter: 0.0,
            max_backoff: Duration::from_secs(60),
            ..WatchOptions::default()
        };
        let waits: Vec<u64> = (0..5).map(|f| o.base_wait(f).as_secs()).collect();
        assert_eq!(waits, vec![10, 20, 40, 60, 60]);
        assert_eq!(o.wait(0), Duration::from_secs(10), "no jitter: exact");
        // a cap below the interval never shortens the interval
        let short_cap = WatchOptions {
            max_backoff: Duration::from_secs(1),
            ..o.clone()
        };
        assert_eq!(short_cap.base_wait(3), Duration::from_secs(10));
        // no overflow after many failures
        assert_eq!(o.base_wait(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let o = WatchOptions {
            interval: Duration::from_secs(10),
            jitter: 0.1,
            ..WatchOptions::default()
        };
        let waits: Vec<Duration> = (0..200).map(|_| o.wait(0)).collect();
        assert!(waits
            .iter()
            .all(|w| *w >= Duration::from_secs(9) && *w <= Duration::from_secs(11)));
        assert!(
            waits.iter().any(|w| *w != waits[0]),
            "the waits are spread, not all equal"
        );
    }
}
