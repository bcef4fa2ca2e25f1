//! Builds the controller's image: the deploy program (`examples/production`) as a static
//! executable in an image `FROM scratch`, on the Docker engine of `DOCKER_HOST` (or the local
//! socket), and prints its ID:
//!
//! ```text
//! cargo run --example build-controller
//! export INFRA_CONTROLLER_IMAGE=$(cargo run -q --example build-controller)
//! ```
//!
//! The production stack runs it as its `controller` service (`INFRA_CONTROLLER_IMAGE`). On
//! this machine's single engine the image is referenced by ID; for AWS, push it to a registry
//! the nodes pull from (`docker tag <id> <registry>/infra-controller:<version>`, `docker push`)
//! and set `INFRA_CONTROLLER_IMAGE` to that name. See `infra::artifacts::controller_image`.

use std::process::ExitCode;
use std::time::Instant;

use infra::artifacts;

#[tokio::main]
async fn main() -> ExitCode {
    let started = Instant::now();
    eprintln!(
        "building the deploy program: {}",
        artifacts::controller_build_command()
    );
    match artifacts::controller_image().await {
        Ok(id) => {
            eprintln!(
                "controller image {id} (tagged {}), {:.1} s",
                artifacts::CONTROLLER_TAG,
                started.elapsed().as_secs_f64()
            );
            println!("{id}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
