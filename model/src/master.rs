//! The masters' handlers, one per step of `docs/protocol.md` §11: election (§3, §6), replication
//! (§4), heartbeats and eviction (§5), rejoin and catch-up (§6.3), pauses (§7) and crashes (§8).
//!
//! Why it is safe: a master never promises or accepts below `promised`, which is durable; a
//! leader's phase 1 covers every slot above its commit point and re-proposes the highest-ballot
//! entry it learns of; a slot is chosen only with a quorum of the *static* configuration; a
//! follower commits only entries of its leader's ballot. Eviction, pauses and pre-votes change
//! who is asked, never how many must agree.

use crate::config::Bug;
use crate::kv_types::ClientOperation;
use crate::message::{Endpoint, Entries, Message};
use crate::state::{LeaderState, Log, Role};
use crate::step::Step;
use crate::types::{
    Ballot, Command, Entry, HeartbeatSequence, NodeId, NodeSet, ProposeError, RequestId, Slot,
};
use std::collections::BTreeMap;

fn master(node: NodeId) -> Endpoint {
    Endpoint::Master(node)
}

impl Step<'_> {
    /// Quorum the leader `node` waits for. Always the static one, except under the seeded bug.
    pub(crate) fn quorum_of(&self, node: NodeId) -> usize {
        match self.state.masters[node as usize].leader_state() {
            // Seeded bug `evicted-ack-counts`: a majority of the leader and its active set.
            Some(leader) if self.config.has(Bug::EvictedAckCounts) => {
                let members = leader.active.len() + 1;
                members / 2 + 1
            }
            _ => self.config.quorum(),
        }
    }

    /// §6.2: grant only without a leader heard recently and for a newer ballot.
    pub fn handle_pre_vote(&mut self, node: NodeId, from: NodeId, ballot: Ballot) {
        let state = &self.state.masters[node as usize];
        let (granted, leader) = match &state.role {
            Role::Leader(leader) => (false, Some(leader.ballot)),
            _ if !state.heard_from_leader && ballot > state.promised => (true, None),
            _ if !state.heard_from_leader => {
                let promised = state.promised;
                self.send(
                    master(node),
                    master(from),
                    Message::Nack { ballot, promised },
                );
                return;
            }
            _ => (false, state.leader),
        };
        let reply = Message::PreVoteReply {
            ballot,
            granted,
            leader,
        };
        self.send(master(node), master(from), reply);
    }

    /// §6.2–6.3: a quorum of grants starts phase 1; a refusal naming a leader starts a rejoin.
    pub fn handle_pre_vote_reply(
        &mut self,
        node: NodeId,
        from: NodeId,
        ballot: Ballot,
        granted: bool,
        leader: Option<Ballot>,
    ) {
        let quorum = self.config.quorum();
        let state = &mut self.state.masters[node as usize];
        let Role::PreCandidate {
            ballot: asked,
            grants,
        } = &mut state.role
        else {
            return;
        };
        if *asked != ballot {
            return;
        }
        if granted {
            grants.insert(from);
            if grants.len() + 1 >= quorum {
                self.become_candidate(node, ballot);
            }
            return;
        }
        // A refusal naming this master's own old ballot (it was deposed; the sender has not
        // heard yet) says nothing about who leads: ignored.
        let Some(leader) = leader.filter(|leader| *leader >= state.promised && leader.node != node)
        else {
            return;
        };
        // Followed in memory only: a refusal is no promise, so `promised` stays (§5.2). The
        // `Rejoin` is outstanding, like a gap's (§6.3).
        state.role = Role::Follower;
        if state.leader != Some(leader) {
            state.forget_leader();
        }
        state.leader = Some(leader);
        state.rejoin_requested = true;
        let rejoin = Message::Rejoin {
            ballot: leader,
            commit_index: state.commit_index,
        };
        self.send(master(node), master(leader.node), rejoin);
    }

    /// §3.1 `BecomeCandidate`: persist the ballot, then send `Prepare`.
    fn become_candidate(&mut self, node: NodeId, ballot: Ballot) {
        self.write_promised(node, ballot);
        let state = &mut self.state.masters[node as usize];
        state.leader = None;
        state.role = Role::Candidate {
            ballot,
            promises: NodeSet::default(),
            entries: Log::new(),
        };
        let prepare = Message::Prepare {
            ballot,
            commit_index: state.commit_index,
        };
        for other in (0..self.config.masters).filter(|other| *other != node) {
            self.send_after_write(node, master(other), prepare.clone());
        }
    }

    /// §3.2: promise a newer ballot with every accepted entry above the candidate's commit index.
    pub fn handle_prepare(
        &mut self,
        node: NodeId,
        from: NodeId,
        ballot: Ballot,
        commit_index: Slot,
    ) {
        let promised = self.state.masters[node as usize].promised;
        if ballot <= promised {
            self.send(
                master(node),
                master(from),
                Message::Nack { ballot, promised },
            );
            return;
        }
        self.step_down(node, Some(ballot));
        self.write_promised(node, ballot);
        let state = &self.state.masters[node as usize];
        let promise = Message::Promise {
            ballot,
            commit_index: state.commit_index,
            entries: state.entries_above(commit_index),
        };
        self.send_after_write(node, master(from), promise);
    }

    /// §3.4: gather promises; with a quorum, `BecomeLeader`.
    pub fn handle_promise(
        &mut self,
        node: NodeId,
        from: NodeId,
        ballot: Ballot,
        reported: Entries,
    ) {
        let quorum = self.config.quorum();
        let state = &mut self.state.masters[node as usize];
        let Role::Candidate {
            ballot: own,
            promises,
            entries,
        } = &mut state.role
        else {
            return;
        };
        if *own != ballot {
            return;
        }
        promises.insert(from);
        for (slot, entry) in reported {
            let best = entries.entry(slot).or_insert_with(|| entry.clone());
            if entry.ballot > best.ballot {
                *best = entry;
            }
        }
        if promises.len() + 1 >= quorum {
            let entries = std::mem::take(entries);
            self.become_leader(node, ballot, entries);
        }
    }

    /// §3.4: re-propose, in the new ballot, the highest-ballot entry of every slot above the
    /// commit point (or `Noop`), to every other master.
    fn become_leader(&mut self, node: NodeId, ballot: Ballot, reported: Log) {
        let masters = self.config.masters;
        let state = &mut self.state.masters[node as usize];
        let mut others = NodeSet::all(masters);
        others.remove(node);
        let last = reported
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(state.last_slot());
        // The leader's own acceptance of each re-proposal counts once its write is durable.
        let mut accepted_by = BTreeMap::new();
        let mut accepts = Vec::new();
        for slot in state.commit_index.saturating_add(1)..=last {
            let own = state.log.get(&slot).cloned();
            let best = [own, reported.get(&slot).cloned()]
                .into_iter()
                .flatten()
                .max_by_key(|entry| entry.ballot);
            let command = best.map_or(Command::Noop, |entry| entry.command);
            accepted_by.insert(slot, NodeSet::default());
            accepts.push((slot, command));
        }
        state.leader = Some(ballot);
        state.role = Role::Leader(LeaderState {
            ballot,
            active: others,
            evicted: NodeSet::default(),
            missed_heartbeats: vec![0; masters as usize],
            // §5.1: the first heartbeat period of a new leader counts as acknowledged by every
            // follower (nobody could answer a heartbeat not yet sent).
            acknowledged: others,
            heard: NodeSet::default(),
            accepted_by,
            proposals: BTreeMap::new(),
            evictions: 0,
            rejoins: 0,
            commit_at_last_heartbeat: state.commit_index,
            last_slot_at_last_heartbeat: state.commit_index,
            phase_one_last_slot: last.max(state.commit_index),
            heartbeat_sequence: 0,
            read_acknowledged: NodeSet::default(),
            reads: BTreeMap::new(),
        });
        let commit_index = state.commit_index;
        self.leases_at_election(node, ballot);
        for (slot, command) in accepts {
            let entry = Entry {
                ballot,
                command: command.clone(),
            };
            self.write_entry(node, slot, entry);
            self.own_accept_after_write(node, ballot, slot);
            let accept = Message::Accept {
                ballot,
                slot,
                command,
                commit_index,
            };
            self.broadcast(node, &accept);
        }
    }

    /// §4.2: accept at `ballot >= promised`, persist, then answer `Accepted`.
    pub fn handle_accept(
        &mut self,
        node: NodeId,
        from: NodeId,
        (ballot, slot, command, commit_index): (Ballot, Slot, Command, Slot),
    ) {
        if self.refuse_older_ballot(node, from, ballot) {
            return;
        }
        self.adopt_leader(node, ballot, true);
        if slot > self.state.masters[node as usize].commit_index {
            self.write_entry(node, slot, Entry { ballot, command });
        }
        self.send_after_write(node, master(from), Message::Accepted { ballot, slot });
        self.follower_commit(node, ballot, commit_index);
    }

    /// §4.3: count an `Accepted` of the current ballot from an active follower.
    pub fn handle_accepted(&mut self, node: NodeId, from: NodeId, ballot: Ballot, slot: Slot) {
        let Role::Leader(leader) = &mut self.state.masters[node as usize].role else {
            return;
        };
        if leader.ballot != ballot || !leader.active.contains(from) {
            return;
        }
        leader.acknowledged.insert(from);
        leader.heard.insert(from);
        if let Some(accepted) = leader.accepted_by.get_mut(&slot) {
            accepted.insert(from);
            self.advance_leader_commit(node);
        }
    }

    /// §4.4 `CommitAdvance`: commit the chosen prefix, answer owned proposals, send `Commit`.
    pub(crate) fn advance_leader_commit(&mut self, node: NodeId) {
        let quorum = self.quorum_of(node);
        let static_quorum = self.config.quorum();
        let state = &mut self.state.masters[node as usize];
        let Role::Leader(leader) = &mut state.role else {
            return;
        };
        let mut committed = Vec::new();
        while let Some(accepted) = leader.accepted_by.get(&(state.commit_index + 1)).copied() {
            if accepted.len() < quorum {
                break;
            }
            if accepted.len() < static_quorum {
                self.state.ghost.quorum_integrity_violated = true;
            }
            state.commit_index += 1;
            leader.accepted_by.remove(&state.commit_index);
            let owner = leader.proposals.remove(&state.commit_index);
            committed.push((state.commit_index, owner));
        }
        if committed.is_empty() {
            return;
        }
        let (ballot, commit_index, active) = (leader.ballot, state.commit_index, leader.active);
        for (slot, owner) in committed {
            self.record_commit(node, slot);
            if let Some(request_id) = owner {
                if let Some(result) = self.state.result_at(self.config, node, slot) {
                    let reply = self.propose_reply(request_id, Ok(result));
                    self.send(master(node), Endpoint::Proxy, reply);
                }
            }
        }
        if self.config.explicit_commit {
            for follower in active.iter() {
                self.send(
                    master(node),
                    master(follower),
                    Message::Commit {
                        ballot,
                        commit_index,
                    },
                );
            }
        }
    }

    /// §3.5, §4.6: a refusal naming a newer ballot makes a candidate or leader step down.
    /// §6.2: a refused pre-vote learns the newer round (in memory only) and follows nobody.
    /// §4.2, §5.2: a message of a ballot older than `promised` is answered `Nack` and otherwise
    /// ignored. True if it was refused.
    fn refuse_older_ballot(&mut self, node: NodeId, from: NodeId, ballot: Ballot) -> bool {
        let promised = self.state.masters[node as usize].promised;
        if ballot >= promised {
            return false;
        }
        self.send(
            master(node),
            master(from),
            Message::Nack { ballot, promised },
        );
        true
    }

    /// Every `Nack` teaches the round it names; only one naming a strictly higher promise than
    /// the refused ballot, which is still this master's own, makes it step down (§3.5).
    pub fn handle_nack(&mut self, node: NodeId, refused: Ballot, promised: Ballot) {
        let state = &mut self.state.masters[node as usize];
        state.round_seen = state.round_seen.max(promised.round);
        if promised <= refused {
            return;
        }
        let own = match &state.role {
            Role::Follower => return,
            Role::PreCandidate { ballot, .. } | Role::Candidate { ballot, .. } => *ballot,
            Role::Leader(leader) => leader.ballot,
        };
        if refused == own {
            self.step_down(node, None);
        }
    }

    /// §4.4: learn the commit index from the leader.
    pub fn handle_commit(
        &mut self,
        node: NodeId,
        from: NodeId,
        ballot: Ballot,
        commit_index: Slot,
    ) {
        if self.refuse_older_ballot(node, from, ballot) {
            return;
        }
        self.adopt_leader(node, ballot, false);
        self.follower_commit(node, ballot, commit_index);
    }

    /// §4.5: commit only entries accepted in the leader's ballot; on a gap ask for catch-up.
    fn follower_commit(&mut self, node: NodeId, ballot: Ballot, commit_index: Slot) {
        loop {
            let state = &mut self.state.masters[node as usize];
            if state.commit_index >= commit_index {
                return;
            }
            let next = state.commit_index + 1;
            if state.log.get(&next).map(|entry| entry.ballot) != Some(ballot) {
                // §6.3: one `Rejoin` outstanding until its `CatchUp` or a new leader. (The core
                // also asks again after an election timeout of silence; time is abstract here.)
                if state.rejoin_requested {
                    return;
                }
                state.rejoin_requested = true;
                let rejoin = Message::Rejoin {
                    ballot,
                    commit_index: state.commit_index,
                };
                self.send(master(node), master(ballot.node), rejoin);
                return;
            }
            state.commit_index = next;
            self.record_commit(node, next);
        }
    }

    /// §5.2: a heartbeat of a current ballot resets the election timer and is acknowledged.
    /// The acknowledgement echoes the read round (§9.2).
    pub fn handle_heartbeat(
        &mut self,
        node: NodeId,
        from: NodeId,
        (ballot, commit_index, heartbeat_sequence): (Ballot, Slot, HeartbeatSequence),
    ) {
        if self.refuse_older_ballot(node, from, ballot) {
            return;
        }
        self.adopt_leader(node, ballot, false);
        self.follower_commit(node, ballot, commit_index);
        let commit_index = self.state.masters[node as usize].commit_index;
        self.send(
            master(node),
            master(from),
            Message::HeartbeatAck {
                ballot,
                commit_index,
                heartbeat_sequence,
            },
        );
    }

    /// §5.1: an acknowledgement of the current ballot from an active follower. Of the current
    /// read round, it may confirm the reads waiting for it (§9.2).
    pub fn handle_heartbeat_ack(
        &mut self,
        node: NodeId,
        from: NodeId,
        ballot: Ballot,
        heartbeat_sequence: HeartbeatSequence,
    ) {
        let Role::Leader(leader) = &mut self.state.masters[node as usize].role else {
            return;
        };
        if leader.ballot != ballot || !leader.active.contains(from) {
            return;
        }
        leader.acknowledged.insert(from);
        leader.heard.insert(from);
        if heartbeat_sequence == leader.heartbeat_sequence && self.reads_in_flight(node) {
            let Role::Leader(leader) = &mut self.state.masters[node as usize].role else {
                return;
            };
            leader.read_acknowledged.insert(from);
            self.confirm_reads(node);
        }
    }

    /// §6.3: answer a rejoin for the current ballot with what the follower misses.
    pub fn handle_rejoin(
        &mut self,
        node: NodeId,
        from: NodeId,
        ballot: Ballot,
        commit_index: Slot,
    ) {
        let state = &self.state.masters[node as usize];
        match state.leader_state() {
            Some(leader) if leader.ballot == ballot => {}
            _ => return,
        }
        let entries = state.entries_above(commit_index);
        let catch_up = Message::CatchUp {
            ballot,
            commit_index: state.commit_index,
            entries,
        };
        self.send(master(node), master(from), catch_up);
    }

    /// §6.4: persist what `CatchUp` carries, commit up to the leader's commit index, acknowledge.
    pub fn handle_catch_up(
        &mut self,
        node: NodeId,
        from: NodeId,
        ballot: Ballot,
        commit_index: Slot,
        entries: Entries,
    ) {
        if self.refuse_older_ballot(node, from, ballot) {
            return;
        }
        self.adopt_leader(node, ballot, true);
        let state = &mut self.state.masters[node as usize];
        state.rejoin_requested = false;
        let old_commit = state.commit_index;
        for (slot, entry) in entries.into_iter().filter(|(slot, _)| *slot > old_commit) {
            self.write_entry(node, slot, entry);
        }
        let state = &mut self.state.masters[node as usize];
        let new_commit = commit_index.max(old_commit);
        state.commit_index = new_commit;
        for slot in old_commit + 1..=new_commit {
            self.record_commit(node, slot);
        }
        let ack = Message::CatchUpAck {
            ballot,
            commit_index: new_commit,
        };
        self.send_after_write(node, master(from), ack);
    }

    /// §6.4 `Readmit`: back into the active set, with the uncommitted slots re-sent.
    pub fn handle_catch_up_ack(&mut self, node: NodeId, from: NodeId, ballot: Ballot) {
        let state = &mut self.state.masters[node as usize];
        let Role::Leader(leader) = &mut state.role else {
            return;
        };
        if leader.ballot != ballot {
            return;
        }
        if leader.evicted.contains(from) {
            leader.evicted.remove(from);
            leader.rejoins = leader.rejoins.saturating_add(1);
        }
        leader.active.insert(from);
        leader.missed_heartbeats[from as usize] = 0;
        leader.acknowledged.insert(from);
        leader.heard.insert(from);
        let commit_index = state.commit_index;
        let resend: Vec<(Slot, Command)> = leader
            .accepted_by
            .keys()
            .filter_map(|slot| {
                state
                    .log
                    .get(slot)
                    .map(|entry| (*slot, entry.command.clone()))
            })
            .collect();
        for (slot, command) in resend {
            let accept = Message::Accept {
                ballot,
                slot,
                command,
                commit_index,
            };
            self.send(master(node), master(from), accept);
        }
    }

    /// §9.3: a leader with room appends the proposal; others refuse. §9.2: a `Get` or
    /// `Range` at a leader that committed its phase 1 is served without a log entry.
    pub fn handle_propose(
        &mut self,
        node: NodeId,
        request_id: RequestId,
        operation: ClientOperation,
    ) {
        if self.keep_alive_without_log_entry(node, &operation) {
            self.register_read(node, request_id, operation);
            return;
        }
        let stale_read = self.config.has(Bug::StaleLeaderRead) && operation.is_read();
        if operation.is_read() && !stale_read && self.serves_reads(node) {
            self.register_read(node, request_id, operation);
            return;
        }
        let pipeline_slots_max = self.config.pipeline_slots_max as usize;
        let state = &self.state.masters[node as usize];
        let hint = state
            .leader
            .map(|ballot| ballot.node)
            .filter(|leader| *leader != node);
        let refusal = match &state.role {
            Role::Leader(leader) if leader.accepted_by.len() >= pipeline_slots_max => {
                ProposeError::Overloaded
            }
            // Seeded bug `stale-leader-read`: a read answered from local state at once,
            // without confirming that it still leads.
            Role::Leader(_) if stale_read => {
                let commit_index = state.commit_index;
                let mut store = self.state.store_through(self.config, node, commit_index);
                let reply = self.propose_reply(request_id, Ok(store.apply_client(&operation)));
                self.send(master(node), Endpoint::Proxy, reply);
                return;
            }
            Role::Leader(_) => {
                self.append_proposal(node, request_id, operation);
                return;
            }
            _ => ProposeError::NotLeader { leader_hint: hint },
        };
        let reply = self.propose_reply(request_id, Err(refusal));
        self.send(master(node), Endpoint::Proxy, reply);
    }

    /// §4.1: the leader appends the proposal in the next slot, sends `Accept` now and counts
    /// itself once its write is durable (§2.1).
    fn append_proposal(&mut self, node: NodeId, request_id: RequestId, operation: ClientOperation) {
        let command = match operation {
            ClientOperation::Register(operation) => Command::Operation {
                request_id,
                operation,
            },
            ClientOperation::Kv(operation) => Command::Kv {
                request_id,
                operation,
            },
        };
        self.append_command(node, command, Some(request_id));
    }

    /// §4.1: the leader appends `command` in the next slot (answering `owner` once it is
    /// applied, if it has one), sends `Accept` now and counts itself once its write is
    /// durable (§2.1).
    pub(crate) fn append_command(
        &mut self,
        node: NodeId,
        command: Command,
        owner: Option<RequestId>,
    ) {
        let state = &mut self.state.masters[node as usize];
        let slot = state.last_slot() + 1;
        let commit_index = state.commit_index;
        let Role::Leader(leader) = &mut state.role else {
            return;
        };
        let (ballot, active) = (leader.ballot, leader.active);
        leader.accepted_by.insert(slot, NodeSet::default());
        if let Some(request_id) = owner {
            leader.proposals.insert(slot, request_id);
        }
        let entry = Entry {
            ballot,
            command: command.clone(),
        };
        self.write_entry(node, slot, entry);
        self.own_accept_after_write(node, ballot, slot);
        for follower in active.iter() {
            let accept = Message::Accept {
                ballot,
                slot,
                command: command.clone(),
                commit_index,
            };
            self.send(master(node), master(follower), accept);
        }
        self.advance_leader_commit(node);
    }
}
