//! Why the agent stops: one error per failure the contract names, each with its exit code and a
//! one-line message (never a secret: the messages name parameters, never their values).

use std::fmt;

use infra_core::provider::ProviderError;

/// Why the agent stopped before it could serve, and with which exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub kind: FailureKind,
    /// The step it went wrong in (the log line's `step`).
    pub step: &'static str,
    /// One line saying what and why.
    pub message: String,
}

/// The kinds of failure, one exit code each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// Anything not listed below (an AWS or Docker call that kept failing).
    Other,
    /// The instance metadata service never answered (within its share of the join timeout).
    Imds,
    /// The instance is in no Auto Scaling group, or its group has no `infra:stack` tag.
    NoGroup,
    /// A join-token parameter cannot be read (access denied, …).
    TokenUnreadable,
    /// The join token is wrong: the managers refuse it.
    BadToken,
    /// No manager let this node join (or no token appeared) within the join timeout.
    JoinTimeout,
    /// The Docker engine cannot be reached or refused a swarm operation.
    Docker,
    /// The command line or environment is invalid.
    Usage,
}

impl FailureKind {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            FailureKind::Other => 1,
            FailureKind::Imds => 2,
            FailureKind::NoGroup => 3,
            FailureKind::TokenUnreadable => 4,
            FailureKind::BadToken => 5,
            FailureKind::JoinTimeout => 6,
            FailureKind::Docker => 7,
            FailureKind::Usage => 64,
        }
    }
}

impl Failure {
    /// A failure of `kind` in `step`.
    pub fn new(kind: FailureKind, step: &'static str, message: impl Into<String>) -> Self {
        Failure {
            kind,
            step,
            message: message.into(),
        }
    }

    /// An AWS or Docker call that failed for good (after its retries).
    pub fn call(step: &'static str, e: ProviderError) -> Self {
        Failure::new(FailureKind::Other, step, e.to_string())
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        self.kind.exit_code()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// A value that must never be printed: a join token. `Debug` and `Display` say `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value, for the one call that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_and_exit_codes_are_distinct() {
        let s = Secret::new("SWMTKN-1-abc");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        assert_eq!(s.expose(), "SWMTKN-1-abc");
        let kinds = [
            FailureKind::Other,
            FailureKind::Imds,
            FailureKind::NoGroup,
            FailureKind::TokenUnreadable,
            FailureKind::BadToken,
            FailureKind::JoinTimeout,
            FailureKind::Docker,
            FailureKind::Usage,
        ];
        let codes: std::collections::BTreeSet<u8> = kinds.iter().map(|k| k.exit_code()).collect();
        assert_eq!(codes.len(), kinds.len());
        assert!(!codes.contains(&0));
        assert_eq!(FailureKind::Imds.exit_code(), 2, "fixed by the contract");
    }
}
