//! Recurring onsets: a signal whose alerts start on a schedule.
//!
//! Why: a batch job that runs every hour makes the same signal (its
//! service's error share, a database's latency, a queue's depth) depart
//! from its baseline every hour. The seasonal baseline knows daily and
//! weekly rhythms only, and a sub-daily rhythm of a few minutes' burst is
//! too short and too sparse for it to learn; so every run reads as a new
//! outage. Operators answer this by hand with Alertmanager's
//! `mute_time_intervals` (a silence on the job's schedule). Here the
//! schedule is learned from the signal's own onsets: when its last onsets
//! are evenly spaced (three even gaps of at least
//! [`MIN_PERIOD_MS`], within a tolerance), the next onset on that spacing
//! is a recurrence. It is still reported, with the period in its detail,
//! and still joins an incident open at its place as evidence; it just does
//! not open one (see `Correlator::observe_onset`).
//!
//! Onsets off the schedule are not affected: a fault on a signal that also
//! bursts every hour still opens an incident. Resources running out are
//! never treated as recurring (a container OOM-killed every hour is a
//! leak, not a schedule).
//!
//! Causal and bounded: only onsets up to the current one are used; at most
//! three onsets per signal and [`MAX_SIGNALS`] signals are kept.

use models::Signal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Shortest period learned: faults injected or occurring minutes apart
/// must not look like a schedule.
pub const MIN_PERIOD_MS: i64 = 10 * 60_000;
/// Longest period learned (a daily job, with slack).
pub const MAX_PERIOD_MS: i64 = 26 * 3_600_000;
/// Onsets agree with a schedule within this share of its period, and
/// never closer than [`MIN_TOLERANCE_MS`] (an onset is only known to the
/// analysis window or scrape interval that saw it, a minute at typical
/// scrapes). The share is also about the chance that a fault on a signal
/// with a schedule lands on it by coincidence (twice the share).
const TOLERANCE: f64 = 0.05;
const MIN_TOLERANCE_MS: f64 = 90_000.0;
/// Evenly spaced gaps (four onsets in all) before a spacing counts as a
/// schedule.
const GAPS: usize = 3;
/// Runs in a row a schedule may skip (runs whose burst stayed inside the
/// band, as a job's effect often does at night's low traffic).
const MAX_SKIPPED: f64 = 3.0;
/// Signals whose onsets are kept; beyond it new signals are not tracked.
pub const MAX_SIGNALS: usize = 100_000;

fn tolerance(period: i64) -> f64 {
    (TOLERANCE * period as f64).max(MIN_TOLERANCE_MS)
}

/// How many periods `p` the gap `gap` spans, rounded, when that is one
/// run or one after up to [`MAX_SKIPPED`] unnoticed ones.
fn runs_in(gap: f64, p: f64) -> Option<f64> {
    let k = (gap / p).round();
    (1.0..=1.0 + MAX_SKIPPED).contains(&k).then_some(k)
}

/// The period (ms) of onsets `earlier` (oldest first) and `t` when their
/// last three gaps keep a schedule: at least two of them one period
/// apart and the others a whole number of periods (runs that passed
/// unnoticed, up to three in a row), each within the tolerance,
/// the period between [`MIN_PERIOD_MS`] and [`MAX_PERIOD_MS`]. Two single
/// periods are needed so that a fault half-way between runs cannot make a
/// schedule of half the period.
pub fn even_spacing(earlier: &[i64], t: i64) -> Option<i64> {
    if earlier.len() < GAPS {
        return None;
    }
    let last = &earlier[earlier.len() - GAPS..];
    let gaps: Vec<i64> = last
        .iter()
        .zip(last.iter().skip(1).chain(std::iter::once(&t)))
        .map(|(a, b)| b - a)
        .collect();
    let shortest = *gaps.iter().min()?;
    let tol = tolerance(shortest);
    let single: Vec<i64> = gaps
        .iter()
        .copied()
        .filter(|&g| ((g - shortest) as f64) <= 2.0 * tol)
        .collect();
    if single.len() < 2 {
        return None;
    }
    // The period from the single gaps, then refitted over all of them (a
    // gap of four periods pins the period four times as well as one).
    let first = single.iter().sum::<i64>() as f64 / single.len() as f64;
    let runs: Vec<f64> = gaps
        .iter()
        .map(|&g| runs_in(g as f64, first))
        .collect::<Option<_>>()?;
    let p = gaps.iter().sum::<i64>() as f64 / runs.iter().sum::<f64>();
    if !(MIN_PERIOD_MS as f64..=MAX_PERIOD_MS as f64).contains(&p) {
        return None;
    }
    let tol = tolerance(p as i64);
    gaps.iter()
        .zip(&runs)
        .all(|(&g, k)| (g as f64 - k * p).abs() <= tol)
        .then_some(p.round() as i64)
}

/// One signal's onsets and the schedule learned from them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Onsets {
    /// The last [`GAPS`] onsets, oldest first.
    recent: Vec<i64>,
    /// A learned schedule: its period and the last onset on it.
    schedule: Option<(i64, i64)>,
}

impl Onsets {
    fn onset(&mut self, t: i64) -> Option<i64> {
        // On a known schedule: a whole number of periods (one, or a few
        // when runs passed unnoticed) after its last run. An onset off the
        // schedule (a fault) leaves the schedule as it was.
        let on_schedule = self.schedule.and_then(|(p, last)| {
            let gap = (t - last) as f64;
            let k = runs_in(gap, p as f64)?;
            ((gap - k * p as f64).abs() <= tolerance(p)).then_some(p)
        });
        // Or the start of one: the last onsets evenly spaced.
        let found = on_schedule.or_else(|| even_spacing(&self.recent, t));
        if let Some(p) = found {
            self.schedule = Some((p, t));
        }
        if self.recent.len() >= GAPS {
            self.recent.remove(0);
        }
        self.recent.push(t);
        found
    }
}

/// Recent onsets per signal.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Recurrences {
    #[serde(with = "pairs")]
    onsets: BTreeMap<Signal, Onsets>,
}

impl Recurrences {
    /// Record an onset of `signal` at `t` (ms) and return the period of
    /// the schedule it keeps, if it keeps one.
    pub fn onset(&mut self, signal: &Signal, t: i64) -> Option<i64> {
        if let Some(o) = self.onsets.get_mut(signal) {
            return o.onset(t);
        }
        if self.onsets.len() >= MAX_SIGNALS {
            return None;
        }
        self.onsets.entry(signal.clone()).or_default().onset(t)
    }
}

/// A map with struct keys as a list of pairs (JSON maps need string keys).
mod pairs {
    use super::Onsets;
    use models::Signal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(m: &BTreeMap<Signal, Onsets>, s: S) -> Result<S::Ok, S::Error> {
        let v: Vec<(&Signal, &Onsets)> = m.iter().collect();
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Signal, Onsets>, D::Error> {
        Ok(Vec::<(Signal, Onsets)>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::SignalKind;

    const MIN: i64 = 60_000;

    fn signal() -> Signal {
        Signal {
            kind: SignalKind::ErrorRate,
            name: String::new(),
            service: Some("billing".into()),
            host: None,
            container: None,
        }
    }

    #[test]
    fn an_hourly_job_recurs_from_its_fourth_run_with_jitter() {
        let mut r = Recurrences::default();
        let s = signal();
        // Runs at about every hour, each onset a minute early or late.
        let runs = [0, 61, 119, 180, 241, 299];
        let periods: Vec<Option<i64>> = runs.iter().map(|m| r.onset(&s, m * MIN)).collect();
        assert_eq!(&periods[..3], &[None, None, None]);
        for p in &periods[3..] {
            let p = p.expect("on schedule");
            assert!((58 * MIN..=62 * MIN).contains(&p), "{p}");
        }
    }

    #[test]
    fn a_missed_run_keeps_the_schedule_and_an_onset_off_it_does_not_recur() {
        let mut r = Recurrences::default();
        let s = signal();
        for m in [0, 60, 120] {
            assert_eq!(r.onset(&s, m * MIN), None);
        }
        assert_eq!(r.onset(&s, 180 * MIN), Some(60 * MIN));
        // A fault half-way between runs is not on the schedule, and does
        // not move it: the next run is still one.
        assert_eq!(r.onset(&s, 210 * MIN), None);
        assert_eq!(r.onset(&s, 240 * MIN), Some(60 * MIN));
        // Three runs pass unnoticed; the fourth is on the schedule.
        assert_eq!(r.onset(&s, 481 * MIN), Some(60 * MIN));
        // Far later, the schedule is no evidence.
        assert_eq!(r.onset(&s, 900 * MIN), None);
    }

    #[test]
    fn a_schedule_is_learned_across_unnoticed_runs_but_not_from_half_periods() {
        // Runs at night went unnoticed: gaps of 1, 4 and 1 periods, each
        // onset a minute or two off.
        assert_eq!(
            even_spacing(&[0, 59 * MIN, 301 * MIN], 359 * MIN),
            Some(60 * MIN - 10_000)
        );
        // Two runs and a fault half-way: not a half-hour schedule.
        assert_eq!(even_spacing(&[0, 61 * MIN, 120 * MIN], 150 * MIN), None);
    }

    #[test]
    fn onsets_minutes_apart_or_irregular_are_not_a_schedule() {
        // Faults injected every five minutes: below the shortest period.
        assert_eq!(even_spacing(&[0, 5 * MIN, 10 * MIN], 15 * MIN), None);
        // Irregular gaps (the spacing of real fault injections).
        assert_eq!(even_spacing(&[0, 17 * MIN, 30 * MIN], 60 * MIN), None);
        assert_eq!(even_spacing(&[0, 16 * MIN, 29 * MIN], 40 * MIN), None);
        // Too few onsets.
        assert_eq!(even_spacing(&[0, 60 * MIN], 120 * MIN), None);
    }

    #[test]
    fn the_onsets_survive_a_checkpoint() {
        let mut r = Recurrences::default();
        for i in 0..3 {
            let mut s = signal();
            s.service = Some(format!("s{i}"));
            r.onset(&s, 0);
        }
        let json = serde_json::to_string(&r).unwrap();
        let back: Recurrences = serde_json::from_str(&json).unwrap();
        assert_eq!(back.onsets.len(), 3);
    }
}
