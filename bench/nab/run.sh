#!/usr/bin/env bash
# NAB scores of `remedy detect` at its defaults on the bundled development
# subset (datasets/nab-dev).   bench/nab/run.sh [DATA_ROOT]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="${1:-datasets/nab-dev}"
cargo build --release --no-default-features -q
BIN="${CARGO_TARGET_DIR:-target}/release/remedy"
OUT=$(mktemp -d); trap 'rm -rf "$OUT"' EXIT
( cd "$ROOT/data" && find . -name '*.csv' | sort ) | while read -r f; do
  mkdir -p "$OUT/$(dirname "$f")"
  "$BIN" detect --out "$OUT/$f" "$ROOT/data/$f"
done
python3 bench/nab/score.py "$ROOT/data" "$ROOT/combined_windows.json" "$OUT"
