//! From records to signals: event-time windows with a watermark.
//!
//! Log records become counts per service and window (all records, errors,
//! warnings, HTTP status classes, templates) and latency quantiles from
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

use crate::hash::{FastMap, FastSet};
use models::{
    Event, Level, LogRecord, MetricKind, MetricSample, SeriesKey, Signal, SignalKind, Timestamp,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

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
}

impl Default for SignalConfig {
    fn default() -> Self {
        SignalConfig {
            window_secs: 15,
            allowed_lateness_secs: 30,
            max_signals: 100_000,
            max_latency_samples: 4096,
            template_counts: false,
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

/// State of one open window.
#[derive(Default, Serialize, Deserialize)]
struct Window {
    counts: FastMap<Signal, u64>,
    gauges: FastMap<Signal, (Timestamp, f64)>,
    rates: FastMap<Signal, f64>,
    latencies: FastMap<Signal, Vec<f64>>,
}

/// Last cumulative value of a counter, for rates across windows.
#[derive(Serialize, Deserialize)]
struct CounterState {
    at: Timestamp,
    value: f64,
}

/// Turns events into signal points. See the module docs.
#[derive(Serialize, Deserialize)]
pub struct SignalAggregator {
    cfg: SignalConfig,
    window_ms: i64,
    windows: BTreeMap<i64, Window>,
    /// Count signals seen so far: each closed window emits all of them, zero
    /// when absent, because "no errors this window" is information.
    count_signals: BTreeSet<Signal>,
    /// Every signal tracked (for the cap). A hash set: membership is asked
    /// for every record, and ordered comparisons of long series names were
    /// the hottest path of a replay.
    tracked: FastSet<Signal>,
    /// The same membership for `count_signals`.
    counted: FastSet<Signal>,
    counters: FastMap<SeriesKey, CounterState>,
    /// Cumulative histogram buckets per base series, at the last window close.
    buckets: FastMap<Signal, BTreeMap<OrdF64, f64>>,
    /// Cumulative histogram buckets as last seen in the current windows.
    buckets_now: FastMap<Signal, BTreeMap<OrdF64, f64>>,
    /// Windows starting before this are closed and emitted.
    closed_until: i64,
    max_seen: Option<i64>,
    stats: SignalStats,
    /// The signal of each metric series seen (as [`metric_signal`] builds
    /// it, kind aside), so a sample does not format its series name again:
    /// a cache of a pure function, rebuilt after a restore, bounded like
    /// the signals.
    #[serde(skip)]
    metric_signals: FastMap<SeriesKey, Signal>,
    /// The same for histogram buckets: bucket series (with `le`) -> the
    /// latency signal of their histogram.
    #[serde(skip)]
    bucket_signals: FastMap<SeriesKey, Signal>,
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

impl SignalAggregator {
    /// A new aggregator.
    pub fn new(cfg: SignalConfig) -> Self {
        let window_ms = (cfg.window_secs.max(1) * 1000) as i64;
        SignalAggregator {
            cfg,
            window_ms,
            windows: BTreeMap::new(),
            count_signals: BTreeSet::new(),
            tracked: FastSet::default(),
            counted: FastSet::default(),
            counters: FastMap::default(),
            buckets: FastMap::default(),
            buckets_now: FastMap::default(),
            closed_until: i64::MIN,
            max_seen: None,
            stats: SignalStats::default(),
            metric_signals: FastMap::default(),
            bucket_signals: FastMap::default(),
        }
    }

    /// Counters of what was left out.
    pub fn stats(&self) -> SignalStats {
        SignalStats {
            signals: self.tracked.len(),
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

    /// [`metric_signal`], answered from `metric_signals` when it can be.
    fn metric_signal(&mut self, kind: SignalKind, key: &SeriesKey) -> Signal {
        if let Some(s) = self.metric_signals.get(key) {
            let mut s = s.clone();
            s.kind = kind;
            return s;
        }
        let s = metric_signal(kind, key);
        if self.metric_signals.len() < self.cfg.max_signals {
            self.metric_signals.insert(key.clone(), s.clone());
        }
        s
    }

    fn track(&mut self, s: &Signal) -> bool {
        if self.tracked.contains(s) {
            return true;
        }
        if self.tracked.len() >= self.cfg.max_signals {
            self.stats.signals_over_cap += 1;
            return false;
        }
        self.tracked.insert(s.clone());
        true
    }

    fn count(&mut self, start: i64, s: Signal) {
        if !self.track(&s) {
            return;
        }
        if !self.counted.contains(&s) {
            self.counted.insert(s.clone());
            self.count_signals.insert(s.clone());
        }
        *self
            .windows
            .entry(start)
            .or_default()
            .counts
            .entry(s)
            .or_default() += 1;
    }

    fn log(&mut self, start: i64, r: &LogRecord) {
        let base = |kind, name: &str| Signal {
            kind,
            name: name.to_string(),
            service: r.service.clone(),
            host: None,
            container: None,
        };
        self.count(start, base(SignalKind::LogRate, ""));
        // Error and warning counts exist from a service's first record, so
        // their zeros before the first error are part of the baseline.
        let errors = base(SignalKind::ErrorRate, "");
        let warns = base(SignalKind::WarnRate, "");
        for s in [&errors, &warns] {
            if self.track(s) && !self.counted.contains(s) {
                self.counted.insert(s.clone());
                self.count_signals.insert(s.clone());
            }
        }
        match r.level {
            Some(l) if l.is_error() => self.count(start, errors),
            Some(Level::Warn) => self.count(start, warns),
            _ => {}
        }
        if let Some(status) = r.fields.get("status").and_then(|v| v.as_f64()) {
            if (100.0..600.0).contains(&status) {
                let class = format!("{}xx", (status as u32) / 100);
                self.count(start, base(SignalKind::StatusClass, &class));
            }
        }
        if self.cfg.template_counts {
            if let Some(t) = &r.template_id {
                self.count(start, base(SignalKind::TemplateCount, t));
            }
        }
        if let Some(d) = r.fields.get("duration_seconds").and_then(|v| v.as_f64()) {
            if d.is_finite() && d >= 0.0 {
                let s = base(SignalKind::LatencyQuantile, "");
                if self.track(&s) {
                    let cap = self.cfg.max_latency_samples;
                    let v = self
                        .windows
                        .entry(start)
                        .or_default()
                        .latencies
                        .entry(s)
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
    }

    fn metric(&mut self, start: i64, m: &MetricSample) {
        if !m.value.is_finite() {
            return;
        }
        let name = &m.key.name;
        if let Some(le) = m.key.label("le") {
            if m.kind == MetricKind::Histogram || name.ends_with("_bucket") {
                let Ok(bound) = parse_le(le) else { return };
                let s = match self.bucket_signals.get(&m.key) {
                    Some(s) => s.clone(),
                    None => {
                        let mut labels = m.key.labels.clone();
                        labels.remove("le");
                        let base = SeriesKey {
                            name: name.trim_end_matches("_bucket").to_string(),
                            labels,
                        };
                        let s = metric_signal(SignalKind::LatencyQuantile, &base);
                        if self.bucket_signals.len() < self.cfg.max_signals {
                            self.bucket_signals.insert(m.key.clone(), s.clone());
                        }
                        s
                    }
                };
                if !self.track(&s) {
                    return;
                }
                self.windows.entry(start).or_default();
                self.buckets_now
                    .entry(s)
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
        if is_counter {
            let s = self.metric_signal(SignalKind::CounterRate, &m.key);
            if !self.track(&s) {
                return;
            }
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
            if self.counters.get(&m.key).is_none_or(|p| m.timestamp > p.at) {
                self.counters.insert(
                    m.key.clone(),
                    CounterState {
                        at: m.timestamp,
                        value: m.value,
                    },
                );
            }
            if let Some(rate) = rate {
                self.windows.entry(start).or_default().rates.insert(s, rate);
            }
            return;
        }
        let s = self.metric_signal(SignalKind::MetricSeries, &m.key);
        if !self.track(&s) {
            return;
        }
        let w = self.windows.entry(start).or_default();
        match w.gauges.get(&s) {
            Some((at, _)) if *at > m.timestamp => {}
            _ => {
                w.gauges.insert(s, (m.timestamp, m.value));
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

    fn emit(&mut self, start: i64, mut w: Window, out: &mut Vec<SignalPoint>) {
        self.stats.windows += 1;
        let ts = Timestamp::from_millis(start);
        let mut points: BTreeMap<Signal, f64> = BTreeMap::new();
        for s in &self.count_signals {
            points.insert(s.clone(), w.counts.remove(s).unwrap_or(0) as f64);
        }
        for (s, (_, v)) in w.gauges {
            points.insert(s, v);
        }
        for (s, v) in w.rates {
            points.insert(s, v);
        }
        for (s, mut v) in w.latencies {
            v.sort_by(f64::total_cmp);
            for (q, name) in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")] {
                // Nearest rank: the smallest value with at least q of the samples
                // at or below it.
                let idx = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
                let mut s = s.clone();
                s.name = name.to_string();
                points.insert(s, v[idx]);
            }
        }
        // Histograms: quantiles of the increase of each bucket since the
        // previous window, as Prometheus' histogram_quantile over a rate.
        let now: Vec<(Signal, BTreeMap<OrdF64, f64>)> = self.buckets_now.drain().collect();
        for (s, cum) in now {
            let prev = self.buckets.get(&s);
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
                        let mut s = s.clone();
                        s.name = format!("{name}:{}", s.name);
                        points.insert(s, v);
                    }
                }
            }
            self.buckets.insert(s, cum);
        }
        out.extend(points.into_iter().map(|(signal, value)| SignalPoint {
            signal,
            timestamp: ts,
            value,
        }));
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

/// The signal of a metric series, scoped by the labels that name where it
/// runs (`service`/`job`, `host`/`instance`/`node`, `container`/`pod`).
fn metric_signal(kind: SignalKind, key: &SeriesKey) -> Signal {
    let pick = |names: &[&str]| names.iter().find_map(|n| key.label(n)).map(str::to_string);
    Signal {
        kind,
        name: key.to_string(),
        service: pick(&["service", "job", "app"]),
        host: pick(&["host", "node", "instance"]),
        container: pick(&["container", "container_name", "pod"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::FieldValue;

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
