//! [`CountDetector`]: a Poisson tail test of a count per window (kept for
//! benches and lone count series; the engine judges error records as a
//! share instead, see [`super::share`]).

use super::tails::log10_poisson_tail;
use crate::detector::{Detector, Hysteresis, Point, Score};
use serde::{Deserialize, Serialize};

/// Count-aware detector for event counts per window (errors, 5xx):
/// a Poisson tail test of the observed count against a slowly learned rate,
/// so one error in a quiet service is not an anomaly while twenty are, and
/// a raw ratio never divides by zero.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CountDetector {
    rate: f64,
    seen: usize,
    alert: Hysteresis,
}

/// Windows before a count detector may alert.
const COUNT_WARMUP: usize = 20;
/// Rates learn slowly (half-life about 140 windows) and not during an alert,
/// so a burst is not absorbed into its own baseline.
const COUNT_ALPHA: f64 = 0.005;
/// Floor on the expected count per window.
const COUNT_FLOOR: f64 = 0.05;

impl Default for CountDetector {
    fn default() -> Self {
        CountDetector {
            rate: 0.0,
            seen: 0,
            alert: Hysteresis::default(),
        }
    }
}

impl CountDetector {
    /// Score one window's count.
    pub fn observe(&mut self, count: f64) -> Score {
        let k = count.max(0.0).round() as u64;
        let lambda = self.rate.max(COUNT_FLOOR);
        let log_p = log10_poisson_tail(k, lambda);
        let score = if self.seen < COUNT_WARMUP {
            0.0
        } else {
            (-log_p / 12.0).clamp(0.0, 1.0)
        };
        // Opens on a one-in-a-million count of at least three; closes after
        // eight windows back within ordinary chance (p > 0.05).
        let alert = self
            .alert
            .update(score >= 0.5 && k >= 3, log_p > -1.3, 1, 8);
        if !alert {
            self.rate = if self.seen == 0 {
                count
            } else {
                self.rate + COUNT_ALPHA * (count - self.rate)
            };
        }
        self.seen += 1;
        Score {
            score,
            alert,
            expected: lambda,
            spread: lambda.sqrt(),
        }
    }
}

impl Detector for CountDetector {
    fn name(&self) -> &'static str {
        "poisson_count"
    }

    fn observe(&mut self, p: &Point<'_>) -> Score {
        CountDetector::observe(self, p.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_alert_on_bursts_not_on_single_errors() {
        let mut d = CountDetector::default();
        let mut alerts = 0;
        for i in 0..400 {
            // About one error every ten windows, never an alert.
            let k = if i % 10 == 0 { 1.0 } else { 0.0 };
            alerts += usize::from(d.observe(k).alert);
        }
        assert_eq!(alerts, 0);
        let s = d.observe(12.0);
        assert!(s.alert && s.score > 0.5, "{s:?}");
        assert!((log10_poisson_tail(1, 1.0) - (1.0 - (-1.0f64).exp()).log10()).abs() < 1e-9);
    }
}
