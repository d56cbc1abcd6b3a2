//! Remedy analyze: turns records into signals, signals into anomalies, and
//! anomalies into incidents with ranked root causes.
//!
//! - [`signals`]: event-time windows with a watermark; log records become
//!   error, warning, status-class and template counts and latency quantiles
//!   per service, metric samples become one value per series and window
//!   (counter rates with resets handled, histogram quantiles).
//! - [`ensemble`]: the default detector of `remedy detect` for one series
//!   (level, step, daily and weekly predictors with calibrated tails).
//! - [`traces`]: calls and error origins learned from the trace ids in logs.
//! - [`correlate`]: groups anomalies into incidents by time, shared
//!   service/host/container and the dependency topology, resolves them when
//!   they go quiet, and ranks root-cause candidates with their evidence.
//!
//! **Invariant:** no I/O and no wall clock: the same events in the same
//! order give the same output, which is what lets replay and streaming share
//! this code.

#![deny(missing_docs)]

pub mod baseline;
pub mod correlate;
pub mod detect;
pub mod engine;
pub mod ensemble;
mod hash;
pub mod session;
pub mod signals;
pub mod traces;

pub use baseline::{
    BaselineConfig, BaselineDetector, BaselineDetectorConfig, Expectation, SeasonalBaseline,
};
pub use correlate::{Correlator, CorrelatorConfig};
pub use detect::{
    CountDetector, DetectorConfig, LeakDetector, RatioDetector, Score, SeriesDetector,
};
pub use engine::{
    Analyzer, AnalyzerConfig, AnalyzerOutput, AnalyzerState, AnalyzerStateOwned, DetectorMode,
    TracePoint,
};
pub use ensemble::{EnsembleConfig, EnsembleDetector, DEFAULT_THRESHOLD};
pub use session::{SessionConfig, SessionDetector};
pub use signals::{SignalAggregator, SignalConfig, SignalPoint, SignalStats};
pub use traces::{TraceFinding, TraceTracker};
