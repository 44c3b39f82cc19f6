//! The presets of the revisioned API (`docs/protocol.md` §14–§17): focused exhaustive presets
//! of `ci` for transactions, watches with compaction, a watch resumed after a crash, and the
//! watch's error endings; each on the small three-master base of `crate::presets`, with
//! revisioned clients only and every bound small.
//!
//! Keys are 0 and 1, values 1 and 2; an empty store is at revision 1, so the first write makes
//! revision 2.

use crate::config::{Budget, ClientScript, Config, KvClientScript, KvStep};
use crate::kv_types::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, KeyRange, KvOperation, PutRequest,
    RangeRequest, Revision, TxnOperation, TxnRequest, WatchRequest,
};
use crate::presets::{exhaustive, Preset, CLUSTER, WRONG_CLUSTER};
use crate::types::{Key, Value};

fn kv_client(steps: Vec<KvStep>) -> KvClientScript {
    KvClientScript {
        cluster: CLUSTER,
        steps,
    }
}

fn put(key: Key, value: Value) -> PutRequest {
    PutRequest {
        key,
        value,
        prev_kv: false,
    }
}

fn range_from(key: Key, limit: u8) -> RangeRequest {
    RangeRequest {
        range: KeyRange::from(key),
        limit,
        revision: 0,
        keys_only: false,
        count_only: false,
    }
}

fn watch(key: Key, start_revision: Revision) -> KvStep {
    KvStep::Watch(WatchRequest {
        range: KeyRange::single(key),
        start_revision,
        prev_kv: false,
        filter: None,
    })
}

/// A preset of revisioned clients only, on `crate::presets`' base.
fn kv_config(kv_clients: Vec<KvClientScript>) -> Config {
    let mut config = crate::presets::base(Vec::<ClientScript>::new());
    config.kv_clients = kv_clients;
    config
}

/// A put of key 0 then a range of every key (one at most), and a transaction: "if key 0 was
/// never written, put key 1 and read key 0 at revision 9; else put key 1 and read every key,
/// one at most". The first branch's read is of a future revision, so that branch is always
/// refused and applies nothing (and `txn-partial-apply` keeps its put); the second is the
/// failure branch, taken when the put came first, and its read sees both keys and answers
/// `more`, as the range does after it.
pub fn ci_txn() -> Preset {
    let transaction = TxnRequest {
        compare: vec![Compare {
            key: 0,
            target: CompareTarget::Version(0),
            result: CompareResult::Equal,
        }],
        success: vec![
            TxnOperation::Put(put(1, 1)),
            TxnOperation::Range(RangeRequest {
                revision: 9,
                ..range_from(0, 0)
            }),
        ],
        failure: vec![
            TxnOperation::Put(put(1, 2)),
            TxnOperation::Range(range_from(0, 1)),
        ],
    };
    let config = kv_config(vec![
        kv_client(vec![
            KvStep::Operation(KvOperation::Put(put(0, 1))),
            KvStep::Operation(KvOperation::Range(range_from(0, 1))),
        ]),
        kv_client(vec![KvStep::Operation(KvOperation::Txn(Box::new(
            transaction,
        )))]),
    ]);
    exhaustive(
        "ci-txn",
        config,
        vec!["txn_failure_branch_taken", "range_with_more"],
    )
}

/// A watch of key 0 from revision 2 (with the records before each change) with a progress
/// request, a cancel and a read at revision 2, against a put of key 0 (revision 2), its delete
/// (revision 3, with the record deleted) and a compaction at 3: the watch sees the put and the
/// delete, or — created after the compaction — ends `Compacted` at 3; the read at 2 sees the
/// put, or — after the compaction — is refused `Compacted`.
pub fn ci_watch() -> Preset {
    let delete = DeleteRangeRequest {
        range: KeyRange::single(0),
        prev_kv: true,
    };
    let read_at_two = RangeRequest {
        revision: 2,
        ..range_from(0, 0)
    };
    let with_prev = KvStep::Watch(WatchRequest {
        range: KeyRange::single(0),
        start_revision: 2,
        prev_kv: true,
        filter: None,
    });
    let config = kv_config(vec![
        kv_client(vec![
            KvStep::Operation(KvOperation::Put(put(0, 1))),
            KvStep::Operation(KvOperation::DeleteRange(delete)),
            KvStep::Operation(KvOperation::Compact { revision: 3 }),
        ]),
        kv_client(vec![
            with_prev,
            KvStep::Progress { watch: 0 },
            KvStep::Cancel { watch: 0 },
            KvStep::Operation(KvOperation::Range(read_at_two)),
        ]),
    ]);
    exhaustive(
        "ci-watch",
        config,
        vec![
            "watch_ended_by_compaction",
            "watch_cancelled",
            "watch_progress_notified",
            "read_below_compaction_refused",
        ],
    )
}

/// A watch of key 0 from revision 2, a put of key 0, one crash and two election timeouts: the
/// subscribed leader crashes, the proxy resumes at another master, a new leader commits the
/// put, and the resumed stream delivers it.
pub fn ci_watch_resume() -> Preset {
    let mut config = kv_config(vec![
        kv_client(vec![KvStep::Operation(KvOperation::Put(put(0, 1)))]),
        kv_client(vec![watch(0, 2)]),
    ]);
    config.budget = Budget {
        crashes: 1,
        election_timeouts: 2,
        ..Budget::default()
    };
    exhaustive(
        "ci-watch-resume",
        config,
        vec!["watch_resumed_across_leader_change"],
    )
}

/// A watch on an unknown cluster, and a slow watcher of key 0 that disconnects, against two
/// puts of key 0, with one event message buffered per watch: the first is refused
/// `UnknownCluster`; the second overflows when both events wait for it, or ends `ClientGone`.
pub fn ci_watch_errors() -> Preset {
    let mut config = kv_config(vec![
        kv_client(vec![
            KvStep::Operation(KvOperation::Put(put(0, 1))),
            KvStep::Operation(KvOperation::Put(put(0, 2))),
        ]),
        kv_client(vec![watch(0, 2), KvStep::Disconnect]),
        KvClientScript {
            cluster: WRONG_CLUSTER,
            steps: vec![watch(0, 1)],
        },
    ]);
    config.watch_events_buffered_max = 1;
    exhaustive(
        "ci-watch-errors",
        config,
        vec![
            "watch_unknown_cluster_ended",
            "watch_overflowed",
            "watch_client_gone",
        ],
    )
}

/// A watch of key 0 from revision 0 ("now") followed by a put of key 0 and a progress request,
/// and a watch of key 0 from revision 3, a revision the run never reaches: the first watch is
/// resolved by the master's report and sees its own client's put (revision 2) whichever watch
/// the proxy created first, although the stream may wait for revision 3.
pub fn ci_watch_now() -> Preset {
    let config = kv_config(vec![
        kv_client(vec![
            watch(0, 0),
            KvStep::Operation(KvOperation::Put(put(0, 1))),
            KvStep::Progress { watch: 0 },
        ]),
        kv_client(vec![watch(0, 3)]),
    ]);
    exhaustive("ci-watch-now", config, vec!["watch_from_now_delivered"])
}

/// `ci-watch-resume` with a progress request after the watch is created: a resumed stream that
/// skipped the put is seen when the notification claims it (`watch-resume-from-current`).
pub fn watch_resume_with_progress() -> Preset {
    let mut preset = ci_watch_resume();
    preset.config.kv_clients[1]
        .steps
        .push(KvStep::Progress { watch: 0 });
    preset
}

/// The smallest preset for `watch-leak-on-error`: one watch on an unknown cluster.
pub fn watch_on_unknown_cluster() -> Config {
    kv_config(vec![KvClientScript {
        cluster: WRONG_CLUSTER,
        steps: vec![watch(0, 1)],
    }])
}
