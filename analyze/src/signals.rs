//! From records to signals: event-time windows with a watermark.
//!
//! Log records become counts per service and window (all records, errors,
//! warnings, HTTP status classes, exception classes, templates) and latency quantiles from
//! their duration fields; metric samples become one value per series and
//! window (the last gauge value, the per-second rate of a counter with
//! resets handled, and p50/p95/p99 of a histogram).
//!
//! Windows are closed by a watermark: the largest event time seen minus the
//! allowed lateness. A record older than the watermark arrives after its
//! window was emitted; it is counted in [`SignalStats::late`] rather than
//! changing a result already handed on. Nothing here reads a clock, so the
//! same records in the same order give the same points.
//!
//! Memory is bounded by [`SignalConfig::max_signals`]: a signal beyond the
//! cap is not tracked and is counted in [`SignalStats::signals_over_cap`].

use crate::hash::FastMap;
use models::{
    Event, Level, LogRecord, MetricKind, MetricSample, SeriesKey, Signal, SignalKind, Timestamp,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Windowing settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalConfig {
    /// Window length in seconds (the resolution of every signal).
    pub window_secs: u64,
    /// How long after a window ends records may still arrive for it.
    pub allowed_lateness_secs: u64,
    /// Cap on distinct signals tracked.
    pub max_signals: usize,
    /// Cap on duration samples kept per service and window for quantiles
    /// (a deterministic stride sample beyond it).
    pub max_latency_samples: usize,
    /// Emit per-template counts (off by default: no detector reads them
    /// yet, and with many templates they dominate the work per window).
    pub template_counts: bool,
    /// Labels that name a metric series' service, first present wins
    /// (default [`SERVICE_LABELS`]; the engine's `service_labels`).
    pub service_labels: Vec<String>,
}

impl Default for SignalConfig {
    fn default() -> Self {
        SignalConfig {
            window_secs: 15,
            allowed_lateness_secs: 30,
            max_signals: 100_000,
            max_latency_samples: 4096,
            template_counts: false,
            service_labels: default_service_labels(),
        }
    }
}

/// One value of one signal for one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalPoint {
    /// The signal.
    pub signal: Signal,
    /// Start of the window.
    pub timestamp: Timestamp,
    /// Its value (a count, a rate per second, a quantile in seconds or the
    /// last gauge value).
    pub value: f64,
}

/// What the aggregator had to leave out, for metrics and the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalStats {
    /// Records that arrived after their window was closed.
    pub late: u64,
    /// Observations of signals beyond the cap.
    pub signals_over_cap: u64,
    /// Distinct signals tracked.
    pub signals: usize,
    /// Windows emitted.
    pub windows: u64,
}

/// State of one open window, keyed by signal id (see [`SignalAggregator`]).
#[derive(Default, Serialize, Deserialize)]
struct Window {
    counts: FastMap<u32, u64>,
    gauges: FastMap<u32, (Timestamp, f64)>,
    rates: FastMap<u32, f64>,
    latencies: FastMap<u32, Vec<f64>>,
}

/// Last cumulative value of a counter, for rates across windows.
#[derive(Serialize, Deserialize)]
struct CounterState {
    at: Timestamp,
    value: f64,
}

/// A cached signal id: an id, not resolved yet, or beyond the cap.
type Slot = u32;
/// The fields of a log record the signals read (ingest derives `status`
/// and `duration_seconds` from the names shippers use; multi-line joining
/// writes `exception.type`).
const STATUS: &str = "status";
const EXCEPTION_TYPE: &str = "exception.type";
const DURATION: &str = "duration_seconds";
pub(crate) const FIELDS_READ: [&str; 3] = [STATUS, EXCEPTION_TYPE, DURATION];

const UNRESOLVED: Slot = u32::MAX;
const OVER_CAP: Slot = u32::MAX - 1;

/// The ids of a service's log signals, so that a record costs one lookup
/// by service name instead of building and hashing a [`Signal`] (four
/// strings) per signal it feeds.
#[derive(Clone, Copy)]
struct LogSlots {
    log: Slot,
    errors: Slot,
    warns: Slot,
    latency: Slot,
    /// `1xx` .. `5xx`.
    status: [Slot; 5],
}

/// The ids of a metric series' signals: as a gauge and as a counter rate
/// (a series' type can differ between scrapes of an untyped exposition).
#[derive(Clone, Copy)]
struct MetricSlots {
    series: Slot,
    rate: Slot,
}

/// Turns events into signal points. See the module docs.
///
/// Every tracked signal gets a small integer id (its index in `signals`);
/// windows and per-signal state are keyed by the id, and the signals
/// themselves are only cloned when a window is emitted. A replay feeds a
/// few signals per record and emits each signal once per window, so this
/// moves the string work from the per-record path to the per-window one.
#[derive(Serialize, Deserialize)]
pub struct SignalAggregator {
    cfg: SignalConfig,
    window_ms: i64,
    windows: BTreeMap<i64, Window>,
    /// Every signal tracked (bounded by the cap), by id.
    signals: Vec<Signal>,
    /// The ids of the count signals, in the order they appeared: every
    /// closed window emits them all, zero when absent, because "no errors
    /// this window" is information.
    count_ids: Vec<u32>,
    counters: FastMap<SeriesKey, CounterState>,
    /// Cumulative histogram buckets per base series, at the last window close.
    buckets: FastMap<u32, BTreeMap<OrdF64, f64>>,
    /// Cumulative histogram buckets as last seen in the current windows.
    buckets_now: FastMap<u32, BTreeMap<OrdF64, f64>>,
    /// Windows starting before this are closed and emitted.
    closed_until: i64,
    max_seen: Option<i64>,
    stats: SignalStats,
    /// Signal -> id, the inverse of `signals` (rebuilt after a restore).
    #[serde(skip)]
    ids: FastMap<Signal, u32>,
    /// Caches of pure functions of the input, each bounded like the
    /// signals and rebuilt as records arrive after a restore: a service's
    /// log signal ids (by service name; `None` for records without one)...
    #[serde(skip)]
    log_slots: FastMap<String, LogSlots>,
    #[serde(skip)]
    anonymous_slots: Option<LogSlots>,
    /// ...a metric series' signal ids...
    #[serde(skip)]
    metric_slots: FastMap<SeriesKey, MetricSlots>,
    /// ...and a histogram bucket series' (with `le`) latency signal id.
    #[serde(skip)]
    bucket_slots: FastMap<SeriesKey, Slot>,
}

/// A float usable as a map key (bucket bounds; never NaN here).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
struct OrdF64(f64);
impl Eq for OrdF64 {}
#[allow(clippy::derive_ord_xor_partial_ord)]
impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

const UNRESOLVED_LOG: LogSlots = LogSlots {
    log: UNRESOLVED,
    errors: UNRESOLVED,
    warns: UNRESOLVED,
    latency: UNRESOLVED,
    status: [UNRESOLVED; 5],
};

impl SignalAggregator {
    /// A new aggregator.
    pub fn new(cfg: SignalConfig) -> Self {
        let window_ms = (cfg.window_secs.max(1) * 1000) as i64;
        SignalAggregator {
            cfg,
            window_ms,
            windows: BTreeMap::new(),
            signals: Vec::new(),
            count_ids: Vec::new(),
            counters: FastMap::default(),
            buckets: FastMap::default(),
            buckets_now: FastMap::default(),
            closed_until: i64::MIN,
            max_seen: None,
            stats: SignalStats::default(),
            ids: FastMap::default(),
            log_slots: FastMap::default(),
            anonymous_slots: None,
            metric_slots: FastMap::default(),
            bucket_slots: FastMap::default(),
        }
    }

    /// Counters of what was left out.
    pub fn stats(&self) -> SignalStats {
        SignalStats {
            signals: self.signals.len(),
            ..self.stats.clone()
        }
    }

    /// Fold one event in, then append the points of every window the
    /// watermark closed to `out`.
    pub fn push(&mut self, event: &Event, out: &mut Vec<SignalPoint>) {
        let ts = event.timestamp().as_millis();
        let start = ts.div_euclid(self.window_ms) * self.window_ms;
        if start < self.closed_until {
            self.stats.late += 1;
            return;
        }
        match event {
            Event::Log(r) => self.log(start, r),
            Event::Metric(m) => self.metric(start, m),
            Event::Change(_) => {}
        }
        if self.max_seen.is_none_or(|m| ts > m) {
            self.max_seen = Some(ts);
            let watermark = ts - (self.cfg.allowed_lateness_secs * 1000) as i64;
            self.close_before(watermark - self.window_ms + 1, out);
        }
    }

    /// Emit every open window (end of input).
    pub fn finish(&mut self, out: &mut Vec<SignalPoint>) {
        self.close_before(i64::MAX, out);
    }

    /// The id of a signal, tracking it if the cap allows (`count`: it is a
    /// count signal, emitted by every window from now on). `None` beyond
    /// the cap, counted in the stats.
    fn track(&mut self, s: Signal, count: bool) -> Option<u32> {
        if self.ids.len() < self.signals.len() {
            // Restored from a checkpoint: the inverse map was not saved.
            self.ids = (0u32..)
                .zip(&self.signals)
                .map(|(i, s)| (s.clone(), i))
                .collect();
        }
        if let Some(&id) = self.ids.get(&s) {
            return Some(id);
        }
        if self.signals.len() >= self.cfg.max_signals {
            self.stats.signals_over_cap += 1;
            return None;
        }
        let id = self.signals.len() as u32;
        self.ids.insert(s.clone(), id);
        self.signals.push(s);
        if count {
            self.count_ids.push(id);
        }
        Some(id)
    }

    /// A cached slot's id, resolving it with `make` the first time. A slot
    /// beyond the cap stays there (the tracked set only grows) and counts
    /// each observation it turns away, as an uncached lookup would.
    fn resolve(
        &mut self,
        slot: &mut Slot,
        count: bool,
        make: impl FnOnce() -> Signal,
    ) -> Option<u32> {
        match *slot {
            UNRESOLVED => {
                let id = self.track(make(), count);
                *slot = id.unwrap_or(OVER_CAP);
                id
            }
            OVER_CAP => {
                self.stats.signals_over_cap += 1;
                None
            }
            id => Some(id),
        }
    }

    fn add_count(&mut self, start: i64, id: Option<u32>) {
        if let Some(id) = id {
            *self
                .windows
                .entry(start)
                .or_default()
                .counts
                .entry(id)
                .or_default() += 1;
        }
    }

    fn log(&mut self, start: i64, r: &LogRecord) {
        let service = r.service.as_deref();
        let cached = match service {
            Some(name) => self.log_slots.get(name).copied(),
            None => self.anonymous_slots,
        };
        let mut slots = cached.unwrap_or(UNRESOLVED_LOG);
        let base = |kind, name: &str| Signal {
            kind,
            name: name.to_string(),
            service: r.service.clone(),
            host: None,
            container: None,
        };
        let log = self.resolve(&mut slots.log, true, || base(SignalKind::LogRate, ""));
        self.add_count(start, log);
        // Error and warning counts exist from a service's first record, so
        // their zeros before the first error are part of the baseline.
        let errors = self.resolve(&mut slots.errors, true, || base(SignalKind::ErrorRate, ""));
        let warns = self.resolve(&mut slots.warns, true, || base(SignalKind::WarnRate, ""));
        let again = match r.level {
            Some(l) if l.is_error() => Some(errors),
            Some(Level::Warn) => Some(warns),
            _ => None,
        };
        match again {
            Some(Some(id)) => self.add_count(start, Some(id)),
            // Turned away again, as every observation beyond the cap is.
            Some(None) => self.stats.signals_over_cap += 1,
            None => {}
        }
        if let Some(status) = r.field(STATUS).and_then(|v| v.as_f64()) {
            if (100.0..600.0).contains(&status) {
                let class = (status as usize) / 100;
                let id = self.resolve(&mut slots.status[class - 1], true, || {
                    base(SignalKind::StatusClass, &format!("{class}xx"))
                });
                self.add_count(start, id);
            }
        }
        // Stack-trace concentration: the same exception class surging at a
        // service. Tracked from a class's first record, like templates.
        if let Some(class) = r.field(EXCEPTION_TYPE).and_then(|v| v.as_str()) {
            let id = self.track(base(SignalKind::ExceptionCount, class), true);
            self.add_count(start, id);
        }
        if self.cfg.template_counts {
            if let Some(t) = &r.template_id {
                let id = self.track(base(SignalKind::TemplateCount, t), true);
                self.add_count(start, id);
            }
        }
        if let Some(d) = r.field(DURATION).and_then(|v| v.as_f64()) {
            if d.is_finite() && d >= 0.0 {
                let id = self.resolve(&mut slots.latency, false, || {
                    base(SignalKind::LatencyQuantile, "")
                });
                if let Some(id) = id {
                    let cap = self.cfg.max_latency_samples;
                    let v = self
                        .windows
                        .entry(start)
                        .or_default()
                        .latencies
                        .entry(id)
                        .or_default();
                    if v.len() < cap {
                        v.push(d);
                    } else {
                        // Deterministic thinning: overwrite a slot chosen by
                        // the running count, so long windows stay bounded.
                        let i = (d.to_bits() as usize) % cap;
                        v[i] = d;
                    }
                }
            }
        }
        // Remember the slots (bounded: hostile service names beyond the
        // cap are looked up afresh, which gives the same answers).
        match service {
            Some(name) => {
                if let Some(c) = self.log_slots.get_mut(name) {
                    *c = slots;
                } else if self.log_slots.len() < self.cfg.max_signals {
                    self.log_slots.insert(name.to_string(), slots);
                }
            }
            None => self.anonymous_slots = Some(slots),
        }
    }

    fn metric(&mut self, start: i64, m: &MetricSample) {
        if !m.value.is_finite() {
            return;
        }
        let name = &m.key.name;
        if let Some(le) = m.key.label("le") {
            if m.kind == MetricKind::Histogram || name.ends_with("_bucket") {
                let Ok(bound) = parse_le(le) else { return };
                let mut slot = self.bucket_slots.get(&m.key).copied().unwrap_or(UNRESOLVED);
                let fresh = slot == UNRESOLVED;
                // Made only for a series seen for the first time (the
                // closure of `resolve` cannot borrow the settings).
                let signal = fresh.then(|| {
                    let mut labels = m.key.labels.clone();
                    labels.remove("le");
                    let base = SeriesKey {
                        name: name.trim_end_matches("_bucket").to_string(),
                        labels,
                    };
                    metric_signal(SignalKind::LatencyQuantile, &base, &self.cfg.service_labels)
                });
                let id = self.resolve(&mut slot, false, move || {
                    signal.expect("made for an unresolved slot")
                });
                if fresh && self.bucket_slots.len() < self.cfg.max_signals {
                    self.bucket_slots.insert(m.key.clone(), slot);
                }
                let Some(id) = id else { return };
                self.windows.entry(start).or_default();
                self.buckets_now
                    .entry(id)
                    .or_default()
                    .insert(OrdF64(bound), m.value);
                return;
            }
        }
        // A histogram's or summary's `_sum` and `_count` are cumulative
        // totals whose information the bucket quantiles already carry.
        if matches!(m.kind, MetricKind::Histogram | MetricKind::Summary)
            && (name.ends_with("_sum") || name.ends_with("_count"))
        {
            return;
        }
        let is_counter = m.kind == MetricKind::Counter
            || (m.kind == MetricKind::Untyped && name.ends_with("_total"));
        let cached = self.metric_slots.get(&m.key).copied();
        let mut slots = cached.unwrap_or(MetricSlots {
            series: UNRESOLVED,
            rate: UNRESOLVED,
        });
        let (kind, slot) = if is_counter {
            (SignalKind::CounterRate, &mut slots.rate)
        } else {
            (SignalKind::MetricSeries, &mut slots.series)
        };
        let signal =
            (*slot == UNRESOLVED).then(|| metric_signal(kind, &m.key, &self.cfg.service_labels));
        let id = self.resolve(slot, false, move || {
            signal.expect("made for an unresolved slot")
        });
        if let Some(c) = self.metric_slots.get_mut(&m.key) {
            *c = slots;
        } else if self.metric_slots.len() < self.cfg.max_signals {
            self.metric_slots.insert(m.key.clone(), slots);
        }
        let Some(id) = id else { return };
        if is_counter {
            let rate = match self.counters.get(&m.key) {
                Some(prev) if m.timestamp > prev.at => {
                    let dt = (m.timestamp.as_millis() - prev.at.as_millis()) as f64 / 1000.0;
                    // A counter that went down restarted from zero: the
                    // increase since the reset is the new value itself.
                    let delta = if m.value >= prev.value {
                        m.value - prev.value
                    } else {
                        m.value
                    };
                    Some(delta / dt)
                }
                _ => None,
            };
            match self.counters.get_mut(&m.key) {
                Some(p) if m.timestamp > p.at => {
                    p.at = m.timestamp;
                    p.value = m.value;
                }
                Some(_) => {}
                None => {
                    self.counters.insert(
                        m.key.clone(),
                        CounterState {
                            at: m.timestamp,
                            value: m.value,
                        },
                    );
                }
            }
            if let Some(rate) = rate {
                self.windows
                    .entry(start)
                    .or_default()
                    .rates
                    .insert(id, rate);
            }
            return;
        }
        let w = self.windows.entry(start).or_default();
        match w.gauges.get(&id) {
            Some((at, _)) if *at > m.timestamp => {}
            _ => {
                w.gauges.insert(id, (m.timestamp, m.value));
            }
        }
    }

    fn close_before(&mut self, limit: i64, out: &mut Vec<SignalPoint>) {
        while let Some(entry) = self.windows.first_entry() {
            if *entry.key() >= limit {
                break;
            }
            let (start, w) = entry.remove_entry();
            self.emit(start, w, out);
            self.closed_until = start + self.window_ms;
        }
    }

    fn emit(&mut self, start: i64, w: Window, out: &mut Vec<SignalPoint>) {
        self.stats.windows += 1;
        let timestamp = Timestamp::from_millis(start);
        let first = out.len();
        let point = |signal: Signal, value: f64| SignalPoint {
            signal,
            timestamp,
            value,
        };
        for &id in &self.count_ids {
            let n = w.counts.get(&id).copied().unwrap_or(0);
            out.push(point(self.signals[id as usize].clone(), n as f64));
        }
        for (id, (_, v)) in w.gauges {
            out.push(point(self.signals[id as usize].clone(), v));
        }
        for (id, v) in w.rates {
            out.push(point(self.signals[id as usize].clone(), v));
        }
        for (id, mut v) in w.latencies {
            v.sort_by(f64::total_cmp);
            for (q, name) in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")] {
                // Nearest rank: the smallest value with at least q of the samples
                // at or below it.
                let idx = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
                let mut s = self.signals[id as usize].clone();
                s.name = name.to_string();
                out.push(point(s, v[idx]));
            }
        }
        // Histograms: quantiles of the increase of each bucket since the
        // previous window, as Prometheus' histogram_quantile over a rate.
        let now: Vec<(u32, BTreeMap<OrdF64, f64>)> = self.buckets_now.drain().collect();
        for (id, cum) in now {
            let prev = self.buckets.get(&id);
            let delta: Vec<(f64, f64)> = cum
                .iter()
                .map(|(le, v)| {
                    let p = prev.and_then(|p| p.get(le)).copied().unwrap_or(0.0);
                    (le.0, if *v >= p { v - p } else { *v })
                })
                .collect();
            if prev.is_some() {
                for (q, name) in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")] {
                    if let Some(v) = histogram_quantile(q, &delta) {
                        let mut s = self.signals[id as usize].clone();
                        s.name = format!("{name}:{}", s.name);
                        out.push(point(s, v));
                    }
                }
            }
            self.buckets.insert(id, cum);
        }
        // Points in signal order, so the same records give the same
        // sequence whatever the hash maps' order; distinct sources never
        // produce the same signal, but if one did the later would win.
        let mut points = out.split_off(first);
        points.sort_by(|a, b| a.signal.cmp(&b.signal));
        // `dedup_by` drops the later of two equal neighbours; swapping
        // first keeps the later's value, as a map insert would.
        points.dedup_by(|later, kept| {
            let same = later.signal == kept.signal;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        out.append(&mut points);
    }
}

fn parse_le(s: &str) -> Result<f64, std::num::ParseFloatError> {
    match s {
        "+Inf" | "Inf" | "inf" => Ok(f64::INFINITY),
        _ => s.parse(),
    }
}

/// Prometheus' `histogram_quantile`: linear interpolation inside the bucket
/// where the rank falls; the `+Inf` bucket answers with the highest finite
/// bound. `buckets` are (upper bound, cumulative count), sorted by bound.
fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 || buckets.len() < 2 {
        return None;
    }
    let rank = q * total;
    let mut prev_bound = 0.0;
    let mut prev_count = 0.0;
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(prev_bound);
            }
            let in_bucket = count - prev_count;
            if in_bucket <= 0.0 {
                return Some(bound);
            }
            return Some(prev_bound + (bound - prev_bound) * (rank - prev_count) / in_bucket);
        }
        prev_bound = bound;
        prev_count = count;
    }
    Some(prev_bound)
}

/// Labels that name a series' service, most specific first: `service`,
/// OpenTelemetry's `service.name` as Prometheus writes it
/// (`service_name`), Kubernetes' recommended and older app labels as
/// kube-state-metrics and relabelling write them, the workload of the
/// `pod` label (cAdvisor's and the kubelet's series name a pod and no app:
/// `frontend-7d9f8b8c9-x2x4k` is `frontend`'s, as its logs are, see
/// [`models::workload_of_pod`]), and the scrape `job` last: a job names
/// what was scraped (`node` for every host's node_exporter, `kubelet` for
/// every pod's cAdvisor series), which is a service only when nothing
/// better says so.
pub const SERVICE_LABELS: [&str; 7] = [
    "service",
    "service_name",
    "app_kubernetes_io_name",
    "app",
    "k8s_app",
    "pod",
    "job",
];

/// [`SERVICE_LABELS`] as a list a user's configuration can replace.
pub fn default_service_labels() -> Vec<String> {
    SERVICE_LABELS.iter().map(|s| s.to_string()).collect()
}

/// The signal of a metric series, scoped by the labels that name where it
/// runs ([`SERVICE_LABELS`], `host`/`node`/`instance`, `container`/`pod`).
fn metric_signal(kind: SignalKind, key: &SeriesKey, service_labels: &[String]) -> Signal {
    let pick = |names: &[&str]| names.iter().find_map(|n| key.label(n)).map(str::to_string);
    Signal {
        kind,
        name: key.to_string(),
        service: service_labels
            .iter()
            .find_map(|n| {
                let v = key.label(n)?;
                // A pod names one replica: its service is its workload.
                Some(match n.as_str() {
                    "pod" | "pod_name" => models::workload_of_pod(v),
                    _ => v,
                })
            })
            .map(str::to_string),
        host: pick(&["host", "node", "instance"]),
        container: pick(&["container", "container_name", "pod"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::FieldValue;

    /// The scrape job names a service only when no label says better.
    #[test]
    fn the_job_label_names_the_service_last() {
        let key = |labels: &[(&str, &str)]| SeriesKey {
            name: "process_resident_memory_bytes".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let defaults = SignalConfig::default().service_labels;
        let service = |labels: &[(&str, &str)]| {
            metric_signal(SignalKind::MetricSeries, &key(labels), &defaults).service
        };
        assert_eq!(
            service(&[("job", "kubernetes-pods"), ("app", "checkout")]).as_deref(),
            Some("checkout")
        );
        assert_eq!(
            service(&[("job", "otel"), ("service_name", "payments"), ("app", "x")]).as_deref(),
            Some("payments")
        );
        assert_eq!(
            service(&[("job", "node"), ("instance", "h1:9100")]).as_deref(),
            Some("node")
        );
        // cAdvisor's series name a pod (and a container, often `server`
        // in every workload of a chart), no app: the pod's workload.
        assert_eq!(
            service(&[
                ("job", "kubelet"),
                ("pod", "frontend-7d9f8b8c9-x2x4k"),
                ("container", "server")
            ])
            .as_deref(),
            Some("frontend")
        );
        assert_eq!(
            service(&[
                ("job", "kubelet"),
                ("pod", "redis-cart-0"),
                ("app", "redis")
            ])
            .as_deref(),
            Some("redis")
        );
        // A user's list replaces the default one.
        let mine = vec!["team_service".to_string()];
        let signal = |labels: &[(&str, &str)]| {
            metric_signal(SignalKind::MetricSeries, &key(labels), &mine).service
        };
        assert_eq!(
            signal(&[("app", "x"), ("team_service", "billing")]).as_deref(),
            Some("billing")
        );
        assert_eq!(signal(&[("app", "x")]), None);
    }

    fn log(sec: i64, service: &str, level: Level) -> Event {
        let mut r = LogRecord::new(Timestamp::from_secs(sec), "x");
        r.service = Some(service.into());
        r.level = Some(level);
        Event::Log(r)
    }

    fn value(points: &[SignalPoint], kind: SignalKind, name: &str, at: i64) -> Option<f64> {
        points
            .iter()
            .find(|p| p.signal.kind == kind && p.signal.name == name && p.timestamp.as_secs() == at)
            .map(|p| p.value)
    }

    #[test]
    fn counts_errors_per_window_with_zeros() {
        let mut a = SignalAggregator::new(SignalConfig::default());
        let mut out = vec![];
        a.push(&log(0, "checkout", Level::Info), &mut out);
        a.push(&log(1, "checkout", Level::Error), &mut out);
        a.push(&log(16, "checkout", Level::Info), &mut out);
        a.finish(&mut out);
        assert_eq!(value(&out, SignalKind::ErrorRate, "", 0), Some(1.0));
        assert_eq!(value(&out, SignalKind::ErrorRate, "", 15), Some(0.0));
        assert_eq!(value(&out, SignalKind::LogRate, "", 0), Some(2.0));
    }

    /// Records whose joined stack trace named an exception class count per
    /// (service, class): the signal of stack-trace concentration.
    #[test]
    fn exception_classes_are_counted_per_service() {
        let thrown = |sec: i64, service: &str, class: &str| {
            let mut e = log(sec, service, Level::Error);
            if let Event::Log(r) = &mut e {
                r.fields
                    .insert("exception.type".into(), FieldValue::Str(class.into()));
            }
            e
        };
        let mut a = SignalAggregator::new(SignalConfig::default());
        let mut out = vec![];
        let timeout = "java.net.SocketTimeoutException";
        a.push(&thrown(0, "cart", timeout), &mut out);
        a.push(&thrown(1, "cart", timeout), &mut out);
        a.push(
            &thrown(2, "cart", "java.lang.NullPointerException"),
            &mut out,
        );
        a.push(&log(3, "cart", Level::Error), &mut out);
        a.push(&log(16, "cart", Level::Info), &mut out);
        a.finish(&mut out);
        assert_eq!(
            value(&out, SignalKind::ExceptionCount, timeout, 0),
            Some(2.0)
        );
        assert_eq!(
            value(&out, SignalKind::ExceptionCount, timeout, 15),
            Some(0.0)
        );
        assert_eq!(
            value(
                &out,
                SignalKind::ExceptionCount,
                "java.lang.NullPointerException",
                0
            ),
            Some(1.0)
        );
        assert_eq!(value(&out, SignalKind::ErrorRate, "", 0), Some(4.0));
    }

    #[test]
    fn windows_close_by_watermark_and_late_records_are_counted() {
        let mut a = SignalAggregator::new(SignalConfig::default());
        let mut out = vec![];
        a.push(&log(0, "a", Level::Info), &mut out);
        assert!(out.is_empty(), "window [0,15) still open");
        a.push(&log(50, "a", Level::Info), &mut out);
        assert_eq!(value(&out, SignalKind::LogRate, "", 0), Some(1.0));
        a.push(&log(3, "a", Level::Info), &mut out);
        assert_eq!(a.stats().late, 1);
        // Within lateness: a record for [30,45) arriving at watermark 20 is fine.
        a.push(&log(31, "a", Level::Info), &mut out);
        assert_eq!(a.stats().late, 1);
    }

    #[test]
    fn counter_rates_survive_resets() {
        let mut a = SignalAggregator::new(SignalConfig::default());
        let mut out = vec![];
        let key = SeriesKey::new("http_requests_total", [("service", "api")]);
        for (t, v) in [(0, 100.0), (15, 130.0), (30, 10.0), (45, 40.0)] {
            let m = MetricSample {
                key: key.clone(),
                timestamp: Timestamp::from_secs(t),
                value: v,
                kind: MetricKind::Counter,
            };
            a.push(&Event::Metric(m), &mut out);
        }
        a.finish(&mut out);
        let name = key.to_string();
        assert_eq!(value(&out, SignalKind::CounterRate, &name, 15), Some(2.0));
        assert!(
            (value(&out, SignalKind::CounterRate, &name, 30).unwrap() - 10.0 / 15.0).abs() < 1e-9
        );
        assert_eq!(value(&out, SignalKind::CounterRate, &name, 45), Some(2.0));
    }

    #[test]
    fn latency_quantiles_from_duration_fields() {
        let mut a = SignalAggregator::new(SignalConfig::default());
        let mut out = vec![];
        for i in 0..100 {
            let mut r = LogRecord::new(Timestamp::from_millis(i * 100), "req");
            r.service = Some("api".into());
            r.fields.insert(
                "duration_seconds".into(),
                FieldValue::Float((i + 1) as f64 / 100.0),
            );
            a.push(&Event::Log(r), &mut out);
        }
        a.finish(&mut out);
        assert_eq!(
            value(&out, SignalKind::LatencyQuantile, "p50", 0),
            Some(0.5)
        );
        assert_eq!(
            value(&out, SignalKind::LatencyQuantile, "p99", 0),
            Some(0.99)
        );
    }

    #[test]
    fn histogram_quantile_matches_prometheus() {
        let b = [
            (0.1, 50.0),
            (0.5, 90.0),
            (1.0, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert!((histogram_quantile(0.5, &b).unwrap() - 0.1).abs() < 1e-9);
        assert!((histogram_quantile(0.95, &b).unwrap() - 0.75).abs() < 1e-9);
        assert_eq!(histogram_quantile(0.5, &[(f64::INFINITY, 0.0)]), None);
    }

    #[test]
    fn log_signals_beyond_the_cap_are_counted_per_observation() {
        // a's log, error and warning counts take three of four places; b
        // gets its log count and nothing else.
        let cfg = SignalConfig {
            max_signals: 4,
            ..SignalConfig::default()
        };
        let mut a = SignalAggregator::new(cfg);
        let mut out = vec![];
        a.push(&log(0, "a", Level::Error), &mut out);
        a.push(&log(1, "b", Level::Info), &mut out);
        a.push(&log(2, "b", Level::Error), &mut out);
        a.push(&log(3, "a", Level::Error), &mut out);
        a.finish(&mut out);
        assert_eq!(a.stats().signals, 4);
        // b: errors and warnings turned away on each record, and the error
        // count once more for its error record.
        assert_eq!(a.stats().signals_over_cap, 5);
        let of = |kind, service| {
            out.iter()
                .find(|p| p.signal.kind == kind && p.signal.service.as_deref() == Some(service))
                .map(|p| p.value)
        };
        assert_eq!(of(SignalKind::LogRate, "b"), Some(2.0));
        assert_eq!(of(SignalKind::ErrorRate, "a"), Some(2.0));
        assert_eq!(of(SignalKind::ErrorRate, "b"), None);
    }

    #[test]
    fn a_restored_aggregator_carries_on_with_the_same_signals() {
        let events: Vec<Event> = (0..120)
            .map(|i| {
                let level = if i % 7 == 0 {
                    Level::Error
                } else {
                    Level::Info
                };
                log(i, ["a", "b", "c"][i as usize % 3], level)
            })
            .collect();
        let mut whole = SignalAggregator::new(SignalConfig::default());
        let mut expected = vec![];
        for e in &events {
            whole.push(e, &mut expected);
        }
        whole.finish(&mut expected);

        let mut first = SignalAggregator::new(SignalConfig::default());
        let mut got = vec![];
        for e in &events[..50] {
            first.push(e, &mut got);
        }
        let saved = serde_json::to_string(&first).unwrap();
        let mut second: SignalAggregator = serde_json::from_str(&saved).unwrap();
        for e in &events[50..] {
            second.push(e, &mut got);
        }
        second.finish(&mut got);
        assert_eq!(got, expected);
        assert_eq!(second.stats(), whole.stats());
    }

    #[test]
    fn gauges_and_the_signal_cap() {
        let cfg = SignalConfig {
            max_signals: 2,
            ..SignalConfig::default()
        };
        let mut a = SignalAggregator::new(cfg);
        let mut out = vec![];
        for i in 0..5 {
            let m = MetricSample {
                key: SeriesKey::new("mem", [("container", format!("c{i}"))]),
                timestamp: Timestamp::from_secs(1),
                value: 1.0,
                kind: MetricKind::Gauge,
            };
            a.push(&Event::Metric(m), &mut out);
        }
        a.finish(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(a.stats().signals_over_cap, 3);
        assert_eq!(out[0].signal.container.as_deref(), Some("c0"));
    }
}
