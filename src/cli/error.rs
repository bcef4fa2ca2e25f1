//! How the deploy program ends: the exit statuses it returns and the errors it reports, each
//! with the command-line hints the engine's errors deliberately leave out (the engine is used
//! by other programs, which have other flags).

use std::io;
use std::path::PathBuf;

use infra_core::engine::Error as EngineError;
use infra_core::plan::saved::Refusal;
use infra_core::provider::LockInfo;
use infra_core::validate::ValidationErrors;

use super::args::OutOfRange;

/// The process exit statuses, as numbers (what CI scripts test).
pub mod exit_code {
    /// Done; with `--detailed-exitcode`, also: nothing to change.
    pub const SUCCESS: u8 = 0;
    /// Any failure, bad arguments included (clap's own 2 would read as "changes pending").
    pub const ERROR: u8 = 1;
    /// `--detailed-exitcode` only: the plan has changes.
    pub const CHANGES_PENDING: u8 = 2;
}

/// How a run that did its job ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Exit {
    /// [`exit_code::SUCCESS`].
    Success,
    /// [`exit_code::CHANGES_PENDING`]: the plan has changes and `--detailed-exitcode` was given.
    ChangesPending,
}

impl Exit {
    /// The process exit status.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Success => exit_code::SUCCESS,
            Exit::ChangesPending => exit_code::CHANGES_PENDING,
        }
    }
}

/// Why a run failed ([`exit_code::ERROR`]). The message is what the user sees after `Error: `;
/// some failures were already shown in full (the plan with its errors, the apply report, the
/// cancelled prompt) and add no `Error:` line ([`Error::already_shown`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A numeric flag (or its environment variable) is not a whole number in its range.
    #[error(transparent)]
    BadNumber(#[from] OutOfRange),
    /// Other malformed arguments: clap's message, with the usage.
    #[error("{}", .0.to_string().trim_end().trim_start_matches("error: "))]
    Usage(clap::Error),
    /// The stack is invalid: every problem at once; nothing was read or changed.
    #[error("{}{}", .errors.to_string().trim_end(), .hint.as_deref().map(|h| format!("\n{h}")).unwrap_or_default())]
    InvalidStack {
        /// The problems.
        errors: ValidationErrors,
        /// What to do about problems the command line can fix (a provider out of scope).
        hint: Option<String>,
    },
    /// The run's scope names a provider this program doesn't have.
    #[error("--only {provider}: there is no provider `{provider}` (this program has: {known})")]
    Scope {
        /// The provider asked for.
        provider: String,
        /// The providers this program has, comma-separated.
        known: String,
    },
    /// An endpoint or credentials can't be used at all: one paragraph saying what to do.
    #[error("{0}")]
    Environment(String),
    /// The sandbox's directory can't be opened.
    #[error("cannot open the sandbox at {}: {source}", .dir.display())]
    Sandbox {
        /// `--sandbox-dir`.
        dir: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The audit file (`--audit-file`) can't be written.
    #[error("cannot {action} {}: {source}", .path.display())]
    AuditLog {
        /// "create" (its directory) or "open the audit log".
        action: &'static str,
        /// The directory or file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Planning failed: a provider's read or a data source lookup; nothing was changed.
    #[error("{}", .0.to_string().trim_end())]
    Plan(EngineError),
    /// The plan has errors (policy findings, protected resources); nothing was changed. With
    /// `plan`, the plan showing them is the whole report.
    #[error("the plan has errors (see above); nothing was changed")]
    PlanHasErrors {
        /// The plan with its errors is all the user needs (`plan`, not `apply`).
        shown: bool,
    },
    /// The confirmation prompt was not answered `yes`.
    #[error("Apply cancelled; nothing was changed.")]
    Cancelled,
    /// The confirmation could not be read.
    #[error("could not read the confirmation: {0}")]
    Confirmation(io::Error),
    /// Another run holds the stack's lock.
    #[error("stack \"{stack}\" is locked by {holder}. If that run is gone (killed, crashed), break the lock with `{unlock}`")]
    Locked {
        /// The stack.
        stack: String,
        /// Who holds it, since when, and whether that process is known to be gone.
        holder: LockInfo,
        /// The command line that breaks it.
        unlock: String,
    },
    /// The stack's lock could not be read or written.
    #[error("{}", .0.to_string().trim_end())]
    LockFailed(EngineError),
    /// The apply could not start (the plan is stale, or can't be ordered).
    #[error("{}", .0.to_string().trim_end())]
    Apply(EngineError),
    /// Operations failed or were skipped; the apply report (printed) says which and why.
    #[error("{failed} operation(s) failed and {skipped} were skipped (see the report); re-run to converge the rest")]
    OperationsFailed {
        /// Failed operations.
        failed: usize,
        /// Operations skipped because something they depend on failed.
        skipped: usize,
    },
    /// `watch` ended after this many runs failed in a row (each was reported as it ended).
    #[error("watch gave up: {failures} runs failed in a row (see above); nothing converges the stack until it is run again")]
    WatchGaveUp {
        /// Failed runs in a row.
        failures: u32,
    },
    /// `watch --iterations N` ended with a failed run (reported above).
    #[error("watch: the last of {runs} runs failed (see above)")]
    WatchLastRunFailed {
        /// Runs made.
        runs: u64,
    },
    /// `force-unlock` could not break the lock.
    #[error("{}", .0.to_string().trim_end())]
    ForceUnlock(EngineError),
    /// A saved plan is not applied: what differs from what it was made from.
    #[error("refusing to apply the saved plan {}: {refusal}. Nothing was changed; make a new plan with `plan --out {}`, review it, and apply that file", .path.display(), .path.display())]
    SavedPlanRefused {
        /// The plan file.
        path: PathBuf,
        /// Why.
        refusal: Refusal,
    },
    /// The plan file can't be read or written.
    #[error("cannot {action} the plan file {}: {source}", .path.display())]
    PlanFile {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `import` failed: a provider's discovery (an unknown filter, no permission, an
    /// unreachable endpoint) or writing the module; one line.
    #[error("import: {0}")]
    Import(String),
    /// `adopt` was given a plan that does more than adopt: nothing was changed.
    #[error("adopt: the plan does more than adopt, so nothing was changed. Not adoptions: {}. Review the plan and run `apply`, or declare the objects as they are", .0.join(", "))]
    NotOnlyAdoptions(Vec<String>),
    /// The async runtime could not start.
    #[error("could not start the async runtime: {0}")]
    Runtime(io::Error),
}

impl Error {
    /// The process exit status: always [`exit_code::ERROR`].
    pub const fn exit_code(&self) -> u8 {
        exit_code::ERROR
    }

    /// Whether the run already showed this failure in full (the plan with its errors, the
    /// apply report, the cancelled prompt), so no `Error:` line (or JSON error) is added.
    pub fn already_shown(&self) -> bool {
        matches!(
            self,
            Error::PlanHasErrors { shown: true }
                | Error::Cancelled
                | Error::OperationsFailed { .. }
        )
    }
}
