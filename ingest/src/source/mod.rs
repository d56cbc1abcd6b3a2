//! Sources of raw records: files and directories, stdin, and (feature
//! `kafka`) Apache Kafka messages, whose consumer is the streaming
//! service's. A source only moves bytes; decoding is the
//! [`crate::decode::Decoder`]'s job, so every source feeds the same engine.

pub mod file;
#[cfg(feature = "kafka")]
pub mod kafka;
