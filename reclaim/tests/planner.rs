//! Each safety rule of the planner, tested on its own.

use models::{
    ActionKind, ActionStatus, Incident, IncidentStatus, RootCause, RootCauseClass, Target,
    Timestamp,
};
use reclaim::{AuditEntry, Planner, Policy, TargetInventory};

fn incident(
    id: &str,
    class: RootCauseClass,
    service: &str,
    container: &str,
    conf: f64,
) -> Incident {
    Incident {
        id: id.into(),
        start: Timestamp::from_secs(0),
        end: None,
        status: IncidentStatus::Open,
        anomalies: vec![],
        root_causes: vec![RootCause {
            class,
            target: Target {
                service: Some(service.into()),
                host: Some("node-1".into()),
                container: Some(container.into()),
            },
            confidence: conf,
            evidence: vec![],
        }],
    }
}

fn at(min: i64) -> Timestamp {
    Timestamp::from_secs(min * 60)
}

fn plan_one(
    p: &mut Planner,
    inc: &Incident,
    now: Timestamp,
    inv: &TargetInventory,
) -> (ActionStatus, Vec<AuditEntry>) {
    let mut audit = Vec::new();
    let actions = p.plan(inc, now, inv, &mut audit).unwrap();
    assert_eq!(actions.len(), 1);
    assert_eq!(audit.len(), 1, "every decision is audited");
    (actions[0].status.clone(), audit)
}

fn skipped_reason(s: &ActionStatus) -> &str {
    match s {
        ActionStatus::Skipped { reason } => reason,
        other => panic!("expected skipped, got {other:?}"),
    }
}

fn inventory(replicas: u32) -> TargetInventory {
    let mut inv = TargetInventory::default();
    inv.replicas.insert("checkout".into(), replicas);
    inv
}

#[test]
fn default_policy_plans_in_dry_run_and_audits() {
    let mut p = Planner::new(Policy::default());
    let inc = incident(
        "i1",
        RootCauseClass::MemoryLeak,
        "checkout",
        "checkout-1",
        0.9,
    );
    let mut audit = Vec::new();
    let a = p.plan(&inc, at(0), &inventory(4), &mut audit).unwrap();
    assert_eq!(a[0].status, ActionStatus::Planned);
    assert!(a[0].dry_run);
    assert!(matches!(a[0].kind, ActionKind::Restart { .. }));
    assert_eq!(audit[0].decision, "planned");
    assert_eq!(audit[0].reason, "dry_run");
}

#[test]
fn cooldown_per_target() {
    let mut p = Planner::new(Policy::default());
    let inv = inventory(4);
    let inc = incident(
        "i1",
        RootCauseClass::MemoryLeak,
        "checkout",
        "checkout-1",
        0.9,
    );
    assert_eq!(plan_one(&mut p, &inc, at(0), &inv).0, ActionStatus::Planned);
    let again = incident(
        "i2",
        RootCauseClass::MemoryLeak,
        "checkout",
        "checkout-1",
        0.9,
    );
    let (s, audit) = plan_one(&mut p, &again, at(10), &inv);
    assert!(skipped_reason(&s).starts_with("cooldown"), "{s:?}");
    assert_eq!(audit[0].decision, "skipped");
    // After the cooldown (30 min by default) the same target may be acted on.
    let later = incident(
        "i3",
        RootCauseClass::MemoryLeak,
        "checkout",
        "checkout-1",
        0.9,
    );
    assert_eq!(
        plan_one(&mut p, &later, at(31), &inv).0,
        ActionStatus::Planned
    );
}

#[test]
fn rate_limit_per_hour() {
    let policy = Policy {
        max_actions_per_hour: 2,
        ..Policy::default()
    };
    let mut p = Planner::new(policy);
    let inv = TargetInventory::default();
    for (i, svc) in ["a", "b"].iter().enumerate() {
        let inc = incident(
            &format!("i{i}"),
            RootCauseClass::DiskPressure,
            svc,
            svc,
            0.9,
        );
        assert_eq!(
            plan_one(&mut p, &inc, at(i as i64), &inv).0,
            ActionStatus::Planned
        );
    }
    let third = incident("i3", RootCauseClass::DiskPressure, "c", "c", 0.9);
    let (s, _) = plan_one(&mut p, &third, at(5), &inv);
    assert!(skipped_reason(&s).starts_with("rate_limit"));
    let after = incident("i4", RootCauseClass::DiskPressure, "d", "d", 0.9);
    assert_eq!(
        plan_one(&mut p, &after, at(61), &inv).0,
        ActionStatus::Planned
    );
}

#[test]
fn blast_radius_caps_restarts_per_service() {
    let mut p = Planner::new(Policy::default()); // 50%
    let inv = inventory(2);
    let a = incident(
        "i1",
        RootCauseClass::MemoryLeak,
        "checkout",
        "checkout-1",
        0.9,
    );
    assert_eq!(plan_one(&mut p, &a, at(0), &inv).0, ActionStatus::Planned);
    let b = incident(
        "i2",
        RootCauseClass::MemoryLeak,
        "checkout",
        "checkout-2",
        0.9,
    );
    let (s, _) = plan_one(&mut p, &b, at(1), &inv);
    assert!(skipped_reason(&s).starts_with("blast_radius"), "{s:?}");
    // With four replicas, two at once is exactly 50%: allowed.
    let mut p = Planner::new(Policy::default());
    let inv = inventory(4);
    assert_eq!(plan_one(&mut p, &a, at(0), &inv).0, ActionStatus::Planned);
    assert_eq!(plan_one(&mut p, &b, at(1), &inv).0, ActionStatus::Planned);
}

#[test]
fn allow_and_deny_lists() {
    let policy = Policy {
        allow_services: vec!["checkout".into()],
        deny_services: vec!["database".into()],
        ..Policy::default()
    };
    let mut p = Planner::new(policy);
    let inv = inventory(4);
    let db = incident("i1", RootCauseClass::MemoryLeak, "database", "db-1", 0.9);
    assert!(skipped_reason(&plan_one(&mut p, &db, at(0), &inv).0).starts_with("denied_service"));
    let other = incident(
        "i2",
        RootCauseClass::MemoryLeak,
        "payments",
        "payments-1",
        0.9,
    );
    assert!(
        skipped_reason(&plan_one(&mut p, &other, at(0), &inv).0).starts_with("not_allowed_service")
    );
    let ok = incident(
        "i3",
        RootCauseClass::MemoryLeak,
        "checkout",
        "checkout-1",
        0.9,
    );
    assert_eq!(plan_one(&mut p, &ok, at(0), &inv).0, ActionStatus::Planned);
}

#[test]
fn deny_labels_protect_containers() {
    let mut policy = Policy::default();
    policy
        .deny_labels
        .insert("remedy.io/protected".into(), "true".into());
    let mut p = Planner::new(policy);
    let mut inv = inventory(4);
    inv.labels.insert(
        "checkout-1".into(),
        [("remedy.io/protected".to_string(), "true".to_string())].into(),
    );
    let inc = incident(
        "i1",
        RootCauseClass::MemoryLeak,
        "checkout",
        "checkout-1",
        0.9,
    );
    assert!(skipped_reason(&plan_one(&mut p, &inc, at(0), &inv).0).starts_with("denied_label"));
}

#[test]
fn low_confidence_is_skipped() {
    let mut p = Planner::new(Policy::default());
    let inc = incident(
        "i1",
        RootCauseClass::MemoryLeak,
        "checkout",
        "checkout-1",
        0.2,
    );
    assert!(
        skipped_reason(&plan_one(&mut p, &inc, at(0), &inventory(4)).0)
            .starts_with("low_confidence")
    );
}

#[test]
fn a_confidence_just_below_the_bar_reads_as_below_it() {
    let mut p = Planner::new(Policy::default());
    let inc = incident(
        "i1",
        RootCauseClass::MemoryLeak,
        "checkout",
        "checkout-1",
        0.4999,
    );
    let (status, _) = plan_one(&mut p, &inc, at(0), &inventory(4));
    assert_eq!(skipped_reason(&status), "low_confidence: 0.4999 < 0.5000");
}

#[test]
fn approval_is_required_where_the_policy_says() {
    let policy = Policy {
        dry_run: false,
        ..Policy::default()
    };
    let mut p = Planner::new(policy);
    let inc = incident(
        "i1",
        RootCauseClass::MemoryLeak,
        "checkout",
        "checkout-1",
        0.9,
    );
    let mut audit = Vec::new();
    let a = p.plan(&inc, at(0), &inventory(4), &mut audit).unwrap();
    assert!(a[0].requires_approval);
    assert!(!a[0].dry_run);
    assert_eq!(audit[0].reason, "awaiting_approval");
}

#[test]
fn a_crafted_log_line_cannot_widen_the_target() {
    let mut p = Planner::new(Policy::default());
    let inv = inventory(4);
    for evil in [
        "checkout-1; docker rm -f $(docker ps -aq)",
        "checkout-1 checkout-2",
        "*",
        "../../var/lib/docker",
    ] {
        let inc = incident("i1", RootCauseClass::MemoryLeak, "checkout", evil, 0.99);
        let (s, audit) = plan_one(&mut p, &inc, at(0), &inv);
        assert!(
            skipped_reason(&s).starts_with("invalid_identifier"),
            "{evil}: {s:?}"
        );
        assert_eq!(audit[0].decision, "skipped");
    }
}

#[test]
fn dependency_failure_only_notifies() {
    let mut p = Planner::new(Policy::default());
    let inc = incident(
        "i1",
        RootCauseClass::DependencyFailure,
        "payments",
        "payments-1",
        0.9,
    );
    let mut audit = Vec::new();
    let a = p
        .plan(&inc, at(0), &TargetInventory::default(), &mut audit)
        .unwrap();
    assert!(!a[0].kind.is_destructive());
    assert!(
        matches!(&a[0].kind, ActionKind::Notify { message, .. } if message.contains("payments"))
    );
}

#[test]
fn audit_lines_are_json() {
    let mut p = Planner::new(Policy::default());
    let inc = incident(
        "i1",
        RootCauseClass::MemoryLeak,
        "checkout",
        "checkout-1",
        0.9,
    );
    let mut buf = reclaim::audit::JsonLinesAudit(Vec::new());
    p.plan(&inc, at(0), &inventory(4), &mut buf).unwrap();
    let text = String::from_utf8(buf.0).unwrap();
    let entry: AuditEntry = serde_json::from_str(text.trim_end()).unwrap();
    assert_eq!(entry.action_id, "i1-restart");
    assert!(text.ends_with('\n'));
}

#[test]
fn verification_asks_whether_the_signals_cleared_in_time() {
    let p = Planner::new(Policy::default()); // verify_after_secs = 900
    let mut planner = Planner::new(Policy::default());
    let inv = inventory(4);
    let plan = |planner: &mut Planner, id: &str| {
        let mut audit = Vec::new();
        let inc = incident(
            id,
            RootCauseClass::MemoryLeak,
            "checkout",
            "checkout-1",
            0.9,
        );
        planner
            .plan(&inc, at(0), &inv, &mut audit)
            .unwrap()
            .remove(0)
    };
    let resolved = |id: &str, end_min: i64| {
        let mut inc = incident(
            id,
            RootCauseClass::MemoryLeak,
            "checkout",
            "checkout-1",
            0.9,
        );
        inc.status = IncidentStatus::Resolved;
        inc.end = Some(at(end_min));
        inc
    };

    // Back inside the bands 10 minutes after the action: verified.
    let mut audit = Vec::new();
    let mut a = plan(&mut planner, "a");
    let ok = p
        .verify(&mut a, &resolved("a", 10), at(60), &mut audit)
        .unwrap();
    assert_eq!((ok, a.verified), (Some(true), Some(true)));
    assert_eq!(audit[0].decision, "verified");
    assert!(audit[0].reason.contains("600 s"), "{}", audit[0].reason);

    // Back only after 20 minutes: not verified.
    let mut planner = Planner::new(Policy::default());
    let mut a = plan(&mut planner, "b");
    let ok = p
        .verify(&mut a, &resolved("b", 20), at(60), &mut audit)
        .unwrap();
    assert_eq!(ok, Some(false));
    assert_eq!(audit[1].decision, "not_verified");

    // Still open: undecided before the deadline, not verified after it.
    let mut planner = Planner::new(Policy::default());
    let mut a = plan(&mut planner, "c");
    let open = incident(
        "c",
        RootCauseClass::MemoryLeak,
        "checkout",
        "checkout-1",
        0.9,
    );
    assert_eq!(p.verify(&mut a, &open, at(5), &mut audit).unwrap(), None);
    assert_eq!(a.verified, None);
    assert_eq!(audit.len(), 2, "nothing recorded while undecided");
    assert_eq!(
        p.verify(&mut a, &open, at(16), &mut audit).unwrap(),
        Some(false)
    );
    assert!(
        audit[2].reason.contains("still outside"),
        "{}",
        audit[2].reason
    );

    // A skipped action is not verified: nothing was done.
    let mut planner = Planner::new(Policy::default());
    let low = incident(
        "d",
        RootCauseClass::MemoryLeak,
        "checkout",
        "checkout-1",
        0.1,
    );
    let mut a = planner
        .plan(&low, at(0), &inv, &mut Vec::new())
        .unwrap()
        .remove(0);
    assert!(matches!(a.status, ActionStatus::Skipped { .. }));
    let mut done = resolved("d", 1);
    done.root_causes[0].confidence = 0.1;
    assert_eq!(p.verify(&mut a, &done, at(60), &mut audit).unwrap(), None);
    assert_eq!(audit.len(), 3);
}
