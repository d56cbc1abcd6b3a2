//! `remedy generate`: determinism, labels that match the data, clear errors.

use crate::cli::{assert_same_bytes, remedy};
use serde_json::Value;
use std::path::Path;

fn generate(out: &Path, seed: u64, extra: &[&str]) -> std::process::Output {
    remedy()
        .args([
            "generate",
            "--seed",
            &seed.to_string(),
            "--duration",
            "3h",
            "--rate",
            "1",
        ])
        .args(extra)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for sub in ["logs", "metrics"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            v.push(format!(
                "{sub}/{}",
                e.unwrap().file_name().to_string_lossy()
            ));
        }
    }
    v.push("labels.json".into());
    v.push("manifest.json".into());
    v.sort();
    v
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let run = generate(&a, 11, &[]);
    assert!(run.status.success());
    // No progress bar (or anything else) on a stderr that is not a terminal.
    assert!(
        run.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(generate(&b, 11, &[]).status.success());
    assert!(generate(&c, 12, &[]).status.success());
    let names = files(&a);
    assert_eq!(names, files(&b));
    assert!(names.len() >= 12, "{names:?}");
    for f in &names {
        assert_same_bytes(&a.join(f), &b.join(f));
    }
    let differs = names
        .iter()
        .any(|f| std::fs::read(a.join(f)).unwrap() != std::fs::read(c.join(f)).unwrap());
    assert!(differs, "a different seed must give different data");
}

/// Error records of a service per minute inside one fault window, and
/// outside every fault window (other faults legitimately raise errors too).
fn error_density(
    lines: &[Value],
    service: &str,
    window: (i64, i64),
    all: &[(i64, i64)],
) -> (f64, f64) {
    let (mut inside, mut outside) = (0.0, 0.0);
    let (mut t_min, mut t_max) = (i64::MAX, i64::MIN);
    for l in lines {
        let ts = models::Timestamp::parse_rfc3339(l["timestamp"].as_str().unwrap())
            .unwrap()
            .as_millis();
        t_min = t_min.min(ts);
        t_max = t_max.max(ts);
        if l["service"] != service || l["level"] != "error" {
            continue;
        }
        if (window.0..window.1).contains(&ts) {
            inside += 1.0;
        } else if !all.iter().any(|(a, b)| (*a..*b).contains(&ts)) {
            outside += 1.0;
        }
    }
    let faulty: i64 = all.iter().map(|(a, b)| b - a).sum();
    let win = (window.1 - window.0) as f64 / 60_000.0;
    let rest = ((t_max - t_min) - faulty) as f64 / 60_000.0;
    (inside / win, outside / rest.max(1.0))
}

/// Every log record of `out/logs`, decoded the way replay decodes it, as
/// the JSON of `models::LogRecord`.
fn decoded_logs(out: &Path) -> Vec<Value> {
    let mut logs = Vec::new();
    let mut decoder_out = Vec::new();
    let src = ingest::source::file::FileSource::open(&[out.join("logs")], 1 << 20).unwrap();
    let mut decoders = std::collections::HashMap::new();
    for raw in src {
        let raw = raw.unwrap();
        let d = decoders.entry(raw.origin.clone()).or_insert_with(|| {
            ingest::decode::Decoder::new(ingest::Format::Auto, Default::default()).unwrap()
        });
        decoder_out.clear();
        d.decode(&raw, &mut decoder_out).unwrap();
        for e in &decoder_out {
            if let models::Event::Log(r) = e {
                logs.push(serde_json::to_value(r).unwrap());
            }
        }
    }
    logs
}

fn labels_of(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("labels.json")).unwrap()).unwrap()
}

#[test]
fn quiet_single_scenarios_and_service_subsets() {
    let dir = tempfile::tempdir().unwrap();
    // quiet: no fault, and errors stay at the background rate (blips only).
    let quiet = dir.path().join("quiet");
    assert!(generate(&quiet, 4, &["--scenario", "quiet"])
        .status
        .success());
    assert_eq!(labels_of(&quiet)["faults"], serde_json::json!([]));
    let logs = decoded_logs(&quiet);
    let errors = logs.iter().filter(|l| l["level"] == "error").count();
    assert!(logs.len() > 5_000, "{} records", logs.len());
    assert!(
        errors * 100 < logs.len(),
        "{errors} errors in {} records of a quiet run",
        logs.len()
    );
    // One named scenario: exactly that fault.
    let one = dir.path().join("one");
    assert!(generate(&one, 4, &["--scenario", "db_timeout"])
        .status
        .success());
    let faults = labels_of(&one)["faults"].as_array().unwrap().clone();
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0]["class"], "dependency_failure");
    assert_eq!(faults[0]["root_service"], "database");
    assert_eq!(faults[0]["expected_action"], "notify");
    // A subset of services: only their logs, and only faults rooted in them.
    let sub = dir.path().join("sub");
    assert!(generate(&sub, 4, &["--services", "gateway,checkout"])
        .status
        .success());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(sub.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["services"],
        serde_json::json!(["gateway", "checkout"])
    );
    let services: std::collections::BTreeSet<String> = decoded_logs(&sub)
        .iter()
        .filter_map(|l| l["service"].as_str().map(str::to_string))
        .collect();
    assert!(
        services
            .iter()
            .all(|s| ["gateway", "checkout", "kernel"].contains(&s.as_str())),
        "{services:?}"
    );
    let faults = labels_of(&sub)["faults"].as_array().unwrap().clone();
    assert!(!faults.is_empty());
    for f in &faults {
        let root = f["root_service"].as_str().unwrap();
        assert!(["gateway", "checkout"].contains(&root), "{f}");
    }
    // The first N services of the estate.
    let n = dir.path().join("n");
    assert!(generate(&n, 4, &["--services", "3"]).status.success());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(n.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["services"],
        serde_json::json!(["gateway", "checkout", "payments"])
    );
}

/// `(timestamp ms, value)` of every sample of `metric` on `host` whose labels
/// include each `(key, value)` of `want`, read from the host's Prometheus
/// text file or, for the host shipped through the adapter, from
/// `adapter.jsonl`.
fn series(out: &Path, host: &str, metric: &str, want: &[(&str, &str)]) -> Vec<(i64, f64)> {
    let mut v = Vec::new();
    let prom = out.join(format!("metrics/{host}.prom"));
    if let Ok(text) = std::fs::read_to_string(&prom) {
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(metric) else {
                continue;
            };
            if !rest.starts_with('{')
                || !want
                    .iter()
                    .all(|(k, x)| rest.contains(&format!("{k}=\"{x}\"")))
            {
                continue;
            }
            let mut parts = line.rsplit(' ');
            let ts: i64 = parts.next().unwrap().parse().unwrap();
            let value: f64 = parts.next().unwrap().parse().unwrap();
            v.push((ts, value));
        }
        return v;
    }
    let adapter = std::fs::read_to_string(out.join("metrics/adapter.jsonl")).unwrap();
    for line in adapter.lines() {
        let j: Value = serde_json::from_str(line).unwrap();
        if j["name"] != metric || j["labels"]["host"] != host {
            continue;
        }
        if !want.iter().all(|(k, x)| j["labels"][*k] == *x) {
            continue;
        }
        let ts = models::Timestamp::parse_rfc3339(j["timestamp"].as_str().unwrap())
            .unwrap()
            .as_millis();
        v.push((ts, j["value"].as_str().unwrap().parse().unwrap()));
    }
    v
}

/// Largest value inside `window` and outside every fault window.
fn peak_inside_outside(s: &[(i64, f64)], window: (i64, i64), all: &[(i64, i64)]) -> (f64, f64) {
    let (mut inside, mut outside) = (f64::MIN, f64::MIN);
    for &(ts, v) in s {
        if (window.0..window.1).contains(&ts) {
            inside = inside.max(v);
        } else if !all.iter().any(|(a, b)| (*a..*b).contains(&ts)) {
            outside = outside.max(v);
        }
    }
    assert!(
        inside > f64::MIN && outside > f64::MIN,
        "samples on both sides"
    );
    (inside, outside)
}

/// Per-second increase of a counter between consecutive samples, stamped at
/// the later sample.
fn rates(s: &[(i64, f64)]) -> Vec<(i64, f64)> {
    s.windows(2)
        .map(|w| {
            (
                w[1].0,
                (w[1].1 - w[0].1) / ((w[1].0 - w[0].0) as f64 / 1000.0),
            )
        })
        .collect()
}

/// First error of `service` in `[from, to)` (ms) whose record mentions
/// `symptom` (background errors happen at any time; the symptom names the
/// fault's own error), from decoded records.
fn first_error(lines: &[Value], service: &str, symptom: &str, from: i64, to: i64) -> Option<i64> {
    lines
        .iter()
        .filter(|l| l["service"] == service && l["level"] == "error")
        .filter(|l| l.to_string().contains(symptom))
        .map(|l| {
            models::Timestamp::parse_rfc3339(l["timestamp"].as_str().unwrap())
                .unwrap()
                .as_millis()
        })
        .filter(|ts| (from..to).contains(ts))
        .min()
}

#[test]
fn labels_match_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    let run = remedy()
        .args([
            "generate",
            "--seed",
            "5",
            "--duration",
            "10h",
            "--rate",
            "2",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let labels: Value =
        serde_json::from_slice(&std::fs::read(out.join("labels.json")).unwrap()).unwrap();
    let faults = labels["faults"].as_array().unwrap();
    let classes: Vec<&str> = faults
        .iter()
        .map(|f| f["class"].as_str().unwrap())
        .collect();
    for c in [
        "memory_leak",
        "fd_leak",
        "thread_leak",
        "disk_pressure",
        "cpu_saturation",
        "dependency_failure",
        "bad_change",
        "noisy_neighbor",
    ] {
        assert!(classes.contains(&c), "{c} missing from {classes:?}");
    }
    // Windows lie inside the run, in order, without overlap, with quiet between.
    let t = |v: &Value| {
        models::Timestamp::parse_rfc3339(v.as_str().unwrap())
            .unwrap()
            .as_millis()
    };
    let mut prev_end = t(&labels["start"]);
    for f in faults {
        assert!(
            t(&f["start"]) > prev_end + 10 * 60_000,
            "quiet stretch before {}",
            f["id"]
        );
        assert!(t(&f["end"]) > t(&f["start"]));
        prev_end = t(&f["end"]);
    }
    assert!(prev_end <= t(&labels["end"]));

    // Decode everything the way replay does and check each fault's symptom.
    let replay = remedy()
        .args(["replay", "--out"])
        .arg(dir.path().join("r"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let summary: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("r/summary.json")).unwrap()).unwrap();
    assert_eq!(
        summary["ingest"]["dead_lettered"], 0,
        "generated data parses cleanly"
    );

    let logs = decoded_logs(&out);
    let metric_text = |host: &str| {
        let p = out.join(format!("metrics/{host}.prom"));
        std::fs::read_to_string(p).unwrap_or_default()
    };
    let adapter = std::fs::read_to_string(out.join("metrics/adapter.jsonl")).unwrap();
    let windows: Vec<(i64, i64)> = faults
        .iter()
        .map(|f| (t(&f["start"]), t(&f["end"])))
        .collect();
    for f in faults {
        let (start, end) = (t(&f["start"]), t(&f["end"]));
        let target = &f["target"];
        for key in ["service", "host", "container"] {
            if let Some(v) = target[key].as_str() {
                let seen = logs.iter().any(|l| l[key] == v)
                    || ["node-1", "node-2", "node-3"]
                        .iter()
                        .any(|h| metric_text(h).contains(&format!("\"{v}\"")))
                    || adapter.contains(&format!("\"{v}\""));
                assert!(seen, "target {key}={v} of {} appears in the data", f["id"]);
            }
        }
        let class = f["class"].as_str().unwrap();
        if ["dependency_failure", "bad_change", "fd_leak", "thread_leak"].contains(&class) {
            let svc = f["root_service"].as_str().unwrap();
            let (inside, outside) = error_density(&logs, svc, (start, end), &windows);
            assert!(
                inside > 5.0 * outside.max(0.01),
                "{}: {inside} vs {outside} errors/min",
                f["id"]
            );
        }
        match class {
            // Their error bursts were checked above; the order of the errors
            // along the call chain is checked below.
            "dependency_failure" | "bad_change" => {}
            "memory_leak" => {
                let c = target["container"].as_str().unwrap();
                let host = target["host"].as_str().unwrap();
                let mem = series(
                    &out,
                    host,
                    "container_memory_working_set_bytes",
                    &[("container", c)],
                );
                let (inside_max, outside_max) = peak_inside_outside(&mem, (start, end), &windows);
                assert!(
                    inside_max > 1.5 * outside_max,
                    "memory grows in the window: {inside_max} vs {outside_max}"
                );
                // The leak reaches the limit, the kernel kills the container,
                // and the restarted one is back below its old baseline before
                // the labelled end; the OOM kill is in the node log.
                let limit = series(
                    &out,
                    host,
                    "container_spec_memory_limit_bytes",
                    &[("container", c)],
                )[0]
                .1;
                assert!(inside_max > 0.95 * limit, "{inside_max} of {limit}");
                let last = mem.iter().rfind(|(ts, _)| *ts < end).unwrap().1;
                assert!(last < 0.6 * limit, "memory after the restart: {last}");
                let kernel = std::fs::read_to_string(out.join("logs/nodes.syslog")).unwrap();
                let oom = kernel
                    .lines()
                    .find(|l| l.contains("OOMKilled") && l.contains(c))
                    .expect("an OOM kill in nodes.syslog");
                let oom_ts = t(&Value::from(oom.split(' ').nth(1).unwrap()));
                assert!((start..end).contains(&oom_ts), "{oom}");
            }
            "fd_leak" | "thread_leak" => {
                let c = target["container"].as_str().unwrap();
                let host = target["host"].as_str().unwrap();
                let (metric, symptom) = if f["class"] == "fd_leak" {
                    ("process_open_fds", "too many open files")
                } else {
                    ("jvm_threads_live_threads", "unable to create native thread")
                };
                let s = series(&out, host, metric, &[("container", c)]);
                let (inside, outside) = peak_inside_outside(&s, (start, end), &windows);
                assert!(
                    inside > 5.0 * outside,
                    "{metric} of {c}: {inside} vs {outside}"
                );
                // The resource grows before the errors start.
                let svc = f["root_service"].as_str().unwrap();
                let err =
                    first_error(&logs, svc, symptom, start, end).expect("errors in the window");
                let half = s
                    .iter()
                    .find(|(ts, v)| *ts >= start && *v > outside * 2.0)
                    .expect("the resource grows")
                    .0;
                assert!(
                    half < err,
                    "{metric} grows ({half}) before the first error ({err})"
                );
            }
            "disk_pressure" => {
                let host = target["host"].as_str().unwrap();
                let avail = series(&out, host, "node_filesystem_avail_bytes", &[]);
                let low_inside = avail
                    .iter()
                    .filter(|(ts, _)| (start..end).contains(ts))
                    .map(|x| x.1)
                    .fold(f64::MAX, f64::min);
                let low_outside = avail
                    .iter()
                    .filter(|(ts, _)| !windows.iter().any(|(a, b)| (*a..*b).contains(ts)))
                    .map(|x| x.1)
                    .fold(f64::MAX, f64::min);
                assert!(
                    low_inside < 0.2 * low_outside,
                    "{low_inside} vs {low_outside}"
                );
                // What fills the disk is what `prune` reclaims.
                for ty in ["images", "build_cache"] {
                    let u = series(&out, host, "engine_disk_usage_bytes", &[("type", ty)]);
                    let (inside, outside) = peak_inside_outside(&u, (start, end), &windows);
                    assert!(inside > 3.0 * outside, "{ty}: {inside} vs {outside}");
                }
                let dangling = series(&out, host, "engine_dangling_images", &[]);
                let (inside, outside) = peak_inside_outside(&dangling, (start, end), &windows);
                assert!(
                    inside > 10.0 * outside,
                    "dangling images {inside} vs {outside}"
                );
            }
            "cpu_saturation" => {
                let c = target["container"].as_str().unwrap();
                let host = target["host"].as_str().unwrap();
                let cpu = rates(&series(
                    &out,
                    host,
                    "container_cpu_usage_seconds_total",
                    &[("container", c)],
                ));
                let (inside, outside) = peak_inside_outside(&cpu, (start, end), &windows);
                assert!(
                    inside > 1.8 && outside < 1.0,
                    "cpu cores {inside} vs {outside}"
                );
                // The backlog builds on one hot partition only.
                let hot = series(&out, host, "kafka_consumergroup_lag", &[("partition", "3")]);
                let cold = series(&out, host, "kafka_consumergroup_lag", &[("partition", "0")]);
                let (hot_in, hot_out) = peak_inside_outside(&hot, (start, end), &windows);
                let (cold_in, _) = peak_inside_outside(&cold, (start, end), &windows);
                assert!(
                    hot_in > 20.0 * hot_out.max(1.0),
                    "lag {hot_in} vs {hot_out}"
                );
                assert!(cold_in < hot_in / 20.0, "cold partition {cold_in}");
            }
            "noisy_neighbor" => {
                let host = target["host"].as_str().unwrap();
                let steal = rates(&series(
                    &out,
                    host,
                    "node_cpu_seconds_total",
                    &[("mode", "steal")],
                ));
                let (inside, outside) = peak_inside_outside(&steal, (start, end), &windows);
                assert!(inside > 10.0 * outside, "steal {inside} vs {outside}");
            }
            other => panic!("no symptom check for class {other}"),
        }
        // Errors travel up the call chain: the root first, its callers later.
        match f["scenario"].as_str().unwrap() {
            "db_timeout" => {
                let db = first_error(&logs, "database", "too many clients", start, end).unwrap();
                let pay = first_error(&logs, "payments", "database_timeout", start, end).unwrap();
                let gw = first_error(&logs, "gateway", "returned 502", start, end).unwrap();
                assert!(
                    db.min(pay) < gw,
                    "database {db}, payments {pay}, gateway {gw}"
                );
            }
            "bad_deploy" => {
                let changes = std::fs::read_to_string(out.join("logs/changes.ecs.json")).unwrap();
                let deploy = changes
                    .lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap())
                    .find(|c| {
                        c["event"]["action"] == "deploy"
                            && c["service"]["name"] == "checkout"
                            && (start..end).contains(&t(&c["@timestamp"]))
                    })
                    .expect("the bad deploy is a change event in the window");
                let co =
                    first_error(&logs, "checkout", "NullPointerException", start, end).unwrap();
                let gw = first_error(&logs, "gateway", "returned 500", start, end).unwrap();
                assert!(
                    t(&deploy["@timestamp"]) <= co && co < gw,
                    "deploy, checkout {co}, gateway {gw}"
                );
            }
            _ => {}
        }
    }
    // Deploys and config changes also happen outside the faults, harmlessly.
    let changes = std::fs::read_to_string(out.join("logs/changes.ecs.json")).unwrap();
    let outside = changes
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|c| {
            let ts = t(&c["@timestamp"]);
            !windows.iter().any(|(a, b)| (*a..*b).contains(&ts))
        })
        .count();
    assert!(outside >= 2, "{outside} harmless changes");
}

/// Every file is in event-time order, and the Prometheus text is standard
/// exposition 0.0.4: in each scrape, one group per family led by its HELP
/// and TYPE, and a millisecond timestamp on every sample.
#[test]
fn files_are_time_ordered_and_exposition_is_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    assert!(generate(&out, 3, &[]).status.success());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    for (file, lines) in manifest["files"].as_object().unwrap() {
        let text = std::fs::read_to_string(out.join(file)).unwrap();
        assert_eq!(
            text.lines().count() as u64,
            lines.as_u64().unwrap(),
            "{file}"
        );
    }
    // Logs: decode each file and require non-decreasing timestamps.
    let src = ingest::source::file::FileSource::open(&[out.join("logs")], 1 << 20).unwrap();
    let mut decoders = std::collections::HashMap::new();
    let mut last: std::collections::HashMap<String, i64> = Default::default();
    let mut events = Vec::new();
    for raw in src {
        let raw = raw.unwrap();
        let d = decoders.entry(raw.origin.clone()).or_insert_with(|| {
            ingest::decode::Decoder::new(ingest::Format::Auto, Default::default()).unwrap()
        });
        events.clear();
        d.decode(&raw, &mut events).unwrap();
        for e in &events {
            let ts = match e {
                models::Event::Log(r) => r.timestamp.as_millis(),
                models::Event::Change(c) => c.timestamp.as_millis(),
                _ => continue,
            };
            let prev = last.entry(raw.origin.to_string()).or_insert(i64::MIN);
            assert!(ts >= *prev, "{} goes back in time", raw.origin);
            *prev = ts;
        }
    }
    assert!(last.len() >= 8, "{last:?}");
    for host in ["node-1", "node-2", "node-3"] {
        let text = std::fs::read_to_string(out.join(format!("metrics/{host}.prom"))).unwrap();
        // Cut the file into scrapes: a scrape starts with the comments that
        // precede its first sample carrying a new timestamp.
        let mut scrapes: Vec<(i64, Vec<&str>)> = Vec::new();
        let mut comments: Vec<&str> = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') {
                comments.push(line);
                continue;
            }
            let ts: i64 = line
                .rsplit_once(' ')
                .and_then(|(_, ts)| ts.parse().ok())
                .unwrap_or_else(|| panic!("{host}: no millisecond timestamp: {line}"));
            if scrapes.last().is_none_or(|(t, _)| *t != ts) {
                if let Some((prev, _)) = scrapes.last() {
                    assert!(ts > *prev, "{host}: scrapes in time order");
                }
                scrapes.push((ts, Vec::new()));
            }
            let body = &mut scrapes.last_mut().unwrap().1;
            body.append(&mut comments);
            body.push(line);
        }
        assert!(comments.is_empty(), "{host}: trailing comments");
        assert!(scrapes.len() > 100, "{host}: {} scrapes", scrapes.len());
        for (ts, lines) in &scrapes {
            let mut declared: Vec<&str> = Vec::new();
            let mut current = "";
            let mut help: Option<&str> = None;
            for line in lines {
                if let Some(rest) = line.strip_prefix("# HELP ") {
                    let (fam, text) = rest.split_once(' ').expect("HELP has a text");
                    assert!(!text.is_empty(), "{line}");
                    help = Some(fam);
                } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                    let (fam, kind) = rest.split_once(' ').unwrap();
                    assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                    assert_eq!(help.take(), Some(fam), "{host}: HELP right before {line}");
                    assert!(
                        !declared.contains(&fam),
                        "{host} at {ts}: {fam} declared twice"
                    );
                    declared.push(fam);
                    current = fam;
                } else {
                    let (series, _) = line.rsplit_once(' ').unwrap();
                    let (name, value) = series.rsplit_once(' ').unwrap();
                    value.parse::<f64>().unwrap();
                    let name = &name[..name.find('{').unwrap_or(name.len())];
                    let in_group = name == current
                        || name
                            .strip_prefix(current)
                            .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s));
                    assert!(
                        in_group,
                        "{host} at {ts}: {name} outside its family's group ({current})"
                    );
                }
            }
        }
    }
}

#[test]
fn bad_flags_fail_clearly_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (flags, needle) in [
        (vec!["--duration", "soon"], "invalid duration"),
        (vec!["--scenario", "meteor_strike"], "unknown scenario"),
        (vec!["--services", "gateway,mainframe"], "unknown service"),
        (vec!["--duration", "20m"], "too short"),
        (vec!["--duration", "0s"], "invalid duration"),
        (vec!["--start", "last tuesday"], "not an RFC 3339 time"),
        (vec!["--rate", "0"], "--rate must be a positive"),
        (vec!["--services", "0"], "choose 1 to 7"),
        (vec!["--scrape-interval", "500ms"], "--scrape-interval"),
    ] {
        let out = dir.path().join("o");
        let r = remedy()
            .arg("generate")
            .args(&flags)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(r.status.code(), Some(2), "{flags:?}");
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(err.contains(needle), "{flags:?}: {err}");
        assert!(!out.exists(), "{flags:?} left output behind");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(leftovers.is_empty(), "{flags:?} left temporary files");
    }
}

#[test]
fn refuses_to_overwrite_a_directory_it_did_not_write() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("precious.txt"), "keep me").unwrap();
    let r = generate(dir.path(), 1, &[]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("not an earlier output"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("precious.txt")).unwrap(),
        "keep me"
    );
}

/// `remedy generate` of a day into `data` (`--rate 1`, then `args`),
/// which must succeed.
/// A temporary directory holding a day generated with `args` in `data/`,
/// and the path for its replay's output (`out/`).
fn generated_day(args: &[&str]) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("out");
    generate_day(&data, args);
    (dir, data, out)
}

fn generate_day(data: &Path, args: &[&str]) {
    let run = remedy()
        .args(["generate", "--rate", "1"])
        .args(args)
        .arg("--out")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// `remedy replay --out out data`, which must succeed.
fn replay_day(data: &Path, out: &Path) {
    let replay = remedy()
        .arg("replay")
        .arg("--out")
        .arg(out)
        .arg(data)
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
}

/// The records of a JSON-lines output file.
fn jsonl(out: &Path, file: &str) -> Vec<Value> {
    std::fs::read_to_string(out.join(file))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every metric file of a generated scenario, as one text.
fn scrapes(data: &Path) -> String {
    let mut all = String::new();
    for e in std::fs::read_dir(data.join("metrics")).unwrap() {
        all.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap_or_default());
    }
    all
}

fn manifest_of(data: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(data.join("manifest.json")).unwrap()).unwrap()
}

/// A batch job that makes inventory slow and log lock timeouts for three
/// minutes every hour is ordinary behaviour: after its first runs the
/// replay reports each run as recurring, with its period, and opens no
/// incident for it.
#[test]
fn an_hourly_batch_job_is_learned_not_paged() {
    let (_dir, data, out) = generated_day(&[
        "--seed",
        "106",
        "--duration",
        "24h",
        "--scenario",
        "quiet",
        "--services",
        "gateway,checkout,inventory",
        "--batch-every",
        "1h",
    ]);
    assert_eq!(manifest_of(&data)["batch_every_secs"], 3600);
    replay_day(&data, &out);
    let runs: Vec<Value> = jsonl(&out, "anomalies.jsonl")
        .into_iter()
        .filter(|a| a["signal"]["kind"] == "error_rate" && a["signal"]["service"] == "inventory")
        .collect();
    // The period is estimated from when the runs were noticed, within a
    // few minutes of the job's hour.
    let recurring = runs
        .iter()
        .filter_map(|a| {
            let d = a["detail"].as_str().unwrap();
            let rest = &d[d.find("recurs every ")? + "recurs every ".len()..];
            rest.split(' ').next()?.parse::<u32>().ok()
        })
        .filter(|m| (57..=63).contains(m))
        .count();
    // The job is seen most hours (night runs can stay inside the band)...
    assert!(runs.len() >= 15, "{} runs seen", runs.len());
    // ...and known for what it is from the fourth evenly spaced run on.
    assert!(
        recurring + 4 >= runs.len(),
        "{recurring} of {} runs recur",
        runs.len()
    );
    let incidents = jsonl(&out, "incidents.jsonl");
    assert!(
        incidents.len() <= 4,
        "{} incidents on a fault-free day: {incidents:#?}",
        incidents.len()
    );
}

/// Rolling deploys every hour on a fault-free day: each replaces a
/// service's containers, one by one, with new Kubernetes-style pods that
/// start cold (their first requests slow). That start-up is ordinary
/// operations: the replay opens no incident at a deployed service in the
/// minutes after its deploy (before, most deploys paged on their p99).
#[test]
fn rolling_deploys_are_not_paged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    generate_day(
        &data,
        &[
            "--seed",
            "121",
            "--duration",
            "12h",
            "--scenario",
            "quiet",
            "--services",
            "gateway,checkout,payments,cache",
            "--deploy-every",
            "1h",
        ],
    );
    assert_eq!(manifest_of(&data)["deploy_every_secs"], 3600);
    // The deploys are in the change log, and their pods in the metrics.
    let changes = std::fs::read_to_string(data.join("logs/changes.ecs.json")).unwrap();
    let deploys: Vec<(i64, String)> = changes
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|c| c["message"].as_str().unwrap().starts_with("rolling deploy"))
        .map(|c| {
            let t = models::Timestamp::parse_rfc3339(c["@timestamp"].as_str().unwrap()).unwrap();
            (
                t.as_millis(),
                c["service"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(deploys.len(), 12, "{changes}");
    let pod = regex::Regex::new(r#"container="checkout-[0-9a-f]{10}-[b-z2-9]{5}""#).unwrap();
    assert!(pod.is_match(&scrapes(&data)), "no new checkout pods");
    // Incidents rooted at a service in the 15 minutes after its deploy.
    let paged = |out: &Path| -> Vec<Value> {
        replay_day(&data, out);
        jsonl(out, "incidents.jsonl")
            .into_iter()
            .filter(|i| {
                let start = models::Timestamp::parse_rfc3339(i["start"].as_str().unwrap())
                    .unwrap()
                    .as_millis();
                let svc = i["root_causes"][0]["target"]["service"].as_str();
                deploys.iter().any(|(t, s)| {
                    Some(s.as_str()) == svc && (0..=15 * 60_000).contains(&(start - t))
                })
            })
            .collect()
    };
    let p = paged(&dir.path().join("out"));
    assert!(p.is_empty(), "deploys paged: {p:#?}");
    // Without the change events (many estates ship none) the new pods
    // alone say that the service started.
    let kept: String = changes
        .lines()
        .filter(|l| !l.contains("rolling deploy"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(data.join("logs/changes.ecs.json"), kept).unwrap();
    let p = paged(&dir.path().join("out-no-changes"));
    assert!(p.is_empty(), "deploys paged without change events: {p:#?}");
}

/// A deploy that makes checkout slower and fails nothing
/// (`--scenario slow_release`): its p99 rises with the deploy and stays,
/// while the baseline learns the new level within minutes. Held as a
/// start-up at first, it is paged once the deploy is ten minutes old, with
/// the deploy ranked first (before, the hold was the end of it: missed).
#[test]
fn a_slower_release_is_paged_after_its_warm_up() {
    let (_dir, data, out) = generated_day(&[
        "--seed",
        "161",
        "--duration",
        "12h",
        "--scenario",
        "slow_release",
    ]);
    let fault = labels_of(&data)["faults"][0].clone();
    assert_eq!(fault["class"], "bad_change", "{fault}");
    let deployed = models::Timestamp::parse_rfc3339(fault["start"].as_str().unwrap())
        .unwrap()
        .as_millis();
    replay_day(&data, &out);
    let incidents = jsonl(&out, "incidents.jsonl");
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let i = &incidents[0];
    assert_eq!(i["root_causes"][0]["class"], "bad_change", "{i:#}");
    assert_eq!(i["root_causes"][0]["target"]["service"], "checkout");
    let opened = models::Timestamp::parse_rfc3339(i["start"].as_str().unwrap())
        .unwrap()
        .as_millis();
    let after = (opened - deployed) / 1000;
    assert!(
        (540..=900).contains(&after),
        "opened {after} s after the deploy"
    );
}

/// Java services that behave like JVMs on a fault-free day, with a
/// rolling deploy every three hours: an old generation that climbs for
/// most of an hour between collections, every cycle to about the same
/// top, and after every start a working set that climbs for most of an
/// hour as the new JVM touches its heap. Neither is a leak: no heap or
/// working set is reported as leaking, and nothing is restarted (before,
/// each cycle's top was a leak and a restart plan, 17 a day per JVM, and
/// then each Java start was one).
#[test]
fn a_jvms_heap_sawtooth_is_not_a_leak() {
    let (_dir, data, out) = generated_day(&[
        "--seed",
        "131",
        "--duration",
        "12h",
        "--scenario",
        "quiet",
        "--services",
        "gateway,checkout,inventory",
        "--jvm",
        "--deploy-every",
        "3h",
    ]);
    let old_gen = scrapes(&data)
        .lines()
        .filter(|l| l.starts_with("jvm_memory_used_bytes{") && l.contains("Old Gen"))
        .count();
    assert!(old_gen > 1000, "{old_gen} old generation samples");
    replay_day(&data, &out);
    let leaks: Vec<Value> = jsonl(&out, "anomalies.jsonl")
        .into_iter()
        .filter(|a| a["kind"] == "resource_leak")
        .collect();
    assert!(leaks.is_empty(), "leaks: {leaks:#?}");
    let restarts: Vec<Value> = jsonl(&out, "actions.jsonl")
        .into_iter()
        .filter(|a| a["kind"]["type"] == "restart")
        .collect();
    assert!(restarts.is_empty(), "restart plans: {restarts:#?}");
}
