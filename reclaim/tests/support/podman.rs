//! A container engine for tests: Podman's Docker-compatible API that
//! `scripts/podman.sh` starts (scripts/test.sh exports its address as
//! `REMEDY_DOCKER_HOST`), with helpers to make containers, volumes and
//! images carrying a per-run `remedy.test` label, read them back and remove
//! them. Shared by `reclaim/tests/docker.rs` (the executor on its own) and
//! `tests/it/execute.rs` (`remedy replay --execute`, `remedy serve`), each
//! including this file with `#[path]`. Every wait is bounded.

// Each test crate uses a different part of this file.
#![allow(dead_code)]

use bollard::models::{ContainerCreateBody, HostConfig, VolumeCreateRequest};
use bollard::query_parameters::{
    CommitContainerOptionsBuilder, CreateContainerOptionsBuilder, InspectContainerOptions,
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, StartContainerOptions,
};
use bollard::Docker;
use reclaim::exec::{DockerConfig, DockerExecutor};
use std::collections::HashMap;
use std::time::Duration;

pub const SERVICE_LABEL: &str = "com.docker.compose.service";

pub fn docker_host() -> String {
    std::env::var("REMEDY_DOCKER_HOST").expect(
        "REMEDY_DOCKER_HOST is not set: run scripts/test.sh, which starts Podman's Docker API \
         (scripts/podman.sh) and sets it",
    )
}

pub fn image() -> String {
    std::env::var("REMEDY_TEST_IMAGE").unwrap_or_else(|_| "localhost/remedy-busybox:latest".into())
}

pub fn unique(prefix: &str) -> String {
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

/// A 64-hex-digit name derived from `seed`: what an anonymous volume's
/// name looks like.
pub fn hex64(seed: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut out = String::new();
    for i in 0..4 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (seed, i).hash(&mut h);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

#[derive(Clone)]
pub struct Engine {
    pub docker: Docker,
    pub run: String,
}

impl Engine {
    /// Connect to the engine at `REMEDY_DOCKER_HOST` (panics naming it when
    /// it does not answer) for a run named `<prefix>-<pid>-<nanos>`.
    pub async fn new(prefix: &str) -> Engine {
        let exec = DockerExecutor::connect(&DockerConfig {
            host: docker_host(),
            ..DockerConfig::default()
        })
        .expect("cannot connect to REMEDY_DOCKER_HOST");
        exec.ping()
            .await
            .expect("the engine at REMEDY_DOCKER_HOST does not answer");
        Engine {
            docker: exec.client().clone(),
            run: unique(prefix),
        }
    }

    /// `<run>-<name>`: a name no other test or run uses.
    pub fn named(&self, name: &str) -> String {
        format!("{}-{name}", self.run)
    }

    pub fn labels(&self, extra: &[(&str, &str)], tagged: bool) -> HashMap<String, String> {
        let mut l = HashMap::new();
        if tagged {
            l.insert("remedy.test".to_string(), self.run.clone());
        }
        for (k, v) in extra {
            l.insert(k.to_string(), v.to_string());
        }
        l
    }

    /// A container named exactly `name`, started and waited for: `sleep`
    /// keeps running, anything else exits. `tagged`: carries the run label.
    pub async fn container(
        &self,
        name: &str,
        cmd: &[&str],
        labels: &[(&str, &str)],
        binds: &[String],
        tagged: bool,
    ) -> String {
        self.docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name(name).build()),
                ContainerCreateBody {
                    image: Some(image()),
                    cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                    labels: Some(self.labels(labels, tagged)),
                    host_config: Some(HostConfig {
                        binds: Some(binds.to_vec()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("creating container {name}: {e}"));
        self.docker
            .start_container(name, None::<StartContainerOptions>)
            .await
            .unwrap_or_else(|e| panic!("starting container {name}: {e}"));
        let want_running = cmd.first() == Some(&"sleep");
        for _ in 0..100 {
            if self.state(name).await.map(|s| s.0) == Some(want_running) {
                return name.to_string();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("container {name} did not reach running={want_running} within 10 s");
    }

    /// (running, started_at) of the container named exactly `name`, None
    /// when there is none. Podman answers for an exited container with a
    /// state bollard cannot read (`stopped`) for a moment: retried.
    pub async fn state(&self, name: &str) -> Option<(bool, String)> {
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
            })?;
        if c.state != Some(bollard::models::ContainerSummaryStateEnum::RUNNING) {
            return Some((false, String::new()));
        }
        let Ok(c) = self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        else {
            return Some((false, String::new()));
        };
        let s = c.state.unwrap_or_default();
        Some((s.running.unwrap_or(false), s.started_at.unwrap_or_default()))
    }

    pub async fn volume(&self, name: &str, labels: &[(&str, &str)]) -> String {
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.to_string()),
                labels: Some(self.labels(labels, true)),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("creating volume {name}: {e}"));
        name.to_string()
    }

    /// An image tagged `repo:latest` with the run label, committed from
    /// `container`; committing twice leaves the first dangling.
    pub async fn commit(&self, container: &str, repo: &str, labels: &[(&str, &str)]) -> String {
        let mut changes = format!("LABEL remedy.test={}", self.run);
        for (k, v) in labels {
            changes.push_str(&format!("\nLABEL {k}={v}"));
        }
        self.docker
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
            .unwrap_or_else(|e| panic!("committing {container} to {repo}: {e}"))
            .id
            .trim_start_matches("sha256:")
            .to_string()
    }

    pub fn run_filter(&self) -> HashMap<&'static str, Vec<String>> {
        HashMap::from([("label", vec![format!("remedy.test={}", self.run)])])
    }

    pub async fn container_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&self.run_filter())
                    .build(),
            ))
            .await
            .unwrap()
            .into_iter()
            .flat_map(|c| c.names.unwrap_or_default())
            .map(|n| n.trim_start_matches('/').to_string())
            .collect();
        v.sort();
        v
    }

    pub async fn volume_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .docker
            .list_volumes(Some(
                ListVolumesOptionsBuilder::new()
                    .filters(&self.run_filter())
                    .build(),
            ))
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

    pub async fn image_ids(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .docker
            .list_images(Some(
                ListImagesOptionsBuilder::new()
                    .all(true)
                    .filters(&self.run_filter())
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

    pub async fn remove_container(&self, name: &str) {
        let _ = self
            .docker
            .remove_container(
                name,
                Some(
                    RemoveContainerOptionsBuilder::new()
                        .force(true)
                        .v(true)
                        .build(),
                ),
            )
            .await;
    }

    /// Remove everything this run made (force), whatever happened.
    pub async fn cleanup(&self, extra_containers: &[&str]) {
        for c in self.container_names().await {
            self.remove_container(&c).await;
        }
        for c in extra_containers {
            self.remove_container(c).await;
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
