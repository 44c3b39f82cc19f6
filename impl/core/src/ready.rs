//! The output of a master: what it must store, what it must send, and in which order
//! (the `Ready` contract, etcd-raft style; `docs/architecture.md`).
//!
//! Why two kinds of output: a message either depends on nothing this master has not yet made
//! durable, or it must wait for this master's durable write. The leader's own write runs in
//! parallel with replication (Raft thesis §10.2.1): every `Accept` it sends is disk-free, and
//! it counts its own acceptance of a slot only once that write is durable. A follower's answers
//! (`Promise`, `Accepted`, `CatchUpAck`) and a candidate's `Prepare` wait for their write.
//!
//! The host loop is:
//!
//! 1. feed inputs: [`crate::Master::tick`], [`crate::Master::step`];
//! 2. while [`crate::Master::has_ready`], take [`crate::Master::ready`] and handle it **in field
//!    order**:
//!    1. `durable`: hand the write to storage to be made durable (fsync). The write may run in
//!       parallel with the rest: nothing below depends on it. A storage error is the host's
//!       business and **fatal**: stop the node (a master that cannot persist must not send
//!       anything that depends on it; restarting from storage is always safe).
//!    2. `close_links`: close the channel to each listed master and discard what is queued on it
//!       (an eviction, §5.1).
//!    3. `messages`: depend on nothing unpersisted (`Accept`, `Heartbeat`, `Commit`, ...): send
//!       them now, so neither replication nor heartbeats wait behind a disk.
//!    4. `replies`: `ProposeReply`s to proxies; disk-free too (a commit needs a quorum of
//!       durable acceptances), send them now.
//!    5. `trace`: hand to the trace sink (empty unless tracing is on). Its `Send` events give
//!       the messages above their trace stamps.
//! 3. once the `durable` write is durable — at once if [`Ready::waits_for_disk`] is false —
//!    call [`crate::Master::advance`] with the handled `Ready`. Call it once per `Ready`, in
//!    the order they were taken (a host with a persist queue advances them first in, first
//!    out; a `Ready` that does not wait for the disk is advanced after those before it).
//!
//! What waited for the disk is released by `advance`: for each input of the `Ready` that sent
//! a message needing its write, or appended an entry of the leader's own ballot, `advance`
//! runs one `Persist` input (a trace event of its own): it counts the leader's own acceptances
//! (which may commit, and so reply), then moves the held messages into the output with their
//! `Send` events. They leave in the next `Ready`, which the host drains at once. A `Ready`
//! dropped without `advance` (a crash) never releases them: a master that crashes before its
//! write is durable never counted that write, nor sent anything depending on it.
//!
//! Inputs may be fed between `ready` and `advance`; their output goes into the next `Ready`.

use serde::{Deserialize, Serialize};

use crate::kv::Snapshot;
use crate::message::Envelope;
use crate::trace::TraceEvent;
use crate::types::{Ballot, Entry, NodeId, Slot};

/// Everything a master keeps across a crash (`protocol.md` §2): what [`crate::Master::new`]
/// starts from. A fresh master starts from `DurableState::default()`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurableState {
    /// The highest ballot promised or accepted in.
    pub promised: Ballot,
    /// The snapshot replacing the compacted log prefix (slot 0: nothing compacted).
    pub snapshot: Snapshot,
    /// Accepted entries above the snapshot, in slot order, at most one per slot.
    pub log: Vec<Entry>,
}

impl DurableState {
    /// Applies a write the way a host's storage must: snapshot first (dropping entries at or
    /// below its slot), then entries (replacing any entry at the same slot), then `promised`.
    /// Hosts may use this on an in-memory copy; tests use it as the reference storage.
    pub fn apply(&mut self, write: &DurableWrite) {
        if let Some(snapshot) = &write.snapshot {
            self.log.retain(|entry| entry.slot > snapshot.slot);
            self.snapshot = snapshot.clone();
        }
        for entry in &write.entries {
            if entry.slot <= self.snapshot.slot {
                continue;
            }
            match self
                .log
                .binary_search_by_key(&entry.slot, |stored| stored.slot)
            {
                Ok(index) => self.log[index] = entry.clone(),
                Err(index) => self.log.insert(index, entry.clone()),
            }
        }
        if let Some(promised) = write.promised {
            self.promised = promised;
        }
    }
}

/// One durable write: all of it must be durable before [`crate::Master::advance`] is called
/// with its `Ready`. Apply as [`DurableState::apply`] does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurableWrite {
    /// A new `promised`, if it changed.
    pub promised: Option<Ballot>,
    /// A new snapshot; entries at or below its slot are dropped from the log.
    pub snapshot: Option<Snapshot>,
    /// Entries to store, each replacing any stored entry of the same slot.
    pub entries: Vec<Entry>,
}

impl DurableWrite {
    /// True if there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.promised.is_none() && self.snapshot.is_none() && self.entries.is_empty()
    }

    /// Folds `later` (the next `Ready`'s write) into this one, so that applying the result
    /// equals applying this write then `later`: a host may make several queued writes durable
    /// with one fsync (group commit), then advance each of their `Ready`s in order.
    pub fn merge(&mut self, later: DurableWrite) {
        if later.promised.is_some() {
            self.promised = later.promised;
        }
        if let Some(snapshot) = later.snapshot {
            self.entries.retain(|entry| entry.slot > snapshot.slot);
            self.snapshot = Some(snapshot);
        }
        self.entries.extend(later.entries);
    }
}

/// What one input left waiting for its durable write (`docs/architecture.md`, Ready
/// contract): released by [`crate::Master::advance`] as one `Persist` input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct WriteGroup {
    /// Messages that may only leave once the write is durable, in the order they were sent.
    pub(crate) held: Vec<Envelope>,
    /// Slots this master accepted as leader of the ballot: it counts itself among their
    /// acceptors once the write is durable, if it still leads that ballot.
    pub(crate) own_acceptances: Vec<(Ballot, Slot)>,
}

impl WriteGroup {
    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty() && self.own_acceptances.is_empty()
    }
}

/// One batch of a master's output; handle the fields in declaration order, then
/// [`crate::Master::advance`] once `durable` is durable (see the module doc).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// What to make durable, if anything.
    pub durable: Option<DurableWrite>,
    /// Masters whose channel to close, discarding what is queued on it (evictions).
    pub close_links: Vec<NodeId>,
    /// Messages that depend on nothing unpersisted: send them now.
    pub messages: Vec<Envelope>,
    /// `ProposeReply`s to proxies; they depend on nothing unpersisted either: send them now.
    pub replies: Vec<Envelope>,
    /// Trace events of the inputs that produced this batch, in order.
    pub trace: Vec<TraceEvent>,
    /// What each input of this batch left waiting for `durable`, in input order; released by
    /// [`crate::Master::advance`].
    pub(crate) groups: Vec<WriteGroup>,
}

impl Ready {
    /// True if the batch holds nothing.
    pub fn is_empty(&self) -> bool {
        self.durable.is_none()
            && self.close_links.is_empty()
            && self.messages.is_empty()
            && self.replies.is_empty()
            && self.trace.is_empty()
            && self.groups.is_empty()
    }

    /// True if [`crate::Master::advance`] must wait until this batch's write is durable: it
    /// holds a write, or output released only once the write (and every earlier one) is
    /// durable. False: advance it as soon as the batches before it are advanced.
    pub fn waits_for_disk(&self) -> bool {
        self.durable.is_some() || !self.groups.is_empty()
    }

    /// How many messages wait for the write, to be released by [`crate::Master::advance`].
    pub fn held_messages(&self) -> usize {
        self.groups.iter().map(|group| group.held.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Command;

    fn entry(slot: Slot, round: u64) -> Entry {
        Entry {
            slot,
            ballot: Ballot::new(round, 0),
            command: Command::Noop,
        }
    }

    fn snapshot(slot: Slot) -> Option<Snapshot> {
        Some(Snapshot {
            slot,
            store: Default::default(),
        })
    }

    #[test]
    fn a_merged_write_applies_as_the_writes_in_order() {
        let writes = [
            DurableWrite {
                promised: Some(Ballot::new(1, 0)),
                snapshot: None,
                entries: vec![entry(1, 1), entry(2, 1), entry(3, 1)],
            },
            DurableWrite {
                promised: Some(Ballot::new(2, 0)),
                snapshot: None,
                entries: vec![entry(3, 2), entry(4, 2)],
            },
            DurableWrite {
                promised: None,
                snapshot: snapshot(2),
                entries: vec![entry(5, 2)],
            },
            DurableWrite {
                promised: None,
                snapshot: None,
                entries: vec![entry(2, 2), entry(6, 2)],
            },
            DurableWrite {
                promised: None,
                snapshot: snapshot(4),
                entries: Vec::new(),
            },
        ];
        for start in 0..writes.len() {
            for end in start + 1..=writes.len() {
                let mut sequential = DurableState::default();
                let mut merged_state = DurableState::default();
                for write in &writes[..start] {
                    sequential.apply(write);
                    merged_state.apply(write);
                }
                let mut merged = writes[start].clone();
                for write in &writes[start..end] {
                    sequential.apply(write);
                }
                for write in &writes[start + 1..end] {
                    merged.merge(write.clone());
                }
                merged_state.apply(&merged);
                assert_eq!(merged_state, sequential, "writes {start}..{end}");
            }
        }
    }
}
