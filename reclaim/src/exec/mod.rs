//! Executors: the code that carries out an action for real.
//!
//! - [`Executor`]: one async trait, the runtime of an executor.
//! - One module per executor, holding its [`Settings`] (the policy's
//!   `[execution.<name>]` table), the checks of those settings, the
//!   `build` that turns them into an [`Executor`], and that executor's
//!   runtime, in one place (as a Vector sink keeps config, build and run
//!   together): [`docker`] (the Docker Engine API, Docker or Podman),
//!   [`offload`] (cold data to another tier through `object_store`,
//!   journaled), [`webhook`] (a signed POST, retried) and [`log`] (notify
//!   through the log). Each module exports one [`Registration`], and
//!   [`EXECUTORS`] lists them: the only list of executors there is.
//! - [`Driver`]: the only caller of executors, built from the policy with
//!   [`Driver::from_policy`] through the registry. It re-checks every
//!   safety rule at execution time (dry-run, approval, identifiers,
//!   allow/deny lists, cooldown and rate limit from the [`Ledger`]), writes
//!   every step to the audit trail before it takes effect, and records the
//!   result. Executors add the checks only their system can answer (what
//!   the engine reports now: labels, replicas, whether a volume is in use).
//! - [`config`]: the policy's `[execution]` section (the action ->
//!   executor choice, the ledger, the executors' tables); [`schedule`]:
//!   the policy's `[[schedules]]` (cron-like maintenance under the same
//!   rules).
//!
//! Actions are named by [`ActionName`] everywhere here (the choice, what
//! an executor claims, the ledger), never by strings, so a new action is a
//! variant in `models` and an executor that lists it in its
//! [`Registration::actions`].
//!
//! **Invariant:** an executor is only ever called by the [`Driver`], so
//! nothing runs without a policy verdict, and re-running a completed action
//! changes nothing.

pub mod config;
pub mod docker;
pub mod driver;
pub mod ledger;
pub mod log;
pub mod offload;
pub mod schedule;
pub mod webhook;

pub use config::{ExecutionConfig, ExecutorChoice, Settings};
pub use docker::{DockerConfig, DockerExecutor};
pub use driver::{Driver, ExecObserver, Verifier};
pub use ledger::{Ledger, LedgerEntry};
pub use log::LogExecutor;
pub use offload::{ObjectStoreConfig, OffloadExecutor, OffloadState, OffloadStatus};
pub use schedule::Schedule;
pub use webhook::{WebhookConfig, WebhookExecutor};

use crate::policy::Policy;
use models::{Action, ActionName};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Wall-clock now. Executors live in real time: cooldowns and the rate
/// limit at execution are measured on this clock, not on event time.
pub fn wall_now() -> models::Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    models::Timestamp::from_millis(ms)
}

/// Every executor the policy can choose, in the order error messages list
/// them. Adding an executor is a module with its settings, checks, build
/// and runtime, and one line here: the policy's validation and
/// [`Driver::from_policy`] (which the product calls) read this list, and
/// nothing else names executors.
pub const EXECUTORS: &[Registration] = &[
    docker::EXECUTOR,
    offload::EXECUTOR,
    webhook::EXECUTOR,
    log::EXECUTOR,
];

/// The executor registered as `name`.
pub fn registration(name: &str) -> Option<&'static Registration> {
    EXECUTORS.iter().find(|r| r.name == name)
}

/// An executor as the policy sees it: its name, what it can do, how its
/// settings are checked and how it is built. Plain data and function
/// pointers, so the registry is a `const` slice and needs no start-up code.
pub struct Registration {
    /// Its name in `execution.executors`, its `[execution.<name>]` table,
    /// the audit trail, the ledger and metrics (the same as
    /// [`Executor::name`] of what it builds).
    pub name: &'static str,
    /// The actions it can carry out; choosing it for another is a policy
    /// error.
    pub actions: &'static [ActionName],
    /// The actions it carries out when the policy chooses no other
    /// executor. Each action is some executor's default (a test holds the
    /// registry to that).
    pub default_for: &'static [ActionName],
    /// Check its settings when the policy is loaded, before anything is
    /// built: `chosen_for` is the actions the policy gives it (empty: it
    /// will not be built, but its table must still make sense).
    pub check: fn(config: &ExecutionConfig, chosen_for: &[ActionName]) -> crate::Result<()>,
    /// Build it from its settings (only when some action chooses it).
    /// `Ok(None)` when its system is not configured at all (no destination,
    /// no engine anywhere): the driver then refuses its actions with
    /// `no_executor` rather than failing to start. `Err` when it is
    /// configured but cannot be set up, naming the setting.
    pub build: fn(config: &ExecutionConfig) -> Built,
}

/// What a [`Registration::build`] returns: the executor, `None` when its
/// system is not configured at all, or the error naming the setting.
pub type Built = crate::Result<Option<Arc<dyn Executor>>>;

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
    /// Its [`Registration::name`]: `docker`, `object_store`, `webhook`,
    /// `log`.
    fn name(&self) -> &'static str;

    /// Carry out `action` (already checked by the [`Driver`]).
    fn execute<'a>(
        &'a self,
        action: &'a Action,
        policy: &'a Policy,
    ) -> BoxFuture<'a, crate::Result<Outcome>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry's promises: names are unique, every action has exactly
    /// one default executor, and a default executor can carry out what it
    /// is the default for. A new action with no executor fails here.
    #[test]
    fn every_action_has_one_default_executor_that_can_carry_it_out() {
        for (i, r) in EXECUTORS.iter().enumerate() {
            assert!(
                EXECUTORS[..i].iter().all(|o| o.name != r.name),
                "{} twice",
                r.name
            );
            for a in r.default_for {
                assert!(r.actions.contains(a), "{} default for {a}", r.name);
            }
        }
        for a in ActionName::ALL {
            let n = EXECUTORS
                .iter()
                .filter(|r| r.default_for.contains(&a))
                .count();
            assert_eq!(n, 1, "{a} has {n} default executors");
        }
        ExecutionConfig::default().validate().unwrap();
    }
}
