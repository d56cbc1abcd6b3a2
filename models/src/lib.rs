//! Remedy's domain types, shared by every stage of the pipeline.
//!
//! `models` is the vocabulary the other crates speak: a raw line becomes a
//! [`LogRecord`] or a [`MetricSample`] (ingest), records become [`Signal`]s
//! and [`Anomaly`]s (analyze), anomalies are grouped into [`Incident`]s with
//! ranked [`RootCause`]s, and each root cause maps to an [`Action`] (reclaim).
//! The JSON form of every type here is a public contract: it is what
//! `remedy replay` writes, what the Kafka output topics carry and what the
//! HTTP API serves, so fields are only ever added (with defaults), never
//! renamed. `SCHEMA.md` in this crate documents it field by field.
//!
//! **Invariant:** this crate does no I/O and knows nothing of async; it
//! depends on serde and chrono only.

#![deny(missing_docs)]

mod action;
mod anomaly;
mod event;
mod incident;
mod names;
mod time;

pub use action::{
    Action, ActionKind, ActionName, ActionStatus, OffloadMode, PruneFilters, PruneScope,
    UnknownAction,
};
pub use anomaly::{Anomaly, AnomalyKind, Band, Signal, SignalKind};
pub use event::{
    ChangeEvent, ChangeKind, Event, FieldValue, Level, LogRecord, MetricKind, MetricSample,
    SeriesKey,
};
pub use incident::{Evidence, Incident, IncidentStatus, RootCause, RootCauseClass, Target};
pub use names::workload_of_pod;
pub use time::Timestamp;

/// Version of the JSON schema written by every output of Remedy. Bumped only
/// when a field changes meaning; new optional fields do not bump it.
pub const SCHEMA_VERSION: u32 = 1;
