//! Remedy's engine: everything between decoded records and what a run
//! found, shared by `remedy replay`, the streaming service and the HTTP
//! API's `POST /analyze`.
//!
//! Records from any number of inputs are decoded per origin, merged by
//! event time ([`merge`]: one merge, whose readiness rule is what differs
//! between a bounded run and a stream), template-mined after the merge so
//! template ids do not depend on arrival, analysed ([`Engine`]), and
//! published with their plans ([`Publisher`]: planning at first
//! publication, on a change of cause and at the end) as [`Findings`],
//! which every sink takes. A streaming partition is a [`task::Task`]. The
//! engine reads no clock and does no I/O of its own beyond the inputs it is
//! given, so the same records give the same findings however they arrive.
//! Binaries choose inputs and sinks; [`EngineConfig`] is the settings a
//! user can give it, from flags, a TOML file or an API request.

pub mod config;
pub mod engine;
pub mod evaluate;
pub mod findings;
pub mod merge;
pub mod publish;
pub mod task;

pub use config::EngineConfig;
pub use engine::{DeadLetterSink, Engine, EngineSettings, Summary, TemplateSummary};
pub use findings::{Findings, FindingsSink};
pub use merge::{merge, merge_bounded, Input, MemoryInput, WithFormat, OPEN_INPUTS};
pub use publish::Publisher;
