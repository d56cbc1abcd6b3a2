//! What the engine found, in the one shape every caller and every sink
//! takes: a whole bounded run (replay, `POST /analyze`, the end of a
//! bounded `remedy run`) or what a streaming task found since it was last
//! asked.

use crate::engine::{Summary, TemplateSummary};
use analyze::TracePoint;
use models::{Action, Anomaly, Incident};
use reclaim::exec::Report;
use reclaim::AuditEntry;
use std::collections::BTreeMap;

/// Anomalies, incidents, actions and the audit trail of a run or a part of
/// one.
///
/// One type for both because a sink should not care how its input was
/// cut: the JSONL files of replay, the store and the Kafka topics of the
/// streaming service all write the same objects, and the same records give
/// the same objects whichever way they arrived.
#[derive(Debug, Default)]
pub struct Findings {
    /// The run's counts: present for a whole run (with `anomalies`,
    /// `incidents` and `actions` filled in), and for what the streaming
    /// service writes to its store; absent for a streaming task's
    /// increments, which have no end to count to.
    pub summary: Option<Summary>,
    /// New anomalies, in event-time order.
    pub anomalies: Vec<Anomaly>,
    /// Incidents ordered by onset, then id: for a whole run every incident
    /// in its final form; for an increment those that opened, changed or
    /// resolved since last published.
    pub incidents: Vec<Incident>,
    /// Actions planned (skipped ones included, with their reason),
    /// withdrawn or verified.
    pub actions: Vec<Action>,
    /// Every planning, execution and verification decision.
    pub audit: Vec<AuditEntry>,
    /// Scored points for plotting, when the analyzer was asked to trace.
    pub trace: Vec<TracePoint>,
    /// Every template mined (up to the miner's cap); a whole run only.
    pub templates: Vec<TemplateSummary>,
    /// What executing an action reported (objects, bytes), by action id,
    /// for the actions `replay --execute` carried out.
    pub executions: BTreeMap<String, Report>,
}

impl Findings {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.anomalies.is_empty()
            && self.incidents.is_empty()
            && self.actions.is_empty()
            && self.audit.is_empty()
            && self.trace.is_empty()
            && self.templates.is_empty()
    }

    /// Append `more` (found later) to these findings; counts and templates
    /// are the caller's to set for the total.
    pub fn extend(&mut self, more: Findings) {
        self.anomalies.extend(more.anomalies);
        self.incidents.extend(more.incidents);
        self.actions.extend(more.actions);
        self.audit.extend(more.audit);
        self.trace.extend(more.trace);
        self.templates.extend(more.templates);
        self.executions.extend(more.executions);
    }
}

/// Where findings go: the JSONL files of a replay, tables, the SQLite
/// store, the streaming service's output topics.
///
/// A sink is handed a whole run once (replay) or a streaming task's
/// findings as they come; it writes them as they are and keeps no
/// judgement of its own, so every sink of one run says the same thing.
pub trait FindingsSink {
    /// Write `findings`. Errors are the sink's own (a full disk, a broker
    /// that refused), not the data's, and stop the run.
    fn write(&mut self, findings: &Findings) -> anyhow::Result<()>;
}
