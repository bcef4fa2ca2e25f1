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
//!
//! For development on this machine, `--from PATH` packs a deploy program already built (say
//! `target/debug/examples/production`) with the shared libraries it links instead of building
//! the static one: seconds instead of a second build of the dependency tree, but only for
//! nodes with this machine's libraries:
//!
//! ```text
//! cargo build --example production
//! cargo run --example build-controller -- --from target/debug/examples/production
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use infra::artifacts::{self, ControllerProgram};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let program = match args.as_slice() {
        [] => ControllerProgram::Static,
        [flag, path] if flag == "--from" => ControllerProgram::Prebuilt(PathBuf::from(path)),
        _ => {
            eprintln!("usage: build-controller [--from PATH-OF-A-BUILT-DEPLOY-PROGRAM]");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    match &program {
        ControllerProgram::Static => eprintln!(
            "building the deploy program: {}",
            artifacts::controller_build_command()
        ),
        ControllerProgram::Prebuilt(path) => eprintln!(
            "packing {} with its shared libraries (for this machine's nodes only)",
            path.display()
        ),
    }
    match artifacts::controller_image_of(program).await {
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
