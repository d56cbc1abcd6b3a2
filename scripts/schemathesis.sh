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

. scripts/lib/serve.sh
serve_scenario "$bin" all contract-test

cd "$work"   # schemathesis keeps its example database in the working directory
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/api/v1/openapi.json" \
  --url "http://127.0.0.1:$port" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  --max-examples 30 --generation-deterministic \
  -H "Authorization: Bearer contract-test"
