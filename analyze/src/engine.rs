//! The analysis engine: events in, anomalies and incidents out.
//!
//! Events (in event-time order, as replay's merge or a Kafka partition
//! delivers them) become signal points ([`crate::signals`]); each signal has
//! its own detector, count-aware for counts (errors, 5xx, warnings) and the
//! robust series detector for metrics and latency; an alert that opens is an
//! [`Anomaly`]; anomalies and change events feed the [`Correlator`], which
//! opens, extends and resolves incidents. While a signal stays in alert its
//! incident stays open, so an incident resolves only once its signals are
//! back inside their bands.

use crate::baseline::{BaselineDetector, BaselineDetectorConfig};
use crate::correlate::{Correlator, CorrelatorConfig};
use crate::detect::{DetectorConfig, LeakDetector, RatioDetector};
use crate::hash::{FastMap, FastSet};
use crate::signals::{SignalAggregator, SignalConfig, SignalPoint, SignalStats};
use models::{Anomaly, AnomalyKind, Band, Event, Incident, Signal, SignalKind};
use serde::{Deserialize, Serialize};
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

/// How signals are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DetectorMode {
    /// Baselines learned per signal (count tests, robust series, slopes).
    #[default]
    Dynamic,
    /// Fixed thresholds held for a duration, as operators write them
    /// ("memory above 80% of its limit for 5 minutes"): the comparison
    /// point for the dynamic detectors.
    Static,
}

/// One static rule: the value (or its ratio to a limit series of the same
/// container or host) beyond a level for `windows` consecutive windows.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ThresholdRule {
    above: bool,
    level: f64,
    windows: usize,
    /// Divide by the latest value of this metric for the same container
    /// (or host): `container_spec_memory_limit_bytes`, `process_max_fds`...
    ratio_of: Option<std::borrow::Cow<'static, str>>,
}

/// Templates remembered by the new-template detector; past it, no
/// template is news (bounded memory under hostile input).
const MAX_KNOWN_TEMPLATES: usize = 100_000;

/// Event time before which every template is new (nothing to report).
const TEMPLATE_WARMUP_MS: i64 = 3_600_000;

/// Five minutes of 15-second windows.
const FIVE_MIN: usize = 20;

/// The static rules, by what a signal measures. Levels are the usual
/// operator defaults.
fn static_rule(s: &Signal) -> Option<ThresholdRule> {
    let rule = |above, level, windows, ratio_of: Option<&'static str>| {
        Some(ThresholdRule {
            above,
            level,
            windows,
            ratio_of: ratio_of.map(std::borrow::Cow::Borrowed),
        })
    };
    let n = s.name.as_str();
    match s.kind {
        SignalKind::MetricSeries if n.starts_with("container_memory_working_set_bytes") => rule(
            true,
            0.8,
            FIVE_MIN,
            Some("container_spec_memory_limit_bytes"),
        ),
        SignalKind::MetricSeries if n.starts_with("process_open_fds") => {
            rule(true, 0.8, FIVE_MIN, Some("process_max_fds"))
        }
        SignalKind::MetricSeries if n.starts_with("node_filesystem_avail_bytes") => {
            rule(false, 0.2, FIVE_MIN, Some("node_filesystem_size_bytes"))
        }
        SignalKind::MetricSeries if n.starts_with("kafka_consumergroup_lag") => {
            rule(true, 1000.0, FIVE_MIN, None)
        }
        SignalKind::MetricSeries if n.starts_with("jvm_threads_live_threads") => {
            rule(true, 1000.0, FIVE_MIN, None)
        }
        SignalKind::CounterRate if n.starts_with("container_cpu_usage_seconds_total") => {
            rule(true, 1.8, FIVE_MIN, None)
        }
        SignalKind::CounterRate
            if n.starts_with("node_cpu_seconds_total") && n.contains("steal") =>
        {
            rule(true, 1.0, FIVE_MIN, None)
        }
        SignalKind::ErrorRate => rule(true, 5.0, 4, None),
        SignalKind::StatusClass if n == "5xx" => rule(true, 5.0, 4, None),
        SignalKind::LatencyQuantile if n.starts_with("p99") => rule(true, 1.0, FIVE_MIN, None),
        _ => None,
    }
}

/// Where a limit applies: the container, else the host.
fn limit_place(s: &Signal) -> String {
    s.container
        .clone()
        .or_else(|| s.host.clone())
        .unwrap_or_default()
}

/// The metric name of a series key such as `up{job="api"}`.
fn metric_name(series: &str) -> &str {
    series.split('{').next().unwrap_or(series)
}

/// Windows summed for count tests: sparse services log a few lines per
/// window, and a test on one window alone would need a handful of errors in
/// 15 seconds before it could tell a burst from chance.
const COUNT_SPAN: usize = 4;

#[derive(Serialize, Deserialize)]
enum Det {
    /// The share test of a service's error, warning or 5xx records among
    /// all its records, over sliding sums of the last [`COUNT_SPAN`]
    /// windows (flagged, all).
    Ratio(RatioDetector, std::collections::VecDeque<(f64, f64)>),
    Series(Box<BaselineDetector>),
    /// Resource gauges: level and slope; either alerts.
    Resource(Box<BaselineDetector>, LeakDetector),
    /// A static rule: the rule, consecutive windows beyond it.
    Threshold(ThresholdRule, usize),
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
    /// The signal.
    pub signal: Signal,
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
    detectors: Vec<(&'a Signal, &'a (Det, bool))>,
    correlator: &'a Correlator,
    services: Vec<&'a String>,
    limits: Vec<(&'a (String, String), &'a f64)>,
    known_templates: Vec<&'a String>,
    counting: Vec<&'a String>,
    first_ts: Option<models::Timestamp>,
    sessions: &'a crate::session::SessionDetector,
    traces: &'a crate::traces::TraceTracker,
}

/// An [`Analyzer`]'s state read back, for [`Analyzer::restore`].
#[derive(Deserialize)]
pub struct AnalyzerStateOwned(StateOwned);

#[derive(Deserialize)]
struct StateOwned {
    agg: SignalAggregator,
    detectors: Vec<(Signal, (Det, bool))>,
    correlator: Correlator,
    services: Vec<String>,
    limits: Vec<((String, String), f64)>,
    known_templates: Vec<String>,
    counting: Vec<String>,
    first_ts: Option<models::Timestamp>,
    sessions: crate::session::SessionDetector,
    traces: crate::traces::TraceTracker,
}

/// The engine. See the module docs.
pub struct Analyzer {
    cfg: AnalyzerConfig,
    agg: SignalAggregator,
    detectors: FastMap<Signal, (Det, bool)>,
    correlator: Correlator,
    points: Vec<SignalPoint>,
    /// Services seen in logs, for learning calls from messages.
    services: FastSet<String>,
    /// Latest value of limit series (by metric name and container or host),
    /// for static ratio rules.
    limits: FastMap<(String, String), f64>,
    shared: Shared,
    /// Template ids seen so far (for the new-template detector), capped.
    known_templates: FastSet<String>,
    /// New templates still counted as evidence (recent ones, capped).
    counting: FastSet<String>,
    /// First event time: new templates are news only after a warm-up.
    first_ts: Option<models::Timestamp>,
    sessions: crate::session::SessionDetector,
    /// Calls and error origins learned from trace ids in logs.
    traces: crate::traces::TraceTracker,
    /// Scratch: record counts per (service, window) of the points being
    /// scored (derived from them each time, never checkpointed).
    log_counts: FastMap<(Option<String>, i64), f64>,
}

/// Which signals are watched, and how.
/// The detector settings in use, built once and shared by every signal of
/// a kind: each signal then holds a pointer, not a copy.
struct Shared {
    /// Service signals: two anomalous windows in a row.
    level: Arc<BaselineDetectorConfig>,
    /// Only rises count (latency, error counters).
    upward: Arc<BaselineDetectorConfig>,
    /// Histogram quantiles: a quantile interpolated inside histogram
    /// buckets jumps by a bucket's width whenever a few slow requests land
    /// in the next bucket, so it must stay high for a minute, not 30 s.
    bucketed: Arc<BaselineDetectorConfig>,
}

impl Shared {
    fn new(cfg: &DetectorConfig) -> Self {
        let level = service(cfg);
        let upward = BaselineDetectorConfig {
            upward_only: true,
            ..level.clone()
        };
        let bucketed = BaselineDetectorConfig {
            min_consecutive: 4,
            ..upward.clone()
        };
        Shared {
            level: Arc::new(level),
            upward: Arc::new(upward),
            bucketed: Arc::new(bucketed),
        }
    }
}

/// Which signals are watched, and how.
fn detector_for(s: &Signal, shared: &Shared) -> Option<Det> {
    let series = |cfg: &Arc<BaselineDetectorConfig>| Box::new(BaselineDetector::new(cfg.clone()));
    match s.kind {
        SignalKind::ErrorRate | SignalKind::WarnRate => {
            Some(Det::Ratio(RatioDetector::default(), Default::default()))
        }
        SignalKind::StatusClass if s.name == "5xx" => {
            Some(Det::Ratio(RatioDetector::default(), Default::default()))
        }
        // Quantiles from histograms are named `p99:<histogram>`.
        SignalKind::LatencyQuantile if s.name.starts_with("p99:") => {
            Some(Det::Series(series(&shared.bucketed)))
        }
        SignalKind::LatencyQuantile if s.name.starts_with("p99") => {
            Some(Det::Series(series(&shared.upward)))
        }
        SignalKind::CounterRate if is_error_name(&s.name) => {
            Some(Det::Series(series(&shared.upward)))
        }
        // Request counters measure load, not health: traffic follows the
        // day and is not a fault by itself.
        SignalKind::CounterRate if s.name.contains("requests") => None,
        SignalKind::MetricSeries if is_leak_prone(&s.name) => Some(Det::Resource(
            series(&shared.level),
            LeakDetector::default(),
        )),
        SignalKind::MetricSeries | SignalKind::CounterRate => {
            Some(Det::Series(series(&shared.level)))
        }
        _ => None,
    }
}

/// Service signals need two anomalous windows in a row: a fault lasts
/// minutes, a one-window blip is noise.
fn service(cfg: &DetectorConfig) -> BaselineDetectorConfig {
    BaselineDetectorConfig {
        short: cfg.short,
        alert_on: cfg.alert_on,
        alert_off: cfg.alert_off,
        cooldown: cfg.cooldown,
        upward_only: cfg.upward_only,
        min_consecutive: 2,
        ..BaselineDetectorConfig::default()
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

/// Gauges that leak: memory, descriptors, threads.
fn is_leak_prone(name: &str) -> bool {
    [
        "memory_working_set",
        "memory_rss",
        "heap",
        "open_fds",
        "threads",
        "goroutines",
    ]
    .iter()
    .any(|w| name.contains(w))
}

/// Series that count failures: `code="5xx"`, `status="500"`, `*_errors_total`.
fn is_error_name(name: &str) -> bool {
    name.contains("5xx") || name.contains("error") || name.contains("fail") || name.contains("=\"5")
}

fn kind_of(s: &Signal, up: bool) -> AnomalyKind {
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
        SignalKind::ErrorRate | SignalKind::StatusClass | SignalKind::WarnRate => {
            AnomalyKind::ErrorBurst
        }
        SignalKind::LatencyQuantile => AnomalyKind::LatencySpike,
        SignalKind::CounterRate if is_error_name(&s.name) => AnomalyKind::ErrorBurst,
        SignalKind::MetricSeries if up && resource.iter().any(|w| s.name.contains(w)) => {
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
            shared: Shared::new(&cfg.detector),
            cfg,
            detectors: FastMap::default(),
            points: Vec::new(),
            limits: FastMap::default(),
            services: Default::default(),
            known_templates: Default::default(),
            counting: Default::default(),
            first_ts: None,
            sessions,
            traces: Default::default(),
            log_counts: FastMap::default(),
        }
    }

    /// The analysis state (windows, counters, every signal's baseline and
    /// detector, open incidents, learned placement and calls) as a value
    /// that serialises: what a streaming consumer checkpoints to its
    /// changelog so another instance can carry on where this one stopped.
    pub fn snapshot(&self) -> AnalyzerState<'_> {
        let mut detectors: Vec<(&Signal, &(Det, bool))> = self.detectors.iter().collect();
        detectors.sort_by(|a, b| a.0.cmp(b.0));
        let mut limits: Vec<(&(String, String), &f64)> = self.limits.iter().collect();
        limits.sort_by(|a, b| a.0.cmp(b.0));
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
            known_templates: known,
            counting,
            first_ts: self.first_ts,
            sessions: &self.sessions,
            traces: &self.traces,
        })
    }

    /// An engine with `cfg` carrying on from a [`Analyzer::snapshot`].
    /// `cfg` should be the configuration the snapshot was taken with: the
    /// state holds learned values, not settings, apart from each signal's
    /// detector, which keeps the settings it was created with.
    pub fn restore(cfg: AnalyzerConfig, state: AnalyzerStateOwned) -> Self {
        let s = state.0;
        Analyzer {
            agg: s.agg,
            correlator: s.correlator,
            shared: Shared::new(&cfg.detector),
            cfg,
            detectors: s.detectors.into_iter().collect(),
            points: Vec::new(),
            limits: s.limits.into_iter().collect(),
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
            log_counts: FastMap::default(),
        }
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

    /// Fold in one event.
    pub fn push(&mut self, event: &Event, out: &mut AnalyzerOutput) {
        match event {
            Event::Change(c) => self.correlator.observe_change(c),
            Event::Log(r) => {
                if let (Some(svc), Some(host)) = (&r.service, &r.host) {
                    self.correlator.learn_placement(svc, host);
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
                self.sessions.observe(r, &mut out.anomalies);
            }
            Event::Metric(m) => {
                if let (Some(svc), Some(host)) = (m.key.label("service"), m.key.label("host")) {
                    self.correlator.learn_placement(svc, host);
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

    /// End of input: close every window and return open incidents as they stand.
    pub fn finish(&mut self, out: &mut AnalyzerOutput) {
        self.sessions.finish(&mut out.anomalies);
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
        }
        for p in &points {
            if self.cfg.mode == DetectorMode::Static && p.signal.kind == SignalKind::MetricSeries {
                let name = metric_name(&p.signal.name);
                if [
                    "container_spec_memory_limit_bytes",
                    "process_max_fds",
                    "node_filesystem_size_bytes",
                ]
                .contains(&name)
                {
                    let place = limit_place(&p.signal);
                    self.limits.insert((name.to_string(), place), p.value);
                }
            }
            if !self.detectors.contains_key(&p.signal) {
                let det = match self.cfg.mode {
                    DetectorMode::Dynamic => detector_for(&p.signal, &self.shared),
                    DetectorMode::Static => static_rule(&p.signal).map(|r| Det::Threshold(r, 0)),
                };
                match det {
                    Some(d) => {
                        self.detectors.insert(p.signal.clone(), (d, false));
                    }
                    None => continue,
                }
            }
            let (det, was_alert) = self.detectors.get_mut(&p.signal).expect("inserted");
            // Whether this point said anything: a share over no records
            // neither confirms nor ends an alert, and must not keep an
            // incident open through a gap in the logs.
            let mut informative = true;
            let s = match det {
                Det::Ratio(d, recent) => {
                    let all = self
                        .log_counts
                        .get(&(p.signal.service.clone(), p.timestamp.as_millis()))
                        .copied()
                        .unwrap_or(p.value)
                        .max(p.value);
                    recent.push_back((p.value, all));
                    if recent.len() > COUNT_SPAN {
                        recent.pop_front();
                    }
                    let (k, n) = recent
                        .iter()
                        .fold((0.0, 0.0), |(k, n), (a, b)| (k + a, n + b));
                    informative = n > 0.0;
                    d.observe(k, n, p.value, all)
                }
                Det::Series(d) => d.observe(p.timestamp.as_millis() as f64 / 1000.0, p.value),
                Det::Resource(level, slope) => {
                    let a = level.observe(p.timestamp.as_millis() as f64 / 1000.0, p.value);
                    let b = slope.observe(p.value);
                    if b.alert && !a.alert {
                        b
                    } else {
                        a
                    }
                }
                Det::Threshold(rule, run) => {
                    let value = match &rule.ratio_of {
                        Some(limit) => {
                            let place = limit_place(&p.signal);
                            match self.limits.get(&(limit.to_string(), place)) {
                                Some(l) if *l > 0.0 => p.value / l,
                                _ => f64::NAN,
                            }
                        }
                        None => p.value,
                    };
                    let beyond = value.is_finite()
                        && if rule.above {
                            value > rule.level
                        } else {
                            value < rule.level
                        };
                    *run = if beyond { *run + 1 } else { 0 };
                    crate::detect::Score {
                        score: if beyond { 1.0 } else { 0.0 },
                        alert: *run >= rule.windows,
                        expected: rule.level,
                        spread: 0.0,
                    }
                }
            };
            let opened = s.alert && !*was_alert;
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
                    out.trace.push(TracePoint {
                        signal: p.signal.clone(),
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
            if s.alert && informative {
                self.correlator.touch(&p.signal, p.timestamp);
            }
            if opened {
                let expected = band();
                let a = Anomaly {
                    signal: p.signal.clone(),
                    timestamp: p.timestamp,
                    observed: p.value,
                    expected,
                    score: s.score.max(0.5),
                    kind: kind_of(&p.signal, p.value > expected.expected),
                    detector: match det {
                        Det::Ratio(..) => "record_share",
                        Det::Series(_) => "seasonal_baseline",
                        Det::Resource(..) => "level_and_slope",
                        Det::Threshold(..) => "static_threshold",
                    }
                    .into(),
                    detail: format!("{:.4} observed, {:.4} expected", p.value, expected.expected),
                };
                out.incidents.extend(self.correlator.observe(a.clone()));
                out.anomalies.push(a);
            }
        }
        self.points = points;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::{Level, LogRecord, Timestamp};

    fn log(ms: i64, service: &str, error: bool) -> Event {
        let mut r = LogRecord::new(Timestamp::from_millis(ms), "x");
        r.service = Some(service.into());
        r.level = Some(if error { Level::Error } else { Level::Info });
        Event::Log(r)
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
