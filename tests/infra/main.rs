//! Integration tests of the `infra` facade: plan snapshots and the deploy program.

mod fixture;

mod audit;
mod cli;
mod controller;
mod drift;
mod import;
mod live;
mod markdown;
mod production;
mod progress;
mod roundtrip;
mod roundtrip_live;
mod saved_plan;
mod saved_plan_live;
mod snapshots;
