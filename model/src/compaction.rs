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
//!   flight (or held for a disk write), and below any slot of a pending write. When the floor
//!   falls below the cut (a crash sets a master's commit index to 0, §8), everything is put
//!   back before the next step;
//! - the application of each master's committed log: its store after its log through its own
//!   commit index (below any slot of a pending write) is kept in [`Compacted::stores`] and
//!   moved forward as it commits, so that a handler asking for its store (at its commit index
//!   or above, the only slots a handler asks for) applies only the slots above, however far
//!   behind another master holds the floor. A store ahead of its master's commit index (after a
//!   crash) is dropped with everything else put back;
//! - the client history: only `linearizable` reads it, at the end of the run. Without
//!   revisioned clients only: a revisioned history event is placed among the register ones by
//!   its position (`KvHistoryEvent::after`), so with them the register history stays whole;
//! - the reply records of requests before each client's last, of both APIs: a client's next
//!   request waits only for the reply to its last one. A reply to a request whose record was
//!   taken out would be a second completion: compaction merges the counts back and keeps that
//!   record in the state, where `complete_at_most_once` sees it.
//!
//! What a cut prefix leaves behind for the revisioned API: each master's store keeps its
//! history of revisions (a subscription or a `Range` at an older revision reads it), shared by
//! every copy of the store (`crate::revision_history`), and [`Compacted::reference`] is the
//! reference store after the chosen slots of the prefix, from which the highest revision chosen
//! is computed (`State::chosen_store`).
//!
//! Properties evaluated on a compacted state see the live part only: `validity` checks the
//! chosen slots above the cut (each was checked when it was chosen, and stays valid: a client's
//! `sent` only grows), `agreement` compares each new commit with the chosen command of its slot
//! (always above the cut, since the slot is above the committing master's commit index), and
//! the end of a replay puts everything back ([`Archive::restore`]) before the end-of-run
//! properties. `revision_monotone` and `watch_in_order_exactly_once` read the whole run (every
//! reply, the whole chosen history): a replay judges them with checks kept along its path
//! (`crate::revision_properties::RevisionCheck` and `WatchCheck`), which read only what each
//! state adds and so need nothing that was taken out.

use std::collections::BTreeMap;

use crate::kv::KeyValueStore;
use crate::message::Message;
use crate::state::{
    AppliedStore, Compacted, HistoryEvent, KvReplyRecord, Log, Master, ReplyRecord, State,
};
use crate::types::{ClientId, Command, RequestId, Slot};
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
    /// Per client, the revisioned reply records taken out.
    kv_replies: Vec<BTreeMap<RequestId, KvReplyRecord>>,
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

/// The last slot of `master`'s log that is final: its commit index, below every slot of a
/// pending write.
fn applied_floor(master: &Master) -> Slot {
    let written = master
        .pending_writes
        .iter()
        .flat_map(|write| &write.entries_before);
    let below_written = written.map(|(slot, _)| slot.saturating_sub(1));
    below_written.fold(master.commit_index, Slot::min)
}

/// Moves each master's store to the last final slot of its log ([`applied_floor`]), creating
/// the stores at the first compaction: a step then applies only the slots it commits, however
/// far the cut lags (a paused or cut-off master holds the cut back, not the others' stores).
fn advance_stores(config: &Config, state: &mut State) {
    let stores = &mut state.compacted.stores;
    if stores.is_empty() {
        let empty = AppliedStore {
            through: 0,
            store: KeyValueStore::for_master(config),
        };
        stores.resize(state.masters.len(), empty);
    }
    for (applied, master) in stores.iter_mut().zip(&state.masters) {
        let target = applied_floor(master);
        if target > applied.through {
            applied
                .store
                .apply_log(&master.log, applied.through, target);
            applied.through = target;
        }
    }
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
            kv_replies: Vec::new(),
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
        let floor = floor(state);
        let store_ahead = (state.compacted.stores.iter().zip(&state.masters))
            .any(|(applied, master)| applied_floor(master) < applied.through);
        if floor < state.compacted.through || store_ahead {
            self.restore_prefix(state);
        }
        advance_stores(config, state);
        if floor >= state.compacted.through + self.minimums.slots {
            self.cut_prefix(config, state, floor);
        }
        let revisioned = !config.kv_clients.is_empty();
        if !revisioned && state.history.len() >= self.minimums.history_events {
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
        for (client, archived) in self.kv_replies.iter_mut().enumerate() {
            let live = std::mem::take(&mut state.clients[client].kv_replies);
            let mut replies = std::mem::take(archived);
            merge_replies(&mut replies, live);
            state.clients[client].kv_replies = replies;
        }
    }

    /// A copy of `state` with everything put back (for reports).
    pub fn restored(&self, state: &State) -> State {
        let mut copy = state.clone();
        self.clone().restore(&mut copy);
        copy
    }

    /// Moves slots `through + 1..=floor` of every log and of `chosen` into the archive (each
    /// master's store is past them already, [`advance_stores`]), and folds the chosen ones into
    /// the reference store. The archive's maps grow by `extend`, not `append`, which would
    /// rebuild them whole at every cut.
    fn cut_prefix(&mut self, config: &Config, state: &mut State, floor: Slot) {
        let masters = state.masters.len();
        self.logs.resize_with(masters, Log::new);
        for (node, master) in state.masters.iter_mut().enumerate() {
            let applied = state.compacted.stores[node].through;
            assert!(
                applied >= floor,
                "master {node}'s store ({applied}) below the cut {floor}"
            );
            let live = master.log.split_off(&(floor + 1));
            let prefix = std::mem::replace(&mut master.log, live);
            self.logs[node].extend(prefix);
        }
        let live = state.ghost.chosen.split_off(&(floor + 1));
        let prefix = std::mem::replace(&mut state.ghost.chosen, live);
        let reference = state
            .compacted
            .reference
            .get_or_insert_with(|| KeyValueStore::reference(config));
        for command in prefix.values() {
            reference.apply_command(command);
        }
        self.chosen.extend(prefix);
        state.compacted.through = floor;
    }

    /// Puts the log prefix and the chosen slots back; the cut goes back to 0. Entries in the
    /// state win over archived ones of the same slot; a chosen slot in both with two commands
    /// is an agreement violation.
    fn restore_prefix(&mut self, state: &mut State) {
        if state.compacted.through == 0 {
            state.compacted = Compacted::default();
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

    /// Archives the reply records of every client that keeps more than `minimums.replies` of
    /// either API, except the record of its last request (which its next request waits for)
    /// and records counted more than once.
    fn archive_replies(&mut self, config: &Config, state: &mut State) -> Compaction {
        let clients = state.clients.len();
        self.replies.resize_with(clients, BTreeMap::default);
        self.kv_replies.resize_with(clients, BTreeMap::default);
        let minimum = self.minimums.replies;
        let mut repeated_reply = false;
        for (client, progress) in state.clients.iter_mut().enumerate() {
            let last = (progress.sent as usize)
                .checked_sub(1)
                .map(|index| config.request_id(client as ClientId, index));
            let archived = &mut self.replies[client];
            repeated_reply |= archive_records(&mut progress.replies, archived, last, minimum);
            let archived = &mut self.kv_replies[client];
            repeated_reply |= archive_records(&mut progress.kv_replies, archived, last, minimum);
        }
        Compaction { repeated_reply }
    }
}

/// A client's record of the replies to one request, of either API.
trait Record {
    /// Replies received.
    fn count(&self) -> u8;
    /// One record for two of the same request: the counts add up, the first outcome stays.
    fn merged(self, later: Self) -> Self;
}

impl Record for ReplyRecord {
    fn count(&self) -> u8 {
        self.count
    }

    fn merged(self, later: ReplyRecord) -> ReplyRecord {
        ReplyRecord {
            count: self.count.saturating_add(later.count),
            outcome: self.outcome,
        }
    }
}

impl Record for KvReplyRecord {
    fn count(&self) -> u8 {
        self.count
    }

    fn merged(self, later: KvReplyRecord) -> KvReplyRecord {
        KvReplyRecord {
            count: self.count.saturating_add(later.count),
            outcome: self.outcome,
        }
    }
}

/// Moves `live`'s records into `archived` once it holds more than `minimum` or a record of an
/// archived request, except the record of request `last` and records counted more than once;
/// whether a reply came for an archived request (its merged record is back in `live`). Only
/// live records up to the highest archived request can be such replies, and there are few: the
/// ones kept at the last archiving and a late reply.
fn archive_records<R: Record>(
    live: &mut BTreeMap<RequestId, R>,
    archived: &mut BTreeMap<RequestId, R>,
    last: Option<RequestId>,
    minimum: usize,
) -> bool {
    let repeated = archived.keys().next_back().is_some_and(|highest| {
        live.range(..=*highest)
            .any(|(request_id, _)| archived.contains_key(request_id))
    });
    if live.len() <= minimum && !repeated {
        return false;
    }
    for (request_id, record) in std::mem::take(live) {
        let record = match archived.remove(&request_id) {
            Some(old) => old.merged(record),
            None => record,
        };
        if Some(request_id) == last || record.count() > 1 {
            live.insert(request_id, record);
        } else {
            archived.insert(request_id, record);
        }
    }
    repeated
}

/// Merges `live` into `into` (records of one request add up).
fn merge_replies<R: Record>(into: &mut BTreeMap<RequestId, R>, live: BTreeMap<RequestId, R>) {
    for (request_id, record) in live {
        let record = match into.remove(&request_id) {
            Some(old) => old.merged(record),
            None => record,
        };
        into.insert(request_id, record);
    }
}
