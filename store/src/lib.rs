//! The store: incidents, anomalies, actions, the audit trail, templates and
//! signal traces in one SQLite file.
//!
//! `remedy replay --db` writes a whole run in one transaction, so a crash
//! leaves the previous contents and never a half-written incident; `remedy
//! serve` reads it through a small pool of connections (SQLite in WAL mode
//! lets readers proceed while one writer commits). Rows carry the full JSON
//! of the domain object beside the columns that queries filter on, so the
//! API returns exactly what the engine produced.

use anyhow::Context;
use engine::{Findings, FindingsSink};
use models::{Action, ActionStatus, Anomaly, Incident, Signal, Timestamp};
use reclaim::AuditEntry;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Versioned migrations, applied in order; `PRAGMA user_version` is the
/// number of the last one applied.
const MIGRATIONS: &[&str] = &[include_str!("../migrations/0001_init.sql")];

/// Most signal points a replay keeps for plotting. A week of the demo at
/// its 10-second windows is well under this; beyond it points are counted
/// in the summary as dropped rather than held in memory.
pub const TRACE_LIMIT: usize = 5_000_000;

/// Open `path`, creating it and applying pending migrations.
fn connect(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path)
        .with_context(|| format!("cannot open the database {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "wal")
        .with_context(|| format!("{} is not a SQLite database", path.display()))?;
    conn.pragma_update(None, "synchronous", "normal")?;
    conn.pragma_update(None, "foreign_keys", "on")?;
    Ok(conn)
}

fn migrate(conn: &mut Connection, path: &Path) -> anyhow::Result<()> {
    let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > MIGRATIONS.len() {
        anyhow::bail!(
            "{} was written by a newer Remedy (schema version {version}, this one knows {}): \
             upgrade remedy or use another --db",
            path.display(),
            MIGRATIONS.len()
        );
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .with_context(|| format!("migration {} failed on {}", i + 1, path.display()))?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// A writable store (replay).
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Open or create the database at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Store> {
        let mut conn = connect(path)?;
        migrate(&mut conn, path)?;
        Ok(Store { conn })
    }

    /// Write findings (a whole run, or what a streaming service found
    /// since its last write) in a single transaction.
    pub fn write_findings(&mut self, found: &Findings) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        write_findings(&tx, found)?;
        tx.commit()?;
        Ok(())
    }
}

/// The store as a sink: one transaction per write, so a crash leaves the
/// previous contents and never a half-written incident.
impl FindingsSink for Store {
    fn write(&mut self, found: &Findings) -> anyhow::Result<()> {
        self.write_findings(found)
    }
}

impl Store {
    /// The ids of actions a person approved through the API, so that
    /// `remedy replay --execute` carries out what was approved.
    pub fn approved_actions(&self) -> anyhow::Result<std::collections::HashSet<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM actions WHERE status = 'approved' AND decided = 1")?;
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    /// Delete plotted points older than `before` (event time), for a
    /// long-running service's retention. Returns how many went.
    pub fn prune_points(&mut self, before: Timestamp) -> anyhow::Result<usize> {
        Ok(self.conn.execute(
            "DELETE FROM signal_points WHERE ts_ms < ?1",
            [before.as_millis()],
        )?)
    }
}

fn write_findings(tx: &Transaction<'_>, run: &Findings) -> anyhow::Result<()> {
    let summary = run
        .summary
        .as_ref()
        .context("findings written to the store need the run's counts")?;
    tx.execute(
        "INSERT INTO runs (written_at, first_event_ms, last_event_ms, summary) VALUES (?1, ?2, ?3, ?4)",
        params![
            chrono::Utc::now().to_rfc3339(),
            summary.first_event.map(Timestamp::as_millis),
            summary.last_event.map(Timestamp::as_millis),
            serde_json::to_string(summary)?
        ],
    )?;
    let run_id = tx.last_insert_rowid();

    // Which incident each anomaly belongs to.
    let mut owner: HashMap<(String, i64), &str> = HashMap::new();
    for inc in &run.incidents {
        // Replace, not merge: the same input gives the same incident id,
        // and the newest analysis of it is the one to serve.
        tx.execute("DELETE FROM incidents WHERE id = ?1", [&inc.id])?;
        let top = inc.root_causes.first();
        tx.execute(
            "INSERT INTO incidents (id, run_id, start_ms, end_ms, status, class, confidence, summary, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                inc.id,
                run_id,
                inc.start.as_millis(),
                inc.end.map(Timestamp::as_millis),
                inc.status.as_str(),
                top.map(|r| r.class.as_str()),
                top.map(|r| r.confidence),
                serde_json::to_string(&IncidentSummary::of(inc.clone()))?,
                serde_json::to_string(inc)?
            ],
        )?;
        for s in services_of(inc) {
            tx.execute(
                "INSERT OR IGNORE INTO incident_services (incident_id, service, start_ms)
                 VALUES (?1, ?2, ?3)",
                params![inc.id, s, inc.start.as_millis()],
            )?;
        }
        for a in &inc.anomalies {
            owner.insert((a.signal.to_string(), a.timestamp.as_millis()), &inc.id);
        }
    }
    {
        let mut put = tx.prepare(
            "INSERT INTO anomalies (signal, ts_ms, incident_id, service, kind, score, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (signal, ts_ms) DO UPDATE SET incident_id = excluded.incident_id,
                 service = excluded.service, kind = excluded.kind, score = excluded.score,
                 body = excluded.body",
        )?;
        for a in &run.anomalies {
            let key = a.signal.to_string();
            let ts = a.timestamp.as_millis();
            let inc = owner.get(&(key.clone(), ts)).copied();
            put.execute(params![
                key,
                ts,
                inc,
                a.signal.service,
                a.kind.as_str(),
                a.score,
                serde_json::to_string(a)?
            ])?;
        }
    }
    for action in &run.actions {
        tx.execute(
            "INSERT INTO actions (id, incident_id, status, requires_approval, body)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, body = excluded.body
             WHERE actions.status <> 'executed'
               AND (actions.decided = 0 OR excluded.status IN ('executed', 'failed'))",
            params![
                action.id,
                action.incident_id,
                action.status.state(),
                action.requires_approval,
                serde_json::to_string(action)?
            ],
        )?;
        // A verification (did the signals return inside their bands?)
        // lands even on an action a person decided or an executor ran,
        // whose status the upsert above keeps.
        if let Some(v) = action.verified {
            tx.execute(
                "UPDATE actions SET body = json_set(body, '$.verified', json(?1)) WHERE id = ?2",
                params![if v { "true" } else { "false" }, action.id],
            )?;
        }
    }
    for entry in &run.audit {
        append_audit(tx, entry)?;
    }
    {
        let mut put = tx.prepare(
            "INSERT INTO templates (id, template, count) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET template = excluded.template, count = excluded.count",
        )?;
        for t in &run.templates {
            put.execute(params![t.id, t.template, t.count as i64])?;
        }
    }
    {
        let mut sig = tx.prepare(
            "INSERT OR IGNORE INTO signals (key, kind, name, service, host, container)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut point = tx.prepare(
            "INSERT OR REPLACE INTO signal_points
             (signal, ts_ms, observed, lower, expected, upper, score, alert)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        // Points go in in key order (signal, then time), not as the run
        // produced them (every signal's point of one window, then the next
        // window's). The table is clustered on that key, so in produced
        // order each insert lands on another signal's leaf page: with a
        // few hundred signals those pages outgrow SQLite's page cache and
        // nearly every insert read a page back from the file (a day of
        // nezha-tt-dev's 781 signals: 8.7 s to write 691k points). In key
        // order each signal's points append to one page after another.
        // A signal's points share one `Arc` of it (the analysis makes one
        // per signal), so most lookups are by address (hashing the
        // signal's five strings for every point instead cost 2.2% more
        // instructions on `replay --db` of the demo); a signal met by
        // value (another `Arc` of the same signal) is found by value.
        let mut by_addr: HashMap<*const Signal, usize> = HashMap::new();
        let mut by_value: HashMap<&Signal, usize> = HashMap::new();
        let mut keys: Vec<String> = Vec::new();
        let mut rows = Vec::with_capacity(run.trace.len());
        for p in &run.trace {
            let addr = std::sync::Arc::as_ptr(&p.signal);
            let id = match by_addr.get(&addr) {
                Some(&i) => i,
                None => {
                    let i = match by_value.get(&*p.signal) {
                        Some(&i) => i,
                        None => {
                            let k = p.signal.to_string();
                            sig.execute(params![
                                k,
                                p.signal.kind.as_str(),
                                p.signal.name,
                                p.signal.service,
                                p.signal.host,
                                p.signal.container
                            ])?;
                            keys.push(k);
                            by_value.insert(&*p.signal, keys.len() - 1);
                            keys.len() - 1
                        }
                    };
                    by_addr.insert(addr, i);
                    i
                }
            };
            rows.push((id, p));
        }
        // Each signal's rank in key order, so the points sort on integers
        // (comparing the keys themselves, long and alike, was most of the
        // sort).
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
        let mut rank = vec![0; keys.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i] = r;
        }
        // Stable: a point written twice (the same signal and time) keeps
        // the later one, as the `OR REPLACE` did in produced order.
        rows.sort_by_key(|&(i, p)| (rank[i], p.timestamp));
        for (i, p) in rows {
            point.execute(params![
                keys[i],
                p.timestamp.as_millis(),
                p.observed,
                p.band.lower,
                p.band.expected,
                p.band.upper,
                p.score,
                p.alert
            ])?;
        }
    }
    let ingest = &summary.ingest;
    let mut counters: Vec<(&str, String, u64)> = vec![
        ("records_read", String::new(), ingest.read),
        ("records_parsed", String::new(), ingest.parsed),
        ("records_dead_lettered", String::new(), ingest.dead_lettered),
    ];
    // What the analysis counted but left out: late events and what the
    // caps turned away (served on `/metrics` beside the dead letters).
    // By reason; what a summary from before the reasons counted is served
    // as reason "unknown".
    let said: u64 = summary.late_by_reason.values().sum();
    for (reason, n) in &summary.late_by_reason {
        counters.push(("late_events", reason.clone(), *n));
    }
    if summary.late_events > said {
        counters.push((
            "late_events",
            "unknown".to_string(),
            summary.late_events - said,
        ));
    }
    for (cap, n) in summary.over_cap() {
        counters.push(("over_cap", cap.to_string(), n));
    }
    for (reason, n) in &ingest.by_reason {
        counters.push(("dead_letters", reason.as_str().to_string(), *n));
    }
    for (format, n) in &ingest.by_format {
        counters.push(("records_parsed_by_format", format.clone(), *n));
    }
    for (name, label, value) in counters {
        tx.execute(
            "INSERT INTO counters (name, label, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (name, label) DO UPDATE SET value = value + excluded.value",
            params![name, label, value as i64],
        )?;
    }
    Ok(())
}

fn append_audit(tx: &Connection, entry: &AuditEntry) -> anyhow::Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO audit (action_id, incident_id, ts_ms, decision, reason, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            entry.action_id,
            entry.incident_id,
            entry.timestamp.as_millis(),
            entry.decision,
            entry.reason,
            serde_json::to_string(entry)?
        ],
    )?;
    Ok(())
}

/// Services an incident touches: its root-cause targets and the services
/// of its anomalous signals.
fn services_of(inc: &Incident) -> BTreeSet<&str> {
    inc.root_causes
        .iter()
        .filter_map(|r| r.target.service.as_deref())
        .chain(
            inc.anomalies
                .iter()
                .filter_map(|a| a.signal.service.as_deref()),
        )
        .collect()
}

/// Read access for the API: a few connections, each behind its own lock, so
/// concurrent requests rarely wait for one another.
pub struct Db {
    path: PathBuf,
    conns: Vec<Mutex<Connection>>,
    next: std::sync::atomic::AtomicUsize,
}

impl Db {
    /// Open (creating and migrating if needed) with `size` connections.
    pub fn open(path: &Path, size: usize) -> anyhow::Result<Db> {
        let mut first = connect(path)?;
        migrate(&mut first, path)?;
        let mut conns = vec![Mutex::new(first)];
        for _ in 1..size.max(1) {
            conns.push(Mutex::new(connect(path)?));
        }
        Ok(Db {
            path: path.to_path_buf(),
            conns,
            next: Default::default(),
        })
    }

    /// Run `f` on a free connection (or wait for the next in turn).
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        for c in &self.conns {
            if let Ok(mut conn) = c.try_lock() {
                return f(&mut conn);
            }
        }
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.conns.len();
        let mut conn = self.conns[i]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut conn)
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

/// Filters of `GET /incidents`.
#[derive(Debug, Default, Clone)]
pub struct IncidentFilter {
    /// Incidents still open at or after this time.
    pub from: Option<Timestamp>,
    /// Incidents that started at or before this time.
    pub to: Option<Timestamp>,
    /// Touching this service.
    pub service: Option<String>,
    /// Top root-cause class.
    pub class: Option<String>,
    /// `open` or `resolved`.
    pub status: Option<String>,
}

/// Position after the last item of a page: the sort key of that item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Milliseconds of the last item.
    pub ms: i64,
    /// Id of the last item (ties).
    pub id: String,
}

impl Cursor {
    /// The opaque text form handed to clients.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.ms, self.id)
    }

    /// Parse what [`Cursor::encode`] produced.
    pub fn decode(s: &str) -> Option<Cursor> {
        let (ms, id) = s.split_once('.')?;
        Some(Cursor {
            ms: ms.parse().ok()?,
            id: id.to_string(),
        })
    }
}

/// One line of the incident list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct IncidentSummary {
    /// Incident id.
    pub id: String,
    /// First anomaly.
    pub start: Timestamp,
    /// When it resolved; absent while open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<Timestamp>,
    /// `open` or `resolved`.
    pub status: models::IncidentStatus,
    /// Most likely root cause (its evidence is on the incident itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_cause: Option<RootCauseBrief>,
    /// Services touched.
    pub services: Vec<String>,
    /// Anomalies grouped in it.
    pub anomalies: u64,
}

/// A root cause without its evidence, for lists.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RootCauseBrief {
    /// Class.
    pub class: models::RootCauseClass,
    /// Where.
    pub target: models::Target,
    /// Confidence in [0, 1].
    pub confidence: f64,
}

impl IncidentSummary {
    fn of(inc: Incident) -> IncidentSummary {
        let services = services_of(&inc).into_iter().map(str::to_string).collect();
        // The list is a list: evidence is on the detail page.
        let root = inc.root_causes.into_iter().next().map(|r| RootCauseBrief {
            class: r.class,
            target: r.target,
            confidence: r.confidence,
        });
        IncidentSummary {
            id: inc.id,
            start: inc.start,
            end: inc.end,
            status: inc.status,
            root_cause: root,
            services,
            anomalies: inc.anomalies.len() as u64,
        }
    }
}

/// Incidents matching `filter`, newest first, after `cursor`, at most
/// `limit`; and the cursor of the next page when there is one.
///
/// Entries come as the JSON stored at write time ([`IncidentSummary`]),
/// passed through undecoded: the list is the API's hottest read.
pub fn list_incidents(
    conn: &Connection,
    filter: &IncidentFilter,
    cursor: Option<&Cursor>,
    limit: usize,
) -> anyhow::Result<(Vec<Box<serde_json::value::RawValue>>, Option<Cursor>)> {
    // With a service, walk that service's index entries in start order and
    // join; without, walk the incidents' own start index.
    let (mut sql, start, id) = match &filter.service {
        Some(_) => (
            String::from(
                "SELECT i.summary, i.start_ms, i.id FROM incident_services s \
                 JOIN incidents i ON i.id = s.incident_id WHERE s.service = ?",
            ),
            "s.start_ms",
            "s.incident_id",
        ),
        None => (
            String::from("SELECT i.summary, i.start_ms, i.id FROM incidents i WHERE 1 = 1"),
            "i.start_ms",
            "i.id",
        ),
    };
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(s) = &filter.service {
        args.push(s.clone().into());
    }
    if let Some(c) = cursor {
        sql.push_str(&format!(" AND ({start}, {id}) < (?, ?)"));
        args.push(c.ms.into());
        args.push(c.id.clone().into());
    }
    if let Some(from) = filter.from {
        sql.push_str(" AND (i.end_ms IS NULL OR i.end_ms >= ?)");
        args.push(from.as_millis().into());
    }
    if let Some(to) = filter.to {
        sql.push_str(&format!(" AND {start} <= ?"));
        args.push(to.as_millis().into());
    }
    if let Some(c) = &filter.class {
        sql.push_str(" AND i.class = ?");
        args.push(c.clone().into());
    }
    if let Some(s) = &filter.status {
        sql.push_str(" AND i.status = ?");
        args.push(s.clone().into());
    }
    sql.push_str(&format!(" ORDER BY {start} DESC, {id} DESC LIMIT ?"));
    args.push(((limit + 1) as i64).into());
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut items = Vec::new();
    let mut keys = Vec::new();
    for row in stmt.query_map(rusqlite::params_from_iter(args), |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
        ))
    })? {
        let (summary, ms, id) = row?;
        items.push(serde_json::value::RawValue::from_string(summary)?);
        keys.push(Cursor { ms, id });
    }
    // One row more than the page was asked for: its presence means there
    // is a next page, which starts after the page's last item.
    let next = if items.len() > limit {
        items.truncate(limit);
        keys.truncate(limit);
        keys.pop()
    } else {
        None
    };
    Ok((items, next))
}

/// An incident with its actions and audit trail.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct IncidentDetail {
    /// The incident: anomalies and ranked root causes with their evidence.
    pub incident: Incident,
    /// Actions planned for it, with their safety decisions and verification.
    pub actions: Vec<Action>,
    /// Every decision about its actions, oldest first.
    pub audit: Vec<AuditEntry>,
}

/// One incident by id.
pub fn get_incident(conn: &Connection, id: &str) -> anyhow::Result<Option<IncidentDetail>> {
    let body: Option<String> = conn
        .prepare_cached("SELECT body FROM incidents WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    let Some(body) = body else { return Ok(None) };
    let incident: Incident = serde_json::from_str(&body)?;
    let mut actions = Vec::new();
    let mut stmt =
        conn.prepare_cached("SELECT body FROM actions WHERE incident_id = ?1 ORDER BY id")?;
    for b in stmt.query_map([id], |r| r.get::<_, String>(0))? {
        actions.push(serde_json::from_str(&b?)?);
    }
    let mut audit = Vec::new();
    let mut stmt =
        conn.prepare_cached("SELECT body FROM audit WHERE incident_id = ?1 ORDER BY seq")?;
    for b in stmt.query_map([id], |r| r.get::<_, String>(0))? {
        audit.push(serde_json::from_str(&b?)?);
    }
    Ok(Some(IncidentDetail {
        incident,
        actions,
        audit,
    }))
}

/// One stored anomaly.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StoredAnomaly {
    /// Store id.
    pub id: i64,
    /// Signal key (`error_rate{service=checkout}`), usable with
    /// `/signals/{key}`.
    pub signal_key: String,
    /// The incident it was grouped into, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// The anomaly.
    pub anomaly: Anomaly,
}

/// Filters of `GET /anomalies`.
#[derive(Debug, Default, Clone)]
pub struct AnomalyFilter {
    /// At or after.
    pub from: Option<Timestamp>,
    /// At or before.
    pub to: Option<Timestamp>,
    /// Signal's service.
    pub service: Option<String>,
    /// Anomaly kind.
    pub kind: Option<String>,
    /// Grouped into this incident.
    pub incident: Option<String>,
}

/// Anomalies newest first.
pub fn list_anomalies(
    conn: &Connection,
    filter: &AnomalyFilter,
    cursor: Option<&Cursor>,
    limit: usize,
) -> anyhow::Result<(Vec<StoredAnomaly>, Option<Cursor>)> {
    let mut sql = String::from("SELECT id, signal, incident_id, body FROM anomalies WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(c) = cursor {
        let Ok(id) = c.id.parse::<i64>() else {
            return Ok((Vec::new(), None));
        };
        sql.push_str(" AND (ts_ms, id) < (?, ?)");
        args.push(c.ms.into());
        args.push(id.into());
    }
    for (col, op, v) in [
        ("ts_ms", ">=", filter.from.map(|t| t.as_millis().into())),
        ("ts_ms", "<=", filter.to.map(|t| t.as_millis().into())),
        ("service", "=", filter.service.clone().map(Into::into)),
        ("kind", "=", filter.kind.clone().map(Into::into)),
        ("incident_id", "=", filter.incident.clone().map(Into::into)),
    ] {
        if let Some(v) = v {
            sql.push_str(&format!(" AND {col} {op} ?"));
            args.push(v);
        }
    }
    sql.push_str(" ORDER BY ts_ms DESC, id DESC LIMIT ?");
    args.push(((limit + 1) as i64).into());
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut items = Vec::new();
    for row in stmt.query_map(rusqlite::params_from_iter(args), |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, String>(3)?,
        ))
    })? {
        let (id, signal_key, incident_id, body) = row?;
        items.push(StoredAnomaly {
            id,
            signal_key,
            incident_id,
            anomaly: serde_json::from_str(&body)?,
        });
    }
    // One row more than the page was asked for: its presence means there
    // is a next page, which starts after the page's last item.
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|a| Cursor {
            ms: a.anomaly.timestamp.as_millis(),
            id: a.id.to_string(),
        })
    } else {
        None
    };
    Ok((items, next))
}

/// One template.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StoredTemplate {
    /// Stable template id.
    pub id: String,
    /// Template text, variables as `<*>`.
    pub template: String,
    /// Records that matched.
    pub count: u64,
}

/// Templates, most frequent first; `offset` is the cursor.
pub fn list_templates(
    conn: &Connection,
    contains: Option<&str>,
    offset: u64,
    limit: usize,
) -> anyhow::Result<(Vec<StoredTemplate>, bool)> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, template, count FROM templates
         WHERE ?1 IS NULL OR instr(template, ?1) > 0
         ORDER BY count DESC, id LIMIT ?2 OFFSET ?3",
    )?;
    let mut items = Vec::new();
    for row in stmt.query_map(params![contains, (limit + 1) as i64, offset as i64], |r| {
        Ok(StoredTemplate {
            id: r.get(0)?,
            template: r.get(1)?,
            count: r.get::<_, i64>(2)?.max(0) as u64,
        })
    })? {
        items.push(row?);
    }
    let more = items.len() > limit;
    items.truncate(limit);
    Ok((items, more))
}

/// One scored window of a signal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StoredPoint {
    /// Window time.
    pub timestamp: Timestamp,
    /// Observed value.
    pub observed: f64,
    /// Lower edge of the baseline band.
    pub lower: f64,
    /// Baseline expectation.
    pub expected: f64,
    /// Upper edge of the band.
    pub upper: f64,
    /// Anomaly score in [0, 1].
    pub score: f64,
    /// Whether the detector was in alert.
    pub alert: bool,
}

/// A signal with its band over a range, ready to plot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct SignalSeries {
    /// Signal key.
    pub key: String,
    /// Signal kind.
    pub kind: String,
    /// Name (metric series, template id...), empty when the kind says all.
    pub name: String,
    /// Service scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Host scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Container scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Points in time order.
    pub points: Vec<StoredPoint>,
    /// True when the range held more points than the limit and the rest
    /// were left out (ask for a narrower range).
    pub truncated: bool,
    /// Anomalies of this signal in the range, to mark on the plot.
    pub anomalies: Vec<Anomaly>,
}

/// One signal over `[from, to]`, at most `limit` points.
pub fn get_signal(
    conn: &Connection,
    key: &str,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    limit: usize,
) -> anyhow::Result<Option<SignalSeries>> {
    let head = conn
        .prepare_cached("SELECT kind, name, service, host, container FROM signals WHERE key = ?1")?
        .query_row([key], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })
        .optional()?;
    let Some((kind, name, service, host, container)) = head else {
        return Ok(None);
    };
    let lo = from.map_or(i64::MIN, Timestamp::as_millis);
    let hi = to.map_or(i64::MAX, Timestamp::as_millis);
    let mut stmt = conn.prepare_cached(
        "SELECT ts_ms, observed, lower, expected, upper, score, alert FROM signal_points
         WHERE signal = ?1 AND ts_ms BETWEEN ?2 AND ?3 ORDER BY ts_ms LIMIT ?4",
    )?;
    let mut points = Vec::new();
    for p in stmt.query_map(params![key, lo, hi, (limit + 1) as i64], |r| {
        Ok(StoredPoint {
            timestamp: Timestamp::from_millis(r.get(0)?),
            observed: r.get(1)?,
            lower: r.get(2)?,
            expected: r.get(3)?,
            upper: r.get(4)?,
            score: r.get(5)?,
            alert: r.get(6)?,
        })
    })? {
        points.push(p?);
    }
    let truncated = points.len() > limit;
    points.truncate(limit);
    let mut anomalies = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT body FROM anomalies WHERE signal = ?1 AND ts_ms BETWEEN ?2 AND ?3 ORDER BY ts_ms",
    )?;
    for b in stmt.query_map(params![key, lo, hi], |r| r.get::<_, String>(0))? {
        anomalies.push(serde_json::from_str(&b?)?);
    }
    Ok(Some(SignalSeries {
        key: key.to_string(),
        kind,
        name,
        service,
        host,
        container,
        points,
        truncated,
        anomalies,
    }))
}

/// The templates whose counts rose most during `[start, end]` against the
/// same length of time just before: at least 5 records and three times as
/// many as before (plus one), so ordinary traffic wobbling is not shown as
/// evidence. (signal key, template text, records during, records before),
/// at most `n`.
pub fn rising_templates(
    conn: &Connection,
    start: Timestamp,
    end: Timestamp,
    n: usize,
) -> anyhow::Result<Vec<(String, String, f64, f64)>> {
    let (s, e) = (
        start.as_millis(),
        end.as_millis().max(start.as_millis() + 60_000),
    );
    let before = s - (e - s);
    let mut stmt = conn.prepare_cached(
        "SELECT p.signal, coalesce(t.template, ''),
                sum(CASE WHEN p.ts_ms >= ?1 THEN p.observed ELSE 0 END) AS during,
                sum(CASE WHEN p.ts_ms < ?1 THEN p.observed ELSE 0 END) AS before
         FROM signal_points p
         LEFT JOIN templates t ON t.id = substr(p.signal, length('template_count:') + 1)
         WHERE p.signal >= 'template_count:' AND p.signal < 'template_count;'
           AND p.ts_ms >= ?3 AND p.ts_ms <= ?2
         GROUP BY p.signal
         HAVING during >= 5 AND during >= 3 * (before + 1)
         ORDER BY during - before DESC, p.signal
         LIMIT ?4",
    )?;
    let rows = stmt.query_map(params![s, e, before, n as i64], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Why an approval or rejection did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// No such action.
    #[error("no action with id {0}")]
    NotFound(String),
    /// The action is not waiting for a decision.
    #[error("action {id} is {status}, not waiting for approval")]
    NotPending {
        /// Action id.
        id: String,
        /// Its status now.
        status: String,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] anyhow::Error),
}

impl From<rusqlite::Error> for DecideError {
    fn from(e: rusqlite::Error) -> Self {
        DecideError::Db(e.into())
    }
}

/// Approve (or reject) an action that requires approval and is still
/// planned, recording who and why in the audit trail: one transaction, so
/// the status and its audit entry land together or not at all.
pub fn decide(
    conn: &mut Connection,
    id: &str,
    approve: bool,
    reason: &str,
    now: Timestamp,
) -> Result<Action, DecideError> {
    let tx = conn.transaction()?;
    let row: Option<(String, bool, String)> = tx
        .query_row(
            "SELECT status, requires_approval, body FROM actions WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((status, requires_approval, body)) = row else {
        return Err(DecideError::NotFound(id.to_string()));
    };
    if status != "planned" || !requires_approval {
        return Err(DecideError::NotPending {
            id: id.to_string(),
            status: if status == "planned" {
                "planned without needing approval".into()
            } else {
                status
            },
        });
    }
    let mut action: Action = serde_json::from_str(&body).map_err(anyhow::Error::from)?;
    action.status = if approve {
        ActionStatus::Approved
    } else {
        ActionStatus::Skipped {
            reason: format!("rejected: {reason}"),
        }
    };
    tx.execute(
        "UPDATE actions SET status = ?2, body = ?3, decided = 1 WHERE id = ?1",
        params![
            id,
            action.status.state(),
            serde_json::to_string(&action).map_err(anyhow::Error::from)?
        ],
    )?;
    append_audit(
        &tx,
        &AuditEntry::about(
            &action,
            now,
            if approve { "approved" } else { "rejected" },
            reason,
        ),
    )?;
    tx.commit()?;
    Ok(action)
}

/// Actions that may run now: approved through the API, or planned without
/// needing approval (oldest first). The driver checks every rule again.
pub fn executable_actions(conn: &Connection) -> anyhow::Result<Vec<Action>> {
    let mut stmt = conn.prepare_cached(
        "SELECT body FROM actions
         WHERE status = 'approved' OR (status = 'planned' AND requires_approval = 0)
         ORDER BY rowid",
    )?;
    let bodies: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut actions = Vec::with_capacity(bodies.len());
    for b in bodies {
        actions.push(serde_json::from_str(&b)?);
    }
    Ok(actions)
}

/// Write what execution did to `action` (its status, or a new scheduled
/// action) and its audit entries, in one transaction.
pub fn record_execution(
    conn: &mut Connection,
    action: &Action,
    audit: &[AuditEntry],
) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO actions (id, incident_id, status, requires_approval, body)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, body = excluded.body",
        params![
            action.id,
            action.incident_id,
            action.status.state(),
            action.requires_approval,
            serde_json::to_string(action)?
        ],
    )?;
    for entry in audit {
        append_audit(&tx, entry)?;
    }
    tx.commit()?;
    Ok(())
}

/// Totals for `/metrics`.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    /// `counters` rows: (name, label, value).
    pub counters: Vec<(String, String, u64)>,
    /// Anomalies by kind.
    pub anomalies: Vec<(String, u64)>,
    /// Incidents by (top root-cause class, status).
    pub incidents: Vec<(String, String, u64)>,
    /// Actions by status.
    pub actions: Vec<(String, u64)>,
}

/// Everything `/metrics` reports from the store.
pub fn totals(conn: &Connection) -> anyhow::Result<Totals> {
    let mut t = Totals::default();
    let mut stmt =
        conn.prepare_cached("SELECT name, label, value FROM counters ORDER BY name, label")?;
    for r in stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?.max(0) as u64))
    })? {
        t.counters.push(r?);
    }
    let mut stmt =
        conn.prepare_cached("SELECT kind, count(*) FROM anomalies GROUP BY kind ORDER BY kind")?;
    for r in stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))? {
        t.anomalies.push(r?);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT coalesce(class, 'unknown'), status, count(*) FROM incidents GROUP BY 1, 2 ORDER BY 1, 2",
    )?;
    for r in stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
    })? {
        t.incidents.push(r?);
    }
    let mut stmt = conn
        .prepare_cached("SELECT status, count(*) FROM actions GROUP BY status ORDER BY status")?;
    for r in stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))? {
        t.actions.push(r?);
    }
    Ok(t)
}

/// Whether the store answers (for `/readyz`).
pub fn ping(conn: &Connection) -> anyhow::Result<()> {
    conn.query_row("SELECT count(*) FROM runs", [], |_| Ok(()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::{Action, ActionKind, ActionStatus, RootCauseClass, Target};

    fn run_with(action: Action) -> Findings {
        let engine = engine::Engine::new(engine::EngineSettings::for_run()).unwrap();
        Findings {
            summary: Some(engine.summary()),
            actions: vec![action],
            ..Default::default()
        }
    }

    /// An executed action keeps its status and report when the analysis
    /// later publishes the same action as planned, but takes its
    /// verification.
    #[test]
    fn a_later_verification_lands_on_an_executed_action() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut store = Store::open(&path).unwrap();
        let planned = Action {
            id: "inc-1-restart".into(),
            incident_id: "inc-1".into(),
            class: RootCauseClass::MemoryLeak,
            kind: ActionKind::Notify {
                channel: "ops".into(),
                message: "m".into(),
            },
            target: Target::default(),
            status: ActionStatus::Planned,
            dry_run: false,
            requires_approval: false,
            planned_at: Timestamp::from_secs(1),
            verified: None,
        };
        store.write_findings(&run_with(planned.clone())).unwrap();
        let executed = Action {
            status: ActionStatus::Executed,
            ..planned.clone()
        };
        record_execution(&mut store.conn, &executed, &[]).unwrap();
        store
            .write_findings(&run_with(Action {
                verified: Some(true),
                ..planned
            }))
            .unwrap();
        let (status, body): (String, String) = store
            .conn
            .query_row(
                "SELECT status, body FROM actions WHERE id = 'inc-1-restart'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let body: Action = serde_json::from_str(&body).unwrap();
        assert_eq!(status, "executed");
        assert_eq!(body.status, ActionStatus::Executed);
        assert_eq!(body.verified, Some(true));
    }
}
