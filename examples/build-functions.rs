//! Builds the Lambda functions' artifacts for the `provided.al2023` runtime:
//!
//! ```text
//! cargo run --example build-functions            # every function
//! cargo run --example build-functions -- node-events
//! ```
//!
//! Each lands in `target/lambda/<function>/bootstrap.zip` (one executable entry, `bootstrap`:
//! a static x86-64 binary, see `infra::artifacts`). The production stack gets the same zips from
//! `infra::artifacts::lambda_zip`.

use std::process::ExitCode;
use std::time::Instant;

use infra::artifacts;

fn main() -> ExitCode {
    let asked: Vec<String> = std::env::args().skip(1).collect();
    let functions: Vec<&str> = if asked.is_empty() {
        artifacts::FUNCTIONS.to_vec()
    } else {
        asked.iter().map(String::as_str).collect()
    };
    for bin in functions {
        let started = Instant::now();
        eprintln!("building {bin}: {}", artifacts::build_command(bin));
        match artifacts::lambda_zip(bin) {
            Ok(zip) => {
                let size = std::fs::metadata(&zip).map(|m| m.len()).unwrap_or(0);
                println!(
                    "{bin}: {} ({:.1} MiB, {:.1} s)",
                    zip.display(),
                    size as f64 / (1024.0 * 1024.0),
                    started.elapsed().as_secs_f64()
                );
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
