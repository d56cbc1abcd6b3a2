//! The webhook and offload executors against real receivers and real
//! files: a signed POST to an HTTP receiver on 127.0.0.1 that fails twice
//! before it accepts, and an offload killed (SIGKILL) mid-way and resumed.
//! No external service needed. Every wait is bounded.

use models::{
    Action, ActionKind, ActionName, ActionStatus, OffloadMode, RootCauseClass, Target, Timestamp,
};
use reclaim::exec::webhook::{IDEMPOTENCY_HEADER, SIGNATURE_HEADER};
use reclaim::exec::{
    wall_now, Driver, Ledger, ObjectStoreConfig, OffloadExecutor, OffloadState, WebhookConfig,
    WebhookExecutor,
};
use reclaim::{AuditEntry, Policy};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn action(id: &str, kind: ActionKind) -> Action {
    Action {
        id: id.to_string(),
        incident_id: format!("inc-{id}"),
        class: RootCauseClass::DependencyFailure,
        kind,
        target: Target {
            service: Some("checkout".into()),
            host: None,
            container: None,
        },
        status: ActionStatus::Planned,
        dry_run: false,
        requires_approval: false,
        planned_at: Timestamp::from_millis(0),
        verified: None,
    }
}

fn live() -> Policy {
    Policy {
        dry_run: false,
        require_approval: vec![],
        ..Policy::default()
    }
}

#[derive(Default)]
struct Received {
    /// (attempt header, signature valid, idempotency key) per request.
    requests: Vec<(String, bool, String)>,
    /// Keys acted on (a duplicate key is answered 200 and not acted on).
    acted: Vec<String>,
}

/// A webhook receiver on 127.0.0.1: checks the signature, answers 503 to
/// the first `fail_first` requests, de-duplicates on the idempotency key.
async fn receiver(key: &'static [u8], fail_first: usize) -> (String, Arc<Mutex<Received>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Received::default()));
    let state = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break (String::new(), Vec::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..p]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    let mut body = buf[p + 4..].to_vec();
                    while body.len() < len {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        body.extend_from_slice(&chunk[..n]);
                    }
                    break (head, body);
                }
            };
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                    })
                    .unwrap_or_default()
            };
            let valid = header(SIGNATURE_HEADER) == WebhookExecutor::sign(key, &body);
            let idem = header(IDEMPOTENCY_HEADER);
            let status = {
                let mut s = state.lock().unwrap();
                s.requests
                    .push((header("X-Remedy-Attempt"), valid, idem.clone()));
                if !valid {
                    "401 Unauthorized"
                } else if s.requests.len() <= fail_first {
                    "503 Service Unavailable"
                } else {
                    if !s.acted.contains(&idem) {
                        s.acted.push(idem);
                    }
                    "200 OK"
                }
            };
            let resp =
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = sock.write_all(resp.as_bytes()).await;
        }
    });
    (format!("http://{addr}/hooks/remedy"), seen)
}

fn webhook_config(url: &str) -> WebhookConfig {
    WebhookConfig {
        url: url.to_string(),
        max_attempts: 4,
        initial_backoff_ms: 20,
        timeout_secs: 5,
        ..WebhookConfig::default()
    }
}

#[tokio::test]
async fn webhook_is_signed_retried_and_idempotent() {
    const KEY: &[u8] = b"test-signing-key";
    let (url, seen) = receiver(KEY, 2).await;
    let notify = ActionKind::Notify {
        channel: "ops".into(),
        message: "dependency failing; check payments".into(),
    };
    let mut audit: Vec<AuditEntry> = vec![];
    let mut driver = Driver::new(live(), Ledger::in_memory()).with_executor(
        ActionName::Notify,
        Arc::new(WebhookExecutor::new(&webhook_config(&url), KEY.to_vec()).unwrap()),
    );
    let mut a = action("inc-1-notify", notify.clone());
    let report = driver
        .execute(&mut a, wall_now(), &mut audit)
        .await
        .unwrap()
        .expect("it ran");
    assert_eq!(a.status, ActionStatus::Executed, "{:?}", audit.last());
    assert_eq!(report.retries, 2, "{}", report.detail);
    {
        let s = seen.lock().unwrap();
        let attempts: Vec<&str> = s.requests.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(attempts, ["1", "2", "3"]);
        assert!(
            s.requests.iter().all(|r| r.1 && r.2 == "inc-1-notify"),
            "{:?}",
            s.requests
        );
        assert_eq!(s.acted, ["inc-1-notify"]);
    }
    // Re-running the completed action sends nothing.
    let mut again = action("inc-1-notify", notify.clone());
    assert!(driver
        .execute(&mut again, wall_now(), &mut audit)
        .await
        .unwrap()
        .is_none());
    assert_eq!(seen.lock().unwrap().requests.len(), 3);
    // Another sender (a second Remedy, a lost ledger) posts it again: the
    // same idempotency key, so the receiver acts once.
    let other = WebhookExecutor::new(&webhook_config(&url), KEY.to_vec()).unwrap();
    let mut dup = action("inc-1-notify", notify.clone());
    let mut d2 =
        Driver::new(live(), Ledger::in_memory()).with_executor(ActionName::Notify, Arc::new(other));
    d2.execute(&mut dup, wall_now(), &mut audit)
        .await
        .unwrap()
        .expect("it ran");
    assert_eq!(seen.lock().unwrap().acted, ["inc-1-notify"]);
    // A wrong key is refused (401) and not retried.
    let bad = WebhookExecutor::new(&webhook_config(&url), b"wrong".to_vec()).unwrap();
    let mut d3 =
        Driver::new(live(), Ledger::in_memory()).with_executor(ActionName::Notify, Arc::new(bad));
    let mut forged = action("inc-2-notify", notify);
    d3.execute(&mut forged, wall_now(), &mut audit)
        .await
        .unwrap();
    assert!(
        matches!(&forged.status, ActionStatus::Failed { reason } if reason.contains("401")),
        "{:?}",
        forged.status
    );
    assert_eq!(seen.lock().unwrap().requests.len(), 5);
}

#[tokio::test]
async fn webhook_gives_up_after_its_attempts_and_names_why() {
    const KEY: &[u8] = b"k";
    let (url, seen) = receiver(KEY, 100).await;
    let exec = WebhookExecutor::new(&webhook_config(&url), KEY.to_vec()).unwrap();
    let mut audit: Vec<AuditEntry> = vec![];
    let mut driver =
        Driver::new(live(), Ledger::in_memory()).with_executor(ActionName::Restart, Arc::new(exec));
    let mut a = action(
        "inc-3-restart",
        ActionKind::Restart {
            graceful_timeout_secs: 5,
        },
    );
    driver
        .execute(&mut a, wall_now(), &mut audit)
        .await
        .unwrap();
    let ActionStatus::Failed { reason } = &a.status else {
        panic!("{:?}", a.status)
    };
    assert!(
        reason.contains("4 attempts") && reason.contains("503"),
        "{reason}"
    );
    assert_eq!(seen.lock().unwrap().requests.len(), 4);
    assert_eq!(audit.last().unwrap().decision, "failed");
}

fn make_files(root: &Path, n: usize) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for i in 0..n {
        let rel = format!("seg-{:03}/part-{i:03}.log", i % 4);
        let data: Vec<u8> = (0..(1000 + i * 37))
            .map(|j| ((i * 31 + j * 7) % 251) as u8)
            .collect();
        std::fs::create_dir_all(root.join(&rel).parent().unwrap()).unwrap();
        std::fs::write(root.join(&rel), &data).unwrap();
        files.insert(rel, data);
    }
    files
}

fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_string_lossy().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn offload_config(base: &Path) -> ObjectStoreConfig {
    ObjectStoreConfig {
        roots: vec![base.join("hot")],
        destination: format!("file://{}", base.join("cold").display()),
        options: BTreeMap::new(),
        journal: base.join("offload.journal"),
    }
}

const CHILD_ENV: &str = "REMEDY_TEST_OFFLOAD_CHILD";

/// Run in a child process by `offload_survives_kill_9_and_resumes`: the
/// offload, slowly, until the parent kills it.
#[tokio::test]
async fn offload_child() {
    let Ok(base) = std::env::var(CHILD_ENV) else {
        return;
    };
    let exec = OffloadExecutor::from_config(&offload_config(Path::new(&base))).unwrap();
    exec.run("off-1", None, None).await.unwrap();
}

#[tokio::test]
async fn offload_survives_kill_9_and_resumes() {
    let base = tempfile::tempdir().unwrap();
    let original = make_files(&base.path().join("hot"), 40);
    // The child: this test binary, running only `offload_child`, pausing
    // 20 ms after each step so it is surely mid-way when killed.
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "offload_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, base.path())
        .env("REMEDY_OFFLOAD_STEP_DELAY_MS", "20")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = base.path().join("offload.journal");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = std::fs::read_to_string(&journal).map_or(0, |s| s.lines().count());
        if lines >= 25 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the offload finished before it could be killed"
        );
        assert!(
            Instant::now() < deadline,
            "the offload journaled only {lines} steps in 30 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let status = OffloadExecutor::status(&journal).unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].state, OffloadState::Running, "{status:?}");
    assert!(status[0].moved < 40);
    // Nothing lost at the kill: every file is at the source or in the tier.
    let hot = tree(&base.path().join("hot"));
    let cold = tree(&base.path().join("cold").join("hot"));
    for (rel, data) in &original {
        assert!(
            hot.get(rel) == Some(data) || cold.get(rel) == Some(data),
            "{rel} lost at the kill"
        );
    }
    // Resume in this process: the same offload id finishes the job.
    let exec = OffloadExecutor::from_config(&offload_config(base.path())).unwrap();
    let report = exec.run("off-1", None, None).await.unwrap();
    assert!(
        report.detail.contains("resuming") || report.objects.len() < 40,
        "{}",
        report.detail
    );
    assert!(
        tree(&base.path().join("hot")).is_empty(),
        "files left at the source"
    );
    assert_eq!(
        tree(&base.path().join("cold").join("hot")),
        original,
        "the cold tier differs from the source"
    );
    let status = OffloadExecutor::status(&journal).unwrap();
    assert_eq!(status[0].state, OffloadState::Complete);
    assert_eq!(status[0].moved, 40, "{status:?}");
    assert_eq!(
        status[0].bytes_moved,
        original.values().map(|v| v.len() as u64).sum::<u64>()
    );
    // Idempotent: again, nothing changes.
    let again = exec.run("off-1", None, None).await.unwrap();
    assert!(
        again.objects.is_empty() && again.detail.contains("already complete"),
        "{}",
        again.detail
    );
    assert_eq!(tree(&base.path().join("cold").join("hot")), original);
}

#[tokio::test]
async fn offload_through_the_driver_respects_age_and_size() {
    let base = tempfile::tempdir().unwrap();
    let hot = base.path().join("hot");
    std::fs::create_dir_all(&hot).unwrap();
    std::fs::write(hot.join("big.log"), vec![7u8; 5000]).unwrap();
    std::fs::write(hot.join("small.log"), vec![1u8; 10]).unwrap();
    let exec = OffloadExecutor::from_config(&offload_config(base.path())).unwrap();
    let mut audit: Vec<AuditEntry> = vec![];
    let policy = Policy {
        cooldown_secs: 0,
        ..live()
    };
    let mut driver =
        Driver::new(policy, Ledger::in_memory()).with_executor(ActionName::Offload, Arc::new(exec));
    let kind = |age| ActionKind::Offload {
        mode: OffloadMode::ColdData,
        min_age_secs: age,
        min_size_bytes: Some(1000),
    };
    // Nothing is a day old yet.
    let mut a = action("inc-4-offload", kind(Some(86_400)));
    driver
        .execute(&mut a, wall_now(), &mut audit)
        .await
        .unwrap()
        .unwrap();
    assert!(hot.join("big.log").exists() && hot.join("small.log").exists());
    // Any age, at least 1000 bytes: only the big file moves.
    let mut b = action("inc-5-offload", kind(None));
    let r = driver
        .execute(&mut b, wall_now(), &mut audit)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.bytes, 5000, "{}", r.detail);
    assert!(!hot.join("big.log").exists() && hot.join("small.log").exists());
    let moved: PathBuf = base.path().join("cold").join("hot").join("big.log");
    assert_eq!(std::fs::read(moved).unwrap(), vec![7u8; 5000]);
    // A load offload is not this executor's job: refused, nothing touched.
    let mut c = action(
        "inc-6-offload",
        ActionKind::Offload {
            mode: OffloadMode::Load,
            min_age_secs: None,
            min_size_bytes: None,
        },
    );
    driver
        .execute(&mut c, wall_now(), &mut audit)
        .await
        .unwrap();
    assert!(
        matches!(&c.status, ActionStatus::Skipped { reason } if reason.starts_with("not_supported"))
    );
}

/// Bytes that do not repeat at any power-of-two period, so a piece copied
/// twice or out of order cannot go unnoticed.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A file of several pieces goes up as a multipart upload, is checked
/// piece by piece and arrives byte for byte; one just under a piece and an
/// empty one take the single-put path beside it.
#[tokio::test]
async fn offload_copies_a_file_larger_than_a_piece_in_parts() {
    use reclaim::exec::offload::CHUNK_BYTES;
    let base = tempfile::tempdir().unwrap();
    let hot = base.path().join("hot");
    std::fs::create_dir_all(&hot).unwrap();
    let files = [
        ("big.log", noise(3 * CHUNK_BYTES + 12_345, 1)),
        ("edge.log", noise(CHUNK_BYTES, 2)),
        ("under.log", noise(CHUNK_BYTES - 1, 3)),
        ("empty.log", Vec::new()),
    ];
    for (name, data) in &files {
        std::fs::write(hot.join(name), data).unwrap();
    }
    let cfg = offload_config(base.path());
    let report = OffloadExecutor::from_config(&cfg)
        .unwrap()
        .run("off-big", None, None)
        .await
        .unwrap();
    assert_eq!(report.objects.len(), 4, "{}", report.detail);
    let total: usize = files.iter().map(|(_, d)| d.len()).sum();
    assert_eq!(report.bytes, total as u64);
    assert!(tree(&hot).is_empty(), "sources deleted");
    let cold = tree(&base.path().join("cold").join("hot"));
    for (name, data) in &files {
        assert!(
            cold.get(*name) == Some(data),
            "{name} differs after the copy"
        );
    }
    // The journal recorded each file's size and checksum.
    let journal = std::fs::read_to_string(&cfg.journal).unwrap();
    let copied: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r["step"] == "copied")
        .collect();
    assert_eq!(copied.len(), 4);
    let big = copied
        .iter()
        .find(|r| r["file"].as_str().unwrap().ends_with("big.log"))
        .unwrap();
    assert_eq!(big["size"], (3 * CHUNK_BYTES + 12_345) as u64);
}

/// Offload to an S3-compatible store: the one `scripts/test.sh` starts
/// (moto's server on loopback, address in `REMEDY_S3_ENDPOINT`), through
/// the same executor, journal and checks as the local tier.
#[cfg(feature = "s3")]
#[tokio::test]
async fn offload_to_an_s3_compatible_store_moves_and_verifies_every_file() {
    let endpoint = std::env::var("REMEDY_S3_ENDPOINT").expect(
        "REMEDY_S3_ENDPOINT is not set: run scripts/test.sh, which starts an S3-compatible server",
    );
    let bucket = format!("remedy-{}", std::process::id());
    // CreateBucket: a PUT on the bucket (the server does not check
    // signatures).
    let put = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "create bucket: {}", put.status());

    let base = tempfile::tempdir().unwrap();
    let mut original = make_files(&base.path().join("hot"), 12);
    // One file of two and a half pieces: a multipart upload to the server.
    let big = noise(reclaim::exec::offload::CHUNK_BYTES * 5 / 2, 9);
    std::fs::write(base.path().join("hot").join("big.log"), &big).unwrap();
    original.insert("big.log".into(), big);
    let options: BTreeMap<String, String> = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_allow_http", "true"),
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
        ("aws_region", "us-east-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let cfg = ObjectStoreConfig {
        roots: vec![base.path().join("hot")],
        destination: format!("s3://{bucket}/cold"),
        options: options.clone(),
        journal: base.path().join("offload.journal"),
    };
    let report = OffloadExecutor::from_config(&cfg)
        .unwrap()
        .run("off-s3", None, None)
        .await
        .unwrap();
    assert_eq!(report.objects.len(), 13, "{}", report.detail);
    assert!(tree(&base.path().join("hot")).is_empty(), "sources deleted");
    let status = OffloadExecutor::status(&cfg.journal).unwrap();
    assert_eq!(status[0].state, OffloadState::Complete, "{status:?}");

    // Every file is in the bucket, byte for byte.
    let url = url::Url::parse(&format!("s3://{bucket}/")).unwrap();
    let (store, _) = object_store::parse_url_opts(&url, options.iter()).unwrap();
    for (rel, data) in &original {
        let found = futures_get(&*store, &format!("cold/hot/{rel}")).await;
        assert_eq!(found.as_deref(), Some(&data[..]), "{rel}");
    }
}

#[cfg(feature = "s3")]
async fn futures_get(store: &dyn object_store::ObjectStore, key: &str) -> Option<Vec<u8>> {
    use object_store::ObjectStoreExt;
    let r = store.get(&object_store::path::Path::from(key)).await.ok()?;
    Some(r.bytes().await.ok()?.to_vec())
}
