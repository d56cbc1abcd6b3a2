"""Anomaly-free synthetic series (8,064 five-minute rows, 28 days) for
counting false detections:   python3 clean_series.py OUT_DIR   (needs numpy;
seed 7, the series BENCHMARKS.md reports)."""
import datetime, sys
import numpy as np

out = sys.argv[1]
rng = np.random.default_rng(7)
n = 8064
t0 = datetime.datetime(2014, 4, 1)
ts = [t0 + datetime.timedelta(minutes=5 * i) for i in range(n)]
tod = np.array([(x.hour * 60 + x.minute) / 1440 for x in ts])
dow = np.array([x.weekday() for x in ts])
series = {
    "flat": np.full(n, 50.0),
    "noise": 50 + rng.normal(0, 1, n),
    "noise_heavy_t3": 50 + rng.standard_t(3, n),
    "square_wave": np.where((tod > 0.3) & (tod < 0.7), 80.0, 20.0),
    "square_small_noise": np.where((tod > 0.3) & (tod < 0.7), 80.0, 20.0) + rng.normal(0, 0.5, n),
    "sine_noise": 50 + 10 * np.sin(2 * np.pi * tod) + rng.normal(0, 1, n),
    "weekly": 50 + 10 * np.sin(2 * np.pi * tod) + np.where(dow >= 5, -20, 0) + rng.normal(0, 1, n),
    "trend": np.linspace(0, 100, n) + rng.normal(0, 1, n),
    "random_walk": np.cumsum(rng.normal(0, 1, n)),
    "counts_poisson3": rng.poisson(3, n).astype(float),
    "sparse_counts": rng.poisson(0.05, n).astype(float),
}
for name, xs in series.items():
    with open(f"{out}/{name}.csv", "w") as f:
        f.write("timestamp,value\n")
        for a, v in zip(ts, xs):
            f.write(f"{a:%Y-%m-%d %H:%M:%S},{v:.4f}\n")
