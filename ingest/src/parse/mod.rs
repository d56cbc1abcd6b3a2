//! One parser per wire format, behind one trait.
//!
//! To add a format: write a module with a type implementing [`Parser`], add a
//! variant to [`Format`] with its name, and register it in
//! [`Format::parser`] (and in sniffing, [`Format::detect`], if it can be
//! recognised from a sample).

pub mod cri;
pub mod fields;
pub mod header;
pub mod json;
pub mod layout;
pub mod logfmt;
pub mod otlp;
pub mod plain;
pub mod promapi;
pub mod prometheus;

use crate::deadletter::DeadLetterReason;
use crate::error::{Error, Result};
use crate::record::RawRecord;
use models::Event;

/// Why one record could not be parsed. Cheap: it is built on the hot path
/// for every bad line of a hostile input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Stable reason (metric label, dead-letter field).
    pub reason: DeadLetterReason,
    /// Human-readable detail naming what was wrong.
    pub detail: String,
}

impl ParseError {
    /// A new error.
    pub fn new(reason: DeadLetterReason, detail: impl Into<String>) -> Self {
        ParseError {
            reason,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.detail)
    }
}

impl std::error::Error for ParseError {}

/// Turns one raw record into zero or more events.
///
/// Parsers are synchronous and pure apart from their own state (Prometheus
/// text needs the `# TYPE` lines seen before a sample). `text` is the
/// record's bytes decoded as UTF-8 (invalid sequences already replaced by
/// the caller, which counts them); `raw` gives the origin, Kafka key,
/// headers and transport time.
pub trait Parser: Send {
    /// The format's name, as in [`Format::name`].
    fn name(&self) -> &'static str;

    /// Parse one record, appending what it yields to `out`. Returning `Ok`
    /// with nothing appended is allowed (comments, `# TYPE` lines).
    fn parse(
        &mut self,
        text: &str,
        raw: &RawRecord,
        out: &mut Vec<Event>,
    ) -> std::result::Result<(), ParseError>;
}

/// Read a double-quoted value whose opening quote is just before `start`:
/// the unescaped text and the index after the closing quote, or `None` when
/// the quote never closes. `escapes` maps the byte after a backslash to what
/// it stands for; any other backslash is kept as it is (and never splits a
/// multi-byte character).
pub(crate) fn unquote(line: &str, start: usize, escapes: &[(u8, char)]) -> Option<(String, usize)> {
    let b = line.as_bytes();
    let mut val = String::new();
    let (mut i, mut seg) = (start, start);
    while i < b.len() {
        match b[i] {
            b'"' => {
                val.push_str(&line[seg..i]);
                return Some((val, i + 1));
            }
            b'\\' if i + 1 < b.len() => match escapes.iter().find(|(e, _)| *e == b[i + 1]) {
                Some((_, c)) => {
                    val.push_str(&line[seg..i]);
                    val.push(*c);
                    i += 2;
                    seg = i;
                }
                None => i += 1,
            },
            _ => i += 1,
        }
    }
    None
}

/// A wire format, by the name used on the command line and in config files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// Sniff each file or topic from its first record.
    Auto,
    /// JSON lines (ECS, OpenTelemetry, Vector, Fluent Bit, Filebeat).
    Json,
    /// logfmt.
    Logfmt,
    /// Plain text, `<Date> <Time> <Level> <Component>: <Content>`.
    Plain,
    /// Plain text with a custom loghub-style header format.
    Header(String),
    /// RFC 5424 or RFC 3164 syslog.
    Syslog,
    /// Apache combined access log.
    Apache,
    /// Nginx combined access log (optionally with `$request_time` last).
    Nginx,
    /// Apache error log.
    ApacheError,
    /// Nginx error log.
    NginxError,
    /// Prometheus text exposition 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// prometheus-kafka-adapter JSON.
    PromJson,
    /// Kubernetes container logs as the kubelet keeps them (CRI logging
    /// format: containerd, CRI-O).
    Cri,
}

/// Names accepted by [`Format::from_name`].
pub const FORMAT_NAMES: &[&str] = &[
    "auto",
    "json",
    "logfmt",
    "plain",
    "syslog",
    "apache",
    "nginx",
    "apache-error",
    "nginx-error",
    "prometheus",
    "openmetrics",
    "prom-json",
    "cri",
];

impl Format {
    /// Parse a format name; anything containing `<` is a header format such
    /// as `<Date> <Time> <Level> <Component>: <Content>`.
    pub fn from_name(name: &str) -> Result<Format> {
        if name.contains('<') {
            // Compile now so a bad format is reported before any input is read.
            header::HeaderFormat::new(name)?;
            return Ok(Format::Header(name.to_string()));
        }
        Ok(match name.to_ascii_lowercase().as_str() {
            "auto" => Format::Auto,
            "json" | "jsonl" | "ndjson" | "ecs" | "otel" => Format::Json,
            "logfmt" => Format::Logfmt,
            "plain" | "text" => Format::Plain,
            "syslog" | "rfc5424" | "rfc3164" => Format::Syslog,
            "apache" | "apache-access" => Format::Apache,
            "nginx" | "nginx-access" => Format::Nginx,
            "apache-error" => Format::ApacheError,
            "nginx-error" => Format::NginxError,
            "prometheus" | "prom" | "exposition" => Format::Prometheus,
            "openmetrics" => Format::OpenMetrics,
            "prom-json" | "prometheus-kafka-adapter" => Format::PromJson,
            "cri" | "containerd" | "cri-o" | "crio" => Format::Cri,
            _ => {
                return Err(Error::UnknownFormat {
                    name: name.to_string(),
                    known: format!(
                    "{}, or a header format such as '<Date> <Time> <Level> <Component>: <Content>'",
                    FORMAT_NAMES.join(", ")
                ),
                })
            }
        })
    }

    /// The canonical name.
    pub fn name(&self) -> &str {
        match self {
            Format::Auto => "auto",
            Format::Json => "json",
            Format::Logfmt => "logfmt",
            Format::Plain => "plain",
            Format::Header(_) => "header",
            Format::Syslog => "syslog",
            Format::Apache => "apache",
            Format::Nginx => "nginx",
            Format::ApacheError => "apache-error",
            Format::NginxError => "nginx-error",
            Format::Prometheus => "prometheus",
            Format::OpenMetrics => "openmetrics",
            Format::PromJson => "prom-json",
            Format::Cri => "cri",
        }
    }

    /// A parser for this format. `default_year` is used by formats whose
    /// timestamps carry no year (RFC 3164 syslog). `Auto` has no parser of
    /// its own: sniff first with [`Format::detect`].
    pub fn parser(&self, default_year: i32) -> Result<Box<dyn Parser>> {
        self.parser_with(
            default_year,
            &std::sync::Arc::new(fields::FieldMapping::default()),
        )
    }

    /// [`Format::parser`] with the keys of structured records (JSON,
    /// logfmt) mapped by `mapping` instead of the defaults. The parser
    /// shares the mapping (a decoder makes one parser per input).
    pub fn parser_with(
        &self,
        default_year: i32,
        mapping: &std::sync::Arc<fields::FieldMapping>,
    ) -> Result<Box<dyn Parser>> {
        use plain::PlainParser;
        let preset = |n: &str| {
            Box::new(PlainParser::preset(n, default_year).expect("built-in preset"))
                as Box<dyn Parser>
        };
        Ok(match self {
            Format::Auto => {
                return Err(Error::UnknownFormat {
                    name: "auto".into(),
                    known: "a concrete format (sniff with Format::detect first)".into(),
                })
            }
            Format::Json => Box::new(json::JsonParser::with_shared(mapping.clone())),
            Format::Logfmt => Box::new(logfmt::LogfmtParser::with_shared(mapping.clone())),
            Format::Plain => preset("plain"),
            Format::Header(f) => Box::new(PlainParser::header(f, default_year)?),
            Format::Syslog => preset("syslog"),
            Format::Apache => preset("apache"),
            Format::Nginx => preset("nginx"),
            Format::ApacheError => preset("apache-error"),
            Format::NginxError => preset("nginx-error"),
            Format::Prometheus => Box::new(prometheus::PrometheusParser::text()),
            Format::OpenMetrics => Box::new(prometheus::PrometheusParser::openmetrics()),
            Format::PromJson => Box::new(prometheus::PromJsonParser),
            Format::Cri => Box::new(cri::CriParser::with_shared(mapping.clone())),
        })
    }

    /// Guess the format of a file or topic from one of its first records.
    /// Returns `None` when nothing fits; the caller dead-letters the record
    /// as `unknown_format` and tries again with the next one.
    pub fn detect(line: &str) -> Option<Format> {
        let t = line.trim_start();
        if t.is_empty() {
            return None;
        }
        if t.starts_with('{') {
            if let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(t) {
                let adapter =
                    m.contains_key("name") && m.contains_key("value") && m.contains_key("labels");
                return Some(if adapter {
                    Format::PromJson
                } else {
                    Format::Json
                });
            }
            return None;
        }
        if t.starts_with("# TYPE") || t.starts_with("# HELP") {
            return Some(Format::Prometheus);
        }
        if t.starts_with("# UNIT") || t == "# EOF" {
            return Some(Format::OpenMetrics);
        }
        if t.starts_with('#') {
            // Any other comment (a script's `#!` line, a config file's
            // notes) is no evidence: the Prometheus parser accepts it, so
            // a Python script was once read as an exposition and three of
            // its lines became samples. See `Decoder::decode`.
            return None;
        }
        // A kubelet's container log: checked before the plain layouts,
        // which would read its time and take the stream for a word.
        if cri::split(t).is_some() {
            return Some(Format::Cri);
        }
        let probe = RawRecord::default();
        let fits = |f: Format| {
            let mut out = Vec::new();
            f.parser(2000)
                .ok()?
                .parse(t, &probe, &mut out)
                .ok()
                .map(|_| f)
        };
        if t.starts_with('<') {
            return fits(Format::Syslog);
        }
        if t.starts_with('[') {
            // Apache's error log, Envoy's access log (Istio's sidecars),
            // or a layout that brackets its time (log4j's
            // `[%d] %p %m (%c)%n`, as Kafka and ZooKeeper write).
            return fits(Format::ApacheError)
                .or_else(|| fits(Format::Apache))
                .or_else(|| fits(Format::Plain));
        }
        fits(Format::Apache)
            .or_else(|| fits(Format::NginxError))
            .or_else(|| fits(Format::Plain))
            .or_else(|| fits(Format::Syslog))
            .or_else(|| {
                // Prometheus samples need a timestamp to parse without a
                // transport time, so check the shape instead.
                let mut p = prometheus::PrometheusParser::text();
                let raw = RawRecord {
                    transport_time: Some(models::Timestamp::from_millis(0)),
                    ..Default::default()
                };
                let mut out = Vec::new();
                (t.split_ascii_whitespace().count() <= 3 && p.parse(t, &raw, &mut out).is_ok())
                    .then_some(Format::Prometheus)
            })
            .or_else(|| {
                let pairs = logfmt::scan(t).ok()?;
                (pairs
                    .iter()
                    .filter(|(_, v)| !matches!(v, models::FieldValue::Bool(true)))
                    .count()
                    >= 2)
                    .then_some(Format::Logfmt)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known_ones() {
        for n in FORMAT_NAMES {
            assert_eq!(Format::from_name(n).unwrap().name(), *n);
        }
        let e = Format::from_name("yaml").unwrap_err().to_string();
        assert!(
            e.contains("yaml") && e.contains("logfmt") && e.contains("<Date>"),
            "{e}"
        );
        assert!(Format::from_name("<Date> (<Content>").is_err());
    }

    #[test]
    fn unquoting_keeps_unknown_escapes_and_whole_characters() {
        let esc = [(b'n', '\n'), (b'"', '"'), (b'\\', '\\')];
        assert_eq!(
            unquote(r#"a\"b\n\\c" rest"#, 0, &esc),
            Some(("a\"b\n\\c".to_string(), 10))
        );
        assert_eq!(
            unquote("\\é\\t\" x", 0, &esc),
            Some(("\\é\\t".to_string(), 6))
        );
        assert_eq!(unquote("never closed", 0, &esc), None);
    }

    #[test]
    fn sniffing() {
        for (line, want) in [
            (
                r#"{"@timestamp":"2026-01-05T10:00:00Z","message":"x"}"#,
                Format::Json,
            ),
            (
                r#"{"timestamp":"2026-01-05T10:00:00Z","value":"1","name":"up","labels":{}}"#,
                Format::PromJson,
            ),
            ("# HELP up Whether the target is up.", Format::Prometheus),
            ("up{job=\"a\"} 1 1767607200000", Format::Prometheus),
            ("ts=2026-01-05T10:00:00Z level=info msg=hi", Format::Logfmt),
            ("2026-01-05 10:00:00.000 INFO inventory: ok", Format::Plain),
            (
                "<34>1 2026-01-05T10:00:00Z host app - - - hi",
                Format::Syslog,
            ),
            ("Jan  5 10:00:00 node-1 sshd[1]: hi", Format::Syslog),
            (
                r#"1.2.3.4 - - [05/Jan/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x""#,
                Format::Apache,
            ),
            (
                "[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok",
                Format::ApacheError,
            ),
            ("2026/01/05 10:00:00 [error] 1#1: boom", Format::NginxError),
            (
                r#"2026-01-05T10:00:00.123456789Z stdout F {"level":"info","msg":"hi"}"#,
                Format::Cri,
            ),
            (
                "2026-01-05T10:00:00.123456789+01:00 stderr P 2026-01-05 10:00:00.000 INFO x: ok",
                Format::Cri,
            ),
        ] {
            assert_eq!(Format::detect(line), Some(want), "{line}");
        }
        assert_eq!(Format::detect("hello world"), None);
        assert_eq!(Format::detect("{not json"), None);
    }
}
