#!/usr/bin/env bash
# What scripts/test.sh needs from the system, installed with apt-get when
# missing (Debian 12 and alike): as root directly, otherwise through sudo;
# without either it names the command and stops. Both scripts/test.sh and
# .ci/run call it, so the README's test command works on a fresh machine.
# Rust itself (1.85 or newer, with cargo and rustfmt) comes from rustup.
set -euo pipefail

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v mvn >/dev/null || need+=(maven)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v python3 >/dev/null || need+=(python3)
# scripts/e2e.sh drives Debian's Chromium with playwright-core from npm.
command -v chromium >/dev/null || need+=(chromium)
command -v npm >/dev/null || need+=(nodejs npm)
# scripts/prometheus.sh runs Debian's Prometheus against a live server.
command -v prometheus >/dev/null || need+=(prometheus)
# scripts/test.sh checks compose/docker-compose.yml with Debian's docker-compose.
command -v docker-compose >/dev/null || need+=(docker-compose)
# scripts/schemathesis.sh makes a venv for schemathesis from PyPI.
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
# scripts/podman.sh: Podman's Docker-compatible API for the executor tests
# (runc, since crun fails here; the test image comes from busybox-static).
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v curl >/dev/null || need+=(curl)
dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || need+=(libcurl4-openssl-dev)
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
dpkg -s zlib1g-dev >/dev/null 2>&1 || need+=(zlib1g-dev)
[ "${#need[@]}" -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "deps.sh: install ${need[*]} (names of Debian packages) and run again" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null; then
  as_root=(sudo)
else
  echo "deps.sh: run as root: apt-get install ${need[*]}" >&2
  exit 1
fi
echo "deps.sh: installing ${need[*]}" >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
