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
# The series generator needs numpy: use the machine's, or the venv that
# robust.sh makes.
PY=python3
if ! python3 -c 'import numpy' 2>/dev/null; then
  VENV=bench/.venv-nab
  [ -x "$VENV/bin/python" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q numpy; }
  PY="$VENV/bin/python"
fi
"$PY" bench/nab/clean_series.py "$DIR"
for f in "$DIR"/*.csv; do
  "$BIN" detect --out "$f.out" "$f"
  python3 - "$f.out" "$(basename "$f" .csv)" "$TH" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
p = int(0.15 * len(rows))
print(f"{sys.argv[2]:20s} {sum(float(r['anomaly_score']) >= float(sys.argv[3]) for r in rows[p:])}")
PY
done
