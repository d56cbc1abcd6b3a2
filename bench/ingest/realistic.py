"""A realistic ingest set for `bench/ingest/run.sh`: the shapes real estates
ship, at the lengths they ship them, seeded.

    python3 realistic.py OUT_DIR [SCALE] [SEED]     (stdlib only; scale 1)

Writes, for one simulated hour of a small estate (scale 1: about a million
records, ~400 MB):
- k8s/<service>.json: Fluent Bit Kubernetes-filter records (time, stream,
  `log` holding a logback line with its level inside, trace and span ids,
  a nested `kubernetes` object with labels and annotations), 400-900 bytes
  each, as the nezha-tt-dev set and any cluster shipping without a parser;
- otel/<service>.json: OpenTelemetry/ECS-style JSON lines (Vector's
  `resources.service.name`, `attributes`, `severity_text`);
- web/<site>-access.log: nginx combined access lines with `$request_time`;
- java/<service>.log: logback lines with multi-line stack traces under
  some ERROR lines (`\\tat ...`, `Caused by:`, `... N more`);
- metrics/scrape-<node>.prom: Prometheus text exposition with timestamps,
  counters, gauges and histogram buckets of many pods, one scrape every
  15 s.
Nothing here is tuned to make Remedy look fast: lengths and mixes follow
the public sets in ../shared/datasets and the shippers' documentation."""
import json, os, random, sys

out = sys.argv[1]
scale = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 7)
T0 = 1_767_600_000  # 2026-01-05T08:00:00Z
HOUR = 3600
SERVICES = [f"svc-{n}" for n in ("cart", "checkout", "payments", "search", "users", "orders", "stock", "shipping")]
LOGGERS = ["c.e.shop.web.CartController", "c.e.shop.svc.OrderServiceImpl", "o.s.web.servlet.DispatcherServlet",
           "c.e.shop.repo.JdbcStockRepository", "c.e.shop.client.PaymentClient", "o.h.engine.jdbc.spi.SqlExceptionHelper"]
MESSAGES = [
    "Handling request {id} for user {user} with {n} items in cart",
    "Query took {ms} ms rows={n} sql=SELECT id, sku, qty, price FROM stock WHERE sku IN ({skus})",
    "Calling payment provider for order {id} amount={amt} currency=EUR attempt={n}",
    "Completed 200 OK in {ms} ms [trips: [Trip(id={id}, routeId={id2}, startTime=2026-01-05 09:51:52)]]",
    "Cache miss for key product:{id} ttl={n}s, loading from database",
]
ERRORS = [
    "Failed to process order {id}: connection to db-primary:5432 refused",
    "Timeout after {ms} ms waiting for payment provider (order {id})",
]


def hexid(n):
    return "%0*x" % (n, rng.getrandbits(4 * n))


def fill(t):
    return t.format(id=hexid(16), id2=hexid(12), user=f"u{rng.randint(1, 99999)}", n=rng.randint(1, 40),
                    ms=rng.randint(1, 900), amt=f"{rng.uniform(1, 500):.2f}",
                    skus=", ".join(f"'SKU-{rng.randint(1000, 9999)}'" for _ in range(rng.randint(2, 12))))


def clock(ts):
    s = ts % 86400
    return "%02d:%02d:%02d.%03d" % (s // 3600, s // 60 % 60, int(s) % 60, int(ts * 1000) % 1000)


def iso(ts):
    import datetime
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def k8s(svc, n):
    pod = f"{svc}-{hexid(10)}-{hexid(5)}"
    node = f"10.0.{rng.randint(0, 3)}.{rng.randint(2, 250)}"
    with open(f"{out}/k8s/{svc}.json", "w") as f:
        for i in range(n):
            ts = T0 + HOUR * i / n
            err = rng.random() < 0.01
            lvl = "ERROR" if err else ("WARN " if rng.random() < 0.04 else "INFO ")
            tid, sid = hexid(32), hexid(16)
            msg = fill(rng.choice(ERRORS if err else MESSAGES))
            rec = {"time": iso(ts), "stream": "stdout",
                   "log": f"{clock(ts)} {lvl} {rng.choice(LOGGERS)}#{rng.randint(30, 400)} TraceID: {tid} SpanID: {sid} {msg}",
                   "trace_id": tid, "span_id": sid,
                   "kubernetes": {"namespace_name": "shop", "pod_name": pod, "container_name": "server",
                                  "host": node, "pod_id": hexid(32), "docker_id": hexid(64),
                                  "container_image": f"registry.example.com/shop/{svc}:1.{rng.randint(0, 9)}.3",
                                  "labels": {"app": svc, "pod-template-hash": hexid(10), "version": "v1"},
                                  "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"}}}
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")


def otel(svc, n):
    with open(f"{out}/otel/{svc}.json", "w") as f:
        for i in range(n):
            ts = T0 + HOUR * i / n
            err = rng.random() < 0.01
            rec = {"timestamp": iso(ts), "severity_text": "ERROR" if err else "INFO",
                   "message": fill(rng.choice(ERRORS if err else MESSAGES)),
                   "resources": {"service.name": svc, "host.name": f"node-{rng.randint(1, 4)}",
                                 "k8s.pod.name": f"{svc}-{hexid(6)}"},
                   "attributes": {"http.method": "GET", "http.route": "/api/v1/items/{id}",
                                  "http.status_code": 500 if err else 200, "duration_ms": rng.randint(1, 900)},
                   "trace_id": hexid(32), "span_id": hexid(16)}
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")


def access(site, n):
    import datetime
    with open(f"{out}/web/{site}-access.log", "w") as f:
        for i in range(n):
            ts = T0 + HOUR * i / n
            d = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000")
            st = rng.choices([200, 201, 304, 404, 500, 502], [80, 5, 8, 4, 2, 1])[0]
            path = rng.choice(["/", "/api/v1/cart", "/api/v1/items/" + str(rng.randint(1, 99999)), "/static/app.js?v=" + hexid(8)])
            f.write(f'10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)} - - [{d}] "GET {path} HTTP/1.1" '
                    f'{st} {rng.randint(200, 90000)} "https://{site}.example.com/" "Mozilla/5.0 (X11; Linux x86_64) '
                    f'AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36" {rng.uniform(0.001, 0.9):.3f}\n')


def java(svc, n):
    import datetime
    with open(f"{out}/java/{svc}.log", "w") as f:
        for i in range(n):
            ts = T0 + HOUR * i / n
            d = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
            err = rng.random() < 0.01
            lvl = "ERROR" if err else "INFO"
            f.write(f"{d} [http-nio-8080-exec-{rng.randint(1, 200)}] {lvl} {rng.choice(LOGGERS)} - "
                    f"{fill(rng.choice(ERRORS if err else MESSAGES))}\n")
            if err and rng.random() < 0.5:
                f.write("java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, request timed out after 30000ms.\n")
                for k in range(rng.randint(8, 30)):
                    f.write(f"\tat com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:{100 + k})\n")
                f.write("Caused by: java.net.ConnectException: Connection refused\n")
                f.write("\tat java.base/sun.nio.ch.Net.connect0(Native Method)\n")
                f.write(f"\t... {rng.randint(10, 60)} more\n")


def scrapes(node, n_samples):
    pods = [f"{s}-{hexid(6)}" for s in SERVICES for _ in range(3)]
    per = len(pods) * (4 + 10 + 2)
    scrapes_n = max(1, int(n_samples / per))
    counters = {p: rng.randint(0, 10_000) for p in pods}
    with open(f"{out}/metrics/scrape-{node}.prom", "w") as f:
        for k in range(scrapes_n):
            ms = (T0 + HOUR * k // scrapes_n) * 1000
            f.write("# TYPE container_cpu_usage_seconds_total counter\n")
            for p in pods:
                counters[p] += rng.randint(5, 50)
                f.write(f'container_cpu_usage_seconds_total{{namespace="shop",pod="{p}",container="server",node="{node}"}} {counters[p] / 100:.2f} {ms}\n')
            f.write("# TYPE container_memory_working_set_bytes gauge\n")
            for p in pods:
                f.write(f'container_memory_working_set_bytes{{namespace="shop",pod="{p}",container="server",node="{node}"}} {rng.randint(200_000_000, 900_000_000)} {ms}\n')
                f.write(f'process_open_fds{{namespace="shop",pod="{p}",node="{node}"}} {rng.randint(40, 300)} {ms}\n')
                f.write(f'jvm_threads_live_threads{{namespace="shop",pod="{p}",node="{node}"}} {rng.randint(30, 200)} {ms}\n')
            f.write("# TYPE http_server_requests_seconds histogram\n")
            for p in pods:
                acc = 0
                for le in ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "+Inf"):
                    acc += rng.randint(0, 50)
                    f.write(f'http_server_requests_seconds_bucket{{namespace="shop",pod="{p}",uri="/api/v1/cart",le="{le}"}} {acc + k * 100} {ms}\n')
                f.write(f'http_server_requests_seconds_count{{namespace="shop",pod="{p}",uri="/api/v1/cart"}} {acc + k * 100} {ms}\n')


for d in ("k8s", "otel", "web", "java", "metrics"):
    os.makedirs(f"{out}/{d}", exist_ok=True)
N = int(40_000 * scale)
for s in SERVICES:
    k8s(s, N)
for s in SERVICES[:4]:
    otel(s, N // 2)
for site in ("shop", "api", "static"):
    access(site, N)
for s in SERVICES[4:]:
    java(s, N // 2)
for node in ("node-1", "node-2"):
    scrapes(node, N * 2)
