//! The frames exchanged after the handshake: the protocol's `Message` plus the host's status
//! queries, which are not protocol steps (they change nothing and are never traced).
//!
//! Why a wrapper instead of extending `vigil_core::Message`: `vigil status` needs a master's
//! role, ballot and sets, which the protocol has no message for; keeping them out of the core
//! keeps the core's message enum equal to `docs/protocol.md` §10.

use serde::{Deserialize, Serialize};
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
