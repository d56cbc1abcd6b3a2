#!/usr/bin/env python3
"""Leave-one-system-out evaluation of `remedy templates` on loghub-2k, with
drain3 beside it in the same run.

    bench/mining/loso.py [REMEDY_BINARY]

The miner has two settings that could be fitted: the share of tokens that
must agree to join a template (`--similarity`) and the most words an
enumeration position may hold (`--max-enum-values`). For each system, the
setting is chosen on the other seven (highest mean GA; the default wins
ties) and scored on the eighth, so no choice is scored on the data it was
made on. The default setting's score is printed beside it. drain3 0.9.11
runs with its defaults and the same masks (bench/mining/drain3_templates.py).
GA and PA as in bench/mining/score.py.
"""
import csv, io, itertools, json, os, subprocess, sys
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "..", "..")
ROOT = os.path.join(REPO, "datasets", "loghub-2k")
SIM = [0.4, 0.5, 0.6, 0.7]
ENUM = [2, 3, 4, 5]
DEFAULT = (0.6, 3)


def ga(pred, truth):
    pg, tg = defaultdict(list), defaultdict(list)
    for i, (p, t) in enumerate(zip(pred, truth)):
        pg[p].append(i)
        tg[t].append(i)
    return sum(1 for p, t in zip(pred, truth) if pg[p] == tg[t]) / len(truth)


def pa(pred, truth):
    return sum(" ".join(p.split()) == " ".join(t.split()) for p, t in zip(pred, truth)) / len(truth)


def rows(text):
    r = list(csv.DictReader(io.StringIO(text)))
    return [x["EventId"] for x in r], [x["EventTemplate"] for x in r]


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")), "release", "remedy")
    settings = json.load(open(os.path.join(ROOT, "settings.json")))
    truth = {}
    for s in settings:
        with open(os.path.join(ROOT, s, f"{s}_2k.log_truth.csv"), newline="") as f:
            truth[s] = [r["EventTemplate"] for r in csv.DictReader(f)]
    score = {}  # (setting, system) -> (GA, PA)
    for (sim, en), s in itertools.product(itertools.product(SIM, ENUM), settings):
        cmd = [binary, "templates", "--log-format", settings[s]["log_format"],
               "--similarity", str(sim), "--max-enum-values", str(en)]
        for m in settings[s]["masks"]:
            cmd += ["--mask", m]
        cmd.append(os.path.join(ROOT, s, f"{s}_2k.log"))
        ids, temps = rows(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        score[(sim, en), s] = (ga(ids, truth[s]), pa(temps, truth[s]))
    venv = os.path.join(REPO, "bench", ".venv", "bin", "python")
    drain = {}
    for s in settings:
        out = subprocess.run([venv, os.path.join(HERE, "drain3_templates.py"),
                              os.path.join(ROOT, s, f"{s}_2k.log"), s],
                             check=True, capture_output=True, text=True, cwd=REPO).stdout
        ids, temps = rows(out)
        drain[s] = (ga(ids, truth[s]), pa(temps, truth[s]))
    grid = list(itertools.product(SIM, ENUM))
    print("| system | setting chosen on the other seven | LOSO GA | LOSO PA | default GA | default PA | drain3 GA | drain3 PA |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    tot = [0.0] * 6
    for s in settings:
        others = [o for o in settings if o != s]
        mean = lambda g: sum(score[g, o][0] for o in others) / len(others)
        best = max(grid, key=lambda g: (round(mean(g), 6), g == DEFAULT))
        vals = [*score[best, s], *score[DEFAULT, s], *drain[s]]
        tot = [a + b for a, b in zip(tot, vals)]
        print(f"| {s} | similarity {best[0]}, enum {best[1]} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
    n = len(settings)
    print("| mean | | " + " | ".join(f"**{v / n:.3f}**" for v in tot) + " |")
    print()
    print("mean GA over all eight per setting (similarity, enum):")
    for g in grid:
        print(f"  {g}: {sum(score[g, s][0] for s in settings) / n:.3f}")


main()
