//! `remedy replay`: run files or directories through the engine and report.

use crate::output::JsonLines;
use anyhow::Context;
use engine::{DeadLetterSink, Engine, EngineConfig, FindingsSink, Publisher, Summary};
use ingest::source::file::{stdin_lines, FileSource};
use ingest::{DeadLetter, Format};
use models::{Action, ActionStatus, Evidence, Incident};
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

    /// The engine's settings from the `[engine]` table of a TOML file
    /// (`format`, `max_line_bytes`, `detectors`, `topology`,
    /// `session_pattern`, `mixed_formats`; `remedy run`'s file works as
    /// it is). The flags below override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Input format for every file: a name (`json`, `logfmt`, `plain`,
    /// `syslog`, `prometheus`, `prom-json`, ...), a loghub header format
    /// such as '<Date> <Time> <Level> <Component>: <Content>', or `auto` to
    /// sniff each file [default: auto]. `GLOB=FORMAT` gives the files whose
    /// path (relative to the directory named on the command line) matches
    /// GLOB their own format, e.g. '--format nginx/*.log=plain'; repeat
    /// the flag for several (the first matching glob wins).
    #[arg(long, value_name = "FORMAT")]
    pub format: Vec<String>,

    /// Leave out files and directories whose path, relative to the
    /// directory named on the command line, matches GLOB (e.g. '*.md',
    /// 'logs/debug/**'); repeat for several. Documentation files at the
    /// top of a dataset (`README`, `LICENSE`, `labels.json`,
    /// `manifest.json`...) are left out too; a path named on the command
    /// line is always read.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,

    /// Records longer than this many bytes are dead-lettered, not parsed
    /// [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    pub max_line_bytes: Option<usize>,

    /// Labelled faults (`labels.json` from `remedy generate`): print and
    /// record how the incidents compare.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,

    /// Remediation policy (TOML); the default plans in dry-run only.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// `dynamic` (learned baselines, the default) or `static` (fixed
    /// operator thresholds such as memory above 80% of its limit for 5
    /// minutes), to compare the two on the same data.
    #[arg(long, value_enum)]
    pub detectors: Option<Detectors>,

    /// Also write incidents, anomalies, actions, the audit trail, templates
    /// and the signals behind each anomaly (for plotting) to this SQLite
    /// database, created if missing; `remedy serve --db` serves it.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,

    /// Service dependencies, JSON `{"caller": ["callee", ...]}`. By default
    /// the `topology` of a `manifest.json` in a replayed directory is used.
    #[arg(long, value_name = "FILE")]
    pub topology: Option<PathBuf>,

    /// Group log records into sessions by the first match of this regular
    /// expression in the message when no field (trace id, `request_id`,
    /// `block_id`, `session_id`) gives a session id, e.g. 'blk_-?\d+' for
    /// HDFS blocks; sessions through a rare template are anomalies.
    #[arg(long, value_name = "REGEX")]
    pub session_pattern: Option<String>,

    /// Carry out the planned actions through the executors the policy's
    /// `[execution]` section configures (Docker Engine API, object store,
    /// webhook, log), under its safety rules: a dry-run policy still runs
    /// nothing (the audit trail says so), approvals and cooldowns hold.
    /// Results go to actions.jsonl, audit.jsonl and `--db`.
    #[arg(long)]
    pub execute: bool,

    /// Also write anomalies, incidents, actions and (with `--labels`) the
    /// evaluation as flat tables, `csv` or `parquet`, into the output
    /// directory.
    #[cfg(feature = "tables")]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub tables: Option<crate::table::TableFormat>,
}

/// A `--format GLOB=FORMAT`: the files it matches, and their format.
type FormatByGlob = (globset::GlobMatcher, Format);

/// `--detectors`' values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Detectors {
    /// Learned baselines.
    Dynamic,
    /// Fixed operator thresholds.
    Static,
}

impl Args {
    /// `--format`'s values: the one for every input (at most one), and the
    /// `GLOB=FORMAT` ones, checked.
    fn formats(&self) -> anyhow::Result<(Option<&str>, Vec<FormatByGlob>)> {
        let mut every = None;
        let mut by_glob = Vec::new();
        for v in &self.format {
            // A loghub header format holds `<Field>`s and may hold `=`; a
            // glob has no `<`.
            match v.split_once('=') {
                Some((glob, format)) if !glob.is_empty() && !glob.contains('<') => {
                    let m = globset::Glob::new(glob)
                        .with_context(|| format!("--format {v:?}: {glob:?} is not a glob"))?
                        .compile_matcher();
                    let f = Format::from_name(format).with_context(|| format!("--format {v:?}"))?;
                    by_glob.push((m, f));
                }
                _ => {
                    if let Some(was) = every.replace(v.as_str()) {
                        anyhow::bail!(
                            "--format is given twice for every input ({was:?} and {v:?}); \
                             name the files one applies to as GLOB=FORMAT"
                        );
                    }
                }
            }
        }
        Ok((every, by_glob))
    }

    /// The engine's configuration: the file's `[engine]` table, then the
    /// flags given (`format`: the bare `--format`, from [`Args::formats`]).
    fn engine_config(&self, format: Option<&str>) -> anyhow::Result<EngineConfig> {
        let mut c = super::engine_config_file(self.config.as_deref())?;
        if let Some(f) = format {
            c.format = f.to_string();
        }
        if let Some(n) = self.max_line_bytes {
            c.max_line_bytes = n;
        }
        if let Some(d) = self.detectors {
            c.detectors = match d {
                Detectors::Dynamic => engine::config::Detectors::Dynamic,
                Detectors::Static => engine::config::Detectors::Static,
            };
        }
        if let Some(t) = &self.topology {
            c.topology = t.clone();
        }
        if let Some(p) = &self.session_pattern {
            c.session_pattern = p.clone();
        }
        Ok(c)
    }
}

/// The inputs, in the merge's order; how many files may be open at once;
/// the files left out as a dataset's metadata (for the report).
type OpenInputs = (Vec<Box<dyn engine::Input>>, usize, Vec<PathBuf>);

/// Open every input in the order the merge breaks ties in: files of lines
/// stream (a regular file is checked now and opened when the merge
/// reaches it), tables (`.csv`, `.csv.gz`, `.parquet`) are read and
/// ordered by time now, so an unreadable Parquet file fails before
/// anything is written. Also returns how many files may be open at once.
fn open_inputs(
    paths: &[PathBuf],
    max_line_bytes: usize,
    exclude: &[String],
    formats: &[FormatByGlob],
) -> anyhow::Result<OpenInputs> {
    let mut set = globset::GlobSetBuilder::new();
    for g in exclude {
        set.add(globset::Glob::new(g).with_context(|| format!("--exclude {g:?} is not a glob"))?);
    }
    let files = FileSource::open_excluding(paths, max_line_bytes, &set.build()?)?;
    // A regular file is opened when the merge reaches it and closed when
    // it is parked; a pipe or FIFO is opened now and read from that open.
    let pinned = files
        .files()
        .iter()
        .filter(|f| std::fs::metadata(f).is_ok_and(|m| !m.is_file()))
        .count();
    let open = crate::fdlimit::room_for_inputs(pinned, files.files().len() - pinned)?;
    let inputs = files
        .files()
        .iter()
        .zip(files.relative())
        .map(|(f, rel)| -> anyhow::Result<Box<dyn engine::Input>> {
            #[cfg(feature = "tables")]
            if crate::table::is_table(f) {
                match crate::table::TableRecords::open(f) {
                    Ok(t) => return Ok(Box::new(t)),
                    // A CSV that is not a table of events (a ground-truth
                    // file beside a log, a log named .csv) is read as lines,
                    // as any other file: its records are parsed or
                    // dead-lettered, never skipped.
                    Err(e) if !crate::table::is_parquet(f) => {
                        tracing::warn!("{e:#}; reading it as lines instead");
                    }
                    Err(e) => return Err(e),
                }
            }
            let lines = ingest::source::file::LineReader::lazy(f, max_line_bytes)?;
            Ok(match formats.iter().find(|(g, _)| g.is_match(rel)) {
                Some((_, format)) => Box::new(engine::WithFormat {
                    input: lines,
                    format: format.clone(),
                }),
                None => Box::new(lines),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((inputs, open, files.skipped().to_vec()))
}

/// Dead letters written as JSON lines.
struct FileSink(JsonLines);

impl DeadLetterSink for FileSink {
    fn put(&mut self, letter: &DeadLetter) -> anyhow::Result<()> {
        self.0.write(letter)
    }
}

/// Run `remedy replay`: the inputs, the engine and the sinks its flags
/// name, then the report.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (format, by_glob) = args.formats()?;
    let config = args.engine_config(format)?;
    let stdin = args.paths.iter().any(|p| p.as_os_str() == "-");
    if stdin && args.paths.len() > 1 {
        anyhow::bail!("`-` (standard input) cannot be combined with other paths");
    }
    // Check every setting and open every input before creating any output,
    // so a typo leaves nothing behind.
    let mut settings = config.settings(&args.paths)?;
    let (mut inputs, open, skipped) = if stdin {
        (
            vec![Box::new(stdin_lines(config.max_line_bytes)) as Box<dyn engine::Input>],
            1,
            Vec::new(),
        )
    } else {
        open_inputs(&args.paths, config.max_line_bytes, &args.exclude, &by_glob)?
    };
    let policy = super::load_policy(args.policy.as_deref())?;
    // Set up the executors before anything is written: a bad [execution]
    // section fails the replay with nothing half-done.
    let mut driver = if args.execute {
        Some(crate::execute::driver(&policy, None)?)
    } else {
        None
    };
    let labels = match &args.labels {
        Some(p) => Some(engine::evaluate::Labels::load(p)?),
        None => None,
    };
    let mut store = args.db.as_deref().map(store::Store::open).transpose()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create output directory {}", args.out.display()))?;
    if args.db.is_some() {
        settings.analyzer.trace_limit = store::TRACE_LIMIT;
        settings.template_trace = 1_000_000;
    }
    let mut engine = Engine::new(settings)?;
    let mut dead = FileSink(JsonLines::create(args.out.join("dead-letter.jsonl"))?);
    let progress = crate::output::progress("replaying");
    // The bar is told every 1,024 records: `inc` reads the clock, which
    // per record was about 1.5% of a replay.
    let pending = std::cell::Cell::new(0u64);
    let tick = || {
        pending.set(pending.get() + 1);
        if pending.get() == 1024 {
            progress.inc(pending.replace(0));
        }
    };
    engine::merge_bounded(&mut inputs, open, &mut engine, &mut dead, &tick)?;
    progress.inc(pending.get());
    progress.finish_and_clear();
    dead.0.commit()?;
    // What a person approved through the API (`remedy serve`) runs.
    let approved = match (&driver, &store) {
        (Some(_), Some(store)) => store.approved_actions()?,
        _ => Default::default(),
    };
    // Executed before verification, so the audit trail is in the order
    // things happened.
    let (mut found, executions) =
        Publisher::new(policy).conclude_then(&mut engine, |actions, audit| {
            let Some(d) = driver.as_mut() else {
                return Ok(Default::default());
            };
            for a in actions.iter_mut() {
                if a.status == ActionStatus::Planned && approved.contains(&a.id) {
                    a.status = ActionStatus::Approved;
                }
            }
            crate::execute::execute_all(d, actions, audit)
        })?;
    found.executions = executions;
    let summary = found.summary.as_mut().expect("a concluded run has counts");
    summary.evaluation = labels
        .as_ref()
        .map(|l| engine::evaluate::evaluate(l, &found.incidents, &found.actions));

    if let (Some(store), Some(db)) = (store.as_mut(), &args.db) {
        store
            .write(&found)
            .with_context(|| format!("cannot write the results to {}", db.display()))?;
    }
    #[cfg(feature = "tables")]
    let mut tables = args.tables.map(|format| crate::sinks::Tables {
        dir: args.out.clone(),
        format,
        written: Vec::new(),
    });
    #[cfg(feature = "tables")]
    if let Some(t) = tables.as_mut() {
        t.write(&found)?;
    }
    crate::sinks::JsonlDir {
        dir: args.out.clone(),
    }
    .write(&found)?;

    let summary = found.summary.as_ref().expect("a concluded run has counts");
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    print_report(&mut w, summary, &skipped, &args.out)?;
    print_incidents(&mut w, &found.incidents, &found.actions)?;
    if args.execute {
        print_execution(&mut w, &found.actions, &found.audit, &found.executions)?;
    }
    if let Some(e) = &summary.evaluation {
        engine::evaluate::print(&mut w, e)?;
        #[cfg(feature = "tables")]
        crate::table::print_by_class(&mut w, e)?;
    }
    #[cfg(feature = "tables")]
    for t in tables.iter().flat_map(|t| &t.written) {
        writeln!(w, "table: {}", t.display())?;
    }
    Ok(())
}

/// Incidents in time order with their root causes, evidence and actions.
fn print_incidents(
    w: &mut dyn Write,
    incidents: &[Incident],
    actions: &[Action],
) -> anyhow::Result<()> {
    writeln!(w, "\nincidents: {}", incidents.len())?;
    for inc in incidents {
        let end = inc.end.map_or("open".to_string(), |e| e.to_string());
        writeln!(
            w,
            "\n  {}  {} .. {}  ({} anomalies)",
            inc.id,
            inc.start,
            end,
            inc.anomalies.len()
        )?;
        for (rank, rc) in inc.root_causes.iter().take(3).enumerate() {
            let t = &rc.target;
            let target: Vec<String> = [
                ("service", &t.service),
                ("host", &t.host),
                ("container", &t.container),
            ]
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect();
            writeln!(
                w,
                "    #{} {:<19} {:<44} confidence {:.2}",
                rank + 1,
                rc.class.as_str(),
                target.join(" "),
                rc.confidence
            )?;
        }
        if let Some(top) = inc.root_causes.first() {
            for ev in top.evidence.iter().take(3) {
                match ev {
                    Evidence::Signal { anomaly } => writeln!(
                        w,
                        "       evidence: {} at {}: {:.3} observed, expected {:.3} (band {:.3}..{:.3})",
                        anomaly.signal, anomaly.timestamp, anomaly.observed, anomaly.expected.expected,
                        anomaly.expected.lower, anomaly.expected.upper
                    )?,
                    Evidence::Change { change } => writeln!(
                        w,
                        "       evidence: change {} of {} {} at {}",
                        change.kind.as_str(),
                        change.service,
                        change.version.as_deref().unwrap_or(""),
                        change.timestamp
                    )?,
                    Evidence::Template { template, count, .. } => {
                        writeln!(w, "       evidence: {count} x {template}")?
                    }
                    Evidence::Note { text } => writeln!(w, "       evidence: {text}")?,
                }
            }
        }
        for a in actions.iter().filter(|a| a.incident_id == inc.id) {
            let status = match &a.status {
                ActionStatus::Skipped { reason } => format!("skipped ({reason})"),
                other => other.state().to_string(),
            };
            writeln!(
                w,
                "    action: {}{}{} -> {status}{}",
                a.kind.name(),
                if a.dry_run { " [dry-run]" } else { "" },
                if a.requires_approval {
                    " [needs approval]"
                } else {
                    ""
                },
                match (a.verified, a.dry_run) {
                    (Some(true), _) => ", verified: its signals cleared in time",
                    (Some(false), true) => {
                        ", not verified: its signals had not cleared in time (dry-run: nothing was done)"
                    }
                    (Some(false), false) => ", not verified: its signals had not cleared in time",
                    (None, _) => "",
                }
            )?;
        }
    }
    Ok(())
}

/// What `--execute` did with each action.
fn print_execution(
    w: &mut dyn Write,
    actions: &[Action],
    audit: &[reclaim::AuditEntry],
    reports: &std::collections::BTreeMap<String, reclaim::exec::Report>,
) -> anyhow::Result<()> {
    writeln!(w, "\nexecution:")?;
    for a in actions {
        let what = match (&a.status, reports.get(&a.id)) {
            (_, Some(r)) => format!("executed: {}", r.detail),
            (ActionStatus::Executed, None) => "executed earlier (ledger); nothing run again".into(),
            (ActionStatus::Failed { reason }, None) => format!("failed: {reason}"),
            (_, None) => {
                let why = audit
                    .iter()
                    .rev()
                    .find(|e| e.action_id == a.id && e.decision == "not_executed")
                    .map_or("not handed to the executors", |e| e.reason.as_str());
                format!("not executed: {why}")
            }
        };
        writeln!(w, "  {} {}: {what}", a.id, a.kind.name())?;
    }
    Ok(())
}

/// The human-readable report.
pub fn print_report(
    w: &mut dyn Write,
    s: &Summary,
    skipped: &[PathBuf],
    out: &std::path::Path,
) -> anyhow::Result<()> {
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
    for o in &s.origins {
        // A file none of whose lines fit a format is most often not data
        // at all (a dataset's scorer, a pretty-printed JSON document): its
        // lines are kept as dead letters, and the user is told both ways on.
        let comments = o.stats.by_format.get("comment").copied().unwrap_or(0);
        if o.stats.dead_lettered > 0 && o.stats.parsed == comments {
            let why = if o.format == "auto" {
                "no known format fits its lines (name its format with --format GLOB=FORMAT"
                    .to_string()
            } else {
                format!("its lines are not {} (see the dead letters", o.format)
            };
            writeln!(
                w,
                "  {}: nothing read: {why}, or leave it out with --exclude GLOB)",
                o.origin
            )?;
        }
    }
    if !skipped.is_empty() {
        // Said, not only logged: a file left out unseen is data lost.
        let names: Vec<String> = skipped.iter().map(|p| p.display().to_string()).collect();
        writeln!(
            w,
            "  not read, a dataset's metadata (name a file to read it): {}",
            names.join(", ")
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
    if s.late_events > 0 {
        let why: Vec<String> = s
            .late_by_reason
            .iter()
            .map(|(reason, n)| {
                let what = match reason.as_str() {
                    "out_of_order" => "out of time order within their input",
                    _ => "from an input behind the others",
                };
                format!("{n} {what}")
            })
            .collect();
        writeln!(
            w,
            "\nlate: {} events arrived after their window had closed ({}; by more than the \
             allowed lateness): counted, left out of the signals",
            s.late_events,
            why.join(", ")
        )?;
    }
    // The caps that keep memory bounded under hostile input (too many
    // series, signals or templates) say what they turned away: a capped
    // run is not a complete analysis, and the user should know which cap
    // to raise or which label to drop.
    if s.metric_series_over_cap > 0
        || s.signals_over_cap > 0
        || s.templates_evicted > 0
        || s.sessions_over_cap > 0
    {
        writeln!(
            w,
            "\ncaps: {} series over the series cap (not tracked), {} observations of \
             signals over the signal cap (counted, not analysed), {} templates evicted, \
             {} sessions or template pairs over the session caps",
            s.metric_series_over_cap, s.signals_over_cap, s.templates_evicted, s.sessions_over_cap
        )?;
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
            writeln!(
                w,
                "  {} {:<14} {:<12} {}",
                c.timestamp,
                c.kind.as_str(),
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
