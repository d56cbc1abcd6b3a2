//! Raw input, before parsing.

use models::Timestamp;
use std::sync::Arc;

/// One unit of raw input: a line of a file or stdin, or one Kafka message.
///
/// It carries its origin so that a dead letter can say exactly where it came
/// from, and the Kafka key, headers and timestamp so that a mapping can take
/// the service from the key or fall back to the broker's time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawRecord {
    /// The bytes, without the trailing newline. May be invalid UTF-8.
    pub bytes: Vec<u8>,
    /// File path, `-` for stdin, or `topic` for Kafka. Shared: one per file.
    pub origin: Arc<str>,
    /// 1-based line number in a file, or the offset of a Kafka message.
    pub position: u64,
    /// Kafka partition (None for files).
    pub partition: Option<i32>,
    /// Kafka message key.
    pub key: Option<Vec<u8>>,
    /// Kafka headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Time the transport attached (Kafka message timestamp), used only when
    /// the record itself carries no time.
    pub transport_time: Option<Timestamp>,
}

impl RawRecord {
    /// A line read from a file (or stdin).
    pub fn line(origin: Arc<str>, line_no: u64, bytes: Vec<u8>) -> Self {
        RawRecord {
            bytes,
            origin,
            position: line_no,
            ..Default::default()
        }
    }
}
