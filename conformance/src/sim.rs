//! Deterministic simulation of `vigil-core`'s masters and proxy (mode `sim`): one thread, a
//! seeded network with latency and loss, logical ticks, and the faults of a [`FaultPlan`].
//!
//! What it runs is the real protocol code (`vigil_core::Master`, `vigil_core::Proxy`), driven
//! the way the tokio host drives it (`impl/node/src/master.rs`): each `Ready`'s messages sent,
//! its durable write applied (a synchronous disk), then `advance`, whose released messages leave
//! with the next `Ready`; a paused master's overdue ticks fired before its queued messages, a
//! crashed master rebuilt from its durable state, an eviction closing the leader's link to the
//! follower (what already reached the follower stays deliverable). What it does not run is the
//! host's tokio code (transport, storage, tasks): that is mode `tcp`; a turmoil simulation of
//! the host needs a transport seam in `impl/node` (see `docs/trace.md`).
//!
//! The in-memory sink stamps each event with the node's input number, a Lamport clock and, on
//! sends and receives, the message id; the same seed gives byte-identical trace files.

use std::collections::{BTreeMap, VecDeque};

use vigil_core as core;
use vigil_core::{Message, Peer};

use crate::faults::{Fault, FaultKind, FaultPlan, FAULT_SPACING_TICKS, WARMUP_TICKS};
use crate::trace::{Header, NodeTrace, TraceLine};

/// The served cluster's name in simulated runs.
pub const CLUSTER: &str = "local";
/// The cluster name the wrong-cluster flood uses.
pub const WRONG_CLUSTER: &str = "no-such-cluster";
/// Requests in one wrong-cluster flood.
pub const FLOOD_REQUESTS: usize = 12;
/// Requests in one overload burst (above the simulated `in_flight_max`).
pub const BURST_REQUESTS: usize = 10;
/// Closed-loop client connections of the steady workload.
pub const WORKLOAD_CLIENTS: u64 = 2;
/// Requests of the steady workload at most (the model numbers requests in a `u8`).
pub const WORKLOAD_REQUESTS_MAX: usize = 60;
/// Ticks after the last fault during which faults are healed and requests drain.
pub const DRAIN_TICKS: u64 = 60;
/// Delivery rounds per tick at most (each round delivers what the previous one sent).
pub const DELIVERY_ROUNDS_MAX: usize = 16;
/// How long every `Accepted` takes to arrive while a `reproposal` fault runs.
pub const ACCEPTED_DELAY_TICKS: u64 = 6;
/// The client id of the `Get`s a `reproposal` fault sends.
const REPROPOSAL_CLIENT: u64 = 600;
/// The client id of the write a `slow-disk` fault sends.
const SLOW_DISK_CLIENT: u64 = 500;
/// How long a write takes to become durable on a master's disk under `slow-disk`.
pub const DISK_LATENCY_TICKS: u64 = 4;
/// Ticks of a run without faults.
pub const QUIET_RUN_TICKS: u64 = 150;

/// The protocol configuration of simulated runs: the defaults with a shorter request timeout
/// and a small `in_flight_max`, so that timeouts and overload happen within a short run; with
/// this process's planted bugs (`planted.rs`).
pub fn protocol(masters: u64) -> core::Config {
    core::Config {
        masters,
        request_timeout_ticks: 20,
        in_flight_max: 8,
        mutations: crate::planted::planted(),
        ..core::Config::default()
    }
}

/// A simulated run's result: one trace per node and what happened.
#[derive(Debug)]
pub struct SimRun {
    /// The protocol configuration.
    pub protocol: core::Config,
    /// One trace per master, then the proxy's.
    pub traces: Vec<NodeTrace>,
    /// Faults injected, as printed.
    pub faults_applied: Vec<String>,
    /// Ticks simulated.
    pub ticks: u64,
}

/// A small deterministic generator (xorshift64*), so the run needs no other randomness.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

/// A party of the simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Node {
    Master(u64),
    Proxy,
}

/// A message in flight.
#[derive(Clone, Debug)]
struct Flight {
    from: Node,
    to: Node,
    message: Message,
    deliver_tick: u64,
    id: String,
    lamport: u64,
}

/// The in-memory sink of one node: stamps and keeps its lines.
struct Sink {
    node: String,
    lines: Vec<TraceLine>,
    lamport: u64,
    inputs: u64,
    sends: u64,
    /// Whether the current input began with a timer (a tick), which a second timer may join.
    input_is_tick: bool,
}

/// A master host: the core, its storage, and the host's fault state.
struct MasterHost {
    core: Option<core::Master>,
    durable: core::DurableState,
    paused: bool,
    missed_ticks: u64,
    /// Handled `Ready`s whose write is not yet durable, oldest first (the host's persist
    /// queue): each is applied to `durable` and advanced at its `due_tick`. Empty unless the
    /// disk is slow (`slow-disk`); a crash loses what is here.
    disk: VecDeque<PendingReady>,
    /// How long a write takes to become durable now (0: at once).
    disk_latency_ticks: u64,
}

/// A `Ready` whose durable write is in the host's persist queue.
struct PendingReady {
    ready: core::Ready,
    due_tick: u64,
}

impl MasterHost {
    /// The lowest slot of an entry whose write is still on its way to the disk.
    fn lowest_pending_slot(&self) -> Option<core::Slot> {
        self.disk
            .iter()
            .filter_map(|pending| pending.ready.durable.as_ref())
            .flat_map(|write| write.entries.iter().map(|entry| entry.slot))
            .min()
    }
}

/// A running fault aimed at the leader that may crash it (`slow-disk`, `reproposal`): the
/// master it aims at, and whether it crashed it (it restarts when the window ends).
#[derive(Clone, Copy, Debug)]
struct AimedAtLeader {
    target: u64,
    crashed: bool,
}

/// One client connection's workload.
struct Client {
    id: u64,
    next_request_id: u64,
    outstanding: Option<u64>,
    ready_tick: u64,
}

struct World {
    protocol: core::Config,
    tick: u64,
    rng: Rng,
    masters: Vec<MasterHost>,
    proxy: core::Proxy,
    sinks: Vec<Sink>,
    flights: VecDeque<Flight>,
    /// Links cut (from, to).
    cut: Vec<(Node, Node)>,
    /// Per-mille loss on master links while a drop fault is active.
    loss_per_mille: u64,
    /// While set, what the proxy sends is held until this tick (message hold and release).
    hold_proxy_until: Option<u64>,
    /// `stale-ack`: links (from, to) whose messages are held until a tick (hold and release).
    held_links: Vec<((Node, Node), u64)>,
    clients: Vec<Client>,
    requests_sent: usize,
    workload_open: bool,
    completions: BTreeMap<(u64, u64), u32>,
    faults_applied: Vec<String>,
    /// The master each running `pause` froze, by the fault's (start tick, node): a pause asks
    /// for eviction and rejoin, which only a follower can show, so a pause aimed at the leader
    /// freezes a follower instead (`World::pause_target`).
    paused_by_fault: BTreeMap<(u64, u64), u64>,
    /// Running `slow-disk` faults, by the fault's (start tick, node).
    slow_disks: BTreeMap<(u64, u64), AimedAtLeader>,
    /// Running `reproposal` faults, by the fault's (start tick, node).
    reproposals: BTreeMap<(u64, u64), AimedAtLeader>,
    /// `Get`s the `reproposal` client has sent.
    reproposal_reads: u64,
}

/// Runs one simulated run of `masters` masters with the faults of `plan`.
pub fn run(seed: u64, masters: u64, plan: &FaultPlan) -> SimRun {
    let protocol = protocol(masters);
    let mut world = World::new(seed, protocol.clone());
    let last_fault_end = plan
        .faults
        .iter()
        .map(|fault| fault.start_tick + fault.duration_ticks)
        .max()
        .unwrap_or(0);
    let fault_phase_end = if plan.faults.is_empty() {
        QUIET_RUN_TICKS
    } else {
        last_fault_end.max(WARMUP_TICKS + FAULT_SPACING_TICKS) + 10
    };
    let end = fault_phase_end + DRAIN_TICKS;
    while world.tick < end {
        world.tick += 1;
        for fault in &plan.faults {
            world.apply_fault(fault);
        }
        let tick = world.tick;
        world.held_links.retain(|(_, until)| *until > tick);
        if world.tick == fault_phase_end {
            world.heal();
            world.workload_open = false;
        }
        world.step_tick();
    }
    let header = |sink: &Sink| Header::new(&sink.node, CLUSTER, &protocol);
    let traces = world
        .sinks
        .iter()
        .map(|sink| NodeTrace {
            path: format!("sim-seed-{seed}/{}.ndjson", sink.node).into(),
            header: header(sink),
            events: sink.lines.clone(),
        })
        .collect();
    SimRun {
        protocol,
        traces,
        faults_applied: world.faults_applied,
        ticks: end,
    }
}

impl World {
    fn new(seed: u64, protocol: core::Config) -> World {
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
            slow_disks: BTreeMap::new(),
            reproposals: BTreeMap::new(),
            reproposal_reads: 0,
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

    fn start_master(&mut self, node: u64) {
        let durable = self.masters[node as usize].durable.clone();
        let mut master =
            core::Master::new(node, self.protocol.clone(), durable).expect("valid master config");
        master.set_tracing(true);
        self.masters[node as usize].core = Some(master);
        self.drain_master(node, None);
    }

    /// Starts and ends the faults whose window begins or ends at this tick.
    fn apply_fault(&mut self, fault: &Fault) {
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
            (FaultKind::Pause, true) => {
                let target = self.pause_target(node);
                if target != node {
                    self.faults_applied
                        .push(format!("pause: m{node} leads, m{target} paused instead"));
                }
                self.paused_by_fault
                    .insert((fault.start_tick, fault.node), target);
                self.masters[target as usize].paused = true;
            }
            (FaultKind::PauseLeader, true) => {
                let target = self.leader_now().unwrap_or(node);
                if target != node {
                    self.faults_applied
                        .push(format!("pause-leader: m{target} leads, paused"));
                }
                self.paused_by_fault
                    .insert((fault.start_tick, fault.node), target);
                self.masters[target as usize].paused = true;
            }
            (FaultKind::Pause | FaultKind::PauseLeader, false) => {
                let key = (fault.start_tick, fault.node);
                let target = self.paused_by_fault.remove(&key).unwrap_or(node);
                self.resume(target);
            }
            (FaultKind::Crash, true) => self.crash(node),
            (FaultKind::Crash, false) => self.start_master(node),
            (FaultKind::WrongCluster, true) => {
                for index in 0..FLOOD_REQUESTS as u64 {
                    self.request(100, 1 + index, WRONG_CLUSTER, get("k0"));
                }
            }
            (FaultKind::Overload, true) => {
                for index in 0..BURST_REQUESTS as u64 {
                    self.request(200, 1 + index, CLUSTER, get("k1"));
                }
            }
            (FaultKind::Timeout, true) => {
                // Hold (do not lose) what the proxy sends until the window ends, longer than the
                // request timeout: the request times out, and its answer arrives late (§9.4.6).
                self.hold_proxy_until = Some(fault.start_tick + fault.duration_ticks);
                self.request(300, 1, CLUSTER, get("k0"));
            }
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

    /// `stale-ack`: hold what two followers send to the leader (their `Accepted` of a new
    /// request's slot among it) and cut the leader from the others, so that all four are
    /// evicted; each follower's held messages are released when it is evicted: the leader
    /// receives acknowledgements from evicted followers, which count for no quorum (§4.3, §5.1).
    fn stale_ack_start(&mut self, start: u64) {
        let leader = (0..self.protocol.masters)
            .find(|node| {
                self.masters[*node as usize]
                    .core
                    .as_ref()
                    .is_some_and(|master| master.role() == core::Role::Leader)
            })
            .unwrap_or(0);
        let followers: Vec<u64> = (0..self.protocol.masters)
            .filter(|node| *node != leader)
            .collect();
        let quorum = self.protocol.quorum() as usize;
        let (held, cut) = followers.split_at((quorum - 1).min(followers.len()));
        for node in cut {
            self.cut.push((Node::Master(leader), Node::Master(*node)));
            self.cut.push((Node::Master(*node), Node::Master(leader)));
        }
        // Released when the leader evicts the follower (after `eviction_threshold` heartbeat
        // periods without an acknowledgement), or at the latest at twice that.
        let release = start
            + 2 * self.protocol.eviction_threshold * self.protocol.heartbeat_interval_ticks
            + 2;
        for node in held {
            self.held_links
                .push(((Node::Master(*node), Node::Master(leader)), release));
        }
        self.request(400, 1, CLUSTER, get("k1"));
    }

    /// `reproposal`: every `Accepted` takes [`ACCEPTED_DELAY_TICKS`] while the window lasts,
    /// and a client writes; once the leader holds an entry its followers accepted and nobody
    /// committed, it crashes (`World::reproposal_crashes`). The next leader's phase 1 finds that
    /// entry and re-proposes it, and while its `Accepted`s are slow, `Get`s (one every other
    /// tick from the crash on) reach a leader whose re-proposed slot is not yet committed: they
    /// must go through the log (§9.2, `read-before-own-ballot-commit`).
    fn reproposal_start(&mut self, fault: &Fault) {
        let aimed = self.aim_at_leader(fault);
        self.reproposals
            .insert((fault.start_tick, fault.node), aimed);
        let put = core::Operation::Put {
            key: b"k1".to_vec(),
            value: b"tail".to_vec(),
        };
        self.request(REPROPOSAL_CLIENT, 1, CLUSTER, put);
    }

    fn reproposal_end(&mut self, fault: &Fault) {
        if let Some(aimed) = self.reproposals.remove(&(fault.start_tick, fault.node)) {
            self.restart_if_crashed(aimed);
        }
    }

    /// The master a fault aimed at the leader targets: the running leader, else the planned
    /// node (said in the run's fault list when they differ).
    fn aim_at_leader(&mut self, fault: &Fault) -> AimedAtLeader {
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

    fn restart_if_crashed(&mut self, aimed: AimedAtLeader) {
        if aimed.crashed && self.masters[aimed.target as usize].core.is_none() {
            self.start_master(aimed.target);
        }
    }

    /// `reproposal`: the aimed-at leader crashes once it holds an uncommitted entry; after
    /// that, a `Get` every other tick.
    fn reproposal_crashes(&mut self) {
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
    fn slow_disk_start(&mut self, fault: &Fault) {
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

    fn slow_disk_end(&mut self, fault: &Fault) {
        if let Some(aimed) = self.slow_disks.remove(&(fault.start_tick, fault.node)) {
            self.masters[aimed.target as usize].disk_latency_ticks = 0;
            self.restart_if_crashed(aimed);
        }
    }

    /// `slow-disk`: a slowed master that has committed an entry its own write has not yet
    /// made durable crashes (docs/reliability.md §5 finding 1: the SIGKILLed leader).
    fn crash_slow_disks(&mut self) {
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

    /// Makes durable, oldest first, the queued writes of master `node` that are due, and
    /// advances their `Ready`s (what they release leaves at once).
    fn complete_writes(&mut self, node: u64) {
        loop {
            let host = &mut self.masters[node as usize];
            if host.core.is_none() || host.paused {
                return;
            }
            if host
                .disk
                .front()
                .is_none_or(|pending| pending.due_tick > self.tick)
            {
                return;
            }
            let pending = host.disk.pop_front().expect("a due write");
            if let Some(write) = &pending.ready.durable {
                host.durable.apply(write);
            }
            if let Some(master) = host.core.as_mut() {
                master.advance(pending.ready);
            }
            self.drain_master(node, None);
        }
    }

    /// `stale-ack`: the leader `to` evicted `from`: what `from` sent it and was held arrives now,
    /// after the eviction (before the leader's next check-quorum can depose it).
    fn release_held(&mut self, from: Node, to: Node) {
        let held = self.held_links.len();
        self.held_links.retain(|(link, _)| *link != (from, to));
        if self.held_links.len() == held {
            return;
        }
        let tick = self.tick;
        for flight in self
            .flights
            .iter_mut()
            .filter(|flight| flight.from == from && flight.to == to)
        {
            flight.deliver_tick = flight.deliver_tick.min(tick);
        }
    }

    fn isolate(&mut self, node: Node) {
        for master in 0..self.protocol.masters {
            let other = Node::Master(master);
            if other != node {
                self.cut.push((node, other));
                self.cut.push((other, node));
            }
        }
        self.cut.push((node, Node::Proxy));
        self.cut.push((Node::Proxy, node));
    }

    fn reconnect(&mut self, node: Node) {
        self.cut.retain(|(from, to)| *from != node && *to != node);
    }

    /// Ends every fault (the drain phase).
    fn heal(&mut self) {
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

    fn crash(&mut self, node: u64) {
        self.masters[node as usize].core = None;
        self.masters[node as usize].paused = false;
        // What its persist queue held never reached the disk.
        self.masters[node as usize].disk.clear();
        let me = Node::Master(node);
        // Volatile state and connections are gone: nothing it had in flight arrives.
        self.flights
            .retain(|flight| flight.from != me && flight.to != me);
        // The proxy's connection to it closed: what was forwarded there completes now, as
        // the host's link reports it (`docs/protocol.md` §9.4.6).
        self.proxy.link_closed(CLUSTER, node);
        self.drain_proxy(None);
    }

    /// The running, unpaused master that leads now (the lowest id if several believe they do).
    fn leader_now(&self) -> Option<u64> {
        (0..self.protocol.masters).find(|candidate| {
            let host = &self.masters[*candidate as usize];
            !host.paused && host.core.as_ref().map(core::Master::role) == Some(core::Role::Leader)
        })
    }

    /// The master a `pause` aimed at `node` freezes: `node` itself unless it leads, else the
    /// next running, unpaused master (by id, wrapping) that does not lead; `node` if none does.
    fn pause_target(&self, node: u64) -> u64 {
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

    /// A paused master's overdue ticks fire before its queued messages, as the tokio host
    /// hands them to the core (`Master::elapse`: from the pause threshold on, the core resumes,
    /// check-quorum first, §7.2).
    fn resume(&mut self, node: u64) {
        let host = &mut self.masters[node as usize];
        host.paused = false;
        let overdue = std::mem::take(&mut host.missed_ticks);
        if let Some(master) = host.core.as_mut() {
            master.elapse(overdue);
        }
        self.drain_master(node, None);
    }

    fn step_tick(&mut self) {
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
        self.deliver_due();
    }

    fn workload(&mut self) {
        if !self.workload_open {
            return;
        }
        for index in 0..self.clients.len() {
            let client = &self.clients[index];
            if client.outstanding.is_some()
                || client.ready_tick > self.tick
                || self.requests_sent >= WORKLOAD_REQUESTS_MAX
            {
                continue;
            }
            let (id, request_id) = (client.id, client.next_request_id);
            let operation = self.operation();
            self.clients[index].next_request_id += 1;
            self.clients[index].outstanding = Some(request_id);
            self.requests_sent += 1;
            self.request(id, request_id, CLUSTER, operation);
        }
    }

    fn operation(&mut self) -> core::Operation {
        let key = format!("k{}", self.rng.below(2)).into_bytes();
        let value = format!("v{}", self.rng.below(3)).into_bytes();
        match self.rng.below(6) {
            0 | 1 => core::Operation::Put { key, value },
            2 | 3 => core::Operation::Get { key },
            4 => core::Operation::Cas {
                key,
                expected_version: self.rng.below(3),
                value,
            },
            _ => core::Operation::Delete { key },
        }
    }

    fn request(&mut self, client: u64, request_id: u64, cluster: &str, operation: core::Operation) {
        self.completions.entry((client, request_id)).or_insert(0);
        self.proxy
            .handle_request(client, request_id, cluster, operation);
        self.drain_proxy(None);
    }

    /// Delivers every message due by this tick, including the answers they cause (loopback
    /// round trips are much shorter than a tick), in rounds bounded by [`DELIVERY_ROUNDS_MAX`].
    fn deliver_due(&mut self) {
        for _ in 0..DELIVERY_ROUNDS_MAX {
            if !self
                .flights
                .iter()
                .any(|flight| flight.deliver_tick <= self.tick && self.deliverable(flight))
            {
                return;
            }
            self.deliver_round();
        }
    }

    fn deliverable(&self, flight: &Flight) -> bool {
        match flight.to {
            Node::Master(node) => {
                let host = &self.masters[node as usize];
                host.core.is_some() && !host.paused
            }
            Node::Proxy => true,
        }
    }

    /// Delivers, in order, every message due by this tick that was in flight at its start.
    fn deliver_round(&mut self) {
        let mut due = Vec::new();
        let mut kept = VecDeque::new();
        for flight in self.flights.drain(..) {
            if flight.deliver_tick <= self.tick {
                due.push(flight);
            } else {
                kept.push_back(flight);
            }
        }
        self.flights = kept;
        for flight in due {
            if let Node::Master(node) = flight.to {
                let host = &self.masters[node as usize];
                if host.core.is_none() {
                    continue;
                }
                if host.paused {
                    // TCP keeps it until the master runs again.
                    self.flights.push_back(flight);
                    continue;
                }
            }
            self.deliver(flight);
        }
    }

    fn deliver(&mut self, flight: Flight) {
        match flight.to {
            Node::Master(node) => {
                let from = match flight.from {
                    Node::Master(from) => Peer::Master(from),
                    Node::Proxy => Peer::Proxy(0),
                };
                let Some(master) = self.masters[node as usize].core.as_mut() else {
                    return;
                };
                if master.step(from, flight.message.clone()).is_ok() {
                    self.drain_master(node, Some(&flight));
                }
            }
            Node::Proxy => {
                let Node::Master(from) = flight.from else {
                    return;
                };
                if self
                    .proxy
                    .step(CLUSTER, from, flight.message.clone())
                    .is_ok()
                {
                    self.drain_proxy(Some(&flight));
                }
            }
        }
    }

    /// Sends `message` unless the link is cut or the loss fault eats it.
    fn send(&mut self, from: Node, to: Node, message: Message, id: String, lamport: u64) {
        if self.cut.contains(&(from, to)) {
            return;
        }
        let between_masters = matches!((from, to), (Node::Master(_), Node::Master(_)));
        if between_masters && self.loss_per_mille > 0 && self.rng.below(1000) < self.loss_per_mille
        {
            return;
        }
        // Mostly within the tick (loopback); one message in eight waits for the next tick.
        let mut latency = u64::from(self.rng.below(8) == 0);
        if let (Node::Proxy, Some(until)) = (from, self.hold_proxy_until) {
            latency = latency.max(until.saturating_sub(self.tick));
        }
        for (_, until) in self
            .held_links
            .iter()
            .filter(|(link, _)| *link == (from, to))
        {
            latency = latency.max(until.saturating_sub(self.tick));
        }
        if !self.reproposals.is_empty() && matches!(message, Message::Accepted { .. }) {
            latency = latency.max(ACCEPTED_DELAY_TICKS);
        }
        self.flights.push_back(Flight {
            from,
            to,
            message,
            deliver_tick: self.tick + latency,
            id,
            lamport,
        });
    }

    /// Handles every `Ready` of `node` as the host does: close links, send, hand the write to
    /// the disk ([`World::persist`]; `advance` once it is durable, and what that releases
    /// comes out of the next `Ready`). Only the first batch holds the input that handled
    /// `received`.
    fn drain_master(&mut self, node: u64, received: Option<&Flight>) {
        let mut received = received;
        loop {
            let Some(master) = self.masters[node as usize].core.as_mut() else {
                return;
            };
            if !master.has_ready() {
                return;
            }
            let ready = master.ready();
            let me = Node::Master(node);
            for follower in &ready.close_links {
                let to = Node::Master(*follower);
                // The eviction discards what the leader's host still queues (not yet due) but
                // cannot take back what reached the follower (due: a paused follower has not
                // read it yet), which it may still handle (`protocol.md` §5.1).
                let tick = self.tick;
                self.flights.retain(|flight| {
                    !(flight.from == me && flight.to == to) || flight.deliver_tick <= tick
                });
                self.release_held(to, me);
            }
            let mut stamped = self.sinks[node as usize].stamp(ready.trace.clone(), received.take());
            let envelopes = ready
                .messages
                .iter()
                .chain(&ready.replies)
                .cloned()
                .collect::<Vec<_>>();
            for envelope in envelopes {
                let to = match envelope.to {
                    Peer::Master(other) => Node::Master(other),
                    Peer::Proxy(_) => Node::Proxy,
                };
                let (id, lamport) = stamped.take_send(&envelope.message);
                self.send(me, to, envelope.message, id, lamport);
            }
            self.persist(node, ready);
        }
    }

    /// Hands `ready`'s write to master `node`'s disk: durable at once (then `advance`) unless
    /// the disk is slow or writes are queued before it; a `Ready` is advanced after those
    /// taken before it (`ready.rs`), so one that waits for nothing queues behind them too.
    fn persist(&mut self, node: u64, ready: core::Ready) {
        let tick = self.tick;
        let host = &mut self.masters[node as usize];
        if host.disk.is_empty() && (host.disk_latency_ticks == 0 || !ready.waits_for_disk()) {
            if let Some(write) = &ready.durable {
                host.durable.apply(write);
            }
            if let Some(master) = host.core.as_mut() {
                master.advance(ready);
            }
            return;
        }
        let latency = if ready.waits_for_disk() {
            host.disk_latency_ticks
        } else {
            0
        };
        let behind = host.disk.back().map_or(0, |pending| pending.due_tick);
        host.disk.push_back(PendingReady {
            ready,
            due_tick: (tick + latency).max(behind),
        });
    }

    fn drain_proxy(&mut self, received: Option<&Flight>) {
        if !self.proxy.has_ready() {
            return;
        }
        let ready = self.proxy.ready();
        let proxy_sink = self.sinks.len() - 1;
        let mut stamped = self.sinks[proxy_sink].stamp(ready.trace.clone(), received);
        let mut lost = Vec::new();
        for envelope in ready.messages {
            let (id, lamport) = stamped.take_send(&envelope.message);
            if self.masters[envelope.to as usize].core.is_none() {
                // No connection to a crashed master: the host cannot hand the Propose over.
                if let Message::Propose { request_id, .. } = envelope.message {
                    lost.push(request_id);
                }
                continue;
            }
            self.send(
                Node::Proxy,
                Node::Master(envelope.to),
                envelope.message,
                id,
                lamport,
            );
        }
        for reply in ready.replies {
            let Message::Reply { request_id, .. } = reply.message else {
                continue;
            };
            *self.completions.entry((reply.to, request_id)).or_insert(0) += 1;
            if let Some(client) = self.clients.iter_mut().find(|client| client.id == reply.to) {
                if client.outstanding == Some(request_id) {
                    client.outstanding = None;
                    client.ready_tick = self.tick + 1 + self.rng.below(3);
                }
            }
        }
        for request_id in lost {
            self.proxy.forward_lost(request_id);
        }
        self.drain_proxy(None);
    }
}

fn get(key: &str) -> core::Operation {
    core::Operation::Get {
        key: key.as_bytes().to_vec(),
    }
}

/// The stamped sends of one drained batch, to hand ids to the envelopes.
struct Stamped {
    sends: Vec<(Message, String, u64, bool)>,
}

impl Stamped {
    /// The id and clock of the first unclaimed send event of `message`.
    fn take_send(&mut self, message: &Message) -> (String, u64) {
        for (sent, id, lamport, claimed) in &mut self.sends {
            if !*claimed && sent == message {
                *claimed = true;
                return (id.clone(), *lamport);
            }
        }
        (String::new(), 0)
    }
}

impl Sink {
    fn new(node: String) -> Sink {
        Sink {
            node,
            lines: Vec::new(),
            lamport: 0,
            inputs: 0,
            sends: 0,
            input_is_tick: false,
        }
    }

    /// Stamps one batch of events (one or more inputs): clock, input number, message ids.
    fn stamp(&mut self, events: Vec<core::TraceEvent>, received: Option<&Flight>) -> Stamped {
        let mut stamped = Stamped { sends: Vec::new() };
        let mut last_sequence: Option<u64> = None;
        for event in events {
            let new_input = event.kind.starts_input() || last_sequence.is_none();
            // A second timer of one tick joins its input (a timer after a `Resume` does not).
            let same_tick_timer = matches!(event.kind, core::TraceKind::Timeout { .. })
                && last_sequence.is_some()
                && self.input_is_tick
                && self
                    .lines
                    .last()
                    .is_some_and(|line| line.post == event.post);
            if new_input && !same_tick_timer {
                self.inputs += 1;
                self.input_is_tick = matches!(event.kind, core::TraceKind::Timeout { .. });
            }
            last_sequence = Some(event.sequence);
            self.lamport += 1;
            let mut message_id = None;
            match &event.kind {
                core::TraceKind::Receive { .. } => {
                    if let Some(flight) = received {
                        if !matches!(
                            event.kind,
                            core::TraceKind::Receive {
                                from: core::Endpoint::Client(_),
                                ..
                            }
                        ) {
                            self.lamport = self.lamport.max(flight.lamport + 1);
                            message_id = Some(flight.id.clone());
                        }
                    }
                }
                core::TraceKind::Send { message, to }
                    if !matches!(to, core::Endpoint::Client(_)) =>
                {
                    self.sends += 1;
                    let id = format!("{}.{}", self.node, self.sends);
                    stamped
                        .sends
                        .push((message.clone(), id.clone(), self.lamport, false));
                    message_id = Some(id);
                }
                _ => {}
            }
            self.lines.push(TraceLine::new(
                event,
                Some(self.inputs),
                Some(self.lamport),
                message_id,
            ));
        }
        stamped
    }
}

/// Completions per request as the simulated clients saw them (for the drain check in tests).
pub fn client_completions(run: &SimRun) -> usize {
    run.traces
        .iter()
        .flat_map(|trace| trace.events.iter())
        .filter(|line| matches!(line.kind, core::TraceKind::RequestCompleted { .. }))
        .count()
}
