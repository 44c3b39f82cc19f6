//! Coverage: how often runs exercised each model action kind and each named behaviour, and
//! whether every behaviour a fault plan asked for happened (non-vacuity of a run).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use vigil_core as core;

use crate::faults::{FaultKind, Runner};
use crate::merge::Merged;

/// The named behaviours, in report order.
pub const BEHAVIOURS: [&str; 18] = [
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
    "commit before own write",
    "write lost in crash",
    "reproposal",
    "txn failure branch",
    "range with more",
    "watch compacted",
    "watch resumed",
    "watch from now",
];

/// The behaviours of the revisioned API (`docs/protocol.md` §14–§17): a run of the revisioned
/// workload must show each of them (over the seeds of a part: one seed may not crash the master
/// its watches stream from).
pub const REVISIONED_BEHAVIOURS: [&str; 5] = [
    "txn failure branch",
    "range with more",
    "watch compacted",
    "watch resumed",
    "watch from now",
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

    /// Behaviours that `faults`, as `runner` injects them, ask for and that did not happen.
    pub fn missing(&self, faults: &[FaultKind], runner: Runner) -> Vec<String> {
        let mut missing = BTreeSet::new();
        for fault in faults.iter().filter(|fault| fault.runs_on(runner)) {
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
    let mut disks: BTreeMap<String, DiskWatch> = BTreeMap::new();
    let mut watches = WatchBehaviours::default();
    for event in &merged.events {
        if let Some(name) = revisioned_behaviour(&event.line.kind) {
            *behaviours.entry(name).or_default() += 1;
        }
        for name in watches.observe(&event.line.kind) {
            *behaviours.entry(name).or_default() += 1;
        }
        let origin = event.line.origin.to_string();
        if event.line.kind.starts_input() {
            if let core::PostState::Master(post) = &event.line.post {
                let disk = disks.entry(origin.clone()).or_default();
                for name in disk.observe(&event.line.kind, post) {
                    *behaviours.entry(name).or_default() += 1;
                }
            }
        }
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
                if reproposes(&event.line.post) {
                    *behaviours.entry("reproposal").or_default() += 1;
                }
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

/// What a proxy event shows of the revisioned API: a `Txn` that took its failure branch, a
/// `Range` that left keys out (`more`), a watch ended `Compacted`.
fn revisioned_behaviour(kind: &core::TraceKind) -> Option<&'static str> {
    use core::kv_types::{KvResult, WatchEnd};
    match kind {
        core::TraceKind::KvRequestCompleted {
            outcome: Ok(KvResult::Txn(txn)),
            ..
        } if !txn.succeeded => Some("txn failure branch"),
        core::TraceKind::KvRequestCompleted {
            outcome: Ok(KvResult::Range(range)),
            ..
        } if range.more => Some("range with more"),
        core::TraceKind::WatchEnded {
            outcome: WatchEnd::Compacted { .. },
            ..
        } => Some("watch compacted"),
        _ => None,
    }
}

/// The watches' behaviours in a proxy's events: `watch resumed` (§17.6), a watch open when the
/// proxy's connection to its subscription's master closed that gets events afterwards, from
/// the master the proxy resumed at; and `watch from now` (§17.2), a watch created from
/// revision 0 that the proxy answered `WatchCreated` (once the master's report resolved it)
/// and then delivered events to. Each counts once per watch, at that delivery.
#[derive(Debug, Default)]
struct WatchBehaviours {
    /// Watches created and not ended, by (client, watch id).
    open: BTreeSet<(u64, u64)>,
    /// Open watches that were open at a `ConnectionClosed` and got nothing since.
    resuming: BTreeSet<(u64, u64)>,
    /// Watches from now asked for, not ended, and not delivered to since `WatchCreated`.
    from_now: BTreeSet<(u64, u64)>,
}

impl WatchBehaviours {
    /// Takes in a proxy event; the behaviours it completes.
    fn observe(&mut self, kind: &core::TraceKind) -> Vec<&'static str> {
        let mut seen = Vec::new();
        match kind {
            core::TraceKind::Receive {
                from: core::Endpoint::Client(client),
                message:
                    core::Message::WatchCreate {
                        watch_id, watch, ..
                    },
            } if watch.start_revision == 0 => {
                self.from_now.insert((*client, *watch_id));
            }
            core::TraceKind::Send {
                to: core::Endpoint::Client(client),
                message,
            } => match message {
                core::Message::WatchCreated { watch_id } => {
                    self.open.insert((*client, *watch_id));
                }
                core::Message::WatchEvents { watch_id, .. } => {
                    let watch = (*client, *watch_id);
                    if self.resuming.remove(&watch) {
                        seen.push("watch resumed");
                    }
                    if self.open.contains(&watch) && self.from_now.remove(&watch) {
                        seen.push("watch from now");
                    }
                }
                _ => {}
            },
            core::TraceKind::WatchEnded {
                client, watch_id, ..
            } => {
                let watch = (*client, *watch_id);
                self.open.remove(&watch);
                self.resuming.remove(&watch);
                self.from_now.remove(&watch);
            }
            core::TraceKind::ConnectionClosed { .. } => {
                self.resuming.extend(self.open.iter().copied());
            }
            _ => {}
        }
        seen
    }
}

/// What one master's inputs show of its disk (`protocol.md` §2.1): `commit before own write`
/// (a leader's commit index passed a slot it appended, before the `Persist` of that write) and
/// `write lost in crash` (a restart came back with a shorter log than the master had). Both are
/// read conservatively: any `Persist` counts as covering every earlier append.
#[derive(Debug, Default)]
struct DiskWatch {
    /// The master's `last_slot` after its previous input.
    last_slot: Option<core::Slot>,
    /// The lowest slot appended as Leader since the last `Persist`.
    unpersisted_from: Option<core::Slot>,
}

impl DiskWatch {
    fn observe(
        &mut self,
        kind: &core::TraceKind,
        post: &core::MasterPostState,
    ) -> Vec<&'static str> {
        let mut seen = Vec::new();
        let before = self.last_slot.replace(post.last_slot);
        match kind {
            core::TraceKind::Persist => self.unpersisted_from = None,
            core::TraceKind::Restart => {
                if before.is_some_and(|before| post.last_slot < before) {
                    seen.push("write lost in crash");
                }
                self.unpersisted_from = None;
            }
            _ => {
                if self
                    .unpersisted_from
                    .is_some_and(|slot| post.commit_index >= slot)
                {
                    seen.push("commit before own write");
                    self.unpersisted_from = None;
                }
                let appended_from = before
                    .filter(|before| post.role == core::Role::Leader && post.last_slot > *before)
                    .map(|before| before + 1);
                if let Some(slot) = appended_from {
                    self.unpersisted_from =
                        Some(self.unpersisted_from.map_or(slot, |from| from.min(slot)));
                }
            }
        }
        seen
    }
}

/// `reproposal` (§3): a new leader whose phase 1 found entries above its commit index, which
/// it re-proposes in its ballot (its post-state's `last_slot` above its `commit_index`).
fn reproposes(post: &core::PostState) -> bool {
    matches!(post, core::PostState::Master(master) if master.last_slot > master.commit_index)
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
            writeln!(formatter, "  {name:<24} {count:>7}")?;
        }
        writeln!(formatter, "coverage: model actions")?;
        for (kind, count) in &self.actions {
            writeln!(formatter, "  {kind:<28} {count:>7}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::kv_types::{KeyRange, WatchEnd, WatchRequest};

    fn create(client: u64, watch_id: u64, start_revision: u64) -> core::TraceKind {
        core::TraceKind::Receive {
            from: core::Endpoint::Client(client),
            message: core::Message::WatchCreate {
                watch_id,
                cluster: "local".to_string(),
                watch: WatchRequest {
                    range: KeyRange::prefix(b"w/"),
                    start_revision,
                    prev_kv: false,
                    filter: None,
                },
            },
        }
    }

    fn to_client(client: u64, message: core::Message) -> core::TraceKind {
        core::TraceKind::Send {
            to: core::Endpoint::Client(client),
            message,
        }
    }

    fn events(client: u64, watch_id: u64) -> core::TraceKind {
        to_client(
            client,
            core::Message::WatchEvents {
                watch_id,
                revision: 5,
                events: Vec::new(),
            },
        )
    }

    /// Counted once per watch from now, at its first delivery after `WatchCreated`; a watch
    /// from a revision, or one from now that ended before it was answered, is not counted.
    #[test]
    fn a_watch_from_now_counts_at_its_first_delivery_after_created() {
        let mut watches = WatchBehaviours::default();
        let created = |watch_id| to_client(1, core::Message::WatchCreated { watch_id });
        let ended = core::TraceKind::WatchEnded {
            client: 1,
            watch_id: 3,
            outcome: WatchEnd::UnknownCluster,
        };
        let seen: Vec<bool> = [
            create(1, 1, 0),
            create(1, 2, 4),
            create(1, 3, 0),
            ended,
            created(2),
            events(1, 2),
            created(1),
            events(1, 1),
            events(1, 1),
        ]
        .iter()
        .map(|kind| watches.observe(kind) == ["watch from now"])
        .collect();
        let expected = [false, false, false, false, false, false, false, true, false];
        assert_eq!(seen, expected);
    }

    /// A watch open at a `ConnectionClosed` counts `watch resumed` at its next delivery, once;
    /// one created after it does not.
    #[test]
    fn a_watch_open_at_a_closed_connection_counts_resumed_at_its_next_delivery() {
        let mut watches = WatchBehaviours::default();
        let created = |watch_id| to_client(1, core::Message::WatchCreated { watch_id });
        let closed = core::TraceKind::ConnectionClosed {
            cluster: "local".to_string(),
            node: 0,
        };
        let seen: Vec<Vec<&str>> = [
            create(1, 1, 4),
            created(1),
            closed,
            create(1, 2, 4),
            created(2),
            events(1, 2),
            events(1, 1),
            events(1, 1),
        ]
        .iter()
        .map(|kind| watches.observe(kind))
        .collect();
        let resumed_at = seen.iter().position(|names| names == &["watch resumed"]);
        assert_eq!(resumed_at, Some(6), "{seen:?}");
        assert_eq!(seen.iter().filter(|names| !names.is_empty()).count(), 1);
    }
}
