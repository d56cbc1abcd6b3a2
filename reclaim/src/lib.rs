//! Remedy reclaim: turns a diagnosed incident into a remediation plan that a
//! policy allows, under safety rules, with every decision audited.
//!
//! - [`policy`]: the TOML policy mapping root-cause classes to actions, and
//!   the safety settings (dry-run, allow/deny lists, cooldowns, rate and
//!   blast-radius limits, approvals). The default policy is dry-run: it plans
//!   but never executes anything.
//! - [`plan`]: the [`Planner`] applies the policy and the safety rules to an
//!   incident and returns actions, each `planned` or `skipped` with the rule
//!   that said no.
//! - [`audit`]: the append-only audit trail of every decision.
//! - [`exec`]: the executors (Docker Engine API, object store, webhook,
//!   log), each a module with its own `[execution.<name>]` settings, build
//!   and runtime, listed once in [`exec::EXECUTORS`]; and the driver,
//!   built from the policy through that list, that re-checks the safety
//!   rules at execution time and audits every step.
//!
//! Actions are named by [`models::ActionName`] wherever a policy or a
//! record lists them (`require_approval`, `execution.executors`, the
//! ledger), so a name is checked when the policy loads, not when an action
//! first needs it.
//! - [`ident`]: validation of identifiers taken from logs, so a crafted log
//!   line can never widen what a plan touches.
//!
//! **Invariant:** nothing runs without a policy verdict, and dry-run is the
//! default.

#![deny(missing_docs)]

pub mod audit;
pub mod error;
pub mod exec;
pub mod ident;
pub mod plan;
pub mod policy;

pub use audit::{AuditEntry, AuditLog};
pub use error::{Error, Result};
pub use plan::{Planner, PlannerState, TargetInventory};
pub use policy::Policy;
