#!/usr/bin/env bash
# Static threshold against the dynamic detectors on NAB-dev (the seasonal
# baseline and the ensemble, `remedy detect`'s default), each at its own
# defaults (no threshold optimisation): alert episodes (runs of label 1),
# the share that overlap no anomaly window (false-alarm rate), windows
# detected, and mean time from a window's start to its first alert.
#   bench/nab/static_vs_dynamic.sh [DATA_ROOT]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="${1:-datasets/nab-dev}"
cargo build --release --no-default-features -q
BIN="${CARGO_TARGET_DIR:-target}/release/remedy"
OUT=$(mktemp -d); trap 'rm -rf "$OUT"' EXIT
for method in static baseline ensemble; do
  ( cd "$ROOT/data" && find . -name '*.csv' | sort ) | while read -r f; do
    mkdir -p "$OUT/$method/$(dirname "$f")"
    "$BIN" detect --method "$method" --out "$OUT/$method/$f" "$ROOT/data/$f" 2>/dev/null
  done
  python3 bench/nab/episodes.py "$ROOT/combined_windows.json" "$ROOT/combined_labels.json" "$OUT/$method" "$method"
done
