//! etcd as the baseline: three `etcd` members (the Debian `etcd-server` package) on 127.0.0.1,
//! each with its own data directory and default durability (fsync of its WAL per commit),
//! driven by the same load generator through the `etcd-client` crate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vigil_testkit::{ports, Children};

use super::load::Connection;
use super::BenchError;

/// Time the members have to form a cluster and answer a first write.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Client timeout for every request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Running etcd members; all are killed when this drops.
#[derive(Debug)]
pub struct EtcdCluster {
    /// The processes (`etcd-0`…).
    pub children: Children,
    /// Client URLs of every member.
    pub endpoints: Vec<String>,
}

/// The `etcd` executable and its version line, or why there is none.
pub fn locate() -> Result<(PathBuf, String), String> {
    let program =
        on_path("etcd").ok_or("etcd not found on PATH (Debian: apt-get install etcd-server)")?;
    let output = std::process::Command::new(&program)
        .arg("--version")
        .output()
        .map_err(|error| format!("{}: {error}", program.display()))?;
    let version = String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or("etcd (unknown version)")
        .trim()
        .to_string();
    Ok((program, version))
}

/// Finds `program` on `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|directory| directory.join(program))
        .find(|candidate| candidate.is_file())
}

impl EtcdCluster {
    /// Starts `members` members under `directory` and waits until a write succeeds.
    pub async fn start(
        program: &Path,
        directory: &Path,
        members: usize,
    ) -> Result<EtcdCluster, BenchError> {
        assert!((1..=7).contains(&members), "1 to 7 etcd members");
        let addresses = ports::free_loopback_addresses(2 * members)?;
        let (client, peer) = addresses.split_at(members);
        let url = |address: &SocketAddr| format!("http://{address}");
        let initial_cluster = peer
            .iter()
            .enumerate()
            .map(|(index, address)| format!("etcd-{index}={}", url(address)))
            .collect::<Vec<_>>()
            .join(",");
        let mut children = Children::default();
        for index in 0..members {
            let name = format!("etcd-{index}");
            let arguments = [
                ("--name", name.clone()),
                ("--data-dir", directory.join(&name).display().to_string()),
                ("--listen-client-urls", url(&client[index])),
                ("--advertise-client-urls", url(&client[index])),
                ("--listen-peer-urls", url(&peer[index])),
                ("--initial-advertise-peer-urls", url(&peer[index])),
                ("--initial-cluster", initial_cluster.clone()),
                ("--initial-cluster-state", "new".to_string()),
                ("--initial-cluster-token", "vigil-bench".to_string()),
                ("--logger", "zap".to_string()),
                ("--log-level", "warn".to_string()),
            ]
            .into_iter()
            .map(|(flag, value)| format!("{flag}={value}"))
            .collect::<Vec<_>>();
            let log = directory.join(format!("{name}.log"));
            children.start(&name, program, arguments, &log)?;
        }
        let cluster = EtcdCluster {
            children,
            endpoints: client.iter().map(url).collect(),
        };
        cluster.wait_until_writable().await?;
        Ok(cluster)
    }

    async fn wait_until_writable(&self) -> Result<(), BenchError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            match self.client(Duration::from_secs(1)).await {
                Ok(mut client) => match client.put("ready", "1", None).await {
                    Ok(_) => return Ok(()),
                    Err(error) => last = error.to_string(),
                },
                Err(error) => last = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(BenchError::Setup(format!(
            "etcd not writable within {READY_TIMEOUT:?}: {last}"
        )))
    }

    async fn client(&self, timeout: Duration) -> Result<etcd_client::KvClient, BenchError> {
        Ok(self.connect(timeout).await?.kv_client())
    }

    async fn connect(&self, timeout: Duration) -> Result<etcd_client::Client, BenchError> {
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_timeout(REQUEST_TIMEOUT);
        etcd_client::Client::connect(&self.endpoints, Some(options))
            .await
            .map_err(|error| BenchError::Setup(format!("connecting to etcd: {error}")))
    }

    /// A fresh gRPC channel for one watcher (no request timeout: a watch stream lasts).
    pub async fn watch_client(&self) -> Result<etcd_client::WatchClient, BenchError> {
        let options = etcd_client::ConnectOptions::new().with_connect_timeout(REQUEST_TIMEOUT);
        etcd_client::Client::connect(&self.endpoints, Some(options))
            .await
            .map(|client| client.watch_client())
            .map_err(|error| BenchError::Setup(format!("connecting to etcd: {error}")))
    }

    /// `clients` fresh connections (one gRPC channel each).
    pub async fn connections(&self, clients: usize) -> Result<Vec<Connection>, BenchError> {
        let mut connections = Vec::with_capacity(clients);
        for _ in 0..clients {
            connections.push(Connection::Etcd(self.client(REQUEST_TIMEOUT).await?));
        }
        Ok(connections)
    }
}
