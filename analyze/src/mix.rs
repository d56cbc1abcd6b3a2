//! Template mix: whether the mix of log templates a service writes has
//! departed from its own history.
//!
//! Why: a fault often changes *what* a service logs before (or instead
//! of) how many errors it logs. A method that returns a wrong value sends
//! requests down another branch; an exception thrown early skips the lines
//! a request would have logged after it. On real fault injections the
//! faulty service often logs no error at all, while its mix of templates
//! moves. This is Nezha's comparison of event patterns between fault-free
//! and faulty periods (FSE 2023), reduced to one service's template
//! frequencies and made streaming: each minute of a service's records is
//! tested against the service's own history with a G-test (the likelihood
//! ratio of the minute's multinomial counts under the history's
//! frequencies, smoothed so a template never seen costs a finite amount).
//!
//! Log counts are over-dispersed (requests come in bursts of one kind), so
//! the raw G would flag every busy minute. The statistic is divided by a
//! dispersion learned from the service's own ordinary minutes (the
//! quasi-likelihood estimate, mean G per degree of freedom: McCullagh and
//! Nelder, *Generalized Linear Models*, ch. 9), and only then compared with
//! its chi-square distribution (Wilson-Hilferty's approximation). The alert
//! rule is the record-share detector's: a tail of 1e-6 opens, one above
//! 0.05 closes, and history and dispersion learn only from minutes that
//! are not in alert and not unusual.
//!
//! A second test on the same minute asks the opposite question: did a
//! statement the service writes steadily stop while the service went on
//! writing? An exception thrown early in a request skips every line the
//! request would have logged after it, so the faulty service's mix loses a
//! template (often its only sign: it logs no error of its own, its callers
//! do). The G-test weighs that loss with everything else that moved; the
//! stop test isolates it. For each template of the history absent from a
//! minute of `n` records, the deviance of "its share is still `q`" against
//! "it is zero" is `-2 n ln(1 - q)`; divided by the same dispersion and
//! referred to chi-square with one degree of freedom, with Bonferroni's
//! correction for the templates tested, it opens at the same 1e-6. This
//! is the "expected event missing" half of Nezha's pattern comparison, and
//! the count invariants of Lou et al. (*Mining Invariants from Console
//! Logs*, USENIX ATC 2010) reduced to one template's share. It closes when
//! the template is written again.
//!
//! Bounded: at most [`MAX_SERVICES`] services and [`MAX_TEMPLATES`]
//! templates per service (more go to one "other" bucket).

use crate::detectors::tails::log10_normal_tail;
use models::{Anomaly, AnomalyKind, Band, Signal, SignalKind, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Length of the judged windows.
const WINDOW_MS: i64 = 60_000;
/// Records of history a service needs before its minutes are judged.
const MIN_HISTORY: f64 = 200.0;
/// Records a minute needs to be judged.
const MIN_WINDOW: f64 = 10.0;
/// Ordinary minutes judged before the dispersion is trusted: until then
/// every minute only teaches (no burst of alerts when a warm-up ends).
const MIN_JUDGED: u32 = 10;
/// History kept per ordinary minute: the record-share detector's
/// discount, so old behaviour fades over some hundreds of minutes.
const KEEP: f64 = 0.995;
/// Pseudo-count per template (Jeffreys' 1/2): an unseen template has a
/// small, finite probability.
const SMOOTH: f64 = 0.5;
/// Services tracked.
pub const MAX_SERVICES: usize = 1_000;
/// Templates tracked per service; the rest share one bucket.
pub const MAX_TEMPLATES: usize = 512;
const OTHER: &str = "<other>";
/// log10 tails at which an alert opens and closes.
const OPEN_LOG10: f64 = -6.0;
const CLOSE_LOG10: f64 = -1.3;
/// The detector name of a stopped statement (see the module docs).
pub const STOPPED: &str = "template_stopped";
/// A minute this unusual (log10 tail) teaches nothing, alert or not.
const ORDINARY_LOG10: f64 = -3.0;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ServiceMix {
    start: i64,
    window: BTreeMap<String, f64>,
    history: BTreeMap<String, f64>,
    history_n: f64,
    /// Running mean of G per degree of freedom over ordinary minutes.
    dispersion: f64,
    judged: u32,
    in_alert: bool,
    /// The template whose stop is in alert (see the module docs).
    #[serde(default)]
    stopped: Option<String>,
}

/// A judged minute in which a steady template stopped.
#[derive(Debug, Clone, PartialEq)]
struct Stop {
    template: String,
    /// Its share of the history, and the records of the minute.
    share: f64,
    records: f64,
    log10_tail: f64,
}

/// A judged minute that opened an alert.
#[derive(Debug, Clone, PartialEq)]
struct Judgement {
    /// G divided by the service's dispersion.
    statistic: f64,
    /// Degrees of freedom (distinct templates in the minute, at least 1).
    df: f64,
    /// log10 of the statistic's chi-square upper tail.
    log10_tail: f64,
    /// The most over-represented template, its records and the records
    /// the history expected of it.
    template: String,
    count: f64,
    expected: f64,
}

/// Every service's template mix (see the module docs).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MixTracker {
    services: BTreeMap<String, ServiceMix>,
}

/// log10 of P(X > x), X chi-square with `k` degrees of freedom
/// (Wilson-Hilferty: (X/k)^(1/3) is nearly normal).
pub fn log10_chi2_tail(x: f64, k: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let v = 2.0 / (9.0 * k);
    let z = ((x / k).cbrt() - (1.0 - v)) / v.sqrt();
    log10_normal_tail(z).min(0.0)
}

impl ServiceMix {
    fn add(&mut self, template: &str) {
        let key = if self.window.contains_key(template)
            || self.history.contains_key(template)
            || self.window.len() + self.history.len() < MAX_TEMPLATES
        {
            template
        } else {
            OTHER
        };
        if let Some(n) = self.window.get_mut(key) {
            *n += 1.0;
        } else {
            self.window.insert(key.to_string(), 1.0);
        }
    }

    /// Judge the closed minute, learn from it if it was ordinary, and
    /// start the next. Returns the judgement when the minute was judged
    /// and the alert opened with it.
    fn close(&mut self) -> (Option<Judgement>, Option<Stop>) {
        let window = std::mem::take(&mut self.window);
        let n: f64 = window.values().sum();
        let mut opened = None;
        let mut stop = None;
        let mut ordinary = true;
        if self
            .stopped
            .as_ref()
            .is_some_and(|t| window.contains_key(t))
        {
            self.stopped = None;
        }
        if self.history_n >= MIN_HISTORY && n >= MIN_WINDOW {
            let k = (self.history.len()
                + window
                    .keys()
                    .filter(|t| !self.history.contains_key(*t))
                    .count()
                + 1) as f64;
            let denom = self.history_n + SMOOTH * k;
            let mut g = 0.0;
            let mut worst = (f64::NEG_INFINITY, String::new(), 0.0, 0.0);
            for (t, &c) in &window {
                let q = (self.history.get(t).copied().unwrap_or(0.0) + SMOOTH) / denom;
                let e = n * q;
                let term = c * (c / e).ln();
                g += term;
                if term > worst.0 {
                    worst = (term, t.clone(), c, e);
                }
            }
            let g = 2.0 * g.max(0.0);
            let df = (window.len() as f64).max(1.0);
            if self.judged >= MIN_JUDGED {
                let statistic = g / self.dispersion.max(1.0);
                let log10_tail = log10_chi2_tail(statistic, df);
                ordinary = log10_tail > ORDINARY_LOG10 && !self.in_alert;
                let was = self.in_alert;
                if log10_tail <= OPEN_LOG10 {
                    self.in_alert = true;
                } else if log10_tail > CLOSE_LOG10 {
                    self.in_alert = false;
                }
                if self.in_alert && !was {
                    let (_, template, count, expected) = worst;
                    opened = Some(Judgement {
                        statistic,
                        df,
                        log10_tail,
                        template,
                        count,
                        expected,
                    });
                }
            }
            if self.judged >= MIN_JUDGED {
                // The steadiest template absent from the minute.
                // Chi-square with one degree of freedom is 2 Q(sqrt(D));
                // Bonferroni over the templates tested.
                let correction = 2f64.log10() + (self.history.len().max(1) as f64).log10();
                let mut worst: Option<(f64, &String, f64)> = None;
                for (t, &h) in &self.history {
                    if t == OTHER || window.contains_key(t) {
                        continue;
                    }
                    let q = (h + SMOOTH) / denom;
                    let deviance = -2.0 * n * (1.0 - q).ln() / self.dispersion.max(1.0);
                    let log10_tail = (log10_normal_tail(deviance.sqrt()) + correction).min(0.0);
                    if worst.is_none_or(|w| log10_tail < w.0) {
                        worst = Some((log10_tail, t, q));
                    }
                }
                if let Some((log10_tail, t, q)) = worst {
                    ordinary &= log10_tail > ORDINARY_LOG10 && self.stopped.is_none();
                    if log10_tail <= OPEN_LOG10 && self.stopped.is_none() {
                        self.stopped = Some(t.clone());
                        stop = Some(Stop {
                            template: t.clone(),
                            share: q,
                            records: n,
                            log10_tail,
                        });
                    }
                }
            }
            if ordinary {
                self.judged = self.judged.saturating_add(1);
                let w = 1.0 / f64::from(self.judged.min(50));
                let ratio = g / df;
                self.dispersion = if self.judged == 1 {
                    ratio
                } else {
                    self.dispersion + w * (ratio - self.dispersion)
                };
            }
        }
        if ordinary {
            for v in self.history.values_mut() {
                *v *= KEEP;
            }
            self.history_n *= KEEP;
            for (t, c) in window {
                *self.history.entry(t).or_default() += c;
                self.history_n += c;
            }
        }
        (opened, stop)
    }
}

impl MixTracker {
    /// Fold in one record of `service` with template `template` at `at`;
    /// a minute that closes and opens an alert becomes an anomaly in
    /// `out`. Records of an earlier minute than the open one count in the
    /// open one (input slightly out of order).
    pub fn observe(
        &mut self,
        service: &str,
        template: &str,
        at: Timestamp,
        out: &mut Vec<Anomaly>,
    ) {
        let t = at.as_millis();
        let start = t - t.rem_euclid(WINDOW_MS);
        if !self.services.contains_key(service) {
            if self.services.len() >= MAX_SERVICES {
                return;
            }
            self.services.insert(
                service.to_string(),
                ServiceMix {
                    start,
                    ..Default::default()
                },
            );
        }
        let m = self.services.get_mut(service).expect("inserted");
        if start > m.start {
            let closed = m.start;
            let (judged, stop) = m.close();
            if let Some(j) = judged {
                out.push(Anomaly {
                    signal: Signal {
                        kind: SignalKind::TemplateMix,
                        name: String::new(),
                        service: Some(service.to_string()),
                        host: None,
                        container: None,
                    },
                    // Stamped when the minute is over, which is when it
                    // can be judged: a mix is a property of the whole
                    // minute, and stamping its start would put it before
                    // a deploy made within that minute.
                    timestamp: Timestamp::from_millis(closed + WINDOW_MS),
                    observed: j.statistic,
                    expected: Band {
                        lower: 0.0,
                        expected: j.df,
                        upper: j.df + 3.0 * (2.0 * j.df).sqrt(),
                    },
                    score: (-j.log10_tail / 12.0).clamp(0.5, 1.0),
                    kind: AnomalyKind::LevelShift,
                    detector: "template_mix".into(),
                    detail: format!(
                        "the mix of its log templates departed from its history \
                         (G {:.1} over {} templates after dispersion, tail 1e{:.1}); \
                         most over-represented: {} ({:.0} records, {:.1} expected)",
                        j.statistic, j.df, j.log10_tail, j.template, j.count, j.expected
                    ),
                });
            }
            if let Some(st) = stop {
                out.push(Anomaly {
                    signal: Signal {
                        kind: SignalKind::TemplateMix,
                        name: st.template.clone(),
                        service: Some(service.to_string()),
                        host: None,
                        container: None,
                    },
                    timestamp: Timestamp::from_millis(closed + WINDOW_MS),
                    observed: 0.0,
                    expected: Band {
                        lower: 0.0,
                        expected: st.records * st.share,
                        upper: st.records,
                    },
                    score: (-st.log10_tail / 12.0).clamp(0.5, 1.0),
                    kind: AnomalyKind::LevelShift,
                    detector: STOPPED.into(),
                    detail: format!(
                        "its statement {} stopped: none of the minute's {:.0} records, \
                         {:.1} expected ({:.1}% of its history; tail 1e{:.1})",
                        st.template,
                        st.records,
                        st.records * st.share,
                        100.0 * st.share,
                        st.log10_tail
                    ),
                });
            }
            m.start = start;
        }
        m.add(template);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(m: &mut MixTracker, minute: i64, mix: &[(&str, usize)], out: &mut Vec<Anomaly>) {
        let mut i = 0;
        for (t, n) in mix {
            for _ in 0..*n {
                let at = Timestamp::from_millis(minute * 60_000 + (i % 59) * 1000);
                m.observe("api", t, at, out);
                i += 1;
            }
        }
    }

    #[test]
    fn chi2_tail_matches_known_quantiles() {
        // 99.9% quantiles: df 1 -> 10.83, df 10 -> 29.59, df 50 -> 86.66.
        for (x, k) in [(10.83, 1.0), (29.59, 10.0), (86.66, 50.0)] {
            let l = log10_chi2_tail(x, k);
            assert!((l + 3.0).abs() < 0.15, "{x} {k}: {l}");
        }
        assert_eq!(log10_chi2_tail(0.0, 3.0), 0.0);
    }

    /// A service whose minutes vary in load and a little in mix raises
    /// nothing; the same service taking another branch (a template it
    /// rarely wrote now dominates, the usual ones vanish) is reported
    /// once, at the minute it changed, naming the template.
    #[test]
    fn a_changed_mix_is_reported_once_and_ordinary_minutes_never() {
        let mut m = MixTracker::default();
        let mut out = Vec::new();
        for minute in 0..300 {
            // Load from 20 to 60 records a minute, the mix wobbling.
            let load = 20 + (minute * 7 % 41) as usize;
            let extra = (minute % 5) as usize;
            feed(
                &mut m,
                minute,
                &[
                    ("query", load),
                    ("cache hit", load / 2 + extra),
                    ("rare", (minute % 30 == 0) as usize),
                ],
                &mut out,
            );
        }
        assert!(out.is_empty(), "{out:?}");
        for minute in 300..305 {
            feed(&mut m, minute, &[("query", 5), ("rare", 30)], &mut out);
        }
        feed(&mut m, 305, &[("query", 30)], &mut out);
        // The usual "cache hit" vanished with it: the stop test says so
        // at the same minute.
        let (stops, out): (Vec<Anomaly>, Vec<Anomaly>) =
            out.into_iter().partition(|a| a.detector == STOPPED);
        assert_eq!(stops.len(), 1, "{stops:?}");
        assert_eq!(stops[0].signal.name, "cache hit");
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].timestamp, Timestamp::from_millis(301 * 60_000));
        assert_eq!(out[0].signal.kind, SignalKind::TemplateMix);
        assert!(out[0].detail.contains("rare"), "{}", out[0].detail);
    }

    /// A statement that made a third of a service's records stops while
    /// the service goes on writing the rest: reported once, naming it,
    /// closed when the statement is written again. A quieter minute with
    /// every statement present, or a minute missing only a rare one,
    /// raises nothing.
    #[test]
    fn a_statement_that_stops_is_reported_once_and_load_never() {
        let mut m = MixTracker::default();
        let mut out = Vec::new();
        for minute in 0..200 {
            let load = 20 + (minute * 7 % 41) as usize;
            feed(
                &mut m,
                minute,
                &[
                    ("request in", load),
                    ("price computed", load / 2),
                    ("rare", (minute % 30 == 0) as usize),
                ],
                &mut out,
            );
        }
        // Load halves: every statement still there.
        feed(
            &mut m,
            200,
            &[("request in", 10), ("price computed", 5)],
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        // The price step throws before its line, for three minutes.
        for minute in 201..204 {
            feed(&mut m, minute, &[("request in", 40)], &mut out);
        }
        feed(
            &mut m,
            204,
            &[("request in", 40), ("price computed", 20)],
            &mut out,
        );
        // (The G-test sees the minute move too; the stop names why.)
        let stops: Vec<&Anomaly> = out.iter().filter(|a| a.detector == STOPPED).collect();
        assert_eq!(stops.len(), 1, "{out:?}");
        let a = stops[0];
        assert_eq!(a.signal.name, "price computed");
        assert_eq!(a.timestamp, Timestamp::from_millis(202 * 60_000));
        assert_eq!(a.observed, 0.0);
        assert!(a.expected.expected > 10.0, "{:?}", a.expected);
        // Written again: the alert closed, a new stop is a new anomaly.
        for minute in 205..207 {
            feed(&mut m, minute, &[("request in", 40)], &mut out);
        }
        assert_eq!(out.iter().filter(|a| a.detector == STOPPED).count(), 2);
    }

    /// Bounded: templates past the cap share one bucket.
    #[test]
    fn templates_per_service_are_capped() {
        let mut m = MixTracker::default();
        let mut out = Vec::new();
        for i in 0..5_000 {
            m.observe("api", &format!("t{i}"), Timestamp::from_millis(i), &mut out);
        }
        let s = &m.services["api"];
        assert!(s.window.len() + s.history.len() <= MAX_TEMPLATES + 1);
    }
}
