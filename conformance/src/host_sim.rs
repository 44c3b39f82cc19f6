//! Mode `turmoil`: the real tokio host (`vigil::master`, `vigil::proxy`, `vigil::transport`,
//! `vigil::storage`, `vigil::client`) in a deterministic turmoil simulation — N master hosts, a
//! proxy host and two client hosts in one thread, on a simulated network and clock, with a
//! simulated disk per master, seeded. The host code runs through its platform seam
//! (`vigil::platform`): [`SimNetwork`] and [`SimFileSystem`] below.
//!
//! Faults of a [`FaultPlan`], in the host's terms: partitions (a master's links held both ways,
//! released when the window ends, as TCP delivers after a partition heals), message loss (the
//! master's links to the others cut in its platform, `crate::seams::network`: what it sends
//! them is lost), latency (every run draws link latencies from the seed; `drop` windows also
//! slow the links), crash and restart (the master host's runtime dropped; its disk keeps what
//! was synced and loses the rest; restarted on the same disk), stop-the-world pauses (every task
//! of the master frozen behind its gate, `crate::seams::pause`, and its links held, longer than
//! the eviction threshold), message hold and release (`timeout`: the proxy's links held longer
//! than the request timeout), and floods of wrong-cluster requests and overload bursts from a
//! client host. The same seed gives byte-identical traces (a test checks it).

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use turmoil::fs::shim::std::fs as sim_fs;
use vigil::client::Client;
use vigil::config::HostSettings;
use vigil::master::{self, MasterSettings};
use vigil::platform::{FileSystem, Network, StorageFile};
use vigil::proxy::{self, LedgerView, ProxySettings};
use vigil::trace_sink::{TraceBuffer, TraceSink};
use vigil_core as core;

use crate::faults::{Fault, FaultKind, FaultPlan, Runner, FAULT_SPACING_TICKS, WARMUP_TICKS};
use crate::seams::MasterFaults;
use crate::sim::{BURST_REQUESTS, CLUSTER, DRAIN_TICKS, FLOOD_REQUESTS, WRONG_CLUSTER};
use crate::trace::{self, NodeTrace};

/// Simulated milliseconds per host tick (`tick_interval_ms`).
pub const TICK_MS: u64 = 10;
/// Port every master listens on (each master is a host of its own).
const MASTER_PORT: u16 = 7000;
/// Port the proxy listens on.
const PROXY_PORT: u16 = 7100;
/// Requests of the steady workload at most (the model numbers requests in a `u8`).
const WORKLOAD_REQUESTS_MAX: u64 = 60;
/// Ticks between two steady requests.
const WORKLOAD_GAP_TICKS: u64 = 6;
/// Ticks of a run without faults.
const QUIET_RUN_TICKS: u64 = 150;
/// How long a client waits for a reply (simulated), far above the proxy's request timeout.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Where a master keeps its data on its simulated disk.
const DATA_DIR: &str = "/data";

/// The protocol configuration of turmoil runs (the core simulation's).
pub fn protocol(masters: u64) -> core::Config {
    crate::sim::protocol(masters)
}

/// turmoil's network for the host: every connection a simulated TCP stream.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimNetwork;

impl Network for SimNetwork {
    type Listener = turmoil::net::TcpListener;
    type Stream = turmoil::net::TcpStream;
    type Reader = turmoil::net::tcp::OwnedReadHalf;
    type Writer = turmoil::net::tcp::OwnedWriteHalf;

    async fn connect(&self, address: &str) -> io::Result<turmoil::net::TcpStream> {
        turmoil::net::TcpStream::connect(address).await
    }

    async fn accept(
        listener: &turmoil::net::TcpListener,
    ) -> io::Result<(turmoil::net::TcpStream, SocketAddr)> {
        listener.accept().await
    }

    fn split(
        stream: turmoil::net::TcpStream,
    ) -> (
        turmoil::net::tcp::OwnedReadHalf,
        turmoil::net::tcp::OwnedWriteHalf,
    ) {
        stream.into_split()
    }

    /// On the host's `LocalSet` (turmoil runs every host's software in one): a crash drops
    /// its tasks in a fixed order, where `tokio::spawn`'s sharded task list would drop them
    /// in an order set by process-wide task ids (`vigil::platform`).
    fn spawn<T>(&self, task: T) -> tokio::task::JoinHandle<T::Output>
    where
        T: std::future::Future + Send + 'static,
        T::Output: Send + 'static,
    {
        tokio::task::spawn_local(task)
    }
}

/// turmoil's simulated disk (one per host): writes are pending until synced, a crash loses
/// what is pending, a file whose directory entry was never synced disappears.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimFileSystem;

/// A file on [`SimFileSystem`].
#[derive(Debug)]
pub struct SimFile(sim_fs::File);

impl Read for SimFile {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.0.read(buffer)
    }
}

impl Write for SimFile {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        self.0.write(buffer)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Seek for SimFile {
    fn seek(&mut self, position: SeekFrom) -> io::Result<u64> {
        self.0.seek(position)
    }
}

impl StorageFile for SimFile {
    fn set_len(&self, bytes: u64) -> io::Result<()> {
        self.0.set_len(bytes)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
}

impl FileSystem for SimFileSystem {
    type File = SimFile;

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        sim_fs::create_dir_all(path)
    }
    fn open_append(&self, path: &Path) -> io::Result<SimFile> {
        sim_fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map(SimFile)
    }
    fn create(&self, path: &Path) -> io::Result<SimFile> {
        sim_fs::File::create(path).map(SimFile)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        sim_fs::read(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        sim_fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        sim_fs::remove_file(path)
    }
    fn sync_directory(&self, path: &Path) -> io::Result<()> {
        sim_fs::sync_dir(path)
    }

    /// Inline: the simulation is one thread, and a thread of its own would make it
    /// nondeterministic (and could not reach the simulated disk).
    async fn run_blocking<T, W>(&self, work: W) -> T
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
    {
        work()
    }
}

/// A turmoil run's result: one trace per node and what happened.
#[derive(Debug)]
pub struct TurmoilRun {
    /// One trace per master, then the proxy's.
    pub traces: Vec<NodeTrace>,
    /// The trace files' bytes, in the same order (what the determinism test compares).
    pub trace_bytes: Vec<Vec<u8>>,
    /// Faults injected, as printed.
    pub faults_applied: Vec<String>,
    /// Simulated milliseconds.
    pub simulated_ms: u64,
    /// Why a client could not complete its workload, if one could not.
    pub client_error: Option<String>,
}

fn ticks(count: u64) -> Duration {
    Duration::from_millis(count * TICK_MS)
}

fn master_name(node: u64) -> String {
    format!("m{node}")
}

/// Where the other masters dial master `node`.
fn master_address(node: u64) -> String {
    format!("{}:{MASTER_PORT}", master_name(node))
}

fn host_settings() -> HostSettings {
    HostSettings {
        tick_interval_ms: TICK_MS,
        reconnect_backoff_initial_ms: TICK_MS,
        reconnect_backoff_max_ms: 10 * TICK_MS,
        ..HostSettings::default()
    }
}

/// One master host's shared state: its trace (outlives crashes) and the fault switches of its
/// current incarnation (a restarted master starts unpaused, with no link cut).
#[derive(Clone, Default)]
struct MasterSlot {
    trace: TraceBuffer,
    faults: Arc<Mutex<MasterFaults>>,
}

impl MasterSlot {
    fn faults(&self) -> MasterFaults {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Fresh switches for a master that is starting.
    fn start_incarnation(&self) -> MasterFaults {
        let faults = MasterFaults::new();
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults.clone();
        faults
    }
}

/// Runs the hosts under `plan` for seed `seed` and returns their traces.
pub fn run(seed: u64, masters: u64, plan: &FaultPlan) -> Result<TurmoilRun, String> {
    let total_ticks = plan_end_ticks(plan) + DRAIN_TICKS;
    let mut builder = turmoil::Builder::new();
    let latency_max = Duration::from_millis(2 + seed % 4);
    builder
        .rng_seed(seed)
        .tick_duration(Duration::from_millis(1))
        .simulation_duration(ticks(total_ticks + 10))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(latency_max);
    let mut sim = builder.build();
    let slots: Vec<MasterSlot> = (0..masters).map(|_| MasterSlot::default()).collect();
    let addresses: Vec<String> = (0..masters).map(master_address).collect();
    for (node, slot) in slots.iter().enumerate() {
        add_master(&mut sim, node as u64, slot.clone(), &addresses);
    }
    let proxy_trace = TraceBuffer::new();
    add_proxy(&mut sim, proxy_trace.clone(), &addresses);
    let client_error = Arc::new(Mutex::new(None));
    add_clients(&mut sim, plan, seed, client_error.clone());
    let mut faults_applied = Vec::new();
    let mut schedule = Schedule::new(plan, masters, latency_max);
    while sim.elapsed() < ticks(total_ticks) {
        let now_ticks = sim.elapsed().as_millis() as u64 / TICK_MS;
        schedule.apply_due(&mut sim, &slots, now_ticks, &mut faults_applied);
        sim.step().map_err(|error| format!("simulation: {error}"))?;
    }
    let mut buffers: Vec<(String, Vec<u8>)> = slots
        .iter()
        .enumerate()
        .map(|(node, slot)| (master_name(node as u64), slot.trace.contents()))
        .collect();
    buffers.push(("p1".to_string(), proxy_trace.contents()));
    let mut traces = Vec::new();
    for (name, bytes) in &buffers {
        let path = Path::new("turmoil").join(format!("{name}.ndjson"));
        let text = String::from_utf8_lossy(bytes);
        traces.push(trace::parse(&path, &text).map_err(|error| error.to_string())?);
    }
    let client_error = client_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(TurmoilRun {
        traces,
        trace_bytes: buffers.into_iter().map(|(_, bytes)| bytes).collect(),
        faults_applied,
        simulated_ms: sim.elapsed().as_millis() as u64,
        client_error,
    })
}

/// Whether the master's last traced event left it leading (every role change is traced, and
/// the trace outlives a crash: a crashed leader still counts as leading, which only moves a
/// pause to another master).
fn leads(slot: &MasterSlot) -> bool {
    let contents = slot.trace.contents();
    let text = String::from_utf8_lossy(&contents);
    text.lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .and_then(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .is_some_and(|event| event["post"]["Master"]["role"] == "Leader")
}

/// The tick after the last fault window (or a quiet run's length).
fn plan_end_ticks(plan: &FaultPlan) -> u64 {
    plan.faults
        .iter()
        .map(|fault| fault.start_tick + fault.duration_ticks.max(FAULT_SPACING_TICKS / 2))
        .max()
        .unwrap_or(QUIET_RUN_TICKS)
        .max(WARMUP_TICKS + 40)
}

/// Masters and the proxy authenticate as in production (`docs/security.md`), with a fixed
/// secret. The exchange's nonces come from the OS, but they change only the bytes of two
/// frames, never their lengths or their timing, so they never reach a trace.
fn cluster_secret() -> vigil::auth::Authentication {
    let secret = vigil::auth::Secret::from_bytes(b"turmoil-cluster-secret", "simulation")
        .expect("long enough");
    vigil::auth::Authentication::ClusterSecret(secret)
}

fn add_master(sim: &mut turmoil::Sim<'_>, node: u64, slot: MasterSlot, addresses: &[String]) {
    let settings = MasterSettings {
        cluster: CLUSTER.to_string(),
        node_id: node,
        masters: addresses.to_vec(),
        data_dir: Path::new(DATA_DIR).to_path_buf(),
        protocol: protocol(addresses.len() as u64),
        host: host_settings(),
        trace_file: None,
        authentication: cluster_secret(),
    };
    sim.host(master_name(node), move || {
        let settings = settings.clone();
        let slot = slot.clone();
        let faults = slot.start_incarnation();
        // The host's own future is behind its gate too, as every task it spawns is.
        faults.gate.clone().wrap(async move {
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", MASTER_PORT)).await?;
            // Nobody asks this master for its status; the sender lives as long as the master.
            let (_status_requests, status_receiver) = mpsc::channel(16);
            let header = master::trace_header(&settings);
            let trace = TraceSink::in_memory(slot.trace.clone(), &header)?;
            master::run_on(
                faults.platform((SimNetwork, SimFileSystem)),
                listener,
                settings,
                Some(trace),
                CancellationToken::new(),
                status_receiver,
            )
            .await?;
            Ok(())
        })
    });
}

fn add_proxy(sim: &mut turmoil::Sim<'_>, trace: TraceBuffer, addresses: &[String]) {
    let settings = ProxySettings {
        clusters: BTreeMap::from([(CLUSTER.to_string(), addresses.to_vec())]),
        protocol: protocol(addresses.len() as u64),
        host: host_settings(),
        trace_file: None,
        security: BTreeMap::from([(
            CLUSTER.to_string(),
            vigil::proxy::ClusterSecurity {
                authentication: cluster_secret(),
                client_token: None,
            },
        )]),
    };
    sim.host("proxy", move || {
        let settings = settings.clone();
        let trace = trace.clone();
        async move {
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PROXY_PORT)).await?;
            let sink = TraceSink::in_memory(trace, &proxy::trace_header(&settings))?;
            let ledger = Arc::new(LedgerView::default());
            proxy::run_on(
                SimNetwork,
                listener,
                settings,
                Some(sink),
                CancellationToken::new(),
                ledger,
            )
            .await?;
            Ok(())
        }
    });
}

/// Records the first thing a client could not do.
type ClientError = Arc<Mutex<Option<String>>>;

fn record_error(errors: &ClientError, error: String) {
    errors
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert(error);
}

/// Two client hosts: `client` runs the steady closed-loop workload from warm-up to the end of
/// the fault windows; `flooder` sends the plan's wrong-cluster floods, overload bursts and the
/// request that the `timeout` fault holds.
fn add_clients(sim: &mut turmoil::Sim<'_>, plan: &FaultPlan, seed: u64, errors: ClientError) {
    let end_ticks = plan_end_ticks(plan);
    let steady_errors = errors.clone();
    sim.client("client", async move {
        if let Err(error) = steady_workload(seed, end_ticks).await {
            record_error(&steady_errors, format!("client: {error}"));
        }
        Ok(())
    });
    let faults: Vec<Fault> = plan
        .faults
        .iter()
        .filter(|fault| {
            matches!(
                fault.kind,
                FaultKind::WrongCluster | FaultKind::Overload | FaultKind::Timeout
            )
        })
        .cloned()
        .collect();
    sim.client("flooder", async move {
        if let Err(error) = flood(&faults).await {
            record_error(&errors, format!("flooder: {error}"));
        }
        Ok(())
    });
}

async fn connect() -> Result<Client<SimNetwork>, String> {
    let address = format!("proxy:{PROXY_PORT}");
    Client::connect_on(SimNetwork, &address, CLIENT_TIMEOUT)
        .await
        .map_err(|error| error.to_string())
}

/// One request at a time, `WORKLOAD_GAP_TICKS` apart, until `end_ticks`.
async fn steady_workload(seed: u64, end_ticks: u64) -> Result<(), String> {
    let started = tokio::time::Instant::now();
    tokio::time::sleep(ticks(WARMUP_TICKS / 2)).await;
    let mut client = connect().await?;
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for _ in 0..WORKLOAD_REQUESTS_MAX {
        if started.elapsed() >= ticks(end_ticks) {
            break;
        }
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let key = format!("k{}", state % 2).into_bytes();
        let value = format!("v{}", (state >> 8) % 3).into_bytes();
        let operation = match (state >> 16) % 4 {
            0 | 1 => core::Operation::Put { key, value },
            2 => core::Operation::Get { key },
            _ => core::Operation::Delete { key },
        };
        // Any outcome will do (the replay checks it); a connection error ends the workload.
        let _outcome = client
            .call(CLUSTER, operation)
            .await
            .map_err(|error| error.to_string())?;
        tokio::time::sleep(ticks(WORKLOAD_GAP_TICKS)).await;
    }
    Ok(())
}

/// The client side of the plan's faults, each at its start tick.
async fn flood(faults: &[Fault]) -> Result<(), String> {
    let started = tokio::time::Instant::now();
    tokio::time::sleep(ticks(WARMUP_TICKS / 2)).await;
    let mut client = connect().await?;
    let get = |key: &str| core::Operation::Get {
        key: key.as_bytes().to_vec(),
    };
    for fault in faults {
        tokio::time::sleep_until(started + ticks(fault.start_tick)).await;
        let (cluster, count, key) = match fault.kind {
            FaultKind::WrongCluster => (WRONG_CLUSTER, FLOOD_REQUESTS, "k0"),
            FaultKind::Overload => (CLUSTER, BURST_REQUESTS, "k1"),
            _ => (CLUSTER, 1, "k0"),
        };
        for _ in 0..count {
            client
                .send_request(cluster, get(key))
                .await
                .map_err(|error| error.to_string())?;
        }
        for _ in 0..count {
            let (_, outcome) = client
                .next_reply()
                .await
                .map_err(|error| error.to_string())?;
            if fault.kind == FaultKind::WrongCluster
                && outcome != Err(core::ClientError::UnknownCluster)
            {
                return Err(format!("a wrong-cluster request answered {outcome:?}"));
            }
        }
    }
    Ok(())
}

/// A fault's start or end, as the harness applies it between simulation steps.
#[derive(Clone, Debug)]
struct Step {
    tick: u64,
    fault: Fault,
    start: bool,
}

/// The plan's starts and ends in time order.
struct Schedule {
    steps: Vec<Step>,
    next: usize,
    masters: u64,
    /// The run's largest link latency, restored when a `drop` window ends.
    latency_max: Duration,
    /// The master each running `pause` froze, by the fault's (start tick, node): a pause asks
    /// for eviction and rejoin, which only a follower shows (a paused leader steps down on
    /// resuming, `docs/protocol.md` §7.2), so a pause aimed at the leader freezes the next
    /// follower instead, as in `sim`.
    paused_by_fault: BTreeMap<(u64, u64), u64>,
}

impl Schedule {
    fn new(plan: &FaultPlan, masters: u64, latency_max: Duration) -> Schedule {
        let mut steps: Vec<Step> = plan
            .faults
            .iter()
            .flat_map(|fault| {
                let end = fault.start_tick + fault.duration_ticks;
                [(fault.start_tick, true), (end, false)].map(|(tick, start)| Step {
                    tick,
                    fault: fault.clone(),
                    start,
                })
            })
            .collect();
        steps.sort_by_key(|step| (step.tick, step.start));
        Schedule {
            steps,
            next: 0,
            masters,
            latency_max,
            paused_by_fault: BTreeMap::new(),
        }
    }

    fn apply_due(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        slots: &[MasterSlot],
        now_ticks: u64,
        applied: &mut Vec<String>,
    ) {
        while let Some(step) = self.steps.get(self.next) {
            if step.tick > now_ticks {
                return;
            }
            let step = step.clone();
            self.next += 1;
            if step.start {
                applied.push(step.fault.to_string());
            }
            self.apply(sim, slots, &step, applied);
        }
    }

    /// The master a `pause` step acts on: at its start the planned one unless it leads (then
    /// the next master by id that does not), at its end the one its start froze.
    fn pause_node(&mut self, slots: &[MasterSlot], step: &Step, applied: &mut Vec<String>) -> u64 {
        let planned = step.fault.node % self.masters;
        let key = (step.fault.start_tick, step.fault.node);
        if !step.start {
            return self.paused_by_fault.remove(&key).unwrap_or(planned);
        }
        let target = if step.fault.kind == FaultKind::PauseLeader {
            (0..self.masters)
                .find(|candidate| leads(&slots[*candidate as usize]))
                .unwrap_or(planned)
        } else if leads(&slots[planned as usize]) {
            (1..self.masters)
                .map(|offset| (planned + offset) % self.masters)
                .find(|candidate| !leads(&slots[*candidate as usize]))
                .unwrap_or(planned)
        } else {
            planned
        };
        if target != planned {
            applied.push(format!(
                "{}: m{planned} planned, m{target} paused",
                step.fault.kind
            ));
        }
        self.paused_by_fault.insert(key, target);
        target
    }

    fn apply(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        slots: &[MasterSlot],
        step: &Step,
        applied: &mut Vec<String>,
    ) {
        if !step.fault.kind.runs_on(Runner::Turmoil) {
            if step.start {
                applied.push(format!(
                    "{} not run on turmoil (core simulation only)",
                    step.fault.kind
                ));
            }
            return;
        }
        let node = match step.fault.kind {
            FaultKind::Pause | FaultKind::PauseLeader => self.pause_node(slots, step, applied),
            _ => step.fault.node % self.masters,
        };
        let name = master_name(node);
        let others: Vec<String> = (0..self.masters)
            .filter(|other| *other != node)
            .map(master_name)
            .collect();
        let faults = slots[node as usize].faults();
        match (step.fault.kind, step.start) {
            (FaultKind::Drop, cut) => {
                // The host's own loss: what this master sends to the others is lost on the
                // links it dials (`seams::network`); the links also get slower while it lasts.
                for other in 0..self.masters {
                    if other != node {
                        faults.links.set_cut(&master_address(other), cut);
                        let latency = if cut { ticks(2) } else { self.latency_max };
                        sim.set_link_max_message_latency(
                            name.as_str(),
                            master_name(other).as_str(),
                            latency,
                        );
                    }
                }
            }
            (FaultKind::Partition, start) => hold_links(sim, &name, &others, start),
            (FaultKind::Pause | FaultKind::PauseLeader, true) => {
                faults.gate.close();
                hold_links(sim, &name, &others, true);
            }
            (FaultKind::Pause | FaultKind::PauseLeader, false) => {
                hold_links(sim, &name, &others, false);
                faults.gate.open();
            }
            (FaultKind::Crash, true) => sim.crash(name.as_str()),
            (FaultKind::Crash, false) => sim.bounce(name.as_str()),
            (FaultKind::Timeout, start) => {
                let masters: Vec<String> = (0..self.masters).map(master_name).collect();
                for master in &masters {
                    if start {
                        sim.hold("proxy", master.as_str());
                    } else {
                        sim.release("proxy", master.as_str());
                    }
                }
            }
            (FaultKind::StaleAck | FaultKind::SlowDisk | FaultKind::Reproposal, _) => {
                unreachable!("left out above: FaultKind::runs_on(Runner::Turmoil)")
            }
            (FaultKind::WrongCluster | FaultKind::Overload, _) => {}
        }
    }
}

/// Holds (or releases) every link of master `name`: to the other masters and to the proxy.
fn hold_links(sim: &mut turmoil::Sim<'_>, name: &str, others: &[String], hold: bool) {
    let peers = others.iter().map(String::as_str).chain(["proxy"]);
    for peer in peers {
        if hold {
            sim.hold(name, peer);
        } else {
            sim.release(name, peer);
        }
    }
}
