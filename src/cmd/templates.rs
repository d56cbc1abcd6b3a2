//! `remedy templates`: mine a log file's templates and write loghub-style CSV.

use crate::output::AtomicFile;
use anyhow::Context;
use ingest::mining::{MinerConfig, TemplateMiner};
use ingest::parse::header::HeaderFormat;
use ingest::source::file::LineReader;
use std::collections::HashMap;
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

    /// Share of tokens that must agree to join a template (evaluation
    /// only: the default is the one setting for every log).
    #[arg(long, hide = true, default_value_t = MinerConfig::default().similarity)]
    pub similarity: f64,

    /// Most words an enumeration position may hold (evaluation only).
    #[arg(long, hide = true, default_value_t = MinerConfig::default().max_enum_values)]
    pub max_enum_values: usize,

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

/// Mine every line of a file, handing `emit` each line's CSV row after the
/// line id (`,EventId,EventTemplate` and the newline) in order, with the
/// templates as they stand at the end (a template that widened later
/// applies to its earlier lines too), refined with each line's own words
/// where a template position proved to be an enumeration. A row is
/// formatted once and handed out for every line it covers.
fn mine_rows(
    mut reader: LineReader,
    size_hint: usize,
    format: &HeaderFormat,
    mut miner: TemplateMiner,
    mut emit: impl FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut locs = format.locations();
    // Per line: its template and its token ids, so one pass over the file
    // suffices; the refinement needs the final templates. Token ids live in
    // one flat vector (no allocation per line).
    // Sized from the file up front (a line is rarely under 32 bytes, a
    // token under 4): growing by doubling would copy them over and over.
    // Untouched capacity costs address space, not memory.
    let bytes = size_hint.min(1 << 34);
    let mut templates: Vec<u32> = Vec::with_capacity(bytes / 32);
    let mut ends: Vec<usize> = Vec::with_capacity(bytes / 32);
    let mut tokens: Vec<u32> = Vec::with_capacity(bytes / 4);
    let mut buf = Vec::new();
    while let Some(line_no) = reader.next_line_into(&mut buf) {
        line_no?;
        // Valid UTF-8 (the common case) is checked at SIMD speed and borrowed.
        let line = match std::str::from_utf8(&buf) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(&buf),
        };
        let index = miner.add_index(format.content_with(&line, &mut locs));
        templates.push(index as u32);
        tokens.extend_from_slice(miner.last_tokens());
        ends.push(tokens.len());
    }
    // A line's refined template depends on its template and on its words
    // at that template's enumeration positions only, usually none: rows
    // are cached per template, and per (template, those words) when there
    // are some, so most lines cost one index into a vector.
    let mut positions: Vec<Option<Vec<usize>>> = Vec::new();
    let mut plain: Vec<Option<String>> = Vec::new();
    // Keyed by [template, words at its positions...].
    let mut keyed: HashMap<Vec<u32>, String, rustc_hash::FxBuildHasher> = HashMap::default();
    let mut key = Vec::new();
    let mut start = 0;
    for (t, end) in templates.into_iter().zip(ends) {
        let ids = &tokens[start..end];
        start = end;
        let ti = t as usize;
        if ti >= positions.len() {
            positions.resize(ti + 1, None);
            plain.resize_with(ti + 1, || None);
        }
        let pos = positions[ti].get_or_insert_with(|| {
            miner
                .refine_positions(ti)
                .expect("no eviction without a cap")
        });
        if pos.is_empty() {
            if let Some(row) = &plain[ti] {
                emit(row)?;
                continue;
            }
        } else {
            key.clear();
            key.push(t);
            key.extend(pos.iter().map(|&p| ids.get(p).copied().unwrap_or(u32::MAX)));
            if let Some(row) = keyed.get(key.as_slice()) {
                emit(row)?;
                continue;
            }
        }
        let info = miner
            .refine_ids(ti, ids)
            .expect("no eviction without a cap");
        let row = format!(",{},{}\n", info.id, csv_field(&info.template));
        emit(&row)?;
        if pos.is_empty() {
            plain[ti] = Some(row);
        } else {
            keyed.insert(key.clone(), row);
        }
    }
    Ok(())
}

/// Run `remedy templates`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let format = HeaderFormat::new(&args.log_format)?;
    // Masks are checked (compiled) before any output is touched.
    let mut miner = TemplateMiner::new(MinerConfig {
        masks: args.masks.clone(),
        // One file, mined whole: no eviction, so every line keeps its template.
        max_templates: usize::MAX / 2,
        similarity: args.similarity,
        max_enum_values: args.max_enum_values,
    })?;
    miner.set_intern_all(true);
    // The input is opened before any output exists: a wrong path leaves
    // nothing behind.
    let reader = LineReader::open(&args.logfile, usize::MAX - 1)?;
    let size_hint = std::fs::metadata(&args.logfile).map_or(0, |m| m.len() as usize);
    // Rows are written in 64 KiB chunks as they come: a 10 MB CSV never
    // sits in memory whole, and the page faults of growing it are saved.
    let mut file = args.out.as_ref().map(AtomicFile::create).transpose()?;
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut write = |bytes: &[u8]| -> anyhow::Result<()> {
        match file.as_mut() {
            Some(f) => f.write_all(bytes),
            None => stdout.write_all(bytes),
        }
        .context("cannot write the templates CSV")
    };
    let mut text = String::with_capacity(1 << 17);
    text.push_str("LineId,EventId,EventTemplate\n");
    let mut line_id = 0u64;
    let mut digits = itoa::Buffer::new();
    mine_rows(reader, size_hint, &format, miner, |row| {
        line_id += 1;
        text.push_str(digits.format(line_id));
        text.push_str(row);
        if text.len() >= 1 << 16 {
            write(text.as_bytes())?;
            text.clear();
        }
        Ok(())
    })?;
    write(text.as_bytes())?;
    match file {
        Some(f) => f.commit()?,
        None => stdout.flush()?,
    }
    Ok(())
}
