//! The HTTP server loop under the API (`remedy serve`, `remedy run`):
//! hyper's HTTP/1 connections with a header-read timeout and a cap on open
//! connections, so slow or idle clients cost a bounded share of the
//! process (descriptors, tasks) however many there are.
//!
//! - Headers: a connection that has not sent a whole request head within
//!   `header_timeout` is closed; this covers a new connection and the wait
//!   between keep-alive requests alike (hyper starts the timer whenever it
//!   waits for a head).
//! - Connections: at most `max_connections` are served at once (clamped
//!   below the process's descriptor limit, which is raised to its hard
//!   limit first); one beyond is closed at once rather than left in the
//!   kernel's queue, and counted in `remedy_http_connections_refused_total`.
//! - Bodies are the router's business (`read_body` in `api/mod.rs`): read
//!   under their own deadline and budget, outside the request slots.

use super::metrics::ConnMetrics;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// Limits of the connection layer.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Longest wait for a whole request head (also the idle time allowed
    /// between keep-alive requests).
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// Raise the soft descriptor limit to the hard one and return the
/// connection cap that fits under it.
fn connection_cap(wanted: usize) -> usize {
    match crate::fdlimit::raise() {
        Some(limit) => {
            let room = limit.saturating_sub(crate::fdlimit::RESERVED).max(16);
            wanted
                .min(usize::try_from(room).unwrap_or(usize::MAX))
                .max(1)
        }
        None => wanted.max(1),
    }
}

/// Serve `app` on `listener` until `shutdown` resolves; then stop
/// accepting, let requests in flight finish (connections are closed once
/// idle) and return when every connection is closed or after `drain`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ServerLimits,
    metrics: ConnMetrics,
    shutdown: impl Future<Output = ()> + Send,
    drain: Duration,
) -> std::io::Result<()> {
    let cap = connection_cap(limits.max_connections);
    if cap < limits.max_connections {
        tracing::warn!(
            wanted = limits.max_connections,
            cap,
            "the descriptor limit allows fewer connections than configured"
        );
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(cap));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE) or a connection reset
                // before it was accepted: wait a little, never spin.
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Over the cap: closed now, so the client learns at once and
            // the descriptor is back.
            metrics.refused.inc();
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        metrics.open.inc();
        let app = app.clone();
        let mut stop = stop_rx.clone();
        let open = metrics.open.clone();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    app.clone().oneshot(req.map(axum::body::Body::new))
                });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    changed = stop.changed() => {
                        conn.as_mut().graceful_shutdown();
                        if changed.is_err() {
                            // The server is gone; finish this connection.
                            let _ = conn.as_mut().await;
                            break;
                        }
                    }
                }
            }
            open.dec();
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every permit back means every connection closed.
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(drain, slots.acquire_many(all)).await;
    Ok(())
}
