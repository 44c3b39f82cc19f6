//! The abstraction a design review compares two versions of the model on (`docs/model.md`,
//! Review): what an engineer reviewing a protocol change asks of a state — each master's role,
//! ballot, commit index, log length and, at a leader, its active and evicted sets; the proxy's
//! request and watch ledgers; the committed key-value state. Two versions reach the same
//! abstract states when the change did not alter what the protocol can do at that grain, even
//! if their full states differ (a renamed field, a reordered message queue).
//!
//! An abstract state is one line of text, so that versions built from different commits (with
//! different types) compare by string. The [`Observer`] collects the abstract states a search
//! reaches, and flags those in a target set (to find example paths to them).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::state::{Master, Role, State};
use crate::types::NodeSet;

/// The abstract state of `state` as one line.
pub fn abstract_state(config: &Config, state: &State) -> String {
    let mut line = String::new();
    for (node, master) in state.masters.iter().enumerate() {
        write_master(&mut line, node, master);
    }
    let ledger = &state.proxy.ledger;
    let watches = &state.proxy.watch_ledger;
    let _ = write!(
        line,
        "proxy accepted={} ok={} err={} in_flight={} watches={}/{}/{} | ",
        ledger.accepted,
        ledger.completed_ok,
        ledger.completed_err,
        ledger.in_flight,
        watches.opened,
        watches.ended,
        watches.open
    );
    write_committed_store(&mut line, config, state);
    line
}

fn write_master(line: &mut String, node: usize, master: &Master) {
    let role = match &master.role {
        Role::Follower => "F".to_string(),
        Role::PreCandidate { ballot, .. } => format!("P{ballot}"),
        Role::Candidate { ballot, .. } => format!("C{ballot}"),
        Role::Leader(leader) => format!(
            "L{} active={} evicted={}",
            leader.ballot,
            set(leader.active),
            set(leader.evicted)
        ),
    };
    let flags = match (master.crashed, master.paused) {
        (true, _) => " crashed",
        (false, true) => " paused",
        (false, false) => "",
    };
    let log_length = master.log.keys().next_back().copied().unwrap_or(0);
    let _ = write!(
        line,
        "m{node} {role} promised={} commit={} log={log_length}{flags} | ",
        master.promised, master.commit_index
    );
}

fn set(nodes: NodeSet) -> String {
    let members: Vec<String> = nodes.iter().map(|node| node.to_string()).collect();
    format!("{{{}}}", members.join(","))
}

/// The store at the highest commit index any master has: what a linearizable read could return.
fn write_committed_store(line: &mut String, config: &Config, state: &State) {
    let Some((node, master)) = state
        .masters
        .iter()
        .enumerate()
        .max_by_key(|(_, master)| master.commit_index)
    else {
        return;
    };
    let store = state.store_through(config, node as u8, master.commit_index);
    let _ = write!(
        line,
        "store revision={} compact={} {{",
        store.revision, store.compact_revision
    );
    let present: Vec<String> = store
        .keys
        .iter()
        .filter_map(|(key, key_state)| key_state.value.map(|value| format!("{key}={value}")))
        .collect();
    let _ = write!(line, "{}}}", present.join(","));
}

/// Collects the abstract states a search reaches (every state the checker generates within its
/// boundary), and whether one of `targets` was reached. Not part of the model: a `Config` with
/// an observer equals and hashes as one without.
#[derive(Clone, Default)]
pub struct Observer {
    inner: Arc<ObserverState>,
}

#[derive(Default)]
struct ObserverState {
    /// Each abstract state reached, with how many generated states mapped to it.
    reached: Mutex<BTreeMap<String, u64>>,
    /// Abstract states whose full states the `review_target_reached` witness looks for.
    targets: BTreeSet<String>,
}

impl Observer {
    /// An observer that only collects.
    pub fn collecting() -> Observer {
        Observer::default()
    }

    /// An observer whose `review_target_reached` witness is any state abstracting to one of
    /// `targets`.
    pub fn targeting(targets: BTreeSet<String>) -> Observer {
        Observer {
            inner: Arc::new(ObserverState {
                reached: Mutex::default(),
                targets,
            }),
        }
    }

    /// Records `state`'s abstract state.
    pub fn observe(&self, config: &Config, state: &State) {
        let line = abstract_state(config, state);
        let mut reached = self.inner.reached.lock().expect("observer lock");
        *reached.entry(line).or_default() += 1;
    }

    /// Whether `state` abstracts to a target.
    pub fn is_target(&self, config: &Config, state: &State) -> bool {
        !self.inner.targets.is_empty()
            && self.inner.targets.contains(&abstract_state(config, state))
    }

    /// Whether it has targets (then the witness is part of the property list).
    pub fn has_targets(&self) -> bool {
        !self.inner.targets.is_empty()
    }

    /// The abstract states reached so far.
    pub fn reached(&self) -> BTreeMap<String, u64> {
        self.inner.reached.lock().expect("observer lock").clone()
    }
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Observer({} targets)", self.inner.targets.len())
    }
}

impl PartialEq for Observer {
    fn eq(&self, _: &Observer) -> bool {
        true
    }
}

impl Eq for Observer {}

impl std::hash::Hash for Observer {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}
