//! `remedy templates` against loghub ground truth: grouping accuracy (GA,
//! Zhu et al. 2019) on the eight loghub-2k systems bundled in
//! `datasets/loghub-2k` (corrected truth of Khan et al. 2022), each with its
//! published header format and masks, and one set of miner defaults.

use crate::cli::remedy;
use std::collections::HashMap;
use std::path::Path;

fn column(path: &Path, name: &str) -> Vec<String> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let idx = r.headers().unwrap().iter().position(|h| h == name).unwrap();
    r.records()
        .map(|rec| rec.unwrap()[idx].to_string())
        .collect()
}

/// A line is right when the set of lines sharing its predicted group is
/// exactly the set sharing its true template.
fn grouping_accuracy(pred: &[String], truth: &[String]) -> f64 {
    assert_eq!(pred.len(), truth.len());
    let mut pg: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut tg: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (p, t)) in pred.iter().zip(truth).enumerate() {
        pg.entry(p).or_default().push(i);
        tg.entry(t).or_default().push(i);
    }
    let ok = pred
        .iter()
        .zip(truth)
        .filter(|(p, t)| pg[p.as_str()] == tg[t.as_str()])
        .count();
    ok as f64 / truth.len() as f64
}

#[test]
fn grouping_accuracy_on_loghub_2k_meets_the_floor() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/loghub-2k");
    let settings: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("settings.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut scores = Vec::new();
    for (system, cfg) in settings.as_object().unwrap() {
        let out = dir.path().join(format!("{system}.csv"));
        let mut cmd = remedy();
        cmd.args([
            "templates",
            "--log-format",
            cfg["log_format"].as_str().unwrap(),
        ]);
        for m in cfg["masks"].as_array().unwrap() {
            cmd.args(["--mask", m.as_str().unwrap()]);
        }
        let run = cmd
            .arg("--out")
            .arg(&out)
            .arg(root.join(format!("{system}/{system}_2k.log")))
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{system}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let line_ids = column(&out, "LineId");
        assert_eq!(line_ids.first().map(String::as_str), Some("1"));
        assert_eq!(line_ids.len(), 2000, "{system}: one row per input line");
        let pred = column(&out, "EventId");
        let truth = column(
            &root.join(format!("{system}/{system}_2k.log_truth.csv")),
            "EventTemplate",
        );
        let ga = grouping_accuracy(&pred, &truth);
        eprintln!("{system:<10} GA {ga:.3}");
        scores.push((system.clone(), ga));
    }
    assert_eq!(scores.len(), 8);
    let mean = scores.iter().map(|(_, g)| g).sum::<f64>() / scores.len() as f64;
    eprintln!("mean GA {mean:.3}");
    assert!(mean >= 0.98, "mean GA {mean:.3} < 0.98: {scores:?}");
    for (system, ga) in &scores {
        assert!(*ga >= 0.93, "{system} GA {ga:.3} < 0.93");
    }
}

#[test]
fn templates_cli_contract() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    std::fs::write(
        &log,
        "2026-01-05 10:00:00 INFO db: connected to 10.0.0.1, pool=4\n\n2026-01-05 10:00:01 INFO db: connected to 10.0.0.2, pool=8\nnot matching the header \"at all\"\n",
    )
    .unwrap();
    let out = remedy()
        .args([
            "templates",
            "--log-format",
            "<Date> <Time> <Level> <Component>: <Content>",
        ])
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut r = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        r.headers().unwrap(),
        vec!["LineId", "EventId", "EventTemplate"]
    );
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4, "one row per line, blank lines included");
    assert_eq!(&rows[0][2], "connected to <*>, pool=<*>");
    assert_eq!(rows[0][1], rows[2][1], "same template, same id");
    assert_eq!(
        &rows[3][2], "not matching the header \"at all\"",
        "unmatched lines are mined whole"
    );

    // Errors: a bad regex, a bad format, a missing file; no output file left.
    let target = dir.path().join("out.csv");
    for (args, needle) in [
        (vec!["--mask", "(unclosed"], "(unclosed"),
        (
            vec!["--log-format", "<Date> <Date> <Content>"],
            "appears twice",
        ),
    ] {
        let r = remedy()
            .arg("templates")
            .args(&args)
            .arg("--out")
            .arg(&target)
            .arg(&log)
            .output()
            .unwrap();
        assert_eq!(r.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&r.stderr).contains(needle));
        assert!(!target.exists());
    }
    let r = remedy()
        .args(["templates", "--out"])
        .arg(&target)
        .arg(dir.path().join("nope.log"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("nope.log"));
    assert!(!target.exists());
}
