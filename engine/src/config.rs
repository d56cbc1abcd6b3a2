//! The engine's settings as a user gives them: one serde type read from
//! `remedy replay`'s flags or `--config` file, the `[engine]` table of
//! `remedy run`'s TOML, and the server that answers `POST /analyze`.
//!
//! One type for all three is what keeps "the same input gives the same
//! incidents" true across the ways Remedy runs: before it, the API built
//! its engine from defaults and ignored the topology replay loaded.
//! [`EngineConfig::settings`] turns it into the engine's full
//! [`EngineSettings`] (caps, the miner, the analyzer), whose other knobs
//! are internal and chosen per use by the caller (what to keep for
//! plotting, for instance).

use crate::engine::EngineSettings;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a user may set about the analysis. Every key is optional in a
/// file; the defaults are replay's.
///
/// ```toml
/// [engine]
/// format = "auto"               # or json, logfmt, plain, prometheus, prom-json, a loghub header...
/// max_line_bytes = 1048576      # longer records are dead-lettered
/// detectors = "dynamic"         # or "static": fixed operator thresholds
/// topology = "topology.json"    # {"caller": ["callee", ...]}; empty: a manifest.json's, or learned
/// session_pattern = 'blk_-?\d+' # session ids from messages; empty: fields only
/// mixed_formats = false         # sniff each record an origin's format cannot read
/// service_labels = ["service", "app", "job"] # labels naming a series' service, first wins
///
/// [engine.fields]               # keys of JSON/logfmt records, in order of precedence
/// service = ["app_name", "service.name"]   # replaces that list (see ingest's FieldMapping)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineConfig {
    /// Input format for every input: a format name (`json`, `logfmt`,
    /// `plain`, `syslog`, `prometheus`, `prom-json`, ...), a loghub header
    /// format such as `<Date> <Time> <Level> <Component>: <Content>`, or
    /// `auto` to sniff each origin.
    pub format: String,
    /// Records longer than this many bytes are dead-lettered, not parsed.
    pub max_line_bytes: usize,
    /// `dynamic` (learned baselines) or `static` (fixed operator
    /// thresholds such as memory above 80% of its limit for 5 minutes).
    pub detectors: Detectors,
    /// Service dependencies, a JSON file `{"caller": ["callee", ...]}`.
    /// Empty: the `topology` of a `manifest.json` at the top of a replayed
    /// directory, else calls learned from trace ids in the logs.
    pub topology: PathBuf,
    /// Group log records into sessions by the first match of this regular
    /// expression in the message when no field (trace id, `request_id`,
    /// `block_id`, `session_id`) gives a session id; empty: fields only.
    pub session_pattern: String,
    /// Whether a record that its origin's sniffed format cannot read is
    /// sniffed on its own (a Kafka topic often carries several shippers'
    /// formats) instead of being dead-lettered.
    pub mixed_formats: bool,
    /// Which keys of structured records (JSON, logfmt) hold the time,
    /// message, level, service, host, container, trace id...: each list
    /// given replaces the default one (ECS, OpenTelemetry, Vector, Fluent
    /// Bit), the others stay.
    pub fields: ingest::parse::fields::FieldMapping,
    /// Labels that name a metric series' service, the first present wins
    /// (`service`, `service_name`, `app_kubernetes_io_name`, `app`,
    /// `k8s_app`, the workload of `pod`, then the scrape `job`): a list
    /// replaces it (`pod` and `pod_name` in it name the pod's workload).
    pub service_labels: Vec<String>,
}

/// Which detectors the engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Detectors {
    /// Learned seasonal baselines, error shares, leaks.
    #[default]
    Dynamic,
    /// Fixed operator thresholds, to compare with on the same data.
    Static,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            format: "auto".into(),
            max_line_bytes: 1 << 20,
            detectors: Detectors::Dynamic,
            topology: PathBuf::new(),
            session_pattern: String::new(),
            mixed_formats: false,
            fields: Default::default(),
            service_labels: analyze::signals::default_service_labels(),
        }
    }
}

impl EngineConfig {
    /// The keys of the type, for callers that check a file's table for
    /// unknown ones (a test keeps the list equal to the fields).
    pub const KEYS: &'static [&'static str] = &[
        "format",
        "max_line_bytes",
        "detectors",
        "topology",
        "session_pattern",
        "mixed_formats",
        "fields",
        "service_labels",
    ];

    /// The `[engine]` table of a TOML file, other keys and tables ignored
    /// (so `remedy run`'s file serves replay and `serve` too); an unknown
    /// key in `[engine]` other than those in `also` is an error naming it.
    pub fn from_toml_file(path: &Path, also: &[&str]) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration {}", path.display()))?;
        let doc: toml::Table = toml::from_str(&text)
            .with_context(|| format!("{} is not valid TOML", path.display()))?;
        let Some(table) = doc.get("engine") else {
            return Ok(EngineConfig::default());
        };
        let table = table
            .as_table()
            .with_context(|| format!("{}: `engine` must be a table", path.display()))?;
        Self::from_table(table, also).with_context(|| format!("{}", path.display()))
    }

    /// The engine's keys of `table`; an unknown key other than those in
    /// `also` is an error naming it and the known ones.
    pub fn from_table(table: &toml::Table, also: &[&str]) -> anyhow::Result<Self> {
        Self::check_keys(table.keys().map(String::as_str), also)?;
        let mine: toml::Table = table
            .iter()
            .filter(|(k, _)| Self::KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        mine.try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("[engine]: {}", e.message()))
    }

    /// Every key of an `[engine]` table is the engine's or one of `also`
    /// (a caller's own keys in the same table, such as `remedy run`'s
    /// streaming knobs); else an error naming the key and the known ones.
    /// serde cannot refuse unknown keys through a flattened struct, which
    /// is why a caller that flattens this type checks with this.
    pub fn check_keys<'a>(
        keys: impl IntoIterator<Item = &'a str>,
        also: &[&str],
    ) -> anyhow::Result<()> {
        for k in keys {
            if !Self::KEYS.contains(&k) && !also.contains(&k) {
                let mut known: Vec<&str> = Self::KEYS.iter().chain(also).copied().collect();
                known.sort_unstable();
                anyhow::bail!("unknown key engine.{k}; the keys are {}", known.join(", "));
            }
        }
        Ok(())
    }

    /// The engine's settings for inputs at `paths` (where a
    /// `manifest.json` may name the topology): checks the format, the
    /// pattern and the topology file, so a mistake fails before any input
    /// is read.
    pub fn settings(&self, paths: &[PathBuf]) -> anyhow::Result<EngineSettings> {
        let mut s = EngineSettings::for_run();
        s.format = ingest::Format::from_name(&self.format)?;
        s.decoder.max_line_bytes = self.max_line_bytes;
        s.decoder.mixed_formats = self.mixed_formats;
        s.decoder.fields = std::sync::Arc::new(self.fields.clone());
        s.analyzer.signals.service_labels = self.service_labels.clone();
        s.analyzer.correlator.topology = crate::evaluate::load_topology(
            Some(self.topology.as_path()).filter(|p| !p.as_os_str().is_empty()),
            paths,
        )?;
        if !self.session_pattern.is_empty() {
            regex::Regex::new(&self.session_pattern)
                .with_context(|| format!("session pattern {:?}", self.session_pattern))?;
            s.analyzer.sessions.id_pattern = self.session_pattern.clone();
        }
        if self.detectors == Detectors::Static {
            s.analyzer.mode = analyze::DetectorMode::Static;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_list_is_the_fields() {
        let v = toml::Table::try_from(EngineConfig::default()).unwrap();
        let mut keys: Vec<&str> = v.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = EngineConfig::KEYS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want);
    }

    #[test]
    fn a_file_sets_what_it_names_and_refuses_a_typo() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("remedy.toml");
        std::fs::write(
            &p,
            "[kafka]\nbrokers = \"x\"\n[engine]\ndetectors = \"static\"\nmax_idle_ms = 5\n",
        )
        .unwrap();
        let c = EngineConfig::from_toml_file(&p, &["max_idle_ms"]).unwrap();
        assert_eq!(c.detectors, Detectors::Static);
        assert_eq!(c.format, "auto");
        let e = EngineConfig::from_toml_file(&p, &[]).unwrap_err();
        assert!(
            format!("{e:#}").contains("unknown key engine.max_idle_ms"),
            "{e:#}"
        );
        std::fs::write(
            &p,
            "[engine]\nservice_labels = [\"team_service\", \"job\"]\n[engine.fields]\nservice = [\"app_name\"]\n",
        )
        .unwrap();
        let c = EngineConfig::from_toml_file(&p, &[]).unwrap();
        let s = c.settings(&[]).unwrap();
        assert_eq!(s.analyzer.signals.service_labels, ["team_service", "job"]);
        assert_eq!(s.decoder.fields.service, ["app_name"]);
        assert_eq!(
            s.decoder.fields.host,
            ingest::parse::fields::FieldMapping::default().host
        );
        std::fs::write(&p, "[engine]\ndetectors = \"fixed\"\n").unwrap();
        let e = EngineConfig::from_toml_file(&p, &[]).unwrap_err();
        assert!(format!("{e:#}").contains("fixed"), "{e:#}");
    }

    #[test]
    fn settings_check_what_they_are_given() {
        let c = EngineConfig {
            session_pattern: "(".into(),
            ..Default::default()
        };
        assert!(c.settings(&[]).is_err());
        let c = EngineConfig {
            format: "no-such-format".into(),
            ..Default::default()
        };
        assert!(c.settings(&[]).is_err());
    }
}
