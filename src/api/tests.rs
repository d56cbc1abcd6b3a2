//! Router tests without a socket: each request goes through the whole
//! router (auth, limits, problem documents) with `tower::ServiceExt::oneshot`,
//! over a store written by a real replay of a generated scenario.

use super::*;
use axum::body::Body;
use axum::http::{HeaderMap, Request};
use clap::Parser;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tower::ServiceExt;

#[derive(Parser)]
struct GenerateCli {
    #[command(flatten)]
    args: crate::cmd::generate::Args,
}

#[derive(Parser)]
struct ReplayCli {
    #[command(flatten)]
    args: crate::cmd::replay::Args,
}

struct Fixture {
    _dir: tempfile::TempDir,
    scenario: PathBuf,
    db: PathBuf,
}

/// A four-hour, three-service scenario with a memory leak (whose restart
/// needs approval under the default policy), replayed into a database once
/// for every test here.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let scenario = dir.path().join("scenario");
        let db = dir.path().join("remedy.db");
        let g = GenerateCli::parse_from([
            "generate",
            "--out",
            scenario.to_str().unwrap(),
            "--duration",
            "4h",
            "--services",
            "3",
            "--scenario",
            "memory_leak",
            "--rate",
            "1",
        ]);
        crate::cmd::generate::run(g.args).unwrap();
        let r = ReplayCli::parse_from([
            "replay",
            scenario.to_str().unwrap(),
            "--out",
            dir.path().join("out").to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
        ]);
        crate::cmd::replay::run(r.args).unwrap();
        Fixture {
            _dir: dir,
            scenario,
            db,
        }
    })
}

/// A private copy of the fixture database, for tests that write.
fn copy_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.db");
    std::fs::copy(&fixture().db, &path).unwrap();
    (dir, path)
}

/// The result of a run over no records, for a test to fill in.
fn empty_run() -> engine::Findings {
    let mut pipeline = Engine::new(EngineSettings::for_run()).unwrap();
    engine::Publisher::new(reclaim::Policy::default())
        .conclude(&mut pipeline)
        .unwrap()
}

/// A store at `path` holding just these incidents.
fn write_incidents(path: &Path, incidents: Vec<Incident>) {
    let mut run = empty_run();
    run.incidents = incidents;
    store::Store::open(path)
        .unwrap()
        .write_findings(&run)
        .unwrap();
}

fn app_with(db: &Path, config: ApiConfig) -> Router {
    let db = Arc::new(Db::open(db, 2).unwrap());
    router(AppState {
        metrics: metrics::Metrics::new(db.clone()),
        db,
        config,
        policy: reclaim::Policy::default(),
        engine: engine::EngineSettings::for_run(),
    })
}

fn app() -> Router {
    app_with(
        &fixture().db,
        ApiConfig {
            tokens: vec!["t0ken".into()],
            ..ApiConfig::default()
        },
    )
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, headers, body)
}

async fn get(app: &Router, uri: &str) -> (StatusCode, HeaderMap, Value) {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

/// The detail (incident, actions, audit) of the fixture's memory leak,
/// found through the list as a client would.
async fn leak(app: &Router) -> Value {
    let (_, _, list) = get(app, "/api/v1/incidents?class=memory_leak").await;
    let id = list["items"][0]["id"].as_str().expect("the leak is listed");
    get(app, &format!("/api/v1/incidents/{id}")).await.2
}

fn post(uri: &str, token: Option<&str>, body: Value) -> Request<Body> {
    let mut b = Request::post(uri).header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(body.to_string())).unwrap()
}

/// A problem document with this status and code.
fn assert_problem(res: &(StatusCode, HeaderMap, Value), status: u16, code: &str) {
    assert_eq!(res.0.as_u16(), status, "{:?}", res.2);
    assert_eq!(
        res.1.get("content-type").unwrap(),
        "application/problem+json"
    );
    assert_eq!(res.2["status"], status);
    assert_eq!(res.2["code"], code);
    assert!(res.2["type"].as_str().unwrap().ends_with(code));
    assert!(!res.2["detail"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn probes_answer() {
    let app = app();
    let (s, _, b) = get(&app, "/healthz").await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, _, b) = get(&app, "/readyz").await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("ready")));
}

#[tokio::test]
async fn the_incident_list_finds_the_leak_and_filters() {
    let app = app();
    let (s, _, b) = get(&app, "/api/v1/incidents").await;
    assert_eq!(s, StatusCode::OK);
    let items = b["items"].as_array().unwrap();
    assert!(!items.is_empty());
    let leak = items
        .iter()
        .find(|i| i["root_cause"]["class"] == "memory_leak")
        .expect("the injected memory leak is an incident");
    assert_eq!(leak["root_cause"]["target"]["service"], "checkout");
    assert!(b.get("next_cursor").is_none(), "one page holds them all");

    for (query, expect_leak) in [
        ("service=checkout", true),
        ("service=no-such-service", false),
        ("class=memory_leak", true),
        ("class=disk_pressure", false),
        ("status=resolved", leak["status"] == "resolved"),
        ("status=open", leak["status"] == "open"),
        ("to=2026-01-05T00:10:00Z", false),
        ("from=2026-01-05T00:00:00Z&to=2026-01-06T00:00:00Z", true),
        ("from=2026-01-06T00:00:00Z", leak["status"] == "open"),
    ] {
        let (s, _, b) = get(&app, &format!("/api/v1/incidents?{query}")).await;
        assert_eq!(s, StatusCode::OK, "{query}");
        let found = b["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == leak["id"]);
        assert_eq!(found, expect_leak, "{query}");
    }
}

#[tokio::test]
async fn an_incident_carries_evidence_actions_and_audit() {
    let app = app();
    let (_, _, list) = get(&app, "/api/v1/incidents?class=memory_leak").await;
    let id = list["items"][0]["id"].as_str().unwrap().to_string();
    let (s, _, b) = get(&app, &format!("/api/v1/incidents/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["incident"]["id"], id.as_str());
    let top = &b["incident"]["root_causes"][0];
    let signal = top["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "signal")
        .expect("signal evidence");
    let a = &signal["anomaly"];
    assert!(a["observed"].as_f64().unwrap() > a["expected"]["upper"].as_f64().unwrap());
    let action = &b["actions"][0];
    assert_eq!(action["kind"]["type"], "restart");
    assert_eq!(action["requires_approval"], true);
    assert_eq!(action["status"]["state"], "planned");
    assert!(b["audit"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action_id"] == action["id"] && e["decision"] == "planned"));

    let res = get(&app, "/api/v1/incidents/inc-0-nothing").await;
    assert_problem(&res, 404, "not_found");
}

#[tokio::test]
async fn anomalies_link_to_signals_with_their_band() {
    let app = app();
    let (s, _, b) = get(&app, "/api/v1/anomalies?kind=resource_leak").await;
    assert_eq!(s, StatusCode::OK);
    let a = &b["items"][0];
    assert_eq!(a["anomaly"]["kind"], "resource_leak");
    let key = a["signal_key"].as_str().unwrap();
    let enc: String = key
        .bytes()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect();
    let (s, _, sig) = get(&app, &format!("/api/v1/signals/{enc}?limit=20000")).await;
    assert_eq!(s, StatusCode::OK, "{sig}");
    assert_eq!(sig["key"], key);
    let points = sig["points"].as_array().unwrap();
    assert!(points.len() > 100, "hours of windows, got {}", points.len());
    for p in points {
        let (lo, mid, hi) = (
            p["lower"].as_f64().unwrap(),
            p["expected"].as_f64().unwrap(),
            p["upper"].as_f64().unwrap(),
        );
        assert!(lo <= mid && mid <= hi, "{p}");
    }
    let ts: Vec<&str> = points
        .iter()
        .map(|p| p["timestamp"].as_str().unwrap())
        .collect();
    assert!(ts.windows(2).all(|w| w[0] < w[1]), "time order");
    assert!(points.iter().any(|p| p["alert"] == true));
    // The signal lists the anomaly (a leak can follow the level shift
    // that its alert opened with, so it need not be the first).
    assert!(
        sig["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["timestamp"] == a["anomaly"]["timestamp"]),
        "{sig}"
    );

    // A range narrows it.
    let (_, _, narrow) = get(
        &app,
        &format!("/api/v1/signals/{enc}?from=2026-01-05T01:00:00Z&to=2026-01-05T01:10:00Z"),
    )
    .await;
    let n = narrow["points"].as_array().unwrap();
    assert!(!n.is_empty() && n.len() < points.len());
    assert!(n.iter().all(
        |p| p["timestamp"].as_str().unwrap() >= "2026-01-05T01:00:00"
            && p["timestamp"].as_str().unwrap() <= "2026-01-05T01:10:00.000Z"
    ));

    let res = get(&app, "/api/v1/signals/no_such_signal").await;
    assert_problem(&res, 404, "not_found");
}

#[tokio::test]
async fn templates_page_by_count() {
    let app = app();
    let mut seen = Vec::new();
    let mut uri = "/api/v1/templates?limit=7".to_string();
    loop {
        let (s, _, b) = get(&app, &uri).await;
        assert_eq!(s, StatusCode::OK);
        let items = b["items"].as_array().unwrap();
        assert!(items.len() <= 7);
        seen.extend(items.iter().cloned());
        match b["next_cursor"].as_str() {
            Some(c) => uri = format!("/api/v1/templates?limit=7&cursor={c}"),
            None => break,
        }
    }
    assert!(seen.len() > 7, "more than one page");
    let counts: Vec<u64> = seen.iter().map(|t| t["count"].as_u64().unwrap()).collect();
    assert!(
        counts.windows(2).all(|w| w[0] >= w[1]),
        "most frequent first"
    );
    let ids: std::collections::HashSet<&str> =
        seen.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), seen.len(), "no template twice across pages");
}

#[tokio::test]
async fn incident_pages_cover_every_incident_once() {
    // A store with many incidents: the fixture's, cloned at other times.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.db");
    let detail = leak(&app()).await;
    let base: Incident = serde_json::from_value(detail["incident"].clone()).unwrap();
    let mut incidents = Vec::new();
    for i in 0..23 {
        let mut inc = base.clone();
        inc.id = format!("inc-{i:03}");
        // Pairs share a start, so ties are broken by id.
        inc.start = inc.start.add_millis((i / 2) * 60_000);
        incidents.push(inc);
    }
    write_incidents(&path, incidents);

    let app = app_with(&path, ApiConfig::default());
    let mut seen = Vec::new();
    let mut uri = "/api/v1/incidents?limit=5".to_string();
    loop {
        let (s, _, b) = get(&app, &uri).await;
        assert_eq!(s, StatusCode::OK);
        seen.extend(b["items"].as_array().unwrap().iter().map(|i| {
            (
                i["start"].as_str().unwrap().to_string(),
                i["id"].as_str().unwrap().to_string(),
            )
        }));
        match b["next_cursor"].as_str() {
            Some(c) => uri = format!("/api/v1/incidents?limit=5&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 23);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first, ties by id");
    sorted.dedup();
    assert_eq!(sorted.len(), 23, "no incident twice");
}

#[tokio::test]
async fn bad_parameters_are_problems_not_crashes() {
    let app = app();
    for uri in [
        "/api/v1/incidents?limit=0",
        "/api/v1/incidents?limit=501",
        "/api/v1/incidents?limit=many",
        "/api/v1/incidents?from=yesterday",
        "/api/v1/incidents?cursor=garbage",
        "/api/v1/incidents?class=gremlins",
        "/api/v1/anomalies?to=2026-13-45T00:00:00Z",
        "/api/v1/templates?cursor=t.x",
        "/api/v1/signals/x?limit=0",
        "/api/v1/signals/x?limit=many",
        // Path parameters that are not UTF-8 once decoded: the path
        // extractor's rejection, as a problem like the rest.
        "/api/v1/incidents/%FF",
        "/api/v1/signals/%FF",
        "/ui/incidents/%FF",
    ] {
        let res = get(&app, uri).await;
        assert_problem(&res, 400, "bad_request");
    }
    assert_problem(&get(&app, "/nowhere").await, 404, "not_found");
    let res = send(
        &app,
        Request::delete("/api/v1/incidents")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_problem(&res, 405, "method_not_allowed");
}

#[tokio::test]
async fn approving_needs_a_valid_token_and_is_audited() {
    let (_dir, path) = copy_db();
    let app = app_with(
        &path,
        ApiConfig {
            tokens: vec!["first".into(), "s3cret".into()],
            ..ApiConfig::default()
        },
    );
    let detail = leak(&app).await;
    let inc = detail["incident"]["id"].as_str().unwrap().to_string();
    let action = detail["actions"][0]["id"].as_str().unwrap().to_string();
    let uri = format!("/api/v1/actions/{action}/approve");

    let res = send(&app, post(&uri, None, json!({}))).await;
    assert_problem(&res, 401, "unauthorized");
    assert!(res.1.get("www-authenticate").is_some());
    for wrong in ["s3cre", "s3cretx", "S3CRET", ""] {
        let res = send(&app, post(&uri, Some(wrong), json!({}))).await;
        assert_problem(&res, 401, "unauthorized");
    }

    let (s, _, b) = send(
        &app,
        post(&uri, Some("s3cret"), json!({"reason": "on-call agrees"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"]["state"], "approved");

    // Once decided, it is no longer pending.
    let res = send(&app, post(&uri, Some("s3cret"), json!({}))).await;
    assert_problem(&res, 409, "not_pending");
    let res = send(
        &app,
        post(
            &format!("/api/v1/actions/{action}/reject"),
            Some("s3cret"),
            json!({}),
        ),
    )
    .await;
    assert_problem(&res, 409, "not_pending");

    let (_, _, detail) = get(&app, &format!("/api/v1/incidents/{inc}")).await;
    assert_eq!(detail["actions"][0]["status"]["state"], "approved");
    let approved: Vec<&Value> = detail["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["decision"] == "approved")
        .collect();
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0]["reason"], "on-call agrees");

    let res = send(
        &app,
        post(
            "/api/v1/actions/no-such-action/approve",
            Some("first"),
            json!({}),
        ),
    )
    .await;
    assert_problem(&res, 404, "not_found");
}

#[tokio::test]
async fn rejecting_skips_the_action_with_the_reason() {
    let (_dir, path) = copy_db();
    let app = app_with(
        &path,
        ApiConfig {
            tokens: vec!["s3cret".into()],
            ..ApiConfig::default()
        },
    );
    let detail = leak(&app).await;
    let inc = detail["incident"]["id"].as_str().unwrap().to_string();
    let action = detail["actions"][0]["id"].as_str().unwrap().to_string();
    let req = Request::post(format!("/api/v1/actions/{action}/reject"))
        .header("authorization", "Bearer s3cret")
        .body(Body::empty())
        .unwrap();
    let (s, _, b) = send(&app, req).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"]["state"], "skipped");
    assert_eq!(b["status"]["reason"], "rejected: rejected via the API");
    let (_, _, detail) = get(&app, &format!("/api/v1/incidents/{inc}")).await;
    assert!(detail["audit"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["decision"] == "rejected"));
}

#[tokio::test]
async fn with_no_tokens_configured_nothing_can_be_approved() {
    let (_dir, path) = copy_db();
    let app = app_with(&path, ApiConfig::default());
    let res = send(
        &app,
        post("/api/v1/actions/x/approve", Some("anything"), json!({})),
    )
    .await;
    assert_problem(&res, 401, "unauthorized");
}

#[tokio::test]
async fn reads_can_require_a_token_but_probes_never_do() {
    let app = app_with(
        &fixture().db,
        ApiConfig {
            tokens: vec!["s3cret".into()],
            auth_reads: true,
            ..ApiConfig::default()
        },
    );
    for uri in ["/api/v1/incidents", "/api/v1/templates", "/metrics"] {
        assert_problem(&get(&app, uri).await, 401, "unauthorized");
        let req = Request::get(uri)
            .header("authorization", "Bearer s3cret")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, req).await.0, StatusCode::OK, "{uri}");
    }
    for uri in ["/healthz", "/readyz", "/api/v1/openapi.json"] {
        assert_eq!(get(&app, uri).await.0, StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = app_with(
        &fixture().db,
        ApiConfig {
            tokens: vec!["s3cret".into()],
            auth_reads: true,
            ..ApiConfig::default()
        },
    );
    // RFC 9110: the scheme is case-insensitive; the token is not.
    for value in [
        "bearer s3cret",
        "BEARER s3cret",
        "Bearer  s3cret",
        "bEaReR\ts3cret",
    ] {
        let req = Request::get("/api/v1/incidents")
            .header("authorization", value)
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, req).await.0, StatusCode::OK, "{value:?}");
    }
    for value in [
        "bearer S3CRET",
        "Basic s3cret",
        "Bearers3cret",
        "bearer",
        "s3cret",
    ] {
        let req = Request::get("/api/v1/incidents")
            .header("authorization", value)
            .body(Body::empty())
            .unwrap();
        assert_problem(&send(&app, req).await, 401, "unauthorized");
    }
}

#[test]
fn tokens_compare_whole() {
    let tokens = vec!["abc".to_string(), "".to_string()];
    assert!(token_matches(&tokens, "abc"));
    for t in ["", "ab", "abcd", "ABC"] {
        assert!(!token_matches(&tokens, t), "{t:?}");
    }
}

#[tokio::test]
async fn analyze_gives_the_incidents_replay_gives() {
    let f = fixture();
    // Every file of the scenario as one input each, in replay's order.
    let mut files = Vec::new();
    for sub in ["logs", "metrics"] {
        let mut dir: Vec<PathBuf> = std::fs::read_dir(f.scenario.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        dir.sort();
        files.extend(dir);
    }
    let mut inputs = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        inputs.push(json!({
            "name": path.file_name().unwrap().to_str().unwrap(),
            "lines": text.lines().collect::<Vec<_>>(),
        }));
    }
    let app = app_with(
        &f.db,
        ApiConfig {
            body_limit: 200 << 20,
            max_analyze_lines: 1_000_000,
            open_analyze: true,
            ..ApiConfig::default()
        },
    );
    let (s, _, b) = send(
        &app,
        post("/api/v1/analyze", None, json!({ "inputs": inputs })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["read"], b["parsed"]);
    let (_, _, stored) = get(&app, "/api/v1/incidents?limit=500").await;
    let mut from_api: Vec<(String, String)> = b["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().into(),
                i["root_causes"][0]["class"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut from_replay: Vec<(String, String)> = stored["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().into(),
                i["root_cause"]["class"].as_str().unwrap().into(),
            )
        })
        .collect();
    from_api.sort();
    from_replay.sort();
    assert!(!from_api.is_empty());
    assert_eq!(from_api, from_replay);
    assert_eq!(b["actions"][0]["kind"]["type"], "restart");
}

/// `POST /analyze` runs the engine the server was configured with
/// (`serve --config`, `run`'s `[engine]` table), not a default one: here a
/// record cap of 128 bytes dead-letters the long record, as a replay with
/// the same setting would.
#[tokio::test]
async fn analyze_uses_the_servers_engine_configuration() {
    let db = Arc::new(Db::open(&fixture().db, 2).unwrap());
    let config = engine::EngineConfig {
        max_line_bytes: 128,
        ..Default::default()
    };
    let app = router(AppState {
        metrics: metrics::Metrics::new(db.clone()),
        db,
        config: ApiConfig {
            open_analyze: true,
            ..ApiConfig::default()
        },
        policy: reclaim::Policy::default(),
        engine: config.settings(&[]).unwrap(),
    });
    let long = format!(
        r#"{{"timestamp":"2026-01-05T00:00:01Z","level":"info","message":"{}","service":"api"}}"#,
        "x".repeat(100)
    );
    let (s, _, b) = send(
        &app,
        post(
            "/api/v1/analyze",
            None,
            json!({"inputs": [{"name": "app", "format": "json", "lines": [
                r#"{"timestamp":"2026-01-05T00:00:00Z","level":"info","message":"ok","service":"api"}"#,
                long,
            ]}]}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["read"].as_u64(), b["parsed"].as_u64()),
        (Some(2), Some(1)),
        "{b}"
    );
    assert_eq!(b["dead_letters"][0]["line"], 2, "{b}");
    assert_eq!(b["dead_letters"][0]["reason"], "line_too_long", "{b}");
}

#[tokio::test]
async fn analyze_keeps_bad_records_and_refuses_bad_requests() {
    let app = app_with(
        &fixture().db,
        ApiConfig {
            body_limit: 4096,
            max_analyze_lines: 10,
            open_analyze: true,
            ..ApiConfig::default()
        },
    );
    let (s, _, b) = send(
        &app,
        post(
            "/api/v1/analyze",
            None,
            json!({"inputs": [{"name": "app", "format": "json", "lines": [
                r#"{"timestamp":"2026-01-05T00:00:00Z","level":"error","message":"boom","service":"api"}"#,
                "{not json",
            ]}]}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        (b["read"].as_u64(), b["parsed"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(b["dead_letters"][0]["input"], "app");
    assert_eq!(b["dead_letters"][0]["line"], 2);
    assert_eq!(b["dead_letters"][0]["reason"], "invalid_json");

    let big = "x".repeat(5000);
    let res = send(
        &app,
        post(
            "/api/v1/analyze",
            None,
            json!({"inputs": [{"lines": [big]}]}),
        ),
    )
    .await;
    assert_problem(&res, 413, "payload_too_large");
    let res = send(
        &app,
        post(
            "/api/v1/analyze",
            None,
            json!({"inputs": [{"lines": vec!["a"; 11]}]}),
        ),
    )
    .await;
    assert_problem(&res, 413, "payload_too_large");
    let res = send(
        &app,
        post(
            "/api/v1/analyze",
            None,
            json!({"inputs": [{"format": "klingon", "lines": ["a"]}]}),
        ),
    )
    .await;
    assert_problem(&res, 400, "bad_request");
    let res = send(&app, post("/api/v1/analyze", None, json!({"lines": ["a"]}))).await;
    assert_problem(&res, 422, "bad_request");
    let req = Request::post("/api/v1/analyze")
        .header("content-type", "application/json")
        .body(Body::from("{\"inputs\": ["))
        .unwrap();
    assert_problem(&send(&app, req).await, 400, "bad_request");
    let req = Request::post("/api/v1/analyze")
        .body(Body::from("{}"))
        .unwrap();
    assert_problem(&send(&app, req).await, 415, "unsupported_media_type");
}

#[tokio::test]
async fn metrics_follow_prometheus_conventions() {
    let app = app();
    // One request first, so the histogram has a series.
    let _ = get(&app, "/api/v1/incidents").await;
    let (s, h, body) = get(&app, "/metrics").await;
    assert_eq!(s, StatusCode::OK);
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = body.as_str().unwrap();
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture().db.parent().unwrap().join("out/summary.json")).unwrap(),
    )
    .unwrap();
    let read = summary["ingest"]["read"].as_u64().unwrap();
    assert!(
        text.contains(&format!("remedy_records_read_total {read}\n")),
        "{text}"
    );
    assert!(text.contains("# TYPE remedy_records_dead_lettered counter"));
    // What was counted but not analysed: late events and what the memory
    // caps turned away, as the stored run's summary says.
    let late = summary["late_events"].as_u64().unwrap();
    assert!(text.contains("# TYPE remedy_analysis_late_events counter"));
    let served: u64 = text
        .lines()
        .filter(|l| l.starts_with("remedy_analysis_late_events_total{reason="))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(served, late, "{text}");
    let over = summary["metric_series_over_cap"].as_u64().unwrap();
    assert!(
        text.contains(&format!(
            "remedy_analysis_over_cap_total{{cap=\"metric_series\"}} {over}\n"
        )),
        "{text}"
    );
    assert!(text.contains("remedy_analysis_over_cap_total{cap=\"signal_observations\"}"));
    assert!(text.contains("remedy_anomalies_total{kind=\"resource_leak\"}"));
    assert!(text.contains("remedy_incidents{class=\"memory_leak\""));
    assert!(text.contains("remedy_actions{status=\"planned\"}"));
    assert!(text.contains("# TYPE remedy_http_request_duration_seconds histogram"));
    assert!(text.contains(
        "remedy_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/incidents\",status=\"200\"} 1"
    ));
    assert!(text.ends_with("# EOF\n"));
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let (s, _, doc) = get(&app(), "/api/v1/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/incidents",
        "/api/v1/incidents/{id}",
        "/api/v1/anomalies",
        "/api/v1/templates",
        "/api/v1/signals/{key}",
        "/api/v1/analyze",
        "/api/v1/actions/{id}/approve",
        "/api/v1/actions/{id}/reject",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    for schema in [
        "Incident",
        "Anomaly",
        "Action",
        "AuditEntry",
        "Problem",
        "Evidence",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "{schema}"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

fn slow_analysis(lines: usize) -> Request<Body> {
    let lines: Vec<String> = (0..lines)
        .map(|i| {
            format!(
                "<13>Jan  5 00:{:02}:{:02} host app[1]: request {i} took {}ms",
                (i / 60) % 60,
                i % 60,
                i % 977
            )
        })
        .collect();
    post(
        "/api/v1/analyze",
        None,
        json!({"inputs": [{"format": "syslog", "lines": lines}]}),
    )
}

#[tokio::test]
async fn a_request_over_the_timeout_gets_a_problem() {
    let app = app_with(
        &fixture().db,
        ApiConfig {
            timeout: Duration::from_millis(1),
            body_limit: 64 << 20,
            open_analyze: true,
            ..ApiConfig::default()
        },
    );
    let res = send(&app, slow_analysis(20_000)).await;
    assert_problem(&res, 503, "timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_refused_at_once_with_a_problem() {
    let app = app_with(
        &fixture().db,
        ApiConfig {
            concurrency: 1,
            body_limit: 64 << 20,
            max_analyze_lines: 1_000_000,
            open_analyze: true,
            ..ApiConfig::default()
        },
    );
    // One slow request holds the only slot...
    // (The request is built first: only sending it is in the task.)
    let req = slow_analysis(200_000);
    let slow = tokio::spawn({
        let app = app.clone();
        async move { send(&app, req).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...so the next is shed at once rather than queued, but the probes
    // and metrics stand outside the limit and still answer.
    let res = get(&app, "/api/v1/incidents").await;
    assert_problem(&res, 503, "overloaded");
    for probe in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(get(&app, probe).await.0, StatusCode::OK, "{probe}");
    }
    let done = slow.await.unwrap();
    assert_eq!(done.0, StatusCode::OK, "{}", done.2);
    assert_eq!(get(&app, "/api/v1/incidents").await.0, StatusCode::OK);
    let (_, _, metrics) = get(&app, "/metrics").await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("remedy_http_requests_shed_total{reason=\"overloaded\"} 1"),
        "{metrics}"
    );
}

/// Issue #21, finding 3: `POST /analyze` needed no token, any number ran
/// at once, and work went on after the client had gone.
#[tokio::test]
async fn analyze_needs_a_token_by_default() {
    let app = app_with(
        &fixture().db,
        ApiConfig {
            tokens: vec!["s3cret".into()],
            ..ApiConfig::default()
        },
    );
    let body = json!({"inputs": [{"format": "json", "lines": [
        r#"{"timestamp":"2026-01-05T00:00:00Z","level":"error","message":"boom","service":"api"}"#,
    ]}]});
    let res = send(&app, post("/api/v1/analyze", None, body.clone())).await;
    assert_problem(&res, 401, "unauthorized");
    let res = send(&app, post("/api/v1/analyze", Some("wrong"), body.clone())).await;
    assert_problem(&res, 401, "unauthorized");
    let (s, _, b) = send(&app, post("/api/v1/analyze", Some("s3cret"), body)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["parsed"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyses_beyond_the_budget_are_refused_and_abandoned_ones_stop() {
    let app = app_with(
        &fixture().db,
        ApiConfig {
            body_limit: 64 << 20,
            max_analyze_lines: 1_000_000,
            open_analyze: true,
            analyze_concurrency: 1,
            ..ApiConfig::default()
        },
    );
    // One long analysis takes the only analysis slot...
    let req = slow_analysis(400_000);
    let slow = tokio::spawn({
        let app = app.clone();
        async move { send(&app, req).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // ...so another is refused at once, while reads are still answered.
    let res = send(&app, slow_analysis(10)).await;
    assert_problem(&res, 503, "overloaded");
    // (Its body is parsed by now and the engine is working through it.)
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(get(&app, "/api/v1/incidents").await.0, StatusCode::OK);
    // The client goes away: the analysis stops and gives its slot back.
    slow.abort();
    let _ = slow.await;
    let mut answered = None;
    for _ in 0..600 {
        let res = send(&app, slow_analysis(10)).await;
        if res.0 == StatusCode::OK {
            answered = Some(res);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered.is_some(), "the analysis slot never came back");
    let (_, _, metrics) = get(&app, "/metrics").await;
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains("remedy_http_analyses_cancelled_total 1\n"),
        "{text}"
    );
    // (The polling above may have been refused too while it stopped.)
    assert!(
        text.contains("remedy_http_requests_shed_total{reason=\"analysis_budget\"} "),
        "{text}"
    );
}

#[tokio::test]
async fn the_dashboard_lists_incidents_and_plots_their_signals() {
    let app = app();
    let (s, h, body) = get(&app, "/").await;
    assert_eq!(s, StatusCode::OK);
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = body.as_str().unwrap();
    let (_, _, list) = get(&app, "/api/v1/incidents?class=memory_leak").await;
    let id = list["items"][0]["id"].as_str().unwrap();
    assert!(
        html.contains(&format!("href=\"/ui/incidents/{id}\"")),
        "{html}"
    );
    assert!(html.contains("memory_leak"));
    assert!(html.contains("<html lang=\"en\">"));
    // No asset from the network.
    assert!(!html.contains("http://") && !html.contains("https://"));

    let (s, _, body) = get(&app, &format!("/ui/incidents/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    let page = body.as_str().unwrap();
    // One plot per anomalous signal, drawn from stored points, with the
    // anomaly marked and a band.
    let plots = page.matches("class=\"signal-plot\"").count();
    assert!(plots >= 1, "{page}");
    let points: usize = page
        .split("data-points=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(points > 100, "a plot covers the hour around the incident");
    assert!(page.contains("class=\"band\""));
    assert!(page.contains("class=\"observed\""));
    assert!(page.contains("class=\"anomaly\""));
    // The leak's restart waits for approval: both buttons are there.
    assert!(page.contains("data-decide=\"approve\""));
    assert!(page.contains("data-decide=\"reject\""));
    assert!(page.contains("<label for=\"token\""));

    let (s, _, body) = get(&app, "/ui/incidents/inc-0-nothing").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(body.as_str().unwrap().contains("No such incident"));
}

#[tokio::test]
async fn the_dashboard_escapes_what_came_from_logs() {
    // An incident whose evidence carries markup from a crafted log line.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    let detail = leak(&app()).await;
    let mut inc: Incident = serde_json::from_value(detail["incident"].clone()).unwrap();
    inc.root_causes[0]
        .evidence
        .push(models::Evidence::Template {
            template_id: "T1".into(),
            template: "<script>alert(1)</script> <*>".into(),
            count: 3,
            examples: vec!["<img src=x onerror=alert(2)>".into()],
        });
    write_incidents(&path, vec![inc.clone()]);
    let app = app_with(&path, ApiConfig::default());
    let (s, _, body) = get(&app, &format!("/ui/incidents/{}", inc.id)).await;
    assert_eq!(s, StatusCode::OK);
    let page = body.as_str().unwrap();
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains("<script>alert(1)"));
    assert!(!page.contains("<img src=x"));
}

#[tokio::test]
async fn an_incident_page_plots_the_templates_that_rose_not_the_steady_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let detail = leak(&app()).await;
    let inc: Incident = serde_json::from_value(detail["incident"].clone()).unwrap();
    let end = inc.end.unwrap_or(inc.start.add_millis(30 * 60_000));
    let minutes = (end.as_millis() - inc.start.as_millis()) / 60_000;
    let mut run = empty_run();
    let point = |id: &str, m: i64, n: f64| analyze::TracePoint {
        signal: std::sync::Arc::new(models::Signal {
            kind: models::SignalKind::TemplateCount,
            name: id.into(),
            service: None,
            host: None,
            container: None,
        }),
        timestamp: inc.start.add_millis(m * 60_000),
        observed: n,
        band: models::Band {
            lower: n,
            expected: n,
            upper: n,
        },
        score: 0.0,
        alert: false,
    };
    for m in -minutes..minutes {
        // T1: one a minute before, ten a minute during; T2: five throughout.
        run.trace
            .push(point("T1", m, if m < 0 { 1.0 } else { 10.0 }));
        run.trace.push(point("T2", m, 5.0));
    }
    run.templates = vec![
        engine::TemplateSummary {
            id: "T1".into(),
            template: "disk <*> is full".into(),
            count: 1,
        },
        engine::TemplateSummary {
            id: "T2".into(),
            template: "GET <*> 200".into(),
            count: 1,
        },
    ];
    run.incidents = vec![inc.clone()];
    store::Store::open(&path)
        .unwrap()
        .write_findings(&run)
        .unwrap();
    let app = app_with(&path, ApiConfig::default());
    let (s, _, body) = get(&app, &format!("/ui/incidents/{}", inc.id)).await;
    assert_eq!(s, StatusCode::OK);
    let page = body.as_str().unwrap();
    assert!(page.contains("Templates that rose during the incident"));
    assert!(page.contains("disk &lt;*&gt; is full"));
    assert!(
        !page.contains("GET &lt;*&gt; 200"),
        "a steady template is not evidence"
    );
}

/// A store call waits on the blocking pool, not on an async worker: while
/// every connection of the pool is busy elsewhere, a list request waits
/// and the probe on the same one-thread runtime is still answered. (With
/// the query on the async worker, the worker itself would wait on the
/// pool's mutex and answer nothing until a connection came free.)
#[tokio::test(flavor = "current_thread")]
async fn a_busy_store_does_not_stall_other_requests() {
    let db = Arc::new(Db::open(&fixture().db, 2).unwrap());
    let app = router(AppState {
        metrics: metrics::Metrics::new(db.clone()),
        db: db.clone(),
        config: ApiConfig::default(),
        policy: reclaim::Policy::default(),
        engine: engine::EngineSettings::for_run(),
    });
    // Both connections held by threads of the test's own, until released
    // (or for a few seconds, so that a regression fails and never hangs).
    let (held_tx, held) = std::sync::mpsc::channel();
    let mut releases = Vec::new();
    let mut holders = Vec::new();
    for _ in 0..2 {
        let (release, released) = std::sync::mpsc::channel::<()>();
        releases.push(release);
        let (db, held_tx) = (db.clone(), held_tx.clone());
        holders.push(std::thread::spawn(move || {
            db.with(|_| {
                held_tx.send(()).unwrap();
                let _ = released.recv_timeout(Duration::from_secs(5));
                Ok(())
            })
            .unwrap()
        }));
    }
    for _ in 0..2 {
        held.recv_timeout(Duration::from_secs(5)).unwrap();
    }
    let list = tokio::spawn({
        let app = app.clone();
        async move { get(&app, "/api/v1/incidents").await.0 }
    });
    // Let the list request run up to its store call.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(get(&app, "/healthz").await.0, StatusCode::OK);
    assert!(
        !list.is_finished(),
        "the list answered while the store was busy"
    );
    drop(releases);
    assert_eq!(list.await.unwrap(), StatusCode::OK);
    for h in holders {
        h.join().unwrap();
    }
}
