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
use crate::state::{State, WatchRecord};
use crate::types::Slot;
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
/// each watch's revisions strictly increase.
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
        if watch_records(state).next().is_none() {
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
        let contiguous = chosen.keys().next_back().copied().unwrap_or(0) as usize == chosen.len();
        if self.store.is_none() || !contiguous || chosen.len() < self.applied {
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
        self.applied = if contiguous { chosen.len() } else { 0 };
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

    /// A deterministic draw (xorshift), so a failing walk repeats.
    fn draw(seed: &mut u64, below: usize) -> usize {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed % below as u64) as usize
    }

    /// Along random paths of `config`, a `WatchCheck` kept from state to state gives the
    /// verdict of the checker's property (a new one) on every state; returns the states where
    /// it failed.
    fn agree_along_walks(config: &Config, walks: usize, steps: usize) -> usize {
        let mut violations = 0;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..walks {
            let mut state = State::initial(config);
            let mut kept = WatchCheck::default();
            for _ in 0..steps {
                let fresh = watch_in_order_exactly_once(config, &state);
                assert_eq!(kept.holds(config, &state), fresh, "{state:?}");
                violations += usize::from(!fresh);
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
    fn the_check_kept_along_a_path_agrees_with_the_property() {
        for preset in [
            kv_presets::ci_watch(),
            kv_presets::ci_watch_resume(),
            kv_presets::ci_watch_errors(),
            kv_presets::watch_resume_with_progress(),
        ] {
            agree_along_walks(&preset.config, 200, 120);
        }
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
