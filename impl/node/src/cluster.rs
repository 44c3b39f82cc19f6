//! N masters and one proxy in one process on loopback: `vigil cluster`, and the handle that
//! tests and conformance drive (status, the leader, kill and restart a master).
//!
//! Each master runs on a platform of its own (`LocalCluster::start_on`; the production one by
//! default), also after a restart: conformance starts the masters on platforms that inject
//! faults (`conformance/src/seams/`), so the cluster itself carries none. Everything binds
//! 127.0.0.1 only.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_core::{MasterStatus, NodeId, Role};

use crate::auth::{Authentication, Secret, SecretError};
use crate::config::HostSettings;
use crate::master::{self, MasterError, MasterHandle, MasterSettings};
use crate::platform::{FileSystem, Network, StdFileSystem, TokioNetwork};
use crate::proxy::{self, ClusterSecurity, LedgerView, ProxyError, ProxySettings};

/// The cluster name of the embedded default.
pub const LOCAL_CLUSTER: &str = "local";

/// How to build an in-process cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Number of masters.
    pub masters: usize,
    /// Parent directory; master `i` keeps its data in `master-i/` under it.
    pub data_dir: PathBuf,
    /// Where the proxy listens (`127.0.0.1:0` picks a free port).
    pub proxy_listen: SocketAddr,
    /// The cluster's name.
    pub cluster: String,
    /// Protocol limits (`masters` is set from `masters` above).
    pub protocol: vigil_core::Config,
    /// Time and transport settings.
    pub host: HostSettings,
    /// If set, master `i` writes `m<i>.ndjson` and the proxy `p1.ndjson` here (`docs/trace.md`).
    pub trace_dir: Option<PathBuf>,
    /// The secret masters and the proxy prove to each other; none: a fresh random one is
    /// generated at start and never leaves the process. (There is no insecure mode here.)
    pub cluster_secret: Option<Secret>,
    /// The token clients must present; none: any client on loopback may send requests.
    pub client_token: Option<Secret>,
}

impl ClusterOptions {
    /// Five masters (or `masters`), cluster `local`, proxy on a free loopback port.
    pub fn local(masters: usize, data_dir: PathBuf) -> ClusterOptions {
        ClusterOptions {
            masters,
            data_dir,
            proxy_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            cluster: LOCAL_CLUSTER.to_string(),
            protocol: vigil_core::Config::default(),
            host: HostSettings::default(),
            trace_dir: None,
            cluster_secret: None,
            client_token: None,
        }
    }
}

/// Errors of the in-process cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Binding a loopback listener failed.
    #[error("binding {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A master failed.
    #[error("master {node}: {source}")]
    Master {
        /// Which master.
        node: NodeId,
        /// Why.
        source: MasterError,
    },
    /// No such master, or it is not running.
    #[error("master {0} is not running")]
    NotRunning(NodeId),
    /// The proxy failed.
    #[error("proxy: {0}")]
    Proxy(#[from] ProxyError),
    /// A wait ran out.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, &'static str),
    /// The cluster secret could not be generated.
    #[error("cluster secret: {0}")]
    Secret(#[from] SecretError),
}

/// A running in-process cluster: masters on the platform given for each (the production one
/// unless started with [`LocalCluster::start_on`]), the proxy on tokio TCP.
#[derive(Debug)]
pub struct LocalCluster<N = TokioNetwork, F = StdFileSystem> {
    options: ClusterOptions,
    /// Master `i` runs on `platforms[i]`, also after a restart.
    platforms: Vec<(N, F)>,
    addresses: Vec<SocketAddr>,
    masters: Vec<Option<MasterHandle>>,
    proxy_address: SocketAddr,
    proxy_task: JoinHandle<Result<(), ProxyError>>,
    ledger: Arc<LedgerView>,
    shutdown: CancellationToken,
    /// The secret generated for this cluster's masters and proxy; never leaves the process.
    authentication: Authentication,
}

async fn bind(address: SocketAddr) -> Result<TcpListener, ClusterError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| ClusterError::Bind { address, source })
}

impl LocalCluster {
    /// Binds every listener, then starts the masters and the proxy.
    pub async fn start(options: ClusterOptions) -> Result<LocalCluster, ClusterError> {
        let platforms = vec![(TokioNetwork, StdFileSystem); options.masters];
        LocalCluster::start_on(options, platforms).await
    }
}

impl<N, F> LocalCluster<N, F>
where
    N: Network<Listener = TcpListener>,
    F: FileSystem,
{
    /// [`LocalCluster::start`] with master `i` on `platforms[i]` (one per master).
    pub async fn start_on(
        mut options: ClusterOptions,
        platforms: Vec<(N, F)>,
    ) -> Result<LocalCluster<N, F>, ClusterError> {
        assert_eq!(platforms.len(), options.masters, "one platform per master");
        options.protocol.masters = options.masters as u64;
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut listeners = Vec::new();
        for _ in 0..options.masters {
            listeners.push(bind(loopback).await?);
        }
        let addresses: Vec<SocketAddr> = listeners
            .iter()
            .map(|listener| {
                listener
                    .local_addr()
                    .expect("bound listener has an address")
            })
            .collect();
        let shutdown = CancellationToken::new();
        let secret = match &options.cluster_secret {
            Some(secret) => secret.clone(),
            None => Secret::generate()?,
        };
        let authentication = Authentication::ClusterSecret(secret);
        let mut cluster = LocalCluster {
            authentication,
            proxy_address: loopback,
            proxy_task: tokio::spawn(async { Ok(()) }),
            ledger: Arc::new(LedgerView::default()),
            masters: Vec::new(),
            addresses,
            options,
            platforms,
            shutdown,
        };
        for (node, listener) in listeners.into_iter().enumerate() {
            let handle = cluster.spawn_master(node as NodeId, listener)?;
            cluster.masters.push(Some(handle));
        }
        cluster.start_proxy().await?;
        Ok(cluster)
    }

    /// Binds the proxy's listener and starts the proxy in front of the masters.
    async fn start_proxy(&mut self) -> Result<(), ClusterError> {
        let proxy_listener = bind(self.options.proxy_listen).await?;
        self.proxy_address = proxy_listener
            .local_addr()
            .map_err(|source| ClusterError::Bind {
                address: self.options.proxy_listen,
                source,
            })?;
        let settings = ProxySettings {
            clusters: BTreeMap::from([(
                self.options.cluster.clone(),
                self.addresses.iter().map(ToString::to_string).collect(),
            )]),
            protocol: self.options.protocol.clone(),
            host: self.options.host.clone(),
            trace_file: self.trace_file("p1.ndjson"),
            security: BTreeMap::from([(
                self.options.cluster.clone(),
                ClusterSecurity {
                    authentication: self.authentication.clone(),
                    client_token: self.options.client_token.clone(),
                },
            )]),
        };
        self.proxy_task = tokio::spawn(proxy::run(
            proxy_listener,
            settings,
            self.shutdown.child_token(),
            self.ledger.clone(),
        ));
        Ok(())
    }

    fn spawn_master(
        &self,
        node: NodeId,
        listener: TcpListener,
    ) -> Result<MasterHandle, ClusterError> {
        let settings = MasterSettings {
            cluster: self.options.cluster.clone(),
            node_id: node,
            masters: self.addresses.iter().map(ToString::to_string).collect(),
            data_dir: self.options.data_dir.join(format!("master-{node}")),
            protocol: self.options.protocol.clone(),
            host: self.options.host.clone(),
            trace_file: self.trace_file(&format!("m{node}.ndjson")),
            authentication: self.authentication.clone(),
        };
        let address = self.addresses[node as usize];
        let platform = self.platforms[node as usize].clone();
        master::spawn_on(platform, listener, settings, self.shutdown.child_token())
            .map_err(|source| ClusterError::Bind { address, source })
    }

    fn trace_file(&self, name: &str) -> Option<PathBuf> {
        self.options
            .trace_dir
            .as_ref()
            .map(|directory| directory.join(name))
    }

    /// The proxy's address (what clients connect to).
    pub fn proxy_address(&self) -> SocketAddr {
        self.proxy_address
    }

    /// The masters' addresses, by id.
    pub fn master_addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.options.cluster
    }

    /// The proxy's ledger as last published.
    pub fn ledger(&self) -> vigil_core::LedgerCounters {
        self.ledger.counters()
    }

    /// The proxy's watch ledger as last published.
    pub fn watch_ledger(&self) -> vigil_core::WatchLedgerCounters {
        self.ledger.watch_counters()
    }

    /// The proxy's subscription to this cluster: the master streaming and the revision it
    /// brings next; none while the proxy holds no watch.
    pub fn subscription(&self) -> Option<(NodeId, vigil_core::kv_types::Revision)> {
        self.ledger.subscription(&self.options.cluster)
    }

    fn handle(&self, node: NodeId) -> Result<&MasterHandle, ClusterError> {
        self.masters
            .get(node as usize)
            .and_then(Option::as_ref)
            .ok_or(ClusterError::NotRunning(node))
    }

    /// A master's status (`None` if it is stopped or does not answer within 500 ms).
    pub async fn status(&self, node: NodeId) -> Option<MasterStatus> {
        let handle = self.handle(node).ok()?;
        tokio::time::timeout(Duration::from_millis(500), handle.status())
            .await
            .ok()
            .flatten()
    }

    /// True while a master's task runs (false once killed, or stopped by an error).
    pub fn is_running(&self, node: NodeId) -> bool {
        self.handle(node).is_ok_and(|handle| !handle.is_finished())
    }

    /// Crashes a master: its task and connections end, its volatile state is lost, its data
    /// directory stays. Returns the error the master had stopped on, if it had.
    pub async fn kill(&mut self, node: NodeId) -> Result<(), ClusterError> {
        let handle = self
            .masters
            .get_mut(node as usize)
            .and_then(Option::take)
            .ok_or(ClusterError::NotRunning(node))?;
        handle
            .stop()
            .await
            .map_err(|source| ClusterError::Master { node, source })
    }

    /// Restarts a killed master from its data directory on its old address.
    pub async fn restart(&mut self, node: NodeId) -> Result<(), ClusterError> {
        let address = self.addresses[node as usize];
        // The old listener's port may linger briefly; retry within a deadline.
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(address).await {
                Ok(listener) => break listener,
                Err(source) if Instant::now() >= deadline => {
                    return Err(ClusterError::Bind { address, source })
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let handle = self.spawn_master(node, listener)?;
        self.masters[node as usize] = Some(handle);
        Ok(())
    }

    /// The leader that a quorum of running masters follows, if any.
    pub async fn leader(&self) -> Option<NodeId> {
        self.leader_among(0..self.masters.len() as NodeId).await
    }

    /// The leader that a quorum of the running masters among `nodes` follows, if any (a
    /// harness that knows a master cannot answer leaves it out).
    pub async fn leader_among(&self, nodes: impl IntoIterator<Item = NodeId>) -> Option<NodeId> {
        let mut statuses = Vec::new();
        for node in nodes {
            if let Some(status) = self.status(node).await {
                statuses.push(status);
            }
        }
        let leader = statuses.iter().find(|status| status.role == Role::Leader)?;
        let ballot = leader.leader?;
        let followers = statuses
            .iter()
            .filter(|status| status.leader == Some(ballot))
            .count();
        (followers as u64 >= self.options.protocol.quorum()).then_some(leader.id)
    }

    /// Waits until a leader is followed by a quorum (polling the masters, with a deadline).
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader().await {
                return Ok(leader);
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Timeout(timeout, "a leader"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops everything and waits for the masters to close their storage.
    pub async fn shutdown(mut self) -> Result<(), ClusterError> {
        self.shutdown.cancel();
        let mut first_error = None;
        for (node, handle) in self.masters.iter_mut().enumerate() {
            if let Some(handle) = handle.take() {
                if let Err(source) = handle.stop().await {
                    first_error.get_or_insert(ClusterError::Master {
                        node: node as NodeId,
                        source,
                    });
                }
            }
        }
        if let Ok(Err(error)) = (&mut self.proxy_task).await {
            first_error.get_or_insert(ClusterError::Proxy(error));
        }
        first_error.map_or(Ok(()), Err)
    }
}
