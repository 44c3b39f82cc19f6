//! `Put`, `DeleteRange` and `Txn` on the store (`docs/protocol.md` §14.3, §15), as etcd's
//! `server/etcdserver/txn/txn.go` does them: a `Txn` evaluates every compare against the state
//! before it, picks a branch, checks the branch's reads (a read below the compaction point or
//! above the current revision refuses the whole `Txn`, before anything is written), then runs
//! the branch in order at one revision: a later read sees the branch's earlier writes.
//!
//! Why it is atomic: the writes of one command are one [`Batch`], committed as one revision, and
//! nothing can fail once the first write is made. The planted bug `txn-partial-apply` skips the
//! up-front check, so a read that fails part-way leaves the writes before it applied.

use std::cmp::Ordering;

use crate::kv::{Batch, KvStore, StoreLimits};
use crate::kv_types::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResult, KvResult,
    PutRequest, PutResult, TxnOperation, TxnOperationResult, TxnRequest, TxnResult,
};

impl Batch {
    /// `Put`: the key's record before, if asked for.
    pub(crate) fn put_request(&mut self, store: &mut KvStore, request: &PutRequest) -> PutResult {
        let before = self.put(store, &request.key, &request.value);
        PutResult {
            revision: self.revision,
            prev_kv: if request.prev_kv { before } else { None },
        }
    }

    /// `DeleteRange`: every present key of the range, in key order. Deleting nothing writes
    /// nothing, so the result carries the current revision.
    pub(crate) fn delete_range(
        &mut self,
        store: &mut KvStore,
        request: &DeleteRangeRequest,
    ) -> DeleteRangeResult {
        let present: Vec<Vec<u8>> = store
            .keys
            .iter()
            .filter(|(key, state)| request.range.contains(key) && state.register.value.is_some())
            .map(|(key, _)| key.clone())
            .collect();
        let mut prev_kvs = Vec::new();
        for key in &present {
            let before = self.delete(store, key);
            if request.prev_kv {
                prev_kvs.extend(before);
            }
        }
        DeleteRangeResult {
            revision: self.visible_revision(store),
            deleted: present.len() as u64,
            prev_kvs,
        }
    }
}

impl KvStore {
    /// Whether `compare` holds in the current state (etcd's `applyCompare`: an absent key has
    /// version and revisions 0, and a value compare on it is false).
    pub fn compare(&self, compare: &Compare) -> bool {
        let state = self.keys.get(&compare.key);
        let present = state.filter(|state| state.register.value.is_some());
        let field = |read: fn(&crate::kv::KeyState) -> u64| present.map_or(0, read);
        let ordering = match &compare.target {
            CompareTarget::Value(value) => match present.and_then(|s| s.register.value.as_ref()) {
                None => return false,
                Some(current) => current.cmp(value),
            },
            CompareTarget::Version(version) => field(|state| state.version).cmp(version),
            CompareTarget::CreateRevision(revision) => {
                field(|state| state.create_revision).cmp(revision)
            }
            CompareTarget::ModRevision(revision) => field(|state| state.mod_revision).cmp(revision),
        };
        match compare.result {
            CompareResult::Equal => ordering == Ordering::Equal,
            CompareResult::NotEqual => ordering != Ordering::Equal,
            CompareResult::Less => ordering == Ordering::Less,
            CompareResult::Greater => ordering == Ordering::Greater,
        }
    }

    /// `Txn` (§15): one revision if its branch writes, none otherwise. `partial_apply` is the
    /// planted bug `txn-partial-apply` (the refusal is found part-way, after writes).
    pub(crate) fn apply_txn(
        &mut self,
        request: &TxnRequest,
        limits: StoreLimits,
        partial_apply: bool,
    ) -> KvResult {
        let succeeded = request.compare.iter().all(|compare| self.compare(compare));
        let branch = if succeeded {
            &request.success
        } else {
            &request.failure
        };
        if !partial_apply {
            if let Some(refusal) = branch.iter().find_map(|operation| self.check(operation)) {
                return refusal;
            }
        }
        let mut batch = self.begin();
        let mut responses = Vec::new();
        for operation in branch {
            if let Some(refusal) = self.check(operation) {
                // Only reachable with the planted bug: the writes before stay applied.
                self.commit(batch, limits);
                return refusal;
            }
            responses.push(self.run(&mut batch, operation, limits));
        }
        let revision = batch.visible_revision(self);
        self.commit(batch, limits);
        for response in &mut responses {
            match response {
                TxnOperationResult::Range(result) => result.revision = revision,
                TxnOperationResult::Put(result) => result.revision = revision,
                TxnOperationResult::DeleteRange(result) => result.revision = revision,
            }
        }
        KvResult::Txn(TxnResult {
            revision,
            succeeded,
            responses,
        })
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
    fn run(
        &mut self,
        batch: &mut Batch,
        operation: &TxnOperation,
        limits: StoreLimits,
    ) -> TxnOperationResult {
        match operation {
            TxnOperation::Range(request) => match self.range(request, Some(batch), limits) {
                KvResult::Range(result) => TxnOperationResult::Range(result),
                refusal => panic!("a checked read was refused: {refusal:?}"),
            },
            TxnOperation::Put(request) => TxnOperationResult::Put(batch.put_request(self, request)),
            TxnOperation::DeleteRange(request) => {
                TxnOperationResult::DeleteRange(batch.delete_range(self, request))
            }
        }
    }
}
