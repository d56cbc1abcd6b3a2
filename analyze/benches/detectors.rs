//! Detector throughput, samples per second on one core:
//! `cargo bench -p analyze --bench detectors`.
//!
//! Each iteration feeds a batch of points at a 15 s cadence (a daily cycle
//! plus noise, computed before timing) through one detector that has
//! already seen a day, so the figure is the steady-state cost of baseline
//! update plus scoring and nothing else. The ensemble detector (the
//! default of `remedy detect`) gets five-minute rows, so that its daily and
//! weekly predictors are both active, after 20,000 rows (its tail histories
//! full), with time moving forward across iterations.

use analyze::{
    BaselineDetector, BaselineDetectorConfig, CountDetector, EnsembleConfig, EnsembleDetector,
    LeakDetector,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const BATCH: usize = 100_000;

fn point(i: usize) -> (f64, f64) {
    point_every(i, 15.0)
}

fn point_every(i: usize, dt: f64) -> (f64, f64) {
    let t = 1_767_571_200.0 + i as f64 * dt;
    let noise = ((i as f64 * 12.9898).sin() * 43758.5453).fract();
    (
        t,
        100.0 + 20.0 * (std::f64::consts::TAU * t / 86_400.0).sin() + noise,
    )
}

fn detectors(c: &mut Criterion) {
    let batch: Vec<(f64, f64)> = (5760..5760 + BATCH).map(point).collect();
    let mut g = c.benchmark_group("detector");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("seasonal_baseline", |b| {
        let mut d = BaselineDetector::new(BaselineDetectorConfig::default());
        for i in 0..5760 {
            let (t, x) = point(i);
            d.observe(t, x);
        }
        // Replaying the batch moves time backwards once per iteration,
        // which the baseline treats as no time passing: the work per point
        // is the same.
        b.iter(|| {
            for &(t, x) in &batch {
                black_box(d.observe(t, x));
            }
        })
    });
    g.bench_function("poisson_count", |b| {
        let mut d = CountDetector::default();
        let mut i = 0usize;
        b.iter(|| {
            for _ in 0..BATCH {
                black_box(d.observe((i % 7) as f64));
                i += 1;
            }
        })
    });
    g.bench_function("leak_slope", |b| {
        let mut d = LeakDetector::default();
        b.iter(|| {
            for &(_, x) in &batch {
                black_box(d.observe(x));
            }
        })
    });
    g.bench_function("ensemble", |b| {
        const WARM: usize = 20_000;
        let batch: Vec<(f64, f64)> = (WARM..WARM + BATCH)
            .map(|i| point_every(i, 300.0))
            .collect();
        let mut d = EnsembleDetector::new(EnsembleConfig::default());
        for i in 0..WARM {
            let (t, x) = point_every(i, 300.0);
            d.observe(t, x);
        }
        // Each replay of the batch is shifted a whole number of weeks
        // later, so time only moves forward and the pattern lines up.
        let span = (BATCH as f64 * 300.0 / 604_800.0).ceil() * 604_800.0;
        let mut shift = 0.0;
        b.iter(|| {
            for &(t, x) in &batch {
                black_box(d.observe(t + shift, x));
            }
            shift += span;
        })
    });
    g.finish();
}

criterion_group!(benches, detectors);
criterion_main!(benches);
