//! The model's state, grouped by role: masters (durable, then volatile), the proxy and its
//! ledger, the clients, the network, the fault budget used so far, the client-observed history
//! and a little ghost state that only properties read.
//!
//! Every type here is serde-serializable, so conformance can print, store and compare states,
//! and `Hash + Eq`, so the checker can deduplicate them.

use crate::config::{Budget, Config};
use crate::kv::KeyValueStore;
use crate::kv_types::{
    ClientOperation, ClientResult, KvOperation, KvRequestOutcome, KvResult, Revision,
    RevisionEvents, WatchEnd, WatchId, WatchRequest,
};
use crate::lease_types::LeaseState;
use crate::message::{Endpoint, Entries, Link, Message};
use crate::types::{
    Ballot, ClientId, Command, Entry, HeartbeatSequence, NodeId, NodeSet, Operation,
    OperationResult, RequestId, RequestOutcome, Round, Slot,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The accepted log: slot → entry (§2, durable).
pub type Log = BTreeMap<Slot, Entry>;

/// A master's role (§1): exactly one at a time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Follows `Master::leader`, if any.
    Follower,
    /// Asking for pre-votes for `ballot` (§6.1).
    PreCandidate {
        /// The ballot it would use.
        ballot: Ballot,
        /// Masters that granted.
        grants: NodeSet,
    },
    /// Phase 1 in flight (§3).
    Candidate {
        /// Its ballot (already promised).
        ballot: Ballot,
        /// Masters that promised.
        promises: NodeSet,
        /// The highest-ballot entry per slot reported so far.
        entries: Log,
    },
    /// Leading `LeaderState::ballot`.
    Leader(LeaderState),
}

/// What only a leader keeps (§4, §5): all volatile.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaderState {
    /// Its ballot.
    pub ballot: Ballot,
    /// Followers it replicates to and sends heartbeats to.
    pub active: NodeSet,
    /// Followers it evicted (§5.1).
    pub evicted: NodeSet,
    /// Consecutive missed heartbeats per master.
    pub missed_heartbeats: Vec<u8>,
    /// Followers that acknowledged since the previous heartbeat.
    pub acknowledged: NodeSet,
    /// Followers heard from in the current check-quorum window (§5.4).
    pub heard: NodeSet,
    /// Uncommitted slots of this ballot and who accepted them (the leader included).
    pub accepted_by: BTreeMap<Slot, NodeSet>,
    /// Proposals it owns: slot → request, answered once applied (§9.3).
    pub proposals: BTreeMap<Slot, RequestId>,
    /// Evictions counted (saturating).
    pub evictions: u8,
    /// Readmissions of evicted followers counted (saturating).
    pub rejoins: u8,
    /// The commit index when the heartbeat timer last fired (§4.7 retransmission).
    pub commit_at_last_heartbeat: Slot,
    /// The last slot assigned when the heartbeat timer last fired (the commit index at election):
    /// only slots outstanding for a whole heartbeat period are re-sent (§4.7).
    pub last_slot_at_last_heartbeat: Slot,
    /// The last slot phase 1 re-proposed (the commit index at election if none): until the commit
    /// index reaches it, a predecessor may have chosen more than this leader has committed, so
    /// `Get`s go through the log (§9.2).
    pub phase_one_last_slot: Slot,
    /// The read round of the last heartbeat round started (§9.2).
    pub heartbeat_sequence: HeartbeatSequence,
    /// Active followers that acknowledged round `heartbeat_sequence`.
    pub read_acknowledged: NodeSet,
    /// `Get`s served without a log entry, waiting for their round to be confirmed (§9.2).
    pub reads: BTreeMap<RequestId, PendingRead>,
}

/// A `Get` or `Range` a leader serves by confirming its leadership instead of through the log
/// (§9.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PendingRead {
    /// The `Get` or `Range`.
    pub operation: ClientOperation,
    /// The read round that confirms it: the first started after it arrived. Its read index (the
    /// commit index on arrival) needs no field: a leader's commit index only grows and it applies
    /// on commit, so the state it answers from is never older.
    pub heartbeat_sequence: HeartbeatSequence,
}

/// One master.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Master {
    /// Durable: the highest ballot promised or accepted in.
    pub promised: Ballot,
    /// Durable: accepted entries (the model does not compact, so there is no snapshot).
    pub log: Log,
    /// Volatile: the role.
    pub role: Role,
    /// Volatile: the leader ballot it follows (a leader: its own).
    pub leader: Option<Ballot>,
    /// Volatile: every slot up to it is chosen and applied here.
    pub commit_index: Slot,
    /// Volatile: heard from its leader since its own election timer last fired (§5.5, §6.2).
    pub heard_from_leader: bool,
    /// Volatile: the highest round learned from a `Nack` (never persisted, §6.2).
    pub round_seen: Round,
    /// Volatile: a `Rejoin` for a gap below the commit index is outstanding (§4.5, §6.3).
    pub rejoin_requested: bool,
    /// Host: stopped by a stop-the-world pause (§7).
    pub paused: bool,
    /// Host: crashed, waiting for `Restart` (§8).
    pub crashed: bool,
    /// Volatile: resumed as leader; its overdue check-quorum fires before anything else (§7.2).
    pub check_quorum_overdue: bool,
    /// Host: writes handed to the disk and not durable yet, oldest first (§2.1): `Persist`
    /// makes the oldest durable, a crash undoes them all (`crate::disk`).
    pub pending_writes: Vec<PendingWrite>,
    /// Volatile: the proxy's subscription to this master's committed stream (§17.1), as the
    /// next revision to send it; `None` when the proxy has none here.
    #[serde(default)]
    pub subscription: Option<Revision>,
}

/// One input's durable write that is not durable yet (§2.1): what a crash undoes, and what
/// waits for it. `promised` and `log` above already show it (the master's memory); the
/// `*_before` fields say what the disk holds until the write is durable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PendingWrite {
    /// `promised` before the write, if the write changed it.
    pub promised_before: Option<Ballot>,
    /// Each slot the write stored, with the entry it held before (`None`: empty).
    pub entries_before: Vec<(Slot, Option<Entry>)>,
    /// Messages that leave once the write is durable (`Prepare`, `Promise`, `Accepted`,
    /// `CatchUpAck`), in order.
    pub messages: Vec<(Endpoint, Message)>,
    /// The leader's own acceptances of entries it wrote: counted once durable (§4.3).
    pub own_accepts: Vec<(Ballot, Slot)>,
}

impl Master {
    /// The accepted entries in slots above `slot` (what `Promise` and `CatchUp` carry, §3.2, §6.3).
    pub fn entries_above(&self, slot: Slot) -> Entries {
        self.log
            .range(slot.saturating_add(1)..)
            .map(|(slot, entry)| (*slot, entry.clone()))
            .collect()
    }

    /// Stops following its leader: the leader's round stays learned (`round_seen`), and a
    /// `Rejoin` asked of that leader is no longer outstanding.
    pub fn forget_leader(&mut self) {
        if let Some(leader) = self.leader.take() {
            self.round_seen = self.round_seen.max(leader.round);
        }
        self.rejoin_requested = false;
    }

    /// The leader state, if it leads.
    pub fn leader_state(&self) -> Option<&LeaderState> {
        match &self.role {
            Role::Leader(leader) => Some(leader),
            _ => None,
        }
    }

    /// The highest slot in its log or commit point.
    pub fn last_slot(&self) -> Slot {
        self.log
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(self.commit_index)
    }
}

/// A request the proxy forwarded and has not completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PendingRequest {
    /// The master it was last forwarded to.
    pub target: NodeId,
    /// `NotLeader` redirects followed so far.
    pub redirects: u8,
}

/// The proxy's request accounting (§9.4.7, `docs/lifecycle.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ledger {
    /// Requests received.
    pub accepted: u32,
    /// Requests completed with `Ok`.
    pub completed_ok: u32,
    /// Requests completed with `Err`.
    pub completed_err: u32,
    /// Requests accepted and not completed (each owns a pending slot).
    pub in_flight: u32,
    /// Replies that arrived after their request completed (ignored).
    pub late_replies: u32,
}

/// The proxy (§9.4): it holds nothing that must survive a crash.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Proxy {
    /// The cached leader of the served cluster (set by a success or a `NotLeader` hint,
    /// forgotten on `Timeout`, `LeaderChanged`, `NoLeader` and a hintless `NotLeader`).
    pub leader_cache: Option<NodeId>,
    /// The next master to try when the cache misses ("masters in turn", §9.4.4).
    pub next_in_turn: NodeId,
    /// Forwarded requests waiting for a final answer (each has its request timer).
    pub pending: BTreeMap<RequestId, PendingRequest>,
    /// The counters.
    pub ledger: Ledger,
    /// The watches it holds open (§17), by id.
    #[serde(default)]
    pub watches: BTreeMap<WatchId, Watch>,
    /// Its one subscription to a master's committed stream, while it holds watches (§17.1).
    #[serde(default)]
    pub subscription: Option<Subscription>,
    /// The watch accounting (§17.4).
    #[serde(default)]
    pub watch_ledger: WatchLedger,
}

/// A watch the proxy holds open (§17).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Watch {
    /// The client that created it.
    pub client: ClientId,
    /// What it asked for.
    pub request: WatchRequest,
    /// Every event of its range with a revision from `request.start_revision` up to (not
    /// including) this one was delivered: the next revision it is owed (0: a watch from
    /// revision 0 the master's report has not resolved yet).
    pub next_revision: Revision,
}

/// The proxy's subscription to one master's committed stream (§17.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Subscription {
    /// The master streaming to it.
    pub master: NodeId,
    /// The next revision the stream must bring (0: the master's next one, learnt from its first
    /// `Events`: a stream for watches from revision 0 only, or the seeded bug
    /// `watch-resume-from-current`).
    pub next_revision: Revision,
    /// Whether it resumed a subscription whose connection closed.
    pub resumed: bool,
}

/// The proxy's watch accounting: `opened == ended + open` at every step, and `open` is the
/// number of watches it holds (§17.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WatchLedger {
    /// `WatchCreate`s received.
    pub opened: u32,
    /// Watches ended, each exactly once.
    pub ended: u32,
    /// Watches open.
    pub open: u32,
}

/// What a client got for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplyRecord {
    /// Replies received: more than one is a double completion.
    pub count: u8,
    /// The first reply's outcome.
    pub outcome: RequestOutcome,
}

/// What a client got for one revisioned request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KvReplyRecord {
    /// Replies received: more than one is a double completion.
    pub count: u8,
    /// The first reply's outcome.
    pub outcome: KvRequestOutcome,
}

/// What a client received for one of its watches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WatchRecord {
    /// `WatchCreated` received.
    pub created: bool,
    /// The `WatchEvents` received, in order.
    pub events: Vec<RevisionEvents>,
    /// The revision of the latest `WatchProgress` received.
    pub progress: Option<Revision>,
    /// `WatchEnded` received: more than one is a double end.
    pub ends: u8,
    /// The first one's outcome.
    pub end: Option<WatchEnd>,
    /// Something for the watch arrived after its `WatchEnded`.
    pub after_end: bool,
}

/// One client: where it is in its script and every reply it got.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Client {
    /// Operations sent so far.
    pub sent: u32,
    /// Replies per request.
    pub replies: BTreeMap<RequestId, ReplyRecord>,
    /// Replies per revisioned request.
    #[serde(default)]
    pub kv_replies: BTreeMap<RequestId, KvReplyRecord>,
    /// What each of its watches received.
    #[serde(default)]
    pub watches: BTreeMap<WatchId, WatchRecord>,
    /// Its connection closed (`KvStep::Disconnect`): nothing reaches it any more.
    #[serde(default)]
    pub gone: bool,
}

/// One event of the client-observed history of revisioned requests (for `linearizable`),
/// placed among the register history's events by `after`: it came after the first `after` of
/// them and before the rest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvHistoryEvent {
    /// A client sent the request, after the first `after` events of `State::history`.
    Invoke {
        /// The request.
        request_id: RequestId,
        /// Its operation.
        operation: KvOperation,
        /// Register history events before it.
        after: u32,
    },
    /// A client got a definite answer (`None`: refused, no effect), after the first `after`
    /// events of `State::history`.
    Return {
        /// The request.
        request_id: RequestId,
        /// The result, or `None` when refused.
        result: Option<KvResult>,
        /// Register history events before it.
        after: u32,
    },
}

impl KvHistoryEvent {
    /// How many register history events came before it.
    pub fn after(&self) -> usize {
        match self {
            KvHistoryEvent::Invoke { after, .. } | KvHistoryEvent::Return { after, .. } => {
                *after as usize
            }
        }
    }
}

/// One event of the client-observed history of the served cluster (for `linearizable`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HistoryEvent {
    /// A client sent the request.
    Invoke {
        /// The request.
        request_id: RequestId,
        /// Its operation.
        operation: Operation,
    },
    /// A client got a definite answer: `Some(result)`, or `None` for a refusal that did not take
    /// effect. Indeterminate outcomes (`Timeout`, `LeaderChanged`) record no return.
    Return {
        /// The request.
        request_id: RequestId,
        /// The result, or `None` when refused.
        result: Option<OperationResult>,
    },
}

/// What only the properties read: facts about the past a state alone would not show.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ghost {
    /// Every slot committed anywhere, with its command.
    pub chosen: BTreeMap<Slot, Command>,
    /// Two masters committed different commands in one slot.
    pub agreement_violated: bool,
    /// A crash lost a log entry whose write was not durable yet (§2.1, §8).
    pub entry_lost_in_crash: bool,
    /// A leader committed a slot fewer than a static quorum accepted.
    pub quorum_integrity_violated: bool,
    /// A paused master sent a message.
    pub paused_sent: bool,
    /// A follower was evicted before `eviction_threshold` missed heartbeats.
    pub early_eviction: bool,
    /// A master applied a `Txn` that wrote part of its branch, or wrote and was refused.
    #[serde(default)]
    pub txn_partially_applied: bool,
    /// A master served a revision below its compaction point (a range or a streamed event).
    #[serde(default)]
    pub compacted_served: bool,
    /// The highest revision chosen when the proxy's subscription last lost its connection.
    #[serde(default)]
    pub revision_chosen_at_subscription_loss: Option<Revision>,
    /// A resumed subscription delivered a watch the events of a revision chosen after the
    /// connection it resumed closed, while a master led in a round of 2 or more.
    #[serde(default)]
    pub watch_resumed_across_leader_change: bool,
    /// Every watch from revision 0 ("now", §17.2): where it started and what was chosen when
    /// it was created.
    #[serde(default)]
    pub watches_from_now: BTreeMap<WatchId, WatchFromNow>,
    /// A watch from revision 0 started above the revision after the highest one chosen when
    /// its `WatchCreated` was sent: a write its client made after hearing it could be missed.
    #[serde(default)]
    pub watch_from_now_missed: bool,
}

/// A watch from revision 0 as the ghost saw it (§17.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WatchFromNow {
    /// The highest revision chosen when the proxy sent its `WatchCreated`.
    pub chosen_at_created: Option<Revision>,
    /// The revision the proxy resolved "now" to: the first one it is owed.
    pub start: Option<Revision>,
}

/// The whole system.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct State {
    /// The masters, by `NodeId`.
    pub masters: Vec<Master>,
    /// The proxy.
    pub proxy: Proxy,
    /// The clients, by `ClientId`.
    pub clients: Vec<Client>,
    /// Messages in flight per link, oldest first; a link with nothing in flight is absent.
    pub network: BTreeMap<Link, Vec<Message>>,
    /// Per link, how many messages at its head went out on a connection the sender has closed
    /// since (a leader's eviction of the follower, §5.1): bytes already in the socket, which
    /// may still arrive in any order relative to what the sender writes on its next connection
    /// (`Step::close_connection`). Kept only with `Delivery::PerLinkFifo`, where order matters;
    /// a link is absent when it has none.
    #[serde(default)]
    pub closed_connection_messages: BTreeMap<Link, usize>,
    /// Fault and timer steps taken so far (bounded by `Config::budget`).
    pub used: Budget,
    /// The client-observed history of the served cluster.
    pub history: Vec<HistoryEvent>,
    /// The client-observed history of revisioned requests to the served cluster.
    #[serde(default)]
    pub kv_history: Vec<KvHistoryEvent>,
    /// Ghost state for properties.
    pub ghost: Ghost,
    /// The committed prefix that replay compacted away (`crate::compaction`); always empty in
    /// the exhaustive check, so it adds no state there.
    pub compacted: Compacted,
    /// The leases' clock, the leaders' lease timers, the holders and the lease ghost
    /// (`crate::lease_types`); empty without lease operations.
    #[serde(default)]
    pub lease: LeaseState,
}

/// What the masters' handlers need of a log prefix that replay compacted away: each master's
/// key-value store after its committed log, so that results of later slots can still be
/// computed without applying the log from its first slot. The entries themselves are in
/// replay's `crate::compaction::Archive`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Compacted {
    /// Slots `1..=through` are out of every master's log and of `Ghost::chosen`.
    pub through: Slot,
    /// Per master, its store after applying its log through a slot of its committed prefix at
    /// or above `through` (empty when nothing was compacted).
    pub stores: Vec<AppliedStore>,
    /// The reference store after the chosen slots `1..=through` (`None` when `through` is 0).
    #[serde(default)]
    pub reference: Option<KeyValueStore>,
}

/// A master's store after its log through `through`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AppliedStore {
    /// The last slot applied.
    pub through: Slot,
    /// The store.
    pub store: KeyValueStore,
}

impl State {
    /// The initial state of `config`.
    pub fn initial(config: &Config) -> State {
        let masters = (0..config.masters)
            .map(|node| initial_master(config, node))
            .collect();
        State {
            masters,
            proxy: Proxy::default(),
            clients: vec![Client::default(); config.client_count()],
            network: BTreeMap::new(),
            closed_connection_messages: BTreeMap::new(),
            used: Budget::default(),
            history: Vec::new(),
            kv_history: Vec::new(),
            ghost: Ghost::default(),
            compacted: Compacted::default(),
            lease: LeaseState::default(),
        }
    }

    /// Master `node`'s key-value store after applying its log through `slot`: the compacted
    /// store (or `config`'s empty one), then the log above it.
    pub fn store_through(&self, config: &Config, node: NodeId, slot: Slot) -> KeyValueStore {
        let (mut store, applied) = match self.compacted.stores.get(node as usize) {
            Some(applied) => (applied.store.clone(), applied.through),
            None => (KeyValueStore::for_master(config), 0),
        };
        assert!(
            slot >= applied && applied >= self.compacted.through,
            "slot {slot} of master {node} is below its compacted store (through {applied}, \
             the logs cut through {})",
            self.compacted.through
        );
        store.apply_log(&self.masters[node as usize].log, applied, slot);
        store
    }

    /// The reference store after every chosen slot: the compacted prefix's (or `config`'s
    /// empty one), then the chosen slots above it.
    pub fn chosen_store(&self, config: &Config) -> KeyValueStore {
        let mut store = self
            .compacted
            .reference
            .clone()
            .unwrap_or_else(|| KeyValueStore::reference(config));
        for command in self.ghost.chosen.values() {
            store.apply_command(command);
        }
        store
    }

    /// The result of the command in `slot` of master `node`'s log, applied after every slot
    /// below it (`None` for a `Noop` or an empty slot).
    pub fn result_at(&self, config: &Config, node: NodeId, slot: Slot) -> Option<ClientResult> {
        let mut store = self.store_through(config, node, slot.checked_sub(1)?);
        store.apply_command(&self.masters[node as usize].log.get(&slot)?.command)
    }

    /// Messages in flight over all links, and those waiting for their sender's disk.
    pub fn messages_in_flight(&self) -> usize {
        let held: usize = self
            .masters
            .iter()
            .flat_map(|master| &master.pending_writes)
            .map(|write| write.messages.len())
            .sum();
        self.network.values().map(Vec::len).sum::<usize>() + held
    }
}

fn initial_master(config: &Config, node: NodeId) -> Master {
    let first_ballot = Ballot { round: 1, node: 0 };
    let (promised, leader, role) = match (config.initial_leader, node) {
        (false, _) => (Ballot::ZERO, None, Role::Follower),
        (true, 0) => {
            let others = {
                let mut set = NodeSet::all(config.masters);
                set.remove(0);
                set
            };
            let leader = LeaderState {
                ballot: first_ballot,
                active: others,
                evicted: NodeSet::default(),
                // The moment just after a heartbeat that found every follower acknowledged
                // (a state the core reaches in every steady period), not a new leader's first
                // period (that one counts as acknowledged, §5.1).
                missed_heartbeats: vec![0; config.masters as usize],
                acknowledged: NodeSet::default(),
                heard: NodeSet::default(),
                accepted_by: BTreeMap::new(),
                proposals: BTreeMap::new(),
                evictions: 0,
                rejoins: 0,
                commit_at_last_heartbeat: 0,
                last_slot_at_last_heartbeat: 0,
                phase_one_last_slot: 0,
                heartbeat_sequence: 0,
                read_acknowledged: NodeSet::default(),
                reads: BTreeMap::new(),
            };
            (first_ballot, Some(first_ballot), Role::Leader(leader))
        }
        (true, _) => (first_ballot, Some(first_ballot), Role::Follower),
    };
    Master {
        promised,
        log: Log::new(),
        role,
        leader,
        commit_index: 0,
        heard_from_leader: config.initial_leader,
        round_seen: 0,
        rejoin_requested: false,
        paused: false,
        crashed: false,
        check_quorum_overdue: false,
        pending_writes: Vec::new(),
        subscription: None,
    }
}
