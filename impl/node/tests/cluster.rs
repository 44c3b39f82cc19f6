//! A 5-master cluster and its proxy on 127.0.0.1, through real sockets and real storage:
//! reads and writes, CAS conflicts, leader failover, and restart from the data directories.
//! (The host under pauses, cut links and disk faults: `conformance/tests/host_faults/`.)

mod common;

use std::time::{Duration, Instant};

use common::{client, put_until_acknowledged, start_cluster};
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
