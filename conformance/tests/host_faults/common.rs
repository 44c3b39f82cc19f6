//! What the fault tests share: a fast-ticking in-process cluster with fault switches, a client
//! of its proxy, and waiting for a condition with a deadline (never a fixed sleep).

use std::future::Future;
use std::time::{Duration, Instant};

use vigil::client::Client;
use vigil::cluster::ClusterOptions;
use vigil_conformance::seams::cluster::FaultyCluster;
use vigil_core::{ClientError, OperationResult};

/// One tick in tests: 20 ms.
pub const TEST_TICK_INTERVAL_MS: u64 = 20;

/// Protocol timing for tests: heartbeats every tick (20 ms), eviction after 5 missed (100 ms),
/// elections after 25 ticks (500 ms, plus a stagger of up to 400 ms), requests time out after
/// 150 ticks (3 s, below the test clients' 5 s). Fast enough for short tests, slow enough that
/// a loaded 2-core CI machine running other suites does not see spurious elections.
pub fn test_protocol() -> vigil_core::Config {
    vigil_core::Config {
        eviction_threshold: 5,
        election_timeout_ticks: 25,
        request_timeout_ticks: 150,
        ..vigil_core::Config::default()
    }
}

/// Cluster options with the test timing and a fixed cluster secret; the data lives in
/// `directory`.
pub fn test_options(masters: usize, directory: &std::path::Path) -> ClusterOptions {
    let mut options = ClusterOptions::local(masters, directory.to_path_buf());
    let secret =
        vigil::auth::Secret::from_bytes(b"vigil-test-cluster-secret", "test").expect("long enough");
    options.cluster_secret = Some(secret);
    options.host.tick_interval_ms = TEST_TICK_INTERVAL_MS;
    options.protocol = test_protocol();
    options
}

/// Starts `masters` masters and a proxy with the test timing; the data lives in `directory`.
pub async fn start_cluster(masters: usize, directory: &std::path::Path) -> FaultyCluster {
    FaultyCluster::start(test_options(masters, directory))
        .await
        .expect("cluster starts")
}

/// Polls `condition` every 20 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client of the cluster's proxy.
pub async fn client(cluster: &FaultyCluster) -> Client {
    Client::connect(&cluster.proxy_address().to_string(), Duration::from_secs(5))
        .await
        .expect("client connects")
}

/// Puts until one is acknowledged (during an election the proxy may answer NoLeader, Timeout
/// or LeaderChanged, indeterminate outcomes: a retried put may have been applied before);
/// returns the acknowledged version.
pub async fn put_until_acknowledged(
    client: &mut Client,
    cluster: &str,
    key: &str,
    data: &str,
    timeout: Duration,
) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let outcome = client
            .put(cluster, key.as_bytes(), data.as_bytes())
            .await
            .expect("the proxy answers");
        match outcome {
            Ok(OperationResult::Written { version }) => return version,
            Ok(other) => panic!("a put answered {other:?}"),
            Err(ClientError::NoLeader | ClientError::Timeout | ClientError::LeaderChanged) => {
                assert!(
                    Instant::now() < deadline,
                    "no acknowledged put within {timeout:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
}
