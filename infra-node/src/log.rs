//! The agent's log: one JSON object per line on stdout,
//! `{"ts":"2025-01-02T03:04:05.678Z","level":"info","step":"join","msg":"joined the swarm",…}`,
//! with the event's other fields after `msg`.
//!
//! Only the agent's own events (and `infra_core`'s retry and poll events) are shown at the
//! chosen level; every other crate (the AWS SDK, bollard, hyper) is held at `warn`, so that no
//! library's request dump (which would carry a join token) can ever reach the log.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// A tracing layer writing each event as one JSON line.
pub struct JsonLines {
    out: Arc<Mutex<dyn Write + Send>>,
}

impl JsonLines {
    /// Lines to stdout.
    pub fn stdout() -> Self {
        JsonLines::to(Arc::new(Mutex::new(std::io::stdout())))
    }

    /// Lines to `out`.
    pub fn to(out: Arc<Mutex<dyn Write + Send>>) -> Self {
        JsonLines { out }
    }
}

/// The filter: `level` for the agent and `infra_core`, `warn` for every other crate.
pub fn filter(level: Level) -> Targets {
    Targets::new()
        .with_default(Level::WARN)
        .with_target("infra_node", level)
        .with_target("infra_core", level)
}

/// Installs the JSON log on stdout at `level` (once per process; later calls do nothing).
pub fn init(level: Level) {
    let _ = tracing_subscriber::registry()
        .with(JsonLines::stdout().with_filter(filter(level)))
        .try_init();
}

/// Parses a level name (`error`, `warn`, `info`, `debug`, `trace`).
pub fn parse_level(s: &str) -> Result<Level, String> {
    s.trim()
        .parse::<Level>()
        .map_err(|_| format!("unknown log level {s:?}: use error, warn, info, debug or trace"))
}

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_string(),
            Value::String(format!("{value:?}")),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_string(), Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
}

/// One event as its JSON line (without the newline).
pub fn line(ts: SystemTime, level: &Level, target: &str, fields: Map<String, Value>) -> String {
    let mut fields = fields;
    let step = fields
        .remove("step")
        .unwrap_or_else(|| Value::String(target.rsplit("::").next().unwrap_or(target).into()));
    let msg = fields
        .remove("message")
        .unwrap_or(Value::String(String::new()));
    // Written by hand: serde_json's map sorts its keys, and ts, level, step, msg come first.
    let mut out = String::from("{");
    let head = [
        ("ts", Value::String(rfc3339(ts))),
        ("level", Value::String(level.as_str().to_ascii_lowercase())),
        ("step", step),
        ("msg", msg),
    ];
    let rest = fields
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "ts" | "level"));
    for (i, (key, value)) in head
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(rest)
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(key).to_string());
        out.push(':');
        out.push_str(&value.to_string());
    }
    out.push('}');
    out
}

impl<S: Subscriber> Layer<S> for JsonLines {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let meta = event.metadata();
        let text = line(SystemTime::now(), meta.level(), meta.target(), fields.0);
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(format!("{text}\n").as_bytes());
        let _ = out.flush();
    }
}

/// `2025-01-02T03:04:05.678Z` (UTC, milliseconds).
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56.789Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000Z");
    }

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_event_is_one_json_line_with_ts_level_step_msg_first() {
        let buf = Buf::default();
        let layer = JsonLines::to(Arc::new(Mutex::new(buf.clone())));
        let subscriber =
            tracing_subscriber::registry().with(layer.with_filter(filter(Level::INFO)));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                step = "join",
                manager = "10.0.0.1:2377",
                attempt = 2u32,
                "joined the swarm"
            );
            tracing::debug!(step = "join", "not shown at info");
            tracing::warn!("no step given");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with("{\"ts\":\"")
                && lines[0]
                    .contains("\"level\":\"info\",\"step\":\"join\",\"msg\":\"joined the swarm\""),
            "{}",
            lines[0]
        );
        let v: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["manager"], "10.0.0.1:2377");
        assert_eq!(v["attempt"], 2);
        let v: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["step"], "tests", "the module path's last segment");
    }

    #[test]
    fn other_crates_are_held_at_warn() {
        assert!(parse_level("debug").is_ok());
        assert!(parse_level("loud").unwrap_err().contains("loud"));
        let t = filter(Level::TRACE);
        assert!(t.would_enable("infra_node::agent", &Level::TRACE));
        assert!(t.would_enable("infra_core::retry", &Level::DEBUG));
        assert!(!t.would_enable("aws_smithy_runtime::client", &Level::DEBUG));
        assert!(!t.would_enable("bollard::docker", &Level::INFO));
        assert!(t.would_enable("bollard::docker", &Level::WARN));
    }
}
