//! What ingest produces: log records, metric samples and change events.

use crate::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Severity of a log record, normalised from whatever the shipper wrote
/// (`WARN`, `warning`, `W`, syslog severities, OpenTelemetry severity numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Finest-grained tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the service survived.
    Warn,
    /// A failed operation.
    Error,
    /// The process or a whole component failed.
    Fatal,
}

impl Level {
    /// Parse the level names and abbreviations real logs use, case-insensitively.
    pub fn parse(s: &str) -> Option<Level> {
        let s = s.trim();
        // Fast path without allocating: compare ASCII case-insensitively.
        let eq = |w: &str| s.eq_ignore_ascii_case(w);
        Some(
            if eq("info") || eq("information") || eq("informational") || eq("i") || eq("notice")
                // MySQL 8's error log: `[System]` (always written) and
                // `[Note]`.
                || eq("note")
                || eq("system")
                // PostgreSQL's `LOG:`, and a JavaScript `console.log`'s
                // level as some JSON loggers name it.
                || eq("log")
            {
                Level::Info
            } else if eq("warn") || eq("warning") || eq("w") {
                Level::Warn
            } else if eq("error") || eq("err") || eq("e") || eq("severe") || eq("failure") {
                Level::Error
            } else if eq("debug")
                || eq("d")
                || eq("fine")
                // MongoDB's structured log: `"s": "D1"` to `"D5"`.
                || (s.len() == 2
                    && s.as_bytes()[0].eq_ignore_ascii_case(&b'd')
                    && (b'1'..=b'5').contains(&s.as_bytes()[1]))
            {
                Level::Debug
            } else if eq("trace") || eq("t") || eq("finer") || eq("finest") || eq("verbose") {
                Level::Trace
            } else if eq("fatal")
                || eq("critical")
                || eq("crit")
                || eq("alert")
                || eq("emerg")
                || eq("emergency")
                || eq("panic")
                || eq("f")
            {
                Level::Fatal
            } else {
                return None;
            },
        )
    }

    /// From a numeric `level` as JSON loggers write it: pino's and
    /// bunyan's (10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal)
    /// or syslog's severity, which GELF's `level` carries (0-2 fatal, 3
    /// error, 4 warning, 5-6 info, 7 debug). The ranges do not overlap, so
    /// the number says which.
    pub fn from_log_number(n: i64) -> Option<Level> {
        Some(match n {
            0..=7 => Level::from_syslog_severity(n as u8),
            10..=19 => Level::Trace,
            20..=29 => Level::Debug,
            30..=39 => Level::Info,
            40..=49 => Level::Warn,
            50..=59 => Level::Error,
            60..=69 => Level::Fatal,
            _ => return None,
        })
    }

    /// From an OpenTelemetry `SeverityNumber` (1-24).
    pub fn from_otel_number(n: i64) -> Option<Level> {
        Some(match n {
            1..=4 => Level::Trace,
            5..=8 => Level::Debug,
            9..=12 => Level::Info,
            13..=16 => Level::Warn,
            17..=20 => Level::Error,
            21..=24 => Level::Fatal,
            _ => return None,
        })
    }

    /// From a syslog severity (RFC 5424: 0 emergency .. 7 debug).
    pub fn from_syslog_severity(n: u8) -> Level {
        match n {
            0..=2 => Level::Fatal,
            3 => Level::Error,
            4 => Level::Warn,
            5 | 6 => Level::Info,
            _ => Level::Debug,
        }
    }

    /// Lower-case name as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// Error or worse.
    pub fn is_error(self) -> bool {
        self >= Level::Error
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A structured field value kept from the source record.
///
/// A small closed set instead of `serde_json::Value` so that records stay
/// cheap to clone and compare, and so the schema is the same whichever format
/// the record came in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    /// true / false.
    Bool(bool),
    /// Integers that fit in 64 bits.
    Int(i64),
    /// Other numbers (durations are normalised to seconds by ingest).
    Float(f64),
    /// Everything else, as text.
    Str(String),
}

impl FieldValue {
    /// The value as a number when it is one (or a numeric string).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            FieldValue::Int(i) => Some(*i as f64),
            FieldValue::Float(f) => Some(*f),
            FieldValue::Str(s) => s.parse().ok(),
            FieldValue::Bool(_) => None,
        }
    }

    /// The value as text when it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Bool(b) => write!(f, "{b}"),
            FieldValue::Int(i) => write!(f, "{i}"),
            FieldValue::Float(x) => write!(f, "{x}"),
            FieldValue::Str(s) => f.write_str(s),
        }
    }
}

/// One log record, whatever format it arrived in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Event time (from the record; ingest falls back to arrival time only
    /// when the record has none, and says so in `fields["_ts_source"]`).
    pub timestamp: Timestamp,
    /// Emitting service (`service.name`, `resource.attributes.service.name`,
    /// `kubernetes.container_name`, a Kafka key...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Host or node name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Container name or id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Normalised severity, when the record has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// The human-readable message (`message`, `body`, `log`, `msg`, the
    /// content part of a plain-text line).
    pub message: String,
    /// Template id assigned by the miner (stable across runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<Arc<str>>,
    /// Trace, request or session id used to group records into sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Remaining structured fields, flattened with dotted keys.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldValue>,
}

impl LogRecord {
    /// The value of field `key`, as `fields.get(key)` but cheaper on the
    /// short maps real records carry: a `BTreeMap` lookup compares the key
    /// with several keys of each node byte by byte (one `memcmp` call
    /// each), while a scan that skips every key of another length first
    /// compares bytes about once. Every record is asked for a handful of
    /// fields (`stream`, `status`, `duration_seconds`...) on the analysis'
    /// critical path; long maps (a hostile record) keep the logarithmic
    /// lookup.
    pub fn field(&self, key: &str) -> Option<&FieldValue> {
        const SHORT: usize = 48;
        if self.fields.len() > SHORT {
            return self.fields.get(key);
        }
        self.fields
            .iter()
            .find(|(k, _)| k.len() == key.len() && k.as_bytes() == key.as_bytes())
            .map(|(_, v)| v)
    }

    /// A record with only a timestamp and a message.
    pub fn new(timestamp: Timestamp, message: impl Into<String>) -> Self {
        LogRecord {
            timestamp,
            service: None,
            host: None,
            container: None,
            level: None,
            message: message.into(),
            template_id: None,
            trace_id: None,
            fields: BTreeMap::new(),
        }
    }
}

/// Identity of a metric series: its name and its label set, labels sorted by
/// name so that the same series always has the same key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeriesKey {
    /// Metric name (`container_memory_working_set_bytes`).
    pub name: String,
    /// Labels, sorted by name (a `BTreeMap` keeps them sorted).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl SeriesKey {
    /// Build a key from a name and labels in any order.
    pub fn new<I, K, V>(name: impl Into<String>, labels: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        SeriesKey {
            name: name.into(),
            labels: labels
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The label value, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

impl fmt::Display for SeriesKey {
    /// Prometheus selector syntax: `name{a="1",b="2"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.labels.is_empty() {
            f.write_str("{")?;
            for (i, (k, v)) in self.labels.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{k}=\"")?;
                for c in v.chars() {
                    match c {
                        '\\' => f.write_str("\\\\")?,
                        '"' => f.write_str("\\\"")?,
                        '\n' => f.write_str("\\n")?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

/// Prometheus metric type, as declared by `# TYPE` (or inferred).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// A value that goes up and down.
    Gauge,
    /// A monotonically increasing total (resets on restart).
    Counter,
    /// A histogram component (`_bucket`, `_sum`, `_count`).
    Histogram,
    /// A summary component (quantiles, `_sum`, `_count`).
    Summary,
    /// Undeclared.
    #[default]
    Untyped,
}

/// One sample of one metric series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSample {
    /// Series identity.
    pub key: SeriesKey,
    /// Sample time.
    pub timestamp: Timestamp,
    /// Value (may be NaN or infinite in the exposition format; analysis
    /// treats non-finite values as missing).
    pub value: f64,
    /// Declared type.
    #[serde(default)]
    pub kind: MetricKind,
}

/// What kind of change an operator or a pipeline made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new version rolled out.
    Deploy,
    /// A configuration change.
    ConfigChange,
    /// Scaling up or down.
    Scale,
}

impl ChangeKind {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Deploy => "deploy",
            ChangeKind::ConfigChange => "config_change",
            ChangeKind::Scale => "scale",
        }
    }
}

/// A change event: the prime suspect when errors start right after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeEvent {
    /// When the change took effect.
    pub timestamp: Timestamp,
    /// Service changed.
    pub service: String,
    /// Kind of change.
    pub kind: ChangeKind,
    /// Version or change id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// Anything that flows from ingest into analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A log record.
    Log(LogRecord),
    /// A metric sample.
    Metric(MetricSample),
    /// A deploy or configuration change.
    Change(ChangeEvent),
}

impl Event {
    /// Event time of whatever this is.
    pub fn timestamp(&self) -> Timestamp {
        match self {
            Event::Log(r) => r.timestamp,
            Event::Metric(m) => m.timestamp,
            Event::Change(c) => c.timestamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_kind_names_are_the_json_names() {
        for k in [
            ChangeKind::Deploy,
            ChangeKind::ConfigChange,
            ChangeKind::Scale,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }

    #[test]
    fn levels_parse_like_real_logs() {
        for (s, l) in [
            ("WARN", Level::Warn),
            ("warning", Level::Warn),
            ("ERROR", Level::Error),
            ("err", Level::Error),
            ("Info", Level::Info),
            ("CRITICAL", Level::Fatal),
            ("debug", Level::Debug),
            // MySQL 8's error log and MongoDB's structured log.
            ("System", Level::Info),
            ("Note", Level::Info),
            ("LOG", Level::Info),
            ("D2", Level::Debug),
            ("E", Level::Error),
        ] {
            assert_eq!(Level::parse(s), Some(l), "{s}");
        }
        assert_eq!(Level::parse("banana"), None);
        assert_eq!(Level::parse("D7"), None);
        assert_eq!(Level::parse("DD"), None);
        assert_eq!(Level::from_otel_number(17), Some(Level::Error));
        assert_eq!(Level::from_otel_number(0), None);
    }

    #[test]
    fn series_key_sorts_labels_and_prints_as_prometheus() {
        let a = SeriesKey::new("up", [("job", "api"), ("instance", "a:1")]);
        let b = SeriesKey::new("up", [("instance", "a:1"), ("job", "api")]);
        assert_eq!(a, b);
        assert_eq!(a.to_string(), r#"up{instance="a:1",job="api"}"#);
    }

    #[test]
    fn event_json_is_tagged_and_round_trips() {
        let mut r = LogRecord::new(Timestamp::from_secs(1_700_000_000), "disk full");
        r.level = Some(Level::Error);
        r.service = Some("checkout".into());
        r.fields.insert("status".into(), FieldValue::Int(500));
        let e = Event::Log(r);
        let j = serde_json::to_string(&e).unwrap();
        assert!(
            j.starts_with(r#"{"type":"log","timestamp":"2023-11-14T22:13:20.000Z""#),
            "{j}"
        );
        assert_eq!(serde_json::from_str::<Event>(&j).unwrap(), e);
    }
}
