//! What a master does when a candidate or a leader talks to it (`docs/protocol.md` §3.2, §4.2,
//! §4.5, §5.2, §6.4): promise, accept, learn the commit index, answer heartbeats, catch up.
//!
//! Every handler here first compares the message's ballot with `promised`: an older ballot is
//! answered `Nack` (which makes a stale leader step down), a current or newer one is followed.

use crate::kv::Snapshot;
use crate::master::{Master, RoleState};
use crate::message::Message;
use crate::mutation::Mutation;
use crate::types::{Ballot, Command, Entry, HeartbeatSequence, NodeId, Slot};

impl Master {
    /// `Prepare { ballot, commit_index }` (§3.2): promise a newer ballot (durably, before the
    /// `Promise` leaves) with every accepted entry above the candidate's commit index.
    pub(crate) fn handle_prepare(&mut self, from: NodeId, ballot: Ballot, commit_index: Slot) {
        if ballot <= self.promised {
            self.send_nack(from, ballot);
            return;
        }
        if self.planted(Mutation::ForgetPromise) {
            // Planted bug: the promise is kept in memory only, so a restarted master can promise
            // or accept below a ballot it already promised (§8).
            self.promised = ballot;
        } else {
            self.persist_promised(ballot);
        }
        self.become_follower(Some(ballot));
        self.election_elapsed_ticks = 0;
        let snapshot = self.log.snapshot();
        let (snapshot, above) = if snapshot.slot > commit_index {
            (Some(snapshot.clone()), snapshot.slot)
        } else {
            (None, commit_index)
        };
        let entries = self.log.entries_above(above);
        let own_commit_index = self.commit_index;
        self.send_after_persist(
            from,
            Message::Promise {
                ballot,
                commit_index: own_commit_index,
                entries,
                snapshot,
            },
        );
    }

    /// `Accept { ballot, slot, command, commit_index }` (§4.2): accept in a current or newer
    /// ballot (durably, before `Accepted` leaves), then learn the commit index (§4.5).
    pub(crate) fn handle_accept(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        slot: Slot,
        command: Command,
        commit_index: Slot,
    ) {
        if ballot < self.promised {
            self.send_nack(from, ballot);
            return;
        }
        if ballot > self.promised {
            self.persist_promised(ballot);
        }
        self.follow(ballot);
        if slot > self.commit_index {
            self.persist_entry(Entry {
                slot,
                ballot,
                command,
            });
        } else {
            // §4.2: a committed entry is final; a new leader re-proposing it (its own commit
            // index is behind ours) proposes the chosen command, so nothing new is persisted.
            assert!(
                self.log
                    .get(slot)
                    .is_none_or(|entry| entry.command == command),
                "an Accept for committed slot {slot} carries another command"
            );
        }
        self.send_after_persist(from, Message::Accepted { ballot, slot });
        self.learn_commit_index(ballot, commit_index);
    }

    /// `Commit { ballot, commit_index }` (§4.4).
    pub(crate) fn handle_commit(&mut self, from: NodeId, ballot: Ballot, commit_index: Slot) {
        if ballot < self.promised {
            self.send_nack(from, ballot);
            return;
        }
        self.follow(ballot);
        self.learn_commit_index(ballot, commit_index);
    }

    /// `Heartbeat { ballot, commit_index, heartbeat_sequence }` (§5.2): follow the leader, reset
    /// the election timer, answer `HeartbeatAck` with this master's commit index and the read
    /// round echoed (§9.2).
    pub(crate) fn handle_heartbeat(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        commit_index: Slot,
        heartbeat_sequence: HeartbeatSequence,
    ) {
        if ballot < self.promised {
            self.send_nack(from, ballot);
            return;
        }
        self.follow(ballot);
        self.learn_commit_index(ballot, commit_index);
        let own_commit_index = self.commit_index;
        self.send(
            from,
            Message::HeartbeatAck {
                ballot,
                commit_index: own_commit_index,
                heartbeat_sequence,
            },
        );
    }

    /// `CatchUp` (§6.4): persist what it carries, adopt the ballot, commit up to its commit
    /// index, answer `CatchUpAck` once durable.
    pub(crate) fn handle_catch_up(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        commit_index: Slot,
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
    ) {
        if ballot < self.promised {
            self.send_nack(from, ballot);
            return;
        }
        if ballot > self.promised {
            self.persist_promised(ballot);
        }
        self.follow(ballot);
        let from_commit_index = self.commit_index;
        if let Some(snapshot) = snapshot {
            self.install_snapshot(snapshot);
        }
        for entry in entries {
            self.persist_entry(entry);
        }
        let start = self.commit_index;
        // The leader sent every committed slot above our commit index at `Rejoin`: commit them
        // whatever ballot they carry (they are chosen values, not merely accepted ones).
        while self.commit_index < commit_index && self.log.get(self.commit_index + 1).is_some() {
            self.commit_slot(self.commit_index + 1);
        }
        self.after_commit_advance(start.max(from_commit_index));
        if self.commit_index >= commit_index {
            self.rejoin_wait_ticks = 0;
        }
        let own_commit_index = self.commit_index;
        self.send_after_persist(
            from,
            Message::CatchUpAck {
                ballot,
                commit_index: own_commit_index,
            },
        );
    }

    /// §4.5: commit slots up to the leader's `commit_index` whose entry was accepted in the
    /// leader's ballot; a gap or an older entry below it asks the leader for catch-up (`Rejoin`,
    /// at most one per election timeout, so a lost `Rejoin` or `CatchUp` is asked again).
    pub(crate) fn learn_commit_index(&mut self, ballot: Ballot, commit_index: Slot) {
        if !matches!(self.role, RoleState::Follower) {
            return;
        }
        let start = self.commit_index;
        let mut gap = false;
        while self.commit_index < commit_index {
            let next = self.commit_index + 1;
            match self.log.get(next) {
                Some(entry) if entry.ballot == ballot => {
                    self.commit_slot(next);
                }
                _ => {
                    gap = true;
                    break;
                }
            }
        }
        self.after_commit_advance(start);
        if gap && self.rejoin_wait_ticks == 0 {
            self.rejoin_wait_ticks = self.config.election_timeout_ticks;
            let own_commit_index = self.commit_index;
            self.send(
                ballot.node,
                Message::Rejoin {
                    ballot,
                    commit_index: own_commit_index,
                },
            );
        }
    }

    fn send_nack(&mut self, to: NodeId, ballot: Ballot) {
        let promised = self.promised;
        self.send(to, Message::Nack { ballot, promised });
    }
}
