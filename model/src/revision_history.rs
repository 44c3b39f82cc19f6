//! The history a key-value store keeps (every revision's events from its compaction point on,
//! `crate::kv`), as a sequence that copies of the store share: a master's store is copied at
//! every commit and every read (`State::store_through`), and conformance's replay keeps one per
//! master for the whole run (`crate::compaction`), so a copy that duplicated the history would
//! cost more the longer the run.
//!
//! The older revisions sit behind an `Arc` that every copy shares; a copy appends to a short
//! tail of its own. The tail is folded into the shared part in place when no other copy shares
//! it, and into a new shared part once it is as long as the shared one (so a chain of copies,
//! each appending, copies the whole history only each time it doubles). Equality, hashing and
//! serialization see the sequence alone, never where it is split: two histories with the same
//! revisions are equal, hash alike and serialize as the same list.

use crate::kv_types::{Revision, RevisionEvents};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Revisions appended to a tail before it is folded into the shared part in place.
pub const HISTORY_TAIL_REVISIONS_MAX: usize = 32;

/// A store's revisions, oldest first, each revision above the one before.
#[derive(Clone, Debug, Default)]
pub struct RevisionHistory {
    /// The older revisions, shared by every copy made since they were folded in.
    shared: Arc<Vec<RevisionEvents>>,
    /// The revisions appended since, this copy's own.
    tail: Vec<RevisionEvents>,
}

impl RevisionHistory {
    /// An empty history.
    pub fn new() -> RevisionHistory {
        RevisionHistory::default()
    }

    /// Revisions kept.
    pub fn len(&self) -> usize {
        self.shared.len() + self.tail.len()
    }

    /// Whether no revision is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The revisions, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &RevisionEvents> {
        self.shared.iter().chain(self.tail.iter())
    }

    /// The newest revision.
    pub fn last(&self) -> Option<&RevisionEvents> {
        self.tail.last().or_else(|| self.shared.last())
    }

    /// The revisions from `revision` on, oldest first, found by bisection (the revisions
    /// increase).
    pub fn from_revision(&self, revision: Revision) -> impl Iterator<Item = &RevisionEvents> {
        let below = |group: &RevisionEvents| group.revision < revision;
        let shared = &self.shared[self.shared.partition_point(below)..];
        let tail = &self.tail[self.tail.partition_point(below)..];
        shared.iter().chain(tail.iter())
    }

    /// Appends the newest revision.
    pub fn push(&mut self, group: RevisionEvents) {
        assert!(
            self.last()
                .is_none_or(|last| last.revision < group.revision),
            "revision {} appended after {:?}",
            group.revision,
            self.last().map(|last| last.revision)
        );
        self.tail.push(group);
        if self.tail.len() < HISTORY_TAIL_REVISIONS_MAX {
            return;
        }
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.append(&mut self.tail);
        } else if self.tail.len() >= self.shared.len() {
            let mut folded = Vec::with_capacity(self.len());
            folded.extend(self.shared.iter().cloned());
            folded.append(&mut self.tail);
            self.shared = Arc::new(folded);
        }
    }

    /// Drops the revisions below `revision` (a compaction, §16).
    pub fn drop_below(&mut self, revision: Revision) {
        let kept: Vec<RevisionEvents> = self.from_revision(revision).cloned().collect();
        self.shared = Arc::new(kept);
        self.tail.clear();
    }
}

impl PartialEq for RevisionHistory {
    fn eq(&self, other: &RevisionHistory) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for RevisionHistory {}

impl Hash for RevisionHistory {
    /// As the `Vec` of its revisions hashes: the length, then each revision.
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        for group in self.iter() {
            group.hash(state);
        }
    }
}

impl Serialize for RevisionHistory {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for RevisionHistory {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RevisionHistory, D::Error> {
        let revisions = Vec::<RevisionEvents>::deserialize(deserializer)?;
        Ok(RevisionHistory::from(revisions))
    }
}

impl From<Vec<RevisionEvents>> for RevisionHistory {
    fn from(revisions: Vec<RevisionEvents>) -> RevisionHistory {
        RevisionHistory {
            shared: Arc::new(revisions),
            tail: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn group(revision: Revision) -> RevisionEvents {
        RevisionEvents {
            revision,
            events: Vec::new(),
        }
    }

    fn hash_of(value: &impl Hash) -> u64 {
        let mut hasher = DefaultHasher::new();
        value.hash(&mut hasher);
        hasher.finish()
    }

    /// Copies appending at different times split the same sequence differently: they are
    /// equal, hash as the `Vec` of their revisions, and answer the same bisections.
    #[test]
    fn copies_split_differently_are_the_same_sequence() {
        let mut original = RevisionHistory::new();
        let mut plain = Vec::new();
        let mut copies = Vec::new();
        for revision in 2..200 {
            original.push(group(revision));
            plain.push(group(revision));
            if revision % 7 == 0 {
                copies.push((original.clone(), plain.clone()));
            }
            for (copy, expected) in &mut copies {
                copy.push(group(revision + 1_000));
                expected.push(group(revision + 1_000));
            }
        }
        for (copy, expected) in copies
            .iter()
            .chain([(original.clone(), plain.clone())].iter())
        {
            let as_vec = RevisionHistory::from(expected.clone());
            assert_eq!(*copy, as_vec);
            assert_eq!(hash_of(copy), hash_of(expected));
            assert_eq!(copy.iter().cloned().collect::<Vec<_>>(), *expected);
            for from in [0, 2, 50, 150, 1_100, 5_000] {
                let found: Vec<_> = copy.from_revision(from).cloned().collect();
                let filtered: Vec<_> = expected
                    .iter()
                    .filter(|group| group.revision >= from)
                    .cloned()
                    .collect();
                assert_eq!(found, filtered, "from {from}");
            }
        }
    }

    #[test]
    fn a_copy_shares_the_folded_revisions() {
        let mut history = RevisionHistory::new();
        for revision in 2..(2 + 3 * HISTORY_TAIL_REVISIONS_MAX as Revision) {
            history.push(group(revision));
        }
        assert!(history.tail.len() < HISTORY_TAIL_REVISIONS_MAX);
        let copy = history.clone();
        assert!(Arc::ptr_eq(&copy.shared, &history.shared));
    }

    #[test]
    fn dropping_below_a_revision_keeps_the_rest() {
        let mut history = RevisionHistory::from((2..50).map(group).collect::<Vec<_>>());
        history.push(group(50));
        history.drop_below(30);
        let revisions: Vec<Revision> = history.iter().map(|group| group.revision).collect();
        assert_eq!(revisions, (30..=50).collect::<Vec<_>>());
    }

    #[test]
    fn it_serializes_as_the_list_of_its_revisions() {
        let mut history = RevisionHistory::from(vec![group(2), group(3)]);
        history.push(group(4));
        let json = serde_json::to_string(&history).unwrap();
        let plain = serde_json::to_string(&vec![group(2), group(3), group(4)]).unwrap();
        assert_eq!(json, plain);
        let back: RevisionHistory = serde_json::from_str(&json).unwrap();
        assert_eq!(back, history);
    }
}
