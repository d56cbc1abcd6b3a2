//! The Docker Engine API executor (Docker, or Podman's compatible API):
//! prune within the plan's scope and filters, restart one container with a
//! graceful timeout. Every object it touches is checked against what the
//! engine reports now.
//!
//! How each prune scope maps to the engine:
//! - `exited_containers`: listed (`status=exited`), filtered here by age,
//!   labels and the policy's service allow/deny lists, then removed one by
//!   one without `force` (a container that started meanwhile is refused by
//!   the engine) and without its volumes.
//! - `unused_volumes`: listed (`dangling=true`: no container, running or
//!   not, uses them), only anonymous ones (a 64-hex name, or Docker's
//!   `com.docker.volume.anonymous` label), filtered by age and labels,
//!   removed one by one without `force` (the engine refuses a volume in use).
//! - `dangling_images`: listed (`dangling=true`), filtered here by age and
//!   labels (Podman's image prune ignores `label!`, so the deny labels are
//!   never left to the engine), removed one by one without `force`.
//! - `networks`: listed, filtered here by age, labels and the service
//!   lists (Podman's network prune ignores `label!`), predefined ones and
//!   those with a container on them kept, removed one by one.
//! - `build_cache`: the engine's prune endpoint with `until`, `label` and
//!   `label!` (the filters' excludes and the policy's deny labels); an
//!   engine without a build cache (Podman) reports none.
//!
//! The service deny and allow lists hold for every kind of object: a
//! container, volume or image labelled with a denied service (or, under an
//! allowlist, another service) is kept. An action for a host runs on that
//! host's engine (`execution.docker.engines`, or the default engine for the
//! hosts in `execution.docker.hosts`) and is refused (`wrong_host`) when no
//! engine is configured for its host.

use super::config::{ExecutionConfig, Settings};
use super::{BoxFuture, Built, Executor, Outcome, Registration, Report};
use crate::ident::is_valid_identifier;
use crate::policy::Policy;
use crate::Error;
use bollard::query_parameters::{
    InspectContainerOptions, InspectNetworkOptions, ListContainersOptionsBuilder,
    ListImagesOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    PruneBuildOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
    RemoveVolumeOptionsBuilder, RestartContainerOptionsBuilder,
};
use bollard::{ClientVersion, Docker};
use models::{Action, ActionKind, ActionName, PruneFilters, PruneScope, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

const NAME: &str = "docker";

/// The Docker executor in the registry: prunes and restarts, the default
/// for both.
pub const EXECUTOR: Registration = Registration {
    name: NAME,
    actions: &[ActionName::Prune, ActionName::Restart],
    default_for: &[ActionName::Prune, ActionName::Restart],
    check: |config, _| config.settings::<DockerConfig>().map(|_| ()),
    build,
};

/// `[execution.docker]`: how to reach the container engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerConfig {
    /// `unix:///path`, `tcp://host:port` or `https://host:port` (TLS with
    /// `DOCKER_CERT_PATH`). Empty: `REMEDY_DOCKER_HOST`, then
    /// `DOCKER_HOST`, else the local socket.
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

impl Settings for DockerConfig {
    const SECTION: &'static str = NAME;
}

/// The engine address is the policy's `execution.docker.host`, else
/// `REMEDY_DOCKER_HOST` (so a test or a container can point Remedy at its
/// engine without touching the policy or the Docker CLI's `DOCKER_HOST`),
/// else, inside [`DockerExecutor::connect`], `DOCKER_HOST`, else the local
/// socket. With none of them there is no engine to talk to: not built, like
/// an object store with no destination, so prune and restart are refused
/// with `no_executor` instead of failing on every call.
fn build(config: &ExecutionConfig) -> Built {
    let mut docker: DockerConfig = config.settings()?;
    if docker.host.is_empty() {
        if let Ok(h) = std::env::var("REMEDY_DOCKER_HOST") {
            docker.host = h;
        }
    }
    if docker.host.is_empty()
        && std::env::var_os("DOCKER_HOST").is_none()
        && !std::path::Path::new("/var/run/docker.sock").exists()
    {
        tracing::warn!(
            "no container engine (execution.docker.host, REMEDY_DOCKER_HOST, DOCKER_HOST or \
             /var/run/docker.sock): prune and restart will be refused with no_executor"
        );
        return Ok(None);
    }
    Ok(Some(Arc::new(DockerExecutor::connect(&docker)?)))
}
/// The API version spoken: the newest Podman 4 answers, and Docker still
/// accepts it.
const API: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};

/// Prunes and restarts through the Docker Engine API.
pub struct DockerExecutor {
    docker: Docker,
    /// Hosts (as incidents name them) the default engine acts for; `*`
    /// for any.
    hosts: Vec<String>,
    /// Engines of other hosts, by host name.
    engines: BTreeMap<String, Docker>,
    service_label: String,
}

impl DockerExecutor {
    /// Connect as `config` says (host, or `DOCKER_HOST`, or the local
    /// socket). TLS for `https://` hosts or with `DOCKER_TLS_VERIFY`, using
    /// the certificates in `DOCKER_CERT_PATH`. Nothing is sent yet.
    pub fn connect(config: &DockerConfig) -> crate::Result<DockerExecutor> {
        let host = if config.host.is_empty() {
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
        } else {
            config.host.clone()
        };
        let docker = connect_to(&host, config.timeout_secs)?;
        let mut engines = BTreeMap::new();
        for (name, address) in &config.engines {
            engines.insert(name.clone(), connect_to(address, config.timeout_secs)?);
        }
        Ok(DockerExecutor {
            docker,
            hosts: config.hosts.clone(),
            engines,
            service_label: config.service_label.clone(),
        })
    }

    /// The engine that acts for `host` (the action's target host): its own
    /// engine from `engines`, else the default engine if `hosts` names it
    /// (or is `*`). A host-scoped action for any other host is refused: the
    /// default engine would act on the wrong machine. An action that names
    /// no host goes to the default engine.
    fn engine_for(&self, host: Option<&str>) -> std::result::Result<&Docker, String> {
        let Some(h) = host else {
            return Ok(&self.docker);
        };
        if let Some(d) = self.engines.get(h) {
            return Ok(d);
        }
        if self.hosts.iter().any(|x| x == h || x == "*") {
            return Ok(&self.docker);
        }
        Err(format!(
            "wrong_host: the action is for host {h}, and no engine is configured for it \
             (execution.docker.hosts lists the default engine's hosts, execution.docker.engines \
             the others)"
        ))
    }

    /// The bollard client (tests use it to set up the engine).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Check that the engine answers.
    pub async fn ping(&self) -> crate::Result<()> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| Error::exec(NAME, format!("engine does not answer: {e}")))
    }

    /// List containers, retrying when the engine reports a state bollard
    /// cannot read: Podman says `stopped` between a container's exit and
    /// its clean-up, which on a loaded machine lasted over 5 s once (a CI
    /// run of the crafted-target test), so the engine gets up to 30 s.
    async fn list(
        &self,
        docker: &Docker,
        options: bollard::query_parameters::ListContainersOptions,
        what: &str,
    ) -> crate::Result<Vec<bollard::models::ContainerSummary>> {
        asking_again(
            || docker.list_containers(Some(options.clone())),
            |e| matches!(e, bollard::errors::Error::JsonSerdeError { .. }),
            120,
            |_| std::time::Duration::from_millis(250),
        )
        .await
        .map_err(|e| Error::exec(NAME, format!("listing containers ({what}): {e}")))
    }

    /// Whether labels on an object put it off limits for `policy` and the
    /// action's filters. `Err` names the rule.
    fn off_limits(
        &self,
        labels: &HashMap<String, String>,
        filters: &PruneFilters,
        policy: &Policy,
    ) -> Option<String> {
        for (k, v) in policy.deny_labels.iter().chain(&filters.exclude_labels) {
            if labels.get(k) == Some(v) {
                return Some(format!("denied_label {k}={v}"));
            }
        }
        for (k, v) in &filters.labels {
            if labels.get(k) != Some(v) {
                return Some(format!("lacks_label {k}={v}"));
            }
        }
        None
    }

    fn service_allowed(&self, labels: &HashMap<String, String>, policy: &Policy) -> Option<String> {
        let svc = labels.get(&self.service_label);
        if let Some(svc) = svc {
            if policy.deny_services.iter().any(|d| d == svc) {
                return Some(format!("denied_service {svc}"));
            }
        }
        if !policy.allow_services.is_empty() {
            match svc {
                Some(s) if policy.allow_services.iter().any(|a| a == s) => {}
                Some(s) => return Some(format!("not_allowed_service {s}")),
                None => return Some("not_allowed_service (no service label)".into()),
            }
        }
        None
    }

    /// The service lists for an object that is not a container (volume,
    /// image): one labelled with a denied service, or under an allowlist
    /// with another service, is off limits. One with no service label is
    /// judged by the deny labels and the action's filters alone.
    fn service_listed(&self, labels: &HashMap<String, String>, policy: &Policy) -> Option<String> {
        match labels.get(&self.service_label) {
            Some(_) => self.service_allowed(labels, policy),
            None => None,
        }
    }

    fn engine_filters(
        &self,
        filters: &PruneFilters,
        policy: &Policy,
    ) -> HashMap<String, Vec<String>> {
        let mut f: HashMap<String, Vec<String>> = HashMap::new();
        if let Some(secs) = filters.older_than_secs {
            f.insert("until".into(), vec![format!("{secs}s")]);
        }
        let with: Vec<String> = filters
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !with.is_empty() {
            f.insert("label".into(), with);
        }
        let without: Vec<String> = policy
            .deny_labels
            .iter()
            .chain(&filters.exclude_labels)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !without.is_empty() {
            f.insert("label!".into(), without);
        }
        f
    }

    async fn prune(
        &self,
        docker: &Docker,
        scope: &[PruneScope],
        filters: &PruneFilters,
        policy: &Policy,
    ) -> crate::Result<Report> {
        let mut report = Report::default();
        let mut notes = Vec::new();
        let now_s = super::wall_now().as_millis() / 1000;
        let old_enough = |created_s: i64| {
            filters
                .older_than_secs
                .is_none_or(|age| now_s - created_s >= age as i64)
        };
        // Containers first: the volumes of removed containers may become
        // unused, and are then pruned only if anonymous and in scope.
        let mut order = scope.to_vec();
        order.sort();
        order.dedup();
        order.sort_by_key(|s| match s {
            PruneScope::ExitedContainers => 0,
            PruneScope::UnusedVolumes => 1,
            PruneScope::DanglingImages => 2,
            PruneScope::Networks => 3,
            PruneScope::BuildCache => 4,
        });
        for s in order {
            match s {
                PruneScope::ExitedContainers => {
                    // Narrowed by the engine to the action's labels too
                    // (checked again here): fewer containers listed, fewer
                    // caught between states (Podman's transient `stopped`).
                    let with: Vec<String> = filters
                        .labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    let mut lf: HashMap<&str, Vec<String>> = HashMap::new();
                    lf.insert("status", vec!["exited".to_string()]);
                    if !with.is_empty() {
                        lf.insert("label", with);
                    }
                    let list = self
                        .list(
                            docker,
                            ListContainersOptionsBuilder::new()
                                .all(true)
                                .size(true)
                                .filters(&lf)
                                .build(),
                            "exited",
                        )
                        .await?;
                    let (mut n, mut kept) = (0, 0);
                    for c in list {
                        let id = c.id.clone().unwrap_or_default();
                        let labels = c.labels.clone().unwrap_or_default();
                        let exited = matches!(
                            c.state,
                            Some(bollard::models::ContainerSummaryStateEnum::EXITED)
                        );
                        if !exited
                            || !old_enough(c.created.unwrap_or(i64::MAX))
                            || self.off_limits(&labels, filters, policy).is_some()
                            || self.service_allowed(&labels, policy).is_some()
                        {
                            kept += 1;
                            continue;
                        }
                        match docker
                            .remove_container(
                                &id,
                                Some(
                                    RemoveContainerOptionsBuilder::new()
                                        .force(false)
                                        .v(false)
                                        .build(),
                                ),
                            )
                            .await
                        {
                            Ok(()) => {
                                n += 1;
                                report.bytes += c.size_rw.unwrap_or(0).max(0) as u64;
                                let name = c
                                    .names
                                    .and_then(|v| v.into_iter().next())
                                    .unwrap_or_else(|| id.clone());
                                report
                                    .objects
                                    .push(format!("container {}", name.trim_start_matches('/')));
                            }
                            Err(e) if is_status(&e, &[404, 409]) => kept += 1,
                            Err(e) => {
                                return Err(Error::exec(
                                    NAME,
                                    format!("removing container {id}: {e}"),
                                ))
                            }
                        }
                    }
                    notes.push(format!("{n} exited containers removed ({kept} kept)"));
                }
                PruneScope::UnusedVolumes => {
                    let mut lf = HashMap::new();
                    lf.insert("dangling", vec!["true"]);
                    let options = ListVolumesOptionsBuilder::new().filters(&lf).build();
                    let list =
                        listing_again_if_raced(|| docker.list_volumes(Some(options.clone())))
                            .await
                            .map_err(|e| {
                                Error::exec(NAME, format!("listing unused volumes: {e}"))
                            })?;
                    let (mut n, mut kept) = (0, 0);
                    for v in list.volumes.unwrap_or_default() {
                        let created = v
                            .created_at
                            .as_ref()
                            .map(|d| d.to_string())
                            .and_then(|d| Timestamp::parse_rfc3339(&d))
                            .map_or(i64::MAX, |t| t.as_millis() / 1000);
                        if !is_anonymous(&v.name, &v.labels)
                            || !old_enough(created)
                            || self.off_limits(&v.labels, filters, policy).is_some()
                            || self.service_listed(&v.labels, policy).is_some()
                        {
                            kept += 1;
                            continue;
                        }
                        match docker
                            .remove_volume(
                                &v.name,
                                Some(RemoveVolumeOptionsBuilder::new().force(false).build()),
                            )
                            .await
                        {
                            Ok(()) => {
                                n += 1;
                                let size = v.usage_data.as_ref().map_or(0, |u| u.size.max(0));
                                report.bytes += size as u64;
                                report.objects.push(format!("volume {}", v.name));
                            }
                            // In use after all (a container appeared), or gone.
                            Err(e) if is_status(&e, &[404, 409]) => kept += 1,
                            Err(e) => {
                                return Err(Error::exec(
                                    NAME,
                                    format!("removing volume {}: {e}", v.name),
                                ))
                            }
                        }
                    }
                    notes.push(format!(
                        "{n} unused anonymous volumes removed ({kept} kept)"
                    ));
                }
                PruneScope::DanglingImages => {
                    // Listed and removed one by one: Podman's image prune
                    // ignores `label!`, so the deny labels are applied here.
                    let mut lf = HashMap::new();
                    lf.insert("dangling", vec!["true"]);
                    let options = ListImagesOptionsBuilder::new()
                        .all(true)
                        .filters(&lf)
                        .build();
                    let list = listing_again_if_raced(|| docker.list_images(Some(options.clone())))
                        .await
                        .map_err(|e| Error::exec(NAME, format!("listing dangling images: {e}")))?;
                    let (mut n, mut kept) = (0, 0);
                    for i in list {
                        let dangling = i.repo_tags.iter().all(|t| t == "<none>:<none>");
                        if !dangling
                            || !old_enough(i.created)
                            || self.off_limits(&i.labels, filters, policy).is_some()
                            || self.service_listed(&i.labels, policy).is_some()
                        {
                            kept += 1;
                            continue;
                        }
                        match docker
                            .remove_image(
                                &i.id,
                                Some(RemoveImageOptionsBuilder::new().force(false).build()),
                                None,
                            )
                            .await
                        {
                            Ok(_) => {
                                n += 1;
                                report.bytes += i.size.max(0) as u64;
                                report
                                    .objects
                                    .push(format!("image {}", i.id.trim_start_matches("sha256:")));
                            }
                            // Used by a container after all, or gone.
                            Err(e) if is_status(&e, &[404, 409]) => kept += 1,
                            Err(e) => {
                                return Err(Error::exec(
                                    NAME,
                                    format!("removing image {}: {e}", i.id),
                                ))
                            }
                        }
                    }
                    notes.push(format!("{n} dangling images removed ({kept} kept)"));
                }
                PruneScope::Networks => {
                    // Listed and removed one by one, like images: Podman's
                    // network prune ignores `label!`, so the deny rules
                    // are applied here. A network with a container on it
                    // is kept (and the engine refuses to remove one that
                    // gained a container meanwhile).
                    let mut lf: HashMap<&str, Vec<String>> = HashMap::new();
                    let with: Vec<String> = filters
                        .labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    if !with.is_empty() {
                        lf.insert("label", with);
                    }
                    let list = docker
                        .list_networks(Some(ListNetworksOptionsBuilder::new().filters(&lf).build()))
                        .await
                        .map_err(|e| Error::exec(NAME, format!("listing networks: {e}")))?;
                    let (mut n, mut kept) = (0, 0);
                    for net in list {
                        let name = net.name.clone().unwrap_or_default();
                        let labels = net.labels.clone().unwrap_or_default();
                        let created = net
                            .created
                            .as_ref()
                            .map(|d| d.to_string())
                            .and_then(|d| Timestamp::parse_rfc3339(&d))
                            .map_or(i64::MAX, |t| t.as_millis() / 1000);
                        let predefined = matches!(
                            name.as_str(),
                            "bridge" | "host" | "none" | "podman" | "ingress" | "docker_gwbridge"
                        );
                        if name.is_empty()
                            || predefined
                            || !old_enough(created)
                            || self.off_limits(&labels, filters, policy).is_some()
                            || self.service_listed(&labels, policy).is_some()
                        {
                            kept += 1;
                            continue;
                        }
                        let inspected = docker
                            .inspect_network(&name, None::<InspectNetworkOptions>)
                            .await;
                        let in_use = match &inspected {
                            Ok(i) => i.containers.as_ref().is_some_and(|c| !c.is_empty()),
                            Err(e) if is_status(e, &[404]) => true,
                            Err(e) => {
                                return Err(Error::exec(
                                    NAME,
                                    format!("inspecting network {name}: {e}"),
                                ))
                            }
                        };
                        if in_use {
                            kept += 1;
                            continue;
                        }
                        match docker.remove_network(&name).await {
                            Ok(()) => {
                                n += 1;
                                report.objects.push(format!("network {name}"));
                            }
                            // In use after all, or gone.
                            Err(e) if is_status(&e, &[403, 404, 409]) => kept += 1,
                            Err(e) => {
                                return Err(Error::exec(
                                    NAME,
                                    format!("removing network {name}: {e}"),
                                ))
                            }
                        }
                    }
                    notes.push(format!("{n} unused networks removed ({kept} kept)"));
                }
                PruneScope::BuildCache => {
                    let f = self.engine_filters(filters, policy);
                    match docker
                        .prune_build(Some(PruneBuildOptionsBuilder::new().filters(&f).build()))
                        .await
                    {
                        Ok(r) => {
                            let deleted = r.caches_deleted.unwrap_or_default();
                            report.bytes += r.space_reclaimed.unwrap_or(0).max(0) as u64;
                            notes.push(format!("{} build cache entries removed", deleted.len()));
                            report
                                .objects
                                .extend(deleted.into_iter().map(|d| format!("build-cache {d}")));
                        }
                        // Podman has no BuildKit cache endpoint: nothing to prune.
                        Err(e) if is_status(&e, &[404, 501]) => {
                            notes.push("build cache: the engine has none".into())
                        }
                        Err(e) => {
                            return Err(Error::exec(NAME, format!("pruning build cache: {e}")))
                        }
                    }
                }
            }
        }
        report.detail = format!("{}; {} bytes reclaimed", notes.join(", "), report.bytes);
        Ok(report)
    }

    async fn restart(
        &self,
        docker: &Docker,
        action: &Action,
        graceful_secs: u64,
        policy: &Policy,
    ) -> crate::Result<Outcome> {
        let Some(name) = action.target.container.as_deref() else {
            return Ok(Outcome::Refused(
                "no_container: a restart needs a container target".into(),
            ));
        };
        if !is_valid_identifier(name) {
            return Ok(Outcome::Refused("invalid_identifier: container".into()));
        }
        // Found by exact name in the engine's list: an inspect would also
        // resolve id prefixes, and a name is all a log line may give. The
        // engines read a name filter as a regular expression that may
        // match anywhere (`a` lists every container with an `a` in its
        // name, and one of them caught in Podman's `stopped` state, which
        // bollard cannot read, failed the whole listing): anchored, with
        // the identifier's one special character escaped, it lists the
        // container named and nothing else (Docker's names start with `/`,
        // Podman's compatible API compares them without it).
        let mut lf = HashMap::new();
        lf.insert("name", vec![format!("^/?{}$", name.replace('.', "\\."))]);
        let listed = self
            .list(
                docker,
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&lf)
                    .build(),
                name,
            )
            .await?;
        let Some(summary) = listed.into_iter().find(|c| {
            c.names
                .as_ref()
                .is_some_and(|n| n.iter().any(|n| n.trim_start_matches('/') == name))
        }) else {
            return Ok(Outcome::Refused(format!(
                "not_found: no container named {name}"
            )));
        };
        let id = summary.id.clone().unwrap_or_default();
        if !matches!(
            summary.state,
            Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
        ) {
            return Ok(Outcome::Refused(format!(
                "not_running: container {name} is {}; a restart would start it",
                summary
                    .state
                    .map_or("in an unknown state".to_string(), |s| s.to_string())
            )));
        }
        let before = docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| Error::exec(NAME, format!("inspecting container {name}: {e}")))?;
        let labels = summary.labels.clone().unwrap_or_default();
        if let Some(why) = self.off_limits(&labels, &PruneFilters::default(), policy) {
            return Ok(Outcome::Refused(format!("{why} on container {name}")));
        }
        let svc = labels.get(&self.service_label).cloned();
        if let (Some(want), Some(have)) = (&action.target.service, &svc) {
            if want != have {
                return Ok(Outcome::Refused(format!(
                    "target_mismatch: container {name} belongs to service {have}, not {want}"
                )));
            }
        }
        if let Some(why) = self.service_allowed(&labels, policy) {
            return Ok(Outcome::Refused(format!("{why} on container {name}")));
        }
        // Blast radius against the engine's view now: replicas of the
        // service, and how many of the others are already down.
        if let Some(svc) = &svc {
            let mut lf = HashMap::new();
            lf.insert("label", vec![format!("{}={svc}", self.service_label)]);
            let replicas = self
                .list(
                    docker,
                    ListContainersOptionsBuilder::new()
                        .all(true)
                        .filters(&lf)
                        .build(),
                    svc,
                )
                .await?;
            let total = replicas.len().max(1) as u32;
            let busy = replicas
                .iter()
                .filter(|r| r.id.as_deref() != Some(id.as_str()))
                .filter(|r| {
                    !matches!(
                        r.state,
                        Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
                    )
                })
                .count() as u32;
            let share = (busy + 1) * 100 / total;
            if share > policy.max_blast_radius_percent {
                return Ok(Outcome::Refused(format!(
                    "blast_radius: {} of {total} replicas of {svc} would be down ({share}% > {}%)",
                    busy + 1,
                    policy.max_blast_radius_percent
                )));
            }
        }
        let started_before = before.state.as_ref().and_then(|s| s.started_at.clone());
        docker
            .restart_container(
                &id,
                Some(
                    RestartContainerOptionsBuilder::new()
                        .t(graceful_secs.min(i32::MAX as u64) as i32)
                        .build(),
                ),
            )
            .await
            .map_err(|e| Error::exec(NAME, format!("restarting container {name}: {e}")))?;
        let after = docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| {
                Error::exec(
                    NAME,
                    format!("inspecting container {name} after restart: {e}"),
                )
            })?;
        let state = after.state.unwrap_or_default();
        let started_after = state.started_at.clone();
        if state.running != Some(true) || started_after == started_before {
            return Err(Error::exec(
                NAME,
                format!(
                    "container {name} did not come back: running {:?}, started at {:?}",
                    state.running, started_after
                ),
            ));
        }
        Ok(Outcome::Done(Report {
            objects: vec![format!("container {name}")],
            bytes: 0,
            retries: 0,
            detail: format!(
                "restarted container {name} ({}) with a {graceful_secs} s graceful stop; running again since {}",
                &id[..id.len().min(12)],
                started_after.unwrap_or_default()
            ),
        }))
    }
}

impl Executor for DockerExecutor {
    fn name(&self) -> &'static str {
        NAME
    }

    fn execute<'a>(
        &'a self,
        action: &'a Action,
        policy: &'a Policy,
    ) -> BoxFuture<'a, crate::Result<Outcome>> {
        Box::pin(async move {
            let docker = match self.engine_for(action.target.host.as_deref()) {
                Ok(d) => d,
                Err(why) => return Ok(Outcome::Refused(why)),
            };
            match &action.kind {
                ActionKind::Prune { scope, filters } => Ok(Outcome::Done(
                    self.prune(docker, scope, filters, policy).await?,
                )),
                ActionKind::Restart {
                    graceful_timeout_secs,
                } => {
                    self.restart(docker, action, *graceful_timeout_secs, policy)
                        .await
                }
                other => Ok(Outcome::Refused(format!(
                    "not_supported: the docker executor does not {}",
                    other.name()
                ))),
            }
        })
    }
}

/// A client for the engine at `host` (`unix://`, `tcp://`, `http://` or
/// `https://`; TLS for `https://` or with `DOCKER_TLS_VERIFY`, using the
/// certificates in `DOCKER_CERT_PATH`). Nothing is sent yet.
fn connect_to(host: &str, timeout: u64) -> crate::Result<Docker> {
    if let Some(path) = host.strip_prefix("unix://") {
        Docker::connect_with_unix(path, timeout, &API)
    } else if host.starts_with("https://")
        || (host.starts_with("tcp://") && std::env::var_os("DOCKER_TLS_VERIFY").is_some())
    {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let certs = std::path::PathBuf::from(
            std::env::var("DOCKER_CERT_PATH").unwrap_or_else(|_| "~/.docker".into()),
        );
        Docker::connect_with_ssl(
            host,
            &certs.join("key.pem"),
            &certs.join("cert.pem"),
            &certs.join("ca.pem"),
            timeout,
            &API,
        )
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_http(host, timeout, &API)
    } else {
        return Err(Error::exec(
            NAME,
            format!("unsupported engine address {host:?}; use unix://, tcp:// or https://"),
        ));
    }
    .map_err(|e| Error::exec(NAME, format!("cannot connect to {host}: {e}")))
}

/// A listing, asked again (up to four times in all, a moment apart) when
/// the engine failed it because an object it was listing vanished in the
/// meantime. Podman answers 500 "image not known" to an image listing
/// while another client removes one of the images (another prune, a CI
/// clean-up; our own test suite, once); the next listing is consistent.
/// Any other error is returned at once.
async fn listing_again_if_raced<T, F, Fut>(list: F) -> Result<T, bollard::errors::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, bollard::errors::Error>>,
{
    asking_again(list, vanished_while_listing, 4, |attempt| {
        std::time::Duration::from_millis(100 * attempt)
    })
    .await
}

/// Ask the engine with `ask` up to `tries` times, while it fails in a way
/// `again` says will pass, pausing `pause(n)` after the n-th failure; the
/// answer, or the last error.
async fn asking_again<T, F, Fut>(
    mut ask: F,
    again: impl Fn(&bollard::errors::Error) -> bool,
    tries: u64,
    pause: impl Fn(u64) -> std::time::Duration,
) -> Result<T, bollard::errors::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, bollard::errors::Error>>,
{
    let mut attempt = 1;
    loop {
        match ask().await {
            Err(e) if attempt < tries && again(&e) => {
                tokio::time::sleep(pause(attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// A server error that says an object was not found: during a listing,
/// something removed it between the engine's enumeration and its reading.
fn vanished_while_listing(e: &bollard::errors::Error) -> bool {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message,
        } => {
            let m = message.to_ascii_lowercase();
            m.contains("not known") || m.contains("no such")
        }
        _ => false,
    }
}

fn is_status(e: &bollard::errors::Error, codes: &[u16]) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code, .. } if codes.contains(status_code))
}

/// Anonymous volumes: the engine names them with 64 hex digits (Docker
/// also labels them).
fn is_anonymous(name: &str, labels: &HashMap<String, String>) -> bool {
    labels.contains_key("com.docker.volume.anonymous")
        || (name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(status_code: u16, message: &str) -> bollard::errors::Error {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message: message.to_string(),
        }
    }

    /// Podman's answer to an image listing while another client removes
    /// an image (seen in CI, reproduced by running the Podman tests twice
    /// at once): listed again, the listing is consistent.
    #[tokio::test]
    async fn a_listing_raced_by_a_removal_is_asked_again() {
        let raced = "retrieving label for image \"adf3d9\": you may need to remove the image \
                     to resolve the error: reading image \"adf3d9\": image not known";
        assert!(vanished_while_listing(&server_error(500, raced)));
        assert!(!vanished_while_listing(&server_error(
            500,
            "database is locked"
        )));
        assert!(!vanished_while_listing(&server_error(404, "no such image")));

        let mut calls = 0;
        let got = listing_again_if_raced(|| {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(server_error(500, raced))
                } else {
                    Ok(vec![n])
                }
            }
        })
        .await;
        assert_eq!(got.unwrap(), vec![3]);

        // Any other failure is the caller's at once; a race that does not
        // settle gives up after four listings.
        let mut calls = 0;
        let got: Result<Vec<u32>, _> = listing_again_if_raced(|| {
            calls += 1;
            async { Err(server_error(500, "database is locked")) }
        })
        .await;
        assert!(got.is_err());
        assert_eq!(calls, 1);
        let mut calls = 0;
        let got: Result<Vec<u32>, _> = listing_again_if_raced(|| {
            calls += 1;
            async { Err(server_error(500, raced)) }
        })
        .await;
        assert!(got.is_err());
        assert_eq!(calls, 4);
    }
}
