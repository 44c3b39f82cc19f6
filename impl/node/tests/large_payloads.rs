//! Stores and replies larger than one request frame, end to end on a 3-master cluster on
//! 127.0.0.1: a follower that restarts behind a snapshot bigger than `frame_bytes_max` catches
//! up (the snapshot travels in one `CatchUp` within `peer_frame_bytes_max`), the cluster keeps
//! its leader, a `Range` whose reply is bigger than a request frame is answered whole, and a
//! request bigger than `frame_bytes_max` is refused by the client library with the sizes named,
//! on a connection that stays usable (`impl/node/src/codec.rs`).

mod common;

use std::time::{Duration, Instant};

use vigil::client::{CallError, Client};
use vigil::cluster::LocalCluster;
use vigil::codec::{CodecError, FRAME_BYTES_MAX_DEFAULT};
use vigil_core::kv_types::{KeyRange, KvOperation, KvResult, PutRequest, RangeRequest};
use vigil_core::ClientError;

/// How long any one wait may take before the test fails (a bound, not an expectation): a
/// 6 MiB write is synced by three masters, each also writing an 18 MiB snapshot, on a
/// 2-core machine that runs other suites.
const PATIENCE: Duration = Duration::from_secs(60);
/// Values of 6 MiB: three of them make a store above the 16 MiB request frame.
const VALUE_BYTES: usize = 6 * 1024 * 1024;
const VALUES: usize = 3;

async fn start(directory: &std::path::Path) -> LocalCluster {
    common::metrics::recorder();
    let mut options = common::test_options(3, directory);
    // Answers within the patient client's wait.
    options.protocol.request_timeout_ticks = 2_000;
    // A snapshot after every two entries: a restarted follower needs one.
    options.protocol.snapshot_threshold_entries = 2;
    // Writing and syncing 6 MiB on a loaded 2-core machine can outlast the test timing's
    // eviction window (5 heartbeats, 100 ms) many times over; these tests are about sizes,
    // not about that: 2 s before an eviction, 4 s before an election.
    options.protocol.eviction_threshold = 100;
    options.protocol.election_timeout_ticks = 200;
    LocalCluster::start(options).await.expect("cluster starts")
}

/// A client that waits up to [`PATIENCE`] for each answer.
async fn patient_client(cluster: &LocalCluster) -> Client {
    Client::connect(&cluster.proxy_address().to_string(), PATIENCE)
        .await
        .expect("client connects")
}

fn big_value(index: usize) -> Vec<u8> {
    vec![b'a' + index as u8; VALUE_BYTES]
}

/// Puts `big/<index>` until acknowledged (an election may be under way).
async fn put_big(client: &mut Client, cluster: &str, index: usize) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let operation = KvOperation::Put(PutRequest {
            key: format!("big/{index}").into(),
            value: big_value(index),
            prev_kv: false,
        });
        match client.kv_call(cluster, operation).await.expect("answered") {
            Ok(KvResult::Put(_)) => return,
            Err(ClientError::NoLeader | ClientError::Timeout | ClientError::LeaderChanged) => {
                assert!(Instant::now() < deadline, "no acknowledged put {index}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("put {index} answered {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_a_snapshot_larger_than_a_request_frame_catches_up() {
    let directory = tempfile::tempdir().unwrap();
    let mut cluster = start(directory.path()).await;
    let name = cluster.name().to_string();
    let mut client = patient_client(&cluster).await;
    common::put_until_acknowledged(&mut client, &name, "warm", "up", PATIENCE).await;
    let leader = cluster.wait_for_leader(PATIENCE).await.unwrap();
    let follower = (0..3).find(|node| *node != leader).unwrap();
    cluster.kill(follower).await.unwrap();
    for index in 0..VALUES {
        put_big(&mut client, &name, index).await;
    }
    let status = cluster.status(leader).await.expect("the leader answers");
    assert!(
        status.snapshot_slot > 1,
        "the leader compacted its log: {status:?}"
    );
    let snapshot_bytes = common::metrics::gauge(vigil::metrics::SNAPSHOT_BYTES);
    assert!(
        snapshot_bytes > FRAME_BYTES_MAX_DEFAULT as f64,
        "the snapshot is larger than a request frame: {snapshot_bytes}"
    );
    cluster.restart(follower).await.unwrap();
    let target = status.commit_index;
    common::wait_for(PATIENCE, "the restarted follower to catch up", || async {
        let caught_up = cluster
            .status(follower)
            .await
            .is_some_and(|status| status.commit_index >= target);
        let readmitted = cluster
            .status(leader)
            .await
            .is_some_and(|status| status.active.contains(&follower));
        (caught_up && readmitted).then_some(())
    })
    .await;
    assert_eq!(
        cluster.leader().await,
        Some(leader),
        "no election was needed"
    );
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_reply_larger_than_a_request_frame_is_answered_whole() {
    let directory = tempfile::tempdir().unwrap();
    let cluster = start(directory.path()).await;
    let name = cluster.name().to_string();
    let mut client = patient_client(&cluster).await;
    common::put_until_acknowledged(&mut client, &name, "warm", "up", PATIENCE).await;
    for index in 0..VALUES {
        put_big(&mut client, &name, index).await;
    }
    let operation = KvOperation::Range(RangeRequest::of(KeyRange::prefix(b"big/")));
    let result = client.kv_call(&name, operation).await.expect("answered");
    let Ok(KvResult::Range(range)) = result else {
        panic!("the range answered {result:?}");
    };
    assert_eq!(range.kvs.len(), VALUES);
    assert!(!range.more);
    for (index, record) in range.kvs.iter().enumerate() {
        assert_eq!(
            record.value.as_deref(),
            Some(big_value(index).as_slice()),
            "big/{index}"
        );
    }
    assert_eq!(cluster.ledger().in_flight, 0);
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_larger_than_a_frame_is_refused_with_its_size_and_the_connection_stays_usable() {
    let directory = tempfile::tempdir().unwrap();
    let cluster = start(directory.path()).await;
    let name = cluster.name().to_string();
    let mut client = patient_client(&cluster).await;
    common::put_until_acknowledged(&mut client, &name, "warm", "up", PATIENCE).await;
    let operation = KvOperation::Put(PutRequest {
        key: "huge".into(),
        value: vec![b'h'; FRAME_BYTES_MAX_DEFAULT + 1],
        prev_kv: false,
    });
    let error = client.kv_call(&name, operation).await.unwrap_err();
    let CallError::Connection(CodecError::TooLarge { bytes, max }) = error else {
        panic!("an oversized put failed with {error:?}");
    };
    assert!(bytes > FRAME_BYTES_MAX_DEFAULT, "{bytes}");
    assert_eq!(max, FRAME_BYTES_MAX_DEFAULT);
    assert!(
        CallError::Connection(CodecError::TooLarge { bytes, max })
            .to_string()
            .contains("above the limit"),
        "the error names the sizes"
    );
    // Nothing reached the proxy, and the same connection serves the next request.
    let version =
        common::put_until_acknowledged(&mut client, &name, "warm", "again", PATIENCE).await;
    assert_eq!(version, 2);
    let operation = KvOperation::Range(RangeRequest::of(KeyRange::single(b"huge")));
    match client.kv_call(&name, operation).await.expect("answered") {
        Ok(KvResult::Range(range)) => assert!(range.kvs.is_empty(), "{range:?}"),
        other => panic!("the range answered {other:?}"),
    }
    cluster.shutdown().await.unwrap();
}
