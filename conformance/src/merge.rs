//! Causal merge of per-node traces into one order (`docs/trace.md` §Merge): each node's events
//! stay in their order, and every receive comes after the send it receives.
//!
//! A receive is linked to its send by message id when the sink stamps ids (the simulation's
//! sink, and the tokio host's, which carries the id in the frame): exactly, the id must name a
//! send of the same message on the same link. Traces without ids are linked by content: the
//! earliest not yet received send of an equal message on the same link (sender, receiver).
//! Equal messages are interchangeable for the model, so the earliest is always a valid choice.
//! Among the events that may come next, the one with the smallest Lamport clock goes first (the
//! stamped clock, or one computed from the links), so the merged order follows real time as far
//! as causality shows it.
//!
//! Errors: a gap in a node's sequence numbers, clocks that go backwards on a node or from a send
//! to its receive, a receive whose send is in no trace, a message id that names no send.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use vigil_core::{Endpoint, Origin, TraceKind};

use crate::trace::{NodeTrace, TraceLine};

/// One end of a link, as the merge sees it. A run has one proxy; every proxy id a master sees
/// (the host numbers proxy connections) is that proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Party {
    /// A master.
    Master(u64),
    /// The proxy.
    Proxy,
    /// A client connection at the proxy (untraced).
    Client(u64),
}

impl fmt::Display for Party {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Party::Master(node) => write!(formatter, "m{node}"),
            Party::Proxy => write!(formatter, "proxy"),
            Party::Client(client) => write!(formatter, "c{client}"),
        }
    }
}

/// The party of an origin.
pub fn party_of_origin(origin: Origin) -> Party {
    match origin {
        Origin::Master(node) => Party::Master(node),
        Origin::Proxy(_) => Party::Proxy,
    }
}

/// The party of an endpoint named in a message event.
pub fn party_of_endpoint(endpoint: &Endpoint) -> Party {
    match endpoint {
        Endpoint::Master { node, .. } => Party::Master(*node),
        Endpoint::Proxy(_) => Party::Proxy,
        Endpoint::Client(client) => Party::Client(*client),
    }
}

/// One event in merged order.
#[derive(Clone, Debug)]
pub struct MergedEvent {
    /// Index of the node's trace in the input.
    pub trace: usize,
    /// The event.
    pub line: TraceLine,
    /// Its Lamport clock (stamped, or computed by the merge).
    pub lamport: u64,
    /// For a receive from a traced node: the merged index of its send.
    pub send: Option<usize>,
    /// For a send to a traced node: the merged index of its receive, if it was received.
    pub receive: Option<usize>,
}

/// The merged trace.
#[derive(Clone, Debug)]
pub struct Merged {
    /// Events in a causal order.
    pub events: Vec<MergedEvent>,
    /// The node name of each input trace.
    pub nodes: Vec<String>,
}

/// Why traces cannot be merged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeError {
    /// A node's sequence numbers skip or repeat.
    #[error("sequence gap in {node}: event {index} has sequence {found}, expected {expected} (or 0 at a Restart)")]
    SequenceGap {
        /// The node.
        node: String,
        /// Position in the node's file (0-based event index).
        index: usize,
        /// The sequence expected.
        expected: u64,
        /// The sequence found.
        found: u64,
    },
    /// A node's clock does not increase, or a receive's clock is not above its send's.
    #[error("inverted Lamport clocks: {detail}")]
    InvertedClock {
        /// Which events.
        detail: String,
    },
    /// A receive whose send is in no trace.
    #[error("receive without send: {node} event #{sequence} `{event}` (no unreceived send of {wanted} on link {link})")]
    ReceiveWithoutSend {
        /// The receiving node.
        node: String,
        /// The event's sequence.
        sequence: u64,
        /// The event.
        event: String,
        /// The link.
        link: String,
        /// What was looked for: `this message`, or `message id <id>`.
        wanted: String,
    },
    /// A receive's message id names a send of another message.
    #[error("message id {message_id} names a different message: {node} event #{sequence} received `{received}`, the send was `{sent}`")]
    IdMismatch {
        /// The receiving node.
        node: String,
        /// The event's sequence.
        sequence: u64,
        /// The id.
        message_id: String,
        /// The message received.
        received: String,
        /// The message sent under that id.
        sent: String,
    },
    /// Two traces of the same node, or more than one proxy.
    #[error("{0}")]
    Nodes(String),
}

/// A send waiting for its receive.
struct PendingSend {
    merged: usize,
    message: vigil_core::Message,
    lamport: u64,
    message_id: Option<String>,
    received: bool,
}

type Link = (Party, Party);

/// The next event to merge: its clock, its trace, and for a receive the send it matches.
type Candidate = (u64, usize, Option<(Link, usize)>);

/// Merges per-node traces. Checks sequences and clocks on the way.
pub fn merge(traces: &[NodeTrace]) -> Result<Merged, MergeError> {
    check_nodes(traces)?;
    for trace in traces {
        check_sequences(trace)?;
    }
    let mut heads = vec![0usize; traces.len()];
    let mut clocks = vec![0u64; traces.len()];
    let mut pending: HashMap<Link, VecDeque<PendingSend>> = HashMap::new();
    let total: usize = traces.iter().map(|trace| trace.events.len()).sum();
    let mut events: Vec<MergedEvent> = Vec::with_capacity(total);
    while events.len() < total {
        let mut best: Option<Candidate> = None;
        let mut deferred: Option<Candidate> = None;
        let mut deferred_restart: Option<Candidate> = None;
        for (index, trace) in traces.iter().enumerate() {
            let Some(line) = trace.events.get(heads[index]) else {
                continue;
            };
            let Some((clock, matched)) = readiness(line, clocks[index], &pending)? else {
                continue;
            };
            // Messages in flight on a link that this input closes (a restart, an eviction) are
            // received first when the receivers' traces show it (see the function).
            let later = closes_links_with_messages_received_later(traces, &heads, index, &pending)
                || received_after_a_restart(traces, &heads, index);
            let restart = matches!(line.kind, TraceKind::Restart);
            let slot = match (later, restart) {
                (false, _) => &mut best,
                (true, true) => &mut deferred_restart,
                (true, false) => &mut deferred,
            };
            if slot
                .as_ref()
                .is_none_or(|(best_clock, _, _)| clock < *best_clock)
            {
                *slot = Some((clock, index, matched));
            }
        }
        // When preferences conflict (a cycle), a restart goes first: without message ids a later
        // receive of an equal message more likely comes from the new incarnation.
        let best = best.or(deferred_restart).or(deferred);
        let Some((clock, index, matched)) = best else {
            return Err(blocked(traces, &heads));
        };
        let line = traces[index].events[heads[index]].clone();
        if let Some(stamped) = line.lamport {
            if stamped <= clocks[index] && heads[index] > 0 {
                return Err(MergeError::InvertedClock {
                    detail: format!(
                        "{} event #{} has clock {stamped}, not above the node's previous {}",
                        traces[index].header.node, line.sequence, clocks[index]
                    ),
                });
            }
        }
        clocks[index] = clock;
        heads[index] += 1;
        let merged_index = events.len();
        let mut send = None;
        if let Some((link, position)) = matched {
            let queue = pending.get_mut(&link).expect("matched link exists");
            queue[position].received = true;
            send = Some(queue[position].merged);
            while queue.front().is_some_and(|front| front.received) {
                queue.pop_front();
            }
            let send_index = send.expect("set above");
            events[send_index].receive = Some(merged_index);
        }
        if let TraceKind::Send { to, message } = &line.kind {
            let to = party_of_endpoint(to);
            if !matches!(to, Party::Client(_)) {
                let link = (party_of_origin(line.origin), to);
                pending.entry(link).or_default().push_back(PendingSend {
                    merged: merged_index,
                    message: message.clone(),
                    lamport: clock,
                    message_id: line.message_id.clone(),
                    received: false,
                });
            }
        }
        events.push(MergedEvent {
            trace: index,
            line,
            lamport: clock,
            send,
            receive: None,
        });
    }
    Ok(Merged {
        events,
        nodes: traces
            .iter()
            .map(|trace| trace.header.node.clone())
            .collect(),
    })
}

/// Whether `line` may come next; if so its clock and, for a receive, the send it matches.
#[allow(clippy::type_complexity)]
fn readiness(
    line: &TraceLine,
    node_clock: u64,
    pending: &HashMap<Link, VecDeque<PendingSend>>,
) -> Result<Option<(u64, Option<(Link, usize)>)>, MergeError> {
    let local = line.lamport.unwrap_or(node_clock + 1);
    let TraceKind::Receive { from, message } = &line.kind else {
        return Ok(Some((local, None)));
    };
    let from = party_of_endpoint(from);
    if matches!(from, Party::Client(_)) {
        return Ok(Some((local, None)));
    }
    let link = (from, party_of_origin(line.origin));
    let Some(queue) = pending.get(&link) else {
        return Ok(None);
    };
    // The send with the receive's id, or without ids the earliest unreceived equal message.
    let found = queue
        .iter()
        .position(|candidate| links_to(candidate, message, line.message_id.as_deref()));
    let Some(index) = found else {
        return Ok(None);
    };
    if queue[index].message != *message {
        return Err(MergeError::IdMismatch {
            node: node_label(line.origin),
            sequence: line.sequence,
            message_id: line.message_id.clone().unwrap_or_default(),
            received: message.to_string(),
            sent: queue[index].message.to_string(),
        });
    }
    let send_clock = queue[index].lamport;
    if let Some(stamped) = line.lamport {
        if stamped <= send_clock {
            return Err(MergeError::InvertedClock {
                detail: format!(
                    "{} event #{} `{}` has clock {stamped}, not above its send's {send_clock}",
                    node_label(line.origin),
                    line.sequence,
                    line.kind
                ),
            });
        }
        return Ok(Some((stamped, Some((link, index)))));
    }
    Ok(Some((local.max(send_clock + 1), Some((link, index)))))
}

/// Whether `candidate`, a send not yet received, is the send of a receive of `message` with
/// `message_id`: by id when the receive carries one (exactly: the message is checked by the
/// caller), otherwise by content.
fn links_to(
    candidate: &PendingSend,
    message: &vigil_core::Message,
    message_id: Option<&str>,
) -> bool {
    !candidate.received
        && match (message_id, candidate.message_id.as_deref()) {
            (Some(wanted), Some(id)) => wanted == id,
            (Some(_), None) => false,
            (None, _) => candidate.message == *message,
        }
}

/// Whether the input starting at `traces[closing]`'s head closes links (a restart closes all of
/// the master's, an eviction the leader's link to the follower, not the follower's link to the
/// leader) over which a message still in flight is received later in another trace. The model
/// loses what is in flight on a closed link (§5.1, §8); such receives are concurrent with the
/// closing input, so they may go first.
fn closes_links_with_messages_received_later(
    traces: &[NodeTrace],
    heads: &[usize],
    closing: usize,
    pending: &HashMap<Link, VecDeque<PendingSend>>,
) -> bool {
    let events = &traces[closing].events;
    let Some(head) = events.get(heads[closing]) else {
        return false;
    };
    let me = party_of_origin(head.origin);
    let mut closed: Vec<(Party, Option<Party>)> = Vec::new();
    if heads[closing] > 0 && matches!(head.kind, TraceKind::Restart) {
        closed.push((me, None));
    } else if matches!(head.kind, TraceKind::Timeout { .. }) {
        for line in events[heads[closing] + 1..]
            .iter()
            .take_while(|line| !starts_input(&line.kind))
        {
            // §5.1: eviction discards only the leader's queue to the follower; what the
            // follower already sent may still arrive (and counts for no quorum).
            if let TraceKind::Evict { follower } = line.kind {
                closed.push((me, Some(Party::Master(follower))));
            }
        }
    }
    if closed.is_empty() {
        return false;
    }
    traces.iter().enumerate().any(|(index, trace)| {
        index != closing
            && trace.events[heads[index].min(trace.events.len())..]
                .iter()
                .any(|line| {
                    let TraceKind::Receive { from, message } = &line.kind else {
                        return false;
                    };
                    let (sender, receiver) =
                        (party_of_endpoint(from), party_of_origin(line.origin));
                    let on_closed_link = closed.iter().any(|(one, other)| {
                        *one == sender && other.is_none_or(|other| other == receiver)
                    });
                    on_closed_link
                        && pending.get(&(sender, receiver)).is_some_and(|queue| {
                            queue.iter().any(|candidate| {
                                links_to(candidate, message, line.message_id.as_deref())
                            })
                        })
                })
    })
}

/// Whether the input that the head of `traces[sender]` starts sends a message that its receiver
/// handles only after a restart still ahead in the receiver's trace: the model's crash (at the
/// restart) would lose it, and the input is concurrent with the restart, so the restart may go
/// first.
fn received_after_a_restart(traces: &[NodeTrace], heads: &[usize], sender: usize) -> bool {
    let events = &traces[sender].events;
    let Some(head) = events.get(heads[sender]) else {
        return false;
    };
    // The model sends at the input's first event: look at every send of the input it starts.
    if !starts_input(&head.kind) {
        return false;
    }
    events[heads[sender]..]
        .iter()
        .enumerate()
        .take_while(|(offset, line)| *offset == 0 || !starts_input(&line.kind))
        .any(|(_, line)| send_received_after_a_restart(traces, heads, line))
}

/// Whether `line`, a send, is received only after a restart still ahead in the receiver's trace.
fn send_received_after_a_restart(traces: &[NodeTrace], heads: &[usize], line: &TraceLine) -> bool {
    let TraceKind::Send { to, message } = &line.kind else {
        return false;
    };
    let from = party_of_origin(line.origin);
    let to = party_of_endpoint(to);
    let Some(receiver) = traces.iter().position(|trace| {
        trace
            .events
            .first()
            .is_some_and(|first| party_of_origin(first.origin) == to)
    }) else {
        return false;
    };
    let ahead = &traces[receiver].events[heads[receiver].min(traces[receiver].events.len())..];
    // With message ids the receive is known exactly; without, an equal message from the sender.
    let receives_it =
        |received_line: &TraceLine| match (&line.message_id, &received_line.message_id) {
            (Some(sent), Some(received)) => sent == received,
            _ => {
                matches!(&received_line.kind, TraceKind::Receive { from: source, message: received }
            if party_of_endpoint(source) == from && received == message)
            }
        };
    let Some(restart) = ahead
        .iter()
        .position(|line| line.sequence == 0 && matches!(line.kind, TraceKind::Restart))
        .filter(|position| *position > 0 || heads[receiver] > 0)
    else {
        return false;
    };
    !ahead[..restart].iter().any(receives_it) && ahead[restart..].iter().any(receives_it)
}

fn starts_input(kind: &TraceKind) -> bool {
    matches!(
        kind,
        TraceKind::Receive { .. } | TraceKind::Timeout { .. } | TraceKind::Restart
    )
}

fn node_label(origin: Origin) -> String {
    origin.to_string()
}

fn check_nodes(traces: &[NodeTrace]) -> Result<(), MergeError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut proxies = 0;
    for trace in traces {
        if !seen.insert(trace.header.node.clone()) {
            return Err(MergeError::Nodes(format!(
                "two trace files for node {} (the second: {})",
                trace.header.node,
                trace.path.display()
            )));
        }
        if trace.header.node.starts_with('p') {
            proxies += 1;
        }
    }
    if proxies > 1 {
        return Err(MergeError::Nodes(format!(
            "{proxies} proxy traces: a run has one proxy"
        )));
    }
    Ok(())
}

/// Sequence numbers go 0, 1, 2, ... and start again at 0 only with a `Restart`.
fn check_sequences(trace: &NodeTrace) -> Result<(), MergeError> {
    let mut expected = 0u64;
    for (index, line) in trace.events.iter().enumerate() {
        let restart = line.sequence == 0 && matches!(line.kind, TraceKind::Restart);
        if line.sequence != expected && !restart {
            return Err(MergeError::SequenceGap {
                node: trace.header.node.clone(),
                index,
                expected,
                found: line.sequence,
            });
        }
        expected = line.sequence + 1;
    }
    Ok(())
}

/// The error for a merge that cannot go on: the first blocked receive.
fn blocked(traces: &[NodeTrace], heads: &[usize]) -> MergeError {
    for (index, trace) in traces.iter().enumerate() {
        if let Some(line) = trace.events.get(heads[index]) {
            if let TraceKind::Receive { from, .. } = &line.kind {
                let wanted = match &line.message_id {
                    Some(id) => format!("message id {id}"),
                    None => "this message".to_string(),
                };
                return MergeError::ReceiveWithoutSend {
                    wanted,
                    node: trace.header.node.clone(),
                    sequence: line.sequence,
                    event: line.kind.to_string(),
                    link: format!(
                        "{} -> {}",
                        party_of_endpoint(from),
                        party_of_origin(line.origin)
                    ),
                };
            }
        }
    }
    MergeError::Nodes("merge blocked without a pending receive".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Header;
    use vigil_core::{Ballot, MasterPostState, Message, PostState, Role};

    fn post() -> PostState {
        PostState::Master(MasterPostState {
            role: Role::Follower,
            promised: Ballot::ZERO,
            leader: None,
            commit_index: 0,
            last_slot: 0,
            active: vec![],
            evicted: vec![],
        })
    }

    fn line(node: u64, sequence: u64, kind: TraceKind, lamport: Option<u64>) -> TraceLine {
        TraceLine {
            origin: Origin::Master(node),
            sequence,
            input: None,
            lamport,
            message_id: None,
            kind,
            post: post(),
        }
    }

    fn master(node: u64) -> Endpoint {
        Endpoint::Master {
            node,
            cluster: None,
        }
    }

    fn pre_vote() -> Message {
        Message::PreVote {
            ballot: Ballot::new(1, 0),
        }
    }

    fn send(node: u64, sequence: u64, to: u64, lamport: Option<u64>) -> TraceLine {
        line(
            node,
            sequence,
            TraceKind::Send {
                to: master(to),
                message: pre_vote(),
            },
            lamport,
        )
    }

    fn receive(node: u64, sequence: u64, from: u64, lamport: Option<u64>) -> TraceLine {
        line(
            node,
            sequence,
            TraceKind::Receive {
                from: master(from),
                message: pre_vote(),
            },
            lamport,
        )
    }

    fn node(name: &str, events: Vec<TraceLine>) -> NodeTrace {
        NodeTrace {
            path: format!("{name}.ndjson").into(),
            header: Header::new(name, "local", &vigil_core::Config::default()),
            events,
        }
    }

    fn restart(node: u64) -> TraceLine {
        line(node, 0, TraceKind::Restart, None)
    }

    #[test]
    fn a_receive_comes_after_its_send() {
        // m1's file lists the receive first in the input order; the send is in m0's file.
        let traces = vec![
            node("m1", vec![restart(1), receive(1, 1, 0, None)]),
            node("m0", vec![restart(0), send(0, 1, 1, None)]),
        ];
        let merged = merge(&traces).unwrap();
        let position = |trace: usize, sequence: u64| {
            merged
                .events
                .iter()
                .position(|event| event.trace == trace && event.line.sequence == sequence)
                .unwrap()
        };
        assert!(position(1, 1) < position(0, 1));
        let receive = &merged.events[position(0, 1)];
        assert_eq!(receive.send, Some(position(1, 1)));
        assert_eq!(merged.events[position(1, 1)].receive, Some(position(0, 1)));
        assert!(receive.lamport > merged.events[position(1, 1)].lamport);
    }

    #[test]
    fn a_receive_without_a_send_is_an_error() {
        let traces = vec![
            node("m1", vec![restart(1), receive(1, 1, 0, None)]),
            node("m0", vec![restart(0)]),
        ];
        let error = merge(&traces).unwrap_err();
        assert!(
            matches!(error, MergeError::ReceiveWithoutSend { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("m0 -> m1"), "{error}");
    }

    #[test]
    fn a_sequence_gap_is_an_error() {
        let traces = vec![node("m0", vec![restart(0), send(0, 2, 1, None)])];
        let error = merge(&traces).unwrap_err();
        assert_eq!(
            error,
            MergeError::SequenceGap {
                node: "m0".to_string(),
                index: 1,
                expected: 1,
                found: 2
            }
        );
    }

    #[test]
    fn a_restart_starts_the_sequence_again() {
        let traces = vec![
            node("m0", vec![restart(0), send(0, 1, 1, None), restart(0)]),
            node("m1", vec![restart(1)]),
        ];
        assert_eq!(merge(&traces).unwrap().events.len(), 4);
    }

    #[test]
    fn a_receive_clocked_before_its_send_is_an_error() {
        let traces = vec![
            node(
                "m0",
                vec![
                    line(0, 0, TraceKind::Restart, Some(1)),
                    send(0, 1, 1, Some(5)),
                ],
            ),
            node(
                "m1",
                vec![
                    line(1, 0, TraceKind::Restart, Some(1)),
                    receive(1, 1, 0, Some(3)),
                ],
            ),
        ];
        let error = merge(&traces).unwrap_err();
        assert!(matches!(error, MergeError::InvertedClock { .. }), "{error}");
    }

    #[test]
    fn a_clock_going_backwards_on_a_node_is_an_error() {
        let traces = vec![node(
            "m0",
            vec![
                line(0, 0, TraceKind::Restart, Some(4)),
                send(0, 1, 1, Some(2)),
            ],
        )];
        let error = merge(&traces).unwrap_err();
        assert!(matches!(error, MergeError::InvertedClock { .. }), "{error}");
    }

    #[test]
    fn a_crashed_masters_old_message_is_received_before_its_restart() {
        // m0 hears m1's message only after several events of its own; m1 restarts meanwhile.
        let busy = |sequence| {
            line(
                0,
                sequence,
                TraceKind::Timeout {
                    timer: vigil_core::Timer::Heartbeat,
                },
                None,
            )
        };
        let traces = vec![
            node(
                "m0",
                vec![
                    restart(0),
                    busy(1),
                    busy(2),
                    busy(3),
                    receive(0, 4, 1, None),
                ],
            ),
            node("m1", vec![restart(1), send(1, 1, 0, None), restart(1)]),
        ];
        let merged = merge(&traces).unwrap();
        let receive = merged
            .events
            .iter()
            .position(|event| event.trace == 0 && event.line.sequence == 4)
            .unwrap();
        let second_restart = merged
            .events
            .iter()
            .rposition(|event| event.trace == 1)
            .unwrap();
        assert!(
            receive < second_restart,
            "{:?}",
            merged
                .events
                .iter()
                .map(|event| event.line.to_string())
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn two_files_for_one_node_are_an_error() {
        let traces = vec![node("m0", vec![restart(0)]), node("m0", vec![restart(0)])];
        assert!(matches!(merge(&traces).unwrap_err(), MergeError::Nodes(_)));
    }
}
