//! The `[execution]` section of the policy: which executor carries out each
//! action, and how each executor reaches its system.
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

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// An executor's name in the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutorKind {
    /// The Docker Engine API (Docker or Podman).
    Docker,
    /// Cold data to another storage tier through `object_store`.
    ObjectStore,
    /// A signed POST to a configured URL.
    Webhook,
    /// A line in Remedy's own log; changes nothing.
    Log,
}

impl ExecutorKind {
    /// The name used in the policy, the audit trail and metrics.
    pub fn name(self) -> &'static str {
        match self {
            ExecutorKind::Docker => "docker",
            ExecutorKind::ObjectStore => "object_store",
            ExecutorKind::Webhook => "webhook",
            ExecutorKind::Log => "log",
        }
    }
}

/// Which executor carries out each action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorChoice {
    /// `docker` or `webhook`.
    pub prune: ExecutorKind,
    /// `docker` or `webhook`.
    pub restart: ExecutorKind,
    /// `object_store` or `webhook` (load offloads need the webhook).
    pub offload: ExecutorKind,
    /// `log` or `webhook`.
    pub notify: ExecutorKind,
}

impl Default for ExecutorChoice {
    fn default() -> Self {
        ExecutorChoice {
            prune: ExecutorKind::Docker,
            restart: ExecutorKind::Docker,
            offload: ExecutorKind::ObjectStore,
            notify: ExecutorKind::Log,
        }
    }
}

impl ExecutorChoice {
    /// The executor for an action name (`prune`, `restart`, `offload`, `notify`).
    pub fn for_action(&self, name: &str) -> Option<ExecutorKind> {
        match name {
            "prune" => Some(self.prune),
            "restart" => Some(self.restart),
            "offload" => Some(self.offload),
            "notify" => Some(self.notify),
            _ => None,
        }
    }
}

/// How to reach the container engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerConfig {
    /// `unix:///path`, `tcp://host:port` or `https://host:port` (TLS with
    /// `DOCKER_CERT_PATH`). Empty: `DOCKER_HOST`, else the local socket.
    pub host: String,
    /// The container label that names a container's service (for the
    /// service allow/deny lists and the blast radius).
    pub service_label: String,
    /// Seconds any single engine request may take.
    pub timeout_secs: u64,
    /// The hosts (as incidents name them, `node-3`) the engine at `host`
    /// runs on; `["*"]` for every host (one engine for the whole estate).
    /// An action for a host named neither here nor in `engines` is refused
    /// (`wrong_host`), so a prune or restart never lands on another
    /// machine's engine. Actions naming no host use `host`.
    pub hosts: Vec<String>,
    /// The engines of other hosts: host name -> address (same forms as
    /// `host`).
    pub engines: BTreeMap<String, String>,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            host: String::new(),
            service_label: "com.docker.compose.service".into(),
            timeout_secs: 120,
            hosts: Vec::new(),
            engines: BTreeMap::new(),
        }
    }
}

/// Where cold data goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectStoreConfig {
    /// Directories whose files may be offloaded; nothing outside them is
    /// ever read or deleted.
    pub roots: Vec<PathBuf>,
    /// The other tier as a URL: `file:///dir` (default kind), or
    /// `s3://bucket/prefix` when built with the `s3` feature.
    pub destination: String,
    /// Options handed to the store builder (`aws_endpoint`, `aws_region`...).
    pub options: BTreeMap<String, String>,
    /// The journal that makes offloads resumable (JSON lines, fsynced).
    pub journal: PathBuf,
}

/// Where webhooks go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// The receiver (`http://` or `https://`).
    pub url: String,
    /// The environment variable holding the HMAC-SHA256 key; the key itself
    /// never sits in the policy file.
    pub secret_env: String,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Wait before the first retry; doubles after each.
    pub initial_backoff_ms: u64,
    /// Seconds one attempt may take.
    pub timeout_secs: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: String::new(),
            secret_env: "REMEDY_WEBHOOK_SECRET".into(),
            max_attempts: 5,
            initial_backoff_ms: 500,
            timeout_secs: 10,
        }
    }
}

/// The `[execution]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutionConfig {
    /// Which executor carries out each action.
    pub executors: ExecutorChoice,
    /// The execution ledger (JSON lines, fsynced): what ran, when, with
    /// what result. It makes re-running a completed action a no-op and
    /// holds the wall-clock cooldowns and rate limit.
    pub ledger: PathBuf,
    /// The container engine.
    pub docker: DockerConfig,
    /// The cold tier.
    pub object_store: ObjectStoreConfig,
    /// The webhook receiver.
    pub webhook: WebhookConfig,
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        ExecutionConfig {
            executors: ExecutorChoice::default(),
            ledger: PathBuf::from("remedy-executions.jsonl"),
            docker: DockerConfig::default(),
            object_store: ObjectStoreConfig::default(),
            webhook: WebhookConfig::default(),
        }
    }
}

impl ExecutionConfig {
    /// Check combinations that parse but cannot work.
    pub fn validate(&self) -> Result<()> {
        use ExecutorKind::*;
        let e = &self.executors;
        let ok = [
            ("prune", e.prune, &[Docker, Webhook][..]),
            ("restart", e.restart, &[Docker, Webhook][..]),
            ("offload", e.offload, &[ObjectStore, Webhook][..]),
            ("notify", e.notify, &[Log, Webhook][..]),
        ];
        for (action, kind, allowed) in ok {
            if !allowed.contains(&kind) {
                return Err(Error::Policy(format!(
                    "execution.executors.{action} = {:?} cannot carry out a {action}; use one of {}",
                    kind.name(),
                    allowed
                        .iter()
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            if kind == Webhook && self.webhook.url.is_empty() {
                return Err(Error::Policy(format!(
                    "execution.executors.{action} = \"webhook\" needs execution.webhook.url"
                )));
            }
        }
        if self.webhook.max_attempts == 0 {
            return Err(Error::Policy(
                "execution.webhook.max_attempts must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
