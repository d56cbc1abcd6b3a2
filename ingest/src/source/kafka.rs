//! Kafka messages as raw records (feature `kafka`).
//!
//! Only the conversion lives here: [`record_of`] copies a message out of
//! librdkafka's buffer into a [`RawRecord`], which is all the decoder and
//! the engine need from Kafka. The consumer itself is the streaming
//! service's (`src/stream/kafka.rs`, `remedy run`), and deliberately so:
//! its offsets are committed only after a checkpoint has made the results
//! and the engine state they imply durable, which only the code that owns
//! the engine can know. A general-purpose consumer here would commit on a
//! schedule of its own (auto-commit of acknowledged records): a second
//! delivery guarantee, different from the one the product gives, and a
//! second reader for tests to exercise instead of the real one. Tests read
//! Kafka through this function, as the service does.

use crate::record::RawRecord;
use models::Timestamp;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use std::sync::Arc;

/// Copy a message out of librdkafka's buffer as a record of `origin`
/// (the topic's shared name): bytes, key, headers, offset, partition and
/// the broker's timestamp.
pub fn record_of(origin: Arc<str>, msg: &BorrowedMessage<'_>) -> RawRecord {
    let headers = msg
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    RawRecord {
        bytes: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        origin,
        position: msg.offset().max(0) as u64,
        partition: Some(msg.partition()),
        key: msg.key().map(<[u8]>::to_vec),
        headers,
        transport_time: msg.timestamp().to_millis().map(Timestamp::from_millis),
    }
}
