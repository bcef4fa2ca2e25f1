//! The core's integration tests: one binary, a module per topic.

mod kinds;

mod adopt;
mod drift;
mod fuzz;
mod graph;
mod import;
mod lock;
mod moves;
mod plan;
mod policy;
mod reconcile;
mod sandbox;
mod saved_plan;
mod watch;
