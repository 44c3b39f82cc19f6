//! The output of a master: what it must store, what it must send, and in which order
//! (the `Ready` contract, etcd-raft style; `docs/architecture.md`).
//!
//! The host loop is:
//!
//! 1. feed inputs: [`crate::Master::tick`], [`crate::Master::step`];
//! 2. while [`crate::Master::has_ready`], take [`crate::Master::ready`] and handle it **in field
//!    order**:
//!    1. `durable`: apply the write to storage and make it durable (fsync). A storage error is the
//!       host's business and **fatal**: stop the node (a master that cannot persist must not send
//!       anything that depends on it; restarting from storage is always safe).
//!    2. `close_links`: close the channel to each listed master and discard what is queued on it
//!       (an eviction, §5.1).
//!    3. `messages_after_persist`: may only leave after `durable` is durable (`Promise`,
//!       `Accepted`, `CatchUpAck`, and the leader's `Accept`s, which carry entries it counts as
//!       its own acceptance).
//!    4. `messages`: depend on nothing unpersisted (`Heartbeat`, `HeartbeatAck`, `PreVote`, ...).
//!       A host may send these before or while `durable` is written, so heartbeats never wait
//!       behind a disk.
//!    5. `replies`: `ProposeReply`s to proxies; after `durable`, like step 3.
//!    6. `trace`: hand to the trace sink (empty unless tracing is on).
//! 3. call [`crate::Master::advance`] with the handled `Ready`.
//!
//! Inputs may be fed between `ready` and `advance`; their output goes into the next `Ready`.

use serde::{Deserialize, Serialize};

use crate::kv::Snapshot;
use crate::message::Envelope;
use crate::trace::TraceEvent;
use crate::types::{Ballot, Entry, NodeId};

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

/// One durable write: all of it must be durable before `messages_after_persist` and `replies`
/// leave. Apply as [`DurableState::apply`] does.
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
}

/// One batch of a master's output; handle the fields in declaration order (see the module doc).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// What to make durable first, if anything.
    pub durable: Option<DurableWrite>,
    /// Masters whose channel to close, discarding what is queued on it (evictions).
    pub close_links: Vec<NodeId>,
    /// Messages that may only leave once `durable` is durable.
    pub messages_after_persist: Vec<Envelope>,
    /// Messages that depend on nothing unpersisted.
    pub messages: Vec<Envelope>,
    /// `ProposeReply`s to proxies; they leave after `durable` too.
    pub replies: Vec<Envelope>,
    /// Trace events of the inputs that produced this batch, in order.
    pub trace: Vec<TraceEvent>,
}

impl Ready {
    /// True if the batch holds nothing.
    pub fn is_empty(&self) -> bool {
        self.durable.is_none()
            && self.close_links.is_empty()
            && self.messages_after_persist.is_empty()
            && self.messages.is_empty()
            && self.replies.is_empty()
            && self.trace.is_empty()
    }
}
