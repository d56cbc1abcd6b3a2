//! Series exported from a Prometheus-compatible store, as an operator
//! saves them to replay a past incident:
//!
//! - the Prometheus HTTP API's response to `/api/v1/query_range` (a
//!   `matrix`) or `/api/v1/query` (a `vector`), one response per line as
//!   `curl` writes it:
//!   `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up",...},"values":[[1675010542.382,"1"],...]}]}}`;
//! - VictoriaMetrics' `/api/v1/export`, one series per line:
//!   `{"metric":{"__name__":"up",...},"values":[1,0],"timestamps":[1675010542382,...]}`.
//!
//! Each point becomes a sample of its series, its kind guessed from the
//! name as for prometheus-kafka-adapter's records (an API response carries
//! no types). The JSON parser hands a line here when its first key says so
//! (`status` with `data` or `errorType`, or `metric` with `values` and
//! `timestamps`),
//! so sniffing needs nothing more. A line's points go out in time order
//! (a response holds its series one after another). VictoriaMetrics
//! writes one series per line over the export's whole span, so its later
//! lines go back in time and are counted late: export one series per
//! file (replay merges files by time). A line that cannot be read whole
//! is a
//! dead letter naming where; none of its points is kept, so a line is
//! either all in or all out.

use crate::deadletter::DeadLetterReason;
use crate::parse::prometheus::{kind_of_name, parse_value};
use crate::parse::ParseError;
use models::{Event, MetricSample, SeriesKey, Timestamp};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Whether `text` is one of the two exports (its first key says so).
pub fn is_export(text: &str) -> bool {
    let Some(rest) = text.trim_start().strip_prefix('{') else {
        return false;
    };
    let rest = rest.trim_start();
    (rest.starts_with("\"status\"")
        && (text.contains("\"data\"") || text.contains("\"errorType\"")))
        || (rest.starts_with("\"metric\"")
            && text.contains("\"timestamps\"")
            && text.contains("\"values\""))
}

fn bad(reason: DeadLetterReason, detail: impl Into<String>) -> ParseError {
    ParseError::new(reason, detail)
}

/// Every point of the export `text`, in order.
pub fn parse(text: &str, out: &mut Vec<Event>) -> Result<(), ParseError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| bad(DeadLetterReason::InvalidJson, format!("invalid JSON: {e}")))?;
    let Value::Object(top) = v else {
        return Err(bad(
            DeadLetterReason::InvalidJson,
            "an export must be an object",
        ));
    };
    let start = out.len();
    let result = if top.contains_key("status") {
        api_response(top, out)
    } else {
        victoria_series(&top, out)
    };
    match result {
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
        Ok(()) => {
            // A response holds its series one after another, each over
            // the whole range: in time order, as the analysis takes
            // events, the second series would be an hour late. Stable,
            // so one time's points keep the response's order.
            out[start..].sort_by_key(|e| match e {
                Event::Metric(m) => m.timestamp,
                _ => Timestamp::from_millis(i64::MIN),
            });
            Ok(())
        }
    }
}

/// A series' name and labels from its `metric` object.
fn series(
    metric: Option<&Value>,
    at: &str,
) -> Result<(String, BTreeMap<String, String>), ParseError> {
    let Some(Value::Object(m)) = metric else {
        return Err(bad(
            DeadLetterReason::InvalidJson,
            format!("{at} has no metric object"),
        ));
    };
    let mut name = None;
    let mut labels = BTreeMap::new();
    for (k, v) in m {
        let v = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if k == "__name__" {
            name = Some(v);
        } else {
            labels.insert(k.clone(), v);
        }
    }
    // A query's result may have lost its name (`rate(x[5m])`): the
    // expression is not in the response, so the series cannot be named.
    let name = name.ok_or_else(|| {
        bad(
            DeadLetterReason::InvalidJson,
            format!("{at} has no __name__ (the query computed it; export the raw series, or name it with label_replace)"),
        )
    })?;
    Ok((name, labels))
}

fn value_of(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => parse_value(s),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

fn push(
    out: &mut Vec<Event>,
    name: &str,
    labels: &BTreeMap<String, String>,
    ts: Timestamp,
    value: f64,
) {
    out.push(Event::Metric(MetricSample {
        key: SeriesKey {
            name: name.to_string(),
            labels: labels.clone(),
        },
        timestamp: ts,
        value,
        kind: kind_of_name(name, labels),
    }));
}

/// `[<seconds>, "<value>"]`, as the API writes a point.
fn api_point(p: &Value, at: &str) -> Result<(Timestamp, f64), ParseError> {
    let (Some(t), Some(v)) = (p.get(0), p.get(1)) else {
        return Err(bad(
            DeadLetterReason::InvalidJson,
            format!("{at} is not [time, value]"),
        ));
    };
    let secs = t.as_f64().filter(|s| s.is_finite()).ok_or_else(|| {
        bad(
            DeadLetterReason::BadTimestamp,
            format!("{at}: time {t} is not seconds"),
        )
    })?;
    let value = value_of(v).ok_or_else(|| {
        bad(
            DeadLetterReason::NonNumericValue,
            format!("{at}: value {v} is not a number"),
        )
    })?;
    Ok((
        Timestamp::from_millis((secs * 1000.0).round() as i64),
        value,
    ))
}

fn api_response(mut top: Map<String, Value>, out: &mut Vec<Event>) -> Result<(), ParseError> {
    let status = top.get("status").and_then(Value::as_str).unwrap_or("");
    if status != "success" {
        let error = top
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error given");
        return Err(bad(
            DeadLetterReason::InvalidJson,
            format!("a Prometheus API response with status {status:?}: {error}"),
        ));
    }
    let Some(Value::Object(mut data)) = top.remove("data") else {
        return Err(bad(
            DeadLetterReason::InvalidJson,
            "a Prometheus API response without data",
        ));
    };
    let kind = data
        .get("resultType")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(Value::Array(result)) = data.remove("result") else {
        return Err(bad(
            DeadLetterReason::InvalidJson,
            "data has no result array",
        ));
    };
    for (i, s) in result.iter().enumerate() {
        let at = format!("data.result[{i}]");
        let (name, labels) = series(s.get("metric"), &at)?;
        match kind.as_str() {
            "matrix" => {
                let Some(Value::Array(values)) = s.get("values") else {
                    return Err(bad(
                        DeadLetterReason::InvalidJson,
                        format!("{at} has no values"),
                    ));
                };
                for (j, p) in values.iter().enumerate() {
                    let (ts, v) = api_point(p, &format!("{at}.values[{j}]"))?;
                    push(out, &name, &labels, ts, v);
                }
            }
            "vector" => {
                let p = s.get("value").ok_or_else(|| {
                    bad(DeadLetterReason::InvalidJson, format!("{at} has no value"))
                })?;
                let (ts, v) = api_point(p, &format!("{at}.value"))?;
                push(out, &name, &labels, ts, v);
            }
            other => {
                return Err(bad(
                    DeadLetterReason::InvalidJson,
                    format!("resultType {other:?} holds no series (matrix and vector do)"),
                ))
            }
        }
    }
    Ok(())
}

fn victoria_series(top: &Map<String, Value>, out: &mut Vec<Event>) -> Result<(), ParseError> {
    let (name, labels) = series(top.get("metric"), "the series")?;
    let (Some(Value::Array(values)), Some(Value::Array(times))) =
        (top.get("values"), top.get("timestamps"))
    else {
        return Err(bad(
            DeadLetterReason::InvalidJson,
            "values and timestamps must be arrays",
        ));
    };
    if values.len() != times.len() {
        return Err(bad(
            DeadLetterReason::InvalidJson,
            format!("{} values against {} timestamps", values.len(), times.len()),
        ));
    }
    for (j, (v, t)) in values.iter().zip(times).enumerate() {
        // Milliseconds since the epoch.
        let ms = t.as_i64().ok_or_else(|| {
            bad(
                DeadLetterReason::BadTimestamp,
                format!("timestamps[{j}] {t} is not milliseconds"),
            )
        })?;
        let value = value_of(v).ok_or_else(|| {
            bad(
                DeadLetterReason::NonNumericValue,
                format!("values[{j}] {v} is not a number"),
            )
        })?;
        push(out, &name, &labels, Timestamp::from_millis(ms), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::MetricKind;

    fn samples(text: &str) -> Result<Vec<MetricSample>, ParseError> {
        assert!(is_export(text), "{text}");
        let mut out = vec![];
        parse(text, &mut out)?;
        Ok(out
            .into_iter()
            .map(|e| match e {
                Event::Metric(m) => m,
                other => panic!("{other:?}"),
            })
            .collect())
    }

    /// Responses as the Prometheus HTTP API documentation shows them.
    #[test]
    fn a_query_range_and_an_instant_query() {
        let m = samples(
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up","job":"prometheus","instance":"localhost:9090"},"values":[[1435781430.781,"1"],[1435781445.781,"0"]]},{"metric":{"__name__":"http_requests_total","job":"node"},"values":[[1435781430.781,"NaN"]]}]}}"#,
        )
        .unwrap();
        // In time order: both series' first points, then the second.
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].key.name, "up");
        assert_eq!(m[0].key.labels["instance"], "localhost:9090");
        assert_eq!(m[1].kind, MetricKind::Counter);
        assert!(m[1].value.is_nan());
        assert_eq!(m[2].timestamp, Timestamp::from_millis(1_435_781_445_781));
        assert_eq!(m[2].value, 0.0);
        let m = samples(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"node"},"value":[1435781451.781,"1"]}]}}"#,
        )
        .unwrap();
        assert_eq!((m.len(), m[0].value), (1, 1.0));
    }

    /// An error response, a computed series without a name and a bad
    /// point are dead letters naming what was wrong, and keep nothing.
    #[test]
    fn what_cannot_be_read_is_named() {
        let e = samples(
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\""}"#,
        )
        .unwrap_err();
        assert!(e.detail.contains("invalid parameter"), "{}", e.detail);
        let e = samples(r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"node"},"values":[[1435781430.781,"1"]]}]}}"#).unwrap_err();
        assert!(e.detail.contains("__name__"), "{}", e.detail);
        let e = samples(r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up"},"values":[[1435781430.781,"1"],[1435781445.781,"x"]]}]}}"#).unwrap_err();
        assert_eq!(e.reason, DeadLetterReason::NonNumericValue);
        assert!(e.detail.contains("values[1]"), "{}", e.detail);
    }

    /// VictoriaMetrics' export, as its documentation shows it.
    #[test]
    fn a_victoriametrics_export_line() {
        let m = samples(
            r#"{"metric":{"__name__":"process_resident_memory_bytes","job":"cart","instance":"10.0.0.7:8080"},"values":[104857600,105857600],"timestamps":[1675010542382,1675010557382]}"#,
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].timestamp, Timestamp::from_millis(1_675_010_557_382));
        assert_eq!(m[1].value, 105_857_600.0);
        assert_eq!(m[0].key.labels["job"], "cart");
        let e =
            samples(r#"{"metric":{"__name__":"up"},"values":[1,2],"timestamps":[1675010542382]}"#)
                .unwrap_err();
        assert!(e.detail.contains("2 values against 1"), "{}", e.detail);
    }

    #[test]
    fn ordinary_records_are_not_exports() {
        assert!(!is_export(r#"{"status":200,"msg":"GET /"}"#));
        assert!(!is_export(r#"{"metric":"cpu","value":1}"#));
    }
}
