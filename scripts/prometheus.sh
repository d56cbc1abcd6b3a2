#!/usr/bin/env bash
# A real Prometheus (Debian's package) scrapes a running `remedy serve` with
# the shipped scrape config, and this script asks it, through Prometheus'
# HTTP API, what a Prometheus user would: is the target up, do the series
# carry the values Remedy reports, are the types what the names promise.
# The shipped config and alert rules are checked with promtool first.
#
# Usage: scripts/prometheus.sh [path/to/remedy]   (default: the debug build)
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-${CARGO_TARGET_DIR:-target}/debug/remedy}"
[ -x "$bin" ] || { echo "prometheus.sh: no remedy binary at $bin; run cargo build first" >&2; exit 1; }
for tool in prometheus promtool; do
  command -v "$tool" >/dev/null || { echo "prometheus.sh: needs $tool (apt-get install prometheus)" >&2; exit 1; }
done

. scripts/lib/serve.sh
promtool check rules compose/prometheus/remedy-alerts.yml >/dev/null

# Two records no parser takes, so dead letters have series too.
add_garbage() { printf 'not a record\n{"broken": \n' > "$1/logs/garbage.log"; }
serve_scenario "$bin" all "" add_garbage
api_port="$port"
# Some traffic, so the request histogram has series.
for path in /api/v1/incidents /api/v1/incidents/nope /healthz; do
  python3 -c "import urllib.request,sys
try: urllib.request.urlopen('http://127.0.0.1:$api_port$path')
except Exception: pass"
done

# The shipped config, pointed at this server and scraping every second.
sed -e "s/remedy:8080/127.0.0.1:$api_port/" -e "s/scrape_interval: 15s/scrape_interval: 1s/" \
  compose/prometheus/prometheus.yml > "$work/prometheus.yml"
cp compose/prometheus/remedy-alerts.yml "$work/"
promtool check config "$work/prometheus.yml" >/dev/null
prom_port="$(free_port)"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
extra_pids+=($!)

python3 - "$prom_port" "$work/out/summary.json" <<'PY'
import json, sys, time, urllib.parse, urllib.request
port, summary = sys.argv[1], json.load(open(sys.argv[2]))
base = f"http://127.0.0.1:{port}/api/v1"
def get(path, **q):
    with urllib.request.urlopen(f"{base}/{path}?{urllib.parse.urlencode(q)}", timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]
def value(expr):
    res = get("query", query=expr)["result"]
    return float(res[0]["value"][1]) if res else None
deadline = time.time() + 60
while True:
    try:
        if value('up{job="remedy"}') == 1.0 and value("remedy_records_read_total") is not None:
            break
    except Exception:
        pass
    assert time.time() < deadline, "Prometheus never scraped Remedy"
    time.sleep(0.5)
ingest = summary["ingest"]
checks = {
    "remedy_records_read_total": ingest["read"],
    "sum(remedy_records_parsed_total)": ingest["parsed"],
    "sum(remedy_records_dead_lettered_total)": ingest["dead_lettered"],
    "sum(remedy_anomalies_total)": summary["anomalies"],
    "sum(remedy_incidents)": summary["incidents"],
    "sum(remedy_actions)": summary["actions"],
    "remedy_store_up": 1,
}
for expr, want in checks.items():
    got = value(expr)
    assert got == float(want), f"{expr}: Prometheus has {got}, Remedy reported {want}"
    print(f"  {expr} = {got:g}")
by_reason = {r["metric"]["reason"] for r in get("query", query="remedy_records_dead_lettered_total")["result"]}
assert by_reason == set(ingest["by_reason"]), (by_reason, ingest["by_reason"])
# Types as the names promise.
meta = get("metadata")
want_types = {
    "remedy_records_read": "counter",
    "remedy_records_dead_lettered": "counter",
    "remedy_anomalies": "counter",
    "remedy_incidents": "gauge",
    "remedy_actions": "gauge",
    "remedy_http_request_duration_seconds": "histogram",
}
for name, kind in want_types.items():
    got = meta.get(name, [{}])[0].get("type")
    assert got == kind, f"{name}: type {got}, want {kind} (metadata: {sorted(meta)})"
# The histogram works with histogram_quantile, by route template.
q = get("query", query='histogram_quantile(0.99, sum by (le, route) (remedy_http_request_duration_seconds_bucket))')["result"]
routes = {r["metric"]["route"] for r in q}
assert "/api/v1/incidents/{id}" in routes, routes
assert not any("nope" in r for r in routes), "raw paths must not become labels"
# The shipped alert rules loaded and evaluate.
groups = get("rules")["groups"]
assert any(g["name"] == "remedy" and len(g["rules"]) >= 5 for g in groups), groups
print(f"prometheus.sh: Prometheus scraped Remedy; {len(checks)} values, {len(want_types)} types and {len(routes)} routes check out")
PY
