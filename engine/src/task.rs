//! One stream task: the engine for one partition number of the input
//! topics (Kafka Streams calls this a task, for the same reason).
//!
//! Input topics are co-partitioned: records keyed by service land in the
//! same partition number of every topic, so partition `p` of `logs` and
//! partition `p` of `metrics` describe the same services and are analysed
//! by one [`Engine`]. Each topic-partition is a *lane*; records are
//! decoded as they arrive and wait in their lane, and the task analyses the
//! earliest event at the head of any lane, exactly as replay's
//! [`crate::merge::merge`] does with files. That is what makes streaming and
//! replay agree: the same records give the same event-time order, hence the
//! same templates, baselines and incidents.
//!
//! A lane that is empty holds the merge back (its next record might be
//! earlier than every head) unless the caller says it is *ready*: caught up
//! with its partition's end, or idle longer than the configured wait.
//!
//! Nothing here talks to Kafka or reads a clock; the state, including the
//! events waiting in lanes, round-trips through [`Task::snapshot`] and
//! [`Task::restore`], which is how a partition moves between instances.

use crate::engine::{DeadLetterSink, Engine, EngineSettings};
use crate::findings::Findings;
use crate::merge::Merge;
use crate::publish::{Cause, Publisher};
use ingest::RawRecord;
use models::{Action, Event};
use reclaim::PlannerState;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// One input topic's partition, as the task sees it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Lane {
    /// Topic name.
    pub topic: String,
    /// Decoded events waiting for the merge.
    buf: VecDeque<Event>,
    /// Offset of the next record to read: the task's state covers every
    /// record before it, so a restored task skips what it already has.
    pub next_offset: i64,
    /// Event time of the newest event decoded: a partition is in event-time
    /// order, so nothing earlier is expected from it.
    pub last_ts: Option<models::Timestamp>,
    /// Event time of its newest event analysed (why a late one was late;
    /// absent in older checkpoints).
    #[serde(default)]
    newest: Option<models::Timestamp>,
}

impl Lane {
    /// Events waiting.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// The engine of one partition number. See the module docs.
pub struct Task {
    /// Partition number.
    pub partition: i32,
    /// One per input topic, in configuration order (ties in the merge go
    /// to the earlier topic, as replay's go to the earlier file).
    pub lanes: Vec<Lane>,
    engine: Engine,
    publisher: Publisher,
    /// The merge's order over the lanes' heads (rebuilt on restore).
    order: Merge,
    /// Whether anything changed since the last checkpoint.
    pub dirty: bool,
}

/// [`Task::snapshot`]'s layout.
#[derive(Serialize, Deserialize)]
struct TaskState {
    version: u32,
    partition: i32,
    lanes: Vec<Lane>,
    /// The engine's own snapshot. A byte string: serde's default for a
    /// `Vec<u8>` is an array of integers, one CBOR item per byte, which
    /// doubled the checkpoint (nezha-tt-dev's: 16.5 MB for 8.3 MB of
    /// state) and made writing and reading it a loop over every byte.
    /// Checkpoints written the old way still read (`serde_bytes` takes
    /// either).
    #[serde(with = "serde_bytes")]
    pipeline: Vec<u8>,
    planner: PlannerState,
    published: Vec<(String, u64)>,
    awaiting: Vec<(String, Vec<Action>)>,
    /// Absent in checkpoints taken before re-planning existed: those
    /// incidents keep their first plan.
    #[serde(default)]
    planned_for: Vec<(String, Option<Cause>)>,
}

const TASK_STATE_VERSION: u32 = 1;

impl Task {
    /// A task with no history for partition `partition` of `topics`.
    pub fn new(
        partition: i32,
        topics: &[String],
        config: EngineSettings,
        policy: reclaim::Policy,
    ) -> anyhow::Result<Self> {
        Ok(Task {
            partition,
            lanes: topics
                .iter()
                .map(|t| Lane {
                    topic: t.clone(),
                    buf: VecDeque::new(),
                    next_offset: 0,
                    last_ts: None,
                    newest: None,
                })
                .collect(),
            engine: Engine::new(config)?,
            publisher: Publisher::new(policy),
            order: Merge::default(),
            dirty: false,
        })
    }

    /// The task's whole state as bytes (engine, waiting events, offsets,
    /// planner memory). Take [`Task::step`]'s output first.
    pub fn snapshot(&self) -> anyhow::Result<Vec<u8>> {
        let state = TaskState {
            version: TASK_STATE_VERSION,
            partition: self.partition,
            lanes: self
                .lanes
                .iter()
                .map(|l| Lane {
                    topic: l.topic.clone(),
                    buf: l.buf.clone(),
                    next_offset: l.next_offset,
                    last_ts: l.last_ts,
                    newest: l.newest,
                })
                .collect(),
            pipeline: self.engine.snapshot()?,
            planner: self.publisher.planner.state(),
            published: self
                .publisher
                .published
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            awaiting: self
                .publisher
                .awaiting
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            planned_for: self
                .publisher
                .planned_for
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let mut buf = Vec::new();
        ciborium::into_writer(&state, &mut buf)?;
        Ok(buf)
    }

    /// A task carrying on from [`Task::snapshot`]. The topics must be the
    /// ones the snapshot was taken with, in the same order.
    pub fn restore(
        bytes: &[u8],
        topics: &[String],
        config: EngineSettings,
        policy: reclaim::Policy,
    ) -> anyhow::Result<Self> {
        let s: TaskState = crate::engine::read_state(bytes, TASK_STATE_VERSION, "checkpoint")?;
        let had: Vec<&str> = s.lanes.iter().map(|l| l.topic.as_str()).collect();
        anyhow::ensure!(
            had == topics.iter().map(String::as_str).collect::<Vec<_>>(),
            "checkpoint of partition {} was taken with topics {had:?}, not {topics:?}: \
             use a new changelog topic (or consumer group) when the input topics change",
            s.partition
        );
        let mut order = Merge::default();
        for (i, l) in s.lanes.iter().enumerate() {
            if let Some(e) = l.buf.front() {
                order.offer(i, e.timestamp());
            }
        }
        Ok(Task {
            order,
            partition: s.partition,
            lanes: s.lanes,
            engine: Engine::restore(config, &s.pipeline)?,
            publisher: Publisher::with_state(
                policy,
                s.planner,
                s.published,
                s.awaiting,
                s.planned_for,
            ),
            dirty: false,
        })
    }

    /// Decode one record of lane `lane` at `offset` into the lane. Returns
    /// `false`, doing nothing, when the task already has it (a record before
    /// the checkpoint's offset, delivered again after a restart).
    pub fn push(
        &mut self,
        lane: usize,
        offset: i64,
        raw: &RawRecord,
        dead: &mut dyn DeadLetterSink,
    ) -> anyhow::Result<bool> {
        let l = &mut self.lanes[lane];
        if offset < l.next_offset {
            return Ok(false);
        }
        let mut out = Vec::new();
        self.engine.decode(raw, dead, &mut out)?;
        self.fill_lane(lane, out);
        self.lanes[lane].next_offset = offset + 1;
        Ok(true)
    }

    /// Analyse waiting events in event-time order for as long as no empty
    /// lane could still hold an earlier one. An empty lane whose newest
    /// event is at or after the candidate cannot (partitions are in event
    /// time order); otherwise the merge waits for it unless
    /// `ready(lane)` says not to (the lane is at its end, or has been idle
    /// long enough). `strict` drops the event-time shortcut, so every empty
    /// lane must be ready: replay's merge exactly, even for inputs not in
    /// time order (bounded runs). Returns how many events were analysed.
    ///
    /// A lane that is empty and ready also gets the records its decoder
    /// holds for continuation lines ([`ingest::multiline`]): at a bounded
    /// run's end of partition, as replay's end of input does, and in a
    /// stream once the partition has been idle for the configured wait,
    /// so a stack trace's record never waits on traffic that may not come.
    pub fn step(&mut self, strict: bool, ready: &mut dyn FnMut(usize) -> bool) -> usize {
        let mut n = 0;
        loop {
            n += self.merge_step(strict, ready);
            if !self.release_held(ready) {
                break;
            }
        }
        if n > 0 {
            self.dirty = true;
        }
        n
    }

    /// Move the records held by the decoder of each empty, ready lane into
    /// the lane. Whether any moved.
    fn release_held(&mut self, ready: &mut dyn FnMut(usize) -> bool) -> bool {
        let mut moved = false;
        for j in 0..self.lanes.len() {
            // A Kafka record's origin is its topic.
            let topic = &self.lanes[j].topic;
            if !self.lanes[j].buf.is_empty() || !self.engine.holds(topic) || !ready(j) {
                continue;
            }
            let mut out = Vec::new();
            self.engine.flush(topic, &mut out);
            moved |= !out.is_empty();
            self.fill_lane(j, out);
        }
        moved
    }

    /// Decoded events into lane `lane`, in order.
    fn fill_lane(&mut self, lane: usize, out: Vec<Event>) {
        let l = &mut self.lanes[lane];
        if let Some(t) = out.iter().map(Event::timestamp).max() {
            l.last_ts = Some(l.last_ts.map_or(t, |x| x.max(t)));
        }
        let was_empty = l.buf.is_empty();
        l.buf.extend(out);
        if let (true, Some(e)) = (was_empty, l.buf.front()) {
            self.order.offer(lane, e.timestamp());
        }
        self.dirty = true;
    }

    /// The merge of [`Task::step`] until it blocks.
    fn merge_step(&mut self, strict: bool, ready: &mut dyn FnMut(usize) -> bool) -> usize {
        let mut n = 0;
        loop {
            let lanes = &self.lanes;
            let engine = &self.engine;
            // The streaming readiness rule: an empty lane blocks an event
            // at `t` if it could still deliver an earlier one and is not
            // ready; or if its decoder holds a record for continuation
            // lines, until `release_held` has moved that record into it
            // (at once when the lane is ready). Before, the merge ran past
            // a ready lane's held record, which then came in late, where
            // replay, flushing a file's held record at its end, has it in
            // order.
            let blocked = |t: models::Timestamp| {
                lanes.iter().enumerate().any(|(j, l)| {
                    l.buf.is_empty()
                        && (strict || l.last_ts.is_none_or(|last| last < t))
                        && (engine.holds(&l.topic) || !ready(j))
                })
            };
            let Some(i) = self.order.next(blocked) else {
                break;
            };
            let lane = &mut self.lanes[i];
            let mut event = lane
                .buf
                .pop_front()
                .expect("a lane in the order has a head");
            if let Some(e) = lane.buf.front() {
                self.order.offer(i, e.timestamp());
            }
            self.engine.analyze_in(&mut event, &mut lane.newest);
            n += 1;
        }
        n
    }

    /// Everything found since the last call (see [`Publisher::take`]).
    pub fn take(&mut self) -> anyhow::Result<Findings> {
        self.publisher.take(&mut self.engine)
    }

    /// The end of a bounded run: everything the task found, planned and
    /// verified at the end of the data, as replay's (see
    /// [`Publisher::conclude`]).
    pub fn conclude(&mut self) -> anyhow::Result<Findings> {
        // Whatever is still held is complete now (every lane is at its end).
        if self.lanes.iter().any(|l| self.engine.holds(&l.topic)) {
            self.step(true, &mut |_| true);
        }
        self.publisher.conclude(&mut self.engine)
    }

    /// Whether every lane is empty and no decoder holds a record for its
    /// continuation lines.
    pub fn idle(&self) -> bool {
        self.lanes
            .iter()
            .all(|l| l.buf.is_empty() && !self.engine.holds(&l.topic))
    }

    /// The engine, for its counts.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, to fix a lane's format before its first record.
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }
}

/// Dead letters kept in memory until the sink sends them.
#[derive(Default)]
pub struct DeadLetters(pub Vec<ingest::DeadLetter>);

impl DeadLetterSink for DeadLetters {
    fn put(&mut self, letter: &ingest::DeadLetter) -> anyhow::Result<()> {
        self.0.push(letter.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::{ActionStatus, Anomaly, Incident, IncidentStatus, RootCauseClass, Target};
    use reclaim::{AuditEntry, TargetInventory};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    /// An open incident at `ms` whose leading root cause is `class` at
    /// `target` (service, container).
    fn incident(ms: i64, class: RootCauseClass, target: (&str, &str)) -> Incident {
        let t = models::Timestamp::from_millis(ms);
        Incident {
            id: "inc-1000-a".into(),
            start: models::Timestamp::from_millis(1000),
            end: None,
            status: IncidentStatus::Open,
            anomalies: vec![Anomaly {
                signal: models::Signal {
                    kind: models::SignalKind::ErrorRate,
                    name: format!("errors at {ms}"),
                    service: Some(target.0.into()),
                    host: None,
                    container: None,
                },
                timestamp: t,
                observed: 1.0,
                expected: models::Band {
                    lower: 0.0,
                    expected: 0.0,
                    upper: 0.0,
                },
                score: 1.0,
                kind: models::AnomalyKind::ErrorBurst,
                detector: "test".into(),
                detail: String::new(),
            }],
            root_causes: vec![models::RootCause {
                class,
                target: Target {
                    service: Some(target.0.into()),
                    host: None,
                    container: Some(target.1.into()),
                },
                confidence: 0.95,
                evidence: vec![],
            }],
        }
    }

    /// The plan follows the incident's leading root cause: a changed cause
    /// is planned for and the old plan withdrawn (audited); the same cause
    /// again plans nothing; the memory of what was planned for survives a
    /// hand-off.
    #[test]
    fn a_changed_root_cause_is_planned_for_and_the_old_plan_withdrawn() {
        let mut task = Task::new(0, &["t".into()], config(), reclaim::Policy::default()).unwrap();
        let inventory = TargetInventory {
            replicas: [("checkout".to_string(), 2)].into(),
            labels: Default::default(),
        };
        let mut em = Findings::default();
        let first = incident(
            1000,
            RootCauseClass::DependencyFailure,
            ("payments", "payments-1"),
        );
        task.publisher
            .plan_for(&first, true, &inventory, &mut em)
            .unwrap();
        let ids: Vec<&str> = em.actions.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["inc-1000-a-notify"]);

        let mut em = Findings::default();
        let leak = incident(
            61_000,
            RootCauseClass::MemoryLeak,
            ("checkout", "checkout-1"),
        );
        task.publisher
            .plan_for(&leak, false, &inventory, &mut em)
            .unwrap();
        let got: Vec<(&str, &ActionStatus)> = em
            .actions
            .iter()
            .map(|a| (a.id.as_str(), &a.status))
            .collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].0, "inc-1000-a-restart");
        assert_eq!(got[0].1, &ActionStatus::Planned, "{:?}", em.audit);
        assert_eq!(
            em.actions[0].target.container.as_deref(),
            Some("checkout-1")
        );
        assert_eq!(got[1].0, "inc-1000-a-notify");
        assert!(
            matches!(got[1].1, ActionStatus::Skipped { reason }
                if reason == "superseded: the incident's root cause is now memory_leak at checkout/checkout-1"),
            "{:?}",
            got[1].1
        );
        let superseded: Vec<&AuditEntry> = em
            .audit
            .iter()
            .filter(|e| e.decision == "superseded")
            .collect();
        assert_eq!(superseded.len(), 1);
        assert_eq!(superseded[0].action_id, "inc-1000-a-notify");
        assert_eq!(task.publisher.awaiting["inc-1000-a"].len(), 1);

        // Published again (another anomaly), same cause: nothing to plan,
        // before and after a hand-off.
        let mut em = Findings::default();
        let again = incident(
            62_000,
            RootCauseClass::MemoryLeak,
            ("checkout", "checkout-1"),
        );
        task.publisher
            .plan_for(&again, false, &inventory, &mut em)
            .unwrap();
        assert!(
            em.actions.is_empty() && em.audit.is_empty(),
            "{:?}",
            em.actions
        );
        let bytes = task.snapshot().unwrap();
        let mut task =
            Task::restore(&bytes, &["t".into()], config(), reclaim::Policy::default()).unwrap();
        task.publisher
            .plan_for(&again, false, &inventory, &mut em)
            .unwrap();
        assert!(
            em.actions.is_empty() && em.audit.is_empty(),
            "{:?}",
            em.actions
        );
        // ...and a further change is still noticed after it.
        let back = incident(
            63_000,
            RootCauseClass::DependencyFailure,
            ("payments", "payments-1"),
        );
        task.publisher
            .plan_for(&back, false, &inventory, &mut em)
            .unwrap();
        let ids: Vec<&str> = em.actions.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["inc-1000-a-notify", "inc-1000-a-restart"]);
        assert!(matches!(&em.actions[1].status,
            ActionStatus::Skipped { reason } if reason.starts_with("superseded")));
    }

    /// A demo file's lines as the records of `topic`.
    fn records(topic: &str, file: &str) -> Vec<RawRecord> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../datasets/demo")
            .join(file);
        let mut reader = ingest::source::file::LineReader::open(&path, 1 << 20).unwrap();
        let mut lines = Vec::new();
        while let Some(r) = reader.next_record() {
            lines.push(r.unwrap().bytes);
        }
        let origin: Arc<str> = Arc::from(topic);
        lines
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| RawRecord {
                bytes,
                origin: origin.clone(),
                position: i as u64,
                partition: Some(0),
                key: None,
                headers: vec![],
                transport_time: None,
            })
            .collect()
    }

    /// Two topics of the committed demo scenario (eight hours, a database
    /// timeout among its faults): logfmt logs and adapter JSON.
    fn inputs() -> (Vec<RawRecord>, Vec<RawRecord>) {
        (
            records("logs", "logs/payments.logfmt.gz"),
            records("metrics", "metrics/adapter.jsonl.gz"),
        )
    }

    fn config() -> EngineSettings {
        EngineSettings {
            decoder: Default::default(),
            ..EngineSettings::for_run()
        }
    }

    /// Feed both topics in arrival chunks of `chunk`, stepping after each,
    /// optionally moving the task through a snapshot every `hand_off`
    /// records. Returns every incident published, last form by id.
    fn run(chunk: usize, hand_off: Option<usize>) -> BTreeMap<String, String> {
        let (logs, metrics) = inputs();
        let topics = vec!["logs".to_string(), "metrics".to_string()];
        let mut task = Task::new(0, &topics, config(), Default::default()).unwrap();
        let mut dead = DeadLetters::default();
        let mut published = BTreeMap::new();
        let (mut i, mut j, mut fed) = (0, 0, 0);
        let mut collect = |task: &mut Task| {
            for inc in task.take().unwrap().incidents {
                published.insert(inc.id.clone(), serde_json::to_string(&inc).unwrap());
            }
        };
        while i < logs.len() || j < metrics.len() {
            for _ in 0..chunk {
                if i < logs.len() {
                    task.push(0, i as i64, &logs[i], &mut dead).unwrap();
                    i += 1;
                    fed += 1;
                }
            }
            for _ in 0..chunk * 3 {
                if j < metrics.len() {
                    task.push(1, j as i64, &metrics[j], &mut dead).unwrap();
                    j += 1;
                    fed += 1;
                }
            }
            let (li, mj) = (i, j);
            let (nl, nm) = (logs.len(), metrics.len());
            task.step(false, &mut |lane| {
                if lane == 0 {
                    li >= nl
                } else {
                    mj >= nm
                }
            });
            collect(&mut task);
            if let Some(every) = hand_off {
                if fed >= every {
                    fed = 0;
                    let bytes = task.snapshot().unwrap();
                    task = Task::restore(&bytes, &topics, config(), Default::default()).unwrap();
                    // A restarted consumer is sent records it already has.
                    let back = i.saturating_sub(5);
                    for (k, r) in logs.iter().enumerate().take(i).skip(back) {
                        assert!(!task.push(0, k as i64, r, &mut dead).unwrap());
                    }
                }
            }
        }
        collect(&mut task);
        assert!(task.idle());
        published
    }

    /// A lane at its end whose decoder still holds its last record (it
    /// waits for continuation lines) must not let the merge run past that
    /// record: it is released first and analysed in event-time order, as
    /// replay, which flushes a file's held record at its end, has it.
    /// Before, the record came in after the other lane's later events, as
    /// a late event, and streaming differed from replay.
    #[test]
    fn a_held_record_at_a_lanes_end_is_merged_in_order() {
        let mut task =
            Task::new(0, &["a".into(), "b".into()], config(), Default::default()).unwrap();
        let mut dead = DeadLetters::default();
        let a: Arc<str> = Arc::from("a");
        let b: Arc<str> = Arc::from("b");
        let held = [
            r#"{"time":"2026-01-05T10:00:00.000Z","service":"cart","log":"INFO c.e.Cart - ok"}"#,
            r#"{"time":"2026-01-05T10:00:05.000Z","service":"cart","log":"ERROR c.e.Cart - checkout failed"}"#,
        ];
        for (i, l) in held.iter().enumerate() {
            let raw = RawRecord::line(a.clone(), i as u64, l.as_bytes().to_vec());
            assert!(task.push(0, i as i64, &raw, &mut dead).unwrap());
        }
        // Lane b: a record every second for two minutes, the first after
        // lane a's held one.
        for i in 0..120 {
            let l = format!(
                r#"{{"time":"2026-01-05T10:{:02}:{:02}.500Z","service":"shop","log":"INFO s.Shop - ok"}}"#,
                (6 + i) / 60,
                (6 + i) % 60
            );
            let raw = RawRecord::line(b.clone(), i as u64, l.into_bytes());
            assert!(task.push(1, i as i64, &raw, &mut dead).unwrap());
        }
        // A bounded run at the end of both partitions.
        let n = task.step(true, &mut |_| true);
        assert_eq!(n, 122, "every record analysed");
        assert_eq!(
            task.engine().late_events(),
            0,
            "the held record came in order"
        );
    }

    /// The engine's state is one byte string inside the checkpoint, and a
    /// checkpoint written before (the state as an array of integers, one
    /// per byte) still restores to the same task.
    #[test]
    fn a_checkpoint_holds_the_engine_state_as_bytes_and_old_ones_still_restore() {
        let topics = ["logs".to_string()];
        let mut task = Task::new(0, &topics, config(), Default::default()).unwrap();
        let mut dead = DeadLetters::default();
        let origin: Arc<str> = Arc::from("logs");
        for i in 0..200 {
            let l = format!(
                r#"{{"time":"2026-01-05T10:{:02}:{:02}.000Z","service":"cart","log":"INFO c.e.Cart - item {i} added"}}"#,
                i / 60,
                i % 60
            );
            let raw = RawRecord::line(origin.clone(), i as u64, l.into_bytes());
            assert!(task.push(0, i as i64, &raw, &mut dead).unwrap());
        }
        task.step(true, &mut |_| true);
        task.take().unwrap();
        let now = task.snapshot().unwrap();
        let value: ciborium::Value = ciborium::from_reader(&now[..]).unwrap();
        let fields = value.as_map().expect("a map");
        let pipeline = fields
            .iter()
            .find(|(k, _)| k.as_text() == Some("pipeline"))
            .map(|(_, v)| v)
            .unwrap();
        let bytes = pipeline.as_bytes().expect("one byte string").clone();
        assert!(
            now.len() < bytes.len() + 4096,
            "the state is not written twice over ({} bytes for {})",
            now.len(),
            bytes.len()
        );
        // The same checkpoint as an earlier build wrote it.
        let old = ciborium::Value::Map(
            fields
                .iter()
                .map(|(k, v)| match k.as_text() {
                    Some("pipeline") => (
                        k.clone(),
                        ciborium::Value::Array(
                            bytes.iter().map(|b| ciborium::Value::from(*b)).collect(),
                        ),
                    ),
                    _ => (k.clone(), v.clone()),
                })
                .collect(),
        );
        let mut old_bytes = Vec::new();
        ciborium::into_writer(&old, &mut old_bytes).unwrap();
        assert!(old_bytes.len() > now.len() + bytes.len() / 2);
        let restored = Task::restore(&old_bytes, &topics, config(), Default::default()).unwrap();
        assert_eq!(restored.snapshot().unwrap(), now);
    }

    /// A record that may still get its stack trace waits in the decoder
    /// while the lane has traffic to come, and comes out (trace joined)
    /// once the lane is ready: idle in a stream, at its end in a bounded run.
    #[test]
    fn a_held_record_comes_out_when_its_lane_is_ready() {
        let mut task = Task::new(0, &["logs".into()], config(), Default::default()).unwrap();
        let mut dead = DeadLetters::default();
        let origin: Arc<str> = Arc::from("logs");
        let lines = [
            r#"{"time":"2026-01-05T10:00:00.000Z","service":"cart","log":"ERROR c.e.Cart - checkout failed"}"#,
            r#"{"time":"2026-01-05T10:00:00.001Z","service":"cart","log":"java.net.SocketTimeoutException: Read timed out"}"#,
            r#"{"time":"2026-01-05T10:00:00.002Z","service":"cart","log":"\tat com.example.Cart.checkout(Cart.java:42)"}"#,
        ];
        for (i, l) in lines.iter().enumerate() {
            let raw = RawRecord::line(origin.clone(), i as u64, l.as_bytes().to_vec());
            assert!(task.push(0, i as i64, &raw, &mut dead).unwrap());
        }
        assert_eq!(task.step(false, &mut |_| false), 0, "more lines may come");
        assert!(!task.idle());
        assert_eq!(
            task.step(false, &mut |_| true),
            1,
            "one record, trace joined"
        );
        assert!(task.idle());
        let s = task.engine().summary();
        assert_eq!(
            (s.logs, s.logs_by_level["error"], s.ingest.joined),
            (1, 1, 2),
            "{:?}",
            s.ingest
        );
        assert!(dead.0.is_empty());
    }

    #[test]
    fn arrival_chunking_and_hand_offs_do_not_change_the_incidents() {
        let whole = run(1_000_000, None);
        assert!(!whole.is_empty(), "the scenario has faults");
        assert_eq!(run(7, None), whole, "arrival in small chunks");
        assert_eq!(run(50, Some(2_000)), whole, "moved through snapshots");
    }
}
