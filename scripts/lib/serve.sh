# Sourced by the scripts that test a live `remedy serve` (schemathesis.sh,
# e2e.sh, prometheus.sh): a generated scenario replayed into a database and
# served on a free loopback port, all removed on exit.

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Processes to stop on exit besides the server (a script appends to it).
extra_pids=()

serve_cleanup() {
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null
  for p in "${extra_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null
  rm -rf "$work"
}

# serve_scenario BIN SCENARIO TOKEN [HOOK]: generate SCENARIO (4 hours, 3
# services), call HOOK (a function, given the scenario directory) if any,
# replay it into $work/remedy.db, and serve it with TOKEN. Sets `work`,
# `port` and `server`.
serve_scenario() {
  local bin="$1" scenario="$2" token="$3" hook="${4:-}"
  work="$(mktemp -d -t remedy-serve-XXXXXX)"
  server=""
  trap serve_cleanup EXIT INT TERM
  "$bin" generate --out "$work/scenario" --duration 4h --services 3 --scenario "$scenario" --rate 1 >/dev/null
  [ -n "$hook" ] && "$hook" "$work/scenario"
  "$bin" replay "$work/scenario" --out "$work/out" --db "$work/remedy.db" >/dev/null
  port="$(free_port)"
  REMEDY_API_TOKENS="$token" "$bin" serve --db "$work/remedy.db" --listen "127.0.0.1:$port" 2>"$work/serve.log" &
  server=$!
  for _ in $(seq 100); do
    grep -q "listening on" "$work/serve.log" 2>/dev/null && return 0
    kill -0 "$server" 2>/dev/null || { cat "$work/serve.log" >&2; return 1; }
    sleep 0.1
  done
  echo "remedy serve did not start listening" >&2
  return 1
}
