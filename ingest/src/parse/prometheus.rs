//! Prometheus text exposition 0.0.4 and OpenMetrics 1.0, and the JSON lines
//! prometheus-kafka-adapter writes.
//!
//! The text parser keeps the `# TYPE` of each family across lines so that
//! `x_bucket`/`x_sum`/`x_count` samples are known to be a histogram (their
//! `le` label kept, for quantiles downstream) and `x_total` a counter.
//! Repeated `# TYPE` lines (one scrape after another in one file) are fine.
//! Timestamps are milliseconds in 0.0.4 and (fractional) seconds in
//! OpenMetrics; a sample without one takes the transport's time.

use crate::deadletter::DeadLetterReason;
use crate::parse::fields::parse_timestamp;
use crate::parse::{ParseError, Parser};
use crate::record::RawRecord;
use models::{Event, MetricKind, MetricSample, SeriesKey, Timestamp};
use std::collections::{BTreeMap, HashMap};

/// Cap on families whose `# TYPE` is remembered (bounded memory).
const MAX_TYPES: usize = 100_000;

/// The text-format parser.
#[derive(Debug, Clone, Default)]
pub struct PrometheusParser {
    openmetrics: bool,
    types: HashMap<String, MetricKind>,
}

impl PrometheusParser {
    /// Text exposition 0.0.4.
    pub fn text() -> Self {
        Self::default()
    }

    /// OpenMetrics 1.0.
    pub fn openmetrics() -> Self {
        PrometheusParser {
            openmetrics: true,
            types: HashMap::new(),
        }
    }

    fn kind_of(&self, name: &str) -> MetricKind {
        if let Some(k) = self.types.get(name) {
            return *k;
        }
        for suffix in [
            "_bucket", "_sum", "_count", "_total", "_created", "_gcount", "_gsum",
        ] {
            if let Some(base) = name.strip_suffix(suffix) {
                if let Some(k) = self.types.get(base) {
                    return *k;
                }
            }
        }
        MetricKind::Untyped
    }
}

fn bad(detail: impl Into<String>) -> ParseError {
    ParseError::new(DeadLetterReason::InvalidMetric, detail)
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// A series' kind guessed from its name, where the source states none
/// (prometheus-kafka-adapter's records, the HTTP API's responses): `_total`
/// is a counter, `_bucket` with `le` a histogram's bucket.
pub fn kind_of_name(name: &str, labels: &BTreeMap<String, String>) -> MetricKind {
    if name.ends_with("_total") {
        MetricKind::Counter
    } else if name.ends_with("_bucket") && labels.contains_key("le") {
        MetricKind::Histogram
    } else {
        MetricKind::Untyped
    }
}

/// A sample value: floats, `NaN`, `+Inf`, `-Inf`.
pub fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse::<f64>().ok(),
    }
}

/// Whether a timestamp read as Prometheus text (integer milliseconds) can
/// only be OpenMetrics seconds: a sniffed exposition starts with `# TYPE`
/// either way, so an OpenMetrics file is often read by the text parser.
/// The two differ by a factor of 1,000, which the value shows: a fraction
/// or an exponent is not an integer of milliseconds, and under 10^11 as
/// milliseconds is before March 1973 while as seconds it is any date up to
/// the year 5138.
fn openmetrics_seconds(text: &str, x: f64) -> bool {
    text.contains(['.', 'e', 'E']) || x.abs() < 1e11
}

/// A parsed sample line: name, labels, value and the timestamp text.
type SampleParts<'a> = (String, BTreeMap<String, String>, f64, Option<&'a str>);

/// Parse `name{labels} value [timestamp]`.
fn parse_sample(line: &str) -> Result<SampleParts<'_>, ParseError> {
    let b = line.as_bytes();
    let mut i = 0;
    if b.is_empty() || !is_name_start(b[0]) {
        return Err(bad("a sample must start with a metric name"));
    }
    while i < b.len() && is_name_char(b[i]) {
        i += 1;
    }
    let name = line[..i].to_string();
    let mut labels = BTreeMap::new();
    while i < b.len() && b[i] == b' ' {
        i += 1;
    }
    if i < b.len() && b[i] == b'{' {
        i += 1;
        loop {
            while i < b.len() && (b[i] == b' ' || b[i] == b',') {
                i += 1;
            }
            if i >= b.len() {
                return Err(bad("unterminated label set"));
            }
            if b[i] == b'}' {
                i += 1;
                break;
            }
            let ks = i;
            if !is_name_start(b[i]) {
                return Err(bad(format!("invalid label name at byte {i}")));
            }
            while i < b.len() && is_name_char(b[i]) {
                i += 1;
            }
            let key = &line[ks..i];
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            if i >= b.len() || b[i] != b'=' {
                return Err(bad(format!("expected '=' after label {key:?}")));
            }
            i += 1;
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            if i >= b.len() || b[i] != b'"' {
                return Err(bad(format!("label {key:?} value must be quoted")));
            }
            // The exposition format escapes only `\\`, `\"` and `\n`.
            const ESCAPES: [(u8, char); 3] = [(b'n', '\n'), (b'"', '"'), (b'\\', '\\')];
            let Some((val, next)) = super::unquote(line, i + 1, &ESCAPES) else {
                return Err(bad(format!("unterminated value of label {key:?}")));
            };
            i = next;
            labels.insert(key.to_string(), val);
        }
    }
    let rest = line[i..].trim();
    // OpenMetrics exemplars follow " # ".
    let rest = rest.split(" # ").next().unwrap_or("").trim();
    let mut parts = rest.split_ascii_whitespace();
    let value_text = parts
        .next()
        .ok_or_else(|| bad(format!("sample {name} has no value")))?;
    let value = parse_value(value_text).ok_or_else(|| {
        ParseError::new(
            DeadLetterReason::NonNumericValue,
            format!("value {value_text:?} of {name} is not a number"),
        )
    })?;
    let ts = parts.next();
    if parts.next().is_some() {
        return Err(bad(format!(
            "unexpected text after the timestamp of {name}"
        )));
    }
    Ok((name, labels, value, ts))
}

impl Parser for PrometheusParser {
    fn name(&self) -> &'static str {
        if self.openmetrics {
            "openmetrics"
        } else {
            "prometheus"
        }
    }

    fn parse(
        &mut self,
        text: &str,
        raw: &RawRecord,
        out: &mut Vec<Event>,
    ) -> Result<(), ParseError> {
        let line = text.trim_end();
        if let Some(comment) = line.strip_prefix('#') {
            let mut it = comment.split_ascii_whitespace();
            if it.next() == Some("TYPE") {
                let (Some(name), Some(kind)) = (it.next(), it.next()) else {
                    return Err(bad("# TYPE needs a metric name and a type"));
                };
                let kind = match kind {
                    "counter" => MetricKind::Counter,
                    "gauge" => MetricKind::Gauge,
                    "histogram" | "gaugehistogram" => MetricKind::Histogram,
                    "summary" => MetricKind::Summary,
                    "untyped" | "unknown" | "info" | "stateset" => MetricKind::Untyped,
                    other => return Err(bad(format!("unknown metric type {other:?}"))),
                };
                if self.types.len() < MAX_TYPES || self.types.contains_key(name) {
                    self.types.insert(name.to_string(), kind);
                }
            }
            // HELP, UNIT, EOF and free comments carry no samples.
            return Ok(());
        }
        let (name, labels, value, ts) = parse_sample(line.trim_start())?;
        let timestamp = match ts {
            Some(t) => {
                let x: f64 = t
                    .parse()
                    .map_err(|_| ParseError::new(DeadLetterReason::BadTimestamp, format!("timestamp {t:?} of {name} is not a number")))?;
                if self.openmetrics || openmetrics_seconds(t, x) {
                    Timestamp::from_millis((x * 1000.0).round() as i64)
                } else {
                    Timestamp::from_millis(x as i64)
                }
            }
            None => raw.transport_time.ok_or_else(|| {
                ParseError::new(
                    DeadLetterReason::BadTimestamp,
                    format!("sample {name} has no timestamp and the transport gave none; write timestamps into the exposition (or send it through Kafka)"),
                )
            })?,
        };
        let kind = self.kind_of(&name);
        out.push(Event::Metric(MetricSample {
            key: SeriesKey { name, labels },
            timestamp,
            value,
            kind,
        }));
        Ok(())
    }
}

/// prometheus-kafka-adapter's JSON: `{"timestamp":"2026-01-05T10:00:00Z",
/// "value":"0.25","name":"up","labels":{"__name__":"up","job":"api"}}`.
#[derive(Debug, Clone, Default)]
pub struct PromJsonParser;

impl Parser for PromJsonParser {
    fn name(&self) -> &'static str {
        "prom-json"
    }

    fn parse(
        &mut self,
        text: &str,
        _raw: &RawRecord,
        out: &mut Vec<Event>,
    ) -> Result<(), ParseError> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            ParseError::new(DeadLetterReason::InvalidJson, format!("invalid JSON: {e}"))
        })?;
        let name = v
            .get("name")
            .and_then(|n| n.as_str())
            .ok_or_else(|| bad("prom-json sample has no \"name\""))?;
        let ts_text = v.get("timestamp").ok_or_else(|| {
            ParseError::new(
                DeadLetterReason::BadTimestamp,
                "prom-json sample has no \"timestamp\"",
            )
        })?;
        let timestamp = match ts_text {
            serde_json::Value::String(s) => parse_timestamp(s),
            serde_json::Value::Number(n) => {
                n.as_f64().and_then(|f| parse_timestamp(&f.to_string()))
            }
            _ => None,
        }
        .ok_or_else(|| {
            ParseError::new(
                DeadLetterReason::BadTimestamp,
                format!("timestamp {ts_text} is not RFC 3339"),
            )
        })?;
        let value = match v.get("value") {
            Some(serde_json::Value::String(s)) => parse_value(s),
            Some(serde_json::Value::Number(n)) => n.as_f64(),
            _ => None,
        };
        // `"NaN"` (a quantile with no requests) and `"+Inf"` are samples,
        // as in the text format: the analysis treats them as missing.
        let value = value.ok_or_else(|| {
            ParseError::new(
                DeadLetterReason::NonNumericValue,
                format!(
                    "value {} of {name} is not a number",
                    v.get("value").map_or("null".into(), |x| x.to_string())
                ),
            )
        })?;
        let mut labels = BTreeMap::new();
        if let Some(obj) = v.get("labels").and_then(|l| l.as_object()) {
            for (k, lv) in obj {
                if k == "__name__" {
                    continue;
                }
                let s = match lv {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                labels.insert(k.clone(), s);
            }
        }
        let kind = kind_of_name(name, &labels);
        out.push(Event::Metric(MetricSample {
            key: SeriesKey {
                name: name.to_string(),
                labels,
            },
            timestamp,
            value,
            kind,
        }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(p: &mut dyn Parser, text: &str) -> Vec<MetricSample> {
        let mut out = vec![];
        for line in text.lines() {
            p.parse(line, &RawRecord::default(), &mut out).unwrap();
        }
        out.into_iter()
            .map(|e| match e {
                Event::Metric(m) => m,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn text_format_with_types_escapes_and_specials() {
        let text = r#"# HELP http_request_duration_seconds Request latency.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.1",path="/a\"b\\c\nd"} 5 1767607200000
http_request_duration_seconds_bucket{le="+Inf",path="x"} 9 1767607200000
http_request_duration_seconds_sum{path="x"} 1.5 1767607200000
# TYPE up gauge
up 1 1767607200000
# TYPE errors_total counter
errors_total{code="500"} NaN 1767607200000
temperature +Inf 1767607200000
"#;
        let s = samples(&mut PrometheusParser::text(), text);
        assert_eq!(s.len(), 6);
        assert_eq!(s[0].kind, MetricKind::Histogram);
        assert_eq!(s[0].key.label("path"), Some("/a\"b\\c\nd"));
        assert_eq!(s[0].key.label("le"), Some("0.1"));
        assert_eq!(s[2].kind, MetricKind::Histogram);
        assert_eq!(s[3].kind, MetricKind::Gauge);
        assert_eq!(s[3].timestamp, Timestamp::from_millis(1767607200000));
        assert_eq!(s[4].kind, MetricKind::Counter);
        assert!(s[4].value.is_nan());
        assert_eq!(s[5].value, f64::INFINITY);
    }

    #[test]
    fn openmetrics_seconds_read_by_the_text_parser_are_seconds() {
        // An OpenMetrics exposition sniffed as Prometheus text (it starts
        // with `# TYPE` too): its seconds are not read as milliseconds of
        // 1970; milliseconds stay milliseconds.
        let text = "# TYPE a gauge\na 1 1767607200.5\na 2 1767607200\na 3 1767607200500\na 4 1.7676072e9\n";
        let s = samples(&mut PrometheusParser::text(), text);
        let ms: Vec<i64> = s.iter().map(|s| s.timestamp.as_millis()).collect();
        assert_eq!(
            ms,
            [1767607200500, 1767607200000, 1767607200500, 1767607200000]
        );
    }

    #[test]
    fn openmetrics_seconds_and_exemplars() {
        let text = "# TYPE rpc counter\n# UNIT rpc requests\nrpc_total{x=\"1\"} 17 1767607200.5 # {trace_id=\"abc\"} 1.0 1767607200.1\n# EOF\n";
        let s = samples(&mut PrometheusParser::openmetrics(), text);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].timestamp, Timestamp::from_millis(1767607200500));
        assert_eq!(s[0].kind, MetricKind::Counter);
        assert_eq!(s[0].value, 17.0);
    }

    #[test]
    fn bad_samples_are_named() {
        let mut p = PrometheusParser::text();
        let raw = RawRecord::default();
        let mut out = vec![];
        for (line, reason) in [
            ("up{job=\"a\" 1", DeadLetterReason::InvalidMetric),
            ("up{job=a} 1 1", DeadLetterReason::InvalidMetric),
            ("up lots 1", DeadLetterReason::NonNumericValue),
            ("up 1", DeadLetterReason::BadTimestamp),
            ("up 1 soon", DeadLetterReason::BadTimestamp),
            ("9up 1 1", DeadLetterReason::InvalidMetric),
            ("# TYPE up wobbly", DeadLetterReason::InvalidMetric),
        ] {
            let e = p.parse(line, &raw, &mut out).unwrap_err();
            assert_eq!(e.reason, reason, "{line}: {}", e.detail);
        }
        assert!(out.is_empty());
        // With a transport time, a sample without a timestamp is fine.
        let raw = RawRecord {
            transport_time: Some(Timestamp::from_secs(5)),
            ..Default::default()
        };
        p.parse("up 1", &raw, &mut out).unwrap();
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn kafka_adapter_json() {
        let s = samples(
            &mut PromJsonParser,
            r#"{"timestamp":"2026-01-05T10:00:00Z","value":"0.25","name":"node_load1","labels":{"__name__":"node_load1","instance":"node-1:9100"}}"#,
        );
        assert_eq!(s[0].key.name, "node_load1");
        assert_eq!(s[0].key.label("instance"), Some("node-1:9100"));
        assert!(s[0].key.label("__name__").is_none());
        assert_eq!(s[0].value, 0.25);
        // prometheus-kafka-adapter writes "NaN" for a quantile of a pod that
        // served no requests: a sample, as the text parser reads it.
        let s = samples(
            &mut PromJsonParser,
            r#"{"timestamp":"2026-01-05T10:00:00Z","value":"NaN","name":"x","labels":{}}"#,
        );
        assert!(s[0].value.is_nan());
        let s = samples(
            &mut PromJsonParser,
            r#"{"timestamp":"2026-01-05T10:00:00Z","value":"+Inf","name":"x","labels":{}}"#,
        );
        assert_eq!(s[0].value, f64::INFINITY);
        let mut out = vec![];
        let e = PromJsonParser
            .parse(
                r#"{"timestamp":"2026-01-05T10:00:00Z","value":"lots","name":"x","labels":{}}"#,
                &RawRecord::default(),
                &mut out,
            )
            .unwrap_err();
        assert_eq!(e.reason, DeadLetterReason::NonNumericValue);
    }
}
