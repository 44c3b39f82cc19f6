//! The protocol's vocabulary (`docs/protocol.md` §1, §9.1) as small types.
//!
//! Keys, values, nodes and clients are a few bits wide: a model with two keys and three values
//! already shows every interleaving the protocol allows. Slots, rounds, versions, request ids and
//! ledger counters are 32 bits so that conformance can replay long real traces.
//! Names follow the protocol word for word, so that a counterexample reads like the document.

use crate::kv_types::KvOperation;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A master of the static configuration (`0..masters`).
pub type NodeId = u8;
/// A client of the proxy (`0..clients`).
pub type ClientId = u8;
/// A request, unique over the whole run: the client's script position decides it (see `Config`).
pub type RequestId = u32;
/// A position in the replicated log, starting at 1 (0 means "nothing").
pub type Slot = u32;
/// The round part of a ballot.
pub type Round = u32;
/// A leader's count of heartbeat rounds started for reads in its ballot (§9.2): `Heartbeat`
/// carries it and `HeartbeatAck` echoes it, so an acknowledgement shows which round it answers.
/// Not the ballot's `Round`.
pub type HeartbeatSequence = u32;
/// A key of the key-value store.
pub type Key = u8;
/// A value of the key-value store.
pub type Value = u8;
/// The version of a key: 0 is absent, every write adds one.
pub type Version = u32;
/// A cluster name as the proxy sees it (`Config::cluster` is the one it serves).
pub type ClusterName = u8;

/// `(round, node)`, ordered by round then node (§1). Printed `(round,node)` in counterexamples.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    /// Compared first.
    pub round: Round,
    /// The master that owns the ballot.
    pub node: NodeId,
}

impl Ballot {
    /// Below every real ballot.
    pub const ZERO: Ballot = Ballot { round: 0, node: 0 };
}

impl fmt::Debug for Ballot {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "({},{})", self.round, self.node)
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "({},{})", self.round, self.node)
    }
}

/// A set of masters as a bit mask: cheap to hash, ordered, serializable.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct NodeSet(pub u8);

impl NodeSet {
    /// The set of every master `0..masters`.
    pub fn all(masters: u8) -> NodeSet {
        NodeSet(((1u16 << masters) - 1) as u8)
    }
    /// Whether `node` is a member.
    pub fn contains(self, node: NodeId) -> bool {
        self.0 & (1 << node) != 0
    }
    /// Adds `node`.
    pub fn insert(&mut self, node: NodeId) {
        self.0 |= 1 << node;
    }
    /// Removes `node`.
    pub fn remove(&mut self, node: NodeId) {
        self.0 &= !(1 << node);
    }
    /// How many members.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
    /// Whether there is no member.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The members in increasing order.
    pub fn iter(self) -> impl Iterator<Item = NodeId> {
        (0..8u8).filter(move |node| self.contains(*node))
    }
}

/// A client operation on the key-value store (§9.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Operation {
    /// Reads a key.
    Get {
        /// The key read.
        key: Key,
    },
    /// Writes a key.
    Put {
        /// The key written.
        key: Key,
        /// The value written.
        value: Value,
    },
    /// Writes a key if its version is `expected_version`.
    Cas {
        /// The key written.
        key: Key,
        /// The version the client expects.
        expected_version: Version,
        /// The value written.
        value: Value,
    },
    /// Removes a key (its version keeps counting).
    Delete {
        /// The key removed.
        key: Key,
    },
}

/// What an operation returns once ordered and applied (§9.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OperationResult {
    /// Answer to `Get`.
    Value {
        /// `None` when absent.
        value: Option<Value>,
        /// 0 when never written.
        version: Version,
    },
    /// Answer to `Put` and a successful `Cas`.
    Written {
        /// The new version.
        version: Version,
    },
    /// Answer to a `Cas` whose expected version was not the current one.
    VersionMismatch {
        /// The version found.
        current_version: Version,
    },
    /// Answer to `Delete`.
    Deleted {
        /// The new version (0 and no write if the key was absent).
        version: Version,
    },
}

/// What the log orders (§1).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Command {
    /// A register operation tagged with its request.
    Operation {
        /// The request that proposed it.
        request_id: RequestId,
        /// The operation.
        operation: Operation,
    },
    /// A revisioned operation tagged with its request (§14).
    Kv {
        /// The request that proposed it.
        request_id: RequestId,
        /// The operation.
        operation: KvOperation,
    },
    /// Fills a gap found in phase 1.
    Noop,
    /// A leader's expiry of a lease (§20.3): applies only if the lease is live at the
    /// generation the leader saw; otherwise it is a no-op.
    LeaseExpire {
        /// The lease.
        lease: crate::lease_types::LeaseId,
        /// Its generation when the leader proposed the expiry.
        generation: crate::lease_types::LeaseGeneration,
    },
}

impl Command {
    /// The request that proposed it (`None` for a `Noop`).
    pub fn request_id(&self) -> Option<RequestId> {
        match self {
            Command::Operation { request_id, .. } | Command::Kv { request_id, .. } => {
                Some(*request_id)
            }
            Command::Noop | Command::LeaseExpire { .. } => None,
        }
    }
}

/// What a master accepted in a slot (§1; the slot is the log's key).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// The ballot it was accepted in.
    pub ballot: Ballot,
    /// The command accepted.
    pub command: Command,
}

/// A master's refusal of a `Propose` (§9.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ProposeError {
    /// Not the leader; maybe it knows who is.
    NotLeader {
        /// The leader this master follows, if any.
        leader_hint: Option<NodeId>,
    },
    /// The pipeline is full.
    Overloaded,
    /// The leader stepped down: the operation may or may not be chosen later.
    LeaderChanged,
}

/// The error a client may get from the proxy (§9.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RequestError {
    /// The cluster name is not one the proxy serves.
    UnknownCluster,
    /// The ledger is full, or the leader's pipeline is.
    Overloaded,
    /// Redirects exhausted without finding a leader.
    NoLeader,
    /// No final answer within the request timeout (indeterminate).
    Timeout,
    /// The leader stepped down while owning the proposal (indeterminate).
    LeaderChanged,
    /// A revisioned request over its bounds or malformed (§15.2): refused at the proxy.
    InvalidRequest,
}

impl RequestError {
    /// Whether the operation may still take effect: such an outcome is an invocation without a
    /// return for the linearizability checker.
    pub fn is_indeterminate(self) -> bool {
        matches!(self, RequestError::Timeout | RequestError::LeaderChanged)
    }
}

/// What a master answers to a `Propose`.
pub type ProposeOutcome = Result<OperationResult, ProposeError>;
/// What the proxy answers to a `Request`.
pub type RequestOutcome = Result<OperationResult, RequestError>;
