//! The end of a run, shared by `remedy replay` and the API's `POST /analyze`:
//! flush the engine, order the incidents, plan remediation under the policy
//! and verify each action at the end of the data. Keeping this in one place
//! is what makes "the same input gives the same incidents" true whichever
//! way the input arrived.

use crate::pipeline::{DeadLetterSink, Pipeline, Summary, TemplateSummary};
use analyze::TracePoint;
use ingest::RawRecord;
use models::{Action, Anomaly, Event, Incident};
use reclaim::AuditEntry;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// One input read in order: a file, stdin, or a list of lines sent to the
/// API.
pub trait Records {
    /// The next record, `None` at the end.
    fn next_record(&mut self) -> Option<anyhow::Result<RawRecord>>;
}

impl Records for ingest::source::file::LineReader {
    fn next_record(&mut self) -> Option<anyhow::Result<RawRecord>> {
        ingest::source::file::LineReader::next_record(self).map(|r| r.map_err(Into::into))
    }
}

impl Records for std::vec::IntoIter<RawRecord> {
    fn next_record(&mut self) -> Option<anyhow::Result<RawRecord>> {
        self.next().map(Ok)
    }
}

/// One input during the event-time merge.
struct Lane<'a> {
    source: &'a mut dyn Records,
    buf: VecDeque<Event>,
    done: bool,
}

/// Decode every input and analyse the events merged by event time.
///
/// Each input is read lazily and the earliest pending event of any input
/// goes next (ties by input order), so the analysis sees one estate-wide
/// timeline, as a consumer of a topic would. `tick` is called per record
/// (progress).
pub fn merge(
    sources: &mut [Box<dyn Records>],
    pipeline: &mut Pipeline,
    dead: &mut dyn DeadLetterSink,
    tick: &dyn Fn(),
) -> anyhow::Result<()> {
    let mut lanes: Vec<Lane> = sources
        .iter_mut()
        .map(|s| Lane {
            source: s.as_mut(),
            buf: VecDeque::new(),
            done: false,
        })
        .collect();
    let mut heap = BinaryHeap::new();
    let mut scratch = Vec::new();
    for (i, lane) in lanes.iter_mut().enumerate() {
        if fill(lane, pipeline, dead, &mut scratch, tick)? {
            heap.push(Reverse((lane.buf[0].timestamp(), i)));
        }
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        let event = lanes[i]
            .buf
            .pop_front()
            .expect("a lane in the heap has events");
        pipeline.analyze(event);
        if fill(&mut lanes[i], pipeline, dead, &mut scratch, tick)? {
            heap.push(Reverse((lanes[i].buf[0].timestamp(), i)));
        }
    }
    Ok(())
}

/// Read from a lane until it has an event buffered or ends. Returns whether
/// it has one.
fn fill(
    lane: &mut Lane,
    pipeline: &mut Pipeline,
    dead: &mut dyn DeadLetterSink,
    scratch: &mut Vec<Event>,
    tick: &dyn Fn(),
) -> anyhow::Result<bool> {
    while lane.buf.is_empty() && !lane.done {
        match lane.source.next_record() {
            None => lane.done = true,
            Some(raw) => {
                let raw = raw?;
                scratch.clear();
                pipeline.decode(&raw, dead, scratch)?;
                lane.buf.extend(scratch.drain(..));
                tick();
            }
        }
    }
    Ok(!lane.buf.is_empty())
}

/// Everything one run produced.
pub struct RunResult {
    /// Counts (with `anomalies`, `incidents` and `actions` filled in).
    pub summary: Summary,
    /// Every anomaly, in event-time order.
    pub anomalies: Vec<Anomaly>,
    /// Incidents ordered by onset, then id.
    pub incidents: Vec<Incident>,
    /// Planned actions (skipped ones included, with their reason).
    pub actions: Vec<Action>,
    /// Every planning and verification decision.
    pub audit: Vec<AuditEntry>,
    /// Scored points for plotting, when the analyzer was asked to trace.
    pub trace: Vec<TracePoint>,
    /// Every template mined (up to the miner's cap).
    pub templates: Vec<TemplateSummary>,
}

/// Finish `pipeline` and plan under `policy`.
pub fn conclude(pipeline: &mut Pipeline, policy: reclaim::Policy) -> anyhow::Result<RunResult> {
    let mut output = pipeline.finish();
    output.trace.extend(pipeline.template_trace());
    let mut incidents = output.incidents;
    incidents.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));

    let mut planner = reclaim::Planner::new(policy);
    let inventory = reclaim::TargetInventory {
        replicas: pipeline.replicas(),
        labels: Default::default(),
    };
    let mut audit = Vec::new();
    let mut actions = Vec::new();
    for inc in &incidents {
        let now = inc.anomalies.first().map_or(inc.start, |a| a.timestamp);
        actions.extend(planner.plan(inc, now, &inventory, &mut audit)?);
    }
    let mut summary = pipeline.summary();
    // Verification at the end of the data: did each incident's signals
    // return inside their bands within the policy's window of its action?
    if let Some(end) = summary.last_event {
        for action in &mut actions {
            if let Some(inc) = incidents.iter().find(|i| i.id == action.incident_id) {
                planner.verify(action, inc, end, &mut audit)?;
            }
        }
    }
    summary.anomalies = output.anomalies.len();
    summary.incidents = incidents.len();
    summary.actions = actions.len();
    Ok(RunResult {
        summary,
        anomalies: output.anomalies,
        incidents,
        actions,
        audit,
        trace: output.trace,
        templates: pipeline.templates(),
    })
}
