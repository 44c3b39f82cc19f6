//! The master: one member of the static configuration, as a pure state machine
//! (`docs/protocol.md` §2–§8).
//!
//! This file holds the state shared by all roles, the driving API (`tick`, `step`, `propose`,
//! `ready`, `advance`), the status accessors and the helpers every role uses (send, persist,
//! commit, step down). The handlers, and each role's own state, live with their role:
//! `follower.rs` (what any master does when a leader or candidate talks to it), `candidate/`
//! (timers, pre-vote, phase 1), `leader.rs` (phase 2, heartbeats, eviction, check-quorum,
//! rejoin) and `read.rs` (the leader's reads without a log slot).
//!
//! The master never reads a clock, draws a random number or does I/O: time is [`Master::tick`],
//! input is [`Master::step`], output is [`Master::ready`] (see `ready.rs` for the order in which
//! the host must handle it).

use serde::{Deserialize, Serialize};

use crate::candidate::{Campaign, PreVoteRound};
use crate::config::{Config, ConfigError};
use crate::kv::{Applied, KvStore, Snapshot};
use crate::kv_types::KvOperation;
use crate::leader::{Api, Leadership, ProposalOwner};
use crate::log::Log;
use crate::message::{Envelope, Message};
use crate::mutation::Mutation;
use crate::ready::{DurableState, DurableWrite, Ready, WriteGroup};
use crate::trace::{Endpoint, MasterPostState, Origin, PostState, TraceBuffer, TraceKind};
use crate::types::{
    Ballot, Command, Entry, MasterError, NodeId, Operation, Peer, ProxyId, RequestId, Role, Slot,
};

/// An input the master refuses: a host bug (wrong routing), never a protocol event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The message is not one a master handles (`Request`/`Reply` go to a proxy; a
    /// `ProposeReply` goes to a proxy; `Propose` only comes from a proxy).
    #[error("a master does not handle {message} from {from}")]
    NotForMaster {
        /// The message's name.
        message: &'static str,
        /// Who sent it.
        from: Peer,
    },
    /// A master-to-master message from a master outside `0..masters`, or from itself.
    #[error("message from unknown master m{from}")]
    UnknownMaster {
        /// The claimed sender.
        from: NodeId,
    },
}

/// Counters for metrics and status. They only ever grow (a restart resets them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterCounters {
    /// Times the leader this master follows or is changed to a new ballot.
    pub leader_changes: u64,
    /// Followers this master evicted as leader (§5.1).
    pub evictions: u64,
    /// Evicted followers this master readmitted as leader (§6.4).
    pub rejoins: u64,
    /// `Propose`s taken as leader (into the pipeline or the queue; refusals not counted).
    pub proposals: u64,
    /// `Heartbeat`s sent as leader by the heartbeat timer (§5.1; a read round started at once
    /// for waiting reads, §9.2, is not counted).
    pub heartbeats_sent: u64,
    /// `Get`s taken as leader without a log slot (§9.2; refusals not counted).
    pub reads: u64,
    /// `Get`s refused `Overloaded` as leader, `reads_waiting_max` reads waiting (§9.2).
    #[serde(default)]
    pub reads_refused: u64,
    /// Proposals refused `Overloaded` as leader, the pipeline and `proposals_queued_max`
    /// being full (§4.1).
    #[serde(default)]
    pub proposals_refused: u64,
    /// Slots this master committed (and applied).
    pub slots_committed: u64,
}

/// A read-only summary of a master for a status endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterStatus {
    /// This master.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its promised ballot.
    pub promised: Ballot,
    /// The leader ballot it follows or owns, if known.
    pub leader: Option<Ballot>,
    /// Its commit index.
    pub commit_index: Slot,
    /// Its highest accepted slot.
    pub last_slot: Slot,
    /// The slot its snapshot covers.
    pub snapshot_slot: Slot,
    /// Active followers (leader only).
    pub active: Vec<NodeId>,
    /// Evicted followers (leader only).
    pub evicted: Vec<NodeId>,
    /// Its counters.
    pub counters: MasterCounters,
}

/// The role with its role-specific state.
#[derive(Debug)]
pub(crate) enum RoleState {
    Follower,
    PreCandidate(PreVoteRound),
    Candidate(Campaign),
    /// Boxed: a leader's state is far larger than the other roles'.
    Leader(Box<Leadership>),
}

/// Output accumulated since the last [`Master::ready`].
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub(crate) durable: DurableWrite,
    pub(crate) close_links: Vec<NodeId>,
    pub(crate) messages: Vec<Envelope>,
    pub(crate) replies: Vec<Envelope>,
    /// What the finished inputs left waiting for `durable`, one group per input.
    pub(crate) groups: Vec<WriteGroup>,
    /// What the input being handled leaves waiting for `durable` (closed by `finish_input`).
    pub(crate) open_group: WriteGroup,
}

/// A master of the static configuration (`protocol.md` §1).
///
/// Driving contract (see `ready.rs` for the details of each field):
/// - build it with [`Master::new`] from what storage holds ([`DurableState::default`] the first
///   time);
/// - call [`Master::tick`] once per tick (or [`Master::elapse`] with the ticks that fell due
///   since the previous call), [`Master::step`] for each message received (a `Propose` from a
///   proxy too, or [`Master::propose`]); a host that finds at least
///   [`Config::pause_threshold_ticks`] ticks overdue was paused and must call
///   [`Master::resume`] (`elapse` does) **before** stepping any queued message (§7.2);
/// - after inputs, while [`Master::has_ready`]: take [`Master::ready`], start its durable
///   write, send its messages, and call [`Master::advance`] once the write is durable (which
///   releases what waited for it into the next `Ready`);
/// - on a storage error stop the node: never step a master whose writes were lost.
#[derive(Debug)]
pub struct Master {
    pub(crate) id: NodeId,
    pub(crate) config: Config,
    pub(crate) promised: Ballot,
    pub(crate) log: Log,
    pub(crate) commit_index: Slot,
    /// The state machine after applying slots `1..=commit_index`.
    pub(crate) store: KvStore,
    /// The leader ballot this master follows (or owns as Leader).
    pub(crate) leader: Option<Ballot>,
    /// The highest round seen in any ballot, for the next election's ballot.
    pub(crate) round_seen_max: u64,
    pub(crate) role: RoleState,
    pub(crate) election_elapsed_ticks: u64,
    /// Heard from a leader (`Heartbeat`, `Accept`, `Commit`, `CatchUp`, §5.5) since its own
    /// election timer last fired: while true it refuses pre-votes (§6.2).
    pub(crate) heard_from_leader: bool,
    /// Ticks before another `Rejoin` may be sent (0: may send now). Bounds them to one per
    /// election timeout while still retrying when a `Rejoin` or its `CatchUp` is lost.
    pub(crate) rejoin_wait_ticks: u64,
    pub(crate) counters: MasterCounters,
    /// Each subscribed proxy's next revision to send (§17.1): volatile, one number per proxy.
    pub(crate) subscriptions: std::collections::BTreeMap<ProxyId, crate::kv_types::Revision>,
    pub(crate) output: Output,
    pub(crate) trace: TraceBuffer,
    inputs_handled: u64,
}

impl Master {
    /// A master starting (or restarting, §8) from its durable state: Follower, no known leader,
    /// `commit_index` at the snapshot's slot.
    pub fn new(id: NodeId, config: Config, durable: DurableState) -> Result<Master, ConfigError> {
        config.validate()?;
        if id >= config.masters {
            return Err(ConfigError::NodeOutOfRange {
                node: id,
                masters: config.masters,
            });
        }
        let round_seen_max = durable
            .log
            .iter()
            .map(|entry| entry.ballot.round)
            .chain([durable.promised.round])
            .max()
            .unwrap_or(0);
        let commit_index = durable.snapshot.slot;
        let store = durable.snapshot.store.clone();
        Ok(Master {
            id,
            config,
            promised: durable.promised,
            log: Log::restore(durable.snapshot, durable.log),
            commit_index,
            store,
            leader: None,
            round_seen_max,
            role: RoleState::Follower,
            election_elapsed_ticks: 0,
            heard_from_leader: false,
            rejoin_wait_ticks: 0,
            counters: MasterCounters::default(),
            subscriptions: std::collections::BTreeMap::new(),
            output: Output::default(),
            trace: TraceBuffer::default(),
            inputs_handled: 0,
        })
    }

    /// Turns trace events on or off. Turned on before the first input, it records a `Restart`
    /// event with the starting state.
    pub fn set_tracing(&mut self, enabled: bool) {
        self.trace.enabled = enabled;
        if enabled && self.inputs_handled == 0 {
            self.trace.record(|| TraceKind::Restart);
            self.finish_input();
        }
    }

    /// One tick of logical time: fires the timers that are due (§5.1, §5.4, §6.1).
    pub fn tick(&mut self) {
        self.rejoin_wait_ticks = self.rejoin_wait_ticks.saturating_sub(1);
        if let RoleState::Leader(leadership) = &mut self.role {
            leadership.heartbeat_elapsed_ticks += 1;
            leadership.check_quorum_elapsed_ticks += 1;
            let heartbeat_due =
                leadership.heartbeat_elapsed_ticks >= self.config.heartbeat_interval_ticks;
            if heartbeat_due {
                leadership.heartbeat_elapsed_ticks = 0;
                self.on_heartbeat_timeout();
            }
            let check_due = match &mut self.role {
                RoleState::Leader(leadership) => {
                    leadership.check_quorum_elapsed_ticks >= self.config.election_timeout_ticks
                }
                _ => false,
            };
            if check_due {
                self.on_check_quorum_timeout();
            }
        } else {
            self.election_elapsed_ticks += 1;
            if self.election_elapsed_ticks >= self.config.election_timeout_ticks_for(self.id) {
                self.on_election_timeout();
            }
        }
        self.finish_input();
    }

    /// The host's clock moved `due_ticks` ticks since its previous `tick` or `elapse` (1 when
    /// the host keeps up). Fewer than [`Config::pause_threshold_ticks`] fire as ordinary ticks,
    /// one after the other; from the threshold on the master was paused and it
    /// [`Master::resume`]s (§7.2). Call it before stepping any message that arrived meanwhile.
    pub fn elapse(&mut self, due_ticks: u64) {
        if due_ticks >= self.config.pause_threshold_ticks() {
            self.resume(due_ticks);
            return;
        }
        for _ in 0..due_ticks {
            self.tick();
        }
    }

    /// §7.2: the master was paused for `overdue_ticks` ticks (`Pause`, then `Resume`, two
    /// inputs, as the model's actions). A Leader heard nobody during the pause, so its
    /// check-quorum runs first, with an empty window: it steps down unless it is a quorum by
    /// itself (then its overdue heartbeat fires). Any other master's election timer (and the
    /// wait before another `Rejoin`) advances by the overdue ticks, firing at most once. Every
    /// timer thus fires at most once, before any message that waited in the links.
    pub fn resume(&mut self, overdue_ticks: u64) {
        self.trace.record(|| TraceKind::Pause);
        self.finish_input();
        self.trace.record(|| TraceKind::Resume { overdue_ticks });
        let leading = match &mut self.role {
            RoleState::Leader(leadership) => {
                leadership.heard_in_window.clear();
                true
            }
            _ => false,
        };
        self.finish_input();
        if leading {
            self.on_check_quorum_timeout();
            self.finish_input();
            if let RoleState::Leader(leadership) = &mut self.role {
                leadership.heartbeat_elapsed_ticks = 0;
                self.on_heartbeat_timeout();
                self.finish_input();
            }
            return;
        }
        let election_timeout_ticks = self.config.election_timeout_ticks_for(self.id);
        for _ in 0..overdue_ticks.min(election_timeout_ticks) {
            self.tick();
        }
    }

    /// Handles one message (`protocol.md` §11: one `handle_*` per message).
    pub fn step(&mut self, from: Peer, message: Message) -> Result<(), StepError> {
        let result = self.dispatch(from, message);
        self.finish_input();
        result
    }

    /// A `Propose` from `proxy` (the same as stepping `Message::Propose` from it).
    pub fn propose(&mut self, proxy: ProxyId, request_id: RequestId, operation: Operation) {
        self.propose_from_step(proxy, request_id, operation);
        self.finish_input();
    }

    fn dispatch(&mut self, from: Peer, message: Message) -> Result<(), StepError> {
        let node = match from {
            Peer::Proxy(proxy) => {
                return match message {
                    Message::Propose {
                        request_id,
                        operation,
                    } => {
                        self.propose_from_step(proxy, request_id, operation);
                        Ok(())
                    }
                    Message::Subscribe { from_revision } => {
                        self.record_receive(from, &message_of_subscribe(from_revision));
                        self.handle_subscribe(proxy, from_revision);
                        Ok(())
                    }
                    Message::Unsubscribe => {
                        self.record_receive(from, &Message::Unsubscribe);
                        self.handle_unsubscribe(proxy);
                        Ok(())
                    }
                    Message::KvPropose {
                        request_id,
                        operation,
                    } => {
                        self.record_receive(
                            from,
                            &Message::KvPropose {
                                request_id,
                                operation: operation.clone(),
                            },
                        );
                        self.handle_kv_propose(proxy, request_id, operation);
                        Ok(())
                    }
                    other => Err(StepError::NotForMaster {
                        message: other.name(),
                        from,
                    }),
                };
            }
            Peer::Master(node) => node,
        };
        if node >= self.config.masters || node == self.id {
            return Err(StepError::UnknownMaster { from: node });
        }
        self.record_receive(from, &message);
        // Pre-vote ballots are hypothetical (§6.1): only real ballots raise the next round.
        let seen = match &message {
            Message::PreVote { .. } => None,
            Message::PreVoteReply { leader, .. } => *leader,
            other => other.ballot(),
        };
        if let Some(ballot) = seen {
            self.round_seen_max = self.round_seen_max.max(ballot.round);
        }
        self.dispatch_master_message(node, message)
    }

    fn propose_from_step(&mut self, proxy: ProxyId, request_id: RequestId, operation: Operation) {
        self.record_receive(
            Peer::Proxy(proxy),
            &Message::Propose {
                request_id,
                operation: operation.clone(),
            },
        );
        self.handle_propose(proxy, request_id, operation);
    }

    fn dispatch_master_message(&mut self, from: NodeId, message: Message) -> Result<(), StepError> {
        match message {
            Message::PreVote { ballot } => self.handle_pre_vote(from, ballot),
            Message::PreVoteReply {
                ballot,
                granted,
                leader,
            } => self.handle_pre_vote_reply(from, ballot, granted, leader),
            Message::Prepare {
                ballot,
                commit_index,
            } => self.handle_prepare(from, ballot, commit_index),
            Message::Promise {
                ballot,
                commit_index: _,
                entries,
                snapshot,
            } => self.handle_promise(from, ballot, entries, snapshot),
            Message::Accept {
                ballot,
                slot,
                command,
                commit_index,
            } => self.handle_accept(from, ballot, slot, command, commit_index),
            Message::Accepted { ballot, slot } => self.handle_accepted(from, ballot, slot),
            Message::Nack { ballot, promised } => self.handle_nack(from, ballot, promised),
            Message::Commit {
                ballot,
                commit_index,
            } => self.handle_commit(from, ballot, commit_index),
            Message::Heartbeat {
                ballot,
                commit_index,
                heartbeat_sequence,
            } => self.handle_heartbeat(from, ballot, commit_index, heartbeat_sequence),
            Message::HeartbeatAck {
                ballot,
                commit_index,
                heartbeat_sequence,
            } => self.handle_heartbeat_ack(from, ballot, commit_index, heartbeat_sequence),
            Message::Rejoin {
                ballot,
                commit_index,
            } => self.handle_rejoin(from, ballot, commit_index),
            Message::CatchUp {
                ballot,
                commit_index,
                snapshot,
                entries,
            } => self.handle_catch_up(from, ballot, commit_index, snapshot, entries),
            Message::CatchUpAck {
                ballot,
                commit_index,
            } => self.handle_catch_up_ack(from, ballot, commit_index),
            other => {
                return Err(StepError::NotForMaster {
                    message: other.name(),
                    from: Peer::Master(from),
                })
            }
        }
        Ok(())
    }

    /// True if [`Master::ready`] has something to hand out.
    pub fn has_ready(&self) -> bool {
        !self.output.durable.is_empty()
            || !self.output.close_links.is_empty()
            || !self.output.messages.is_empty()
            || !self.output.replies.is_empty()
            || !self.output.groups.is_empty()
            || !self.trace.finished.is_empty()
    }

    /// Takes the output accumulated since the last call; handle it in field order (`ready.rs`),
    /// then call [`Master::advance`] once its durable write is durable.
    pub fn ready(&mut self) -> Ready {
        assert!(
            self.output.open_group.is_empty(),
            "no input is being handled between inputs"
        );
        let output = std::mem::take(&mut self.output);
        Ready {
            durable: (!output.durable.is_empty()).then_some(output.durable),
            close_links: output.close_links,
            messages: output.messages,
            replies: output.replies,
            trace: std::mem::take(&mut self.trace.finished),
            groups: output.groups,
        }
    }

    /// Tells the master that `ready`'s durable write is durable (and every earlier one: call it
    /// once per [`Master::ready`], in order) and that its messages were handed to the
    /// transport. Each input of `ready` that left something waiting for the write is released
    /// here as one `Persist` input: the leader counts its own acceptances, which may commit
    /// (a one-master configuration commits here), then the held messages move into the output
    /// and leave with the next `Ready`. A `Ready` that left nothing waiting records nothing.
    pub fn advance(&mut self, ready: Ready) {
        for group in ready.groups {
            self.trace.record(|| TraceKind::Persist);
            self.count_own_acceptances(group.own_acceptances);
            for envelope in group.held {
                self.record_send(envelope.to, &envelope.message);
                self.output.messages.push(envelope);
            }
            self.finish_input();
        }
    }

    // ----- status -----

    /// This master's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Its role.
    pub fn role(&self) -> Role {
        match self.role {
            RoleState::Follower => Role::Follower,
            RoleState::PreCandidate(_) => Role::PreCandidate,
            RoleState::Candidate(_) => Role::Candidate,
            RoleState::Leader(_) => Role::Leader,
        }
    }

    /// The highest ballot it promised or accepted in.
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// The leader ballot it follows or owns, if it knows one.
    pub fn leader(&self) -> Option<Ballot> {
        self.leader
    }

    /// Its commit index.
    pub fn commit_index(&self) -> Slot {
        self.commit_index
    }

    /// Its highest accepted slot (the snapshot's slot if nothing is above it).
    pub fn last_slot(&self) -> Slot {
        self.log.last_slot()
    }

    /// The slot its snapshot covers.
    pub fn snapshot_slot(&self) -> Slot {
        self.log.snapshot().slot
    }

    /// The entry it accepted in `slot`, unless compacted.
    pub fn entry(&self, slot: Slot) -> Option<&Entry> {
        self.log.get(slot)
    }

    /// The state machine after applying slots `1..=commit_index`.
    pub fn store(&self) -> &KvStore {
        &self.store
    }

    /// The leader's active set, in id order (empty unless Leader).
    pub fn active_set(&self) -> Vec<NodeId> {
        match &self.role {
            RoleState::Leader(leadership) => leadership.active.iter().copied().collect(),
            _ => Vec::new(),
        }
    }

    /// The leader's evicted set, in id order (empty unless Leader).
    pub fn evicted_set(&self) -> Vec<NodeId> {
        match &self.role {
            RoleState::Leader(leadership) => leadership.evicted.iter().copied().collect(),
            _ => Vec::new(),
        }
    }

    /// Its counters.
    pub fn counters(&self) -> MasterCounters {
        self.counters
    }

    /// Its configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Everything a status endpoint shows.
    pub fn status(&self) -> MasterStatus {
        MasterStatus {
            id: self.id,
            role: self.role(),
            promised: self.promised,
            leader: self.leader,
            commit_index: self.commit_index,
            last_slot: self.last_slot(),
            snapshot_slot: self.snapshot_slot(),
            active: self.active_set(),
            evicted: self.evicted_set(),
            counters: self.counters,
        }
    }

    // ----- helpers shared by the roles -----

    /// True if the planted bug `mutation` is switched on (never without the cargo feature
    /// `mutations`, `mutation.rs`).
    pub(crate) const fn planted(&self, mutation: Mutation) -> bool {
        self.config.mutations.contains(mutation)
    }

    pub(crate) fn quorum(&self) -> u64 {
        self.config.quorum()
    }

    /// Every other master of the static configuration.
    pub(crate) fn other_masters(&self) -> Vec<NodeId> {
        (0..self.config.masters)
            .filter(|node| *node != self.id)
            .collect()
    }

    /// Invariants that hold after every input, whatever the role (programmer errors if not).
    fn check_invariants(&self) {
        let snapshot_slot = self.log.snapshot().slot;
        assert!(
            snapshot_slot <= self.commit_index,
            "the snapshot is committed"
        );
        assert!(
            self.commit_index <= self.log.last_slot(),
            "only accepted slots commit"
        );
        if let RoleState::Leader(leadership) = &self.role {
            assert_eq!(
                leadership.ballot, self.promised,
                "a leader promised its own ballot"
            );
            assert_eq!(
                self.leader,
                Some(leadership.ballot),
                "a leader follows itself"
            );
            assert!(
                leadership.next_slot > self.commit_index,
                "next slot is free"
            );
            assert!(
                leadership.active.is_disjoint(&leadership.evicted),
                "a follower is active or evicted, not both"
            );
            let members = leadership.active.len() + leadership.evicted.len();
            assert_eq!(
                members as u64 + 1,
                self.config.masters,
                "quorum never shrinks"
            );
            let queued = leadership.queue.len() as u64;
            assert!(
                queued <= self.config.proposals_queued_max,
                "the queue is bounded"
            );
            assert!(
                leadership.reads.len() as u64 <= self.config.reads_waiting_max,
                "the reads waiting are bounded"
            );
            assert!(
                leadership
                    .reads
                    .iter()
                    .all(|read| read.heartbeat_sequence <= leadership.heartbeat_sequence + 1),
                "a read waits for the current round or the next"
            );
        }
    }

    fn finish_input(&mut self) {
        self.check_invariants();
        self.inputs_handled += 1;
        let group = std::mem::take(&mut self.output.open_group);
        if !group.is_empty() {
            self.output.groups.push(group);
        }
        if !self.trace.has_open() {
            return;
        }
        let post = PostState::Master(MasterPostState {
            role: self.role(),
            promised: self.promised,
            leader: self.leader,
            commit_index: self.commit_index,
            last_slot: self.last_slot(),
            active: self.active_set(),
            evicted: self.evicted_set(),
        });
        self.trace.finish(Origin::Master(self.id), post);
    }

    fn record_receive(&mut self, from: Peer, message: &Message) {
        self.trace.record(|| TraceKind::Receive {
            from: endpoint(from),
            message: message.clone(),
        });
    }

    pub(crate) fn record_send_to(&mut self, to: Peer, message: &Message) {
        self.record_send(to, message);
    }

    fn record_send(&mut self, to: Peer, message: &Message) {
        self.trace.record(|| TraceKind::Send {
            to: endpoint(to),
            message: message.clone(),
        });
    }

    /// Sends a message that depends on nothing unpersisted.
    pub(crate) fn send(&mut self, to: NodeId, message: Message) {
        self.record_send(Peer::Master(to), &message);
        self.output.messages.push(Envelope {
            to: Peer::Master(to),
            message,
        });
    }

    /// Sends a message that may only leave once this input's durable write is durable: it is
    /// held until [`Master::advance`], which records its `Send` and releases it.
    pub(crate) fn send_after_persist(&mut self, to: NodeId, message: Message) {
        self.output.open_group.held.push(Envelope {
            to: Peer::Master(to),
            message,
        });
    }

    /// The leader accepted `slot` in its own `ballot` during this input: it counts itself among
    /// the slot's acceptors once the write is durable (`advance`), not before.
    pub(crate) fn accept_own_once_durable(&mut self, ballot: Ballot, slot: Slot) {
        if self.planted(Mutation::OwnAcceptBeforePersist) {
            // Planted bug: count itself now, as if the write were already durable.
            self.count_own_acceptances(vec![(ballot, slot)]);
            return;
        }
        self.output.open_group.own_acceptances.push((ballot, slot));
    }

    /// Answers a proxy's proposal on the message of the API it came through.
    pub(crate) fn reply(&mut self, owner: ProposalOwner, outcome: Result<Applied, MasterError>) {
        let request_id = owner.request_id;
        let message = match (owner.api, outcome) {
            (Api::Register, Ok(Applied::Register(result))) => Message::ProposeReply {
                request_id,
                outcome: Ok(result),
            },
            (Api::Kv, Ok(Applied::Kv(result))) => Message::KvProposeReply {
                request_id,
                outcome: Ok(result),
            },
            (Api::Register, Err(error)) => Message::ProposeReply {
                request_id,
                outcome: Err(error),
            },
            (Api::Kv, Err(error)) => Message::KvProposeReply {
                request_id,
                outcome: Err(error),
            },
            (api, Ok(result)) => panic!("a {api:?} proposal answered {result:?}"),
        };
        self.record_send(Peer::Proxy(owner.proxy), &message);
        self.output.replies.push(Envelope {
            to: Peer::Proxy(owner.proxy),
            message,
        });
    }

    /// `promised = ballot`, durably (§2). Never moves backwards (§8).
    pub(crate) fn persist_promised(&mut self, ballot: Ballot) {
        assert!(ballot >= self.promised, "promised never moves backwards");
        self.round_seen_max = self.round_seen_max.max(ballot.round);
        if ballot == self.promised {
            return; // already durable, or in a write that is not yet
        }
        self.promised = ballot;
        self.output.durable.promised = Some(ballot);
    }

    /// Stores an accepted entry, durably.
    pub(crate) fn persist_entry(&mut self, entry: Entry) {
        if self.log.insert(entry.clone()) {
            self.output.durable.entries.push(entry);
        }
    }

    /// Installs a snapshot received from another master (§6.3, §3.2) if it is ahead of this
    /// master's commit index: the state machine jumps to it, durably.
    pub(crate) fn install_snapshot(&mut self, snapshot: Snapshot) {
        if snapshot.slot <= self.commit_index {
            return;
        }
        let from = self.commit_index;
        self.commit_index = snapshot.slot;
        self.store = snapshot.store.clone();
        self.log.compact(snapshot.clone());
        self.output.durable.snapshot = Some(snapshot);
        let to = self.commit_index;
        self.trace.record(|| TraceKind::CommitAdvance { from, to });
        self.stream_subscriptions();
    }

    /// Commits and applies `slot`, which must be `commit_index + 1` and accepted here; returns
    /// the result of its command (None for `Noop`).
    pub(crate) fn commit_slot(&mut self, slot: Slot) -> Option<Applied> {
        assert_eq!(slot, self.commit_index + 1, "slots commit in order");
        let entry = self
            .log
            .get(slot)
            .expect("a committed slot has an accepted entry");
        let revision_before = self.store.revision();
        let limits = self.config.store_limits();
        let result = match &entry.command {
            Command::Kv {
                operation: KvOperation::Txn(request),
                ..
            } if self.planted(Mutation::TxnPartialApply) => {
                // Planted bug: a refused read found part-way keeps the writes before it.
                Some(Applied::Kv(self.store.apply_txn(request, limits, true)))
            }
            command => self.store.apply_command(command, limits),
        };
        self.commit_index = slot;
        self.counters.slots_committed += 1;
        if self.store.revision() != revision_before {
            self.stream_subscriptions();
        }
        result
    }

    /// Records `CommitAdvance` and compacts the log once it is long enough (§7.4).
    pub(crate) fn after_commit_advance(&mut self, from: Slot) {
        let to = self.commit_index;
        if to == from {
            return;
        }
        self.trace.record(|| TraceKind::CommitAdvance { from, to });
        let committed_above_snapshot = self.commit_index - self.log.snapshot().slot;
        if committed_above_snapshot > self.config.snapshot_threshold_entries {
            let snapshot = Snapshot {
                slot: self.commit_index,
                store: self.store.clone(),
            };
            self.log.compact(snapshot.clone());
            self.output.durable.snapshot = Some(snapshot);
        }
    }

    /// Becomes (or stays) Follower of `leader`. A Leader stepping down answers every proposal
    /// it owns `LeaderChanged` (§9.3) and every read it has not confirmed `NotLeader` (§9.2).
    pub(crate) fn become_follower(&mut self, leader: Option<Ballot>) {
        let previous = std::mem::replace(&mut self.role, RoleState::Follower);
        let was_follower = matches!(previous, RoleState::Follower);
        if let RoleState::Leader(leadership) = previous {
            self.answer_owned_proposals(*leadership, leader);
        }
        if leader != self.leader {
            if leader.is_some() {
                self.counters.leader_changes += 1;
            }
            self.leader = leader;
            self.rejoin_wait_ticks = 0;
        } else if was_follower {
            return;
        }
        self.election_elapsed_ticks = 0;
        self.trace.record(|| TraceKind::BecomeFollower { leader });
    }

    /// Proposals in the log or the queue may still be chosen: `LeaderChanged`. Reads not
    /// confirmed took no effect: `NotLeader`, so the proxy retries them (§9.2).
    fn answer_owned_proposals(&mut self, leadership: Leadership, leader: Option<Ballot>) {
        let queued = leadership.queue.into_iter().map(|(owner, _)| owner);
        let owners: Vec<ProposalOwner> = leadership.owners.into_values().chain(queued).collect();
        for owner in owners {
            self.reply(owner, Err(MasterError::LeaderChanged));
        }
        let leader_hint = leader
            .map(|ballot| ballot.node)
            .filter(|node| *node != self.id);
        for read in leadership.reads {
            self.reply(read.owner, Err(MasterError::NotLeader { leader_hint }));
        }
    }

    /// Any message from the leader of `ballot` (`ballot >= promised`): follow it and reset the
    /// election timer.
    pub(crate) fn follow(&mut self, ballot: Ballot) {
        debug_assert!(ballot >= self.promised);
        let following = matches!(self.role, RoleState::Follower) && self.leader == Some(ballot);
        if !following {
            self.become_follower(Some(ballot));
        }
        self.election_elapsed_ticks = 0;
        self.heard_from_leader = true;
    }

    /// `Nack { ballot, promised }` (§3.5, §4.6): a master promised a newer ballot than the one
    /// this master is using, which then stops using it.
    pub(crate) fn handle_nack(&mut self, _from: NodeId, ballot: Ballot, promised: Ballot) {
        self.round_seen_max = self.round_seen_max.max(promised.round);
        if promised <= ballot {
            return;
        }
        let own_ballot = match &self.role {
            RoleState::Follower => return,
            RoleState::PreCandidate(round) => round.ballot,
            RoleState::Candidate(campaign) => campaign.ballot,
            RoleState::Leader(leadership) => leadership.ballot,
        };
        if own_ballot == ballot {
            self.become_follower(None);
        }
    }
}

fn message_of_subscribe(from_revision: crate::kv_types::Revision) -> Message {
    Message::Subscribe { from_revision }
}

fn endpoint(peer: Peer) -> Endpoint {
    match peer {
        Peer::Master(node) => Endpoint::Master {
            node,
            cluster: None,
        },
        Peer::Proxy(proxy) => Endpoint::Proxy(proxy),
    }
}
