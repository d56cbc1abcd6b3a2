//! Remedy analyze: turns records into signals, signals into anomalies, and
//! anomalies into incidents with ranked root causes.
//!
//! - [`signals`]: event-time windows with a watermark; log records become
//!   error, warning, status-class and template counts and latency quantiles
//!   per service, metric samples become one value per series and window
//!   (counter rates with resets handled, histogram quantiles).
//! - [`detector`]: the [`Detector`] trait every detector implements
//!   (observe a point, give a score and a decision, name itself, serialise
//!   for checkpoints) and the alert logic they share (hysteresis,
//!   hold-off).
//! - [`detectors`]: the detectors, one module each, and the registry:
//!   which detector the engine runs on each signal ([`detectors::for_signal`])
//!   and the methods of `remedy detect` ([`detectors::METHODS`]).
//! - [`traces`]: calls and error origins learned from the trace ids in logs.
//! - [`mix`], [`session`], [`invariant`]: what a service logs (its mix of
//!   templates, a statement that stops), what a session (a trace or
//!   request) goes through, and statements that requests wrote together
//!   going missing from them.
//! - [`correlate`]: groups anomalies into incidents by time, shared
//!   service/host/container and the dependency topology, resolves them when
//!   they go quiet, and ranks root-cause candidates with their evidence.
//!
//! **Invariant:** no I/O and no wall clock: the same events in the same
//! order give the same output, which is what lets replay and streaming share
//! this code.

#![deny(missing_docs)]

pub mod correlate;
pub mod detector;
pub mod detectors;
pub mod engine;
mod hash;
pub mod invariant;
pub mod mix;
pub mod recurrence;
pub mod session;
pub mod signals;
pub mod traces;

pub use correlate::{Correlator, CorrelatorConfig};
pub use detector::{Context, Detector, NoContext, Point, Score};
pub use detectors::baseline::{
    BaselineConfig, BaselineDetector, BaselineDetectorConfig, Expectation, SeasonalBaseline,
};
pub use detectors::count::CountDetector;
pub use detectors::ensemble::{EnsembleConfig, EnsembleDetector, DEFAULT_THRESHOLD};
pub use detectors::leak::{LeakDetector, LevelAndSlope};
pub use detectors::share::{RatioDetector, RecordShare, SharePrior};
pub use detectors::threshold::{StaticBand, StaticThreshold};
pub use detectors::window::{DetectorConfig, SeriesDetector};
pub use detectors::{baseline, ensemble};
pub use detectors::{AnyDetector, DetectorMode, Method, METHODS};
pub use engine::{
    Analyzer, AnalyzerConfig, AnalyzerOutput, AnalyzerState, AnalyzerStateOwned, TracePoint,
};
pub use session::{SessionConfig, SessionDetector};
pub use signals::{SignalAggregator, SignalConfig, SignalPoint, SignalStats};
pub use traces::{TraceFinding, TraceTracker};
