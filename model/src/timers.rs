//! The masters' timers (`on_election_timeout`, `on_heartbeat_timeout`,
//! `on_check_quorum_timeout`) and the host's faults on a master (pause, resume, crash, restart).
//!
//! Time is abstract: a timer may fire whenever its guard holds, as often as the preset's budget
//! allows. What the protocol needs from time is order, not duration: a resumed leader's overdue
//! check-quorum fires before it handles any message (§7.2), and an evicted follower has missed
//! `eviction_threshold` heartbeats, counted one per `HeartbeatTimeout`.

use crate::config::Bug;
use crate::message::{Endpoint, Message};
use crate::state::{Master, Role};
use crate::step::Step;
use crate::types::{Ballot, NodeId, NodeSet};

/// The ballot `node` would ask pre-votes for: one round above anything it has seen.
pub fn next_ballot(state: &Master, node: NodeId) -> Ballot {
    let seen = state
        .leader
        .map_or(0, |leader| leader.round)
        .max(state.promised.round)
        .max(state.round_seen);
    Ballot {
        round: seen.saturating_add(1),
        node,
    }
}

impl Step<'_> {
    /// §6.1 `BecomePreCandidate`: ask every other master for a pre-vote; `promised` unchanged.
    pub fn on_election_timeout(&mut self, node: NodeId) {
        let ballot = next_ballot(&self.state.masters[node as usize], node);
        let state = &mut self.state.masters[node as usize];
        state.heard_from_leader = false;
        // §6.1: a master whose election timer fired no longer believes in its leader (its round
        // still counts for the next ballot).
        state.forget_leader();
        state.role = Role::PreCandidate {
            ballot,
            grants: NodeSet::default(),
        };
        self.broadcast(node, &Message::PreVote { ballot });
    }

    /// §5.1: count missed heartbeats, `Evict` at the threshold, heartbeat the rest (starting the
    /// next read round if reads wait for one, §9.2).
    pub fn on_heartbeat_timeout(&mut self, node: NodeId) {
        let threshold = self.config.eviction_threshold;
        let reads_waiting = self.reads_waiting(node);
        let state = &mut self.state.masters[node as usize];
        let commit_index = state.commit_index;
        let Role::Leader(leader) = &mut state.role else {
            return;
        };
        let ballot = leader.ballot;
        let mut evicted = Vec::new();
        let mut heartbeats = Vec::new();
        for follower in leader.active.iter() {
            let missed = &mut leader.missed_heartbeats[follower as usize];
            if leader.acknowledged.contains(follower) {
                *missed = 0;
            } else {
                *missed = missed.saturating_add(1);
            }
            if *missed >= threshold {
                evicted.push((follower, *missed));
            } else {
                heartbeats.push(follower);
            }
        }
        leader.acknowledged = NodeSet::default();
        // §9.2: reads wait for a round not started yet: this heartbeat starts it.
        if reads_waiting {
            leader.heartbeat_sequence += 1;
            leader.read_acknowledged = NodeSet::default();
        }
        let heartbeat_sequence = leader.heartbeat_sequence;
        for (follower, missed) in &evicted {
            leader.active.remove(*follower);
            leader.read_acknowledged.remove(*follower);
            leader.evicted.insert(*follower);
            leader.evictions = leader.evictions.saturating_add(1);
            if *missed < threshold {
                self.state.ghost.early_eviction = true;
            }
        }
        for (follower, _) in evicted {
            self.close_connection(node, follower);
        }
        let heartbeat = Message::Heartbeat {
            ballot,
            commit_index,
            heartbeat_sequence,
        };
        self.send_to_followers(node, heartbeats, &heartbeat);
        self.retransmit(node);
    }

    /// §4.7: when the commit index did not move during the last heartbeat period, send `Accept`
    /// again for every slot that was already uncommitted when the timer last fired, to each
    /// active follower that has not acknowledged it (a leader's `Accept` never waits for its own
    /// disk, §2.1, so every earlier copy has left).
    fn retransmit(&mut self, node: NodeId) {
        let last_slot = self.state.masters[node as usize].last_slot();
        let state = &mut self.state.masters[node as usize];
        let Role::Leader(leader) = &mut state.role else {
            return;
        };
        let stalled = leader.commit_at_last_heartbeat == state.commit_index;
        let outstanding_until = leader.last_slot_at_last_heartbeat;
        leader.commit_at_last_heartbeat = state.commit_index;
        leader.last_slot_at_last_heartbeat = last_slot;
        if !stalled {
            return;
        }
        let (ballot, commit_index) = (leader.ballot, state.commit_index);
        let mut accepts = Vec::new();
        for (slot, accepted) in leader.accepted_by.range(..=outstanding_until) {
            let Some(entry) = state.log.get(slot) else {
                continue;
            };
            for follower in leader
                .active
                .iter()
                .filter(|follower| !accepted.contains(*follower))
            {
                let accept = Message::Accept {
                    ballot,
                    slot: *slot,
                    command: entry.command.clone(),
                    commit_index,
                };
                accepts.push((follower, accept));
            }
        }
        for (follower, accept) in accepts {
            self.send(Endpoint::Master(node), Endpoint::Master(follower), accept);
        }
    }

    /// §5.4 check-quorum: step down without `quorum - 1` followers heard in the window.
    pub fn on_check_quorum_timeout(&mut self, node: NodeId) {
        let quorum = self.config.quorum();
        let state = &mut self.state.masters[node as usize];
        state.check_quorum_overdue = false;
        let Role::Leader(leader) = &mut state.role else {
            return;
        };
        let heard = NodeSet(leader.heard.0 & leader.active.0).len();
        leader.heard = NodeSet::default();
        if heard + 1 < quorum {
            self.step_down(node, None);
        }
    }

    /// §6.3: an election timeout passed since the outstanding `Rejoin` was sent and no
    /// `CatchUp` came (the `Rejoin` or its answer was lost): the next message showing a gap asks
    /// again. Nothing is sent now.
    pub fn on_rejoin_wait_expired(&mut self, node: NodeId) {
        self.state.masters[node as usize].rejoin_requested = false;
    }

    /// §7.1: the master stops; its links keep what is sent to it.
    pub fn pause(&mut self, node: NodeId) {
        self.state.masters[node as usize].paused = true;
    }

    /// §7.2: timers are overdue; a leader heard nobody during the pause and must check-quorum
    /// before anything else.
    pub fn resume(&mut self, node: NodeId) {
        let state = &mut self.state.masters[node as usize];
        state.paused = false;
        if let Role::Leader(leader) = &mut state.role {
            leader.heard = NodeSet::default();
            state.check_quorum_overdue = true;
        }
    }

    /// §8: volatile state is lost, and so is every connection of the master. What the proxy
    /// sent it and it had not handled stays on the proxy's link: the proxy's host learns that
    /// the connection closed and answers those requests itself (`ForwardLost`, or
    /// `RequestTimeout` early, §9.4.6) — and replay applies a crash only at the restart, after
    /// the proxy may already have sent the crashed master more. A subscription is not kept on
    /// the link: it ends, and the proxy's host tells the proxy (`ConnectionClosed`, §17.1).
    pub fn crash(&mut self, node: NodeId) {
        self.lose_pending_writes(node);
        let endpoint = Endpoint::Master(node);
        let survives = |(source, destination): &(Endpoint, Endpoint)| {
            (*source != endpoint && *destination != endpoint) || *source == Endpoint::Proxy
        };
        self.state.network.retain(|link, _| survives(link));
        self.state
            .closed_connection_messages
            .retain(|link, _| survives(link));
        // The proxy's subscription here goes with the connection, and its host learns it
        // (§17.1).
        self.subscription_connection_lost(node);
        let state = &mut self.state.masters[node as usize];
        state.crashed = true;
        state.paused = false;
        state.role = Role::Follower;
        state.leader = None;
        state.commit_index = 0;
        state.heard_from_leader = false;
        state.check_quorum_overdue = false;
        state.round_seen = 0;
        state.rejoin_requested = false;
    }

    /// §8: rebuilt from durable state: `promised` and the log (no snapshot in the model).
    pub fn restart(&mut self, node: NodeId) {
        let forget_promise = self.config.has(Bug::ForgetPromise);
        let state = &mut self.state.masters[node as usize];
        state.crashed = false;
        // Seeded bug `forget-promise`: the promised ballot is not loaded from storage.
        if forget_promise {
            state.promised = Ballot::ZERO;
        }
    }
}
