//! The proxy server: accepts client connections, serves every cluster of its config, and
//! drives the `vigil_core::Proxy` state machine, whose ledger answers each request exactly once.
//!
//! Why this shape: the incident was a proxy that leaked one object per request on an error
//! path, under a flood of requests naming a wrong cluster. Here the state machine owns every
//! pending request (`vigil_core` `ledger.rs`); the host only moves bytes. Everything the host
//! holds per client is bounded too: each connection has at most `requests_per_connection_max`
//! requests outstanding (a semaphore permit per request, released when its reply is written),
//! so its reply queue can never overflow and no reply is ever dropped for lack of room.
//!
//! Watches (`docs/protocol.md` §17) live in the state machine too; the host routes what it
//! sends to each watch's connection, tells it when a `WatchEvents` has been written
//! (`Proxy::watch_events_read`, the flow control that bounds each watch's buffer) and when a
//! connection closed (`Proxy::handle_client_closed`). A watch frame also holds a permit, until
//! everything the proxy answered to it is written, so a client that sends watch frames without
//! reading cannot grow its queue either.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vigil_core::kv_types::{KvOperation, Revision, WatchEnd, WatchId, WatchRequest};
use vigil_core::{
    ClientError, ClientId, Endpoint, LedgerCounters, MasterStatus, Message, NodeId, Operation,
    Proxy, ProxyReady, RequestId, WatchLedgerCounters,
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
/// Frames written to one client connection with one flush at most. They are taken from the
/// connection's queue, where they already waited, so a batch holds no memory the queue did not
/// (and the codec flushes on its own past its buffer's bound).
const CLIENT_WRITE_BATCH_FRAMES_MAX: usize = 64;
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
    watches: WatchLedgerCounters,
    /// Cluster name → the master the proxy sends its requests to (none: not known yet).
    leaders: BTreeMap<String, Option<NodeId>>,
    /// Cluster name → the master streaming to the proxy and the revision the stream brings
    /// next, while the proxy holds a watch of it.
    subscriptions: BTreeMap<String, (NodeId, Revision)>,
}

impl LedgerView {
    fn lock(&self) -> std::sync::MutexGuard<'_, Published> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the counters.
    pub fn counters(&self) -> LedgerCounters {
        self.lock().counters
    }

    /// A copy of the watch ledger's counters (`docs/protocol.md` §17.4).
    pub fn watch_counters(&self) -> WatchLedgerCounters {
        self.lock().watches
    }

    /// The subscription of `cluster` (`docs/protocol.md` §17.1): the master streaming and the
    /// revision it brings next (0: not known yet); none while the proxy holds no watch of it.
    pub fn subscription(&self, cluster: &str) -> Option<(NodeId, Revision)> {
        self.lock().subscriptions.get(cluster).copied()
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
    KvRequest {
        client: ClientId,
        request_id: RequestId,
        cluster: String,
        operation: KvOperation,
        admitted: bool,
    },
    /// A watch frame, with the permit released once what the proxy answered to it is written.
    Watch {
        client: ClientId,
        frame: WatchInput,
        permit: OwnedSemaphorePermit,
    },
    /// A `WatchEvents` of the watch was written to its client's connection.
    WatchEventsRead { client: ClientId, watch_id: WatchId },
    /// The client's connection closed, after every input it sent.
    ClientClosed { client: ClientId },
}

/// What a client asks of a watch.
#[derive(Debug)]
enum WatchInput {
    Create {
        watch_id: WatchId,
        cluster: String,
        watch: WatchRequest,
        admitted: bool,
    },
    Cancel {
        watch_id: WatchId,
    },
    ProgressRequest {
        watch_id: WatchId,
    },
}

/// A frame on its way to a client, with the permit it releases once written; a permit alone
/// is released once everything queued before it is written.
type Outgoing = (Option<ProxyFrame>, Option<OwnedSemaphorePermit>);

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
        answered_watch_frames: Vec::new(),
        lost_subscriptions: Vec::new(),
        watch_endings_sent: 0,
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
    /// Permits of the watch frames handled by this input, queued behind its answers.
    answered_watch_frames: Vec<(ClientId, OwnedSemaphorePermit)>,
    /// Masters a `Subscribe` or `Unsubscribe` could not be queued to: a lost subscription
    /// message, handled as a closed connection (`docs/protocol.md` §17.1) at the next tick,
    /// so that a cluster whose masters are all unreachable costs one attempt per tick.
    lost_subscriptions: Vec<(String, NodeId)>,
    /// `WatchEnded` frames routed to clients (every ending but `ClientGone` is one).
    watch_endings_sent: u64,
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
                    for (cluster, node) in std::mem::take(&mut self.lost_subscriptions) {
                        self.proxy.link_closed(&cluster, node);
                    }
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
            self.release_answered_watch_frames();
            self.publish_ledger();
        }
    }

    /// Queues each handled watch frame's permit behind what the proxy answered to it.
    fn release_answered_watch_frames(&mut self) {
        if self.answered_watch_frames.is_empty() {
            return;
        }
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        for (client, permit) in self.answered_watch_frames.drain(..) {
            if let Some(queue) = clients.queues.get(&client) {
                let _ = queue.send((None, Some(permit)));
            }
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
            Input::KvRequest {
                client,
                request_id,
                cluster,
                operation,
                admitted: true,
            } => self
                .proxy
                .handle_kv_request(client, request_id, &cluster, operation),
            Input::KvRequest {
                client,
                request_id,
                cluster,
                operation,
                admitted: false,
            } => self
                .proxy
                .deny_kv_request(client, request_id, &cluster, operation),
            Input::Watch {
                client,
                frame,
                permit,
            } => {
                self.handle_watch_input(client, frame);
                self.answered_watch_frames.push((client, permit));
            }
            Input::WatchEventsRead { client, watch_id } => {
                self.proxy.watch_events_read(client, watch_id);
            }
            Input::ClientClosed { client } => self.proxy.handle_client_closed(client),
        }
    }

    fn handle_watch_input(&mut self, client: ClientId, frame: WatchInput) {
        match frame {
            WatchInput::Create {
                watch_id,
                cluster,
                watch,
                admitted: true,
            } => self
                .proxy
                .handle_watch_create(client, watch_id, &cluster, watch),
            WatchInput::Create {
                watch_id,
                cluster,
                admitted: false,
                ..
            } => self.proxy.deny_watch(client, watch_id, &cluster),
            WatchInput::Cancel { watch_id } => self.proxy.handle_watch_cancel(client, watch_id),
            WatchInput::ProgressRequest { watch_id } => {
                self.proxy.handle_watch_progress_request(client, watch_id);
            }
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
                .get(&(envelope.cluster.clone(), envelope.to))
                .and_then(|tag| self.links.get(*tag));
            let forward_id = match &envelope.message {
                Message::Propose { request_id, .. } | Message::KvPropose { request_id, .. } => {
                    Some(*request_id)
                }
                _ => None,
            };
            let subscription_message = matches!(
                envelope.message,
                Message::Subscribe { .. } | Message::Unsubscribe
            );
            let sent = link.map(|(_, _, link)| {
                link.send(PeerFrame::Protocol {
                    message: envelope.message,
                    stamp,
                })
            });
            let delivered = matches!(sent, Some(Ok(())));
            if subscription_message && !delivered {
                // A lost subscription message (§17.1): the link is reset if it is up (the
                // master then forgets the subscription, and the link's `Closed` follows), and
                // the proxy hears `ConnectionClosed` at the next tick either way.
                tracing::debug!(cluster = %envelope.cluster, node = envelope.to, ?sent, "subscription message lost; resuming elsewhere");
                if let (Some((_, _, link)), Some(Err(transport::SendError::QueueFull))) =
                    (link, &sent)
                {
                    link.reset();
                }
                self.lost_subscriptions
                    .push((envelope.cluster, envelope.to));
            }
            if let (false, Some(forward_id)) = (delivered, forward_id) {
                // It never left: the master did not see it, so the proxy may try another
                // (`ForwardLost`) instead of waiting for the request's deadline.
                self.proxy.forward_lost(forward_id);
            }
        }
        self.route_to_clients(ready.replies);
    }

    /// Queues each message for a client to its connection (dropped if it closed: the ledgers
    /// completed or ended what it was owed).
    fn route_to_clients(&mut self, replies: Vec<vigil_core::ClientEnvelope>) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        for envelope in replies {
            let permit = match &envelope.message {
                Message::Reply { request_id, .. } | Message::KvReply { request_id, .. } => {
                    clients.permits.remove(&(envelope.to, *request_id))
                }
                _ => None,
            };
            let Some(frame) = ProxyFrame::from_client_message(envelope.message) else {
                tracing::error!(
                    client = envelope.to,
                    "the core addressed a non-client message to a client"
                );
                continue;
            };
            Self::count_client_frame(&frame, &mut self.watch_endings_sent);
            if let Some(queue) = clients.queues.get(&envelope.to) {
                // The queue is unbounded in type but bounded in fact: one reply per permit,
                // at most `watch_events_buffered_max` `WatchEvents` per watch (the core's flow
                // control), one answer per watch frame (each holds a permit until written).
                let _ = queue.send((Some(frame), permit));
            }
        }
    }

    /// Counts the refusals and watch endings a client frame reports.
    fn count_client_frame(frame: &ProxyFrame, watch_endings_sent: &mut u64) {
        match frame {
            ProxyFrame::WatchEnded { outcome, .. } => {
                *watch_endings_sent += 1;
                metrics::counter!(names::PROXY_WATCH_ENDINGS, "outcome" => watch_end_label(outcome))
                    .increment(1);
            }
            ProxyFrame::KvReply {
                outcome: Err(ClientError::InvalidRequest),
                ..
            } => metrics::counter!(names::PROXY_INVALID_REQUESTS).increment(1),
            _ => {}
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
        self.publish_watch_ledger();
    }

    fn publish_watch_ledger(&self) {
        let watches = self.proxy.watch_ledger();
        {
            let mut published = self.ledger.lock();
            published.watches = watches;
            published.subscriptions = (self.proxy.clusters().keys())
                .filter_map(|cluster| Some((cluster.clone(), self.proxy.subscription(cluster)?)))
                .collect();
        }
        metrics::counter!(names::PROXY_WATCHES_OPENED).absolute(watches.opened);
        metrics::counter!(names::PROXY_WATCHES_ENDED).absolute(watches.ended);
        metrics::gauge!(names::PROXY_WATCHES_OPEN).set(watches.open as f64);
        metrics::counter!(names::PROXY_WATCHES_DROPPED_UNENDED).absolute(watches.dropped_unended);
        // `ClientGone` is the one ending that sends nothing.
        let client_gone = watches.ended.saturating_sub(self.watch_endings_sent);
        metrics::counter!(names::PROXY_WATCH_ENDINGS, "outcome" => "client_gone")
            .absolute(client_gone);
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
            let _ = queue.send((Some(ProxyFrame::Status { query_id, result }), permit));
        }
    }
}

/// What a status query without the right token gets.
const PERMISSION_DENIED: &str = "permission denied: missing or wrong client token";

/// The `outcome` label of a watch's end.
fn watch_end_label(outcome: &WatchEnd) -> &'static str {
    match outcome {
        WatchEnd::Cancelled => "cancelled",
        WatchEnd::Compacted { .. } => "compacted",
        WatchEnd::ClientGone => "client_gone",
        WatchEnd::UnknownCluster => "unknown_cluster",
        WatchEnd::Overflow => "overflow",
        WatchEnd::TooManyWatches => "too_many_watches",
        WatchEnd::PermissionDenied => "permission_denied",
        WatchEnd::Dropped => "dropped",
    }
}

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
    // A client's requests stay within `frame_bytes_max`; a reply may be a large `Range`.
    codec::raise_write_limit(&mut writer, context.host.peer_frame_bytes_max);
    let client = context.next_client.fetch_add(1, Ordering::Relaxed);
    let (queue, mut outgoing) = mpsc::unbounded_channel::<Outgoing>();
    lock(&context.clients).queues.insert(client, queue);
    let inbox = context.inbox.clone();
    let writer_task = network.spawn(async move {
        let mut batch = Vec::with_capacity(CLIENT_WRITE_BATCH_FRAMES_MAX);
        while let Some(first) = outgoing.recv().await {
            batch.push(first);
            while batch.len() < CLIENT_WRITE_BATCH_FRAMES_MAX {
                match outgoing.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            if write_batch(&mut writer, &mut batch, client, &inbox)
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let watched = read_requests(&mut reader, client, peer, &context).await;
    // Replies still owed to this client are completed by the ledger and discarded here.
    {
        let mut clients = lock(&context.clients);
        clients.queues.remove(&client);
        clients.permits.retain(|(owner, _), _| *owner != client);
    }
    writer_task.abort();
    // After every input of the connection: its watches end `ClientGone`. A connection that
    // never asked for a watch holds none, and its trace shows no `ClientClosed`.
    if watched {
        let _ = context.inbox.send(Input::ClientClosed { client }).await;
    }
}

/// Writes the frames of `batch` (queued for one client) with one flush, then frees their
/// permits and tells the proxy task of each `WatchEvents` written: one place of that watch's
/// buffer is free (§17.5). Under fan-out many frames wait at once, and one flush (one
/// `writev`) for all of them is what keeps the proxy's cost per event low. An error means
/// the connection is gone (or the proxy task stopped).
async fn write_batch<W: tokio::io::AsyncWrite + Unpin>(
    writer: &mut codec::FrameWriter<W>,
    batch: &mut Vec<Outgoing>,
    client: ClientId,
    inbox: &mpsc::Sender<Input>,
) -> Result<(), ()> {
    let mut written = Ok(());
    for (frame, _) in batch.iter() {
        if let (Some(frame), Ok(())) = (frame, &written) {
            written = codec::feed_value(writer, frame).await;
        }
    }
    if written.is_ok() {
        written = codec::flush_values(writer).await;
    }
    let frames: Vec<Option<ProxyFrame>> = batch.drain(..).map(|(frame, _permit)| frame).collect();
    written.map_err(|_| ())?;
    for frame in frames {
        if let Some(ProxyFrame::WatchEvents { watch_id, .. }) = frame {
            let read = Input::WatchEventsRead { client, watch_id };
            inbox.send(read).await.map_err(|_| ())?;
        }
    }
    Ok(())
}

fn lock(clients: &Mutex<Clients>) -> std::sync::MutexGuard<'_, Clients> {
    clients.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads a client connection's frames into the proxy task until it closes or misbehaves;
/// returns whether it asked for a watch.
async fn read_requests<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut codec::FrameReader<R>,
    client: ClientId,
    peer: SocketAddr,
    context: &ClientContext,
) -> bool {
    let permits = Arc::new(Semaphore::new(REQUESTS_PER_CONNECTION_MAX));
    let mut denial_logged = false;
    let mut watched = false;
    loop {
        let frame = match codec::read_value::<ClientFrame, _>(reader).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return watched,
            Err(error) => {
                transport::record_bad_frame("proxy", peer, &error);
                return watched;
            }
        };
        watched |= matches!(frame, ClientFrame::WatchCreate { .. });
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return watched;
        };
        let admits = |cluster: &str, token: Option<&Token>| {
            context.admits(cluster, token, peer, &mut denial_logged)
        };
        let input = match client_input(client, frame, admits) {
            ClientInput::Answered(key, input) => {
                let mut clients = lock(&context.clients);
                if clients.permits.contains_key(&(client, key)) {
                    // Ids must be unique among a connection's outstanding requests: a reused
                    // id would make its reply ambiguous and let one connection exceed its cap.
                    drop(clients);
                    let error = codec::CodecError::Decode {
                        bytes: 0,
                        reason: format!("request id {key} reused while outstanding"),
                    };
                    transport::record_bad_frame("proxy", peer, &error);
                    return watched;
                }
                clients.permits.insert((client, key), permit);
                input
            }
            ClientInput::Watch(frame) => Input::Watch {
                client,
                frame,
                permit,
            },
        };
        if context.inbox.send(input).await.is_err() {
            return watched;
        }
    }
}

/// A client frame as the proxy task takes it.
enum ClientInput {
    /// A request or status query, answered once, keyed by its id on the connection (its
    /// permit is held until that answer is written).
    Answered(u64, Input),
    /// A watch frame (its permit rides with it).
    Watch(WatchInput),
}

/// What `frame` asks of the proxy task; `admits` checks a frame's token for its cluster.
fn client_input(
    client: ClientId,
    frame: ClientFrame,
    mut admits: impl FnMut(&str, Option<&Token>) -> bool,
) -> ClientInput {
    match frame {
        ClientFrame::Request {
            request_id,
            cluster,
            operation,
            token,
        } => ClientInput::Answered(
            request_id,
            Input::Request {
                client,
                request_id,
                admitted: admits(&cluster, token.as_ref()),
                cluster,
                operation,
            },
        ),
        // Status queries use the top of the id space so they never collide with requests.
        ClientFrame::StatusQuery {
            query_id,
            cluster,
            token,
        } => ClientInput::Answered(
            u64::MAX - query_id,
            Input::Status {
                client,
                query_id,
                admitted: admits(&cluster, token.as_ref()),
                cluster,
            },
        ),
        ClientFrame::KvRequest {
            request_id,
            cluster,
            operation,
            token,
        } => ClientInput::Answered(
            request_id,
            Input::KvRequest {
                client,
                request_id,
                admitted: admits(&cluster, token.as_ref()),
                cluster,
                operation,
            },
        ),
        ClientFrame::WatchCreate {
            watch_id,
            cluster,
            watch,
            token,
        } => ClientInput::Watch(WatchInput::Create {
            watch_id,
            admitted: admits(&cluster, token.as_ref()),
            cluster,
            watch,
        }),
        ClientFrame::WatchCancel { watch_id } => {
            ClientInput::Watch(WatchInput::Cancel { watch_id })
        }
        ClientFrame::WatchProgressRequest { watch_id } => {
            ClientInput::Watch(WatchInput::ProgressRequest { watch_id })
        }
    }
}
