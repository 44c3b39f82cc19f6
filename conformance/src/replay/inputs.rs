//! Where each node's inputs begin and end in a merged trace, computed once before replay: the
//! next event of each node, whether an event closes its input (a tick that fires two timers is
//! one input), and the proxy `Propose`s that a later `ForwardLost` takes back.

use std::collections::{HashMap, HashSet};

use vigil_core as core;

use crate::merge::Merged;

/// For each merged event, the next event of the same node's trace.
pub(super) fn next_of_node(merged: &Merged) -> Vec<Option<usize>> {
    let mut next = vec![None; merged.events.len()];
    let mut last_of_trace: Vec<Option<usize>> = vec![None; merged.nodes.len()];
    for (index, event) in merged.events.iter().enumerate() {
        if let Some(previous) = last_of_trace[event.trace] {
            next[previous] = Some(index);
        }
        last_of_trace[event.trace] = Some(index);
    }
    next
}

/// Whether `line` is a second timer of the tick whose input the node's previous event (its
/// `input` number and `post`) belongs to. The sinks stamp input numbers (one per input, a tick
/// that fires two timers is one), so with them it is exact: consecutive election timeouts of a
/// paused master are separate inputs although their post-states are equal, and merging them
/// would make replay drop, as lost, a copy of an equal message a later one of them sent.
/// Without numbers, a timer with the same post-state is taken for the same tick.
pub(super) fn same_tick(
    input: Option<u64>,
    post: &core::PostState,
    line: &crate::trace::TraceLine,
) -> bool {
    matches!(line.kind, core::TraceKind::Timeout { .. })
        && match (input, line.input) {
            (Some(previous), Some(current)) => previous == current,
            _ => *post == line.post,
        }
}

/// The proxy `Propose` and `KvPropose` sends that a `ForwardLost` of the same proxy takes back:
/// for each `ForwardLost { request_id }`, the proxy's latest earlier unreceived one of that
/// forwarding id (the one its host could not hand to a connection).
pub(super) fn returned_forwards(merged: &Merged) -> HashSet<usize> {
    let mut unreceived: HashMap<(usize, u64), usize> = HashMap::new();
    let mut returned = HashSet::new();
    for (index, event) in merged.events.iter().enumerate() {
        match &event.line.kind {
            core::TraceKind::Send {
                message:
                    core::Message::Propose { request_id, .. }
                    | core::Message::KvPropose { request_id, .. },
                ..
            } if event.receive.is_none() => {
                unreceived.insert((event.trace, *request_id), index);
            }
            core::TraceKind::ForwardLost { request_id } => {
                if let Some(send) = unreceived.remove(&(event.trace, *request_id)) {
                    returned.insert(send);
                }
            }
            _ => {}
        }
    }
    returned
}

/// For each merged event: is it the last event of its node's input? The next event of the same
/// node starts a new input, or there is none. A timer event with the same post-state as the
/// input before it may belong to the same tick: that input stays open for it.
pub(super) fn input_ends(merged: &Merged) -> Vec<bool> {
    let mut ends = vec![false; merged.events.len()];
    let mut last_of_trace: Vec<Option<usize>> = vec![None; merged.nodes.len()];
    for (index, event) in merged.events.iter().enumerate() {
        if let Some(previous) = last_of_trace[event.trace] {
            let before = &merged.events[previous].line;
            let same_tick = same_tick(before.input, &before.post, &event.line);
            ends[previous] = event.line.kind.starts_input() && !same_tick;
        }
        last_of_trace[event.trace] = Some(index);
    }
    for last in last_of_trace.into_iter().flatten() {
        ends[last] = true;
    }
    ends
}
