//! Apache Kafka source (feature `kafka`), at-least-once.
//!
//! Offsets are *stored* only when the caller acknowledges a record
//! ([`KafkaSource::ack`]) and committed by librdkafka's auto-commit in the
//! background: a record is never committed before the pipeline has handed
//! its results on, so a crash replays it instead of losing it
//! (rdkafka's `at_least_once` example). Consumer queues are bounded by
//! default so a large lag cannot grow memory without limit.

use crate::error::{Error, Result};
use crate::record::RawRecord;
use models::Timestamp;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::Offset;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Consumer settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSourceConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Consumer group: instances with the same group share partitions.
    pub group_id: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Where a new group starts: `earliest` or `latest`.
    pub auto_offset_reset: String,
    /// Any other librdkafka property (TLS, SASL, fetch sizes...), passed
    /// through unchanged and applied last, so it can override the defaults.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaSourceConfig {
    fn default() -> Self {
        KafkaSourceConfig {
            brokers: "127.0.0.1:9092".into(),
            group_id: "remedy".into(),
            topics: vec!["logs".into(), "metrics".into()],
            auto_offset_reset: "earliest".into(),
            properties: BTreeMap::new(),
        }
    }
}

/// A subscribed consumer.
pub struct KafkaSource {
    /// Shared so a blocking metadata probe can run on the blocking pool.
    consumer: Arc<StreamConsumer>,
    origins: BTreeMap<String, Arc<str>>,
}

impl KafkaSource {
    /// Create the consumer and subscribe. Fails with the client's message
    /// when the configuration is invalid; an unreachable broker is not an
    /// error here (librdkafka retries with backoff), see [`KafkaSource::wait_ready`].
    pub fn new(cfg: &KafkaSourceConfig) -> Result<Self> {
        if cfg.topics.is_empty() {
            return Err(Error::Kafka("no topics to consume; set topics".into()));
        }
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &cfg.brokers)
            .set("group.id", &cfg.group_id)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", &cfg.auto_offset_reset)
            .set("enable.partition.eof", "false")
            // Bounded prefetch: ~16 MiB per partition at most.
            .set("queued.max.messages.kbytes", "16384")
            .set("fetch.message.max.bytes", "10485760")
            .set("reconnect.backoff.ms", "200")
            .set("reconnect.backoff.max.ms", "10000")
            .set("session.timeout.ms", "10000");
        for (k, v) in &cfg.properties {
            c.set(k, v);
        }
        let consumer: StreamConsumer = c
            .create()
            .map_err(|e| Error::Kafka(format!("cannot create consumer: {e}")))?;
        let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| Error::Kafka(format!("cannot subscribe to {topics:?}: {e}")))?;
        Ok(KafkaSource {
            consumer: Arc::new(consumer),
            origins: BTreeMap::new(),
        })
    }

    /// Wait until the broker answers a metadata request, retrying with
    /// backoff, for at most `timeout`. Gives a clear error naming the
    /// brokers when it never does.
    pub async fn wait_ready(&self, brokers: &str, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut backoff = Duration::from_millis(100);
        loop {
            let c = self.consumer.clone();
            let probe = tokio::task::spawn_blocking(move || {
                c.client()
                    .fetch_metadata(None, Duration::from_secs(2))
                    .map(|_| ())
            })
            .await
            .map_err(|e| Error::Kafka(e.to_string()))?;
            match probe {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() + backoff >= deadline => {
                    return Err(Error::Kafka(format!(
                        "brokers {brokers} unreachable after {timeout:?}: {e}; check bootstrap.servers and that Kafka runs"
                    )))
                }
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// The next record. Detached from the consumer, so it can cross tasks.
    pub async fn recv(&mut self) -> Result<RawRecord> {
        let msg = self
            .consumer
            .recv()
            .await
            .map_err(|e| Error::Kafka(format!("receive failed: {e}")))?;
        Ok(detach(&mut self.origins, &msg))
    }

    /// Mark a record as handled: the offset after it will be committed.
    pub fn ack(&self, rec: &RawRecord) -> Result<()> {
        let partition = rec
            .partition
            .ok_or_else(|| Error::Kafka("record did not come from Kafka".into()))?;
        // rdkafka's `store_offset` takes the offset of the handled message
        // and stores the next one (offset + 1) itself, as librdkafka's
        // `rd_kafka_offset_store_message` does.
        self.consumer
            .store_offset(&rec.origin, partition, rec.position as i64)
            .map_err(|e| Error::Kafka(format!("cannot store offset: {e}")))
    }

    /// Commit stored offsets now and wait for the broker's answer (for a
    /// graceful shutdown).
    pub fn commit_now(&self) -> Result<()> {
        match self
            .consumer
            .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        {
            Ok(()) => Ok(()),
            // Nothing stored yet is not an error at shutdown.
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => Ok(()),
            Err(e) => Err(Error::Kafka(format!("commit failed: {e}"))),
        }
    }

    /// The committed offset of a partition, if any (for tests and lag).
    pub fn committed(&self, topic: &str, partition: i32) -> Result<Option<i64>> {
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        let got = self
            .consumer
            .committed_offsets(tpl, Duration::from_secs(5))
            .map_err(|e| Error::Kafka(e.to_string()))?;
        Ok(got
            .find_partition(topic, partition)
            .and_then(|p| match p.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            }))
    }
}

/// Copy what the pipeline needs out of a borrowed message.
fn detach(origins: &mut BTreeMap<String, Arc<str>>, msg: &BorrowedMessage<'_>) -> RawRecord {
    let topic = msg.topic();
    let origin = match origins.get(topic) {
        Some(o) => o.clone(),
        None => {
            let o: Arc<str> = Arc::from(topic);
            origins.insert(topic.to_string(), o.clone());
            o
        }
    };
    record_of(origin, msg)
}

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
