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
/// Beta posterior (Jeffreys prior, discounted so it follows slow drift and
/// frozen during an alert), and a window is scored by the beta-binomial
/// predictive tail P(X >= k | n): with little history the posterior is
/// wide and nothing is surprising; after thousands of clean records, a
/// few dozen errors are. A window without records says nothing and
/// changes nothing (RED method: errors are judged against requests).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RatioDetector {
    /// Discounted counts of flagged and other records seen.
    flagged: f64,
    others: f64,
    alert: Hysteresis,
}

impl Default for RatioDetector {
    fn default() -> Self {
        RatioDetector {
            flagged: 0.0,
            others: 0.0,
            alert: Hysteresis::default(),
        }
    }
}

/// Jeffreys prior Beta(1/2, 1/2): no opinion on the share before data.
const JEFFREYS: f64 = 0.5;

/// The learned share follows slow drift (half-life about 140 windows),
/// and does not learn during an alert.
const SHARE_ALPHA: f64 = 0.005;

impl RatioDetector {
    /// Score `k` flagged records among `n` (the sliding span's sums), and
    /// learn from the newest window's `k_new` of `n_new`.
    pub fn observe(&mut self, k: f64, n: f64, k_new: f64, n_new: f64) -> Score {
        let k = k.max(0.0).round() as u64;
        let n = (n.max(0.0).round() as u64).max(k);
        let a = self.flagged + JEFFREYS;
        let b = self.others + JEFFREYS;
        let expected = n as f64 * a / (a + b);
        if n == 0 {
            // No records in the span: nothing to judge and nothing learned,
            // and an alert ends: with no evidence left it cannot be held,
            // and a service whose logs stop (or a shipper that sends them
            // in stretches) must not stay in alert through the gap and
            // miss the next burst. Windows during a gap may be minutes
            // apart, so this does not wait for a count of calm ones.
            self.alert = Hysteresis::default();
            return Score {
                score: 0.0,
                alert: false,
                expected: 0.0,
                spread: 0.0,
            };
        }
        // At or below the expected count nothing is surprising (the tail
        // is above a half), and most windows are there: skip the sum.
        let log_p = if (k as f64) <= expected {
            0.0
        } else {
            log10_beta_binomial_tail(k, n, a, b)
        };
        let score = (-log_p / 12.0).clamp(0.0, 1.0);
        // Opens on a one-in-a-million share of at least three records;
        // closes after eight windows back within ordinary chance.
        let alert = self
            .alert
            .update(score >= 0.5 && k >= 3, log_p > -1.3, 1, 8);
        // Learn only from windows that look ordinary (p > 0.001): a fault
        // too small or too early to alert on must not teach the baseline
        // that failing is normal (robust estimation, as the series
        // baselines clip their updates).
        if !alert && log_p > -3.0 {
            let keep = 1.0 - SHARE_ALPHA;
            self.flagged = self.flagged * keep + k_new.max(0.0);
            self.others = self.others * keep + (n_new - k_new).max(0.0);
        }
        let p = a / (a + b);
        Score {
            score,
            alert,
            expected,
            spread: (n as f64 * p * (1.0 - p)).sqrt(),
        }
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
        self.0.observe(k, n, p.value, all)
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
            assert!(!d.observe(k, 100.0, k, 100.0).alert, "noise at {i}");
        }
        // Ten times the load, same share; then no logs at all for a while.
        for _ in 0..40 {
            assert!(!d.observe(20.0, 1000.0, 20.0, 1000.0).alert);
        }
        for _ in 0..40 {
            assert!(!d.observe(0.0, 0.0, 0.0, 0.0).alert);
        }
        // Logs resume as before: not a burst.
        assert!(!d.observe(2.0, 100.0, 2.0, 100.0).alert);
        // A quarter of its lines are now errors.
        let s = d.observe(25.0, 100.0, 25.0, 100.0);
        assert!(s.alert && s.score >= 0.5, "{s:?}");
        // The logs stop: the alert ends, and a burst after the gap is a
        // new alert, not the old one held through it.
        assert!(!d.observe(0.0, 0.0, 0.0, 0.0).alert);
        assert!(d.observe(25.0, 100.0, 25.0, 100.0).alert);
        // With no history nothing is surprising.
        let mut fresh = RatioDetector::default();
        assert!(!fresh.observe(25.0, 100.0, 25.0, 100.0).alert);
        // The tail is a probability: P(X >= 0) = 1, and it falls with k.
        assert_eq!(log10_beta_binomial_tail(0, 10, 1.0, 1.0), 0.0);
        // Beta(1, 1) makes every count from 0 to n equally likely.
        assert!((log10_beta_binomial_tail(5, 9, 1.0, 1.0) - 0.5f64.log10()).abs() < 1e-9);
    }
}
