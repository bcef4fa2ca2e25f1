//! The production example (`examples/production/`) for the edit -> plan loop: the same
//! `stack.rs`, linked against the facade as a dynamic library (`dev/infra-dylib`) instead of
//! statically. An edit to the stack then recompiles this small crate and links a small
//! executable against `libinfra_dylib.so`, instead of linking the AWS SDK, bollard and the rest
//! into a debug binary of over 100 MB each time (see the README, "A fast edit -> plan loop").
//!
//! ```text
//! cargo run --example production-dylib                         # plan on the sandbox
//! cargo run --example production-dylib -- --env production plan
//! ```
//!
//! For development only: the executable needs `libinfra_dylib.so` and the toolchain's
//! `libstd-*.so` at run time, which `cargo run` puts on its library path. The program to ship
//! is `cargo run --example production` (or `--release`), a self-contained binary.

// `infra` in this crate, and in `stack.rs`, is the dylib: the facade's `infra` rlib (which
// cargo offers every example of this package) is then never loaded, so nothing is linked twice.
extern crate infra_dylib as infra;

#[path = "production/stack.rs"]
mod stack;

fn main() -> std::process::ExitCode {
    infra::cli::run(stack::stack)
}
