//! Compaction of a state being replayed: conformance's replay steps the model through traces of
//! hundreds of thousands of events, and a state that keeps every log entry, chosen slot, client
//! reply and history event of the run makes each step (a clone of the state) cost more than the
//! last. The exhaustive check never calls this: its states stay as the handlers build them.
//!
//! What is taken out, and why no later step can tell:
//! - the log prefix every master has committed, and the `chosen` slots of that prefix. Below
//!   its commit index a master's log is final (§4.2) and no handler reads it, except to answer
//!   a `Prepare` or a `Rejoin` with the entries above the commit index it carries (§3.2, §6.3)
//!   and to apply a slot (for its result, from [`Compacted::stores`]). So the prefix is cut at
//!   the *floor*: the lowest commit index of any master and of any `Prepare` or `Rejoin` in
//!   flight (or held for a disk write), and below any slot of a pending write. When the floor falls below the cut (a crash sets a master's commit index to 0,
//!   §8), everything is put back before the next step;
//! - the client history: only `linearizable` reads it, at the end of the run;
//! - the reply records of requests before each client's last: a client's next request waits
//!   only for the reply to its last one. A reply to a request whose record was taken out would
//!   be a second completion: compaction merges the counts back and keeps that record in the
//!   state, where `complete_at_most_once` sees it.
//!
//! Properties evaluated on a compacted state see the live part only: `validity` checks the
//! chosen slots above the cut (each was checked when it was chosen, and stays valid: a client's
//! `sent` only grows), `agreement` compares each new commit with the chosen command of its slot
//! (always above the cut, since the slot is above the committing master's commit index), and
//! the end of a replay puts everything back ([`Archive::restore`]) before the end-of-run
//! properties. With revisioned clients nothing is taken out but reply records: their
//! properties read the whole chosen history (`watch_in_order_exactly_once`), their history
//! events are placed among the register ones by position (`KvHistoryEvent::after`), and a
//! subscription or a `Range` at an older revision reads the store's history, which a cut
//! store would have to carry.

use std::collections::BTreeMap;

use crate::kv::KeyValueStore;
use crate::message::Message;
use crate::state::{Compacted, HistoryEvent, Log, ReplyRecord, State};
use crate::types::{Command, RequestId, Slot};
use crate::Config;

/// Committed slots gathered above the cut before the cut moves (amortizes the split of logs).
pub const COMPACTION_SLOTS_MIN: Slot = 64;

/// History events gathered in the state before they are handed to the archive.
pub const COMPACTION_HISTORY_EVENTS_MIN: usize = 64;

/// Reply records a client keeps in the state before the older ones are archived.
pub const COMPACTION_REPLIES_MIN: usize = 16;

/// What compaction took out of a state, kept by the replay so that it can be put back.
#[derive(Clone, Debug)]
pub struct Archive {
    /// How much gathers in the state before it is taken out.
    minimums: Minimums,
    /// Per master, its log entries of slots `1..=state.compacted.through`.
    logs: Vec<Log>,
    /// The chosen commands of slots `1..=state.compacted.through`.
    chosen: BTreeMap<Slot, Command>,
    /// The client history taken out, oldest first (everything before the state's).
    history: Vec<HistoryEvent>,
    /// Per client, the reply records taken out.
    replies: Vec<BTreeMap<RequestId, ReplyRecord>>,
}

/// How much gathers in the state before compaction takes it out: the defaults amortize the work;
/// tests take everything out at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Minimums {
    /// Committed slots above the cut before the cut moves.
    pub slots: Slot,
    /// History events in the state before they are archived.
    pub history_events: usize,
    /// Reply records of a client in the state before the older ones are archived.
    pub replies: usize,
}

impl Default for Minimums {
    fn default() -> Minimums {
        Minimums {
            slots: COMPACTION_SLOTS_MIN,
            history_events: COMPACTION_HISTORY_EVENTS_MIN,
            replies: COMPACTION_REPLIES_MIN,
        }
    }
}

/// What one compaction found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compaction {
    /// A reply arrived for a request whose record was archived: the merged record (counted
    /// twice or more) is back in the state.
    pub repeated_reply: bool,
}

/// The lowest slot a later step may read entries above: the commit index of every master and of
/// every `Prepare` and `Rejoin` in flight or waiting for its sender's disk, and below every slot
/// of a pending write (a crash puts back what the disk held there, `crate::disk`).
pub fn floor(state: &State) -> Slot {
    let masters = state.masters.iter().map(|master| master.commit_index);
    let pending = state
        .masters
        .iter()
        .flat_map(|master| &master.pending_writes);
    let held = pending
        .clone()
        .flat_map(|write| write.messages.iter().map(|(_, message)| message));
    let asked = state
        .network
        .values()
        .flatten()
        .chain(held)
        .filter_map(|message| match message {
            Message::Prepare { commit_index, .. } | Message::Rejoin { commit_index, .. } => {
                Some(*commit_index)
            }
            _ => None,
        });
    let written = pending
        .flat_map(|write| &write.entries_before)
        .map(|(slot, _)| slot.saturating_sub(1));
    masters.chain(asked).chain(written).min().unwrap_or(0)
}

impl Default for Archive {
    fn default() -> Archive {
        Archive::new()
    }
}

impl Archive {
    /// An empty archive (nothing taken out yet) with the default [`Minimums`].
    pub fn new() -> Archive {
        Archive::with_minimums(Minimums::default())
    }

    /// An empty archive that takes things out once `minimums` have gathered.
    pub fn with_minimums(minimums: Minimums) -> Archive {
        assert!(minimums.slots >= 1, "a cut moves by one slot at least");
        Archive {
            minimums,
            logs: Vec::new(),
            chosen: BTreeMap::new(),
            history: Vec::new(),
            replies: Vec::new(),
        }
    }

    /// Chosen slots taken out of the state.
    pub fn chosen_len(&self) -> usize {
        self.chosen.len()
    }

    /// History events taken out of the state.
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// Takes out of `state` what no later step reads (or puts the log prefix back when the
    /// floor fell below the cut). Call it between steps, after the step's properties.
    pub fn compact(&mut self, config: &Config, state: &mut State) -> Compaction {
        // Revisioned clients: only reply records (see the module documentation).
        if !config.kv_clients.is_empty() {
            return self.archive_replies(config, state);
        }
        let floor = floor(state);
        if floor < state.compacted.through {
            self.restore_prefix(state);
        }
        if floor >= state.compacted.through + self.minimums.slots {
            self.cut_prefix(config, state, floor);
        }
        if state.history.len() >= self.minimums.history_events {
            self.history.append(&mut state.history);
        }
        self.archive_replies(config, state)
    }

    /// Puts everything back: `state` is then the state the model would have without compaction.
    pub fn restore(&mut self, state: &mut State) {
        self.restore_prefix(state);
        let mut history = std::mem::take(&mut self.history);
        history.append(&mut state.history);
        state.history = history;
        for (client, archived) in self.replies.iter_mut().enumerate() {
            let live = std::mem::take(&mut state.clients[client].replies);
            let mut replies = std::mem::take(archived);
            merge_replies(&mut replies, live);
            state.clients[client].replies = replies;
        }
    }

    /// A copy of `state` with everything put back (for reports).
    pub fn restored(&self, state: &State) -> State {
        let mut copy = state.clone();
        self.clone().restore(&mut copy);
        copy
    }

    /// Moves slots `through + 1..=floor` of every log and of `chosen` into the archive, and
    /// folds them into each master's store.
    fn cut_prefix(&mut self, config: &Config, state: &mut State, floor: Slot) {
        let through = state.compacted.through;
        let masters = state.masters.len();
        self.logs.resize_with(masters, Log::new);
        state
            .compacted
            .stores
            .resize_with(masters, || KeyValueStore::for_master(config));
        for (node, master) in state.masters.iter_mut().enumerate() {
            let store = &mut state.compacted.stores[node];
            store.apply_log(&master.log, through, floor);
            let live = master.log.split_off(&(floor + 1));
            let mut prefix = std::mem::replace(&mut master.log, live);
            self.logs[node].append(&mut prefix);
        }
        let live = state.ghost.chosen.split_off(&(floor + 1));
        let mut prefix = std::mem::replace(&mut state.ghost.chosen, live);
        self.chosen.append(&mut prefix);
        state.compacted.through = floor;
    }

    /// Puts the log prefix and the chosen slots back; the cut goes back to 0. Entries in the
    /// state win over archived ones of the same slot; a chosen slot in both with two commands
    /// is an agreement violation.
    fn restore_prefix(&mut self, state: &mut State) {
        if state.compacted.through == 0 {
            return;
        }
        for (node, master) in state.masters.iter_mut().enumerate() {
            let mut log = std::mem::take(&mut self.logs[node]);
            log.append(&mut master.log);
            master.log = log;
        }
        let mut chosen = std::mem::take(&mut self.chosen);
        for (slot, command) in std::mem::take(&mut state.ghost.chosen) {
            if chosen
                .get(&slot)
                .is_some_and(|archived| *archived != command)
            {
                state.ghost.agreement_violated = true;
                continue;
            }
            chosen.insert(slot, command);
        }
        state.ghost.chosen = chosen;
        state.compacted = Compacted::default();
    }

    /// Archives the reply records of every client that keeps more than `minimums.replies`,
    /// except the record of its last request (which its next
    /// request waits for) and records counted more than once.
    fn archive_replies(&mut self, config: &Config, state: &mut State) -> Compaction {
        let mut compaction = Compaction::default();
        self.replies
            .resize_with(state.clients.len(), BTreeMap::default);
        let mut first_request = 0usize;
        for (client, progress) in state.clients.iter_mut().enumerate() {
            let scripted = config
                .clients
                .get(client)
                .map_or(0, |script| script.operations.len());
            let last = (progress.sent as usize)
                .checked_sub(1)
                .map(|index| (first_request + index) as RequestId);
            first_request += scripted;
            let archived = &mut self.replies[client];
            let repeated = progress
                .replies
                .keys()
                .any(|request_id| archived.contains_key(request_id));
            if progress.replies.len() <= self.minimums.replies && !repeated {
                continue;
            }
            let mut kept = BTreeMap::new();
            for (request_id, record) in std::mem::take(&mut progress.replies) {
                let record = match archived.remove(&request_id) {
                    Some(old) => {
                        compaction.repeated_reply = true;
                        merged(old, record)
                    }
                    None => record,
                };
                if Some(request_id) == last || record.count > 1 {
                    kept.insert(request_id, record);
                } else {
                    archived.insert(request_id, record);
                }
            }
            progress.replies = kept;
        }
        compaction
    }
}

/// One record for two of the same request: the counts add up, the first outcome stays.
fn merged(first: ReplyRecord, second: ReplyRecord) -> ReplyRecord {
    ReplyRecord {
        count: first.count.saturating_add(second.count),
        outcome: first.outcome,
    }
}

/// Merges `live` into `into` (records of one request add up).
fn merge_replies(
    into: &mut BTreeMap<RequestId, ReplyRecord>,
    live: BTreeMap<RequestId, ReplyRecord>,
) {
    for (request_id, record) in live {
        let record = match into.remove(&request_id) {
            Some(old) => merged(old, record),
            None => record,
        };
        into.insert(request_id, record);
    }
}
