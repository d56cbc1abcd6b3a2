//! Memory held per tracked signal: creates N seasonal-baseline detectors,
//! feeds each an hour of 15 s points, and prints the state size each
//! reports and the process's peak resident memory.
//!
//! `cargo run --release -p analyze --example signal_memory -- 1000000`

use analyze::{BaselineDetector, BaselineDetectorConfig};

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let before = peak_rss_kib().unwrap_or(0);
    let mut signals: Vec<BaselineDetector> = (0..n)
        .map(|_| BaselineDetector::new(BaselineDetectorConfig::default()))
        .collect();
    // An hour of points each, past the cold start, so every cold-start
    // buffer has been fitted and freed.
    for step in 0..240 {
        let t = 1_767_571_200.0 + step as f64 * 15.0;
        for (k, d) in signals.iter_mut().enumerate() {
            let x = 100.0 + (k % 97) as f64 + ((step * 31 + k) % 7) as f64;
            d.observe(t, x);
        }
    }
    let state = signals[0].state_bytes();
    let after = peak_rss_kib().unwrap_or(0);
    println!(
        "{n} signals: {state} bytes of state each; peak RSS {:.1} MiB ({:.0} bytes per signal above the {:.1} MiB baseline)",
        after as f64 / 1024.0,
        (after.saturating_sub(before) as f64 * 1024.0) / n as f64,
        before as f64 / 1024.0
    );
}
