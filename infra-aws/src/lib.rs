//! `infra-aws`: AWS kinds for `infra` and the provider that converges them on the real AWS APIs.
//!
//! Kinds are typed builders (`Vpc`, `Subnet`, `SecurityGroup`, `LaunchTemplate`, `Asg`,
//! `IamPolicy`, …). References between them are typed: `Subnet::vpc` takes a `&Ref<Vpc>`, and
//! outputs carry their kind: `LaunchTemplate::image` takes a literal AMI id or an [`Ami`]
//! lookup's `id()`, never `vpc.id()`; `LaunchTemplate::instance_profile_arn` takes an instance
//! profile's `arn()`, not a role's.
//! `AwsProvider` (feature `live`, on by default) converges them on the AWS APIs (see
//! `provider` for the ownership model, batched reads and idempotency). Without `live` the crate
//! is the kinds and the policy rules, free of the AWS SDK: what a plan on the sandbox needs.
//!
//! ```
//! use infra_aws::{Subnet, Vpc};
//! use infra_core::Stack;
//!
//! let mut stack = Stack::new("demo");
//! let vpc = stack.add(Vpc::new("main").cidr("10.0.0.0/16"));
//! stack.add(Subnet::new("public-a").vpc(&vpc).cidr("10.0.1.0/24").az("us-east-1a"));
//! ```
//!
//! Passing a reference of the wrong kind does not compile:
//!
//! ```compile_fail,E0308
//! use infra_aws::{Subnet, Vpc};
//! use infra_core::Stack;
//!
//! let mut stack = Stack::new("demo");
//! let a = stack.add(Subnet::new("a").cidr("10.0.1.0/24").az("us-east-1a"));
//! // expected `&Ref<Vpc>`, found `&Ref<Subnet>`
//! stack.add(Subnet::new("b").vpc(&a));
//! ```

pub mod kinds;
pub mod policy;
#[cfg(feature = "live")]
pub mod provider;

pub use kinds::*;
#[cfg(feature = "live")]
pub use provider::{AwsProvider, ConfigError};

/// The provider name every AWS kind declares.
pub const PROVIDER: &str = "aws";
