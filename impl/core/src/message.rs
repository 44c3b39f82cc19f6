//! Every message of `docs/protocol.md` §10 and §17.7 in one enum, and its canonical one-line printer.
//!
//! The printer is the one used by the golden tests and by humans reading traces, so it is stable:
//! `Name{field=value ...}` with ballots as `round.node`, byte strings lossily as UTF-8 and entries
//! as `slot@ballot:command`. Changing it changes every golden file, on purpose.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::kv::Snapshot;
use crate::kv_print::List;
use crate::kv_types::{
    Event, KvOperation, KvProposeOutcome, KvReplyOutcome, KvResult, Revision, RevisionEvents,
    WatchEnd, WatchId, WatchRequest,
};
use crate::types::{
    Ballot, Command, Entry, HeartbeatSequence, Operation, OperationResult, Peer, ProposeOutcome,
    ReplyOutcome, RequestId, Slot,
};

/// One message of `protocol.md` §10. Field names are the protocol's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// PreCandidate → masters: would you vote for `ballot`? (§6.2)
    PreVote {
        /// The ballot the PreCandidate would use.
        ballot: Ballot,
    },
    /// master → PreCandidate (§6.2).
    PreVoteReply {
        /// The ballot asked about.
        ballot: Ballot,
        /// Whether the pre-vote is granted.
        granted: bool,
        /// On a refusal, the leader ballot the refusing master follows.
        leader: Option<Ballot>,
    },
    /// Candidate → masters: phase 1 for every slot above `commit_index` (§3).
    Prepare {
        /// The candidate's ballot.
        ballot: Ballot,
        /// The candidate's commit index.
        commit_index: Slot,
    },
    /// master → Candidate: promised `ballot`; here is what I accepted (§3.2).
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// The promiser's commit index.
        commit_index: Slot,
        /// Accepted entries in slots above the Prepare's `commit_index`.
        entries: Vec<Entry>,
        /// The promiser's snapshot if it compacted past the Prepare's `commit_index`.
        snapshot: Option<Snapshot>,
    },
    /// Leader → active followers: phase 2 for one slot (§4.1).
    Accept {
        /// The leader's ballot.
        ballot: Ballot,
        /// The slot.
        slot: Slot,
        /// The command proposed in the slot.
        command: Command,
        /// The leader's commit index.
        commit_index: Slot,
    },
    /// follower → Leader: accepted `slot` in `ballot` (§4.2).
    Accepted {
        /// The ballot accepted in.
        ballot: Ballot,
        /// The slot accepted.
        slot: Slot,
    },
    /// master → sender of an older ballot (§3.2, §4.2, §5.2).
    Nack {
        /// The refused ballot.
        ballot: Ballot,
        /// What the refusing master promised.
        promised: Ballot,
    },
    /// Leader → active followers: the commit index advanced (§4.4).
    Commit {
        /// The leader's ballot.
        ballot: Ballot,
        /// The leader's commit index.
        commit_index: Slot,
    },
    /// Leader → active followers (§5.1), and at once when reads wait for a round (§9.2).
    Heartbeat {
        /// The leader's ballot.
        ballot: Ballot,
        /// The leader's commit index.
        commit_index: Slot,
        /// The leader's current read round (§9.2).
        heartbeat_sequence: HeartbeatSequence,
    },
    /// follower → Leader (§5.2).
    HeartbeatAck {
        /// The leader's ballot being acknowledged.
        ballot: Ballot,
        /// The follower's commit index.
        commit_index: Slot,
        /// The `Heartbeat`'s read round, echoed.
        heartbeat_sequence: HeartbeatSequence,
    },
    /// follower → Leader: please catch me up and readmit me (§6.3).
    Rejoin {
        /// The leader ballot the follower wants to follow.
        ballot: Ballot,
        /// The follower's commit index.
        commit_index: Slot,
    },
    /// Leader → rejoining follower (§6.3).
    CatchUp {
        /// The leader's ballot.
        ballot: Ballot,
        /// The leader's commit index.
        commit_index: Slot,
        /// The leader's snapshot, when the follower is behind the leader's compaction point.
        snapshot: Option<Snapshot>,
        /// Committed entries above the follower's commit index (or the snapshot), then the
        /// leader's accepted, not yet committed entries.
        entries: Vec<Entry>,
    },
    /// follower → Leader: caught up to `commit_index` (§6.4).
    CatchUpAck {
        /// The leader's ballot.
        ballot: Ballot,
        /// The follower's commit index after the catch-up.
        commit_index: Slot,
    },
    /// proxy → master (§9.3).
    Propose {
        /// The proxy's id for this proposal.
        request_id: RequestId,
        /// The operation to order.
        operation: Operation,
    },
    /// master → proxy (§9.3).
    ProposeReply {
        /// The proxy's id for the proposal.
        request_id: RequestId,
        /// The result once applied, or why not.
        outcome: ProposeOutcome,
    },
    /// client → proxy (§9.4).
    Request {
        /// The client's id for the request.
        request_id: RequestId,
        /// The cluster the client names.
        cluster: String,
        /// The operation.
        operation: Operation,
    },
    /// proxy → client: exactly one per request (§9.4).
    Reply {
        /// The client's id for the request.
        request_id: RequestId,
        /// The result or the error.
        outcome: ReplyOutcome,
    },
    /// proxy → master: a revisioned operation (§17.7, as `Propose`).
    KvPropose {
        /// The proxy's id for this proposal.
        request_id: RequestId,
        /// The operation to order (a `Range` is read by ReadIndex).
        operation: KvOperation,
    },
    /// master → proxy (§17.7, as `ProposeReply`).
    KvProposeReply {
        /// The proxy's id for the proposal.
        request_id: RequestId,
        /// The result once applied (or read), or why not.
        outcome: KvProposeOutcome,
    },
    /// client → proxy: a revisioned request (§17.7).
    KvRequest {
        /// The client's id for the request.
        request_id: RequestId,
        /// The cluster the client names.
        cluster: String,
        /// The operation.
        operation: KvOperation,
    },
    /// proxy → client: exactly one per `KvRequest` (§17.7).
    KvReply {
        /// The client's id for the request.
        request_id: RequestId,
        /// The result or the error.
        outcome: KvReplyOutcome,
    },
    /// client → proxy: open a watch (§17.2).
    WatchCreate {
        /// The client's id for the watch.
        watch_id: WatchId,
        /// The cluster the client names.
        cluster: String,
        /// What it watches.
        watch: WatchRequest,
    },
    /// client → proxy: end the watch `Cancelled` (§17.4).
    WatchCancel {
        /// The watch.
        watch_id: WatchId,
    },
    /// client → proxy: ask for a `WatchProgress` (§17.3).
    WatchProgressRequest {
        /// The watch.
        watch_id: WatchId,
    },
    /// client → proxy: the client's connection closed, after everything it sent (§17.4).
    ClientClosed,
    /// proxy → client: the watch is held (§17.2).
    WatchCreated {
        /// The watch.
        watch_id: WatchId,
    },
    /// proxy → client: one revision's events for the watch (§17.3).
    WatchEvents {
        /// The watch.
        watch_id: WatchId,
        /// The revision.
        revision: Revision,
        /// Its events in the watch's view.
        events: Vec<Event>,
    },
    /// proxy → client: every event of the watch's range up to `revision` was delivered (§17.3).
    WatchProgress {
        /// The watch.
        watch_id: WatchId,
        /// The revision.
        revision: Revision,
    },
    /// proxy → client: the watch's one terminal outcome (§17.4).
    WatchEnded {
        /// The watch.
        watch_id: WatchId,
        /// How it ended.
        outcome: WatchEnd,
    },
    /// proxy → master: stream every committed revision from `from_revision` on (§17.1).
    Subscribe {
        /// The first revision wanted (0: the master's next).
        from_revision: Revision,
    },
    /// proxy → master: end the subscription (§17.1).
    Unsubscribe,
    /// master → proxy: revisions not sent before, oldest first (§17.1).
    Events {
        /// The master's applied revision: every revision up to it has been sent.
        revision: Revision,
        /// Each revision with its events.
        revisions: Vec<RevisionEvents>,
    },
    /// master → proxy: the subscription's `from_revision` is below the compaction point; the
    /// master keeps nothing (§17.1).
    SubscriptionCompacted {
        /// The master's compaction point.
        compact_revision: Revision,
    },
}

impl Message {
    /// The protocol name of the message (`protocol.md` §10), e.g. `"Prepare"`.
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
            Message::KvPropose { .. } => "KvPropose",
            Message::KvProposeReply { .. } => "KvProposeReply",
            Message::KvRequest { .. } => "KvRequest",
            Message::KvReply { .. } => "KvReply",
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
        }
    }

    /// The ballot the message carries, if it is a master-to-master message.
    pub fn ballot(&self) -> Option<Ballot> {
        match self {
            Message::PreVote { ballot }
            | Message::PreVoteReply { ballot, .. }
            | Message::Prepare { ballot, .. }
            | Message::Promise { ballot, .. }
            | Message::Accept { ballot, .. }
            | Message::Accepted { ballot, .. }
            | Message::Nack { ballot, .. }
            | Message::Commit { ballot, .. }
            | Message::Heartbeat { ballot, .. }
            | Message::HeartbeatAck { ballot, .. }
            | Message::Rejoin { ballot, .. }
            | Message::CatchUp { ballot, .. }
            | Message::CatchUpAck { ballot, .. } => Some(*ballot),
            Message::Propose { .. }
            | Message::ProposeReply { .. }
            | Message::Request { .. }
            | Message::Reply { .. }
            | Message::KvPropose { .. }
            | Message::KvProposeReply { .. }
            | Message::KvRequest { .. }
            | Message::KvReply { .. } => None,
            _ => None,
        }
    }
}

/// A message addressed by the core: the host sends `message` to `to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The destination.
    pub to: Peer,
    /// What to send.
    pub message: Message,
}

impl fmt::Display for Envelope {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "->{} {}", self.to, self.message)
    }
}

/// Bytes as lossy UTF-8, so golden files stay readable.
pub(crate) struct Bytes<'a>(pub &'a [u8]);

impl fmt::Display for Bytes<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", String::from_utf8_lossy(self.0))
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::Get { key } => write!(formatter, "get({})", Bytes(key)),
            Operation::Put { key, value } => {
                write!(formatter, "put({},{})", Bytes(key), Bytes(value))
            }
            Operation::Cas {
                key,
                expected_version,
                value,
            } => write!(
                formatter,
                "cas({},{},{})",
                Bytes(key),
                expected_version,
                Bytes(value)
            ),
            Operation::Delete { key } => write!(formatter, "delete({})", Bytes(key)),
        }
    }
}

impl fmt::Display for OperationResult {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OperationResult::Value {
                value: Some(value),
                version,
            } => write!(formatter, "Value({}@{version})", Bytes(value)),
            OperationResult::Value {
                value: None,
                version,
            } => write!(formatter, "Value(<none>@{version})"),
            OperationResult::Written { version } => write!(formatter, "Written({version})"),
            OperationResult::VersionMismatch { current_version } => {
                write!(formatter, "VersionMismatch({current_version})")
            }
            OperationResult::Deleted { version } => write!(formatter, "Deleted({version})"),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Operation {
                proxy,
                request_id,
                operation,
            } => write!(formatter, "p{proxy}#{request_id}:{operation}"),
            Command::Noop => write!(formatter, "noop"),
            Command::Kv {
                proxy,
                request_id,
                operation,
            } => write!(formatter, "p{proxy}#{request_id}:{operation}"),
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}@{}:{}", self.slot, self.ballot, self.command)
    }
}

/// Prints `[e1 e2 ...]`.
pub(crate) struct Entries<'a>(pub &'a [Entry]);

impl fmt::Display for Entries<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "[")?;
        for (index, entry) in self.0.iter().enumerate() {
            if index > 0 {
                write!(formatter, " ")?;
            }
            write!(formatter, "{entry}")?;
        }
        write!(formatter, "]")
    }
}

struct OptionalBallot(Option<Ballot>);

impl fmt::Display for OptionalBallot {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ballot) => write!(formatter, "{ballot}"),
            None => write!(formatter, "none"),
        }
    }
}

struct OptionalSnapshot<'a>(&'a Option<Snapshot>);

impl fmt::Display for OptionalSnapshot<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(snapshot) => write!(formatter, "{}{}", snapshot.slot, snapshot.store),
            None => write!(formatter, "none"),
        }
    }
}

/// Prints `Ok(result)` or `Err(error)` with the error's variant name.
pub(crate) struct Outcome<'a, E>(pub &'a Result<OperationResult, E>);

impl<E: fmt::Debug> fmt::Display for Outcome<'_, E> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(result) => write!(formatter, "Ok({result})"),
            Err(error) => write!(formatter, "Err({error:?})"),
        }
    }
}

impl fmt::Display for Message {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        match self {
            Message::PreVote { ballot } => write!(formatter, "{name}{{ballot={ballot}}}"),
            Message::PreVoteReply {
                ballot,
                granted,
                leader,
            } => write!(
                formatter,
                "{name}{{ballot={ballot} granted={granted} leader={}}}",
                OptionalBallot(*leader)
            ),
            Message::Prepare {
                ballot,
                commit_index,
            }
            | Message::Commit {
                ballot,
                commit_index,
            }
            | Message::Rejoin {
                ballot,
                commit_index,
            }
            | Message::CatchUpAck {
                ballot,
                commit_index,
            } => write!(formatter, "{name}{{ballot={ballot} commit={commit_index}}}"),
            Message::Heartbeat {
                ballot,
                commit_index,
                heartbeat_sequence,
            }
            | Message::HeartbeatAck {
                ballot,
                commit_index,
                heartbeat_sequence,
            } => write!(
                formatter,
                "{name}{{ballot={ballot} commit={commit_index} sequence={heartbeat_sequence}}}"
            ),
            Message::Promise { .. } | Message::CatchUp { .. } | Message::Accept { .. } => {
                self.fmt_log_message(formatter)
            }
            Message::Accepted { ballot, slot } => {
                write!(formatter, "{name}{{ballot={ballot} slot={slot}}}")
            }
            Message::Nack { ballot, promised } => {
                write!(formatter, "{name}{{ballot={ballot} promised={promised}}}")
            }
            Message::Propose { .. }
            | Message::ProposeReply { .. }
            | Message::Request { .. }
            | Message::Reply { .. } => self.fmt_client_message(formatter),
            Message::KvPropose { .. }
            | Message::KvProposeReply { .. }
            | Message::KvRequest { .. }
            | Message::KvReply { .. } => self.fmt_kv_message(formatter),
            _ => self.fmt_watch_message(formatter),
        }
    }
}

impl Message {
    /// The printer for the messages that carry log entries or a command.
    fn fmt_log_message(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        match self {
            Message::Promise {
                ballot,
                commit_index,
                entries,
                snapshot,
            }
            | Message::CatchUp {
                ballot,
                commit_index,
                snapshot,
                entries,
            } => write!(
                formatter,
                "{name}{{ballot={ballot} commit={commit_index} snapshot={} entries={}}}",
                OptionalSnapshot(snapshot),
                Entries(entries)
            ),
            Message::Accept {
                ballot,
                slot,
                command,
                commit_index,
            } => write!(
                formatter,
                "{name}{{ballot={ballot} slot={slot} command={command} commit={commit_index}}}"
            ),
            _ => unreachable!("only messages with entries or a command"),
        }
    }

    /// The printer for the messages that carry a request rather than a ballot.
    fn fmt_client_message(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        match self {
            Message::Propose {
                request_id,
                operation,
            } => write!(formatter, "{name}{{request={request_id} {operation}}}"),
            Message::ProposeReply {
                request_id,
                outcome,
            } => write!(
                formatter,
                "{name}{{request={request_id} {}}}",
                Outcome(outcome)
            ),
            Message::Request {
                request_id,
                cluster,
                operation,
            } => write!(
                formatter,
                "{name}{{request={request_id} cluster={cluster} {operation}}}"
            ),
            Message::Reply {
                request_id,
                outcome,
            } => write!(
                formatter,
                "{name}{{request={request_id} {}}}",
                Outcome(outcome)
            ),
            _ => unreachable!("only client messages are printed here"),
        }
    }
}

/// Prints `Ok(result)` or `Err(error)` of a revisioned answer.
struct KvOutcome<'a, E>(&'a Result<KvResult, E>);

impl<E: fmt::Debug> fmt::Display for KvOutcome<'_, E> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(result) => write!(formatter, "Ok({result})"),
            Err(error) => write!(formatter, "Err({error:?})"),
        }
    }
}

impl Message {
    /// The printer for the revisioned API's request messages (§17.7).
    fn fmt_kv_message(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        match self {
            Message::KvPropose {
                request_id,
                operation,
            } => write!(formatter, "{name}{{request={request_id} {operation}}}"),
            Message::KvProposeReply {
                request_id,
                outcome,
            } => write!(
                formatter,
                "{name}{{request={request_id} {}}}",
                KvOutcome(outcome)
            ),
            Message::KvRequest {
                request_id,
                cluster,
                operation,
            } => write!(
                formatter,
                "{name}{{request={request_id} cluster={cluster} {operation}}}"
            ),
            Message::KvReply {
                request_id,
                outcome,
            } => write!(
                formatter,
                "{name}{{request={request_id} {}}}",
                KvOutcome(outcome)
            ),
            _ => unreachable!("only revisioned request messages are printed here"),
        }
    }
}

impl fmt::Display for WatchRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "watch({} from={}",
            self.range, self.start_revision
        )?;
        if self.prev_kv {
            write!(formatter, " prev_kv")?;
        }
        if let Some(kind) = self.filter {
            write!(formatter, " no_{kind:?}")?;
        }
        write!(formatter, ")")
    }
}

impl Message {
    /// The printer for the watch and subscription messages (§17.7).
    fn fmt_watch_message(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        match self {
            Message::WatchCreate {
                watch_id,
                cluster,
                watch,
            } => write!(
                formatter,
                "{name}{{watch={watch_id} cluster={cluster} {watch}}}"
            ),
            Message::WatchCancel { watch_id }
            | Message::WatchProgressRequest { watch_id }
            | Message::WatchCreated { watch_id } => write!(formatter, "{name}{{watch={watch_id}}}"),
            Message::WatchEvents {
                watch_id,
                revision,
                events,
            } => write!(
                formatter,
                "{name}{{watch={watch_id} rev={revision} {}}}",
                List(events)
            ),
            Message::WatchProgress { watch_id, revision } => {
                write!(formatter, "{name}{{watch={watch_id} rev={revision}}}")
            }
            Message::WatchEnded { watch_id, outcome } => {
                write!(formatter, "{name}{{watch={watch_id} {outcome:?}}}")
            }
            Message::Subscribe { from_revision } => {
                write!(formatter, "{name}{{from={from_revision}}}")
            }
            Message::Events {
                revision,
                revisions,
            } => write!(formatter, "{name}{{rev={revision} {}}}", List(revisions)),
            Message::SubscriptionCompacted { compact_revision } => {
                write!(formatter, "{name}{{compacted={compact_revision}}}")
            }
            Message::ClientClosed | Message::Unsubscribe => write!(formatter, "{name}"),
            _ => unreachable!("only watch and subscription messages are printed here"),
        }
    }
}
