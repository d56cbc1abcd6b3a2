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

/// Mine every line of a file, handing each line's (id, template) to `emit`
/// in order, with the templates as they stand at the end (a template that
/// widened later applies to its earlier lines too), refined with each line's
/// own words where a template position proved to be an enumeration.
pub fn mine_file_with(
    path: &std::path::Path,
    format: &HeaderFormat,
    masks: &[String],
    mut emit: impl FnMut(&str, &str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut reader = LineReader::open(path, usize::MAX - 1)?;
    let mut miner = TemplateMiner::new(MinerConfig {
        masks: masks.to_vec(),
        // One file, mined whole: no eviction, so every line keeps its template.
        max_templates: usize::MAX / 2,
        ..MinerConfig::default()
    })?;
    miner.set_intern_all(true);
    let mut locs = format.locations();
    // Per line: its template and its token ids, so one pass over the file
    // suffices; the refinement needs the final templates. Token ids live in
    // one flat vector (no allocation per line).
    let mut templates: Vec<u32> = Vec::new();
    let mut ends: Vec<usize> = Vec::new();
    let mut tokens: Vec<u32> = Vec::new();
    let mut buf = Vec::new();
    while let Some(line_no) = reader.next_line_into(&mut buf) {
        line_no?;
        // Valid UTF-8 (the common case) is checked at SIMD speed and borrowed.
        let line = match std::str::from_utf8(&buf) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(&buf),
        };
        let m = miner.add(format.content_with(&line, &mut locs));
        templates.push(m.index as u32);
        tokens.extend_from_slice(miner.last_tokens());
        ends.push(tokens.len());
    }
    let mut cache: HashMap<(u32, &[u32]), (String, String), rustc_hash::FxBuildHasher> =
        HashMap::default();
    let mut start = 0;
    for (t, end) in templates.into_iter().zip(ends) {
        let ids = &tokens[start..end];
        start = end;
        if let Some((id, template)) = cache.get(&(t, ids)) {
            emit(id, template)?;
            continue;
        }
        let info = miner
            .refine_ids(t as usize, ids)
            .expect("no eviction without a cap");
        emit(&info.id, &info.template)?;
        cache.insert((t, ids), (info.id, info.template));
    }
    Ok(())
}

/// Run `remedy templates`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let format = HeaderFormat::new(&args.log_format)?;
    // Check masks before touching any output.
    TemplateMiner::new(MinerConfig {
        masks: args.masks.clone(),
        ..MinerConfig::default()
    })?;
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
    mine_file_with(&args.logfile, &format, &args.masks, |id, template| {
        line_id += 1;
        text.push_str(digits.format(line_id));
        text.push(',');
        text.push_str(id);
        text.push(',');
        text.push_str(&csv_field(template));
        text.push('\n');
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
