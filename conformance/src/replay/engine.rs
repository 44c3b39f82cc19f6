//! The replayer: the model state it steps, the inputs of each node it has open, and its steps
//! through a merged trace — each event of an input, the mapped actions applied (with a silent
//! step where one explains the trace), an input closed by comparing what the model and the
//! implementation sent and the post-states, the end of the run checked — and the divergence
//! report of a step the model does not follow.

use std::collections::HashSet;

use vigil_core as core;
use vigil_model::compaction::Archive;
use vigil_model::revision_properties::{RevisionCheck, WatchCheck};
use vigil_model::{Action, Config, Endpoint, State};

use super::diff::{actor_of, difference, post_state_diff, sent_by};
use super::inputs::{input_ends, next_of_node, returned_forwards, same_tick};
use super::properties::{checked_properties, Checked, When};
use super::{ReplayStats, Sent};
use crate::mapping::{self, Vocabulary};
use crate::merge::{party_of_endpoint, Merged, Party};
use crate::report::{describe_state, Divergence, CONTEXT_EVENTS};

/// An input of one node being replayed.
pub(super) struct OpenInput {
    /// Merged index of the event that started it.
    pub(super) start: usize,
    /// Whether it started with a timer (a tick may fire two timers with one post-state).
    pub(super) timer: bool,
    pub(super) post: core::PostState,
    /// The input number of its last event so far, if the sink stamps them.
    pub(super) input: Option<u64>,
    pub(super) model_sent: Vec<Sent>,
    pub(super) implementation_sent: Vec<Sent>,
    pub(super) lost: Vec<Sent>,
}

pub(super) struct Replayer<'a> {
    pub(super) merged: &'a Merged,
    pub(super) vocabulary: Vocabulary,
    /// The model state, compacted between steps (`vigil_model::compaction`): what no later
    /// step reads is in `archive`, so a step costs the same late in a long run as early.
    pub(super) state: State,
    pub(super) archive: Archive,
    pub(super) open: Vec<Option<OpenInput>>,
    pub(super) path: Vec<Action>,
    pub(super) properties: Vec<Checked>,
    /// `watch_in_order_exactly_once` along the replayed path: the committed history and each
    /// watch's owed events derived once, as slots are chosen and events delivered.
    pub(super) watch_check: WatchCheck,
    /// `revision_monotone` along the replayed path: each reply and watch event judged once.
    pub(super) revision_check: RevisionCheck,
    pub(super) chosen_len: usize,
    pub(super) stats: ReplayStats,
    /// Whether each merged event is the last of its node's input (the input closes there).
    pub(super) input_ends: Vec<bool>,
    /// For each merged event, the next event of the same node, if any.
    pub(super) next_of_node: Vec<Option<usize>>,
    /// Proxy `Propose` sends a later `ForwardLost` takes back: never received, yet not lost in
    /// the network (the model's `ForwardLost` takes them off the link).
    pub(super) returned_forwards: HashSet<usize>,
}

impl<'a> Replayer<'a> {
    pub(super) fn new(merged: &'a Merged, vocabulary: Vocabulary) -> Replayer<'a> {
        let state = State::initial(&vocabulary.config);
        Replayer {
            merged,
            state,
            archive: Archive::new(),
            open: (0..merged.nodes.len()).map(|_| None).collect(),
            path: Vec::new(),
            properties: checked_properties(),
            watch_check: WatchCheck::default(),
            revision_check: RevisionCheck::default(),
            chosen_len: 0,
            stats: ReplayStats::default(),
            input_ends: input_ends(merged),
            next_of_node: next_of_node(merged),
            returned_forwards: returned_forwards(merged),
            vocabulary,
        }
    }

    pub(super) fn config(&self) -> &Config {
        &self.vocabulary.config
    }
}

impl Replayer<'_> {
    /// Replays merged event `index`: an event that starts an input opens it (closing the
    /// node's previous one) and applies its mapped actions; every event updates its input's
    /// post-state; a send is recorded; the input's last event closes it.
    pub(super) fn event(&mut self, index: usize) -> Result<(), Box<Divergence>> {
        let event = &self.merged.events[index];
        if event.line.kind.starts_input() {
            self.start_input(index)?;
        }
        let line = &event.line;
        let Some(open) = self.open[event.trace].as_mut() else {
            return Err(Box::new(self.divergence(
                index,
                "an event outside any input (the node's trace does not start with a Restart, a receive, a timer or a pause)",
                None,
                Vec::new(),
            )));
        };
        open.post = line.post.clone();
        open.input = line.input;
        if let core::TraceKind::Send { to, message } = &line.kind {
            self.record_send(index, to, message)?;
        }
        if self.input_ends[index] {
            if let Some(open) = self.open[event.trace].take() {
                self.close(open)?;
            }
        }
        Ok(())
    }

    /// Event `index` starts an input: unless it is a second timer of the same tick, the node's
    /// open input closes and a new one opens; then its mapped actions apply.
    fn start_input(&mut self, index: usize) -> Result<(), Box<Divergence>> {
        let event = &self.merged.events[index];
        let line = &event.line;
        let same_tick = self.open[event.trace]
            .as_ref()
            .is_some_and(|open| open.timer && same_tick(open.input, &open.post, line));
        if !same_tick {
            if let Some(open) = self.open[event.trace].take() {
                self.close(open)?;
            }
            self.open[event.trace] = Some(OpenInput {
                start: index,
                timer: matches!(line.kind, core::TraceKind::Timeout { .. }),
                post: line.post.clone(),
                input: line.input,
                model_sent: Vec::new(),
                implementation_sent: Vec::new(),
                lost: Vec::new(),
            });
        }
        let actions = self
            .vocabulary
            .actions(self.merged, index)
            .map_err(|error| {
                Box::new(self.divergence(
                    index,
                    "the event cannot be mapped to the model",
                    None,
                    vec![error.to_string()],
                ))
            })?;
        for action in actions {
            self.apply_mapped(index, event.trace, action)?;
        }
        Ok(())
    }

    /// Records the send of event `index` in its input: what the implementation sent, and, if
    /// nobody received it (and no `ForwardLost` took it back, and it is not to an untraced
    /// client), a message lost in the network.
    fn record_send(
        &mut self,
        index: usize,
        to: &core::Endpoint,
        message: &core::Message,
    ) -> Result<(), Box<Divergence>> {
        let event = &self.merged.events[index];
        let sent = mapping::send_of(&self.vocabulary, event.line.origin, to, message).map_err(
            |error| {
                Box::new(self.divergence(
                    index,
                    "a sent message cannot be mapped to the model",
                    None,
                    vec![error.to_string()],
                ))
            },
        )?;
        let open = self.open[event.trace]
            .as_mut()
            .expect("a send is inside an open input");
        if event.receive.is_none()
            && !self.returned_forwards.contains(&index)
            && !matches!(party_of_endpoint(to), Party::Client(_))
        {
            open.lost.push(sent.clone());
        }
        open.implementation_sent.push(sent);
        Ok(())
    }

    /// Applies one mapped action (trying one silent step first if it is not enabled).
    pub(super) fn apply_mapped(
        &mut self,
        index: usize,
        trace: usize,
        action: Action,
    ) -> Result<(), Box<Divergence>> {
        let mut before = self.state.network.clone();
        if let Action::ForwardLost(request_id) = &action {
            // The model takes the `Propose` back off its link: a redirect to the same master
            // puts an equal one back, and that is a send.
            if let Some((link, propose)) =
                self.config().undelivered_propose(&self.state, *request_id)
            {
                if let Some(messages) = before.get_mut(&link) {
                    if let Some(position) = messages.iter().position(|queued| *queued == propose) {
                        messages.remove(position);
                    }
                }
            }
        }
        self.advance(index, &action)?;
        *self
            .stats
            .action_kinds
            .entry(mapping::action_kind(&action))
            .or_default() += 1;
        self.stats.actions += 1;
        let actor = actor_of(&action);
        self.path.push(action);
        let sent = sent_by(actor, &before, &self.state.network);
        if let Some(open) = self.open[trace].as_mut() {
            open.model_sent.extend(sent);
        }
        self.deliver_replies()?;
        self.state.used = vigil_model::Budget::default();
        self.check_properties(index, When::EveryStep)?;
        let chosen_len = self.archive.chosen_len() + self.state.ghost.chosen.len();
        if chosen_len != self.chosen_len {
            self.chosen_len = chosen_len;
            self.check_properties(index, When::ChosenGrew)?;
        }
        let vocabulary = &self.vocabulary;
        let compaction = self.archive.compact(&vocabulary.config, &mut self.state);
        let through = self.state.compacted.through;
        self.stats.compacted_through_max = self.stats.compacted_through_max.max(through);
        if compaction.repeated_reply {
            self.check_properties(index, When::ReplyDelivered)?;
        }
        Ok(())
    }

    /// Moves the state past `action`, after one silent step if that is what explains the trace
    /// (`silent_step_before`, `silent_step_then`). A silent timer can only explain an input of a
    /// master with a `Rejoin` outstanding; any other enabled action is taken in place, without
    /// a copy of the state.
    pub(super) fn advance(&mut self, index: usize, action: &Action) -> Result<(), Box<Divergence>> {
        if let Action::Crash(node) = action {
            for _ in 0..self.persisted_before_crash(index, *node) {
                let persist = Action::Persist(*node);
                let applied = self
                    .vocabulary
                    .config
                    .apply_in_place(&mut self.state, &persist);
                assert!(applied, "persisted_before_crash tried it");
                self.path.push(persist);
                self.stats.silent_steps += 1;
            }
        }
        let silent_timer_possible = matches!(
            actor_of(action),
            Endpoint::Master(node) if self.state.masters[node as usize].rejoin_requested
        );
        if !silent_timer_possible {
            if self
                .vocabulary
                .config
                .apply_in_place(&mut self.state, action)
            {
                return Ok(());
            }
        } else if let Some(next) = self.config().apply(&self.state, action) {
            let (silent, next) = self.silent_step_before(index, action, next);
            if let Some(silent) = silent {
                self.path.push(silent);
                self.stats.silent_steps += 1;
            }
            self.state = next;
            return Ok(());
        }
        let Some((silent, next)) = self.silent_step_then(action) else {
            return Err(Box::new(self.not_enabled(index, action)));
        };
        self.path.push(silent);
        self.stats.silent_steps += 1;
        self.state = next;
        Ok(())
    }

    /// The divergence of a mapped action the model cannot take, even after a silent step.
    pub(super) fn not_enabled(&self, index: usize, action: &Action) -> Divergence {
        let mut divergence = self.divergence(
            index,
            "the mapped action is not enabled in the model",
            Some(action),
            Vec::new(),
        );
        if let Action::Deliver {
            source,
            destination,
            message,
        } = action
        {
            let in_flight = self
                .state
                .network
                .get(&(*source, *destination))
                .map_or(0, Vec::len);
            divergence.notes.push(format!(
                "the model has {in_flight} message(s) in flight on {source} -> {destination}; {} is not among them",
                message.name()
            ));
        }
        divergence
    }

    /// Ends an input: the messages sent and the post-state must match, then what the
    /// implementation lost the model drops.
    pub(super) fn close(&mut self, mut open: OpenInput) -> Result<(), Box<Divergence>> {
        open.model_sent.sort();
        open.implementation_sent.sort();
        if open.model_sent != open.implementation_sent {
            return Err(Box::new(self.sends_differ(&open)));
        }
        let node = match self.merged.events[open.start].line.origin {
            core::Origin::Master(node) => u8::try_from(node).ok(),
            core::Origin::Proxy(_) => None,
        };
        let diff = post_state_diff(&self.state, node, &open.post);
        if !diff.is_empty() {
            let mut divergence =
                self.divergence(open.start, "the post-state differs", None, Vec::new());
            divergence.diff = diff;
            return Err(Box::new(divergence));
        }
        self.drop_lost(open.start, open.lost)
    }

    /// The divergence of an input whose model and implementation sent different messages
    /// (both sorted), each side's extra messages as notes.
    fn sends_differ(&self, open: &OpenInput) -> Divergence {
        let only_model = difference(&open.model_sent, &open.implementation_sent);
        let only_implementation = difference(&open.implementation_sent, &open.model_sent);
        let mut notes = Vec::new();
        for (source, destination, message) in only_model {
            notes.push(format!(
                "model sent, implementation did not: {source} -> {destination} {message:?}"
            ));
        }
        for (source, destination, message) in only_implementation {
            notes.push(format!(
                "implementation sent, model did not: {source} -> {destination} {message:?}"
            ));
        }
        self.divergence(open.start, "the messages sent differ", None, notes)
    }

    /// End of the trace: close every input, then completion and the end-of-run properties.
    pub(super) fn finish(&mut self) -> Result<(), Box<Divergence>> {
        for trace in 0..self.open.len() {
            if let Some(open) = self.open[trace].take() {
                self.close(open)?;
            }
        }
        self.archive.restore(&mut self.state);
        let last = self.merged.events.len().saturating_sub(1);
        self.check_completions()?;
        let started = std::time::Instant::now();
        let linearizable = self.check_linearizable(last);
        self.stats.linearizable_seconds = started.elapsed().as_secs_f64();
        linearizable?;
        self.check_properties(last, When::End)?;
        self.check_properties(last, When::ReplyDelivered)
    }

    pub(super) fn divergence(
        &self,
        index: usize,
        title: &str,
        action: Option<&Action>,
        notes: Vec<String>,
    ) -> Divergence {
        let mut divergence = Divergence::new(title);
        let event = &self.merged.events[index];
        divergence.event_index = Some(index);
        divergence.event = Some(format!("{} (lamport {})", event.line, event.lamport));
        divergence.action = action.map(ToString::to_string);
        divergence.notes = notes;
        let first = (index + 1).saturating_sub(CONTEXT_EVENTS);
        divergence.context = (first..=index)
            .map(|position| {
                let event = &self.merged.events[position];
                format!("#{position:<6} {}", event.line)
            })
            .collect();
        let state = self.archive.restored(&self.state);
        divergence.model_state = describe_state(&state);
        divergence.enabled = self
            .config()
            .enabled_actions(&state)
            .iter()
            .map(ToString::to_string)
            .collect();
        divergence.path = self.path.clone();
        divergence.config = Some(self.config().clone());
        divergence
    }
}
