//! The nemesis run itself: start the processes, run the clients, inject the faults in turn
//! until the time budget is spent, heal, read every key, stop everything and check.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_core::NodeId;
use vigil_testkit::leader::{LeaderRule, LeaderSearch};
use vigil_testkit::{status, Children, Endpoints, Layout, Security, Signal};

use tokio::task::JoinHandle;

use super::accounts::{BankRecord, WatcherLog};
use super::bank::{self, BankSettings};
use super::history::Record;
use super::links::Links;
use super::readback;
use super::report::{self, FaultRecord, FloodRecord, NemesisReport, RevisionedFacts};
use super::watchers::{self, FinalRevision};
use super::workload::{self, WorkloadSettings};
use super::{protocol, NemesisError, NemesisOptions, TICK_MS};

/// Masters in the cluster.
const MASTERS: usize = 5;
/// A master's `/status` must answer within this.
const STATUS_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the cluster may take to elect a leader (at the start, after a fault, after the heal).
const LEADER_WAIT: Duration = Duration::from_secs(30);
/// Delay between two looks for a leader while waiting for one.
const LEADER_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Delay between two looks at the leader's status while waiting for a change in it.
const LEADER_STATUS_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Workload without faults between two faults.
const CALM: Duration = Duration::from_secs(2);
/// A fault is not started with less than this left of the budget.
const FAULT_TIME_MIN: Duration = Duration::from_secs(8);
/// Requests pipelined per flood connection, and connections per flood: at most 128 requests
/// open at once (the trace check's model has one client per open request, numbered in a byte).
const FLOOD_BATCH: u64 = 32;
const FLOOD_CONNECTIONS: u64 = 4;
/// Distinct values the clients write in all, the balances included (the model numbers values in
/// a byte).
const VALUES_MAX: u64 = 240;

fn ticks(count: u64) -> Duration {
    Duration::from_millis(count * TICK_MS)
}

/// The running cluster and what the nemesis did to it.
struct Cluster {
    processes: Children,
    /// Each master's index in `processes` and its endpoints, by node id.
    masters: Vec<(usize, Endpoints)>,
    /// Each master's HTTP endpoint, by node id (where the leader is asked for).
    master_http: Vec<SocketAddr>,
    proxy: (usize, Endpoints),
    links: Links,
    started: Instant,
    faults: Vec<FaultRecord>,
    floods: Vec<FloodRecord>,
    pauses: u64,
    /// The client token the workload presents (`docs/security.md`).
    token: vigil::auth::Token,
}

/// Runs the whole nemesis (see the module `nemesis`).
pub async fn run(options: &NemesisOptions) -> Result<NemesisReport, NemesisError> {
    let started = Instant::now();
    let mut cluster = Cluster::start(options, started).await?;
    let first_leader = cluster.wait_for_leader(None).await?;
    tracing::info!(leader = first_leader, "nemesis: cluster up");
    // Warm the proxy's allocator up so the flood measurements compare like with like.
    cluster.flood(options.flood_requests / 10, false).await?;
    let running = Running::start(options, &cluster).await?;
    cluster.schedule(options).await?;
    cluster.heal().await?;
    tokio::time::sleep(CALM).await;
    let finished = running.stop().await?;
    cluster.finish(options, finished).await
}

/// How long the watchers may take, once every client has stopped, to report progress up to the
/// final revision.
const WATCHERS_FINISH_WITHIN: Duration = Duration::from_secs(20);

/// The clients of a run, running.
struct Running {
    settings: WorkloadSettings,
    /// The accounts, if the run has transaction clients.
    bank: Option<BankSettings>,
    stop: Arc<AtomicBool>,
    final_revision: FinalRevision,
    clients: Vec<JoinHandle<Vec<Record>>>,
    txn_clients: Vec<JoinHandle<Vec<BankRecord>>>,
    watchers: Vec<JoinHandle<WatcherLog>>,
}

/// What the clients left after the heal.
struct Finished {
    settings: WorkloadSettings,
    records: Vec<Record>,
    final_reads: Vec<Record>,
    revisioned: Option<RevisionedFacts>,
}

fn joined<T>(result: Result<T, tokio::task::JoinError>) -> Result<T, NemesisError> {
    result.map_err(|error| NemesisError::Setup(format!("a client task: {error}")))
}

impl Running {
    /// Seeds the accounts (if the run has transaction clients) and starts every client.
    async fn start(options: &NemesisOptions, cluster: &Cluster) -> Result<Running, NemesisError> {
        let bank = (options.txn_clients > 0)
            .then(|| BankSettings::new(options.accounts, options.total, options.txn_clients));
        // Every balance from 0 to the total is a value of its own in the trace check's model.
        let balance_values = bank.as_ref().map_or(0, |bank| bank.total + 1);
        if options.accounts < 2 || balance_values + options.clients as u64 > VALUES_MAX {
            return Err(NemesisError::Setup(format!(
                "{} accounts holding {}: at least 2 accounts, and at most {} in all",
                options.accounts,
                options.total,
                VALUES_MAX - 1 - options.clients as u64
            )));
        }
        let settings = WorkloadSettings {
            proxy: cluster.proxy.1.listen.to_string(),
            cluster: "nemesis".to_string(),
            keys: (0..options.keys)
                .map(|key| format!("key-{key}").into_bytes())
                .collect(),
            call_timeout: ticks(protocol().request_timeout_ticks) + Duration::from_secs(2),
            think_time: Duration::from_millis(10),
            started: cluster.started,
            values_per_client: ((VALUES_MAX - balance_values) / options.clients.max(1) as u64)
                .max(1),
            token: cluster.token.clone(),
        };
        let mut running = Running {
            settings,
            bank,
            stop: Arc::new(AtomicBool::new(false)),
            final_revision: FinalRevision::default(),
            clients: Vec::new(),
            txn_clients: Vec::new(),
            watchers: Vec::new(),
        };
        running.start_revisioned(options).await?;
        for client in 0..options.clients {
            let task =
                workload::client_loop(running.settings.clone(), client, running.stop.clone());
            running.clients.push(tokio::spawn(task));
        }
        Ok(running)
    }

    /// Seeds the accounts, then starts the watchers and the transaction clients.
    async fn start_revisioned(&mut self, options: &NemesisOptions) -> Result<(), NemesisError> {
        let Some(bank) = self.bank.clone() else {
            return Ok(());
        };
        let seeded = bank::seed(&self.settings, &bank, Instant::now() + LEADER_WAIT)
            .await
            .map_err(NemesisError::Setup)?;
        tracing::info!(revision = seeded, "nemesis: accounts seeded");
        for watcher in 0..options.watchers {
            let task = watchers::watcher_loop(
                self.settings.clone(),
                bank.prefix.clone(),
                watcher,
                self.final_revision.clone(),
                WATCHERS_FINISH_WITHIN,
            );
            self.watchers.push(tokio::spawn(task));
        }
        for client in 0..options.txn_clients {
            let task = bank::client_loop(
                self.settings.clone(),
                bank.clone(),
                client,
                self.stop.clone(),
            );
            self.txn_clients.push(tokio::spawn(task));
        }
        Ok(())
    }

    /// Stops the clients, reads every key and the accounts' history, and lets the watchers
    /// catch up with it.
    async fn stop(self) -> Result<Finished, NemesisError> {
        self.stop.store(true, Ordering::SeqCst);
        let mut records: Vec<Record> = Vec::new();
        for client in self.clients {
            records.extend(joined(client.await)?);
        }
        let mut bank_records = Vec::new();
        for client in self.txn_clients {
            bank_records.extend(joined(client.await)?);
        }
        let client_id = records
            .iter()
            .map(|record| record.client + 1)
            .max()
            .unwrap_or(0);
        let deadline = Instant::now() + LEADER_WAIT;
        let final_reads = workload::final_reads(&self.settings, client_id, deadline).await;
        let revisioned = match self.bank {
            None => None,
            Some(bank) => {
                let deadline = Instant::now() + LEADER_WAIT;
                let history = readback::read_history(&self.settings, &bank.prefix, deadline).await;
                // Without a history the watchers have nothing to reach: they stop at their
                // deadline.
                self.final_revision.set(
                    history
                        .as_ref()
                        .map_or(u64::MAX, |history| history.final_revision),
                );
                let mut logs = Vec::new();
                for watcher in self.watchers {
                    logs.push(joined(watcher.await)?);
                }
                Some(RevisionedFacts {
                    bank,
                    records: bank_records,
                    history,
                    watchers: logs,
                })
            }
        };
        Ok(Finished {
            settings: self.settings,
            records,
            final_reads,
            revisioned,
        })
    }
}

impl Cluster {
    async fn start(options: &NemesisOptions, started: Instant) -> Result<Cluster, NemesisError> {
        let layout = Layout {
            cluster: "nemesis".to_string(),
            protocol: vigil_core::Config {
                mutations: options.mutations,
                ..protocol()
            },
            host: vigil::config::HostSettings {
                tick_interval_ms: TICK_MS,
                ..vigil::config::HostSettings::default()
            },
            directory: options.directory.clone(),
            traces: options.check_traces,
            security: Security::SecretFiles,
        };
        layout.prepare_directories()?;
        let mut endpoints = Endpoints::fresh(MASTERS + 1)?;
        let proxy_endpoints = endpoints
            .pop()
            .expect("one endpoint per master and the proxy's");
        let token = layout.write_secrets()?;
        let targets: Vec<SocketAddr> = endpoints.iter().map(|e| e.listen).collect();
        let links = Links::start(&targets).await?;
        let mut processes = Children::default();
        let mut masters = Vec::new();
        for (node, own) in endpoints.iter().enumerate() {
            let peers: Vec<String> = (0..MASTERS)
                .map(|peer| match links.address(node, peer) {
                    Some(address) => address.to_string(),
                    None => own.listen.to_string(),
                })
                .collect();
            let config = layout.master_config(node, own, &peers);
            let index = layout.start_master(&mut processes, &options.vigil, node, &config)?;
            masters.push((index, own.clone()));
        }
        let config = layout.proxy_config(&proxy_endpoints, &endpoints);
        let proxy = layout.start_proxy(&mut processes, &options.vigil, &config)?;
        Ok(Cluster {
            processes,
            master_http: endpoints.iter().map(|own| own.http).collect(),
            masters,
            proxy: (proxy, proxy_endpoints),
            links,
            started,
            faults: Vec::new(),
            floods: Vec::new(),
            pauses: 0,
            token,
        })
    }

    fn elapsed_seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    async fn status(&self, node: usize) -> Option<vigil_core::MasterStatus> {
        status::master_status(self.masters[node].1.http, STATUS_TIMEOUT)
            .await
            .ok()
    }

    /// The nemesis's leader search: a leader a quorum of answering masters follows, other
    /// than `excluded` (a deposed leader that has not noticed yet does not count).
    fn leader_search(&self, excluded: Option<usize>) -> LeaderSearch<'_> {
        LeaderSearch {
            masters: &self.master_http,
            rule: LeaderRule::FollowedByQuorum {
                quorum: protocol().quorum(),
                excluded,
            },
            status_timeout: STATUS_TIMEOUT,
        }
    }

    async fn wait_for_leader(&self, excluded: Option<usize>) -> Result<usize, NemesisError> {
        let search = self.leader_search(excluded);
        match search.wait(LEADER_WAIT, LEADER_POLL_INTERVAL, |_| true).await {
            Some((leader, _)) => Ok(leader),
            None => Err(NemesisError::Setup(format!(
                "no leader followed by a quorum within {LEADER_WAIT:?} (at {:.1} s; logs in the run's logs/)",
                self.elapsed_seconds()
            ))),
        }
    }

    /// Waits until `condition` holds of the leader's status, up to `timeout`; the time it took.
    async fn wait_leader_status(
        &self,
        timeout: Duration,
        condition: impl Fn(&vigil_core::MasterStatus) -> bool,
    ) -> Option<Duration> {
        let started = Instant::now();
        self.leader_search(None)
            .wait(timeout, LEADER_STATUS_POLL_INTERVAL, condition)
            .await
            .map(|_| started.elapsed())
    }

    fn signal(&self, node: usize, signal: Signal) -> Result<(), NemesisError> {
        Ok(self.processes.signal(self.masters[node].0, signal)?)
    }

    async fn schedule(&mut self, options: &NemesisOptions) -> Result<(), NemesisError> {
        let budget_end = self.started + options.duration;
        let mut round = 0usize;
        'rounds: loop {
            for step in 0..5 {
                if Instant::now() + FAULT_TIME_MIN > budget_end {
                    break 'rounds;
                }
                match step {
                    0 => self.pause_follower(round).await?,
                    1 => self.pause_leader().await?,
                    2 => self.kill_and_restart(round).await?,
                    3 => self.isolate_leader().await?,
                    _ => self.flood(options.flood_requests, true).await?,
                }
                let exited = self.processes.exited();
                if !exited.is_empty() {
                    return Err(NemesisError::Setup(format!(
                        "processes exited on their own: {}",
                        exited.join(", ")
                    )));
                }
                tokio::time::sleep(CALM).await;
            }
            round += 1;
        }
        Ok(())
    }

    fn record(&mut self, kind: &str, node: usize, at: f64, observed: String) {
        let record = FaultRecord {
            kind: kind.to_string(),
            node,
            at_seconds: at,
            lasted_seconds: self.elapsed_seconds() - at,
            observed,
        };
        tracing::info!(%record, "nemesis: fault");
        self.faults.push(record);
    }

    /// SIGSTOP a follower until the leader evicts it (past the eviction threshold), hold it
    /// three thresholds, SIGCONT, and wait until it is active again (`Rejoin`, `CatchUp`).
    async fn pause_follower(&mut self, round: usize) -> Result<(), NemesisError> {
        let leader = self.wait_for_leader(None).await?;
        let follower = (leader + 1 + round % (MASTERS - 1)) % MASTERS;
        let at = self.elapsed_seconds();
        let threshold = ticks(protocol().eviction_threshold * protocol().heartbeat_interval_ticks);
        self.signal(follower, Signal::SIGSTOP)?;
        self.pauses += 1;
        let node = follower as NodeId;
        let evicted = self
            .wait_leader_status(threshold * 40, |status| status.evicted.contains(&node))
            .await;
        tokio::time::sleep(threshold * 3).await;
        self.signal(follower, Signal::SIGCONT)?;
        let rejoined = self
            .wait_leader_status(Duration::from_secs(20), |status| {
                status.active.contains(&node)
            })
            .await;
        let observed = format!(
            "evicted {}; active again {}",
            report::after(evicted),
            report::after(rejoined)
        );
        self.record("sigstop-follower", follower, at, observed);
        Ok(())
    }

    /// SIGSTOP the leader until the others elect another, hold three election timeouts, SIGCONT.
    async fn pause_leader(&mut self) -> Result<(), NemesisError> {
        let leader = self.wait_for_leader(None).await?;
        let at = self.elapsed_seconds();
        self.signal(leader, Signal::SIGSTOP)?;
        self.pauses += 1;
        let elected = Instant::now();
        let successor = self.wait_for_leader(Some(leader)).await;
        let took = elected.elapsed();
        tokio::time::sleep(ticks(protocol().election_timeout_ticks * 2)).await;
        self.signal(leader, Signal::SIGCONT)?;
        let successor = successor?;
        let observed = format!(
            "master {successor} elected after {:.2} s",
            took.as_secs_f64()
        );
        self.record("sigstop-leader", leader, at, observed);
        Ok(())
    }

    /// SIGKILL a master (the leader on even rounds, a follower on odd ones) and restart it from
    /// its data directory a second later; wait until it answers `/status` again.
    async fn kill_and_restart(&mut self, round: usize) -> Result<(), NemesisError> {
        let leader = self.wait_for_leader(None).await?;
        let node = if round % 2 == 0 {
            leader
        } else {
            (leader + 2) % MASTERS
        };
        let at = self.elapsed_seconds();
        let index = self.masters[node].0;
        self.processes.kill(index)?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.processes.restart(index)?;
        let restarted = Instant::now();
        let mut answered = None;
        while restarted.elapsed() < LEADER_WAIT {
            if self.status(node).await.is_some() {
                answered = Some(restarted.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let role = if node == leader { "leader" } else { "follower" };
        let observed = format!("was {role}; serving again {}", report::after(answered));
        self.record("sigkill-restart", node, at, observed);
        Ok(())
    }

    /// Cuts the leader off from every other master (the proxy still reaches it) until the others
    /// elect another leader, holds two election timeouts, heals.
    async fn isolate_leader(&mut self) -> Result<(), NemesisError> {
        let leader = self.wait_for_leader(None).await?;
        let at = self.elapsed_seconds();
        self.links.isolate(leader, true);
        let cut = Instant::now();
        let successor = self.wait_for_leader(Some(leader)).await;
        let took = cut.elapsed();
        tokio::time::sleep(ticks(protocol().election_timeout_ticks * 2)).await;
        self.links.isolate(leader, false);
        let successor = successor?;
        let observed = format!(
            "master {successor} elected after {:.2} s without it",
            took.as_secs_f64()
        );
        self.record("isolate-leader", leader, at, observed);
        Ok(())
    }

    /// Floods the proxy with wrong-cluster requests, reading its RSS before and after;
    /// `measured`: a fault of the schedule (the warm-up flood is not one, but is checked too).
    async fn flood(&mut self, requests: u64, measured: bool) -> Result<(), NemesisError> {
        let proxy_index = self.proxy.0;
        let at = self.elapsed_seconds();
        let before = self.processes.resident_bytes(proxy_index)?;
        let result = workload::wrong_cluster_flood(
            &self.proxy.1.listen.to_string(),
            requests,
            FLOOD_CONNECTIONS,
            FLOOD_BATCH,
        )
        .await;
        // Let the proxy finish closing the flood's connections before measuring.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = self.processes.resident_bytes(proxy_index)?;
        let flood = FloodRecord {
            sent: result.sent,
            refused: result.refused,
            error: result.error,
            measured,
            rss_before_bytes: before,
            rss_after_bytes: after,
        };
        if measured {
            let observed = format!(
                "{} sent, {} refused UnknownCluster; proxy RSS {:.1} → {:.1} MiB",
                flood.sent,
                flood.refused,
                report::mebibytes(before),
                report::mebibytes(after)
            );
            self.record("wrong-cluster-flood", MASTERS, at, observed);
        }
        self.floods.push(flood);
        Ok(())
    }

    /// Ends every fault: links healed, every master thawed, a leader followed by a quorum.
    async fn heal(&mut self) -> Result<(), NemesisError> {
        self.links.heal_all();
        for node in 0..MASTERS {
            self.signal(node, Signal::SIGCONT)?;
        }
        self.wait_for_leader(None).await.map(|_| ())
    }

    /// Waits for the proxy's ledgers to settle, stops every process, runs the checks.
    async fn finish(
        mut self,
        options: &NemesisOptions,
        finished: Finished,
    ) -> Result<NemesisReport, NemesisError> {
        let deadline = Instant::now() + ticks(protocol().request_timeout_ticks * 3);
        let mut ledgers = None;
        while Instant::now() < deadline {
            ledgers = proxy_ledgers(self.proxy.1.http).await;
            if ledgers.is_some_and(|(ledger, watches)| ledger.in_flight == 0 && watches.open == 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let unexpected_exits = self.processes.exited();
        let forced_stops = self.processes.stop_all(Duration::from_secs(10));
        Ok(report::check(report::RunFacts {
            options: options.clone(),
            keys: finished.settings.keys,
            records: finished.records,
            final_reads: finished.final_reads,
            ledger: ledgers.map(|(ledger, _)| ledger),
            watch_ledger: ledgers.map(|(_, watches)| watches),
            revisioned: finished.revisioned,
            faults: std::mem::take(&mut self.faults),
            floods: std::mem::take(&mut self.floods),
            pauses: self.pauses,
            unexpected_exits,
            forced_stops,
            schedule_seconds: self.started.elapsed().as_secs_f64(),
        }))
    }
}

/// The parts of the proxy's `/status` the nemesis checks.
#[derive(serde::Deserialize)]
struct ProxyLedgers {
    ledger: vigil_core::LedgerCounters,
    watches: vigil_core::WatchLedgerCounters,
}

/// The proxy's request and watch ledgers, if its `/status` answers.
async fn proxy_ledgers(
    http: SocketAddr,
) -> Option<(vigil_core::LedgerCounters, vigil_core::WatchLedgerCounters)> {
    let body = status::http_get(http, "/status", STATUS_TIMEOUT)
        .await
        .ok()?;
    let ledgers: ProxyLedgers = serde_json::from_str(&body).ok()?;
    Some((ledgers.ledger, ledgers.watches))
}
