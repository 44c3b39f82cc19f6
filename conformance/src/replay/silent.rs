//! The steps a trace cannot show, searched for only when nothing else matches and bounded
//! ([`SILENT_CANDIDATES_MAX`] candidates, one step): the `Persist`s a master killed after its
//! disk finished a write never traced, one `CloseConnection` or `Drop` of a message in flight
//! that enables the mapped action, one silent timer (`RejoinWaitExpired`) before it after which the input
//! matches; the `Reply`s the untraced clients receive as soon as the proxy sends them; and the
//! `Drop` of each message the implementation sent and nobody received.

use vigil_core as core;
use vigil_model::{Action, Endpoint, Message, State};

use super::diff::{actor_of, post_state_diff, sent_by};
use super::engine::Replayer;
use super::properties::When;
use super::{Sent, SILENT_CANDIDATES_MAX};
use crate::mapping;
use crate::report::Divergence;

/// What the implementation did in one input of a master that maps to one model action: what it
/// sent and its post-state at the end of the input.
pub(super) struct ExpectedInput {
    pub(super) sends: Vec<Sent>,
    pub(super) post: core::PostState,
}

impl Replayer<'_> {
    /// A master killed after its disk finished a write and before it traced the write's
    /// `Persist` restarts with the write (what waited for it never left: the host releases it
    /// only after tracing the `Persist`). So before a `Crash`, the silent `Persist`s (at most
    /// the master's pending writes, oldest first) after which the restart's post-state (event
    /// `index`) matches; none if no number does (the restart then reports the difference).
    pub(super) fn persisted_before_crash(&self, index: usize, node: u8) -> usize {
        let pending = self.state.masters[node as usize].pending_writes.len();
        if pending == 0 {
            return 0;
        }
        let post = &self.merged.events[index].line.post;
        let restarted = |state: &State| {
            let mut trial = state.clone();
            self.config()
                .apply_in_place(&mut trial, &Action::Crash(node))
                && self
                    .config()
                    .apply_in_place(&mut trial, &Action::Restart(node))
                && post_state_diff(&trial, Some(node), post).is_empty()
        };
        let mut state = self.state.clone();
        for persisted in 0..=pending {
            if restarted(&state) {
                return persisted;
            }
            if !self
                .config()
                .apply_in_place(&mut state, &Action::Persist(node))
            {
                break;
            }
        }
        0
    }

    /// One silent fault that makes `action` enabled, if any: the close of the proxy's
    /// connection to the master it is subscribed at (what the proxy's host noticed on its own,
    /// before the trace shows the master's crash), else one `Drop` of a message in flight.
    pub(super) fn silent_step_then(&self, action: &Action) -> Option<(Action, State)> {
        let enabled = self.config().enabled_actions(&self.state);
        let closes = enabled
            .iter()
            .filter(|candidate| matches!(candidate, Action::CloseConnection(_)));
        let drops = enabled
            .iter()
            .filter(|candidate| matches!(candidate, Action::Drop { .. }));
        let candidates: Vec<Action> = closes
            .chain(drops)
            .take(SILENT_CANDIDATES_MAX)
            .cloned()
            .collect();
        for candidate in candidates {
            let Some(dropped) = self.config().apply(&self.state, &candidate) else {
                continue;
            };
            if let Some(next) = self.config().apply(&dropped, action) {
                return Some((candidate, next));
            }
        }
        None
    }

    /// `action` is enabled and gives `next`; if the master's input that `index` starts sent other
    /// messages or ends in another post-state, one silent timer of that master (one that sends
    /// nothing) before `action` may explain it: the first candidate after which they match is
    /// returned with the state after both. Otherwise `next` unchanged (the input's close reports
    /// the difference).
    pub(super) fn silent_step_before(
        &self,
        index: usize,
        action: &Action,
        next: State,
    ) -> (Option<Action>, State) {
        let Endpoint::Master(node) = actor_of(action) else {
            return (None, next);
        };
        let candidates = self.silent_timers(node);
        if candidates.is_empty() {
            return (None, next);
        }
        let Some(expected) = self.expected_input(index) else {
            return (None, next);
        };
        if self.input_matches(node, &self.state, &next, &expected) {
            return (None, next);
        }
        for candidate in candidates {
            let Some(silent) = self.config().apply(&self.state, &candidate) else {
                continue;
            };
            let Some(retried) = self.config().apply(&silent, action) else {
                continue;
            };
            if self.input_matches(node, &silent, &retried, &expected) {
                return (Some(candidate), retried);
            }
        }
        (None, next)
    }

    /// The silent timers of `node` enabled now: steps with no trace event that send nothing.
    pub(super) fn silent_timers(&self, node: u8) -> Vec<Action> {
        let master = &self.state.masters[node as usize];
        if !master.rejoin_requested {
            return Vec::new();
        }
        self.config()
            .enabled_actions(&self.state)
            .into_iter()
            .filter(|action| *action == Action::RejoinWaitExpired(node))
            .take(SILENT_CANDIDATES_MAX)
            .collect()
    }

    /// What the implementation sent in the input `start` begins and its post-state at the end,
    /// if that input has one start event (not a tick that fired several timers) and every send
    /// maps to the model.
    pub(super) fn expected_input(&self, start: usize) -> Option<ExpectedInput> {
        let mut sends = Vec::new();
        let mut position = start;
        loop {
            let line = &self.merged.events[position].line;
            if position != start && line.kind.starts_input() {
                return None;
            }
            if let core::TraceKind::Send { to, message } = &line.kind {
                sends.push(mapping::send_of(&self.vocabulary, line.origin, to, message).ok()?);
            }
            if self.input_ends[position] {
                sends.sort();
                return Some(ExpectedInput {
                    sends,
                    post: line.post.clone(),
                });
            }
            position = self.next_of_node[position]?;
        }
    }

    /// Whether going from `before` to `after` master `node` sent what `expected` says and ends in
    /// its post-state.
    pub(super) fn input_matches(
        &self,
        node: u8,
        before: &State,
        after: &State,
        expected: &ExpectedInput,
    ) -> bool {
        let mut sent = sent_by(Endpoint::Master(node), &before.network, &after.network);
        sent.sort();
        sent == expected.sends && post_state_diff(after, Some(node), &expected.post).is_empty()
    }

    /// The untraced clients receive every `Reply` as soon as the proxy sends it.
    pub(super) fn deliver_replies(&mut self) -> Result<(), Box<Divergence>> {
        let replies: Vec<(Endpoint, Message)> = self
            .state
            .network
            .iter()
            .filter(|((source, destination), _)| {
                *source == Endpoint::Proxy && matches!(destination, Endpoint::Client(_))
            })
            .flat_map(|((_, destination), messages)| {
                messages
                    .iter()
                    .map(|message| (*destination, message.clone()))
            })
            .collect();
        if replies.is_empty() {
            return Ok(());
        }
        for (destination, message) in replies {
            let delivery = Action::Deliver {
                source: Endpoint::Proxy,
                destination,
                message,
            };
            if !self
                .vocabulary
                .config
                .apply_in_place(&mut self.state, &delivery)
            {
                return Err(Box::new(Divergence::new(format!(
                    "the model cannot deliver a Reply to its client: {delivery}"
                ))));
            }
            self.path.push(delivery);
            self.stats.silent_steps += 1;
        }
        let last = self.merged.events.len().saturating_sub(1);
        self.check_properties(last.min(self.path.len()), When::ReplyDelivered)
    }

    /// The messages the input that `start` begins sent and nobody received are lost: the model
    /// drops each one still in flight (the full trace proves it was never delivered).
    pub(super) fn drop_lost(
        &mut self,
        start: usize,
        lost: Vec<Sent>,
    ) -> Result<(), Box<Divergence>> {
        for (source, destination, message) in lost {
            let still_in_flight = self
                .state
                .network
                .get(&(source, destination))
                .is_some_and(|messages| messages.contains(&message));
            if !still_in_flight {
                continue;
            }
            let drop = Action::Drop {
                source,
                destination,
                message,
            };
            if !self
                .vocabulary
                .config
                .apply_in_place(&mut self.state, &drop)
            {
                return Err(Box::new(self.divergence(
                    start,
                    "the model cannot lose a message the implementation lost",
                    Some(&drop),
                    Vec::new(),
                )));
            }
            self.path.push(drop);
            self.stats.silent_steps += 1;
            self.state.used = vigil_model::Budget::default();
        }
        Ok(())
    }
}
