//! The replicated state machine (`protocol.md` §9.1, §14, §16): a multi-version key-value
//! store with etcd's semantics, and the snapshot that replaces a compacted log prefix (§7.4).
//!
//! It is deterministic and applied in slot order by every master, so all masters that applied the
//! same prefix hold the same store, revision and history. One store serves two APIs: the register
//! operations (`Get`, `Put`, `Cas`, `Delete`) answer with the register version of §9.1, which
//! counts every write of a key, deletes included ("a deleted key keeps counting from its last
//! version"), so a deleted key stays as a tombstone; the revisioned operations (`txn.rs`) answer
//! with the store's revision and each key's `create_revision`, `mod_revision` and generation
//! `version`. Every write of either API makes one revision.
//!
//! Memory: per key ever written one [`KeyState`] (key, value, three revisions, two versions);
//! per revision from the compaction point on its events, each two records (the key after and
//! before the change). The history is bounded by compaction: a `Compact` in the log, and the
//! store's own bound `history_revisions_max` (§16), applied at the same revision by every master.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::kv_types::{
    Event, EventKind, KeyRange, KeyValue, KvOperation, KvResult, RangeRequest, RangeResult,
    Revision, RevisionEvents,
};
use crate::types::{Command, Operation, OperationResult, Slot};

/// One key's register state: its value (None once deleted) and its register version (§9.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    /// The current value; None after a delete (the version is kept).
    pub value: Option<Vec<u8>>,
    /// Incremented by every write, starting at 1.
    pub version: u64,
}

/// One key's whole state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    /// The value and the register version of §9.1.
    pub register: Versioned,
    /// The revision that created the current generation (0 when absent).
    pub create_revision: Revision,
    /// The revision of the last write of the current generation (0 when absent).
    pub mod_revision: Revision,
    /// Writes in the current generation, from 1 (0 when absent).
    pub version: u64,
}

impl KeyState {
    /// The API's record of a present key.
    fn record(&self, key: &[u8]) -> Option<KeyValue> {
        self.register.value.as_ref().map(|value| KeyValue {
            key: key.to_vec(),
            value: Some(value.clone()),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
        })
    }
}

/// What bounds the store's answers and memory (`Config::range_limit_max`,
/// `Config::history_revisions_max`); every master of a cluster uses the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// The keys one `Range` returns at most (§14.2).
    pub range_limit_max: u64,
    /// The revisions the history keeps at most above the compaction point (§16).
    pub history_revisions_max: u64,
}

impl Default for StoreLimits {
    /// No bound but the type's (tests of the store's semantics).
    fn default() -> StoreLimits {
        StoreLimits {
            range_limit_max: u64::MAX,
            history_revisions_max: u64::MAX,
        }
    }
}

/// The key-value store. Keys never written are not stored (version 0).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvStore {
    /// Every key ever written (a deleted key keeps its register version). Serialized as a
    /// list of pairs, so that JSON (traces) can carry it as well as postcard (storage).
    #[serde(with = "key_pairs")]
    pub(crate) keys: BTreeMap<Vec<u8>, KeyState>,
    /// The store's revision: 1 when empty, one more per applied write (§14.1).
    pub(crate) revision: Revision,
    /// The compaction point: reads below it are refused `Compacted` (0: never compacted, §16).
    pub(crate) compact_revision: Revision,
    /// The events of every revision from the compaction point on, oldest first.
    pub(crate) history: VecDeque<RevisionEvents>,
}

impl Default for KvStore {
    /// An empty store at revision 1.
    fn default() -> KvStore {
        KvStore {
            keys: BTreeMap::new(),
            revision: 1,
            compact_revision: 0,
            history: VecDeque::new(),
        }
    }
}

impl KvStore {
    /// An empty store.
    pub fn new() -> KvStore {
        KvStore::default()
    }

    /// Reads a key's register state as stored here (status and tests: a client's `Get` is
    /// answered by [`KvStore::read`] only once the leader confirmed it still leads, §9.2).
    pub fn get(&self, key: &[u8]) -> Option<&Versioned> {
        self.keys.get(key).map(|state| &state.register)
    }

    /// A key's whole state (tests and status).
    pub fn key_state(&self, key: &[u8]) -> Option<&KeyState> {
        self.keys.get(key)
    }

    /// The store's revision (§14.1).
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// The compaction point (§16; 0 if never compacted).
    pub fn compact_revision(&self) -> Revision {
        self.compact_revision
    }

    /// The revisions the history holds (from the compaction point on).
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// The result of a `Get` without changing the store (`protocol.md` §9.2): what applying it
    /// would answer. Only a `Get` is read-only; anything else is a programmer error.
    pub fn read(&self, operation: &Operation) -> OperationResult {
        let Operation::Get { key } = operation else {
            panic!("only a Get is read without the log, not {operation:?}");
        };
        let (value, version) = match self.keys.get(key) {
            Some(state) => (state.register.value.clone(), state.register.version),
            None => (None, 0),
        };
        OperationResult::Value { value, version }
    }

    /// Number of keys stored, tombstones included.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True if no key was ever written.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Every key with its register state, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Versioned)> {
        self.keys.iter().map(|(key, state)| (key, &state.register))
    }

    /// Applies one register operation and returns its result (`protocol.md` §9.1).
    pub fn apply(&mut self, operation: &Operation, limits: StoreLimits) -> OperationResult {
        match operation {
            Operation::Get { .. } => self.read(operation),
            Operation::Put { key, value } => {
                let version = self.register_write(key, Some(value), limits);
                OperationResult::Written { version }
            }
            Operation::Cas {
                key,
                expected_version,
                value,
            } => {
                let current_version = self.register_version(key);
                if current_version != *expected_version {
                    return OperationResult::VersionMismatch { current_version };
                }
                let version = self.register_write(key, Some(value), limits);
                OperationResult::Written { version }
            }
            Operation::Delete { key } => {
                let present = self
                    .keys
                    .get(key)
                    .is_some_and(|state| state.register.value.is_some());
                if !present {
                    return OperationResult::Deleted { version: 0 };
                }
                let version = self.register_write(key, None, limits);
                OperationResult::Deleted { version }
            }
        }
    }

    fn register_version(&self, key: &[u8]) -> u64 {
        self.keys.get(key).map_or(0, |state| state.register.version)
    }

    /// A register write (a delete of a present key when `value` is None): one revision.
    fn register_write(&mut self, key: &[u8], value: Option<&[u8]>, limits: StoreLimits) -> u64 {
        let mut batch = self.begin();
        match value {
            Some(value) => {
                batch.put(self, key, value);
            }
            None => {
                batch.delete(self, key);
            }
        }
        self.commit(batch, limits);
        self.register_version(key)
    }

    /// Applies one log command with `limits`; None for a `Noop`.
    pub fn apply_command(&mut self, command: &Command, limits: StoreLimits) -> Option<Applied> {
        match command {
            Command::Operation { operation, .. } => {
                Some(Applied::Register(self.apply(operation, limits)))
            }
            Command::Kv { operation, .. } => Some(Applied::Kv(self.apply_kv(operation, limits))),
            Command::Noop => None,
        }
    }

    /// Applies one revisioned operation and returns its result (§14–§16).
    pub fn apply_kv(&mut self, operation: &KvOperation, limits: StoreLimits) -> KvResult {
        match operation {
            KvOperation::Range(request) => self.range(request, None, limits),
            KvOperation::Put(request) => {
                let mut batch = self.begin();
                let result = batch.put_request(self, request);
                self.commit(batch, limits);
                KvResult::Put(result)
            }
            KvOperation::DeleteRange(request) => {
                let mut batch = self.begin();
                let result = batch.delete_range(self, request);
                self.commit(batch, limits);
                KvResult::DeleteRange(result)
            }
            KvOperation::Txn(request) => self.apply_txn(request, limits, false),
            KvOperation::Compact { revision } => self.compact(*revision),
        }
    }

    /// `Range` at its revision (§14.2), seeing `batch`'s writes (a `Txn`'s earlier operations)
    /// when reading the current state. Read-only: a leader serves it without a log slot.
    pub fn range(
        &self,
        request: &RangeRequest,
        batch: Option<&Batch>,
        limits: StoreLimits,
    ) -> KvResult {
        let visible = batch.map_or(self.revision, |batch| batch.visible_revision(self));
        if let Some(refusal) = self.check_read(request.revision) {
            return refusal;
        }
        let at = if request.revision == 0 {
            visible
        } else {
            request.revision
        };
        let records = self.records_at(at, &request.range, batch);
        let limit = match request.limit {
            0 => limits.range_limit_max,
            limit => limit.min(limits.range_limit_max),
        };
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let count = records.len();
        let mut kvs: Vec<KeyValue> = if request.count_only {
            Vec::new()
        } else {
            records.into_iter().take(limit).collect()
        };
        if request.keys_only {
            for kv in &mut kvs {
                kv.value = None;
            }
        }
        KvResult::Range(RangeResult {
            more: !request.count_only && count > kvs.len(),
            kvs,
            count: count as u64,
            revision: visible,
        })
    }

    /// The refusal of a read at `revision`, if any: above the store's revision, or below the
    /// compaction point (0 reads the current revision).
    pub(crate) fn check_read(&self, revision: Revision) -> Option<KvResult> {
        if revision > self.revision {
            return Some(KvResult::FutureRevision {
                current_revision: self.revision,
            });
        }
        if revision != 0 && revision < self.compact_revision {
            return Some(KvResult::Compacted {
                compact_revision: self.compact_revision,
            });
        }
        None
    }

    /// The records of `range` at revision `at` (at most the store's, not compacted), in key
    /// order: the current state with `batch`'s writes and every later revision undone.
    fn records_at(&self, at: Revision, range: &KeyRange, batch: Option<&Batch>) -> Vec<KeyValue> {
        let mut view: BTreeMap<&[u8], Option<KeyValue>> = self
            .keys
            .iter()
            .filter(|(key, _)| range.contains(key))
            .map(|(key, state)| (key.as_slice(), state.record(key)))
            .collect();
        // Newest first: each key ends at the record before its oldest undone event.
        let mut undo: Vec<&Event> = Vec::new();
        if let Some(batch) = batch.filter(|batch| batch.wrote && at < batch.revision) {
            undo.extend(batch.events.iter().rev());
        }
        if at < self.revision {
            for revision in self
                .history
                .iter()
                .rev()
                .take_while(|record| record.revision > at)
            {
                undo.extend(revision.events.iter().rev());
            }
        }
        for event in undo {
            if range.contains(&event.kv.key) {
                view.insert(event.kv.key.as_slice(), event.prev_kv.clone());
            }
        }
        view.into_values().flatten().collect()
    }

    /// `Compact(revision)` (§16): moves the compaction point and drops the history below it.
    fn compact(&mut self, revision: Revision) -> KvResult {
        if revision <= self.compact_revision {
            return KvResult::Compacted {
                compact_revision: self.compact_revision,
            };
        }
        if revision > self.revision {
            return KvResult::FutureRevision {
                current_revision: self.revision,
            };
        }
        self.compact_to(revision);
        KvResult::Compact {
            revision: self.revision,
        }
    }

    fn compact_to(&mut self, revision: Revision) {
        self.compact_revision = revision;
        while self
            .history
            .front()
            .is_some_and(|record| record.revision < revision)
        {
            self.history.pop_front();
        }
    }

    /// The events of revisions `from..=revision` (`from` at or above the compaction point), in
    /// revision order: what a subscription from `from` is owed (§17.1).
    pub fn events_from(&self, from: Revision) -> impl Iterator<Item = &RevisionEvents> {
        assert!(
            from >= self.compact_revision,
            "events from {from} below the compaction point {}",
            self.compact_revision
        );
        let skip = self
            .history
            .partition_point(|record| record.revision < from);
        self.history.iter().skip(skip)
    }

    /// A write batch at the next revision (every write of one command shares it).
    pub(crate) fn begin(&self) -> Batch {
        Batch {
            revision: self.revision + 1,
            wrote: false,
            events: Vec::new(),
        }
    }

    /// Ends `batch`: if it wrote, the store moves to its revision and records its events; the
    /// history keeps at most `history_revisions_max` revisions above the compaction point.
    pub(crate) fn commit(&mut self, batch: Batch, limits: StoreLimits) {
        if !batch.wrote {
            return;
        }
        self.revision = batch.revision;
        self.history.push_back(RevisionEvents {
            revision: batch.revision,
            events: batch.events,
        });
        let kept = self.history.len() as u64;
        if kept > limits.history_revisions_max {
            let oldest_kept = self.revision + 1 - limits.history_revisions_max.max(1);
            self.compact_to(oldest_kept.max(self.compact_revision));
        }
    }
}

/// A read a leader answers from its applied state without a log slot once confirmed (§9.2):
/// a register `Get` or a revisioned `Range`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadOperation {
    /// A `Get`.
    Get(Operation),
    /// A `Range` (boxed: a waiting read stays as small as a `Get`'s, `read.rs`).
    Range(Box<RangeRequest>),
}

impl KvStore {
    /// The answer to `read` from the current state, without changing it.
    pub fn answer_read(&self, read: &ReadOperation, limits: StoreLimits) -> Applied {
        match read {
            ReadOperation::Get(operation) => Applied::Register(self.read(operation)),
            ReadOperation::Range(request) => Applied::Kv(self.range(request, None, limits)),
        }
    }
}

/// Serde for the key map as a sequence of `(key, state)` pairs: JSON map keys must be strings.
mod key_pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::KeyState;

    pub(super) fn serialize<S: Serializer>(
        keys: &BTreeMap<Vec<u8>, KeyState>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(keys.iter())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<Vec<u8>, KeyState>, D::Error> {
        let pairs = Vec::<(Vec<u8>, KeyState)>::deserialize(deserializer)?;
        Ok(pairs.into_iter().collect())
    }
}

/// What applying a log command answered: a register result or a revisioned one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Of a register operation (§9.1).
    Register(OperationResult),
    /// Of a revisioned operation (§14–§16).
    Kv(KvResult),
}

/// The writes of one command in progress, applied to the store's keys as they come: a later
/// read of the same `Txn` sees them, and they all carry `revision`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The revision every write of the batch carries.
    pub(crate) revision: Revision,
    /// Whether the batch wrote anything.
    pub(crate) wrote: bool,
    /// What the batch did so far, in order.
    pub(crate) events: Vec<Event>,
}

impl Batch {
    /// The revision a read in the batch sees: its own once it wrote.
    pub(crate) fn visible_revision(&self, store: &KvStore) -> Revision {
        if self.wrote {
            self.revision
        } else {
            store.revision
        }
    }

    /// Writes `value` to `key`; returns the key's record before.
    pub(crate) fn put(
        &mut self,
        store: &mut KvStore,
        key: &[u8],
        value: &[u8],
    ) -> Option<KeyValue> {
        let state = store.keys.entry(key.to_vec()).or_insert_with(|| KeyState {
            register: Versioned {
                value: None,
                version: 0,
            },
            create_revision: 0,
            mod_revision: 0,
            version: 0,
        });
        let before = state.record(key);
        if before.is_none() {
            state.create_revision = self.revision;
            state.version = 0;
        }
        state.register.value = Some(value.to_vec());
        state.register.version += 1;
        state.mod_revision = self.revision;
        state.version += 1;
        let kv = state.record(key).expect("just written");
        self.wrote = true;
        self.events.push(Event {
            kind: EventKind::Put,
            kv,
            prev_kv: before.clone(),
        });
        before
    }

    /// Removes `key` if present (ending its generation); returns its record before.
    pub(crate) fn delete(&mut self, store: &mut KvStore, key: &[u8]) -> Option<KeyValue> {
        let state = store.keys.get_mut(key)?;
        let before = state.record(key)?;
        state.register.value = None;
        state.register.version += 1;
        state.create_revision = 0;
        state.mod_revision = 0;
        state.version = 0;
        self.wrote = true;
        self.events.push(Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key.to_vec(),
                value: None,
                create_revision: 0,
                mod_revision: self.revision,
                version: 0,
            },
            prev_kv: Some(before.clone()),
        });
        Some(before)
    }
}

impl fmt::Display for KvStore {
    /// The register view: `{key=value@version, key=<deleted>@version}`, keys and values printed
    /// lossily as UTF-8 (the revisioned state prints with [`KvStore::revisioned`]).
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{{")?;
        for (index, (key, state)) in self.keys.iter().enumerate() {
            if index > 0 {
                write!(formatter, ", ")?;
            }
            let key = String::from_utf8_lossy(key);
            let register = &state.register;
            match &register.value {
                Some(value) => {
                    let value = String::from_utf8_lossy(value);
                    write!(formatter, "{key}={value}@{}", register.version)?;
                }
                None => write!(formatter, "{key}=<deleted>@{}", register.version)?,
            }
        }
        write!(formatter, "}}")
    }
}

/// The revisioned view of a store, for golden files: `rev=R compacted=C {key=value@create/mod/version ...}`,
/// present keys only.
pub struct Revisioned<'a>(&'a KvStore);

impl KvStore {
    /// The store as [`Revisioned`] prints it.
    pub fn revisioned(&self) -> Revisioned<'_> {
        Revisioned(self)
    }
}

impl fmt::Display for Revisioned<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let store = self.0;
        write!(
            formatter,
            "rev={} compacted={} history={} {{",
            store.revision,
            store.compact_revision,
            store.history.len()
        )?;
        let present = store
            .keys
            .iter()
            .filter_map(|(key, state)| state.record(key));
        for (index, kv) in present.enumerate() {
            if index > 0 {
                write!(formatter, " ")?;
            }
            write!(formatter, "{kv}")?;
        }
        write!(formatter, "}}")
    }
}

/// The state machine after applying every slot up to and including `slot` (§7.4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last slot the snapshot covers; 0 for the empty initial state.
    pub slot: Slot,
    /// The store after applying slots `1..=slot`.
    pub store: KvStore,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Vec<u8> {
        name.as_bytes().to_vec()
    }

    #[test]
    fn versions_count_through_deletes() {
        let mut store = KvStore::new();
        let put = Operation::Put {
            key: key("a"),
            value: key("1"),
        };
        assert_eq!(
            store.apply(&put, StoreLimits::default()),
            OperationResult::Written { version: 1 }
        );
        let delete = Operation::Delete { key: key("a") };
        assert_eq!(
            store.apply(&delete, StoreLimits::default()),
            OperationResult::Deleted { version: 2 }
        );
        assert_eq!(
            store.apply(&delete, StoreLimits::default()),
            OperationResult::Deleted { version: 0 }
        );
        let get = Operation::Get { key: key("a") };
        assert_eq!(
            store.apply(&get, StoreLimits::default()),
            OperationResult::Value {
                value: None,
                version: 2
            }
        );
        assert_eq!(
            store.apply(&put, StoreLimits::default()),
            OperationResult::Written { version: 3 }
        );
    }

    #[test]
    fn cas_checks_the_version() {
        let mut store = KvStore::new();
        let cas = |expected_version| Operation::Cas {
            key: key("k"),
            expected_version,
            value: key("v"),
        };
        assert_eq!(
            store.apply(&cas(0), StoreLimits::default()),
            OperationResult::Written { version: 1 }
        );
        assert_eq!(
            store.apply(&cas(0), StoreLimits::default()),
            OperationResult::VersionMismatch { current_version: 1 }
        );
        assert_eq!(
            store.apply(&cas(1), StoreLimits::default()),
            OperationResult::Written { version: 2 }
        );
        assert_eq!(
            store.apply(
                &Operation::Delete { key: key("never") },
                StoreLimits::default()
            ),
            OperationResult::Deleted { version: 0 }
        );
    }
}
