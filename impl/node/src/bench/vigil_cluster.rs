//! A vigil cluster as users run it: N `vigil master` processes and one `vigil proxy` process on
//! 127.0.0.1, each from a TOML config written here with the default settings (durable: fsync
//! before every acknowledgement), each with its `/status` endpoint so the benchmark can see
//! roles, eviction and commit indexes without going through the proxy.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vigil_core::{MasterStatus, NodeId, Role};

use super::load::Connection;
use super::process::{self, Children};
use super::BenchError;
use crate::client::Client;
use crate::config::{ClusterAddresses, HostSettings, MasterAddress, MasterConfig, ProxyConfig};

/// The cluster name the benchmark's proxy serves.
pub const CLUSTER: &str = "bench";
/// Time the cluster has to elect a leader and answer a first write.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Client timeout for every benchmark request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Time one `/status` request may take.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// Running master and proxy processes; all are killed when this drops.
#[derive(Debug)]
pub struct VigilCluster {
    /// The processes (`master-0`…, `proxy`).
    pub children: Children,
    /// Where clients connect.
    pub proxy_address: SocketAddr,
    /// The proxy's `/status` endpoint.
    pub proxy_http: SocketAddr,
    /// Each master's `/status` endpoint, by node id.
    pub master_http: Vec<SocketAddr>,
}

/// The child name of master `node`.
pub fn master_name(node: NodeId) -> String {
    format!("master-{node}")
}

impl VigilCluster {
    /// Writes configs under `directory`, starts `masters` masters and a proxy, and waits until
    /// a write through the proxy succeeds.
    pub async fn start(directory: &Path, masters: usize) -> Result<VigilCluster, BenchError> {
        assert!((1..=9).contains(&masters), "1 to 9 masters");
        let addresses = process::free_loopback_addresses(2 * masters + 2)?;
        let (peer, http) = addresses[..2 * masters].split_at(masters);
        let (proxy_address, proxy_http) = (addresses[2 * masters], addresses[2 * masters + 1]);
        let executable = process::vigil_executable()?;
        let mut children = Children::default();
        for (node, http) in http.iter().enumerate() {
            let config = master_config(directory, node, peer, *http);
            let path = write_config(directory, &format!("master-{node}.toml"), &config)?;
            start_child(
                &mut children,
                &executable,
                &master_name(node as NodeId),
                "master",
                &path,
                directory,
            )?;
        }
        let config = ProxyConfig {
            listen: proxy_address,
            metrics_listen: Some(proxy_http),
            clusters: vec![ClusterAddresses {
                name: CLUSTER.to_string(),
                masters: peer.iter().map(SocketAddr::to_string).collect(),
                cluster_secret_file: None,
                cluster_secret_env: None,
                client_token_file: None,
                client_token_env: None,
                // Loopback benchmark; the handshake's cost is per connection, not per request.
                insecure: true,
            }],
            host: HostSettings::default(),
            protocol: vigil_core::Config::default(),
            trace_file: None,
        };
        let path = write_config(directory, "proxy.toml", &config)?;
        start_child(
            &mut children,
            &executable,
            "proxy",
            "proxy",
            &path,
            directory,
        )?;
        let cluster = VigilCluster {
            children,
            proxy_address,
            proxy_http,
            master_http: http.to_vec(),
        };
        cluster.wait_until_writable(READY_TIMEOUT).await?;
        Ok(cluster)
    }

    /// Retries a write through the proxy until one succeeds; returns when it did.
    pub async fn wait_until_writable(&self, timeout: Duration) -> Result<Instant, BenchError> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            let attempt = Duration::from_millis(500);
            match Client::connect(&self.proxy_address.to_string(), attempt).await {
                Ok(mut client) => match client.put(CLUSTER, b"ready", b"1").await {
                    Ok(vigil_core::ReplyOutcome::Ok(_)) => return Ok(Instant::now()),
                    Ok(vigil_core::ReplyOutcome::Err(error)) => last = format!("{error:?}"),
                    Err(error) => last = error.to_string(),
                },
                Err(error) => last = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err(BenchError::Setup(format!(
            "vigil cluster not writable within {timeout:?}: {last}"
        )))
    }

    /// `clients` fresh connections to the proxy.
    pub async fn connections(&self, clients: usize) -> Result<Vec<Connection>, BenchError> {
        let mut connections = Vec::with_capacity(clients);
        for _ in 0..clients {
            let client = Client::connect(&self.proxy_address.to_string(), REQUEST_TIMEOUT)
                .await
                .map_err(|error| BenchError::Setup(format!("connecting to the proxy: {error}")))?;
            connections.push(Connection::Vigil {
                client,
                cluster: CLUSTER.to_string(),
            });
        }
        Ok(connections)
    }

    /// Master `node`'s status from its own endpoint.
    pub async fn master_status(&self, node: NodeId) -> Result<MasterStatus, BenchError> {
        let body =
            process::http_get(self.master_http[node as usize], "/status", STATUS_TIMEOUT).await?;
        serde_json::from_str(&body)
            .map_err(|error| BenchError::Setup(format!("master {node} /status: {error}")))
    }

    /// The master that reports itself leader, with its status (masters that do not answer,
    /// e.g. stopped ones, are skipped).
    pub async fn leader(&self) -> Option<MasterStatus> {
        for node in 0..self.master_http.len() as NodeId {
            if let Ok(status) = self.master_status(node).await {
                if status.role == Role::Leader {
                    return Some(status);
                }
            }
        }
        None
    }

    /// Waits for a leader, polling every few milliseconds.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<MasterStatus, BenchError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(leader) = self.leader().await {
                return Ok(leader);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err(BenchError::Setup(format!("no leader within {timeout:?}")))
    }

    /// The proxy's ledger `in_flight` from its `/status`.
    pub async fn proxy_in_flight(&self) -> Result<u64, BenchError> {
        let body = process::http_get(self.proxy_http, "/status", STATUS_TIMEOUT).await?;
        let status: serde_json::Value = serde_json::from_str(&body)
            .map_err(|error| BenchError::Setup(format!("proxy /status: {error}")))?;
        status["ledger"]["in_flight"]
            .as_u64()
            .ok_or_else(|| BenchError::Setup(format!("proxy /status has no in_flight: {body}")))
    }

    /// Fails if any process exited (a crashed master invalidates the figures).
    pub fn check_alive(&mut self) -> Result<(), BenchError> {
        let exited = self.children.exited();
        if exited.is_empty() {
            Ok(())
        } else {
            Err(BenchError::Setup(format!(
                "exited during the benchmark: {}",
                exited.join(", ")
            )))
        }
    }
}

fn master_config(
    directory: &Path,
    node: usize,
    peer: &[SocketAddr],
    http: SocketAddr,
) -> MasterConfig {
    let protocol = vigil_core::Config {
        masters: peer.len() as u64,
        ..vigil_core::Config::default()
    };
    MasterConfig {
        cluster: CLUSTER.to_string(),
        node_id: node as u64,
        listen: peer[node],
        data_dir: directory.join(format!("master-{node}")),
        metrics_listen: Some(http),
        masters: peer
            .iter()
            .enumerate()
            .map(|(id, address)| MasterAddress {
                id: id as u64,
                address: address.to_string(),
            })
            .collect(),
        host: HostSettings::default(),
        auth: crate::config::MasterAuth {
            insecure: true,
            ..crate::config::MasterAuth::default()
        },
        protocol,
        trace_file: None,
    }
}

fn write_config<T: serde::Serialize>(
    directory: &Path,
    name: &str,
    config: &T,
) -> Result<PathBuf, BenchError> {
    let text = toml::to_string(config)
        .map_err(|error| BenchError::Setup(format!("writing {name}: {error}")))?;
    let path = directory.join(name);
    std::fs::write(&path, text)
        .map_err(|error| BenchError::Setup(format!("writing {}: {error}", path.display())))?;
    Ok(path)
}

fn start_child(
    children: &mut Children,
    executable: &Path,
    name: &str,
    role: &str,
    config: &Path,
    directory: &Path,
) -> Result<u32, BenchError> {
    let arguments = [
        role.to_string(),
        "--config".to_string(),
        config.display().to_string(),
    ];
    let log = directory.join(format!("{name}.log"));
    children.spawn(name, executable, &arguments, &log)
}
