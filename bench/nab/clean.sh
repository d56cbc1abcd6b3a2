#!/usr/bin/env bash
# False detections of `remedy detect` at its defaults on anomaly-free
# synthetic series: rows after the probationary 15% scoring at or above
# THRESHOLD (default 0.0728, NAB-dev's standard threshold before the tie
# fix; pass the current one to compare).   bench/nab/clean.sh [THRESHOLD]
set -euo pipefail
cd "$(dirname "$0")/../.."
TH="${1:-0.0728}"
cargo build --release --no-default-features -q
BIN="${CARGO_TARGET_DIR:-target}/release/remedy"
DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT
python3 bench/nab/clean_series.py "$DIR"
for f in "$DIR"/*.csv; do
  "$BIN" detect --out "$f.out" "$f"
  python3 - "$f.out" "$(basename "$f" .csv)" "$TH" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
p = int(0.15 * len(rows))
print(f"{sys.argv[2]:20s} {sum(float(r['anomaly_score']) >= float(sys.argv[3]) for r in rows[p:])}")
PY
done
