//! The decoder: from a [`RawRecord`] to events, or to a [`DeadLetter`].
//!
//! It is the one place that enforces the ingest invariants, whatever the
//! source: the size cap, UTF-8 (invalid bytes replaced and counted; the
//! record is kept), format sniffing, the parser, and the sanity checks a
//! parser cannot make alone (timestamps far in the future, label sets over
//! the cardinality caps). Every record it is given is counted exactly once
//! as parsed or dead-lettered, so `read == parsed + dead_lettered` holds.

use crate::deadletter::{DeadLetter, DeadLetterReason, IngestStats};
use crate::error::Result;
use crate::multiline::{Joined, Joiner};
use crate::parse::{Format, ParseError, Parser};
use crate::record::RawRecord;
use models::{Event, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

/// Decoder limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecoderConfig {
    /// Records longer than this are dead-lettered (`line_too_long`).
    pub max_line_bytes: usize,
    /// Timestamps more than this many seconds after `reference_time` are
    /// dead-lettered (`future_timestamp`).
    pub max_future_secs: i64,
    /// "Now" for the future check, given by the caller (replay passes the
    /// wall clock at start, streaming the clock per batch, tests a fixed
    /// time); `None` disables the check.
    #[serde(skip)]
    pub reference_time: Option<Timestamp>,
    /// Distinct series per metric name before new ones are dead-lettered.
    pub max_series_per_metric: usize,
    /// Distinct metric names tracked before new ones are dead-lettered.
    pub max_metric_names: usize,
    /// Labels per sample.
    pub max_labels_per_sample: usize,
    /// Bytes per label value.
    pub max_label_value_bytes: usize,
    /// Read a record the origin's sniffed format cannot read with the
    /// format it looks like on its own, instead of dead-lettering it: for
    /// Kafka topics that several shippers write to. Off for files (one
    /// file, one format).
    pub mixed_formats: bool,
    /// Which keys of structured records (JSON, logfmt) hold the time,
    /// message, level, service, host... (the engine's `[engine.fields]`).
    #[serde(skip)]
    pub fields: std::sync::Arc<crate::parse::fields::FieldMapping>,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            max_line_bytes: 1 << 20,
            max_future_secs: 86_400,
            reference_time: None,
            max_series_per_metric: 10_000,
            max_metric_names: 10_000,
            max_labels_per_sample: 64,
            max_label_value_bytes: 4096,
            mixed_formats: false,
            fields: Default::default(),
        }
    }
}

/// Decodes the records of one origin (file or topic): sniffing and parser
/// state are per origin.
pub struct Decoder {
    format: Format,
    parser: Option<Box<dyn Parser>>,
    config: DecoderConfig,
    stats: IngestStats,
    /// Hashes of the series seen per metric name (hashes, not keys, so the
    /// cap bounds memory at a few bytes per series).
    series: HashMap<String, HashSet<u64>>,
    /// Fixed keys, not random ones: the hashes are part of the state a
    /// streaming consumer hands to the next owner of its partitions, so they
    /// must mean the same in another process.
    hasher: std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>,
    default_year: i32,
    /// The format chosen (given, or sniffed from the first record).
    chosen: Option<Format>,
    /// Parsers of other formats met in a mixed origin (`mixed_formats`).
    others: Vec<(Format, Box<dyn Parser>)>,
    /// How the origin's lines continue each other (set with the parser).
    join_mode: JoinMode,
    /// Log records held for their continuation lines.
    join: Joiner,
    /// A sniffed origin's vote on its format.
    sample: Sample,
    /// Events of the record being decoded, on their way to `join`.
    scratch: Vec<Event>,
}

/// How continuation lines are recognised in an origin's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinMode {
    /// Not at all: metrics, and access logs (one request, one line).
    Off,
    /// Plain text: a line with a header starts a record; a line the
    /// parser cannot read may continue the one before it.
    Plain,
    /// Structured records (JSON, logfmt, syslog) each parse on their own;
    /// a record whose message continues the open record of its stream
    /// joins it (a shipper that sends a trace line by line).
    Structured,
}

impl JoinMode {
    fn of(parser: &str) -> JoinMode {
        match parser {
            "plain" | "header" | "apache-error" | "nginx-error" => JoinMode::Plain,
            "json" | "logfmt" | "syslog" | "cri" => JoinMode::Structured,
            _ => JoinMode::Off,
        }
    }
}

/// What a [`Decoder`] has learned, to carry it to another process
/// ([`Decoder::state`], [`Decoder::restore`]): the format chosen, the
/// counts, and the series seen per metric name (for the cardinality caps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecoderState {
    /// The chosen format as [`Format::from_name`] reads it; `auto` when
    /// nothing was recognised yet.
    pub format: String,
    /// Counts so far.
    pub stats: IngestStats,
    /// Series hashes per metric name, sorted.
    pub series: Vec<(String, Vec<u64>)>,
    /// Records held for their continuation lines (absent in older
    /// checkpoints: nothing was held then).
    #[serde(default)]
    pub held: Joiner,
    /// For a sniffed origin, how its sample voted so far (absent for a
    /// format given by name, and in older checkpoints).
    #[serde(default)]
    pub sniffed: Option<Sample>,
}

/// Records of a sniffed origin that decide its format.
pub const SNIFF_SAMPLE: u32 = 32;

/// The vote of a sniffed origin's first [`SNIFF_SAMPLE`] records. The
/// first record that fits a format chooses it, so that records flow at
/// once; a record the chosen parser cannot read, but another format can,
/// votes for that format, and once a format has more votes in the sample
/// than the chosen one has records read, the origin changes to it. So a
/// stray first line that happens to fit (one JSON line above a plain
/// log) no longer dead-letters the file behind it, and a file's format is
/// what most of its first records are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Records of the sample seen since the format was first chosen.
    pub seen: u32,
    /// Of them, read by the chosen format.
    pub fit: u32,
    /// Votes of the others, by format name.
    pub rivals: Vec<(String, u32)>,
}

/// Largest part of a raw record copied into a dead letter.
const DEAD_LETTER_RAW_MAX: usize = 64 * 1024;

impl Decoder {
    /// A decoder for `format` (`Format::Auto` sniffs the first records).
    pub fn new(format: Format, config: DecoderConfig) -> Result<Self> {
        let default_year = config
            .reference_time
            .and_then(|t| t.to_datetime())
            .map_or(1970, |d| chrono::Datelike::year(&d));
        let parser = match &format {
            Format::Auto => None,
            f => Some(f.parser_with(default_year, &config.fields)?),
        };
        let chosen = (format != Format::Auto).then(|| format.clone());
        let join_mode = parser
            .as_ref()
            .map_or(JoinMode::Off, |p| JoinMode::of(p.name()));
        Ok(Decoder {
            join_mode,
            join: Joiner::default(),
            scratch: Vec::new(),
            format,
            parser,
            config,
            stats: IngestStats::default(),
            series: HashMap::new(),
            hasher: Default::default(),
            default_year,
            chosen,
            others: Vec::new(),
            sample: Sample::default(),
        })
    }

    /// What this decoder learned, to restore elsewhere.
    pub fn state(&self) -> DecoderState {
        let format = match &self.chosen {
            Some(Format::Header(h)) => h.clone(),
            Some(f) => f.name().to_string(),
            None => "auto".into(),
        };
        let mut series: Vec<(String, Vec<u64>)> = self
            .series
            .iter()
            .map(|(k, v)| {
                let mut v: Vec<u64> = v.iter().copied().collect();
                v.sort_unstable();
                (k.clone(), v)
            })
            .collect();
        series.sort();
        DecoderState {
            format,
            stats: self.stats.clone(),
            series,
            held: self.join.clone(),
            sniffed: (self.format == Format::Auto).then(|| self.sample.clone()),
        }
    }

    /// A decoder carrying on from [`Decoder::state`]. Parser-internal
    /// memory (the `# TYPE` lines of a Prometheus text stream) is not part
    /// of it: it comes back with the next scrape's own `# TYPE` lines.
    pub fn restore(state: DecoderState, config: DecoderConfig) -> Result<Self> {
        let format = Format::from_name(&state.format)?;
        let mut d = Decoder::new(format, config)?;
        if let Some(sample) = state.sniffed {
            // Still a sniffed origin: a mixed topic stays mixed, and the
            // sample's vote goes on where it was.
            d.format = Format::Auto;
            d.sample = sample;
        }
        d.stats = state.stats;
        d.join = state.held;
        d.series = state
            .series
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().collect()))
            .collect();
        Ok(d)
    }

    /// Counts so far.
    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// The format in use (after sniffing; `auto` until a record was recognised).
    pub fn format_name(&self) -> &str {
        self.parser
            .as_ref()
            .map_or(self.format.name(), |p| p.name())
    }

    /// Decode one record, appending its events to `out`. A blank line is
    /// not a record: it is counted in `stats.blank` and yields nothing.
    pub fn decode(
        &mut self,
        raw: &RawRecord,
        out: &mut Vec<Event>,
    ) -> std::result::Result<(), Box<DeadLetter>> {
        let bytes = trim_line(&raw.bytes);
        if bytes.is_empty() {
            self.stats.blank += 1;
            return Ok(());
        }
        self.stats.read += 1;
        if raw.bytes.len() > self.config.max_line_bytes {
            return Err(self.dead(
                raw,
                ParseError::new(
                    DeadLetterReason::LineTooLong,
                    format!(
                        "record of {}+ bytes is over the limit of {} bytes",
                        raw.bytes.len(),
                        self.config.max_line_bytes
                    ),
                ),
            ));
        }
        // `from_utf8` first: its validation is several times faster than
        // the lossy decoder's, which only the rare invalid record needs.
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => std::borrow::Cow::Borrowed(t),
            Err(_) => String::from_utf8_lossy(bytes),
        };
        let replaced = matches!(text, std::borrow::Cow::Owned(_));
        let counts = byte_counts(bytes);
        if let Some(why) = binary(bytes.len(), counts, replaced.then_some(text.as_ref())) {
            return Err(self.dead(raw, ParseError::new(DeadLetterReason::Binary, why)));
        }
        // A coloured console line: read without its escape codes (the
        // dead letter, if any, keeps the bytes as they came).
        let text = if counts.esc > 0 {
            std::borrow::Cow::Owned(crate::parse::layout::strip_ansi(&text))
        } else {
            text
        };
        if self.parser.is_none() {
            match Format::detect(&text) {
                Some(f) => {
                    let p = f
                        .parser_with(self.default_year, &self.config.fields)
                        .map_err(|e| {
                            self.dead(
                                raw,
                                ParseError::new(DeadLetterReason::UnknownFormat, e.to_string()),
                            )
                        })?;
                    self.join_mode = JoinMode::of(p.name());
                    self.parser = Some(p);
                    self.chosen = Some(f);
                }
                None if text.trim_start().starts_with('#') => {
                    // A comment before anything shows the format: read as
                    // a comment (no events), without choosing a format on
                    // it. An exposition may open with one; so does a
                    // script, whose other lines then fit nothing.
                    self.parsed("comment");
                    return Ok(());
                }
                None if crate::parse::layout::level_in_text(&text).is_some() => {
                    // A log line all the same, only without a time: say so
                    // rather than "unknown format", since a format given by
                    // name would not help.
                    return Err(self.dead(
                        raw,
                        ParseError::new(
                            DeadLetterReason::BadTimestamp,
                            "a log line with a level but no time (as Python logging's default \
                             LEVEL:logger:message writes it): add a time to the layout \
                             (e.g. %(asctime)s) or ship the lines through a collector that \
                             stamps them",
                        ),
                    ));
                }
                None => {
                    return Err(self.dead(
                        raw,
                        ParseError::new(
                            DeadLetterReason::UnknownFormat,
                            "no known format fits this record; name one with --format",
                        ),
                    ))
                }
            }
        }
        let mut start = out.len();
        let parser = self.parser.as_mut().expect("parser chosen above");
        let mut used = parser.name();
        let mut resniffed = false;
        let voting = self.format == Format::Auto && self.sample.seen < SNIFF_SAMPLE;
        if voting {
            self.sample.seen += 1;
        }
        match parser.parse(&text, raw, out) {
            Ok(()) if voting => self.sample.fit += 1,
            Ok(()) => {}
            Err(e) => {
                out.truncate(start);
                if let Some(name) = voting
                    .then(|| self.vote(&text, raw, out, &mut start))
                    .flatten()
                {
                    // The origin's format now, not a record read aside.
                    used = name;
                } else {
                    match self.resniff(&text, raw, out) {
                        Some(name) => {
                            used = name;
                            resniffed = true;
                        }
                        None => return self.continuation(raw, bytes, e, out),
                    }
                }
            }
        }
        if let Err(e) = self.check(&out[start..]) {
            out.truncate(start);
            return Err(self.dead(raw, e));
        }
        if replaced {
            self.stats.utf8_replaced += 1;
        }
        if self.join_mode != JoinMode::Off {
            // Every event goes through the joiner, so records leave in the
            // order they came whether or not one of them waits for lines.
            let structured = self.join_mode == JoinMode::Structured && !resniffed;
            let cap = self.config.max_line_bytes;
            if out.len() == start + 1 {
                // One event (all but OTLP envelopes): no detour.
                let event = out.pop().expect("one event");
                let joined = join(&mut self.join, event, structured, cap, out);
                self.stats.count_join(joined);
            } else {
                self.scratch.extend(out.drain(start..));
                for event in self.scratch.drain(..) {
                    let joined = join(&mut self.join, event, structured, cap, out);
                    self.stats.count_join(joined);
                }
            }
        }
        self.parsed(used);
        Ok(())
    }

    /// A plain-text line its parser could not read (`e`): part of the
    /// record before it when it continues it (a stack trace's lines have
    /// no header), else a dead letter.
    fn continuation(
        &mut self,
        raw: &RawRecord,
        trimmed: &[u8],
        e: ParseError,
        out: &mut Vec<Event>,
    ) -> std::result::Result<(), Box<DeadLetter>> {
        if self.join_mode != JoinMode::Plain {
            return Err(self.dead(raw, e));
        }
        // The decoder trimmed the line; indentation is what marks most
        // continuation lines, so the joiner gets it back.
        let lead = trimmed.as_ptr() as usize - raw.bytes.as_ptr() as usize;
        let line = String::from_utf8_lossy(&raw.bytes[..lead + trimmed.len()]);
        let cap = self.config.max_line_bytes;
        let joined = self.join.push_unparsed(&line, cap, out);
        if joined == Joined::No {
            return Err(self.dead(raw, e));
        }
        self.stats.count_join(joined);
        let name = self.parser.as_ref().map_or("auto", |p| p.name());
        self.parsed(name);
        Ok(())
    }

    /// Count one record parsed by format `name`.
    fn parsed(&mut self, name: &'static str) {
        self.stats.parsed += 1;
        if let Some(n) = self.stats.by_format.get_mut(name) {
            *n += 1;
        } else {
            self.stats.by_format.insert(name.to_string(), 1);
        }
    }

    /// Hand over every record held for continuation lines: the end of the
    /// input (replay), or of a bounded run's partition, or a partition idle
    /// for long enough (streaming).
    pub fn flush(&mut self, out: &mut Vec<Event>) {
        self.join.flush(out);
    }

    /// Whether records are held for continuation lines (see
    /// [`Decoder::flush`]).
    pub fn holds(&self) -> bool {
        self.join.holds()
    }

    /// A record of a sniffed origin's sample that its format cannot read
    /// votes for the format it looks like (see [`Sample`]); when that
    /// format now has more votes than the chosen one has records read, the
    /// origin changes to it and the record is read with it. Returns the
    /// format used, or `None` (the record goes on as a misfit).
    ///
    /// Records held for continuation lines were read in the old format:
    /// they leave first, ahead of `start`, which moves past them (the
    /// caller checks and joins `out[start..]`, this record's events).
    fn vote(
        &mut self,
        text: &str,
        raw: &RawRecord,
        out: &mut Vec<Event>,
        start: &mut usize,
    ) -> Option<&'static str> {
        let f = Format::detect(text)?;
        if self.chosen.as_ref() == Some(&f) {
            return None;
        }
        let name = f.name().to_string();
        let rivals = &mut self.sample.rivals;
        let votes = match rivals.iter().position(|(r, _)| *r == name) {
            Some(i) => {
                rivals[i].1 += 1;
                rivals[i].1
            }
            None if rivals.len() < 8 => {
                rivals.push((name.clone(), 1));
                1
            }
            None => return None,
        };
        if votes <= self.sample.fit {
            return None;
        }
        let mut p = f.parser_with(self.default_year, &self.config.fields).ok()?;
        let fresh = out.len();
        if p.parse(text, raw, out).is_err() {
            out.truncate(fresh);
            return None;
        }
        let events: Vec<Event> = out.drain(fresh..).collect();
        self.join.flush(out);
        *start = out.len();
        out.extend(events);
        // The two swap places: the old format keeps the votes it had.
        let old = self.chosen.replace(f).map(|c| c.name().to_string());
        self.sample.rivals.retain(|(r, _)| *r != name);
        if let Some(old) = old {
            self.sample.rivals.push((old, self.sample.fit));
        }
        self.sample.fit = votes;
        tracing::info!(origin = %raw.origin, from = ?self.parser.as_ref().map(|p| p.name()), to = p.name(),
            "format changed: most of the first records fit another");
        let used = p.name();
        self.join_mode = JoinMode::of(used);
        self.parser = Some(p);
        Some(used)
    }

    /// With `mixed_formats`, a record the origin's format cannot read is
    /// sniffed on its own and read with the format it looks like (a Kafka
    /// topic fed by several shippers). Returns the format used, or `None`
    /// (the caller dead-letters with the first error).
    fn resniff(
        &mut self,
        text: &str,
        raw: &RawRecord,
        out: &mut Vec<Event>,
    ) -> Option<&'static str> {
        if !self.config.mixed_formats || self.format != Format::Auto {
            return None;
        }
        let f = Format::detect(text)?;
        let current = self.parser.as_ref().map(|p| p.name());
        let i = match self.others.iter().position(|(n, _)| n == &f) {
            Some(i) => i,
            None => {
                let p = f.parser_with(self.default_year, &self.config.fields).ok()?;
                if Some(p.name()) == current || self.others.len() >= 8 {
                    return None;
                }
                self.others.push((f, p));
                self.others.len() - 1
            }
        };
        let start = out.len();
        let p = &mut self.others[i].1;
        match p.parse(text, raw, out) {
            Ok(()) => Some(p.name()),
            Err(_) => {
                out.truncate(start);
                None
            }
        }
    }

    fn check(&mut self, events: &[Event]) -> std::result::Result<(), ParseError> {
        for e in events {
            if let Some(now) = self.config.reference_time {
                let limit = now.as_millis() + self.config.max_future_secs * 1000;
                if e.timestamp().as_millis() > limit {
                    return Err(ParseError::new(
                        DeadLetterReason::FutureTimestamp,
                        format!(
                            "timestamp {} is more than {}s after {now}",
                            e.timestamp(),
                            self.config.max_future_secs
                        ),
                    ));
                }
            }
            if let Event::Metric(m) = e {
                let cap = |d: String| ParseError::new(DeadLetterReason::CardinalityExceeded, d);
                if m.key.labels.len() > self.config.max_labels_per_sample {
                    return Err(cap(format!(
                        "{} labels on {} (limit {})",
                        m.key.labels.len(),
                        m.key.name,
                        self.config.max_labels_per_sample
                    )));
                }
                if let Some((k, _)) = m
                    .key
                    .labels
                    .iter()
                    .find(|(_, v)| v.len() > self.config.max_label_value_bytes)
                {
                    return Err(cap(format!(
                        "label {k} of {} is over {} bytes",
                        m.key.name, self.config.max_label_value_bytes
                    )));
                }
                let id = self.hasher.hash_one(&m.key.labels);
                let known_names = self.series.len();
                let set = match self.series.get_mut(&m.key.name) {
                    Some(s) => s,
                    None if known_names >= self.config.max_metric_names => {
                        return Err(cap(format!(
                            "more than {} metric names",
                            self.config.max_metric_names
                        )));
                    }
                    None => self.series.entry(m.key.name.clone()).or_default(),
                };
                if !set.contains(&id) {
                    if set.len() >= self.config.max_series_per_metric {
                        return Err(cap(format!(
                            "more than {} series of {}",
                            self.config.max_series_per_metric, m.key.name
                        )));
                    }
                    set.insert(id);
                }
            }
        }
        Ok(())
    }

    /// The input `raw` would have come from could not be read past
    /// `raw.position` (`detail` says why): a dead letter for the rest of it,
    /// counted as one record read, so the totals still add up.
    pub fn unreadable(&mut self, raw: &RawRecord, detail: String) -> Box<DeadLetter> {
        self.stats.read += 1;
        self.dead(raw, ParseError::new(DeadLetterReason::Unreadable, detail))
    }

    fn dead(&mut self, raw: &RawRecord, e: ParseError) -> Box<DeadLetter> {
        self.stats.dead_lettered += 1;
        *self.stats.by_reason.entry(e.reason).or_default() += 1;
        let shown = &raw.bytes[..raw.bytes.len().min(DEAD_LETTER_RAW_MAX)];
        let valid = std::str::from_utf8(&raw.bytes).is_ok();
        Box::new(DeadLetter {
            origin: raw.origin.to_string(),
            position: raw.position,
            partition: raw.partition,
            format: self.format_name().to_string(),
            reason: e.reason,
            detail: e.detail,
            raw: String::from_utf8_lossy(shown).into_owned(),
            raw_len: raw.bytes.len(),
            raw_hex: (!valid).then(|| shown.iter().map(|b| format!("{b:02x}")).collect()),
        })
    }
}

/// Offer a parsed event to `joiner`: a structured record may continue the
/// open record of its stream; a plain-text record has a header, so it
/// starts one.
fn join(
    joiner: &mut Joiner,
    event: Event,
    structured: bool,
    cap: usize,
    out: &mut Vec<Event>,
) -> Joined {
    if structured {
        joiner.push_structured(event, cap, out)
    } else {
        joiner.push_plain(event, out);
        Joined::Started
    }
}

/// What one pass over a record's bytes counts: control bytes (below
/// 0x20 other than tab, the line ends and ESC; or DEL), NUL bytes and
/// ESC bytes (terminal colours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ByteCounts {
    controls: usize,
    nul: usize,
    esc: usize,
}

/// [`ByteCounts`] of `bytes`. Every record passes through here, so the
/// count is written for the vectoriser: branch-free, summed in `u8` lanes
/// over chunks short enough not to overflow them. The plain
/// `filter().count()` took four instructions a byte, a tenth of the
/// decoding of a long JSON record; a `contains` for NUL and another for
/// ESC besides scanned each record twice more (memchr a word at a time:
/// 4% of the instructions of a replay of Kubernetes JSON).
fn byte_counts(bytes: &[u8]) -> ByteCounts {
    let mut total = ByteCounts {
        controls: 0,
        nul: 0,
        esc: 0,
    };
    for chunk in bytes.chunks(255) {
        let (mut n, mut z, mut e) = (0u8, 0u8, 0u8);
        for &b in chunk {
            let low = b < 0x20 && b != b'\t' && b != b'\n' && b != b'\r' && b != 0x1b;
            n += u8::from(low | (b == 0x7f));
            z += u8::from(b == 0);
            e += u8::from(b == 0x1b);
        }
        total.controls += usize::from(n);
        total.nul += usize::from(z);
        total.esc += usize::from(e);
    }
    total
}

/// Why a record is not text, if it is not: a NUL byte, control bytes
/// (other than tab and the escape of terminal colours) in more than 1% of
/// it, or mostly invalid UTF-8 (`lossy` is the text with replacements, when
/// there were any). A log line has none of these; random or binary bytes
/// almost always have one, and otherwise a free-text layout stamped with
/// the transport's time would read them as a message.
fn binary(len: usize, counts: ByteCounts, lossy: Option<&str>) -> Option<String> {
    if counts.nul > 0 {
        return Some("a NUL byte: binary data, not a text record".into());
    }
    let controls = counts.controls;
    if controls > 0 && controls * 100 > len {
        return Some(format!(
            "{controls} control bytes in {len} bytes: binary data, not a text record"
        ));
    }
    if let Some(text) = lossy {
        let invalid = text.chars().filter(|&c| c == '\u{fffd}').count();
        let chars = text.chars().count();
        if invalid >= 2 && invalid * 10 > chars {
            return Some(format!(
                "{invalid} of {chars} characters are not UTF-8: binary data, not a text record"
            ));
        }
    }
    None
}

fn trim_line(b: &[u8]) -> &[u8] {
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let start = b[..end]
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(end);
    &b[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::Level;
    use std::sync::Arc;

    proptest::proptest! {
        /// The vectorised count is the plain definition, on any bytes and
        /// across its 255-byte chunks.
        #[test]
        fn byte_counts_count_what_the_definitions_count(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2000)
        ) {
            let plain = bytes
                .iter()
                .filter(|&&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x1b)) || b == 0x7f)
                .count();
            let c = byte_counts(&bytes);
            proptest::prop_assert_eq!(c.controls, plain);
            proptest::prop_assert_eq!(c.nul, bytes.iter().filter(|&&b| b == 0).count());
            proptest::prop_assert_eq!(c.esc, bytes.iter().filter(|&&b| b == 0x1b).count());
        }
    }

    #[test]
    fn byte_counts_of_every_value_and_a_long_run() {
        let all: Vec<u8> = (0..=255).collect();
        // 0x00-0x1f less tab, LF, CR and ESC, and DEL.
        let c = byte_counts(&all);
        assert_eq!((c.controls, c.nul, c.esc), (32 - 4 + 1, 1, 1));
        assert_eq!(byte_counts(&[1u8; 1000]).controls, 1000);
        // Past a chunk's 255 bytes, no lane overflows.
        let c = byte_counts(&[0u8; 1000]);
        assert_eq!((c.controls, c.nul), (1000, 1000));
    }

    fn rec(n: u64, s: &[u8]) -> RawRecord {
        RawRecord::line(Arc::from("t"), n, s.to_vec())
    }

    fn cfg() -> DecoderConfig {
        DecoderConfig {
            reference_time: Some(Timestamp::parse_rfc3339("2026-01-06T00:00:00Z").unwrap()),
            max_line_bytes: 200,
            max_series_per_metric: 2,
            ..DecoderConfig::default()
        }
    }

    #[test]
    fn a_mixed_origin_reads_each_record_in_its_own_format_only_when_asked() {
        let lines: Vec<&[u8]> = vec![
            br#"{"@timestamp":"2026-01-05T10:00:00Z","log.level":"info","message":"ok","service.name":"a"}"#,
            b"ts=2026-01-05T10:00:01Z level=error msg=boom service=b",
            br#"{"@timestamp":"2026-01-05T10:00:02Z","log.level":"warn","message":"json again"}"#,
            b"\x01 neither",
        ];
        for mixed in [false, true] {
            let mut d = Decoder::new(
                Format::Auto,
                DecoderConfig {
                    mixed_formats: mixed,
                    ..cfg()
                },
            )
            .unwrap();
            let mut out = vec![];
            let dead: Vec<bool> = lines
                .iter()
                .enumerate()
                .map(|(i, l)| d.decode(&rec(i as u64, l), &mut out).is_err())
                .collect();
            assert_eq!(
                dead,
                [false, !mixed, false, true],
                "mixed_formats = {mixed}"
            );
            assert!(d.stats().balanced());
            if mixed {
                assert_eq!(d.stats().by_format.get("logfmt"), Some(&1));
                assert_eq!(d.format_name(), "json", "the origin keeps its format");
            }
        }
    }

    /// OTLP JSON (the Collector's file exporter) sniffed as JSON: a logs
    /// line gives every record with its resource's service, a metrics
    /// line every data point, through the decoder a replay uses.
    #[test]
    fn a_log_line_without_a_time_is_told_apart_from_an_unknown_format() {
        // Python's logging.basicConfig() default layout writes no time.
        let mut d = Decoder::new(Format::Auto, cfg()).unwrap();
        let dl = d
            .decode(&rec(1, b"ERROR:app.db:connection refused"), &mut vec![])
            .unwrap_err();
        assert_eq!(dl.reason, DeadLetterReason::BadTimestamp);
        assert!(dl.detail.contains("no time"), "{}", dl.detail);
        let dl = d
            .decode(&rec(2, b"usage: score.py FAULTS_JSON"), &mut vec![])
            .unwrap_err();
        assert_eq!(dl.reason, DeadLetterReason::UnknownFormat);
    }

    #[test]
    fn an_origin_takes_the_format_most_of_its_first_records_fit() {
        // A stray first line that reads as JSON above a plain log: the
        // log's lines vote plain and win (the first of them, a tie, is
        // dead-lettered), instead of being dead-lettered one by one as not
        // JSON.
        let mut lines: Vec<Vec<u8>> =
            vec![br#"{"time":"2026-01-05T09:59:59Z","msg":"starting","port":8080}"#.to_vec()];
        for i in 0..6 {
            lines.push(format!("2026-01-05 10:00:0{i}.000 INFO inventory: ok {i}").into_bytes());
        }
        let mut d = Decoder::new(Format::Auto, cfg()).unwrap();
        let mut out = vec![];
        for (i, l) in lines.iter().enumerate() {
            let r = d.decode(&rec(i as u64, l), &mut out);
            assert_eq!(r.is_err(), i == 1, "{i} {r:?}");
            if i == 2 {
                // Handed over mid-sample (a partition moving to another
                // consumer), the vote goes on where it was.
                d = Decoder::restore(d.state(), cfg()).unwrap();
            }
        }
        d.flush(&mut out);
        assert_eq!(d.format_name(), "plain");
        assert_eq!((d.stats().dead_lettered, out.len()), (1, 6), "{out:?}");
        // In order, each once: the JSON record held for continuation lines
        // leaves when the format changes, ahead of the first plain one.
        let messages: Vec<&str> = out
            .iter()
            .map(|e| match e {
                Event::Log(r) => r.message.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            messages,
            ["starting", "ok 1", "ok 2", "ok 3", "ok 4", "ok 5"]
        );
        assert_eq!(d.stats().by_format.get("plain"), Some(&5));

        // Once the sample is over, the format stays: a file that turns
        // into another shape later dead-letters what does not fit.
        let mut d = Decoder::new(Format::Auto, cfg()).unwrap();
        let mut out = vec![];
        for i in 0..SNIFF_SAMPLE as u64 {
            let l = br#"{"time":"2026-01-05T10:00:00Z","msg":"ok"}"#;
            d.decode(&rec(i, l), &mut out).unwrap();
        }
        for i in 0..40 {
            let l = format!("2026-01-05 10:00:00.000 INFO inventory: ok {i}");
            let _ = d.decode(&rec(100 + i, l.as_bytes()), &mut out);
        }
        assert_eq!((d.format_name(), d.stats().dead_lettered), ("json", 40));
    }

    #[test]
    fn a_mixed_origin_stays_mixed_after_a_handover() {
        let config = DecoderConfig {
            mixed_formats: true,
            ..cfg()
        };
        let mut d = Decoder::new(Format::Auto, config.clone()).unwrap();
        let mut out = vec![];
        d.decode(
            &rec(
                1,
                br#"{"@timestamp":"2026-01-05T10:00:00Z","message":"ok"}"#,
            ),
            &mut out,
        )
        .unwrap();
        let mut d = Decoder::restore(d.state(), config).unwrap();
        d.decode(
            &rec(2, b"ts=2026-01-05T10:00:01Z level=error msg=boom"),
            &mut out,
        )
        .unwrap();
        d.flush(&mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn a_comment_is_no_evidence_of_a_format() {
        // A Python script (a dataset's scorer beside its data): its `#!`
        // line is a comment to the Prometheus parser; taken as evidence it
        // made the file an exposition and three code lines samples.
        let script: [&[u8]; 5] = [
            b"#!/usr/bin/env python3",
            b"\"\"\"Score the incidents.",
            b"usage: score.py [--window S] FAULTS_JSON",
            b"def main(argv):",
            b"    return 0 if ok else 1",
        ];
        let mut d = Decoder::new(Format::Auto, cfg()).unwrap();
        let mut out = vec![];
        let dead = script
            .iter()
            .enumerate()
            .filter(|(i, l)| d.decode(&rec(*i as u64, l), &mut out).is_err())
            .count();
        assert!(out.is_empty(), "{out:?}");
        assert_eq!((dead, d.format_name()), (4, "auto"));
        assert_eq!(d.stats().by_format.get("comment"), Some(&1));

        // An exposition may open with a comment all the same.
        let exposition: [&[u8]; 3] = [
            b"# scraped from node-1",
            b"# TYPE up gauge",
            b"up{job=\"a\"} 1 1767607200000",
        ];
        let mut d = Decoder::new(Format::Auto, cfg()).unwrap();
        let mut out = vec![];
        for (i, l) in exposition.iter().enumerate() {
            d.decode(&rec(i as u64, l), &mut out).unwrap();
        }
        assert_eq!((out.len(), d.format_name()), (1, "prometheus"));
    }

    #[test]
    fn otlp_envelopes_are_sniffed_and_read_whole() {
        let mut d = Decoder::new(Format::Auto, DecoderConfig::default()).unwrap();
        let mut out = vec![];
        let lines: Vec<&[u8]> = vec![
            br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},"scopeLogs":[{"logRecords":[{"timeUnixNano":"1767607200000000000","severityText":"ERROR","body":{"stringValue":"payment failed"}},{"timeUnixNano":"1767607201000000000","severityNumber":9,"body":{"stringValue":"ok"}}]}]}]}"#,
            br#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},"scopeMetrics":[{"metrics":[{"name":"queue","gauge":{"dataPoints":[{"asInt":"10","timeUnixNano":"1767607200000000000"}]}}]}]}]}"#,
        ];
        for (i, l) in lines.iter().enumerate() {
            d.decode(&rec(i as u64, l), &mut out).unwrap();
        }
        // The last record of a stream waits for what may continue it.
        d.flush(&mut out);
        assert_eq!(d.format_name(), "json");
        let logs: Vec<_> = out
            .iter()
            .filter_map(|e| match e {
                Event::Log(r) => Some((r.service.as_deref(), r.level, r.message.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(
            logs,
            [
                (Some("checkout"), Some(Level::Error), "payment failed"),
                (Some("checkout"), Some(Level::Info), "ok")
            ]
        );
        let metrics: Vec<_> = out
            .iter()
            .filter_map(|e| match e {
                Event::Metric(m) => Some((m.key.name.as_str(), m.value)),
                _ => None,
            })
            .collect();
        assert_eq!(metrics, [("queue", 10.0)]);
        assert!(d.stats().balanced());
    }

    #[test]
    fn every_record_is_accounted_for_with_a_reason() {
        let mut d = Decoder::new(Format::Auto, cfg()).unwrap();
        let lines: Vec<&[u8]> = vec![
            b"ts=2026-01-05T10:00:00Z level=info msg=ok",
            b"",
            b"ts=2026-01-05T10:00:01Z level=info msg=\"open",
            b"ts=2026-01-05T10:00:02Z level=info msg=caf\xe9",
            b"ts=2031-01-05T10:00:02Z level=info msg=later",
            b"ts=yesterday level=info msg=x",
            &[b'x'; 300],
        ];
        let mut out = vec![];
        let mut dead = vec![];
        for (i, l) in lines.iter().enumerate() {
            if let Err(dl) = d.decode(&rec(i as u64 + 1, l), &mut out) {
                dead.push(dl);
            }
        }
        let s = d.stats();
        assert!(s.balanced());
        assert_eq!((s.read, s.parsed, s.dead_lettered, s.blank), (6, 2, 4, 1));
        assert_eq!(s.utf8_replaced, 1);
        assert_eq!(d.format_name(), "logfmt");
        let reasons: Vec<_> = dead.iter().map(|d| d.reason).collect();
        assert_eq!(
            reasons,
            vec![
                DeadLetterReason::InvalidLogfmt,
                DeadLetterReason::FutureTimestamp,
                DeadLetterReason::BadTimestamp,
                DeadLetterReason::LineTooLong
            ]
        );
        assert_eq!(dead[0].position, 3);
        assert_eq!(dead[3].raw_len, 300);
    }

    /// Issue #21, finding 6: random bytes on a Kafka topic (where the
    /// transport gives every record a time) were read as log records of
    /// service `unknown` by the layouts that take free text. A text record
    /// with a stray colour escape or one Latin-1 byte is still read.
    #[test]
    fn random_bytes_are_dead_lettered_not_read_as_text() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let first = br#"{"@timestamp":"2026-01-05T10:00:00Z","log.level":"info","message":"ok","service.name":"a"}"#;
        for (format, mixed) in [
            (Format::Auto, true),
            (Format::Auto, false),
            (Format::from_name("plain").unwrap(), false),
            (Format::from_name("<Content>").unwrap(), false),
            (Format::from_name("logfmt").unwrap(), false),
            (Format::from_name("syslog").unwrap(), false),
        ] {
            let mut d = Decoder::new(
                format.clone(),
                DecoderConfig {
                    mixed_formats: mixed,
                    ..cfg()
                },
            )
            .unwrap();
            let mut out = vec![];
            if format == Format::Auto {
                d.decode(&rec(0, first), &mut out).unwrap();
            }
            let before = out.len();
            for i in 0..7000u64 {
                let len = 16 + (next() % 185) as usize;
                let bytes: Vec<u8> = (0..len).map(|_| (next() >> 24) as u8).collect();
                let mut r = rec(i + 1, &bytes);
                r.transport_time = Some(Timestamp::parse_rfc3339("2026-01-05T10:00:00Z").unwrap());
                let _ = d.decode(&r, &mut out);
            }
            let read: Vec<String> = out[before..]
                .iter()
                .map(|e| format!("{e:?}"))
                .take(3)
                .collect();
            assert!(
                out.len() == before,
                "{format:?}: {} random records read as events, e.g. {read:?}",
                out.len() - before
            );
            assert!(d.stats().balanced());
        }
        let mut d = Decoder::new(Format::from_name("logfmt").unwrap(), cfg()).unwrap();
        let mut out = vec![];
        for (i, l) in [
            &b"ts=2026-01-05T10:00:00Z level=info msg=\"\x1b[31mred\x1b[0m\""[..],
            b"ts=2026-01-05T10:00:01Z level=info msg=caf\xe9 service=a",
            b"ts=2026-01-05T10:00:02Z level=info msg=\"tab\there\"",
        ]
        .iter()
        .enumerate()
        {
            d.decode(&rec(i as u64, l), &mut out)
                .unwrap_or_else(|e| panic!("{l:?}: {e:?}"));
        }
        let dl = d.decode(&rec(9, b"ts=2026-01-05T10:00:03Z msg=a\x00b"), &mut out);
        assert_eq!(dl.unwrap_err().reason, DeadLetterReason::Binary);
    }

    #[test]
    fn invalid_utf8_in_a_dead_letter_keeps_the_bytes() {
        let mut d = Decoder::new(Format::Json, cfg()).unwrap();
        let dl = d.decode(&rec(1, b"{\xff"), &mut vec![]).unwrap_err();
        assert_eq!(dl.raw_hex.as_deref(), Some("7bff"));
        assert_eq!(dl.reason, DeadLetterReason::InvalidJson);
    }

    #[test]
    fn series_cardinality_is_capped() {
        let mut d = Decoder::new(Format::Prometheus, cfg()).unwrap();
        let mut out = vec![];
        let mut dead = 0;
        for i in 0..5 {
            let l = format!("reqs{{user=\"u{i}\"}} 1 1767607200000");
            if d.decode(&rec(i, l.as_bytes()), &mut out).is_err() {
                dead += 1;
            }
        }
        // A known series still passes after the cap is reached.
        d.decode(&rec(9, b"reqs{user=\"u0\"} 2 1767607215000"), &mut out)
            .unwrap();
        assert_eq!(dead, 3);
        assert_eq!(out.len(), 3);
        assert_eq!(
            d.stats().by_reason[&DeadLetterReason::CardinalityExceeded],
            3
        );
    }

    #[test]
    fn unknown_formats_are_dead_lettered_until_one_fits() {
        let mut d = Decoder::new(Format::Auto, cfg()).unwrap();
        let mut out = vec![];
        let dl = d.decode(&rec(1, b"hello there"), &mut out).unwrap_err();
        assert_eq!(dl.reason, DeadLetterReason::UnknownFormat);
        d.decode(
            &rec(2, br#"{"timestamp":1767607200,"message":"hi"}"#),
            &mut out,
        )
        .unwrap();
        assert_eq!(d.format_name(), "json");
        assert!(d.stats().balanced());
    }
}
