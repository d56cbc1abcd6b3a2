//! OTLP JSON envelopes: what the OpenTelemetry Collector's `file` exporter
//! writes, one export request per line, and what OTLP/HTTP carries with
//! `Content-Type: application/json` (the protobuf-JSON mapping of
//! `ExportLogsServiceRequest` / `ExportMetricsServiceRequest`):
//!
//! ```text
//! {"resourceLogs":[{"resource":{"attributes":[...]},"scopeLogs":[{"logRecords":[{...}, ...]}]}]}
//! {"resourceMetrics":[{"resource":{...},"scopeMetrics":[{"metrics":[{"name":"...","gauge":{"dataPoints":[...]}}]}]}]}
//! ```
//!
//! One line holds many records. Each log record, with its resource beside
//! it, goes through the JSON parser's field mapping (so `service.name`
//! among the resource attributes names the service, as for a lone OTel
//! record); each metric data point becomes a sample whose labels are the
//! point's attributes plus the resource's `service.name` (as `service`)
//! and `host.name` (as `host`). Gauges, sums (monotonic: counters),
//! histograms (as Prometheus' `_bucket`/`_sum`/`_count`) and summaries
//! (`quantile` labels) are read; exponential histograms are not yet and
//! are named in the error. The JSON parser hands a line here when its
//! first key is `resourceLogs` or `resourceMetrics`, which is how the
//! Collector writes it: sniffing needs nothing more.

use crate::deadletter::DeadLetterReason;
use crate::parse::fields::{parse_timestamp, FieldMapping};
use crate::parse::json::{flatten, record_to_event};
use crate::parse::ParseError;
use crate::record::RawRecord;
use models::{Event, MetricKind, MetricSample, SeriesKey};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Whether `text` is an OTLP JSON envelope (its first key says so).
pub fn is_envelope(text: &str) -> bool {
    let t = text.trim_start();
    let Some(rest) = t.strip_prefix('{') else {
        return false;
    };
    let rest = rest.trim_start();
    rest.starts_with("\"resourceLogs\"") || rest.starts_with("\"resourceMetrics\"")
}

fn bad(detail: impl Into<String>) -> ParseError {
    ParseError::new(DeadLetterReason::InvalidJson, detail)
}

/// Every log record and data point of the envelope `text`, in order. A
/// record that cannot be read makes the whole line a dead letter, naming
/// where it is, so nothing is dropped without a trace.
pub fn parse(
    text: &str,
    mapping: &FieldMapping,
    raw: &RawRecord,
    out: &mut Vec<Event>,
) -> Result<(), ParseError> {
    let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let Value::Object(mut top) = v else {
        return Err(bad("an OTLP envelope must be an object"));
    };
    let start = out.len();
    let result = if let Some(rl) = top.remove("resourceLogs") {
        logs(rl, mapping, raw, out)
    } else if let Some(rm) = top.remove("resourceMetrics") {
        metrics(rm, out)
    } else {
        Err(bad("neither resourceLogs nor resourceMetrics"))
    };
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// The array at `key` of `obj` (absent: empty).
fn array(obj: &mut Map<String, Value>, key: &str) -> Vec<Value> {
    match obj.remove(key) {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    }
}

fn logs(
    resource_logs: Value,
    mapping: &FieldMapping,
    raw: &RawRecord,
    out: &mut Vec<Event>,
) -> Result<(), ParseError> {
    let Value::Array(rls) = resource_logs else {
        return Err(bad("resourceLogs must be an array"));
    };
    for (i, rl) in rls.into_iter().enumerate() {
        let Value::Object(mut rl) = rl else {
            return Err(bad(format!("resourceLogs[{i}] is not an object")));
        };
        let resource = rl.remove("resource").unwrap_or(Value::Null);
        for (j, sl) in array(&mut rl, "scopeLogs").into_iter().enumerate() {
            let Value::Object(mut sl) = sl else {
                return Err(bad(format!(
                    "resourceLogs[{i}].scopeLogs[{j}] is not an object"
                )));
            };
            for (k, rec) in array(&mut sl, "logRecords").into_iter().enumerate() {
                let Value::Object(mut rec) = rec else {
                    return Err(bad(format!(
                        "resourceLogs[{i}].scopeLogs[{j}].logRecords[{k}] is not an object"
                    )));
                };
                // The collector writes `observedTimeUnixNano` too; the event
                // happened at `timeUnixNano` when it is set (non-zero).
                if rec
                    .get("timeUnixNano")
                    .is_none_or(|t| t.as_str().is_some_and(|s| s == "0"))
                {
                    if let Some(t) = rec.remove("observedTimeUnixNano") {
                        rec.insert("timeUnixNano".into(), t);
                    }
                }
                rec.insert("resource".into(), resource.clone());
                // The record as a line of its own, for what the mapping reads
                // from a whole line (a level inside the message text).
                let line = serde_json::to_string(&rec).map_err(|e| bad(e.to_string()))?;
                let mut fields = flatten(rec).into_iter().collect();
                let event = record_to_event(&mut fields, mapping, raw, &line).map_err(|e| {
                    ParseError::new(
                        e.reason,
                        format!(
                            "resourceLogs[{i}].scopeLogs[{j}].logRecords[{k}]: {}",
                            e.detail
                        ),
                    )
                })?;
                out.push(event);
            }
        }
    }
    Ok(())
}

/// An OTLP attribute list `[{"key": k, "value": {"stringValue": v}}]` as
/// labels.
fn attributes(v: Option<&Value>, labels: &mut BTreeMap<String, String>) {
    let Some(Value::Array(items)) = v else {
        return;
    };
    for item in items {
        let (Some(k), Some(v)) = (
            item.get("key").and_then(Value::as_str),
            item.get("value").and_then(Value::as_object),
        ) else {
            continue;
        };
        let text = v.values().next().map(|x| match x {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        if let Some(t) = text {
            labels.insert(k.to_string(), t);
        }
    }
}

/// A number that OTLP JSON may write as a string (64-bit integers are).
fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            s => s.parse().ok(),
        },
        _ => None,
    }
}

fn metrics(resource_metrics: Value, out: &mut Vec<Event>) -> Result<(), ParseError> {
    let Value::Array(rms) = resource_metrics else {
        return Err(bad("resourceMetrics must be an array"));
    };
    for (i, rm) in rms.into_iter().enumerate() {
        let Value::Object(mut rm) = rm else {
            return Err(bad(format!("resourceMetrics[{i}] is not an object")));
        };
        // The resource names the service and host of every point.
        let mut resource = BTreeMap::new();
        attributes(
            rm.get("resource").and_then(|r| r.get("attributes")),
            &mut resource,
        );
        let mut base = BTreeMap::new();
        if let Some(s) = resource.get("service.name") {
            base.insert("service".to_string(), s.clone());
        }
        if let Some(h) = resource.get("host.name") {
            base.insert("host".to_string(), h.clone());
        }
        for (j, sm) in array(&mut rm, "scopeMetrics").into_iter().enumerate() {
            let Value::Object(mut sm) = sm else {
                return Err(bad(format!(
                    "resourceMetrics[{i}].scopeMetrics[{j}] is not an object"
                )));
            };
            for (k, metric) in array(&mut sm, "metrics").into_iter().enumerate() {
                let at = format!("resourceMetrics[{i}].scopeMetrics[{j}].metrics[{k}]");
                metric_points(&metric, &base, &at, out)?;
            }
        }
    }
    Ok(())
}

fn metric_points(
    metric: &Value,
    base: &BTreeMap<String, String>,
    at: &str,
    out: &mut Vec<Event>,
) -> Result<(), ParseError> {
    let name = metric
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{at} has no name")))?;
    let (data, kind) = if let Some(d) = metric.get("gauge") {
        (d, MetricKind::Gauge)
    } else if let Some(d) = metric.get("sum") {
        let monotonic = d.get("isMonotonic").and_then(Value::as_bool) == Some(true);
        (
            d,
            if monotonic {
                MetricKind::Counter
            } else {
                MetricKind::Gauge
            },
        )
    } else if let Some(d) = metric.get("histogram") {
        (d, MetricKind::Histogram)
    } else if let Some(d) = metric.get("summary") {
        (d, MetricKind::Summary)
    } else {
        let what = metric
            .as_object()
            .and_then(|m| {
                m.keys()
                    .find(|k| !matches!(k.as_str(), "name" | "description" | "unit"))
            })
            .map_or("no data".to_string(), |k| format!("{k:?}"));
        return Err(ParseError::new(
            DeadLetterReason::InvalidMetric,
            format!("{at} ({name}): {what} is not read (gauge, sum, histogram and summary are)"),
        ));
    };
    let points = match data.get("dataPoints") {
        Some(Value::Array(p)) => p,
        _ => return Ok(()),
    };
    for (p, point) in points.iter().enumerate() {
        let at = format!("{at}.dataPoints[{p}]");
        let ts = point
            .get("timeUnixNano")
            .and_then(|t| match t {
                Value::String(s) => parse_timestamp(s),
                Value::Number(n) => parse_timestamp(&n.to_string()),
                _ => None,
            })
            .ok_or_else(|| {
                ParseError::new(
                    DeadLetterReason::BadTimestamp,
                    format!("{at} ({name}) has no timeUnixNano"),
                )
            })?;
        let mut labels = base.clone();
        attributes(point.get("attributes"), &mut labels);
        let mut push = |name: String, labels: BTreeMap<String, String>, value: f64| {
            out.push(Event::Metric(MetricSample {
                key: SeriesKey { name, labels },
                timestamp: ts,
                value,
                kind,
            }));
        };
        match kind {
            MetricKind::Gauge | MetricKind::Counter | MetricKind::Untyped => {
                let value = number(point.get("asDouble"))
                    .or_else(|| number(point.get("asInt")))
                    .ok_or_else(|| {
                        ParseError::new(
                            DeadLetterReason::NonNumericValue,
                            format!("{at} ({name}) has neither asDouble nor asInt"),
                        )
                    })?;
                push(name.to_string(), labels, value);
            }
            MetricKind::Histogram => {
                // Prometheus' shape: cumulative `_bucket{le}`, `_sum`,
                // `_count`, so histograms share the quantile signals.
                let bounds: Vec<f64> = match point.get("explicitBounds") {
                    Some(Value::Array(b)) => b.iter().filter_map(|x| number(Some(x))).collect(),
                    _ => Vec::new(),
                };
                let counts: Vec<f64> = match point.get("bucketCounts") {
                    Some(Value::Array(c)) => c.iter().filter_map(|x| number(Some(x))).collect(),
                    _ => Vec::new(),
                };
                if counts.len() != bounds.len() + 1 {
                    return Err(ParseError::new(
                        DeadLetterReason::InvalidMetric,
                        format!(
                            "{at} ({name}): {} bucket counts for {} bounds (want one more)",
                            counts.len(),
                            bounds.len()
                        ),
                    ));
                }
                let mut cumulative = 0.0;
                for (c, le) in counts.iter().zip(
                    bounds
                        .iter()
                        .map(|b| b.to_string())
                        .chain(std::iter::once("+Inf".to_string())),
                ) {
                    cumulative += c;
                    let mut l = labels.clone();
                    l.insert("le".into(), le);
                    push(format!("{name}_bucket"), l, cumulative);
                }
                if let Some(sum) = number(point.get("sum")) {
                    push(format!("{name}_sum"), labels.clone(), sum);
                }
                push(
                    format!("{name}_count"),
                    labels,
                    number(point.get("count")).unwrap_or(cumulative),
                );
            }
            MetricKind::Summary => {
                if let Some(Value::Array(qs)) = point.get("quantileValues") {
                    for q in qs {
                        let (Some(quantile), Some(value)) =
                            (number(q.get("quantile")), number(q.get("value")))
                        else {
                            continue;
                        };
                        let mut l = labels.clone();
                        l.insert("quantile".into(), quantile.to_string());
                        push(name.to_string(), l, value);
                    }
                }
                if let Some(sum) = number(point.get("sum")) {
                    push(format!("{name}_sum"), labels.clone(), sum);
                }
                if let Some(count) = number(point.get("count")) {
                    push(format!("{name}_count"), labels, count);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::{Level, Timestamp};

    fn events(line: &str) -> Vec<Event> {
        let mut out = Vec::new();
        parse(
            line,
            &FieldMapping::default(),
            &RawRecord::default(),
            &mut out,
        )
        .unwrap();
        out
    }

    /// A Collector `file` exporter line (shape from the OpenTelemetry
    /// protocol's JSON examples, `examples/logs.json`): two records of one
    /// resource.
    #[test]
    fn a_logs_envelope_gives_every_record_with_its_resource() {
        let line = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"my.service"}},{"key":"host.name","value":{"stringValue":"node-7"}}]},"scopeLogs":[{"scope":{"name":"my.library","version":"1.0.0"},"logRecords":[{"timeUnixNano":"1767607200000000000","observedTimeUnixNano":"1767607200100000000","severityNumber":10,"severityText":"Information","traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","body":{"stringValue":"Example log record"},"attributes":[{"key":"string.attribute","value":{"stringValue":"some string"}}]},{"timeUnixNano":"0","observedTimeUnixNano":"1767607201000000000","severityText":"ERROR","body":{"stringValue":"payment failed"}}]}]}]}"#;
        assert!(is_envelope(line));
        let ev = events(line);
        assert_eq!(ev.len(), 2);
        let Event::Log(a) = &ev[0] else { panic!() };
        assert_eq!(a.service.as_deref(), Some("my.service"));
        assert_eq!(a.host.as_deref(), Some("node-7"));
        assert_eq!(a.message, "Example log record");
        assert_eq!(a.timestamp, Timestamp::from_millis(1767607200000));
        assert_eq!(
            a.trace_id.as_deref(),
            Some("5b8efff798038103d269b633813fc60c")
        );
        let Event::Log(b) = &ev[1] else { panic!() };
        assert_eq!(b.level, Some(Level::Error));
        assert_eq!(b.service.as_deref(), Some("my.service"));
        // No event time: the time the collector observed it.
        assert_eq!(b.timestamp, Timestamp::from_millis(1767607201000));
    }

    /// Gauge, monotonic sum and histogram points (shape from the protocol's
    /// `examples/metrics.json`).
    #[test]
    fn a_metrics_envelope_gives_samples_with_the_resource_as_labels() {
        let line = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},"scopeMetrics":[{"metrics":[{"name":"my.counter","unit":"1","sum":{"aggregationTemporality":2,"isMonotonic":true,"dataPoints":[{"asDouble":5,"startTimeUnixNano":"1767607100000000000","timeUnixNano":"1767607200000000000","attributes":[{"key":"my.counter.attr","value":{"stringValue":"some value"}}]}]}},{"name":"my.gauge","gauge":{"dataPoints":[{"asInt":"10","timeUnixNano":"1767607200000000000"}]}},{"name":"my.histogram","histogram":{"aggregationTemporality":2,"dataPoints":[{"timeUnixNano":"1767607200000000000","count":"3","sum":3.5,"bucketCounts":["1","1","1"],"explicitBounds":[1,2]}]}}]}]}]}"#;
        assert!(is_envelope(line));
        let ev = events(line);
        let samples: Vec<(String, Option<String>, f64, MetricKind)> = ev
            .iter()
            .map(|e| {
                let Event::Metric(m) = e else { panic!() };
                (
                    m.key.name.clone(),
                    m.key.labels.get("le").cloned(),
                    m.value,
                    m.kind,
                )
            })
            .collect();
        assert_eq!(
            samples,
            [
                ("my.counter".into(), None, 5.0, MetricKind::Counter),
                ("my.gauge".into(), None, 10.0, MetricKind::Gauge),
                (
                    "my.histogram_bucket".into(),
                    Some("1".into()),
                    1.0,
                    MetricKind::Histogram
                ),
                (
                    "my.histogram_bucket".into(),
                    Some("2".into()),
                    2.0,
                    MetricKind::Histogram
                ),
                (
                    "my.histogram_bucket".into(),
                    Some("+Inf".into()),
                    3.0,
                    MetricKind::Histogram
                ),
                ("my.histogram_sum".into(), None, 3.5, MetricKind::Histogram),
                (
                    "my.histogram_count".into(),
                    None,
                    3.0,
                    MetricKind::Histogram
                ),
            ]
        );
        let Event::Metric(m) = &ev[0] else { panic!() };
        assert_eq!(m.key.labels["service"], "checkout");
        assert_eq!(m.key.labels["my.counter.attr"], "some value");
    }

    #[test]
    fn what_cannot_be_read_is_named() {
        let mut out = Vec::new();
        let e = parse(
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","exponentialHistogram":{"dataPoints":[]}}]}]}]}"#,
            &FieldMapping::default(),
            &RawRecord::default(),
            &mut out,
        )
        .unwrap_err();
        assert!(e.detail.contains("exponentialHistogram"), "{}", e.detail);
        assert!(out.is_empty());
        assert!(!is_envelope(r#"{"message":"resourceLogs"}"#));
    }
}
