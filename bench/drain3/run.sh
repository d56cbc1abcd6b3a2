#!/usr/bin/env bash
# Side-by-side template-mining speed: drain3 (PyPI) and `remedy templates`
# on the same files, same machine, single thread, in one run.
#
#   bench/drain3/run.sh [REPEAT]
#
# Each loghub-2k system's log is repeated REPEAT times (default 50, so
# 100,000 lines per system); both tools read the file, split the header with
# the system's format and apply its masks. remedy writes its CSV to standard
# output, sent to /dev/null: drain3 writes nothing, and neither should pay
# for (or be timed by the noise of) a disk. Each tool runs three times per
# file and its fastest run counts (the same rule for both: it discards
# noise from the other core, not work).
#
# REMEDY_BEFORE=/path/to/an/older/remedy adds that build to the same run
# (same files, same rule), for a before/after comparison.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEAT="${1:-50}"
VENV=bench/.venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q drain3==0.9.11
fi
cargo build --release --no-default-features -q
BIN="${CARGO_TARGET_DIR:-target}/release/remedy"
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
BEFORE="${REMEDY_BEFORE:-}"
printf "%-10s %10s %14s %14s %8s" system lines drain3_l/s remedy_l/s ratio
[ -n "$BEFORE" ] && printf " %14s %8s" before_l/s ratio
printf "\n"
total_d=0; total_r=0; total_n=0; total_b=0
for sys in $(python3 -c 'import json;print(" ".join(json.load(open("datasets/loghub-2k/settings.json"))))'); do
  fmt=$(python3 -c "import json;print(json.load(open('datasets/loghub-2k/settings.json'))['$sys']['log_format'])")

  big="$WORK/$sys.log"
  for _ in $(seq "$REPEAT"); do cat "datasets/loghub-2k/$sys/${sys}_2k.log"; done > "$big"
  dsec=""
  for _ in 1 2 3; do
    d=$("$VENV/bin/python" bench/drain3/drain3_run.py "$big" "$sys")
    t=$(echo "$d" | python3 -c 'import json,sys;print(json.load(sys.stdin)["seconds"])')
    dsec=$(python3 -c "print(min(float(x) for x in '$dsec $t'.split()))")
  done
  n=$(wc -l < "$big")
  margs=(); while read -r m; do margs+=(--mask "$m"); done < <(python3 -c "import json;[print(m) for m in json.load(open('datasets/loghub-2k/settings.json'))['$sys']['masks']]")
  rsec=""
  for _ in 1 2 3; do
    start=$(date +%s.%N)
    "$BIN" templates --log-format "$fmt" "${margs[@]}" "$big" > /dev/null
    end=$(date +%s.%N)
    rsec=$(python3 -c "print(min(float(x) for x in '$rsec $(python3 -c "print($end - $start)")'.split()))")
  done
  bsec=0
  if [ -n "$BEFORE" ]; then
    bsec=""
    for _ in 1 2 3; do
      start=$(date +%s.%N)
      "$BEFORE" templates --log-format "$fmt" "${margs[@]}" "$big" > /dev/null
      end=$(date +%s.%N)
      bsec=$(python3 -c "print(min(float(x) for x in '$bsec $(python3 -c "print($end - $start)")'.split()))")
    done
  fi
  python3 -c "n=$n; d=$dsec; r=$rsec; b=$bsec; print(f'{\"$sys\":<10} {n:>10} {n/d:>14,.0f} {n/r:>14,.0f} {d/r:>7.1f}x' + (f' {n/b:>14,.0f} {d/b:>7.1f}x' if b else ''))"
  total_d=$(python3 -c "print($total_d + $dsec)"); total_r=$(python3 -c "print($total_r + $rsec)"); total_b=$(python3 -c "print($total_b + $bsec)"); total_n=$((total_n + n))
done
python3 -c "n=$total_n; d=$total_d; r=$total_r; b=$total_b; print(f'{\"all\":<10} {n:>10} {n/d:>14,.0f} {n/r:>14,.0f} {d/r:>7.1f}x' + (f' {n/b:>14,.0f} {d/b:>7.1f}x' if b else ''))"
