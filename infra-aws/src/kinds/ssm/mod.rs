//! Systems Manager kinds: Parameter Store parameters (plain strings, string lists and secrets).
//!
//! One module per kind; this module re-exports them.

mod parameter;

pub(crate) use parameter::SSM_PARAMETER;
pub use parameter::{SsmParameter, SsmParameterOutputs, SsmParameterType};
