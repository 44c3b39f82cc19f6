//! The operations of the revisioned API's mover, one generator for every runner (the core
//! simulation, turmoil, TCP): the same draws give the same operations, so a behaviour that one
//! runner reaches is asked for in the same words by the others.
//!
//! The mover moves a value between two keys with two-key transactions guarded by a compare on
//! the value it expects (a stale guess takes the failure branch, which reads the key), writes a
//! key and reads the prefix back at an older revision in one transaction, puts, deletes, ranges
//! of the prefix with a limit of 1 (two keys present: `more`) and at an older revision, and
//! compacts three revisions below the last one it saw.

use vigil_core::kv_types::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, KeyRange, KvOperation, PutRequest,
    RangeRequest, Revision, TxnOperation, TxnRequest,
};

/// The keys the revisioned clients use (the register workloads use `k0` and `k1`).
pub const PREFIX: &[u8] = b"w/";
const KEY_A: &[u8] = b"w/a";
const KEY_B: &[u8] = b"w/b";
/// Values the mover writes and guesses.
const VALUES: u64 = 2;

/// The mover's next operation, `last` the highest revision it saw; `below(n)` draws a number
/// in `0..n` from the caller's generator (the draws, in order, are the same in every runner).
pub fn mover_operation(below: &mut dyn FnMut(u64) -> u64, last: Revision) -> KvOperation {
    let value = |below: &mut dyn FnMut(u64) -> u64| format!("v{}", below(VALUES)).into_bytes();
    let (from, to) = if below(2) == 0 {
        (KEY_A, KEY_B)
    } else {
        (KEY_B, KEY_A)
    };
    let compacted_below = last.saturating_sub(3).max(1);
    match below(11) {
        0 | 1 => KvOperation::Put(PutRequest {
            key: from.to_vec(),
            value: value(below),
            prev_kv: below(2) == 0,
        }),
        2..=4 => move_value(from, to, value(below)),
        5 | 6 => KvOperation::Range(RangeRequest {
            limit: 1,
            ..RangeRequest::of(KeyRange::prefix(PREFIX))
        }),
        7 => KvOperation::Range(RangeRequest {
            revision: last.saturating_sub(below(3)).max(1),
            ..RangeRequest::of(KeyRange::prefix(PREFIX))
        }),
        8 => KvOperation::DeleteRange(DeleteRangeRequest {
            range: KeyRange::single(from),
            prev_kv: true,
        }),
        9 => {
            // Revision 1 is compacted once the mover compacted: the whole `Txn` is refused.
            let back = if below(2) == 0 { 1 } else { compacted_below };
            write_then_read_back(from, value(below), back)
        }
        _ => KvOperation::Compact {
            revision: compacted_below,
        },
    }
}

/// A `Txn` that moves `value` from `from` to `to` if `from` holds it; otherwise it reads
/// `from` (the failure branch).
fn move_value(from: &[u8], to: &[u8], value: Vec<u8>) -> KvOperation {
    KvOperation::Txn(TxnRequest {
        compare: vec![Compare {
            key: from.to_vec(),
            target: CompareTarget::Value(value.clone()),
            result: CompareResult::Equal,
        }],
        success: vec![
            TxnOperation::Put(PutRequest {
                key: to.to_vec(),
                value,
                prev_kv: false,
            }),
            TxnOperation::DeleteRange(DeleteRangeRequest {
                range: KeyRange::single(from),
                prev_kv: false,
            }),
        ],
        failure: vec![TxnOperation::Range(RangeRequest::of(KeyRange::single(
            from,
        )))],
    })
}

/// A `Txn` without compares that puts `value` at `key`, then reads the prefix at revision
/// `back`: below the compaction point the read is `Compacted` and the whole `Txn` is refused,
/// its put included (§15.1).
fn write_then_read_back(key: &[u8], value: Vec<u8>, back: Revision) -> KvOperation {
    KvOperation::Txn(TxnRequest {
        compare: Vec::new(),
        success: vec![
            TxnOperation::Put(PutRequest {
                key: key.to_vec(),
                value,
                prev_kv: false,
            }),
            TxnOperation::Range(RangeRequest {
                revision: back,
                ..RangeRequest::of(KeyRange::prefix(PREFIX))
            }),
        ],
        failure: Vec::new(),
    })
}
