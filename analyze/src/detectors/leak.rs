//! Resource leaks: [`LeakDetector`] (a significant, material climb that
//! sets new highs) and [`LevelAndSlope`] (the engine's detector of
//! leak-prone gauges: the seasonal baseline for the level, the leak
//! detector for the slope, either alerts).

use super::baseline::BaselineDetector;
use crate::detector::{Detector, Hysteresis, Point, Score};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

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
    /// Event times of `values` (seconds), when known: the climb's rate is
    /// judged per hour, whatever the scrape interval.
    #[serde(default)]
    times: VecDeque<f64>,
    alert: Hysteresis,
    /// Maximum of each earlier window of [`LEAK_WINDOW`] points, newest last.
    #[serde(default)]
    peaks: VecDeque<f64>,
    /// Points since the last window was closed into `peaks`, and their max.
    #[serde(default)]
    block: (usize, f64),
    /// The limit series this gauge runs out against, when the data has
    /// one (a container's memory limit, a process's descriptor limit).
    #[serde(default)]
    limit_of: Option<String>,
    /// The alert in progress has shown the resource running out; it stays
    /// so until the alert ends (a climb that levels off at 99% of its
    /// limit projects to never reaching it, and has still run out).
    #[serde(default)]
    ran_out: bool,
    /// Points seen (a fall of [`COLLECTION`] of the value from the
    /// newest of `values` is a collection).
    #[serde(default)]
    seen: u64,
    /// What survived the latest collections: (point, value) of the value
    /// right after each, newest last, at most [`LEAK_BLOCKS`].
    #[serde(default)]
    floors: VecDeque<(u64, f64)>,
    /// The most points between two collections (from the first point to
    /// the first collection, for the first).
    #[serde(default)]
    longest_cycle: u64,
    /// The floors' own alert (see [`LeakDetector::observe_against`]).
    #[serde(default)]
    floor_alert: bool,
    /// The residual spread of the last fitted window (0 until one was
    /// fitted): a fall within the series' own noise is not a collection.
    #[serde(default)]
    last_sigma: f64,
    /// A garbage-collected heap: collected by design, so judged by its
    /// floors from its first point, before its first collection shows.
    #[serde(default)]
    managed: bool,
    /// A container's memory that may hold a garbage-collected heap: judged
    /// net of the heap the runtime has touched, when the data says it
    /// (see [`LeakDetector::beside_heap`]).
    #[serde(default)]
    beside_heap: bool,
    /// The heap touched at the latest point, once known: what the kept
    /// values have had taken off.
    #[serde(default)]
    held: Option<f64>,
    /// The most each heap pool has held since the working set last fell.
    #[serde(default)]
    pools: Vec<f64>,
    /// Points left during which `pools` follow the heap as it is, after
    /// the working set fell (the runtime restarted or gave memory back;
    /// its heap series may lag the working set by a scrape or two).
    #[serde(default)]
    follow: u8,
}

/// Points after a fall of the working set during which the heap touched
/// is taken as the heap reports it, not as the most it has held.
const FOLLOW_POINTS: u8 = 4;

/// A fall of at least this share of the value from one point to the next
/// is a collection (a garbage collection, an eviction, a pool shrinking):
/// a leak never gives back what it holds. Gauge noise is a few percent a
/// point.
const COLLECTION: f64 = 0.25;

/// ...and a fall of more than this many of the series' residual spreads
/// (a noisy count of a hundred descriptors falls by a quarter from one
/// scrape to the next by chance several times a day; six spreads, about
/// four of a difference's, once in months).
const COLLECTION_SIGMAS: f64 = 6.0;

/// A floor that moved by less than this share of the series' top is no
/// leak, however still the floors before it were (a synthetic or
/// quantised series whose floors never varied).
const FLOOR_MATERIAL: f64 = 0.02;

/// A series keeps being judged by its floors until it has gone this many
/// times its longest cycle without a collection: collections that stop
/// (a collector that can no longer free anything, a pool that shrank once
/// and then leaks) leave a climb to be judged as a climb.
const CYCLES_WITHOUT_COLLECTION: u64 = 4;

/// Earlier windows whose peaks a leak must pass.
pub const LEAK_BLOCKS: usize = 8;

/// Points in the fitted window (6 minutes at a 15 s scrape).
pub const LEAK_WINDOW: usize = 24;

/// How fast a climb must be, as a share of the level per hour, to be a
/// leak worth an alert: 30%, the 3% per six-minute window the detector was
/// built with at a 15 s scrape, stated in time. Per window it was a rule
/// that loosened with the scrape interval: at a 60 s scrape the same 24
/// points span 24 minutes, and 3% of them is 7.5% an hour, the pace at
/// which a JVM's working set settles after start-up, not a leak heading
/// for its limit (Prometheus' own fill-up alerts likewise project a rate
/// over time, `predict_linear`, not over samples).
pub const LEAK_RISE_PER_HOUR: f64 = 0.3;

/// How soon a climb must reach its limit, when the limit is known, to be
/// a resource running out: a day ahead, as Prometheus' node-mixin warns of
/// a filling filesystem (`predict_linear` over the last hours, 24 h
/// ahead). A working set at 0.2% of its limit that grows 30% an hour has
/// weeks; restarting it now helps nobody.
pub const EXHAUST_HORIZON_HOURS: f64 = 24.0;

/// A climb slower than [`LEAK_RISE_PER_HOUR`] of its level is still a
/// leak when at its pace it reaches its known limit within this many
/// hours: node-mixin's critical fill-up alert (a filesystem full within
/// 4 hours at `predict_linear`'s pace). A gigabyte container at 85% of its
/// limit gaining 150 MB an hour grows 15% of its level an hour, and is
/// killed in one.
pub const EXHAUST_SOON_HOURS: f64 = 4.0;

/// A resource at this share of its known limit has run out, whatever its
/// pace: the operators' 80% that the static rules use.
const NEAR_LIMIT: f64 = 0.8;

/// Seconds between points when their times are unknown (a lone series of
/// values): the resolution the thresholds were set at.
const DEFAULT_STEP_SECS: f64 = 15.0;

impl LeakDetector {
    /// A detector of a gauge that runs out against the latest value of
    /// the series `limit` (looked up through the point's context).
    pub fn with_limit(limit: &str) -> Self {
        LeakDetector {
            limit_of: Some(limit.to_string()),
            ..Default::default()
        }
    }

    /// The same detector for a garbage-collected heap (a JVM's, Go's, V8's,
    /// .NET's: a series whose name or labels say `heap`). Its climbs are
    /// allocation that the collector undoes, from the first one: a JVM
    /// that just started fills its old generation for most of an hour
    /// before the first mixed collection, and judged as a climb that was a
    /// leak (and a restart) after every deploy. Its floors decide, as for
    /// any collected series; if collections stop for several of its cycles
    /// its climb is judged as a climb again.
    pub fn managed(self) -> Self {
        LeakDetector {
            managed: true,
            ..self
        }
    }

    /// The same detector for a container's memory (working set, resident
    /// set) where a garbage-collected runtime may run. A JVM's heap takes
    /// pages from the system as it first fills them, up to its maximum
    /// (`-Xmx`), and a page once written stays in the working set: for the
    /// best part of an hour after every start the container's memory
    /// climbs steadily toward a plateau near its limit, the shape of a
    /// leak. What the heap holds is the heap's own series' business (its
    /// floors, see [`LeakDetector::managed`]); what can leak here is the
    /// rest, the runtime's native memory. So where the data gives the
    /// heap's use (Micrometer's `jvm_memory_used_bytes`, the Java client's
    /// `jvm_memory_bytes_used`, `area="heap"`), the climb is fitted to the
    /// memory outside what the heap has touched (the most each of its
    /// pools has held, from [`crate::detector::Context::heap_pools`], since
    /// the working set last fell: a restart or memory given back releases
    /// its pages), as the JVM's native memory tracking separates them.
    /// Pool by pool, because a young generation is emptied every minute or
    /// two and a scrape catches it at any point of its cycle. Not the
    /// committed heap: the JVM commits ahead of what it writes, and the
    /// working set catches up with it for minutes after the heap stops
    /// growing. The pace is still judged against the whole memory's level,
    /// and running out against the whole limit. Without a heap series
    /// nothing changes.
    pub fn beside_heap(self) -> Self {
        LeakDetector {
            beside_heap: true,
            ..self
        }
    }

    /// [`LeakDetector::observe_against`] of a container's memory `x`
    /// beside what the pools of the heap of the runtime in it hold now,
    /// `pools`, when known: the climb is fitted to `x` less the most each
    /// pool has held. The first time the heap is known, what the detector
    /// kept is taken on the same footing (that heap taken off), so a heap
    /// series that starts a scrape after the working set makes no step.
    pub fn observe_beside(
        &mut self,
        t: f64,
        x: f64,
        limit: Option<f64>,
        pools: Option<&[f64]>,
    ) -> Score {
        if let Some(now) = pools.filter(|p| !p.is_empty()) {
            // The working set fell as a whole: the pages the heap had
            // touched went with it.
            if let Some(was) = self.held {
                if self.values.back().is_some_and(|&v| self.falls(v + was, x)) {
                    self.follow = FOLLOW_POINTS;
                }
            }
            let fresh = self.follow > 0 || self.pools.len() != now.len();
            self.follow = self.follow.saturating_sub(1);
            if fresh {
                self.pools.clear();
                self.pools.extend(now.iter().map(|v| v.max(0.0)));
            } else {
                for (most, &v) in self.pools.iter_mut().zip(now) {
                    *most = most.max(v);
                }
            }
            let h: f64 = self.pools.iter().filter(|v| v.is_finite()).sum();
            if self.held.is_none() {
                for v in self.values.iter_mut().chain(self.peaks.iter_mut()) {
                    *v -= h;
                }
                if self.block.0 > 0 {
                    self.block.1 -= h;
                }
                for f in self.floors.iter_mut() {
                    f.1 -= h;
                }
            }
            self.held = Some(h);
        }
        let held = self.held.unwrap_or(0.0);
        self.observe_net(t, x - held, limit, held)
    }

    /// Whether a fall from `p` to `x` is a collection: a quarter of the
    /// value and more than the series' own noise, in one step.
    fn falls(&self, p: f64, x: f64) -> bool {
        self.last_sigma > 0.0
            && p > 0.0
            && x >= 0.0
            && x < p * (1.0 - COLLECTION)
            && p - x > COLLECTION_SIGMAS * self.last_sigma
    }

    /// Whether the climb in alert, if any, reaches its known limit within
    /// [`EXHAUST_HORIZON_HOURS`] (a limit not known cannot say it does not).
    pub fn exhausting(&self) -> bool {
        self.ran_out
    }

    /// Score one value of a series whose points are 15 s apart. `score` is
    /// the slope's t-statistic scaled to [0, 1] (t = 16 scores 1);
    /// `expected` is the fitted line's value.
    pub fn observe(&mut self, x: f64) -> Score {
        self.observe_at(f64::NAN, x)
    }

    /// [`LeakDetector::observe`] of a value at event time `t` (seconds), so
    /// the climb's pace is judged per hour.
    pub fn observe_at(&mut self, t: f64, x: f64) -> Score {
        self.observe_against(t, x, None)
    }

    /// [`LeakDetector::observe_at`] of a gauge whose limit is `limit` at
    /// this point, when known: a climb is running out only if it reaches
    /// the limit within [`EXHAUST_HORIZON_HOURS`] or stands near it.
    pub fn observe_against(&mut self, t: f64, x: f64, limit: Option<f64>) -> Score {
        self.observe_net(t, x, limit, 0.0)
    }

    /// The test itself, on `x` with `held` already taken off it (0 for a
    /// gauge judged whole): the climb is fitted to the net values, its
    /// pace judged against the whole level and its limit against the
    /// whole value.
    fn observe_net(&mut self, t: f64, x: f64, limit: Option<f64>, held: f64) -> Score {
        if !x.is_finite() {
            return Score::missing(self.alert.in_alert || self.floor_alert);
        }
        self.seen += 1;
        let collection = self.values.back().is_some_and(|&p| self.falls(p, x));
        if collection {
            let since = self.seen - self.floors.back().map_or(0, |f| f.0);
            self.longest_cycle = self.longest_cycle.max(since);
            self.floors.push_back((self.seen, x));
            if self.floors.len() > LEAK_BLOCKS {
                self.floors.pop_front();
            }
        }
        // A series that collections bring down, and that has had one
        // within a few of its cycles: its climbs are what collections
        // undo, and only what survives them can leak. Only cycles longer
        // than the fitted window: a faster sawtooth (a young generation
        // emptied every minute) never shows the window a clean climb, and
        // its floors, a few points apart, rise by chance at any pace.
        let collected = (self.managed && self.floors.is_empty())
            || (self.longest_cycle > LEAK_WINDOW as u64
                && self.floors.back().is_some_and(|&(at, _)| {
                    self.seen - at <= CYCLES_WITHOUT_COLLECTION * self.longest_cycle
                }));
        self.values.push_back(x);
        self.times.push_back(t);
        if self.times.len() > LEAK_WINDOW {
            self.times.pop_front();
        }
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
                expected: x + held,
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
        self.last_sigma = sigma;
        // Seconds per point over the window, when the times are known (a
        // checkpoint from before they were kept has none).
        let step = match (self.times.front(), self.times.back()) {
            (Some(a), Some(b)) if self.times.len() == n && b > a => (b - a) / (nf - 1.0),
            _ => DEFAULT_STEP_SECS,
        };
        let rise_per_hour = slope / (mean_x + held).abs().max(1e-9) * 3600.0 / step;
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
        let per_hour = slope / step * 3600.0;
        let soon =
            hours_to_limit(x + held, limit, per_hour).is_some_and(|h| h <= EXHAUST_SOON_HOURS);
        let strong =
            t >= 8.0 && (rise_per_hour >= LEAK_RISE_PER_HOUR || soon) && new_high && !collected;
        let alert = self.alert.update(strong, t < 2.0 || collected, 2, 8);
        if collected && collection {
            // The top: the highest value of the windows remembered and
            // the one just fitted.
            let top = self.values.iter().copied().fold(peak, f64::max);
            self.floor_alert = self.floors_rising(top);
        } else if !collected {
            self.floor_alert = false;
        }
        if collected {
            let mut s = self.floor_score(x + held, limit, step);
            s.expected += held;
            return s;
        }
        // With the limit known, a window that does not climb (a flat
        // stretch while the alert holds) never reaches it.
        self.ran_out = alert && (self.ran_out || running_out(x + held, limit, per_hour));
        if peak.is_finite() {
            // Expected: at most the earlier peak; the band ends there.
            Score {
                score: (t / 16.0).clamp(0.0, 1.0),
                alert,
                expected: peak - 3.0 * sigma + held,
                spread: sigma,
            }
        } else {
            Score {
                score: (t / 16.0).clamp(0.0, 1.0),
                alert,
                expected: mean_x + slope * (nf - 1.0 - mean_i) + held,
                spread: sigma,
            }
        }
    }

    /// Whether what survives collections is growing, the way a leak in a
    /// collected heap shows (the post-collection occupancy that JVM tools
    /// watch, e.g. Java Mission Control's leak rule, rather than the climb
    /// between collections, which is allocation): the last three floors
    /// each above the one before, and the newest outside the band of the
    /// floors before it (their mean plus three standard deviations, the
    /// deviation at least [`FLOOR_MATERIAL`] of the series' recent top
    /// `top`), with four floors at least to draw that band from. Floors
    /// that merely wander rise three times in a row one cycle in six, but
    /// stay in their band.
    fn floors_rising(&self, top: f64) -> bool {
        let k = self.floors.len();
        if k < 5 {
            return false;
        }
        let f = |i: usize| self.floors[i].1;
        if !(f(k - 3) < f(k - 2) && f(k - 2) < f(k - 1)) {
            return false;
        }
        let (mean, sd) = self.floor_band();
        f(k - 1) > mean + 3.0 * sd.max(FLOOR_MATERIAL * top.abs())
    }

    /// Mean and standard deviation of the floors before the newest (NaN
    /// and 0 with none).
    fn floor_band(&self) -> (f64, f64) {
        let n = self.floors.len().saturating_sub(1);
        if n == 0 {
            return (f64::NAN, 0.0);
        }
        let before = || self.floors.iter().take(n).map(|f| f.1);
        let m = before().sum::<f64>() / n as f64;
        let var = before().map(|v| (v - m).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
        (m, var.sqrt())
    }

    /// The score of a collected series: the floors' alert, the newest
    /// floor against the ones before it.
    fn floor_score(&mut self, x: f64, limit: Option<f64>, step: f64) -> Score {
        let (expected, spread) = match self.floor_band() {
            (m, _) if m.is_nan() => (x, 0.0),
            band => band,
        };
        let alert = self.floor_alert;
        // Running out at the floors' pace.
        let per_hour = match (self.floors.front(), self.floors.back()) {
            (Some(&(a_at, a)), Some(&(b_at, b))) if b_at > a_at => {
                (b - a) / ((b_at - a_at) as f64 * step / 3600.0)
            }
            _ => 0.0,
        };
        self.ran_out = alert && (self.ran_out || running_out(x, limit, per_hour));
        Score {
            score: if alert { 0.75 } else { 0.0 },
            alert,
            expected,
            spread,
        }
    }
}

/// Whether a gauge at `x` that grows `per_hour` runs out of `limit`: it
/// reaches it within [`EXHAUST_HORIZON_HOURS`] at that pace
/// (Prometheus' `predict_linear`), or stands near it already. A limit not
/// known cannot say it does not.
fn running_out(x: f64, limit: Option<f64>, per_hour: f64) -> bool {
    match limit {
        Some(l) if l > 0.0 => {
            x >= NEAR_LIMIT * l
                || hours_to_limit(x, limit, per_hour).is_some_and(|h| h <= EXHAUST_HORIZON_HOURS)
        }
        _ => true,
    }
}

/// Hours until a gauge at `x` that grows `per_hour` reaches its known
/// `limit` (0 once there), when it grows and the limit is known.
fn hours_to_limit(x: f64, limit: Option<f64>, per_hour: f64) -> Option<f64> {
    match limit {
        Some(l) if l > 0.0 && per_hour > 0.0 => Some(((l - x) / per_hour).max(0.0)),
        _ => None,
    }
}

impl Detector for LeakDetector {
    fn name(&self) -> &'static str {
        "leak_slope"
    }

    fn observe(&mut self, p: &Point<'_>) -> Score {
        LeakDetector::observe_at(self, p.t, p.value)
    }
}

/// Resource gauges (memory, descriptors, threads): the level against its
/// seasonal baseline and the slope of a leak; either alerts. The slope's
/// result is reported only when it alone alerts, so the band of a level
/// anomaly is the baseline's.
///
/// A tuple struct on purpose: it checkpoints as the pair it was before it
/// had a name (`Resource(level, slope)`), so older checkpoints still load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LevelAndSlope(pub Box<BaselineDetector>, pub LeakDetector);

impl Detector for LevelAndSlope {
    fn name(&self) -> &'static str {
        "level_and_slope"
    }

    fn observe(&mut self, p: &Point<'_>) -> Score {
        let limit = self.1.limit_of.as_deref().and_then(|m| p.context.limit(m));
        let a = BaselineDetector::observe(&mut self.0, p.t, p.value);
        let heap = if self.1.beside_heap {
            p.context.heap_pools()
        } else {
            None
        };
        let b = self.1.observe_beside(p.t, p.value, limit, heap);
        if b.alert && !a.alert {
            b
        } else {
            a
        }
    }

    /// The slope's own alert, heading for its limit within the horizon
    /// where the limit is known: the level part alone (a step to a new
    /// level) is a change, not a leak.
    fn exhausting(&self) -> bool {
        self.1.exhausting()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine's detector for a container's working set.
    fn working_set() -> crate::detectors::AnyDetector {
        let signal = models::Signal {
            kind: models::SignalKind::MetricSeries,
            name: "container_memory_working_set_bytes".into(),
            service: Some("api".into()),
            host: None,
            container: Some("api-1".into()),
        };
        let settings = crate::detectors::Settings::new(
            crate::detectors::DetectorMode::default(),
            &crate::detectors::window::DetectorConfig::default(),
        );
        crate::detectors::for_signal(&signal, &settings).expect("judged")
    }

    fn noise(i: usize) -> f64 {
        // Deterministic pseudo-noise in [-1, 1].
        ((i as f64 * 12.9898).sin() * 43758.5453).fract() * 2.0 - 1.0
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

    /// The pace of a leak is judged per hour, whatever the scrape: at one
    /// point a minute, a climb of 10% an hour (4% over the 24 points the
    /// detector fits, which a per-window rule took for a leak) is not one,
    /// 60% an hour is.
    #[test]
    fn a_leak_is_judged_per_hour_not_per_window() {
        for (per_hour, want) in [(0.10, false), (0.60, true)] {
            let mut d = LeakDetector::default();
            let mut alerted = false;
            for i in 0..200 {
                let t = 1_767_600_000.0 + 60.0 * i as f64;
                let x = 1e9 * (1.0 + per_hour * i as f64 / 60.0) + 1e6 * noise(i);
                alerted |= d.observe_at(t, x).alert;
            }
            assert_eq!(alerted, want, "{per_hour} per hour");
        }
    }

    /// A working set that steps to a new level alerts (it moved) but is
    /// not running out; one that keeps climbing is.
    #[test]
    fn a_step_is_a_change_and_only_a_climb_is_exhausting() {
        let point = |i: usize, x: f64| {
            let t = 1_767_600_000.0 + 15.0 * i as f64;
            (t, x)
        };
        let run = |f: &dyn Fn(usize) -> f64| {
            let mut d = working_set();
            let (mut alerted, mut exhausting) = (false, false);
            for i in 0..3000 {
                let (t, x) = point(i, f(i));
                let s = d.observe(&Point::new(t, x));
                alerted |= s.alert && i >= 2000;
                exhausting |= d.exhausting() && i >= 2000;
            }
            (alerted, exhausting)
        };
        let base = |i: usize| 1e8 * (1.0 + 0.002 * noise(i));
        // +5% at point 2000, flat after.
        let step = |i: usize| base(i) * if i >= 2000 { 1.05 } else { 1.0 };
        assert_eq!(run(&step), (true, false));
        // From point 2000, 0.5% more every minute (30% an hour).
        let climb = |i: usize| base(i) * (1.0 + (i.saturating_sub(2000)) as f64 * 0.005 / 4.0);
        assert!(run(&climb).1, "a climb of 30% an hour is running out");
    }

    /// With its limit known, a climb is running out only if it reaches
    /// the limit within a day at its pace: the same 30%-an-hour climb is
    /// a leak at half its limit and not at a two-hundredth of it.
    #[test]
    fn a_climb_far_below_its_limit_is_not_running_out() {
        struct Limit(f64);
        impl crate::detector::Context for Limit {
            fn limit(&self, metric: &str) -> Option<f64> {
                (metric == "container_spec_memory_limit_bytes").then_some(self.0)
            }
        }
        let run = |limit: f64| {
            let mut d = working_set();
            let ctx = Limit(limit);
            let mut exhausting = false;
            for i in 0..3000usize {
                let t = 1_767_600_000.0 + 15.0 * i as f64;
                let x = 1e8
                    * (1.0 + 0.002 * noise(i))
                    * (1.0 + (i.saturating_sub(2000)) as f64 * 0.005 / 4.0);
                d.observe(&Point {
                    t,
                    value: x,
                    context: &ctx,
                });
                exhausting |= d.exhausting();
            }
            exhausting
        };
        assert!(
            run(2e8),
            "at half its limit, a 30%-an-hour climb is running out"
        );
        assert!(!run(2e10), "at 0.5% of its limit it has days");
    }

    /// With its limit known and far, a climb that stops and holds flat
    /// (a working set that stepped up and stays) is not running out while
    /// the alert lingers: a window that does not climb never reaches the
    /// limit (a flat window once counted as "cannot say").
    #[test]
    fn a_climb_that_stops_far_below_its_limit_is_not_running_out() {
        struct Limit;
        impl crate::detector::Context for Limit {
            fn limit(&self, metric: &str) -> Option<f64> {
                (metric == "container_spec_memory_limit_bytes").then_some(2e10)
            }
        }
        let mut d = working_set();
        let mut alerted = false;
        for i in 0..3000usize {
            let t = 1_767_600_000.0 + 15.0 * i as f64;
            // A staircase: 4% more every 24 points (40% an hour), ten
            // steps, then flat. The window is flat the moment the last
            // step leaves it, while the alert still lingers.
            let steps = (i.clamp(2000, 2240) - 2000) / 24;
            let x = 1e8 * (1.0 + 0.04 * steps as f64);
            let s = d.observe(&Point {
                t,
                value: x,
                context: &Limit,
            });
            alerted |= s.alert;
            assert!(!d.exhausting(), "running out at point {i}");
        }
        assert!(alerted, "the climb itself is seen");
    }

    /// An old generation whose cycle is longer than the peaks the climb
    /// test remembers (eight windows): every cycle's top was a "new high"
    /// and a leak, 17 times a day per JVM on a generated fault-free day.
    /// Judged by what survives each collection it is no leak; floors that
    /// rise are one; a noisy count's chance falls are not collections, so
    /// its leak is still seen as a climb.
    #[test]
    fn a_long_sawtooth_is_judged_by_its_floors() {
        // 300 points a cycle (75 minutes at a 15 s scrape), floors that
        // wander by a few percent.
        let cycle = |i: usize, floor: f64| floor + 1.4 * (i % 300) as f64 + 4.0 * noise(i);
        // From its first collection on (before it, a plain series' first
        // climb is a climb: see the managed heap below).
        let mut d = LeakDetector::default();
        for i in 0..3000 {
            let floor = 300.0 + 15.0 * noise(i / 300 + 7);
            let alert = d.observe(cycle(i, floor)).alert;
            assert!(i < 300 || !alert, "sawtooth flagged at {i}");
        }
        // The floors start to rise: 60 a cycle.
        let mut first = None;
        for i in 3000..5000 {
            let s = d.observe(cycle(i, 300.0 + 60.0 * ((i - 3000) / 300) as f64));
            if s.alert && first.is_none() {
                first = Some(i);
                assert!(cycle(i, 0.0) < 5.0, "opens at a collection, not on a climb");
            }
        }
        let first = first.expect("rising floors are a leak");
        assert!(first < 3000 + 4 * 300, "found at {first}");
        // A managed heap's first climb, before any collection: a JVM that
        // just started. The plain detector calls it a leak.
        let start = |d: &mut LeakDetector| (0..280).any(|i| d.observe(cycle(i, 300.0)).alert);
        assert!(start(&mut LeakDetector::default()));
        assert!(!start(&mut LeakDetector::default().managed()));
        // Descriptors: 120 give or take 20, then a leak. Falls of a quarter
        // happen by chance in the noise; they are not collections.
        let mut d = LeakDetector::default();
        let fds = |i: usize| {
            120.0
                + 20.0 * noise(i)
                + if i >= 4000 {
                    4.0 * (i - 4000) as f64
                } else {
                    0.0
                }
        };
        let found = (0..4300).position(|i| d.observe(fds(i)).alert);
        assert!(found.is_some_and(|i| i >= 4000), "{found:?}");
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

    /// A container running a JVM: for most of an hour after it starts its
    /// working set climbs toward a plateau near its limit as the heap
    /// fills pages it never touched, the shape of a leak, and was one
    /// after every start. Beside what the heap holds (a young generation
    /// emptied every five scrapes, an old generation filling, then its
    /// sawtooth) that climb is the heap's, and no leak, nor is the climb
    /// after the JVM restarts in the same container; a native leak
    /// climbing beside the heap is one. A heap series first known a few
    /// scrapes after the working set makes no step.
    #[test]
    fn a_working_set_is_judged_beside_its_heap() {
        let limit = 2e9;
        let native = |i: usize| 0.3e9 * (1.0 + 0.005 * noise(i));
        let eden = 0.28e9;
        // The old generation of a JVM started at point `s`: filling over
        // 200 points (50 minutes at 15 s; after a restart, at night, 400),
        // then cycling.
        let old = |i: usize, s: usize| {
            let fill = if s == 0 { 200 } else { 400 };
            let i = i - s;
            if i < fill {
                0.07e9 + 1.05e9 * i as f64 / fill as f64
            } else {
                0.5e9 + 0.62e9 * ((i - fill) % 150) as f64 / 150.0
            }
        };
        let run = |known_from: Option<usize>, leak_per_hour: f64, restart: Option<usize>| {
            let mut d = LeakDetector::with_limit("limit").beside_heap();
            let mut alerts = 0;
            let mut touched: f64 = 0.0;
            for i in 0..1440usize {
                let t = i as f64 * 15.0;
                let start = match restart {
                    Some(r) if i >= r => {
                        if i == r {
                            touched = 0.0;
                        }
                        r
                    }
                    _ => 0,
                };
                let heap = [eden * (i % 5) as f64 / 5.0, old(i, start)];
                touched = touched.max(old(i, start) + eden);
                let leak = leak_per_hour * (i.saturating_sub(400) as f64 * 15.0 / 3600.0);
                let ws = native(i) + touched + leak;
                let h = known_from.filter(|&k| i >= k).map(|_| &heap[..]);
                if d.observe_beside(t, ws, Some(limit), h).alert {
                    alerts += 1;
                }
            }
            alerts
        };
        assert!(
            run(None, 0.0, None) > 0,
            "without the heap the start-up is a climb"
        );
        assert_eq!(run(Some(0), 0.0, None), 0, "beside its heap it is none");
        assert_eq!(
            run(Some(5), 0.0, None),
            0,
            "nor when the heap is known late"
        );
        assert!(
            run(None, 0.0, Some(700)) > 0,
            "without the heap a restart's climb is one"
        );
        assert_eq!(
            run(Some(0), 0.0, Some(700)),
            0,
            "a restart's climb beside its heap is none"
        );
        assert!(
            run(Some(0), 0.8e9, None) > 0,
            "a native leak beside its heap is one"
        );
    }

    /// A climb slower than the pace rule (15% of its level an hour) is a
    /// leak when it reaches its known limit within hours: at 85% of its
    /// limit it has one (watched for 40 minutes, still below the limit).
    /// The same pace far from its limit, or with no limit known, is not
    /// one.
    #[test]
    fn a_slow_climb_near_its_limit_is_a_leak() {
        let run = |start: f64, limit: Option<f64>| {
            let mut d = LeakDetector::with_limit("limit");
            let mut alerts = 0;
            for i in 0..400usize {
                let t = i as f64 * 15.0;
                let climb = if i > 240 {
                    start * 0.15 * (i - 240) as f64 * 15.0 / 3600.0
                } else {
                    0.0
                };
                let x = (start + climb) * (1.0 + 0.002 * noise(i));
                if d.observe_against(t, x, limit).alert {
                    alerts += 1;
                }
            }
            alerts
        };
        assert!(run(1.7e9, Some(2e9)) > 0, "at 85% of its limit");
        assert_eq!(run(0.2e9, Some(2e9)), 0, "at 10% of its limit");
        assert_eq!(run(1.7e9, None), 0, "no limit known");
    }
}
