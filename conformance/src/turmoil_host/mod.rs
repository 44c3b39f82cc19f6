//! Mode `turmoil`: the real tokio host (`vigil::master`, `vigil::proxy`, `vigil::transport`,
//! `vigil::storage`, `vigil::client`) in a deterministic turmoil simulation — N master hosts, a
//! proxy host and the client hosts (two, and on even seeds the revisioned API's three) in one
//! thread, on a simulated network and clock, with a
//! simulated disk per master, seeded. The host code runs through its platform seam
//! (`vigil::platform`): turmoil's TCP and disk ([`platform`]), each master's wrapped by its
//! fault switches (`crate::seams`). `clients` are the workload's hosts, `schedule` applies
//! the faults.
//!
//! Faults of a [`FaultPlan`], in the host's terms: partitions (a master's links held both ways,
//! released when the window ends, as TCP delivers after a partition heals), message loss (the
//! master's links to the others cut in its platform, `crate::seams::network`: what it sends
//! them is lost), latency (every run draws link latencies from the seed; `drop` windows also
//! slow the links), crash and restart (the master host's runtime dropped; its disk keeps what
//! was synced and loses the rest; restarted on the same disk; on a seed with watchers, the
//! master their subscription streams from), stop-the-world pauses (every task
//! of the master frozen behind its gate, `crate::seams::pause`, and its links held, longer than
//! the eviction threshold), message hold and release (`timeout`: the proxy's links held longer
//! than the request timeout), and floods of wrong-cluster requests and overload bursts from a
//! client host. The same seed gives byte-identical traces (a test checks it).

mod clients;
pub mod platform;
mod schedule;

pub use clients::revisioned_seed;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigil::config::HostSettings;
use vigil::master::{self, MasterSettings};
use vigil::proxy::{self, LedgerView, ProxySettings};
use vigil::trace_sink::{TraceBuffer, TraceSink};
use vigil_core as core;

use crate::faults::{FaultPlan, FAULT_SPACING_TICKS, WARMUP_TICKS};
use crate::seams::MasterFaults;
use crate::sim::{CLUSTER, DRAIN_TICKS};
use crate::trace::{self, NodeTrace};
use platform::{SimFileSystem, SimNetwork};
use schedule::Schedule;

/// Simulated milliseconds per host tick (`tick_interval_ms`).
pub const TICK_MS: u64 = 10;
/// Port every master listens on (each master is a host of its own).
const MASTER_PORT: u16 = 7000;
/// Port the proxy listens on.
pub(super) const PROXY_PORT: u16 = 7100;
/// Ticks of a run without faults.
const QUIET_RUN_TICKS: u64 = 150;
/// Where a master keeps its data on its simulated disk.
const DATA_DIR: &str = "/data";

/// The protocol configuration of turmoil runs (the core simulation's).
pub fn protocol(masters: u64) -> core::Config {
    crate::sim::protocol(masters)
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

pub(super) fn ticks(count: u64) -> Duration {
    Duration::from_millis(count * TICK_MS)
}

pub(super) fn master_name(node: u64) -> String {
    format!("m{node}")
}

/// Where the other masters dial master `node`.
pub(super) fn master_address(node: u64) -> String {
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
pub(super) struct MasterSlot {
    trace: TraceBuffer,
    faults: Arc<Mutex<MasterFaults>>,
}

impl MasterSlot {
    pub(super) fn faults(&self) -> MasterFaults {
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
    let ledger = Arc::new(LedgerView::default());
    add_proxy(&mut sim, proxy_trace.clone(), ledger.clone(), &addresses);
    let client_error = Arc::new(Mutex::new(None));
    clients::add_clients(&mut sim, plan, seed, client_error.clone());
    let mut faults_applied = Vec::new();
    // On a seed with watchers, a crash aims at the master their subscription streams from.
    let watched = revisioned_seed(seed).then_some(ledger);
    let mut schedule = Schedule::new(plan, masters, latency_max);
    while sim.elapsed() < ticks(total_ticks) {
        let now_ticks = sim.elapsed().as_millis() as u64 / TICK_MS;
        let hosts = schedule::Hosts {
            slots: &slots,
            watched: watched.as_deref(),
        };
        schedule.apply_due(&mut sim, &hosts, now_ticks, &mut faults_applied);
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
pub(super) fn leads(slot: &MasterSlot) -> bool {
    let contents = slot.trace.contents();
    let text = String::from_utf8_lossy(&contents);
    text.lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .and_then(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .is_some_and(|event| event["post"]["Master"]["role"] == "Leader")
}

/// The tick after the last fault window (or a quiet run's length).
pub(super) fn plan_end_ticks(plan: &FaultPlan) -> u64 {
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

fn add_proxy(
    sim: &mut turmoil::Sim<'_>,
    trace: TraceBuffer,
    ledger: Arc<LedgerView>,
    addresses: &[String],
) {
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
        let ledger = ledger.clone();
        async move {
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PROXY_PORT)).await?;
            let sink = TraceSink::in_memory(trace, &proxy::trace_header(&settings))?;
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
