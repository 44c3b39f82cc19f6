//! The proxy as a pure state machine (`docs/protocol.md` §9.4): clients name a cluster, the
//! proxy validates the name, forwards the operation to that cluster's leader (a bounded leader
//! cache, `NotLeader` redirects bounded by `redirects_max`), and answers every request exactly
//! once through the request ledger (`ledger.rs`), with a per-request timeout in ticks.
//!
//! The host owns sockets: it calls [`Proxy::handle_request`] for each client `Request`,
//! [`Proxy::step`] for each master's `ProposeReply`, [`Proxy::tick`] once per tick, and drains
//! [`Proxy::ready`]: messages to masters, then replies to clients, then trace events.
//! The proxy keeps nothing that must survive a crash (§1).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::config::{validate_cluster_name, Config, ConfigError};
use crate::kv::Applied;
use crate::kv_types::KvOperation;
use crate::ledger::{Ledger, LedgerCounters, PendingRequest, RequestOutcome};
use crate::message::Message;
use crate::mutation::Mutation;
use crate::trace::{Endpoint, Origin, PostState, Timer, TraceBuffer, TraceEvent, TraceKind};
use crate::types::{ClientError, ClientId, MasterError, NodeId, Operation, ProxyId, RequestId};
use crate::watch::Watches;
use crate::watch_ledger::WatchLedgerCounters;

/// A message from the proxy to a master of a named cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyEnvelope {
    /// The cluster.
    pub cluster: String,
    /// The master of that cluster.
    pub to: NodeId,
    /// The message (a `Propose`).
    pub message: Message,
}

/// A `Reply` to a client connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientEnvelope {
    /// The client connection.
    pub to: ClientId,
    /// The message (a `Reply`).
    pub message: Message,
}

/// One batch of the proxy's output, handled in field order. Nothing here needs to be durable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyReady {
    /// `Propose`s to masters.
    pub messages: Vec<ProxyEnvelope>,
    /// `Reply`s to clients: exactly one per accepted request over the proxy's life.
    pub replies: Vec<ClientEnvelope>,
    /// Trace events (empty unless tracing is on).
    pub trace: Vec<TraceEvent>,
}

/// An input the proxy refuses: a host bug (wrong routing), never a protocol event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyStepError {
    /// Only `ProposeReply` comes to a proxy from a master.
    #[error("a proxy does not handle {message} from a master")]
    NotForProxy {
        /// The message's name.
        message: &'static str,
    },
    /// The master's cluster is not one this proxy serves.
    #[error("message from cluster {cluster:?}, which this proxy does not serve")]
    UnknownCluster {
        /// The cluster named by the host.
        cluster: String,
    },
}

/// What a forwarded request asks of the masters: a register operation (`Propose`) or a
/// revisioned one (`KvPropose`).
#[derive(Clone, Debug)]
enum ForwardedOperation {
    Register(Operation),
    Kv(KvOperation),
}

/// A request forwarded to a master and not completed.
#[derive(Debug)]
struct Forwarded {
    pending: PendingRequest,
    cluster: String,
    operation: ForwardedOperation,
    target: NodeId,
    redirects: u64,
    deadline_ticks: u64,
}

/// A bounded cluster → leader cache; the oldest entry leaves first (`leader_cache_max`).
#[derive(Debug)]
pub(crate) struct LeaderCache {
    leaders: BTreeMap<String, NodeId>,
    order: VecDeque<String>,
    entries_max: usize,
}

impl LeaderCache {
    pub(crate) fn get(&self, cluster: &str) -> Option<NodeId> {
        self.leaders.get(cluster).copied()
    }

    fn insert(&mut self, cluster: &str, leader: NodeId) {
        if self.leaders.insert(cluster.to_string(), leader).is_none() {
            self.order.push_back(cluster.to_string());
            while self.order.len() > self.entries_max {
                if let Some(oldest) = self.order.pop_front() {
                    self.leaders.remove(&oldest);
                }
            }
        }
    }

    fn remove(&mut self, cluster: &str) {
        if self.leaders.remove(cluster).is_some() {
            self.order.retain(|name| name != cluster);
        }
    }
}

/// The proxy state machine. Clusters are fixed at construction (name → master ids).
#[derive(Debug)]
pub struct Proxy {
    id: ProxyId,
    pub(crate) config: Config,
    pub(crate) clusters: BTreeMap<String, Vec<NodeId>>,
    pub(crate) leader_cache: LeaderCache,
    /// Next master to try per cluster when the cache misses (§9.4.4: "masters in turn").
    probe_next: BTreeMap<String, usize>,
    ledger: Ledger,
    forwarded: BTreeMap<RequestId, Forwarded>,
    deadlines: BTreeSet<(u64, RequestId)>,
    next_request_id: RequestId,
    now_ticks: u64,
    pub(crate) messages: Vec<ProxyEnvelope>,
    pub(crate) replies: Vec<ClientEnvelope>,
    pub(crate) trace: TraceBuffer,
    /// Watches and subscriptions (§17, `watch.rs`).
    pub(crate) watches: Watches,
    /// Requests refused `Overloaded` because `in_flight_max` were in flight (a metric).
    refused_in_flight_max: u64,
}

impl Proxy {
    /// A proxy serving `clusters` (name → master ids). Names and master lists are validated.
    pub fn new(
        id: ProxyId,
        config: Config,
        clusters: BTreeMap<String, Vec<NodeId>>,
    ) -> Result<Proxy, ConfigError> {
        config.validate()?;
        for (name, masters) in &clusters {
            validate_cluster_name(name)?;
            let distinct: BTreeSet<&NodeId> = masters.iter().collect();
            let reason = if masters.is_empty() {
                Some("it lists no master")
            } else if distinct.len() != masters.len() {
                Some("it lists a master twice")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(ConfigError::ClusterMasters {
                    name: name.clone(),
                    reason,
                });
            }
        }
        Ok(Proxy {
            id,
            leader_cache: LeaderCache {
                leaders: BTreeMap::new(),
                order: VecDeque::new(),
                entries_max: usize::try_from(config.leader_cache_max).unwrap_or(usize::MAX),
            },
            probe_next: BTreeMap::new(),
            ledger: Ledger::new(config.in_flight_max),
            config,
            clusters,
            forwarded: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            next_request_id: 1,
            now_ticks: 0,
            messages: Vec::new(),
            replies: Vec::new(),
            trace: TraceBuffer::default(),
            refused_in_flight_max: 0,
            watches: Watches::default(),
        })
    }

    /// Turns trace events on or off.
    pub fn set_tracing(&mut self, enabled: bool) {
        self.trace.enabled = enabled;
    }

    /// A client's `Request { request_id, cluster, operation }` (§9.4): accepted into the ledger,
    /// then completed at once (`UnknownCluster`, `Overloaded`) or forwarded.
    pub fn handle_request(
        &mut self,
        client: ClientId,
        request_id: RequestId,
        cluster: &str,
        operation: Operation,
    ) {
        self.trace.record(|| TraceKind::Receive {
            from: Endpoint::Client(client),
            message: Message::Request {
                request_id,
                cluster: cluster.to_string(),
                operation: operation.clone(),
            },
        });
        let pending = self.ledger.accept(client, request_id);
        self.admit(pending, cluster, ForwardedOperation::Register(operation));
        self.finish_input();
    }

    /// A client's `KvRequest { request_id, cluster, operation }` (§14–§16, §17.7): as a
    /// `Request`, and a `Txn` over its bounds is refused `InvalidRequest` once the cluster is
    /// known (§15.2), never forwarded.
    pub fn handle_kv_request(
        &mut self,
        client: ClientId,
        request_id: RequestId,
        cluster: &str,
        operation: KvOperation,
    ) {
        self.trace.record(|| TraceKind::Receive {
            from: Endpoint::Client(client),
            message: Message::KvRequest {
                request_id,
                cluster: cluster.to_string(),
                operation: operation.clone(),
            },
        });
        let pending = self.ledger.accept_kv(client, request_id);
        self.admit(pending, cluster, ForwardedOperation::Kv(operation));
        self.finish_input();
    }

    /// A client's `KvRequest` the host refused before the protocol (as [`Proxy::deny_request`]).
    pub fn deny_kv_request(
        &mut self,
        client: ClientId,
        request_id: RequestId,
        cluster: &str,
        operation: KvOperation,
    ) {
        self.trace.record(|| TraceKind::Receive {
            from: Endpoint::Client(client),
            message: Message::KvRequest {
                request_id,
                cluster: cluster.to_string(),
                operation,
            },
        });
        let pending = self.ledger.accept_kv(client, request_id);
        self.trace
            .record(|| TraceKind::RequestAccepted { client, request_id });
        pending.complete(Err(ClientError::PermissionDenied));
        self.finish_input();
    }

    /// A client's `Request` the host refused before the protocol: the client's token for
    /// `cluster` is missing or wrong. Accepted into the ledger and completed at once with
    /// `PermissionDenied`, so it is answered exactly once like every other request.
    pub fn deny_request(
        &mut self,
        client: ClientId,
        request_id: RequestId,
        cluster: &str,
        operation: Operation,
    ) {
        self.trace.record(|| TraceKind::Receive {
            from: Endpoint::Client(client),
            message: Message::Request {
                request_id,
                cluster: cluster.to_string(),
                operation,
            },
        });
        let pending = self.ledger.accept(client, request_id);
        self.trace
            .record(|| TraceKind::RequestAccepted { client, request_id });
        pending.complete(Err(ClientError::PermissionDenied));
        self.finish_input();
    }

    /// Accepts `pending` into the ledger's books (done by the caller) and completes it at once
    /// (`UnknownCluster`, `InvalidRequest`, `Overloaded`) or forwards it.
    fn admit(&mut self, pending: PendingRequest, cluster: &str, operation: ForwardedOperation) {
        let (client, request_id) = (pending.client(), pending.request_id());
        self.trace
            .record(|| TraceKind::RequestAccepted { client, request_id });
        if !self.clusters.contains_key(cluster) {
            if self.planted(Mutation::ErrorPathLeak) {
                // Planted bug: the incident's early return. The pending value is leaked without
                // completing, so the client never hears back and `in_flight` never comes down.
                std::mem::forget(pending);
                return;
            }
            pending.complete(Err(ClientError::UnknownCluster));
            return;
        }
        if let ForwardedOperation::Kv(operation) = &operation {
            if let Err(error) = self.config.check_kv_request(operation) {
                pending.complete(Err(error));
                return;
            }
        }
        if self.ledger.is_full_besides(1) {
            self.refused_in_flight_max += 1;
            pending.complete(Err(ClientError::Overloaded));
            return;
        }
        let forward_id = self.next_request_id;
        self.next_request_id += 1;
        let deadline_ticks = self.now_ticks + self.config.request_timeout_ticks;
        let target = self.target_for(cluster);
        self.deadlines.insert((deadline_ticks, forward_id));
        self.forwarded.insert(
            forward_id,
            Forwarded {
                pending,
                cluster: cluster.to_string(),
                operation,
                target,
                redirects: 0,
                deadline_ticks,
            },
        );
        self.send_propose(forward_id);
    }

    /// The cached leader of `cluster`, or the next master in turn.
    fn target_for(&mut self, cluster: &str) -> NodeId {
        if let Some(leader) = self.leader_cache.get(cluster) {
            return leader;
        }
        self.next_in_turn(cluster)
    }

    pub(crate) fn next_in_turn(&mut self, cluster: &str) -> NodeId {
        let masters = &self.clusters[cluster];
        let next = self.probe_next.entry(cluster.to_string()).or_insert(0);
        let target = masters[*next % masters.len()];
        *next = (*next + 1) % masters.len();
        target
    }

    fn send_propose(&mut self, forward_id: RequestId) {
        let forwarded = &self.forwarded[&forward_id];
        let message = match &forwarded.operation {
            ForwardedOperation::Register(operation) => Message::Propose {
                request_id: forward_id,
                operation: operation.clone(),
            },
            ForwardedOperation::Kv(operation) => Message::KvPropose {
                request_id: forward_id,
                operation: operation.clone(),
            },
        };
        let envelope = ProxyEnvelope {
            cluster: forwarded.cluster.clone(),
            to: forwarded.target,
            message,
        };
        self.trace.record(|| TraceKind::Send {
            to: Endpoint::Master {
                node: envelope.to,
                cluster: Some(envelope.cluster.clone()),
            },
            message: envelope.message.clone(),
        });
        self.messages.push(envelope);
    }

    /// A message from master `from` of `cluster`: `ProposeReply`, `KvProposeReply`, `Events`
    /// or `SubscriptionCompacted`.
    pub fn step(
        &mut self,
        cluster: &str,
        from: NodeId,
        message: Message,
    ) -> Result<(), ProxyStepError> {
        if !self.clusters.contains_key(cluster) {
            return Err(ProxyStepError::UnknownCluster {
                cluster: cluster.to_string(),
            });
        }
        if let Message::Events { .. } | Message::SubscriptionCompacted { .. } = &message {
            self.trace.record(|| TraceKind::Receive {
                from: Endpoint::Master {
                    node: from,
                    cluster: Some(cluster.to_string()),
                },
                message: message.clone(),
            });
            match message {
                Message::Events {
                    revision,
                    revisions,
                } => self.handle_events(cluster, from, revision, revisions),
                Message::SubscriptionCompacted { compact_revision } => {
                    self.handle_subscription_compacted(cluster, from, compact_revision);
                }
                _ => unreachable!("matched above"),
            }
            self.finish_input();
            return Ok(());
        }
        let (request_id, outcome) = match &message {
            Message::ProposeReply {
                request_id,
                outcome,
            } => (*request_id, outcome.clone().map(Applied::Register)),
            Message::KvProposeReply {
                request_id,
                outcome,
            } => (*request_id, outcome.clone().map(Applied::Kv)),
            other => {
                return Err(ProxyStepError::NotForProxy {
                    message: other.name(),
                })
            }
        };
        let kv = matches!(message, Message::KvProposeReply { .. });
        self.trace.record(|| TraceKind::Receive {
            from: Endpoint::Master {
                node: from,
                cluster: Some(cluster.to_string()),
            },
            message,
        });
        self.handle_propose_reply(cluster, from, request_id, kv, outcome);
        self.finish_input();
        Ok(())
    }

    /// `ProposeReply` or `KvProposeReply { request_id, outcome }` (§9.4.5–6): complete, or
    /// follow a redirect; a reply for a completed request (or of the other API, which no
    /// correct master sends) is a late reply, ignored.
    fn handle_propose_reply(
        &mut self,
        cluster: &str,
        from: NodeId,
        request_id: RequestId,
        kv: bool,
        outcome: Result<Applied, MasterError>,
    ) {
        let matching = self
            .forwarded
            .get(&request_id)
            .is_some_and(|forwarded| forwarded.pending.is_kv() == kv);
        let Some(forwarded) = self.forwarded.remove(&request_id).filter(|_| matching) else {
            self.ledger.record_late_reply();
            self.trace.record(|| TraceKind::LateReply { request_id });
            return;
        };
        let outcome = match outcome {
            Ok(result) => {
                self.leader_cache.insert(cluster, from);
                Ok(result)
            }
            Err(MasterError::NotLeader { leader_hint }) => {
                self.redirect_or_give_up(request_id, forwarded, from, leader_hint);
                return;
            }
            Err(MasterError::Overloaded) => Err(ClientError::Overloaded),
            Err(MasterError::LeaderChanged) => {
                self.leader_cache.remove(cluster);
                Err(ClientError::LeaderChanged)
            }
        };
        self.deadlines
            .remove(&(forwarded.deadline_ticks, request_id));
        forwarded.pending.complete(outcome);
    }

    /// §9.4.5: forward `request_id` again (to the hinted leader, or the next master in turn),
    /// or complete it with `NoLeader` once `redirects_max` redirects are spent.
    fn redirect_or_give_up(
        &mut self,
        request_id: RequestId,
        mut forwarded: Forwarded,
        from: NodeId,
        leader_hint: Option<NodeId>,
    ) {
        let cluster = forwarded.cluster.clone();
        if forwarded.redirects >= self.config.redirects_max {
            self.leader_cache.remove(&cluster);
            self.deadlines
                .remove(&(forwarded.deadline_ticks, request_id));
            forwarded.pending.complete(Err(ClientError::NoLeader));
            return;
        }
        forwarded.redirects += 1;
        forwarded.target = match leader_hint {
            Some(leader) if leader != from && self.is_master(&cluster, leader) => {
                self.leader_cache.insert(&cluster, leader);
                leader
            }
            _ => {
                self.leader_cache.remove(&cluster);
                self.next_in_turn(&cluster)
            }
        };
        self.forwarded.insert(request_id, forwarded);
        self.send_propose(request_id);
    }

    fn is_master(&self, cluster: &str, node: NodeId) -> bool {
        self.clusters
            .get(cluster)
            .is_some_and(|masters| masters.contains(&node))
    }

    /// One tick: requests past `request_timeout_ticks` complete with `Timeout` (§9.4.6).
    pub fn tick(&mut self) {
        self.now_ticks += 1;
        while let Some(&(deadline_ticks, request_id)) = self.deadlines.first() {
            if deadline_ticks > self.now_ticks {
                break;
            }
            self.deadlines.pop_first();
            self.on_request_timeout(request_id);
        }
        self.finish_input();
    }

    /// The host's connection to master `node` of `cluster` closed (the master died, or the
    /// connection broke): no `ProposeReply` can come back on it, so every request forwarded to
    /// that master completes now with `Timeout` instead of at its deadline (§9.4.6). The
    /// outcome is indeterminate, exactly as at the deadline: the master may have chosen the
    /// operation before it went. This is the model's `RequestTimeout`, which may fire at any
    /// time; firing early is one of its behaviours.
    pub fn link_closed(&mut self, cluster: &str, node: NodeId) {
        let lost: Vec<RequestId> = self
            .forwarded
            .iter()
            .filter(|(_, forwarded)| forwarded.cluster == cluster && forwarded.target == node)
            .map(|(request_id, _)| *request_id)
            .collect();
        for request_id in lost {
            self.expire_now(request_id);
        }
        // The timeouts' completions belong to their input: `ConnectionClosed` starts another.
        self.finish_input();
        self.connection_closed(cluster, node);
        self.finish_input();
    }

    /// `ForwardLost` (§9.4.6): the host could not hand the `Propose` of forwarded request
    /// `request_id` to a connection (none is up to its master, or the link's queue is full), so
    /// the master never saw it. Handled as `NotLeader` without a hint from that master: the
    /// next master in turn, or `NoLeader` (definitely not applied) once the redirects are
    /// spent. A request no longer forwarded is left alone.
    pub fn forward_lost(&mut self, request_id: RequestId) {
        let Some(forwarded) = self.forwarded.remove(&request_id) else {
            return;
        };
        self.trace.record(|| TraceKind::ForwardLost { request_id });
        let from = forwarded.target;
        self.redirect_or_give_up(request_id, forwarded, from, None);
        self.finish_input();
    }

    /// `RequestTimeout` before the deadline: the deadline entry goes with the request.
    fn expire_now(&mut self, request_id: RequestId) {
        if let Some(forwarded) = self.forwarded.get(&request_id) {
            let deadline = (forwarded.deadline_ticks, request_id);
            // Planted bug: the deadline stays, so the request times out again.
            if !self.planted(Mutation::DoubleComplete) {
                self.deadlines.remove(&deadline);
            }
        }
        self.on_request_timeout(request_id);
    }

    /// `RequestTimeout` for one forwarded request.
    fn on_request_timeout(&mut self, request_id: RequestId) {
        self.trace.record(|| TraceKind::Timeout {
            timer: Timer::Request,
        });
        if self.planted(Mutation::DoubleComplete) {
            // Planted bug: the timeout answers the client but leaves the request pending, so a
            // late reply completes it a second time.
            if let Some(forwarded) = self.forwarded.get_mut(&request_id) {
                forwarded
                    .pending
                    .record_without_consuming(Err(ClientError::Timeout));
            }
            return;
        }
        if let Some(forwarded) = self.forwarded.remove(&request_id) {
            // No answer in time: forget the cluster's cached leader, whichever master it names
            // (§9.4.5, as the model's `on_request_timeout`); the next request asks in turn.
            self.leader_cache.remove(&forwarded.cluster);
            forwarded.pending.complete(Err(ClientError::Timeout));
        }
    }

    /// True if [`Proxy::ready`] has something to hand out.
    pub fn has_ready(&self) -> bool {
        !self.messages.is_empty() || !self.replies.is_empty() || !self.trace.finished.is_empty()
    }

    /// Takes the output accumulated since the last call.
    pub fn ready(&mut self) -> ProxyReady {
        ProxyReady {
            messages: std::mem::take(&mut self.messages),
            replies: std::mem::take(&mut self.replies),
            trace: std::mem::take(&mut self.trace.finished),
        }
    }

    /// The ledger's counters (§9.4.7).
    pub fn ledger(&self) -> LedgerCounters {
        self.ledger.counters()
    }

    /// Requests this proxy refused `Overloaded` itself, `in_flight_max` being in flight (a
    /// master's `Overloaded` relayed is not counted here but at that master).
    pub fn refused_in_flight_max(&self) -> u64 {
        self.refused_in_flight_max
    }

    /// This proxy's id.
    pub fn id(&self) -> ProxyId {
        self.id
    }

    /// The watch ledger's counters (§17.4).
    pub fn watch_ledger(&self) -> WatchLedgerCounters {
        self.watches.ledger.counters()
    }

    /// The subscription of `cluster`: its master and the revision the stream brings next (0:
    /// not known yet), if the proxy holds one.
    pub fn subscription(&self, cluster: &str) -> Option<(NodeId, crate::kv_types::Revision)> {
        self.watches.subscription(cluster)
    }

    /// The cached leader of `cluster`, if any.
    pub fn cached_leader(&self, cluster: &str) -> Option<NodeId> {
        self.leader_cache.get(cluster)
    }

    /// The clusters served, name → master ids.
    pub fn clusters(&self) -> &BTreeMap<String, Vec<NodeId>> {
        &self.clusters
    }

    /// True if the planted bug `mutation` is switched on (never without the cargo feature
    /// `mutations`, `mutation.rs`).
    pub(crate) const fn planted(&self, mutation: Mutation) -> bool {
        self.config.mutations.contains(mutation)
    }

    /// The ledger's invariants after every input (§9.4.7). A planted bug switches off only what
    /// it breaks by design, so that conformance, not a panic, has to catch it: a leaked request
    /// stays in flight without being forwarded, and leaked requests can push `in_flight` past
    /// its bound (the unknown-cluster path returns before the bound is checked); a request the
    /// timeout completed without consuming stays forwarded after it left `in_flight`, and its
    /// second completion unbalances the counters.
    fn check_ledger(&self, counters: &LedgerCounters) {
        let leaks = self.planted(Mutation::ErrorPathLeak);
        let completes_twice = self.planted(Mutation::DoubleComplete);
        if !completes_twice {
            assert!(
                counters.is_balanced(),
                "ledger out of balance: {counters:?}"
            );
        }
        if !leaks {
            assert!(
                counters.in_flight <= self.config.in_flight_max,
                "in_flight above in_flight_max: {counters:?}"
            );
        }
        if !leaks && !completes_twice {
            assert_eq!(
                counters.in_flight,
                self.forwarded.len() as u64,
                "every request in flight is forwarded"
            );
        }
    }

    /// Ends an input: completions become replies and `RequestCompleted` events, and the ledger's
    /// invariants are asserted.
    pub(crate) fn finish_input(&mut self) {
        self.finish_watches();
        for completion in self.ledger.drain_completions() {
            let (client, request_id) = (completion.client, completion.request_id);
            let message = match completion.outcome {
                RequestOutcome::Register(outcome) => {
                    self.trace.record(|| TraceKind::RequestCompleted {
                        client,
                        request_id,
                        outcome: outcome.clone(),
                    });
                    Message::Reply {
                        request_id,
                        outcome,
                    }
                }
                RequestOutcome::Kv(outcome) => {
                    self.trace.record(|| TraceKind::KvRequestCompleted {
                        client,
                        request_id,
                        outcome: outcome.clone(),
                    });
                    Message::KvReply {
                        request_id,
                        outcome,
                    }
                }
            };
            self.trace.record(|| TraceKind::Send {
                to: Endpoint::Client(completion.client),
                message: message.clone(),
            });
            self.replies.push(ClientEnvelope {
                to: completion.client,
                message,
            });
        }
        let counters = self.ledger.counters();
        self.check_ledger(&counters);
        if self.trace.has_open() {
            self.trace
                .finish(Origin::Proxy(self.id), PostState::Proxy(counters));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{OperationResult, ProposeOutcome};

    fn proxy(config: Config) -> Proxy {
        let clusters = BTreeMap::from([("local".to_string(), vec![0, 1, 2])]);
        Proxy::new(9, config, clusters).expect("valid")
    }

    fn get() -> Operation {
        Operation::Get { key: b"k".to_vec() }
    }

    fn reply(request_id: RequestId, outcome: ProposeOutcome) -> Message {
        Message::ProposeReply {
            request_id,
            outcome,
        }
    }

    fn value() -> ProposeOutcome {
        Ok(OperationResult::Value {
            value: None,
            version: 0,
        })
    }

    #[test]
    fn unknown_cluster_completes_at_once() {
        let mut proxy = proxy(Config::default());
        proxy.handle_request(1, 5, "wrong", get());
        let ready = proxy.ready();
        assert!(ready.messages.is_empty());
        assert_eq!(ready.replies.len(), 1);
        assert_eq!(
            ready.replies[0].message,
            Message::Reply {
                request_id: 5,
                outcome: Err(ClientError::UnknownCluster)
            }
        );
        let ledger = proxy.ledger();
        assert_eq!(
            (ledger.accepted, ledger.completed_err, ledger.in_flight),
            (1, 1, 0)
        );
    }

    #[test]
    fn a_denied_request_is_completed_once_and_never_forwarded() {
        let mut proxy = proxy(Config::default());
        proxy.deny_request(1, 6, "local", get());
        let ready = proxy.ready();
        assert!(ready.messages.is_empty(), "nothing reaches a master");
        assert_eq!(
            ready.replies,
            vec![ClientEnvelope {
                to: 1,
                message: Message::Reply {
                    request_id: 6,
                    outcome: Err(ClientError::PermissionDenied)
                }
            }]
        );
        let ledger = proxy.ledger();
        assert_eq!(
            (ledger.accepted, ledger.completed_err, ledger.in_flight),
            (1, 1, 0)
        );
    }

    #[test]
    fn a_late_reply_is_ignored_and_counted() {
        let config = Config {
            request_timeout_ticks: 2,
            ..Config::default()
        };
        let mut proxy = proxy(config);
        proxy.handle_request(1, 5, "local", get());
        let forward_id = match &proxy.ready().messages[0].message {
            Message::Propose { request_id, .. } => *request_id,
            other => panic!("unexpected {other}"),
        };
        proxy.tick();
        proxy.tick();
        assert_eq!(proxy.ready().replies.len(), 1, "timed out");
        proxy.step("local", 0, reply(forward_id, value())).unwrap();
        assert!(proxy.ready().replies.is_empty(), "no second completion");
        let ledger = proxy.ledger();
        assert_eq!(ledger.completed_err, 1);
        assert_eq!(ledger.completed_ok, 0);
        assert_eq!(ledger.late_replies, 1);
    }

    /// The forwarding id of the one `Propose` in `ready`, and the master it went to.
    fn forwarded_to(ready: &ProxyReady) -> (RequestId, NodeId) {
        match ready.messages.as_slice() {
            [ProxyEnvelope {
                to,
                message: Message::Propose { request_id, .. },
                ..
            }] => (*request_id, *to),
            other => panic!("expected one Propose, got {other:?}"),
        }
    }

    #[test]
    fn a_closed_links_timeouts_are_completed_before_its_connection_closed_input() {
        let mut proxy = proxy(Config::default());
        proxy.set_tracing(true);
        let watch = crate::kv_types::WatchRequest {
            range: crate::kv_types::KeyRange::prefix(b"w/"),
            start_revision: 1,
            prev_kv: false,
            filter: None,
        };
        proxy.handle_watch_create(2, 1, "local", watch);
        let (subscribed_at, _) = proxy.subscription("local").expect("subscribed");
        proxy.ready();
        let mut forwarded_there = false;
        for request_id in 1..=3 {
            proxy.handle_request(1, request_id, "local", get());
            let (_, target) = forwarded_to(&proxy.ready());
            forwarded_there |= target == subscribed_at;
        }
        assert!(forwarded_there, "masters in turn");
        proxy.link_closed("local", subscribed_at);
        let kinds: Vec<&'static str> = proxy
            .ready()
            .trace
            .iter()
            .map(|event| match &event.kind {
                TraceKind::Timeout { .. } => "Timeout",
                TraceKind::RequestCompleted { .. } => "RequestCompleted",
                TraceKind::ConnectionClosed { .. } => "ConnectionClosed",
                TraceKind::Send { .. } => "Send",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "Timeout",
                "RequestCompleted",
                "Send",
                "ConnectionClosed",
                "Send"
            ],
            "the Reply is sent in the timeout's input, the Subscribe in the close's"
        );
    }

    #[test]
    fn a_closed_link_completes_only_the_requests_sent_over_it() {
        let config = Config {
            request_timeout_ticks: 1_000,
            ..Config::default()
        };
        let mut proxy = proxy(config);
        proxy.handle_request(1, 5, "local", get());
        let (first, first_target) = forwarded_to(&proxy.ready());
        proxy.handle_request(1, 6, "local", get());
        let (second, second_target) = forwarded_to(&proxy.ready());
        assert_ne!(first_target, second_target, "masters in turn");

        proxy.link_closed("local", first_target);
        let ready = proxy.ready();
        assert_eq!(
            ready.replies,
            vec![ClientEnvelope {
                to: 1,
                message: Message::Reply {
                    request_id: 5,
                    outcome: Err(ClientError::Timeout)
                }
            }],
            "completed now, not at the deadline 1,000 ticks away"
        );
        proxy.link_closed("local", first_target);
        proxy.link_closed("other", second_target);
        assert!(proxy.ready().replies.is_empty(), "nothing completes twice");
        assert_eq!(proxy.ledger().in_flight, 1, "the other request still waits");

        proxy
            .step("local", first_target, reply(first, value()))
            .unwrap();
        assert_eq!(proxy.ledger().late_replies, 1, "a reply after it is late");
        proxy
            .step("local", second_target, reply(second, value()))
            .unwrap();
        let ledger = proxy.ledger();
        assert_eq!(
            (ledger.completed_ok, ledger.completed_err, ledger.in_flight),
            (1, 1, 0)
        );
        assert_eq!(
            proxy.ready().replies.len(),
            1,
            "the second request's answer"
        );
        for _ in 0..1_000 {
            proxy.tick();
        }
        assert!(proxy.ready().replies.is_empty(), "no deadline left behind");
    }

    #[test]
    fn a_lost_forward_goes_to_the_next_master_then_gives_up_with_no_leader() {
        let config = Config {
            redirects_max: 1,
            ..Config::default()
        };
        let mut proxy = proxy(config);
        proxy.handle_request(1, 5, "local", get());
        let (forward_id, first) = forwarded_to(&proxy.ready());
        proxy.forward_lost(forward_id);
        let ready = proxy.ready();
        assert!(ready.replies.is_empty(), "not answered yet");
        let (again, second) = forwarded_to(&ready);
        assert_eq!(again, forward_id);
        assert_ne!(second, first, "the next master in turn");
        proxy.forward_lost(forward_id);
        let replies = proxy.ready().replies;
        assert_eq!(
            replies,
            vec![ClientEnvelope {
                to: 1,
                message: Message::Reply {
                    request_id: 5,
                    outcome: Err(ClientError::NoLeader)
                }
            }],
            "definitely not applied: no master saw it"
        );
        proxy.forward_lost(forward_id);
        assert!(proxy.ready().replies.is_empty(), "nothing completes twice");
        for _ in 0..Config::default().request_timeout_ticks {
            proxy.tick();
        }
        assert!(proxy.ready().replies.is_empty(), "no deadline left behind");
        let ledger = proxy.ledger();
        assert_eq!((ledger.completed_err, ledger.in_flight), (1, 0));
    }

    #[test]
    fn exactly_one_reply_per_request() {
        let mut proxy = proxy(Config::default());
        proxy.handle_request(1, 5, "local", get());
        let forward_id = match &proxy.ready().messages[0].message {
            Message::Propose { request_id, .. } => *request_id,
            other => panic!("unexpected {other}"),
        };
        proxy.step("local", 0, reply(forward_id, value())).unwrap();
        proxy.step("local", 0, reply(forward_id, value())).unwrap();
        assert_eq!(proxy.ready().replies.len(), 1);
        assert_eq!(proxy.ledger().late_replies, 1);
        assert_eq!(proxy.cached_leader("local"), Some(0));
    }

    /// A request sent in turn to one master times out after another master's reply put that
    /// one in the cache: the timeout still forgets the cache (§9.4.5), as the model does.
    #[test]
    fn a_timeout_forgets_the_cached_leader_whichever_master_it_names() {
        let mut proxy = proxy(Config::default());
        proxy.handle_request(1, 1, "local", get());
        proxy.handle_request(1, 2, "local", get());
        let forwarded: Vec<(u64, u64)> = proxy
            .ready()
            .messages
            .iter()
            .map(|envelope| match &envelope.message {
                Message::Propose { request_id, .. } => (*request_id, envelope.to),
                other => panic!("unexpected {other}"),
            })
            .collect();
        let [(_, first_target), (second, second_target)] = forwarded[..] else {
            panic!("two proposals expected: {forwarded:?}");
        };
        assert_ne!(first_target, second_target, "a cache miss asks in turn");
        proxy
            .step("local", second_target, reply(second, value()))
            .unwrap();
        assert_eq!(proxy.cached_leader("local"), Some(second_target));
        for _ in 0..Config::default().request_timeout_ticks {
            proxy.tick();
        }
        assert_eq!(
            proxy.ready().replies.len(),
            2,
            "the first completed Timeout"
        );
        assert_eq!(proxy.cached_leader("local"), None);
    }

    #[test]
    fn overloaded_beyond_in_flight_max() {
        let config = Config {
            in_flight_max: 2,
            ..Config::default()
        };
        let mut proxy = proxy(config);
        for request_id in 0..3 {
            proxy.handle_request(1, request_id, "local", get());
        }
        let ready = proxy.ready();
        assert_eq!(ready.messages.len(), 2);
        assert_eq!(ready.replies.len(), 1);
        assert_eq!(
            ready.replies[0].message,
            Message::Reply {
                request_id: 2,
                outcome: Err(ClientError::Overloaded)
            }
        );
        assert_eq!(proxy.ledger().in_flight, 2);
    }

    #[test]
    fn redirects_are_bounded() {
        let config = Config {
            redirects_max: 2,
            ..Config::default()
        };
        let mut proxy = proxy(config);
        proxy.handle_request(1, 5, "local", get());
        let mut targets = vec![proxy.ready().messages[0].to];
        let not_leader = || Err(MasterError::NotLeader { leader_hint: None });
        for _ in 0..3 {
            let from = *targets.last().unwrap();
            proxy.step("local", from, reply(1, not_leader())).unwrap();
            let ready = proxy.ready();
            targets.extend(ready.messages.iter().map(|envelope| envelope.to));
            if let Some(reply) = ready.replies.first() {
                assert_eq!(
                    reply.message,
                    Message::Reply {
                        request_id: 5,
                        outcome: Err(ClientError::NoLeader)
                    }
                );
            }
        }
        assert_eq!(targets, vec![0, 1, 2], "masters in turn, two redirects");
        assert_eq!(proxy.ledger().completed_err, 1);
    }

    #[test]
    fn the_leader_cache_is_bounded() {
        let config = Config {
            leader_cache_max: 1,
            ..Config::default()
        };
        let clusters = BTreeMap::from([("a".to_string(), vec![0]), ("b".to_string(), vec![0])]);
        let mut proxy = Proxy::new(1, config, clusters).unwrap();
        for (request_id, cluster) in [(1, "a"), (2, "b")] {
            proxy.handle_request(1, request_id, cluster, get());
            proxy.step(cluster, 0, reply(request_id, value())).unwrap();
        }
        assert_eq!(proxy.cached_leader("a"), None);
        assert_eq!(proxy.cached_leader("b"), Some(0));
    }

    #[test]
    fn invalid_cluster_configuration_names_the_cluster() {
        let clusters = BTreeMap::from([("bad name".to_string(), vec![0])]);
        let error = Proxy::new(1, Config::default(), clusters).unwrap_err();
        assert!(error.to_string().contains("bad name"), "{error}");
        let clusters = BTreeMap::from([("c".to_string(), vec![])]);
        assert!(Proxy::new(1, Config::default(), clusters).is_err());
    }
}
