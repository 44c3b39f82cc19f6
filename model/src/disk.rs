//! A master's disk (`docs/protocol.md` §2.1): each input's durable write is pending until the
//! `Persist` step makes it durable, oldest first, and a crash undoes every pending write.
//!
//! Why the model has a disk at all: the implementation appends a leader's entry in memory and
//! sends `Accept` while the fsync runs (the leader's write in parallel with replication); a
//! kill before the fsync loses the entry. A model that made every write durable at once could
//! neither follow such a trace nor check that the leader counts its own acceptance only once
//! durable. What waits for a write: the messages that promise something it stores (`Prepare`
//! after the candidate's `promised`, `Promise`, `Accepted`, `CatchUpAck`) and the leader's own
//! acceptances of the entries it wrote.

use crate::config::{Bug, Disk};
use crate::message::{Endpoint, Message};
use crate::state::{PendingWrite, Role};
use crate::step::Step;
use crate::types::{Ballot, Entry, NodeId, Slot};

impl Step<'_> {
    /// The write this step adds to `node`'s disk queue: opened on first use, one per step.
    fn open_write(&mut self, node: NodeId) -> &mut PendingWrite {
        let pending = &mut self.state.masters[node as usize].pending_writes;
        if self.write_opened.is_none() {
            self.write_opened = Some(node);
            pending.push(PendingWrite::default());
        }
        assert_eq!(self.write_opened, Some(node), "one master writes per step");
        pending.last_mut().expect("opened above")
    }

    /// `promised = ballot` in memory now, durably once the step's write is persisted.
    pub fn write_promised(&mut self, node: NodeId, ballot: Ballot) {
        let before = self.state.masters[node as usize].promised;
        if before == ballot {
            return;
        }
        let write = self.open_write(node);
        write.promised_before.get_or_insert(before);
        self.state.masters[node as usize].promised = ballot;
    }

    /// Stores `entry` in `slot`: in memory now, durably once the step's write is persisted.
    pub fn write_entry(&mut self, node: NodeId, slot: Slot, entry: Entry) {
        let before = self.state.masters[node as usize].log.get(&slot).cloned();
        let write = self.open_write(node);
        if !write
            .entries_before
            .iter()
            .any(|(written, _)| *written == slot)
        {
            write.entries_before.push((slot, before));
        }
        self.state.masters[node as usize].log.insert(slot, entry);
    }

    /// Sends `message` once the step's write is durable (and every write before it).
    pub fn send_after_write(&mut self, node: NodeId, destination: Endpoint, message: Message) {
        self.open_write(node).messages.push((destination, message));
    }

    /// The leader counts itself among `slot`'s acceptors once the step's write is durable.
    pub fn own_accept_after_write(&mut self, node: NodeId, ballot: Ballot, slot: Slot) {
        // Seeded bug `own-accept-before-persist`: counted at once, durable or not.
        if self.config.has(Bug::OwnAcceptBeforePersist) {
            if let Role::Leader(leader) = &mut self.state.masters[node as usize].role {
                leader.accepted_by.entry(slot).or_default().insert(node);
            }
            return;
        }
        self.open_write(node).own_accepts.push((ballot, slot));
    }

    /// Closes the step: a write always has something waiting for it (the implementation traces
    /// a `Persist` exactly for such writes). With `Disk::Immediate` it is durable at once.
    pub(crate) fn close_write(&mut self) {
        let Some(node) = self.write_opened.take() else {
            return;
        };
        let write = self.state.masters[node as usize].pending_writes.last();
        let write = write.expect("the step's write is pending");
        assert!(
            !write.messages.is_empty()
                || !write.own_accepts.is_empty()
                || self.config.has(Bug::OwnAcceptBeforePersist),
            "a pending write with nothing waiting for it: {write:?}"
        );
        if self.config.disk == Disk::Immediate {
            self.persist(node);
        }
    }

    /// `Persist`: `node`'s oldest pending write is durable; what waited for it goes on.
    pub fn persist(&mut self, node: NodeId) {
        let pending = &mut self.state.masters[node as usize].pending_writes;
        assert!(!pending.is_empty(), "Persist without a pending write");
        let write = pending.remove(0);
        for (destination, message) in write.messages {
            self.send(Endpoint::Master(node), destination, message);
        }
        let state = &mut self.state.masters[node as usize];
        let Role::Leader(leader) = &mut state.role else {
            return;
        };
        let mut counted = false;
        for (ballot, slot) in write.own_accepts {
            if ballot != leader.ballot {
                continue;
            }
            if let Some(accepted) = leader.accepted_by.get_mut(&slot) {
                accepted.insert(node);
                counted = true;
            }
        }
        if counted {
            self.advance_leader_commit(node);
        }
    }

    /// A crash undoes `node`'s pending writes, newest first; their messages never leave.
    pub fn lose_pending_writes(&mut self, node: NodeId) {
        while let Some(write) = self.state.masters[node as usize].pending_writes.pop() {
            if let Some(promised) = write.promised_before {
                self.state.masters[node as usize].promised = promised;
            }
            if !write.entries_before.is_empty() {
                self.state.ghost.entry_lost_in_crash = true;
            }
            let state = &mut self.state.masters[node as usize];
            for (slot, before) in write.entries_before.into_iter().rev() {
                match before {
                    Some(entry) => state.log.insert(slot, entry),
                    None => state.log.remove(&slot),
                };
            }
        }
    }
}
