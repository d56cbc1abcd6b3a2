//! `remedy run`: the streaming service. Consumes the input topics in a
//! consumer group, analyses them with the engine replay uses, produces
//! anomalies, incidents, actions and dead letters to topics, writes the
//! store, and serves the API and `/metrics` from the same process.

use crate::api::{self, ApiConfig, AppState};
use crate::stream::config::RunConfig;
use crate::stream::kafka::{self, StreamMetrics};
use anyhow::Context;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Flags of `remedy run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file (TOML). Every key can also be set in the
    /// environment as `REMEDY_<SECTION>__<KEY>`, which wins.
    #[arg(long, env = "REMEDY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Stop at the end of the input as it was when the partitions were
    /// assigned and finish the analysis like `remedy replay` (backfills,
    /// tests). State is checkpointed first, so a later run carries on.
    #[arg(long)]
    pub exit_at_end: bool,

    /// With `--exit-at-end`: write each partition's `summary-<N>.json`
    /// here.
    #[arg(long, value_name = "DIR", requires = "exit_at_end")]
    pub out: Option<PathBuf>,

    #[command(flatten)]
    pub tokens: super::serve::Tokens,
}

/// Run until SIGINT/SIGTERM (or, with `--exit-at-end`, the end of input).
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = RunConfig::load(args.config.as_deref())?;
    let policy = super::load_policy(
        Some(cfg.engine.policy.as_path()).filter(|p| !p.as_os_str().is_empty()),
    )?;
    let mut pipeline = cfg.engine.analysis.settings(&[])?;
    // Scored windows for the dashboard's plots: taken at every step, so the
    // cap bounds what waits between two steps, not the total.
    if cfg.store.trace_retention_hours > 0 {
        pipeline.analyzer.trace_limit = store::TRACE_LIMIT;
    }

    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let db = Arc::new(store::Db::open(&cfg.store.db, workers * 2)?);
    let store = store::Store::open(&cfg.store.db)?;
    let mut metrics = api::metrics::Metrics::new(db.clone());
    let stream_metrics = StreamMetrics::register(metrics.registry_mut());
    // As in `remedy serve`: with dry-run lifted, actions the store holds
    // as approved (or allowed without approval) run in the background
    // through the driver and its safety rules, with their metrics.
    let driver = if policy.dry_run {
        None
    } else {
        let observer = crate::execute::ExecMetrics::register(metrics.registry_mut());
        Some(crate::execute::driver(&policy, Some(Arc::new(observer)))?)
    };
    let tokens = args.tokens.read()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        runtime.spawn(async move {
            super::serve::shutdown().await;
            tracing::info!("stopping: flushing results, writing state, committing offsets");
            stop.store(true, Ordering::SeqCst);
        });
    }
    if let Some(driver) = driver {
        crate::execute::spawn_background(db.clone(), driver, std::time::Duration::from_secs(2))?;
        eprintln!("remedy run: executing approved actions every 2s");
    }
    let server = if cfg.api.listen.is_empty() {
        None
    } else {
        let addr: std::net::SocketAddr = cfg.api.listen.parse()?;
        let conn_metrics = metrics.conn();
        let app = api::router(AppState {
            metrics,
            db,
            config: ApiConfig {
                tokens,
                auth_reads: cfg.api.auth_reads,
                open_analyze: cfg.api.open_analyze,
                ..ApiConfig::default()
            },
            policy: policy.clone(),
            engine: pipeline.clone(),
        });
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .with_context(|| format!("cannot listen on {addr}"))?;
        eprintln!("remedy run: listening on http://{}", listener.local_addr()?);
        let stop = stop.clone();
        Some(runtime.spawn(async move {
            let until = async move {
                while !stop.load(Ordering::SeqCst) {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            };
            api::server::serve(
                listener,
                app,
                api::server::ServerLimits::default(),
                conn_metrics,
                until,
                std::time::Duration::from_secs(35),
            )
            .await
        }))
    };
    // The consumer loop is synchronous (librdkafka's own threads do the
    // I/O); it runs here while the runtime serves the API.
    let result = kafka::run(
        cfg,
        pipeline,
        policy,
        Some(store),
        stream_metrics,
        kafka::Options {
            bounded: args.exit_at_end,
            out: args.out,
        },
        stop.clone(),
    );
    stop.store(true, Ordering::SeqCst);
    if let Some(s) = server {
        let _ = runtime.block_on(s);
    }
    result
}
