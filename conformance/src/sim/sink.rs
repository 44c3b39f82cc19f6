//! The simulation's in-memory trace sink: it stamps each event with the node's input number,
//! a Lamport clock and, on sends and receives, the message id (`docs/trace.md` §1), and keeps
//! the lines for the run's traces.

use vigil_core as core;
use vigil_core::Message;

use super::network::Flight;
use crate::trace::TraceLine;

/// The in-memory sink of one node: stamps and keeps its lines.
pub(super) struct Sink {
    pub(super) node: String,
    pub(super) lines: Vec<TraceLine>,
    pub(super) lamport: u64,
    pub(super) inputs: u64,
    pub(super) sends: u64,
    /// Whether the current input began with a timer (a tick), which a second timer may join.
    pub(super) input_is_tick: bool,
}

/// The stamped sends of one drained batch, to hand ids to the envelopes.
pub(super) struct Stamped {
    pub(super) sends: Vec<(Message, String, u64, bool)>,
}

impl Stamped {
    /// The id and clock of the first unclaimed send event of `message`.
    pub(super) fn take_send(&mut self, message: &Message) -> (String, u64) {
        for (sent, id, lamport, claimed) in &mut self.sends {
            if !*claimed && sent == message {
                *claimed = true;
                return (id.clone(), *lamport);
            }
        }
        (String::new(), 0)
    }
}

impl Sink {
    pub(super) fn new(node: String) -> Sink {
        Sink {
            node,
            lines: Vec::new(),
            lamport: 0,
            inputs: 0,
            sends: 0,
            input_is_tick: false,
        }
    }

    /// Stamps one batch of events (one or more inputs): clock, input number, message ids.
    pub(super) fn stamp(
        &mut self,
        events: Vec<core::TraceEvent>,
        received: Option<&Flight>,
    ) -> Stamped {
        let mut stamped = Stamped { sends: Vec::new() };
        let mut last_sequence: Option<u64> = None;
        for event in events {
            let new_input = event.kind.starts_input() || last_sequence.is_none();
            // A second timer of one tick joins its input (a timer after a `Resume` does not).
            let same_tick_timer = matches!(event.kind, core::TraceKind::Timeout { .. })
                && last_sequence.is_some()
                && self.input_is_tick
                && self
                    .lines
                    .last()
                    .is_some_and(|line| line.post == event.post);
            if new_input && !same_tick_timer {
                self.inputs += 1;
                self.input_is_tick = matches!(event.kind, core::TraceKind::Timeout { .. });
            }
            last_sequence = Some(event.sequence);
            self.lamport += 1;
            let mut message_id = None;
            match &event.kind {
                core::TraceKind::Receive { .. } => {
                    if let Some(flight) = received {
                        if !matches!(
                            event.kind,
                            core::TraceKind::Receive {
                                from: core::Endpoint::Client(_),
                                ..
                            }
                        ) {
                            self.lamport = self.lamport.max(flight.lamport + 1);
                            message_id = Some(flight.id.clone());
                        }
                    }
                }
                core::TraceKind::Send { message, to }
                    if !matches!(to, core::Endpoint::Client(_)) =>
                {
                    self.sends += 1;
                    let id = format!("{}.{}", self.node, self.sends);
                    stamped
                        .sends
                        .push((message.clone(), id.clone(), self.lamport, false));
                    message_id = Some(id);
                }
                _ => {}
            }
            self.lines.push(TraceLine::new(
                event,
                Some(self.inputs),
                Some(self.lamport),
                message_id,
            ));
        }
        stamped
    }
}
