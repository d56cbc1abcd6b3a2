//! The binary's findings sinks: replay's JSON-lines directory and flat
//! tables. The store (`store::Store`) and the streaming service's output
//! topics (`stream::kafka`) implement the same [`FindingsSink`], so a
//! command picks its outputs and hands each the same [`Findings`].

use crate::output::{AtomicFile, JsonLines};
use engine::{Findings, FindingsSink};
use std::io::Write;
use std::path::PathBuf;

/// `anomalies.jsonl`, `incidents.jsonl`, `actions.jsonl` (with what
/// executing each reported), `audit.jsonl` and `summary.json` in a
/// directory, each written whole to a temporary file and renamed into
/// place: a reader never sees half a file.
pub struct JsonlDir {
    /// The directory (created by the caller before the run, so a bad path
    /// fails first).
    pub dir: PathBuf,
}

impl FindingsSink for JsonlDir {
    fn write(&mut self, found: &Findings) -> anyhow::Result<()> {
        fn lines<T: serde::Serialize>(
            dir: &std::path::Path,
            name: &str,
            rows: impl Iterator<Item = anyhow::Result<T>>,
        ) -> anyhow::Result<()> {
            let mut f = JsonLines::create(dir.join(name))?;
            for r in rows {
                f.write(&r?)?;
            }
            f.commit()
        }
        // Through `serde_json::Value`, whose objects keep their keys
        // sorted: the files' bytes do not depend on field order in code.
        fn value<T: serde::Serialize>(v: &T) -> anyhow::Result<serde_json::Value> {
            Ok(serde_json::to_value(v)?)
        }
        lines(
            &self.dir,
            "anomalies.jsonl",
            found.anomalies.iter().map(value),
        )?;
        lines(
            &self.dir,
            "incidents.jsonl",
            found.incidents.iter().map(value),
        )?;
        lines(
            &self.dir,
            "actions.jsonl",
            found
                .actions
                .iter()
                .map(|a| crate::execute::with_report(a, found.executions.get(&a.id))),
        )?;
        lines(&self.dir, "audit.jsonl", found.audit.iter().map(value))?;
        if let Some(summary) = &found.summary {
            let mut file = AtomicFile::create(self.dir.join("summary.json"))?;
            serde_json::to_writer_pretty(&mut file, summary)?;
            file.write_all(b"\n")?;
            file.commit()?;
        }
        Ok(())
    }
}

/// Anomalies, incidents, actions and the evaluation as flat CSV or Parquet
/// tables (polars), for a notebook or a spreadsheet.
#[cfg(feature = "tables")]
pub struct Tables {
    /// The directory.
    pub dir: PathBuf,
    /// CSV or Parquet.
    pub format: crate::table::TableFormat,
    /// The files written, for the report.
    pub written: Vec<PathBuf>,
}

#[cfg(feature = "tables")]
impl FindingsSink for Tables {
    fn write(&mut self, found: &Findings) -> anyhow::Result<()> {
        self.written = crate::table::write_tables(
            &self.dir,
            self.format,
            &found.anomalies,
            &found.incidents,
            &found.actions,
            found.summary.as_ref().and_then(|s| s.evaluation.as_ref()),
        )?;
        Ok(())
    }
}
