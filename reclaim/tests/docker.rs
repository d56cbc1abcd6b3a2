//! The Docker executor against a real container engine: Podman's
//! Docker-compatible API that `scripts/podman.sh` starts (scripts/test.sh
//! exports its address as `REMEDY_DOCKER_HOST`). Every object a test makes
//! carries a unique `remedy.test` label and unique names, and prunes are
//! narrowed to that label, so tests never touch each other's objects. Every
//! wait is bounded.

#[path = "support/podman.rs"]
mod podman;

use models::{
    Action, ActionKind, ActionName, ActionStatus, PruneFilters, PruneScope, RootCauseClass, Target,
    Timestamp,
};
use podman::{docker_host, hex64, Engine, SERVICE_LABEL};
use reclaim::exec::{wall_now, DockerConfig, DockerExecutor, Driver, Ledger};
use reclaim::{AuditEntry, Policy};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The engine under test, acting for host `node-1`.
fn executor() -> DockerExecutor {
    DockerExecutor::connect(&DockerConfig {
        host: docker_host(),
        hosts: vec!["node-1".into()],
        ..DockerConfig::default()
    })
    .unwrap()
}

/// Networks carrying this run's label.
async fn network_names(fx: &Engine) -> Vec<String> {
    let mut v: Vec<String> = fx
        .docker
        .list_networks(Some(
            bollard::query_parameters::ListNetworksOptionsBuilder::new()
                .filters(&fx.run_filter())
                .build(),
        ))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|n| n.name)
        .collect();
    v.sort();
    v
}

async fn network(fx: &Engine, name: &str, labels: &[(&str, &str)]) -> String {
    fx.docker
        .create_network(bollard::models::NetworkCreateRequest {
            name: name.to_string(),
            labels: Some(fx.labels(labels, true)),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("creating network {name}: {e}"));
    name.to_string()
}

/// (running, started_at) of a container this test made.
async fn state(fx: &Engine, name: &str) -> (bool, String) {
    fx.state(name)
        .await
        .unwrap_or_else(|| panic!("container {name} is gone"))
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
    let fx = Engine::new("prune").await;
    // Exited containers: one the policy allows, one of a denied service,
    // one carrying the protected label, one running (never pruned).
    fx.container(
        &fx.named("exited-web"),
        &["true"],
        &[(SERVICE_LABEL, "web")],
        &[],
        true,
    )
    .await;
    fx.container(
        &fx.named("exited-db"),
        &["true"],
        &[(SERVICE_LABEL, "database")],
        &[],
        true,
    )
    .await;
    fx.container(
        &fx.named("exited-protected"),
        &["true"],
        &[(SERVICE_LABEL, "web"), ("remedy.io/protected", "true")],
        &[],
        true,
    )
    .await;
    // Volumes: anonymous unused (goes), anonymous in use by a running
    // container (stays), anonymous unused but protected (stays), named
    // unused (stays: only anonymous volumes are pruned).
    let anon_unused = fx.volume(&hex64(&fx.named("a")), &[]).await;
    let anon_used = fx.volume(&hex64(&fx.named("b")), &[]).await;
    let anon_protected = fx
        .volume(&hex64(&fx.named("c")), &[("remedy.io/protected", "true")])
        .await;
    let named = fx.volume(&fx.named("named"), &[]).await;
    let running = fx
        .container(
            &fx.named("running-web"),
            &["sleep", "600"],
            &[(SERVICE_LABEL, "web")],
            &[format!("{anon_used}:/data")],
            true,
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
        .with_executor(ActionName::Prune, Arc::new(executor()));
    let mut a = action(&fx.named("prune"), prune.clone(), target.clone());
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
    let mut driver = Driver::new(policy, Ledger::in_memory())
        .with_executor(ActionName::Prune, Arc::new(executor()));
    let mut a = action(&fx.named("prune"), prune.clone(), target.clone());
    let report = driver
        .execute(&mut a, wall_now(), &mut audit)
        .await
        .unwrap();
    // When it did not run, the audit says why (an engine error or a rule).
    let report = report
        .unwrap_or_else(|| panic!("the prune ran: {:?} (audit: {:?})", a.status, audit.last()));
    assert_eq!(a.status, ActionStatus::Executed, "{:?}", audit.last());
    let mut removed = report.objects.clone();
    removed.sort();
    let mut expected = vec![
        format!("container {}", fx.named("exited-web")),
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
        ["exited-db", "exited-protected", "running-web"].map(|n| fx.named(n)),
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
        state(&fx, &running).await.0,
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
    let mut again = action(&fx.named("prune"), prune.clone(), target.clone());
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
    fx.cleanup(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_happens_once_within_its_cooldown() {
    let fx = Engine::new("restart").await;
    // A service of its own: the blast radius counts every replica the
    // engine knows, other tests' included.
    let svc = fx.named("web");
    let web1 = fx
        .container(
            &fx.named("web-1"),
            &["sleep", "600"],
            &[(SERVICE_LABEL, svc.as_str())],
            &[],
            true,
        )
        .await;
    let web2 = fx
        .container(
            &fx.named("web-2"),
            &["sleep", "600"],
            &[(SERVICE_LABEL, svc.as_str())],
            &[],
            true,
        )
        .await;
    let (_, started0) = state(&fx, &web1).await;
    let (_, started_other) = state(&fx, &web2).await;
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
        .with_executor(ActionName::Restart, Arc::new(executor()));
    // The memory-leak incident's restart.
    let mut first = action(&fx.named("a-restart"), restart.clone(), target.clone());
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
    let (running, started1) = state(&fx, &web1).await;
    assert!(
        running && started1 != started0,
        "not restarted: {started0} -> {started1}"
    );
    // A second incident on the same container inside the cooldown: refused.
    let mut second = action(&fx.named("b-restart"), restart.clone(), target.clone());
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
        state(&fx, &web1).await.1,
        started1,
        "restarted twice within the cooldown"
    );
    assert_eq!(
        state(&fx, &web2).await.1,
        started_other,
        "the other replica was touched"
    );
    fx.cleanup(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_targets_never_widen_what_runs() {
    let fx = Engine::new("crafted").await;
    let web = fx
        .container(
            &fx.named("web-1"),
            &["sleep", "600"],
            &[(SERVICE_LABEL, "web")],
            &[],
            true,
        )
        .await;
    let db = fx
        .container(
            &fx.named("db-1"),
            &["sleep", "600"],
            &[(SERVICE_LABEL, "database")],
            &[],
            true,
        )
        .await;
    let vault = fx
        .container(
            &fx.named("vault-1"),
            &["sleep", "600"],
            &[(SERVICE_LABEL, "web"), ("remedy.io/protected", "true")],
            &[],
            true,
        )
        .await;
    let before: Vec<(bool, String)> = vec![
        state(&fx, &web).await,
        state(&fx, &db).await,
        state(&fx, &vault).await,
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
        .with_executor(ActionName::Restart, Arc::new(executor()));
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
        state(&fx, &web).await,
        state(&fx, &db).await,
        state(&fx, &vault).await,
    ];
    assert_eq!(before, after, "a crafted target changed a container");
    fx.cleanup(&[]).await;
}

/// Issue #21, finding 4: `deny_services` held for containers only; a prune
/// with no allowlist removed volumes, images (and could remove networks)
/// labelled with a denied service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_services_hold_for_every_object_kind() {
    let fx = Engine::new("deny-all").await;
    let db = [(SERVICE_LABEL, "database")];
    let web = [(SERVICE_LABEL, "web")];
    // Of each kind, one of the denied service (stays) and one of another
    // service (goes, so the prune is seen to act).
    fx.container(&fx.named("exited-db"), &["true"], &db, &[], true)
        .await;
    let exited_web = fx
        .container(&fx.named("exited-web"), &["true"], &web, &[], true)
        .await;
    let vol_db = fx.volume(&hex64(&fx.named("db")), &db).await;
    let vol_web = fx.volume(&hex64(&fx.named("web")), &web).await;
    let running = fx
        .container(&fx.named("running-db"), &["sleep", "600"], &db, &[], true)
        .await;
    let repo = format!("localhost/{}", fx.run);
    let img_db = fx.commit(&running, &format!("{repo}-db"), &db).await;
    let tagged_db = fx.commit(&running, &format!("{repo}-db"), &db).await;
    let img_web = fx.commit(&running, &format!("{repo}-web"), &web).await;
    let tagged_web = fx.commit(&running, &format!("{repo}-web"), &web).await;
    let net_db = network(&fx, &fx.named("net-db"), &db).await;
    let net_web = network(&fx, &fx.named("net-web"), &web).await;

    let prune = ActionKind::Prune {
        scope: vec![
            PruneScope::ExitedContainers,
            PruneScope::UnusedVolumes,
            PruneScope::DanglingImages,
            PruneScope::Networks,
        ],
        filters: PruneFilters {
            labels: BTreeMap::from([("remedy.test".into(), fx.run.clone())]),
            ..Default::default()
        },
    };
    // A host-wide prune (a disk-pressure incident names a host only), no
    // allowlist: the deny list is all that keeps the database's objects.
    let target = Target {
        service: None,
        host: Some("node-1".into()),
        container: None,
    };
    let mut audit: Vec<AuditEntry> = vec![];
    let mut driver = Driver::new(live_policy(), Ledger::in_memory())
        .with_executor(ActionName::Prune, Arc::new(executor()));
    let mut a = action(&fx.named("prune"), prune, target);
    let report = driver
        .execute(&mut a, wall_now(), &mut audit)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("the prune did not run: {:?}", audit.last()));
    let mut removed: Vec<String> = report
        .objects
        .iter()
        .map(|s| s.replace("sha256:", ""))
        .collect();
    removed.sort();
    let mut expected = vec![
        format!("container {exited_web}"),
        format!("volume {vol_web}"),
        format!("image {img_web}"),
        format!("network {net_web}"),
    ];
    expected.sort();
    let containers = fx.container_names().await;
    let volumes = fx.volume_names().await;
    let images = fx.image_ids().await;
    let networks = network_names(&fx).await;
    for n in [&net_db, &net_web] {
        let _ = fx.docker.remove_network(n).await;
    }
    fx.cleanup(&[]).await;
    assert_eq!(removed, expected, "report: {}", report.detail);
    let mut want = vec![fx.named("exited-db"), running.clone()];
    want.sort();
    assert_eq!(containers, want);
    assert_eq!(volumes, vec![vol_db]);
    let mut want = vec![img_db, tagged_db, tagged_web];
    want.sort();
    assert_eq!(images, want);
    assert_eq!(networks, vec![net_db]);
}

/// Issue #21, finding 4: a prune for a host ran on the one configured
/// engine whatever host the incident named. Now it runs on that host's
/// engine, or is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_scoped_actions_run_only_on_their_hosts_engine() {
    let fx = Engine::new("host").await;
    let vol = fx.volume(&hex64(&fx.named("v")), &[]).await;
    let prune = ActionKind::Prune {
        scope: vec![PruneScope::UnusedVolumes],
        filters: PruneFilters {
            labels: BTreeMap::from([("remedy.test".into(), fx.run.clone())]),
            ..Default::default()
        },
    };
    let on = |host: &str| Target {
        service: None,
        host: Some(host.into()),
        container: None,
    };
    let mut audit: Vec<AuditEntry> = vec![];
    // The engine acts for node-1; node-9 has none: refused, nothing gone.
    let mut driver = Driver::new(live_policy(), Ledger::in_memory())
        .with_executor(ActionName::Prune, Arc::new(executor()));
    let mut a = action(&fx.named("a-prune"), prune.clone(), on("node-9"));
    let ran = driver
        .execute(&mut a, wall_now(), &mut audit)
        .await
        .unwrap();
    let refused =
        matches!(&a.status, ActionStatus::Skipped { reason } if reason.starts_with("wrong_host"));
    let still = fx.volume_names().await;
    // node-9 named in `engines` (here the same Podman): it runs there.
    let per_host = DockerExecutor::connect(&DockerConfig {
        host: docker_host(),
        hosts: vec![],
        engines: BTreeMap::from([("node-9".into(), docker_host())]),
        ..DockerConfig::default()
    })
    .unwrap();
    let mut driver = Driver::new(live_policy(), Ledger::in_memory())
        .with_executor(ActionName::Prune, Arc::new(per_host));
    let mut b = action(&fx.named("b-prune"), prune.clone(), on("node-9"));
    let report = driver.execute(&mut b, wall_now(), &mut audit).await;
    let after = fx.volume_names().await;
    fx.cleanup(&[]).await;
    assert!(ran.is_none() && refused, "{:?}", a.status);
    assert_eq!(still, vec![vol.clone()], "a refused prune removed a volume");
    let report = report.unwrap().expect("the prune ran on node-9's engine");
    assert_eq!(report.objects, vec![format!("volume {vol}")]);
    assert!(after.is_empty(), "{after:?}");
}
