//! Faults through the host's platform seam (`vigil::platform`): the service code runs
//! unchanged on a network and a file system that conformance wraps, and the wrappers make
//! one master's links lose what it sends, its disk slow, dead or full, or the whole master
//! paused as by `SIGSTOP`. The service carries no fault hook of its own.
//!
//! [`MasterFaults`] is one master's set of switches; [`MasterFaults::platform`] wraps the
//! platform the master runs on (tokio TCP and the real disk in mode `tcp` and the host tests,
//! turmoil's in mode `turmoil`). [`cluster::FaultyCluster`] is the in-process cluster of
//! `vigil::cluster` with a set per master.

pub mod cluster;
pub mod file_system;
pub mod network;
pub mod pause;

use file_system::{DiskFaults, FaultyFileSystem};
use network::{FaultyNetwork, LinkCuts};
use pause::PauseGate;

/// The fault switches of one master: its pause gate, its link cuts and its disk.
#[derive(Clone, Debug, Default)]
pub struct MasterFaults {
    /// Closed: the master is paused.
    pub gate: PauseGate,
    /// What the master sends on the links it dials, cut by address.
    pub links: LinkCuts,
    /// Its disk's stall, failure or fill level.
    pub disk: DiskFaults,
}

impl MasterFaults {
    /// No fault: an open gate, no cut, a healthy disk.
    pub fn new() -> MasterFaults {
        MasterFaults::default()
    }

    /// `(network, file_system)` with these faults, for `vigil::master::run_on` or
    /// `vigil::cluster::LocalCluster::start_on`.
    pub fn platform<N, F>(
        &self,
        (network, file_system): (N, F),
    ) -> (FaultyNetwork<N>, FaultyFileSystem<F>) {
        (
            FaultyNetwork::new(network, self.links.clone(), self.gate.clone()),
            FaultyFileSystem::new(file_system, self.disk.clone()),
        )
    }
}
