//! Incidents and their ranked root causes.

use crate::{Anomaly, ChangeEvent, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The classes of root cause Remedy can name. Each maps to a remediation in
/// the reclaim policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RootCauseClass {
    /// Disk filling with unused images, exited containers, unused volumes or
    /// build cache.
    DiskPressure,
    /// Memory growing until OOM.
    MemoryLeak,
    /// Open file descriptors growing toward the limit.
    FdLeak,
    /// Threads or goroutines growing without bound.
    ThreadLeak,
    /// CPU saturation, a hot partition or a queue backlog.
    CpuSaturation,
    /// Latency caused by another tenant of the same host.
    NoisyNeighbor,
    /// Timeouts or errors talking to a database or another service.
    DependencyFailure,
    /// Errors that start right after a deploy or configuration change.
    BadChange,
    /// None of the above could be established.
    Unknown,
}

impl RootCauseClass {
    /// All classes, in declaration order.
    pub const ALL: [RootCauseClass; 9] = [
        RootCauseClass::DiskPressure,
        RootCauseClass::MemoryLeak,
        RootCauseClass::FdLeak,
        RootCauseClass::ThreadLeak,
        RootCauseClass::CpuSaturation,
        RootCauseClass::NoisyNeighbor,
        RootCauseClass::DependencyFailure,
        RootCauseClass::BadChange,
        RootCauseClass::Unknown,
    ];

    /// The snake_case name used in JSON, labels and policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            RootCauseClass::DiskPressure => "disk_pressure",
            RootCauseClass::MemoryLeak => "memory_leak",
            RootCauseClass::FdLeak => "fd_leak",
            RootCauseClass::ThreadLeak => "thread_leak",
            RootCauseClass::CpuSaturation => "cpu_saturation",
            RootCauseClass::NoisyNeighbor => "noisy_neighbor",
            RootCauseClass::DependencyFailure => "dependency_failure",
            RootCauseClass::BadChange => "bad_change",
            RootCauseClass::Unknown => "unknown",
        }
    }
}

impl fmt::Display for RootCauseClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a root cause lies. At least one field is set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Target {
    /// Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// Why Remedy believes a root cause: what a person needs to trust it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Evidence {
    /// An anomalous signal, with observed against expected.
    Signal {
        /// The anomaly.
        anomaly: Box<Anomaly>,
    },
    /// A log template that concentrated during the incident.
    Template {
        /// Template id.
        template_id: String,
        /// Template text with `<*>` for variables.
        template: String,
        /// How many records matched during the incident.
        count: u64,
        /// Example lines.
        examples: Vec<String>,
    },
    /// A change shortly before onset.
    Change {
        /// The change.
        change: ChangeEvent,
    },
    /// Anything else, as a sentence.
    Note {
        /// The sentence.
        text: String,
    },
}

/// One candidate root cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RootCause {
    /// Class.
    pub class: RootCauseClass,
    /// Where.
    pub target: Target,
    /// Confidence in [0, 1].
    pub confidence: f64,
    /// Supporting evidence, strongest first.
    #[serde(default)]
    pub evidence: Vec<Evidence>,
}

/// Lifecycle of an incident in event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Signals still outside their bands.
    Open,
    /// Every signal back inside its band.
    Resolved,
}

impl IncidentStatus {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Open => "open",
            IncidentStatus::Resolved => "resolved",
        }
    }
}

/// A group of anomalies that share one fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Incident {
    /// Deterministic id (derived from onset and root target) so that a
    /// replayed or re-consumed input yields the same id: downstream
    /// consumers can de-duplicate on it.
    pub id: String,
    /// First anomaly.
    pub start: Timestamp,
    /// When it resolved (None while open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Timestamp>,
    /// Lifecycle.
    pub status: IncidentStatus,
    /// The anomalies grouped here.
    pub anomalies: Vec<Anomaly>,
    /// Ranked root causes, most likely first.
    pub root_causes: Vec<RootCause>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_json_names() {
        for s in [IncidentStatus::Open, IncidentStatus::Resolved] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for c in RootCauseClass::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }
}
