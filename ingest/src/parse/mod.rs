//! One parser per wire format, behind one trait.
//!
//! To add a format: write a module with a type implementing [`Parser`], add a
//! variant to [`Format`] with its name, and register it in
//! [`Format::parser`] (and in sniffing, [`Format::detect`], if it can be
//! recognised from a sample).

use crate::deadletter::DeadLetterReason;
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
    fn parse(&mut self, text: &str, raw: &RawRecord, out: &mut Vec<Event>) -> Result<(), ParseError>;
}
/// Loghub-style header formats.
pub mod header;
