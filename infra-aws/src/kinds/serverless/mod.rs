//! Serverless kinds: Lambda functions and their permissions, HTTP APIs (API Gateway v2) in
//! front of them, and EventBridge rules that trigger them from other AWS services.
//!
//! One module per kind; this module re-exports them.

mod event_rule;
mod function;
mod http_api;
mod permission;

pub(crate) use event_rule::EVENT_RULE;
pub use event_rule::{EventRule, EventRuleOutputs, ASG_INSTANCE_EVENTS};
pub(crate) use function::LAMBDA_FUNCTION;
pub use function::{
    code_sha256, LambdaArchitecture, LambdaCode, LambdaFunction, LambdaFunctionOutputs,
    BUILD_FUNCTIONS, MAX_ZIP_BYTES,
};
pub(crate) use http_api::HTTP_API;
pub use http_api::{HttpApi, HttpApiOutputs, RouteAuth};
pub use permission::LambdaPermission;
pub(crate) use permission::LAMBDA_PERMISSION;
