//! The engine that replay and the Kafka consumer both drive.
//!
//! A source hands raw records to [`Engine::push`] in arrival order; the
//! pipeline decodes them with one [`Decoder`] per origin (so format sniffing
//! is per file or topic), mines log templates, and accumulates what it saw.
//! Dead letters go to the sink the caller gave, so replay writes
//! `dead-letter.jsonl` and streaming produces to a topic with the same code.
//!
//! Nothing here reads a clock or does I/O of its own: the same records in
//! the same order give the same bytes out.

use analyze::{Analyzer, AnalyzerConfig, AnalyzerOutput};
use ingest::decode::{Decoder, DecoderConfig};
use ingest::mining::{MinerConfig, TemplateMiner};
use ingest::{DeadLetter, Format, IngestStats, RawRecord};
use models::{ChangeEvent, Event, Level, Timestamp};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where dead letters go. Replay writes JSON lines; streaming produces to a
/// dead-letter topic.
pub trait DeadLetterSink {
    /// Keep one dead letter. Errors are the sink's own (disk full...), not
    /// the record's, and stop the run.
    fn put(&mut self, letter: &DeadLetter) -> anyhow::Result<()>;
}

/// Settings for one run of the engine.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Format for every input, or `Format::Auto` to sniff each origin.
    pub format: Format,
    /// Size caps, timestamp sanity, cardinality caps.
    pub decoder: DecoderConfig,
    /// Template miner settings.
    pub miner: MinerConfig,
    /// Cap on distinct metric series tracked for the summary.
    pub max_series: usize,
    /// Signals, detectors and correlation.
    pub analyzer: AnalyzerConfig,
    /// Count each template per minute for plotting (the store's
    /// `template_count` signals), up to this many (template, minute) cells;
    /// 0 keeps none. Kept beside the analysis, never read by it, so it
    /// cannot change what is found.
    pub template_trace: usize,
}

impl EngineSettings {
    /// These settings, with decoders that keep only the fields of a record
    /// the analysis reads (nothing else sees a record once it is decoded:
    /// the outputs are anomalies, incidents and dead letters, which keep
    /// the raw text). A shipped Kubernetes record's thirty labels and
    /// annotations were built into a sorted map and freed again for
    /// nothing: a third of such a replay.
    fn reading_only_what_is_analysed(mut self) -> Self {
        let mut fields = (*self.decoder.fields).clone();
        fields.kept = Some(self.analyzer.fields_read());
        self.decoder.fields = std::sync::Arc::new(fields);
        self
    }

    /// The settings replay and `POST /analyze` share (one engine, so the
    /// same records give the same incidents): sniffed formats, timestamps
    /// checked against the wall clock of now, default miner and analysis.
    /// Callers adjust what their flags change.
    pub fn for_run() -> Self {
        EngineSettings {
            format: Format::Auto,
            decoder: DecoderConfig {
                reference_time: Some(Timestamp::from_millis(
                    chrono::Utc::now().timestamp_millis(),
                )),
                ..DecoderConfig::default()
            },
            miner: MinerConfig::default(),
            max_series: 100_000,
            analyzer: AnalyzerConfig::default(),
            template_trace: 0,
        }
    }
}

/// The memory caps as `/metrics` labels them, with what each turned away:
/// distinct series beyond `max_series`, observations of signals beyond the
/// signal cap, templates evicted, and sessions closed early by the
/// open-session cap with anchors or template pairs beyond the invariants'
/// caps. One list for a live engine ([`Engine::over_cap`]) and a finished
/// run ([`Summary::over_cap`]); `caps(0, 0, 0, 0)` is the start of a sum
/// over engines.
pub fn caps(
    series: u64,
    signal_observations: u64,
    templates: u64,
    sessions: u64,
) -> [(&'static str, u64); 4] {
    [
        ("metric_series", series),
        ("signal_observations", signal_observations),
        ("templates_evicted", templates),
        ("sessions", sessions),
    ]
}

/// Version of [`Engine::snapshot`]'s format: bumped whenever a type in
/// the state changes shape, so an old checkpoint is refused with a clear
/// error instead of being misread.
const STATE_VERSION: u32 = 3;

/// [`Engine::snapshot`]'s layout, borrowed to write. Fields in the same
/// order as [`StateOwned`]: kept alike for readers of both.
#[derive(Serialize)]
struct StateRef<'a> {
    version: u32,
    decoders: Vec<(String, ingest::decode::DecoderState)>,
    miner: String,
    acc: &'a Accumulator,
    analyzer: analyze::AnalyzerState<'a>,
    template_cells: Vec<(&'a (Arc<str>, i64), &'a u64)>,
    template_cells_dropped: u64,
    /// Found and not yet taken (a bounded `remedy run` takes everything at
    /// the end, so a crash before then must not lose what was found).
    pending_anomalies: &'a [models::Anomaly],
    pending_incidents: &'a [models::Incident],
}

/// [`Engine::snapshot`]'s layout, read back.
#[derive(Deserialize)]
struct StateOwned {
    #[allow(dead_code)] // checked before the whole state is read
    version: u32,
    decoders: Vec<(String, ingest::decode::DecoderState)>,
    miner: String,
    acc: Accumulator,
    analyzer: analyze::AnalyzerStateOwned,
    template_cells: Vec<((Arc<str>, i64), u64)>,
    template_cells_dropped: u64,
    #[serde(default)]
    pending_anomalies: Vec<models::Anomaly>,
    #[serde(default)]
    pending_incidents: Vec<models::Incident>,
}

/// Read a CBOR state whose `version` field must be `expected`, naming
/// `what` in the error: an old checkpoint is refused, never misread.
pub fn read_state<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    expected: u32,
    what: &str,
) -> anyhow::Result<T> {
    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }
    let version = ciborium::from_reader::<Version, _>(bytes)
        .map_err(|e| anyhow::anyhow!("{what} is unreadable: {e}"))?
        .version;
    anyhow::ensure!(
        version == expected,
        "{what} has version {version}, this build reads {expected}: start from scratch \
         (a new changelog topic or consumer group)"
    );
    ciborium::from_reader(bytes).map_err(|e| anyhow::anyhow!("{what} is unreadable: {e}"))
}

/// Width of a template-count cell.
const TEMPLATE_TRACE_MS: i64 = 60_000;

/// How many templates the summary lists.
const TOP_TEMPLATES: usize = 15;

/// The engine.
pub struct Engine {
    config: EngineSettings,
    /// One decoder per origin: formats are sniffed per file or topic and
    /// Prometheus `# TYPE` state must not leak between files.
    decoders: HashMap<Arc<str>, Decoder>,
    /// Origins in the order first seen, so the summary is stable.
    origins: Vec<Arc<str>>,
    /// The same origins, to look one up (a replay of 21,000 files spent
    /// most of its time searching the list).
    known: HashSet<Arc<str>>,
    miner: TemplateMiner,
    acc: Accumulator,
    analyzer: Analyzer,
    /// Anomalies and resolved incidents not yet taken by the caller.
    output: AnalyzerOutput,
    /// Records per (template, minute), when `template_trace` asks.
    template_cells: HashMap<(Arc<str>, i64), u64>,
    /// Cells not kept because the cap was reached.
    template_cells_dropped: u64,
}

/// Most series beyond the series cap that are told apart (then counted as
/// at least this many).
const MAX_OVER_CAP: usize = 1_000_000;

/// Running totals behind the summary.
#[derive(Default, Serialize, Deserialize)]
struct Accumulator {
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    logs: u64,
    by_level: BTreeMap<String, u64>,
    by_service: BTreeMap<String, ServiceSummary>,
    samples: u64,
    non_finite_samples: u64,
    series: HashSet<models::SeriesKey>,
    /// Hashes of the distinct series beyond `max_series` (8 bytes each, up
    /// to [`MAX_OVER_CAP`]), so the summary counts series, not samples.
    #[serde(default)]
    over_cap: HashSet<u64>,
    metric_names: BTreeMap<String, u64>,
    changes: Vec<ChangeEvent>,
    /// Containers seen per service (replica counts for the blast radius).
    containers: BTreeMap<String, std::collections::BTreeSet<String>>,
    /// Of the late events, those behind their own input (see
    /// [`Summary::late_by_reason`]; absent in older checkpoints).
    #[serde(default)]
    late_out_of_order: u64,
}

/// Per-service log counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServiceSummary {
    /// Log records.
    pub logs: u64,
    /// Error-or-worse records.
    pub errors: u64,
    /// Warnings.
    pub warnings: u64,
}

/// What one origin (file, topic) contributed.
#[derive(Debug, Clone, Serialize)]
pub struct OriginSummary {
    /// Path or topic.
    pub origin: String,
    /// Format used (after sniffing).
    pub format: String,
    /// Accounting for this origin alone.
    pub stats: IngestStats,
}

/// One template in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateSummary {
    /// Stable id.
    pub id: String,
    /// Template text, variables as `<*>`.
    pub template: String,
    /// Records that matched.
    pub count: u64,
}

/// Everything a run found, serialised as `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `models::SCHEMA_VERSION`.
    pub schema_version: u32,
    /// First and last event time seen.
    pub first_event: Option<Timestamp>,
    /// Last event time seen.
    pub last_event: Option<Timestamp>,
    /// Totals over every origin.
    pub ingest: IngestStats,
    /// Per origin, in the order read.
    pub origins: Vec<OriginSummary>,
    /// Log records.
    pub logs: u64,
    /// Log records by level (`none` when the record had no level).
    pub logs_by_level: BTreeMap<String, u64>,
    /// Log records by service (`unknown` when none).
    pub logs_by_service: BTreeMap<String, ServiceSummary>,
    /// Metric samples.
    pub metric_samples: u64,
    /// Samples whose value was NaN or infinite.
    pub metric_samples_non_finite: u64,
    /// Distinct series (up to the cap).
    pub metric_series: usize,
    /// Distinct series beyond the cap (not tracked; counted up to a
    /// million).
    pub metric_series_over_cap: u64,
    /// Samples per metric name.
    pub metric_names: BTreeMap<String, u64>,
    /// Deploys and config changes, in order seen.
    pub changes: Vec<ChangeEvent>,
    /// Events that arrived after the analysis had closed their window
    /// (older than the newest event time minus the allowed lateness, 30 s
    /// by default: input far out of time order): parsed and counted here,
    /// left out of the signals.
    pub late_events: u64,
    /// Why: `out_of_order`, older than events its own input had already
    /// given by more than the allowed lateness (the input itself is out of
    /// time order: shuffled lines, a clock that jumped back), and
    /// `input_behind`, in order within its input while the other inputs
    /// had moved the analysis on (an input that lagged, or resumed after
    /// the streaming merge took it for idle). Only reasons that occurred.
    #[serde(default)]
    pub late_by_reason: BTreeMap<String, u64>,
    /// Distinct signals the analysis judged (each service's error,
    /// warning and latency signals, each metric series...): the
    /// denominator of a false-alarm rate per signal-day.
    pub signals: usize,
    /// Observations turned away because their signal was new when the
    /// analysis already tracked its cap of signals (100,000 by default):
    /// counted, not analysed.
    pub signals_over_cap: u64,
    /// Distinct templates mined.
    pub templates: usize,
    /// Templates evicted by the template cap.
    pub templates_evicted: u64,
    /// Sessions closed early by the open-session cap, and anchors or
    /// template pairs turned away by the invariants' caps.
    pub sessions_over_cap: u64,
    /// Most frequent templates.
    pub top_templates: Vec<TemplateSummary>,
    /// Anomalies found.
    pub anomalies: usize,
    /// Incidents found.
    pub incidents: usize,
    /// Actions planned (including skipped ones).
    pub actions: usize,
    /// Comparison with labelled faults, when labels were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<crate::evaluate::Evaluation>,
}

impl Summary {
    /// What the memory caps turned away in this run, by cap (the labels
    /// of `/metrics`' `remedy_analysis_over_cap`).
    pub fn over_cap(&self) -> [(&'static str, u64); 4] {
        caps(
            self.metric_series_over_cap,
            self.signals_over_cap,
            self.templates_evicted,
            self.sessions_over_cap,
        )
    }
}

impl Engine {
    /// A new engine.
    pub fn new(config: EngineSettings) -> anyhow::Result<Self> {
        let config = config.reading_only_what_is_analysed();
        let miner = TemplateMiner::new(config.miner.clone())?;
        let analyzer = Analyzer::new(config.analyzer.clone());
        Ok(Engine {
            analyzer,
            output: AnalyzerOutput::default(),
            config,
            decoders: HashMap::default(),
            origins: Vec::new(),
            known: HashSet::default(),
            miner,
            acc: Accumulator::default(),
            template_cells: HashMap::default(),
            template_cells_dropped: 0,
        })
    }

    /// Read records of `origin` as `format`, whatever the run's default:
    /// inputs of one run may differ in format (the API's inputs).
    pub fn set_origin_format(&mut self, origin: Arc<str>, format: Format) -> anyhow::Result<()> {
        let d = self.new_decoder(format)?;
        if self.decoders.insert(origin.clone(), d).is_none() {
            self.add_origin(origin);
        }
        Ok(())
    }

    /// Decode one raw record and fold it into the summary, appending its
    /// events to `out`. Bad records go to `dead`.
    pub fn decode(
        &mut self,
        raw: &RawRecord,
        dead: &mut dyn DeadLetterSink,
        out: &mut Vec<Event>,
    ) -> anyhow::Result<()> {
        let start = out.len();
        let decoder = match self.decoders.get_mut(&raw.origin) {
            Some(d) => d,
            None => self.add_decoder(&raw.origin)?,
        };
        if let Err(letter) = decoder.decode(raw, out) {
            dead.put(&letter)?;
            return Ok(());
        }
        for event in &out[start..] {
            self.account(event);
        }
        Ok(())
    }

    /// Hand over the records `origin`'s decoder holds for continuation
    /// lines (see [`ingest::multiline`]), folded into the summary: the end
    /// of that input. Nothing when it holds none.
    pub fn flush(&mut self, origin: &str, out: &mut Vec<Event>) {
        let start = out.len();
        match self.decoders.get_mut(origin) {
            Some(d) if d.holds() => d.flush(out),
            _ => return,
        }
        for event in &out[start..] {
            self.account(event);
        }
    }

    /// Whether `origin`'s decoder holds records for continuation lines.
    pub fn holds(&self, origin: &str) -> bool {
        self.decoders.get(origin).is_some_and(|d| d.holds())
    }

    /// The input `at` names could not be read past `at.position`
    /// (`detail` says why): a dead letter for the rest of it, counted by
    /// that origin's decoder.
    pub fn unreadable(
        &mut self,
        at: &RawRecord,
        detail: String,
        dead: &mut dyn DeadLetterSink,
    ) -> anyhow::Result<()> {
        let decoder = match self.decoders.get_mut(&at.origin) {
            Some(d) => d,
            None => self.add_decoder(&at.origin)?,
        };
        dead.put(&decoder.unreadable(at, detail))
    }

    /// A decoder with the run's format for `origin`, seen for the first
    /// time (it joins the summary's origins). Callers look the decoder up
    /// first: one lookup per record is the hot path.
    fn add_decoder(&mut self, origin: &Arc<str>) -> anyhow::Result<&mut Decoder> {
        let d = self.new_decoder(self.config.format.clone())?;
        self.add_origin(origin.clone());
        Ok(self.decoders.entry(origin.clone()).or_insert(d))
    }

    /// A decoder of `format` with the engine's settings, for an input that
    /// names its format, decoded elsewhere and handed back with
    /// [`Engine::return_decoder`] like a taken one.
    pub fn new_decoder(&self, format: Format) -> anyhow::Result<Decoder> {
        Ok(Decoder::new(format, self.config.decoder.clone())?)
    }

    /// Take the decoder of `origin` out of the engine (a new one when the
    /// origin has none yet), to decode that origin's records elsewhere (on
    /// a worker thread); fold what it yields in with
    /// [`Engine::decoded_from`] and [`Engine::account`] in the order
    /// [`Engine::decode`] would have seen it, and hand it back with
    /// [`Engine::return_decoder`].
    pub fn take_decoder(&mut self, origin: &Arc<str>) -> anyhow::Result<Decoder> {
        match self.decoders.remove(origin) {
            Some(d) => Ok(d),
            None => self.new_decoder(self.config.format.clone()),
        }
    }

    /// The first record of `origin` was decoded by a decoder taken with
    /// [`Engine::take_decoder`]: the origin joins the summary where
    /// [`Engine::decode`] would have added it.
    pub fn decoded_from(&mut self, origin: &Arc<str>) {
        if !self.known.contains(origin) {
            self.add_origin(origin.clone());
        }
    }

    /// `origin` joins the summary's origins, after those seen before it.
    fn add_origin(&mut self, origin: Arc<str>) {
        if self.known.insert(origin.clone()) {
            self.origins.push(origin);
        }
    }

    /// Give back a decoder taken with [`Engine::take_decoder`] (kept when
    /// its origin had a record, as [`Engine::decode`] would have).
    pub fn return_decoder(&mut self, origin: Arc<str>, decoder: Decoder) {
        if self.known.contains(&origin) {
            self.decoders.insert(origin, decoder);
        }
    }

    /// Fold one decoded event into the summary.
    pub fn account(&mut self, event: &Event) {
        let ts = event.timestamp();
        self.acc.first = Some(self.acc.first.map_or(ts, |f| f.min(ts)));
        self.acc.last = Some(self.acc.last.map_or(ts, |l| l.max(ts)));
        match event {
            Event::Log(r) => {
                self.acc.logs += 1;
                let level = r.level.map_or("none", Level::as_str);
                if let Some(n) = self.acc.by_level.get_mut(level) {
                    *n += 1;
                } else {
                    self.acc.by_level.insert(level.to_string(), 1);
                }
                let service = r.service.as_deref().unwrap_or("unknown");
                let svc = match self.acc.by_service.get_mut(service) {
                    Some(s) => s,
                    None => self.acc.by_service.entry(service.to_string()).or_default(),
                };
                svc.logs += 1;
                match r.level {
                    Some(l) if l.is_error() => svc.errors += 1,
                    Some(Level::Warn) => svc.warnings += 1,
                    _ => {}
                }
            }
            Event::Metric(m) => {
                self.acc.samples += 1;
                if !m.value.is_finite() {
                    self.acc.non_finite_samples += 1;
                }
                if !self.acc.series.contains(&m.key) {
                    if self.acc.series.len() < self.config.max_series {
                        self.acc.series.insert(m.key.clone());
                        if let (Some(s), Some(c)) =
                            (m.key.label("service"), m.key.label("container"))
                        {
                            let set = self.acc.containers.entry(s.to_string()).or_default();
                            if set.len() < 1000 {
                                set.insert(c.to_string());
                            }
                        }
                    } else if self.acc.over_cap.len() < MAX_OVER_CAP {
                        use std::hash::{Hash, Hasher};
                        let mut h = rustc_hash::FxHasher::default();
                        m.key.hash(&mut h);
                        self.acc.over_cap.insert(h.finish());
                    }
                }
                if let Some(n) = self.acc.metric_names.get_mut(&m.key.name) {
                    *n += 1;
                } else if self.acc.metric_names.len() < self.config.max_series {
                    self.acc.metric_names.insert(m.key.name.clone(), 1);
                }
            }
            Event::Change(c) => self.acc.changes.push(c.clone()),
        }
    }

    /// [`Engine::analyze_mut`] for an event of one input (file, partition)
    /// among several, whose newest event analysed so far was at `newest`
    /// (updated here): a late event is told apart by why it was late.
    pub fn analyze_in(&mut self, event: &mut Event, newest: &mut Option<Timestamp>) {
        let t = event.timestamp();
        let late = self.late_events();
        self.analyze_mut(event);
        if self.late_events() > late {
            let lateness = self.config.analyzer.signals.allowed_lateness_secs as i64 * 1000;
            if newest.is_some_and(|n| n.as_millis() - t.as_millis() > lateness) {
                self.acc.late_out_of_order += 1;
            }
        }
        if newest.is_none_or(|n| t > n) {
            *newest = Some(t);
        }
    }

    /// Analyse one decoded event: mine its template (logs), then fold it
    /// into the analysis. Events must come in event-time order (within the
    /// allowed lateness); replay and the Kafka consumer both merge their
    /// inputs by event time before calling this. Mining happens here, not
    /// in [`Engine::decode`], because template ids depend on the order
    /// messages are seen: after the merge that order is the same however
    /// the records arrived. The event is left to the caller (its template
    /// id filled in): replay hands it back to the thread that decoded it,
    /// which frees it.
    pub fn analyze_mut(&mut self, event: &mut Event) {
        if let Event::Log(r) = event {
            let m = self.miner.add(&r.message);
            if self.config.template_trace > 0 {
                let ts = r.timestamp;
                let cell = (m.id.clone(), ts.as_millis().div_euclid(TEMPLATE_TRACE_MS));
                let room = self.template_cells.len() < self.config.template_trace;
                match self.template_cells.get_mut(&cell) {
                    Some(n) => *n += 1,
                    None if room => {
                        self.template_cells.insert(cell, 1);
                    }
                    None => self.template_cells_dropped += 1,
                }
            }
            r.template_id = Some(m.id);
        }
        self.analyzer.push(event, &mut self.output);
    }

    /// Take the anomalies found and incidents resolved since the last call
    /// (the streaming service emits them as they happen; replay takes
    /// everything at the end from [`Engine::finish`]).
    pub fn drain(&mut self) -> AnalyzerOutput {
        std::mem::take(&mut self.output)
    }

    /// Incidents still open, as they stand now.
    pub fn open_incidents(&self) -> Vec<models::Incident> {
        self.analyzer.open_incidents()
    }

    /// End of input: flush the windows, close what is open, and hand over
    /// every anomaly and incident not yet taken.
    pub fn finish(&mut self) -> AnalyzerOutput {
        self.analyzer.finish(&mut self.output);
        std::mem::take(&mut self.output)
    }

    /// The per-minute template counts as plottable points (no baseline: the
    /// band is the count itself), ordered by template and time.
    pub fn template_trace(&self) -> Vec<analyze::TracePoint> {
        if self.template_cells_dropped > 0 {
            tracing::warn!(
                dropped = self.template_cells_dropped,
                cap = self.config.template_trace,
                "template counts over time are incomplete: the cap on (template, minute) cells was reached"
            );
        }
        let mut cells: Vec<(&(Arc<str>, i64), &u64)> = self.template_cells.iter().collect();
        cells.sort();
        cells
            .into_iter()
            .map(|((id, minute), n)| {
                let v = *n as f64;
                analyze::TracePoint {
                    signal: Arc::new(models::Signal {
                        kind: models::SignalKind::TemplateCount,
                        name: id.to_string(),
                        service: None,
                        host: None,
                        container: None,
                    }),
                    timestamp: Timestamp::from_millis(minute * TEMPLATE_TRACE_MS),
                    observed: v,
                    band: models::Band {
                        lower: v,
                        expected: v,
                        upper: v,
                    },
                    score: 0.0,
                    alert: false,
                }
            })
            .collect()
    }

    /// Everything the engine has learned, as bytes: the decoders' counts
    /// and chosen formats, the template miner, the summary totals and the
    /// analysis (baselines, windows, open incidents). The streaming service
    /// checkpoints this to its changelog topic; [`Engine::restore`] reads
    /// it back. Anomalies not yet taken with [`Engine::drain`] are not
    /// part of it: take them first.
    pub fn snapshot(&self) -> anyhow::Result<Vec<u8>> {
        let decoders = self
            .origins
            .iter()
            .map(|o| (o.to_string(), self.decoders[o].state()))
            .collect();
        let mut cells: Vec<(&(Arc<str>, i64), &u64)> = self.template_cells.iter().collect();
        cells.sort();
        let state = StateRef {
            version: STATE_VERSION,
            decoders,
            miner: self.miner.save_state(),
            acc: &self.acc,
            analyzer: self.analyzer.snapshot(),
            template_cells: cells,
            template_cells_dropped: self.template_cells_dropped,
            pending_anomalies: &self.output.anomalies,
            pending_incidents: &self.output.incidents,
        };
        let mut buf = Vec::new();
        ciborium::into_writer(&state, &mut buf)?;
        Ok(buf)
    }

    /// An engine with `config` carrying on from [`Engine::snapshot`].
    pub fn restore(config: EngineSettings, bytes: &[u8]) -> anyhow::Result<Self> {
        let config = config.reading_only_what_is_analysed();
        let s: StateOwned = read_state(bytes, STATE_VERSION, "engine state")?;
        let mut decoders = HashMap::default();
        let mut origins = Vec::new();
        for (origin, d) in s.decoders {
            let origin: Arc<str> = Arc::from(origin);
            decoders.insert(origin.clone(), Decoder::restore(d, config.decoder.clone())?);
            origins.push(origin);
        }
        Ok(Engine {
            analyzer: Analyzer::restore(config.analyzer.clone(), s.analyzer),
            // What was found before the snapshot and not yet taken (the
            // plotted points are not kept: they only feed plots).
            output: AnalyzerOutput {
                anomalies: s.pending_anomalies,
                incidents: s.pending_incidents,
                ..AnalyzerOutput::default()
            },
            miner: TemplateMiner::load_state(&s.miner)?,
            acc: s.acc,
            template_cells: s.template_cells.into_iter().collect(),
            template_cells_dropped: s.template_cells_dropped,
            known: origins.iter().cloned().collect(),
            decoders,
            origins,
            config,
        })
    }

    /// Replica counts per service, from the containers seen in metrics.
    pub fn replicas(&self) -> BTreeMap<String, u32> {
        self.acc
            .containers
            .iter()
            .map(|(s, c)| (s.clone(), c.len() as u32))
            .collect()
    }

    /// Every template mined so far (up to the miner's cap), most frequent
    /// first, ties by id.
    pub fn templates(&self) -> Vec<TemplateSummary> {
        let mut all: Vec<TemplateSummary> = self
            .miner
            .templates()
            .map(|t| TemplateSummary {
                id: t.id,
                template: t.template,
                count: t.count,
            })
            .collect();
        all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.id.cmp(&b.id)));
        all
    }

    /// Ingest counts over every origin so far.
    pub fn ingest(&self) -> IngestStats {
        let mut ingest = IngestStats::default();
        for o in &self.origins {
            ingest.merge(self.decoders[o].stats());
        }
        ingest
    }

    /// Events that arrived after the analysis had closed their window
    /// (counted, left out of the signals): `summary.json`'s `late_events`.
    pub fn late_events(&self) -> u64 {
        self.analyzer.signal_stats().late
    }

    /// [`Summary::late_by_reason`].
    pub fn late_by_reason(&self) -> BTreeMap<String, u64> {
        let out_of_order = self.acc.late_out_of_order;
        let behind = self.late_events().saturating_sub(out_of_order);
        [("out_of_order", out_of_order), ("input_behind", behind)]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.to_string(), n))
            .collect()
    }

    /// What the memory caps turned away so far, by cap: distinct series
    /// beyond `max_series`, observations of signals beyond the signal cap,
    /// templates evicted by the template cap (`/metrics`' `remedy_over_cap`).
    pub fn over_cap(&self) -> [(&'static str, u64); 4] {
        caps(
            self.acc.over_cap.len() as u64,
            self.analyzer.signal_stats().signals_over_cap,
            self.miner.stats().evicted,
            self.analyzer.sessions_over_cap(),
        )
    }

    /// Newest event time seen.
    pub fn last_event(&self) -> Option<Timestamp> {
        self.acc.last
    }

    /// The summary of everything pushed so far.
    pub fn summary(&self) -> Summary {
        let ingest = self.ingest();
        let origins = self
            .origins
            .iter()
            .map(|o| {
                let d = &self.decoders[o];
                OriginSummary {
                    origin: o.to_string(),
                    format: d.format_name().to_string(),
                    stats: d.stats().clone(),
                }
            })
            .collect();
        let mut top = self.templates();
        let templates = top.len();
        let signals = self.analyzer.signal_stats();
        top.truncate(TOP_TEMPLATES);
        Summary {
            schema_version: models::SCHEMA_VERSION,
            first_event: self.acc.first,
            last_event: self.acc.last,
            ingest,
            origins,
            logs: self.acc.logs,
            logs_by_level: self.acc.by_level.clone(),
            logs_by_service: self.acc.by_service.clone(),
            metric_samples: self.acc.samples,
            metric_samples_non_finite: self.acc.non_finite_samples,
            metric_series: self.acc.series.len(),
            metric_series_over_cap: self.acc.over_cap.len() as u64,
            metric_names: self.acc.metric_names.clone(),
            changes: self.acc.changes.clone(),
            late_events: self.late_events(),
            late_by_reason: self.late_by_reason(),
            signals: signals.signals,
            signals_over_cap: signals.signals_over_cap,
            templates,
            templates_evicted: self.miner.stats().evicted,
            sessions_over_cap: self.analyzer.sessions_over_cap(),
            top_templates: top,
            anomalies: 0,
            incidents: 0,
            actions: 0,
            evaluation: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_events_are_told_apart_by_why_they_were_late() {
        let mut e = Engine::new(EngineSettings::for_run()).unwrap();
        let t0 = Timestamp::parse_rfc3339("2026-01-05T10:00:00Z").unwrap();
        let at = |s: i64| {
            let mut r =
                models::LogRecord::new(Timestamp::from_millis(t0.as_millis() + s * 1000), "ok");
            r.service = Some("a".into());
            Event::Log(r)
        };
        let (mut a, mut b) = (None, None);
        // Input a runs ten minutes ahead while input b lags (in order).
        e.analyze_in(&mut at(0), &mut b);
        for s in (0..=600).step_by(15) {
            e.analyze_in(&mut at(s), &mut a);
        }
        e.analyze_in(&mut at(60), &mut b);
        // Then a goes back in time itself.
        e.analyze_in(&mut at(120), &mut a);
        let want: BTreeMap<String, u64> = [
            ("input_behind".to_string(), 1),
            ("out_of_order".to_string(), 1),
        ]
        .into();
        assert_eq!((e.late_events(), e.late_by_reason()), (2, want));
        // Kept across a checkpoint.
        let r = Engine::restore(EngineSettings::for_run(), &e.snapshot().unwrap()).unwrap();
        assert_eq!(r.summary().late_by_reason, e.late_by_reason());
    }

    #[test]
    fn series_over_the_cap_are_counted_as_series_not_samples() {
        let mut config = EngineSettings::for_run();
        config.max_series = 1;
        let mut p = Engine::new(config).unwrap();
        for t in 0..5 {
            for name in ["a", "b", "c"] {
                p.account(&Event::Metric(models::MetricSample {
                    key: models::SeriesKey::new(name, [("host", "n1")]),
                    timestamp: Timestamp::from_secs(t),
                    value: 1.0,
                    kind: Default::default(),
                }));
            }
        }
        let s = p.summary();
        assert_eq!(s.metric_samples, 15);
        assert_eq!(s.metric_series, 1);
        assert_eq!(s.metric_series_over_cap, 2, "two series, ten samples");
    }
}
