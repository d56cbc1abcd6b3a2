//! `remedy run` against the real broker `scripts/test.sh` starts: the
//! streaming service gives replay's incidents, survives `kill -9`, and hands
//! partitions between instances through the changelog. Processes are real
//! (`remedy run` children), topics and groups are unique per test, and every
//! wait is bounded.

use crate::cli::remedy;
use crate::kafka::{bootstrap, create_topic, producer, read_to_end, unique, BROKER};
use ingest::decode::{Decoder, DecoderConfig};
use ingest::{Format, RawRecord};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Output topics of one deployment (unique names per test).
struct Names {
    group: String,
    inputs: Vec<String>,
    anomalies: String,
    incidents: String,
    actions: String,
    dead_letter: String,
    changelog: String,
}

impl Names {
    fn new(tag: &str, inputs: Vec<String>) -> Names {
        let base = unique(tag);
        Names {
            group: format!("{base}-group"),
            inputs,
            anomalies: format!("{base}-anomalies"),
            incidents: format!("{base}-incidents"),
            actions: format!("{base}-actions"),
            dead_letter: format!("{base}-dead"),
            changelog: format!("{base}-changelog"),
        }
    }

    /// `remedy run` configured through the environment only.
    fn command(&self, db: &Path) -> Command {
        let mut c = remedy();
        c.arg("run")
            .env("REMEDY_KAFKA__BROKERS", bootstrap())
            .env("REMEDY_KAFKA__GROUP_ID", &self.group)
            .env("REMEDY_KAFKA__TOPICS", self.inputs.join(","))
            .env("REMEDY_TOPICS__ANOMALIES", &self.anomalies)
            .env("REMEDY_TOPICS__INCIDENTS", &self.incidents)
            .env("REMEDY_TOPICS__ACTIONS", &self.actions)
            .env("REMEDY_TOPICS__DEAD_LETTER", &self.dead_letter)
            .env("REMEDY_TOPICS__CHANGELOG", &self.changelog)
            .env("REMEDY_ENGINE__CHECKPOINT_INTERVAL_SECS", "1")
            .env("REMEDY_API__LISTEN", "127.0.0.1:0")
            .env("REMEDY_STORE__DB", db)
            .env("RUST_LOG", "info");
        c
    }
}

/// A running `remedy run`, killed if the test ends first. Its stderr is
/// drained by a thread (kept for failure messages).
struct Instance {
    child: Child,
    addr: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    fn start(mut cmd: Command) -> Instance {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(a) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(a.trim().to_string());
                }
                let mut l = l.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("remedy run did not start: {}", log.lock().unwrap()));
        Instance { child, addr, log }
    }

    /// One metric's value (summed over labels), 0 when absent.
    fn metric(&self, name: &str) -> f64 {
        let Ok(mut s) = std::net::TcpStream::connect(&self.addr) else {
            return 0.0;
        };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn wait_until(&self, what: &str, secs: u64, mut ok: impl FnMut(&Instance) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !ok(self) {
            if self.exited() {
                panic!("remedy run exited before {what}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not happen within {secs}s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether the process has exited (a zombie until waited for).
    fn exited(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM and wait for a clean exit.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "remedy run exited with {st}: {}", self.log());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no exit after SIGTERM: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// kill -9.
    fn crash(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// Run to completion (`--exit-at-end`); returns its stderr.
fn run_bounded(mut cmd: Command, out: &Path) -> String {
    let o = cmd
        .args(["--exit-at-end", "--out"])
        .arg(out)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "remedy run --exit-at-end failed: {err}");
    err
}

/// A small generated scenario (plain files) plus a few broken records.
fn scenario(dir: &Path, seed: &str) -> Vec<PathBuf> {
    let out = dir.join("scenario");
    let st = remedy()
        .args([
            "generate",
            "--seed",
            seed,
            "--duration",
            "3h",
            "--rate",
            "1",
            "--out",
        ])
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let mut files = Vec::new();
    for sub in ["logs", "metrics"] {
        let mut fs: Vec<PathBuf> = std::fs::read_dir(out.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        fs.sort();
        files.extend(fs);
    }
    // Input nobody can read must be dead-lettered, not lost.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(out.join("logs/gateway.ecs.json"))
        .unwrap();
    writeln!(f, "{{\"@timestamp\": \"broken").unwrap();
    writeln!(f, "\u{1}\u{2} binary junk").unwrap();
    files
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect()
}

/// Produce `(partition, key, line)` to `topic`, waiting for every
/// acknowledgement.
async fn produce(topic: &str, records: &[(Option<i32>, Option<String>, String)]) {
    let p = producer();
    let mut pending = Vec::new();
    for (part, key, line) in records {
        loop {
            let mut rec = FutureRecord::<String, String>::to(topic).payload(line);
            if let Some(k) = key {
                rec = rec.key(k);
            }
            if let Some(n) = part {
                rec = rec.partition(*n);
            }
            match p.send_result(rec) {
                Ok(f) => {
                    pending.push(f);
                    break;
                }
                Err(_) => {
                    for f in pending.drain(..) {
                        f.await.unwrap().unwrap();
                    }
                }
            }
        }
    }
    for f in pending {
        f.await.unwrap().unwrap();
    }
}

/// Every record of `topic` (all partitions, from the start to the end as
/// of now): (key, value, headers), text read lossily.
fn read_all(topic: &str) -> Vec<(String, Vec<u8>, BTreeMap<String, String>)> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    read_to_end(topic)
        .into_iter()
        .map(|r| {
            let headers = r.headers.iter().map(|(k, v)| (k.clone(), text(v)));
            (
                text(r.key.as_deref().unwrap_or_default()),
                r.bytes,
                headers.collect(),
            )
        })
        .collect()
}

/// The newest version of each incident in `topic`, by id.
fn incidents_in(topic: &str) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    for (k, v, _) in read_all(topic) {
        let v: Value = serde_json::from_slice(&v).unwrap();
        assert_eq!(
            v["id"].as_str(),
            Some(k.as_str()),
            "incidents are keyed by id"
        );
        m.insert(k, v);
    }
    m
}

fn jsonl(path: &Path) -> Vec<Value> {
    lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `remedy replay` of `files` in that order.
fn replay(files: &[PathBuf], out: &Path) {
    let st = remedy()
        .arg("replay")
        .args(files)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
}

/// Each line of a file with its first event, if it decodes.
fn decode_lines(f: &Path) -> Vec<(String, Option<models::Event>)> {
    let mut d = Decoder::new(Format::Auto, DecoderConfig::default()).unwrap();
    let origin: std::sync::Arc<str> = std::sync::Arc::from(f.to_string_lossy().as_ref());
    lines(f)
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let raw = RawRecord::line(origin.clone(), i as u64, l.clone().into_bytes());
            let mut ev = Vec::new();
            let first = d
                .decode(&raw, &mut ev)
                .ok()
                .and_then(|()| ev.into_iter().next());
            (l, first)
        })
        .collect()
}

/// The lines of a file with the event time of each (a line that does not
/// decode takes its predecessor's).
fn timed_lines(f: &Path) -> Vec<(i64, String)> {
    let mut last = i64::MIN;
    decode_lines(f)
        .into_iter()
        .map(|(l, e)| {
            if let Some(e) = e {
                last = e.timestamp().as_millis();
            }
            (last, l)
        })
        .collect()
}

/// Each file to its own single-partition topic, in order (the layout in
/// which streaming must reproduce replay exactly). Returns the topics and
/// how many records each file has.
async fn topic_per_file(files: &[PathBuf], tag: &str) -> (Vec<String>, u64) {
    let mut topics = Vec::new();
    for _ in files {
        let t = unique(tag);
        create_topic(&t, 1).await;
        topics.push(t);
    }
    let total = produce_files(files, &topics, i64::MIN, i64::MAX).await;
    (topics, total)
}

/// Produce the lines of each file with event time in `[from, to)` to its
/// topic; returns how many.
async fn produce_files(files: &[PathBuf], topics: &[String], from: i64, to: i64) -> u64 {
    let mut n = 0;
    for (f, t) in files.iter().zip(topics) {
        let ls: Vec<(Option<i32>, Option<String>, String)> = timed_lines(f)
            .into_iter()
            .filter(|(ts, _)| (from..to).contains(ts))
            .map(|(_, l)| (None, None, l))
            .collect();
        n += ls.len() as u64;
        produce(t, &ls).await;
    }
    n
}

fn assert_same_incidents(streamed: &BTreeMap<String, Value>, replayed: &[Value]) {
    let replayed: BTreeMap<String, Value> = replayed
        .iter()
        .map(|v| (v["id"].as_str().unwrap().to_string(), v.clone()))
        .collect();
    assert!(!replayed.is_empty(), "the scenario should have incidents");
    assert_eq!(
        streamed.keys().collect::<Vec<_>>(),
        replayed.keys().collect::<Vec<_>>(),
        "incident ids"
    );
    for (id, v) in &replayed {
        assert_eq!(&streamed[id], v, "incident {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_gives_the_incidents_replay_gives() {
    let dir = tempfile::tempdir().unwrap();
    let files = scenario(dir.path(), "21");
    let (topics, total) = topic_per_file(&files, "remedy-eq").await;
    let names = Names::new("remedy-eq", topics);
    let err = run_bounded(
        names.command(&dir.path().join("s.db")),
        &dir.path().join("run"),
    );
    replay(&files, &dir.path().join("replay"));

    let replayed = jsonl(&dir.path().join("replay/incidents.jsonl"));
    assert_same_incidents(&incidents_in(&names.incidents), &replayed);
    // The store the API and dashboard serve has them too, with the scored
    // windows its plots draw.
    let db = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
    let count = |sql: &str| db.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(
        count("SELECT count(*) FROM incidents") as usize,
        replayed.len()
    );
    assert!(count("SELECT count(*) FROM signal_points") > 1000);
    // The same anomalies, each once.
    let canonical = |vs: Vec<Value>| {
        let mut v: Vec<String> = vs.iter().map(Value::to_string).collect();
        v.sort();
        v
    };
    let streamed: Vec<Value> = read_all(&names.anomalies)
        .into_iter()
        .map(|(_, v, _)| serde_json::from_slice(&v).unwrap())
        .collect();
    assert_eq!(
        canonical(streamed),
        canonical(jsonl(&dir.path().join("replay/anomalies.jsonl"))),
        "anomalies"
    );

    // Every record accounted for; the bad ones on the dead-letter topic
    // with the reason in a header.
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("run/summary-0.json")).unwrap(),
    )
    .unwrap();
    let ing = &summary["ingest"];
    assert_eq!(ing["read"].as_u64().unwrap(), total, "{err}");
    let dead = read_all(&names.dead_letter);
    assert_eq!(dead.len() as u64, ing["dead_lettered"].as_u64().unwrap());
    assert!(dead.len() >= 2, "the broken records are dead-lettered");
    for (_, _, h) in &dead {
        assert!(
            h.contains_key("remedy.reason") && h.contains_key("remedy.offset"),
            "{h:?}"
        );
    }
    let replay_summary: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("replay/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        ing["dead_lettered"], replay_summary["ingest"]["dead_lettered"],
        "the same records are dead-lettered"
    );
}

/// Real logs with real sessions (`datasets/nezha-slice`: TrainTicket as
/// Fluent Bit ships it, trace ids on every line): the session and
/// invariant detectors carry state across records and minutes, and a
/// stream must give exactly what replay gives, the route fault's incident
/// included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_sessions_stream_as_they_replay() {
    let dir = tempfile::tempdir().unwrap();
    let gz =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/nezha-slice/2023-01-29/logs.jsonl.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let plain = dir.path().join("logs.jsonl");
    std::fs::write(&plain, text).unwrap();
    let files = vec![plain];
    let (topics, _) = topic_per_file(&files, "remedy-nezha").await;
    let names = Names::new("remedy-nezha", topics);
    run_bounded(
        names.command(&dir.path().join("s.db")),
        &dir.path().join("run"),
    );
    replay(&files, &dir.path().join("replay"));
    let replayed = jsonl(&dir.path().join("replay/incidents.jsonl"));
    assert!(
        replayed
            .iter()
            .any(|i| i["root_causes"][0]["target"]["service"] == "ts-route-service"),
        "{replayed:#?}"
    );
    assert_same_incidents(&incidents_in(&names.incidents), &replayed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let files = scenario(dir.path(), "22");
    let mut topics = Vec::new();
    for _ in &files {
        let t = unique("remedy-crash");
        create_topic(&t, 1).await;
        topics.push(t);
    }
    // A first fifth of the scenario (split at one event time, so the merge
    // sees replay's order), then the rest while the instance runs.
    let times: Vec<i64> = files
        .iter()
        .flat_map(|f| timed_lines(f).into_iter().map(|(t, _)| t))
        .filter(|t| *t > i64::MIN)
        .collect();
    let (lo, hi) = (*times.iter().min().unwrap(), *times.iter().max().unwrap());
    let split = lo + (hi - lo) / 5;
    let early = produce_files(&files, &topics, i64::MIN, split).await;
    let names = Names::new("remedy-crash", topics.clone());
    let db = dir.path().join("s.db");

    // The rest is produced one topic after another, hours of event time
    // each: a lane that waited longer than the idle wait (5 s) for it
    // would let the first topic run the merge ahead (see the broker-crash
    // test below), so no lane may go idle in this exact comparison.
    let mut cmd = names.command(&db);
    cmd.env("REMEDY_ENGINE__MAX_IDLE_MS", "600000");
    let first = Instance::start(cmd);
    first.wait_until("a checkpoint of the first part", 120, |i| {
        i.metric("remedy_checkpoints_total") >= 1.0
            && i.metric("remedy_stream_records_total") >= early as f64
    });
    let total = early + produce_files(&files, &topics, split, i64::MAX).await;
    // kill -9 as soon as it is into the second part.
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.metric("remedy_stream_records_total") <= early as f64 {
        assert!(Instant::now() < deadline, "no progress: {}", first.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let consumed = first.metric("remedy_stream_records_total");
    first.crash();
    assert!(
        (consumed as u64) < total,
        "the kill should land mid-stream ({consumed} of {total} consumed)"
    );

    // Restart and run to the end.
    let err = run_bounded(names.command(&db), &dir.path().join("run"));
    assert!(
        err.contains("state restored"),
        "the restart restores its state: {err}"
    );
    replay(&files, &dir.path().join("replay"));

    // Every input record counted exactly once, none lost.
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("run/summary-0.json")).unwrap(),
    )
    .unwrap();
    let ing = &summary["ingest"];
    assert_eq!(ing["read"].as_u64().unwrap(), total, "{err}");
    assert_eq!(
        ing["read"].as_u64().unwrap(),
        ing["parsed"].as_u64().unwrap() + ing["dead_lettered"].as_u64().unwrap()
    );
    // Dead letters re-sent after the crash are the same records (offsets).
    let dead: BTreeSet<(String, String)> = read_all(&names.dead_letter)
        .into_iter()
        .map(|(_, _, h)| (h["remedy.topic"].clone(), h["remedy.offset"].clone()))
        .collect();
    assert_eq!(dead.len() as u64, ing["dead_lettered"].as_u64().unwrap());

    // Downstream sees exactly replay's incidents: none lost, none extra,
    // repeats after the crash carry the same id.
    assert_same_incidents(
        &incidents_in(&names.incidents),
        &jsonl(&dir.path().join("replay/incidents.jsonl")),
    );
}

/// Issue #21, finding 1: a bounded run (`--exit-at-end`) killed after a few
/// checkpoints and restarted with the same command read every record but
/// published half of replay's incidents: what the engine had found before
/// the last checkpoint was not in the state it restored. A scenario big
/// enough to be killed mid-way, one file per one-partition topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_run_killed_mid_way_loses_no_findings() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scenario");
    let st = remedy()
        .args([
            "generate",
            "--seed",
            "23",
            "--duration",
            "8h",
            "--rate",
            "2",
        ])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let mut files = Vec::new();
    for sub in ["logs", "metrics"] {
        let mut fs: Vec<PathBuf> = std::fs::read_dir(out.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        fs.sort();
        files.extend(fs);
    }
    let (topics, total) = topic_per_file(&files, "remedy-bcrash").await;
    let names = Names::new("remedy-bcrash", topics);
    let db = dir.path().join("s.db");
    let bounded = || {
        let mut c = names.command(&db);
        c.args(["--exit-at-end", "--out"])
            .arg(dir.path().join("run"));
        c
    };
    replay(&files, &dir.path().join("replay"));
    let replayed = jsonl(&dir.path().join("replay/incidents.jsonl"));

    // Killed at the first checkpoint after half the records, so the state
    // it restores holds findings no one has taken yet.
    let first = Instance::start(bounded());
    let mut at_half = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        assert!(
            !first.exited(),
            "the run ended before it could be killed; make the scenario bigger: {}",
            first.log()
        );
        assert!(Instant::now() < deadline, "no progress: {}", first.log());
        let consumed = first.metric("remedy_stream_records_total");
        let checkpoints = first.metric("remedy_checkpoints_total");
        match at_half {
            None if consumed >= total as f64 / 2.0 => at_half = Some(checkpoints),
            Some(c) if checkpoints > c => break,
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let consumed = first.metric("remedy_stream_records_total");
    first.crash();
    assert!(
        (consumed as u64) < total,
        "the kill should land mid-stream ({consumed} of {total} consumed)"
    );

    // The same command again: it restores and runs to the end.
    let err = run_bounded(names.command(&db), &dir.path().join("run"));
    assert!(err.contains("state restored"), "{err}");
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("run/summary-0.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["ingest"]["read"].as_u64().unwrap(), total, "{err}");
    assert_same_incidents(&incidents_in(&names.incidents), &replayed);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM incidents", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored as usize, replayed.len(), "incidents in the store");
    let streamed: BTreeSet<String> = read_all(&names.anomalies)
        .into_iter()
        .map(|(_, v, _)| serde_json::from_slice::<Value>(&v).unwrap().to_string())
        .collect();
    let want: BTreeSet<String> = jsonl(&dir.path().join("replay/anomalies.jsonl"))
        .iter()
        .map(Value::to_string)
        .collect();
    assert_eq!(streamed, want, "anomalies");
}

/// A broker of one test's own (`scripts/kafka.sh` on free ports and a
/// private state directory), so it can be crashed without disturbing the
/// other tests; stopped and removed on drop.
struct OwnBroker {
    env: Vec<(String, String)>,
    addr: String,
    _state: tempfile::TempDir,
}

impl OwnBroker {
    /// Two free ports for the broker and its controller. Both are held
    /// while the second is chosen: released one at a time, the kernel gave
    /// the same port twice once, and the broker refused to start (CI).
    fn free_ports() -> (u16, u16) {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = |l: &std::net::TcpListener| l.local_addr().unwrap().port();
        (port(&a), port(&b))
    }

    fn script(&self, what: &str) {
        let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka.sh"))
            .arg(what)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/kafka.sh {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start() -> OwnBroker {
        let state = tempfile::tempdir().unwrap();
        let (port, controller) = Self::free_ports();
        let b = OwnBroker {
            env: vec![
                ("KAFKA_PORT".into(), port.to_string()),
                ("KAFKA_CONTROLLER_PORT".into(), controller.to_string()),
                (
                    "KAFKA_STATE_DIR".into(),
                    state.path().join("kafka").display().to_string(),
                ),
            ],
            addr: format!("127.0.0.1:{port}"),
            _state: state,
        };
        b.script("start");
        b
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka.sh"))
            .arg("stop")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output();
    }
}

/// Issue #21: chaos on the broker side. The broker (not Remedy) is killed
/// with SIGKILL mid-stream and started again on its data a few seconds
/// later: the running instance rides it out by itself (it is not
/// restarted), reads the rest as it arrives, and downstream sees replay's
/// incidents exactly (latest per key), every record counted once.
#[tokio::test]
async fn a_broker_crash_mid_stream_loses_and_duplicates_nothing() {
    let broker = OwnBroker::start();
    // Every Kafka helper below talks to this broker (this test runs on one
    // thread).
    BROKER.with(|b| *b.borrow_mut() = Some(broker.addr.clone()));
    let dir = tempfile::tempdir().unwrap();
    let files = scenario(dir.path(), "24");
    let mut topics = Vec::new();
    for _ in &files {
        let t = unique("remedy-chaos");
        create_topic(&t, 1).await;
        topics.push(t);
    }
    let times: Vec<i64> = files
        .iter()
        .flat_map(|f| timed_lines(f).into_iter().map(|(t, _)| t))
        .filter(|t| *t > i64::MIN)
        .collect();
    let (lo, hi) = (*times.iter().min().unwrap(), *times.iter().max().unwrap());
    let split = lo + (hi - lo) / 3;
    let early = produce_files(&files, &topics, i64::MIN, split).await;
    let names = Names::new("remedy-chaos", topics.clone());
    let db = dir.path().join("s.db");
    let mut cmd = names.command(&db);
    // The broker is down for seconds: the producer keeps its records
    // (librdkafka retries them) rather than failing them.
    cmd.env("REMEDY_KAFKA__BROKERS", &broker.addr);
    // Every input is silent through the outage, longer than the default
    // idle wait (5 s): each lane then counts as idle, and the first topic
    // to get the rest of its file would run the merge ahead of the others,
    // whose records then arrive late (counted, left out of the signals).
    // That is the idle rule doing its job, not a loss, but this test
    // checks replay's incidents exactly, so no lane may go idle in it.
    cmd.env("REMEDY_ENGINE__MAX_IDLE_MS", "600000");
    let first = Instance::start(cmd);
    first.wait_until("a checkpoint of the first part", 120, |i| {
        i.metric("remedy_checkpoints_total") >= 1.0
            && i.metric("remedy_stream_records_total") >= early as f64
    });

    // The broker dies and comes back on its data.
    broker.script("crash");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !first.exited(),
        "remedy run died with the broker: {}",
        first.log()
    );
    broker.script("resume");

    // The rest arrives after the restart; the same instance reads it all.
    let total = early + produce_files(&files, &topics, split, i64::MAX).await;
    first.wait_until("every record consumed after the broker restart", 300, |i| {
        i.metric("remedy_stream_records_total") >= total as f64
    });
    // A graceful stop: results flushed, state written, offsets committed.
    first.stop();

    // Finish like the other streaming tests (a bounded run from the
    // committed state), then compare with replay.
    let mut fin = names.command(&db);
    fin.env("REMEDY_KAFKA__BROKERS", &broker.addr);
    let err = run_bounded(fin, &dir.path().join("run"));
    replay(&files, &dir.path().join("replay"));
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("run/summary-0.json")).unwrap(),
    )
    .unwrap();
    let ing = &summary["ingest"];
    assert_eq!(ing["read"].as_u64().unwrap(), total, "{err}");
    assert_eq!(
        ing["read"].as_u64().unwrap(),
        ing["parsed"].as_u64().unwrap() + ing["dead_lettered"].as_u64().unwrap()
    );
    assert_same_incidents(
        &incidents_in(&names.incidents),
        &jsonl(&dir.path().join("replay/incidents.jsonl")),
    );
    BROKER.with(|b| *b.borrow_mut() = None);
}

/// Whether `group` has committed the end of every partition of `topics`.
fn all_committed(group: &str, topics: &[&str], partitions: i32) -> bool {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        for p in 0..partitions {
            tpl.add_partition(t, p);
        }
    }
    let Ok(got) = c.committed_offsets(tpl, Duration::from_secs(5)) else {
        return false;
    };
    topics.iter().all(|t| {
        (0..partitions).all(|p| {
            let (_, high) = c
                .fetch_watermarks(t, p, Duration::from_secs(5))
                .unwrap_or((0, i64::MAX));
            match got.find_partition(t, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o >= high,
                _ => high == 0,
            }
        })
    })
}

/// The test's stand-in for a shipper: records keyed by service, partition
/// chosen from the key, in event-time order across files.
/// The generated estate's services, sorted.
const ESTATE: [&str; 7] = [
    "cache",
    "checkout",
    "database",
    "gateway",
    "inventory",
    "payments",
    "queue",
];

fn keyed(files: &[&Path], partitions: i32) -> Vec<(i64, i32, String, String)> {
    let mut out = Vec::new();
    for f in files {
        for (l, e) in decode_lines(f) {
            let Some(e) = e else { continue };
            let (ts, svc) = match &e {
                models::Event::Log(r) => (r.timestamp, r.service.clone()),
                models::Event::Metric(m) => (m.timestamp, m.key.label("service").map(String::from)),
                models::Event::Change(c) => (c.timestamp, Some(c.service.clone())),
            };
            let key = svc.unwrap_or_else(|| "none".into());
            // The estate's services round-robin over the partitions, so
            // every partition has data whichever instance owns it.
            let part = ESTATE
                .iter()
                .position(|s| *s == key)
                .unwrap_or(ESTATE.len()) as i32
                % partitions;
            out.push((ts.as_millis(), part, key, l));
        }
    }
    out.sort_by_key(|r| r.0);
    out
}

/// Records far out of time order on a topic are counted, not lost
/// silently: `/metrics` shows them as late events, as replay's summary
/// does for the same lines in a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_records_are_counted_in_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("remedy-late");
    create_topic(&topic, 1).await;
    let lines = crate::cli::ticks();
    // The last five minutes first, then the rest: the rest is late.
    let mut shuffled = lines[300..].to_vec();
    shuffled.extend_from_slice(&lines[..300]);
    let records: Vec<(Option<i32>, Option<String>, String)> =
        shuffled.into_iter().map(|l| (Some(0), None, l)).collect();
    produce(&topic, &records).await;
    let names = Names::new("remedy-late", vec![topic.clone()]);
    let i = Instance::start(names.command(&dir.path().join("late.db")));
    i.wait_until("every record read and analysed", 120, |i| {
        i.metric("remedy_stream_records_total") >= 600.0
            && i.metric("remedy_stream_buffered_events") == 0.0
    });
    let late = i.metric("remedy_late_events");
    i.stop();
    assert!(
        (250.0..=300.0).contains(&late),
        "{late} late of the 300 moved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_hand_over_partitions_through_the_changelog() {
    let dir = tempfile::tempdir().unwrap();
    let files = scenario(dir.path(), "23");
    let pick = |name: &str| files.iter().find(|f| f.ends_with(name)).unwrap().as_path();
    let logs = keyed(
        &[
            pick("gateway.ecs.json"),
            pick("checkout.otel.json"),
            pick("cache.fluentbit.json"),
        ],
        4,
    );
    let metrics = keyed(&[pick("adapter.jsonl")], 4);
    let used: BTreeSet<i32> = logs.iter().chain(&metrics).map(|r| r.1).collect();
    assert_eq!(used.len(), 4, "every partition has data: {used:?}");

    let tag = "remedy-scale";
    let (lt, mt) = (unique(tag), unique(tag));
    create_topic(&lt, 4).await;
    create_topic(&mt, 4).await;
    // The input arrives in two halves split at one event time, so the
    // event-time merge sees the same order however fast each half is read.
    let split = logs[logs.len() / 2].0;
    let half = |rs: &[(i64, i32, String, String)], second: bool| {
        rs.iter()
            .filter(|r| (r.0 >= split) == second)
            .map(|r| (Some(r.1), Some(r.2.clone()), r.3.clone()))
            .collect::<Vec<_>>()
    };
    produce(&lt, &half(&logs, false)).await;
    produce(&mt, &half(&metrics, false)).await;
    let total = (logs.len() + metrics.len()) as f64;

    // Two instances share the group; the second stops mid-way.
    let two = Names::new("remedy-two", vec![lt.clone(), mt.clone()]);
    let a = Instance::start(two.command(&dir.path().join("a.db")));
    let b = Instance::start(two.command(&dir.path().join("b.db")));
    for i in [&a, &b] {
        i.wait_until("its partitions' first checkpoint", 120, |i| {
            i.metric("remedy_checkpoints_total") >= 1.0
                && i.metric("remedy_stream_records_total") > 0.0
        });
    }
    let restored_before = a.metric("remedy_state_restores_total");
    b.stop();
    produce(&lt, &half(&logs, true)).await;
    produce(&mt, &half(&metrics, true)).await;
    a.wait_until(
        "taking over and restoring the stopped instance's partitions",
        120,
        |i| i.metric("remedy_state_restores_total") > restored_before,
    );
    a.wait_until("everything read, committed and analysed", 180, |i| {
        i.metric("remedy_rebalances_total") >= 2.0
            && all_committed(&two.group, &[&lt, &mt], 4)
            && i.metric("remedy_stream_buffered_events") == 0.0
    });
    // SIGTERM publishes what is left and checkpoints before exiting.
    a.stop();

    // The same input through one instance alone.
    let one = Names::new("remedy-one", vec![lt.clone(), mt.clone()]);
    let solo = Instance::start(one.command(&dir.path().join("one.db")));
    solo.wait_until("everything read, committed and analysed", 180, |i| {
        i.metric("remedy_stream_records_total") >= total
            && all_committed(&one.group, &[&lt, &mt], 4)
            && i.metric("remedy_stream_buffered_events") == 0.0
    });
    solo.stop();

    let handed = incidents_in(&two.incidents);
    let alone = incidents_in(&one.incidents);
    assert!(!alone.is_empty(), "the scenario should have incidents");
    assert_eq!(
        handed.keys().collect::<Vec<_>>(),
        alone.keys().collect::<Vec<_>>(),
        "incident ids"
    );
    for (id, v) in &alone {
        assert_eq!(&handed[id], v, "incident {id}");
    }
}
