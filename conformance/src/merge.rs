//! Causal merge of per-node traces into one order (`docs/trace.md` §3): each node's events
//! stay in their order, every receive comes after the send it receives, and the model's network
//! rules hold — what a master's crash loses in the model was, in the merged order, received
//! before it or sent after it. (A leader's eviction loses nothing already sent: what it wrote
//! to the follower before may arrive after it, `docs/protocol.md` §5.1, `docs/trace.md` §8.)
//!
//! The merge is correct by construction: it first builds the whole partial order (each receive
//! linked to its send; each network rule an edge between the two events it concerns, see
//! [`Reason`]) and then places a linear extension of it, the event whose constraints are met
//! with the smallest Lamport clock first. Every constraint is necessary for the model to replay
//! the trace, and together they are sufficient for its network (a delivery is enabled when its
//! message is in flight), so an order exists if and only if the constraints have no cycle, and
//! then the merge finds one without search. A cycle is reported as the chain of waiting events.
//!
//! A receive is linked to its send by message id when the sink stamps ids (the simulation's
//! sink, and the tokio host's, which carries the id in the frame): exactly, the id must name a
//! send of the same message on the same link. Traces without ids are linked by content: the
//! earliest not yet linked send of an equal message on the same link (sender, receiver).
//!
//! Errors: a gap in a node's sequence numbers, clocks that go backwards on a node or from a send
//! to its receive, a receive whose send is in no trace, a message id that names no send or two,
//! a cycle of constraints.

use std::collections::HashMap;
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

/// Why traces cannot be merged. Each message names the offending event first (node, sequence,
/// the event, its file and line), then says what happened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeError {
    /// A node's file has a header and no event: the node traced nothing, not even its start.
    #[error("{file}: the file has only a header: {node} traced no event (a master traces its Restart when it starts, a proxy every request it receives)")]
    HeaderOnly {
        /// The file.
        file: String,
        /// The node its header names.
        node: String,
    },
    /// A node's sequence numbers skip or repeat.
    #[error("{node} event {index} ({file}:{line}): sequence gap: sequence {found}, expected {expected} (or 0 at a Restart)", line = index + 2)]
    SequenceGap {
        /// The node.
        node: String,
        /// The node's file.
        file: String,
        /// Position in the node's file (0-based event index; its line is two more).
        index: usize,
        /// The sequence expected.
        expected: u64,
        /// The sequence found.
        found: u64,
    },
    /// A node's clock does not increase, or a receive's clock is not above its send's.
    #[error("{event}: inverted Lamport clock: {detail}")]
    InvertedClock {
        /// The event whose clock is wrong.
        event: String,
        /// Its clock and the one it must be above.
        detail: String,
    },
    /// A receive whose send is in no trace.
    #[error("{event}: receive without send (no send of {wanted} on link {link} in any trace)")]
    ReceiveWithoutSend {
        /// The receive.
        event: String,
        /// The link.
        link: String,
        /// What was looked for: `this message`, or `message id <id>`.
        wanted: String,
    },
    /// A second receive of one send.
    #[error("{event}: received twice (the send {send} was received by {first})")]
    ReceivedTwice {
        /// The second receive.
        event: String,
        /// The send both receive.
        send: String,
        /// The first receive.
        first: String,
    },
    /// A receive's message id names a send of another message.
    #[error(
        "{event}: received under message id {message_id}, whose send {sent} is a different message"
    )]
    IdMismatch {
        /// The receive.
        event: String,
        /// The id.
        message_id: String,
        /// The send under that id.
        sent: String,
    },
    /// Two sends on one link with the same message id.
    #[error("{second}: message id {message_id} sent twice on one link (first by {first})")]
    DuplicateId {
        /// The id.
        message_id: String,
        /// The first send.
        first: String,
        /// The second send.
        second: String,
    },
    /// The constraints form a cycle: no order satisfies causality and the model's network
    /// rules (e.g. a receive before its send in its node's own trace).
    #[error("no causal order: {detail}")]
    NoOrder {
        /// The chain of events each waiting for the next.
        detail: String,
    },
    /// Two traces of the same node, or more than one proxy.
    #[error("{0}")]
    Nodes(String),
}

/// An event's place in the input: its trace, and its index among that trace's events.
type At = (usize, usize);

type Link = (Party, Party);

/// Why an event must come after another one, besides its predecessor on its own node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    /// A receive comes after its send.
    Send,
    /// A master's restart comes after every receive of a message its previous incarnation sent:
    /// the model's crash (placed at the restart) loses what is in flight from the master.
    SenderRestart,
    /// The input that sends a message received after its receiver restarted comes after that
    /// restart: the model's crash loses what is in flight to the master.
    ReceiverRestart,
}

/// `event` must come before the event that holds this constraint.
#[derive(Clone, Copy, Debug)]
struct Constraint {
    event: At,
    reason: Reason,
}

/// The partial order the merged order must extend: each node's own order (implicit), plus
/// per event the events that must come before it.
struct Order {
    /// For each event, the constraints it waits for.
    waits_for: Vec<Vec<Vec<Constraint>>>,
    /// For each receive of a traced node's message, its send.
    send_of: Vec<Vec<Option<At>>>,
}

/// Merges per-node traces: the order is a linear extension of causality and of the model's
/// network rules ([`Reason`]), built before any event is placed; among the events whose
/// constraints are met, the smallest Lamport clock goes first (then the first trace). Checks
/// sequences and clocks on the way. Deterministic, linear in the events times the nodes.
pub fn merge(traces: &[NodeTrace]) -> Result<Merged, MergeError> {
    check_nodes(traces)?;
    for trace in traces {
        check_sequences(trace)?;
    }
    let send_of = link_receives(traces)?;
    let waits_for = constraints(traces, &send_of);
    let order = Order { waits_for, send_of };
    let events = place(traces, &order)?;
    Ok(Merged {
        events,
        nodes: traces
            .iter()
            .map(|trace| trace.header.node.clone())
            .collect(),
    })
}

/// Places the events one by one: the next is the waiting-free head with the smallest clock.
fn place(traces: &[NodeTrace], order: &Order) -> Result<Vec<MergedEvent>, MergeError> {
    let total: usize = traces.iter().map(|trace| trace.events.len()).sum();
    let mut heads = vec![0usize; traces.len()];
    let mut clocks = vec![0u64; traces.len()];
    let mut placed: Vec<Vec<usize>> = traces
        .iter()
        .map(|trace| vec![usize::MAX; trace.events.len()])
        .collect();
    let mut events: Vec<MergedEvent> = Vec::with_capacity(total);
    while events.len() < total {
        let mut best: Option<(u64, usize)> = None;
        for (index, trace) in traces.iter().enumerate() {
            let head = heads[index];
            if head >= trace.events.len()
                || order.waits_for[index][head]
                    .iter()
                    .any(|constraint| placed[constraint.event.0][constraint.event.1] == usize::MAX)
            {
                continue;
            }
            let send = order.send_of[index][head].map(|(trace, event)| placed[trace][event]);
            let clock = clock_of(
                traces,
                (index, head),
                clocks[index],
                send.map(|at| &events[at]),
            )?;
            if best.is_none_or(|(best_clock, _)| clock < best_clock) {
                best = Some((clock, index));
            }
        }
        let Some((clock, index)) = best else {
            return Err(no_order(traces, order, &heads, &placed));
        };
        let line = traces[index].events[heads[index]].clone();
        if let Some(stamped) = line.lamport {
            if stamped <= clocks[index] && heads[index] > 0 {
                return Err(MergeError::InvertedClock {
                    event: describe(traces, (index, heads[index])),
                    detail: format!(
                        "clock {stamped}, not above the node's previous {}",
                        clocks[index]
                    ),
                });
            }
        }
        let merged_index = events.len();
        let send = order.send_of[index][heads[index]].map(|(trace, event)| placed[trace][event]);
        if let Some(send_index) = send {
            events[send_index].receive = Some(merged_index);
        }
        placed[index][heads[index]] = merged_index;
        clocks[index] = clock;
        heads[index] += 1;
        events.push(MergedEvent {
            trace: index,
            line,
            lamport: clock,
            send,
            receive: None,
        });
    }
    Ok(events)
}

/// The clock of the event `at` (stamped, or one above the node's previous and its send's); an
/// error if a stamped receive is not above its send.
fn clock_of(
    traces: &[NodeTrace],
    at: At,
    node_clock: u64,
    send: Option<&MergedEvent>,
) -> Result<u64, MergeError> {
    let line = &traces[at.0].events[at.1];
    let local = line.lamport.unwrap_or(node_clock + 1);
    let Some(send) = send else {
        return Ok(local);
    };
    match line.lamport {
        Some(stamped) if stamped <= send.lamport => Err(MergeError::InvertedClock {
            event: describe(traces, at),
            detail: format!("clock {stamped}, not above its send's {}", send.lamport),
        }),
        Some(stamped) => Ok(stamped),
        None => Ok(local.max(send.lamport + 1)),
    }
}

/// Links every receive of a traced node's message to its send. With a message id, exactly: the
/// send of that id on the link, which must carry the same message and be received once.
/// Without one, by content: the earliest send of an equal message on the link not linked yet.
fn link_receives(traces: &[NodeTrace]) -> Result<Vec<Vec<Option<At>>>, MergeError> {
    let mut by_id: HashMap<(Link, &str), At> = HashMap::new();
    let mut by_link: HashMap<Link, Vec<At>> = HashMap::new();
    for (trace_index, trace) in traces.iter().enumerate() {
        for (event_index, line) in trace.events.iter().enumerate() {
            let TraceKind::Send { to, .. } = &line.kind else {
                continue;
            };
            let to = party_of_endpoint(to);
            if matches!(to, Party::Client(_)) {
                continue;
            }
            let link = (party_of_origin(line.origin), to);
            let at = (trace_index, event_index);
            if let Some(id) = line.message_id.as_deref() {
                if let Some(first) = by_id.insert((link, id), at) {
                    return Err(MergeError::DuplicateId {
                        message_id: id.to_string(),
                        first: describe(traces, first),
                        second: describe(traces, at),
                    });
                }
            }
            by_link.entry(link).or_default().push(at);
        }
    }
    let mut send_of: Vec<Vec<Option<At>>> = traces
        .iter()
        .map(|trace| vec![None; trace.events.len()])
        .collect();
    // For each send, the receive linked to it.
    let mut linked: Vec<Vec<Option<At>>> = traces
        .iter()
        .map(|trace| vec![None; trace.events.len()])
        .collect();
    // Exact links first, so that a content link never takes a send an id names.
    for exact in [true, false] {
        for (trace_index, trace) in traces.iter().enumerate() {
            for (event_index, line) in trace.events.iter().enumerate() {
                if line.message_id.is_some() != exact {
                    continue;
                }
                let at = (trace_index, event_index);
                let found = find_send(traces, at, &by_id, &by_link, &linked)?;
                if let Some(send) = found {
                    linked[send.0][send.1] = Some(at);
                    send_of[trace_index][event_index] = Some(send);
                }
            }
        }
    }
    Ok(send_of)
}

/// The send of the event `at` if it is a receive of a traced node's message (see
/// [`link_receives`]); `linked` holds, for each send, the receive already linked to it.
fn find_send(
    traces: &[NodeTrace],
    at: At,
    by_id: &HashMap<(Link, &str), At>,
    by_link: &HashMap<Link, Vec<At>>,
    linked: &[Vec<Option<At>>],
) -> Result<Option<At>, MergeError> {
    let line = &traces[at.0].events[at.1];
    let TraceKind::Receive { from, message } = &line.kind else {
        return Ok(None);
    };
    let from = party_of_endpoint(from);
    if matches!(from, Party::Client(_)) {
        return Ok(None);
    }
    let link = (from, party_of_origin(line.origin));
    let sent = |send: &At| match &traces[send.0].events[send.1].kind {
        TraceKind::Send { message, .. } => Some(message),
        _ => None,
    };
    let unlinked = |send: &At| linked[send.0][send.1].is_none();
    let found = match line.message_id.as_deref() {
        Some(id) => match by_id.get(&(link, id)).copied() {
            Some(send) if !unlinked(&send) => {
                return Err(MergeError::ReceivedTwice {
                    event: describe(traces, at),
                    send: describe(traces, send),
                    first: describe(traces, linked[send.0][send.1].expect("linked")),
                })
            }
            found => found,
        },
        None => by_link.get(&link).and_then(|sends| {
            sends
                .iter()
                .copied()
                .find(|send| unlinked(send) && sent(send) == Some(message))
        }),
    };
    let Some(send) = found else {
        return Err(MergeError::ReceiveWithoutSend {
            event: describe(traces, at),
            link: format!("{} -> {}", link.0, link.1),
            wanted: match &line.message_id {
                Some(id) => format!("message id {id}"),
                None => "this message".to_string(),
            },
        });
    };
    match sent(&send) {
        Some(sent) if sent != message => Err(MergeError::IdMismatch {
            event: describe(traces, at),
            message_id: line.message_id.clone().unwrap_or_default(),
            sent: describe(traces, send),
        }),
        _ => Ok(Some(send)),
    }
}

/// Where each node's inputs start and restart: what the model's network rules need.
struct Inputs {
    /// For each event, the index of the event that starts its input: the model takes the
    /// input's action there, and what it sends is in flight from then on (a tick that fires two
    /// timers takes one action per timer; the events after each timer are its part).
    starts: Vec<usize>,
    /// Restarts after the first event (the first `Restart` is the initial state, no crash).
    restarts: Vec<usize>,
}

impl Inputs {
    fn of(trace: &NodeTrace) -> Inputs {
        let events = &trace.events;
        let mut inputs = Inputs {
            starts: Vec::with_capacity(events.len()),
            restarts: Vec::new(),
        };
        for (index, line) in events.iter().enumerate() {
            let start = match index.checked_sub(1) {
                Some(previous) if !line.kind.starts_input() => inputs.starts[previous],
                _ => index,
            };
            inputs.starts.push(start);
            if index > 0 && matches!(line.kind, TraceKind::Restart) {
                inputs.restarts.push(index);
            }
        }
        inputs
    }
}

/// The constraints of every event: each receive waits for its send, and the model's network
/// rules ([`Reason`]) as edges between the events they concern.
fn constraints(traces: &[NodeTrace], send_of: &[Vec<Option<At>>]) -> Vec<Vec<Vec<Constraint>>> {
    let inputs: Vec<Inputs> = traces.iter().map(Inputs::of).collect();
    let mut waits_for: Vec<Vec<Vec<Constraint>>> = traces
        .iter()
        .map(|trace| vec![Vec::new(); trace.events.len()])
        .collect();
    for (receiver, sends) in send_of.iter().enumerate() {
        for (receive_index, send) in sends.iter().enumerate() {
            let Some((sender, send_index)) = *send else {
                continue;
            };
            let receive = (receiver, receive_index);
            let rule = |event: At, reason: Reason| Constraint { event, reason };
            waits_for[receiver][receive_index].push(rule((sender, send_index), Reason::Send));
            let send_start = inputs[sender].starts[send_index];
            let sender_inputs = &inputs[sender];
            // The sender's first restart after the send.
            let after = sender_inputs
                .restarts
                .partition_point(|at| *at <= send_index);
            if let Some(restart) = sender_inputs.restarts.get(after) {
                waits_for[sender][*restart].push(rule(receive, Reason::SenderRestart));
            }
            // The receiver's last restart before the receive.
            let before = inputs[receiver]
                .restarts
                .partition_point(|at| *at < receive_index);
            if let Some(restart) = before.checked_sub(1) {
                let restart = (receiver, inputs[receiver].restarts[restart]);
                waits_for[sender][send_start].push(rule(restart, Reason::ReceiverRestart));
            }
            // No eviction rule: a leader's eviction of the receiver closes its connection but
            // cannot take back what it already wrote to it, which the model keeps in flight.
        }
    }
    waits_for
}

/// The error for a merge where every remaining node waits: a cycle of constraints, so no order
/// satisfies causality and the model's network rules. Follows what each node's next event waits
/// for, starting at the first one that waits for its send, until a node repeats.
fn no_order(
    traces: &[NodeTrace],
    order: &Order,
    heads: &[usize],
    placed: &[Vec<usize>],
) -> MergeError {
    let waiting = |index: usize| {
        order.waits_for[index]
            .get(heads[index])
            .and_then(|constraints| {
                constraints
                    .iter()
                    .find(|constraint| placed[constraint.event.0][constraint.event.1] == usize::MAX)
            })
    };
    let start = (0..traces.len())
        .find(|index| waiting(*index).is_some_and(|constraint| constraint.reason == Reason::Send))
        .or_else(|| (0..traces.len()).find(|index| waiting(*index).is_some()))
        .expect("a blocked merge has a waiting node");
    let mut visited = vec![false; traces.len()];
    let mut steps = Vec::new();
    let mut current = start;
    while !visited[current] {
        visited[current] = true;
        let Some(constraint) = waiting(current) else {
            break;
        };
        let waiter = (current, heads[current]);
        let behind = if constraint.event.1 > heads[constraint.event.0] {
            format!(
                ", which comes after {} in its node's trace",
                describe(traces, (constraint.event.0, heads[constraint.event.0]))
            )
        } else {
            String::new()
        };
        steps.push(format!(
            "{} waits for {} ({}){behind}",
            describe(traces, waiter),
            describe(traces, constraint.event),
            reason_text(traces, waiter, constraint),
        ));
        current = constraint.event.0;
    }
    MergeError::NoOrder {
        detail: steps.join("; "),
    }
}

/// Why `waiter` waits for `constraint`, in words.
fn reason_text(traces: &[NodeTrace], waiter: At, constraint: &Constraint) -> String {
    let line = &traces[waiter.0].events[waiter.1];
    match constraint.reason {
        Reason::Send => match &line.message_id {
            Some(id) => format!("its send, message id {id}"),
            None => "its send".to_string(),
        },
        Reason::SenderRestart => "a receive of what the previous incarnation sent: the model's crash loses what is in flight".to_string(),
        Reason::ReceiverRestart => "the receiver's restart: the message is received by the new incarnation, and the model's crash loses what is in flight".to_string(),
    }
}

/// An event as a report names it: `m0#5 recv <-m2 ... (m0.ndjson:7)`.
fn describe(traces: &[NodeTrace], at: At) -> String {
    let trace = &traces[at.0];
    // Line 1 is the header.
    format!(
        "`{}` ({}:{})",
        trace.events[at.1],
        file_name(trace),
        at.1 + 2
    )
}

/// The name of a trace's file, as reports name it.
fn file_name(trace: &NodeTrace) -> String {
    trace.path.file_name().map_or_else(
        || trace.path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
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
        if trace.events.is_empty() {
            return Err(MergeError::HeaderOnly {
                file: trace.path.display().to_string(),
                node: trace.header.node.clone(),
            });
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
                file: file_name(trace),
                index,
                expected,
                found: line.sequence,
            });
        }
        expected = line.sequence + 1;
    }
    Ok(())
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
                file: "m0.ndjson".to_string(),
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

    fn timeout(node: u64, sequence: u64, lamport: u64) -> TraceLine {
        let timer = vigil_core::Timer::Heartbeat;
        line(node, sequence, TraceKind::Timeout { timer }, Some(lamport))
    }

    fn restarted(node: u64, lamport: u64) -> TraceLine {
        line(node, 0, TraceKind::Restart, Some(lamport))
    }

    fn with_id(mut line: TraceLine, message_id: &str) -> TraceLine {
        line.message_id = Some(message_id.to_string());
        line
    }

    /// Merged index of the `event`-th event of trace `trace`.
    fn at(merged: &Merged, trace: usize, event: usize) -> usize {
        merged
            .events
            .iter()
            .enumerate()
            .filter(|(_, merged_event)| merged_event.trace == trace)
            .nth(event)
            .map(|(index, _)| index)
            .expect("the event is merged")
    }

    fn render(merged: &Merged) -> Vec<String> {
        merged
            .events
            .iter()
            .map(|event| format!("{} (lamport {})", event.line, event.lamport))
            .collect()
    }

    #[test]
    fn a_message_a_new_incarnation_receives_is_sent_after_the_restart() {
        // Divergence 14's shape: m0's PreVote has a smaller clock than m1's restart, and m1's
        // new incarnation receives it. The model's crash (at the restart) would lose it if it
        // were sent before, so m0's input goes after the restart although its clock is smaller.
        let traces = vec![
            node(
                "m0",
                vec![
                    restarted(0, 1),
                    timeout(0, 1, 2),
                    with_id(send(0, 2, 1, Some(3)), "m0.0.m1.0"),
                ],
            ),
            node(
                "m1",
                vec![
                    restarted(1, 1),
                    timeout(1, 1, 2),
                    restarted(1, 10),
                    with_id(receive(1, 1, 0, Some(11)), "m0.0.m1.0"),
                ],
            ),
        ];
        let merged = merge(&traces).unwrap();
        let (input, restart) = (at(&merged, 0, 1), at(&merged, 1, 2));
        assert!(restart < input, "{:#?}", render(&merged));
        assert_eq!(
            merged.events[at(&merged, 1, 3)].send,
            Some(at(&merged, 0, 2))
        );
    }

    #[test]
    fn a_message_of_a_previous_incarnation_is_received_before_the_restart() {
        // m1 sends to m0 and restarts; m0 receives it late (a larger clock than the restart).
        let traces = vec![
            node(
                "m0",
                vec![
                    restarted(0, 1),
                    timeout(0, 1, 5),
                    timeout(0, 2, 6),
                    with_id(receive(0, 3, 1, Some(7)), "m1.0.m0.0"),
                ],
            ),
            node(
                "m1",
                vec![
                    restarted(1, 1),
                    timeout(1, 1, 2),
                    with_id(send(1, 2, 0, Some(3)), "m1.0.m0.0"),
                    restarted(1, 4),
                ],
            ),
        ];
        let merged = merge(&traces).unwrap();
        assert!(
            at(&merged, 0, 3) < at(&merged, 1, 3),
            "{:#?}",
            render(&merged)
        );
    }

    #[test]
    fn what_a_leader_wrote_before_an_eviction_may_arrive_after_a_causally_later_message() {
        // m1 is frozen (the nemesis's SIGSTOP); the leader m0 writes it an `Accept` (here any
        // message), evicts it in a later input and writes m4, which writes m1; thawed, m1 reads
        // m4's message first, then the `Accept` still in its socket. The eviction closed the
        // connection but could not take the `Accept` back, so the model keeps it in flight
        // (`docs/protocol.md` §5.1); the merge must not order its receive before the eviction,
        // which would be a cycle (`no causal order`).
        let traces = vec![
            node(
                "m0",
                vec![
                    restarted(0, 1),
                    timeout(0, 1, 2),
                    with_id(send(0, 2, 1, Some(3)), "m0.0.m1.0"),
                    timeout(0, 3, 4),
                    line(0, 4, TraceKind::Evict { follower: 1 }, Some(5)),
                    with_id(send(0, 5, 4, Some(6)), "m0.0.m4.0"),
                ],
            ),
            node(
                "m4",
                vec![
                    restarted(4, 1),
                    with_id(receive(4, 1, 0, Some(7)), "m0.0.m4.0"),
                    with_id(send(4, 2, 1, Some(8)), "m4.0.m1.0"),
                ],
            ),
            node(
                "m1",
                vec![
                    restarted(1, 1),
                    with_id(receive(1, 1, 4, Some(9)), "m4.0.m1.0"),
                    with_id(receive(1, 2, 0, Some(10)), "m0.0.m1.0"),
                ],
            ),
        ];
        let merged = merge(&traces).unwrap();
        let eviction = at(&merged, 0, 4);
        let later_receive = at(&merged, 2, 1);
        let accept_receive = at(&merged, 2, 2);
        assert!(
            eviction < later_receive && later_receive < accept_receive,
            "{:#?}",
            render(&merged)
        );
        assert_eq!(merged.events[accept_receive].send, Some(at(&merged, 0, 2)));
    }

    #[test]
    fn both_restart_rules_at_once_are_met() {
        // m1 sends to m2 and restarts; m0 sends to m1's new incarnation with a clock below the
        // restart's; m2 receives m1's old message with a clock above it. The only orders the
        // model can replay: m2's receive, then m1's restart, then m0's input.
        let traces = vec![
            node(
                "m0",
                vec![
                    restarted(0, 1),
                    timeout(0, 1, 2),
                    with_id(send(0, 2, 1, Some(3)), "m0.0.m1.0"),
                ],
            ),
            node(
                "m1",
                vec![
                    restarted(1, 1),
                    timeout(1, 1, 2),
                    with_id(send(1, 2, 2, Some(3)), "m1.0.m2.0"),
                    restarted(1, 4),
                    with_id(receive(1, 1, 0, Some(5)), "m0.0.m1.0"),
                ],
            ),
            node(
                "m2",
                vec![
                    restarted(2, 1),
                    timeout(2, 1, 7),
                    with_id(receive(2, 2, 1, Some(8)), "m1.0.m2.0"),
                ],
            ),
        ];
        let merged = merge(&traces).unwrap();
        let old_receive = at(&merged, 2, 2);
        let restart = at(&merged, 1, 3);
        let input = at(&merged, 0, 1);
        assert!(
            old_receive < restart && restart < input,
            "{:#?}",
            render(&merged)
        );
    }

    #[test]
    fn a_cycle_of_constraints_is_reported_not_merged() {
        // m1's previous incarnation received m0's second message, so m0's first input happened
        // before m1's restart; yet m1's new incarnation received m0's first message, which the
        // model's crash lost. No order can be replayed: the merge says why, at the cycle.
        let traces = vec![
            node(
                "m0",
                vec![
                    restarted(0, 1),
                    timeout(0, 1, 2),
                    with_id(send(0, 2, 1, Some(3)), "m0.0.m1.0"),
                    timeout(0, 3, 4),
                    with_id(send(0, 4, 1, Some(5)), "m0.0.m1.1"),
                ],
            ),
            node(
                "m1",
                vec![
                    restarted(1, 1),
                    with_id(receive(1, 1, 0, Some(6)), "m0.0.m1.1"),
                    restarted(1, 7),
                    with_id(receive(1, 1, 0, Some(8)), "m0.0.m1.0"),
                ],
            ),
        ];
        let error = merge(&traces).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, MergeError::NoOrder { .. }), "{text}");
        // The chain: m1's first receive waits for m0's second send, behind m0's first input,
        // which waits for m1's restart (m1.ndjson line 4), behind that very receive.
        assert!(
            text.starts_with("no causal order: `m1#1 recv <-m0"),
            "{text}"
        );
        assert!(text.contains("(its send, message id m0.0.m1.1)"), "{text}");
        assert!(
            text.contains("(m1.ndjson:4) (the receiver's restart"),
            "{text}"
        );
    }

    #[test]
    fn a_message_id_used_twice_is_an_error() {
        let traces = vec![
            node(
                "m0",
                vec![
                    restarted(0, 1),
                    with_id(send(0, 1, 1, Some(2)), "m0.0.m1.0"),
                    with_id(send(0, 2, 1, Some(3)), "m0.0.m1.0"),
                ],
            ),
            node("m1", vec![restarted(1, 1)]),
        ];
        let error = merge(&traces).unwrap_err();
        assert!(matches!(error, MergeError::DuplicateId { .. }), "{error}");
    }

    #[test]
    fn a_file_with_only_a_header_is_an_error_naming_it() {
        let traces = vec![node("m0", vec![restart(0)]), node("m1", vec![])];
        let error = merge(&traces).unwrap_err().to_string();
        assert!(
            error.starts_with("m1.ndjson: the file has only a header"),
            "{error}"
        );
    }

    #[test]
    fn a_send_received_twice_names_both_receives() {
        let traces = vec![
            node(
                "m0",
                vec![
                    restarted(0, 1),
                    with_id(send(0, 1, 1, Some(2)), "m0.0.m1.0"),
                ],
            ),
            node(
                "m1",
                vec![
                    restarted(1, 1),
                    with_id(receive(1, 1, 0, Some(3)), "m0.0.m1.0"),
                    with_id(receive(1, 2, 0, Some(4)), "m0.0.m1.0"),
                ],
            ),
        ];
        let error = merge(&traces).unwrap_err();
        assert!(matches!(error, MergeError::ReceivedTwice { .. }), "{error}");
        let text = error.to_string();
        assert!(
            text.starts_with("`m1#2 "),
            "the second receive first: {text}"
        );
        assert!(text.contains("(m1.ndjson:4): received twice"), "{text}");
        assert!(text.contains("was received by `m1#1 "), "{text}");
    }

    #[test]
    fn a_receive_error_names_the_event_first() {
        let traces = vec![
            node("m1", vec![restart(1), receive(1, 1, 0, None)]),
            node("m0", vec![restart(0)]),
        ];
        let error = merge(&traces).unwrap_err().to_string();
        assert!(error.starts_with("`m1#1 "), "{error}");
        assert!(
            error.contains("(m1.ndjson:3): receive without send"),
            "{error}"
        );
    }

    #[test]
    fn two_files_for_one_node_are_an_error() {
        let traces = vec![node("m0", vec![restart(0)]), node("m0", vec![restart(0)])];
        assert!(matches!(merge(&traces).unwrap_err(), MergeError::Nodes(_)));
    }
}
