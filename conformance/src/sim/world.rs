//! The simulated world: its parties, what each holds, and one tick of it (timers, the
//! workload, deliveries). The other files of `sim/` add to [`World`] one concern each.

use std::collections::{BTreeMap, VecDeque};

use vigil_core as core;

use super::hosts::MasterHost;
use super::kv_workload::{revisioned_seed, KvWorkload};
use super::leader_faults::AimedAtLeader;
use super::network::Flight;
use super::rng::Rng;
use super::sink::Sink;
use super::workload::Client;
use super::{CLUSTER, WORKLOAD_CLIENTS};
use crate::faults::WARMUP_TICKS;

/// A party of the simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Node {
    Master(u64),
    Proxy,
}

pub(super) struct World {
    pub(super) protocol: core::Config,
    pub(super) tick: u64,
    pub(super) rng: Rng,
    pub(super) masters: Vec<MasterHost>,
    pub(super) proxy: core::Proxy,
    pub(super) sinks: Vec<Sink>,
    pub(super) flights: VecDeque<Flight>,
    /// Links cut (from, to).
    pub(super) cut: Vec<(Node, Node)>,
    /// Per-mille loss on master links while a drop fault is active.
    pub(super) loss_per_mille: u64,
    /// While set, what the proxy sends is held until this tick (message hold and release).
    pub(super) hold_proxy_until: Option<u64>,
    /// `stale-ack`: links (from, to) whose messages are held until a tick (hold and release).
    pub(super) held_links: Vec<((Node, Node), u64)>,
    pub(super) clients: Vec<Client>,
    pub(super) requests_sent: usize,
    pub(super) workload_open: bool,
    pub(super) completions: BTreeMap<(u64, u64), u32>,
    pub(super) faults_applied: Vec<String>,
    /// The master each running `pause` froze, by the fault's (start tick, node): a pause asks
    /// for eviction and rejoin, which only a follower can show, so a pause aimed at the leader
    /// freezes a follower instead (`World::pause_target`).
    pub(super) paused_by_fault: BTreeMap<(u64, u64), u64>,
    /// The master each running `crash` crashed, by the fault's (start tick, node).
    pub(super) crashed_by_fault: BTreeMap<(u64, u64), u64>,
    /// Running `slow-disk` faults, by the fault's (start tick, node).
    pub(super) slow_disks: BTreeMap<(u64, u64), AimedAtLeader>,
    /// Running `reproposal` faults, by the fault's (start tick, node).
    pub(super) reproposals: BTreeMap<(u64, u64), AimedAtLeader>,
    /// `Get`s the `reproposal` client has sent.
    pub(super) reproposal_reads: u64,
    /// The revisioned clients, on the seeds that run them.
    pub(super) kv: Option<KvWorkload>,
    /// Masters whose connection to the proxy lost a subscription message (a cut link, a crashed
    /// master), with the clock of the lost send: the host sees each connection close
    /// (`World::close_lost_connections`), as TCP would show it.
    pub(super) lost_connections: Vec<(u64, u64)>,
}

impl World {
    pub(super) fn new(seed: u64, protocol: core::Config) -> World {
        let masters = protocol.masters;
        let mut sinks: Vec<Sink> = (0..masters)
            .map(|node| Sink::new(format!("m{node}")))
            .collect();
        sinks.push(Sink::new("p0".to_string()));
        let clusters = BTreeMap::from([(CLUSTER.to_string(), (0..masters).collect())]);
        let mut proxy =
            core::Proxy::new(0, protocol.clone(), clusters).expect("valid proxy config");
        proxy.set_tracing(true);
        let mut world = World {
            tick: 0,
            rng: Rng::new(seed),
            masters: Vec::new(),
            proxy,
            sinks,
            flights: VecDeque::new(),
            cut: Vec::new(),
            loss_per_mille: 0,
            hold_proxy_until: None,
            held_links: Vec::new(),
            clients: (0..WORKLOAD_CLIENTS)
                .map(|id| Client {
                    id: id + 1,
                    next_request_id: 1,
                    outstanding: None,
                    ready_tick: WARMUP_TICKS / 2,
                })
                .collect(),
            requests_sent: 0,
            workload_open: true,
            completions: BTreeMap::new(),
            faults_applied: Vec::new(),
            paused_by_fault: BTreeMap::new(),
            crashed_by_fault: BTreeMap::new(),
            slow_disks: BTreeMap::new(),
            reproposals: BTreeMap::new(),
            reproposal_reads: 0,
            kv: revisioned_seed(seed).then(|| KvWorkload::new(seed, WARMUP_TICKS / 2)),
            lost_connections: Vec::new(),
            protocol,
        };
        for node in 0..masters {
            let host = MasterHost {
                core: None,
                durable: core::DurableState::default(),
                paused: false,
                missed_ticks: 0,
                disk: VecDeque::new(),
                disk_latency_ticks: 0,
            };
            world.masters.push(host);
            world.start_master(node);
        }
        world
    }

    pub(super) fn step_tick(&mut self) {
        self.crash_slow_disks();
        self.reproposal_crashes();
        for node in 0..self.protocol.masters {
            self.complete_writes(node);
            let host = &mut self.masters[node as usize];
            match (&mut host.core, host.paused) {
                (None, _) => continue,
                (Some(_), true) => host.missed_ticks += 1,
                (Some(master), false) => {
                    master.tick();
                    self.drain_master(node, None);
                }
            }
        }
        self.proxy.tick();
        self.drain_proxy(None);
        self.workload();
        self.kv_workload();
        self.deliver_due();
    }

    /// Ends every fault (the drain phase).
    pub(super) fn heal(&mut self) {
        self.cut.clear();
        self.loss_per_mille = 0;
        self.hold_proxy_until = None;
        for node in 0..self.protocol.masters {
            if self.masters[node as usize].paused {
                self.resume(node);
            }
            if self.masters[node as usize].core.is_none() {
                self.start_master(node);
            }
        }
    }

    /// The running, unpaused master that leads now (the lowest id if several believe they do).
    pub(super) fn leader_now(&self) -> Option<u64> {
        (0..self.protocol.masters).find(|candidate| {
            let host = &self.masters[*candidate as usize];
            !host.paused && host.core.as_ref().map(core::Master::role) == Some(core::Role::Leader)
        })
    }
}
