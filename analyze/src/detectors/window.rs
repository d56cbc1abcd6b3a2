//! [`SeriesDetector`] (`remedy detect --method window`): causal anomaly
//! scoring of one numeric series against a trailing window.
//!
//! [`SeriesDetector`] scores each point against what came before it only:
//! 1. a robust z-score of the value against a trailing window (median and
//!    MAD of the last [`DetectorConfig::window`] points, current excluded),
//!    blended with the same z-score of the first difference so that sudden
//!    jumps count even on a drifting series;
//! 2. an anomaly likelihood in the manner of Numenta's: the short-term mean
//!    of those raw scores compared with their long-term distribution, turned
//!    into a tail probability, so the score is calibrated the same way on
//!    every series (one threshold works across signals);
//! 3. onset reporting: the reported score is how far the likelihood rises
//!    above its own maximum over the last [`DetectorConfig::suppress`]
//!    points, so a sustained anomaly scores high once, at its start, rather
//!    than on every row it lasts (each of which would be a false positive
//!    to anyone alerting on the score);
//! 4. a decision with hysteresis: an alert opens when the score reaches
//!    [`DetectorConfig::alert_on`] and closes only after it stays below
//!    [`DetectorConfig::alert_off`] for a while, so one episode is one alert.
//!
//! Non-finite values are treated as missing: they get score 0 and do not
//! enter any statistic. A constant series has MAD 0; the spread then falls
//! back to a small fraction of the level so constant data raises nothing.

use super::tails::log10_normal_tail;
use crate::detector::{Detector, Hysteresis, Point, Score};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Detector settings; defaults used by `remedy detect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorConfig {
    /// Trailing points for the robust baseline.
    pub window: usize,
    /// Points averaged for the short-term raw score.
    pub short: usize,
    /// Points of raw-score history for the long-term distribution.
    pub long: usize,
    /// Points before any score is given (the baseline is still learning).
    pub warmup: usize,
    /// Score at which an alert opens (0.5: a one-in-a-million tail).
    pub alert_on: f64,
    /// Score below which an alert may close.
    pub alert_off: f64,
    /// Points below `alert_off` before the alert closes.
    pub cooldown: usize,
    /// Consecutive points at or above `alert_on` before an alert opens: 2 or
    /// more ignores one-point blips (the engine uses 2 for service signals;
    /// `remedy detect` uses 1 so single-point anomalies count).
    pub min_consecutive: usize,
    /// Only deviations above the baseline count (latency, error rates).
    pub upward_only: bool,
    /// Points over which a score must exceed its own recent maximum to be
    /// reported: a sustained anomaly is reported at its onset, and the rows
    /// after it score by how much they add, not again in full.
    pub suppress: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            window: 288,
            short: 6,
            long: 2000,
            warmup: 30,
            alert_on: 0.5,
            alert_off: 0.25,
            cooldown: 12,
            suppress: 400,
            min_consecutive: 1,
            upward_only: false,
        }
    }
}

/// Causal detector for one series. See the module docs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesDetector {
    cfg: DetectorConfig,
    values: VecDeque<f64>,
    diffs: VecDeque<f64>,
    last: Option<f64>,
    raw: VecDeque<f64>,
    raw_sum: f64,
    raw_sq: f64,
    short: VecDeque<f64>,
    seen: usize,
    alert: Hysteresis,
    scratch: Vec<f64>,
    recent: VecDeque<f64>,
}

fn median_mad(data: &VecDeque<f64>, scratch: &mut Vec<f64>) -> (f64, f64) {
    scratch.clear();
    scratch.extend(data.iter().copied());
    let n = scratch.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mid = n / 2;
    let (_, m, _) = scratch.select_nth_unstable_by(mid, f64::total_cmp);
    let med = *m;
    for x in scratch.iter_mut() {
        *x = (*x - med).abs();
    }
    let (_, d, _) = scratch.select_nth_unstable_by(mid, f64::total_cmp);
    (med, *d * 1.4826)
}

impl SeriesDetector {
    /// A detector with no history.
    pub fn new(cfg: DetectorConfig) -> Self {
        SeriesDetector {
            values: VecDeque::with_capacity(cfg.window + 1),
            diffs: VecDeque::with_capacity(cfg.window + 1),
            raw: VecDeque::with_capacity(cfg.long + 1),
            short: VecDeque::with_capacity(cfg.short + 1),
            cfg,
            last: None,
            raw_sum: 0.0,
            raw_sq: 0.0,
            seen: 0,
            alert: Hysteresis::default(),
            scratch: Vec::new(),
            recent: VecDeque::new(),
        }
    }

    /// Score one value (in time order).
    pub fn observe(&mut self, x: f64) -> Score {
        if !x.is_finite() {
            return Score::missing(self.alert.in_alert);
        }
        let (med, mad) = median_mad(&self.values, &mut self.scratch);
        let d = self.last.map(|l| x - l);
        let (dmed, dmad) = median_mad(&self.diffs, &mut self.scratch);
        // A floor on the spread: constant stretches (MAD 0) must not turn
        // the next tiny wobble into an infinite z-score.
        // Integer-valued series (counts of images, threads) change by whole
        // steps: half the smallest step seen is the least spread they can
        // have, so 3 -> 4 is not an infinite z-score.
        let step = self
            .diffs
            .iter()
            .map(|d| d.abs())
            .filter(|d| *d > 0.0)
            .fold(f64::INFINITY, f64::min);
        let floor = (1e-3 * med.abs().max(1e-9) + 1e-9).max(if step.is_finite() {
            step / 2.0
        } else {
            0.0
        });
        let (dev, ddev) = if self.cfg.upward_only {
            ((x - med).max(0.0), d.map_or(0.0, |d| (d - dmed).max(0.0)))
        } else {
            ((x - med).abs(), d.map_or(0.0, |d| (d - dmed).abs()))
        };
        let z_level = dev / mad.max(floor);
        let z_diff = ddev / dmad.max(floor);
        let raw = (z_level.min(50.0) + z_diff.min(50.0)) / 2.0;

        // Update the baseline windows after scoring: causal.
        self.values.push_back(x);
        if self.values.len() > self.cfg.window {
            self.values.pop_front();
        }
        if let Some(d) = d {
            self.diffs.push_back(d);
            if self.diffs.len() > self.cfg.window {
                self.diffs.pop_front();
            }
        }
        self.last = Some(x);
        self.seen += 1;

        self.short.push_back(raw);
        if self.short.len() > self.cfg.short {
            self.short.pop_front();
        }
        let short_mean = self.short.iter().sum::<f64>() / self.short.len() as f64;
        let score = if self.seen <= self.cfg.warmup || self.raw.len() < 10 {
            0.0
        } else {
            let n = self.raw.len() as f64;
            let mean = self.raw_sum / n;
            let var = (self.raw_sq / n - mean * mean).max(1e-6);
            let z = (short_mean - mean) / var.sqrt();
            // On a log scale: a tail of 1e-6 scores 0.5, 1e-12 scores 1.
            // Unlike 1 - tail, which rounds to 1.0 for everything past
            // z = 8, this keeps strong anomalies ordered, which matters
            // when one threshold is chosen for many series.
            (-log10_normal_tail(z) / 12.0).clamp(0.0, 1.0)
        };
        // The first points' statistics come from a handful of values and
        // are wild; keeping them out of the long-term distribution stops
        // them from numbing the detector for the next `long` points.
        if self.seen > self.cfg.warmup {
            self.raw.push_back(short_mean);
            self.raw_sum += short_mean;
            self.raw_sq += short_mean * short_mean;
        }
        if self.raw.len() > self.cfg.long {
            let old = self.raw.pop_front().expect("non-empty");
            self.raw_sum -= old;
            self.raw_sq -= old * old;
        }

        let prev_max = self.recent.iter().copied().fold(0.0, f64::max);
        self.recent.push_back(score);
        if self.recent.len() > self.cfg.suppress {
            self.recent.pop_front();
        }
        // The decision follows the unsuppressed score, with hysteresis. The
        // likelihood is smoothed over `short` points, so it stays high just
        // after a one-point blip; counting only points that deviate
        // themselves (raw >= 3) keeps `min_consecutive` honest.
        let reported = (score - prev_max).max(0.0);
        let alert = self.alert.update(
            score >= self.cfg.alert_on && raw >= 3.0,
            score < self.cfg.alert_off,
            self.cfg.min_consecutive,
            self.cfg.cooldown,
        );
        Score {
            score: reported,
            alert,
            expected: med,
            spread: mad,
        }
    }
}

impl Detector for SeriesDetector {
    fn name(&self) -> &'static str {
        "trailing_window"
    }

    fn observe(&mut self, p: &Point<'_>) -> Score {
        SeriesDetector::observe(self, p.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(xs: &[f64]) -> Vec<Score> {
        let mut d = SeriesDetector::new(DetectorConfig::default());
        xs.iter().map(|&x| d.observe(x)).collect()
    }

    fn noise(i: usize) -> f64 {
        // Deterministic pseudo-noise in [-1, 1].
        ((i as f64 * 12.9898).sin() * 43758.5453).fract() * 2.0 - 1.0
    }

    #[test]
    fn a_spike_in_noise_is_found_once() {
        let mut xs: Vec<f64> = (0..600).map(|i| 10.0 + noise(i)).collect();
        xs[400] = 40.0;
        let s = run(&xs);
        assert!(s[400].score > 0.5, "{:?}", s[400]);
        assert!(s[400].alert);
        let episodes = s.windows(2).filter(|w| !w[0].alert && w[1].alert).count();
        assert_eq!(episodes, 1, "one spike, one alert");
        assert!(
            s[100..399].iter().all(|x| !x.alert),
            "no alert before the spike"
        );
    }

    #[test]
    fn a_level_shift_is_found_at_its_start() {
        let xs: Vec<f64> = (0..800)
            .map(|i| if i < 500 { 5.0 } else { 9.0 } + 0.3 * noise(i))
            .collect();
        let s = run(&xs);
        let first = s.iter().position(|x| x.alert).unwrap();
        assert!((500..503).contains(&first), "first alert at {first}");
    }

    #[test]
    fn constant_series_gaps_and_nan_raise_nothing() {
        let mut xs = vec![7.0; 500];
        xs[200] = f64::NAN;
        xs[201] = f64::INFINITY;
        let s = run(&xs);
        assert!(s.iter().all(|x| !x.alert));
        assert_eq!(s[200].score, 0.0);
    }

    #[test]
    fn scores_are_causal() {
        let xs: Vec<f64> = (0..700)
            .map(|i| (i as f64 / 20.0).sin() + 0.1 * noise(i))
            .collect();
        let full = run(&xs);
        let cut = run(&xs[..350]);
        assert_eq!(&full[..350], &cut[..]);
    }
}
