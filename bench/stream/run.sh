#!/usr/bin/env bash
# Streaming throughput: the bundled demo (datasets/demo, 351,212 records)
# produced to Kafka, one topic per file, then `remedy run --exit-at-end`
# (release build) reads it all, analyses it and writes its results, timed;
# `remedy replay` of the same files is timed in the same run for comparison.
#
#   bench/stream/run.sh            # starts its own broker with scripts/kafka.sh
#
# Needs Java 17 + Maven (Kafka) and Python 3 (confluent-kafka from PyPI, in
# a venv under ~/.cache/remedy, to produce the input quickly).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/remedy"

venv="$HOME/.cache/remedy/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import confluent_kafka' 2>/dev/null || "$venv/bin/pip" install -q confluent-kafka

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
export KAFKA_PORT="$(free_port)" KAFKA_CONTROLLER_PORT="$(free_port)"
export KAFKA_STATE_DIR="$(mktemp -d -t remedy-bench-kafka-XXXXXX)"
work="$(mktemp -d -t remedy-bench-stream-XXXXXX)"
trap 'scripts/kafka.sh stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
scripts/kafka.sh start >/dev/null
brokers="127.0.0.1:$KAFKA_PORT"

files=(datasets/demo/logs/*.gz datasets/demo/metrics/*.gz)
topics=$("$venv/bin/python" - "$brokers" "${files[@]}" <<'PY'
import gzip, sys, time
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
brokers, files = sys.argv[1], sys.argv[2:]
names = ["bench-%d" % i for i in range(len(files))]
admin = AdminClient({"bootstrap.servers": brokers})
for f in admin.create_topics([NewTopic(n, 1, 1) for n in names]).values():
    f.result()
p = Producer({"bootstrap.servers": brokers, "linger.ms": 20, "queue.buffering.max.messages": 1000000})
n = 0
for name, path in zip(names, files):
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            while True:
                try:
                    p.produce(name, line.encode())
                    break
                except BufferError:
                    p.poll(0.1)
            n += 1
p.flush()
print(",".join(names))
print("produced %d records" % n, file=sys.stderr)
PY
)

export REMEDY_KAFKA__BROKERS="$brokers" REMEDY_KAFKA__TOPICS="$topics" REMEDY_KAFKA__GROUP_ID=bench
export REMEDY_API__LISTEN=127.0.0.1:0 REMEDY_STORE__DB="$work/remedy.db"
/usr/bin/time -o "$work/time.run" -f "remedy run --exit-at-end: %e s wall, %M KB peak RSS" \
  env RUST_LOG=info "$bin" run --exit-at-end --out "$work/run" 2>"$work/run.log" || { cat "$work/run.log"; exit 1; }
cat "$work/time.run"
[ -z "${BENCH_LOG:-}" ] || cp "$work/run.log" "$BENCH_LOG"
/usr/bin/time -o "$work/time.replay" -f "remedy replay (same files): %e s wall, %M KB peak RSS" \
  "$bin" replay "${files[@]}" --out "$work/replay" >/dev/null 2>&1
cat "$work/time.replay"
"$venv/bin/python" - "$work" "$brokers" <<'PY'
import json, sys
from confluent_kafka import Consumer, TopicPartition
c = Consumer({"bootstrap.servers": sys.argv[2], "group.id": "bench-read", "enable.auto.commit": False})
lo, hi = c.get_watermark_offsets(TopicPartition("remedy.changelog", 0), timeout=10)
c.assign([TopicPartition("remedy.changelog", 0, hi - 1)])
m = c.poll(10)
print("checkpoint of the partition's whole state: %d bytes" % len(m.value()))
s = json.load(open(sys.argv[1] + "/run/summary-0.json"))
r = json.load(open(sys.argv[1] + "/replay/summary.json"))
print("records read: run %d, replay %d; incidents: run %d, replay %d" % (
    s["ingest"]["read"], r["ingest"]["read"], s["incidents"], r["incidents"]))
PY
