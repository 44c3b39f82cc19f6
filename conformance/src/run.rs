//! One conformance check of traces (`check`) or of a fresh run (`run`): merge, map, replay,
//! coverage. Used by the CLI and the tests.

use std::path::Path;
use std::time::Instant;

use vigil_core as core;

use crate::coverage::{self, Coverage};
use crate::faults::{FaultKind, FaultPlan, Runner};
use crate::mapping::Vocabulary;
use crate::merge;
use crate::replay::{self, ReplayStats};
use crate::report::Divergence;
use crate::sim;
use crate::trace::{self, NodeTrace};

/// Why a check failed.
#[derive(Debug)]
pub enum CheckFailure {
    /// The traces could not be read or are vacuous.
    Trace(trace::TraceError),
    /// The traces could not be merged.
    Merge(merge::MergeError),
    /// The run cannot be expressed in the model.
    Mapping(crate::mapping::MappingError),
    /// The model does not follow the trace.
    Divergence(Box<Divergence>),
    /// A behaviour the fault plan asked for never happened.
    Vacuous(Vec<String>),
    /// The run itself failed (the host, the client, a deadline).
    Run(String),
}

impl std::fmt::Display for CheckFailure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckFailure::Trace(error) => write!(formatter, "TRACE ERROR: {error}"),
            CheckFailure::Merge(error) => write!(formatter, "MERGE ERROR: {error}"),
            CheckFailure::Mapping(error) => write!(formatter, "MAPPING ERROR: {error}"),
            CheckFailure::Divergence(divergence) => write!(formatter, "{divergence}"),
            CheckFailure::Run(error) => write!(formatter, "RUN ERROR: {error}"),
            CheckFailure::Vacuous(missing) => write!(
                formatter,
                "VACUOUS RUN: behaviours the fault plan asked for never happened: {}",
                missing.join(", ")
            ),
        }
    }
}

/// What a passing check measured.
#[derive(Clone, Debug, Default)]
pub struct Checked {
    /// Replay counts and time.
    pub stats: ReplayStats,
    /// Coverage of this check.
    pub coverage: Coverage,
}

/// Validates traces against the model. `floor`: fewer events in total fail as vacuous.
pub fn check_traces(traces: &[NodeTrace], floor: usize) -> Result<Checked, CheckFailure> {
    trace::check_floor(traces, floor).map_err(CheckFailure::Trace)?;
    let merged = merge::merge(traces).map_err(CheckFailure::Merge)?;
    let protocol = protocol_of(traces);
    let cluster = traces
        .iter()
        .find_map(|trace| trace.header.cluster.clone())
        .unwrap_or_else(|| sim::CLUSTER.to_string());
    let version = trace::run_version(traces).map_err(CheckFailure::Trace)?;
    let mut vocabulary =
        Vocabulary::build(&merged, &protocol, &cluster).map_err(CheckFailure::Mapping)?;
    if version < trace::SCHEMA_VERSION_PERSIST {
        vocabulary.config.disk = vigil_model::Disk::Immediate;
    }
    let stats = replay::replay(&merged, vocabulary).map_err(CheckFailure::Divergence)?;
    let coverage = Coverage {
        actions: stats.action_kinds.clone(),
        behaviours: coverage::observe(&merged),
    };
    Ok(Checked { stats, coverage })
}

/// The protocol configuration the traces declare (the masters' count from the master traces
/// when the headers do not carry one).
fn protocol_of(traces: &[NodeTrace]) -> core::Config {
    let masters = traces
        .iter()
        .filter(|trace| trace.header.node.starts_with('m'))
        .count() as u64;
    let mut protocol = traces
        .iter()
        .find_map(|trace| trace.header.config.clone())
        .unwrap_or_default();
    if traces.iter().all(|trace| trace.header.config.is_none()) {
        protocol.masters = masters;
    }
    protocol
}

/// Reads traces from files and directories and validates them.
pub fn check_paths(paths: &[std::path::PathBuf], floor: usize) -> Result<Checked, CheckFailure> {
    let traces = trace::read_paths(paths).map_err(CheckFailure::Trace)?;
    check_traces(&traces, floor)
}

/// One simulated run: the plan, the traces, and the check's result.
pub struct SimOutcome {
    /// The seed.
    pub seed: u64,
    /// The fault plan.
    pub plan: FaultPlan,
    /// The run's traces.
    pub run: sim::SimRun,
    /// Simulation wall time, seconds.
    pub simulate_seconds: f64,
    /// The check.
    pub result: Result<Checked, CheckFailure>,
}

/// Simulates seed `seed` with faults `kinds` and validates the traces.
pub fn simulate_and_check(seed: u64, masters: u64, kinds: &[FaultKind]) -> SimOutcome {
    let plan = if kinds.is_empty() {
        FaultPlan::default()
    } else {
        crate::faults::plan_for_seed(kinds, masters, seed)
    };
    let started = Instant::now();
    let run = sim::run(seed, masters, &plan);
    let simulate_seconds = started.elapsed().as_secs_f64();
    let result = check_traces(&run.traces, trace::EVENTS_FLOOR_DEFAULT).and_then(|checked| {
        let missing = checked.coverage.missing(kinds, Runner::CoreSimulation);
        if missing.is_empty() {
            Ok(checked)
        } else {
            Err(CheckFailure::Vacuous(missing))
        }
    });
    SimOutcome {
        seed,
        plan,
        run,
        simulate_seconds,
        result,
    }
}

/// Shrinks a failing simulated run's plan: drops faults one at a time while the run still
/// diverges (any divergence, as proptest would), at most one attempt per fault of the plan.
/// Returns the smallest plan found and its failure's first line.
pub fn shrink(seed: u64, masters: u64, plan: &FaultPlan) -> (FaultPlan, String) {
    shrink_with(plan, |plan| {
        let run = sim::run(seed, masters, plan);
        divergence_title(&run.traces)
    })
}

/// [`shrink`] for a turmoil run of the tokio host (deterministic too, so it shrinks).
pub fn shrink_turmoil(seed: u64, masters: u64, plan: &FaultPlan) -> (FaultPlan, String) {
    shrink_with(plan, |plan| {
        let run = crate::host_sim::run(seed, masters, plan).ok()?;
        divergence_title(&run.traces)
    })
}

fn divergence_title(traces: &[NodeTrace]) -> Option<String> {
    match check_traces(traces, trace::EVENTS_FLOOR_DEFAULT) {
        Err(CheckFailure::Divergence(divergence)) => Some(divergence.title.clone()),
        _ => None,
    }
}

fn shrink_with(
    plan: &FaultPlan,
    diverges: impl Fn(&FaultPlan) -> Option<String>,
) -> (FaultPlan, String) {
    let mut smallest = plan.clone();
    let mut title = diverges(plan).unwrap_or_default();
    let mut index = 0;
    while index < smallest.faults.len() {
        let mut candidate = smallest.clone();
        candidate.faults.remove(index);
        match diverges(&candidate) {
            Some(found) => {
                smallest = candidate;
                title = found;
            }
            None => index += 1,
        }
    }
    (smallest, title)
}

/// Writes a run's traces to `directory` (one file per node), for `check` and for reading.
pub fn write_traces(directory: &Path, traces: &[NodeTrace]) -> std::io::Result<()> {
    std::fs::create_dir_all(directory)?;
    for node in traces {
        let text = trace::render(&node.header, &node.events);
        std::fs::write(directory.join(format!("{}.ndjson", node.header.node)), text)?;
    }
    Ok(())
}

/// One TCP run: where its traces are, what it injected, and the check's result.
pub struct TcpOutcome {
    /// The seed.
    pub seed: u64,
    /// Faults injected, as printed.
    pub faults_applied: Vec<String>,
    /// The run's wall time, seconds.
    pub run_seconds: f64,
    /// The check (a run that could not complete is a trace failure).
    pub result: Result<Checked, CheckFailure>,
}

/// Runs the real host on loopback with faults `kinds`, then validates its trace files.
pub fn tcp_and_check(seed: u64, masters: u64, kinds: &[FaultKind], directory: &Path) -> TcpOutcome {
    let plan = if kinds.is_empty() {
        FaultPlan::default()
    } else {
        crate::faults::plan_for_seed(kinds, masters, seed)
    };
    let started = Instant::now();
    let run = crate::tcp::run(seed, masters, &plan, directory);
    let run_seconds = started.elapsed().as_secs_f64();
    let (faults_applied, result) = match run {
        Ok(run) => {
            let result = trace::read_paths(std::slice::from_ref(&run.trace_dir))
                .map_err(CheckFailure::Trace)
                .and_then(|traces| check_traces(&traces, trace::EVENTS_FLOOR_DEFAULT))
                .and_then(|checked| match &run.drive_error {
                    // The traces conform, but the run itself did not complete.
                    Some(error) => Err(CheckFailure::Run(error.clone())),
                    None => Ok(checked),
                })
                .and_then(|checked| {
                    let missing = checked.coverage.missing(kinds, Runner::Tcp);
                    if missing.is_empty() {
                        Ok(checked)
                    } else {
                        Err(CheckFailure::Vacuous(missing))
                    }
                });
            let mut applied = run.faults_applied;
            if let Some(error) = run.drive_error {
                applied.push(format!("(run stopped: {error})"));
            }
            (applied, result)
        }
        Err(error) => (Vec::new(), Err(CheckFailure::Run(error))),
    };
    TcpOutcome {
        seed,
        faults_applied,
        run_seconds,
        result,
    }
}

/// One turmoil run of the tokio host: the plan, the run, and the check's result.
pub struct TurmoilOutcome {
    /// The seed.
    pub seed: u64,
    /// The fault plan.
    pub plan: FaultPlan,
    /// The run (`None` if the simulation itself failed; the failure says why).
    pub run: Option<crate::host_sim::TurmoilRun>,
    /// Simulation wall time, seconds.
    pub simulate_seconds: f64,
    /// The check.
    pub result: Result<Checked, CheckFailure>,
}

/// Runs the tokio host under turmoil for seed `seed` with faults `kinds`, validates the traces.
pub fn turmoil_and_check(seed: u64, masters: u64, kinds: &[FaultKind]) -> TurmoilOutcome {
    let plan = if kinds.is_empty() {
        FaultPlan::default()
    } else {
        crate::faults::plan_for_seed(kinds, masters, seed)
    };
    let started = Instant::now();
    let run = crate::host_sim::run(seed, masters, &plan);
    let simulate_seconds = started.elapsed().as_secs_f64();
    let (run, result) = match run {
        Ok(run) => {
            let result = check_traces(&run.traces, trace::EVENTS_FLOOR_DEFAULT)
                .and_then(|checked| match &run.client_error {
                    // The traces conform, but a client could not complete its workload.
                    Some(error) => Err(CheckFailure::Run(error.clone())),
                    None => Ok(checked),
                })
                .and_then(|checked| {
                    let missing = checked.coverage.missing(kinds, Runner::Turmoil);
                    if missing.is_empty() {
                        Ok(checked)
                    } else {
                        Err(CheckFailure::Vacuous(missing))
                    }
                });
            (Some(run), result)
        }
        Err(error) => (None, Err(CheckFailure::Run(error))),
    };
    TurmoilOutcome {
        seed,
        plan,
        run,
        simulate_seconds,
        result,
    }
}
