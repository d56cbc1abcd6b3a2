//! The append-only audit trail: one JSON line per decision, skips included.

use models::{Action, RootCauseClass, Target, Timestamp};
use serde::{Deserialize, Serialize};
use std::io::Write;

/// One decision about one action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Event time of the decision.
    pub timestamp: Timestamp,
    /// Action id.
    pub action_id: String,
    /// Incident id.
    pub incident_id: String,
    /// Root-cause class.
    pub class: RootCauseClass,
    /// `prune`, `offload`, `restart`, `notify`.
    pub action: String,
    /// Target.
    pub target: Target,
    /// `planned`, `skipped`, `approved`, `rejected`, `executed`, `failed`,
    /// `verified`.
    pub decision: String,
    /// The rule or reason behind it (`dry_run`, `cooldown`, `rate_limit`,
    /// `blast_radius`, `denied_service`, ...).
    pub reason: String,
    /// Whether the action was in dry-run mode.
    pub dry_run: bool,
}

impl AuditEntry {
    /// The decision `decision` about `action` at `at`, for `reason`; in
    /// dry-run when the action is.
    pub fn about(
        action: &Action,
        at: Timestamp,
        decision: impl Into<String>,
        reason: impl Into<String>,
    ) -> AuditEntry {
        AuditEntry {
            timestamp: at,
            action_id: action.id.clone(),
            incident_id: action.incident_id.clone(),
            class: action.class,
            action: action.kind.name().to_string(),
            target: action.target.clone(),
            decision: decision.into(),
            reason: reason.into(),
            dry_run: action.dry_run,
        }
    }
}

/// Where audit entries go. Writing must succeed before the decision takes
/// effect: an action that cannot be audited does not happen.
pub trait AuditLog {
    /// Append one entry.
    fn append(&mut self, entry: &AuditEntry) -> crate::Result<()>;
}

/// Audit entries kept in memory (tests, the API's ad-hoc analysis).
impl AuditLog for Vec<AuditEntry> {
    fn append(&mut self, entry: &AuditEntry) -> crate::Result<()> {
        self.push(entry.clone());
        Ok(())
    }
}

/// Audit entries appended to a writer as JSON lines (opened in append mode
/// by the caller for a file).
pub struct JsonLinesAudit<W: Write>(pub W);

impl<W: Write> AuditLog for JsonLinesAudit<W> {
    fn append(&mut self, entry: &AuditEntry) -> crate::Result<()> {
        serde_json::to_writer(&mut self.0, entry).map_err(std::io::Error::from)?;
        self.0.write_all(b"\n")?;
        Ok(())
    }
}
