//! From anomalies to incidents, and from incidents to ranked root causes.
//!
//! **Grouping.** Anomalies arrive in event time. One joins an open incident
//! at the same place (a service or container of it, or a host-level signal
//! and a service placed on that host) within [`CorrelatorConfig::gap_secs`]
//! of that incident's latest anomaly (unless it is a fresh alert of a
//! signal the incident already holds, more than `gap_secs` after the
//! incident began or after that signal had been out of alert for
//! [`CorrelatorConfig::resolve_after_secs`]: a new episode); or, at another service, when a direct
//! call links it to one of the incident's services and its onset comes
//! within [`CorrelatorConfig::link_secs`] of the incident's latest onset,
//! while the incident is younger than `gap_secs`. Anything else opens an
//! incident of its own: a strong onset elsewhere is not swallowed by an
//! unrelated incident that happens to be open, and a dense call graph does
//! not fuse a day into one incident.
//! The topology is the configured edges ([`CorrelatorConfig::topology`];
//! replay reads a generator manifest's) plus those learned from the data
//! with [`Correlator::learn_edge`] (the engine learns A -> B when a warning
//! or error of A names service B). One fault therefore yields one incident,
//! not one per symptom.
//!
//! **Resolution.** An incident resolves when none of its signals has been
//! anomalous for [`CorrelatorConfig::resolve_after_secs`]: the detectors'
//! hysteresis only stops flagging a signal once it is back inside its band.
//!
//! **Ranking.** Each anomaly suggests a root-cause class and target from what
//! its signal measures (memory, descriptors, threads, disk, CPU or lag,
//! errors, latency). Candidates score higher when they start earlier, when
//! they are resource signals (causes come before symptoms), when they lie
//! further down the dependency direction (the callee fails first), and when
//! a change event on the same service shortly precedes the onset.

use crate::hash::FastSet;
use crate::recurrence::Recurrences;
use models::{
    Anomaly, AnomalyKind, ChangeEvent, ChangeKind, Evidence, Incident, IncidentStatus, RootCause,
    RootCauseClass, SignalKind, Target, Timestamp,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Correlation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrelatorConfig {
    /// Largest gap between related anomalies of one incident.
    pub gap_secs: u64,
    /// Quiet time after which an incident resolves.
    pub resolve_after_secs: u64,
    /// How long before onset a change still counts as the suspect.
    pub change_lookback_secs: u64,
    /// Configured dependencies: `caller -> [callees]`.
    pub topology: BTreeMap<String, Vec<String>>,
    /// Cap on anomalies kept per incident (the first ones matter most for
    /// ranking; later ones are counted).
    pub max_anomalies_per_incident: usize,
    /// Largest gap between the onset of an anomaly at another service and
    /// the incident's latest onset for a call between them to join the
    /// two: a failure propagates to its callers within seconds to a
    /// minute, so a link much later is a coincidence, not the same fault.
    pub link_secs: u64,
}

impl Default for CorrelatorConfig {
    fn default() -> Self {
        CorrelatorConfig {
            gap_secs: 600,
            resolve_after_secs: 300,
            change_lookback_secs: 900,
            topology: BTreeMap::new(),
            max_anomalies_per_incident: 500,
            link_secs: 120,
        }
    }
}

/// An incident still being built.
#[derive(Serialize, Deserialize)]
struct Open {
    start: Timestamp,
    /// Latest time any of its signals was anomalous (for resolution).
    last: Timestamp,
    /// Latest anomaly onset (for grouping: a long-lasting alert must not
    /// make an incident a magnet for every later anomaly).
    last_onset: Timestamp,
    anomalies: Vec<Anomaly>,
    dropped: u64,
    services: BTreeSet<String>,
    hosts: BTreeSet<String>,
    containers: BTreeSet<String>,
    /// Hosts of host-level anomalies (a signal naming a host and neither
    /// a service nor a container): only these join the services placed on
    /// them. Two services that merely share a node are not one place.
    #[serde(default)]
    host_level: BTreeSet<String>,
    /// Templates never seen before that appeared at the incident's
    /// services, and anomalous sessions (requests through a rare template)
    /// that started there: evidence, not symptoms (they neither open an
    /// incident nor keep one open, and do not vote in the ranking).
    #[serde(default)]
    templates: Vec<NewTemplate>,
    /// When each of its signals was last in alert (its onset, then every
    /// alerting point), for [`new_episode`]. One entry per signal of
    /// `anomalies`, so bounded as they are. (Absent in checkpoints written
    /// before it: then the signal's latest onset stands in.)
    #[serde(default)]
    alerting: Vec<(models::Signal, Timestamp)>,
    /// Services whose latency rose with a start of theirs and stayed above
    /// its band after the warm-up ([`Correlator::observe_held`]): a slower
    /// release, which makes their change a suspect as errors do.
    #[serde(default)]
    regressed: BTreeSet<String>,
}

impl Open {
    /// When `signal` was last in alert in this incident, if it is one of
    /// its signals.
    fn last_alert(&self, signal: &models::Signal) -> Option<Timestamp> {
        let onset = self
            .anomalies
            .iter()
            .filter(|b| &b.signal == signal)
            .map(|b| b.timestamp)
            .max()?;
        let touched = self
            .alerting
            .iter()
            .find(|(s, _)| s == signal)
            .map(|&(_, t)| t);
        Some(touched.map_or(onset, |t| t.max(onset)))
    }

    /// Take `a` into the incident: its place, and the anomaly itself while
    /// fewer than `cap` are kept (counted beyond).
    fn take(&mut self, a: Anomaly, cap: usize) {
        self.place(&a);
        if self.anomalies.len() < cap {
            self.alerted(&a.signal, a.timestamp);
            self.anomalies.push(a);
        } else {
            self.dropped += 1;
        }
    }

    /// Add the place of `a` (its service, host, container) to the
    /// incident's.
    fn place(&mut self, a: &Anomaly) {
        if let Some(s) = &a.signal.service {
            self.services.insert(s.clone());
        }
        if let Some(h) = &a.signal.host {
            self.hosts.insert(h.clone());
        }
        if let Some(c) = &a.signal.container {
            self.containers.insert(c.clone());
        }
        if let (Some(h), None, None) = (&a.signal.host, &a.signal.service, &a.signal.container) {
            self.host_level.insert(h.clone());
        }
    }

    /// Note that `signal`, one of the incident's, is in alert at `at`.
    fn alerted(&mut self, signal: &models::Signal, at: Timestamp) {
        match self.alerting.iter_mut().find(|(s, _)| s == signal) {
            Some((_, t)) => *t = (*t).max(at),
            None => self.alerting.push((signal.clone(), at)),
        }
    }
}

/// A log template seen for the first time (an error-level message).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewTemplate {
    /// The anomaly reported for it.
    pub anomaly: Anomaly,
    /// The first message of that template.
    pub example: String,
    /// Records of it seen since.
    pub count: u64,
}

/// New templates kept per incident.
const MAX_TEMPLATES_PER_INCIDENT: usize = 10;
/// How long a new template, or a cause-side anomaly, waits for an
/// incident at its place to open.
const TEMPLATE_WAIT_MS: i64 = 5 * 60_000;
/// New templates, and cause-side anomalies, kept waiting at most (the
/// oldest go first).
const MAX_WAITING: usize = 256;

fn add_template(o: &mut Open, t: NewTemplate) {
    if o.templates.len() < MAX_TEMPLATES_PER_INCIDENT
        && !o
            .templates
            .iter()
            .any(|x| x.anomaly.signal.name == t.anomaly.signal.name)
    {
        o.templates.push(t);
    }
}

/// Drop from a waiting queue (oldest first) what has waited longer than
/// [`TEMPLATE_WAIT_MS`] by `now`, and the oldest while it holds `cap` or
/// more: new templates and cause-side anomalies wait for an incident to
/// open at their place, for a few minutes and in bounded numbers.
fn expire_waiting<T>(q: &mut VecDeque<T>, now: i64, cap: usize, at: impl Fn(&T) -> i64) {
    while q.front().is_some_and(|x| now - at(x) > TEMPLATE_WAIT_MS) || q.len() >= cap {
        q.pop_front();
    }
}

/// Take out of a waiting queue, in order, what `wanted` accepts.
fn take_waiting<T>(q: &mut VecDeque<T>, mut wanted: impl FnMut(&T) -> bool) -> Vec<T> {
    let mut taken = Vec::new();
    let mut i = 0;
    while i < q.len() {
        if wanted(&q[i]) {
            taken.push(q.remove(i).expect("index checked"));
        } else {
            i += 1;
        }
    }
    taken
}

/// Groups anomalies into incidents and ranks their root causes.
#[derive(Serialize, Deserialize)]
pub struct Correlator {
    cfg: CorrelatorConfig,
    /// caller -> callees, configured and learned.
    edges: BTreeSet<(String, String)>,
    open: Vec<Open>,
    changes: VecDeque<ChangeEvent>,
    /// service -> hosts it runs on, learned from the data.
    placement: BTreeMap<String, BTreeSet<String>>,
    placement_len: usize,
    /// New templates not yet attached to an incident, oldest first.
    #[serde(default)]
    pending_templates: VecDeque<NewTemplate>,
    /// Cause-side anomalies (see [`Correlator::opens`]) that came while no
    /// incident was open at their place, oldest first: a cause comes before
    /// its symptoms, so it waits a few minutes for one to open there.
    #[serde(default)]
    pending_causes: VecDeque<Anomaly>,
    /// Recent error origins (a trace's first error-level record: where a
    /// request failed), oldest first, for ranking.
    #[serde(default)]
    origins: VecDeque<(Timestamp, String)>,
    /// Error origins per service over all the data so far: the share each
    /// service usually has, against which an incident's share is judged.
    #[serde(default)]
    origin_totals: BTreeMap<String, u64>,
    /// The latest CPU use as a share of its limit per place (container,
    /// else host), from the `_ratio` series that say so: whether a CPU
    /// that rose is saturated or merely busier.
    #[serde(default)]
    cpu_fill: BTreeMap<String, f64>,
    /// Recent onsets per signal: alerts that start on a schedule (see
    /// [`crate::recurrence`]).
    #[serde(default)]
    recurrences: Recurrences,
    /// The instances (pods, containers) seen per service: when the service
    /// was first seen, and their names.
    #[serde(default)]
    instances: BTreeMap<String, Instances>,
    #[serde(default)]
    instances_len: usize,
    /// Starts of new instances, oldest first: deploy and scale change
    /// events, and instances that appeared after their service's first
    /// minutes (a deploy, a scale-out, a replaced pod no event announced).
    #[serde(default)]
    starts: VecDeque<(Timestamp, String)>,
    /// Latency rises held while their service started (see
    /// [`Correlator::starting_up`]), with their signal's values since:
    /// judged when the start's warm-up is over ([`Correlator::observe_held`]).
    /// Oldest first, bounded.
    #[serde(default)]
    held_starts: VecDeque<Held>,
    /// Hashes of the (service, host) and (service, instance) pairs already
    /// in `placement` and `instances`: every record names them, and a hash
    /// lookup is several times cheaper than the sorted maps' string
    /// comparisons, which showed in profiles of the analysis thread. A
    /// cache, not state: not checkpointed (it refills), and no larger than
    /// the maps it mirrors.
    #[serde(skip)]
    known_pairs: FastSet<u64>,
}

/// A latency rise held while its service started, and its signal's values
/// (event time ms, value) over the last [`JUDGED_SPAN_MS`], at most
/// [`MAX_HELD_VALUES`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Held {
    anomaly: Anomaly,
    values: VecDeque<(i64, f64)>,
}

/// How long after a service's latest start its latency is judged against
/// what it was before: new instances warm up (caches, connection pools, a
/// JIT compiling the hot paths) for minutes, not for ten. Canary analysis
/// (Spinnaker's Kayenta) likewise skips a warm-up before comparing a new
/// version's metrics with the old one's.
const WARM_UP_MS: i64 = 10 * 60_000;
/// The span before that moment whose values are judged (their median).
const JUDGED_SPAN_MS: i64 = 3 * 60_000;
const MAX_HELD_VALUES: usize = 64;

/// A service's instances (see [`Correlator::learn_instance`]).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Instances {
    first_ms: i64,
    names: BTreeSet<String>,
}

/// Instances first seen within this long of their service are the ones it
/// had when the data began (each shows with its first record, which for a
/// quiet one may take a while); one seen later started then.
const FIRST_INSTANCES_MS: i64 = 5 * 60_000;

/// Whether `a` is a latency signal: a quantile, or a series whose name
/// says duration or latency.
fn is_latency(a: &Anomaly) -> bool {
    let name = a.signal.name.to_ascii_lowercase();
    a.signal.kind == SignalKind::LatencyQuantile
        || ((a.signal.kind == SignalKind::MetricSeries || a.signal.kind == SignalKind::CounterRate)
            && ["duration", "latency"].iter().any(|w| name.contains(w)))
}

/// Whether `a` is a new episode rather than more of incident `o`: a
/// signal already in the incident that alerts afresh (its earlier alert
/// had ended, or the detector would not report an onset) either more than
/// `gap` after the incident began, or after it had been out of alert for
/// longer than `quiet` (the time after which an incident with nothing in
/// alert resolves: a signal that has been calm that long has resolved its
/// own part). Same-place anomalies otherwise join for as long as the
/// incident's signals stay anomalous, which is right for a leak whose
/// errors follow its climb, but a long-lasting alert (a latency that stays
/// high, a metric of another of its signals) then makes the incident
/// swallow every later fault at that service: the second and third failure
/// of a service reported as the first one going on.
fn new_episode(o: &Open, a: &Anomaly, gap: i64, quiet: i64) -> bool {
    let t = a.timestamp.as_millis();
    let Some(last) = o.last_alert(&a.signal) else {
        return false;
    };
    t - o.start.as_millis() > gap || t - last.as_millis() > quiet
}

/// Classes whose prior is below this only join incidents (see `observe`).
const SYMPTOM_PRIOR: f64 = 0.2;

/// How long error origins are kept for ranking.
const ORIGIN_KEEP_MS: i64 = 30 * 60_000;
/// Cap on recent origins and on services with an origin count.
const MAX_ORIGINS: usize = 100_000;
/// An incident's onset period, over which its error origins are counted:
/// from a minute before its first anomaly to five minutes after.
const ORIGIN_BEFORE_MS: i64 = 60_000;
const ORIGIN_AFTER_MS: i64 = 5 * 60_000;

/// Cap on learned (service, host) pairs: hostile input cannot grow it.
const MAX_PLACEMENTS: usize = 10_000;

impl Correlator {
    /// A correlator with the configured topology.
    pub fn new(cfg: CorrelatorConfig) -> Self {
        let edges = cfg
            .topology
            .iter()
            .flat_map(|(a, bs)| bs.iter().map(move |b| (a.clone(), b.clone())))
            .collect();
        Correlator {
            cfg,
            edges,
            open: Vec::new(),
            changes: VecDeque::new(),
            placement: BTreeMap::new(),
            placement_len: 0,
            pending_templates: VecDeque::new(),
            pending_causes: VecDeque::new(),
            origins: VecDeque::new(),
            origin_totals: BTreeMap::new(),
            cpu_fill: BTreeMap::new(),
            recurrences: Recurrences::default(),
            instances: BTreeMap::new(),
            instances_len: 0,
            starts: VecDeque::new(),
            held_starts: VecDeque::new(),
            known_pairs: FastSet::default(),
        }
    }

    /// The hash of a (service, other) pair in `known_pairs`; `kind` keeps
    /// placements and instances apart.
    fn pair_hash(&self, kind: u8, service: &str, other: &str) -> u64 {
        use std::hash::BuildHasher;
        self.known_pairs.hasher().hash_one((kind, service, other))
    }

    /// Learn that `service` runs on `host` (a log line or a series labelled
    /// with both). A host-level anomaly (CPU steal, a full disk) and a
    /// symptom of a service on that host are then one incident.
    pub fn learn_placement(&mut self, service: &str, host: &str) {
        let h = self.pair_hash(0, service, host);
        if self.known_pairs.contains(&h) {
            return;
        }
        if self
            .placement
            .get(service)
            .is_some_and(|hs| hs.contains(host))
        {
            self.known_pairs.insert(h);
            return;
        }
        if self.placement_len >= MAX_PLACEMENTS {
            return;
        }
        self.known_pairs.insert(h);
        self.placement
            .entry(service.to_string())
            .or_default()
            .insert(host.to_string());
        self.placement_len += 1;
    }

    fn runs_on(&self, service: &str, host: &str) -> bool {
        self.placement
            .get(service)
            .is_some_and(|hs| hs.contains(host))
    }

    /// Learn that `caller` depends on `callee` (seen in the data).
    pub fn learn_edge(&mut self, caller: &str, callee: &str) {
        if caller != callee && self.edges.len() < 10_000 {
            self.edges.insert((caller.to_string(), callee.to_string()));
        }
    }

    /// A request failed at `service` (its trace's first error, see
    /// [`crate::traces`]).
    pub fn observe_origin(&mut self, service: &str, at: Timestamp) {
        while self
            .origins
            .front()
            .is_some_and(|(t, _)| at.as_millis() - t.as_millis() > ORIGIN_KEEP_MS)
            || self.origins.len() >= MAX_ORIGINS
        {
            self.origins.pop_front();
        }
        self.origins.push_back((at, service.to_string()));
        if let Some(n) = self.origin_totals.get_mut(service) {
            *n += 1;
        } else if self.origin_totals.len() < MAX_ORIGINS {
            self.origin_totals.insert(service.to_string(), 1);
        }
    }

    /// Each service's excess share of the error origins in an incident's
    /// onset period over its usual share: the services where requests
    /// started to fail when the incident began. Shares, not counts, so a
    /// busier period or a gap in the logs changes nothing.
    fn origin_excess(&self, o: &Open) -> BTreeMap<&str, f64> {
        let from = o.start.as_millis() - ORIGIN_BEFORE_MS;
        let to = o.start.as_millis() + ORIGIN_AFTER_MS;
        let mut now: BTreeMap<&str, f64> = BTreeMap::new();
        for (t, s) in &self.origins {
            if (from..=to).contains(&t.as_millis()) {
                *now.entry(s.as_str()).or_default() += 1.0;
            }
        }
        let n_now: f64 = now.values().sum();
        let n_all: f64 = self.origin_totals.values().map(|&n| n as f64).sum();
        if n_now == 0.0 {
            return now;
        }
        for (s, c) in now.iter_mut() {
            // Usual share from everything seen, less this period itself.
            let all = self.origin_totals.get(*s).map_or(0.0, |&n| n as f64);
            let before = (all - *c).max(0.0);
            let usual = if n_all - n_now > 0.0 {
                before / (n_all - n_now)
            } else {
                0.0
            };
            *c = (*c / n_now - usual).max(0.0);
        }
        now
    }

    /// The CPU at `place` (a container, else a host) is at `fill` of its
    /// limit (a point of a CPU `_ratio` series, see [`is_cpu_fill`]).
    pub fn observe_cpu_fill(&mut self, place: &str, fill: f64) {
        if let Some(f) = self.cpu_fill.get_mut(place) {
            *f = fill;
        } else if self.cpu_fill.len() < MAX_PLACEMENTS {
            self.cpu_fill.insert(place.to_string(), fill);
        }
    }

    /// Whether `a` can open an incident on its own: a symptom (a service
    /// failing or slowing down) or a resource running out. The rule is the
    /// one SRE practice pages by (Google SRE book, "Monitoring Distributed
    /// Systems": alert on symptoms, keep causes for diagnosis): a memory
    /// working set or a syscall rate that moved, or a latency that fell, is
    /// worth showing beside an incident, but alone it is a change, not an
    /// outage, and on a real estate such changes are most of what a
    /// cause-side detector sees in a day. A CPU known to be below
    /// saturation is such a change; so is a service's changed template mix
    /// (callers' mixes move with their callee's fault, before it).
    fn opens(&self, a: &Anomaly) -> bool {
        if is_mix_shift(a) {
            return false;
        }
        let (mut class, _, _) = classify(a);
        if class == RootCauseClass::CpuSaturation && self.cpu_below_limit(a) {
            class = RootCauseClass::Unknown;
        }
        let latency = is_latency(a);
        let up = a.observed > a.expected.expected;
        match class {
            // CPU stolen by a neighbour is contention, a cause: what it
            // does to the services on that host (their latency) is the
            // symptom that opens an incident, and the steal joins it.
            RootCauseClass::NoisyNeighbor => false,
            RootCauseClass::Unknown if latency => up,
            RootCauseClass::Unknown => !matches!(
                a.signal.kind,
                SignalKind::MetricSeries | SignalKind::CounterRate
            ),
            _ => true,
        }
    }

    /// Whether the CPU where `a` was seen is known to be below saturation.
    fn cpu_below_limit(&self, a: &Anomaly) -> bool {
        let place = a.signal.container.as_ref().or(a.signal.host.as_ref());
        place
            .and_then(|p| self.cpu_fill.get(p))
            .is_some_and(|&f| f < SATURATED)
    }

    /// Whether `a` is a service slowing down while it starts: a latency
    /// rise at a service that was deployed or scaled, or showed a new
    /// instance ([`Correlator::learn_instance`]), within the change window
    /// before it. New instances serve
    /// their first requests slowly (cold caches, connection pools, a JIT
    /// still compiling), and a rolling deploy does it once per instance:
    /// on an estate that deploys every hour, paging on it is paging on
    /// every deploy. Such a rise waits for a symptom, as a cause-side
    /// change does: if the deploy broke something, its errors open the
    /// incident (and the change is ranked first, see `rank`), and the
    /// latency joins it as evidence. A cold start is over in minutes; a
    /// slower version is not: a rise whose latency is still above the band
    /// it had before the start once the new instances have warmed up is a
    /// regression, and opens then ([`Correlator::observe_held`]).
    fn starting_up(&self, a: &Anomaly) -> bool {
        let Some(svc) = a.signal.service.as_deref() else {
            return false;
        };
        if !is_latency(a) || a.observed <= a.expected.expected {
            return false;
        }
        let lookback = (self.cfg.change_lookback_secs * 1000) as i64;
        let t = a.timestamp.as_millis();
        self.starts
            .iter()
            .rev()
            .any(|(at, s)| s == svc && (0..=lookback).contains(&(t - at.as_millis())))
    }

    /// The latest start of `service` recorded (ms).
    fn latest_start(&self, service: &str) -> Option<i64> {
        self.starts
            .iter()
            .rev()
            .find(|(_, s)| s == service)
            .map(|(at, _)| at.as_millis())
    }

    /// Whether latency rises are held while their services start (the
    /// engine then reports their signals' values, see
    /// [`Correlator::observe_held`]).
    pub fn holding(&self) -> bool {
        !self.held_starts.is_empty()
    }

    /// A value of `signal` at `at`. If a rise of it is held while its
    /// service starts ([`Correlator::starting_up`]), it is judged once the
    /// service's latest start is [`WARM_UP_MS`] old: the median of its
    /// values over the [`JUDGED_SPAN_MS`] before against the band it had
    /// when it rose (the baseline before the start, frozen: the baseline
    /// itself has learnt the new level by then). Still above: the start
    /// shipped a slower version, a regression, and it opens (or joins) an
    /// incident now, with the start's change ranked first (see `rank`).
    /// Back inside: it was the start, and it is dropped.
    pub fn observe_held(
        &mut self,
        signal: &models::Signal,
        at: Timestamp,
        value: f64,
    ) -> Vec<Incident> {
        let t = at.as_millis();
        // A rise whose signal went quiet, or whose service kept starting,
        // is not held for ever (its judgement is due within the change
        // window and the warm-up of its onset).
        let lookback = (self.cfg.change_lookback_secs * 1000) as i64;
        while self.held_starts.front().is_some_and(|h| {
            t - h.anomaly.timestamp.as_millis() > lookback + WARM_UP_MS + JUDGED_SPAN_MS
        }) {
            self.held_starts.pop_front();
        }
        let Some(i) = self
            .held_starts
            .iter()
            .position(|h| &h.anomaly.signal == signal)
        else {
            return Vec::new();
        };
        let h = &mut self.held_starts[i];
        if value.is_finite() {
            if h.values.len() >= MAX_HELD_VALUES {
                h.values.pop_front();
            }
            h.values.push_back((t, value));
        }
        // Only the last span is ever judged.
        while h
            .values
            .front()
            .is_some_and(|&(v_at, _)| t - v_at > JUDGED_SPAN_MS)
        {
            h.values.pop_front();
        }
        let onset = h.anomaly.timestamp.as_millis();
        let service = signal.service.clone().unwrap_or_default();
        // Ten minutes after the latest start, and with a span of values
        // after the rise to judge.
        let started = self.latest_start(&service).unwrap_or(onset);
        let judged_at = (started + WARM_UP_MS).max(onset + JUDGED_SPAN_MS);
        if t < judged_at {
            return Vec::new();
        }
        let h = self.held_starts.remove(i).expect("index found");
        let mut recent: Vec<f64> = h.values.iter().map(|&(_, v)| v).collect();
        if recent.len() < 3 {
            return Vec::new();
        }
        recent.sort_by(f64::total_cmp);
        let median = recent[recent.len() / 2];
        let mut a = h.anomaly;
        if median <= a.expected.upper {
            return Vec::new();
        }
        // Evidence of its own now, reported when it is known.
        self.pending_causes
            .retain(|p| !(p.signal == a.signal && p.timestamp == a.timestamp));
        a.detail = format!(
            "{median:.4} observed (median of the last {} points), {:.4} expected before \
             {service} started: still above its band {} minutes after the start",
            recent.len(),
            a.expected.expected,
            (t - started) / 60_000,
        );
        a.observed = median;
        a.timestamp = at;
        let resolved = self.fold_held(a, true, false);
        for o in &mut self.open {
            if o.anomalies
                .iter()
                .any(|b| &b.signal == signal && b.timestamp == at)
            {
                o.regressed.insert(service.clone());
            }
        }
        resolved
    }

    /// Learn that `instance` (a pod or container) of `service` was seen at
    /// `t`. An instance new to a service seen for longer than its first
    /// minutes is a start (see [`Correlator::starting_up`]): a rolling
    /// deploy or a scale-out shows as pods with new names, whether or not
    /// a change event says so. Bounded like the placements: past the cap
    /// nothing more is learned.
    pub fn learn_instance(&mut self, service: &str, instance: &str, t: Timestamp) {
        let h = self.pair_hash(1, service, instance);
        if self.known_pairs.contains(&h) {
            return;
        }
        let t = t.as_millis();
        if let Some(known) = self.instances.get(service) {
            if known.names.contains(instance) {
                self.known_pairs.insert(h);
                return;
            }
        }
        if self.instances_len >= MAX_PLACEMENTS {
            return;
        }
        self.known_pairs.insert(h);
        let known = self
            .instances
            .entry(service.to_string())
            .or_insert_with(|| Instances {
                first_ms: t,
                names: BTreeSet::new(),
            });
        known.names.insert(instance.to_string());
        self.instances_len += 1;
        if t - known.first_ms > FIRST_INSTANCES_MS {
            self.record_start(Timestamp::from_millis(t), service);
        }
    }

    /// Remember that new instances of `service` started at `t`.
    fn record_start(&mut self, t: Timestamp, service: &str) {
        self.starts.push_back((t, service.to_string()));
        while self.starts.len() > 1000 {
            self.starts.pop_front();
        }
    }

    /// Remember a change event as a suspect for incidents starting soon after.
    pub fn observe_change(&mut self, c: &ChangeEvent) {
        // A deploy or a scale-out starts new instances.
        if matches!(c.kind, ChangeKind::Deploy | ChangeKind::Scale) {
            self.record_start(c.timestamp, &c.service);
        }
        self.changes.push_back(c.clone());
        while self.changes.len() > 1000 {
            self.changes.pop_front();
        }
    }

    /// Fold in a detector's onset `a` (in event-time order): like
    /// [`Correlator::observe`], except that an onset on its signal's
    /// schedule (the fourth or later evenly spaced one, see
    /// [`crate::recurrence`]) says so in its detail and only joins an
    /// incident open at its place; it opens none. A resource running out
    /// is never a schedule.
    pub fn observe_onset(&mut self, a: &mut Anomaly) -> Vec<Incident> {
        let period = self
            .recurrences
            .onset(&a.signal, a.timestamp.as_millis())
            .filter(|_| a.kind != AnomalyKind::ResourceLeak);
        if let Some(p) = period {
            a.detail.push_str(&format!(
                "; recurs every {:.0} min (its last onsets were evenly spaced: a schedule, not a new fault)",
                p as f64 / 60_000.0
            ));
        }
        self.fold(a.clone(), period.is_none())
    }

    /// Fold in one anomaly (in event-time order). Returns incidents that
    /// resolved before it.
    pub fn observe(&mut self, a: Anomaly) -> Vec<Incident> {
        self.fold(a, true)
    }

    /// [`Correlator::observe`]; with `may_open` false the anomaly only
    /// joins an open incident.
    fn fold(&mut self, a: Anomaly, may_open: bool) -> Vec<Incident> {
        self.fold_held(a, may_open, true)
    }

    /// [`Correlator::fold`]; with `may_hold` false a latency rise during a
    /// start is not held again (its window is over).
    fn fold_held(&mut self, a: Anomaly, may_open: bool, may_hold: bool) -> Vec<Incident> {
        // A new onset of a signal while a rise of it is held (a later
        // replica's cold start): the new one is held in its place.
        if may_hold && !self.held_starts.is_empty() {
            self.held_starts.retain(|h| h.anomaly.signal != a.signal);
        }
        let resolved = self.advance(a.timestamp);
        let gap = (self.cfg.gap_secs * 1000) as i64;
        let link = (self.cfg.link_secs * 1000) as i64;
        let quiet = (self.cfg.resolve_after_secs * 1000) as i64;
        let best = self
            .open
            .iter()
            .enumerate()
            .filter(|(_, o)| {
                // Sharing a service or container (or a host-level signal of
                // the host a service runs on) keeps joining an incident whose
                // signals are still anomalous: a leak's errors come long
                // after its metric first moved. Another service joins only
                // when the evidence links them (a direct call either way)
                // and its onset is close to the incident's latest one, and
                // only while the incident is young: an incident grows by
                // propagation, not by coincidence, and never for a day.
                let t = a.timestamp.as_millis();
                (t - o.last.as_millis() <= gap
                    && self.same_place(o, &a)
                    && !new_episode(o, &a, gap, quiet))
                    || (t - o.last_onset.as_millis() <= link
                        && t - o.start.as_millis() <= gap
                        && self.linked(o, &a))
            })
            .max_by_key(|(i, o)| (o.last_onset, *i))
            .map(|(i, _)| i);
        let names_nothing =
            a.signal.service.is_none() && a.signal.host.is_none() && a.signal.container.is_none();
        let o = match best {
            Some(i) => &mut self.open[i],
            // An anomaly of no service, host or container (records that
            // carried none) is reported, but an incident with no target
            // would tell nobody what to look at.
            None if names_nothing => return resolved,
            // A signal that only observes others (a caller's wait on its
            // callees) joins the incident of what it waits on, but does not
            // open one: on its own it names no place to look.
            None if classify(&a).2 < SYMPTOM_PRIOR => {
                self.wait_for_symptom(a);
                return resolved;
            }
            // A change on the cause side (a gauge that moved, latency
            // that fell, a CPU stolen by a neighbour) with no symptom and
            // no resource running out joins an incident as evidence but
            // does not open one; it waits a few minutes for one to open.
            None if !self.opens(&a) => {
                self.wait_for_symptom(a);
                return resolved;
            }
            // A service slowing down while its new instances start.
            None if may_hold && self.starting_up(&a) => {
                while self.held_starts.len() >= MAX_WAITING {
                    self.held_starts.pop_front();
                }
                self.held_starts.push_back(Held {
                    anomaly: a.clone(),
                    values: VecDeque::new(),
                });
                self.wait_for_symptom(a);
                return resolved;
            }
            // An onset on its signal's schedule (a batch job's hourly
            // burst) is expected behaviour.
            None if !may_open => return resolved,
            None => {
                self.open.push(Open {
                    start: a.timestamp,
                    last: a.timestamp,
                    last_onset: a.timestamp,
                    anomalies: Vec::new(),
                    dropped: 0,
                    services: BTreeSet::new(),
                    hosts: BTreeSet::new(),
                    containers: BTreeSet::new(),
                    host_level: BTreeSet::new(),
                    templates: Vec::new(),
                    alerting: Vec::new(),
                    regressed: BTreeSet::new(),
                });
                self.open.last_mut().expect("just pushed")
            }
        };
        let opened = o.anomalies.is_empty();
        o.last = o.last.max(a.timestamp);
        o.last_onset = o.last_onset.max(a.timestamp);
        o.take(a, self.cfg.max_anomalies_per_incident);
        // New templates that appeared shortly before at its services.
        let start = o.start.as_millis() - TEMPLATE_WAIT_MS;
        let here = take_waiting(&mut self.pending_templates, |t| {
            let here = t
                .anomaly
                .signal
                .service
                .as_ref()
                .is_some_and(|s| o.services.contains(s));
            here && t.anomaly.timestamp.as_millis() >= start
        });
        for t in here {
            add_template(o, t);
        }
        if opened {
            self.attach_waiting_causes();
        }
        resolved
    }

    /// Keep a cause-side anomaly that found no incident open at its place
    /// for [`TEMPLATE_WAIT_MS`]: an incident opening there by then takes
    /// it as evidence ([`Correlator::attach_waiting_causes`]). Before,
    /// it was dropped, so a cause that came before its symptoms (the CPU
    /// a neighbour stole a minute before the latency rose) was never
    /// shown beside them.
    fn wait_for_symptom(&mut self, a: Anomaly) {
        expire_waiting(
            &mut self.pending_causes,
            a.timestamp.as_millis(),
            MAX_WAITING,
            |p| p.timestamp.as_millis(),
        );
        self.pending_causes.push_back(a);
    }

    /// The incident just opened (the last one) takes the waiting causes at
    /// its place from the last few minutes, oldest first.
    fn attach_waiting_causes(&mut self) {
        let Some(last) = self.open.len().checked_sub(1) else {
            return;
        };
        let o = &self.open[last];
        let start = o.start.as_millis();
        let mut waiting = std::mem::take(&mut self.pending_causes);
        let here = take_waiting(&mut waiting, |a| {
            start - a.timestamp.as_millis() <= TEMPLATE_WAIT_MS && self.same_place(o, a)
        });
        self.pending_causes = waiting;
        for a in here {
            self.open[last].take(a, self.cfg.max_anomalies_per_incident);
        }
    }

    /// A template seen for the first time (`a`, with its first message).
    /// It joins an open incident at its service as evidence, or waits a
    /// few minutes for one to open; on its own it is not an incident (new
    /// messages appear with every deploy).
    pub fn observe_template(&mut self, a: Anomaly, example: &str) {
        let t = a.timestamp.as_millis();
        expire_waiting(&mut self.pending_templates, t, MAX_WAITING, |p| {
            p.anomaly.timestamp.as_millis()
        });
        let gap = (self.cfg.gap_secs * 1000) as i64;
        let nt = NewTemplate {
            example: example.chars().take(500).collect(),
            anomaly: a,
            count: 1,
        };
        let svc = nt.anomaly.signal.service.clone();
        let open = self.open.iter_mut().rev().find(|o| {
            t - o.last.as_millis() <= gap && svc.as_ref().is_some_and(|s| o.services.contains(s))
        });
        match open {
            Some(o) => add_template(o, nt),
            None => self.pending_templates.push_back(nt),
        }
    }

    /// Another record of template `id` at `service`: counted where it is
    /// kept as evidence.
    pub fn count_template(&mut self, id: &str) {
        for o in &mut self.open {
            for t in &mut o.templates {
                if t.anomaly.signal.name == id {
                    t.count += 1;
                }
            }
        }
        for t in &mut self.pending_templates {
            if t.anomaly.signal.name == id {
                t.count += 1;
            }
        }
    }

    /// A signal of an open incident is still anomalous at `at`: the
    /// incident stays open (it resolves only once its signals are back
    /// inside their bands for `resolve_after_secs`).
    pub fn touch(&mut self, signal: &models::Signal, at: Timestamp) {
        for o in &mut self.open {
            if o.anomalies.iter().any(|a| &a.signal == signal) {
                o.last = o.last.max(at);
                o.alerted(signal, at);
            }
        }
    }

    /// Resolve incidents that have been quiet long enough by event time `now`.
    pub fn advance(&mut self, now: Timestamp) -> Vec<Incident> {
        let quiet = (self.cfg.resolve_after_secs * 1000) as i64;
        let mut done = Vec::new();
        let mut i = 0;
        while i < self.open.len() {
            if now.as_millis() - self.open[i].last.as_millis() > quiet {
                let o = self.open.remove(i);
                done.push(self.build(o, IncidentStatus::Resolved));
            } else {
                i += 1;
            }
        }
        done.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
        done
    }

    /// Incidents still open, as they stand now.
    pub fn open_incidents(&self) -> Vec<Incident> {
        self.open
            .iter()
            .map(|o| self.build_ref(o, IncidentStatus::Open))
            .collect()
    }

    /// End of input: everything still open is returned as open.
    pub fn finish(&mut self) -> Vec<Incident> {
        let open = std::mem::take(&mut self.open);
        let mut v: Vec<Incident> = open
            .into_iter()
            .map(|o| self.build(o, IncidentStatus::Open))
            .collect();
        v.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
        v
    }

    /// One place: the same service or container; or a host-level signal
    /// and a service on that host (a full disk and the errors of what runs
    /// there). Two services that only share a host are not one place: on
    /// an orchestrated estate every node runs dozens of them.
    fn same_place(&self, o: &Open, a: &Anomaly) -> bool {
        let s = &a.signal;
        if s.service.as_ref().is_some_and(|x| o.services.contains(x))
            || s.container
                .as_ref()
                .is_some_and(|x| o.containers.contains(x))
        {
            return true;
        }
        match (&s.host, &s.service, &s.container) {
            // A host-level signal: its host's incident, or one of the
            // services placed on it.
            (Some(h), None, None) => {
                o.hosts.contains(h) || o.services.iter().any(|svc| self.runs_on(svc, h))
            }
            // A service's signal joins its host's host-level incident.
            (host, service, _) => o.host_level.iter().any(|h| {
                host.as_ref() == Some(h) || service.as_ref().is_some_and(|svc| self.runs_on(svc, h))
            }),
        }
    }

    /// Linked by a direct call, either way, to one of the incident's
    /// services (configured or learned). One hop, not three: a dense call
    /// graph reaches everything within three calls, and a chain of
    /// propagation still joins one hop at a time as each symptom appears.
    fn linked(&self, o: &Open, a: &Anomaly) -> bool {
        let Some(svc) = &a.signal.service else {
            return false;
        };
        o.services.iter().any(|other| {
            self.edges.contains(&(svc.clone(), other.clone()))
                || self.edges.contains(&(other.clone(), svc.clone()))
        })
    }

    fn build(&self, o: Open, status: IncidentStatus) -> Incident {
        self.build_ref(&o, status)
    }

    fn build_ref(&self, o: &Open, status: IncidentStatus) -> Incident {
        let root_causes = self.rank(o);
        let first_target = root_causes
            .first()
            .map(|r| target_key(&r.target))
            .unwrap_or_default();
        Incident {
            // Onset and root target identify a fault: the same input gives
            // the same id, so consumers can de-duplicate re-deliveries.
            id: format!("inc-{}-{}", o.start.as_millis(), short_hash(&first_target)),
            start: o.start,
            end: match status {
                IncidentStatus::Resolved => Some(o.last),
                IncidentStatus::Open => None,
            },
            status,
            anomalies: o.anomalies.clone(),
            root_causes,
        }
    }

    /// Depth of a service along the dependency direction: how many hops of
    /// callers sit above it among the incident's services.
    fn depth(&self, svc: &str, services: &BTreeSet<String>) -> usize {
        let mut depth = 0;
        let mut frontier = vec![svc.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(s) = frontier.pop() {
            for (caller, callee) in &self.edges {
                if callee == &s && services.contains(caller) && seen.insert(caller.clone()) {
                    depth += 1;
                    frontier.push(caller.clone());
                }
            }
        }
        depth
    }

    fn rank(&self, o: &Open) -> Vec<RootCause> {
        struct Cand {
            score: f64,
            onset: Timestamp,
            evidence: Vec<Evidence>,
        }
        let mut cands: BTreeMap<(RootCauseClass, Target), Cand> = BTreeMap::new();
        let span = (o.last.as_millis() - o.start.as_millis()).max(60_000) as f64;
        // Latency anomalies on two or more services of one host, with no
        // resource cause of their own, point at a noisy neighbour.
        let mut latency_hosts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for a in &o.anomalies {
            if a.kind == AnomalyKind::LatencySpike || a.signal.kind == SignalKind::LatencyQuantile {
                if let (Some(h), Some(s)) = (&a.signal.host, &a.signal.service) {
                    latency_hosts
                        .entry(h.clone())
                        .or_default()
                        .insert(s.clone());
                }
            }
        }
        let origins = self.origin_excess(o);
        // How full a place's CPU was, where a series of the incident says
        // so as a fraction of its limit (Prometheus names such gauges
        // `_ratio`): the most specific evidence of saturation. A CPU that
        // rose but stayed well below its limit changed; it did not
        // saturate, and nothing should be offloaded for it.
        let mut cpu_fill: BTreeMap<Target, f64> = BTreeMap::new();
        for a in &o.anomalies {
            if is_cpu_fill(&a.signal) && a.observed.is_finite() {
                let (_, target, _) = classify(a);
                let f = cpu_fill.entry(target).or_insert(f64::NEG_INFINITY);
                *f = f.max(a.observed);
            }
        }
        // Services with evidence other than a changed template mix: there
        // the mix says nothing the other evidence does not (a failing
        // service's errors change its mix too); it names a candidate only
        // where it is the one thing that moved.
        let explained: BTreeSet<&str> = o
            .anomalies
            .iter()
            .filter(|a| !is_mix_shift(a))
            .filter_map(|a| a.signal.service.as_deref())
            .collect();
        for a in &o.anomalies {
            if is_mix_shift(a)
                && a.signal
                    .service
                    .as_deref()
                    .is_some_and(|s| explained.contains(s))
            {
                continue;
            }
            let (mut class, target, mut prior) = classify(a);
            if class == RootCauseClass::CpuSaturation
                && cpu_fill
                    .get(&target)
                    .map_or_else(|| self.cpu_below_limit(a), |&f| f < SATURATED)
            {
                (class, prior) = (RootCauseClass::Unknown, 0.3);
            }
            if target == Target::default() {
                // Names nothing a person could act on.
                continue;
            }
            let earliness = 1.0 - (a.timestamp.as_millis() - o.start.as_millis()) as f64 / span;
            let depth = target
                .service
                .as_deref()
                .map_or(0, |s| self.depth(s, &o.services)) as f64;
            // Where requests started failing, beyond that service's usual
            // share of failures, is where the fault is.
            let origin = target
                .service
                .as_deref()
                .and_then(|s| origins.get(s))
                .copied()
                .unwrap_or(0.0);
            let score = prior
                * (0.5 + 0.5 * earliness.clamp(0.0, 1.0))
                * (1.0 + 0.5 * depth)
                * (0.5 + 0.5 * a.score)
                * (1.0 + 2.0 * origin);
            let c = cands.entry((class, target)).or_insert(Cand {
                score: 0.0,
                onset: a.timestamp,
                evidence: Vec::new(),
            });
            c.score = c.score.max(score) + 0.02 * score;
            c.onset = c.onset.min(a.timestamp);
            if c.evidence.len() < 5 {
                c.evidence.push(Evidence::Signal {
                    anomaly: Box::new(a.clone()),
                });
            }
        }
        for (host, services) in &latency_hosts {
            if services.len() >= 2 {
                let target = Target {
                    host: Some(host.clone()),
                    ..Default::default()
                };
                let c = cands
                    .entry((RootCauseClass::NoisyNeighbor, target))
                    .or_insert(Cand {
                        score: 0.0,
                        onset: o.start,
                        evidence: vec![],
                    });
                c.score += 0.6;
                c.evidence.push(Evidence::Note {
                    text: format!(
                        "latency rose on {} services of host {host} at once: {}",
                        services.len(),
                        services.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
        // A change shortly before onset on a service that then shows errors
        // is the prime suspect.
        let lookback = (self.cfg.change_lookback_secs * 1000) as i64;
        for ch in self.changes.iter().rev() {
            let dt = o.start.as_millis() - ch.timestamp.as_millis();
            if !(0..=lookback).contains(&dt) || !o.services.contains(&ch.service) {
                continue;
            }
            // Errors, not warnings: a slow host makes a service warn. Or
            // a latency that rose with the change's start and outlasted
            // it (a slower release).
            let errors_there = o.anomalies.iter().any(|a| {
                a.signal.service.as_deref() == Some(ch.service.as_str())
                    && a.signal.kind != SignalKind::WarnRate
                    && matches!(a.kind, AnomalyKind::ErrorBurst | AnomalyKind::NewTemplate)
            });
            if !errors_there && !o.regressed.contains(&ch.service) {
                continue;
            }
            // Unless a service it calls was failing first: then its
            // errors are that callee's, passed up the call, and the change
            // is a coincidence (a routine deploy minutes before a
            // database times out). Causes come before their symptoms,
            // and down the call graph.
            let first_error = |svc: &str| {
                o.anomalies
                    .iter()
                    .filter(|a| {
                        a.signal.service.as_deref() == Some(svc)
                            && a.signal.kind != SignalKind::WarnRate
                            && a.kind == AnomalyKind::ErrorBurst
                    })
                    .map(|a| a.timestamp)
                    .min()
            };
            let own = first_error(&ch.service);
            let callee_first = o.services.iter().any(|callee| {
                self.edges.contains(&(ch.service.clone(), callee.clone()))
                    && first_error(callee).is_some_and(|t| own.is_none_or(|own| t < own))
            });
            if callee_first {
                continue;
            }
            let target = Target {
                service: Some(ch.service.clone()),
                ..Default::default()
            };
            // The change explains its service's errors: it stands above the
            // strongest of them, whatever their weight.
            let explained = cands
                .iter()
                .filter(|((_, t), _)| t.service.as_deref() == Some(ch.service.as_str()))
                .map(|(_, c)| c.score)
                .fold(0.0, f64::max);
            let c = cands
                .entry((RootCauseClass::BadChange, target))
                .or_insert(Cand {
                    score: 0.0,
                    onset: ch.timestamp,
                    evidence: vec![],
                });
            c.score += explained + 1.2 - 0.4 * dt as f64 / lookback as f64;
            c.evidence
                .insert(0, Evidence::Change { change: ch.clone() });
            break;
        }
        let total: f64 = cands.values().map(|c| c.score).sum::<f64>().max(1e-9);
        let mut ranked: Vec<RootCause> = cands
            .into_iter()
            .map(|((class, target), c)| RootCause {
                class,
                target,
                confidence: (c.score / total).clamp(0.0, 1.0),
                evidence: c.evidence,
            })
            .collect();
        ranked.sort_by(|a, b| {
            b.confidence
                .total_cmp(&a.confidence)
                .then_with(|| a.class.cmp(&b.class))
                .then_with(|| a.target.cmp(&b.target))
        });
        ranked.truncate(5);
        // New templates are evidence for the cause at their service (the
        // first one that names it), with their first message.
        for t in &o.templates {
            let svc = t.anomaly.signal.service.as_deref();
            if let Some(rc) = ranked
                .iter_mut()
                .find(|r| r.target.service.as_deref() == svc && svc.is_some())
            {
                if t.anomaly.kind == AnomalyKind::SessionAnomaly {
                    // A request that went where requests rarely go: the
                    // session, with what was rare about it.
                    rc.evidence.push(Evidence::Signal {
                        anomaly: Box::new(t.anomaly.clone()),
                    });
                } else {
                    rc.evidence.push(Evidence::Template {
                        template_id: t.anomaly.signal.name.clone(),
                        template: t.example.clone(),
                        count: t.count,
                        examples: vec![t.example.clone()],
                    });
                }
            }
        }
        ranked
    }
}

/// Whether `s` is a CPU's use as a share of its limit (Prometheus names
/// such gauges `_ratio`).
pub fn is_cpu_fill(s: &models::Signal) -> bool {
    is_fill_of(s, "cpu")
}

/// Whether `s` is a gauge of `resource` (a lower-case word of its metric
/// name: `cpu`, `memory`) as a share of its limit: a metric series whose
/// name ends in `_ratio`.
pub fn is_fill_of(s: &models::Signal, resource: &str) -> bool {
    // Called for every metric point: the cheap test first, no allocation
    // unless the name ends like a ratio.
    let metric = s.name.split('{').next().unwrap_or_default();
    s.kind == SignalKind::MetricSeries
        && metric.len() >= 6
        && metric.is_char_boundary(metric.len() - 6)
        && metric[metric.len() - 6..].eq_ignore_ascii_case("_ratio")
        && metric.to_ascii_lowercase().contains(resource)
}

/// The share of its limit at which a resource counts as saturated: the
/// operators' usual 80%, as the static rules use it
/// (`detectors/threshold.rs`).
const SATURATED: f64 = 0.8;

/// A service's template mix that moved (the G-test), as against one of
/// its statements that stopped: the first names a candidate only where
/// nothing else moved and never opens an incident (callers' mixes move
/// with their callee's fault); a stop is the service's own evidence.
fn is_mix_shift(a: &Anomaly) -> bool {
    a.signal.kind == SignalKind::TemplateMix && !is_own_statement_missing(a)
}

/// A statement of the service's own that went missing: one it wrote
/// steadily that stopped (`mix.rs`), or one that requests wrote together
/// with another and now lack (`invariant.rs`).
fn is_own_statement_missing(a: &Anomaly) -> bool {
    a.detector == crate::mix::STOPPED || a.detector == crate::invariant::BROKEN
}

/// The class, target and prior weight an anomaly suggests on its own, from
/// what its signal measures. Resource signals weigh more than symptoms.
pub fn classify(a: &Anomaly) -> (RootCauseClass, Target, f64) {
    let s = &a.signal;
    let name = s.name.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| name.contains(w));
    let container_target = Target {
        service: s.service.clone(),
        host: s.host.clone(),
        container: s.container.clone(),
    };
    let host_target = Target {
        host: s.host.clone(),
        ..Default::default()
    };
    let service_target = Target {
        service: s.service.clone(),
        ..Default::default()
    };
    let leak = a.kind == AnomalyKind::ResourceLeak;
    match s.kind {
        SignalKind::MetricSeries | SignalKind::CounterRate => {
            if has(&[
                "filesystem",
                "disk",
                "dangling",
                "exited_container",
                "volume",
                "build_cache",
                "inode",
            ]) {
                (RootCauseClass::DiskPressure, host_target, 1.0)
            } else if leak && has(&["open_fds", "file_descriptor", "_fds", "fd_"]) {
                (RootCauseClass::FdLeak, container_target, 1.0)
            } else if leak && has(&["thread", "goroutine"]) {
                (RootCauseClass::ThreadLeak, container_target, 1.0)
            } else if leak && has(&["memory", "heap", "rss", "oom"]) {
                (RootCauseClass::MemoryLeak, container_target, 1.0)
            } else if has(&["steal"]) {
                (RootCauseClass::NoisyNeighbor, host_target, 0.9)
            } else if has(&["cpu", "lag", "queue", "backlog", "load"]) {
                (RootCauseClass::CpuSaturation, container_target, 0.9)
            } else if has(&["error", "5xx", "fail"]) {
                (RootCauseClass::DependencyFailure, service_target, 0.4)
            } else if has(&["client"]) && has(&["duration", "latency"]) {
                // Client-side latency (OpenTelemetry's
                // `http.client.request.duration`, `rpc.client.duration`)
                // is how long this service waited on its callees: it points
                // below it, at whatever it calls, not at itself.
                (RootCauseClass::Unknown, container_target, 0.1)
            } else {
                // Memory or descriptors that moved without a steady climb,
                // server-side latency and other series: something changed
                // here, and the class is not known.
                (RootCauseClass::Unknown, container_target, 0.3)
            }
        }
        // A service's own failing share of records is the most direct
        // evidence that it is failing; so is one exception class surging
        // among its records (stack-trace concentration).
        SignalKind::ErrorRate
        | SignalKind::StatusClass
        | SignalKind::TemplateCount
        | SignalKind::ExceptionCount => (RootCauseClass::DependencyFailure, service_target, 0.8),
        SignalKind::LatencyQuantile => (RootCauseClass::Unknown, service_target, 0.3),
        // The service took other paths than it usually does: something
        // changed there (the class is not known). Weaker than its own
        // failing share, stronger than a latency it may share with its
        // callees.
        // A statement the service writes steadily stopped while it went on
        // writing: its own requests break before that line (an exception
        // thrown early). As direct as its own failing share; the class
        // (what broke) is not known.
        SignalKind::TemplateMix if is_own_statement_missing(a) => {
            (RootCauseClass::Unknown, service_target, 0.8)
        }
        SignalKind::TemplateMix => (RootCauseClass::Unknown, service_target, 0.5),
        _ => (RootCauseClass::Unknown, service_target, 0.2),
    }
}

fn target_key(t: &Target) -> String {
    format!(
        "{}/{}/{}",
        t.service.as_deref().unwrap_or(""),
        t.host.as_deref().unwrap_or(""),
        t.container.as_deref().unwrap_or("")
    )
}

/// FNV-1a: stable across runs and platforms, unlike the std hasher.
fn short_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:08x}", h as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::{Band, Signal};

    fn anomaly(
        sec: i64,
        kind: SignalKind,
        name: &str,
        svc: &str,
        host: &str,
        container: Option<&str>,
        akind: AnomalyKind,
    ) -> Anomaly {
        Anomaly {
            signal: Signal {
                kind,
                name: name.into(),
                service: Some(svc.into()),
                host: Some(host.into()),
                container: container.map(Into::into),
            },
            timestamp: Timestamp::from_secs(sec),
            observed: 10.0,
            expected: Band {
                lower: 0.0,
                expected: 1.0,
                upper: 2.0,
            },
            score: 0.9,
            kind: akind,
            detector: "test".into(),
            detail: String::new(),
        }
    }

    #[test]
    fn new_templates_are_evidence_at_their_service_never_symptoms() {
        let tmpl = |sec, svc: &str, id: &str| {
            anomaly(
                sec,
                SignalKind::TemplateCount,
                id,
                svc,
                "node-1",
                None,
                AnomalyKind::NewTemplate,
            )
        };
        let burst = anomaly(
            10_000,
            SignalKind::ErrorRate,
            "errors",
            "payments",
            "node-1",
            None,
            AnomalyKind::ErrorBurst,
        );
        let run = |templates: &[(Anomaly, &str)]| {
            let mut c = Correlator::new(CorrelatorConfig::default());
            for (a, text) in templates {
                c.observe_template(a.clone(), text);
            }
            assert!(
                c.open_incidents().is_empty(),
                "a new template alone opens nothing"
            );
            c.observe(burst.clone());
            c.count_template("t-new");
            c.finish()
        };
        let plain = run(&[]);
        let with = run(&[
            (
                tmpl(9_950, "payments", "t-new"),
                "upstream bank refused: code 91",
            ),
            (tmpl(9_960, "cart", "t-cart"), "elsewhere"),
            (tmpl(9_000, "payments", "t-old"), "ten minutes too early"),
        ]);
        assert_eq!(plain.len(), 1);
        assert_eq!(with.len(), 1);
        let (p, w) = (&plain[0], &with[0]);
        assert_eq!(w.anomalies, p.anomalies, "templates are not symptoms");
        assert_eq!(w.id, p.id);
        assert_eq!(w.root_causes[0].confidence, p.root_causes[0].confidence);
        let found: Vec<(String, String, u64)> = w.root_causes[0]
            .evidence
            .iter()
            .filter_map(|e| match e {
                Evidence::Template {
                    template_id,
                    template,
                    count,
                    ..
                } => Some((template_id.clone(), template.clone(), *count)),
                _ => None,
            })
            .collect();
        assert_eq!(
            found,
            [(
                "t-new".to_string(),
                "upstream bank refused: code 91".to_string(),
                2
            )]
        );
    }

    fn topo() -> CorrelatorConfig {
        let mut cfg = CorrelatorConfig::default();
        cfg.topology
            .insert("gateway".into(), vec!["checkout".into()]);
        cfg.topology
            .insert("checkout".into(), vec!["payments".into()]);
        cfg.topology
            .insert("payments".into(), vec!["database".into()]);
        cfg
    }

    #[test]
    fn one_fault_one_incident_and_the_resource_signal_is_the_cause() {
        let mut c = Correlator::new(topo());
        let mem = "container_memory_working_set_bytes{container=\"checkout-1\"}";
        c.observe(anomaly(
            0,
            SignalKind::MetricSeries,
            mem,
            "checkout",
            "node-2",
            Some("checkout-1"),
            AnomalyKind::ResourceLeak,
        ));
        c.observe(anomaly(
            120,
            SignalKind::ErrorRate,
            "",
            "checkout",
            "node-2",
            None,
            AnomalyKind::ErrorBurst,
        ));
        c.observe(anomaly(
            150,
            SignalKind::ErrorRate,
            "",
            "gateway",
            "node-1",
            None,
            AnomalyKind::ErrorBurst,
        ));
        let resolved = c.advance(Timestamp::from_secs(1000));
        assert_eq!(resolved.len(), 1, "one fault, one incident");
        let inc = &resolved[0];
        assert_eq!(inc.anomalies.len(), 3);
        assert_eq!(inc.status, IncidentStatus::Resolved);
        let top = &inc.root_causes[0];
        assert_eq!(top.class, RootCauseClass::MemoryLeak);
        assert_eq!(top.target.container.as_deref(), Some("checkout-1"));
        assert!(top.confidence > inc.root_causes[1].confidence);
    }

    /// CPU steal on node-1 (host only) and, a minute later, latency of
    /// gateway (service only). Steal is contention, a cause: alone it
    /// opens no incident (a fault-free day at a 30 s scrape had one, with
    /// an offload planned, for a steal rate of 9% against 5.5%), and it
    /// waits for a symptom at its place: the latency's incident takes it
    /// once gateway is known to run on node-1, and not without that
    /// knowledge.
    #[test]
    fn a_host_anomaly_joins_the_symptoms_of_services_placed_on_it() {
        let steal = || {
            let mut a = anomaly(
                0,
                SignalKind::CounterRate,
                "node_cpu_seconds_total{mode=\"steal\"}",
                "",
                "node-1",
                None,
                AnomalyKind::LevelShift,
            );
            a.signal.service = None;
            a
        };
        let latency = || {
            let mut b = anomaly(
                60,
                SignalKind::LatencyQuantile,
                "p99",
                "gateway",
                "",
                None,
                AnomalyKind::LatencySpike,
            );
            b.signal.host = None;
            b
        };
        let run = |c: &mut Correlator| {
            c.observe(steal());
            c.observe(latency());
            c.finish()
        };
        let mut alone = Correlator::new(CorrelatorConfig::default());
        alone.observe(steal());
        assert!(alone.finish().is_empty(), "steal alone opens nothing");
        let mut c = Correlator::new(CorrelatorConfig::default());
        let incs = run(&mut c);
        assert_eq!(incs.len(), 1);
        assert_eq!(incs[0].anomalies.len(), 1, "not placed: only the latency");
        let mut c = Correlator::new(CorrelatorConfig::default());
        c.learn_placement("gateway", "node-1");
        let incs = run(&mut c);
        assert_eq!(incs.len(), 1);
        assert_eq!(incs[0].anomalies.len(), 2, "{:?}", incs[0].anomalies);
    }

    #[test]
    fn unrelated_anomalies_make_separate_incidents() {
        let mut c = Correlator::new(topo());
        c.observe(anomaly(
            0,
            SignalKind::ErrorRate,
            "",
            "checkout",
            "node-2",
            None,
            AnomalyKind::ErrorBurst,
        ));
        c.observe(anomaly(
            10,
            SignalKind::ErrorRate,
            "",
            "inventory",
            "node-3",
            None,
            AnomalyKind::ErrorBurst,
        ));
        assert_eq!(c.finish().len(), 2);
    }

    /// A deploy of `service` at time zero.
    fn deploy_at_zero(service: &str, version: &str) -> ChangeEvent {
        ChangeEvent {
            timestamp: Timestamp::from_secs(0),
            service: service.into(),
            kind: ChangeKind::Deploy,
            version: Some(version.into()),
            description: "deploy".into(),
        }
    }

    /// A routine deploy of a caller minutes before its callee fails: the
    /// caller's errors follow the callee's, so the callee is the cause and
    /// the deploy a coincidence. (Seen on a fresh generator seed: a
    /// database timeout nine minutes after a deploy of the inventory
    /// service that calls it, ranked as a bad deploy of inventory.)
    #[test]
    fn a_deploy_does_not_explain_errors_its_callee_had_first() {
        let after_deploy = |first: &str, then: &str| {
            let mut c = Correlator::new(topo());
            c.observe_change(&deploy_at_zero("payments", "1.16.0"));
            c.observe(errors_at(540, first));
            c.observe(errors_at(555, then));
            c.finish().remove(0)
        };
        let inc = after_deploy("database", "payments");
        assert_eq!(
            inc.root_causes[0].target.service.as_deref(),
            Some("database"),
            "{:?}",
            inc.root_causes
        );
        assert!(inc
            .root_causes
            .iter()
            .all(|r| r.class != RootCauseClass::BadChange));
        // The same deploy with payments failing first is the suspect.
        let inc = after_deploy("payments", "database");
        assert_eq!(inc.root_causes[0].class, RootCauseClass::BadChange);
    }

    /// A p99 latency rise at `svc`.
    fn p99(sec: i64, svc: &str) -> Anomaly {
        anomaly(
            sec,
            SignalKind::LatencyQuantile,
            "p99",
            svc,
            "node-2",
            None,
            AnomalyKind::LatencySpike,
        )
    }

    /// A rolling deploy's new instances serve their first requests slowly:
    /// that latency alone opens no incident within the change window, at
    /// the deployed service only; errors after the deploy still do, and
    /// the latency joins them.
    #[test]
    fn a_deploys_start_up_latency_alone_is_no_incident() {
        let run = |deploy: Option<ChangeEvent>, events: Vec<Anomaly>| {
            let mut c = Correlator::new(topo());
            if let Some(d) = deploy {
                c.observe_change(&d);
            }
            let mut out = Vec::new();
            for a in events {
                out.extend(c.observe(a));
            }
            out.extend(c.finish());
            out
        };
        // Without a deploy the same rise is an incident (the test's control).
        assert_eq!(run(None, vec![p99(60, "checkout")]).len(), 1);
        // Within the window after checkout's deploy: none.
        let deploy = || Some(deploy_at_zero("checkout", "2.4.1"));
        assert!(run(deploy(), vec![p99(60, "checkout"), p99(240, "checkout")]).is_empty());
        // Another service's latency, or checkout's after the window, still
        // pages: the deploy explains only its own service's start.
        assert_eq!(run(deploy(), vec![p99(60, "gateway")]).len(), 1);
        assert_eq!(run(deploy(), vec![p99(1_200, "checkout")]).len(), 1);
        // A scale-out starts new instances as a deploy does; a
        // configuration change does not.
        let change = |kind| {
            Some(ChangeEvent {
                kind,
                ..deploy_at_zero("checkout", "2.4.1")
            })
        };
        assert!(run(change(ChangeKind::Scale), vec![p99(60, "checkout")]).is_empty());
        assert_eq!(
            run(change(ChangeKind::ConfigChange), vec![p99(60, "checkout")]).len(),
            1
        );
        // A deploy that broke something: its errors open the incident, the
        // change is ranked first and the start-up latency is its evidence.
        let errors = anomaly(
            90,
            SignalKind::ErrorRate,
            "",
            "checkout",
            "node-2",
            None,
            AnomalyKind::ErrorBurst,
        );
        let incs = run(deploy(), vec![p99(60, "checkout"), errors]);
        assert_eq!(incs.len(), 1);
        assert_eq!(incs[0].root_causes[0].class, RootCauseClass::BadChange);
        assert!(incs[0]
            .anomalies
            .iter()
            .any(|a| a.signal.kind == SignalKind::LatencyQuantile));
    }

    /// A release that is slower than the one before: its latency rises
    /// with the new instances' cold start, and stays, while the baseline
    /// learns the new level and stops alerting within minutes. Held while
    /// the start could explain it, it is judged once the start is ten
    /// minutes old against the band it rose from: still above it, it
    /// pages then, with the deploy ranked first; back inside it (a cold
    /// start), nothing. A later start (the next replica) moves the
    /// judgement on.
    #[test]
    fn a_slower_release_pages_once_its_start_has_warmed_up() {
        // The p99 rises at 60 s above its band (expected 1, upper 2); its
        // values from then on: 3 for two minutes (cold), then `after`.
        let run = |after: f64, second_start: Option<i64>| {
            let mut c = Correlator::new(topo());
            c.observe_change(&deploy_at_zero("checkout", "2.4.1"));
            let rise = p99(60, "checkout");
            let signal = rise.signal.clone();
            let mut out = c.observe(rise);
            for t in (75..=1_800).step_by(15) {
                if second_start == Some(t) {
                    c.observe_change(&ChangeEvent {
                        timestamp: Timestamp::from_secs(t),
                        kind: ChangeKind::Scale,
                        ..deploy_at_zero("checkout", "2.4.1")
                    });
                }
                out.extend(c.advance(Timestamp::from_secs(t)));
                let v = if t < 180 { 3.0 } else { after };
                out.extend(c.observe_held(&signal, Timestamp::from_secs(t), v));
            }
            out.extend(c.finish());
            out
        };
        assert!(run(1.2, None).is_empty(), "a cold start that ended");
        let incs = run(2.5, None);
        assert_eq!(incs.len(), 1, "{incs:#?}");
        assert_eq!(
            incs[0].start,
            Timestamp::from_secs(600),
            "judged at ten minutes"
        );
        assert_eq!(incs[0].root_causes[0].class, RootCauseClass::BadChange);
        let later = run(2.5, Some(300));
        assert_eq!(later.len(), 1);
        assert_eq!(
            later[0].start,
            Timestamp::from_secs(900),
            "ten minutes after the last start"
        );
    }

    /// Without a change event a start shows as a pod new to its service:
    /// the pods there when the data began are not starts, one that appears
    /// later is, and its service's latency waits as after a deploy.
    #[test]
    fn a_pod_that_appears_later_is_a_start_without_a_change_event() {
        let run = |pods: &[(i64, &str, &str)], a: Anomaly| {
            let mut c = Correlator::new(topo());
            for (sec, svc, pod) in pods {
                c.learn_instance(svc, pod, Timestamp::from_secs(*sec));
            }
            let mut out = c.observe(a);
            out.extend(c.finish());
            out.len()
        };
        let first = [
            (0, "checkout", "checkout-7d9f-a"),
            (0, "gateway", "gateway-5c4b-a"),
            // A quiet replica's first record, a minute later: still one of
            // the pods the data began with.
            (60, "checkout", "checkout-7d9f-b"),
            // The same pod again later is nothing new.
            (1_000, "checkout", "checkout-7d9f-a"),
        ];
        assert_eq!(run(&first, p99(1_100, "checkout")), 1);
        let mut rolled = first.to_vec();
        rolled.push((1_000, "checkout", "checkout-8e1a-c"));
        assert_eq!(run(&rolled, p99(1_100, "checkout")), 0);
        // Only its own service, and only within the change window.
        assert_eq!(run(&rolled, p99(1_100, "gateway")), 1);
        assert_eq!(run(&rolled, p99(2_000, "checkout")), 1);
    }

    #[test]
    fn errors_after_a_deploy_rank_the_change_first() {
        let mut c = Correlator::new(topo());
        c.observe_change(&deploy_at_zero("checkout", "2.4.1"));
        c.observe(anomaly(
            60,
            SignalKind::StatusClass,
            "5xx",
            "checkout",
            "node-2",
            None,
            AnomalyKind::ErrorBurst,
        ));
        c.observe(anomaly(
            75,
            SignalKind::ErrorRate,
            "",
            "gateway",
            "node-1",
            None,
            AnomalyKind::ErrorBurst,
        ));
        let inc = c.finish().remove(0);
        assert_eq!(inc.root_causes[0].class, RootCauseClass::BadChange);
        assert_eq!(
            inc.root_causes[0].target.service.as_deref(),
            Some("checkout")
        );
        assert!(matches!(
            inc.root_causes[0].evidence[0],
            Evidence::Change { .. }
        ));
    }

    #[test]
    fn the_deepest_failing_dependency_is_the_cause() {
        let mut c = Correlator::new(topo());
        c.observe(anomaly(
            0,
            SignalKind::ErrorRate,
            "",
            "gateway",
            "node-1",
            None,
            AnomalyKind::ErrorBurst,
        ));
        c.observe(anomaly(
            0,
            SignalKind::ErrorRate,
            "",
            "checkout",
            "node-2",
            None,
            AnomalyKind::ErrorBurst,
        ));
        c.observe(anomaly(
            0,
            SignalKind::ErrorRate,
            "",
            "payments",
            "node-3",
            None,
            AnomalyKind::ErrorBurst,
        ));
        let inc = c.finish().remove(0);
        assert_eq!(
            inc.root_causes[0].target.service.as_deref(),
            Some("payments")
        );
    }

    fn errors_at(sec: i64, svc: &str) -> Anomaly {
        anomaly(
            sec,
            SignalKind::ErrorRate,
            "",
            svc,
            "node-1",
            None,
            AnomalyKind::ErrorBurst,
        )
    }

    #[test]
    fn an_unrelated_earlier_incident_does_not_swallow_a_new_onset() {
        // orders has been failing for a while (its alert keeps its incident
        // open); 15 minutes later payments, two calls away, starts failing.
        let mut c = Correlator::new(topo());
        c.observe(errors_at(0, "gateway"));
        for t in (30..=900).step_by(30) {
            c.touch(&errors_at(0, "gateway").signal, Timestamp::from_secs(t));
        }
        c.observe(errors_at(900, "payments"));
        // And a direct callee whose onset is long after the last one.
        c.observe(errors_at(1200, "checkout"));
        let incs = c.finish();
        assert_eq!(incs.len(), 3, "{incs:#?}");
        assert_eq!(
            incs[1].anomalies[0].signal.service.as_deref(),
            Some("payments")
        );
        // Propagation within a minute over a direct call is one incident.
        let mut c = Correlator::new(topo());
        c.observe(errors_at(0, "payments"));
        c.observe(errors_at(40, "checkout"));
        c.observe(errors_at(70, "gateway"));
        assert_eq!(c.finish().len(), 1);
    }

    #[test]
    fn a_dense_topology_does_not_fuse_a_day() {
        // Every service calls every other; something small fails every
        // seven minutes somewhere, all day.
        let names: Vec<String> = (0..12).map(|i| format!("svc-{i}")).collect();
        let mut cfg = CorrelatorConfig::default();
        for a in &names {
            cfg.topology.insert(
                a.clone(),
                names.iter().filter(|b| *b != a).cloned().collect(),
            );
        }
        let mut c = Correlator::new(cfg);
        let mut incidents = Vec::new();
        for i in 0..(24 * 60 / 7) {
            let svc = &names[(i * 5) % names.len()];
            incidents.extend(c.observe(errors_at(i as i64 * 420, svc)));
        }
        incidents.extend(c.finish());
        assert!(incidents.len() > 100, "{} incidents", incidents.len());
        let longest = incidents
            .iter()
            .map(|i| i.anomalies.last().unwrap().timestamp.as_millis() - i.start.as_millis())
            .max()
            .unwrap();
        assert!(longest <= 600_000, "an incident spans {longest} ms");
    }

    #[test]
    fn a_callee_fault_is_ranked_above_its_callers() {
        // No configured topology. Traces showed gateway -> orders -> stock;
        // stock starts throwing and the callers log the failure too, and
        // since they are busier their error shares cross the line first.
        let mut c = Correlator::new(CorrelatorConfig::default());
        c.learn_edge("gateway", "orders");
        c.learn_edge("orders", "stock");
        // Before the fault, the few failed requests started at gateway and
        // orders (bad input, retries) as often as anywhere.
        for i in 0..60 {
            let svc = ["gateway", "orders", "gateway", "stock"][i % 4];
            c.observe_origin(svc, Timestamp::from_secs(i as i64 * 30 - 3600));
        }
        c.observe(errors_at(0, "gateway"));
        c.observe(errors_at(15, "orders"));
        c.observe(errors_at(30, "stock"));
        // Now most failing requests fail first at stock.
        for i in 0..40 {
            let svc = if i % 8 == 0 { "gateway" } else { "stock" };
            c.observe_origin(svc, Timestamp::from_secs(i));
        }
        let inc = c.finish().remove(0);
        assert_eq!(inc.root_causes[0].target.service.as_deref(), Some("stock"));
        let rank = |s: &str| {
            inc.root_causes
                .iter()
                .position(|r| r.target.service.as_deref() == Some(s))
        };
        assert!(rank("orders") > rank("stock") && rank("gateway") > rank("stock"));
    }

    /// A CPU that rose but stayed far below its limit is a change, not a
    /// saturation (no load is offloaded for it); the same rise to 95% of
    /// the limit is one. The fill comes from the incident's `_ratio`
    /// series and decides for the container's other CPU series too.
    #[test]
    fn cpu_saturation_needs_a_cpu_near_its_limit() {
        for (fill, want) in [
            (0.05, RootCauseClass::Unknown),
            (0.95, RootCauseClass::CpuSaturation),
        ] {
            let mut c = Correlator::new(CorrelatorConfig::default());
            let cpu = |name: &str, observed: f64| {
                let mut a = anomaly(
                    0,
                    SignalKind::MetricSeries,
                    name,
                    "api",
                    "node-1",
                    Some("api-1"),
                    AnomalyKind::LevelShift,
                );
                a.observed = observed;
                a
            };
            c.observe(cpu("container_cpu_usage_millicores{pod=\"api-1\"}", 900.0));
            c.observe(cpu("container_cpu_usage_ratio{pod=\"api-1\"}", fill));
            let inc = c.finish().remove(0);
            assert_eq!(
                inc.root_causes[0].class, want,
                "fill {fill}: {:?}",
                inc.root_causes
            );
        }
    }

    /// An anomalous session at a failing service is shown with the
    /// incident's cause there, and ranks nothing (the issue counted 87
    /// session anomalies inside fault windows, none on an incident).
    #[test]
    fn anomalous_sessions_are_evidence_on_the_incident_at_their_service() {
        let mut c = Correlator::new(CorrelatorConfig::default());
        c.observe(errors_at(0, "api"));
        let session = anomaly(
            30,
            SignalKind::Session,
            "trace-7f3a",
            "api",
            "node-1",
            None,
            AnomalyKind::SessionAnomaly,
        );
        c.observe_template(session, "passed through a template 0.1% of sessions reach");
        let inc = c.finish().remove(0);
        let top = &inc.root_causes[0];
        assert_eq!(top.target.service.as_deref(), Some("api"));
        assert!(
            top.evidence.iter().any(|e| matches!(e,
                Evidence::Signal { anomaly } if anomaly.kind == AnomalyKind::SessionAnomaly)),
            "{:?}",
            top.evidence
        );
        assert_eq!(inc.anomalies.len(), 1, "evidence, not a symptom");
    }

    #[test]
    fn an_anomaly_naming_nothing_opens_no_incident() {
        let mut c = Correlator::new(CorrelatorConfig::default());
        let mut a = errors_at(0, "x");
        a.signal.service = None;
        a.signal.host = None;
        c.observe(a);
        assert!(c.finish().is_empty());
    }

    /// Symptoms open incidents; a cause-side change alone does not, and
    /// joins the incident of a symptom at its place as evidence.
    #[test]
    fn a_cause_side_change_alone_opens_no_incident() {
        let series = |sec, name: &str, observed: f64| {
            let mut a = anomaly(
                sec,
                SignalKind::MetricSeries,
                name,
                "api",
                "h1",
                Some("api-1"),
                AnomalyKind::LevelShift,
            );
            a.observed = observed;
            a
        };
        // A syscall rate that moved, a memory step (a level shift, not a
        // climb) and server latency that fell: changes, not outages.
        for a in [
            series(0, "container_syscalls_read", 10.0),
            series(0, "container_memory_working_set_bytes", 10.0),
            series(0, "server_request_duration_seconds{quantile=\"0.99\"}", 0.1),
        ] {
            let mut c = Correlator::new(CorrelatorConfig::default());
            c.observe(a.clone());
            assert!(
                c.finish().is_empty(),
                "{} opened an incident",
                a.signal.name
            );
        }
        // Latency that rose is a symptom.
        let mut c = Correlator::new(CorrelatorConfig::default());
        c.observe(series(
            0,
            "server_request_duration_seconds{quantile=\"0.99\"}",
            10.0,
        ));
        assert_eq!(c.finish().len(), 1);
        // The memory step beside a symptom at its place is part of it.
        let mut c = Correlator::new(CorrelatorConfig::default());
        c.observe(errors_at(0, "api"));
        c.observe(series(30, "container_memory_working_set_bytes", 10.0));
        let incs = c.finish();
        assert_eq!(incs.len(), 1);
        assert_eq!(incs[0].anomalies.len(), 2);
    }

    /// A CPU that rose opens an incident as a saturated CPU only where its
    /// use is not known to be well below its limit.
    #[test]
    fn a_busier_cpu_far_from_its_limit_opens_no_incident() {
        let cpu = || {
            anomaly(
                0,
                SignalKind::MetricSeries,
                "container_cpu_usage_millicores",
                "api",
                "h1",
                Some("api-1"),
                AnomalyKind::LevelShift,
            )
        };
        for (fill, incidents) in [(Some(0.05), 0), (Some(0.97), 1), (None, 1)] {
            let mut c = Correlator::new(CorrelatorConfig::default());
            if let Some(f) = fill {
                c.observe_cpu_fill("api-1", f);
            }
            c.observe(cpu());
            let found = c.finish();
            assert_eq!(found.len(), incidents, "fill {fill:?}");
            if incidents == 1 {
                assert_eq!(found[0].root_causes[0].class, RootCauseClass::CpuSaturation);
            }
        }
    }

    /// One exception class surging at a service is evidence as direct as
    /// its failing share: it opens an incident and ranks that service
    /// above a caller's client-side wait.
    #[test]
    fn an_exception_surge_opens_and_ranks_its_service() {
        let mut c = Correlator::new(CorrelatorConfig::default());
        c.observe(anomaly(
            0,
            SignalKind::ExceptionCount,
            "java.net.SocketTimeoutException",
            "orders",
            "node-1",
            None,
            AnomalyKind::ErrorBurst,
        ));
        c.observe(anomaly(
            15,
            SignalKind::MetricSeries,
            "http_client_request_duration_seconds",
            "orders",
            "node-1",
            None,
            AnomalyKind::LevelShift,
        ));
        let incs = c.finish();
        assert_eq!(incs.len(), 1);
        let top = &incs[0].root_causes[0];
        assert_eq!(top.class, RootCauseClass::DependencyFailure);
        assert_eq!(top.target.service.as_deref(), Some("orders"));
    }

    /// A service's changed template mix opens no incident (callers' mixes
    /// move with their callee's fault and would open incidents of their
    /// own before it); in an incident it names a candidate only where
    /// nothing else moved at that service.
    #[test]
    fn a_changed_template_mix_is_evidence_not_an_opener() {
        let mix = |sec, svc: &str| {
            anomaly(
                sec,
                SignalKind::TemplateMix,
                "",
                svc,
                "node-1",
                None,
                AnomalyKind::LevelShift,
            )
        };
        let mut c = Correlator::new(CorrelatorConfig::default());
        c.observe(mix(0, "api"));
        assert!(c.finish().is_empty());

        let mut c = Correlator::new(topo());
        c.observe(errors_at(0, "gateway"));
        c.observe(mix(30, "gateway"));
        c.observe(mix(40, "checkout"));
        let incs = c.finish();
        assert_eq!(incs.len(), 1);
        let causes: Vec<(RootCauseClass, Option<&str>)> = incs[0]
            .root_causes
            .iter()
            .map(|r| (r.class, r.target.service.as_deref()))
            .collect();
        // gateway's mix adds no candidate beside its errors; checkout's,
        // the only thing that moved there, does.
        assert_eq!(
            causes.iter().filter(|(_, s)| *s == Some("gateway")).count(),
            1,
            "{causes:?}"
        );
        assert!(
            causes.contains(&(RootCauseClass::Unknown, Some("checkout"))),
            "{causes:?}"
        );
    }

    /// A statement that stopped at a service is that service's own
    /// evidence: it opens an incident on its own, and where the caller
    /// logs the errors (the usual picture of an exception in a callee),
    /// the callee whose statement stopped ranks first.
    #[test]
    fn a_stopped_statement_opens_and_names_its_service() {
        let stop = |sec, svc: &str| {
            let mut a = anomaly(
                sec,
                SignalKind::TemplateMix,
                "T1",
                svc,
                "node-1",
                None,
                AnomalyKind::LevelShift,
            );
            a.detector = crate::mix::STOPPED.into();
            a
        };
        let mut c = Correlator::new(CorrelatorConfig::default());
        c.observe(stop(0, "price"));
        let incs = c.finish();
        assert_eq!(incs.len(), 1);
        assert_eq!(
            incs[0].root_causes[0].target.service.as_deref(),
            Some("price")
        );
        assert_eq!(incs[0].root_causes[0].class, RootCauseClass::Unknown);

        let mut c = Correlator::new(CorrelatorConfig::default());
        c.learn_edge("travel", "price");
        c.observe(errors_at(0, "travel"));
        c.observe(stop(30, "price"));
        let incs = c.finish();
        assert_eq!(incs.len(), 1);
        let causes: Vec<Option<&str>> = incs[0]
            .root_causes
            .iter()
            .map(|r| r.target.service.as_deref())
            .collect();
        assert_eq!(causes[..2], [Some("price"), Some("travel")], "{causes:?}");
    }

    /// A batch job's hourly error burst opens incidents until its schedule
    /// is known (three evenly spaced gaps), then only says it recurs; a
    /// burst off the schedule (a fault) still opens one, and a run during
    /// an incident at its service joins it.
    #[test]
    fn a_burst_on_its_signal_schedule_opens_no_incident() {
        let mut c = Correlator::new(CorrelatorConfig::default());
        let mut incidents = Vec::new();
        let mut details = Vec::new();
        for minute in [0, 61, 119, 180, 241, 300, 352, 360] {
            let mut a = errors_at(minute * 60, "billing");
            let signal = a.signal.clone();
            incidents.extend(c.observe_onset(&mut a));
            details.push(a.detail);
            if minute == 352 {
                // The fault's errors go on.
                for m in 353..360 {
                    c.touch(&signal, Timestamp::from_secs(m * 60));
                }
            }
        }
        incidents.extend(c.finish());
        let onsets: Vec<i64> = incidents
            .iter()
            .map(|i| i.start.as_millis() / 60_000)
            .collect();
        // Runs 1-3 open incidents (nothing is known yet); runs 4-6 recur.
        // The burst at 352 is off the schedule (a fault) and opens one; the
        // run at 360 recurs and joins it.
        assert_eq!(onsets, vec![0, 61, 119, 352], "{incidents:#?}");
        assert!(details[3].contains("recurs every 60 min"), "{}", details[3]);
        assert!(!details[6].contains("recurs"), "{}", details[6]);
        assert!(details[7].contains("recurs"), "{}", details[7]);
        let fault = incidents.last().expect("four incidents");
        assert_eq!(fault.anomalies.len(), 2, "{fault:#?}");
    }

    /// A p99 latency anomaly of service api at 0 s.
    fn api_latency() -> Anomaly {
        let mut a = anomaly(
            0,
            SignalKind::LatencyQuantile,
            "request_duration_seconds{quantile=\"0.99\"}",
            "api",
            "h1",
            None,
            AnomalyKind::LatencySpike,
        );
        a.observed = 10.0;
        a
    }

    /// A service that fails again a quarter of an hour later, while a
    /// latency of its has stayed high since the first failure, has a new
    /// incident; errors that follow a leak's climb at its place join the
    /// leak's (a signal the incident did not hold yet).
    #[test]
    fn a_fresh_alert_of_a_signal_in_an_old_incident_is_a_new_incident() {
        let latency = api_latency();
        let mut c = Correlator::new(CorrelatorConfig::default());
        let mut incidents = c.observe(errors_at(0, "api"));
        incidents.extend(c.observe(latency.clone()));
        for t in (30..=900).step_by(30) {
            c.touch(&latency.signal, Timestamp::from_secs(t));
        }
        incidents.extend(c.observe(errors_at(900, "api")));
        incidents.extend(c.finish());
        let starts: Vec<i64> = incidents
            .iter()
            .map(|i| i.start.as_millis() / 1000)
            .collect();
        assert_eq!(starts, vec![0, 900], "{incidents:#?}");

        // A leak's climb, then its errors 20 minutes later: one incident.
        let mut c = Correlator::new(CorrelatorConfig::default());
        let leak = anomaly(
            0,
            SignalKind::MetricSeries,
            "container_memory_working_set_bytes",
            "api",
            "h1",
            Some("api-1"),
            AnomalyKind::ResourceLeak,
        );
        let mut incidents = c.observe(leak.clone());
        for t in (30..=1200).step_by(30) {
            c.touch(&leak.signal, Timestamp::from_secs(t));
        }
        incidents.extend(c.observe(errors_at(1200, "api")));
        incidents.extend(c.finish());
        assert_eq!(incidents.len(), 1, "{incidents:#?}");
        assert_eq!(incidents[0].anomalies.len(), 2);
    }

    #[test]
    fn a_signal_calm_for_the_resolve_time_that_alerts_again_is_a_new_incident() {
        // Errors at api at 0 s, in alert for a minute; a latency at api
        // stays in alert and keeps the incident open. The errors alert
        // again: 200 s after they calmed down it is the same failure going
        // on, 301 s after (longer than an incident takes to resolve, 300 s)
        // it is a new one, though the incident is younger than gap_secs.
        let latency = api_latency();
        let run = |again: i64| {
            let mut c = Correlator::new(CorrelatorConfig::default());
            let errors = errors_at(0, "api");
            let mut incidents = c.observe(errors.clone());
            incidents.extend(c.observe(latency.clone()));
            for t in (10..=60).step_by(10) {
                c.touch(&errors.signal, Timestamp::from_secs(t));
            }
            for t in (30..60 + again).step_by(30) {
                c.touch(&latency.signal, Timestamp::from_secs(t));
            }
            incidents.extend(c.observe(errors_at(60 + again, "api")));
            incidents.extend(c.finish());
            incidents
                .iter()
                .map(|i| i.start.as_millis() / 1000)
                .collect::<Vec<i64>>()
        };
        assert_eq!(run(200), vec![0]);
        assert_eq!(run(301), vec![0, 361]);
    }

    #[test]
    fn ids_are_deterministic() {
        let run = || {
            let mut c = Correlator::new(topo());
            c.observe(anomaly(
                5,
                SignalKind::ErrorRate,
                "",
                "checkout",
                "node-2",
                None,
                AnomalyKind::ErrorBurst,
            ));
            c.finish()[0].id.clone()
        };
        assert_eq!(run(), run());
    }
}
