//! The proxy server: accepts client connections, serves every cluster of its config, and
//! drives the `vigil_core::Proxy` state machine, whose ledger answers each request exactly once.
//!
//! Why this shape: the incident was a proxy that leaked one object per request on an error
//! path, under a flood of requests naming a wrong cluster. Here the state machine owns every
//! pending request (`vigil_core` `ledger.rs`); the host only moves bytes. Everything the host
//! holds per client is bounded too: each connection has at most `requests_per_connection_max`
//! requests outstanding (a semaphore permit per request, released when its reply is written),
//! so its reply queue can never overflow and no reply is ever dropped for lack of room.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vigil_core::{
    ClientId, Endpoint, LedgerCounters, MasterStatus, Message, NodeId, Operation, Proxy,
    ProxyReady, RequestId,
};

use crate::auth::{Authentication, Secret, Token};
use crate::codec::{self, DialerRole, Hello, PROTOCOL_VERSION};
use crate::config::{ConfigError, HostSettings, ProxyConfig};
use crate::metrics as names;
use crate::platform::{Network, TokioNetwork};
use crate::trace_sink::{StampedSends, TraceError, TraceHeader, TraceSink, TraceStamp};
use crate::transport::{self, HandshakePolicy, LinkEvent, LinkInbound, LinkSender};
use crate::wire::{ClientFrame, ClusterStatus, PeerFrame, ProxyFrame};

/// Requests (and status queries) one client connection may have outstanding.
pub const REQUESTS_PER_CONNECTION_MAX: usize = 4096;
/// Inputs waiting for the proxy task at most; connection readers wait beyond it.
const INBOX_MAX: usize = 8192;
/// Status queries collecting answers at once; more are refused.
const STATUS_QUERIES_MAX: usize = 64;
/// How long a status query waits for masters to answer.
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);

/// What a proxy needs to run.
#[derive(Clone, Debug)]
pub struct ProxySettings {
    /// Cluster name → master addresses by node id.
    pub clusters: BTreeMap<String, Vec<String>>,
    /// Proxy limits (`in_flight_max`, `redirects_max`, `request_timeout_ticks`, …).
    pub protocol: vigil_core::Config,
    /// Time and transport settings.
    pub host: HostSettings,
    /// Where to write trace events (NDJSON) for conformance; none: tracing off.
    pub trace_file: Option<std::path::PathBuf>,
    /// Cluster name → its secret and client token; every cluster served needs an entry.
    pub security: BTreeMap<String, ClusterSecurity>,
}

/// How a proxy authenticates for one cluster (`docs/security.md`).
#[derive(Clone, Debug)]
pub struct ClusterSecurity {
    /// The cluster secret this proxy proves to the cluster's masters.
    pub authentication: Authentication,
    /// The token clients must present with each request; none: any client may send them.
    pub client_token: Option<Secret>,
}

impl ClusterSecurity {
    /// No cluster secret, no client token (`insecure = true`).
    pub fn insecure() -> ClusterSecurity {
        ClusterSecurity {
            authentication: Authentication::Insecure,
            client_token: None,
        }
    }

    fn admits(&self, token: Option<&Token>) -> bool {
        match (&self.client_token, token) {
            (None, _) => true,
            (Some(expected), Some(token)) => expected.matches(token),
            (Some(_), None) => false,
        }
    }
}

impl ProxySettings {
    /// The settings of a config file; reads every cluster's secret and client token.
    pub fn from_config(config: &ProxyConfig) -> Result<ProxySettings, ConfigError> {
        let mut security = BTreeMap::new();
        for (index, cluster) in config.clusters.iter().enumerate() {
            let (authentication, client_token) = cluster.security(index)?;
            let entry = ClusterSecurity {
                authentication,
                client_token,
            };
            security.insert(cluster.name.clone(), entry);
        }
        Ok(ProxySettings {
            clusters: config
                .clusters
                .iter()
                .map(|cluster| (cluster.name.clone(), cluster.masters.clone()))
                .collect(),
            protocol: config.protocol.clone(),
            host: config.host.clone(),
            trace_file: config.trace_file.clone(),
            security,
        })
    }
}

/// Why a proxy stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The core refused the configuration.
    #[error("configuration: {0}")]
    Config(#[from] vigil_core::ConfigError),
    /// The trace file could not be written.
    #[error("trace: {0}")]
    Trace(#[from] TraceError),
    /// A cluster has no entry in `ProxySettings::security`.
    #[error("cluster {0:?} has no security settings (secret and client token, or insecure)")]
    MissingSecurity(String),
}

/// The proxy's ledger and cached leaders as last published, readable from outside the proxy
/// task (the in-process cluster, tests, the HTTP `/status` endpoint).
#[derive(Debug, Default)]
pub struct LedgerView(Mutex<Published>);

/// What the proxy task publishes after each input.
#[derive(Debug, Default)]
struct Published {
    counters: LedgerCounters,
    /// Cluster name → the master the proxy sends its requests to (none: not known yet).
    leaders: BTreeMap<String, Option<NodeId>>,
}

impl LedgerView {
    fn lock(&self) -> std::sync::MutexGuard<'_, Published> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the counters.
    pub fn counters(&self) -> LedgerCounters {
        self.lock().counters
    }

    /// The cached leader of every cluster served (none: not known yet).
    pub fn leaders(&self) -> BTreeMap<String, Option<NodeId>> {
        self.lock().leaders.clone()
    }
}

/// An input for the proxy task.
#[derive(Debug)]
enum Input {
    Request {
        client: ClientId,
        request_id: RequestId,
        cluster: String,
        operation: Operation,
        /// False if the client's token for `cluster` is missing or wrong.
        admitted: bool,
    },
    Status {
        client: ClientId,
        query_id: u64,
        cluster: String,
        admitted: bool,
    },
}

/// A reply on its way to a client, with the permit its request held.
type Outgoing = (ProxyFrame, Option<OwnedSemaphorePermit>);

/// Client connections' reply queues, and the permits their outstanding requests hold.
#[derive(Debug, Default)]
struct Clients {
    queues: HashMap<ClientId, mpsc::UnboundedSender<Outgoing>>,
    permits: HashMap<(ClientId, u64), OwnedSemaphorePermit>,
}

/// A status query collecting its masters' answers.
#[derive(Debug)]
struct StatusCollection {
    client: ClientId,
    query_id: u64,
    cluster: String,
    answers: Vec<Option<MasterStatus>>,
    deadline: Instant,
}

/// The proxy's id in traces and in the core.
const PROXY_ID: u64 = 1;

/// Runs a proxy on `listener` (TCP) until `shutdown` is cancelled, tracing to
/// `settings.trace_file` if set. `ledger`, if given, is kept up to date for whoever started the
/// proxy (tests, the in-process cluster).
pub async fn run(
    listener: TcpListener,
    settings: ProxySettings,
    shutdown: CancellationToken,
    ledger: Arc<LedgerView>,
) -> Result<(), ProxyError> {
    let trace = match &settings.trace_file {
        Some(path) => Some(TraceSink::create(path, &trace_header(&settings))?),
        None => None,
    };
    run_on(TokioNetwork, listener, settings, trace, shutdown, ledger).await
}

/// The first line of the proxy's trace (`docs/trace.md` §1).
pub fn trace_header(settings: &ProxySettings) -> TraceHeader {
    let node = format!("p{PROXY_ID}");
    let mut config = settings.protocol.clone();
    let cluster = match settings.clusters.iter().collect::<Vec<_>>()[..] {
        [(name, masters)] => {
            config.masters = masters.len() as u64;
            Some(name.clone())
        }
        _ => None,
    };
    TraceHeader::new(node, cluster, config)
}

/// [`run`] on `network`, tracing to `trace` (`settings.trace_file` is not read here).
pub async fn run_on<N: Network>(
    network: N,
    listener: N::Listener,
    settings: ProxySettings,
    trace: Option<TraceSink>,
    shutdown: CancellationToken,
    ledger: Arc<LedgerView>,
) -> Result<(), ProxyError> {
    let clusters = settings
        .clusters
        .iter()
        .map(|(name, masters)| (name.clone(), (0..masters.len() as NodeId).collect()))
        .collect();
    let mut proxy = Proxy::new(PROXY_ID, settings.protocol.clone(), clusters)?;
    if let Some(cluster) = settings
        .clusters
        .keys()
        .find(|name| !settings.security.contains_key(*name))
    {
        return Err(ProxyError::MissingSecurity(cluster.clone()));
    }
    proxy.set_tracing(trace.is_some());
    let local_shutdown = shutdown.child_token();
    let _stop_children = local_shutdown.clone().drop_guard();
    let (replies_sender, replies) = mpsc::channel(INBOX_MAX);
    let links = connect_links(&network, &settings, replies_sender, &local_shutdown);
    let (inbox, inputs) = mpsc::channel(INBOX_MAX);
    let clients = Arc::new(Mutex::new(Clients::default()));
    let context = Arc::new(ClientContext {
        inbox,
        clients: clients.clone(),
        next_client: AtomicU64::new(1),
        host: settings.host.clone(),
        security: settings.security.clone(),
    });
    let limits = settings.host.server_limits();
    let connections = network.clone();
    network.spawn(transport::accept_connections(
        network.clone(),
        listener,
        limits,
        local_shutdown.clone(),
        "proxy",
        move |stream, peer| serve_client(connections.clone(), stream, peer, context.clone()),
    ));
    tracing::info!(clusters = settings.clusters.len(), "proxy started");
    let link_index = links
        .iter()
        .enumerate()
        .map(|(tag, (cluster, node, _))| ((cluster.clone(), *node), tag))
        .collect();
    let mut driver = ProxyDriver {
        proxy,
        links,
        link_index,
        clients,
        ledger,
        statuses: HashMap::new(),
        next_status: 1,
        tick_interval: settings.host.tick_interval(),
        trace,
        received: None,
    };
    let result = driver.run(inputs, replies, local_shutdown).await;
    let closed = match driver.trace.take() {
        Some(trace) => trace.close().await,
        None => Ok(()),
    };
    tracing::info!("proxy stopped");
    result?;
    Ok(closed?)
}

/// The queue of a proxy's link to one master: room for a `Propose` of every request the
/// ledger may hold (`in_flight_max`) besides the host's per-peer bound, so no request is lost
/// for a full queue while its link is up (a queued `Propose` is about 128 bytes plus its
/// payload, `docs/operations.md` §6).
fn proxy_link_queue_messages_max(settings: &ProxySettings) -> usize {
    let in_flight_max = usize::try_from(settings.protocol.in_flight_max).unwrap_or(usize::MAX);
    settings
        .host
        .peer_queue_messages_max
        .saturating_add(in_flight_max)
}

/// Links to every master of every cluster, by (cluster, node); tag = index in the returned list.
type Links = Vec<(String, NodeId, LinkSender<PeerFrame>)>;

fn connect_links<N: Network>(
    network: &N,
    settings: &ProxySettings,
    replies: mpsc::Sender<(usize, LinkEvent<PeerFrame>)>,
    shutdown: &CancellationToken,
) -> Links {
    let mut links = Vec::new();
    for (cluster, masters) in &settings.clusters {
        let hello = Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster: cluster.clone(),
            role: DialerRole::Proxy,
        };
        let link_settings = transport::LinkSettings {
            authentication: settings.security[cluster].authentication.clone(),
            queue_messages_max: proxy_link_queue_messages_max(settings),
            ..settings.host.link_settings()
        };
        for (node, address) in masters.iter().enumerate() {
            let inbound = LinkInbound {
                sender: replies.clone(),
                tag: links.len(),
            };
            let link = transport::spawn_link_on::<N, PeerFrame, PeerFrame>(
                network.clone(),
                address.clone(),
                hello.clone(),
                link_settings.clone(),
                Some(inbound),
                shutdown.clone(),
            );
            links.push((cluster.clone(), node as NodeId, link));
        }
    }
    links
}

/// The one task that owns the proxy state machine.
struct ProxyDriver {
    proxy: Proxy,
    links: Links,
    /// (cluster, node) → index in `links`.
    link_index: HashMap<(String, NodeId), usize>,
    clients: Arc<Mutex<Clients>>,
    ledger: Arc<LedgerView>,
    statuses: HashMap<u64, StatusCollection>,
    next_status: u64,
    tick_interval: Duration,
    trace: Option<TraceSink>,
    /// The trace stamp of the master frame the core is handling (for its `Receive`).
    received: Option<TraceStamp>,
}

impl ProxyDriver {
    async fn run(
        &mut self,
        mut inputs: mpsc::Receiver<Input>,
        mut replies: mpsc::Receiver<(usize, LinkEvent<PeerFrame>)>,
        shutdown: CancellationToken,
    ) -> Result<(), TraceError> {
        let mut ticker = tokio::time::interval(self.tick_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                _ = ticker.tick() => {
                    self.proxy.tick();
                    self.expire_statuses();
                }
                Some((tag, event)) = replies.recv() => match event {
                    LinkEvent::Received(frame) => self.handle_master_frame(tag, frame),
                    LinkEvent::Closed => self.handle_link_closed(tag),
                },
                Some(input) = inputs.recv() => self.handle_input(input),
            }
            while self.proxy.has_ready() {
                let mut ready = self.proxy.ready();
                // The trace first: its `Send` events give the frames their stamps. Nothing in
                // a `ProxyReady` waits for a disk, so the core's order (messages, replies,
                // trace) only matters against a crash, and a proxy keeps no durable state.
                let trace = std::mem::take(&mut ready.trace);
                let received = self.received.take();
                let stamps = match &mut self.trace {
                    Some(sink) => sink.record(trace, received).await?,
                    None => StampedSends::default(),
                };
                self.handle_ready(ready, stamps);
            }
            self.received = None;
            self.publish_ledger();
        }
    }

    fn handle_input(&mut self, input: Input) {
        match input {
            Input::Request {
                client,
                request_id,
                cluster,
                operation,
                admitted: true,
            } => self
                .proxy
                .handle_request(client, request_id, &cluster, operation),
            Input::Request {
                client,
                request_id,
                cluster,
                operation,
                admitted: false,
            } => self
                .proxy
                .deny_request(client, request_id, &cluster, operation),
            Input::Status {
                client,
                query_id,
                cluster,
                admitted: true,
            } => self.start_status(client, query_id, cluster),
            Input::Status {
                client, query_id, ..
            } => self.send_status(client, query_id, Err(PERMISSION_DENIED.to_string())),
        }
    }

    /// The connection to a master ended: the requests forwarded over it complete now
    /// (`Proxy::link_closed`) instead of at their deadline.
    fn handle_link_closed(&mut self, tag: usize) {
        let Some((cluster, node, _)) = self.links.get(tag) else {
            return;
        };
        let (cluster, node) = (cluster.clone(), *node);
        tracing::debug!(%cluster, node, "link to master closed");
        self.proxy.link_closed(&cluster, node);
    }

    fn handle_master_frame(&mut self, tag: usize, frame: PeerFrame) {
        let Some((cluster, node, _)) = self.links.get(tag) else {
            return;
        };
        let (cluster, node) = (cluster.clone(), *node);
        match frame {
            PeerFrame::Protocol { message, stamp } => {
                self.received = stamp;
                if let Err(error) = self.proxy.step(&cluster, node, message) {
                    tracing::warn!(%cluster, node, %error, "master frame refused");
                }
            }
            PeerFrame::Status { query_id, status } => {
                if let Some(collection) = self.statuses.get_mut(&query_id) {
                    if let Some(answer) = collection.answers.get_mut(node as usize) {
                        *answer = Some(status);
                    }
                    if collection.answers.iter().all(Option::is_some) {
                        self.finish_status(query_id);
                    }
                }
            }
            PeerFrame::StatusQuery { .. } => {
                tracing::warn!(%cluster, node, "unexpected status query from a master");
            }
        }
    }

    fn handle_ready(&mut self, ready: ProxyReady, mut stamps: StampedSends) {
        for envelope in ready.messages {
            let stamp = stamps.take(
                |endpoint| match endpoint {
                    Endpoint::Master { node, cluster } => {
                        *node == envelope.to
                            && cluster
                                .as_ref()
                                .is_none_or(|name| *name == envelope.cluster)
                    }
                    _ => false,
                },
                &envelope.message,
            );
            let link = self
                .link_index
                .get(&(envelope.cluster, envelope.to))
                .and_then(|tag| self.links.get(*tag));
            let forward_id = match &envelope.message {
                Message::Propose { request_id, .. } => Some(*request_id),
                _ => None,
            };
            let sent = link.is_some_and(|(_, _, link)| {
                link.send(PeerFrame::Protocol {
                    message: envelope.message,
                    stamp,
                })
                .is_ok()
            });
            if let (false, Some(forward_id)) = (sent, forward_id) {
                // It never left: the master did not see it, so the proxy may try another
                // (`ForwardLost`) instead of waiting for the request's deadline.
                self.proxy.forward_lost(forward_id);
            }
        }
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        for envelope in ready.replies {
            let Message::Reply {
                request_id,
                outcome,
            } = envelope.message
            else {
                continue;
            };
            let permit = clients.permits.remove(&(envelope.to, request_id));
            if let Some(queue) = clients.queues.get(&envelope.to) {
                // The queue is unbounded in type but bounded in fact: one entry per permit.
                let _ = queue.send((
                    ProxyFrame::Reply {
                        request_id,
                        outcome,
                    },
                    permit,
                ));
            }
        }
    }

    fn publish_ledger(&self) {
        let counters = self.proxy.ledger();
        {
            let mut published = self.ledger.lock();
            published.counters = counters;
            for cluster in self.proxy.clusters().keys() {
                let leader = self.proxy.cached_leader(cluster);
                if published.leaders.get(cluster) != Some(&leader) {
                    published.leaders.insert(cluster.clone(), leader);
                }
            }
        }
        metrics::counter!(names::PROXY_ACCEPTED).absolute(counters.accepted);
        metrics::counter!(names::PROXY_COMPLETED_OK).absolute(counters.completed_ok);
        metrics::counter!(names::PROXY_COMPLETED_ERR).absolute(counters.completed_err);
        metrics::counter!(names::PROXY_LATE_REPLIES).absolute(counters.late_replies);
        metrics::gauge!(names::PROXY_IN_FLIGHT).set(counters.in_flight as f64);
        metrics::counter!(names::OVERLOADED, "bound" => "in_flight_max")
            .absolute(self.proxy.refused_in_flight_max());
    }

    fn start_status(&mut self, client: ClientId, query_id: u64, cluster: String) {
        let masters = self
            .links
            .iter()
            .filter(|(name, _, _)| *name == cluster)
            .count();
        let refusal = if masters == 0 {
            Some(format!("unknown cluster {cluster:?}"))
        } else if self.statuses.len() >= STATUS_QUERIES_MAX {
            Some("too many status queries at once".to_string())
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.send_status(client, query_id, Err(reason));
            return;
        }
        let internal = self.next_status;
        self.next_status += 1;
        for (_, _, link) in self.links.iter().filter(|(name, _, _)| *name == cluster) {
            let _ = link.send(PeerFrame::StatusQuery { query_id: internal });
        }
        self.statuses.insert(
            internal,
            StatusCollection {
                client,
                query_id,
                cluster,
                answers: vec![None; masters],
                deadline: Instant::now() + STATUS_TIMEOUT,
            },
        );
    }

    fn expire_statuses(&mut self) {
        let now = Instant::now();
        let expired: Vec<u64> = self
            .statuses
            .iter()
            .filter(|(_, collection)| collection.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.finish_status(id);
        }
    }

    fn finish_status(&mut self, internal: u64) {
        let Some(collection) = self.statuses.remove(&internal) else {
            return;
        };
        let status = ClusterStatus {
            cluster: collection.cluster,
            masters: collection
                .answers
                .into_iter()
                .map(|answer| answer.ok_or_else(|| "no answer".to_string()))
                .collect(),
            ledger: self.proxy.ledger(),
        };
        self.send_status(collection.client, collection.query_id, Ok(status));
    }

    fn send_status(&self, client: ClientId, query_id: u64, result: Result<ClusterStatus, String>) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let permit = clients.permits.remove(&(client, u64::MAX - query_id));
        if let Some(queue) = clients.queues.get(&client) {
            let _ = queue.send((ProxyFrame::Status { query_id, result }, permit));
        }
    }
}

/// What a status query without the right token gets.
const PERMISSION_DENIED: &str = "permission denied: missing or wrong client token";

/// What every client connection shares.
struct ClientContext {
    inbox: mpsc::Sender<Input>,
    clients: Arc<Mutex<Clients>>,
    next_client: AtomicU64,
    host: HostSettings,
    security: BTreeMap<String, ClusterSecurity>,
}

impl ClientContext {
    /// Whether `token` may be used for `cluster`. An unknown cluster is admitted here: the
    /// core answers it `UnknownCluster`. A refusal is counted, and logged once per connection
    /// (a flood of them must not flood the log).
    fn admits(
        &self,
        cluster: &str,
        token: Option<&Token>,
        peer: SocketAddr,
        logged: &mut bool,
    ) -> bool {
        let admitted = self
            .security
            .get(cluster)
            .is_none_or(|security| security.admits(token));
        if !admitted {
            metrics::counter!(names::PROXY_PERMISSION_DENIED, "cluster" => cluster.to_string())
                .increment(1);
            if !std::mem::replace(logged, true) {
                tracing::warn!(%peer, %cluster, presented = token.is_some(), "client token missing or wrong; requests answered PermissionDenied");
            }
        }
        admitted
    }
}

/// One client connection: handshake, then requests in, replies out.
async fn serve_client<N: Network>(
    network: N,
    stream: N::Stream,
    peer: SocketAddr,
    context: Arc<ClientContext>,
) {
    let (read_half, write_half) = N::split(stream);
    let (mut reader, mut writer) =
        codec::framed(read_half, write_half, context.host.frame_bytes_max);
    let policy = HandshakePolicy {
        cluster: None,
        accept_masters: None,
        accept_proxies: false,
        accept_clients: true,
        // Clients present a token with each request instead (`ClientContext::admits`).
        authentication: crate::auth::Authentication::Insecure,
    };
    let timeout = context.host.server_limits().handshake_timeout;
    if transport::accept_hello(&mut reader, &mut writer, &policy, timeout, peer, "proxy")
        .await
        .is_err()
    {
        return;
    }
    let client = context.next_client.fetch_add(1, Ordering::Relaxed);
    let (queue, mut outgoing) = mpsc::unbounded_channel::<Outgoing>();
    lock(&context.clients).queues.insert(client, queue);
    let writer_task = network.spawn(async move {
        while let Some((frame, permit)) = outgoing.recv().await {
            let written = codec::write_value(&mut writer, &frame).await;
            drop(permit);
            if written.is_err() {
                return;
            }
        }
    });
    read_requests(&mut reader, client, peer, &context).await;
    // Replies still owed to this client are completed by the ledger and discarded here.
    let mut clients = lock(&context.clients);
    clients.queues.remove(&client);
    clients.permits.retain(|(owner, _), _| *owner != client);
    drop(clients);
    writer_task.abort();
}

fn lock(clients: &Mutex<Clients>) -> std::sync::MutexGuard<'_, Clients> {
    clients.lock().unwrap_or_else(|p| p.into_inner())
}

async fn read_requests<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut codec::FrameReader<R>,
    client: ClientId,
    peer: SocketAddr,
    context: &ClientContext,
) {
    let permits = Arc::new(Semaphore::new(REQUESTS_PER_CONNECTION_MAX));
    let mut denial_logged = false;
    loop {
        let frame = match codec::read_value::<ClientFrame, _>(reader).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(error) => {
                transport::record_bad_frame("proxy", peer, &error);
                return;
            }
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (key, input) = match frame {
            ClientFrame::Request {
                request_id,
                cluster,
                operation,
                token,
            } => (
                request_id,
                Input::Request {
                    client,
                    request_id,
                    admitted: context.admits(&cluster, token.as_ref(), peer, &mut denial_logged),
                    cluster,
                    operation,
                },
            ),
            // Status queries use the top of the id space so they never collide with requests.
            ClientFrame::StatusQuery {
                query_id,
                cluster,
                token,
            } => (
                u64::MAX - query_id,
                Input::Status {
                    client,
                    query_id,
                    admitted: context.admits(&cluster, token.as_ref(), peer, &mut denial_logged),
                    cluster,
                },
            ),
        };
        {
            let mut clients = lock(&context.clients);
            if clients.permits.contains_key(&(client, key)) {
                // Ids must be unique among a connection's outstanding requests: a reused id
                // would make its reply ambiguous and let one connection exceed its cap.
                drop(clients);
                let error = codec::CodecError::Decode {
                    bytes: 0,
                    reason: format!("request id {key} reused while outstanding"),
                };
                transport::record_bad_frame("proxy", peer, &error);
                return;
            }
            clients.permits.insert((client, key), permit);
        }
        if context.inbox.send(input).await.is_err() {
            return;
        }
    }
}
