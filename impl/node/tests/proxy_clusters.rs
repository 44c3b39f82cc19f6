//! One proxy serving two clusters (the config maps each name to its masters): requests are
//! routed by the name they carry, the clusters' data stay apart, and an unknown name is
//! answered `UnknownCluster` by the same proxy. Each cluster has its own secret, and `alpha`
//! its own client token: a request to it without the token is answered `PermissionDenied`.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vigil::auth::{Authentication, Secret};
use vigil::client::Client;
use vigil::cluster::LocalCluster;
use vigil::proxy::{self, ClusterSecurity, LedgerView, ProxySettings};
use vigil_core::{ClientError, OperationResult};

async fn start(name: &str, directory: &std::path::Path) -> LocalCluster {
    let mut options = common::test_options(3, &directory.join(name));
    options.cluster = name.to_string();
    options.cluster_secret = Some(secret(&format!("{name}-cluster-secret")));
    options.host.tick_interval_ms = common::TEST_TICK_INTERVAL_MS;
    LocalCluster::start(options).await.unwrap()
}

fn secret(text: &str) -> Secret {
    Secret::from_bytes(text.as_bytes(), "test").unwrap()
}

/// The token `alpha`'s clients must present (`beta` requires none).
const ALPHA_TOKEN: &str = "alpha-client-token";

/// A proxy config serving every given cluster by its name, with its secret.
fn proxy_settings(clusters: &[&LocalCluster]) -> ProxySettings {
    let mut settings = ProxySettings {
        clusters: clusters
            .iter()
            .map(|cluster| {
                let addresses = cluster.master_addresses().iter().map(ToString::to_string);
                (cluster.name().to_string(), addresses.collect())
            })
            .collect::<BTreeMap<_, _>>(),
        protocol: common::test_protocol(),
        host: vigil::config::HostSettings::default(),
        trace_file: None,
        security: clusters
            .iter()
            .map(|cluster| {
                let name = cluster.name();
                let security = ClusterSecurity {
                    authentication: Authentication::ClusterSecret(secret(&format!(
                        "{name}-cluster-secret"
                    ))),
                    client_token: (name == "alpha").then(|| secret(ALPHA_TOKEN)),
                };
                (name.to_string(), security)
            })
            .collect(),
    };
    settings.host.tick_interval_ms = common::TEST_TICK_INTERVAL_MS;
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_proxy_serves_two_clusters() {
    let directory = tempfile::tempdir().unwrap();
    let alpha = start("alpha", directory.path()).await;
    let beta = start("beta", directory.path()).await;
    alpha
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    beta.wait_for_leader(Duration::from_secs(10)).await.unwrap();

    let settings = proxy_settings(&[&alpha, &beta]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    let ledger = Arc::new(LedgerView::default());
    let proxy = tokio::spawn(proxy::run(
        listener,
        settings,
        shutdown.clone(),
        ledger.clone(),
    ));

    let mut client = Client::connect(&address, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        client.put("alpha", b"k", b"no-token").await.unwrap(),
        Err(ClientError::PermissionDenied)
    );
    client.set_token("alpha", secret("alpha-client-tokeN").token());
    assert_eq!(
        client.put("alpha", b"k", b"wrong-token").await.unwrap(),
        Err(ClientError::PermissionDenied)
    );
    assert!(
        client.status("alpha").await.is_err(),
        "status needs the token"
    );
    client.set_token("alpha", secret(ALPHA_TOKEN).token());
    assert_eq!(
        client.put("alpha", b"k", b"from-alpha").await.unwrap(),
        Ok(OperationResult::Written { version: 1 })
    );
    assert_eq!(
        client.get("beta", b"k").await.unwrap(),
        Ok(OperationResult::Value {
            value: None,
            version: 0
        }),
        "beta does not see alpha's key"
    );
    assert_eq!(
        client.put("beta", b"k", b"from-beta").await.unwrap(),
        Ok(OperationResult::Written { version: 1 })
    );
    assert_eq!(
        client.get("alpha", b"k").await.unwrap(),
        Ok(OperationResult::Value {
            value: Some(b"from-alpha".to_vec()),
            version: 1
        })
    );
    assert_eq!(
        client.get("gamma", b"k").await.unwrap(),
        Err(ClientError::UnknownCluster)
    );
    let status = client.status("beta").await.unwrap();
    assert_eq!(status.masters.len(), 3);
    assert!(status.masters.iter().all(Result::is_ok), "{status:?}");
    assert!(client.status("gamma").await.is_err());

    let counters = ledger.counters();
    assert_eq!(
        (
            counters.accepted,
            counters.completed_ok,
            counters.completed_err
        ),
        (7, 4, 3),
        "two PermissionDenied and one UnknownCluster, each answered once"
    );
    assert_eq!(counters.in_flight, 0);
    shutdown.cancel();
    proxy.await.unwrap().unwrap();
    alpha.shutdown().await.unwrap();
    beta.shutdown().await.unwrap();
}
