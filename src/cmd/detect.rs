//! `remedy detect`: score one metric series with the causal detector.

use crate::output::AtomicFile;
use analyze::{Detector, Point, METHODS};
use anyhow::{bail, Context};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

/// Flags of `remedy detect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write the scored CSV here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    // Which detector scores the series: one of `analyze::METHODS`, whose
    // names, help and default (the first) the option takes from there.
    #[arg(
        long,
        help = method_help(),
        value_parser = method_values(),
        default_value = METHODS[0].name
    )]
    pub method: String,

    /// CSV with header `timestamp,value` (timestamps as `YYYY-MM-DD
    /// HH:MM:SS`, RFC 3339 or Unix seconds).
    #[arg(value_name = "SERIES.csv")]
    pub series: PathBuf,
}

/// `--method`'s help: the methods' summaries, the default marked.
fn method_help() -> String {
    let mut help = String::from("Which detector scores the series: ");
    for (i, m) in METHODS.iter().enumerate() {
        if i > 0 {
            help.push_str(if i + 1 == METHODS.len() { " or " } else { ", " });
        }
        let default = if i == 0 { ", the default" } else { "" };
        help.push_str(&format!("`{}` ({}{default})", m.name, m.summary));
    }
    help
}

/// `--method`'s values, each with its help.
fn method_values() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        METHODS
            .iter()
            .map(|m| clap::builder::PossibleValue::new(m.name).help(m.help)),
    )
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
    let method = analyze::detectors::method(&args.method)
        .with_context(|| format!("unknown method {:?}", args.method))?;
    let mut detector = (method.new)();
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
        let s = detector.observe(&Point::new(last_t, value));
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
