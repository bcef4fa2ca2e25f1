//! Integration tests of the `infra` facade: plan snapshots and the deploy program.

mod fixture;
#[path = "../support/node_image.rs"]
mod node_image;

mod cli;
mod live;
mod production;
mod progress;
mod snapshots;
