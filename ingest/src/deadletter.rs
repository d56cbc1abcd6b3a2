//! Dead letters and the accounting that proves nothing was lost.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why a record could not be used. The snake_case name is a stable metric
/// label and appears in `dead-letter.jsonl` and in Kafka dead-letter headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// JSON that does not parse, or is not an object.
    InvalidJson,
    /// logfmt that does not parse (unterminated quote, no key=value pair).
    InvalidLogfmt,
    /// A Prometheus / OpenMetrics line that does not parse.
    InvalidMetric,
    /// A sample value that is not a number.
    NonNumericValue,
    /// A plain-text line that does not match its header format.
    HeaderMismatch,
    /// Longer than the configured maximum (default 1 MiB).
    LineTooLong,
    /// No timestamp, or one that does not parse.
    BadTimestamp,
    /// A timestamp too far in the future to be real.
    FutureTimestamp,
    /// A series or label set over the cardinality cap.
    CardinalityExceeded,
    /// A record with no message, no sample: nothing to analyse.
    Empty,
    /// No parser recognised the format.
    UnknownFormat,
    /// Not text: NUL or other control bytes, or mostly invalid UTF-8
    /// (random or binary bytes on a topic), which a free-text layout would
    /// otherwise take for a message.
    Binary,
    /// The input could not be read past this point (a damaged or truncated
    /// `.gz`, an I/O error): the rest of that input, kept as one dead
    /// letter naming the error, while the other inputs go on.
    Unreadable,
}

impl DeadLetterReason {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::InvalidJson => "invalid_json",
            DeadLetterReason::InvalidLogfmt => "invalid_logfmt",
            DeadLetterReason::InvalidMetric => "invalid_metric",
            DeadLetterReason::NonNumericValue => "non_numeric_value",
            DeadLetterReason::HeaderMismatch => "header_mismatch",
            DeadLetterReason::LineTooLong => "line_too_long",
            DeadLetterReason::BadTimestamp => "bad_timestamp",
            DeadLetterReason::FutureTimestamp => "future_timestamp",
            DeadLetterReason::CardinalityExceeded => "cardinality_exceeded",
            DeadLetterReason::Empty => "empty",
            DeadLetterReason::UnknownFormat => "unknown_format",
            DeadLetterReason::Binary => "binary",
            DeadLetterReason::Unreadable => "unreadable",
        }
    }
}

/// A record kept because it could not be parsed: the raw bytes (lossily
/// decoded, invalid UTF-8 replaced; the original bytes are also kept base16
/// when they were not valid UTF-8), where it came from and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// File path, `-` or topic.
    pub origin: String,
    /// Line number or offset.
    pub position: u64,
    /// Kafka partition, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// Format that was tried.
    pub format: String,
    /// Why.
    pub reason: DeadLetterReason,
    /// Human-readable detail ("expected '=' after key at byte 14").
    pub detail: String,
    /// The record as text (truncated to 64 KiB for huge records; `raw_len`
    /// gives the real size).
    pub raw: String,
    /// Size of the raw record in bytes.
    pub raw_len: usize,
    /// The raw bytes as hex, only when they were not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_hex: Option<String>,
}

/// Counts that account for every record read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IngestStats {
    /// Records read (lines, messages).
    pub read: u64,
    /// Records that produced events (or were valid metadata such as
    /// `# TYPE` lines).
    pub parsed: u64,
    /// Records dead-lettered.
    pub dead_lettered: u64,
    /// Blank lines skipped (not records; counted so the totals still add up
    /// to the lines in a file).
    pub blank: u64,
    /// Parsed records by format name.
    pub by_format: BTreeMap<String, u64>,
    /// Dead letters by reason.
    pub by_reason: BTreeMap<DeadLetterReason, u64>,
    /// Records parsed but with invalid UTF-8 replaced.
    pub utf8_replaced: u64,
    /// Continuation lines (a stack trace's frames, a plain file's indented
    /// lines) joined to the record before them: counted in `parsed`, but
    /// not records of their own ([`crate::multiline`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub joined: u64,
    /// Joined lines whose text was left out: the record had reached its
    /// cap of lines or bytes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub join_truncated: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl IngestStats {
    /// Whether every record read is accounted for.
    pub fn balanced(&self) -> bool {
        self.read == self.parsed + self.dead_lettered
    }

    /// What was counted since `earlier` (an earlier copy of these counts).
    pub fn since(&self, earlier: &IngestStats) -> IngestStats {
        fn map<K: Ord + Clone>(
            now: &BTreeMap<K, u64>,
            then: &BTreeMap<K, u64>,
        ) -> BTreeMap<K, u64> {
            now.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.saturating_sub(then.get(k).copied().unwrap_or(0)),
                    )
                })
                .filter(|(_, v)| *v > 0)
                .collect()
        }
        IngestStats {
            read: self.read.saturating_sub(earlier.read),
            parsed: self.parsed.saturating_sub(earlier.parsed),
            dead_lettered: self.dead_lettered.saturating_sub(earlier.dead_lettered),
            blank: self.blank.saturating_sub(earlier.blank),
            by_format: map(&self.by_format, &earlier.by_format),
            by_reason: map(&self.by_reason, &earlier.by_reason),
            utf8_replaced: self.utf8_replaced.saturating_sub(earlier.utf8_replaced),
            joined: self.joined.saturating_sub(earlier.joined),
            join_truncated: self.join_truncated.saturating_sub(earlier.join_truncated),
        }
    }

    /// Count what the joiner made of a parsed line.
    pub(crate) fn count_join(&mut self, joined: crate::multiline::Joined) {
        use crate::multiline::Joined;
        match joined {
            Joined::Joined => self.joined += 1,
            Joined::Truncated => {
                self.joined += 1;
                self.join_truncated += 1;
            }
            Joined::Started | Joined::No => {}
        }
    }

    /// Add another set of counts into this one.
    pub fn merge(&mut self, other: &IngestStats) {
        self.read += other.read;
        self.parsed += other.parsed;
        self.dead_lettered += other.dead_lettered;
        self.blank += other.blank;
        self.utf8_replaced += other.utf8_replaced;
        self.joined += other.joined;
        self.join_truncated += other.join_truncated;
        for (k, v) in &other.by_format {
            *self.by_format.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.by_reason {
            *self.by_reason.entry(*k).or_default() += v;
        }
    }
}
