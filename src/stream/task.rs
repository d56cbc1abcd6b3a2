//! One stream task: the engine for one partition number of the input
//! topics (Kafka Streams calls this a task, for the same reason).
//!
//! Input topics are co-partitioned: records keyed by service land in the
//! same partition number of every topic, so partition `p` of `logs` and
//! partition `p` of `metrics` describe the same services and are analysed
//! by one [`Pipeline`]. Each topic-partition is a *lane*; records are
//! decoded as they arrive and wait in their lane, and the task analyses the
//! earliest event at the head of any lane, exactly as replay's
//! [`crate::run::merge`] does with files. That is what makes streaming and
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

use crate::pipeline::{DeadLetterSink, Pipeline, PipelineConfig};
use ingest::RawRecord;
use models::{
    Action, ActionStatus, Anomaly, Event, Incident, IncidentStatus, RootCauseClass, Target,
};
use reclaim::{AuditEntry, Planner, PlannerState, TargetInventory};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};

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
}

impl Lane {
    /// Events waiting.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// What a step produced, for the sinks.
#[derive(Debug, Default)]
pub struct Emitted {
    /// New anomalies.
    pub anomalies: Vec<Anomaly>,
    /// Incidents that opened, changed or resolved since last published.
    pub incidents: Vec<Incident>,
    /// Actions planned or verified.
    pub actions: Vec<Action>,
    /// Planner decisions.
    pub audit: Vec<AuditEntry>,
    /// Scored windows, for the dashboard's plots (when traced).
    pub trace: Vec<analyze::TracePoint>,
}

impl Emitted {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.anomalies.is_empty()
            && self.incidents.is_empty()
            && self.actions.is_empty()
            && self.audit.is_empty()
            && self.trace.is_empty()
    }
}

/// Most incidents and actions remembered for change detection and
/// verification; older ones are forgotten first (bounded state).
const MAX_REMEMBERED: usize = 10_000;

/// The engine of one partition number. See the module docs.
pub struct Task {
    /// Partition number.
    pub partition: i32,
    /// One per input topic, in configuration order (ties in the merge go
    /// to the earlier topic, as replay's go to the earlier file).
    pub lanes: Vec<Lane>,
    pipeline: Pipeline,
    planner: Planner,
    /// Hash of each incident's last published form, by id.
    published: BTreeMap<String, u64>,
    /// Planned actions waiting for their incident to resolve (then
    /// verified), by incident id.
    awaiting: BTreeMap<String, Vec<Action>>,
    /// The root cause (class and target) each published incident's plan
    /// was made for, by incident id (`None`: it had none yet).
    planned_for: BTreeMap<String, Option<Cause>>,
    /// Whether anything changed since the last checkpoint.
    pub dirty: bool,
}

/// [`Task::snapshot`]'s layout.
#[derive(Serialize, Deserialize)]
struct TaskState {
    version: u32,
    partition: i32,
    lanes: Vec<Lane>,
    pipeline: Vec<u8>,
    planner: PlannerState,
    published: Vec<(String, u64)>,
    awaiting: Vec<(String, Vec<Action>)>,
    /// Absent in checkpoints taken before re-planning existed: those
    /// incidents keep their first plan.
    #[serde(default)]
    planned_for: Vec<(String, Option<Cause>)>,
}

/// An incident's leading root cause, as far as planning goes.
type Cause = (RootCauseClass, Target);

fn cause_of(inc: &Incident) -> Option<Cause> {
    inc.root_causes.first().map(|c| (c.class, c.target.clone()))
}

const TASK_STATE_VERSION: u32 = 1;

impl Task {
    /// A task with no history for partition `partition` of `topics`.
    pub fn new(
        partition: i32,
        topics: &[String],
        config: PipelineConfig,
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
                })
                .collect(),
            pipeline: Pipeline::new(config)?,
            planner: Planner::new(policy),
            published: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            planned_for: BTreeMap::new(),
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
                })
                .collect(),
            pipeline: self.pipeline.snapshot()?,
            planner: self.planner.state(),
            published: self
                .published
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            awaiting: self
                .awaiting
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            planned_for: self
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
        config: PipelineConfig,
        policy: reclaim::Policy,
    ) -> anyhow::Result<Self> {
        let s: TaskState = crate::pipeline::read_state(bytes, TASK_STATE_VERSION, "checkpoint")?;
        let had: Vec<&str> = s.lanes.iter().map(|l| l.topic.as_str()).collect();
        anyhow::ensure!(
            had == topics.iter().map(String::as_str).collect::<Vec<_>>(),
            "checkpoint of partition {} was taken with topics {had:?}, not {topics:?}: \
             use a new changelog topic (or consumer group) when the input topics change",
            s.partition
        );
        Ok(Task {
            partition: s.partition,
            lanes: s.lanes,
            pipeline: Pipeline::restore(config, &s.pipeline)?,
            planner: Planner::with_state(policy, s.planner),
            published: s.published.into_iter().collect(),
            awaiting: s.awaiting.into_iter().collect(),
            planned_for: s.planned_for.into_iter().collect(),
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
        self.pipeline.decode(raw, dead, &mut out)?;
        let l = &mut self.lanes[lane];
        if let Some(t) = out.iter().map(Event::timestamp).max() {
            l.last_ts = Some(l.last_ts.map_or(t, |x| x.max(t)));
        }
        l.buf.extend(out);
        l.next_offset = offset + 1;
        self.dirty = true;
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
    pub fn step(&mut self, strict: bool, ready: &mut dyn FnMut(usize) -> bool) -> usize {
        let mut n = 0;
        loop {
            let mut best: Option<(models::Timestamp, usize)> = None;
            for (i, l) in self.lanes.iter().enumerate() {
                if let Some(e) = l.buf.front() {
                    let t = e.timestamp();
                    if best.is_none_or(|(bt, _)| t < bt) {
                        best = Some((t, i));
                    }
                }
            }
            let Some((t, i)) = best else { break };
            let blocked = self.lanes.iter().enumerate().any(|(j, l)| {
                l.buf.is_empty() && (strict || l.last_ts.is_none_or(|last| last < t)) && !ready(j)
            });
            if blocked {
                break;
            }
            let event = self.lanes[i].buf.pop_front().expect("lane has a head");
            self.pipeline.analyze(event);
            n += 1;
        }
        if n > 0 {
            self.dirty = true;
        }
        n
    }

    /// Everything found since the last call: new anomalies, incidents whose
    /// published form changed (open ones as they stand, resolved ones
    /// final), the actions planned for incidents published the first time
    /// or whose leading root cause changed since their plan, and the
    /// verification of actions whose incident resolved.
    pub fn take(&mut self) -> anyhow::Result<Emitted> {
        let out = self.pipeline.drain();
        let mut em = Emitted {
            anomalies: out.anomalies,
            trace: out.trace,
            ..Default::default()
        };
        let mut incidents = out.incidents;
        incidents.extend(self.pipeline.open_incidents());
        incidents.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
        let inventory = TargetInventory {
            replicas: self.pipeline.replicas(),
            labels: Default::default(),
        };
        for inc in incidents {
            let h = hash_of(&inc)?;
            let first = match self.published.get(&inc.id) {
                Some(old) if *old == h => continue,
                Some(_) => false,
                None => true,
            };
            self.plan_for(&inc, first, &inventory, &mut em)?;
            if inc.status == IncidentStatus::Resolved {
                if let (Some(actions), Some(end)) = (self.awaiting.remove(&inc.id), inc.end) {
                    for mut a in actions {
                        self.planner.verify(&mut a, &inc, end, &mut em.audit)?;
                        em.actions.push(a);
                    }
                }
            }
            self.published.insert(inc.id.clone(), h);
            em.incidents.push(inc);
        }
        forget_oldest(&mut self.published);
        forget_oldest(&mut self.awaiting);
        forget_oldest(&mut self.planned_for);
        Ok(em)
    }

    /// Plan for an incident being published: the first time, timed at its
    /// onset, or again when its leading root cause changed since its plan
    /// (more evidence arrived), timed at its latest anomaly, when the new
    /// cause became the leading one: as replay, which plans once from the
    /// final incident, would. A re-plan withdraws what was planned for the
    /// old cause and not re-planned under the same id (a `superseded` skip,
    /// audited). The planner's safety rules apply to a re-plan as to any (a
    /// cooldown or rate limit the first plan used stays used: withdrawing
    /// never widens what may run).
    fn plan_for(
        &mut self,
        inc: &Incident,
        first: bool,
        inventory: &TargetInventory,
        em: &mut Emitted,
    ) -> anyhow::Result<()> {
        let cause = cause_of(inc);
        let changed = !first
            && self
                .planned_for
                .get(&inc.id)
                .is_some_and(|was| *was != cause);
        if !first && !changed {
            return Ok(());
        }
        let now = if first {
            inc.anomalies.first().map(|a| a.timestamp)
        } else {
            inc.anomalies.iter().map(|a| a.timestamp).max()
        }
        .unwrap_or(inc.start);
        let planned = self.planner.plan(inc, now, inventory, &mut em.audit)?;
        em.actions.extend(planned.iter().cloned());
        if changed {
            let reason = match &cause {
                Some((class, target)) => format!(
                    "superseded: the incident's root cause is now {class} at {}",
                    target_text(target)
                ),
                None => "superseded: the incident has no root cause now".to_string(),
            };
            for mut a in self.awaiting.remove(&inc.id).unwrap_or_default() {
                if planned.iter().any(|p| p.id == a.id)
                    || matches!(a.status, ActionStatus::Skipped { .. })
                {
                    continue;
                }
                a.status = ActionStatus::Skipped {
                    reason: reason.clone(),
                };
                em.audit
                    .push(AuditEntry::about(&a, now, "superseded", reason.clone()));
                em.actions.push(a);
            }
        }
        if !planned.is_empty() {
            self.awaiting.insert(inc.id.clone(), planned);
        }
        self.planned_for.insert(inc.id.clone(), cause);
        Ok(())
    }

    /// Whether every lane is empty.
    pub fn idle(&self) -> bool {
        self.lanes.iter().all(|l| l.buf.is_empty())
    }

    /// The engine, for the end of a bounded run ([`crate::run::conclude`]).
    pub fn pipeline_mut(&mut self) -> &mut Pipeline {
        &mut self.pipeline
    }

    /// The engine, for its counts.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }
}

/// Past the cap, drop entries in key order: incident ids start with their
/// onset in milliseconds (`inc-<ms>-<hash>`), so that is oldest first (a
/// forgotten incident that changes again is simply published again).
fn forget_oldest<V>(m: &mut BTreeMap<String, V>) {
    while m.len() > MAX_REMEMBERED {
        m.pop_first();
    }
}

/// `service/host/container`, the parts the target names.
fn target_text(t: &Target) -> String {
    let parts: Vec<&str> = [&t.service, &t.host, &t.container]
        .into_iter()
        .filter_map(|p| p.as_deref())
        .collect();
    if parts.is_empty() {
        "no particular target".to_string()
    } else {
        parts.join("/")
    }
}

fn hash_of(inc: &Incident) -> anyhow::Result<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_vec(inc)?.hash(&mut h);
    Ok(h.finish())
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
        let mut em = Emitted::default();
        let first = incident(
            1000,
            RootCauseClass::DependencyFailure,
            ("payments", "payments-1"),
        );
        task.plan_for(&first, true, &inventory, &mut em).unwrap();
        let ids: Vec<&str> = em.actions.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["inc-1000-a-notify"]);

        let mut em = Emitted::default();
        let leak = incident(
            61_000,
            RootCauseClass::MemoryLeak,
            ("checkout", "checkout-1"),
        );
        task.plan_for(&leak, false, &inventory, &mut em).unwrap();
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
        assert_eq!(task.awaiting["inc-1000-a"].len(), 1);

        // Published again (another anomaly), same cause: nothing to plan,
        // before and after a hand-off.
        let mut em = Emitted::default();
        let again = incident(
            62_000,
            RootCauseClass::MemoryLeak,
            ("checkout", "checkout-1"),
        );
        task.plan_for(&again, false, &inventory, &mut em).unwrap();
        assert!(
            em.actions.is_empty() && em.audit.is_empty(),
            "{:?}",
            em.actions
        );
        let bytes = task.snapshot().unwrap();
        let mut task =
            Task::restore(&bytes, &["t".into()], config(), reclaim::Policy::default()).unwrap();
        task.plan_for(&again, false, &inventory, &mut em).unwrap();
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
        task.plan_for(&back, false, &inventory, &mut em).unwrap();
        let ids: Vec<&str> = em.actions.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["inc-1000-a-notify", "inc-1000-a-restart"]);
        assert!(matches!(&em.actions[1].status,
            ActionStatus::Skipped { reason } if reason.starts_with("superseded")));
    }

    fn records(topic: &str, lines: &[String]) -> Vec<RawRecord> {
        let origin: Arc<str> = Arc::from(topic);
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| RawRecord {
                bytes: l.as_bytes().to_vec(),
                origin: origin.clone(),
                position: i as u64,
                partition: Some(0),
                key: None,
                headers: vec![],
                transport_time: None,
            })
            .collect()
    }

    /// Two topics of a generated scenario: logfmt logs and adapter JSON.
    fn inputs() -> (Vec<RawRecord>, Vec<RawRecord>) {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: crate::cmd::generate::Args,
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("s");
        let cli = <Cli as clap::Parser>::parse_from([
            "generate",
            "--out",
            out.to_str().unwrap(),
            "--duration",
            "3h",
            "--seed",
            "5",
            "--rate",
            "1",
        ]);
        crate::cmd::generate::run(cli.args).unwrap();
        let read = |p: &str| -> Vec<String> {
            std::fs::read_to_string(out.join(p))
                .unwrap()
                .lines()
                .map(String::from)
                .collect()
        };
        (
            records("logs", &read("logs/payments.logfmt")),
            records("metrics", &read("metrics/adapter.jsonl")),
        )
    }

    fn config() -> PipelineConfig {
        PipelineConfig {
            decoder: Default::default(),
            ..PipelineConfig::for_run()
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

    #[test]
    fn arrival_chunking_and_hand_offs_do_not_change_the_incidents() {
        let whole = run(1_000_000, None);
        assert!(!whole.is_empty(), "the scenario has faults");
        assert_eq!(run(7, None), whole, "arrival in small chunks");
        assert_eq!(run(50, Some(2_000)), whole, "moved through snapshots");
    }
}
