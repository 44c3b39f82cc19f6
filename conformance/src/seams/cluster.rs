//! The in-process cluster of `vigil::cluster` (masters and a proxy on 127.0.0.1, real storage)
//! with fault switches per master: what mode `tcp` and the host's fault tests drive.
//!
//! Each master runs on tokio TCP and the real disk wrapped by its [`MasterFaults`], also after
//! a restart. A paused master answers nothing, as under `SIGSTOP`: its status is `None` and
//! the leader is looked for among the others. Stopping a paused master (a kill, the
//! shutdown) opens its gate first, so that its tasks see the stop and close its storage.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use vigil::cluster::{ClusterError, ClusterOptions, LocalCluster};
use vigil::platform::{StdFileSystem, TokioNetwork};
use vigil_core::{LedgerCounters, MasterStatus, NodeId};

use crate::seams::file_system::FaultyFileSystem;
use crate::seams::network::FaultyNetwork;
use crate::seams::MasterFaults;

/// A running in-process cluster whose masters' links, disks and event loops can be faulted.
#[derive(Debug)]
pub struct FaultyCluster {
    cluster: LocalCluster<FaultyNetwork<TokioNetwork>, FaultyFileSystem<StdFileSystem>>,
    faults: Vec<MasterFaults>,
}

impl FaultyCluster {
    /// Binds every listener, then starts the masters (each on its faulty platform) and the
    /// proxy.
    pub async fn start(options: ClusterOptions) -> Result<FaultyCluster, ClusterError> {
        let faults: Vec<MasterFaults> = (0..options.masters).map(|_| MasterFaults::new()).collect();
        let platforms = faults
            .iter()
            .map(|faults| faults.platform((TokioNetwork, StdFileSystem)))
            .collect();
        let cluster = LocalCluster::start_on(options, platforms).await?;
        Ok(FaultyCluster { cluster, faults })
    }

    /// Master `node`'s fault switches.
    pub fn faults(&self, node: NodeId) -> Result<&MasterFaults, ClusterError> {
        self.faults
            .get(node as usize)
            .ok_or(ClusterError::NotRunning(node))
    }

    /// Freezes a master: none of its tasks runs until [`FaultyCluster::resume`] (a
    /// stop-the-world pause, `docs/protocol.md` §7.1).
    pub fn pause(&self, node: NodeId) -> Result<(), ClusterError> {
        self.faults(node)?.gate.close();
        Ok(())
    }

    /// Thaws a paused master: its overdue ticks fire before its queued messages, and from the
    /// pause threshold on its core resumes (check-quorum first, §7.2).
    pub fn resume(&self, node: NodeId) -> Result<(), ClusterError> {
        self.faults(node)?.gate.open();
        Ok(())
    }

    /// Makes a master's disk stall: the disk work that starts within `duration` waits until
    /// then (a slow fsync).
    pub fn stall_storage(&self, node: NodeId, duration: Duration) -> Result<(), ClusterError> {
        self.faults(node)?.disk.stall_for(duration);
        Ok(())
    }

    /// Makes a master's disk fail: its next durable write errors and the master stops.
    pub fn fail_storage(&self, node: NodeId) -> Result<(), ClusterError> {
        self.faults(node)?.disk.fail();
        Ok(())
    }

    /// Cuts (or restores) only what `from` sends to `to`; `to`'s messages to `from` still
    /// arrive (an asymmetric partition).
    pub fn cut_link_one_way(
        &self,
        from: NodeId,
        to: NodeId,
        cut: bool,
    ) -> Result<(), ClusterError> {
        let address = self
            .master_addresses()
            .get(to as usize)
            .ok_or(ClusterError::NotRunning(to))?
            .to_string();
        self.faults(from)?.links.set_cut(&address, cut);
        Ok(())
    }

    /// Cuts (or restores) the link between two masters in both directions.
    pub fn cut_link(&self, a: NodeId, b: NodeId, cut: bool) -> Result<(), ClusterError> {
        self.cut_link_one_way(a, b, cut)?;
        self.cut_link_one_way(b, a, cut)
    }

    fn is_paused(&self, node: NodeId) -> bool {
        self.faults(node)
            .is_ok_and(|faults| faults.gate.is_closed())
    }

    /// A master's status; `None` if it is stopped or paused.
    pub async fn status(&self, node: NodeId) -> Option<MasterStatus> {
        if self.is_paused(node) {
            return None;
        }
        self.cluster.status(node).await
    }

    /// The leader that a quorum of the running masters follows, if any; a paused master
    /// answers nothing and is left out.
    pub async fn leader(&self) -> Option<NodeId> {
        let masters = self.faults.len() as NodeId;
        let answering: Vec<NodeId> = (0..masters).filter(|node| !self.is_paused(*node)).collect();
        self.cluster.leader_among(answering).await
    }

    /// Waits until a leader is followed by a quorum (polling the masters, with a deadline).
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader().await {
                return Ok(leader);
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Timeout(timeout, "a leader"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Crashes a master (opening its gate first if it is paused); its data directory stays.
    /// Returns the error the master had stopped on, if it had.
    pub async fn kill(&mut self, node: NodeId) -> Result<(), ClusterError> {
        self.faults(node)?.gate.open();
        self.cluster.kill(node).await
    }

    /// Restarts a killed master from its data directory on its old address and its faulty
    /// platform (its cuts and disk faults still hold).
    pub async fn restart(&mut self, node: NodeId) -> Result<(), ClusterError> {
        self.cluster.restart(node).await
    }

    /// True while a master's task runs (false once killed, or stopped by an error).
    pub fn is_running(&self, node: NodeId) -> bool {
        self.cluster.is_running(node)
    }

    /// The proxy's address (what clients connect to).
    pub fn proxy_address(&self) -> SocketAddr {
        self.cluster.proxy_address()
    }

    /// The masters' addresses, by id.
    pub fn master_addresses(&self) -> &[SocketAddr] {
        self.cluster.master_addresses()
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        self.cluster.name()
    }

    /// The proxy's ledger as last published.
    pub fn ledger(&self) -> LedgerCounters {
        self.cluster.ledger()
    }

    /// The proxy's subscription: the master its watches stream from and the revision it
    /// brings next; none while the proxy holds no watch.
    pub fn subscription(&self) -> Option<(NodeId, vigil_core::kv_types::Revision)> {
        self.cluster.subscription()
    }

    /// The proxy's watch ledger as last published.
    pub fn watch_ledger(&self) -> vigil_core::WatchLedgerCounters {
        self.cluster.watch_ledger()
    }

    /// Opens every gate, then stops everything and waits for the masters to close their
    /// storage.
    pub async fn shutdown(self) -> Result<(), ClusterError> {
        for faults in &self.faults {
            faults.gate.open();
        }
        self.cluster.shutdown().await
    }
}
