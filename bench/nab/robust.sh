#!/usr/bin/env bash
# NAB-style scores of `remedy detect` at its defaults on the seeded
# robustness corpus (bench/nab/robust_series.py: eight families of
# synthetic series with known anomalies, and anomaly-free ones), per
# family, with the false-alarm rate of the default threshold on the
# anomaly-free series.   bench/nab/robust.sh [SEED] [THRESHOLD]
# The threshold defaults to analyze::ensemble::DEFAULT_THRESHOLD (0.08).
set -euo pipefail
cd "$(dirname "$0")/../.."
SEED="${1:-11}"
TH="${2:-0.08}"
cargo build --release --no-default-features -q
BIN="${CARGO_TARGET_DIR:-target}/release/remedy"
DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT
# The corpus generator needs numpy: use the machine's, or a venv of its own.
PY=python3
if ! python3 -c 'import numpy' 2>/dev/null; then
  VENV=bench/.venv-nab
  [ -x "$VENV/bin/python" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q numpy; }
  PY="$VENV/bin/python"
fi
"$PY" bench/nab/robust_series.py "$DIR/corpus" "$SEED"
( cd "$DIR/corpus/data" && find . -name '*.csv' | sort ) | while read -r f; do
  mkdir -p "$DIR/out/$(dirname "$f")"
  "$BIN" detect --out "$DIR/out/$f" "$DIR/corpus/data/$f"
done
python3 bench/nab/families.py "$DIR/corpus" "$DIR/out" "$TH"
