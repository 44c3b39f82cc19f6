//! The checks on the transaction clients' history, against the prefix's committed history read
//! back after the heal (`PrefixHistory`):
//!
//! - **money conserved**: at every revision of the history the accounts are exactly the seeded
//!   ones and their balances sum to the initial total, so no reachable state shows half a
//!   transfer; each revision changes the keys it names by one version each and nothing else;
//! - **every change is a transfer**: a transfer answered "succeeded at r" wrote exactly its
//!   balances at `r` on a state its compares held on; every other revision that changed the
//!   prefix is an indeterminate transfer that took effect — the one whose compares name the
//!   state before it and whose balances it wrote (the client's own amounts make that one
//!   transfer, `bank.rs`; identical candidates are interchangeable, and the earliest invoked is
//!   taken as it constrains least) — or the check fails;
//! - **reads and failure branches at their revision**: a `Range`'s records, and a failed
//!   transfer's failure-branch records, equal the history's state at the revision it reports,
//!   and a failed transfer's compares do not hold there;
//! - **real time, by revision**: every definite operation and every indeterminate transfer
//!   found in the history has a revision (a write's, or a read's header revision); an
//!   operation invoked after another completed has a larger revision if it writes and one at
//!   least as large if it reads, i.e. a read's revision lies between the writes completed
//!   before it was invoked and those invoked after it completed.
//!
//! What this does not check is listed in `docs/reliability.md` §3.

use std::collections::{BTreeMap, BTreeSet};

use vigil_core::kv_types::{KeyValue, Revision};

use super::accounts::{
    balance_of, describe_records, BankCall, BankOutcome, BankRecord, PrefixHistory, Transfer,
};
use super::bank::BankSettings;

/// Anomalies listed per check at most (the first ones tell the story).
const ANOMALIES_PER_CHECK_MAX: usize = 10;

/// What the transaction check counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BankSummary {
    /// Revisions that changed the prefix (the seeding included).
    pub changes: usize,
    /// Transfers answered "succeeded".
    pub committed: usize,
    /// Transfers answered "failed" (the failure branch ran).
    pub refused: usize,
    /// Reads answered.
    pub reads: usize,
    /// Operations refused before the log (not applied).
    pub failed: usize,
    /// Indeterminate transfers.
    pub unknown: usize,
    /// Indeterminate transfers found in the history (they took effect).
    pub unknown_applied: usize,
}

/// The verdict: the counts and every violation, in the trace's words.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BankVerdict {
    /// The counts.
    pub summary: BankSummary,
    /// The violations (empty: the history passed).
    pub anomalies: Vec<String>,
}

/// Runs every check of the module on `records` against `history`.
pub fn check(bank: &BankSettings, history: &PrefixHistory, records: &[BankRecord]) -> BankVerdict {
    let mut anomalies = Vec::new();
    let mut push = |found: Vec<String>| {
        let extra = found.len().saturating_sub(ANOMALIES_PER_CHECK_MAX);
        anomalies.extend(found.into_iter().take(ANOMALIES_PER_CHECK_MAX));
        if extra > 0 {
            anomalies.push(format!("... and {extra} more of the kind above"));
        }
    };
    push(check_conservation(bank, history));
    let (revisions, attribution) = attribute(history, records);
    push(attribution);
    push(check_reads(history, records));
    push(check_real_time(records, &revisions));
    BankVerdict {
        summary: summarize(history, records, &revisions),
        anomalies,
    }
}

fn summarize(
    history: &PrefixHistory,
    records: &[BankRecord],
    revisions: &BTreeMap<usize, Revision>,
) -> BankSummary {
    let mut summary = BankSummary {
        changes: history.states.len(),
        ..BankSummary::default()
    };
    for (index, record) in records.iter().enumerate() {
        match record.outcome {
            BankOutcome::Read { .. } => summary.reads += 1,
            BankOutcome::Committed { .. } => summary.committed += 1,
            BankOutcome::Refused { .. } => summary.refused += 1,
            BankOutcome::Failed(_) => summary.failed += 1,
            BankOutcome::Unknown(_) => {
                summary.unknown += 1;
                summary.unknown_applied += usize::from(revisions.contains_key(&index));
            }
        }
    }
    summary
}

fn state_words(state: &BTreeMap<Vec<u8>, KeyValue>) -> String {
    describe_records(state.values())
}

/// The seeding first, then at every revision: the accounts, each balance a number, the sum the
/// total, and only the changed keys changed, by one version each.
fn check_conservation(bank: &BankSettings, history: &PrefixHistory) -> Vec<String> {
    let mut anomalies = Vec::new();
    let accounts: BTreeSet<&Vec<u8>> = bank.accounts.iter().collect();
    match history.states.first() {
        None => anomalies.push("the accounts' history is empty: the seeding is missing".into()),
        Some((revision, state)) => {
            let seeded: Vec<(Vec<u8>, u64)> = bank
                .accounts
                .iter()
                .cloned()
                .zip(bank.initial_balances())
                .collect();
            let found: Vec<(Vec<u8>, u64)> = state
                .values()
                .map(|record| {
                    let balance = record.value.as_deref().and_then(balance_of);
                    (record.key.clone(), balance.unwrap_or(u64::MAX))
                })
                .collect();
            if found != seeded {
                anomalies.push(format!(
                    "revision {revision}, the first change of the accounts, is not the seeding: {}",
                    state_words(state)
                ));
            }
        }
    }
    let mut before: Option<&BTreeMap<Vec<u8>, KeyValue>> = None;
    for (revision, state) in &history.states {
        let keys: BTreeSet<&Vec<u8>> = state.keys().collect();
        let sum: Option<u64> = state
            .values()
            .map(|record| record.value.as_deref().and_then(balance_of))
            .sum();
        if keys != accounts || sum != Some(bank.total) {
            anomalies.push(format!(
                "revision {revision}: {}: the balances sum to {}, not the initial total {} (half a transfer?)",
                state_words(state),
                sum.map_or("no number".to_string(), |sum| sum.to_string()),
                bank.total
            ));
        }
        if let Some(before) = before {
            anomalies.extend(check_step(*revision, before, state));
        }
        before = Some(state);
    }
    anomalies
}

/// One revision's change: each key it wrote is one version on, with the same generation; every
/// other key is as it was.
fn check_step(
    revision: Revision,
    before: &BTreeMap<Vec<u8>, KeyValue>,
    after: &BTreeMap<Vec<u8>, KeyValue>,
) -> Option<String> {
    let consistent = after.iter().all(|(key, record)| match before.get(key) {
        None => record.mod_revision == revision && record.version == 1,
        Some(old) if record.mod_revision == revision => {
            record.version == old.version + 1 && record.create_revision == old.create_revision
        }
        Some(old) => old == record,
    }) && before.keys().all(|key| after.contains_key(key));
    (!consistent).then(|| {
        format!(
            "revision {revision} does not follow from the one before: {} then {}",
            state_words(before),
            state_words(after)
        )
    })
}

/// Whether `transfer`'s compares hold on `state`.
fn compares_hold(transfer: &Transfer, state: &BTreeMap<Vec<u8>, KeyValue>) -> bool {
    transfer
        .expected
        .iter()
        .all(|(key, revision)| state.get(key).map_or(0, |record| record.mod_revision) == *revision)
}

/// Whether `changes` (the records one revision wrote) are exactly `transfer`'s writes.
fn writes_match(transfer: &Transfer, changes: &[KeyValue]) -> bool {
    let written: BTreeSet<(Vec<u8>, Option<u64>)> = changes
        .iter()
        .map(|record| {
            let balance = record.value.as_deref().and_then(balance_of);
            (record.key.clone(), balance)
        })
        .collect();
    let wanted: BTreeSet<(Vec<u8>, Option<u64>)> = transfer
        .writes
        .iter()
        .map(|(key, balance)| (key.clone(), Some(*balance)))
        .collect();
    written == wanted
}

/// Whether `transfer` applied at `revision` of `history`.
fn applied_at(transfer: &Transfer, history: &PrefixHistory, revision: Revision) -> bool {
    history.changes_at(revision).is_some_and(|changes| {
        writes_match(transfer, &changes) && compares_hold(transfer, &history.state_at(revision - 1))
    })
}

/// Each write's revision (record index → revision): the definite successes where they say,
/// the indeterminate transfers where the history shows them; and the anomalies of both.
fn attribute(
    history: &PrefixHistory,
    records: &[BankRecord],
) -> (BTreeMap<usize, Revision>, Vec<String>) {
    let mut anomalies = Vec::new();
    let mut revisions = BTreeMap::new();
    let mut owner: BTreeMap<Revision, usize> = BTreeMap::new();
    for (index, record) in records.iter().enumerate() {
        let (BankCall::Transfer(transfer), BankOutcome::Committed { revision }) =
            (&record.call, &record.outcome)
        else {
            continue;
        };
        if !applied_at(transfer, history, *revision) {
            let wrote = history
                .changes_at(*revision)
                .map_or("nothing of the accounts".to_string(), |changes| {
                    describe_records(&changes)
                });
            anomalies.push(format!(
                "{record}; but revision {revision} wrote {wrote}, on {}",
                state_words(&history.state_at(revision.saturating_sub(1)))
            ));
        } else if let Some(other) = owner.insert(*revision, index) {
            anomalies.push(format!(
                "two transfers succeeded at revision {revision}: {} and {record}",
                records[other]
            ));
        }
        revisions.insert(index, *revision);
    }
    let mut unknown: Vec<usize> = (0..records.len())
        .filter(|&index| {
            matches!(records[index].outcome, BankOutcome::Unknown(_))
                && matches!(records[index].call, BankCall::Transfer(_))
        })
        .collect();
    unknown.sort_by_key(|&index| records[index].invoked_ns);
    for (revision, state) in history.states.iter().skip(1) {
        if owner.contains_key(revision) {
            continue;
        }
        let found = unknown
            .iter()
            .position(|&index| match &records[index].call {
                BankCall::Transfer(transfer) => applied_at(transfer, history, *revision),
                BankCall::Read => false,
            });
        match found {
            Some(position) => {
                let index = unknown.remove(position);
                owner.insert(*revision, index);
                revisions.insert(index, *revision);
            }
            None => anomalies.push(format!(
                "revision {revision} made {} and no transfer that may have applied wrote it",
                state_words(state)
            )),
        }
    }
    (revisions, anomalies)
}

/// Reads and failure branches against the state at their revision.
fn check_reads(history: &PrefixHistory, records: &[BankRecord]) -> Vec<String> {
    let mut anomalies = Vec::new();
    for record in records {
        let (revision, accounts) = match &record.outcome {
            BankOutcome::Read { revision, accounts }
            | BankOutcome::Refused { revision, accounts } => (*revision, accounts),
            _ => continue,
        };
        if revision > history.final_revision {
            anomalies.push(format!(
                "{record}: revision {revision} is past the final revision {}",
                history.final_revision
            ));
            continue;
        }
        let state = history.state_at(revision);
        let read: Vec<&KeyValue> = accounts.iter().collect();
        let held: Vec<&KeyValue> = state.values().collect();
        if read != held {
            anomalies.push(format!(
                "{record}; but at revision {revision} the history has {}",
                state_words(&state)
            ));
        }
        if let BankCall::Transfer(transfer) = &record.call {
            if compares_hold(transfer, &state) {
                anomalies.push(format!(
                    "{record}; but every compare holds at revision {revision}: {}",
                    state_words(&state)
                ));
            }
        }
    }
    anomalies
}

/// One operation placed by revision for the real-time check.
struct Placed {
    record: usize,
    revision: Revision,
    writes: bool,
}

/// Each definite operation and each found indeterminate transfer, with its revision.
fn placed(records: &[BankRecord], revisions: &BTreeMap<usize, Revision>) -> Vec<Placed> {
    let mut placed = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let revision = match &record.outcome {
            BankOutcome::Read { revision, .. } | BankOutcome::Refused { revision, .. } => {
                Some((*revision, false))
            }
            BankOutcome::Committed { .. } | BankOutcome::Unknown(_) => {
                revisions.get(&index).map(|revision| (*revision, true))
            }
            BankOutcome::Failed(_) => None,
        };
        if let Some((revision, writes)) = revision {
            placed.push(Placed {
                record: index,
                revision,
                writes,
            });
        }
    }
    placed
}

/// An operation invoked after another completed has a larger revision if it writes, one at
/// least as large if it reads. A sweep: operations by invocation, against the largest revision
/// of those completed before (an indeterminate transfer never completed).
fn check_real_time(records: &[BankRecord], revisions: &BTreeMap<usize, Revision>) -> Vec<String> {
    let placed = placed(records, revisions);
    let mut completed: Vec<&Placed> = placed
        .iter()
        .filter(|op| !matches!(records[op.record].outcome, BankOutcome::Unknown(_)))
        .collect();
    completed.sort_by_key(|op| records[op.record].completed_ns);
    let mut invoked: Vec<&Placed> = placed.iter().collect();
    invoked.sort_by_key(|op| records[op.record].invoked_ns);
    let mut anomalies = Vec::new();
    let mut latest: Option<&Placed> = None;
    let mut next = 0;
    for op in invoked {
        let invoked_ns = records[op.record].invoked_ns;
        while next < completed.len() && records[completed[next].record].completed_ns < invoked_ns {
            if latest.is_none_or(|latest| completed[next].revision > latest.revision) {
                latest = Some(completed[next]);
            }
            next += 1;
        }
        let Some(before) = latest else { continue };
        let in_order = if op.writes {
            before.revision < op.revision
        } else {
            before.revision <= op.revision
        };
        if !in_order {
            anomalies.push(format!(
                "{} (revision {}) was invoked after {} (revision {}) completed: {}",
                records[op.record],
                op.revision,
                records[before.record],
                before.revision,
                if op.writes {
                    "a write ordered before it"
                } else {
                    "a stale read"
                }
            ));
        }
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::accounts::fixtures::{history, record, seeded, state, transferred};

    fn bank() -> BankSettings {
        BankSettings::new(2, 10, 1)
    }

    fn at(invoked_ns: u64, completed_ns: u64, call: BankCall, outcome: BankOutcome) -> BankRecord {
        BankRecord {
            client: 0,
            call,
            invoked_ns,
            completed_ns,
            outcome,
        }
    }

    /// The transfer of 2 from `acct/0` to `acct/1` on the seeded state.
    fn transfer() -> BankCall {
        BankCall::Transfer(Transfer {
            expected: vec![(b"acct/0".to_vec(), 2), (b"acct/1".to_vec(), 2)],
            writes: vec![(b"acct/0".to_vec(), 3), (b"acct/1".to_vec(), 7)],
        })
    }

    fn read(invoked_ns: u64, revision: Revision, accounts: Vec<KeyValue>) -> BankRecord {
        at(
            invoked_ns,
            invoked_ns + 1,
            BankCall::Read,
            BankOutcome::Read { revision, accounts },
        )
    }

    /// A read of the seeding, the transfer, a read after it.
    fn records() -> Vec<BankRecord> {
        vec![
            read(0, 2, seeded()),
            at(2, 3, transfer(), BankOutcome::Committed { revision: 4 }),
            read(4, 5, transferred()),
        ]
    }

    #[test]
    fn a_consistent_history_passes() {
        let verdict = check(&bank(), &history(), &records());
        assert_eq!(verdict.anomalies, Vec::<String>::new());
        assert_eq!(verdict.summary.committed, 1);
        assert_eq!(verdict.summary.reads, 2);
    }

    #[test]
    fn an_indeterminate_transfer_is_found_by_what_it_wrote() {
        let mut records = records();
        records[1].outcome = BankOutcome::Unknown("timeout".into());
        let verdict = check(&bank(), &history(), &records);
        assert_eq!(verdict.anomalies, Vec::<String>::new());
        assert_eq!(verdict.summary.unknown_applied, 1);
        // Without it, the transfer's revision is a write nobody made.
        records.remove(1);
        let verdict = check(&bank(), &history(), &records);
        assert!(
            verdict.anomalies[0].contains("no transfer that may have applied wrote it"),
            "{:?}",
            verdict.anomalies
        );
    }

    #[test]
    fn half_a_transfer_fails() {
        let mut history = history();
        let half = vec![record("acct/0", 3, 2, 4, 2), record("acct/1", 5, 2, 2, 1)];
        history.states[1].1 = state(&half);
        let verdict = check(&bank(), &history, &records());
        assert!(
            verdict.anomalies[0].contains("sum to 8, not the initial total 10"),
            "{:?}",
            verdict.anomalies
        );
        let wrote = "; but revision 4 wrote acct/0 = 3 (mod 4, version 2), on acct/0 = 5";
        assert!(
            verdict
                .anomalies
                .iter()
                .any(|anomaly| anomaly.contains(wrote)),
            "{:?}",
            verdict.anomalies
        );
    }

    #[test]
    fn a_stale_read_fails() {
        let mut records = records();
        // Invoked after the transfer completed, answered from before it.
        records[2] = read(4, 2, seeded());
        let verdict = check(&bank(), &history(), &records);
        assert_eq!(verdict.anomalies.len(), 1, "{:?}", verdict.anomalies);
        assert!(verdict.anomalies[0].contains("a stale read"));
    }

    #[test]
    fn a_read_that_differs_from_the_history_fails() {
        let mut records = records();
        records[2] = read(4, 5, seeded());
        let verdict = check(&bank(), &history(), &records);
        assert!(
            verdict.anomalies[0].contains("but at revision 5 the history has acct/0 = 3"),
            "{:?}",
            verdict.anomalies
        );
    }

    #[test]
    fn a_failure_branch_where_the_compares_hold_fails() {
        let mut records = records();
        records.push(at(
            0,
            1,
            BankCall::Transfer(Transfer {
                expected: vec![(b"acct/0".to_vec(), 2), (b"acct/1".to_vec(), 2)],
                writes: vec![(b"acct/0".to_vec(), 0), (b"acct/1".to_vec(), 10)],
            }),
            BankOutcome::Refused {
                revision: 3,
                accounts: seeded(),
            },
        ));
        let verdict = check(&bank(), &history(), &records);
        assert!(
            verdict.anomalies[0].contains("every compare holds at revision 3"),
            "{:?}",
            verdict.anomalies
        );
    }

    #[test]
    fn a_write_ordered_before_one_that_completed_earlier_fails() {
        let mut records = records();
        // The transfer completes before the first read is invoked, which reads before it.
        records[1].invoked_ns = 0;
        records[1].completed_ns = 0;
        records[0].invoked_ns = 1;
        let verdict = check(&bank(), &history(), &records);
        assert!(
            verdict.anomalies[0].contains("a stale read"),
            "{:?}",
            verdict.anomalies
        );
    }
}
