//! The turmoil run's fault schedule: each fault's start and end, applied between simulation
//! steps, in the host's terms (turmoil's links held or slowed, a host crashed or bounced, a
//! master's platform switches, `crate::seams`).

use std::collections::BTreeMap;
use std::time::Duration;

use vigil::proxy::LedgerView;

use super::{leads, master_address, master_name, ticks, MasterSlot};
use crate::faults::{Fault, FaultKind, FaultPlan, Runner};
use crate::sim::CLUSTER;

/// What the schedule looks at to pick a fault's master: the masters' slots, and on a seed
/// with watchers the proxy's ledger (the master its subscription streams from).
pub(super) struct Hosts<'a> {
    /// The masters' slots, by id.
    pub(super) slots: &'a [MasterSlot],
    /// The proxy's ledger, when a crash aims at the watches' master.
    pub(super) watched: Option<&'a LedgerView>,
}

/// A fault's start or end, as the harness applies it between simulation steps.
#[derive(Clone, Debug)]
struct Step {
    tick: u64,
    fault: Fault,
    start: bool,
}

/// The plan's starts and ends in time order.
pub(super) struct Schedule {
    steps: Vec<Step>,
    next: usize,
    masters: u64,
    /// The run's largest link latency, restored when a `drop` window ends.
    latency_max: Duration,
    /// The master each running `pause` froze, by the fault's (start tick, node): a pause asks
    /// for eviction and rejoin, which only a follower shows (a paused leader steps down on
    /// resuming, `docs/protocol.md` §7.2), so a pause aimed at the leader freezes the next
    /// follower instead, as in `sim`.
    paused_by_fault: BTreeMap<(u64, u64), u64>,
    /// The master each running `crash` crashed, by the fault's (start tick, node): on a seed
    /// with watchers, the one the proxy's subscription streams from, so that its watches
    /// resume at another master (`docs/protocol.md` §17.6), as in `sim`.
    crashed_by_fault: BTreeMap<(u64, u64), u64>,
}

impl Schedule {
    pub(super) fn new(plan: &FaultPlan, masters: u64, latency_max: Duration) -> Schedule {
        let mut steps: Vec<Step> = plan
            .faults
            .iter()
            .flat_map(|fault| {
                let end = fault.start_tick + fault.duration_ticks;
                [(fault.start_tick, true), (end, false)].map(|(tick, start)| Step {
                    tick,
                    fault: fault.clone(),
                    start,
                })
            })
            .collect();
        steps.sort_by_key(|step| (step.tick, step.start));
        Schedule {
            steps,
            next: 0,
            masters,
            latency_max,
            paused_by_fault: BTreeMap::new(),
            crashed_by_fault: BTreeMap::new(),
        }
    }

    /// Applies every start and end due by `now_ticks`, in order.
    pub(super) fn apply_due(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        hosts: &Hosts<'_>,
        now_ticks: u64,
        applied: &mut Vec<String>,
    ) {
        while let Some(step) = self.steps.get(self.next) {
            if step.tick > now_ticks {
                return;
            }
            let step = step.clone();
            self.next += 1;
            if step.start {
                applied.push(step.fault.to_string());
            }
            self.apply(sim, hosts, &step, applied);
        }
    }

    /// The master a `pause` step acts on: at its start the planned one unless it leads (then
    /// the next master by id that does not), at its end the one its start froze.
    fn pause_node(&mut self, slots: &[MasterSlot], step: &Step, applied: &mut Vec<String>) -> u64 {
        let planned = step.fault.node % self.masters;
        let key = (step.fault.start_tick, step.fault.node);
        if !step.start {
            return self.paused_by_fault.remove(&key).unwrap_or(planned);
        }
        let target = if step.fault.kind == FaultKind::PauseLeader {
            (0..self.masters)
                .find(|candidate| leads(&slots[*candidate as usize]))
                .unwrap_or(planned)
        } else if leads(&slots[planned as usize]) {
            (1..self.masters)
                .map(|offset| (planned + offset) % self.masters)
                .find(|candidate| !leads(&slots[*candidate as usize]))
                .unwrap_or(planned)
        } else {
            planned
        };
        if target != planned {
            applied.push(format!(
                "{}: m{planned} planned, m{target} paused",
                step.fault.kind
            ));
        }
        self.paused_by_fault.insert(key, target);
        target
    }

    /// The master a `crash` step acts on: at its start the one the proxy's subscription
    /// streams from, on a seed with watches open (else the planned one), at its end the one its
    /// start crashed.
    fn crash_node(&mut self, hosts: &Hosts<'_>, step: &Step, applied: &mut Vec<String>) -> u64 {
        let planned = step.fault.node % self.masters;
        let key = (step.fault.start_tick, step.fault.node);
        if !step.start {
            return self.crashed_by_fault.remove(&key).unwrap_or(planned);
        }
        let streaming = hosts
            .watched
            .and_then(|ledger| ledger.subscription(CLUSTER))
            .map(|(master, _)| master)
            .filter(|master| *master < self.masters);
        let target = streaming.unwrap_or(planned);
        if target != planned {
            applied.push(format!(
                "{}: m{planned} planned, m{target} crashed (the watches' master)",
                step.fault.kind
            ));
        }
        self.crashed_by_fault.insert(key, target);
        target
    }

    fn apply(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        hosts: &Hosts<'_>,
        step: &Step,
        applied: &mut Vec<String>,
    ) {
        let slots = hosts.slots;
        if !step.fault.kind.runs_on(Runner::Turmoil) {
            if step.start {
                applied.push(format!(
                    "{} not run on turmoil (core simulation only)",
                    step.fault.kind
                ));
            }
            return;
        }
        let node = match step.fault.kind {
            FaultKind::Pause | FaultKind::PauseLeader => self.pause_node(slots, step, applied),
            FaultKind::Crash => self.crash_node(hosts, step, applied),
            _ => step.fault.node % self.masters,
        };
        let name = master_name(node);
        let others: Vec<String> = (0..self.masters)
            .filter(|other| *other != node)
            .map(master_name)
            .collect();
        let faults = slots[node as usize].faults();
        match (step.fault.kind, step.start) {
            (FaultKind::Drop, cut) => {
                // The host's own loss: what this master sends to the others is lost on the
                // links it dials (`seams::network`); the links also get slower while it lasts.
                for other in 0..self.masters {
                    if other != node {
                        faults.links.set_cut(&master_address(other), cut);
                        let latency = if cut { ticks(2) } else { self.latency_max };
                        sim.set_link_max_message_latency(
                            name.as_str(),
                            master_name(other).as_str(),
                            latency,
                        );
                    }
                }
            }
            (FaultKind::Partition, start) => hold_links(sim, &name, &others, start),
            (FaultKind::Pause | FaultKind::PauseLeader, true) => {
                faults.gate.close();
                hold_links(sim, &name, &others, true);
            }
            (FaultKind::Pause | FaultKind::PauseLeader, false) => {
                hold_links(sim, &name, &others, false);
                faults.gate.open();
            }
            (FaultKind::Crash, true) => sim.crash(name.as_str()),
            (FaultKind::Crash, false) => sim.bounce(name.as_str()),
            (FaultKind::Timeout, start) => {
                let masters: Vec<String> = (0..self.masters).map(master_name).collect();
                for master in &masters {
                    if start {
                        sim.hold("proxy", master.as_str());
                    } else {
                        sim.release("proxy", master.as_str());
                    }
                }
            }
            (FaultKind::StaleAck | FaultKind::SlowDisk | FaultKind::Reproposal, _) => {
                unreachable!("left out above: FaultKind::runs_on(Runner::Turmoil)")
            }
            (FaultKind::WrongCluster | FaultKind::Overload, _) => {}
        }
    }
}

/// Holds (or releases) every link of master `name`: to the other masters and to the proxy.
fn hold_links(sim: &mut turmoil::Sim<'_>, name: &str, others: &[String], hold: bool) {
    let peers = others.iter().map(String::as_str).chain(["proxy"]);
    for peer in peers {
        if hold {
            sim.hold(name, peer);
        } else {
            sim.release(name, peer);
        }
    }
}
