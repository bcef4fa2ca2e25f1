//! Progress while an apply runs: plain lines when stderr is not a terminal (a CI log, a pipe),
//! the indicatif bar on a terminal, both fed the same events.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use indicatif::{ProgressDrawTarget, TermLike};
use infra::cli::progress::{
    finished_line, started_line, BarProgress, LineProgress, Progress, ProgressMode,
};
use infra::prelude::*;
use infra_core::dsl::KindSchema;
use infra_core::provider::{Observed, OpContext, Provider, ProviderError, ReadResult, Resolved};
use infra_core::reconcile::{ApplyObserver, ApplyOptions, AuditEvent, OpKind};
use infra_core::retry::{poll, PollPolicy, Probe};

use crate::cli::run;

/// The deploy program with stderr piped (not a terminal): a line when each operation starts
/// and one when it ends, for exactly the operations of the audit log, each start before its
/// end; nothing of a secret's value.
#[test]
fn without_a_terminal_each_operation_gets_a_start_and_an_end_line() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &["apply", "--auto-approve"], "");
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(0), "{err}");
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let events: Vec<AuditEvent> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.len() > 30, "the local production stack: {audit}");
    let lines: Vec<&str> = err.lines().collect();
    for e in &events {
        let o = &e.outcome;
        let start = started_line(&o.address.to_string(), o.op);
        let end = finished_line(e);
        let s = lines.iter().position(|l| *l == start);
        let f = lines.iter().position(|l| *l == end);
        assert!(
            matches!((s, f), (Some(s), Some(f)) if s < f),
            "`{start}` then `{end}` in:\n{err}"
        );
        assert!(
            end.starts_with(&format!("  ✓ {}: {}d", o.address, o.op)) && end.ends_with("s]"),
            "{end}"
        );
    }
    let started = lines.iter().filter(|l| l.starts_with("  → ")).count();
    let finished = lines.iter().filter(|l| l.starts_with("  ✓ ")).count();
    assert_eq!(
        (started, finished),
        (events.len(), events.len()),
        "one start and one end line per operation:\n{err}"
    );
    assert!(
        !err.contains("local-only-es-password"),
        "a secret's value on stderr:\n{err}"
    );
}

#[test]
fn the_mode_follows_whether_stderr_is_a_terminal() {
    assert_eq!(ProgressMode::for_terminal(true), ProgressMode::Bar);
    assert_eq!(ProgressMode::for_terminal(false), ProgressMode::Lines);
    // This test's stderr is captured by the harness or piped by cargo: not a terminal here
    // unless run by hand in one.
    use std::io::IsTerminal;
    assert_eq!(
        ProgressMode::for_stderr(),
        ProgressMode::for_terminal(io::stderr().is_terminal())
    );
}

/// The sandbox standing in for AWS, whose creates wait (as a NAT gateway's do) through the
/// core's poll, which publishes what they wait for.
struct Slow {
    inner: SandboxProvider,
    wait: Duration,
}

#[async_trait]
impl Provider for Slow {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kinds(&self) -> Option<Vec<&'static KindSchema>> {
        self.inner.kinds()
    }
    async fn read(&self, stack: &str) -> Result<ReadResult, ProviderError> {
        self.inner.read(stack).await
    }
    async fn create(&self, ctx: &OpContext, d: &Resolved) -> Result<Observed, ProviderError> {
        let until = tokio::time::Instant::now() + self.wait;
        let policy = PollPolicy::new(
            Duration::from_secs(600),
            Duration::from_secs(1),
            Duration::from_secs(2),
        );
        poll(
            &format!("{} to become available", d.address),
            &policy,
            || async move {
                Ok(if tokio::time::Instant::now() >= until {
                    Probe::Done(())
                } else {
                    Probe::Waiting("pending".into())
                })
            },
        )
        .await?;
        self.inner.create(ctx, d).await
    }
    async fn update(
        &self,
        ctx: &OpContext,
        c: &Observed,
        d: &Resolved,
        ch: &[String],
    ) -> Result<Observed, ProviderError> {
        self.inner.update(ctx, c, d, ch).await
    }
    async fn delete(&self, ctx: &OpContext, c: &Observed) -> Result<(), ProviderError> {
        self.inner.delete(ctx, c).await
    }
}

/// A terminal that records what indicatif writes to it.
#[derive(Clone, Debug, Default)]
struct Screen(Arc<Mutex<Vec<String>>>);

impl TermLike for Screen {
    fn width(&self) -> u16 {
        160
    }
    fn move_cursor_up(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> io::Result<()> {
        self.0.lock().unwrap().push(s.to_string());
        Ok(())
    }
    fn write_str(&self, s: &str) -> io::Result<()> {
        self.0.lock().unwrap().push(s.to_string());
        Ok(())
    }
    fn clear_line(&self) -> io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Both progress observers on one apply, and the bar's message at each heartbeat.
struct Both {
    lines: LineProgress<Vec<u8>>,
    bar: BarProgress,
    bar_at_heartbeat: Mutex<Vec<String>>,
}

impl ApplyObserver for Both {
    fn started(&self, total: usize) {
        self.lines.started(total);
        self.bar.started(total);
    }
    fn op_started(&self, address: &str, op: OpKind) {
        self.lines.op_started(address, op);
        self.bar.op_started(address, op);
    }
    fn op_waiting(&self, address: &str, op: OpKind, elapsed: Duration, waiting_for: Option<&str>) {
        self.lines.op_waiting(address, op, elapsed, waiting_for);
        self.bar.op_waiting(address, op, elapsed, waiting_for);
        self.bar_at_heartbeat
            .lock()
            .unwrap()
            .push(self.bar.bar().message());
    }
    fn op_finished(&self, event: &AuditEvent) {
        self.lines.op_finished(event);
        self.bar.op_finished(event);
    }
}

/// A create that waits 35 s (on tokio's paused clock) through the real reconciler, heartbeat
/// every 10 s as in the deploy program: the line observer prints a start line, a heartbeat at
/// 10, 20 and 30 s saying what it waits for, and an end line; the bar, fed the same events,
/// prints the same end line, counts the operation, and shows the waiting status.
#[tokio::test(start_paused = true)]
async fn a_long_create_gets_heartbeat_lines_and_the_bar_shows_the_same_events() {
    let dir = tempfile::tempdir().unwrap();
    let slow = Slow {
        inner: infra::sandbox(dir.path(), "aws").unwrap(),
        wait: Duration::from_secs(35),
    };
    let engine = Engine::new()
        .with_provider(slow)
        .with_options(ApplyOptions {
            heartbeat: Duration::from_secs(10),
            ..ApplyOptions::default()
        });
    let mut stack = Stack::new("slow");
    stack.add(Vpc::new("main").cidr("10.0.0.0/16"));
    let planned = engine.plan(&stack, &PlanOptions::default()).await.unwrap();
    let screen = Screen::default();
    let both = Both {
        lines: LineProgress::new(Vec::new()),
        bar: BarProgress::new(ProgressDrawTarget::term_like(Box::new(screen.clone()))),
        bar_at_heartbeat: Mutex::new(Vec::new()),
    };
    let report = engine.apply(&planned, &both).await.unwrap();
    assert!(report.is_success());
    let Both {
        lines,
        bar,
        bar_at_heartbeat,
    } = both;

    let text = String::from_utf8(lines.into_inner()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert_eq!(lines[0], "  → aws_vpc.main: create started");
    for (i, at) in ["10s", "20s", "30s"].iter().enumerate() {
        assert_eq!(
            lines[i + 1],
            format!("  … aws_vpc.main: create still running after {at}, waiting for aws_vpc.main to become available: pending"),
            "{text}"
        );
    }
    let id = report.outcomes[0].id.clone().unwrap();
    assert!(
        lines[4].starts_with(&format!("  ✓ aws_vpc.main: created ({id}) [")),
        "{text}"
    );

    // The bar: the same end line printed above it, the operation counted, the waiting status.
    assert_eq!((bar.bar().position(), bar.bar().length()), (1, Some(1)));
    let drawn = screen.0.lock().unwrap().clone();
    assert!(
        drawn.iter().any(|l| l == lines[4]),
        "the end line on the terminal: {drawn:?}"
    );
    let messages = bar_at_heartbeat.into_inner().unwrap();
    assert_eq!(
        messages,
        ["10s", "20s", "30s"]
            .iter()
            .map(|at| format!(
                "create aws_vpc.main ({at}): aws_vpc.main to become available: pending"
            ))
            .collect::<Vec<_>>()
    );
    bar.finish();
    assert!(bar.bar().is_finished());
}
