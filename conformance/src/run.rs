//! One run of one runner and its check: the core simulation, the tokio host under turmoil or
//! the tokio host on real TCP, run with a seed's fault plan, its traces checked against the
//! model and its coverage against what the plan asked for; and the shrinking of a failing
//! run's plan where the runner is deterministic. The three runners differ only in how they
//! run; what happens around a run is the same for all of them (`part.rs`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::check::{self, CheckFailure, Checked};
use crate::faults::{self, FaultKind, FaultPlan, Runner};
use crate::sim;
use crate::tcp;
use crate::trace::{self, NodeTrace, TraceError};
use crate::turmoil_host;

/// One run: its plan, its traces, and the check's result.
#[derive(Debug)]
pub struct RunOutcome {
    /// What ran it.
    pub runner: Runner,
    /// The seed.
    pub seed: u64,
    /// The fault plan.
    pub plan: FaultPlan,
    /// The run's traces (`None` if the run failed before it left any that could be read).
    pub traces: Option<Vec<NodeTrace>>,
    /// Faults injected, as printed (with why the run stopped, if it stopped early).
    pub faults_applied: Vec<String>,
    /// The run's wall time, seconds (simulating, or running on TCP; the check not included).
    pub run_seconds: f64,
    /// Where the traces were kept, when a directory was asked for, or why they could not be.
    pub kept: Option<Result<PathBuf, std::io::Error>>,
    /// The check.
    pub result: Result<Checked, CheckFailure>,
}

/// What a runner left: its traces (or why they could not be read), what it injected, and why
/// it stopped early, if it did (the traces are still checked: they usually say why).
struct Ran {
    traces: Result<Vec<NodeTrace>, TraceError>,
    faults_applied: Vec<String>,
    stopped: Option<String>,
}

/// The fault plan of `seed` for `kinds` (none without kinds).
pub fn plan_of(kinds: &[FaultKind], masters: u64, seed: u64) -> FaultPlan {
    if kinds.is_empty() {
        FaultPlan::default()
    } else {
        faults::plan_for_seed(kinds, masters, seed)
    }
}

/// Runs seed `seed` on `runner` with faults `kinds` and validates its traces. With
/// `trace_directory`, the traces are kept there (a TCP run writes them there itself; without
/// it, it writes them to a temporary directory removed after the check).
pub fn run_and_check(
    runner: Runner,
    seed: u64,
    masters: u64,
    kinds: &[FaultKind],
    trace_directory: Option<&Path>,
) -> RunOutcome {
    let plan = plan_of(kinds, masters, seed);
    let started = Instant::now();
    let ran = match runner {
        Runner::CoreSimulation => Ok(ran_in_simulation(sim::run(seed, masters, &plan))),
        Runner::Turmoil => turmoil_host::run(seed, masters, &plan).map(ran_under_turmoil),
        Runner::Tcp => run_on_tcp(seed, masters, &plan, trace_directory),
    };
    let run_seconds = started.elapsed().as_secs_f64();
    let Ran {
        traces,
        faults_applied,
        stopped,
    } = match ran {
        Ok(ran) => ran,
        Err(error) => {
            return RunOutcome {
                runner,
                seed,
                plan,
                traces: None,
                faults_applied: Vec::new(),
                run_seconds,
                kept: None,
                result: Err(CheckFailure::Run(error)),
            }
        }
    };
    let kept = trace_directory.map(|directory| keep(runner, directory, traces.as_ref().ok()));
    let (traces, result) = match traces {
        Ok(traces) => {
            let result = check::check_traces(&traces, trace::EVENTS_FLOOR_DEFAULT)
                .and_then(|checked| match stopped {
                    // The traces conform, but the run itself did not complete.
                    Some(error) => Err(CheckFailure::Run(error)),
                    None => Ok(checked),
                })
                .and_then(|checked| check::require_coverage(checked, kinds, runner));
            (Some(traces), result)
        }
        Err(error) => (None, Err(CheckFailure::Trace(error))),
    };
    RunOutcome {
        runner,
        seed,
        plan,
        traces,
        faults_applied,
        run_seconds,
        kept,
        result,
    }
}

fn ran_in_simulation(run: sim::SimRun) -> Ran {
    Ran {
        traces: Ok(run.traces),
        faults_applied: run.faults_applied,
        stopped: None,
    }
}

fn ran_under_turmoil(run: turmoil_host::TurmoilRun) -> Ran {
    Ran {
        traces: Ok(run.traces),
        faults_applied: run.faults_applied,
        stopped: run.client_error,
    }
}

/// Runs the real host on loopback and reads the trace files it wrote (in `trace_directory`, or
/// in a temporary directory, removed once they are read).
fn run_on_tcp(
    seed: u64,
    masters: u64,
    plan: &FaultPlan,
    trace_directory: Option<&Path>,
) -> Result<Ran, String> {
    let scratch = tempfile::tempdir().map_err(|error| format!("temporary directory: {error}"))?;
    let directory = trace_directory.unwrap_or(scratch.path());
    let run = tcp::run(seed, masters, plan, directory)?;
    let mut faults_applied = run.faults_applied;
    if let Some(error) = &run.drive_error {
        faults_applied.push(format!("(run stopped: {error})"));
    }
    Ok(Ran {
        traces: trace::read_paths(std::slice::from_ref(&run.trace_dir)),
        faults_applied,
        stopped: run.drive_error,
    })
}

/// Keeps a run's traces in `directory`: the simulations' are written there; a TCP run wrote
/// its own there.
fn keep(
    runner: Runner,
    directory: &Path,
    traces: Option<&Vec<NodeTrace>>,
) -> Result<PathBuf, std::io::Error> {
    if let (Runner::CoreSimulation | Runner::Turmoil, Some(traces)) = (runner, traces) {
        write_traces(directory, traces)?;
    }
    Ok(directory.to_path_buf())
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

/// Shrinks a failing run's plan: drops faults one at a time while the run still diverges (any
/// divergence, as proptest would), at most one attempt per fault of the plan. Returns the
/// smallest plan found and its divergence's title; `None` for a runner whose runs a seed does
/// not determine (TCP), which cannot shrink.
pub fn shrink(
    runner: Runner,
    seed: u64,
    masters: u64,
    plan: &FaultPlan,
) -> Option<(FaultPlan, String)> {
    let diverges = |plan: &FaultPlan| -> Option<String> {
        let traces = match runner {
            Runner::CoreSimulation => sim::run(seed, masters, plan).traces,
            Runner::Turmoil => turmoil_host::run(seed, masters, plan).ok()?.traces,
            Runner::Tcp => return None,
        };
        match check::check_traces(&traces, trace::EVENTS_FLOOR_DEFAULT) {
            Err(CheckFailure::Divergence(divergence)) => Some(divergence.title.clone()),
            _ => None,
        }
    };
    if !runner.is_deterministic() {
        return None;
    }
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
    Some((smallest, title))
}
