#!/usr/bin/env bash
# Load test of the HTTP API with 10,000 incidents stored, on loopback
# against a release build, with oha (`cargo install oha`):
#   1. a fixed rate of RATE requests/second (default 5,000) with latency
#      correction (no coordinated omission): p50/p99 at that rate;
#   2. saturation (as fast as 32 connections go): the most it serves.
# For the incident list (first page, and filtered by service) and the
# incident detail. Server and load generator share the machine's cores.
#
# Usage: bench/api/load.sh [SECONDS per run, default 15] [RATE, default 5000]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-15}"
rate="${2:-5000}"
command -v oha >/dev/null || { echo "load.sh: needs oha (cargo install oha)" >&2; exit 1; }

cargo build --release --no-default-features -q
bin="${CARGO_TARGET_DIR:-target}/release/remedy"
work="$(mktemp -d -t remedy-load-XXXXXX)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

"$bin" replay datasets/demo --out "$work/out" --db "$work/remedy.db" >/dev/null
# 10,000 incidents: the demo's, copied at later times with new ids (same
# bodies, so detail pages carry real evidence, actions and audit entries).
python3 - "$work/remedy.db" <<'PY'
import json, sqlite3, sys, datetime
db = sqlite3.connect(sys.argv[1])
base = db.execute("SELECT id, run_id, start_ms, end_ms, status, class, confidence, summary, body FROM incidents").fetchall()
services = db.execute("SELECT incident_id, service FROM incident_services").fetchall()
n, copy = len(base), 0
def iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
while n < 10_000:
    copy += 1
    shift = copy * 8 * 3600 * 1000
    for (id, run, start, end, status, cls, conf, summary, body) in base:
        if n >= 10_000:
            break
        new = f"{id}-c{copy}"
        b, s = json.loads(body), json.loads(summary)
        for d in (b, s):
            d["id"], d["start"] = new, iso(start + shift)
            if end is not None:
                d["end"] = iso(end + shift)
        db.execute("INSERT INTO incidents VALUES (?,?,?,?,?,?,?,?,?)",
                   (new, run, start + shift, None if end is None else end + shift, status, cls, conf,
                    json.dumps(s), json.dumps(b)))
        for (iid, svc) in services:
            if iid == id:
                db.execute("INSERT INTO incident_services VALUES (?,?,?)", (new, svc, start + shift))
        n += 1
db.commit()
print(f"incidents stored: {db.execute('SELECT count(*) FROM incidents').fetchone()[0]}", file=sys.stderr)
PY
detail_id="$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT id FROM incidents WHERE class='memory_leak' ORDER BY start_ms DESC LIMIT 1\").fetchone()[0])" "$work/remedy.db")"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
"$bin" serve --db "$work/remedy.db" --listen "127.0.0.1:$port" 2>"$work/serve.log" &
server=$!
for _ in $(seq 100); do grep -q "listening on" "$work/serve.log" 2>/dev/null && break; sleep 0.1; done

echo "machine: $(nproc) cores; oha on loopback, ${secs}s per run; server and oha share the cores"
run() {  # label, oha flags..., url
  local label="$1"; shift
  oha --no-tui --output-format json -z "${secs}s" "$@" > "$work/oha.json"
  python3 - "$label" "$work/oha.json" <<'PY'
import json, sys
label, r = sys.argv[1], json.load(open(sys.argv[2]))
s, p = r["summary"], r["latencyPercentiles"]
codes = r.get("statusCodeDistribution", {})
ok = codes.get("200", 0)
errors = {k: v for k, v in (r.get("errorDistribution") or {}).items() if k != "aborted due to deadline"}
other = {k: v for k, v in codes.items() if k != "200"}
print(f"{label:<62} {s['requestsPerSec']:>9.0f} req/s  p50 {p['p50']*1000:6.2f} ms  p99 {p['p99']*1000:6.2f} ms  "
      f"ok {ok}{'  other ' + str(other) if other else ''}{'  errors ' + str(errors) if errors else ''}")
PY
}
for path in "/api/v1/incidents?limit=50" "/api/v1/incidents?service=checkout&limit=50" "/api/v1/incidents/$detail_id"; do
  url="http://127.0.0.1:$port$path"
  run "GET ${path:0:44} @ $rate/s" -q "$rate" --latency-correction -c 64 "$url"
  run "GET ${path:0:44} saturated" -c 32 "$url"
done
