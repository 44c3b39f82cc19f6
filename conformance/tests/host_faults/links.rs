//! Cut links (`docs/protocol.md` §11 `Drop`, §5): on one outbound link, what is sent while it
//! is cut is lost and nothing of it arrives once it is restored; a follower cut off from every
//! master is evicted and readmitted when its links return; a one-way cut from the leader
//! evicts the follower without deposing the leader (the others refuse the follower's pre-vote).

use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vigil::auth::{self, Authentication, ExchangeContext, Secret};
use vigil::codec::{self, DialerRole, Hello, HelloReply, PROTOCOL_VERSION};
use vigil::platform::{Network, TokioNetwork};
use vigil::transport::{self, LinkSettings, SendError};
use vigil_conformance::seams::network::{FaultyNetwork, LinkCuts};
use vigil_conformance::seams::pause::PauseGate;

use crate::common::{self, start_cluster, wait_for};

fn hello() -> Hello {
    Hello {
        protocol_version: PROTOCOL_VERSION,
        cluster: "test".to_string(),
        role: DialerRole::Master(1),
    }
}

fn secret() -> Authentication {
    Authentication::ClusterSecret(Secret::from_bytes(b"transport-test-secret", "test").unwrap())
}

/// Sends `value` until the link has a connection (sends before it are dropped), within 10 s.
async fn send_once_connected<T>(link: &transport::LinkSender<T>, value: impl Fn() -> T) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match link.send(value()) {
            Ok(()) => return,
            Err(SendError::NotConnected) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(error) => panic!("the link did not connect: {error}"),
        }
    }
}

/// Accepts one dialer and answers its handshake.
async fn accept_and_welcome(
    listener: &TcpListener,
) -> (
    codec::FrameReader<tokio::net::tcp::OwnedReadHalf>,
    codec::FrameWriter<tokio::net::tcp::OwnedWriteHalf>,
) {
    let (stream, _) = listener.accept().await.unwrap();
    let (read_half, write_half) = stream.into_split();
    let (mut reader, mut writer) = codec::framed(read_half, write_half, 1 << 20);
    let said: Hello = codec::read_value(&mut reader).await.unwrap().unwrap();
    assert_eq!(said, hello());
    codec::write_value(&mut writer, &HelloReply::Welcome)
        .await
        .unwrap();
    let context = ExchangeContext {
        cluster: &said.cluster,
        role: &said.role,
    };
    auth::authenticate_dialer(&mut reader, &mut writer, &secret(), &context)
        .await
        .expect("the link proves the cluster secret");
    (reader, writer)
}

#[tokio::test]
async fn a_cut_link_loses_messages_until_restored() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let cuts = LinkCuts::default();
    let network = FaultyNetwork::new(TokioNetwork, cuts.clone(), PauseGate::new());
    let shutdown = CancellationToken::new();
    let settings = LinkSettings {
        queue_messages_max: 16,
        connect_timeout: Duration::from_secs(30),
        authentication: secret(),
        ..LinkSettings::default()
    };
    let link = transport::spawn_link_on::<_, u64, u64>(
        network.clone(),
        address.clone(),
        hello(),
        settings,
        None,
        shutdown.clone(),
    );
    let (mut reader, _writer) = accept_and_welcome(&listener).await;
    send_once_connected(&link, || 1).await;
    let first: u64 = codec::read_value(&mut reader).await.unwrap().unwrap();
    assert_eq!(first, 1);

    cuts.set_cut(&address, true);
    // Queued, or refused for want of a connection: lost either way.
    let _ = link.send(2);
    let ended = tokio::time::timeout(
        Duration::from_secs(10),
        codec::read_value::<u64, _>(&mut reader),
    )
    .await
    .expect("the cut connection ends");
    assert!(
        matches!(ended, Ok(None)),
        "nothing sent while cut arrives: {ended:?}"
    );
    assert!(
        network.connect(&address).await.is_err(),
        "a cut link cannot be dialed"
    );

    cuts.set_cut(&address, false);
    let (mut reader, _writer) =
        tokio::time::timeout(Duration::from_secs(10), accept_and_welcome(&listener))
            .await
            .expect("the restored link redials");
    send_once_connected(&link, || 3).await;
    let next: u64 = codec::read_value(&mut reader).await.unwrap().unwrap();
    assert_eq!(next, 3, "what was sent while cut never arrives");
    shutdown.cancel();
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
        cluster.cut_link(follower, *node, true).unwrap();
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
        cluster.cut_link(follower, *node, false).unwrap();
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
async fn a_one_way_cut_from_the_leader_evicts_without_deposing_it() {
    let directory = tempfile::tempdir().unwrap();
    let cluster = start_cluster(5, directory.path()).await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let follower = (leader + 4) % 5;
    // The follower hears nothing from the leader, but can still talk to everyone.
    cluster.cut_link_one_way(leader, follower, true).unwrap();
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
    cluster.cut_link_one_way(leader, follower, false).unwrap();
    wait_for(Duration::from_secs(10), "readmission", || async {
        let status = cluster.status(leader).await?;
        status.active.contains(&follower).then_some(())
    })
    .await;
    cluster.shutdown().await.unwrap();
}
