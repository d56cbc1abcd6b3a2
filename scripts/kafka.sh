#!/usr/bin/env bash
# Real Apache Kafka for development and tests, without Docker.
#
#   scripts/kafka.sh start    fetch Kafka (first time only), format KRaft storage, start, wait
#   scripts/kafka.sh stop     stop the broker by PID and remove its data
#   scripts/kafka.sh crash    kill -9 the broker, keeping its data (chaos tests)
#   scripts/kafka.sh resume   start it again on that data
#   scripts/kafka.sh status   say whether it runs, and where
#
# Kafka's jars come from Maven Central through the machine's Maven into a
# cache outside the repository, so the second start needs no network.
# Settings (environment):
#   KAFKA_PORT        broker port on 127.0.0.1 (default 9092)
#   KAFKA_CONTROLLER_PORT   controller port (default KAFKA_PORT + 1)
#   KAFKA_PARTITIONS  default partitions for auto-created topics (default 4)
#   KAFKA_VERSION     Apache Kafka version (default 4.1.1)
#   REMEDY_CACHE      cache directory (default ~/.cache/remedy)
#   KAFKA_STATE_DIR   where the PID, config, data and log live (default $REMEDY_CACHE/kafka-run-$KAFKA_PORT)
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
KAFKA_PARTITIONS="${KAFKA_PARTITIONS:-4}"
CACHE="${REMEDY_CACHE:-$HOME/.cache/remedy}"
LIBS="$CACHE/kafka/$KAFKA_VERSION/libs"
STATE="${KAFKA_STATE_DIR:-$CACHE/kafka-run-$KAFKA_PORT}"
PIDFILE="$STATE/kafka.pid"
LOG="$STATE/kafka.log"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"

log() { echo "kafka.sh: $*" >&2; }

fetch() {
  if [ -f "$LIBS/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || { log "Maven (mvn) is required to fetch Kafka; install it (apt-get install maven)"; exit 1; }
  command -v java >/dev/null || { log "Java 17+ is required; install it (apt-get install openjdk-17-jre-headless)"; exit 1; }
  log "fetching Apache Kafka $KAFKA_VERSION from Maven Central into $LIBS (first time only)"
  local work; work=$(mktemp -d)
  cat > "$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.remedy</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
POM
  mkdir -p "$LIBS"
  (cd "$work" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$LIBS" -DincludeScope=runtime) \
    || { log "Maven could not fetch Kafka $KAFKA_VERSION; check access to Maven Central"; rm -rf "$work"; exit 1; }
  rm -rf "$work"
  touch "$LIBS/.complete"
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

java_cmd() {
  java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$STATE/log4j2.properties" \
    -cp "$LIBS/*" "$@"
}

start() {
  if running; then log "already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$KAFKA_PORT"; return 0; fi
  fetch
  if port_open "$KAFKA_PORT"; then log "port $KAFKA_PORT on 127.0.0.1 is taken by another process; set KAFKA_PORT"; exit 1; fi
  rm -rf "$STATE"; mkdir -p "$STATE/data"
  cat > "$STATE/log4j2.properties" <<L4J
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $STATE/broker.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
L4J
  cat > "$STATE/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$STATE/data
num.partitions=$KAFKA_PARTITIONS
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
log.segment.bytes=67108864
message.max.bytes=10485760
PROPS
  local cluster_id
  cluster_id=$(java_cmd kafka.tools.StorageTool random-uuid 2>>"$LOG" | tail -n 1)
  java_cmd kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$STATE/server.properties" >>"$LOG" 2>&1 \
    || { log "formatting KRaft storage failed:"; tail -n 20 "$LOG" >&2; exit 1; }
  launch
}

# Start the broker on the storage and configuration already in $STATE.
launch() {
  : > "$STATE/broker.log"
  nohup java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$STATE/log4j2.properties" \
    -cp "$LIBS/*" kafka.Kafka "$STATE/server.properties" >>"$LOG" 2>&1 </dev/null &
  echo $! > "$PIDFILE"
  local waited=0
  while ! port_open "$KAFKA_PORT"; do
    if ! running; then log "broker exited during start-up; last lines of its logs:"; tail -n 30 "$LOG" "$STATE/broker.log" >&2 2>/dev/null || true; exit 1; fi
    if [ "$waited" -ge "$START_TIMEOUT" ]; then log "broker did not accept connections within ${START_TIMEOUT}s; last log lines:"; tail -n 30 "$STATE/broker.log" >&2 2>/dev/null || true; stop; exit 1; fi
    sleep 1; waited=$((waited + 1))
  done
  # The port opens slightly before the broker has registered with its own
  # controller; wait for the log line that says it is serving.
  while ! grep -q "Kafka Server started\|\[KafkaRaftServer nodeId=1\] Kafka Server started" "$STATE/broker.log" 2>/dev/null; do
    if [ "$waited" -ge "$START_TIMEOUT" ]; then break; fi
    sleep 1; waited=$((waited + 1))
  done
  log "started Kafka $KAFKA_VERSION (pid $(cat "$PIDFILE")) at 127.0.0.1:$KAFKA_PORT in ${waited}s; logs in $STATE"
}

# kill -9, keeping the data: a broker crash (for the chaos test).
crash() {
  if running; then
    local pid; pid=$(cat "$PIDFILE")
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    log "crashed (pid $pid, kill -9); data kept in $STATE"
  else
    log "not running"
  fi
}

# Start again after `crash`, on the same data and configuration.
resume() {
  if running; then log "already running (pid $(cat "$PIDFILE"))"; return 0; fi
  [ -f "$STATE/server.properties" ] || { log "nothing to resume in $STATE; use start"; exit 1; }
  fetch
  launch
}

stop() {
  if running; then
    local pid; pid=$(cat "$PIDFILE")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped (pid $pid)"
  else
    log "not running"
  fi
  rm -rf "$STATE"
}

status() {
  if running; then echo "running pid=$(cat "$PIDFILE") bootstrap=127.0.0.1:$KAFKA_PORT"; else echo "stopped"; return 3; fi
}

case "${1:-}" in
  start) start ;;
  crash) crash ;;
  resume) resume ;;
  stop) stop ;;
  status) status ;;
  fetch) fetch ;;
  *) echo "usage: $0 start|stop|status|fetch|crash|resume" >&2; exit 2 ;;
esac
