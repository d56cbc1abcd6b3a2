#!/usr/bin/env bash
# One-shot `kafka-init` service of compose/docker-compose.yml (runs in the
# apache/kafka image): waits for the broker, then creates Remedy's topics if
# they are missing and checks that the input topics are co-partitioned.
#
#   KAFKA_BOOTSTRAP     broker address (default kafka:9092)
#   INPUT_TOPICS        input topics (default "logs metrics")
#   INPUT_PARTITIONS    partitions of each input topic (default 4)
#   OUTPUT_TOPICS       extra topics to create (default none: Remedy creates its
#                       output topics itself at start, incidents and changelog compacted)
set -euo pipefail

bootstrap="${KAFKA_BOOTSTRAP:-kafka:9092}"
inputs="${INPUT_TOPICS:-logs metrics}"
partitions="${INPUT_PARTITIONS:-4}"
outputs="${OUTPUT_TOPICS:-}"
bin=/opt/kafka/bin

log() { echo "kafka-init: $*" >&2; }

deadline=$((SECONDS + ${KAFKA_WAIT_SECS:-120}))
until "$bin/kafka-topics.sh" --bootstrap-server "$bootstrap" --list >/dev/null 2>&1; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    log "broker $bootstrap did not answer within ${KAFKA_WAIT_SECS:-120}s"
    exit 1
  fi
  log "waiting for $bootstrap"
  sleep 2
done

for topic in $inputs $outputs; do
  "$bin/kafka-topics.sh" --bootstrap-server "$bootstrap" --create --if-not-exists \
    --topic "$topic" --partitions "$partitions" --replication-factor 1 >/dev/null
done

# Co-partitioning: Remedy joins the partitions of its input topics by number,
# so every input topic must have the same partition count.
count() {
  "$bin/kafka-topics.sh" --bootstrap-server "$bootstrap" --describe --topic "$1" |
    sed -n 's/.*PartitionCount: *\([0-9][0-9]*\).*/\1/p' | head -n 1
}
want=""
for topic in $inputs; do
  n="$(count "$topic")"
  log "$topic: $n partitions"
  if [ -z "$want" ]; then
    want="$n"
  elif [ "$n" != "$want" ]; then
    log "input topics must have the same partition count; $topic has $n, expected $want"
    exit 1
  fi
done
log "topics ready: $inputs $outputs"
