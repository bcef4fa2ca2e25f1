//! The typed DSL: a [`Stack`] collects resources, [`Stack::add`] returns a typed [`Ref<T>`], and
//! builders take typed references, so a reference of the wrong kind does not compile.
//!
//! ```
//! use infra_core::dsl::{KindSchema, Ref, Resource, ResourceSpec, Stack};
//!
//! // A kind is a typed builder over a `ResourceSpec` plus a static schema.
//! struct Network(ResourceSpec);
//! static NETWORK: KindSchema = KindSchema::new("demo_network", "demo");
//! impl Resource for Network {
//!     const SCHEMA: &'static KindSchema = &NETWORK;
//!     fn spec(&self) -> &ResourceSpec { &self.0 }
//!     fn spec_mut(&mut self) -> &mut ResourceSpec { &mut self.0 }
//!     fn into_spec(self) -> ResourceSpec { self.0 }
//! }
//! struct Host(ResourceSpec);
//! static HOST: KindSchema = KindSchema::new("demo_host", "demo");
//! impl Resource for Host {
//!     const SCHEMA: &'static KindSchema = &HOST;
//!     fn spec(&self) -> &ResourceSpec { &self.0 }
//!     fn spec_mut(&mut self) -> &mut ResourceSpec { &mut self.0 }
//!     fn into_spec(self) -> ResourceSpec { self.0 }
//! }
//! impl Host {
//!     fn new(name: &str) -> Self { Host(ResourceSpec::new(&HOST, name)) }
//!     // Only a reference to a Network is accepted here.
//!     fn network(mut self, net: &Ref<Network>) -> Self {
//!         self.0.set("network_id", net.id());
//!         self
//!     }
//! }
//!
//! let mut stack = Stack::new("demo");
//! let net = stack.add(Network(ResourceSpec::new(&NETWORK, "main")));
//! let host = stack.add(Host::new("web").network(&net));
//! assert_eq!(host.address().to_string(), "demo_host.web");
//! ```
//!
//! Passing a reference of another kind is a compile error (`Subnet::vpc` takes a `&Ref<Vpc>`, not
//! a `&Ref<Subnet>`); see the `compile_fail` example on [`Ref`].
//!
//! Outputs carry their kind too: `vpc.id()` is an `Output<Id<Vpc>>`, and a builder that wants an
//! image id takes a literal or the id of an image, never the id of a VPC (see [`output`]).

mod address;
pub mod output;
mod resource;
mod schema;
mod stack;

pub use address::Address;
pub use output::{Arn, Id, Input, Name, Output};
pub use resource::{Resource, ResourceOptions, ResourceSpec};
pub use schema::{KindSchema, MoveSupport};
pub use stack::{Adoption, Move, Ref, Stack};
