//! `Put`, `DeleteRange` and `Txn` on the store (`docs/protocol.md` §14.3, §15), as etcd's
//! `server/etcdserver/txn/txn.go` does them: a `Txn` evaluates every compare against the state
//! before it, picks a branch, checks the branch's reads (a read below the compaction point or
//! above the current revision refuses the whole `Txn`, before anything is written), then runs
//! the branch in order at one revision: a later read sees the branch's earlier writes.
//!
//! Why it is atomic: the writes of one command are one [`Batch`], committed as one revision, and
//! nothing can fail once the first write is made. The seeded bug `txn-partial-apply` skips the
//! up-front check, so a read that fails part-way leaves the writes before it applied.

use crate::kv::{Batch, KeyValueStore};
use crate::kv_types::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResult, KvResult,
    PutRequest, PutResult, TxnOperation, TxnOperationResult, TxnRequest, TxnResult,
};
use crate::types::Key;
use std::cmp::Ordering;

impl Batch {
    /// `Put`: the key's record before, if asked for.
    pub fn put_request(&mut self, store: &mut KeyValueStore, request: &PutRequest) -> PutResult {
        let before = self.put(store, request.key, request.value);
        PutResult {
            revision: self.revision,
            prev_kv: if request.prev_kv { before } else { None },
        }
    }

    /// `DeleteRange`: every present key of the range, in key order. Deleting nothing writes
    /// nothing, so the result carries the current revision.
    pub fn delete_range(
        &mut self,
        store: &mut KeyValueStore,
        request: &DeleteRangeRequest,
    ) -> DeleteRangeResult {
        let present: Vec<Key> = store
            .keys
            .iter()
            .filter(|(key, state)| request.range.contains(**key) && state.value.is_some())
            .map(|(key, _)| *key)
            .collect();
        let mut prev_kvs = Vec::new();
        for key in &present {
            let before = self.delete(store, *key);
            if request.prev_kv {
                prev_kvs.extend(before);
            }
        }
        DeleteRangeResult {
            revision: self.visible_revision(store),
            deleted: present.len().min(u8::MAX as usize) as u8,
            prev_kvs,
        }
    }
}

impl KeyValueStore {
    /// Whether `compare` holds in the current state (etcd's `applyCompare`: an absent key has
    /// version and revisions 0, and a value compare on it is false).
    pub fn compare(&self, compare: &Compare) -> bool {
        let state = self.keys.get(&compare.key).copied().unwrap_or_default();
        let ordering = match compare.target {
            CompareTarget::Value(value) => match state.value {
                None => return false,
                Some(current) => current.cmp(&value),
            },
            CompareTarget::Version(version) => state.version.cmp(&version),
            CompareTarget::CreateRevision(revision) => state.create_revision.cmp(&revision),
            CompareTarget::ModRevision(revision) => state.mod_revision.cmp(&revision),
        };
        match compare.result {
            CompareResult::Equal => ordering == Ordering::Equal,
            CompareResult::NotEqual => ordering != Ordering::Equal,
            CompareResult::Less => ordering == Ordering::Less,
            CompareResult::Greater => ordering == Ordering::Greater,
        }
    }

    /// `Txn` (§15): one revision if its branch writes, none otherwise.
    pub fn apply_txn(&mut self, request: &TxnRequest) -> KvResult {
        let succeeded = request.compare.iter().all(|compare| self.compare(compare));
        let branch = if succeeded {
            &request.success
        } else {
            &request.failure
        };
        if !self.txn_partial_apply {
            if let Some(refusal) = branch.iter().find_map(|operation| self.check(operation)) {
                return refusal;
            }
        }
        let mut batch = self.begin();
        let mut responses = Vec::new();
        for operation in branch {
            // Seeded bug `txn-partial-apply`: the refusal is found part-way, after writes.
            if let Some(refusal) = self.check(operation) {
                self.commit(batch);
                return refusal;
            }
            responses.push(self.run(&mut batch, operation));
        }
        let revision = batch.visible_revision(self);
        self.commit(batch);
        for response in &mut responses {
            match response {
                TxnOperationResult::Range(result) => result.revision = revision,
                TxnOperationResult::Put(result) => result.revision = revision,
                TxnOperationResult::DeleteRange(result) => result.revision = revision,
            }
        }
        KvResult::Txn(Box::new(TxnResult {
            revision,
            succeeded,
            responses,
        }))
    }

    /// The refusal of a branch operation, checked before the branch runs: a read below the
    /// compaction point or above the revision before the `Txn`.
    fn check(&self, operation: &TxnOperation) -> Option<KvResult> {
        match operation {
            TxnOperation::Range(request) => self.check_read(request.revision),
            TxnOperation::Put(_) | TxnOperation::DeleteRange(_) => None,
        }
    }

    /// One branch operation within `batch`.
    fn run(&mut self, batch: &mut Batch, operation: &TxnOperation) -> TxnOperationResult {
        match operation {
            TxnOperation::Range(request) => match self.range(request, Some(batch)) {
                KvResult::Range(result) => TxnOperationResult::Range(*result),
                refusal => panic!("a checked read was refused: {refusal:?}"),
            },
            TxnOperation::Put(request) => TxnOperationResult::Put(batch.put_request(self, request)),
            TxnOperation::DeleteRange(request) => {
                TxnOperationResult::DeleteRange(batch.delete_range(self, request))
            }
        }
    }
}
