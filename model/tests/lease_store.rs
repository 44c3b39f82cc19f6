//! The store's lease semantics, case by case (`docs/protocol.md` §20.1–§20.3, §20.6): grant,
//! put attached to a lease, keep-alive from the log, revoke, a leader's expiry with the
//! generation fence, and the bounds. The model checker cannot find a mistake here (the
//! linearizability tester's reference is this same store); these cases pin what the core must
//! answer too.

use vigil_model::kv::KeyValueStore;
use vigil_model::kv_types::{KvOperation, KvResult, PutRequest, PutResult};
use vigil_model::lease_types::{LeaseError, LeaseTable};
use vigil_model::revision_history::RevisionHistory;
use vigil_model::types::Command;

fn store() -> KeyValueStore {
    KeyValueStore {
        history: Some(RevisionHistory::new()),
        leases: LeaseTable {
            leases_max: 2,
            keys_per_lease_max: 2,
            ..LeaseTable::default()
        },
        ..KeyValueStore::default()
    }
}

fn grant(store: &mut KeyValueStore, lease: u8) -> KvResult {
    store.apply_kv(&KvOperation::LeaseGrant {
        lease,
        ttl_ticks: 3,
    })
}

fn lease_put(store: &mut KeyValueStore, key: u8, lease: u8) -> KvResult {
    let put = PutRequest {
        key,
        value: 1,
        prev_kv: false,
    };
    store.apply_kv(&KvOperation::LeasePut { put, lease })
}

fn expire(store: &mut KeyValueStore, lease: u8, generation: u32) -> bool {
    store
        .apply_command(&Command::LeaseExpire { lease, generation })
        .is_some()
}

#[test]
fn a_grant_makes_no_revision_and_a_second_grant_of_the_id_is_refused() {
    let mut store = store();
    let granted = KvResult::LeaseGranted {
        lease: 0,
        ttl_ticks: 3,
    };
    assert_eq!(grant(&mut store, 0), granted);
    assert_eq!(store.revision, 1);
    assert_eq!(
        grant(&mut store, 0),
        KvResult::LeaseRefused(LeaseError::Exists)
    );
}

#[test]
fn revoking_deletes_every_attached_key_at_one_revision_and_leaves_the_others() {
    let mut store = store();
    grant(&mut store, 0);
    let attached = lease_put(&mut store, 0, 0);
    assert_eq!(
        attached,
        KvResult::Put(PutResult {
            revision: 2,
            prev_kv: None
        })
    );
    lease_put(&mut store, 1, 0);
    store.apply_kv(&KvOperation::Put(PutRequest {
        key: 2,
        value: 1,
        prev_kv: false,
    }));
    assert_eq!(store.keys_of(0), vec![0, 1]);
    let revoked = store.apply_kv(&KvOperation::LeaseRevoke { lease: 0 });
    assert_eq!(revoked, KvResult::LeaseRevoked { revision: 5 });
    assert!(store.keys_of(0).is_empty());
    assert_eq!(store.keys[&0].value, None);
    assert_eq!(store.keys[&2].value, Some(1));
    let history = store.history.as_ref().expect("kept");
    assert_eq!(
        history.last().map(|revision| revision.events.len()),
        Some(2)
    );
    assert_eq!(
        store.apply_kv(&KvOperation::LeaseRevoke { lease: 0 }),
        KvResult::LeaseRefused(LeaseError::NotFound)
    );
}

#[test]
fn a_put_without_the_lease_detaches_the_key() {
    let mut store = store();
    grant(&mut store, 0);
    lease_put(&mut store, 0, 0);
    store.apply_kv(&KvOperation::Put(PutRequest {
        key: 0,
        value: 2,
        prev_kv: false,
    }));
    assert!(store.keys_of(0).is_empty());
    store.apply_kv(&KvOperation::LeaseRevoke { lease: 0 });
    assert_eq!(store.keys[&0].value, Some(2));
}

#[test]
fn an_expiry_applies_only_at_the_generation_it_carries() {
    let mut store = store();
    grant(&mut store, 0);
    lease_put(&mut store, 0, 0);
    let kept = store.apply_kv(&KvOperation::LeaseKeepAlive { lease: 0 });
    assert_eq!(
        kept,
        KvResult::LeaseKeptAlive {
            lease: 0,
            ttl_ticks: 3
        }
    );
    assert!(!expire(&mut store, 0, 0), "stale: a keep-alive came first");
    assert_eq!(store.keys[&0].value, Some(1));
    assert!(expire(&mut store, 0, 1));
    assert_eq!(store.keys[&0].value, None);
    assert!(!expire(&mut store, 0, 1), "the lease is gone");
    assert_eq!(
        store.apply_kv(&KvOperation::LeaseKeepAlive { lease: 0 }),
        KvResult::LeaseRefused(LeaseError::NotFound)
    );
}

#[test]
fn the_bounds_refuse_with_their_errors_and_apply_nothing() {
    let mut store = store();
    grant(&mut store, 0);
    grant(&mut store, 1);
    assert_eq!(
        grant(&mut store, 2),
        KvResult::LeaseRefused(LeaseError::TooManyLeases)
    );
    lease_put(&mut store, 0, 0);
    lease_put(&mut store, 1, 0);
    assert_eq!(
        lease_put(&mut store, 2, 0),
        KvResult::LeaseRefused(LeaseError::TooManyKeys)
    );
    assert_eq!(store.revision, 3);
    assert!(matches!(lease_put(&mut store, 1, 0), KvResult::Put(_)));
    assert_eq!(
        lease_put(&mut store, 0, 9),
        KvResult::LeaseRefused(LeaseError::NotFound)
    );
}
