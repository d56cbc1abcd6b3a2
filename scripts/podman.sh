#!/usr/bin/env bash
# A real container engine with the Docker Engine API, without Docker:
# Podman's Docker-compatible service on a private unix socket, with storage
# isolated under a state directory, for development and the executor tests.
#
#   scripts/podman.sh start   write the config, import the busybox image, start the service, wait
#   scripts/podman.sh stop    stop the service by PID, remove every container and the state
#   scripts/podman.sh env     print DOCKER_HOST=unix://... for the running service
#   scripts/podman.sh status  say whether it runs, and where
#
# Nothing listens on a network: the API is a unix socket (mode 0600) inside
# the state directory. Containers get no network namespace of their own
# (netns none) so nothing needs bridges or iptables. Images are made with
# `podman import` from Debian's busybox-static (no registry is reached).
# Settings (environment):
#   PODMAN_STATE_DIR  where the socket, storage, config, PID and log live
#                     (default $REMEDY_CACHE/podman-run, REMEDY_CACHE ~/.cache/remedy)
#   PODMAN_IMAGE      the tag of the imported image (default localhost/remedy-busybox:latest)
set -euo pipefail

CACHE="${REMEDY_CACHE:-$HOME/.cache/remedy}"
STATE="${PODMAN_STATE_DIR:-$CACHE/podman-run}"
IMAGE="${PODMAN_IMAGE:-localhost/remedy-busybox:latest}"
SOCKET="$STATE/podman.sock"
PIDFILE="$STATE/podman.pid"
LOG="$STATE/podman.log"
START_TIMEOUT="${PODMAN_START_TIMEOUT:-60}"

log() { echo "podman.sh: $*" >&2; }

need() {
  command -v podman >/dev/null || { log "podman is required: apt-get install podman runc busybox-static"; exit 1; }
  command -v runc >/dev/null || { log "runc is required (crun fails here on rlimits): apt-get install runc"; exit 1; }
  [ -x /bin/busybox ] || { log "busybox-static is required for the test image: apt-get install busybox-static"; exit 1; }
}

pm() {
  CONTAINERS_CONF="$STATE/containers.conf" CONTAINERS_STORAGE_CONF="$STATE/storage.conf" \
    XDG_RUNTIME_DIR="$STATE/xdg" XDG_CONFIG_HOME="$STATE/xdg-config" \
    podman --root "$STATE/root" --runroot "$STATE/runroot" --storage-driver vfs \
    --cgroup-manager cgroupfs --events-backend file --tmpdir "$STATE/tmp" "$@"
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

answers() { curl -sf --max-time 2 --unix-socket "$SOCKET" http://d/v1.41/_ping >/dev/null 2>&1; }

configure() {
  mkdir -p "$STATE"/{root,runroot,tmp,xdg,xdg-config,net,image}
  chmod 700 "$STATE"
  cat > "$STATE/containers.conf" <<CONF
[containers]
# crun fails here on rlimits and hybrid cgroups; runc with explicit ulimits works.
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$STATE/events.log"
tmp_dir = "$STATE/tmp"
volume_path = "$STATE/root/volumes"

[network]
network_config_dir = "$STATE/net"
CONF
  cat > "$STATE/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$STATE/root"
runroot = "$STATE/runroot"
CONF
}

import_image() {
  if pm image exists "$IMAGE" 2>/dev/null; then return 0; fi
  local fs="$STATE/image/rootfs"
  rm -rf "$fs"; mkdir -p "$fs/bin" "$fs/tmp" "$fs/data"
  cp /bin/busybox "$fs/bin/busybox"
  for tool in sh sleep echo cat ls true false dd rm mkdir touch; do ln -sf busybox "$fs/bin/$tool"; done
  tar -C "$fs" -cf "$STATE/image/rootfs.tar" .
  pm import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' "$STATE/image/rootfs.tar" "$IMAGE" >>"$LOG" 2>&1 \
    || { log "podman import failed:"; tail -n 20 "$LOG" >&2; exit 1; }
}

start() {
  need
  if running && answers; then log "already running (pid $(cat "$PIDFILE"))"; env; return 0; fi
  configure
  import_image
  rm -f "$SOCKET"
  CONTAINERS_CONF="$STATE/containers.conf" CONTAINERS_STORAGE_CONF="$STATE/storage.conf" \
    XDG_RUNTIME_DIR="$STATE/xdg" XDG_CONFIG_HOME="$STATE/xdg-config" \
    nohup podman --root "$STATE/root" --runroot "$STATE/runroot" --storage-driver vfs \
    --cgroup-manager cgroupfs --events-backend file --tmpdir "$STATE/tmp" \
    system service --time=0 "unix://$SOCKET" >>"$LOG" 2>&1 </dev/null &
  echo $! > "$PIDFILE"
  local waited=0
  while ! answers; do
    if ! running; then log "the service exited during start-up; last log lines:"; tail -n 30 "$LOG" >&2; exit 1; fi
    if [ "$waited" -ge "$START_TIMEOUT" ]; then log "the service did not answer within ${START_TIMEOUT}s"; tail -n 30 "$LOG" >&2; stop; exit 1; fi
    sleep 1; waited=$((waited + 1))
  done
  chmod 600 "$SOCKET"
  log "started Podman's Docker API (pid $(cat "$PIDFILE")) on $SOCKET in ${waited}s; image $IMAGE"
  env
}

stop() {
  if running; then
    local pid; pid=$(cat "$PIDFILE")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped (pid $pid)"
  else
    log "not running"
  fi
  if [ -d "$STATE" ]; then
    # Containers still running (conmon and their processes) go with the state.
    pm rm -af -t 0 >/dev/null 2>&1 || true
    pm system reset -f >/dev/null 2>&1 || true
    rm -rf "$STATE" 2>/dev/null || { chmod -R u+w "$STATE" 2>/dev/null; rm -rf "$STATE"; }
  fi
}

env() { echo "DOCKER_HOST=unix://$SOCKET"; }

status() {
  if running && answers; then echo "running pid=$(cat "$PIDFILE") DOCKER_HOST=unix://$SOCKET"; else echo "stopped"; return 3; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) env ;;
  status) status ;;
  *) echo "usage: $0 start|stop|env|status" >&2; exit 2 ;;
esac
