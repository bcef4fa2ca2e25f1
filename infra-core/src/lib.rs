//! `infra-core`: the provider-agnostic heart of `infra`.
//!
//! Data flows one way:
//!
//! ```text
//! dsl (typed builders, Stack, Ref<T>)  →  graph (validated DAG)  →  plan (desired vs observed)
//!   →  render (text, JSON, DOT, Mermaid)  →  reconcile (ordered, concurrent apply)  →  provider
//! ```
//!
//! The core knows no AWS or Docker types: kinds are declared by provider crates (`infra-aws`,
//! `infra-swarm`) through [`dsl::KindSchema`] and served by a [`provider::Provider`]. The
//! [`sandbox`] is a generic in-process provider persisted to a file; the [`conformance`] suite is
//! what every provider must pass. [`engine`] ties it together for tooling.

pub mod audit;
pub mod conformance;
pub mod declaration;
pub mod dsl;
pub mod engine;
pub mod graph;
mod hash;
pub mod import;
pub mod lock;
mod parallel;
pub mod plan;
pub mod policy;
pub mod provider;
pub mod reconcile;
pub mod registry;
pub mod render;
pub mod retry;
pub mod sandbox;
pub mod validate;
pub mod value;
pub mod watch;

pub use dsl::{Address, Arn, Id, Input, Name, Output, Ref, Resource, ResourceSpec, Stack};
pub use value::Value;
