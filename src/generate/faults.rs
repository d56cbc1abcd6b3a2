//! Fault scenarios: when each happens, where, and what it does to the
//! signals. Every fault is labelled with what a correct diagnosis says.

use models::RootCauseClass;
use serde::Serialize;

/// Scenario names accepted by `--scenario`.
pub const SCENARIOS: [&str; 10] = [
    "memory_leak",
    "fd_leak",
    "thread_leak",
    "disk_pressure",
    "cpu_saturation",
    "db_timeout",
    "bad_deploy",
    "noisy_neighbor",
    "quiet",
    "slow_release",
];

/// Scenarios `all` leaves out: added after `all`'s scenarios were fixed,
/// so that every seed's `all` stays byte-identical.
pub const NOT_IN_ALL: [&str; 2] = ["quiet", "slow_release"];

/// Where a fault lies.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FaultTarget {
    /// Service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// One injected fault, as written to `labels.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    /// `f1`, `f2`...
    pub id: String,
    /// Scenario name.
    pub scenario: &'static str,
    /// First symptom.
    pub start: String,
    /// Last symptom.
    pub end: String,
    /// Service where the fault originates.
    pub root_service: String,
    /// What a correct diagnosis points at.
    pub target: FaultTarget,
    /// Root-cause class.
    pub class: &'static str,
    /// The action the default policy should plan.
    pub expected_action: &'static str,
    /// Start in ms (internal).
    #[serde(skip)]
    pub start_ms: i64,
    /// End in ms (internal).
    #[serde(skip)]
    pub end_ms: i64,
}

impl Fault {
    /// Progress through the fault in [0, 1], or None outside it.
    pub fn progress(&self, t: i64) -> Option<f64> {
        (t >= self.start_ms && t < self.end_ms)
            .then(|| (t - self.start_ms) as f64 / (self.end_ms - self.start_ms) as f64)
    }
}

fn target(service: &str, host: Option<&str>, container: Option<&str>) -> FaultTarget {
    FaultTarget {
        service: Some(service.to_string()),
        host: host.map(str::to_string),
        container: container.map(str::to_string),
    }
}

/// What each scenario breaks, its class, action and length in minutes.
pub fn describe(
    scenario: &str,
) -> Option<(RootCauseClass, &'static str, &'static str, FaultTarget, i64)> {
    use RootCauseClass::*;
    Some(match scenario {
        "memory_leak" => (
            MemoryLeak,
            "restart",
            "checkout",
            target("checkout", Some("node-2"), Some("checkout-1")),
            30,
        ),
        "fd_leak" => (
            FdLeak,
            "restart",
            "payments",
            target("payments", Some("node-3"), Some("payments-2")),
            25,
        ),
        "thread_leak" => (
            ThreadLeak,
            "restart",
            "inventory",
            target("inventory", Some("node-1"), Some("inventory-1")),
            25,
        ),
        "disk_pressure" => (
            DiskPressure,
            "prune",
            "inventory",
            FaultTarget {
                service: None,
                host: Some("node-3".into()),
                container: None,
            },
            30,
        ),
        "cpu_saturation" => (
            CpuSaturation,
            "offload",
            "queue",
            target("queue", Some("node-4"), Some("queue-1")),
            20,
        ),
        "db_timeout" => (
            DependencyFailure,
            "notify",
            "database",
            target("database", Some("node-4"), Some("database-1")),
            15,
        ),
        "bad_deploy" => (
            BadChange,
            "notify",
            "checkout",
            target("checkout", None, None),
            15,
        ),
        // A release that is slower and fails nothing: only its latency
        // says so, from its deploy on, until it is rolled back.
        "slow_release" => (
            BadChange,
            "notify",
            "checkout",
            target("checkout", None, None),
            40,
        ),
        "noisy_neighbor" => (
            NoisyNeighbor,
            "offload",
            "gateway",
            FaultTarget {
                service: None,
                host: Some("node-1".into()),
                container: None,
            },
            15,
        ),
        _ => return None,
    })
}
