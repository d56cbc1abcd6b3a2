#!/usr/bin/env python3
"""Grouping accuracy (GA) and parsing accuracy (PA) of `remedy templates`
on each loghub-2k system, with the system's header format and masks only.

    bench/mining/score.py [REMEDY_BINARY] [--systems A,B,...] [--errors N]

GA (Zhu et al. 2019): a line is right when the set of lines given its
predicted EventId is exactly the set of lines sharing its true template.
PA (Khan et al. 2022, message level): a line is right when its predicted
template string equals the true one (runs of whitespace compared as one).
"""
import csv, json, os, subprocess, sys, tempfile
from collections import defaultdict

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "datasets", "loghub-2k")


def ga(pred, truth):
    pg, tg = defaultdict(list), defaultdict(list)
    for i, (p, t) in enumerate(zip(pred, truth)):
        pg[p].append(i)
        tg[t].append(i)
    ok = sum(1 for p, t in zip(pred, truth) if pg[p] == tg[t])
    return ok / len(truth)


def norm(t):
    return " ".join(t.split())


def run(binary, system, cfg, out):
    cmd = [binary, "templates", "--log-format", cfg["log_format"]]
    for m in cfg["masks"]:
        cmd += ["--mask", m]
    cmd += ["--out", out, os.path.join(ROOT, system, f"{system}_2k.log")]
    subprocess.run(cmd, check=True)
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["EventId"] for r in rows], [r["EventTemplate"] for r in rows]


def main():
    args = sys.argv[1:]
    binary = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "remedy")
    systems, errors = None, 0
    i = 0
    while i < len(args):
        if args[i] == "--systems":
            systems = args[i + 1].split(",")
            i += 2
        elif args[i] == "--errors":
            errors = int(args[i + 1])
            i += 2
        else:
            binary = args[i]
            i += 1
    settings = json.load(open(os.path.join(ROOT, "settings.json")))
    res = []
    with tempfile.TemporaryDirectory() as d:
        for system, cfg in settings.items():
            if systems and system not in systems:
                continue
            ids, temps = run(binary, system, cfg, os.path.join(d, system + ".csv"))
            with open(os.path.join(ROOT, system, f"{system}_2k.log_truth.csv"), newline="") as f:
                truth = [r["EventTemplate"] for r in csv.DictReader(f)]
            g = ga(ids, truth)
            p = sum(norm(a) == norm(b) for a, b in zip(temps, truth)) / len(truth)
            res.append((system, g, p, len(set(ids)), len(set(truth))))
            if errors:
                # True templates whose lines are not grouped exactly, and
                # what they were given.
                tg, pg = defaultdict(list), defaultdict(list)
                for k, (a, t) in enumerate(zip(ids, truth)):
                    tg[t].append(k)
                    pg[a].append(k)
                bad = [t for t in tg if any(pg[ids[k]] != tg[t] for k in tg[t])]
                bad.sort(key=lambda t: -len(tg[t]))
                for t in bad[:errors]:
                    got = defaultdict(int)
                    for k in tg[t]:
                        got[(temps[k], len(pg[ids[k]]))] += 1
                    print(f"  {system} TRUE[{len(tg[t])}] {t}")
                    for (tp, n), c in sorted(got.items(), key=lambda x: -x[1])[:4]:
                        print(f"      {c:>4} -> [{n}] {tp}")
    print(f"{'system':<10} {'GA':>6} {'PA':>6} {'pred':>5} {'true':>5}")
    for s, g, p, n, t in res:
        print(f"{s:<10} {g:6.3f} {p:6.3f} {n:5d} {t:5d}")
    print(f"{'mean':<10} {sum(r[1] for r in res)/len(res):6.3f} {sum(r[2] for r in res)/len(res):6.3f}")


main()
