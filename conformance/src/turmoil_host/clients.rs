//! The turmoil run's client hosts: the steady closed-loop workload, the client side of the
//! plan's faults (wrong-cluster floods, overload bursts, the request a `timeout` holds), and on
//! the seeds that run them ([`revisioned_seed`]) the revisioned API's mover and two watchers
//! (`crate::revisioned_clients`), from warm-up to the end of the fault windows.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use vigil::client::Client;
use vigil_core as core;

use super::platform::SimNetwork;
use super::{plan_end_ticks, ticks, PROXY_PORT};
use crate::faults::{Fault, FaultKind, FaultPlan, WARMUP_TICKS};
use crate::revisioned_clients::{self, LastRevision, Pace, ProxyEndpoint};
use crate::sim::{BURST_REQUESTS, CLUSTER, FLOOD_REQUESTS, WRONG_CLUSTER};

/// Requests of the steady workload at most (the model numbers requests in a `u8`).
const WORKLOAD_REQUESTS_MAX: u64 = 60;
/// Ticks between two steady requests.
const WORKLOAD_GAP_TICKS: u64 = 6;
/// How long a client waits for a reply (simulated), far above the proxy's request timeout.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// The revisioned mover's requests at most (spread over the run: a watch open when its
/// subscription's master crashes sees the mover's writes after the crash).
const MOVER_REQUESTS_MAX: u64 = 60;
/// Watchers of the revisioned API at once, each a client host.
const WATCHERS: u64 = 2;
/// Connections (one watch each) per watcher at most.
const WATCHER_CONNECTIONS_MAX: u64 = 12;
/// Records the first thing a client could not do.
pub(super) type ClientError = Arc<Mutex<Option<String>>>;

fn record_error(errors: &ClientError, error: String) {
    errors
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert(error);
}

/// Two client hosts: `client` runs the steady closed-loop workload from warm-up to the end of
/// the fault windows; `flooder` sends the plan's wrong-cluster floods, overload bursts and the
/// request that the `timeout` fault holds.
pub(super) fn add_clients(
    sim: &mut turmoil::Sim<'_>,
    plan: &FaultPlan,
    seed: u64,
    errors: ClientError,
) {
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
    let flood_errors = errors.clone();
    sim.client("flooder", async move {
        if let Err(error) = flood(&faults).await {
            record_error(&flood_errors, format!("flooder: {error}"));
        }
        Ok(())
    });
    if revisioned_seed(seed) {
        add_revisioned_clients(sim, seed, end_ticks, errors);
    }
}

/// Whether seed `seed` runs the revisioned clients besides the register workload (even seeds,
/// as in the core simulation: the odd ones keep the register workload's traces exactly).
pub fn revisioned_seed(seed: u64) -> bool {
    seed % 2 == 0
}

/// The revisioned API's mover and watchers, each a client host, from half the warm-up until
/// `end_ticks`.
fn add_revisioned_clients(
    sim: &mut turmoil::Sim<'_>,
    seed: u64,
    end_ticks: u64,
    errors: ClientError,
) {
    let span_ticks = end_ticks.saturating_sub(WARMUP_TICKS / 2);
    let pace = Pace {
        tick: ticks(1),
        request_gap_ticks: (span_ticks / MOVER_REQUESTS_MAX).max(1),
        requests_max: MOVER_REQUESTS_MAX,
        watch_ticks_min: 15,
        watch_ticks_spread: 60,
        connections_max: WATCHER_CONNECTIONS_MAX,
        answer_wait: CLIENT_TIMEOUT,
    };
    let endpoint = ProxyEndpoint {
        network: SimNetwork,
        address: format!("proxy:{PROXY_PORT}"),
        cluster: CLUSTER.to_string(),
        wrong_cluster: WRONG_CLUSTER.to_string(),
    };
    let last = LastRevision::default();
    let open = move |started: tokio::time::Instant| started.elapsed() < ticks(end_ticks);
    let hosts = std::iter::once("mover".to_string())
        .chain((0..WATCHERS).map(|watcher| format!("watcher{watcher}")));
    for (index, name) in hosts.enumerate() {
        let (endpoint, pace, last, errors) =
            (endpoint.clone(), pace.clone(), last.clone(), errors.clone());
        let host = name.clone();
        sim.client(name, async move {
            let started = tokio::time::Instant::now();
            tokio::time::sleep(ticks(WARMUP_TICKS / 2 + 5 * index as u64)).await;
            let open = || open(started);
            let seed = seed + index as u64;
            let outcome = if index == 0 {
                revisioned_clients::run_mover(&endpoint, seed, &pace, &last, open).await
            } else {
                revisioned_clients::run_watcher(&endpoint, seed, &pace, &last, open).await
            };
            if let Err(error) = outcome {
                record_error(&errors, format!("{host}: {error}"));
            }
            Ok(())
        });
    }
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
