//! Remediation actions and their lifecycle.

use crate::{RootCauseClass, Target, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

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
        self.action_name().is_destructive()
    }

    /// Which action this is, without its settings.
    pub fn action_name(&self) -> ActionName {
        match self {
            ActionKind::Prune { .. } => ActionName::Prune,
            ActionKind::Offload { .. } => ActionName::Offload,
            ActionKind::Restart { .. } => ActionName::Restart,
            ActionKind::Notify { .. } => ActionName::Notify,
        }
    }

    /// Short name: `prune`, `offload`, `restart`, `notify`.
    pub fn name(&self) -> &'static str {
        self.action_name().as_str()
    }
}

/// An action's name: the `type` tag of [`ActionKind`] without its
/// settings. It is what a policy's `require_approval` and
/// `execution.executors` keys, the execution ledger and the audit trail
/// name, so those lists are checked against this one enum instead of
/// repeating the names as strings; its serde form is the same lowercase
/// word as the tag.
///
/// A new action is a variant here and in [`ActionKind`] (the exhaustive
/// matches below and in the test make the compiler list what else to
/// write), and an executor that claims it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionName {
    /// [`ActionKind::Prune`].
    Prune,
    /// [`ActionKind::Restart`].
    Restart,
    /// [`ActionKind::Offload`].
    Offload,
    /// [`ActionKind::Notify`].
    Notify,
}

impl ActionName {
    /// Every action, in the order the policy documents them.
    pub const ALL: [ActionName; 4] = [
        ActionName::Prune,
        ActionName::Restart,
        ActionName::Offload,
        ActionName::Notify,
    ];

    /// The name on the wire and in the policy.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionName::Prune => "prune",
            ActionName::Restart => "restart",
            ActionName::Offload => "offload",
            ActionName::Notify => "notify",
        }
    }

    /// Whether the action changes or removes anything: destructive actions
    /// are the ones cooldowns, the rate limit and the service lists hold
    /// back; a notification only tells a person.
    pub fn is_destructive(self) -> bool {
        match self {
            ActionName::Prune | ActionName::Restart | ActionName::Offload => true,
            ActionName::Notify => false,
        }
    }
}

impl fmt::Display for ActionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an action; its message lists the ones that are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAction(pub String);

impl fmt::Display for UnknownAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown action {:?}; use one of ", self.0)?;
        for (i, a) in ActionName::ALL.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{a}")?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownAction {}

impl FromStr for ActionName {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<ActionName, UnknownAction> {
        ActionName::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAction(s.to_string()))
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

    /// One sample per kind: the match makes a new [`ActionKind`] variant a
    /// compile error here until it has a sample, so the checks below cover
    /// every action.
    fn samples() -> Vec<ActionKind> {
        let all = vec![
            ActionKind::Prune {
                scope: vec![PruneScope::BuildCache],
                filters: PruneFilters::default(),
            },
            ActionKind::Restart {
                graceful_timeout_secs: 30,
            },
            ActionKind::Offload {
                mode: OffloadMode::ColdData,
                min_age_secs: None,
                min_size_bytes: None,
            },
            ActionKind::Notify {
                channel: "ops".into(),
                message: "m".into(),
            },
        ];
        for k in &all {
            match k {
                ActionKind::Prune { .. }
                | ActionKind::Restart { .. }
                | ActionKind::Offload { .. }
                | ActionKind::Notify { .. } => {}
            }
        }
        all
    }

    #[test]
    fn action_names_are_the_type_tags_and_all_lists_each_once() {
        let kinds = samples();
        let names: Vec<ActionName> = kinds.iter().map(ActionKind::action_name).collect();
        for n in ActionName::ALL {
            assert_eq!(names.iter().filter(|m| **m == n).count(), 1, "{n}");
        }
        assert_eq!(names.len(), ActionName::ALL.len());
        for k in &kinds {
            let n = k.action_name();
            assert_eq!(serde_json::to_value(k).unwrap()["type"], n.as_str());
            assert_eq!(serde_json::to_value(n).unwrap(), n.as_str());
            assert_eq!(n.as_str().parse::<ActionName>(), Ok(n));
            assert_eq!(k.name(), n.to_string());
        }
        let e = "reboot".parse::<ActionName>().unwrap_err().to_string();
        assert!(e.contains("reboot") && e.contains("notify"), "{e}");
    }
}
