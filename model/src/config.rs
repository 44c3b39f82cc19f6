//! The model's parameters: the deployment (masters, clients and their scripts), the protocol's
//! configuration (`docs/protocol.md` §12) shrunk to model size, the fault budgets that bound the
//! exhaustive search, and the seeded bugs.
//!
//! Bounds restrict the search only: with every budget at `u32::MAX` and no in-flight bound the
//! model runs unbounded (the simulation strategy and conformance replay use it that way).

use crate::types::{ClientId, ClusterName, Operation, RequestId, Round};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// A known bug class, seeded as a one-line deviation where the real code would have it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Bug {
    /// The proxy returns early on an unknown cluster name without completing the request
    /// (the incident, `proxy.rs`, `handle_request`).
    ErrorPathLeak,
    /// The proxy completes a request on timeout and again on the late reply
    /// (`proxy.rs`, `handle_propose_reply`).
    DoubleComplete,
    /// Eviction shrinks the quorum: the leader counts a majority of itself and its active set,
    /// so acknowledgements of the remaining followers outweigh the evicted ones
    /// (`master.rs`, `quorum_of`).
    EvictedAckCounts,
    /// A master restarts without its promised ballot (`master.rs`, `restart`).
    ForgetPromise,
    /// A leader answers a `Get` from its own applied state at once, without confirming with a
    /// quorum that it still leads (`master.rs`, `handle_propose`).
    StaleLeaderRead,
    /// A new leader serves `Get`s without a log entry before it committed the slots its phase 1
    /// re-proposed, so its commit index may miss what its predecessor chose (`read.rs`,
    /// `serves_reads`).
    ReadBeforeOwnBallotCommit,
    /// The leader's heartbeat timer keeps firing while the master is paused
    /// (`model.rs`, `master_timer_actions`).
    PausedHeartbeat,
    /// The leader counts its own acceptance of an entry when it appends it, before its write
    /// is durable (`disk.rs`, `own_accept_after_write`): a crash then loses a chosen entry.
    OwnAcceptBeforePersist,
}

impl Bug {
    /// Every seeded bug, in the order `vigil-model bugs` lists them.
    pub const ALL: [Bug; 8] = [
        Bug::ErrorPathLeak,
        Bug::DoubleComplete,
        Bug::EvictedAckCounts,
        Bug::ForgetPromise,
        Bug::StaleLeaderRead,
        Bug::ReadBeforeOwnBallotCommit,
        Bug::PausedHeartbeat,
        Bug::OwnAcceptBeforePersist,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Bug::ErrorPathLeak => "error-path-leak",
            Bug::DoubleComplete => "double-complete",
            Bug::EvictedAckCounts => "evicted-ack-counts",
            Bug::ForgetPromise => "forget-promise",
            Bug::StaleLeaderRead => "stale-leader-read",
            Bug::ReadBeforeOwnBallotCommit => "read-before-own-ballot-commit",
            Bug::PausedHeartbeat => "paused-heartbeat",
            Bug::OwnAcceptBeforePersist => "own-accept-before-persist",
        }
    }

    /// One line on what the deviation does.
    pub fn description(self) -> &'static str {
        match self {
            Bug::ErrorPathLeak => "the proxy returns early on an unknown cluster name without completing the request (the incident)",
            Bug::DoubleComplete => "the proxy completes a request on timeout and again on the late reply",
            Bug::EvictedAckCounts => "eviction shrinks the quorum: the leader counts a majority of its active set, not of the static configuration",
            Bug::ForgetPromise => "a master restarts without its promised ballot",
            Bug::StaleLeaderRead => "a leader answers a Get from its own applied state at once, without a quorum confirming it still leads: a deposed leader, or a new leader that has not yet committed its predecessor's entries, serves a stale read",
            Bug::ReadBeforeOwnBallotCommit => "a new leader confirms its leadership for a Get and answers it before committing the slots its phase 1 re-proposed: its commit index misses a write its predecessor chose and answered",
            Bug::PausedHeartbeat => "the leader's heartbeat timer keeps firing while the master is paused",
            Bug::OwnAcceptBeforePersist => "the leader counts its own acceptance of an entry when it appends it, before its write is durable: it commits and acknowledges a Put with one follower of three, crashes before its fsync, and the next leader, elected without that follower, never learns the write: a later Get misses it",
        }
    }

    /// The property whose violation shows the bug.
    pub fn expected_violation(self) -> &'static str {
        match self {
            Bug::ErrorPathLeak => "quiescent_requests_complete",
            Bug::DoubleComplete => "complete_at_most_once",
            Bug::EvictedAckCounts => "quorum_integrity",
            Bug::ForgetPromise => "agreement",
            Bug::StaleLeaderRead => "linearizable",
            Bug::ReadBeforeOwnBallotCommit => "linearizable",
            Bug::PausedHeartbeat => "paused_sends_nothing",
            Bug::OwnAcceptBeforePersist => "linearizable",
        }
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// A name that is not a seeded bug.
#[derive(Debug, thiserror::Error)]
#[error("unknown bug `{0}` (known: error-path-leak, double-complete, evicted-ack-counts, forget-promise, stale-leader-read, read-before-own-ballot-commit, paused-heartbeat, own-accept-before-persist)")]
pub struct UnknownBug(pub String);

impl FromStr for Bug {
    type Err = UnknownBug;
    fn from_str(name: &str) -> Result<Bug, UnknownBug> {
        Bug::ALL
            .into_iter()
            .find(|bug| bug.name() == name)
            .ok_or_else(|| UnknownBug(name.to_string()))
    }
}

/// How a link delivers what is in flight on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Delivery {
    /// Per-link FIFO (TCP): only the head of a link can be delivered.
    PerLinkFifo,
    /// Any message of a link can be delivered next.
    Unordered,
}

/// When a master's durable write is durable (§2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Disk {
    /// Within the step that writes it (an infinitely fast disk): no pending write, no
    /// `Persist`. A subset of `Queued`'s behaviours, for presets that check no crash.
    Immediate,
    /// At a later `Persist` step, oldest first; a crash loses what is still pending. What the
    /// implementation does (replay always uses it), and what checking crashes needs.
    Queued,
}

/// How many fault and timer steps the search may take, in total over the run.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Budget {
    /// `ElectionTimeout` firings.
    pub election_timeouts: u32,
    /// `HeartbeatTimeout` firings.
    pub heartbeat_timeouts: u32,
    /// `CheckQuorumTimeout` firings (the overdue one after a `Resume` is not counted).
    pub check_quorum_timeouts: u32,
    /// `Pause` faults.
    pub pauses: u32,
    /// `Crash` faults.
    pub crashes: u32,
    /// `Drop` faults.
    pub drops: u32,
    /// `RequestTimeout` firings at the proxy.
    pub request_timeouts: u32,
    /// `RejoinWaitExpired` firings: a follower's outstanding `Rejoin` given up (§6.3).
    #[serde(default)]
    pub rejoin_waits_expired: u32,
    /// `ForwardLost` faults: a `Propose` the proxy could not hand to a connection (§9.4.6).
    #[serde(default)]
    pub forwards_lost: u32,
}

impl Budget {
    /// No bound at all.
    pub const UNBOUNDED: Budget = Budget {
        election_timeouts: u32::MAX,
        heartbeat_timeouts: u32::MAX,
        check_quorum_timeouts: u32::MAX,
        pauses: u32::MAX,
        crashes: u32::MAX,
        drops: u32::MAX,
        request_timeouts: u32::MAX,
        rejoin_waits_expired: u32::MAX,
        forwards_lost: u32::MAX,
    };
}

/// One client: the cluster name it uses and the operations it sends, one at a time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientScript {
    /// The cluster name it sends (a wrong one models the incident's misconfigured clients).
    pub cluster: ClusterName,
    /// Its operations, in order; the next is sent once the previous one got its `Reply`.
    pub operations: Vec<Operation>,
}

/// Everything that parameterises the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Config {
    /// N, the static configuration.
    pub masters: u8,
    /// Consecutive missed heartbeats before `Evict` (§5.1).
    pub eviction_threshold: u8,
    /// Accepted but uncommitted slots at the leader; beyond it `Overloaded` (§4.1; the model
    /// has no proposal queue: `proposals_queued_max` = 0).
    pub pipeline_slots_max: u8,
    /// Proxy requests accepted and not completed (§9.4.3).
    pub in_flight_max: u32,
    /// `NotLeader` redirects followed per request (§9.4.5).
    pub redirects_max: u8,
    /// The cluster the proxy serves.
    pub cluster: ClusterName,
    /// The clients and their scripts.
    pub clients: Vec<ClientScript>,
    /// The highest ballot round a master may start (bounds elections).
    pub round_max: Round,
    /// Fault and timer budgets.
    pub budget: Budget,
    /// Start with master 0 leading in ballot (1, 0), every follower promised to it (saves the
    /// first election); otherwise every master starts as a Follower with no leader.
    pub initial_leader: bool,
    /// States with more messages in flight are not explored (a search bound, not a protocol rule).
    pub messages_in_flight_max: Option<usize>,
    /// How links deliver.
    pub delivery: Delivery,
    /// When writes are durable.
    pub disk: Disk,
    /// Whether the leader sends an explicit `Commit` when its commit index advances; without it
    /// followers learn the commit index from the next `Accept` or `Heartbeat` (§4.4 allows both).
    pub explicit_commit: bool,
    /// The seeded bugs switched on.
    pub bugs: BTreeSet<Bug>,
    /// When set, states found after this instant are not explored: the time limit of a search.
    /// (stateright 0.31's own timeout is only checked when a DFS thread runs out of work, so a
    /// single-threaded DFS would ignore it.) Not part of the model; never serialized.
    #[serde(skip)]
    pub search_deadline: Option<std::time::Instant>,
}

impl Config {
    /// Whether a seeded bug is on.
    pub fn has(&self, bug: Bug) -> bool {
        self.bugs.contains(&bug)
    }

    /// A majority of the full static configuration (§1): nothing ever changes it.
    pub fn quorum(&self) -> usize {
        self.masters as usize / 2 + 1
    }

    /// The request id of `client`'s `index`-th operation: scripts are numbered in client order.
    pub fn request_id(&self, client: ClientId, index: usize) -> RequestId {
        let before: usize = self.clients[..client as usize]
            .iter()
            .map(|script| script.operations.len())
            .sum();
        (before + index) as RequestId
    }

    /// The client and script position that own `request_id`.
    pub fn owner_of(&self, request_id: RequestId) -> Option<(ClientId, usize)> {
        let mut first = 0usize;
        for (client, script) in self.clients.iter().enumerate() {
            let index = (request_id as usize).checked_sub(first)?;
            if index < script.operations.len() {
                return Some((client as ClientId, index));
            }
            first += script.operations.len();
        }
        None
    }

    /// The operation `request_id` carries.
    pub fn operation_of(&self, request_id: RequestId) -> Option<Operation> {
        let (client, index) = self.owner_of(request_id)?;
        Some(self.clients[client as usize].operations[index])
    }
}
