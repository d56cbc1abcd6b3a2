#!/usr/bin/env bash
# Root-cause evaluation over every labelled set, one table:
#
#   bench/rca/run.sh [OUT_DIR]
#
# - nezha-tt-dev: a day of real fault injections in TrainTicket (from
#   ../shared/datasets, or $NEZHA), replayed with defaults (no topology),
#   scored by the dataset's own score.py (its contract: incidents opening
#   within 10 minutes of a fault, services of their root causes in order);
# - the committed demo scenario, with its labels;
# - fresh generator seeds (12 h each; $RCA_SEEDS, default "101 102 103"),
#   with their labels.
# Columns: AS@1 and AS@3 over all faults (a missed fault counts as wrong),
# recall, mean time to detect, incidents overlapping no fault per hour of
# data, and destructive actions (restart, prune, offload) planned for
# incidents outside every fault, and the engine's anomalies outside faults
# per signal and day. The last rows replay generated days with an hourly
# batch job and a fault-free day, with and without the batch job.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${1:-$(mktemp -d -t remedy-rca-XXXXXX)}"
mkdir -p "$OUT"
NEZHA="${NEZHA:-../shared/datasets/nezha-tt-dev}"
SEEDS="${RCA_SEEDS:-101 102 103}"
cargo build --release --no-default-features -q
BIN="${CARGO_TARGET_DIR:-target}/release/remedy"

if [ -f "$NEZHA/faults.json" ]; then
  for day in "$NEZHA"/20*/; do
    d=$(basename "$day")
    "$BIN" replay --out "$OUT/nezha/$d" "$day" > "$OUT/nezha-$d.log" 2>&1
  done
  python3 "$NEZHA/score.py" --json "$OUT/nezha.json" --details "$OUT/nezha-details.txt" \
    "$NEZHA/faults.json" "$NEZHA" "$OUT/nezha" > "$OUT/nezha.txt"
else
  echo "rca: $NEZHA not found (set NEZHA=DIR): the TrainTicket row is left out" >&2
fi

"$BIN" replay --out "$OUT/demo" --labels datasets/demo/labels.json datasets/demo > "$OUT/demo.log" 2>&1
for seed in $SEEDS; do
  "$BIN" generate --seed "$seed" --duration 12h --rate 1 --out "$OUT/gen-$seed/data" > /dev/null
  "$BIN" replay --out "$OUT/gen-$seed/out" --labels "$OUT/gen-$seed/data/labels.json" \
    "$OUT/gen-$seed/data" > "$OUT/gen-$seed.log" 2>&1
done
# A fault-free day (the generator's quiet scenario): what the estate's
# ordinary behaviour alone raises.
"$BIN" generate --seed 104 --duration 24h --rate 1 --scenario quiet --out "$OUT/quiet/data" > /dev/null
"$BIN" replay --out "$OUT/quiet/out" "$OUT/quiet/data" > "$OUT/quiet.log" 2>&1
# The same estate with a batch job that slows inventory down and makes it
# log lock timeouts for three minutes every hour (ordinary behaviour, not
# labelled), with faults and without.
"$BIN" generate --seed 105 --duration 24h --rate 1 --batch-every 1h --out "$OUT/batch/data" > /dev/null
"$BIN" replay --out "$OUT/batch/out" --labels "$OUT/batch/data/labels.json" "$OUT/batch/data" > "$OUT/batch.log" 2>&1
"$BIN" generate --seed 106 --duration 24h --rate 1 --scenario quiet --batch-every 1h --out "$OUT/quiet-batch/data" > /dev/null
"$BIN" replay --out "$OUT/quiet-batch/out" "$OUT/quiet-batch/data" > "$OUT/quiet-batch.log" 2>&1
python3 bench/rca/table.py "$OUT" "$NEZHA" $SEEDS
echo "outputs in $OUT"
