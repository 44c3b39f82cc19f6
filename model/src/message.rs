//! The one message enum of the protocol (`docs/protocol.md` §10) and the endpoints it travels
//! between.
//!
//! Masters talk to each other and to the proxy; the proxy talks to clients. A message names no
//! sender: the link it travels on does (`Link`), as a TCP connection would.

use crate::kv_types::{
    Event, KvOperation, KvProposeOutcome, KvRequestOutcome, Revision, RevisionEvents, WatchEnd,
    WatchId, WatchRequest,
};
use crate::types::{
    Ballot, ClientId, ClusterName, Entry, HeartbeatSequence, NodeId, Operation, ProposeOutcome,
    RequestId, RequestOutcome, Slot,
};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Who sends or receives a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Endpoint {
    /// A master of the static configuration.
    Master(NodeId),
    /// The proxy (the model has one).
    Proxy,
    /// A client of the proxy.
    Client(ClientId),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Master(node) => write!(formatter, "master {node}"),
            Endpoint::Proxy => write!(formatter, "proxy"),
            Endpoint::Client(client) => write!(formatter, "client {client}"),
        }
    }
}

/// A one-way connection `(source, destination)`: FIFO by default, what TCP gives.
pub type Link = (Endpoint, Endpoint);

/// Accepted entries carried by `Promise` and `CatchUp`, in slot order.
pub type Entries = Vec<(Slot, Entry)>;

/// Every message of the protocol (§10).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Message {
    /// PreCandidate → masters: would you vote for `ballot`? (§6.2)
    PreVote {
        /// The ballot the PreCandidate would use.
        ballot: Ballot,
    },
    /// Master → PreCandidate.
    PreVoteReply {
        /// The ballot asked about.
        ballot: Ballot,
        /// Whether the pre-vote is granted.
        granted: bool,
        /// On refusal, the leader the master follows.
        leader: Option<Ballot>,
    },
    /// Candidate → masters: phase 1 for every slot above `commit_index` (§3).
    Prepare {
        /// The candidate's ballot.
        ballot: Ballot,
        /// The candidate's commit index.
        commit_index: Slot,
    },
    /// Master → Candidate: the promise and what it accepted above the Prepare's commit index.
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// The promiser's commit index.
        commit_index: Slot,
        /// Accepted entries above the Prepare's commit index.
        entries: Entries,
    },
    /// Leader → active followers: phase 2 for one slot (§4).
    Accept {
        /// The leader's ballot.
        ballot: Ballot,
        /// The slot.
        slot: Slot,
        /// The command proposed.
        command: crate::types::Command,
        /// The leader's commit index.
        commit_index: Slot,
    },
    /// Follower → Leader.
    Accepted {
        /// The ballot accepted in.
        ballot: Ballot,
        /// The slot accepted.
        slot: Slot,
    },
    /// Master → sender of an older ballot.
    Nack {
        /// The refused ballot.
        ballot: Ballot,
        /// The refuser's promised ballot.
        promised: Ballot,
    },
    /// Leader → active followers: the commit index advanced.
    Commit {
        /// The leader's ballot.
        ballot: Ballot,
        /// The new commit index.
        commit_index: Slot,
    },
    /// Leader → active followers, every heartbeat interval (§5) and when reads wait (§9.2).
    Heartbeat {
        /// The leader's ballot.
        ballot: Ballot,
        /// The leader's commit index.
        commit_index: Slot,
        /// The leader's current read round (§9.2).
        heartbeat_sequence: HeartbeatSequence,
    },
    /// Follower → Leader.
    HeartbeatAck {
        /// The ballot acknowledged.
        ballot: Ballot,
        /// The follower's commit index.
        commit_index: Slot,
        /// The `Heartbeat`'s read round, echoed.
        heartbeat_sequence: HeartbeatSequence,
    },
    /// Follower → Leader: catch me up and readmit me (§6.3).
    Rejoin {
        /// The leader's ballot.
        ballot: Ballot,
        /// The follower's commit index.
        commit_index: Slot,
    },
    /// Leader → rejoining follower.
    CatchUp {
        /// The leader's ballot.
        ballot: Ballot,
        /// The leader's commit index.
        commit_index: Slot,
        /// Entries above the follower's commit index (committed, then accepted).
        entries: Entries,
    },
    /// Follower → Leader: caught up.
    CatchUpAck {
        /// The leader's ballot.
        ballot: Ballot,
        /// The follower's commit index.
        commit_index: Slot,
    },
    /// Proxy → master (§9.3).
    Propose {
        /// The request.
        request_id: RequestId,
        /// Its operation.
        operation: Operation,
    },
    /// Master → proxy.
    ProposeReply {
        /// The request.
        request_id: RequestId,
        /// Result or refusal.
        outcome: ProposeOutcome,
    },
    /// Client → proxy (§9.4).
    Request {
        /// The request.
        request_id: RequestId,
        /// The cluster the client names.
        cluster: ClusterName,
        /// The operation.
        operation: Operation,
    },
    /// Proxy → client: exactly one per request.
    Reply {
        /// The request.
        request_id: RequestId,
        /// Result or error.
        outcome: RequestOutcome,
    },
    /// Client → proxy: a revisioned request (§14), answered like `Request`.
    KvRequest {
        /// The request.
        request_id: RequestId,
        /// The cluster the client names.
        cluster: ClusterName,
        /// The operation.
        operation: KvOperation,
    },
    /// Proxy → client: exactly one per revisioned request.
    KvReply {
        /// The request.
        request_id: RequestId,
        /// Result or error.
        outcome: KvRequestOutcome,
    },
    /// Proxy → master: a revisioned request, handled like `Propose` (§9.3).
    KvPropose {
        /// The request.
        request_id: RequestId,
        /// Its operation.
        operation: KvOperation,
    },
    /// Master → proxy.
    KvProposeReply {
        /// The request.
        request_id: RequestId,
        /// Result or refusal.
        outcome: KvProposeOutcome,
    },
    /// Client → proxy: open a watch (§17.2).
    WatchCreate {
        /// The watch.
        watch_id: WatchId,
        /// The cluster the client names.
        cluster: ClusterName,
        /// What it watches, from which revision.
        watch: WatchRequest,
    },
    /// Client → proxy: end a watch (§17.4).
    WatchCancel {
        /// The watch.
        watch_id: WatchId,
    },
    /// Client → proxy: ask for a progress notification (§17.3).
    WatchProgressRequest {
        /// The watch.
        watch_id: WatchId,
    },
    /// Client → proxy: the client's connection closed, after everything it sent (§17.4).
    ClientClosed,
    /// Proxy → client: the watch is open; events follow.
    WatchCreated {
        /// The watch.
        watch_id: WatchId,
    },
    /// Proxy → client: every event of one revision in the watch's range.
    WatchEvents {
        /// The watch.
        watch_id: WatchId,
        /// The revision.
        revision: Revision,
        /// Its events for this watch, in order.
        events: Vec<Event>,
    },
    /// Proxy → client: every event of the watch's range up to `revision` was delivered.
    WatchProgress {
        /// The watch.
        watch_id: WatchId,
        /// The revision the watch is complete through.
        revision: Revision,
    },
    /// Proxy → client: the watch's one terminal outcome (none for `ClientGone`).
    WatchEnded {
        /// The watch.
        watch_id: WatchId,
        /// How it ended.
        outcome: WatchEnd,
    },
    /// Proxy → master: stream every committed revision from `from_revision` on, replacing any
    /// earlier subscription of this proxy (§17.1; 0: from the master's next revision).
    Subscribe {
        /// The first revision wanted.
        from_revision: Revision,
    },
    /// Proxy → master: the proxy's last watch ended; stop streaming.
    Unsubscribe,
    /// Master → subscribed proxy: revisions it committed, in order, with their events.
    Events {
        /// The master's revision when it sent this (every revision up to it was sent).
        revision: Revision,
        /// The revisions not sent before, oldest first (empty when only `revision` is news).
        revisions: Vec<RevisionEvents>,
    },
    /// Master → proxy: the subscription started below the master's compaction point and is
    /// not kept (§17.4).
    SubscriptionCompacted {
        /// The master's compaction point.
        compact_revision: Revision,
    },
    /// Master → proxy, from the proxy's own host: the connection to this master closed (the
    /// master crashed, or the connection broke); what the master streamed is gone with it.
    ConnectionClosed,
}

impl Message {
    /// The protocol's name of the message, as printed in reports and traces.
    pub fn name(&self) -> &'static str {
        match self {
            Message::PreVote { .. } => "PreVote",
            Message::PreVoteReply { .. } => "PreVoteReply",
            Message::Prepare { .. } => "Prepare",
            Message::Promise { .. } => "Promise",
            Message::Accept { .. } => "Accept",
            Message::Accepted { .. } => "Accepted",
            Message::Nack { .. } => "Nack",
            Message::Commit { .. } => "Commit",
            Message::Heartbeat { .. } => "Heartbeat",
            Message::HeartbeatAck { .. } => "HeartbeatAck",
            Message::Rejoin { .. } => "Rejoin",
            Message::CatchUp { .. } => "CatchUp",
            Message::CatchUpAck { .. } => "CatchUpAck",
            Message::Propose { .. } => "Propose",
            Message::ProposeReply { .. } => "ProposeReply",
            Message::Request { .. } => "Request",
            Message::Reply { .. } => "Reply",
            Message::KvRequest { .. } => "KvRequest",
            Message::KvReply { .. } => "KvReply",
            Message::KvPropose { .. } => "KvPropose",
            Message::KvProposeReply { .. } => "KvProposeReply",
            Message::WatchCreate { .. } => "WatchCreate",
            Message::WatchCancel { .. } => "WatchCancel",
            Message::WatchProgressRequest { .. } => "WatchProgressRequest",
            Message::ClientClosed => "ClientClosed",
            Message::WatchCreated { .. } => "WatchCreated",
            Message::WatchEvents { .. } => "WatchEvents",
            Message::WatchProgress { .. } => "WatchProgress",
            Message::WatchEnded { .. } => "WatchEnded",
            Message::Subscribe { .. } => "Subscribe",
            Message::Unsubscribe => "Unsubscribe",
            Message::Events { .. } => "Events",
            Message::SubscriptionCompacted { .. } => "SubscriptionCompacted",
            Message::ConnectionClosed => "ConnectionClosed",
        }
    }

    /// Whether it belongs to the proxy's subscription to a master (§17.1): losing one loses
    /// the connection, which the proxy learns (`ConnectionClosed`).
    pub fn is_subscription(&self) -> bool {
        matches!(
            self,
            Message::Subscribe { .. }
                | Message::Unsubscribe
                | Message::Events { .. }
                | Message::SubscriptionCompacted { .. }
        )
    }
}
