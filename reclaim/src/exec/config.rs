//! The `[execution]` section of the policy: which executor carries out each
//! action, the ledger, and one table per executor for its own settings.
//!
//! ```toml
//! [execution]
//! executors = { prune = "docker", restart = "docker", offload = "object_store", notify = "log" }
//! ledger = "remedy-executions.jsonl"
//!
//! [execution.docker]
//! host = "unix:///run/podman/podman.sock"   # default: DOCKER_HOST, then the local socket
//! hosts = ["node-1"]                          # the hosts that engine acts for ("*": all)
//! engines = { "node-2" = "tcp://node-2:2376" } # other hosts' engines
//! service_label = "com.docker.compose.service"
//!
//! [execution.object_store]
//! roots = ["/var/log/archive"]
//! destination = "file:///mnt/cold"           # s3://bucket/prefix with the `s3` feature
//! journal = "/var/lib/remedy/offload.journal"
//!
//! [execution.webhook]
//! url = "https://rundeck.example/hooks/remedy"
//! secret_env = "REMEDY_WEBHOOK_SECRET"
//! ```
//!
//! This module knows no executor by name: an `[execution.<name>]` table
//! belongs to the executor registered as `<name>` in [`EXECUTORS`], whose
//! module defines its [`Settings`] type, checks it and builds from it.
//! That is why adding an executor touches nothing here, and why the tables
//! are kept as TOML until their executor reads them.

use super::{registration, EXECUTORS};
use crate::error::{Error, Result};
use models::ActionName;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// An executor's own settings: the table `[execution.<SECTION>]`. Each
/// executor module defines one (with `deny_unknown_fields`, so a misspelt
/// key is named) and reads it with [`ExecutionConfig::settings`].
pub trait Settings: Default + Serialize + DeserializeOwned {
    /// The table's name, which is also the executor's name.
    const SECTION: &'static str;
}

/// Which executor carries out each action: action -> executor name. Every
/// action has an entry: the policy's choices over each registered
/// executor's `default_for`, so a policy only names the ones it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    from = "BTreeMap<ActionName, String>",
    into = "BTreeMap<ActionName, String>"
)]
pub struct ExecutorChoice(BTreeMap<ActionName, String>);

impl Default for ExecutorChoice {
    fn default() -> Self {
        let mut m = BTreeMap::new();
        for r in EXECUTORS {
            for a in r.default_for {
                m.insert(*a, r.name.to_string());
            }
        }
        ExecutorChoice(m)
    }
}

impl From<BTreeMap<ActionName, String>> for ExecutorChoice {
    fn from(chosen: BTreeMap<ActionName, String>) -> Self {
        let mut c = ExecutorChoice::default();
        c.0.extend(chosen);
        c
    }
}

impl From<ExecutorChoice> for BTreeMap<ActionName, String> {
    fn from(c: ExecutorChoice) -> Self {
        c.0
    }
}

impl ExecutorChoice {
    /// The executor chosen for `action`, if any.
    pub fn for_action(&self, action: ActionName) -> Option<&str> {
        self.0.get(&action).map(String::as_str)
    }

    /// Choose `executor` for `action`.
    pub fn set(&mut self, action: ActionName, executor: &str) {
        self.0.insert(action, executor.to_string());
    }

    /// The actions `executor` is chosen for.
    pub fn actions_of(&self, executor: &str) -> Vec<ActionName> {
        self.0
            .iter()
            .filter(|(_, e)| e.as_str() == executor)
            .map(|(a, _)| *a)
            .collect()
    }
}

/// The `[execution]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecutionConfig {
    /// Which executor carries out each action.
    pub executors: ExecutorChoice,
    /// The execution ledger (JSON lines, fsynced): what ran, when, with
    /// what result. It makes re-running a completed action a no-op and
    /// holds the wall-clock cooldowns and rate limit.
    pub ledger: PathBuf,
    /// Each executor's table, by executor name, as written. Flattened, so
    /// `[execution.docker]` stays where users have always written it; a
    /// key that is neither a field above nor a registered executor lands
    /// here too and [`ExecutionConfig::validate`] names it (serde cannot
    /// deny unknown fields beside a flattened map).
    #[serde(flatten)]
    sections: BTreeMap<String, toml::Value>,
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        ExecutionConfig {
            executors: ExecutorChoice::default(),
            ledger: PathBuf::from("remedy-executions.jsonl"),
            sections: BTreeMap::new(),
        }
    }
}

impl ExecutionConfig {
    /// The settings of one executor: its table parsed, or the defaults
    /// when the policy has none.
    pub fn settings<S: Settings>(&self) -> Result<S> {
        match self.sections.get(S::SECTION) {
            None => Ok(S::default()),
            Some(v) => v
                .clone()
                .try_into()
                .map_err(|e| Error::Policy(format!("execution.{}: {e}", S::SECTION))),
        }
    }

    /// Replace one executor's settings (for policies built in code).
    pub fn set_settings<S: Settings>(&mut self, settings: &S) -> Result<()> {
        let v = toml::Value::try_from(settings)
            .map_err(|e| Error::Policy(format!("execution.{}: {e}", S::SECTION)))?;
        self.sections.insert(S::SECTION.to_string(), v);
        Ok(())
    }

    /// Check combinations that parse but cannot work: every table belongs
    /// to a registered executor and passes its check, and every action's
    /// executor exists and can carry that action out.
    pub fn validate(&self) -> Result<()> {
        let names = || {
            EXECUTORS
                .iter()
                .map(|r| r.name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(key) = self.sections.keys().find(|k| registration(k).is_none()) {
            return Err(Error::Policy(format!(
                "execution.{key}: unknown key; [execution] holds executors, ledger and the \
                 tables of the executors ({})",
                names()
            )));
        }
        for action in ActionName::ALL {
            let Some(name) = self.executors.for_action(action) else {
                continue;
            };
            let Some(r) = registration(name) else {
                return Err(Error::Policy(format!(
                    "execution.executors.{action} = {name:?} is not an executor; use one of {}",
                    names()
                )));
            };
            if !r.actions.contains(&action) {
                let able: Vec<&str> = EXECUTORS
                    .iter()
                    .filter(|r| r.actions.contains(&action))
                    .map(|r| r.name)
                    .collect();
                return Err(Error::Policy(format!(
                    "execution.executors.{action} = {name:?} cannot carry out a {action}; use one of {}",
                    able.join(", ")
                )));
            }
        }
        for r in EXECUTORS {
            (r.check)(self, &self.executors.actions_of(r.name))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{DockerConfig, ObjectStoreConfig, WebhookConfig};
    use crate::Policy;

    /// The README's `[execution]` example, as users have it in their
    /// policy files: the layout from before the executors owned their
    /// tables must read to the same settings.
    const README: &str = r#"
[execution]
executors = { prune = "docker", restart = "docker", offload = "object_store", notify = "webhook" }
ledger = "/var/lib/remedy/executions.jsonl"

[execution.docker]
host = "unix:///run/podman/podman.sock"    # default: DOCKER_HOST
hosts = ["node-1"]                         # the hosts that engine acts for ("*": all)
engines = { "node-2" = "tcp://node-2:2376" }  # other hosts' engines
service_label = "com.docker.compose.service"

[execution.object_store]
roots = ["/var/log/archive"]
destination = "file:///mnt/cold"
journal = "/var/lib/remedy/offload.journal"

[execution.webhook]
url = "https://rundeck.internal/hooks/remedy"
secret_env = "REMEDY_WEBHOOK_SECRET"       # HMAC-SHA256 key, never in the file
"#;

    #[test]
    fn the_documented_layout_reads_to_the_same_settings() {
        let p = Policy::from_toml(README).unwrap();
        let e = &p.execution;
        assert_eq!(e.ledger, PathBuf::from("/var/lib/remedy/executions.jsonl"));
        let chosen: Vec<(ActionName, &str)> = ActionName::ALL
            .iter()
            .map(|a| (*a, e.executors.for_action(*a).unwrap()))
            .collect();
        assert_eq!(
            chosen,
            [
                (ActionName::Prune, "docker"),
                (ActionName::Restart, "docker"),
                (ActionName::Offload, "object_store"),
                (ActionName::Notify, "webhook"),
            ]
        );
        let d: DockerConfig = e.settings().unwrap();
        assert_eq!(
            d,
            DockerConfig {
                host: "unix:///run/podman/podman.sock".into(),
                hosts: vec!["node-1".into()],
                engines: [("node-2".to_string(), "tcp://node-2:2376".to_string())].into(),
                ..DockerConfig::default()
            }
        );
        let o: ObjectStoreConfig = e.settings().unwrap();
        assert_eq!(
            o,
            ObjectStoreConfig {
                roots: vec!["/var/log/archive".into()],
                destination: "file:///mnt/cold".into(),
                options: BTreeMap::new(),
                journal: "/var/lib/remedy/offload.journal".into(),
            }
        );
        let w: WebhookConfig = e.settings().unwrap();
        assert_eq!(w.url, "https://rundeck.internal/hooks/remedy");
        assert_eq!(w.max_attempts, WebhookConfig::default().max_attempts);
        // And it survives a round trip through TOML unchanged.
        let text = toml::to_string(&p).unwrap();
        assert_eq!(Policy::from_toml(&text).unwrap(), p);
    }

    #[test]
    fn a_partial_choice_keeps_the_defaults_for_the_other_actions() {
        let p = Policy::from_toml(
            "[execution]\nexecutors = { notify = \"webhook\" }\n[execution.webhook]\nurl = \"http://x\"\n",
        )
        .unwrap();
        let mut want = ExecutorChoice::default();
        want.set(ActionName::Notify, "webhook");
        assert_eq!(p.execution.executors, want);
        assert_eq!(
            ExecutorChoice::default().for_action(ActionName::Prune),
            Some("docker")
        );
        assert_eq!(
            ExecutorChoice::default().for_action(ActionName::Offload),
            Some("object_store")
        );
        assert_eq!(
            ExecutorChoice::default().for_action(ActionName::Notify),
            Some("log")
        );
    }

    /// Every way an `[execution]` section can be wrong is refused when the
    /// policy loads, naming the key.
    #[test]
    fn mistakes_are_named_when_the_policy_loads() {
        let err = |text: &str| Policy::from_toml(text).unwrap_err().to_string();
        for (text, named) in [
            ("[execution]\nledgr = \"x\"", "execution.ledgr"),
            ("[execution.docker]\nhots = [\"a\"]", "hots"),
            ("[execution.dockr]\nhost = \"x\"", "execution.dockr"),
            ("[execution.log]\nlevel = \"x\"", "level"),
            ("[execution]\nexecutors = { reboot = \"docker\" }", "reboot"),
            ("[execution]\nexecutors = { prune = \"dockr\" }", "dockr"),
            (
                "[execution]\nexecutors = { prune = \"log\" }",
                "cannot carry out a prune",
            ),
            (
                "[execution]\nexecutors = { restart = \"object_store\" }",
                "use one of docker, webhook",
            ),
            (
                "[execution]\nexecutors = { notify = \"webhook\" }",
                "needs execution.webhook.url",
            ),
            ("[execution.webhook]\nmax_attempts = 0", "max_attempts"),
        ] {
            let e = err(text);
            assert!(e.contains(named), "{text}: {e}");
        }
    }

    #[test]
    fn settings_set_in_code_read_back() {
        let mut e = ExecutionConfig::default();
        let o = ObjectStoreConfig {
            destination: "file:///cold".into(),
            ..Default::default()
        };
        e.set_settings(&o).unwrap();
        assert_eq!(e.settings::<ObjectStoreConfig>().unwrap(), o);
        e.validate().unwrap();
    }
}
