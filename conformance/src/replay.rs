//! Replay: step the model through a merged trace and compare (`docs/trace.md` §Replay).
//!
//! For each input of a node (the event that starts it: a receive, a timer, a restart), the
//! mapped actions must be enabled in the model state; at the end of the input the messages the
//! model sent must be the messages the implementation sent, and the model's abstraction of the
//! node must equal the post-state the events carry. The model's safety properties are evaluated
//! along the path. At the end every request the proxy accepted must have exactly one completion,
//! in the implementation's trace and in the model.
//!
//! Steps a trace cannot show:
//! - a message sent and never received by anyone is lost: the model drops it (`Drop`) when the
//!   sender's input closes, because the full trace proves it was never delivered;
//! - the untraced clients: their `Reply`s are delivered in the model as soon as the proxy sends
//!   them, and a client's `ClientRequest` precedes the proxy's receive of its `Request`;
//! - otherwise a silent step is tried only when nothing else matches, and bounded (at most
//!   [`SILENT_CANDIDATES_MAX`] candidates, one step): when the mapped action is not enabled, one
//!   `Drop` of a message in flight that enables it; when it is enabled but what the model sends
//!   or the node's post-state differ from the implementation's input, one silent timer of that
//!   master that sends nothing (`RejoinWaitExpired`, §6.3) after which they match.
//!
//! The model's fault and timer budgets bound its exhaustive search, not the protocol: replay
//! resets the counters of used budget after each step so that a long run is not cut short.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use vigil_core as core;
use vigil_model::compaction::Archive;
use vigil_model::{Action, Config, Endpoint, Message, State};

use crate::mapping::{self, Vocabulary};
use crate::merge::{party_of_endpoint, Merged, Party};
use crate::nemesis::history::{Call, Outcome, Record};
use crate::nemesis::linearizability::{self, Verdict};
use crate::report::{describe_state, Divergence, FieldDiff, CONTEXT_EVENTS};

/// Candidates for one silent step at most.
pub const SILENT_CANDIDATES_MAX: usize = 64;

/// A model message on a link.
type Sent = (Endpoint, Endpoint, Message);

/// What replay counted.
#[derive(Clone, Debug, Default)]
pub struct ReplayStats {
    /// Trace events validated.
    pub events: usize,
    /// Model actions applied (mapped ones, not counting silent steps).
    pub actions: usize,
    /// Silent steps taken (drops of lost messages, client reply deliveries, lazy steps).
    pub silent_steps: usize,
    /// Applied actions per kind.
    pub action_kinds: BTreeMap<String, u64>,
    /// Wall time of the replay alone, seconds.
    pub seconds: f64,
    /// Keys whose history the per-key linearizability check could not decide within
    /// [`LINEARIZABLE_CHECK_LIMIT`] (none: every key decided).
    pub linearizable_undecided_keys: Option<Vec<String>>,
}

/// How long the replay's linearizability check of the client history may take in all. The
/// model's `linearizable` (stateright's `LinearizabilityTester`, one register, every request
/// its own thread) has no memory of what it tried: on a simulated run with a few indeterminate
/// writes it ran 13 minutes without an answer (sim seed 61 with `slow-disk`). The replay checks
/// the same history per key with Wing & Gong's search and Lowe's memoisation
/// ([`linearizable_per_key`], the nemesis's checker), which decides such runs in milliseconds;
/// this bounds the rest.
pub const LINEARIZABLE_CHECK_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

/// An input of one node being replayed.
struct OpenInput {
    /// Merged index of the event that started it.
    start: usize,
    /// Whether it started with a timer (a tick may fire two timers with one post-state).
    timer: bool,
    post: core::PostState,
    /// The input number of its last event so far, if the sink stamps them.
    input: Option<u64>,
    model_sent: Vec<Sent>,
    implementation_sent: Vec<Sent>,
    lost: Vec<Sent>,
}

/// When a property is evaluated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum When {
    EveryStep,
    ChosenGrew,
    ReplyDelivered,
    End,
}

struct Checked {
    name: &'static str,
    condition: fn(&Config, &State) -> bool,
    when: When,
}

fn checked_properties() -> Vec<Checked> {
    vigil_model::properties::all()
        .into_iter()
        .filter(|property| property.expectation == stateright::Expectation::Always)
        .map(|property| {
            let when = match property.name {
                // Grows with the chosen map only; a check per step would cost O(slots).
                "validity" => When::ChosenGrew,
                "complete_at_most_once" => When::ReplyDelivered,
                // Prefix-closed and costly: the full history at the end decides it.
                "linearizable" => When::End,
                // Quiescence is a property of the end of the run, after the drain.
                "quiescent_requests_complete" => When::End,
                _ => When::EveryStep,
            };
            Checked {
                name: property.name,
                condition: property.condition,
                when,
            }
        })
        .collect()
}

/// Replays `merged` against the model built by `vocabulary`.
pub fn replay(merged: &Merged, vocabulary: Vocabulary) -> Result<ReplayStats, Box<Divergence>> {
    let started = Instant::now();
    let mut replayer = Replayer::new(merged, vocabulary);
    for index in 0..merged.events.len() {
        replayer.event(index)?;
    }
    replayer.finish()?;
    replayer.stats.seconds = started.elapsed().as_secs_f64();
    replayer.stats.events = merged.events.len();
    Ok(replayer.stats)
}

struct Replayer<'a> {
    merged: &'a Merged,
    vocabulary: Vocabulary,
    /// The model state, compacted between steps (`vigil_model::compaction`): what no later
    /// step reads is in `archive`, so a step costs the same late in a long run as early.
    state: State,
    archive: Archive,
    open: Vec<Option<OpenInput>>,
    path: Vec<Action>,
    properties: Vec<Checked>,
    chosen_len: usize,
    stats: ReplayStats,
    /// Whether each merged event is the last of its node's input (the input closes there).
    input_ends: Vec<bool>,
    /// For each merged event, the next event of the same node, if any.
    next_of_node: Vec<Option<usize>>,
    /// Proxy `Propose` sends a later `ForwardLost` takes back: never received, yet not lost in
    /// the network (the model's `ForwardLost` takes them off the link).
    returned_forwards: HashSet<usize>,
}

/// What the implementation did in one input of a master that maps to one model action: what it
/// sent and its post-state at the end of the input.
struct ExpectedInput {
    sends: Vec<Sent>,
    post: core::PostState,
}

impl<'a> Replayer<'a> {
    fn new(merged: &'a Merged, vocabulary: Vocabulary) -> Replayer<'a> {
        let state = State::initial(&vocabulary.config);
        Replayer {
            merged,
            state,
            archive: Archive::new(),
            open: (0..merged.nodes.len()).map(|_| None).collect(),
            path: Vec::new(),
            properties: checked_properties(),
            chosen_len: 0,
            stats: ReplayStats::default(),
            input_ends: input_ends(merged),
            next_of_node: next_of_node(merged),
            returned_forwards: returned_forwards(merged),
            vocabulary,
        }
    }

    fn config(&self) -> &Config {
        &self.vocabulary.config
    }

    fn event(&mut self, index: usize) -> Result<(), Box<Divergence>> {
        let event = &self.merged.events[index];
        let line = &event.line;
        if line.kind.starts_input() {
            let timer = matches!(line.kind, core::TraceKind::Timeout { .. });
            let same_tick = self.open[event.trace]
                .as_ref()
                .is_some_and(|open| open.timer && same_tick(open.input, &open.post, line));
            if !same_tick {
                if let Some(open) = self.open[event.trace].take() {
                    self.close(open)?;
                }
                self.open[event.trace] = Some(OpenInput {
                    start: index,
                    timer,
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
        }
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
            let sent =
                mapping::send_of(&self.vocabulary, line.origin, to, message).map_err(|error| {
                    Box::new(self.divergence(
                        index,
                        "a sent message cannot be mapped to the model",
                        None,
                        vec![error.to_string()],
                    ))
                })?;
            let open = self.open[event.trace].as_mut().expect("checked above");
            if event.receive.is_none()
                && !self.returned_forwards.contains(&index)
                && !matches!(party_of_endpoint(to), Party::Client(_))
            {
                open.lost.push(sent.clone());
            }
            open.implementation_sent.push(sent);
        }
        if self.input_ends[index] {
            if let Some(open) = self.open[event.trace].take() {
                self.close(open)?;
            }
        }
        Ok(())
    }

    /// Applies one mapped action (trying one silent step first if it is not enabled).
    fn apply_mapped(
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
        if compaction.repeated_reply {
            self.check_properties(index, When::ReplyDelivered)?;
        }
        Ok(())
    }

    /// Moves the state past `action`, after one silent step if that is what explains the trace
    /// (`silent_step_before`, `silent_step_then`). A silent timer can only explain an input of a
    /// master with a `Rejoin` outstanding; any other enabled action is taken in place, without
    /// a copy of the state.
    fn advance(&mut self, index: usize, action: &Action) -> Result<(), Box<Divergence>> {
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

    /// A master killed after its disk finished a write and before it traced the write's
    /// `Persist` restarts with the write (what waited for it never left: the host releases it
    /// only after tracing the `Persist`). So before a `Crash`, the silent `Persist`s (at most
    /// the master's pending writes, oldest first) after which the restart's post-state (event
    /// `index`) matches; none if no number does (the restart then reports the difference).
    fn persisted_before_crash(&self, index: usize, node: u8) -> usize {
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

    /// The divergence of a mapped action the model cannot take, even after a silent step.
    fn not_enabled(&self, index: usize, action: &Action) -> Divergence {
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

    /// One `Drop` of a message in flight that makes `action` enabled, if any.
    fn silent_step_then(&self, action: &Action) -> Option<(Action, State)> {
        let candidates: Vec<Action> = self
            .config()
            .enabled_actions(&self.state)
            .into_iter()
            .filter(|candidate| matches!(candidate, Action::Drop { .. }))
            .take(SILENT_CANDIDATES_MAX)
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
    fn silent_step_before(
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
    fn silent_timers(&self, node: u8) -> Vec<Action> {
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
    fn expected_input(&self, start: usize) -> Option<ExpectedInput> {
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
    fn input_matches(
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
    fn deliver_replies(&mut self) -> Result<(), Box<Divergence>> {
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

    /// Ends an input: sent messages, post-state, lost messages.
    fn close(&mut self, mut open: OpenInput) -> Result<(), Box<Divergence>> {
        open.model_sent.sort();
        open.implementation_sent.sort();
        if open.model_sent != open.implementation_sent {
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
            return Err(Box::new(self.divergence(
                open.start,
                "the messages sent differ",
                None,
                notes,
            )));
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
        for (source, destination, message) in open.lost {
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
                    open.start,
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

    fn check_properties(&self, index: usize, when: When) -> Result<(), Box<Divergence>> {
        for property in self
            .properties
            .iter()
            .filter(|property| property.when == when)
            // Decided per key at the end instead (`Replay::check_linearizable`).
            .filter(|property| property.name != "linearizable")
        {
            if !(property.condition)(self.config(), &self.state) {
                let index = index.min(self.merged.events.len().saturating_sub(1));
                return Err(Box::new(self.divergence(
                    index,
                    &format!(
                        "safety property `{}` violated on the replayed path",
                        property.name
                    ),
                    None,
                    Vec::new(),
                )));
            }
        }
        Ok(())
    }

    /// End of the trace: close every input, then completion and the end-of-run properties.
    fn finish(&mut self) -> Result<(), Box<Divergence>> {
        for trace in 0..self.open.len() {
            if let Some(open) = self.open[trace].take() {
                self.close(open)?;
            }
        }
        self.archive.restore(&mut self.state);
        let last = self.merged.events.len().saturating_sub(1);
        self.check_completions()?;
        self.check_linearizable(last)?;
        self.check_properties(last, When::End)?;
        self.check_properties(last, When::ReplyDelivered)
    }

    /// The model's `linearizable` on the replayed path's client history, decided per key
    /// within [`LINEARIZABLE_CHECK_LIMIT`]; undecided keys are reported in the stats.
    fn check_linearizable(&mut self, last: usize) -> Result<(), Box<Divergence>> {
        match linearizable_per_key(&self.state.history, LINEARIZABLE_CHECK_LIMIT) {
            Verdict::Linearizable => Ok(()),
            Verdict::Unknown { keys } => {
                self.stats.linearizable_undecided_keys = Some(keys);
                Ok(())
            }
            Verdict::NotLinearizable(anomaly) => {
                let verdict = Verdict::NotLinearizable(anomaly);
                Err(Box::new(self.divergence(
                    last,
                    "safety property `linearizable` violated on the replayed path",
                    None,
                    vec![verdict.to_string()],
                )))
            }
        }
    }

    /// Every request the proxy accepted has exactly one completion, in the trace and the model.
    fn check_completions(&self) -> Result<(), Box<Divergence>> {
        let mut counts: BTreeMap<(u64, u64), (usize, u32)> = BTreeMap::new();
        for (index, event) in self.merged.events.iter().enumerate() {
            match &event.line.kind {
                core::TraceKind::RequestAccepted { client, request_id } => {
                    counts.entry((*client, *request_id)).or_insert((index, 0));
                }
                core::TraceKind::RequestCompleted {
                    client, request_id, ..
                } => {
                    counts.entry((*client, *request_id)).or_insert((index, 0)).1 += 1;
                }
                _ => {}
            }
        }
        let wrong: Vec<String> = counts
            .iter()
            .filter(|(_, (_, completions))| *completions != 1)
            .map(|((client, request_id), (index, completions))| {
                format!("request c{client}#{request_id} (accepted at merged event #{index}) has {completions} completions")
            })
            .collect();
        if !wrong.is_empty() {
            let mut divergence = Divergence::new(format!(
                "{} accepted request(s) without exactly one completion at the end of the run",
                wrong.len()
            ));
            divergence.notes = wrong;
            divergence.model_state = describe_state(&self.state);
            divergence.path = self.path.clone();
            divergence.config = Some(self.config().clone());
            return Err(Box::new(divergence));
        }
        let ledger = self.state.proxy.ledger;
        if ledger.in_flight != 0 {
            let mut divergence = Divergence::new(format!(
                "the model's ledger has {} request(s) in flight at the end of the run",
                ledger.in_flight
            ));
            divergence.model_state = describe_state(&self.state);
            divergence.path = self.path.clone();
            divergence.config = Some(self.config().clone());
            return Err(Box::new(divergence));
        }
        Ok(())
    }

    fn divergence(
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

/// For each merged event, the next event of the same node's trace.
fn next_of_node(merged: &Merged) -> Vec<Option<usize>> {
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
fn same_tick(input: Option<u64>, post: &core::PostState, line: &crate::trace::TraceLine) -> bool {
    matches!(line.kind, core::TraceKind::Timeout { .. })
        && match (input, line.input) {
            (Some(previous), Some(current)) => previous == current,
            _ => *post == line.post,
        }
}

/// The proxy `Propose` sends that a `ForwardLost` of the same proxy takes back: for each
/// `ForwardLost { request_id }`, the proxy's latest earlier unreceived `Propose` of that
/// forwarding id (the one its host could not hand to a connection).
fn returned_forwards(merged: &Merged) -> HashSet<usize> {
    let mut unreceived: HashMap<(usize, u64), usize> = HashMap::new();
    let mut returned = HashSet::new();
    for (index, event) in merged.events.iter().enumerate() {
        match &event.line.kind {
            core::TraceKind::Send {
                message: core::Message::Propose { request_id, .. },
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
fn input_ends(merged: &Merged) -> Vec<bool> {
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

/// Field-by-field difference between the model's abstraction of `node` (or of the proxy) in
/// `state` and the observed post-state.
fn post_state_diff(state: &State, node: Option<u8>, post: &core::PostState) -> Vec<FieldDiff> {
    let mut diff = Vec::new();
    match post {
        core::PostState::Master(observed) => {
            let Some(node) = node else { return diff };
            if node as usize >= state.masters.len() {
                diff.push(FieldDiff {
                    field: "node",
                    expected: format!("< {}", state.masters.len()),
                    observed: node.to_string(),
                });
                return diff;
            }
            let expected = mapping::master_view(state, node);
            push_diff(&mut diff, "role", &expected.role, &observed.role);
            push_diff(
                &mut diff,
                "promised",
                &expected.promised,
                &observed.promised,
            );
            push_diff(&mut diff, "leader", &expected.leader, &observed.leader);
            push_diff(
                &mut diff,
                "commit_index",
                &expected.commit_index,
                &observed.commit_index,
            );
            push_diff(
                &mut diff,
                "last_slot",
                &expected.last_slot,
                &observed.last_slot,
            );
            push_diff(&mut diff, "active", &expected.active, &observed.active);
            push_diff(&mut diff, "evicted", &expected.evicted, &observed.evicted);
        }
        core::PostState::Proxy(observed) => {
            let expected = mapping::ledger_view(state);
            push_diff(
                &mut diff,
                "accepted",
                &expected.accepted,
                &observed.accepted,
            );
            push_diff(
                &mut diff,
                "completed_ok",
                &expected.completed_ok,
                &observed.completed_ok,
            );
            push_diff(
                &mut diff,
                "completed_err",
                &expected.completed_err,
                &observed.completed_err,
            );
            push_diff(
                &mut diff,
                "in_flight",
                &expected.in_flight,
                &observed.in_flight,
            );
            push_diff(
                &mut diff,
                "late_replies",
                &expected.late_replies,
                &observed.late_replies,
            );
            push_diff(
                &mut diff,
                "dropped_unanswered",
                &expected.dropped_unanswered,
                &observed.dropped_unanswered,
            );
        }
    }
    diff
}

fn push_diff<T: PartialEq + std::fmt::Debug>(
    diff: &mut Vec<FieldDiff>,
    field: &'static str,
    expected: &T,
    observed: &T,
) {
    if expected != observed {
        diff.push(FieldDiff {
            field,
            expected: format!("{expected:?}"),
            observed: format!("{observed:?}"),
        });
    }
}

/// The endpoint whose messages an action sends.
fn actor_of(action: &Action) -> Endpoint {
    match action {
        Action::Deliver { destination, .. } => *destination,
        Action::Drop { source, .. } => *source,
        Action::ElectionTimeout(node)
        | Action::HeartbeatTimeout(node)
        | Action::CheckQuorumTimeout(node)
        | Action::RejoinWaitExpired(node)
        | Action::Persist(node)
        | Action::Pause(node)
        | Action::Resume(node)
        | Action::Crash(node)
        | Action::Restart(node) => Endpoint::Master(*node),
        Action::RequestTimeout(_) | Action::ForwardLost(_) => Endpoint::Proxy,
        Action::ClientRequest(client) => Endpoint::Client(*client),
    }
}

/// What `actor` put on its links between `before` and `after` (clients are untraced: none).
fn sent_by(
    actor: Endpoint,
    before: &BTreeMap<vigil_model::Link, Vec<Message>>,
    after: &BTreeMap<vigil_model::Link, Vec<Message>>,
) -> Vec<Sent> {
    if matches!(actor, Endpoint::Client(_)) {
        return Vec::new();
    }
    let mut sent = Vec::new();
    for ((source, destination), messages) in after.range((actor, Endpoint::Master(0))..) {
        if *source != actor {
            break;
        }
        let old = before
            .get(&(*source, *destination))
            .map_or(&[][..], Vec::as_slice);
        let new = if messages.len() >= old.len() && messages[..old.len()] == *old {
            &messages[old.len()..]
        } else {
            &messages[..]
        };
        sent.extend(
            new.iter()
                .map(|message| (*source, *destination, message.clone())),
        );
    }
    sent
}

/// Elements of sorted `left` not matched in sorted `right` (multiset difference).
fn difference(left: &[Sent], right: &[Sent]) -> Vec<Sent> {
    let mut remaining: Vec<&Sent> = right.iter().collect();
    let mut only = Vec::new();
    for item in left {
        match remaining.iter().position(|candidate| *candidate == item) {
            Some(position) => {
                remaining.remove(position);
            }
            None => only.push(item.clone()),
        }
    }
    only
}

/// The model's client history as the per-key checker's records (`nemesis::linearizability`),
/// checked within `limit`: each request its own client, history positions as its times; a
/// definite answer is `Ok`, a refusal (a return without a result) did not take effect, and a
/// request without a return is indeterminate — the model's `linearizable`, decided per key.
pub fn linearizable_per_key(
    history: &[vigil_model::state::HistoryEvent],
    limit: std::time::Duration,
) -> Verdict {
    use vigil_model::state::HistoryEvent;
    let mut records: BTreeMap<u32, Record> = BTreeMap::new();
    for (position, event) in history.iter().enumerate() {
        match event {
            HistoryEvent::Invoke {
                request_id,
                operation,
            } => {
                let (key, call) = call_of(operation);
                records.insert(
                    *request_id,
                    Record {
                        client: *request_id as usize,
                        key: format!("k{key}").into_bytes(),
                        call,
                        invoked_ns: position as u64,
                        completed_ns: u64::MAX,
                        outcome: Outcome::Unknown("no return".to_string()),
                    },
                );
            }
            HistoryEvent::Return { request_id, result } => {
                if let Some(record) = records.get_mut(request_id) {
                    record.completed_ns = position as u64;
                    record.outcome = match result {
                        None => Outcome::Failed("refused".to_string()),
                        Some(result) => Outcome::Ok(result_of(result)),
                    };
                }
            }
        }
    }
    let records: Vec<Record> = records.into_values().collect();
    linearizability::check(&records, limit)
}

/// A model operation as the checker's key and call (values are one byte: the model's index).
fn call_of(operation: &vigil_model::types::Operation) -> (vigil_model::types::Key, Call) {
    use vigil_model::types::Operation;
    match *operation {
        Operation::Get { key } => (key, Call::Get),
        Operation::Put { key, value } => (key, Call::Put { value: vec![value] }),
        Operation::Cas {
            key,
            expected_version,
            value,
        } => (
            key,
            Call::Cas {
                expected_version: u64::from(expected_version),
                value: vec![value],
            },
        ),
        Operation::Delete { key } => (key, Call::Delete),
    }
}

/// A model result as the implementation's.
fn result_of(result: &vigil_model::types::OperationResult) -> core::OperationResult {
    use vigil_model::types::OperationResult;
    match *result {
        OperationResult::Value { value, version } => core::OperationResult::Value {
            value: value.map(|value| vec![value]),
            version: u64::from(version),
        },
        OperationResult::Written { version } => core::OperationResult::Written {
            version: u64::from(version),
        },
        OperationResult::VersionMismatch { current_version } => {
            core::OperationResult::VersionMismatch {
                current_version: u64::from(current_version),
            }
        }
        OperationResult::Deleted { version } => core::OperationResult::Deleted {
            version: u64::from(version),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use vigil_model::state::HistoryEvent;
    use vigil_model::types::{Operation, OperationResult};

    /// The model's own `linearizable` (stateright's tester) on `history`.
    fn model_linearizable(history: &[HistoryEvent]) -> bool {
        let config = vigil_model::presets::ci_pause().config;
        let mut state = State::initial(&config);
        state.history = history.to_vec();
        let property = vigil_model::properties::all()
            .into_iter()
            .find(|property| property.name == "linearizable")
            .expect("the model has `linearizable`");
        (property.condition)(&config, &state)
    }

    fn decided(history: &[HistoryEvent]) -> bool {
        match linearizable_per_key(history, LINEARIZABLE_CHECK_LIMIT) {
            Verdict::Linearizable => true,
            Verdict::NotLinearizable(_) => false,
            Verdict::Unknown { keys } => panic!("undecided: {keys:?}"),
        }
    }

    fn invoke(request_id: u32, operation: Operation) -> HistoryEvent {
        HistoryEvent::Invoke {
            request_id,
            operation,
        }
    }

    fn returned(request_id: u32, result: Option<OperationResult>) -> HistoryEvent {
        HistoryEvent::Return { request_id, result }
    }

    #[test]
    fn a_read_that_misses_an_acknowledged_delete_is_not_linearizable() {
        let put = Operation::Put { key: 0, value: 1 };
        let delete = Operation::Delete { key: 0 };
        let get = Operation::Get { key: 0 };
        let mut history = vec![
            invoke(1, put),
            returned(1, Some(OperationResult::Written { version: 1 })),
            invoke(2, delete),
            returned(2, Some(OperationResult::Deleted { version: 2 })),
            invoke(3, get),
            returned(
                3,
                Some(OperationResult::Value {
                    value: Some(1),
                    version: 1,
                }),
            ),
        ];
        assert!(!decided(&history));
        assert!(!model_linearizable(&history));
        history[5] = returned(
            3,
            Some(OperationResult::Value {
                value: None,
                version: 2,
            }),
        );
        assert!(decided(&history));
        assert!(model_linearizable(&history));
    }

    /// Many indeterminate writes on one key: what stateright's tester never finished (sim seed
    /// 61 with `slow-disk`) the memoised search decides at once.
    #[test]
    fn many_indeterminate_writes_are_decided_quickly() {
        let mut history = Vec::new();
        for request_id in 1..=24u32 {
            history.push(invoke(
                request_id,
                Operation::Put {
                    key: 0,
                    value: request_id as u8,
                },
            ));
        }
        for request_id in 25..=60u32 {
            history.push(invoke(request_id, Operation::Get { key: 0 }));
            history.push(returned(
                request_id,
                Some(OperationResult::Value {
                    value: Some(24),
                    version: 24,
                }),
            ));
        }
        let started = Instant::now();
        assert!(decided(&history));
        assert!(started.elapsed() < LINEARIZABLE_CHECK_LIMIT);
    }

    fn operation() -> impl Strategy<Value = Operation> {
        let key = 0..2u8;
        let value = 1..3u8;
        prop_oneof![
            key.clone().prop_map(|key| Operation::Get { key }),
            (key.clone(), value.clone()).prop_map(|(key, value)| Operation::Put { key, value }),
            (key.clone(), 0..3u32, value).prop_map(|(key, expected_version, value)| {
                Operation::Cas {
                    key,
                    expected_version,
                    value,
                }
            }),
            key.prop_map(|key| Operation::Delete { key }),
        ]
    }

    fn result() -> impl Strategy<Value = Option<OperationResult>> {
        let version = 0..4u32;
        prop_oneof![
            Just(None),
            (proptest::option::of(1..3u8), version.clone())
                .prop_map(|(value, version)| Some(OperationResult::Value { value, version })),
            version
                .clone()
                .prop_map(|version| Some(OperationResult::Written { version })),
            version
                .clone()
                .prop_map(|current_version| Some(OperationResult::VersionMismatch {
                    current_version
                })),
            version.prop_map(|version| Some(OperationResult::Deleted { version })),
        ]
    }

    /// A history of up to 6 requests: each invoked in turn, each return (or none: an
    /// indeterminate request) placed after its invocation at a drawn position.
    fn history() -> impl Strategy<Value = Vec<HistoryEvent>> {
        proptest::collection::vec((operation(), result(), any::<bool>(), 0..12usize), 1..7)
            .prop_map(|requests| {
                let mut events: Vec<(usize, HistoryEvent)> = Vec::new();
                for (index, (operation, result, returns, delay)) in requests.into_iter().enumerate()
                {
                    let request_id = index as u32 + 1;
                    let at = index * 2;
                    events.push((at, invoke(request_id, operation)));
                    if returns {
                        events.push((at + 1 + delay, returned(request_id, result)));
                    }
                }
                events.sort_by_key(|(at, _)| *at);
                events.into_iter().map(|(_, event)| event).collect()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        /// The per-key check and the model's `linearizable` agree on every small history.
        #[test]
        fn the_per_key_check_agrees_with_the_model(history in history()) {
            prop_assert_eq!(decided(&history), model_linearizable(&history), "{:?}", history);
        }
    }
}
