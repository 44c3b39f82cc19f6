//! The protocol's vocabulary (`docs/protocol.md` §1, §9): ballots, slots, entries, commands,
//! operations and their results, and the errors a client or a proxy can see.
//!
//! Everything here is plain data with serde derives, because the host encodes it on the wire and
//! in storage (postcard) and conformance reads it back from traces (JSON).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::kv_types::KvOperation;

/// A master of the static configuration, `0..masters` (`protocol.md` §1).
pub type NodeId = u64;

/// A position in the replicated log; the first slot is 1, slot 0 means "nothing".
pub type Slot = u64;

/// A leader's count of read rounds started in its ballot (`protocol.md` §9.2): `Heartbeat`
/// carries it and `HeartbeatAck` echoes it, so an acknowledgement shows which round it answers.
/// Not the ballot's round.
pub type HeartbeatSequence = u64;

/// A proxy, as the masters of a cluster know it: the host assigns one per proxy connection.
pub type ProxyId = u64;

/// A client connection at a proxy: the host assigns one per connection so that replies go back
/// to the connection that sent the request.
pub type ClientId = u64;

/// Identifies a request. In `Request`/`Reply` it is chosen by the client; in
/// `Propose`/`ProposeReply` (and in the log's `Command`) it is chosen by the proxy, unique per
/// proxy, so that a proxy can match a master's reply to its own pending request.
pub type RequestId = u64;

/// `(round, node)`, ordered by round then node (`protocol.md` §1). Field order matters: the
/// derived `Ord` compares `round` first.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    /// Increases with every election attempt that reaches phase 1.
    pub round: u64,
    /// The master that owns the ballot (its leader if the ballot wins).
    pub node: NodeId,
}

impl Ballot {
    /// Below every real ballot: the `promised` of a master that never promised anything.
    pub const ZERO: Ballot = Ballot { round: 0, node: 0 };

    /// A ballot of `round` owned by `node`.
    pub fn new(round: u64, node: NodeId) -> Ballot {
        Ballot { round, node }
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}.{}", self.round, self.node)
    }
}

/// A client operation on the key-value state machine (`protocol.md` §9.1).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operation {
    /// Read a key; answered without a log slot once a quorum confirmed the leader (§9.2), or
    /// through the log while the leader has not committed its phase 1.
    Get {
        /// The key to read.
        key: Vec<u8>,
    },
    /// Write a key unconditionally.
    Put {
        /// The key to write.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
    },
    /// Write a key only if its current version is `expected_version` (0: the key never existed).
    Cas {
        /// The key to write.
        key: Vec<u8>,
        /// The version the key must have for the write to happen.
        expected_version: u64,
        /// The new value.
        value: Vec<u8>,
    },
    /// Remove a key; its version keeps counting (§9.1).
    Delete {
        /// The key to remove.
        key: Vec<u8>,
    },
}

/// The result of an applied operation (`protocol.md` §9.1). All of these are `Ok` outcomes:
/// `VersionMismatch` means the operation was ordered and refused by the state machine.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OperationResult {
    /// Answer to `Get`: the value (None if absent or deleted) and the key's version.
    Value {
        /// The current value, if the key is present.
        value: Option<Vec<u8>>,
        /// The key's version (0 if it was never written).
        version: u64,
    },
    /// Answer to `Put` and to a successful `Cas`: the version written.
    Written {
        /// The version of the key after the write.
        version: u64,
    },
    /// Answer to a `Cas` whose `expected_version` was not the key's version.
    VersionMismatch {
        /// The key's version when the `Cas` was applied.
        current_version: u64,
    },
    /// Answer to `Delete`: the version of the deletion, or 0 when the key was absent.
    Deleted {
        /// The version the deletion wrote, 0 when nothing was written.
        version: u64,
    },
}

/// What the log orders (`protocol.md` §1).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Command {
    /// A client operation, tagged with the proposing proxy's request id.
    Operation {
        /// The proxy that proposed it (so two proxies' ids never look alike in the log).
        proxy: ProxyId,
        /// The proxy's id for this proposal.
        request_id: RequestId,
        /// The operation to apply.
        operation: Operation,
    },
    /// Fills a slot that phase 1 found empty (§3.4).
    Noop,
    /// A revisioned operation (§14–§16), tagged like `Operation`.
    Kv {
        /// The proxy that proposed it.
        proxy: ProxyId,
        /// The proxy's id for this proposal.
        request_id: RequestId,
        /// The operation to apply.
        operation: KvOperation,
    },
}

/// What a master has accepted in a slot: `(slot, ballot, command)` (`protocol.md` §1).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// Where in the log.
    pub slot: Slot,
    /// The ballot in which the master accepted it.
    pub ballot: Ballot,
    /// What was accepted.
    pub command: Command,
}

/// The errors a master returns to a proxy in `ProposeReply` (`protocol.md` §9.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
pub enum MasterError {
    /// This master is not the leader; `leader_hint` is the leader it follows, if any.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The master this one believes leads, if it knows one.
        leader_hint: Option<NodeId>,
    },
    /// The leader's pipeline and proposal queue are full (§4.1).
    #[error("leader overloaded")]
    Overloaded,
    /// The leader stepped down before the proposal's slot was applied: indeterminate outcome.
    #[error("leader changed before the proposal was applied")]
    LeaderChanged,
}

/// The errors a client can see in a `Reply` (`protocol.md` §9.4).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
pub enum ClientError {
    /// The request named a cluster this proxy does not serve.
    #[error("unknown cluster")]
    UnknownCluster,
    /// The proxy's ledger or the leader's queue is full.
    #[error("overloaded")]
    Overloaded,
    /// No leader found within `redirects_max` redirects.
    #[error("no leader")]
    NoLeader,
    /// No final answer within `request_timeout_ticks`: indeterminate outcome.
    #[error("timeout")]
    Timeout,
    /// The leader stepped down before applying the operation: indeterminate outcome.
    #[error("leader changed")]
    LeaderChanged,
    /// The client's token for the cluster is missing or wrong (checked by the host, outside
    /// the protocol; `docs/security.md`): nothing was forwarded.
    #[error("permission denied")]
    PermissionDenied,
    /// A revisioned request over its bounds or malformed (§15.2): refused by the proxy,
    /// never forwarded.
    #[error("invalid request")]
    InvalidRequest,
}

/// A master's answer to a `Propose`.
pub type ProposeOutcome = Result<OperationResult, MasterError>;

/// A proxy's answer to a `Request`.
pub type ReplyOutcome = Result<OperationResult, ClientError>;

/// The role of a master (`protocol.md` §1): exactly one at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking for pre-votes (§6.2); `promised` unchanged.
    PreCandidate,
    /// Phase 1 in flight (§3).
    Candidate,
    /// Won phase 1 with its ballot; runs phase 2.
    Leader,
}

impl fmt::Display for Role {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, formatter)
    }
}

/// Who a master exchanges messages with: another master or a proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Peer {
    /// A master of this cluster.
    Master(NodeId),
    /// A proxy that proposes to this cluster.
    Proxy(ProxyId),
}

impl fmt::Display for Peer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Master(node) => write!(formatter, "m{node}"),
            Peer::Proxy(proxy) => write!(formatter, "p{proxy}"),
        }
    }
}
