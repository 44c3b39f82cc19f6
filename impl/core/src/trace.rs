//! Trace events: one closed enum of what happened at each transition of a master or a proxy,
//! with the post-state a model needs to replay it (`docs/protocol.md` §11, `docs/trace.md`).
//!
//! Events are built only when the owner's tracing flag is on ([`crate::Master::set_tracing`],
//! [`crate::Proxy::set_tracing`]), so a host without a sink pays one branch per transition.
//! All events produced by one input (one `tick`, `step`, `handle_request`, or one `Persist` of
//! `Master::advance`) carry the post-state at the end of that input: an input is one model
//! action, and its events are its named parts.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::kv_types::{KvReplyOutcome, WatchEnd, WatchId};
use crate::ledger::LedgerCounters;
use crate::message::{Message, Outcome};
use crate::types::{Ballot, ClientId, NodeId, ProxyId, ReplyOutcome, RequestId, Role, Slot};

/// Who is at the other end of a traced message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Endpoint {
    /// A master; from a proxy's point of view, a master of the named cluster.
    Master {
        /// The master's id.
        node: NodeId,
        /// The cluster, when the event comes from a proxy (a master does not know its name).
        cluster: Option<String>,
    },
    /// A proxy.
    Proxy(ProxyId),
    /// A client connection at a proxy.
    Client(ClientId),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Master {
                node,
                cluster: Some(cluster),
            } => write!(formatter, "{cluster}/m{node}"),
            Endpoint::Master {
                node,
                cluster: None,
            } => write!(formatter, "m{node}"),
            Endpoint::Proxy(proxy) => write!(formatter, "p{proxy}"),
            Endpoint::Client(client) => write!(formatter, "c{client}"),
        }
    }
}

/// The timers of §11.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Timer {
    /// `ElectionTimeout` (Follower, PreCandidate, Candidate).
    Election,
    /// `HeartbeatTimeout` (Leader).
    Heartbeat,
    /// `CheckQuorumTimeout` (Leader).
    CheckQuorum,
    /// `RequestTimeout` (proxy).
    Request,
}

/// What happened. Message events name both endpoints; the owner is in [`TraceEvent::origin`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TraceKind {
    /// The owner handed a message to the host to send.
    Send {
        /// The destination.
        to: Endpoint,
        /// The message.
        message: Message,
    },
    /// The owner handled a message.
    Receive {
        /// The sender.
        from: Endpoint,
        /// The message.
        message: Message,
    },
    /// A timer fired.
    Timeout {
        /// Which one.
        timer: Timer,
    },
    /// A master started from its durable state (§8).
    Restart,
    /// The durable write of one earlier input of the master became durable (the host called
    /// `Master::advance`): the leader counts its own acceptances of that input, and the
    /// messages that waited for the write are sent (their `Send` events follow).
    Persist,
    /// The master was paused (§7.1): a stop-the-world pause, recorded when the host finds it
    /// on resuming (the master took no step meanwhile, so the event's place is just before
    /// `Resume`). The model's `Pause`.
    Pause,
    /// The master resumed after `overdue_ticks` ticks without a step (§7.2). The model's
    /// `Resume`.
    Resume {
        /// Ticks that fell due during the pause.
        overdue_ticks: u64,
    },
    /// `BecomePreCandidate` with the ballot it asks pre-votes for.
    BecomePreCandidate {
        /// The ballot in the `PreVote`s.
        ballot: Ballot,
    },
    /// `BecomeCandidate` with its new ballot.
    BecomeCandidate {
        /// The ballot of the `Prepare`s.
        ballot: Ballot,
    },
    /// `BecomeLeader` of `ballot`.
    BecomeLeader {
        /// The winning ballot.
        ballot: Ballot,
    },
    /// `BecomeFollower`, of `leader` if known.
    BecomeFollower {
        /// The leader ballot followed, if any.
        leader: Option<Ballot>,
    },
    /// `Evict`: the leader removed `follower` from its active set (§5.1).
    Evict {
        /// The evicted follower.
        follower: NodeId,
    },
    /// `Readmit`: the leader moved `follower` back to its active set (§6.4).
    Readmit {
        /// The readmitted follower.
        follower: NodeId,
    },
    /// `CommitAdvance` from `from` to `to` (§4.4).
    CommitAdvance {
        /// The previous commit index.
        from: Slot,
        /// The new commit index.
        to: Slot,
    },
    /// `RequestAccepted` into the proxy's ledger (§9.4.1).
    RequestAccepted {
        /// The client connection.
        client: ClientId,
        /// The client's request id.
        request_id: RequestId,
    },
    /// `RequestCompleted`: the request's one terminal outcome.
    RequestCompleted {
        /// The client connection.
        client: ClientId,
        /// The client's request id.
        request_id: RequestId,
        /// The reply sent.
        outcome: ReplyOutcome,
    },
    /// `RequestCompleted` of a `KvRequest`: its one terminal outcome (§17.7).
    KvRequestCompleted {
        /// The client connection.
        client: ClientId,
        /// The client's request id.
        request_id: RequestId,
        /// The reply sent.
        outcome: KvReplyOutcome,
    },
    /// `WatchEnded`: a watch's one terminal outcome (§17.4), also when nothing is sent (its
    /// client is gone).
    WatchEnded {
        /// The client connection.
        client: ClientId,
        /// The client's watch id.
        watch_id: WatchId,
        /// How it ended.
        outcome: WatchEnd,
    },
    /// `ConnectionClosed`: the proxy's host says its connection to the subscribed master of
    /// `cluster` closed (§17.6); the proxy resumes elsewhere.
    ConnectionClosed {
        /// The cluster.
        cluster: String,
        /// The master.
        node: NodeId,
    },
    /// The host refused a `WatchCreate` before the protocol (its token): it ends at once
    /// `PermissionDenied`.
    WatchDenied {
        /// The client connection.
        client: ClientId,
        /// The client's watch id.
        watch_id: WatchId,
        /// The cluster it named.
        cluster: String,
    },
    /// `ForwardLost`: the host could not hand the `Propose` of forwarding id `request_id` to a
    /// connection; the proxy redirects it or gives up with `NoLeader` (§9.4.6).
    ForwardLost {
        /// The proxy's forwarding id.
        request_id: RequestId,
    },
    /// A `ProposeReply` for a request that already completed, ignored (§9.4.6).
    LateReply {
        /// The proxy's forwarding id.
        request_id: RequestId,
    },
}

impl TraceKind {
    /// Whether this event begins an input of its owner (a receive, a timer, a restart, a
    /// persist, a pause, a resume or a lost forward; every other event is a named part of the
    /// input before it).
    /// One tick that fires two leader timers is one input: its second `Timeout` begins no new
    /// input, which the sinks' input numbers show (`docs/trace.md` §1).
    pub fn starts_input(&self) -> bool {
        matches!(
            self,
            TraceKind::Receive { .. }
                | TraceKind::Timeout { .. }
                | TraceKind::Restart
                | TraceKind::Persist
                | TraceKind::Pause
                | TraceKind::Resume { .. }
                | TraceKind::ForwardLost { .. }
                | TraceKind::ConnectionClosed { .. }
                | TraceKind::WatchDenied { .. }
        )
    }
}

impl fmt::Display for TraceKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceKind::Send { to, message } => write!(formatter, "send ->{to} {message}"),
            TraceKind::Receive { from, message } => write!(formatter, "recv <-{from} {message}"),
            TraceKind::Timeout { timer } => write!(formatter, "{timer:?}Timeout"),
            TraceKind::Restart => write!(formatter, "Restart"),
            TraceKind::Persist => write!(formatter, "Persist"),
            TraceKind::Pause => write!(formatter, "Pause"),
            TraceKind::Resume { overdue_ticks } => {
                write!(formatter, "Resume overdue_ticks={overdue_ticks}")
            }
            TraceKind::BecomePreCandidate { ballot } => {
                write!(formatter, "BecomePreCandidate ballot={ballot}")
            }
            TraceKind::BecomeCandidate { ballot } => {
                write!(formatter, "BecomeCandidate ballot={ballot}")
            }
            TraceKind::BecomeLeader { ballot } => write!(formatter, "BecomeLeader ballot={ballot}"),
            TraceKind::BecomeFollower {
                leader: Some(leader),
            } => {
                write!(formatter, "BecomeFollower leader={leader}")
            }
            TraceKind::BecomeFollower { leader: None } => {
                write!(formatter, "BecomeFollower leader=none")
            }
            TraceKind::Evict { follower } => write!(formatter, "Evict m{follower}"),
            TraceKind::Readmit { follower } => write!(formatter, "Readmit m{follower}"),
            TraceKind::CommitAdvance { from, to } => {
                write!(formatter, "CommitAdvance {from}->{to}")
            }
            TraceKind::ForwardLost { request_id } => write!(formatter, "ForwardLost #{request_id}"),
            TraceKind::RequestAccepted { client, request_id } => {
                write!(formatter, "RequestAccepted c{client}#{request_id}")
            }
            TraceKind::RequestCompleted {
                client,
                request_id,
                outcome,
            } => write!(
                formatter,
                "RequestCompleted c{client}#{request_id} {}",
                Outcome(outcome)
            ),
            TraceKind::LateReply { request_id } => write!(formatter, "LateReply #{request_id}"),
            TraceKind::WatchEnded { .. }
            | TraceKind::ConnectionClosed { .. }
            | TraceKind::WatchDenied { .. }
            | TraceKind::KvRequestCompleted { .. } => self.fmt_revisioned(formatter),
        }
    }
}

impl TraceKind {
    /// The printer for the revisioned API's events (`docs/protocol.md` §14–§17).
    fn fmt_revisioned(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceKind::WatchEnded {
                client,
                watch_id,
                outcome,
            } => write!(formatter, "WatchEnded c{client}/w{watch_id} {outcome:?}"),
            TraceKind::ConnectionClosed { cluster, node } => {
                write!(formatter, "ConnectionClosed {cluster}/m{node}")
            }
            TraceKind::WatchDenied {
                client,
                watch_id,
                cluster,
            } => write!(
                formatter,
                "WatchDenied c{client}/w{watch_id} cluster={cluster}"
            ),
            TraceKind::KvRequestCompleted {
                client,
                request_id,
                outcome,
            } => match outcome {
                Ok(result) => write!(
                    formatter,
                    "RequestCompleted c{client}#{request_id} Ok({result})"
                ),
                Err(error) => write!(
                    formatter,
                    "RequestCompleted c{client}#{request_id} Err({error:?})"
                ),
            },
            _ => unreachable!("only the revisioned API's events are printed here"),
        }
    }
}

/// A master's state after an input: what the model compares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterPostState {
    /// The role.
    pub role: Role,
    /// The highest ballot promised or accepted in.
    pub promised: Ballot,
    /// The leader ballot this master follows or owns, if any.
    pub leader: Option<Ballot>,
    /// The commit index.
    pub commit_index: Slot,
    /// The highest slot in the log (or the snapshot's slot if the log is empty).
    pub last_slot: Slot,
    /// The leader's active set (empty unless Leader).
    pub active: Vec<NodeId>,
    /// The leader's evicted set (empty unless Leader).
    pub evicted: Vec<NodeId>,
}

/// The owner's state after the input that produced the event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PostState {
    /// A master's.
    Master(MasterPostState),
    /// A proxy's ledger counters.
    Proxy(LedgerCounters),
}

/// Who produced an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    /// A master.
    Master(NodeId),
    /// A proxy.
    Proxy(ProxyId),
}

impl fmt::Display for Origin {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Master(node) => write!(formatter, "m{node}"),
            Origin::Proxy(proxy) => write!(formatter, "p{proxy}"),
        }
    }
}

/// One trace event (one NDJSON line once the host serialises it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEvent {
    /// Who produced it.
    pub origin: Origin,
    /// Per-origin sequence number from 0. A restarted master is a new `Master` and numbers again
    /// from 0 (its first event is `Restart` when tracing is turned on before any input).
    pub sequence: u64,
    /// What happened.
    pub kind: TraceKind,
    /// The owner's state at the end of the input that produced the event.
    pub post: PostState,
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} {}", self.origin, self.kind)
    }
}

/// Collects the events of one input and stamps them with the post-state at its end.
#[derive(Debug, Default)]
pub(crate) struct TraceBuffer {
    pub(crate) enabled: bool,
    next_sequence: u64,
    open: Vec<TraceKind>,
    pub(crate) finished: Vec<TraceEvent>,
}

impl TraceBuffer {
    /// Records one event of the current input; `kind` is only built when tracing is on.
    pub(crate) fn record(&mut self, kind: impl FnOnce() -> TraceKind) {
        if self.enabled {
            self.open.push(kind());
        }
    }

    /// True if the current input recorded events that still need their post-state.
    pub(crate) fn has_open(&self) -> bool {
        !self.open.is_empty()
    }

    /// Ends the current input: stamps its events with `post`.
    pub(crate) fn finish(&mut self, origin: Origin, post: PostState) {
        for kind in self.open.drain(..) {
            self.finished.push(TraceEvent {
                origin,
                sequence: self.next_sequence,
                kind,
                post: post.clone(),
            });
            self.next_sequence += 1;
        }
    }
}
