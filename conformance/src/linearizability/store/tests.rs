//! The whole-store check on hand-made histories (linearizable ones with concurrency and
//! requests without a definite answer; rejected ones for each way a store can lie), and
//! against the model's own `linearizable` (stateright's tester) on random small histories.

use super::*;
use proptest::prelude::*;
use vigil_model::kv_types::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, KeyRange, KvResult, PutRequest,
    RangeRequest, TxnOperation, TxnRequest,
};
use vigil_model::State;

const LIMITS: Limits = Limits {
    time: Duration::from_secs(10),
    memo_entries_max: 1_000_000,
};

/// The model's configuration the cross-check runs under (revisioned clients: history kept).
fn config() -> vigil_model::Config {
    vigil_model::kv_presets::ci_txn().config
}

fn verdict(kv_history: &[KvHistoryEvent]) -> Verdict {
    let initial = KeyValueStore::reference(&config());
    check(&initial, &[], kv_history, LIMITS).verdict
}

fn rejected(kv_history: &[KvHistoryEvent]) -> Box<Anomaly> {
    match verdict(kv_history) {
        Verdict::NotLinearizable(anomaly) => anomaly,
        other => panic!("expected a rejection, got {other}"),
    }
}

fn invoke(request_id: RequestId, operation: KvOperation) -> KvHistoryEvent {
    KvHistoryEvent::Invoke {
        request_id,
        operation,
        after: 0,
    }
}

fn returned(request_id: RequestId, result: KvResult) -> KvHistoryEvent {
    KvHistoryEvent::Return {
        request_id,
        result: Some(result),
        after: 0,
    }
}

fn put(key: Key, value: u8) -> KvOperation {
    KvOperation::Put(PutRequest {
        key,
        value,
        prev_kv: false,
    })
}

fn range_all() -> KvOperation {
    KvOperation::Range(RangeRequest {
        range: KeyRange::from(0),
        limit: 0,
        revision: 0,
        keys_only: false,
        count_only: false,
    })
}

/// A branch that puts `value` into both keys.
fn put_both(value: u8) -> Vec<TxnOperation> {
    (0..2)
        .map(|key| {
            TxnOperation::Put(PutRequest {
                key,
                value,
                prev_kv: false,
            })
        })
        .collect()
}

/// A two-key transaction: if `key_compared`'s value is `value`, write both keys.
fn move_txn(key_compared: Key, value: u8) -> KvOperation {
    KvOperation::Txn(Box::new(TxnRequest {
        compare: vec![Compare {
            key: key_compared,
            target: CompareTarget::Value(value),
            result: CompareResult::Equal,
        }],
        success: put_both(2),
        failure: vec![TxnOperation::Range(RangeRequest {
            range: KeyRange::from(0),
            limit: 0,
            revision: 0,
            keys_only: false,
            count_only: false,
        })],
    }))
}

/// The results of `operations` applied in turn to the reference store.
fn sequential(operations: &[KvOperation]) -> Vec<KvResult> {
    let mut store = KeyValueStore::reference(&config());
    operations
        .iter()
        .map(|operation| store.apply_kv(operation))
        .collect()
}

#[test]
fn concurrent_writes_and_a_range_in_either_order() {
    // Two overlapping puts and a range overlapping both that saw the second one only.
    let results = sequential(&[put(1, 1), range_all(), put(0, 1)]);
    let history = [
        invoke(1, put(0, 1)),
        invoke(2, put(1, 1)),
        invoke(3, range_all()),
        returned(3, results[1].clone()),
        returned(1, results[2].clone()),
        returned(2, results[0].clone()),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn requests_without_an_answer_may_apply_late_or_never() {
    // A put that applied after its client gave up (a later range sees it) and a transaction
    // that never applied (revisions go on without it).
    let results = sequential(&[put(0, 1), range_all(), put(1, 1), range_all()]);
    let history = [
        invoke(1, put(0, 1)),
        invoke(2, move_txn(0, 9)),
        returned(1, results[0].clone()),
        invoke(3, range_all()),
        returned(3, results[1].clone()),
        invoke(4, put(1, 1)),
        invoke(5, range_all()),
        returned(5, results[3].clone()),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
    // The transaction applied, late: the range shows both keys at its revision.
    let results = sequential(&[put(0, 1), move_txn(0, 1), range_all()]);
    let history = [
        invoke(1, put(0, 1)),
        returned(1, results[0].clone()),
        invoke(2, move_txn(0, 1)),
        invoke(3, range_all()),
        returned(3, results[2].clone()),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn a_stale_range_is_rejected() {
    let results = sequential(&[range_all(), put(0, 1)]);
    let history = [
        invoke(1, put(0, 1)),
        returned(1, results[1].clone()),
        invoke(2, range_all()),
        returned(2, results[0].clone()),
    ];
    let anomaly = rejected(&history);
    assert_eq!(anomaly.request_id, 2);
    assert!(
        anomaly.to_string().contains("request 2 Kv(Range"),
        "{anomaly}"
    );
}

#[test]
fn a_txn_whose_branch_contradicts_the_state_is_rejected() {
    // The compare holds after the put, yet the transaction reports its failure branch.
    let results = sequential(&[move_txn(0, 1), put(0, 1)]);
    let history = [
        invoke(1, put(0, 1)),
        returned(1, results[1].clone()),
        invoke(2, move_txn(0, 1)),
        returned(2, results[0].clone()),
    ];
    assert_eq!(rejected(&history).request_id, 2);
}

#[test]
fn a_revision_out_of_real_time_order_is_rejected() {
    // The second put, called after the first returned, claims the earlier revision.
    let results = sequential(&[put(1, 1), put(0, 1)]);
    let history = [
        invoke(1, put(0, 1)),
        returned(1, results[1].clone()),
        invoke(2, put(1, 1)),
        returned(2, results[0].clone()),
    ];
    assert!(matches!(verdict(&history), Verdict::NotLinearizable(_)));
}

#[test]
fn a_lost_write_is_rejected() {
    // Both puts acknowledged, revisions 2 and 3, yet a later range misses the first key.
    let results = sequential(&[put(0, 1), put(1, 1)]);
    let mut lost = sequential(&[put(1, 1), range_all()]).remove(1);
    if let KvResult::Range(range) = &mut lost {
        range.revision = 3;
        range.kvs[0].create_revision = 3;
        range.kvs[0].mod_revision = 3;
    }
    let history = [
        invoke(1, put(0, 1)),
        returned(1, results[0].clone()),
        invoke(2, put(1, 1)),
        returned(2, results[1].clone()),
        invoke(3, range_all()),
        returned(3, lost),
    ];
    assert_eq!(rejected(&history).request_id, 3);
}

#[test]
fn a_half_visible_txn_is_rejected() {
    // A range concurrent with a two-key transaction sees one of its writes only.
    let results = sequential(&[move_txn(0, 0), range_all()]);
    let mut half = results[1].clone();
    if let KvResult::Range(range) = &mut half {
        range.kvs.truncate(1);
        range.count = 1;
    }
    let history = [
        invoke(
            1,
            KvOperation::Txn(Box::new(TxnRequest {
                compare: Vec::new(),
                success: put_both(2),
                failure: Vec::new(),
            })),
        ),
        invoke(2, range_all()),
        returned(2, half),
    ];
    assert!(matches!(verdict(&history), Verdict::NotLinearizable(_)));
}

#[test]
fn the_bounds_give_unknown() {
    // Many overlapping puts without an answer and a range no order explains.
    let mut history: Vec<KvHistoryEvent> = (1..=30)
        .map(|id| invoke(id, put(id as Key % 3, id as u8)))
        .collect();
    let mut impossible = sequential(&[range_all()]).remove(0);
    if let KvResult::Range(range) = &mut impossible {
        range.revision = 99;
    }
    history.push(invoke(40, range_all()));
    history.push(returned(40, impossible));
    let initial = KeyValueStore::reference(&config());
    let bounded = Limits {
        time: Duration::from_secs(10),
        memo_entries_max: 1,
    };
    let report = check(&initial, &[], &history, bounded);
    assert_eq!(report.verdict, Verdict::Unknown(Undecided::MemoBound));
    let timed = Limits {
        time: Duration::ZERO,
        memo_entries_max: 1_000_000,
    };
    let report = check(&initial, &[], &history, timed);
    assert_eq!(report.verdict, Verdict::Unknown(Undecided::TimeLimit));
}

/// The model's own `linearizable` on `kv_history`.
fn model_linearizable(kv_history: &[KvHistoryEvent]) -> bool {
    let config = config();
    let mut state = State::initial(&config);
    state.kv_history = kv_history.to_vec();
    let property = vigil_model::properties::all()
        .into_iter()
        .find(|property| property.name == "linearizable")
        .expect("the model has `linearizable`");
    (property.condition)(&config, &state)
}

fn operation() -> impl Strategy<Value = KvOperation> {
    let key = 0..2u8;
    let value = 1..3u8;
    let range = (key.clone(), any::<bool>()).prop_map(|(key, single)| {
        if single {
            KeyRange::single(key)
        } else {
            KeyRange::from(key)
        }
    });
    let read = (range.clone(), 0..2u8, 0..4u32).prop_map(|(range, limit, revision)| RangeRequest {
        range,
        limit,
        revision,
        keys_only: false,
        count_only: false,
    });
    prop_oneof![
        read.clone().prop_map(KvOperation::Range),
        (key.clone(), value.clone(), any::<bool>()).prop_map(|(key, value, prev_kv)| {
            KvOperation::Put(PutRequest {
                key,
                value,
                prev_kv,
            })
        }),
        range.prop_map(|range| KvOperation::DeleteRange(DeleteRangeRequest {
            range,
            prev_kv: true,
        })),
        (key.clone(), value.clone(), key, value, read).prop_map(
            |(compared, expected, written, value, read)| {
                KvOperation::Txn(Box::new(TxnRequest {
                    compare: vec![Compare {
                        key: compared,
                        target: CompareTarget::Value(expected),
                        result: CompareResult::Equal,
                    }],
                    success: vec![TxnOperation::Put(PutRequest {
                        key: written,
                        value,
                        prev_kv: false,
                    })],
                    failure: vec![TxnOperation::Range(read)],
                }))
            }
        ),
        (1..4u32).prop_map(|revision| KvOperation::Compact { revision }),
    ]
}

/// Up to 6 requests: applied to the reference store in a drawn order (so most results are
/// ones a store gives), some results swapped for another request's (so some are not), each
/// invoked in turn and its return (or none) placed after its invocation at a drawn position.
fn history() -> impl Strategy<Value = Vec<KvHistoryEvent>> {
    let request = (operation(), any::<bool>(), 0..12usize, 0..8usize, 0..10u8);
    proptest::collection::vec(request, 1..7).prop_map(|requests| {
        let mut order: Vec<usize> = (0..requests.len()).collect();
        order.sort_by_key(|index| requests[*index].3);
        let mut store = KeyValueStore::reference(&config());
        let mut results = vec![None; requests.len()];
        for index in order {
            results[index] = Some(store.apply_kv(&requests[index].0));
        }
        let mut events: Vec<(usize, KvHistoryEvent)> = Vec::new();
        for (index, (operation, returns, delay, _, swap)) in requests.iter().enumerate() {
            let request_id = index as RequestId + 1;
            let at = index * 2;
            events.push((at, invoke(request_id, operation.clone())));
            let source = if *swap == 0 {
                (index + 1) % requests.len()
            } else {
                index
            };
            let result = results[source].clone().expect("every request applied");
            if *returns {
                events.push((at + 1 + delay, returned(request_id, result)));
            }
        }
        events.sort_by_key(|(at, _)| *at);
        events.into_iter().map(|(_, event)| event).collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]
    /// The whole-store check and the model's `linearizable` agree on every small history.
    #[test]
    fn the_whole_store_check_agrees_with_the_model(history in history()) {
        let decided = match verdict(&history) {
            Verdict::Linearizable => true,
            Verdict::NotLinearizable(_) => false,
            Verdict::Unknown(undecided) => panic!("undecided: {undecided:?}"),
        };
        prop_assert_eq!(decided, model_linearizable(&history), "{:?}", history);
    }
}
