//! THE mapping between the implementation's vocabulary (`vigil_core`) and the model's
//! (`vigil_model`). Nothing else in the workspace knows both (`docs/architecture.md`).
//!
//! It does four things:
//! 1. [`Vocabulary::build`] reads a merged run once and builds the model's parameters for it:
//!    the masters, the model clients and their scripts, keys and values as small numbers (each
//!    the rank of its bytes, so ranges and compares order alike), the served cluster as `0` and
//!    any other cluster name as `1`. Each register request becomes one operation of a
//!    closed-loop model client; each client connection of the revisioned API (`KvRequest`,
//!    `WatchCreate`, `WatchCancel`, `WatchProgressRequest`, `ClientClosed`) becomes one model
//!    revisioned client whose `KvStep`s are what it sent, in order (its watches live and end
//!    with the connection). Model request and watch ids follow from the scripts. The model
//!    runs unbounded for replay (budgets at their maximum, no in-flight bound, links unordered
//!    because the host sends heartbeats ahead of messages that wait for the disk), with the
//!    run's protocol bounds.
//! 2. [`Vocabulary::actions`] turns the event that starts an input of a node into the model
//!    actions of that input: one action per handler (`docs/protocol.md` §11), `Pause` and
//!    `Resume` for a master's pause events (schema 2), plus the untraced client's
//!    `ClientRequest` in front of the proxy's receive of a client's step, `Crash` in front of a
//!    master's second and later `Restart`, and the delivery of `ConnectionClosed` for the
//!    proxy's host noticing a closed master connection.
//! 3. [`master_view`] and [`ledger_view`] abstract the model's state into the implementation's
//!    post-state types, and [`Vocabulary::message`] / [`Vocabulary::client_message`] map a
//!    message, so that replay compares like with like.
//! 4. [`history_records`] turns the model's client history into the implementation's
//!    operations and results, for the per-key linearizability check the nemesis uses too.
//!
//! Limits of the model's representation, reported as errors rather than truncated: each number
//! must fit the model's type for it (`vigil_model::types`: nodes, clients, keys and values are
//! `u8`, revisions `u32`), the model has no snapshots, no client tokens (`PermissionDenied`,
//! `WatchDenied`) and no watch dropped unended.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use vigil_core as core;
use vigil_core::kv_types as core_kv;
use vigil_model as model;
use vigil_model::kv_types as model_kv;
use vigil_model::{Action, Config, Endpoint, Message};

use crate::merge::{party_of_endpoint, party_of_origin, Merged, Party};
use crate::nemesis::history::{Call, Outcome, Record};

/// Why a run cannot be expressed in the model.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MappingError {
    /// A number does not fit the model's type for it.
    #[error("{what} {value} exceeds the model's range for it: shorten the run")]
    OutOfRange {
        /// Which quantity.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// Something the model does not represent.
    #[error("not representable in the model: {0}")]
    Unsupported(String),
    /// An event names a request the run never accepted.
    #[error("unknown request: {0}")]
    UnknownRequest(String),
    /// An event names a master the run does not have.
    #[error("m{node} is not a master of this run (it has {masters})")]
    UnknownMaster {
        /// The master named.
        node: u64,
        /// The run's masters.
        masters: u64,
    },
}

/// `value` in the model's type for it (the model's integer types are narrower than the core's).
fn fit<T: TryFrom<u64>>(what: &'static str, value: u64) -> Result<T, MappingError> {
    T::try_from(value).map_err(|_| MappingError::OutOfRange { what, value })
}

/// `value` in the model's type for it, or the largest value that type holds (for limits that a
/// real configuration sets far above anything a run reaches).
fn saturate<T: TryFrom<u64>>(value: u64) -> T {
    [
        value,
        u64::from(u32::MAX),
        u64::from(u16::MAX),
        u64::from(u8::MAX),
    ]
    .into_iter()
    .find_map(|candidate| T::try_from(candidate).ok())
    .expect("every model integer holds 255")
}

/// One accepted proxy request and where it lives in the model.
#[derive(Clone, Copy, Debug)]
struct RequestSlot {
    client: model::types::ClientId,
    model_id: model::types::RequestId,
}

/// Everything learned from one run that the mapping needs: the model configuration and the
/// tables from implementation names to model names.
#[derive(Clone, Debug)]
pub struct Vocabulary {
    /// The model's parameters for this run.
    pub config: Config,
    served_cluster: String,
    keys: Codes,
    values: Codes,
    /// (client connection, client request id) → model request, of either API.
    requests: HashMap<(u64, u64), RequestSlot>,
    /// A client connection of the revisioned API → its model client (one per connection: its
    /// watches live and end with the connection).
    kv_clients: HashMap<u64, model::types::ClientId>,
    /// (client connection, client watch id) → model watch id (its `Watch` step's request id).
    watches: HashMap<(u64, u64), model::kv_types::WatchId>,
    /// The proxy's forwarding id → model request id.
    forwards: HashMap<u64, model::types::RequestId>,
    /// Merged index of a proxy `RequestTimeout` event → the model request it times out.
    timeouts: HashMap<usize, model::types::RequestId>,
    /// Masters whose first `Restart` was seen (the next one is a crash and restart).
    started: Vec<bool>,
}

/// A model client being assigned requests in a pre-pass.
struct ClientPlan {
    cluster: u8,
    operations: Vec<model::types::Operation>,
    /// Merged index where its last request completed (`None`: still open).
    free_after: Option<usize>,
    requests: Vec<(u64, u64)>,
}

/// A client connection of the revisioned API being scripted in a pre-pass: every step it sent,
/// in the order the proxy received them (the model's client is closed-loop, as the run's must
/// be).
struct KvPlan {
    connection: u64,
    /// The cluster it names (its first `KvRequest` or `WatchCreate` decides).
    cluster: Option<u8>,
    steps: Vec<model::KvStep>,
    /// (client request id, script position) of each `KvRequest`.
    requests: Vec<(u64, usize)>,
    /// Client watch id → script position of its `WatchCreate`.
    watches: HashMap<u64, usize>,
}

impl KvPlan {
    /// The script position of the watch the client names `watch_id`.
    fn watch_position(&self, watch_id: u64) -> Result<u8, MappingError> {
        let position = self.watches.get(&watch_id).ok_or_else(|| {
            MappingError::UnknownRequest(format!("c{}/w{watch_id}", self.connection))
        })?;
        fit("script position", *position as u64)
    }
}

/// What the pre-pass collects from the proxy's events before the model's requests can be
/// numbered: the model clients' scripts, and the forwarding ids and request timeouts to resolve
/// once they are.
#[derive(Default)]
struct PrePass {
    /// Merged index of each request's first completion.
    completions: HashMap<(u64, u64), usize>,
    plans: Vec<ClientPlan>,
    /// The revisioned clients, in order of their first step.
    kv_plans: Vec<KvPlan>,
    /// The request the proxy accepted last (a `Propose` after it forwards it).
    last_accepted: Option<(u64, u64)>,
    /// The proxy's `Timeout {Request}` events of the current input not yet matched to the
    /// request they complete with `Timeout`.
    open_timeouts: Vec<usize>,
    /// Forwarding id → (client connection, client request id).
    forwards: HashMap<u64, (u64, u64)>,
    /// Merged index of a request timeout → the request it completes.
    timeouts: HashMap<usize, (u64, u64)>,
}

impl PrePass {
    /// Takes in the proxy's event at merged index `index`.
    fn observe(
        &mut self,
        vocabulary: &mut Vocabulary,
        index: usize,
        kind: &core::TraceKind,
    ) -> Result<(), MappingError> {
        match kind {
            core::TraceKind::Receive {
                from: core::Endpoint::Client(client),
                message:
                    core::Message::Request {
                        request_id,
                        cluster,
                        operation,
                    },
            } => {
                self.open_timeouts.clear();
                let operation = vocabulary.operation(operation)?;
                let cluster = u8::from(*cluster != vocabulary.served_cluster);
                self.add_request(index, (*client, *request_id), cluster, operation);
            }
            core::TraceKind::Receive {
                from: core::Endpoint::Client(client),
                message,
            } if is_revisioned_client_step(message) => {
                self.open_timeouts.clear();
                self.add_kv_step(vocabulary, *client, message)?;
            }
            core::TraceKind::Receive { .. } => self.open_timeouts.clear(),
            core::TraceKind::RequestAccepted { client, request_id } => {
                self.last_accepted = Some((*client, *request_id));
            }
            core::TraceKind::Timeout {
                timer: core::Timer::Request,
            } => self.open_timeouts.push(index),
            core::TraceKind::RequestCompleted {
                client,
                request_id,
                outcome: Err(core::ClientError::Timeout),
            }
            | core::TraceKind::KvRequestCompleted {
                client,
                request_id,
                outcome: Err(core::ClientError::Timeout),
            } if !self.open_timeouts.is_empty() => {
                let timeout = self.open_timeouts.remove(0);
                self.timeouts.insert(timeout, (*client, *request_id));
            }
            core::TraceKind::Send {
                message:
                    core::Message::Propose { request_id, .. }
                    | core::Message::KvPropose { request_id, .. },
                ..
            } => {
                if let Some(accepted) = self.last_accepted {
                    self.forwards.entry(*request_id).or_insert(accepted);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Gives request `request` (received at merged index `index`) to a model client of its
    /// cluster whose previous request completed before it arrived, or to a new one.
    fn add_request(
        &mut self,
        index: usize,
        request: (u64, u64),
        cluster: u8,
        operation: model::types::Operation,
    ) {
        let free = self.plans.iter().position(|plan| {
            plan.cluster == cluster && plan.free_after.is_some_and(|free| free < index)
        });
        let position = free.unwrap_or_else(|| {
            self.plans.push(ClientPlan {
                cluster,
                operations: Vec::new(),
                free_after: None,
                requests: Vec::new(),
            });
            self.plans.len() - 1
        });
        let plan = &mut self.plans[position];
        plan.operations.push(operation);
        plan.requests.push(request);
        plan.free_after = self.completions.get(&request).copied();
    }

    /// Appends what connection `connection` sent to its revisioned client's script.
    fn add_kv_step(
        &mut self,
        vocabulary: &Vocabulary,
        connection: u64,
        message: &core::Message,
    ) -> Result<(), MappingError> {
        let position = match self
            .kv_plans
            .iter()
            .position(|plan| plan.connection == connection)
        {
            Some(position) => position,
            None => {
                self.kv_plans.push(KvPlan {
                    connection,
                    cluster: None,
                    steps: Vec::new(),
                    requests: Vec::new(),
                    watches: HashMap::new(),
                });
                self.kv_plans.len() - 1
            }
        };
        let plan = &mut self.kv_plans[position];
        let next = plan.steps.len();
        let (step, cluster) = match message {
            core::Message::KvRequest {
                request_id,
                cluster,
                operation,
            } => {
                plan.requests.push((*request_id, next));
                let operation = vocabulary.kv_operation(operation)?;
                (model::KvStep::Operation(operation), Some(cluster))
            }
            core::Message::WatchCreate {
                watch_id,
                cluster,
                watch,
            } => {
                plan.watches.insert(*watch_id, next);
                let watch = vocabulary.watch_request(watch)?;
                (model::KvStep::Watch(watch), Some(cluster))
            }
            core::Message::WatchCancel { watch_id } => {
                let watch = plan.watch_position(*watch_id)?;
                (model::KvStep::Cancel { watch }, None)
            }
            core::Message::WatchProgressRequest { watch_id } => {
                let watch = plan.watch_position(*watch_id)?;
                (model::KvStep::Progress { watch }, None)
            }
            _ => (model::KvStep::Disconnect, None),
        };
        if let Some(cluster) = cluster {
            let cluster = u8::from(*cluster != vocabulary.served_cluster);
            if *plan.cluster.get_or_insert(cluster) != cluster {
                return Err(MappingError::Unsupported(format!(
                    "client connection c{connection} names two clusters: a model client names one"
                )));
            }
        }
        plan.steps.push(step);
        Ok(())
    }
}

impl Vocabulary {
    /// Reads the run once and builds the model's configuration and the name tables.
    pub fn build(
        merged: &Merged,
        protocol: &core::Config,
        served_cluster: &str,
    ) -> Result<Vocabulary, MappingError> {
        let masters: model::types::NodeId = fit("masters", protocol.masters)?;
        let (keys, values) = codes(merged)?;
        let mut vocabulary = Vocabulary {
            config: base_config(protocol, masters)?,
            served_cluster: served_cluster.to_string(),
            keys,
            values,
            requests: HashMap::new(),
            kv_clients: HashMap::new(),
            watches: HashMap::new(),
            forwards: HashMap::new(),
            timeouts: HashMap::new(),
            started: vec![false; masters as usize],
        };
        let mut pass = PrePass {
            completions: completion_indices(merged),
            ..PrePass::default()
        };
        for (index, event) in merged.events.iter().enumerate() {
            if matches!(event.line.origin, core::Origin::Proxy(_)) {
                pass.observe(&mut vocabulary, index, &event.line.kind)?;
            }
        }
        vocabulary.assign_request_ids(pass.plans, pass.kv_plans)?;
        vocabulary.resolve(pass.forwards, pass.timeouts)?;
        Ok(vocabulary)
    }

    /// Numbers the model requests from the client scripts (register clients first, then the
    /// revisioned ones, as `Config::request_id` does).
    fn assign_request_ids(
        &mut self,
        plans: Vec<ClientPlan>,
        kv_plans: Vec<KvPlan>,
    ) -> Result<(), MappingError> {
        let total: usize = plans
            .iter()
            .map(|plan| plan.operations.len())
            .sum::<usize>()
            + kv_plans.iter().map(|plan| plan.steps.len()).sum::<usize>();
        fit::<model::types::RequestId>("requests in the run", total as u64)?;
        fit::<model::types::ClientId>("model clients", (plans.len() + kv_plans.len()) as u64)?;
        self.config.clients = plans
            .iter()
            .map(|plan| model::ClientScript {
                cluster: plan.cluster,
                operations: plan.operations.clone(),
            })
            .collect();
        self.config.kv_clients = kv_plans
            .iter()
            .map(|plan| model::KvClientScript {
                cluster: plan.cluster.unwrap_or(0),
                steps: plan.steps.clone(),
            })
            .collect();
        for (client, plan) in plans.iter().enumerate() {
            let client = client as model::types::ClientId;
            for (index, request) in plan.requests.iter().enumerate() {
                let model_id = self.config.request_id(client, index);
                self.requests
                    .insert(*request, RequestSlot { client, model_id });
            }
        }
        for (offset, plan) in kv_plans.iter().enumerate() {
            let client = (plans.len() + offset) as model::types::ClientId;
            self.kv_clients.insert(plan.connection, client);
            for (request_id, position) in &plan.requests {
                let model_id = self.config.request_id(client, *position);
                self.requests.insert(
                    (plan.connection, *request_id),
                    RequestSlot { client, model_id },
                );
            }
            for (watch_id, position) in &plan.watches {
                let model_id = self.config.request_id(client, *position);
                self.watches.insert((plan.connection, *watch_id), model_id);
            }
        }
        Ok(())
    }

    fn resolve(
        &mut self,
        forwards: HashMap<u64, (u64, u64)>,
        timeouts: HashMap<usize, (u64, u64)>,
    ) -> Result<(), MappingError> {
        for (forward_id, request) in forwards {
            let slot = self.request(request)?;
            self.forwards.insert(forward_id, slot.model_id);
        }
        for (event, request) in timeouts {
            let slot = self.request(request)?;
            self.timeouts.insert(event, slot.model_id);
        }
        Ok(())
    }

    fn request(&self, request: (u64, u64)) -> Result<RequestSlot, MappingError> {
        self.requests
            .get(&request)
            .copied()
            .ok_or_else(|| MappingError::UnknownRequest(format!("c{}#{}", request.0, request.1)))
    }

    fn forward(&self, forward_id: u64) -> Result<model::types::RequestId, MappingError> {
        self.forwards.get(&forward_id).copied().ok_or_else(|| {
            MappingError::UnknownRequest(format!("proxy forwarding id {forward_id}"))
        })
    }

    /// The model actions of the input that `merged.events[index]` starts; empty for an event
    /// that is a named part of an input (a send, `BecomeLeader`, `CommitAdvance`, ...).
    pub fn actions(&mut self, merged: &Merged, index: usize) -> Result<Vec<Action>, MappingError> {
        let line = &merged.events[index].line;
        let me = party_of_origin(line.origin);
        let actions = match (&line.kind, me) {
            (core::TraceKind::Restart, Party::Master(node)) => {
                let node = self.master(node)?;
                let started = &mut self.started[node as usize];
                if std::mem::replace(started, true) {
                    vec![Action::Crash(node), Action::Restart(node)]
                } else {
                    Vec::new()
                }
            }
            (core::TraceKind::Persist, Party::Master(node)) => {
                vec![Action::Persist(self.master(node)?)]
            }
            (core::TraceKind::Pause, Party::Master(node)) => {
                vec![Action::Pause(self.master(node)?)]
            }
            (core::TraceKind::Resume { .. }, Party::Master(node)) => {
                vec![Action::Resume(self.master(node)?)]
            }
            (core::TraceKind::Receive { from, message }, _) => {
                self.receive_actions(party_of_endpoint(from), me, message)?
            }
            (core::TraceKind::Timeout { timer }, Party::Master(node)) => {
                let node = self.master(node)?;
                vec![match timer {
                    core::Timer::Election => Action::ElectionTimeout(node),
                    core::Timer::Heartbeat => Action::HeartbeatTimeout(node),
                    core::Timer::CheckQuorum => Action::CheckQuorumTimeout(node),
                    core::Timer::Request => {
                        return Err(MappingError::Unsupported(
                            "a request timeout at a master".to_string(),
                        ))
                    }
                }]
            }
            (
                core::TraceKind::Timeout {
                    timer: core::Timer::Request,
                },
                Party::Proxy,
            ) => {
                let Some(model_id) = self.timeouts.get(&index) else {
                    return Err(MappingError::UnknownRequest(format!(
                        "the request timeout at merged event {index} completes no request with Timeout in its input"
                    )));
                };
                vec![Action::RequestTimeout(*model_id)]
            }
            (core::TraceKind::ForwardLost { request_id }, Party::Proxy) => {
                vec![Action::ForwardLost(self.forward(*request_id)?)]
            }
            // The host's notice reaches the proxy on the master's link (the model puts it there
            // when the connection closes: a crash, a lost subscription message, or the close on
            // its own, which replay supplies as a silent `CloseConnection`).
            (core::TraceKind::ConnectionClosed { node, .. }, Party::Proxy) => {
                vec![Action::Deliver {
                    source: Endpoint::Master(self.master(*node)?),
                    destination: Endpoint::Proxy,
                    message: Message::ConnectionClosed,
                }]
            }
            (core::TraceKind::WatchDenied { .. }, Party::Proxy) => {
                return Err(MappingError::Unsupported(
                    "a watch the host denied (PermissionDenied): client tokens are checked by \
                     the host; the model has no authentication (docs/security.md)"
                        .to_string(),
                ))
            }
            _ => Vec::new(),
        };
        Ok(actions)
    }

    fn receive_actions(
        &self,
        from: Party,
        to: Party,
        message: &core::Message,
    ) -> Result<Vec<Action>, MappingError> {
        let mut actions = Vec::new();
        let client_step =
            matches!(message, core::Message::Request { .. }) || is_revisioned_client_step(message);
        if matches!(from, Party::Client(_)) && client_step {
            let client = self.endpoint_for(from, message)?;
            if let Endpoint::Client(client) = client {
                actions.push(Action::ClientRequest(client));
            }
        }
        let source = self.endpoint_for(from, message)?;
        let destination = self.endpoint_for(to, message)?;
        actions.push(Action::Deliver {
            source,
            destination,
            message: receive_message(self, from, message)?,
        });
        Ok(actions)
    }

    /// Master `node` in the model's type, if the run has it.
    fn master(&self, node: u64) -> Result<model::types::NodeId, MappingError> {
        let masters = u64::from(self.config.masters);
        if node >= masters {
            return Err(MappingError::UnknownMaster { node, masters });
        }
        fit("node id", node)
    }

    /// The model endpoint of a party; a client is resolved through the request `message` names.
    pub fn endpoint_for(
        &self,
        party: Party,
        message: &core::Message,
    ) -> Result<Endpoint, MappingError> {
        Ok(match party {
            Party::Master(node) => Endpoint::Master(self.master(node)?),
            Party::Proxy => Endpoint::Proxy,
            Party::Client(client) if is_revisioned_client_message(message) => {
                Endpoint::Client(self.kv_client(client)?)
            }
            Party::Client(client) => {
                let request_id = match message {
                    core::Message::Request { request_id, .. }
                    | core::Message::Reply { request_id, .. } => *request_id,
                    other => {
                        return Err(MappingError::Unsupported(format!(
                            "{} to or from a client",
                            other.name()
                        )))
                    }
                };
                Endpoint::Client(self.request((client, request_id))?.client)
            }
        })
    }

    /// A message in the model's vocabulary.
    #[allow(
        clippy::too_many_lines,
        reason = "a translation table: one arm per message of docs/protocol.md §10"
    )]
    pub fn message(&self, message: &core::Message) -> Result<Message, MappingError> {
        use core::Message as M;
        Ok(match message {
            M::PreVote { ballot } => Message::PreVote {
                ballot: ballot_of(*ballot)?,
            },
            M::PreVoteReply {
                ballot,
                granted,
                leader,
            } => Message::PreVoteReply {
                ballot: ballot_of(*ballot)?,
                granted: *granted,
                leader: leader.map(ballot_of).transpose()?,
            },
            M::Prepare {
                ballot,
                commit_index,
            } => Message::Prepare {
                ballot: ballot_of(*ballot)?,
                commit_index: fit("slot", *commit_index)?,
            },
            M::Promise {
                ballot,
                commit_index,
                entries,
                snapshot,
            } => {
                no_snapshot(snapshot)?;
                Message::Promise {
                    ballot: ballot_of(*ballot)?,
                    commit_index: fit("slot", *commit_index)?,
                    entries: self.entries(entries)?,
                }
            }
            M::Accept {
                ballot,
                slot,
                command,
                commit_index,
            } => Message::Accept {
                ballot: ballot_of(*ballot)?,
                slot: fit("slot", *slot)?,
                command: self.command(command)?,
                commit_index: fit("slot", *commit_index)?,
            },
            M::Accepted { ballot, slot } => Message::Accepted {
                ballot: ballot_of(*ballot)?,
                slot: fit("slot", *slot)?,
            },
            M::Nack { ballot, promised } => Message::Nack {
                ballot: ballot_of(*ballot)?,
                promised: ballot_of(*promised)?,
            },
            M::Commit {
                ballot,
                commit_index,
            } => Message::Commit {
                ballot: ballot_of(*ballot)?,
                commit_index: fit("slot", *commit_index)?,
            },
            M::Heartbeat {
                ballot,
                commit_index,
                heartbeat_sequence,
            } => Message::Heartbeat {
                ballot: ballot_of(*ballot)?,
                commit_index: fit("slot", *commit_index)?,
                heartbeat_sequence: fit("heartbeat_sequence", *heartbeat_sequence)?,
            },
            M::HeartbeatAck {
                ballot,
                commit_index,
                heartbeat_sequence,
            } => Message::HeartbeatAck {
                ballot: ballot_of(*ballot)?,
                commit_index: fit("slot", *commit_index)?,
                heartbeat_sequence: fit("heartbeat_sequence", *heartbeat_sequence)?,
            },
            M::Rejoin {
                ballot,
                commit_index,
            } => Message::Rejoin {
                ballot: ballot_of(*ballot)?,
                commit_index: fit("slot", *commit_index)?,
            },
            M::CatchUp {
                ballot,
                commit_index,
                snapshot,
                entries,
            } => {
                no_snapshot(snapshot)?;
                Message::CatchUp {
                    ballot: ballot_of(*ballot)?,
                    commit_index: fit("slot", *commit_index)?,
                    entries: self.entries(entries)?,
                }
            }
            M::CatchUpAck {
                ballot,
                commit_index,
            } => Message::CatchUpAck {
                ballot: ballot_of(*ballot)?,
                commit_index: fit("slot", *commit_index)?,
            },
            M::Propose {
                request_id,
                operation,
            } => Message::Propose {
                request_id: self.forward(*request_id)?,
                operation: self.known_operation(operation)?,
            },
            M::ProposeReply {
                request_id,
                outcome,
            } => Message::ProposeReply {
                request_id: self.forward(*request_id)?,
                outcome: match outcome {
                    Ok(result) => Ok(self.result(result)?),
                    Err(error) => Err(propose_error(error)?),
                },
            },
            M::Request { .. } | M::Reply { .. } => {
                return Err(MappingError::Unsupported(
                    "a Request or Reply is mapped with its client (client_message)".to_string(),
                ))
            }
            M::KvPropose { .. }
            | M::KvProposeReply { .. }
            | M::Subscribe { .. }
            | M::Unsubscribe
            | M::Events { .. }
            | M::SubscriptionCompacted { .. } => self
                .kv_master_message(message)?
                .expect("a revisioned message between the proxy and a master"),
            M::KvRequest { .. }
            | M::KvReply { .. }
            | M::WatchCreate { .. }
            | M::WatchCancel { .. }
            | M::WatchProgressRequest { .. }
            | M::ClientClosed
            | M::WatchCreated { .. }
            | M::WatchEvents { .. }
            | M::WatchProgress { .. }
            | M::WatchEnded { .. } => {
                return Err(MappingError::Unsupported(format!(
                    "a {} is mapped with its client (client_message)",
                    message.name()
                )))
            }
        })
    }

    /// A message between the proxy and a client connection, in the model's vocabulary.
    pub fn client_message(
        &self,
        client: u64,
        message: &core::Message,
    ) -> Result<Message, MappingError> {
        match message {
            core::Message::Request {
                request_id,
                cluster,
                operation,
            } => Ok(Message::Request {
                request_id: self.request((client, *request_id))?.model_id,
                cluster: u8::from(*cluster != self.served_cluster),
                operation: self.known_operation(operation)?,
            }),
            core::Message::Reply {
                request_id,
                outcome,
            } => Ok(Message::Reply {
                request_id: self.request((client, *request_id))?.model_id,
                outcome: match outcome {
                    Ok(result) => Ok(self.result(result)?),
                    Err(error) => Err(request_error(error)?),
                },
            }),
            other => match self.kv_client_message(client, other)? {
                Some(message) => Ok(message),
                None => self.message(other),
            },
        }
    }

    /// The model request id of a client's request.
    pub fn model_request(
        &self,
        client: u64,
        request_id: u64,
    ) -> Result<model::types::RequestId, MappingError> {
        Ok(self.request((client, request_id))?.model_id)
    }

    fn entries(&self, entries: &[core::Entry]) -> Result<model::message::Entries, MappingError> {
        entries
            .iter()
            .map(|entry| {
                Ok((
                    fit("slot", entry.slot)?,
                    model::types::Entry {
                        ballot: ballot_of(entry.ballot)?,
                        command: self.command(&entry.command)?,
                    },
                ))
            })
            .collect()
    }

    fn command(&self, command: &core::Command) -> Result<model::types::Command, MappingError> {
        Ok(match command {
            core::Command::Noop => model::types::Command::Noop,
            core::Command::Operation {
                request_id,
                operation,
                ..
            } => model::types::Command::Operation {
                request_id: self.forward(*request_id)?,
                operation: self.known_operation(operation)?,
            },
            core::Command::Kv {
                request_id,
                operation,
                ..
            } => model::types::Command::Kv {
                request_id: self.forward(*request_id)?,
                operation: self.kv_operation(operation)?,
            },
        })
    }

    /// A register operation in the model's vocabulary (pre-pass: every key and value has its
    /// code from [`codes`]).
    fn operation(
        &mut self,
        operation: &core::Operation,
    ) -> Result<model::types::Operation, MappingError> {
        self.known_operation(operation)
    }

    fn key(&self, key: &[u8]) -> Result<u8, MappingError> {
        self.keys.get(key).copied().ok_or_else(|| {
            MappingError::Unsupported(format!(
                "key {:?} no request wrote or read",
                String::from_utf8_lossy(key)
            ))
        })
    }

    fn value(&self, value: &[u8]) -> Result<u8, MappingError> {
        self.values.get(value).copied().ok_or_else(|| {
            MappingError::Unsupported(format!(
                "value {:?} no request wrote",
                String::from_utf8_lossy(value)
            ))
        })
    }

    fn known_operation(
        &self,
        operation: &core::Operation,
    ) -> Result<model::types::Operation, MappingError> {
        use model::types::Operation as O;
        Ok(match operation {
            core::Operation::Get { key } => O::Get {
                key: self.key(key)?,
            },
            core::Operation::Put { key, value } => O::Put {
                key: self.key(key)?,
                value: self.value(value)?,
            },
            core::Operation::Cas {
                key,
                expected_version,
                value,
            } => O::Cas {
                key: self.key(key)?,
                expected_version: fit("version", *expected_version)?,
                value: self.value(value)?,
            },
            core::Operation::Delete { key } => O::Delete {
                key: self.key(key)?,
            },
        })
    }

    fn result(
        &self,
        result: &core::OperationResult,
    ) -> Result<model::types::OperationResult, MappingError> {
        use model::types::OperationResult as R;
        Ok(match result {
            core::OperationResult::Value { value, version } => R::Value {
                value: value
                    .as_deref()
                    .map(|value| self.value(value))
                    .transpose()?,
                version: fit("version", *version)?,
            },
            core::OperationResult::Written { version } => R::Written {
                version: fit("version", *version)?,
            },
            core::OperationResult::VersionMismatch { current_version } => R::VersionMismatch {
                current_version: fit("version", *current_version)?,
            },
            core::OperationResult::Deleted { version } => R::Deleted {
                version: fit("version", *version)?,
            },
        })
    }
}

/// The revisioned API's vocabulary (`docs/protocol.md` §14–§17): operations, results,
/// records, events and watches, field for field; keys and values by their codes, every counter
/// in the model's type for it.
impl Vocabulary {
    fn key_range(&self, range: &core_kv::KeyRange) -> Result<model_kv::KeyRange, MappingError> {
        Ok(model_kv::KeyRange {
            key: self.key(&range.key)?,
            end: match &range.end {
                core_kv::RangeEnd::Key => model_kv::RangeEnd::Key,
                core_kv::RangeEnd::Before(end) => model_kv::RangeEnd::Before(self.key(end)?),
                core_kv::RangeEnd::Unbounded => model_kv::RangeEnd::Unbounded,
            },
        })
    }

    fn range_request(
        &self,
        range: &core_kv::RangeRequest,
    ) -> Result<model_kv::RangeRequest, MappingError> {
        Ok(model_kv::RangeRequest {
            range: self.key_range(&range.range)?,
            limit: fit("range limit", range.limit)?,
            revision: fit("revision", range.revision)?,
            keys_only: range.keys_only,
            count_only: range.count_only,
        })
    }

    fn put_request(&self, put: &core_kv::PutRequest) -> Result<model_kv::PutRequest, MappingError> {
        Ok(model_kv::PutRequest {
            key: self.key(&put.key)?,
            value: self.value(&put.value)?,
            prev_kv: put.prev_kv,
        })
    }

    fn delete_request(
        &self,
        delete: &core_kv::DeleteRangeRequest,
    ) -> Result<model_kv::DeleteRangeRequest, MappingError> {
        Ok(model_kv::DeleteRangeRequest {
            range: self.key_range(&delete.range)?,
            prev_kv: delete.prev_kv,
        })
    }

    fn compare(&self, compare: &core_kv::Compare) -> Result<model_kv::Compare, MappingError> {
        Ok(model_kv::Compare {
            key: self.key(&compare.key)?,
            target: match &compare.target {
                core_kv::CompareTarget::Version(version) => {
                    model_kv::CompareTarget::Version(fit("version", *version)?)
                }
                core_kv::CompareTarget::CreateRevision(revision) => {
                    model_kv::CompareTarget::CreateRevision(fit("revision", *revision)?)
                }
                core_kv::CompareTarget::ModRevision(revision) => {
                    model_kv::CompareTarget::ModRevision(fit("revision", *revision)?)
                }
                core_kv::CompareTarget::Value(value) => {
                    model_kv::CompareTarget::Value(self.value(value)?)
                }
            },
            result: match compare.result {
                core_kv::CompareResult::Equal => model_kv::CompareResult::Equal,
                core_kv::CompareResult::NotEqual => model_kv::CompareResult::NotEqual,
                core_kv::CompareResult::Less => model_kv::CompareResult::Less,
                core_kv::CompareResult::Greater => model_kv::CompareResult::Greater,
            },
        })
    }

    fn txn_operation(
        &self,
        operation: &core_kv::TxnOperation,
    ) -> Result<model_kv::TxnOperation, MappingError> {
        Ok(match operation {
            core_kv::TxnOperation::Range(range) => {
                model_kv::TxnOperation::Range(self.range_request(range)?)
            }
            core_kv::TxnOperation::Put(put) => model_kv::TxnOperation::Put(self.put_request(put)?),
            core_kv::TxnOperation::DeleteRange(delete) => {
                model_kv::TxnOperation::DeleteRange(self.delete_request(delete)?)
            }
        })
    }

    /// A revisioned operation in the model's vocabulary.
    pub fn kv_operation(
        &self,
        operation: &core_kv::KvOperation,
    ) -> Result<model_kv::KvOperation, MappingError> {
        Ok(match operation {
            core_kv::KvOperation::Range(range) => {
                model_kv::KvOperation::Range(self.range_request(range)?)
            }
            core_kv::KvOperation::Put(put) => model_kv::KvOperation::Put(self.put_request(put)?),
            core_kv::KvOperation::DeleteRange(delete) => {
                model_kv::KvOperation::DeleteRange(self.delete_request(delete)?)
            }
            core_kv::KvOperation::Txn(txn) => {
                let branch = |operations: &[core_kv::TxnOperation]| {
                    operations
                        .iter()
                        .map(|operation| self.txn_operation(operation))
                        .collect::<Result<Vec<_>, _>>()
                };
                model_kv::KvOperation::Txn(Box::new(model_kv::TxnRequest {
                    compare: txn
                        .compare
                        .iter()
                        .map(|compare| self.compare(compare))
                        .collect::<Result<_, _>>()?,
                    success: branch(&txn.success)?,
                    failure: branch(&txn.failure)?,
                }))
            }
            core_kv::KvOperation::Compact { revision } => model_kv::KvOperation::Compact {
                revision: fit("revision", *revision)?,
            },
        })
    }

    fn key_value(&self, record: &core_kv::KeyValue) -> Result<model_kv::KeyValue, MappingError> {
        Ok(model_kv::KeyValue {
            key: self.key(&record.key)?,
            value: record
                .value
                .as_deref()
                .map(|value| self.value(value))
                .transpose()?,
            create_revision: fit("revision", record.create_revision)?,
            mod_revision: fit("revision", record.mod_revision)?,
            version: fit("version", record.version)?,
        })
    }

    fn key_values(
        &self,
        records: &[core_kv::KeyValue],
    ) -> Result<Vec<model_kv::KeyValue>, MappingError> {
        records
            .iter()
            .map(|record| self.key_value(record))
            .collect()
    }

    fn event(&self, event: &core_kv::Event) -> Result<model_kv::Event, MappingError> {
        Ok(model_kv::Event {
            kind: event_kind(event.kind),
            kv: self.key_value(&event.kv)?,
            prev_kv: event
                .prev_kv
                .as_ref()
                .map(|record| self.key_value(record))
                .transpose()?,
        })
    }

    fn events(&self, events: &[core_kv::Event]) -> Result<Vec<model_kv::Event>, MappingError> {
        events.iter().map(|event| self.event(event)).collect()
    }

    fn revision_events(
        &self,
        group: &core_kv::RevisionEvents,
    ) -> Result<model_kv::RevisionEvents, MappingError> {
        Ok(model_kv::RevisionEvents {
            revision: fit("revision", group.revision)?,
            events: self.events(&group.events)?,
        })
    }

    fn range_result(
        &self,
        result: &core_kv::RangeResult,
    ) -> Result<model_kv::RangeResult, MappingError> {
        Ok(model_kv::RangeResult {
            kvs: self.key_values(&result.kvs)?,
            more: result.more,
            count: fit("range count", result.count)?,
            revision: fit("revision", result.revision)?,
        })
    }

    fn put_result(&self, result: &core_kv::PutResult) -> Result<model_kv::PutResult, MappingError> {
        Ok(model_kv::PutResult {
            revision: fit("revision", result.revision)?,
            prev_kv: result
                .prev_kv
                .as_ref()
                .map(|record| self.key_value(record))
                .transpose()?,
        })
    }

    fn delete_result(
        &self,
        result: &core_kv::DeleteRangeResult,
    ) -> Result<model_kv::DeleteRangeResult, MappingError> {
        Ok(model_kv::DeleteRangeResult {
            revision: fit("revision", result.revision)?,
            deleted: fit("keys deleted", result.deleted)?,
            prev_kvs: self.key_values(&result.prev_kvs)?,
        })
    }

    fn txn_result(&self, result: &core_kv::TxnResult) -> Result<model_kv::TxnResult, MappingError> {
        let responses = result
            .responses
            .iter()
            .map(|response| {
                Ok(match response {
                    core_kv::TxnOperationResult::Range(range) => {
                        model_kv::TxnOperationResult::Range(self.range_result(range)?)
                    }
                    core_kv::TxnOperationResult::Put(put) => {
                        model_kv::TxnOperationResult::Put(self.put_result(put)?)
                    }
                    core_kv::TxnOperationResult::DeleteRange(delete) => {
                        model_kv::TxnOperationResult::DeleteRange(self.delete_result(delete)?)
                    }
                })
            })
            .collect::<Result<_, MappingError>>()?;
        Ok(model_kv::TxnResult {
            revision: fit("revision", result.revision)?,
            succeeded: result.succeeded,
            responses,
        })
    }

    /// A revisioned result in the model's vocabulary.
    pub fn kv_result(
        &self,
        result: &core_kv::KvResult,
    ) -> Result<model_kv::KvResult, MappingError> {
        Ok(match result {
            core_kv::KvResult::Range(range) => {
                model_kv::KvResult::Range(Box::new(self.range_result(range)?))
            }
            core_kv::KvResult::Put(put) => model_kv::KvResult::Put(self.put_result(put)?),
            core_kv::KvResult::DeleteRange(delete) => {
                model_kv::KvResult::DeleteRange(Box::new(self.delete_result(delete)?))
            }
            core_kv::KvResult::Txn(txn) => model_kv::KvResult::Txn(Box::new(self.txn_result(txn)?)),
            core_kv::KvResult::Compact { revision } => model_kv::KvResult::Compact {
                revision: fit("revision", *revision)?,
            },
            core_kv::KvResult::Compacted { compact_revision } => model_kv::KvResult::Compacted {
                compact_revision: fit("revision", *compact_revision)?,
            },
            core_kv::KvResult::FutureRevision { current_revision } => {
                model_kv::KvResult::FutureRevision {
                    current_revision: fit("revision", *current_revision)?,
                }
            }
        })
    }

    /// What a watch asks for, in the model's vocabulary (a start at revision 0, "now", is the
    /// model's too: both proxies resolve it from the master's report, §17.2).
    pub fn watch_request(
        &self,
        watch: &core_kv::WatchRequest,
    ) -> Result<model_kv::WatchRequest, MappingError> {
        Ok(model_kv::WatchRequest {
            range: self.key_range(&watch.range)?,
            start_revision: fit("revision", watch.start_revision)?,
            prev_kv: watch.prev_kv,
            filter: watch.filter.map(event_kind),
        })
    }

    /// The model watch id of watch `watch_id` of connection `connection`.
    fn watch_id(&self, connection: u64, watch_id: u64) -> Result<model_kv::WatchId, MappingError> {
        self.watches
            .get(&(connection, watch_id))
            .copied()
            .ok_or_else(|| MappingError::UnknownRequest(format!("c{connection}/w{watch_id}")))
    }

    /// The model client of revisioned client connection `connection`.
    fn kv_client(&self, connection: u64) -> Result<model::types::ClientId, MappingError> {
        self.kv_clients.get(&connection).copied().ok_or_else(|| {
            MappingError::UnknownRequest(format!(
                "client connection c{connection} sent no revisioned request, watch or close"
            ))
        })
    }

    /// A message between the proxy and a revisioned client connection, in the model's
    /// vocabulary (`None`: not a message of the revisioned clients).
    fn kv_client_message(
        &self,
        connection: u64,
        message: &core::Message,
    ) -> Result<Option<Message>, MappingError> {
        use core::Message as M;
        Ok(Some(match message {
            M::KvRequest {
                request_id,
                cluster,
                operation,
            } => Message::KvRequest {
                request_id: self.request((connection, *request_id))?.model_id,
                cluster: u8::from(*cluster != self.served_cluster),
                operation: self.kv_operation(operation)?,
            },
            M::KvReply {
                request_id,
                outcome,
            } => Message::KvReply {
                request_id: self.request((connection, *request_id))?.model_id,
                outcome: match outcome {
                    Ok(result) => Ok(self.kv_result(result)?),
                    Err(error) => Err(request_error(error)?),
                },
            },
            M::WatchCreate {
                watch_id,
                cluster,
                watch,
            } => Message::WatchCreate {
                watch_id: self.watch_id(connection, *watch_id)?,
                cluster: u8::from(*cluster != self.served_cluster),
                watch: self.watch_request(watch)?,
            },
            M::WatchCancel { watch_id } => Message::WatchCancel {
                watch_id: self.watch_id(connection, *watch_id)?,
            },
            M::WatchProgressRequest { watch_id } => Message::WatchProgressRequest {
                watch_id: self.watch_id(connection, *watch_id)?,
            },
            M::ClientClosed => Message::ClientClosed,
            M::WatchCreated { watch_id } => Message::WatchCreated {
                watch_id: self.watch_id(connection, *watch_id)?,
            },
            M::WatchEvents {
                watch_id,
                revision,
                events,
            } => Message::WatchEvents {
                watch_id: self.watch_id(connection, *watch_id)?,
                revision: fit("revision", *revision)?,
                events: self.events(events)?,
            },
            M::WatchProgress { watch_id, revision } => Message::WatchProgress {
                watch_id: self.watch_id(connection, *watch_id)?,
                revision: fit("revision", *revision)?,
            },
            M::WatchEnded { watch_id, outcome } => Message::WatchEnded {
                watch_id: self.watch_id(connection, *watch_id)?,
                outcome: watch_end(*outcome)?,
            },
            _ => return Ok(None),
        }))
    }

    /// A message of the revisioned API between the proxy and a master (`None`: not one).
    fn kv_master_message(&self, message: &core::Message) -> Result<Option<Message>, MappingError> {
        use core::Message as M;
        Ok(Some(match message {
            M::KvPropose {
                request_id,
                operation,
            } => Message::KvPropose {
                request_id: self.forward(*request_id)?,
                operation: self.kv_operation(operation)?,
            },
            M::KvProposeReply {
                request_id,
                outcome,
            } => Message::KvProposeReply {
                request_id: self.forward(*request_id)?,
                outcome: match outcome {
                    Ok(result) => Ok(self.kv_result(result)?),
                    Err(error) => Err(propose_error(error)?),
                },
            },
            M::Subscribe { from_revision } => Message::Subscribe {
                from_revision: fit("revision", *from_revision)?,
            },
            M::Unsubscribe => Message::Unsubscribe,
            M::Events {
                revision,
                revisions,
            } => Message::Events {
                revision: fit("revision", *revision)?,
                revisions: revisions
                    .iter()
                    .map(|group| self.revision_events(group))
                    .collect::<Result<_, _>>()?,
            },
            M::SubscriptionCompacted { compact_revision } => Message::SubscriptionCompacted {
                compact_revision: fit("revision", *compact_revision)?,
            },
            _ => return Ok(None),
        }))
    }
}

fn event_kind(kind: core_kv::EventKind) -> model_kv::EventKind {
    match kind {
        core_kv::EventKind::Put => model_kv::EventKind::Put,
        core_kv::EventKind::Delete => model_kv::EventKind::Delete,
    }
}

/// A watch's end in the model's vocabulary. `PermissionDenied` is the host's refusal of a
/// token, which the model does not have (docs/security.md); `Dropped` is a watch whose ledger
/// value was dropped unended, which the model's single `end_watch` cannot do: the replay reports
/// both rather than follow them.
fn watch_end(outcome: core_kv::WatchEnd) -> Result<model_kv::WatchEnd, MappingError> {
    use core_kv::WatchEnd as E;
    Ok(match outcome {
        E::Cancelled => model_kv::WatchEnd::Cancelled,
        E::Compacted { compact_revision } => model_kv::WatchEnd::Compacted {
            compact_revision: fit("revision", compact_revision)?,
        },
        E::ClientGone => model_kv::WatchEnd::ClientGone,
        E::UnknownCluster => model_kv::WatchEnd::UnknownCluster,
        E::Overflow => model_kv::WatchEnd::Overflow,
        E::TooManyWatches => model_kv::WatchEnd::TooManyWatches,
        E::PermissionDenied => {
            return Err(MappingError::Unsupported(
                "a watch ended PermissionDenied: client tokens are checked by the host; the \
                 model has no authentication (docs/security.md)"
                    .to_string(),
            ))
        }
        E::Dropped => {
            return Err(MappingError::Unsupported(
                "a watch dropped unended: every model watch ends through its one end_watch"
                    .to_string(),
            ))
        }
    })
}

/// Byte strings (keys, or values) and their model codes.
type Codes = HashMap<Vec<u8>, u8>;

/// Whether a message travels between the proxy and a revisioned client's connection.
fn is_revisioned_client_message(message: &core::Message) -> bool {
    is_revisioned_client_step(message)
        || matches!(
            message,
            core::Message::KvReply { .. }
                | core::Message::WatchCreated { .. }
                | core::Message::WatchEvents { .. }
                | core::Message::WatchProgress { .. }
                | core::Message::WatchEnded { .. }
        )
}

/// Whether a client's message is a step of a revisioned client (`KvStep`).
fn is_revisioned_client_step(message: &core::Message) -> bool {
    matches!(
        message,
        core::Message::KvRequest { .. }
            | core::Message::WatchCreate { .. }
            | core::Message::WatchCancel { .. }
            | core::Message::WatchProgressRequest { .. }
            | core::Message::ClientClosed
    )
}

/// The codes of every key and every value the run's clients name, each the rank of its bytes
/// among them: the model's `u8` keys and values then order as the implementation's byte strings
/// do, so that a range `[key, end)` holds the same keys (a range's end is coded with the keys)
/// and a `Txn` compare on a value with `<` or `>` decides the same way.
fn codes(merged: &Merged) -> Result<(Codes, Codes), MappingError> {
    let mut keys = BTreeSet::new();
    let mut values = BTreeSet::new();
    for event in &merged.events {
        if let core::TraceKind::Receive {
            from: core::Endpoint::Client(_),
            message,
        } = &event.line.kind
        {
            named_in_message(message, &mut keys, &mut values);
        }
    }
    Ok((
        rank(keys, "distinct keys")?,
        rank(values, "distinct values")?,
    ))
}

/// Each byte string's rank, if there are at most 256 of them.
fn rank(set: BTreeSet<Vec<u8>>, what: &'static str) -> Result<Codes, MappingError> {
    if set.len() > 256 {
        return Err(MappingError::OutOfRange {
            what,
            value: set.len() as u64,
        });
    }
    Ok(set
        .into_iter()
        .enumerate()
        .map(|(code, bytes)| (bytes, code as u8))
        .collect())
}

/// Adds the keys (range ends included) and values a client's message names.
fn named_in_message(
    message: &core::Message,
    keys: &mut BTreeSet<Vec<u8>>,
    values: &mut BTreeSet<Vec<u8>>,
) {
    match message {
        core::Message::Request { operation, .. } => match operation {
            core::Operation::Put { key, value } | core::Operation::Cas { key, value, .. } => {
                keys.insert(key.clone());
                values.insert(value.clone());
            }
            core::Operation::Get { key } | core::Operation::Delete { key } => {
                keys.insert(key.clone());
            }
        },
        core::Message::KvRequest { operation, .. } => match operation {
            core_kv::KvOperation::Range(range) => named_in_range(&range.range, keys),
            core_kv::KvOperation::Put(put) => named_in_put(put, keys, values),
            core_kv::KvOperation::DeleteRange(delete) => named_in_range(&delete.range, keys),
            core_kv::KvOperation::Txn(txn) => {
                for compare in &txn.compare {
                    keys.insert(compare.key.clone());
                    if let core_kv::CompareTarget::Value(value) = &compare.target {
                        values.insert(value.clone());
                    }
                }
                for operation in txn.success.iter().chain(&txn.failure) {
                    match operation {
                        core_kv::TxnOperation::Range(range) => named_in_range(&range.range, keys),
                        core_kv::TxnOperation::Put(put) => named_in_put(put, keys, values),
                        core_kv::TxnOperation::DeleteRange(delete) => {
                            named_in_range(&delete.range, keys);
                        }
                    }
                }
            }
            core_kv::KvOperation::Compact { .. } => {}
        },
        core::Message::WatchCreate { watch, .. } => named_in_range(&watch.range, keys),
        _ => {}
    }
}

fn named_in_put(
    put: &core_kv::PutRequest,
    keys: &mut BTreeSet<Vec<u8>>,
    values: &mut BTreeSet<Vec<u8>>,
) {
    keys.insert(put.key.clone());
    values.insert(put.value.clone());
}

fn named_in_range(range: &core_kv::KeyRange, keys: &mut BTreeSet<Vec<u8>>) {
    keys.insert(range.key.clone());
    if let core_kv::RangeEnd::Before(end) = &range.end {
        keys.insert(end.clone());
    }
}

/// Merged index of each request's first `RequestCompleted`, by (client, request id).
fn completion_indices(merged: &Merged) -> HashMap<(u64, u64), usize> {
    let mut completions = HashMap::new();
    for (index, event) in merged.events.iter().enumerate() {
        if let core::TraceKind::RequestCompleted {
            client, request_id, ..
        } = &event.line.kind
        {
            completions.entry((*client, *request_id)).or_insert(index);
        }
    }
    completions
}

/// The model's parameters for replaying a run of `protocol` (clients are added by the pre-pass).
/// Search bounds are off: a real run is unbounded.
fn base_config(
    protocol: &core::Config,
    masters: model::types::NodeId,
) -> Result<Config, MappingError> {
    Ok(Config {
        masters,
        eviction_threshold: fit("eviction_threshold", protocol.eviction_threshold)?,
        pipeline_slots_max: saturate(protocol.pipeline_slots_max),
        reads_waiting_max: saturate(protocol.reads_waiting_max),
        in_flight_max: saturate(protocol.in_flight_max),
        redirects_max: fit("redirects_max", protocol.redirects_max)?,
        cluster: 0,
        clients: Vec::new(),
        round_max: model::types::Round::MAX,
        budget: model::Budget::UNBOUNDED,
        initial_leader: false,
        messages_in_flight_max: None,
        delivery: model::Delivery::Unordered,
        // The host fsyncs in the background and a kill loses what is not durable yet (§2.1).
        disk: model::Disk::Queued,
        // The core broadcasts `Commit` when its commit index advances (§4.4).
        explicit_commit: true,
        bugs: Default::default(),
        kv_clients: Vec::new(),
        // The revisioned API's bounds (§14.2, §15.2, §17.5). Those wider than the model's `u8`
        // saturate at 255: a run with at most 256 key codes and closed-loop clients reaches
        // none of them, and one that reached 255 would be refused by the model where the
        // implementation went on, a divergence replay reports, never a silent pass.
        range_limit_max: saturate(protocol.range_limit_max),
        txn_operations_max: fit("txn_operations_max", protocol.txn_operations_max)?,
        watches_per_client_max: saturate(protocol.watches_per_client_max),
        watch_events_buffered_max: saturate(protocol.watch_events_buffered_max),
        // Fields the model adds later start as in its unbounded `seed` preset.
        ..model::presets::seed().config
    })
}

fn ballot_of(ballot: core::Ballot) -> Result<model::types::Ballot, MappingError> {
    Ok(model::types::Ballot {
        round: fit("ballot round", ballot.round)?,
        node: fit("node id", ballot.node)?,
    })
}

fn no_snapshot(snapshot: &Option<core::Snapshot>) -> Result<(), MappingError> {
    match snapshot {
        None => Ok(()),
        Some(snapshot) => Err(MappingError::Unsupported(format!(
            "a snapshot (slot {}): the model does not compact its log",
            snapshot.slot
        ))),
    }
}

fn propose_error(error: &core::MasterError) -> Result<model::types::ProposeError, MappingError> {
    use model::types::ProposeError as E;
    Ok(match error {
        core::MasterError::NotLeader { leader_hint } => E::NotLeader {
            leader_hint: leader_hint.map(|node| fit("node id", node)).transpose()?,
        },
        core::MasterError::Overloaded => E::Overloaded,
        core::MasterError::LeaderChanged => E::LeaderChanged,
    })
}

fn request_error(error: &core::ClientError) -> Result<model::types::RequestError, MappingError> {
    use model::types::RequestError as E;
    Ok(match error {
        core::ClientError::UnknownCluster => E::UnknownCluster,
        core::ClientError::Overloaded => E::Overloaded,
        core::ClientError::NoLeader => E::NoLeader,
        core::ClientError::Timeout => E::Timeout,
        core::ClientError::LeaderChanged => E::LeaderChanged,
        core::ClientError::InvalidRequest => E::InvalidRequest,
        core::ClientError::PermissionDenied => {
            return Err(MappingError::Unsupported(
                "PermissionDenied: client tokens are checked by the host; the model has no \
                 authentication (docs/security.md)"
                    .to_string(),
            ))
        }
    })
}

/// The model's master `node` abstracted to the implementation's post-state.
pub fn master_view(state: &model::State, node: model::types::NodeId) -> core::MasterPostState {
    let master = &state.masters[node as usize];
    let role = match &master.role {
        model::state::Role::Follower => core::Role::Follower,
        model::state::Role::PreCandidate { .. } => core::Role::PreCandidate,
        model::state::Role::Candidate { .. } => core::Role::Candidate,
        model::state::Role::Leader(_) => core::Role::Leader,
    };
    let (active, evicted) = match master.leader_state() {
        Some(leader) => (
            leader.active.iter().map(u64::from).collect(),
            leader.evicted.iter().map(u64::from).collect(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    core::MasterPostState {
        role,
        promised: core_ballot(master.promised),
        leader: master.leader.map(core_ballot),
        commit_index: u64::from(master.commit_index),
        last_slot: u64::from(master.last_slot()),
        active,
        evicted,
    }
}

/// The model's proxy ledger abstracted to the implementation's counters. The model has no
/// `dropped_unanswered` (a request is never dropped unanswered there): 0.
pub fn ledger_view(state: &model::State) -> core::LedgerCounters {
    let ledger = &state.proxy.ledger;
    core::LedgerCounters {
        accepted: u64::from(ledger.accepted),
        completed_ok: u64::from(ledger.completed_ok),
        completed_err: u64::from(ledger.completed_err),
        in_flight: u64::from(ledger.in_flight),
        late_replies: u64::from(ledger.late_replies),
        dropped_unanswered: 0,
    }
}

fn core_ballot(ballot: model::types::Ballot) -> core::Ballot {
    core::Ballot::new(u64::from(ballot.round), u64::from(ballot.node))
}

/// The model's client history as the per-key linearizability checker's records
/// (`linearizability.rs`): each request its own client, history positions as its times; a
/// definite answer is `Ok`, a refusal (a return without a result) did not take effect, and a
/// request without a return is indeterminate. Keys are named `k<code>` and values are the
/// model's one-byte codes: the checker compares them, it does not read them.
pub fn history_records(history: &[model::state::HistoryEvent]) -> Vec<Record> {
    use model::state::HistoryEvent;
    let mut records: BTreeMap<u32, Record> = BTreeMap::new();
    for (position, event) in history.iter().enumerate() {
        match event {
            HistoryEvent::Invoke {
                request_id,
                operation,
            } => {
                let (key, call) = call_of(operation);
                records.insert(
                    *request_id,
                    Record {
                        client: *request_id as usize,
                        key: format!("k{key}").into_bytes(),
                        call,
                        invoked_ns: position as u64,
                        completed_ns: u64::MAX,
                        outcome: Outcome::Unknown("no return".to_string()),
                    },
                );
            }
            HistoryEvent::Return { request_id, result } => {
                if let Some(record) = records.get_mut(request_id) {
                    record.completed_ns = position as u64;
                    record.outcome = match result {
                        None => Outcome::Failed("refused".to_string()),
                        Some(result) => Outcome::Ok(result_of(result)),
                    };
                }
            }
        }
    }
    records.into_values().collect()
}

/// A model operation as the checker's key and call (values are one byte: the model's index).
fn call_of(operation: &model::types::Operation) -> (model::types::Key, Call) {
    use model::types::Operation;
    match *operation {
        Operation::Get { key } => (key, Call::Get),
        Operation::Put { key, value } => (key, Call::Put { value: vec![value] }),
        Operation::Cas {
            key,
            expected_version,
            value,
        } => (
            key,
            Call::Cas {
                expected_version: u64::from(expected_version),
                value: vec![value],
            },
        ),
        Operation::Delete { key } => (key, Call::Delete),
    }
}

/// A model result as the implementation's.
fn result_of(result: &model::types::OperationResult) -> core::OperationResult {
    use model::types::OperationResult;
    match *result {
        OperationResult::Value { value, version } => core::OperationResult::Value {
            value: value.map(|value| vec![value]),
            version: u64::from(version),
        },
        OperationResult::Written { version } => core::OperationResult::Written {
            version: u64::from(version),
        },
        OperationResult::VersionMismatch { current_version } => {
            core::OperationResult::VersionMismatch {
                current_version: u64::from(current_version),
            }
        }
        OperationResult::Deleted { version } => core::OperationResult::Deleted {
            version: u64::from(version),
        },
    }
}

/// The name of an action's kind, for coverage (`Deliver(Prepare)`, `ElectionTimeout`, ...).
pub fn action_kind(action: &Action) -> String {
    match action {
        Action::Deliver { message, .. } => format!("Deliver({})", message.name()),
        Action::Drop { message, .. } => format!("Drop({})", message.name()),
        Action::ElectionTimeout(_) => "ElectionTimeout".to_string(),
        Action::HeartbeatTimeout(_) => "HeartbeatTimeout".to_string(),
        Action::CheckQuorumTimeout(_) => "CheckQuorumTimeout".to_string(),
        Action::RejoinWaitExpired(_) => "RejoinWaitExpired".to_string(),
        Action::RequestTimeout(_) => "RequestTimeout".to_string(),
        Action::ForwardLost(_) => "ForwardLost".to_string(),
        Action::ClientRequest(_) => "ClientRequest".to_string(),
        Action::Persist(_) => "Persist".to_string(),
        Action::Pause(_) => "Pause".to_string(),
        Action::Resume(_) => "Resume".to_string(),
        Action::Crash(_) => "Crash".to_string(),
        Action::Restart(_) => "Restart".to_string(),
        Action::CloseConnection(_) => "CloseConnection".to_string(),
        // No trace event maps to a lease step yet: replay never takes these.
        Action::Tick => "Tick".to_string(),
        Action::LeaseExpiryTimeout(..) => "LeaseExpiryTimeout".to_string(),
        Action::ClientPause(_) => "ClientPause".to_string(),
        Action::ClientResume(_) => "ClientResume".to_string(),
    }
}

/// The model link and message of a traced send, if the send goes to a party the model has.
pub fn send_of(
    vocabulary: &Vocabulary,
    origin: core::Origin,
    to: &core::Endpoint,
    message: &core::Message,
) -> Result<(Endpoint, Endpoint, Message), MappingError> {
    let from = party_of_origin(origin);
    let to = party_of_endpoint(to);
    let source = vocabulary.endpoint_for(from, message)?;
    let destination = vocabulary.endpoint_for(to, message)?;
    let message = match to {
        Party::Client(client) => vocabulary.client_message(client, message)?,
        _ => vocabulary.message(message)?,
    };
    Ok((source, destination, message))
}

/// The model's message for a traced receive.
pub fn receive_message(
    vocabulary: &Vocabulary,
    from: Party,
    message: &core::Message,
) -> Result<Message, MappingError> {
    match from {
        Party::Client(client) => vocabulary.client_message(client, message),
        _ => vocabulary.message(message),
    }
}

#[cfg(test)]
mod tests;
