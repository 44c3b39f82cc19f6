//! Linearizable reads without a log entry (`docs/protocol.md` §9.2; etcd's ReadIndex, the Raft
//! thesis §6.4): a leader answers a `Get` or a `Range` from its own state once a quorum
//! confirmed, after the read arrived, that it still leads.
//!
//! Why it is linearizable: the leader's commit index covers every slot chosen before the `Get`
//! arrived — it committed every slot phase 1 re-proposed (`phase_one_last_slot`), and whatever a
//! newer leader chooses needs promises from a quorum, which meets the quorum that acknowledged
//! this ballot's heartbeat after the `Get` arrived, so that choice comes later. A round's
//! acknowledgements count only for reads that arrived before the round started (the echoed
//! `heartbeat_sequence` tells), only from active followers (§4.3), at this ballot. No clock: a
//! leader stopped by a pause confirms nothing until a quorum answers it again.
//!
//! Reads that arrive while a round is in flight wait for the next one, which starts when that
//! round is confirmed or the heartbeat timer fires: one round serves a batch.

use crate::config::Bug;
use crate::kv_types::ClientOperation;
use crate::message::{Endpoint, Message};
use crate::state::{PendingRead, Role};
use crate::step::Step;
use crate::types::{HeartbeatSequence, NodeId, ProposeError, RequestId};

impl Step<'_> {
    /// §9.2: whether the leader `node` serves `Get`s without a log entry: once it committed
    /// every slot its phase 1 re-proposed (before, its commit index may miss what a predecessor
    /// chose, and `Get`s go through the log).
    pub fn serves_reads(&self, node: NodeId) -> bool {
        let state = &self.state.masters[node as usize];
        match &state.role {
            // Seeded bug `read-before-own-ballot-commit`: the phase-1 condition is skipped.
            Role::Leader(_) if self.config.has(Bug::ReadBeforeOwnBallotCommit) => true,
            Role::Leader(leader) => state.commit_index >= leader.phase_one_last_slot,
            _ => false,
        }
    }

    /// §9.2 `ReadIndex`: the `Get` waits for the first read round started after now; one starts
    /// at once unless a round is in flight for earlier reads, and every read arriving meanwhile
    /// shares the next one. At most `reads_waiting_max` reads wait; one more is `Overloaded`.
    pub fn register_read(
        &mut self,
        node: NodeId,
        request_id: RequestId,
        operation: ClientOperation,
    ) {
        let reads_waiting_max = self.config.reads_waiting_max as usize;
        let Role::Leader(leader) = &self.state.masters[node as usize].role else {
            return;
        };
        if leader.reads.len() >= reads_waiting_max {
            let reply = self.propose_reply(request_id, Err(ProposeError::Overloaded));
            self.send(Endpoint::Master(node), Endpoint::Proxy, reply);
            return;
        }
        let Role::Leader(leader) = &mut self.state.masters[node as usize].role else {
            return;
        };
        let current = leader.heartbeat_sequence;
        let round_in_flight = leader
            .reads
            .values()
            .any(|read| read.heartbeat_sequence == current);
        let read = PendingRead {
            operation,
            heartbeat_sequence: current + 1,
        };
        leader.reads.insert(request_id, read);
        if !round_in_flight {
            self.start_read_round(node);
            self.confirm_reads(node);
        }
    }

    /// A new read round: the next `heartbeat_sequence`, to every active follower.
    pub fn start_read_round(&mut self, node: NodeId) {
        let state = &mut self.state.masters[node as usize];
        let commit_index = state.commit_index;
        let Role::Leader(leader) = &mut state.role else {
            return;
        };
        leader.heartbeat_sequence += 1;
        leader.read_acknowledged = Default::default();
        let heartbeat = Message::Heartbeat {
            ballot: leader.ballot,
            commit_index,
            heartbeat_sequence: leader.heartbeat_sequence,
        };
        let active: Vec<NodeId> = leader.active.iter().collect();
        self.send_to_followers(node, active, &heartbeat);
    }

    /// Whether a read waits whose round `waits_for` accepts (given the leader's current round).
    fn has_read(
        &self,
        node: NodeId,
        waits_for: impl Fn(HeartbeatSequence, HeartbeatSequence) -> bool,
    ) -> bool {
        self.state.masters[node as usize]
            .leader_state()
            .is_some_and(|leader| {
                leader
                    .reads
                    .values()
                    .any(|read| waits_for(read.heartbeat_sequence, leader.heartbeat_sequence))
            })
    }

    /// Whether reads wait for the current round or an earlier one: only then does an
    /// acknowledgement of the current round count (and only then is it kept in the state).
    pub fn reads_in_flight(&self, node: NodeId) -> bool {
        self.has_read(node, |read, current| read <= current)
    }

    /// Whether reads wait for a round not started yet (the heartbeat timer starts it).
    pub fn reads_waiting(&self, node: NodeId) -> bool {
        self.has_read(node, |read, current| read > current)
    }

    /// With a quorum (the leader and the active followers that acknowledged the current round),
    /// answers every read of this round or earlier from the committed state, then starts the
    /// next round if reads wait for it.
    pub fn confirm_reads(&mut self, node: NodeId) {
        let quorum = self.quorum_of(node);
        let state = &mut self.state.masters[node as usize];
        let Role::Leader(leader) = &mut state.role else {
            return;
        };
        if leader.read_acknowledged.len() + 1 < quorum {
            return;
        }
        let current = leader.heartbeat_sequence;
        let confirmed: Vec<RequestId> = leader
            .reads
            .iter()
            .filter(|(_, read)| read.heartbeat_sequence <= current)
            .map(|(request_id, _)| *request_id)
            .collect();
        if confirmed.is_empty() {
            return;
        }
        leader.read_acknowledged = Default::default();
        let commit_index = state.commit_index;
        let reads: Vec<(RequestId, PendingRead)> = confirmed
            .into_iter()
            .filter_map(|request_id| Some((request_id, leader.reads.remove(&request_id)?)))
            .collect();
        let mut store = self.state.store_through(self.config, node, commit_index);
        let mut replies = Vec::new();
        for (request_id, read) in reads {
            let result = store.apply_client(&read.operation);
            self.check_served(&store, &read.operation, &result);
            self.lease_read_answered(node, &read.operation, &result);
            replies.push(self.propose_reply(request_id, Ok(result)));
        }
        for reply in replies {
            self.send(Endpoint::Master(node), Endpoint::Proxy, reply);
        }
        if self.reads_waiting(node) {
            self.start_read_round(node);
        }
    }
}
