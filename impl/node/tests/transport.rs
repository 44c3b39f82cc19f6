//! Outbound links: a peer that does not read never grows the sender's memory (the queue is
//! bounded and drops beyond it), a peer that is down is redialed with backoff, nothing queued
//! for one connection reaches the next (a restarted peer never gets what was sent to its
//! previous incarnation). (A cut link: `conformance/tests/host_faults/links.rs`.)

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vigil::auth::{self, Authentication, ExchangeContext, Secret};
use vigil::codec::{self, DialerRole, Hello, HelloReply, PROTOCOL_VERSION};
use vigil::transport::{self, LinkSettings, SendError};

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

fn settings(queue_messages_max: usize) -> LinkSettings {
    LinkSettings {
        queue_messages_max,
        connect_timeout: Duration::from_secs(30),
        authentication: secret(),
        ..LinkSettings::default()
    }
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
async fn a_peer_that_never_reads_costs_a_bounded_queue() {
    // The peer says hello and then never reads: the socket buffers fill, then the queue.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    let link = transport::spawn_link::<Vec<u8>, u64>(
        address,
        hello(),
        settings(100),
        None,
        shutdown.clone(),
    );
    let (_reader, _writer) = accept_and_welcome(&listener).await;
    let message = || vec![7u8; 64 * 1024];
    send_once_connected(&link, message).await;
    let mut dropped = 0;
    for _ in 0..2000 {
        match link.send(message()) {
            Ok(()) => {}
            Err(SendError::QueueFull) => dropped += 1,
            Err(error) => panic!("{error}"),
        }
        tokio::task::yield_now().await;
    }
    // At most the queue (100) plus what the socket buffers hold (a few MiB) got through.
    assert!(dropped >= 1500, "only {dropped} of 2000 dropped");
    shutdown.cancel();
}

#[tokio::test]
async fn a_peer_that_comes_up_later_is_dialed_and_what_was_sent_before_is_dropped() {
    // Find a free port, leave it closed: the first dials fail and back off.
    let address = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let shutdown = CancellationToken::new();
    let link = transport::spawn_link::<u64, u64>(
        address.to_string(),
        hello(),
        settings(16),
        None,
        shutdown.clone(),
    );
    // Not connected: dropped now rather than delivered later (perhaps to a restarted peer).
    assert_eq!(link.send(7), Err(SendError::NotConnected));
    let listener = TcpListener::bind(address).await.unwrap();
    let received = tokio::time::timeout(Duration::from_secs(10), async {
        let (mut reader, _writer) = accept_and_welcome(&listener).await;
        send_once_connected(&link, || 8).await;
        let first: u64 = codec::read_value(&mut reader).await.unwrap().unwrap();
        first
    })
    .await
    .expect("the link redials and delivers within the deadline");
    assert_eq!(received, 8);
    shutdown.cancel();
}

#[tokio::test]
async fn a_lost_connection_loses_what_was_queued_for_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    let link =
        transport::spawn_link::<u64, u64>(address, hello(), settings(16), None, shutdown.clone());
    let (reader, writer) = accept_and_welcome(&listener).await;
    send_once_connected(&link, || 1).await;
    // The peer goes away (a crash); the next connection is a new incarnation of it.
    drop((reader, writer));
    let (mut reader, _writer) = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let _ = link.send(2); // queued for the old connection, or dropped: never delivered
            tokio::select! {
                accepted = accept_and_welcome(&listener) => return accepted,
                () = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
    })
    .await
    .expect("the link redials");
    send_once_connected(&link, || 3).await;
    let first: u64 = codec::read_value(&mut reader).await.unwrap().unwrap();
    assert_eq!(
        first, 3,
        "nothing sent for the previous connection reaches the new one"
    );
    shutdown.cancel();
}
