//! `remedy templates`: mine a log file's templates and write loghub-style CSV.

use crate::output::AtomicFile;
use anyhow::Context;
use ingest::mining::{MinerConfig, TemplateMiner};
use ingest::parse::header::HeaderFormat;
use ingest::source::file::LineReader;
use std::io::Write;
use std::path::PathBuf;

/// Flags of `remedy templates`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Header format of each line, loghub style, e.g.
    /// '<Date> <Time> <Level> <Component>: <Content>'. Templates are mined
    /// from `<Content>`; a line that does not match is mined whole.
    #[arg(long, value_name = "FORMAT", default_value = "<Content>")]
    pub log_format: String,

    /// A regular expression whose matches are variables (repeatable),
    /// applied to the content before mining.
    #[arg(long = "mask", value_name = "REGEX")]
    pub masks: Vec<String>,

    /// Write the CSV here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// The log file (plain or .gz).
    #[arg(value_name = "LOGFILE")]
    pub logfile: PathBuf,
}

/// CSV field quoting (RFC 4180).
fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// Mine every line of a file; returns one (id, template) per line, with the
/// templates as they stand at the end (a template that widened later
/// applies to its earlier lines too).
pub fn mine_file(
    path: &std::path::Path,
    format: &HeaderFormat,
    masks: &[String],
) -> anyhow::Result<Vec<(String, String)>> {
    let reader = LineReader::open(path, usize::MAX - 1)?;
    let mut miner = TemplateMiner::new(MinerConfig {
        masks: masks.to_vec(),
        // One file, mined whole: no eviction, so every line keeps its template.
        max_templates: usize::MAX / 2,
        ..MinerConfig::default()
    })?;
    let mut indexes = Vec::new();
    for rec in reader {
        let rec = rec?;
        let line = String::from_utf8_lossy(&rec.bytes);
        indexes.push(miner.add(format.content(&line)).index);
    }
    // Second pass: each line's final template, refined with its own words
    // where a template position proved to be an enumeration.
    let reader = LineReader::open(path, usize::MAX - 1)?;
    reader
        .zip(indexes)
        .map(|(rec, i)| {
            let rec = rec?;
            let line = String::from_utf8_lossy(&rec.bytes);
            let tokens = miner.tokens(format.content(&line));
            let t = miner.refine(i, &tokens).expect("no eviction without a cap");
            Ok((t.id, t.template))
        })
        .collect()
}

/// Run `remedy templates`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let format = HeaderFormat::new(&args.log_format)?;
    // Check masks before touching any output.
    TemplateMiner::new(MinerConfig {
        masks: args.masks.clone(),
        ..MinerConfig::default()
    })?;
    let rows = mine_file(&args.logfile, &format, &args.masks)?;
    let mut text = String::with_capacity(rows.len() * 48);
    text.push_str("LineId,EventId,EventTemplate\n");
    for (i, (id, template)) in rows.iter().enumerate() {
        text.push_str(&format!("{},{},{}\n", i + 1, id, csv_field(template)));
    }
    match &args.out {
        Some(path) => {
            let mut f = AtomicFile::create(path)?;
            f.write_all(text.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            f.commit()?;
        }
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(())
}
