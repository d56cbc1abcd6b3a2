"""Robustness corpus for `remedy detect`: seeded synthetic series in the
shapes of metric families, with known anomalies, in NAB's layout.

    python3 robust_series.py OUT_DIR [SEED]      (needs numpy; seed 11)

Writes OUT_DIR/data/<family>/<name>.csv (`timestamp,value`),
OUT_DIR/combined_windows.json and OUT_DIR/combined_labels.json, so that
`score.py` and `families.py` score it exactly as NAB-dev. Windows follow
NAB's rule: 10% of the file's length divided by its number of anomalies,
centred on each labelled anomaly.

Families (each with anomalous series and anomaly-free ones, `*_clean_*`,
on which every report is a false alarm):

- spiky_counts: over-dispersed counts (negative binomial) with a daily
  rhythm and short natural bursts (social-media mentions); anomalies are
  sustained surges or a collapse towards zero.
- level_shift: cloud-instance CPU / network with noise and benign single
  spikes; anomalies are level shifts (up or down) that persist.
- sparse_rates: hourly rates that are often zero or tiny and noisy (ad
  exchange click/cost rates); anomalies are a shift of the rate or a run
  of extreme values.
- traffic: speed or occupancy at irregular sampling (5-20 minutes), a
  daily rush-hour dip and heavy noise; anomalies are long collapses.
- stuck: a noisy seasonal metric whose sensor gets stuck at one value.
- drift: a metric that starts to climb slowly (a leak) until it is far
  from normal.
- variance: the mean stays, the noise grows several-fold.
- spike: isolated extreme values in a seasonal noisy series.

Nothing here is tuned to the NAB files: shapes and rates are chosen from
what such metrics do, and the seed fixes them."""
import datetime, json, os, sys
import numpy as np

out = sys.argv[1]
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 11
rng = np.random.default_rng(seed)
T0 = datetime.datetime(2015, 3, 2)


def times(n, minutes, jitter=0.0):
    """Timestamps every `minutes` (with random extra gaps up to `jitter`
    times the step for irregular sampling)."""
    steps = np.full(n, minutes * 60.0)
    if jitter > 0:
        steps = steps * (1 + rng.uniform(0, jitter, n))
    secs = np.concatenate([[0.0], np.cumsum(steps[:-1])])
    return [T0 + datetime.timedelta(seconds=float(s)) for s in np.round(secs)]


def tod(ts):
    return np.array([(t.hour * 60 + t.minute) / 1440 for t in ts])


def dow(ts):
    return np.array([t.weekday() for t in ts])


def daily(ts, amp, phase=0.0):
    return amp * np.sin(2 * np.pi * (tod(ts) - phase))


def anomaly_rows(n, k):
    """k anomaly positions after the probationary 15% and before the end,
    spread out."""
    lo, hi = int(0.25 * n), int(0.92 * n)
    edges = np.linspace(lo, hi, k + 1).astype(int)
    return [int(rng.integers(a + (b - a) // 5, b - (b - a) // 5)) for a, b in zip(edges[:-1], edges[1:])]


def spiky_counts(n, anomalous):
    ts = times(n, 5)
    base = rng.uniform(5, 120)
    mu = base * (1 + 0.5 * np.sin(2 * np.pi * (tod(ts) - 0.3))) * (1 + 0.15 * (dow(ts) >= 5))
    # natural bursts: a few per week, minutes to an hour, up to about x2.5
    burst = np.ones(n)
    for s in rng.integers(0, n, int(n / 500)):
        burst[s : s + rng.integers(1, 12)] *= rng.uniform(1.3, 2.5)
    labels = []
    if anomalous:
        for a in anomaly_rows(n, int(rng.integers(1, 4))):
            if rng.random() < 0.75:
                burst[a : a + rng.integers(12, 72)] *= rng.uniform(3.5, 8)
            else:
                burst[a : a + rng.integers(24, 96)] *= 0.1
            labels.append(a)
    r = rng.uniform(3, 15)  # dispersion
    lam = mu * burst
    x = rng.negative_binomial(r, r / (r + lam)).astype(float)
    return ts, x, labels


def level_shift(n, anomalous):
    ts = times(n, 5)
    level = rng.uniform(5, 60)
    sd = rng.uniform(0.5, 3) * (1 + level / 40)
    x = level + rng.normal(0, sd, n) + 0.3 * sd * daily(ts, 1, rng.uniform())
    # benign single spikes (a cron job) in every series
    for s in rng.integers(0, n, int(n / 400)):
        x[s] += rng.uniform(3, 7) * sd
    labels = []
    if anomalous:
        for a in anomaly_rows(n, int(rng.integers(1, 3))):
            shift = rng.choice([-1, 1]) * rng.uniform(4, 10) * sd
            x[a:] += shift
            labels.append(a)
    return ts, np.maximum(x, 0), labels


def sparse_rates(n, anomalous):
    ts = times(n, 60)
    rate = rng.uniform(0.05, 1.0)
    active = rng.random(n) > rng.uniform(0.0, 0.3)  # hours with no traffic
    x = rate * (1 + 0.3 * np.sin(2 * np.pi * tod(ts))) * rng.lognormal(0, 0.5, n) * active
    labels = []
    if anomalous:
        for a in anomaly_rows(n, int(rng.integers(1, 3))):
            if rng.random() < 0.5:
                x[a : a + rng.integers(6, 30)] *= rng.uniform(5, 12)
            else:
                x[a:] *= rng.uniform(2.5, 4)
            labels.append(a)
    return ts, np.round(x, 4), labels


def traffic(n, anomalous):
    ts = times(n, 5, jitter=2.0)
    occupancy = rng.random() < 0.4
    t = tod(ts)
    rush = np.exp(-((t - 0.33) ** 2) / 0.002) + np.exp(-((t - 0.73) ** 2) / 0.003)
    weekday = dow(ts) < 5
    if occupancy:
        x = 5 + 20 * rush * weekday + rng.gamma(1.5, 2.5, n)
    else:
        x = 62 - 18 * rush * weekday + rng.normal(0, 5, n) - rng.exponential(3, n)
    labels = []
    if anomalous:
        for a in anomaly_rows(n, int(rng.integers(1, 3))):
            m = rng.integers(10, 40)
            if occupancy:
                x[a : a + m] += rng.uniform(25, 45)
            else:
                x[a : a + m] = rng.uniform(8, 22) + rng.normal(0, 3, len(x[a : a + m]))
            labels.append(a)
    return ts, np.round(np.maximum(x, 0), 1), labels


def stuck(n, anomalous):
    ts = times(n, 5)
    x = 40 + daily(ts, rng.uniform(3, 15), rng.uniform()) + rng.normal(0, rng.uniform(0.5, 3), n)
    labels = []
    if anomalous:
        for a in anomaly_rows(n, 1):
            x[a : a + rng.integers(150, 500)] = x[a]
            labels.append(a)
    return ts, np.round(x, 3), labels


def drift(n, anomalous):
    ts = times(n, 5)
    sd = rng.uniform(0.5, 2)
    x = 50 + daily(ts, rng.uniform(0, 8), rng.uniform()) + rng.normal(0, sd, n)
    labels = []
    if anomalous:
        for a in anomaly_rows(n, 1):
            length = int(rng.integers(150, 600))
            ramp = np.minimum(np.arange(n - a), length) / length * rng.uniform(8, 15) * sd
            x[a:] += ramp
            labels.append(a + length // 4)
    return ts, np.round(x, 3), labels


def variance(n, anomalous):
    ts = times(n, 5)
    sd = rng.uniform(0.5, 2)
    x = 30 + daily(ts, rng.uniform(0, 6), rng.uniform()) + rng.normal(0, sd, n)
    labels = []
    if anomalous:
        for a in anomaly_rows(n, int(rng.integers(1, 3))):
            m = int(rng.integers(100, 400))
            x[a : a + m] += rng.normal(0, sd * rng.uniform(4, 7), len(x[a : a + m]))
            labels.append(a)
    return ts, np.round(x, 3), labels


def spike(n, anomalous):
    ts = times(n, 5)
    sd = rng.uniform(0.5, 3)
    x = 20 + daily(ts, rng.uniform(2, 10), rng.uniform()) + rng.standard_t(5, n) * sd
    labels = []
    if anomalous:
        for a in anomaly_rows(n, int(rng.integers(1, 4))):
            x[a] += rng.choice([-1, 1]) * rng.uniform(10, 20) * sd
            labels.append(a)
    return ts, np.round(x, 3), labels


FAMILIES = {
    "spiky_counts": (spiky_counts, (6000, 12000)),
    "level_shift": (level_shift, (3000, 5000)),
    "sparse_rates": (sparse_rates, (1400, 2000)),
    "traffic": (traffic, (2000, 3000)),
    "stuck": (stuck, (3000, 6000)),
    "drift": (drift, (3000, 6000)),
    "variance": (variance, (3000, 6000)),
    "spike": (spike, (3000, 6000)),
}
N_ANOMALOUS, N_CLEAN = 4, 2

windows, labels_out = {}, {}
for fam, (gen, (lo, hi)) in FAMILIES.items():
    os.makedirs(f"{out}/data/{fam}", exist_ok=True)
    for k in range(N_ANOMALOUS + N_CLEAN):
        anomalous = k < N_ANOMALOUS
        name = f"{fam}_{k}" if anomalous else f"{fam}_clean_{k - N_ANOMALOUS}"
        n = int(rng.integers(lo, hi))
        ts, x, labs = gen(n, anomalous)
        rel = f"{fam}/{name}.csv"
        with open(f"{out}/data/{rel}", "w") as f:
            f.write("timestamp,value\n")
            for a, v in zip(ts, x):
                f.write(f"{a:%Y-%m-%d %H:%M:%S},{v:.4f}\n")
        fmt = lambda i: f"{ts[max(0, min(n - 1, i))]:%Y-%m-%d %H:%M:%S}.000000"
        half = int(0.1 * n / max(1, len(labs))) // 2
        windows[rel] = [[fmt(a - half), fmt(a + half)] for a in sorted(labs)]
        labels_out[rel] = [fmt(a) for a in sorted(labs)]
json.dump(windows, open(f"{out}/combined_windows.json", "w"), indent=1)
json.dump(labels_out, open(f"{out}/combined_labels.json", "w"), indent=1)
