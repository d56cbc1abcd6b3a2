//! Broken invariants: a statement that requests reliably log together
//! with another goes missing from them.
//!
//! Why: an exception thrown inside a service skips the lines its request
//! would have logged after it, and its callers usually log nothing that
//! names it (they fail on their own lines, or not at all). On real fault
//! injections this is often the only trace of the faulty service. The
//! per-minute stop test (`mix.rs`) sees it only when the statement stops
//! outright and the service writes enough else; a trace shows it directly:
//! requests that wrote `A` (a caller's "query" line) also wrote `B` (the
//! callee's "found route" line) in 99% of earlier traces, and this minute
//! half of them did not.
//!
//! This is Nezha's event-pattern comparison (Yu et al., FSE 2023: an
//! expected event missing from a trace in the faulty phase points at the
//! service that should have written it), with the patterns learned as the
//! co-occurrence invariants of Lou et al. (*Mining Invariants from Console
//! Logs for System Problem Detection*, USENIX ATC 2010), reduced to the
//! simplest invariant, "sessions with `A` contain `B`". Sessions are the
//! session detector's (trace ids, request or block ids), judged when they
//! close.
//!
//! The test. An invariant `A => B` holds when at least [`INVARIANT_SHARE`]
//! of at least [`MIN_SUPPORT`] earlier sessions with `A` also held `B`.
//! Sessions closing in one minute are counted per invariant: `n` with `A`,
//! `k` of them without `B`. `k` is judged by the beta-binomial predictive
//! tail under the history's counts (so a short history is less sure), the
//! smallest tail per service is corrected for the number of invariants
//! tested (Bonferroni), and an alert opens at 1e-6 and closes when a minute
//! is back above 0.05: the template-mix tests' rule, not re-chosen here.
//! It is reported at `B`'s service (where the statement went missing).
//!
//! Absence of data is not data: a session counts as missing `B` only if
//! `B`'s service was writing records from before the session began until
//! after it ended. A shipper that starts or stops collecting (a log
//! window, a restarted agent, the edges of a replayed file) truncates
//! sessions without anything having failed.
//!
//! Learned only from sessions that broke no invariant badly (robust, as the
//! other detectors' baselines), so a fault does not teach its own absence.
//! Bounded: [`MAX_TEMPLATES`] anchors, [`MAX_PAIRS`] pairs,
//! [`MAX_PER_SESSION`] templates per session and [`MAX_WINDOW_SESSIONS`]
//! sessions buffered per minute.

use crate::detectors::tails::log10_beta_binomial_tail;
use crate::hash::FastMap;
use models::{Anomaly, AnomalyKind, Band, Signal, SignalKind, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The detector name of a broken invariant.
pub const BROKEN: &str = "broken_invariant";
/// Share of sessions with `A` that must also hold `B` (association rules'
/// customary confidence).
pub const INVARIANT_SHARE: f64 = 0.95;
/// Earlier sessions with `A` before `A => B` is trusted.
pub const MIN_SUPPORT: f64 = 50.0;
/// Sessions with `A` a minute needs before `A => B` is judged in it.
const MIN_WINDOW: u32 = 5;
/// Templates of one session considered (the first ones).
pub const MAX_PER_SESSION: usize = 32;
/// Anchors remembered.
pub const MAX_TEMPLATES: usize = 20_000;
/// Co-occurring pairs remembered.
pub const MAX_PAIRS: usize = 200_000;
/// Sessions buffered per minute for learning; beyond it a minute teaches
/// only what it buffered.
pub const MAX_WINDOW_SESSIONS: usize = 20_000;
/// Services whose streams are followed.
const MAX_STREAMS: usize = 10_000;
/// A pause longer than this in a service's records breaks its stream.
const STREAM_GAP_MS: i64 = 60_000;
const WINDOW_MS: i64 = 60_000;
/// log10 tails at which an alert opens, closes, and a session is not
/// learned from.
const OPEN_LOG10: f64 = -6.0;
const CLOSE_LOG10: f64 = -1.3;
const ORDINARY_LOG10: f64 = -3.0;

/// One invariant tested in the current minute.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Tested {
    /// Sessions with the anchor (and the consequent's service live).
    n: u32,
    /// Of them, without the consequent.
    missing: u32,
}

/// A service's most surprising invariant in a minute.
struct Worst {
    /// log10 tail, Bonferroni-corrected.
    tail: f64,
    anchor: Arc<str>,
    consequent: Arc<str>,
    tested: Tested,
    /// Share of earlier sessions with the anchor that lacked the consequent.
    usual: f64,
}

/// A closed session waiting for its minute to be judged.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    templates: Vec<Arc<str>>,
    /// Invariants it broke: (anchor, consequent).
    broke: Vec<(Arc<str>, Arc<str>)>,
}

/// The detector. See the module docs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Invariants {
    /// Sessions learned from that held each template.
    with: FastMap<Arc<str>, f64>,
    /// Sessions that held both, by anchor then consequent.
    both: FastMap<Arc<str>, FastMap<Arc<str>, f64>>,
    pairs: usize,
    /// The service that wrote each template (first seen).
    service_of: FastMap<Arc<str>, String>,
    /// Per service: when its current unbroken stream of records began, and
    /// its latest record.
    streams: FastMap<String, (i64, i64)>,
    /// Invariants as of the last learned minute: anchor -> consequents.
    rules: FastMap<Arc<str>, Vec<Arc<str>>>,
    /// The minute being collected (start, ms) and its counts.
    window: Option<i64>,
    tested: BTreeMap<(Arc<str>, Arc<str>), Tested>,
    pending: Vec<Pending>,
    /// Services whose alert is open.
    alerting: BTreeSet<String>,
    /// Anchors or pairs turned away by the caps.
    pub capped: u64,
}

impl Invariants {
    /// A record of `service` at `t`: keeps its stream's extent.
    pub fn saw(&mut self, service: &str, t: Timestamp) {
        let t = t.as_millis();
        if let Some((since, last)) = self.streams.get_mut(service) {
            if t - *last > STREAM_GAP_MS {
                *since = t;
            }
            *last = (*last).max(t);
        } else if self.streams.len() < MAX_STREAMS {
            self.streams.insert(service.to_string(), (t, t));
        }
    }

    /// Whether `service` wrote records without a break from before `first`
    /// until after `last`.
    fn live(&self, service: &str, first: i64, last: i64) -> bool {
        self.streams
            .get(service)
            .is_some_and(|&(since, latest)| since < first && latest > last)
    }

    /// A session closed at `closed` (event time) with `templates` (in the
    /// order first seen) and the service that wrote each, spanning
    /// `first..=last`.
    pub fn observe(
        &mut self,
        closed: Timestamp,
        first: Timestamp,
        last: Timestamp,
        templates: &[(Arc<str>, u32)],
        services: &[Option<String>],
        out: &mut Vec<Anomaly>,
    ) {
        let minute = closed.as_millis().div_euclid(WINDOW_MS) * WINDOW_MS;
        match self.window {
            Some(w) if minute > w => {
                self.judge(out);
                self.window = Some(minute);
            }
            None => self.window = Some(minute),
            _ => {}
        }
        let templates = &templates[..templates.len().min(MAX_PER_SESSION)];
        for ((t, _), s) in templates.iter().zip(services) {
            if let Some(s) = s {
                if !self.service_of.contains_key(t) && self.service_of.len() < MAX_TEMPLATES {
                    self.service_of.insert(t.clone(), s.clone());
                }
            }
        }
        // At most MAX_PER_SESSION templates: a scan beats building a set.
        let held = |b: &str| templates.iter().any(|(t, _)| &**t == b);
        let mut broke = Vec::new();
        for (a, _) in templates {
            let Some(rules) = self.rules.get(a) else {
                continue;
            };
            for b in rules {
                let present = held(b);
                if !present {
                    let Some(svc) = self.service_of.get(b) else {
                        continue;
                    };
                    if !self.live(svc, first.as_millis(), last.as_millis()) {
                        continue;
                    }
                    broke.push((a.clone(), b.clone()));
                }
                let e = self.tested.entry((a.clone(), b.clone())).or_default();
                e.n += 1;
                e.missing += u32::from(!present);
            }
        }
        // A session that broke nothing is ordinary whatever the minute
        // turns out to be: learned now (the minute's tails then count it
        // too, which only adds support). One that broke something waits
        // for the minute's verdict.
        if broke.is_empty() {
            self.learn(templates.iter().map(|(t, _)| t));
        } else if self.pending.len() < MAX_WINDOW_SESSIONS {
            self.pending.push(Pending {
                templates: templates.iter().map(|(t, _)| t.clone()).collect(),
                broke,
            });
        }
    }

    /// End of input: judge the minute being collected.
    pub fn finish(&mut self, out: &mut Vec<Anomaly>) {
        if self.window.is_some() {
            self.judge(out);
        }
    }

    /// Judge the minute collected so far, then learn from its ordinary
    /// sessions.
    fn judge(&mut self, out: &mut Vec<Anomaly>) {
        let Some(start) = self.window else { return };
        let tested = std::mem::take(&mut self.tested);
        let judged: Vec<_> = tested
            .iter()
            .filter(|(_, t)| t.n >= MIN_WINDOW)
            .map(|((a, b), t)| {
                let with = self.with.get(a).copied().unwrap_or(0.0);
                let both = self
                    .both
                    .get(a)
                    .and_then(|m| m.get(b))
                    .copied()
                    .unwrap_or(0.0);
                let seen_without = (with - both).max(0.0);
                let tail = log10_beta_binomial_tail(
                    t.missing as u64,
                    t.n as u64,
                    seen_without + 0.5,
                    both + 0.5,
                );
                (
                    a.clone(),
                    b.clone(),
                    t.clone(),
                    tail,
                    seen_without / with.max(1.0),
                )
            })
            .collect();
        let bonferroni = (judged.len().max(1) as f64).log10();
        // The most surprising invariant per service of the consequent.
        let mut worst: BTreeMap<String, Worst> = BTreeMap::new();
        let mut unusual: BTreeSet<(Arc<str>, Arc<str>)> = BTreeSet::new();
        for (anchor, consequent, tested, tail, usual) in judged {
            let tail = (tail + bonferroni).min(0.0);
            if tail < ORDINARY_LOG10 {
                unusual.insert((anchor.clone(), consequent.clone()));
            }
            let Some(svc) = self.service_of.get(&consequent) else {
                continue;
            };
            let w = Worst {
                tail,
                anchor,
                consequent,
                tested,
                usual,
            };
            match worst.get_mut(svc) {
                Some(slot) if w.tail < slot.tail => *slot = w,
                Some(_) => {}
                None => {
                    worst.insert(svc.clone(), w);
                }
            }
        }
        for (svc, w) in &worst {
            if w.tail <= OPEN_LOG10 && !self.alerting.contains(svc) {
                self.alerting.insert(svc.clone());
                let (a, b, t) = (&w.anchor, &w.consequent, &w.tested);
                out.push(Anomaly {
                    signal: Signal {
                        kind: SignalKind::TemplateMix,
                        name: b.to_string(),
                        service: Some(svc.clone()),
                        host: None,
                        container: None,
                    },
                    timestamp: Timestamp::from_millis(start),
                    observed: t.missing as f64,
                    expected: Band {
                        lower: 0.0,
                        expected: t.n as f64 * w.usual,
                        upper: t.n as f64,
                    },
                    score: (-w.tail / 12.0).clamp(0.0, 1.0),
                    kind: AnomalyKind::LevelShift,
                    detector: BROKEN.into(),
                    detail: format!(
                        "its statement {b} went missing from {} of {} requests that wrote {a} \
                         (they held both in {:.1}% of earlier requests; tail 1e{:.1})",
                        t.missing,
                        t.n,
                        100.0 * (1.0 - w.usual),
                        w.tail
                    ),
                });
            }
        }
        self.alerting
            .retain(|svc| worst.get(svc).is_some_and(|w| w.tail <= CLOSE_LOG10));
        let pending = std::mem::take(&mut self.pending);
        for p in &pending {
            if p.broke.iter().any(|k| unusual.contains(k)) {
                continue;
            }
            self.learn(p.templates.iter());
        }
        self.rebuild_rules();
    }

    fn learn<'a>(&mut self, templates: impl Iterator<Item = &'a Arc<str>> + Clone) {
        let single = templates.clone().nth(1).is_none();
        for a in templates.clone() {
            if let Some(w) = self.with.get_mut(a) {
                *w += 1.0;
            } else if self.with.len() < MAX_TEMPLATES {
                self.with.insert(a.clone(), 1.0);
            } else {
                self.capped += 1;
                continue;
            }
            if single {
                // No pairs: no row for it either.
                continue;
            }
            let row = self.both.entry(a.clone()).or_default();
            for b in templates.clone() {
                if a == b {
                    continue;
                }
                if let Some(c) = row.get_mut(b) {
                    *c += 1.0;
                } else if self.pairs < MAX_PAIRS {
                    row.insert(b.clone(), 1.0);
                    self.pairs += 1;
                } else {
                    self.capped += 1;
                }
            }
        }
    }

    fn rebuild_rules(&mut self) {
        self.rules.clear();
        for (a, row) in &self.both {
            let with = self.with.get(a).copied().unwrap_or(0.0);
            if with < MIN_SUPPORT {
                continue;
            }
            let mut bs: Vec<Arc<str>> = row
                .iter()
                .filter(|(_, &c)| c >= INVARIANT_SHARE * with)
                .map(|(b, _)| b.clone())
                .collect();
            if !bs.is_empty() {
                bs.sort();
                self.rules.insert(a.clone(), bs);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(d: &mut Invariants, sec: i64, parts: &[(&str, &str)], out: &mut Vec<Anomaly>) {
        let ts: Vec<(Arc<str>, u32)> = parts.iter().map(|(t, _)| (Arc::from(*t), 1)).collect();
        let services: Vec<Option<String>> =
            parts.iter().map(|(_, s)| Some(s.to_string())).collect();
        for (_, s) in parts {
            d.saw(s, Timestamp::from_secs(sec));
        }
        d.observe(
            Timestamp::from_secs(sec + 60),
            Timestamp::from_secs(sec),
            Timestamp::from_secs(sec),
            &ts,
            &services,
            out,
        );
    }

    /// Every request through `gateway` logs `query` there and `found` at
    /// `route`; for a few minutes most of them lack `found`.
    #[test]
    fn a_statement_missing_from_requests_is_reported_at_its_service() {
        let mut d = Invariants::default();
        let mut out = Vec::new();
        let both = [("query", "gateway"), ("found", "route")];
        // Ten requests a minute for an hour, all whole; `route` also
        // answers other callers, so its stream goes on.
        for i in 0..600 {
            let sec = i * 6;
            d.saw("route", Timestamp::from_secs(sec + 1));
            session(&mut d, sec, &both, &mut out);
        }
        assert!(out.is_empty(), "{out:#?}");
        // Then 7 of every 10 requests lack `found`.
        for i in 600..640 {
            let sec = i * 6;
            d.saw("route", Timestamp::from_secs(sec + 1));
            let parts: &[(&str, &str)] = if i % 10 < 7 { &both[..1] } else { &both };
            session(&mut d, sec, parts, &mut out);
        }
        d.finish(&mut out);
        assert_eq!(out.len(), 1, "one alert while it lasts: {out:#?}");
        let a = &out[0];
        assert_eq!(a.detector, BROKEN);
        assert_eq!(a.signal.service.as_deref(), Some("route"));
        assert_eq!(a.signal.name, "found");
        assert!(a.detail.contains("went missing"), "{}", a.detail);
        // Not before the first broken minute's sessions closed.
        assert!(a.timestamp.as_millis() >= 3_660_000, "{:?}", a.timestamp);
    }

    /// The same requests, but `route`'s log stream has a gap (a shipper
    /// that collects in windows): requests cut by the gap are not evidence.
    #[test]
    fn a_silent_service_is_not_missing_a_statement() {
        let mut d = Invariants::default();
        let mut out = Vec::new();
        let both = [("query", "gateway"), ("found", "route")];
        for i in 0..600 {
            let sec = i * 6;
            d.saw("route", Timestamp::from_secs(sec + 1));
            session(&mut d, sec, &both, &mut out);
        }
        // `route` writes nothing at all for ten minutes: its lines are
        // absent from every request, because nothing of it was collected.
        for i in 600..700 {
            session(&mut d, i * 6, &both[..1], &mut out);
        }
        d.finish(&mut out);
        assert!(out.is_empty(), "{out:#?}");
    }

    /// A statement written in only some requests is no invariant, and
    /// its absence is ordinary.
    #[test]
    fn an_optional_statement_is_no_invariant() {
        let mut d = Invariants::default();
        let mut out = Vec::new();
        let both = [("query", "gateway"), ("cache miss", "route")];
        for i in 0..1200 {
            let sec = i * 6;
            d.saw("route", Timestamp::from_secs(sec + 1));
            // Written by every third request, then by none for a while.
            let parts: &[(&str, &str)] = if i % 3 == 0 && i < 600 {
                &both
            } else {
                &both[..1]
            };
            session(&mut d, sec, parts, &mut out);
        }
        d.finish(&mut out);
        assert!(out.is_empty(), "{out:#?}");
    }
}
