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
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};

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

    /// Let go of what the input holds open (a file's descriptor and read
    /// buffer) until it is read again, which resumes where it stopped:
    /// the merge reads many inputs with only a few open at once. `false`
    /// when it cannot (a pipe or standard input, read from one open): it
    /// stays open.
    fn park(&mut self) -> bool {
        false
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

    fn park(&mut self) -> bool {
        ingest::source::file::LineReader::park(self)
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

    fn park(&mut self) -> bool {
        self.input.park()
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

    /// Nothing to let go of: in memory.
    fn park(&mut self) -> bool {
        true
    }
}

/// One input during the one-thread merge (inputs without distinct known
/// origins): read and decoded here, by the engine's decoder of the
/// record's origin; a record's events wait in `buf`.
struct Lane<'a> {
    source: &'a mut dyn Input,
    buf: VecDeque<Event>,
    done: bool,
    /// Position of the last record read (where an unreadable rest starts).
    read: u64,
    /// Origin of the last record read (whose decoder the end of the input
    /// flushes).
    origin: Option<Arc<str>>,
    /// Time of its newest event analysed (why a late one was late).
    newest: Option<Timestamp>,
}

/// Records a read decodes together: one job (and one channel message) per
/// this many records instead of one per record.
const BATCH_RECORDS: usize = 256;

/// Records read from an input the first time it is needed (the first pass
/// over every input, for its first event): few, because every input keeps
/// what was read until the merge reaches it, and a small file is read to
/// its end by them and closed for good.
const FIRST_RECORDS: usize = 16;

/// Decoded batches waiting per open input: bounds memory (and how far the
/// readers get ahead of the merge).
const BATCHES_IN_FLIGHT: usize = 2;

/// Inputs a bounded run holds open at once by default (files: one
/// descriptor and one read buffer each): see [`merge_bounded`].
pub const OPEN_INPUTS: usize = 64;

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

impl Batch {
    fn with_capacity(records: usize) -> Batch {
        Batch {
            records: Vec::with_capacity(records),
            events: Vec::new(),
        }
    }
}

/// Decode every input and analyse the events merged by event time, with
/// at most [`OPEN_INPUTS`] inputs open at once (see [`merge_bounded`]).
pub fn merge(
    sources: &mut [Box<dyn Input>],
    engine: &mut Engine,
    dead: &mut dyn DeadLetterSink,
    tick: &dyn Fn(),
) -> anyhow::Result<()> {
    merge_bounded(sources, OPEN_INPUTS, engine, dead, tick)
}

/// Decode every input and analyse the events merged by event time.
///
/// Each input is read lazily and the earliest pending event of any input
/// goes next (ties by input order), so the analysis sees one estate-wide
/// timeline, as a consumer of a topic would. `tick` is called per record
/// (progress).
///
/// Inputs whose origins are known and distinct are read and decoded by a
/// fixed pool of worker threads (decoding is per origin and pure per
/// record), a batch of records per job, jobs queued by when the merge will
/// need them (an input whose job no worker has started when the merge
/// needs it is read on this thread instead of waited for), while the merge, the summary
/// counts, template mining and the analysis stay on this thread and see the
/// records in exactly the order a one-thread run would, so the results do
/// not depend on thread scheduling. Each input is opened when the merge
/// first needs a record of it: the first pass reads a few records of each
/// (for its first event, which is where the merge places it) and at most
/// `open` inputs that can let go of their file ([`Input::park`]) are open
/// at once; when another is needed, the one whose decoded records last
/// longest is parked and later resumes where it stopped. Inputs that do
/// not overlap in time (rotated logs) are thus read one after another,
/// and thousands of small files cost a descriptor each only while read.
pub fn merge_bounded(
    sources: &mut [Box<dyn Input>],
    open: usize,
    engine: &mut Engine,
    dead: &mut dyn DeadLetterSink,
    tick: &dyn Fn(),
) -> anyhow::Result<()> {
    merge_with(
        sources,
        open,
        engine,
        dead,
        tick,
        |engine, event, newest| engine.analyze_in(event, newest),
    )
}

/// [`merge_bounded`], handing each event in merge order to `analyze`.
fn merge_with<F: FnMut(&mut Engine, &mut Event, &mut Option<Timestamp>)>(
    sources: &mut [Box<dyn Input>],
    open: usize,
    engine: &mut Engine,
    dead: &mut dyn DeadLetterSink,
    tick: &dyn Fn(),
    mut analyze: F,
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
                .map(|s| Lane {
                    source: s.as_mut(),
                    buf: VecDeque::new(),
                    done: false,
                    read: 0,
                    origin: None,
                    newest: None,
                })
                .collect();
            return merge_lanes(lanes, engine, dead, tick, analyze);
        }
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(sources.len());
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let mut lanes = Vec::with_capacity(sources.len());
        for (source, origin) in sources.iter_mut().zip(origins) {
            // An input that names its format gets a decoder of its own; it
            // joins the summary when its first record is read, so origins
            // are listed in the order read either way.
            let decoder = match source.format() {
                Some(format) => engine.new_decoder(format)?,
                None => engine.take_decoder(&origin)?,
            };
            lanes.push(PoolLane::new(origin, source.as_mut(), decoder));
        }
        let jobs = Arc::new(Jobs::default());
        // The workers stop when the queue closes: at the end, on an error,
        // and when the merge panics.
        let _close = CloseOnDrop(jobs.clone());
        let (done_tx, done_rx) = channel::<Done>();
        for _ in 0..workers {
            let (jobs, done) = (jobs.clone(), done_tx.clone());
            std::thread::Builder::new()
                .name("decode".into())
                .spawn_scoped(scope, move || pool_worker(&jobs, &done))?;
        }
        let mut pool = Pool {
            lanes,
            open: Vec::new(),
            cap: open.max(1),
            parkable_open: 0,
            workers,
            in_flight: 0,
            jobs: jobs.clone(),
            done: done_rx,
            free: Vec::new(),
            raw: RawRecord::default(),
        };
        let result = pool.run(engine, dead, tick, &mut analyze);
        // Every job comes back (with its input and decoder) before the
        // decoders are returned, on an error too.
        let drained = pool.drain();
        jobs.close();
        for lane in pool.lanes {
            let (_, decoder) = lane.held.expect("no job is in flight");
            engine.return_decoder(lane.origin, decoder);
        }
        drained?;
        result
    })
}

/// A batch of records to read from one input, for a pool worker.
struct Job<'a> {
    lane: usize,
    /// When the merge will need it (its input's horizon): the queue's
    /// order.
    due: Option<Timestamp>,
    source: &'a mut dyn Input,
    decoder: Decoder,
    /// A batch the merge is done with: cleared (its events freed) by the
    /// worker and filled again.
    batch: Batch,
    limit: usize,
    /// Position of the last record read from the input.
    position: u64,
}

/// A job done: the input and decoder back, with what was read.
struct Done<'a> {
    job: Job<'a>,
    /// The input ended (read to its end, or unreadable past a point): the
    /// batch holds its last records.
    ended: bool,
    /// The read panicked: the merge panics with it.
    panic: Option<Box<dyn std::any::Any + Send>>,
}

/// Jobs handed out and not yet started: the workers take them in order,
/// and the merge takes one back to read it itself when it needs that
/// input now (rather than wait behind the others).
struct Jobs<'a> {
    queue: Mutex<JobQueue<'a>>,
    ready: Condvar,
}

#[derive(Default)]
struct JobQueue<'a> {
    jobs: VecDeque<Job<'a>>,
    closed: bool,
}

impl Default for Jobs<'_> {
    fn default() -> Self {
        Jobs {
            queue: Mutex::new(JobQueue::default()),
            ready: Condvar::new(),
        }
    }
}

impl<'a> Jobs<'a> {
    fn lock(&self) -> std::sync::MutexGuard<'_, JobQueue<'a>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, job: Job<'a>) {
        let mut q = self.lock();
        let key = (job.due, job.lane);
        let at = q.jobs.partition_point(|j| (j.due, j.lane) <= key);
        q.jobs.insert(at, job);
        drop(q);
        self.ready.notify_one();
    }

    /// The next job, waiting for one; `None` once closed.
    fn next(&self) -> Option<Job<'a>> {
        let mut q = self.lock();
        loop {
            if let Some(job) = q.jobs.pop_front() {
                return Some(job);
            }
            if q.closed {
                return None;
            }
            q = self.ready.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Lane `lane`'s job, if no worker has started it.
    fn take_back(&self, lane: usize) -> Option<Job<'a>> {
        let mut q = self.lock();
        let at = q.jobs.iter().position(|j| j.lane == lane)?;
        q.jobs.remove(at)
    }

    /// The job queued last (needed last), if any is not started.
    fn take_back_last(&self) -> Option<Job<'a>> {
        self.lock().jobs.pop_back()
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

/// Closes the job queue when dropped (the merge unwinding included), so
/// the scope's workers end.
struct CloseOnDrop<'a>(Arc<Jobs<'a>>);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A pool worker: read jobs until the queue closes.
fn pool_worker<'a>(jobs: &Jobs<'a>, done: &Sender<Done<'a>>) {
    yield_to_engine();
    let mut raw = RawRecord::default();
    while let Some(mut job) = jobs.next() {
        job.batch.records.clear();
        job.batch.events.clear();
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            read_batch(
                &mut *job.source,
                &mut job.decoder,
                &mut job.batch,
                job.limit,
                &mut job.position,
                &mut raw,
            )
        }));
        let (ended, panic) = match read {
            Ok(ended) => (ended, None),
            Err(p) => (true, Some(p)),
        };
        if done.send(Done { job, ended, panic }).is_err() {
            return;
        }
    }
}

/// Read up to `limit` records of `source` and decode them with `decoder`
/// into `batch`. Returns whether the input ended (its decoder then flushed
/// what it held for continuation lines into the batch).
fn read_batch(
    source: &mut dyn Input,
    decoder: &mut Decoder,
    batch: &mut Batch,
    limit: usize,
    position: &mut u64,
    raw: &mut RawRecord,
) -> bool {
    let mut read = 0;
    while read < limit {
        read += 1;
        let decoded = match source.next_into(raw) {
            None => break,
            Some(Err(e)) => {
                // An input that cannot be read further (a damaged `.gz`)
                // is a dead letter and the end of that input; the others
                // go on. Anything else (a cancelled analysis) stops the run.
                match unreadable(&e) {
                    Some(detail) => {
                        let at = RawRecord::line(source_origin(source), *position + 1, Vec::new());
                        batch
                            .records
                            .push(Decode::Dead(decoder.unreadable(&at, detail)));
                    }
                    None => batch.records.push(Decode::Failed(e)),
                }
                break;
            }
            Some(Ok(())) => {
                *position = raw.position;
                let start = batch.events.len();
                match decoder.decode(raw, &mut batch.events) {
                    Ok(()) => Decode::Events((batch.events.len() - start) as u32),
                    Err(letter) => {
                        batch.events.truncate(start);
                        Decode::Dead(letter)
                    }
                }
            }
        };
        batch.records.push(decoded);
        if read == limit {
            return false;
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
    true
}

/// One input of the pooled merge.
///
/// Events are analysed where they lie in the batch (the head is
/// `batch.events[event]`) rather than moved into a queue and out again: an
/// event is a few hundred bytes, and three moves per event were a
/// measurable share of the engine thread.
struct PoolLane<'a> {
    origin: Arc<str>,
    /// The input and its decoder; `None` while a worker reads it.
    held: Option<(&'a mut dyn Input, Decoder)>,
    /// Position of the last record read.
    position: u64,
    /// Whether anything was read from it yet.
    started: bool,
    batch: Batch,
    /// Next record of `batch` to fold in.
    next: usize,
    /// Next event of `batch` to analyse.
    event: usize,
    /// Events of the records folded in so far not yet analysed.
    pending: usize,
    /// Batches read after `batch`.
    queue: VecDeque<Batch>,
    /// The input's last records have been read.
    ended: bool,
    /// ... and folded in.
    done: bool,
    /// Whether a record of this input was folded in yet.
    seen: bool,
    /// Counted among the open inputs (read since it was last parked).
    open: bool,
    /// It cannot be parked (a pipe): open until the end, outside the cap.
    pinned: bool,
    /// Time of the last event read so far: roughly when the merge will
    /// need the next read.
    horizon: Option<Timestamp>,
    /// Time of its newest event analysed (why a late one was late).
    newest: Option<Timestamp>,
}

impl<'a> PoolLane<'a> {
    fn new(origin: Arc<str>, source: &'a mut dyn Input, decoder: Decoder) -> Self {
        PoolLane {
            origin,
            held: Some((source, decoder)),
            position: 0,
            started: false,
            batch: Batch::default(),
            next: 0,
            event: 0,
            pending: 0,
            queue: VecDeque::new(),
            ended: false,
            done: false,
            seen: false,
            open: false,
            pinned: false,
            newest: None,
            horizon: None,
        }
    }

    /// The earliest event not yet analysed, if one is buffered.
    fn head(&mut self) -> Option<&mut Event> {
        (self.pending > 0).then(|| &mut self.batch.events[self.event])
    }

    /// Drop the head (it has been analysed).
    fn advance(&mut self) {
        self.event += 1;
        self.pending -= 1;
    }
}

/// The pooled merge's inputs and readers.
struct Pool<'a> {
    lanes: Vec<PoolLane<'a>>,
    /// Lanes counted as open (parkable ones, at most `cap`) or pinned.
    open: Vec<usize>,
    cap: usize,
    /// Parkable lanes open now.
    parkable_open: usize,
    workers: usize,
    in_flight: usize,
    jobs: Arc<Jobs<'a>>,
    done: Receiver<Done<'a>>,
    /// Batches the merge is done with, to be refilled.
    free: Vec<Batch>,
    /// The record inline reads go through.
    raw: RawRecord,
}

impl<'a> Pool<'a> {
    /// The event-time merge: every lane filled in input order, then the
    /// earliest head analysed and its lane filled again, until none has one.
    fn run<F: FnMut(&mut Engine, &mut Event, &mut Option<Timestamp>)>(
        &mut self,
        engine: &mut Engine,
        dead: &mut dyn DeadLetterSink,
        tick: &dyn Fn(),
        analyze: &mut F,
    ) -> anyhow::Result<()> {
        let mut order = Merge::default();
        for i in 0..self.lanes.len() {
            if let Some(ts) = self.fill(i, engine, dead, tick)? {
                order.offer(i, ts);
            }
        }
        while let Some(i) = order.next(|_| false) {
            let lane = &mut self.lanes[i];
            let mut newest = lane.newest;
            analyze(
                engine,
                lane.head().expect("a lane in the order has an event"),
                &mut newest,
            );
            lane.newest = newest;
            lane.advance();
            if let Some(ts) = self.fill(i, engine, dead, tick)? {
                order.offer(i, ts);
            }
        }
        Ok(())
    }

    /// Fold records of lane `i` in until it has an event to analyse or has
    /// ended. Returns the event's time, if it has one.
    fn fill(
        &mut self,
        i: usize,
        engine: &mut Engine,
        dead: &mut dyn DeadLetterSink,
        tick: &dyn Fn(),
    ) -> anyhow::Result<Option<Timestamp>> {
        loop {
            let lane = &mut self.lanes[i];
            if lane.pending > 0 || lane.done {
                break;
            }
            if lane.next == lane.batch.records.len() {
                if let Some(batch) = lane.queue.pop_front() {
                    let spent = std::mem::replace(&mut lane.batch, batch);
                    lane.next = 0;
                    lane.event = 0;
                    self.recycle(spent);
                    self.poll();
                } else if lane.ended {
                    lane.done = true;
                } else {
                    self.read_now(i)?;
                }
                continue;
            }
            if !lane.seen {
                lane.seen = true;
                engine.decoded_from(&lane.origin);
            }
            let record = std::mem::replace(&mut lane.batch.records[lane.next], Decode::Events(0));
            lane.next += 1;
            match record {
                Decode::Events(n) => {
                    let n = n as usize;
                    for event in &lane.batch.events[lane.event..lane.event + n] {
                        engine.account(event);
                    }
                    lane.pending = n;
                }
                Decode::Dead(letter) => dead.put(&letter)?,
                Decode::Failed(e) => return Err(e),
            }
            tick();
        }
        Ok(self.lanes[i].head().map(|e| e.timestamp()))
    }

    /// Lane `i` has nothing left to fold and has not ended: wait for its
    /// read in flight, or read it here.
    fn read_now(&mut self, i: usize) -> anyhow::Result<()> {
        if self.lanes[i].held.is_some() {
            return self.read_here(i);
        }
        if let Some(job) = self.jobs.take_back(i) {
            // Not started yet: read here rather than wait behind others.
            self.in_flight -= 1;
            let Job {
                source,
                mut decoder,
                batch: spent,
                limit,
                mut position,
                ..
            } = job;
            // The spent events are freed by a worker, off the merge's path.
            self.recycle(spent);
            let mut batch = Batch::with_capacity(limit);
            let ended = read_batch(
                &mut *source,
                &mut decoder,
                &mut batch,
                limit,
                &mut position,
                &mut self.raw,
            );
            self.lanes[i].held = Some((source, decoder));
            self.lanes[i].position = position;
            self.arrived(i, batch, ended);
            return Ok(());
        }
        // A worker is reading it.
        while self.lanes[i].held.is_none() {
            self.complete()?;
        }
        self.schedule();
        Ok(())
    }

    /// Read lane `i`, which no job holds, on this thread.
    fn read_here(&mut self, i: usize) -> anyhow::Result<()> {
        self.make_open(i)?;
        let lane = &mut self.lanes[i];
        let limit = if lane.started {
            BATCH_RECORDS
        } else {
            FIRST_RECORDS
        };
        lane.started = true;
        let mut batch = Batch::with_capacity(limit);
        let (source, decoder) = lane.held.as_mut().expect("checked above");
        let ended = read_batch(
            &mut **source,
            decoder,
            &mut batch,
            limit,
            &mut lane.position,
            &mut self.raw,
        );
        self.arrived(i, batch, ended);
        Ok(())
    }

    /// Count lane `i` as open, parking another first when `cap` are.
    fn make_open(&mut self, i: usize) -> anyhow::Result<()> {
        if self.lanes[i].open {
            return Ok(());
        }
        while self.parkable_open >= self.cap {
            // The open input whose decoded records reach furthest is the
            // one needed again last.
            let victim = self
                .open
                .iter()
                .copied()
                .filter(|&j| {
                    let l = &self.lanes[j];
                    !l.pinned && l.held.is_some()
                })
                .max_by_key(|&j| (self.lanes[j].horizon, j));
            match victim {
                Some(j) => self.park(j),
                // Every open input has a read queued or running: take back
                // the one queued last (needed last), or wait for one.
                None => match self.jobs.take_back_last() {
                    Some(job) => {
                        self.in_flight -= 1;
                        self.lanes[job.lane].held = Some((job.source, job.decoder));
                        self.recycle(job.batch);
                    }
                    None => self.complete()?,
                },
            }
        }
        self.lanes[i].open = true;
        self.open.push(i);
        self.parkable_open += 1;
        Ok(())
    }

    /// Let lane `j`'s input go until it is read again (at its end: for
    /// good); an input that cannot is pinned open.
    fn park(&mut self, j: usize) {
        let lane = &mut self.lanes[j];
        let (source, _) = lane.held.as_mut().expect("parked only when held");
        if source.park() {
            lane.open = false;
            self.open.retain(|&k| k != j);
        } else {
            lane.pinned = true;
        }
        self.parkable_open -= 1;
    }

    /// A read of lane `i` gave `batch`.
    fn arrived(&mut self, i: usize, batch: Batch, ended: bool) {
        let lane = &mut self.lanes[i];
        if let Some(e) = batch.events.last() {
            lane.horizon = Some(e.timestamp());
        }
        lane.ended |= ended;
        let close = ended && lane.open && !lane.pinned;
        if batch.records.is_empty() {
            self.recycle(batch);
        } else {
            lane.queue.push_back(batch);
        }
        if close {
            self.park(i);
        }
    }

    /// Wait for one job and take its results in.
    fn complete(&mut self) -> anyhow::Result<()> {
        let done = self
            .done
            .recv()
            .map_err(|_| anyhow::anyhow!("the decode workers stopped"))?;
        self.take_in(done);
        Ok(())
    }

    /// Take in the jobs done so far, without waiting, and hand out more:
    /// called at each batch the merge starts, so the workers are not left
    /// idle until the merge happens to wait for one of them.
    fn poll(&mut self) {
        while let Ok(done) = self.done.try_recv() {
            self.take_in(done);
        }
        self.schedule();
    }

    /// A job's input and decoder back, and what it read.
    fn take_in(&mut self, done: Done<'a>) {
        self.in_flight -= 1;
        if let Some(panic) = done.panic {
            std::panic::resume_unwind(panic);
        }
        let Job {
            lane: i,
            source,
            decoder,
            batch,
            position,
            ..
        } = done.job;
        self.lanes[i].held = Some((source, decoder));
        self.lanes[i].position = position;
        self.arrived(i, batch, done.ended);
    }

    /// Wait for every job in flight (what they read is not needed).
    fn drain(&mut self) -> anyhow::Result<()> {
        while self.in_flight > 0 {
            self.complete()?;
        }
        Ok(())
    }

    /// Give the workers reads ahead of the merge: a job for every open
    /// input with room in its queue and none in flight, queued by how soon
    /// its decoded records run out (the merge takes back one it needs
    /// before a worker starts it).
    fn schedule(&mut self) {
        if self.workers == 0 {
            return;
        }
        for k in 0..self.open.len() {
            let j = self.open[k];
            let lane = &mut self.lanes[j];
            if lane.ended || lane.queue.len() >= BATCHES_IN_FLIGHT {
                continue;
            }
            let Some((source, decoder)) = lane.held.take() else {
                continue;
            };
            lane.started = true;
            let batch = self.free.pop().unwrap_or_default();
            self.jobs.push(Job {
                lane: j,
                due: lane.horizon,
                source,
                decoder,
                batch,
                limit: BATCH_RECORDS,
                position: lane.position,
            });
            self.in_flight += 1;
        }
    }

    /// Keep a batch the merge is done with for a later read (its events
    /// are freed by the worker that reuses it).
    fn recycle(&mut self, batch: Batch) {
        if self.free.len() < 2 * self.open.len() + 2 && batch.records.capacity() >= BATCH_RECORDS {
            self.free.push(batch);
        }
    }
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
fn merge_lanes<F: FnMut(&mut Engine, &mut Event, &mut Option<Timestamp>)>(
    mut lanes: Vec<Lane>,
    engine: &mut Engine,
    dead: &mut dyn DeadLetterSink,
    tick: &dyn Fn(),
    mut analyze: F,
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
        analyze(
            engine,
            lane.buf
                .front_mut()
                .expect("a lane in the order has an event"),
            &mut lane.newest,
        );
        lane.buf.pop_front();
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
    let Lane {
        source,
        buf,
        done,
        read,
        origin,
        ..
    } = lane;
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
        // The end of the input (read to its end, or unreadable past a
        // point) completes what its decoder held for continuation lines.
        if let (true, Some(o)) = (*done, origin.as_deref()) {
            scratch.clear();
            engine.flush(o, scratch);
            buf.extend(scratch.drain(..));
        }
    }
    Ok(buf.front().map(|e| e.timestamp()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EngineSettings;
    use ingest::source::file::LineReader;
    use std::io::Write;
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An input as the one-thread merge reads it: no origin known ahead.
    struct Hidden(LineReader);

    impl Input for Hidden {
        fn next_record(&mut self) -> Option<anyhow::Result<RawRecord>> {
            Input::next_record(&mut self.0)
        }
    }

    /// A file input that counts how many of its kind are open at once.
    struct Counted {
        input: LineReader,
        open: bool,
        now: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
        opens: Arc<AtomicUsize>,
    }

    impl Input for Counted {
        fn next_record(&mut self) -> Option<anyhow::Result<RawRecord>> {
            unreachable!("the pool reads through next_into")
        }

        fn next_into(&mut self, raw: &mut RawRecord) -> Option<anyhow::Result<()>> {
            if !self.open {
                self.open = true;
                self.opens.fetch_add(1, Ordering::SeqCst);
                let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
                self.most.fetch_max(now, Ordering::SeqCst);
            }
            self.input.next_into(raw)
        }

        fn origin(&self) -> Option<Arc<str>> {
            Input::origin(&self.input)
        }

        fn park(&mut self) -> bool {
            if self.open {
                self.open = false;
                self.now.fetch_sub(1, Ordering::SeqCst);
            }
            self.input.park()
        }
    }

    #[derive(Default)]
    struct Letters(Vec<String>);

    impl DeadLetterSink for Letters {
        fn put(&mut self, letter: &ingest::DeadLetter) -> anyhow::Result<()> {
            self.0.push(serde_json::to_string(letter)?);
            Ok(())
        }
    }

    /// A logfmt line at second `t`.
    fn line(t: u64, level: &str, msg: &str) -> String {
        format!(
            "ts=2026-01-05T{:02}:{:02}:{:02}Z level={level} service=s msg=\"{msg}\"\n",
            t / 3600,
            t / 60 % 60,
            t % 60
        )
    }

    /// Files that overlap in time and do not, with records out of order,
    /// dead letters, blank lines, continuation lines, an empty file and a
    /// gzipped one.
    fn files(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut seed = 7u64;
        let mut rand = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let mut texts: Vec<(String, String)> = Vec::new();
        for f in 0..6 {
            let mut text = String::new();
            for i in 0..700u64 {
                // Overlapping files, each a little out of order.
                let t = 1000 + i * 5 + rand(40);
                let level = if rand(50) == 0 { "error" } else { "info" };
                text += &line(
                    t,
                    level,
                    &format!("file {f} record {i} took {} ms", rand(900)),
                );
                match rand(60) {
                    0 => text += "\u{1}\u{2}\u{0}binary\n",
                    1 => text += "\n",
                    2 => text += "    at com.example.Thing.run(Thing.java:42)\n",
                    _ => {}
                }
            }
            texts.push((format!("o{f}.log"), text));
        }
        // Rotated: one after another in time.
        for r in 0..3u64 {
            let text: String = (0..300)
                .map(|i| {
                    line(
                        5000 + r * 2000 + i * 6,
                        "warn",
                        &format!("rotated {r} line {i}"),
                    )
                })
                .collect();
            texts.push((format!("r{r}.log"), text));
        }
        texts.push(("empty.log".into(), String::new()));
        texts.push(("one.log".into(), line(1200, "info", "alone")));
        texts.push(("junk.log".into(), "\u{0}\u{1}\n".repeat(40)));
        let mut paths = Vec::new();
        for (name, text) in texts {
            let p = dir.join(&name);
            std::fs::write(&p, &text).unwrap();
            paths.push(p);
        }
        // The first overlapping file again, gzipped.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&std::fs::read(&paths[0]).unwrap()).unwrap();
        let p = dir.join("z.log.gz");
        std::fs::write(&p, gz.finish().unwrap()).unwrap();
        paths.insert(2, p);
        paths
    }

    /// What a run saw: each event analysed in order, the dead letters in
    /// order, and the summary.
    fn run(
        mut inputs: Vec<Box<dyn Input>>,
        open: usize,
    ) -> (Vec<(Timestamp, String)>, Vec<String>, String) {
        let mut engine = Engine::new(EngineSettings::for_run()).unwrap();
        let mut dead = Letters::default();
        let mut seen = Vec::new();
        merge_with(
            &mut inputs,
            open,
            &mut engine,
            &mut dead,
            &|| {},
            |e, event, _| {
                seen.push((
                    event.timestamp(),
                    match &*event {
                        Event::Log(r) => r.message.clone(),
                        other => format!("{other:?}"),
                    },
                ));
                e.analyze_mut(event);
            },
        )
        .unwrap();
        let summary = serde_json::to_string(&engine.summary()).unwrap();
        (seen, dead.0, summary)
    }

    #[test]
    fn the_pool_reads_in_the_one_thread_order_with_few_files_open() {
        let dir = tempfile::tempdir().unwrap();
        let paths = files(dir.path());
        let reference = run(
            paths
                .iter()
                .map(|p| Box::new(Hidden(LineReader::open(p, 4096).unwrap())) as Box<dyn Input>)
                .collect(),
            OPEN_INPUTS,
        );
        assert!(reference.0.len() > 4000, "{}", reference.0.len());
        assert!(reference.1.len() > 50, "{}", reference.1.len());
        assert!(
            reference.0.windows(2).any(|w| w[1].0 < w[0].0),
            "records out of order within a file stay so"
        );
        for open in [1, 2, 3, 5, OPEN_INPUTS] {
            let (now, most, opens) = (
                Arc::default(),
                Arc::<AtomicUsize>::default(),
                Arc::<AtomicUsize>::default(),
            );
            let inputs = paths
                .iter()
                .map(|p| {
                    Box::new(Counted {
                        input: LineReader::lazy(p, 4096).unwrap(),
                        open: false,
                        now: Arc::clone(&now),
                        most: Arc::clone(&most),
                        opens: Arc::clone(&opens),
                    }) as Box<dyn Input>
                })
                .collect();
            let got = run(inputs, open);
            assert!(got.0 == reference.0, "events in another order, {open} open");
            assert_eq!(got.1, reference.1, "dead letters, {open} open");
            assert_eq!(got.2, reference.2, "summary, {open} open");
            let most = most.load(Ordering::SeqCst);
            assert!(most <= open, "{most} files open at once, {open} allowed");
            assert_eq!(
                now.load(Ordering::SeqCst),
                0,
                "every file closed at its end"
            );
            // Fewer open than overlap in time: files were parked part-way
            // and resumed (the empty file is opened once too).
            let opens = opens.load(Ordering::SeqCst);
            if open < 7 {
                assert!(opens > paths.len(), "{opens} opens, {open} open");
            }
        }
    }
}
