//! The fault schedule in the simulation: what each fault kind does when its window starts and
//! ends ([`World::apply_fault`], one row per kind), with the faults that need no state of their
//! own: message loss, pauses (a `pause` freezes a follower, a `pause-leader` the leader),
//! crashes, request floods, bursts and timeouts. The link faults (`link_faults.rs`) and the
//! faults aimed at the leader (`leader_faults.rs`) have their own files.

use vigil_core as core;

use super::workload::get;
use super::world::{Node, World};
use super::{BURST_REQUESTS, CLUSTER, FLOOD_REQUESTS, WRONG_CLUSTER};
use crate::faults::{Fault, FaultKind};

impl World {
    /// Starts and ends the faults whose window begins or ends at this tick.
    pub(super) fn apply_fault(&mut self, fault: &Fault) {
        let node = fault.node % self.protocol.masters;
        let start = self.tick == fault.start_tick;
        let end = self.tick == fault.start_tick + fault.duration_ticks;
        if !start && !end {
            return;
        }
        if start {
            self.faults_applied.push(fault.to_string());
        }
        match (fault.kind, start) {
            (FaultKind::Drop, true) => self.loss_per_mille = 300,
            (FaultKind::Drop, false) => self.loss_per_mille = 0,
            (FaultKind::Partition, true) => self.isolate(Node::Master(node)),
            (FaultKind::Partition, false) => self.reconnect(Node::Master(node)),
            (FaultKind::Pause, true) => self.pause_start(fault, node),
            (FaultKind::PauseLeader, true) => self.pause_leader_start(fault, node),
            (FaultKind::Pause | FaultKind::PauseLeader, false) => self.pause_end(fault, node),
            (FaultKind::Crash, true) => self.crash_start(fault, node),
            (FaultKind::Crash, false) => self.crash_end(fault, node),
            (FaultKind::WrongCluster, true) => self.flood(),
            (FaultKind::Overload, true) => self.burst(),
            (FaultKind::Timeout, true) => self.timeout_start(fault),
            (FaultKind::Timeout, false) => self.hold_proxy_until = None,
            (FaultKind::StaleAck, true) => self.stale_ack_start(fault.start_tick),
            (FaultKind::SlowDisk, true) => self.slow_disk_start(fault),
            (FaultKind::SlowDisk, false) => self.slow_disk_end(fault),
            (FaultKind::Reproposal, true) => self.reproposal_start(fault),
            (FaultKind::Reproposal, false) => self.reproposal_end(fault),
            (FaultKind::StaleAck, false) => self.cut.clear(),
            (FaultKind::WrongCluster | FaultKind::Overload, false) => {}
        }
    }

    /// `pause`: freezes the master the fault aims at, or a follower if that one leads
    /// ([`World::pause_target`]), until the window ends.
    fn pause_start(&mut self, fault: &Fault, node: u64) {
        let target = self.pause_target(node);
        if target != node {
            self.faults_applied
                .push(format!("pause: m{node} leads, m{target} paused instead"));
        }
        self.paused_by_fault
            .insert((fault.start_tick, fault.node), target);
        self.masters[target as usize].paused = true;
    }

    /// `pause-leader`: freezes the running leader (the planned master if none leads).
    fn pause_leader_start(&mut self, fault: &Fault, node: u64) {
        let target = self.leader_now().unwrap_or(node);
        if target != node {
            self.faults_applied
                .push(format!("pause-leader: m{target} leads, paused"));
        }
        self.paused_by_fault
            .insert((fault.start_tick, fault.node), target);
        self.masters[target as usize].paused = true;
    }

    /// The end of a `pause` or `pause-leader`: the master it froze resumes.
    fn pause_end(&mut self, fault: &Fault, node: u64) {
        let key = (fault.start_tick, fault.node);
        let target = self.paused_by_fault.remove(&key).unwrap_or(node);
        self.resume(target);
    }

    /// `crash`: crashes the master the fault aims at, or, on a seed with the revisioned
    /// clients, the master the proxy's watches stream from (so that the watches resume at
    /// another, §17.6), until the window ends.
    fn crash_start(&mut self, fault: &Fault, node: u64) {
        let subscribed = self
            .kv
            .as_ref()
            .and(self.proxy.subscription(super::CLUSTER))
            .map(|(master, _)| master)
            .filter(|master| self.masters[*master as usize].core.is_some());
        let target = subscribed.unwrap_or(node);
        if target != node {
            self.faults_applied.push(format!(
                "crash: m{target}, the watches' master, instead of m{node}"
            ));
        }
        self.crashed_by_fault
            .insert((fault.start_tick, fault.node), target);
        self.crash(target);
    }

    /// The end of a `crash`: the master it crashed restarts.
    fn crash_end(&mut self, fault: &Fault, node: u64) {
        let key = (fault.start_tick, fault.node);
        let target = self.crashed_by_fault.remove(&key).unwrap_or(node);
        self.start_master(target);
    }

    /// `wrong-cluster`: a flood of requests naming a cluster the proxy does not serve.
    fn flood(&mut self) {
        for index in 0..FLOOD_REQUESTS as u64 {
            self.request(100, 1 + index, WRONG_CLUSTER, get("k0"));
        }
    }

    /// `overload`: a burst of requests above the proxy's `in_flight_max`.
    fn burst(&mut self) {
        for index in 0..BURST_REQUESTS as u64 {
            self.request(200, 1 + index, CLUSTER, get("k1"));
        }
    }

    /// `timeout`: holds (does not lose) what the proxy sends until the window ends, longer than
    /// the request timeout, and sends one request: it times out, and its answer arrives late
    /// (§9.4.6).
    fn timeout_start(&mut self, fault: &Fault) {
        self.hold_proxy_until = Some(fault.start_tick + fault.duration_ticks);
        self.request(300, 1, CLUSTER, get("k0"));
    }

    /// The master a `pause` aimed at `node` freezes: `node` itself unless it leads, else the
    /// next running, unpaused master (by id, wrapping) that does not lead; `node` if none does.
    pub(super) fn pause_target(&self, node: u64) -> u64 {
        let masters = self.protocol.masters;
        let follows = |candidate: u64| {
            let host = &self.masters[candidate as usize];
            let role = host.core.as_ref().map(core::Master::role);
            !host.paused && role.is_some_and(|role| role != core::Role::Leader)
        };
        if self.masters[node as usize]
            .core
            .as_ref()
            .map(core::Master::role)
            != Some(core::Role::Leader)
        {
            return node;
        }
        (1..masters)
            .map(|offset| (node + offset) % masters)
            .find(|candidate| follows(*candidate))
            .unwrap_or(node)
    }
}
