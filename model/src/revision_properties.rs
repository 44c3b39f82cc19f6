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
    KvResult, Revision, RevisionEvents, TxnOperationResult, WatchEnd, WatchRequest,
};
use crate::state::{State, WatchRecord};
use stateright::Property;

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
/// and nothing came after the end.
fn watch_in_order_exactly_once(config: &Config, state: &State) -> bool {
    if !revisioned(config) {
        return true;
    }
    let history = committed_history(config, state);
    watch_records(state).all(|(watch_id, record)| {
        let Some(request) = resolved_request(config, state, watch_id) else {
            return false;
        };
        let owed = owed(&request, &history);
        let prefix = record.events.len() <= owed.len() && owed.starts_with(&record.events);
        let created_first = record.events.is_empty() || record.created;
        let progress_complete = record.progress.is_none_or(|progress| {
            let due = owed
                .iter()
                .filter(|group| group.revision <= progress)
                .count();
            record.events.len() >= due
        });
        let compacted_behind = match record.end {
            Some(WatchEnd::Compacted { compact_revision }) => {
                request.start_revision < compact_revision
                    && record
                        .events
                        .iter()
                        .all(|group| group.revision < compact_revision)
            }
            _ => true,
        };
        prefix && created_first && progress_complete && compacted_behind && !record.after_end
    })
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
