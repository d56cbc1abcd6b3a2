#!/usr/bin/env python3
"""nezha-tt-dev cut into slices that start shortly before each fault: how a
run that begins cold (a restart, a new consumer, a replay of a short
window) finds the faults in its first minutes.

    bench/rca/slices.py BIN OUT [--lead MIN] [--after MIN] [--nezha DIR]

For each of the day's faults, both files of the day from T - lead to
T + after (default 5 and 15 minutes) go to OUT/slice-NN/conv/<day>/, with a
faults file holding the faults inside the slice; `BIN replay` writes
OUT/slice-NN/out/<day>/, and the dataset's own score.py scores it (its
contract: incidents opening within 10 minutes of a fault, the services of
their root causes in order). Printed: each slice's fault instances,
detected, at rank 1, in the top 3, and incidents overlapping no fault;
then the sums, for the CPU-contention slices and for the others apart
(stop 29's table in BENCHMARKS.md).
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
from datetime import datetime, timezone


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("out")
    ap.add_argument("--lead", type=float, default=5.0, help="minutes before the fault")
    ap.add_argument("--after", type=float, default=15.0, help="minutes after the fault")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--nezha", default=os.path.join(here, "..", "..", "..", "shared", "datasets", "nezha-tt-dev"))
    a = ap.parse_args()

    faults = json.load(open(os.path.join(a.nezha, "faults.json")))
    faults.sort(key=lambda f: f["time"])
    day = faults[0]["time"][:10]
    spans = [(ts(f["time"]) - a.lead * 60, ts(f["time"]) + a.after * 60) for f in faults]
    slices = [os.path.join(a.out, "slice-%02d" % i) for i in range(len(faults))]
    writers = {}
    for i, s in enumerate(slices):
        os.makedirs(os.path.join(s, "conv", day), exist_ok=True)
        inside = [f for f in faults if spans[i][0] <= ts(f["time"]) < spans[i][1]]
        json.dump(inside, open(os.path.join(s, "faults.json"), "w"))
    # One pass over each file: a line goes to every slice it falls in.
    for name, key in (("logs.jsonl.gz", "time"), ("metrics.jsonl.gz", "timestamp")):
        outs = [gzip.open(os.path.join(s, "conv", day, name), "wt", compresslevel=1) for s in slices]
        with gzip.open(os.path.join(a.nezha, day, name), "rt") as f:
            for line in f:
                t = ts(json.loads(line)[key])
                for i, (lo, hi) in enumerate(spans):
                    if lo <= t < hi:
                        outs[i].write(line)
        for o in outs:
            o.close()
    rows = []
    for i, s in enumerate(slices):
        subprocess.run([a.bin, "replay", "--out", os.path.join(s, "out", day), os.path.join(s, "conv", day)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        subprocess.run([sys.executable, os.path.join(a.nezha, "score.py"), "--json", os.path.join(s, "score.json"),
                        os.path.join(s, "faults.json"), os.path.join(s, "conv"), os.path.join(s, "out")],
                       stdout=subprocess.DEVNULL, check=True)
        fig = json.load(open(os.path.join(s, "score.json")))
        per = fig["per_fault"]
        row = {
            "slice": i,
            "fault": faults[i]["time"] + " " + faults[i]["service"] + " " + faults[i]["type"],
            "cpu": faults[i]["type"] == "cpu_contention",
            "faults": len(per),
            "detected": sum(r["detected"] for r in per),
            "as1": sum(r["rank"] == 1 for r in per),
            "as3": sum(r["rank"] is not None and r["rank"] <= 3 for r in per),
            "false": fig["false_incidents"],
            "incidents": fig["incidents"],
        }
        rows.append(row)
        print("%02d %-60s faults %d detected %d rank-1 %d top-3 %d false %d of %d" % (
            i, row["fault"], row["faults"], row["detected"], row["as1"], row["as3"], row["false"], row["incidents"]))
    for label, pick in (("cpu_contention slices", True), ("other slices", False)):
        rs = [r for r in rows if r["cpu"] == pick]
        tot = {k: sum(r[k] for r in rs) for k in ("faults", "detected", "as1", "as3", "false", "incidents")}
        print("%s (%d): fault instances %d, detected %d, rank 1 %d, top 3 %d, false incidents %d of %d" % (
            label, len(rs), tot["faults"], tot["detected"], tot["as1"], tot["as3"], tot["false"], tot["incidents"]))
    json.dump(rows, open(os.path.join(a.out, "slices.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
