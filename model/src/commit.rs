//! What a master does when a slot commits besides recording it (`docs/protocol.md` §14–§17):
//! it streams the revisions the slot made to the proxy's subscription, if it holds one, and the
//! ghost checks what applying the slot did — a `Txn` all or nothing (`txn_atomic`), and no read
//! answered below the compaction point (`compacted_never_served`).
//!
//! The checks are a second writing of the rules the store applies (`crate::txn`, `crate::kv`),
//! on what the store's state shows before and after: an independent path, as an important
//! invariant deserves (TigerBeetle's "assert on two code paths").

use crate::kv::KeyValueStore;
use crate::kv_types::{
    ClientOperation, ClientResult, KvOperation, KvResult, Revision, TxnOperation,
};
use crate::message::{Endpoint, Message};
use crate::step::Step;
use crate::types::{Command, NodeId, Slot};

impl Step<'_> {
    /// `node` applied `command`, the one of `slot`.
    pub(crate) fn applied(&mut self, node: NodeId, slot: Slot, command: &Command) {
        if self.config.has_leases() {
            self.lease_applied(node, slot, command);
        }
        let subscribed = self.state.masters[node as usize].subscription.is_some();
        let Command::Kv { operation, .. } = command else {
            let follows = (self.applied_store.as_ref())
                .is_some_and(|(applied, through, _)| *applied == node && *through + 1 == slot);
            if subscribed || follows {
                let mut after = self.committed_store(node, slot - 1);
                after.apply_command(command);
                self.stream(node, &after);
                self.applied_store = Some((node, slot, after));
            }
            return;
        };
        let before = self.committed_store(node, slot - 1);
        let mut after = before.clone();
        let result = after.apply_kv(operation);
        if let KvOperation::Txn(request) = operation {
            let branch = match &result {
                KvResult::Txn(txn) if txn.succeeded => &request.success,
                _ => &request.failure,
            };
            if !txn_atomic(&before, &after, branch, &result) {
                self.state.ghost.txn_partially_applied = true;
            }
        }
        let operation = ClientOperation::Kv(operation.clone());
        self.check_served(&before, &operation, &ClientResult::Kv(result));
        if subscribed {
            self.stream(node, &after);
        }
        self.applied_store = Some((node, slot, after));
    }

    /// Master `node`'s store after its log through `slot`: the one this step's commit of
    /// `slot` built, else `State::store_through`.
    fn committed_store(&mut self, node: NodeId, slot: Slot) -> KeyValueStore {
        match self.applied_store.take() {
            Some((applied, through, store)) if applied == node && through == slot => store,
            _ => self.state.store_through(self.config, node, slot),
        }
    }

    /// Sends the proxy every revision of `store` (the master's state after a commit) its
    /// subscription has not had yet.
    fn stream(&mut self, node: NodeId, store: &KeyValueStore) {
        let Some(next) = self.state.masters[node as usize].subscription else {
            return;
        };
        if store.revision < next {
            return;
        }
        if next < store.compact_revision {
            self.state.ghost.compacted_served = true;
        }
        let revisions = store.events_from(next.max(store.compact_revision));
        self.state.masters[node as usize].subscription = Some(store.revision + 1);
        let events = Message::Events {
            revision: store.revision,
            revisions,
        };
        self.send(Endpoint::Master(node), Endpoint::Proxy, events);
    }

    /// The ghost's check of a read answered from `store` (the state it read): a read at a
    /// revision below the compaction point must be refused `Compacted`, never answered.
    pub(crate) fn check_served(
        &mut self,
        store: &KeyValueStore,
        operation: &ClientOperation,
        result: &ClientResult,
    ) {
        let ClientOperation::Kv(operation) = operation else {
            return;
        };
        let below = |revision: Revision| revision != 0 && revision < store.compact_revision;
        let served_below = match (operation, result) {
            (KvOperation::Range(request), ClientResult::Kv(KvResult::Range(_))) => {
                below(request.revision)
            }
            (KvOperation::Txn(request), ClientResult::Kv(KvResult::Txn(txn))) => {
                let branch = if txn.succeeded {
                    &request.success
                } else {
                    &request.failure
                };
                branch.iter().any(|operation| {
                    matches!(operation, TxnOperation::Range(request) if below(request.revision))
                })
            }
            _ => false,
        };
        if served_below {
            self.state.ghost.compacted_served = true;
        }
    }
}

/// Whether applying a `Txn` whose taken branch is `branch` changed `before` into `after` all or
/// nothing: a refusal changed no key and made no revision; an answer made one revision if and
/// only if a key changed, every key the branch puts changed, and every changed key carries the
/// new revision or is gone.
fn txn_atomic(
    before: &KeyValueStore,
    after: &KeyValueStore,
    branch: &[TxnOperation],
    result: &KvResult,
) -> bool {
    let changed: Vec<_> = after
        .keys
        .iter()
        .filter(|(key, state)| before.keys.get(key) != Some(state))
        .collect();
    let KvResult::Txn(txn) = result else {
        return changed.is_empty() && after.revision == before.revision;
    };
    let puts_changed = branch.iter().all(|operation| match operation {
        TxnOperation::Put(put) => changed.iter().any(|(key, _)| **key == put.key),
        _ => true,
    });
    let stamped = changed
        .iter()
        .all(|(_, state)| state.value.is_none() || state.mod_revision == txn.revision);
    let expected_revision = before.revision + u32::from(!changed.is_empty());
    puts_changed && stamped && txn.revision == expected_revision && after.revision == txn.revision
}
