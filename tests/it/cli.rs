//! The CLI as a user meets it: helpful errors, nothing half-written.

use std::path::Path;
use std::process::Command;

pub fn remedy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_remedy"))
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `remedy replay --out OUT_DIR INPUT`, which must succeed.
fn replay_ok(out_dir: &Path, input: &Path) -> std::process::Output {
    let out = remedy()
        .args(["replay", "--out"])
        .arg(out_dir)
        .arg(input)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    out
}

/// Ten minutes of one logfmt line a second from one service, in order.
pub fn ticks() -> Vec<String> {
    (0..600)
        .map(|i| {
            format!(
                "ts=2026-01-05T10:{:02}:{:02}Z level=info service=app msg=tick",
                i / 60,
                i % 60
            )
        })
        .collect()
}

/// The `summary.json` a replay wrote into `out_dir`.
fn summary_of(out_dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn replay_of_a_missing_file_names_it_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = remedy()
        .args(["replay", "--out"])
        .arg(&out_dir)
        .arg(dir.path().join("no-such-file.log"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(err.contains("no-such-file.log"), "{err}");
    assert!(
        !out_dir.exists(),
        "nothing may be written for a bad invocation"
    );
}

#[test]
fn replay_with_an_unknown_format_lists_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    std::fs::write(&log, "hello\n").unwrap();
    let out_dir = dir.path().join("out");
    let out = remedy()
        .args(["replay", "--format", "yaml-ish", "--out"])
        .arg(&out_dir)
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(err.contains("yaml-ish") && err.contains("logfmt"), "{err}");
    assert!(!out_dir.exists());
}

/// The memory caps hold across inputs, not per file: 120,000 distinct
/// series spread over 300 scrape files (400 each, far under any per-file
/// cap) are all read and parsed, the analysis tracks its cap of 100,000
/// and counts the rest, and the report says which caps turned what away.
#[test]
fn caps_hold_across_files_and_say_what_they_turned_away() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    for f in 0..300 {
        let mut text = String::from("# TYPE queue_depth gauge\n");
        for s in 0..400 {
            text.push_str(&format!(
                "queue_depth{{instance=\"node{f:03}\",queue=\"q{s:03}\"}} {s} 1767607200000\n"
            ));
        }
        std::fs::write(input.join(format!("scrape-{f:03}.prom")), text).unwrap();
    }
    let out_dir = dir.path().join("out");
    let out = replay_ok(&out_dir, &input);
    let s = summary_of(&out_dir);
    // Each file's `# TYPE` line is a record too.
    assert_eq!(s["ingest"]["read"], 120_300, "{}", s["ingest"]);
    assert_eq!(s["ingest"]["parsed"], 120_300, "{}", s["ingest"]);
    assert_eq!(s["metric_series"], 100_000);
    assert_eq!(s["metric_series_over_cap"], 20_000);
    assert!(
        s["signals"].as_u64().unwrap() <= 100_000,
        "{}",
        s["signals"]
    );
    assert!(
        s["signals_over_cap"].as_u64().unwrap() >= 20_000,
        "{}",
        s["signals_over_cap"]
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("caps: 20000 series over the series cap"),
        "{report}"
    );
}

/// Thousands of input files under a descriptor limit of 256, soft and
/// hard: the reader pool holds only a few open at once, reads every
/// record, and finds what one file of the same records finds. A limit too
/// low even for the pool is named, with what to raise it to, before
/// anything is read.
#[test]
fn many_files_under_a_low_descriptor_limit() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    // 100 minutes of one record a second, an error burst in minutes 80-82,
    // split in time order over 3,000 files (rotated logs) and whole in one.
    let lines: Vec<String> = (0..6000)
        .map(|i| {
            let level = if (4800..4980).contains(&i) && i % 3 != 0 {
                "error"
            } else {
                "info"
            };
            format!(
                "ts=2026-01-05T{:02}:{:02}:{:02}Z level={level} service=billing msg=\"charge {i} done\"\n",
                i / 3600,
                i / 60 % 60,
                i % 60
            )
        })
        .collect();
    for (f, chunk) in lines.chunks(2).enumerate() {
        std::fs::write(input.join(format!("f{f:04}.log")), chunk.concat()).unwrap();
    }
    let whole = dir.path().join("whole.log");
    std::fs::write(&whole, lines.concat()).unwrap();
    let bin = env!("CARGO_BIN_EXE_remedy");
    let under = |limit: u32, out: &str| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n {limit} && exec \"$0\" replay --out \"$1\" \"$2\""
            ))
            .arg(bin)
            .arg(dir.path().join(out))
            .arg(&input)
            .output()
            .unwrap()
    };
    let many = under(256, "many");
    assert!(many.status.success(), "{}", stderr_of(&many));
    let s = summary_of(&dir.path().join("many"));
    assert_eq!(s["ingest"]["read"], 6000, "{s}");
    assert_eq!(s["ingest"]["parsed"], 6000, "{s}");
    assert_eq!(s["origins"].as_array().unwrap().len(), 3000);
    replay_ok(&dir.path().join("one"), &whole);
    let incidents =
        |out: &str| std::fs::read_to_string(dir.path().join(out).join("incidents.jsonl")).unwrap();
    assert!(!incidents("one").is_empty(), "the burst is an incident");
    assert_eq!(incidents("many"), incidents("one"));
    // Not even room for the outputs and one file: a clear error, nothing
    // half-read.
    let low = under(100, "low");
    assert_eq!(low.status.code(), Some(2));
    let err = stderr_of(&low);
    assert!(err.contains("ulimit -n 129"), "{err}");
    assert!(!dir.path().join("low").join("summary.json").exists());
}

/// A service named by a field the default mapping does not know is
/// attributed through `[engine.fields]` (each list given replaces the
/// default one), so its error burst becomes an incident at that service
/// instead of records of no service; a misspelt key is named.
#[test]
fn engine_fields_name_the_key_that_holds_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.json");
    let lines: Vec<String> = (0..240)
        .map(|i| {
            serde_json::json!({
                "ts": format!("2026-01-05T00:{:02}:{:02}Z", i / 60, i % 60),
                "level": if i >= 180 { "error" } else { "info" },
                "msg": format!("request {i} done"),
                "app_name": "billing",
            })
            .to_string()
        })
        .collect();
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let cfg = dir.path().join("remedy.toml");
    let incidents_at = |config: Option<&str>, out: &str| -> Vec<String> {
        let out_dir = dir.path().join(out);
        let mut cmd = remedy();
        cmd.arg("replay");
        if let Some(text) = config {
            std::fs::write(&cfg, text).unwrap();
            cmd.arg("--config").arg(&cfg);
        }
        let run = cmd.arg("--out").arg(&out_dir).arg(&log).output().unwrap();
        assert!(run.status.success(), "{}", stderr_of(&run));
        std::fs::read_to_string(out_dir.join("incidents.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["root_causes"][0]["target"]["service"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    // By default the records name no service: their file does, as a
    // plain application log's (`app.json` -> `app`).
    assert_eq!(incidents_at(None, "default"), vec!["app".to_string()]);
    assert_eq!(
        incidents_at(
            Some("[engine.fields]\nservice = [\"app_name\"]\n"),
            "mapped"
        ),
        vec!["billing".to_string()]
    );
    std::fs::write(&cfg, "[engine.fields]\nservce = [\"app_name\"]\n").unwrap();
    let out = remedy()
        .arg("replay")
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(dir.path().join("typo"))
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(err.contains("servce") && err.contains("service"), "{err}");
}

/// `replay --config` reads the `[engine]` table of a TOML file (the file
/// `remedy run` reads, its streaming keys and other tables accepted), a
/// flag overrides it, and a typo in the table is named.
#[test]
fn replay_reads_the_engine_table_of_a_config_file_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    let long = "x".repeat(200);
    std::fs::write(
        &log,
        format!(
            "ts=2026-01-05T00:00:00Z level=info msg=short\n\
             ts=2026-01-05T00:00:01Z level=info msg={long}\n"
        ),
    )
    .unwrap();
    let cfg = dir.path().join("remedy.toml");
    std::fs::write(
        &cfg,
        "[kafka]\nbrokers = \"127.0.0.1:9092\"\n[engine]\nmax_line_bytes = 100\ncheckpoint_interval_secs = 5\n",
    )
    .unwrap();
    let dead_letters = |extra: &[&str]| -> u64 {
        let out_dir = dir.path().join("out");
        let out = remedy()
            .arg("replay")
            .arg("--config")
            .arg(&cfg)
            .args(extra)
            .arg("--out")
            .arg(&out_dir)
            .arg(&log)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        let s: serde_json::Value = summary_of(&out_dir);
        s["ingest"]["by_reason"]["line_too_long"]
            .as_u64()
            .unwrap_or(0)
    };
    assert_eq!(
        dead_letters(&[]),
        1,
        "the file's cap dead-letters the long line"
    );
    assert_eq!(
        dead_letters(&["--max-line-bytes", "1000"]),
        0,
        "the flag wins"
    );

    std::fs::write(&cfg, "[engine]\nmax_line_byte = 100\n").unwrap();
    let out = remedy()
        .arg("replay")
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(dir.path().join("out2"))
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains("engine.max_line_byte") && err.contains("max_line_bytes"),
        "{err}"
    );
}

#[test]
fn replay_accounts_for_every_record_and_keeps_the_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.logfmt");
    std::fs::write(
        &log,
        concat!(
            "ts=2026-01-05T10:00:00Z level=info service=checkout msg=\"order placed\" duration=0.2s\n",
            "ts=2026-01-05T10:00:01Z level=error service=checkout event=database_timeout duration=1.2s\n",
            "\n",
            "ts=2026-01-05T10:00:02Z level=info service=checkout msg=\"unterminated\n",
            "ts=2026-01-05T10:00:03Z level=warn service=payments msg=\"slow\" latency_ms=900\n",
        ),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = remedy()
        .args(["replay", "--format", "logfmt", "--out"])
        .arg(&out_dir)
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let summary: serde_json::Value = summary_of(&out_dir);
    let ingest = &summary["ingest"];
    assert_eq!(ingest["read"], 4);
    assert_eq!(ingest["parsed"], 3);
    assert_eq!(ingest["dead_lettered"], 1);
    assert_eq!(ingest["blank"], 1);
    assert_eq!(summary["logs_by_service"]["checkout"]["errors"], 1);
    let dead = std::fs::read_to_string(out_dir.join("dead-letter.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["position"], 4);
    assert_eq!(lines[0]["reason"], "invalid_logfmt");
    assert!(lines[0]["raw"].as_str().unwrap().contains("unterminated"));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("dead-lettered 1"), "{report}");
}

pub fn assert_same_bytes(a: &Path, b: &Path) {
    let x = std::fs::read(a).unwrap();
    let y = std::fs::read(b).unwrap();
    assert!(x == y, "{} and {} differ", a.display(), b.display());
}

/// `remedy replay` of `datasets/<name>` in two processes: their output
/// directories (under the returned temporary directory).
fn replay_twice(name: &str) -> (tempfile::TempDir, [std::path::PathBuf; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("datasets")
        .join(name);
    let outs = [0, 1].map(|i| {
        let out_dir = dir.path().join(format!("out{i}"));
        let out = remedy()
            .arg("replay")
            .arg("--out")
            .arg(&out_dir)
            .arg(&root)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        out_dir
    });
    (dir, outs)
}

#[test]
fn replay_is_deterministic() {
    let (_dir, outs) = replay_twice("demo");
    assert_same_bytes(&outs[0].join("summary.json"), &outs[1].join("summary.json"));
    assert_same_bytes(
        &outs[0].join("dead-letter.jsonl"),
        &outs[1].join("dead-letter.jsonl"),
    );
}

/// Real logs (`datasets/nezha-slice`: fifteen minutes of TrainTicket as
/// Fluent Bit ships them, see datasets/README.md): ts-route-service throws
/// at 10:56:45 and logs no error of its own; its callers' errors name
/// nothing. The requests that used to write route's line stop writing it,
/// and that is where the incident opens and what it names first. Twice,
/// in two processes, with the same bytes: the invariants' hash maps must
/// not leak their random order into the output.
#[test]
fn a_real_callee_exception_is_found_where_its_statement_went_missing() {
    let (_dir, outs) = replay_twice("nezha-slice");
    assert_same_bytes(
        &outs[0].join("incidents.jsonl"),
        &outs[1].join("incidents.jsonl"),
    );
    let incidents: Vec<serde_json::Value> =
        std::fs::read_to_string(outs[0].join("incidents.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let fault = incidents
        .iter()
        .find(|i| {
            let start = i["start"].as_str().unwrap();
            ("2023-01-29T10:56:30"..="2023-01-29T10:58:00").contains(&&start[..19])
        })
        .unwrap_or_else(|| panic!("no incident at route's fault: {incidents:#?}"));
    let first = &fault["root_causes"][0];
    assert_eq!(first["target"]["service"], "ts-route-service", "{fault:#}");
    let evidence = first["evidence"].to_string();
    assert!(evidence.contains("broken_invariant"), "{evidence}");
    assert!(evidence.contains("went missing from"), "{evidence}");
    // Nothing names route before its fault.
    assert!(
        incidents
            .iter()
            .all(|i| i["start"].as_str().unwrap() >= "2023-01-29T10:56:30"
                || !i["root_causes"].to_string().contains("ts-route-service")),
        "{incidents:#?}"
    );
}

#[test]
fn replay_reads_standard_input() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let mut child = remedy()
        .args(["replay", "--out"])
        .arg(&out_dir)
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"ts=2026-01-05T10:00:00Z level=error service=api msg=boom\nnot a record at all\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let summary: serde_json::Value = summary_of(&out_dir);
    assert_eq!(summary["ingest"]["parsed"], 1);
    assert_eq!(summary["ingest"]["dead_lettered"], 1);
    assert_eq!(summary["origins"][0]["origin"], "-");
    assert!(String::from_utf8_lossy(&out.stdout).contains("by format: logfmt 1"));
}

#[test]
fn replay_of_the_demo_finds_its_faults_and_plans_safely() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/demo");
    let out_dir = dir.path().join("out");
    let out = remedy()
        .args(["replay", "--out"])
        .arg(&out_dir)
        .arg("--labels")
        .arg(root.join("labels.json"))
        .arg(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let summary: serde_json::Value = summary_of(&out_dir);
    let e = &summary["evaluation"];
    for key in [
        "incident_precision",
        "incident_recall",
        "false_alarm_rate",
        "mttd_seconds",
        "root_cause_top1",
        "root_cause_top3",
        "action_accuracy",
        "actions_outside_faults",
    ] {
        assert!(e.get(key).is_some(), "summary.json evaluation lacks {key}");
    }
    assert_eq!(e["incident_recall"], 1.0, "{e}");
    assert!(e["incident_precision"].as_f64().unwrap() >= 0.9, "{e}");
    assert!(e["root_cause_top1"].as_f64().unwrap() >= 0.85, "{e}");
    assert_eq!(e["actions_outside_faults"], 0);
    for f in [
        "anomalies.jsonl",
        "incidents.jsonl",
        "actions.jsonl",
        "audit.jsonl",
    ] {
        let text = std::fs::read_to_string(out_dir.join(f)).unwrap();
        assert!(text.lines().count() > 0, "{f} is empty");
        for l in text.lines() {
            serde_json::from_str::<serde_json::Value>(l).unwrap();
        }
    }
    // Every action is audited, and the default policy never executes.
    let actions = std::fs::read_to_string(out_dir.join("actions.jsonl")).unwrap();
    let audit = std::fs::read_to_string(out_dir.join("audit.jsonl")).unwrap();
    // One planning decision per action, plus one verification per action
    // that was not skipped (the demo runs past every deadline).
    let decisions = |d: &str| {
        audit
            .lines()
            .filter(|l| l.contains(&format!("\"decision\":\"{d}")))
            .count()
    };
    let not_skipped = actions
        .lines()
        .filter(|l| !l.contains("\"state\":\"skipped\""))
        .count();
    assert_eq!(
        decisions("planned") + decisions("skipped"),
        actions.lines().count()
    );
    assert_eq!(
        decisions("verified") + decisions("not_verified"),
        not_skipped
    );
    assert!(actions
        .lines()
        .filter(|l| !l.contains("\"state\":\"skipped\""))
        .all(|l| l.contains("\"verified\":")));
    assert!(actions.lines().all(|l| l.contains("\"dry_run\":true")));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("memory_leak") && report.contains("evaluation against 8 labelled faults"),
        "{report}"
    );
}

/// `remedy offload-status` prints what the journal of a real offload says.
#[tokio::test]
async fn offload_status_reads_the_journal_of_a_real_offload() {
    use reclaim::exec::{ObjectStoreConfig, OffloadExecutor};
    let base = tempfile::tempdir().unwrap();
    let hot = base.path().join("hot");
    std::fs::create_dir_all(&hot).unwrap();
    for i in 0..3 {
        std::fs::write(hot.join(format!("seg-{i}.log")), vec![b'x'; 1000 + i]).unwrap();
    }
    let cfg = ObjectStoreConfig {
        roots: vec![hot.clone()],
        destination: format!("file://{}", base.path().join("cold").display()),
        options: Default::default(),
        journal: base.path().join("offload.journal"),
    };
    OffloadExecutor::from_config(&cfg)
        .unwrap()
        .run("off-7", None, None)
        .await
        .unwrap();

    let out = remedy()
        .args(["offload-status", "--journal"])
        .arg(&cfg.journal)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let row = text.lines().find(|l| l.starts_with("off-7")).expect(&text);
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[1..5], ["complete", "3", "3", "3003"], "{row}");

    let out = remedy()
        .args(["offload-status", "--journal"])
        .arg(base.path().join("missing.journal"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.journal"));
}

/// A table of samples (CSV, rows out of order) replays like lines would,
/// and `--tables` writes what was found as Parquet a notebook can read.
#[cfg(feature = "tables")]
#[test]
fn replay_reads_a_csv_table_and_writes_parquet_tables() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    // Twelve hours of 15-second samples with a slow cycle, and ten minutes
    // 400 above it at hour 10, written newest first: the table is sorted by
    // time on read.
    let start = 1_767_225_600i64; // 2026-01-01T00:00:00Z
    let mut rows = Vec::new();
    for i in 0..2880i64 {
        let t = start + i * 15;
        let mut v =
            100.0 + 20.0 * (i as f64 / 2880.0 * std::f64::consts::TAU).sin() + (i % 7) as f64;
        if (2400..2440).contains(&i) {
            v += 400.0;
        }
        rows.push(format!("{t},checkout,{v:.2}"));
    }
    rows.reverse();
    std::fs::write(
        input.join("requests.csv"),
        format!("timestamp,service,value\n{}\n", rows.join("\n")),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = remedy()
        .args(["replay", "--tables", "parquet", "--out"])
        .arg(&out_dir)
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let summary: serde_json::Value = summary_of(&out_dir);
    assert_eq!(summary["ingest"]["parsed"], 2880, "{summary}");
    assert_eq!(summary["ingest"]["dead_lettered"], 0, "{summary}");

    let read = |name: &str| {
        ParquetReader::new(std::fs::File::open(out_dir.join(name)).unwrap())
            .finish()
            .unwrap()
    };
    let lines = |name: &str| {
        std::fs::read_to_string(out_dir.join(name))
            .unwrap()
            .lines()
            .count()
    };
    let anomalies = read("anomalies.parquet");
    assert_eq!(anomalies.height(), lines("anomalies.jsonl"));
    assert_eq!(read("incidents.parquet").height(), lines("incidents.jsonl"));
    assert_eq!(read("actions.parquet").height(), lines("actions.jsonl"));
    // The shift is found, on the series named after the file, at its time.
    let spike_ms = (start + 2400 * 15) * 1000;
    let found = anomalies
        .lazy()
        .filter(col("signal").eq(lit("requests{service=\"checkout\"}")))
        .select([col("timestamp").cast(DataType::Int64), col("service")])
        .collect()
        .unwrap();
    let times: Vec<i64> = found
        .column("timestamp")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert!(
        times
            .iter()
            .any(|&t| (0..=60_000).contains(&(t - spike_ms))),
        "no anomaly near the shift at {spike_ms}: {times:?}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("anomalies.parquet"));
}

/// Three JSON log lines, as a shipper writes them.
fn json_lines(service: &str) -> String {
    (0..3)
        .map(|i| {
            format!(
                "{{\"timestamp\":\"2026-01-05T10:00:0{i}Z\",\"level\":\"info\",\"message\":\"tick {i}\",\"service\":\"{service}\"}}\n"
            )
        })
        .collect()
}

/// A named pipe (FIFO) and `/dev/stdin` are read once, from their first
/// byte: replay used to open a path twice (once to look for the gzip
/// magic), which lost a pipe's first two bytes and waited forever on a
/// FIFO whose writer had gone.
#[test]
fn replay_reads_a_fifo_and_dev_stdin_from_their_first_byte() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("app.log");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(&fifo, json_lines("fifo")).unwrap())
    };
    let out_dir = dir.path().join("out");
    let mut child = remedy()
        .args(["replay", "--out"])
        .arg(&out_dir)
        .arg(&fifo)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a regression that opens the FIFO twice would wait forever.
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("replay of a FIFO did not finish within a minute");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    writer.join().unwrap();
    assert!(status.success());
    let summary: serde_json::Value = summary_of(&out_dir);
    assert_eq!(summary["ingest"]["parsed"], 3, "{}", summary["ingest"]);
    assert_eq!(
        summary["ingest"]["dead_lettered"], 0,
        "{}",
        summary["ingest"]
    );

    let out_dir = dir.path().join("out-stdin");
    let mut child = remedy()
        .args(["replay", "--out"])
        .arg(&out_dir)
        .arg("/dev/stdin")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(json_lines("stdin").as_bytes()).unwrap();
    }
    assert!(child.wait().unwrap().success());
    let summary: serde_json::Value = summary_of(&out_dir);
    assert_eq!(summary["ingest"]["parsed"], 3, "{}", summary["ingest"]);
    assert_eq!(summary["logs_by_service"]["stdin"]["logs"], 3);
}

/// A truncated `.gz` beside good files: what it held before the damage is
/// read, the rest is one dead letter naming the error (`unreadable`), and
/// the run goes on over the other files (it used to stop with exit 2 and no
/// output). Alone, the same file is read on the engine's thread: same answer.
#[test]
fn a_damaged_gzip_is_dead_lettered_and_the_run_goes_on() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("a.log"), json_lines("good")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..2000 {
        writeln!(
            gz,
            "{{\"timestamp\":\"2026-01-05T10:{:02}:{:02}Z\",\"level\":\"info\",\"message\":\"line {i} of a long file\",\"service\":\"damaged\"}}",
            i / 60 % 60,
            i % 60
        )
        .unwrap();
    }
    let bytes = gz.finish().unwrap();
    std::fs::write(data.join("b.log.gz"), &bytes[..bytes.len() / 2]).unwrap();

    for (name, input) in [("dir", data.clone()), ("alone", data.join("b.log.gz"))] {
        let out_dir = dir.path().join(format!("out-{name}"));
        let out = remedy()
            .args(["replay", "--out"])
            .arg(&out_dir)
            .arg(&input)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", stderr_of(&out));
        let summary: serde_json::Value = summary_of(&out_dir);
        let ingest = &summary["ingest"];
        assert_eq!(ingest["by_reason"]["unreadable"], 1, "{name}: {ingest}");
        assert_eq!(
            ingest["read"].as_u64(),
            Some(ingest["parsed"].as_u64().unwrap() + ingest["dead_lettered"].as_u64().unwrap()),
            "{name}: {ingest}"
        );
        let damaged = summary["logs_by_service"]["damaged"]["logs"]
            .as_u64()
            .unwrap();
        assert!(
            damaged > 0 && damaged < 2000,
            "{name}: {damaged} lines before the damage"
        );
        if name == "dir" {
            assert_eq!(summary["logs_by_service"]["good"]["logs"], 3);
        }
        let dead = std::fs::read_to_string(out_dir.join("dead-letter.jsonl")).unwrap();
        let letter: serde_json::Value = serde_json::from_str(dead.lines().last().unwrap()).unwrap();
        assert_eq!(letter["reason"], "unreadable");
        assert!(
            letter["origin"].as_str().unwrap().ends_with("b.log.gz"),
            "{letter}"
        );
        assert_eq!(letter["position"].as_u64(), Some(damaged + 1), "{letter}");
    }
}

/// `--format GLOB=FORMAT` gives matching files their own format (the rest
/// are sniffed, or take the one bare `--format`), and `--exclude GLOB`
/// leaves out what matches, files or whole directories, relative to the
/// directory named on the command line.
#[test]
fn formats_and_exclusions_by_glob() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for sub in ["app", "forced", "debug/deep"] {
        std::fs::create_dir_all(data.join(sub)).unwrap();
    }
    let logfmt = "ts=2026-01-05T10:00:00Z level=info service=app msg=ok\n\
                  ts=2026-01-05T10:00:01Z level=error service=app msg=boom\n";
    std::fs::write(data.join("app/a.log"), logfmt).unwrap();
    std::fs::write(data.join("forced/b.log"), logfmt).unwrap();
    std::fs::write(data.join("debug/deep/c.log"), logfmt).unwrap();
    std::fs::write(data.join("notes.txt"), "not a log\n").unwrap();
    // A dataset's notice and topology at its top: left out, and said.
    std::fs::write(data.join("LICENSE"), "MIT\n").unwrap();
    std::fs::write(data.join("topology.json"), "{}\n").unwrap();

    let out_dir = dir.path().join("out");
    let out = remedy()
        .args(["replay", "--format", "forced/*.log=json"])
        .args(["--exclude", "debug", "--exclude", "*.txt", "--out"])
        .arg(&out_dir)
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    let said = report
        .lines()
        .find(|l| l.contains("not read, a dataset's metadata"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        said.contains("LICENSE") && said.contains("topology.json") && !said.contains("notes"),
        "{said}"
    );
    let summary: serde_json::Value = summary_of(&out_dir);
    let formats: Vec<(String, String)> = summary["origins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let origin = o["origin"].as_str().unwrap();
            let short = origin
                .strip_prefix(data.to_str().unwrap())
                .unwrap_or(origin);
            (short.to_string(), o["format"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(
        formats,
        [
            ("/app/a.log".to_string(), "logfmt".to_string()),
            ("/forced/b.log".to_string(), "json".to_string()),
        ],
        "{summary}"
    );
    // The forced file's logfmt lines are not JSON: kept, with the reason,
    // and the report says the file gave nothing and how to go on.
    assert_eq!(summary["ingest"]["by_reason"]["invalid_json"], 2);
    assert_eq!(summary["ingest"]["parsed"], 2);
    let said = report
        .lines()
        .find(|l| l.contains("nothing read"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        said.contains("forced/b.log") && said.contains("not json") && said.contains("--exclude"),
        "{said}"
    );

    // Two formats for every input, and a glob that is not one, are named.
    for (args, says) in [
        (
            vec!["--format", "json", "--format", "logfmt"],
            "given twice",
        ),
        (vec!["--exclude", "a[b"], "a[b"),
    ] {
        let out = remedy()
            .arg("replay")
            .args(&args)
            .arg("--out")
            .arg(dir.path().join("out-bad"))
            .arg(&data)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr_of(&out).contains(says), "{}", stderr_of(&out));
        assert!(!dir.path().join("out-bad").exists());
    }
}

/// Records far out of time order are not lost silently: the events whose
/// window had closed are counted in the summary and the report (the same
/// lines in order give none).
#[test]
fn late_events_are_counted_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let lines = ticks();
    let sorted = dir.path().join("sorted.log");
    std::fs::write(&sorted, lines.join("\n") + "\n").unwrap();
    // The last five minutes first, then the rest: the rest is late.
    let mut shuffled = lines[300..].to_vec();
    shuffled.extend_from_slice(&lines[..300]);
    let late = dir.path().join("shuffled.log");
    std::fs::write(&late, shuffled.join("\n") + "\n").unwrap();
    for (input, expect_late) in [(&sorted, false), (&late, true)] {
        let out_dir = dir.path().join(format!("out-{expect_late}"));
        let out = replay_ok(&out_dir, input);
        let summary: serde_json::Value = summary_of(&out_dir);
        let n = summary["late_events"].as_u64().unwrap();
        // One service's records: its record count, error and warning
        // shares are judged (the denominator of a false-alarm rate).
        assert!(summary["signals"].as_u64().unwrap() >= 1, "{summary}");
        let report = String::from_utf8_lossy(&out.stdout);
        if expect_late {
            assert!((250..=300).contains(&n), "{n} late of the 300 moved");
            assert!(report.contains(&format!("late: {n} events")), "{report}");
            // One input, out of order within itself: that is the reason.
            assert_eq!(
                summary["late_by_reason"],
                serde_json::json!({"out_of_order": n})
            );
            assert!(
                report.contains(&format!("{n} out of time order within their input")),
                "{report}"
            );
        } else {
            assert_eq!(n, 0);
            assert!(!report.contains("late:"), "{report}");
        }
    }
}

/// Issue #18: a catalina.out (Tomcat's and Spring Boot's layouts, stack
/// traces under ERROR and SEVERE lines; see tests/data/java/README.md)
/// was dead-lettered almost whole with `--format auto`. Now every line is
/// read, each trace joins the record that logged it, and an exception
/// counts as one error.
#[test]
fn a_catalina_out_replays_with_its_stack_traces_joined() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let log = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/java/catalina.out");
    replay_ok(&out_dir, &log);
    let summary: serde_json::Value = summary_of(&out_dir);
    let ingest = &summary["ingest"];
    assert_eq!(ingest["read"], 65);
    assert_eq!(ingest["dead_lettered"], 0, "{ingest}");
    assert_eq!(ingest["joined"], 37);
    assert_eq!(ingest["by_format"]["plain"], 65);
    assert_eq!(summary["logs"], 28);
    assert_eq!(summary["logs_by_level"]["error"], 4);
    // The layout names no service: the file does.
    assert_eq!(summary["logs_by_service"]["catalina"]["errors"], 4);
    assert!(
        summary["logs_by_service"].get("unknown").is_none(),
        "{summary}"
    );
    let dead = std::fs::read_to_string(out_dir.join("dead-letter.jsonl")).unwrap();
    assert!(dead.is_empty(), "{dead}");
}

/// A node's kubelet log directory, as containerd writes it
/// (`/var/log/pods/<namespace>_<pod>_<uid>/<container>/0.log`, CRI lines):
/// a Go service logging JSON and a Java service logging logback lines
/// with a stack trace, each line its own CRI record. Before, every line
/// was an `unknown_format` dead letter; now each is read with its level,
/// names its pod's workload (the containers are all called `server`), and
/// the trace joins the line that logged it.
#[test]
fn a_kubelet_log_directory_replays_by_workload() {
    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("pods");
    let write = |pod: &str, lines: &[String]| {
        let d = pods.join(format!(
            "shop_{pod}_0f1e2d3c-aaaa-bbbb-cccc-1234567890ab/server"
        ));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("0.log"), lines.join("\n") + "\n").unwrap();
    };
    let t = |s: u32| format!("2026-01-05T10:00:{s:02}.123456789Z");
    write(
        "frontend-7d9f8b8c9-x2x4k",
        &(0..20)
            .map(|s| {
                let (sev, msg) = if s % 5 == 0 {
                    ("error", "failed to retrieve ads")
                } else {
                    ("info", "request complete")
                };
                format!(
                    r#"{} stdout F {{"http.req.path":"/","message":"{msg}","severity":"{sev}","timestamp":"{}"}}"#,
                    t(s),
                    t(s)
                )
            })
            .collect::<Vec<_>>(),
    );
    write(
        "orders-5f55b6cf68-77cfw",
        &[
            format!(
                "{} stdout F 10:00:01.100 INFO  c.e.OrderService - order placed",
                t(1)
            ),
            format!(
                "{} stderr F 10:00:02.200 ERROR c.e.OrderService - charge failed",
                t(2)
            ),
            format!(
                "{} stderr F java.net.SocketTimeoutException: Read timed out",
                t(2)
            ),
            format!(
                "{} stderr F \tat java.net.SocketInputStream.read(SocketInputStream.java:150)",
                t(2)
            ),
            format!(
                "{} stderr F \tat c.e.PaymentClient.charge(PaymentClient.java:42)",
                t(2)
            ),
            format!(
                "{} stdout F 10:00:03.300 INFO  c.e.OrderService - order placed",
                t(3)
            ),
        ],
    );
    let out_dir = dir.path().join("out");
    replay_ok(&out_dir, &pods);
    let summary = summary_of(&out_dir);
    let ingest = &summary["ingest"];
    assert_eq!(ingest["read"], 26, "{ingest}");
    assert_eq!(ingest["dead_lettered"], 0, "{ingest}");
    assert_eq!(ingest["by_format"]["cri"], 26, "{ingest}");
    assert_eq!(ingest["joined"], 3, "{ingest}");
    let by_service = &summary["logs_by_service"];
    assert_eq!(by_service["frontend"]["errors"], 4, "{summary}");
    assert_eq!(by_service["orders"]["errors"], 1, "{summary}");
    assert!(by_service.get("server").is_none(), "{summary}");
}

/// The same records, shipped another way, give the same findings. The
/// demo's payments and queue logs (logfmt files) are re-shipped the ways a
/// Kubernetes estate ships a service that logs to stdout: as Fluent Bit
/// records whose `log` holds each line as the application printed it (the
/// logfmt line itself on even lines, the same pairs as a JSON record on
/// odd ones), and as the kubelet's own CRI files under `pods/`. Before,
/// the first had every line a template of its own and the second was
/// dead-lettered whole: the demo's incidents changed.
#[test]
fn records_inside_shipped_lines_give_the_demos_findings() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/demo");
    let dir = tempfile::tempdir().unwrap();
    let pair = regex::Regex::new(r#"(\w[\w.]*)=("(?:[^"\\]|\\.)*"|\S+)"#).unwrap();
    let pairs_of = |line: &str| -> serde_json::Map<String, serde_json::Value> {
        pair.captures_iter(line)
            .map(|c| {
                let v = &c[2];
                let v = if v.starts_with('"') {
                    serde_json::from_str::<String>(v).unwrap()
                } else {
                    v.to_string()
                };
                (c[1].to_string(), serde_json::Value::String(v))
            })
            .collect()
    };
    let fluent_bit = |service: &str, text: &str| {
        let mut shipped = String::new();
        for (i, line) in text.lines().enumerate() {
            let pairs = pairs_of(line);
            let log = if i % 2 == 0 {
                format!("{line}\n")
            } else {
                format!("{}\n", serde_json::Value::Object(pairs.clone()))
            };
            let record = serde_json::json!({
                "time": pairs["ts"],
                "stream": "stdout",
                "log": log,
                "kubernetes": {
                    "host": pairs["host"],
                    "pod_name": pairs["container"],
                    "labels": {"app": pairs["service"]},
                },
            });
            shipped.push_str(&format!("{record}\n"));
        }
        (format!("logs/{service}.fluentbit.json"), shipped)
    };
    let cri = |service: &str, text: &str| {
        let lines: String = text
            .lines()
            .map(|line| {
                format!(
                    "{} stdout F {line}\n",
                    pairs_of(line)["ts"].as_str().unwrap()
                )
            })
            .collect();
        (
            format!("pods/shop_{service}-7d9f8b8c9-x2x4k_0f1e2d3c-aaaa-bbbb-cccc-1234567890ab/server/0.log"),
            lines,
        )
    };
    let before = dir.path().join("demo-out");
    replay_ok(&before, &demo);
    let shapes: [(&str, Reship); 2] = [("fluent-bit", &fluent_bit), ("cri", &cri)];
    for (shape, reship) in shapes {
        let copy = dir.path().join(shape);
        reship_demo(&demo, &copy, reship);
        let after = dir.path().join(format!("{shape}-out"));
        replay_ok(&after, &copy);
        let summary = summary_of(&after);
        assert_eq!(summary["ingest"]["dead_lettered"], 0, "{shape}: {summary}");
        for file in ["incidents.jsonl", "anomalies.jsonl", "actions.jsonl"] {
            assert_same_bytes(&before.join(file), &after.join(file));
        }
    }
}

/// Writes one service's log text another way: (service, text) -> (path
/// under the copy, content).
type Reship<'a> = &'a dyn Fn(&str, &str) -> (String, String);

/// A copy of the demo at `copy` whose logfmt logs are written by `reship`
/// and the rest as they are.
fn reship_demo(demo: &Path, copy: &Path, reship: Reship) {
    use std::io::Read;
    for sub in ["logs", "metrics"] {
        std::fs::create_dir_all(copy.join(sub)).unwrap();
        for entry in std::fs::read_dir(demo.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let Some(service) = name.strip_suffix(".logfmt.gz") else {
                std::fs::copy(&path, copy.join(sub).join(&name)).unwrap();
                continue;
            };
            let mut text = String::new();
            flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
                .read_to_string(&mut text)
                .unwrap();
            let (file, content) = reship(service, &text);
            let file = copy.join(file);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, content).unwrap();
        }
    }
}
