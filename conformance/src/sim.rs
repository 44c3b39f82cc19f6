//! Deterministic simulation of `vigil-core`'s masters and proxy (mode `sim`): one thread, a
//! seeded network with latency and loss, logical ticks, and the faults of a [`FaultPlan`].
//!
//! What it runs is the real protocol code (`vigil_core::Master`, `vigil_core::Proxy`), driven
//! the way the tokio host drives it (`impl/node/src/master.rs`): each `Ready`'s messages sent,
//! its durable write applied (a synchronous disk), then `advance`, whose released messages leave
//! with the next `Ready`; a paused master's overdue ticks fired before its queued messages, a
//! crashed master rebuilt from its durable state, an eviction closing the leader's link to the
//! follower (what already reached the follower stays deliverable). What it does not run is the
//! host's tokio code (transport, storage, tasks): modes `turmoil` and `tcp` run that.
//!
//! The in-memory sink stamps each event with the node's input number, a Lamport clock and, on
//! sends and receives, the message id; the same seed gives byte-identical trace files.
//!
//! This file holds the run's shape (its constants, its configuration, the tick loop); the
//! parts live beside it: [`world`] (the simulated parties and one tick), [`hosts`] (each core
//! driven as the tokio host drives it), [`network`] (messages in flight), [`workload`] (the
//! clients), [`kv_workload`] (the revisioned clients, on some seeds), [`sink`] (the trace stamps), [`rng`] (the one source of randomness) and the fault
//! families: [`faults`] (the schedule, pauses, crashes and request floods), [`link_faults`]
//! (cut and held links) and [`leader_faults`] (slow disks and reproposals).

mod faults;
mod hosts;
mod kv_workload;
mod leader_faults;
mod link_faults;
mod network;
mod rng;
mod sink;
mod workload;
mod world;

use vigil_core as core;

use crate::faults::{FaultPlan, FAULT_SPACING_TICKS, WARMUP_TICKS};
use crate::trace::{Header, NodeTrace};
pub use kv_workload::revisioned_seed;
use sink::Sink;
use world::World;

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

/// Completions per request as the simulated clients saw them (for the drain check in tests).
pub fn client_completions(run: &SimRun) -> usize {
    run.traces
        .iter()
        .flat_map(|trace| trace.events.iter())
        .filter(|line| matches!(line.kind, core::TraceKind::RequestCompleted { .. }))
        .count()
}
