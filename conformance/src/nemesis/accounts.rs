//! The vocabulary of the revisioned part of a nemesis run: what the transaction clients did
//! (`BankRecord`), what each watcher received (`WatcherLog`), and the committed history of the
//! accounts' prefix as read back after the heal (`PrefixHistory`), which the checks of
//! `bank_check.rs` and `watch_check.rs` compare them with.
//!
//! Why these shapes: every revisioned answer carries a revision (`docs/protocol.md` §14.1), so
//! the checks order operations by revision instead of searching for a linearization, and the
//! prefix's whole history is a list of states, one per revision that changed it.

use std::collections::BTreeMap;
use std::fmt;

use vigil_core::kv_types::{Event, KeyValue, Revision, WatchEnd};

/// An account's balance as its value holds it (decimal).
pub fn balance_value(balance: u64) -> Vec<u8> {
    balance.to_string().into_bytes()
}

/// The balance a value holds, if it is one.
pub fn balance_of(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// "acct/0 = 17 (mod 40, version 3)", the trace's words for a record.
pub fn describe_record(record: &KeyValue) -> String {
    let value = record
        .value
        .as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    format!(
        "{} = {value} (mod {}, version {})",
        String::from_utf8_lossy(&record.key),
        record.mod_revision,
        record.version
    )
}

/// Several records, joined.
pub fn describe_records<'a>(records: impl IntoIterator<Item = &'a KeyValue>) -> String {
    let described: Vec<String> = records.into_iter().map(describe_record).collect();
    if described.is_empty() {
        "(none)".to_string()
    } else {
        described.join(", ")
    }
}

/// A transfer: a `Txn` comparing both accounts' `mod_revision` with what was read and, if
/// both hold, putting both new balances; otherwise reading the prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Each compared account with the `mod_revision` it must have.
    pub expected: Vec<(Vec<u8>, Revision)>,
    /// Each written account with its new balance.
    pub writes: Vec<(Vec<u8>, u64)>,
}

/// What a transaction client asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BankCall {
    /// A `Range` over the accounts' prefix.
    Read,
    /// A transfer.
    Transfer(Transfer),
}

/// How it ended, as far as the client knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BankOutcome {
    /// The `Range` answered: the accounts at the header revision.
    Read {
        /// The header revision.
        revision: Revision,
        /// The records, in key order.
        accounts: Vec<KeyValue>,
    },
    /// The transfer's compares held and its puts applied at `revision`.
    Committed {
        /// The transaction's revision.
        revision: Revision,
    },
    /// A compare did not hold: the failure branch read the accounts at `revision`.
    Refused {
        /// The transaction's (the store's) revision.
        revision: Revision,
        /// What the failure branch's `Range` returned.
        accounts: Vec<KeyValue>,
    },
    /// Definitely not applied (refused before the log, or no connection).
    Failed(String),
    /// No definite answer: the transfer may take effect at any time after its invocation, or
    /// never.
    Unknown(String),
}

/// One operation of one transaction client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankRecord {
    /// The client that ran it.
    pub client: usize,
    /// What was asked.
    pub call: BankCall,
    /// When the client sent it, nanoseconds since the run started.
    pub invoked_ns: u64,
    /// When the client got its answer (or gave up), nanoseconds since the run started.
    pub completed_ns: u64,
    /// The outcome.
    pub outcome: BankOutcome,
}

impl fmt::Display for BankRecord {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let call = match &self.call {
            BankCall::Read => "range(acct/)".to_string(),
            BankCall::Transfer(transfer) => {
                let expected: Vec<String> = transfer
                    .expected
                    .iter()
                    .map(|(key, revision)| {
                        format!("{}.mod = {revision}", String::from_utf8_lossy(key))
                    })
                    .collect();
                let writes: Vec<String> = transfer
                    .writes
                    .iter()
                    .map(|(key, balance)| format!("{} = {balance}", String::from_utf8_lossy(key)))
                    .collect();
                format!("txn({} ? {})", expected.join(" && "), writes.join(", "))
            }
        };
        let outcome = match &self.outcome {
            BankOutcome::Read { revision, accounts } => {
                format!("revision {revision}: {}", describe_records(accounts))
            }
            BankOutcome::Committed { revision } => format!("succeeded at revision {revision}"),
            BankOutcome::Refused { revision, accounts } => format!(
                "failed at revision {revision}, read {}",
                describe_records(accounts)
            ),
            BankOutcome::Failed(error) => format!("refused: {error}"),
            BankOutcome::Unknown(why) => format!("unknown ({why})"),
        };
        write!(
            formatter,
            "txn client {} {call} -> {outcome} [{:.3} s .. {:.3} s]",
            self.client,
            self.invoked_ns as f64 / 1e9,
            self.completed_ns as f64 / 1e9
        )
    }
}

/// One watch a watcher opened, from its creation to its end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchSegment {
    /// The revision it was opened from.
    pub start_revision: Revision,
    /// What it delivered, in order: each revision with its events.
    pub deliveries: Vec<(Revision, Vec<Event>)>,
    /// The highest revision a progress notification reported (0: none came).
    pub progress_revision: Revision,
    /// How it ended: a terminal outcome from the proxy, or why the watcher stopped reading
    /// (`None`: the watcher cancelled it at the end, or its connection was lost).
    pub end: Option<WatchEnd>,
    /// Why the watcher's connection failed, if it did.
    pub connection_error: Option<String>,
}

impl WatchSegment {
    /// The last revision this watch is known to have covered: everything of its range up to
    /// it was delivered (its last delivery, or a later progress notification), or one below
    /// its start if neither came.
    pub fn covered_revision(&self) -> Revision {
        let delivered = self.deliveries.last().map_or(0, |(revision, _)| *revision);
        delivered
            .max(self.progress_revision)
            .max(self.start_revision.saturating_sub(1))
    }
}

/// Everything one watcher received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatcherLog {
    /// The watcher.
    pub watcher: usize,
    /// Its watches, in order: each opened from the one before's covered revision plus one
    /// (or, after `Compacted`, from the compaction point).
    pub segments: Vec<WatchSegment>,
}

/// The committed history of the accounts' prefix, read back after the heal with linearizable
/// `Range`s (`readback.rs`): the prefix's state after each revision that changed it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrefixHistory {
    /// Each revision that changed the prefix, oldest first, with the prefix's records after it.
    pub states: Vec<(Revision, BTreeMap<Vec<u8>, KeyValue>)>,
    /// The store's revision when the history was read.
    pub final_revision: Revision,
}

impl PrefixHistory {
    /// The prefix's records at `revision` (empty before its first change).
    pub fn state_at(&self, revision: Revision) -> BTreeMap<Vec<u8>, KeyValue> {
        let after = self
            .states
            .partition_point(|(changed, _)| *changed <= revision);
        after
            .checked_sub(1)
            .map(|index| self.states[index].1.clone())
            .unwrap_or_default()
    }

    /// The records `revision` wrote (its changed keys, in key order), if it changed the prefix.
    pub fn changes_at(&self, revision: Revision) -> Option<Vec<KeyValue>> {
        let index = self
            .states
            .binary_search_by_key(&revision, |(changed, _)| *changed)
            .ok()?;
        Some(
            self.states[index]
                .1
                .values()
                .filter(|record| record.mod_revision == revision)
                .cloned()
                .collect(),
        )
    }

    /// The revisions that changed the prefix within `[from, to]`.
    pub fn revisions_within(&self, from: Revision, to: Revision) -> Vec<Revision> {
        self.states
            .iter()
            .map(|(revision, _)| *revision)
            .filter(|revision| (from..=to).contains(revision))
            .collect()
    }
}

/// A small history for the checks' unit tests: two accounts seeded with 5 each at revision 2
/// (revision 1 is the empty store's, 3 a register write), a transfer of 2 at revision 4, and
/// revision 5 (another register write) the final one.
#[cfg(test)]
pub mod fixtures {
    use super::*;

    /// A record of `key`.
    pub fn record(
        key: &str,
        balance: u64,
        create: Revision,
        modified: Revision,
        version: u64,
    ) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            value: Some(balance_value(balance)),
            create_revision: create,
            mod_revision: modified,
            version,
        }
    }

    /// The prefix's state of `records`.
    pub fn state(records: &[KeyValue]) -> BTreeMap<Vec<u8>, KeyValue> {
        records
            .iter()
            .map(|record| (record.key.clone(), record.clone()))
            .collect()
    }

    /// The seeding's records.
    pub fn seeded() -> Vec<KeyValue> {
        vec![record("acct/0", 5, 2, 2, 1), record("acct/1", 5, 2, 2, 1)]
    }

    /// The records after the transfer.
    pub fn transferred() -> Vec<KeyValue> {
        vec![record("acct/0", 3, 2, 4, 2), record("acct/1", 7, 2, 4, 2)]
    }

    /// The whole history.
    pub fn history() -> PrefixHistory {
        PrefixHistory {
            states: vec![(2, state(&seeded())), (4, state(&transferred()))],
            final_revision: 5,
        }
    }
}
