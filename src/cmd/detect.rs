//! `remedy detect`: score one metric series with the causal detector.

use crate::output::AtomicFile;
use analyze::{
    BaselineDetector, BaselineDetectorConfig, DetectorConfig, EnsembleConfig, EnsembleDetector,
    Score, SeriesDetector,
};
use anyhow::{bail, Context};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

/// Flags of `remedy detect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write the scored CSV here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Which detector scores the series: `ensemble` (level, step, daily and
    /// weekly predictors with calibrated tails, the default), `baseline`
    /// (the seasonal dynamic baseline of `remedy replay`), `window` (robust
    /// median/MAD over a trailing window) or `static` (mean +/- 3 sd of the
    /// first 500 rows, the comparison point).
    #[arg(long, value_enum, default_value_t = Method::Ensemble)]
    pub method: Method,

    /// CSV with header `timestamp,value` (timestamps as `YYYY-MM-DD
    /// HH:MM:SS`, RFC 3339 or Unix seconds).
    #[arg(value_name = "SERIES.csv")]
    pub series: PathBuf,
}

/// Detectors `remedy detect` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// Level, step, daily and weekly predictors, the best listened to, and
    /// runs of repeated values, with peaks-over-threshold tails and onset
    /// reporting; `label` is 1 on the one row where an episode reaches
    /// `analyze::DEFAULT_THRESHOLD`.
    Ensemble,
    /// Seasonal dynamic baseline (level, trend, daily and weekly cycles).
    Baseline,
    /// Robust z-score against a trailing window.
    Window,
    /// A static threshold, the comparison point: mean +/- 3 standard
    /// deviations of the first [`STATIC_LEARN`] rows, fixed afterwards.
    Static,
}

/// Rows a static threshold is learned from.
const STATIC_LEARN: usize = 500;

/// The classic static rule: learn a band once, alert whenever outside it.
#[derive(Default)]
struct StaticBand {
    seen: Vec<f64>,
    band: Option<(f64, f64)>,
}

impl StaticBand {
    fn observe(&mut self, x: f64) -> Score {
        let score = match self.band {
            Some((lo, hi)) if x.is_finite() && (x < lo || x > hi) => 1.0,
            _ => 0.0,
        };
        if self.band.is_none() && x.is_finite() {
            self.seen.push(x);
            if self.seen.len() >= STATIC_LEARN {
                let n = self.seen.len() as f64;
                let mean = self.seen.iter().sum::<f64>() / n;
                let sd = (self.seen.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
                self.band = Some((mean - 3.0 * sd, mean + 3.0 * sd));
                self.seen = Vec::new();
            }
        }
        Score {
            score,
            alert: score > 0.0,
            expected: f64::NAN,
            spread: f64::NAN,
        }
    }
}

/// Seconds since the Unix epoch of a timestamp in one of the accepted forms.
fn parse_time(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Ok(x) = s.parse::<f64>() {
        return x.is_finite().then_some(x);
    }
    let naive = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .map(|n| n.and_utc());
    let t = match naive {
        Ok(t) => t,
        Err(_) => chrono::DateTime::parse_from_rfc3339(s).ok()?.to_utc(),
    };
    Some(t.timestamp_micros() as f64 / 1e6)
}

enum Detector {
    Ensemble(Box<EnsembleDetector>),
    Baseline(Box<BaselineDetector>),
    Window(Box<SeriesDetector>),
    Static(StaticBand),
}

impl Detector {
    fn observe(&mut self, t: f64, x: f64) -> Score {
        match self {
            Detector::Ensemble(d) => d.observe(t, x),
            Detector::Baseline(d) => d.observe(t, x),
            Detector::Window(d) => d.observe(x),
            Detector::Static(d) => d.observe(x),
        }
    }
}

/// Run `remedy detect`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let file = std::fs::File::open(&args.series)
        .with_context(|| format!("cannot read {}", args.series.display()))?;
    let mut lines = BufReader::new(file).lines();
    let header = lines.next().transpose()?.with_context(|| {
        format!(
            "{} is empty; expected a header `timestamp,value`",
            args.series.display()
        )
    })?;
    let cols: Vec<String> = header
        .trim()
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let (Some(ti), Some(vi)) = (
        cols.iter().position(|c| c == "timestamp"),
        cols.iter().position(|c| c == "value"),
    ) else {
        bail!(
            "{}: header {:?} lacks `timestamp` and `value` columns",
            args.series.display(),
            header.trim()
        );
    };
    let mut out: Box<dyn Write> = Box::new(std::io::BufWriter::new(std::io::stdout().lock()));
    let mut atomic = match &args.out {
        Some(p) => Some(AtomicFile::create(p)?),
        None => None,
    };
    let mut text = String::new();
    let mut detector = match args.method {
        Method::Ensemble => {
            Detector::Ensemble(Box::new(EnsembleDetector::new(EnsembleConfig::default())))
        }
        Method::Baseline => Detector::Baseline(Box::new(BaselineDetector::new(
            BaselineDetectorConfig::default(),
        ))),
        Method::Window => {
            Detector::Window(Box::new(SeriesDetector::new(DetectorConfig::default())))
        }
        Method::Static => Detector::Static(StaticBand::default()),
    };
    // A row with an unreadable timestamp is scored at the last good time.
    let mut last_t = 0.0;
    let mut bad_rows = Vec::new();
    text.push_str("timestamp,value,anomaly_score,label\n");
    for (i, line) in lines.enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        let ts = fields.get(ti).map_or("", |s| s.trim());
        let raw = fields.get(vi).map_or("", |s| s.trim());
        // A row whose value is not a number is scored as missing (score 0)
        // but kept, so the output has one row per input row.
        let value = raw.parse::<f64>().unwrap_or(f64::NAN);
        let t = parse_time(ts);
        if !value.is_finite() || t.is_none() {
            bad_rows.push(i + 2);
        }
        if let Some(t) = t {
            last_t = t;
        }
        let s = detector.observe(last_t, value);
        text.push_str(&format!(
            "{ts},{raw},{:.6},{}\n",
            s.score,
            u8::from(s.alert)
        ));
        if text.len() > 1 << 16 {
            match atomic.as_mut() {
                Some(f) => f.write_all(text.as_bytes())?,
                None => out.write_all(text.as_bytes())?,
            }
            text.clear();
        }
    }
    match atomic {
        Some(mut f) => {
            f.write_all(text.as_bytes())?;
            f.commit()?;
        }
        None => {
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    if !bad_rows.is_empty() {
        let shown: Vec<String> = bad_rows.iter().take(10).map(|l| l.to_string()).collect();
        eprintln!(
            "warning: {} row(s) with a missing or non-numeric value or an unreadable timestamp were scored as missing (lines {}{})",
            bad_rows.len(),
            shown.join(", "),
            if bad_rows.len() > 10 { ", ..." } else { "" }
        );
    }
    Ok(())
}
