//! The simulated estate: services, their containers and hosts, who calls
//! whom, and in which format each one logs.

/// How a service's logs are shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Filebeat, ECS field names.
    Ecs,
    /// OpenTelemetry log data model, as the collector's file exporter writes it.
    Otel,
    /// logfmt.
    Logfmt,
    /// Plain text, `<Date> <Time> <Level> <Component>: <Content>`.
    Plain,
    /// Fluent Bit with the kubernetes filter.
    FluentBit,
    /// RFC 5424 syslog.
    Syslog,
}

/// One service.
#[derive(Debug, Clone)]
pub struct Service {
    /// Name.
    pub name: &'static str,
    /// Log format.
    pub format: LogFormat,
    /// File name under `logs/`.
    pub file: &'static str,
    /// (container, host) of each replica.
    pub replicas: Vec<(String, &'static str)>,
    /// Services it calls.
    pub calls: Vec<&'static str>,
    /// Median request latency in seconds.
    pub latency: f64,
    /// Memory limit per container in bytes.
    pub mem_limit: f64,
    /// Normal working set in bytes.
    pub mem_base: f64,
}

/// Hosts.
pub const HOSTS: [&str; 4] = ["node-1", "node-2", "node-3", "node-4"];

/// The full estate, in a fixed order (determinism).
pub fn estate() -> Vec<Service> {
    let s = |name,
             format,
             file,
             replicas: &[(&str, &'static str)],
             calls: &[&'static str],
             latency,
             mem_gib: f64| Service {
        name,
        format,
        file,
        replicas: replicas.iter().map(|(c, h)| (c.to_string(), *h)).collect(),
        calls: calls.to_vec(),
        latency,
        mem_limit: mem_gib * 1024.0 * 1024.0 * 1024.0,
        mem_base: mem_gib * 0.45 * 1024.0 * 1024.0 * 1024.0,
    };
    vec![
        s(
            "gateway",
            LogFormat::Ecs,
            "gateway.ecs.json",
            &[("gateway-1", "node-1"), ("gateway-2", "node-2")],
            &["checkout", "inventory"],
            0.040,
            1.0,
        ),
        s(
            "checkout",
            LogFormat::Otel,
            "checkout.otel.json",
            &[("checkout-1", "node-2"), ("checkout-2", "node-3")],
            &["payments", "cache", "queue"],
            0.080,
            2.0,
        ),
        s(
            "payments",
            LogFormat::Logfmt,
            "payments.logfmt",
            &[("payments-1", "node-2"), ("payments-2", "node-3")],
            &["database"],
            0.120,
            1.0,
        ),
        s(
            "inventory",
            LogFormat::Plain,
            "inventory.log",
            &[("inventory-1", "node-1"), ("inventory-2", "node-3")],
            &["database", "cache"],
            0.030,
            2.0,
        ),
        s(
            "cache",
            LogFormat::FluentBit,
            "cache.fluentbit.json",
            &[("cache-1", "node-1")],
            &[],
            0.002,
            1.0,
        ),
        s(
            "database",
            LogFormat::Syslog,
            "database.syslog",
            &[("database-1", "node-4")],
            &[],
            0.010,
            8.0,
        ),
        s(
            "queue",
            LogFormat::Logfmt,
            "queue.logfmt",
            &[("queue-1", "node-4")],
            &[],
            0.005,
            2.0,
        ),
    ]
}

/// Normal messages of a service: (level weight is decided by the caller),
/// each a template with `{}` for a variable the generator fills.
pub fn info_templates(service: &str) -> &'static [&'static str] {
    match service {
        "gateway" => &[
            "GET /api/cart {} 200",
            "POST /api/checkout {} 200",
            "GET /api/products/{} 200",
            "proxied request to {} in {}ms",
        ],
        "checkout" => &[
            "order {} created for customer {}",
            "reserved stock for order {}",
            "payment authorised for order {}",
            "published event order.created id={}",
        ],
        "payments" => &[
            "charge {} succeeded amount={}",
            "refund {} issued",
            "fraud score {} for card {}",
        ],
        "inventory" => &[
            "stock level for sku {} is {}",
            "reservation {} confirmed",
            "reindexed {} products",
        ],
        "cache" => &[
            "GET key user:{} hit",
            "SET key cart:{} ttl=300",
            "evicted {} keys",
        ],
        "database" => &[
            "checkpoint complete: wrote {} buffers",
            "connection authorized: user=app database=shop",
            "autovacuum: processed table orders, {} dead tuples",
        ],
        "queue" => &[
            "committed offset {} for partition {}",
            "consumed batch of {} messages",
            "produced message to topic orders partition {}",
        ],
        _ => &["heartbeat {}"],
    }
}

/// Occasional warnings every service writes in normal operation.
pub fn warn_templates(service: &str) -> &'static [&'static str] {
    match service {
        "gateway" => &[
            "slow upstream response from {} took {}ms",
            "rate limit close for client {}",
        ],
        "database" => &["duration: {} ms statement: SELECT * FROM orders WHERE id = {}"],
        _ => &[
            "retrying request {} after transient error",
            "slow operation took {}ms",
        ],
    }
}
