//! Per-key linearizability of a client history against vigil's key-value semantics
//! (`protocol.md` §9.1: a version per key, incremented by every write), with a time limit.
//!
//! Why this algorithm: Wing & Gong's search with Lowe's memoisation, as Porcupine does it
//! (`linearizability/search.rs`) —
//! walk the history's call and return events in time order, linearize a pending call when the
//! model accepts its result, backtrack at a return that no order explains, and never revisit a
//! (set of linearized operations, state) pair. Keys are independent (every operation touches
//! one key), so the history is checked one key at a time (P-compositionality), which keeps the
//! search small.
//!
//! Indeterminate operations (no definite answer) get a return time of "never": they may be
//! linearized anywhere after their call, and linearizing one at the very end is the same as its
//! never having happened. An indeterminate `Get` tells nothing and is left out; so are definite
//! refusals.
//!
//! A history with revisioned requests, whose keys are not independent, is checked over the
//! whole store instead (`linearizability/store.rs`).
//!
//! Shared by the nemesis (its clients' history of real processes) and replay (the model's
//! client history on a replayed path, translated by `mapping::history_records`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use vigil_core::OperationResult;

use crate::nemesis::history::{Call, Outcome, Record};
use search::{Bounds, Interval, Searched};

mod search;
pub mod store;

/// A key's state in the model: its value (none: never written) and its version.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct KeyState {
    value: Option<Vec<u8>>,
    version: u64,
}

/// The result the model must reproduce, or none for an indeterminate write.
type Expected<'a> = Option<&'a OperationResult>;

/// Applies `call` to `state`; `None` if the model cannot give `expected`.
fn step(state: &KeyState, call: &Call, expected: Expected<'_>) -> Option<KeyState> {
    let written = |value: &Vec<u8>| KeyState {
        value: Some(value.clone()),
        version: state.version + 1,
    };
    match (call, expected) {
        (Call::Get, Some(OperationResult::Value { value, version })) => {
            (value == &state.value && *version == state.version).then(|| state.clone())
        }
        (Call::Get, _) => None,
        (Call::Put { value }, None) => Some(written(value)),
        (Call::Put { value }, Some(OperationResult::Written { version })) => {
            (*version == state.version + 1).then(|| written(value))
        }
        (Call::Put { .. }, Some(_)) => None,
        (
            Call::Cas {
                expected_version,
                value,
            },
            result,
        ) => {
            let matches = *expected_version == state.version;
            match result {
                None if matches => Some(written(value)),
                None => Some(state.clone()),
                Some(OperationResult::Written { version }) => {
                    (matches && *version == state.version + 1).then(|| written(value))
                }
                Some(OperationResult::VersionMismatch { current_version }) => {
                    (!matches && *current_version == state.version).then(|| state.clone())
                }
                Some(_) => None,
            }
        }
        // A delete of a present key writes (a new version, no value); of an absent one, nothing.
        (Call::Delete, result) => {
            let deleted = KeyState {
                value: None,
                version: state.version + 1,
            };
            let (after, version) = match state.value {
                Some(_) => (deleted, state.version + 1),
                None => (state.clone(), 0),
            };
            match result {
                None => Some(after),
                Some(OperationResult::Deleted { version: answered }) => {
                    (*answered == version).then_some(after)
                }
                Some(_) => None,
            }
        }
    }
}

/// The verdict on a whole history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's history is linearizable.
    Linearizable,
    /// A key's history is not: no order of its operations explains the results.
    NotLinearizable(Box<Anomaly>),
    /// The time limit hit before every key was decided (no anomaly found in those decided).
    Unknown {
        /// Keys left undecided.
        keys: Vec<String>,
    },
}

/// A history that no linearization explains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    /// The key.
    pub key: String,
    /// Operations of the key in the check.
    pub operations: usize,
    /// The most operations any partial linearization reached.
    pub linearized_max: usize,
    /// The operation whose completion no order could get past, at that deepest point.
    pub blocking: String,
}

impl fmt::Display for Verdict {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable => write!(formatter, "linearizable"),
            Verdict::NotLinearizable(anomaly) => write!(
                formatter,
                "NOT linearizable: key {}: {} of {} operations linearized at best; no order explains {}",
                anomaly.key, anomaly.linearized_max, anomaly.operations, anomaly.blocking
            ),
            Verdict::Unknown { keys } => write!(
                formatter,
                "UNKNOWN: the time limit hit before keys {} were decided",
                keys.join(", ")
            ),
        }
    }
}

/// Checks `records` key by key within `limit` in all.
pub fn check(records: &[Record], limit: Duration) -> Verdict {
    let deadline = Instant::now() + limit;
    let mut by_key: BTreeMap<&[u8], Vec<&Record>> = BTreeMap::new();
    for record in records {
        by_key.entry(&record.key).or_default().push(record);
    }
    let mut undecided = Vec::new();
    for (key, records) in by_key {
        match check_key(&records, deadline) {
            KeyVerdict::Linearizable => {}
            KeyVerdict::TimedOut => undecided.push(String::from_utf8_lossy(key).into_owned()),
            KeyVerdict::Not {
                operations,
                linearized_max,
                blocking,
            } => {
                return Verdict::NotLinearizable(Box::new(Anomaly {
                    key: String::from_utf8_lossy(key).into_owned(),
                    operations,
                    linearized_max,
                    blocking,
                }))
            }
        }
    }
    if undecided.is_empty() {
        Verdict::Linearizable
    } else {
        Verdict::Unknown { keys: undecided }
    }
}

enum KeyVerdict {
    Linearizable,
    TimedOut,
    Not {
        operations: usize,
        linearized_max: usize,
        blocking: String,
    },
}

/// One operation in the search.
struct Operation<'a> {
    record: &'a Record,
    expected: Expected<'a>,
}

/// The operations of one key that constrain the search, in call order.
fn operations<'a>(records: &[&'a Record]) -> Vec<Operation<'a>> {
    let mut operations: Vec<Operation<'a>> = records
        .iter()
        .filter_map(|record| match (&record.outcome, record.call.is_write()) {
            (Outcome::Ok(result), _) => Some(Operation {
                record,
                expected: Some(result),
            }),
            (Outcome::Unknown(_), true) => Some(Operation {
                record,
                expected: None,
            }),
            _ => None,
        })
        .collect();
    operations.sort_by_key(|operation| operation.record.invoked_ns);
    operations
}

/// One key's operations as the search's specification.
struct KeySpecification<'a> {
    operations: Vec<Operation<'a>>,
}

impl search::Specification for KeySpecification<'_> {
    type State = KeyState;
    type Memo = KeyState;

    fn step(&mut self, state: &KeyState, operation: usize) -> Option<KeyState> {
        let operation = &self.operations[operation];
        step(state, &operation.record.call, operation.expected)
    }

    fn memo(&mut self, state: &KeyState) -> KeyState {
        state.clone()
    }
}

fn check_key(records: &[&Record], deadline: Instant) -> KeyVerdict {
    let operations = operations(records);
    let intervals: Vec<Interval> = operations
        .iter()
        .map(|operation| Interval {
            invoked: operation.record.invoked_ns,
            returned: operation.expected.map(|_| operation.record.completed_ns),
        })
        .collect();
    let mut specification = KeySpecification { operations };
    let bounds = Bounds {
        deadline,
        // A key's state is a value and a version: the time limit bounds the memo first.
        memo_entries_max: usize::MAX,
    };
    match search::search(&mut specification, KeyState::default(), &intervals, bounds) {
        Searched::Linearizable { .. } => KeyVerdict::Linearizable,
        Searched::TimedOut { .. } | Searched::MemoFull { .. } => KeyVerdict::TimedOut,
        Searched::NotLinearizable {
            linearized_max,
            blocking,
            ..
        } => KeyVerdict::Not {
            operations: intervals.len(),
            linearized_max,
            blocking: specification.operations[blocking].record.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);

    fn record(
        client: usize,
        call: Call,
        times_ms: (u64, u64),
        outcome: Outcome,
        key: &str,
    ) -> Record {
        Record {
            client,
            key: key.as_bytes().to_vec(),
            call,
            invoked_ns: times_ms.0 * 1_000_000,
            completed_ns: times_ms.1 * 1_000_000,
            outcome,
        }
    }

    fn put(client: usize, value: &str, times_ms: (u64, u64), version: u64) -> Record {
        record(
            client,
            Call::Put {
                value: value.as_bytes().to_vec(),
            },
            times_ms,
            Outcome::Ok(OperationResult::Written { version }),
            "k",
        )
    }

    fn get(client: usize, value: Option<&str>, times_ms: (u64, u64), version: u64) -> Record {
        record(
            client,
            Call::Get,
            times_ms,
            Outcome::Ok(OperationResult::Value {
                value: value.map(|value| value.as_bytes().to_vec()),
                version,
            }),
            "k",
        )
    }

    #[test]
    fn a_sequential_history_is_linearizable() {
        let history = [
            get(0, None, (0, 1), 0),
            put(0, "a", (2, 3), 1),
            get(1, Some("a"), (4, 5), 1),
            put(1, "b", (6, 7), 2),
            get(0, Some("b"), (8, 9), 2),
        ];
        assert_eq!(check(&history, LIMIT), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_is_not_linearizable() {
        // `b` is acknowledged before the read starts, yet the read returns `a`.
        let history = [
            put(0, "a", (0, 1), 1),
            put(0, "b", (2, 3), 2),
            get(1, Some("a"), (4, 5), 1),
        ];
        let Verdict::NotLinearizable(anomaly) = check(&history, LIMIT) else {
            panic!("a stale read passed");
        };
        assert_eq!(anomaly.key, "k");
        assert!(anomaly.blocking.contains("get(k)"), "{}", anomaly.blocking);
    }

    #[test]
    fn a_lost_write_is_not_linearizable() {
        // `a` is acknowledged, then a read finds the key never written.
        let history = [put(0, "a", (0, 1), 1), get(1, None, (2, 3), 0)];
        assert!(matches!(
            check(&history, LIMIT),
            Verdict::NotLinearizable(_)
        ));
    }

    #[test]
    fn two_writes_with_one_version_are_not_linearizable() {
        // Two acknowledged puts both claim version 1: one of them overwrote the other unseen.
        let history = [put(0, "a", (0, 5), 1), put(1, "b", (1, 6), 1)];
        assert!(matches!(
            check(&history, LIMIT),
            Verdict::NotLinearizable(_)
        ));
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        // The read overlaps both writes and sees the first one; then the second shows.
        let history = [
            put(0, "a", (0, 10), 2),
            put(1, "b", (1, 9), 1),
            get(2, Some("b"), (2, 8), 1),
            get(2, Some("a"), (11, 12), 2),
        ];
        assert_eq!(check(&history, LIMIT), Verdict::Linearizable);
    }

    #[test]
    fn an_indeterminate_write_may_apply_late_or_never() {
        let unknown = |value: &str, times_ms| {
            record(
                0,
                Call::Put {
                    value: value.as_bytes().to_vec(),
                },
                times_ms,
                Outcome::Unknown("timeout".into()),
                "k",
            )
        };
        // Applied long after the client gave up.
        let late = [
            unknown("a", (0, 1)),
            get(1, None, (2, 3), 0),
            get(1, Some("a"), (4, 5), 1),
        ];
        assert_eq!(check(&late, LIMIT), Verdict::Linearizable);
        // Never applied.
        let never = [unknown("a", (0, 1)), get(1, None, (2, 3), 0)];
        assert_eq!(check(&never, LIMIT), Verdict::Linearizable);
        // But not before it was invoked.
        let early = [get(1, Some("a"), (0, 1), 1), unknown("a", (2, 3))];
        assert!(matches!(check(&early, LIMIT), Verdict::NotLinearizable(_)));
    }

    #[test]
    fn cas_results_follow_the_version() {
        let cas = |expected_version, times_ms, outcome| {
            record(
                0,
                Call::Cas {
                    expected_version,
                    value: b"c".to_vec(),
                },
                times_ms,
                outcome,
                "k",
            )
        };
        let good = [
            put(0, "a", (0, 1), 1),
            cas(
                1,
                (2, 3),
                Outcome::Ok(OperationResult::Written { version: 2 }),
            ),
            cas(
                1,
                (4, 5),
                Outcome::Ok(OperationResult::VersionMismatch { current_version: 2 }),
            ),
        ];
        assert_eq!(check(&good, LIMIT), Verdict::Linearizable);
        // A mismatch that names a version the key does not have.
        let bad = [
            put(0, "a", (0, 1), 1),
            cas(
                0,
                (2, 3),
                Outcome::Ok(OperationResult::VersionMismatch { current_version: 0 }),
            ),
        ];
        assert!(matches!(check(&bad, LIMIT), Verdict::NotLinearizable(_)));
    }

    #[test]
    fn refused_operations_constrain_nothing_and_keys_are_independent() {
        let refused = record(
            0,
            Call::Put {
                value: b"z".to_vec(),
            },
            (0, 1),
            Outcome::Failed("no leader".into()),
            "k",
        );
        let other_key = record(
            1,
            Call::Get,
            (0, 1),
            Outcome::Ok(OperationResult::Value {
                value: None,
                version: 0,
            }),
            "other",
        );
        let history = [refused, other_key, get(1, None, (2, 3), 0)];
        assert_eq!(check(&history, LIMIT), Verdict::Linearizable);
    }

    #[test]
    fn the_time_limit_gives_unknown() {
        // Many overlapping indeterminate writes and reads no order explains: the search is
        // exponential, and a zero limit stops it at the first clock check.
        let mut history: Vec<Record> = (0..40)
            .map(|index| {
                record(
                    index,
                    Call::Put {
                        value: format!("v{index}").into_bytes(),
                    },
                    (0, 1),
                    Outcome::Unknown("timeout".into()),
                    "k",
                )
            })
            .collect();
        history.push(get(99, Some("none of them"), (2, 3), 41));
        assert!(matches!(
            check(&history, Duration::ZERO),
            Verdict::Unknown { .. }
        ));
    }
}
