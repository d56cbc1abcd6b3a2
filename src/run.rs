//! The end of a run, shared by `remedy replay` and the API's `POST /analyze`:
//! flush the engine, order the incidents, plan remediation under the policy
//! and verify each action at the end of the data. Keeping this in one place
//! is what makes "the same input gives the same incidents" true whichever
//! way the input arrived.

use crate::pipeline::{DeadLetterSink, Pipeline, Summary, TemplateSummary};
use analyze::TracePoint;
use ingest::decode::Decoder;
use ingest::RawRecord;
use models::{Action, Anomaly, Event, Incident, Timestamp};
use reclaim::AuditEntry;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;

/// One input read in order: a file, stdin, or a list of lines sent to the
/// API.
pub trait Records: Send {
    /// The next record, `None` at the end.
    fn next_record(&mut self) -> Option<anyhow::Result<RawRecord>>;

    /// The next record into `raw`, reusing its buffer where the input can
    /// (a decode worker reads millions of lines through one record).
    fn next_into(&mut self, raw: &mut RawRecord) -> Option<anyhow::Result<()>> {
        Some(self.next_record()?.map(|r| *raw = r))
    }

    /// The origin every record of this input carries, when known before
    /// reading: inputs with distinct known origins are decoded on worker
    /// threads.
    fn origin(&self) -> Option<Arc<str>> {
        None
    }

    /// The format every record of this input is in, when the input says
    /// (an API input names it, a table renders its rows in one); otherwise
    /// the run's format, sniffed per origin by default.
    fn format(&self) -> Option<ingest::Format> {
        None
    }
}

impl Records for ingest::source::file::LineReader {
    fn next_record(&mut self) -> Option<anyhow::Result<RawRecord>> {
        ingest::source::file::LineReader::next_record(self).map(|r| r.map_err(Into::into))
    }

    fn next_into(&mut self, raw: &mut RawRecord) -> Option<anyhow::Result<()>> {
        self.next_record_into(raw).map(|r| r.map_err(Into::into))
    }

    fn origin(&self) -> Option<Arc<str>> {
        Some(ingest::source::file::LineReader::origin(self).clone())
    }
}

/// Records in memory that all carry one origin (the API's inputs).
pub struct MemoryRecords {
    /// Their origin.
    pub origin: Arc<str>,
    /// Their format.
    pub format: ingest::Format,
    /// The records, in order.
    pub records: std::vec::IntoIter<RawRecord>,
    /// When set, the next record is an error instead: the run stops (the
    /// API's analysis whose client went away).
    pub cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl Records for MemoryRecords {
    fn next_record(&mut self) -> Option<anyhow::Result<RawRecord>> {
        if let Some(c) = &self.cancel {
            if c.load(std::sync::atomic::Ordering::Relaxed) {
                self.records = Vec::new().into_iter();
                return Some(Err(anyhow::anyhow!("cancelled")));
            }
        }
        self.records.next().map(Ok)
    }

    fn origin(&self) -> Option<Arc<str>> {
        Some(self.origin.clone())
    }

    fn format(&self) -> Option<ingest::Format> {
        Some(self.format.clone())
    }
}

/// One input during the event-time merge.
enum Lane<'a> {
    /// Read and decoded here, by the engine's decoder of the record's
    /// origin; a record's events wait in `buf`.
    Inline {
        source: &'a mut dyn Records,
        buf: VecDeque<Event>,
        done: bool,
    },
    /// Read and decoded by a worker thread, in batches.
    Worker(Decoded),
}

/// The receiving end of a worker thread that reads one input and decodes it
/// with its origin's decoder.
///
/// Events are analysed where they lie in the batch (the head is
/// `batch.events[event]`) rather than moved into a queue and out again: an
/// event is a few hundred bytes, and three moves per event were a
/// measurable share of the engine thread.
struct Decoded {
    origin: Arc<str>,
    rx: Receiver<Batch>,
    batch: Batch,
    /// Next record of `batch` to fold in.
    next: usize,
    /// Next event of `batch` to analyse.
    event: usize,
    /// Events of the records folded in so far not yet analysed.
    pending: usize,
    /// The worker has finished and its last batch has been taken.
    done: bool,
    /// Whether a record of this input was folded in yet.
    seen: bool,
    /// Analysed batches' events go back to the worker to be freed there
    /// (where they were allocated) instead of on the engine's thread.
    spent_tx: Sender<Vec<Event>>,
}

impl Lane<'_> {
    /// The earliest event not yet analysed, if one is buffered.
    fn head(&mut self) -> Option<&mut Event> {
        match self {
            Lane::Inline { buf, .. } => buf.front_mut(),
            Lane::Worker(d) => (d.pending > 0).then(|| &mut d.batch.events[d.event]),
        }
    }

    /// Drop the head (it has been analysed).
    fn advance(&mut self) {
        match self {
            Lane::Inline { buf, .. } => {
                buf.pop_front();
            }
            Lane::Worker(d) => {
                d.event += 1;
                d.pending -= 1;
            }
        }
    }
}

/// Records a worker sends together: one channel message per this many
/// records instead of one per record.
const BATCH_RECORDS: usize = 256;

/// Batches in flight per input: bounds memory (and how far a worker reads
/// ahead of the merge).
const BATCHES_IN_FLIGHT: usize = 2;

/// What decoding one record gave.
enum Decode {
    /// This many events (zero for a blank line or a `# TYPE` comment).
    Events(u32),
    /// A dead letter.
    Dead(Box<ingest::DeadLetter>),
    /// The input could not be read further.
    Failed(anyhow::Error),
}

/// Decoded records of one input, in order, and their events.
#[derive(Default)]
struct Batch {
    records: Vec<Decode>,
    events: Vec<Event>,
}

/// Decode every input and analyse the events merged by event time.
///
/// Each input is read lazily and the earliest pending event of any input
/// goes next (ties by input order), so the analysis sees one estate-wide
/// timeline, as a consumer of a topic would. `tick` is called per record
/// (progress).
///
/// Inputs whose origins are known and distinct are read and decoded on one
/// worker thread each (decoding is per origin and pure per record), handing
/// batches of decoded records through a bounded channel; the merge, the
/// summary counts, template mining and the analysis stay on this thread and
/// see the records in exactly the order a one-thread run would, so the
/// results do not depend on thread scheduling.
pub fn merge(
    sources: &mut [Box<dyn Records>],
    pipeline: &mut Pipeline,
    dead: &mut dyn DeadLetterSink,
    tick: &dyn Fn(),
) -> anyhow::Result<()> {
    for s in sources.iter() {
        if let (Some(origin), Some(format)) = (s.origin(), s.format()) {
            pipeline.set_origin_format(origin, format)?;
        }
    }
    let origins: Option<Vec<Arc<str>>> = sources.iter().map(|s| s.origin()).collect();
    let distinct = origins.as_ref().is_some_and(|o| {
        let set: std::collections::HashSet<&Arc<str>> = o.iter().collect();
        set.len() == o.len()
    });
    let origins = match origins {
        Some(o) if distinct && sources.len() > 1 => o,
        _ => {
            let lanes = sources
                .iter_mut()
                .map(|s| Lane::Inline {
                    source: s.as_mut(),
                    buf: VecDeque::new(),
                    done: false,
                })
                .collect();
            return merge_lanes(lanes, pipeline, dead, tick);
        }
    };
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let mut workers = Vec::new();
        let mut lanes = Vec::new();
        for (source, origin) in sources.iter_mut().zip(origins) {
            let decoder = pipeline.take_decoder(&origin)?;
            let (tx, rx) = sync_channel(BATCHES_IN_FLIGHT);
            let (spent_tx, spent_rx) = channel();
            let source: &mut dyn Records = source.as_mut();
            let worker = std::thread::Builder::new()
                .name("decode".into())
                .spawn_scoped(scope, move || decode_worker(source, decoder, tx, spent_rx))?;
            workers.push((origin.clone(), worker));
            lanes.push(Lane::Worker(Decoded {
                origin,
                rx,
                batch: Batch::default(),
                next: 0,
                event: 0,
                pending: 0,
                done: false,
                seen: false,
                spent_tx,
            }));
        }
        // On an error the lanes (the receivers) go first, so a worker
        // blocked on a full channel stops instead of holding up the scope.
        let result = merge_lanes(lanes, pipeline, dead, tick);
        for (origin, worker) in workers {
            match worker.join() {
                Ok(decoder) => pipeline.return_decoder(origin, decoder),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        result
    })
}

/// Read `source` and decode it with `decoder`, sending the results in
/// batches until the end of the input (or until the merge stops listening).
/// Events the engine is done with come back on `spent` to be freed here.
/// Returns the decoder, with its counts.
fn decode_worker(
    source: &mut dyn Records,
    mut decoder: Decoder,
    tx: SyncSender<Batch>,
    spent: Receiver<Vec<Event>>,
) -> Decoder {
    yield_to_engine();
    let mut batch = Batch::default();
    let mut raw = RawRecord::default();
    loop {
        let decoded = match source.next_into(&mut raw) {
            None => break,
            Some(Err(e)) => {
                batch.records.push(Decode::Failed(e));
                break;
            }
            Some(Ok(())) => {
                let start = batch.events.len();
                match decoder.decode(&raw, &mut batch.events) {
                    Ok(()) => Decode::Events((batch.events.len() - start) as u32),
                    Err(letter) => {
                        batch.events.truncate(start);
                        Decode::Dead(letter)
                    }
                }
            }
        };
        batch.records.push(decoded);
        if batch.records.len() >= BATCH_RECORDS {
            // Free what the engine is done with, reusing one of the
            // vectors for the next batch.
            let mut events = Vec::new();
            while let Ok(mut v) = spent.try_recv() {
                v.clear();
                events = v;
            }
            if events.capacity() == 0 {
                events.reserve(BATCH_RECORDS);
            }
            let full = std::mem::replace(
                &mut batch,
                Batch {
                    records: Vec::with_capacity(BATCH_RECORDS),
                    events,
                },
            );
            if tx.send(full).is_err() {
                return decoder;
            }
        }
    }
    if !batch.records.is_empty() {
        let _ = tx.send(batch);
    }
    decoder
}

/// Lower this thread's scheduling priority below the engine's.
///
/// The merge and the analysis run on one thread and every record passes
/// through it, so that thread is the run's critical path; the decoders only
/// read ahead of it, a bounded two batches per input. With as many decoders
/// as inputs and two cores, the scheduler otherwise shares the cores evenly
/// among all runnable threads and the engine waits behind readers that are
/// not needed yet (on the 11.5 M-line benchmark this was about a tenth of
/// the wall clock). A nice value of 10 on the decoders lets the engine run
/// whenever it can; the decoders fill the rest of the machine. Linux sets
/// the nice value per thread (`who = 0` is the calling thread); elsewhere
/// it would apply to the whole process, so it is left alone there.
fn yield_to_engine() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority takes plain integers and only changes this
    // thread's nice value; lowering one's own priority needs no privilege,
    // and a failure (returned, not raised) leaves the priority as it was.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// The event-time merge over `lanes`.
fn merge_lanes(
    mut lanes: Vec<Lane>,
    pipeline: &mut Pipeline,
    dead: &mut dyn DeadLetterSink,
    tick: &dyn Fn(),
) -> anyhow::Result<()> {
    let mut heap = BinaryHeap::new();
    let mut scratch = Vec::new();
    for (i, lane) in lanes.iter_mut().enumerate() {
        if let Some(ts) = fill(lane, pipeline, dead, &mut scratch, tick)? {
            heap.push(Reverse((ts, i)));
        }
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        let lane = &mut lanes[i];
        pipeline.analyze_mut(lane.head().expect("a lane in the heap has an event"));
        lane.advance();
        if let Some(ts) = fill(lane, pipeline, dead, &mut scratch, tick)? {
            heap.push(Reverse((ts, i)));
        }
    }
    Ok(())
}

/// Read from a lane until it has an event to analyse or ends. Returns the
/// event's time, if it has one.
fn fill(
    lane: &mut Lane,
    pipeline: &mut Pipeline,
    dead: &mut dyn DeadLetterSink,
    scratch: &mut Vec<Event>,
    tick: &dyn Fn(),
) -> anyhow::Result<Option<Timestamp>> {
    match lane {
        Lane::Inline { source, buf, done } => {
            while buf.is_empty() && !*done {
                match source.next_record() {
                    None => *done = true,
                    Some(raw) => {
                        let raw = raw?;
                        scratch.clear();
                        pipeline.decode(&raw, dead, scratch)?;
                        buf.extend(scratch.drain(..));
                        tick();
                    }
                }
            }
        }
        Lane::Worker(d) => {
            while d.pending == 0 && !d.done {
                if d.next == d.batch.records.len() {
                    match d.rx.recv() {
                        Ok(batch) => {
                            let spent = std::mem::replace(&mut d.batch, batch);
                            // A worker that has finished frees nothing more:
                            // the events come back in the error and are
                            // freed here.
                            if !spent.events.is_empty() {
                                let _ = d.spent_tx.send(spent.events);
                            }
                            d.next = 0;
                            d.event = 0;
                        }
                        Err(_) => d.done = true,
                    }
                    continue;
                }
                if !d.seen {
                    d.seen = true;
                    pipeline.decoded_from(&d.origin);
                }
                let record = std::mem::replace(&mut d.batch.records[d.next], Decode::Events(0));
                d.next += 1;
                match record {
                    Decode::Events(n) => {
                        let n = n as usize;
                        for event in &d.batch.events[d.event..d.event + n] {
                            pipeline.account(event);
                        }
                        d.pending = n;
                    }
                    Decode::Dead(letter) => dead.put(&letter)?,
                    Decode::Failed(e) => return Err(e),
                }
                tick();
            }
        }
    }
    Ok(lane.head().map(|e| e.timestamp()))
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
    Ok(conclude_then(pipeline, policy, |_, _| Ok(()))?.0)
}

/// [`conclude`], with `act` run on the planned actions (and their audit
/// trail) before they are verified: `replay --execute` executes there, so
/// an action's trail reads planned, requested, started, executed, and only
/// then verified (and an action the executor refused is not verified).
pub fn conclude_then<R>(
    pipeline: &mut Pipeline,
    policy: reclaim::Policy,
    act: impl FnOnce(&mut Vec<Action>, &mut Vec<AuditEntry>) -> anyhow::Result<R>,
) -> anyhow::Result<(RunResult, R)> {
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
    let acted = act(&mut actions, &mut audit)?;
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
    let run = RunResult {
        summary,
        anomalies: output.anomalies,
        incidents,
        actions,
        audit,
        trace: output.trace,
        templates: pipeline.templates(),
    };
    Ok((run, acted))
}
