//! The [`Detector`] trait: what every anomaly detector is to the rest of
//! Remedy, and the alert logic they share.
//!
//! A detector is a small state machine over one signal: it is shown the
//! signal's points in time order, one at a time, and answers each with a
//! [`Score`] (how surprising the point is, and whether the detector is in
//! alert). That is the whole contract, and it is deliberately narrow:
//!
//! - **One point at a time, causal.** A score at time t may use nothing
//!   after t. This is what lets the same detector run in a bounded replay
//!   and in a stream that never ends, with the same answers.
//! - **A score and a decision, separately.** The score (in [0, 1]) is for
//!   ranking and plotting; the decision (`alert`) is what opens an anomaly.
//!   Detectors differ in how they score; they should not differ in what an
//!   alert *means*: one episode, one alert. That is why the episode logic
//!   lives here ([`Hysteresis`] for "open after n triggering points, close
//!   after m calm ones", [`HoldOff`] for "once, then not again for n rows")
//!   and not inside each detector.
//! - **A name.** It is written into every anomaly the detector opens
//!   (`detector` in `anomalies.jsonl`), so it is part of the output
//!   contract: renaming one changes outputs.
//! - **Plain data.** The streaming service checkpoints the whole engine,
//!   every signal's detector included, and another instance carries on from
//!   it; so a detector is serde-serialisable (a supertrait, so a detector
//!   that cannot be checkpointed does not compile) and holds no handles,
//!   clocks or caches that would not survive the trip. Which *type* a
//!   stored detector is, is the registry's business
//!   ([`crate::detectors::AnyDetector`], a serde-tagged enum), which keeps
//!   the trait free of type tags and the checkpoint free of trait objects.
//!
//! Anything a detector needs besides the value (the record count that makes
//! an error count a share, the limit that makes memory a fraction) comes
//! through [`Context`], asked for only by the detectors that need it, so the
//! engine pays for the look-up only where it is used.

use serde::{de::DeserializeOwned, Serialize};

/// One point's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Calibrated anomaly score in [0, 1].
    pub score: f64,
    /// The detector's decision (inside an alert episode). A point with
    /// nothing to judge (a share over no records) must not be in alert:
    /// the engine keeps an incident open for as long as its signals alert.
    pub alert: bool,
    /// Baseline expectation at this point.
    pub expected: f64,
    /// Spread around the expectation (a standard deviation's worth).
    pub spread: f64,
}

impl Score {
    /// The result for a missing (non-finite) value: no score, alert unchanged.
    pub(crate) fn missing(alert: bool) -> Score {
        Score {
            score: 0.0,
            alert,
            expected: f64::NAN,
            spread: f64::NAN,
        }
    }
}

/// What the caller knows beside a point's value. Both questions are asked
/// lazily, by the detectors that need them: most detectors look at the
/// value alone, and the engine should not look anything up for them.
pub trait Context {
    /// Records the signal's service wrote in the point's window: the
    /// denominator that turns a count of error records into a share.
    fn records(&self) -> Option<f64> {
        None
    }

    /// The latest value of the limit series `metric` (such as
    /// `container_spec_memory_limit_bytes`) for the signal's container or
    /// host: what turns a usage into a fraction of its limit.
    fn limit(&self, metric: &str) -> Option<f64> {
        let _ = metric;
        None
    }

    /// What the heap of a garbage-collected runtime in the signal's
    /// container holds now, pool by pool (a JVM's young and old
    /// generations), in an order that stays the same, when the data has
    /// it: the container's working set holds at least the most each pool
    /// has held.
    fn heap_pools(&self) -> Option<&[f64]> {
        None
    }

    /// What the signal's peers (the same kind of record at the other
    /// services) say its share should be before its own history does.
    fn share_prior(&self) -> Option<crate::detectors::share::SharePrior> {
        None
    }
}

/// A context that knows nothing: a lone series (`remedy detect`, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoContext;

impl Context for NoContext {}

/// One point of a signal, as a detector sees it.
#[derive(Clone, Copy)]
pub struct Point<'a> {
    /// Event time, seconds since the Unix epoch.
    pub t: f64,
    /// The value; non-finite means missing.
    pub value: f64,
    /// What else is known at this point.
    pub context: &'a dyn Context,
}

impl<'a> Point<'a> {
    /// A point of a lone series, with no context.
    pub fn new(t: f64, value: f64) -> Point<'a> {
        Point {
            t,
            value,
            context: &NoContext,
        }
    }
}

/// An anomaly detector over one signal. See the module docs for the
/// contract; [`crate::detectors`] for the registry that chooses one per
/// signal and names the methods of `remedy detect`.
///
/// Implementations keep their own typed constructors and settings (a
/// detector is built by the registry, which knows what it wants); the
/// trait is only what the engine and `remedy detect` need once it exists.
pub trait Detector: Serialize + DeserializeOwned {
    /// The name written into the anomalies this detector opens.
    fn name(&self) -> &'static str;

    /// Score one point (in time order), then learn from it.
    fn observe(&mut self, point: &Point<'_>) -> Score;

    /// Whether the alert in progress says a resource is running out: a
    /// steady climb that sets new highs (a leak), or a threshold on the
    /// share of a known limit. A gauge that jumped to a new level and
    /// stays there changed; it is not heading anywhere, and calling it a
    /// leak (with a restart planned for it) is the commonest false alarm
    /// on real memory series. Most detectors cannot tell: `false`.
    fn exhausting(&self) -> bool {
        false
    }

    /// For a share detector: the (flagged, all) records it has learned,
    /// which its peers' prior is fitted from (see
    /// [`Context::share_prior`]). Other detectors: `None`.
    fn learned_share(&self) -> Option<(f64, f64)> {
        None
    }
}

impl<D: Detector> Detector for Box<D> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn observe(&mut self, point: &Point<'_>) -> Score {
        (**self).observe(point)
    }

    fn exhausting(&self) -> bool {
        (**self).exhausting()
    }

    fn learned_share(&self) -> Option<(f64, f64)> {
        (**self).learned_share()
    }
}

/// Alert state with hysteresis, shared by every detector that keeps an
/// alert open over an episode: an alert opens after `open_after`
/// consecutive triggering points and closes after `close_after`
/// consecutive calm ones, so one episode is one alert.
///
/// Why two thresholds: a score that hovers around a single threshold
/// would open and close an alert on every crossing, and each opening is a
/// new anomaly to the correlator. Triggering high and calming low (with
/// a count of calm points) turns a noisy episode into one alert; waiting
/// for `open_after` triggering points in a row ignores one-point blips.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Hysteresis {
    pub(crate) in_alert: bool,
    streak: usize,
    quiet: usize,
}

impl Hysteresis {
    /// Fold in one point: whether it triggers (counts toward opening) and
    /// whether it is calm (counts toward closing). Returns the alert state.
    pub fn update(
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

/// A gate that lets one event through and then none for a number of rows:
/// the hold-off of detectors that decide on single rows (a report, a
/// decision) rather than keep an alert open, so that a climb that goes on,
/// or resumes after a one-row dip, is still one event.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct HoldOff {
    /// Rows since the last event let through (saturating).
    since: usize,
}

impl Default for HoldOff {
    fn default() -> Self {
        // Nothing let through yet: the first event passes.
        HoldOff { since: usize::MAX }
    }
}

impl HoldOff {
    /// Count one row; `want` asks to let an event through on it. Returns
    /// whether it passes: only if more than `rows` rows have gone by since
    /// the last one that did.
    pub fn pass(&mut self, want: bool, rows: usize) -> bool {
        self.since = self.since.saturating_add(1);
        if want && self.since > rows {
            self.since = 0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis_makes_one_episode_one_alert() {
        let mut h = Hysteresis::default();
        // Two triggering points to open, three calm ones to close.
        let seq = [
            (true, false),
            (false, true),
            (true, false),
            (true, false),
            (false, true),
            (false, false),
            (false, true),
            (false, true),
            (false, true),
            (false, true),
        ];
        let alerts: Vec<bool> = seq.iter().map(|&(t, c)| h.update(t, c, 2, 3)).collect();
        assert_eq!(
            alerts,
            [false, false, false, true, true, true, true, true, false, false]
        );
    }

    #[test]
    fn hold_off_passes_once_per_span() {
        let mut g = HoldOff::default();
        let passed: Vec<bool> = (0..8).map(|_| g.pass(true, 2)).collect();
        assert_eq!(
            passed,
            [true, false, false, true, false, false, true, false]
        );
        assert!(!g.pass(false, 0), "nothing asked, nothing passes");
    }
}
