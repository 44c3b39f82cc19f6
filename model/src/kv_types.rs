//! The vocabulary of the revisioned key-value API (`docs/protocol.md` §14–§17, etcd's KV and
//! Watch services): revisions, key-value records, events, the operations `Range`, `Put`,
//! `DeleteRange`, `Txn` and `Compact` with their results, and what a watch asks for and how it
//! ends.
//!
//! Every field is a few bits wide, as in `crate::types`: two or three keys, two values and a
//! handful of revisions already show every interleaving. [`ClientOperation`] and
//! [`ClientResult`] join these to the register operations of §9.1, which keep their own
//! messages and results.

use crate::lease_types::{LeaseError, LeaseId, Tick};
use crate::types::{Key, Operation, OperationResult, ProposeError, RequestError, Value, Version};
use serde::{Deserialize, Serialize};

/// A cluster-wide counter of applied writes (§14.1): 1 for an empty store, one more for every
/// applied command that writes.
pub type Revision = u32;

/// A watch, named by the script position of the step that created it (unique over the run,
/// like a request id).
pub type WatchId = u32;

/// Which keys a `Range`, `DeleteRange` or watch covers (§14.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RangeEnd {
    /// Only `key` (etcd: `range_end` empty).
    Key,
    /// Keys in `[key, end)` (etcd: `range_end = end`; a prefix is `[prefix, prefix + 1)`).
    Before(Key),
    /// Every key from `key` on (etcd: `range_end = "\0"`).
    Unbounded,
}

/// A key or an interval of keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyRange {
    /// The first key.
    pub key: Key,
    /// Where the range ends.
    pub end: RangeEnd,
}

impl KeyRange {
    /// Just `key`.
    pub fn single(key: Key) -> KeyRange {
        KeyRange {
            key,
            end: RangeEnd::Key,
        }
    }

    /// Every key from `key` on.
    pub fn from(key: Key) -> KeyRange {
        KeyRange {
            key,
            end: RangeEnd::Unbounded,
        }
    }

    /// Whether `key` is in the range.
    pub fn contains(&self, key: Key) -> bool {
        match self.end {
            RangeEnd::Key => key == self.key,
            RangeEnd::Before(end) => self.key <= key && key < end,
            RangeEnd::Unbounded => self.key <= key,
        }
    }
}

/// One key's record as the API shows it (etcd's `mvccpb.KeyValue`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: Key,
    /// The value; `None` in a `keys_only` range and in a delete event.
    pub value: Option<Value>,
    /// The revision that created the key's current generation (0 in a delete event).
    pub create_revision: Revision,
    /// The revision of the key's last write (a delete event: the delete's revision).
    pub mod_revision: Revision,
    /// Writes in the current generation, from 1 (0 in a delete event): a delete ends it.
    pub version: Version,
}

/// What an event did (§17.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// A write of a value.
    Put,
    /// A removal of a present key.
    Delete,
}

/// One change to one key at one revision (etcd's `mvccpb.Event`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change (for a delete: key and `mod_revision` only).
    pub kv: KeyValue,
    /// The key before the change, when the watch asked for it (the store always keeps it: a
    /// range at an older revision undoes events with it).
    pub prev_kv: Option<KeyValue>,
}

/// Every event of one revision: a revision's events are delivered together.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RevisionEvents {
    /// The revision.
    pub revision: Revision,
    /// Its events, in the order they were applied (never empty: only a write makes a
    /// revision).
    pub events: Vec<Event>,
}

/// `Range` (§14.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RangeRequest {
    /// The keys read.
    pub range: KeyRange,
    /// At most this many keys (0: no limit but the server's, `Config::range_limit_max`).
    pub limit: u8,
    /// The revision read at (0: the current one).
    pub revision: Revision,
    /// Values left out.
    pub keys_only: bool,
    /// Only the count.
    pub count_only: bool,
}

/// `Put` (§14.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PutRequest {
    /// The key written.
    pub key: Key,
    /// The value written.
    pub value: Value,
    /// Whether the result carries the key's record before the write.
    pub prev_kv: bool,
}

/// `DeleteRange` (§14.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeleteRangeRequest {
    /// The keys removed.
    pub range: KeyRange,
    /// Whether the result carries the removed records.
    pub prev_kv: bool,
}

/// What a `Compare` looks at, with the operand (§15.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CompareTarget {
    /// The key's `version` (0 when absent).
    Version(Version),
    /// The key's `create_revision` (0 when absent).
    CreateRevision(Revision),
    /// The key's `mod_revision` (0 when absent).
    ModRevision(Revision),
    /// The key's value (a compare on the value of an absent key is false, as in etcd).
    Value(Value),
}

/// How a `Compare` compares the key's field with the operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Compare {
    /// The key compared.
    pub key: Key,
    /// The field and operand.
    pub target: CompareTarget,
    /// The comparison.
    pub result: CompareResult,
}

/// An operation of a `Txn` branch (no nested `Txn`: §15.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TxnOperation {
    /// A read, which sees the branch's earlier writes.
    Range(RangeRequest),
    /// A write.
    Put(PutRequest),
    /// A removal.
    DeleteRange(DeleteRangeRequest),
}

/// `Txn { compare, success, failure }` (§15).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TxnRequest {
    /// All must hold for `success` to run; otherwise `failure` runs.
    pub compare: Vec<Compare>,
    /// The branch taken when every compare holds.
    pub success: Vec<TxnOperation>,
    /// The branch taken otherwise.
    pub failure: Vec<TxnOperation>,
}

/// A revisioned operation (§14–§16).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KvOperation {
    /// Reads keys (through ReadIndex, like `Get`, §9.2).
    Range(RangeRequest),
    /// Writes a key.
    Put(PutRequest),
    /// Removes keys.
    DeleteRange(DeleteRangeRequest),
    /// Compares, then one branch, atomically at one revision (boxed: it is the one large
    /// operation, and a log entry carries an operation).
    Txn(Box<TxnRequest>),
    /// Drops the history below `revision` (§16).
    Compact {
        /// The new compaction point.
        revision: Revision,
    },
    /// Grants lease `lease` with `ttl_ticks` (§20.1).
    LeaseGrant {
        /// The id the client chose.
        lease: LeaseId,
        /// Its time-to-live.
        ttl_ticks: Tick,
    },
    /// Renews lease `lease` for its ttl (§20.2): through the log only when needed.
    LeaseKeepAlive {
        /// The lease renewed.
        lease: LeaseId,
    },
    /// Ends lease `lease` and deletes its keys at one revision (§20.1).
    LeaseRevoke {
        /// The lease ended.
        lease: LeaseId,
    },
    /// A `Put` that attaches its key to lease `lease` (§20.1; etcd's `PutRequest.lease`).
    LeasePut {
        /// The write.
        put: PutRequest,
        /// The lease the key is attached to.
        lease: LeaseId,
    },
}

impl KvOperation {
    /// Whether the operation only reads: a `Range`, served without a log entry (§9.2).
    pub fn is_read(&self) -> bool {
        matches!(self, KvOperation::Range(_))
    }

    /// The lease the operation names, if it is a lease operation (§20).
    pub fn lease(&self) -> Option<LeaseId> {
        match self {
            KvOperation::LeaseGrant { lease, .. }
            | KvOperation::LeaseKeepAlive { lease }
            | KvOperation::LeaseRevoke { lease }
            | KvOperation::LeasePut { lease, .. } => Some(*lease),
            _ => None,
        }
    }
}

/// The answer to a `Range`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RangeResult {
    /// The records, in key order, at most the limit (empty with `count_only`).
    pub kvs: Vec<KeyValue>,
    /// Whether more keys are in the range than `kvs` holds.
    pub more: bool,
    /// The keys in the range at the revision read (the limit does not apply).
    pub count: u8,
    /// The store's revision when it answered (etcd's header revision).
    pub revision: Revision,
}

/// The answer to a `Put`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PutResult {
    /// The write's revision.
    pub revision: Revision,
    /// The key's record before, when asked and present.
    pub prev_kv: Option<KeyValue>,
}

/// The answer to a `DeleteRange`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeleteRangeResult {
    /// The delete's revision, or the current one when nothing was present.
    pub revision: Revision,
    /// Keys removed.
    pub deleted: u8,
    /// Their records before, when asked.
    pub prev_kvs: Vec<KeyValue>,
}

/// The answer to one operation of a `Txn` branch.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TxnOperationResult {
    /// Of a `Range`.
    Range(RangeResult),
    /// Of a `Put`.
    Put(PutResult),
    /// Of a `DeleteRange`.
    DeleteRange(DeleteRangeResult),
}

/// The answer to a `Txn`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TxnResult {
    /// The transaction's revision: one more than before if its branch wrote, else the current.
    pub revision: Revision,
    /// Whether every compare held (the success branch ran).
    pub succeeded: bool,
    /// One per operation of the branch that ran, in order.
    pub responses: Vec<TxnOperationResult>,
}

/// What a revisioned operation returns once ordered and applied (or read). The results holding
/// records are boxed, so that the messages carrying a result stay as small as the protocol's.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KvResult {
    /// Of a `Range`.
    Range(Box<RangeResult>),
    /// Of a `Put`.
    Put(PutResult),
    /// Of a `DeleteRange`.
    DeleteRange(Box<DeleteRangeResult>),
    /// Of a `Txn`.
    Txn(Box<TxnResult>),
    /// Of a `Compact` that moved the compaction point.
    Compact {
        /// The store's revision (compaction makes none).
        revision: Revision,
    },
    /// A read (a `Range`, or one in the `Txn` branch that ran) below the compaction point, or
    /// a `Compact` at or below it: nothing applied (etcd's `ErrCompacted`).
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
    /// Of a `LeaseGrant`: the lease is live with its ttl.
    LeaseGranted {
        /// The lease.
        lease: LeaseId,
        /// Its time-to-live.
        ttl_ticks: Tick,
    },
    /// Of a `LeaseKeepAlive`: the lease is renewed; its remaining ttl is the whole ttl.
    LeaseKeptAlive {
        /// The lease.
        lease: LeaseId,
        /// The remaining time-to-live.
        ttl_ticks: Tick,
    },
    /// Of a `LeaseRevoke` (and of an expiry that took effect): the lease ended, its keys
    /// deleted at `revision` (the current one when it had none).
    LeaseRevoked {
        /// The store's revision after it.
        revision: Revision,
    },
    /// A lease operation refused: nothing applied.
    LeaseRefused(LeaseError),
}

impl KvResult {
    /// The store revision the answer carries, if it carries one (the two refusals do not).
    pub fn revision(&self) -> Option<Revision> {
        match self {
            KvResult::Range(result) => Some(result.revision),
            KvResult::Put(result) => Some(result.revision),
            KvResult::DeleteRange(result) => Some(result.revision),
            KvResult::Txn(result) => Some(result.revision),
            KvResult::Compact { revision } | KvResult::LeaseRevoked { revision } => Some(*revision),
            KvResult::Compacted { .. }
            | KvResult::FutureRevision { .. }
            | KvResult::LeaseGranted { .. }
            | KvResult::LeaseKeptAlive { .. }
            | KvResult::LeaseRefused(_) => None,
        }
    }
}

/// What a watch asks for (§17.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WatchRequest {
    /// The keys watched.
    pub range: KeyRange,
    /// The first revision delivered (at least 1 in the model; etcd's 0, "now", is resolved by
    /// the proxy, §17.2).
    pub start_revision: Revision,
    /// Whether events carry the record before the change.
    pub prev_kv: bool,
    /// Events of this kind are not delivered (etcd's `NOPUT` / `NODELETE`).
    pub filter: Option<EventKind>,
}

impl WatchRequest {
    /// The event as this watch delivers it, or `None` when it is not for this watch.
    pub fn view(&self, event: &Event) -> Option<Event> {
        if !self.range.contains(event.kv.key) || self.filter == Some(event.kind) {
            return None;
        }
        Some(Event {
            prev_kv: if self.prev_kv { event.prev_kv } else { None },
            ..*event
        })
    }
}

/// How a watch ended: exactly one per watch (§17.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
    /// Its client read too slowly: `Config::watch_events_buffered_max` event messages were
    /// waiting for it when another was due.
    Overflow,
    /// Its client already had `Config::watches_per_client_max` watches open.
    TooManyWatches,
}

/// Any operation a client sends: a register operation (§9.1) or a revisioned one (§14).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ClientOperation {
    /// `Get`, `Put`, `Cas`, `Delete`.
    Register(Operation),
    /// `Range`, `Put`, `DeleteRange`, `Txn`, `Compact`.
    Kv(KvOperation),
}

impl ClientOperation {
    /// Whether a leader that serves reads answers it without a log entry (§9.2).
    pub fn is_read(&self) -> bool {
        match self {
            ClientOperation::Register(operation) => matches!(operation, Operation::Get { .. }),
            ClientOperation::Kv(operation) => operation.is_read(),
        }
    }
}

/// What a [`ClientOperation`] returns.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ClientResult {
    /// Of a register operation.
    Register(OperationResult),
    /// Of a revisioned operation.
    Kv(KvResult),
}

/// What a master answers to a `KvPropose`.
pub type KvProposeOutcome = Result<KvResult, ProposeError>;
/// What the proxy answers to a `KvRequest`.
pub type KvRequestOutcome = Result<KvResult, RequestError>;
