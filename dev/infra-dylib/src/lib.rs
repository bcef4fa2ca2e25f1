//! The `infra` facade as a Rust `dylib`, for development builds: a deploy program that uses
//! this crate in place of `infra` links against `libinfra_dylib.so` (the facade with the AWS
//! SDK, bollard and everything else it depends on) instead of linking all of that statically
//! into its executable on every build. See the README, "A fast edit -> plan loop", and
//! `examples/production-dylib.rs`.
#![allow(unused_imports)]

pub use infra::*;
