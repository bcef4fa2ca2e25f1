//! The core's integration tests: one binary, a module per topic.

mod kinds;

mod graph;
mod plan;
mod reconcile;
mod sandbox;
