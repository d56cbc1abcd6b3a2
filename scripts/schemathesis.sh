#!/usr/bin/env bash
# Contract test of the HTTP API: schemathesis (from PyPI, in a venv it
# creates once) generates requests from the served OpenAPI document and
# checks every response: no 5xx, status codes, content types, headers and
# bodies as documented. Runs against a real `remedy serve` on a loopback
# port, over a database replayed from a generated scenario.
#
# Usage: scripts/schemathesis.sh [path/to/remedy]   (default: the debug build)
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-${CARGO_TARGET_DIR:-target}/debug/remedy}"
[ -x "$bin" ] || { echo "schemathesis.sh: no remedy binary at $bin; run cargo build first" >&2; exit 1; }
venv="${REMEDY_VENV:-$HOME/.cache/remedy/venv}"
version=4.32.5
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$version"
fi

work="$(mktemp -d -t remedy-schemathesis-XXXXXX)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

"$bin" generate --out "$work/scenario" --duration 4h --services 3 --scenario all --rate 1 >/dev/null
"$bin" replay "$work/scenario" --out "$work/out" --db "$work/remedy.db" >/dev/null

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
REMEDY_API_TOKENS=contract-test "$bin" serve --db "$work/remedy.db" --listen "127.0.0.1:$port" 2>"$work/serve.log" &
server=$!
for _ in $(seq 100); do
  grep -q "listening on" "$work/serve.log" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.1
done

cd "$work"   # schemathesis keeps its example database in the working directory
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/api/v1/openapi.json" \
  --url "http://127.0.0.1:$port" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  --max-examples 30 --generation-deterministic \
  -H "Authorization: Bearer contract-test"
