//! The execution driver: safety re-checked at execution time, every step
//! audited, the result recorded on the action and in the ledger.

use super::{registration, Executor, Ledger, LedgerEntry, Outcome, Report};
use crate::audit::{AuditEntry, AuditLog};
use crate::policy::Policy;
use models::{Action, ActionName, ActionStatus, Timestamp};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Told about every execution, for metrics.
pub trait ExecObserver: Send + Sync {
    /// One execution finished: `result` is `executed`, `failed` or
    /// `refused`.
    fn observe(&self, executor: &str, result: &str, elapsed: Duration, report: Option<&Report>);
}

/// Reads an action's triggering signals again after it ran: `Some(true)`
/// when they are back inside their bands, `Some(false)` when not, `None`
/// when it cannot tell yet.
pub trait Verifier {
    /// Check the signals behind `action`.
    fn verify(&self, action: &Action) -> Option<bool>;
}

const HOUR_MS: i64 = 3_600_000;

/// Runs actions through their executors under the policy.
pub struct Driver {
    policy: Policy,
    executors: BTreeMap<ActionName, Arc<dyn Executor>>,
    ledger: Ledger,
    observer: Option<Arc<dyn ExecObserver>>,
}

impl Driver {
    /// A driver under `policy`, remembering past executions in `ledger`,
    /// with no executors yet: add them per action with
    /// [`Driver::with_executor`] (tests), or build the whole driver from
    /// the policy with [`Driver::from_policy`].
    pub fn new(policy: Policy, ledger: Ledger) -> Driver {
        Driver {
            policy,
            executors: BTreeMap::new(),
            ledger,
            observer: None,
        }
    }

    /// Carry out actions named `action` with `executor`.
    pub fn with_executor(mut self, action: ActionName, executor: Arc<dyn Executor>) -> Driver {
        self.executors.insert(action, executor);
        self
    }

    /// A driver under `policy` with the executors its `[execution]`
    /// section chooses, built through the registry
    /// ([`EXECUTORS`](super::EXECUTORS)), remembering past executions in
    /// the ledger it names. Each chosen executor is built once and shared
    /// by the actions that chose it. One whose system is not configured at
    /// all (no object-store destination, no engine anywhere) is left out,
    /// and its actions are then refused with `no_executor`; one that is
    /// configured but cannot be set up is an error naming the setting.
    pub fn from_policy(policy: &Policy) -> crate::Result<Driver> {
        let config = &policy.execution;
        config.validate()?;
        let ledger = Ledger::open(&config.ledger).map_err(|e| {
            crate::Error::exec(
                "ledger",
                format!(
                    "cannot open the execution ledger {} (execution.ledger): {e}",
                    config.ledger.display()
                ),
            )
        })?;
        let mut driver = Driver::new(policy.clone(), ledger);
        let mut built: BTreeMap<&str, Option<Arc<dyn Executor>>> = BTreeMap::new();
        for action in ActionName::ALL {
            let Some(name) = config.executors.for_action(action) else {
                continue;
            };
            let Some(r) = registration(name) else {
                continue; // validate() has named it
            };
            if !built.contains_key(name) {
                built.insert(name, (r.build)(config)?);
            }
            if let Some(Some(exec)) = built.get(name) {
                driver = driver.with_executor(action, exec.clone());
            }
        }
        Ok(driver)
    }

    /// Report every execution to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn ExecObserver>) -> Driver {
        self.observer = Some(observer);
        self
    }

    /// The ledger of executions.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Execute `action` now (wall-clock `now`), if the policy and the
    /// safety rules allow it. Updates its status (`executed`, `failed`, or
    /// `skipped` with the rule that said no; left alone when it only waits
    /// for dry-run to be lifted or for an approval) and appends every step
    /// (`requested`, `started`, the result) to `audit` before it takes
    /// effect. Returns the executor's report when it ran.
    pub async fn execute(
        &mut self,
        action: &mut Action,
        now: Timestamp,
        audit: &mut dyn AuditLog,
    ) -> crate::Result<Option<Report>> {
        let name = action.kind.action_name();
        let dry_run = action.dry_run || self.policy.dry_run;
        step(
            audit,
            action,
            now,
            "requested",
            "execution requested",
            dry_run,
        )?;
        if let Err(reason) = self.check(action, now, dry_run) {
            let final_ = matches!(
                reason.split(':').next().unwrap_or(""),
                "already_executed" | "dry_run" | "awaiting_approval" | "not_executable"
            );
            if !final_ {
                action.status = ActionStatus::Skipped {
                    reason: reason.clone(),
                };
            }
            step(audit, action, now, "not_executed", &reason, dry_run)?;
            return Ok(None);
        }
        let Some(executor) = self.executors.get(&name).cloned() else {
            let reason = format!("no_executor: no executor configured for {name}");
            step(audit, action, now, "not_executed", &reason, dry_run)?;
            return Ok(None);
        };
        step(
            audit,
            action,
            now,
            "started",
            &format!("executor {}", executor.name()),
            false,
        )?;
        let started = Instant::now();
        let result = executor.execute(action, &self.policy).await;
        let elapsed = started.elapsed();
        let done_at = Timestamp::from_millis(now.as_millis() + elapsed.as_millis() as i64);
        let (decision, detail, report) = match result {
            Ok(Outcome::Done(report)) => {
                action.status = ActionStatus::Executed;
                ("executed", report.detail.clone(), Some(report))
            }
            Ok(Outcome::Refused(reason)) => {
                action.status = ActionStatus::Skipped {
                    reason: reason.clone(),
                };
                ("refused", reason, None)
            }
            Err(e) => {
                action.status = ActionStatus::Failed {
                    reason: e.to_string(),
                };
                ("failed", e.to_string(), None)
            }
        };
        if decision != "refused" {
            self.ledger.append(LedgerEntry {
                action_id: action.id.clone(),
                action: name,
                target: action.target.clone(),
                executor: executor.name().to_string(),
                at: done_at,
                result: decision.to_string(),
                detail: detail.clone(),
            })?;
        }
        if let Some(o) = &self.observer {
            o.observe(executor.name(), decision, elapsed, report.as_ref());
        }
        step(audit, action, done_at, decision, &detail, false)?;
        Ok(report)
    }

    /// After execution: read the triggering signals again through
    /// `verifier` and record the answer on the action and in the audit.
    pub fn verify(
        &self,
        action: &mut Action,
        verifier: &dyn Verifier,
        now: Timestamp,
        audit: &mut dyn AuditLog,
    ) -> crate::Result<Option<bool>> {
        if action.status != ActionStatus::Executed {
            return Ok(None);
        }
        let Some(ok) = verifier.verify(action) else {
            return Ok(None);
        };
        action.verified = Some(ok);
        let reason = if ok {
            "signals back inside their bands after the action"
        } else {
            "signals still outside their bands after the action"
        };
        step(
            audit,
            action,
            now,
            if ok { "verified" } else { "not_verified" },
            reason,
            false,
        )?;
        Ok(Some(ok))
    }

    /// The safety rules again, against the policy in force now and the
    /// ledger of what really ran. `Err` names the rule.
    fn check(&self, action: &Action, now: Timestamp, dry_run: bool) -> Result<(), String> {
        let name = action.kind.action_name();
        if let Some(prev) = self.ledger.executed(&action.id) {
            return Err(format!("already_executed: at {}", prev.at));
        }
        match &action.status {
            ActionStatus::Executed => return Err("already_executed: status executed".into()),
            ActionStatus::Skipped { reason } => {
                return Err(format!("not_executable: skipped when planned ({reason})"))
            }
            ActionStatus::Failed { .. } | ActionStatus::Planned | ActionStatus::Approved => {}
        }
        if dry_run {
            return Err("dry_run".into());
        }
        let needs_approval = action.requires_approval || self.policy.needs_approval(name);
        if needs_approval && action.status != ActionStatus::Approved {
            return Err("awaiting_approval".into());
        }
        self.policy.check_target(action, true)?;
        if !action.kind.is_destructive() {
            return Ok(());
        }
        let t = &action.target;
        if let Some(last) = self.ledger.last(name, t) {
            if now.as_millis() - last.at.as_millis() < self.policy.cooldown_secs as i64 * 1000 {
                return Err(format!(
                    "cooldown: last {name} of this target at {}",
                    last.at
                ));
            }
        }
        let recent = self
            .ledger
            .destructive_since(Timestamp::from_millis(now.as_millis() - HOUR_MS));
        if recent as u32 >= self.policy.max_actions_per_hour {
            return Err(format!(
                "rate_limit: {recent} actions executed in the last hour"
            ));
        }
        Ok(())
    }
}

fn step(
    audit: &mut dyn AuditLog,
    action: &Action,
    at: Timestamp,
    decision: &str,
    reason: &str,
    dry_run: bool,
) -> crate::Result<()> {
    audit.append(&AuditEntry {
        dry_run,
        ..AuditEntry::about(action, at, decision, reason)
    })
}
