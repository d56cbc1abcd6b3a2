"""NAB scores of a results directory, for the whole corpus and per family,
plus the false-alarm rate of the default threshold on anomaly-free series.

    python3 families.py DATA_ROOT RESULTS_DIR [DEFAULT_THRESHOLD] [--json]

DATA_ROOT holds data/<family>/<file>.csv and combined_windows.json (NAB's
layout: NAB-dev, or the robustness corpus of robust_series.py); the family
of a file is its directory. The scoring is score.py's (the published
method), computed from the detections only (rows with a positive score),
which makes it fast enough to run often; on NAB-dev it gives score.py's
figures exactly.

Printed:
- corpus: one threshold per profile for the whole corpus (as NAB and an
  operator do), the normalised score and that threshold;
- label: the `label` column (the detector's own decision) scored as a
  score (one threshold, 0.5);
- default: the anomaly_score column at the default threshold (no
  optimisation);
- per family (standard profile): the score at the corpus threshold, at the
  default threshold, at the family's own best threshold (and that
  threshold), windows detected and false positives at the corpus
  threshold;
- anomaly-free series: reports per series-day and per 1,000 rows after
  the probationary period at the default threshold (the calibrated
  false-alarm rate) and at the corpus threshold."""
import bisect, csv, json, math, os, sys
from datetime import datetime

PROFILES = {
    "standard": (1.0, 0.11, 1.0),
    "reward_low_FP_rate": (1.0, 0.22, 1.0),
    "reward_low_FN_rate": (1.0, 0.11, 2.0),
}


def sig(y):
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


class File:
    """Detections of one file with their threshold-free consequences."""

    def __init__(self, rel, rows, wins, column):
        self.rel = rel
        self.family = rel.split("/")[0]
        ts = [r["timestamp"] for r in rows]
        n = len(rows)
        self.probation = min(int(math.floor(0.15 * n)), 750)
        t0 = datetime.fromisoformat(ts[0][:19])
        t1 = datetime.fromisoformat(ts[-1][:19])
        tp = datetime.fromisoformat(ts[self.probation][:19]) if n > self.probation else t1
        self.days = max((t1 - tp).total_seconds(), 1.0) / 86400.0
        self.scored_rows = max(n - self.probation, 1)
        idx = []
        for start, end in wins:
            s, e = start[:19], end[:19]
            lo = bisect.bisect_left([t[:19] for t in ts], s)
            inside = [i for i in range(lo, n) if s <= ts[i][:19] <= e]
            if inside:
                idx.append((inside[0], inside[-1]))
        self.n_windows = len(idx)
        # per detection: (score, window k or -1, value): tp value inside a
        # window, fp factor (<= 0) outside
        self.dets = []
        wi, prev = 0, None
        for i, r in enumerate(rows):
            while wi < len(idx) and idx[wi][1] < i:
                prev = idx[wi]
                wi += 1
            sc = float(r[column])
            if sc <= 0 or i < self.probation:
                continue
            k = next((k for k, (a, b) in enumerate(idx) if a <= i <= b), -1)
            if k >= 0:
                a, b = idx[k]
                self.dets.append((sc, k, sig(-(b - i + 1) / (b - a + 1))))
            elif prev is None:
                self.dets.append((sc, -1, -1.0))
            else:
                self.dets.append((sc, -1, sig((i - prev[1]) / (prev[1] - prev[0] + 1))))

    def score(self, th, weights):
        tp_w, fp_w, fn_w = weights
        total, seen, fp = 0.0, set(), 0
        for sc, k, v in self.dets:
            if sc < th:
                continue
            if k >= 0:
                if k not in seen:
                    seen.add(k)
                    total += tp_w * v
            else:
                total += fp_w * v
                fp += 1
        total -= fn_w * (self.n_windows - len(seen))
        return total, len(seen), fp


def normalised(files, th, weights):
    tp_w, _, fn_w = weights
    nw = sum(f.n_windows for f in files)
    if nw == 0:
        return float("nan")
    raw = sum(f.score(th, weights)[0] for f in files)
    null, perfect = -fn_w * nw, tp_w * sig(-1.0) * nw
    return 100.0 * (raw - null) / (perfect - null)


def best(files, weights):
    scores = sorted({round(d[0], 4) for f in files for d in f.dets})
    step = max(1, len(scores) // 400)
    cands = scores[::step] + [1.01]
    return max(((normalised(files, th, weights), th) for th in cands), key=lambda x: x[0])


def clean_rates(fs, default, corpus_th):
    """Reports per series-day and per 1,000 rows after the probationary
    period, at the default and at the corpus threshold."""
    days = sum(f.days for f in fs)
    rows = sum(f.scored_rows for f in fs)
    row = {"days": round(days, 1), "rows": rows}
    for label, t in (("default", default), ("corpus", corpus_th)):
        if t is not None:
            fp = sum(f.score(t, PROFILES["standard"])[2] for f in fs)
            row[label] = round(fp / days, 3)
            row[label + "_per_1000_rows"] = round(1000.0 * fp / rows, 2)
    return row


def load(root, results, column):
    windows = json.load(open(os.path.join(root, "combined_windows.json")))
    files = []
    for rel, wins in sorted(windows.items()):
        if not os.path.exists(os.path.join(root, "data", rel)):
            continue
        rows = list(csv.DictReader(open(os.path.join(results, rel))))
        files.append(File(rel, rows, wins, column))
    return files


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    root, results = args[0], args[1]
    default = float(args[2]) if len(args) > 2 else None
    files = load(root, results, "anomaly_score")
    out = {"corpus": {}, "families": {}, "clean": {}}
    for name, w in PROFILES.items():
        s, th = best(files, w)
        out["corpus"][name] = {"score": round(s, 1), "threshold": th}
        if default is not None:
            out["corpus"][name]["at_default"] = round(normalised(files, default, w), 1)
    labels = load(root, results, "label")
    out["label"] = {n: round(normalised(labels, 0.5, w), 1) for n, w in PROFILES.items()}
    std = PROFILES["standard"]
    th = out["corpus"]["standard"]["threshold"]
    for fam in sorted({f.family for f in files}):
        fs = [f for f in files if f.family == fam and f.n_windows > 0]
        if not fs:
            continue
        own, own_th = best(fs, std)
        win = sum(f.score(th, std)[1] for f in fs)
        fp = sum(f.score(th, std)[2] for f in fs)
        out["families"][fam] = {
            "at_corpus": round(normalised(fs, th, std), 1),
            "at_default": round(normalised(fs, default, std), 1) if default is not None else None,
            "own_best": round(own, 1),
            "own_threshold": own_th,
            "windows": f"{win}/{sum(f.n_windows for f in fs)}",
            "fp": fp,
        }
    clean = [f for f in files if f.n_windows == 0]
    for fam in sorted({f.family for f in clean}):
        fs = [f for f in clean if f.family == fam]
        out["clean"][fam] = clean_rates(fs, default, th)
    if clean:
        out["clean"]["all"] = clean_rates(clean, default, th)
    if "--json" in sys.argv:
        print(json.dumps(out))
        return
    for name, r in out["corpus"].items():
        extra = f"  at default {r['at_default']}" if "at_default" in r else ""
        print(f"{name:<20} {r['score']:6.1f}  (threshold {r['threshold']}){extra}")
    print("label column (decisions): " + " / ".join(f"{v}" for v in out["label"].values()))
    print(f"{'family (standard)':<16} {'corpus th':>9} {'default':>8} {'own best':>8} {'own th':>7} {'windows':>8} {'FP':>4}")
    for fam, r in out["families"].items():
        print(f"{fam:<16} {r['at_corpus']:9.1f} {r['at_default'] if r['at_default'] is not None else float('nan'):8.1f} {r['own_best']:8.1f} {r['own_threshold']:7.4f} {r['windows']:>8} {r['fp']:4d}")
    if out["clean"]:
        print("anomaly-free series, reports per series-day (per 1,000 rows):  default / corpus threshold")
        nan = float("nan")
        for fam, r in out["clean"].items():
            print(
                f"  {fam:<16} {r.get('default', nan):6.3f} ({r.get('default_per_1000_rows', nan):4.2f})"
                f" {r.get('corpus', nan):6.3f} ({r.get('corpus_per_1000_rows', nan):4.2f})   ({r['days']} days)"
            )


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        pass
