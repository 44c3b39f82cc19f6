//! The model's parameters: the deployment (masters, clients and their scripts), the protocol's
//! configuration (`docs/protocol.md` §12) shrunk to model size, the fault budgets that bound the
//! exhaustive search, and the seeded bugs.
//!
//! Bounds restrict the search only: with every budget at `u32::MAX` and no in-flight bound the
//! model runs unbounded (the simulation strategy and conformance replay use it that way).

use crate::kv_types::{
    ClientOperation, KvOperation, TxnOperation, TxnRequest, WatchId, WatchRequest,
};
use crate::types::{ClientId, ClusterName, Operation, RequestError, RequestId, Round};
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
    /// After its connection to the subscribed master closed, the proxy resumes its
    /// subscription from the next master's current revision instead of its watches' next
    /// revision (`watch.rs`, `resume_subscription`).
    WatchResumeFromCurrent,
    /// A `Txn` whose branch holds a read refused part-way keeps the writes made before it
    /// (`txn.rs`, `apply_txn`).
    TxnPartialApply,
    /// A watch naming an unknown cluster is registered and never ended (`watch.rs`,
    /// `handle_watch_create`): the incident, for streams.
    WatchLeakOnError,
    /// On `SubscriptionCompacted`, the proxy moves a watch behind the compaction point up to it
    /// instead of ending it `Compacted` (`watch.rs`, `handle_subscription_compacted`).
    CompactionSkipsWatch,
    /// A watch from revision 0 ("now") is answered `WatchCreated` at once and starts at the
    /// stream's next revision, or at the revision after the master's next report, instead of
    /// waiting for that report (`watch.rs`, `handle_watch_create`).
    WatchNowBeforeReport,
    /// Applying a leader's lease expiry does not check that the lease's generation is the one
    /// the expiry carries, so an expiry proposed before a keep-alive was applied — by a leader
    /// since deposed, or by the same leader racing the keep-alive — still ends the lease
    /// (`lease.rs`, `lease_expire`).
    ExpireByDeposedLeader,
    /// A new leader does not give its leases a fresh ttl at its election: it counts each from
    /// when it last applied the lease's grant or keep-alive from the log, missing the
    /// keep-alives its predecessor acknowledged without a log entry
    /// (`lease_leader.rs`, `leases_at_election`).
    TtlNotRenewedOnElection,
    /// A lease ends without deleting the keys attached to it (`lease.rs`, `end_lease`).
    EphemeralOutlivesLease,
}

impl Bug {
    /// Every seeded bug, in the order `vigil-model bugs` lists them.
    pub const ALL: [Bug; 16] = [
        Bug::ErrorPathLeak,
        Bug::DoubleComplete,
        Bug::EvictedAckCounts,
        Bug::ForgetPromise,
        Bug::StaleLeaderRead,
        Bug::ReadBeforeOwnBallotCommit,
        Bug::PausedHeartbeat,
        Bug::OwnAcceptBeforePersist,
        Bug::WatchResumeFromCurrent,
        Bug::TxnPartialApply,
        Bug::WatchLeakOnError,
        Bug::CompactionSkipsWatch,
        Bug::WatchNowBeforeReport,
        Bug::ExpireByDeposedLeader,
        Bug::TtlNotRenewedOnElection,
        Bug::EphemeralOutlivesLease,
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
            Bug::WatchResumeFromCurrent => "watch-resume-from-current",
            Bug::TxnPartialApply => "txn-partial-apply",
            Bug::WatchLeakOnError => "watch-leak-on-error",
            Bug::CompactionSkipsWatch => "compaction-skips-watch",
            Bug::WatchNowBeforeReport => "watch-now-before-report",
            Bug::ExpireByDeposedLeader => "expire-by-deposed-leader",
            Bug::TtlNotRenewedOnElection => "ttl-not-renewed-on-election",
            Bug::EphemeralOutlivesLease => "ephemeral-outlives-lease",
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
            Bug::WatchResumeFromCurrent => "after the subscribed master crashed, the proxy resumes its subscription from the next master's current revision instead of its watches' next revision: the events committed meanwhile are never delivered, and a progress notification claims them",
            Bug::TxnPartialApply => "a Txn whose branch reads below the compaction point or above the current revision after a write keeps that write and answers the refusal: half a transaction applied",
            Bug::WatchLeakOnError => "a watch naming an unknown cluster is registered and never ended: its client never hears back (the incident, for streams)",
            Bug::CompactionSkipsWatch => "a watch behind the compaction point is moved up to it instead of ending Compacted: it skips the events in between (a put it was owed), and the next one it gets shows the gap",
            Bug::WatchNowBeforeReport => "a watch from revision 0 (now) is answered WatchCreated at once and starts at the stream's next revision, which a watch from a future revision holds ahead of the store: a put its client makes after the watch is created is never delivered",
            Bug::ExpireByDeposedLeader => "applying a lease expiry does not check the lease's generation: an expiry proposed before a keep-alive was applied (by a leader since deposed, or racing the keep-alive) ends a lease its holder was just told is alive",
            Bug::TtlNotRenewedOnElection => "a new leader counts each lease's ttl from when it last applied the lease's grant or keep-alive instead of from its election: a keep-alive its predecessor acknowledged without a log entry is missed and the lease expires early",
            Bug::EphemeralOutlivesLease => "a lease ends without deleting its keys: a key attached to a revoked or expired lease stays readable",
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
            Bug::WatchResumeFromCurrent => "watch_in_order_exactly_once",
            Bug::TxnPartialApply => "txn_atomic",
            Bug::WatchLeakOnError => "watch_ends_once",
            Bug::CompactionSkipsWatch => "watch_in_order_exactly_once",
            Bug::WatchNowBeforeReport => "watch_from_now_misses_nothing",
            Bug::ExpireByDeposedLeader => "lease_not_expired_early",
            Bug::TtlNotRenewedOnElection => "lease_not_expired_early",
            Bug::EphemeralOutlivesLease => "ephemeral_keys_end_with_lease",
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
#[error("unknown bug `{0}` (known: error-path-leak, double-complete, evicted-ack-counts, forget-promise, stale-leader-read, read-before-own-ballot-commit, paused-heartbeat, own-accept-before-persist, watch-resume-from-current, txn-partial-apply, watch-leak-on-error, compaction-skips-watch, watch-now-before-report, expire-by-deposed-leader, ttl-not-renewed-on-election, ephemeral-outlives-lease)")]
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
    /// `CloseConnection` faults: the proxy's host sees its connection to the master it is
    /// subscribed at close on its own (the master died and is not restarted yet, or the
    /// connection broke with nothing of the subscription in flight), §17.6.
    #[serde(default)]
    pub connections_closed: u32,
    /// `Tick` steps: how far the one clock of the leases may advance (§20.4).
    #[serde(default)]
    pub ticks: u32,
    /// `ClientPause` faults: a client's stop-the-world pause (§20.4).
    #[serde(default)]
    pub client_pauses: u32,
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
        connections_closed: u32::MAX,
        ticks: u32::MAX,
        client_pauses: u32::MAX,
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

/// One step of a revisioned client's script (§14–§17).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvStep {
    /// Sends `KvRequest`; the next step waits for its `KvReply`.
    Operation(KvOperation),
    /// Sends `WatchCreate`; the next step waits for `WatchCreated` or `WatchEnded`.
    Watch(WatchRequest),
    /// Sends `WatchCancel` for the watch created at script position `watch`; the next step
    /// waits for that watch's `WatchEnded`.
    Cancel {
        /// The script position of the `Watch` step.
        watch: u8,
    },
    /// Sends `WatchProgressRequest` for the watch created at script position `watch`; the next
    /// step waits for `WatchProgress` or the watch's end.
    Progress {
        /// The script position of the `Watch` step.
        watch: u8,
    },
    /// Closes the client's connection (`ClientClosed`): its watches end `ClientGone`. The
    /// last step of a script.
    Disconnect,
}

/// A client of the revisioned API: the cluster it names and its steps, one at a time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KvClientScript {
    /// The cluster name it sends.
    pub cluster: ClusterName,
    /// Its steps, in order.
    pub steps: Vec<KvStep>,
}

fn range_limit_max_default() -> u8 {
    2
}

fn txn_operations_max_default() -> u8 {
    2
}

fn watches_per_client_max_default() -> u8 {
    1
}

fn watch_events_buffered_max_default() -> u8 {
    2
}

fn reads_waiting_max_default() -> u32 {
    2
}

fn leases_max_default() -> u8 {
    1
}

fn keys_per_lease_max_default() -> u8 {
    1
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
    /// Reads waiting at the leader for a read round (§9.2); one more is refused `Overloaded`.
    #[serde(default = "reads_waiting_max_default")]
    pub reads_waiting_max: u32,
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
    /// The clients of the revisioned API (§14–§17), numbered after `clients`: client id
    /// `clients.len() + k` is `kv_clients[k]`, and its request ids follow every register
    /// client's.
    #[serde(default)]
    pub kv_clients: Vec<KvClientScript>,
    /// The server's bound on the keys one `Range` returns (§14.2).
    #[serde(default = "range_limit_max_default")]
    pub range_limit_max: u8,
    /// Compares, and operations per branch, one `Txn` may hold (§15.2).
    #[serde(default = "txn_operations_max_default")]
    pub txn_operations_max: u8,
    /// Watches one client connection may hold open at the proxy (§17.5).
    #[serde(default = "watches_per_client_max_default")]
    pub watches_per_client_max: u8,
    /// Event messages of one watch that may wait for its client (§17.5): one more is due and
    /// the watch ends `Overflow`.
    #[serde(default = "watch_events_buffered_max_default")]
    pub watch_events_buffered_max: u8,
    /// Live leases at most (§20.6): one more grant is refused `TooManyLeases`.
    #[serde(default = "leases_max_default")]
    pub leases_max: u8,
    /// Keys attached to one lease at most (§20.6): one more is refused `TooManyKeys`.
    #[serde(default = "keys_per_lease_max_default")]
    pub keys_per_lease_max: u8,
    /// When set, states found after this instant are not explored: the time limit of a search.
    /// (stateright 0.31's own timeout is only checked when a DFS thread runs out of work, so a
    /// single-threaded DFS would ignore it.) Not part of the model; never serialized.
    #[serde(skip)]
    pub search_deadline: Option<std::time::Instant>,
    /// When set, collects the abstract state of every state the search reaches, for a design
    /// review (`crate::review`). Not part of the model; never serialized.
    #[serde(skip)]
    pub observer: Option<crate::review::Observer>,
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

    /// Every client, register clients first.
    pub fn client_count(&self) -> usize {
        self.clients.len() + self.kv_clients.len()
    }

    /// The script of a revisioned client (`None` for a register client).
    pub fn kv_script(&self, client: ClientId) -> Option<&KvClientScript> {
        self.kv_clients
            .get((client as usize).checked_sub(self.clients.len())?)
    }

    /// The steps in `client`'s script.
    pub fn script_len(&self, client: ClientId) -> usize {
        match self.clients.get(client as usize) {
            Some(script) => script.operations.len(),
            None => self
                .kv_script(client)
                .map_or(0, |script| script.steps.len()),
        }
    }

    /// The cluster `client` names.
    pub fn cluster_of(&self, client: ClientId) -> Option<ClusterName> {
        match self.clients.get(client as usize) {
            Some(script) => Some(script.cluster),
            None => self.kv_script(client).map(|script| script.cluster),
        }
    }

    /// The request id of `client`'s `index`-th step: scripts are numbered in client order,
    /// register clients first (a watch's id is its `Watch` step's).
    pub fn request_id(&self, client: ClientId, index: usize) -> RequestId {
        let before: usize = (0..client).map(|earlier| self.script_len(earlier)).sum();
        (before + index) as RequestId
    }

    /// The client and script position that own `request_id`.
    pub fn owner_of(&self, request_id: RequestId) -> Option<(ClientId, usize)> {
        let mut first = 0usize;
        for client in 0..self.client_count() as ClientId {
            let index = (request_id as usize).checked_sub(first)?;
            let len = self.script_len(client);
            if index < len {
                return Some((client, index));
            }
            first += len;
        }
        None
    }

    /// The register operation `request_id` carries.
    pub fn operation_of(&self, request_id: RequestId) -> Option<Operation> {
        let (client, index) = self.owner_of(request_id)?;
        Some(*self.clients.get(client as usize)?.operations.get(index)?)
    }

    /// The revisioned client's step `request_id` names.
    pub fn kv_step_of(&self, request_id: RequestId) -> Option<&KvStep> {
        let (client, index) = self.owner_of(request_id)?;
        self.kv_script(client)?.steps.get(index)
    }

    /// The operation `request_id` carries, of either API.
    pub fn client_operation_of(&self, request_id: RequestId) -> Option<ClientOperation> {
        if let Some(operation) = self.operation_of(request_id) {
            return Some(ClientOperation::Register(operation));
        }
        match self.kv_step_of(request_id)? {
            KvStep::Operation(operation) => Some(ClientOperation::Kv(operation.clone())),
            _ => None,
        }
    }

    /// Whether a revisioned client's script holds a lease operation: only then do the lease
    /// clock, timers and properties exist (every other preset's state space is unchanged).
    pub fn has_leases(&self) -> bool {
        self.kv_clients.iter().any(|script| {
            script.steps.iter().any(
                |step| matches!(step, KvStep::Operation(operation) if operation.lease().is_some()),
            )
        })
    }

    /// Whether `request_id` is a revisioned request (its messages are the `Kv*` ones).
    pub fn is_kv_request(&self, request_id: RequestId) -> bool {
        matches!(self.kv_step_of(request_id), Some(KvStep::Operation(_)))
    }

    /// What the watch `watch_id` asks for.
    pub fn watch_request_of(&self, watch_id: WatchId) -> Option<WatchRequest> {
        match self.kv_step_of(watch_id)? {
            KvStep::Watch(request) => Some(*request),
            _ => None,
        }
    }

    /// The proxy's refusal of a revisioned request over its bounds or malformed (§15.2): a
    /// `Txn` with more than `txn_operations_max` compares or operations in a branch, or a
    /// branch that puts one key twice (etcd: "duplicate key given in txn request").
    pub fn kv_request_error(&self, operation: &KvOperation) -> Option<RequestError> {
        let KvOperation::Txn(request) = operation else {
            return None;
        };
        let max = self.txn_operations_max as usize;
        let over = |branch: &[TxnOperation]| branch.len() > max;
        let invalid = request.compare.len() > max
            || over(&request.success)
            || over(&request.failure)
            || puts_a_key_twice(request);
        invalid.then_some(RequestError::InvalidRequest)
    }
}

/// Whether a branch of `request` puts one key twice.
fn puts_a_key_twice(request: &TxnRequest) -> bool {
    [&request.success, &request.failure].iter().any(|branch| {
        let keys: Vec<_> = branch
            .iter()
            .filter_map(|operation| match operation {
                TxnOperation::Put(put) => Some(put.key),
                _ => None,
            })
            .collect();
        (1..keys.len()).any(|index| keys[..index].contains(&keys[index]))
    })
}
