//! The core's multi-version store, case by case, against the same expectations as the model's
//! `model/tests/store.rs` (etcd's `server/storage/mvcc` and `server/etcdserver/txn`,
//! `docs/protocol.md` §14–§16), written independently over byte keys: the linearizability
//! tester's reference is the model's store, so these cases are what pins the core to it.

use vigil_core::kv_types::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResult, EventKind,
    KeyRange, KeyValue, KvOperation, KvResult, PutRequest, PutResult, RangeEnd, RangeRequest,
    RangeResult, TxnOperation, TxnOperationResult, TxnRequest, TxnResult,
};
use vigil_core::{KvStore, Operation, OperationResult, StoreLimits};

/// The model's bound of two keys per range.
const LIMITS: StoreLimits = StoreLimits {
    range_limit_max: 2,
    history_revisions_max: u64::MAX,
};

fn bytes(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

fn apply(store: &mut KvStore, operation: KvOperation) -> KvResult {
    store.apply_kv(&operation, LIMITS)
}

fn put(store: &mut KvStore, key: &str, value: &str) -> KvResult {
    apply(
        store,
        KvOperation::Put(PutRequest {
            key: bytes(key),
            value: bytes(value),
            prev_kv: true,
        }),
    )
}

fn delete(store: &mut KvStore, range: KeyRange) -> KvResult {
    apply(
        store,
        KvOperation::DeleteRange(DeleteRangeRequest {
            range,
            prev_kv: true,
        }),
    )
}

fn range(range: KeyRange, limit: u64, revision: u64) -> RangeRequest {
    RangeRequest {
        limit,
        revision,
        ..RangeRequest::of(range)
    }
}

fn read(store: &mut KvStore, request: RangeRequest) -> KvResult {
    apply(store, KvOperation::Range(request))
}

fn read_ok(store: &mut KvStore, request: RangeRequest) -> RangeResult {
    match read(store, request) {
        KvResult::Range(result) => result,
        other => panic!("expected a range, got {other}"),
    }
}

fn kv(key: &str, value: &str, create_revision: u64, mod_revision: u64, version: u64) -> KeyValue {
    KeyValue {
        key: bytes(key),
        value: Some(bytes(value)),
        create_revision,
        mod_revision,
        version,
    }
}

fn from(key: &str) -> KeyRange {
    KeyRange {
        key: bytes(key),
        end: RangeEnd::Unbounded,
    }
}

#[test]
fn an_empty_store_is_at_revision_one_and_each_write_makes_one_more() {
    let mut store = KvStore::new();
    assert_eq!(store.revision(), 1);
    let first = PutResult {
        revision: 2,
        prev_kv: None,
    };
    assert_eq!(put(&mut store, "a", "1"), KvResult::Put(first));
    let second = PutResult {
        revision: 3,
        prev_kv: Some(kv("a", "1", 2, 2, 1)),
    };
    assert_eq!(put(&mut store, "a", "2"), KvResult::Put(second));
    let expected = RangeResult {
        kvs: vec![kv("a", "2", 2, 3, 2)],
        more: false,
        count: 1,
        revision: 3,
    };
    assert_eq!(
        read_ok(&mut store, range(KeyRange::single(b"a"), 0, 0)),
        expected
    );
}

#[test]
fn a_delete_of_nothing_makes_no_revision_and_a_delete_ends_the_generation() {
    let mut store = KvStore::new();
    let nothing = DeleteRangeResult {
        revision: 1,
        deleted: 0,
        prev_kvs: vec![],
    };
    assert_eq!(
        delete(&mut store, KeyRange::single(b"a")),
        KvResult::DeleteRange(nothing)
    );
    put(&mut store, "a", "1");
    put(&mut store, "a", "2");
    let deleted = DeleteRangeResult {
        revision: 4,
        deleted: 1,
        prev_kvs: vec![kv("a", "2", 2, 3, 2)],
    };
    assert_eq!(
        delete(&mut store, KeyRange::single(b"a")),
        KvResult::DeleteRange(deleted)
    );
    put(&mut store, "a", "1");
    let after = read_ok(&mut store, range(KeyRange::single(b"a"), 0, 0));
    assert_eq!(after.kvs, vec![kv("a", "1", 5, 5, 1)], "a new generation");
    assert_eq!(
        store.apply(&Operation::Get { key: bytes("a") }, LIMITS),
        OperationResult::Value {
            value: Some(bytes("1")),
            version: 4
        },
        "the register version counts every write"
    );
}

#[test]
fn register_operations_answer_as_before_and_make_revisions() {
    let mut store = KvStore::new();
    let put = Operation::Put {
        key: bytes("a"),
        value: bytes("1"),
    };
    let delete = Operation::Delete { key: bytes("a") };
    assert_eq!(
        store.apply(&put, LIMITS),
        OperationResult::Written { version: 1 }
    );
    assert_eq!(
        store.apply(&delete, LIMITS),
        OperationResult::Deleted { version: 2 }
    );
    assert_eq!(
        store.apply(&delete, LIMITS),
        OperationResult::Deleted { version: 0 }
    );
    let cas = Operation::Cas {
        key: bytes("a"),
        expected_version: 2,
        value: bytes("2"),
    };
    assert_eq!(
        store.apply(&cas, LIMITS),
        OperationResult::Written { version: 3 }
    );
    assert_eq!(
        store.apply(&cas, LIMITS),
        OperationResult::VersionMismatch { current_version: 3 }
    );
    assert_eq!(
        store.revision(),
        4,
        "three writes; the absent delete and the refusal none"
    );
}

#[test]
fn a_range_is_bounded_by_its_limit_and_the_server_and_counts_everything() {
    let mut store = KvStore::new();
    for key in ["a", "b", "c"] {
        put(&mut store, key, "1");
    }
    let limited = read_ok(&mut store, range(from("a"), 1, 0));
    assert_eq!(
        (limited.kvs.len(), limited.more, limited.count),
        (1, true, 3)
    );
    let server = read_ok(&mut store, range(from("a"), 0, 0));
    assert_eq!((server.kvs.len(), server.more, server.count), (2, true, 3));
    let over = read_ok(&mut store, range(from("a"), 5, 0));
    assert_eq!((over.kvs.len(), over.more), (2, true), "the server's bound");
    let interval = KeyRange {
        key: bytes("b"),
        end: RangeEnd::Before(bytes("c")),
    };
    let keys = read_ok(
        &mut store,
        RangeRequest {
            keys_only: true,
            ..range(interval, 0, 0)
        },
    );
    assert_eq!(keys.kvs.len(), 1);
    assert_eq!(
        (keys.kvs[0].key.as_slice(), &keys.kvs[0].value),
        (&b"b"[..], &None)
    );
    let count = read_ok(
        &mut store,
        RangeRequest {
            count_only: true,
            ..range(from("a"), 0, 0)
        },
    );
    assert_eq!((count.kvs.len(), count.more, count.count), (0, false, 3));
}

#[test]
fn a_prefix_is_the_interval_up_to_the_next_prefix() {
    let mut store = KvStore::new();
    for key in ["a", "app/1", "app/2", "apq", "b"] {
        put(&mut store, key, "v");
    }
    let prefix = KeyRange::prefix(b"app/");
    assert_eq!(prefix.end, RangeEnd::Before(bytes("app0")));
    let found = read_ok(&mut store, range(prefix, 0, 0));
    let keys: Vec<&[u8]> = found.kvs.iter().map(|kv| kv.key.as_slice()).collect();
    assert_eq!(keys, vec![&b"app/1"[..], &b"app/2"[..]]);
    assert_eq!(KeyRange::prefix(&[0xff]).end, RangeEnd::Unbounded);
}

#[test]
fn a_range_at_an_older_revision_sees_that_revision() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    put(&mut store, "b", "1");
    delete(&mut store, KeyRange::single(b"a"));
    put(&mut store, "b", "2");
    let expected = RangeResult {
        kvs: vec![kv("a", "1", 2, 2, 1), kv("b", "1", 3, 3, 1)],
        more: false,
        count: 2,
        revision: 5,
    };
    assert_eq!(read_ok(&mut store, range(from("a"), 0, 3)), expected);
    assert!(read_ok(&mut store, range(from("a"), 0, 1)).kvs.is_empty());
    assert_eq!(
        read(&mut store, range(from("a"), 0, 6)),
        KvResult::FutureRevision {
            current_revision: 5
        }
    );
}

#[test]
fn compaction_refuses_reads_below_it_and_keeps_the_events_of_its_own_revision() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    delete(&mut store, KeyRange::single(b"a"));
    let compact = |store: &mut KvStore, revision| apply(store, KvOperation::Compact { revision });
    assert_eq!(
        compact(&mut store, 4),
        KvResult::FutureRevision {
            current_revision: 3
        }
    );
    assert_eq!(compact(&mut store, 3), KvResult::Compact { revision: 3 });
    assert_eq!(store.revision(), 3, "compaction makes no revision");
    assert_eq!(
        compact(&mut store, 3),
        KvResult::Compacted {
            compact_revision: 3
        }
    );
    assert_eq!(
        read(&mut store, range(KeyRange::single(b"a"), 0, 2)),
        KvResult::Compacted {
            compact_revision: 3
        }
    );
    assert!(read_ok(&mut store, range(KeyRange::single(b"a"), 0, 3))
        .kvs
        .is_empty());
    // The delete at the compaction point is still an event a watch from 3 gets (etcd#18089).
    let events: Vec<_> = store.events_from(3).collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].revision, 3);
    assert_eq!(events[0].events[0].kind, EventKind::Delete);
    assert_eq!(events[0].events[0].prev_kv, Some(kv("a", "1", 2, 2, 1)));
}

#[test]
fn the_history_is_bounded_by_history_revisions_max() {
    let limits = StoreLimits {
        range_limit_max: 10,
        history_revisions_max: 3,
    };
    let mut store = KvStore::new();
    for value in 0..10 {
        store.apply(
            &Operation::Put {
                key: bytes("a"),
                value: value.to_string().into_bytes(),
            },
            limits,
        );
    }
    assert_eq!(store.revision(), 11);
    assert_eq!(store.history_len(), 3, "revisions 9, 10 and 11");
    assert_eq!(store.compact_revision(), 9);
    let old = RangeRequest {
        revision: 8,
        ..RangeRequest::of(KeyRange::single(b"a"))
    };
    assert_eq!(
        store.apply_kv(&KvOperation::Range(old), limits),
        KvResult::Compacted {
            compact_revision: 9
        }
    );
}

fn compare(key: &str, target: CompareTarget, result: CompareResult) -> Compare {
    Compare {
        key: bytes(key),
        target,
        result,
    }
}

#[test]
fn compares_follow_etcd_on_absent_keys() {
    let mut store = KvStore::new();
    assert!(store.compare(&compare(
        "a",
        CompareTarget::Version(0),
        CompareResult::Equal
    )));
    assert!(
        !store.compare(&compare(
            "a",
            CompareTarget::Value(bytes("1")),
            CompareResult::NotEqual
        )),
        "a value compare on an absent key is false"
    );
    put(&mut store, "a", "1");
    assert!(store.compare(&compare(
        "a",
        CompareTarget::Value(bytes("0")),
        CompareResult::Greater
    )));
    assert!(store.compare(&compare(
        "a",
        CompareTarget::ModRevision(3),
        CompareResult::Less
    )));
    assert!(store.compare(&compare(
        "a",
        CompareTarget::CreateRevision(2),
        CompareResult::Equal
    )));
}

#[test]
fn a_txn_is_one_revision_and_its_reads_see_its_writes() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    let request = TxnRequest {
        compare: vec![compare(
            "a",
            CompareTarget::Version(0),
            CompareResult::Equal,
        )],
        success: vec![],
        failure: vec![
            TxnOperation::Put(PutRequest {
                key: bytes("b"),
                value: bytes("1"),
                prev_kv: false,
            }),
            TxnOperation::DeleteRange(DeleteRangeRequest {
                range: KeyRange::single(b"a"),
                prev_kv: false,
            }),
            TxnOperation::Range(range(from("a"), 0, 0)),
        ],
    };
    let KvResult::Txn(TxnResult {
        revision,
        succeeded,
        responses,
    }) = apply(&mut store, KvOperation::Txn(request))
    else {
        panic!("expected a txn result")
    };
    assert_eq!((revision, succeeded), (3, false), "the failure branch");
    assert_eq!(store.revision(), 3);
    let TxnOperationResult::Range(seen) = &responses[2] else {
        panic!("{responses:?}")
    };
    assert_eq!(seen.kvs, vec![kv("b", "1", 3, 3, 1)]);
    assert_eq!(seen.revision, 3);
    let events: Vec<_> = store.events_from(3).collect();
    assert_eq!(events[0].events.len(), 2, "both writes in revision 3");
    let empty = TxnRequest {
        compare: vec![],
        success: vec![],
        failure: vec![],
    };
    let KvResult::Txn(nothing) = apply(&mut store, KvOperation::Txn(empty)) else {
        panic!("expected a txn result")
    };
    assert_eq!(
        (nothing.revision, nothing.succeeded, store.revision()),
        (3, true, 3),
        "a txn that writes nothing makes no revision"
    );
}

#[test]
fn a_txn_whose_branch_reads_a_refused_revision_applies_nothing() {
    let request = TxnRequest {
        compare: vec![],
        success: vec![
            TxnOperation::Put(PutRequest {
                key: bytes("b"),
                value: bytes("1"),
                prev_kv: false,
            }),
            TxnOperation::Range(range(KeyRange::single(b"a"), 0, 9)),
        ],
        failure: vec![],
    };
    let mut store = KvStore::new();
    assert_eq!(
        apply(&mut store, KvOperation::Txn(request)),
        KvResult::FutureRevision {
            current_revision: 1
        }
    );
    assert_eq!((store.revision(), store.len()), (1, 0));
}

#[test]
fn a_snapshot_of_the_store_restores_revisions_and_history() {
    let mut store = KvStore::new();
    put(&mut store, "a", "1");
    put(&mut store, "b", "1");
    apply(&mut store, KvOperation::Compact { revision: 2 });
    let encoded = serde_json::to_string(&store).expect("serializable");
    let restored: KvStore = serde_json::from_str(&encoded).expect("deserializable");
    assert_eq!(restored, store);
    assert_eq!(
        (
            restored.revision(),
            restored.compact_revision(),
            restored.history_len()
        ),
        (3, 2, 2)
    );
}
