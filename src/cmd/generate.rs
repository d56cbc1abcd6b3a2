//! `remedy generate`: write a labelled scenario (see `src/generate`).

use crate::generate::{self, GenConfig};
use anyhow::{bail, Context};
use std::path::PathBuf;

/// Flags of `remedy generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seed: the same seed and flags give the same bytes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Length of the scenario in event time: `90m`, `6h`, `2d`, `45s`.
    #[arg(long, default_value = "6h")]
    pub duration: String,

    /// Services to include: a count (the first N of gateway, checkout,
    /// payments, inventory, cache, database, queue) or a comma-separated list.
    #[arg(long)]
    pub services: Option<String>,

    /// Log lines per second per service at the daily peak.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,

    /// Fault scenario: memory_leak, fd_leak, thread_leak, disk_pressure,
    /// cpu_saturation, db_timeout, bad_deploy, noisy_neighbor, quiet,
    /// slow_release (a deploy that makes checkout slower and fails
    /// nothing; not part of `all`), or `all` (the first eight, with quiet
    /// stretches between).
    #[arg(long, default_value = "all")]
    pub scenario: String,

    /// First instant (RFC 3339). Fixed by default so output is reproducible.
    #[arg(long, default_value = "2026-01-05T00:00:00Z")]
    pub start: String,

    /// Metric scrape interval (also the step of the simulation).
    #[arg(long, default_value = "15s")]
    pub scrape_interval: String,

    /// Write every data file gzip-compressed (`.json.gz`, `.prom.gz`...);
    /// replay reads them transparently.
    #[arg(long)]
    pub gzip: bool,

    /// A batch job at the `inventory` service every DURATION (e.g. `1h`):
    /// three minutes of slow requests and lock-timeout errors each run,
    /// starting 7 minutes past the period. It is the estate's ordinary
    /// behaviour, not a fault, and is not labelled. Off by default.
    #[arg(long, value_name = "DURATION")]
    pub batch_every: Option<String>,

    /// A rolling deploy every DURATION (e.g. `2h`), 37 minutes past the
    /// period, of one stateless service in turn (gateway, checkout,
    /// payments, inventory, cache): each replica in turn, 90 seconds
    /// apart, is replaced by a container with a new Kubernetes-style name
    /// that starts cold (a CPU burst, a heap that fills, slow first
    /// requests, threads and descriptors that open), with a `deploy`
    /// change event. Ordinary operations, not a fault: not labelled, and
    /// skipped while a fault is active or due within the hour. Off by
    /// default.
    #[arg(long, value_name = "DURATION")]
    pub deploy_every: Option<String>,

    /// The Java services (checkout, inventory) expose Micrometer's JVM
    /// metrics and behave like JVMs: a young generation that fills and
    /// empties every minute or two, an old generation that climbs for the
    /// best part of an hour and falls at each mixed collection (the
    /// sawtooth), collection pauses, the heap's committed size per pool,
    /// and a container working set that grows for the JVM's first old
    /// generation cycle as its heap is touched, to about 80% of the memory
    /// limit. Healthy behaviour, not a fault. Off by default.
    #[arg(long)]
    pub jvm: bool,

    /// Output directory (replaced if it holds an earlier generator output).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `90m`, `6h`, `2d`, `45s`, `1h30m` to milliseconds.
pub fn parse_duration(s: &str) -> anyhow::Result<i64> {
    let mut total: i64 = 0;
    let mut num = String::new();
    let bad =
        || anyhow::anyhow!("invalid duration {s:?}: use a number and a unit, e.g. 90m, 6h, 2d");
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let unit = match c {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            _ => return Err(bad()),
        };
        total = total
            .checked_add(n.checked_mul(unit).ok_or_else(bad)?)
            .ok_or_else(bad)?;
    }
    if !num.is_empty() || total <= 0 {
        return Err(bad());
    }
    Ok(total)
}

/// The value of an optional period flag (`--batch-every 1h`) in
/// milliseconds: a duration of at least `min` (its text and milliseconds),
/// else an error naming the flag and `why`.
fn period(
    flag: &str,
    value: Option<&str>,
    min: (&str, i64),
    why: &str,
) -> anyhow::Result<Option<i64>> {
    let Some(d) = value else {
        return Ok(None);
    };
    let ms = parse_duration(d).context(flag.to_string())?;
    if ms < min.1 {
        bail!("{flag} must be at least {} ({why})", min.0);
    }
    Ok(Some(ms))
}

/// Run `remedy generate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let duration_ms = parse_duration(&args.duration).context("--duration")?;
    let scrape_ms = parse_duration(&args.scrape_interval).context("--scrape-interval")?;
    if scrape_ms < 1000 || scrape_ms > duration_ms {
        bail!("--scrape-interval must be at least 1s and at most --duration");
    }
    generate::check_scenario(&args.scenario)?;
    let start = models::Timestamp::parse_rfc3339(&args.start)
        .with_context(|| format!("--start {:?} is not an RFC 3339 time", args.start))?;
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!("--rate must be a positive number of lines per second");
    }
    let all = generate::all_services();
    let services = match args.services.as_deref() {
        None => all.clone(),
        Some(s) if s.chars().all(|c| c.is_ascii_digit()) => {
            let n: usize = s.parse()?;
            if n == 0 || n > all.len() {
                bail!("--services {n}: choose 1 to {}", all.len());
            }
            all[..n].to_vec()
        }
        Some(list) => {
            let want: Vec<String> = list.split(',').map(|x| x.trim().to_string()).collect();
            for w in &want {
                if !all.contains(w) {
                    bail!(
                        "unknown service {w:?} in --services; known: {}",
                        all.join(", ")
                    );
                }
            }
            all.into_iter().filter(|s| want.contains(s)).collect()
        }
    };
    let batch_every_ms = period(
        "--batch-every",
        args.batch_every.as_deref(),
        ("10m", 10 * 60_000),
        "a run lasts three minutes",
    )?;
    let deploy_every_ms = period(
        "--deploy-every",
        args.deploy_every.as_deref(),
        ("1h", 60 * 60_000),
        "a deploy is skipped within an hour of a fault",
    )?;
    let cfg = GenConfig {
        batch_every_ms,
        deploy_every_ms,
        jvm: args.jvm,
        seed: args.seed,
        start_ms: start.as_millis(),
        duration_ms,
        services,
        rate: args.rate,
        scenario: args.scenario.clone(),
        scrape_ms,
        gzip: args.gzip,
    };
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} steps ({eta} left)")
            .expect("static template"),
    );
    let result = generate::generate(&cfg, &args.out, &bar);
    bar.finish_and_clear();
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            generate::cleanup_temp(&args.out);
            return Err(e);
        }
    };
    println!(
        "wrote {} lines in {} files to {} (seed {}, {} from {})",
        manifest.total_lines,
        manifest.files.len(),
        args.out.display(),
        manifest.seed,
        args.duration,
        manifest.start
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90m").unwrap(), 5_400_000);
        assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration("2d").unwrap(), 172_800_000);
        for bad in ["", "6", "6x", "h", "0s", "-5m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
