"""Alert episodes of `remedy detect` outputs against NAB windows.

    python3 episodes.py WINDOWS_JSON LABELS_JSON RESULTS_DIR NAME

An episode is a run of consecutive rows labelled 1. It is a false alarm
when it overlaps no anomaly window. A window is detected when an episode
starts inside it; time to detect is from the labelled anomaly (the
window's label in combined_labels.json) to that episode's first row,
negative when the alert came before the label (NAB windows open well
before it). The probationary rows (first 15%, at most 750) are ignored,
as NAB does."""
import csv, json, math, os, sys
from datetime import datetime

def ts(s):
    return datetime.fromisoformat(s.strip()[:19])

windows_file, labels_file, results_dir, name = sys.argv[1:5]
windows = json.load(open(windows_file))
labels = json.load(open(labels_file))
episodes = false_alarms = detected = n_windows = 0
delays = []
for rel, wins in sorted(windows.items()):
    path = os.path.join(results_dir, rel)
    if not os.path.exists(path):
        continue
    rows = list(csv.DictReader(open(path)))
    probation = min(int(math.floor(0.15 * len(rows))), 750)
    times = [ts(r["timestamp"]) for r in rows]
    alerting = [r["label"] == "1" for r in rows]
    spans = [(ts(a), ts(b)) for a, b in wins]
    n_windows += len(spans)
    runs, start = [], None
    for i in range(probation, len(rows) + 1):
        on = i < len(rows) and alerting[i]
        if on and start is None:
            start = i
        if not on and start is not None:
            runs.append((times[start], times[i - 1]))
            start = None
    episodes += len(runs)
    for a, b in runs:
        if not any(a <= we and b >= ws for ws, we in spans):
            false_alarms += 1
    points = sorted(ts(p) for p in labels.get(rel, []))
    for ws, we in spans:
        first = next((a for a, _ in runs if ws <= a <= we), None)
        if first is not None:
            detected += 1
            label = next((p for p in points if ws <= p <= we), ws)
            delays.append((first - label).total_seconds() / 60)
fa = false_alarms / episodes if episodes else 0.0
mttd = sum(delays) / len(delays) if delays else float("nan")
print(f"{name:<9} episodes {episodes:5d}  false-alarm rate {fa:6.1%}  windows detected {detected}/{n_windows}  mean time to detect {mttd:7.1f} min")
