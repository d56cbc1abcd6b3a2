//! The execution ledger: one fsynced JSON line per completed or failed
//! execution. It is what makes re-running a completed action a no-op, and
//! the wall-clock memory of cooldowns and the rate limit across processes.

use models::{ActionName, Target, Timestamp};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// One execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The action id.
    pub action_id: String,
    /// The action (`prune`, `restart`, `offload`, `notify` on disk).
    pub action: ActionName,
    /// Its target.
    pub target: Target,
    /// The executor that ran it.
    pub executor: String,
    /// Wall-clock time it finished.
    pub at: Timestamp,
    /// `executed` or `failed`.
    pub result: String,
    /// The executor's report or error.
    pub detail: String,
}

/// The ledger, in memory and (optionally) in a file.
#[derive(Debug, Default)]
pub struct Ledger {
    path: Option<PathBuf>,
    entries: Vec<LedgerEntry>,
}

impl Ledger {
    /// A ledger that lives only in memory (tests).
    pub fn in_memory() -> Ledger {
        Ledger::default()
    }

    /// Open (or create) the ledger file at `path` and read what it holds. A
    /// torn last line (a crash mid-write) is ignored; any other bad line is
    /// an error naming the file and line.
    pub fn open(path: &Path) -> crate::Result<Ledger> {
        let mut entries = Vec::new();
        if path.exists() {
            let file = std::fs::File::open(path)?;
            let lines: Vec<String> = std::io::BufReader::new(file)
                .lines()
                .collect::<Result<_, _>>()?;
            let n = lines.len();
            for (i, line) in lines.iter().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str(line) {
                    Ok(e) => entries.push(e),
                    Err(_) if i + 1 == n => {}
                    Err(e) => {
                        return Err(crate::Error::exec(
                            "ledger",
                            format!("{} line {}: {e}", path.display(), i + 1),
                        ))
                    }
                }
            }
        }
        Ok(Ledger {
            path: Some(path.to_path_buf()),
            entries,
        })
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> &[LedgerEntry] {
        &self.entries
    }

    /// The successful execution of `action_id`, if any.
    pub fn executed(&self, action_id: &str) -> Option<&LedgerEntry> {
        self.entries
            .iter()
            .find(|e| e.action_id == action_id && e.result == "executed")
    }

    /// The last successful execution of `action` on `target`.
    pub fn last(&self, action: ActionName, target: &Target) -> Option<&LedgerEntry> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.action == action && &e.target == target && e.result == "executed")
    }

    /// Destructive executions since `since` (the rate limit's window).
    pub fn destructive_since(&self, since: Timestamp) -> usize {
        self.entries
            .iter()
            .filter(|e| e.result == "executed" && e.action.is_destructive() && e.at >= since)
            .count()
    }

    /// Append one entry; it is on disk (fsynced) before this returns.
    pub fn append(&mut self, entry: LedgerEntry) -> crate::Result<()> {
        if let Some(path) = &self.path {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            let mut line = serde_json::to_vec(&entry).map_err(std::io::Error::from)?;
            line.push(b'\n');
            f.write_all(&line)?;
            f.sync_data()?;
        }
        self.entries.push(entry);
        Ok(())
    }
}
