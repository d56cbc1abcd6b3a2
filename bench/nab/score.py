"""Numenta Anomaly Benchmark scoring (Lavin and Ahmad, 2015), standard library only.

    python3 score.py DATA_DIR WINDOWS_JSON RESULTS_DIR

RESULTS_DIR holds one `remedy detect` output per data file, at the same
relative path. For each profile (standard, reward_low_FP_rate,
reward_low_FN_rate) one anomaly-score threshold is chosen for the whole
corpus to maximise the summed score, which is normalised so that detecting
nothing scores 0 and detecting every window at its start scores 100.

Scoring as published: the first 15% of each file (at most 750 rows) is
probationary and ignored; in a window the first detection scores
tp * (2 sigmoid(-5 y) - 1) with y its position relative to the window end
(y = -1 at the start, 0 at the end) and later ones nothing; a window without
detection costs fn; a detection outside windows costs fp times the same
sigmoid of its distance past the preceding window in window lengths (-1 when
beyond 3 lengths or when no window precedes)."""
import csv, json, math, os, sys

PROFILES = {
    "standard": (1.0, 0.11, 1.0),
    "reward_low_FP_rate": (1.0, 0.22, 1.0),
    "reward_low_FN_rate": (1.0, 0.11, 2.0),
}

def scaled_sigmoid(y):
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0

def load(data_dir, windows_file, results_dir):
    windows = json.load(open(windows_file))
    files = []
    for rel, wins in sorted(windows.items()):
        res = os.path.join(results_dir, rel)
        if not os.path.exists(os.path.join(data_dir, rel)):
            continue
        rows = list(csv.DictReader(open(res)))
        ts = [r["timestamp"] for r in rows]
        scores = [float(r["anomaly_score"]) for r in rows]
        idx = []
        for start, end in wins:
            s = start[:19]; e = end[:19]
            inside = [i for i, t in enumerate(ts) if s <= t[:19] <= e]
            if inside:
                idx.append((inside[0], inside[-1]))
        n = len(rows)
        probation = min(int(math.floor(0.15 * n)), 750)
        files.append((rel, scores, idx, probation))
    return files

def file_score(scores, wins, probation, th, weights):
    tp_w, fp_w, fn_w = weights
    total = 0.0
    detected = [False] * len(wins)
    win_of = {}
    for k, (a, b) in enumerate(wins):
        for i in range(a, b + 1):
            win_of[i] = k
    prev_end = None
    prev_len = None
    wi = 0
    for i, sc in enumerate(scores):
        while wi < len(wins) and wins[wi][1] < i:
            prev_end, prev_len = wins[wi][1], wins[wi][1] - wins[wi][0] + 1
            wi += 1
        if sc < th or i < probation:
            continue
        k = win_of.get(i)
        if k is not None:
            if not detected[k]:
                a, b = wins[k]
                y = -(b - i + 1) / (b - a + 1)
                total += tp_w * scaled_sigmoid(y)
                detected[k] = True
        elif prev_end is None:
            total -= fp_w
        else:
            total += fp_w * scaled_sigmoid((i - prev_end) / prev_len)
    total -= fn_w * detected.count(False)
    return total

def main():
    data_dir, windows_file, results_dir = sys.argv[1:4]
    files = load(data_dir, windows_file, results_dir)
    all_scores = sorted({round(s, 4) for _, sc, _, _ in files for s in sc})
    # Candidate thresholds: every distinct score (rounded), thinned to 400.
    step = max(1, len(all_scores) // 400)
    candidates = all_scores[::step] + [1.01]
    n_windows = sum(len(w) for _, _, w, _ in files)
    out = {}
    for name, weights in PROFILES.items():
        tp_w, _, fn_w = weights
        null = -fn_w * n_windows
        perfect = tp_w * scaled_sigmoid(-1.0) * n_windows
        best = (-1e18, None)
        for th in candidates:
            raw = sum(file_score(sc, w, p, th, weights) for _, sc, w, p in files)
            if raw > best[0]:
                best = (raw, th)
        norm = 100.0 * (best[0] - null) / (perfect - null)
        out[name] = {"score": round(norm, 1), "threshold": best[1]}
        print(f"{name:<20} {norm:6.1f}  (threshold {best[1]})")
    print(json.dumps(out))

if __name__ == "__main__":
    main()
