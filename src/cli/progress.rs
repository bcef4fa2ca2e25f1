//! What the user sees of an apply while it runs, on stderr: on a terminal an indicatif bar
//! (finished operations scroll above it, the bar says what the latest one waits for); anywhere
//! else (CI logs, pipes) one line when an operation starts, one when it ends, and a heartbeat
//! line for each operation still running every [`ApplyOptions::heartbeat`] (10 s), saying what
//! it waits for. Both get the same events and print the same line for a finished operation.
//!
//! Lines hold addresses, actions, object ids, times and the providers' own messages, never a
//! field's value: secrets can't reach them.
//!
//! [`ApplyOptions::heartbeat`]: infra_core::reconcile::ApplyOptions::heartbeat

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use infra_core::audit::AuditEntry;
use infra_core::provider::ProviderError;
use infra_core::reconcile::{ApplyObserver, AuditEvent, OpKind, OpStatus};

use super::Error;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// A terminal: the indicatif bar.
    Bar,
    /// Not a terminal (a CI log, a pipe, a file): plain lines.
    Lines,
}

impl ProgressMode {
    /// The mode for an output that is, or is not, a terminal.
    pub fn for_terminal(is_terminal: bool) -> Self {
        if is_terminal {
            ProgressMode::Bar
        } else {
            ProgressMode::Lines
        }
    }

    /// The mode for this process's stderr.
    pub fn for_stderr() -> Self {
        Self::for_terminal(std::io::stderr().is_terminal())
    }

    /// An observer showing progress this way on stderr.
    pub fn on_stderr(self) -> Box<dyn Progress> {
        match self {
            ProgressMode::Bar => Box::new(BarProgress::new(ProgressDrawTarget::stderr())),
            ProgressMode::Lines => Box::new(LineProgress::new(std::io::stderr())),
        }
    }
}

/// An [`ApplyObserver`] that shows progress, and clears up after itself.
pub trait Progress: ApplyObserver {
    /// The apply is over (before its report is printed).
    fn finish(&self);
}

/// The line for an operation that begins.
pub fn started_line(address: &str, op: OpKind) -> String {
    format!("  → {address}: {op} started")
}

/// The heartbeat line for an operation still running.
pub fn waiting_line(
    address: &str,
    op: OpKind,
    elapsed: Duration,
    waiting_for: Option<&str>,
) -> String {
    let waiting = waiting_for
        .map(|w| format!(", waiting for {w}"))
        .unwrap_or_default();
    format!(
        "  … {address}: {op} still running after {}{waiting}",
        duration(elapsed)
    )
}

/// The line for a retryable error about to be retried.
pub fn retrying_line(
    address: &str,
    op: OpKind,
    attempt: u32,
    error: &ProviderError,
    delay: Duration,
) -> String {
    format!(
        "  ↻ {address}: {op} attempt {attempt} failed ({error}); retrying in {:.1}s",
        delay.as_secs_f64()
    )
}

/// What an operation did, in the past tense: `created`, `moved`, `adopted`.
fn done(op: OpKind) -> String {
    match op {
        OpKind::Adopt => "adopted".into(),
        other => format!("{other}d"),
    }
}

/// The line for an operation that ended (or was skipped).
pub fn finished_line(event: &AuditEvent) -> String {
    let o = &event.outcome;
    let took = format!("[{:.1}s]", o.duration_ms as f64 / 1000.0);
    match &o.status {
        OpStatus::Succeeded => format!(
            "  ✓ {}: {}{} {took}",
            o.address,
            done(o.op),
            o.id.as_deref()
                .map(|i| format!(" ({i})"))
                .unwrap_or_default(),
        ),
        OpStatus::NothingToDo => format!("  ✓ {}: nothing to {} {took}", o.address, o.op),
        OpStatus::Failed { error } => {
            format!("  ✗ {}: {} failed {took}: {error}", o.address, o.op)
        }
        OpStatus::Skipped { because } => format!("  ↷ {}: skipped ({because})", o.address),
        // A status this program doesn't know yet (OpStatus is non-exhaustive).
        _ => format!("  • {}: {} ended {took}", o.address, o.op),
    }
}

/// `42s`, `3m05s`: heartbeat times, whole seconds.
fn duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// Plain lines, for output that is not a terminal. The pace of heartbeat lines is the
/// reconciler's ([`ApplyOptions::heartbeat`], 10 s in the deploy program): one line per
/// operation still running at each beat.
///
/// [`ApplyOptions::heartbeat`]: infra_core::reconcile::ApplyOptions::heartbeat
pub struct LineProgress<W: Write + Send> {
    out: Mutex<W>,
}

impl<W: Write + Send> LineProgress<W> {
    /// Lines written to `out`.
    pub fn new(out: W) -> Self {
        LineProgress {
            out: Mutex::new(out),
        }
    }

    /// The writer back (for tests: what was written).
    pub fn into_inner(self) -> W {
        self.out.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    fn line(&self, line: &str) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // Progress is best effort: a closed pipe must not fail the apply.
        let _ = out.write_all(format!("{line}\n").as_bytes());
        let _ = out.flush();
    }
}

impl<W: Write + Send> ApplyObserver for LineProgress<W> {
    fn op_started(&self, address: &str, op: OpKind) {
        self.line(&started_line(address, op));
    }
    fn retrying(
        &self,
        address: &str,
        op: OpKind,
        attempt: u32,
        error: &ProviderError,
        delay: Duration,
    ) {
        self.line(&retrying_line(address, op, attempt, error, delay));
    }
    fn op_waiting(&self, address: &str, op: OpKind, elapsed: Duration, waiting_for: Option<&str>) {
        self.line(&waiting_line(address, op, elapsed, waiting_for));
    }
    fn op_finished(&self, event: &AuditEvent) {
        self.line(&finished_line(event));
    }
}

impl<W: Write + Send> Progress for LineProgress<W> {
    fn finish(&self) {}
}

/// The indicatif bar, for a terminal: finished operations and retries print above it; its
/// message is the latest operation started, or what a running one waits for.
pub struct BarProgress {
    bar: ProgressBar,
}

impl BarProgress {
    /// A bar drawn on `target` (`ProgressDrawTarget::stderr()`, or a test's `term_like`).
    pub fn new(target: ProgressDrawTarget) -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        BarProgress { bar }
    }

    /// The bar (for tests: its position, length and message).
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }
}

impl ApplyObserver for BarProgress {
    fn started(&self, total: usize) {
        self.bar.set_length(total as u64);
        self.bar.enable_steady_tick(Duration::from_millis(120));
    }
    fn op_started(&self, address: &str, op: OpKind) {
        self.bar.set_message(format!("{op} {address}"));
    }
    fn retrying(
        &self,
        address: &str,
        op: OpKind,
        attempt: u32,
        error: &ProviderError,
        delay: Duration,
    ) {
        self.bar
            .println(retrying_line(address, op, attempt, error, delay));
    }
    fn op_waiting(&self, address: &str, op: OpKind, elapsed: Duration, waiting_for: Option<&str>) {
        let waiting = waiting_for.map(|w| format!(": {w}")).unwrap_or_default();
        self.bar
            .set_message(format!("{op} {address} ({}){waiting}", duration(elapsed)));
    }
    fn op_finished(&self, event: &AuditEvent) {
        self.bar.println(finished_line(event));
        self.bar.inc(1);
    }
}

impl Progress for BarProgress {
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The audit file (`--audit-file`): one JSON [`AuditEntry`] per line, appended.
pub(crate) struct AuditFile {
    file: Mutex<std::fs::File>,
}

impl AuditFile {
    /// Opens (creating it and its directory) `path` for appending.
    pub(crate) fn open(path: &Path) -> Result<Self, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::AuditLog {
                action: "create",
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| Error::AuditLog {
                action: "open the audit log",
                path: path.to_path_buf(),
                source,
            })?;
        Ok(AuditFile {
            file: Mutex::new(file),
        })
    }

    /// Appends `entry` as one line (a line is written whole: entries of concurrent operations
    /// never interleave).
    pub(crate) fn write(&self, entry: &AuditEntry) {
        let line = entry.to_json() + "\n";
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = f.write_all(line.as_bytes());
    }
}

/// The deploy program's observer: progress, and the audit file.
pub(crate) struct CliObserver {
    progress: Box<dyn Progress>,
    audit: AuditFile,
}

impl CliObserver {
    pub(crate) fn new(audit_path: &Path, progress: Box<dyn Progress>) -> Result<Self, Error> {
        Ok(CliObserver {
            progress,
            audit: AuditFile::open(audit_path)?,
        })
    }

    pub(crate) fn done(&self) {
        self.progress.finish();
    }
}

impl ApplyObserver for CliObserver {
    fn started(&self, total: usize) {
        self.progress.started(total);
    }
    fn op_started(&self, address: &str, op: OpKind) {
        self.progress.op_started(address, op);
    }
    fn retrying(
        &self,
        address: &str,
        op: OpKind,
        attempt: u32,
        error: &ProviderError,
        delay: Duration,
    ) {
        self.progress.retrying(address, op, attempt, error, delay);
    }
    fn op_waiting(&self, address: &str, op: OpKind, elapsed: Duration, waiting_for: Option<&str>) {
        self.progress.op_waiting(address, op, elapsed, waiting_for);
    }
    fn op_finished(&self, event: &AuditEvent) {
        self.progress.op_finished(event);
        self.audit.write(&AuditEntry::Change(event.clone()));
    }
    fn audit(&self, entry: &AuditEntry) {
        self.audit.write(entry);
    }
}
