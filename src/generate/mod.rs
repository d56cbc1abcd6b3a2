//! `remedy generate`: a deterministic, labelled scenario of a small
//! microservice estate.
//!
//! Time advances in scrape steps. Each step draws the log lines of every
//! replica (a Poisson count shaped by daily and weekly seasonality), applies
//! the faults active at that time, writes the lines in each service's
//! shipper format, and writes one metric scrape per host. Everything comes
//! from one seeded ChaCha stream consumed in a fixed order, so the same flags
//! give the same bytes; nothing is buffered beyond one step, so memory stays
//! flat however long the run.

mod estate;
pub mod faults;
mod write;

use anyhow::{bail, Context};
use estate::{estate, Service};
use faults::{describe, Fault, NOT_IN_ALL, SCENARIOS};
use models::Timestamp;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use write::{Line, Writers};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Seed of the random stream.
    pub seed: u64,
    /// First instant, ms since the epoch.
    pub start_ms: i64,
    /// Length in ms.
    pub duration_ms: i64,
    /// Services to include (names), in estate order.
    pub services: Vec<String>,
    /// Log lines per second per service at the daily peak.
    pub rate: f64,
    /// Scenario name or `all`.
    pub scenario: String,
    /// Scrape interval in ms.
    pub scrape_ms: i64,
    /// Write every data file gzip-compressed.
    pub gzip: bool,
    /// Period of a batch job at `inventory` (see `remedy generate
    /// --batch-every`), if any.
    pub batch_every_ms: Option<i64>,
    /// Period of rolling deploys (see `remedy generate --deploy-every`),
    /// if any.
    pub deploy_every_ms: Option<i64>,
    /// Java services expose JVM metrics and a JVM's memory (see `remedy
    /// generate --jvm`).
    pub jvm: bool,
}

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Manifest {
    /// Seed.
    pub seed: u64,
    /// Start.
    pub start: String,
    /// Duration in seconds.
    pub duration_secs: i64,
    /// Scrape interval in seconds.
    pub scrape_interval_secs: i64,
    /// Log lines per second per service at peak.
    pub rate: f64,
    /// Scenario.
    pub scenario: String,
    /// Services.
    pub services: Vec<String>,
    /// Lines per file.
    pub files: std::collections::BTreeMap<String, u64>,
    /// Total lines.
    pub total_lines: u64,
    /// Period of the batch job at inventory (`--batch-every`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_every_secs: Option<i64>,
    /// Period of rolling deploys (`--deploy-every`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy_every_secs: Option<i64>,
    /// Whether the Java services expose JVM metrics (`--jvm`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub jvm: bool,
    /// Who calls whom (`caller -> callees`): the estate's dependency graph,
    /// usable as a topology file for correlation.
    pub topology: std::collections::BTreeMap<String, Vec<String>>,
}

/// Names of every service of the full estate.
pub fn all_services() -> Vec<String> {
    estate().iter().map(|s| s.name.to_string()).collect()
}

/// Validate a scenario name.
pub fn check_scenario(name: &str) -> anyhow::Result<()> {
    if name == "all" || SCENARIOS.contains(&name) {
        Ok(())
    } else {
        bail!(
            "unknown scenario {name:?}; choose one of all, {}",
            SCENARIOS.join(", ")
        )
    }
}

/// Place the faults: after a warm-up fifth of the run (baselines need
/// history), one slot per fault with the fault in the middle third, so
/// long quiet stretches separate them.
fn schedule(cfg: &GenConfig, rng: &mut ChaCha8Rng) -> anyhow::Result<Vec<Fault>> {
    let names: Vec<&'static str> = match cfg.scenario.as_str() {
        "all" => SCENARIOS
            .iter()
            .copied()
            .filter(|s| !NOT_IN_ALL.contains(s))
            .collect(),
        "quiet" => vec![],
        s => vec![SCENARIOS
            .iter()
            .copied()
            .find(|x| *x == s)
            .expect("checked")],
    };
    let present = |svc: &Option<String>| svc.as_ref().is_none_or(|s| cfg.services.contains(s));
    let names: Vec<&'static str> = names
        .into_iter()
        .filter(|n| {
            let (_, _, root, target, _) = describe(n).expect("known");
            cfg.services.iter().any(|s| s == root) && present(&target.service)
        })
        .collect();
    if names.is_empty() {
        return Ok(vec![]);
    }
    let warm = cfg.duration_ms / 5;
    let slot = (cfg.duration_ms - warm) / names.len() as i64;
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (class, action, root, target, minutes) = describe(name).expect("known");
        let len = (minutes * 60_000).min(slot * 2 / 3);
        if len < 5 * 60_000 {
            bail!(
                "--duration is too short for {} fault(s): each needs a slot of at least 8 minutes after a warm-up fifth",
                names.len()
            );
        }
        let slack = slot - len;
        let offset = slack / 3 + rng.gen_range(0..=(slack / 3).max(1));
        let start = cfg.start_ms + warm + i as i64 * slot + offset;
        let start = start - start.rem_euclid(1000);
        let end = start + len;
        out.push(Fault {
            id: format!("f{}", i + 1),
            scenario: name,
            start: Timestamp::from_millis(start).to_rfc3339(),
            end: Timestamp::from_millis(end).to_rfc3339(),
            root_service: root.to_string(),
            target,
            class: class.as_str(),
            expected_action: action,
            start_ms: start,
            end_ms: end,
        });
    }
    Ok(out)
}

/// Knuth for small means, a rounded normal for large ones.
fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u64 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda > 40.0 {
        let z = normal(rng);
        return (lambda + z * lambda.sqrt()).round().max(0.0) as u64;
    }
    let l = (-lambda).exp();
    let mut k = 0;
    let mut p = 1.0;
    loop {
        p *= rng.gen::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Traffic shape: quiet nights, a morning ramp, an evening peak, quieter
/// weekends. 1.0 at the weekday peak.
fn seasonality(t_ms: i64) -> f64 {
    let secs = t_ms.div_euclid(1000);
    let hour = (secs.rem_euclid(86_400)) as f64 / 3600.0;
    let day = (secs.div_euclid(86_400) + 4).rem_euclid(7); // 0 = Sunday
    let daily = 0.55 - 0.4 * (2.0 * std::f64::consts::PI * (hour - 3.0) / 24.0).cos();
    let daily = daily
        + 0.1
            * (2.0 * std::f64::consts::PI * (hour - 19.0) / 12.0)
                .cos()
                .max(0.0);
    let weekly = if day == 0 || day == 6 { 0.7 } else { 1.0 };
    (daily * weekly).clamp(0.1, 1.0)
}

/// Per-step state that carries across steps.
struct State {
    /// Cumulative CPU seconds per container.
    cpu: Vec<f64>,
    /// Cumulative steal seconds per host.
    steal: [f64; 4],
    /// Histogram buckets (cumulative) for gateway and checkout.
    hist: [[f64; 8]; 2],
    /// Requests by (service, class 2xx/5xx).
    requests: [[f64; 2]; 2],
    /// Whether the OOM of a memory-leak fault happened (container restarted).
    oom_at: Option<i64>,
    /// Disk usage by type on each host (images, containers, volumes, build cache).
    disk: [[f64; 4]; 4],
    /// Consumer lag per partition.
    lag: [f64; 4],
    /// When each container started (ms; `i64::MIN` for those running
    /// before the scenario): a rolling deploy's new containers start cold.
    started: Vec<i64>,
    /// The JVM of each container of a Java service (`--jvm`), else None.
    jvm: Vec<Option<Jvm>>,
}

/// The services that run on a JVM.
pub(crate) const JAVA: [&str; 2] = ["checkout", "inventory"];

/// A JVM's heap (bytes) and collections, as Micrometer reports them.
#[derive(Debug, Clone)]
pub(crate) struct Jvm {
    /// Maximum heap (-Xmx), 70% of the container's memory limit.
    pub max: f64,
    /// Young generation in use, and what it holds before a collection.
    pub eden: f64,
    pub eden_cap: f64,
    /// Old generation in use.
    pub old: f64,
    /// Heap committed from the system: grows with what the heap held at
    /// its fullest, never shrinks.
    pub committed: f64,
    /// Heap the JVM has touched (resident): the young generation and the
    /// old generation at its fullest so far. A committed page is resident
    /// only once written, so the working set follows this, a little below
    /// the committed heap, not the committed heap itself.
    pub touched: f64,
    /// Collections and their pauses (counters).
    pub minor: f64,
    pub minor_secs: f64,
    pub mixed: f64,
    pub mixed_secs: f64,
}

impl Jvm {
    /// A JVM just started in a container with `limit` bytes of memory.
    pub(crate) fn start(limit: f64) -> Jvm {
        let max = 0.7 * limit;
        let (eden_cap, old) = (0.2 * max, 0.1 * max);
        Jvm {
            max,
            eden: 0.0,
            eden_cap,
            old,
            committed: (1.1 * (old + eden_cap)).max(0.25 * max),
            touched: old + eden_cap,
            minor: 0.0,
            minor_secs: 0.0,
            mixed: 0.0,
            mixed_secs: 0.0,
        }
    }

    /// Advance `secs` seconds allocating `rate` bytes a second; `floor` is
    /// the share of the heap the old generation keeps after a mixed
    /// collection (about 0.3; more when the application holds on to what
    /// it allocates). Young collections promote a little each time, so
    /// the old generation climbs for most of an hour between mixed ones.
    pub(crate) fn step(&mut self, secs: f64, rate: f64, floor: f64, rng: &mut ChaCha8Rng) {
        self.eden += rate * secs;
        while self.eden >= self.eden_cap {
            self.eden -= self.eden_cap;
            self.minor += 1.0;
            self.minor_secs += 0.008 + 0.01 * rng.gen::<f64>();
            self.old += 0.012 * self.max * (0.5 + rng.gen::<f64>());
            if self.old >= 0.72 * self.max {
                self.old = self.max * (floor + 0.04 * rng.gen::<f64>()).min(0.95);
                self.mixed += 1.0;
                self.mixed_secs += 0.05 + 0.1 * rng.gen::<f64>();
            }
        }
        self.old = self.old.min(self.max - self.eden_cap);
        self.touched = self.touched.max(self.old + self.eden_cap);
        self.committed = self
            .committed
            .max((self.old + self.eden_cap) * 1.1)
            .min(self.max);
    }
}

/// When in its period a rolling deploy (`--deploy-every`) starts, the
/// time between replacing one replica and the next, and how long a new
/// container's start-up shows in its series.
const DEPLOY_OFFSET_MS: i64 = 37 * 60_000;
const DEPLOY_GAP_MS: i64 = 90_000;
const START_UP_MS: i64 = 10 * 60_000;

/// Services a rolling deploy replaces, in turn (the stateful database and
/// queue are left alone).
const DEPLOYABLE: [&str; 5] = ["gateway", "checkout", "payments", "inventory", "cache"];

/// How a start-up shows in a container's series.
pub(crate) struct StartUp {
    /// Factor on CPU (class loading, JIT).
    pub cpu: f64,
    /// Factor on memory (a heap that fills).
    pub mem: f64,
    /// Factor on latency (cold caches).
    pub latency: f64,
    /// Share of its threads and descriptors open.
    pub open: f64,
}

impl StartUp {
    /// `age_ms` after a container started (all factors 1 once
    /// [`START_UP_MS`] have passed, and for containers running before the
    /// scenario).
    pub(crate) fn at(age_ms: i64) -> StartUp {
        if !(0..START_UP_MS).contains(&age_ms) {
            return StartUp {
                cpu: 1.0,
                mem: 1.0,
                latency: 1.0,
                open: 1.0,
            };
        }
        let age_s = age_ms as f64 / 1000.0;
        StartUp {
            cpu: 1.0 + 3.0 * (-age_s / 45.0).exp(),
            mem: 0.5 + 0.5 * (1.0 - (-age_s / 150.0).exp()),
            latency: 1.0 + 1.5 * (-age_s / 60.0).exp(),
            open: 1.0 - (-age_s / 60.0).exp(),
        }
    }
}

/// A Kubernetes Deployment's pod name: the ReplicaSet's hash, then five
/// characters of the API server's random-name alphabet.
fn pod_name(service: &str, rev: &str, rng: &mut ChaCha8Rng) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{service}-{rev}-{suffix}")
}

/// When in its period a batch run (`--batch-every`) starts, and how long
/// it lasts.
const BATCH_OFFSET_MS: i64 = 7 * 60_000;
const BATCH_RUN_MS: i64 = 3 * 60_000;

/// Latency bucket bounds of the generated histograms.
pub const BUCKETS: [f64; 6] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Run the generator into `out` (which must not exist yet, or be an earlier
/// output of the generator).
pub fn generate(
    cfg: &GenConfig,
    out: &Path,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Manifest> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut faults = schedule(cfg, &mut rng)?;
    let mut services: Vec<Service> = estate()
        .into_iter()
        .filter(|s| cfg.services.iter().any(|n| n == s.name))
        .collect();
    let tmp = temp_sibling(out)?;
    let mut w = Writers::create(&tmp, &services, cfg.gzip)?;
    // Container `ci` of replica `ri` of service `si` is `first[si] + ri`.
    let first: Vec<usize> = services
        .iter()
        .scan(0, |n, s| {
            let at = *n;
            *n += s.replicas.len();
            Some(at)
        })
        .collect();
    let containers: Vec<(usize, usize)> = services
        .iter()
        .enumerate()
        .flat_map(|(si, s)| (0..s.replicas.len()).map(move |ri| (si, ri)))
        .collect();
    let mut st = State {
        cpu: vec![0.0; containers.len()],
        steal: [0.0; 4],
        hist: [[0.0; 8]; 2],
        requests: [[0.0; 2]; 2],
        oom_at: None,
        disk: [[6e9, 1e9, 2e9, 1.5e9]; 4],
        lag: [20.0; 4],
        started: vec![i64::MIN; containers.len()],
        jvm: containers
            .iter()
            .map(|&(si, _)| {
                (cfg.jvm && JAVA.contains(&services[si].name))
                    .then(|| Jvm::start(services[si].mem_limit))
            })
            .collect(),
    };
    // The rolling deploy in progress (service index, start, version) and
    // how many were done (the next service in turn).
    let mut deploy: Option<(usize, i64, String, String)> = None;
    let mut deploys = 0usize;
    // Harmless events: a deploy or config change with no effect, and short
    // error blips, at random quiet times.
    let mut harmless_next = cfg.start_ms + rng.gen_range(30..90) * 60_000;
    let step = cfg.scrape_ms;
    let steps = cfg.duration_ms / step;
    progress.set_length(steps as u64);
    let mut lines: Vec<Line> = Vec::new();
    for k in 0..steps {
        let t = cfg.start_ms + k * step;
        let season = seasonality(t);
        lines.clear();
        let due = cfg.deploy_every_ms.and_then(|every| {
            let at = t - (t - cfg.start_ms).rem_euclid(every) + DEPLOY_OFFSET_MS;
            (t <= at && at < t + step).then_some(at)
        });
        if let Some(at) = due {
            let candidates: Vec<usize> = services
                .iter()
                .enumerate()
                .filter(|(_, s)| DEPLOYABLE.contains(&s.name))
                .map(|(i, _)| i)
                .collect();
            // Not near a fault: a deploy here is ordinary operations, and
            // a fault's labelled target must keep its container's name.
            let near_fault = faults
                .iter()
                .any(|f| f.start_ms < at + 3_600_000 && f.end_ms > at - 600_000);
            if !candidates.is_empty() && !near_fault {
                let si = candidates[deploys % candidates.len()];
                deploys += 1;
                let version = format!("1.{}.0", deploys + 1);
                let rev = format!("{:010x}", rng.gen::<u64>() & 0xff_ffff_ffff);
                deploy = Some((si, at, version, rev));
            }
        }
        if let Some((si, at, version, rev)) = &deploy {
            let si = *si;
            for ri in 0..services[si].replicas.len() {
                let when = at + ri as i64 * DEPLOY_GAP_MS;
                if t <= when && when < t + step {
                    let name = pod_name(services[si].name, rev, &mut rng);
                    let ci = first[si] + ri;
                    // A fault due later at this replica is at its new
                    // container (one that is over stays where it was).
                    let old = std::mem::replace(&mut services[si].replicas[ri].0, name);
                    for f in faults.iter_mut().filter(|f| f.end_ms > when) {
                        if f.target.container.as_deref() == Some(old.as_str()) {
                            f.target.container = Some(services[si].replicas[ri].0.clone());
                        }
                    }
                    st.started[ci] = when;
                    // A new container's CPU counter starts at zero, and
                    // its JVM afresh.
                    st.cpu[ci] = 0.0;
                    if let Some(j) = st.jvm[ci].as_mut() {
                        *j = Jvm::start(services[si].mem_limit);
                    }
                    let svc = services[si].name;
                    for (off, level, text) in [
                        (800, "info", format!("started {svc} {version} in 11.4 seconds, listening on :8080")),
                        (900, "warn", format!("connection pool of {svc} not warmed up yet, first requests may be slow")),
                    ] {
                        lines.push(Line {
                            ts: when + off,
                            service: si,
                            replica: ri,
                            level,
                            text,
                            latency: 0.0,
                            status: 200,
                            trace: rng.gen::<u64>(),
                        });
                    }
                }
            }
            if t > *at + services[si].replicas.len() as i64 * DEPLOY_GAP_MS {
                deploy = None;
            }
        }
        let active: Vec<(&Fault, f64)> = faults
            .iter()
            .filter_map(|f| f.progress(t).map(|p| (f, p)))
            .collect();
        let is = |name: &str| {
            active
                .iter()
                .find(|(f, _)| f.scenario == name)
                .map(|(f, p)| (*f, *p))
        };
        // --- logs ---
        for (si, s) in services.iter().enumerate() {
            for (ri, (container, host)) in s.replicas.iter().enumerate() {
                let mut lambda =
                    cfg.rate * season * (step as f64 / 1000.0) / s.replicas.len() as f64;
                lambda *= 1.0 + 0.1 * normal(&mut rng).clamp(-2.0, 2.0);
                let n = poisson(&mut rng, lambda);
                let mut err_p = 0.002;
                let mut warn_p = 0.01;
                let mut lat_mult = 1.0;
                let mut err_msgs: Vec<String> = Vec::new();
                let dep_lag = |f: &Fault, lag_ms: i64| t >= f.start_ms + lag_ms;
                // A container that started minutes ago serves slowly.
                if cfg.deploy_every_ms.is_some() {
                    lat_mult *= StartUp::at(t.saturating_sub(st.started[first[si] + ri])).latency;
                }
                if let Some((f, p)) = is("db_timeout") {
                    match s.name {
                        "payments" => {
                            err_p = 0.45;
                            lat_mult = 8.0;
                            err_msgs.push("event=database_timeout".into());
                        }
                        "inventory" if dep_lag(f, 20_000) => {
                            err_p = 0.25;
                            lat_mult = 5.0;
                            err_msgs.push(
                                "query failed: canceling statement due to statement timeout".into(),
                            );
                        }
                        "database" => {
                            err_p = 0.3 + 0.3 * p;
                            err_msgs.push("FATAL: sorry, too many clients already".into());
                        }
                        "checkout" if dep_lag(f, 30_000) => {
                            err_p = 0.2;
                            err_msgs
                                .push("payment call failed: upstream payments timed out".into());
                        }
                        "gateway" if dep_lag(f, 45_000) => {
                            err_p = 0.08;
                            err_msgs.push("upstream checkout returned 502".into());
                        }
                        _ => {}
                    }
                }
                if let Some((f, _)) = is("slow_release") {
                    if t >= f.start_ms + 15_000 && s.name == "checkout" {
                        lat_mult *= 2.5;
                    }
                }
                if let Some((f, _)) = is("bad_deploy") {
                    if t >= f.start_ms + 15_000 {
                        match s.name {
                            "checkout" => {
                                err_p = 0.35;
                                err_msgs.push("java.lang.NullPointerException at PriceCalculator.apply(PriceCalculator.java:88)".into());
                            }
                            "gateway" if t >= f.start_ms + 30_000 => {
                                err_p = 0.12;
                                err_msgs.push("upstream checkout returned 500".into());
                            }
                            _ => {}
                        }
                    }
                }
                if let Some((f, p)) = is("memory_leak") {
                    if f.target.container.as_deref() == Some(container.as_str())
                        && p > 0.55
                        && st.oom_at.is_none()
                    {
                        warn_p = 0.05 + 0.3 * (p - 0.55);
                    }
                    if let Some(oom) = st.oom_at {
                        if t >= oom && t < oom + 90_000 {
                            if s.name == "checkout" {
                                err_p = 0.3;
                                err_msgs.push(
                                    "order service unavailable: connection reset by peer".into(),
                                );
                            } else if s.name == "gateway" && t >= oom + 15_000 {
                                err_p = 0.1;
                                err_msgs.push("upstream checkout returned 502".into());
                            }
                        }
                    }
                }
                if let Some((f, p)) = is("fd_leak") {
                    if f.target.container.as_deref() == Some(container.as_str()) && p > 0.6 {
                        err_p = 0.1 + 0.6 * (p - 0.6);
                        err_msgs.push("accept4() failed: too many open files".into());
                    }
                }
                if let Some((f, p)) = is("thread_leak") {
                    if f.target.container.as_deref() == Some(container.as_str()) && p > 0.65 {
                        err_p = 0.1 + 0.6 * (p - 0.65);
                        err_msgs.push("java.lang.OutOfMemoryError: unable to create native thread: possibly out of memory or process/resource limits reached".into());
                    }
                }
                if let Some((f, p)) = is("disk_pressure") {
                    if f.target.host.as_deref() == Some(*host) && p > 0.7 {
                        err_p = 0.08 + 0.5 * (p - 0.7);
                        err_msgs.push("write failed: No space left on device".into());
                    }
                }
                if let Some((_, p)) = is("cpu_saturation") {
                    if s.name == "queue" && p > 0.15 {
                        warn_p = 0.3;
                        lat_mult = 6.0;
                    }
                    if s.name == "checkout" && p > 0.3 {
                        lat_mult = 2.0;
                    }
                }
                if let Some((f, _)) = is("noisy_neighbor") {
                    if f.target.host.as_deref() == Some(*host) {
                        lat_mult = 5.0;
                        warn_p = 0.08;
                    }
                }
                // A batch job's run: minutes of lock waits at inventory,
                // every period, as ordinary as the daily traffic curve.
                if s.name == "inventory" {
                    if let Some(every) = cfg.batch_every_ms {
                        let phase = (t - cfg.start_ms).rem_euclid(every);
                        if (BATCH_OFFSET_MS..BATCH_OFFSET_MS + BATCH_RUN_MS).contains(&phase) {
                            err_p = err_p.max(0.2);
                            lat_mult *= 4.0;
                            err_msgs.push(
                                "batch reindex: Lock wait timeout exceeded; try restarting transaction"
                                    .into(),
                            );
                        }
                    }
                }
                // Blips: a burst of a few errors in one step, no fault.
                if t >= harmless_next
                    && t < harmless_next + step
                    && (si + ri) % 3 == (k as usize) % 3
                {
                    err_p = err_p.max(0.05);
                }
                for _ in 0..n {
                    let ts = t + rng.gen_range(0..step);
                    let roll: f64 = rng.gen();
                    let latency = s.latency * lat_mult * (0.35 * normal(&mut rng)).exp();
                    let (level, text) = if roll < err_p {
                        let m = if err_msgs.is_empty() {
                            "request failed: internal error".to_string()
                        } else {
                            err_msgs[rng.gen_range(0..err_msgs.len())].clone()
                        };
                        ("error", m)
                    } else if roll < err_p + warn_p {
                        let tpl = estate::warn_templates(s.name);
                        let tpl = tpl[rng.gen_range(0..tpl.len())];
                        ("warn", fill(tpl, &mut rng))
                    } else {
                        let tpl = estate::info_templates(s.name);
                        ("info", fill(tpl[rng.gen_range(0..tpl.len())], &mut rng))
                    };
                    let status = if level == "error" {
                        500 + rng.gen_range(0..4)
                    } else {
                        200
                    };
                    if let Some(h) = ["gateway", "checkout"].iter().position(|x| *x == s.name) {
                        let b = BUCKETS
                            .iter()
                            .position(|b| latency <= *b)
                            .unwrap_or(BUCKETS.len());
                        for bucket in st.hist[h][b..7].iter_mut() {
                            *bucket += 1.0;
                        }
                        st.hist[h][7] += latency;
                        st.requests[h][usize::from(status >= 500)] += 1.0;
                    }
                    let trace = rng.gen::<u64>();
                    lines.push(Line {
                        ts,
                        service: si,
                        replica: ri,
                        level,
                        text,
                        latency,
                        status,
                        trace,
                    });
                }
            }
        }
        // Kernel OOM kill, once, when the leaking container hits its limit.
        let mut kernel: Vec<(i64, String, String)> = Vec::new();
        if let Some((f, p)) = is("memory_leak") {
            if p >= 0.8 && st.oom_at.is_none() {
                st.oom_at = Some(t);
                let c = f.target.container.clone().unwrap_or_default();
                let host = f.target.host.clone().unwrap_or_default();
                kernel.push((t + 500, host.clone(), format!("Memory cgroup out of memory: Killed process 4242 (java) total-vm:4194304kB, anon-rss:2097152kB, container {c}")));
                kernel.push((
                    t + 700,
                    host,
                    format!("containerd: task {c} exited with status 137 (OOMKilled), restarting"),
                ));
            }
        }
        // Change events.
        let mut changes: Vec<(i64, &str, &str, String, String)> = Vec::new();
        // The deploy that began this step.
        if let Some((si, at, version, _)) = &deploy {
            if t <= *at && *at < t + step {
                let svc = services[*si].name;
                changes.push((
                    *at,
                    svc,
                    "deploy",
                    version.clone(),
                    format!("rolling deploy of {svc} {version}"),
                ));
            }
        }
        // The releases the change faults ship, and their rollbacks.
        for f in &faults {
            let ((version, what), (back, undo)) = match f.scenario {
                "bad_deploy" => (
                    ("2.5.0", "deployed checkout 2.5.0 (new pricing engine)"),
                    ("2.4.1", "rolled back checkout to 2.4.1"),
                ),
                "slow_release" => (
                    ("2.6.0", "deployed checkout 2.6.0 (new recommendations)"),
                    ("2.5.1", "rolled back checkout to 2.5.1"),
                ),
                _ => continue,
            };
            if t <= f.start_ms && f.start_ms < t + step {
                changes.push((
                    f.start_ms,
                    "checkout",
                    "deploy",
                    version.into(),
                    what.into(),
                ));
            }
            if f.end_ms - step <= t && t < f.end_ms {
                changes.push((
                    f.end_ms - 1000,
                    "checkout",
                    "deploy",
                    back.into(),
                    undo.into(),
                ));
            }
        }
        if t >= harmless_next && t < harmless_next + step {
            let svc = ["inventory", "cache", "gateway"][rng.gen_range(0..3)];
            if cfg.services.iter().any(|s| s == svc) {
                let kind = if rng.gen_bool(0.5) {
                    "deploy"
                } else {
                    "config_change"
                };
                changes.push((
                    t + 1000,
                    svc,
                    kind,
                    format!("1.{}.0", k % 50),
                    format!("routine {kind} of {svc}"),
                ));
            }
            harmless_next += rng.gen_range(60..150) * 60_000;
        }
        lines.sort_by_key(|l| (l.service, l.ts, l.replica));
        // A fault's deploy and a routine change can fall in the same step;
        // the changes file must still be in time order.
        changes.sort_by_key(|c| c.0);
        w.write_logs(&services, &lines, &kernel, &changes)?;
        // --- metrics ---
        w.write_scrape(t, &services, &faults, &mut st, &mut rng, step)?;
        progress.inc(1);
    }
    let files = w.finish()?;
    let total_lines = files.values().sum();
    let manifest = Manifest {
        seed: cfg.seed,
        start: Timestamp::from_millis(cfg.start_ms).to_rfc3339(),
        duration_secs: cfg.duration_ms / 1000,
        scrape_interval_secs: cfg.scrape_ms / 1000,
        rate: cfg.rate,
        scenario: cfg.scenario.clone(),
        batch_every_secs: cfg.batch_every_ms.map(|ms| ms / 1000),
        deploy_every_secs: cfg.deploy_every_ms.map(|ms| ms / 1000),
        jvm: cfg.jvm,
        services: services.iter().map(|s| s.name.to_string()).collect(),
        files,
        total_lines,
        topology: services
            .iter()
            .map(|s| {
                (
                    s.name.to_string(),
                    s.calls.iter().map(|c| c.to_string()).collect(),
                )
            })
            .collect(),
    };
    let labels = serde_json::json!({
        "seed": cfg.seed,
        "start": Timestamp::from_millis(cfg.start_ms).to_rfc3339(),
        "end": Timestamp::from_millis(cfg.start_ms + cfg.duration_ms).to_rfc3339(),
        "faults": faults,
    });
    std::fs::write(
        tmp.join("labels.json"),
        serde_json::to_string_pretty(&labels)? + "\n",
    )?;
    std::fs::write(
        tmp.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;
    replace_dir(&tmp, out)?;
    Ok(manifest)
}

fn fill(tpl: &str, rng: &mut ChaCha8Rng) -> String {
    let mut out = String::with_capacity(tpl.len() + 16);
    let mut parts = tpl.split("{}");
    out.push_str(parts.next().unwrap_or(""));
    for p in parts {
        let v: u32 = rng.gen_range(1..100_000);
        out.push_str(&v.to_string());
        out.push_str(p);
    }
    out
}

fn temp_sibling(out: &Path) -> anyhow::Result<PathBuf> {
    if out.exists() && !out.join("manifest.json").exists() {
        let empty = std::fs::read_dir(out)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty {
            bail!(
                "{} exists and is not an earlier output of remedy generate (no manifest.json); choose another --out",
                out.display()
            );
        }
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let name = out
        .file_name()
        .context("--out needs a directory name")?
        .to_string_lossy();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    Ok(tmp)
}

fn replace_dir(tmp: &Path, out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        std::fs::remove_dir_all(out)
            .with_context(|| format!("cannot replace {}", out.display()))?;
    }
    std::fs::rename(tmp, out)
        .with_context(|| format!("cannot move output into {}", out.display()))?;
    Ok(())
}

/// Removes the temporary directory of a failed run.
pub fn cleanup_temp(out: &Path) {
    if let (Some(parent), Some(name)) = (out.parent(), out.file_name()) {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let _ = std::fs::remove_dir_all(parent.join(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        )));
    }
}
