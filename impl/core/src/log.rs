//! A master's accepted log above its snapshot (`docs/protocol.md` §2, §7.4).
//!
//! Paxos slots are written independently (a later ballot replaces an entry in place), so the log
//! is a map from slot to entry rather than an append-only vector; the snapshot stands for every
//! slot at or below its own.

use std::collections::BTreeMap;

use crate::kv::Snapshot;
use crate::types::{Entry, Slot};

/// The snapshot plus the accepted entries above it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Log {
    snapshot: Snapshot,
    entries: BTreeMap<Slot, Entry>,
}

impl Log {
    /// A log restored from storage; entries at or below the snapshot are ignored.
    pub(crate) fn restore(snapshot: Snapshot, entries: Vec<Entry>) -> Log {
        let mut log = Log {
            snapshot,
            entries: BTreeMap::new(),
        };
        for entry in entries {
            log.insert(entry);
        }
        log
    }

    /// The snapshot (slot 0 and an empty store until the first compaction).
    pub(crate) fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The highest slot with an entry, or the snapshot's slot if there is none above it.
    pub(crate) fn last_slot(&self) -> Slot {
        self.entries
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.snapshot.slot)
    }

    /// The entry in `slot`, if accepted and not compacted.
    pub(crate) fn get(&self, slot: Slot) -> Option<&Entry> {
        self.entries.get(&slot)
    }

    /// Stores an entry, replacing any entry in the same slot. Returns false (and stores nothing)
    /// when the slot is already covered by the snapshot.
    pub(crate) fn insert(&mut self, entry: Entry) -> bool {
        if entry.slot <= self.snapshot.slot {
            return false;
        }
        self.entries.insert(entry.slot, entry);
        true
    }

    /// Every entry in slots above `slot`, in slot order.
    pub(crate) fn entries_above(&self, slot: Slot) -> Vec<Entry> {
        self.entries
            .range(slot + 1..)
            .map(|(_, entry)| entry.clone())
            .collect()
    }

    /// Replaces the prefix up to `snapshot.slot` by the snapshot. Never moves backwards.
    pub(crate) fn compact(&mut self, snapshot: Snapshot) {
        assert!(
            snapshot.slot >= self.snapshot.slot,
            "a snapshot never moves backwards"
        );
        self.entries = self.entries.split_off(&(snapshot.slot + 1));
        self.snapshot = snapshot;
    }
}
