//! Disk faults (`docs/protocol.md` §2.1): a slow disk at the leader delays neither heartbeats
//! nor writes (its `Accept`s leave before its own write); a dead disk stops its master, and the
//! others take over; full disks stop their masters loudly, and no write they could not make
//! durable was ever acknowledged.

use std::time::{Duration, Instant};

use vigil::client::Client;
use vigil::cluster::ClusterError;
use vigil::master::MasterError;
use vigil::storage::StorageError;
use vigil_core::{OperationResult, ReplyOutcome};

use crate::common::{client, put_until_acknowledged, start_cluster, wait_for};

fn written(version: u64) -> ReplyOutcome {
    Ok(OperationResult::Written { version })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_heartbeats_nor_writes_wait_behind_the_leaders_slow_disk() {
    let directory = tempfile::tempdir().unwrap();
    let cluster = start_cluster(5, directory.path()).await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let mut client = client(&cluster).await;
    let name = cluster.name().to_string();
    put_until_acknowledged(&mut client, &name, "warm", "up", Duration::from_secs(5)).await;
    let mut leader_changes_before = Vec::new();
    for node in 0..5 {
        let status = cluster.status(node).await.unwrap();
        leader_changes_before.push(status.counters.leader_changes);
    }

    // The leader's disk stalls for well over the longest election timeout (25 ticks of 20 ms
    // plus a stagger of up to 20 ticks: 900 ms), and below the proxy's request timeout (3 s).
    // Heartbeats do not wait for it, so no follower starts an election; nor does the write:
    // the leader's Accepts leave before its own write, and four followers' durable
    // acceptances are a quorum without the leader's.
    let stall = Duration::from_millis(1400);
    cluster.stall_storage(leader, stall).unwrap();
    let started = Instant::now();
    let outcome = client.put(&name, b"slow", b"disk").await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited < stall,
        "the write was chosen by the followers without the leader's disk: {waited:?}"
    );
    assert_eq!(outcome, written(1));
    assert_eq!(cluster.leader().await, Some(leader));
    for node in 0..5 {
        let changes = cluster.status(node).await.unwrap().counters.leader_changes;
        assert_eq!(
            changes, leader_changes_before[node as usize],
            "master {node} saw a leader change"
        );
    }
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_error_stops_the_master_and_the_others_take_over() {
    let directory = tempfile::tempdir().unwrap();
    let mut cluster = start_cluster(5, directory.path()).await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let mut client = client(&cluster).await;
    let name = cluster.name().to_string();
    put_until_acknowledged(&mut client, &name, "before", "1", Duration::from_secs(5)).await;

    cluster.fail_storage(leader).unwrap();
    // This write needs the leader's disk: the leader stops instead of answering it.
    let outcome = client.put(&name, b"during", b"2").await.unwrap();
    assert!(outcome.is_err() || outcome == written(1), "{outcome:?}");
    wait_for(
        Duration::from_secs(5),
        "the failed master to stop",
        || async { (!cluster.is_running(leader)).then_some(()) },
    )
    .await;
    let stopped = cluster.kill(leader).await;
    assert!(
        matches!(stopped, Err(ClusterError::Master { ref source, .. })
            if matches!(source, MasterError::Storage(_))),
        "{stopped:?}"
    );
    let new_leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    assert_ne!(new_leader, leader);
    put_until_acknowledged(&mut client, &name, "after", "3", Duration::from_secs(10)).await;
    cluster.shutdown().await.unwrap();
}

/// Bytes each master's disk accepts once the test starts filling it: some tens of 1 KiB writes.
const DISK_BYTES_FREE: u64 = 64 * 1024;
/// Each value is 1 KiB.
const VALUE_BYTES: usize = 1024;

fn value(index: usize) -> Vec<u8> {
    format!("{index:08}").into_bytes().repeat(VALUE_BYTES / 8)
}

/// Whether `stopped` is a master that stopped on a full disk.
fn stopped_on_a_full_disk(stopped: &Result<(), ClusterError>) -> bool {
    let Err(ClusterError::Master {
        source: MasterError::Storage(StorageError::Io { source, .. }),
        ..
    }) = stopped
    else {
        return false;
    };
    source.kind() == std::io::ErrorKind::StorageFull
}

/// Gets `key` until the answer is not an error (a leader may still be elected), within 20 s.
async fn get_until_answered(client: &mut Client, cluster: &str, key: &str) -> ReplyOutcome {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let outcome = client.get(cluster, key.as_bytes()).await.unwrap();
        if outcome.is_ok() || Instant::now() > deadline {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Three masters whose disks fill up while a client writes: each master stops on its full
/// disk with the storage error (it never runs on without durability), and once the disks are
/// freed and the stopped masters restarted, every acknowledged write is there with its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disks_stop_their_masters_loudly_and_lose_no_acknowledged_write() {
    let directory = tempfile::tempdir().unwrap();
    let mut cluster = start_cluster(3, directory.path()).await;
    cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let mut client = client(&cluster).await;
    let name = cluster.name().to_string();
    for node in 0..3 {
        cluster
            .faults(node)
            .unwrap()
            .disk
            .fill_after(DISK_BYTES_FREE);
    }
    // With two of three masters stopped no quorum is left: nothing more can be acknowledged.
    let mut acknowledged = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for index in 0..400 {
        let key = format!("key-{index}");
        match client.put(&name, key.as_bytes(), &value(index)).await {
            Ok(Ok(OperationResult::Written { .. })) => acknowledged.push(index),
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            // The connection failed: reconnect.
            Err(_) => client = crate::common::client(&cluster).await,
        }
        let running = (0..3).filter(|node| cluster.is_running(*node)).count();
        if running <= 1 || Instant::now() > deadline {
            break;
        }
    }
    assert!(acknowledged.len() >= 5, "some writes fit: {acknowledged:?}");
    assert!(acknowledged.len() < 400, "the disks never filled");

    let mut stopped = Vec::new();
    for node in 0..3 {
        if cluster.is_running(node) {
            continue;
        }
        let error = cluster.kill(node).await;
        assert!(stopped_on_a_full_disk(&error), "master {node}: {error:?}");
        stopped.push(node);
    }
    assert!(stopped.len() >= 2, "{stopped:?} stopped on a full disk");

    // The disks are freed: the stopped masters restart from their directories, cut any torn
    // tail, and every acknowledged write is there.
    for node in &stopped {
        cluster.faults(*node).unwrap().disk.repair();
        cluster.restart(*node).await.unwrap();
    }
    for node in 0..3 {
        cluster.faults(node).unwrap().disk.repair();
    }
    for index in &acknowledged {
        let key = format!("key-{index}");
        let outcome = get_until_answered(&mut client, &name, &key).await;
        let Ok(OperationResult::Value {
            value: Some(found), ..
        }) = outcome
        else {
            panic!("acknowledged {key} is gone: {outcome:?}")
        };
        assert_eq!(found, value(*index), "{key}");
    }
    eprintln!(
        "full disks: {} writes acknowledged, then {} of 3 masters stopped",
        acknowledged.len(),
        stopped.len()
    );
    cluster.shutdown().await.unwrap();
}
