//! The remediation policy: which action answers which root cause, and the
//! safety rules every action passes first.
//!
//! ```toml
//! # Plan only; nothing is executed until this is false.
//! dry_run = true
//! max_actions_per_hour = 6
//! cooldown_secs = 1800
//! max_blast_radius_percent = 50
//! allow_services = []            # empty: any service
//! deny_services = ["database"]
//! deny_labels = { "remedy.io/protected" = "true" }
//! require_approval = ["restart", "prune", "offload"]
//! verify_after_secs = 900          # the signals must be back within this
//!
//! [[rules]]
//! class = "disk_pressure"
//! min_confidence = 0.5
//! action = { type = "prune", scope = ["dangling_images", "exited_containers", "build_cache"], filters = { older_than_secs = 86400 } }
//! ```

use crate::error::{Error, Result};
use models::{ActionKind, ActionName, OffloadMode, PruneFilters, PruneScope, RootCauseClass};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One mapping from a root-cause class to an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The class this rule answers.
    pub class: RootCauseClass,
    /// What to do.
    pub action: ActionKind,
    /// Below this root-cause confidence the action is skipped.
    #[serde(default = "default_min_confidence")]
    pub min_confidence: f64,
}

fn default_min_confidence() -> f64 {
    0.5
}

/// The policy file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Plan and audit, never execute. The default.
    pub dry_run: bool,
    /// Cap on destructive actions planned per rolling hour of event time.
    pub max_actions_per_hour: u32,
    /// Seconds before the same action may touch the same target again.
    pub cooldown_secs: u64,
    /// Never act on more than this share of a service's replicas at once.
    pub max_blast_radius_percent: u32,
    /// When not empty, only these services may be acted on.
    pub allow_services: Vec<String>,
    /// Services never acted on.
    pub deny_services: Vec<String>,
    /// Targets carrying any of these labels are never acted on.
    pub deny_labels: BTreeMap<String, String>,
    /// Actions (`prune`, `offload`, `restart`, `notify`) that wait for a
    /// person. Typed, so an unknown name fails to parse and names the
    /// actions there are.
    pub require_approval: Vec<ActionName>,
    /// Seconds after an action within which its incident's signals must be
    /// back inside their bands for the action to count as verified.
    pub verify_after_secs: u64,
    /// Class-to-action mappings; the first rule for a class wins.
    pub rules: Vec<Rule>,
    /// Which executor carries out each action, and how it reaches its
    /// system (used only when `dry_run` is false).
    pub execution: crate::exec::ExecutionConfig,
    /// Scheduled maintenance under the same safety rules.
    pub schedules: Vec<crate::exec::Schedule>,
}

impl Default for Policy {
    /// Dry-run, with the mappings the issue tracker agreed on: disk pressure
    /// prunes, leaks restart the leaking container, saturation offloads,
    /// dependency failures and bad changes only notify.
    fn default() -> Self {
        let restart = ActionKind::Restart {
            graceful_timeout_secs: 30,
        };
        let notify = |what: &str| ActionKind::Notify {
            channel: "log".into(),
            message: what.into(),
        };
        let rule = |class, action| Rule {
            class,
            action,
            min_confidence: default_min_confidence(),
        };
        Policy {
            dry_run: true,
            max_actions_per_hour: 6,
            cooldown_secs: 1800,
            max_blast_radius_percent: 50,
            allow_services: vec![],
            deny_services: vec![],
            deny_labels: BTreeMap::new(),
            require_approval: vec![ActionName::Restart, ActionName::Offload],
            verify_after_secs: 900,
            execution: Default::default(),
            schedules: vec![],
            rules: vec![
                rule(
                    RootCauseClass::DiskPressure,
                    ActionKind::Prune {
                        scope: vec![
                            PruneScope::DanglingImages,
                            PruneScope::ExitedContainers,
                            PruneScope::UnusedVolumes,
                            PruneScope::BuildCache,
                        ],
                        filters: PruneFilters {
                            older_than_secs: Some(3600),
                            ..Default::default()
                        },
                    },
                ),
                rule(RootCauseClass::MemoryLeak, restart.clone()),
                rule(RootCauseClass::FdLeak, restart.clone()),
                rule(RootCauseClass::ThreadLeak, restart),
                rule(
                    RootCauseClass::CpuSaturation,
                    ActionKind::Offload {
                        mode: OffloadMode::Load,
                        min_age_secs: None,
                        min_size_bytes: None,
                    },
                ),
                rule(
                    RootCauseClass::NoisyNeighbor,
                    ActionKind::Offload {
                        mode: OffloadMode::Load,
                        min_age_secs: None,
                        min_size_bytes: None,
                    },
                ),
                rule(
                    RootCauseClass::DependencyFailure,
                    notify("dependency failing; check the named dependency"),
                ),
                rule(
                    RootCauseClass::BadChange,
                    notify("errors began after a change; consider rolling it back"),
                ),
            ],
        }
    }
}

impl Policy {
    /// Parse and validate a TOML policy.
    pub fn from_toml(text: &str) -> Result<Policy> {
        let p: Policy = toml::from_str(text).map_err(|e| Error::Policy(e.to_string()))?;
        p.validate()?;
        Ok(p)
    }

    /// Check values that parse but make no sense.
    pub fn validate(&self) -> Result<()> {
        if self.max_blast_radius_percent == 0 || self.max_blast_radius_percent > 100 {
            return Err(Error::Policy(format!(
                "max_blast_radius_percent must be 1..=100, got {}",
                self.max_blast_radius_percent
            )));
        }
        for r in &self.rules {
            if !(0.0..=1.0).contains(&r.min_confidence) {
                return Err(Error::Policy(format!(
                    "rule for {}: min_confidence must be within 0..=1",
                    r.class
                )));
            }
            if let ActionKind::Prune { scope, .. } = &r.action {
                if scope.is_empty() {
                    return Err(Error::Policy(format!(
                        "rule for {}: a prune needs at least one scope",
                        r.class
                    )));
                }
            }
        }
        self.execution.validate()?;
        for s in &self.schedules {
            s.validate()?;
        }
        Ok(())
    }

    /// Whether actions named `name` wait for a person under this policy.
    pub fn needs_approval(&self, name: ActionName) -> bool {
        self.require_approval.contains(&name)
    }

    /// The rule for a class, if any.
    pub fn rule_for(&self, class: RootCauseClass) -> Option<&Rule> {
        self.rules.iter().find(|r| r.class == class)
    }
}

impl Policy {
    /// The checks of a target that the planner and, again at execution
    /// time, the driver both make: every identifier valid (a name from a
    /// log line never reaches an engine or a shell unchecked), and for a
    /// destructive action the service deny and allow lists. A target with
    /// no service under an allowlist is refused, except host-wide actions
    /// when `host_wide_ok` (the driver lets a planned host-wide prune
    /// through; the planner never plans one under an allowlist). Returns
    /// the reason code of a refusal.
    pub fn check_target(
        &self,
        action: &models::Action,
        host_wide_ok: bool,
    ) -> std::result::Result<(), String> {
        let t = &action.target;
        for id in [&t.service, &t.host, &t.container].into_iter().flatten() {
            if !crate::ident::is_valid_identifier(id) {
                let shown: String = id.chars().take(64).collect();
                return Err(format!("invalid_identifier: {shown:?}"));
            }
        }
        if !action.kind.is_destructive() {
            return Ok(());
        }
        match &t.service {
            Some(svc) if self.deny_services.iter().any(|d| d == svc) => {
                Err(format!("denied_service: {svc}"))
            }
            Some(svc)
                if !self.allow_services.is_empty()
                    && !self.allow_services.iter().any(|a| a == svc) =>
            {
                Err(format!("not_allowed_service: {svc}"))
            }
            Some(_) => Ok(()),
            // Host-wide (no container either) is the one target without a
            // service an allowlist lets through, and only at execution.
            None if self.allow_services.is_empty() || (host_wide_ok && t.container.is_none()) => {
                Ok(())
            }
            None => Err("not_allowed_service: target has no service".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_dry_run_and_round_trips_through_toml() {
        let p = Policy::default();
        assert!(p.dry_run);
        let text = toml::to_string(&p).unwrap();
        assert_eq!(Policy::from_toml(&text).unwrap(), p);
    }

    #[test]
    fn an_empty_file_is_the_default_policy() {
        assert_eq!(Policy::from_toml("").unwrap(), Policy::default());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = Policy::from_toml("dry_rn = false").unwrap_err().to_string();
        assert!(e.contains("dry_rn"), "{e}");
        let e = Policy::from_toml("max_blast_radius_percent = 0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_blast_radius_percent"), "{e}");
        let e = Policy::from_toml("require_approval = [\"reboot\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("reboot"), "{e}");
    }

    #[test]
    fn a_policy_file_maps_classes_to_actions() {
        let p = Policy::from_toml(
            r#"
            dry_run = false
            [[rules]]
            class = "disk_pressure"
            action = { type = "prune", scope = ["dangling_images"], filters = { older_than_secs = 86400 } }
            "#,
        )
        .unwrap();
        assert!(!p.dry_run);
        let r = p.rule_for(RootCauseClass::DiskPressure).unwrap();
        assert!(
            matches!(&r.action, ActionKind::Prune { scope, .. } if scope == &[PruneScope::DanglingImages])
        );
        assert!(p.rule_for(RootCauseClass::MemoryLeak).is_none());
    }
}
