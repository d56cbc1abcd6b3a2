//! `remedy`: the command-line entry point. Parses flags, installs the
//! tracing subscriber, runs one subcommand and turns its error into an exit
//! code. All real work lives in the library crates and in `cmd/`.

mod api;
mod cmd;
mod execute;
mod fdlimit;
mod generate;
mod output;
mod sinks;
#[cfg(feature = "kafka")]
mod stream;
#[cfg(feature = "tables")]
mod table;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

// Replay and streaming allocate a few short-lived strings per record on
// several threads at once; mimalloc's thread-local free lists make that
// markedly cheaper than glibc malloc (BENCHMARKS.md, replay throughput).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Log-driven AIOps: incidents, ranked root causes and safe remediation from
/// the logs and metrics your systems already emit.
#[derive(Debug, Parser)]
#[command(name = "remedy", version, about, long_about = None)]
struct Cli {
    /// Log filter for Remedy's own diagnostics on stderr (`info`, `debug`,
    /// `remedy=trace`...). Also read from RUST_LOG.
    #[arg(long, global = true, env = "REMEDY_LOG", default_value = "warn")]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a labelled scenario of a small microservice estate: logs in
    /// several shipper formats, Prometheus metrics, change events and
    /// injected faults with `labels.json`.
    Generate(cmd::generate::Args),
    /// Replay files or directories through the pipeline and report what was
    /// found (and every record that could not be read).
    Replay(cmd::replay::Args),
    /// Mine log templates from a file and write `LineId,EventId,EventTemplate` CSV.
    Templates(cmd::templates::Args),
    /// Score one metric series (CSV `timestamp,value`) and write
    /// `timestamp,value,anomaly_score,label` CSV.
    Detect(cmd::detect::Args),
    /// Serve the root-cause HTTP API (incidents, evidence, approvals,
    /// /metrics) over a database written by `remedy replay --db`.
    Serve(cmd::serve::Args),
    /// Where each offload stands (pending, running, complete, failed),
    /// from the offload journal.
    OffloadStatus(cmd::offload_status::Args),
    /// Run the streaming service: consume logs and metrics from Kafka in a
    /// consumer group, produce anomalies, incidents and actions, serve the
    /// API (`--config remedy.toml`).
    #[cfg(feature = "kafka")]
    Run(cmd::run::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Generate(a) => cmd::generate::run(a),
        Command::Replay(a) => cmd::replay::run(a),
        Command::Templates(a) => cmd::templates::run(a),
        Command::Detect(a) => cmd::detect::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::OffloadStatus(a) => cmd::offload_status::run(a),
        #[cfg(feature = "kafka")]
        Command::Run(a) => cmd::run::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A closed pipe (`remedy replay ... | head`) is not a failure.
            if err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(2)
        }
    }
}
