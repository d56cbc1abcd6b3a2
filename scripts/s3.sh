#!/usr/bin/env bash
# An S3-compatible server on loopback for the S3 offload test: moto's
# server (from PyPI, in the venv the other test tools use), started on
# 127.0.0.1:$S3_PORT and stopped by PID.
#
#   S3_PORT=9000 S3_STATE_DIR=/tmp/s3 scripts/s3.sh start|stop
set -euo pipefail
cd "$(dirname "$0")/.."
port="${S3_PORT:-9000}"
state="${S3_STATE_DIR:-${TMPDIR:-/tmp}/remedy-s3}"
venv="${REMEDY_VENV:-$HOME/.cache/remedy/venv}"
version=5.2.5
mkdir -p "$state"

case "${1:-}" in
start)
  if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
    echo "s3.sh: already running (pid $(cat "$state/pid"))"; exit 0
  fi
  if ! "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$version')" 2>/dev/null; then
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q "moto[server]==$version"
  fi
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$state/moto.log" 2>&1 &
  echo $! >"$state/pid"
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/', timeout=1)" 2>/dev/null; then
      echo "s3.sh: moto $version serving S3 at http://127.0.0.1:$port (log $state/moto.log)"; exit 0
    fi
    kill -0 "$(cat "$state/pid")" 2>/dev/null || { cat "$state/moto.log" >&2; echo "s3.sh: moto exited" >&2; exit 1; }
    sleep 0.2
  done
  echo "s3.sh: moto did not answer on 127.0.0.1:$port within 20 s" >&2; exit 1
  ;;
stop)
  if [ -f "$state/pid" ]; then
    kill "$(cat "$state/pid")" 2>/dev/null || true
    rm -f "$state/pid"
  fi
  ;;
*)
  echo "usage: scripts/s3.sh start|stop" >&2; exit 2
  ;;
esac
