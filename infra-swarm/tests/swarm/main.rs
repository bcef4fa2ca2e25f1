//! Tests of the Swarm provider against the real Docker engine in swarm mode, one module per
//! topic. Each test uses its own stack name and removes what it made; without a usable swarm
//! they print a SKIPPED line and pass (and fail when the run requires the endpoints:
//! `INFRA_REQUIRE_ENDPOINTS=1`, as `.ci/test` sets).

mod common;
mod conformance;
mod import;
mod lifecycle;
mod mounts;
mod moves;
mod names;
mod nodes;
mod provider;
mod rollback;
mod rotation;
mod watch;
