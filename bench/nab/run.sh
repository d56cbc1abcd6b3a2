#!/usr/bin/env bash
# NAB scores of `remedy detect` at its defaults on the bundled development
# subset (datasets/nab-dev): score.py (the published method), then per
# family with the default threshold and the `label` column (the detector's
# own decisions) scored.   bench/nab/run.sh [DATA_ROOT] [THRESHOLD]
# The threshold defaults to analyze::ensemble::DEFAULT_THRESHOLD (0.08).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="${1:-datasets/nab-dev}"
TH="${2:-0.08}"
cargo build --release --no-default-features -q
BIN="${CARGO_TARGET_DIR:-target}/release/remedy"
OUT=$(mktemp -d); trap 'rm -rf "$OUT"' EXIT
( cd "$ROOT/data" && find . -name '*.csv' | sort ) | while read -r f; do
  mkdir -p "$OUT/$(dirname "$f")"
  "$BIN" detect --out "$OUT/$f" "$ROOT/data/$f"
done
python3 bench/nab/score.py "$ROOT/data" "$ROOT/combined_windows.json" "$OUT"
python3 bench/nab/families.py "$ROOT" "$OUT" "$TH"
