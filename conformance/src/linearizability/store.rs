//! Linearizability of a whole client history against the whole store: both APIs in one
//! history, every operation checked against the model's `KeyValueStore` (the reference the
//! model's own `linearizable` uses), with a time limit and a bound on memory.
//!
//! Why the whole store: a `Range` reads several keys at one revision, a `Txn` compares and
//! writes several keys atomically, and every write of either API makes the next revision, so
//! no key's history is independent of another's. The check is therefore not per key: it runs
//! Wing & Gong's search with Lowe's memoisation (`search.rs`) over the store's full state, and
//! an operation is accepted at a point of the order only when applying it there gives exactly
//! the recorded result — every revision, `create_revision`, `mod_revision`, `version`, `more`,
//! `count`, `prev_kv`, the branch a `Txn` took and its responses, and the `Compacted` and
//! `FutureRevision` refusals. A definite reply's revision pins its place among the writes: a
//! write linearized at any other point gives another revision and is refused at once, so the
//! search only branches where replies leave the order open (overlapping register writes,
//! whose replies carry a version and no revision, and requests without a definite answer).
//!
//! What the history holds: a request without a definite answer (`Timeout`, `LeaderChanged`)
//! may take effect anywhere after its call, or never; one that only reads (`Get`, `Range`) is
//! left out, since it changes nothing. A definite refusal took no effect and is left out too.
//!
//! The memo remembers (set of linearized operations, store state). The state's history of
//! revisions only grows along a path, so it is remembered as an interned id (its parent's id
//! and its last revision's events) rather than a copy: an entry costs the keys' records and a
//! few words. The memo and the interned histories together are bounded
//! ([`Limits::memo_entries_max`]); reaching the bound, like the time limit, gives `Unknown`,
//! never a pass.
//!
//! Not checked here: watches (`watch_in_order_exactly_once` and the replay's delivery
//! checks), serializable reads (not in the model), and what the store's rules are (the model's
//! `KeyValueStore`, tested on its own).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use vigil_model::kv::{KeyState, KeyValueStore};
use vigil_model::kv_types::{ClientOperation, ClientResult, KvOperation, Revision, RevisionEvents};
use vigil_model::state::{HistoryEvent, KvHistoryEvent};
use vigil_model::types::{Key, Operation, RequestId};

use super::search::{self, Bounds, Interval, Searched, Specification};

/// What bounds one check.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Wall time the search may take.
    pub time: Duration,
    /// Memo entries (and interned histories) the search may hold.
    pub memo_entries_max: usize,
}

/// The verdict on a whole history, with what the search cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The verdict.
    pub verdict: Verdict,
    /// Operations in the search (after leaving out refusals and undecided reads).
    pub operations: usize,
    /// Memo entries (with interned histories) when the search ended.
    pub memo_entries: usize,
    /// Wall time of the search.
    pub elapsed: Duration,
}

/// Whether an order of the history's operations explains every result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// One does.
    Linearizable,
    /// None does.
    NotLinearizable(Box<Anomaly>),
    /// Undecided: a bound was reached first (no anomaly found so far).
    Unknown(Undecided),
}

/// Which bound stopped an undecided search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Undecided {
    /// [`Limits::time`].
    TimeLimit,
    /// [`Limits::memo_entries_max`].
    MemoBound,
}

/// A history no order explains, told by the operation no order gets past.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    /// The request whose recorded result no order gives.
    pub request_id: RequestId,
    /// Its operation.
    pub operation: ClientOperation,
    /// Its recorded result (`None`: it had no definite answer).
    pub recorded: Option<ClientResult>,
    /// The most operations any partial linearization reached before it.
    pub linearized_max: usize,
    /// Operations in the search.
    pub operations: usize,
    /// The store's revision after that deepest partial linearization.
    pub revision: Revision,
    /// What the store answers there instead.
    pub answered_there: ClientResult,
}

impl fmt::Display for Verdict {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable => write!(formatter, "linearizable"),
            Verdict::NotLinearizable(anomaly) => write!(formatter, "NOT linearizable: {anomaly}"),
            Verdict::Unknown(Undecided::TimeLimit) => {
                write!(formatter, "UNKNOWN: the time limit hit first")
            }
            Verdict::Unknown(Undecided::MemoBound) => {
                write!(formatter, "UNKNOWN: the memo bound was reached first")
            }
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let recorded = match &self.recorded {
            Some(result) => format!("answered {result:?}"),
            None => "without a definite answer".to_string(),
        };
        write!(
            formatter,
            "no order explains request {} {:?} {recorded}: at best {} of {} operations linearized before it (store at revision {}), where the store answers {:?}",
            self.request_id,
            self.operation,
            self.linearized_max,
            self.operations,
            self.revision,
            self.answered_there
        )
    }
}

/// Checks the served cluster's history of both APIs (`history` and `kv_history`, merged as
/// the model merges them: a revisioned event comes after the first `after` register events)
/// from the store `initial` (the model's reference for the run's configuration).
pub fn check(
    initial: &KeyValueStore,
    history: &[HistoryEvent],
    kv_history: &[KvHistoryEvent],
    limits: Limits,
) -> Report {
    let started = Instant::now();
    let (operations, intervals) = operations(history, kv_history);
    let mut specification = StoreSpecification {
        operations,
        histories: HashMap::new(),
    };
    let bounds = Bounds {
        deadline: started + limits.time,
        memo_entries_max: limits.memo_entries_max,
    };
    let initial = Node {
        store: initial.clone(),
        history: 0,
    };
    let searched = search::search(&mut specification, initial, &intervals, bounds);
    let (verdict, memo_entries) = match searched {
        Searched::Linearizable { memo_entries } => (Verdict::Linearizable, memo_entries),
        Searched::TimedOut { memo_entries } => {
            (Verdict::Unknown(Undecided::TimeLimit), memo_entries)
        }
        Searched::MemoFull { memo_entries } => {
            (Verdict::Unknown(Undecided::MemoBound), memo_entries)
        }
        Searched::NotLinearizable {
            linearized_max,
            blocking,
            deepest_state,
        } => {
            let anomaly = specification.anomaly(blocking, linearized_max, deepest_state.store);
            (Verdict::NotLinearizable(Box::new(anomaly)), 0)
        }
    };
    Report {
        verdict,
        operations: intervals.len(),
        memo_entries,
        elapsed: started.elapsed(),
    }
}

/// One request in the search.
struct StoreOperation {
    request_id: RequestId,
    operation: ClientOperation,
    /// The recorded result; `None` for a request without a definite answer.
    expected: Option<ClientResult>,
}

/// A request as the history shows it: its call, and its return if any.
struct Requested {
    operation: ClientOperation,
    invoked: u64,
    returned: Option<(u64, Option<ClientResult>)>,
}

/// The requests that constrain the search, with their intervals on one clock: the position
/// in the merged history.
fn operations(
    history: &[HistoryEvent],
    kv_history: &[KvHistoryEvent],
) -> (Vec<StoreOperation>, Vec<Interval>) {
    let mut requests: BTreeMap<RequestId, Requested> = BTreeMap::new();
    for (clock, event) in merged(history, kv_history).into_iter().enumerate() {
        let clock = clock as u64;
        match event {
            Merged::Invoke(request_id, operation) => {
                requests.insert(
                    request_id,
                    Requested {
                        operation,
                        invoked: clock,
                        returned: None,
                    },
                );
            }
            Merged::Return(request_id, result) => {
                if let Some(request) = requests.get_mut(&request_id) {
                    request.returned = Some((clock, result));
                }
            }
        }
    }
    let mut operations = Vec::new();
    let mut intervals = Vec::new();
    for (request_id, request) in requests {
        let (returned, expected) = match request.returned {
            // A refusal took no effect.
            Some((_, None)) => continue,
            Some((clock, Some(result))) => (Some(clock), Some(result)),
            // Without a definite answer, a read changes nothing.
            None if only_reads(&request.operation) => continue,
            None => (None, None),
        };
        intervals.push(Interval {
            invoked: request.invoked,
            returned,
        });
        operations.push(StoreOperation {
            request_id,
            operation: request.operation,
            expected,
        });
    }
    (operations, intervals)
}

/// Whether `operation` never changes the store.
fn only_reads(operation: &ClientOperation) -> bool {
    matches!(
        operation,
        ClientOperation::Register(Operation::Get { .. })
            | ClientOperation::Kv(KvOperation::Range(_))
    )
}

/// One event of the merged history.
enum Merged {
    Invoke(RequestId, ClientOperation),
    Return(RequestId, Option<ClientResult>),
}

/// Both histories in one order, as the model's `linearizable` merges them.
fn merged(history: &[HistoryEvent], kv_history: &[KvHistoryEvent]) -> Vec<Merged> {
    let mut events = Vec::with_capacity(history.len() + kv_history.len());
    let mut revisioned = kv_history.iter().peekable();
    let kv = |event: &KvHistoryEvent| match event {
        KvHistoryEvent::Invoke {
            request_id,
            operation,
            ..
        } => Merged::Invoke(*request_id, ClientOperation::Kv(operation.clone())),
        KvHistoryEvent::Return {
            request_id, result, ..
        } => Merged::Return(*request_id, result.clone().map(ClientResult::Kv)),
    };
    for (position, event) in history.iter().enumerate() {
        while let Some(kv_event) = revisioned.next_if(|kv_event| kv_event.after() <= position) {
            events.push(kv(kv_event));
        }
        events.push(match *event {
            HistoryEvent::Invoke {
                request_id,
                operation,
            } => Merged::Invoke(request_id, ClientOperation::Register(operation)),
            HistoryEvent::Return { request_id, result } => {
                Merged::Return(request_id, result.map(ClientResult::Register))
            }
        });
    }
    events.extend(revisioned.map(kv));
    events
}

/// A state of the search: the store, and the interned id of its history of revisions.
#[derive(Clone)]
struct Node {
    store: KeyValueStore,
    history: u32,
}

/// What the memo keeps of a store: everything but the history of revisions, which the id
/// stands for (equal ids: equal histories from the compaction point on).
#[derive(PartialEq, Eq, Hash)]
struct StoreMemo {
    keys: Vec<(Key, KeyState)>,
    revision: Revision,
    compact_revision: Revision,
    history: u32,
}

struct StoreSpecification {
    operations: Vec<StoreOperation>,
    /// (parent history id, the revision appended) → history id; 0 is the initial history.
    histories: HashMap<(u32, RevisionEvents), u32>,
}

impl StoreSpecification {
    /// The id of `parent`'s history with `appended` after it.
    fn intern(&mut self, parent: u32, appended: &RevisionEvents) -> u32 {
        let next = self.histories.len() as u32 + 1;
        *self
            .histories
            .entry((parent, appended.clone()))
            .or_insert(next)
    }

    fn anomaly(&self, blocking: usize, linearized_max: usize, mut store: KeyValueStore) -> Anomaly {
        let operation = &self.operations[blocking];
        let revision = store.revision;
        let answered_there = store.apply_client(&operation.operation);
        Anomaly {
            request_id: operation.request_id,
            operation: operation.operation.clone(),
            recorded: operation.expected.clone(),
            linearized_max,
            operations: self.operations.len(),
            revision,
            answered_there,
        }
    }
}

impl Specification for StoreSpecification {
    type State = Node;
    type Memo = StoreMemo;

    fn step(&mut self, node: &Node, operation: usize) -> Option<Node> {
        let operation = &self.operations[operation];
        let mut store = node.store.clone();
        let result = store.apply_client(&operation.operation);
        if operation
            .expected
            .as_ref()
            .is_some_and(|expected| *expected != result)
        {
            return None;
        }
        // Only a write moves the revision, and a write appends one revision to the history.
        let appended = (store.revision != node.store.revision)
            .then(|| store.history.as_ref().and_then(|history| history.last()))
            .flatten()
            .cloned();
        let history = match appended {
            Some(appended) => self.intern(node.history, &appended),
            None => node.history,
        };
        Some(Node { store, history })
    }

    fn memo(&mut self, node: &Node) -> StoreMemo {
        // Every field named: a new one must be placed in the memo or said to be constant.
        let KeyValueStore {
            keys,
            revision,
            compact_revision,
            history: _,
            range_limit_max: _,
            txn_partial_apply: _,
            // Constant along a replay: no trace event maps to a lease operation yet.
            leases: _,
        } = &node.store;
        StoreMemo {
            keys: keys.iter().map(|(key, state)| (*key, *state)).collect(),
            revision: *revision,
            compact_revision: *compact_revision,
            history: node.history,
        }
    }

    fn entries(&self) -> usize {
        self.histories.len()
    }
}

#[cfg(test)]
mod tests;
