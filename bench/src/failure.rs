//! Failure handling on real processes (5 `vigil master` processes and a `vigil proxy`): the
//! seed's frozen follower as SIGSTOP, its return as SIGCONT, a leader crash as SIGKILL.
//!
//! Measured per trial: SIGSTOP of a follower → the leader's `/status` lists it evicted;
//! SIGCONT → the leader lists it active again and its commit index reached the leader's
//! (writes made while it was stopped included); SIGKILL of the leader → the first write that
//! succeeds through the proxy. Times come from polling `/status` every millisecond or so, so
//! they include up to one poll of delay.

use std::time::{Duration, Instant};

use vigil::client::Client;
use vigil_core::{MasterStatus, NodeId, ReplyOutcome};
use vigil_testkit::Signal;

use super::report::{thousands, Section, SectionOutcome, Table};
use super::vigil_cluster::{VigilCluster, CLUSTER, REQUEST_TIMEOUT};
use super::{BenchError, BenchOptions};

/// Masters of the cluster (the seed's size).
const MASTERS: usize = 5;
/// Longest wait for any one event (eviction, catch-up, first write).
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Writes made while the follower is stopped (it must catch up on them).
const WRITES_WHILE_STOPPED: u64 = 200;
/// Delay between polls.
const POLL_INTERVAL: Duration = Duration::from_millis(1);

/// Runs the section.
pub async fn run(options: &BenchOptions) -> Section {
    let title = "Failure handling".to_string();
    let mut table = Table::new(&[
        "trial",
        "SIGSTOP follower → evicted (ms)",
        "SIGCONT → rejoined and caught up (ms)",
        "slots caught up",
        "SIGKILL leader → first write through the proxy (ms)",
        "failed writes before it",
    ]);
    for trial in 1..=options.failure_trials {
        match one_trial(options, trial).await {
            Ok(row) => table.push(row),
            Err(error) => {
                return Section {
                    title,
                    outcome: SectionOutcome::Failed(format!("trial {trial}: {error}")),
                }
            }
        }
    }
    let notes = vec![format!(
        "{MASTERS} `vigil master` processes and a `vigil proxy` process, default settings (tick 50 ms, heartbeat every tick, eviction after 3 missed heartbeats, election timeout 10 ticks); a fresh cluster per trial. {WRITES_WHILE_STOPPED} writes are committed while the follower is stopped. Times from polling each master's `/status`."
    )];
    Section {
        title,
        outcome: SectionOutcome::Measured {
            tables: vec![table],
            notes,
        },
    }
}

async fn one_trial(options: &BenchOptions, trial: usize) -> Result<Vec<String>, BenchError> {
    let directory = options.temporary_directory(&format!("failure-{trial}"))?;
    let mut cluster = VigilCluster::start(&options.vigil, directory.path(), MASTERS).await?;
    let leader = cluster.wait_for_leader(EVENT_TIMEOUT).await?;
    let follower = (leader.id + 1) % MASTERS as NodeId;

    let stopped = Instant::now();
    cluster.signal_master(follower, Signal::SIGSTOP)?;
    let leader = poll(&cluster, "the follower's eviction", |leader| {
        leader.evicted.contains(&follower)
    })
    .await?;
    let evicted_ms = stopped.elapsed().as_secs_f64() * 1000.0;

    write_some(&cluster, WRITES_WHILE_STOPPED).await?;
    let target = cluster.master_status(leader.id).await?.commit_index;
    // The follower had at most the leader's commit index when it was evicted.
    let behind = target.saturating_sub(leader.commit_index);
    let resumed = Instant::now();
    cluster.signal_master(follower, Signal::SIGCONT)?;
    wait_caught_up(&cluster, follower, target).await?;
    let rejoined_ms = resumed.elapsed().as_secs_f64() * 1000.0;

    let leader = cluster.wait_for_leader(EVENT_TIMEOUT).await?;
    let killed = Instant::now();
    cluster.kill_master(leader.id)?;
    let first_write = first_successful_write(&cluster).await?;
    let failover_ms = (first_write.at - killed).as_secs_f64() * 1000.0;
    cluster.check_alive()?;
    Ok(vec![
        trial.to_string(),
        format!("{evicted_ms:.0}"),
        format!("{rejoined_ms:.0}"),
        thousands(behind),
        format!("{failover_ms:.0}"),
        match first_write.last_failure {
            Some(last) => format!("{} (last: {last})", first_write.failed_attempts),
            None => "0".to_string(),
        },
    ])
}

/// Polls the leader's status until `done` holds; returns that status.
async fn poll(
    cluster: &VigilCluster,
    what: &str,
    done: impl Fn(&MasterStatus) -> bool,
) -> Result<MasterStatus, BenchError> {
    cluster
        .leader_search()
        .wait(EVENT_TIMEOUT, POLL_INTERVAL, done)
        .await
        .map(|(_, leader)| leader)
        .ok_or_else(|| BenchError::Setup(format!("{what} did not happen within {EVENT_TIMEOUT:?}")))
}

/// Waits until the leader lists `follower` active (not evicted) and the follower's own commit
/// index reached `target`.
async fn wait_caught_up(
    cluster: &VigilCluster,
    follower: NodeId,
    target: u64,
) -> Result<(), BenchError> {
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while Instant::now() < deadline {
        let rejoined = match cluster.leader().await {
            Some(leader) => {
                leader.active.contains(&follower) && !leader.evicted.contains(&follower)
            }
            None => false,
        };
        if rejoined {
            if let Ok(status) = cluster.master_status(follower).await {
                if status.commit_index >= target {
                    return Ok(());
                }
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    Err(BenchError::Setup(format!(
        "master {follower} did not rejoin and reach commit index {target} within {EVENT_TIMEOUT:?}"
    )))
}

/// `count` sequential writes through the proxy, each of which must succeed.
async fn write_some(cluster: &VigilCluster, count: u64) -> Result<(), BenchError> {
    let mut client = Client::connect(&cluster.proxy_address.to_string(), EVENT_TIMEOUT)
        .await
        .map_err(|error| BenchError::Setup(format!("connecting to the proxy: {error}")))?;
    for index in 0..count {
        match client
            .put(CLUSTER, &index.to_be_bytes(), &[b'w'; 256])
            .await
        {
            Ok(ReplyOutcome::Ok(_)) => {}
            Ok(ReplyOutcome::Err(error)) => {
                return Err(BenchError::Load(format!("write {index}: {error:?}")))
            }
            Err(error) => return Err(BenchError::Load(format!("write {index}: {error}"))),
        }
    }
    Ok(())
}

/// The first write that succeeded after the leader's death, and what came before it.
struct FirstWrite {
    at: Instant,
    failed_attempts: u32,
    last_failure: Option<String>,
}

/// Retries a write through the proxy until one succeeds. The client waits longer than the
/// proxy's own request deadline, so every attempt ends with the proxy's answer (a fresh
/// connection only if one broke).
async fn first_successful_write(cluster: &VigilCluster) -> Result<FirstWrite, BenchError> {
    let deadline = Instant::now() + EVENT_TIMEOUT;
    let address = cluster.proxy_address.to_string();
    let mut client: Option<Client> = None;
    let (mut failed_attempts, mut last_failure) = (0u32, None);
    while Instant::now() < deadline {
        let mut connected = match client.take() {
            Some(connected) => connected,
            None => match Client::connect(&address, REQUEST_TIMEOUT).await {
                Ok(connected) => connected,
                Err(error) => {
                    last_failure = Some(error.to_string());
                    tokio::time::sleep(POLL_INTERVAL).await;
                    continue;
                }
            },
        };
        let attempt = Instant::now();
        let failure = match connected.put(CLUSTER, b"after-kill", b"1").await {
            Ok(ReplyOutcome::Ok(_)) => {
                return Ok(FirstWrite {
                    at: Instant::now(),
                    failed_attempts,
                    last_failure,
                })
            }
            Ok(ReplyOutcome::Err(error)) => {
                client = Some(connected);
                format!("{error:?}")
            }
            Err(error) => error.to_string(),
        };
        failed_attempts += 1;
        last_failure = Some(format!(
            "{failure} after {} ms",
            attempt.elapsed().as_millis()
        ));
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    Err(BenchError::Setup(format!(
        "no write succeeded within {EVENT_TIMEOUT:?} after the leader was killed: {}",
        last_failure.unwrap_or_default()
    )))
}
