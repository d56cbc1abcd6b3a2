//! Remediation actions and their lifecycle.

use crate::{RootCauseClass, Target, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a prune may remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PruneScope {
    /// Images with no tag and no child.
    DanglingImages,
    /// Containers that have exited.
    ExitedContainers,
    /// Volumes no container uses (never a volume in use).
    UnusedVolumes,
    /// Builder cache.
    BuildCache,
    /// Networks no container uses.
    Networks,
}

/// Filters narrowing a prune, in the Docker Engine API's sense.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PruneFilters {
    /// Only objects older than this many seconds (`until`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than_secs: Option<u64>,
    /// Only objects carrying all these labels (`label=k=v`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Never objects carrying any of these labels (`label!=k=v`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exclude_labels: BTreeMap<String, String>,
}

/// How an offload relieves pressure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OffloadMode {
    /// Move cold data to another storage tier.
    ColdData,
    /// Shift load off a hot node or partition.
    Load,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ActionKind {
    /// Remove unused objects from a container engine.
    Prune {
        /// What to remove.
        scope: Vec<PruneScope>,
        /// Narrowing filters.
        #[serde(default)]
        filters: PruneFilters,
    },
    /// Move cold data or load elsewhere.
    Offload {
        /// Data or load.
        mode: OffloadMode,
        /// Only data older than this many seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_age_secs: Option<u64>,
        /// Only files larger than this many bytes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_size_bytes: Option<u64>,
    },
    /// Restart a container.
    Restart {
        /// Seconds to wait for a graceful stop before killing.
        graceful_timeout_secs: u64,
    },
    /// Tell a person; change nothing.
    Notify {
        /// Channel name from the policy.
        channel: String,
        /// Message.
        message: String,
    },
}

impl ActionKind {
    /// Whether the action changes or removes anything.
    pub fn is_destructive(&self) -> bool {
        !matches!(self, ActionKind::Notify { .. })
    }

    /// Short name: `prune`, `offload`, `restart`, `notify`.
    pub fn name(&self) -> &'static str {
        match self {
            ActionKind::Prune { .. } => "prune",
            ActionKind::Offload { .. } => "offload",
            ActionKind::Restart { .. } => "restart",
            ActionKind::Notify { .. } => "notify",
        }
    }
}

/// Where an action stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ActionStatus {
    /// Planned; waiting for execution (or approval).
    Planned,
    /// Approved by a person.
    Approved,
    /// Carried out.
    Executed,
    /// Tried and failed.
    Failed {
        /// What went wrong.
        reason: String,
    },
    /// Deliberately not done.
    Skipped {
        /// Which safety rule or policy decision said no.
        reason: String,
    },
}

impl ActionStatus {
    /// The `state` tag used in JSON: `planned`, `approved`, `executed`,
    /// `failed`, `skipped`.
    pub fn state(&self) -> &'static str {
        match self {
            ActionStatus::Planned => "planned",
            ActionStatus::Approved => "approved",
            ActionStatus::Executed => "executed",
            ActionStatus::Failed { .. } => "failed",
            ActionStatus::Skipped { .. } => "skipped",
        }
    }
}

/// One remediation step for one incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Action {
    /// Deterministic id (incident id + action name).
    pub id: String,
    /// The incident that asked for it.
    pub incident_id: String,
    /// The root-cause class it answers.
    pub class: RootCauseClass,
    /// What to do.
    pub kind: ActionKind,
    /// Where.
    pub target: Target,
    /// Lifecycle.
    pub status: ActionStatus,
    /// Dry-run actions are never executed, whatever their status.
    pub dry_run: bool,
    /// Whether a person must approve before it runs.
    #[serde(default)]
    pub requires_approval: bool,
    /// When it was planned (event time).
    pub planned_at: Timestamp,
    /// After execution: did the triggering signals return inside their
    /// bands? None until verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_the_json_tags() {
        for s in [
            ActionStatus::Planned,
            ActionStatus::Approved,
            ActionStatus::Executed,
            ActionStatus::Failed { reason: "x".into() },
            ActionStatus::Skipped { reason: "y".into() },
        ] {
            assert_eq!(serde_json::to_value(&s).unwrap()["state"], s.state());
        }
    }
}
