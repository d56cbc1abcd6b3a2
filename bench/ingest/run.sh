#!/usr/bin/env bash
# Ingest speed and memory on realistic data: a seeded set of the shapes
# real estates ship (bench/ingest/realistic.py: Fluent Bit Kubernetes JSON
# with the level inside `log`, OpenTelemetry/Vector JSON, nginx access
# logs, logback files with stack traces, Prometheus scrapes), replayed
# whole and one shape at a time with `remedy replay` (release build,
# defaults: `--format auto`, the full analysis). Prints records, MB, wall
# and CPU seconds, records/s, MB/s and peak RSS of the run with the median
# wall time of $RUNS (default 3) per input.
#
#   bench/ingest/run.sh [SCALE]      # scale 1: ~750k records, ~350 MB
set -euo pipefail
cd "$(dirname "$0")/../.."
SCALE="${1:-1}"
cargo build --release --no-default-features -q
BIN="${CARGO_TARGET_DIR:-target}/release/remedy"
DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT
python3 bench/ingest/realistic.py "$DIR/set" "$SCALE"
# The set was just written: let its pages reach the disk before timing,
# or the first run shares the machine with the kernel's writeback.
sync
RUNS="${RUNS:-3}"
printf '| input | records | MB | wall s | CPU s | records/s | MB/s | peak RSS MB |\n|---|---:|---:|---:|---:|---:|---:|---:|\n'
for part in "" k8s otel web java metrics; do
  in="$DIR/set/$part"
  # The run with the median wall time of $RUNS (this VM's speed drifts).
  : > "$DIR/times"
  for _ in $(seq "$RUNS"); do
    rm -rf "$DIR/out"
    /usr/bin/time -o "$DIR/time" -f '%e %U %S %M' "$BIN" replay --out "$DIR/out" "$in" > /dev/null 2>&1
    cat "$DIR/time" >> "$DIR/times"
  done
  read -r wall user sys rss < <(sort -n "$DIR/times" | sed -n "$(( (RUNS + 1) / 2 ))p")
  python3 - "$in" "$DIR/out/summary.json" "$wall" "$user" "$sys" "$rss" "${part:-all}" <<'PY'
import json, os, sys
path, summary, wall, user, sys_, rss, name = sys.argv[1:]
s = json.load(open(summary))
records = s["ingest"]["parsed"] + s["ingest"]["dead_lettered"]
size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs) / 1e6
wall, cpu = float(wall), float(user) + float(sys_)
print(f"| {name} | {records:,} | {size:.0f} | {wall:.2f} | {cpu:.2f} | {records / wall:,.0f} | {size / wall:.0f} | {int(rss) / 1024:.0f} |")
PY
done
