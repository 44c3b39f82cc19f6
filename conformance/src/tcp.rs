//! Mode `tcp`: the real tokio host (`vigil::cluster::LocalCluster`: masters, proxy, TCP on
//! 127.0.0.1, durable storage in a temporary directory) with file trace sinks, a client
//! workload through the client library, and faults through the cluster's control hooks
//! (pause a master's event loop, kill and restart a master, cut links). The traces are then
//! validated like any others (`vigil-conform check`).
//!
//! Real time is not deterministic: the same seed gives the same fault plan and workload, not the
//! same trace. Every wait is bounded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use vigil::client::Client;
use vigil::cluster::{ClusterOptions, LocalCluster};
use vigil_core as core;

use crate::faults::{FaultKind, FaultPlan, Runner};

/// Milliseconds per tick in TCP runs (the host's `tick_interval_ms`).
pub const TICK_MS: u64 = 20;
/// Requests of the steady workload per run.
pub const WORKLOAD_REQUESTS: usize = 20;
/// How long a run may wait for a leader.
pub const LEADER_WAIT: Duration = Duration::from_secs(10);

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
    let mut cluster = LocalCluster::start(options)
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
    cluster: &LocalCluster,
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
    cluster
        .pause(node)
        .await
        .map_err(|error| error.to_string())?;
    // At least three eviction periods, and until the leader has evicted it.
    tokio::time::sleep(ticks(
        config.eviction_threshold * config.heartbeat_interval_ticks * 3,
    ))
    .await;
    let evicted = wait_for_leader_status(cluster, |status| status.evicted.contains(&node)).await;
    cluster
        .resume(node)
        .await
        .map_err(|error| error.to_string())?;
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
    cluster: &LocalCluster,
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
    cluster: &mut LocalCluster,
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
    let name = cluster.name().to_string();
    let masters = cluster.master_addresses().len() as u64;
    workload(&mut client, &name, seed, WORKLOAD_REQUESTS / 2).await?;
    for fault in &plan.faults {
        // A follower: never the current leader, so the run keeps making progress.
        let leader = cluster.leader().await.unwrap_or(leader);
        let node = (leader + 1 + fault.node % (masters - 1)) % masters;
        applied.push(format!("{} node={node}", fault.kind));
        if fault.kind.runs_on(Runner::Tcp) {
            inject(cluster, &mut client, &name, fault.kind, node, leader).await?;
        } else {
            applied.push(format!("{} not run on tcp (simulation only)", fault.kind));
        }
        workload(&mut client, &name, seed + fault.start_tick, 2).await?;
    }
    workload(&mut client, &name, seed + 1000, WORKLOAD_REQUESTS / 2).await?;
    // Drain: let timers, heartbeats and late replies settle.
    tokio::time::sleep(ticks(protocol(masters).request_timeout_ticks)).await;
    Ok(())
}

/// Injects one fault of a kind real TCP runs (`FaultKind::runs_on(Runner::Tcp)`) on `node`, a
/// follower of `leader`, the leader when the fault began.
async fn inject(
    cluster: &mut LocalCluster,
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
        FaultKind::Pause => pause_until_evicted_then_rejoined(cluster, node, masters).await?,
        FaultKind::Crash => {
            cluster
                .kill(node)
                .await
                .map_err(|error| error.to_string())?;
            tokio::time::sleep(ticks(5)).await;
            cluster
                .restart(node)
                .await
                .map_err(|error| error.to_string())?;
        }
        FaultKind::Partition | FaultKind::Drop => {
            for other in (0..masters).filter(|other| *other != node) {
                cluster
                    .cut_link(node, other, true)
                    .await
                    .map_err(|error| error.to_string())?;
            }
            let config = protocol(masters);
            tokio::time::sleep(ticks(
                config.eviction_threshold * config.heartbeat_interval_ticks * 3,
            ))
            .await;
            for other in (0..masters).filter(|other| *other != node) {
                cluster
                    .cut_link(node, other, false)
                    .await
                    .map_err(|error| error.to_string())?;
            }
        }
        FaultKind::WrongCluster => {
            for _ in 0..crate::sim::FLOOD_REQUESTS {
                let outcome = client
                    .call(
                        "no-such-cluster",
                        core::Operation::Get {
                            key: b"k0".to_vec(),
                        },
                    )
                    .await
                    .map_err(|error| error.to_string())?;
                if outcome != Err(core::ClientError::UnknownCluster) {
                    return Err(format!("a wrong-cluster request answered {outcome:?}"));
                }
            }
        }
        FaultKind::Overload => {
            let mut sent = 0;
            for _ in 0..crate::sim::BURST_REQUESTS {
                client
                    .send_request(
                        name,
                        core::Operation::Get {
                            key: b"k1".to_vec(),
                        },
                    )
                    .await
                    .map_err(|error| error.to_string())?;
                sent += 1;
            }
            for _ in 0..sent {
                let (_, _outcome) = client
                    .next_reply()
                    .await
                    .map_err(|error| error.to_string())?;
            }
        }
        FaultKind::Timeout => {
            // Freeze the leader longer than the request timeout with a request in flight.
            let current = cluster.leader().await.unwrap_or(leader);
            cluster
                .pause(current)
                .await
                .map_err(|error| error.to_string())?;
            let call = client.call(
                name,
                core::Operation::Get {
                    key: b"k0".to_vec(),
                },
            );
            let outcome =
                tokio::time::timeout(ticks(protocol(masters).request_timeout_ticks * 3), call)
                    .await;
            cluster
                .resume(current)
                .await
                .map_err(|error| error.to_string())?;
            let _answered = outcome
                .map_err(|_| "the proxy did not answer within three request timeouts".to_string())?
                .map_err(|error| error.to_string())?;
        }
    }
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
    for index in 0..count {
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
        let _ = index;
        let _answered =
            tokio::time::timeout(Duration::from_secs(10), client.call(cluster, operation))
                .await
                .map_err(|_| "no reply within 10 s".to_string())?
                .map_err(|error| error.to_string())?;
    }
    Ok(())
}
