//! Calls and error origins read from the trace ids that logs carry.
//!
//! Most services log a trace id on every line (OpenTelemetry's log data
//! model, Spring Cloud Sleuth, Fluent Bit and Vector pass it through), and
//! that is enough to learn two things without a tracing backend:
//!
//! - **Calls.** Within one trace, a service that logs for the first time
//!   was most likely called by the service that logged just before it (a
//!   synchronous call runs between the caller's lines). Each trace gives a
//!   vote; an edge is learned once it has [`EDGE_MIN_VOTES`] votes and at
//!   least twice the votes of its reverse, so the interleaving of
//!   concurrent calls does not invent edges.
//! - **Error origins.** An exception is logged where it is thrown first and
//!   then again by each caller it propagates through, later. So the service
//!   of a trace's *first* error-level record is where that request failed:
//!   the spectrum idea of MicroRank and Nezha's comparison of event
//!   patterns, reduced to what logs alone show. The correlator compares
//!   each service's share of origins around an incident with its share
//!   before it.
//!
//! Bounded: at most [`MAX_TRACES`] traces are followed (the oldest are
//! forgotten first, and any trace after [`TRACE_TTL_MS`] of event time),
//! at most [`MAX_SERVICES_PER_TRACE`] services per trace and
//! [`MAX_VOTES`] voted pairs.

use crate::hash::FastMap;
use models::LogRecord;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Traces followed at once.
pub const MAX_TRACES: usize = 50_000;
/// How long a trace is followed after its first record.
pub const TRACE_TTL_MS: i64 = 5 * 60_000;
/// Distinct services remembered per trace.
pub const MAX_SERVICES_PER_TRACE: usize = 16;
/// Caller/callee pairs voted on.
pub const MAX_VOTES: usize = 10_000;
/// Votes before an edge is learned.
pub const EDGE_MIN_VOTES: u32 = 3;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Trace {
    services: Vec<String>,
    errored: bool,
    /// Records seen of it.
    records: u32,
}

/// What one record taught.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceFinding {
    /// A call learned just now: `(caller, callee)`.
    pub edge: Option<(String, String)>,
    /// The record is its trace's first error: the request failed here.
    pub origin: bool,
}

/// Follows traces through the log records that carry their ids.
///
/// Traces are keyed by a 64-bit hash of their id, not the id: a replay
/// whose every line has an id of its own (a request id per line) would
/// otherwise copy each one twice. Two ids that collide (by chance one in
/// 2^64, or crafted) only share one trace's state; the map itself is
/// keyed with a per-process seed, so lookups stay fast either way.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TraceTracker {
    traces: FastMap<u64, Trace>,
    /// Traces by first record time, for expiry.
    order: VecDeque<(i64, u64)>,
    votes: BTreeMap<(String, String), u32>,
}

/// FNV-1a: stable across processes, so a checkpoint restores the same keys.
fn key(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl TraceTracker {
    /// Fold in one record (event-time order).
    pub fn observe(&mut self, r: &LogRecord) -> TraceFinding {
        let mut found = TraceFinding::default();
        let (Some(id), Some(svc)) = (r.trace_id.as_deref(), r.service.as_deref()) else {
            return found;
        };
        if id.is_empty() {
            return found;
        }
        let now = r.timestamp.as_millis();
        while let Some((t, _)) = self.order.front() {
            if now - *t <= TRACE_TTL_MS && self.order.len() < MAX_TRACES {
                break;
            }
            let (_, old) = self.order.pop_front().expect("front checked");
            self.traces.remove(&old);
        }
        let id = key(id);
        let trace = match self.traces.get_mut(&id) {
            Some(t) => t,
            None => {
                self.order.push_back((now, id));
                self.traces.entry(id).or_insert(Trace {
                    services: Vec::new(),
                    errored: false,
                    records: 0,
                })
            }
        };
        if !trace.services.iter().any(|s| s == svc) {
            if let Some(caller) = trace.services.last() {
                found.edge = vote(&mut self.votes, caller, svc);
            }
            if trace.services.len() < MAX_SERVICES_PER_TRACE {
                trace.services.push(svc.to_string());
            }
        } else if trace.services.last().map(String::as_str) != Some(svc) {
            // Back in a service seen before: it is the latest to log, so
            // the next newcomer is its callee.
            if let Some(i) = trace.services.iter().position(|s| s == svc) {
                let s = trace.services.remove(i);
                trace.services.push(s);
            }
        }
        if r.level.is_some_and(|l| l.is_error()) && !trace.errored {
            trace.errored = true;
            // A trace id that appears once is an id per line (a request id
            // or a generator's), not a request's path: its first error
            // says nothing about where the request went wrong, only how
            // loud a service is. An origin needs records before it.
            found.origin = trace.records > 0;
        }
        trace.records = trace.records.saturating_add(1);
        found
    }
}

/// One vote for `caller -> callee`; the edge when this vote makes it.
fn vote(
    votes: &mut BTreeMap<(String, String), u32>,
    caller: &str,
    callee: &str,
) -> Option<(String, String)> {
    let key = (caller.to_string(), callee.to_string());
    let n = match votes.get(&key) {
        Some(&n) => n + 1,
        None if votes.len() < MAX_VOTES => 1,
        None => return None,
    };
    votes.insert(key.clone(), n);
    let reverse = votes
        .get(&(callee.to_string(), caller.to_string()))
        .copied()
        .unwrap_or(0);
    // Learned once, on the vote that first makes it clear.
    let clear = |n: u32| n >= EDGE_MIN_VOTES && n >= 2 * reverse.max(1);
    (clear(n) && !clear(n - 1)).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::{Level, Timestamp};

    fn rec(sec: i64, trace: &str, svc: &str, level: Level) -> LogRecord {
        let mut r = LogRecord::new(Timestamp::from_millis(sec * 1000), "m");
        r.trace_id = Some(trace.into());
        r.service = Some(svc.into());
        r.level = Some(level);
        r
    }

    #[test]
    fn calls_are_learned_from_the_order_services_log_in_a_trace() {
        let mut t = TraceTracker::default();
        let mut edges = Vec::new();
        for i in 0..5 {
            let id = format!("t{i}");
            for svc in ["gateway", "orders", "gateway", "payments"] {
                if let Some(e) = t.observe(&rec(i, &id, svc, Level::Info)).edge {
                    edges.push(e);
                }
            }
        }
        // gateway calls orders, then (logging again in between) payments.
        assert_eq!(
            edges,
            vec![
                ("gateway".to_string(), "orders".to_string()),
                ("gateway".to_string(), "payments".to_string())
            ]
        );
    }

    #[test]
    fn the_first_error_of_a_trace_is_its_origin() {
        let mut t = TraceTracker::default();
        // An error that is its trace's first record locates nothing.
        assert!(!t.observe(&rec(0, "solo", "gateway", Level::Error)).origin);
        assert!(!t.observe(&rec(0, "a", "gateway", Level::Info)).origin);
        assert!(t.observe(&rec(1, "a", "db-proxy", Level::Error)).origin);
        // The callers logging the same failure later are not origins.
        assert!(!t.observe(&rec(2, "a", "orders", Level::Error)).origin);
        assert!(!t.observe(&rec(3, "a", "gateway", Level::Error)).origin);
        // After the trace expired it is a new trace.
        let late = 3 + TRACE_TTL_MS / 1000 + 1;
        assert!(!t.observe(&rec(late, "a", "gateway", Level::Info)).origin);
        assert!(t.observe(&rec(late, "a", "orders", Level::Error)).origin);
    }

    #[test]
    fn memory_is_bounded() {
        let mut t = TraceTracker::default();
        for i in 0..(MAX_TRACES as i64 + 100) {
            t.observe(&rec(0, &format!("t{i}"), "s", Level::Info));
        }
        assert!(t.traces.len() <= MAX_TRACES);
        assert_eq!(t.traces.len(), t.order.len());
    }
}
