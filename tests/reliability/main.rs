//! Reliability of the deploy: whatever fails, nothing is lost, nothing is duplicated, nothing
//! foreign is touched, and the next run converges (issue 7, items 1–3).
//!
//! * `faults`: the production stack's AWS part applied through a fault-injecting proxy in front
//!   of moto, many seeded iterations.
//! * `interrupted`: the deploy program killed with SIGKILL mid-apply; the stale lock is named,
//!   broken with `force-unlock`, and the re-run converges without duplicates or orphans.
//! * `concurrent`: two applies of one stack never interleave; two stacks don't block each other.
//!
//! Needs `eval "$(.ci/test-env)"` (moto, swarm mode, the test image). The heavy tests start moto
//! servers of their own (`.ci/setup-moto` on a free port) so that their invariants see only what
//! they did. Without the environment they print a SKIPPED line and pass, except when the run
//! requires it (`INFRA_REQUIRE_ENDPOINTS=1`, as `.ci/test` sets), where they fail.

#[allow(dead_code)]
#[path = "../../examples/production/stack.rs"]
mod example;
use infra_test_support::proxy;

mod concurrent;
mod env;
mod faults;
mod interrupted;
mod inventory;
