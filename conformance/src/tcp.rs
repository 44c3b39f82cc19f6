//! Mode `tcp`: the real tokio host (`vigil::cluster::LocalCluster`: masters, proxy, TCP on
//! 127.0.0.1, durable storage in a temporary directory) with file trace sinks, a client
//! workload through the client library (register requests on one connection; beside them the
//! revisioned API's mover and a watcher, `crate::revisioned_clients`), and faults through the
//! platform seam
//! ([`FaultyCluster`]: pause every task of a master, cut links) or the cluster itself (kill and
//! restart a master). The traces are then validated like any others (`vigil-conform check`).
//!
//! Real time is not deterministic: the same seed gives the same fault plan and workload, not the
//! same trace. Every wait is bounded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vigil::client::Client;
use vigil::cluster::ClusterOptions;
use vigil::platform::TokioNetwork;
use vigil_core as core;

use crate::faults::{FaultKind, FaultPlan, Runner};
use crate::revisioned_clients::{self, LastRevision, Pace, ProxyEndpoint};
use crate::seams::cluster::FaultyCluster;

/// Milliseconds per tick in TCP runs (the host's `tick_interval_ms`).
pub const TICK_MS: u64 = 20;
/// Requests of the steady workload per run.
pub const WORKLOAD_REQUESTS: usize = 20;
/// How long a run may wait for a leader.
pub const LEADER_WAIT: Duration = Duration::from_secs(10);

/// Requests in one overload burst on real TCP: four times `in_flight_max` (8), because on a
/// real network replies race the burst, and a few answered before the last requests arrive
/// must not leave the proxy with room for all of them (a vacuous run).
pub const BURST_REQUESTS: usize = 32;

/// The revisioned mover's requests per run.
pub const MOVER_REQUESTS_MAX: u64 = 30;
/// Watcher connections (one watch each) per run at most.
pub const WATCHER_CONNECTIONS_MAX: u64 = 12;
/// How long any answer to a revisioned client may take.
const REVISIONED_ANSWER_WAIT: Duration = Duration::from_secs(10);
/// How long the mover may take for all its requests (about 2 s on an idle machine).
const MOVER_WAIT: Duration = Duration::from_secs(60);

/// How long a crash waits for the proxy to hold a subscription to aim at.
const SUBSCRIPTION_WAIT: Duration = Duration::from_secs(2);

/// How long a run waits for an asked-for behaviour (an eviction, a rejoin) before it fails.
pub const BEHAVIOUR_WAIT: Duration = Duration::from_secs(10);

/// The protocol configuration of TCP runs: slow enough ticks for a shared 2-core machine (a
/// heartbeat period of 8 ticks, 160 ms, so that a loaded machine's scheduling delays do not
/// make every run an eviction storm), with this process's planted bugs (`planted.rs`).
pub fn protocol(masters: u64) -> core::Config {
    core::Config {
        masters,
        heartbeat_interval_ticks: 8,
        eviction_threshold: 3,
        election_timeout_ticks: 25,
        request_timeout_ticks: 40,
        in_flight_max: 8,
        mutations: crate::planted::planted(),
        ..core::Config::default()
    }
}

/// What a TCP run left behind.
#[derive(Debug)]
pub struct TcpRun {
    /// The directory of the trace files.
    pub trace_dir: PathBuf,
    /// Faults injected, as printed.
    pub faults_applied: Vec<String>,
    /// Why the workload or a fault could not complete (e.g. a request never answered); the
    /// traces are still validated, since they usually say why.
    pub drive_error: Option<String>,
}

/// Runs the cluster with `plan`'s fault kinds (times are the host's own), writes traces under
/// `directory/traces`.
pub fn run(seed: u64, masters: u64, plan: &FaultPlan, directory: &Path) -> Result<TcpRun, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| format!("tokio runtime: {error}"))?;
    runtime.block_on(run_async(seed, masters, plan, directory))
}

async fn run_async(
    seed: u64,
    masters: u64,
    plan: &FaultPlan,
    directory: &Path,
) -> Result<TcpRun, String> {
    let trace_dir = directory.join("traces");
    std::fs::create_dir_all(&trace_dir).map_err(|error| error.to_string())?;
    let mut options = ClusterOptions::local(masters as usize, directory.join("data"));
    options.host.tick_interval_ms = TICK_MS;
    options.protocol = protocol(masters);
    options.trace_dir = Some(trace_dir.clone());
    let mut cluster = FaultyCluster::start(options)
        .await
        .map_err(|error| error.to_string())?;
    let mut faults_applied = Vec::new();
    let outcome = drive(&mut cluster, seed, plan, &mut faults_applied).await;
    let shutdown = cluster.shutdown().await.map_err(|error| error.to_string());
    let drive_error = match (outcome, shutdown) {
        (Err(error), _) => Some(error),
        (Ok(()), Err(error)) => Some(format!("shutdown: {error}")),
        (Ok(()), Ok(())) => None,
    };
    Ok(TcpRun {
        trace_dir,
        faults_applied,
        drive_error,
    })
}

/// The `pause` fault, made to happen as asked: the follower stays paused past the eviction
/// threshold until the leader has evicted it, then runs again until the leader has readmitted
/// it (its `Rejoin` answered). Both waits are bounded ([`BEHAVIOUR_WAIT`]); a run where either
/// does not happen fails, naming it, instead of passing without the behaviour.
async fn pause_until_evicted_then_rejoined(
    cluster: &FaultyCluster,
    node: u64,
    masters: u64,
) -> Result<(), String> {
    let config = protocol(masters);
    // The previous fault may have left the cluster electing: pause a follower of a leader.
    let leader = cluster
        .wait_for_leader(LEADER_WAIT)
        .await
        .map_err(|error| format!("pause: {error}"))?;
    let node = if node == leader {
        (leader + 1) % masters
    } else {
        node
    };
    cluster.pause(node).map_err(|error| error.to_string())?;
    // At least three eviction periods, and until the leader has evicted it.
    tokio::time::sleep(ticks(
        config.eviction_threshold * config.heartbeat_interval_ticks * 3,
    ))
    .await;
    let evicted = wait_for_leader_status(cluster, |status| status.evicted.contains(&node)).await;
    cluster.resume(node).map_err(|error| error.to_string())?;
    if !evicted {
        return Err(format!(
            "pause: no leader evicted paused m{node} within {BEHAVIOUR_WAIT:?} (leader at the pause: m{leader})"
        ));
    }
    let readmitted = wait_for_leader_status(cluster, |status| {
        status.active.contains(&node) && !status.evicted.contains(&node)
    })
    .await;
    if !readmitted {
        return Err(format!(
            "pause: no leader readmitted m{node} within {BEHAVIOUR_WAIT:?} of its resume (leader at the pause: m{leader})"
        ));
    }
    Ok(())
}

/// Polls the current leader's status every tick until `condition` holds (true) or
/// [`BEHAVIOUR_WAIT`] passes (false).
async fn wait_for_leader_status(
    cluster: &FaultyCluster,
    condition: impl Fn(&core::MasterStatus) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + BEHAVIOUR_WAIT;
    while tokio::time::Instant::now() < deadline {
        if let Some(leader) = cluster.leader().await {
            if cluster
                .status(leader)
                .await
                .as_ref()
                .is_some_and(&condition)
            {
                return true;
            }
        }
        tokio::time::sleep(ticks(1)).await;
    }
    false
}

fn ticks(count: u64) -> Duration {
    Duration::from_millis(count * TICK_MS)
}

async fn drive(
    cluster: &mut FaultyCluster,
    seed: u64,
    plan: &FaultPlan,
    applied: &mut Vec<String>,
) -> Result<(), String> {
    let leader = cluster
        .wait_for_leader(LEADER_WAIT)
        .await
        .map_err(|error| error.to_string())?;
    let address = cluster.proxy_address().to_string();
    let mut client = Client::connect(&address, Duration::from_secs(5))
        .await
        .map_err(|error| error.to_string())?;
    let masters = cluster.master_addresses().len() as u64;
    let revisioned = RevisionedClients::start(&address, cluster.name(), seed);
    let outcome = drive_register_workload(cluster, &mut client, leader, seed, plan, applied).await;
    let revisioned = revisioned.finish().await;
    outcome.and(revisioned)?;
    // Drain: let timers, heartbeats and late replies settle.
    tokio::time::sleep(ticks(protocol(masters).request_timeout_ticks)).await;
    Ok(())
}

/// The register workload on `client`, with the plan's faults between its requests (`leader`:
/// the first leader).
async fn drive_register_workload(
    cluster: &mut FaultyCluster,
    client: &mut Client,
    leader: u64,
    seed: u64,
    plan: &FaultPlan,
    applied: &mut Vec<String>,
) -> Result<(), String> {
    let name = cluster.name().to_string();
    let masters = cluster.master_addresses().len() as u64;
    workload(client, &name, seed, WORKLOAD_REQUESTS / 2).await?;
    for fault in &plan.faults {
        // A follower: never the current leader, so the run keeps making progress; but a crash
        // aims at the master the watches stream from (usually the leader), so that they resume
        // at another (`watch resumed`, §17.6), and the cluster elects again.
        let leader = cluster.leader().await.unwrap_or(leader);
        let follower = (leader + 1 + fault.node % (masters - 1)) % masters;
        let node = match fault.kind {
            FaultKind::Crash => subscription_master(cluster).await.unwrap_or(follower),
            _ => follower,
        };
        applied.push(format!("{} node={node}", fault.kind));
        if fault.kind.runs_on(Runner::Tcp) {
            inject(cluster, client, &name, fault.kind, node, leader).await?;
        } else {
            applied.push(format!("{} not run on tcp (simulation only)", fault.kind));
        }
        workload(client, &name, seed + fault.start_tick, 2).await?;
    }
    workload(client, &name, seed + 1000, WORKLOAD_REQUESTS / 2).await
}

/// The revisioned API's mover and watcher, each a task on a connection of its own, from the
/// first leader: the mover makes all its requests, the watcher watches until the mover is done
/// and the register workload and its faults are too.
struct RevisionedClients {
    stop: CancellationToken,
    mover: tokio::task::JoinHandle<Result<(), String>>,
    watcher: tokio::task::JoinHandle<Result<(), String>>,
}

impl RevisionedClients {
    fn start(address: &str, cluster: &str, seed: u64) -> RevisionedClients {
        let pace = Pace {
            tick: ticks(1),
            // The mover's 30 requests span about 2 s, and a watch is held 1.2–2 s: a crash
            // of the watches' master early in the run leaves time for an election and for
            // events committed under the new leader to reach the resumed watch.
            request_gap_ticks: 2,
            requests_max: MOVER_REQUESTS_MAX,
            watch_ticks_min: 60,
            watch_ticks_spread: 40,
            connections_max: WATCHER_CONNECTIONS_MAX,
            answer_wait: REVISIONED_ANSWER_WAIT,
        };
        let endpoint = ProxyEndpoint {
            network: TokioNetwork,
            address: address.to_string(),
            cluster: cluster.to_string(),
            wrong_cluster: crate::sim::WRONG_CLUSTER.to_string(),
        };
        let last = LastRevision::default();
        let stop = CancellationToken::new();
        let mover = {
            let (endpoint, pace, last) = (endpoint.clone(), pace.clone(), last.clone());
            tokio::spawn(async move {
                revisioned_clients::run_mover(&endpoint, seed, &pace, &last, || true).await
            })
        };
        let watcher = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let open = || !stop.is_cancelled();
                revisioned_clients::run_watcher(&endpoint, seed, &pace, &last, open).await
            })
        };
        RevisionedClients {
            stop,
            mover,
            watcher,
        }
    }

    /// Waits for the mover's last request (each bounded by an answer's wait, the whole by
    /// [`MOVER_WAIT`]), then stops the watcher and waits for it (it finishes the watch it
    /// holds: a cancel is answered within an answer's wait).
    async fn finish(self) -> Result<(), String> {
        let mover = join("the mover", self.mover, MOVER_WAIT).await;
        self.stop.cancel();
        let watcher = join("the watcher", self.watcher, REVISIONED_ANSWER_WAIT * 2).await;
        mover.and(watcher)
    }
}

/// A revisioned client task's result, within `wait`.
async fn join(
    name: &str,
    task: tokio::task::JoinHandle<Result<(), String>>,
    wait: Duration,
) -> Result<(), String> {
    tokio::time::timeout(wait, task)
        .await
        .map_err(|_| format!("{name} did not finish within {wait:?}"))?
        .map_err(|error| format!("{name}: {error}"))?
        .map_err(|error| format!("{name}: {error}"))
}

/// Injects one fault of a kind real TCP runs (`FaultKind::runs_on(Runner::Tcp)`) on `node`: a
/// follower of `leader` (the leader when the fault began), or for a crash the master the
/// watches stream from.
async fn inject(
    cluster: &mut FaultyCluster,
    client: &mut Client,
    name: &str,
    kind: FaultKind,
    node: u64,
    leader: u64,
) -> Result<(), String> {
    let masters = cluster.master_addresses().len() as u64;
    match kind {
        FaultKind::PauseLeader
        | FaultKind::StaleAck
        | FaultKind::SlowDisk
        | FaultKind::Reproposal => {
            unreachable!("left out above: FaultKind::runs_on(Runner::Tcp)")
        }
        FaultKind::Pause => pause_until_evicted_then_rejoined(cluster, node, masters).await,
        FaultKind::Crash => crash_and_restart(cluster, node).await,
        FaultKind::Partition | FaultKind::Drop => cut_off(cluster, node, masters).await,
        FaultKind::WrongCluster => wrong_cluster_flood(client).await,
        FaultKind::Overload => overload_burst(cluster, client, name).await,
        FaultKind::Timeout => pause_leader_past_a_request(cluster, client, name, leader).await,
    }
}

/// The master the proxy's watches stream from once the watcher has opened a new watch (it
/// opens one within a few ticks of its previous, and holds it longer than an election takes);
/// `None` if no new watch is held within [`SUBSCRIPTION_WAIT`].
async fn subscription_master(cluster: &FaultyCluster) -> Option<u64> {
    let opened_before = cluster.watch_ledger().opened;
    let deadline = tokio::time::Instant::now() + SUBSCRIPTION_WAIT;
    loop {
        let subscription = cluster.subscription();
        if let (Some((master, _next)), true) =
            (subscription, cluster.watch_ledger().opened > opened_before)
        {
            return Some(master);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(ticks(1)).await;
    }
}

/// Kills `node` and restarts it from its data directory a few ticks later.
async fn crash_and_restart(cluster: &mut FaultyCluster, node: u64) -> Result<(), String> {
    cluster
        .kill(node)
        .await
        .map_err(|error| error.to_string())?;
    tokio::time::sleep(ticks(5)).await;
    cluster
        .restart(node)
        .await
        .map_err(|error| error.to_string())
}

/// Cuts `node`'s links to every other master both ways for three eviction periods.
async fn cut_off(cluster: &FaultyCluster, node: u64, masters: u64) -> Result<(), String> {
    let others = || (0..masters).filter(|other| *other != node);
    for other in others() {
        cluster
            .cut_link(node, other, true)
            .map_err(|error| error.to_string())?;
    }
    let config = protocol(masters);
    tokio::time::sleep(ticks(
        config.eviction_threshold * config.heartbeat_interval_ticks * 3,
    ))
    .await;
    for other in others() {
        cluster
            .cut_link(node, other, false)
            .map_err(|error| error.to_string())?;
    }
    Ok(())
}

/// Requests naming a cluster the proxy does not serve; each must be answered `UnknownCluster`.
async fn wrong_cluster_flood(client: &mut Client) -> Result<(), String> {
    for _ in 0..crate::sim::FLOOD_REQUESTS {
        let get = core::Operation::Get {
            key: b"k0".to_vec(),
        };
        let outcome = client
            .call("no-such-cluster", get)
            .await
            .map_err(|error| error.to_string())?;
        if outcome != Err(core::ClientError::UnknownCluster) {
            return Err(format!("a wrong-cluster request answered {outcome:?}"));
        }
    }
    Ok(())
}

/// A burst of requests beyond the proxy's `in_flight_max`, sent before any reply is read. It
/// overloads the proxy only while its requests wait for a leader's commit, so it waits for a
/// leader first: right after an election fault every master may answer `NotLeader`, and the
/// burst's first requests are then completed (`NoLeader`) before its last ones arrive.
async fn overload_burst(
    cluster: &FaultyCluster,
    client: &mut Client,
    name: &str,
) -> Result<(), String> {
    cluster
        .wait_for_leader(LEADER_WAIT)
        .await
        .map_err(|error| format!("overload: {error}"))?;
    for _ in 0..BURST_REQUESTS {
        let get = core::Operation::Get {
            key: b"k1".to_vec(),
        };
        client
            .send_request(name, get)
            .await
            .map_err(|error| error.to_string())?;
    }
    for _ in 0..BURST_REQUESTS {
        let (_, _outcome) = client
            .next_reply()
            .await
            .map_err(|error| error.to_string())?;
    }
    Ok(())
}

/// Freezes the leader longer than the request timeout with a request in flight: the proxy
/// must answer it (`Timeout`) at its deadline.
async fn pause_leader_past_a_request(
    cluster: &FaultyCluster,
    client: &mut Client,
    name: &str,
    leader: u64,
) -> Result<(), String> {
    let masters = cluster.master_addresses().len() as u64;
    let current = cluster.leader().await.unwrap_or(leader);
    cluster.pause(current).map_err(|error| error.to_string())?;
    let get = core::Operation::Get {
        key: b"k0".to_vec(),
    };
    let call = client.call(name, get);
    let outcome =
        tokio::time::timeout(ticks(protocol(masters).request_timeout_ticks * 3), call).await;
    cluster.resume(current).map_err(|error| error.to_string())?;
    let _answered = outcome
        .map_err(|_| "the proxy did not answer within three request timeouts".to_string())?
        .map_err(|error| error.to_string())?;
    Ok(())
}

/// `count` closed-loop requests (one at a time; every one gets its reply).
async fn workload(
    client: &mut Client,
    cluster: &str,
    seed: u64,
    count: usize,
) -> Result<(), String> {
    let mut state = seed | 1;
    for _ in 0..count {
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
        let _answered =
            tokio::time::timeout(Duration::from_secs(10), client.call(cluster, operation))
                .await
                .map_err(|_| "no reply within 10 s".to_string())?
                .map_err(|error| error.to_string())?;
    }
    Ok(())
}
