//! Integration tests of the `infra` facade: plan snapshots and the deploy program.

mod fixture;

mod audit;
mod cli;
mod controller;
mod live;
mod markdown;
mod production;
mod progress;
mod snapshots;
