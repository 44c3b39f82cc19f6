//! Who may talk to whom, on real sockets: a process without the cluster secret (none, a wrong
//! one, or a forged proof) cannot complete the handshake with a master, so it can neither join
//! the quorum nor inject a protocol message; each attempt is refused, logged and counted
//! (`vigil_handshake_rejections_total{reason="auth"}`), and the cluster keeps serving.
//! Client tokens are checked by the proxy: a missing or wrong one is answered
//! `PermissionDenied`, counted, exactly once, and the ledger balances.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use vigil::auth::{AuthError, AuthFrame, Authentication, Secret};
use vigil::client::Client;
use vigil::codec::{self, DialerRole, Hello, HelloReply, PROTOCOL_VERSION};
use vigil::transport::{self, DialError, HandshakeError, LinkSettings};
use vigil::wire::PeerFrame;
use vigil_core::{Ballot, ClientError, Message};

use common::metrics::{counter, expect_counted, recorder};

const REJECTIONS: &str = "vigil_handshake_rejections_total";
const MASTER_AUTH: [&str; 2] = ["server=\"master\"", "reason=\"auth\""];

fn hello(cluster: &str, role: DialerRole) -> Hello {
    Hello {
        protocol_version: PROTOCOL_VERSION,
        cluster: cluster.to_string(),
        role,
    }
}

async fn dial_with(
    address: SocketAddr,
    hello: &Hello,
    authentication: Authentication,
) -> Result<(), DialError> {
    let settings = LinkSettings {
        authentication,
        ..LinkSettings::default()
    };
    transport::dial(&address.to_string(), hello, &settings)
        .await
        .map(|_| ())
}

/// Opens a connection, says `Hello`, reads `Welcome`, and returns the framed halves for a
/// hand-written exchange.
async fn welcomed(
    address: SocketAddr,
    hello: &Hello,
) -> (
    codec::FrameReader<tokio::net::tcp::OwnedReadHalf>,
    codec::FrameWriter<tokio::net::tcp::OwnedWriteHalf>,
) {
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (read_half, write_half) = stream.into_split();
    let (mut reader, mut writer) = codec::framed(read_half, write_half, 1 << 20);
    codec::write_value(&mut writer, hello).await.unwrap();
    let reply: HelloReply = codec::read_value(&mut reader).await.unwrap().unwrap();
    assert_eq!(reply, HelloReply::Welcome);
    (reader, writer)
}

/// Waits until the peer closes; returns everything it still sent.
async fn closed_by_peer(reader: codec::FrameReader<tokio::net::tcp::OwnedReadHalf>) -> Vec<u8> {
    let mut raw = reader.into_inner();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut rest))
        .await
        .expect("the master closed the connection")
        .ok();
    rest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_without_the_secret_cannot_join_or_inject() {
    recorder();
    let directory = tempfile::tempdir().unwrap();
    let cluster = common::start_cluster(3, directory.path()).await;
    cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let master = cluster.master_addresses()[0];
    let name = cluster.name().to_string();
    let impostor = hello(&name, DialerRole::Master(1));

    // A wrong secret: the dialer sees the master's proof fail and gives up; the master
    // hears why, refuses and counts.
    let wrong = Secret::from_bytes(b"not-the-cluster-secret", "test").unwrap();
    expect_counted(REJECTIONS, &MASTER_AUTH, async {
        let error = dial_with(master, &impostor, Authentication::ClusterSecret(wrong))
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                DialError::Handshake(HandshakeError::Auth(AuthError::WrongProof))
            ),
            "{error}"
        );
    })
    .await;

    // No secret at all (a node configured `insecure = true`).
    expect_counted(REJECTIONS, &MASTER_AUTH, async {
        let error = dial_with(master, &impostor, Authentication::Insecure)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("no cluster secret"), "{error}");
    })
    .await;

    // A forged proof: take the master's challenge, answer with anything.
    expect_counted(REJECTIONS, &MASTER_AUTH, async {
        let (mut reader, mut writer) = welcomed(master, &impostor).await;
        let challenge = AuthFrame::Challenge {
            dialer_nonce: Some([7; 32]),
        };
        codec::write_value(&mut writer, &challenge).await.unwrap();
        let response: AuthFrame = codec::read_value(&mut reader).await.unwrap().unwrap();
        assert!(
            matches!(response, AuthFrame::Response { .. }),
            "{response:?}"
        );
        let forged = AuthFrame::Proof {
            dialer_proof: [0; 32],
        };
        codec::write_value(&mut writer, &forged).await.unwrap();
        let verdict: AuthFrame = codec::read_value(&mut reader).await.unwrap().unwrap();
        let AuthFrame::Refused { reason } = verdict else {
            panic!("{verdict:?}")
        };
        assert!(reason.contains("wrong cluster secret"), "{reason}");
        closed_by_peer(reader).await;
    })
    .await;

    // Injection: skip the exchange and send a Prepare with a ballot far above the cluster's.
    // Were it read as a protocol message, master 0 would promise it.
    let before = cluster.status(0).await.unwrap().promised;
    let rejections_before = counter(REJECTIONS, &["server=\"master\""]);
    let (reader, mut writer) = welcomed(master, &impostor).await;
    let prepare = PeerFrame::Protocol {
        message: Message::Prepare {
            ballot: Ballot {
                round: 1_000_000,
                node: 1,
            },
            commit_index: 0,
        },
        stamp: None,
    };
    for _ in 0..3 {
        let _ = codec::write_value(&mut writer, &prepare).await;
    }
    closed_by_peer(reader).await;
    assert!(counter(REJECTIONS, &["server=\"master\""]) > rejections_before);
    let after = cluster.status(0).await.unwrap().promised;
    assert!(
        after.round < 1_000_000,
        "promised {after:?} (was {before:?})"
    );

    // The cluster still serves, and its own masters still talk to each other.
    let mut client = common::client(&cluster).await;
    common::put_until_acknowledged(&mut client, &name, "k", "v", Duration::from_secs(10)).await;
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_client_token_is_denied_once_and_counted() {
    recorder();
    let directory = tempfile::tempdir().unwrap();
    let mut options = common::test_options(3, directory.path());
    let token = Secret::from_bytes(b"the-client-token-of-local", "test").unwrap();
    options.client_token = Some(token.clone());
    let cluster = vigil::cluster::LocalCluster::start(options).await.unwrap();
    cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let name = cluster.name().to_string();
    let address = cluster.proxy_address().to_string();
    let denied = ["cluster=\"local\""];
    let before = counter("vigil_proxy_permission_denied_total", &denied);

    let mut client = Client::connect(&address, Duration::from_secs(5))
        .await
        .unwrap();
    // Pipelined, so the denials are answered while other requests are in flight.
    for _ in 0..10 {
        client
            .send_request(&name, vigil_core::Operation::Get { key: b"k".to_vec() })
            .await
            .unwrap();
    }
    for _ in 0..10 {
        let (_, outcome) = client.next_reply().await.unwrap();
        assert_eq!(outcome, Err(ClientError::PermissionDenied));
    }
    client.set_token(
        &name,
        Secret::from_bytes(b"another-token-entirely", "t")
            .unwrap()
            .token(),
    );
    assert_eq!(
        client.get(&name, b"k").await.unwrap(),
        Err(ClientError::PermissionDenied)
    );
    assert_eq!(
        counter("vigil_proxy_permission_denied_total", &denied),
        before + 11
    );

    client.set_token(&name, token.token());
    let mut reply = Err(ClientError::NoLeader);
    for _ in 0..50 {
        reply = client.put(&name, b"k", b"v").await.unwrap();
        if reply.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reply.is_ok(), "{reply:?}");
    let ledger = cluster.ledger();
    assert!(ledger.is_balanced(), "{ledger:?}");
    assert_eq!(ledger.in_flight, 0, "{ledger:?}");
    assert!(ledger.completed_err >= 11, "{ledger:?}");
    cluster.shutdown().await.unwrap();
}
