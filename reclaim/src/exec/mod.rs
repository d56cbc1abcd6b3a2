//! Executors: the code that carries out an action for real.
//!
//! - [`Executor`]: one async trait, implemented by [`DockerExecutor`] (the
//!   Docker Engine API, Docker or Podman), [`OffloadExecutor`] (cold data
//!   to another tier through `object_store`, journaled), [`WebhookExecutor`]
//!   (a signed POST, retried) and [`LogExecutor`] (notify through the log).
//! - [`Driver`]: the only caller of executors. It re-checks every safety
//!   rule at execution time (dry-run, approval, identifiers, allow/deny
//!   lists, cooldown and rate limit from the [`Ledger`]), writes every step
//!   to the audit trail before it takes effect, and records the result.
//!   Executors add the checks only their system can answer (what the engine
//!   reports now: labels, replicas, whether a volume is in use).
//! - [`config`]: the policy's `[execution]` section; [`schedule`]: the
//!   policy's `[[schedules]]` (cron-like maintenance under the same rules).
//!
//! **Invariant:** an executor is only ever called by the [`Driver`], so
//! nothing runs without a policy verdict, and re-running a completed action
//! changes nothing.

pub mod config;
pub mod docker;
pub mod driver;
pub mod ledger;
pub mod offload;
pub mod schedule;
pub mod webhook;

pub use config::{ExecutionConfig, ExecutorKind};
pub use docker::DockerExecutor;
pub use driver::{Driver, ExecObserver, Verifier};
pub use ledger::{Ledger, LedgerEntry};
pub use offload::{OffloadExecutor, OffloadState, OffloadStatus};
pub use schedule::Schedule;
pub use webhook::WebhookExecutor;

use crate::policy::Policy;
use models::Action;
use std::future::Future;
use std::pin::Pin;

/// Wall-clock now. Executors live in real time: cooldowns and the rate
/// limit at execution are measured on this clock, not on event time.
pub fn wall_now() -> models::Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    models::Timestamp::from_millis(ms)
}

/// A boxed future, so [`Executor`] stays dyn-compatible.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What an executor did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// The objects removed, restarted or moved (ids, names or paths).
    pub objects: Vec<String>,
    /// Bytes reclaimed (prune) or moved (offload), as the system reports.
    pub bytes: u64,
    /// Retries needed (webhook).
    pub retries: u32,
    /// One line for the audit trail.
    pub detail: String,
}

/// An executor's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Carried out.
    Done(Report),
    /// Not carried out: a safety rule checked against the live system said
    /// no (the reason names it). Nothing was changed.
    Refused(String),
}

/// Carries out one kind of action against one system. Implementations must
/// be idempotent (a second call for a completed action changes nothing) and
/// must not widen the action: they act only on what the action names,
/// under `policy`'s deny lists.
pub trait Executor: Send + Sync {
    /// `docker`, `object_store`, `webhook`, `log`.
    fn name(&self) -> &'static str;

    /// Carry out `action` (already checked by the [`Driver`]).
    fn execute<'a>(
        &'a self,
        action: &'a Action,
        policy: &'a Policy,
    ) -> BoxFuture<'a, crate::Result<Outcome>>;
}

/// Notify through Remedy's own log: the message goes to `tracing` at warn
/// level (and, through the driver, to the audit trail).
pub struct LogExecutor;

impl Executor for LogExecutor {
    fn name(&self) -> &'static str {
        "log"
    }

    fn execute<'a>(
        &'a self,
        action: &'a Action,
        _policy: &'a Policy,
    ) -> BoxFuture<'a, crate::Result<Outcome>> {
        Box::pin(async move {
            let message = match &action.kind {
                models::ActionKind::Notify { channel, message } => format!("[{channel}] {message}"),
                other => format!("{} requested for {:?}", other.name(), action.target),
            };
            tracing::warn!(action = %action.id, %message, "remedy notification");
            Ok(Outcome::Done(Report {
                objects: vec![],
                bytes: 0,
                retries: 0,
                detail: format!("logged: {message}"),
            }))
        })
    }
}
