//! Bad input to a master and to the proxy, on raw sockets: garbage bytes, a truncated frame,
//! an oversized frame, an unknown message type, a handshake naming the wrong cluster or
//! version. Each must close that connection, count it (`vigil_bad_frames_total`,
//! `vigil_handshake_rejections_total`), and leave the server serving everyone else.

mod common;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil::codec::{self, DialerRole, Hello, PROTOCOL_VERSION};
use vigil_core::OperationResult;

fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("one recorder per test binary")
    })
}

/// The value of counter `name` with all of `labels` (`key="value"` strings), 0 if absent.
fn counter(name: &str, labels: &[&str]) -> u64 {
    recorder()
        .render()
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .sum()
}

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

/// Sends `bytes` (after an optional valid hello) and waits until the server closes.
async fn send_and_expect_close(address: SocketAddr, greeting: Option<Vec<u8>>, bytes: &[u8]) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    if let Some(greeting) = greeting {
        stream.write_all(&greeting).await.unwrap();
        // The Welcome frame: 4-byte length + 1-byte variant.
        let mut welcome = [0u8; 5];
        stream.read_exact(&mut welcome).await.unwrap();
        assert_eq!(welcome, [0, 0, 0, 1, 0], "welcomed");
    }
    // The server may close before reading everything we send; a reset is a close too.
    let _ = stream.write_all(bytes).await;
    let _ = stream.shutdown().await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the server closed the connection");
}

/// Runs `action` and checks that counter `name{labels}` went up by exactly one.
async fn expect_counted<F: std::future::Future<Output = ()>>(
    name: &str,
    labels: &[&str],
    action: F,
) {
    let before = counter(name, labels);
    action.await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while counter(name, labels) == before {
        assert!(
            std::time::Instant::now() < deadline,
            "{name}{labels:?} not counted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(counter(name, labels), before + 1, "{name}{labels:?}");
}

const BAD_FRAMES: &str = "vigil_bad_frames_total";
const REJECTIONS: &str = "vigil_handshake_rejections_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_to_a_master_and_to_the_proxy() {
    recorder();
    let directory = tempfile::tempdir().unwrap();
    let cluster = common::start_cluster(3, directory.path()).await;
    cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let master = cluster.master_addresses()[0];
    let proxy = cluster.proxy_address();
    let name = cluster.name().to_string();
    let as_proxy = || Some(hello(&name, PROTOCOL_VERSION, DialerRole::Proxy));
    let as_client = || Some(hello("", PROTOCOL_VERSION, DialerRole::Client));
    let garbage: Vec<u8> = (0..64u8).map(|byte| byte.wrapping_mul(37) ^ 0xa5).collect();
    let oversized = (64 * 1024 * 1024u32).to_be_bytes();
    let mut truncated = 100u32.to_be_bytes().to_vec();
    truncated.extend_from_slice(&[0u8; 10]);
    let unknown_type = frame(&[99, 0, 0]);

    // A master.
    let server = "server=\"master\"";
    expect_counted(
        REJECTIONS,
        &[server, "reason=\"bad_frame\""],
        send_and_expect_close(master, None, &garbage),
    )
    .await;
    expect_counted(
        BAD_FRAMES,
        &[server, "reason=\"undecodable\""],
        send_and_expect_close(master, as_proxy(), &frame(&garbage)),
    )
    .await;
    expect_counted(
        BAD_FRAMES,
        &[server, "reason=\"truncated\""],
        send_and_expect_close(master, as_proxy(), &truncated),
    )
    .await;
    expect_counted(
        BAD_FRAMES,
        &[server, "reason=\"oversized\""],
        send_and_expect_close(master, as_proxy(), &oversized),
    )
    .await;
    expect_counted(
        BAD_FRAMES,
        &[server, "reason=\"undecodable\""],
        send_and_expect_close(master, as_proxy(), &unknown_type),
    )
    .await;
    let wrong_cluster = hello("another-cluster", PROTOCOL_VERSION, DialerRole::Proxy);
    expect_counted(
        REJECTIONS,
        &[server, "reason=\"cluster\""],
        send_and_expect_close(master, None, &wrong_cluster),
    )
    .await;
    let wrong_version = hello(&name, PROTOCOL_VERSION + 1, DialerRole::Master(1));
    expect_counted(
        REJECTIONS,
        &[server, "reason=\"version\""],
        send_and_expect_close(master, None, &wrong_version),
    )
    .await;
    let client_at_master = hello(&name, PROTOCOL_VERSION, DialerRole::Client);
    expect_counted(
        REJECTIONS,
        &[server, "reason=\"role\""],
        send_and_expect_close(master, None, &client_at_master),
    )
    .await;

    // The proxy.
    let server = "server=\"proxy\"";
    expect_counted(
        REJECTIONS,
        &[server, "reason=\"bad_frame\""],
        send_and_expect_close(proxy, None, &garbage),
    )
    .await;
    expect_counted(
        BAD_FRAMES,
        &[server, "reason=\"undecodable\""],
        send_and_expect_close(proxy, as_client(), &frame(&garbage)),
    )
    .await;
    expect_counted(
        BAD_FRAMES,
        &[server, "reason=\"truncated\""],
        send_and_expect_close(proxy, as_client(), &truncated),
    )
    .await;
    expect_counted(
        BAD_FRAMES,
        &[server, "reason=\"oversized\""],
        send_and_expect_close(proxy, as_client(), &oversized),
    )
    .await;
    expect_counted(
        BAD_FRAMES,
        &[server, "reason=\"undecodable\""],
        send_and_expect_close(proxy, as_client(), &unknown_type),
    )
    .await;
    let master_at_proxy = hello(&name, PROTOCOL_VERSION, DialerRole::Master(0));
    expect_counted(
        REJECTIONS,
        &[server, "reason=\"role\""],
        send_and_expect_close(proxy, None, &master_at_proxy),
    )
    .await;
    let wrong_version = hello("", PROTOCOL_VERSION + 1, DialerRole::Client);
    expect_counted(
        REJECTIONS,
        &[server, "reason=\"version\""],
        send_and_expect_close(proxy, None, &wrong_version),
    )
    .await;

    // Both keep serving: the proxy's links to the masters and new clients work.
    let mut client = common::client(&cluster).await;
    let outcome = client.put(&name, b"still", b"serving").await.unwrap();
    assert!(
        matches!(outcome, Ok(OperationResult::Written { .. })),
        "{outcome:?}"
    );
    let status = cluster.status(0).await.expect("master 0 still runs");
    assert!(status.commit_index >= 1);
    let ledger = cluster.ledger();
    assert!(
        ledger.is_balanced() && ledger.dropped_unanswered == 0,
        "{ledger:?}"
    );
    cluster.shutdown().await.unwrap();
}
