//! `remedy run`'s configuration: a TOML file, every key also settable from
//! the environment as `REMEDY_<SECTION>__<KEY>` (`REMEDY_KAFKA__BROKERS`),
//! the environment winning. figment merges the two and names the key and
//! the source of a bad value in its error.

use figment::providers::{Env, Format as _, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// The consumer.
    pub kafka: KafkaSection,
    /// Output topics.
    pub topics: TopicsSection,
    /// The HTTP API.
    pub api: ApiSection,
    /// The SQLite store the API serves.
    pub store: StoreSection,
    /// The engine.
    pub engine: EngineSection,
}

/// `[kafka]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSection {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Consumer group: instances with the same group share the partitions.
    pub group_id: String,
    /// Input topics, co-partitioned: the same number of partitions, records
    /// keyed by service. A list, or one comma-separated string (handy in
    /// the environment: `REMEDY_KAFKA__TOPICS=logs,metrics`).
    #[serde(deserialize_with = "list_or_csv")]
    pub topics: Vec<String>,
    /// Where a new group starts: `earliest` or `latest`.
    pub auto_offset_reset: String,
    /// Format of each topic's records by name (`json`, `logfmt`,
    /// `prom-json`, a header format...); unnamed topics are sniffed.
    pub formats: BTreeMap<String, String>,
    /// librdkafka properties for every client (TLS, SASL...), applied
    /// last.
    pub properties: BTreeMap<String, String>,
}

/// `[topics]`: where results go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsSection {
    /// Anomalies, keyed by service.
    pub anomalies: String,
    /// Incidents, keyed by incident id (compact it: the last version of an
    /// incident is the one that matters).
    pub incidents: String,
    /// Planned actions, keyed by action id.
    pub actions: String,
    /// Records that could not be read, with the reason in headers.
    pub dead_letter: String,
    /// The state checkpoints (compacted; created with one partition per
    /// input partition when missing).
    pub changelog: String,
}

/// `[api]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    /// Address to listen on; empty turns the API off.
    pub listen: String,
    /// Require a token for reads too.
    pub auth_reads: bool,
    /// Let `POST /api/v1/analyze` run without a token.
    pub open_analyze: bool,
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// SQLite file (created if missing).
    pub db: PathBuf,
    /// Hours of plotted signal points (each scored window with its band)
    /// kept for the dashboard, counted back from the newest event; 0 keeps
    /// none.
    pub trace_retention_hours: u64,
}

/// `[engine]`.
///
/// Besides the streaming knobs below, the table holds the engine's own
/// settings ([`engine::EngineConfig`]: `format`, `max_line_bytes`,
/// `detectors`, `topology`, `session_pattern`, `mixed_formats`, `fields`), the same
/// keys `remedy replay --config` and `remedy serve --config` read. serde
/// cannot refuse unknown keys through a flattened struct, so
/// [`RunConfig::load`] checks the table's keys itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineSection {
    /// Seconds between checkpoints: results produced, state written to the
    /// changelog, offsets committed. Lower means less to redo after a
    /// crash.
    pub checkpoint_interval_secs: u64,
    /// How long an empty input partition may hold the event-time merge
    /// back when it is not caught up, in milliseconds.
    pub max_idle_ms: u64,
    /// Events waiting per input partition before it is paused
    /// (backpressure).
    pub max_buffered: usize,
    /// Remediation policy (TOML); empty is the built-in dry-run default.
    pub policy: PathBuf,
    /// The analysis: the same settings replay takes.
    #[serde(flatten)]
    pub analysis: engine::EngineConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            kafka: KafkaSection {
                brokers: "127.0.0.1:9092".into(),
                group_id: "remedy".into(),
                topics: vec!["logs".into(), "metrics".into()],
                auto_offset_reset: "earliest".into(),
                formats: BTreeMap::new(),
                properties: BTreeMap::new(),
            },
            topics: TopicsSection {
                anomalies: "remedy.anomalies".into(),
                incidents: "remedy.incidents".into(),
                actions: "remedy.actions".into(),
                dead_letter: "remedy.dead-letter".into(),
                changelog: "remedy.changelog".into(),
            },
            api: ApiSection {
                listen: "127.0.0.1:8080".into(),
                auth_reads: false,
                open_analyze: false,
            },
            store: StoreSection {
                db: PathBuf::from("remedy.db"),
                trace_retention_hours: 48,
            },
            engine: EngineSection {
                checkpoint_interval_secs: 10,
                max_idle_ms: 5000,
                max_buffered: 50_000,
                policy: PathBuf::new(),
                // A topic often carries several shippers' formats; a
                // record the topic's sniffed format cannot read is sniffed
                // on its own. Topics with a format in `kafka.formats` keep
                // to it.
                analysis: engine::EngineConfig {
                    mixed_formats: true,
                    ..Default::default()
                },
            },
        }
    }
}

// Each section's default is the whole file's, so the values are written
// once (above).
impl Default for KafkaSection {
    fn default() -> Self {
        RunConfig::default().kafka
    }
}
impl Default for TopicsSection {
    fn default() -> Self {
        RunConfig::default().topics
    }
}
impl Default for ApiSection {
    fn default() -> Self {
        RunConfig::default().api
    }
}
impl Default for StoreSection {
    fn default() -> Self {
        RunConfig::default().store
    }
}
impl Default for EngineSection {
    fn default() -> Self {
        RunConfig::default().engine
    }
}

fn list_or_csv<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum L {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match L::deserialize(d)? {
        L::List(v) => v,
        L::Csv(s) => s
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect(),
    })
}

impl RunConfig {
    /// Defaults, then `file` (when given), then `REMEDY_<SECTION>__<KEY>`
    /// variables. Checks what can be checked before connecting.
    pub fn load(file: Option<&Path>) -> anyhow::Result<RunConfig> {
        let mut fig = Figment::from(Serialized::defaults(RunConfig::default()));
        if let Some(f) = file {
            anyhow::ensure!(
                f.is_file(),
                "config file {} does not exist (or is not a file)",
                f.display()
            );
            fig = fig.merge(Toml::file(f));
        }
        // Only double-underscore names: REMEDY_API_TOKENS and friends are
        // `remedy serve`'s flags, not keys of this file.
        fig = fig.merge(
            Env::prefixed("REMEDY_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        if let Ok(figment::value::Value::Dict(_, keys)) = fig.find_value("engine") {
            engine::EngineConfig::check_keys(
                keys.keys().map(String::as_str),
                crate::cmd::RUN_ENGINE_KEYS,
            )
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        }
        let cfg: RunConfig = fig.extract().map_err(|e| {
            let e = e.to_string();
            anyhow::anyhow!("invalid configuration: {e}")
        })?;
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.kafka.topics.is_empty(),
            "kafka.topics is empty: name the input topics"
        );
        anyhow::ensure!(
            !self.kafka.brokers.trim().is_empty(),
            "kafka.brokers is empty"
        );
        let mut seen = std::collections::BTreeSet::new();
        for t in &self.kafka.topics {
            anyhow::ensure!(seen.insert(t), "kafka.topics names {t:?} twice");
        }
        let outs = [
            ("topics.anomalies", &self.topics.anomalies),
            ("topics.incidents", &self.topics.incidents),
            ("topics.actions", &self.topics.actions),
            ("topics.dead_letter", &self.topics.dead_letter),
            ("topics.changelog", &self.topics.changelog),
        ];
        for (k, t) in outs {
            anyhow::ensure!(!t.is_empty(), "{k} is empty");
            anyhow::ensure!(
                !self.kafka.topics.contains(t),
                "{k} = {t:?} is also an input topic: Remedy would read its own output"
            );
        }
        for t in self.kafka.formats.keys() {
            anyhow::ensure!(
                self.kafka.topics.contains(t),
                "kafka.formats names {t:?}, which is not in kafka.topics"
            );
        }
        for f in self.kafka.formats.values() {
            ingest::Format::from_name(f).map_err(|e| anyhow::anyhow!("kafka.formats: {e}"))?;
        }
        anyhow::ensure!(
            self.engine.checkpoint_interval_secs > 0,
            "engine.checkpoint_interval_secs must be at least 1"
        );
        anyhow::ensure!(
            self.engine.max_buffered > 0,
            "engine.max_buffered must be at least 1"
        );
        if !self.api.listen.is_empty() {
            self.api
                .listen
                .parse::<SocketAddr>()
                .map_err(|e| anyhow::anyhow!("api.listen {:?}: {e}", self.api.listen))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API
    fn file_then_environment_and_errors_name_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "remedy.toml",
                r#"
                [kafka]
                brokers = "kafka:9092"
                topics = ["logs", "metrics"]
                [kafka.formats]
                metrics = "prom-json"
                [engine]
                checkpoint_interval_secs = 3
                "#,
            )?;
            jail.set_env("REMEDY_KAFKA__GROUP_ID", "blue");
            jail.set_env("REMEDY_KAFKA__TOPICS", "logs, metrics,audit");
            jail.set_env("REMEDY_API_TOKENS", "not-a-key-of-this-file");
            let c = RunConfig::load(Some(Path::new("remedy.toml"))).unwrap();
            assert_eq!(c.kafka.brokers, "kafka:9092");
            assert_eq!(c.kafka.group_id, "blue");
            assert_eq!(c.kafka.topics, ["logs", "metrics", "audit"]);
            assert_eq!(c.engine.checkpoint_interval_secs, 3);
            assert_eq!(c.topics.changelog, "remedy.changelog");

            jail.create_file("bad.toml", "[kafka]\nbrokrs = \"x\"\n")?;
            let e = RunConfig::load(Some(Path::new("bad.toml"))).unwrap_err();
            assert!(e.to_string().contains("brokrs"), "{e}");

            // The engine's analysis keys sit beside the streaming ones, a
            // typo among them is named.
            jail.create_file("engine.toml", "[engine]\ndetectors = \"static\"\n")?;
            let c = RunConfig::load(Some(Path::new("engine.toml"))).unwrap();
            assert_eq!(
                c.engine.analysis.detectors,
                engine::config::Detectors::Static
            );
            assert!(c.engine.analysis.mixed_formats);
            // A nested `[engine.fields]` replaces the lists it names.
            jail.create_file("fields.toml", "[engine.fields]\nservice = [\"app_name\"]\n")?;
            let c = RunConfig::load(Some(Path::new("fields.toml"))).unwrap();
            assert_eq!(c.engine.analysis.fields.service, ["app_name"]);
            assert_eq!(
                c.engine.analysis.fields.host,
                ingest::parse::fields::FieldMapping::default().host
            );
            jail.create_file("bad.toml", "[engine]\ntopolgy = \"t.json\"\n")?;
            let e = RunConfig::load(Some(Path::new("bad.toml"))).unwrap_err();
            assert!(
                e.to_string().contains("engine.topolgy") && e.to_string().contains("topology"),
                "{e}"
            );

            jail.set_env("REMEDY_KAFKA__TOPICS", "logs");
            jail.set_env("REMEDY_TOPICS__INCIDENTS", "logs");
            let e = RunConfig::load(None).unwrap_err();
            assert!(e.to_string().contains("read its own output"), "{e}");
            Ok(())
        });
    }
}
