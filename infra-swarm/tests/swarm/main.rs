//! Tests of the Swarm provider against the real Docker engine in swarm mode, one module per
//! topic. Each test uses its own stack name and removes what it made; without a usable swarm
//! they are skipped loudly (and fail under `CI=true`).

mod common;
mod conformance;
mod lifecycle;
mod nodes;
mod provider;
mod rollback;
mod rotation;
mod watch;
