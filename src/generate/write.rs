//! Writing lines in each shipper's format, and metric scrapes.

use super::estate::{LogFormat, Service, HOSTS};
use super::faults::Fault;
use super::{normal, State, BUCKETS};
use anyhow::Context;
use models::Timestamp;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// One generated log line before formatting.
pub struct Line {
    pub ts: i64,
    pub service: usize,
    pub replica: usize,
    pub level: &'static str,
    pub text: String,
    pub latency: f64,
    pub status: u32,
    pub trace: u64,
}

enum Sink {
    Plain(BufWriter<File>),
    // Boxed: the encoder's state is far larger than a plain writer.
    Gz(Box<flate2::write::GzEncoder<BufWriter<File>>>),
}

impl Sink {
    fn w(&mut self) -> &mut dyn Write {
        match self {
            Sink::Plain(w) => w,
            Sink::Gz(w) => w,
        }
    }
}

struct Out {
    name: String,
    sink: Sink,
    lines: u64,
}

impl Out {
    fn create(dir: &Path, name: &str, gz: bool) -> anyhow::Result<Out> {
        let name = if gz {
            format!("{name}.gz")
        } else {
            name.to_string()
        };
        let path = dir.join(&name);
        let f = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let w = BufWriter::with_capacity(1 << 16, f);
        Ok(Out {
            name,
            sink: if gz {
                Sink::Gz(Box::new(flate2::write::GzEncoder::new(
                    w,
                    flate2::Compression::new(6),
                )))
            } else {
                Sink::Plain(w)
            },
            lines: 0,
        })
    }

    fn line(&mut self, s: &str) -> std::io::Result<()> {
        let w = self.sink.w();
        w.write_all(s.as_bytes())?;
        w.write_all(b"\n")?;
        self.lines += 1;
        Ok(())
    }

    fn finish(self) -> anyhow::Result<(String, u64)> {
        match self.sink {
            Sink::Plain(mut w) => w.flush()?,
            Sink::Gz(g) => g.finish()?.flush()?,
        }
        Ok((self.name, self.lines))
    }
}

/// One metric sample before formatting: name, labels, value, type.
type Sample = (String, BTreeMap<&'static str, String>, f64, &'static str);

/// The family a sample belongs to: a histogram's `_bucket`, `_sum` and
/// `_count` series share their base name; every other name is its own family.
fn family<'a>(name: &'a str, kind: &str) -> &'a str {
    name.strip_suffix("_bucket")
        .or_else(|| name.strip_suffix("_sum"))
        .or_else(|| name.strip_suffix("_count"))
        .filter(|_| kind == "histogram" || kind == "summary")
        .unwrap_or(name)
}

/// Rank of each family by its first sample, so grouping keeps the order in
/// which the scrape first mentions each family.
fn family_order(samples: &[Sample]) -> std::collections::HashMap<&str, usize> {
    let mut order = std::collections::HashMap::new();
    for (name, _, _, kind) in samples {
        let next = order.len();
        order.entry(family(name, kind)).or_insert(next);
    }
    order
}

/// `# HELP` text of each family the generator writes (the wording of the
/// exporter that usually exposes it: cAdvisor, node_exporter, client
/// libraries, kafka_exporter).
fn help(family: &str) -> &'static str {
    match family {
        "node_filesystem_size_bytes" => "Filesystem size in bytes.",
        "node_filesystem_avail_bytes" => "Filesystem space available to non-root users in bytes.",
        "engine_disk_usage_bytes" => {
            "Disk space used by the container engine, by type (images, containers, volumes, build_cache)."
        }
        "engine_dangling_images" => "Number of dangling (untagged, unreferenced) images.",
        "engine_exited_containers" => "Number of exited containers not yet removed.",
        "node_cpu_seconds_total" => "Seconds the CPUs spent in each mode.",
        "container_memory_working_set_bytes" => "Current working set of the container in bytes.",
        "container_spec_memory_limit_bytes" => "Memory limit of the container in bytes.",
        "container_cpu_usage_seconds_total" => "Cumulative CPU time consumed by the container in seconds.",
        "container_spec_cpu_quota_cores" => "CPU quota of the container in cores.",
        "process_open_fds" => "Number of open file descriptors.",
        "process_max_fds" => "Maximum number of open file descriptors.",
        "jvm_threads_live_threads" => "The current number of live threads including both daemon and non-daemon threads.",
        "jvm_memory_used_bytes" => "The amount of used memory",
        "jvm_memory_max_bytes" => "The maximum amount of memory in bytes that can be used for memory management",
        "jvm_gc_pause_seconds" => "Time spent in GC pause",
        "kafka_consumergroup_lag" => "Current approximate lag of a consumer group at topic/partition.",
        "http_request_duration_seconds" => "Duration of HTTP requests in seconds.",
        "http_requests_total" => "Total number of HTTP requests by status class.",
        _ => "Generated by remedy generate.",
    }
}

/// Every output file of a run.
pub struct Writers {
    logs: Vec<Out>,
    kernel: Out,
    changes: Out,
    /// One per host; node-4 is shipped through prometheus-kafka-adapter.
    metrics: Vec<Out>,
    buf: String,
}

/// JSON string literal.
fn js(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

fn rfc(ts: i64) -> String {
    Timestamp::from_millis(ts).to_rfc3339()
}

const ADAPTER_HOST: &str = "node-4";

impl Writers {
    pub fn create(dir: &Path, services: &[Service], gz: bool) -> anyhow::Result<Writers> {
        std::fs::create_dir_all(dir.join("logs"))?;
        std::fs::create_dir_all(dir.join("metrics"))?;
        let logs = services
            .iter()
            .map(|s| Out::create(&dir.join("logs"), s.file, gz))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let metrics = HOSTS
            .iter()
            .map(|h| {
                if *h == ADAPTER_HOST {
                    Out::create(&dir.join("metrics"), "adapter.jsonl", gz)
                } else {
                    Out::create(&dir.join("metrics"), &format!("{h}.prom"), gz)
                }
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Writers {
            logs,
            kernel: Out::create(&dir.join("logs"), "nodes.syslog", gz)?,
            changes: Out::create(&dir.join("logs"), "changes.ecs.json", gz)?,
            metrics,
            buf: String::with_capacity(512),
        })
    }

    pub fn write_logs(
        &mut self,
        services: &[Service],
        lines: &[Line],
        kernel: &[(i64, String, String)],
        changes: &[(i64, &str, &str, String, String)],
    ) -> anyhow::Result<()> {
        for l in lines {
            let s = &services[l.service];
            let (container, host) = (&s.replicas[l.replica].0, s.replicas[l.replica].1);
            let b = &mut self.buf;
            b.clear();
            let trace = format!("{:016x}{:016x}", l.trace, l.trace.rotate_left(17));
            match s.format {
                LogFormat::Ecs => {
                    let _ = write!(
                        b,
                        r#"{{"@timestamp":"{}","log":{{"level":"{}"}},"message":{},"service":{{"name":"{}"}},"host":{{"name":"{host}"}},"container":{{"name":"{container}"}},"http":{{"response":{{"status_code":{}}}}},"event":{{"duration":{}}},"trace":{{"id":"{}"}}}}"#,
                        rfc(l.ts),
                        l.level,
                        js(&l.text),
                        s.name,
                        l.status,
                        (l.latency * 1e9).round() as u64,
                        &trace[..16]
                    );
                }
                LogFormat::Otel => {
                    let (sev, num) = match l.level {
                        "error" => ("ERROR", 17),
                        "warn" => ("WARN", 13),
                        _ => ("INFO", 9),
                    };
                    let _ = write!(
                        b,
                        r#"{{"timeUnixNano":"{}","severityText":"{sev}","severityNumber":{num},"body":{{"stringValue":{}}},"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{}"}}}},{{"key":"host.name","value":{{"stringValue":"{host}"}}}},{{"key":"container.name","value":{{"stringValue":"{container}"}}}}]}},"traceId":"{trace}","attributes":[{{"key":"http.response.status_code","value":{{"intValue":"{}"}}}},{{"key":"duration_ms","value":{{"doubleValue":{:.3}}}}}]}}"#,
                        l.ts as i128 * 1_000_000,
                        js(&l.text),
                        s.name,
                        l.status,
                        l.latency * 1000.0
                    );
                }
                LogFormat::Logfmt => {
                    if let Some(event) = l.text.strip_prefix("event=") {
                        let _ = write!(
                            b,
                            "ts={} severity={} event={event} service={} host={host} container={container} duration={:.3}s trace_id={}",
                            rfc(l.ts), l.level, s.name, l.latency, &trace[..16]
                        );
                    } else {
                        let _ = write!(
                            b,
                            "ts={} level={} service={} host={host} container={container} msg={} duration={:.3}s trace_id={}",
                            rfc(l.ts), l.level, s.name, js(&l.text), l.latency, &trace[..16]
                        );
                    }
                }
                LogFormat::Plain => {
                    let t = Timestamp::from_millis(l.ts)
                        .to_datetime()
                        .expect("in range");
                    let _ = write!(
                        b,
                        "{} {} {}: {} (took {}ms)",
                        t.format("%Y-%m-%d %H:%M:%S%.3f"),
                        l.level.to_ascii_uppercase(),
                        s.name,
                        l.text,
                        (l.latency * 1000.0).round() as u64
                    );
                }
                LogFormat::FluentBit => {
                    let _ = write!(
                        b,
                        r#"{{"time":"{}","level":"{}","log":{},"stream":"stdout","duration_ms":{:.3},"kubernetes":{{"pod_name":"{container}","container_name":"{}","namespace_name":"shop","host":"{host}"}}}}"#,
                        rfc(l.ts),
                        l.level,
                        js(&l.text),
                        l.latency * 1000.0,
                        s.name
                    );
                }
                LogFormat::Syslog => {
                    let sev = match l.level {
                        "error" => 3,
                        "warn" => 4,
                        _ => 6,
                    };
                    let _ = write!(
                        b,
                        "<{}>1 {} {host} {} {} - - {}",
                        16 * 8 + sev,
                        rfc(l.ts),
                        s.name,
                        1000 + l.replica,
                        l.text
                    );
                }
            }
            self.logs[l.service].line(&self.buf)?;
        }
        for (ts, host, msg) in kernel {
            self.kernel
                .line(&format!("<2>1 {} {host} kernel - - - {msg}", rfc(*ts)))?;
        }
        for (ts, svc, kind, version, msg) in changes {
            self.changes.line(&format!(
                r#"{{"@timestamp":"{}","event":{{"action":"{kind}"}},"service":{{"name":"{svc}","version":"{version}"}},"message":{}}}"#,
                rfc(*ts),
                js(msg)
            ))?;
        }
        Ok(())
    }

    pub fn write_scrape(
        &mut self,
        t: i64,
        services: &[Service],
        faults: &[Fault],
        st: &mut State,
        rng: &mut ChaCha8Rng,
        step: i64,
    ) -> anyhow::Result<()> {
        let step_s = step as f64 / 1000.0;
        let season = super::seasonality(t);
        let active = |name: &str| {
            faults
                .iter()
                .find(|f| f.scenario == name)
                .and_then(|f| f.progress(t).map(|p| (f, p)))
        };
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); HOSTS.len()];
        // Host-level series.
        for (hi, host) in HOSTS.iter().enumerate() {
            let disk_fault =
                active("disk_pressure").filter(|(f, _)| f.target.host.as_deref() == Some(*host));
            let d = &mut st.disk[hi];
            let base = [6e9, 1e9, 2e9, 1.5e9];
            match disk_fault {
                Some((_, p)) => {
                    // Images and build cache pile up until the disk is nearly full.
                    d[0] = base[0] + 40e9 * p;
                    d[1] = base[1] + 6e9 * p;
                    d[2] = base[2] + 8e9 * p;
                    d[3] = base[3] + 22e9 * p;
                }
                None => {
                    for (x, b) in d.iter_mut().zip(base) {
                        *x = b * (1.0 + 0.01 * normal(rng));
                    }
                }
            }
            let size = 100e9;
            let avail = size - d.iter().sum::<f64>() - 20e9;
            let hl = |extra: &[(&'static str, &str)]| {
                let mut m = BTreeMap::new();
                m.insert("host", host.to_string());
                for (k, v) in extra {
                    m.insert(*k, v.to_string());
                }
                m
            };
            let s = &mut samples[hi];
            s.push((
                "node_filesystem_size_bytes".into(),
                hl(&[("mountpoint", "/var/lib/docker")]),
                size,
                "gauge",
            ));
            s.push((
                "node_filesystem_avail_bytes".into(),
                hl(&[("mountpoint", "/var/lib/docker")]),
                avail.round(),
                "gauge",
            ));
            for (i, ty) in ["images", "containers", "volumes", "build_cache"]
                .iter()
                .enumerate()
            {
                s.push((
                    "engine_disk_usage_bytes".into(),
                    hl(&[("type", ty)]),
                    d[i].round(),
                    "gauge",
                ));
            }
            let p = disk_fault.map_or(0.0, |(_, p)| p);
            s.push((
                "engine_dangling_images".into(),
                hl(&[]),
                (3.0 + 120.0 * p).round(),
                "gauge",
            ));
            s.push((
                "engine_exited_containers".into(),
                hl(&[]),
                (2.0 + 60.0 * p).round(),
                "gauge",
            ));
            let steal = match active("noisy_neighbor") {
                Some((f, _)) if f.target.host.as_deref() == Some(*host) => 0.55,
                _ => 0.01 + 0.005 * normal(rng).abs(),
            };
            st.steal[hi] += 4.0 * steal * step_s;
            s.push((
                "node_cpu_seconds_total".into(),
                hl(&[("mode", "steal")]),
                (st.steal[hi] * 100.0).round() / 100.0,
                "counter",
            ));
        }
        // Container series.
        let mut ci = 0;
        for s in services {
            for (container, host) in &s.replicas {
                let hi = HOSTS.iter().position(|h| h == host).expect("known host");
                let labels = || {
                    let mut m = BTreeMap::new();
                    m.insert("service", s.name.to_string());
                    m.insert("host", host.to_string());
                    m.insert("container", container.to_string());
                    m
                };
                // A container that started minutes ago (a rolling deploy):
                // its CPU bursts, its heap fills, its threads and
                // descriptors open.
                let up = super::StartUp::at(t.saturating_sub(st.started[ci]));
                // A memory leak here climbs from where the memory stood to
                // its limit, over 80% of the fault.
                let leaking = active("memory_leak").and_then(|(f, p)| {
                    (f.target.container.as_deref() == Some(container.as_str())).then_some(p)
                });
                let climb = |from: f64, p: f64| {
                    from + (s.mem_limit * 0.99 - from).max(0.0) * (p / 0.8).min(1.0)
                };
                let mut mem = s.mem_base * (1.0 + 0.03 * normal(rng) + 0.05 * season) * up.mem;
                if let Some(p) = leaking {
                    mem = match st.oom_at {
                        None => climb(s.mem_base, p),
                        Some(_) => s.mem_base * 0.6,
                    };
                }
                // A JVM: its heap's sawtooth, and a working set that is
                // the heap it has touched plus what lives outside it.
                if let Some(j) = st.jvm[ci].as_mut() {
                    // The kernel killed the leaking JVM: it starts afresh.
                    if leaking.is_some() && st.oom_at == Some(t) {
                        *j = super::Jvm::start(s.mem_limit);
                    }
                    let rate = 0.0025 * j.max * (0.3 + season) * up.cpu * (1.0 + 0.1 * normal(rng));
                    let floor = 0.3 + leaking.map_or(0.0, |p| 0.6 * (p / 0.8).min(1.0));
                    j.step(step_s, rate, floor, rng);
                    let ws = (0.15 * s.mem_limit + j.touched) * (1.0 + 0.005 * normal(rng));
                    mem = match leaking {
                        Some(p) if st.oom_at.is_none() => climb(ws, p),
                        _ => ws,
                    };
                }
                let out = &mut samples[hi];
                if let Some(j) = &st.jvm[ci] {
                    // Micrometer's pools: what each holds, has committed
                    // (the young generation is committed whole) and may
                    // grow to.
                    for (id, used, committed, max) in [
                        ("G1 Eden Space", j.eden, j.eden_cap, j.eden_cap),
                        (
                            "G1 Old Gen",
                            j.old,
                            j.committed - j.eden_cap,
                            j.max - j.eden_cap,
                        ),
                    ] {
                        let mut l = labels();
                        l.insert("area", "heap".into());
                        l.insert("id", id.into());
                        out.push((
                            "jvm_memory_used_bytes".into(),
                            l.clone(),
                            used.round(),
                            "gauge",
                        ));
                        out.push((
                            "jvm_memory_committed_bytes".into(),
                            l.clone(),
                            committed.round(),
                            "gauge",
                        ));
                        out.push(("jvm_memory_max_bytes".into(), l, max.round(), "gauge"));
                    }
                    for (action, count, secs) in [
                        ("end of minor GC", j.minor, j.minor_secs),
                        ("end of major GC", j.mixed, j.mixed_secs),
                    ] {
                        let mut l = labels();
                        l.insert("action", action.into());
                        out.push((
                            "jvm_gc_pause_seconds_count".into(),
                            l.clone(),
                            count,
                            "summary",
                        ));
                        out.push((
                            "jvm_gc_pause_seconds_sum".into(),
                            l,
                            (secs * 1000.0).round() / 1000.0,
                            "summary",
                        ));
                    }
                }
                out.push((
                    "container_memory_working_set_bytes".into(),
                    labels(),
                    mem.round(),
                    "gauge",
                ));
                out.push((
                    "container_spec_memory_limit_bytes".into(),
                    labels(),
                    s.mem_limit,
                    "gauge",
                ));
                let mut cpu = (0.15 + 0.5 * season) * (1.0 + 0.1 * normal(rng)).max(0.1) * up.cpu;
                if s.name == "queue" && active("cpu_saturation").is_some_and(|(_, p)| p > 0.05) {
                    cpu = 1.95 + 0.03 * normal(rng).abs().min(1.5);
                }
                st.cpu[ci] += cpu * step_s;
                out.push((
                    "container_cpu_usage_seconds_total".into(),
                    labels(),
                    (st.cpu[ci] * 1000.0).round() / 1000.0,
                    "counter",
                ));
                out.push((
                    "container_spec_cpu_quota_cores".into(),
                    labels(),
                    2.0,
                    "gauge",
                ));
                if s.name == "payments" {
                    let mut fds = 20.0 + (100.0 + 8.0 * normal(rng)) * up.open;
                    if let Some((f, p)) = active("fd_leak") {
                        if f.target.container.as_deref() == Some(container.as_str()) {
                            fds = 120.0 + 895.0 * p;
                        }
                    }
                    out.push(("process_open_fds".into(), labels(), fds.round(), "gauge"));
                    out.push(("process_max_fds".into(), labels(), 1024.0, "gauge"));
                }
                if s.name == "inventory" || s.name == "checkout" {
                    let mut threads = 15.0 + (45.0 + 4.0 * normal(rng)) * up.open;
                    if let Some((f, p)) = active("thread_leak") {
                        if f.target.container.as_deref() == Some(container.as_str()) {
                            threads = 60.0 + 4000.0 * p;
                        }
                    }
                    out.push((
                        "jvm_threads_live_threads".into(),
                        labels(),
                        threads.round(),
                        "gauge",
                    ));
                }
                if s.name == "queue" {
                    for part in 0..4 {
                        let hot = part == 3 && active("cpu_saturation").is_some();
                        st.lag[part] = if hot {
                            st.lag[part] + 900.0 * step_s / 15.0
                        } else {
                            (20.0 + 10.0 * normal(rng)).max(0.0)
                        };
                        let mut l = labels();
                        l.insert("topic", "orders".into());
                        l.insert("partition", part.to_string());
                        out.push((
                            "kafka_consumergroup_lag".into(),
                            l,
                            st.lag[part].round(),
                            "gauge",
                        ));
                    }
                }
                ci += 1;
            }
        }
        // Request histograms of gateway and checkout, on the host of their first replica.
        for (h, name) in ["gateway", "checkout"].iter().enumerate() {
            let Some(s) = services.iter().find(|s| s.name == *name) else {
                continue;
            };
            let hi = HOSTS
                .iter()
                .position(|x| *x == s.replicas[0].1)
                .expect("known host");
            let lab = |extra: Option<(&'static str, String)>| {
                let mut m = BTreeMap::new();
                m.insert("service", name.to_string());
                if let Some((k, v)) = extra {
                    m.insert(k, v);
                }
                m
            };
            for (b, le) in BUCKETS.iter().enumerate() {
                samples[hi].push((
                    "http_request_duration_seconds_bucket".into(),
                    lab(Some(("le", le.to_string()))),
                    st.hist[h][b],
                    "histogram",
                ));
            }
            samples[hi].push((
                "http_request_duration_seconds_bucket".into(),
                lab(Some(("le", "+Inf".into()))),
                st.hist[h][6],
                "histogram",
            ));
            samples[hi].push((
                "http_request_duration_seconds_sum".into(),
                lab(None),
                (st.hist[h][7] * 1000.0).round() / 1000.0,
                "histogram",
            ));
            samples[hi].push((
                "http_request_duration_seconds_count".into(),
                lab(None),
                st.hist[h][6],
                "histogram",
            ));
            samples[hi].push((
                "http_requests_total".into(),
                lab(Some(("code", "2xx".into()))),
                st.requests[h][0],
                "counter",
            ));
            samples[hi].push((
                "http_requests_total".into(),
                lab(Some(("code", "5xx".into()))),
                st.requests[h][1],
                "counter",
            ));
        }
        // Write.
        let stamp = rfc(t);
        for (hi, host) in HOSTS.iter().enumerate() {
            if *host != ADAPTER_HOST {
                // The text format wants every sample of a family in one group
                // after its HELP and TYPE (strict parsers such as OpenMetrics
                // and prometheus_client reject a family that reappears), but
                // the samples were pushed container by container. A stable sort
                // on the family's first position groups them and keeps each
                // family's series in estate order.
                let ranks: Vec<usize> = {
                    let order = family_order(&samples[hi]);
                    samples[hi]
                        .iter()
                        .map(|s| order[family(&s.0, s.3)])
                        .collect()
                };
                let mut keyed: Vec<(usize, Sample)> = ranks
                    .into_iter()
                    .zip(std::mem::take(&mut samples[hi]))
                    .collect();
                keyed.sort_by_key(|(k, _)| *k);
                samples[hi] = keyed.into_iter().map(|(_, s)| s).collect();
            }
            let out = &mut self.metrics[hi];
            let mut declared: Vec<&str> = Vec::new();
            for (name, labels, value, kind) in &samples[hi] {
                let b = &mut self.buf;
                b.clear();
                if *host == ADAPTER_HOST {
                    let _ = write!(
                        b,
                        r#"{{"timestamp":"{stamp}","value":"{value}","name":"{name}","labels":{{"__name__":"{name}""#
                    );
                    for (k, v) in labels {
                        let _ = write!(b, r#","{k}":{}"#, js(v));
                    }
                    b.push_str("}}");
                } else {
                    let family = family(name, kind);
                    if !declared.contains(&family) {
                        declared.push(family);
                        out.line(&format!("# HELP {family} {}", help(family)))?;
                        out.line(&format!("# TYPE {family} {kind}"))?;
                    }
                    b.push_str(name);
                    b.push('{');
                    for (i, (k, v)) in labels.iter().enumerate() {
                        if i > 0 {
                            b.push(',');
                        }
                        let _ = write!(b, "{k}={}", js(v));
                    }
                    let _ = write!(b, "}} {value} {t}");
                }
                out.line(&self.buf)?;
            }
        }
        Ok(())
    }

    pub fn finish(self) -> anyhow::Result<BTreeMap<String, u64>> {
        let mut m = BTreeMap::new();
        for o in self.logs.into_iter().chain([self.kernel, self.changes]) {
            let (n, l) = o.finish()?;
            m.insert(format!("logs/{n}"), l);
        }
        for o in self.metrics {
            let (n, l) = o.finish()?;
            m.insert(format!("metrics/{n}"), l);
        }
        Ok(m)
    }
}
