//! The consumer-group driver of `remedy run`.
//!
//! One thread owns the consumer and the tasks (one [`Task`] per partition
//! number this instance is assigned). The loop is: poll a record, decode it
//! into its task's lane, let the task analyse what the event-time merge
//! allows, send what it found; every `checkpoint_interval_secs`, and before
//! partitions are revoked, *checkpoint*:
//!
//! 1. produce every result not yet sent and wait for the broker's
//!    acknowledgement (outputs and dead letters are durable);
//! 2. write the results to the store;
//! 3. produce each changed task's state to its partition of the compacted
//!    changelog topic, and wait for it;
//! 4. commit the offsets the state covers.
//!
//! So offsets are committed only after the results and the state they
//! imply are durable (at-least-once). After a crash the new owner restores
//! the last state and is sent again the records after the last commit; the
//! task skips those its state already covers and re-derives the rest,
//! giving the same incident ids, so downstream sees the same incidents,
//! possibly twice, never lost and never different.
//!
//! The checkpoint of partition `p` is the last record of changelog
//! partition `p` (only its owner writes there), so restoring reads one
//! record, not the topic.

use super::config::RunConfig;
use anyhow::Context as _;
use engine::task::{DeadLetters, Task};
use engine::{EngineSettings, Findings, FindingsSink};
use ingest::IngestStats;
use models::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Labels of a per-partition gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: String,
}

/// The consumer's metrics, registered beside the API's.
#[derive(Clone)]
pub struct StreamMetrics {
    /// `remedy_consumer_lag`: records behind the partition's end.
    pub lag: Family<PartitionLabels, Gauge>,
    /// `remedy_processing_latency_seconds`: from a record's Kafka timestamp
    /// to its analysis.
    pub latency: Histogram,
    /// `remedy_rebalances_total`.
    pub rebalances: Counter,
    /// `remedy_state_restores_total`: tasks restored from the changelog.
    pub restores: Counter,
    /// `remedy_checkpoints_total`.
    pub checkpoints: Counter,
    /// `remedy_checkpoint_bytes`: size of the last state written.
    pub checkpoint_bytes: Gauge,
    /// `remedy_stream_records_total`: records consumed (duplicates skipped
    /// after a restore are not counted).
    pub records: Counter,
    /// `remedy_stream_buffered_events`: decoded events waiting for the
    /// event-time merge (0 once everything consumed is analysed).
    pub buffered: Gauge,
    /// `remedy_kafka_retries_total`: retriable broker errors met (and
    /// retried), by operation and error.
    pub retries: Family<RetryLabels, Counter>,
    /// `remedy_late_events`: events of the partitions this instance runs
    /// that arrived after their analysis window had closed (counted, left
    /// out of the signals; replay reports them as `late_events`). A gauge,
    /// since a partition's count moves with it to another instance.
    pub late: Gauge,
    /// `remedy_over_cap`: what the memory caps turned away over this
    /// instance's partitions, by cap (`metric_series`,
    /// `signal_observations`, `templates_evicted`, `sessions`). A gauge,
    /// like `late`.
    pub over_cap: Family<CapLabels, Gauge>,
}

/// Labels of a memory cap.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CapLabels {
    /// Which cap.
    pub cap: String,
}

/// Labels of a retried Kafka error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetryLabels {
    /// What was being done (`commit`, `read_checkpoint`, ...).
    pub operation: String,
    /// The broker's error code (`NotLeaderForPartition`, ...).
    pub error: String,
}

/// How long an operation keeps retrying a retriable error before the
/// process gives up on it.
const RETRY_FOR: Duration = Duration::from_secs(300);

/// Broker conditions that pass by themselves: a partition's leader moving
/// or not elected yet (a topic created a moment ago), a group coordinator
/// loading or moving, a request timing out, a broker briefly unreachable.
/// These are retried with backoff; anything else (a missing input topic, a
/// refused configuration, an authorisation error) ends the process.
pub fn retriable(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode::*;
    matches!(
        e.rdkafka_error_code(),
        Some(
            NotLeaderForPartition
                | LeaderNotAvailable
                | PreferredLeaderNotAvailable
                | UnknownLeaderEpoch
                | FencedLeaderEpoch
                | UnknownTopicOrPartition
                | UnknownPartition
                | CoordinatorLoadInProgress
                | CoordinatorNotAvailable
                | NotCoordinator
                | RequestTimedOut
                | OperationTimedOut
                | NetworkException
                | BrokerNotAvailable
                | BrokerTransportFailure
                | AllBrokersDown
                | NotEnoughReplicas
                | KafkaStorageError
        )
    )
}

/// A commit refused because the group no longer knows this member (or
/// its generation): passes once the consumer has rejoined.
fn lost_membership(e: &anyhow::Error) -> bool {
    use rdkafka::types::RDKafkaErrorCode::*;
    e.chain()
        .filter_map(|c| c.downcast_ref::<rdkafka::error::KafkaError>())
        .any(|k| {
            matches!(
                k.rdkafka_error_code(),
                Some(UnknownMemberId | IllegalGeneration | RebalanceInProgress)
            )
        })
}

/// `f` until it succeeds, retrying [`retriable`] errors with exponential
/// backoff (100 ms doubling to 5 s) for up to [`RETRY_FOR`]; each retry is
/// logged and counted in `remedy_kafka_retries_total`.
fn with_retries<T>(
    retries: &Family<RetryLabels, Counter>,
    operation: &str,
    mut f: impl FnMut() -> rdkafka::error::KafkaResult<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + RETRY_FOR;
    let mut wait = Duration::from_millis(100);
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if retriable(&e) && Instant::now() + wait < deadline => {
                count_retry(retries, operation, &e);
                tracing::warn!(operation, error = %e, retry_in = ?wait, "retriable Kafka error");
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(anyhow::Error::new(e).context(operation.to_string())),
        }
    }
}

fn count_retry(
    retries: &Family<RetryLabels, Counter>,
    operation: &str,
    e: &rdkafka::error::KafkaError,
) {
    let error = e
        .rdkafka_error_code()
        .map_or_else(|| "unknown".to_string(), |c| format!("{c:?}"));
    retries
        .get_or_create(&RetryLabels {
            operation: operation.to_string(),
            error,
        })
        .inc();
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ])
}

impl StreamMetrics {
    /// New metrics, registered in `registry`.
    pub fn register(registry: &mut prometheus_client::registry::Registry) -> Self {
        let m = StreamMetrics {
            lag: Family::default(),
            latency: latency_histogram(),
            rebalances: Counter::default(),
            restores: Counter::default(),
            checkpoints: Counter::default(),
            checkpoint_bytes: Gauge::default(),
            records: Counter::default(),
            buffered: Gauge::default(),
            retries: Family::default(),
            late: Gauge::default(),
            over_cap: Family::default(),
        };
        registry.register(
            "remedy_consumer_lag",
            "Records between the consumer's position and the end of each input partition",
            m.lag.clone(),
        );
        registry.register(
            "remedy_processing_latency_seconds",
            "Time from a record's Kafka timestamp to its analysis",
            m.latency.clone(),
        );
        registry.register(
            "remedy_rebalances",
            "Consumer-group rebalances this instance took part in",
            m.rebalances.clone(),
        );
        registry.register(
            "remedy_state_restores",
            "Partition states restored from the changelog topic",
            m.restores.clone(),
        );
        registry.register(
            "remedy_checkpoints",
            "Checkpoints written (results flushed, state written, offsets committed)",
            m.checkpoints.clone(),
        );
        registry.register(
            "remedy_checkpoint_bytes",
            "Size of the last partition state written to the changelog",
            m.checkpoint_bytes.clone(),
        );
        registry.register(
            "remedy_stream_records",
            "Records consumed from the input topics",
            m.records.clone(),
        );
        registry.register(
            "remedy_stream_buffered_events",
            "Decoded events waiting for the event-time merge",
            m.buffered.clone(),
        );
        registry.register(
            "remedy_kafka_retries",
            "Retriable Kafka errors met and retried, by operation and error code",
            m.retries.clone(),
        );
        registry.register(
            "remedy_late_events",
            "Events that arrived after their analysis window had closed (counted, not analysed), over this instance's partitions",
            m.late.clone(),
        );
        registry.register(
            "remedy_over_cap",
            "Series, signal observations and templates the memory caps turned away (counted, not analysed), by cap, over this instance's partitions",
            m.over_cap.clone(),
        );
        m
    }
}

/// Counts delivery failures of the producer (after librdkafka's retries).
struct ProduceCtx {
    failures: Arc<AtomicU64>,
}
impl ClientContext for ProduceCtx {}
impl ProducerContext for ProduceCtx {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = r {
            tracing::error!(topic = m.topic(), error = %e, "a result could not be delivered");
            self.failures.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Rebalance callbacks: checkpoint before partitions go, restore when
/// they come.
struct Ctx {
    worker: Arc<Mutex<Worker>>,
}
impl ClientContext for Ctx {}
impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = r {
            let mut w = self.worker.lock().expect("worker lock");
            w.metrics.rebalances.inc();
            // The next owner restores what is written here: write it
            // before the partitions go.
            if let Err(e) = w.checkpoint(c) {
                tracing::error!("checkpoint before revocation failed: {e:#}");
                w.fatal = Some(format!("{e:#}"));
            }
            for p in partitions(tpl) {
                w.tasks.remove(&p);
                for t in &w.cfg.kafka.topics {
                    w.metrics.lag.remove(&PartitionLabels {
                        topic: t.clone(),
                        partition: p.to_string(),
                    });
                }
            }
        }
    }

    fn post_rebalance(&self, c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = r {
            let mut w = self.worker.lock().expect("worker lock");
            w.metrics.rebalances.inc();
            w.assigned_once = true;
            tracing::info!(partitions = ?partitions(tpl), "partitions assigned");
            for p in partitions(tpl) {
                if w.tasks.contains_key(&p) {
                    continue;
                }
                if let Err(e) = w.open_task(c, p) {
                    tracing::error!(partition = p, "cannot open partition: {e:#}");
                    w.fatal = Some(format!("partition {p}: {e:#}"));
                }
            }
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    let mut ps: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
    ps.sort_unstable();
    ps.dedup();
    ps
}

/// A task and what the driver tracks beside it.
struct Partition {
    task: Task,
    lanes: Vec<LaneRt>,
    /// Ingest counts already written to the store.
    written: IngestStats,
}

/// Driver-side state of one lane.
#[derive(Default)]
struct LaneRt {
    /// Latest known end of the partition (for the lag metric).
    high: i64,
    /// Since when the lane has been empty while holding the merge back.
    empty_since: Option<Instant>,
    /// End of the partition when assigned (bounded runs stop there).
    end: i64,
    paused: bool,
}

/// Everything the loop and the rebalance callbacks share.
struct Worker {
    cfg: RunConfig,
    pipeline: EngineSettings,
    policy: reclaim::Policy,
    producer: ThreadedProducer<ProduceCtx>,
    failures: Arc<AtomicU64>,
    tasks: BTreeMap<i32, Partition>,
    lane_of: HashMap<String, usize>,
    origins: HashMap<String, Arc<str>>,
    store: Option<store::Store>,
    metrics: StreamMetrics,
    bounded: bool,
    /// Results sent since the last store write.
    pending: Findings,
    assigned_once: bool,
    /// An error the callbacks could not return.
    fatal: Option<String>,
    /// When plotted points were last pruned.
    pruned: Option<Instant>,
}

/// Options of one `remedy run`.
pub struct Options {
    /// Stop at the end of the input as it was when the partitions were
    /// assigned, and finish the analysis like replay.
    pub bounded: bool,
    /// With `bounded`, where to write each partition's summary.
    pub out: Option<std::path::PathBuf>,
}

/// Run until `stop` is set (or, bounded, until the input ends).
pub fn run(
    cfg: RunConfig,
    pipeline: EngineSettings,
    policy: reclaim::Policy,
    store: Option<store::Store>,
    metrics: StreamMetrics,
    opts: Options,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let n = check_inputs(&cfg)?;
    ensure_topics(&cfg, n, &metrics.retries)?;
    let failures = Arc::new(AtomicU64::new(0));
    let mut pc = client_config(&cfg);
    pc.set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("message.max.bytes", "67108864")
        // A bounded send queue: when the broker is slow, `send` waits, the
        // loop stops polling, and the consumer stops fetching.
        .set("queue.buffering.max.kbytes", "131072")
        .set("linger.ms", "20");
    apply_properties(&mut pc, &cfg);
    let producer: ThreadedProducer<ProduceCtx> = pc
        .create_with_context(ProduceCtx {
            failures: failures.clone(),
        })
        .context("cannot create the producer")?;
    let worker = Arc::new(Mutex::new(Worker {
        lane_of: cfg
            .kafka
            .topics
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i))
            .collect(),
        cfg: cfg.clone(),
        pipeline,
        policy,
        producer,
        failures,
        tasks: BTreeMap::new(),
        origins: HashMap::new(),
        store,
        metrics,
        bounded: opts.bounded,
        pending: Findings::default(),
        assigned_once: false,
        fatal: None,
        pruned: None,
    }));
    let mut cc = client_config(&cfg);
    cc.set("group.id", &cfg.kafka.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", &cfg.kafka.auto_offset_reset)
        .set("enable.partition.eof", "false")
        // Range assignment gives one instance the same partition number of
        // every input topic: the co-partitioning a task needs.
        .set("partition.assignment.strategy", "range")
        .set("queued.max.messages.kbytes", "16384")
        // Once the prefetch queue above is full, librdkafka waits this long
        // before fetching that partition again (1 s by default). The engine
        // drains 16 MiB well within a second, so at the default it sat idle
        // for the rest of each one: a day of nezha-tt-dev (839k records,
        // two topics) spent 7.6 of 18.7 s waiting in `poll`, and 0.5 s at
        // 10 ms.
        .set("fetch.queue.backoff.ms", "10")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000");
    apply_properties(&mut cc, &cfg);
    let consumer: BaseConsumer<Ctx> = cc
        .create_with_context(Ctx {
            worker: worker.clone(),
        })
        .context("cannot create the consumer")?;
    let topics: Vec<&str> = cfg.kafka.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .with_context(|| format!("cannot subscribe to {topics:?}"))?;
    tracing::info!(?topics, group = %cfg.kafka.group_id, partitions = n, "consuming");

    let interval = Duration::from_secs(cfg.engine.checkpoint_interval_secs);
    let mut last_checkpoint = Instant::now();
    let mut last_lag = Instant::now();
    let result = loop {
        if stop.load(Ordering::SeqCst) {
            break Ok(());
        }
        // Poll without holding the lock: rebalance callbacks take it.
        let mut batch = 0;
        let mut timeout = Duration::from_millis(100);
        while batch < 5000 {
            match consumer.poll(timeout) {
                None => break,
                Some(Err(e)) => {
                    // librdkafka recovers from these itself (reconnects,
                    // finds new leaders); they are counted, never fatal.
                    tracing::warn!("consumer: {e}");
                    let w = worker.lock().expect("worker lock");
                    count_retry(&w.metrics.retries, "poll", &e);
                    break;
                }
                Some(Ok(msg)) => {
                    let mut w = worker.lock().expect("worker lock");
                    if let Err(e) = w.accept(&msg) {
                        break_fatal(&mut w, e);
                    }
                    batch += 1;
                    timeout = Duration::ZERO;
                }
            }
        }
        let mut w = worker.lock().expect("worker lock");
        if let Some(f) = w.fatal.take() {
            break Err(anyhow::anyhow!(f));
        }
        if let Err(e) = w.step(&consumer) {
            break Err(e);
        }
        if last_lag.elapsed() >= Duration::from_secs(1) {
            w.update_lag(&consumer);
            last_lag = Instant::now();
        }
        if w.bounded && w.assigned_once && w.at_end() {
            break w.finish_bounded(&consumer, opts.out.as_deref());
        }
        if last_checkpoint.elapsed() >= interval {
            if let Err(e) = w.checkpoint(&consumer) {
                break Err(e);
            }
            last_checkpoint = Instant::now();
        }
    };
    if result.is_ok() && !opts.bounded {
        // Graceful stop: results flushed, state written, offsets committed,
        // then leave the group so the partitions move at once.
        let mut w = worker.lock().expect("worker lock");
        w.checkpoint(&consumer)?;
        w.tasks.clear();
    }
    consumer.unsubscribe();
    result
}

fn break_fatal(w: &mut Worker, e: anyhow::Error) {
    if w.fatal.is_none() {
        w.fatal = Some(format!("{e:#}"));
    }
}

fn client_config(cfg: &RunConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.kafka.brokers);
    c
}

fn apply_properties(c: &mut ClientConfig, cfg: &RunConfig) {
    for (k, v) in &cfg.kafka.properties {
        c.set(k, v);
    }
}

/// Every input topic exists and they all have the same number of
/// partitions; returns it.
fn check_inputs(cfg: &RunConfig) -> anyhow::Result<i32> {
    let mut c = client_config(cfg);
    apply_properties(&mut c, cfg);
    let probe: BaseConsumer = c.create().context("cannot create a Kafka client")?;
    let md = probe
        .fetch_metadata(None, Duration::from_secs(15))
        .with_context(|| {
            format!(
                "brokers {} did not answer: check kafka.brokers and that Kafka runs",
                cfg.kafka.brokers
            )
        })?;
    let mut counts = Vec::new();
    for t in &cfg.kafka.topics {
        let n = md
            .topics()
            .iter()
            .find(|m| m.name() == t)
            .map(|m| m.partitions().len() as i32)
            .unwrap_or(0);
        anyhow::ensure!(
            n > 0,
            "input topic {t:?} does not exist: create it (with as many partitions as the other inputs)"
        );
        counts.push((t.clone(), n));
    }
    let n = counts[0].1;
    anyhow::ensure!(
        counts.iter().all(|(_, c)| *c == n),
        "input topics must have the same number of partitions (records keyed by service land in \
         the same partition number of each); found {counts:?}"
    );
    Ok(n)
}

/// Create the output topics and the changelog when missing.
fn ensure_topics(
    cfg: &RunConfig,
    n: i32,
    retries: &Family<RetryLabels, Counter>,
) -> anyhow::Result<()> {
    let mut c = client_config(cfg);
    apply_properties(&mut c, cfg);
    let admin: AdminClient<DefaultClientContext> =
        c.create().context("cannot create a Kafka admin client")?;
    let t = &cfg.topics;
    let plain = [&t.anomalies, &t.actions, &t.dead_letter];
    let mut topics: Vec<NewTopic> = plain
        .iter()
        .map(|name| NewTopic::new(name, n, TopicReplication::Fixed(1)))
        .collect();
    topics.push(
        NewTopic::new(&t.incidents, n, TopicReplication::Fixed(1)).set("cleanup.policy", "compact"),
    );
    topics.push(
        NewTopic::new(&t.changelog, n, TopicReplication::Fixed(1))
            .set("cleanup.policy", "compact")
            .set("max.message.bytes", "67108864")
            .set("segment.ms", "600000"),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let res = rt.block_on(admin.create_topics(
        topics.iter(),
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(15))),
    ))?;
    for r in res {
        match r {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, e)) => anyhow::bail!("cannot create topic {name}: {e}"),
        }
    }
    // An existing changelog with fewer partitions cannot hold every task.
    // A topic created a moment ago may not be in the broker's metadata yet
    // (it answers with no partitions, or unknown-topic): ask again for a
    // while before concluding anything from it.
    let probe: BaseConsumer = c.create()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let have = loop {
        let md = with_retries(retries, "changelog_metadata", || {
            probe.fetch_metadata(Some(&t.changelog), Duration::from_secs(15))
        })?;
        let have = md
            .topics()
            .first()
            .filter(|m| m.error().is_none())
            .map_or(0, |m| m.partitions().len() as i32);
        if have > 0 || std::time::Instant::now() >= deadline {
            break have;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    anyhow::ensure!(
        have >= n,
        "changelog topic {} has {have} partitions, fewer than the {n} input partitions: \
         give it at least {n} (or name a new one in topics.changelog)",
        t.changelog
    );
    Ok(())
}

impl Worker {
    /// Restore partition `p`'s task from the changelog, or start it fresh.
    fn open_task(&mut self, c: &BaseConsumer<Ctx>, p: i32) -> anyhow::Result<()> {
        let topics = self.cfg.kafka.topics.clone();
        let changelog = self.cfg.topics.changelog.clone();
        let task = match read_last(&self.cfg, &changelog, p, &self.metrics.retries)? {
            Some(bytes) => {
                let t = Task::restore(&bytes, &topics, self.pipeline.clone(), self.policy.clone())
                    .with_context(|| format!("restoring partition {p} from {changelog}"))?;
                self.metrics.restores.inc();
                tracing::info!(
                    partition = p,
                    bytes = bytes.len(),
                    "state restored from the changelog"
                );
                t
            }
            None => {
                let mut t = Task::new(p, &topics, self.pipeline.clone(), self.policy.clone())?;
                for (topic, f) in self.cfg.kafka.formats.clone() {
                    t.engine_mut()
                        .set_origin_format(self.origin(&topic), ingest::Format::from_name(&f)?)?;
                }
                t
            }
        };
        let mut lanes = Vec::new();
        for (i, topic) in topics.iter().enumerate() {
            let (_, high) = with_retries(&self.metrics.retries, "input_end", || {
                c.fetch_watermarks(topic, p, Duration::from_secs(10))
            })
            .with_context(|| format!("cannot read the end of {topic}/{p}"))?;
            lanes.push(LaneRt {
                high,
                end: high,
                empty_since: None,
                paused: false,
            });
            tracing::debug!(
                topic,
                partition = p,
                from = task.lanes[i].next_offset,
                end = high,
                "lane"
            );
        }
        let written = task.engine().ingest();
        self.tasks.insert(
            p,
            Partition {
                task,
                lanes,
                written,
            },
        );
        Ok(())
    }

    /// The shared name of `topic` (looked up per record: no allocation
    /// once the topic is known).
    fn origin(&mut self, topic: &str) -> Arc<str> {
        if let Some(o) = self.origins.get(topic) {
            return o.clone();
        }
        let o: Arc<str> = Arc::from(topic);
        self.origins.insert(topic.to_string(), o.clone());
        o
    }

    /// Decode one record into its lane.
    fn accept(&mut self, msg: &BorrowedMessage<'_>) -> anyhow::Result<()> {
        let Some(&lane) = self.lane_of.get(msg.topic()) else {
            return Ok(());
        };
        let p = msg.partition();
        let origin = self.origin(msg.topic());
        let Some(part) = self.tasks.get_mut(&p) else {
            // Not ours (any more): not committed, so its owner gets it.
            return Ok(());
        };
        let raw = ingest::source::kafka::record_of(origin, msg);
        let mut dead = DeadLetters::default();
        if !part.task.push(lane, msg.offset(), &raw, &mut dead)? {
            return Ok(());
        }
        self.metrics.records.inc();
        // Counted as waiting at once: `step` sets the exact figure, but a
        // record must never show as consumed and not waiting before it
        // has been analysed (a reader of /metrics would take the two
        // gauges for "all done" and read the rest before it happened).
        self.metrics.buffered.inc();
        part.lanes[lane].empty_since = None;
        if let Some(ts) = raw.transport_time {
            let now = chrono::Utc::now().timestamp_millis();
            let secs = (now - ts.as_millis()).max(0) as f64 / 1000.0;
            self.metrics.latency.observe(secs);
        }
        for letter in dead.0 {
            let reason = letter.reason.as_str().to_string();
            let detail = letter.detail.clone();
            let offset = msg.offset().to_string();
            let partition = p.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "remedy.reason",
                    value: Some(reason.as_bytes()),
                })
                .insert(Header {
                    key: "remedy.detail",
                    value: Some(detail.as_bytes()),
                })
                .insert(Header {
                    key: "remedy.topic",
                    value: Some(msg.topic().as_bytes()),
                })
                .insert(Header {
                    key: "remedy.partition",
                    value: Some(partition.as_bytes()),
                })
                .insert(Header {
                    key: "remedy.offset",
                    value: Some(offset.as_bytes()),
                });
            let mut rec = BaseRecord::<[u8], [u8]>::to(&self.cfg.topics.dead_letter)
                .payload(&raw.bytes[..])
                .partition(p)
                .headers(headers);
            if let Some(k) = &raw.key {
                rec = rec.key(&k[..]);
            }
            send(&self.producer, rec)?;
        }
        Ok(())
    }

    /// Let every task analyse what the merge allows; send what it found.
    fn step(&mut self, c: &BaseConsumer<Ctx>) -> anyhow::Result<()> {
        let max_idle = Duration::from_millis(self.cfg.engine.max_idle_ms);
        let bounded = self.bounded;
        let cap = self.cfg.engine.max_buffered;
        let topics = self.cfg.kafka.topics.clone();
        let ps: Vec<i32> = self.tasks.keys().copied().collect();
        for p in ps {
            let part = self.tasks.get_mut(&p).expect("task");
            let next: Vec<i64> = part.task.lanes.iter().map(|l| l.next_offset).collect();
            let lanes = &mut part.lanes;
            part.task.step(bounded, &mut |i| {
                let l = &mut lanes[i];
                if bounded {
                    // Bounded runs wait for every record up to the end.
                    return next[i] >= l.end;
                }
                // An empty lane that is behind the merge holds it for at
                // most `max_idle`: a partition with no traffic must not stop
                // the others for ever.
                let since = *l.empty_since.get_or_insert_with(Instant::now);
                since.elapsed() >= max_idle
            });
            // Backpressure: a partition far ahead of the others is paused
            // until the merge has used what it sent.
            for (i, l) in part.lanes.iter_mut().enumerate() {
                let n = part.task.lanes[i].buffered();
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(&topics[i], p);
                if !l.paused && n >= cap {
                    c.pause(&tpl)?;
                    l.paused = true;
                    tracing::debug!(topic = topics[i], partition = p, buffered = n, "paused");
                } else if l.paused && n < cap / 2 {
                    c.resume(&tpl)?;
                    l.paused = false;
                    tracing::debug!(topic = topics[i], partition = p, buffered = n, "resumed");
                }
            }
            if !bounded {
                let em = part.task.take()?;
                self.send_results(p, em)?;
            }
        }
        // Late events before the waiting count: a reader who sees nothing
        // waiting must see the late events of what was analysed.
        let late: u64 = self
            .tasks
            .values()
            .map(|r| r.task.engine().late_events())
            .sum();
        self.metrics.late.set(late as i64);
        // Every engine lists the caps in the same order: sum them in place.
        let mut capped = engine::engine::caps(0, 0, 0, 0);
        for r in self.tasks.values() {
            for (sum, (_, n)) in capped.iter_mut().zip(r.task.engine().over_cap()) {
                sum.1 += n;
            }
        }
        for (cap, n) in capped {
            let labels = CapLabels {
                cap: cap.to_string(),
            };
            self.metrics.over_cap.get_or_create(&labels).set(n as i64);
        }
        let waiting: usize = self
            .tasks
            .values()
            .flat_map(|r| r.task.lanes.iter().map(|l| l.buffered()))
            .sum();
        self.metrics.buffered.set(waiting as i64);
        Ok(())
    }

    fn send_results(&mut self, p: i32, em: Findings) -> anyhow::Result<()> {
        TopicSink {
            producer: &self.producer,
            topics: &self.cfg.topics,
            partition: p,
        }
        .write(&em)?;
        self.pending.extend(em);
        Ok(())
    }

    /// Wait for every record sent so far; fail if any was refused.
    fn flush(&self) -> anyhow::Result<()> {
        self.producer
            .flush(Duration::from_secs(60))
            .context("results were not acknowledged within 60 s")?;
        let f = self.failures.load(Ordering::SeqCst);
        anyhow::ensure!(
            f == 0,
            "{f} results could not be delivered: stopping without committing, a restart redoes them"
        );
        Ok(())
    }

    /// See the module docs.
    fn checkpoint(&mut self, c: &BaseConsumer<Ctx>) -> anyhow::Result<()> {
        if !self.bounded {
            let ps: Vec<i32> = self.tasks.keys().copied().collect();
            for p in ps {
                let em = self.tasks.get_mut(&p).expect("task").task.take()?;
                self.send_results(p, em)?;
            }
        }
        self.flush()?;
        self.write_store()?;
        let mut tpl = TopicPartitionList::new();
        let mut wrote = false;
        for (p, part) in &mut self.tasks {
            if !part.task.dirty {
                continue;
            }
            let bytes = part.task.snapshot()?;
            self.metrics.checkpoint_bytes.set(bytes.len() as i64);
            let key = format!("partition-{p}");
            send(
                &self.producer,
                BaseRecord::<[u8], [u8]>::to(&self.cfg.topics.changelog)
                    .key(key.as_bytes())
                    .payload(&bytes[..])
                    .partition(*p),
            )?;
            part.task.dirty = false;
            wrote = true;
            for (i, l) in part.task.lanes.iter().enumerate() {
                if l.next_offset > 0 {
                    tpl.add_partition_offset(
                        &self.cfg.kafka.topics[i],
                        *p,
                        Offset::Offset(l.next_offset),
                    )?;
                }
            }
        }
        if !wrote {
            return Ok(());
        }
        self.flush()?;
        if tpl.count() > 0 {
            match with_retries(&self.metrics.retries, "commit", || {
                c.commit(&tpl, CommitMode::Sync)
            }) {
                Ok(()) => {}
                // The group forgot this member (a broker restarted, a
                // session timed out): the consumer rejoins by itself. The
                // state written above covers these offsets, so a later
                // commit (or a restore that skips what its state covers)
                // loses and duplicates nothing.
                Err(e) if lost_membership(&e) => {
                    tracing::warn!("offsets not committed, the consumer rejoins its group: {e:#}");
                    self.metrics
                        .retries
                        .get_or_create(&RetryLabels {
                            operation: "commit".into(),
                            error: "group_membership_lost".into(),
                        })
                        .inc();
                }
                Err(e) => return Err(e.context("cannot commit offsets")),
            }
        }
        self.metrics.checkpoints.inc();
        Ok(())
    }

    /// Write what was sent since the last write to the store, in one
    /// transaction.
    fn write_store(&mut self) -> anyhow::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let Some(store) = self.store.as_mut() else {
            return Ok(());
        };
        let mut ingest = IngestStats::default();
        for part in self.tasks.values_mut() {
            let now = part.task.engine().ingest();
            ingest.merge(&now.since(&part.written));
            part.written = now;
        }
        if pending.is_empty() && ingest.read == 0 && ingest.blank == 0 {
            return Ok(());
        }
        // The run row's summary: the first task's, with the ingest counts of
        // every task since the last write (what the counters add up).
        let Some(mut summary) = self
            .tasks
            .values()
            .next()
            .map(|r| r.task.engine().summary())
        else {
            return Ok(());
        };
        summary.ingest = ingest;
        summary.anomalies = pending.anomalies.len();
        summary.incidents = pending.incidents.len();
        summary.actions = pending.actions.len();
        // An incident may have changed several times since the last write:
        // the store keeps the newest.
        let mut incidents: BTreeMap<String, models::Incident> = BTreeMap::new();
        for i in pending.incidents {
            incidents.insert(i.id.clone(), i);
        }
        store.write(&Findings {
            summary: Some(summary),
            incidents: incidents.into_values().collect(),
            ..pending
        })?;
        self.prune_points()
    }

    /// Keep `store.trace_retention_hours` of plotted points, checked every
    /// ten minutes (the delete scans the table).
    fn prune_points(&mut self) -> anyhow::Result<()> {
        if self
            .pruned
            .is_some_and(|t| t.elapsed() < Duration::from_secs(600))
        {
            return Ok(());
        }
        self.pruned = Some(Instant::now());
        let newest = self
            .tasks
            .values()
            .filter_map(|r| r.task.engine().last_event())
            .max();
        if let (Some(store), Some(newest)) = (self.store.as_mut(), newest) {
            let keep = self.cfg.store.trace_retention_hours as i64 * 3_600_000;
            let n = store.prune_points(Timestamp::from_millis(newest.as_millis() - keep))?;
            if n > 0 {
                tracing::info!(points = n, "plotted points past their retention deleted");
            }
        }
        Ok(())
    }

    fn update_lag(&mut self, c: &BaseConsumer<Ctx>) {
        for (p, part) in &mut self.tasks {
            for (i, l) in part.lanes.iter_mut().enumerate() {
                let topic = &self.cfg.kafka.topics[i];
                if let Ok((_, h)) = c.fetch_watermarks(topic, *p, Duration::from_secs(2)) {
                    l.high = h;
                }
                let lag = (l.high - part.task.lanes[i].next_offset).max(0);
                self.metrics
                    .lag
                    .get_or_create(&PartitionLabels {
                        topic: topic.clone(),
                        partition: p.to_string(),
                    })
                    .set(lag);
            }
        }
    }

    /// Bounded runs: every lane read to its end at assignment and analysed.
    fn at_end(&self) -> bool {
        !self.tasks.is_empty()
            && self.tasks.values().all(|r| {
                r.task.idle()
                    && r.task
                        .lanes
                        .iter()
                        .zip(&r.lanes)
                        .all(|(l, rt)| l.next_offset >= rt.end)
            })
    }

    /// End of a bounded run: checkpoint the state as it stands (a later
    /// run carries on from it), then finish each task like replay and
    /// send everything it found.
    fn finish_bounded(
        &mut self,
        c: &BaseConsumer<Ctx>,
        out: Option<&std::path::Path>,
    ) -> anyhow::Result<()> {
        tracing::info!("end of input reached; finishing the analysis");
        for part in self.tasks.values_mut() {
            part.task.dirty = true;
        }
        self.checkpoint(c)?;
        let ps: Vec<i32> = self.tasks.keys().copied().collect();
        for p in ps {
            let part = self.tasks.get_mut(&p).expect("task");
            let mut found = part.task.conclude()?;
            if let (Some(dir), Some(summary)) = (out, found.summary.take()) {
                std::fs::create_dir_all(dir)?;
                let path = dir.join(format!("summary-{p}.json"));
                let tmp = dir.join(format!(".summary-{p}.json.tmp"));
                std::fs::write(&tmp, serde_json::to_vec_pretty(&summary)?)?;
                std::fs::rename(&tmp, &path)?;
            }
            // The store's counts are the tasks' (`write_store`), and the
            // streaming service keeps no template table, bounded or not.
            found.summary = None;
            found.templates.clear();
            self.send_results(p, found)?;
        }
        self.flush()?;
        self.write_store()?;
        Ok(())
    }
}

/// The output topics as a findings sink: anomalies keyed by service,
/// incidents and actions by id, into partition `partition` (the task's own,
/// so one instance's results for a service stay in order).
struct TopicSink<'a> {
    producer: &'a ThreadedProducer<ProduceCtx>,
    topics: &'a super::config::TopicsSection,
    partition: i32,
}

impl FindingsSink for TopicSink<'_> {
    fn write(&mut self, found: &Findings) -> anyhow::Result<()> {
        let t = self.topics;
        for a in &found.anomalies {
            let key = a
                .signal
                .service
                .clone()
                .unwrap_or_else(|| a.signal.to_string());
            let body = serde_json::to_vec(a)?;
            send(
                self.producer,
                BaseRecord::<[u8], [u8]>::to(&t.anomalies)
                    .key(key.as_bytes())
                    .payload(&body[..])
                    .partition(self.partition),
            )?;
        }
        for i in &found.incidents {
            let body = serde_json::to_vec(i)?;
            send(
                self.producer,
                BaseRecord::<[u8], [u8]>::to(&t.incidents)
                    .key(i.id.as_bytes())
                    .payload(&body[..])
                    .partition(self.partition),
            )?;
        }
        for a in &found.actions {
            let body = serde_json::to_vec(a)?;
            send(
                self.producer,
                BaseRecord::<[u8], [u8]>::to(&t.actions)
                    .key(a.id.as_bytes())
                    .payload(&body[..])
                    .partition(self.partition),
            )?;
        }
        Ok(())
    }
}

/// Send one record, waiting while the producer's queue is full (a slow
/// broker slows consumption instead of growing memory).
fn send<'a>(
    p: &ThreadedProducer<ProduceCtx>,
    mut rec: BaseRecord<'a, [u8], [u8]>,
) -> anyhow::Result<()> {
    loop {
        match p.send(rec) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                r,
            )) => {
                rec = r;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err((e, r)) => anyhow::bail!("cannot produce to {}: {e}", r.topic),
        }
    }
}

/// The last record of `topic`/`p`, if any.
fn read_last(
    cfg: &RunConfig,
    topic: &str,
    p: i32,
    retries: &Family<RetryLabels, Counter>,
) -> anyhow::Result<Option<Vec<u8>>> {
    let mut c = client_config(cfg);
    c.set("group.id", format!("{}-restore", cfg.kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("fetch.message.max.bytes", "67108864")
        .set("receive.message.max.bytes", "134217728");
    apply_properties(&mut c, cfg);
    let rc: BaseConsumer = c.create()?;
    // A changelog partition created a moment ago may have no leader yet
    // (NotLeaderForPartition, LeaderNotAvailable): retried, not fatal.
    let (low, high) = with_retries(retries, "read_checkpoint", || {
        rc.fetch_watermarks(topic, p, Duration::from_secs(10))
    })
    .with_context(|| format!("cannot read the end of {topic}/{p}"))?;
    if high <= low {
        return Ok(None);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, p, Offset::Offset(high - 1))?;
    rc.assign(&tpl)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match rc.poll(Duration::from_millis(500)) {
            Some(Ok(m)) if m.offset() == high - 1 => {
                return Ok(Some(m.payload().unwrap_or_default().to_vec()))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) if retriable(&e) => {
                count_retry(retries, "read_checkpoint", &e);
                tracing::warn!(error = %e, "retriable Kafka error reading {topic}/{p}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Some(Err(e)) => anyhow::bail!("cannot read {topic}/{p}: {e}"),
            None => {}
        }
    }
    anyhow::bail!("the last checkpoint in {topic}/{p} could not be read within 60 s")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #21, finding 5: `remedy run` exited on a broker error that
    /// passes by itself (NotLeaderForPartition on a changelog partition
    /// created a moment before). Here on the real broker: the changelog
    /// partition does not exist yet when the checkpoint is read
    /// (UnknownTopicOrPartition, or no leader yet) and appears two seconds
    /// later; the read waits for it, and the retries are counted.
    #[test]
    fn reading_a_checkpoint_retries_while_its_partition_has_no_leader() {
        let brokers = std::env::var("REMEDY_KAFKA_BOOTSTRAP")
            .expect("REMEDY_KAFKA_BOOTSTRAP is not set: run scripts/test.sh, which starts Kafka");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let topic = format!("remedy-retry-{}-{nanos}", std::process::id());
        let mut cfg = RunConfig::default();
        cfg.kafka.brokers = brokers.clone();
        cfg.kafka.group_id = format!("{topic}-group");
        let creator = std::thread::spawn({
            let topic = topic.clone();
            move || {
                std::thread::sleep(Duration::from_secs(2));
                let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                    .set("bootstrap.servers", &brokers)
                    .create()
                    .unwrap();
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let r = rt
                    .block_on(admin.create_topics(
                        [&NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
                        &AdminOptions::new(),
                    ))
                    .unwrap();
                assert!(
                    matches!(
                        &r[0],
                        Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))
                    ),
                    "{r:?}"
                );
            }
        });
        let retries = Family::<RetryLabels, Counter>::default();
        let read = read_last(&cfg, &topic, 0, &retries);
        creator.join().unwrap();
        assert!(
            matches!(read, Ok(None)),
            "an empty, new changelog partition has no checkpoint: {read:?}"
        );
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("remedy_kafka_retries", "retries", retries);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("remedy_kafka_retries_total{operation=\"read_checkpoint\""),
            "the retries are counted: {text}"
        );
    }

    #[test]
    fn only_passing_broker_conditions_are_retried() {
        use rdkafka::error::KafkaError;
        use rdkafka::types::RDKafkaErrorCode as C;
        for c in [
            C::NotLeaderForPartition,
            C::LeaderNotAvailable,
            C::CoordinatorLoadInProgress,
            C::RequestTimedOut,
            C::OperationTimedOut,
        ] {
            assert!(retriable(&KafkaError::MetadataFetch(c)), "{c:?}");
        }
        for c in [
            C::TopicAuthorizationFailed,
            C::InvalidConfig,
            C::UnknownTopic,
            C::InvalidReplicationFactor,
        ] {
            assert!(!retriable(&KafkaError::MetadataFetch(c)), "{c:?}");
        }
    }
}
