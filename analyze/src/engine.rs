//! The analysis engine: events in, anomalies and incidents out.
//!
//! Events (in event-time order, as replay's merge or a Kafka partition
//! delivers them) become signal points ([`crate::signals`]); each signal
//! gets its own detector, chosen by the registry
//! ([`crate::detectors::for_signal`]: the share of a service's records that
//! are errors, warnings or 5xx, the seasonal baseline for metrics and
//! latency, level and slope for leak-prone gauges, or the static rules);
//! the engine shows it each point with what else it knows (the service's
//! record count, the latest limits: [`crate::detector::Context`]); an
//! alert that opens is an [`Anomaly`] named after its detector; anomalies
//! and change events feed the [`Correlator`], which
//! opens, extends and resolves incidents. While a signal stays in alert its
//! incident stays open, so an incident resolves only once its signals are
//! back inside their bands.

use crate::correlate::{Correlator, CorrelatorConfig};
use crate::detector::{Context, Detector, Point};
use crate::detectors::share::SharePrior;
use crate::detectors::window::DetectorConfig;
use crate::detectors::{
    for_signal, is_error_name, metric_name, AnyDetector, DetectorMode, Settings,
};
use crate::hash::{FastMap, FastSet};
use crate::signals::{SignalAggregator, SignalConfig, SignalPoint, SignalStats};
use models::{Anomaly, AnomalyKind, Band, Event, Incident, Signal, SignalKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Engine settings.
#[derive(Debug, Clone, Default)]
pub struct AnalyzerConfig {
    /// Windows and caps.
    pub signals: SignalConfig,
    /// Series detector settings.
    pub detector: DetectorConfig,
    /// Grouping and ranking.
    pub correlator: CorrelatorConfig,
    /// Dynamic baselines (the default) or static threshold rules.
    pub mode: DetectorMode,
    /// Keep up to this many scored points (observed value and band) for
    /// plotting, in [`AnalyzerOutput::trace`]; 0, the default, keeps none.
    /// Points beyond the cap are counted in `trace_dropped`, never held.
    pub trace_limit: usize,
    /// Session grouping and the session detector.
    pub sessions: crate::session::SessionConfig,
}

impl AnalyzerConfig {
    /// The fields of a log record this analysis reads besides its time,
    /// service, host, container, level, message, template and trace id:
    /// a decoder may drop every other (see `ingest`'s `FieldMapping::kept`).
    pub fn fields_read(&self) -> Vec<String> {
        crate::signals::FIELDS_READ
            .iter()
            .map(|k| k.to_string())
            .chain(self.sessions.key_fields.iter().cloned())
            .collect()
    }
}

/// Templates remembered by the new-template detector; past it, no
/// template is news (bounded memory under hostile input).
const MAX_KNOWN_TEMPLATES: usize = 100_000;

/// Event time before which every template is new (nothing to report).
const TEMPLATE_WARMUP_MS: i64 = 3_600_000;

/// Where a limit applies: the container, else the host.
fn limit_place(s: &Signal) -> String {
    s.container
        .clone()
        .or_else(|| s.host.clone())
        .unwrap_or_default()
}

/// What the engine knows beside a point's value, for the detectors that
/// ask ([`Context`]): looked up only when asked.
struct Known<'a> {
    signal: &'a Signal,
    window_ms: i64,
    /// Record counts per (service, window) of the points being scored.
    log_counts: &'a FastMap<(Option<String>, i64), f64>,
    /// Latest limits per (metric, container or host).
    limits: &'a FastMap<(String, String), f64>,
    /// Heap pools per place ([`heap_place`]).
    heaps: &'a FastMap<String, HeapPools>,
    /// The point's value (a usage), for a limit derived from a fill.
    value: f64,
    /// Each kind of share's prior from the peers (see [`Peers`]).
    priors: &'a BTreeMap<SignalKind, BTreeMap<String, SharePrior>>,
}

/// Heap pools kept per place, and places with a heap: more are not read
/// (bounded memory under hostile labels).
const MAX_HEAP_POOLS: usize = 16;
const MAX_HEAP_PLACES: usize = 10_000;

/// What a place's runtime heap holds now, pool by pool (see
/// [`is_heap_used`]): series names in order, and their latest values.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct HeapPools {
    names: Vec<String>,
    values: Vec<f64>,
}

/// Whether `s` is what a garbage-collected heap, or one of its pools,
/// holds: Micrometer's `jvm_memory_used_bytes{area="heap",id="G1 Old
/// Gen"}`, the Prometheus Java client's `jvm_memory_bytes_used{area=
/// "heap"}`. (The Java client's per-pool `jvm_memory_pool_bytes_used`
/// names no area, and its pools mix heap and native memory: not read.)
fn is_heap_used(s: &Signal) -> bool {
    s.kind == SignalKind::MetricSeries
        && metric_name(&s.name).contains("used")
        && series_label(&s.name, "area") == Some("heap")
}

/// Where a runtime's heap series and its container's memory meet: the
/// container (else the host) and, when a `pod` label names one, the pod
/// (cAdvisor's `container` is the name inside the pod, the same for every
/// replica).
fn heap_place(s: &Signal) -> String {
    let place = limit_place(s);
    match series_label(&s.name, "pod") {
        Some(pod) => format!("{place}/{pod}"),
        None => place,
    }
}

/// The value of `label` in a series key such as `up{job="api",pod="x"}`
/// (as written, escapes kept).
fn series_label<'k>(key: &'k str, label: &str) -> Option<&'k str> {
    let open = key.find('{')?;
    let mut rest = &key[open + 1..];
    loop {
        let eq = rest.find("=\"")?;
        let name = rest[..eq].trim_start_matches(',');
        let value = &rest[eq + 2..];
        // The value ends at the first quote not escaped.
        let mut end = None;
        let mut escaped = false;
        for (i, c) in value.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let end = end?;
        if name == label {
            return Some(&value[..end]);
        }
        rest = &value[end + 1..];
    }
}

/// The key, in the limits map, of a place's memory fill: its latest
/// memory use as a share of its limit (see [`is_memory_fill`]).
const MEMORY_FILL: &str = "<memory fill>";

/// Whether `s` is a memory use as a share of its limit (cAdvisor-derived
/// `container_memory_usage_ratio` and the like), as `is_cpu_fill` is for
/// CPU.
fn is_memory_fill(s: &Signal) -> bool {
    crate::correlate::is_fill_of(s, "memory")
}

impl Context for Known<'_> {
    fn share_prior(&self) -> Option<SharePrior> {
        self.priors
            .get(&self.signal.kind)?
            .get(&self.signal.name)
            .copied()
    }

    fn records(&self) -> Option<f64> {
        self.log_counts
            .get(&(self.signal.service.clone(), self.window_ms))
            .copied()
    }

    fn limit(&self, metric: &str) -> Option<f64> {
        let place = limit_place(self.signal);
        if let Some(&l) = self.limits.get(&(metric.to_string(), place.clone())) {
            return Some(l);
        }
        // No limit series, but a fill of the limit at the same place: the
        // limit is the usage over its share. The fill may count more than
        // this gauge does (usage with cache against a working set), which
        // makes the derived limit lower, never higher: a climb is called
        // running out sooner, not later.
        if metric == crate::detectors::threshold::MEMORY_LIMIT {
            let fill = self
                .limits
                .get(&(MEMORY_FILL.to_string(), place))
                .copied()?;
            return (fill > 0.0 && self.value.is_finite() && self.value > 0.0)
                .then(|| self.value / fill);
        }
        None
    }

    fn heap_pools(&self) -> Option<&[f64]> {
        self.heaps
            .get(&heap_place(self.signal))
            .map(|h| h.values.as_slice())
    }
}

/// What the engine produced since the caller last drained it.
#[derive(Debug, Default)]
pub struct AnalyzerOutput {
    /// Anomalies, in event-time order.
    pub anomalies: Vec<Anomaly>,
    /// Incidents that resolved.
    pub incidents: Vec<Incident>,
    /// Scored points, when `trace_limit` asks for them.
    pub trace: Vec<TracePoint>,
    /// Points not traced because the cap was reached.
    pub trace_dropped: u64,
}

/// One scored window of one signal: what a plot of the signal against its
/// baseline band draws.
#[derive(Debug, Clone, PartialEq)]
pub struct TracePoint {
    /// The signal (shared by its points).
    pub signal: Arc<Signal>,
    /// Window time.
    pub timestamp: models::Timestamp,
    /// Value in the window.
    pub observed: f64,
    /// The baseline band at that time (expected +/- 3 spreads).
    pub band: Band,
    /// Anomaly score in [0, 1].
    pub score: f64,
    /// Whether the detector was in alert.
    pub alert: bool,
}

/// A borrowed view of an [`Analyzer`]'s state, to serialise.
#[derive(Serialize)]
pub struct AnalyzerState<'a>(StateRef<'a>);

#[derive(Serialize)]
struct StateRef<'a> {
    agg: &'a SignalAggregator,
    detectors: Vec<(&'a Signal, &'a (AnyDetector, bool))>,
    correlator: &'a Correlator,
    services: Vec<&'a String>,
    limits: Vec<(&'a (String, String), &'a f64)>,
    heaps: Vec<(&'a String, &'a HeapPools)>,
    known_templates: Vec<&'a String>,
    counting: Vec<&'a String>,
    first_ts: Option<models::Timestamp>,
    sessions: &'a crate::session::SessionDetector,
    traces: &'a crate::traces::TraceTracker,
    mix: &'a crate::mix::MixTracker,
}

/// An [`Analyzer`]'s state read back, for [`Analyzer::restore`].
#[derive(Deserialize)]
pub struct AnalyzerStateOwned(StateOwned);

#[derive(Deserialize)]
struct StateOwned {
    agg: SignalAggregator,
    detectors: Vec<(Signal, (AnyDetector, bool))>,
    correlator: Correlator,
    services: Vec<String>,
    limits: Vec<((String, String), f64)>,
    #[serde(default)]
    heaps: Vec<(String, HeapPools)>,
    known_templates: Vec<String>,
    counting: Vec<String>,
    first_ts: Option<models::Timestamp>,
    sessions: crate::session::SessionDetector,
    traces: crate::traces::TraceTracker,
    #[serde(default)]
    mix: crate::mix::MixTracker,
}

/// The engine. See the module docs.
pub struct Analyzer {
    cfg: AnalyzerConfig,
    agg: SignalAggregator,
    /// Each judged signal's detector, and whether it was in alert.
    detectors: FastMap<Signal, (AnyDetector, bool)>,
    correlator: Correlator,
    points: Vec<SignalPoint>,
    /// Services seen in logs, for learning calls from messages.
    services: FastSet<String>,
    /// Latest value of limit series (by metric name and container or host),
    /// for static ratio rules.
    limits: FastMap<(String, String), f64>,
    /// What each place's runtime heap holds, pool by pool: what a
    /// container's memory is judged beside.
    heaps: FastMap<String, HeapPools>,
    /// Which detector each signal gets, with the settings they share.
    settings: Settings,
    /// Template ids seen so far (for the new-template detector), capped.
    known_templates: FastSet<String>,
    /// New templates still counted as evidence (recent ones, capped).
    counting: FastSet<String>,
    /// First event time: new templates are news only after a warm-up.
    first_ts: Option<models::Timestamp>,
    sessions: crate::session::SessionDetector,
    /// Calls and error origins learned from trace ids in logs.
    traces: crate::traces::TraceTracker,
    /// Each service's mix of templates against its history.
    mix: crate::mix::MixTracker,
    /// Scratch: record counts per (service, window) of the points being
    /// scored (derived from them each time, never checkpointed).
    log_counts: FastMap<(Option<String>, i64), f64>,
    /// What each share detector has learned, by kind of share: the peers
    /// its prior is fitted from (derived from the detectors, so not
    /// checkpointed: [`Analyzer::restore`] rebuilds it).
    peers: Peers,
    /// One shared copy of each signal for the plotted points (not state).
    /// A point is kept per signal and window for the store; with its own
    /// copy of the signal's five strings, a day of nezha-tt-dev's 707k
    /// points took about 300 MB, and the 5M-point cap could take 2 GB.
    traced: FastSet<Arc<Signal>>,
}

/// What each service's detector of one kind of share learned.
type ByService = BTreeMap<Option<String>, (f64, f64)>;

/// The share detectors' learned (flagged, all) records, by kind of share
/// (signal kind and name: the error share, the 5xx share, one exception
/// class) and service: each kind's peers, whose fitted prior
/// ([`SharePrior::of_peers`]) a service's share is judged against while
/// its own history is short. A service that starts writing a quarter
/// errors in its first minute is then judged against what services of
/// this estate usually write, not against "no opinion" (with which
/// nothing is surprising until it has written hundreds of clean lines,
/// and the first half hour of a run, or of a new deployment, was blind).
#[derive(Default)]
struct Peers {
    learned: BTreeMap<SignalKind, BTreeMap<String, ByService>>,
    /// The priors as they stood when the current window's points began:
    /// fitted once per window, from the windows before it, so the same
    /// points give the same priors however they were batched.
    priors: BTreeMap<SignalKind, BTreeMap<String, SharePrior>>,
    /// The window the priors were fitted for.
    fitted_for: Option<i64>,
}

impl Peers {
    fn of(detectors: &FastMap<Signal, (AnyDetector, bool)>) -> Peers {
        let mut p = Peers::default();
        for (s, (d, _)) in detectors {
            p.update(s, d);
        }
        p
    }

    fn update(&mut self, s: &Signal, d: &AnyDetector) {
        let Some(l) = d.learned_share() else {
            return;
        };
        // Looked up before inserting: this runs for every share point,
        // and the keys are allocated only the first time.
        let names = self.learned.entry(s.kind).or_default();
        if !names.contains_key(&s.name) {
            names.insert(s.name.clone(), BTreeMap::new());
        }
        let services = names.get_mut(&s.name).expect("inserted");
        match services.get_mut(&s.service) {
            Some(v) => *v = l,
            None => {
                services.insert(s.service.clone(), l);
            }
        }
    }

    /// Fit the priors for the window starting at `window` (once).
    fn fit(&mut self, window: i64) {
        if self.fitted_for == Some(window) {
            return;
        }
        self.fitted_for = Some(window);
        self.priors.clear();
        for (kind, names) in &self.learned {
            for (name, services) in names {
                let peers: Vec<(f64, f64)> = services.values().copied().collect();
                if let Some(p) = SharePrior::of_peers(&peers) {
                    self.priors
                        .entry(*kind)
                        .or_default()
                        .insert(name.clone(), p);
                }
            }
        }
    }
}

/// Signals that cannot be negative: counts, counter rates, latencies, and
/// gauges whose names say they measure sizes, counts or durations.
fn non_negative(s: &Signal) -> bool {
    match s.kind {
        SignalKind::MetricSeries => {
            let n = metric_name(&s.name);
            [
                "_bytes",
                "_seconds",
                "_total",
                "_count",
                "_ratio",
                "_fds",
                "threads",
                "millicores",
                "_rate",
                "duration",
                "latency",
            ]
            .iter()
            .any(|w| n.contains(w))
        }
        _ => true,
    }
}

/// What an anomaly of `s` is, from what the signal measures, its direction
/// and whether its detector saw a resource running out (`exhausting`, see
/// [`Detector::exhausting`]): a resource gauge that rose is a leak only
/// when it climbs toward its limit; a step to a new level is a level shift.
fn kind_of(s: &Signal, up: bool, exhausting: bool) -> AnomalyKind {
    let resource = [
        "memory",
        "fds",
        "thread",
        "goroutine",
        "filesystem",
        "disk",
        "lag",
        "dangling",
        "exited",
    ];
    match s.kind {
        SignalKind::ErrorRate
        | SignalKind::StatusClass
        | SignalKind::WarnRate
        | SignalKind::ExceptionCount => AnomalyKind::ErrorBurst,
        SignalKind::LatencyQuantile => AnomalyKind::LatencySpike,
        SignalKind::CounterRate if is_error_name(&s.name) => AnomalyKind::ErrorBurst,
        SignalKind::MetricSeries
            if up && exhausting && resource.iter().any(|w| s.name.contains(w)) =>
        {
            AnomalyKind::ResourceLeak
        }
        SignalKind::MetricSeries if s.name.contains("filesystem_avail") => {
            AnomalyKind::ResourceLeak
        }
        _ => AnomalyKind::LevelShift,
    }
}

impl Analyzer {
    /// A new engine.
    pub fn new(cfg: AnalyzerConfig) -> Self {
        // Callers check `sessions.id_pattern` first (the CLI names a bad
        // one); should one slip through, sessions go by fields alone.
        let sessions =
            crate::session::SessionDetector::new(cfg.sessions.clone()).unwrap_or_else(|e| {
                tracing::error!("session id pattern ignored: {e}");
                crate::session::SessionDetector::new(crate::session::SessionConfig {
                    id_pattern: String::new(),
                    ..cfg.sessions.clone()
                })
                .expect("no pattern, nothing to fail")
            });
        Analyzer {
            agg: SignalAggregator::new(cfg.signals.clone()),
            correlator: Correlator::new(cfg.correlator.clone()),
            settings: Settings::new(cfg.mode, &cfg.detector),
            cfg,
            detectors: FastMap::default(),
            points: Vec::new(),
            limits: FastMap::default(),
            heaps: FastMap::default(),
            services: Default::default(),
            known_templates: Default::default(),
            counting: Default::default(),
            first_ts: None,
            sessions,
            traces: Default::default(),
            mix: Default::default(),
            log_counts: FastMap::default(),
            peers: Peers::default(),
            traced: FastSet::default(),
        }
    }

    /// The analysis state (windows, counters, every signal's baseline and
    /// detector, open incidents, learned placement and calls) as a value
    /// that serialises: what a streaming consumer checkpoints to its
    /// changelog so another instance can carry on where this one stopped.
    pub fn snapshot(&self) -> AnalyzerState<'_> {
        let mut detectors: Vec<(&Signal, &(AnyDetector, bool))> = self.detectors.iter().collect();
        detectors.sort_by(|a, b| a.0.cmp(b.0));
        let mut limits: Vec<(&(String, String), &f64)> = self.limits.iter().collect();
        limits.sort_by(|a, b| a.0.cmp(b.0));
        let mut heaps: Vec<(&String, &HeapPools)> = self.heaps.iter().collect();
        heaps.sort_by(|a, b| a.0.cmp(b.0));
        let mut services: Vec<&String> = self.services.iter().collect();
        services.sort();
        let mut known: Vec<&String> = self.known_templates.iter().collect();
        known.sort();
        let mut counting: Vec<&String> = self.counting.iter().collect();
        counting.sort();
        AnalyzerState(StateRef {
            agg: &self.agg,
            detectors,
            correlator: &self.correlator,
            services,
            limits,
            heaps,
            known_templates: known,
            counting,
            first_ts: self.first_ts,
            sessions: &self.sessions,
            traces: &self.traces,
            mix: &self.mix,
        })
    }

    /// An engine with `cfg` carrying on from a [`Analyzer::snapshot`].
    /// `cfg` should be the configuration the snapshot was taken with: the
    /// state holds learned values, not settings, apart from each signal's
    /// detector, which keeps the settings it was created with.
    pub fn restore(cfg: AnalyzerConfig, state: AnalyzerStateOwned) -> Self {
        let s = state.0;
        let mut a = Analyzer {
            agg: s.agg,
            correlator: s.correlator,
            settings: Settings::new(cfg.mode, &cfg.detector),
            cfg,
            detectors: s.detectors.into_iter().collect(),
            points: Vec::new(),
            limits: s.limits.into_iter().collect(),
            heaps: s.heaps.into_iter().collect(),
            services: s.services.into_iter().collect(),
            known_templates: s.known_templates.into_iter().collect(),
            counting: s.counting.into_iter().collect(),
            first_ts: s.first_ts,
            sessions: {
                let mut d = s.sessions;
                d.reattach();
                d
            },
            traces: s.traces,
            mix: s.mix,
            log_counts: FastMap::default(),
            peers: Peers::default(),
            traced: FastSet::default(),
        };
        a.peers = Peers::of(&a.detectors);
        a
    }

    /// Incidents still open, as they stand now (ranked as if they closed
    /// now). The streaming service publishes them as they change.
    pub fn open_incidents(&self) -> Vec<Incident> {
        self.correlator.open_incidents()
    }

    /// Signal counters.
    pub fn signal_stats(&self) -> SignalStats {
        self.agg.stats()
    }

    /// What the session caps turned away (see
    /// [`crate::session::SessionDetector::over_cap`]).
    pub fn sessions_over_cap(&self) -> u64 {
        self.sessions.over_cap()
    }

    /// Fold in one event.
    pub fn push(&mut self, event: &Event, out: &mut AnalyzerOutput) {
        match event {
            Event::Change(c) => self.correlator.observe_change(c),
            Event::Log(r) => {
                if let (Some(svc), Some(host)) = (&r.service, &r.host) {
                    self.correlator.learn_placement(svc, host);
                }
                if let (Some(svc), Some(c)) = (&r.service, &r.container) {
                    self.correlator.learn_instance(svc, c, r.timestamp);
                }
                self.learn_calls(r);
                let t = self.traces.observe(r);
                if let Some((caller, callee)) = &t.edge {
                    self.correlator.learn_edge(caller, callee);
                }
                if let (true, Some(svc)) = (t.origin, &r.service) {
                    self.correlator.observe_origin(svc, r.timestamp);
                }
                self.watch_templates(r, out);
                if let (Some(svc), Some(t)) = (&r.service, &r.template_id) {
                    let before = out.anomalies.len();
                    self.mix.observe(svc, t, r.timestamp, &mut out.anomalies);
                    for a in out.anomalies[before..].iter().cloned() {
                        out.incidents.extend(self.correlator.observe(a));
                    }
                }
                let before = out.anomalies.len();
                self.sessions.observe(r, &mut out.anomalies);
                self.sessions_as_evidence(before, out);
            }
            Event::Metric(m) => {
                if let (Some(svc), Some(host)) = (m.key.label("service"), m.key.label("host")) {
                    self.correlator.learn_placement(svc, host);
                }
                // A pod names the instance; without one, a container (in
                // cAdvisor's series `container` is the name inside the pod,
                // the same for every replica).
                let instance = m.key.label("pod").or_else(|| m.key.label("container"));
                if let (Some(svc), Some(i)) = (m.key.label("service"), instance) {
                    self.correlator.learn_instance(svc, i, m.timestamp);
                }
            }
        }
        self.points.clear();
        self.agg.push(event, &mut self.points);
        self.score_points(out);
    }

    /// Learn the call graph from the data: a warning or error of service A
    /// that names another known service B ("upstream checkout returned
    /// 502", "payment call failed: upstream payments timed out",
    /// `event=database_timeout`: `_` separates words) means A calls B. Only words that are service names seen in the data count,
    /// and the known set is capped, so hostile text cannot grow it.
    fn learn_calls(&mut self, r: &models::LogRecord) {
        let Some(svc) = &r.service else { return };
        if !self.services.contains(svc) && self.services.len() < 1000 {
            self.services.insert(svc.clone());
        }
        if r.level.is_none_or(|l| l < models::Level::Warn) {
            return;
        }
        for word in r
            .message
            .split(|c: char| !(c.is_alphanumeric() || c == '-'))
        {
            if word != svc && self.services.contains(word) {
                self.correlator.learn_edge(svc, word);
            }
        }
    }

    /// The new-template detector: an error-level record whose template was
    /// never seen before, after a warm-up in which every template is new.
    /// Reported as an anomaly and handed to the correlator as evidence
    /// (a new error message at the service that is failing, with its first
    /// text); it does not open an incident on its own, since every deploy
    /// brings new messages.
    fn watch_templates(&mut self, r: &models::LogRecord, out: &mut AnalyzerOutput) {
        let Some(id) = r.template_id.as_deref() else {
            return;
        };
        let first = *self.first_ts.get_or_insert(r.timestamp);
        if self.known_templates.contains(id) {
            if self.counting.contains(id) {
                self.correlator.count_template(id);
            }
            return;
        }
        if self.known_templates.len() >= MAX_KNOWN_TEMPLATES {
            return;
        }
        self.known_templates.insert(id.to_string());
        let warm = r.timestamp.as_millis() - first.as_millis() >= TEMPLATE_WARMUP_MS;
        if !warm || !r.level.is_some_and(|l| l.is_error()) {
            return;
        }
        let text: String = r.message.chars().take(200).collect();
        let a = Anomaly {
            signal: Signal {
                kind: SignalKind::TemplateCount,
                name: id.to_string(),
                service: r.service.clone(),
                host: r.host.clone(),
                container: r.container.clone(),
            },
            timestamp: r.timestamp,
            observed: 1.0,
            expected: Band {
                lower: 0.0,
                expected: 0.0,
                upper: 0.0,
            },
            score: 1.0,
            kind: AnomalyKind::NewTemplate,
            detector: "new_template".into(),
            detail: format!("first error of this kind: {text}"),
        };
        out.anomalies.push(a.clone());
        if self.counting.len() >= 256 {
            self.counting.clear();
        }
        self.counting.insert(id.to_string());
        self.correlator.observe_template(a, &r.message);
    }

    /// Anomalous sessions join the incident open at their service as
    /// evidence (or wait a few minutes for one), as new templates do: a
    /// session is judged only when it closes, a minute after its last
    /// record, so it comes after the onset it belongs to.
    ///
    /// A broken invariant (a statement gone missing from requests, see
    /// [`crate::invariant`]) is the service's own evidence, as a stopped
    /// statement is: it may open an incident.
    fn sessions_as_evidence(&mut self, before: usize, out: &mut AnalyzerOutput) {
        for i in before..out.anomalies.len() {
            let a = out.anomalies[i].clone();
            if a.detector == crate::invariant::BROKEN || a.detector == crate::invariant::BROKE_AFTER
            {
                out.incidents.extend(self.correlator.observe(a));
            } else {
                let detail = a.detail.clone();
                self.correlator.observe_template(a, &detail);
            }
        }
    }

    /// End of input: close every window and return open incidents as they stand.
    pub fn finish(&mut self, out: &mut AnalyzerOutput) {
        let before = out.anomalies.len();
        self.sessions.finish(&mut out.anomalies);
        self.sessions_as_evidence(before, out);
        self.points.clear();
        self.agg.finish(&mut self.points);
        self.score_points(out);
        out.incidents.extend(self.correlator.finish());
    }

    fn score_points(&mut self, out: &mut AnalyzerOutput) {
        let points = std::mem::take(&mut self.points);
        // Each service's record count per window: the denominator of its
        // error, warning and 5xx shares (a window's points come together).
        self.log_counts.clear();
        for p in &points {
            if p.signal.kind == SignalKind::LogRate {
                self.log_counts
                    .insert((p.signal.service.clone(), p.timestamp.as_millis()), p.value);
            }
            // What a runtime's heap holds, before the container memory of
            // the same scrape is judged beside it (the order of the series
            // in a window is the exporter's).
            if p.value.is_finite() && p.value >= 0.0 && is_heap_used(&p.signal) {
                let place = heap_place(&p.signal);
                if self.heaps.len() < MAX_HEAP_PLACES || self.heaps.contains_key(&place) {
                    let h = self.heaps.entry(place).or_default();
                    match h.names.binary_search(&p.signal.name) {
                        Ok(i) => h.values[i] = p.value,
                        Err(i) if h.names.len() < MAX_HEAP_POOLS => {
                            h.names.insert(i, p.signal.name.clone());
                            h.values.insert(i, p.value);
                        }
                        Err(_) => {}
                    }
                }
            }
        }
        for p in &points {
            if p.value.is_finite() && crate::correlate::is_cpu_fill(&p.signal) {
                self.correlator
                    .observe_cpu_fill(&limit_place(&p.signal), p.value);
            }
            if self.settings.keeps_limit(&p.signal) {
                let name = metric_name(&p.signal.name);
                let place = limit_place(&p.signal);
                self.limits.insert((name.to_string(), place), p.value);
            } else if p.value.is_finite() && p.value > 0.0 && is_memory_fill(&p.signal) {
                let place = limit_place(&p.signal);
                self.limits
                    .insert((MEMORY_FILL.to_string(), place), p.value);
            }
            if !self.detectors.contains_key(&p.signal) {
                match for_signal(&p.signal, &self.settings) {
                    Some(d) => {
                        self.detectors.insert(p.signal.clone(), (d, false));
                    }
                    None => continue,
                }
            }
            self.peers.fit(p.timestamp.as_millis());
            let (det, was_alert) = self.detectors.get_mut(&p.signal).expect("inserted");
            let known = Known {
                signal: &p.signal,
                window_ms: p.timestamp.as_millis(),
                log_counts: &self.log_counts,
                limits: &self.limits,
                heaps: &self.heaps,
                value: p.value,
                priors: &self.peers.priors,
            };
            let exhausting_before = det.exhausting();
            let s = det.observe(&Point {
                t: p.timestamp.as_millis() as f64 / 1000.0,
                value: p.value,
                context: &known,
            });
            self.peers.update(&p.signal, det);
            // An alert opens an anomaly; so does an alert that was a step
            // to a new level when it opened and has since shown a climb
            // toward exhaustion: the evidence changed from "moved" to
            // "running out", and only the second is a leak.
            let opened = s.alert && (!*was_alert || (det.exhausting() && !exhausting_before));
            *was_alert = s.alert;
            let band = || {
                let spread = if s.spread.is_finite() { s.spread } else { 0.0 };
                let expected = if s.expected.is_finite() {
                    s.expected
                } else {
                    0.0
                };
                // Counts, rates of counters and latencies cannot go below
                // zero, and neither can what is expected of them.
                let floor = if non_negative(&p.signal) {
                    0.0
                } else {
                    f64::NEG_INFINITY
                };
                let expected = expected.max(floor);
                Band {
                    lower: (expected - 3.0 * spread).max(floor),
                    expected,
                    upper: expected + 3.0 * spread,
                }
            };
            if self.cfg.trace_limit > 0 && p.value.is_finite() {
                if out.trace.len() < self.cfg.trace_limit {
                    // Found by the signal itself (an `Arc` borrows as
                    // what it holds): one copy per signal, not two.
                    let signal = match self.traced.get(&p.signal) {
                        Some(s) => s.clone(),
                        None => {
                            let s = Arc::new(p.signal.clone());
                            self.traced.insert(s.clone());
                            s
                        }
                    };
                    out.trace.push(TracePoint {
                        signal,
                        timestamp: p.timestamp,
                        observed: p.value,
                        band: band(),
                        score: if s.score.is_finite() { s.score } else { 0.0 },
                        alert: s.alert,
                    });
                } else {
                    out.trace_dropped += 1;
                }
            }
            out.incidents.extend(self.correlator.advance(p.timestamp));
            // A detector is never in alert on a point with nothing to judge
            // (a share over no records), so a gap in the logs does not keep
            // an incident open.
            // An onset is folded in below; touching its signal's old
            // incident first would make it look as if the signal had never
            // left alert there (see `correlate::new_episode`).
            if s.alert && !opened {
                self.correlator.touch(&p.signal, p.timestamp);
            }
            if opened {
                let expected = band();
                let mut a = Anomaly {
                    signal: p.signal.clone(),
                    timestamp: p.timestamp,
                    observed: p.value,
                    expected,
                    score: s.score.max(0.5),
                    kind: kind_of(&p.signal, p.value > expected.expected, det.exhausting()),
                    detector: det.name().into(),
                    detail: format!("{:.4} observed, {:.4} expected", p.value, expected.expected),
                };
                out.incidents.extend(self.correlator.observe_onset(&mut a));
                out.anomalies.push(a);
            }
            // A rise held while its service started is judged on the
            // values that follow (alerting or not: the baseline learns a
            // new level within minutes).
            if self.correlator.holding() {
                out.incidents.extend(
                    self.correlator
                        .observe_held(&p.signal, p.timestamp, p.value),
                );
            }
        }
        self.points = points;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::{Evidence, Level, LogRecord, Timestamp};

    fn log(ms: i64, service: &str, error: bool) -> Event {
        let mut r = LogRecord::new(Timestamp::from_millis(ms), "x");
        r.service = Some(service.into());
        r.level = Some(if error { Level::Error } else { Level::Info });
        Event::Log(r)
    }

    #[test]
    fn a_resource_that_rose_is_a_leak_only_when_it_is_running_out() {
        let memory = Signal {
            kind: SignalKind::MetricSeries,
            name: "container_memory_working_set_bytes{pod=\"api-1\"}".into(),
            service: Some("api".into()),
            host: None,
            container: Some("api-1".into()),
        };
        assert_eq!(kind_of(&memory, true, false), AnomalyKind::LevelShift);
        assert_eq!(kind_of(&memory, true, true), AnomalyKind::ResourceLeak);
        assert_eq!(kind_of(&memory, false, false), AnomalyKind::LevelShift);
    }

    /// A container's working set that steps up now and then, far below
    /// its limit, where the data says the limit only as a fill
    /// (`container_memory_usage_ratio`, as Nezha's and many dashboards'
    /// exporters write it) and not as `container_spec_memory_limit_bytes`:
    /// with the fill the climb is days from the limit and nothing is a
    /// leak (no restart); without it the same climb is one.
    #[test]
    fn a_memory_fill_ratio_tells_a_leak_far_from_its_limit() {
        let run = |with_fill: bool| {
            let mut a = Analyzer::new(AnalyzerConfig::default());
            let mut out = AnalyzerOutput::default();
            let labels = [("pod", "news-1"), ("service", "news"), ("node", "n1")];
            let limit = 2e9;
            for m in 0..(8 * 60) {
                // 1.5 MB, 12 KB more every minute after three hours
                // (50% an hour at first: a leak's pace).
                let x = 1.5e6 + (m.max(180) - 180) as f64 * 12_288.0;
                let t = Timestamp::from_secs(1_767_600_000 + m * 60);
                let mut push = |name: &str, value: f64| {
                    a.push(
                        &Event::Metric(models::MetricSample {
                            key: models::SeriesKey::new(name, labels),
                            timestamp: t,
                            value,
                            kind: models::MetricKind::Gauge,
                        }),
                        &mut out,
                    );
                };
                push("container_memory_working_set_bytes", x);
                if with_fill {
                    push("container_memory_usage_ratio", x / limit);
                }
            }
            a.finish(&mut out);
            out.anomalies
                .iter()
                .filter(|x| x.kind == AnomalyKind::ResourceLeak)
                .count()
        };
        assert!(run(false) > 0, "no limit known: the climb is a leak");
        assert_eq!(run(true), 0, "at 0.1% of its limit it has years");
    }

    /// A container running a JVM that just started: its working set
    /// climbs for an hour as the heap fills pages it never touched before
    /// (two pools, as Micrometer reports them: a young generation emptied
    /// every few scrapes, an old generation filling, then its sawtooth),
    /// to a plateau below its limit. Beside the heap that is no leak;
    /// without the heap series the same working set is one. A native leak
    /// beside the heap is one either way.
    #[test]
    fn a_working_set_is_judged_beside_its_jvms_heap() {
        let run = |with_heap: bool, native_leak: bool| {
            let mut a = Analyzer::new(AnalyzerConfig::default());
            let mut out = AnalyzerOutput::default();
            let labels = [
                ("pod", "checkout-7d9f8b8c9-x2x4k"),
                ("container", "server"),
                ("service", "checkout"),
            ];
            let eden = 0.28e9;
            let mut touched_old: f64 = 0.0;
            for i in 0..(4 * 240) {
                let young = eden * (i % 7) as f64 / 7.0;
                let old = if i < 240 {
                    0.07e9 + 1.05e9 * i as f64 / 240.0
                } else {
                    0.5e9 + 0.6e9 * ((i - 240) % 200) as f64 / 200.0
                };
                touched_old = touched_old.max(old);
                let leak = if native_leak && i > 480 {
                    (i - 480) as f64 * 0.8e9 / 240.0
                } else {
                    0.0
                };
                let wobble = 1.0 + 0.002 * ((i as f64 * 12.9898).sin() * 43758.5453).fract();
                let ws = (0.3e9 + eden + touched_old + leak) * wobble;
                let t = Timestamp::from_millis(1_767_600_000_000 + i * 15_000);
                let mut push = |name: &str, extra: &[(&str, &str)], value: f64| {
                    let mut l: Vec<(&str, &str)> = labels.to_vec();
                    l.extend(extra);
                    a.push(
                        &Event::Metric(models::MetricSample {
                            key: models::SeriesKey::new(name, l),
                            timestamp: t,
                            value,
                            kind: models::MetricKind::Gauge,
                        }),
                        &mut out,
                    );
                };
                push("container_memory_working_set_bytes", &[], ws);
                push("container_spec_memory_limit_bytes", &[], 2e9);
                if with_heap {
                    for (id, used) in [("G1 Eden Space", young), ("G1 Old Gen", old)] {
                        push(
                            "jvm_memory_used_bytes",
                            &[("area", "heap"), ("id", id)],
                            used,
                        );
                    }
                }
            }
            a.finish(&mut out);
            out.anomalies
                .iter()
                .filter(|x| {
                    x.kind == AnomalyKind::ResourceLeak
                        && x.signal
                            .name
                            .starts_with("container_memory_working_set_bytes")
                })
                .count()
        };
        assert!(
            run(false, false) > 0,
            "no heap known: the start-up is a climb"
        );
        assert_eq!(run(true, false), 0, "beside its heap it is none");
        assert!(run(true, true) > 0, "a native leak beside its heap is one");
    }

    /// A series key's labels, read back from its text.
    #[test]
    fn a_label_is_read_from_a_series_key() {
        let key = r#"jvm_memory_used_bytes{area="heap",id="G1 \"Old\" Gen",pod="p-1"}"#;
        assert_eq!(series_label(key, "area"), Some("heap"));
        assert_eq!(series_label(key, "id"), Some(r#"G1 \"Old\" Gen"#));
        assert_eq!(series_label(key, "pod"), Some("p-1"));
        assert_eq!(series_label(key, "od"), None);
        assert_eq!(series_label("up", "pod"), None);
    }

    /// A service that starts failing in its first minutes (a new
    /// deployment, or the start of a run) has no history of its own to be
    /// judged against; its peers' error shares stand in for it.
    #[test]
    fn a_new_service_that_fails_from_the_start_is_judged_against_its_peers() {
        let mut a = Analyzer::new(AnalyzerConfig::default());
        let mut out = AnalyzerOutput::default();
        let peers = ["a", "b", "c", "d", "e", "f"];
        for s in 0..2400 {
            for (i, p) in peers.iter().enumerate() {
                // About one error in 300 records.
                a.push(
                    &log(s * 1000 + i as i64, p, (s + i as i64 * 50) % 300 == 0),
                    &mut out,
                );
            }
            // The new service: a record every two seconds from minute 30,
            // a quarter of them errors from its fourth record on.
            if s >= 1800 && s % 2 == 0 {
                let n = (s - 1800) / 2;
                a.push(&log(s * 1000 + 10, "new", n >= 3 && n % 4 == 0), &mut out);
            }
        }
        a.finish(&mut out);
        let first = out
            .anomalies
            .iter()
            .find(|x| {
                x.kind == AnomalyKind::ErrorBurst && x.signal.service.as_deref() == Some("new")
            })
            .map(|x| x.timestamp.as_secs() - 1800);
        assert!(
            first.is_some_and(|t| t <= 120),
            "seen within its first two minutes, at {first:?} s"
        );
        assert!(
            out.anomalies
                .iter()
                .all(|x| x.signal.service.as_deref() == Some("new")),
            "{:?}",
            out.anomalies
        );
    }

    /// A service that has written a third errors from its first record
    /// (chronically, as some do) differs from its peers, but that is its
    /// normal: it may be an alert at first (a deployment that fails a
    /// third of its requests is news), but not for the rest of the day,
    /// and it must not hold one incident open for ever.
    #[test]
    fn a_service_that_always_fails_a_third_becomes_its_own_normal() {
        let mut a = Analyzer::new(AnalyzerConfig::default());
        let mut out = AnalyzerOutput::default();
        let peers = ["a", "b", "c", "d", "e", "f"];
        for s in 0..(6 * 3600) {
            for (i, p) in peers.iter().enumerate() {
                a.push(
                    &log(s * 1000 + i as i64, p, (s + i as i64 * 50) % 300 == 0),
                    &mut out,
                );
            }
            // From minute 30, as a new deployment would.
            if s >= 1800 && s % 2 == 0 {
                a.push(&log(s * 1000 + 10, "chronic", s % 3 == 0), &mut out);
            }
        }
        a.finish(&mut out);
        let open: Vec<_> = out
            .incidents
            .iter()
            .filter(|i| i.status != models::IncidentStatus::Resolved)
            .collect();
        assert!(open.is_empty(), "{open:?}");
        // Judged against alike peers, its prior is worth as much as a
        // peer's whole history (about 3,000 records here, 100 minutes of
        // its own): the alert ends once it has outlasted that.
        let last_end = out.incidents.iter().filter_map(|i| i.end).max();
        assert!(
            last_end.is_none_or(|t| t.as_secs() < 3 * 3600),
            "resolved within three hours: {last_end:?}, {} anomalies",
            out.anomalies.len()
        );
        assert!(out.anomalies.len() <= 2, "{:?}", out.anomalies);
    }

    #[test]
    fn an_error_burst_becomes_one_incident_that_resolves() {
        let mut a = Analyzer::new(AnalyzerConfig::default());
        let mut out = AnalyzerOutput::default();
        // Two hours of calm traffic, ten minutes of errors, then calm again.
        for s in 0..(3 * 3600) {
            let burst = (7200..7800).contains(&s);
            a.push(&log(s * 1000, "api", burst && s % 2 == 0), &mut out);
        }
        a.finish(&mut out);
        let bursts: Vec<_> = out
            .anomalies
            .iter()
            .filter(|x| x.kind == AnomalyKind::ErrorBurst)
            .collect();
        assert!(!bursts.is_empty());
        let first = bursts[0].timestamp.as_secs();
        assert!(
            (7200..7260).contains(&first),
            "detected within a minute, at {first}"
        );
        assert_eq!(out.incidents.len(), 1, "{:?}", out.incidents);
        let inc = &out.incidents[0];
        assert_eq!(inc.status, models::IncidentStatus::Resolved);
        assert!(
            inc.end.unwrap().as_secs() >= 7800,
            "open while the errors last"
        );
        assert_eq!(inc.root_causes[0].target.service.as_deref(), Some("api"));
    }

    /// A session (here a trace id over three records) through a template
    /// no other session took, during an error burst at its service, is
    /// shown as evidence on the incident's cause there.
    #[test]
    fn an_anomalous_session_is_evidence_on_its_incident() {
        let mut a = Analyzer::new(AnalyzerConfig::default());
        let mut out = AnalyzerOutput::default();
        for s in 0..(3 * 3600) {
            let burst = (7200..7800).contains(&s);
            let mut r = LogRecord::new(Timestamp::from_millis(s * 1000), "step");
            r.service = Some("api".into());
            r.level = Some(if burst && s % 2 == 0 {
                Level::Error
            } else {
                Level::Info
            });
            r.trace_id = Some(format!("t{}", s / 3));
            let odd = s == 7302 + 1;
            r.template_id = Some(
                if odd {
                    "T_rare"
                } else {
                    ["T_a", "T_b", "T_c"][(s % 3) as usize]
                }
                .into(),
            );
            a.push(&Event::Log(r), &mut out);
        }
        a.finish(&mut out);
        assert!(
            out.anomalies
                .iter()
                .any(|x| x.kind == AnomalyKind::SessionAnomaly),
            "the rare session is flagged"
        );
        let inc = out
            .incidents
            .iter()
            .find(|i| i.start.as_secs() >= 7200 && i.start.as_secs() < 7400)
            .expect("the burst's incident");
        let evidence: Vec<&Evidence> = inc.root_causes.iter().flat_map(|c| &c.evidence).collect();
        assert!(
            evidence.iter().any(|e| matches!(e,
                Evidence::Signal { anomaly } if anomaly.kind == AnomalyKind::SessionAnomaly)),
            "{evidence:?}"
        );
    }

    /// The shape of an exception thrown inside a callee: every request
    /// logs a line at `gateway`, then one at `price`, then one at `route`
    /// (each service also answers other requests, so its log never stops).
    /// For ten minutes `route` throws before its line in most requests:
    /// no service logs an error, `gateway` and `price` log as before, and
    /// `route` still writes its other lines. The incident opens at `route`,
    /// whose statement the requests lost, and nothing opens before.
    #[test]
    fn a_statement_missing_from_requests_opens_an_incident_at_its_service() {
        let mut a = Analyzer::new(AnalyzerConfig::default());
        let mut out = AnalyzerOutput::default();
        let line = |ms: i64, svc: &str, tpl: &str, trace: Option<String>| {
            let mut r = LogRecord::new(Timestamp::from_millis(ms), tpl);
            r.service = Some(svc.into());
            r.level = Some(Level::Info);
            r.template_id = Some(tpl.into());
            r.trace_id = trace;
            Event::Log(r)
        };
        // One request every 3 s for 3 hours.
        for i in 0..3600i64 {
            let ms = i * 3000;
            let broken = (6000..6600).contains(&(ms / 1000)) && i % 4 != 0;
            let trace = Some(format!("req{i}"));
            a.push(&line(ms, "gateway", "T_query", trace.clone()), &mut out);
            a.push(
                &line(ms + 200, "price", "T_priced", trace.clone()),
                &mut out,
            );
            if !broken {
                a.push(&line(ms + 400, "route", "T_found", trace.clone()), &mut out);
            }
            a.push(&line(ms + 1000, "route", "T_health", None), &mut out);
            a.push(&line(ms + 1500, "price", "T_health", None), &mut out);
        }
        a.finish(&mut out);
        let broken: Vec<&Anomaly> = out
            .anomalies
            .iter()
            .filter(|x| x.detector == crate::invariant::BROKEN)
            .collect();
        assert!(!broken.is_empty(), "the missing statement is seen");
        assert!(
            broken
                .iter()
                .all(|x| (6000..6700).contains(&x.timestamp.as_secs())),
            "only while it lasts: {broken:#?}"
        );
        let inc = out
            .incidents
            .iter()
            .find(|i| (6000..6200).contains(&i.start.as_secs()))
            .unwrap_or_else(|| panic!("an incident at the onset: {:#?}", out.incidents));
        assert_eq!(
            inc.root_causes[0].target.service.as_deref(),
            Some("route"),
            "{:#?}",
            inc.root_causes
        );
        assert!(
            out.incidents.iter().all(|i| i.start.as_secs() >= 6000),
            "nothing before the fault: {:#?}",
            out.incidents
        );
    }

    #[test]
    fn calls_named_in_error_messages_join_incidents() {
        let run = |mention: bool| {
            let mut a = Analyzer::new(AnalyzerConfig::default());
            let mut out = AnalyzerOutput::default();
            for s in 0..(3 * 3600) {
                let mut r = LogRecord::new(Timestamp::from_millis(s * 1000), "ok");
                r.service = Some(if s % 2 == 0 { "payments" } else { "gateway" }.into());
                r.level = Some(Level::Info);
                let burst = (7200..7800).contains(&s);
                if burst && s % 2 == 1 {
                    r.level = Some(Level::Error);
                    r.message = if mention {
                        "upstream payments timed out"
                    } else {
                        "request failed"
                    }
                    .into();
                }
                if burst && s % 4 == 0 && s >= 7260 {
                    r.level = Some(Level::Error);
                    r.message = "connection pool exhausted".into();
                }
                a.push(&Event::Log(r), &mut out);
            }
            a.finish(&mut out);
            out.incidents
        };
        assert_eq!(
            run(true).len(),
            1,
            "gateway names payments: one fault, one incident"
        );
        let top = &run(true)[0].root_causes[0];
        assert_eq!(
            top.target.service.as_deref(),
            Some("payments"),
            "the callee is the cause"
        );
        assert_eq!(
            run(false).len(),
            2,
            "without a known call the two stay apart"
        );
    }
}
