//! A part of `verify` or `run`: one runner over a list of runs, each run checked in turn, the
//! first failure ending the part (shrunk to a smaller plan where the runner is deterministic,
//! saved as a regression seed where the core simulation found it, its model path and diagram
//! saved), and one row of the summary table for it. The one loop all three runners share;
//! what it finds on the way it reports through a [`Progress`] callback, so the binary prints
//! and the loop does not.

use std::path::{Path, PathBuf};

use crate::check::{CheckFailure, Checked};
use crate::coverage::Coverage;
use crate::evidence::{self, SavedEvidence};
use crate::faults::{self, FaultKind, FaultPlan, Regression, RegressionError, Runner};
use crate::planted;
use crate::run::{self, RunOutcome};

/// One run of a part: its seed and the fault kinds its plan draws from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedRun {
    /// The seed.
    pub seed: u64,
    /// The fault kinds (none: a run without faults).
    pub kinds: Vec<FaultKind>,
}

/// What a part runs.
#[derive(Clone, Debug)]
pub struct PartPlan {
    /// The runner.
    pub runner: Runner,
    /// Masters in each run.
    pub masters: u64,
    /// The runs, in order.
    pub runs: Vec<PlannedRun>,
    /// Whether each run injects a fault kind of its own, in turn (the summary then lists the
    /// kinds instead of a replay rate).
    pub rotating: bool,
    /// Each run's traces are kept under this directory (`<mode>-seed-<seed>/`), if set.
    pub trace_directory: Option<PathBuf>,
}

impl PartPlan {
    /// Seeds `first_seed`, `first_seed + 1`, ... (`seeds` of them), each with every kind of
    /// `kinds`.
    pub fn seeds(
        runner: Runner,
        masters: u64,
        first_seed: u64,
        seeds: u64,
        kinds: &[FaultKind],
    ) -> PartPlan {
        PartPlan {
            runner,
            masters,
            runs: (first_seed..first_seed + seeds)
                .map(|seed| PlannedRun {
                    seed,
                    kinds: kinds.to_vec(),
                })
                .collect(),
            rotating: false,
            trace_directory: None,
        }
    }

    /// `runs` runs with seeds 1, 2, ..., run `i` injecting only the `i`-th of the kinds of
    /// `kinds` that `runner` injects (in turn; none if it injects none of them): a few short
    /// runs cover every kind.
    pub fn rotating(runner: Runner, masters: u64, runs: u64, kinds: &[FaultKind]) -> PartPlan {
        let kinds: Vec<FaultKind> = kinds
            .iter()
            .copied()
            .filter(|kind| kind.runs_on(runner))
            .collect();
        PartPlan {
            runner,
            masters,
            runs: (0..runs)
                .map(|run| PlannedRun {
                    seed: run + 1,
                    kinds: kinds
                        .get(run as usize % kinds.len().max(1))
                        .copied()
                        .into_iter()
                        .collect(),
                })
                .collect(),
            rotating: true,
            trace_directory: None,
        }
    }
}

/// How a part ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartOutcome {
    /// Every run passed.
    Passed,
    /// A run failed.
    Failed,
    /// Nothing was run: never counted as passed.
    Skipped,
}

impl PartOutcome {
    /// The word the summary table prints.
    pub fn word(self) -> &'static str {
        match self {
            PartOutcome::Passed => "PASSED",
            PartOutcome::Failed => "FAILED",
            PartOutcome::Skipped => "SKIPPED",
        }
    }
}

/// One row of the summary table.
#[derive(Clone, Debug)]
pub struct PartResult {
    /// The part's name.
    pub name: String,
    /// How it ended.
    pub outcome: PartOutcome,
    /// Counts and times, or the failure's first line.
    pub detail: String,
}

/// The verdict of a list of parts: a part that failed fails it, a part skipped leaves it
/// incomplete; passed only if every part passed.
pub fn verdict(parts: &[PartResult]) -> &'static str {
    let failed = parts.iter().any(|part| part.outcome == PartOutcome::Failed);
    let skipped = parts
        .iter()
        .any(|part| part.outcome == PartOutcome::Skipped);
    match (failed, skipped) {
        (true, true) => "FAIL, INCOMPLETE",
        (true, false) => "FAIL",
        (false, true) => "INCOMPLETE",
        (false, false) => "PASS",
    }
}

/// What became of a shrunk plan as a regression seed.
#[derive(Debug)]
pub enum RegressionSeed {
    /// Saved to this file.
    Saved(PathBuf),
    /// Not saved: this process plants bugs, and a planted bug's divergence is not one the real
    /// code has.
    Planted,
    /// The file could not be written.
    Failed(RegressionError),
}

/// What a part finds on the way, in the order it finds it.
#[derive(Debug)]
pub enum Progress<'a> {
    /// A run passed, but its linearizability check left these keys undecided.
    Undecided {
        /// The run (`sim seed 3`).
        run: &'a str,
        /// The undecided keys.
        keys: &'a [String],
    },
    /// A run's traces could not be kept in the trace directory.
    TracesNotKept {
        /// The directory.
        directory: &'a Path,
        /// Why.
        error: &'a std::io::Error,
    },
    /// A run failed; the faults it injected.
    Failed {
        /// The run.
        run: &'a str,
        /// Its faults, as printed.
        faults: &'a [String],
    },
    /// The failing run's plan, shrunk: it still diverges with `smallest`.
    Shrunk {
        /// The run.
        run: &'a str,
        /// Faults in the failing plan.
        faults: usize,
        /// The smallest plan that still diverges.
        smallest: &'a FaultPlan,
        /// Its divergence's title.
        title: &'a str,
    },
    /// The shrunk plan as a regression seed.
    Regression(&'a RegressionSeed),
    /// The failure, and where its model path and diagram went if it is a divergence.
    Failure {
        /// The failure.
        failure: &'a CheckFailure,
        /// The evidence saved (divergences only).
        evidence: Option<&'a SavedEvidence>,
    },
    /// Every run passed: what they exercised together.
    Coverage(&'a Coverage),
}

/// What the passing runs counted so far.
#[derive(Default)]
struct Totals {
    coverage: Coverage,
    passed: usize,
    events: usize,
    replay_seconds: f64,
    run_seconds: f64,
    exercised: Vec<String>,
}

/// Runs `plan`'s runs in turn until one fails, reporting what it finds to `progress`.
pub fn run_part(plan: &PartPlan, progress: &mut dyn FnMut(Progress<'_>)) -> PartResult {
    let name = part_name(plan.runner).to_string();
    let noun = if plan.runner.is_deterministic() {
        "seeds"
    } else {
        "runs"
    };
    if plan.runs.is_empty() {
        return PartResult {
            name,
            outcome: PartOutcome::Skipped,
            detail: format!("0 {noun} asked"),
        };
    }
    let mut totals = Totals::default();
    for planned in &plan.runs {
        let label = format!("{}-seed-{}", plan.runner.mode(), planned.seed);
        let directory = plan.trace_directory.as_ref().map(|root| root.join(&label));
        let outcome = run::run_and_check(
            plan.runner,
            planned.seed,
            plan.masters,
            &planned.kinds,
            directory.as_deref(),
        );
        if let Some(Err(error)) = &outcome.kept {
            let directory = directory.as_deref().expect("kept only with a directory");
            progress(Progress::TracesNotKept { directory, error });
        }
        totals.run_seconds += outcome.run_seconds;
        let run = format!("{} seed {}", plan.runner.mode(), planned.seed);
        match &outcome.result {
            Ok(checked) => totals.add(checked, &run, planned, progress),
            Err(failure) => {
                let detail = report_failure(plan, &outcome, failure, &run, &label, progress);
                return failed(name, plan, planned, &totals, &detail);
            }
        }
    }
    progress(Progress::Coverage(&totals.coverage));
    let missing = revisioned_missing(plan, &totals.coverage);
    if !missing.is_empty() {
        return PartResult {
            name,
            outcome: PartOutcome::Failed,
            detail: format!(
                "vacuous: the revisioned workload never showed {}",
                missing.join(", ")
            ),
        };
    }
    PartResult {
        name,
        outcome: PartOutcome::Passed,
        detail: passed_detail(plan, noun, &totals),
    }
}

/// Runs of the revisioned workload a part needs before it must show every revisioned
/// behaviour (one run alone, as a mutation case runs, may show only some).
pub const REVISIONED_SEEDS_FOR_COVERAGE: usize = 4;

/// Whether `runner`'s run of seed `seed` runs the revisioned clients: the simulations' even
/// seeds (`sim::revisioned_seed`, `turmoil_host::revisioned_seed`), every TCP run.
pub fn runs_revisioned(runner: Runner, seed: u64) -> bool {
    match runner {
        Runner::CoreSimulation => crate::sim::revisioned_seed(seed),
        Runner::Turmoil => crate::turmoil_host::revisioned_seed(seed),
        Runner::Tcp => true,
    }
}

/// Whether `kind`, as `runner` injects it, closes the proxy's connection to the master its
/// watches' subscription streams from, so that they resume elsewhere (`watch resumed`): in
/// `sim` a crash (aimed at that master) or a partition (its lost subscription messages close
/// the connection); under turmoil a crash (aimed at that master; a partition holds the links
/// and closes nothing). On TCP none is relied on: a crash aims at that master too, but real
/// time decides whether the watch it resumes is still held when the next leader commits
/// (about nine crash runs in ten show `watch resumed`; the replay checks every one that does).
fn closes_subscription(runner: Runner, kind: FaultKind) -> bool {
    match runner {
        Runner::CoreSimulation => matches!(kind, FaultKind::Crash | FaultKind::Partition),
        Runner::Turmoil => kind == FaultKind::Crash,
        Runner::Tcp => false,
    }
}

/// The revisioned behaviours (`coverage::REVISIONED_BEHAVIOURS`) a part's runs did not show
/// together, when at least [`REVISIONED_SEEDS_FOR_COVERAGE`] of its runs ran the revisioned
/// workload: each must happen in some run (`watch resumed` only where one of those runs
/// injected a fault that closes the watches' subscription, [`closes_subscription`]).
fn revisioned_missing(plan: &PartPlan, coverage: &Coverage) -> Vec<&'static str> {
    let revisioned: Vec<&PlannedRun> = plan
        .runs
        .iter()
        .filter(|planned| runs_revisioned(plan.runner, planned.seed))
        .collect();
    if revisioned.len() < REVISIONED_SEEDS_FOR_COVERAGE {
        return Vec::new();
    }
    let closes_subscription = revisioned.iter().any(|planned| {
        planned
            .kinds
            .iter()
            .any(|kind| kind.runs_on(plan.runner) && closes_subscription(plan.runner, *kind))
    });
    crate::coverage::REVISIONED_BEHAVIOURS
        .into_iter()
        .filter(|name| *name != "watch resumed" || closes_subscription)
        .filter(|name| coverage.behaviours.get(name).copied().unwrap_or(0) == 0)
        .collect()
}

impl Totals {
    /// Counts a passing run.
    fn add(
        &mut self,
        checked: &Checked,
        run: &str,
        planned: &PlannedRun,
        progress: &mut dyn FnMut(Progress<'_>),
    ) {
        self.coverage.add(&checked.coverage);
        self.passed += 1;
        self.events += checked.stats.events;
        self.replay_seconds += checked.stats.seconds;
        self.exercised.push(kinds_named(&planned.kinds));
        if let Some(keys) = &checked.stats.linearizable_undecided_keys {
            progress(Progress::Undecided { run, keys });
        }
    }
}

/// The summary table's name of a runner's part.
pub fn part_name(runner: Runner) -> &'static str {
    match runner {
        Runner::CoreSimulation => "conformance run (core simulation)",
        Runner::Turmoil => "conformance run (turmoil host sim)",
        Runner::Tcp => "conformance run (real TCP)",
    }
}

/// The kinds of a run, as the summary names them (`none` for a run without faults).
fn kinds_named(kinds: &[FaultKind]) -> String {
    if kinds.is_empty() {
        return "none".to_string();
    }
    let names: Vec<&str> = kinds.iter().map(|kind| kind.name()).collect();
    names.join(",")
}

/// The detail of a part whose runs all passed: how many, how long (the simulations' own time
/// under turmoil, the wall time on TCP), the events, and the replay rate or, for a rotating
/// part, the fault kinds in turn.
fn passed_detail(plan: &PartPlan, noun: &str, totals: &Totals) -> String {
    let runs = plan.runs.len();
    let time = match plan.runner {
        Runner::CoreSimulation => String::new(),
        Runner::Turmoil => format!(" ({:.1} s simulating)", totals.run_seconds),
        Runner::Tcp => format!(" ({:.0} s)", totals.run_seconds),
    };
    let tail = if plan.rotating {
        format!("faults {}", totals.exercised.join(", "))
    } else {
        format!(
            "{:.0} events/s replayed",
            totals.events as f64 / totals.replay_seconds.max(1e-9)
        )
    };
    format!("{runs} {noun}{time}, {} events, {tail}", totals.events)
}

/// The row of a part that a run failed.
fn failed(
    name: String,
    plan: &PartPlan,
    planned: &PlannedRun,
    totals: &Totals,
    first_line: &str,
) -> PartResult {
    let faults = if plan.rotating {
        format!("faults {}: ", kinds_named(&planned.kinds))
    } else {
        String::new()
    };
    PartResult {
        name,
        outcome: PartOutcome::Failed,
        detail: format!(
            "{faults}seed {} (after {} passing, {} events): {first_line}",
            planned.seed, totals.passed, totals.events
        ),
    }
}

/// Reports a failing run: its faults, its plan shrunk (and saved as a regression seed) where
/// that can be done, the failure with its evidence. Returns the failure's first line.
fn report_failure(
    plan: &PartPlan,
    outcome: &RunOutcome,
    failure: &CheckFailure,
    run: &str,
    label: &str,
    progress: &mut dyn FnMut(Progress<'_>),
) -> String {
    progress(Progress::Failed {
        run,
        faults: &outcome.faults_applied,
    });
    if matches!(failure, CheckFailure::Divergence(_)) && !outcome.plan.faults.is_empty() {
        shrink_and_save(plan, outcome, run, progress);
    }
    let evidence = match failure {
        CheckFailure::Divergence(divergence) => Some(evidence::save(
            divergence,
            plan.trace_directory.as_deref(),
            label,
            outcome.traces.as_deref(),
            &outcome.faults_applied,
        )),
        _ => None,
    };
    progress(Progress::Failure {
        failure,
        evidence: evidence.as_ref(),
    });
    failure
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Shrinks a diverging run's plan, where the runner is deterministic, and saves the core
/// simulation's shrunk plan as a regression seed (`tests/regressions.rs` replays those).
fn shrink_and_save(
    plan: &PartPlan,
    outcome: &RunOutcome,
    run: &str,
    progress: &mut dyn FnMut(Progress<'_>),
) {
    let Some((smallest, title)) =
        run::shrink(plan.runner, outcome.seed, plan.masters, &outcome.plan)
    else {
        return;
    };
    progress(Progress::Shrunk {
        run,
        faults: outcome.plan.faults.len(),
        smallest: &smallest,
        title: &title,
    });
    if plan.runner != Runner::CoreSimulation {
        return;
    }
    let seed = if planted::planted().is_empty() {
        let regression = Regression {
            seed: outcome.seed,
            masters: plan.masters,
            plan: smallest,
            found: title,
        };
        match faults::save_regression(&faults::regressions_directory(), &regression) {
            Ok(path) => RegressionSeed::Saved(path),
            Err(error) => RegressionSeed::Failed(error),
        }
    } else {
        RegressionSeed::Planted
    };
    progress(Progress::Regression(&seed));
}
