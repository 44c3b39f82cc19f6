//! The proxy's request handlers (`docs/protocol.md` §9.4) and the register clients' steps.
//!
//! The proxy owns the request ledger: every `Request` and `KvRequest` is accepted into it and
//! completes exactly once, through `complete`, on every path: unknown cluster, overload, an
//! invalid revisioned request, redirect exhaustion, timeout, leader change and success. A reply
//! for a request that already completed is counted as late and ignored. `docs/lifecycle.md`
//! draws the request states. Register and revisioned requests take the same path; only their
//! messages differ (`Step::propose_reply`, `Step::client_reply`). Watches are in `crate::watch`.

use crate::config::Bug;
use crate::kv_types::{ClientOperation, ClientResult, KvOperation};
use crate::message::{Endpoint, Message};
use crate::state::{HistoryEvent, PendingRequest, ReplyRecord};
use crate::step::Step;
use crate::types::{
    ClientId, ClusterName, NodeId, Operation, ProposeError, RequestError, RequestId, RequestOutcome,
};

impl Step<'_> {
    /// `ClientRequest`: the client sends its next operation (closed loop: one at a time).
    pub fn client_request(&mut self, client: ClientId) {
        if self.config.kv_script(client).is_some() {
            self.kv_client_step(client);
            return;
        }
        let script = &self.config.clients[client as usize];
        let index = self.state.clients[client as usize].sent as usize;
        let (Some(operation), cluster) = (script.operations.get(index).copied(), script.cluster)
        else {
            return;
        };
        let request_id = self.config.request_id(client, index);
        self.state.clients[client as usize].sent += 1;
        if cluster == self.config.cluster {
            self.state.history.push(HistoryEvent::Invoke {
                request_id,
                operation,
            });
        }
        let request = Message::Request {
            request_id,
            cluster,
            operation,
        };
        self.send(Endpoint::Client(client), Endpoint::Proxy, request);
    }

    /// §9.4.1–4: accept into the ledger, then complete at once or forward.
    pub fn handle_request(&mut self, request_id: RequestId, cluster: ClusterName, _: Operation) {
        self.admit(request_id, cluster, None);
    }

    /// §9.4.1–4 for a revisioned request: a `Txn` over its bounds or malformed is refused
    /// `InvalidRequest` once the cluster is known (§15.2).
    pub fn handle_kv_request(
        &mut self,
        request_id: RequestId,
        cluster: ClusterName,
        operation: KvOperation,
    ) {
        let invalid = self.config.kv_request_error(&operation);
        self.admit(request_id, cluster, invalid);
    }

    /// Accepts `request_id` into the ledger; completes it at once (`Overloaded`,
    /// `UnknownCluster`, `invalid`) or forwards it.
    fn admit(
        &mut self,
        request_id: RequestId,
        cluster: ClusterName,
        invalid: Option<RequestError>,
    ) {
        let ledger = &mut self.state.proxy.ledger;
        if ledger.in_flight >= self.config.in_flight_max {
            ledger.accepted += 1;
            ledger.in_flight += 1;
            self.complete(request_id, Err(RequestError::Overloaded));
            return;
        }
        ledger.accepted += 1;
        ledger.in_flight += 1;
        if cluster != self.config.cluster {
            // Seeded bug `error-path-leak`: the early return skips the completion (the incident).
            if self.config.has(Bug::ErrorPathLeak) {
                return;
            }
            self.complete(request_id, Err(RequestError::UnknownCluster));
            return;
        }
        if let Some(error) = invalid {
            self.complete(request_id, Err(error));
            return;
        }
        let target = match self.state.proxy.leader_cache {
            Some(leader) => leader,
            None => self.next_in_turn(),
        };
        let pending = PendingRequest {
            target,
            redirects: 0,
        };
        self.state.proxy.pending.insert(request_id, pending);
        self.forward(request_id, target);
    }

    /// Sends `request_id`'s `Propose` (or `KvPropose`) to `target`.
    fn forward(&mut self, request_id: RequestId, target: NodeId) {
        let propose = match self.config.client_operation_of(request_id) {
            Some(ClientOperation::Register(operation)) => Message::Propose {
                request_id,
                operation,
            },
            Some(ClientOperation::Kv(operation)) => Message::KvPropose {
                request_id,
                operation,
            },
            None => return,
        };
        self.send(Endpoint::Proxy, Endpoint::Master(target), propose);
    }

    /// §9.4.5–6: a final answer completes the request; `NotLeader` redirects, at most
    /// `redirects_max` times; a reply after completion is late and ignored.
    pub fn handle_propose_reply(
        &mut self,
        from: NodeId,
        request_id: RequestId,
        outcome: Result<ClientResult, ProposeError>,
    ) {
        let pending = match self.state.proxy.pending.get(&request_id).copied() {
            Some(pending) => pending,
            None => {
                let ledger = &mut self.state.proxy.ledger;
                ledger.late_replies = ledger.late_replies.saturating_add(1);
                // Seeded bug `double-complete`: the late reply is handled as if still pending.
                if !self.config.has(Bug::DoubleComplete) {
                    return;
                }
                PendingRequest {
                    target: from,
                    redirects: self.config.redirects_max,
                }
            }
        };
        let outcome = match outcome {
            Ok(result) => {
                self.state.proxy.leader_cache = Some(from);
                Ok(result)
            }
            Err(ProposeError::Overloaded) => Err(RequestError::Overloaded),
            Err(ProposeError::LeaderChanged) => {
                self.state.proxy.leader_cache = None;
                Err(RequestError::LeaderChanged)
            }
            Err(ProposeError::NotLeader { leader_hint }) => {
                if pending.redirects < self.config.redirects_max {
                    self.redirect(from, request_id, pending, leader_hint);
                    return;
                }
                self.state.proxy.leader_cache = None;
                Err(RequestError::NoLeader)
            }
        };
        self.complete(request_id, outcome);
    }

    /// §9.4.4: the next master in turn when the cache misses.
    pub(crate) fn next_in_turn(&mut self) -> NodeId {
        let target = self.state.proxy.next_in_turn;
        self.state.proxy.next_in_turn = (target + 1) % self.config.masters;
        target
    }

    /// §9.4.5: follow a hint naming another master, or try the next master in turn.
    fn redirect(
        &mut self,
        from: NodeId,
        request_id: RequestId,
        pending: PendingRequest,
        leader_hint: Option<NodeId>,
    ) {
        let target = match leader_hint.filter(|leader| *leader != from) {
            Some(leader) => {
                self.state.proxy.leader_cache = Some(leader);
                leader
            }
            None => {
                self.state.proxy.leader_cache = None;
                self.next_in_turn()
            }
        };
        if self.config.client_operation_of(request_id).is_none() {
            return;
        }
        let redirected = PendingRequest {
            target,
            redirects: pending.redirects + 1,
        };
        self.state.proxy.pending.insert(request_id, redirected);
        self.forward(request_id, target);
    }

    /// §9.4.6 `ForwardLost`: the request's `Propose` comes back from the link undelivered, so
    /// the master never saw it; the proxy handles it as `NotLeader` without a hint from that
    /// master: the next master in turn, or `NoLeader` (definitely not applied) once
    /// `redirects_max` redirects are spent.
    pub fn forward_lost(&mut self, request_id: RequestId) {
        let Some(pending) = self.state.proxy.pending.get(&request_id).copied() else {
            return;
        };
        let Some((link, propose)) = self.config.undelivered_propose(self.state, request_id) else {
            return;
        };
        self.take(link.0, link.1, &propose);
        if pending.redirects < self.config.redirects_max {
            self.redirect(pending.target, request_id, pending, None);
            return;
        }
        self.state.proxy.leader_cache = None;
        self.complete(request_id, Err(RequestError::NoLeader));
    }

    /// §9.4.6 `on_request_timeout`: complete with `Timeout`, forget the cached leader.
    pub fn on_request_timeout(&mut self, request_id: RequestId) {
        self.state.proxy.leader_cache = None;
        self.complete(request_id, Err(RequestError::Timeout));
    }

    /// `RequestCompleted`: the one place a request leaves the ledger and its `Reply` (or
    /// `KvReply`) is sent.
    fn complete(&mut self, request_id: RequestId, outcome: Result<ClientResult, RequestError>) {
        self.state.proxy.pending.remove(&request_id);
        let ledger = &mut self.state.proxy.ledger;
        ledger.in_flight = ledger.in_flight.saturating_sub(1);
        match outcome {
            Ok(_) => ledger.completed_ok += 1,
            Err(_) => ledger.completed_err += 1,
        }
        let Some((client, _)) = self.config.owner_of(request_id) else {
            return;
        };
        let reply = self.client_reply(request_id, outcome);
        self.send(Endpoint::Proxy, Endpoint::Client(client), reply);
    }

    /// The client records every reply (a second one is a double completion) and, for the
    /// served cluster, the definite ones in the history.
    pub fn handle_reply(
        &mut self,
        client: ClientId,
        request_id: RequestId,
        outcome: RequestOutcome,
    ) {
        let record = self.state.clients[client as usize]
            .replies
            .entry(request_id)
            .or_insert(ReplyRecord { count: 0, outcome });
        record.count = record.count.saturating_add(1);
        let first = record.count == 1;
        let served = self.config.clients[client as usize].cluster == self.config.cluster;
        if !first || !served {
            return;
        }
        let result = match outcome {
            Ok(result) => Some(result),
            Err(error) if error.is_indeterminate() => return,
            Err(_) => None,
        };
        self.state
            .history
            .push(HistoryEvent::Return { request_id, result });
    }
}
