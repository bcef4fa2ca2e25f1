//! The node agent, as baked into the node image and started by the launch template's user data:
//! `/usr/local/bin/infra-node run`. All of it lives in the `infra-node` crate.

fn main() -> std::process::ExitCode {
    infra_node::run_cli()
}
