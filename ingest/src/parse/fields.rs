//! Mapping shared by the structured parsers (JSON, logfmt): from a flat map
//! of dotted keys to a [`LogRecord`] or a [`ChangeEvent`], plus the
//! timestamp, level and duration conventions real shippers use.

use crate::deadletter::DeadLetterReason;
use crate::parse::ParseError;
use crate::record::RawRecord;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use models::{ChangeEvent, ChangeKind, Event, FieldValue, Level, LogRecord, Timestamp};
use serde::{Deserialize, Serialize};

/// Which keys hold which part of a record, in order of precedence. The
/// defaults cover ECS (Filebeat, Elastic Agent), the OpenTelemetry log data
/// model, and the defaults of Vector, Fluent Bit and logfmt loggers; the
/// `[engine.fields]` table of a configuration file replaces any list (a
/// service named by a field the defaults do not know, for instance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FieldMapping {
    /// Event time.
    pub timestamp: Vec<String>,
    /// Message text.
    pub message: Vec<String>,
    /// Severity as text.
    pub level: Vec<String>,
    /// Severity as an OpenTelemetry number (1-24).
    pub severity_number: Vec<String>,
    /// Service name.
    pub service: Vec<String>,
    /// Host or node.
    pub host: Vec<String>,
    /// Container name or id.
    pub container: Vec<String>,
    /// Trace, request or session id.
    pub trace_id: Vec<String>,
    /// Keys whose value marks a change event (`deploy`, `config_change`...).
    pub change_kind: Vec<String>,
    /// Version of a change.
    pub version: Vec<String>,
    /// The fields a record keeps once the parts above are taken, when a
    /// consumer reads only a few (`None`: all of them, the default). An
    /// engine asks a record for a handful of keys (`status`, a session's
    /// key...), while a shipped Kubernetes record carries thirty labels
    /// and annotations: sorting them into the record's map and freeing
    /// them again was over a third of such a replay. The keys a structured
    /// record's stream is told apart by ([`crate::multiline::STREAM_KEYS`])
    /// are always kept, and the derived `status` and `duration_seconds`
    /// are derived before anything is dropped. Set by the program, not
    /// read from `[engine.fields]`.
    #[serde(skip)]
    pub kept: Option<Vec<String>>,
    /// [`FieldMapping::reader_keys`], made once per mapping rather than
    /// once per input: a replay of 21,000 JSON files made it 21,000 times
    /// (about 10 µs and 10 KB each). Empty again in a clone, so a mapping
    /// cloned and then changed does not keep its original's keys.
    /// Public only so that `..FieldMapping::default()` works outside this
    /// module; there is nothing in it to set.
    #[serde(skip)]
    pub reader: ReaderCache,
}

/// The cache behind [`FieldMapping::reader_keys_shared`] (opaque).
#[derive(Debug, Default)]
pub struct ReaderCache(std::sync::OnceLock<Option<std::sync::Arc<ReaderKeys>>>);

impl Clone for ReaderCache {
    fn clone(&self) -> Self {
        ReaderCache::default()
    }
}

/// A cache says nothing about the mapping: two mappings are equal when
/// their keys are.
impl PartialEq for ReaderCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ReaderCache {}

fn v(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|s| s.to_string()).collect()
}

impl Default for FieldMapping {
    fn default() -> Self {
        FieldMapping {
            timestamp: v(&[
                "@timestamp",
                "timestamp",
                "timeUnixNano",
                "observedTimeUnixNano",
                "time",
                "ts",
                "date",
                "datetime",
                "t",
                // MongoDB's structured log: `"t":{"$date":"..."}`.
                "t.$date",
                "@t",
                // systemd's journal (`journalctl -o json`, Docker's
                // journald driver): microseconds since the epoch.
                "__REALTIME_TIMESTAMP",
            ]),
            message: v(&[
                "message",
                "msg",
                "body",
                "log",
                "body.stringValue",
                "text",
                // Serilog's compact JSON: the rendered message, else its
                // template.
                "@m",
                "@mt",
                // GELF (Docker's `gelf` driver, Graylog).
                "short_message",
                // systemd's journal.
                "MESSAGE",
            ]),
            level: v(&[
                "log.level",
                "level",
                "severityText",
                "severity",
                "lvl",
                "loglevel",
                "severity_text",
                // Python's logging attribute (python-json-logger), and
                // Serilog's compact JSON (CLEF).
                "levelname",
                "@l",
                // MongoDB's structured log (4.4 on): `"s":"E"`, read only
                // when it holds a level (see `to_event`).
                "s",
                // systemd's journal: the syslog severity, 0-7.
                "PRIORITY",
            ]),
            severity_number: v(&["severityNumber", "severity_number"]),
            service: v(&[
                "service.name",
                "resource.attributes.service.name",
                // Vector's `opentelemetry` source keeps the resource's
                // attributes in `resources`.
                "resources.service.name",
                "service",
                "app",
                "application",
                // The label Kubernetes recommends, then the common one
                // (Filebeat writes the first de-dotted).
                "kubernetes.labels.app.kubernetes.io/name",
                "kubernetes.labels.app_kubernetes_io/name",
                "kubernetes.labels.app",
                "kubernetes.container_name",
                "kubernetes.container.name",
                "component",
            ]),
            host: v(&[
                "host.name",
                "resource.attributes.host.name",
                "resources.host.name",
                "host",
                "hostname",
                "kubernetes.host",
                "kubernetes.node.name",
                "kubernetes.pod_name",
                "node",
                // systemd's journal.
                "_HOSTNAME",
            ]),
            container: v(&[
                "container.name",
                "resource.attributes.container.name",
                "resources.container.name",
                "container",
                "container_name",
                "kubernetes.pod_name",
                "kubernetes.pod.name",
                "container.id",
                "container_id",
                // GELF's additional field, as Docker's driver writes it.
                "_container_name",
                // Docker's journald driver.
                "CONTAINER_NAME",
            ]),
            trace_id: v(&[
                "trace.id",
                "traceId",
                "trace_id",
                "traceid",
                "request_id",
                "req_id",
                "request.id",
                "session_id",
                "span.trace_id",
            ]),
            change_kind: v(&["event.action", "event.type", "event", "kind"]),
            version: v(&[
                "service.version",
                "version",
                "to_version",
                "resource.attributes.service.version",
            ]),
            kept: None,
            reader: ReaderCache::default(),
        }
    }
}

/// The fields of one record while it is being mapped: a short list,
/// searched linearly. A record carries a dozen fields or so, and a
/// `BTreeMap` paid a search with string comparisons for every field the
/// parser put in, every candidate key the mapping took out and every
/// lookup (about a tenth of a replay); what is left becomes the record's
/// sorted map once, at the end. Parsers hand over lists without repeated
/// keys ([`dedup_keep_last`]).
pub type FieldList = Vec<(String, FieldValue)>;

/// Where `key` is in `f`.
pub(crate) fn position(f: &FieldList, key: &str) -> Option<usize> {
    f.iter().position(|(k, _)| k == key)
}

/// The value of `key` in `f`.
pub fn get<'a>(f: &'a FieldList, key: &str) -> Option<&'a FieldValue> {
    position(f, key).map(|i| &f[i].1)
}

/// Take `key`'s value out of `f` (as a map remove).
pub fn take(f: &mut FieldList, key: &str) -> Option<FieldValue> {
    position(f, key).map(|i| f.swap_remove(i).1)
}

/// Give `key` the value `v`, replacing the one it had (as a map insert).
pub fn set(f: &mut FieldList, key: &str, v: FieldValue) {
    match position(f, key) {
        Some(i) => f[i].1 = v,
        None => f.push((key.to_string(), v)),
    }
}

/// Keep only the last value of each repeated key, as inserting the pairs
/// into a map one by one would; true when a key was repeated.
pub fn dedup_keep_last(f: &mut FieldList) -> bool {
    // Pairwise on the short lists real records make; sorted on long ones,
    // so a hostile line with thousands of keys stays O(n log n).
    const SHORT: usize = 32;
    if f.len() <= SHORT {
        let mut repeated = false;
        let mut i = f.len();
        while i > 0 {
            i -= 1;
            if f[i + 1..].iter().any(|(k, _)| *k == f[i].0) {
                f.remove(i);
                repeated = true;
            }
        }
        return repeated;
    }
    // A stable sort keeps equal keys in input order: the last of each run
    // is the one to keep.
    f.sort_by(|a, b| a.0.cmp(&b.0));
    let before = f.len();
    let mut kept: FieldList = Vec::with_capacity(before);
    for (k, v) in f.drain(..) {
        match kept.last_mut() {
            Some(last) if last.0 == k => last.1 = v,
            _ => kept.push((k, v)),
        }
    }
    *f = kept;
    f.len() != before
}

/// The result of mapping: the keys used for the well-known parts are
/// removed from `fields`, everything else stays.
///
/// `fields` is drained, not consumed: a parser keeps one list and reuses
/// its allocation for every record (what is left of it after an error or a
/// change event is the caller's to clear).
pub fn to_event(
    fields: &mut FieldList,
    mapping: &FieldMapping,
    raw: &RawRecord,
    whole_line: &str,
) -> Result<Event, ParseError> {
    // Only removals follow until the mapping is done, so the mask stays
    // true of every key left.
    let lengths = key_lengths(fields);
    let ts_value = take_first(fields, lengths, &mapping.timestamp);
    let timestamp = match &ts_value {
        Some(v) => parse_timestamp_value(v).ok_or_else(|| {
            ParseError::new(
                DeadLetterReason::BadTimestamp,
                format!(
                    "timestamp {v} is not RFC 3339, 'YYYY-MM-DD HH:MM:SS' or epoch seconds/ms/ns"
                ),
            )
        })?,
        None => raw.transport_time.ok_or_else(|| {
            ParseError::new(
                DeadLetterReason::BadTimestamp,
                format!(
                    "no timestamp field (looked for {}) and the transport gave none",
                    mapping.timestamp.join(", ")
                ),
            )
        })?,
    };
    let service = take_str(fields, lengths, &mapping.service)
        .or_else(|| key_service(raw))
        .or_else(|| container_service(fields, lengths))
        .or_else(|| program_service(fields, lengths))
        // A file of records that name no service (MongoDB's log, a
        // logfmt daemon's) is its file's, as a plain application log is
        // (`mongod.log` -> `mongod`). Not a Kafka topic's: one topic
        // usually carries many services' records.
        .or_else(|| {
            raw.partition
                .is_none()
                .then(|| crate::parse::plain::service_of_file(&raw.origin))
                .flatten()
                .map(str::to_string)
        });
    let change = first_str(fields, lengths, &mapping.change_kind).and_then(|s| change_kind(&s));
    if let (Some(kind), Some(service)) = (change, service.clone()) {
        let version = take_str(fields, lengths, &mapping.version);
        let description = take_str(fields, lengths, &mapping.message).unwrap_or_default();
        return Ok(Event::Change(ChangeEvent {
            timestamp,
            service,
            kind,
            version,
            description,
        }));
    }
    // The first level key whose value is a level: a key of the list that
    // holds something else (MongoDB's `s` is its severity letter, another
    // record's `s` may be anything) stays a field, and the next key is tried.
    let found = mapping
        .level
        .iter()
        .filter(|k| may_hold(lengths, k))
        .find_map(|k| {
            let i = position(fields, k)?;
            level_of(&fields[i].1).map(|l| (i, l))
        });
    let mut level = found.map(|(i, l)| {
        fields.swap_remove(i);
        l
    });
    if let Some(n) = take_first(fields, lengths, &mapping.severity_number) {
        if level.is_none() {
            level = n.as_f64().and_then(|n| Level::from_otel_number(n as i64));
        }
    }
    let message = match take_str(fields, lengths, &mapping.message) {
        Some(m) => m,
        // logfmt such as `event=database_timeout severity=error` has no
        // message: the event name is the most useful text to mine.
        None => match get(fields, "event").and_then(|v| v.as_str()) {
            Some(e) => e.to_string(),
            None => whole_line.to_string(),
        },
    };
    let mut message = message;
    if message.contains('\x1b') {
        // A shipped coloured console line (see `strip_ansi`).
        message = crate::parse::layout::strip_ansi(&message);
    }
    let mut trace_id = take_str(fields, lengths, &mapping.trace_id);
    let (mut logger, mut thread) = (None, None);
    let mut syslog = None;
    if level.is_none() {
        // A shipper that ran no parser leaves the level in the text, and
        // with it the layout's header: the statement is what follows the
        // logger (see `split_app_layout` for why the header goes), without
        // the trace context the record carries as fields.
        match crate::parse::layout::layout_in_text(&message) {
            Some((l, Some(tail))) => {
                level = Some(l);
                logger = tail.logger.map(|n| FieldValue::Str(n.to_string()));
                thread = tail.thread.map(|n| FieldValue::Str(n.to_string()));
                let span = fields
                    .iter()
                    .find(|(k, _)| SPAN_KEYS.contains(&k.as_str()))
                    .and_then(|(_, v)| v.as_str());
                // A record with no trace field (a line read from a file)
                // takes the id its layout printed.
                let printed = match trace_id {
                    None => crate::parse::layout::printed_trace_ids(tail.message),
                    Some(_) => None,
                };
                let (trace, span) = match printed {
                    Some((t, sp)) => (t, sp),
                    None => (trace_id.as_deref().unwrap_or(""), span.unwrap_or("")),
                };
                let statement =
                    crate::parse::layout::strip_trace_context(tail.message, &[trace, span]);
                if printed.is_some() {
                    trace_id = Some(trace.to_string());
                }
                // Cut the message down in place: `statement` is a slice of
                // it (no new allocation per record).
                let start = statement.as_ptr() as usize - message.as_ptr() as usize;
                let end = start + statement.len();
                message.truncate(end);
                message.replace_range(..start, "");
            }
            Some((l, None)) => level = Some(l),
            None => {
                // A syslog line shipped whole: its priority's level, its
                // program as the service when the record names none, its
                // host likewise, and the message after the header.
                if let Some(s) = crate::parse::plain::syslog_in_text(&message) {
                    level = s.level;
                    message = s.message;
                    syslog = Some((s.service, s.host));
                }
            }
        }
    }
    let host = take_str(fields, lengths, &mapping.host);
    // The record's own fields first, then what its syslog header said.
    let (service, host) = match syslog {
        Some((app, syslog_host)) => (service.or(app), host.or(syslog_host)),
        None => (service, host),
    };
    let mut r = LogRecord::new(timestamp, message);
    r.service = service;
    r.host = host;
    r.container = take_str(fields, lengths, &mapping.container);
    r.trace_id = trace_id;
    r.level = level;
    // Added after the mapping took its keys (the length mask above only
    // knows the keys the record came with); a `logger` or `thread` field
    // the record carried wins.
    for (key, value) in [("logger", logger), ("thread", thread)] {
        if let Some(v) = value.filter(|_| !fields.iter().any(|(k, _)| k == key)) {
            fields.push((key.into(), v));
        }
    }
    normalise_fields(fields);
    if let Some(kept) = &mapping.kept {
        fields.retain(|(k, _)| {
            crate::multiline::STREAM_KEYS.contains(&k.as_str()) || kept.iter().any(|w| w == k)
        });
    }
    r.fields = fields.drain(..).collect();
    Ok(Event::Log(r))
}

/// A level as a word (`error`, `WARN`...) or as a number in one of the
/// numeric conventions JSON loggers write (pino/bunyan, syslog/GELF: see
/// [`Level::from_log_number`]).
fn level_of(v: &FieldValue) -> Option<Level> {
    let n = match v {
        FieldValue::Str(s) => {
            return Level::parse(s).or_else(|| Level::from_log_number(s.trim().parse().ok()?))
        }
        FieldValue::Int(n) => *n,
        FieldValue::Float(f) if f.fract() == 0.0 => *f as i64,
        _ => return None,
    };
    Level::from_log_number(n)
}

/// With no service named, a container's name stands for it (Docker's
/// fluentd and gelf drivers write `container_name` as `/shop-web-1`,
/// Filebeat's docker input `container.name`): the precedence is service
/// fields, Kubernetes app labels, container names. A container id or a
/// Kubernetes pod (one per replica) names no service.
fn container_service(f: &FieldList, lengths: u64) -> Option<String> {
    name_at(f, lengths, &CONTAINER_NAME_KEYS, |n| {
        n.trim_start_matches('/')
    })
}

/// See [`PROGRAM_KEYS`].
fn program_service(f: &FieldList, lengths: u64) -> Option<String> {
    name_at(f, lengths, &PROGRAM_KEYS, |n| {
        n.strip_suffix(".service").unwrap_or(n)
    })
}

/// The text under the first of `keys` that holds one, as `clean` leaves
/// it, unless that leaves nothing.
fn name_at(
    f: &FieldList,
    lengths: u64,
    keys: &[&str],
    clean: impl Fn(&str) -> &str,
) -> Option<String> {
    keys.iter()
        .filter(|k| may_hold(lengths, k))
        .find_map(|k| get(f, k)?.as_str())
        .map(clean)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

fn key_service(raw: &RawRecord) -> Option<String> {
    let k = raw.key.as_ref()?;
    let s = std::str::from_utf8(k).ok()?;
    (!s.is_empty()).then(|| s.to_string())
}

fn change_kind(s: &str) -> Option<ChangeKind> {
    Some(match s.to_ascii_lowercase().as_str() {
        "deploy" | "deployment" | "rollout" | "release" => ChangeKind::Deploy,
        "config_change" | "config_reload" | "configuration_change" | "config" => {
            ChangeKind::ConfigChange
        }
        "scale" | "scaling" => ChangeKind::Scale,
        _ => return None,
    })
}

/// The lengths of the keys of `f` (modulo 64) as bits: a key whose bit is
/// clear is not in `f`, so most of the mapping's candidate keys are ruled
/// out without searching the map.
fn key_lengths(f: &FieldList) -> u64 {
    f.iter().fold(0, |m, (k, _)| m | 1 << (k.len() & 63))
}

/// Whether `key` may be in a map whose [`key_lengths`] are `lengths`.
fn may_hold(lengths: u64, key: &str) -> bool {
    lengths & 1 << (key.len() & 63) != 0
}

fn take_first(f: &mut FieldList, lengths: u64, keys: &[String]) -> Option<FieldValue> {
    keys.iter()
        .filter(|k| may_hold(lengths, k))
        .find_map(|k| take(f, k))
}

fn first_str(f: &FieldList, lengths: u64, keys: &[String]) -> Option<String> {
    keys.iter()
        .filter(|k| may_hold(lengths, k))
        .find_map(|k| get(f, k))
        .map(|v| v.to_string())
}

fn take_str(f: &mut FieldList, lengths: u64, keys: &[String]) -> Option<String> {
    take_first(f, lengths, keys).map(|v| match v {
        FieldValue::Str(s) => s,
        other => other.to_string(),
    })
}

/// Keys a duration is read from, with their unit per second (`None`: a
/// duration text such as `1.2s`, or a bare number of seconds).
const DURATION_KEYS: [(&str, Option<f64>); 15] = [
    ("duration", None),
    ("latency", None),
    ("elapsed", None),
    ("response_time", None),
    ("request_time", Some(1.0)),
    ("duration_ms", Some(1e3)),
    ("latency_ms", Some(1e3)),
    ("elapsed_ms", Some(1e3)),
    ("response_time_ms", Some(1e3)),
    ("duration_us", Some(1e6)),
    ("event.duration", Some(1e9)),
    ("duration_ns", Some(1e9)),
    ("duration_s", Some(1.0)),
    ("duration_seconds", Some(1.0)),
    // Go's `time.Duration` as JSON (Traefik's access log): nanoseconds.
    ("Duration", Some(1e9)),
];

/// Keys an HTTP status is read from.
const STATUS_KEYS: [&str; 6] = [
    "status",
    "http.response.status_code",
    "status_code",
    "http.status_code",
    "code",
    // Traefik's access log.
    "DownstreamStatus",
];

/// Keys of a record's span id (cut from a layout's trace context).
const SPAN_KEYS: [&str; 4] = ["span_id", "spanId", "spanid", "span.id"];

/// Keys of a container's name (a service when nothing else names one).
const CONTAINER_NAME_KEYS: [&str; 4] = [
    "container_name",
    "container.name",
    "_container_name",
    // Docker's journald driver.
    "CONTAINER_NAME",
];

/// Keys of the program that wrote a journal entry (systemd's journal:
/// `kubelet`, `containerd`, `kernel`; else its unit, `nginx.service`), the
/// service when neither a service field nor a container names one (Docker's
/// journald driver sets the identifier to the container's id, so the
/// container's name comes first).
const PROGRAM_KEYS: [&str; 2] = ["SYSLOG_IDENTIFIER", "_SYSTEMD_UNIT"];

/// Every key [`to_event`] may read of a record under a mapping that keeps
/// only some fields ([`FieldMapping::kept`]), and every dotted prefix of
/// one: what a reader must produce. A reader may leave out any other key
/// before it allocates it; `to_event` would have dropped it.
#[derive(Debug, Default)]
pub struct ReaderKeys {
    keys: rustc_hash::FxHashSet<Box<str>>,
}

impl ReaderKeys {
    /// Whether a value at dotted `path` may be read, or holds a key that
    /// may (an object on the way to one).
    pub fn wants(&self, path: &str) -> bool {
        self.keys.contains(path)
    }
}

impl FieldMapping {
    /// The candidate keys of every part a record is mapped to (time,
    /// message, level, severity number, service, host, container, trace,
    /// change kind, version).
    pub fn roles(&self) -> [&Vec<String>; 10] {
        [
            &self.timestamp,
            &self.message,
            &self.level,
            &self.severity_number,
            &self.service,
            &self.host,
            &self.container,
            &self.trace_id,
            &self.change_kind,
            &self.version,
        ]
    }

    /// [`FieldMapping::reader_keys`], made at the first call and shared by
    /// every parser made from this mapping afterwards (change `kept` before
    /// the first parser is made, or on a clone).
    pub fn reader_keys_shared(&self) -> Option<std::sync::Arc<ReaderKeys>> {
        self.reader
            .0
            .get_or_init(|| self.reader_keys().map(std::sync::Arc::new))
            .clone()
    }

    /// The keys a reader must produce for [`to_event`] under this mapping
    /// (`None` when the mapping keeps every field).
    pub fn reader_keys(&self) -> Option<ReaderKeys> {
        let kept = self.kept.as_ref()?;
        let lists = self.roles().into_iter().chain([kept]);
        let fixed = DURATION_KEYS
            .iter()
            .map(|(k, _)| *k)
            .chain(STATUS_KEYS)
            .chain(SPAN_KEYS)
            .chain(CONTAINER_NAME_KEYS)
            .chain(PROGRAM_KEYS)
            .chain(crate::multiline::STREAM_KEYS)
            // The message's fallback, the layout's fields (a record's own
            // win) and OpenTelemetry's body as an AnyValue.
            .chain(["event", "logger", "thread", "body.stringValue"]);
        let mut keys = rustc_hash::FxHashSet::default();
        for k in lists.flatten().map(String::as_str).chain(fixed) {
            keys.insert(Box::from(k));
            for (i, _) in k.match_indices('.') {
                keys.insert(Box::from(&k[..i]));
            }
        }
        Some(ReaderKeys { keys })
    }
}

/// Durations to `duration_seconds`, HTTP status to an integer `status`.
fn normalise_fields(f: &mut FieldList) {
    if get(f, "duration_seconds").is_none() {
        let found = DURATION_KEYS.iter().find_map(|(k, unit)| {
            let v = get(f, k)?;
            match (v, unit) {
                (FieldValue::Str(s), None) => parse_duration(s),
                // Divide rather than multiply by 1e-3: 1200 ms must give
                // exactly 1.2 s.
                (FieldValue::Str(s), Some(per_sec)) => s.parse::<f64>().ok().map(|x| x / per_sec),
                (other, Some(per_sec)) => other.as_f64().map(|x| x / per_sec),
                // A bare number under `duration`: seconds.
                (other, None) => other.as_f64(),
            }
        });
        if let Some(d) = found {
            if d.is_finite() {
                f.push(("duration_seconds".into(), FieldValue::Float(d)));
            }
        }
    }
    let status = STATUS_KEYS
        .iter()
        .find_map(|k| get(f, k).and_then(|v| v.as_f64()));
    if let Some(s) = status {
        if (100.0..600.0).contains(&s) && s.fract() == 0.0 {
            set(f, "status", FieldValue::Int(s as i64));
        }
    }
}

/// `1.2s`, `300ms`, `1m30s`, `2h`, `150us`, `150µs`, `10ns`, or a bare
/// number of seconds.
pub fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Ok(x) = s.parse::<f64>() {
        return Some(x);
    }
    let mut total = 0.0;
    let mut rest = s;
    let mut any = false;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += n * scale;
        any = true;
    }
    any.then_some(total)
}

/// A timestamp from a JSON/logfmt value: text (RFC 3339, `YYYY-MM-DD
/// HH:MM:SS[.fff]`, ISO without zone = UTC) or a number read by magnitude
/// (seconds, milliseconds, microseconds or nanoseconds since the epoch).
pub fn parse_timestamp_value(v: &FieldValue) -> Option<Timestamp> {
    match v {
        FieldValue::Int(i) => Some(epoch_by_magnitude(*i as f64)),
        FieldValue::Float(f) if f.is_finite() => Some(epoch_by_magnitude(*f)),
        FieldValue::Str(s) => parse_timestamp(s),
        _ => None,
    }
}

fn epoch_by_magnitude(x: f64) -> Timestamp {
    let ax = x.abs();
    let ms = if ax >= 1e17 {
        x / 1e6
    } else if ax >= 1e14 {
        x / 1e3
    } else if ax >= 1e11 {
        x
    } else {
        x * 1e3
    };
    Timestamp::from_millis(ms.round() as i64)
}

/// Parse the timestamp texts real logs carry.
pub fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return s.parse::<f64>().ok().map(epoch_by_magnitude);
    }
    if let Some(t) = parse_iso_fast(s) {
        return Some(t);
    }
    parse_timestamp_general(s)
}

/// The shape most timestamps in logs have, `YYYY-MM-DD[T ]HH:MM:SS`, an
/// optional fraction (`.` or `,`, up to nine digits) and an optional
/// offset (`Z`, `+HH:MM`, `+HHMM`; none means UTC), read field by field.
/// chrono's format-string parser re-reads its format on every call, and
/// the general path below tries up to nine formats before the one that
/// fits (a log4j time such as `2026-01-05 00:00:00,716` went through
/// five): about 3% of a replay. Anything else returns `None` and goes the
/// general way; where this answers, it answers as the general path does
/// (tested on every combination of the parts).
fn parse_iso_fast(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let digit = |i: usize| b[i].is_ascii_digit().then(|| u32::from(b[i] - b'0'));
    let two = |i: usize| Some(digit(i)? * 10 + digit(i + 1)?);
    let year = two(0)? * 100 + two(2)?;
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (month, day, hour, minute, second) = (two(5)?, two(8)?, two(11)?, two(14)?, two(17)?);
    if second >= 60 {
        return None; // leap seconds: the general path knows what to do
    }
    let mut i = 19;
    let mut nanos = 0u32;
    let mut comma = false;
    if i < b.len() && matches!(b[i], b'.' | b',') {
        comma = b[i] == b',';
        i += 1;
        let first = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - first == 9 {
                return None; // finer than nanoseconds: the general path
            }
            nanos = nanos * 10 + u32::from(b[i] - b'0');
            i += 1;
        }
        let n = i - first;
        if n == 0 {
            return None;
        }
        nanos *= 10u32.pow((9 - n) as u32);
    }
    let offset_secs = match &b[i..] {
        [] => 0,
        // The general path reads a comma fraction only without an offset.
        _ if comma => return None,
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] | [sign @ (b'+' | b'-'), h1, h2, m1, m2] => {
            let num = |x: &u8, y: &u8| {
                (x.is_ascii_digit() && y.is_ascii_digit())
                    .then(|| i64::from(x - b'0') * 10 + i64::from(y - b'0'))
            };
            let (h, m) = (num(h1, h2)?, num(m1, m2)?);
            if h >= 24 || m >= 60 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let dt = NaiveDate::from_ymd_opt(year as i32, month, day)?
        .and_hms_nano_opt(hour, minute, second, nanos)?;
    let ms = Utc.from_utc_datetime(&dt).timestamp_millis() - offset_secs * 1000;
    Some(Timestamp::from_millis(ms))
}

/// Every timestamp layout [`parse_timestamp`] knows, through chrono.
fn parse_timestamp_general(s: &str) -> Option<Timestamp> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(Timestamp::from_millis(dt.timestamp_millis()));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%d/%b/%Y:%H:%M:%S %z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(s, f) {
            return Some(Timestamp::from_millis(dt.timestamp_millis()));
        }
    }
    let s2 = s.replace(',', ".");
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y/%m/%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(&s2, f) {
            return Some(Timestamp::from_millis(
                Utc.from_utc_datetime(&dt).timestamp_millis(),
            ));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let dt = d.and_hms_opt(0, 0, 0)?;
        return Some(Timestamp::from_millis(
            Utc.from_utc_datetime(&dt).timestamp_millis(),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_timestamp_path_agrees_with_the_general_one() {
        let dates = [
            "2026-01-05",
            "2024-02-29",
            "2026-02-30",
            "2026-13-01",
            "1970-01-01",
        ];
        let times = [
            "00:00:00", "23:59:59", "12:34:56", "24:00:00", "23:59:60", "12:60:00",
        ];
        let fractions = [
            "",
            ".7",
            ".716",
            ",716",
            ".716123",
            ".716123456",
            ".7161234567",
            ".",
            ",",
            ".71a",
        ];
        let offsets = [
            "", "Z", "z", "+02:00", "-05:30", "+0530", "-0800", "+2", "+02:0", "+24:00", "+02:60",
            " UTC", "Zx",
        ];
        let mut fast = 0;
        for d in dates {
            for sep in ["T", " ", "t", "_"] {
                for t in times {
                    for f in fractions {
                        for o in offsets {
                            let s = format!("{d}{sep}{t}{f}{o}");
                            if let Some(x) = parse_iso_fast(&s) {
                                fast += 1;
                                assert_eq!(Some(x), parse_timestamp_general(&s), "{s}");
                            }
                            assert_eq!(
                                parse_timestamp(&s),
                                parse_iso_fast(&s).or_else(|| parse_timestamp_general(&s)),
                                "{s}"
                            );
                        }
                    }
                }
            }
        }
        // The layouts real logs use do take the fast path.
        for s in [
            "2026-01-05 00:00:00.716",
            "2026-01-05 00:00:00,716",
            "2026-01-05T00:00:00.716Z",
            "2026-01-05T00:00:00+02:00",
            "2026-01-05T00:00:00.123456789-0530",
        ] {
            assert!(parse_iso_fast(s).is_some(), "{s}");
        }
        assert!(fast > 500, "{fast}");
    }

    #[test]
    fn durations() {
        for (s, want) in [
            ("1.2s", 1.2),
            ("300ms", 0.3),
            ("1m30s", 90.0),
            ("2h", 7200.0),
            ("150us", 150e-6),
            ("150µs", 150e-6),
            ("0.5", 0.5),
        ] {
            let got = parse_duration(s).unwrap();
            assert!((got - want).abs() < 1e-12, "{s}: {got}");
        }
        assert_eq!(parse_duration("fast"), None);
        assert_eq!(parse_duration("1.2 parsecs"), None);
    }

    #[test]
    fn timestamps() {
        let t = Timestamp::parse_rfc3339("2026-01-05T10:00:00.250Z").unwrap();
        for s in [
            "2026-01-05T10:00:00.250Z",
            "2026-01-05T11:00:00.250+01:00",
            "2026-01-05 10:00:00.250",
            "2026-01-05 10:00:00,250",
            "2026-01-05T10:00:00.250",
            "1767607200.25",
            "1767607200250",
            "1767607200250000000",
        ] {
            assert_eq!(parse_timestamp(s), Some(t), "{s}");
        }
        assert_eq!(
            parse_timestamp("10/Oct/2000:13:55:36 -0700"),
            Timestamp::parse_rfc3339("2000-10-10T20:55:36Z")
        );
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
