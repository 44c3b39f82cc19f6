//! Wing & Gong's linearizability search with Lowe's memoisation, as Porcupine does it, generic
//! over the sequential specification: the one search behind the per-key register check
//! (`linearizability.rs`) and the whole-store check (`store.rs`).
//!
//! Walk the history's call and return events in time order; at a call, linearize the
//! operation if the specification accepts its result in the current state and the pair (set of
//! linearized operations, state) is new; at a return whose call no order linearized before it,
//! backtrack. An operation without a definite answer returns "never": it may be linearized
//! anywhere after its call, and linearizing it at the very end is the same as its never having
//! taken effect, so a history is linearizable once every call is linearized or only such
//! operations are left.

use std::collections::HashSet;
use std::hash::Hash;
use std::time::Instant;

/// When an operation was called and, if it got a definite answer, when it returned, on one
/// clock (any monotone numbering of the history's events).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Interval {
    /// The call.
    pub invoked: u64,
    /// The return; `None` for an operation without a definite answer.
    pub returned: Option<u64>,
}

/// The sequential specification the search checks against.
pub(crate) trait Specification {
    /// The state between operations.
    type State: Clone;
    /// What the memo remembers of a state: equal only for equal states (it may tell equal
    /// states apart, which costs time, never a wrong verdict).
    type Memo: Eq + Hash;

    /// The state after operation `operation` in `state`, or `None` when the specification
    /// cannot give the operation's recorded result there.
    fn step(&mut self, state: &Self::State, operation: usize) -> Option<Self::State>;

    /// The memo's record of `state`.
    fn memo(&mut self, state: &Self::State) -> Self::Memo;

    /// Entries the specification keeps besides the memo (counted against its bound).
    fn entries(&self) -> usize {
        0
    }
}

/// What bounds one search.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    /// The search stops undecided at this instant.
    pub deadline: Instant,
    /// The search stops undecided when the memo (with the specification's own entries) holds
    /// this many entries.
    pub memo_entries_max: usize,
}

/// How a search ended.
#[derive(Debug)]
pub(crate) enum Searched<State> {
    /// An order explains every result.
    Linearizable {
        /// Memo entries at the end.
        memo_entries: usize,
    },
    /// No order explains the results.
    NotLinearizable {
        /// The most operations any partial linearization reached.
        linearized_max: usize,
        /// The operation whose return no order could get past at that deepest point.
        blocking: usize,
        /// The state after the deepest partial linearization.
        deepest_state: State,
    },
    /// The deadline passed first.
    TimedOut {
        /// Memo entries when it stopped.
        memo_entries: usize,
    },
    /// The memo bound was reached first.
    MemoFull {
        /// Memo entries when it stopped.
        memo_entries: usize,
    },
}

/// Searches for a linearization of the operations `intervals` describes (indexed as the
/// specification's operations) from `initial`.
pub(crate) fn search<S: Specification>(
    specification: &mut S,
    initial: S::State,
    intervals: &[Interval],
    bounds: Bounds,
) -> Searched<S::State> {
    let mut events = Events::new(intervals);
    let mut linearized = Linearized::new(intervals.len());
    let mut seen: HashSet<(Linearized, S::Memo)> = HashSet::new();
    let mut stack: Vec<(usize, S::State)> = Vec::new();
    let mut state = initial;
    let (mut deepest, mut blocking, mut deepest_state) = (0, None, None);
    let mut entry = events.first();
    let mut steps: u64 = 0;
    while events.first() != END {
        steps += 1;
        if steps % 256 == 0 {
            let memo_entries = seen.len() + specification.entries();
            if Instant::now() >= bounds.deadline {
                return Searched::TimedOut { memo_entries };
            }
            if memo_entries >= bounds.memo_entries_max {
                return Searched::MemoFull { memo_entries };
            }
        }
        let operation = events.operation[entry];
        if events.is_call[entry] {
            if let Some(next_state) = specification.step(&state, operation) {
                let mut with = linearized.clone();
                with.set(operation);
                let memo = specification.memo(&next_state);
                if seen.insert((with.clone(), memo)) {
                    stack.push((entry, std::mem::replace(&mut state, next_state)));
                    linearized = with;
                    events.lift(entry);
                    entry = events.first();
                    continue;
                }
            }
            entry = events.next[entry];
            continue;
        }
        // A return whose call could not be linearized before it: backtrack. The first return
        // met at the greatest depth is the one reported.
        if stack.len() > deepest || blocking.is_none() {
            deepest = stack.len();
            blocking = Some(operation);
            deepest_state = Some(state.clone());
        }
        let Some((call, previous_state)) = stack.pop() else {
            return Searched::NotLinearizable {
                linearized_max: deepest,
                blocking: blocking.expect("a return was reached"),
                deepest_state: deepest_state.expect("a return was reached"),
            };
        };
        state = previous_state;
        linearized.clear(events.operation[call]);
        events.unlift(call);
        entry = events.next[call];
    }
    Searched::Linearizable {
        memo_entries: seen.len() + specification.entries(),
    }
}

/// The event list: `2 * n` entries (call of operation i, return of operation i) in time order,
/// doubly linked behind a head at index `2 * n` so entries can be lifted out and put back.
struct Events {
    operation: Vec<usize>,
    is_call: Vec<bool>,
    partner: Vec<usize>,
    next: Vec<usize>,
    previous: Vec<usize>,
    head: usize,
}

const END: usize = usize::MAX;

impl Events {
    fn new(intervals: &[Interval]) -> Events {
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(intervals.len() * 2);
        for (index, interval) in intervals.iter().enumerate() {
            // Calls sort before returns at the same instant: such operations overlap, which
            // allows more orders, never fewer.
            order.push((interval.invoked, false, index));
            order.push((interval.returned.unwrap_or(u64::MAX), true, index));
        }
        order.sort();
        let count = order.len();
        let mut events = Events {
            operation: order.iter().map(|(_, _, index)| *index).collect(),
            is_call: order.iter().map(|(_, is_return, _)| !is_return).collect(),
            partner: vec![END; count],
            // Entry i links to i + 1, the last one to END (set below), the head to entry 0.
            next: (1..=count).collect(),
            previous: vec![END; count + 1],
            head: count,
        };
        if let Some(last) = events.next.last_mut() {
            *last = END;
        }
        events.next.push(if count == 0 { END } else { 0 });
        for index in 0..count {
            events.previous[index] = if index == 0 { count } else { index - 1 };
        }
        let mut call_of = vec![END; intervals.len()];
        for index in 0..count {
            let operation = events.operation[index];
            if events.is_call[index] {
                call_of[operation] = index;
            } else {
                let call = call_of[operation];
                assert_ne!(call, END, "a return sorts after its call");
                events.partner[call] = index;
                events.partner[index] = call;
            }
        }
        events
    }

    fn first(&self) -> usize {
        self.next[self.head]
    }

    /// Removes a call and its return from the list.
    fn lift(&mut self, call: usize) {
        for entry in [call, self.partner[call]] {
            let (previous, next) = (self.previous[entry], self.next[entry]);
            self.next[previous] = next;
            if next != END {
                self.previous[next] = previous;
            }
        }
    }

    /// Puts back what `lift(call)` removed (in reverse order).
    fn unlift(&mut self, call: usize) {
        for entry in [self.partner[call], call] {
            let (previous, next) = (self.previous[entry], self.next[entry]);
            self.next[previous] = entry;
            if next != END {
                self.previous[next] = entry;
            }
        }
    }
}

/// A set of operations as bits.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Linearized(Vec<u64>);

impl Linearized {
    fn new(operations: usize) -> Linearized {
        Linearized(vec![0; operations.div_ceil(64)])
    }
    fn set(&mut self, operation: usize) {
        self.0[operation / 64] |= 1 << (operation % 64);
    }
    fn clear(&mut self, operation: usize) {
        self.0[operation / 64] &= !(1 << (operation % 64));
    }
}
