//! `remedy offload-status`: where each offload stands, read from the
//! offload journal (the same fold the executor resumes from, so what it
//! prints is what a resume would do).

use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;

/// Flags of `remedy offload-status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The journal: `[execution.object_store] journal` of the policy.
    #[arg(long, value_name = "FILE", conflicts_with = "policy")]
    pub journal: Option<PathBuf>,

    /// Or the policy whose `[execution.object_store]` names the journal.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Run `remedy offload-status`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let journal = match (args.journal, args.policy) {
        (Some(j), _) => j,
        (None, Some(p)) => {
            let policy = super::load_policy(Some(&p))?;
            let j = policy
                .execution
                .settings::<reclaim::exec::ObjectStoreConfig>()?
                .journal;
            anyhow::ensure!(
                !j.as_os_str().is_empty(),
                "policy {} has no [execution.object_store] journal",
                p.display()
            );
            j
        }
        (None, None) => anyhow::bail!("name the journal with --journal FILE or --policy FILE"),
    };
    anyhow::ensure!(
        journal.is_file(),
        "offload journal {} does not exist (no offload has run with it yet?)",
        journal.display()
    );
    let all = reclaim::exec::OffloadExecutor::status(&journal)
        .with_context(|| format!("reading {}", journal.display()))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for s in &all {
            writeln!(out, "{}", serde_json::to_string(s)?)?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<40} {:<9} {:>6} {:>6} {:>14}  error",
        "offload", "state", "files", "moved", "bytes moved"
    )?;
    for s in &all {
        let state = serde_json::to_value(s.state)?;
        writeln!(
            out,
            "{:<40} {:<9} {:>6} {:>6} {:>14}  {}",
            s.offload,
            state.as_str().unwrap_or("?"),
            s.files,
            s.moved,
            s.bytes_moved,
            s.error.as_deref().unwrap_or("")
        )?;
    }
    Ok(())
}
