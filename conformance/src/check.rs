//! One conformance check of recorded traces, the step every run and `vigil-conform check` end
//! in: read, merge causally, map to the model, replay, and count what the traces exercised
//! (`docs/trace.md`). A check fails on the first thing the model cannot follow.

use std::path::PathBuf;

use crate::coverage::{self, Coverage};
use crate::faults::{FaultKind, Runner};
use crate::headers::{self, HeaderError};
use crate::mapping::{MappingError, Vocabulary};
use crate::merge::{self, MergeError};
use crate::replay::{self, ReplayStats};
use crate::report::Divergence;
use crate::sim;
use crate::trace::{self, NodeTrace, TraceError};

/// Why a check failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckFailure {
    /// The traces could not be read or are vacuous.
    #[error("TRACE ERROR: {0}")]
    Trace(TraceError),
    /// The files' headers do not describe one run of one configuration.
    #[error("HEADER ERROR: {0}")]
    Headers(HeaderError),
    /// The traces could not be merged.
    #[error("MERGE ERROR: {0}")]
    Merge(MergeError),
    /// The run cannot be expressed in the model.
    #[error("MAPPING ERROR: {0}")]
    Mapping(MappingError),
    /// The model does not follow the trace.
    #[error("{0}")]
    Divergence(Box<Divergence>),
    /// A behaviour the fault plan asked for never happened.
    #[error(
        "VACUOUS RUN: behaviours the fault plan asked for never happened: {}",
        .0.join(", ")
    )]
    Vacuous(Vec<String>),
    /// The run itself failed (the host, the client, a deadline).
    #[error("RUN ERROR: {0}")]
    Run(String),
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
    let header = headers::run_header(traces).map_err(CheckFailure::Headers)?;
    let cluster = header.cluster.unwrap_or_else(|| sim::CLUSTER.to_string());
    let mut vocabulary =
        Vocabulary::build(&merged, &header.config, &cluster).map_err(CheckFailure::Mapping)?;
    if header.version < trace::SCHEMA_VERSION_PERSIST {
        vocabulary.config.disk = vigil_model::Disk::Immediate;
    }
    let stats = replay::replay(&merged, vocabulary).map_err(CheckFailure::Divergence)?;
    let coverage = Coverage {
        actions: stats.action_kinds.clone(),
        behaviours: coverage::observe(&merged),
    };
    Ok(Checked { stats, coverage })
}

/// Reads traces from files and directories and validates them.
pub fn check_paths(paths: &[PathBuf], floor: usize) -> Result<Checked, CheckFailure> {
    let traces = trace::read_paths(paths).map_err(CheckFailure::Trace)?;
    check_traces(&traces, floor)
}

/// `checked`, unless a behaviour that `kinds`, as `runner` injects them, ask for never
/// happened: then the run proved nothing about it and fails as vacuous.
pub fn require_coverage(
    checked: Checked,
    kinds: &[FaultKind],
    runner: Runner,
) -> Result<Checked, CheckFailure> {
    let missing = checked.coverage.missing(kinds, runner);
    if missing.is_empty() {
        Ok(checked)
    } else {
        Err(CheckFailure::Vacuous(missing))
    }
}

/// A check repeated for a stable replay-rate measurement (`vigil-conform check --repeat`).
#[derive(Debug)]
pub struct Repeated {
    /// The last check's result.
    pub result: Result<Checked, CheckFailure>,
    /// Events replayed over every passing repetition.
    pub events: usize,
    /// Replay time over every passing repetition, seconds.
    pub seconds: f64,
}

/// Checks `traces` `repeat` times (at least once).
pub fn check_repeated(traces: &[NodeTrace], floor: usize, repeat: u32) -> Repeated {
    let (mut events, mut seconds) = (0, 0.0);
    let mut result = check_traces(traces, floor);
    for _ in 1..repeat.max(1) {
        if let Ok(checked) = &result {
            events += checked.stats.events;
            seconds += checked.stats.seconds;
        }
        result = check_traces(traces, floor);
    }
    if let Ok(checked) = &result {
        events += checked.stats.events;
        seconds += checked.stats.seconds;
    }
    Repeated {
        result,
        events,
        seconds,
    }
}
