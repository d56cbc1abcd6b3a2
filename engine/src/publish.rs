//! Publication and planning: the one path from what the analysis found to
//! what the sinks are given.
//!
//! An incident is planned for when it is first published (timed at its
//! onset), again when its leading root cause changes (the old plan
//! withdrawn), and at the end of a bounded run, where every action is
//! verified against the end of the data. Replay, `POST /analyze` and a
//! bounded `remedy run` only ever take the end; a streaming task publishes
//! as it goes. Both go through [`Publisher::plan_for`], which is why a
//! replay and a stream of the same records plan the same actions.

use crate::engine::Engine;
use crate::findings::Findings;
use models::{Action, ActionStatus, Incident, IncidentStatus, RootCauseClass, Target};
use reclaim::{AuditEntry, Planner, PlannerState, TargetInventory};
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

/// Most incidents and actions remembered for change detection and
/// verification; older ones are forgotten first (bounded state).
const MAX_REMEMBERED: usize = 10_000;

/// An incident's leading root cause, as far as planning goes.
pub(crate) type Cause = (RootCauseClass, Target);

fn cause_of(inc: &Incident) -> Option<Cause> {
    inc.root_causes.first().map(|c| (c.class, c.target.clone()))
}

/// The planner and what it remembers of what was published.
pub struct Publisher {
    pub(crate) planner: Planner,
    /// Hash of each incident's last published form, by id.
    pub(crate) published: BTreeMap<String, u64>,
    /// Planned actions waiting for their incident to resolve (then
    /// verified), by incident id.
    pub(crate) awaiting: BTreeMap<String, Vec<Action>>,
    /// The root cause (class and target) each published incident's plan
    /// was made for, by incident id (`None`: it had none yet).
    pub(crate) planned_for: BTreeMap<String, Option<Cause>>,
}

impl Publisher {
    /// A publisher that has published nothing, planning under `policy`.
    pub fn new(policy: reclaim::Policy) -> Self {
        Publisher {
            planner: Planner::new(policy),
            published: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            planned_for: BTreeMap::new(),
        }
    }

    /// A publisher carrying on from a checkpoint's parts.
    pub(crate) fn with_state(
        policy: reclaim::Policy,
        planner: PlannerState,
        published: Vec<(String, u64)>,
        awaiting: Vec<(String, Vec<Action>)>,
        planned_for: Vec<(String, Option<Cause>)>,
    ) -> Self {
        Publisher {
            planner: Planner::with_state(policy, planner),
            published: published.into_iter().collect(),
            awaiting: awaiting.into_iter().collect(),
            planned_for: planned_for.into_iter().collect(),
        }
    }

    /// Everything found since the last call: new anomalies, incidents whose
    /// published form changed (open ones as they stand, resolved ones
    /// final), the actions planned for incidents published the first time
    /// or whose leading root cause changed since their plan, and the
    /// verification of actions whose incident resolved.
    pub fn take(&mut self, engine: &mut Engine) -> anyhow::Result<Findings> {
        let out = engine.drain();
        let mut found = Findings {
            anomalies: out.anomalies,
            trace: out.trace,
            ..Default::default()
        };
        let mut incidents = out.incidents;
        incidents.extend(engine.open_incidents());
        incidents.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
        let inventory = inventory_of(engine);
        for inc in incidents {
            let h = hash_of(&inc)?;
            let first = match self.published.get(&inc.id) {
                Some(old) if *old == h => continue,
                Some(_) => false,
                None => true,
            };
            self.plan_for(&inc, first, &inventory, &mut found)?;
            if inc.status == IncidentStatus::Resolved {
                if let (Some(actions), Some(end)) = (self.awaiting.remove(&inc.id), inc.end) {
                    for mut a in actions {
                        self.planner.verify(&mut a, &inc, end, &mut found.audit)?;
                        found.actions.push(a);
                    }
                }
            }
            self.published.insert(inc.id.clone(), h);
            found.incidents.push(inc);
        }
        forget_oldest(&mut self.published);
        forget_oldest(&mut self.awaiting);
        forget_oldest(&mut self.planned_for);
        Ok(found)
    }

    /// The end of a bounded run: finish `engine`, plan for every incident
    /// not yet published (and re-plan those whose cause changed), and
    /// verify every action against the end of the data.
    pub fn conclude(&mut self, engine: &mut Engine) -> anyhow::Result<Findings> {
        Ok(self.conclude_then(engine, |_, _| Ok(()))?.0)
    }

    /// [`Publisher::conclude`], with `act` run on the planned actions (and
    /// their audit trail) before they are verified: `replay --execute`
    /// executes there, so an action's trail reads planned, requested,
    /// started, executed, and only then verified (and an action the
    /// executor refused is not verified).
    pub fn conclude_then<R>(
        &mut self,
        engine: &mut Engine,
        act: impl FnOnce(&mut Vec<Action>, &mut Vec<AuditEntry>) -> anyhow::Result<R>,
    ) -> anyhow::Result<(Findings, R)> {
        let mut output = engine.finish();
        output.trace.extend(engine.template_trace());
        let mut incidents = output.incidents;
        incidents.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
        let inventory = inventory_of(engine);
        let mut found = Findings {
            anomalies: output.anomalies,
            trace: output.trace,
            ..Default::default()
        };
        for inc in &incidents {
            let first = !self.published.contains_key(&inc.id);
            self.plan_for(inc, first, &inventory, &mut found)?;
        }
        let acted = act(&mut found.actions, &mut found.audit)?;
        let mut summary = engine.summary();
        // Actions planned before the end (a streaming task that published
        // as it went) and still waiting for their incident are verified
        // with the rest; those planned just now are in `found` already.
        let planned_now: BTreeSet<String> = found.actions.iter().map(|a| a.id.clone()).collect();
        for inc in &incidents {
            for a in self.awaiting.remove(&inc.id).unwrap_or_default() {
                if !planned_now.contains(&a.id) {
                    found.actions.push(a);
                }
            }
        }
        // Verification at the end of the data: did each incident's signals
        // return inside their bands within the policy's window of its action?
        if let Some(end) = summary.last_event {
            for action in &mut found.actions {
                if let Some(inc) = incidents.iter().find(|i| i.id == action.incident_id) {
                    self.planner.verify(action, inc, end, &mut found.audit)?;
                }
            }
        }
        summary.anomalies = found.anomalies.len();
        summary.incidents = incidents.len();
        summary.actions = found.actions.len();
        found.summary = Some(summary);
        found.incidents = incidents;
        found.templates = engine.templates();
        Ok((found, acted))
    }

    /// Plan for an incident being published: the first time, timed at its
    /// onset, or again when its leading root cause changed since its plan
    /// (more evidence arrived), timed at its latest anomaly, when the new
    /// cause became the leading one: as replay, which plans once from the
    /// final incident, would. A re-plan withdraws what was planned for the
    /// old cause and not re-planned under the same id (a `superseded` skip,
    /// audited). The planner's safety rules apply to a re-plan as to any (a
    /// cooldown or rate limit the first plan used stays used: withdrawing
    /// never widens what may run).
    pub(crate) fn plan_for(
        &mut self,
        inc: &Incident,
        first: bool,
        inventory: &TargetInventory,
        found: &mut Findings,
    ) -> anyhow::Result<()> {
        let cause = cause_of(inc);
        let changed = !first
            && self
                .planned_for
                .get(&inc.id)
                .is_some_and(|was| *was != cause);
        if !first && !changed {
            return Ok(());
        }
        let now = if first {
            inc.anomalies.first().map(|a| a.timestamp)
        } else {
            inc.anomalies.iter().map(|a| a.timestamp).max()
        }
        .unwrap_or(inc.start);
        let planned = self.planner.plan(inc, now, inventory, &mut found.audit)?;
        found.actions.extend(planned.iter().cloned());
        if changed {
            let reason = match &cause {
                Some((class, target)) => format!(
                    "superseded: the incident's root cause is now {class} at {}",
                    target_text(target)
                ),
                None => "superseded: the incident has no root cause now".to_string(),
            };
            for mut a in self.awaiting.remove(&inc.id).unwrap_or_default() {
                if planned.iter().any(|p| p.id == a.id)
                    || matches!(a.status, ActionStatus::Skipped { .. })
                {
                    continue;
                }
                a.status = ActionStatus::Skipped {
                    reason: reason.clone(),
                };
                found
                    .audit
                    .push(AuditEntry::about(&a, now, "superseded", reason.clone()));
                found.actions.push(a);
            }
        }
        if !planned.is_empty() {
            self.awaiting.insert(inc.id.clone(), planned);
        }
        self.planned_for.insert(inc.id.clone(), cause);
        Ok(())
    }
}

/// What the blast-radius rules count: replicas per service as the engine
/// saw them.
fn inventory_of(engine: &Engine) -> TargetInventory {
    TargetInventory {
        replicas: engine.replicas(),
        labels: Default::default(),
    }
}

/// Past the cap, drop entries in key order: incident ids start with their
/// onset in milliseconds (`inc-<ms>-<hash>`), so that is oldest first (a
/// forgotten incident that changes again is simply published again).
fn forget_oldest<V>(m: &mut BTreeMap<String, V>) {
    while m.len() > MAX_REMEMBERED {
        m.pop_first();
    }
}

/// `service/host/container`, the parts the target names.
fn target_text(t: &Target) -> String {
    let parts: Vec<&str> = [&t.service, &t.host, &t.container]
        .into_iter()
        .filter_map(|p| p.as_deref())
        .collect();
    if parts.is_empty() {
        "no particular target".to_string()
    } else {
        parts.join("/")
    }
}

fn hash_of(inc: &Incident) -> anyhow::Result<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_vec(inc)?.hash(&mut h);
    Ok(h.finish())
}
