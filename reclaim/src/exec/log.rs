//! The log executor: notify through Remedy's own log. It changes nothing,
//! needs no settings and cannot fail, which makes it the default for
//! `notify`.

use super::config::Settings;
use super::{BoxFuture, Executor, Outcome, Registration, Report};
use crate::policy::Policy;
use models::{Action, ActionName};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const NAME: &str = "log";

/// The log executor in the registry: `notify` only (a prune or restart
/// "carried out" by a log line would be recorded as executed when nothing
/// happened).
pub const EXECUTOR: Registration = Registration {
    name: NAME,
    actions: &[ActionName::Notify],
    default_for: &[ActionName::Notify],
    check: |config, _| config.settings::<LogConfig>().map(|_| ()),
    build: |_| Ok(Some(Arc::new(LogExecutor))),
};

/// `[execution.log]`: no settings (the table may be absent or empty).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {}

impl Settings for LogConfig {
    const SECTION: &'static str = NAME;
}

/// Notify through Remedy's own log: the message goes to `tracing` at warn
/// level (and, through the driver, to the audit trail).
pub struct LogExecutor;

impl Executor for LogExecutor {
    fn name(&self) -> &'static str {
        NAME
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
