//! `remedy detect`: the CSV contract, causality by truncation, bad rows.

use crate::cli::remedy;
use std::path::Path;

fn detect(input: &Path) -> Vec<Vec<String>> {
    let out = remedy().arg("detect").arg(input).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

fn series(n: usize, spike_at: usize) -> String {
    let mut s = String::from("timestamp,value\n");
    for i in 0..n {
        let noise = ((i as f64 * 12.9898).sin() * 43758.5453).fract();
        let v = if i == spike_at {
            95.0
        } else {
            40.0 + 5.0 * (i as f64 / 48.0).sin() + noise
        };
        s.push_str(&format!(
            "2026-01-05 {:02}:{:02}:00,{v:.3}\n",
            (i / 60) % 24,
            i % 60
        ));
    }
    s
}

#[test]
fn one_row_per_input_row_scores_in_range_and_the_spike_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("s.csv");
    std::fs::write(&input, series(900, 700)).unwrap();
    let rows = detect(&input);
    assert_eq!(
        rows[0],
        vec!["timestamp", "value", "anomaly_score", "label"]
    );
    assert_eq!(rows.len(), 901);
    let text = std::fs::read_to_string(&input).unwrap();
    let src: Vec<&str> = text.lines().skip(1).collect();
    for (row, line) in rows[1..].iter().zip(&src) {
        let (ts, v) = line.split_once(',').unwrap();
        assert_eq!(
            (row[0].as_str(), row[1].as_str()),
            (ts, v),
            "input echoed in order"
        );
        let s: f64 = row[2].parse().unwrap();
        assert!((0.0..=1.0).contains(&s));
        assert!(row[3] == "0" || row[3] == "1");
    }
    assert_eq!(rows[701][3], "1", "the spike is labelled");
    let alerts_before = rows[100..701].iter().filter(|r| r[3] == "1").count();
    assert_eq!(
        alerts_before, 0,
        "no false alarm on the seasonal series before the spike"
    );
}

#[test]
fn output_for_row_i_does_not_depend_on_later_rows() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.csv");
    let cut = dir.path().join("cut.csv");
    let text = series(900, 700);
    std::fs::write(&full, &text).unwrap();
    let truncated: String = text.lines().take(651).map(|l| format!("{l}\n")).collect();
    std::fs::write(&cut, truncated).unwrap();
    let a = detect(&full);
    let b = detect(&cut);
    assert_eq!(b.len(), 651);
    assert_eq!(&a[..651], &b[..]);
}

#[test]
fn output_does_not_depend_on_later_rows_once_daily_history_is_in_play() {
    // Five-minute rows over five days: the default detector's daily
    // predictor (288 rows a day) and its tail re-fits are all active before
    // the cut, and a level shift after the cut changes everything later.
    let mut text = String::from("timestamp,value\n");
    for i in 0..1440usize {
        let noise = ((i as f64 * 12.9898).sin() * 43758.5453).fract();
        let day = 20.0 * ((i % 288) as f64 / 288.0 * std::f64::consts::TAU).sin();
        let shift = if i >= 1300 { 30.0 } else { 0.0 };
        text.push_str(&format!(
            "{},{:.3}\n",
            1_396_310_400 + 300 * i,
            50.0 + day + noise + shift
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.csv");
    let cut = dir.path().join("cut.csv");
    std::fs::write(&full, &text).unwrap();
    let truncated: String = text.lines().take(1201).map(|l| format!("{l}\n")).collect();
    std::fs::write(&cut, truncated).unwrap();
    let a = detect(&full);
    let b = detect(&cut);
    assert_eq!(b.len(), 1201);
    assert_eq!(&a[..1201], &b[..]);
    assert!(
        a[1301..1306].iter().any(|r| r[3] == "1"),
        "the shift after the cut is labelled"
    );
}

#[test]
fn bad_rows_are_kept_and_reported_and_bad_files_fail() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("s.csv");
    std::fs::write(
        &input,
        "timestamp,value\n1767607200,1\n1767607260,oops\n1767607320,NaN\n1767607380,2\n",
    )
    .unwrap();
    let out = remedy().arg("detect").arg(&input).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 5);
    assert!(text.contains("1767607260,oops,0.000000,0"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2 row(s)") && err.contains("lines 3, 4"),
        "{err}"
    );

    std::fs::write(&input, "time;val\n1;2\n").unwrap();
    let out = remedy().arg("detect").arg(&input).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("timestamp"));
    let out = remedy()
        .arg("detect")
        .arg(dir.path().join("none.csv"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("none.csv"));
}
