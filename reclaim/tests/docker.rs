//! The Docker executor against a real container engine: Podman's
//! Docker-compatible API that `scripts/podman.sh` starts (scripts/test.sh
//! exports its address as `REMEDY_DOCKER_HOST`). Every object a test makes
//! carries a unique `remedy.test` label and unique names, and prunes are
//! narrowed to that label, so tests never touch each other's objects. Every
//! wait is bounded.

use bollard::models::{ContainerCreateBody, HostConfig, VolumeCreateRequest};
use bollard::query_parameters::{
    CommitContainerOptionsBuilder, CreateContainerOptionsBuilder, InspectContainerOptions,
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, StartContainerOptions,
};
use bollard::Docker;
use models::{
    Action, ActionKind, ActionStatus, PruneFilters, PruneScope, RootCauseClass, Target, Timestamp,
};
use reclaim::exec::config::DockerConfig;
use reclaim::exec::{wall_now, DockerExecutor, Driver, Ledger};
use reclaim::{AuditEntry, Policy};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

const SERVICE_LABEL: &str = "com.docker.compose.service";

fn host() -> String {
    std::env::var("REMEDY_DOCKER_HOST").expect(
        "REMEDY_DOCKER_HOST is not set: run scripts/test.sh, which starts Podman's Docker API \
         (scripts/podman.sh) and sets it",
    )
}

fn image() -> String {
    std::env::var("REMEDY_TEST_IMAGE").unwrap_or_else(|_| "localhost/remedy-busybox:latest".into())
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

fn executor() -> DockerExecutor {
    DockerExecutor::connect(&DockerConfig {
        host: host(),
        ..DockerConfig::default()
    })
    .unwrap()
}

struct Fixture {
    docker: Docker,
    run: String,
}

impl Fixture {
    async fn new(prefix: &str) -> Fixture {
        let exec = executor();
        exec.ping()
            .await
            .expect("the engine at REMEDY_DOCKER_HOST does not answer");
        Fixture {
            docker: exec.client().clone(),
            run: unique(prefix),
        }
    }

    fn labels(&self, extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut l = HashMap::from([("remedy.test".to_string(), self.run.clone())]);
        for (k, v) in extra {
            l.insert(k.to_string(), v.to_string());
        }
        l
    }

    /// A container named `<run>-<name>`, started; `cmd` decides whether it
    /// exits at once or keeps running.
    async fn container(
        &self,
        name: &str,
        cmd: &[&str],
        labels: &[(&str, &str)],
        binds: &[String],
    ) -> String {
        let full = format!("{}-{name}", self.run);
        self.docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name(&full).build()),
                ContainerCreateBody {
                    image: Some(image()),
                    cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                    labels: Some(self.labels(labels)),
                    host_config: Some(HostConfig {
                        binds: Some(binds.to_vec()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("creating container {full}: {e}"));
        self.docker
            .start_container(&full, None::<StartContainerOptions>)
            .await
            .unwrap_or_else(|e| panic!("starting container {full}: {e}"));
        let want_running = cmd.first() == Some(&"sleep");
        for _ in 0..100 {
            let st = self.state(&full).await;
            if st.0 == want_running {
                return full;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("container {full} did not reach running={want_running} within 10 s");
    }

    /// (running, started_at) of a container. Podman answers an inspect of
    /// an exited container with a state bollard cannot read (`stopped`), so
    /// the list says whether it runs and only running ones are inspected.
    async fn state(&self, name: &str) -> (bool, String) {
        let mut f = HashMap::new();
        f.insert("name", vec![name.to_string()]);
        let mut listed = Err(String::new());
        for _ in 0..40 {
            match self
                .docker
                .list_containers(Some(
                    ListContainersOptionsBuilder::new()
                        .all(true)
                        .filters(&f)
                        .build(),
                ))
                .await
            {
                Ok(v) => {
                    listed = Ok(v);
                    break;
                }
                // Podman's transient `stopped` state (see DockerExecutor::list).
                Err(e) => {
                    listed = Err(e.to_string());
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
        let c = listed
            .unwrap_or_else(|e| panic!("listing {name}: {e}"))
            .into_iter()
            .find(|c| {
                c.names
                    .iter()
                    .flatten()
                    .any(|n| n.trim_start_matches('/') == name)
            })
            .unwrap_or_else(|| panic!("container {name} is gone"));
        if c.state != Some(bollard::models::ContainerSummaryStateEnum::RUNNING) {
            return (false, String::new());
        }
        // It may exit between the list and the inspect (`stopped` again).
        let Ok(c) = self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        else {
            return (false, String::new());
        };
        let s = c.state.unwrap_or_default();
        (s.running.unwrap_or(false), s.started_at.unwrap_or_default())
    }

    async fn volume(&self, name: &str, labels: &[(&str, &str)]) -> String {
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.to_string()),
                labels: Some(self.labels(labels)),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("creating volume {name}: {e}"));
        name.to_string()
    }

    /// An image tagged `repo:latest` with the run label (and `labels`),
    /// committed from `container`; committing twice leaves the first
    /// dangling.
    async fn commit(&self, container: &str, repo: &str, labels: &[(&str, &str)]) -> String {
        let mut changes = format!("LABEL remedy.test={}", self.run);
        for (k, v) in labels {
            changes.push_str(&format!("\nLABEL {k}={v}"));
        }
        let r = self
            .docker
            .commit_container(
                CommitContainerOptionsBuilder::new()
                    .container(container)
                    .repo(repo)
                    .tag("latest")
                    .changes(&changes)
                    .build(),
                bollard::models::ContainerConfig::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("committing {container} to {repo}: {e}"));
        r.id
    }

    async fn container_names(&self) -> Vec<String> {
        let mut f = HashMap::new();
        f.insert("label", vec![format!("remedy.test={}", self.run)]);
        let mut v: Vec<String> = self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&f)
                    .build(),
            ))
            .await
            .unwrap()
            .into_iter()
            .flat_map(|c| c.names.unwrap_or_default())
            .map(|n| {
                n.trim_start_matches('/')
                    .trim_start_matches(&format!("{}-", self.run))
                    .to_string()
            })
            .collect();
        v.sort();
        v
    }

    async fn volume_names(&self) -> Vec<String> {
        let mut f = HashMap::new();
        f.insert("label", vec![format!("remedy.test={}", self.run)]);
        let mut v: Vec<String> = self
            .docker
            .list_volumes(Some(ListVolumesOptionsBuilder::new().filters(&f).build()))
            .await
            .unwrap()
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect();
        v.sort();
        v
    }

    async fn image_ids(&self) -> Vec<String> {
        let mut f = HashMap::new();
        f.insert("label", vec![format!("remedy.test={}", self.run)]);
        let mut v: Vec<String> = self
            .docker
            .list_images(Some(
                ListImagesOptionsBuilder::new()
                    .all(true)
                    .filters(&f)
                    .build(),
            ))
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id.trim_start_matches("sha256:").to_string())
            .collect();
        v.sort();
        v
    }

    /// Remove everything this test made (force), whatever happened.
    async fn cleanup(&self) {
        let mut f = HashMap::new();
        f.insert("label", vec![format!("remedy.test={}", self.run)]);
        for c in self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&f)
                    .build(),
            ))
            .await
            .unwrap_or_default()
        {
            let _ = self
                .docker
                .remove_container(
                    c.id.as_deref().unwrap_or_default(),
                    Some(
                        RemoveContainerOptionsBuilder::new()
                            .force(true)
                            .v(true)
                            .build(),
                    ),
                )
                .await;
        }
        for v in self.volume_names().await {
            let _ = self
                .docker
                .remove_volume(&v, None::<bollard::query_parameters::RemoveVolumeOptions>)
                .await;
        }
        for i in self.image_ids().await {
            let _ = self
                .docker
                .remove_image(
                    &i,
                    Some(RemoveImageOptionsBuilder::new().force(true).build()),
                    None,
                )
                .await;
        }
    }
}

fn hex64(seed: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut out = String::new();
    for i in 0..4 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (seed, i).hash(&mut h);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

fn action(id: &str, kind: ActionKind, target: Target) -> Action {
    Action {
        id: id.to_string(),
        incident_id: format!("inc-{id}"),
        class: RootCauseClass::DiskPressure,
        kind,
        target,
        status: ActionStatus::Planned,
        dry_run: false,
        requires_approval: false,
        planned_at: Timestamp::from_millis(0),
        verified: None,
    }
}

fn live_policy() -> Policy {
    Policy {
        dry_run: false,
        require_approval: vec![],
        deny_services: vec!["database".into()],
        deny_labels: BTreeMap::from([("remedy.io/protected".into(), "true".into())]),
        cooldown_secs: 600,
        max_blast_radius_percent: 50,
        ..Policy::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_removes_exactly_what_the_policy_allows() {
    let fx = Fixture::new("prune").await;
    // Exited containers: one the policy allows, one of a denied service,
    // one carrying the protected label, one running (never pruned).
    fx.container("exited-web", &["true"], &[(SERVICE_LABEL, "web")], &[])
        .await;
    fx.container("exited-db", &["true"], &[(SERVICE_LABEL, "database")], &[])
        .await;
    fx.container(
        "exited-protected",
        &["true"],
        &[(SERVICE_LABEL, "web"), ("remedy.io/protected", "true")],
        &[],
    )
    .await;
    // Volumes: anonymous unused (goes), anonymous in use by a running
    // container (stays), anonymous unused but protected (stays), named
    // unused (stays: only anonymous volumes are pruned).
    let anon_unused = fx.volume(&hex64(&format!("{}-a", fx.run)), &[]).await;
    let anon_used = fx.volume(&hex64(&format!("{}-b", fx.run)), &[]).await;
    let anon_protected = fx
        .volume(
            &hex64(&format!("{}-c", fx.run)),
            &[("remedy.io/protected", "true")],
        )
        .await;
    let named = fx.volume(&format!("{}-named", fx.run), &[]).await;
    let running = fx
        .container(
            "running-web",
            &["sleep", "600"],
            &[(SERVICE_LABEL, "web")],
            &[format!("{anon_used}:/data")],
        )
        .await;
    // Images: committing twice to one tag leaves the first dangling; one
    // dangling image carries the protected label.
    let repo = format!("localhost/{}", fx.run);
    let dangling = fx.commit(&running, &format!("{repo}-a"), &[]).await;
    let tagged = fx.commit(&running, &format!("{repo}-a"), &[]).await;
    let dangling_protected = fx
        .commit(
            &running,
            &format!("{repo}-b"),
            &[("remedy.io/protected", "true")],
        )
        .await;
    let tagged_protected = fx
        .commit(
            &running,
            &format!("{repo}-b"),
            &[("remedy.io/protected", "true")],
        )
        .await;
    assert_ne!(
        dangling, tagged,
        "two commits gave the same image; cannot make a dangling one"
    );

    let before_containers = fx.container_names().await;
    let before_volumes = fx.volume_names().await;
    let before_images = fx.image_ids().await;
    assert_eq!(before_containers.len(), 4);
    assert_eq!(before_volumes.len(), 4);
    assert_eq!(before_images.len(), 4, "{before_images:?}");

    let prune = ActionKind::Prune {
        scope: vec![
            PruneScope::ExitedContainers,
            PruneScope::UnusedVolumes,
            PruneScope::DanglingImages,
            PruneScope::BuildCache,
        ],
        filters: PruneFilters {
            labels: BTreeMap::from([("remedy.test".into(), fx.run.clone())]),
            ..Default::default()
        },
    };
    let target = Target {
        service: Some("web".into()),
        host: Some("node-1".into()),
        container: None,
    };

    // Dry-run first: the plan is audited, nothing is touched.
    let mut audit: Vec<AuditEntry> = vec![];
    let mut dry = Driver::new(Policy::default(), Ledger::in_memory())
        .with_executor("prune", Arc::new(executor()));
    let mut a = action(&format!("{}-prune", fx.run), prune.clone(), target.clone());
    a.dry_run = true;
    assert!(dry
        .execute(&mut a, wall_now(), &mut audit)
        .await
        .unwrap()
        .is_none());
    assert_eq!(audit.last().unwrap().reason, "dry_run");
    assert_eq!(fx.container_names().await, before_containers);
    assert_eq!(fx.volume_names().await, before_volumes);
    assert_eq!(fx.image_ids().await, before_images);

    // Live, with the allowlist naming only web.
    let mut policy = live_policy();
    policy.allow_services = vec!["web".into()];
    let mut driver =
        Driver::new(policy, Ledger::in_memory()).with_executor("prune", Arc::new(executor()));
    let mut a = action(&format!("{}-prune", fx.run), prune.clone(), target.clone());
    let report = driver
        .execute(&mut a, wall_now(), &mut audit)
        .await
        .unwrap()
        .expect("the prune ran");
    assert_eq!(a.status, ActionStatus::Executed, "{:?}", audit.last());
    let mut removed = report.objects.clone();
    removed.sort();
    let mut expected = vec![
        format!("container {}-exited-web", fx.run),
        format!("volume {anon_unused}"),
        format!("image sha256:{dangling}"),
    ];
    expected.sort();
    // Engines differ on whether image ids carry the sha256: prefix.
    let norm =
        |v: &[String]| -> Vec<String> { v.iter().map(|s| s.replace("sha256:", "")).collect() };
    assert_eq!(norm(&removed), norm(&expected), "report: {}", report.detail);
    assert_eq!(
        fx.container_names().await,
        vec!["exited-db", "exited-protected", "running-web"],
        "only the allowed exited container may go"
    );
    let mut vols = vec![anon_used.clone(), anon_protected.clone(), named.clone()];
    vols.sort();
    assert_eq!(fx.volume_names().await, vols);
    let mut imgs = vec![
        tagged.clone(),
        dangling_protected.clone(),
        tagged_protected.clone(),
    ];
    imgs.sort();
    assert_eq!(fx.image_ids().await, imgs);
    assert!(
        fx.state(&running).await.0,
        "the running container was disturbed"
    );
    let steps: Vec<&str> = audit
        .iter()
        .filter(|e| e.action_id == a.id)
        .map(|e| e.decision.as_str())
        .collect();
    assert_eq!(
        steps,
        [
            "requested",
            "not_executed",
            "requested",
            "started",
            "executed"
        ]
    );

    // Idempotent: the same action again changes nothing and says why.
    let mut again = action(&format!("{}-prune", fx.run), prune.clone(), target.clone());
    assert!(driver
        .execute(&mut again, wall_now(), &mut audit)
        .await
        .unwrap()
        .is_none());
    assert!(
        audit.last().unwrap().reason.starts_with("already_executed"),
        "{:?}",
        audit.last()
    );
    assert_eq!(fx.image_ids().await, imgs);
    // The trail, for the README (`--nocapture`).
    for e in &audit {
        println!("audit: {}", serde_json::to_string(e).unwrap());
    }
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_happens_once_within_its_cooldown() {
    let fx = Fixture::new("restart").await;
    // A service of its own: the blast radius counts every replica the
    // engine knows, other tests' included.
    let svc = format!("{}-web", fx.run);
    let web1 = fx
        .container(
            "web-1",
            &["sleep", "600"],
            &[(SERVICE_LABEL, svc.as_str())],
            &[],
        )
        .await;
    let web2 = fx
        .container(
            "web-2",
            &["sleep", "600"],
            &[(SERVICE_LABEL, svc.as_str())],
            &[],
        )
        .await;
    let (_, started0) = fx.state(&web1).await;
    let (_, started_other) = fx.state(&web2).await;
    let restart = ActionKind::Restart {
        graceful_timeout_secs: 1,
    };
    let target = Target {
        service: Some(svc.clone()),
        host: None,
        container: Some(web1.clone()),
    };
    let mut audit: Vec<AuditEntry> = vec![];
    let mut driver = Driver::new(live_policy(), Ledger::in_memory())
        .with_executor("restart", Arc::new(executor()));
    // The memory-leak incident's restart.
    let mut first = action(
        &format!("{}-a-restart", fx.run),
        restart.clone(),
        target.clone(),
    );
    first.class = RootCauseClass::MemoryLeak;
    let r = driver
        .execute(&mut first, wall_now(), &mut audit)
        .await
        .unwrap();
    assert_eq!(first.status, ActionStatus::Executed, "{:?}", audit.last());
    assert!(
        r.unwrap().detail.contains("restarted container"),
        "{:?}",
        audit.last()
    );
    let (running, started1) = fx.state(&web1).await;
    assert!(
        running && started1 != started0,
        "not restarted: {started0} -> {started1}"
    );
    // A second incident on the same container inside the cooldown: refused.
    let mut second = action(
        &format!("{}-b-restart", fx.run),
        restart.clone(),
        target.clone(),
    );
    assert!(driver
        .execute(&mut second, wall_now(), &mut audit)
        .await
        .unwrap()
        .is_none());
    assert!(
        matches!(&second.status, ActionStatus::Skipped { reason } if reason.starts_with("cooldown")),
        "{:?}",
        second.status
    );
    assert_eq!(
        fx.state(&web1).await.1,
        started1,
        "restarted twice within the cooldown"
    );
    assert_eq!(
        fx.state(&web2).await.1,
        started_other,
        "the other replica was touched"
    );
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_targets_never_widen_what_runs() {
    let fx = Fixture::new("crafted").await;
    let web = fx
        .container("web-1", &["sleep", "600"], &[(SERVICE_LABEL, "web")], &[])
        .await;
    let db = fx
        .container(
            "db-1",
            &["sleep", "600"],
            &[(SERVICE_LABEL, "database")],
            &[],
        )
        .await;
    let vault = fx
        .container(
            "vault-1",
            &["sleep", "600"],
            &[(SERVICE_LABEL, "web"), ("remedy.io/protected", "true")],
            &[],
        )
        .await;
    let before: Vec<(bool, String)> = vec![
        fx.state(&web).await,
        fx.state(&db).await,
        fx.state(&vault).await,
    ];
    let restart = ActionKind::Restart {
        graceful_timeout_secs: 1,
    };
    let cases = [
        // Shell metacharacters and a second name smuggled in a log line.
        (
            Some("web"),
            format!("{web}; podman rm -f {db}"),
            "invalid_identifier",
        ),
        (Some("web"), format!("{web} {db}"), "invalid_identifier"),
        (
            Some("web"),
            "$(podman ps -aq)".to_string(),
            "invalid_identifier",
        ),
        // A log line of service web naming the database's container.
        (Some("web"), db.clone(), "target_mismatch"),
        // Naming the database by its own service: denied by policy.
        (Some("database"), db.clone(), "denied_service"),
        // A protected container.
        (Some("web"), vault.clone(), "denied_label"),
        // An id prefix is not a name.
        (Some("web"), "a".to_string(), "not_found"),
    ];
    let mut audit: Vec<AuditEntry> = vec![];
    let mut driver = Driver::new(live_policy(), Ledger::in_memory())
        .with_executor("restart", Arc::new(executor()));
    for (i, (svc, container, why)) in cases.iter().enumerate() {
        let target = Target {
            service: svc.map(str::to_string),
            host: None,
            container: Some(container.clone()),
        };
        let mut a = action(&format!("{}-{i}-restart", fx.run), restart.clone(), target);
        assert!(
            driver
                .execute(&mut a, wall_now(), &mut audit)
                .await
                .unwrap()
                .is_none(),
            "case {i} ran"
        );
        let reason = match &a.status {
            ActionStatus::Skipped { reason } => reason.clone(),
            other => panic!("case {i} ({container:?}): {other:?}"),
        };
        assert!(reason.contains(why), "case {i} ({container:?}): {reason}");
    }
    let after: Vec<(bool, String)> = vec![
        fx.state(&web).await,
        fx.state(&db).await,
        fx.state(&vault).await,
    ];
    assert_eq!(before, after, "a crafted target changed a container");
    fx.cleanup().await;
}
