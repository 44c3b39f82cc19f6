//! Bad input to a master and to the proxy, on raw sockets: garbage bytes, a truncated frame,
//! an oversized frame, an unknown message type, a handshake naming the wrong cluster or
//! version. Each must close that connection, count it (`vigil_bad_frames_total`,
//! `vigil_handshake_rejections_total`), and leave the server serving everyone else.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::metrics::{expect_counted, recorder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil::auth::Authentication;
use vigil::codec::{self, DialerRole, Hello, PROTOCOL_VERSION};
use vigil::transport::{self, LinkSettings};

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

fn hello(cluster: &str, protocol_version: u32, role: DialerRole) -> Vec<u8> {
    let hello = Hello {
        protocol_version,
        cluster: cluster.to_string(),
        role,
    };
    frame(&codec::encode(&hello).unwrap())
}

/// How a test connection opens before its bad bytes.
#[derive(Clone)]
enum Greeting {
    /// Nothing: the bad bytes are the first thing the server reads.
    None,
    /// A valid `Hello` (a client's), answered `Welcome`.
    Hello(Vec<u8>),
    /// A master's or proxy's `Hello` and the cluster-secret exchange (`auth.rs`).
    Authenticated(Hello),
}

/// Opens a connection to `address` and says `greeting`.
async fn open(address: SocketAddr, greeting: Greeting) -> TcpStream {
    match greeting {
        Greeting::None => TcpStream::connect(address).await.unwrap(),
        Greeting::Hello(hello) => {
            let mut stream = TcpStream::connect(address).await.unwrap();
            stream.write_all(&hello).await.unwrap();
            // The Welcome frame: 4-byte length + 1-byte variant.
            let mut welcome = [0u8; 5];
            stream.read_exact(&mut welcome).await.unwrap();
            assert_eq!(welcome, [0, 0, 0, 1, 0], "welcomed");
            stream
        }
        Greeting::Authenticated(hello) => {
            let settings = LinkSettings {
                authentication: Authentication::ClusterSecret(common::test_secret()),
                ..LinkSettings::default()
            };
            let (reader, writer) = transport::dial(&address.to_string(), &hello, &settings)
                .await
                .expect("authenticated");
            reader.into_inner().reunite(writer.into_inner()).unwrap()
        }
    }
}

/// Sends `bytes` after `greeting` and waits until the server closes.
async fn send_and_expect_close(address: SocketAddr, greeting: Greeting, bytes: &[u8]) {
    let mut stream = open(address, greeting).await;
    // The server may close before reading everything we send; a reset is a close too.
    let _ = stream.write_all(bytes).await;
    let _ = stream.shutdown().await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the server closed the connection");
}

const BAD_FRAMES: &str = "vigil_bad_frames_total";
const REJECTIONS: &str = "vigil_handshake_rejections_total";

/// The inputs both servers must survive.
struct BadInputs {
    garbage: Vec<u8>,
    oversized: [u8; 4],
    truncated: Vec<u8>,
    unknown_type: Vec<u8>,
}

fn bad_inputs() -> BadInputs {
    let mut truncated = 100u32.to_be_bytes().to_vec();
    truncated.extend_from_slice(&[0u8; 10]);
    BadInputs {
        garbage: (0..64u8).map(|byte| byte.wrapping_mul(37) ^ 0xa5).collect(),
        // Above every limit: a client's (`frame_bytes_max`) and an authenticated peer's
        // (`peer_frame_bytes_max`, 1 GiB).
        oversized: u32::MAX.to_be_bytes(),
        truncated,
        // A well-formed frame whose first byte is a message variant that does not exist.
        unknown_type: frame(&[99, 0, 0]),
    }
}

/// Sends every framing fault after a valid `greeting` and checks each is closed and counted.
async fn framing_faults(address: SocketAddr, server: &str, greeting: Greeting) {
    let inputs = bad_inputs();
    let cases: [(&str, Vec<u8>); 4] = [
        ("undecodable", frame(&inputs.garbage)),
        ("truncated", inputs.truncated.clone()),
        ("oversized", inputs.oversized.to_vec()),
        ("undecodable", inputs.unknown_type.clone()),
    ];
    for (reason, bytes) in cases {
        let labels = [server, &format!("reason=\"{reason}\"")];
        let labels: Vec<&str> = labels.iter().map(|label| label.as_ref()).collect();
        expect_counted(
            BAD_FRAMES,
            &labels,
            send_and_expect_close(address, greeting.clone(), &bytes),
        )
        .await;
    }
    let labels = [server, "reason=\"bad_frame\""];
    expect_counted(
        REJECTIONS,
        &labels,
        send_and_expect_close(address, Greeting::None, &inputs.garbage),
    )
    .await;
}

/// Checks that the cluster still serves through its proxy, and that the ledger balances.
async fn still_serving(cluster: &vigil::cluster::LocalCluster) {
    let mut client = common::client(cluster).await;
    let timeout = Duration::from_secs(10);
    common::put_until_acknowledged(&mut client, cluster.name(), "still", "serving", timeout).await;
    let status = cluster.status(0).await.expect("master 0 still runs");
    assert!(status.commit_index >= 1);
    let ledger = cluster.ledger();
    assert!(
        ledger.is_balanced() && ledger.dropped_unanswered == 0,
        "{ledger:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_to_a_master() {
    recorder();
    let directory = tempfile::tempdir().unwrap();
    let cluster = common::start_cluster(3, directory.path()).await;
    cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let master = cluster.master_addresses()[0];
    let name = cluster.name().to_string();
    let server = "server=\"master\"";
    let proxy_hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        cluster: name.clone(),
        role: DialerRole::Proxy,
    };
    framing_faults(master, server, Greeting::Authenticated(proxy_hello)).await;
    let refusals = [
        (
            "cluster",
            hello("another-cluster", PROTOCOL_VERSION, DialerRole::Proxy),
        ),
        (
            "version",
            hello(&name, PROTOCOL_VERSION + 1, DialerRole::Master(1)),
        ),
        ("role", hello(&name, PROTOCOL_VERSION, DialerRole::Client)),
        (
            "node_id",
            hello(&name, PROTOCOL_VERSION, DialerRole::Master(0)),
        ),
    ];
    for (reason, greeting) in refusals {
        let labels = [server, &format!("reason=\"{reason}\"")];
        let labels: Vec<&str> = labels.iter().map(|label| label.as_ref()).collect();
        expect_counted(
            REJECTIONS,
            &labels,
            send_and_expect_close(master, Greeting::None, &greeting),
        )
        .await;
    }
    still_serving(&cluster).await;
    cluster.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_to_the_proxy() {
    recorder();
    let directory = tempfile::tempdir().unwrap();
    let cluster = common::start_cluster(3, directory.path()).await;
    cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let proxy = cluster.proxy_address();
    let name = cluster.name().to_string();
    let server = "server=\"proxy\"";
    let client_hello = hello("", PROTOCOL_VERSION, DialerRole::Client);
    framing_faults(proxy, server, Greeting::Hello(client_hello)).await;
    let refusals = [
        (
            "role",
            hello(&name, PROTOCOL_VERSION, DialerRole::Master(0)),
        ),
        (
            "version",
            hello("", PROTOCOL_VERSION + 1, DialerRole::Client),
        ),
    ];
    for (reason, greeting) in refusals {
        let labels = [server, &format!("reason=\"{reason}\"")];
        let labels: Vec<&str> = labels.iter().map(|label| label.as_ref()).collect();
        expect_counted(
            REJECTIONS,
            &labels,
            send_and_expect_close(proxy, Greeting::None, &greeting),
        )
        .await;
    }
    still_serving(&cluster).await;
    cluster.shutdown().await.unwrap();
}
