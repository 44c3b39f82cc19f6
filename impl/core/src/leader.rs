//! The leader (`docs/protocol.md` §4, §5, §6.3–§6.4, §9.3): proposals and phase 2 with bounded
//! pipelining, the commit index, heartbeats and eviction, check-quorum, rejoin and readmission.
//!
//! The quorum is always a majority of the static configuration; eviction only changes whom the
//! leader replicates to and whose acknowledgements it counts (§5.3).
//!
//! The leader's state ([`Leadership`], lost on step-down) lives here with its handlers.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::kv::ReadOperation;
use crate::kv_types::KvOperation;
use crate::master::{Master, RoleState};
use crate::message::Message;
use crate::mutation::Mutation;
use crate::read::PendingRead;
use crate::trace::{Timer, TraceKind};
use crate::types::{
    Ballot, Command, Entry, HeartbeatSequence, MasterError, NodeId, Operation, ProxyId, RequestId,
    Slot,
};

/// The leader's view of one follower (§5.1).
#[derive(Debug, Clone)]
pub(crate) struct FollowerProgress {
    /// Consecutive heartbeat periods without an acknowledgement.
    pub(crate) missed_heartbeats: u64,
    /// Whether it acknowledged since the previous heartbeat.
    pub(crate) acknowledged: bool,
}

impl Default for FollowerProgress {
    /// A follower the leader has not sent a heartbeat to yet has missed none: the first
    /// heartbeat period must not count as missed, or `Evict` would come one heartbeat before
    /// `eviction_threshold` heartbeats were really missed (protocol.md §5.1, §13
    /// `eviction_after_threshold`).
    fn default() -> FollowerProgress {
        FollowerProgress {
            missed_heartbeats: 0,
            acknowledged: true,
        }
    }
}

/// Which API a proposal came through, so its answer goes back on the matching message
/// (`ProposeReply` or `KvProposeReply`, §17.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// `Propose`: a register operation (§9.1).
    Register,
    /// `KvPropose`: a revisioned operation (§14–§16).
    Kv,
}

/// A proposal the leader owns: who to answer once its slot is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProposalOwner {
    pub(crate) proxy: ProxyId,
    pub(crate) request_id: RequestId,
    pub(crate) api: Api,
}

/// A Leader's state (§4, §5): lost on step-down.
#[derive(Debug)]
pub(crate) struct Leadership {
    pub(crate) ballot: Ballot,
    pub(crate) active: BTreeSet<NodeId>,
    pub(crate) evicted: BTreeSet<NodeId>,
    pub(crate) progress: BTreeMap<NodeId, FollowerProgress>,
    /// Masters that accepted each uncommitted slot in this ballot: followers by their
    /// `Accepted`, this master once its own write of the slot is durable (`Master::advance`).
    pub(crate) acks: BTreeMap<Slot, BTreeSet<NodeId>>,
    /// The next free slot.
    pub(crate) next_slot: Slot,
    /// Proposals waiting for a pipeline slot (bounded by `proposals_queued_max`).
    pub(crate) queue: VecDeque<(ProposalOwner, Command)>,
    /// Proposals in the pipeline, by slot.
    pub(crate) owners: BTreeMap<Slot, ProposalOwner>,
    pub(crate) heartbeat_elapsed_ticks: u64,
    /// The commit index at the previous heartbeat: if it did not move while slots are
    /// uncommitted, the heartbeat re-sends their `Accept`s (a message was lost).
    pub(crate) commit_index_at_heartbeat: Slot,
    /// The last slot assigned at the previous heartbeat (the commit index at election): only
    /// slots uncommitted for a whole heartbeat period are re-sent (§4.7).
    pub(crate) last_slot_at_heartbeat: Slot,
    pub(crate) check_quorum_elapsed_ticks: u64,
    /// Active followers heard from in the current check-quorum window.
    pub(crate) heard_in_window: BTreeSet<NodeId>,
    /// The last slot phase 1 re-proposed (the commit index at election if none): until the
    /// commit index reaches it, `Get`s go through the log (§9.2).
    pub(crate) phase_one_last_slot: Slot,
    /// The read round of the last heartbeat round started (§9.2).
    pub(crate) heartbeat_sequence: HeartbeatSequence,
    /// Active followers that acknowledged round `heartbeat_sequence`.
    pub(crate) read_acknowledged: BTreeSet<NodeId>,
    /// `Get`s served without a log slot, waiting for their round, in arrival order (at most
    /// `reads_waiting_max`).
    pub(crate) reads: VecDeque<PendingRead>,
}

impl Master {
    fn leadership(&self) -> Option<&Leadership> {
        match &self.role {
            RoleState::Leader(leadership) => Some(leadership),
            _ => None,
        }
    }

    fn leadership_mut(&mut self) -> Option<&mut Leadership> {
        match &mut self.role {
            RoleState::Leader(leadership) => Some(leadership),
            _ => None,
        }
    }

    /// The leadership if this master leads `ballot`.
    fn leadership_of(&mut self, ballot: Ballot) -> Option<&mut Leadership> {
        self.leadership_mut()
            .filter(|leadership| leadership.ballot == ballot)
    }

    /// `Propose { request_id, operation }` (§9.3): a Leader with room starts phase 2 (or queues
    /// it); otherwise `NotLeader` or `Overloaded`. A `Get` at a Leader that committed its phase 1
    /// is served without a log slot (§9.2, `read.rs`).
    pub(crate) fn handle_propose(
        &mut self,
        proxy: ProxyId,
        request_id: RequestId,
        operation: Operation,
    ) {
        let owner = ProposalOwner {
            proxy,
            request_id,
            api: Api::Register,
        };
        if matches!(operation, Operation::Get { .. })
            && self.try_read(owner, ReadOperation::Get(operation.clone()))
        {
            return;
        }
        self.propose_command(owner, command_of(owner, operation));
    }

    /// `KvPropose { request_id, operation }` (§17.7): as `Propose`; a `Range` is a read like
    /// `Get` (§14.2).
    pub(crate) fn handle_kv_propose(
        &mut self,
        proxy: ProxyId,
        request_id: RequestId,
        operation: KvOperation,
    ) {
        let owner = ProposalOwner {
            proxy,
            request_id,
            api: Api::Kv,
        };
        if let KvOperation::Range(request) = &operation {
            if self.try_read(owner, ReadOperation::Range(Box::new(request.clone()))) {
                return;
            }
        }
        let command = Command::Kv {
            proxy,
            request_id,
            operation,
        };
        self.propose_command(owner, command);
    }

    /// A read at a Leader that serves reads waits for its read round (§9.2); returns false if
    /// it must go through the log instead.
    fn try_read(&mut self, owner: ProposalOwner, read: ReadOperation) -> bool {
        if self.planted(Mutation::StaleLeaderRead) && self.leadership().is_some() {
            // Planted bug: answer from the applied state at once, confirming nothing.
            let result = self.store.answer_read(&read, self.config.store_limits());
            self.reply(owner, Ok(result));
            return true;
        }
        if self.serves_reads() {
            self.register_read(owner, read);
            return true;
        }
        false
    }

    /// A Leader with room starts phase 2 for `command` (or queues it); otherwise `NotLeader` or
    /// `Overloaded`.
    fn propose_command(&mut self, owner: ProposalOwner, command: Command) {
        let commit_index = self.commit_index;
        let pipeline_slots_max = self.config.pipeline_slots_max;
        let proposals_queued_max = self.config.proposals_queued_max;
        let Some(leadership) = self.leadership_mut() else {
            let leader_hint = self.leader.map(|ballot| ballot.node);
            self.reply(owner, Err(MasterError::NotLeader { leader_hint }));
            return;
        };
        let in_pipeline = leadership.next_slot - 1 - commit_index;
        if in_pipeline < pipeline_slots_max {
            let slot = leadership.next_slot;
            leadership.owners.insert(slot, owner);
            self.counters.proposals += 1;
            self.start_phase_two(slot, command);
        } else if (leadership.queue.len() as u64) < proposals_queued_max {
            leadership.queue.push_back((owner, command));
            self.counters.proposals += 1;
        } else {
            self.counters.proposals_refused += 1;
            self.reply(owner, Err(MasterError::Overloaded));
        }
    }

    /// Phase 2 for `slot` (§4.1): accept it here and send `Accept` to the active set at once;
    /// the write runs in parallel with replication, and this master counts its own acceptance
    /// only once the write is durable (`Master::advance`).
    pub(crate) fn start_phase_two(&mut self, slot: Slot, command: Command) {
        let commit_index = self.commit_index;
        let Some(leadership) = self.leadership_mut() else {
            unreachable!("only a Leader runs phase 2");
        };
        let ballot = leadership.ballot;
        assert!(slot > commit_index, "phase 2 only for uncommitted slots");
        leadership.next_slot = leadership.next_slot.max(slot + 1);
        leadership.acks.entry(slot).or_default();
        let active: Vec<NodeId> = leadership.active.iter().copied().collect();
        self.persist_entry(Entry {
            slot,
            ballot,
            command: command.clone(),
        });
        self.accept_own_once_durable(ballot, slot);
        for node in active {
            self.send(
                node,
                Message::Accept {
                    ballot,
                    slot,
                    command: command.clone(),
                    commit_index,
                },
            );
        }
    }

    /// `Accepted { ballot, slot }` (§4.3): counts only from an active follower, for the current
    /// ballot.
    pub(crate) fn handle_accepted(&mut self, from: NodeId, ballot: Ballot, slot: Slot) {
        let commit_index = self.commit_index;
        let evicted_acks_count = self.planted(Mutation::EvictedAckCounts);
        let Some(leadership) = self.leadership_of(ballot) else {
            return;
        };
        // Planted bug: an evicted follower's acknowledgement counts too.
        let counts = leadership.active.contains(&from) || evicted_acks_count;
        if !counts {
            return;
        }
        note_heard(leadership, from);
        if slot > commit_index && slot < leadership.next_slot {
            leadership.acks.entry(slot).or_default().insert(from);
        }
        self.maybe_commit();
    }

    /// The write holding these own acceptances is durable (§4.1): for each slot still
    /// uncommitted in a ballot this master still leads, it counts itself, then commits what
    /// that completes. A leader that stepped down (or leads a newer ballot) counts nothing.
    pub(crate) fn count_own_acceptances(&mut self, own_acceptances: Vec<(Ballot, Slot)>) {
        let own = self.id;
        let commit_index = self.commit_index;
        let mut counted = false;
        for (ballot, slot) in own_acceptances {
            let Some(leadership) = self.leadership_of(ballot) else {
                continue;
            };
            if slot <= commit_index {
                continue;
            }
            if let Some(acks) = leadership.acks.get_mut(&slot) {
                acks.insert(own);
                counted = true;
            }
        }
        if counted {
            self.maybe_commit();
        }
    }

    /// §4.4: advance the commit index over the chosen prefix, apply, answer owned proposals,
    /// tell the followers, and refill the pipeline from the queue.
    pub(crate) fn maybe_commit(&mut self) {
        let start = self.commit_index;
        let own = self.id;
        // Planted bug: an evicted follower's acknowledgement counts towards the quorum.
        let evicted_acks_count = self.planted(Mutation::EvictedAckCounts);
        loop {
            let next = self.commit_index + 1;
            let quorum = self.quorum();
            let Some(leadership) = self.leadership_mut() else {
                return;
            };
            if next >= leadership.next_slot {
                break;
            }
            // Its own acceptance is among them once durable; a follower's counts while active.
            let acknowledgements = leadership.acks.get(&next).map_or(0, |acks| {
                acks.iter()
                    .filter(|node| {
                        **node == own || leadership.active.contains(node) || evicted_acks_count
                    })
                    .count() as u64
            });
            if acknowledgements < quorum {
                break;
            }
            leadership.acks.remove(&next);
            let owner = leadership.owners.remove(&next);
            let result = self.commit_slot(next);
            if let (Some(owner), Some(result)) = (owner, result) {
                self.reply(owner, Ok(result));
            }
        }
        if self.commit_index == start {
            return;
        }
        self.after_commit_advance(start);
        self.broadcast_commit();
        self.refill_pipeline();
    }

    fn broadcast_commit(&mut self) {
        let commit_index = self.commit_index;
        let Some(leadership) = self.leadership() else {
            return;
        };
        let ballot = leadership.ballot;
        let active: Vec<NodeId> = leadership.active.iter().copied().collect();
        for node in active {
            self.send(
                node,
                Message::Commit {
                    ballot,
                    commit_index,
                },
            );
        }
    }

    fn refill_pipeline(&mut self) {
        let pipeline_slots_max = self.config.pipeline_slots_max;
        loop {
            let commit_index = self.commit_index;
            let Some(leadership) = self.leadership_mut() else {
                return;
            };
            if leadership.next_slot - 1 - commit_index >= pipeline_slots_max {
                return;
            }
            let Some((owner, command)) = leadership.queue.pop_front() else {
                return;
            };
            let slot = leadership.next_slot;
            leadership.owners.insert(slot, owner);
            self.start_phase_two(slot, command);
        }
    }

    /// `HeartbeatAck { ballot, commit_index, heartbeat_sequence }` (§5.1): the follower is
    /// alive; of the current read round, it may confirm the reads waiting for it (§9.2).
    pub(crate) fn handle_heartbeat_ack(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        _commit_index: Slot,
        heartbeat_sequence: HeartbeatSequence,
    ) {
        let Some(leadership) = self.leadership_of(ballot) else {
            return;
        };
        if leadership.active.contains(&from) {
            note_heard(leadership, from);
            self.note_read_acknowledged(from, heartbeat_sequence);
        }
    }

    /// `HeartbeatTimeout` (§5.1): count missed heartbeats, evict at the threshold, otherwise
    /// send `Heartbeat` (starting the next read round if reads wait for one, §9.2).
    pub(crate) fn on_heartbeat_timeout(&mut self) {
        self.trace.record(|| TraceKind::Timeout {
            timer: Timer::Heartbeat,
        });
        let commit_index = self.commit_index;
        let eviction_threshold = self.config.eviction_threshold;
        let reads_waiting = self.reads_waiting();
        let Some(leadership) = self.leadership_mut() else {
            return;
        };
        if reads_waiting {
            leadership.heartbeat_sequence += 1;
            leadership.read_acknowledged.clear();
        }
        let (ballot, heartbeat_sequence) = (leadership.ballot, leadership.heartbeat_sequence);
        let mut evicted = Vec::new();
        let mut beating = Vec::new();
        for node in leadership.active.iter().copied() {
            let progress = leadership.progress.entry(node).or_default();
            if progress.acknowledged {
                progress.missed_heartbeats = 0;
            } else {
                progress.missed_heartbeats += 1;
            }
            progress.acknowledged = false;
            if progress.missed_heartbeats >= eviction_threshold {
                evicted.push(node);
            } else {
                beating.push(node);
            }
        }
        for node in evicted {
            self.evict(node);
        }
        for node in &beating {
            self.counters.heartbeats_sent += 1;
            self.send(
                *node,
                Message::Heartbeat {
                    ballot,
                    commit_index,
                    heartbeat_sequence,
                },
            );
        }
        self.resend_stalled_accepts(&beating);
    }

    /// Retransmission (§4.7): a host may lose messages (a closed connection, a full bounded
    /// queue) and a slot that never gathers a quorum blocks the commit index. So when the commit
    /// index did not move for a whole heartbeat period, each active follower gets again the
    /// `Accept`s it has not acknowledged among the slots already uncommitted at the previous
    /// heartbeat (at most `pipeline_slots_max` per follower and period; a slot sent during
    /// this period is not re-sent yet). Like every `Accept`, they leave at once, whatever this
    /// leader's own disk is doing.
    fn resend_stalled_accepts(&mut self, followers: &[NodeId]) {
        let commit_index = self.commit_index;
        let Some(leadership) = self.leadership_mut() else {
            return;
        };
        let stalled = leadership.commit_index_at_heartbeat == commit_index;
        let outstanding_until = leadership.last_slot_at_heartbeat;
        leadership.commit_index_at_heartbeat = commit_index;
        leadership.last_slot_at_heartbeat = leadership.next_slot - 1;
        if !stalled || outstanding_until <= commit_index {
            return;
        }
        let ballot = leadership.ballot;
        let mut resend = Vec::new();
        for node in followers {
            for (slot, acks) in leadership.acks.range(..=outstanding_until) {
                if !acks.contains(node) {
                    resend.push((*node, *slot));
                }
            }
        }
        for (node, slot) in resend {
            let Some(entry) = self.log.get(slot) else {
                continue;
            };
            let message = Message::Accept {
                ballot,
                slot,
                command: entry.command.clone(),
                commit_index,
            };
            self.send(node, message);
        }
    }

    /// `Evict` (§5.1): out of the active set, into the evicted set, channel closed.
    fn evict(&mut self, follower: NodeId) {
        let Some(leadership) = self.leadership_mut() else {
            return;
        };
        assert!(
            leadership.active.remove(&follower),
            "only an active follower is evicted"
        );
        leadership.evicted.insert(follower);
        leadership.heard_in_window.remove(&follower);
        leadership.read_acknowledged.remove(&follower);
        for acks in leadership.acks.values_mut() {
            acks.remove(&follower);
        }
        self.counters.evictions += 1;
        self.output.close_links.push(follower);
        self.trace.record(|| TraceKind::Evict { follower });
    }

    /// `CheckQuorumTimeout` (§5.4): step down unless `quorum - 1` active followers were heard
    /// during the window.
    pub(crate) fn on_check_quorum_timeout(&mut self) {
        self.trace.record(|| TraceKind::Timeout {
            timer: Timer::CheckQuorum,
        });
        let quorum = self.quorum();
        let Some(leadership) = self.leadership_mut() else {
            return;
        };
        leadership.check_quorum_elapsed_ticks = 0;
        let heard = leadership
            .heard_in_window
            .iter()
            .filter(|node| leadership.active.contains(node))
            .count() as u64;
        leadership.heard_in_window.clear();
        if heard + 1 < quorum {
            self.become_follower(None);
        }
    }

    /// `Rejoin { ballot, commit_index }` (§6.3): answer `CatchUp` with the committed entries
    /// above the follower's commit index (or the snapshot if it is behind the compaction point),
    /// plus the accepted, not yet committed entries.
    pub(crate) fn handle_rejoin(&mut self, from: NodeId, ballot: Ballot, commit_index: Slot) {
        let leader_commit_index = self.commit_index;
        if self.leadership_of(ballot).is_none() {
            return;
        }
        let snapshot = self.log.snapshot();
        let (snapshot, above) = if commit_index < snapshot.slot {
            (Some(snapshot.clone()), snapshot.slot)
        } else {
            (None, commit_index)
        };
        let entries = self.log.entries_above(above);
        // Disk-free like an `Accept`: the follower's acknowledgement of these entries does not
        // count (it gets `Accept`s again once readmitted), and committed ones are chosen.
        self.send(
            from,
            Message::CatchUp {
                ballot,
                commit_index: leader_commit_index,
                snapshot,
                entries,
            },
        );
    }

    /// `CatchUpAck { ballot, commit_index }` (§6.4): readmit the follower (a no-op if it is
    /// active) and send it `Accept` for every uncommitted slot so its acceptance counts.
    pub(crate) fn handle_catch_up_ack(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        _commit_index: Slot,
    ) {
        let commit_index = self.commit_index;
        let Some(leadership) = self.leadership_of(ballot) else {
            return;
        };
        let was_evicted = leadership.evicted.remove(&from);
        leadership.active.insert(from);
        let progress = leadership.progress.entry(from).or_default();
        progress.missed_heartbeats = 0;
        note_heard(leadership, from);
        let uncommitted: Vec<Slot> = (commit_index + 1..leadership.next_slot).collect();
        if was_evicted {
            self.counters.rejoins += 1;
            self.trace.record(|| TraceKind::Readmit { follower: from });
        }
        for slot in uncommitted {
            let Some(entry) = self.log.get(slot) else {
                continue;
            };
            let message = Message::Accept {
                ballot,
                slot,
                command: entry.command.clone(),
                commit_index,
            };
            self.send(from, message);
        }
    }
}

/// An active follower acknowledged this ballot: it counts for §5.1 and §5.4.
fn note_heard(leadership: &mut Leadership, from: NodeId) {
    leadership.progress.entry(from).or_default().acknowledged = true;
    leadership.heard_in_window.insert(from);
}

fn command_of(owner: ProposalOwner, operation: Operation) -> Command {
    Command::Operation {
        proxy: owner.proxy,
        request_id: owner.request_id,
        operation,
    }
}
