//! Comparing incidents with labelled faults (`remedy replay --labels`), and
//! loading a topology.

use anyhow::Context;
use models::{Action, ActionStatus, Incident, Target, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One labelled fault, as `remedy generate` writes it.
#[derive(Debug, Clone, Deserialize)]
pub struct Fault {
    /// Fault id.
    pub id: String,
    /// First symptom.
    pub start: Timestamp,
    /// Last symptom.
    pub end: Timestamp,
    /// Where a correct diagnosis points.
    #[serde(default)]
    pub target: Target,
    /// Root-cause class name.
    pub class: String,
    /// Expected action name.
    #[serde(default)]
    pub expected_action: String,
}

/// A labels file.
#[derive(Debug, Clone, Deserialize)]
pub struct Labels {
    /// The faults.
    pub faults: Vec<Fault>,
}

impl Labels {
    /// Read and parse a labels file.
    pub fn load(path: &Path) -> anyhow::Result<Labels> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read labels {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a labels file (expected {{\"faults\": [...]}})",
                path.display()
            )
        })
    }
}

/// How incidents compare with the labels. Keys as documented in the README.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Evaluation {
    /// Incidents that match a fault / incidents.
    pub incident_precision: f64,
    /// Faults with a matching incident / faults.
    pub incident_recall: f64,
    /// Incidents matching no fault / incidents.
    pub false_alarm_rate: f64,
    /// Mean seconds from a fault's start to its first incident's first anomaly.
    pub mttd_seconds: f64,
    /// Detected faults whose top root cause has the right class and target.
    pub root_cause_top1: f64,
    /// ... among the top three.
    pub root_cause_top3: f64,
    /// Detected faults whose planned action is the expected one.
    pub action_accuracy: f64,
    /// Destructive actions planned (not skipped) for incidents matching no fault.
    pub actions_outside_faults: u64,
    /// Faults labelled.
    pub faults: usize,
    /// Incidents found.
    pub incidents: usize,
    /// Per fault: the matching incident and its top root cause, if any.
    pub per_fault: Vec<FaultResult>,
}

/// One fault's outcome.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FaultResult {
    /// Fault id.
    pub fault: String,
    /// Labelled class.
    pub class: String,
    /// First matching incident.
    pub incident: Option<String>,
    /// Its top root-cause class.
    pub found_class: Option<String>,
    /// Seconds to detect.
    pub detect_seconds: Option<f64>,
    /// Top-1 right.
    pub top1: bool,
}

/// An incident matches a fault when it starts between a minute before the
/// fault and five minutes after its end.
fn matches(inc: &Incident, f: &Fault) -> bool {
    let s = inc.start.as_millis();
    s >= f.start.as_millis() - 60_000 && s <= f.end.as_millis() + 300_000
}

/// Every field the label names that the root cause also names must agree,
/// and at least one must be named by both.
fn target_ok(label: &Target, found: &Target) -> bool {
    let pairs = [
        (&label.service, &found.service),
        (&label.host, &found.host),
        (&label.container, &found.container),
    ];
    let mut shared = 0;
    for (l, f) in pairs {
        if let (Some(l), Some(f)) = (l, f) {
            if l != f {
                return false;
            }
            shared += 1;
        }
    }
    shared > 0
}

/// Compare.
pub fn evaluate(labels: &Labels, incidents: &[Incident], actions: &[Action]) -> Evaluation {
    let matched_incidents = incidents
        .iter()
        .filter(|i| labels.faults.iter().any(|f| matches(i, f)))
        .count();
    let mut per_fault = Vec::new();
    let (mut detected, mut top1, mut top3, mut action_ok) = (0usize, 0usize, 0usize, 0usize);
    let mut ttd = Vec::new();
    for f in &labels.faults {
        let inc = incidents
            .iter()
            .filter(|i| matches(i, f))
            .min_by_key(|i| i.start);
        let mut r = FaultResult {
            fault: f.id.clone(),
            class: f.class.clone(),
            incident: None,
            found_class: None,
            detect_seconds: None,
            top1: false,
        };
        if let Some(inc) = inc {
            detected += 1;
            let first = inc.anomalies.first().map_or(inc.start, |a| a.timestamp);
            let d = (first.as_millis() - f.start.as_millis()).max(0) as f64 / 1000.0;
            ttd.push(d);
            let ok = |rc: &models::RootCause| {
                rc.class.as_str() == f.class && target_ok(&f.target, &rc.target)
            };
            r.top1 = inc.root_causes.first().is_some_and(ok);
            top1 += usize::from(r.top1);
            top3 += usize::from(inc.root_causes.iter().take(3).any(ok));
            action_ok += usize::from(
                actions
                    .iter()
                    .any(|a| a.incident_id == inc.id && a.kind.name() == f.expected_action),
            );
            r.incident = Some(inc.id.clone());
            r.found_class = inc
                .root_causes
                .first()
                .map(|rc| rc.class.as_str().to_string());
            r.detect_seconds = Some(d);
        }
        per_fault.push(r);
    }
    let actions_outside = actions
        .iter()
        .filter(|a| a.kind.is_destructive() && !matches!(a.status, ActionStatus::Skipped { .. }))
        .filter(|a| {
            incidents
                .iter()
                .find(|i| i.id == a.incident_id)
                .is_some_and(|i| !labels.faults.iter().any(|f| matches(i, f)))
        })
        .count() as u64;
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Evaluation {
        incident_precision: ratio(matched_incidents, incidents.len()),
        incident_recall: ratio(detected, labels.faults.len()),
        false_alarm_rate: ratio(incidents.len() - matched_incidents, incidents.len()),
        mttd_seconds: if ttd.is_empty() {
            0.0
        } else {
            ttd.iter().sum::<f64>() / ttd.len() as f64
        },
        root_cause_top1: ratio(top1, detected),
        root_cause_top3: ratio(top3, detected),
        action_accuracy: ratio(action_ok, detected),
        actions_outside_faults: actions_outside,
        faults: labels.faults.len(),
        incidents: incidents.len(),
        per_fault,
    }
}

/// Print the evaluation.
pub fn print(w: &mut dyn Write, e: &Evaluation) -> anyhow::Result<()> {
    writeln!(w, "\nevaluation against {} labelled faults:", e.faults)?;
    writeln!(
        w,
        "  incident precision {:.2}  recall {:.2}  false-alarm rate {:.2}  mean time to detect {:.0}s",
        e.incident_precision, e.incident_recall, e.false_alarm_rate, e.mttd_seconds
    )?;
    writeln!(
        w,
        "  root cause top-1 {:.2}  top-3 {:.2}  action accuracy {:.2}  destructive actions outside faults {}",
        e.root_cause_top1, e.root_cause_top3, e.action_accuracy, e.actions_outside_faults
    )?;
    for f in &e.per_fault {
        writeln!(
            w,
            "  {:<4} {:<19} -> {:<19} {}",
            f.fault,
            f.class,
            f.found_class.as_deref().unwrap_or("(missed)"),
            f.detect_seconds.map_or(String::new(), |d| format!(
                "after {d:.0}s{}",
                if f.top1 {
                    ""
                } else {
                    ", wrong target or class"
                }
            ))
        )?;
    }
    Ok(())
}

/// The topology: an explicit file, else the `topology` of a `manifest.json`
/// at the top of a replayed directory, else none.
pub fn load_topology(
    explicit: Option<&Path>,
    paths: &[PathBuf],
) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    if let Some(p) = explicit {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("cannot read topology {}", p.display()))?;
        return serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: expected JSON {{\"caller\": [\"callee\", ...]}}",
                p.display()
            )
        });
    }
    for p in paths {
        let m = p.join("manifest.json");
        if let Ok(text) = std::fs::read_to_string(&m) {
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", m.display()))?;
            if let Some(t) = v.get("topology") {
                return serde_json::from_value(t.clone())
                    .with_context(|| format!("{}: bad topology", m.display()));
            }
        }
    }
    Ok(BTreeMap::new())
}
