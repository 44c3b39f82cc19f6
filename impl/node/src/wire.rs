//! The frames exchanged after the handshake: the protocol's `Message` plus the host's status
//! queries, which are not protocol steps (they change nothing and are never traced).
//!
//! Why a wrapper instead of extending `vigil_core::Message`: `vigil status` needs a master's
//! role, ballot and sets, which the protocol has no message for; keeping them out of the core
//! keeps the core's message enum equal to `docs/protocol.md` §10. A client's frames carry the
//! protocol's client messages (`Request`, `KvRequest`, the watch messages of §17.7) under the
//! same names, plus the client token the host checks before the core sees them.

use serde::{Deserialize, Serialize};
use vigil_core::kv_types::{
    Event, KvOperation, KvReplyOutcome, Revision, WatchEnd, WatchId, WatchRequest,
};
use vigil_core::{LedgerCounters, MasterStatus, Message, Operation, ReplyOutcome, RequestId};

use crate::auth::Token;

/// What a traced sender puts next to a protocol message (`docs/trace.md` §3): the id of its
/// `Send` event (`<node>.<incarnation>.<peer>.<per-link sequence>`) and that event's Lamport
/// clock. The receiver writes both into its `Receive` event, so the merge links the two exactly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceStamp {
    /// The send's message id, unique in the run.
    pub message_id: String,
    /// The send's Lamport clock.
    pub lamport: u64,
}

/// Between masters, and between a proxy and a master.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerFrame {
    /// A protocol message.
    Protocol {
        /// The message.
        message: Message,
        /// The sender's trace stamp; none when the sender does not trace.
        stamp: Option<TraceStamp>,
    },
    /// proxy → master: report your status.
    StatusQuery {
        /// Chosen by the proxy, echoed in the answer.
        query_id: u64,
    },
    /// master → proxy: the answer to `StatusQuery`.
    Status {
        /// The query answered.
        query_id: u64,
        /// The master's status.
        status: MasterStatus,
    },
}

/// client → proxy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// An operation on a cluster (`protocol.md` §9.4 `Request`).
    Request {
        /// Chosen by the client, echoed in the reply.
        request_id: RequestId,
        /// The cluster name.
        cluster: String,
        /// The operation.
        operation: Operation,
        /// The client token for `cluster` (`docs/security.md`); none if the client has none.
        token: Option<Token>,
    },
    /// Ask for a cluster's status and the proxy's ledger.
    StatusQuery {
        /// Chosen by the client, echoed in the answer.
        query_id: u64,
        /// The cluster name.
        cluster: String,
        /// The client token for `cluster`.
        token: Option<Token>,
    },
    /// A revisioned operation (`protocol.md` §17.7 `KvRequest`); its id shares the space of
    /// `Request` ids on the connection.
    KvRequest {
        /// Chosen by the client, echoed in the reply.
        request_id: RequestId,
        /// The cluster name.
        cluster: String,
        /// The operation.
        operation: KvOperation,
        /// The client token for `cluster`.
        token: Option<Token>,
    },
    /// Open a watch (§17.2 `WatchCreate`).
    WatchCreate {
        /// Chosen by the client, unique among its open watches; names every frame of the watch.
        watch_id: WatchId,
        /// The cluster name.
        cluster: String,
        /// What to watch.
        watch: WatchRequest,
        /// The client token for `cluster`.
        token: Option<Token>,
    },
    /// End a watch of this connection (§17.4 `WatchCancel`); it was admitted when created.
    WatchCancel {
        /// The watch.
        watch_id: WatchId,
    },
    /// Ask for a `WatchProgress` (§17.3 `WatchProgressRequest`).
    WatchProgressRequest {
        /// The watch.
        watch_id: WatchId,
    },
}

/// proxy → client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProxyFrame {
    /// The one reply to a `Request` (`protocol.md` §9.4 `Reply`).
    Reply {
        /// The client's request id.
        request_id: RequestId,
        /// The outcome.
        outcome: ReplyOutcome,
    },
    /// The answer to a `StatusQuery`.
    Status {
        /// The query answered.
        query_id: u64,
        /// The status, or why it cannot be given (unknown cluster).
        result: Result<ClusterStatus, String>,
    },
    /// The one reply to a `KvRequest` (§17.7 `KvReply`).
    KvReply {
        /// The client's request id.
        request_id: RequestId,
        /// The outcome.
        outcome: KvReplyOutcome,
    },
    /// The watch is held (§17.2 `WatchCreated`).
    WatchCreated {
        /// The watch.
        watch_id: WatchId,
    },
    /// One revision's events for the watch (§17.3 `WatchEvents`).
    WatchEvents {
        /// The watch.
        watch_id: WatchId,
        /// The revision.
        revision: Revision,
        /// Its events in the watch's view.
        events: Vec<Event>,
    },
    /// Every event of the watch's range up to `revision` was delivered (§17.3).
    WatchProgress {
        /// The watch.
        watch_id: WatchId,
        /// The revision.
        revision: Revision,
    },
    /// The watch's one terminal outcome (§17.4 `WatchEnded`); nothing of it follows.
    WatchEnded {
        /// The watch.
        watch_id: WatchId,
        /// How it ended.
        outcome: WatchEnd,
    },
}

impl ProxyFrame {
    /// The frame carrying a message the core proxy addressed to a client, or `None` for a
    /// message no client receives (a host bug the caller logs).
    pub fn from_client_message(message: Message) -> Option<ProxyFrame> {
        Some(match message {
            Message::Reply {
                request_id,
                outcome,
            } => ProxyFrame::Reply {
                request_id,
                outcome,
            },
            Message::KvReply {
                request_id,
                outcome,
            } => ProxyFrame::KvReply {
                request_id,
                outcome,
            },
            Message::WatchCreated { watch_id } => ProxyFrame::WatchCreated { watch_id },
            Message::WatchEvents {
                watch_id,
                revision,
                events,
            } => ProxyFrame::WatchEvents {
                watch_id,
                revision,
                events,
            },
            Message::WatchProgress { watch_id, revision } => {
                ProxyFrame::WatchProgress { watch_id, revision }
            }
            Message::WatchEnded { watch_id, outcome } => {
                ProxyFrame::WatchEnded { watch_id, outcome }
            }
            _ => return None,
        })
    }
}

/// What `vigil status` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The cluster's name.
    pub cluster: String,
    /// One entry per configured master, by id: its status, or why it did not answer.
    pub masters: Vec<Result<MasterStatus, String>>,
    /// The proxy's ledger (all clusters together: one ledger per proxy).
    pub ledger: LedgerCounters,
}
