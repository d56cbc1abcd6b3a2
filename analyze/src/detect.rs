//! Causal anomaly scoring of one numeric series.
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

/// Alert state with hysteresis, shared by every detector: an alert opens
/// after `open_after` consecutive triggering points and closes after
/// `close_after` consecutive calm ones, so one episode is one alert.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Hysteresis {
    pub(crate) in_alert: bool,
    streak: usize,
    quiet: usize,
}

impl Hysteresis {
    pub(crate) fn update(
        &mut self,
        trigger: bool,
        calm: bool,
        open_after: usize,
        close_after: usize,
    ) -> bool {
        if self.in_alert {
            if calm {
                self.quiet += 1;
                if self.quiet >= close_after {
                    self.in_alert = false;
                    self.streak = 0;
                }
            } else {
                self.quiet = 0;
            }
        } else if trigger {
            self.streak += 1;
            if self.streak >= open_after.max(1) {
                self.in_alert = true;
                self.quiet = 0;
            }
        } else {
            self.streak = 0;
        }
        self.in_alert
    }
}

/// One point's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Calibrated anomaly score in [0, 1].
    pub score: f64,
    /// The detector's decision (inside an alert episode).
    pub alert: bool,
    /// Baseline expectation at this point (median of the window).
    pub expected: f64,
    /// Robust spread (scaled MAD) at this point.
    pub spread: f64,
}

impl Score {
    /// The result for a missing (non-finite) value: no score, alert unchanged.
    fn missing(alert: bool) -> Score {
        Score {
            score: 0.0,
            alert,
            expected: f64::NAN,
            spread: f64::NAN,
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

/// Standard normal upper tail, Q(z) = P(Z > z) (Abramowitz-Stegun 7.1.26
/// through erfc; absolute error below 1.5e-7).
pub fn normal_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * x.abs());
    let y = t
        * (0.254829592
            + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erfc = y * (-x * x).exp();
    let erfc = if x >= 0.0 { erfc } else { 2.0 - erfc };
    0.5 * erfc
}

/// log10 of [`normal_tail`], accurate far into the tail (asymptotic
/// expansion beyond z = 5, where the direct formula loses precision).
pub fn log10_normal_tail(z: f64) -> f64 {
    if z < 5.0 {
        return normal_tail(z).max(1e-300).log10();
    }
    let ln_q = -z * z / 2.0 - z.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
        + (1.0 - 1.0 / (z * z) + 3.0 / z.powi(4)).ln();
    ln_q / std::f64::consts::LN_10
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

/// log10 of P(X >= k) for X ~ Poisson(lambda).
pub fn log10_poisson_tail(k: u64, lambda: f64) -> f64 {
    if k == 0 {
        return 0.0;
    }
    // Sum the pmf from k upward in log space until the terms vanish.
    let ln_pmf = |j: u64| -lambda + j as f64 * lambda.ln() - ln_factorial(j);
    let first = ln_pmf(k);
    let mut sum = 1.0;
    let mut term = 1.0;
    let mut j = k;
    while term > 1e-12 && j < k + 10_000 {
        j += 1;
        term *= lambda / j as f64;
        sum += term;
    }
    ((first + sum.ln()) / std::f64::consts::LN_10).min(0.0)
}

fn ln_factorial(n: u64) -> f64 {
    if n < 20 {
        (1..=n).map(|i| (i as f64).ln()).sum()
    } else {
        // Stirling with the 1/(12n) term: plenty for a tail probability.
        let n = n as f64;
        n * n.ln() - n + 0.5 * (2.0 * std::f64::consts::PI * n).ln() + 1.0 / (12.0 * n)
    }
}

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

/// log10 of P(X >= k) for X ~ BetaBinomial(n, a, b).
pub fn log10_beta_binomial_tail(k: u64, n: u64, a: f64, b: f64) -> f64 {
    if k == 0 {
        return 0.0;
    }
    if k > n {
        return f64::NEG_INFINITY;
    }
    let ln_beta = |x: f64, y: f64| ln_gamma(x) + ln_gamma(y) - ln_gamma(x + y);
    let ln_choose = |n: u64, j: u64| ln_factorial(n) - ln_factorial(j) - ln_factorial(n - j);
    let ln_pmf =
        |j: u64| ln_choose(n, j) + ln_beta(j as f64 + a, (n - j) as f64 + b) - ln_beta(a, b);
    // Sum from k upward in log space; terms fall off fast past the mode.
    let first = ln_pmf(k);
    let mut sum = 1.0;
    for j in k + 1..=n {
        let term = (ln_pmf(j) - first).exp();
        sum += term;
        if term < 1e-12 * sum {
            break;
        }
    }
    ((first + sum.ln()) / std::f64::consts::LN_10).min(0.0)
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, nine terms: about 15 digits).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

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
            let keep = 1.0 - COUNT_ALPHA;
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

/// Resource-leak detector: a steady climb of a gauge (memory, descriptors,
/// threads). It fits a least-squares line to the last [`LEAK_WINDOW`] points
/// and alerts when the slope is both significant (its t-statistic) and
/// material (the window's rise is a noticeable share of the level), for two
/// points in a row. It sees a leak while the value is still inside the band
/// a level detector would accept, minutes before the limit.
///
/// A climb alone is not a leak: a JVM heap or a cache climbs for minutes
/// and falls back at each collection or eviction, every cycle to about the
/// same peak. What a leak does that a sawtooth does not is set new highs:
/// so a climb opens an alert only when it passes the highest value of the
/// last [`LEAK_BLOCKS`] windows before the fitted one (the detector keeps
/// one maximum per window), and the anomaly's band ends at that peak.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LeakDetector {
    values: VecDeque<f64>,
    alert: Hysteresis,
    /// Maximum of each earlier window of [`LEAK_WINDOW`] points, newest last.
    #[serde(default)]
    peaks: VecDeque<f64>,
    /// Points since the last window was closed into `peaks`, and their max.
    #[serde(default)]
    block: (usize, f64),
}

/// Earlier windows whose peaks a leak must pass.
pub const LEAK_BLOCKS: usize = 8;

/// Points in the fitted window (6 minutes at a 15 s scrape).
pub const LEAK_WINDOW: usize = 24;

impl LeakDetector {
    /// Score one value. `score` is the slope's t-statistic scaled to [0, 1]
    /// (t = 16 scores 1); `expected` is the fitted line's value.
    pub fn observe(&mut self, x: f64) -> Score {
        if !x.is_finite() {
            return Score::missing(self.alert.in_alert);
        }
        self.values.push_back(x);
        if self.values.len() > LEAK_WINDOW {
            // The oldest point leaves the fitted window for the peaks.
            let old = self.values.pop_front().expect("longer than the window");
            self.block = (
                self.block.0 + 1,
                if self.block.0 == 0 {
                    old
                } else {
                    self.block.1.max(old)
                },
            );
            if self.block.0 == LEAK_WINDOW {
                self.peaks.push_back(self.block.1);
                if self.peaks.len() > LEAK_BLOCKS {
                    self.peaks.pop_front();
                }
                self.block = (0, 0.0);
            }
        }
        let n = self.values.len();
        if n < LEAK_WINDOW {
            return Score {
                score: 0.0,
                alert: false,
                expected: x,
                spread: 0.0,
            };
        }
        let nf = n as f64;
        let mean_i = (nf - 1.0) / 2.0;
        let mean_x = self.values.iter().sum::<f64>() / nf;
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for (i, v) in self.values.iter().enumerate() {
            let di = i as f64 - mean_i;
            sxy += di * (v - mean_x);
            sxx += di * di;
        }
        let slope = sxy / sxx;
        let resid: f64 = self
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let fit = mean_x + slope * (i as f64 - mean_i);
                (v - fit).powi(2)
            })
            .sum();
        let sigma = (resid / (nf - 2.0))
            .sqrt()
            .max(1e-9 * mean_x.abs().max(1.0));
        let t = slope / (sigma / sxx.sqrt());
        let rise = slope * nf / mean_x.abs().max(1e-9);
        // The highest value seen before the fitted window (and the part of
        // the current block already out of it).
        let peak = self
            .peaks
            .iter()
            .copied()
            .chain((self.block.0 > 0).then_some(self.block.1))
            .fold(f64::NEG_INFINITY, f64::max);
        // Two earlier windows at least, so the peaks span a whole cycle of
        // anything that saws more often than every 48 points.
        let new_high = self.peaks.len() >= 2 && x > peak;
        let strong = t >= 8.0 && rise >= 0.03 && new_high;
        let alert = self.alert.update(strong, t < 2.0, 2, 8);
        if peak.is_finite() {
            // Expected: at most the earlier peak; the band ends there.
            Score {
                score: (t / 16.0).clamp(0.0, 1.0),
                alert,
                expected: peak - 3.0 * sigma,
                spread: sigma,
            }
        } else {
            Score {
                score: (t / 16.0).clamp(0.0, 1.0),
                alert,
                expected: mean_x + slope * (nf - 1.0 - mean_i),
                spread: sigma,
            }
        }
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

    #[test]
    fn a_slow_leak_is_seen_before_it_leaves_the_noise() {
        let mut d = LeakDetector::default();
        let mut first = None;
        for i in 0..400 {
            let leak = if i >= 200 {
                (i - 200) as f64 * 5.0
            } else {
                0.0
            };
            let x = 1000.0 + 10.0 * noise(i) + leak;
            if d.observe(x).alert && first.is_none() {
                first = Some(i);
            }
        }
        let first = first.expect("the leak is found");
        assert!((200..230).contains(&first), "found at {first}");
        // Noise alone never alerts.
        let mut d = LeakDetector::default();
        assert!((0..2000).all(|i| !d.observe(500.0 + 10.0 * noise(i)).alert));
    }

    #[test]
    fn a_heap_sawtooth_is_not_a_leak_and_a_leak_is_out_of_its_band() {
        // A JVM old generation: climbs for 40 points, collected back down,
        // every cycle to the same peak (at a 15 s scrape, a 10 minute cycle).
        let mut d = LeakDetector::default();
        for i in 0..2000 {
            let x = 500.0 + 8.0 * (i % 40) as f64 + 3.0 * noise(i);
            assert!(!d.observe(x).alert, "sawtooth flagged at {i}");
        }
        // The same heap starting to keep what it allocates: new highs.
        let mut seen = false;
        for i in 2000..2400 {
            let x = 500.0 + 8.0 * (i % 40) as f64 + (i - 2000) as f64 * 2.0 + 3.0 * noise(i);
            let s = d.observe(x);
            if s.alert && !seen {
                seen = true;
                // The value that opens it is above its band's upper end.
                assert!(x > s.expected + 3.0 * s.spread, "{x} inside {s:?}");
            }
        }
        assert!(seen, "a rising sawtooth is a leak");
    }

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

    #[test]
    fn normal_tail_is_accurate() {
        assert!((normal_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_tail(1.96) - 0.025).abs() < 1e-4);
        assert!((normal_tail(-1.96) - 0.975).abs() < 1e-4);
        // Continuous across the switch to the asymptotic form.
        assert!((log10_normal_tail(4.999) - log10_normal_tail(5.0)).abs() < 0.02);
        assert!((log10_normal_tail(10.0) - (-23.12)).abs() < 0.05);
    }
}
