#!/usr/bin/env bash
# Dashboard end to end in headless Chromium (Debian's `chromium`, driven by
# playwright-core from npm, installed once into ~/.cache/remedy/node):
# replay a scenario into a database, serve it, open the list and an
# incident, check its plots rendered with data, approve its action with a
# token. Screenshots land in $SHOTS (default target/e2e/) for a person to
# look at.
#
# Usage: scripts/e2e.sh [path/to/remedy]   (default: the debug build)
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-${CARGO_TARGET_DIR:-target}/debug/remedy}"
[ -x "$bin" ] || { echo "e2e.sh: no remedy binary at $bin; run cargo build first" >&2; exit 1; }
command -v "${CHROMIUM:-chromium}" >/dev/null || { echo "e2e.sh: needs Debian's chromium (apt-get install chromium)" >&2; exit 1; }
node_dir="${REMEDY_NODE_DIR:-$HOME/.cache/remedy/node}"
version=1.64.1
if [ ! -f "$node_dir/node_modules/playwright-core/package.json" ] ||
   ! grep -q "\"version\": \"$version\"" "$node_dir/node_modules/playwright-core/package.json"; then
  mkdir -p "$node_dir"
  npm install --silent --prefix "$node_dir" "playwright-core@$version" >/dev/null
fi
shots="${SHOTS:-${CARGO_TARGET_DIR:-target}/e2e}"
mkdir -p "$shots"
shots="$(cd "$shots" && pwd)"

. scripts/lib/serve.sh
serve_scenario "$bin" memory_leak e2e-token

REMEDY_NODE_DIR="$node_dir" timeout 120 node tests/e2e/dashboard.mjs \
  "http://127.0.0.1:$port" e2e-token "$shots"
echo "e2e.sh: screenshots in $shots"
