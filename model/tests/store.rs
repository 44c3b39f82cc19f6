//! The store's revisioned semantics, case by case, as etcd's `server/storage/mvcc` and
//! `server/etcdserver/txn` define them (`docs/protocol.md` §14–§16). The model checker cannot
//! find a mistake here: the linearizability tester's reference is this same store. These cases
//! pin what the core must answer too, and that the register operations answer as §9.1 says.

use vigil_model::kv::KeyValueStore;
use vigil_model::kv_types::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResult, EventKind,
    KeyRange, KeyValue, KvOperation, KvResult, PutRequest, PutResult, RangeEnd, RangeRequest,
    RangeResult, TxnOperation, TxnOperationResult, TxnRequest, TxnResult,
};
use vigil_model::revision_history::RevisionHistory;
use vigil_model::types::{Operation, OperationResult};

fn store() -> KeyValueStore {
    KeyValueStore {
        history: Some(RevisionHistory::new()),
        range_limit_max: 2,
        ..KeyValueStore::default()
    }
}

fn put(store: &mut KeyValueStore, key: u8, value: u8) -> KvResult {
    store.apply_kv(&KvOperation::Put(PutRequest {
        key,
        value,
        prev_kv: true,
    }))
}

fn delete(store: &mut KeyValueStore, range: KeyRange) -> KvResult {
    store.apply_kv(&KvOperation::DeleteRange(DeleteRangeRequest {
        range,
        prev_kv: true,
    }))
}

fn range(range: KeyRange, limit: u8, revision: u32) -> RangeRequest {
    RangeRequest {
        range,
        limit,
        revision,
        keys_only: false,
        count_only: false,
    }
}

fn read(store: &mut KeyValueStore, request: RangeRequest) -> KvResult {
    store.apply_kv(&KvOperation::Range(request))
}

fn kv(key: u8, value: u8, create_revision: u32, mod_revision: u32, version: u32) -> KeyValue {
    KeyValue {
        key,
        value: Some(value),
        create_revision,
        mod_revision,
        version,
    }
}

#[test]
fn an_empty_store_is_at_revision_one_and_each_write_makes_one_more() {
    let mut store = store();
    assert_eq!(store.revision, 1);
    let first = PutResult {
        revision: 2,
        prev_kv: None,
    };
    assert_eq!(put(&mut store, 0, 1), KvResult::Put(first));
    let second = PutResult {
        revision: 3,
        prev_kv: Some(kv(0, 1, 2, 2, 1)),
    };
    assert_eq!(put(&mut store, 0, 2), KvResult::Put(second));
    let all = read(&mut store, range(KeyRange::single(0), 0, 0));
    let expected = RangeResult {
        kvs: vec![kv(0, 2, 2, 3, 2)],
        more: false,
        count: 1,
        revision: 3,
    };
    assert_eq!(all, KvResult::Range(Box::new(expected)));
}

#[test]
fn a_delete_of_nothing_makes_no_revision_and_a_delete_ends_the_generation() {
    let mut store = store();
    let nothing = DeleteRangeResult {
        revision: 1,
        deleted: 0,
        prev_kvs: vec![],
    };
    assert_eq!(
        delete(&mut store, KeyRange::single(0)),
        KvResult::DeleteRange(Box::new(nothing))
    );
    put(&mut store, 0, 1);
    put(&mut store, 0, 2);
    let deleted = DeleteRangeResult {
        revision: 4,
        deleted: 1,
        prev_kvs: vec![kv(0, 2, 2, 3, 2)],
    };
    assert_eq!(
        delete(&mut store, KeyRange::single(0)),
        KvResult::DeleteRange(Box::new(deleted))
    );
    // A new generation: created at 5, version 1. The register version counted every write.
    put(&mut store, 0, 1);
    let after = read(&mut store, range(KeyRange::single(0), 0, 0));
    let KvResult::Range(after) = after else {
        panic!("{after:?}")
    };
    assert_eq!(after.kvs, vec![kv(0, 1, 5, 5, 1)]);
    assert_eq!(
        store.apply(&Operation::Get { key: 0 }),
        OperationResult::Value {
            value: Some(1),
            version: 4
        }
    );
}

#[test]
fn register_operations_answer_as_before_and_make_revisions() {
    let mut store = store();
    let put = Operation::Put { key: 0, value: 1 };
    let delete = Operation::Delete { key: 0 };
    assert_eq!(store.apply(&put), OperationResult::Written { version: 1 });
    assert_eq!(
        store.apply(&delete),
        OperationResult::Deleted { version: 2 }
    );
    assert_eq!(
        store.apply(&delete),
        OperationResult::Deleted { version: 0 }
    );
    let cas = Operation::Cas {
        key: 0,
        expected_version: 2,
        value: 2,
    };
    assert_eq!(store.apply(&cas), OperationResult::Written { version: 3 });
    assert_eq!(
        store.apply(&cas),
        OperationResult::VersionMismatch { current_version: 3 }
    );
    assert_eq!(
        store.revision, 4,
        "three writes; the absent delete and the refusal none"
    );
}

#[test]
fn a_range_is_bounded_by_its_limit_and_the_server_and_counts_everything() {
    let mut store = store();
    for key in 0..3 {
        put(&mut store, key, 1);
    }
    let limited = read(&mut store, range(KeyRange::from(0), 1, 0));
    let KvResult::Range(limited) = limited else {
        panic!("{limited:?}")
    };
    assert_eq!(
        (limited.kvs.len(), limited.more, limited.count),
        (1, true, 3)
    );
    let server = read(&mut store, range(KeyRange::from(0), 0, 0));
    let KvResult::Range(server) = server else {
        panic!("{server:?}")
    };
    assert_eq!((server.kvs.len(), server.more, server.count), (2, true, 3));
    let interval = KeyRange {
        key: 1,
        end: RangeEnd::Before(2),
    };
    let keys_only = RangeRequest {
        keys_only: true,
        ..range(interval, 0, 0)
    };
    let KvResult::Range(keys) = read(&mut store, keys_only) else {
        panic!()
    };
    assert_eq!(keys.kvs.len(), 1);
    assert_eq!((keys.kvs[0].key, keys.kvs[0].value), (1, None));
    let count_only = RangeRequest {
        count_only: true,
        ..range(KeyRange::from(0), 0, 0)
    };
    let KvResult::Range(count) = read(&mut store, count_only) else {
        panic!()
    };
    assert_eq!((count.kvs.len(), count.more, count.count), (0, false, 3));
}

#[test]
fn a_range_at_an_older_revision_sees_that_revision() {
    let mut store = store();
    put(&mut store, 0, 1);
    put(&mut store, 1, 1);
    delete(&mut store, KeyRange::single(0));
    put(&mut store, 1, 2);
    let at_three = read(&mut store, range(KeyRange::from(0), 0, 3));
    let expected = RangeResult {
        kvs: vec![kv(0, 1, 2, 2, 1), kv(1, 1, 3, 3, 1)],
        more: false,
        count: 2,
        revision: 5,
    };
    assert_eq!(at_three, KvResult::Range(Box::new(expected)));
    let at_one = read(&mut store, range(KeyRange::from(0), 0, 1));
    let KvResult::Range(at_one) = at_one else {
        panic!()
    };
    assert!(at_one.kvs.is_empty());
    assert_eq!(
        read(&mut store, range(KeyRange::from(0), 0, 6)),
        KvResult::FutureRevision {
            current_revision: 5
        }
    );
}

#[test]
fn compaction_refuses_reads_below_it_and_keeps_the_events_of_its_own_revision() {
    let mut store = store();
    put(&mut store, 0, 1);
    delete(&mut store, KeyRange::single(0));
    let compact =
        |store: &mut KeyValueStore, revision| store.apply_kv(&KvOperation::Compact { revision });
    assert_eq!(
        compact(&mut store, 4),
        KvResult::FutureRevision {
            current_revision: 3
        }
    );
    assert_eq!(compact(&mut store, 3), KvResult::Compact { revision: 3 });
    assert_eq!(store.revision, 3, "compaction makes no revision");
    assert_eq!(
        compact(&mut store, 3),
        KvResult::Compacted {
            compact_revision: 3
        }
    );
    assert_eq!(
        read(&mut store, range(KeyRange::single(0), 0, 2)),
        KvResult::Compacted {
            compact_revision: 3
        }
    );
    let KvResult::Range(at_compaction) = read(&mut store, range(KeyRange::single(0), 0, 3)) else {
        panic!()
    };
    assert!(at_compaction.kvs.is_empty());
    // The delete at the compaction point is still an event a watch from 3 gets (etcd#18089).
    let events = store.events_from(3);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].revision, 3);
    assert_eq!(events[0].events[0].kind, EventKind::Delete);
    assert_eq!(events[0].events[0].prev_kv, Some(kv(0, 1, 2, 2, 1)));
}

fn compare(key: u8, target: CompareTarget, result: CompareResult) -> Compare {
    Compare {
        key,
        target,
        result,
    }
}

#[test]
fn compares_follow_etcd_on_absent_keys() {
    let mut store = store();
    let absent_version = compare(0, CompareTarget::Version(0), CompareResult::Equal);
    let absent_value = compare(0, CompareTarget::Value(1), CompareResult::NotEqual);
    assert!(store.compare(&absent_version));
    assert!(
        !store.compare(&absent_value),
        "a value compare on an absent key is false"
    );
    put(&mut store, 0, 1);
    assert!(store.compare(&compare(0, CompareTarget::Value(0), CompareResult::Greater)));
    assert!(store.compare(&compare(
        0,
        CompareTarget::ModRevision(3),
        CompareResult::Less
    )));
    assert!(store.compare(&compare(
        0,
        CompareTarget::CreateRevision(2),
        CompareResult::Equal
    )));
}

#[test]
fn a_txn_is_one_revision_and_its_reads_see_its_writes() {
    let mut store = store();
    put(&mut store, 0, 1);
    let request = TxnRequest {
        compare: vec![compare(0, CompareTarget::Version(0), CompareResult::Equal)],
        success: vec![],
        failure: vec![
            TxnOperation::Put(PutRequest {
                key: 1,
                value: 1,
                prev_kv: false,
            }),
            TxnOperation::DeleteRange(DeleteRangeRequest {
                range: KeyRange::single(0),
                prev_kv: false,
            }),
            TxnOperation::Range(range(KeyRange::from(0), 0, 0)),
        ],
    };
    let result = store.apply_kv(&KvOperation::Txn(Box::new(request)));
    let KvResult::Txn(txn) = result else {
        panic!("{result:?}")
    };
    let TxnResult {
        revision,
        succeeded,
        responses,
    } = *txn;
    assert_eq!((revision, succeeded), (3, false));
    assert_eq!(store.revision, 3);
    let TxnOperationResult::Range(seen) = &responses[2] else {
        panic!("{responses:?}")
    };
    assert_eq!(seen.kvs, vec![kv(1, 1, 3, 3, 1)]);
    assert_eq!(
        store.events_from(3)[0].events.len(),
        2,
        "both writes in revision 3"
    );
    // A txn that writes nothing makes no revision.
    let empty = TxnRequest {
        compare: vec![],
        success: vec![],
        failure: vec![],
    };
    let KvResult::Txn(nothing) = store.apply_kv(&KvOperation::Txn(Box::new(empty))) else {
        panic!()
    };
    assert_eq!(
        (nothing.revision, nothing.succeeded, store.revision),
        (3, true, 3)
    );
}

#[test]
fn a_txn_whose_branch_reads_a_refused_revision_applies_nothing() {
    let request = TxnRequest {
        compare: vec![],
        success: vec![
            TxnOperation::Put(PutRequest {
                key: 1,
                value: 1,
                prev_kv: false,
            }),
            TxnOperation::Range(range(KeyRange::single(0), 0, 9)),
        ],
        failure: vec![],
    };
    let mut store = store();
    assert_eq!(
        store.apply_kv(&KvOperation::Txn(Box::new(request.clone()))),
        KvResult::FutureRevision {
            current_revision: 1
        }
    );
    assert_eq!((store.revision, store.keys.len()), (1, 0));
    // The seeded bug keeps the put made before the refused read.
    let mut buggy = KeyValueStore {
        txn_partial_apply: true,
        ..vigil_model::kv::KeyValueStore::default()
    };
    buggy.apply_kv(&KvOperation::Txn(Box::new(request)));
    assert_eq!(buggy.revision, 2);
}
