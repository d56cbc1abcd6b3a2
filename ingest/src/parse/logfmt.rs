//! logfmt: `ts=... level=error event=database_timeout duration=1.2s msg="a b"`.
//!
//! Keys are runs of non-space characters up to `=`; values are bare words or
//! double-quoted strings with `\"`, `\\`, `\n`, `\t` escapes; a key with no
//! `=` is a bare key (boolean true). Values that look like integers or
//! floats are kept as numbers.

use crate::deadletter::DeadLetterReason;
use crate::parse::fields::{dedup_keep_last, to_event, FieldList, FieldMapping};
use crate::parse::{ParseError, Parser};
use crate::record::RawRecord;
use models::{Event, FieldValue};

/// The logfmt parser.
///
/// A line with no `key=value` pair at all is read as a plain-text record
/// when the plain layout fits it: a program that logs logfmt often has a
/// library that logs through another logger (Go's standard `log`:
/// `2026/01/05 10:00:01 http: Accept error: ... too many open files`), and
/// those lines carry evidence. Anything else that is not logfmt is still a
/// dead letter.
#[derive(Debug, Clone, Default)]
pub struct LogfmtParser {
    /// Shared by the parsers of every input (one per origin).
    mapping: std::sync::Arc<FieldMapping>,
    /// Made at the first line that needs it.
    plain: Option<Box<crate::parse::plain::PlainParser>>,
}

impl LogfmtParser {
    /// With a custom field mapping.
    pub fn with_mapping(mapping: FieldMapping) -> Self {
        Self::with_shared(std::sync::Arc::new(mapping))
    }

    /// With a field mapping shared with other parsers.
    pub fn with_shared(mapping: std::sync::Arc<FieldMapping>) -> Self {
        LogfmtParser {
            mapping,
            plain: None,
        }
    }
}

/// Split a logfmt line into key/value pairs.
/// A key given twice keeps its last value.
pub fn scan(line: &str) -> Result<FieldList, ParseError> {
    let b = line.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let mut pairs = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            if b[i] == b'"' {
                return Err(ParseError::new(
                    DeadLetterReason::InvalidLogfmt,
                    format!("unexpected quote in key at byte {i}"),
                ));
            }
            i += 1;
        }
        let key = &line[start..i];
        if i >= b.len() || b[i] != b'=' {
            out.push((key.to_string(), FieldValue::Bool(true)));
            continue;
        }
        i += 1; // '='
        if key.is_empty() {
            return Err(ParseError::new(
                DeadLetterReason::InvalidLogfmt,
                format!("'=' without a key at byte {}", i - 1),
            ));
        }
        pairs += 1;
        if i < b.len() && b[i] == b'"' {
            const ESCAPES: [(u8, char); 5] = [
                (b'n', '\n'),
                (b't', '\t'),
                (b'r', '\r'),
                (b'"', '"'),
                (b'\\', '\\'),
            ];
            let Some((val, next)) = super::unquote(line, i + 1, &ESCAPES) else {
                return Err(ParseError::new(
                    DeadLetterReason::InvalidLogfmt,
                    format!("unterminated quoted value for key {key:?}"),
                ));
            };
            i = next;
            out.push((key.to_string(), FieldValue::Str(val)));
        } else {
            let vs = i;
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            out.push((key.to_string(), typed(&line[vs..i])));
        }
    }
    if pairs == 0 {
        return Err(ParseError::new(
            DeadLetterReason::InvalidLogfmt,
            "no key=value pair in the line",
        ));
    }
    dedup_keep_last(&mut out);
    Ok(out)
}

fn typed(s: &str) -> FieldValue {
    if let Ok(i) = s.parse::<i64>() {
        return FieldValue::Int(i);
    }
    if s.bytes().any(|c| c.is_ascii_digit()) && !s.bytes().any(|c| c.is_ascii_alphabetic()) {
        if let Ok(f) = s.parse::<f64>() {
            return FieldValue::Float(f);
        }
    }
    match s {
        "true" => FieldValue::Bool(true),
        "false" => FieldValue::Bool(false),
        _ => FieldValue::Str(s.to_string()),
    }
}

impl Parser for LogfmtParser {
    fn name(&self) -> &'static str {
        "logfmt"
    }

    fn parse(
        &mut self,
        text: &str,
        raw: &RawRecord,
        out: &mut Vec<Event>,
    ) -> Result<(), ParseError> {
        let mut fields = match scan(text) {
            Ok(fields) => fields,
            Err(e) if !text.contains('=') => {
                let plain = self.plain.get_or_insert_with(|| {
                    Box::new(
                        crate::parse::plain::PlainParser::preset("plain", 1970).expect("a preset"),
                    )
                });
                // The logfmt error is the one to report: the file is logfmt.
                return plain.parse(text, raw, out).map_err(|_| e);
            }
            Err(e) => return Err(e),
        };
        out.push(to_event(&mut fields, &self.mapping, raw, text)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Go standard-library `log` line among logfmt records (net/http's
    /// accept-loop message, as Go 1.21 writes it) is kept as a plain
    /// record; words that are neither stay a dead letter.
    #[test]
    fn another_layout_inside_logfmt_is_read_as_plain() {
        let mut p = LogfmtParser::default();
        let raw = RawRecord {
            origin: "logs/api.log".into(),
            ..RawRecord::default()
        };
        let mut out = Vec::new();
        p.parse(
            "2026/01/05 10:00:01 http: Accept error: accept tcp [::]:8080: accept4: too many open files; retrying in 5ms",
            &raw,
            &mut out,
        )
        .unwrap();
        let Event::Log(r) = &out[0] else { panic!() };
        assert!(r.message.contains("too many open files"), "{}", r.message);
        // The file's service (its logfmt records' too), not the words
        // where a header's component would be.
        assert_eq!(r.service.as_deref(), Some("api"));
        assert_eq!(
            r.timestamp,
            models::Timestamp::parse_rfc3339("2026-01-05T10:00:01Z").unwrap()
        );
        let e = p.parse("just some words", &raw, &mut out).unwrap_err();
        assert_eq!(e.reason, DeadLetterReason::InvalidLogfmt);
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value() {
        let f = scan("level=info msg=a level=error n=1").unwrap();
        assert_eq!(f.len(), 3);
        let level = crate::parse::fields::get(&f, "level");
        assert_eq!(level, Some(&FieldValue::Str("error".into())));
        // Past the short-list limit the sorted path gives the same answer.
        let mut line: String = (0..40).map(|i| format!("k{i}={i} ")).collect();
        line.push_str("k3=last");
        let f = scan(&line).unwrap();
        assert_eq!(f.len(), 40);
        let k3 = crate::parse::fields::get(&f, "k3");
        assert_eq!(k3, Some(&FieldValue::Str("last".into())));
    }
    use models::Level;

    fn log(line: &str) -> models::LogRecord {
        let mut out = vec![];
        LogfmtParser::default()
            .parse(line, &RawRecord::default(), &mut out)
            .unwrap();
        match out.remove(0) {
            Event::Log(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_issue_example() {
        let r = log("ts=2026-01-05T10:00:00Z event=database_timeout severity=error duration=1.2s service=payments");
        assert_eq!(r.level, Some(Level::Error));
        assert_eq!(r.message, "database_timeout");
        assert_eq!(r.service.as_deref(), Some("payments"));
        assert_eq!(r.fields["duration_seconds"], FieldValue::Float(1.2));
    }

    #[test]
    fn quotes_escapes_and_bare_keys() {
        let r = log(
            r#"ts=1767607200 level=warn msg="said \"hi\"\tthere" retry latency_ms=250 status=500 path=/a\b"#,
        );
        assert_eq!(r.message, "said \"hi\"\tthere");
        assert_eq!(r.fields["retry"], FieldValue::Bool(true));
        assert_eq!(r.fields["duration_seconds"], FieldValue::Float(0.25));
        assert_eq!(r.fields["status"], FieldValue::Int(500));
        assert_eq!(r.fields["path"], FieldValue::Str("/a\\b".into()));
    }

    #[test]
    fn a_backslash_before_a_multibyte_character_is_kept() {
        // Regression: this used to slice inside 'é' and panic.
        let f = scan("ts=1 msg=\"caf\\é \\\u{fffd}\" n=2").unwrap();
        let get = |k| crate::parse::fields::get(&f, k).cloned();
        assert_eq!(
            get("msg"),
            Some(FieldValue::Str("caf\\é \\\u{fffd}".into()))
        );
        assert_eq!(get("n"), Some(FieldValue::Int(2)));
    }

    #[test]
    fn broken_lines_are_named() {
        for (line, needle) in [
            (r#"ts=1 msg="never closed"#, "unterminated"),
            ("just some words", "no key=value"),
            ("ts=1 =value", "without a key"),
        ] {
            let e = scan(line).unwrap_err();
            assert_eq!(e.reason, DeadLetterReason::InvalidLogfmt);
            assert!(e.detail.contains(needle), "{line}: {}", e.detail);
        }
    }
}
