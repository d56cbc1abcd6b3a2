//! Execution wiring into the product: the reclaim [`Driver`] the policy
//! describes, with metrics on `/metrics` ([`ExecMetrics`] through the
//! driver's observer hook), `replay --execute` ([`execute_all`]) and the
//! background executor of `serve` and `run` ([`background`]). Which
//! executors exist and how each is built from the policy is reclaim's
//! registry (`reclaim::exec::EXECUTORS`), not this module's: every safety
//! rule lives in the driver (dry-run, approval, identifiers, allow/deny
//! lists, cooldown and rate limit on the ledger) and in the executors
//! (what the engine reports now); this module only connects the driver to
//! the store, the runtime and the metrics, and records what happened on
//! each action.

use anyhow::Context;
use models::{Action, ActionStatus};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use reclaim::exec::{wall_now, Driver, ExecObserver, Report};
use reclaim::{AuditLog, Policy};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The driver for `policy`: its executors as the policy's `[execution]`
/// section chooses them ([`Driver::from_policy`], through reclaim's
/// registry of executors), reporting every execution to `observer`
/// (`/metrics` in `serve` and `run`; none for `replay --execute`).
pub fn driver(policy: &Policy, observer: Option<Arc<dyn ExecObserver>>) -> anyhow::Result<Driver> {
    let mut driver = Driver::from_policy(policy).context("policy [execution]")?;
    if let Some(o) = observer {
        driver = driver.with_observer(o);
    }
    Ok(driver)
}

/// Hand `action` to `driver` now. The driver updates its status (executed,
/// failed, or skipped with the rule that said no) and audits every step.
/// An action the ledger already records as executed (the same action id
/// from an earlier run) is marked executed, with nothing run again.
pub async fn execute_one(
    driver: &mut Driver,
    action: &mut Action,
    audit: &mut dyn AuditLog,
) -> anyhow::Result<Option<Report>> {
    let report = driver
        .execute(action, wall_now(), audit)
        .await
        .with_context(|| format!("executing action {}", action.id))?;
    if report.is_none()
        && action.status != ActionStatus::Executed
        && driver.ledger().executed(&action.id).is_some()
    {
        action.status = ActionStatus::Executed;
    }
    Ok(report)
}

/// Execute every action in order on a runtime of its own (for the
/// synchronous `remedy replay`). Returns the reports of the actions that
/// ran, by action id.
pub fn execute_all(
    driver: &mut Driver,
    actions: &mut [Action],
    audit: &mut dyn AuditLog,
) -> anyhow::Result<BTreeMap<String, Report>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the executors' runtime")?;
    rt.block_on(async {
        let mut reports = BTreeMap::new();
        for action in actions.iter_mut() {
            if let Some(r) = execute_one(driver, action, audit).await? {
                reports.insert(action.id.clone(), r);
            }
        }
        Ok(reports)
    })
}

/// An action as JSON with what its execution reported (`execution`: the
/// objects removed, restarted or moved, bytes, retries, detail).
pub fn with_report(action: &Action, report: Option<&Report>) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::to_value(action)?;
    if let (Some(r), Some(obj)) = (report, v.as_object_mut()) {
        obj.insert(
            "execution".into(),
            serde_json::json!({
                "objects": r.objects,
                "bytes": r.bytes,
                "retries": r.retries,
                "detail": r.detail,
            }),
        );
    }
    Ok(v)
}

/// Per-executor metrics on `/metrics`, fed by the driver's observer hook.
#[derive(Clone)]
pub struct ExecMetrics {
    actions: Family<ResultLabels, Counter>,
    failures: Family<ExecutorLabels, Counter>,
    duration: Family<ExecutorLabels, Histogram>,
    bytes: Family<ExecutorLabels, Counter>,
    retries: Family<ExecutorLabels, Counter>,
}

/// An executor and what became of one execution.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    executor: String,
    result: String,
}

/// An executor.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExecutorLabels {
    executor: String,
}

impl ExecMetrics {
    /// Fresh metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> ExecMetrics {
        let m = ExecMetrics {
            duration: Family::new_with_constructor(|| {
                Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0])
            }),
            actions: Family::default(),
            failures: Family::default(),
            bytes: Family::default(),
            retries: Family::default(),
        };
        registry.register(
            "remedy_executor_actions",
            "Actions handed to an executor, by executor and result (executed, refused, failed)",
            m.actions.clone(),
        );
        registry.register(
            "remedy_executor_failures",
            "Executions that failed, by executor",
            m.failures.clone(),
        );
        registry.register(
            "remedy_executor_duration_seconds",
            "Time an executor took, by executor",
            m.duration.clone(),
        );
        registry.register(
            "remedy_executor_bytes",
            "Bytes reclaimed (prune) or moved (offload), by executor",
            m.bytes.clone(),
        );
        registry.register(
            "remedy_executor_retries",
            "Retries an executor needed (webhook), by executor",
            m.retries.clone(),
        );
        m
    }
}

impl ExecObserver for ExecMetrics {
    fn observe(&self, executor: &str, result: &str, elapsed: Duration, report: Option<&Report>) {
        let e = ExecutorLabels {
            executor: executor.to_string(),
        };
        self.actions
            .get_or_create(&ResultLabels {
                executor: executor.to_string(),
                result: result.to_string(),
            })
            .inc();
        if result == "failed" {
            self.failures.get_or_create(&e).inc();
        }
        self.duration
            .get_or_create(&e)
            .observe(elapsed.as_secs_f64());
        if let Some(r) = report {
            self.bytes.get_or_create(&e).inc_by(r.bytes);
            self.retries.get_or_create(&e).inc_by(u64::from(r.retries));
        }
    }
}

/// [`background`] on a thread of its own (the driver's futures borrow the
/// audit log, so they stay on one thread), for the life of the process.
pub fn spawn_background(
    db: Arc<store::Db>,
    driver: Driver,
    interval: Duration,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the executors' runtime")?;
    std::thread::Builder::new()
        .name("remedy-exec".into())
        .spawn(move || rt.block_on(background(db, driver, interval, std::future::pending())))
        .context("cannot start the executors' thread")
}

/// The background executor of `remedy serve` and `remedy run`: every
/// `interval` it takes from the store the actions that may run now
/// (approved through the API, or planned without needing approval, and not
/// dry-run), hands each to the driver once, and writes its status and
/// audit back; and it runs the policy's `[[schedules]]` that fell due since
/// the last look (from the task's start: no catch-up of missed ones), under
/// the same driver. Stops when `stop` resolves.
pub async fn background(
    db: Arc<store::Db>,
    mut driver: Driver,
    interval: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut handed: std::collections::HashSet<String> = Default::default();
    let mut since = wall_now();
    tokio::pin!(stop);
    loop {
        if let Err(e) = tick(&db, &mut driver, &mut handed, &mut since).await {
            tracing::error!("executing actions: {e:#}");
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

async fn tick(
    db: &store::Db,
    driver: &mut Driver,
    handed: &mut std::collections::HashSet<String>,
    since: &mut models::Timestamp,
) -> anyhow::Result<()> {
    let mut due = db.with(|c| store::executable_actions(c))?;
    due.retain(|a| !a.dry_run && !handed.contains(&a.id));
    let now = wall_now();
    let policy = driver.policy().clone();
    for s in &policy.schedules {
        if let Some(at) = s.due(*since, now)? {
            let needs = policy.needs_approval(s.action.action_name());
            due.push(s.action_at(at, policy.dry_run, needs));
        }
    }
    *since = now;
    for mut action in due {
        handed.insert(action.id.clone());
        let mut audit: Vec<reclaim::AuditEntry> = Vec::new();
        let result = execute_one(driver, &mut action, &mut audit).await;
        db.with(|c| store::record_execution(c, &action, &audit))
            .with_context(|| format!("recording the execution of {}", action.id))?;
        result?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A schedule runs once per occurrence that falls due while the
    /// background task runs, and never when not due.
    #[tokio::test]
    async fn due_schedules_run_once_per_occurrence_and_others_never() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("ledger.jsonl");
        let policy = reclaim::Policy::from_toml(&format!(
            r#"
dry_run = false
require_approval = []
max_actions_per_hour = 100
cooldown_secs = 0

[execution]
ledger = "{}"

[[schedules]]
name = "every-second"
cron = "* * * * * *"
class = "disk_pressure"
action = {{ type = "notify", channel = "ops", message = "tick" }}

[[schedules]]
name = "yearly"
cron = "0 0 3 1 1 *"
action = {{ type = "notify", channel = "ops", message = "never now" }}
"#,
            ledger.display()
        ))
        .unwrap();
        let db = Arc::new(store::Db::open(&dir.path().join("s.db"), 2).unwrap());
        let driver = driver(&policy, None).unwrap();
        background(
            db.clone(),
            driver,
            Duration::from_millis(200),
            tokio::time::sleep(Duration::from_millis(2600)),
        )
        .await;
        let rows: Vec<(String, String)> = db
            .with(|c| {
                let mut st = c.prepare("SELECT id, status FROM actions ORDER BY id")?;
                let rows = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .unwrap();
        let ticks: Vec<&(String, String)> = rows
            .iter()
            .filter(|(id, _)| id.contains("every-second"))
            .collect();
        assert!((2..=3).contains(&ticks.len()), "{rows:?}");
        assert!(ticks.iter().all(|(_, s)| s == "executed"), "{rows:?}");
        assert!(
            !rows.iter().any(|(id, _)| id.contains("yearly")),
            "{rows:?}"
        );
        let mut ids: Vec<&String> = ticks.iter().map(|(id, _)| id).collect();
        ids.dedup();
        assert_eq!(ids.len(), ticks.len(), "one action per occurrence");
    }
}
