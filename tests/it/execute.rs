//! `remedy replay --execute` against a real container engine: Podman's
//! Docker-compatible API that `scripts/podman.sh` starts (scripts/test.sh
//! exports its address as `REMEDY_DOCKER_HOST`). The disk-pressure test
//! narrows its prune to its own `remedy.test` label; the memory-leak tests
//! need containers named as the generated estate names them (`checkout-1`,
//! `checkout-2`), so they take a lock and recreate them. Every wait is
//! bounded.

#[path = "../../reclaim/tests/support/podman.rs"]
mod podman;

use crate::api::{http, spawn_serve};
use crate::cli::remedy;
pub use podman::{docker_host, Engine};
use podman::{hex64, SERVICE_LABEL};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The generated estate's hosts: the one Podman stands in for each of
/// them (`execution.docker.hosts`).
const HOSTS: &str = r#""node-1", "node-2", "node-3", "node-4""#;

/// The memory-leak tests use the estate's fixed container names.
static CHECKOUT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `remedy generate --scenario NAME --duration 2h` into `dir`.
pub fn generate(scenario: &str, start: &str, dir: &Path) {
    let out = remedy()
        .args([
            "generate",
            "--scenario",
            scenario,
            "--duration",
            "2h",
            "--start",
            start,
            "--out",
        ])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "generate {scenario}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `remedy replay --execute --policy POLICY --out OUT DATA` (blocking, in
/// a thread of its own); returns stdout.
async fn replay_execute(policy: &Path, data: &Path, out: &Path) -> String {
    let (policy, data, out) = (policy.to_owned(), data.to_owned(), out.to_owned());
    let host = docker_host();
    tokio::task::spawn_blocking(move || {
        let o = remedy()
            .args(["replay", "--execute", "--policy"])
            .arg(&policy)
            .arg("--out")
            .arg(&out)
            .arg(&data)
            .env("REMEDY_DOCKER_HOST", host)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "replay --execute failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    })
    .await
    .unwrap()
}

pub fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn actions_of(out: &Path, name: &str) -> Vec<Value> {
    jsonl(&out.join("actions.jsonl"))
        .into_iter()
        .filter(|a| a["kind"]["type"] == name)
        .collect()
}

fn decisions(out: &Path, action_id: &str) -> Vec<(String, String)> {
    jsonl(&out.join("audit.jsonl"))
        .into_iter()
        .filter(|e| e["action_id"] == action_id)
        .map(|e| {
            (
                e["decision"].as_str().unwrap().to_string(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn disk_policy(dir: &Path, run: &str, dry_run: bool, allow: &[&str]) -> PathBuf {
    let path = dir.join(format!("policy-{dry_run}-{}.toml", allow.len()));
    let allow: Vec<String> = allow.iter().map(|a| format!("{a:?}")).collect();
    std::fs::write(
        &path,
        format!(
            r#"dry_run = {dry_run}
require_approval = []
allow_services = [{allow}]
deny_services = ["database"]
deny_labels = {{ "remedy.io/protected" = "true" }}

[[rules]]
class = "disk_pressure"
action = {{ type = "prune", scope = ["exited_containers", "unused_volumes", "dangling_images"], filters = {{ labels = {{ "remedy.test" = "{run}" }} }} }}

[execution]
ledger = "{ledger}"

[execution.docker]
hosts = [{HOSTS}]
"#,
            allow = allow.join(", "),
            ledger = dir.join(format!("ledger-{}.jsonl", allow.len())).display()
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_execute_prunes_exactly_what_the_policy_allows() {
    let en = Engine::new("exec-prune").await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("scenario");
    generate("disk_pressure", "2026-01-05T00:00:00Z", &data);
    let r = en.run.clone();
    let outside = format!("{r}-exited-outside");
    let (en2, outside2, dir2) = (en.clone(), outside.clone(), dir.path().to_owned());
    let result = async move {
        let (en, outside, dir) = (en2, outside2, dir2);
        // Exited containers: one the policy allows, one of a denied
        // service, one with the protected label, one outside the action's
        // label filter; a running one (never pruned).
        let exited_web = en
            .container(
                &format!("{r}-exited-web"),
                &["true"],
                &[(SERVICE_LABEL, "web")],
                &[],
                true,
            )
            .await;
        en.container(
            &format!("{r}-exited-db"),
            &["true"],
            &[(SERVICE_LABEL, "database")],
            &[],
            true,
        )
        .await;
        en.container(
            &format!("{r}-exited-protected"),
            &["true"],
            &[(SERVICE_LABEL, "web"), ("remedy.io/protected", "true")],
            &[],
            true,
        )
        .await;
        en.container(&outside, &["true"], &[(SERVICE_LABEL, "web")], &[], false)
            .await;
        // Volumes: anonymous unused (goes), anonymous in use (stays),
        // anonymous protected (stays), named unused (stays).
        let anon_unused = en.volume(&hex64(&format!("{r}-a")), &[]).await;
        let anon_used = en.volume(&hex64(&format!("{r}-b")), &[]).await;
        en.volume(
            &hex64(&format!("{r}-c")),
            &[("remedy.io/protected", "true")],
        )
        .await;
        en.volume(&format!("{r}-named"), &[]).await;
        let running = en
            .container(
                &format!("{r}-running-web"),
                &["sleep", "600"],
                &[(SERVICE_LABEL, "web")],
                &[format!("{anon_used}:/data")],
                true,
            )
            .await;
        // Images: the first of two commits to one tag is dangling.
        let repo = format!("localhost/{r}");
        let dangling = en.commit(&running, &format!("{repo}-a"), &[]).await;
        en.commit(&running, &format!("{repo}-a"), &[]).await;
        en.commit(
            &running,
            &format!("{repo}-b"),
            &[("remedy.io/protected", "true")],
        )
        .await;
        en.commit(
            &running,
            &format!("{repo}-b"),
            &[("remedy.io/protected", "true")],
        )
        .await;
        let containers = en.container_names().await;
        let volumes = en.volume_names().await;
        let images = en.image_ids().await;
        assert_eq!(containers.len(), 4, "{containers:?}");
        assert_eq!(volumes.len(), 4, "{volumes:?}");
        assert_eq!(images.len(), 4, "{images:?}");

        // Dry-run: the plan and the refusal are audited, nothing changes.
        let out = dir.join("dry");
        let stdout = replay_execute(&disk_policy(&dir, &r, true, &[]), &data, &out).await;
        let prune = actions_of(&out, "prune");
        assert_eq!(
            prune.len(),
            1,
            "one prune for the disk-pressure incident: {prune:?}"
        );
        let id = prune[0]["id"].as_str().unwrap().to_string();
        assert_eq!(prune[0]["status"]["state"], "planned");
        assert!(
            decisions(&out, &id).contains(&("not_executed".into(), "dry_run".into())),
            "{:?}",
            decisions(&out, &id)
        );
        assert!(stdout.contains("not executed: dry_run"), "{stdout}");
        assert_eq!(en.container_names().await, containers);
        assert_eq!(en.volume_names().await, volumes);
        assert_eq!(en.image_ids().await, images);
        assert!(en.state(&outside).await.is_some());

        // An allowlist: a host-wide prune names no service, so it is never
        // planned, let alone run.
        let out = dir.join("allowlist");
        replay_execute(&disk_policy(&dir, &r, false, &["web"]), &data, &out).await;
        let prune = actions_of(&out, "prune");
        assert_eq!(prune[0]["status"]["state"], "skipped");
        assert!(
            prune[0]["status"]["reason"]
                .as_str()
                .unwrap()
                .starts_with("not_allowed_service"),
            "{prune:?}"
        );
        assert_eq!(en.container_names().await, containers);
        assert_eq!(en.volume_names().await, volumes);
        assert_eq!(en.image_ids().await, images);

        // Live: exactly the exited web container, the unused anonymous
        // volume and the dangling image go.
        let out = dir.join("live");
        replay_execute(&disk_policy(&dir, &r, false, &[]), &data, &out).await;
        let prune = actions_of(&out, "prune");
        assert_eq!(prune[0]["status"]["state"], "executed", "{prune:?}");
        let mut objects: Vec<String> = prune[0]["execution"]["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap().to_string())
            .collect();
        objects.sort();
        let mut want = vec![
            format!("container {exited_web}"),
            format!("image {dangling}"),
            format!("volume {anon_unused}"),
        ];
        want.sort();
        assert_eq!(objects, want);
        let steps: Vec<String> = decisions(&out, &id).into_iter().map(|d| d.0).collect();
        assert_eq!(
            steps,
            ["planned", "requested", "started", "executed", "verified"],
            "verified is decided after the execution it verifies"
        );
        let gone =
            |all: &[String], x: &str| all.iter().filter(|a| *a != x).cloned().collect::<Vec<_>>();
        assert_eq!(en.container_names().await, gone(&containers, &exited_web));
        assert_eq!(en.volume_names().await, gone(&volumes, &anon_unused));
        assert_eq!(en.image_ids().await, gone(&images, &dangling));
        assert!(
            en.state(&outside).await.is_some(),
            "a container outside the action's label filter was removed"
        );
        let ledger = jsonl(&dir.join("ledger-0.jsonl"));
        assert_eq!(ledger.len(), 1, "{ledger:?}");
        assert_eq!(ledger[0]["result"], "executed");
    };
    let outcome = tokio::spawn(result).await;
    en.cleanup(&[&outside]).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn restart_policy(dir: &Path) -> PathBuf {
    let path = dir.join("restart-policy.toml");
    std::fs::write(
        &path,
        format!(
            r#"dry_run = false
require_approval = []
allow_services = ["checkout"]
cooldown_secs = 1800
max_blast_radius_percent = 50

[[rules]]
class = "memory_leak"
action = {{ type = "restart", graceful_timeout_secs = 1 }}

[execution]
ledger = "{}"

[execution.docker]
hosts = [{HOSTS}]
"#,
            dir.join("ledger.jsonl").display()
        ),
    )
    .unwrap();
    path
}

/// `checkout-1` and `checkout-2` of service checkout, running, recreated;
/// a bystander `web-1` of an allowed-looking name outside the service.
async fn checkout_estate(en: &Engine) {
    for c in ["checkout-1", "checkout-2", "web-1"] {
        en.remove_container(c).await;
    }
    for (c, svc) in [
        ("checkout-1", "checkout"),
        ("checkout-2", "checkout"),
        ("web-1", "web"),
    ] {
        en.container(c, &["sleep", "600"], &[(SERVICE_LABEL, svc)], &[], true)
            .await;
    }
}

async fn started(en: &Engine) -> Vec<(bool, String)> {
    let mut v = Vec::new();
    for c in ["checkout-1", "checkout-2", "web-1"] {
        v.push(
            en.state(c)
                .await
                .unwrap_or_else(|| panic!("container {c} is gone")),
        );
    }
    v
}

/// Run `body` with the checkout estate, then remove it whatever happened.
async fn with_checkout<F, Fut>(prefix: &str, body: F)
where
    F: FnOnce(Engine) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let _lock = CHECKOUT.lock().await;
    let en = Engine::new(prefix).await;
    checkout_estate(&en).await;
    let outcome = tokio::spawn(body(en.clone())).await;
    en.cleanup(&[]).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_execute_restarts_the_leaking_container_once_within_its_cooldown() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    with_checkout("exec-restart", |en| async move {
        let first = d.join("day1");
        let second = d.join("day2");
        generate("memory_leak", "2026-01-05T00:00:00Z", &first);
        generate("memory_leak", "2026-01-06T00:00:00Z", &second);
        let policy = restart_policy(&d);
        let before = started(&en).await;

        let out = d.join("out1");
        replay_execute(&policy, &first, &out).await;
        let restarts = actions_of(&out, "restart");
        assert_eq!(restarts.len(), 1, "{restarts:?}");
        let a = &restarts[0];
        assert_eq!(a["target"]["container"], "checkout-1", "{a}");
        assert_eq!(a["status"]["state"], "executed", "{a}");
        assert_eq!(a["execution"]["objects"][0], "container checkout-1", "{a}");
        let after = started(&en).await;
        assert!(after[0].0, "checkout-1 is not running after its restart");
        assert_ne!(after[0].1, before[0].1, "checkout-1 was not restarted");
        assert_eq!(after[1..], before[1..], "another container was touched");

        // The same data again: the ledger has it, nothing runs.
        let out = d.join("out2");
        let stdout = replay_execute(&policy, &first, &out).await;
        let a = &actions_of(&out, "restart")[0];
        assert_eq!(a["status"]["state"], "executed", "{a}");
        assert!(a.get("execution").is_none(), "ran again: {a}");
        let steps = decisions(&out, a["id"].as_str().unwrap());
        assert!(
            steps
                .iter()
                .any(|(d, r)| d == "not_executed" && r.starts_with("already_executed")),
            "{steps:?}"
        );
        assert!(stdout.contains("executed earlier"), "{stdout}");
        assert_eq!(started(&en).await, after);

        // A new incident on the same container inside the cooldown: refused.
        let out = d.join("out3");
        replay_execute(&policy, &second, &out).await;
        let a = &actions_of(&out, "restart")[0];
        assert_eq!(a["target"]["container"], "checkout-1", "{a}");
        assert_eq!(a["status"]["state"], "skipped", "{a}");
        assert!(
            a["status"]["reason"]
                .as_str()
                .unwrap()
                .starts_with("cooldown:"),
            "{a}"
        );
        assert_eq!(started(&en).await, after, "restarted inside its cooldown");

        let ledger = jsonl(&d.join("ledger.jsonl"));
        assert_eq!(ledger.len(), 1, "exactly one execution: {ledger:?}");
        assert_eq!(ledger[0]["result"], "executed");
        assert_eq!(ledger[0]["target"]["container"], "checkout-1");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_log_lines_never_widen_what_is_executed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    with_checkout("exec-crafted", |en| async move {
        // Lines naming another container, with shell metacharacters, in
        // the kernel's OOM format and as checkout's own OTel records.
        let data = d.join("scenario");
        generate("memory_leak", "2026-01-05T00:00:00Z", &data);
        let mut syslog = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("logs/nodes.syslog"))
            .unwrap();
        let mut otel = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("logs/checkout.otel.json"))
            .unwrap();
        use std::io::Write;
        for (i, victim) in [
            "checkout-2",
            "web-1",
            "checkout-2; docker rm -f web-1",
            "$(docker restart checkout-2)",
            "`reboot`",
            "../web-1",
        ]
        .iter()
        .enumerate()
        {
            writeln!(
                syslog,
                "<2>1 2026-01-05T01:31:0{i}.900Z node-2 kernel - - - Memory cgroup out of memory: Killed process 4243 (java) container {victim}"
            )
            .unwrap();
            for k in 0..20 {
                writeln!(
                    otel,
                    r#"{{"timeUnixNano":"1767575{i}{k:02}000000000","severityText":"ERROR","severityNumber":17,"body":{{"stringValue":"out of memory in {victim}"}},"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"checkout"}}}},{{"key":"host.name","value":{{"stringValue":"node-2"}}}},{{"key":"container.name","value":{{"stringValue":{}}}}}]}}}}"#,
                    serde_json::to_string(victim).unwrap()
                )
                .unwrap();
            }
        }
        drop((syslog, otel));
        let policy = restart_policy(&d);
        let before = started(&en).await;
        let out = d.join("out");
        replay_execute(&policy, &data, &out).await;
        let executed: Vec<Value> = jsonl(&out.join("actions.jsonl"))
            .into_iter()
            .filter(|a| a["status"]["state"] == "executed")
            .collect();
        assert_eq!(executed.len(), 1, "{executed:?}");
        assert_eq!(executed[0]["target"]["container"], "checkout-1");
        let after = started(&en).await;
        assert_ne!(after[0].1, before[0].1, "checkout-1 was not restarted");
        assert_eq!(after[1..], before[1..], "a crafted line reached another container");

        // The leaking container's own series renamed to a crafted name: its
        // action is refused, nothing runs anywhere.
        let crafted = d.join("crafted");
        generate("memory_leak", "2026-01-07T00:00:00Z", &crafted);
        let prom = crafted.join("metrics/node-2.prom");
        let text = std::fs::read_to_string(&prom).unwrap().replace(
            r#"container="checkout-1""#,
            r#"container="checkout-1;docker rm -f checkout-2""#,
        );
        std::fs::write(&prom, text).unwrap();
        let before = started(&en).await;
        let out = d.join("out-crafted");
        replay_execute(&policy, &crafted, &out).await;
        let restarts = actions_of(&out, "restart");
        assert!(!restarts.is_empty(), "no restart planned for the crafted incident");
        for a in &restarts {
            assert_eq!(a["status"]["state"], "skipped", "{a}");
            assert!(
                a["status"]["reason"].as_str().unwrap().contains("invalid_identifier"),
                "{a}"
            );
        }
        assert_eq!(started(&en).await, before, "a crafted target was executed");
        let ledger = jsonl(&d.join("ledger.jsonl"));
        assert_eq!(ledger.len(), 1, "{ledger:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_executes_an_action_once_it_is_approved() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    with_checkout("exec-serve", |en| async move {
        let data = d.join("scenario");
        generate("memory_leak", "2026-01-05T00:00:00Z", &data);
        let policy = d.join("policy.toml");
        std::fs::write(
            &policy,
            format!(
                r#"dry_run = false
require_approval = ["restart"]
allow_services = ["checkout"]

[[rules]]
class = "memory_leak"
action = {{ type = "restart", graceful_timeout_secs = 1 }}

[execution]
ledger = "{}"

[execution.docker]
hosts = [{HOSTS}]
"#,
                d.join("ledger.jsonl").display()
            ),
        )
        .unwrap();
        let db = d.join("remedy.db");
        let out = remedy()
            .arg("replay")
            .arg(&data)
            .arg("--out")
            .arg(d.join("out"))
            .arg("--db")
            .arg(&db)
            .arg("--policy")
            .arg(&policy)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let action = actions_of(&d.join("out"), "restart").remove(0);
        let (id, incident) = (
            action["id"].as_str().unwrap().to_string(),
            action["incident_id"].as_str().unwrap().to_string(),
        );
        assert_eq!(action["status"]["state"], "planned");

        let host = docker_host();
        let (server, addr) = tokio::task::spawn_blocking(move || {
            let mut cmd = remedy();
            cmd.args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--exec-interval-ms",
                "200",
                "--db",
            ])
            .arg(&db)
            .arg("--policy")
            .arg(&policy)
            .env("REMEDY_API_TOKENS", "exec-token")
            .env("REMEDY_DOCKER_HOST", host);
            spawn_serve(cmd)
        })
        .await
        .unwrap();

        let before = started(&en).await;
        let metric = r#"remedy_executor_actions_total{executor="docker",result="executed"} 1"#;
        // Not approved yet: several polls pass, nothing runs.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(started(&en).await, before, "ran before its approval");
        let (a, i) = (addr.clone(), incident.clone());
        let detail = tokio::task::spawn_blocking(move || {
            http(&a, "GET", &format!("/api/v1/incidents/{i}"), None, "")
        })
        .await
        .unwrap();
        assert_eq!(detail.0, 200, "{}", detail.1);
        assert!(!detail.1.contains(r#""state":"executed""#), "{}", detail.1);

        let a = addr.clone();
        let (status, body) = tokio::task::spawn_blocking(move || {
            http(
                &a,
                "POST",
                &format!("/api/v1/actions/{id}/approve"),
                Some("exec-token"),
                "",
            )
        })
        .await
        .unwrap();
        assert_eq!(status, 200, "{body}");
        let mut state = String::new();
        for _ in 0..150 {
            let (a, i) = (addr.clone(), incident.clone());
            let (_, body) = tokio::task::spawn_blocking(move || {
                http(&a, "GET", &format!("/api/v1/incidents/{i}"), None, "")
            })
            .await
            .unwrap();
            let v: Value = serde_json::from_str(&body).unwrap();
            state = v["actions"][0]["status"]["state"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if state == "executed" {
                let decisions: Vec<&str> = v["audit"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["decision"].as_str().unwrap())
                    .collect();
                for step in ["approved", "requested", "started", "executed"] {
                    assert!(decisions.contains(&step), "{step} missing: {decisions:?}");
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(
            state, "executed",
            "not executed within 30 s of its approval"
        );
        let after = started(&en).await;
        assert_ne!(after[0].1, before[0].1, "checkout-1 was not restarted");
        assert_eq!(after[1..], before[1..], "another container was touched");
        let a = addr.clone();
        let (_, metrics) =
            tokio::task::spawn_blocking(move || http(&a, "GET", "/metrics", None, ""))
                .await
                .unwrap();
        assert!(metrics.contains(metric), "{metrics}");
        assert!(
            metrics.contains("remedy_executor_duration_seconds_count{executor=\"docker\"} 1"),
            "{metrics}"
        );
        // Once only: later polls leave it alone.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(started(&en).await, after);
        assert_eq!(jsonl(&d.join("ledger.jsonl")).len(), 1);
        drop(server);
    })
    .await;
}
