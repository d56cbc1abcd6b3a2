//! Static thresholds, the comparison point for the learned detectors:
//! [`StaticThreshold`], the fixed operator rules the engine runs with
//! `--detectors static` ("memory above 80% of its limit for 5 minutes"),
//! and [`StaticBand`], `remedy detect --method static` (mean +/- 3 standard
//! deviations of the first rows, fixed afterwards). Both learn nothing
//! that adapts: that is what they are there to show.

use crate::detector::{Detector, Hysteresis, Point, Score};
use models::{Signal, SignalKind};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// One static rule: the value (or its ratio to a limit series of the same
/// container or host) beyond a level for `windows` consecutive windows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdRule {
    above: bool,
    level: f64,
    windows: usize,
    /// Divide by the latest value of this metric for the same container
    /// (or host): `container_spec_memory_limit_bytes`, `process_max_fds`...
    ratio_of: Option<Cow<'static, str>>,
}

/// Five minutes of 15-second windows.
const FIVE_MIN: usize = 20;

/// The limit series static rules divide by: the engine keeps their latest
/// value per container or host (and answers [`crate::detector::Context::limit`]
/// with it) when it runs the static rules.
pub const LIMIT_METRICS: [&str; 3] = [
    "container_spec_memory_limit_bytes",
    "process_max_fds",
    "node_filesystem_size_bytes",
];

/// cAdvisor's container memory limit series.
pub const MEMORY_LIMIT: &str = "container_spec_memory_limit_bytes";

/// The limit series a resource gauge runs out against, where the data
/// names one: a container's memory limit, a process's descriptor limit
/// (the static rules divide by it; the leak detector projects its climb
/// onto it).
pub fn limit_of(s: &Signal) -> Option<&'static str> {
    let n = s.name.as_str();
    match s.kind {
        SignalKind::MetricSeries if n.starts_with("container_memory_working_set_bytes") => {
            Some(MEMORY_LIMIT)
        }
        SignalKind::MetricSeries if n.starts_with("process_open_fds") => Some("process_max_fds"),
        _ => None,
    }
}

/// The static rules, by what a signal measures. Levels are the usual
/// operator defaults.
pub fn static_rule(s: &Signal) -> Option<ThresholdRule> {
    let rule = |above, level, windows, ratio_of: Option<&'static str>| {
        Some(ThresholdRule {
            above,
            level,
            windows,
            ratio_of: ratio_of.map(Cow::Borrowed),
        })
    };
    let n = s.name.as_str();
    match s.kind {
        SignalKind::MetricSeries
            if n.starts_with("container_memory_working_set_bytes")
                || n.starts_with("process_open_fds") =>
        {
            rule(true, 0.8, FIVE_MIN, limit_of(s))
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

/// A static rule as a detector: in alert while the value has been beyond
/// the level for the rule's number of windows in a row, out of it at the
/// first window that is not (the shared [`Hysteresis`] with no calm period:
/// operators' rules have none). A ratio rule whose limit is unknown or not
/// positive judges nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaticThreshold(ThresholdRule, Hysteresis);

impl StaticThreshold {
    /// A detector for `rule`.
    pub fn new(rule: ThresholdRule) -> Self {
        StaticThreshold(rule, Hysteresis::default())
    }
}

impl Detector for StaticThreshold {
    fn name(&self) -> &'static str {
        "static_threshold"
    }

    fn observe(&mut self, p: &Point<'_>) -> Score {
        let rule = &self.0;
        let value = match &rule.ratio_of {
            Some(limit) => match p.context.limit(limit) {
                Some(l) if l > 0.0 => p.value / l,
                _ => f64::NAN,
            },
            None => p.value,
        };
        let beyond = value.is_finite()
            && if rule.above {
                value > rule.level
            } else {
                value < rule.level
            };
        let alert = self.1.update(beyond, !beyond, rule.windows, 1);
        Score {
            score: if beyond { 1.0 } else { 0.0 },
            alert,
            expected: rule.level,
            spread: 0.0,
        }
    }

    /// An operator's level for a resource (a share of its limit, or a
    /// count) is their statement that past it the resource is running out.
    fn exhausting(&self) -> bool {
        self.1.in_alert
    }
}

/// Rows a [`StaticBand`] is learned from.
pub const STATIC_LEARN: usize = 500;

/// The classic static rule for a lone series: learn a band once (mean +/-
/// 3 standard deviations of the first [`STATIC_LEARN`] finite values),
/// alert whenever a value is outside it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StaticBand {
    seen: Vec<f64>,
    band: Option<(f64, f64)>,
    alert: Hysteresis,
}

impl Detector for StaticBand {
    fn name(&self) -> &'static str {
        "static_band"
    }

    fn observe(&mut self, p: &Point<'_>) -> Score {
        let x = p.value;
        let outside = match self.band {
            Some((lo, hi)) => x.is_finite() && (x < lo || x > hi),
            None => false,
        };
        if self.band.is_none() && x.is_finite() {
            self.seen.push(x);
            if self.seen.len() >= STATIC_LEARN {
                let n = self.seen.len() as f64;
                let mean = self.seen.iter().sum::<f64>() / n;
                let sd = (self.seen.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
                self.band = Some((mean - 3.0 * sd, mean + 3.0 * sd));
                self.seen = Vec::new();
            }
        }
        Score {
            score: if outside { 1.0 } else { 0.0 },
            // Every point outside is an alert, every point inside ends one.
            alert: self.alert.update(outside, !outside, 1, 1),
            expected: f64::NAN,
            spread: f64::NAN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::Context;

    /// A context that knows one limit.
    struct Limit(f64);

    impl Context for Limit {
        fn limit(&self, _: &str) -> Option<f64> {
            Some(self.0)
        }
    }

    #[test]
    fn a_static_rule_alerts_after_its_windows_and_stops_at_once() {
        let signal = Signal {
            kind: SignalKind::MetricSeries,
            name: "process_open_fds{service=\"api\"}".into(),
            service: Some("api".into()),
            host: None,
            container: None,
        };
        let mut d = StaticThreshold::new(static_rule(&signal).expect("a rule"));
        let limit = Limit(1000.0);
        let at = |v: f64| Point {
            t: 0.0,
            value: v,
            context: &limit,
        };
        // 90% of the limit for 19 windows: not yet five minutes.
        assert!((0..FIVE_MIN - 1).all(|_| !d.observe(&at(900.0)).alert));
        assert!(d.observe(&at(900.0)).alert, "the twentieth window");
        assert!(d.observe(&at(950.0)).alert);
        assert!(!d.observe(&at(500.0)).alert, "one window below ends it");
        // Without a known limit a ratio rule judges nothing.
        let mut d = StaticThreshold::new(static_rule(&signal).expect("a rule"));
        assert!((0..50).all(|_| !d.observe(&Point::new(0.0, 900.0)).alert));
    }

    #[test]
    fn a_static_band_is_learned_once() {
        let mut d = StaticBand::default();
        for i in 0..STATIC_LEARN {
            let x = if i % 2 == 0 { 9.0 } else { 11.0 };
            assert!(!d.observe(&Point::new(i as f64, x)).alert);
        }
        // Mean 10, sd 1: the band is [7, 13].
        assert!(!d.observe(&Point::new(0.0, 12.9)).alert);
        assert!(d.observe(&Point::new(0.0, 13.1)).alert);
        assert!(!d.observe(&Point::new(0.0, f64::NAN)).alert);
    }
}
