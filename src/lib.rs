//! `infra`: typed infrastructure as Rust code for AWS and Docker Swarm.
//!
//! Write the stack with typed builders, compile it into a resource graph, see a deterministic
//! plan, and let the reconciler converge the real systems to it. This facade re-exports the
//! crates and holds the deploy program (`infra::cli`).
//!
//! Features: `live` (default) is the live providers (the AWS SDK, bollard), the deploy program
//! (`cli`), the build of this workspace's Lambda functions (`artifacts`) and the `infra-node`
//! binary; `testing` is the `testing` module, the helpers for users' tests. A crate that only
//! plans its stacks on the sandbox in its tests depends on
//! `infra = { …, default-features = false, features = ["testing"] }` and builds neither the AWS
//! SDK nor bollard. The kinds, the policy rules, [`sandbox`] and [`default_rules`] are always
//! there.
//!
//! ```
//! use infra::prelude::*;
//!
//! let mut stack = Stack::new("demo");
//! let vpc = stack.add(Vpc::new("main").cidr("10.0.0.0/16"));
//! stack.add(Subnet::new("public-a").vpc(&vpc).cidr("10.0.1.0/24").az("us-east-1a"));
//!
//! // Plan against a throw-away sandbox and inspect the JSON plan, as company tooling would.
//! let dir = std::env::temp_dir().join(format!("infra-doc-{}", std::process::id()));
//! let rt = tokio::runtime::Runtime::new().unwrap();
//! let planned = rt.block_on(async {
//!     let engine = Engine::new().with_provider(SandboxProvider::open(&dir, "aws").unwrap());
//!     engine.plan(&stack, &PlanOptions::default()).await
//! }).unwrap();
//! let json: serde_json::Value = serde_json::from_str(&infra::core::render::plan_json(&planned.plan)).unwrap();
//! assert_eq!(json["summary"]["add"], 2);
//! assert_eq!(json["changes"][0]["address"], "aws_vpc.main");
//! assert_eq!(json["changes"][1]["action"], "create");
//! # std::fs::remove_dir_all(&dir).ok();
//! ```

#[cfg(feature = "live")]
pub mod artifacts;
#[cfg(feature = "live")]
pub mod cli;
pub mod controller;
#[cfg(feature = "live")]
mod live;
#[cfg(feature = "testing")]
pub mod testing;

pub use infra_aws as aws;
pub use infra_core as core;
pub use infra_swarm as swarm;

/// The built-in policy rules (AWS and Swarm) that the deploy program and `testing` run.
pub fn default_rules() -> Vec<std::sync::Arc<dyn infra_core::policy::PolicyRule>> {
    let mut rules = infra_aws::policy::rules();
    rules.extend(infra_swarm::policy::rules());
    rules
}

/// A sandbox standing in for provider `name` (`aws` or `swarm`) under `dir`: it serves exactly
/// the kinds the real provider serves, so a stack that validates on the sandbox validates live.
pub fn sandbox(
    dir: impl AsRef<std::path::Path>,
    name: &str,
) -> std::io::Result<infra_core::sandbox::SandboxProvider> {
    let sandbox = infra_core::sandbox::SandboxProvider::open(dir, name)?;
    Ok(match name {
        infra_aws::PROVIDER => sandbox.serving(infra_aws::kinds::schemas()),
        infra_swarm::PROVIDER => sandbox.serving(infra_swarm::kinds::schemas()),
        _ => sandbox,
    })
}

/// The names most stacks need.
pub mod prelude {
    pub use infra_aws::{
        Asg, Effect, IamPolicy, LaunchTemplate, LaunchTemplateOutputs, PolicyDocument, Rule,
        SecurityGroup, Statement, Subnet, Vpc,
    };
    pub use infra_core::dsl::{Input, Output, Ref, Resource, Stack};
    pub use infra_core::engine::{Engine, Planned};
    pub use infra_core::plan::{Action, Plan, PlanOptions};
    pub use infra_core::sandbox::SandboxProvider;
    pub use infra_swarm::{
        FailureAction, RestartCondition, SwarmService, UpdateOrder, UpdatePolicy,
    };
}

/// The README's Rust blocks, compiled and run as doctests (`tests/readme/` runs its
/// `#[test]` example, whose test bodies a doctest would not compile).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
