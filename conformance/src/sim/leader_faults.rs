//! The simulation's faults aimed at the leader that may crash it: `slow-disk` (the leader's
//! writes become durable late, so followers can commit an entry before the leader's own write
//! is durable; it crashes then, losing the write) and `reproposal` (the leader crashes holding
//! an uncommitted entry, which the next leader re-proposes while reads arrive).

use vigil_core as core;

use super::workload::get;
use super::world::World;
use super::{CLUSTER, DISK_LATENCY_TICKS, REPROPOSAL_CLIENT, SLOW_DISK_CLIENT};
use crate::faults::Fault;

/// A running fault aimed at the leader that may crash it (`slow-disk`, `reproposal`): the
/// master it aims at, and whether it crashed it (it restarts when the window ends).
#[derive(Clone, Copy, Debug)]
pub(super) struct AimedAtLeader {
    pub(super) target: u64,
    pub(super) crashed: bool,
}

impl World {
    /// `reproposal`: every `Accepted` takes [`ACCEPTED_DELAY_TICKS`] while the window lasts,
    /// and a client writes; once the leader holds an entry its followers accepted and nobody
    /// committed, it crashes (`World::reproposal_crashes`). The next leader's phase 1 finds that
    /// entry and re-proposes it, and while its `Accepted`s are slow, `Get`s (one every other
    /// tick from the crash on) reach a leader whose re-proposed slot is not yet committed: they
    /// must go through the log (§9.2, `read-before-own-ballot-commit`).
    pub(super) fn reproposal_start(&mut self, fault: &Fault) {
        let aimed = self.aim_at_leader(fault);
        self.reproposals
            .insert((fault.start_tick, fault.node), aimed);
        let put = core::Operation::Put {
            key: b"k1".to_vec(),
            value: b"tail".to_vec(),
        };
        self.request(REPROPOSAL_CLIENT, 1, CLUSTER, put);
    }

    pub(super) fn reproposal_end(&mut self, fault: &Fault) {
        if let Some(aimed) = self.reproposals.remove(&(fault.start_tick, fault.node)) {
            self.restart_if_crashed(aimed);
        }
    }

    /// The master a fault aimed at the leader targets: the running leader, else the planned
    /// node (said in the run's fault list when they differ).
    pub(super) fn aim_at_leader(&mut self, fault: &Fault) -> AimedAtLeader {
        let node = fault.node % self.protocol.masters;
        let target = self.leader_now().unwrap_or(node);
        if target != node {
            self.faults_applied
                .push(format!("{}: m{target} leads, aimed at it", fault.kind));
        }
        AimedAtLeader {
            target,
            crashed: false,
        }
    }

    pub(super) fn restart_if_crashed(&mut self, aimed: AimedAtLeader) {
        if aimed.crashed && self.masters[aimed.target as usize].core.is_none() {
            self.start_master(aimed.target);
        }
    }

    /// `reproposal`: the aimed-at leader crashes once it holds an uncommitted entry; after
    /// that, a `Get` every other tick.
    pub(super) fn reproposal_crashes(&mut self) {
        let running: Vec<((u64, u64), AimedAtLeader)> = self
            .reproposals
            .iter()
            .map(|(key, reproposal)| (*key, *reproposal))
            .collect();
        for (key, reproposal) in running {
            if reproposal.crashed {
                if self.tick % 2 == 0 {
                    self.reproposal_reads += 1;
                    let request_id = 1 + self.reproposal_reads;
                    self.request(REPROPOSAL_CLIENT, request_id, CLUSTER, get("k1"));
                }
                continue;
            }
            let host = &self.masters[reproposal.target as usize];
            let Some(master) = host.core.as_ref() else {
                continue;
            };
            if host.paused
                || master.role() != core::Role::Leader
                || master.last_slot() <= master.commit_index()
            {
                continue;
            }
            self.faults_applied.push(format!(
                "reproposal: m{} holds uncommitted slot {}; crashed",
                reproposal.target,
                master.last_slot()
            ));
            self.crash(reproposal.target);
            if let Some(running) = self.reproposals.get_mut(&key) {
                running.crashed = true;
            }
        }
    }

    /// `slow-disk`: the leader's writes take [`DISK_LATENCY_TICKS`] to become durable while
    /// the window lasts (its `Accept`s leave at once, §2.1), and a client writes, so that the
    /// followers' acknowledgements can commit an entry before the leader's own write is
    /// durable. If that happens, the leader crashes at the next tick, losing the write
    /// (`World::crash_slow_disks`), and restarts when the window ends.
    pub(super) fn slow_disk_start(&mut self, fault: &Fault) {
        let aimed = self.aim_at_leader(fault);
        self.masters[aimed.target as usize].disk_latency_ticks = DISK_LATENCY_TICKS;
        self.slow_disks
            .insert((fault.start_tick, fault.node), aimed);
        let put = core::Operation::Put {
            key: b"k0".to_vec(),
            value: b"slow".to_vec(),
        };
        self.request(SLOW_DISK_CLIENT, 1, CLUSTER, put);
    }

    pub(super) fn slow_disk_end(&mut self, fault: &Fault) {
        if let Some(aimed) = self.slow_disks.remove(&(fault.start_tick, fault.node)) {
            self.masters[aimed.target as usize].disk_latency_ticks = 0;
            self.restart_if_crashed(aimed);
        }
    }

    /// `slow-disk`: a slowed master that has committed an entry its own write has not yet
    /// made durable crashes: a write is durable only at its `Persist`, so the restarted master
    /// lacks the entry its followers hold (`docs/reliability.md` §5, rule 1).
    pub(super) fn crash_slow_disks(&mut self) {
        let running: Vec<((u64, u64), u64)> = self
            .slow_disks
            .iter()
            .filter(|(_, slow)| !slow.crashed)
            .map(|(key, slow)| (*key, slow.target))
            .collect();
        for (key, target) in running {
            let host = &self.masters[target as usize];
            let (Some(master), Some(lowest)) = (host.core.as_ref(), host.lowest_pending_slot())
            else {
                continue;
            };
            if host.paused || master.commit_index() < lowest {
                continue;
            }
            self.faults_applied.push(format!(
                "slow-disk: m{target} committed slot {lowest} before its own write; crashed"
            ));
            self.crash(target);
            if let Some(slow) = self.slow_disks.get_mut(&key) {
                slow.crashed = true;
            }
        }
    }
}
