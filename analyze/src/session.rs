//! Session anomalies: records grouped by a session id (a trace id, a
//! request id, an HDFS block id) into sessions, and a session judged by the
//! templates it went through.
//!
//! A session closes when it has been idle for `idle_secs` of event time.
//! Closed sessions teach the detector how common each template is *among
//! sessions* (the share of sessions that contain it); a closing session is
//! anomalous when it contains a template that fewer than `rare_share` of
//! the sessions before it contained, once `warmup_sessions` have closed, or
//! when it holds more records than any session before it by a wide margin.
//! It is judged before it is learned from, so the score uses nothing after
//! its own end (causal), and the reason names the template that made it
//! unusual. This is the "rare event in a session" family of log anomaly
//! detection (as in DeepLog's and LogAnomaly's HDFS setting), kept to
//! counts so it is explainable and cheap.
//!
//! Memory is bounded: open sessions and templates are capped, and what the
//! caps turn away is counted.

use crate::hash::FastMap;
use models::{Anomaly, AnomalyKind, Band, LogRecord, Signal, SignalKind, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

fn compile(p: &str) -> Result<Option<regex::Regex>, regex::Error> {
    if p.is_empty() {
        Ok(None)
    } else {
        regex::Regex::new(p).map(Some)
    }
}

/// Session settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Record fields holding the session id, tried in order after the
    /// record's trace id (`request_id`, `block_id`, `session_id`...).
    pub key_fields: Vec<String>,
    /// Use the record's trace id as the session id.
    pub use_trace_id: bool,
    /// A regular expression whose first match in the message is the
    /// session id when no field gives one (`blk_-?\d+` for HDFS blocks);
    /// empty for none.
    pub id_pattern: String,
    /// A session closes after this long without a record (event time).
    pub idle_secs: u64,
    /// A template seen in fewer than this share of earlier sessions is rare.
    pub rare_share: f64,
    /// Sessions to learn from before judging any.
    pub warmup_sessions: u64,
    /// Open sessions held at most (the oldest is closed early beyond it).
    pub max_open: usize,
    /// Templates remembered at most.
    pub max_templates: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            key_fields: vec!["request_id".into(), "block_id".into(), "session_id".into()],
            use_trace_id: true,
            id_pattern: String::new(),
            idle_secs: 60,
            rare_share: 0.002,
            warmup_sessions: 500,
            max_open: 100_000,
            max_templates: 50_000,
        }
    }
}

/// One open session.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Open {
    /// Shared with the map key and the idle queue's entries.
    id: Arc<str>,
    /// Shared with `template_services` (one allocation per session, not
    /// one per template).
    service: Option<Arc<str>>,
    first: Timestamp,
    last: Timestamp,
    /// Records per template, in the order first seen.
    templates: Vec<(Arc<str>, u32)>,
    /// The service of the record that first took each template (same
    /// order): a session that went wrong is reported where it went wrong,
    /// not where it entered.
    #[serde(default)]
    template_services: Vec<Option<Arc<str>>>,
    records: u32,
}

/// The detector. See the module docs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionDetector {
    cfg: SessionConfig,
    open: FastMap<Arc<str>, Open>,
    /// Open session ids by last activity, for closing idle ones in order
    /// (entries whose session moved on are skipped when popped).
    by_last: VecDeque<(Timestamp, Arc<str>)>,
    /// Sessions that contained each template.
    sessions_with: BTreeMap<String, u64>,
    /// Sessions closed.
    closed: u64,
    /// Largest session so far (records).
    max_records: u32,
    /// Sessions closed early because of `max_open`.
    pub evicted: u64,
    /// Single-record "sessions", neither judged nor learned from.
    pub single: u64,
    /// Invariants between the templates of sessions (see
    /// [`crate::invariant`]).
    #[serde(default)]
    invariants: crate::invariant::Invariants,
    /// `id_pattern` compiled (not state: rebuilt from the settings).
    #[serde(skip)]
    pattern: Option<regex::Regex>,
}

impl SessionDetector {
    /// A detector with no history. An invalid `id_pattern` is an error
    /// naming it.
    pub fn new(cfg: SessionConfig) -> Result<Self, regex::Error> {
        let pattern = compile(&cfg.id_pattern)?;
        Ok(SessionDetector {
            pattern,
            cfg,
            open: FastMap::default(),
            by_last: VecDeque::new(),
            sessions_with: BTreeMap::new(),
            closed: 0,
            max_records: 0,
            evicted: 0,
            single: 0,
            invariants: Default::default(),
        })
    }

    /// What the caps turned away: sessions closed early by `max_open`,
    /// and anchors or template pairs beyond the invariants' caps.
    pub fn over_cap(&self) -> u64 {
        self.evicted + self.invariants.capped
    }

    /// Compile the id pattern again after a restore (it is not state).
    pub fn reattach(&mut self) {
        self.pattern = compile(&self.cfg.id_pattern).ok().flatten();
    }

    /// The session id of a record, if it has one.
    pub fn session_of<'a>(&self, r: &'a LogRecord) -> Option<&'a str> {
        if self.cfg.use_trace_id {
            if let Some(t) = r.trace_id.as_deref().filter(|t| !t.is_empty()) {
                return Some(t);
            }
        }
        let field = self.cfg.key_fields.iter().find_map(|k| match r.field(k) {
            Some(models::FieldValue::Str(s)) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        });
        field.or_else(|| {
            self.pattern
                .as_ref()
                .and_then(|p| p.find(&r.message))
                .map(|m| m.as_str())
        })
    }

    /// Fold in one record (in event-time order), appending the anomalies of
    /// sessions that closed before it.
    pub fn observe(&mut self, r: &LogRecord, out: &mut Vec<Anomaly>) {
        self.close_idle(r.timestamp, out);
        if let Some(s) = &r.service {
            self.invariants.saw(s, r.timestamp);
        }
        let (Some(id), Some(tpl)) = (self.session_of(r), r.template_id.as_ref()) else {
            return;
        };
        // A record of a session already open allocates nothing; a new
        // session allocates its id once, shared by the map, the session and
        // the idle queue.
        if !self.open.contains_key(id) {
            if self.open.len() >= self.cfg.max_open {
                // Close the least recently active session early.
                while let Some((_, old)) = self.by_last.pop_front() {
                    if let Some(s) = self.open.remove(&old) {
                        self.evicted += 1;
                        self.judge(s, out);
                        break;
                    }
                }
            }
            let id: Arc<str> = id.into();
            let s = Open {
                id: id.clone(),
                service: r.service.as_deref().map(Arc::from),
                first: r.timestamp,
                last: r.timestamp,
                templates: Vec::new(),
                template_services: Vec::new(),
                records: 0,
            };
            self.open.insert(id, s);
        }
        let s = self.open.get_mut(id).expect("inserted above");
        s.last = s.last.max(r.timestamp);
        s.records += 1;
        if let Some((_, n)) = s.templates.iter_mut().find(|(t, _)| t == tpl) {
            *n += 1;
        } else if s.templates.len() < 256 {
            s.templates.push((tpl.clone(), 1));
            // The session's own service, shared, when this record's is
            // the same (nearly always).
            let service = match (&s.service, &r.service) {
                (Some(a), Some(b)) if **a == **b => Some(a.clone()),
                (_, b) => b.as_deref().map(Arc::from),
            };
            s.template_services.push(service);
        }
        self.by_last.push_back((r.timestamp, s.id.clone()));
    }

    /// End of input: judge every session still open.
    pub fn finish(&mut self, out: &mut Vec<Anomaly>) {
        let mut rest: Vec<Open> = self.open.drain().map(|(_, s)| s).collect();
        rest.sort_by(|a, b| a.last.cmp(&b.last).then_with(|| a.id.cmp(&b.id)));
        self.by_last.clear();
        for s in rest {
            self.judge(s, out);
        }
        self.invariants.finish(out);
    }

    fn close_idle(&mut self, now: Timestamp, out: &mut Vec<Anomaly>) {
        let idle = self.cfg.idle_secs as i64 * 1000;
        while let Some((t, _)) = self.by_last.front() {
            if now.as_millis() - t.as_millis() <= idle {
                break;
            }
            let (t, id) = self.by_last.pop_front().expect("front exists");
            // A later record of the session left a newer entry: not idle.
            let done = self.open.get(&id).is_some_and(|s| s.last <= t);
            if done {
                let s = self.open.remove(&id).expect("present");
                self.judge(s, out);
            }
        }
    }

    /// Judge a closed session against the sessions before it, then learn
    /// from it.
    fn judge(&mut self, s: Open, out: &mut Vec<Anomaly>) {
        // Closed an idle time after its last record (whether it was closed
        // then or early, by the cap or the end of input): the same minute
        // however the records arrived.
        let closed = Timestamp::from_millis(s.last.as_millis() + self.cfg.idle_secs as i64 * 1000);
        self.invariants.observe(
            closed,
            s.first,
            s.last,
            &s.templates,
            &s.template_services,
            out,
        );
        // A request that wrote one line may still have lost the others
        // (above); as a session of its own, one record is an event, not a
        // session (a trace id per log line).
        if s.records < 2 {
            self.single += 1;
            return;
        }
        if self.closed >= self.cfg.warmup_sessions {
            let n = self.closed as f64;
            let rarest = s
                .templates
                .iter()
                .map(|(t, _)| (t, self.sessions_with.get(&**t).copied().unwrap_or(0)))
                .min_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(b.0)));
            let long = s.records >= 10 && s.records > 3 * self.max_records;
            let rare = rarest.filter(|(_, k)| (*k as f64) < self.cfg.rare_share * n);
            if rare.is_some() || long {
                let detail = match rare {
                    Some((t, k)) => format!(
                        "session {} went through template {t}, seen in {k} of {} earlier sessions",
                        s.id, self.closed
                    ),
                    None => format!(
                        "session {} has {} records; the longest before had {}",
                        s.id, s.records, self.max_records
                    ),
                };
                let share = rare.map_or(0.0, |(_, k)| k as f64 / n);
                // Where the rare template was logged (a checkpoint from
                // before these were kept: where the session entered).
                let service = rare
                    .and_then(|(t, _)| s.templates.iter().position(|(x, _)| x == t))
                    .and_then(|i| s.template_services.get(i).cloned().flatten())
                    .or_else(|| s.service.clone())
                    .map(|s| s.to_string());
                out.push(Anomaly {
                    signal: Signal {
                        kind: SignalKind::Session,
                        name: s.id.to_string(),
                        service,
                        host: None,
                        container: None,
                    },
                    timestamp: s.first,
                    observed: s.records as f64,
                    expected: Band {
                        lower: 0.0,
                        expected: share,
                        upper: self.max_records as f64,
                    },
                    score: 1.0 - share / self.cfg.rare_share.max(f64::MIN_POSITIVE) * 0.5,
                    kind: AnomalyKind::SessionAnomaly,
                    detector: "session".into(),
                    detail,
                });
            }
        }
        self.closed += 1;
        self.max_records = self.max_records.max(s.records);
        for (t, _) in &s.templates {
            if let Some(k) = self.sessions_with.get_mut(&**t) {
                *k += 1;
            } else if self.sessions_with.len() < self.cfg.max_templates {
                self.sessions_with.insert(t.to_string(), 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(sec: i64, session: &str, tpl: &str) -> LogRecord {
        let mut r = LogRecord::new(Timestamp::from_secs(sec), tpl);
        r.service = Some("hdfs".into());
        r.template_id = Some(tpl.into());
        r.fields
            .insert("block_id".into(), models::FieldValue::Str(session.into()));
        r
    }

    /// A request enters at a gateway and fails at the service it calls: the
    /// session is reported at the service that logged the rare template.
    #[test]
    fn a_session_is_reported_where_it_went_wrong() {
        let mut d = SessionDetector::new(SessionConfig {
            warmup_sessions: 100,
            ..SessionConfig::default()
        })
        .unwrap();
        let mut out = Vec::new();
        let at = |sec, session: &str, svc: &str, tpl: &str| {
            let mut r = rec(sec, session, tpl);
            r.service = Some(svc.into());
            r
        };
        for i in 0..300 {
            let id = format!("req_{i}");
            d.observe(&at(i, &id, "gateway", "route"), &mut out);
            let tpl = if i == 250 {
                "stock exception"
            } else {
                "reserve"
            };
            d.observe(&at(i, &id, "stock", tpl), &mut out);
        }
        d.finish(&mut out);
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0].signal.name, "req_250");
        assert_eq!(out[0].signal.service.as_deref(), Some("stock"));
    }

    /// Interleaved sessions, each `allocate -> receive -> close`, one of
    /// them with an `exception` in the middle, one very long.
    #[test]
    fn a_session_through_a_rare_template_is_flagged_once_with_the_reason() {
        let mut d = SessionDetector::new(SessionConfig {
            warmup_sessions: 100,
            ..SessionConfig::default()
        })
        .unwrap();
        let mut out = Vec::new();
        let mut t = 0;
        for i in 0..600 {
            let id = format!("blk_{i}");
            for tpl in ["allocate", "receive", "close"] {
                d.observe(&rec(t, &id, tpl), &mut out);
                t += 1;
            }
            if i == 300 {
                d.observe(&rec(t, "blk_bad", "allocate"), &mut out);
                d.observe(&rec(t, "blk_bad", "exception"), &mut out);
                d.observe(&rec(t, "blk_bad", "close"), &mut out);
            }
            if i == 400 {
                for _ in 0..40 {
                    d.observe(&rec(t, "blk_long", "receive"), &mut out);
                }
            }
        }
        d.finish(&mut out);
        let flagged: Vec<&str> = out.iter().map(|a| a.signal.name.as_str()).collect();
        assert_eq!(flagged, ["blk_bad", "blk_long"], "{out:#?}");
        assert!(out[0].detail.contains("exception"), "{}", out[0].detail);
        assert_eq!(out[0].kind, AnomalyKind::SessionAnomaly);
        assert!((0.0..=1.0).contains(&out[0].score));
        assert_eq!(d.closed, 602);
    }

    #[test]
    fn nothing_is_judged_during_warm_up_and_records_without_a_session_are_ignored() {
        let mut d = SessionDetector::new(SessionConfig::default()).unwrap();
        let mut out = Vec::new();
        d.observe(&rec(0, "a", "odd"), &mut out);
        d.observe(&rec(0, "a", "odder"), &mut out);
        d.observe(&rec(0, "lonely", "x"), &mut out);
        let mut plain = LogRecord::new(Timestamp::from_secs(1), "x");
        plain.template_id = Some("x".into());
        d.observe(&plain, &mut out);
        d.finish(&mut out);
        assert!(out.is_empty());
        assert_eq!((d.closed, d.single), (1, 1));
    }

    #[test]
    fn open_sessions_are_capped() {
        let mut d = SessionDetector::new(SessionConfig {
            max_open: 10,
            ..SessionConfig::default()
        })
        .unwrap();
        let mut out = Vec::new();
        for i in 0..100 {
            d.observe(&rec(0, &format!("s{i}"), "a"), &mut out);
        }
        assert!(d.open.len() <= 10);
        assert_eq!(d.evicted, 90);
        assert_eq!(d.over_cap(), 90, "what the caps turned away is reported");
    }
}
