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
//! Where a request broke: a request that broke loses every statement after
//! the break, at the broken service's callees (never called) and callers
//! (their lines after the call) alike. Of the statements a session lacks,
//! only the one that sessions usually wrote before the others (the order
//! is learned with the pairs) counts as missing; for the later ones the
//! session is left out of the test, since the request never got that far.
//! Done per session, not per minute: a minute mixes requests that broke in
//! different places, and the statement missing first *overall* is most
//! often a caller's line after the call (measured, BENCHMARKS).
//!
//! Logs alone cannot tell a callee that threw before its first line from
//! a caller that threw before calling it: either way the callee's line is
//! the first one lost. So with each alert goes a weaker second candidate
//! (`broke_after`): the service of the statement the broken requests most
//! often wrote last before the lost one, when it is another service. It is
//! ranked like a changed template mix (it never opens an incident).
//!
//! Absence of data is not data: a session counts as missing `B` only if
//! `B`'s service was writing records from before the session began until
//! after it ended. A shipper that starts or stops collecting (a log
//! window, a restarted agent, the edges of a replayed file) truncates
//! sessions without anything having failed.
//!
//! Learned only from sessions that broke no invariant badly (robust, as the
//! other detectors' baselines), so a fault does not teach its own absence.
//! Bounded: [`MAX_TEMPLATES`] templates, [`MAX_PAIRS`] pairs,
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
/// The detector name of the service whose statement the broken requests
/// wrote last before the one they lost (see [`Invariants`]).
pub const BROKE_AFTER: &str = "broke_after";
/// Share of sessions with `A` that must also hold `B` (association rules'
/// customary confidence).
pub const INVARIANT_SHARE: f64 = 0.95;
/// Earlier sessions with `A` before `A => B` is trusted.
pub const MIN_SUPPORT: f64 = 50.0;
/// Sessions with `A` a minute needs before `A => B` is judged in it.
const MIN_WINDOW: u32 = 5;
/// Templates of one session considered (the first ones).
pub const MAX_PER_SESSION: usize = 32;
/// Templates remembered.
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

/// Two templates in the same sessions.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Pair {
    /// Sessions that held both.
    together: f64,
    /// Of them, those that wrote the row's template first.
    first: f64,
}

/// A service's most surprising invariant in a minute.
struct Worst {
    /// log10 tail, Bonferroni-corrected.
    tail: f64,
    anchor: Id,
    consequent: Id,
    tested: Tested,
    /// Share of earlier sessions with the anchor that lacked the consequent.
    usual: f64,
}

/// A template, by the number it was given when first seen: every count
/// below is keyed by numbers, so a session's tests hash and compare
/// integers, not template ids.
type Id = u32;

/// A closed session waiting for its minute to be judged.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    templates: Vec<Id>,
    /// Invariants it broke: (anchor, consequent).
    broke: Vec<(Id, Id)>,
}

/// What is known of one template.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Template {
    name: Arc<str>,
    /// The service that wrote it (first seen).
    service: Option<String>,
    /// Sessions learned from that held it.
    with: f64,
    /// Sessions that held it and each other template, and of them those
    /// that wrote it first.
    both: FastMap<Id, Pair>,
    /// Invariants as of the last learned minute: the templates sessions
    /// with this one hold.
    rules: Vec<Id>,
}

/// The detector. See the module docs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Invariants {
    ids: FastMap<Arc<str>, Id>,
    templates: Vec<Template>,
    pairs: usize,
    /// Per service: when its current unbroken stream of records began, and
    /// its latest record.
    streams: FastMap<String, (i64, i64)>,
    /// The minute being collected (start, ms) and its counts.
    window: Option<i64>,
    tested: FastMap<(Id, Id), Tested>,
    /// This minute's broken sessions by (the statement lost, the last one
    /// written before it).
    breaks: FastMap<(Id, Id), u32>,
    pending: Vec<Pending>,
    /// Services whose alert is open.
    alerting: BTreeSet<String>,
    /// Templates or pairs turned away by the caps.
    pub capped: u64,
    /// Working space for [`Invariants::observe`] (the session's statements,
    /// and the same sorted), kept so that judging a session allocates
    /// nothing: when every log line has a trace id of its own, a session
    /// closes per record.
    #[serde(skip)]
    scratch: (Vec<Id>, Vec<Id>),
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

    /// The number of template `name`, given now if it has none (and the
    /// cap allows).
    fn id(&mut self, name: &Arc<str>, service: &Option<Arc<str>>) -> Option<Id> {
        if let Some(&id) = self.ids.get(name) {
            return Some(id);
        }
        if self.templates.len() >= MAX_TEMPLATES {
            self.capped += 1;
            return None;
        }
        let id = self.templates.len() as Id;
        self.ids.insert(name.clone(), id);
        self.templates.push(Template {
            name: name.clone(),
            service: service.as_deref().map(str::to_string),
            with: 0.0,
            both: FastMap::default(),
            rules: Vec::new(),
        });
        Some(id)
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
        services: &[Option<Arc<str>>],
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
        let (mut held, mut sorted) = std::mem::take(&mut self.scratch);
        held.clear();
        for ((t, _), s) in templates.iter().zip(services).take(MAX_PER_SESSION) {
            if let Some(id) = self.id(t, s) {
                held.push(id);
            }
        }
        sorted.clear();
        sorted.extend_from_slice(&held);
        sorted.sort_unstable();
        let (first_ms, last_ms) = (first.as_millis(), last.as_millis());
        // The statements this session lacks that its templates' invariants
        // expect (where their services were writing).
        let mut lacks: Vec<Id> = Vec::new();
        for &a in &held {
            for &b in &self.templates[a as usize].rules {
                if sorted.binary_search(&b).is_err() && !lacks.contains(&b) {
                    let live = self.templates[b as usize]
                        .service
                        .as_deref()
                        .is_some_and(|svc| self.live(svc, first_ms, last_ms));
                    if live {
                        lacks.push(b);
                    }
                }
            }
        }
        // A request that broke loses every statement after the break, at
        // the broken service's callees and its callers alike: only the
        // statement such requests usually wrote first is where it broke.
        // The later ones are neither missing nor present here: the request
        // never got that far, which says nothing about them.
        let lost = self.most(&lacks, |b, c| self.precedes(b, c));
        let mut broke = Vec::new();
        for &a in &held {
            for &b in &self.templates[a as usize].rules {
                let present = sorted.binary_search(&b).is_ok();
                if !present && Some(b) != lost {
                    continue;
                }
                if !present {
                    broke.push((a, b));
                }
                let e = self.tested.entry((a, b)).or_default();
                e.n += 1;
                e.missing += u32::from(!present);
            }
        }
        // The statement it wrote last before the one it lost: the break
        // lies between the two (the first service threw after its line, or
        // the second before its own).
        if let (Some(lost), false) = (lost, broke.is_empty()) {
            let before: Vec<Id> = held
                .iter()
                .copied()
                .filter(|&p| self.precedes(p, lost))
                .collect();
            if let Some(p) = self.most(&before, |p, q| self.precedes(q, p)) {
                *self.breaks.entry((lost, p)).or_default() += 1;
            }
        }
        // A session that broke nothing is ordinary whatever the minute
        // turns out to be: learned now (the minute's tails then count it
        // too, which only adds support). One that broke something waits
        // for the minute's verdict.
        if broke.is_empty() {
            self.learn(&held);
        } else if self.pending.len() < MAX_WINDOW_SESSIONS {
            self.pending.push(Pending {
                templates: held.clone(),
                broke,
            });
        }
        self.scratch = (held, sorted);
    }

    /// Whether sessions holding both `b` and `c` usually wrote `b` first.
    fn precedes(&self, b: Id, c: Id) -> bool {
        self.templates[b as usize]
            .both
            .get(&c)
            .is_some_and(|p| 2.0 * p.first > p.together)
    }

    /// Of `ids`, the one that stands in `rel` to the most others of them
    /// (ties: the first numbered). With "usually written before" it is the
    /// statement requests wrote first, with "usually written after" the
    /// one they wrote last.
    fn most(&self, ids: &[Id], rel: impl Fn(Id, Id) -> bool) -> Option<Id> {
        ids.iter()
            .map(|&b| {
                let n = ids.iter().filter(|&&c| c != b && rel(b, c)).count();
                (std::cmp::Reverse(n), b)
            })
            .min()
            .map(|(_, b)| b)
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
        // Sorted by the templates' names: the same order in every process
        // (the numbers depend on arrival, the hash maps on a random seed).
        let mut tested: Vec<((Id, Id), Tested)> = self
            .tested
            .drain()
            .filter(|(_, t)| t.n >= MIN_WINDOW)
            .collect();
        tested.sort_by(|((a1, b1), _), ((a2, b2), _)| {
            let name = |i: &Id| &self.templates[*i as usize].name;
            (name(a1), name(b1)).cmp(&(name(a2), name(b2)))
        });
        let bonferroni = (tested.len().max(1) as f64).log10();
        // The most surprising invariant per service of the consequent.
        let mut worst: BTreeMap<String, Worst> = BTreeMap::new();
        let mut unusual: BTreeSet<(Id, Id)> = BTreeSet::new();
        for ((a, b), t) in tested {
            let anchor = &self.templates[a as usize];
            let with = anchor.with;
            let both = anchor.both.get(&b).map_or(0.0, |p| p.together);
            let seen_without = (with - both).max(0.0);
            let tail = log10_beta_binomial_tail(
                t.missing as u64,
                t.n as u64,
                seen_without + 0.5,
                both + 0.5,
            );
            let tail = (tail + bonferroni).min(0.0);
            if tail < ORDINARY_LOG10 {
                unusual.insert((a, b));
            }
            let Some(svc) = &self.templates[b as usize].service else {
                continue;
            };
            let w = Worst {
                tail,
                anchor: a,
                consequent: b,
                tested: t,
                usual: seen_without / with.max(1.0),
            };
            match worst.get_mut(svc) {
                Some(slot) if w.tail < slot.tail => *slot = w,
                Some(_) => {}
                None => {
                    worst.insert(svc.clone(), w);
                }
            }
        }
        let opened = out.len();
        for (svc, w) in &worst {
            if w.tail <= OPEN_LOG10 && !self.alerting.contains(svc) {
                self.alerting.insert(svc.clone());
                let a = &self.templates[w.anchor as usize].name;
                let b = &self.templates[w.consequent as usize].name;
                let t = &w.tested;
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
        // Where each new alert's requests were last seen before they broke,
        // when that is another service: a second candidate, weaker (the
        // break may be in either), that never opens an incident.
        let breaks = std::mem::take(&mut self.breaks);
        let mut after: Vec<Anomaly> = Vec::new();
        for a in &out[opened..] {
            let Some(&lost) = self.ids.get(a.signal.name.as_str()) else {
                continue;
            };
            let mut lasts: Vec<(u32, &Arc<str>, Id)> = breaks
                .iter()
                .filter(|((l, _), _)| *l == lost)
                .map(|((_, p), &n)| (n, &self.templates[*p as usize].name, *p))
                .collect();
            // Most sessions first; ties by name (the same in every process).
            lasts.sort_by(|x, y| y.0.cmp(&x.0).then_with(|| x.1.cmp(y.1)));
            let Some(&(n, name, p)) = lasts.first() else {
                continue;
            };
            let Some(svc) = self.templates[p as usize].service.clone() else {
                continue;
            };
            if a.signal.service.as_deref() == Some(svc.as_str()) {
                continue;
            }
            after.push(Anomaly {
                signal: Signal {
                    kind: SignalKind::TemplateMix,
                    name: name.to_string(),
                    service: Some(svc),
                    host: None,
                    container: None,
                },
                detector: BROKE_AFTER.into(),
                observed: n as f64,
                score: a.score * 0.5,
                detail: format!(
                    "{n} requests broke right after its statement {name}: the next one they \
                     usually write, {} at {}, went missing",
                    a.signal.name,
                    a.signal.service.as_deref().unwrap_or("?")
                ),
                ..a.clone()
            });
        }
        out.extend(after);
        self.alerting
            .retain(|svc| worst.get(svc).is_some_and(|w| w.tail <= CLOSE_LOG10));
        let pending = std::mem::take(&mut self.pending);
        for p in &pending {
            if p.broke.iter().any(|k| unusual.contains(k)) {
                continue;
            }
            self.learn(&p.templates);
        }
        self.rebuild_rules();
    }

    fn learn(&mut self, held: &[Id]) {
        for (i, &a) in held.iter().enumerate() {
            let row = &mut self.templates[a as usize];
            row.with += 1.0;
            if held.len() < 2 {
                continue;
            }
            // `held` is in the order the session first wrote each.
            for (j, &b) in held.iter().enumerate() {
                if a == b {
                    continue;
                }
                let first = f64::from(u8::from(i < j));
                if let Some(c) = row.both.get_mut(&b) {
                    c.together += 1.0;
                    c.first += first;
                } else if self.pairs < MAX_PAIRS {
                    row.both.insert(
                        b,
                        Pair {
                            together: 1.0,
                            first,
                        },
                    );
                    self.pairs += 1;
                } else {
                    self.capped += 1;
                }
            }
        }
    }

    fn rebuild_rules(&mut self) {
        for t in &mut self.templates {
            t.rules.clear();
            if t.with < MIN_SUPPORT {
                continue;
            }
            let with = t.with;
            t.rules.extend(
                t.both
                    .iter()
                    .filter(|(_, c)| c.together >= INVARIANT_SHARE * with)
                    .map(|(&b, _)| b),
            );
            // Ids in a fixed order: sessions test them in it.
            t.rules.sort_unstable();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(d: &mut Invariants, sec: i64, parts: &[(&str, &str)], out: &mut Vec<Anomaly>) {
        let ts: Vec<(Arc<str>, u32)> = parts.iter().map(|(t, _)| (Arc::from(*t), 1)).collect();
        let services: Vec<Option<Arc<str>>> =
            parts.iter().map(|(_, s)| Some(Arc::from(*s))).collect();
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

    /// A request every 6 s from `from` to `to` (ids), each writing `parts`
    /// of its index, while `writing` services go on logging other lines.
    fn requests<'a>(
        d: &mut Invariants,
        ids: std::ops::Range<i64>,
        writing: &[&str],
        parts: impl Fn(i64) -> &'a [(&'a str, &'a str)],
        out: &mut Vec<Anomaly>,
    ) {
        for i in ids {
            let sec = i * 6;
            for s in writing {
                d.saw(s, Timestamp::from_secs(sec + 1));
            }
            session(d, sec, parts(i), out);
        }
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
        requests(&mut d, 0..600, &["route"], |_| &both, &mut out);
        assert!(out.is_empty(), "{out:#?}");
        // Then 7 of every 10 requests lack `found`.
        let broken = |i: i64| if i % 10 < 7 { &both[..1] } else { &both[..] };
        requests(&mut d, 600..640, &["route"], broken, &mut out);
        d.finish(&mut out);
        let (lost, after): (Vec<_>, Vec<_>) = out.iter().partition(|a| a.detector == BROKEN);
        assert_eq!(lost.len(), 1, "one alert while it lasts: {out:#?}");
        // And the line the broken requests wrote last, a weaker candidate.
        assert_eq!(after.len(), 1, "{out:#?}");
        assert_eq!(after[0].detector, BROKE_AFTER);
        assert_eq!(after[0].signal.service.as_deref(), Some("gateway"));
        assert!(
            after[0].detail.contains("broke right after"),
            "{}",
            after[0].detail
        );
        let a = lost[0];
        assert_eq!(a.detector, BROKEN);
        assert_eq!(a.signal.service.as_deref(), Some("route"));
        assert_eq!(a.signal.name, "found");
        assert!(a.detail.contains("went missing"), "{}", a.detail);
        // Not before the first broken minute's sessions closed.
        assert!(a.timestamp.as_millis() >= 3_660_000, "{:?}", a.timestamp);
    }

    /// `gateway` calls `route`, which calls `price`. When `route` throws
    /// before its line, `price` is never called and its line goes missing
    /// too; the requests broke at `route`, and only `route` is reported.
    #[test]
    fn a_request_that_broke_is_reported_where_it_broke_not_downstream() {
        let mut d = Invariants::default();
        let mut out = Vec::new();
        let whole = [
            ("query", "gateway"),
            ("found", "route"),
            ("priced", "price"),
        ];
        let writing = ["route", "price"];
        requests(&mut d, 0..600, &writing, |_| &whole, &mut out);
        let broken = |i: i64| if i % 10 < 7 { &whole[..1] } else { &whole[..] };
        requests(&mut d, 600..640, &writing, broken, &mut out);
        d.finish(&mut out);
        let at: Vec<_> = out
            .iter()
            .filter(|a| a.detector == BROKEN)
            .map(|a| a.signal.service.as_deref())
            .collect();
        assert_eq!(at, [Some("route")], "{out:#?}");
    }

    /// The same requests, but `route`'s log stream has a gap (a shipper
    /// that collects in windows): requests cut by the gap are not evidence.
    #[test]
    fn a_silent_service_is_not_missing_a_statement() {
        let mut d = Invariants::default();
        let mut out = Vec::new();
        let both = [("query", "gateway"), ("found", "route")];
        requests(&mut d, 0..600, &["route"], |_| &both, &mut out);
        // `route` writes nothing at all for ten minutes: its lines are
        // absent from every request, because nothing of it was collected.
        requests(&mut d, 600..700, &[], |_| &both[..1], &mut out);
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
        // Written by every third request, then by none for a while.
        let some = |i: i64| {
            if i % 3 == 0 && i < 600 {
                &both[..]
            } else {
                &both[..1]
            }
        };
        requests(&mut d, 0..1200, &["route"], some, &mut out);
        d.finish(&mut out);
        assert!(out.is_empty(), "{out:#?}");
    }
}
