#!/usr/bin/env bash
# Streaming throughput: the bundled demo (datasets/demo, 351,212 records)
# produced to Kafka, one topic per file, then `remedy run --exit-at-end`
# (release build) reads it all, analyses it and writes its results, timed;
# `remedy replay` of the same files is timed in the same run for comparison.
#
#   bench/stream/run.sh            # starts its own broker with scripts/kafka.sh
#   bench/stream/run.sh FILE...    # other inputs (one topic each), e.g.
#       bench/stream/run.sh ../shared/datasets/nezha-tt-dev/2023-01-29/*.gz
#
# It ends by comparing the two runs' incidents (id, start, end, and the
# class and confidence of the first root cause) and fails when they
# differ: the same input must give the same incidents whichever way it
# arrives.
#
# Needs Java 17 + Maven (Kafka) and Python 3 (confluent-kafka from PyPI, in
# a venv under ~/.cache/remedy, to produce the input quickly).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet
bin="${REMEDY_BIN:-$CARGO_TARGET_DIR/release/remedy}"   # REMEDY_BIN: time another build

venv="$HOME/.cache/remedy/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import confluent_kafka' 2>/dev/null || "$venv/bin/pip" install -q confluent-kafka

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
export KAFKA_PORT="$(free_port)" KAFKA_CONTROLLER_PORT="$(free_port)"
export KAFKA_STATE_DIR="$(mktemp -d -t remedy-bench-kafka-XXXXXX)"
work="${BENCH_WORK:-$(mktemp -d -t remedy-bench-stream-XXXXXX)}"
trap 'scripts/kafka.sh stop >/dev/null 2>&1 || true; [ -n "${BENCH_WORK:-}" ] || rm -rf "$work"' EXIT
scripts/kafka.sh start >/dev/null
brokers="127.0.0.1:$KAFKA_PORT"

if [ "$#" -gt 0 ]; then files=("$@"); else files=(datasets/demo/logs/*.gz datasets/demo/metrics/*.gz); fi
topics=$("$venv/bin/python" - "$brokers" "${files[@]}" <<'PY'
import gzip, sys, time
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
brokers, files = sys.argv[1], sys.argv[2:]
names = ["bench-%d" % i for i in range(len(files))]
admin = AdminClient({"bootstrap.servers": brokers})
for f in admin.create_topics([NewTopic(n, 1, 1) for n in names]).values():
    f.result()
# Idempotent, so a send retried on a topic created a moment ago (its
# leader not known yet) cannot land after the ones behind it: without it
# a fresh broker reordered one topic in about a third of the runs, and the
# stream then analysed other records than replay did.
p = Producer({"bootstrap.servers": brokers, "linger.ms": 20, "queue.buffering.max.messages": 1000000,
              "enable.idempotence": True})
n = 0
for name, path in zip(names, files):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
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
# The same incidents, not just as many: id, start, end, class and
# confidence of the first root cause (the stream's from its store).
import datetime, sqlite3
def ms(t):
    if t is None:
        return None
    return int(round(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000))
db = sqlite3.connect(sys.argv[1] + "/remedy.db")
run = sorted(db.execute("SELECT id, start_ms, end_ms, class, round(confidence, 9) FROM incidents"))
rep = []
for line in open(sys.argv[1] + "/replay/incidents.jsonl"):
    i = json.loads(line)
    rc = i["root_causes"][0] if i["root_causes"] else {}
    conf = rc.get("confidence")
    rep.append((i["id"], ms(i["start"]), ms(i.get("end")), rc.get("class"),
                None if conf is None else round(conf, 9)))
rep.sort()
same = run == rep
print("incidents identical (id, start, end, first root cause): %s" % ("yes" if same else "NO"))
if not same:
    for a, b in zip(run, rep):
        if a != b:
            print("  run    %s\n  replay %s" % (a, b))
    sys.exit(1)
PY
