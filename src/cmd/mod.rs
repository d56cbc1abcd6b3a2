//! One module per subcommand: its flags (`Args`) and its `run`.

/// The keys of `remedy run`'s `[engine]` table that are the streaming
/// service's own (the rest are [`engine::EngineConfig`]'s): replay and
/// serve accept them in a shared file and ignore them.
pub const RUN_ENGINE_KEYS: &[&str] = &[
    "checkpoint_interval_secs",
    "max_idle_ms",
    "max_buffered",
    "policy",
];

/// The engine's settings from the `[engine]` table of `file` (the file
/// `remedy run` reads works as it is: its streaming keys are accepted and
/// other tables ignored), or the defaults without one: what `replay
/// --config` and `serve --config` read.
pub fn engine_config_file(file: Option<&std::path::Path>) -> anyhow::Result<engine::EngineConfig> {
    match file {
        Some(p) => engine::EngineConfig::from_toml_file(p, RUN_ENGINE_KEYS),
        None => Ok(engine::EngineConfig::default()),
    }
}

pub mod detect;
pub mod generate;
pub mod offload_status;
pub mod replay;
#[cfg(feature = "kafka")]
pub mod run;
pub mod serve;
pub mod templates;

/// The remediation policy from `--policy FILE`, or the default (dry-run,
/// nothing destructive) without one.
pub fn load_policy(path: Option<&std::path::Path>) -> anyhow::Result<reclaim::Policy> {
    use anyhow::Context;
    match path {
        Some(p) => reclaim::Policy::from_toml(
            &std::fs::read_to_string(p)
                .with_context(|| format!("cannot read policy {}", p.display()))?,
        )
        .with_context(|| format!("policy {}", p.display())),
        None => Ok(reclaim::Policy::default()),
    }
}
