//! Linearizable reads without a log slot (`docs/protocol.md` §9.2; etcd's ReadIndex, the Raft
//! thesis §6.4): a leader answers a `Get` from its applied state once a quorum confirmed, after
//! the `Get` arrived, that it still leads. No fsync, no slot, and no clock: a leader stopped by a
//! pause confirms nothing until a quorum answers it again.
//!
//! Why it is linearizable: the leader's commit index covers every slot chosen before the `Get`
//! arrived — it committed every slot its phase 1 re-proposed (`phase_one_last_slot`), and a newer
//! leader can only choose after promises from a quorum, which meets the quorum that acknowledged
//! this ballot's heartbeat after the `Get` arrived. A round's acknowledgements count only for
//! reads that arrived before the round started (the echoed `heartbeat_sequence` tells), only
//! from active followers (§4.3), at this ballot.
//!
//! Reads that arrive while a round is in flight wait for the next one, which starts as soon as
//! that round is confirmed or the heartbeat timer fires: one round serves a batch.

use crate::kv::ReadOperation;
use crate::leader::ProposalOwner;
use crate::master::{Master, RoleState};
use crate::message::Message;
use crate::mutation::Mutation;
use crate::types::{HeartbeatSequence, MasterError, NodeId, Slot};

/// A `Get` or `Range` the leader serves by confirming its leadership instead of through the log (§9.2).
#[derive(Debug)]
pub(crate) struct PendingRead {
    pub(crate) owner: ProposalOwner,
    pub(crate) operation: ReadOperation,
    /// The commit index when it arrived: it is answered from a state at least this new.
    pub(crate) read_index: Slot,
    /// The read round that confirms it: the first started after it arrived.
    pub(crate) heartbeat_sequence: HeartbeatSequence,
}

impl Master {
    /// §9.2: whether this master, as Leader, serves `Get`s without a log slot: once it has
    /// committed every slot its phase 1 re-proposed. Before, its commit index may miss what a
    /// predecessor chose, and `Get`s go through the log.
    pub(crate) fn serves_reads(&self) -> bool {
        match &self.role {
            RoleState::Leader(leadership) => {
                // Planted bug: serve reads before the slots phase 1 re-proposed commit.
                self.planted(Mutation::ReadBeforeOwnBallotCommit)
                    || self.commit_index >= leadership.phase_one_last_slot
            }
            _ => false,
        }
    }

    /// §9.2 `ReadIndex`: the `Get` waits for the first read round started after now; one starts
    /// at once unless a round is in flight for earlier reads, and every read arriving meanwhile
    /// shares the next one. At most `reads_waiting_max` reads wait; one more is `Overloaded`.
    pub(crate) fn register_read(&mut self, owner: ProposalOwner, operation: ReadOperation) {
        let read_index = self.commit_index;
        let reads_waiting_max = self.config.reads_waiting_max;
        let RoleState::Leader(leadership) = &mut self.role else {
            unreachable!("only a Leader serves reads");
        };
        if leadership.reads.len() as u64 >= reads_waiting_max {
            self.counters.reads_refused += 1;
            self.reply(owner, Err(MasterError::Overloaded));
            return;
        }
        let current = leadership.heartbeat_sequence;
        let round_in_flight = leadership
            .reads
            .iter()
            .any(|read| read.heartbeat_sequence == current);
        leadership.reads.push_back(PendingRead {
            owner,
            operation,
            read_index,
            heartbeat_sequence: current + 1,
        });
        self.counters.reads += 1;
        if !round_in_flight {
            self.start_read_round();
            self.confirm_reads();
        }
    }

    /// A new read round: the next `heartbeat_sequence`, to every active follower, now.
    fn start_read_round(&mut self) {
        let commit_index = self.commit_index;
        let RoleState::Leader(leadership) = &mut self.role else {
            return;
        };
        leadership.heartbeat_sequence += 1;
        leadership.read_acknowledged.clear();
        let (ballot, heartbeat_sequence) = (leadership.ballot, leadership.heartbeat_sequence);
        let active: Vec<NodeId> = leadership.active.iter().copied().collect();
        for node in active {
            self.send(
                node,
                Message::Heartbeat {
                    ballot,
                    commit_index,
                    heartbeat_sequence,
                },
            );
        }
    }

    /// Whether reads wait for a round not started yet (the heartbeat timer starts it).
    pub(crate) fn reads_waiting(&self) -> bool {
        match &self.role {
            RoleState::Leader(leadership) => leadership
                .reads
                .iter()
                .any(|read| read.heartbeat_sequence > leadership.heartbeat_sequence),
            _ => false,
        }
    }

    /// An active follower acknowledged read round `heartbeat_sequence` of this ballot (the
    /// caller checked both): it may complete the current round's quorum, if reads wait for it.
    pub(crate) fn note_read_acknowledged(
        &mut self,
        from: NodeId,
        heartbeat_sequence: HeartbeatSequence,
    ) {
        let RoleState::Leader(leadership) = &mut self.role else {
            return;
        };
        let current = leadership.heartbeat_sequence;
        let reads_in_flight = leadership
            .reads
            .iter()
            .any(|read| read.heartbeat_sequence <= current);
        if heartbeat_sequence != current || !reads_in_flight {
            return;
        }
        leadership.read_acknowledged.insert(from);
        self.confirm_reads();
    }

    /// With a quorum (this leader and the active followers that acknowledged the current
    /// round), answers every read of this round or earlier from the applied state, then starts
    /// the next round if reads wait for it.
    pub(crate) fn confirm_reads(&mut self) {
        let quorum = self.quorum();
        let commit_index = self.commit_index;
        let limits = self.config.store_limits();
        let RoleState::Leader(leadership) = &mut self.role else {
            return;
        };
        let acknowledged = leadership
            .read_acknowledged
            .iter()
            .filter(|node| leadership.active.contains(node))
            .count() as u64;
        if acknowledged + 1 < quorum {
            return;
        }
        let current = leadership.heartbeat_sequence;
        leadership.read_acknowledged.clear();
        let (confirmed, waiting) = std::mem::take(&mut leadership.reads)
            .into_iter()
            .partition(|read| read.heartbeat_sequence <= current);
        leadership.reads = waiting;
        let confirmed: Vec<PendingRead> = confirmed.into_iter().collect();
        for read in confirmed {
            assert!(
                read.read_index <= commit_index,
                "a read is answered from a state at least as new as its read index"
            );
            let result = self.store.answer_read(&read.operation, limits);
            self.reply(read.owner, Ok(result));
        }
        if self.reads_waiting() {
            self.start_read_round();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PendingRead;

    /// The bound `docs/operations.md` sizes `reads_waiting_max` with: a waiting read's own
    /// bytes, its key's heap bytes apart.
    const PENDING_READ_BYTES_MAX: usize = 128;

    #[test]
    fn a_waiting_read_fits_its_memory_budget() {
        let bytes = std::mem::size_of::<PendingRead>();
        assert!(bytes <= PENDING_READ_BYTES_MAX, "{bytes} bytes");
    }
}
