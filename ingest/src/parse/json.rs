//! JSON lines, as Filebeat (ECS), Vector, Fluent Bit and OpenTelemetry
//! exporters write them. Nested objects are flattened to dotted keys, and
//! OTLP's `[{"key": k, "value": {"stringValue": v}}]` attribute lists become
//! `attributes.k = v`, so one [`FieldMapping`] covers every shipper. An
//! OTLP JSON envelope (`resourceLogs` / `resourceMetrics`) is handed to
//! [`crate::parse::otlp`].

use crate::deadletter::DeadLetterReason;
use crate::parse::fields::{
    dedup_keep_last, position, set, take, to_event, FieldList, FieldMapping, ReaderKeys,
};
use crate::parse::{ParseError, Parser};
use crate::record::RawRecord;
use models::{Event, FieldValue};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The JSON-lines parser.
#[derive(Debug, Clone, Default)]
pub struct JsonParser {
    /// Shared by the parsers of every input (one per origin).
    mapping: std::sync::Arc<FieldMapping>,
    /// The keys worth reading when the mapping keeps only some fields.
    reader: Option<std::sync::Arc<ReaderKeys>>,
    /// Working space kept from record to record (see [`Scratch`]).
    scratch: Scratch,
}

/// What the reader needs for one record, kept by the parser so that a
/// record costs no allocation for it: the flattened fields (drained into
/// the record's map), the dotted key being read, and the keys of the
/// objects open. Allocating the three afresh cost three allocations per
/// record, the field list about two kilobytes of it, each written cold.
#[derive(Debug, Default)]
struct Scratch {
    out: FieldList,
    path: String,
    /// The keys read so far of every object open, innermost last (empty
    /// between records: only its allocation is kept, see [`recycle`]).
    keys: Vec<std::borrow::Cow<'static, str>>,
}

impl Clone for Scratch {
    /// Working space is not state: a clone starts with its own, empty.
    fn clone(&self) -> Self {
        Scratch::default()
    }
}

impl JsonParser {
    /// With a custom field mapping.
    pub fn with_mapping(mapping: FieldMapping) -> Self {
        Self::with_shared(std::sync::Arc::new(mapping))
    }

    /// With a field mapping shared with other parsers.
    pub fn with_shared(mapping: std::sync::Arc<FieldMapping>) -> Self {
        let reader = mapping.reader_keys_shared();
        JsonParser {
            mapping,
            reader,
            scratch: Scratch::default(),
        }
    }
}

/// Deepest nesting flattened; deeper values are kept as JSON text so a
/// hostile document cannot recurse without bound.
const MAX_DEPTH: usize = 16;

/// Flatten a JSON object into dotted keys.
pub fn flatten(obj: Map<String, Value>) -> BTreeMap<String, FieldValue> {
    let mut out = Vec::new();
    flatten_into(String::new(), Value::Object(obj), &mut out, 0);
    // Two paths to one dotted key: the later wins, as `from_iter` does.
    out.into_iter().collect()
}

/// `prefix.k`, or `k` at the top.
fn join_key(prefix: &str, k: &str) -> String {
    if prefix.is_empty() {
        return k.to_string();
    }
    let mut key = String::with_capacity(prefix.len() + 1 + k.len());
    key.push_str(prefix);
    key.push('.');
    key.push_str(k);
    key
}

/// Flatten `v` under `prefix` onto `out` (repeated keys are left for the
/// caller to find).
fn flatten_into(prefix: String, v: Value, out: &mut FieldList, depth: usize) {
    let mut put = |k: String, v: FieldValue| out.push((k, v));
    let key = |k: &str| join_key(&prefix, k);
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
        Value::Bool(b) => put(prefix, FieldValue::Bool(b)),
        Value::Number(n) => {
            let fv = match n.as_i64() {
                Some(i) => FieldValue::Int(i),
                None => FieldValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            };
            put(prefix, fv);
        }
        Value::String(s) => put(prefix, FieldValue::Str(s)),
        other => {
            let text = other.to_string();
            put(prefix, FieldValue::Str(text));
        }
    }
}

/// [`flatten_str_into`] with working space of its own (tests).
#[cfg(test)]
fn flatten_str(text: &str, wanted: Option<&ReaderKeys>) -> Option<FieldList> {
    let mut scratch = Scratch::default();
    flatten_str_into(text, wanted, &mut scratch).then_some(scratch.out)
}

/// Flatten a JSON object straight from its text, without building a
/// [`Value`] tree for it: the same fields as `serde_json::from_str` then
/// [`flatten`], into `scratch.out` (cleared first),
/// or false when the answer could differ or the text is not
/// a well-formed object (a duplicate key, two paths to one dotted key,
/// invalid JSON): the caller then takes the [`Value`] path, which decides
/// (and words the error) as before.
///
/// With `wanted`, a value whose dotted key it does not want is read past
/// (checked, not allocated): a shipped Kubernetes record's thirty labels
/// and annotations, which the engine would drop after mapping.
fn flatten_str_into(text: &str, wanted: Option<&ReaderKeys>, scratch: &mut Scratch) -> bool {
    use serde::de::DeserializeSeed;
    let Scratch { out, path, keys } = scratch;
    out.clear();
    path.clear();
    let mut open = recycle(std::mem::take(keys));
    let mut collided = false;
    let mut de = serde_json::Deserializer::from_str(text);
    let read = Flatten {
        path,
        keys: &mut open,
        out: &mut *out,
        depth: 0,
        collided: &mut collided,
        top: true,
        wanted,
    }
    .deserialize(&mut de)
    .is_ok()
        && de.end().is_ok();
    *keys = recycle(open);
    read && !dedup_keep_last(out) && !collided
}

/// An empty vector of keys of another lifetime, with the allocation of
/// `v`: the keys borrow from one record's text, the allocation outlives
/// it. (Collecting an emptied vector's `into_iter` into one of the same
/// layout reuses its buffer; nothing is mapped.)
fn recycle<'a, 'b>(mut v: Vec<std::borrow::Cow<'a, str>>) -> Vec<std::borrow::Cow<'b, str>> {
    v.clear();
    v.into_iter().map(|_| unreachable!("emptied")).collect()
}

/// [`flatten_into`] as a serde seed: objects are walked as they are read;
/// arrays (OTLP attribute lists) and anything deeper than [`MAX_DEPTH`] are
/// read as a [`Value`] and handed to [`flatten_into`].
///
/// One buffer holds the dotted key of the value being read (each object
/// appends its key and cuts it off again) and one stack the keys of the
/// objects open, so only leaves allocate: a key per field, not also a
/// prefix and a key list per nested object (an ECS record has eight).
struct Flatten<'a, 'de> {
    /// The dotted key of this value.
    path: &'a mut String,
    /// Keys read so far of every object open, innermost last.
    keys: &'a mut Vec<std::borrow::Cow<'de, str>>,
    out: &'a mut FieldList,
    depth: usize,
    collided: &'a mut bool,
    /// The whole record: it must be an object.
    top: bool,
    /// The keys worth reading, if not all (see [`flatten_str_into`]).
    wanted: Option<&'a ReaderKeys>,
}

impl Flatten<'_, '_> {
    fn put(self, v: FieldValue) {
        // A bare value where the record should be an object, or a key
        // already taken.
        if self.top {
            *self.collided = true;
        } else {
            self.out.push((self.path.clone(), v));
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Flatten<'_, 'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.depth >= MAX_DEPTH {
            let v = Value::deserialize(d)?;
            flatten_into(self.path.clone(), v, self.out, self.depth);
            return Ok(());
        }
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Flatten<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<(), E> {
        self.put(FieldValue::Bool(b));
        Ok(())
    }

    fn visit_i64<E>(self, i: i64) -> Result<(), E> {
        self.put(FieldValue::Int(i));
        Ok(())
    }

    fn visit_u64<E>(self, u: u64) -> Result<(), E> {
        self.put(unsigned(u));
        Ok(())
    }

    fn visit_f64<E>(self, f: f64) -> Result<(), E> {
        self.put(FieldValue::Float(f));
        Ok(())
    }

    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        self.put(FieldValue::Str(s.to_string()));
        Ok(())
    }

    fn visit_string<E>(self, s: String) -> Result<(), E> {
        self.put(FieldValue::Str(s));
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        if self.top {
            *self.collided = true;
        }
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.top {
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            *self.collided = true;
            return Ok(());
        }
        // Attribute lists stream (they are most of an OTLP record); a list
        // of scalars (tags) becomes its JSON text as before; anything else
        // is an error here, which sends the record through `Value`.
        let mut attributes = Vec::new();
        let mut scalars = Vec::new();
        while let Some(e) = seq.next_element_seed(ElementSeed)? {
            match e {
                Element::Attribute(k, v) => attributes.push((k, v)),
                Element::Scalar(v) => scalars.push(v),
            }
        }
        match (attributes.is_empty(), scalars.is_empty()) {
            (false, true) => {
                for (k, v) in attributes {
                    if let Some(v) = v {
                        self.out.push((join_key(self.path, &k), v));
                    }
                }
            }
            (true, _) => flatten_into(
                self.path.clone(),
                Value::Array(scalars),
                self.out,
                self.depth,
            ),
            (false, false) => return Err(serde::de::Error::custom("mixed array")),
        }
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Keys of this object so far (`keys[start..]`): a repeated key
        // keeps only its last value in a `Value`, so the reader gives up on
        // it.
        let Flatten {
            path,
            keys,
            out,
            depth,
            collided,
            wanted,
            ..
        } = self;
        let start = keys.len();
        let base = path.len();
        while let Some(k) = map.next_key_seed(KeySeed)? {
            if keys[start..].iter().any(|seen| *seen == *k) {
                *collided = true;
            }
            // `path.k`, or `k` at the top (as `join_key` makes it).
            path.truncate(base);
            if base > 0 {
                path.push('.');
            }
            path.push_str(&k);
            keys.push(k);
            if wanted.is_some_and(|w| !w.wants(path)) {
                map.next_value::<serde::de::IgnoredAny>()?;
                continue;
            }
            map.next_value_seed(Flatten {
                path: &mut *path,
                keys: &mut *keys,
                out: &mut *out,
                depth: depth + 1,
                collided: &mut *collided,
                top: false,
                wanted,
            })?;
        }
        keys.truncate(start);
        path.truncate(base);
        Ok(())
    }
}

/// An object key borrowed from the record's text when it has no escapes
/// (nearly always). serde's own `Cow<str>` always copies, which cost an
/// allocation per key of every object: a Kubernetes record has about
/// twenty, and the decoder spent a tenth of its time on them.
struct KeySeed;

impl<'de> serde::de::DeserializeSeed<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeySeed {
    type Value = std::borrow::Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(s))
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(s.to_string()))
    }

    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(s))
    }
}

/// An element of an array as [`Flatten`] reads it without a [`Value`]:
/// an OpenTelemetry attribute in its common shape, `{"key": k, "value":
/// {"stringValue": v}}` (or `intValue`, `doubleValue`, `boolValue`, or a
/// bare scalar value), with what [`flatten_into`] would make of its value
/// (nothing for null); or a scalar. Any other shape is an error, and the
/// record goes the [`Value`] way, which reads everything.
enum Element {
    Attribute(String, Option<FieldValue>),
    Scalar(Value),
}

struct ElementSeed;

impl<'de> serde::de::DeserializeSeed<'de> for ElementSeed {
    type Value = Element;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Element, D::Error> {
        d.deserialize_any(self)
    }
}

fn not_simple<E: serde::de::Error>() -> E {
    E::custom("not a plain attribute")
}

impl<'de> serde::de::Visitor<'de> for ElementSeed {
    type Value = Element;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an attribute or a scalar")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Element, E> {
        Ok(Element::Scalar(Value::Bool(b)))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Element, E> {
        Ok(Element::Scalar(Value::from(i)))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Element, E> {
        Ok(Element::Scalar(Value::from(u)))
    }

    fn visit_f64<E: serde::de::Error>(self, f: f64) -> Result<Element, E> {
        // `Value` has no NaN or infinity; JSON text cannot carry them.
        serde_json::Number::from_f64(f)
            .map(|n| Element::Scalar(Value::Number(n)))
            .ok_or_else(not_simple)
    }

    fn visit_str<E>(self, s: &str) -> Result<Element, E> {
        Ok(Element::Scalar(Value::String(s.to_string())))
    }

    fn visit_string<E>(self, s: String) -> Result<Element, E> {
        Ok(Element::Scalar(Value::String(s)))
    }

    fn visit_unit<E>(self) -> Result<Element, E> {
        Ok(Element::Scalar(Value::Null))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Element, A::Error> {
        let mut key = None;
        let mut value = None;
        while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*k {
                "key" if key.is_none() => key = Some(map.next_value::<String>()?),
                "value" if value.is_none() => {
                    value = Some(map.next_value_seed(ScalarSeed { any_value: true })?)
                }
                _ => return Err(not_simple()),
            }
        }
        match (key, value) {
            (Some(k), Some(v)) => Ok(Element::Attribute(k, v)),
            _ => Err(not_simple()),
        }
    }
}

/// A scalar as [`flatten_into`] stores it (null stores nothing); arrays
/// are an error (read the general way), and so are objects, except that
/// with `any_value` an OpenTelemetry AnyValue (`{"stringValue": v}` and its
/// siblings) is read as [`otlp_any_value`] unwraps it.
struct ScalarSeed {
    any_value: bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for ScalarSeed {
    type Value = Option<FieldValue>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ScalarSeed {
    type Value = Option<FieldValue>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a scalar")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        if !self.any_value {
            return Err(not_simple());
        }
        let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? else {
            return Err(not_simple());
        };
        let inner = ScalarSeed { any_value: false };
        let v = match &*k {
            "stringValue" | "doubleValue" | "boolValue" => map.next_value_seed(inner)?,
            "intValue" => match map.next_value_seed(inner)? {
                Some(FieldValue::Str(s)) => Some(match s.parse::<i64>() {
                    Ok(i) => FieldValue::Int(i),
                    Err(_) => FieldValue::Str(s),
                }),
                other => other,
            },
            _ => return Err(not_simple()),
        };
        // One key only: anything more is read the general way.
        match map.next_key::<serde::de::IgnoredAny>()? {
            None => Ok(v),
            Some(_) => Err(not_simple()),
        }
    }

    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Some(FieldValue::Bool(b)))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Self::Value, E> {
        Ok(Some(FieldValue::Int(i)))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Self::Value, E> {
        Ok(Some(unsigned(u)))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Self::Value, E> {
        Ok(Some(FieldValue::Float(f)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Some(FieldValue::Str(s.to_string())))
    }
    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Some(FieldValue::Str(s)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// An unsigned JSON integer as a field: an integer while it fits, as
/// `serde_json::Value::as_i64` reads it, else a float.
fn unsigned(u: u64) -> FieldValue {
    match i64::try_from(u) {
        Ok(i) => FieldValue::Int(i),
        Err(_) => FieldValue::Float(u as f64),
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
        // An OTLP export request (the Collector's file exporter): many
        // records in one line.
        if crate::parse::otlp::is_envelope(text) {
            return crate::parse::otlp::parse(text, &self.mapping, raw, out);
        }
        // Series exported from Prometheus' HTTP API or VictoriaMetrics.
        if crate::parse::promapi::is_export(text) {
            return crate::parse::promapi::parse(text, out);
        }
        let mut whole;
        let fields = if flatten_str_into(text, self.reader.as_deref(), &mut self.scratch) {
            &mut self.scratch.out
        } else {
            let value: Value = serde_json::from_str(text).map_err(|e| {
                ParseError::new(DeadLetterReason::InvalidJson, format!("invalid JSON: {e}"))
            })?;
            let Value::Object(obj) = value else {
                return Err(ParseError::new(
                    DeadLetterReason::InvalidJson,
                    "a JSON log record must be an object",
                ));
            };
            whole = flatten(obj).into_iter().collect();
            &mut whole
        };
        out.push(record_to_event(fields, &self.mapping, raw, text)?);
        Ok(())
    }
}

/// One flattened JSON log record as an event (a lone record, or one of an
/// OTLP envelope's): OpenTelemetry's body may be an AnyValue object, whose
/// string is the message.
pub(crate) fn record_to_event(
    fields: &mut FieldList,
    mapping: &FieldMapping,
    raw: &RawRecord,
    text: &str,
) -> Result<Event, ParseError> {
    if let Some(FieldValue::Str(s)) = take(fields, "body.stringValue") {
        set(fields, "body", FieldValue::Str(s));
    }
    lift_embedded_record(fields, mapping);
    to_event(fields, mapping, raw, text)
}

/// Whether `text` starts with a `key=value` pair (a cheap test before a
/// logfmt scan: the first token has `=` after a word of key characters).
fn starts_with_pair(text: &str) -> bool {
    let b = text.as_bytes();
    let key = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'@'))
        .count();
    key > 0 && b.get(key) == Some(&b'=')
}

/// A record whose message is itself a JSON log record takes that record's
/// fields: an application that logs JSON to stdout (Go's logrus and zap,
/// Node's pino and bunyan, log4j2's JSON layout, python-json-logger),
/// shipped by a Kubernetes shipper or Docker's `json-file` driver with no
/// parser of its own, arrives as `{"log": "{\"level\":\"error\",...}\n",
/// "kubernetes": {...}}`. Without this its level is unread (no error is
/// ever counted) and its templates are mined over JSON punctuation. A
/// logfmt record that states a level among other pairs (logrus' text formatter:
/// `time="..." level=error msg="..." duration=1.2s`) is read the same way,
/// so its message is the statement and its pairs are fields (a duration
/// becomes `duration_seconds`).
///
/// The inner record's message replaces the text (else its `event`, else
/// the text stays the message); for every other part
/// (time, level, service, host, trace...) the outer record's keys win,
/// and the inner record fills only the parts the outer one lacks: the
/// shipper's time and Kubernetes metadata are what every record of the
/// estate shares, while an application's own `service` or `timestamp`
/// field follows no convention. Other inner keys are added when the outer
/// record has no key of that name (`status`, `duration`, `error`...). A
/// JSON object with no message or level key is a payload, not a record,
/// and stays text. One level only: an inner message that is JSON again
/// stays text.
fn lift_embedded_record(fields: &mut FieldList, mapping: &FieldMapping) {
    let Some(at) = mapping.message.iter().find_map(|k| position(fields, k)) else {
        return;
    };
    let FieldValue::Str(text) = &fields[at].1 else {
        return;
    };
    let inner_text = text.trim();
    let roles = mapping.roles();
    let [_, message, level, severity, ..] = roles;
    let names = |inner: &FieldList, keys: &[String]| inner.iter().any(|(k, _)| keys.contains(k));
    let mut inner = if inner_text.starts_with('{') && inner_text.ends_with('}') {
        let reader = mapping.reader_keys_shared();
        let mut scratch = Scratch::default();
        let inner = if flatten_str_into(inner_text, reader.as_deref(), &mut scratch) {
            scratch.out
        } else {
            // Repeated keys or invalid JSON: the tree decides, as for a
            // record of its own; text that is not a JSON object stays text.
            match serde_json::from_str::<Value>(inner_text) {
                Ok(Value::Object(obj)) => flatten(obj).into_iter().collect(),
                _ => return,
            }
        };
        if !(names(&inner, message) || names(&inner, level) || names(&inner, severity)) {
            return;
        }
        inner
    } else if starts_with_pair(inner_text) {
        // logfmt (logrus' text formatter, go-kit's log, Prometheus' own
        // lines): a record only when it states a level among other pairs,
        // since an application may print `user=alice action=login` as
        // its message.
        let Ok(inner) = crate::parse::logfmt::scan(inner_text) else {
            return;
        };
        if !(inner.len() >= 2 && (names(&inner, level) || names(&inner, severity))) {
            return;
        }
        inner
    } else {
        return;
    };
    // The inner record's message replaces the text; with none, its
    // `event` does (as for a logfmt record of its own:
    // `severity=error event=database_timeout`), else the text stays the
    // message and the inner record adds its level and fields.
    if names(&inner, message) || inner.iter().any(|(k, _)| k == "event") {
        fields.remove(at);
    }
    // The parts the outer record already has, decided before any inner
    // key is added.
    let taken: Vec<bool> = roles
        .iter()
        .map(|keys| fields.iter().any(|(f, _)| keys.contains(f)))
        .collect();
    inner.retain(|(k, _)| {
        !fields.iter().any(|(f, _)| f == k)
            && !roles
                .iter()
                .zip(&taken)
                .any(|(keys, taken)| *taken && keys.contains(k))
    });
    fields.append(&mut inner);
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::{Level, Timestamp};

    /// A reader that leaves out keys the mapping will not read gives the
    /// events a reader of every key gives (the fields the engine keeps,
    /// the service, level, message, trace id, derived status and
    /// duration): on each shape of shipped record the mapping knows.
    #[test]
    fn reading_only_what_the_mapping_reads_changes_no_event() {
        let records = [
            // Fluent Bit's Kubernetes filter: the level inside `log`,
            // trace and span ids, labels and annotations.
            r#"{"time":"2026-01-05T10:00:00.1Z","stream":"stdout","log":"10:00:00.100 ERROR c.s.ContactsServiceImpl#37 TraceID: 6f3c1a2b9d8e7f60 SpanID: 576f0a1b2c3d4e5f [get] boom","trace_id":"6f3c1a2b9d8e7f60","span_id":"576f0a1b2c3d4e5f","kubernetes":{"pod_name":"contacts-1","namespace_name":"tt","host":"n1","container_name":"contacts","labels":{"app":"contacts","pod-template-hash":"x"},"annotations":{"a.b/c":"d"}}}"#,
            // ECS (Filebeat): dotted keys nested, status and duration.
            r#"{"@timestamp":"2026-01-05T10:00:01Z","log":{"level":"warn"},"message":"GET /x","service":{"name":"web"},"http":{"response":{"status_code":503}},"event":{"duration":1200000000,"dataset":"nginx"},"host":{"name":"h1"},"agent":{"type":"filebeat","version":"8"}}"#,
            // Vector's OpenTelemetry source.
            r#"{"timestamp":"2026-01-05T10:00:02Z","severity_text":"ERROR","message":"db down","resources":{"service.name":"orders","host.name":"h2"},"attributes":{"exception.type":"java.io.IOException","latency_ms":"300"},"trace_id":"t1"}"#,
            // Docker's fluentd driver: the container names the service.
            r#"{"time":"2026-01-05T10:00:03Z","container_name":"/shop-web-1","source":"stderr","log":"panic: nil map","pid":7}"#,
            // logfmt-like JSON with an event and no message, a session key.
            r#"{"ts":1767607204,"event":"deploy_started","level":"info","session_id":"s1","logger":"app.main","thread":"t-1","extra":{"deep":{"deeper":[1,2]}}}"#,
            // OpenTelemetry's body as an AnyValue.
            r#"{"timeUnixNano":"1767607205000000000","severityText":"INFO","body":{"stringValue":"hello"},"resource":{"attributes":{"service.name":"cart"}}}"#,
        ];
        let mapping = FieldMapping {
            kept: Some(vec![
                "status".into(),
                "exception.type".into(),
                "duration_seconds".into(),
                "session_id".into(),
            ]),
            ..FieldMapping::default()
        };
        let mut skipping = JsonParser::with_mapping(mapping.clone());
        assert!(skipping.reader.is_some());
        let mut whole = JsonParser {
            mapping: std::sync::Arc::new(mapping),
            reader: None,
            scratch: Scratch::default(),
        };
        for text in records {
            let raw = RawRecord::default();
            let (mut a, mut b) = (vec![], vec![]);
            skipping.parse(text, &raw, &mut a).unwrap();
            whole.parse(text, &raw, &mut b).unwrap();
            assert_eq!(a, b, "{text}");
        }
        // And it does leave keys out before reading them.
        let keys = FieldMapping {
            kept: Some(vec![]),
            ..FieldMapping::default()
        }
        .reader_keys()
        .unwrap();
        let fields = flatten_str(records[0], Some(&keys)).unwrap();
        assert!(fields.iter().any(|(k, _)| k == "kubernetes.labels.app"));
        assert!(!fields
            .iter()
            .any(|(k, _)| k.starts_with("kubernetes.annotations")));
    }

    /// A decoder makes a parser per input: they share the mapping's reader
    /// keys (made once, not 21,000 times for 21,000 files), and a clone of
    /// the mapping, changed, reads its own.
    #[test]
    fn parsers_of_one_mapping_share_its_reader_keys() {
        let mapping = std::sync::Arc::new(FieldMapping {
            kept: Some(vec!["status".into()]),
            ..FieldMapping::default()
        });
        let a = JsonParser::with_shared(mapping.clone());
        let b = JsonParser::with_shared(mapping.clone());
        assert!(std::sync::Arc::ptr_eq(
            a.reader.as_ref().unwrap(),
            b.reader.as_ref().unwrap()
        ));
        let mut every = (*mapping).clone();
        every.kept = None;
        assert!(JsonParser::with_mapping(every).reader.is_none());
    }

    /// The streaming reader gives what the `Value` path gives, or steps
    /// aside.
    #[test]
    fn streaming_flatten_matches_the_value_path() {
        let deep = format!("{}1{}", "{\"a\":".repeat(20), "}".repeat(20));
        let cases = [
            r#"{"a":1,"b":{"c":"x","d":[1,2]},"e":null,"f":true,"g":-3,"h":1.5}"#,
            r#"{"big":18446744073709551615,"neg":-9223372036854775808,"e":1e300}"#,
            r#"{"s":"caf\u00e9 \"q\"","k\u00e9y":{"x":"y"},"":{"z":1}}"#,
            r#"{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}},{"key":"n","value":{"intValue":"7"}}]}"#,
            r#"{"body":{"stringValue":"hi"},"o":{},"arr":[]}"#,
            r#"{"a":[{"value":{"doubleValue":44.999},"key":"d"},{"key":"b","value":{"boolValue":true}},{"key":"i","value":{"intValue":7}},{"key":"x","value":{"intValue":"x7"}},{"key":"n","value":{"stringValue":null}},{"key":"bare","value":"v"},{"key":"u","value":18446744073709551615}]}"#,
            r#"{"tags":["a","b",1,null,true,2.5],"empty":[]}"#,
            // One key name in sibling and nested objects is no repeat.
            r#"{"a":{"x":1,"y":{"x":2,"z":{}}},"b":{"x":3},"x":4,"c":{"x":{"x":5}}}"#,
            deep.as_str(),
        ];
        for text in cases {
            let Value::Object(obj) = serde_json::from_str::<Value>(text).unwrap() else {
                panic!("{text}")
            };
            let streamed =
                flatten_str(text, None).map(|f| f.into_iter().collect::<BTreeMap<_, _>>());
            assert_eq!(streamed, Some(flatten(obj)), "{text}");
        }
        // Shapes the streaming reader leaves to `Value`: the parser's
        // fields are still what the `Value` path gives.
        for text in [
            r#"{"a":[{"key":"k","value":{"arrayValue":{"values":[{"stringValue":"x"}]}}}]}"#,
            r#"{"a":[{"key":"k","value":{"stringValue":"x","intValue":"1"}}]}"#,
            r#"{"a":[{"key":"k","value":{"stringValue":"x"},"extra":1}]}"#,
            r#"{"a":[{"key":"k","value":{}}]}"#,
            r#"{"a":[{"key":1,"value":{"stringValue":"x"}}]}"#,
            r#"{"a":[{"key":"k"}]}"#,
            r#"{"a":[{"key":"k","value":{"stringValue":"x"}},"tag"]}"#,
            r#"{"a":[[1,2],[3]]}"#,
            r#"{"a":[{"key":"k","value":{"stringValue":"x"}},{"key":"k","value":{"stringValue":"y"}}]}"#,
        ] {
            assert_eq!(flatten_str(text, None), None, "{text}");
            // ...and the parser reads them that way.
            let line = text.replacen('{', r#"{"ts":"2026-01-05T00:00:00Z","#, 1);
            let mut events = vec![];
            JsonParser::default()
                .parse(&line, &RawRecord::default(), &mut events)
                .unwrap();
            assert_eq!(events.len(), 1, "{text}");
        }
        // Where the answers could differ, the reader steps aside.
        for text in [
            r#"{"a":1,"a":2}"#,
            r#"{"a":{"x":1},"a":{"y":2}}"#,
            r#"{"a.b":1,"a":{"b":2}}"#,
            r#"{"a":1} x"#,
            r#"[1,2]"#,
            r#""text""#,
            r#"null"#,
            r#"{"a":"#,
        ] {
            assert_eq!(flatten_str(text, None), None, "{text}");
        }
    }

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

    /// Vector's `opentelemetry` source (legacy namespace) writes the
    /// resource's attributes under `resources` and the log's under
    /// `attributes`; shape from Vector's documentation of the source's
    /// output.
    #[test]
    fn vector_opentelemetry_source() {
        let r = log(
            r#"{"timestamp":"2026-01-05T10:00:00Z","message":"payment declined","severity_text":"ERROR","severity_number":17,"resources":{"service.name":"payments","host.name":"node-2"},"attributes":{"http.status_code":402},"trace_id":"5b8efff798038103d269b633813fc60c","source_type":"opentelemetry"}"#,
        );
        assert_eq!(r.service.as_deref(), Some("payments"));
        assert_eq!(r.host.as_deref(), Some("node-2"));
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.message, "payment declined");
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

    /// A consumer that reads a few fields gets those, the stream's keys
    /// and what ingest derives (`status`, `duration_seconds`, from the
    /// names shippers use), and none of the labels it never reads; the
    /// record's own parts (service, host...) come from the mapping as
    /// before.
    #[test]
    fn a_record_keeps_only_the_fields_its_consumer_reads() {
        let line = r#"{"time":"2026-01-05T10:00:00Z","log":"GET /cart 200\n","stream":"stdout","block_id":"blk_7","http":{"response":{"status_code":503}},"latency_ms":1200,"kubernetes":{"pod_name":"cart-7d9","container_name":"cart","host":"node-3","labels":{"app":"cart","pod-template-hash":"7d9"},"annotations":{"checksum/config":"abc"}}}"#;
        let kept = |kept: Option<Vec<String>>| {
            let mapping = FieldMapping {
                kept,
                ..FieldMapping::default()
            };
            let mut out = vec![];
            JsonParser::with_mapping(mapping)
                .parse(line, &RawRecord::default(), &mut out)
                .unwrap();
            match out.remove(0) {
                Event::Log(r) => r,
                other => panic!("{other:?}"),
            }
        };
        let r = kept(Some(vec!["block_id".into(), "status".into()]));
        let keys: Vec<&str> = r.fields.keys().map(String::as_str).collect();
        assert_eq!(keys, ["block_id", "status", "stream"]);
        assert_eq!(r.fields["status"], FieldValue::Int(503));
        assert_eq!(
            (
                r.service.as_deref(),
                r.host.as_deref(),
                r.container.as_deref()
            ),
            (Some("cart"), Some("node-3"), Some("cart-7d9"))
        );
        let r = kept(Some(vec!["duration_seconds".into()]));
        assert_eq!(r.fields["duration_seconds"], FieldValue::Float(1.2));
        // The default keeps every field.
        let r = kept(None);
        for k in [
            "block_id",
            "latency_ms",
            "kubernetes.labels.pod-template-hash",
            "kubernetes.annotations.checksum/config",
        ] {
            assert!(r.fields.contains_key(k), "{k}: {:?}", r.fields);
        }
    }

    /// Where a record names no service field: the app label Kubernetes
    /// recommends wins over the container, and a Docker container's name
    /// (the fluentd driver's `/name`) stands for the service.
    #[test]
    fn a_service_from_kubernetes_labels_or_a_container_name() {
        let r = log(
            r#"{"time":"2026-01-05T10:00:00Z","log":"ok","kubernetes":{"pod_name":"cart-7d9-x1","container_name":"server","host":"node-3","labels":{"app.kubernetes.io/name":"cart","pod-template-hash":"7d9"}}}"#,
        );
        assert_eq!(r.service.as_deref(), Some("cart"));
        assert_eq!(r.container.as_deref(), Some("cart-7d9-x1"));
        let r = log(
            r#"{"time":"2026-01-05T10:00:00Z","log":"GET / 200","source":"stdout","container_name":"/shop-web-1","container_id":"4e1f0c"}"#,
        );
        assert_eq!(r.service.as_deref(), Some("shop-web-1"));
        let r = log(
            r#"{"@timestamp":"2026-01-05T10:00:00Z","message":"ok","container":{"id":"4e1f0c","name":"billing"}}"#,
        );
        assert_eq!(r.service.as_deref(), Some("billing"));
        // An id alone names nothing.
        let r = log(r#"{"time":"2026-01-05T10:00:00Z","log":"ok","container_id":"4e1f0c"}"#);
        assert_eq!(r.service, None);
    }

    /// A syslog line shipped whole in a JSON record (a shipper that ran
    /// no syslog parser: Fluent Bit's or Vector's raw `message`): RFC 5424
    /// and BSD lines give the level their priority states, the program as
    /// the service when the record names none, the host, and the message
    /// after the header; the record keeps its own time.
    #[test]
    fn a_syslog_line_inside_a_json_record_is_read_as_syslog() {
        let r = log(
            r#"{"time":"2026-01-05T10:00:00Z","message":"<11>1 2026-01-05T10:00:00Z db-1 postgres 77 - - could not connect to server"}"#,
        );
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.service.as_deref(), Some("postgres"));
        assert_eq!(r.host.as_deref(), Some("db-1"));
        assert_eq!(r.message, "could not connect to server");
        let r = log(
            r#"{"time":"2026-01-05T10:00:01Z","message":"<14>Jan  5 10:00:01 db-1 postgres[77]: checkpoint starting","service":"pg"}"#,
        );
        assert_eq!(r.level, Some(Level::Info));
        // The record's own service wins over the program.
        assert_eq!(r.service.as_deref(), Some("pg"));
        assert_eq!(r.message, "checkpoint starting");
        assert_eq!(
            r.timestamp,
            Timestamp::parse_rfc3339("2026-01-05T10:00:01Z").unwrap()
        );
        // No priority: no level, but the program and the statement.
        let r = log(
            r#"{"time":"2026-01-05T10:00:02Z","log":"Jan  5 10:00:02 node-1 kernel: Out of memory: Killed process 1234\n"}"#,
        );
        assert_eq!(r.level, None);
        assert_eq!(r.service.as_deref(), Some("kernel"));
        assert_eq!(r.host.as_deref(), Some("node-1"));
        assert_eq!(r.message, "Out of memory: Killed process 1234");
        // Text that only starts like it stays as it was.
        let r = log(r#"{"time":"2026-01-05T10:00:03Z","message":"Jan  5 was a Monday"}"#);
        assert_eq!(r.message, "Jan  5 was a Monday");
        assert_eq!(r.service, None);
    }

    /// A Kubernetes component's klog line shipped raw: the level, the
    /// file and line as the logger, the thread, and the statement alone
    /// as the message.
    #[test]
    fn a_shipped_klog_line_is_split_like_an_application_layout() {
        let r = log(
            r#"{"time":"2026-01-05T10:00:01Z","log":"E0105 10:00:01.382123       1 reflector.go:138] failed to list *v1.Pod: connection refused","stream":"stderr","kubernetes":{"pod_name":"kube-scheduler-cp1","container_name":"kube-scheduler"}}"#,
        );
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.message, "failed to list *v1.Pod: connection refused");
        assert_eq!(
            r.field("logger"),
            Some(&FieldValue::Str("reflector.go:138".into()))
        );
        assert_eq!(r.field("thread"), Some(&FieldValue::Str("1".into())));
        assert_eq!(r.service.as_deref(), Some("kube-scheduler"));
    }

    /// A shipper that ran no parser: the level, the logger and the trace
    /// context are in the text. The record gets the level and the logger
    /// as fields and the statement as its message, as a parser would have
    /// made it; the ids it carries as fields leave the text.
    #[test]
    fn an_application_layout_in_the_text_is_split_off_the_statement() {
        let r = log(
            r#"{"time":"2023-01-29T08:42:09.487Z","log":"16:42:09.486 ERROR t.c.Travel2Controller#115 TraceID: 6f3cbf058c2765548a39ad724905d6a1 SpanID: 576f9c38fc25e197 [query][Query TripResponse]","trace_id":"6f3cbf058c2765548a39ad724905d6a1","span_id":"576f9c38fc25e197","kubernetes":{"pod_name":"travel2-5c6","container_name":"server","labels":{"app":"travel2"}}}"#,
        );
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.message, "[query][Query TripResponse]");
        assert_eq!(
            r.field("logger"),
            Some(&FieldValue::Str("t.c.Travel2Controller#115".into()))
        );
        assert_eq!(
            r.trace_id.as_deref(),
            Some("6f3cbf058c2765548a39ad724905d6a1")
        );
        // Spring Boot's console layout, no trace ids: the statement after
        // the logger's ` : `.
        let r = log(
            r#"{"time":"2026-01-05T10:00:00Z","log":"2026-01-05 10:00:00.112  WARN 1 --- [main] o.s.b.StartupInfoLogger : slow start"}"#,
        );
        assert_eq!(r.level, Some(Level::Warn));
        assert_eq!(r.message, "slow start");
        assert_eq!(r.field("thread"), Some(&FieldValue::Str("main".into())));
        // A logfmt record in the text is read as the record (see
        // `a_logfmt_record_inside_the_shipped_line_is_read_as_the_record`).
        let r = log(
            r#"{"time":"2026-01-05T10:00:00Z","log":"time=\"2026-01-05T10:00:00Z\" level=error msg=\"db down\""}"#,
        );
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.message, "db down");
        // A logger field the record carries wins over the text's.
        let r = log(
            r#"{"time":"2026-01-05T10:00:00Z","logger":"mine","log":"16:42:09.486 INFO  c.e.Foo#1 hello"}"#,
        );
        assert_eq!(r.field("logger"), Some(&FieldValue::Str("mine".into())));
        assert_eq!(r.message, "hello");
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

    /// Applications that log JSON to stdout, shipped with no parser of
    /// their own: the line inside `log` is the record. Lines in the shapes
    /// these loggers write (Online Boutique's frontend, logrus with its
    /// `severity`/`message` field map, GoogleCloudPlatform/microservices-demo,
    /// Apache-2.0; pino's README; log4j2's JsonLayout documentation;
    /// Docker's json-file driver documentation; Serilog's compact JSON
    /// format, CLEF).
    #[test]
    fn a_json_record_inside_the_shipped_line_is_read_as_the_record() {
        let k8s = |app: &str, line: &str| {
            let outer = serde_json::json!({
                "time": "2023-01-30T08:00:01.600Z",
                "stream": "stdout",
                "log": format!("{line}\n"),
                "kubernetes": {"pod_name": format!("{app}-7d9f8-x2x"), "host": "node-1",
                               "labels": {"app": app}},
            });
            log(&outer.to_string())
        };
        // logrus (Go): severity and message, a request field kept.
        let r = k8s(
            "frontend",
            r#"{"error":"failed to get ads: rpc error: code = Unavailable","http.req.id":"9b1c","http.req.method":"GET","http.req.path":"/product/OLJCESPC7Z","message":"failed to retrieve ads","session":"x1","severity":"warning","timestamp":"2023-01-30T08:00:01.512Z"}"#,
        );
        assert_eq!(r.level, Some(Level::Warn));
        assert_eq!(r.message, "failed to retrieve ads");
        assert_eq!(r.service.as_deref(), Some("frontend"));
        assert_eq!(r.host.as_deref(), Some("node-1"));
        assert_eq!(
            r.fields["error"],
            FieldValue::Str("failed to get ads: rpc error: code = Unavailable".into())
        );
        // The shipper's time, not the application's, when both are there.
        assert_eq!(
            r.timestamp,
            Timestamp::parse_rfc3339("2023-01-30T08:00:01.600Z").unwrap()
        );
        // pino (Node): a numeric level, `msg`.
        let r = k8s(
            "currencyservice",
            r#"{"level":50,"time":1675065601123,"pid":1,"hostname":"currencyservice-7d9f8-x2x","msg":"conversion request failed","v":1}"#,
        );
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.message, "conversion request failed");
        assert_eq!(r.service.as_deref(), Some("currencyservice"));
        // log4j2's JsonLayout (Java).
        let r = k8s(
            "adservice",
            r#"{"instant":{"epochSecond":1675065601,"nanoOfSecond":123000000},"thread":"grpc-default-executor-0","level":"ERROR","loggerName":"hipstershop.AdService","message":"GetAds failed","endOfBatch":false}"#,
        );
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.message, "GetAds failed");
        // Docker's json-file driver, with no Kubernetes metadata: the inner
        // record's own service fills the part the outer one lacks.
        let r = log(
            r#"{"log":"{\"level\":\"error\",\"ts\":1675065601.5,\"service\":\"checkout\",\"msg\":\"payment declined\",\"trace_id\":\"4bf92f3577b34da6\"}\n","stream":"stderr","time":"2023-01-30T08:00:01.600000000Z"}"#,
        );
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.message, "payment declined");
        assert_eq!(r.service.as_deref(), Some("checkout"));
        assert_eq!(r.trace_id.as_deref(), Some("4bf92f3577b34da6"));
        // Serilog's compact JSON (.NET): `@mt` and `@l`.
        let r = k8s(
            "cartservice",
            r#"{"@t":"2023-01-30T08:00:01.5000000Z","@mt":"Can't access cart storage {Error}","@l":"Error","Error":"timeout"}"#,
        );
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.message, "Can't access cart storage {Error}");
    }

    /// logfmt inside the shipped line, as logrus' text formatter and
    /// go-kit's logger write it (lines in the shape of their
    /// documentation): the statement is the message, the pairs fields.
    #[test]
    fn a_logfmt_record_inside_the_shipped_line_is_read_as_the_record() {
        let k8s = |line: &str| {
            let outer = serde_json::json!({
                "time": "2023-01-30T08:00:01.600Z",
                "log": format!("{line}\n"),
                "kubernetes": {"labels": {"app": "shipping"}},
            });
            log(&outer.to_string())
        };
        let r = k8s(
            r#"time="2023-01-30T08:00:01Z" level=error msg="failed to get quote" error="rpc error: code = Unavailable""#,
        );
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.message, "failed to get quote");
        assert_eq!(r.service.as_deref(), Some("shipping"));
        assert_eq!(
            r.fields["error"],
            FieldValue::Str("rpc error: code = Unavailable".into())
        );
        let r = k8s(
            r#"level=warn ts=2023-01-30T08:00:01.123Z caller=quote.go:42 msg="slow quote" duration=1.5s"#,
        );
        assert_eq!(r.level, Some(Level::Warn));
        assert_eq!(r.message, "slow quote");
        assert_eq!(r.fields["duration_seconds"], FieldValue::Float(1.5));
        // No message: the record's `event` is (as in a logfmt file),
        // else the text stays the message and gains the level.
        let r = k8s("severity=error event=database_timeout duration=0.794s");
        assert_eq!(
            (r.level, r.message.as_str()),
            (Some(Level::Error), "database_timeout")
        );
        let r = k8s(r#"{"level":"error","code":7}"#);
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.message, "{\"level\":\"error\",\"code\":7}\n");
        // Pairs with no level are what the application printed.
        let r = k8s("user=alice action=login");
        assert_eq!(r.message, "user=alice action=login\n");
        assert_eq!(r.level, None);
    }

    /// A JSON object that names no message and no level is what the
    /// application printed, not a record: it stays the message. So does
    /// text that only looks like an object.
    #[test]
    fn a_json_payload_in_the_line_stays_text() {
        for inner in [r#"{"cart_id":"c1","items":3}"#, r#"{not json}"#] {
            let outer = serde_json::json!({
                "time": "2023-01-30T08:00:01Z",
                "log": inner,
                "kubernetes": {"labels": {"app": "cart"}},
            });
            let r = log(&outer.to_string());
            assert_eq!(r.message, inner);
            assert_eq!(r.level, None);
        }
    }

    /// GELF as Docker's `gelf` logging driver sends it (field names from
    /// the GELF 1.1 specification and Docker's driver documentation): the
    /// short message, syslog's numeric severity, the container's name as
    /// the service when nothing else names one.
    #[test]
    fn gelf_from_dockers_driver() {
        let r = log(
            r#"{"version":"1.1","host":"docker-host-1","short_message":"connection refused","timestamp":1675065601.123,"level":3,"_container_id":"3c5ba0a5d63e","_container_name":"/shop-web-1","_image_name":"shop/web:1.4","_tag":"3c5ba0a5d63e","_command":"/app"}"#,
        );
        assert_eq!(r.message, "connection refused");
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.host.as_deref(), Some("docker-host-1"));
        assert_eq!(r.service.as_deref(), Some("shop-web-1"));
        assert_eq!(r.container.as_deref(), Some("/shop-web-1"));
    }

    /// MongoDB's structured log (4.4 on, from its documentation's
    /// examples): the time under `t.$date`, the severity letter in `s`.
    /// Another record's `s` that holds no level stays a field, and a level
    /// key that holds no level gives way to the next one.
    #[test]
    fn mongodb_structured_log_and_keys_that_hold_no_level() {
        let r = log(
            r#"{"t":{"$date":"2020-05-20T19:18:40.604+00:00"},"s":"E","c":"STORAGE","id":22435,"ctx":"conn12","msg":"WiredTiger error","attr":{"error":28,"message":"No space left on device"}}"#,
        );
        assert_eq!(
            r.timestamp,
            Timestamp::parse_rfc3339("2020-05-20T19:18:40.604Z").unwrap()
        );
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.message, "WiredTiger error");
        let r = log(
            r#"{"t":{"$date":"2020-05-20T19:18:40.604+00:00"},"s":"D2","c":"NETWORK","msg":"x"}"#,
        );
        assert_eq!(r.level, Some(Level::Debug));
        let r = log(r#"{"time":"2023-01-30T08:00:01Z","s":"sku-42","msg":"x"}"#);
        assert_eq!(r.level, None);
        assert_eq!(r.fields["s"], FieldValue::Str("sku-42".into()));
        let r =
            log(r#"{"time":"2023-01-30T08:00:01Z","level":"banana","severity":"error","msg":"x"}"#);
        assert_eq!(r.level, Some(Level::Error));
    }

    /// A file of records that name no service is its file's (as a plain
    /// application log is); a Kafka topic's records stay without one.
    #[test]
    fn records_naming_no_service_belong_to_their_file() {
        let line = r#"{"t":{"$date":"2020-05-20T19:18:40.604+00:00"},"s":"W","c":"CONTROL","msg":"Access control is not enabled"}"#;
        let mut p = JsonParser::with_mapping(FieldMapping::default());
        let read = |p: &mut JsonParser, raw: RawRecord| {
            let mut out = vec![];
            p.parse(line, &raw, &mut out).unwrap();
            match out.remove(0) {
                Event::Log(r) => r,
                other => panic!("{other:?}"),
            }
        };
        let file = RawRecord::line("/var/log/mongodb/mongod.log".into(), 1, line.into());
        assert_eq!(read(&mut p, file).service.as_deref(), Some("mongod"));
        let topic = RawRecord {
            origin: "logs".into(),
            partition: Some(0),
            ..Default::default()
        };
        assert_eq!(read(&mut p, topic).service, None);
    }

    /// systemd's journal as `journalctl -o json` writes it (and Docker's
    /// journald driver): microseconds since the epoch, the syslog
    /// priority, the program as the service unless a container names one.
    #[test]
    fn journal_entries() {
        let r = log(
            r#"{"__REALTIME_TIMESTAMP":"1675010545101000","PRIORITY":"3","_HOSTNAME":"node-1","SYSLOG_IDENTIFIER":"containerd","_SYSTEMD_UNIT":"containerd.service","MESSAGE":"failed to pull image","_PID":"812"}"#,
        );
        assert_eq!(r.timestamp, Timestamp::from_millis(1_675_010_545_101));
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.message, "failed to pull image");
        assert_eq!(r.host.as_deref(), Some("node-1"));
        assert_eq!(r.service.as_deref(), Some("containerd"));
        let r = log(
            r#"{"__REALTIME_TIMESTAMP":"1675010545101000","PRIORITY":"6","_SYSTEMD_UNIT":"nginx.service","MESSAGE":"started"}"#,
        );
        assert_eq!(r.service.as_deref(), Some("nginx"));
        // Docker's journald driver: the identifier is the container's id.
        let r = log(
            r#"{"__REALTIME_TIMESTAMP":"1675010545101000","PRIORITY":"6","CONTAINER_NAME":"shop-web-1","CONTAINER_ID":"3c5ba0a5d63e","SYSLOG_IDENTIFIER":"3c5ba0a5d63e","MESSAGE":"GET / 200"}"#,
        );
        assert_eq!(r.service.as_deref(), Some("shop-web-1"));
    }

    /// Numeric levels: pino's and bunyan's (10-60) and syslog's severity as
    /// GELF writes it (0-7); other numbers are no level.
    #[test]
    fn numeric_levels_in_both_conventions() {
        for (level, want) in [
            ("60", Some(Level::Fatal)),
            ("50", Some(Level::Error)),
            ("40", Some(Level::Warn)),
            ("30", Some(Level::Info)),
            ("20", Some(Level::Debug)),
            ("10", Some(Level::Trace)),
            ("3", Some(Level::Error)),
            ("4", Some(Level::Warn)),
            ("6", Some(Level::Info)),
            ("7", Some(Level::Debug)),
            ("\"3\"", Some(Level::Error)),
            ("99", None),
            ("8", None),
        ] {
            let r = log(&format!(
                r#"{{"time":"2023-01-30T08:00:01Z","level":{level},"msg":"x"}}"#
            ));
            assert_eq!(r.level, want, "level {level}");
        }
    }
}
