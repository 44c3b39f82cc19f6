//! One master process: the task that owns the `vigil_core::Master`, its listener, its links to
//! the other masters, and the persist task that owns its storage.
//!
//! Why a separate persist task: neither heartbeats nor replication may wait behind a disk (the
//! incident's follower was evicted for silence; a leader that fsyncs before sending its
//! `Accept`s puts two fsyncs in a row on every write). The driver feeds the core ticks and
//! messages, sends each `Ready`'s messages and replies at once, and hands its durable write to
//! the persist task, which fsyncs the writes in FIFO order (those queued during one fsync share
//! the next: group commit) and reports each done. The driver calls `advance` for a `Ready` only
//! then; what the core held for that write (a follower's `Accepted`, a `Promise`, ...) comes out
//! of the next `Ready` and leaves at once. A storage error stops the master (`ready.rs`: never
//! step a master whose writes were lost; restarting from storage is always safe).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vigil_core::{
    DurableWrite, Endpoint, Envelope, Master, MasterCounters, MasterStatus, Message, NodeId, Peer,
    ProxyId, Ready, Role,
};

use crate::auth::Authentication;
use crate::codec::{self, DialerRole, Hello, PROTOCOL_VERSION};
use crate::config::{ConfigError, HostSettings, MasterConfig};
use crate::durable::MasterStorage;
use crate::metrics as names;
use crate::platform::{FileSystem, Network, StdFileSystem, TokioNetwork};
use crate::storage::StorageError;
use crate::tick_clock::TickClock;
use crate::trace_sink::{StampedSends, TraceError, TraceHeader, TraceSink, TraceStamp};
use crate::transport::{self, HandshakePolicy, LinkSender};
use crate::wire::PeerFrame;

/// Messages waiting in a master's inbox at most; readers wait (TCP pushes back) beyond it.
const INBOX_MESSAGES_MAX: usize = 4096;
/// Ready batches handed to the persist task and not yet advanced, at most. Beyond it the driver
/// waits for the disk (and stops ticking, so its followers stop hearing heartbeats and elect
/// another leader). A stalled fsync fills this with new proposals (and, at a follower, with the
/// leader's `Accept`s): over 1,000 of them on a disk that answers nothing. Batches that do not
/// wait for the disk ride with the newest job (`READY_GROUP_MAX`).
const PERSIST_PENDING_MAX: usize = 1024;
/// Persist jobs made durable by one fsync at most (group commit): the jobs that queued while
/// the previous fsync ran are written together, then reported done one by one, in order.
const PERSIST_BATCH_JOBS_MAX: usize = 256;
/// Disk-free Ready batches waiting behind one persist job at most (one per tick during a
/// stall: 4096 ticks is minutes); beyond it they take job slots and the driver waits.
const READY_GROUP_MAX: usize = 4096;
/// Frames queued to one proxy connection at most; beyond it replies are dropped (the proxy's
/// request timeout answers its client).
const PROXY_QUEUE_FRAMES_MAX: usize = 4096;
/// Proposals whose start time is kept for the commit latency histogram.
const PROPOSAL_TIMINGS_MAX: usize = 65_536;

/// What a master needs to run, from its config file or from the in-process cluster.
#[derive(Clone, Debug)]
pub struct MasterSettings {
    /// Cluster name checked in every handshake.
    pub cluster: String,
    /// This master's id.
    pub node_id: NodeId,
    /// Addresses of all masters by id (this one's is unused).
    pub masters: Vec<String>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Protocol limits.
    pub protocol: vigil_core::Config,
    /// Time and transport settings.
    pub host: HostSettings,
    /// Where to write trace events (NDJSON) for conformance; none: tracing off.
    pub trace_file: Option<PathBuf>,
    /// The cluster secret masters and proxies must prove (`auth.rs`).
    pub authentication: Authentication,
}

impl MasterSettings {
    /// The settings of a config file; reads the cluster secret.
    pub fn from_config(config: &MasterConfig) -> Result<MasterSettings, ConfigError> {
        Ok(MasterSettings {
            cluster: config.cluster.clone(),
            node_id: config.node_id,
            masters: config.masters.iter().map(|m| m.address.clone()).collect(),
            data_dir: config.data_dir.clone(),
            protocol: config.protocol.clone(),
            host: config.host.clone(),
            trace_file: config.trace_file.clone(),
            authentication: config.auth.authentication()?,
        })
    }

    fn link_settings(&self) -> crate::transport::LinkSettings {
        crate::transport::LinkSettings {
            authentication: self.authentication.clone(),
            ..self.host.link_settings()
        }
    }
}

/// Why a master stopped.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// Storage failed: the master stops rather than run without durability.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The protocol configuration was refused by the core.
    #[error("configuration: {0}")]
    Config(#[from] vigil_core::ConfigError),
    /// The trace file could not be written.
    #[error("trace: {0}")]
    Trace(#[from] TraceError),
    /// The persist task ended unexpectedly (it panicked).
    #[error("the persist task ended unexpectedly")]
    PersistTask,
}

/// A request for the core's status, from outside the master's task: the driver answers on it.
pub type StatusRequest = oneshot::Sender<MasterStatus>;

/// Status requests waiting for the driver at most.
const STATUS_REQUESTS_MAX: usize = 16;

/// A running master, as seen by whoever started it.
#[derive(Debug)]
pub struct MasterHandle {
    /// The address it listens on.
    pub address: SocketAddr,
    status_requests: StatusQuery,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), MasterError>>,
}

impl MasterHandle {
    /// The core's status, or `None` if the master has stopped.
    pub async fn status(&self) -> Option<MasterStatus> {
        self.status_requests.status().await
    }

    /// A cloneable way to ask for the core's status (the HTTP `/status` endpoint).
    pub fn status_query(&self) -> StatusQuery {
        self.status_requests.clone()
    }

    /// True once the master's task has ended (stopped or failed).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the master (a crash, as far as the protocol knows: volatile state is lost) and
    /// waits until its storage is closed, so it can be restarted from the same directory.
    pub async fn stop(self) -> Result<(), MasterError> {
        self.shutdown.cancel();
        self.task.await.unwrap_or(Err(MasterError::PersistTask))
    }
}

/// Asks a running master for its status, from outside its task.
#[derive(Clone, Debug)]
pub struct StatusQuery {
    requests: mpsc::Sender<StatusRequest>,
}

impl StatusQuery {
    /// The core's status, or `None` if the master has stopped.
    pub async fn status(&self) -> Option<MasterStatus> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(reply).await.ok()?;
        answer.await.ok()
    }
}

/// Starts a master on `listener`; it runs until `shutdown` is cancelled or storage fails.
pub fn spawn(
    listener: TcpListener,
    settings: MasterSettings,
    shutdown: CancellationToken,
) -> std::io::Result<MasterHandle> {
    spawn_on((TokioNetwork, StdFileSystem), listener, settings, shutdown)
}

/// [`spawn`] on `network` and `file_system`: the master's own task is spawned on `network`
/// too, as is every task it starts. Traces to `settings.trace_file` if set.
pub fn spawn_on<N, F>(
    (network, file_system): (N, F),
    listener: TcpListener,
    settings: MasterSettings,
    shutdown: CancellationToken,
) -> std::io::Result<MasterHandle>
where
    N: Network<Listener = TcpListener>,
    F: FileSystem,
{
    let address = listener.local_addr()?;
    let (requests, status_requests) = mpsc::channel(STATUS_REQUESTS_MAX);
    let platform = (network.clone(), file_system);
    let master = run_tracing_to_file(
        platform,
        listener,
        settings,
        shutdown.clone(),
        status_requests,
    );
    let task = network.spawn(master);
    Ok(MasterHandle {
        address,
        status_requests: StatusQuery { requests },
        shutdown,
        task,
    })
}

/// Runs a master on TCP and the real disk: opens storage, starts the listener and links,
/// drives the core. Traces to `settings.trace_file` if set.
pub async fn run(
    listener: TcpListener,
    settings: MasterSettings,
    shutdown: CancellationToken,
    status_requests: mpsc::Receiver<StatusRequest>,
) -> Result<(), MasterError> {
    let platform = (TokioNetwork, StdFileSystem);
    run_tracing_to_file(platform, listener, settings, shutdown, status_requests).await
}

/// [`run_on`] with the trace sink of `settings.trace_file`, if set.
async fn run_tracing_to_file<N: Network, F: FileSystem>(
    platform: (N, F),
    listener: N::Listener,
    settings: MasterSettings,
    shutdown: CancellationToken,
    status_requests: mpsc::Receiver<StatusRequest>,
) -> Result<(), MasterError> {
    let trace = match &settings.trace_file {
        Some(path) => Some(TraceSink::create(path, &trace_header(&settings))?),
        None => None,
    };
    run_on(
        platform,
        listener,
        settings,
        trace,
        shutdown,
        status_requests,
    )
    .await
}

/// The first line of a master's trace (`docs/trace.md` §1).
pub fn trace_header(settings: &MasterSettings) -> TraceHeader {
    let node = format!("m{}", settings.node_id);
    let cluster = Some(settings.cluster.clone());
    TraceHeader::new(node, cluster, settings.protocol.clone())
}

/// [`run`] on `network` and `file_system`, tracing to `trace` (`settings.trace_file` is not
/// read here: the caller opens the sink, e.g. an in-memory one in a simulation).
pub async fn run_on<N: Network, F: FileSystem>(
    (network, file_system): (N, F),
    listener: N::Listener,
    settings: MasterSettings,
    trace: Option<TraceSink>,
    shutdown: CancellationToken,
    status_requests: mpsc::Receiver<StatusRequest>,
) -> Result<(), MasterError> {
    let data_dir = settings.data_dir.clone();
    let opening = file_system.clone();
    let storage = file_system
        .run_blocking(move || MasterStorage::open_on(opening, &data_dir))
        .await?;
    let mut master = Master::new(
        settings.node_id,
        settings.protocol.clone(),
        storage.state().clone(),
    )?;
    master.set_tracing(trace.is_some());
    // Everything this master spawns stops with it, even if the caller's token lives on.
    let local_shutdown = shutdown.child_token();
    let _stop_children = local_shutdown.clone().drop_guard();
    let router = Arc::new(Router::connect(&network, &settings, &local_shutdown));
    let (inbox, inbox_receiver) = mpsc::channel(INBOX_MESSAGES_MAX);
    let context = Arc::new(ConnectionContext {
        policy: HandshakePolicy {
            cluster: Some(settings.cluster.clone()),
            accept_masters: Some((settings.masters.len() as NodeId, settings.node_id)),
            accept_proxies: true,
            accept_clients: false,
            authentication: settings.authentication.clone(),
        },
        settings: settings.clone(),
        inbox,
        router: router.clone(),
        next_proxy_id: AtomicU64::new(1),
    });
    network.spawn(accept_loop(
        network.clone(),
        listener,
        context,
        local_shutdown.clone(),
    ));
    let (jobs, job_receiver) = mpsc::channel(PERSIST_PENDING_MAX);
    let (done_sender, done) = mpsc::channel(PERSIST_PENDING_MAX + 1);
    let persist_task = network.spawn(persist_loop(
        file_system,
        storage,
        job_receiver,
        done_sender,
    ));
    tracing::info!(node = settings.node_id, cluster = %settings.cluster, "master started");
    let mut driver = Driver::new(master, router, jobs, done, &settings);
    driver.trace = trace;
    let mut result = driver
        .run(inbox_receiver, status_requests, local_shutdown.clone())
        .await;
    // A stopped master sends nothing more: its links close before it counts as stopped, so a
    // peer never receives from it after it has been restarted (`protocol.md` §8).
    local_shutdown.cancel();
    for link in driver.router.links.values() {
        link.finished().await;
    }
    if let Some(trace) = driver.trace.take() {
        let closed = trace.close().await;
        if result.is_ok() {
            result = closed.map_err(MasterError::from);
        }
    }
    drop(driver); // closes the job queue: the persist task finishes what it has and ends
    let _ = persist_task.await;
    match &result {
        Ok(()) => tracing::info!(node = settings.node_id, "master stopped"),
        Err(error) => tracing::error!(node = settings.node_id, %error, "master stopped on error"),
    }
    result
}

/// An input for the driver from a connection.
#[derive(Debug)]
enum Inbound {
    Protocol {
        from: Peer,
        message: Message,
        stamp: Option<TraceStamp>,
        /// False once the connection it came on has closed: then it is lost, as what a
        /// crashed sender had in flight is (`protocol.md` §8). (A frame read before the close
        /// was seen is handled: an evicting leader cannot take back what it wrote, §5.1.)
        open: Arc<AtomicBool>,
    },
    StatusQuery {
        proxy: ProxyId,
        query_id: u64,
    },
}

/// Routes the core's envelopes to links (masters) and connection queues (proxies).
#[derive(Debug)]
struct Router {
    links: BTreeMap<NodeId, LinkSender<PeerFrame>>,
    proxies: Mutex<HashMap<ProxyId, mpsc::Sender<PeerFrame>>>,
}

impl Router {
    fn connect<N: Network>(
        network: &N,
        settings: &MasterSettings,
        shutdown: &CancellationToken,
    ) -> Router {
        let hello = Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster: settings.cluster.clone(),
            role: DialerRole::Master(settings.node_id),
        };
        let links = (0..settings.masters.len() as NodeId)
            .filter(|node| *node != settings.node_id)
            .map(|node| {
                let sender = transport::spawn_link_on::<N, PeerFrame, PeerFrame>(
                    network.clone(),
                    settings.masters[node as usize].clone(),
                    hello.clone(),
                    settings.link_settings(),
                    None,
                    shutdown.clone(),
                );
                (node, sender)
            })
            .collect();
        Router {
            links,
            proxies: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `envelope` with its trace stamp (none when tracing is off).
    fn send(&self, envelope: Envelope, stamp: Option<TraceStamp>) {
        let is_heartbeat = matches!(envelope.message, Message::Heartbeat { .. });
        let frame = PeerFrame::Protocol {
            message: envelope.message,
            stamp,
        };
        let sent = match envelope.to {
            Peer::Master(node) => match self.links.get(&node) {
                Some(link) => link.send(frame).is_ok(),
                None => false,
            },
            Peer::Proxy(proxy) => self.send_to_proxy(proxy, frame),
        };
        if !sent && is_heartbeat {
            metrics::counter!(names::HEARTBEAT_SEND_FAILURES).increment(1);
        }
    }

    fn send_to_proxy(&self, proxy: ProxyId, frame: PeerFrame) -> bool {
        let proxies = self.proxies.lock().unwrap_or_else(|p| p.into_inner());
        let sent = proxies
            .get(&proxy)
            .is_some_and(|queue| queue.try_send(frame).is_ok());
        if !sent {
            metrics::counter!(names::PEER_SEND_DROPS, "peer" => "proxy").increment(1);
        }
        sent
    }

    fn link(&self, node: NodeId) -> Option<&LinkSender<PeerFrame>> {
        self.links.get(&node)
    }
}

/// A durable write for the persist task; none when the `Ready` only holds output released by
/// `advance` (it is done once every earlier write is).
#[derive(Debug)]
struct PersistJob {
    write: Option<DurableWrite>,
}

/// The persist task: owns the storage; makes the jobs' writes durable in order (as blocking
/// work of the file system, off the async threads) and reports each job done to the driver,
/// which advances the core (releasing what waited for the write). The jobs that queued during
/// one fsync share the next ([`DurableWrite::merge`]: the same result as writing them in turn).
async fn persist_loop<F: FileSystem>(
    file_system: F,
    mut storage: MasterStorage<F>,
    mut jobs: mpsc::Receiver<PersistJob>,
    done: mpsc::Sender<Result<(), StorageError>>,
) {
    while let Some(job) = jobs.recv().await {
        let (batch_write, batch_jobs) = with_queued_jobs(job, &mut jobs);
        if let Some(write) = batch_write {
            let (returned, persisted) = file_system
                .run_blocking(move || {
                    let persisted = storage.persist(&write);
                    (storage, persisted)
                })
                .await;
            storage = returned;
            if let Err(error) = persisted {
                let _ = done.send(Err(error)).await;
                return;
            }
        }
        for _ in 0..batch_jobs {
            if done.send(Ok(())).await.is_err() {
                return;
            }
        }
    }
}

/// `first` and the jobs queued behind it (at most [`PERSIST_BATCH_JOBS_MAX`] in all), as one
/// write equal to theirs in turn, and how many jobs it covers.
fn with_queued_jobs(
    first: PersistJob,
    jobs: &mut mpsc::Receiver<PersistJob>,
) -> (Option<DurableWrite>, usize) {
    let mut batch_write = first.write;
    let mut batch_jobs = 1;
    while batch_jobs < PERSIST_BATCH_JOBS_MAX {
        let Ok(next) = jobs.try_recv() else {
            break;
        };
        batch_jobs += 1;
        batch_write = match (batch_write, next.write) {
            (Some(mut earlier), Some(later)) => {
                earlier.merge(later);
                Some(earlier)
            }
            (earlier, later) => earlier.or(later),
        };
    }
    (batch_write, batch_jobs)
}

/// The one task that owns the core.
struct Driver {
    master: Master,
    router: Arc<Router>,
    jobs: mpsc::Sender<PersistJob>,
    done: mpsc::Receiver<Result<(), StorageError>>,
    /// Ready batches handed to the persist task, oldest first, waiting for `advance`.
    /// Each group is one persist job's batch followed by the disk-free batches that came
    /// after it; they are advanced together, in order, when that job is done.
    pending: VecDeque<Vec<Ready>>,
    tick_interval: std::time::Duration,
    proposal_started: HashMap<(ProxyId, u64), Instant>,
    counters: MasterCounters,
    node: NodeId,
    trace: Option<TraceSink>,
    /// The trace stamp of the frame whose message the core is handling (for its `Receive`).
    received: Option<TraceStamp>,
}

impl Driver {
    fn new(
        master: Master,
        router: Arc<Router>,
        jobs: mpsc::Sender<PersistJob>,
        done: mpsc::Receiver<Result<(), StorageError>>,
        settings: &MasterSettings,
    ) -> Driver {
        Driver {
            master,
            router,
            jobs,
            done,
            pending: VecDeque::new(),
            tick_interval: settings.host.tick_interval(),
            proposal_started: HashMap::new(),
            counters: MasterCounters::default(),
            node: settings.node_id,
            trace: None,
            received: None,
        }
    }

    async fn run(
        &mut self,
        mut inbox: mpsc::Receiver<Inbound>,
        mut status_requests: mpsc::Receiver<StatusRequest>,
        shutdown: CancellationToken,
    ) -> Result<(), MasterError> {
        let mut ticker = tokio::time::interval(self.tick_interval);
        // After a gap the ticker fires once; the clock counts the ticks that fell due and the
        // core decides whether the gap was a pause (`Master::elapse`, §7.2). Either way the
        // overdue ticks fire before queued messages (the ticker's branch comes first).
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut clock = TickClock::new(Instant::now(), self.tick_interval);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                request = status_requests.recv() => match request {
                    Some(reply) => {
                        let _ = reply.send(self.master.status());
                    }
                    None => return Ok(()),
                },
                persisted = self.done.recv() => {
                    self.advance(persisted)?;
                }
                _ = ticker.tick() => {
                    let due = clock.due(Instant::now());
                    if due >= self.master.config().pause_threshold_ticks() {
                        tracing::warn!(node = self.node, overdue_ticks = due, "resumed from a pause");
                    }
                    self.master.elapse(due);
                }
                inbound = inbox.recv() => match inbound {
                    Some(inbound) => self.handle_inbound(inbound),
                    None => return Ok(()),
                },
            }
            self.drain_ready().await?;
        }
    }

    fn handle_inbound(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Protocol {
                from,
                message,
                stamp,
                open,
            } => {
                if !open.load(Ordering::Acquire) {
                    tracing::debug!(node = self.node, %from, "message of a closed connection dropped");
                    return;
                }
                if let (Peer::Proxy(proxy), Message::Propose { request_id, .. }) = (from, &message)
                {
                    if self.proposal_started.len() >= PROPOSAL_TIMINGS_MAX {
                        self.proposal_started.clear();
                    }
                    self.proposal_started
                        .insert((proxy, *request_id), Instant::now());
                }
                self.received = stamp;
                if let Err(error) = self.master.step(from, message) {
                    tracing::warn!(node = self.node, %error, "message refused by the core");
                }
            }
            Inbound::StatusQuery { proxy, query_id } => {
                let status = self.master.status();
                self.router
                    .send_to_proxy(proxy, PeerFrame::Status { query_id, status });
            }
        }
    }

    /// Handles every `Ready` the core has, in the contract's order (`vigil_core` `ready.rs`).
    async fn drain_ready(&mut self) -> Result<(), MasterError> {
        while self.master.has_ready() {
            let mut ready = self.master.ready();
            for node in ready.close_links.drain(..) {
                tracing::warn!(
                    node = self.node,
                    follower = node,
                    "evicted a follower; closing its link"
                );
                if let Some(link) = self.router.link(node) {
                    link.reset();
                }
            }
            // The trace first: its `Send` events give the frames their stamps. `received` stamps
            // a `Receive` event only, never a `Persist` input (which received nothing).
            let received = self.received.take();
            let mut stamps = match &mut self.trace {
                Some(trace) => {
                    trace
                        .record(std::mem::take(&mut ready.trace), received)
                        .await?
                }
                None => StampedSends::default(),
            };
            // Messages (heartbeats, the leader's `Accept`s, what an earlier write released) and
            // replies leave now, not behind the disk.
            for envelope in ready.messages.drain(..) {
                let stamp = take_stamp(&mut stamps, &envelope);
                self.router.send(envelope, stamp);
            }
            self.record_reply_timings(&ready.replies);
            for envelope in ready.replies.drain(..) {
                let stamp = take_stamp(&mut stamps, &envelope);
                self.router.send(envelope, stamp);
            }
            if !ready.waits_for_disk() {
                // Nothing waits for the disk here; only `advance` must stay in order, so the
                // batch rides with the newest pending write instead of taking a job slot
                // (heartbeat-only batches during a slow fsync must not fill the job queue).
                match self.pending.back_mut() {
                    None => {
                        self.master.advance(ready);
                        continue;
                    }
                    Some(group) if group.len() < READY_GROUP_MAX => {
                        group.push(ready);
                        continue;
                    }
                    Some(_) => {}
                }
            }
            let job = PersistJob {
                write: ready.durable.take(),
            };
            while self.pending.len() >= PERSIST_PENDING_MAX {
                let persisted = self.done.recv().await;
                self.advance(persisted)?;
            }
            self.jobs
                .send(job)
                .await
                .map_err(|_| MasterError::PersistTask)?;
            self.pending.push_back(vec![ready]);
        }
        // A refused message records nothing: its stamp must not reach a later input.
        self.received = None;
        self.record_metrics();
        Ok(())
    }

    fn advance(&mut self, persisted: Option<Result<(), StorageError>>) -> Result<(), MasterError> {
        match persisted {
            Some(Ok(())) => {
                for ready in self.pending.pop_front().unwrap_or_default() {
                    self.master.advance(ready);
                }
                Ok(())
            }
            Some(Err(error)) => Err(MasterError::Storage(error)),
            None => Err(MasterError::PersistTask),
        }
    }

    /// Commit latency: from the `Propose` to its `ProposeReply` leaving.
    fn record_reply_timings(&mut self, replies: &[Envelope]) {
        for envelope in replies {
            let (Peer::Proxy(proxy), Message::ProposeReply { request_id, .. }) =
                (&envelope.to, &envelope.message)
            else {
                continue;
            };
            if let Some(started) = self.proposal_started.remove(&(*proxy, *request_id)) {
                metrics::histogram!(names::COMMIT_LATENCY_SECONDS)
                    .record(started.elapsed().as_secs_f64());
            }
        }
    }

    fn record_metrics(&mut self) {
        let counters = self.master.counters();
        let previous = std::mem::replace(&mut self.counters, counters);
        let node = self.node.to_string();
        let deltas = [
            (
                names::LEADER_CHANGES,
                counters.leader_changes - previous.leader_changes,
            ),
            (names::EVICTIONS, counters.evictions - previous.evictions),
            (names::REJOINS, counters.rejoins - previous.rejoins),
            (names::PROPOSALS, counters.proposals - previous.proposals),
        ];
        for (name, delta) in deltas {
            if delta > 0 {
                metrics::counter!(name, "node" => node.clone()).increment(delta);
            }
        }
        let role = match self.master.role() {
            Role::Follower => 0.0,
            Role::PreCandidate => 1.0,
            Role::Candidate => 2.0,
            Role::Leader => 3.0,
        };
        metrics::gauge!(names::MASTER_ROLE, "node" => node.clone()).set(role);
        metrics::gauge!(names::COMMIT_INDEX, "node" => node).set(self.master.commit_index() as f64);
    }
}

/// The trace stamp of the `Send` event of `envelope`'s message (none when tracing is off).
fn take_stamp(stamps: &mut StampedSends, envelope: &Envelope) -> Option<TraceStamp> {
    let to = envelope.to;
    stamps.take(
        |endpoint| match (endpoint, to) {
            (Endpoint::Master { node, .. }, Peer::Master(peer)) => *node == peer,
            (Endpoint::Proxy(proxy), Peer::Proxy(peer)) => *proxy == peer,
            _ => false,
        },
        &envelope.message,
    )
}

/// Aborts a task when dropped (a connection's writer, when the connection's task ends).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What every connection of this master shares.
struct ConnectionContext {
    policy: HandshakePolicy,
    settings: MasterSettings,
    inbox: mpsc::Sender<Inbound>,
    router: Arc<Router>,
    next_proxy_id: AtomicU64,
}

async fn accept_loop<N: Network>(
    network: N,
    listener: N::Listener,
    context: Arc<ConnectionContext>,
    shutdown: CancellationToken,
) {
    let limits = context.settings.host.server_limits();
    let connections = network.clone();
    transport::accept_connections(
        network,
        listener,
        limits,
        shutdown,
        "master",
        move |stream, peer| serve_connection(connections.clone(), stream, peer, context.clone()),
    )
    .await;
}

/// One inbound connection: handshake, then frames into the inbox until it closes or misbehaves.
async fn serve_connection<N: Network>(
    network: N,
    stream: N::Stream,
    peer: SocketAddr,
    context: Arc<ConnectionContext>,
) {
    let host = &context.settings.host;
    let (read_half, write_half) = N::split(stream);
    let (mut reader, mut writer) = codec::framed(read_half, write_half, host.frame_bytes_max);
    let timeout = host.server_limits().handshake_timeout;
    let Ok(role) = transport::accept_hello(
        &mut reader,
        &mut writer,
        &context.policy,
        timeout,
        peer,
        "master",
    )
    .await
    else {
        return;
    };
    let from = match role {
        // The handshake checked the id against the configuration.
        DialerRole::Master(node) => Peer::Master(node),
        DialerRole::Proxy => Peer::Proxy(context.next_proxy_id.fetch_add(1, Ordering::Relaxed)),
        DialerRole::Client => return, // refused by the handshake policy
    };
    let writer_task = match from {
        Peer::Proxy(proxy) => {
            let (queue, mut frames) = mpsc::channel::<PeerFrame>(PROXY_QUEUE_FRAMES_MAX);
            context
                .router
                .proxies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(proxy, queue);
            // Aborted when this connection ends, also when a stopping master drops it: a
            // stopped master writes nothing more.
            Some(AbortOnDrop(network.spawn(async move {
                while let Some(frame) = frames.recv().await {
                    if codec::write_value(&mut writer, &frame).await.is_err() {
                        return;
                    }
                }
            })))
        }
        Peer::Master(_) => None,
    };
    let open = Arc::new(AtomicBool::new(true));
    read_frames(&mut reader, from, peer, &context, &open).await;
    // What this connection delivered and the driver has not handled yet is lost with it.
    open.store(false, Ordering::Release);
    if let Peer::Proxy(proxy) = from {
        let mut proxies = context
            .router
            .proxies
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        proxies.remove(&proxy);
    }
    drop(writer_task);
}

async fn read_frames<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut codec::FrameReader<R>,
    from: Peer,
    peer: SocketAddr,
    context: &ConnectionContext,
    open: &Arc<AtomicBool>,
) {
    loop {
        let frame = match codec::read_value::<PeerFrame, _>(reader).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(error) => {
                transport::record_bad_frame("master", peer, &error);
                return;
            }
        };
        let inbound = match (from, frame) {
            (Peer::Master(_), PeerFrame::Protocol { message, stamp })
                if message.ballot().is_some() =>
            {
                Inbound::Protocol {
                    from,
                    message,
                    stamp,
                    open: open.clone(),
                }
            }
            (
                Peer::Proxy(_),
                PeerFrame::Protocol {
                    message: message @ Message::Propose { .. },
                    stamp,
                },
            ) => Inbound::Protocol {
                from,
                message,
                stamp,
                open: open.clone(),
            },
            (Peer::Proxy(proxy), PeerFrame::StatusQuery { query_id }) => {
                Inbound::StatusQuery { proxy, query_id }
            }
            (_, frame) => {
                let error = codec::CodecError::Decode {
                    bytes: 0,
                    reason: format!("unexpected frame from {from}: {frame:?}"),
                };
                transport::record_bad_frame("master", peer, &error);
                return;
            }
        };
        if context.inbox.send(inbound).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::{Ballot, Command, Entry};

    fn job(slot: Option<u64>) -> PersistJob {
        PersistJob {
            write: slot.map(|slot| DurableWrite {
                promised: None,
                snapshot: None,
                entries: vec![Entry {
                    slot,
                    ballot: Ballot::new(1, 0),
                    command: Command::Noop,
                }],
            }),
        }
    }

    #[test]
    fn the_jobs_queued_behind_one_share_its_write() {
        let (sender, mut receiver) = mpsc::channel(PERSIST_BATCH_JOBS_MAX + 8);
        for slot in [None, Some(2), Some(3)] {
            sender.try_send(job(slot)).unwrap();
        }
        let (write, jobs) = with_queued_jobs(job(Some(1)), &mut receiver);
        assert_eq!(jobs, 4, "each job is reported done");
        let slots: Vec<u64> = write.unwrap().entries.iter().map(|e| e.slot).collect();
        assert_eq!(slots, vec![1, 2, 3], "in order");
        assert!(receiver.try_recv().is_err(), "the queue is drained");
    }

    #[test]
    fn a_batch_is_bounded() {
        let (sender, mut receiver) = mpsc::channel(PERSIST_BATCH_JOBS_MAX + 8);
        for slot in 0..PERSIST_BATCH_JOBS_MAX as u64 + 5 {
            sender.try_send(job(Some(slot + 2))).unwrap();
        }
        let (_, jobs) = with_queued_jobs(job(Some(1)), &mut receiver);
        assert_eq!(jobs, PERSIST_BATCH_JOBS_MAX);
        let (_, rest) = with_queued_jobs(receiver.try_recv().unwrap(), &mut receiver);
        assert_eq!(rest, 6, "the rest make the next batch");
    }
}
