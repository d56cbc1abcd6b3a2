//! `/metrics`: Remedy's own health in the Prometheus exposition format.
//!
//! Request durations are measured live in a histogram. What the pipeline
//! did (records read, parsed, dead-lettered; anomalies, incidents, actions)
//! lives in the store, possibly written by another process (`remedy replay
//! --db`), so a collector reads it at scrape time instead of mirroring it in
//! memory: the numbers can never drift from what the API serves.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use store::{self, Db};

/// Labels of one request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method.
    pub method: String,
    /// Route template (`/api/v1/incidents/{id}`), never the raw path: raw
    /// paths would make one series per incident id.
    pub route: String,
    /// Status code.
    pub status: String,
}

/// The registry and the live metrics.
pub struct Metrics {
    registry: Registry,
    /// `remedy_http_request_duration_seconds`.
    pub requests: Family<RequestLabels, Histogram>,
    /// Requests refused before a handler ran, by reason
    /// (`remedy_http_requests_shed_total`).
    pub shed: Family<ShedLabels, Counter>,
    /// `remedy_http_analyses_cancelled_total`: analyses stopped because
    /// their client went away or the request timed out.
    pub analyses_cancelled: Counter,
    conn: ConnMetrics,
}

/// Why a request was refused before its handler ran.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShedLabels {
    /// `overloaded` (every request slot busy), `body_budget` (too many
    /// bodies being received), `body_timeout` (a body too slow),
    /// `analysis_budget` (too many analyses in flight).
    pub reason: String,
}

/// The connection layer's metrics (`api::server`).
#[derive(Clone, Default)]
pub struct ConnMetrics {
    /// `remedy_http_connections_open`.
    pub open: Gauge,
    /// `remedy_http_connections_refused_total`: closed at once because
    /// `max_connections` were open.
    pub refused: Counter,
}

impl Metrics {
    /// Metrics for a server over `db`.
    pub fn new(db: Arc<Db>) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            // 100 µs .. 10 s: a cached read answers in well under a
            // millisecond, POST /analyze can take seconds.
            Histogram::new([
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 10.0,
            ])
        });
        registry.register(
            "remedy_http_request_duration_seconds",
            "Time to answer an API request, by method, route and status",
            requests.clone(),
        );
        let shed = Family::<ShedLabels, Counter>::default();
        registry.register(
            "remedy_http_requests_shed",
            "Requests refused before their handler ran, by reason",
            shed.clone(),
        );
        let analyses_cancelled = Counter::default();
        registry.register(
            "remedy_http_analyses_cancelled",
            "Analyses stopped because their client went away or the request timed out",
            analyses_cancelled.clone(),
        );
        let conn = ConnMetrics::default();
        registry.register(
            "remedy_http_connections_open",
            "Client connections open",
            conn.open.clone(),
        );
        registry.register(
            "remedy_http_connections_refused",
            "Connections closed at once because the connection cap was reached",
            conn.refused.clone(),
        );
        registry.register_collector(Box::new(StoreCollector { db }));
        Metrics {
            registry,
            requests,
            shed,
            analyses_cancelled,
            conn,
        }
    }

    /// The connection layer's metrics, for [`super::server::serve`].
    pub fn conn(&self) -> ConnMetrics {
        self.conn.clone()
    }

    /// Count a request refused before its handler ran.
    pub fn shed(&self, reason: &str) {
        self.shed
            .get_or_create(&ShedLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// The registry, for metrics of the process serving the API (the
    /// streaming service's consumer metrics).
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The exposition text.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Reads the store's totals on each scrape. `Collector::encode` is
/// synchronous, so this blocks: `GET /metrics` runs the whole encoding on
/// tokio's blocking pool, never on an async worker.
#[derive(Debug)]
struct StoreCollector {
    db: Arc<Db>,
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let totals = self.db.with(|c| store::totals(c));
        // A scrape still answers when the store cannot be read (with the
        // request metrics); the failure is in the log and in
        // `remedy_store_up`.
        let up = ConstGauge::new(i64::from(totals.is_ok()));
        up.encode(encoder.encode_descriptor(
            "remedy_store_up",
            "Whether the store could be read at this scrape",
            None,
            up.metric_type(),
        )?)?;
        let totals = match totals {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "cannot read totals for /metrics");
                return Ok(());
            }
        };
        let counter = |name: &str| -> Vec<(&str, u64)> {
            totals
                .counters
                .iter()
                .filter(|(n, _, _)| n == name)
                .map(|(_, l, v)| (l.as_str(), *v))
                .collect()
        };
        let read: u64 = counter("records_read").iter().map(|(_, v)| v).sum();
        let c = ConstCounter::new(read);
        c.encode(encoder.encode_descriptor(
            "remedy_records_read",
            "Records (lines, messages) read",
            None,
            MetricType::Counter,
        )?)?;
        family(
            &mut encoder,
            "remedy_records_parsed",
            "Records parsed, by input format",
            "format",
            counter("records_parsed_by_format"),
            MetricType::Counter,
        )?;
        family(
            &mut encoder,
            "remedy_records_dead_lettered",
            "Records dead-lettered (kept with their reason, not analysed), by reason",
            "reason",
            counter("dead_letters"),
            MetricType::Counter,
        )?;
        // Counted but not analysed, in the stored runs (the stream's own
        // gauges for its live partitions are `remedy_late_events` and
        // `remedy_over_cap`).
        family(
            &mut encoder,
            "remedy_analysis_late_events",
            "Events of stored runs that arrived after their analysis window had closed (counted, not analysed), by reason: out_of_order within their input, or input_behind the others",
            "reason",
            counter("late_events"),
            MetricType::Counter,
        )?;
        family(
            &mut encoder,
            "remedy_analysis_over_cap",
            "Series, signal observations and templates the memory caps turned away in stored runs, by cap",
            "cap",
            counter("over_cap"),
            MetricType::Counter,
        )?;
        family(
            &mut encoder,
            "remedy_anomalies",
            "Anomalies found, by kind",
            "kind",
            totals
                .anomalies
                .iter()
                .map(|(k, v)| (k.as_str(), *v))
                .collect(),
            MetricType::Counter,
        )?;
        let mut e = encoder.encode_descriptor(
            "remedy_incidents",
            "Incidents stored, by top root-cause class and status",
            None,
            MetricType::Gauge,
        )?;
        for (class, status, n) in &totals.incidents {
            let labels = [("class", class.as_str()), ("status", status.as_str())];
            ConstGauge::new(*n as i64).encode(e.encode_family(&labels)?)?;
        }
        family(
            &mut encoder,
            "remedy_actions",
            "Remediation actions stored, by status",
            "status",
            totals
                .actions
                .iter()
                .map(|(k, v)| (k.as_str(), *v))
                .collect(),
            MetricType::Gauge,
        )?;
        Ok(())
    }
}

/// One metric with one label.
fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: Vec<(&str, u64)>,
    kind: MetricType,
) -> Result<(), std::fmt::Error> {
    let mut e = encoder.encode_descriptor(name, help, None, kind)?;
    for (value, n) in values {
        let labels = [(label, value)];
        let fe = e.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(n).encode(fe)?,
            _ => ConstGauge::new(n as i64).encode(fe)?,
        }
    }
    Ok(())
}
