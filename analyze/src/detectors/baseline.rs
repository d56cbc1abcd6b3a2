//! A dynamic, seasonal baseline per signal and the detector built on it.
//!
//! What an operator means by "normal" for a signal is a level that drifts,
//! a daily and a weekly rhythm around it, and a spread. [`SeasonalBaseline`]
//! learns exactly that, online, in a few hundred bytes:
//!
//! - **seasonality**: regression of the value (minus the level) on Fourier
//!   features of the time of day (two harmonics) and of the week (one), by
//!   recursive least squares with exponential forgetting in event time
//!   ([`BaselineConfig::seasonal_horizon_secs`]), so old weeks fade out and
//!   the fit is refreshed by every point instead of by periodic batch jobs;
//! - **level and trend**: a damped Holt smoother on what the seasonal part
//!   leaves, quick enough to follow drift, slow enough that an anomaly
//!   lasting a few points is not absorbed into its own baseline;
//! - **spread**: the exponentially weighted mean absolute error, with a
//!   floor (half the smallest step for integer-valued series, a tiny share
//!   of the level otherwise) so that a constant series does not turn the
//!   first wobble into an infinite z-score;
//! - **robustness**: every update uses the error clipped at
//!   [`BaselineConfig::huber`] spreads (a Huber loss), so an outlier moves
//!   the baseline by a bounded amount.
//!
//! **Cold start.** The first [`BaselineConfig::warmup`] points are kept and
//! fitted in one batch with linfa's ordinary least squares on time (level
//! and slope); from then on the baseline is usable and the buffer is freed.
//! The seasonal coefficients start at zero and grow as the day fills in:
//! usable from the first hour, better with every day of history.
//!
//! **Persistence.** The state is plain data (serde), so a restarted process
//! resumes where it stopped; [`SeasonalBaseline::state_bytes`] reports its
//! in-memory size (see BENCHMARKS.md for the measurement).
//!
//! [`BaselineDetector`] turns the baseline's errors into the same calibrated
//! score, onset reporting and hysteresis as the rest of the detectors, in
//! O(1) time and memory per point. Everything here is causal: the score of
//! a point is computed before the point updates the state.

use super::tails::{log10_normal_tail, log10_student_t_tail};
use crate::detector::{Detector, Hysteresis, Point, Score};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Regression features: an intercept, then Fourier terms of the day (two
/// harmonics) and of the week (one), sine and cosine.
const P: usize = 7;
const DAY: f64 = 86_400.0;
const WEEK: f64 = 7.0 * DAY;

/// Settings of the baseline; the defaults are used everywhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineConfig {
    /// Event time over which the seasonal fit forgets (weight 1/e).
    pub seasonal_horizon_secs: f64,
    /// Points over which the level follows the data (smoothing 1/points).
    pub level_points: f64,
    /// Points over which the trend follows the level's changes.
    pub trend_points: f64,
    /// Share of the trend kept per point (damping, so a trend never runs
    /// away on extrapolation).
    pub trend_damping: f64,
    /// Points over which the spread follows the errors.
    pub spread_points: f64,
    /// Points fitted in one batch (linfa) before the baseline is used.
    pub warmup: usize,
    /// Errors are clipped at this many spreads before they update anything.
    pub huber: f64,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            seasonal_horizon_secs: 14.0 * DAY,
            level_points: 60.0,
            trend_points: 200.0,
            trend_damping: 0.98,
            spread_points: 200.0,
            warmup: 30,
            huber: 3.0,
        }
    }
}

/// What the baseline expects at a time: a value and a spread around it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expectation {
    /// Expected value.
    pub value: f64,
    /// Expected absolute deviation, scaled to a normal standard deviation.
    pub spread: f64,
}

/// Entries of the packed upper triangle of a symmetric P x P matrix.
const PACKED: usize = P * (P + 1) / 2;

/// Index of (i, j) in the packed upper triangle.
const fn packed_index(i: usize, j: usize) -> usize {
    let (i, j) = if i <= j { (i, j) } else { (j, i) };
    i * P - i * (i + 1) / 2 + j
}

/// [`packed_index`] for every (i, j), computed at compile time: the update
/// runs for every point of every signal, so it should be table lookups.
const INDEX: [[usize; P]; P] = {
    let mut t = [[0; P]; P];
    let mut i = 0;
    while i < P {
        let mut j = 0;
        while j < P {
            t[i][j] = packed_index(i, j);
            j += 1;
        }
        i += 1;
    }
    t
};

#[inline]
fn at(i: usize, j: usize) -> usize {
    INDEX[i][j]
}

/// Online seasonal baseline of one signal. See the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeasonalBaseline {
    /// Shared by every signal with the same settings: a million signals
    /// must not hold a million copies.
    cfg: Arc<BaselineConfig>,
    /// Seasonal coefficients.
    theta: [f64; P],
    /// Inverse information matrix of the recursive least squares,
    /// symmetric, so only its upper triangle is kept.
    #[serde(with = "packed")]
    p: [f64; PACKED],
    level: f64,
    /// Trend in value units per second.
    trend: f64,
    /// Mean absolute error (exponentially weighted).
    mae: f64,
    /// Smallest non-zero step between consecutive values seen.
    step: f64,
    last_t: f64,
    last_x: f64,
    n: u64,
    /// Whether the cold start is over.
    fitted: bool,
    /// Time of the first point; cold-start times are kept relative to it.
    t0: f64,
    /// Cold-start buffer of (seconds after `t0`, value), in single
    /// precision (a level estimate needs no more); freed once fitted.
    warm: Vec<[f32; 2]>,
}

/// serde for the packed matrix (serde derives arrays only up to 32).
mod packed {
    use super::PACKED;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(p: &[f64; PACKED], s: S) -> Result<S::Ok, S::Error> {
        p.as_slice().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[f64; PACKED], D::Error> {
        let v = Vec::<f64>::deserialize(d)?;
        v.try_into()
            .map_err(|v: Vec<f64>| serde::de::Error::invalid_length(v.len(), &"28 entries"))
    }
}

/// Prior variance of a seasonal coefficient before any data: wide, so the
/// first days move the coefficients freely.
const PRIOR: f64 = 1e3;

fn features(t: f64) -> [f64; P] {
    let (s1, c1) = (std::f64::consts::TAU * t / DAY).sin_cos();
    let (sw, cw) = (std::f64::consts::TAU * t / WEEK).sin_cos();
    // The second daily harmonic from the first by the double-angle
    // identities: one trigonometric call fewer per point.
    [1.0, s1, c1, 2.0 * s1 * c1, c1 * c1 - s1 * s1, sw, cw]
}

impl SeasonalBaseline {
    /// A baseline with no history.
    pub fn new(cfg: impl Into<Arc<BaselineConfig>>) -> Self {
        let mut p = [0.0; PACKED];
        for i in 0..P {
            p[at(i, i)] = PRIOR;
        }
        SeasonalBaseline {
            warm: Vec::new(),
            fitted: false,
            t0: f64::NAN,
            cfg: cfg.into(),
            theta: [0.0; P],
            p,
            level: 0.0,
            trend: 0.0,
            mae: 0.0,
            step: f64::INFINITY,
            last_t: f64::NAN,
            last_x: f64::NAN,
            n: 0,
        }
    }

    /// Points seen (finite values only).
    pub fn points(&self) -> u64 {
        self.n
    }

    /// Whether the cold start is over and expectations are meaningful.
    pub fn ready(&self) -> bool {
        self.fitted
    }

    /// Bytes this baseline occupies in memory, heap included.
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.warm.capacity() * std::mem::size_of::<[f32; 2]>()
    }

    fn seasonal(&self, x: &[f64; P]) -> f64 {
        self.theta.iter().zip(x).map(|(a, b)| a * b).sum()
    }

    /// The expectation at time `t` (seconds), from the state so far.
    pub fn expect(&self, t: f64) -> Expectation {
        let dt = if self.last_t.is_finite() {
            (t - self.last_t).max(0.0)
        } else {
            0.0
        };
        let value = self.level + self.trend * dt + self.seasonal(&features(t));
        Expectation {
            value,
            spread: self.spread_at(value),
        }
    }

    fn spread_at(&self, value: f64) -> f64 {
        let floor = (1e-3 * value.abs().max(1e-9) + 1e-9).max(if self.step.is_finite() {
            self.step / 2.0
        } else {
            0.0
        });
        // 1.2533 = sqrt(pi/2): mean absolute deviation to standard deviation.
        (1.2533 * self.mae).max(floor)
    }

    /// Learn from the value `x` at time `t` (seconds). Call after scoring
    /// the point, never before: that is what keeps detectors causal.
    /// Non-finite values are ignored; time going backwards is treated as no
    /// time passing.
    pub fn update(&mut self, t: f64, x: f64) {
        if !x.is_finite() || !t.is_finite() {
            return;
        }
        if self.last_x.is_finite() && x != self.last_x {
            self.step = self.step.min((x - self.last_x).abs());
        }
        self.n += 1;
        if !self.fitted {
            if self.warm.is_empty() {
                self.t0 = t;
                self.warm.reserve_exact(self.cfg.warmup.max(2));
            }
            self.warm.push([(t - self.t0) as f32, x as f32]);
            if self.warm.len() >= self.cfg.warmup.max(2) {
                self.cold_start();
            }
            self.last_t = t;
            self.last_x = x;
            return;
        }
        let dt = if self.last_t.is_finite() {
            (t - self.last_t).max(0.0)
        } else {
            0.0
        };
        let feats = features(t);
        let seasonal = self.seasonal(&feats);
        let level_pred = self.level + self.trend * dt;
        let expected = level_pred + seasonal;
        let spread = self.spread_at(expected);
        let err = x - expected;
        let clipped = err.clamp(-self.cfg.huber * spread, self.cfg.huber * spread);
        let target = expected + clipped;

        // The regression (intercept and seasonality) learns the value
        // itself, jointly, so its terms cannot trade level for a slow
        // harmonic; it forgets by event time.
        // exp(-dt/H) to first order: dt/H is around 1e-5, and this runs for
        // every point.
        let lambda = (1.0 - dt / self.cfg.seasonal_horizon_secs).clamp(0.5, 1.0);
        self.rls(&feats, target - seasonal, lambda);

        // The regression moves slowly; a damped Holt smoother on what it
        // leaves follows level changes and drift within minutes. As the
        // regression catches up, what it leaves, and so the level, return
        // to zero.
        let alpha = 1.0 / self.cfg.level_points.max(1.0);
        let new_level = level_pred + alpha * clipped;
        if dt > 0.0 {
            let beta = 1.0 / self.cfg.trend_points.max(1.0);
            let observed = (new_level - self.level) / dt;
            self.trend = self.cfg.trend_damping * ((1.0 - beta) * self.trend + beta * observed);
        }
        self.level = new_level;

        // Spread: errors beyond six spreads are capped so one wild point
        // cannot inflate it for the next hundred.
        let cap = 6.0 * spread;
        let a = 1.0 / self.cfg.spread_points.max(1.0);
        let a = a.max(1.0 / self.n as f64);
        self.mae += a * (err.abs().min(cap) - self.mae);
        self.last_t = t;
        self.last_x = x;
    }

    /// One recursive-least-squares step with forgetting factor `lambda`
    /// for the prediction error `e` at features `x`.
    fn rls(&mut self, x: &[f64; P], e: f64, lambda: f64) {
        let mut px = [0.0; P];
        for (i, v) in px.iter_mut().enumerate() {
            *v = (0..P).map(|j| self.p[at(i, j)] * x[j]).sum();
        }
        let denom = lambda + x.iter().zip(&px).map(|(a, b)| a * b).sum::<f64>();
        if denom <= 0.0 || !denom.is_finite() {
            return;
        }
        for (th, g) in self.theta.iter_mut().zip(&px) {
            *th += g / denom * e;
        }
        for i in 0..P {
            for j in i..P {
                let v = &mut self.p[at(i, j)];
                *v = (*v - px[i] * px[j] / denom) / lambda;
            }
        }
        // Forgetting inflates P where the data carry no information (a
        // weekly harmonic seen for one day); a cap keeps it finite.
        // Scaling row and column i by the same factor keeps P symmetric and
        // positive definite.
        for i in 0..P {
            if self.p[at(i, i)] > PRIOR {
                let k = (PRIOR / self.p[at(i, i)]).sqrt();
                for j in 0..P {
                    // The diagonal entry is in its row and its column.
                    self.p[at(i, j)] *= if i == j { k * k } else { k };
                }
            }
        }
    }

    /// Fit level and slope over the cold-start buffer with linfa's ordinary
    /// least squares, then drop the buffer.
    fn cold_start(&mut self) {
        use linfa::traits::Fit;
        let warm = std::mem::take(&mut self.warm);
        self.fitted = true;
        let t0 = 0.0;
        let warm: Vec<(f64, f64)> = warm
            .iter()
            .map(|w| (f64::from(w[0]), f64::from(w[1])))
            .collect();
        let xs = ndarray::Array2::from_shape_fn((warm.len(), 1), |(i, _)| warm[i].0);
        let ys = ndarray::Array1::from_iter(warm.iter().map(|w| w.1));
        let mean = ys.mean().unwrap_or(0.0);
        let span = warm[warm.len() - 1].0;
        let (intercept, slope) = if span > 0.0 {
            let data = linfa::Dataset::new(xs, ys.clone());
            match linfa_linear::LinearRegression::new().fit(&data) {
                Ok(m) if m.params()[0].is_finite() => (m.intercept(), m.params()[0]),
                _ => (mean, 0.0),
            }
        } else {
            (mean, 0.0)
        };
        // The slope of a few minutes is mostly noise: the trend starts from
        // half of it and the smoother confirms or forgets it.
        let fit = |t: f64| intercept + slope * (t - t0);
        let mae = warm.iter().map(|&(t, x)| (x - fit(t)).abs()).sum::<f64>() / warm.len() as f64;
        let last_t = warm[warm.len() - 1].0;
        self.theta[0] = fit(last_t);
        self.p[at(0, 0)] = 1.0 / warm.len() as f64;
        self.level = 0.0;
        self.trend = slope * 0.5;
        self.mae = mae;
    }
}

/// Settings of [`BaselineDetector`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineDetectorConfig {
    /// The baseline's settings (shared by the baselines of every detector
    /// made from this configuration).
    pub baseline: Arc<BaselineConfig>,
    /// Points averaged for the short-term raw score.
    pub short: usize,
    /// Points over which the long-term distribution of raw scores is
    /// learned (exponential weights).
    pub long: f64,
    /// Score at which an alert opens.
    pub alert_on: f64,
    /// Score below which an alert may close.
    pub alert_off: f64,
    /// Points below `alert_off` before an alert closes.
    pub cooldown: usize,
    /// Consecutive triggering points before an alert opens.
    pub min_consecutive: usize,
    /// Only deviations above the baseline count.
    pub upward_only: bool,
    /// Cap on one point's deviation (in spreads), so one absurd value
    /// cannot dominate the long-term variance that calibrates every later
    /// score. It is high on purpose: a lone spike must still lift the
    /// short-term mean on its own.
    pub raw_cap: f64,
    /// Share of the previous maximum score kept per point; the reported
    /// score is what the current one adds above it (onset reporting).
    pub suppress_decay: f64,
}

impl Default for BaselineDetectorConfig {
    fn default() -> Self {
        BaselineDetectorConfig {
            baseline: Arc::new(BaselineConfig::default()),
            short: 6,
            long: 2000.0,
            alert_on: 0.5,
            alert_off: 0.25,
            cooldown: 12,
            min_consecutive: 1,
            upward_only: false,
            raw_cap: 50.0,
            suppress_decay: 0.995,
        }
    }
}

/// Ring of the last few raw scores (at most [`SHORT_MAX`]).
const SHORT_MAX: usize = 8;

/// Causal detector on a [`SeasonalBaseline`], O(1) per point.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaselineDetector {
    cfg: Arc<BaselineDetectorConfig>,
    base: SeasonalBaseline,
    short: [f64; SHORT_MAX],
    short_len: usize,
    short_pos: usize,
    raw_mean: f64,
    raw_var: f64,
    raw_n: u64,
    recent_max: f64,
    alert: Hysteresis,
}

/// Points before the cold-start test may judge one (four degrees of
/// freedom: it takes a deviation of about 60 spreads to reach a one in a
/// million chance).
const COLD_MIN: u64 = 5;

/// The smallest spread the cold-start test assumes, as a share of the
/// level: a few quiet points do not show a series' noise (a latency
/// quantile at low traffic sits still, then doubles with nothing wrong),
/// and a change of a tenth is no outage.
const COLD_FLOOR: f64 = 0.1;

impl BaselineDetector {
    /// A detector with no history. Pass an `Arc` to share one
    /// configuration between many signals.
    pub fn new(cfg: impl Into<Arc<BaselineDetectorConfig>>) -> Self {
        let cfg = cfg.into();
        BaselineDetector {
            base: SeasonalBaseline::new(cfg.baseline.clone()),
            cfg,
            short: [0.0; SHORT_MAX],
            short_len: 0,
            short_pos: 0,
            raw_mean: 0.0,
            raw_var: 0.0,
            raw_n: 0,
            recent_max: 0.0,
            alert: Default::default(),
        }
    }

    /// The score of `x` during the baseline's warm-up, when the regular
    /// score has nothing to compare with: how unlikely `x` is as the next
    /// draw of the warm-up's points so far, under the Student-t predictive
    /// of a normal sample of unknown mean and variance (n points: n - 1
    /// degrees of freedom, scale s * sqrt(1 + 1/n)). The spread is at
    /// least a tenth of the level ([`COLD_FLOOR`]) and half the smallest
    /// step between values. Few points give heavy tails, so only a change
    /// far outside everything seen scores: a CPU that went from 2% to
    /// 100%, not a quantile that wandered. Without it a signal is blind
    /// for its first `warmup` points (30 minutes at a one-minute scrape),
    /// and a run that starts shortly before a fault misses it.
    ///
    /// The sample's mean and sum of squares live in the score history's
    /// fields (`raw_mean`, `raw_var`, `raw_n`), which are unused until the
    /// baseline is ready and start afresh then: the test costs no state.
    /// Returns the score, the sample's mean and the spread.
    fn cold_score(&self, x: f64) -> (f64, f64, f64) {
        let n = self.raw_n;
        if n < COLD_MIN {
            return (0.0, x, 0.0);
        }
        let sd = (self.raw_var / (n - 1) as f64).sqrt();
        let step = if self.base.step.is_finite() {
            self.base.step / 2.0
        } else {
            0.0
        };
        let spread = sd.max(COLD_FLOOR * self.raw_mean.abs()).max(step).max(1e-9);
        let dev = if self.cfg.upward_only {
            (x - self.raw_mean).max(0.0)
        } else {
            (x - self.raw_mean).abs()
        };
        let z = dev / (spread * (1.0 + 1.0 / n as f64).sqrt());
        let score = (-log10_student_t_tail(z, (n - 1) as f64) / 12.0).clamp(0.0, 1.0);
        (score, self.raw_mean, spread)
    }

    /// Add `x` to the warm-up's sample (Welford), clipped at three spreads
    /// once the test judges (a Huber update, as the baseline's own): an
    /// outage's first point must not make the second look ordinary (the
    /// engine opens an anomaly on two alerting points).
    fn cold_learn(&mut self, x: f64, spread: f64) {
        let x = if self.raw_n >= COLD_MIN && spread > 0.0 {
            x.clamp(self.raw_mean - 3.0 * spread, self.raw_mean + 3.0 * spread)
        } else {
            x
        };
        self.raw_n += 1;
        let d = x - self.raw_mean;
        self.raw_mean += d / self.raw_n as f64;
        self.raw_var += d * (x - self.raw_mean);
    }

    /// The baseline underneath.
    pub fn baseline(&self) -> &SeasonalBaseline {
        &self.base
    }

    /// Bytes of state, heap included.
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>() - std::mem::size_of::<SeasonalBaseline>()
            + self.base.state_bytes()
    }

    /// Score the value `x` at time `t` (seconds), then learn from it.
    pub fn observe(&mut self, t: f64, x: f64) -> Score {
        if !x.is_finite() || !t.is_finite() {
            return Score {
                score: 0.0,
                alert: self.alert.in_alert,
                expected: f64::NAN,
                spread: f64::NAN,
            };
        }
        if !self.base.ready() {
            // The warm-up: the cold-start test (see `cold_score`). The
            // warm-up itself learns every point, as before: clipping what
            // it learns at the test's spread (tried) made sparse series
            // such as a 5xx rate, whose early bursts are ordinary, look
            // quieter than they are, and their later bursts alarms.
            let (score, expected, spread) = self.cold_score(x);
            self.cold_learn(x, spread);
            self.base.update(t, x);
            if self.base.ready() {
                // The score's own history starts now.
                (self.raw_mean, self.raw_var, self.raw_n) = (0.0, 0.0, 0);
            }
            let reported = (score - self.recent_max).max(0.0);
            self.recent_max = (self.recent_max * self.cfg.suppress_decay).max(score);
            let alert = self.alert.update(
                score >= self.cfg.alert_on,
                score < self.cfg.alert_off,
                self.cfg.min_consecutive,
                self.cfg.cooldown,
            );
            return Score {
                score: reported,
                alert,
                expected,
                spread,
            };
        }
        let e = self.base.expect(t);
        let dev = if self.cfg.upward_only {
            (x - e.value).max(0.0)
        } else {
            (x - e.value).abs()
        };
        let raw = (dev / e.spread).min(self.cfg.raw_cap);
        self.base.update(t, x);

        let k = self.cfg.short.clamp(1, SHORT_MAX);
        self.short[self.short_pos] = raw;
        self.short_pos = (self.short_pos + 1) % k;
        self.short_len = (self.short_len + 1).min(k);
        let short_mean = self.short[..self.short_len].iter().sum::<f64>() / self.short_len as f64;

        let score = if self.raw_n < 10 || short_mean <= self.raw_mean {
            // At or below its usual level a deviation is not news (and the
            // tail computation is the dearest step of the point).
            0.0
        } else {
            let z = (short_mean - self.raw_mean) / self.raw_var.max(1e-6).sqrt();
            (-log10_normal_tail(z) / 12.0).clamp(0.0, 1.0)
        };
        // Long-term distribution of the short-term score (Welford at first,
        // exponential weights once `long` points are in).
        self.raw_n += 1;
        let a = (1.0 / self.raw_n as f64).max(1.0 / self.cfg.long.max(1.0));
        let d = short_mean - self.raw_mean;
        self.raw_mean += a * d;
        self.raw_var = (1.0 - a) * (self.raw_var + a * d * d);

        let reported = (score - self.recent_max).max(0.0);
        self.recent_max = (self.recent_max * self.cfg.suppress_decay).max(score);
        let alert = self.alert.update(
            score >= self.cfg.alert_on && raw >= 3.0,
            score < self.cfg.alert_off,
            self.cfg.min_consecutive,
            self.cfg.cooldown,
        );
        Score {
            score: reported,
            alert,
            expected: e.value,
            spread: e.spread,
        }
    }
}

impl Detector for BaselineDetector {
    fn name(&self) -> &'static str {
        "seasonal_baseline"
    }

    fn observe(&mut self, p: &Point<'_>) -> Score {
        BaselineDetector::observe(self, p.t, p.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-noise, uniform in [-1, 1] (sd 0.58).
    fn noise(i: usize) -> f64 {
        ((i as f64 * 12.9898).sin() * 43758.5453).fract().abs() * 2.0 - 1.0
    }

    /// Five-minute points with a daily cycle of amplitude 10 around 50.
    fn daily(i: usize) -> (f64, f64) {
        let t = 1_700_000_000.0 + i as f64 * 300.0;
        (
            t,
            50.0 + 10.0 * (std::f64::consts::TAU * t / DAY).sin() + noise(i),
        )
    }

    #[test]
    fn learns_a_daily_cycle_and_its_spread() {
        let mut b = SeasonalBaseline::new(BaselineConfig::default());
        let day = 288;
        for i in 0..7 * day {
            let (t, x) = daily(i);
            b.update(t, x);
        }
        // Over the next day the expectation follows the cycle within the
        // noise, and the spread is the noise's (uniform [-1,1]: sd 0.58).
        let mut worst: f64 = 0.0;
        for i in 7 * day..8 * day {
            let (t, x) = daily(i);
            let e = b.expect(t);
            worst = worst.max((e.value - (x - noise(i))).abs());
            b.update(t, x);
        }
        assert!(worst < 1.0, "worst miss {worst}");
        let spread = b.expect(daily(8 * day).0).spread;
        assert!((0.4..1.0).contains(&spread), "spread {spread}");
    }

    #[test]
    fn state_is_small_and_survives_a_restart() {
        let mut b = SeasonalBaseline::new(BaselineConfig::default());
        for i in 0..500 {
            let (t, x) = daily(i);
            b.update(t, x);
        }
        assert!(b.state_bytes() <= 1024, "{} bytes", b.state_bytes());
        let saved = serde_json::to_string(&b).unwrap();
        let mut restored: SeasonalBaseline = serde_json::from_str(&saved).unwrap();
        for i in 500..600 {
            let (t, x) = daily(i);
            b.update(t, x);
            restored.update(t, x);
        }
        assert_eq!(b.expect(1_700_200_000.0), restored.expect(1_700_200_000.0));
    }

    #[test]
    fn cold_start_fits_level_and_slope() {
        let mut b = SeasonalBaseline::new(BaselineConfig::default());
        for i in 0..30 {
            b.update(i as f64 * 15.0, 100.0 + 0.1 * i as f64);
        }
        assert!(b.ready());
        let e = b.expect(30.0 * 15.0);
        assert!((e.value - 103.0).abs() < 0.2, "{e:?}");
    }

    #[test]
    fn outliers_barely_move_it() {
        let mut b = SeasonalBaseline::new(BaselineConfig::default());
        for i in 0..300 {
            b.update(i as f64 * 60.0, 10.0 + 0.1 * noise(i));
        }
        let before = b.expect(300.0 * 60.0).value;
        b.update(300.0 * 60.0, 1e6);
        let after = b.expect(301.0 * 60.0).value;
        assert!((after - before).abs() < 0.1, "{before} -> {after}");
    }

    fn detect(xs: &[f64]) -> Vec<Score> {
        let mut d = BaselineDetector::new(BaselineDetectorConfig::default());
        xs.iter()
            .enumerate()
            .map(|(i, &x)| d.observe(i as f64 * 300.0, x))
            .collect()
    }

    #[test]
    fn a_spike_is_one_alert() {
        let mut xs: Vec<f64> = (0..800).map(|i| 20.0 + noise(i)).collect();
        xs[600] = 35.0;
        let s = detect(&xs);
        assert!(s[600].alert && s[600].score > 0.5, "{:?}", s[600]);
        let episodes = s.windows(2).filter(|w| !w[0].alert && w[1].alert).count();
        assert_eq!(episodes, 1);
    }

    #[test]
    fn the_daily_cycle_itself_raises_nothing() {
        let mut d = BaselineDetector::new(BaselineDetectorConfig::default());
        let alerts = (0..288 * 14)
            .filter(|&i| {
                let (t, x) = daily(i);
                d.observe(t, x).alert
            })
            .count();
        assert_eq!(alerts, 0);
    }

    #[test]
    fn a_level_shift_alerts_at_its_start_then_settles() {
        let xs: Vec<f64> = (0..1200)
            .map(|i| if i < 700 { 5.0 } else { 9.0 } + 0.3 * noise(i))
            .collect();
        let s = detect(&xs);
        let first = s.iter().position(|x| x.alert).expect("found");
        assert!((700..703).contains(&first), "first alert at {first}");
        assert!(!s[1199].alert, "the new level became normal");
    }

    #[test]
    fn constant_nan_gaps_and_single_points_raise_nothing() {
        let mut xs = vec![7.0; 500];
        xs[200] = f64::NAN;
        xs[201] = f64::INFINITY;
        let s = detect(&xs);
        assert!(s.iter().all(|x| !x.alert));
        let mut d = BaselineDetector::new(BaselineDetectorConfig::default());
        assert_eq!(d.observe(0.0, 1.0).score, 0.0);
        // Duplicate and out-of-order timestamps.
        let mut d = BaselineDetector::new(BaselineDetectorConfig::default());
        for i in 0..400 {
            let t = if i % 7 == 0 { 0.0 } else { i as f64 * 60.0 };
            assert!(!d.observe(t, 3.0 + 0.01 * noise(i)).alert, "at {i}");
        }
    }

    #[test]
    fn scores_are_causal() {
        let xs: Vec<f64> = (0..900)
            .map(|i| (i as f64 / 20.0).sin() + 0.1 * noise(i))
            .collect();
        let full = detect(&xs);
        let cut = detect(&xs[..450]);
        assert_eq!(&full[..450], &cut[..]);
    }

    /// A run that starts shortly before a fault: a CPU share that goes
    /// from 2% to 100% in the warm-up is reported at once (it was silent
    /// for 40 points before the cold-start test); ordinary starts of
    /// several shapes raise nothing in those points.
    #[test]
    fn a_fault_in_the_first_points_is_reported_and_ordinary_starts_are_not() {
        for onset in [8, 20, 28] {
            let xs: Vec<f64> = (0..45)
                .map(|i| {
                    if i < onset {
                        0.02 + 0.004 * noise(i)
                    } else {
                        1.0
                    }
                })
                .collect();
            let s = detect(&xs);
            let first = s.iter().position(|x| x.alert);
            assert_eq!(
                first,
                Some(onset),
                "onset {onset}: {:?}",
                &s[onset..onset + 2]
            );
            assert!(s[onset].score > 0.5, "onset {onset}: {:?}", s[onset]);
        }
        let shapes: [&dyn Fn(usize) -> f64; 5] = [
            // Gaussian-ish noise, a slow climb (a JVM filling its heap),
            // a quantised latency flipping between two buckets, a count
            // near zero, and a series that starts high and settles.
            &|i| 50.0 + 5.0 * noise(i),
            &|i| 400e6 + 2e6 * i as f64 + 1e6 * noise(i),
            &|i| if noise(i) > 0.0 { 0.0047 } else { 0.0051 },
            &|i| (noise(i) > 0.6) as u8 as f64,
            &|i| 0.3 + 0.5 * (-(i as f64) / 5.0).exp() + 0.01 * noise(i),
        ];
        for (k, f) in shapes.iter().enumerate() {
            let xs: Vec<f64> = (0..45).map(f).collect();
            let s = detect(&xs);
            assert!(
                s.iter().all(|x| !x.alert),
                "shape {k}: {:?}",
                s.iter().position(|x| x.alert)
            );
        }
    }
}
