//! Stop-the-world pauses (`docs/protocol.md` §7): a frozen follower is evicted while the others
//! keep serving, then rejoins and catches up (the incident's first half); a frozen leader finds
//! the gap on thawing and runs check-quorum before anything else, so it steps down and evicts
//! nobody (§7.2, the incident's second half).

use std::time::Duration;

use crate::common::{self, client, put_until_acknowledged, start_cluster, wait_for};
use vigil_core::{OperationResult, ReplyOutcome};

fn written(version: u64) -> ReplyOutcome {
    Ok(OperationResult::Written { version })
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

    cluster.pause(follower).unwrap();
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

    cluster.resume(follower).unwrap();
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

/// A leader frozen far past the pause threshold must not fire its overdue heartbeat ticks in a
/// burst and evict every follower: on thawing it sees the gap, runs check-quorum first, finds
/// no acknowledgements since before the pause, and steps down (`docs/protocol.md` §7.2).
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

    cluster.pause(leader).unwrap();
    tokio::time::sleep(Duration::from_millis(
        pause_ticks * common::TEST_TICK_INTERVAL_MS,
    ))
    .await;
    cluster.resume(leader).unwrap();
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
