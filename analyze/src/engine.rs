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

use crate::correlate::{Correlator, CorrelatorConfig};
use crate::detect::{CountDetector, DetectorConfig, LeakDetector, SeriesDetector};
use crate::signals::{SignalAggregator, SignalConfig, SignalPoint, SignalStats};
use models::{Anomaly, AnomalyKind, Band, Event, Incident, Signal, SignalKind};
use std::collections::HashMap;

/// Engine settings.
#[derive(Debug, Clone, Default)]
pub struct AnalyzerConfig {
    /// Windows and caps.
    pub signals: SignalConfig,
    /// Series detector settings.
    pub detector: DetectorConfig,
    /// Grouping and ranking.
    pub correlator: CorrelatorConfig,
}

/// Windows summed for count tests: sparse services log a few lines per
/// window, and a test on one window alone would need a handful of errors in
/// 15 seconds before it could tell a burst from chance.
const COUNT_SPAN: usize = 4;

enum Det {
    /// The count test, over a sliding sum of the last [`COUNT_SPAN`] windows.
    Count(CountDetector, std::collections::VecDeque<f64>),
    Series(Box<SeriesDetector>),
    /// Resource gauges: level and slope; either alerts.
    Resource(Box<SeriesDetector>, LeakDetector),
}

/// What the engine produced since the caller last drained it.
#[derive(Debug, Default)]
pub struct AnalyzerOutput {
    /// Anomalies, in event-time order.
    pub anomalies: Vec<Anomaly>,
    /// Incidents that resolved.
    pub incidents: Vec<Incident>,
}

/// The engine. See the module docs.
pub struct Analyzer {
    cfg: AnalyzerConfig,
    agg: SignalAggregator,
    detectors: HashMap<Signal, (Det, bool)>,
    correlator: Correlator,
    points: Vec<SignalPoint>,
}

/// Which signals are watched, and how.
fn detector_for(s: &Signal, cfg: &DetectorConfig) -> Option<Det> {
    match s.kind {
        SignalKind::ErrorRate | SignalKind::WarnRate => {
            Some(Det::Count(CountDetector::default(), Default::default()))
        }
        SignalKind::StatusClass if s.name == "5xx" => {
            Some(Det::Count(CountDetector::default(), Default::default()))
        }
        SignalKind::LatencyQuantile if s.name.starts_with("p99") => {
            Some(Det::Series(Box::new(SeriesDetector::new(DetectorConfig {
                upward_only: true,
                ..service(cfg)
            }))))
        }
        SignalKind::CounterRate if is_error_name(&s.name) => {
            Some(Det::Series(Box::new(SeriesDetector::new(DetectorConfig {
                upward_only: true,
                ..service(cfg)
            }))))
        }
        // Request counters measure load, not health: traffic follows the
        // day and is not a fault by itself.
        SignalKind::CounterRate if s.name.contains("requests") => None,
        SignalKind::MetricSeries if is_leak_prone(&s.name) => Some(Det::Resource(
            Box::new(SeriesDetector::new(service(cfg))),
            LeakDetector::default(),
        )),
        SignalKind::MetricSeries | SignalKind::CounterRate => {
            Some(Det::Series(Box::new(SeriesDetector::new(service(cfg)))))
        }
        _ => None,
    }
}

/// Service signals need two anomalous windows in a row: a fault lasts
/// minutes, a one-window blip is noise.
fn service(cfg: &DetectorConfig) -> DetectorConfig {
    DetectorConfig {
        min_consecutive: 2,
        ..cfg.clone()
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
        Analyzer {
            agg: SignalAggregator::new(cfg.signals.clone()),
            correlator: Correlator::new(cfg.correlator.clone()),
            cfg,
            detectors: HashMap::new(),
            points: Vec::new(),
        }
    }

    /// Signal counters.
    pub fn signal_stats(&self) -> SignalStats {
        self.agg.stats()
    }

    /// Fold in one event.
    pub fn push(&mut self, event: &Event, out: &mut AnalyzerOutput) {
        if let Event::Change(c) = event {
            self.correlator.observe_change(c);
        }
        self.points.clear();
        self.agg.push(event, &mut self.points);
        self.score_points(out);
    }

    /// End of input: close every window and return open incidents as they stand.
    pub fn finish(&mut self, out: &mut AnalyzerOutput) {
        self.points.clear();
        self.agg.finish(&mut self.points);
        self.score_points(out);
        out.incidents.extend(self.correlator.finish());
    }

    fn score_points(&mut self, out: &mut AnalyzerOutput) {
        let points = std::mem::take(&mut self.points);
        for p in &points {
            if !self.detectors.contains_key(&p.signal) {
                match detector_for(&p.signal, &self.cfg.detector) {
                    Some(d) => {
                        self.detectors.insert(p.signal.clone(), (d, false));
                    }
                    None => continue,
                }
            }
            let (det, was_alert) = self.detectors.get_mut(&p.signal).expect("inserted");
            let s = match det {
                Det::Count(d, recent) => {
                    recent.push_back(p.value);
                    if recent.len() > COUNT_SPAN {
                        recent.pop_front();
                    }
                    d.observe(recent.iter().sum())
                }
                Det::Series(d) => d.observe(p.value),
                Det::Resource(level, slope) => {
                    let a = level.observe(p.value);
                    let b = slope.observe(p.value);
                    if b.alert && !a.alert {
                        b
                    } else {
                        a
                    }
                }
            };
            let opened = s.alert && !*was_alert;
            *was_alert = s.alert;
            out.incidents.extend(self.correlator.advance(p.timestamp));
            if s.alert {
                self.correlator.touch(&p.signal, p.timestamp);
            }
            if opened {
                let spread = if s.spread.is_finite() { s.spread } else { 0.0 };
                let expected = if s.expected.is_finite() {
                    s.expected
                } else {
                    0.0
                };
                let a = Anomaly {
                    signal: p.signal.clone(),
                    timestamp: p.timestamp,
                    observed: p.value,
                    expected: Band {
                        lower: expected - 3.0 * spread,
                        expected,
                        upper: expected + 3.0 * spread,
                    },
                    score: s.score.max(0.5),
                    kind: kind_of(&p.signal, p.value > expected),
                    detector: match det {
                        Det::Count(..) => "poisson_count",
                        Det::Series(_) => "robust_series",
                        Det::Resource(..) => "level_and_slope",
                    }
                    .into(),
                    detail: format!("{:.4} observed, {:.4} expected", p.value, expected),
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
}
