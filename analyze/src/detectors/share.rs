//! The share of a service's records that are errors, warnings or 5xx:
//! [`RatioDetector`] (the test) and [`RecordShare`] (the engine's detector:
//! the test over a sliding span of windows).

use super::tails::log10_beta_binomial_tail;
use crate::detector::{Detector, Hysteresis, Point, Score};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Share-of-records detector for a service's error, warning or 5xx lines:
/// how surprising are `k` such records among the `n` records the service
/// wrote, given the share it has written so far?
///
/// Counting errors alone confuses a fault with load and with collection:
/// a service that logs twice as much logs twice the errors, and a shipper
/// that sends logs only now and then (or a service that was idle) makes
/// the count drop to zero between bursts, so every resumption looked like
/// a burst. The share does not move with either. The learned share is a
/// Beta posterior (discounted so it follows slow drift, and learning only
/// from windows that have left the span under test unsurprised: see
/// [`RatioDetector::observe`]), and a window is scored by the
/// beta-binomial predictive tail P(X >= k | n). Its prior is what the
/// service's peers say ([`SharePrior`]), Jeffreys' when there are none:
/// with little history of its own a service is judged as its peers would
/// be; after thousands of clean records, its own history decides. A window
/// without records says nothing and changes nothing (RED method: errors
/// are judged against requests).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RatioDetector {
    /// Discounted counts of flagged and other records learned.
    flagged: f64,
    others: f64,
    alert: Hysteresis,
    /// Windows of the span under test, not learned from yet: (flagged,
    /// records, the lowest log10 tail of any test they were part of; minus
    /// infinity once one was in alert). Absent in checkpoints written
    /// before it (they learned each window at once).
    #[serde(default)]
    held: VecDeque<(f64, f64, f64)>,
    /// Records written during the alert in progress.
    #[serde(default)]
    alert_records: f64,
    /// Whether the service's own history alone is its baseline, its peers'
    /// prior set aside: once an alert outlasted the evidence it was judged
    /// against (see [`RatioDetector::observe`]).
    #[serde(default)]
    own: bool,
}

impl Default for RatioDetector {
    fn default() -> Self {
        RatioDetector {
            flagged: 0.0,
            others: 0.0,
            alert: Hysteresis::default(),
            held: VecDeque::new(),
            alert_records: 0.0,
            own: false,
        }
    }
}

/// What a service's peers say its share should be before its own history
/// does: a Beta prior of `mean` worth `strength` records (empirical Bayes
/// across the services that log the same kind of record, see
/// [`SharePrior::of_peers`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SharePrior {
    /// The share a service of the estate usually has.
    pub mean: f64,
    /// How many records that belief is worth.
    pub strength: f64,
}

impl SharePrior {
    /// Jeffreys' Beta(1/2, 1/2): no opinion, worth one record.
    pub const JEFFREYS: SharePrior = SharePrior {
        mean: 0.5,
        strength: 1.0,
    };

    /// The prior that peers' learned `(flagged, records)` imply, fitted by
    /// the method of moments of the beta-binomial (the classical empirical
    /// Bayes estimate of a rate across groups): the mean is the peers'
    /// average share; the strength follows from how much more their shares
    /// differ than their record counts alone would make them differ. An
    /// estate where every service logs about 1% errors gives a strong
    /// prior, and a young service that writes a quarter errors stands out
    /// at once; one where services differ widely gives a weak one, and a
    /// young service must show more of its own. The strength is at least
    /// Jeffreys' one record and at most the peers' average history (a
    /// prior is never worth more evidence than the peers behind it). None
    /// with fewer than three peers with records.
    pub fn of_peers(peers: &[(f64, f64)]) -> Option<SharePrior> {
        let peers: Vec<(f64, f64)> = peers
            .iter()
            .filter(|p| p.1 >= 1.0)
            .map(|&(k, n)| ((k / n).clamp(0.0, 1.0), n))
            .collect();
        if peers.len() < 3 {
            return None;
        }
        let m = peers.len() as f64;
        let all: f64 = peers.iter().map(|p| p.1).sum();
        // A mean share of exactly zero would make any error infinitely
        // surprising: at least half a record over all the peers' records.
        let floor = (0.5 / all).min(0.5);
        // Each peer weighs what it tells, n / (1 + (n - 1) rho)
        // (Kleinman 1973): a service with two records is not as sure of
        // its share as one with two thousand, but past a point more
        // records do not make two services alike. With those weights, the
        // mean share, the spread of the shares around it, and the spread
        // that their record counts alone would make; rho, the intra-class
        // correlation 1 / (strength + 1), is what the spread has beyond
        // that: Var(share) = mean (1 - mean) (1/n + (1 - 1/n) rho).
        let fit = |rho: f64| {
            let w = |n: f64| n / (1.0 + (n - 1.0) * rho);
            let sw: f64 = peers.iter().map(|p| w(p.1)).sum();
            let mean =
                (peers.iter().map(|p| w(p.1) * p.0).sum::<f64>() / sw).clamp(floor, 1.0 - floor);
            let spread = peers
                .iter()
                .map(|p| w(p.1) * (p.0 - mean).powi(2))
                .sum::<f64>()
                / sw;
            let noise = peers.iter().map(|p| w(p.1) / p.1).sum::<f64>() / sw;
            let rho = ((spread / (mean * (1.0 - mean)) - noise) / (1.0 - noise).max(1e-9))
                .clamp(0.0, 1.0);
            (mean, rho)
        };
        // From the pooled estimate (rho 0: weights are record counts), a
        // few rounds of reweighting settle it.
        let (mut mean, mut rho) = fit(0.0);
        for _ in 0..3 {
            (mean, rho) = fit(rho);
        }
        let strength = if rho > 0.0 {
            1.0 / rho - 1.0
        } else {
            f64::INFINITY
        };
        Some(SharePrior {
            mean,
            strength: strength.clamp(1.0, (all / m).max(1.0)),
        })
    }
}

/// The learned share follows slow drift (half-life about 140 windows with
/// records), and does not learn during an alert.
const SHARE_ALPHA: f64 = 0.005;

/// A window is learned once no test it was part of was rarer than this
/// (log10, 1 in 1000): a fault too small or too early to alert on must
/// not teach the baseline that failing is normal (robust estimation, as
/// the series baselines clip their updates).
const LEARN_ABOVE: f64 = -3.0;

impl RatioDetector {
    /// Score `k` flagged records among `n` (the sliding span's sums, the
    /// newest `span` windows), the newest window holding `k_new` of
    /// `n_new`, against what was learned and `prior` (Jeffreys' when
    /// none).
    ///
    /// A window is learned from only once it has left the span, and only
    /// if none of the tests it took part in was surprising: the window
    /// under test is not its own baseline. Learning each window as it
    /// came let a fault that rises over a few windows (a quarter of the
    /// requests failing, two errors a window) teach the baseline its first
    /// windows before the span's sum was rare enough to alert, so it never
    /// was. This is the guard band of a CFAR detector (radar's constant
    /// false-alarm rate tests keep the cells next to the one under test
    /// out of the noise estimate).
    ///
    /// An alert that has lasted for more records than the evidence it is
    /// judged against (the records learned, and the prior's worth) is no
    /// longer a departure from that history: it is most of what there is.
    /// Its windows are then learned, so the alert ends once the share is
    /// ordinary for the new baseline, and the peers' prior is set aside for
    /// good: a service that fails a third of its requests from its first
    /// day is not like its peers, and judged against them it would stay in
    /// alert, and keep an incident open, for ever.
    pub fn observe(
        &mut self,
        k: f64,
        n: f64,
        k_new: f64,
        n_new: f64,
        span: usize,
        prior: Option<SharePrior>,
    ) -> Score {
        let k = k.max(0.0).round() as u64;
        let n = (n.max(0.0).round() as u64).max(k);
        let prior = match prior {
            Some(p) if !self.own => p,
            _ => SharePrior::JEFFREYS,
        };
        let a = self.flagged + prior.mean * prior.strength;
        let b = self.others + (1.0 - prior.mean) * prior.strength;
        let expected = n as f64 * a / (a + b);
        let (log_p, score, alert) = if n == 0 {
            // No records in the span: nothing to judge, and an alert
            // ends: with no evidence left it cannot be held, and a
            // service whose logs stop (or a shipper that sends them in
            // stretches) must not stay in alert through the gap and miss
            // the next burst. Windows during a gap may be minutes apart,
            // so this does not wait for a count of calm ones.
            self.alert = Hysteresis::default();
            self.alert_records = 0.0;
            (0.0, 0.0, false)
        } else {
            // At or below the expected count nothing is surprising (the
            // tail is above a half), and most windows are there: skip the
            // sum.
            let log_p = if (k as f64) <= expected {
                0.0
            } else {
                log10_beta_binomial_tail(k, n, a, b)
            };
            // Opens on a one-in-a-million share of at least three
            // records; closes after eight windows back within ordinary
            // chance.
            let score = (-log_p / 12.0).clamp(0.0, 1.0);
            let alert = self
                .alert
                .update(score >= 0.5 && k >= 3, log_p > -1.3, 1, 8);
            (log_p, score, alert)
        };
        self.alert_records = if alert {
            self.alert_records + n_new.max(0.0)
        } else {
            0.0
        };
        let adopt = alert && self.alert_records > self.flagged + self.others + prior.strength;
        if adopt {
            self.own = true;
        }
        let worst = match (alert, adopt) {
            (_, true) => 0.0,
            (true, false) => f64::NEG_INFINITY,
            (false, _) => log_p,
        };
        for w in &mut self.held {
            w.2 = if adopt { 0.0 } else { w.2.min(worst) };
        }
        self.held.push_back((k_new.max(0.0), n_new.max(0.0), worst));
        while self.held.len() > span.max(1) {
            let (kw, nw, lowest) = self.held.pop_front().expect("longer than the span");
            // A window without records has nothing to teach (and must not
            // age what was learned: gaps in the logs are not evidence).
            if lowest > LEARN_ABOVE && nw > 0.0 {
                let keep = 1.0 - SHARE_ALPHA;
                self.flagged = self.flagged * keep + kw;
                self.others = self.others * keep + (nw - kw).max(0.0);
            }
        }
        if n == 0 {
            return Score {
                score: 0.0,
                alert: false,
                expected: 0.0,
                spread: 0.0,
            };
        }
        let p = a / (a + b);
        Score {
            score,
            alert,
            expected,
            spread: (n as f64 * p * (1.0 - p)).sqrt(),
        }
    }

    /// What it has learned: discounted (flagged, all) records.
    pub fn learned(&self) -> (f64, f64) {
        (self.flagged, self.flagged + self.others)
    }
}

/// Windows summed for the share test: sparse services log a few lines per
/// window, and a test on one window alone would need a handful of errors
/// in 15 seconds before it could tell a burst from chance.
pub const SHARE_SPAN: usize = 4;

/// The engine's detector of a service's error, warning or 5xx records as a
/// share of all its records: [`RatioDetector`] over sliding sums of the
/// last [`SHARE_SPAN`] windows (flagged, all). The value is the flagged
/// count; the record count comes from the [`crate::detector::Context`]
/// (at least the flagged count: a window whose records were not counted
/// is all flagged).
///
/// A tuple struct on purpose: it checkpoints as the pair it was before it
/// had a name (`Ratio(detector, span)`), so older checkpoints still load.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RecordShare(RatioDetector, VecDeque<(f64, f64)>);

impl Detector for RecordShare {
    fn name(&self) -> &'static str {
        "record_share"
    }

    fn observe(&mut self, p: &Point<'_>) -> Score {
        let all = p.context.records().unwrap_or(p.value).max(p.value);
        let recent = &mut self.1;
        recent.push_back((p.value, all));
        if recent.len() > SHARE_SPAN {
            recent.pop_front();
        }
        let (k, n) = recent
            .iter()
            .fold((0.0, 0.0), |(k, n), (a, b)| (k + a, n + b));
        // A span without records ends the alert (see `RatioDetector`), so
        // a gap in the logs does not keep an incident open.
        let prior = p.context.share_prior();
        self.0.observe(k, n, p.value, all, SHARE_SPAN, prior)
    }

    fn learned_share(&self) -> Option<(f64, f64)> {
        Some(self.0.learned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_share_ignores_load_and_gaps_and_sees_a_new_failure() {
        let mut d = RatioDetector::default();
        // A service writing 100 lines a window, 2% errors.
        for i in 0..400 {
            let k = if i % 50 == 0 { 4.0 } else { 2.0 };
            assert!(
                !d.observe(k, 100.0, k, 100.0, 1, None).alert,
                "noise at {i}"
            );
        }
        // Ten times the load, same share; then no logs at all for a while.
        for _ in 0..40 {
            assert!(!d.observe(20.0, 1000.0, 20.0, 1000.0, 1, None).alert);
        }
        for _ in 0..40 {
            assert!(!d.observe(0.0, 0.0, 0.0, 0.0, 1, None).alert);
        }
        // Logs resume as before: not a burst.
        assert!(!d.observe(2.0, 100.0, 2.0, 100.0, 1, None).alert);
        // A quarter of its lines are now errors.
        let s = d.observe(25.0, 100.0, 25.0, 100.0, 1, None);
        assert!(s.alert && s.score >= 0.5, "{s:?}");
        // The logs stop: the alert ends, and a burst after the gap is a
        // new alert, not the old one held through it.
        assert!(!d.observe(0.0, 0.0, 0.0, 0.0, 1, None).alert);
        assert!(d.observe(25.0, 100.0, 25.0, 100.0, 1, None).alert);
        // With no history nothing is surprising.
        let mut fresh = RatioDetector::default();
        assert!(!fresh.observe(25.0, 100.0, 25.0, 100.0, 1, None).alert);
        // The tail is a probability: P(X >= 0) = 1, and it falls with k.
        assert_eq!(log10_beta_binomial_tail(0, 10, 1.0, 1.0), 0.0);
        // Beta(1, 1) makes every count from 0 to n equally likely.
        assert!((log10_beta_binomial_tail(5, 9, 1.0, 1.0) - 0.5f64.log10()).abs() < 1e-9);
    }

    /// Windows of a [`RecordShare`] with `n` records, `k` of them errors.
    fn window(d: &mut RecordShare, k: f64, n: f64, prior: Option<SharePrior>) -> Score {
        struct Records(f64, Option<SharePrior>);
        impl crate::detector::Context for Records {
            fn records(&self) -> Option<f64> {
                Some(self.0)
            }
            fn share_prior(&self) -> Option<SharePrior> {
                self.1
            }
        }
        d.observe(&Point {
            t: 0.0,
            value: k,
            context: &Records(n, prior),
        })
    }

    /// A fault that makes a quarter of a service's requests fail shows as
    /// a few errors a window. Learned window by window, its first windows
    /// taught the baseline before the span's sum was rare enough to
    /// alert, and the alert never came; held out of the baseline while
    /// they are under test, they make one.
    #[test]
    fn a_failure_that_builds_up_over_a_few_windows_is_not_learned_first() {
        let mut d = RecordShare::default();
        // Eighty windows of 8 records, no errors.
        for _ in 0..80 {
            assert!(!window(&mut d, 0.0, 8.0, None).alert);
        }
        // Then 2 of every 8 are errors.
        let alerted = (0..6).any(|_| window(&mut d, 2.0, 8.0, None).alert);
        assert!(alerted, "{d:?}");
        // A window is learned once it has left the span and only if no
        // test it was in was surprising: the baseline has no error yet.
        assert_eq!(d.0.learned().0, 0.0);
    }

    /// A young service is judged against its peers: among services that
    /// write about 1% errors, one that writes a quarter errors from its
    /// second window is an alert at once; with no opinion (Jeffreys) the
    /// same windows are unremarkable. Among services that differ widely
    /// the prior is weak, and the same windows do not alert.
    #[test]
    fn a_young_service_is_judged_against_its_peers() {
        let alike: Vec<(f64, f64)> = (0..20).map(|i| ((i % 3) as f64 * 5.0, 1000.0)).collect();
        let prior = SharePrior::of_peers(&alike).expect("twenty peers");
        assert!((prior.mean - 0.005).abs() < 0.001, "{prior:?}");
        assert!(
            prior.strength > 100.0,
            "alike peers, a strong prior: {prior:?}"
        );
        let unlike: Vec<(f64, f64)> = (0..20)
            .map(|i| (if i % 4 == 0 { 300.0 } else { 2.0 }, 1000.0))
            .collect();
        let weak = SharePrior::of_peers(&unlike).expect("twenty peers");
        assert!(
            weak.strength < 5.0,
            "peers that differ, a weak prior: {weak:?}"
        );
        assert_eq!(SharePrior::of_peers(&alike[..2]), None, "too few peers");

        let young = |prior: Option<SharePrior>| {
            let mut d = RecordShare::default();
            window(&mut d, 0.0, 8.0, prior);
            (0..4).any(|_| window(&mut d, 2.0, 8.0, prior).alert)
        };
        assert!(young(Some(prior)));
        assert!(!young(None));
        assert!(!young(Some(weak)));
    }
}
