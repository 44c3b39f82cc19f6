//! A vigil cluster as users run it: N `vigil master` processes and one `vigil proxy` process on
//! 127.0.0.1, each from a TOML config written by `vigil_testkit::Layout` with the default
//! settings (durable: fsync before every acknowledgement; no authentication, whose cost on
//! loopback is per connection, not per request), each with its `/status` endpoint so the
//! benchmark can see roles, eviction and commit indexes without going through the proxy.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use vigil::client::Client;
use vigil::config::HostSettings;
use vigil_core::{MasterStatus, NodeId};
use vigil_testkit::layout::{master_name, PROXY_NAME};
use vigil_testkit::leader::{LeaderRule, LeaderSearch};
use vigil_testkit::{status, Children, Endpoints, Layout, Security, Signal};

use super::load::Connection;
use super::BenchError;

/// The cluster name the benchmark's proxy serves.
pub const CLUSTER: &str = "bench";
/// Time the cluster has to elect a leader and answer a first write.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Client timeout for every benchmark request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Time one `/status` request may take.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// Delay between two looks for a leader.
const LEADER_POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Running master and proxy processes; all are killed when this drops.
#[derive(Debug)]
pub struct VigilCluster {
    /// The processes (`m0`…, `p1`).
    pub children: Children,
    /// Where clients connect.
    pub proxy_address: SocketAddr,
    /// The proxy's `/status` endpoint.
    pub proxy_http: SocketAddr,
    /// Each master's `/status` endpoint, by node id.
    pub master_http: Vec<SocketAddr>,
}

impl VigilCluster {
    /// Writes configs under `directory`, starts `masters` masters and a proxy from `vigil`,
    /// and waits until a write through the proxy succeeds.
    pub async fn start(
        vigil: &Path,
        directory: &Path,
        masters: usize,
    ) -> Result<VigilCluster, BenchError> {
        assert!((1..=9).contains(&masters), "1 to 9 masters");
        let layout = Layout {
            cluster: CLUSTER.to_string(),
            protocol: vigil_core::Config {
                masters: masters as u64,
                ..vigil_core::Config::default()
            },
            host: HostSettings::default(),
            directory: directory.to_path_buf(),
            traces: false,
            security: Security::Insecure,
        };
        layout.prepare_directories()?;
        let mut endpoints = Endpoints::fresh(masters + 1)?;
        let proxy = endpoints
            .pop()
            .expect("one endpoint per master and the proxy's");
        let peers: Vec<String> = endpoints.iter().map(|own| own.listen.to_string()).collect();
        let mut children = Children::default();
        for (node, own) in endpoints.iter().enumerate() {
            let config = layout.master_config(node, own, &peers);
            layout.start_master(&mut children, vigil, node, &config)?;
        }
        let config = layout.proxy_config(&proxy, &endpoints);
        layout.start_proxy(&mut children, vigil, &config)?;
        let cluster = VigilCluster {
            children,
            proxy_address: proxy.listen,
            proxy_http: proxy.http,
            master_http: endpoints.iter().map(|own| own.http).collect(),
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
        Ok(status::master_status(self.master_http[node as usize], STATUS_TIMEOUT).await?)
    }

    /// The benchmark's leader search: the first master, by id, that reports itself leader
    /// (masters that do not answer, e.g. stopped ones, are skipped; later ones are not asked).
    pub fn leader_search(&self) -> LeaderSearch<'_> {
        LeaderSearch {
            masters: &self.master_http,
            rule: LeaderRule::FirstClaim,
            status_timeout: STATUS_TIMEOUT,
        }
    }

    /// The leader's status ([`VigilCluster::leader_search`]), if there is a leader.
    pub async fn leader(&self) -> Option<MasterStatus> {
        self.leader_search().find().await.map(|(_, status)| status)
    }

    /// Waits for a leader, polling every few milliseconds.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<MasterStatus, BenchError> {
        self.leader_search()
            .wait(timeout, LEADER_POLL_INTERVAL, |_| true)
            .await
            .map(|(_, status)| status)
            .ok_or_else(|| BenchError::Setup(format!("no leader within {timeout:?}")))
    }

    /// The proxy's ledger `in_flight` from its `/status`.
    pub async fn proxy_in_flight(&self) -> Result<u64, BenchError> {
        let status = status::proxy_status(self.proxy_http, STATUS_TIMEOUT).await?;
        Ok(status.ledger.in_flight)
    }

    /// Sends `signal` to master `node`'s process.
    pub fn signal_master(&self, node: NodeId, signal: Signal) -> Result<(), BenchError> {
        let index = self.children.index(&master_name(node as usize))?;
        Ok(self.children.signal(index, signal)?)
    }

    /// SIGKILLs master `node`'s process and reaps it.
    pub fn kill_master(&mut self, node: NodeId) -> Result<(), BenchError> {
        let index = self.children.index(&master_name(node as usize))?;
        Ok(self.children.kill(index)?)
    }

    /// The proxy process's PID.
    pub fn proxy_pid(&self) -> Result<u32, BenchError> {
        let index = self.children.index(PROXY_NAME)?;
        self.children
            .pid(index)
            .ok_or_else(|| BenchError::Setup("the proxy is not running".to_string()))
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
