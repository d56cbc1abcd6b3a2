//! The planner: policy + safety rules + audit, applied to one incident.

use crate::audit::{AuditEntry, AuditLog};
use crate::policy::Policy;
use models::{
    Action, ActionKind, ActionStatus, Incident, IncidentStatus, RootCause, Target, Timestamp,
};
use std::collections::{BTreeMap, VecDeque};

/// What the planner knows about the estate: replicas per service (for the
/// blast-radius rule) and labels per container (for deny labels). Filled
/// from metrics and logs in replay, from the container engine when executing.
#[derive(Debug, Clone, Default)]
pub struct TargetInventory {
    /// Replica (container) count per service.
    pub replicas: BTreeMap<String, u32>,
    /// Labels per container.
    pub labels: BTreeMap<String, BTreeMap<String, String>>,
}

/// Applies the policy to incidents, remembering what it already did so that
/// cooldowns, rate limits and blast radius hold across incidents.
pub struct Planner {
    policy: Policy,
    /// Last time each (action, target) was planned: the cooldown clock.
    last_acted: BTreeMap<(String, Target), Timestamp>,
    /// Destructive actions planned in the last hour: the rate limit.
    recent: VecDeque<Timestamp>,
    /// Restarts in flight per service (target container, when): blast radius.
    in_flight: BTreeMap<String, Vec<(String, Timestamp)>>,
}

const HOUR_MS: i64 = 3_600_000;

/// What a [`Planner`] remembers between incidents (cooldown clocks, the
/// hour's destructive actions, restarts in flight), so a streaming
/// consumer can hand it to the next owner of its partitions with the rest
/// of its state: a hand-off must not reset a cooldown.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlannerState {
    last_acted: Vec<((String, Target), Timestamp)>,
    recent: Vec<Timestamp>,
    in_flight: Vec<(String, Vec<(String, Timestamp)>)>,
}

impl Planner {
    /// The planner's memory, to restore with [`Planner::with_state`].
    pub fn state(&self) -> PlannerState {
        PlannerState {
            last_acted: self
                .last_acted
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            recent: self.recent.iter().copied().collect(),
            in_flight: self
                .in_flight
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// A planner under `policy` that remembers what `state` did.
    pub fn with_state(policy: Policy, state: PlannerState) -> Self {
        Planner {
            policy,
            last_acted: state.last_acted.into_iter().collect(),
            recent: state.recent.into_iter().collect(),
            in_flight: state.in_flight.into_iter().collect(),
        }
    }

    /// A planner with no history.
    pub fn new(policy: Policy) -> Self {
        Planner {
            policy,
            last_acted: BTreeMap::new(),
            recent: VecDeque::new(),
            in_flight: BTreeMap::new(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Plan the remediation of an incident's top root cause at event time
    /// `now`. Every decision, including a skip and its reason, is appended
    /// to `audit` before this returns.
    pub fn plan(
        &mut self,
        incident: &Incident,
        now: Timestamp,
        inventory: &TargetInventory,
        audit: &mut dyn AuditLog,
    ) -> crate::Result<Vec<Action>> {
        let Some(cause) = incident.root_causes.first() else {
            return Ok(vec![]);
        };
        let Some(rule) = self.policy.rule_for(cause.class) else {
            return Ok(vec![]);
        };
        let kind = match &rule.action {
            ActionKind::Notify { channel, message } => ActionKind::Notify {
                channel: channel.clone(),
                message: notify_message(message, cause),
            },
            other => other.clone(),
        };
        let name = kind.action_name();
        let mut action = Action {
            id: format!("{}-{name}", incident.id),
            incident_id: incident.id.clone(),
            class: cause.class,
            kind,
            target: cause.target.clone(),
            status: ActionStatus::Planned,
            dry_run: self.policy.dry_run,
            requires_approval: self.policy.needs_approval(name),
            planned_at: now,
            verified: None,
        };
        let verdict = self.check(&action, cause, rule.min_confidence, now, inventory);
        let reason = match verdict {
            Err(reason) => {
                action.status = ActionStatus::Skipped {
                    reason: reason.clone(),
                };
                reason
            }
            Ok(()) => {
                if action.kind.is_destructive() {
                    self.record(&action, now);
                }
                if action.dry_run {
                    "dry_run".to_string()
                } else if action.requires_approval {
                    "awaiting_approval".to_string()
                } else {
                    "policy".to_string()
                }
            }
        };
        let decision = match action.status {
            ActionStatus::Skipped { .. } => "skipped",
            _ => "planned",
        };
        audit.append(&AuditEntry::about(&action, now, decision, reason))?;
        Ok(vec![action])
    }

    /// Verification: did the signals behind `action` return inside their
    /// bands within the policy's `verify_after_secs` of it? `incident` is
    /// the action's incident as it stands at event time `now` (its end is
    /// when its signals went back inside their bands). Records the answer
    /// on the action and in the audit log: `Some(true)` when the incident
    /// resolved in time, `Some(false)` when it resolved later or is still
    /// open past the deadline, `None` (nothing recorded) while the deadline
    /// has not passed. Skipped actions are not verified: nothing was done.
    ///
    /// In dry-run nothing was executed either, so a `true` says the anomaly
    /// cleared after the (simulated) action, not that the action cleared
    /// it; the audit reason says which.
    pub fn verify(
        &self,
        action: &mut Action,
        incident: &Incident,
        now: Timestamp,
        audit: &mut dyn AuditLog,
    ) -> crate::Result<Option<bool>> {
        if matches!(action.status, ActionStatus::Skipped { .. }) || action.verified.is_some() {
            return Ok(action.verified);
        }
        let deadline = action.planned_at.as_millis() + self.policy.verify_after_secs as i64 * 1000;
        let cleared_at = incident
            .end
            .filter(|_| incident.status == IncidentStatus::Resolved);
        let verdict = match cleared_at {
            Some(end) if end.as_millis() <= deadline => Some(true),
            Some(_) => Some(false),
            None if now.as_millis() > deadline => Some(false),
            None => None,
        };
        let Some(ok) = verdict else {
            return Ok(None);
        };
        let after = |t: Timestamp| (t.as_millis() - action.planned_at.as_millis()).max(0) / 1000;
        let reason = match (ok, cleared_at) {
            (true, Some(end)) => format!(
                "signals back inside their bands {} s after the {}action",
                after(end),
                if action.dry_run { "simulated " } else { "" }
            ),
            (_, Some(end)) => format!(
                "signals back inside their bands only after {} s (limit {} s)",
                after(end),
                self.policy.verify_after_secs
            ),
            _ => format!(
                "signals still outside their bands {} s after the action",
                after(now)
            ),
        };
        action.verified = Some(ok);
        audit.append(&AuditEntry::about(
            action,
            Timestamp::from_millis(deadline.min(now.as_millis())),
            if ok { "verified" } else { "not_verified" },
            reason,
        ))?;
        Ok(Some(ok))
    }

    /// The safety rules, in the order a person would ask them. `Err` names
    /// the rule that said no.
    fn check(
        &mut self,
        action: &Action,
        cause: &RootCause,
        min_confidence: f64,
        now: Timestamp,
        inventory: &TargetInventory,
    ) -> Result<(), String> {
        if cause.confidence < min_confidence {
            let (have, need) = distinct(cause.confidence, min_confidence);
            return Err(format!("low_confidence: {have} < {need}"));
        }
        self.policy.check_target(action, false)?;
        if !action.kind.is_destructive() {
            return Ok(());
        }
        let t = &action.target;
        if let Some(c) = &t.container {
            if let Some(labels) = inventory.labels.get(c) {
                for (k, v) in &self.policy.deny_labels {
                    if labels.get(k) == Some(v) {
                        return Err(format!("denied_label: {k}={v}"));
                    }
                }
            }
        }
        let key = (action.kind.name().to_string(), t.clone());
        if let Some(last) = self.last_acted.get(&key) {
            let wait = self.policy.cooldown_secs as i64 * 1000;
            if now.as_millis() - last.as_millis() < wait {
                return Err(format!("cooldown: last {} at {last}", action.kind.name()));
            }
        }
        while self
            .recent
            .front()
            .is_some_and(|t0| now.as_millis() - t0.as_millis() >= HOUR_MS)
        {
            self.recent.pop_front();
        }
        if self.recent.len() as u32 >= self.policy.max_actions_per_hour {
            return Err(format!(
                "rate_limit: {} actions in the last hour",
                self.recent.len()
            ));
        }
        if let (ActionKind::Restart { .. }, Some(svc), Some(container)) =
            (&action.kind, &t.service, &t.container)
        {
            let replicas = inventory.replicas.get(svc).copied().unwrap_or(1).max(1);
            let cooldown = self.policy.cooldown_secs as i64 * 1000;
            let busy = self.in_flight.get(svc).map_or(0, |v| {
                v.iter()
                    .filter(|(c, at)| c != container && now.as_millis() - at.as_millis() < cooldown)
                    .count()
            }) as u32;
            let share = (busy + 1) * 100 / replicas;
            if share > self.policy.max_blast_radius_percent {
                return Err(format!(
                    "blast_radius: {} of {replicas} replicas of {svc} ({share}% > {}%)",
                    busy + 1,
                    self.policy.max_blast_radius_percent
                ));
            }
        }
        Ok(())
    }

    fn record(&mut self, action: &Action, now: Timestamp) {
        self.last_acted
            .insert((action.kind.name().to_string(), action.target.clone()), now);
        self.recent.push_back(now);
        if let (ActionKind::Restart { .. }, Some(svc), Some(c)) = (
            &action.kind,
            &action.target.service,
            &action.target.container,
        ) {
            self.in_flight
                .entry(svc.clone())
                .or_default()
                .push((c.clone(), now));
        }
    }
}

fn notify_message(template: &str, cause: &RootCause) -> String {
    let t = &cause.target;
    let mut where_ = Vec::new();
    if let Some(s) = &t.service {
        where_.push(format!("service {s}"));
    }
    if let Some(h) = &t.host {
        where_.push(format!("host {h}"));
    }
    if let Some(c) = &t.container {
        where_.push(format!("container {c}"));
    }
    format!(
        "{} on {} (confidence {:.2}): {template}",
        cause.class,
        where_.join(", "),
        cause.confidence
    )
}

/// Two different numbers printed with two decimals, or with as many more as
/// it takes to tell them apart (0.4999 below 0.5 is `0.4999 < 0.5000`, never
/// `0.50 < 0.50`).
fn distinct(a: f64, b: f64) -> (String, String) {
    for digits in 2..=12 {
        let (x, y) = (format!("{a:.digits$}"), format!("{b:.digits$}"));
        if x != y {
            return (x, y);
        }
    }
    (a.to_string(), b.to_string())
}
