//! Signals derived from records, and anomalies found on them.

use crate::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a signal measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// Error-level records per window.
    ErrorRate,
    /// Warning-level records per window.
    WarnRate,
    /// All records per window.
    LogRate,
    /// A latency quantile from duration/latency fields (the quantile is in
    /// the signal's `name`, e.g. `p99`).
    LatencyQuantile,
    /// Records of one HTTP status class (`5xx`) per window.
    StatusClass,
    /// Records of one log template per window.
    TemplateCount,
    /// Records carrying one exception class (their `exception.type`
    /// field, from a joined stack trace) per window: a surge is
    /// stack-trace concentration (the class is the signal's name).
    ExceptionCount,
    /// The mix of a service's log templates in a minute against its own
    /// history (a departure means the service took other paths).
    TemplateMix,
    /// A metric series as scraped.
    MetricSeries,
    /// A per-second rate derived from a counter series.
    CounterRate,
    /// Records grouped by a session id.
    Session,
}

impl SignalKind {
    /// Every kind.
    pub const ALL: [SignalKind; 11] = [
        SignalKind::ErrorRate,
        SignalKind::WarnRate,
        SignalKind::LogRate,
        SignalKind::LatencyQuantile,
        SignalKind::StatusClass,
        SignalKind::TemplateCount,
        SignalKind::ExceptionCount,
        SignalKind::TemplateMix,
        SignalKind::MetricSeries,
        SignalKind::CounterRate,
        SignalKind::Session,
    ];

    /// The snake_case name used in JSON and signal keys.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::ErrorRate => "error_rate",
            SignalKind::WarnRate => "warn_rate",
            SignalKind::LogRate => "log_rate",
            SignalKind::LatencyQuantile => "latency_quantile",
            SignalKind::StatusClass => "status_class",
            SignalKind::TemplateCount => "template_count",
            SignalKind::ExceptionCount => "exception_count",
            SignalKind::TemplateMix => "template_mix",
            SignalKind::MetricSeries => "metric_series",
            SignalKind::CounterRate => "counter_rate",
            SignalKind::Session => "session",
        }
    }
}

/// One measured quantity over time, scoped to where it was observed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Signal {
    /// What it measures.
    pub kind: SignalKind,
    /// Distinguishes signals of one kind: the series key for metrics, the
    /// template id for template counts, `p99` for latency quantiles.
    #[serde(default)]
    pub name: String,
    /// Service it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Host it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Container it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

impl fmt::Display for Signal {
    /// A stable, human-readable key such as `error_rate{service=checkout}`
    /// or, for metrics, `metric_series:up{job="api"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())?;
        if !self.name.is_empty() {
            write!(f, ":{}", self.name)?;
        }
        // A metric signal's name is already a series key with its labels;
        // repeating the scope after it adds nothing.
        if self.name.contains('{') {
            return Ok(());
        }
        let mut parts = Vec::new();
        if let Some(s) = &self.service {
            parts.push(format!("service={s}"));
        }
        if let Some(h) = &self.host {
            parts.push(format!("host={h}"));
        }
        if let Some(c) = &self.container {
            parts.push(format!("container={c}"));
        }
        if !parts.is_empty() {
            write!(f, "{{{}}}", parts.join(","))?;
        }
        Ok(())
    }
}

/// The expected range of a signal at one time, from its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Band {
    /// Lower edge of the normal range.
    pub lower: f64,
    /// The baseline's expectation.
    pub expected: f64,
    /// Upper edge of the normal range.
    pub upper: f64,
}

impl Band {
    /// Whether a value lies inside the band (edges included).
    pub fn contains(&self, v: f64) -> bool {
        v >= self.lower && v <= self.upper
    }
}

/// Which detector pattern an anomaly matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// Error rate far above its baseline.
    ErrorBurst,
    /// Latency far above its baseline.
    LatencySpike,
    /// A lasting change of level (change point).
    LevelShift,
    /// A log template never seen before (or very rare).
    NewTemplate,
    /// Memory, file descriptors or threads growing steadily toward a limit.
    ResourceLeak,
    /// A static threshold rule fired.
    ThresholdBreach,
    /// A session whose template sequence or counts are unusual.
    SessionAnomaly,
}

impl AnomalyKind {
    /// Every kind.
    pub const ALL: [AnomalyKind; 7] = [
        AnomalyKind::ErrorBurst,
        AnomalyKind::LatencySpike,
        AnomalyKind::LevelShift,
        AnomalyKind::NewTemplate,
        AnomalyKind::ResourceLeak,
        AnomalyKind::ThresholdBreach,
        AnomalyKind::SessionAnomaly,
    ];

    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::ErrorBurst => "error_burst",
            AnomalyKind::LatencySpike => "latency_spike",
            AnomalyKind::LevelShift => "level_shift",
            AnomalyKind::NewTemplate => "new_template",
            AnomalyKind::ResourceLeak => "resource_leak",
            AnomalyKind::ThresholdBreach => "threshold_breach",
            AnomalyKind::SessionAnomaly => "session_anomaly",
        }
    }
}

/// One anomalous observation of one signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Anomaly {
    /// The signal that misbehaved.
    pub signal: Signal,
    /// When (start of the window that was scored).
    pub timestamp: Timestamp,
    /// What was observed.
    pub observed: f64,
    /// What the baseline expected.
    pub expected: Band,
    /// Calibrated score in [0, 1]: one threshold works across signals.
    pub score: f64,
    /// Pattern.
    pub kind: AnomalyKind,
    /// Name of the detector that raised it.
    #[serde(default)]
    pub detector: String,
    /// Free-form explanation (e.g. "41 errors vs 3.2 expected, p=1e-9").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_the_json_names() {
        for k in SignalKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for k in AnomalyKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }

    #[test]
    fn signal_keys_read_well() {
        let s = Signal {
            kind: SignalKind::ErrorRate,
            name: String::new(),
            service: Some("checkout".into()),
            host: Some("node-2".into()),
            container: None,
        };
        assert_eq!(s.to_string(), "error_rate{service=checkout,host=node-2}");
        let m = Signal {
            kind: SignalKind::MetricSeries,
            name: r#"up{job="api"}"#.into(),
            service: Some("api".into()),
            host: None,
            container: None,
        };
        assert_eq!(m.to_string(), r#"metric_series:up{job="api"}"#);
    }
}
