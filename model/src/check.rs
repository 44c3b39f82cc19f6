//! Running the checker on presets and judging the result: the library side of
//! `vigil-model check`, also called by `vigil-conform verify`.
//!
//! A preset passes when no safety property is violated, every witness it lists was reached, and
//! (for a preset declared exhaustive) the search was not stopped by a depth or time limit. A
//! counterexample is re-validated by replaying it with `Config::apply` before it is reported.

use crate::chooser::WeightedChooser;
use crate::config::{Bug, Config};
use crate::model::Action;
use crate::presets::{self, Preset, Strategy};
use crate::properties;
use crate::state::State;
use stateright::report::{ReportData, ReportDiscovery, Reporter};
use stateright::{Checker, HasDiscoveries, Model};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

/// Overrides of a preset's search settings (all optional).
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Seeded bugs to switch on.
    pub bugs: Vec<Bug>,
    /// Search strategy instead of the preset's.
    pub strategy: Option<Strategy>,
    /// Checker threads (default 1).
    pub threads: Option<usize>,
    /// Depth limit instead of the preset's.
    pub depth_max: Option<usize>,
    /// Time limit instead of the preset's.
    pub seconds_max: Option<u64>,
    /// Print a progress line to stderr while checking.
    pub progress: bool,
    /// Seed of the simulation's walks (default [`SIMULATION_SEED`]).
    pub seed: Option<u64>,
    /// Stop as soon as every required witness was reached, instead of searching for violations
    /// until the time limit (a violation found before then is still reported).
    pub until_witnessed: bool,
}

/// The simulation's default seed: with one thread, a seed gives the same walks on every run.
pub const SIMULATION_SEED: u64 = 0x5eed;

/// Why a check could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The preset name is unknown.
    #[error("unknown preset `{0}` (known: ci, seed, five-masters, ci-pause, ci-election, ci-read, ci-crash, ci-disk, ci-txn, ci-watch, ci-watch-resume, ci-watch-errors, ci-watch-now, ci-lease, ci-lease-election, bug-NAME)")]
    UnknownPreset(String),
}

/// What a check found for one property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Safety property: no reachable state violates it.
    Held,
    /// Safety property: a counterexample was found.
    Violated,
    /// Witness: a state satisfying it was reached.
    Discovered,
    /// Witness: never reached (a failure only if the preset lists it).
    NotDiscovered,
}

/// A violated property and the path that shows it.
#[derive(Clone, Debug)]
pub struct Counterexample {
    /// The property violated.
    pub property: &'static str,
    /// The steps from the initial state.
    pub actions: Vec<Action>,
    /// Whether replaying `actions` with `Config::apply` reproduced the violation.
    pub replayed: bool,
}

/// The outcome of checking one preset.
#[derive(Clone, Debug)]
pub struct CheckReport {
    /// The preset's name.
    pub preset: &'static str,
    /// The strategy used.
    pub strategy: Strategy,
    /// Each property, safety first, with its verdict.
    pub properties: Vec<(&'static str, Verdict)>,
    /// Witnesses the preset requires.
    pub required_witnesses: Vec<&'static str>,
    /// Counterexamples, one per violated property.
    pub counterexamples: Vec<Counterexample>,
    /// The length of the path the search found to each witness reached (the shortest with
    /// BFS; with DFS whichever path it took first).
    pub witness_path_lengths: BTreeMap<&'static str, usize>,
    /// States generated, with repeats.
    pub states: usize,
    /// Unique states.
    pub unique_states: usize,
    /// Deepest path explored.
    pub depth: usize,
    /// Wall time.
    pub seconds: f64,
    /// Whether the search covered every reachable state (not stopped by a limit or a violation).
    pub complete: bool,
    /// Whether the preset demands a complete search.
    pub exhaustive_required: bool,
}

impl CheckReport {
    /// Whether any safety property was violated.
    pub fn violated(&self) -> bool {
        !self.counterexamples.is_empty()
    }

    /// Required witnesses that were not reached.
    pub fn missing_witnesses(&self) -> Vec<&'static str> {
        self.required_witnesses
            .iter()
            .copied()
            .filter(|name| self.verdict(name) != Some(&Verdict::Discovered))
            .collect()
    }

    /// The verdict of one property.
    pub fn verdict(&self, name: &str) -> Option<&Verdict> {
        self.properties
            .iter()
            .find(|(property, _)| *property == name)
            .map(|(_, verdict)| verdict)
    }

    /// No violation, every required witness reached, complete when it must be.
    pub fn passed(&self) -> bool {
        !self.violated()
            && self.missing_witnesses().is_empty()
            && (self.complete || !self.exhaustive_required)
    }

    /// States per second.
    pub fn rate(&self) -> f64 {
        self.states as f64 / self.seconds.max(1e-9)
    }
}

/// The reports of every preset a name stood for.
#[derive(Clone, Debug)]
pub struct SuiteReport {
    /// One per preset, in run order.
    pub reports: Vec<CheckReport>,
}

impl SuiteReport {
    /// Every preset passed, and together they reached every witness of the model.
    pub fn passed(&self) -> bool {
        self.reports.iter().all(CheckReport::passed)
    }

    /// Whether any preset found a violation.
    pub fn violated(&self) -> bool {
        self.reports.iter().any(CheckReport::violated)
    }

    /// Total unique states.
    pub fn unique_states(&self) -> usize {
        self.reports.iter().map(|report| report.unique_states).sum()
    }

    /// Total seconds.
    pub fn seconds(&self) -> f64 {
        self.reports.iter().map(|report| report.seconds).sum()
    }
}

/// Checks every preset `name` stands for (`ci` is a list). Stops after the first preset with a
/// violation: that is the answer.
pub fn run_named(name: &str, options: &CheckOptions) -> Result<SuiteReport, CheckError> {
    let presets =
        presets::named(name).ok_or_else(|| CheckError::UnknownPreset(name.to_string()))?;
    let mut reports = Vec::new();
    for preset in &presets {
        let report = run_preset(preset, options);
        let stop = report.violated();
        reports.push(report);
        if stop {
            break;
        }
    }
    Ok(SuiteReport { reports })
}

/// Checks one preset with `options` applied.
pub fn run_preset(preset: &Preset, options: &CheckOptions) -> CheckReport {
    let mut config = preset.config.clone();
    config.bugs.extend(options.bugs.iter().copied());
    let strategy = options.strategy.unwrap_or(preset.strategy);
    let depth_max = options.depth_max.or(preset.depth_max);
    let seconds_max = options.seconds_max.or(preset.seconds_max);
    let started = Instant::now();
    let mut searched = config.clone();
    searched.search_deadline = seconds_max.map(|seconds| started + Duration::from_secs(seconds));
    let finish_when = if options.until_witnessed {
        HasDiscoveries::AllOf(preset.witnesses.iter().copied().collect())
    } else {
        HasDiscoveries::AnyFailures
    };
    let chooser = WeightedChooser::for_config(&config);
    let mut builder = searched
        .checker()
        .threads(options.threads.unwrap_or(1))
        .finish_when(finish_when);
    if let Some(depth) = depth_max {
        builder = builder.target_max_depth(depth);
    }
    if let Some(seconds) = seconds_max {
        builder = builder.timeout(Duration::from_secs(seconds));
    }
    let mut reporter = Progress {
        preset: preset.name,
        enabled: options.progress,
    };
    let discoveries = match strategy {
        Strategy::Bfs => finish(builder.spawn_bfs(), &mut reporter),
        Strategy::Dfs => finish(builder.spawn_dfs(), &mut reporter),
        Strategy::Simulation => {
            let seed = options.seed.unwrap_or(SIMULATION_SEED);
            finish(builder.spawn_simulation(seed, chooser), &mut reporter)
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let stopped_by_depth = depth_max.is_some_and(|depth| discoveries.depth >= depth);
    let stopped_by_time = seconds_max.is_some_and(|limit| seconds + 0.05 >= limit as f64);
    judge(
        preset,
        &config,
        strategy,
        discoveries,
        seconds,
        !(stopped_by_depth || stopped_by_time || strategy == Strategy::Simulation),
    )
}

/// Waits for the checker, with the progress line only when asked (reporting polls once a
/// second, which would add a second to every small check).
fn finish(checker: impl Checker<Config> + Send + Sync, reporter: &mut Progress) -> Finished {
    if reporter.enabled {
        collect(checker.join_and_report(reporter))
    } else {
        collect(checker.join())
    }
}

/// What a finished checker leaves behind.
struct Finished {
    paths: BTreeMap<&'static str, Vec<Action>>,
    states: usize,
    unique_states: usize,
    depth: usize,
}

fn collect(checker: impl Checker<Config>) -> Finished {
    // The simulation checker can panic rebuilding a path (stateright 0.31): a lost path is
    // reported as no discovery for that property, never trusted blindly.
    let paths = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        checker
            .discoveries()
            .into_iter()
            .map(|(name, path)| (name, path.into_actions()))
            .collect()
    }))
    .unwrap_or_default();
    Finished {
        paths,
        states: checker.state_count(),
        unique_states: checker.unique_state_count(),
        depth: checker.max_depth(),
    }
}

fn judge(
    preset: &Preset,
    config: &Config,
    strategy: Strategy,
    finished: Finished,
    seconds: f64,
    limits_untouched: bool,
) -> CheckReport {
    let mut verdicts = Vec::new();
    let mut counterexamples = Vec::new();
    let mut witness_path_lengths = BTreeMap::new();
    for name in properties::safety_names() {
        match finished.paths.get(name) {
            Some(actions) => {
                let replayed = replay_violates(config, actions, name);
                counterexamples.push(Counterexample {
                    property: name,
                    actions: actions.clone(),
                    replayed,
                });
                verdicts.push((name, Verdict::Violated));
            }
            None => verdicts.push((name, Verdict::Held)),
        }
    }
    for name in properties::witness_names() {
        let found = finished
            .paths
            .get(name)
            .is_some_and(|actions| replay_satisfies(config, actions, name));
        if found {
            witness_path_lengths.insert(name, finished.paths[name].len());
        }
        verdicts.push((
            name,
            if found {
                Verdict::Discovered
            } else {
                Verdict::NotDiscovered
            },
        ));
    }
    let complete = limits_untouched && counterexamples.is_empty();
    CheckReport {
        preset: preset.name,
        strategy,
        properties: verdicts,
        required_witnesses: preset.witnesses.clone(),
        counterexamples,
        witness_path_lengths,
        states: finished.states,
        unique_states: finished.unique_states,
        depth: finished.depth,
        seconds,
        complete,
        exhaustive_required: preset.exhaustive,
    }
}

/// Replays `actions` from the initial state; `None` if one is not enabled.
pub fn replay(config: &Config, actions: &[Action]) -> Option<Vec<State>> {
    let mut states = vec![State::initial(config)];
    for action in actions {
        let next = config.apply(states.last()?, action)?;
        states.push(next);
    }
    Some(states)
}

fn property_holds(config: &Config, state: &State, name: &str) -> bool {
    properties::all()
        .into_iter()
        .find(|property| property.name == name)
        .is_some_and(|property| (property.condition)(config, state))
}

fn replay_violates(config: &Config, actions: &[Action], name: &str) -> bool {
    replay(config, actions)
        .and_then(|states| states.last().cloned())
        .is_some_and(|last| !property_holds(config, &last, name))
}

fn replay_satisfies(config: &Config, actions: &[Action], name: &str) -> bool {
    replay(config, actions).is_some_and(|states| {
        states
            .iter()
            .any(|state| property_holds(config, state, name))
    })
}

/// The progress line on stderr.
struct Progress {
    preset: &'static str,
    enabled: bool,
}

impl Reporter<Config> for Progress {
    fn report_checking(&mut self, data: ReportData) {
        if !self.enabled {
            return;
        }
        let seconds = data.duration.as_secs_f64().max(1e-9);
        eprintln!(
            "[{}] states={} unique={} depth={} rate={:.0}/s{}",
            self.preset,
            data.total_states,
            data.unique_states,
            data.max_depth,
            data.total_states as f64 / seconds,
            if data.done { " done" } else { "" }
        );
    }

    fn report_discoveries(&mut self, _: &Config, _: BTreeMap<&'static str, ReportDiscovery<Config>>)
    where
        <Config as Model>::Action: fmt::Debug,
        <Config as Model>::State: fmt::Debug,
    {
    }

    fn delay(&self) -> Duration {
        Duration::from_secs(1)
    }
}

impl fmt::Display for Counterexample {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            formatter,
            "counterexample for `{}` ({} steps{}):",
            self.property,
            self.actions.len(),
            if self.replayed {
                ", replayed"
            } else {
                ", NOT reproduced by replay"
            }
        )?;
        for (index, action) in self.actions.iter().enumerate() {
            writeln!(formatter, "  {:>3}. {action}", index + 1)?;
        }
        Ok(())
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            formatter,
            "preset {} ({:?}, {})",
            self.preset,
            self.strategy,
            if self.complete {
                "exhaustive"
            } else if self.violated() {
                "stopped at the first violation"
            } else {
                "NOT exhaustive: stopped by a depth or time limit"
            }
        )?;
        for (name, verdict) in &self.properties {
            let required = if self.required_witnesses.contains(name) {
                " (required)"
            } else {
                ""
            };
            let word = match verdict {
                Verdict::Held => "held",
                Verdict::Violated => "VIOLATED",
                Verdict::Discovered => "discovered",
                Verdict::NotDiscovered => "not discovered",
            };
            writeln!(formatter, "  {name:<36} {word}{required}")?;
        }
        writeln!(
            formatter,
            "  unique states {}, states {}, depth {}, {:.1} s, {:.0} states/s",
            self.unique_states,
            self.states,
            self.depth,
            self.seconds,
            self.rate()
        )?;
        for counterexample in &self.counterexamples {
            write!(formatter, "{counterexample}")?;
        }
        let missing = self.missing_witnesses();
        if !missing.is_empty() {
            writeln!(formatter, "  missing witnesses: {}", missing.join(", "))?;
        }
        writeln!(
            formatter,
            "  => {}",
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}

impl fmt::Display for SuiteReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for report in &self.reports {
            write!(formatter, "{report}")?;
        }
        writeln!(
            formatter,
            "total: {} presets, {} unique states, {:.1} s => {}",
            self.reports.len(),
            self.unique_states(),
            self.seconds(),
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}
