//! Helpers shared by the integration tests: a fast-ticking in-process cluster on 127.0.0.1,
//! and waiting for a condition with a deadline (never a fixed sleep).

#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use vigil::client::Client;
use vigil::cluster::{ClusterOptions, LocalCluster};

/// One tick in tests: 20 ms, so an election takes a few hundred milliseconds.
pub const TEST_TICK_INTERVAL_MS: u64 = 20;

/// Starts `masters` masters and a proxy with fast ticks; the data lives in `directory`.
pub async fn start_cluster(masters: usize, directory: &std::path::Path) -> LocalCluster {
    let mut options = ClusterOptions::local(masters, directory.to_path_buf());
    options.host.tick_interval_ms = TEST_TICK_INTERVAL_MS;
    LocalCluster::start(options).await.expect("cluster starts")
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
pub async fn client(cluster: &LocalCluster) -> Client {
    Client::connect(&cluster.proxy_address().to_string(), Duration::from_secs(5))
        .await
        .expect("client connects")
}
