//! Issue 7, reliability and safety: bad input, a malformed environment, secrets, and Swarm
//! faults.
//!
//! * `bad_flags`: bad numeric flags are one line naming the flag and its range, exit 1, and
//!   nothing contacted; other malformed arguments exit 1 too.
//! * `bad_input`: malformed stacks are refused with every problem at once (address and field)
//!   and zero API calls, through the library and through the deploy program.
//! * `environment`: no credentials, no region, an endpoint that refuses or never answers, Docker
//!   unreachable or not a swarm manager: one paragraph saying what to do, exit 1, no panic.
//! * `secrets`: plan, apply, rotate, destroy and a failing apply with secrets, on the sandbox and
//!   live, logs at trace in both formats: no secret value anywhere, plain or base64.
//! * `swarm_faults`: a Swarm stack applied through a fault-injecting proxy in front of the
//!   Docker socket converges, or stops with a clear report and converges on the next run.
//!
//! The live parts need `.ci/test-env`'s endpoints (moto, swarm mode, the test image); without
//! them they print a SKIPPED line and pass, except when the run requires them
//! (`INFRA_REQUIRE_ENDPOINTS=1`, as `.ci/test` sets), where they fail.

mod bad_flags;
mod bad_input;
mod docker_proxy;
mod environment;
mod secrets;
mod support;
mod swarm_faults;
