//! The dashboard: server-rendered pages over the same store as the JSON
//! API, with no assets from the network (the styles and the few lines of
//! script are in the page).
//!
//! `/` lists incidents and refreshes itself from `/api/v1/incidents`; an
//! incident page shows its ranked root causes, each anomalous signal
//! plotted against its baseline band (SVG drawn here, anomaly and change
//! events marked), its templates and its actions with approve and reject
//! buttons (the token is typed into the page and sent as a bearer header,
//! never stored beyond the tab). Markup comes from maud, which escapes
//! every value it is given: log text cannot inject HTML.

use super::problem::{ApiPath, Problem};
use super::Shared;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use models::{Action, ActionStatus, Evidence, Timestamp};
use store::{self, SignalSeries};

const STYLE: &str = r#"
:root { color-scheme: light dark; --fg: #1d2330; --muted: #5b6475; --line: #d0d5de;
  --band: rgba(70,130,220,.18); --obs: #1f5fbf; --bad: #c0392b; --chg: #8e44ad; --bg: #fff; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e9ef; --muted: #a3abba; --line: #3a4150;
  --band: rgba(90,150,240,.25); --obs: #7fb0ff; --bad: #ff7b6b; --chg: #d39cf0; --bg: #151922; } }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: var(--fg); background: var(--bg); }
header { padding: .6rem 1rem; border-bottom: 1px solid var(--line); }
header a { color: inherit; font-weight: 600; text-decoration: none; }
main { padding: 1rem; max-width: 72rem; margin: auto; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; }
.muted { color: var(--muted); }
.status-open { color: var(--bad); font-weight: 600; }
figure { margin: 1rem 0 1.5rem; }
figcaption { font-family: ui-monospace, monospace; font-size: .85rem; word-break: break-all; }
svg { width: 100%; height: auto; max-width: 60rem; display: block; }
code { font-family: ui-monospace, monospace; font-size: .9em; word-break: break-word; }
button { font: inherit; padding: .2rem .7rem; margin-right: .3rem; }
input { font: inherit; }
"#;

fn page(title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · Remedy" }
                    style { (PreEscaped(STYLE)) }
                }
                body {
                    header { a href="/" { "Remedy" } " " span.muted { "incidents, root causes, remediation" } }
                    main { (body) }
                }
            }
        }
        .into_string(),
    )
}

fn target_text(t: &models::Target) -> String {
    [
        ("service", &t.service),
        ("host", &t.host),
        ("container", &t.container),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
    .collect::<Vec<_>>()
    .join(" ")
}

/// `GET /`: the incident list, refreshed live.
pub async fn index(State(state): State<Shared>) -> Result<Html<String>, Problem> {
    let (items, _) = state
        .query(|c| store::list_incidents(c, &store::IncidentFilter::default(), None, 100))
        .await?;
    let items: Vec<store::IncidentSummary> = items
        .iter()
        .map(|raw| serde_json::from_str(raw.get()))
        .collect::<Result<_, _>>()
        .map_err(anyhow::Error::from)?;
    let body = html! {
        h1 { "Incidents" }
        p.muted { "Newest first. " span #updated aria-live="polite" { "The list refreshes every 5 seconds." } }
        div.scroll {
            table {
                caption.muted { "The 100 most recent incidents" }
                thead { tr {
                    th scope="col" { "Start" } th scope="col" { "Status" } th scope="col" { "Root cause" }
                    th scope="col" { "Target" } th scope="col" { "Confidence" } th scope="col" { "Services" }
                    th scope="col" { "Anomalies" }
                } }
                tbody #incidents {
                    @for i in &items {
                        tr {
                            td { a href={ "/ui/incidents/" (i.id) } { (i.start.to_string()) } }
                            td class={ "status-" (i.status.as_str()) } { (i.status.as_str()) }
                            td { (i.root_cause.as_ref().map_or("unknown", |r| r.class.as_str())) }
                            td { code { (i.root_cause.as_ref().map(|r| target_text(&r.target)).unwrap_or_default()) } }
                            td { (i.root_cause.as_ref().map_or(String::new(), |r| format!("{:.2}", r.confidence))) }
                            td { (i.services.join(", ")) }
                            td { (i.anomalies) }
                        }
                    }
                }
            }
        }
        @if items.is_empty() {
            p { "No incidents yet. Replay some data with " code { "remedy replay --db" } "." }
        }
        script { (PreEscaped(LIVE_SCRIPT)) }
    };
    Ok(page("Incidents", body))
}

/// Rebuilds the rows from the JSON API with DOM text nodes (no HTML is
/// parsed from the data).
const LIVE_SCRIPT: &str = r#"
(function () {
  function cell(tr, text, cls) { var td = document.createElement('td'); if (cls) td.className = cls; td.textContent = text; tr.appendChild(td); return td; }
  function target(t) { return ['service', 'host', 'container'].filter(function (k) { return t && t[k]; }).map(function (k) { return k + '=' + t[k]; }).join(' '); }
  async function refresh() {
    try {
      var res = await fetch('/api/v1/incidents?limit=100', { headers: { 'Accept': 'application/json' } });
      if (!res.ok) return;
      var page = await res.json();
      var body = document.getElementById('incidents');
      var rows = document.createDocumentFragment();
      page.items.forEach(function (i) {
        var tr = document.createElement('tr');
        var td = document.createElement('td'); var a = document.createElement('a');
        a.href = '/ui/incidents/' + encodeURIComponent(i.id); a.textContent = i.start; td.appendChild(a); tr.appendChild(td);
        cell(tr, i.status, 'status-' + i.status);
        var rc = i.root_cause || {};
        cell(tr, rc.class || 'unknown');
        var c = cell(tr, ''); var code = document.createElement('code'); code.textContent = target(rc.target); c.appendChild(code);
        cell(tr, rc.confidence === undefined ? '' : rc.confidence.toFixed(2));
        cell(tr, (i.services || []).join(', '));
        cell(tr, String(i.anomalies));
        rows.appendChild(tr);
      });
      body.replaceChildren(rows);
      document.getElementById('updated').textContent = 'Updated ' + new Date().toLocaleTimeString() + '.';
    } catch (e) { /* keep the last good list */ }
  }
  setInterval(refresh, 5000);
})();
"#;

/// `GET /ui/incidents/{id}`: one incident with plots, templates and actions.
pub async fn incident(
    State(state): State<Shared>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    let key = id.clone();
    let Some(detail) = state.query(move |c| store::get_incident(c, &key)).await? else {
        let body = html! {
            h1 { "No such incident" }
            p { "There is no incident " code { (id) } ". " a href="/" { "Back to the list" } "." }
        };
        return Ok((StatusCode::NOT_FOUND, page("Not found", body)).into_response());
    };
    let inc = &detail.incident;
    // Signals to plot: every anomalous signal of the incident, once, up to
    // eight (the evidence of the top root cause first).
    let mut keys: Vec<String> = Vec::new();
    let top_first = inc
        .root_causes
        .first()
        .into_iter()
        .flat_map(|r| r.evidence.iter())
        .filter_map(|e| match e {
            Evidence::Signal { anomaly } => Some(anomaly.signal.to_string()),
            _ => None,
        })
        .chain(inc.anomalies.iter().map(|a| a.signal.to_string()));
    for k in top_first {
        if !keys.contains(&k) && keys.len() < 8 {
            keys.push(k);
        }
    }
    let end = inc.end.unwrap_or(inc.start.add_millis(30 * 60_000));
    let from = inc.start.add_millis(-45 * 60_000);
    let to = end.add_millis(15 * 60_000);
    let series: Vec<SignalSeries> = state
        .query(move |c| {
            let mut out = Vec::new();
            for k in &keys {
                if let Some(s) = store::get_signal(c, k, Some(from), Some(to), 2000)? {
                    out.push(s);
                }
            }
            Ok(out)
        })
        .await?;
    let templates: Vec<(&String, &String, &u64, &Vec<String>)> = inc
        .root_causes
        .first()
        .into_iter()
        .flat_map(|r| r.evidence.iter())
        .filter_map(|e| match e {
            Evidence::Template {
                template_id,
                template,
                count,
                examples,
            } => Some((template_id, template, count, examples)),
            _ => None,
        })
        .collect();
    // Counts over time of the templates that rose most during the
    // incident (per minute, stored by replay with --db).
    let start = inc.start;
    let template_series: Vec<(String, SignalSeries)> = state
        .query(move |c| {
            let mut out = Vec::new();
            for (key, text, ..) in store::rising_templates(c, start, end, 3)? {
                if let Some(s) = store::get_signal(c, &key, Some(from), Some(to), 2000)? {
                    out.push((text, per_minute(s, from, to)));
                }
            }
            Ok(out)
        })
        .await?;
    let changes: Vec<&models::ChangeEvent> = inc
        .root_causes
        .iter()
        .flat_map(|r| r.evidence.iter())
        .filter_map(|e| match e {
            Evidence::Change { change } => Some(change),
            _ => None,
        })
        .collect();
    let body = html! {
        p { a href="/" { "← All incidents" } }
        h1 { "Incident " code { (inc.id) } }
        p {
            span class={ "status-" (inc.status.as_str()) } { (inc.status.as_str()) }
            " · " (inc.start.to_string()) " – " (inc.end.map_or("open".to_string(), |e| e.to_string()))
            " · " (inc.anomalies.len()) " anomalies"
        }
        h2 { "Root causes" }
        ol {
            @for rc in &inc.root_causes {
                li { strong { (rc.class.as_str()) } " " code { (target_text(&rc.target)) } " — confidence " (format!("{:.2}", rc.confidence)) }
            }
        }
        h2 { "Signals against their baseline" }
        @if series.is_empty() {
            p.muted { "No signal traces were stored for this incident (replay with --db keeps them)." }
        }
        @for s in &series {
            figure {
                (plot(s, &changes, from, to))
                figcaption { (s.key) }
            }
        }
        @if !templates.is_empty() {
            h2 { "Log templates during the incident" }
            div.scroll { table {
                thead { tr { th scope="col" { "Count" } th scope="col" { "Template" } th scope="col" { "Example" } } }
                tbody { @for (tid, t, n, ex) in &templates {
                    tr { td { (n) } td { code title=(tid) { (t) } } td { code { (ex.first().map(String::as_str).unwrap_or("")) } } }
                } }
            } }
        }
        @if !template_series.is_empty() {
            h2 { "Templates that rose during the incident" }
            @for (text, ts) in &template_series {
                figure {
                    (plot(ts, &changes, from, to))
                    figcaption { "records per minute: " code { (text) } }
                }
            }
        }
        @if !changes.is_empty() {
            h2 { "Changes before onset" }
            ul { @for c in &changes {
                li { (c.timestamp.to_string()) " " (c.kind.as_str()) " of " strong { (c.service) } " " (c.version.as_deref().unwrap_or("")) }
            } }
        }
        h2 { "Actions" }
        @if detail.actions.is_empty() { p.muted { "No action planned." } }
        @else {
            p {
                label for="token" { "API token (needed to approve or reject): " }
                input #token type="password" autocomplete="off" size="24";
            }
            div.scroll { table {
                thead { tr { th scope="col" { "Action" } th scope="col" { "Target" } th scope="col" { "Status" } th scope="col" { "Mode" } th scope="col" { "Decision" } } }
                tbody { @for a in &detail.actions { (action_row(a)) } }
            } }
            p #decision-result role="status" aria-live="polite" {}
        }
        h2 { "Audit trail" }
        div.scroll { table {
            thead { tr { th scope="col" { "Time" } th scope="col" { "Action" } th scope="col" { "Decision" } th scope="col" { "Reason" } } }
            tbody { @for e in &detail.audit {
                tr { td { (e.timestamp.to_string()) } td { code { (e.action_id) } } td { (e.decision) } td { (e.reason) } }
            } }
        } }
        script { (PreEscaped(DECIDE_SCRIPT)) }
    };
    Ok(page(&format!("Incident {}", inc.id), body).into_response())
}

/// A template's counts on a full one-minute grid: minutes without a record
/// are stored as nothing, and a plot must show them as zero, not draw a line
/// across them.
fn per_minute(mut s: SignalSeries, from: Timestamp, to: Timestamp) -> SignalSeries {
    let stored: std::collections::HashMap<i64, f64> = s
        .points
        .iter()
        .map(|p| (p.timestamp.as_millis().div_euclid(60_000), p.observed))
        .collect();
    let (first, last) = (
        from.as_millis().div_euclid(60_000),
        to.as_millis().div_euclid(60_000),
    );
    s.points = (first..=last)
        .map(|m| {
            let v = stored.get(&m).copied().unwrap_or(0.0);
            store::StoredPoint {
                timestamp: Timestamp::from_millis(m * 60_000),
                observed: v,
                lower: v,
                expected: v,
                upper: v,
                score: 0.0,
                alert: false,
            }
        })
        .collect();
    s
}

fn action_status(a: &Action) -> String {
    match &a.status {
        ActionStatus::Failed { reason } | ActionStatus::Skipped { reason } => {
            format!("{}: {reason}", a.status.state())
        }
        other => other.state().to_string(),
    }
}

fn action_row(a: &Action) -> Markup {
    let pending = a.requires_approval && a.status == ActionStatus::Planned;
    html! {
        tr data-action=(a.id) {
            td { (a.kind.name()) }
            td { code { (target_text(&a.target)) } }
            td.action-status { (action_status(a)) }
            td { (if a.dry_run { "dry-run" } else { "live" })
                 @if let Some(v) = a.verified { " · " (if v { "verified" } else { "not verified" }) } }
            td {
                @if pending {
                    button type="button" data-decide="approve" data-id=(a.id) { "Approve" }
                    button type="button" data-decide="reject" data-id=(a.id) { "Reject" }
                } @else if a.requires_approval {
                    span.muted { "decided" }
                } @else {
                    span.muted { "no approval needed" }
                }
            }
        }
    }
}

/// Approve or reject through the JSON API with the typed token; the row's
/// status is updated from the answer.
const DECIDE_SCRIPT: &str = r#"
(function () {
  document.querySelectorAll('button[data-decide]').forEach(function (b) {
    b.addEventListener('click', async function () {
      var out = document.getElementById('decision-result');
      var token = document.getElementById('token').value.trim();
      if (!token) { out.textContent = 'Type the API token first.'; return; }
      var res = await fetch('/api/v1/actions/' + encodeURIComponent(b.dataset.id) + '/' + b.dataset.decide, {
        method: 'POST', headers: { 'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json' },
        body: JSON.stringify({ reason: b.dataset.decide + 'd from the dashboard' }) });
      var body = await res.json().catch(function () { return {}; });
      if (!res.ok) { out.textContent = (body.title || 'Error') + ': ' + (body.detail || res.status); return; }
      var row = document.querySelector('tr[data-action="' + CSS.escape(b.dataset.id) + '"]');
      var st = body.status || {};
      row.querySelector('.action-status').textContent = st.state + (st.reason ? ': ' + st.reason : '');
      row.querySelectorAll('button').forEach(function (x) { x.remove(); });
      out.textContent = 'Action ' + body.id + ' is now ' + st.state + '.';
    });
  });
})();
"#;

/// One signal as an SVG plot: the band as a shaded area, the observed
/// value as a line, anomalies as red dots, changes as purple lines.
fn plot(
    s: &SignalSeries,
    changes: &[&models::ChangeEvent],
    from: Timestamp,
    to: Timestamp,
) -> Markup {
    const W: f64 = 800.0;
    const H: f64 = 220.0;
    const PAD_L: f64 = 64.0;
    const PAD_R: f64 = 12.0;
    const PAD_T: f64 = 10.0;
    const PAD_B: f64 = 28.0;
    let pts = &s.points;
    let (t0, t1) = (from.as_millis() as f64, to.as_millis() as f64);
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for p in pts {
        for v in [p.observed, p.lower, p.upper] {
            if v.is_finite() {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
    }
    if !lo.is_finite() {
        lo = 0.0;
        hi = 1.0;
    }
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    let x = |t: i64| PAD_L + (t as f64 - t0) / (t1 - t0).max(1.0) * (W - PAD_L - PAD_R);
    let y = |v: f64| PAD_T + (hi - v.clamp(lo, hi)) / (hi - lo) * (H - PAD_T - PAD_B);
    let line: String = pts
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.timestamp.as_millis()), y(p.observed)))
        .collect::<Vec<_>>()
        .join(" ");
    let band: String = pts
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.timestamp.as_millis()), y(p.upper)))
        .chain(
            pts.iter()
                .rev()
                .map(|p| format!("{:.1},{:.1}", x(p.timestamp.as_millis()), y(p.lower))),
        )
        .collect::<Vec<_>>()
        .join(" ");
    let label = format!(
        "{}: observed value against its baseline band from {} to {}, {} anomalies marked",
        s.key,
        from,
        to,
        s.anomalies.len()
    );
    html! {
        svg viewBox={ "0 0 " (W) " " (H) } role="img" aria-label=(label) class="signal-plot" data-points=(pts.len()) {
            title { (label) }
            line x1=(PAD_L) y1=(H - PAD_B) x2=(W - PAD_R) y2=(H - PAD_B) stroke="var(--line)" {}
            line x1=(PAD_L) y1=(PAD_T) x2=(PAD_L) y2=(H - PAD_B) stroke="var(--line)" {}
            text x=(PAD_L - 6.0) y=(PAD_T + 10.0) text-anchor="end" font-size="11" fill="var(--muted)" { (short(hi)) }
            text x=(PAD_L - 6.0) y=(H - PAD_B) text-anchor="end" font-size="11" fill="var(--muted)" { (short(lo)) }
            text x=(PAD_L) y=(H - 8.0) font-size="11" fill="var(--muted)" { (from.to_string()) }
            text x=(W - PAD_R) y=(H - 8.0) text-anchor="end" font-size="11" fill="var(--muted)" { (to.to_string()) }
            @if !pts.is_empty() && pts.iter().any(|p| p.upper > p.lower) {
                polygon.band points=(band) fill="var(--band)" stroke="none" {}
            }
            @if !pts.is_empty() {
                polyline.observed points=(line) fill="none" stroke="var(--obs)" stroke-width="1.5" {}
            }
            @for c in changes {
                @if c.timestamp >= from && c.timestamp <= to {
                    line.change x1=(x(c.timestamp.as_millis())) x2=(x(c.timestamp.as_millis())) y1=(PAD_T) y2=(H - PAD_B)
                        stroke="var(--chg)" stroke-dasharray="4 3" { title { "change: " (c.service) " " (c.version.as_deref().unwrap_or("")) } }
                }
            }
            @for a in &s.anomalies {
                circle.anomaly cx=(x(a.timestamp.as_millis())) cy=(y(a.observed)) r="5" fill="var(--bad)" {
                    title { "anomaly at " (a.timestamp.to_string()) ": " (short(a.observed)) " observed, expected " (short(a.expected.expected)) }
                }
            }
        }
    }
}

fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 1.0 || a == 0.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}
