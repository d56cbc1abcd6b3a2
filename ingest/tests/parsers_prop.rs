//! Property tests: no input makes any parser panic, every record is
//! accounted for, and logfmt round-trips.

use ingest::decode::{Decoder, DecoderConfig};
use ingest::parse::FORMAT_NAMES;
use ingest::{Format, RawRecord};
use models::FieldValue;
use proptest::prelude::*;
use std::sync::Arc;

fn formats() -> Vec<Format> {
    let mut v: Vec<Format> = FORMAT_NAMES
        .iter()
        .map(|n| Format::from_name(n).unwrap())
        .collect();
    v.push(Format::from_name("<Date> <Time> <Level> \\[<Component>\\]: <Content>").unwrap());
    v
}

/// Lines that look like real input, mutated: more interesting than pure noise.
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "[ -~]{0,200}".prop_map(String::into_bytes),
        // Quoted values with backslashes before multi-byte characters.
        "[a-z\\\\é\u{fffd}\" ]{0,30}"
            .prop_map(|v| format!("ts=1 msg=\"{v}\" up{{a=\"{v}\"}} 1 1").into_bytes()),
        (
            prop_oneof![
                Just("{\"@timestamp\":\"2026-01-05T10:00:00Z\",\"message\":"),
                Just("ts=2026-01-05T10:00:00Z level=error msg="),
                Just("up{job=\""),
                Just("# TYPE x "),
                Just("<34>1 2026-01-05T10:00:00Z h a - - - "),
                Just("2026-01-05 10:00:00 INFO x: "),
                Just("{\"timestamp\":\"2026-01-05T10:00:00Z\",\"value\":\""),
            ],
            "[ -~]{0,80}"
        )
            .prop_map(|(a, b)| format!("{a}{b}").into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_parser_panics_and_every_record_is_accounted_for(lines in proptest::collection::vec(line(), 1..20)) {
        for f in formats() {
            let mut d = Decoder::new(f.clone(), DecoderConfig { max_line_bytes: 256, ..DecoderConfig::default() }).unwrap();
            let mut out = Vec::new();
            for (i, l) in lines.iter().enumerate() {
                let raw = RawRecord::line(Arc::from("prop"), i as u64 + 1, l.clone());
                let _ = d.decode(&raw, &mut out);
            }
            let s = d.stats();
            prop_assert!(s.balanced(), "{:?}: {:?}", f, s);
            prop_assert_eq!(s.read + s.blank, lines.len() as u64);
        }
    }

    #[test]
    fn logfmt_round_trips(pairs in proptest::collection::btree_map("[a-z_][a-z0-9_.]{0,10}", "[ -~]{0,20}", 1..8)) {
        let line: String = pairs
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect::<Vec<_>>()
            .join(" ");
        let parsed = ingest::parse::logfmt::scan(&line).unwrap();
        prop_assert_eq!(parsed.len(), pairs.len());
        for (k, v) in &pairs {
            prop_assert_eq!(ingest::parse::fields::get(&parsed, k), Some(&FieldValue::Str(v.clone())));
        }
    }
}

proptest! {
    // Twice the cases of the others: two alphabets share them.
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Plain ASCII (the matcher's own path) and lines with Unicode spaces
    /// (which must be left to the regex), half of the cases each.
    #[test]
    fn the_fast_header_matcher_agrees_with_the_regex(line in prop_oneof![
        "[a-z0-9:\\[\\]@ \t\x0C\r-]{0,120}",
        "[a-z0-9:\\[\\]@ \t\x0B\x0C\r\u{A0}\u{85}\u{2028}\u{3000}\u{2003}é世-]{0,120}",
    ]) {
        use ingest::parse::header::HeaderFormat;
        for f in [
            "<Date> <Time> <Pid> <Level> <Component>: <Content>",
            "<Date> <Time> - <Level>  \\[<Node>:<Component>@<Id>\\] - <Content>",
            "\\[<Time>\\] \\[<Level>\\] <Content>",
            "<A> <B>: <Content>",
            "<Month> <Date> <Time> <Level> <Component>(\\[<PID>\\])?: <Content>",
            "<A>(\\[<B>\\])? (<C>:)?<Content>",
        ] {
            let h = HeaderFormat::new(f).unwrap();
            let mut locs = h.locations();
            prop_assert_eq!(h.content_with(&line, &mut locs), h.content(&line), "{}", f);
            prop_assert_eq!(h.parse(&line), h.parse_with_regex(&line), "{}", f);
        }
    }
}
