#!/usr/bin/env bash
# The `demo-feed` service of compose/docker-compose.yml (profile `demo`, runs
# in the apache/kafka image): feeds a scenario written by `remedy generate`
# into Kafka the way shippers would, one record per message:
#   DIR/logs/*     -> the logs topic
#   DIR/metrics/*  -> the metrics topic
# Records go out in event-time order across all files (Remedy's windows
# accept records up to their allowed lateness behind the newest one, so
# file after file would leave most records late), paced at DEMO_SPEEDUP times
# real time (default 60: two hours of scenario in two minutes; 0 = as fast as
# possible). Keys: the record's service (ECS, OpenTelemetry, logfmt, Fluent
# Bit, adapter labels), else its host, else the file's name; a Prometheus
# text file is keyed by its file as a whole, because its `# TYPE` lines must
# reach the same partition as the samples they describe.
#
# Usage: feed-demo.sh [DIR]   (default /demo/scenario)
#   KAFKA_BOOTSTRAP   broker (default kafka:9092)
#   LOGS_TOPIC, METRICS_TOPIC   (default logs, metrics)
#   DEMO_SPEEDUP      pacing factor (default 60)
#   DEMO_FORCE=1      feed even if the logs topic already holds records
#   DRY_RUN=OUTDIR    write OUTDIR/logs and OUTDIR/metrics ("key<TAB>record"
#                     lines) instead of producing; needs no Kafka
set -euo pipefail

dir="${1:-/demo/scenario}"
bootstrap="${KAFKA_BOOTSTRAP:-kafka:9092}"
logs_topic="${LOGS_TOPIC:-logs}"
metrics_topic="${METRICS_TOPIC:-metrics}"
speedup="${DEMO_SPEEDUP:-60}"
bin="${KAFKA_HOME:-/opt/kafka}/bin"

log() { echo "demo-feed: $*" >&2; }

shopt -s nullglob
files=("$dir"/logs/* "$dir"/metrics/*)
if [ "${#files[@]}" -eq 0 ]; then
  log "no scenario in $dir (expected $dir/logs and $dir/metrics from remedy generate)"
  exit 1
fi

if [ -z "${DRY_RUN:-}" ] && [ "${DEMO_FORCE:-0}" != 1 ]; then
  # Feeding twice would hand Remedy the same hours again, all of it late.
  held="$("$bin/kafka-get-offsets.sh" --bootstrap-server "$bootstrap" --topic "$logs_topic" --time -1 |
    awk -F: '{ n += $NF } END { print n + 0 }')"
  if [ "$held" -gt 0 ]; then
    log "$logs_topic already holds $held records; not feeding again (DEMO_FORCE=1 to feed anyway)"
    exit 0
  fi
fi

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Each record as: event-time ms, file number, line number, topic directory,
# key, record. Records without a time of their own (`# HELP`/`# TYPE`) take
# the time of the record before them in their file, so they stay in front of
# the samples that follow them.
# shellcheck disable=SC2016 # an awk program: its $ are awk's
decorate='
function days(y, m, d,   era, yoe, doy, doe) {
  if (m <= 2) y -= 1
  era = int(y / 400)
  yoe = y - era * 400
  doy = int((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5) + d - 1
  doe = yoe * 365 + int(yoe / 4) - int(yoe / 100) + doy
  return era * 146097 + doe - 719468
}
function iso_ms(s,   frac) {
  frac = 0
  if (substr(s, 20, 1) == ".") frac = substr(substr(s, 21) "000", 1, 3) + 0
  return (days(substr(s, 1, 4) + 0, substr(s, 6, 2) + 0, substr(s, 9, 2) + 0) * 86400 \
    + substr(s, 12, 2) * 3600 + substr(s, 15, 2) * 60 + substr(s, 18, 2)) * 1000 + frac
}
FNR == 1 {
  file++
  last = 0
  n = split(FILENAME, part, "/")
  topic = part[n - 1]
  fkey = part[n]
  sub(/\..*/, "", fkey)
  promtext = (FILENAME ~ /\.(prom|om|txt)$/)
}
{
  line = $0
  ts = -1
  if (match(line, /[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][T ][0-9][0-9]:[0-9][0-9]:[0-9][0-9](\.[0-9]+)?/))
    ts = iso_ms(substr(line, RSTART, RLENGTH))
  else if (match(line, /"timeUnixNano":"[0-9]+"/))
    ts = substr(line, RSTART + 16, 13) + 0
  else if (promtext && line !~ /^#/ && NF >= 3 && $NF ~ /^[0-9]+$/ && length($NF) == 13)
    ts = $NF + 0
  if (ts < 0) ts = last
  last = ts

  key = ""
  if (promtext) key = fkey
  else if (match(line, /"service":\{"name":"[^"]+"/)) key = substr(line, RSTART + 19, RLENGTH - 20)
  else if (match(line, /"service\.name","value":\{"stringValue":"[^"]+"/)) key = substr(line, RSTART + 39, RLENGTH - 40)
  else if (match(line, /(^|[ \t])service=[^ \t]+/)) { key = substr(line, RSTART, RLENGTH); sub(/.*service=/, "", key); gsub(/"/, "", key) }
  else if (match(line, /"service":"[^"]+"/)) key = substr(line, RSTART + 11, RLENGTH - 12)
  else if (match(line, /"container_name":"[^"]+"/)) key = substr(line, RSTART + 18, RLENGTH - 19)
  else if (match(line, /"host":"[^"]+"/)) key = substr(line, RSTART + 8, RLENGTH - 9)
  if (key == "") key = fkey

  printf "%.0f\t%d\t%d\t%s\t%s\t%s\n", ts, file, FNR, topic, key, line
}'

# Reads the sorted stream and writes "key<TAB>record" to one file per topic
# directory, sleeping as event time advances.
# shellcheck disable=SC2016
pace='
BEGIN {
  step = 15000
  printf "" > logs_out
  printf "" > metrics_out
}
{
  rest = $0
  for (i = 1; i <= 5; i++) {
    p = index(rest, "\t")
    f[i] = substr(rest, 1, p - 1)
    rest = substr(rest, p + 1)
  }
  ts = f[1] + 0
  if (speed > 0 && ts > 0) {
    if (mark == 0) mark = ts
    else if (ts - mark >= step) {
      fflush(logs_out); fflush(metrics_out)
      d = (ts - mark) / 1000 / speed
      if (d > 5) d = 5
      system(sprintf("sleep %.3f", d))
      mark = ts
    }
  }
  if (f[4] == "metrics") { print f[5] "\t" rest > metrics_out; nm++ }
  else { print f[5] "\t" rest > logs_out; nl++ }
}
END {
  close(logs_out); close(metrics_out)
  printf "demo-feed: %d log records, %d metric records\n", nl, nm > "/dev/stderr"
}'

if [ -n "${DRY_RUN:-}" ]; then
  mkdir -p "$DRY_RUN"
  logs_out="$DRY_RUN/logs"
  metrics_out="$DRY_RUN/metrics"
else
  logs_out="$work/logs.fifo"
  metrics_out="$work/metrics.fifo"
  mkfifo "$logs_out" "$metrics_out"
  # One producer per topic reads "key<TAB>record" lines (the console
  # producer's default key separator is a tab; a key never holds one).
  for t in "$logs_topic:$logs_out" "$metrics_topic:$metrics_out"; do
    "$bin/kafka-console-producer.sh" --bootstrap-server "$bootstrap" --topic "${t%%:*}" \
      --property parse.key=true --producer-property linger.ms=50 < "${t#*:}" &
    pids+=($!)
  done
fi

log "feeding ${#files[@]} files from $dir at ${speedup}x to $bootstrap ($logs_topic, $metrics_topic)"
awk "$decorate" "${files[@]}" |
  LC_ALL=C sort -t "$(printf '\t')" -k1,1n -k2,2n -k3,3n |
  awk -v speed="$speedup" -v logs_out="$logs_out" -v metrics_out="$metrics_out" "$pace"

status=0
for p in "${pids[@]}"; do wait "$p" || status=$?; done
pids=()
[ "$status" -eq 0 ] || { log "a producer failed (exit $status)"; exit "$status"; }
log "done"
