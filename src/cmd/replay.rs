//! `remedy replay`: run files or directories through the engine and report.

use crate::output::{AtomicFile, JsonLines};
use crate::pipeline::{DeadLetterSink, Pipeline, PipelineConfig, Summary};
use anyhow::Context;
use ingest::decode::DecoderConfig;
use ingest::mining::MinerConfig;
use ingest::source::file::{stdin_lines, FileSource};
use ingest::{DeadLetter, Format};
use std::io::Write;
use std::path::PathBuf;

/// Flags of `remedy replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories to replay (directories are read recursively in
    /// sorted order; `.gz` files are decompressed), or `-` for standard input.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Directory for `summary.json` and `dead-letter.jsonl`.
    #[arg(long, default_value = "remedy-out", value_name = "DIR")]
    pub out: PathBuf,

    /// Input format for every file: a name (`json`, `logfmt`, `plain`,
    /// `syslog`, `prometheus`, `prom-json`, ...), a loghub header format
    /// such as '<Date> <Time> <Level> <Component>: <Content>', or `auto` to
    /// sniff each file.
    #[arg(long, default_value = "auto", value_name = "FORMAT")]
    pub format: String,

    /// Records longer than this many bytes are dead-lettered, not parsed.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub max_line_bytes: usize,
}

/// Dead letters written as JSON lines.
struct FileSink(JsonLines);

impl DeadLetterSink for FileSink {
    fn put(&mut self, letter: &DeadLetter) -> anyhow::Result<()> {
        self.0.write(letter)
    }
}

/// Run `remedy replay`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let format = Format::from_name(&args.format)?;
    // Open every input before creating any output, so a typo in a path
    // leaves nothing behind.
    let stdin = args.paths.iter().any(|p| p.as_os_str() == "-");
    if stdin && args.paths.len() > 1 {
        anyhow::bail!("`-` (standard input) cannot be combined with other paths");
    }
    let source: Box<dyn Iterator<Item = ingest::Result<ingest::RawRecord>>> = if stdin {
        Box::new(stdin_lines(args.max_line_bytes))
    } else {
        Box::new(FileSource::open(&args.paths, args.max_line_bytes)?)
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create output directory {}", args.out.display()))?;
    let decoder = DecoderConfig {
        max_line_bytes: args.max_line_bytes,
        reference_time: Some(models::Timestamp::from_millis(
            chrono::Utc::now().timestamp_millis(),
        )),
        ..DecoderConfig::default()
    };
    let mut pipeline = Pipeline::new(PipelineConfig {
        format,
        decoder,
        miner: MinerConfig::default(),
        max_series: 100_000,
    })?;
    let mut dead = FileSink(JsonLines::create(args.out.join("dead-letter.jsonl"))?);
    let progress = crate::output::progress("replaying");
    for raw in source {
        let raw = raw?;
        pipeline.push(&raw, &mut dead)?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    dead.0.commit()?;
    let summary = pipeline.summary();
    let mut file = AtomicFile::create(args.out.join("summary.json"))?;
    serde_json::to_writer_pretty(&mut file, &summary)?;
    file.write_all(b"\n")?;
    file.commit()?;
    let stdout = std::io::stdout();
    print_report(&mut stdout.lock(), &summary, &args.out)?;
    Ok(())
}

/// The human-readable report.
pub fn print_report(w: &mut dyn Write, s: &Summary, out: &std::path::Path) -> anyhow::Result<()> {
    let span = match (s.first_event, s.last_event) {
        (Some(a), Some(b)) => format!("{a} .. {b}"),
        _ => "no events".into(),
    };
    writeln!(w, "remedy replay: {} records read, {span}", s.ingest.read)?;
    writeln!(
        w,
        "  parsed {}  dead-lettered {}  blank lines {}  (invalid UTF-8 replaced in {})",
        s.ingest.parsed, s.ingest.dead_lettered, s.ingest.blank, s.ingest.utf8_replaced
    )?;
    let formats: Vec<String> = s
        .ingest
        .by_format
        .iter()
        .map(|(f, n)| format!("{f} {n}"))
        .collect();
    writeln!(w, "  by format: {}", formats.join(", "))?;
    writeln!(w, "\ninputs:")?;
    for o in &s.origins {
        writeln!(
            w,
            "  {:<48} {:<11} {:>9} parsed {:>6} dead",
            o.origin, o.format, o.stats.parsed, o.stats.dead_lettered
        )?;
    }
    if !s.ingest.by_reason.is_empty() {
        writeln!(
            w,
            "\ndead letters by reason (see {}):",
            out.join("dead-letter.jsonl").display()
        )?;
        for (reason, n) in &s.ingest.by_reason {
            writeln!(w, "  {:<24} {n}", reason.as_str())?;
        }
    }
    writeln!(w, "\nlogs: {} records, {} templates", s.logs, s.templates)?;
    for (svc, c) in &s.logs_by_service {
        writeln!(
            w,
            "  {svc:<20} {:>9} records {:>7} errors {:>7} warnings",
            c.logs, c.errors, c.warnings
        )?;
    }
    writeln!(
        w,
        "\nmetrics: {} samples in {} series ({} names)",
        s.metric_samples,
        s.metric_series,
        s.metric_names.len()
    )?;
    if !s.changes.is_empty() {
        writeln!(w, "\nchanges:")?;
        for c in &s.changes {
            let kind = serde_json::to_value(c.kind)?;
            writeln!(
                w,
                "  {} {:<14} {:<12} {}",
                c.timestamp,
                kind.as_str().unwrap_or_default(),
                c.service,
                c.version.as_deref().unwrap_or("")
            )?;
        }
    }
    if !s.top_templates.is_empty() {
        writeln!(w, "\ntop templates:")?;
        for t in &s.top_templates {
            writeln!(w, "  {:>8}  {}  {}", t.count, t.id, t.template)?;
        }
    }
    writeln!(w, "\nwrote {}", out.join("summary.json").display())?;
    Ok(())
}
