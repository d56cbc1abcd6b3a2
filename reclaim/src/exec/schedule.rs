//! Scheduled maintenance: policy entries with a cron expression, each
//! producing an action per occurrence that goes through the same driver and
//! safety rules as an incident's action.
//!
//! ```toml
//! [[schedules]]
//! name = "nightly-prune"
//! cron = "0 3 * * *"          # minute hour day-of-month month day-of-week (UTC)
//! action = { type = "prune", scope = ["dangling_images", "exited_containers"], filters = { older_than_secs = 86400 } }
//! ```

use crate::error::{Error, Result};
use crate::ident::is_valid_identifier;
use chrono::{TimeZone, Utc};
use croner::Cron;
use models::{Action, ActionKind, ActionStatus, RootCauseClass, Target, Timestamp};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// One scheduled maintenance entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// A name (an identifier): it is part of every action id it produces.
    pub name: String,
    /// Cron expression, evaluated in UTC (five fields, or six with seconds).
    pub cron: String,
    /// What to do at each occurrence.
    pub action: ActionKind,
    /// Where (a restart needs a container).
    #[serde(default)]
    pub target: Target,
    /// The class recorded on its actions (what it prevents).
    #[serde(default = "default_class")]
    pub class: RootCauseClass,
}

fn default_class() -> RootCauseClass {
    RootCauseClass::DiskPressure
}

impl Schedule {
    fn parsed(&self) -> Result<Cron> {
        Cron::from_str(&self.cron).map_err(|e| {
            Error::Policy(format!("schedule {}: cron {:?}: {e}", self.name, self.cron))
        })
    }

    /// Check the name and the cron expression.
    pub fn validate(&self) -> Result<()> {
        if !is_valid_identifier(&self.name) {
            return Err(Error::Policy(format!(
                "schedule name {:?} must be letters, digits and _ . -",
                self.name
            )));
        }
        self.parsed().map(|_| ())
    }

    /// The first occurrence strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Result<Timestamp> {
        let cron = self.parsed()?;
        let from = Utc
            .timestamp_millis_opt(t.as_millis())
            .single()
            .ok_or_else(|| {
                Error::Policy(format!("schedule {}: time {t} out of range", self.name))
            })?;
        let next = cron
            .find_next_occurrence(&from, false)
            .map_err(|e| Error::Policy(format!("schedule {}: {e}", self.name)))?;
        Ok(Timestamp::from_millis(next.timestamp_millis()))
    }

    /// The latest occurrence in `(since, now]`, if any: what is due now.
    pub fn due(&self, since: Timestamp, now: Timestamp) -> Result<Option<Timestamp>> {
        let mut t = since;
        let mut last = None;
        loop {
            let next = self.next_after(t)?;
            if next > now {
                return Ok(last);
            }
            last = Some(next);
            t = next;
        }
    }

    /// The action for the occurrence at `at`. Its id names the schedule
    /// and the occurrence, so running the same occurrence twice is a no-op.
    pub fn action_at(&self, at: Timestamp, dry_run: bool, requires_approval: bool) -> Action {
        Action {
            id: format!("schedule-{}-{}", self.name, at.as_millis()),
            incident_id: format!("schedule-{}", self.name),
            class: self.class,
            kind: self.action.clone(),
            target: self.target.clone(),
            status: ActionStatus::Planned,
            dry_run,
            requires_approval,
            planned_at: at,
            verified: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nightly() -> Schedule {
        Schedule {
            name: "nightly-prune".into(),
            cron: "0 3 * * *".into(),
            action: ActionKind::Prune {
                scope: vec![models::PruneScope::DanglingImages],
                filters: Default::default(),
            },
            target: Target::default(),
            class: default_class(),
        }
    }

    #[test]
    fn occurrences_follow_the_cron_expression() {
        let s = nightly();
        let t0 = Timestamp::parse_rfc3339("2026-01-05T02:00:00Z").unwrap();
        let next = s.next_after(t0).unwrap();
        assert_eq!(next.to_rfc3339(), "2026-01-05T03:00:00.000Z");
        let now = Timestamp::parse_rfc3339("2026-01-07T04:00:00Z").unwrap();
        // Two nights passed; only the latest is due (no catch-up storm).
        assert_eq!(
            s.due(t0, now).unwrap().unwrap().to_rfc3339(),
            "2026-01-07T03:00:00.000Z"
        );
        assert_eq!(s.due(now, now).unwrap(), None);
        let a = s.action_at(next, false, false);
        assert_eq!(a.id, "schedule-nightly-prune-1767582000000");
    }

    #[test]
    fn bad_entries_are_named() {
        let mut s = nightly();
        s.cron = "61 * * * *".into();
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("nightly-prune") && e.contains("61"), "{e}");
        let mut s = nightly();
        s.name = "a;b".into();
        assert!(s.validate().is_err());
    }
}
