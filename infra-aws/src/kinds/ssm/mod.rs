//! Systems Manager kinds: Parameter Store parameters (plain strings, string lists and secrets).
//!
//! One module per kind; this module re-exports them.

mod parameter;

pub use parameter::{SsmParameter, SsmParameterOutputs, SsmParameterType};
pub(crate) use parameter::SSM_PARAMETER;
