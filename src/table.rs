//! Tables in and out of `remedy replay`, through polars.
//!
//! Datasets often arrive as tables rather than log lines: a warehouse export
//! of metric samples, a NAB-style `timestamp,value` series, a Parquet file of
//! log events. A `.csv`, `.csv.gz` or `.parquet` input is read with polars
//! (typed columns, Parquet decoding, schema inference), sorted by its time
//! column and handed to the engine row by row, each row rendered as the JSON
//! record the decoder already knows: a prometheus-kafka-adapter sample when
//! the table has a `value` column, a JSON log record when it has a message.
//! Going through the decoder keeps one set of rules for field names,
//! timestamps and dead letters: a row with an unreadable time or value is
//! dead-lettered, with its table and row number, like any bad line.
//!
//! The other direction: `--tables csv|parquet` writes anomalies, incidents,
//! actions and the evaluation as flat tables for notebooks and BI tools, and
//! the evaluation's per-class breakdown is a polars aggregation.

use anyhow::{bail, Context};
use engine::evaluate::{Evaluation, FaultResult};
use ingest::{Format, RawRecord};
use models::{Action, ActionStatus, Anomaly, Incident};
use polars::prelude::*;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Names accepted for the time column, in order of preference.
const TIME_COLUMNS: &[&str] = &["timestamp", "@timestamp", "time", "ts", "datetime"];
/// Names accepted for a metric's name column.
const NAME_COLUMNS: &[&str] = &["metric", "__name__", "name", "metric_name"];
/// Names accepted for a log message column.
const MESSAGE_COLUMNS: &[&str] = &["message", "msg", "log", "body", "content"];
/// The sort key added to a table (never rendered).
const ORDER: &str = "__remedy_order_ms";
/// The original row number, kept through the sort for dead letters.
const ROW: &str = "__remedy_row";

/// Whether `path` names a table rather than a file of lines.
pub fn is_table(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    name.ends_with(".csv") || name.ends_with(".csv.gz") || name.ends_with(".parquet")
}

/// Whether `path` names a Parquet file.
pub fn is_parquet(path: &Path) -> bool {
    path.to_string_lossy()
        .to_ascii_lowercase()
        .ends_with(".parquet")
}

/// What the rows of a table are.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// Metric samples: `name` from a column or the file's name.
    Metric { name: MetricName },
    /// Log records.
    Log,
}

#[derive(Debug, Clone, PartialEq)]
enum MetricName {
    Column(String),
    Fixed(String),
}

/// A table read whole and sorted by time, yielding one record per row.
pub struct TableRecords {
    origin: Arc<str>,
    kind: Kind,
    time: String,
    df: DataFrame,
    next: usize,
}

impl TableRecords {
    /// Read `path` (CSV with a header, optionally gzipped, or Parquet).
    /// Fails naming the file and what is missing when the table is neither
    /// metric samples nor log records: nothing has been analysed yet then.
    pub fn open(path: &Path) -> anyhow::Result<TableRecords> {
        let df = read(path)?;
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        let find = |wanted: &[&str]| {
            wanted
                .iter()
                .find_map(|w| names.iter().find(|n| n.eq_ignore_ascii_case(w)).cloned())
        };
        let Some(time) = find(TIME_COLUMNS) else {
            bail!(
                "{}: no time column (expected one named {}); its columns are {}",
                path.display(),
                TIME_COLUMNS.join(", "),
                names.join(", ")
            );
        };
        let kind = if let Some(v) = find(&["value"]) {
            if v != "value" {
                bail!("{}: name the value column `value`", path.display());
            }
            match find(NAME_COLUMNS) {
                Some(c) => Kind::Metric {
                    name: MetricName::Column(c),
                },
                None => Kind::Metric {
                    name: MetricName::Fixed(metric_name_from(path)),
                },
            }
        } else if find(MESSAGE_COLUMNS).is_some() {
            Kind::Log
        } else {
            bail!(
                "{}: neither metric samples (a `value` column) nor log records (a column named {}); its columns are {}",
                path.display(),
                MESSAGE_COLUMNS.join(", "),
                names.join(", ")
            );
        };
        let df = sort_by_time(df, &time)
            .with_context(|| format!("{}: cannot order the rows by {time}", path.display()))?;
        Ok(TableRecords {
            origin: Arc::from(path.display().to_string()),
            kind,
            time,
            df,
            next: 0,
        })
    }

    /// The decoder format of the rendered rows.
    pub fn format(&self) -> Format {
        match self.kind {
            Kind::Metric { .. } => Format::PromJson,
            Kind::Log => Format::Json,
        }
    }

    /// Rows in the table.
    #[cfg(test)]
    pub fn rows(&self) -> usize {
        self.df.height()
    }

    /// Row `i` (in time order) as a JSON record and its original row number.
    fn render(&self, i: usize) -> anyhow::Result<(u64, Vec<u8>)> {
        let mut fields = Map::new();
        let mut labels = Map::new();
        let row = self.df.column(ROW)?.get(i)?.extract::<u64>().unwrap_or(0);
        let order = self.df.column(ORDER)?.get(i)?.extract::<i64>();
        for col in self.df.columns() {
            let name = col.name().as_str();
            if name == ROW || name == ORDER {
                continue;
            }
            let v = col.get(i)?;
            if name == self.time {
                // The time the sort used, normalised; an unreadable one is
                // passed on as it was so the dead letter shows it.
                let t = match order {
                    Some(ms) => Value::String(models::Timestamp::from_millis(ms).to_rfc3339()),
                    None => json(&v),
                };
                fields.insert("timestamp".into(), t);
                continue;
            }
            match &self.kind {
                Kind::Metric { name: n } => {
                    if name == "value" {
                        fields.insert("value".into(), number_or_text(&v));
                    } else if matches!(n, MetricName::Column(c) if c == name) {
                        fields.insert("name".into(), json(&v));
                    } else if !v.is_null() {
                        labels.insert(name.to_string(), Value::String(text(&v)));
                    }
                }
                Kind::Log => {
                    if !v.is_null() {
                        fields.insert(name.to_string(), json(&v));
                    }
                }
            }
        }
        if let Kind::Metric { name } = &self.kind {
            if let MetricName::Fixed(n) = name {
                fields.insert("name".into(), Value::String(n.clone()));
            }
            fields.insert("labels".into(), Value::Object(labels));
        }
        Ok((row + 1, serde_json::to_vec(&Value::Object(fields))?))
    }
}

impl engine::Input for TableRecords {
    fn origin(&self) -> Option<Arc<str>> {
        Some(self.origin.clone())
    }

    /// A table's rows are rendered as the JSON records of its kind; the
    /// file's own name would otherwise be sniffed.
    fn format(&self) -> Option<Format> {
        Some(TableRecords::format(self))
    }

    /// Read whole when opened: nothing is held open.
    fn park(&mut self) -> bool {
        true
    }

    fn next_record(&mut self) -> Option<anyhow::Result<RawRecord>> {
        if self.next >= self.df.height() {
            return None;
        }
        let i = self.next;
        self.next += 1;
        Some(
            self.render(i)
                .map(|(row, bytes)| RawRecord::line(self.origin.clone(), row, bytes)),
        )
    }
}

/// Read a table with polars.
fn read(path: &Path) -> anyhow::Result<DataFrame> {
    let name = path.to_string_lossy().to_ascii_lowercase();
    let df = if name.ends_with(".parquet") {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        anyhow::Context::with_context(ParquetReader::new(file).finish(), || {
            format!("{} is not a readable Parquet file", path.display())
        })?
    } else {
        let bytes = if name.ends_with(".gz") {
            let mut out = Vec::new();
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(file), &mut out)
                .with_context(|| format!("{} is not gzip", path.display()))?;
            out
        } else {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        };
        let read = CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(10_000))
            .into_reader_with_file_handle(std::io::Cursor::new(bytes))
            .finish();
        anyhow::Context::with_context(read, || {
            format!(
                    "{} is not a CSV table with a header row (a file of log lines? give it another extension)",
                    path.display()
                )
        })?
    };
    Ok(df)
}

/// The table with its original row numbers, ordered by event time (stable;
/// rows whose time cannot be read go last, to be dead-lettered).
fn sort_by_time(df: DataFrame, time: &str) -> anyhow::Result<DataFrame> {
    let col = df.column(time)?;
    let ms: Vec<Option<i64>> = match col.dtype() {
        DataType::Datetime(unit, _) => {
            let per_ms = match unit {
                TimeUnit::Nanoseconds => 1_000_000,
                TimeUnit::Microseconds => 1_000,
                TimeUnit::Milliseconds => 1,
            };
            col.cast(&DataType::Int64)?
                .i64()?
                .iter()
                .map(|v| v.map(|v| v.div_euclid(per_ms)))
                .collect()
        }
        DataType::String => col
            .str()?
            .iter()
            .map(|s| s.and_then(ingest::parse::fields::parse_timestamp))
            .map(|t| t.map(|t| t.as_millis()))
            .collect(),
        d if d.is_primitive_numeric() => col
            .cast(&DataType::Float64)?
            .f64()?
            .iter()
            .map(|v| {
                v.and_then(|x| {
                    ingest::parse::fields::parse_timestamp_value(&models::FieldValue::Float(x))
                })
                .map(|t| t.as_millis())
            })
            .collect(),
        other => bail!("the time column {time} holds {other}, not times"),
    };
    let mut df = df.with_row_index(ROW.into(), None)?;
    df.with_column(Column::new(ORDER.into(), ms))?;
    let df = df.sort(
        [ORDER],
        SortMultipleOptions::default()
            .with_maintain_order(true)
            .with_nulls_last(true),
    )?;
    Ok(df)
}

/// A Prometheus-style metric name from a file name: `nyc_taxi.csv` ->
/// `nyc_taxi`.
fn metric_name_from(path: &Path) -> String {
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem
        .trim_end_matches(".gz")
        .trim_end_matches(".csv")
        .trim_end_matches(".parquet");
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// A cell as JSON: numbers stay numbers, times become RFC 3339.
fn json(v: &AnyValue) -> Value {
    match v {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => Value::Bool(*b),
        AnyValue::String(s) => Value::String(s.to_string()),
        AnyValue::StringOwned(s) => Value::String(s.to_string()),
        v if v.is_integer() => v
            .extract::<i64>()
            .map(Value::from)
            .unwrap_or_else(|| Value::String(text(v))),
        v if v.is_float() => match v.extract::<f64>() {
            Some(x) if x.is_finite() => Value::from(x),
            _ => Value::String(text(v)),
        },
        _ => Value::String(text(v)),
    }
}

/// A sample value: a number when finite, else its text (`NaN`, `+Inf`),
/// which the decoder dead-letters as a non-finite value.
fn number_or_text(v: &AnyValue) -> Value {
    match v.extract::<f64>() {
        Some(x) if x.is_finite() => Value::from(x),
        _ if v.is_null() => Value::Null,
        _ => Value::String(text(v)),
    }
}

fn text(v: &AnyValue) -> String {
    match v {
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        AnyValue::Float64(x) if x.is_nan() => "NaN".into(),
        AnyValue::Float64(x) if x.is_infinite() => if *x > 0.0 { "+Inf" } else { "-Inf" }.into(),
        AnyValue::Float32(x) if x.is_nan() => "NaN".into(),
        AnyValue::Float32(x) if x.is_infinite() => if *x > 0.0 { "+Inf" } else { "-Inf" }.into(),
        other => other.to_string(),
    }
}

/// Table formats `--tables` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TableFormat {
    /// Comma-separated values with a header.
    Csv,
    /// Apache Parquet (zstd-compressed).
    Parquet,
}

impl TableFormat {
    fn extension(self) -> &'static str {
        match self {
            TableFormat::Csv => "csv",
            TableFormat::Parquet => "parquet",
        }
    }
}

/// One row per anomaly.
pub fn anomalies_frame(anomalies: &[Anomaly]) -> anyhow::Result<DataFrame> {
    let s = |f: &dyn Fn(&Anomaly) -> Option<String>| -> Vec<Option<String>> {
        anomalies.iter().map(f).collect()
    };
    let n = |f: &dyn Fn(&Anomaly) -> f64| -> Vec<f64> { anomalies.iter().map(f).collect() };
    Ok(DataFrame::new_infer_height(vec![
        times("timestamp", anomalies.iter().map(|a| a.timestamp)),
        Column::new(
            "signal_kind".into(),
            s(&|a| Some(a.signal.kind.as_str().into())),
        ),
        Column::new("signal".into(), s(&|a| Some(a.signal.name.clone()))),
        Column::new("service".into(), s(&|a| a.signal.service.clone())),
        Column::new("host".into(), s(&|a| a.signal.host.clone())),
        Column::new("container".into(), s(&|a| a.signal.container.clone())),
        Column::new("kind".into(), s(&|a| Some(a.kind.as_str().into()))),
        Column::new("detector".into(), s(&|a| Some(a.detector.clone()))),
        Column::new("observed".into(), n(&|a| a.observed)),
        Column::new("expected".into(), n(&|a| a.expected.expected)),
        Column::new("lower".into(), n(&|a| a.expected.lower)),
        Column::new("upper".into(), n(&|a| a.expected.upper)),
        Column::new("score".into(), n(&|a| a.score)),
        Column::new("detail".into(), s(&|a| Some(a.detail.clone()))),
    ])?)
}

/// One row per incident, with its top root cause.
pub fn incidents_frame(incidents: &[Incident]) -> anyhow::Result<DataFrame> {
    let top = |i: &Incident| i.root_causes.first().cloned();
    let s = |f: &dyn Fn(&Incident) -> Option<String>| -> Vec<Option<String>> {
        incidents.iter().map(f).collect()
    };
    Ok(DataFrame::new_infer_height(vec![
        Column::new("id".into(), s(&|i| Some(i.id.clone()))),
        times("start", incidents.iter().map(|i| i.start)),
        Column::new(
            "end".into(),
            incidents
                .iter()
                .map(|i| i.end.map(|t| t.as_millis()))
                .collect::<Vec<_>>(),
        )
        .cast(&DataType::Datetime(
            TimeUnit::Milliseconds,
            Some(TimeZone::UTC),
        ))?,
        Column::new("status".into(), s(&|i| Some(i.status.as_str().into()))),
        Column::new(
            "anomalies".into(),
            incidents
                .iter()
                .map(|i| i.anomalies.len() as u32)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "root_cause".into(),
            s(&|i| top(i).map(|r| r.class.as_str().into())),
        ),
        Column::new(
            "confidence".into(),
            incidents
                .iter()
                .map(|i| top(i).map(|r| r.confidence))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "service".into(),
            s(&|i| top(i).and_then(|r| r.target.service)),
        ),
        Column::new("host".into(), s(&|i| top(i).and_then(|r| r.target.host))),
        Column::new(
            "container".into(),
            s(&|i| top(i).and_then(|r| r.target.container)),
        ),
    ])?)
}

/// One row per planned action.
pub fn actions_frame(actions: &[Action]) -> anyhow::Result<DataFrame> {
    let s = |f: &dyn Fn(&Action) -> Option<String>| -> Vec<Option<String>> {
        actions.iter().map(f).collect()
    };
    Ok(DataFrame::new_infer_height(vec![
        Column::new("id".into(), s(&|a| Some(a.id.clone()))),
        Column::new("incident_id".into(), s(&|a| Some(a.incident_id.clone()))),
        times("planned_at", actions.iter().map(|a| a.planned_at)),
        Column::new("class".into(), s(&|a| Some(a.class.as_str().into()))),
        Column::new("action".into(), s(&|a| Some(a.kind.name().into()))),
        Column::new("status".into(), s(&|a| Some(a.status.state().into()))),
        Column::new(
            "reason".into(),
            s(&|a| match &a.status {
                ActionStatus::Failed { reason } | ActionStatus::Skipped { reason } => {
                    Some(reason.clone())
                }
                _ => None,
            }),
        ),
        Column::new(
            "dry_run".into(),
            actions.iter().map(|a| a.dry_run).collect::<Vec<_>>(),
        ),
        Column::new(
            "requires_approval".into(),
            actions
                .iter()
                .map(|a| a.requires_approval)
                .collect::<Vec<_>>(),
        ),
        Column::new("service".into(), s(&|a| a.target.service.clone())),
        Column::new("host".into(), s(&|a| a.target.host.clone())),
        Column::new("container".into(), s(&|a| a.target.container.clone())),
    ])?)
}

/// One row per labelled fault.
pub fn evaluation_frame(per_fault: &[FaultResult]) -> anyhow::Result<DataFrame> {
    let s = |f: &dyn Fn(&FaultResult) -> Option<String>| -> Vec<Option<String>> {
        per_fault.iter().map(f).collect()
    };
    Ok(DataFrame::new_infer_height(vec![
        Column::new("fault".into(), s(&|f| Some(f.fault.clone()))),
        Column::new("class".into(), s(&|f| Some(f.class.clone()))),
        Column::new("incident".into(), s(&|f| f.incident.clone())),
        Column::new("found_class".into(), s(&|f| f.found_class.clone())),
        Column::new(
            "detect_seconds".into(),
            per_fault
                .iter()
                .map(|f| f.detect_seconds)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "top1".into(),
            per_fault.iter().map(|f| f.top1).collect::<Vec<_>>(),
        ),
    ])?)
}

/// The evaluation per root-cause class: faults, detected, top-1 right and
/// mean time to detect, a polars aggregation of [`evaluation_frame`].
pub fn evaluation_by_class(per_fault: &[FaultResult]) -> anyhow::Result<DataFrame> {
    Ok(evaluation_frame(per_fault)?
        .lazy()
        .group_by_stable([col("class")])
        .agg([
            len().alias("faults"),
            col("incident").is_not_null().sum().alias("detected"),
            col("top1").sum().alias("top1"),
            col("detect_seconds").mean().alias("mttd_seconds"),
            col("detect_seconds").max().alias("slowest_seconds"),
        ])
        .sort(["class"], SortMultipleOptions::default())
        .collect()?)
}

/// Print [`evaluation_by_class`].
pub fn print_by_class(w: &mut dyn std::io::Write, e: &Evaluation) -> anyhow::Result<()> {
    let df = evaluation_by_class(&e.per_fault)?;
    writeln!(
        w,
        "  by class: faults, detected, top-1 right, mean time to detect"
    )?;
    let class = df.column("class")?.str()?.clone();
    let count = |name: &str| -> anyhow::Result<UInt64Chunked> {
        Ok(df.column(name)?.cast(&DataType::UInt64)?.u64()?.clone())
    };
    let (faults, detected, top1) = (count("faults")?, count("detected")?, count("top1")?);
    let mttd = df
        .column("mttd_seconds")?
        .cast(&DataType::Float64)?
        .f64()?
        .clone();
    for i in 0..df.height() {
        writeln!(
            w,
            "    {:<19} {:>2} {:>2} {:>2}  {}",
            class.get(i).unwrap_or(""),
            faults.get(i).unwrap_or(0),
            detected.get(i).unwrap_or(0),
            top1.get(i).unwrap_or(0),
            mttd.get(i).map_or("-".to_string(), |s| format!("{s:.0}s")),
        )?;
    }
    Ok(())
}

/// Write the run's tables into `dir` as `anomalies`, `incidents`, `actions`
/// and, with labels, `evaluation` and `evaluation_by_class`. Returns the
/// files written.
pub fn write_tables(
    dir: &Path,
    format: TableFormat,
    anomalies: &[Anomaly],
    incidents: &[Incident],
    actions: &[Action],
    evaluation: Option<&Evaluation>,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut frames = vec![
        ("anomalies", anomalies_frame(anomalies)?),
        ("incidents", incidents_frame(incidents)?),
        ("actions", actions_frame(actions)?),
    ];
    if let Some(e) = evaluation {
        frames.push(("evaluation", evaluation_frame(&e.per_fault)?));
        frames.push(("evaluation_by_class", evaluation_by_class(&e.per_fault)?));
    }
    let mut written = Vec::new();
    for (name, mut df) in frames {
        let path = dir.join(format!("{name}.{}", format.extension()));
        let mut file = crate::output::AtomicFile::create(&path)?;
        let written_ok = match format {
            TableFormat::Csv => CsvWriter::new(&mut file)
                .include_header(true)
                // RFC 3339, as in the JSON-lines outputs.
                .with_datetime_format(Some("%Y-%m-%dT%H:%M:%S%.3fZ".into()))
                .finish(&mut df),
            TableFormat::Parquet => ParquetWriter::new(&mut file)
                .with_compression(ParquetCompression::Zstd(None))
                .finish(&mut df)
                .map(|_| ()),
        };
        anyhow::Context::with_context(written_ok, || format!("cannot write {}", path.display()))?;
        file.commit()?;
        written.push(path);
    }
    Ok(written)
}

/// Milliseconds as a UTC datetime column's values.
fn times(name: &str, ts: impl Iterator<Item = models::Timestamp>) -> Column {
    let ms: Vec<i64> = ts.map(|t| t.as_millis()).collect();
    Column::new(name.into(), ms)
        .cast(&DataType::Datetime(
            TimeUnit::Milliseconds,
            Some(TimeZone::UTC),
        ))
        .expect("i64 casts to datetime")
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::Input;
    use engine::{DeadLetterSink, Engine, EngineSettings};
    use ingest::DeadLetter;
    use models::Event;

    #[derive(Default)]
    struct Letters(Vec<DeadLetter>);
    impl DeadLetterSink for Letters {
        fn put(&mut self, letter: &DeadLetter) -> anyhow::Result<()> {
            self.0.push(letter.clone());
            Ok(())
        }
    }

    /// Every row of a table through the decoder, as replay sends them.
    fn decode(t: &mut TableRecords) -> (Vec<Event>, Vec<DeadLetter>, Vec<u64>) {
        let mut p = Engine::new(EngineSettings::for_run()).unwrap();
        p.set_origin_format(t.origin.clone(), TableRecords::format(t))
            .unwrap();
        let (mut events, mut dead, mut rows) = (Vec::new(), Letters::default(), Vec::new());
        while let Some(raw) = t.next_record() {
            let raw = raw.unwrap();
            rows.push(raw.position);
            p.decode(&raw, &mut dead, &mut events).unwrap();
        }
        // The end of the input: what the decoder held for continuation
        // lines (an error row may be followed by its stack trace).
        p.flush(&t.origin, &mut events);
        (events, dead.0, rows)
    }

    #[test]
    fn a_metric_table_is_read_in_time_order_and_bad_rows_are_dead_lettered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("samples.csv");
        std::fs::write(
            &path,
            "timestamp,metric,service,value\n\
             2026-01-05T10:00:30Z,cpu_usage,api,0.50\n\
             2026-01-05T10:00:00Z,cpu_usage,api,0.25\n\
             not a time,cpu_usage,api,0.75\n\
             2026-01-05T10:00:15Z,cpu_usage,web,NaN\n",
        )
        .unwrap();
        let mut t = TableRecords::open(&path).unwrap();
        assert_eq!((t.rows(), t.format()), (4, Format::PromJson));
        let (events, dead, rows) = decode(&mut t);
        // Sorted by time; the unreadable time goes last; row numbers are
        // the table's own.
        assert_eq!(rows, vec![2, 4, 1, 3]);
        let samples: Vec<(i64, f64, Option<&str>)> = events
            .iter()
            .map(|e| match e {
                Event::Metric(m) => (
                    m.timestamp.as_millis() % 60_000,
                    m.value,
                    m.key.label("service"),
                ),
                other => panic!("not a sample: {other:?}"),
            })
            .collect();
        // NaN is a sample, as in the text format (the analysis treats it
        // as missing); only the unreadable time is a dead letter.
        assert_eq!(samples.len(), 3, "{samples:?}");
        assert_eq!(
            (samples[0], samples[2]),
            ((0, 0.25, Some("api")), (30_000, 0.5, Some("api")))
        );
        assert_eq!((samples[1].0, samples[1].2), (15_000, Some("web")));
        assert!(samples[1].1.is_nan());
        let reasons: Vec<(&str, u64)> = dead
            .iter()
            .map(|d| (d.reason.as_str(), d.position))
            .collect();
        assert_eq!(reasons, vec![("bad_timestamp", 3)], "{dead:?}");
        assert!(dead.iter().all(|d| *d.origin == path.display().to_string()));
    }

    #[test]
    fn a_series_without_a_name_column_is_named_after_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nyc-taxi.csv");
        std::fs::write(
            &path,
            "timestamp,value\n2014-07-01 00:00:00,10844\n2014-07-01 00:30:00,8127\n",
        )
        .unwrap();
        let mut t = TableRecords::open(&path).unwrap();
        let (events, dead, _) = decode(&mut t);
        assert!(dead.is_empty(), "{dead:?}");
        let names: Vec<_> = events
            .iter()
            .map(|e| match e {
                Event::Metric(m) => (m.key.name.as_str(), m.value),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(names, vec![("nyc_taxi", 10844.0), ("nyc_taxi", 8127.0)]);
    }

    #[test]
    fn a_parquet_log_table_becomes_log_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs.parquet");
        let mut df = df!(
            "time" => [1_767_607_260_000i64, 1_767_607_200_000],
            "level" => ["ERROR", "info"],
            "service" => ["checkout", "checkout"],
            "message" => ["payment failed for order 42", "started"],
            "latency_ms" => [Some(812.5), None],
        )
        .unwrap();
        ParquetWriter::new(std::fs::File::create(&path).unwrap())
            .finish(&mut df)
            .unwrap();
        let mut t = TableRecords::open(&path).unwrap();
        assert_eq!(t.format(), Format::Json);
        let (events, dead, rows) = decode(&mut t);
        assert!(dead.is_empty(), "{dead:?}");
        assert_eq!(rows, vec![2, 1]);
        let logs: Vec<_> = events
            .iter()
            .map(|e| match e {
                Event::Log(r) => (
                    r.timestamp.as_millis(),
                    r.level.map(|l| l.as_str()),
                    r.service.as_deref(),
                    r.message.as_str(),
                ),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            logs,
            vec![
                (1_767_607_200_000, Some("info"), Some("checkout"), "started"),
                (
                    1_767_607_260_000,
                    Some("error"),
                    Some("checkout"),
                    "payment failed for order 42"
                ),
            ]
        );
    }

    #[test]
    fn a_table_that_is_neither_says_what_it_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let no_time = dir.path().join("a.csv");
        std::fs::write(&no_time, "when,value\n1,2\n").unwrap();
        let e = TableRecords::open(&no_time).err().unwrap().to_string();
        assert!(
            e.contains("no time column") && e.contains("when, value"),
            "{e}"
        );
        let neither = dir.path().join("b.csv");
        std::fs::write(&neither, "timestamp,count\n1,2\n").unwrap();
        let e = TableRecords::open(&neither).err().unwrap().to_string();
        assert!(
            e.contains("neither metric samples") && e.contains("timestamp, count"),
            "{e}"
        );
        let broken = dir.path().join("c.parquet");
        std::fs::write(&broken, "not parquet").unwrap();
        let e = format!("{:#}", TableRecords::open(&broken).err().unwrap());
        assert!(e.contains("not a readable Parquet file"), "{e}");
    }

    fn fault(id: &str, class: &str, secs: Option<f64>, top1: bool) -> FaultResult {
        FaultResult {
            fault: id.into(),
            class: class.into(),
            incident: secs.map(|_| format!("inc-{id}")),
            found_class: secs.map(|_| class.into()),
            detect_seconds: secs,
            top1,
        }
    }

    #[test]
    fn the_evaluation_by_class_counts_and_averages_per_class() {
        let per_fault = vec![
            fault("f1", "memory_leak", Some(180.0), true),
            fault("f2", "disk_pressure", Some(30.0), true),
            fault("f3", "memory_leak", Some(60.0), false),
            fault("f4", "disk_pressure", None, false),
        ];
        let df = evaluation_by_class(&per_fault).unwrap();
        let col = |n: &str| df.column(n).unwrap().cast(&DataType::Float64).unwrap();
        let classes: Vec<_> = df
            .column("class")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .flatten()
            .collect();
        assert_eq!(classes, vec!["disk_pressure", "memory_leak"]);
        let get = |n: &str| -> Vec<Option<f64>> { col(n).f64().unwrap().iter().collect() };
        assert_eq!(get("faults"), vec![Some(2.0), Some(2.0)]);
        assert_eq!(get("detected"), vec![Some(1.0), Some(2.0)]);
        assert_eq!(get("top1"), vec![Some(1.0), Some(1.0)]);
        assert_eq!(get("mttd_seconds"), vec![Some(30.0), Some(120.0)]);
    }
}
