//! Coverage: how often runs exercised each model action kind and each named behaviour, and
//! whether every behaviour a fault plan asked for happened (non-vacuity of a run).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use vigil_core as core;

use crate::faults::FaultKind;
use crate::merge::Merged;

/// The named behaviours, in report order.
pub const BEHAVIOURS: [&str; 10] = [
    "election",
    "leader change",
    "eviction",
    "rejoin",
    "pause",
    "resume step-down",
    "crash/restart",
    "wrong cluster",
    "timeout",
    "overload",
];

/// Counts over one or more runs.
#[derive(Clone, Debug, Default)]
pub struct Coverage {
    /// Model actions applied, per kind.
    pub actions: BTreeMap<String, u64>,
    /// Behaviours observed, per name.
    pub behaviours: BTreeMap<&'static str, u64>,
}

impl Coverage {
    /// Adds another run's counts.
    pub fn add(&mut self, other: &Coverage) {
        for (kind, count) in &other.actions {
            *self.actions.entry(kind.clone()).or_default() += count;
        }
        for (name, count) in &other.behaviours {
            *self.behaviours.entry(name).or_default() += count;
        }
    }

    /// Behaviours `faults` ask for that did not happen.
    pub fn missing(&self, faults: &[FaultKind]) -> Vec<String> {
        let mut missing = BTreeSet::new();
        for fault in faults {
            for behaviour in fault.expected_behaviours() {
                if self.behaviours.get(behaviour).copied().unwrap_or(0) == 0 {
                    missing.insert(format!("{behaviour} (asked for by fault `{fault}`)"));
                }
            }
        }
        if self.behaviours.get("election").copied().unwrap_or(0) == 0 {
            missing.insert("election (every run elects a leader)".to_string());
        }
        missing.into_iter().collect()
    }
}

/// What the trace of one run shows. A pause counts when a master traced it (`Pause`, schema 2):
/// a pause the fault plan asked for but no master noticed is missing, and the run is vacuous.
pub fn observe(merged: &Merged) -> BTreeMap<&'static str, u64> {
    let mut behaviours: BTreeMap<&'static str, u64> =
        BEHAVIOURS.iter().map(|name| (*name, 0)).collect();
    let mut leaders = BTreeSet::new();
    let mut started = BTreeSet::new();
    let mut resumed_leaders = BTreeSet::new();
    for event in &merged.events {
        let origin = event.line.origin.to_string();
        if resumed_step_down(
            &event.line.kind,
            &event.line.post,
            &origin,
            &mut resumed_leaders,
        ) {
            *behaviours.entry("resume step-down").or_default() += 1;
        }
        let name = match &event.line.kind {
            core::TraceKind::BecomeLeader { ballot } => {
                leaders.insert(*ballot);
                "election"
            }
            core::TraceKind::Evict { .. } => "eviction",
            core::TraceKind::Pause => "pause",
            core::TraceKind::Readmit { .. } => "rejoin",
            core::TraceKind::Restart => {
                if started.insert(origin) {
                    continue;
                }
                "crash/restart"
            }
            core::TraceKind::RequestCompleted {
                outcome: Err(error),
                ..
            } => match error {
                core::ClientError::UnknownCluster => "wrong cluster",
                core::ClientError::Timeout => "timeout",
                core::ClientError::Overloaded => "overload",
                _ => continue,
            },
            _ => continue,
        };
        *behaviours.entry(name).or_default() += 1;
    }
    *behaviours.entry("leader change").or_default() += leaders.len().saturating_sub(1) as u64;
    behaviours
}

/// `resume step-down` (§7.2): a master `Resume`s as Leader, and its next input is a
/// check-quorum that makes it a Follower, with no `Evict` between. `resumed` holds the masters
/// whose last input was such a `Resume` (or that check-quorum, until its `BecomeFollower`).
fn resumed_step_down(
    kind: &core::TraceKind,
    post: &core::PostState,
    origin: &str,
    resumed: &mut BTreeSet<String>,
) -> bool {
    let leading =
        matches!(post, core::PostState::Master(master) if master.role == core::Role::Leader);
    match kind {
        core::TraceKind::Resume { .. } if leading => {
            resumed.insert(origin.to_string());
            false
        }
        core::TraceKind::Timeout {
            timer: core::Timer::CheckQuorum,
        } => false,
        core::TraceKind::BecomeFollower { .. } => resumed.remove(origin),
        // Another input, or an eviction: not the step-down this looks for.
        other if other.starts_input() || matches!(other, core::TraceKind::Evict { .. }) => {
            resumed.remove(origin);
            false
        }
        _ => false,
    }
}

impl fmt::Display for Coverage {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(formatter, "coverage: behaviours")?;
        for name in BEHAVIOURS {
            let count = self.behaviours.get(name).copied().unwrap_or(0);
            writeln!(formatter, "  {name:<16} {count:>7}")?;
        }
        writeln!(formatter, "coverage: model actions")?;
        for (kind, count) in &self.actions {
            writeln!(formatter, "  {kind:<28} {count:>7}")?;
        }
        Ok(())
    }
}
