//! Execution wiring: the policy's `[execution]` section turned into a
//! reclaim [`Driver`] with its executors, and planned actions handed to it.
//! Every safety rule lives in the driver (dry-run, approval, identifiers,
//! allow/deny lists, cooldown and rate limit on the ledger) and in the
//! executors (what the engine reports now); this module only chooses and
//! connects the executors and records what happened on each action.

use anyhow::Context;
use models::{Action, ActionStatus};
use reclaim::exec::{
    wall_now, Driver, ExecObserver, Executor, ExecutorKind, Ledger, LogExecutor, OffloadExecutor,
    Report, WebhookExecutor,
};
use reclaim::exec::{DockerExecutor, ExecutionConfig};
use reclaim::{AuditLog, Policy};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The actions an executor may be chosen for, in the policy's order.
const ACTIONS: [&str; 4] = ["prune", "restart", "offload", "notify"];

/// The engine address: the policy's `execution.docker.host`, else
/// `REMEDY_DOCKER_HOST`, else (inside the executor) `DOCKER_HOST`, else the
/// local socket.
fn docker_config(config: &ExecutionConfig) -> reclaim::exec::config::DockerConfig {
    let mut docker = config.docker.clone();
    if docker.host.is_empty() {
        if let Ok(h) = std::env::var("REMEDY_DOCKER_HOST") {
            docker.host = h;
        }
    }
    docker
}

/// A driver under `policy`, with the executors its `[execution]` section
/// chooses, remembering past executions in its ledger. An executor whose
/// system is not configured at all (no object-store destination, no webhook
/// URL) is left out, and the driver then refuses its actions with
/// `no_executor`; one that is configured but cannot be set up is an error
/// naming the setting.
pub fn driver(policy: &Policy, observer: Option<Arc<dyn ExecObserver>>) -> anyhow::Result<Driver> {
    let config = &policy.execution;
    config.validate().context("policy [execution]")?;
    let ledger = Ledger::open(&config.ledger).with_context(|| {
        format!(
            "cannot open the execution ledger {} (execution.ledger)",
            config.ledger.display()
        )
    })?;
    let mut built: BTreeMap<ExecutorKind, Option<Arc<dyn Executor>>> = BTreeMap::new();
    let mut driver = Driver::new(policy.clone(), ledger);
    for name in ACTIONS {
        let Some(kind) = config.executors.for_action(name) else {
            continue;
        };
        if !built.contains_key(&kind) {
            let exec: Option<Arc<dyn Executor>> = match kind {
                ExecutorKind::Docker => {
                    let d = docker_config(config);
                    Some(Arc::new(DockerExecutor::connect(&d).with_context(
                        || format!("execution.docker (engine {:?})", d.host),
                    )?))
                }
                ExecutorKind::ObjectStore => {
                    let o = &config.object_store;
                    if o.destination.is_empty() {
                        None
                    } else {
                        Some(Arc::new(
                            OffloadExecutor::from_config(o).context("execution.object_store")?,
                        ))
                    }
                }
                ExecutorKind::Webhook => Some(Arc::new(
                    WebhookExecutor::from_config(&config.webhook).context("execution.webhook")?,
                )),
                ExecutorKind::Log => Some(Arc::new(LogExecutor)),
            };
            built.insert(kind, exec);
        }
        if let Some(Some(exec)) = built.get(&kind) {
            driver = driver.with_executor(name, exec.clone());
        }
    }
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
    if report.is_none() && action.status != ActionStatus::Executed {
        if driver.ledger().executed(&action.id).is_some() {
            action.status = ActionStatus::Executed;
        }
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
