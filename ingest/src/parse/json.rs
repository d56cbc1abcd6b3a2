//! JSON lines, as Filebeat (ECS), Vector, Fluent Bit and OpenTelemetry
//! exporters write them. Nested objects are flattened to dotted keys, and
//! OTLP's `[{"key": k, "value": {"stringValue": v}}]` attribute lists become
//! `attributes.k = v`, so one [`FieldMapping`] covers every shipper.

use crate::deadletter::DeadLetterReason;
use crate::parse::fields::{to_event, FieldMapping};
use crate::parse::{ParseError, Parser};
use crate::record::RawRecord;
use models::{Event, FieldValue};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The JSON-lines parser.
#[derive(Debug, Clone, Default)]
pub struct JsonParser {
    mapping: FieldMapping,
}

impl JsonParser {
    /// With a custom field mapping.
    pub fn with_mapping(mapping: FieldMapping) -> Self {
        JsonParser { mapping }
    }
}

/// Deepest nesting flattened; deeper values are kept as JSON text so a
/// hostile document cannot recurse without bound.
const MAX_DEPTH: usize = 16;

/// Flatten a JSON object into dotted keys.
pub fn flatten(obj: Map<String, Value>) -> BTreeMap<String, FieldValue> {
    let mut out = BTreeMap::new();
    flatten_into(String::new(), Value::Object(obj), &mut out, 0);
    out
}

fn flatten_into(prefix: String, v: Value, out: &mut BTreeMap<String, FieldValue>, depth: usize) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Object(m) if depth < MAX_DEPTH => {
            for (k, v) in m {
                flatten_into(key(&k), v, out, depth + 1);
            }
        }
        Value::Array(items) if depth < MAX_DEPTH && is_otlp_attributes(&items) => {
            for item in items {
                if let Value::Object(mut m) = item {
                    let k = m.remove("key").and_then(|k| k.as_str().map(str::to_string));
                    let val = m.remove("value").map(otlp_any_value);
                    if let (Some(k), Some(val)) = (k, val) {
                        flatten_into(key(&k), val, out, depth + 1);
                    }
                }
            }
        }
        Value::Null => {}
        Value::Bool(b) => {
            out.insert(prefix, FieldValue::Bool(b));
        }
        Value::Number(n) => {
            let fv = match n.as_i64() {
                Some(i) => FieldValue::Int(i),
                None => FieldValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            };
            out.insert(prefix, fv);
        }
        Value::String(s) => {
            out.insert(prefix, FieldValue::Str(s));
        }
        other => {
            out.insert(prefix, FieldValue::Str(other.to_string()));
        }
    }
}

fn is_otlp_attributes(items: &[Value]) -> bool {
    !items.is_empty()
        && items.iter().all(|i| {
            i.as_object().is_some_and(|m| {
                m.get("key").is_some_and(Value::is_string) && m.contains_key("value")
            })
        })
}

/// OTLP AnyValue `{"stringValue": "x"}` -> `"x"`.
fn otlp_any_value(v: Value) -> Value {
    match v {
        Value::Object(mut m) if m.len() == 1 => {
            for k in ["stringValue", "intValue", "doubleValue", "boolValue"] {
                if let Some(inner) = m.remove(k) {
                    if k == "intValue" {
                        if let Some(i) = inner.as_str().and_then(|s| s.parse::<i64>().ok()) {
                            return Value::from(i);
                        }
                    }
                    return inner;
                }
            }
            Value::Object(m)
        }
        other => other,
    }
}

impl Parser for JsonParser {
    fn name(&self) -> &'static str {
        "json"
    }

    fn parse(
        &mut self,
        text: &str,
        raw: &RawRecord,
        out: &mut Vec<Event>,
    ) -> Result<(), ParseError> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            ParseError::new(DeadLetterReason::InvalidJson, format!("invalid JSON: {e}"))
        })?;
        let Value::Object(obj) = value else {
            return Err(ParseError::new(
                DeadLetterReason::InvalidJson,
                "a JSON log record must be an object",
            ));
        };
        let mut fields = flatten(obj);
        // OpenTelemetry's body may be an AnyValue object.
        if let Some(FieldValue::Str(s)) = fields.remove("body.stringValue") {
            fields.insert("body".into(), FieldValue::Str(s));
        }
        out.push(to_event(fields, &self.mapping, raw, text)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::{Level, Timestamp};

    fn parse(line: &str) -> Result<Event, ParseError> {
        let mut out = vec![];
        JsonParser::default().parse(line, &RawRecord::default(), &mut out)?;
        Ok(out.remove(0))
    }

    fn log(line: &str) -> models::LogRecord {
        match parse(line).unwrap() {
            Event::Log(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn filebeat_ecs() {
        let r = log(
            r#"{"@timestamp":"2026-01-05T10:00:00.000Z","log.level":"error","message":"payment failed","service":{"name":"checkout"},"host":{"name":"node-1"},"container":{"name":"checkout-1"},"trace":{"id":"abc"},"http":{"response":{"status_code":503}},"event":{"duration":1200000000}}"#,
        );
        assert_eq!(
            r.timestamp,
            Timestamp::parse_rfc3339("2026-01-05T10:00:00Z").unwrap()
        );
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.message, "payment failed");
        assert_eq!(r.service.as_deref(), Some("checkout"));
        assert_eq!(r.host.as_deref(), Some("node-1"));
        assert_eq!(r.container.as_deref(), Some("checkout-1"));
        assert_eq!(r.trace_id.as_deref(), Some("abc"));
        assert_eq!(r.fields["status"], FieldValue::Int(503));
        assert_eq!(r.fields["duration_seconds"], FieldValue::Float(1.2));
    }

    #[test]
    fn opentelemetry_log_record() {
        let r = log(
            r#"{"timeUnixNano":"1767607200000000000","severityText":"WARN","severityNumber":13,"body":{"stringValue":"slow query"},"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"payments"}}]},"traceId":"5b8efff798038103d269b633813fc60c","attributes":[{"key":"db.rows","value":{"intValue":"42"}}]}"#,
        );
        assert_eq!(
            r.timestamp,
            Timestamp::parse_rfc3339("2026-01-05T10:00:00Z").unwrap()
        );
        assert_eq!(r.level, Some(Level::Warn));
        assert_eq!(r.message, "slow query");
        assert_eq!(r.service.as_deref(), Some("payments"));
        assert_eq!(
            r.trace_id.as_deref(),
            Some("5b8efff798038103d269b633813fc60c")
        );
        assert_eq!(r.fields["attributes.db.rows"], FieldValue::Int(42));
    }

    #[test]
    fn fluent_bit_kubernetes() {
        let r = log(
            r#"{"time":"2026-01-05T10:00:00Z","log":"GET /cart 200\n","stream":"stdout","kubernetes":{"pod_name":"cart-7d9","container_name":"cart","namespace_name":"shop","host":"node-3"}}"#,
        );
        assert_eq!(r.message, "GET /cart 200\n");
        assert_eq!(r.service.as_deref(), Some("cart"));
        assert_eq!(r.host.as_deref(), Some("node-3"));
        assert_eq!(r.container.as_deref(), Some("cart-7d9"));
    }

    #[test]
    fn severity_number_only() {
        let r = log(r#"{"timestamp":1767607200,"severityNumber":17,"body":"boom"}"#);
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.timestamp.as_secs(), 1767607200);
    }

    #[test]
    fn deploy_events_become_changes() {
        match parse(r#"{"@timestamp":"2026-01-05T10:00:00Z","event":{"action":"deploy"},"service":{"name":"checkout","version":"2.4.1"},"message":"rolled out"}"#).unwrap() {
            Event::Change(c) => {
                assert_eq!(c.service, "checkout");
                assert_eq!(c.version.as_deref(), Some("2.4.1"));
                assert_eq!(c.kind, models::ChangeKind::Deploy);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_json_is_named() {
        let e = parse("{\"a\": ").unwrap_err();
        assert_eq!(e.reason, DeadLetterReason::InvalidJson);
        assert_eq!(
            parse("[1,2]").unwrap_err().reason,
            DeadLetterReason::InvalidJson
        );
        let e = parse(r#"{"message":"x"}"#).unwrap_err();
        assert_eq!(e.reason, DeadLetterReason::BadTimestamp);
        let e = parse(r#"{"@timestamp":"last tuesday","message":"x"}"#).unwrap_err();
        assert_eq!(e.reason, DeadLetterReason::BadTimestamp);
        assert!(e.detail.contains("last tuesday"));
    }

    #[test]
    fn hostile_nesting_does_not_recurse_forever() {
        let deep = format!(
            "{{\"timestamp\":1,{}\"x\":1{}}}",
            "\"a\":{".repeat(100),
            "}".repeat(100)
        );
        let r = match parse(&deep).unwrap() {
            Event::Log(r) => r,
            other => panic!("{other:?}"),
        };
        // Below the depth cap the rest of the document is kept as JSON text.
        let (k, v) = r.fields.iter().find(|(k, _)| k.starts_with("a.")).unwrap();
        assert_eq!(k.matches('.').count(), MAX_DEPTH - 1);
        assert!(v.as_str().unwrap().contains("\"x\":1"));
        // serde_json itself limits recursion to 128; beyond that it is an error, not a crash.
        let deeper = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(
            parse(&deeper).unwrap_err().reason,
            DeadLetterReason::InvalidJson
        );
    }
}
