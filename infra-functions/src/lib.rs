//! infra's AWS Lambda functions, for the `provided.al2023` runtime (a `bootstrap` executable):
//!
//! - `analytics-ingest` ([`analytics`]): behind an API Gateway HTTP API, validates a JSON
//!   analytics event and indexes it into the central Elasticsearch store (`ES_URL` or `ES_HOST`);
//! - `node-events` ([`node_events`]): triggered by EventBridge with the Auto Scaling groups'
//!   instance events, records each launch and termination in the same store.
//!
//! The handlers' logic is plain functions over the `aws_lambda_events` types (unit-tested with
//! AWS's payload samples); the binaries in `src/bin/` only wire them to `lambda_runtime`. The
//! artifact (`target/lambda/<bin>/bootstrap.zip`) is built by `cargo run --example
//! build-functions` in the workspace root (`infra::artifacts`).

pub mod analytics;
pub mod es;
pub mod node_events;
#[cfg(test)]
mod test_es;

use lambda_runtime::tracing::subscriber::filter::LevelFilter;

/// The most detailed level the functions log at, whatever `AWS_LAMBDA_LOG_LEVEL` asks:
/// `lambda_runtime` logs whole event payloads at TRACE, and a payload may hold an
/// `Authorization` header or a user's properties.
pub const MAX_LOG_LEVEL: LevelFilter = LevelFilter::DEBUG;

/// Sets up logging as Lambda's logging controls ask (`AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`: a
/// plain level, INFO by default; `AWS_LAMBDA_LOG_FORMAT=JSON` for JSON lines), never more
/// detailed than [`MAX_LOG_LEVEL`]. The functions log event names, ids and outcomes, never event
/// bodies, headers or `ES_URL`.
pub fn init_logging() {
    let asked = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|s| s.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let level = asked.min(MAX_LOG_LEVEL);
    let builder = lambda_runtime::tracing::subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_max_level(level);
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    if json {
        builder.json().init()
    } else {
        builder.init()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_level_is_capped_below_trace() {
        // LevelFilter orders by verbosity: TRACE is the most verbose
        assert_eq!(LevelFilter::TRACE.min(MAX_LOG_LEVEL), LevelFilter::DEBUG);
        assert_eq!(LevelFilter::INFO.min(MAX_LOG_LEVEL), LevelFilter::INFO);
    }
}
