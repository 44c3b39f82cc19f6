//! The revisioned API and watches end to end (`docs/protocol.md` §14–§17): a 3-master cluster
//! and its proxy on 127.0.0.1, driven through `vigil::client` over real TCP. Range, Put,
//! DeleteRange, Txn and Compact answer with etcd's semantics; a watcher sees every put in
//! order, also across the loss of the master its proxy subscribed to; and each bad input is a
//! clear error or a defined wait, counted, with the watch ledger balanced afterwards (opened =
//! ended + open).

mod common;

use std::time::{Duration, Instant};

use vigil::client::Client;
use vigil::cluster::LocalCluster;
use vigil::metrics as names;
use vigil::wire::ProxyFrame;
use vigil_core::kv_types::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, EventKind, KeyRange, KvOperation,
    KvResult, PutRequest, RangeRequest, Revision, TxnOperation, TxnOperationResult, TxnRequest,
    WatchEnd, WatchRequest,
};
use vigil_core::ClientError;

/// How long any one wait may take before the test fails (a bound, not an expectation).
const PATIENCE: Duration = Duration::from_secs(20);

async fn start(directory: &std::path::Path, range_limit_max: u64) -> LocalCluster {
    common::metrics::recorder();
    let mut options = common::test_options(3, directory);
    options.protocol.range_limit_max = range_limit_max;
    options.protocol.txn_operations_max = 4;
    LocalCluster::start(options).await.expect("cluster starts")
}

/// Sends `operation` until it is answered without an indeterminate error (an election may be
/// under way); for writes the test only uses this where a repeat changes nothing it checks.
async fn kv(client: &mut Client, cluster: &str, operation: KvOperation) -> KvResult {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let outcome = client.kv_call(cluster, operation.clone()).await;
        match outcome.expect("the proxy answers") {
            Ok(result) => return result,
            Err(ClientError::NoLeader | ClientError::Timeout | ClientError::LeaderChanged) => {
                assert!(Instant::now() < deadline, "no answer to {operation:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(other) => panic!("{operation:?} answered {other:?}"),
        }
    }
}

fn put(key: &str, value: &str) -> KvOperation {
    KvOperation::Put(PutRequest {
        key: key.into(),
        value: value.into(),
        prev_kv: true,
    })
}

fn range(range: KeyRange) -> KvOperation {
    KvOperation::Range(RangeRequest::of(range))
}

async fn put_revision(client: &mut Client, cluster: &str, key: &str, value: &str) -> Revision {
    match kv(client, cluster, put(key, value)).await {
        KvResult::Put(result) => result.revision,
        other => panic!("a put answered {other:?}"),
    }
}

fn watch_of(range: KeyRange, start_revision: Revision) -> WatchRequest {
    WatchRequest {
        range,
        start_revision,
        prev_kv: false,
        filter: None,
    }
}

/// The next watch frame, within [`PATIENCE`].
async fn next_watch_frame(client: &mut Client) -> ProxyFrame {
    tokio::time::timeout(PATIENCE, client.next_watch_frame())
        .await
        .expect("a watch frame in time")
        .expect("the proxy sends it")
}

async fn expect_created(client: &mut Client, watch_id: u64) {
    match next_watch_frame(client).await {
        ProxyFrame::WatchCreated { watch_id: created } if created == watch_id => {}
        other => panic!("expected WatchCreated, got {other:?}"),
    }
}

/// Waits until the proxy's watch ledger shows `open` watches and is balanced.
async fn wait_for_ledger(cluster: &LocalCluster, open: u64) -> vigil_core::WatchLedgerCounters {
    common::wait_for(PATIENCE, "the watch ledger", || async {
        let counters = cluster.watch_ledger();
        (counters.open == open && counters.is_balanced()).then_some(counters)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_put_delete_txn_and_compact_answer_with_etcd_semantics() {
    let directory = tempfile::tempdir().unwrap();
    let cluster = start(directory.path(), 3).await;
    let name = cluster.name().to_string();
    let mut client = common::client(&cluster).await;
    let first = put_revision(&mut client, &name, "app/a", "1").await;
    for (key, value) in [
        ("app/b", "2"),
        ("app/c", "3"),
        ("app/d", "4"),
        ("other", "x"),
    ] {
        put_revision(&mut client, &name, key, value).await;
    }
    // A range over the server's limit: three keys and `more`, with the full count.
    let KvResult::Range(listed) = kv(&mut client, &name, range(KeyRange::prefix(b"app/"))).await
    else {
        panic!("a range answers a range");
    };
    let keys: Vec<&[u8]> = listed.kvs.iter().map(|kv| kv.key.as_slice()).collect();
    assert_eq!(keys, [&b"app/a"[..], b"app/b", b"app/c"]);
    assert!(listed.more);
    assert_eq!(listed.count, 4);
    assert_eq!(listed.revision, first + 4);
    // A two-key transaction that moves a value when `app/a` is unchanged; the same again takes
    // the failure branch, which reads.
    let moved = TxnRequest {
        compare: vec![Compare {
            key: b"app/a".to_vec(),
            target: CompareTarget::ModRevision(first),
            result: CompareResult::Equal,
        }],
        success: vec![
            TxnOperation::DeleteRange(DeleteRangeRequest {
                range: KeyRange::single(b"app/a"),
                prev_kv: true,
            }),
            TxnOperation::Put(PutRequest {
                key: b"app/moved".to_vec(),
                value: b"1".to_vec(),
                prev_kv: false,
            }),
        ],
        failure: vec![TxnOperation::Range(RangeRequest::of(KeyRange::single(
            b"app/a",
        )))],
    };
    let KvResult::Txn(taken) = kv(&mut client, &name, KvOperation::Txn(moved.clone())).await else {
        panic!("a txn answers a txn");
    };
    assert!(taken.succeeded, "{taken:?}");
    assert_eq!(taken.revision, first + 5, "one revision for both writes");
    let KvResult::Txn(refused) = kv(&mut client, &name, KvOperation::Txn(moved)).await else {
        panic!("a txn answers a txn");
    };
    assert!(!refused.succeeded);
    assert_eq!(
        refused.revision,
        first + 5,
        "the failure branch wrote nothing"
    );
    assert!(
        matches!(&refused.responses[..], [TxnOperationResult::Range(read)] if read.kvs.is_empty())
    );
    // DeleteRange with prev_kv.
    let delete = KvOperation::DeleteRange(DeleteRangeRequest {
        range: KeyRange::prefix(b"app/"),
        prev_kv: true,
    });
    let KvResult::DeleteRange(deleted) = kv(&mut client, &name, delete).await else {
        panic!("a delete answers a delete");
    };
    assert_eq!(deleted.deleted, 4);
    assert_eq!(deleted.prev_kvs.len(), 4);
    // Compact, then reads below, at and above the compaction point.
    let compact = KvOperation::Compact {
        revision: first + 2,
    };
    assert!(matches!(
        kv(&mut client, &name, compact).await,
        KvResult::Compact { .. }
    ));
    let at = |revision| {
        KvOperation::Range(RangeRequest {
            revision,
            ..RangeRequest::of(KeyRange::single(b"other"))
        })
    };
    assert_eq!(
        kv(&mut client, &name, at(first)).await,
        KvResult::Compacted {
            compact_revision: first + 2
        }
    );
    assert!(matches!(
        kv(&mut client, &name, at(first + 4)).await,
        KvResult::Range(found) if found.kvs.len() == 1
    ));
    assert!(matches!(
        kv(&mut client, &name, at(first + 100)).await,
        KvResult::FutureRevision { current_revision } if current_revision == first + 6
    ));
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_txn_over_its_bounds_is_refused_invalid_request_and_counted() {
    let directory = tempfile::tempdir().unwrap();
    let cluster = start(directory.path(), 100).await;
    let name = cluster.name().to_string();
    let mut client = common::client(&cluster).await;
    let puts = (0..5)
        .map(|index| {
            TxnOperation::Put(PutRequest {
                key: format!("k{index}").into_bytes(),
                value: b"v".to_vec(),
                prev_kv: false,
            })
        })
        .collect();
    let over = KvOperation::Txn(TxnRequest {
        compare: Vec::new(),
        success: puts,
        failure: Vec::new(),
    });
    let outcome = client.kv_call(&name, over).await.expect("answered");
    assert_eq!(outcome, Err(ClientError::InvalidRequest));
    let counted = format!("{} 1", names::PROXY_INVALID_REQUESTS);
    common::wait_for(PATIENCE, "the refusal counted", || async {
        let rendered = common::metrics::recorder().render();
        rendered.lines().any(|line| line == counted).then_some(())
    })
    .await;
    // Nothing was written: the store is still at revision 1.
    let KvResult::Range(listed) = kv(&mut client, &name, range(KeyRange::prefix(b""))).await else {
        panic!("a range answers a range");
    };
    assert_eq!((listed.count, listed.revision), (0, 1));
    let ledger = cluster.ledger();
    assert_eq!(ledger.accepted, ledger.completed_ok + ledger.completed_err);
    cluster.shutdown().await.unwrap();
}

/// Reads watch frames until the watch has delivered `last`; checks that its revisions are
/// consecutive from `from` (every revision of the test writes into the watched prefix): no
/// gap, no duplicate. Returns the values put, in delivery order.
async fn collect_until(
    client: &mut Client,
    watch_id: u64,
    from: Revision,
    last: Revision,
) -> Vec<String> {
    let mut expected = from;
    let mut values = Vec::new();
    while expected <= last {
        match next_watch_frame(client).await {
            ProxyFrame::WatchEvents {
                watch_id: id,
                revision,
                events,
            } => {
                assert_eq!(id, watch_id);
                assert_eq!(revision, expected, "no gap and no duplicate");
                expected += 1;
                for event in events {
                    assert_eq!(event.kind, EventKind::Put);
                    assert_eq!(event.kv.mod_revision, revision);
                    values.push(String::from_utf8(event.kv.value.unwrap()).unwrap());
                }
            }
            ProxyFrame::WatchProgress { .. } => {}
            other => panic!("expected events, got {other:?}"),
        }
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_sees_every_put_in_order() {
    let directory = tempfile::tempdir().unwrap();
    let cluster = start(directory.path(), 100).await;
    let name = cluster.name().to_string();
    let mut writer = common::client(&cluster).await;
    let first = put_revision(&mut writer, &name, "jobs/0", "0").await;
    let mut watcher = common::client(&cluster).await;
    watcher
        .create_watch(&name, 7, watch_of(KeyRange::prefix(b"jobs/"), first))
        .await
        .unwrap();
    expect_created(&mut watcher, 7).await;
    let mut last = first;
    for index in 1..20 {
        last = put_revision(
            &mut writer,
            &name,
            &format!("jobs/{index}"),
            &index.to_string(),
        )
        .await;
    }
    let values = collect_until(&mut watcher, 7, first, last).await;
    let expected: Vec<String> = (0..20).map(|index| index.to_string()).collect();
    assert_eq!(values, expected);
    // A progress request tells the watcher its revision.
    watcher.request_watch_progress(7).await.unwrap();
    match next_watch_frame(&mut watcher).await {
        ProxyFrame::WatchProgress { revision, .. } => assert!(revision >= last),
        other => panic!("expected progress, got {other:?}"),
    }
    watcher.cancel_watch(7).await.unwrap();
    match next_watch_frame(&mut watcher).await {
        ProxyFrame::WatchEnded { outcome, .. } => assert_eq!(outcome, WatchEnd::Cancelled),
        other => panic!("expected the end, got {other:?}"),
    }
    let counters = wait_for_ledger(&cluster, 0).await;
    assert_eq!((counters.opened, counters.dropped_unended), (1, 0));
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_survives_the_loss_of_the_master_its_proxy_subscribed_to() {
    let directory = tempfile::tempdir().unwrap();
    let mut cluster = start(directory.path(), 100).await;
    let name = cluster.name().to_string();
    let mut writer = common::client(&cluster).await;
    let first = put_revision(&mut writer, &name, "svc/0", "0").await;
    let mut watcher = common::client(&cluster).await;
    watcher
        .create_watch(&name, 1, watch_of(KeyRange::prefix(b"svc/"), first))
        .await
        .unwrap();
    expect_created(&mut watcher, 1).await;
    let mut last = first;
    for index in 1..5 {
        last = put_revision(&mut writer, &name, &format!("svc/{index}"), "before").await;
    }
    collect_until(&mut watcher, 1, first, last).await;
    let (subscribed, _) = cluster.subscription().expect("the proxy subscribed");
    cluster.kill(subscribed).await.unwrap();
    // Puts through the election: an indeterminate one may have been applied, so the watcher
    // is checked against revisions, not values.
    for index in 5..15 {
        last = put_revision(&mut writer, &name, &format!("svc/{index}"), "after").await;
    }
    collect_until(&mut watcher, 1, first + 5, last).await;
    let (resumed, _) = cluster.subscription().expect("still subscribed");
    assert_ne!(resumed, subscribed, "resumed at another master");
    drop(watcher);
    let counters = wait_for_ledger(&cluster, 0).await;
    assert_eq!((counters.opened, counters.dropped_unended), (1, 0));
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_future_revision_waits_then_delivers() {
    let directory = tempfile::tempdir().unwrap();
    let cluster = start(directory.path(), 100).await;
    let name = cluster.name().to_string();
    let mut writer = common::client(&cluster).await;
    let current = put_revision(&mut writer, &name, "f/0", "0").await;
    let mut watcher = common::client(&cluster).await;
    watcher
        .create_watch(&name, 3, watch_of(KeyRange::prefix(b"f/"), current + 3))
        .await
        .unwrap();
    expect_created(&mut watcher, 3).await;
    for index in 1..=3 {
        put_revision(
            &mut writer,
            &name,
            &format!("f/{index}"),
            &index.to_string(),
        )
        .await;
    }
    let values = collect_until(&mut watcher, 3, current + 3, current + 3).await;
    assert_eq!(values, ["3"]);
    cluster.shutdown().await.unwrap();
}

/// A watch from revision 0 ("now", etcdctl's default) sees every put made after its
/// `WatchCreated`, also while another watch from a future revision holds the proxy's stream
/// ahead of the store (`docs/protocol.md` §17.2): it starts at the master's reported revision,
/// not at the stream's next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_now_sees_the_puts_after_it_was_created() {
    let directory = tempfile::tempdir().unwrap();
    let cluster = start(directory.path(), 100).await;
    let name = cluster.name().to_string();
    let mut writer = common::client(&cluster).await;
    let current = put_revision(&mut writer, &name, "n/0", "before").await;
    let mut ahead = common::client(&cluster).await;
    ahead
        .create_watch(&name, 1, watch_of(KeyRange::prefix(b"n/"), current + 10))
        .await
        .unwrap();
    expect_created(&mut ahead, 1).await;
    let mut watcher = common::client(&cluster).await;
    watcher
        .create_watch(&name, 2, watch_of(KeyRange::prefix(b"n/"), 0))
        .await
        .unwrap();
    expect_created(&mut watcher, 2).await;
    let first = put_revision(&mut writer, &name, "n/1", "after").await;
    assert_eq!(first, current + 1);
    let last = put_revision(&mut writer, &name, "n/2", "after").await;
    let values = collect_until(&mut watcher, 2, first, last).await;
    assert_eq!(values, ["after", "after"]);
    drop((ahead, watcher));
    let counters = wait_for_ledger(&cluster, 0).await;
    assert_eq!((counters.opened, counters.dropped_unended), (2, 0));
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_on_an_unknown_cluster_ends_unknown_cluster_and_is_counted() {
    let directory = tempfile::tempdir().unwrap();
    let cluster = start(directory.path(), 100).await;
    let mut watcher = common::client(&cluster).await;
    let labels = ["outcome=\"unknown_cluster\""];
    common::metrics::expect_counted(names::PROXY_WATCH_ENDINGS, &labels, async {
        let request = watch_of(KeyRange::single(b"k"), 1);
        watcher.create_watch("no-such", 9, request).await.unwrap();
        match next_watch_frame(&mut watcher).await {
            ProxyFrame::WatchEnded { watch_id, outcome } => {
                assert_eq!((watch_id, outcome), (9, WatchEnd::UnknownCluster));
            }
            other => panic!("expected the end, got {other:?}"),
        }
    })
    .await;
    let counters = wait_for_ledger(&cluster, 0).await;
    assert_eq!((counters.opened, counters.ended), (1, 1));
    assert!(cluster.subscription().is_none(), "nothing held at a master");
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_mid_watch_ends_its_watches_client_gone() {
    let directory = tempfile::tempdir().unwrap();
    let cluster = start(directory.path(), 100).await;
    let name = cluster.name().to_string();
    let mut watcher = common::client(&cluster).await;
    for watch_id in 1..=3 {
        let request = watch_of(KeyRange::prefix(b"gone/"), 1);
        watcher
            .create_watch(&name, watch_id, request)
            .await
            .unwrap();
        expect_created(&mut watcher, watch_id).await;
    }
    wait_for_ledger(&cluster, 3).await;
    assert!(cluster.subscription().is_some());
    drop(watcher);
    let counters = wait_for_ledger(&cluster, 0).await;
    assert_eq!((counters.opened, counters.ended), (3, 3));
    let labels = ["outcome=\"client_gone\""];
    common::wait_for(PATIENCE, "client_gone counted", || async {
        (common::metrics::counter(names::PROXY_WATCH_ENDINGS, &labels) == 3).then_some(())
    })
    .await;
    // The last watch took the subscription with it.
    assert!(cluster.subscription().is_none());
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_behind_the_compaction_point_ends_compacted() {
    let directory = tempfile::tempdir().unwrap();
    let cluster = start(directory.path(), 100).await;
    let name = cluster.name().to_string();
    let mut writer = common::client(&cluster).await;
    let mut last = 0;
    for index in 0..4 {
        last = put_revision(&mut writer, &name, &format!("c/{index}"), "v").await;
    }
    let compact = KvOperation::Compact { revision: last };
    assert!(matches!(
        kv(&mut writer, &name, compact).await,
        KvResult::Compact { .. }
    ));
    let mut watcher = common::client(&cluster).await;
    watcher
        .create_watch(&name, 4, watch_of(KeyRange::prefix(b"c/"), 2))
        .await
        .unwrap();
    expect_created(&mut watcher, 4).await;
    match next_watch_frame(&mut watcher).await {
        ProxyFrame::WatchEnded { outcome, .. } => assert_eq!(
            outcome,
            WatchEnd::Compacted {
                compact_revision: last
            }
        ),
        other => panic!("expected the end, got {other:?}"),
    }
    let counters = wait_for_ledger(&cluster, 0).await;
    assert_eq!((counters.opened, counters.ended), (1, 1));
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_client_token_requests_and_watches_are_denied_and_counted() {
    common::metrics::recorder();
    let directory = tempfile::tempdir().unwrap();
    let mut options = common::test_options(3, directory.path());
    let token = b"revisions-client-token";
    options.client_token = Some(vigil::auth::Secret::from_bytes(token, "test").unwrap());
    let cluster = LocalCluster::start(options).await.unwrap();
    let name = cluster.name().to_string();
    let mut client = common::client(&cluster).await;
    let labels = [format!("cluster=\"{name}\"")];
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    common::metrics::expect_counted(names::PROXY_PERMISSION_DENIED, &labels, async {
        let outcome = client.kv_call(&name, put("k", "v")).await.unwrap();
        assert_eq!(outcome, Err(ClientError::PermissionDenied));
    })
    .await;
    common::metrics::expect_counted(names::PROXY_PERMISSION_DENIED, &labels, async {
        let request = watch_of(KeyRange::single(b"k"), 1);
        client.create_watch(&name, 1, request).await.unwrap();
        match next_watch_frame(&mut client).await {
            ProxyFrame::WatchEnded { outcome, .. } => {
                assert_eq!(outcome, WatchEnd::PermissionDenied);
            }
            other => panic!("expected the end, got {other:?}"),
        }
    })
    .await;
    let counters = wait_for_ledger(&cluster, 0).await;
    assert_eq!((counters.opened, counters.ended), (1, 1));
    // With the token, the same requests are served.
    client.set_token(&name, vigil::auth::Token::from_bytes(token));
    assert!(matches!(
        kv(&mut client, &name, put("k", "v")).await,
        KvResult::Put(_)
    ));
    cluster.shutdown().await.unwrap();
}
