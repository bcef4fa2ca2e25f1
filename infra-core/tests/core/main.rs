//! The core's integration tests: one binary, a module per topic.

mod kinds;

mod graph;
mod plan;
mod policy;
mod reconcile;
mod sandbox;
