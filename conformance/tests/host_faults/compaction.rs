//! Log compaction through the host: with a small `snapshot_threshold_entries`, masters replace
//! their log prefix by a snapshot on disk, a follower frozen past the leader's compaction point
//! catches up from a snapshot, and a full restart from the compacted directories keeps every
//! acknowledged write.

use std::time::Duration;

use vigil_conformance::seams::cluster::FaultyCluster;
use vigil_core::OperationResult;

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_masters_catch_up_and_restart_with_every_write() {
    let directory = tempfile::tempdir().unwrap();
    let mut options = common::test_options(5, directory.path());
    options.protocol.snapshot_threshold_entries = 5;
    let mut cluster = FaultyCluster::start(options).await.unwrap();
    let leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let follower = (leader + 2) % 5;
    let name = cluster.name().to_string();
    let mut client = common::client(&cluster).await;

    cluster.pause(follower).unwrap();
    common::wait_for(Duration::from_secs(5), "eviction", || async {
        let status = cluster.status(leader).await?;
        status.evicted.contains(&follower).then_some(())
    })
    .await;
    let keys = 30;
    let mut versions = Vec::new();
    for index in 0..keys {
        let key = format!("key-{index}");
        let timeout = Duration::from_secs(10);
        versions.push(common::put_until_acknowledged(&mut client, &name, &key, "v", timeout).await);
    }
    let leader_status = cluster.status(leader).await.unwrap();
    assert!(
        leader_status.snapshot_slot > 0,
        "the leader compacted: {leader_status:?}"
    );
    cluster.resume(follower).unwrap();
    let leader_commit = leader_status.commit_index;
    common::wait_for(
        Duration::from_secs(10),
        "catch-up past the compaction point",
        || async {
            let status = cluster.status(follower).await?;
            (status.commit_index >= leader_commit).then_some(())
        },
    )
    .await;
    // Followers compact once they learn the commit index, a heartbeat or so later.
    common::wait_for(
        Duration::from_secs(10),
        "a snapshot file at every master",
        || async {
            (0..5)
                .all(|node| {
                    let master = directory.path().join(format!("master-{node}"));
                    master.join("snapshot").exists()
                })
                .then_some(())
        },
    )
    .await;

    for node in 0..5 {
        cluster.kill(node).await.unwrap();
    }
    for node in 0..5 {
        cluster.restart(node).await.unwrap();
    }
    cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    for (index, version) in versions.iter().enumerate() {
        let key = format!("key-{index}");
        let outcome = common::wait_for(Duration::from_secs(10), "a read", || async {
            let mut reader = common::client(&cluster).await;
            reader.get(&name, key.as_bytes()).await.ok()?.ok()
        })
        .await;
        assert_eq!(
            outcome,
            OperationResult::Value {
                value: Some(b"v".to_vec()),
                version: *version
            },
            "{key}"
        );
    }
    cluster.shutdown().await.unwrap();
}
