//! The event-time merge: every input read lazily, the earliest pending
//! event of any input analysed next (ties by input order), so the analysis
//! sees one estate-wide timeline whether the records came from files, an
//! API request or Kafka partitions. A bounded run reads an input when its
//! lane is empty (every input is "ready" once read to its end); a
//! streaming task ([`crate::task::Task::step`]) cannot wait for a
//! partition, so its readiness rule is a parameter: an empty lane holds
//! the merge back unless it is caught up or idle.

use crate::engine::{DeadLetterSink, Engine};
use ingest::decode::Decoder;
use ingest::RawRecord;
use models::{Event, Timestamp};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;

/// One input read in order: a file, stdin, or a list of lines sent to the
/// API.
pub trait Input: Send {
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

impl Input for ingest::source::file::LineReader {
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

/// An input read in a format the user named for it (`--format
/// GLOB=FORMAT`) rather than the run's.
pub struct WithFormat<I> {
    /// The input.
    pub input: I,
    /// Its format.
    pub format: ingest::Format,
}

impl<I: Input> Input for WithFormat<I> {
    fn next_record(&mut self) -> Option<anyhow::Result<RawRecord>> {
        self.input.next_record()
    }

    fn next_into(&mut self, raw: &mut RawRecord) -> Option<anyhow::Result<()>> {
        self.input.next_into(raw)
    }

    fn origin(&self) -> Option<Arc<str>> {
        self.input.origin()
    }

    fn format(&self) -> Option<ingest::Format> {
        Some(self.format.clone())
    }
}

/// Records in memory that all carry one origin (the API's inputs).
pub struct MemoryInput {
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

impl Input for MemoryInput {
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
        source: &'a mut dyn Input,
        buf: VecDeque<Event>,
        done: bool,
        /// Position of the last record read (where an unreadable rest
        /// starts).
        read: u64,
        /// Origin of the last record read (whose decoder the end of the
        /// input flushes).
        origin: Option<Arc<str>>,
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
    sources: &mut [Box<dyn Input>],
    engine: &mut Engine,
    dead: &mut dyn DeadLetterSink,
    tick: &dyn Fn(),
) -> anyhow::Result<()> {
    let origins: Option<Vec<Arc<str>>> = sources.iter().map(|s| s.origin()).collect();
    let distinct = origins.as_ref().is_some_and(|o| {
        let set: std::collections::HashSet<&Arc<str>> = o.iter().collect();
        set.len() == o.len()
    });
    let origins = match origins {
        Some(o) if distinct && sources.len() > 1 => o,
        _ => {
            for s in sources.iter() {
                if let (Some(origin), Some(format)) = (s.origin(), s.format()) {
                    engine.set_origin_format(origin, format)?;
                }
            }
            let lanes = sources
                .iter_mut()
                .map(|s| Lane::Inline {
                    source: s.as_mut(),
                    buf: VecDeque::new(),
                    done: false,
                    read: 0,
                    origin: None,
                })
                .collect();
            return merge_lanes(lanes, engine, dead, tick);
        }
    };
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let mut workers = Vec::new();
        let mut lanes = Vec::new();
        for (source, origin) in sources.iter_mut().zip(origins) {
            // An input that names its format gets a decoder of its own; it
            // joins the summary when its first record is read, so origins
            // are listed in the order read either way.
            let decoder = match source.format() {
                Some(format) => engine.new_decoder(format)?,
                None => engine.take_decoder(&origin)?,
            };
            let (tx, rx) = sync_channel(BATCHES_IN_FLIGHT);
            let (spent_tx, spent_rx) = channel();
            let source: &mut dyn Input = source.as_mut();
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
        let result = merge_lanes(lanes, engine, dead, tick);
        for (origin, worker) in workers {
            match worker.join() {
                Ok(decoder) => engine.return_decoder(origin, decoder),
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
    source: &mut dyn Input,
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
                // An input that cannot be read further (a damaged `.gz`)
                // is a dead letter and the end of that input; the others
                // go on. Anything else (a cancelled analysis) stops the run.
                match unreadable(&e) {
                    Some(detail) => {
                        let at =
                            RawRecord::line(source_origin(source), raw.position + 1, Vec::new());
                        batch
                            .records
                            .push(Decode::Dead(decoder.unreadable(&at, detail)));
                    }
                    None => batch.records.push(Decode::Failed(e)),
                }
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
    // The end of the input completes the records its decoder held for
    // continuation lines.
    let start = batch.events.len();
    decoder.flush(&mut batch.events);
    if batch.events.len() > start {
        batch
            .records
            .push(Decode::Events((batch.events.len() - start) as u32));
    }
    if !batch.records.is_empty() {
        let _ = tx.send(batch);
    }
    decoder
}

/// Why an input could not be read further, when the error is the input's
/// (an I/O error reading a file or stream, a damaged `.gz`): such an input
/// ends in a dead letter and the run goes on. Other errors stop the run.
fn unreadable(e: &anyhow::Error) -> Option<String> {
    e.downcast_ref::<ingest::Error>().map(|e| e.to_string())
}

/// The origin an input's records carry (`-` when it does not say).
fn source_origin(source: &dyn Input) -> Arc<str> {
    source.origin().unwrap_or_else(|| Arc::from("-"))
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

/// The order of the merge: which input's next event goes first.
///
/// Holds the event time of the head of every input that has one; the
/// earliest goes next, ties to the earlier input (as `sort` by time would
/// keep a file's order before the next file's). Whether it may go *now* is
/// the caller's readiness rule, given as `blocked` to [`Merge::next`]: in a
/// bounded run an input is read until it has an event or has ended, so an
/// empty input can deliver nothing and nothing blocks; a stream cannot
/// wait on a partition, so an empty one holds the merge back while it
/// could still deliver something earlier (see [`crate::task::Task::step`]).
/// Replay and streaming choose through this one type, which is why they
/// analyse the same records in the same order.
#[derive(Debug, Default)]
pub struct Merge {
    heads: BinaryHeap<Reverse<(Timestamp, usize)>>,
}

impl Merge {
    /// Input `lane` has a new head at `time` (it was empty, or its head was
    /// just taken). Each input with a head must be offered exactly once.
    pub fn offer(&mut self, lane: usize, time: Timestamp) {
        self.heads.push(Reverse((time, lane)));
    }

    /// The input whose head goes next, taken out of the order (offer it
    /// again when it has another head); `None` when no input has a head or
    /// `blocked(time of the earliest head)` says an empty input could still
    /// deliver something earlier.
    pub fn next(&mut self, blocked: impl FnOnce(Timestamp) -> bool) -> Option<usize> {
        let Reverse((time, lane)) = *self.heads.peek()?;
        if blocked(time) {
            return None;
        }
        self.heads.pop();
        Some(lane)
    }
}

/// The event-time merge over `lanes`, each read until it has an event or
/// ends before the merge chooses, so no empty lane blocks.
fn merge_lanes(
    mut lanes: Vec<Lane>,
    engine: &mut Engine,
    dead: &mut dyn DeadLetterSink,
    tick: &dyn Fn(),
) -> anyhow::Result<()> {
    let mut order = Merge::default();
    let mut scratch = Vec::new();
    for (i, lane) in lanes.iter_mut().enumerate() {
        if let Some(ts) = fill(lane, engine, dead, &mut scratch, tick)? {
            order.offer(i, ts);
        }
    }
    while let Some(i) = order.next(|_| false) {
        let lane = &mut lanes[i];
        engine.analyze_mut(lane.head().expect("a lane in the order has an event"));
        lane.advance();
        if let Some(ts) = fill(lane, engine, dead, &mut scratch, tick)? {
            order.offer(i, ts);
        }
    }
    Ok(())
}

/// Read from a lane until it has an event to analyse or ends. Returns the
/// event's time, if it has one.
fn fill(
    lane: &mut Lane,
    engine: &mut Engine,
    dead: &mut dyn DeadLetterSink,
    scratch: &mut Vec<Event>,
    tick: &dyn Fn(),
) -> anyhow::Result<Option<Timestamp>> {
    match lane {
        Lane::Inline {
            source,
            buf,
            done,
            read,
            origin,
        } => {
            while buf.is_empty() && !*done {
                match source.next_record() {
                    None => *done = true,
                    Some(Err(e)) => {
                        let Some(detail) = unreadable(&e) else {
                            return Err(e);
                        };
                        *done = true;
                        let at = RawRecord::line(source_origin(&**source), *read + 1, Vec::new());
                        engine.unreadable(&at, detail, dead)?;
                        tick();
                    }
                    Some(raw) => {
                        let raw = raw?;
                        *read = raw.position;
                        if origin.as_ref() != Some(&raw.origin) {
                            *origin = Some(raw.origin.clone());
                        }
                        scratch.clear();
                        engine.decode(&raw, dead, scratch)?;
                        buf.extend(scratch.drain(..));
                        tick();
                    }
                }
                // The end of the input (read to its end, or unreadable
                // past a point) completes what its decoder held for
                // continuation lines.
                if let (true, Some(o)) = (*done, origin.as_deref()) {
                    scratch.clear();
                    engine.flush(o, scratch);
                    buf.extend(scratch.drain(..));
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
                    engine.decoded_from(&d.origin);
                }
                let record = std::mem::replace(&mut d.batch.records[d.next], Decode::Events(0));
                d.next += 1;
                match record {
                    Decode::Events(n) => {
                        let n = n as usize;
                        for event in &d.batch.events[d.event..d.event + n] {
                            engine.account(event);
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
