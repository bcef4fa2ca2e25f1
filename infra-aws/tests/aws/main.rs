//! Integration tests of the AWS kinds and provider. Everything but `validation` runs against a
//! moto server (the real AWS wire protocol, through the real aws-sdk crates): start one with
//! `eval "$(.ci/setup-moto)"`. Without one, those tests print a SKIPPED line and pass, except when
//! the run requires the endpoints (`INFRA_REQUIRE_ENDPOINTS=1`, as `.ci/test` sets), where they
//! fail.
//!
//! Tests share one moto server and run in parallel: each uses stack names of its own (a random
//! suffix) and never resets the server.

mod compute;
mod conformance;
mod drift;
mod elb;
mod iam;
mod idempotency;
mod import;
mod import_more;
mod import_serverless;
mod lock;
mod network;
mod ownership;
mod paging;
mod read_cost;
mod security_group;
mod serverless;
mod ssm;
mod support;
mod validation;
mod watch;
