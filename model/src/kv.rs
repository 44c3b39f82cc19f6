//! The key-value state machine (`docs/protocol.md` §9.1, §14–§16), used twice: masters apply
//! the committed log to it, and the linearizability tester uses it as the sequential reference.
//!
//! One store serves both APIs. The register operations (`Get`, `Put`, `Cas`, `Delete`) answer
//! with the register version of §9.1, which counts every write of a key, deletes included. The
//! revisioned operations (`Range`, `Put`, `DeleteRange`, `Txn`, `Compact`) answer with etcd's
//! fields: the store's revision, and per key `create_revision`, `mod_revision` and the
//! generation's `version` (a delete ends the generation). Every write of either API makes one
//! revision; a `Txn` makes one however many keys it writes.
//!
//! The history (every revision's events from the compaction point on) is kept only when
//! something may read it: a range at an older revision, a watch catching up (`crate::txn`
//! reads it too). A store without it answers the register operations exactly as one with it.
//! Copies of a store share its history (`crate::revision_history`), so copying a store costs
//! its keys and not the length of the run.
//!
//! A refused operation (a definite error: `UnknownCluster`, `Overloaded`, `NoLeader`,
//! `InvalidRequest`) takes no effect, so the reference accepts a refusal at any point of the
//! order without changing state.

use crate::config::{Bug, Config};
use crate::kv_types::{
    ClientOperation, ClientResult, Event, EventKind, KeyRange, KeyValue, KvOperation, KvResult,
    RangeRequest, RangeResult, Revision, RevisionEvents,
};
use crate::lease_types::{LeaseId, LeaseTable};
use crate::revision_history::RevisionHistory;
use crate::state::Log;
use crate::types::{Command, Key, Operation, OperationResult, Slot, Value, Version};
use serde::{Deserialize, Serialize};
use stateright::semantics::SequentialSpec;
use std::collections::BTreeMap;

/// One key's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyState {
    /// The value; `None` when absent (deleted, or never written).
    pub value: Option<Value>,
    /// §9.1's version: one more for every write of the key, deletes included (0: never
    /// written). What `Get`, `Put`, `Cas` and `Delete` answer and compare.
    pub register_version: Version,
    /// The revision that created the current generation (0 when absent).
    pub create_revision: Revision,
    /// The revision of the last write of the current generation (0 when absent).
    pub mod_revision: Revision,
    /// Writes in the current generation, from 1 (0 when absent).
    pub version: Version,
    /// The lease the key is attached to (§20.1): a put without one detaches it, a delete
    /// clears it.
    #[serde(default)]
    pub lease: Option<LeaseId>,
}

impl KeyState {
    /// The API's record of a present key.
    fn record(&self, key: Key) -> Option<KeyValue> {
        self.value.map(|value| KeyValue {
            key,
            value: Some(value),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
        })
    }
}

/// The store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyValueStore {
    /// Every key ever written (a deleted key keeps its register version).
    pub keys: BTreeMap<Key, KeyState>,
    /// The store's revision: 1 when empty, one more per applied write (§14.1).
    pub revision: Revision,
    /// The compaction point: reads below it fail `Compacted` (0: nothing compacted, §16).
    pub compact_revision: Revision,
    /// The events of every revision from `compact_revision` on, oldest first, when kept.
    pub history: Option<RevisionHistory>,
    /// The server's bound on the keys one `Range` returns (`Config::range_limit_max`).
    pub range_limit_max: u8,
    /// Seeded bug `txn-partial-apply` (masters' stores only, never the reference).
    pub txn_partial_apply: bool,
    /// The live leases and their bounds (§20).
    #[serde(default)]
    pub leases: LeaseTable,
}

impl Default for KeyValueStore {
    /// An empty store at revision 1, without history, with no range bound but the type's.
    fn default() -> KeyValueStore {
        KeyValueStore {
            keys: BTreeMap::new(),
            revision: 1,
            compact_revision: 0,
            history: None,
            range_limit_max: u8::MAX,
            txn_partial_apply: false,
            leases: LeaseTable::default(),
        }
    }
}

impl KeyValueStore {
    /// The empty store a master of `config` starts from: history kept when `config` has
    /// revisioned clients, the range bound of `config`, and `txn-partial-apply` if seeded.
    pub fn for_master(config: &Config) -> KeyValueStore {
        let reference = KeyValueStore::reference(config);
        KeyValueStore {
            txn_partial_apply: config.has(Bug::TxnPartialApply),
            leases: LeaseTable {
                expire_ignores_generation: config.has(Bug::ExpireByDeposedLeader),
                end_keeps_keys: config.has(Bug::EphemeralOutlivesLease),
                ..reference.leases.clone()
            },
            ..reference
        }
    }

    /// The sequential reference of `config`: a correct store with the same bounds.
    pub fn reference(config: &Config) -> KeyValueStore {
        KeyValueStore {
            history: (!config.kv_clients.is_empty()).then(RevisionHistory::new),
            range_limit_max: config.range_limit_max,
            leases: LeaseTable {
                leases_max: config.leases_max,
                keys_per_lease_max: config.keys_per_lease_max,
                ..LeaseTable::default()
            },
            ..KeyValueStore::default()
        }
    }

    /// Applies one register operation and returns its result (§9.1).
    pub fn apply(&mut self, operation: &Operation) -> OperationResult {
        let key = match operation {
            Operation::Get { key }
            | Operation::Put { key, .. }
            | Operation::Cas { key, .. }
            | Operation::Delete { key } => *key,
        };
        let state = self.keys.get(&key).copied().unwrap_or_default();
        let version = state.register_version;
        match *operation {
            Operation::Get { .. } => OperationResult::Value {
                value: state.value,
                version,
            },
            Operation::Put { value, .. } => self.register_write(key, Some(value)),
            Operation::Cas {
                expected_version,
                value,
                ..
            } => {
                if expected_version == version {
                    self.register_write(key, Some(value))
                } else {
                    OperationResult::VersionMismatch {
                        current_version: version,
                    }
                }
            }
            Operation::Delete { .. } => match state.value {
                None => OperationResult::Deleted { version: 0 },
                Some(_) => match self.register_write(key, None) {
                    OperationResult::Written { version } => OperationResult::Deleted { version },
                    other => other,
                },
            },
        }
    }

    /// A register write (a `Delete` of a present key when `value` is `None`): one revision.
    fn register_write(&mut self, key: Key, value: Option<Value>) -> OperationResult {
        let mut batch = self.begin();
        match value {
            Some(value) => {
                batch.put(self, key, value);
            }
            None => {
                batch.delete(self, key);
            }
        }
        self.commit(batch);
        OperationResult::Written {
            version: self.keys[&key].register_version,
        }
    }

    /// Applies any client operation.
    pub fn apply_client(&mut self, operation: &ClientOperation) -> ClientResult {
        match operation {
            ClientOperation::Register(operation) => ClientResult::Register(self.apply(operation)),
            ClientOperation::Kv(operation) => ClientResult::Kv(self.apply_kv(operation)),
        }
    }

    /// Applies one revisioned operation and returns its result (§14–§16).
    pub fn apply_kv(&mut self, operation: &KvOperation) -> KvResult {
        match operation {
            KvOperation::Range(request) => self.range(request, None),
            KvOperation::Put(request) => {
                let mut batch = self.begin();
                let result = batch.put_request(self, request);
                self.commit(batch);
                KvResult::Put(result)
            }
            KvOperation::DeleteRange(request) => {
                let mut batch = self.begin();
                let result = batch.delete_range(self, request);
                self.commit(batch);
                KvResult::DeleteRange(Box::new(result))
            }
            KvOperation::Txn(request) => self.apply_txn(request),
            KvOperation::Compact { revision } => self.compact(*revision),
            KvOperation::LeaseGrant { lease, ttl_ticks } => self.lease_grant(*lease, *ttl_ticks),
            KvOperation::LeaseKeepAlive { lease } => self.lease_keep_alive(*lease),
            KvOperation::LeaseRevoke { lease } => self.lease_revoke(*lease),
            KvOperation::LeasePut { put, lease } => self.lease_put(put, *lease),
        }
    }

    /// `Range` at its revision, seeing `batch`'s writes (a `Txn`'s earlier operations) when
    /// reading the current state (§14.2).
    pub(crate) fn range(&self, request: &RangeRequest, batch: Option<&Batch>) -> KvResult {
        let visible = batch.map_or(self.revision, |batch| batch.visible_revision(self));
        if let Some(refusal) = self.check_read(request.revision) {
            return refusal;
        }
        let at = if request.revision == 0 {
            visible
        } else {
            request.revision
        };
        let records = self.records_at(at, request.range, batch);
        let limit = match request.limit {
            0 => self.range_limit_max,
            limit => limit.min(self.range_limit_max),
        } as usize;
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
        KvResult::Range(Box::new(RangeResult {
            more: !request.count_only && count > kvs.len(),
            kvs,
            count: count.min(u8::MAX as usize) as u8,
            revision: visible,
        }))
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

    /// The records of `range` at revision `at` (at most the store's revision, not compacted),
    /// in key order: the current state with `batch`'s writes and every later revision undone.
    fn records_at(&self, at: Revision, range: KeyRange, batch: Option<&Batch>) -> Vec<KeyValue> {
        let mut view: BTreeMap<Key, Option<KeyValue>> = self
            .keys
            .iter()
            .filter(|(key, _)| range.contains(**key))
            .map(|(key, state)| (*key, state.record(*key)))
            .collect();
        // Newest first: each key ends at the record before its oldest undone event.
        let mut undo: Vec<&Event> = Vec::new();
        if let Some(batch) = batch.filter(|batch| batch.wrote && at < batch.revision) {
            let events = batch.events.as_ref().unwrap_or_else(|| {
                panic!("a read at revision {at} before its own writes needs history")
            });
            undo.extend(events.iter().rev());
        }
        if at < self.revision {
            let history = self.history.as_ref().unwrap_or_else(|| {
                panic!(
                    "a read at revision {at} below {} needs history",
                    self.revision
                )
            });
            for revision in history
                .iter()
                .rev()
                .take_while(|record| record.revision > at)
            {
                undo.extend(revision.events.iter().rev());
            }
        }
        for event in undo {
            if range.contains(event.kv.key) {
                view.insert(event.kv.key, event.prev_kv);
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
        self.compact_revision = revision;
        if let Some(history) = &mut self.history {
            history.drop_below(revision);
        }
        KvResult::Compact {
            revision: self.revision,
        }
    }

    /// The events of revisions `from..=self.revision` (from the history; `from` at or above
    /// the compaction point).
    pub fn events_from(&self, from: Revision) -> Vec<RevisionEvents> {
        assert!(
            from >= self.compact_revision,
            "events from {from} below the compaction point {}",
            self.compact_revision
        );
        if from > self.revision {
            return Vec::new();
        }
        let history = self
            .history
            .as_ref()
            .expect("a watched store keeps history");
        history.from_revision(from).cloned().collect()
    }

    /// A write batch at the next revision (every write of one command shares it).
    pub(crate) fn begin(&self) -> Batch {
        Batch {
            revision: self.revision + 1,
            wrote: false,
            events: self.history.is_some().then(Vec::new),
        }
    }

    /// Ends `batch`: if it wrote, the store moves to its revision and records its events.
    pub(crate) fn commit(&mut self, batch: Batch) {
        if !batch.wrote {
            return;
        }
        self.revision = batch.revision;
        if let (Some(history), Some(events)) = (&mut self.history, batch.events) {
            history.push(RevisionEvents {
                revision: batch.revision,
                events,
            });
        }
    }

    /// Applies the commands of `log` slots `after + 1..=through` in order (gaps are skipped:
    /// a committed prefix has none).
    pub fn apply_log(&mut self, log: &Log, after: Slot, through: Slot) {
        if through <= after {
            return;
        }
        for entry in log.range(after + 1..=through).map(|(_, entry)| entry) {
            self.apply_command(&entry.command);
        }
    }

    /// Applies one log command; `None` for a `Noop` and for an expiry that is a no-op.
    pub fn apply_command(&mut self, command: &Command) -> Option<ClientResult> {
        match command {
            Command::Operation { operation, .. } => {
                Some(ClientResult::Register(self.apply(operation)))
            }
            Command::Kv { operation, .. } => Some(ClientResult::Kv(self.apply_kv(operation))),
            Command::LeaseExpire { lease, generation } => {
                self.lease_expire(*lease, *generation).map(ClientResult::Kv)
            }
            Command::Noop => None,
        }
    }
}

/// The writes of one command in progress, applied to the store's keys as they come: a later
/// read of the same `Txn` sees them, and they all carry `revision`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Batch {
    /// The revision every write of the batch carries.
    pub revision: Revision,
    /// Whether the batch wrote anything.
    pub wrote: bool,
    /// What the batch did so far, in order (each with the key's record before), when the
    /// store keeps history (a store without it serves the register operations only, and
    /// builds no events for them).
    pub events: Option<Vec<Event>>,
}

impl Batch {
    /// The revision a read in the batch sees: its own once it wrote.
    pub fn visible_revision(&self, store: &KeyValueStore) -> Revision {
        if self.wrote {
            self.revision
        } else {
            store.revision
        }
    }

    /// Records one write.
    fn record(&mut self, event: impl FnOnce() -> Event) {
        self.wrote = true;
        if let Some(events) = &mut self.events {
            events.push(event());
        }
    }

    /// Writes `value` to `key`; returns the key's record before.
    pub fn put(&mut self, store: &mut KeyValueStore, key: Key, value: Value) -> Option<KeyValue> {
        let state = store.keys.entry(key).or_default();
        let before = state.record(key);
        if before.is_none() {
            state.create_revision = self.revision;
            state.version = 0;
        }
        state.value = Some(value);
        state.lease = None;
        state.register_version += 1;
        state.mod_revision = self.revision;
        state.version += 1;
        let kv = state.record(key).expect("just written");
        self.record(|| Event {
            kind: EventKind::Put,
            kv,
            prev_kv: before,
        });
        before
    }

    /// Removes `key` if present (ending its generation); returns its record before.
    pub fn delete(&mut self, store: &mut KeyValueStore, key: Key) -> Option<KeyValue> {
        let state = store.keys.get_mut(&key)?;
        let before = state.record(key)?;
        state.value = None;
        state.lease = None;
        state.register_version += 1;
        state.create_revision = 0;
        state.mod_revision = 0;
        state.version = 0;
        let revision = self.revision;
        self.record(|| Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key,
                value: None,
                create_revision: 0,
                mod_revision: revision,
                version: 0,
            },
            prev_kv: Some(before),
        });
        Some(before)
    }
}

impl SequentialSpec for KeyValueStore {
    type Op = ClientOperation;
    type Ret = Option<ClientResult>;

    fn invoke(&mut self, operation: &ClientOperation) -> Option<ClientResult> {
        Some(self.apply_client(operation))
    }

    fn is_valid_step(
        &mut self,
        operation: &ClientOperation,
        result: &Option<ClientResult>,
    ) -> bool {
        match result {
            None => true,
            Some(result) => self.apply_client(operation) == *result,
        }
    }
}
