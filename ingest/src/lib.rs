//! Remedy ingest: turns raw bytes into [`models`] records, fast, and never
//! loses or hides a bad record.
//!
//! Layout:
//! - [`record`]: a [`RawRecord`] is one line or one Kafka message, with where
//!   it came from; every stage downstream can say which input produced what.
//! - [`parse`]: one [`Parser`] per wire format (JSON lines, logfmt, plain text
//!   with a header format, Prometheus text / OpenMetrics, prometheus-kafka-adapter
//!   JSON) and [`parse::Format`] to pick one by name or by sniffing.
//! - [`mining`]: the streaming log template miner that turns messages into
//!   stable template ids.
//! - [`multiline`]: continuation lines (stack traces) joined to the record
//!   that starts them, per stream, with the exception as evidence.
//! - [`source`]: raw records from files and stdin, and from Kafka messages.
//! - [`deadletter`]: the [`DeadLetter`] record kept for every input that could
//!   not be parsed, with its reason, and [`IngestStats`] that account for
//!   every record read.
//!
//! **Invariant:** malformed input never stops the pipeline and is never
//! silently dropped: every record read is either parsed or dead-lettered,
//! and `IngestStats::read == parsed + dead_lettered` always holds.

#![deny(missing_docs)]

pub mod deadletter;
pub mod decode;
pub mod error;
pub mod mining;
pub mod multiline;
pub mod parse;
pub mod record;
mod scan;
pub mod source;

pub use deadletter::{DeadLetter, DeadLetterReason, IngestStats};
pub use error::{Error, Result};
pub use parse::{Format, ParseError, Parser};
pub use record::RawRecord;
