//! Outbound links: a peer that does not read never grows the sender's memory (the queue is
//! bounded and drops beyond it), a peer that is down is redialed with backoff and receives what
//! was queued once it is up, and a cut link loses messages (fault injection).

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vigil::codec::{self, DialerRole, Hello, HelloReply, PROTOCOL_VERSION};
use vigil::transport::{self, LinkSettings, SendError};

fn hello() -> Hello {
    Hello {
        protocol_version: PROTOCOL_VERSION,
        cluster: "test".to_string(),
        role: DialerRole::Master(1),
    }
}

fn settings(queue_messages_max: usize) -> LinkSettings {
    LinkSettings {
        queue_messages_max,
        connect_timeout: Duration::from_secs(30),
        ..LinkSettings::default()
    }
}

#[tokio::test]
async fn a_peer_that_never_answers_costs_a_bounded_queue() {
    // The listener exists but never accepts: the dial hangs waiting for the handshake reply.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    let link =
        transport::spawn_link::<u64, u64>(address, hello(), settings(100), None, shutdown.clone());
    let results: Vec<Result<(), SendError>> = (0..2000u64).map(|value| link.send(value)).collect();
    let queued = results.iter().filter(|result| result.is_ok()).count();
    let dropped = results
        .iter()
        .filter(|result| **result == Err(SendError::QueueFull))
        .count();
    assert_eq!((queued, dropped), (100, 1900));
    shutdown.cancel();
}

#[tokio::test]
async fn a_peer_that_comes_up_later_receives_what_was_queued() {
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
    link.send(7).unwrap();
    link.send(8).unwrap();
    let listener = TcpListener::bind(address).await.unwrap();
    let received = tokio::time::timeout(Duration::from_secs(10), async {
        let (stream, _) = listener.accept().await.unwrap();
        let (read_half, write_half) = stream.into_split();
        let (mut reader, mut writer) = codec::framed(read_half, write_half, 1024);
        let said: Hello = codec::read_value(&mut reader).await.unwrap().unwrap();
        assert_eq!(said, hello());
        codec::write_value(&mut writer, &HelloReply::Welcome)
            .await
            .unwrap();
        let first: u64 = codec::read_value(&mut reader).await.unwrap().unwrap();
        let second: u64 = codec::read_value(&mut reader).await.unwrap().unwrap();
        (first, second)
    })
    .await
    .expect("the link redials and delivers within the deadline");
    assert_eq!(received, (7, 8));
    shutdown.cancel();
}

#[tokio::test]
async fn a_cut_link_loses_messages_until_restored() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    let link =
        transport::spawn_link::<u64, u64>(address, hello(), settings(16), None, shutdown.clone());
    link.set_cut(true);
    assert_eq!(link.send(1), Err(SendError::LinkDown));
    link.set_cut(false);
    assert_eq!(link.send(2), Ok(()));
    shutdown.cancel();
}
