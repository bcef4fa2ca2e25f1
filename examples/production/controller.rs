//! The stack's controller: this deploy program running `watch` as a Swarm service on the
//! managers, so that drift is repaired without a laptop or a CI runner (see `infra::controller`
//! and the README's "The controller").
//!
//! Its image is an input (`INFRA_CONTROLLER_IMAGE`, built by `cargo run --example
//! build-controller`), so plans stay deterministic. Without it, `local` and `lab` run a stand-in
//! on the test image (like their other services) and the other environments name
//! [`PRODUCTION_IMAGE`]. The service passes the controller every input this program builds the
//! declaration from (environment, stack name, images, the certificate ARN, the Elasticsearch
//! password as a Swarm secret file), so that it rebuilds the very declaration it was deployed
//! with; it converges only while the declaration recorded on it is that one.

use std::time::Duration;

use infra::controller::DECLARATION_LABEL;
use infra::prelude::*;
use infra::swarm::{Mount, SwarmSecret};

/// The variable naming the controller's image (an image ID on one engine, a registry
/// reference on AWS).
pub(crate) const IMAGE_VAR: &str = "INFRA_CONTROLLER_IMAGE";
/// The service's name (`<stack>_controller` in Swarm).
pub(crate) const SERVICE: &str = "controller";
/// The image `staging` and `production` name when `INFRA_CONTROLLER_IMAGE` is not set: the
/// build pushed under this crate's version.
pub(crate) const PRODUCTION_IMAGE: &str = concat!(
    "registry.example.com/infra-controller:",
    env!("CARGO_PKG_VERSION")
);
/// Where a file holding the Elasticsearch password may be named instead of the password itself
/// (the controller reads its Swarm secret).
const ES_PASSWORD_FILE_VAR: &str = "ES_PASSWORD_FILE";

/// What decides the controller's service in an environment.
pub(crate) struct Controller<'a> {
    /// `--env`.
    pub(crate) env: &'a str,
    /// The locally built test image (`local`, `lab`): the stand-in's image and an input of the
    /// declaration the controller must get too.
    pub(crate) local_image: Option<&'a str>,
    /// Seconds between runs.
    pub(crate) interval: u64,
}

/// The controller's image: `INFRA_CONTROLLER_IMAGE`, else `None` locally (a stand-in runs) and
/// [`PRODUCTION_IMAGE`] elsewhere.
fn image(c: &Controller<'_>) -> Option<String> {
    std::env::var(IMAGE_VAR)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            c.local_image
                .is_none()
                .then(|| PRODUCTION_IMAGE.to_string())
        })
}

/// Sets `ES_PASSWORD` from the file `ES_PASSWORD_FILE` names when it is not set: the
/// controller gets the password as a Swarm secret file. Call before building the stack.
pub(crate) fn inputs_from_files() {
    if std::env::var_os("ES_PASSWORD").is_some() {
        return;
    }
    if let Some(path) = std::env::var_os(ES_PASSWORD_FILE_VAR) {
        match std::fs::read_to_string(&path) {
            // edition 2021: setting a variable is safe; this runs before any thread reads it
            Ok(v) => std::env::set_var("ES_PASSWORD", v.trim_end_matches('\n')),
            Err(e) => eprintln!(
                "infra: {ES_PASSWORD_FILE_VAR}={}: {e}",
                std::path::Path::new(&path).display()
            ),
        }
    }
}

/// Declares the controller, last: its label records the digest of everything declared.
pub(crate) fn declare(s: &mut Stack, c: &Controller<'_>) {
    let stack = s.name().to_string();
    let image = image(c);
    let interval = c.interval.to_string();
    let build = |digest: &str| {
        let mut svc = SwarmService::new(SERVICE)
            .replicas(1)
            // a manager's engine is the Swarm API; the stack lock keeps it the single writer
            .constraint("node.role == manager")
            .mount(Mount::bind("/var/run/docker.sock", "/var/run/docker.sock"))
            // restarted after any failure (a run that gave up exits 1), without limit
            .restart_policy(
                RestartCondition::OnFailure,
                Duration::from_secs(5),
                0,
                Duration::ZERO,
            )
            // the old controller stops (after its run under way) before the new one starts; a
            // new one that fails pauses the update rather than rolling the record back
            .update_policy(
                UpdatePolicy::new()
                    .order(UpdateOrder::StopFirst)
                    .failure_action(FailureAction::Pause),
            )
            .stop_grace_period(Duration::from_secs(120))
            .limits(0.5, 512)
            .reservations(0.1, 64)
            .label(DECLARATION_LABEL, digest)
            // in the task's spec too: a new declaration replaces the controller's task even
            // when its image reference stays the same (a reused tag)
            .env("INFRA_DECLARATION", digest);
        svc = match &image {
            Some(image) => svc
                .image(image.as_str())
                .args([
                    "--only",
                    "swarm",
                    "watch",
                    "--interval",
                    &interval,
                    "--give-up-after",
                    "5",
                    "--controller",
                    SERVICE,
                ])
                // the inputs of the declaration (see the module docs)
                .env("INFRA_TARGET", "live")
                .env("INFRA_ENV", c.env)
                .env("INFRA_STACK", stack.as_str())
                .env(IMAGE_VAR, image.as_str())
                .env("INFRA_LOG", "info")
                .env("INFRA_LOG_FORMAT", "json")
                .env("INFRA_AUDIT_LOG", "/dev/stderr")
                // a deploy holding the lock is waited for, not fought
                .env("INFRA_LOCK_TIMEOUT", "60"),
            // the stand-in: the test image, idle
            None => svc
                .image(c.local_image.unwrap_or_default())
                .args(["sleep", "1000000"])
                .init(true)
                .stop_grace_period(Duration::from_secs(2)),
        };
        if let Some(local) = c.local_image {
            svc = svc.env("INFRA_TEST_IMAGE", local);
        } else {
            svc = svc
                .secret(&Ref::<SwarmSecret>::named("es-password"), "es_password")
                .env(ES_PASSWORD_FILE_VAR, "/run/secrets/es_password");
            if let Ok(arn) = std::env::var("CERTIFICATE_ARN") {
                svc = svc.env("CERTIFICATE_ARN", arn.as_str());
            }
        }
        svc
    };
    infra::controller::declare(s, build);
}
