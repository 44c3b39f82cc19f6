//! The model's safety properties on the replayed path: each evaluated when it can change
//! (every step, when the chosen map grows, when a reply is delivered, at the end), the
//! completion of every accepted request at the end of the run, and `linearizable` decided per
//! key by the checker the nemesis shares.

use std::collections::BTreeMap;

use vigil_core as core;
use vigil_model::kv::KeyValueStore;
use vigil_model::{Config, State};

use super::engine::Replayer;
use super::LINEARIZABLE_CHECK_LIMIT;
use crate::linearizability::{self, store, Verdict};
use crate::mapping;
use crate::report::{describe_state, Divergence};

/// When a property is evaluated.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum When {
    EveryStep,
    ChosenGrew,
    ReplyDelivered,
    End,
}

#[derive(Clone, Copy)]
pub(super) struct Checked {
    pub(super) name: &'static str,
    pub(super) condition: fn(&Config, &State) -> bool,
    pub(super) when: When,
}

/// The properties the replay judges with what it kept from the earlier steps of its path
/// (`vigil_model::revision_properties::WatchCheck` and `RevisionCheck`) instead of calling
/// their conditions, which read the whole run (the committed history from the first chosen
/// slot, every reply) and so also what replay compaction archived: verdicts equal on every
/// state, at a cost per step independent of the run's length.
const WATCHES_KEPT_ALONG_THE_PATH: &str = "watch_in_order_exactly_once";
const REVISIONS_KEPT_ALONG_THE_PATH: &str = "revision_monotone";

pub(super) fn checked_properties() -> Vec<Checked> {
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

impl Replayer<'_> {
    pub(super) fn check_properties(
        &mut self,
        index: usize,
        when: When,
    ) -> Result<(), Box<Divergence>> {
        for property in self
            .properties
            .clone()
            .into_iter()
            .filter(|property| property.when == when)
            // Decided per key at the end instead (`Replay::check_linearizable`).
            .filter(|property| property.name != "linearizable")
        {
            let config = &self.vocabulary.config;
            let holds = match property.name {
                WATCHES_KEPT_ALONG_THE_PATH => self.watch_check.holds(config, &self.state),
                REVISIONS_KEPT_ALONG_THE_PATH => self.revision_check.holds(config, &self.state),
                _ => (property.condition)(config, &self.state),
            };
            if !holds {
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

    /// The model's `linearizable` on the replayed path's client history, decided per key
    /// within [`LINEARIZABLE_CHECK_LIMIT`]; undecided keys are reported in the stats. A run with
    /// revisioned requests is decided whole as well ([`Replayer::check_revisioned_linearizable`]).
    pub(super) fn check_linearizable(&mut self, last: usize) -> Result<(), Box<Divergence>> {
        self.check_revisioned_linearizable(last)?;
        match linearizable_per_key(&self.state.history, LINEARIZABLE_CHECK_LIMIT) {
            Verdict::Linearizable => Ok(()),
            Verdict::Unknown { keys } => {
                self.stats
                    .linearizable_undecided_keys
                    .get_or_insert_with(Vec::new)
                    .extend(keys);
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

    /// A `Range` or `Txn` reads several keys at one revision, and every write of either API
    /// makes a revision, so a run with revisioned requests is decided whole, with the register
    /// history, against the model's reference store (`linearizability::store`: the memoised
    /// search over the whole store's state), within [`WHOLE_STORE_CHECK_LIMIT`] and
    /// [`WHOLE_STORE_MEMO_ENTRIES_MAX`]. A run that reaches a bound is reported undecided,
    /// never passed.
    fn check_revisioned_linearizable(&mut self, last: usize) -> Result<(), Box<Divergence>> {
        let state = &self.state;
        if state.kv_history.is_empty() {
            return Ok(());
        }
        let limits = store::Limits {
            time: WHOLE_STORE_CHECK_LIMIT,
            memo_entries_max: WHOLE_STORE_MEMO_ENTRIES_MAX,
        };
        let report = store::check(
            &KeyValueStore::reference(self.config()),
            &state.history,
            &state.kv_history,
            limits,
        );
        match report.verdict {
            store::Verdict::Linearizable => Ok(()),
            store::Verdict::Unknown(_) => {
                self.stats
                    .linearizable_undecided_keys
                    .get_or_insert_with(Vec::new)
                    .push(format!(
                        "the whole store ({} operations, {} memo entries, {:.1} s: {})",
                        report.operations,
                        report.memo_entries,
                        report.elapsed.as_secs_f64(),
                        report.verdict
                    ));
                Ok(())
            }
            store::Verdict::NotLinearizable(_) => Err(Box::new(self.divergence(
                last,
                "safety property `linearizable` violated on the replayed path (the whole store, revisioned requests included)",
                None,
                vec![format!("the whole store: {}", report.verdict)],
            ))),
        }
    }

    /// Every request the proxy accepted has exactly one completion, in the trace and the model.
    pub(super) fn check_completions(&self) -> Result<(), Box<Divergence>> {
        let mut counts: BTreeMap<(u64, u64), (usize, u32)> = BTreeMap::new();
        for (index, event) in self.merged.events.iter().enumerate() {
            match &event.line.kind {
                core::TraceKind::RequestAccepted { client, request_id } => {
                    counts.entry((*client, *request_id)).or_insert((index, 0));
                }
                core::TraceKind::RequestCompleted {
                    client, request_id, ..
                }
                | core::TraceKind::KvRequestCompleted {
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
}

/// How long the whole-store check of one run may take: it decides every run of `verify` in
/// well under a second (`docs/trace.md` §4), so this only bounds a pathological history.
pub const WHOLE_STORE_CHECK_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Memo entries (with interned histories) the whole-store check may hold: each is a set of
/// linearized requests and the store's key records, some hundreds of bytes, so this bounds the
/// memo to the order of a hundred megabytes.
pub const WHOLE_STORE_MEMO_ENTRIES_MAX: usize = 300_000;

/// The model's `linearizable` on `history` (the replayed path's client history), decided per
/// key within `limit` by the checker the nemesis uses (`linearizability.rs`: Wing & Gong's
/// search with Lowe's memoisation), on the records the mapping translates the history into.
pub fn linearizable_per_key(
    history: &[vigil_model::state::HistoryEvent],
    limit: std::time::Duration,
) -> Verdict {
    linearizability::check(&mapping::history_records(history), limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Instant;
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

    /// Many indeterminate writes on one key: what stateright's tester does not finish (sim seed
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
