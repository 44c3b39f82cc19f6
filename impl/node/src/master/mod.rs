//! One master process: the task that owns the `vigil_core::Master` (`driver`), its listener
//! and inbound connections (`inbound`), its links to the other masters and its proxies'
//! connections (`router`), and the persist task that owns its storage (`persist`).
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

mod driver;
mod handle;
mod inbound;
mod persist;
mod router;
mod settings;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigil_core::Master;

pub use handle::{MasterHandle, StatusQuery, StatusRequest};
pub use settings::MasterSettings;

use crate::durable::MasterStorage;
use crate::platform::{FileSystem, Network, StdFileSystem, TokioNetwork};
use crate::storage::StorageError;
use crate::trace_sink::{TraceError, TraceHeader, TraceSink};
use driver::Driver;
use handle::STATUS_REQUESTS_MAX;
use persist::PERSIST_PENDING_MAX;
use router::Router;

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
    Ok(MasterHandle::new(
        address,
        StatusQuery::new(requests),
        shutdown,
        task,
    ))
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
    let (master, storage) = open(&file_system, &settings, trace.is_some()).await?;
    // Everything this master spawns stops with it, even if the caller's token lives on.
    let local_shutdown = shutdown.child_token();
    let _stop_children = local_shutdown.clone().drop_guard();
    let router = Arc::new(Router::connect(&network, &settings, &local_shutdown));
    let inbox = inbound::serve(
        &network,
        listener,
        &settings,
        router.clone(),
        &local_shutdown,
    );
    let (jobs, job_receiver) = mpsc::channel(PERSIST_PENDING_MAX);
    let (done_sender, done) = mpsc::channel(PERSIST_PENDING_MAX + 1);
    let persist_task = network.spawn(persist::persist_loop(
        file_system,
        storage,
        job_receiver,
        done_sender,
    ));
    tracing::info!(node = settings.node_id, cluster = %settings.cluster, "master started");
    let mut driver = Driver::new(master, router, jobs, done, &settings);
    driver.trace = trace;
    let result = driver
        .run(inbox, status_requests, local_shutdown.clone())
        .await;
    let result = stop(driver, result, &local_shutdown).await;
    let _ = persist_task.await;
    match &result {
        Ok(()) => tracing::info!(node = settings.node_id, "master stopped"),
        Err(error) => tracing::error!(node = settings.node_id, %error, "master stopped on error"),
    }
    result
}

/// Opens the master's storage (as blocking work of the file system) and its core on what the
/// storage recovered.
async fn open<F: FileSystem>(
    file_system: &F,
    settings: &MasterSettings,
    tracing: bool,
) -> Result<(Master, MasterStorage<F>), MasterError> {
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
    master.set_tracing(tracing);
    Ok((master, storage))
}

/// Stops what the driver ran: a stopped master sends nothing more, so its links close before
/// it counts as stopped, and a peer never receives from it after it has been restarted
/// (`protocol.md` §8). Then the trace is closed, and dropping the driver closes the job queue:
/// the persist task finishes what it has and ends.
async fn stop(
    mut driver: Driver,
    result: Result<(), MasterError>,
    shutdown: &CancellationToken,
) -> Result<(), MasterError> {
    shutdown.cancel();
    for link in driver.router.links.values() {
        link.finished().await;
    }
    let closed = match driver.trace.take() {
        Some(trace) => trace.close().await.map_err(MasterError::from),
        None => Ok(()),
    };
    drop(driver);
    result.and(closed)
}
