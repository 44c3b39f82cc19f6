//! The stateright `Model`: the `Action` type (one per step of `docs/protocol.md` §11), which
//! actions are enabled in a state, and how each one changes it.
//!
//! `apply` and `enabled_actions` are the functions conformance replays real traces with: a trace
//! event maps to one `Action`, and `apply` returns the next state or `None` when the action is not
//! enabled in the given state.

use crate::config::{Bug, Config, Delivery};
use crate::kv_types::{ClientOperation, ClientResult};
use crate::lease_types::LeaseId;
use crate::message::{Endpoint, Link, Message};
use crate::state::{Role, State};
use crate::step::Step;
use crate::types::{ClientId, NodeId, RequestId};
use serde::{Deserialize, Serialize};
use stateright::{Model, Property};
use std::collections::BTreeSet;
use std::fmt;

/// One step of the protocol (§11).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Action {
    /// `Deliver(m)`: `destination` handles `message`, the head of the link (any message of it
    /// with `Delivery::Unordered`).
    Deliver {
        /// Sender.
        source: Endpoint,
        /// Receiver.
        destination: Endpoint,
        /// The message handled.
        message: Message,
    },
    /// `Drop(m)`: the network loses `message` (a fault).
    Drop {
        /// Sender.
        source: Endpoint,
        /// Receiver.
        destination: Endpoint,
        /// The message lost.
        message: Message,
    },
    /// `ElectionTimeout` at a Follower, PreCandidate or Candidate.
    ElectionTimeout(NodeId),
    /// `HeartbeatTimeout` at a leader (may `Evict`).
    HeartbeatTimeout(NodeId),
    /// `CheckQuorumTimeout` at a leader.
    CheckQuorumTimeout(NodeId),
    /// `RejoinWaitExpired` at a master with an outstanding `Rejoin`: an election timeout passed
    /// without its `CatchUp`, so the next gap asks again (§6.3). Sends nothing.
    RejoinWaitExpired(NodeId),
    /// `RequestTimeout` at the proxy for a pending request.
    RequestTimeout(RequestId),
    /// `ForwardLost` at the proxy: the pending request's `Propose` never left for its master
    /// (the host had no connection to hand it to); it comes back undelivered and the proxy
    /// redirects as on `NotLeader` without a hint (§9.4.6).
    ForwardLost(RequestId),
    /// `ClientRequest`: a client sends its next `Request`.
    ClientRequest(ClientId),
    /// `Persist`: a master's oldest pending durable write is durable (§2.1); what waited for it
    /// goes on (held messages leave, the leader counts its own acceptances).
    Persist(NodeId),
    /// `Pause`: a stop-the-world pause of a master begins.
    Pause(NodeId),
    /// `Resume`: the pause ends.
    Resume(NodeId),
    /// `Crash`: a master loses its volatile state.
    Crash(NodeId),
    /// `Restart`: a crashed master is rebuilt from storage.
    Restart(NodeId),
    /// `CloseConnection`: the connection between the proxy and the master it is subscribed at
    /// closes (a fault): the master's subscription ends, the subscription messages on it are
    /// gone, and the proxy's host tells the proxy (`ConnectionClosed`, §17.6). A crash and a
    /// lost subscription message close it too; this is the close on its own, as a host sees
    /// it when a master died before anything shows it in the model.
    CloseConnection(NodeId),
    /// `Tick`: the one clock of the leases advances (§20.4; the protocol's own timers stay
    /// abstract).
    Tick,
    /// `LeaseExpiryTimeout`: the leader's timer for a lease ran out on its clock; it proposes
    /// the lease's expiry (§20.3).
    LeaseExpiryTimeout(NodeId, LeaseId),
    /// `ClientPause`: a stop-the-world pause of a client begins (§20.4).
    ClientPause(ClientId),
    /// `ClientResume`: the client's pause ends.
    ClientResume(ClientId),
}

impl Action {
    /// The step's name in protocol.md §11 (`Deliver`, `ElectionTimeout`, …).
    pub fn step_name(&self) -> &'static str {
        match self {
            Action::Deliver { .. } => "Deliver",
            Action::Drop { .. } => "Drop",
            Action::ElectionTimeout(_) => "ElectionTimeout",
            Action::HeartbeatTimeout(_) => "HeartbeatTimeout",
            Action::CheckQuorumTimeout(_) => "CheckQuorumTimeout",
            Action::RejoinWaitExpired(_) => "RejoinWaitExpired",
            Action::RequestTimeout(_) => "RequestTimeout",
            Action::ForwardLost(_) => "ForwardLost",
            Action::ClientRequest(_) => "ClientRequest",
            Action::Persist(_) => "Persist",
            Action::Pause(_) => "Pause",
            Action::Resume(_) => "Resume",
            Action::Crash(_) => "Crash",
            Action::Restart(_) => "Restart",
            Action::CloseConnection(_) => "CloseConnection",
            Action::Tick => "Tick",
            Action::LeaseExpiryTimeout(..) => "LeaseExpiryTimeout",
            Action::ClientPause(_) => "ClientPause",
            Action::ClientResume(_) => "ClientResume",
        }
    }

    /// The core handler this step is (protocol.md §11), or `None` for a host or network fault
    /// and for the client's own steps.
    pub fn core_handler(&self) -> Option<&'static str> {
        let handler = match self {
            Action::Deliver {
                message,
                destination,
                ..
            } => match (message, destination) {
                (_, Endpoint::Client(_)) => return None,
                (Message::PreVote { .. }, _) => "handle_pre_vote",
                (Message::PreVoteReply { .. }, _) => "handle_pre_vote_reply",
                (Message::Prepare { .. }, _) => "handle_prepare",
                (Message::Promise { .. }, _) => "handle_promise",
                (Message::Accept { .. }, _) => "handle_accept",
                (Message::Accepted { .. }, _) => "handle_accepted",
                (Message::Nack { .. }, _) => "handle_nack",
                (Message::Commit { .. }, _) => "handle_commit",
                (Message::Heartbeat { .. }, _) => "handle_heartbeat",
                (Message::HeartbeatAck { .. }, _) => "handle_heartbeat_ack",
                (Message::Rejoin { .. }, _) => "handle_rejoin",
                (Message::CatchUp { .. }, _) => "handle_catch_up",
                (Message::CatchUpAck { .. }, _) => "handle_catch_up_ack",
                (Message::Propose { .. }, _) => "handle_propose",
                (Message::ProposeReply { .. }, _) => "handle_propose_reply",
                (Message::Request { .. }, _) => "handle_request",
                (Message::KvRequest { .. }, _) => "handle_kv_request",
                (Message::KvPropose { .. }, _) => "handle_kv_propose",
                (Message::KvProposeReply { .. }, _) => "handle_kv_propose_reply",
                (Message::WatchCreate { .. }, _) => "handle_watch_create",
                (Message::WatchCancel { .. }, _) => "handle_watch_cancel",
                (Message::WatchProgressRequest { .. }, _) => "handle_watch_progress_request",
                (Message::ClientClosed, _) => "handle_client_closed",
                (Message::Subscribe { .. }, _) => "handle_subscribe",
                (Message::Unsubscribe, _) => "handle_unsubscribe",
                (Message::Events { .. }, _) => "handle_events",
                (Message::SubscriptionCompacted { .. }, _) => "handle_subscription_compacted",
                (Message::ConnectionClosed, _) => "link_closed",
                (
                    Message::Reply { .. }
                    | Message::KvReply { .. }
                    | Message::WatchCreated { .. }
                    | Message::WatchEvents { .. }
                    | Message::WatchProgress { .. }
                    | Message::WatchEnded { .. },
                    _,
                ) => return None,
            },
            Action::ElectionTimeout(_) => "on_election_timeout",
            Action::HeartbeatTimeout(_) => "on_heartbeat_timeout",
            Action::CheckQuorumTimeout(_) => "on_check_quorum_timeout",
            // The core counts `rejoin_wait_ticks` down in `tick`; no handler of its own.
            Action::RejoinWaitExpired(_) => "tick",
            Action::RequestTimeout(_) => "on_request_timeout",
            Action::ForwardLost(_) => "forward_lost",
            Action::Persist(_) => "advance",
            Action::Tick => "tick",
            Action::LeaseExpiryTimeout(..) => "on_lease_expiry_timeout",
            _ => return None,
        };
        Some(handler)
    }

    /// Whether this is a master timer or a fault: steps that do not count against quiescence.
    pub fn is_timer_or_fault(&self) -> bool {
        !matches!(
            self,
            Action::Deliver { .. }
                | Action::RequestTimeout(_)
                | Action::ClientRequest(_)
                | Action::Persist(_)
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Deliver {
                source,
                destination,
                message,
            } => {
                write!(formatter, "Deliver {message:?} {source} -> {destination}")
            }
            Action::Drop {
                source,
                destination,
                message,
            } => {
                write!(formatter, "Drop {message:?} {source} -> {destination}")
            }
            Action::ElectionTimeout(node) => write!(formatter, "ElectionTimeout at master {node}"),
            Action::HeartbeatTimeout(node) => {
                write!(formatter, "HeartbeatTimeout at master {node}")
            }
            Action::CheckQuorumTimeout(node) => {
                write!(formatter, "CheckQuorumTimeout at master {node}")
            }
            Action::RejoinWaitExpired(node) => {
                write!(formatter, "RejoinWaitExpired at master {node}")
            }
            Action::RequestTimeout(request) => {
                write!(formatter, "RequestTimeout of request {request}")
            }
            Action::ForwardLost(request) => {
                write!(formatter, "ForwardLost of request {request}")
            }
            Action::ClientRequest(client) => write!(formatter, "ClientRequest by client {client}"),
            Action::Persist(node) => write!(formatter, "Persist at master {node}"),
            Action::Pause(node) => write!(formatter, "Pause master {node}"),
            Action::Resume(node) => write!(formatter, "Resume master {node}"),
            Action::Crash(node) => write!(formatter, "Crash master {node}"),
            Action::Restart(node) => write!(formatter, "Restart master {node}"),
            Action::CloseConnection(node) => {
                write!(formatter, "CloseConnection of the proxy and master {node}")
            }
            Action::Tick => write!(formatter, "Tick"),
            Action::LeaseExpiryTimeout(node, lease) => {
                write!(
                    formatter,
                    "LeaseExpiryTimeout of lease {lease} at master {node}"
                )
            }
            Action::ClientPause(client) => write!(formatter, "Pause client {client}"),
            Action::ClientResume(client) => write!(formatter, "Resume client {client}"),
        }
    }
}

impl Config {
    /// Every action enabled in `state`.
    pub fn enabled_actions(&self, state: &State) -> Vec<Action> {
        let mut actions = Vec::new();
        self.delivery_actions(state, &mut actions);
        for node in 0..self.masters {
            self.master_timer_actions(state, node, &mut actions);
            self.master_fault_actions(state, node, &mut actions);
        }
        if state.used.request_timeouts < self.budget.request_timeouts {
            for request_id in state.proxy.pending.keys() {
                actions.push(Action::RequestTimeout(*request_id));
            }
        }
        if state.used.forwards_lost < self.budget.forwards_lost {
            for request_id in state.proxy.pending.keys() {
                if self.undelivered_propose(state, *request_id).is_some() {
                    actions.push(Action::ForwardLost(*request_id));
                }
            }
        }
        for client in 0..self.client_count() as ClientId {
            if self.client_may_send(state, client) {
                actions.push(Action::ClientRequest(client));
            }
        }
        if self.has_leases() {
            self.lease_actions(state, &mut actions);
        }
        actions
    }

    /// §20: the clock, the leaders' expiry timers, and the pauses of lease holders.
    fn lease_actions(&self, state: &State, actions: &mut Vec<Action>) {
        if state.used.ticks < self.budget.ticks {
            actions.push(Action::Tick);
        }
        for node in 0..self.masters {
            for lease in crate::lease_leader::expiries_due(self, state, node) {
                actions.push(Action::LeaseExpiryTimeout(node, lease));
            }
        }
        let may_pause = state.used.client_pauses < self.budget.client_pauses;
        let holders: BTreeSet<ClientId> = state
            .lease
            .holders
            .values()
            .map(|holder| holder.client)
            .collect();
        for client in holders {
            if state.lease.paused_clients.contains(&client) {
                actions.push(Action::ClientResume(client));
            } else if may_pause && !state.clients[client as usize].gone {
                actions.push(Action::ClientPause(client));
            }
        }
    }

    fn delivery_actions(&self, state: &State, actions: &mut Vec<Action>) {
        let may_drop = state.used.drops < self.budget.drops;
        for ((source, destination), messages) in &state.network {
            let deliverable = match destination {
                Endpoint::Master(node) => {
                    let master = &state.masters[*node as usize];
                    !master.paused && !master.crashed && !master.check_quorum_overdue
                }
                Endpoint::Client(client) => !state.lease.paused_clients.contains(client),
                _ => true,
            };
            // Per-link FIFO: the head of the current connection, and any message of a closed
            // one (`Step::close_connection`).
            let candidates = match self.delivery {
                Delivery::PerLinkFifo => {
                    let closed = state
                        .closed_connection_messages
                        .get(&(*source, *destination))
                        .copied()
                        .unwrap_or(0);
                    &messages[..messages.len().min(closed + 1)]
                }
                Delivery::Unordered => &messages[..],
            };
            let between_masters_or_proxy = !matches!(source, Endpoint::Client(_))
                && !matches!(destination, Endpoint::Client(_));
            for (index, message) in candidates.iter().enumerate() {
                if candidates[..index].contains(message) {
                    continue;
                }
                let (source, destination, message) = (*source, *destination, message.clone());
                // The host's own notice of a closed connection is not a network message.
                let droppable = between_masters_or_proxy && message != Message::ConnectionClosed;
                if may_drop && droppable {
                    let dropped = message.clone();
                    actions.push(Action::Drop {
                        source,
                        destination,
                        message: dropped,
                    });
                }
                if deliverable {
                    actions.push(Action::Deliver {
                        source,
                        destination,
                        message,
                    });
                }
            }
        }
    }

    fn master_timer_actions(&self, state: &State, node: NodeId, actions: &mut Vec<Action>) {
        let master = &state.masters[node as usize];
        if master.crashed {
            return;
        }
        // Seeded bug `paused-heartbeat`: the heartbeat timer ignores the pause.
        let heartbeat_runs = !master.paused || self.has(Bug::PausedHeartbeat);
        if let Role::Leader(_) = master.role {
            if master.check_quorum_overdue && !master.paused {
                actions.push(Action::CheckQuorumTimeout(node));
                return;
            }
            if heartbeat_runs && state.used.heartbeat_timeouts < self.budget.heartbeat_timeouts {
                actions.push(Action::HeartbeatTimeout(node));
            }
            if !master.paused
                && state.used.check_quorum_timeouts < self.budget.check_quorum_timeouts
            {
                actions.push(Action::CheckQuorumTimeout(node));
            }
            return;
        }
        if !master.paused
            && master.rejoin_requested
            && state.used.rejoin_waits_expired < self.budget.rejoin_waits_expired
        {
            actions.push(Action::RejoinWaitExpired(node));
        }
        let next_round = crate::timers::next_ballot(master, node).round;
        if !master.paused
            && state.used.election_timeouts < self.budget.election_timeouts
            && next_round <= self.round_max
        {
            actions.push(Action::ElectionTimeout(node));
        }
    }

    fn master_fault_actions(&self, state: &State, node: NodeId, actions: &mut Vec<Action>) {
        let master = &state.masters[node as usize];
        if master.crashed {
            actions.push(Action::Restart(node));
            return;
        }
        // Not before an overdue check-quorum: that fires first after a pause (§7.2).
        if !master.paused && !master.check_quorum_overdue && !master.pending_writes.is_empty() {
            actions.push(Action::Persist(node));
        }
        if master.paused {
            actions.push(Action::Resume(node));
        } else if state.used.pauses < self.budget.pauses {
            actions.push(Action::Pause(node));
        }
        if state.used.crashes < self.budget.crashes {
            actions.push(Action::Crash(node));
        }
        let subscribed_here = state
            .proxy
            .subscription
            .is_some_and(|subscription| subscription.master == node);
        if subscribed_here && state.used.connections_closed < self.budget.connections_closed {
            actions.push(Action::CloseConnection(node));
        }
    }

    /// The pending request's `Propose` and its link, if it is still on the link to the
    /// request's target (not yet delivered: a crashed master's links keep what the proxy sends
    /// it, §8).
    pub fn undelivered_propose(
        &self,
        state: &State,
        request_id: RequestId,
    ) -> Option<(Link, Message)> {
        let pending = state.proxy.pending.get(&request_id)?;
        let link = (Endpoint::Proxy, Endpoint::Master(pending.target));
        let message = state
            .network
            .get(&link)?
            .iter()
            .find(|message| match message {
                Message::Propose {
                    request_id: queued, ..
                }
                | Message::KvPropose {
                    request_id: queued, ..
                } => *queued == request_id,
                _ => false,
            })?;
        Some((link, message.clone()))
    }

    fn client_may_send(&self, state: &State, client: ClientId) -> bool {
        if self.kv_script(client).is_some() {
            return crate::kv_client::kv_client_may_send(self, state, client);
        }
        let progress = &state.clients[client as usize];
        let script = &self.clients[client as usize];
        let sent = progress.sent as usize;
        if sent >= script.operations.len() {
            return false;
        }
        sent == 0
            || progress
                .replies
                .contains_key(&self.request_id(client, sent - 1))
    }

    /// The state after `action`, or `None` when `action` is not enabled in `state`.
    pub fn apply(&self, state: &State, action: &Action) -> Option<State> {
        if !self.enabled_actions(state).contains(action) {
            return None;
        }
        let mut next = state.clone();
        Step::new(self, &mut next).perform(action.clone());
        Some(next)
    }

    /// Takes `action` in `state` itself, without the copy [`Config::apply`] makes; false (and
    /// `state` unchanged) when `action` is not enabled. For replay, which keeps one state.
    pub fn apply_in_place(&self, state: &mut State, action: &Action) -> bool {
        if !self.enabled_actions(state).contains(action) {
            return false;
        }
        Step::new(self, state).perform(action.clone());
        true
    }
}

impl Step<'_> {
    /// Performs an enabled action (no guard checked here: see `Config::apply`).
    pub fn perform(&mut self, action: Action) {
        match action {
            Action::Deliver {
                source,
                destination,
                message,
            } => {
                self.take(source, destination, &message);
                self.deliver(source, destination, message);
            }
            Action::Drop {
                source,
                destination,
                message,
            } => {
                self.take(source, destination, &message);
                self.state.used.drops = self.state.used.drops.saturating_add(1);
                self.dropped(source, destination, &message);
            }
            Action::ElectionTimeout(node) => {
                self.state.used.election_timeouts =
                    self.state.used.election_timeouts.saturating_add(1);
                self.on_election_timeout(node);
            }
            Action::HeartbeatTimeout(node) => {
                self.state.used.heartbeat_timeouts =
                    self.state.used.heartbeat_timeouts.saturating_add(1);
                self.on_heartbeat_timeout(node);
            }
            Action::CheckQuorumTimeout(node) => {
                if !self.state.masters[node as usize].check_quorum_overdue {
                    self.state.used.check_quorum_timeouts =
                        self.state.used.check_quorum_timeouts.saturating_add(1);
                }
                self.on_check_quorum_timeout(node);
            }
            Action::RejoinWaitExpired(node) => {
                self.state.used.rejoin_waits_expired =
                    self.state.used.rejoin_waits_expired.saturating_add(1);
                self.on_rejoin_wait_expired(node);
            }
            Action::RequestTimeout(request_id) => {
                self.state.used.request_timeouts =
                    self.state.used.request_timeouts.saturating_add(1);
                self.on_request_timeout(request_id);
            }
            Action::ForwardLost(request_id) => {
                self.state.used.forwards_lost = self.state.used.forwards_lost.saturating_add(1);
                self.forward_lost(request_id);
            }
            Action::ClientRequest(client) => self.client_request(client),
            Action::Persist(node) => self.persist(node),
            Action::Pause(_) | Action::Resume(_) | Action::Crash(_) | Action::Restart(_) => {
                self.perform_process_fault(action);
            }
            Action::CloseConnection(node) => {
                self.state.used.connections_closed =
                    self.state.used.connections_closed.saturating_add(1);
                self.subscription_connection_lost(node);
            }
            Action::Tick
            | Action::LeaseExpiryTimeout(..)
            | Action::ClientPause(_)
            | Action::ClientResume(_) => self.perform_lease_time(action),
        }
        self.close_write();
    }

    /// A master process's faults: a stop-the-world pause and its end, a crash and its restart.
    fn perform_process_fault(&mut self, action: Action) {
        match action {
            Action::Pause(node) => {
                self.state.used.pauses = self.state.used.pauses.saturating_add(1);
                self.pause(node);
            }
            Action::Resume(node) => self.resume(node),
            Action::Crash(node) => {
                self.state.used.crashes = self.state.used.crashes.saturating_add(1);
                self.crash(node);
            }
            Action::Restart(node) => self.restart(node),
            other => unreachable!("not a process fault: {other:?}"),
        }
    }

    /// The actions of the leases' time (§20): the clock's tick, a leader's expiry timer, and a
    /// lease holder's pause and resume.
    fn perform_lease_time(&mut self, action: Action) {
        match action {
            Action::Tick => {
                self.state.used.ticks = self.state.used.ticks.saturating_add(1);
                self.tick();
            }
            Action::LeaseExpiryTimeout(node, lease) => self.on_lease_expiry_timeout(node, lease),
            Action::ClientPause(client) => {
                self.state.used.client_pauses = self.state.used.client_pauses.saturating_add(1);
                self.client_pause(client);
            }
            Action::ClientResume(client) => self.client_resume(client),
            other => unreachable!("not an action of the leases' time: {other:?}"),
        }
    }

    /// What a lost message loses besides itself: a subscription message's connection
    /// (§17.1), which a lost `Propose` or `ProposeReply` does not need (§9.4.6).
    fn dropped(&mut self, source: Endpoint, destination: Endpoint, message: &Message) {
        if !message.is_subscription() {
            return;
        }
        if let (Endpoint::Master(node), _) | (_, Endpoint::Master(node)) = (source, destination) {
            self.subscription_connection_lost(node);
        }
    }

    /// One handler per message (§11).
    fn deliver(&mut self, source: Endpoint, destination: Endpoint, message: Message) {
        match (source, destination, message) {
            (
                Endpoint::Client(_),
                Endpoint::Proxy,
                Message::Request {
                    request_id,
                    cluster,
                    operation,
                },
            ) => self.handle_request(request_id, cluster, operation),
            (
                Endpoint::Master(from),
                Endpoint::Proxy,
                Message::ProposeReply {
                    request_id,
                    outcome,
                },
            ) => {
                let outcome = outcome.map(ClientResult::Register);
                self.handle_propose_reply(from, request_id, outcome)
            }
            (
                Endpoint::Proxy,
                Endpoint::Client(client),
                Message::Reply {
                    request_id,
                    outcome,
                },
            ) => self.handle_reply(client, request_id, outcome),
            (
                Endpoint::Proxy,
                Endpoint::Master(node),
                Message::Propose {
                    request_id,
                    operation,
                },
            ) => self.handle_propose(node, request_id, ClientOperation::Register(operation)),
            (Endpoint::Master(from), Endpoint::Master(node), message) => {
                self.deliver_between_masters(from, node, message)
            }
            (source, destination, message) => self.deliver_revisioned(source, destination, message),
        }
    }

    /// The handlers of §14–§17's messages.
    fn deliver_revisioned(&mut self, source: Endpoint, destination: Endpoint, message: Message) {
        match (source, destination, message) {
            (Endpoint::Client(client), Endpoint::Proxy, message) => {
                self.deliver_from_client(client, message)
            }
            (Endpoint::Proxy, Endpoint::Client(client), message) => {
                self.deliver_to_client(client, message)
            }
            (Endpoint::Proxy, Endpoint::Master(node), message) => match message {
                Message::KvPropose {
                    request_id,
                    operation,
                } => self.handle_propose(node, request_id, ClientOperation::Kv(operation)),
                Message::Subscribe { from_revision } => self.handle_subscribe(node, from_revision),
                Message::Unsubscribe => self.handle_unsubscribe(node),
                _ => {}
            },
            (Endpoint::Master(from), Endpoint::Proxy, message) => match message {
                Message::KvProposeReply {
                    request_id,
                    outcome,
                } => {
                    let outcome = outcome.map(ClientResult::Kv);
                    self.handle_propose_reply(from, request_id, outcome)
                }
                Message::Events {
                    revision,
                    revisions,
                } => self.handle_events(from, revision, revisions),
                Message::SubscriptionCompacted { compact_revision } => {
                    self.handle_subscription_compacted(from, compact_revision)
                }
                Message::ConnectionClosed => self.handle_connection_closed(from),
                _ => {}
            },
            _ => {}
        }
    }

    fn deliver_from_client(&mut self, client: ClientId, message: Message) {
        match message {
            Message::KvRequest {
                request_id,
                cluster,
                operation,
            } => self.handle_kv_request(request_id, cluster, operation),
            Message::WatchCreate {
                watch_id,
                cluster,
                watch,
            } => self.handle_watch_create(client, watch_id, cluster, watch),
            Message::WatchCancel { watch_id } => self.handle_watch_cancel(client, watch_id),
            Message::WatchProgressRequest { watch_id } => {
                self.handle_watch_progress_request(client, watch_id)
            }
            Message::ClientClosed => self.handle_client_closed(client),
            _ => {}
        }
    }

    fn deliver_to_client(&mut self, client: ClientId, message: Message) {
        match message {
            Message::KvReply {
                request_id,
                outcome,
            } => self.handle_kv_reply(client, request_id, outcome),
            Message::WatchCreated { watch_id } => self.handle_watch_created(client, watch_id),
            Message::WatchEvents {
                watch_id,
                revision,
                events,
            } => self.handle_watch_events(client, watch_id, revision, events),
            Message::WatchProgress { watch_id, revision } => {
                self.handle_watch_progress(client, watch_id, revision)
            }
            Message::WatchEnded { watch_id, outcome } => {
                self.handle_watch_ended(client, watch_id, outcome)
            }
            _ => {}
        }
    }

    fn deliver_between_masters(&mut self, from: NodeId, node: NodeId, message: Message) {
        match message {
            Message::PreVote { ballot } => self.handle_pre_vote(node, from, ballot),
            Message::PreVoteReply {
                ballot,
                granted,
                leader,
            } => self.handle_pre_vote_reply(node, from, ballot, granted, leader),
            Message::Prepare {
                ballot,
                commit_index,
            } => self.handle_prepare(node, from, ballot, commit_index),
            Message::Promise {
                ballot, entries, ..
            } => self.handle_promise(node, from, ballot, entries),
            Message::Accept {
                ballot,
                slot,
                command,
                commit_index,
            } => self.handle_accept(node, from, (ballot, slot, command, commit_index)),
            Message::Accepted { ballot, slot } => self.handle_accepted(node, from, ballot, slot),
            Message::Nack { ballot, promised } => self.handle_nack(node, ballot, promised),
            Message::Commit {
                ballot,
                commit_index,
            } => self.handle_commit(node, from, ballot, commit_index),
            Message::Heartbeat {
                ballot,
                commit_index,
                heartbeat_sequence,
            } => self.handle_heartbeat(node, from, (ballot, commit_index, heartbeat_sequence)),
            Message::HeartbeatAck {
                ballot,
                heartbeat_sequence,
                ..
            } => self.handle_heartbeat_ack(node, from, ballot, heartbeat_sequence),
            Message::Rejoin {
                ballot,
                commit_index,
            } => self.handle_rejoin(node, from, ballot, commit_index),
            Message::CatchUp {
                ballot,
                commit_index,
                entries,
            } => self.handle_catch_up(node, from, ballot, commit_index, entries),
            Message::CatchUpAck { ballot, .. } => self.handle_catch_up_ack(node, from, ballot),
            _ => {}
        }
    }
}

impl Model for Config {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State::initial(self)]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        actions.extend(self.enabled_actions(state));
    }

    fn next_state(&self, state: &State, action: Action) -> Option<State> {
        let mut next = state.clone();
        Step::new(self, &mut next).perform(action);
        Some(next)
    }

    fn format_action(&self, action: &Action) -> String {
        action.to_string()
    }

    fn properties(&self) -> Vec<Property<Self>> {
        crate::properties::for_config(self)
    }

    fn within_boundary(&self, state: &State) -> bool {
        if self
            .search_deadline
            .is_some_and(|deadline| std::time::Instant::now() >= deadline)
        {
            return false;
        }
        let within = self
            .messages_in_flight_max
            .is_none_or(|max| state.messages_in_flight() <= max);
        if let (true, Some(observer)) = (within, &self.observer) {
            observer.observe(self, state);
        }
        within
    }
}
