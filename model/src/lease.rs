//! The store's side of leases (`docs/protocol.md` §20.1–§20.3, etcd's lessor): grant,
//! keep-alive through the log, revoke, a put attached to a lease, and a leader's expiry — each
//! a log command applied in slot order at every master, so every master holds the same leases
//! with the same generations and ends each at the same revision.
//!
//! A lease's end (revoke, or an expiry that applies) deletes every key attached to it in one
//! batch at one revision, in key order, as `DeleteRange` does; with no key attached it makes no
//! revision. An expiry applies only while the lease is live at the generation it carries: a
//! keep-alive ordered before it in the log makes it a no-op, whoever proposed it.

use crate::kv::KeyValueStore;
use crate::kv_types::{KvResult, PutRequest};
use crate::lease_types::{LeaseError, LeaseGeneration, LeaseId, LeaseRecord, Tick};
use crate::types::Key;

impl KeyValueStore {
    /// `LeaseGrant`: a new live lease at generation 0.
    pub(crate) fn lease_grant(&mut self, lease: LeaseId, ttl_ticks: Tick) -> KvResult {
        let table = &mut self.leases;
        if table.leases.contains_key(&lease) {
            return KvResult::LeaseRefused(LeaseError::Exists);
        }
        if table.leases.len() >= table.leases_max as usize {
            return KvResult::LeaseRefused(LeaseError::TooManyLeases);
        }
        let record = LeaseRecord {
            ttl_ticks,
            generation: 0,
        };
        table.leases.insert(lease, record);
        KvResult::LeaseGranted { lease, ttl_ticks }
    }

    /// `LeaseKeepAlive` from the log: the generation moves on, which makes stale every expiry
    /// proposed before it was applied.
    pub(crate) fn lease_keep_alive(&mut self, lease: LeaseId) -> KvResult {
        let Some(record) = self.leases.leases.get_mut(&lease) else {
            return KvResult::LeaseRefused(LeaseError::NotFound);
        };
        record.generation += 1;
        KvResult::LeaseKeptAlive {
            lease,
            ttl_ticks: record.ttl_ticks,
        }
    }

    /// `LeaseRevoke`: the lease ends with its keys.
    pub(crate) fn lease_revoke(&mut self, lease: LeaseId) -> KvResult {
        if !self.leases.leases.contains_key(&lease) {
            return KvResult::LeaseRefused(LeaseError::NotFound);
        }
        self.end_lease(lease)
    }

    /// A leader's expiry: the lease ends if it is live at `generation` (seeded bug
    /// `expire-by-deposed-leader`: at any generation); otherwise nothing happens (`None`).
    pub(crate) fn lease_expire(
        &mut self,
        lease: LeaseId,
        generation: LeaseGeneration,
    ) -> Option<KvResult> {
        let record = self.leases.leases.get(&lease)?;
        if record.generation != generation && !self.leases.expire_ignores_generation {
            return None;
        }
        Some(self.end_lease(lease))
    }

    /// A `Put` attached to `lease`: refused unless the lease is live and has room for the key.
    pub(crate) fn lease_put(&mut self, put: &PutRequest, lease: LeaseId) -> KvResult {
        if !self.leases.leases.contains_key(&lease) {
            return KvResult::LeaseRefused(LeaseError::NotFound);
        }
        let attached = self.keys_of(lease);
        let full = attached.len() >= self.leases.keys_per_lease_max as usize;
        if full && !attached.contains(&put.key) {
            return KvResult::LeaseRefused(LeaseError::TooManyKeys);
        }
        let mut batch = self.begin();
        let result = batch.put_request(self, put);
        self.keys.get_mut(&put.key).expect("just written").lease = Some(lease);
        self.commit(batch);
        KvResult::Put(result)
    }

    /// The present keys attached to `lease`, in key order.
    pub fn keys_of(&self, lease: LeaseId) -> Vec<Key> {
        self.keys
            .iter()
            .filter(|(_, state)| state.value.is_some() && state.lease == Some(lease))
            .map(|(key, _)| *key)
            .collect()
    }

    /// Ends a live lease: its keys deleted in one batch at one revision (seeded bug
    /// `ephemeral-outlives-lease`: left in place).
    fn end_lease(&mut self, lease: LeaseId) -> KvResult {
        self.leases.leases.remove(&lease);
        let mut batch = self.begin();
        if !self.leases.end_keeps_keys {
            for key in self.keys_of(lease) {
                batch.delete(self, key);
            }
        }
        self.commit(batch);
        KvResult::LeaseRevoked {
            revision: self.revision,
        }
    }
}
