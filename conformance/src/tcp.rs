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

use crate::faults::{FaultKind, FaultPlan};

/// Milliseconds per tick in TCP runs (the host's `tick_interval_ms`).
pub const TICK_MS: u64 = 20;
/// Requests of the steady workload per run.
pub const WORKLOAD_REQUESTS: usize = 20;
/// How long a run may wait for a leader.
pub const LEADER_WAIT: Duration = Duration::from_secs(10);

/// The protocol configuration of TCP runs: slow enough ticks for a shared 2-core machine.
pub fn protocol(masters: u64) -> core::Config {
    core::Config {
        masters,
        eviction_threshold: 5,
        election_timeout_ticks: 25,
        request_timeout_ticks: 40,
        in_flight_max: 8,
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
        // A follower: never the leader we started with, so the run keeps making progress.
        let node = (leader + 1 + fault.node % (masters - 1)) % masters;
        applied.push(format!("{} node={node}", fault.kind));
        match fault.kind {
            FaultKind::StaleAck => {
                // Needs a pause and cut links at one instant of the leader's pipeline: only the
                // simulation can time it.
                applied.push("stale-ack not run on tcp (simulation only)".to_string());
            }
            FaultKind::Pause => {
                cluster
                    .pause(node)
                    .await
                    .map_err(|error| error.to_string())?;
                tokio::time::sleep(ticks(protocol(masters).eviction_threshold * 3)).await;
                cluster
                    .resume(node)
                    .await
                    .map_err(|error| error.to_string())?;
            }
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
                tokio::time::sleep(ticks(protocol(masters).eviction_threshold * 3)).await;
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
                            &name,
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
                    &name,
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
                    .map_err(|_| {
                        "the proxy did not answer within three request timeouts".to_string()
                    })?
                    .map_err(|error| error.to_string())?;
            }
        }
        workload(&mut client, &name, seed + fault.start_tick, 2).await?;
    }
    workload(&mut client, &name, seed + 1000, WORKLOAD_REQUESTS / 2).await?;
    // Drain: let timers, heartbeats and late replies settle.
    tokio::time::sleep(ticks(protocol(masters).request_timeout_ticks)).await;
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
