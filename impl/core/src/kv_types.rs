//! The vocabulary of the revisioned key-value API (`docs/protocol.md` §14–§16, etcd's KV
//! service): revisions, key ranges, key-value records, events, the operations `Range`, `Put`,
//! `DeleteRange`, `Txn` and `Compact` and their results. The names are the model's
//! (`model/src/kv_types.rs`); keys and values are bytes and counters are `u64` here.
//!
//! Plain data with serde derives: the host encodes it on the wire and in storage, and
//! conformance reads it back from traces.

use serde::{Deserialize, Serialize};

use crate::types::{ClientError, MasterError};

/// A cluster-wide counter of applied writes (§14.1): 1 for an empty store, one more for every
/// applied command that writes.
pub type Revision = u64;

/// Where a key range ends (§14.2).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RangeEnd {
    /// Only the range's key (etcd: `range_end` empty).
    Key,
    /// Keys in `[key, end)` (etcd: `range_end = end`).
    Before(Vec<u8>),
    /// Every key from the range's key on (etcd: `range_end = "\0"`).
    Unbounded,
}

/// A key or an interval of keys.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyRange {
    /// The first key.
    pub key: Vec<u8>,
    /// Where the range ends.
    pub end: RangeEnd,
}

impl KeyRange {
    /// Just `key`.
    pub fn single(key: &[u8]) -> KeyRange {
        KeyRange {
            key: key.to_vec(),
            end: RangeEnd::Key,
        }
    }

    /// Every key that starts with `prefix` (etcd's `WithPrefix`: `[prefix, prefix + 1)`; an
    /// empty prefix, or one of `0xff` bytes only, has no end).
    pub fn prefix(prefix: &[u8]) -> KeyRange {
        let mut end = prefix.to_vec();
        while let Some(last) = end.pop() {
            if last < u8::MAX {
                end.push(last + 1);
                return KeyRange {
                    key: prefix.to_vec(),
                    end: RangeEnd::Before(end),
                };
            }
        }
        KeyRange {
            key: prefix.to_vec(),
            end: RangeEnd::Unbounded,
        }
    }

    /// Whether `key` is in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        match &self.end {
            RangeEnd::Key => key == self.key.as_slice(),
            RangeEnd::Before(end) => self.key.as_slice() <= key && key < end.as_slice(),
            RangeEnd::Unbounded => self.key.as_slice() <= key,
        }
    }
}

/// One key's record as the API shows it (etcd's `mvccpb.KeyValue`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The value; `None` in a `keys_only` range and in a delete event.
    pub value: Option<Vec<u8>>,
    /// The revision that created the key's current generation (0 in a delete event).
    pub create_revision: Revision,
    /// The revision of the key's last write (a delete event: the delete's revision).
    pub mod_revision: Revision,
    /// Writes in the current generation, from 1 (0 in a delete event): a delete ends it.
    pub version: u64,
}

/// What an event did (§14.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// A write of a value.
    Put,
    /// A removal of a present key.
    Delete,
}

/// One change to one key at one revision (etcd's `mvccpb.Event`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change (for a delete: key and `mod_revision` only).
    pub kv: KeyValue,
    /// The key before the change (the store always keeps it: a read at an older revision
    /// undoes events with it; a watch gets it only if it asked).
    pub prev_kv: Option<KeyValue>,
}

/// Every event of one revision, in the order its command applied them (never empty).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RevisionEvents {
    /// The revision.
    pub revision: Revision,
    /// Its events.
    pub events: Vec<Event>,
}

/// `Range` (§14.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RangeRequest {
    /// The keys read.
    pub range: KeyRange,
    /// At most this many keys (0: no limit but the server's, `Config::range_limit_max`).
    pub limit: u64,
    /// The revision read at (0: the current one).
    pub revision: Revision,
    /// Values left out.
    pub keys_only: bool,
    /// Only the count.
    pub count_only: bool,
}

impl RangeRequest {
    /// Every key of `range` at the current revision, values included.
    pub fn of(range: KeyRange) -> RangeRequest {
        RangeRequest {
            range,
            limit: 0,
            revision: 0,
            keys_only: false,
            count_only: false,
        }
    }
}

/// `Put` (§14.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PutRequest {
    /// The key written.
    pub key: Vec<u8>,
    /// The value written.
    pub value: Vec<u8>,
    /// Whether the result carries the key's record before the write.
    pub prev_kv: bool,
}

/// `DeleteRange` (§14.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeleteRangeRequest {
    /// The keys removed.
    pub range: KeyRange,
    /// Whether the result carries the removed records.
    pub prev_kv: bool,
}

/// What a `Compare` looks at, with the operand (§15.1).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CompareTarget {
    /// The key's `version` (0 when absent).
    Version(u64),
    /// The key's `create_revision` (0 when absent).
    CreateRevision(Revision),
    /// The key's `mod_revision` (0 when absent).
    ModRevision(Revision),
    /// The key's value (a compare on the value of an absent key is false, as in etcd).
    Value(Vec<u8>),
}

/// How a `Compare` compares the key's field with the operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CompareResult {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `<`
    Less,
    /// `>`
    Greater,
}

/// One condition of a `Txn`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Compare {
    /// The key compared.
    pub key: Vec<u8>,
    /// The field and operand.
    pub target: CompareTarget,
    /// The comparison.
    pub result: CompareResult,
}

/// An operation of a `Txn` branch (no nested `Txn`, §15.1).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxnOperation {
    /// A read, which sees the branch's earlier writes.
    Range(RangeRequest),
    /// A write.
    Put(PutRequest),
    /// A removal.
    DeleteRange(DeleteRangeRequest),
}

/// `Txn { compare, success, failure }` (§15).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TxnRequest {
    /// All must hold for `success` to run; otherwise `failure` runs.
    pub compare: Vec<Compare>,
    /// The branch taken when every compare holds.
    pub success: Vec<TxnOperation>,
    /// The branch taken otherwise.
    pub failure: Vec<TxnOperation>,
}

/// A revisioned operation (§14–§16).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvOperation {
    /// Reads keys (through ReadIndex, like `Get`, §9.2).
    Range(RangeRequest),
    /// Writes a key.
    Put(PutRequest),
    /// Removes keys.
    DeleteRange(DeleteRangeRequest),
    /// Compares, then one branch, atomically at one revision.
    Txn(TxnRequest),
    /// Drops the history below `revision` (§16).
    Compact {
        /// The new compaction point.
        revision: Revision,
    },
}

impl KvOperation {
    /// Whether the operation only reads: a `Range`, served without a log entry (§9.2).
    pub fn is_read(&self) -> bool {
        matches!(self, KvOperation::Range(_))
    }
}

/// The answer to a `Range`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RangeResult {
    /// The records, in key order, at most the limit (empty with `count_only`).
    pub kvs: Vec<KeyValue>,
    /// Whether more keys are in the range than `kvs` holds.
    pub more: bool,
    /// The keys in the range at the revision read (the limit does not apply).
    pub count: u64,
    /// The store's revision when it answered (etcd's header revision).
    pub revision: Revision,
}

/// The answer to a `Put`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PutResult {
    /// The write's revision.
    pub revision: Revision,
    /// The key's record before, when asked and present.
    pub prev_kv: Option<KeyValue>,
}

/// The answer to a `DeleteRange`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeleteRangeResult {
    /// The delete's revision, or the current one when nothing was present.
    pub revision: Revision,
    /// Keys removed.
    pub deleted: u64,
    /// Their records before, when asked.
    pub prev_kvs: Vec<KeyValue>,
}

/// The answer to one operation of a `Txn` branch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxnOperationResult {
    /// Of a `Range`.
    Range(RangeResult),
    /// Of a `Put`.
    Put(PutResult),
    /// Of a `DeleteRange`.
    DeleteRange(DeleteRangeResult),
}

/// The answer to a `Txn`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TxnResult {
    /// The transaction's revision: one more than before if its branch wrote, else the current.
    pub revision: Revision,
    /// Whether every compare held (the success branch ran).
    pub succeeded: bool,
    /// One per operation of the branch that ran, in order.
    pub responses: Vec<TxnOperationResult>,
}

/// What a revisioned operation returns once ordered and applied (or read). `Compacted` and
/// `FutureRevision` are answers, not errors: the operation was ordered and refused by the
/// store, like a `VersionMismatch` (§9.1).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvResult {
    /// Of a `Range`.
    Range(RangeResult),
    /// Of a `Put`.
    Put(PutResult),
    /// Of a `DeleteRange`.
    DeleteRange(DeleteRangeResult),
    /// Of a `Txn`.
    Txn(TxnResult),
    /// Of a `Compact` that moved the compaction point.
    Compact {
        /// The store's revision (compaction makes none).
        revision: Revision,
    },
    /// A read below the compaction point, or a `Compact` at or below it: nothing applied
    /// (etcd's `ErrCompacted`).
    Compacted {
        /// The compaction point.
        compact_revision: Revision,
    },
    /// A read above the current revision, or a `Compact` above it: nothing applied (etcd's
    /// `ErrFutureRev`).
    FutureRevision {
        /// The store's revision.
        current_revision: Revision,
    },
}

impl KvResult {
    /// The store revision the answer carries, if it carries one (the two refusals do not).
    pub fn revision(&self) -> Option<Revision> {
        match self {
            KvResult::Range(result) => Some(result.revision),
            KvResult::Put(result) => Some(result.revision),
            KvResult::DeleteRange(result) => Some(result.revision),
            KvResult::Txn(result) => Some(result.revision),
            KvResult::Compact { revision } => Some(*revision),
            KvResult::Compacted { .. } | KvResult::FutureRevision { .. } => None,
        }
    }
}

/// What a master answers to a `KvPropose`.
pub type KvProposeOutcome = Result<KvResult, MasterError>;

/// What the proxy answers to a `KvRequest`.
pub type KvReplyOutcome = Result<KvResult, ClientError>;

/// A watch, named by its client: unique per client connection, like a request id.
pub type WatchId = u64;

/// What a watch asks for (§17.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WatchRequest {
    /// The keys watched.
    pub range: KeyRange,
    /// The first revision delivered (0: the proxy's next revision, etcd's "now", §17.2).
    pub start_revision: Revision,
    /// Whether events carry the record before the change.
    pub prev_kv: bool,
    /// Events of this kind are not delivered (etcd's `NOPUT` / `NODELETE`).
    pub filter: Option<EventKind>,
}

impl WatchRequest {
    /// The event as this watch delivers it, or `None` when it is not for this watch.
    pub fn view(&self, event: &Event) -> Option<Event> {
        if !self.range.contains(&event.kv.key) || self.filter == Some(event.kind) {
            return None;
        }
        Some(Event {
            kind: event.kind,
            kv: event.kv.clone(),
            prev_kv: if self.prev_kv {
                event.prev_kv.clone()
            } else {
                None
            },
        })
    }
}

/// How a watch ended: exactly one per watch (§17.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WatchEnd {
    /// The client cancelled it.
    Cancelled,
    /// Its next revision was below the compaction point of the master serving it.
    Compacted {
        /// That compaction point: the client may read at it and watch again from it.
        compact_revision: Revision,
    },
    /// Its client's connection closed (nothing is sent).
    ClientGone,
    /// It named a cluster the proxy does not serve.
    UnknownCluster,
    /// Its client read too slowly: `Config::watch_events_buffered_max` `WatchEvents` were
    /// waiting for it when another was due.
    Overflow,
    /// Its client already had `Config::watches_per_client_max` watches open.
    TooManyWatches,
    /// The host's token check refused it (outside the model, as for requests).
    PermissionDenied,
    /// A path dropped the watch without ending it: a bug, counted `dropped_unended`, which must
    /// stay 0 (outside the model: a correct proxy never does it).
    Dropped,
}
