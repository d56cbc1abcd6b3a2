//! Against a real Apache Kafka broker: the one `scripts/test.sh` starts
//! (address in `REMEDY_KAFKA_BOOTSTRAP`). Topics get unique names so runs
//! never see each other's data. Every wait is bounded.
//!
//! Records are read back with [`read_to_end`], which turns each message
//! into a record with `ingest::source::kafka::record_of`, the conversion
//! `remedy run`'s consumer uses; what that consumer adds (group membership,
//! commits after checkpoints) is tested through `remedy run` itself in
//! `stream.rs`.

use ingest::decode::{Decoder, DecoderConfig};
use ingest::source::file::FileSource;
use ingest::source::kafka::record_of;
use ingest::{Format, RawRecord};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Kafka headers as the source hands them on.
type Headers = Vec<(String, Vec<u8>)>;

thread_local! {
    /// A broker of the test's own (the chaos test's), for the helpers
    /// called on this thread; the shared one otherwise.
    pub static BROKER: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

pub fn bootstrap() -> String {
    if let Some(b) = BROKER.with(|b| b.borrow().clone()) {
        return b;
    }
    std::env::var("REMEDY_KAFKA_BOOTSTRAP").expect(
        "REMEDY_KAFKA_BOOTSTRAP is not set: run scripts/test.sh, which starts Kafka and sets it",
    )
}

pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

pub async fn create_topic(name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let res = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    for r in res {
        r.unwrap();
    }
}

pub fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("message.max.bytes", "2000000")
        .set("linger.ms", "5")
        // A send retried (a topic created a moment ago whose leader is
        // not known yet) must not land after the ones sent behind it: the
        // tests compare a topic's analysis with replay of the same lines
        // in the same order.
        .set("enable.idempotence", "true")
        .create()
        .unwrap()
}

/// Every record of `topic`, from the start of each partition to its end
/// as of now, in offset order per partition. Blocking (a `BaseConsumer`
/// polled on this thread, assigned every partition, no group commits).
pub fn read_to_end(topic: &str) -> Vec<RawRecord> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.message.max.bytes", "67108864")
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let parts = md.topics()[0].partitions().len() as i32;
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for p in 0..parts {
        let (lo, hi) = c
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        if hi > lo {
            ends.insert(p, hi);
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return out;
    }
    c.assign(&tpl).unwrap();
    let origin: Arc<str> = Arc::from(topic);
    let mut done: BTreeSet<i32> = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.len() < ends.len() {
        assert!(
            Instant::now() < deadline,
            "could not read {topic} to its end"
        );
        if let Some(m) = c.poll(Duration::from_millis(500)) {
            let m = m.unwrap();
            out.push(record_of(origin.clone(), &m));
            if m.offset() + 1 >= ends[&m.partition()] {
                done.insert(m.partition());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_trip_through_the_broker_keeps_bytes_keys_headers_and_offsets() {
    let topic = unique("remedy-roundtrip");
    create_topic(&topic, 3).await;
    let p = producer();
    let mut sent: BTreeMap<Vec<u8>, (Option<Vec<u8>>, Headers)> = BTreeMap::new();
    for i in 0..40u32 {
        let mut payload =
            format!("ts=2026-01-05T10:00:{:02}Z level=info msg=m{i}", i % 60).into_bytes();
        if i == 7 {
            payload.extend_from_slice(b" \xff\xfe invalid utf-8");
        }
        if i == 13 {
            payload = vec![b'x'; 500_000];
            payload.extend_from_slice(format!("{i}").as_bytes());
        }
        let key = (i % 2 == 0).then(|| format!("service-{}", i % 5).into_bytes());
        let headers: Headers = if i % 3 == 0 {
            vec![
                ("source".into(), b"it".to_vec()),
                ("n".into(), i.to_be_bytes().to_vec()),
            ]
        } else {
            vec![]
        };
        let mut rec = FutureRecord::<Vec<u8>, Vec<u8>>::to(&topic).payload(&payload);
        if let Some(k) = &key {
            rec = rec.key(k);
        }
        let mut oh = OwnedHeaders::new();
        for (k, v) in &headers {
            oh = oh.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        if !headers.is_empty() {
            rec = rec.headers(oh);
        }
        p.send(rec, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        sent.insert(payload, (key, headers));
    }

    let got = read_to_end(&topic);
    let mut per_partition: BTreeMap<i32, Vec<u64>> = BTreeMap::new();
    for r in &got {
        let (key, headers) = sent.get(&r.bytes).expect("every record received was sent");
        assert_eq!(&r.key, key);
        assert_eq!(&r.headers, headers);
        assert_eq!(&*r.origin, topic.as_str());
        assert!(r.transport_time.is_some());
        let p = r.partition.expect("kafka records carry their partition");
        per_partition.entry(p).or_default().push(r.position);
    }
    let distinct: BTreeSet<_> = got.iter().map(|r| r.bytes.clone()).collect();
    assert_eq!(distinct.len(), sent.len(), "no record lost or duplicated");
    assert_eq!(got.len(), sent.len());
    // A record's position is its offset: the one `remedy run` commits and
    // a restored task skips up to.
    for (p, positions) in &per_partition {
        let offsets: Vec<u64> = (0..positions.len() as u64).collect();
        assert_eq!(positions, &offsets, "partition {p}");
    }
}

/// Decode records from files, and the same records through Kafka (one
/// single-partition topic per file, so order is kept), and compare.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_through_kafka_parse_like_records_from_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mixed");
    let files = FileSource::open(std::slice::from_ref(&dir), 1 << 20)
        .unwrap()
        .readers()
        .unwrap();
    assert!(
        files.len() >= 4,
        "fixture files missing in {}",
        dir.display()
    );
    let p = producer();
    let cfg = DecoderConfig::default();
    for reader in files {
        let origin = reader.origin().to_string();
        let lines: Vec<RawRecord> = reader.map(Result::unwrap).collect();
        let topic = unique("remedy-equiv");
        create_topic(&topic, 1).await;
        for l in &lines {
            p.send(
                FutureRecord::<(), Vec<u8>>::to(&topic).payload(&l.bytes),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        }
        let mut from_file = (Vec::new(), Vec::new());
        let mut d = Decoder::new(Format::Auto, cfg.clone()).unwrap();
        for l in &lines {
            if let Err(dl) = d.decode(l, &mut from_file.0) {
                from_file.1.push((dl.reason, dl.raw));
            }
        }
        let got = read_to_end(&topic);
        assert_eq!(got.len(), lines.len(), "records of {origin} through Kafka");
        let mut from_kafka = (Vec::new(), Vec::new());
        let mut d2 = Decoder::new(Format::Auto, cfg.clone()).unwrap();
        for r in &got {
            if let Err(dl) = d2.decode(r, &mut from_kafka.0) {
                from_kafka.1.push((dl.reason, dl.raw));
            }
        }
        assert_eq!(from_file.0, from_kafka.0, "events of {origin}");
        assert_eq!(from_file.1, from_kafka.1, "dead letters of {origin}");
        assert!(d.stats().balanced() && d2.stats().balanced());
        assert_eq!(d.stats().read, d2.stats().read);
        assert!(
            d.stats().dead_lettered > 0,
            "{origin} should include bad records"
        );
        assert!(d.stats().parsed > 0, "{origin} should include good records");
    }
}
