//! The root-cause HTTP API (`remedy serve`): incidents, evidence and
//! approvals over axum.
//!
//! State lives in one [`AppState`] behind an `Arc`; handlers are small
//! functions that read the store and return `Result<Json<_>, Problem>`, so
//! every error becomes an RFC 9457 problem in one place ([`problem`]). They
//! take their inputs with [`ApiPath`], [`ApiQuery`] and [`ApiJson`] (axum's
//! extractors with a `Problem` as rejection), so a parameter or body that
//! does not parse is a problem document too, before the handler runs.
//! Limits (body size, timeout, concurrency) are tower layers around the
//! whole router; authentication is a middleware that knows which routes
//! mutate. The OpenAPI document is generated from the handlers' annotations
//! ([`ApiDoc`]), so it cannot drift from the code.

pub mod metrics;
pub mod problem;
pub mod server;
pub mod ui;

use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use engine::{DeadLetterSink, Engine, EngineSettings};
use models::{Action, Anomaly, Incident, Timestamp};
use problem::{ApiJson, ApiPath, ApiQuery, Problem};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{self, Cursor, Db};
use utoipa::{IntoParams, OpenApi, ToSchema};

/// Settings of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Bearer tokens accepted. Mutating endpoints always need one; with no
    /// tokens configured they answer 401 to everyone.
    pub tokens: Vec<String>,
    /// Whether reads need a token too.
    pub auth_reads: bool,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// Longest time a request may take.
    pub timeout: Duration,
    /// Requests served at once; more are refused with 503 at once rather
    /// than queued without bound.
    pub concurrency: usize,
    /// Largest page of a list.
    pub max_page: usize,
    /// Most log lines in one `POST /analyze`.
    pub max_analyze_lines: usize,
    /// Origins allowed to call from a browser (CORS); empty, the default,
    /// sends no CORS headers at all.
    pub cors_origins: Vec<String>,
    /// Longest time a request body may take to arrive. Bodies are read
    /// before a request takes one of the `concurrency` slots, so a slow
    /// one holds only a body slot, and only this long.
    pub body_timeout: Duration,
    /// Request bodies received at once; more are refused with 503 at once.
    pub body_readers: usize,
    /// `POST /analyze` without a token (off by default: an analysis is
    /// seconds of CPU and memory in proportion to its body).
    pub open_analyze: bool,
    /// Analyses run at once; more are refused with 503 at once.
    pub analyze_concurrency: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            tokens: Vec::new(),
            auth_reads: false,
            body_limit: 2 << 20,
            timeout: Duration::from_secs(30),
            concurrency: 256,
            max_page: 500,
            max_analyze_lines: 20_000,
            cors_origins: Vec::new(),
            body_timeout: Duration::from_secs(10),
            body_readers: 64,
            open_analyze: false,
            analyze_concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// The semaphores behind the body and analysis budgets, shared by every
/// request of one router.
#[derive(Clone)]
struct Budgets {
    bodies: Arc<tokio::sync::Semaphore>,
    analyses: Arc<tokio::sync::Semaphore>,
}

/// What every handler shares.
pub struct AppState {
    /// The store.
    pub db: Arc<Db>,
    /// Settings.
    pub config: ApiConfig,
    /// Prometheus metrics.
    pub metrics: metrics::Metrics,
    /// Policy for `POST /analyze` plans.
    pub policy: reclaim::Policy,
    /// The engine's settings for `POST /analyze`: the server's
    /// `--config`/`--topology` (or `remedy run`'s `[engine]` table), as
    /// replay would take them, so an analysis here and a replay of the same
    /// records with the same file agree.
    pub engine: engine::EngineSettings,
}

type Shared = Arc<AppState>;

impl AppState {
    /// Run `f` on a store connection on tokio's blocking pool, and wait for
    /// it without holding an async worker.
    ///
    /// Every store call of the API goes through here. Why: a SQLite query
    /// blocks its thread (on the disk, and on the pool's mutex when every
    /// connection is busy), and an async worker blocked that way answers
    /// nothing else meanwhile, the probes and the load-shedding refusals
    /// included; the runtime has only one worker per core. The blocking
    /// pool is meant for this. `f` must own what it uses (`move`, clones of
    /// ids and filters) because the blocking thread may outlive the
    /// request: if the request is dropped (timeout, client gone) the query
    /// still runs to its end, which is bounded by the page limits, and its
    /// answer is discarded.
    async fn query<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        F: FnOnce(&mut rusqlite::Connection) -> anyhow::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.with(f))
            .await
            // A panic in a query: a 500 with the cause in the log, as
            // any other failure.
            .map_err(|e| anyhow::anyhow!("store task failed: {e}"))?
    }
}

/// The API router with its limits and middleware.
///
/// Two parts: the probes and `/metrics`, answered outside every limit (they
/// are cheap and bounded, and must answer while the rest is saturated);
/// everything else behind, from the outside in, the body budget (bodies are
/// read whole, under `body_timeout`, at most `body_readers` at once), load
/// shedding at `concurrency` requests in flight, and the request timeout.
pub fn router(state: AppState) -> Router {
    let state = Arc::new(state);
    let config = state.config.clone();
    let budgets = Budgets {
        bodies: Arc::new(tokio::sync::Semaphore::new(config.body_readers.max(1))),
        analyses: Arc::new(tokio::sync::Semaphore::new(
            config.analyze_concurrency.max(1),
        )),
    };
    let api = Router::new()
        .route("/incidents", get(list_incidents))
        .route("/incidents/{id}", get(get_incident))
        .route("/anomalies", get(list_anomalies))
        .route("/templates", get(list_templates))
        .route("/signals/{key}", get(get_signal))
        .route("/analyze", post(analyze))
        .route("/actions/{id}/approve", post(approve))
        .route("/actions/{id}/reject", post(reject))
        .route("/openapi.json", get(openapi));
    let mut app = Router::new()
        .nest("/api/v1", api)
        .route("/", get(ui::index))
        .route("/ui/incidents/{id}", get(ui::incident))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::Extension(budgets.clone()))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(config.body_limit))
        .with_state(state.clone());
    if !config.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = config
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        app = app.layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
        );
    }
    // Refuse at once when `concurrency` requests are in flight (load
    // shedding, not an unbounded queue), and stop any request at the
    // timeout. Both answer with a problem document.
    let shed_state = state.clone();
    let limited = app
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(
                    move |err: tower::BoxError| {
                        let state = shed_state.clone();
                        async move { overloaded(&state, err) }
                    },
                ))
                .load_shed()
                // Global: `Router::layer` wraps each route on its own, and a
                // per-route limit would multiply by the number of routes.
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                    config.concurrency,
                ))
                .timeout(config.timeout),
        )
        // Outside the request slots: a body that trickles in holds a body
        // slot for at most `body_timeout`, never a request slot.
        .layer(middleware::from_fn_with_state(
            (state.clone(), budgets),
            read_body,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
        .fallback_service(limited)
}

fn overloaded(state: &AppState, err: tower::BoxError) -> Problem {
    if err.is::<tower::timeout::error::Elapsed>() {
        state.metrics.shed("timeout");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took longer than the server's timeout; narrow it and retry",
        )
    } else if err.is::<tower::load_shed::error::Overloaded>() {
        state.metrics.shed("overloaded");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in flight; retry shortly",
        )
    } else {
        Problem::internal(&anyhow::anyhow!("{err}"))
    }
}

/// Read a request's body whole before it takes a request slot: at most
/// `body_readers` at once (503 beyond), each within `body_timeout` (408
/// after) and `body_limit` bytes (413 beyond). Requests without a body pass
/// straight through.
async fn read_body(
    State((state, budgets)): State<(Shared, Budgets)>,
    req: Request,
    next: Next,
) -> Response {
    use http_body_util::BodyExt;
    let (parts, body) = req.into_parts();
    if axum::body::HttpBody::is_end_stream(&body) {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let Ok(permit) = budgets.bodies.try_acquire_owned() else {
        state.metrics.shed("body_budget");
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many request bodies are being received; retry shortly",
        )
        .into_response();
    };
    let limit = state.config.body_limit;
    let read = tokio::time::timeout(
        state.config.body_timeout,
        http_body_util::Limited::new(body, limit).collect(),
    )
    .await;
    drop(permit);
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is over the limit of {limit} bytes"),
            )
            .into_response()
        }
        Ok(Err(_)) => {
            return Problem::bad_request("the request body could not be read").into_response()
        }
        Err(_) => {
            state.metrics.shed("body_timeout");
            let mut res = Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} s",
                    state.config.body_timeout.as_secs_f64()
                ),
            )
            .into_response();
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return res;
        }
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

async fn not_found() -> Problem {
    Problem::not_found("no such endpoint; the API is under /api/v1 (see /api/v1/openapi.json)")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method (see /api/v1/openapi.json)",
    )
}

/// Routes that change state: a token is always required.
fn mutates(method: &Method, path: &str) -> bool {
    method == Method::POST && path.starts_with("/api/v1/actions/")
}

/// `POST /analyze`: costly, so a token is required unless `open_analyze`.
fn analyzes(method: &Method, path: &str) -> bool {
    method == Method::POST && path == "/api/v1/analyze"
}

/// Routes open to everyone: probes and the API description.
fn public(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/api/v1/openapi.json")
}

/// Check the bearer token where one is needed.
async fn authenticate(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let needed = mutates(req.method(), path)
        || (analyzes(req.method(), path) && !state.config.open_analyze)
        || (state.config.auth_reads && !public(path));
    if needed {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        match presented {
            None => {
                return Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "this endpoint needs an `Authorization: Bearer <token>` header",
                )
                .into_response()
            }
            Some(token) if !token_matches(&state.config.tokens, token) => {
                return Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "the bearer token is not one this server accepts",
                )
                .into_response()
            }
            Some(_) => {}
        }
    }
    next.run(req).await
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is
/// matched case-insensitively (RFC 9110, section 11.1), so `bearer` and
/// `BEARER` work too.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once([' ', '\t'])?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Compare against every configured token in constant time, without
/// stopping at the first match, so timing says nothing about which token
/// (or how much of one) was right.
fn token_matches(tokens: &[String], presented: &str) -> bool {
    use subtle::ConstantTimeEq;
    let mut ok = subtle::Choice::from(0u8);
    for t in tokens {
        if !t.is_empty() {
            ok |= t.as_bytes().ct_eq(presented.as_bytes());
        }
    }
    ok.into()
}

/// Time each request into the histogram, labelled by route template.
async fn observe(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let res = next.run(req).await;
    state
        .metrics
        .requests
        .get_or_create(&metrics::RequestLabels {
            method,
            route,
            status: res.status().as_u16().to_string(),
        })
        .observe(start.elapsed().as_secs_f64());
    res
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is up", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = Health),
        (status = 503, description = "The store cannot be read", body = Problem, content_type = "application/problem+json")))]
async fn readyz(State(state): State<Shared>) -> Result<Json<Health>, Problem> {
    match state.query(|c| store::ping(c)).await {
        Ok(()) => Ok(Json(Health {
            status: "ready".into(),
        })),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "store not ready");
            Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the store cannot be read",
            ))
        }
    }
}

/// Probe answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
}

/// Prometheus metrics (text exposition, OpenMetrics flavour).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Metrics", content_type = "application/openmetrics-text", body = String)))]
async fn metrics_text(State(state): State<Shared>) -> Result<Response, Problem> {
    // Encoding runs the store collector, which reads the store's totals:
    // prometheus-client's `Collector::encode` is synchronous, so the whole
    // encoding goes to the blocking pool (see `AppState::query`).
    let encoding = state.clone();
    let text = tokio::task::spawn_blocking(move || encoding.metrics.encode())
        .await
        .map_err(|e| anyhow::anyhow!("metrics task failed: {e}"))?
        .map_err(|e| anyhow::anyhow!("cannot encode metrics: {e}"))?;
    let mut res = text.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(res)
}

/// The OpenAPI document of this API.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

fn parse_time(name: &str, v: &Option<String>) -> Result<Option<Timestamp>, Problem> {
    match v {
        None => Ok(None),
        Some(s) => Timestamp::parse_rfc3339(s).map(Some).ok_or_else(|| {
            Problem::bad_request(format!(
                "`{name}` must be an RFC 3339 time such as 2026-11-25T10:00:00Z, got {s:?}"
            ))
        }),
    }
}

fn page_limit(limit: Option<u32>, max: usize) -> Result<usize, Problem> {
    match limit {
        None => Ok(50.min(max)),
        Some(0) => Err(Problem::bad_request("`limit` must be at least 1")),
        Some(n) if n as usize > max => Err(Problem::bad_request(format!(
            "`limit` must be at most {max}; follow `next_cursor` for more"
        ))),
        Some(n) => Ok(n as usize),
    }
}

fn parse_cursor(c: &Option<String>) -> Result<Option<Cursor>, Problem> {
    match c {
        None => Ok(None),
        Some(s) => Cursor::decode(s).map(Some).ok_or_else(|| {
            Problem::bad_request(
                "`cursor` is not one this API handed out; start from the first page",
            )
        }),
    }
}

/// Query of `GET /incidents`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncidentQuery {
    /// Only incidents still open at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Only incidents that started at or before this time (RFC 3339).
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// Only incidents touching this service.
    pub service: Option<String>,
    /// Only incidents whose top root cause has this class.
    pub class: Option<models::RootCauseClass>,
    /// `open` or `resolved`.
    pub status: Option<models::IncidentStatus>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of incidents, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IncidentPage {
    /// Incidents.
    #[schema(value_type = Vec<store::IncidentSummary>)]
    pub items: Vec<Box<serde_json::value::RawValue>>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// List incidents.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents", params(IncidentQuery),
    responses(
        (status = 200, description = "A page of incidents, newest first", body = IncidentPage),
        (status = 400, description = "A filter did not parse", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A token is required", body = Problem, content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
async fn list_incidents(
    State(state): State<Shared>,
    ApiQuery(q): ApiQuery<IncidentQuery>,
) -> Result<Json<IncidentPage>, Problem> {
    let filter = store::IncidentFilter {
        from: parse_time("from", &q.from)?,
        to: parse_time("to", &q.to)?,
        service: q.service,
        class: q.class.map(|c| c.as_str().to_string()),
        status: q.status.map(|s| s.as_str().to_string()),
    };
    let limit = page_limit(q.limit, state.config.max_page)?;
    let cursor = parse_cursor(&q.cursor)?;
    let (items, next) = state
        .query(move |c| store::list_incidents(c, &filter, cursor.as_ref(), limit))
        .await?;
    Ok(Json(IncidentPage {
        items,
        next_cursor: next.map(|c| c.encode()),
    }))
}

/// One incident: ranked root causes with evidence, actions, audit trail.
#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    responses(
        (status = 200, description = "The incident", body = store::IncidentDetail),
        (status = 404, description = "No such incident", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A token is required", body = Problem, content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
async fn get_incident(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<store::IncidentDetail>, Problem> {
    let key = id.clone();
    state
        .query(move |c| store::get_incident(c, &key))
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no incident with id {id:?}")))
}

/// Query of `GET /anomalies`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnomalyQuery {
    /// At or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// At or before this time (RFC 3339).
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// The signal's service.
    pub service: Option<String>,
    /// Anomaly kind.
    pub kind: Option<models::AnomalyKind>,
    /// Grouped into this incident.
    pub incident: Option<String>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of anomalies, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AnomalyPage {
    /// Anomalies.
    pub items: Vec<store::StoredAnomaly>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// List anomalies.
#[utoipa::path(get, path = "/api/v1/anomalies", tag = "anomalies", params(AnomalyQuery),
    responses(
        (status = 200, description = "A page of anomalies, newest first", body = AnomalyPage),
        (status = 400, description = "A filter did not parse", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A token is required", body = Problem, content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
async fn list_anomalies(
    State(state): State<Shared>,
    ApiQuery(q): ApiQuery<AnomalyQuery>,
) -> Result<Json<AnomalyPage>, Problem> {
    let filter = store::AnomalyFilter {
        from: parse_time("from", &q.from)?,
        to: parse_time("to", &q.to)?,
        service: q.service,
        kind: q.kind.map(|k| k.as_str().to_string()),
        incident: q.incident,
    };
    let limit = page_limit(q.limit, state.config.max_page)?;
    let cursor = parse_cursor(&q.cursor)?;
    let (items, next) = state
        .query(move |c| store::list_anomalies(c, &filter, cursor.as_ref(), limit))
        .await?;
    Ok(Json(AnomalyPage {
        items,
        next_cursor: next.map(|c| c.encode()),
    }))
}

/// Query of `GET /templates`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TemplateQuery {
    /// Only templates containing this text.
    pub contains: Option<String>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of templates, most frequent first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TemplatePage {
    /// Templates.
    pub items: Vec<store::StoredTemplate>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// List log templates.
#[utoipa::path(get, path = "/api/v1/templates", tag = "templates", params(TemplateQuery),
    responses(
        (status = 200, description = "A page of templates, most frequent first", body = TemplatePage),
        (status = 400, description = "A parameter did not parse", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A token is required", body = Problem, content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
async fn list_templates(
    State(state): State<Shared>,
    ApiQuery(q): ApiQuery<TemplateQuery>,
) -> Result<Json<TemplatePage>, Problem> {
    let limit = page_limit(q.limit, state.config.max_page)?;
    // Templates are ranked by count, which a later replay changes: the
    // cursor is a plain offset, prefixed so it cannot be confused with
    // another list's.
    let offset = match &q.cursor {
        None => 0,
        Some(c) => c
            .strip_prefix("t.")
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|n| *n <= i64::MAX as u64)
            .ok_or_else(|| {
                Problem::bad_request(
                    "`cursor` is not one this API handed out; start from the first page",
                )
            })?,
    };
    let (items, more) = state
        .query(move |c| store::list_templates(c, q.contains.as_deref(), offset, limit))
        .await?;
    let next = more.then(|| format!("t.{}", offset + items.len() as u64));
    Ok(Json(TemplatePage {
        items,
        next_cursor: next,
    }))
}

/// Query of `GET /signals/{key}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignalQuery {
    /// From this time (RFC 3339).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// To this time (RFC 3339).
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// Most points returned (default 2000).
    #[param(minimum = 1, maximum = 20000)]
    pub limit: Option<u32>,
}

/// A signal and its baseline band over a range, ready to plot.
#[utoipa::path(get, path = "/api/v1/signals/{key}", tag = "signals",
    params(("key" = String, Path, description = "Signal key as in an anomaly's `signal_key`, URL-encoded"), SignalQuery),
    responses(
        (status = 200, description = "The signal's points with their band, and its anomalies", body = store::SignalSeries),
        (status = 400, description = "A parameter did not parse", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such signal", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A token is required", body = Problem, content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
async fn get_signal(
    State(state): State<Shared>,
    ApiPath(key): ApiPath<String>,
    ApiQuery(q): ApiQuery<SignalQuery>,
) -> Result<Json<store::SignalSeries>, Problem> {
    let from = parse_time("from", &q.from)?;
    let to = parse_time("to", &q.to)?;
    let limit = match q.limit {
        None => 2000,
        Some(n) if (1..=20_000).contains(&n) => n as usize,
        Some(_) => return Err(Problem::bad_request("`limit` must be between 1 and 20000")),
    };
    let k = key.clone();
    state
        .query(move |c| store::get_signal(c, &k, from, to, limit))
        .await?
        .map(Json)
        .ok_or_else(|| {
            Problem::not_found(format!(
                "no signal with key {key:?}; keys are in anomalies' `signal_key`"
            ))
        })
}

/// Body of `POST /analyze`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AnalyzeRequest {
    /// Inputs, as replay takes files: each is read in its own format and
    /// all are merged by event time.
    #[schema(max_items = 64)]
    pub inputs: Vec<AnalyzeInput>,
}

/// One input of `POST /analyze`: the lines of one file or stream.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AnalyzeInput {
    /// A name for it (dead letters and counts refer to it); `input-N` by
    /// default.
    #[serde(default)]
    pub name: Option<String>,
    /// Format name (`json`, `logfmt`, `prometheus`, `prom-json`...) or a
    /// loghub header format; `auto` (the default) sniffs it.
    #[serde(default)]
    pub format: Option<String>,
    /// Records, one per element: log lines, or metric samples (Prometheus
    /// text exposition or prometheus-kafka-adapter JSON).
    pub lines: Vec<String>,
}

/// A record that could not be read.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AnalyzeDeadLetter {
    /// The input's name.
    pub input: String,
    /// 1-based index into that input's `lines`.
    pub line: u64,
    /// Reason code (`invalid_json`, `bad_timestamp`...).
    pub reason: String,
    /// What was wrong.
    pub detail: String,
}

/// What the engine found in the submitted records.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AnalyzeResponse {
    /// Records received.
    pub read: u64,
    /// Records parsed.
    pub parsed: u64,
    /// Records that could not be read, with why.
    pub dead_letters: Vec<AnalyzeDeadLetter>,
    /// Anomalies, in event-time order.
    pub anomalies: Vec<Anomaly>,
    /// Incidents with ranked root causes and evidence.
    pub incidents: Vec<Incident>,
    /// What the policy would do (planned under the server's policy, dry-run
    /// unless the policy says otherwise; nothing is stored or executed).
    pub actions: Vec<Action>,
}

/// Dead letters kept for the response.
struct Collect(Vec<AnalyzeDeadLetter>);

impl DeadLetterSink for Collect {
    fn put(&mut self, letter: &ingest::DeadLetter) -> anyhow::Result<()> {
        self.0.push(AnalyzeDeadLetter {
            input: letter.origin.clone(),
            line: letter.position,
            reason: letter.reason.as_str().to_string(),
            detail: letter.detail.clone(),
        });
        Ok(())
    }
}

/// Ask the engine about a batch of records, synchronously: the ad-hoc
/// root-cause question. Nothing is stored.
#[utoipa::path(post, path = "/api/v1/analyze", tag = "analyze", request_body = AnalyzeRequest,
    responses(
        (status = 200, description = "Incidents, anomalies and the plan for the submitted records", body = AnalyzeResponse),
        (status = 400, description = "The body or the format name is wrong", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The JSON does not have the expected shape", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A token is required", body = Problem, content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
async fn analyze(
    State(state): State<Shared>,
    axum::Extension(budgets): axum::Extension<Budgets>,
    req: Request,
) -> Result<Json<AnalyzeResponse>, Problem> {
    // The budget is taken before the body is parsed: a refused analysis
    // costs no more than its (already bounded) body.
    let Ok(permit) = budgets.analyses.try_acquire_owned() else {
        state.metrics.shed("analysis_budget");
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            format!(
                "{} analyses are running, the most this server runs at once; retry shortly",
                state.config.analyze_concurrency
            ),
        ));
    };
    // Extracted here rather than as an argument, so that it happens after
    // the permit is taken.
    let ApiJson(req) = ApiJson::<AnalyzeRequest>::from_request(req, &state).await?;
    let lines: usize = req.inputs.iter().map(|i| i.lines.len()).sum();
    if lines > state.config.max_analyze_lines || req.inputs.len() > 64 {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "at most {} lines in at most 64 inputs per request; replay larger inputs with `remedy replay`",
                state.config.max_analyze_lines
            ),
        ));
    }
    let mut inputs = Vec::with_capacity(req.inputs.len());
    let mut names = std::collections::HashSet::new();
    for (i, input) in req.inputs.into_iter().enumerate() {
        let name = input.name.unwrap_or_else(|| format!("input-{}", i + 1));
        if !names.insert(name.clone()) {
            return Err(Problem::bad_request(format!(
                "two inputs are named {name:?}; give each a distinct name"
            )));
        }
        let format = ingest::Format::from_name(input.format.as_deref().unwrap_or("auto"))
            .map_err(|e| Problem::bad_request(format!("input {name:?}: {e}")))?;
        inputs.push((name, format, input.lines));
    }
    let policy = state.policy.clone();
    let mut settings = state.engine.clone();
    // Timestamps are checked against the time of the request, not of the
    // server's start.
    settings.decoder.reference_time = engine::EngineSettings::for_run().decoder.reference_time;
    // Dropped with this future (the client went away, or the timeout
    // fired): the analysis then stops at its next record.
    let cancel = CancelOnDrop(Arc::new(std::sync::atomic::AtomicBool::new(false)));
    let flag = cancel.0.clone();
    let metrics_state = state.clone();
    // The engine is CPU work: off the async workers, so other requests keep
    // being answered meanwhile. The permit goes with it and is released
    // only when the work has really stopped.
    let result = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let r = analyze_inputs(inputs, settings, policy, &flag);
        if flag.load(std::sync::atomic::Ordering::Relaxed) {
            metrics_state.metrics.analyses_cancelled.inc();
        }
        r
    })
    .await
    .map_err(|e| anyhow::anyhow!("analysis task failed: {e}"))??;
    drop(cancel);
    Ok(Json(result))
}

/// Sets its flag when dropped.
struct CancelOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Run the replay engine over in-memory inputs: the same merge, engine and
/// planning as `remedy replay` over files, so the same records give the
/// same incidents. Stopped with an error at the next record once `cancel`
/// is set (the request's future was dropped).
fn analyze_inputs(
    inputs: Vec<(String, ingest::Format, Vec<String>)>,
    settings: EngineSettings,
    policy: reclaim::Policy,
    cancel: &Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<AnalyzeResponse> {
    let mut pipeline = Engine::new(settings)?;
    let mut sources: Vec<Box<dyn engine::Input>> = Vec::new();
    for (name, format, lines) in inputs {
        let origin: Arc<str> = Arc::from(name.as_str());
        let records: Vec<ingest::RawRecord> = lines
            .into_iter()
            .enumerate()
            .map(|(i, l)| ingest::RawRecord::line(origin.clone(), i as u64 + 1, l.into_bytes()))
            .collect();
        sources.push(Box::new(engine::MemoryInput {
            origin,
            format,
            records: records.into_iter(),
            cancel: Some(cancel.clone()),
        }));
    }
    let mut dead = Collect(Vec::new());
    engine::merge(&mut sources, &mut pipeline, &mut dead, &|| {})?;
    let run = engine::Publisher::new(policy).conclude(&mut pipeline)?;
    let ingest = run.summary.map(|s| s.ingest).unwrap_or_default();
    Ok(AnalyzeResponse {
        read: ingest.read,
        parsed: ingest.parsed,
        dead_letters: dead.0,
        anomalies: run.anomalies,
        incidents: run.incidents,
        actions: run.actions,
    })
}

/// Optional body of approve and reject.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct Decision {
    /// Why (goes to the audit trail).
    #[serde(default)]
    pub reason: Option<String>,
}

async fn decide(
    state: Shared,
    id: String,
    approve: bool,
    body: axum::body::Bytes,
) -> Result<Json<Action>, Problem> {
    let decision: Decision = if body.iter().all(u8::is_ascii_whitespace) {
        Decision::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            Problem::bad_request(format!(
                "the body must be JSON like {{\"reason\": \"...\"}}: {e}"
            ))
        })?
    };
    let reason = decision.reason.unwrap_or_else(|| {
        if approve {
            "approved via the API"
        } else {
            "rejected via the API"
        }
        .into()
    });
    if reason.len() > 1000 {
        return Err(Problem::bad_request("`reason` is limited to 1000 bytes"));
    }
    let now = Timestamp::from_millis(chrono::Utc::now().timestamp_millis());
    match state
        .query(move |c| Ok(store::decide(c, &id, approve, &reason, now)))
        .await
    {
        Ok(Ok(action)) => Ok(Json(action)),
        Ok(Err(store::DecideError::NotFound(id))) => {
            Err(Problem::not_found(format!("no action with id {id:?}")))
        }
        Ok(Err(e @ store::DecideError::NotPending { .. })) => Err(Problem::new(
            StatusCode::CONFLICT,
            "not_pending",
            e.to_string(),
        )),
        Ok(Err(store::DecideError::Db(e))) | Err(e) => Err(Problem::internal(&e)),
    }
}

/// Approve an action that waits for approval.
#[utoipa::path(post, path = "/api/v1/actions/{id}/approve", tag = "actions",
    params(("id" = String, Path, description = "Action id")),
    request_body(content = Option<Decision>, description = "Optional reason for the audit trail"),
    responses(
        (status = 200, description = "The action, now approved", body = Action),
        (status = 400, description = "The body is not valid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A valid token is required", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such action", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The action is not waiting for approval", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn approve(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<String>,
    body: axum::body::Bytes,
) -> Result<Json<Action>, Problem> {
    decide(state, id, true, body).await
}

/// Reject an action that waits for approval (it is skipped, with the reason).
#[utoipa::path(post, path = "/api/v1/actions/{id}/reject", tag = "actions",
    params(("id" = String, Path, description = "Action id")),
    request_body(content = Option<Decision>, description = "Optional reason for the audit trail"),
    responses(
        (status = 200, description = "The action, now skipped as rejected", body = Action),
        (status = 400, description = "The body is not valid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A valid token is required", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such action", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The action is not waiting for approval", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn reject(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<String>,
    body: axum::body::Bytes,
) -> Result<Json<Action>, Problem> {
    decide(state, id, false, body).await
}

/// The OpenAPI document, assembled from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(title = "Remedy API", description = "Incidents, ranked root causes, evidence and approvals"),
    paths(healthz, readyz, metrics_text, openapi, list_incidents, get_incident, list_anomalies,
          list_templates, get_signal, analyze, approve, reject),
    components(schemas(Problem, Health, IncidentPage, AnomalyPage, TemplatePage, AnalyzeRequest,
                       AnalyzeResponse, AnalyzeDeadLetter, AnalyzeInput, Decision)),
    modifiers(&BearerScheme)
)]
pub struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[cfg(test)]
mod tests;
