//! The HTTP endpoint (`metrics_listen`), requested over 127.0.0.1 as an operator's Prometheus
//! or curl would: after a write through the proxy, `/metrics` has the names
//! `docs/operations.md` documents, and `/status` of a master and of a proxy has the fields it
//! documents; other paths are 404, and connections beyond the cap wait.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use vigil::auth::{Authentication, Secret};
use vigil::client::Client;
use vigil::config::HostSettings;
use vigil::master::{self, MasterSettings};
use vigil::proxy::{self, ClusterSecurity, LedgerView, ProxySettings};
use vigil::status::{self, HttpEndpoint, StatusSource, HTTP_CONNECTIONS_MAX};
use vigil_core::OperationResult;

/// One request over a fresh connection: the status code and the body, or `None` if the server
/// did not answer within `timeout`.
async fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).await.ok()?;
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    tokio::time::timeout(timeout, stream.read_to_string(&mut response))
        .await
        .ok()?
        .ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

async fn get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    request(address, "GET", path, Duration::from_secs(5)).await
}

/// `GET path` answered 200 with a JSON body.
async fn get_json(address: SocketAddr, path: &str) -> Option<serde_json::Value> {
    match get(address, path).await? {
        (200, body) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_over_http() {
    let endpoint = HttpEndpoint::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let address = endpoint.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    endpoint.spawn(StatusSource::None, shutdown.clone());
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
    common::wait_for(Duration::from_secs(10), "every metric name", || async {
        let (code, body) = get(address, "/metrics").await?;
        assert_eq!(code, 200, "{body}");
        expected
            .iter()
            .all(|name| body.contains(name))
            .then_some(())
    })
    .await;
    // `vigil cluster` shares one endpoint among its masters and proxy: no `/status` there.
    assert_eq!(
        get(address, "/status").await.map(|(code, _)| code),
        Some(404)
    );
    shutdown.cancel();
    cluster.shutdown().await.unwrap();
}

/// A one-master cluster `solo` and a proxy, as `vigil master` and `vigil proxy` run them, each
/// with its own HTTP endpoint on 127.0.0.1 (a recorder of its own: the global one belongs to
/// the other test when tests share a process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_served_over_http() {
    let directory = tempfile::tempdir().unwrap();
    let host = HostSettings {
        tick_interval_ms: common::TEST_TICK_INTERVAL_MS,
        ..HostSettings::default()
    };
    let protocol = vigil_core::Config {
        masters: 1,
        ..common::test_protocol()
    };
    let shutdown = CancellationToken::new();
    let secret = Secret::generate().unwrap();
    let master_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let master_address = master_listener.local_addr().unwrap();
    let settings = MasterSettings {
        cluster: "solo".into(),
        node_id: 0,
        masters: vec![master_address.to_string()],
        data_dir: directory.path().to_path_buf(),
        protocol: protocol.clone(),
        host: host.clone(),
        trace_file: None,
        authentication: Authentication::ClusterSecret(secret.clone()),
    };
    let master = master::spawn(master_listener, settings, shutdown.child_token()).unwrap();
    let proxy_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_address = proxy_listener.local_addr().unwrap();
    let ledger = Arc::new(LedgerView::default());
    let proxy_settings = ProxySettings {
        clusters: BTreeMap::from([("solo".to_string(), vec![master_address.to_string()])]),
        protocol,
        host,
        trace_file: None,
        security: BTreeMap::from([(
            "solo".to_string(),
            ClusterSecurity {
                authentication: Authentication::ClusterSecret(secret),
                client_token: None,
            },
        )]),
    };
    let proxy_task = tokio::spawn(proxy::run(
        proxy_listener,
        proxy_settings,
        shutdown.child_token(),
        ledger.clone(),
    ));
    let master_http = serve_status(StatusSource::Master(master.status_query()), &shutdown).await;
    let proxy_http = serve_status(StatusSource::Proxy(ledger), &shutdown).await;

    let mut client = Client::connect(&proxy_address.to_string(), Duration::from_secs(5))
        .await
        .unwrap();
    let version =
        common::put_until_acknowledged(&mut client, "solo", "k", "v", Duration::from_secs(10))
            .await;
    assert_eq!(version, 1);

    let status = common::wait_for(Duration::from_secs(10), "master status", || async {
        let status = get_json(master_http, "/status").await?;
        (status["commit_index"].as_u64()? >= 1).then_some(status)
    })
    .await;
    assert_eq!(status["id"], 0);
    assert_eq!(status["role"], "Leader");
    assert_eq!(status["leader"]["node"], 0);
    assert_eq!(status["leader"], status["promised"]);
    assert_eq!(status["active"], serde_json::json!([]));
    assert_eq!(status["evicted"], serde_json::json!([]));
    assert!(status["counters"]["proposals"].as_u64().unwrap() >= 1);
    assert!(status["last_slot"].as_u64().unwrap() >= 1);

    let status = common::wait_for(Duration::from_secs(10), "proxy status", || async {
        let status = get_json(proxy_http, "/status").await?;
        (status["ledger"]["completed_ok"].as_u64()? >= 1).then_some(status)
    })
    .await;
    assert_eq!(status["ledger"]["in_flight"], 0);
    assert_eq!(status["ledger"]["dropped_unanswered"], 0);
    assert_eq!(status["leaders"], serde_json::json!({ "solo": 0 }));

    let (code, _) = get(master_http, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert_eq!(get(proxy_http, "/nowhere").await.map(|(c, _)| c), Some(404));
    let post = request(proxy_http, "POST", "/status", Duration::from_secs(5)).await;
    assert_eq!(post.map(|(code, _)| code), Some(405));

    shutdown.cancel();
    master.stop().await.unwrap();
    proxy_task.await.unwrap().unwrap();
}

/// At most `HTTP_CONNECTIONS_MAX` connections are served; the next waits until one closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connections_are_capped() {
    let shutdown = CancellationToken::new();
    let ledger = Arc::new(LedgerView::default());
    let address = serve_status(StatusSource::Proxy(ledger), &shutdown).await;
    let mut idle = Vec::new();
    for _ in 0..HTTP_CONNECTIONS_MAX {
        idle.push(TcpStream::connect(address).await.unwrap());
    }
    // Every permit is held by a silent connection: a request is not answered...
    let waiting = tokio::spawn(request(address, "GET", "/status", Duration::from_secs(5)));
    let early = request(address, "GET", "/status", Duration::from_millis(300)).await;
    assert_eq!(early, None, "served beyond the cap");
    // ...until one of them closes.
    idle.pop();
    let (code, _) = waiting
        .await
        .unwrap()
        .expect("served once a permit is free");
    assert_eq!(code, 200);
    shutdown.cancel();
}

/// Serves `source` on a fresh 127.0.0.1 port with a recorder that is not the global one.
async fn serve_status(source: StatusSource, shutdown: &CancellationToken) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let metrics = PrometheusBuilder::new().build_recorder().handle();
    tokio::spawn(status::serve(
        listener,
        metrics,
        source,
        shutdown.child_token(),
    ));
    address
}
