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
    assert!(generate(&a, 11, &[]).status.success());
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

    let mut logs: Vec<Value> = Vec::new();
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
        match f["class"].as_str().unwrap() {
            "dependency_failure" | "bad_change" | "fd_leak" | "thread_leak" => {
                let svc = f["root_service"].as_str().unwrap();
                let (inside, outside) = error_density(&logs, svc, (start, end), &windows);
                assert!(
                    inside > 5.0 * outside.max(0.01),
                    "{}: {inside} vs {outside} errors/min",
                    f["id"]
                );
            }
            "memory_leak" => {
                let c = target["container"].as_str().unwrap();
                let host = target["host"].as_str().unwrap();
                let mut inside_max: f64 = 0.0;
                let mut outside_max: f64 = 0.0;
                for line in metric_text(host).lines() {
                    if line.starts_with("container_memory_working_set_bytes")
                        && line.contains(&format!("container=\"{c}\""))
                    {
                        let mut parts = line.rsplit(' ');
                        let ts: i64 = parts.next().unwrap().parse().unwrap();
                        let v: f64 = parts.next().unwrap().parse().unwrap();
                        if (start..end).contains(&ts) {
                            inside_max = inside_max.max(v);
                        } else {
                            outside_max = outside_max.max(v);
                        }
                    }
                }
                assert!(
                    inside_max > 1.5 * outside_max,
                    "memory grows in the window: {inside_max} vs {outside_max}"
                );
            }
            _ => {}
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
