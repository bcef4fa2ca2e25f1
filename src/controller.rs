//! The reconciler as a service on the cluster: the deploy program running `watch --controller`
//! in a Swarm service of the stack it converges.
//!
//! A stack declares its controller with [`declare`]: the service records the digest of the
//! whole declaration (itself included, the record aside) in its label [`DECLARATION_LABEL`].
//! Every deploy writes that label like any other declared property, so the label always names
//! the declaration the stack was last deployed from. The controller, started with
//! `watch --controller <service>`, rebuilds the same declaration from the same inputs (the
//! service passes them in its environment) and converges only while the label holds its own
//! digest ([`infra_core::declaration`]): a newer deploy changes the label first-class, under the
//! stack's lock, and an old controller still running then applies nothing until the deploy's
//! update of the controller service replaces it. The image is built by
//! [`crate::artifacts::controller_image`].

use infra_core::declaration::{self, Marker};
use infra_core::dsl::{Address, Ref};
use infra_core::Stack;
use infra_swarm::SwarmService;

/// The controller service's label that records the declaration's digest (labels starting with
/// `infra.` are reserved for ownership, and a read leaves them out).
pub const DECLARATION_LABEL: &str = "infra-declaration";

/// Adds the controller service to `stack`, last (the digest covers everything declared before
/// it): `service(digest)` builds the service with its label [`DECLARATION_LABEL`] set to
/// `digest`. It is called twice: once with an empty digest to compute the digest of the whole
/// declaration, once with that digest.
///
/// ```no_run
/// use infra::prelude::*;
/// let mut stack = Stack::new("demo");
/// // … the stack's resources …
/// infra::controller::declare(&mut stack, |digest| {
///     SwarmService::new("controller")
///         .image("registry.example.com/infra-controller:1.0.0")
///         .args(["watch", "--controller", "controller"])
///         .constraint("node.role == manager")
///         .label(infra::controller::DECLARATION_LABEL, digest)
/// });
/// ```
pub fn declare(stack: &mut Stack, service: impl Fn(&str) -> SwarmService) -> Ref<SwarmService> {
    let mut probe = stack.clone();
    probe.add(service(""));
    let digest = declaration::digest(&probe);
    stack.add(service(&digest))
}

/// The marker of the controller service named `service`: its [`DECLARATION_LABEL`].
pub fn marker(service: &str) -> Marker {
    Marker::new(
        Address::new("swarm_service", service),
        &["labels", DECLARATION_LABEL],
    )
}
