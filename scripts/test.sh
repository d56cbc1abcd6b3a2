#!/usr/bin/env bash
# The whole test suite: formatting, then every test of every crate, with a
# real Apache Kafka broker that this script starts on a free loopback port,
# and Podman's Docker-compatible API on a private unix socket (for the
# executors) and an S3-compatible server (moto, for the S3 offload tier),
# all stopped on exit, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

# On a fresh machine: the system packages the suite needs (apt-get, as root
# or through sudo; nothing is done when they are all there).
scripts/deps.sh

cargo fmt --all -- --check || { echo "test.sh: run 'cargo fmt --all' and commit" >&2; exit 1; }

# The Compose stack, as Compose reads it (no Docker daemon needed), with and
# without the demo and scale profiles; and its shell scripts.
docker-compose -f compose/docker-compose.yml config -q
docker-compose -f compose/docker-compose.yml --profile demo --profile scale config -q
for f in compose/kafka/*.sh; do bash -n "$f"; done

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
export KAFKA_PORT="${KAFKA_PORT:-$(free_port)}"
export KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$(free_port)}"
export KAFKA_STATE_DIR="$(mktemp -d -t remedy-kafka-XXXXXX)"
export PODMAN_STATE_DIR="$(mktemp -d -t remedy-podman-XXXXXX)"
export S3_PORT="${S3_PORT:-$(free_port)}"
export S3_STATE_DIR="$(mktemp -d -t remedy-s3-XXXXXX)"
cleanup() {
  scripts/kafka.sh stop >/dev/null 2>&1 || true
  scripts/podman.sh stop >/dev/null 2>&1 || true
  scripts/s3.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

# Build first so the broker is not idling through a long compile.
cargo test --workspace --all-targets --no-run
scripts/kafka.sh start
export REMEDY_KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
scripts/podman.sh start >/dev/null
REMEDY_DOCKER_HOST="$(scripts/podman.sh env | sed 's/^DOCKER_HOST=//')"
export REMEDY_DOCKER_HOST
cargo test --workspace --all-targets "$@"

# Offloads to an S3-compatible tier (feature `s3`) against moto's server.
scripts/s3.sh start
REMEDY_S3_ENDPOINT="http://127.0.0.1:$S3_PORT" cargo test -p reclaim --features s3 --test executors

# The API against its own OpenAPI document, over a real socket.
scripts/schemathesis.sh "${CARGO_TARGET_DIR:-target}/debug/remedy"
# The dashboard in headless Chromium; screenshots in $CARGO_TARGET_DIR/e2e.
scripts/e2e.sh "${CARGO_TARGET_DIR:-target}/debug/remedy"
# A real Prometheus scraping a running server with the shipped config.
scripts/prometheus.sh "${CARGO_TARGET_DIR:-target}/debug/remedy"
