//! A 5-master cluster and its proxy on 127.0.0.1, through real sockets and real storage:
//! reads and writes, CAS conflicts, leader failover, eviction and rejoin of a frozen follower
//! (the incident's first half), and restart from the data directories.

mod common;

use std::time::{Duration, Instant};

use common::{client, put_until_acknowledged, start_cluster, wait_for};
use vigil_core::{ClientError, OperationResult, ReplyOutcome};

fn written(version: u64) -> ReplyOutcome {
    Ok(OperationResult::Written { version })
}

fn value(value: &str, version: u64) -> ReplyOutcome {
    Ok(OperationResult::Value {
        value: Some(value.as_bytes().to_vec()),
        version,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_and_cas_conflict() {
    let directory = tempfile::tempdir().unwrap();
    let cluster = start_cluster(5, directory.path()).await;
    cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let mut client = client(&cluster).await;
    let name = cluster.name().to_string();

    assert_eq!(
        put_until_acknowledged(&mut client, &name, "k", "one", Duration::from_secs(5)).await,
        1
    );
    assert_eq!(client.get(&name, b"k").await.unwrap(), value("one", 1));
    // CAS on the right version wins; a second CAS on the same version conflicts.
    assert_eq!(
        client.cas(&name, b"k", 1, b"two").await.unwrap(),
        written(2)
    );
    assert_eq!(
        client.cas(&name, b"k", 1, b"three").await.unwrap(),
        Ok(OperationResult::VersionMismatch { current_version: 2 })
    );
    assert_eq!(client.get(&name, b"k").await.unwrap(), value("two", 2));
    assert_eq!(
        client.delete(&name, b"k").await.unwrap(),
        Ok(OperationResult::Deleted { version: 3 })
    );
    assert_eq!(
        client.get(&name, b"k").await.unwrap(),
        Ok(OperationResult::Value {
            value: None,
            version: 3
        })
    );
    let ledger = cluster.ledger();
    assert!(ledger.is_balanced(), "{ledger:?}");
    assert_eq!(ledger.dropped_unanswered, 0);
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_then_a_new_leader_serves() {
    let directory = tempfile::tempdir().unwrap();
    let mut cluster = start_cluster(5, directory.path()).await;
    let old_leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let mut client = client(&cluster).await;
    let name = cluster.name().to_string();
    let before_version =
        put_until_acknowledged(&mut client, &name, "before", "1", Duration::from_secs(5)).await;

    let killed_at = Instant::now();
    cluster.kill(old_leader).await.unwrap();
    let new_leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    assert_ne!(new_leader, old_leader);
    put_until_acknowledged(&mut client, &name, "after", "2", Duration::from_secs(10)).await;
    let failover = killed_at.elapsed();
    eprintln!("failover from m{old_leader} to m{new_leader} serving in {failover:?}");
    // Election timeout is 10 ticks of 20 ms plus the stagger; allow generous slack for CI.
    assert!(failover < Duration::from_secs(10), "{failover:?}");
    assert_eq!(
        client.get(&name, b"before").await.unwrap(),
        value("1", before_version)
    );
    cluster.shutdown().await.unwrap();
}

/// The proxy's link to a killed leader closes: the request sent to it is answered at once
/// (`Timeout`, indeterminate) instead of at its deadline, a minute away here, and the next
/// requests find the new leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_a_killed_leader_is_answered_without_waiting_for_its_deadline() {
    let directory = tempfile::tempdir().unwrap();
    let mut options = common::test_options(3, directory.path());
    options.protocol.request_timeout_ticks = 3_000; // 60 s of 20 ms ticks
    let mut cluster = vigil::cluster::LocalCluster::start(options).await.unwrap();
    let leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let name = cluster.name().to_string();
    let mut client = vigil::client::Client::connect(
        &cluster.proxy_address().to_string(),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    put_until_acknowledged(&mut client, &name, "before", "1", Duration::from_secs(10)).await;

    cluster.kill(leader).await.unwrap();
    let outcome = client
        .put(&name, b"after", b"2")
        .await
        .expect("answered well before the 60 s deadline (the client gives up at 20 s)");
    assert!(
        matches!(
            outcome,
            Err(ClientError::Timeout | ClientError::NoLeader | ClientError::LeaderChanged)
        ) || outcome.is_ok(),
        "{outcome:?}"
    );
    put_until_acknowledged(&mut client, &name, "after", "2", Duration::from_secs(15)).await;
    let ledger = cluster.ledger();
    assert!(ledger.is_balanced(), "{ledger:?}");
    assert_eq!(ledger.dropped_unanswered, 0);
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_follower_is_evicted_then_rejoins_and_catches_up() {
    let directory = tempfile::tempdir().unwrap();
    let cluster = start_cluster(5, directory.path()).await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let follower = (leader + 1) % 5;
    let mut client = client(&cluster).await;
    let name = cluster.name().to_string();
    put_until_acknowledged(&mut client, &name, "a", "1", Duration::from_secs(5)).await;

    cluster.pause(follower).await.unwrap();
    wait_for(
        Duration::from_secs(5),
        "the frozen follower's eviction",
        || async {
            let status = cluster.status(leader).await?;
            status.evicted.contains(&follower).then_some(())
        },
    )
    .await;
    // The cluster keeps serving without it: the quorum (3 of 5) is still there.
    assert_eq!(client.put(&name, b"b", b"2").await.unwrap(), written(1));
    assert_eq!(client.put(&name, b"c", b"3").await.unwrap(), written(1));

    cluster.resume(follower).await.unwrap();
    let leader_commit = wait_for(Duration::from_secs(10), "readmission", || async {
        let status = cluster.status(leader).await?;
        (status.active.contains(&follower) && status.evicted.is_empty())
            .then_some(status.commit_index)
    })
    .await;
    wait_for(
        Duration::from_secs(10),
        "the follower's catch-up",
        || async {
            let status = cluster.status(follower).await?;
            (status.commit_index >= leader_commit).then_some(())
        },
    )
    .await;
    let status = cluster.status(leader).await.unwrap();
    assert_eq!(
        status.role,
        vigil_core::Role::Leader,
        "the healthy leader was not deposed"
    );
    assert!(status.counters.evictions >= 1, "{:?}", status.counters);
    assert!(status.counters.rejoins >= 1, "{:?}", status.counters);
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_data_directories_keeps_every_acknowledged_write() {
    let directory = tempfile::tempdir().unwrap();
    let mut cluster = start_cluster(5, directory.path()).await;
    cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let mut client = client(&cluster).await;
    let name = cluster.name().to_string();
    let keys = 20;
    let mut versions = Vec::new();
    for index in 0..keys {
        let key = format!("key-{index}");
        let data = format!("v{index}");
        versions.push(
            put_until_acknowledged(&mut client, &name, &key, &data, Duration::from_secs(5)).await,
        );
    }
    // One master alone first, then all of them: every master restarts from its own directory.
    cluster.kill(2).await.unwrap();
    cluster.restart(2).await.unwrap();
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
        let deadline = Instant::now() + Duration::from_secs(10);
        let outcome = loop {
            match client.get(&name, key.as_bytes()).await.unwrap() {
                Err(ClientError::NoLeader | ClientError::Timeout | ClientError::LeaderChanged)
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                outcome => break outcome,
            }
        };
        assert_eq!(outcome, value(&format!("v{index}"), *version), "{key}");
    }
    cluster.shutdown().await.unwrap();
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
    let leader_changes_before: Vec<u64> = {
        let mut changes = Vec::new();
        for node in 0..5 {
            changes.push(cluster.status(node).await.unwrap().counters.leader_changes);
        }
        changes
    };

    // The leader's disk stalls for well over the longest election timeout (25 ticks of 20 ms
    // plus a stagger of up to 20 ticks: 900 ms), and below the proxy's request timeout (3 s).
    // Heartbeats do not wait for it, so no follower starts an election; nor does the write:
    // the leader's Accepts leave before its own write, and four followers' durable
    // acceptances are a quorum without the leader's.
    let stall = Duration::from_millis(1400);
    cluster.stall_storage(leader, stall).await.unwrap();
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
async fn a_partitioned_follower_is_evicted_and_readmitted_when_links_return() {
    let directory = tempfile::tempdir().unwrap();
    let cluster = start_cluster(5, directory.path()).await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let follower = (leader + 3) % 5;
    let others: Vec<u64> = (0..5).filter(|node| *node != follower).collect();
    for node in &others {
        cluster.cut_link(follower, *node, true).await.unwrap();
    }
    wait_for(
        Duration::from_secs(5),
        "eviction of the cut-off follower",
        || async {
            let status = cluster.status(leader).await?;
            status.evicted.contains(&follower).then_some(())
        },
    )
    .await;
    for node in &others {
        cluster.cut_link(follower, *node, false).await.unwrap();
    }
    wait_for(Duration::from_secs(10), "readmission", || async {
        let status = cluster.status(leader).await?;
        status.active.contains(&follower).then_some(())
    })
    .await;
    assert_eq!(
        cluster.leader().await,
        Some(leader),
        "the healthy leader kept leading"
    );
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

    cluster.fail_storage(leader).await.unwrap();
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
        matches!(stopped, Err(vigil::cluster::ClusterError::Master { ref source, .. })
            if matches!(source, vigil::master::MasterError::Storage(_))),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_way_cut_from_the_leader_evicts_without_deposing_it() {
    let directory = tempfile::tempdir().unwrap();
    let cluster = start_cluster(5, directory.path()).await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let follower = (leader + 4) % 5;
    // The follower hears nothing from the leader, but can still talk to everyone.
    cluster
        .cut_link_one_way(leader, follower, true)
        .await
        .unwrap();
    wait_for(Duration::from_secs(5), "eviction", || async {
        let status = cluster.status(leader).await?;
        status.evicted.contains(&follower).then_some(())
    })
    .await;
    // Its election timer fires, but the masters that hear the leader refuse its pre-vote.
    let timeout_ticks = common::test_protocol().election_timeout_ticks * 2;
    let window = Duration::from_millis(timeout_ticks * common::TEST_TICK_INTERVAL_MS);
    let deadline = Instant::now() + window;
    while Instant::now() < deadline {
        assert_eq!(
            cluster.leader().await,
            Some(leader),
            "the leader was deposed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster
        .cut_link_one_way(leader, follower, false)
        .await
        .unwrap();
    wait_for(Duration::from_secs(10), "readmission", || async {
        let status = cluster.status(leader).await?;
        status.active.contains(&follower).then_some(())
    })
    .await;
    cluster.shutdown().await.unwrap();
}

/// The incident's second half, fixed (`docs/protocol.md` §7.2, `docs/trace.md` §8 divergence
/// 18): a leader frozen far past the pause threshold finds the gap on thawing and runs
/// check-quorum before anything else, so it steps down and evicts nobody. Before, its overdue
/// heartbeat ticks fired in a burst and evicted every follower first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_steps_down_on_resume_without_evicting() {
    let directory = tempfile::tempdir().unwrap();
    let cluster = start_cluster(5, directory.path()).await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let mut client = client(&cluster).await;
    let name = cluster.name().to_string();
    put_until_acknowledged(&mut client, &name, "a", "1", Duration::from_secs(5)).await;
    let protocol = common::test_protocol();
    let pause_ticks = protocol.election_timeout_ticks * 3;
    assert!(pause_ticks > protocol.pause_threshold_ticks() * 10);

    cluster.pause(leader).await.unwrap();
    tokio::time::sleep(Duration::from_millis(
        pause_ticks * common::TEST_TICK_INTERVAL_MS,
    ))
    .await;
    cluster.resume(leader).await.unwrap();
    let status = wait_for(
        Duration::from_secs(5),
        "the resumed leader's step-down",
        || async {
            let status = cluster.status(leader).await?;
            (status.role != vigil_core::Role::Leader).then_some(status)
        },
    )
    .await;
    assert_eq!(
        status.counters.evictions, 0,
        "the resumed leader evicted followers: {status:?}"
    );
    put_until_acknowledged(&mut client, &name, "b", "2", Duration::from_secs(10)).await;
    cluster.shutdown().await.unwrap();
}
