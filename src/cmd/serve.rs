//! `remedy serve`: the root-cause HTTP API over a store written by
//! `remedy replay --db`.

use crate::api::{self, ApiConfig, AppState};
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The API's bearer tokens, from flags, the environment or a file (shared
/// by `remedy serve` and `remedy run`).
#[derive(Debug, clap::Args)]
pub struct Tokens {
    /// Bearer tokens accepted, comma-separated. Approve and reject always
    /// need one; prefer the environment variable to keep tokens out of
    /// process listings.
    #[arg(
        long = "api-token",
        env = "REMEDY_API_TOKENS",
        value_delimiter = ',',
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub tokens: Vec<String>,

    /// Also accept the tokens in this file, one per line (blank lines and
    /// lines starting with `#` skipped): a mounted secret, as Prometheus
    /// reads `credentials_file`.
    #[arg(long, env = "REMEDY_API_TOKEN_FILE", value_name = "FILE")]
    pub api_token_file: Option<PathBuf>,
}

impl Tokens {
    /// Every token given, trimmed, blank lines and `#` comments of the file
    /// skipped.
    pub fn read(self) -> anyhow::Result<Vec<String>> {
        read_tokens(self.tokens, self.api_token_file.as_deref())
    }
}

/// Flags of `remedy serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// SQLite database written by `remedy replay --db` (created empty if
    /// missing).
    #[arg(long, env = "REMEDY_DB", value_name = "FILE")]
    pub db: PathBuf,

    /// Address to listen on; port 0 picks a free port (printed on stderr).
    #[arg(
        long,
        env = "REMEDY_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub tokens: Tokens,

    /// Require a token for reads too (everything but /healthz, /readyz and
    /// the OpenAPI document).
    #[arg(long, env = "REMEDY_AUTH_READS")]
    pub auth_reads: bool,

    /// Remediation policy (TOML) for `POST /analyze` plans.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// The engine's settings for `POST /analyze` from the `[engine]` table
    /// of a TOML file, the same file and keys `remedy replay --config`
    /// reads (`remedy run`'s file works as it is), so an analysis through
    /// the API sees what a replay with the same file sees.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Service dependencies for `POST /analyze`, JSON
    /// `{"caller": ["callee", ...]}` (overrides the file's `topology`).
    #[arg(long, value_name = "FILE")]
    pub topology: Option<PathBuf>,

    /// Largest request body in bytes.
    #[arg(long, default_value_t = 2 << 20, value_name = "BYTES")]
    pub body_limit: usize,

    /// Longest a request may take, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub timeout: u64,

    /// Requests handled at once; beyond it requests get 503 at once.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub concurrency: usize,

    /// Longest a client may take to send a request's headers (and the
    /// idle time allowed between keep-alive requests), in seconds.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub header_timeout: u64,

    /// Longest a client may take to send a request's body, in seconds.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub body_timeout: u64,

    /// Client connections open at once (also held under the process's
    /// descriptor limit); one beyond is closed at once.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_connections: usize,

    /// `POST /api/v1/analyze` runs at most this many analyses at once
    /// (default: one per core); beyond it, 503 at once.
    #[arg(long, value_name = "N")]
    pub analyze_concurrency: Option<usize>,

    /// Let `POST /api/v1/analyze` run without a token (by default it needs
    /// one, like approvals: an analysis costs CPU and memory).
    #[arg(long, env = "REMEDY_OPEN_ANALYZE")]
    pub open_analyze: bool,

    /// Allow browser calls from this origin (CORS), repeatable. Off by
    /// default.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,

    /// With a policy that lifts dry-run: how often (milliseconds) the store
    /// is polled for approved actions and due schedules to execute.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub exec_interval_ms: u64,
}

/// Run `remedy serve` until SIGINT or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<()> {
    let policy = super::load_policy(args.policy.as_deref())?;
    let mut engine_config = super::engine_config_file(args.config.as_deref())?;
    if let Some(t) = &args.topology {
        engine_config.topology = t.clone();
    }
    let engine = engine_config.settings(&[])?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let db = Arc::new(store::Db::open(&args.db, workers * 2)?);
    let tokens = args.tokens.read()?;
    let config = ApiConfig {
        tokens,
        auth_reads: args.auth_reads,
        body_limit: args.body_limit,
        timeout: Duration::from_secs(args.timeout.max(1)),
        concurrency: args.concurrency.max(1),
        cors_origins: args.cors_origins,
        body_timeout: Duration::from_secs(args.body_timeout.max(1)),
        open_analyze: args.open_analyze,
        ..ApiConfig::default()
    };
    let config = ApiConfig {
        analyze_concurrency: args
            .analyze_concurrency
            .unwrap_or(config.analyze_concurrency)
            .max(1),
        ..config
    };
    let limits = api::server::ServerLimits {
        header_timeout: Duration::from_secs(args.header_timeout.max(1)),
        max_connections: args.max_connections.max(1),
    };
    if config.tokens.is_empty() {
        tracing::warn!("no API tokens configured: approve and reject will refuse every request");
    }
    let mut metrics = api::metrics::Metrics::new(db.clone());
    let conn_metrics = metrics.conn();
    // Execution is on when the policy lifts dry-run: approved actions (and
    // those allowed without approval) and due schedules run in the
    // background, through the driver and its safety rules.
    let driver = if policy.dry_run {
        None
    } else {
        let observer = crate::execute::ExecMetrics::register(metrics.registry_mut());
        Some(crate::execute::driver(&policy, Some(Arc::new(observer)))?)
    };
    let app = api::router(AppState {
        metrics,
        db: db.clone(),
        config,
        policy,
        engine,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        if let Some(driver) = driver {
            let every = Duration::from_millis(args.exec_interval_ms.max(100));
            crate::execute::spawn_background(db, driver, every)?;
            eprintln!("remedy serve: executing approved actions every {every:?}");
        }
        eprintln!(
            "remedy serve: listening on http://{addr} (database {})",
            args.db.display()
        );
        api::server::serve(
            listener,
            app,
            limits,
            conn_metrics,
            shutdown(),
            Duration::from_secs(args.timeout.max(1) + 5),
        )
        .await
        .context("the server failed")
    })
}

/// The tokens given as flags plus those in `file` (one per line, blank
/// lines and `#` comments skipped).
fn read_tokens(flags: Vec<String>, file: Option<&std::path::Path>) -> anyhow::Result<Vec<String>> {
    let mut tokens: Vec<String> = flags
        .into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the API token file {}", path.display()))?;
        tokens.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    Ok(tokens)
}

/// Resolves on SIGINT or SIGTERM: in-flight requests finish, then exit.
pub async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
