//! The detectors, and the registry: the one place that says which
//! detectors exist, which one the engine runs on each signal, and which
//! ones `remedy detect --method` offers.
//!
//! Each detector lives in its own module and implements
//! [`crate::detector::Detector`]. This file registers them:
//!
//! - [`AnyDetector`] holds any registered detector. It is an enum, not a
//!   `Box<dyn Detector>`, because the engine checkpoints every signal's
//!   detector: serde's enum tag records which detector a stored state
//!   belongs to, with no type registry at run time, and dispatch is a match
//!   the compiler can see through (this runs for every point of every
//!   signal). The variant names are the checkpoint's tags: renaming one
//!   breaks old checkpoints, adding one does not.
//! - [`for_signal`] chooses the engine's detector for a signal (per
//!   [`DetectorMode`]), with the settings shared by every signal of a kind
//!   ([`Settings`]).
//! - [`METHODS`] are the lone-series methods of `remedy detect`, whose
//!   `--method` values, help and default the CLI derives from this list.
//!
//! **Adding a detector** touches two files: its module here (the type, its
//! [`crate::detector::Detector`] impl and a test on a small hand-made
//! series with a known answer), and this file (the `mod` line, one line in
//! `registry!`, and a line in [`for_signal`] or [`METHODS`] saying where it
//! runs).

pub mod baseline;
pub mod count;
pub mod ensemble;
pub mod leak;
pub mod share;
pub mod tails;
pub mod threshold;
pub mod window;

use crate::detector::{Detector, Point, Score};
use baseline::{BaselineDetector, BaselineDetectorConfig};
use ensemble::{EnsembleConfig, EnsembleDetector};
use leak::{LeakDetector, LevelAndSlope};
use models::{Signal, SignalKind};
use serde::{Deserialize, Serialize};
use share::RecordShare;
use std::sync::Arc;
use threshold::{StaticBand, StaticThreshold};
use window::{DetectorConfig, SeriesDetector};

/// Declares [`AnyDetector`] with one line per detector (`Tag(Type)`) and
/// dispatches the [`Detector`] methods to the variant's type, so a
/// registration is that one line.
macro_rules! registry {
    ($($(#[$doc:meta])* $tag:ident($ty:ty),)*) => {
        /// Any registered detector: what the engine keeps per signal and
        /// `remedy detect` runs. Serialises with its variant name as the tag.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        pub enum AnyDetector {
            $($(#[$doc])* $tag($ty),)*
        }

        impl Detector for AnyDetector {
            fn name(&self) -> &'static str {
                match self {
                    $(AnyDetector::$tag(d) => d.name(),)*
                }
            }

            fn observe(&mut self, point: &Point<'_>) -> Score {
                match self {
                    $(AnyDetector::$tag(d) => d.observe(point),)*
                }
            }

            fn exhausting(&self) -> bool {
                match self {
                    $(AnyDetector::$tag(d) => d.exhausting(),)*
                }
            }

            fn learned_share(&self) -> Option<(f64, f64)> {
                match self {
                    $(AnyDetector::$tag(d) => d.learned_share(),)*
                }
            }
        }
    };
}

// Big detectors are boxed so that every signal's slot stays small.
registry! {
    /// A service's error, warning or 5xx records as a share of its records.
    Ratio(RecordShare),
    /// A series against its seasonal baseline.
    Series(Box<BaselineDetector>),
    /// A leak-prone gauge: level and slope.
    Resource(LevelAndSlope),
    /// An operator's static rule.
    Threshold(StaticThreshold),
    /// `remedy detect`'s default: the calibrated ensemble.
    Ensemble(Box<EnsembleDetector>),
    /// Robust z-scores against a trailing window.
    Window(Box<SeriesDetector>),
    /// A band learned once from the first rows.
    Band(StaticBand),
}

/// How the engine judges signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DetectorMode {
    /// Baselines learned per signal (share tests, seasonal baselines,
    /// slopes).
    #[default]
    Dynamic,
    /// Fixed thresholds held for a duration, as operators write them
    /// ("memory above 80% of its limit for 5 minutes"): the comparison
    /// point for the dynamic detectors.
    Static,
}

/// The detector settings the engine uses, built once and shared by every
/// signal of a kind: each signal's detector then holds a pointer, not a
/// copy.
#[derive(Debug, Clone)]
pub struct Settings {
    mode: DetectorMode,
    /// Service signals: two anomalous windows in a row.
    level: Arc<BaselineDetectorConfig>,
    /// Only rises count (latency, error counters).
    upward: Arc<BaselineDetectorConfig>,
    /// Histogram quantiles: a quantile interpolated inside histogram
    /// buckets jumps by a bucket's width whenever a few slow requests land
    /// in the next bucket, so it must stay high for a minute, not 30 s.
    bucketed: Arc<BaselineDetectorConfig>,
}

impl Settings {
    /// The settings of `mode`, series detectors tuned from `cfg`.
    pub fn new(mode: DetectorMode, cfg: &DetectorConfig) -> Self {
        let level = service(cfg);
        let upward = BaselineDetectorConfig {
            upward_only: true,
            ..level.clone()
        };
        let bucketed = BaselineDetectorConfig {
            min_consecutive: 4,
            ..upward.clone()
        };
        Settings {
            mode,
            level: Arc::new(level),
            upward: Arc::new(upward),
            bucketed: Arc::new(bucketed),
        }
    }

    /// Whether the engine should keep the latest value of `s` as a limit
    /// (for [`crate::detector::Context::limit`]): the static rules divide
    /// by limits, and the leak detector projects a climb onto its limit.
    pub fn keeps_limit(&self, s: &Signal) -> bool {
        s.kind == SignalKind::MetricSeries
            && threshold::LIMIT_METRICS.contains(&metric_name(&s.name))
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

/// The engine's detector for a signal, or `None` if the signal is not
/// judged at all.
pub fn for_signal(s: &Signal, settings: &Settings) -> Option<AnyDetector> {
    if settings.mode == DetectorMode::Static {
        return threshold::static_rule(s).map(|r| AnyDetector::Threshold(StaticThreshold::new(r)));
    }
    let series = |cfg: &Arc<BaselineDetectorConfig>| Box::new(BaselineDetector::new(cfg.clone()));
    match s.kind {
        SignalKind::ErrorRate | SignalKind::WarnRate => {
            Some(AnyDetector::Ratio(Default::default()))
        }
        SignalKind::StatusClass if s.name == "5xx" => Some(AnyDetector::Ratio(Default::default())),
        // One exception class's share of the service's records: a class
        // that surges stands out even when the service's other errors
        // hide it in the error share.
        SignalKind::ExceptionCount => Some(AnyDetector::Ratio(Default::default())),
        // Quantiles from histograms are named `p99:<histogram>`.
        SignalKind::LatencyQuantile if s.name.starts_with("p99:") => {
            Some(AnyDetector::Series(series(&settings.bucketed)))
        }
        SignalKind::LatencyQuantile if s.name.starts_with("p99") => {
            Some(AnyDetector::Series(series(&settings.upward)))
        }
        SignalKind::CounterRate if is_error_name(&s.name) => {
            Some(AnyDetector::Series(series(&settings.upward)))
        }
        // Request counters measure load, not health: traffic follows the
        // day and is not a fault by itself.
        SignalKind::CounterRate if s.name.contains("requests") => None,
        SignalKind::MetricSeries if is_leak_prone(&s.name) => Some(AnyDetector::Resource(
            LevelAndSlope(series(&settings.level), {
                let d = threshold::limit_of(s)
                    .map_or_else(LeakDetector::default, LeakDetector::with_limit);
                let name = s.name.to_ascii_lowercase();
                if name.contains("heap") {
                    d.managed()
                } else if name.contains("memory") {
                    d.beside_heap()
                } else {
                    d
                }
            }),
        )),
        SignalKind::MetricSeries | SignalKind::CounterRate => {
            Some(AnyDetector::Series(series(&settings.level)))
        }
        _ => None,
    }
}

/// The metric name of a series key such as `up{job="api"}`.
pub fn metric_name(series: &str) -> &str {
    series.split('{').next().unwrap_or(series)
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
pub fn is_error_name(name: &str) -> bool {
    name.contains("5xx") || name.contains("error") || name.contains("fail") || name.contains("=\"5")
}

/// A method of `remedy detect`: a detector for one series on its own.
#[derive(Debug, Clone, Copy)]
pub struct Method {
    /// The `--method` value.
    pub name: &'static str,
    /// What it does, in a phrase (the option's summary lists these).
    pub summary: &'static str,
    /// What it does, in a sentence (the value's help).
    pub help: &'static str,
    /// A detector with no history.
    pub new: fn() -> AnyDetector,
}

/// The methods of `remedy detect`, the default first. The CLI takes its
/// `--method` values, their help and the default from this list.
pub const METHODS: &[Method] = &[
    Method {
        name: "ensemble",
        summary: "level, step, daily and weekly predictors with calibrated tails",
        help: "Level, step, daily and weekly predictors, the best listened to, and runs of \
               repeated values, with peaks-over-threshold tails and onset reporting; `label` \
               is 1 on the one row where an episode reaches `analyze::DEFAULT_THRESHOLD`",
        new: || AnyDetector::Ensemble(Box::new(EnsembleDetector::new(EnsembleConfig::default()))),
    },
    Method {
        name: "baseline",
        summary: "the seasonal dynamic baseline of `remedy replay`",
        help: "Seasonal dynamic baseline (level, trend, daily and weekly cycles)",
        new: || {
            AnyDetector::Series(Box::new(BaselineDetector::new(
                BaselineDetectorConfig::default(),
            )))
        },
    },
    Method {
        name: "window",
        summary: "robust median/MAD over a trailing window",
        help: "Robust z-score against a trailing window",
        new: || AnyDetector::Window(Box::new(SeriesDetector::new(DetectorConfig::default()))),
    },
    Method {
        name: "static",
        summary: "mean +/- 3 sd of the first 500 rows, the comparison point",
        help: "A static threshold, the comparison point: mean +/- 3 standard deviations of \
               the first [`STATIC_LEARN`] rows, fixed afterwards",
        new: || AnyDetector::Band(StaticBand::default()),
    },
];

/// The method called `name`.
pub fn method(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine's detectors as they were declared before the registry,
    /// to check that checkpoints keep their layout.
    #[derive(Serialize)]
    enum Before {
        Ratio(share::RatioDetector, std::collections::VecDeque<(f64, f64)>),
        Series(Box<BaselineDetector>),
        Resource(Box<BaselineDetector>, LeakDetector),
    }

    #[test]
    fn checkpoints_keep_the_layout_of_the_engine_detectors() {
        let settings = Settings::new(DetectorMode::Dynamic, &DetectorConfig::default());
        let signal = |kind, name: &str| Signal {
            kind,
            name: name.into(),
            service: Some("api".into()),
            host: None,
            container: None,
        };
        let ratio = for_signal(&signal(SignalKind::ErrorRate, "error"), &settings).unwrap();
        let series = for_signal(&signal(SignalKind::MetricSeries, "up"), &settings).unwrap();
        let resource = for_signal(
            &signal(SignalKind::MetricSeries, "process_open_fds"),
            &settings,
        )
        .unwrap();
        let AnyDetector::Series(b) = &series else {
            panic!("{series:?}")
        };
        let AnyDetector::Resource(LevelAndSlope(level, slope)) = &resource else {
            panic!("{resource:?}")
        };
        assert_eq!(
            json(&ratio),
            json(&Before::Ratio(Default::default(), Default::default()))
        );
        assert_eq!(json(&series), json(&Before::Series(b.clone())));
        assert_eq!(
            json(&resource),
            json(&Before::Resource(level.clone(), slope.clone()))
        );
    }

    fn json<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap()
    }

    #[test]
    fn the_engine_detectors_keep_their_names() {
        // The names are written into anomalies: part of the output.
        let dynamic = Settings::new(DetectorMode::Dynamic, &DetectorConfig::default());
        let fixed = Settings::new(DetectorMode::Static, &DetectorConfig::default());
        let signal = |kind, name: &str| Signal {
            kind,
            name: name.into(),
            service: Some("api".into()),
            host: None,
            container: None,
        };
        let name = |s: &Signal, settings: &Settings| for_signal(s, settings).map(|d| d.name());
        let errors = signal(SignalKind::ErrorRate, "");
        let fds = signal(
            SignalKind::MetricSeries,
            "process_open_fds{service=\"api\"}",
        );
        let load = signal(SignalKind::MetricSeries, "load1");
        let requests = signal(SignalKind::CounterRate, "http_requests_total");
        assert_eq!(name(&errors, &dynamic), Some("record_share"));
        assert_eq!(name(&fds, &dynamic), Some("level_and_slope"));
        assert_eq!(name(&load, &dynamic), Some("seasonal_baseline"));
        assert_eq!(name(&requests, &dynamic), None, "load is not a fault");
        assert_eq!(name(&errors, &fixed), Some("static_threshold"));
        assert_eq!(name(&fds, &fixed), Some("static_threshold"));
        assert_eq!(name(&load, &fixed), None, "no rule for it");
        let limit = signal(SignalKind::MetricSeries, "process_max_fds{service=\"api\"}");
        assert!(fixed.keeps_limit(&limit) && dynamic.keeps_limit(&limit));
        assert!(!dynamic.keeps_limit(&load));
    }

    #[test]
    fn every_method_runs_and_names_are_unique() {
        let mut names: Vec<&str> = METHODS.iter().map(|m| m.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), METHODS.len());
        for m in METHODS {
            let mut d = (m.new)();
            for i in 0..1000 {
                let s = d.observe(&Point::new(i as f64 * 300.0, (i % 7) as f64));
                assert!((0.0..=1.0).contains(&s.score), "{}: {s:?}", m.name);
            }
        }
        assert_eq!(method("window").map(|m| m.name), Some("window"));
        assert!(method("nope").is_none());
    }
}
