//! One step in progress: the configuration, the state being changed, and the helpers every
//! handler shares (sending, committing, stepping down).
//!
//! A handler takes a `Step` and mutates its state; sending goes through `Step::send`, which is
//! where the network rules live: per-link FIFO (one connection's order; a closed connection's
//! messages in any order relative to the next one's), nothing reaches a crashed master
//! (connection refused), and a paused master sending anything is recorded for
//! `paused_sends_nothing`.

use crate::config::{Config, Delivery};
use crate::kv::KeyValueStore;
use crate::kv_types::ClientResult;
use crate::message::{Endpoint, Message};
use crate::state::{Role, State};
use crate::types::{Ballot, NodeId, ProposeError, RequestError, RequestId, Slot};

/// The configuration and the state a step changes.
pub struct Step<'a> {
    /// The model's parameters.
    pub config: &'a Config,
    /// The state, changed in place.
    pub state: &'a mut State,
    /// The master whose disk write this step opened, if any (`crate::disk`).
    pub(crate) write_opened: Option<NodeId>,
    /// The last store a commit of this step built, with its master and slot: a master that
    /// commits several slots in one step (a catch-up) applies each slot once (`crate::commit`).
    pub(crate) applied_store: Option<(NodeId, Slot, KeyValueStore)>,
}

impl<'a> Step<'a> {
    /// A step of `state` under `config`.
    pub fn new(config: &'a Config, state: &'a mut State) -> Step<'a> {
        Step {
            config,
            state,
            write_opened: None,
            applied_store: None,
        }
    }
}

impl Step<'_> {
    /// Puts `message` at the tail of the link `source → destination`.
    pub fn send(&mut self, source: Endpoint, destination: Endpoint, message: Message) {
        if let Endpoint::Master(node) = source {
            if self.state.masters[node as usize].paused {
                self.state.ghost.paused_sent = true;
            }
        }
        if let Endpoint::Master(node) = destination {
            // Masters' connections to a crashed master are refused: the message is lost. The
            // proxy's `Propose` waits on its link instead, where `ForwardLost` can give it
            // back (the proxy's host knows it never left, §9.4.6) or the restarted master
            // gets it.
            if self.state.masters[node as usize].crashed && source != Endpoint::Proxy {
                return;
            }
        }
        if let Endpoint::Client(client) = destination {
            // A client whose connection closed receives nothing (§17.4).
            if self.state.clients[client as usize].gone {
                return;
            }
        }
        self.state
            .network
            .entry((source, destination))
            .or_default()
            .push(message);
    }

    /// Sends `message` from `node` to each of `followers`, in order.
    pub fn send_to_followers(
        &mut self,
        node: NodeId,
        followers: impl IntoIterator<Item = NodeId>,
        message: &Message,
    ) {
        for follower in followers {
            self.send(
                Endpoint::Master(node),
                Endpoint::Master(follower),
                message.clone(),
            );
        }
    }

    /// Sends `message` from `node` to every other master.
    pub fn broadcast(&mut self, node: NodeId, message: &Message) {
        for other in 0..self.config.masters {
            if other != node {
                self.send(
                    Endpoint::Master(node),
                    Endpoint::Master(other),
                    message.clone(),
                );
            }
        }
    }

    /// The leader closes its connection to an evicted follower (§5.1). What it wrote to that
    /// connection cannot be taken back: it stays in flight, and the network may deliver it or
    /// lose it like any message (what the host still had queued and discards is such a loss,
    /// a `Drop`). The leader's next message to the follower goes on a new connection, so with
    /// per-link FIFO what is in flight now may arrive before or after it
    /// (`closed_connection_messages`; a superset of TCP, which keeps one connection's order).
    /// What the follower already sent may still arrive too (and counts for no quorum, §5.1).
    pub fn close_connection(&mut self, leader: NodeId, follower: NodeId) {
        if self.config.delivery != Delivery::PerLinkFifo {
            return;
        }
        let link = (Endpoint::Master(leader), Endpoint::Master(follower));
        if let Some(messages) = self.state.network.get(&link) {
            self.state
                .closed_connection_messages
                .insert(link, messages.len());
        }
    }

    /// Takes one `message` off the link `source → destination` (delivered or lost). Equal
    /// messages are interchangeable; with closed-connection messages at the link's head, a
    /// `message` equal to the head of the current connection is taken from there, so that an
    /// equal closed-connection copy keeps its freedom of order.
    pub fn take(&mut self, source: Endpoint, destination: Endpoint, message: &Message) {
        let link = (source, destination);
        let Some(messages) = self.state.network.get_mut(&link) else {
            return;
        };
        let closed = self
            .state
            .closed_connection_messages
            .get(&link)
            .copied()
            .unwrap_or(0);
        let index = if messages.get(closed) == Some(message) {
            Some(closed)
        } else {
            messages.iter().position(|queued| queued == message)
        };
        if let Some(index) = index {
            messages.remove(index);
            if index < closed {
                if closed == 1 {
                    self.state.closed_connection_messages.remove(&link);
                } else {
                    self.state
                        .closed_connection_messages
                        .insert(link, closed - 1);
                }
            }
        }
        if messages.is_empty() {
            self.state.network.remove(&link);
            self.state.closed_connection_messages.remove(&link);
        }
    }

    /// Records that `node` committed `slot`: the ghost `chosen` map is what `agreement` reads.
    /// Then what applying it does beyond the store (`crate::commit`).
    pub fn record_commit(&mut self, node: NodeId, slot: Slot) {
        let Some(entry) = self.state.masters[node as usize].log.get(&slot).cloned() else {
            return;
        };
        match self.state.ghost.chosen.get(&slot) {
            Some(command) if *command != entry.command => {
                self.state.ghost.agreement_violated = true
            }
            Some(_) => {}
            None => {
                self.state.ghost.chosen.insert(slot, entry.command.clone());
                self.lease_chosen(node, slot, &entry);
            }
        }
        self.applied(node, slot, &entry.command);
    }

    /// A master's answer to the proxy for `request_id`: `ProposeReply` for a register request,
    /// `KvProposeReply` for a revisioned one.
    pub fn propose_reply(
        &self,
        request_id: RequestId,
        outcome: Result<ClientResult, ProposeError>,
    ) -> Message {
        let kv = self.config.is_kv_request(request_id);
        match outcome {
            Ok(ClientResult::Register(result)) => Message::ProposeReply {
                request_id,
                outcome: Ok(result),
            },
            Ok(ClientResult::Kv(result)) => Message::KvProposeReply {
                request_id,
                outcome: Ok(result),
            },
            Err(error) if kv => Message::KvProposeReply {
                request_id,
                outcome: Err(error),
            },
            Err(error) => Message::ProposeReply {
                request_id,
                outcome: Err(error),
            },
        }
    }

    /// The proxy's answer to the client for `request_id`: `Reply` or `KvReply`.
    pub fn client_reply(
        &self,
        request_id: RequestId,
        outcome: Result<ClientResult, RequestError>,
    ) -> Message {
        let kv = self.config.is_kv_request(request_id);
        match outcome {
            Ok(ClientResult::Register(result)) => Message::Reply {
                request_id,
                outcome: Ok(result),
            },
            Ok(ClientResult::Kv(result)) => Message::KvReply {
                request_id,
                outcome: Ok(result),
            },
            Err(error) if kv => Message::KvReply {
                request_id,
                outcome: Err(error),
            },
            Err(error) => Message::Reply {
                request_id,
                outcome: Err(error),
            },
        }
    }

    /// `BecomeFollower`: a leader answers every proposal it owns `LeaderChanged` (§9.3) and
    /// every read it has not confirmed `NotLeader` (§9.2: it took no effect; the proxy retries).
    pub fn step_down(&mut self, node: NodeId, leader: Option<Ballot>) {
        let master = &mut self.state.masters[node as usize];
        let role = std::mem::replace(&mut master.role, Role::Follower);
        if master.leader != leader {
            master.forget_leader();
        }
        master.leader = leader;
        master.check_quorum_overdue = false;
        if let Role::Leader(leader_state) = role {
            for request_id in leader_state.proposals.into_values() {
                let reply = self.propose_reply(request_id, Err(ProposeError::LeaderChanged));
                self.send(Endpoint::Master(node), Endpoint::Proxy, reply);
            }
            let leader_hint = leader
                .map(|ballot| ballot.node)
                .filter(|hint| *hint != node);
            for request_id in leader_state.reads.into_keys() {
                let refusal = Err(ProposeError::NotLeader { leader_hint });
                let reply = self.propose_reply(request_id, refusal);
                self.send(Endpoint::Master(node), Endpoint::Proxy, reply);
            }
        }
    }

    /// Follows the leader of `ballot` (any of its messages with `ballot >= promised`): steps down
    /// from any other role and notes it heard from a leader. Only `Accept` and `CatchUp` persist
    /// the ballot as `promised`; `Heartbeat` and `Commit` are followed in memory (§5.2).
    pub fn adopt_leader(&mut self, node: NodeId, ballot: Ballot, persist: bool) {
        let master = &self.state.masters[node as usize];
        if !matches!(master.role, Role::Follower) {
            self.step_down(node, Some(ballot));
        }
        if persist {
            self.write_promised(node, ballot);
        }
        let master = &mut self.state.masters[node as usize];
        if master.leader != Some(ballot) {
            master.forget_leader();
        }
        master.leader = Some(ballot);
        master.heard_from_leader = true;
    }
}
