//! The properties of the revisioned API (`docs/protocol.md` §18): revisions only grow, a `Txn`
//! applies all or nothing, every watch delivers exactly the committed history of its range in
//! order and ends exactly once, and a compacted revision is never served; and the witnesses
//! that show the ci presets reach what these properties are about.
//!
//! Each is judged on what the clients received (`Client::kv_replies`, `Client::watches`)
//! against the committed history (`Ghost::chosen` applied to the reference store), or on a
//! ghost flag set by the step that breaks it. With no revisioned client every one of them holds
//! at once (and no witness is reached), so the protocol's presets and conformance's replays pay
//! nothing for them.

use crate::config::Config;
use crate::kv::KeyValueStore;
use crate::kv_types::{
    KvResult, Revision, RevisionEvents, TxnOperationResult, WatchEnd, WatchId, WatchRequest,
};
use crate::state::{Client, State, WatchRecord};
use crate::types::{RequestId, Slot};
use stateright::Property;
use std::collections::BTreeMap;

/// The safety properties, then the witnesses.
pub fn all() -> Vec<Property<Config>> {
    vec![
        Property::always("revision_monotone", revision_monotone),
        Property::always("txn_atomic", |_, state: &State| {
            !state.ghost.txn_partially_applied
        }),
        Property::always("watch_in_order_exactly_once", watch_in_order_exactly_once),
        Property::always("watch_ends_once", watch_ends_once),
        Property::always("watch_from_now_misses_nothing", |_, state: &State| {
            !state.ghost.watch_from_now_missed
        }),
        Property::always("compacted_never_served", |_, state: &State| {
            !state.ghost.compacted_served
        }),
        Property::sometimes("txn_failure_branch_taken", |config, state: &State| {
            revisioned(config)
                && kv_results(state)
                    .any(|result| matches!(result, KvResult::Txn(txn) if !txn.succeeded))
        }),
        Property::sometimes("range_with_more", |config, state: &State| {
            revisioned(config) && kv_results(state).any(answers_more)
        }),
        Property::sometimes("read_below_compaction_refused", |config, state: &State| {
            revisioned(config)
                && kv_results(state).any(|result| matches!(result, KvResult::Compacted { .. }))
        }),
        Property::sometimes("watch_ended_by_compaction", |config, state: &State| {
            revisioned(config)
                && watch_ended(state, |end| matches!(end, WatchEnd::Compacted { .. }))
        }),
        Property::sometimes(
            "watch_resumed_across_leader_change",
            |config, state: &State| {
                revisioned(config) && state.ghost.watch_resumed_across_leader_change
            },
        ),
        Property::sometimes("watch_cancelled", |config, state: &State| {
            revisioned(config) && watch_ended(state, |end| end == WatchEnd::Cancelled)
        }),
        Property::sometimes("watch_from_now_delivered", |config, state: &State| {
            revisioned(config) && watch_from_now_delivered(config, state)
        }),
        Property::sometimes("watch_progress_notified", |config, state: &State| {
            revisioned(config) && watch_records(state).any(|(_, record)| record.progress.is_some())
        }),
        Property::sometimes("watch_unknown_cluster_ended", |config, state: &State| {
            revisioned(config) && watch_ended(state, |end| end == WatchEnd::UnknownCluster)
        }),
        Property::sometimes("watch_overflowed", |config, state: &State| {
            revisioned(config) && watch_ended(state, |end| end == WatchEnd::Overflow)
        }),
        Property::sometimes("watch_client_gone", |config, state: &State| {
            revisioned(config) && watch_client_gone(config, state)
        }),
    ]
}

/// Whether `config` has revisioned clients: without them every property here holds and no
/// witness is reached, checked first so that the protocol's presets pay nothing.
fn revisioned(config: &Config) -> bool {
    !config.kv_clients.is_empty()
}

/// Every result a client got for a revisioned request.
fn kv_results(state: &State) -> impl Iterator<Item = &KvResult> {
    state.clients.iter().flat_map(|client| {
        client
            .kv_replies
            .values()
            .filter_map(|record| record.outcome.as_ref().ok())
    })
}

/// Every watch record, with its id.
fn watch_records(state: &State) -> impl Iterator<Item = (u32, &WatchRecord)> {
    state.clients.iter().flat_map(|client| {
        client
            .watches
            .iter()
            .map(|(watch_id, record)| (*watch_id, record))
    })
}

fn watch_ended(state: &State, outcome: impl Fn(WatchEnd) -> bool) -> bool {
    watch_records(state).any(|(_, record)| record.end.is_some_and(&outcome))
}

/// A range answered `more`, alone or in a `Txn`.
fn answers_more(result: &KvResult) -> bool {
    match result {
        KvResult::Range(range) => range.more,
        KvResult::Txn(txn) => txn
            .responses
            .iter()
            .any(|response| matches!(response, TxnOperationResult::Range(range) if range.more)),
        _ => false,
    }
}

/// A watch from revision 0 received an event.
fn watch_from_now_delivered(config: &Config, state: &State) -> bool {
    watch_records(state).any(|(watch_id, record)| {
        let from_now = config
            .watch_request_of(watch_id)
            .is_some_and(|request| request.start_revision == 0);
        from_now && !record.events.is_empty()
    })
}

/// What watch `watch_id` asks for, with a start at revision 0 ("now") replaced by the one the
/// proxy resolved it to (`Revision::MAX` while unresolved: it is owed nothing yet).
fn resolved_request(config: &Config, state: &State, watch_id: u32) -> Option<WatchRequest> {
    let mut request = config.watch_request_of(watch_id)?;
    if request.start_revision == 0 {
        let now = state.ghost.watches_from_now.get(&watch_id);
        request.start_revision = now.and_then(|now| now.start).unwrap_or(Revision::MAX);
    }
    Some(request)
}

/// A client closed its connection with a watch open, and the proxy ended it (`ClientGone`
/// sends nothing: the watch was created, never heard to end, and the proxy holds no watch of
/// the client).
fn watch_client_gone(config: &Config, state: &State) -> bool {
    (0..state.clients.len()).any(|client| {
        let progress = &state.clients[client];
        let held = state
            .proxy
            .watches
            .values()
            .any(|watch| watch.client as usize == client);
        progress.gone
            && !held
            && config.kv_script(client as u8).is_some()
            && progress
                .watches
                .values()
                .any(|record| record.created && record.ends == 0)
    })
}

/// `revision_monotone`: each client's revisioned replies carry revisions that never go down
/// (in request order, which its closed loop makes the order of sending and of answering), and
/// each watch's revisions strictly increase. The checker judges every reply and event of the
/// state; a replay keeps a [`RevisionCheck`] along its path.
fn revision_monotone(config: &Config, state: &State) -> bool {
    if !revisioned(config) {
        return true;
    }
    state.clients.iter().all(|client| {
        let revisions: Vec<u32> = client
            .kv_replies
            .values()
            .filter_map(|record| record.outcome.as_ref().ok()?.revision())
            .collect();
        let replies = revisions.windows(2).all(|pair| pair[0] <= pair[1]);
        let watches = client.watches.values().all(|record| {
            record
                .events
                .windows(2)
                .all(|pair| pair[0].revision < pair[1].revision)
        });
        replies && watches
    })
}

/// `revision_monotone` judged along one path of states, each a successor of the one before:
/// each reply and watch event is judged once, against the highest revision its client (or
/// watch) had before, so a state costs what is new in it and not the length of the path.
///
/// What it keeps holds along a path because the model only appends there: a client's reply
/// records are created in request order (its closed loop sends a request once the one before
/// has its record) and a record's outcome is its first reply's, and a watch record's events
/// only grow. So the records a state adds are those above the last one judged, and a record
/// at or below it is one already judged: a second reply (or, in a compacted replay state, a
/// reply to a request whose record was archived, `crate::compaction`), whose outcome is the
/// judged one. A watch record with fewer events than judged starts that watch over. A
/// violation stays one, as in the property: the pair that broke it stays in every later state.
#[derive(Clone, Debug, Default)]
pub struct RevisionCheck {
    /// Per client, what was judged of its replies and watches.
    clients: Vec<RevisionsSoFar>,
    /// A state of the path broke the property.
    violated: bool,
}

/// What was judged of one client's replies and watches.
#[derive(Clone, Debug, Default)]
struct RevisionsSoFar {
    /// The highest request id whose reply record was judged.
    judged_through: Option<RequestId>,
    /// The revision of the last judged reply that carried one (the highest, while the
    /// property holds).
    reply_revision_last: Option<Revision>,
    /// Per watch, its events judged and the revision of the last of them.
    watches: BTreeMap<WatchId, (usize, Option<Revision>)>,
}

impl RevisionCheck {
    /// Whether `revision_monotone` holds in `state`.
    pub fn holds(&mut self, config: &Config, state: &State) -> bool {
        if !revisioned(config) {
            return true;
        }
        self.clients
            .resize_with(state.clients.len(), RevisionsSoFar::default);
        for (so_far, client) in self.clients.iter_mut().zip(&state.clients) {
            let holds = so_far.replies_hold(client) & so_far.watches_hold(client);
            self.violated |= !holds;
        }
        !self.violated
    }
}

impl RevisionsSoFar {
    /// The replies added since the last state never go below the one before.
    fn replies_hold(&mut self, client: &Client) -> bool {
        let added = match self.judged_through {
            Some(judged) => client.kv_replies.range(judged + 1..),
            None => client.kv_replies.range(..),
        };
        let mut holds = true;
        for (request_id, record) in added {
            self.judged_through = Some(*request_id);
            let Some(revision) = record.outcome.as_ref().ok().and_then(KvResult::revision) else {
                continue;
            };
            holds &= self.reply_revision_last.is_none_or(|last| last <= revision);
            self.reply_revision_last = Some(revision);
        }
        holds
    }

    /// The events each watch received since the last state strictly increase after the ones
    /// before.
    fn watches_hold(&mut self, client: &Client) -> bool {
        let mut holds = true;
        for (watch_id, record) in &client.watches {
            let (judged, last) = self.watches.entry(*watch_id).or_default();
            if record.events.len() < *judged {
                (*judged, *last) = (0, None);
            }
            for group in &record.events[*judged..] {
                holds &= last.is_none_or(|last| last < group.revision);
                *last = Some(group.revision);
            }
            *judged = record.events.len();
        }
        holds
    }
}

/// The committed history: the events of every revision the chosen prefix made, oldest first.
pub fn committed_history(config: &Config, state: &State) -> Vec<RevisionEvents> {
    let mut store = KeyValueStore::reference(config);
    let mut history = Vec::new();
    for command in state.ghost.chosen.values() {
        let before = store.revision;
        store.apply_command(command);
        if store.revision != before {
            let history_kept = store.history.as_ref().expect("the reference keeps history");
            history.extend(history_kept.last().cloned());
        }
    }
    history
}

/// What watch `request` is owed of `history`: each revision from its start with its events in
/// the watch's view, those without any left out.
fn owed(request: &WatchRequest, history: &[RevisionEvents]) -> Vec<RevisionEvents> {
    history
        .iter()
        .filter(|group| group.revision >= request.start_revision)
        .filter_map(|group| {
            let events: Vec<_> = group
                .events
                .iter()
                .filter_map(|event| request.view(event))
                .collect();
            (!events.is_empty()).then_some(RevisionEvents {
                revision: group.revision,
                events,
            })
        })
        .collect()
}

/// `watch_in_order_exactly_once`: what each watch received is a prefix of what it is owed of
/// the committed history (in order, no gap, no duplicate, nothing uncommitted), after its
/// `WatchCreated`; a progress notification at `p` came after everything owed up to `p`; an end
/// `Compacted(c)` came to a watch that started below `c` and had received nothing from `c` on;
/// and nothing came after the end. The checker judges it from nothing kept
/// ([`WatchCheck::holds`] on a new [`WatchCheck`]); a replay keeps one along its path.
fn watch_in_order_exactly_once(config: &Config, state: &State) -> bool {
    if !revisioned(config) || watch_records(state).next().is_none() {
        return true;
    }
    WatchCheck::default().holds(config, state)
}

/// `watch_in_order_exactly_once` judged along one path of states, each a successor of the
/// one before: what it derived from the earlier states is kept, so a state costs what is new
/// in it (chosen slots, history revisions, watch events) and not the length of the path.
///
/// What it keeps holds along a path because the model only appends there: a chosen slot is
/// never rewritten (`Step::record_commit`), the chosen slots are `1..=n`, and a watch record's
/// events only grow. When a state shows otherwise (chosen slots not `1..=n` or fewer than
/// applied, a record with fewer events than judged), it starts over from that state, so its
/// verdict on every state is the one a new `WatchCheck` gives.
///
/// It derives the committed history at every state, a watch or not, so that it can follow a
/// state that replay compaction cut (`crate::compaction`): the chosen slots are then
/// `through + 1..=n`, and those up to `through` were applied from the states before the cut.
/// A cut state it cannot follow (one it did not see the prefix of, or whose chosen slots are
/// not contiguous) breaks that contract and is an assertion failure.
#[derive(Clone, Debug, Default)]
pub struct WatchCheck {
    /// The reference store after the chosen slots `1..=applied`, once a state had a watch.
    store: Option<KeyValueStore>,
    /// Chosen slots applied to `store`.
    applied: usize,
    /// The committed history of those slots, oldest first.
    history: Vec<RevisionEvents>,
    /// Per client and watch, what it is owed so far and how much of its record was judged.
    watches: BTreeMap<(usize, WatchId), OwedSoFar>,
}

/// What one watch is owed of the history derived so far.
#[derive(Clone, Debug, Default)]
struct OwedSoFar {
    /// The request `owed` was derived for: a watch whose request reads differently (a start
    /// resolved from the state) starts over.
    request: Option<WatchRequest>,
    /// The groups it is owed of `WatchCheck::history[..history_seen]`, in order.
    owed: Vec<RevisionEvents>,
    /// History revisions looked at.
    history_seen: usize,
    /// Leading events of its record found equal to `owed`.
    judged: usize,
}

impl WatchCheck {
    /// Whether `watch_in_order_exactly_once` holds in `state`.
    pub fn holds(&mut self, config: &Config, state: &State) -> bool {
        if !revisioned(config) {
            return true;
        }
        self.extend_history(config, state);
        let WatchCheck {
            history, watches, ..
        } = self;
        state.clients.iter().enumerate().all(|(client, progress)| {
            progress.watches.iter().all(|(watch_id, record)| {
                let Some(request) = resolved_request(config, state, *watch_id) else {
                    return false;
                };
                let so_far = watches.entry((client, *watch_id)).or_default();
                so_far.extend(&request, history);
                so_far.judge(&request, record)
            })
        })
    }

    /// Applies the chosen slots of `state` not applied yet, or starts over when `state` is not
    /// an extension of what was applied.
    fn extend_history(&mut self, config: &Config, state: &State) {
        let chosen = &state.ghost.chosen;
        let through = state.compacted.through as usize;
        let last = chosen
            .keys()
            .next_back()
            .map_or(through, |slot| *slot as usize);
        let contiguous = last == through + chosen.len()
            && chosen
                .keys()
                .next()
                .is_none_or(|first| *first as usize == through + 1);
        let follows = self.store.is_some() && contiguous && last >= self.applied;
        assert!(
            through == 0 || (follows && self.applied >= through),
            "a kept WatchCheck follows a compacted state only along its path (cut through \
             {through}, {} chosen slots applied)",
            self.applied
        );
        if !follows {
            *self = WatchCheck {
                store: Some(KeyValueStore::reference(config)),
                ..WatchCheck::default()
            };
        }
        let store = self.store.as_mut().expect("set above");
        let new = if contiguous {
            chosen.range(self.applied as Slot + 1..)
        } else {
            chosen.range(..)
        };
        for (_, command) in new {
            let before = store.revision;
            store.apply_command(command);
            if store.revision != before {
                let kept = store.history.as_ref().expect("the reference keeps history");
                self.history.extend(kept.last().cloned());
            }
        }
        self.applied = if contiguous { last } else { 0 };
        if !contiguous {
            // Nothing kept is an extension of the next state's: judge it from nothing too.
            self.store = None;
        }
    }
}

impl OwedSoFar {
    /// Adds what `request` is owed of the revisions of `history` not looked at yet.
    fn extend(&mut self, request: &WatchRequest, history: &[RevisionEvents]) {
        if history.len() < self.history_seen || self.request != Some(*request) {
            *self = OwedSoFar {
                request: Some(*request),
                ..OwedSoFar::default()
            };
        }
        self.owed
            .extend(owed(request, &history[self.history_seen..]));
        self.history_seen = history.len();
    }

    /// The property on one watch's record.
    fn judge(&mut self, request: &WatchRequest, record: &WatchRecord) -> bool {
        let events = &record.events;
        if events.len() < self.judged {
            self.judged = 0;
        }
        let prefix = events.len() <= self.owed.len()
            && self.owed[self.judged..events.len()] == events[self.judged..];
        if !prefix {
            return false;
        }
        self.judged = events.len();
        let created_first = events.is_empty() || record.created;
        // `owed` has strictly increasing revisions, and `events` is a prefix of it.
        let progress_complete = record.progress.is_none_or(|progress| {
            let due = self
                .owed
                .partition_point(|group| group.revision <= progress);
            events.len() >= due
        });
        let compacted_behind = match record.end {
            Some(WatchEnd::Compacted { compact_revision }) => {
                request.start_revision < compact_revision
                    && events
                        .last()
                        .is_none_or(|group| group.revision < compact_revision)
            }
            _ => true,
        };
        created_first && progress_complete && compacted_behind && !record.after_end
    }
}

/// `watch_ends_once`: no watch ends twice; the watch ledger balances and counts exactly the
/// watches the proxy holds; and at quiescence every watch a client asked for was answered
/// (created, or ended) and the proxy holds no watch of a client that is gone.
fn watch_ends_once(config: &Config, state: &State) -> bool {
    if !revisioned(config) {
        return true;
    }
    let ledger = state.proxy.watch_ledger;
    let balanced = ledger.opened == ledger.ended + ledger.open
        && ledger.open as usize == state.proxy.watches.len();
    let once = watch_records(state).all(|(_, record)| record.ends <= 1);
    if !(balanced && once) {
        return false;
    }
    if !crate::properties::quiescent(config, state) {
        return true;
    }
    let answered = state.clients.iter().all(|client| {
        client
            .watches
            .values()
            .all(|record| client.gone || record.created || record.ends > 0)
    });
    let released = state
        .proxy
        .watches
        .values()
        .all(|watch| !state.clients[watch.client as usize].gone);
    answered && released
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Bug;
    use crate::kv_presets;
    use crate::state::KvReplyRecord;

    /// A deterministic draw (xorshift), so a failing walk repeats.
    fn draw(seed: &mut u64, below: usize) -> usize {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed % below as u64) as usize
    }

    /// The checks a replay keeps along its path.
    #[derive(Clone, Default)]
    struct Kept {
        watches: WatchCheck,
        revisions: RevisionCheck,
    }

    impl Kept {
        /// Both kept checks give the checker's verdicts on `state`, the next state of their
        /// path; whether `revision_monotone` and `watch_in_order_exactly_once` hold there.
        fn agree(&mut self, config: &Config, state: &State) -> (bool, bool) {
            let monotone = revision_monotone(config, state);
            let in_order = watch_in_order_exactly_once(config, state);
            assert_eq!(self.revisions.holds(config, state), monotone, "{state:?}");
            assert_eq!(self.watches.holds(config, state), in_order, "{state:?}");
            (monotone, in_order)
        }
    }

    /// Along random paths of `config`, the checks kept from state to state give the verdicts
    /// of the checker's properties on every state; returns the states where one failed.
    fn agree_along_walks(config: &Config, walks: usize, steps: usize) -> usize {
        let mut violations = 0;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..walks {
            let mut state = State::initial(config);
            let mut kept = Kept::default();
            for _ in 0..steps {
                let (monotone, in_order) = kept.agree(config, &state);
                violations += usize::from(!(monotone && in_order));
                let actions = config.enabled_actions(&state);
                if actions.is_empty() {
                    break;
                }
                let action = &actions[draw(&mut seed, actions.len())];
                state = config
                    .apply(&state, action)
                    .expect("an enabled action applies");
            }
        }
        violations
    }

    #[test]
    fn the_checks_kept_along_a_path_agree_with_the_properties() {
        for preset in [
            kv_presets::ci_txn(),
            kv_presets::ci_watch(),
            kv_presets::ci_watch_resume(),
            kv_presets::ci_watch_errors(),
            kv_presets::ci_watch_now(),
            kv_presets::watch_resume_with_progress(),
        ] {
            agree_along_walks(&preset.config, 200, 120);
        }
    }

    /// Breadth first over the first `states_max` states of `config`, each with the checks
    /// kept along its path from the initial state: on every successor of every state reached,
    /// those checks (copied) give the checker's verdicts.
    fn agree_breadth_first(config: &Config, states_max: usize) -> usize {
        use std::collections::{HashSet, VecDeque};
        let initial = State::initial(config);
        let mut kept = Kept::default();
        kept.agree(config, &initial);
        let mut seen = HashSet::from([initial.clone()]);
        let mut queue = VecDeque::from([(initial, kept)]);
        let mut transitions = 0;
        while let Some((state, kept)) = queue.pop_front() {
            for action in config.enabled_actions(&state) {
                let next = config.apply(&state, &action).expect("enabled");
                let mut next_kept = kept.clone();
                next_kept.agree(config, &next);
                transitions += 1;
                if seen.len() < states_max && seen.insert(next.clone()) {
                    queue.push_back((next, next_kept));
                }
            }
        }
        transitions
    }

    #[test]
    fn the_checks_kept_along_a_path_agree_on_the_states_of_ci_presets() {
        for preset in [
            kv_presets::ci_txn(),
            kv_presets::ci_watch(),
            kv_presets::ci_watch_resume(),
        ] {
            let transitions = agree_breadth_first(&preset.config, 20_000);
            assert!(transitions >= 20_000, "{}: {transitions}", preset.name);
        }
    }

    /// A reply below the one before, and a watch event at the revision of the one before:
    /// both kept checks see it at the state that adds it and at every state after, as the
    /// property does.
    #[test]
    fn the_kept_revision_check_fails_where_the_property_does() {
        let config = kv_presets::ci_txn().config;
        let mut seed = 7u64;
        let mut state = State::initial(&config);
        let mut kept = RevisionCheck::default();
        // Walk until a client holds a reply with a revision.
        let client = loop {
            assert!(kept.holds(&config, &state));
            let answered = state.clients.iter().position(|client| {
                client.kv_replies.values().any(|record| {
                    record
                        .outcome
                        .as_ref()
                        .is_ok_and(|r| r.revision().is_some())
                })
            });
            if let Some(client) = answered {
                break client;
            }
            let actions = config.enabled_actions(&state);
            let action = &actions[draw(&mut seed, actions.len())];
            state = config.apply(&state, action).expect("enabled");
        };
        let mut later = state.clone();
        let replies = &mut later.clients[client].kv_replies;
        let last = *replies.keys().next_back().expect("a reply");
        replies.insert(
            last + 1,
            KvReplyRecord {
                count: 1,
                outcome: Ok(KvResult::Compact { revision: 0 }),
            },
        );
        assert!(!revision_monotone(&config, &later));
        assert!(!kept.holds(&config, &later));
        assert!(!kept.holds(&config, &state), "a violation stays one");

        let mut kept = RevisionCheck::default();
        let mut watched = State::initial(&config);
        let group = |revision| RevisionEvents {
            revision,
            events: Vec::new(),
        };
        let record = watched.clients[client].watches.entry(1).or_default();
        record.events.push(group(3));
        assert!(kept.holds(&config, &watched));
        let record = watched.clients[client].watches.get_mut(&1).expect("kept");
        record.events.push(group(3));
        assert!(!revision_monotone(&config, &watched));
        assert!(!kept.holds(&config, &watched));
    }

    /// On the checker's counterexample of each seeded watch bug, the kept check agrees with
    /// the property at every state along the path, and fails at its end.
    #[test]
    fn the_check_kept_along_a_path_fails_where_the_property_does() {
        use crate::check::{run_preset, CheckOptions};
        for bug in [Bug::WatchResumeFromCurrent, Bug::CompactionSkipsWatch] {
            let preset = crate::presets::for_bug(bug);
            let report = run_preset(&preset, &CheckOptions::default());
            let counterexample = report
                .counterexamples
                .iter()
                .find(|counterexample| counterexample.property == "watch_in_order_exactly_once")
                .unwrap_or_else(|| panic!("{bug}: a counterexample\n{report}"));
            let config = &preset.config;
            let mut state = State::initial(config);
            let mut kept = WatchCheck::default();
            for action in &counterexample.actions {
                assert_eq!(
                    kept.holds(config, &state),
                    watch_in_order_exactly_once(config, &state)
                );
                state = config.apply(&state, action).expect("the path replays");
            }
            assert!(!watch_in_order_exactly_once(config, &state), "{bug}");
            assert!(!kept.holds(config, &state), "{bug}");
        }
    }
}
