//! The Prometheus endpoint, scraped over HTTP on 127.0.0.1 as an operator's Prometheus would:
//! after a write through the proxy, the names `docs/operations.md` documents are there.

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_core::OperationResult;

async fn scrape(address: std::net::SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect(address).await.ok()?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut body))
        .await
        .ok()?
        .ok()?;
    Some(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_over_http() {
    // A free loopback port: bind, note it, release it for the exporter.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    vigil::metrics::install_exporter(address).unwrap();
    let directory = tempfile::tempdir().unwrap();
    let cluster = common::start_cluster(3, directory.path()).await;
    cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    let mut client = common::client(&cluster).await;
    let outcome = client.put(cluster.name(), b"k", b"v").await.unwrap();
    assert!(matches!(outcome, Ok(OperationResult::Written { .. })));
    let expected = [
        "vigil_leader_changes_total",
        "vigil_proposals_total",
        "vigil_commit_latency_seconds",
        "vigil_fsync_seconds",
        "vigil_proxy_accepted_total",
        "vigil_proxy_completed_ok_total",
        "vigil_proxy_in_flight",
        "vigil_connections_accepted_total",
        "vigil_master_role",
        "vigil_commit_index",
    ];
    let body = common::wait_for(Duration::from_secs(10), "every metric name", || async {
        let body = scrape(address).await?;
        expected
            .iter()
            .all(|name| body.contains(name))
            .then_some(body)
    })
    .await;
    assert!(
        body.starts_with("HTTP/1.1 200"),
        "{}",
        &body[..body.len().min(200)]
    );
    cluster.shutdown().await.unwrap();
}
